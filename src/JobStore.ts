/**
 * The job store port: what every store of jobs implements (apalis's `Backend`), for the workers that claim and run
 * jobs and for the producers and operators that enqueue and inspect them. `MemoryJobStore` is the embedded one;
 * `PgJobStore` keeps jobs in PostgreSQL.
 *
 * A store is written as a thin {@link Driver} (encoded rows, one batched operation per kind of change: claim, renew,
 * settle, reap) and wrapped by {@link make}, which checks every argument, guarantees that payloads are JSON, and
 * turns relative delays into instants by the store's own clock. Every operation of a driver is one step a SQL store
 * can make in one statement.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/jobStore.js"

/**
 * A store operation that could not be carried out: the store is unreachable, refused the operation, or holds data
 * it cannot read. `operation` names the port operation, `message` says what failed.
 *
 * @example
 * ```ts
 * import { JobStoreError } from "effect-worker-context/JobStore"
 *
 * const error = new JobStoreError({ operation: "claim", reason: "connection refused to 127.0.0.1:5432" })
 * console.log(error.message) // JobStore.claim failed: connection refused to 127.0.0.1:5432
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class JobStoreError extends Data.TaggedError("JobStoreError")<{
  readonly operation: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `JobStore.${this.operation} failed: ${this.reason}`
  }
}

/**
 * The lease a store operation named no longer holds, so the operation changed nothing. A lease holds while the
 * store's clock is before its `leaseExpiresAt`; it is lost at that instant, whether or not another worker has claimed
 * the job since, and when the job was re-claimed, completed, retried, dead-lettered or released. A worker that gets it
 * stops the job it was running and discards its result.
 *
 * @example
 * ```ts
 * import { LeaseLost } from "effect-worker-context/JobStore"
 *
 * const lost = new LeaseLost({ jobId: "42", operation: "complete" })
 * console.log(lost.message) // the lease on job 42 was lost: complete changed nothing
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class LeaseLost extends Data.TaggedError("LeaseLost")<{
  readonly jobId: string
  readonly operation: string
}> {
  override get message(): string {
    return `the lease on job ${this.jobId} was lost: ${this.operation} changed nothing`
  }
}

/**
 * A job to store, its payload already encoded: a JSON value (no `bigint`, no `Date`, no `NaN`, no class instance,
 * no string with a NUL character or a lone surrogate, which PostgreSQL cannot store), or the enqueue fails. When it
 * is due: at `runAt`, an instant of the caller's clock, if given; otherwise `delay`
 * (default zero) after the enqueue, by the **store's** clock, so that a producer whose clock is off does not move
 * the job.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import type { NewJob } from "effect-worker-context/JobStore"
 *
 * const job: NewJob = {
 *   name: "send-email",
 *   queue: "emails",
 *   payload: { to: "ada@example.com" },
 *   delay: Duration.minutes(10),
 *   priority: 0,
 *   key: undefined,
 *   maxAttempts: 25
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface NewJob {
  readonly name: string
  readonly queue: string
  readonly payload: unknown
  /** Not claimed before this instant, by the caller's clock (wins over `delay`). */
  readonly runAt?: Date | undefined
  /** Not claimed before this long after the enqueue, by the store's clock. Default: zero (ready now). */
  readonly delay?: Duration.Duration | undefined
  /** Lower runs first. */
  readonly priority: number
  /**
   * At most one live job (ready, scheduled or leased) holds a key; what an enqueue with a key that a live job holds
   * does is its {@link KeyMode}.
   */
  readonly key: string | undefined
  /** What to do when a live job holds `key`. Default `"replace"`: see {@link KeyMode}. */
  readonly keyMode?: KeyMode | undefined
  readonly maxAttempts: number
}

/**
 * What an enqueue does when a live job (ready, scheduled or leased) holds its `key`:
 *
 * - `"skip"`: nothing; the enqueue answers the holder's id. For "at most one of these at a time" (a welcome email).
 * - `"replace"` (the default): a holder that waits (ready or scheduled) takes the new payload, `runAt` (or delay),
 *   priority and `maxAttempts`, keeping its id and attempts (a debounce: each enqueue moves it); a holder that runs
 *   (leased) cannot be changed, so one more job is kept to run after it, as `"afterRunning"` does. No update is
 *   lost.
 * - `"afterRunning"`: a holder that waits is left as it is (it has not run yet, so it will see whatever the update
 *   changed); while the holder runs, one more job with the new payload is kept, and becomes the key's holder,
 *   ready (or due at its `runAt`), once the running one has ended for good (completed or dead). Later enqueues
 *   meanwhile replace that one's payload: at most one waits per key.
 *
 * @example
 * ```ts
 * import type { KeyMode } from "effect-worker-context/JobStore"
 *
 * const debounce: KeyMode = "replace"
 * ```
 *
 * @since 0.5.0
 * @category models
 */
