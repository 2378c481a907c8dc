/**
 * The PostgreSQL job store: a `JobStore` whose jobs live in PostgreSQL, for many workers on many machines against
 * one database. Jobs survive crashes and deploys; a worker killed with `kill -9` loses nothing, because what it
 * held comes back when its leases expire. See `docs/postgres.md` for the schema, the lease model, recovery times,
 * sizing and Kubernetes settings.
 *
 * It needs `@effect/sql` 0.52, `@effect/sql-pg` 0.53 and `pg` 8 (optional peer dependencies of this package: only
 * this entry point imports them), and a `PgClient` from `@effect/sql-pg` in the context.
 *
 * What it guarantees, beyond the port's contract (`JobStore`):
 *
 * - **One statement per operation.** A claim of up to N jobs is one `UPDATE ... FOR UPDATE SKIP LOCKED` over the
 *   index of ready jobs: concurrent workers never block each other and never get the same job. Renewing every
 *   lease a worker holds is one statement; so is a settle of any number of outcomes of every kind, a reap, a
 *   redrive. Each sends at most one notification.
 * - **Every call is bounded.** The worker's calls (claim, renew, settle, reap, the wake-up queries) and `stats`,
 *   `deadLetters`, `redrive` run on connections of the store's own (`maxConnections`, default 4), not the
 *   `PgClient`'s pool, each within `callTimeout` (default 10 s). A call that passes its deadline, or that its caller
 *   interrupts, destroys its connection's socket (and the idle ones that have not answered since): the next call
 *   runs on a fresh connection, even when the server stalled without a word. The server is told the same deadline
 *   (`statement_timeout`), and a lock held by another session makes a call fail after `lock_timeout` (2 s) instead
 *   of waiting. Closing the store never waits for a hung call.
 * - **Producers never block workers.** An enqueue whose key a job already holds takes no lock on that job's row
 *   (`ON CONFLICT DO NOTHING`), so a producer's open transaction holds nothing a renewal or a settle waits for.
 * - **Leases and delays are judged by the database's clock,** never a worker's nor a producer's: a lease holds
 *   until `lease_expires_at`, exclusive; a settle checks its fencing token and that instant in its statement; a
 *   `delay` and a retry's delay are added to the database's now. Only an absolute `runAt` is the caller's instant,
 *   stored as given.
 * - **At least once.** A job runs again when its worker dies or loses its lease before settling it; an expired
 *   lease counts as an attempt, so a job that kills its worker every time ends in the dead letters
 *   (`"lease expired"`, reported once by the claim or reap that buried it) instead of looping.
 * - **Completed jobs are deleted;** dead jobs move to a table of their own (`dead_jobs`), kept until redriven or
 *   deleted by you.
 * - **Wake-ups by LISTEN/NOTIFY,** on a connection of the store's own, checked every `listenCheckInterval` and
 *   reconnected with a capped backoff (100 ms doubling to 10 s). A `wakeups` subscription is live when it returns.
 *   Workers poll anyway: LISTEN is a hint, the poll the guarantee.
 * - **Transactions.** `enqueue` runs on the caller's `PgClient`, so inside `sql.withTransaction` it joins that
 *   transaction: the job exists, and wakes workers, only if the transaction commits.
 * - **Settles batch themselves** (`batchAcks`, on by default): settles from many fibers that arrive while one is in
 *   flight go out together in one statement.
 * - **Errors say what failed**: `JobStoreError.reason` reads `connection refused to 127.0.0.1:5432`,
 *   `no answer within 10000 ms; the connection was closed`, `schema "effect_worker" is missing or not migrated ...`.
 *
 * @since 0.3.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/pgJobStore.js"
import { JobStore, type JobStoreError } from "./JobStore.js"

/**
 * Options of {@link make} and {@link layer}. Every field is optional. An option that makes no sense (a schema that
 * is not a plain lower-case identifier, a check interval of zero) makes `make` die with an
 * `IllegalArgumentException` that names it.
 *
 * @example
 * ```ts
 * import type { PgJobStoreOptions } from "effect-worker-context/PgJobStore"
 *
 * const options: PgJobStoreOptions = { schema: "jobs", migrate: true, listenCheckInterval: "5 seconds" }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface PgJobStoreOptions {
  /**
   * The schema the store's tables live in: `jobs`, `dead_jobs`, two sequences, the `clock()` function and the
   * migrations table. Default `"effect_worker"`. Lower-case letters, digits and `_`, at most 48 characters. Two
   * stores with different schemas in one database share nothing.
   */
  readonly schema?: string | undefined
  /**
   * Creates the schema and runs the migrations it lacks when the store is built. Default `true`. Workers that
   * start at once migrate one after another (an advisory lock keyed by the schema), so this is safe to leave on
   * everywhere; a schema that is up to date is only read, so a user who may not create tables starts too. With
   * `false`, a schema that lacks versions fails the build: migrate from a deploy step (a store built once with
   * `migrate: true` by a user who may). Either way, a schema that needs a newer release fails the build, naming
   * both versions (see "Schema versions and upgrades" in `docs/postgres.md`).
   */
  readonly migrate?: boolean | undefined
  /**
   * Listens for wake-ups (LISTEN/NOTIFY) on a connection of its own. Default `true`. Without it, `wakeups` never
   * emits and workers find jobs by polling only (each waits up to its `pollInterval`), and the store holds one
   * connection fewer; notifications are still sent, for the workers that do listen.
   */
  readonly listen?: boolean | undefined
  /**
   * How often the listening connection is checked with a `SELECT 1` (answer within 5 s, or it is replaced). Default
   * 10 seconds. A dropped connection that says so (the server restarted, `pg_terminate_backend`) is noticed at
   * once; this bounds how long a silent one (a partition) can leave the store deaf.
   */
  readonly listenCheckInterval?: Duration.DurationInput | undefined
  /**
   * Sends the `settle` calls of many fibers that wait for the database at the same moment in one statement. Default
   * `true`. It adds no delay (a batch leaves as soon as the previous one returns); turn it off only to measure it.
   */
  readonly batchAcks?: boolean | undefined
  /**
   * The deadline of every call on the store's own connections (everything but `enqueue`, which runs on your
   * `PgClient`): waiting for a connection, connecting and the statement included. Default 10 seconds. A call past it
   * fails with a `JobStoreError`, and its connection is destroyed (not given back to the pool), so that the next call
   * runs on a fresh one even when the server stalled without a word. The server is told the same deadline
   * (`statement_timeout`), and waits for another session's lock at most 2 s or half of it (`lock_timeout`).
   */
  readonly callTimeout?: Duration.DurationInput | undefined
  /**
   * The most connections of the store's own in use at once (the worker's claims, renewals, settles, reaps, and
   * `stats`, `deadLetters`, `redrive`); the store also keeps one spare open when there is room, so that a call
   * rarely connects within its own deadline. Default 4. Idle ones close after 30 s. A call that finds them all busy
   * waits for one, within its `callTimeout`.
   */
  readonly maxConnections?: number | undefined
  /**
   * How long a dead letter is kept: older ones are deleted by the workers' maintenance (`JobStore.prune`, on their
   * reap schedule), at most 1,000 per statement, oldest first, by index. Default 14 days; `Duration.infinity` keeps
   * them for ever.
   */
  readonly deadLetterRetention?: Duration.DurationInput | undefined
  /**
   * How long a completed job is kept, as `succeeded` (in `dead_jobs`), with its handler's run time: `get`, `list`
   * and the dashboard's job browser show it, and every worker's maintenance prunes it past this age. Default: none,
   * a completed job is deleted in the statement that completes it. Keeping them makes each completion an insert as
   * well as a delete.
   */
  readonly succeededRetention?: Duration.DurationInput | undefined
}

