/**
 * Benchmark 1: the cost of one short task (it yields once, then ticks a counter) through `ctx.track` with no
 * listener and with one, `FiberSet.run`, `Effect.forkDaemon`, p-queue and a bare Promise. Metrics and spans are on,
 * as shipped. Each variant submits `tasks` tasks in a loop and is done when the last one ended.
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

export const Variants = {
  track0: "ctx.track (0 listeners)",
  track1: "ctx.track (1 listener)",
  fiberSet: "FiberSet.run",
  forkDaemon: "Effect.forkDaemon",
  pQueue: "p-queue add",
  promise: "Promise counter"
} as const

export interface OverheadResult {
  readonly config: OverheadConfig
  /** Median wall-clock µs per task, by variant name. */
  readonly usPerTask: Readonly<Record<string, number>>
  /** Wall-clock ms of each measured batch, by variant name, in round order. */
  readonly samples: Readonly<Record<string, ReadonlyArray<number>>>
  /** Median CPU µs per task, by variant name. */
  readonly cpuUsPerTask: Readonly<Record<string, number>>
  /** `ctx.track` (no listener) / `FiberSet.run`, median of per-round ratios: wall clock, CPU time. */
  readonly ratioTrack: Ratio
  /** `ctx.track` (one listener) / `FiberSet.run`, median of per-round ratios: wall clock, CPU time. */
  readonly ratioTrackListener: Ratio
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

/** One round of a variant driven by Effect: a fiber forks `tasks` tasks in a loop, then the countdown ends. */
const effectVariant = (
  name: string,
  tasks: number,
  runPromise: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>,
  fork: Fork
): Variant & { readonly counter: Countdown } => {
  const counter = new Countdown()
  const task = Effect.zipRight(Effect.yieldNow(), Effect.sync(counter.tick))
  const submit = Effect.gen(function*() {
    for (let i = 0; i < tasks; i++) yield* fork(task)
  })
  return {
    name,
    counter,
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
): Variant & { readonly counter: Countdown } => {
  const counter = new Countdown()
  const task = async () => {
    await Promise.resolve()
    counter.tick()
  }
  return {
    name,
    counter,
    run: async () => {
      const done = counter.arm(tasks)
      for (let i = 0; i < tasks; i++) submit(task)
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
      promiseVariant(Variants.promise, tasks, (task) => void task())
    ]
    const result = yield* Effect.promise(() =>
      interleaved(variants, { rounds: config.rounds, warmupRounds: config.warmupRounds, units: tasks })
    )
    const completed: Record<string, number> = {}
    for (const variant of variants) completed[variant.name] = variant.counter.total
    const leftInFlight = (yield* plain.taskCount) + (yield* listened.taskCount) + (yield* FiberSet.size(set)) +
      queue.size + queue.pending
    return {
      config,
      usPerTask: result.usPerOp,
      samples: result.samples,
      cpuUsPerTask: result.cpuUsPerOp,
      ratioTrack: {
        wall: pairedRatio(result, Variants.track0, Variants.fiberSet),
        cpu: pairedRatio(result, Variants.track0, Variants.fiberSet, "cpu")
      },
      ratioTrackListener: {
        wall: pairedRatio(result, Variants.track1, Variants.fiberSet),
        cpu: pairedRatio(result, Variants.track1, Variants.fiberSet, "cpu")
      },
      completed,
      leftInFlight
    }
  })).pipe(Effect.orDie, quietLogs)
