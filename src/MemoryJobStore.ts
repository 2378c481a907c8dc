/**
 * The embedded job store: a `JobStore` that keeps its jobs in this process's memory.
 *
 * **It is not durable.** Every job (ready, scheduled, leased or dead) lives in the memory of the process that built
 * the store, and is lost when that process exits or the layer is released; two processes never share one. Use it
 * for tests, for development, and for work that may be lost with the process; use `PgJobStore` for jobs that must
 * survive a crash or a deploy.
 *
 * What it guarantees, beyond the port's contract (`JobStore`):
 *
 * - **Atomic operations.** Each operation is one synchronous step: no other fiber sees the store half-way through
 *   it, so concurrent enqueues with one `key` store one job, two claims never get the same job, and a `settle`
 *   batch is applied whole.
 * - **Time is Effect's `Clock`,** read when the store is built: under `TestClock`, `TestClock.adjust` moves run-at
 *   instants, delays and lease expiries. An `enqueue` without `runAt` is due `delay` (default zero) after the
 *   store's now; a `Retry` outcome is due its `delay` after the store's now at the `settle`; delays are rounded up
 *   to the millisecond, so a job is never due early. Every operation first brings the store up to the clock:
 *   scheduled jobs whose `runAt` has come become ready, and every lease that expired gives its job back (ready
 *   again with its attempt counted, or dead with `"lease expired"` when its attempts are used up).
 * - **Leases are judged by the clock.** A lease holds from its claim until its expiry instant, exclusive: at
 *   `leaseExpiresAt` it no longer holds, even if nobody has claimed the job again. `renew` reports it lost, and
 *   `settle` answers `false` for it and changes nothing, whatever the outcome. So a job never has two live leases,
 *   and a late outcome never touches a job that someone else may be running. Of two outcomes for one lease in one
 *   batch, the first applies and the second answers `false`.
 * - **Deaths by lease expiry are reported once.** A job buried because its lease expired on its last attempt is
 *   reported in the `buried` of exactly one `claim` or `reap`: the first to run after the burial (any operation
 *   may bury it while bringing the store up to the clock; the death then waits for the next claim or reap).
 *   `reap`'s `reaped` counts the jobs it made ready again plus the jobs it reports buried, so `reaped` is never
 *   less than `buried.length`.
 * - **Payloads are JSON, copied.** `enqueue` keeps the payload as JSON text (a payload that is not JSON fails it,
 *   as on PostgreSQL), and every claim parses it anew: a handler gets a copy of its own, so mutating the object
 *   after `enqueue`, or a claimed payload, changes nothing in the store.
 * - **Ids** are decimal strings of a counter, `"1"`, `"2"`, ..., increasing in enqueue order; lease tokens are
 *   fresh for every claim.
 * - **Dead letters are bounded** by `maxDeadLetters` (default 10,000): past it, the oldest are dropped, and each
 *   operation that dropped some logs a warning naming them. A redriven job keeps its id.
 * - **Attempts.** The store judges `maxAttempts` only where no worker can: a lease that expired on the job's last
 *   attempt buries it. `Retry` and `Released` do what they say whatever the count; the worker decides.
 * - **Wake-ups.** `wakeups` subscribes at once, in the caller's scope: every wake-up after it returns reaches the
 *   subscription until the scope closes. Each subscription buffers at most 256 wake-ups; one that lags further
 *   loses its oldest (they are hints: a worker polls anyway). A queue is woken once per operation that got it a
 *   job ready now: `enqueue`, `settle` (a `Released`, or a `Retry` already due; once per batch), `redrive`, and
 *   `reap` (for the jobs it made ready). A deduplicated enqueue wakes nobody. A scheduled job whose `runAt` comes,
 *   or a job whose lease expires, wakes nobody by itself (the store runs no timer): workers find it on their next
 *   poll, or a `reap` that makes it ready wakes its queue.
 * - **Cost.** Jobs are kept per queue and job name in priority heaps: `claim` looks only at the heaps of the
 *   queues and names it asks for, and every operation on one job is O(log n). A completed job leaves nothing
 *   behind.
 *
 * @since 0.2.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "./internal/memoryJobStore.js"
import { JobStore } from "./JobStore.js"

/**
 * Options of {@link make} and {@link layer}. Every field is optional.
 *
 * An option that makes no sense (a `maxDeadLetters` that is not an integer of 0 or more, a `maxJobs` that is not
 * an integer of 1 or more nor `Infinity`) makes `make` die with an `IllegalArgumentException` that names it: it is
 * a bug in the program, not a condition to handle.
 *
 * @example
 * ```ts
 * import type { MemoryJobStoreOptions } from "effect-worker-context/MemoryJobStore"
 *
 * const options: MemoryJobStoreOptions = { maxDeadLetters: 1_000, maxJobs: 100_000 }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface MemoryJobStoreOptions {
  /**
   * How many dead letters the store keeps: when a job dies past this many, the oldest dead letter is dropped for
   * good (it can no longer be listed or redriven), and the operation logs a warning naming the dropped jobs.
   * Default 10,000; `0` keeps none (every dead job is dropped and logged).
   */
  readonly maxDeadLetters?: number | undefined
  /**
   * How many jobs the store holds at most, ready, scheduled and leased (dead letters are bounded by
   * `maxDeadLetters` instead). An `enqueue` (or `redrive`) that would exceed it stores nothing and fails with a
   * `JobStoreError` saying the store is full; a job whose `key` a live job holds adds nothing (or the one job kept
   * to run after a running holder), so it fits unless that one is new.
   * Default `Infinity`: the store grows with its backlog.
   */
  readonly maxJobs?: number | undefined
  /**
   * How long a dead letter is kept: older ones are deleted by the workers' maintenance (`JobStore.prune`, on their
   * reap schedule), besides the `maxDeadLetters` bound. Default 14 days; `Duration.infinity` keeps them until
   * `maxDeadLetters` drops them.
   */
  readonly deadLetterRetention?: Duration.DurationInput | undefined
  /**
   * How long a completed job is kept, as `succeeded`, with its handler's run time (`get`, `list`, the dashboard's
   * job browser show it): pruned like the dead letters, and at most `maxDeadLetters` of them (the oldest go first,
   * silently). Default: none, a completed job is deleted at once.
   */
  readonly succeededRetention?: Duration.DurationInput | undefined
}

