/**
 * The states of a `WorkerContext`: a leaf module, so that every other module can name them without importing the
 * service.
 *
 * @since 0.2.0
 */

/**
 * Where a worker is in its life: `Pending → Running ⇄ Paused → Stopping → Stopped`.
 *
 * - `Pending`: built, not started; `track` rejects.
 * - `Running`: `track` admits tasks at once.
 * - `Paused`: running tasks go on; new `track` calls wait for `resume` (or for shutdown, then reject), or are
 *   rejected at once when they ask for it (`whenPaused: "reject"`).
 * - `Stopping`: shutdown has begun; intake is closed, in-flight tasks drain until the deadline.
 * - `Stopped`: every task has ended; final.
 *
 * @example
 * ```ts
 * import type { WorkerState } from "effect-worker-context"
 *
 * const acceptsWork = (state: WorkerState) => state === "Running"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type WorkerState = "Pending" | "Running" | "Paused" | "Stopping" | "Stopped"
