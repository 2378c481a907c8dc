/**
 * The `WorkerContext` service: a worker's lifecycle, its tracked tasks, graceful shutdown and events.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import type * as LogLevel from "effect/LogLevel"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/workerContext.js"
import type { TaskRejected, WorkerStateError } from "./WorkerContextError.js"
import type { CustomEvent, WorkerEvent } from "./WorkerEvent.js"
import type { WorkerState } from "./WorkerState.js"

export type {
  /**
   * Where a worker is in its life; defined in `effect-worker-context/WorkerState`.
   *
   * @since 0.1.0
   */
  WorkerState
} from "./WorkerState.js"

/**
 * Options for {@link WorkerContext.make} and {@link WorkerContext.layer}. Every field is optional.
 *
 * An option that makes no sense (an empty `name`, a negative, `NaN` or unparsable `shutdownTimeout`, an
 * `eventBufferSize` that is not an integer from 1 to 65,536, a `shutdownSignal` that is not an Effect, a `logLevel`
 * that is not a log level) makes `make` die with an `IllegalArgumentException` that names it: it is a bug in the
 * program, not a condition to handle.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { WorkerContextOptions } from "effect-worker-context"
 *
 * const options: WorkerContextOptions = {
 *   name: "mailer",
 *   shutdownTimeout: "10 seconds",
 *   shutdownSignal: Effect.never,
 *   eventBufferSize: 256,
 *   logLevel: "Debug"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerContextOptions {
  /** The worker's name, carried by every event and error. Default `"worker"`. */
  readonly name?: string | undefined
  /**
   * How long shutdown waits for in-flight tasks before it interrupts them. Default `"30 seconds"` (the Kubernetes
   * grace period). `0` interrupts at once; `Duration.infinity` waits for ever. It also bounds how long the
   * closing scope waits for listeners to handle `Stopped`.
   */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /**
   * An effect whose completion begins shutdown, whether it succeeds or fails. It starts running before `make`
   * returns and runs until shutdown begins, when it is interrupted. Default: none.
   */
  readonly shutdownSignal?: Effect.Effect<unknown, unknown> | undefined
  /**
   * How many events a subscriber or listener may lag behind before its oldest ones are dropped: 1 to 65,536.
   * Default `1024`. The `subscribe`/`events` buffer is allocated at this size when the context is built; a
   * listener's buffer grows up to it as needed.
   */
  readonly eventBufferSize?: number | undefined
  /**
   * The level of the context's lifecycle log lines (each transition, the start and the end of a shutdown): a
   * `LogLevel` or its label. Default `"Info"`; `"None"` silences them. Warnings (the shutdown deadline passed, a
   * listener failed or was abandoned) stay at `Warning`.
   */
  readonly logLevel?: LogLevel.LogLevel | LogLevel.Literal | undefined
}

/**
 * Options for one `track` call.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkerContext } from "effect-worker-context"
 *
 * const program = Effect.gen(function*() {
 *   const ctx = yield* WorkerContext
 *   // answer "busy" instead of waiting while the worker is paused
 *   yield* ctx.track(Effect.log("resize image"), { label: "image", whenPaused: "reject" })
 * })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface TrackOptions {
  /**
   * A name for the kind of task, such as `"http"` or a job type: it is on `TaskStarted` and `TaskFinished`, on the
   * task's span (attribute `task.label`) and on the task metrics (tag `label`; unlabelled tasks keep the series
   * without it). Keep the set of labels small: each one is a metric series.
   */
  readonly label?: string | undefined
  /**
   * What `track` does while the worker is `Paused`: `"wait"` (the default) waits for `resume` (then admits) or
   * for shutdown (then rejects); `"reject"` fails at once with `TaskRejected { state: "Paused" }`, decided in the
   * same atomic step as the state check.
   */
  readonly whenPaused?: "wait" | "reject" | undefined
  /**
   * Services added to the task's own context, on top of the caller's (they win over the caller's for the same
   * tag): how a runner gives each task what only that task has, such as the job it runs (`Job.Current`). The task
   * gets a context of its own in any case, so adding services costs a few map writes, and nothing else sees them.
   * The task's requirements are not narrowed by it: provide the type with a cast, or use `Effect.provideService`.
   *
   * @since 0.3.0
   */
  readonly context?: Context.Context<never> | undefined
}