/**
 * Builds a memory job store with the given options: see the module's description for what it guarantees. Each
 * call builds a store of its own, empty; it holds no resource (no fiber, no timer), so it needs no scope, and it
 * is freed with the last reference to it. It reads the `Clock` of the fiber that builds it.
 *
 * @example
 * ```ts
 * import { Duration, Effect } from "effect"
 * import { Outcome } from "effect-worker-context/JobStore"
 * import * as MemoryJobStore from "effect-worker-context/MemoryJobStore"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* MemoryJobStore.make({ maxDeadLetters: 100 })
 *   const [id] = yield* store.enqueue([{
 *     name: "send-email",
 *     queue: "emails",
 *     payload: { to: "ada@example.com" },
 *     priority: 0,
 *     key: undefined,
 *     maxAttempts: 5
 *   }])
 *   const { jobs } = yield* store.claim({
 *     queues: ["emails"],
 *     names: ["send-email"],
 *     limit: 1,
 *     lease: Duration.seconds(30),
 *     worker: "mailer-1"
 *   })
 *   yield* store.settle(jobs.map((job) => ({ lease: job.lease, outcome: Outcome.Completed() })))
 *   return id
 * })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: (options?: MemoryJobStoreOptions | undefined) => Effect.Effect<JobStore.Service> = internal.make

/**
 * A layer that provides a memory job store built with the given options (see {@link make}). Each time the layer
 * is built, the store is new and empty; its jobs are gone once nothing refers to it.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 * import * as MemoryJobStore from "effect-worker-context/MemoryJobStore"
 *
 * const SendEmail = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
 *
 * const program = SendEmail.enqueue({ to: "ada@example.com" }).pipe(
 *   Effect.provide(MemoryJobStore.layer({ maxDeadLetters: 1_000 }))
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options?: MemoryJobStoreOptions | undefined): Layer.Layer<JobStore> =>
  Layer.effect(JobStore, internal.make(options))
