/**
 * The job runner: a worker that claims jobs from a `JobStore`, runs each one as a task of a `WorkerContext`, and
 * acknowledges how it ended (apalis's `Worker` over a `Backend`). The context gives it its lifecycle: it claims
 * only while `Running`, stops claiming in the step that begins shutdown, drains the jobs in flight within the
 * context's `shutdownTimeout`, and gives back (attempt refunded) the jobs the deadline cut off.
 *
 * Jobs run at least once, never concurrently with a live lease of themselves: a lease is renewed while its job
 * runs, a job whose lease could lapse is stopped before it does, and a job whose lease was lost is interrupted and
 * its result discarded. See `docs/design.md` for the engine's parts.
 *
 * @since 0.2.0
 */
import type * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as MetricBoundaries from "effect/MetricBoundaries"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/jobWorker/index.js"
import type * as Job from "./Job.js"
import type { JobStore } from "./JobStore.js"
import type { WorkerContext } from "./WorkerContext.js"

/**
 * Options of {@link layer} and {@link make}. Only `handlers` is required.
 *
 * An option that makes no sense (no handlers, two handlers for one job name, a `concurrency` that is not an integer
 * of 1 or more, a `lease`, `pollInterval`, `reapInterval` or `storeTimeout` that is negative, zero, infinite or
 * unparsable, an empty
 * `queues` or `workerId`, an `autoStart` that is not a boolean, two `schedules` of one name) makes the layer die with an
 * `IllegalArgumentException` that names it: it is a bug in the program, not a condition to handle.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job, type JobWorker } from "effect-worker-context"
 *
 * const SendEmail = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
 *
 * const options: JobWorker.Options<never> = {
 *   handlers: [SendEmail.handler(({ to }) => Effect.log(`sending to ${to}`))],
 *   concurrency: 20,
 *   lease: "1 minute",
 *   pollInterval: "5 seconds"
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options<R> {
  /** One handler per job type the worker runs: at least one, at most one per job name. */
  readonly handlers: ReadonlyArray<Job.JobHandler<R>>
  /** At most this many jobs run at once. Default `10`. */
  readonly concurrency?: number | undefined
  /**
   * How many jobs the worker claims ahead of its free slots, to wait in the worker until a slot frees. Default `0`:
   * a claim asks for the free slots only. With many short jobs and a store a round trip away (PostgreSQL), a
   * prefetch of a few hundred makes each claim fetch a batch and lets a finished job's slot go to the next job at
   * once, without waiting for a claim. The jobs claimed ahead hold a lease (renewed with the others) that other
   * workers cannot take, their attempt counted; they are given back, attempt refunded, when the worker is paused
   * or shuts down, and their timeout starts only when they start. With a prefetch, a job whose handler has ended
   * also gives its slot to the next job while its outcome is being acknowledged (it keeps its lease until the store
   * took the outcome), so the pace is the handlers', not one store round trip per slot; the worker then holds at
   * most `concurrency + prefetch` leases. Keep it at `0` for long jobs, where fetching ahead only keeps jobs from
   * idle workers.
   */
  readonly prefetch?: number | undefined
  /**
   * How long a claimed job's lease holds unless renewed. Default `"30 seconds"`. While the job runs, the worker
   * renews every lease it holds every `lease / 3`, in one `renew` call for all of them.
   */
  readonly lease?: Duration.DurationInput | undefined
  /**
   * How often the worker claims when nothing woke it. Default `"2 seconds"`. The store's `wakeups` are the fast
   * path; the poll is the backstop (for jobs that became ready by their `runAt`, and for stores that cannot wake).
   */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** How often the worker asks the store to `reap` expired leases. Default: `lease / 2`. */
  readonly reapInterval?: Duration.DurationInput | undefined
  /** Whether building the layer starts the context (a no-op when it is `Running`). Default `true`. */
  readonly autoStart?: boolean | undefined
  /** The queues to claim from. Default: the handlers' queues. */
  readonly queues?: ReadonlyArray<string> | undefined
  /** Who claims, in the store's records (`ClaimRequest.worker`). Default: the context's name, a dash, random hex. */
  readonly workerId?: string | undefined
  /**
   * The deadline of every call the worker makes to the store (claim, renew, settle, reap, wake-up subscription,
   * stats). Default `"10 seconds"`. A call with no answer by then is given up at once (the PostgreSQL store destroys
   * its connection) and counts as failed: the worker is unready, and the call is tried again as a failed one is.
   * Renewals get at most `lease / 3`.
   */
  readonly storeTimeout?: Duration.DurationInput | undefined
  /**
   * Recurring schedules (`job.schedule(cron, payload)`) this worker offers the slots of: each slot is enqueued once
   * across every worker of the store, whichever offers it first, so give the same list to each (or to some: one
   * worker that runs is enough). A schedule needs no handler on the worker that offers it. At most one per name.
   */
  readonly schedules?: ReadonlyArray<Job.JobSchedule> | undefined
}