export type KeyMode = "skip" | "replace" | "afterRunning"

/**
 * What one enqueued job came to: its `id` (the new job's, or the key holder's, or that of the job kept to run after
 * the holder), and `outcome`: `"inserted"` (a new job), `"skipped"` (a live job holds the key and nothing changed),
 * `"replaced"` (the waiting holder took the new values) or `"queuedAfter"` (kept to run after the running holder).
 * `duplicate` is `true` for all but `"inserted"`.
 *
 * @example
 * ```ts
 * import type { Enqueued } from "effect-worker-context/JobStore"
 *
 * const isNew = (result: Enqueued) => !result.duplicate
 * ```
 *
 * @since 0.5.0
 * @category models
 */
export interface Enqueued {
  readonly id: string
  readonly duplicate: boolean
  readonly outcome: "inserted" | "skipped" | "replaced" | "queuedAfter"
}

/**
 * A job as a {@link Driver} receives it from {@link make}: checked, its payload as JSON text, and when it is due
 * either an absolute `runAt` (the caller's instant) or `delayMs` after the store's now.
 *
 * @example
 * ```ts
 * import type { EncodedJob } from "effect-worker-context/JobStore"
 *
 * const job: EncodedJob = {
 *   name: "send-email",
 *   queue: "emails",
 *   payload: "{\"to\":\"ada@example.com\"}",
 *   runAt: undefined,
 *   delayMs: 0,
 *   priority: 0,
 *   key: undefined,
 *   keyMode: "replace",
 *   maxAttempts: 25
 * }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface EncodedJob {
  readonly name: string
  readonly queue: string
  /** JSON text. */
  readonly payload: string
  /** Due at this instant when given... */
  readonly runAt: Date | undefined
  /** ...else this many milliseconds (a safe integer, 0 or more) after the store's now. */
  readonly delayMs: number
  readonly priority: number
  readonly key: string | undefined
  readonly keyMode: KeyMode
  readonly maxAttempts: number
}

/**
 * A worker's hold on one claimed job: the job's id and the fencing token of this claim. Every operation on a
 * claimed job names its lease, and fails with `LeaseLost` once the lease no longer holds.
 *
 * @example
 * ```ts
 * import type { Lease } from "effect-worker-context/JobStore"
 *
 * const lease: Lease = { jobId: "42", token: "7f3a" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Lease {
  readonly jobId: string
  readonly token: string
}

/**
 * A job a worker claimed: what the store holds, this attempt's number and the lease.
 *
 * @example
 * ```ts
 * import type { ClaimedJob } from "effect-worker-context/JobStore"
 *
 * const describe = (job: ClaimedJob) => `${job.name} ${job.id}, attempt ${job.attempt} of ${job.maxAttempts}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ClaimedJob {
  readonly id: string
  readonly name: string
  readonly queue: string
  /** The payload as stored (encoded). */
  readonly payload: unknown
  /** This attempt's number, 1-based: the attempts counted so far, this one included. */
  readonly attempt: number
  readonly maxAttempts: number
  readonly priority: number
  readonly key: string | undefined
  readonly enqueuedAt: Date
  readonly runAt: Date
  readonly lease: Lease
  /** When the lease expires unless renewed, by the store's clock. */
  readonly leaseExpiresAt: Date
  /** The error of the last failed attempt (the last `Retry`), if any. */
  readonly lastError: string | undefined
  /**
   * The errors of earlier failed attempts (each `Retry`), oldest first, at most {@link maxAttemptErrors}: the
   * newest ones. A redrive starts afresh.
   */
  readonly errors: ReadonlyArray<AttemptError>
  /** The slot of the recurring schedule that enqueued the job ({@link JobStore.Service.enqueueSlot}), if one did. */
  readonly scheduledFor: Date | undefined
}

/**
 * One slot of a recurring schedule, as {@link JobStore.Service.enqueueSlot} takes it: the job to store for it, if
 * the slot is still free.
 *
 * @example
 * ```ts
 * import type { ScheduleSlot } from "effect-worker-context/JobStore"
 *
 * const slot: ScheduleSlot = {
 *   schedule: "nightly-report",
 *   slot: new Date("2026-12-07T02:00:00Z"),
 *   backfill: false,
 *   job: { name: "report", queue: "reports", payload: {}, priority: 0, key: undefined, maxAttempts: 25 }
 * }
 * ```
 *
 * @since 0.5.0
 * @category models
 */
export interface ScheduleSlot {
  /** The schedule's name: what the store keeps its slots under. */
  readonly schedule: string
  /** The slot's instant. */
  readonly slot: Date
  /**
   * A slot missed while no worker ran: stored only when the store already knows the schedule (a schedule is known
   * from its first slot on, and no slot before that is ever stored), so that a new schedule does not backfill the
   * time before it existed.
   */
  readonly backfill: boolean
  /** The job to store for the slot. */
  readonly job: NewJob
}