/**
 * The options a context runs with, as `make` resolved them: defaults filled in, durations decoded.
 *
 * @example
 * ```ts
 * import { Duration, Effect } from "effect"
 * import { WorkerContext } from "effect-worker-context"
 *
 * const grace = Effect.map(WorkerContext, (ctx) => Duration.toSeconds(ctx.options.shutdownTimeout))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ResolvedWorkerContextOptions {
  readonly name: string
  readonly shutdownTimeout: Duration.Duration
  /** Whether a `shutdownSignal` was given. */
  readonly hasShutdownSignal: boolean
  readonly eventBufferSize: number
  readonly logLevel: LogLevel.LogLevel
}

/**
 * A handle on a task admitted by `track`. The task's fiber belongs to the context, not to the caller of `track`:
 * interrupting that caller leaves the task running.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkerContext } from "effect-worker-context"
 *
 * const program = Effect.gen(function*() {
 *   const ctx = yield* WorkerContext
 *   yield* ctx.start
 *   const task = yield* ctx.track(Effect.succeed(42))
 *   const answer = yield* task.join // 42
 *   return `task ${task.id} answered ${answer}`
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Tracked<out A, out E> {
  /** The task's id: unique within its context and increasing in admission order, starting at 1. */
  readonly id: number
  /** The label given to `track`, if any. */
  readonly label: string | undefined
  /**
   * The fiber running the task. Wait for it with `join` or `await`, not `Fiber.join`: `Fiber.join` would merge the
   * task's fiber refs (its span, and the marker that makes a fiber count as inside the task) into the caller.
   */
  readonly fiber: Fiber.RuntimeFiber<A, E>
  /** Waits for the task to end and returns how it ended. Never fails. */
  readonly await: Effect.Effect<Exit.Exit<A, E>>
  /**
   * Waits for the task to end and returns its result, failing or dying as it did. Unlike `Fiber.join`, it does not
   * merge the task's fiber refs into the caller: the caller keeps its own span, annotations and context.
   */
  readonly join: Effect.Effect<A, E>
  /** Interrupts the task and waits until it (and its finalizers) ended. */
  readonly interrupt: Effect.Effect<void>
}

/**
 * A readiness check that is not ready: its name, why, and since when (the first `setUnready` since it was last
 * ready; a later `setUnready` updates the reason, not the time).
 *
 * @example
 * ```ts
 * import type { UnreadyCheck } from "effect-worker-context"
 *
 * const line = (c: UnreadyCheck) => `${c.check} unready since ${c.since.toISOString()}: ${c.reason}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface UnreadyCheck {
  readonly check: string
  readonly reason: string
  readonly since: Date
}

/**
 * Whether a worker should get work, and why not: what `readiness` returns and `GET /health/ready` answers from.
 * `ready` is true exactly when `state` is `Running` and `unready` is empty.
 *
 * @example
 * ```ts
 * import type { Readiness } from "effect-worker-context"
 *
 * const why = (r: Readiness) =>
 *   r.ready ? "ready" : r.unready.length === 0 ? r.state : r.unready.map((c) => c.reason).join("; ")
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Readiness {
  readonly ready: boolean
  readonly state: WorkerState
  /** The checks that are not ready, in the order they became so. */
  readonly unready: ReadonlyArray<UnreadyCheck>
}

/**
 * @since 0.2.0
 */
