/**
 * Benchmark 4: shutdown latency. `tasks` tasks wait on one `Deferred`; `stop` is called (the worker is then
 * `Stopping`, draining); the `Deferred` is completed; each task notes the time as its last act. Reported: from the
 * last task's end to `stop` returning, and from the release of the `Deferred` (which includes running the tasks to
 * their end) to `stop` returning. A fresh context per run.
 */
import { Deferred, Effect, Fiber } from "effect"
import { WorkerContext } from "../src/index.js"
import { Countdown, median, now, quietLogs } from "./common.js"

export interface ShutdownConfig {
  /** Tasks in flight when the `Deferred` is released. */
  readonly tasks: number
  /** Runs; medians are reported. */
  readonly runs: number
}

export interface ShutdownRun {
  /** ms from the last task's end to `stop` returning. */
  readonly fromLastTask: number
  /** ms from completing the `Deferred` to `stop` returning. */
  readonly fromRelease: number
  /** Tasks that ended in this run: `tasks`. */
  readonly ended: number
  /** The state once `stop` returned: `Stopped`. */
  readonly state: string
}

export interface ShutdownResult {
  readonly config: ShutdownConfig
  readonly fromLastTaskMs: number
  readonly fromReleaseMs: number
  readonly runs: ReadonlyArray<ShutdownRun>
}

const once = (tasks: number): Effect.Effect<ShutdownRun> =>
  Effect.scoped(Effect.gen(function*() {
    const ctx = yield* WorkerContext.make({ name: "bench-shutdown" })
    yield* ctx.start
    const gate = yield* Deferred.make<void>()
    const started = new Countdown()
    const ended = new Countdown()
    let lastEnd = 0
    const task = Effect.sync(started.tick).pipe(
      Effect.zipRight(Deferred.await(gate)),
      Effect.zipRight(Effect.sync(() => {
        lastEnd = now()
        ended.tick()
      }))
    )
    const allStarted = started.arm(tasks)
    for (let i = 0; i < tasks; i++) yield* ctx.track(task)
    yield* Effect.promise(() => allStarted)

    const stopper = yield* Effect.fork(Effect.zipRight(ctx.stop, Effect.sync(now)))
    while (!(yield* ctx.isShuttingDown)) yield* Effect.yieldNow()
    const released = now()
    yield* Deferred.succeed(gate, undefined)
    const returned = yield* Fiber.join(stopper)
    return {
      fromLastTask: returned - lastEnd,
      fromRelease: returned - released,
      ended: ended.total,
      state: yield* ctx.state
    }
  })).pipe(Effect.orDie, quietLogs)

/** Runs benchmark 4: one discarded run, then `runs` measured ones. */
export const shutdownLatency = (config: ShutdownConfig): Effect.Effect<ShutdownResult> =>
  Effect.gen(function*() {
    yield* once(config.tasks)
    const runs: Array<ShutdownRun> = []
    for (let i = 0; i < config.runs; i++) runs.push(yield* once(config.tasks))
    return {
      config,
      fromLastTaskMs: median(runs.map((run) => run.fromLastTask)),
      fromReleaseMs: median(runs.map((run) => run.fromRelease)),
      runs
    }
  })