/**
 * A {@link ScheduleSlot} as a {@link JobStore.Driver} receives it: its job encoded.
 *
 * @example
 * ```ts
 * import type { EncodedSlot } from "effect-worker-context/JobStore"
 *
 * const job = (slot: EncodedSlot) => slot.job.payload
 * ```
 *
 * @since 0.5.0
 * @category models
 */
export interface EncodedSlot extends Omit<ScheduleSlot, "job"> {
  readonly job: EncodedJob
}

/**
 * The error of one failed attempt, as a store keeps it: the attempt's number, its error, and when the store took
 * it, by the store's clock.
 *
 * @example
 * ```ts
 * import type { AttemptError } from "effect-worker-context/JobStore"
 *
 * const line = ({ at, attempt, error }: AttemptError) => `attempt ${attempt} at ${at.toISOString()}: ${error}`
 * ```
 *
 * @since 0.5.0
 * @category models
 */
export interface AttemptError {
  readonly attempt: number
  readonly error: string
  readonly at: Date
}

/**
 * How many attempt errors a store keeps per job: the newest 10.
 *
 * @example
 * ```ts
 * import { maxAttemptErrors } from "effect-worker-context/JobStore"
 *
 * const full = (errors: ReadonlyArray<unknown>) => errors.length === maxAttemptErrors
 * ```
 *
 * @since 0.5.0
 * @category models
 */
export const maxAttemptErrors = 10

/**
 * What a worker asks for when it claims.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import type { ClaimRequest } from "effect-worker-context/JobStore"
 *
 * const request: ClaimRequest = {
 *   queues: ["emails"],
 *   names: ["send-email"],
 *   limit: 4,
 *   lease: Duration.seconds(30),
 *   worker: "mailer-1"
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ClaimRequest {
  /** Only jobs of these queues... */
  readonly queues: ReadonlyArray<string>
  /** ...and of these names (the job types the worker has handlers for). */
  readonly names: ReadonlyArray<string>
  /** At most this many jobs (the worker's free slots). */
  readonly limit: number
  /** How long each lease holds unless renewed. */
  readonly lease: Duration.Duration
  /** Who claims, for the store's records and error messages. */
  readonly worker: string
}

/**
 * How many jobs a queue (or the whole store) holds in each state.
 *
 * @example
 * ```ts
 * import type { QueueStats } from "effect-worker-context/JobStore"
 *
 * const backlog = (stats: QueueStats) => stats.ready + stats.scheduled
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface QueueStats {
  /** Claimable now. */
  readonly ready: number
  /** Waiting for their `runAt`. */
  readonly scheduled: number
  /** Claimed by a worker, lease not yet expired or reaped. */
  readonly leased: number
  /** In the dead letters. */
  readonly dead: number
  /** Cancelled ({@link JobStore.Service.cancel}) and kept for the store's retention. */
  readonly cancelled: number
  /** Completed and kept (the store's `succeededRetention`); 0 when completed jobs are not kept. */
  readonly succeeded: number
}

/**
 * The store's counts, in all and per queue.
 *
 * @example
 * ```ts
 * import type { JobStats } from "effect-worker-context/JobStore"
 *
 * const queues = (stats: JobStats) => Object.keys(stats.byQueue)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface JobStats extends QueueStats {
  readonly byQueue: Readonly<Record<string, QueueStats>>
  /**
   * The jobs ready now, per job name: a queue that does not drain often holds jobs of a name no worker has a handler
   * for.
   */
  readonly readyByName: Readonly<Record<string, number>>
  /** The queues paused by `pauseQueue` and not resumed since, in order: no worker claims from them. */
  readonly pausedQueues: ReadonlyArray<string>
}