// A namespace merged with the tag class, as Effect's own modules do, so the shape reads `WorkerContext.Service`.
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace WorkerContext {
  /**
   * The worker context service: what `yield* WorkerContext` returns.
   *
   * Every lifecycle transition is one atomic step, so concurrent callers never see or cause a half-made change:
   * two concurrent `start` calls publish one `Started`; a `track` racing `stop` is either admitted before
   * `Stopping` (and then drained) or rejected, never admitted later and never lost.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { WorkerContext } from "effect-worker-context"
   *
   * const report = (ctx: WorkerContext.Service) =>
   *   Effect.map(ctx.taskCount, (n) => `${ctx.name}: ${n} task(s) in flight`)
   * ```
   *
   * @since 0.2.0
   * @category models
   */
  export interface Service {
    /** The worker's name, as given in the options (default `"worker"`). */
    readonly name: string
    /** The options the context runs with, defaults filled in. */
    readonly options: ResolvedWorkerContextOptions
    /** The current state. */
    readonly state: Effect.Effect<WorkerState>
    /**
     * The current state, then every change, in order; ends after `Stopped`. Each run of the stream starts with the
     * state at that moment; a subscriber that falls behind by more than `eventBufferSize` changes skips the oldest.
     */
    readonly stateChanges: Stream.Stream<WorkerState>
    /**
     * `Pending → Running`, publishing `Started`. A no-op while `Running`; fails with `WorkerStateError` in any
     * other state (a stopped worker is not restarted: make a new context).
     */
    readonly start: Effect.Effect<void, WorkerStateError>
    /**
     * `Running → Paused`, publishing `Paused`. Tasks already running go on; new `track` calls wait (or are
     * rejected, with `whenPaused: "reject"`). A no-op while `Paused`; fails with `WorkerStateError` while
     * `Pending`, `Stopping` or `Stopped`.
     */
    readonly pause: Effect.Effect<void, WorkerStateError>
    /**
     * `Paused → Running`, publishing `Resumed` and admitting the `track` calls that were waiting. A no-op while
     * `Running`; fails with `WorkerStateError` while `Pending`, `Stopping` or `Stopped`.
     */
    readonly resume: Effect.Effect<void, WorkerStateError>
    /**
     * Shuts the worker down and waits until it is `Stopped`: closes intake (`Stopping`), gives in-flight tasks
     * `shutdownTimeout` to finish, interrupts the rest and waits for their finalizers, then publishes
     * `Stopped { interrupted }`. Idempotent: later and concurrent callers wait for the same shutdown. Shutdown
     * begins in the call's first step and its deadline runs on the context's own fiber, so interrupting a caller
     * of `stop` does not cancel it. Called from inside a task of this context (or a fiber such a task forked), it
     * begins shutdown and returns at once instead of waiting for itself.
     */
    readonly stop: Effect.Effect<void>
    /**
     * Begins shutdown, as `stop` does, and returns at once without waiting for it: when it returns the worker is
     * `Stopping` (or already `Stopped`). Wait for the end with `awaitShutdown`.
     */
    readonly requestStop: Effect.Effect<void>
    /**
     * Admits `effect` as a task and forks it into the context's own fiber set; returns a handle at once.
     *
     * - `Running`: the count goes up before the effect starts and down when it ends, however it ends.
     * - `Paused`: waits for `resume` (then admits) or for shutdown (then fails with `TaskRejected`); with
     *   `whenPaused: "reject"`, fails at once with `TaskRejected { state: "Paused" }`.
     * - `Pending`, `Stopping`, `Stopped`: fails at once with `TaskRejected`; the effect never runs.
     *
     * The task runs with the caller's services and fiber refs, except that `yield* WorkerContext` inside it is
     * always this context (so `track` does not require `WorkerContext`). It is interruptible even when `track` is
     * called from an uninterruptible region (so shutdown can cut it off), and outlives the caller. Its failure is
     * its own: it shows in the handle, in `TaskFinished`, never in the worker's state. A fiber that admits 384
     * tasks in one run is yielded once after the 384th, so the tasks it admitted can start.
     */
    readonly track: <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      options?: TrackOptions | undefined
    ) => Effect.Effect<Tracked<A, E>, TaskRejected, Exclude<R, WorkerContext>>
    /** How many admitted tasks have not ended yet: the size of the context's task fiber set. */
    readonly taskCount: Effect.Effect<number>
    /** Whether any admitted task has not ended yet. */
    readonly hasPendingTasks: Effect.Effect<boolean>
    /** Whether shutdown has begun: true exactly in `Stopping` and `Stopped` (not in `Paused`). */
    readonly isShuttingDown: Effect.Effect<boolean>
    /**
     * Waits until the worker is `Stopped`; any number of fibers may wait. Called from inside a task of this
     * context (or a fiber such a task forked) it dies at once, since it would wait for itself for ever.
     */
    readonly awaitShutdown: Effect.Effect<void>
    /** Waits until shutdown has begun (`Stopping`): the moment to stop taking new work. */
    readonly shutdownRequested: Effect.Effect<void>
    /**
     * Publishes a `Custom` event to every subscriber and listener, stamped with this context's name. Dropped when
     * nobody listens or once `Stopped` was published (it is the last event). Anything but a `Custom` event (the
     * other variants belong to the context) is a defect with a message that says so.
     */
    readonly emit: (event: CustomEvent) => Effect.Effect<void>
    /**
     * Subscribes to the events published from now on, for the life of the given scope (not the context's: the
     * queue stays readable after the context's scope has closed). A subscriber that falls `eventBufferSize` events
     * behind loses its oldest ones; the worker never waits for it. `Stopped` is the last event ever published: stop
     * taking once you see it (the `events` stream does so for you).
     */
    readonly subscribe: Effect.Effect<Queue.Dequeue<WorkerEvent>, never, Scope.Scope>
    /**
     * The events published from the moment the stream starts running (not when it is created), in order; ends
     * after `Stopped` (at once if the worker is already stopped).
     */
    readonly events: Stream.Stream<WorkerEvent>
    /**
     * Attaches `handler` for the context's lifetime: it sees every event published after `listen` returns, in
     * order, through `Stopped`, on a fiber of the context's listener set. A handler that falls `eventBufferSize`
     * events behind loses its oldest ones; one that fails or dies is logged (as a warning annotated with `worker`)
     * and keeps receiving events; the handler's own logs are not annotated. The handler runs with the services and
     * fiber refs of the fiber that built the context, whoever calls `listen`. Closing the context's scope waits, up
     * to `shutdownTimeout`, until every handler has handled `Stopped`; a handler still busy then is interrupted,
     * and one that does not end within a second of that is abandoned (and logged), so the close always ends.
     */
    readonly listen: (handler: (event: WorkerEvent) => Effect.Effect<unknown, unknown>) => Effect.Effect<void>
    /**
     * Says that `check` (a dependency's name, such as `"job store"`) is not ready, and why: `readiness` is not
     * ready until `setReady(check)`. Synchronous and cheap: call it on every failure. It does not change the state,
     * stop intake or affect tasks; it is what readiness probes report. The call that makes a ready check unready logs
     * a warning (annotated with `worker`) and publishes a `Custom` event whose value is a `ReadinessChanged`; a
     * call on a check that is already unready only updates its reason, silently. An empty `check` is a defect.
     *
     * @example
     * ```ts
     * import { Effect } from "effect"
     * import { WorkerContext } from "effect-worker-context"
     *
     * const ping = (ok: boolean) =>
     *   Effect.gen(function*() {
     *     const ctx = yield* WorkerContext
     *     yield* (ok ? ctx.setReady("cache") : ctx.setUnready("cache", "redis: connection refused"))
     *   })
     * ```
     */
    readonly setUnready: (check: string, reason: string) => Effect.Effect<void>
    /**
     * Says that `check` is ready again. A no-op for a check that is ready (or was never named). The call that makes an
     * unready check ready logs it at the context's `logLevel` and publishes a `ReadinessChanged` event.
     *
     * @example
     * ```ts
     * import { Effect } from "effect"
     * import { WorkerContext } from "effect-worker-context"
     *
     * const recovered = Effect.flatMap(WorkerContext, (ctx) => ctx.setReady("cache"))
     * ```
     */
    readonly setReady: (check: string) => Effect.Effect<void>
    /**
     * Whether the worker should get work now: ready when `Running` and no check is unready, with the state and the
     * unready checks (their reasons and since when), read in one step.
     *
     * @example
     * ```ts
     * import { Effect } from "effect"
     * import { WorkerContext } from "effect-worker-context"
     *
     * const probe = Effect.gen(function*() {
     *   const { ready, state, unready } = yield* (yield* WorkerContext).readiness
     *   return ready ? "ok" : `${state}: ${unready.map((c) => `${c.check}: ${c.reason}`).join(", ")}`
     * })
     * ```
     */
    readonly readiness: Effect.Effect<Readiness>
  }
}

