/**
 * Benchmark 1: the cost of one short task (it yields once, then ticks a counter) through `ctx.track` with no
 * listener and with one, `FiberSet.run`, `Effect.forkDaemon`, p-queue and a bare Promise. Metrics and spans are on,
 * as shipped. Each variant submits `tasks` tasks in a loop and is done when the last one ended.
 *
 * Two submit shapes. In the tight loop the submitting fiber forks without pause until the scheduler preempts it,
 * which it does after a fixed number of operations, not of tasks: `track`, which takes fewer operations per call
 * than `FiberSet.run`, admits more tasks per scheduler turn and so has more of them in flight at once (more live
 * fibers, more GC work per task). In the yielding shape the submitter also yields (`Effect.yieldNow()`) every
 * {@link YieldEvery} tasks, which holds the number in flight roughly equal between the variants; `ctx.track` (with
 * no listener and with one) and `FiberSet.run` run in that shape too, in the same interleaved rounds. Every variant
 * records the most tasks it had in flight (submitted, not yet ended), as the submitter saw it.
 */
import { Effect, FiberSet, Runtime } from "effect"
import PQueue from "p-queue"
import { WorkerContext } from "../src/index.js"
import { Countdown, quietLogs } from "./common.js"
import { interleaved, pairedRatio, type Variant } from "./interleave.js"

export interface OverheadConfig {
  /** Tasks per measured batch. */
  readonly tasks: number
  /** Measured rounds; each runs every variant once. */
  readonly rounds: number
  /** Discarded rounds first, to warm the JIT. */
  readonly warmupRounds: number
}

/** In the yielding shape, the submitter yields to the scheduler after every `YieldEvery` tasks. */
export const YieldEvery = 256

export const Variants = {
  track0: "ctx.track (0 listeners)",
  track1: "ctx.track (1 listener)",
  fiberSet: "FiberSet.run",
  forkDaemon: "Effect.forkDaemon",
  pQueue: "p-queue add",
  promise: "Promise counter",
  track0Yield: `ctx.track (0 listeners), yield every ${YieldEvery}`,
  track1Yield: `ctx.track (1 listener), yield every ${YieldEvery}`,
  fiberSetYield: `FiberSet.run, yield every ${YieldEvery}`
} as const

export interface OverheadResult {
  readonly config: OverheadConfig
  /** Median wall-clock µs per task, by variant name. */
  readonly usPerTask: Readonly<Record<string, number>>
  /** Wall-clock ms of each measured batch, by variant name, in round order. */
  readonly samples: Readonly<Record<string, ReadonlyArray<number>>>
  /** Median CPU µs per task, by variant name. */
  readonly cpuUsPerTask: Readonly<Record<string, number>>
  /** Most tasks in flight at once (submitted, not yet ended) over all rounds, by variant name. */
  readonly peakInFlight: Readonly<Record<string, number>>
  /** Tight loop: `ctx.track` (no listener) / `FiberSet.run`, median of per-round ratios: wall clock, CPU time. */
  readonly ratioTrack: Ratio
  /** Tight loop: `ctx.track` (one listener) / `FiberSet.run`, median of per-round ratios: wall clock, CPU time. */
  readonly ratioTrackListener: Ratio
  /** Yielding every {@link YieldEvery} tasks: `ctx.track` (no listener) / `FiberSet.run`, the same way. */
  readonly ratioTrackYield: Ratio
  /** Yielding every {@link YieldEvery} tasks: `ctx.track` (one listener) / `FiberSet.run`, the same way. */
  readonly ratioTrackListenerYield: Ratio
  /** Tasks that ended, by variant: `tasks × (rounds + warmupRounds)` each. */
  readonly completed: Readonly<Record<string, number>>
  /** Tasks still counted by the contexts and the fiber set after the last round: 0. */
  readonly leftInFlight: number
}

export interface Ratio {
  readonly wall: number
  readonly cpu: number
}

type Fork = (task: Effect.Effect<void>) => Effect.Effect<unknown, unknown>

/** A variant with the counter its tasks tick and the most tasks it had in flight at once. */
type Counted = Variant & { readonly counter: Countdown; readonly peak: () => number }

/**
 * One round of a variant driven by Effect: a fiber forks `tasks` tasks in a loop, yielding to the scheduler after
 * every `yieldEvery` of them when given, then the countdown ends.
 */