/**
 * A job in the dead letters: it failed for the last time, or failed fatally.
 *
 * @example
 * ```ts
 * import type { DeadJob } from "effect-worker-context/JobStore"
 *
 * const line = (job: DeadJob) => `${job.name} ${job.id} after ${job.attempts} attempt(s): ${job.lastError}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface DeadJob {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly payload: unknown
  readonly attempts: number
  readonly lastError: string
  readonly failedAt: Date
}

/**
 * Where a job is: `ready` (claimable now), `scheduled` (waiting for its `runAt`, or to run after the running holder
 * of its key), `leased` (claimed: running on a worker), `succeeded` (completed, and kept because the store's
 * `succeededRetention` is on; otherwise a completed job is deleted and not found), `dead` (in the dead letters) or
 * `cancelled`. The first three are live; the rest ended.
 *
 * @example
 * ```ts
 * import type { JobState } from "effect-worker-context/JobStore"
 *
 * const live = (state: JobState) => state === "ready" || state === "scheduled" || state === "leased"
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export type JobState = "ready" | "scheduled" | "leased" | "succeeded" | "dead" | "cancelled"

/**
 * The states of {@link JobState}, in order.
 *
 * @example
 * ```ts
 * import { jobStates } from "effect-worker-context/JobStore"
 *
 * console.log(jobStates.join(", ")) // ready, scheduled, leased, succeeded, dead, cancelled
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export const jobStates: ReadonlyArray<JobState> = internal.jobStates

/**
 * One job as {@link JobStore.Service.get} and {@link JobStore.Service.list} find it, in whatever state. Times are
 * the store's; `worker` and `leaseExpiresAt` are set while it is leased (an expired lease that no reap or claim
 * has settled yet still shows, its expiry in the past); `endedAt` once it ended (dead or cancelled).
 *
 * @example
 * ```ts
 * import type { StoredJob } from "effect-worker-context/JobStore"
 *
 * const line = (job: StoredJob) =>
 *   `${job.name} ${job.id} in ${job.queue}: ${job.state}, attempt ${job.attempts} of ${job.maxAttempts}`
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface StoredJob {
  readonly id: string
  readonly state: JobState
  readonly name: string
  readonly queue: string
  /** The payload as stored (encoded). */
  readonly payload: unknown
  /** The attempts counted so far (a leased job's running attempt included). */
  readonly attempts: number
  readonly maxAttempts: number
  readonly priority: number
  readonly key: string | undefined
  readonly enqueuedAt: Date
  /** When it is (or was) due. */
  readonly runAt: Date
  /** The error of the last failed attempt; for a dead job, why it died; for a cancelled one, `"cancelled"`. */
  readonly lastError: string | undefined
  /** The errors of earlier failed attempts, oldest first (see {@link ClaimedJob.errors}). */
  readonly errors: ReadonlyArray<AttemptError>
  readonly scheduledFor: Date | undefined
  /** The worker that holds it (the `worker` of its claim), while leased. */
  readonly worker: string | undefined
  /** When its lease expires unless renewed, while leased. */
  readonly leaseExpiresAt: Date | undefined
  /** When it succeeded, died or was cancelled. */
  readonly endedAt: Date | undefined
  /** For a succeeded job, its handler's run time in milliseconds, when the worker said it. */
  readonly durationMs: number | undefined
  /** For a succeeded job, its handler's result as its `success` schema encoded it, when its job type has one. */
  readonly result: unknown
  /** When the running attempt began (its claim), while leased; `undefined` from a store that does not know. */
  readonly startedAt: Date | undefined
}

