/**
 * Benchmark 6: contention. `callers` fibers each run a worker loop (track a task, wait for it, again) for
 * `tasksPerCaller` tasks, while another fiber pauses and resumes the worker every `flipEveryMs` ms (at its first
 * turn after that long); then `stop` drains everything. Reported: tasks per second from the first `track` to
 * `stop` returning, and that every task was admitted and ended.
 */
import { Effect, Fiber, Scheduler } from "effect"
import { WorkerContext } from "../src/index.js"
import { Countdown, now, quietLogs } from "./common.js"

export interface ContentionConfig {
  readonly callers: number
  readonly tasksPerCaller: number
  /** ms between two state flips (pause, then resume, then pause...). */
  readonly flipEveryMs: number
}

export interface ContentionResult {
  readonly config: ContentionConfig
  /** `callers × tasksPerCaller`. */
  readonly expected: number
  /** Tasks `track` admitted, and tasks that ended. */
  readonly admitted: number
  readonly ended: number
  /** `track` calls rejected: 0 (shutdown begins only once every caller is done). */
  readonly rejected: number
  /** State flips performed (each `pause` and each `resume` counts one). */
  readonly flips: number
  /** `track` calls made while the worker was `Paused` (they waited for `resume`). */
  readonly whilePaused: number
  /** The mean time between two flips while the callers ran, in ms: above `flipEveryMs` when the flipper waits for its turn. */
  readonly meanFlipIntervalMs: number
  /** ms from the first `track` to the last caller done, and to `stop` returning. */
  readonly callersMs: number
  readonly totalMs: number
  readonly tasksPerSecond: number
  /** The state once `stop` returned: `Stopped`. */
  readonly finalState: string
}

const microtaskScheduler = Scheduler.make((task) => queueMicrotask(task))

/** Runs benchmark 6 on a fresh context. */
export const contention = (config: ContentionConfig): Effect.Effect<ContentionResult> =>
  Effect.scoped(Effect.gen(function*() {
    const ctx = yield* WorkerContext.make({ name: "bench-contention" })
    yield* ctx.start
    const ended = new Countdown()
    const task = Effect.zipRight(Effect.yieldNow(), Effect.sync(ended.tick))
    let admitted = 0
    let rejected = 0
    let flips = 0
    let whilePaused = 0

    // The flipper polls the clock between yields instead of sleeping, and runs on a scheduler of its own that
    // always uses the microtask queue. While a thousand fibers keep that queue busy, a timer (`Effect.sleep`,
    // `setTimeout`) does not fire until they are all done; and Effect's default scheduler moves a fiber that has
    // yielded 2048 times in a row to `setTimeout`, where it would starve the same way.
    const flipper = yield* Effect.fork(Effect.withScheduler(
      Effect.gen(function*() {
        let last = now()
        while (true) {
          yield* Effect.yieldNow()
          if (now() - last < config.flipEveryMs) continue
          last = now()
          if ((yield* ctx.state) === "Paused") yield* ctx.resume
          else yield* ctx.pause
          flips++
        }
      }),
      microtaskScheduler
    ))
    const caller = Effect.gen(function*() {
      for (let i = 0; i < config.tasksPerCaller; i++) {
        if ((yield* ctx.state) === "Paused") whilePaused++
        const tracked = yield* Effect.either(ctx.track(task))
        if (tracked._tag === "Left") {
          rejected++
        } else {
          admitted++
          yield* tracked.right.await
        }
      }
    })

    const start = now()
    yield* Effect.forEach(Array.from({ length: config.callers }), () => caller, {
      concurrency: "unbounded",
      discard: true
    })
    const callersMs = now() - start
    yield* Fiber.interrupt(flipper)
    yield* Effect.ignore(ctx.resume)
    yield* ctx.stop
    const totalMs = now() - start
    return {
      config,
      expected: config.callers * config.tasksPerCaller,
      admitted,
      ended: ended.total,
      rejected,
      flips,
      whilePaused,
      meanFlipIntervalMs: flips === 0 ? Number.NaN : callersMs / flips,
      callersMs,
      totalMs,
      tasksPerSecond: admitted / (totalMs / 1000),
      finalState: yield* ctx.state
    }
  })).pipe(Effect.orDie, quietLogs)