/**
 * What a running job worker tells about itself: returned by {@link make}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { JobWorker } from "effect-worker-context"
 *
 * const report = (worker: JobWorker.JobWorker) =>
 *   Effect.map(worker.leased, (n) => `${worker.workerId}: ${n} of ${worker.concurrency} slots taken`)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface JobWorker {
  /** The id the worker claims under (`ClaimRequest.worker`). */
  readonly workerId: string
  /** The most jobs it runs at once. */
  readonly concurrency: number
  /** The queues it claims from. */
  readonly queues: ReadonlyArray<string>
  /** How many jobs it holds a lease on: claimed, and not yet completed, retried, dead-lettered, released or lost. */
  readonly leased: Effect.Effect<number>
  /**
   * How many jobs take a slot: the leased ones, those whose lease was lost while their task has not ended yet, and
   * those the worker stopped because it could not renew their lease, until that lease has surely lapsed. Never more
   * than `concurrency`: the worker claims only for the slots left (plus `prefetch`), so the store never counts
   * more leases of it than `concurrency + prefetch`. With a `prefetch`, jobs waiting for a slot and jobs whose
   * outcome is being acknowledged hold a lease but no slot.
   */
  readonly inFlight: Effect.Effect<number>
}

/**
 * What a job worker publishes about the jobs it runs, as the `value` of a `WorkerEvent.Custom` event of its
 * context (`ctx.emit`): `ctx.listen`, `ctx.events` and `ctx.subscribe` see them. Tell them from other custom events
 * with {@link isJobEvent}. Every variant names the job (`id`, `name`, `queue`) and the attempt (1-based; 0 in `JobScheduled`, which comes
 * before any).
 *
 * - `JobClaimed`: the worker claimed the job (one per claimed job, before it starts).
 * - `JobSucceeded`: the handler succeeded and the store deleted the job; `durationMs` is the handler's run time.
 * - `JobRetried`: the attempt failed; the job runs again in `delayMs`.
 * - `JobDeadLettered`: the job failed for the last time (or fatally, or its payload no longer decodes), or the store
 *   buried it because its lease expired on its last attempt (`error: "lease expired"`).
 * - `JobTimedOut`: the attempt ran past the job type's timeout and was interrupted (then `JobRetried` or
 *   `JobDeadLettered` follows).
 * - `JobLeaseLost`: the lease no longer holds (it lapsed and the job was claimed again or reaped, or the store
 *   refused the outcome for it), or the worker could not renew it and stopped the job before it would lapse: the
 *   worker interrupted the job (if it still ran) and discarded its outcome. The attempt stays counted.
 * - `JobReleased`: the worker gave the job back unfinished (shutdown, or a pause between claim and start); with
 *   `refunded`, its attempt does not count.
 * - `JobSnoozed`: the handler asked to run again later (`Job.snooze`): the job waits `delayMs`, and this attempt
 *   does not count.
 * - `JobScheduled`: this worker enqueued the job `id` for the `slot` of the recurring schedule `schedule`
 *   (`attempt` 0: it has not run yet). The worker whose offer took the slot publishes it; the others nothing.
 * - `JobCancelled`: the job was cancelled (`JobStore.cancel`) while this worker held it: the worker interrupted its
 *   handler (if it had started) and discarded its outcome. A job cancelled while it waited is evented by nobody:
 *   no worker held it.
 *
 * @example
 * ```ts
 * import { JobWorker } from "effect-worker-context"
 *
 * const line = (event: JobWorker.JobEvent) =>
 *   JobWorker.JobEvent.$match(event, {
 *     JobClaimed: ({ attempt, id }) => `claimed ${id} (attempt ${attempt})`,
 *     JobSucceeded: ({ durationMs, id }) => `${id} done in ${durationMs} ms`,
 *     JobRetried: ({ delayMs, error, id }) => `${id} failed (${error}), again in ${delayMs} ms`,
 *     JobDeadLettered: ({ error, id }) => `${id} is dead: ${error}`,
 *     JobTimedOut: ({ id, timeoutMs }) => `${id} timed out after ${timeoutMs} ms`,
 *     JobLeaseLost: ({ id }) => `${id}: lease lost`,
 *     JobReleased: ({ id, refunded }) => `${id} released${refunded ? ", attempt refunded" : ""}`,
 *     JobSnoozed: ({ delayMs, id }) => `${id} snoozed for ${delayMs} ms`,
 *     JobScheduled: ({ id, schedule, slot }) => `${schedule}: ${id} for ${slot.toISOString()}`,
 *     JobCancelled: ({ id }) => `${id} cancelled`
 *   })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type JobEvent = Data.TaggedEnum<{
  JobClaimed: JobRef
  JobSucceeded: JobRef & { readonly durationMs: number }
  JobRetried: JobRef & { readonly delayMs: number; readonly error: string }
  JobDeadLettered: JobRef & { readonly error: string }
  JobTimedOut: JobRef & { readonly timeoutMs: number }
  JobLeaseLost: JobRef
  JobReleased: JobRef & { readonly refunded: boolean }
  JobSnoozed: JobRef & { readonly delayMs: number }
  JobScheduled: JobRef & { readonly schedule: string; readonly slot: Date }
  JobCancelled: JobRef
}>

/**
 * The fields every {@link JobEvent} carries.
 *
 * @example
 * ```ts
 * import type { JobWorker } from "effect-worker-context"
 *
 * const key = (ref: JobWorker.JobRef) => `${ref.queue}/${ref.name}/${ref.id}#${ref.attempt}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface JobRef {
  readonly id: string
  readonly name: string
  readonly queue: string
  /** The attempt, 1-based, as the store counted it at the claim. */
  readonly attempt: number
}