/**
 * Which jobs {@link JobStore.Service.list} lists: every field narrows, and none means all jobs.
 *
 * @example
 * ```ts
 * import type { JobFilter } from "effect-worker-context/JobStore"
 *
 * const failedEmails: JobFilter = { state: "dead", queue: "emails" }
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface JobFilter {
  readonly state?: JobState | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
  readonly key?: string | undefined
}

/**
 * A {@link JobFilter} and a page: at most `limit` jobs (default 50, at most {@link maxListLimit}), newest first
 * (highest id first), those older than the job `after` names (the `next` of the page before).
 *
 * @example
 * ```ts
 * import type { ListOptions } from "effect-worker-context/JobStore"
 *
 * const secondPage = (next: string): ListOptions => ({ state: "ready", limit: 20, after: next })
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface ListOptions extends JobFilter {
  readonly limit?: number | undefined
  readonly after?: string | undefined
}

/**
 * The most jobs one {@link JobStore.Service.list} page holds: 1,000.
 *
 * @example
 * ```ts
 * import { maxListLimit } from "effect-worker-context/JobStore"
 *
 * const limit = Math.min(5_000, maxListLimit) // 1000
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export const maxListLimit: number = internal.maxListLimit

/**
 * One page of {@link JobStore.Service.list}: the jobs, and `next`, the `after` of the next page, when there may be
 * one (`undefined` when this page was the last).
 *
 * @example
 * ```ts
 * import type { JobPage } from "effect-worker-context/JobStore"
 *
 * const ids = (page: JobPage) => page.jobs.map((job) => job.id)
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface JobPage {
  readonly jobs: ReadonlyArray<StoredJob>
  readonly next: string | undefined
}

/**
 * What {@link JobStore.Service.cancel} found: `"cancelled"` (the job was live, and now is cancelled), `"alreadyFinished"`
 * (it is dead or cancelled already) or `"notFound"` (no such job, or one that completed: completed jobs are not
 * kept).
 *
 * @example
 * ```ts
 * import type { CancelResult } from "effect-worker-context/JobStore"
 *
 * const status = (result: CancelResult) => (result === "notFound" ? 404 : 200)
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export type CancelResult = "cancelled" | "alreadyFinished" | "notFound"

/**
 * Which ended jobs {@link JobStore.Service.redriveMany} and {@link JobStore.Service.deleteMany} take: those of
 * `queue` and of `name` when given, in `state` (`"dead"` or `"cancelled"`; both when left out). `{}` takes every
 * ended job.
 *
 * @example
 * ```ts
 * import type { EndedFilter } from "effect-worker-context/JobStore"
 *
 * const deadEmails: EndedFilter = { queue: "emails", state: "dead" }
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface EndedFilter {
  readonly queue?: string | undefined
  readonly name?: string | undefined
  readonly state?: "dead" | "cancelled" | undefined
}

/**
 * What {@link JobStore.Service.runNow} found: `"ready"` (the scheduled job is ready now), `"notScheduled"` (it is
 * ready, running or ended already, or waits for the running holder of its key) or `"notFound"`.
 *
 * @example
 * ```ts
 * import type { RunNowResult } from "effect-worker-context/JobStore"
 *
 * const moved = (result: RunNowResult) => result === "ready"
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export type RunNowResult = "ready" | "notScheduled" | "notFound"

/**
 * Which live jobs {@link JobStore.Service.cancelMany} cancels: those of `queue`, of `name`, or both (at least one
 * is required), optionally only in one live `state`.
 *
 * @example
 * ```ts
 * import type { CancelFilter } from "effect-worker-context/JobStore"
 *
 * const waitingReports: CancelFilter = { name: "report", state: "scheduled" }
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface CancelFilter {
  readonly queue?: string | undefined
  readonly name?: string | undefined
  readonly state?: "ready" | "scheduled" | "leased" | undefined
}

/**
 * What became of an attempt, as the worker tells the store (River's and Oban's completer take the same):
 * - `Completed`: the job succeeded; it is deleted.
 * - `Retry`: the attempt failed and the job runs again `delay` after the settle, by the store's clock, with `error`
 *   as its last error.
 * - `Dead`: the job failed for the last time (or fatally); it moves to the dead letters with `error`.
 * - `Released`: the worker gives the job back unfinished; it is ready again at once, and with `refund` its attempt
 *   is not counted (a deploy must not burn attempts).
 * - `Snoozed`: the handler asked to run again later (`Job.snooze`): the job waits `delay` after the settle, by the
 *   store's clock, and its attempt is not counted.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { Outcome } from "effect-worker-context/JobStore"
 *
 * const again = Outcome.Retry({ delay: Duration.seconds(10), error: "smtp timeout" })
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export type Outcome = Data.TaggedEnum<{
  Completed: {}
  Retry: { readonly delay: Duration.Duration; readonly error: string }
  Dead: { readonly error: string }
  Released: { readonly refund: boolean }
  Snoozed: { readonly delay: Duration.Duration }
}>

/**
 * The constructors and `$match` of {@link Outcome}.
 *
 * @example
 * ```ts
 * import { Outcome } from "effect-worker-context/JobStore"
 *
 * const done = Outcome.Completed()
 * const describe = Outcome.$match({
 *   Completed: () => "done",
 *   Retry: ({ error }) => `again: ${error}`,
 *   Dead: ({ error }) => `dead: ${error}`,
 *   Released: ({ refund }) => (refund ? "given back, refunded" : "given back"),
 *   Snoozed: () => "again later, attempt not counted"
 * })
 * console.log(describe(done)) // done
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const Outcome: Data.TaggedEnum.Constructor<Outcome> = Data.taggedEnum<Outcome>()

/**
 * One claimed job's outcome, named by its lease.
 *
 * @example
 * ```ts
 * import { Outcome, type Settlement } from "effect-worker-context/JobStore"
 *
 * const settlement: Settlement = { lease: { jobId: "42", token: "7" }, outcome: Outcome.Completed() }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface Settlement {
  readonly lease: Lease
  readonly outcome: Outcome
  /**
   * The handler's run time, in milliseconds: what a store that keeps succeeded jobs (`succeededRetention`) keeps
   * with a `Completed` one. Optional.
   *
   * @since 0.6.0
   */
  readonly durationMs?: number | undefined
  /**
   * A `Completed` job's result, encoded by its job type's `success` schema (a JSON value): kept with the job by a
   * store that keeps succeeded jobs. Optional.
   *
   * @since 0.6.0
   */
  readonly result?: unknown
}

/**
 * A job the store moved to the dead letters on its own, because its lease expired on its last attempt (its worker
 * died or hung): the worker whose call reports it publishes its `JobDeadLettered`, so that every death is published
 * exactly once, whichever path caused it.
 *
 * @example
 * ```ts
 * import type { BuriedJob } from "effect-worker-context/JobStore"
 *
 * const line = (job: BuriedJob) => `${job.name} ${job.id} died after attempt ${job.attempt}: ${job.error}`
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface BuriedJob {
  readonly id: string
  readonly name: string
  readonly queue: string
  /** The attempt whose lease expired. */
  readonly attempt: number
  /** `"lease expired"` */
  readonly error: string
}