const effectVariant = (
  name: string,
  tasks: number,
  runPromise: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>,
  fork: Fork,
  yieldEvery?: number
): Counted => {
  const counter = new Countdown()
  let peak = 0
  const task = Effect.zipRight(Effect.yieldNow(), Effect.sync(counter.tick))
  const submit = Effect.gen(function*() {
    for (let i = 0; i < tasks; i++) {
      yield* fork(task)
      // Tasks end only while this fiber is suspended, so the peak is seen just before it is preempted or yields.
      const inFlight = i + 1 - counter.ticked
      if (inFlight > peak) peak = inFlight
      if (yieldEvery !== undefined && (i + 1) % yieldEvery === 0) yield* Effect.yieldNow()
    }
  })
  return {
    name,
    counter,
    peak: () => peak,
    run: async () => {
      const done = counter.arm(tasks)
      await runPromise(submit)
      await done
    }
  }
}

/** One round of a variant driven by Promises: `submit` is called `tasks` times in a plain loop. */
const promiseVariant = (
  name: string,
  tasks: number,
  submit: (task: () => Promise<void>) => void
): Counted => {
  const counter = new Countdown()
  let peak = 0
  const task = async () => {
    await Promise.resolve()
    counter.tick()
  }
  return {
    name,
    counter,
    peak: () => peak,
    run: async () => {
      const done = counter.arm(tasks)
      for (let i = 0; i < tasks; i++) submit(task)
      peak = Math.max(peak, tasks - counter.ticked)
      await done
    }
  }
}

/** Runs benchmark 1. The contexts, the fiber set and the queue live for the whole benchmark, like a worker's. */
export const perTaskOverhead = (config: OverheadConfig): Effect.Effect<OverheadResult> =>
  Effect.scoped(Effect.gen(function*() {
    const runPromise = Runtime.runPromise(yield* Effect.runtime<never>())
    const plain = yield* WorkerContext.make({ name: "bench-overhead" })
    yield* plain.start
    const listened = yield* WorkerContext.make({ name: "bench-overhead-listener" })
    yield* listened.listen(() => Effect.void)
    yield* listened.start
    const set = yield* FiberSet.make<unknown, unknown>()
    const queue = new PQueue()

    const { tasks } = config
    const variants = [
      effectVariant(Variants.track0, tasks, runPromise, plain.track),
      effectVariant(Variants.track1, tasks, runPromise, listened.track),
      effectVariant(Variants.fiberSet, tasks, runPromise, (task) => FiberSet.run(set, task)),
      effectVariant(Variants.forkDaemon, tasks, runPromise, Effect.forkDaemon),
      promiseVariant(Variants.pQueue, tasks, (task) => void queue.add(task)),
      promiseVariant(Variants.promise, tasks, (task) => void task()),
      effectVariant(Variants.track0Yield, tasks, runPromise, plain.track, YieldEvery),
      effectVariant(Variants.track1Yield, tasks, runPromise, listened.track, YieldEvery),
      effectVariant(Variants.fiberSetYield, tasks, runPromise, (task) => FiberSet.run(set, task), YieldEvery)
    ]
    const result = yield* Effect.promise(() =>
      interleaved(variants, { rounds: config.rounds, warmupRounds: config.warmupRounds, units: tasks })
    )
    const completed: Record<string, number> = {}
    const peakInFlight: Record<string, number> = {}
    for (const variant of variants) {
      completed[variant.name] = variant.counter.total
      peakInFlight[variant.name] = variant.peak()
    }
    const leftInFlight = (yield* plain.taskCount) + (yield* listened.taskCount) + (yield* FiberSet.size(set)) +
      queue.size + queue.pending
    const ratio = (numerator: string, denominator: string): Ratio => ({
      wall: pairedRatio(result, numerator, denominator),
      cpu: pairedRatio(result, numerator, denominator, "cpu")
    })
    return {
      config,
      usPerTask: result.usPerOp,
      samples: result.samples,
      cpuUsPerTask: result.cpuUsPerOp,
      peakInFlight,
      ratioTrack: ratio(Variants.track0, Variants.fiberSet),
      ratioTrackListener: ratio(Variants.track1, Variants.fiberSet),
      ratioTrackYield: ratio(Variants.track0Yield, Variants.fiberSetYield),
      ratioTrackListenerYield: ratio(Variants.track1Yield, Variants.fiberSetYield),
      completed,
      leftInFlight
    }
  })).pipe(Effect.orDie, quietLogs)