/**
 * The worker context service tag. Get the service with `yield* WorkerContext`; provide it with
 * {@link WorkerContextLive}, {@link WorkerContext.layer} or, for programs that run several workers,
 * {@link WorkerContext.make}. Inside a task it tracked, `yield* WorkerContext` is always that context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkerContext, WorkerContextLive } from "effect-worker-context"
 *
 * const program = Effect.gen(function*() {
 *   const ctx = yield* WorkerContext
 *   yield* ctx.start
 *   for (let job = 1; job <= 3; job++) {
 *     yield* ctx.track(Effect.log(`processing job ${job}`))
 *   }
 *   yield* ctx.stop // waits for the three jobs
 * })
 *
 * Effect.runPromise(program.pipe(Effect.provide(WorkerContextLive)))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class WorkerContext extends Context.Tag(internal.tagKey)<
  WorkerContext,
  WorkerContext.Service
>() {
  /**
   * Builds a worker context in the current scope. Closing the scope shuts the worker down gracefully, as `stop`
   * does, then waits (up to `shutdownTimeout`) for listeners to handle `Stopped`, then closes their fiber set.
   * The event hub is never shut down: a subscriber that has not read `Stopped` yet still gets it. Interrupting
   * `make` half-way leaves nothing running.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { WorkerContext } from "effect-worker-context"
   *
   * const program = Effect.scoped(Effect.gen(function*() {
   *   const images = yield* WorkerContext.make({ name: "images" })
   *   const emails = yield* WorkerContext.make({ name: "emails", shutdownTimeout: "5 seconds" })
   *   yield* images.start
   *   yield* emails.start
   * }))
   * ```
   *
   * @since 0.1.0
   */
  static make(options?: WorkerContextOptions): Effect.Effect<WorkerContext.Service, never, Scope.Scope> {
    return internal.make(options)
  }

  /**
   * A layer that builds a worker context with the given options and shuts it down when the layer is released.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { WorkerContext } from "effect-worker-context"
   *
   * const WorkerLive = WorkerContext.layer({ name: "mailer", shutdownTimeout: "10 seconds" })
   *
   * const program = Effect.gen(function*() {
   *   const ctx = yield* WorkerContext
   *   yield* ctx.start
   * }).pipe(Effect.provide(WorkerLive))
   * ```
   *
   * @since 0.1.0
   */
  static layer(options?: WorkerContextOptions): Layer.Layer<WorkerContext> {
    return Layer.scoped(WorkerContext, internal.make(options))
  }
}

/**
 * `WorkerContext.layer()` with the default options: name `"worker"`, 30 s shutdown timeout, no shutdown signal,
 * 1024 events of buffer, lifecycle logs at `Info`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkerContext, WorkerContextLive } from "effect-worker-context"
 *
 * const main = Effect.gen(function*() {
 *   const ctx = yield* WorkerContext
 *   yield* ctx.start
 *   yield* ctx.track(Effect.log("hello from a tracked task"))
 * }).pipe(Effect.provide(WorkerContextLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const WorkerContextLive: Layer.Layer<WorkerContext> = WorkerContext.layer()