/**
 * What a claim returned: the jobs claimed, and the jobs the same call buried (see {@link BuriedJob}).
 *
 * @example
 * ```ts
 * import type { ClaimResult } from "effect-worker-context/JobStore"
 *
 * const ids = (result: ClaimResult) => result.jobs.map((job) => job.id)
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface ClaimResult {
  readonly jobs: ReadonlyArray<ClaimedJob>
  readonly buried: ReadonlyArray<BuriedJob>
}

/**
 * What a reap found: how many expired leases it settled, and the jobs among them it buried.
 *
 * @example
 * ```ts
 * import type { ReapResult } from "effect-worker-context/JobStore"
 *
 * const readyAgain = (result: ReapResult) => result.reaped - result.buried.length
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface ReapResult {
  readonly reaped: number
  readonly buried: ReadonlyArray<BuriedJob>
}

/**
 * What a prune did: how many dead letters past their retention it deleted, and whether more are left (it deletes a
 * bounded batch per call).
 *
 * @example
 * ```ts
 * import type { PruneResult } from "effect-worker-context/JobStore"
 *
 * const describe = (result: PruneResult) => `${result.pruned} pruned${result.more ? ", more left" : ""}`
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export interface PruneResult {
  readonly pruned: number
  readonly more: boolean
}

/**
 * The job store service: see the module's description. Stores judge time (run-at instants, lease expiries, delays)
 * by their own clock: the memory store by Effect's `Clock` (so `TestClock` drives it), a database by the database's.
 * Arguments that make no sense (a lease of zero, a negative limit, a priority that is not an integer) are defects;
 * a payload that is not JSON fails the enqueue with a `JobStoreError`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobStore } from "effect-worker-context/JobStore"
 *
 * const backlog = Effect.gen(function*() {
 *   const store = yield* JobStore
 *   const stats = yield* store.stats
 *   return stats.ready + stats.scheduled
 * })
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export class JobStore extends Context.Tag("effect-worker-context/JobStore")<JobStore, JobStore.Service>() {}

/**
 * @since 0.2.0
 */
