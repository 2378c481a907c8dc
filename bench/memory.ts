/**
 * Benchmark 3: heap held per in-flight task. `tasks` tasks are forked and all wait on one shared `Deferred`; once
 * every one has started, the heap (after a forced GC) minus the heap before, divided by `tasks`, is the cost of one
 * suspended task. Measured through `ctx.track` and through a bare `FiberSet.run`, alternately, `runs` times each.
 */
import { Deferred, Effect, FiberSet } from "effect"
import { WorkerContext } from "../src/index.js"
import { Countdown, median, quietLogs, rotate, sampleHeap } from "./common.js"

export interface MemoryConfig {
  /** Tasks in flight at once. */
  readonly tasks: number
  /** Measurements per variant; the median is reported. */
  readonly runs: number
}

export interface MemoryResult {
  readonly config: MemoryConfig
  /** Median heap bytes per in-flight task through `ctx.track`, and each run's figure. */
  readonly trackBytesPerTask: number
  readonly trackRuns: ReadonlyArray<number>
  /** Median heap bytes per in-flight task in a bare `FiberSet`, and each run's figure. */
  readonly fiberSetBytesPerTask: number
  readonly fiberSetRuns: ReadonlyArray<number>
  /** `trackBytesPerTask / fiberSetBytesPerTask`. */
  readonly ratio: number
  /** Tasks that started and that ended, over all runs (one discarded run per variant first): `tasks × (runs + 1) × 2`. */
  readonly started: number
  readonly ended: number
  /** What the context and the fiber set still count once every run ended: 0. */
  readonly leftInFlight: number
}

type Fork = (task: Effect.Effect<void>) => Effect.Effect<unknown, unknown>

/** Runs benchmark 3. The context and the fiber set exist before the baseline is taken, so only tasks are counted. */
export const inFlightMemory = (config: MemoryConfig): Effect.Effect<MemoryResult> =>
  Effect.scoped(Effect.gen(function*() {
    const ctx = yield* WorkerContext.make({ name: "bench-memory" })
    yield* ctx.start
    const set = yield* FiberSet.make<unknown, unknown>()
    const started = new Countdown()
    const ended = new Countdown()

    const measure = (fork: Fork) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const task = Effect.sync(started.tick).pipe(
          Effect.zipRight(Deferred.await(gate)),
          Effect.zipRight(Effect.sync(ended.tick))
        )
        const allStarted = started.arm(config.tasks)
        const allEnded = ended.arm(config.tasks)
        const before = yield* sampleHeap
        for (let i = 0; i < config.tasks; i++) yield* fork(task)
        yield* Effect.promise(() => allStarted)
        const during = yield* sampleHeap
        yield* Deferred.succeed(gate, undefined)
        yield* Effect.promise(() => allEnded)
        return (during - before) / config.tasks
      })

    const variants = [
      { name: "track", fork: ((task) => ctx.track(task)) as Fork, runs: [] as Array<number> },
      { name: "fiberSet", fork: ((task) => FiberSet.run(set, task)) as Fork, runs: [] as Array<number> }
    ]
    // One discarded run each, so JIT compilation and one-off allocations stay out of the figures.
    for (const variant of variants) yield* measure(variant.fork)
    for (let run = 0; run < config.runs; run++) {
      for (const variant of rotate(variants, run)) variant.runs.push(yield* measure(variant.fork))
    }
    const [track, fiberSet] = variants as [typeof variants[0], typeof variants[0]]
    const trackBytesPerTask = median(track.runs)
    const fiberSetBytesPerTask = median(fiberSet.runs)
    return {
      config,
      trackBytesPerTask,
      trackRuns: track.runs,
      fiberSetBytesPerTask,
      fiberSetRuns: fiberSet.runs,
      ratio: trackBytesPerTask / fiberSetBytesPerTask,
      started: started.total,
      ended: ended.total,
      leftInFlight: (yield* ctx.taskCount) + (yield* FiberSet.size(set))
    }
  })).pipe(Effect.orDie, quietLogs)