/**
 * Builds a PostgreSQL job store on the `PgClient` in the context, migrating its schema first (unless
 * `migrate: false`). The store's own connections, the listening connection and the settle batcher live in the
 * scope; closing it destroys them, within a second, whatever calls are in flight (they fail). The `PgClient`'s pool
 * is only used by `enqueue` and the migration, and is closed with the `PgClient`.
 *
 * @example
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Redacted } from "effect"
 * import * as PgJobStore from "effect-worker-context/PgJobStore"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* PgJobStore.make({ schema: "jobs" })
 *   return yield* store.stats
 * }).pipe(
 *   Effect.scoped,
 *   Effect.provide(PgClient.layer({ url: Redacted.make("postgres://localhost/app") }))
 * )
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make: (
  options?: PgJobStoreOptions | undefined
) => Effect.Effect<JobStore.Service, JobStoreError, PgClient.PgClient | Scope.Scope> = internal.make

/**
 * A layer that provides a PostgreSQL job store (see {@link make}) on the `PgClient` it is given.
 *
 * @example
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Layer, Redacted, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 * import * as PgJobStore from "effect-worker-context/PgJobStore"
 *
 * const SendEmail = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
 *
 * const Store = PgJobStore.layer().pipe(
 *   Layer.provide(PgClient.layer({ url: Redacted.make("postgres://localhost/app") }))
 * )
 *
 * const program = SendEmail.enqueue({ to: "ada@example.com" }).pipe(Effect.provide(Store))
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (
  options?: PgJobStoreOptions | undefined
): Layer.Layer<JobStore, JobStoreError, PgClient.PgClient> => Layer.scoped(JobStore, internal.make(options))