// A namespace merged with the tag class, as Effect's own modules do, so the shape reads `JobStore.Service`.
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace JobStore {
  /**
   * The operations of a job store: what producers, operators and workers call. Made from a {@link Driver} by
   * {@link make}.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import type { JobStore } from "effect-worker-context/JobStore"
   *
   * const deadCount = (store: JobStore.Service) => Effect.map(store.stats, (stats) => stats.dead)
   * ```
   *
   * @since 0.2.0
   * @category models
   */
  export interface Service {
    /**
     * Stores the jobs, in order, and returns their ids (unique, and increasing in enqueue order when compared
     * shortest first). A job whose `key` a live job (ready, scheduled or leased) holds is handled by its
     * {@link KeyMode} (default `"replace"`): its id is then the holder's, or that of the job kept to run after it;
     * a skipped job wakes nobody, nor waits for or locks the holder. Wakes the workers of each queue that got a job
     * ready now. Fails with a `JobStoreError` naming the job and the place when a payload is not JSON.
     */
    readonly enqueue: (jobs: ReadonlyArray<NewJob>) => Effect.Effect<ReadonlyArray<string>, JobStoreError>
    /**
     * {@link enqueue}, answering for each job what it came to ({@link Enqueued}): whether its key took effect.
     *
     * @since 0.5.0
     */
    readonly insert: (jobs: ReadonlyArray<NewJob>) => Effect.Effect<ReadonlyArray<Enqueued>, JobStoreError>
    /**
     * Stores the slot's job if the slot is free, in one atomic step, and returns the job's id (or, with a `key` that
     * a live job holds, that job's id, whatever its key mode). The store remembers each schedule's latest 16 slots
     * (`recentSlots`), changed only here: a slot is free when it is not among them and is later than the oldest of
     * them (any slot, for a schedule it does not know, but a `backfill` one). Returns `undefined`, storing nothing,
     * otherwise. So any number of workers may offer the same slot, in any order: one stores it, and a slot offered
     * late (its worker was held up) is stored unless a later one is 16 slots ahead. The job is like one of
     * {@link enqueue}, with `scheduledFor` set to the slot.
     *
     * @since 0.5.0
     */
    readonly enqueueSlot: (slot: ScheduleSlot) => Effect.Effect<string | undefined, JobStoreError>
    /**
     * Claims up to `limit` ready jobs of the given queues and names, in order (lower `priority` first, then earlier
     * `runAt`, then enqueue order), each with a fresh lease that expires after `lease`, and counts an attempt on
     * each. A job whose lease expired is ready again (its attempt stays counted), or buried when that was its last
     * attempt: the result names the jobs this call buried.
     */
    readonly claim: (request: ClaimRequest) => Effect.Effect<ClaimResult, JobStoreError>
    /**
     * Extends every lease that still holds by `lease` from now, in one step, and returns the ids of the jobs whose
     * lease no longer holds (their workers must stop them). Never waits for a lock that a producer's open
     * transaction holds.
     */
    readonly renew: (
      leases: ReadonlyArray<Lease>,
      lease: Duration.Duration
    ) => Effect.Effect<ReadonlyArray<string>, JobStoreError>
    /**
     * Applies each outcome to its job, in one step, and returns, in the same order, whether each took effect: `false`
     * when its lease no longer held (by the store's clock, whether or not another worker claimed the job since), and
     * then it changed nothing. Never waits for a lock that a producer's open transaction holds.
     */
    readonly settle: (settlements: ReadonlyArray<Settlement>) => Effect.Effect<ReadonlyArray<boolean>, JobStoreError>
    /**
     * Makes every job whose lease expired ready again, or dead when its attempts are used up (an expired lease
     * counts as an attempt: a job that kills its worker every time ends in the dead letters, with the error
     * "lease expired"). Returns how many this call found, and which it buried: a store may settle expired leases in
     * its claims too, and then `reap` finds fewer.
     */
    readonly reap: Effect.Effect<ReapResult, JobStoreError>
    /**
     * Tidies the store: deletes the dead letters older than the store's retention (its `deadLetterRetention`
     * option), at most a bounded batch per call and oldest first, and folds whatever bookkeeping the store keeps.
     * Every worker calls it on its reap schedule, again at once while `more` says a batch was full; concurrent calls
     * skip each other's rows, so no leader is needed and no call holds long locks.
     *
     * @since 0.4.0
     */
    readonly prune: Effect.Effect<PruneResult, JobStoreError>
    /**
     * Subscribes to the queues that get a job ready now (coalesced, possibly repeated): a hint to claim at once
     * instead of waiting for the next poll. Live when it returns: every wake-up after that reaches the queue, until
     * the scope closes. Sent by an enqueue of a job ready now, a release, a retry already due, a redrive and a reap
     * that made jobs ready; not by a deduplicated enqueue, nor when a delayed job comes due (the poll finds those).
     * Wake-ups may be lost while a store reconnects; a worker polls anyway.
     */
    readonly wakeups: Effect.Effect<Queue.Dequeue<string>, never, Scope.Scope>
    /**
     * The counts of the whole store and of each queue (queues that hold nothing may be left out). A job whose lease
     * expired and was not reaped yet counts as ready (or dead, when its attempts are used up).
     */
    readonly stats: Effect.Effect<JobStats, JobStoreError>
    /** The dead letters, most recent first: at most `limit` (default 100), of one `queue` if given. */
    readonly deadLetters: (options?: {
      readonly limit?: number | undefined
      readonly queue?: string | undefined
    }) => Effect.Effect<ReadonlyArray<DeadJob>, JobStoreError>
    /**
     * Moves these dead jobs back, ready now, with their attempts reset and a new place in line (`enqueuedAt` is now);
     * each keeps its id, the handlers' idempotency key. Unknown ids, and dead jobs whose `key` a live job holds by
     * now, are skipped. Returns how many moved.
     */
    readonly redrive: (ids: ReadonlyArray<string>) => Effect.Effect<number, JobStoreError>
    /**
     * The job with this id, in whatever state, or `undefined` when the store holds none (completed jobs are not
     * kept).
     *
     * @since 0.6.0
     */
    readonly get: (id: string) => Effect.Effect<StoredJob | undefined, JobStoreError>
    /**
     * One page of the jobs that match the filter, newest first (see {@link ListOptions}). A page is read in one step;
     * jobs that move between pages (a ready job claimed meanwhile) may show on two pages or on none, as with any
     * keyset pagination.
     *
     * @since 0.6.0
     */
    readonly list: (options?: ListOptions | undefined) => Effect.Effect<JobPage, JobStoreError>
    /**
     * Cancels the job, in one step, if it is live: a ready or scheduled job never runs; a leased (running) job's
     * lease no longer holds, so its worker's acknowledgement changes nothing, and its worker is told through
     * {@link cancellations} to interrupt it. The job is kept as `cancelled` for the store's retention, and its key
     * is free (or passes to the job kept to run after it). Returns what it found.
     *
     * @since 0.6.0
     */
    readonly cancel: (id: string) => Effect.Effect<CancelResult, JobStoreError>
    /**
     * Cancels every live job the filter names, as {@link cancel} does, in batches of at most 1,000 jobs (each one
     * step), until none is left, and returns how many it cancelled. A job a producer's open transaction holds locked
     * at that moment is skipped on PostgreSQL.
     *
     * @since 0.6.0
     */
    readonly cancelMany: (filter: CancelFilter) => Effect.Effect<number, JobStoreError>
    /**
     * Subscribes to the ids of the leased jobs that get cancelled, so that the workers running them interrupt them
     * at once. Hints, as {@link wakeups} are: one may be lost while a store reconnects, and the worker then learns
     * it at its next lease renewal (the job's lease no longer holds).
     *
     * @since 0.6.0
     */
    readonly cancellations: Effect.Effect<Queue.Dequeue<string>, never, Scope.Scope>
    /**
     * {@link redrive}, of every ended job the filter takes, in pages of 1,000 (each redrive one step), and returns
     * how many moved. Jobs whose key a live job holds are skipped.
     *
     * @since 0.6.0
     */
    readonly redriveMany: (filter: EndedFilter) => Effect.Effect<number, JobStoreError>
    /**
     * Deletes these ended (dead or cancelled) jobs for good, and returns how many. Unknown ids and live jobs are
     * skipped: cancel a live job first.
     *
     * @since 0.6.0
     */
    readonly delete: (ids: ReadonlyArray<string>) => Effect.Effect<number, JobStoreError>
    /**
     * {@link delete}, of every ended job the filter takes, in pages of 1,000, and returns how many it deleted.
     *
     * @since 0.6.0
     */
    readonly deleteMany: (filter: EndedFilter) => Effect.Effect<number, JobStoreError>
    /**
     * Makes a scheduled job ready now (its `runAt` becomes the store's now) and wakes its workers, in one step.
     * Returns what it found.
     *
     * @since 0.6.0
     */
    readonly runNow: (id: string) => Effect.Effect<RunNowResult, JobStoreError>
    /**
     * Pauses `queue` for every worker of the store: from when it returns, no claim takes a job of it (jobs already
     * claimed run to their end). The store keeps the pause, so it survives restarts of the workers, until
     * {@link resumeQueue}. Pausing a paused queue, or one that holds nothing yet, is allowed.
     *
     * @since 0.5.0
     */
    readonly pauseQueue: (queue: string) => Effect.Effect<void, JobStoreError>
    /**
     * Resumes a paused `queue`: claims take its jobs again, and its workers are woken to claim at once. Resuming a
     * queue that is not paused changes nothing.
     *
     * @since 0.5.0
     */
    readonly resumeQueue: (queue: string) => Effect.Effect<void, JobStoreError>
  }

  /**
   * What a store implements: the operations of {@link Service} on checked arguments, with payloads as JSON text
   * ({@link EncodedJob}) and the store's name for error messages. {@link make} does the checks and the encoding,
   * once for every store.
   *
   * @example
   * ```ts
   * import type { JobStore } from "effect-worker-context/JobStore"
   *
   * const named = (driver: JobStore.Driver) => driver.name
   * ```
   *
   * @since 0.3.0
   * @category models
   */
  export interface Driver extends
    Omit<
      Service,
      "enqueue" | "insert" | "enqueueSlot" | "prune" | "list" | "cancelMany" | "redriveMany" | "deleteMany"
    >
  {
    /** The store's name in messages: `MemoryJobStore`, `PgJobStore`. */
    readonly name: string
    /** {@link Service.insert}, the jobs encoded. */
    readonly insert: (jobs: ReadonlyArray<EncodedJob>) => Effect.Effect<ReadonlyArray<Enqueued>, JobStoreError>
    /** {@link Service.enqueueSlot}, its job encoded. */
    readonly enqueueSlot: (slot: EncodedSlot) => Effect.Effect<string | undefined, JobStoreError>
    /**
     * Whether every call answers at once, without waiting on I/O or on another fiber (an in-process store such as
     * `MemoryJobStore`): a worker then runs its calls directly, without the deadline (`storeTimeout`) it gives the
     * calls of any other store, which costs a fiber per call. A store built on top of this one (a wrapper) is not
     * taken to be immediate.
     *
     * @since 0.4.0
     */
    readonly immediate?: boolean | undefined
    /** {@link Service.list}, its options checked and `limit` filled in. */
    readonly list: (options: ListOptions & { readonly limit: number }) => Effect.Effect<JobPage, JobStoreError>
    /**
     * One batch of {@link Service.cancelMany}: cancels at most `limit` of the jobs the (checked) filter names, in
     * one step, and returns how many.
     */
    readonly cancelBatch: (filter: CancelFilter, limit: number) => Effect.Effect<number, JobStoreError>
    /** {@link Service.prune}; a store that keeps nothing to prune leaves it out. */
    readonly prune?: Effect.Effect<PruneResult, JobStoreError> | undefined
  }
}

/**
 * Makes a job store from a driver: every argument is checked once here (nonsense is an `IllegalArgumentException`
 * defect naming the store, the operation and the value), payloads are checked to be JSON and encoded as JSON text,
 * and `delay`s are handed to the driver as milliseconds for its own clock. Stores call this; users get a store from
 * its module's `layer`.
 *
 * @example
 * ```ts
 * import { type JobStore, make } from "effect-worker-context/JobStore"
 *
 * declare const driver: JobStore.Driver
 * const store: JobStore.Service = make(driver)
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make: (driver: JobStore.Driver) => JobStore.Service = internal.make
