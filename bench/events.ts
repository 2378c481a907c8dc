/**
 * Benchmark 5: events. (a) Publish throughput of `ctx.emit(WorkerEvent.Custom(...))` with 0, 1 and 10 subscribers,
 * each consuming with a `Queue.take` loop; a round emits `events` events and ends when every subscriber has seen a
 * final marker event. (b) The cost of `track` with a stalled subscriber (subscribed, never reads) against none, and
 * against one listener that keeps up (both make the context build events).
 */
import { Effect, Queue, Runtime } from "effect"
import { WorkerContext, WorkerEvent } from "../src/index.js"
import { Countdown, quietLogs } from "./common.js"
import { interleaved, pairedRatio, type Variant } from "./interleave.js"

export interface EventsConfig {
  /** Events emitted per round of (a). */
  readonly events: number
  /** Tasks tracked per round of (b). */
  readonly trackTasks: number
  readonly rounds: number
  readonly warmupRounds: number
}

export interface EmitFigures {
  readonly subscribers: number
  /** Median µs per `emit`, until every subscriber has seen the marker (wall clock). */
  readonly usPerEvent: number
  readonly eventsPerSecond: number
  /** Events every subscriber took, over all rounds: `events × (rounds + warmupRounds) × subscribers` at most. */
  readonly received: number
  /** `received` / what was emitted to the subscribers: below 1 when a subscriber fell `eventBufferSize` behind. */
  readonly deliveredFraction: number
}

export interface EventsResult {
  readonly config: EventsConfig
  readonly emit: ReadonlyArray<EmitFigures>
  /** Median µs per task through `track` with no subscriber, with one listener that keeps up, with a stalled one. */
  readonly trackUs: number
  readonly trackListenerUs: number
  readonly trackStalledUs: number
  /** stalled / none, and stalled / listener, medians of per-round ratios. */
  readonly stalledRatio: number
  readonly stalledVsListenerRatio: number
  /** Tasks that ended in (b), per variant: `trackTasks × (rounds + warmupRounds)`. */
  readonly trackCompleted: number
  readonly trackListenerCompleted: number
  readonly trackStalledCompleted: number
  /** Marker events seen, over all rounds and subscribers. */
  readonly markersSeen: number
}

const Marker = Symbol.for("effect-worker-context/bench/marker")

const emitSubscribers = [0, 1, 10] as const

/** Runs benchmark 5. */
export const eventThroughput = (config: EventsConfig): Effect.Effect<EventsResult> =>
  Effect.scoped(Effect.gen(function*() {
    const runPromise = Runtime.runPromise(yield* Effect.runtime<never>())

    // (a) emit
    const markers = new Countdown()
    const emitters: Array<Variant & { readonly subscribers: number; received: number }> = []
    for (const subscribers of emitSubscribers) {
      const name = `bench-emit-${subscribers}`
      const ctx = yield* WorkerContext.make({ name })
      yield* ctx.start
      const figures = { received: 0 }
      for (let i = 0; i < subscribers; i++) {
        const queue = yield* ctx.subscribe
        // A plain loop, not `Effect.forever`: that yields to the scheduler after every event, and the subscriber
        // would fall behind any emitter that does not yield as often.
        yield* Effect.forkScoped(Effect.gen(function*() {
          while (true) {
            const event = yield* Queue.take(queue)
            if (event._tag === "Custom" && event.value === Marker) markers.tick()
            else figures.received++
          }
        }))
      }
      const round = Effect.gen(function*() {
        for (let i = 0; i < config.events; i++) yield* ctx.emit(WorkerEvent.Custom({ worker: name, value: i }))
        yield* ctx.emit(WorkerEvent.Custom({ worker: name, value: Marker }))
      })
      emitters.push({
        name: `emit, ${subscribers} subscriber${subscribers === 1 ? "" : "s"}`,
        subscribers,
        get received() {
          return figures.received
        },
        run: async () => {
          const seen = markers.arm(subscribers)
          await runPromise(round)
          await seen
        }
      })
    }
    const emitted = yield* Effect.promise(() =>
      interleaved(emitters, { rounds: config.rounds, warmupRounds: config.warmupRounds, units: config.events })
    )
    const emitRounds = config.rounds + config.warmupRounds
    const emit = emitters.map((variant): EmitFigures => ({
      subscribers: variant.subscribers,
      usPerEvent: emitted.usPerOp[variant.name]!,
      eventsPerSecond: 1e6 / emitted.usPerOp[variant.name]!,
      received: variant.received,
      deliveredFraction: variant.subscribers === 0
        ? 1
        : variant.received / (config.events * emitRounds * variant.subscribers)
    }))

    // (b) track with a stalled subscriber, against none and against one listener that keeps up
    const trackVariant = (name: string, subscriber: "none" | "listener" | "stalled") =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: `bench-track-${subscriber}` })
        if (subscriber === "stalled") yield* ctx.subscribe
        if (subscriber === "listener") yield* ctx.listen(() => Effect.void)
        yield* ctx.start
        const counter = new Countdown()
        const task = Effect.zipRight(Effect.yieldNow(), Effect.sync(counter.tick))
        const submit = Effect.gen(function*() {
          for (let i = 0; i < config.trackTasks; i++) yield* ctx.track(task)
        })
        return {
          name,
          counter,
          run: async () => {
            const done = counter.arm(config.trackTasks)
            await runPromise(submit)
            await done
          }
        }
      })
    const none = yield* trackVariant("track, no subscriber", "none")
    const listener = yield* trackVariant("track, 1 listener", "listener")
    const stalled = yield* trackVariant("track, stalled subscriber", "stalled")
    const tracked = yield* Effect.promise(() =>
      interleaved([none, listener, stalled], {
        rounds: config.rounds,
        warmupRounds: config.warmupRounds,
        units: config.trackTasks
      })
    )
    return {
      config,
      emit,
      trackUs: tracked.usPerOp[none.name]!,
      trackListenerUs: tracked.usPerOp[listener.name]!,
      trackStalledUs: tracked.usPerOp[stalled.name]!,
      stalledRatio: pairedRatio(tracked, stalled.name, none.name),
      stalledVsListenerRatio: pairedRatio(tracked, stalled.name, listener.name),
      trackCompleted: none.counter.total,
      trackListenerCompleted: listener.counter.total,
      trackStalledCompleted: stalled.counter.total,
      markersSeen: markers.total
    }
  })).pipe(Effect.orDie, quietLogs)