/**
 * Constructors, guards (`$is`) and exhaustive matching (`$match`) for {@link JobEvent}.
 *
 * @example
 * ```ts
 * import { JobWorker } from "effect-worker-context"
 *
 * const event = JobWorker.JobEvent.JobClaimed({ id: "1", name: "send-email", queue: "emails", attempt: 1 })
 * const claimed = JobWorker.JobEvent.$is("JobClaimed")(event) // true
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const JobEvent: Data.TaggedEnum.Constructor<JobEvent> = internal.JobEvent

/**
 * Whether `u` is a {@link JobEvent}: use it on the `value` of a `WorkerEvent.Custom` event.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobWorker, WorkerContext } from "effect-worker-context"
 *
 * const logJobEvents = Effect.gen(function*() {
 *   const ctx = yield* WorkerContext
 *   yield* ctx.listen((event) =>
 *     event._tag === "Custom" && JobWorker.isJobEvent(event.value)
 *       ? Effect.log(`${event.value._tag} ${event.value.name} ${event.value.id}`)
 *       : Effect.void
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category guards
 */
export const isJobEvent: (u: unknown) => u is JobEvent = internal.isJobEvent

/**
 * The metrics of one job worker name and one queue. Names, as Prometheus shows them once exported (counters get
 * `_total`):
 *
 * | metric | type | meaning |
 * |---|---|---|
 * | `effect_worker_jobs_claimed` | counter | jobs claimed |
 * | `effect_worker_jobs_succeeded` | counter | jobs completed (deleted from the store) |
 * | `effect_worker_jobs_retried` | counter | failed attempts scheduled to run again |
 * | `effect_worker_jobs_dead_lettered` | counter | jobs moved to the dead letters |
 * | `effect_worker_jobs_released` | counter | jobs given back unfinished |
 * | `effect_worker_jobs_timed_out` | counter | attempts cut off by the job type's timeout |
 * | `effect_worker_jobs_lease_lost` | counter | jobs whose lease was lost while the worker held them |
 * | `effect_worker_jobs_cancelled` | counter | jobs cancelled while the worker held them |
 * | `effect_worker_job_duration_seconds` | histogram | handler run time, per attempt |
 * | `effect_worker_job_wait_seconds` | histogram | from the job's `runAt` to the start of the attempt |
 *
 * Every metric has the tags `worker` (the context's name) and `queue`, in its key.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { JobWorker } from "effect-worker-context"
 *
 * const sent = Metric.value(JobWorker.metrics("mailer", "emails").jobsSucceeded)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface JobMetrics {
  readonly jobsClaimed: Metric.Metric.Counter<number>
  readonly jobsSucceeded: Metric.Metric.Counter<number>
  readonly jobsRetried: Metric.Metric.Counter<number>
  readonly jobsDeadLettered: Metric.Metric.Counter<number>
  readonly jobsReleased: Metric.Metric.Counter<number>
  readonly jobsSnoozed: Metric.Metric.Counter<number>
  readonly jobsTimedOut: Metric.Metric.Counter<number>
  readonly jobsLeaseLost: Metric.Metric.Counter<number>
  readonly jobsCancelled: Metric.Metric.Counter<number>
  readonly jobDuration: Metric.Metric.Histogram<number>
  readonly jobWait: Metric.Metric.Histogram<number>
}

/**
 * The metrics of the job workers of the context named `worker`, for the jobs of `queue`. Metrics are looked up by
 * name and tags, so calling this twice returns metrics that read and write the same values.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { JobWorker } from "effect-worker-context"
 *
 * const deadEmails = Metric.value(JobWorker.metrics("mailer", "emails").jobsDeadLettered).pipe(
 *   Effect.map((counter) => counter.count)
 * )
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const metrics: (worker: string, queue: string) => JobMetrics = internal.metrics

/**
 * Bucket boundaries of `effect_worker_job_wait_seconds`: 1 ms, doubling, to about 1.2 hours (2^22 ms), then `+Inf`.
 * `effect_worker_job_duration_seconds` uses the task durations' (`WorkerMetrics.taskDurationBoundaries`).
 *
 * @example
 * ```ts
 * import { JobWorker } from "effect-worker-context"
 *
 * console.log(JobWorker.jobWaitBoundaries.values[0]) // 0.001
 * ```
 *
 * @since 0.2.0
 * @category constants
 */
