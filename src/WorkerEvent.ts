/**
 * Events a `WorkerContext` publishes: lifecycle transitions, task admission and completion, and custom
 * events of your own.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"

/**
 * How a tracked task ended: `"success"`, `"failure"` (a typed failure or a defect) or `"interrupted"`.
 *
 * @example
 * ```ts
 * import type { TaskOutcome } from "effect-worker-context/WorkerEvent"
 *
 * const isBad = (outcome: TaskOutcome) => outcome === "failure"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TaskOutcome = "success" | "failure" | "interrupted"

/**
 * An event published by a `WorkerContext`. Every variant carries `worker`, the context's name.
 *
 * - `Started`, `Paused`, `Resumed`, `Stopping`, `Stopped`: one per lifecycle transition. `Stopped` is the last
 *   event a context ever publishes, and `interrupted` counts the tasks shutdown cut off at its deadline.
 * - `Idle`: the task count dropped to zero while the worker was `Running` or `Paused`.
 * - `TaskStarted` / `TaskFinished`: a task was admitted by `track` / ended, with its outcome. Both carry the
 *   task's `label` when `track` was given one; `TaskFinished` carries the task's `cause` when it did not succeed
 *   (a failure, a defect or an interruption), so a listener can say why.
 * - `Custom`: published by `WorkerContext.emit`, and by the context itself when a readiness check flips (its
 *   `value` is then a {@link ReadinessChanged}).
 *
 * `WorkerEvent` is also a value with one constructor per variant, plus `$is` and `$match`.
 *
 * @example
 * ```ts
 * import { WorkerEvent } from "effect-worker-context/WorkerEvent"
 *
 * const event = WorkerEvent.Custom({ worker: "mailer", value: { sent: 3 } })
 * const text = WorkerEvent.$match(event, {
 *   Started: () => "started",
 *   Paused: () => "paused",
 *   Resumed: () => "resumed",
 *   Stopping: () => "stopping",
 *   Stopped: ({ interrupted }) => `stopped, ${interrupted} cut off`,
 *   Idle: () => "idle",
 *   TaskStarted: ({ taskId }) => `task ${taskId} started`,
 *   TaskFinished: ({ outcome, taskId }) => `task ${taskId}: ${outcome}`,
 *   Custom: ({ value }) => JSON.stringify(value)
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type WorkerEvent = Data.TaggedEnum<{
  Started: { readonly worker: string }
  Paused: { readonly worker: string }
  Resumed: { readonly worker: string }
  Stopping: { readonly worker: string }
  Stopped: { readonly worker: string; readonly interrupted: number }
  Idle: { readonly worker: string }
  TaskStarted: { readonly worker: string; readonly taskId: number; readonly label?: string | undefined }
  TaskFinished: {
    readonly worker: string
    readonly taskId: number
    readonly label?: string | undefined
    readonly outcome: TaskOutcome
    readonly cause?: Cause.Cause<unknown> | undefined
  }
  Custom: { readonly worker: string; readonly value: unknown }
}>

/**
 * The one variant a program may publish itself, with `WorkerContext`'s `emit`.
 *
 * @example
 * ```ts
 * import { WorkerEvent, type CustomEvent } from "effect-worker-context/WorkerEvent"
 *
 * const progress: CustomEvent = WorkerEvent.Custom({ worker: "mailer", value: { sent: 3 } })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type CustomEvent = Data.TaggedEnum.Value<WorkerEvent, "Custom">

/**
 * The `value` of the `Custom` event a context publishes when one of its readiness checks flips: `setUnready` on a
 * check that was ready (`ready: false`, with the `reason`), `setReady` on one that was not (`ready: true`). A call
 * that changes nothing (the check is already in that condition, or only its reason changed) publishes nothing. Tell
 * it from other custom events with {@link isReadinessChanged}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkerContext, isReadinessChanged } from "effect-worker-context"
 *
 * const logReadiness = Effect.gen(function*() {
 *   const ctx = yield* WorkerContext
 *   yield* ctx.listen((event) =>
 *     event._tag === "Custom" && isReadinessChanged(event.value)
 *       ? Effect.log(`${event.value.check}: ${event.value.ready ? "ready" : `unready (${event.value.reason})`}`)
 *       : Effect.void
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ReadinessChanged {
  readonly _tag: "ReadinessChanged"
  /** The check's name, as given to `setUnready` / `setReady`. */
  readonly check: string
  /** Whether the check is ready now. */
  readonly ready: boolean
  /** Why the check is not ready: set when `ready` is false. */
  readonly reason?: string | undefined
}

/**
 * Whether `u` is a {@link ReadinessChanged}: use it on the `value` of a `Custom` event.
 *
 * @example
 * ```ts
 * import { WorkerEvent, isReadinessChanged } from "effect-worker-context/WorkerEvent"
 *
 * const event = WorkerEvent.Custom({ worker: "mailer", value: { sent: 3 } })
 * const flipped = isReadinessChanged(event.value) // false
 * ```
 *
 * @since 0.2.0
 * @category guards
 */
export const isReadinessChanged = (u: unknown): u is ReadinessChanged =>
  typeof u === "object" && u !== null && (u as { readonly _tag?: unknown })._tag === "ReadinessChanged" &&
  typeof (u as { readonly check?: unknown }).check === "string" &&
  typeof (u as { readonly ready?: unknown }).ready === "boolean"

/**
 * Constructors, guards (`$is`) and exhaustive matching (`$match`) for {@link WorkerEvent}.
 *
 * @example
 * ```ts
 * import { WorkerEvent } from "effect-worker-context/WorkerEvent"
 *
 * const stopped = WorkerEvent.Stopped({ worker: "mailer", interrupted: 0 })
 * const isStopped = WorkerEvent.$is("Stopped")(stopped) // true
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const WorkerEvent = Data.taggedEnum<WorkerEvent>()

/**
 * Exhaustive matching on a {@link WorkerEvent}, data-first or data-last.
 *
 * @example
 * ```ts
 * import { WorkerEvent, match } from "effect-worker-context/WorkerEvent"
 *
 * const label = match(WorkerEvent.Idle({ worker: "mailer" }), {
 *   Started: () => "up",
 *   Paused: () => "paused",
 *   Resumed: () => "up",
 *   Stopping: () => "going down",
 *   Stopped: () => "down",
 *   Idle: () => "idle",
 *   TaskStarted: () => "busy",
 *   TaskFinished: () => "busy",
 *   Custom: () => "custom"
 * })
 * ```
 *
 * @since 0.1.0
 * @category pattern matching
 */
export const match = WorkerEvent.$match
