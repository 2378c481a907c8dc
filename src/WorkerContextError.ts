/**
 * The typed errors of a `WorkerContext`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type { WorkerState } from "./WorkerState.js"

/**
 * An operation that the worker's current state does not allow: `pause` while `Pending`, `start` while `Paused`,
 * `start`, `pause` or `resume` once shutdown has begun. Calls whose target state already holds are no-ops, not
 * errors.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkerContext } from "effect-worker-context"
 *
 * const program = Effect.gen(function*() {
 *   const ctx = yield* WorkerContext
 *   yield* ctx.pause.pipe(
 *     Effect.catchTag("WorkerStateError", (e) => Effect.logWarning(`cannot ${e.operation} while ${e.state}`))
 *   )
 * })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class WorkerStateError extends Data.TaggedError("WorkerStateError")<{
  readonly worker: string
  readonly operation: "start" | "pause" | "resume"
  readonly state: WorkerState
}> {
  override get message(): string {
    return `Worker "${this.worker}" cannot ${this.operation} while ${this.state}`
  }
}

/**
 * `track` refused a task: the worker is `Pending` (not started yet), or shutdown has begun (`Stopping`,
 * `Stopped`), including for callers that were waiting in a paused worker when shutdown began, or it is `Paused`
 * and the call asked not to wait (`whenPaused: "reject"`). The task's effect never ran.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkerContext } from "effect-worker-context"
 *
 * const submit = (job: Effect.Effect<void>) =>
 *   Effect.gen(function*() {
 *     const ctx = yield* WorkerContext
 *     return yield* ctx.track(job)
 *   }).pipe(Effect.catchTag("TaskRejected", (e) => Effect.logWarning(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskRejected extends Data.TaggedError("TaskRejected")<{
  readonly worker: string
  readonly state: WorkerState
}> {
  override get message(): string {
    return this.state === "Pending"
      ? `Worker "${this.worker}" rejected a task: it has not been started`
      : this.state === "Paused"
      ? `Worker "${this.worker}" rejected a task: it is paused`
      : `Worker "${this.worker}" rejected a task: shutdown has begun (${this.state})`
  }
}