export const jobWaitBoundaries: MetricBoundaries.MetricBoundaries = internal.jobWaitBoundaries

/**
 * Starts a job worker in the current scope, on the `WorkerContext` and `JobStore` of the environment, and returns
 * what it tells about itself. See {@link layer} for how it behaves.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job, JobWorker } from "effect-worker-context"
 *
 * const Ping = Job.make("ping", { payload: Schema.Struct({}) })
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const worker = yield* JobWorker.make({ handlers: [Ping.handler(() => Effect.log("pong"))] })
 *   yield* Effect.log(`claiming as ${worker.workerId}`)
 * }))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: <R>(
  options: Options<R>
) => Effect.Effect<JobWorker, never, Scope.Scope | JobStore | WorkerContext | Exclude<R, Job.Current>> = internal.make

/**
 * A layer that runs a job worker for as long as it lives.
 *
 * - **Claiming.** It claims only while the context is `Running`, only as many jobs as it has free slots
 *   (`concurrency` minus the jobs it holds), from the handlers' queues (or `queues`), and starts them in the order
 *   the store returned them, each as a task: `ctx.track(job, { label: job.name, whenPaused: "reject" })`, so task
 *   counts, events, metrics, readiness and the HTTP control routes apply. It claims when the store wakes it for one
 *   of its queues, when a slot frees up after a claim that filled every slot, on `resume`, and every
 *   `pollInterval`. `pause` stops claiming at once; the jobs in flight go on. A job claimed just as the context
 *   left `Running` (or refused by `track`) is released at once, its attempt refunded, and the worker claims again
 *   only at the next poll or `resume`.
 * - **Running a job.** The payload is decoded with the job type's schema (a payload that no longer decodes goes to
 *   the dead letters at once), and the handler runs, on a fiber of its own that the task waits for, with
 *   `Job.Current` (given to the task with `track`'s `context` option), under the job type's timeout. Success
 *   completes the job; `Job.Fatal` dead-letters it at once, as does a handler that returns something else than an
 *   Effect (a Promise, say); any other failure, a defect or the timeout ends the attempt: the job is retried after
 *   the delay its retry schedule gives (clamped to 100 years), or dead-lettered with the last error when the
 *   schedule ended or it had `maxAttempts` attempts. A timeout (or the shutdown deadline) interrupts the handler only
 *   while it is interruptible: a handler that succeeds inside an uninterruptible region is completed, once. The
 *   outcome goes to the store in a batch with the others (one `settle` call), its event published once the store
 *   took it; the job keeps its slot until then. The task ends as the attempt did (a failure shows in `TaskFinished`
 *   and the task metrics); while the context runs it ends once the outcome is handed on, during shutdown once the
 *   store took it. Timeouts are kept by one watcher fiber per distinct timeout, not by a timer per attempt.
 * - **Leases.** Every `lease / 3` one `renew` call extends every lease the worker holds. A job whose lease was lost
 *   (it expired and the job was claimed again or reaped) is interrupted and its outcome discarded; an outcome the
 *   store refuses because the lease no longer held changes nothing (`JobLeaseLost`). Whatever the renewals do (fail,
 *   hang, answer late), the worker stops each job a tenth of the lease (at most 5 s) before its lease could lapse,
 *   by its own clock (counted from when the claim or the last successful renewal was sent): once it has lapsed
 *   another worker may claim the job, and the two never run it at once. A job the store gives out again while this
 *   worker still runs it starts once the earlier attempt has ended. Every `reapInterval` the worker asks the store to
 *   `reap` expired leases (its own or other workers'); every job a claim or a reap of the worker buried (its lease
 *   expired on its last attempt) is published as `JobDeadLettered`.
 * - **Shutdown.** Claiming stops in the step that begins shutdown. The jobs in flight get the context's
 *   `shutdownTimeout`; a job the deadline cuts off is released with its attempt refunded, from inside its task, so
 *   the context is `Stopped` only once it is back in the store. Releasing the layer shuts the context down (as
 *   `stop` does) and waits for `Stopped` and for every outcome handed to the store: the worker keeps renewing leases
 *   while its jobs drain. Whatever the store does, it ends within `shutdownTimeout` plus at most 5 s: store calls
 *   still on their way then are given up, not waited out.
 * - **Store errors.** Every store call has a deadline, `storeTimeout` (renewals: at most `lease / 3`); one that does
 *   not answer in time is given up and counts as failed. A `JobStoreError` never stops the worker: it is logged (a
 *   warning annotated with `worker`), and the call is tried again on a capped back-off, 100 ms doubling: a failed
 *   claim at most `min(pollInterval, 5 s)` apart (not at the next poll; wake-ups and polls do not add claims
 *   meanwhile), a failed renewal at most `min(lease / 3, 5 s)` apart, a failed settle at most 5 s apart until it
 *   succeeds or the context's shutdown deadline passes, a failed reap at most `min(reapInterval, 5 s)` apart, and
 *   failed wake-ups are subscribed to again. A job whose outcome has not reached the store keeps its slot
 *   meanwhile; one whose outcome never did stays leased there (also after `Stopped`) until its lease expires, and
 *   is then claimed again: jobs run at least once. Every store call the worker makes reports to the context's
 *   readiness check `"job store"` (`ctx.setUnready`): it is unready while any kind of call (claim, renew, settle,
 *   reap, wake-ups) last failed or ran past its deadline (`GET /health/ready` answers 503 with the reason), and
 *   ready again once every kind that failed has succeeded since.
 *
 * The worker's fibers (claim loop, completer, poller, wake-up listener, state watcher, lease renewer, fence timer,
 * reaper, timeout watchers, store-call watchdog) live in the layer's scope. A handler's requirements are the layer's, except `Job.Current`, which the worker provides (and
 * `WorkerContext`, which is the worker's own inside a job).
 *
 * @example
 * ```ts
 * import { Effect, Layer, Schema } from "effect"
 * import { Job, type JobStore, JobWorker, WorkerContext } from "effect-worker-context"
 *
 * const SendEmail = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
 *
 * const MailerLive = JobWorker.layer({
 *   handlers: [SendEmail.handler(({ to }) => Effect.log(`sending to ${to}`))],
 *   concurrency: 20
 * }).pipe(Layer.provide(WorkerContext.layer({ name: "mailer", shutdownTimeout: "20 seconds" })))
 *
 * // provide a JobStore (MemoryJobStore, PgJobStore) and launch it:
 * const main = (StoreLive: Layer.Layer<JobStore.JobStore>) => Layer.launch(MailerLive.pipe(Layer.provide(StoreLive)))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <R>(
  options: Options<R>
): Layer.Layer<never, never, JobStore | WorkerContext | Exclude<R, Job.Current>> =>
  Layer.scopedDiscard(internal.make(options))
