/**
 * Benchmark 2: many tasks through one long-lived worker, in batches (track `batch` tasks, wait until they ended),
 * with the heap sampled after a forced GC before, during and after. Whatever a completed task leaves behind (ids,
 * event objects, observers, finished fibers, spans) would show as growth.
 */
import { Effect } from "effect"
import { WorkerContext } from "../src/index.js"
import { Countdown, now, quietLogs, sampleHeap } from "./common.js"

export interface ThroughputConfig {
  /** Tasks in total, after the warm-up batch. */
  readonly tasks: number
  /** Tasks per batch. */
  readonly batch: number
  /** How many heap samples to take while the tasks run (evenly spaced, between batches). */
  readonly samples: number
  /** Whether a listener (`ctx.listen(() => Effect.void)`) is attached, so events are built and published. */
  readonly listener: boolean
}

export interface ThroughputResult {
  readonly config: ThroughputConfig
  /** Tasks that ended: `tasks` plus the warm-up batch. */
  readonly completed: number
  /** The context's task count once every batch ended: 0. */
  readonly leftInFlight: number
  /** Tasks per second, over the batches only (forced GCs excluded). */
  readonly tasksPerSecond: number
  /** `heapUsed` in bytes after a forced GC: after the warm-up batch, between batches, after the last batch. */
  readonly heapBefore: number
  readonly heapDuring: ReadonlyArray<{ readonly afterTasks: number; readonly heapUsed: number }>
  readonly heapAfter: number
  /** `(heapAfter - heapBefore) / heapBefore`, in percent. */
  readonly growthPercent: number
  /** `(heapAfter - heapBefore) / tasks`, in bytes: what each completed task would leave behind. */
  readonly bytesPerTask: number
}

/** Runs benchmark 2 on a fresh context. */
export const throughputAtScale = (config: ThroughputConfig): Effect.Effect<ThroughputResult> =>
  Effect.scoped(Effect.gen(function*() {
    const ctx = yield* WorkerContext.make({ name: config.listener ? "bench-scale-listener" : "bench-scale" })
    if (config.listener) yield* ctx.listen(() => Effect.void)
    yield* ctx.start
    const counter = new Countdown()
    const task = Effect.zipRight(Effect.yieldNow(), Effect.sync(counter.tick))

    const runBatch = (size: number) =>
      Effect.gen(function*() {
        const done = counter.arm(size)
        for (let i = 0; i < size; i++) yield* ctx.track(task)
        yield* Effect.promise(() => done)
      })

    // The warm-up batch creates whatever is made once (metric series, JIT code) before the baseline.
    yield* runBatch(Math.min(config.batch, config.tasks))
    const heapBefore = yield* sampleHeap
    const sampleEvery = Math.max(config.batch, Math.ceil(config.tasks / Math.max(1, config.samples)))
    const heapDuring: Array<{ afterTasks: number; heapUsed: number }> = []
    let elapsed = 0
    let sent = 0
    let nextSample = sampleEvery
    while (sent < config.tasks) {
      const size = Math.min(config.batch, config.tasks - sent)
      const start = now()
      yield* runBatch(size)
      elapsed += now() - start
      sent += size
      if (sent >= nextSample && sent < config.tasks) {
        heapDuring.push({ afterTasks: sent, heapUsed: yield* sampleHeap })
        nextSample += sampleEvery
      }
    }
    const heapAfter = yield* sampleHeap
    return {
      config,
      completed: counter.total,
      leftInFlight: yield* ctx.taskCount,
      tasksPerSecond: config.tasks / (elapsed / 1000),
      heapBefore,
      heapDuring,
      heapAfter,
      growthPercent: (heapAfter - heapBefore) / heapBefore * 100,
      bytesPerTask: (heapAfter - heapBefore) / config.tasks
    }
  })).pipe(Effect.orDie, quietLogs)
