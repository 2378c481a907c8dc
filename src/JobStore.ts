/**
 * The job store port: what every store of jobs implements (apalis's `Backend`), for the workers that claim and run
 * jobs and for the producers and operators that enqueue and inspect them. `MemoryJobStore` is the embedded one;
 * `PgJobStore` keeps jobs in PostgreSQL.
 *
 * Every operation is one step a SQL store can make in one statement: claim up to N ready jobs with a lease, renew
 * many leases at once, complete, retry with a delay, dead-letter, release with or without refunding the attempt,
 * reap expired leases, and a stream of wake-ups.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"

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
 * A job to store, its payload already encoded (JSON).
 *
 * @example
 * ```ts
 * import type { NewJob } from "effect-worker-context/JobStore"
 *
 * const job: NewJob = {
 *   name: "send-email",
 *   queue: "emails",
 *   payload: { to: "ada@example.com" },
 *   runAt: new Date(),
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
  /** Not claimed before this instant. */
  readonly runAt: Date
  /** Lower runs first. */
  readonly priority: number
  /** While a job with this key is ready, scheduled or leased, enqueueing another returns its id and adds nothing. */
  readonly key: string | undefined
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
}

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
 * The job store service: see the module's description. Stores judge time (run-at instants, lease expiries) by their
 * own clock: the memory store by Effect's `Clock` (so `TestClock` drives it), a database by the database's. Arguments
 * that make no sense (a lease of zero, a negative limit, a priority that is not an integer) are defects.
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
   * The operations of a job store.
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
     * shortest first). A job whose `key` matches a job that is ready, scheduled or leased is not stored: its id is
     * that job's, and it wakes nobody. Wakes the workers of each queue that got a job ready now.
     */
    readonly enqueue: (jobs: ReadonlyArray<NewJob>) => Effect.Effect<ReadonlyArray<string>, JobStoreError>
    /**
     * Claims up to `limit` ready jobs of the given queues and names, in order (lower `priority` first, then earlier
     * `runAt`, then enqueue order), each with a fresh lease that expires after `lease`, and counts an attempt on
     * each. A job whose lease expired is ready again (its attempt stays counted).
     */
    readonly claim: (request: ClaimRequest) => Effect.Effect<ReadonlyArray<ClaimedJob>, JobStoreError>
    /**
     * Extends every lease that still holds by `lease` from now, in one step, and returns the ids of the jobs whose
     * lease no longer holds (their workers must stop them).
     */
    readonly renew: (
      leases: ReadonlyArray<Lease>,
      lease: Duration.Duration
    ) => Effect.Effect<ReadonlyArray<string>, JobStoreError>
    /** The job succeeded: it is deleted. */
    readonly complete: (lease: Lease) => Effect.Effect<void, JobStoreError | LeaseLost>
    /** The attempt failed and the job will run again: it is scheduled for `runAt`, with `error` as its last error. */
    readonly retry: (lease: Lease, runAt: Date, error: string) => Effect.Effect<void, JobStoreError | LeaseLost>
    /** The job failed for the last time (or fatally): it moves to the dead letters with `error`. */
    readonly deadLetter: (lease: Lease, error: string) => Effect.Effect<void, JobStoreError | LeaseLost>
    /**
     * The worker gives the job back unfinished: it is ready again at once, and with `refund` its attempt is not
     * counted (a deploy must not burn attempts).
     */
    readonly release: (
      lease: Lease,
      options: { readonly refund: boolean }
    ) => Effect.Effect<void, JobStoreError | LeaseLost>
    /**
     * Makes every job whose lease expired ready again, or dead when its attempts are used up (an expired lease
     * counts as an attempt: a job that kills its worker every time ends in the dead letters, with the error
     * "lease expired"). Returns how many this call found: a store may settle expired leases in its other operations
     * too (the memory store does), and then `reap` finds fewer.
     */
    readonly reap: Effect.Effect<number, JobStoreError>
    /**
     * The queues that got a job ready now, as it happens (coalesced, possibly repeated): a hint to claim at once
     * instead of waiting for the next poll. Emitted by an enqueue of a job ready now, a release, a retry already due,
     * a redrive and a reap that made jobs ready; not by a deduplicated enqueue, nor when a delayed job comes due (the
     * poll finds those). A worker polls anyway; a store that cannot wake simply never emits.
     */
    readonly wakeups: Stream.Stream<string>
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
  }
}
