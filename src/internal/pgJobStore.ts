/**
 * The PostgreSQL job store's driver (see `docs/postgres.md` for the schema and the lease model), made into a
 * `JobStore` by `JobStore.make`, which checks the arguments and encodes the payloads.
 *
 * Three kinds of connections:
 * - `enqueue` (in `pgEnqueue.ts`) and the migration run on the caller's `PgClient`, so that an enqueue inside
 *   `sql.withTransaction` joins that transaction.
 * - Everything else (`claim`, `renew`, `settle`, `reap`, the wake-up queries, `stats`, `deadLetters`, `redrive`) runs
 *   on a small pool of raw `pg` clients of the store's own (`makeConnections`, in `pgConnections.ts`).
 *   `@effect/sql-pg` gives an interrupted query's connection back to its pool, whose next caller then waits on the
 *   same stalled backend; here an interrupted call destroys its connection's socket, and the next call gets a fresh
 *   connection.
 * - The listening connection, and the wake-ups and cancellations it hears, are `pgWakeups.ts`'s.
 *
 * With `batchAcks`, the settles of concurrent callers are sent together (`pgSettleBatches.ts`).
 *
 * The statements are in `pgStatements.ts`. Timestamps travel as ISO strings in and epoch milliseconds out, ids and
 * tokens as text: on the caller's `PgClient` they run `withoutTransform`, and the
 * store's own connections parse only the types its statements return (`types`, in `pgConnections.ts`), so no name
 * transform or type parser the user configured changes what the store reads.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Mutable } from "effect/Types"
import Pg from "pg"
import {
  type BuriedJob,
  type CancelResult,
  type DeadJob,
  type JobStats,
  type JobStore,
  JobStoreError,
  type Lease,
  make as makeJobStore,
  type QueueStats,
  type RunNowResult,
  type Settlement
} from "../JobStore.js"
import type { PgJobStoreOptions } from "../PgJobStore.js"
import {
  invalidOption as storeInvalidOption,
  pruneBatch,
  retentionOption,
  succeededRetentionOption
} from "./jobStore.js"
import { clientConfig, makeConnections } from "./pgConnections.js"
import { makeEnqueues } from "./pgEnqueue.js"
import { latestVersion, prepare } from "./pgMigrations.js"
import { batchSettles } from "./pgSettleBatches.js"
import {
  buriedJob,
  cancelBatchStatement,
  claimedJob,
  claimOrder,
  type ClaimRow,
  Kind,
  kindOf,
  listStatement,
  statements,
  storedJob,
  type StoredRow
} from "./pgStatements.js"
import { makeWakeups } from "./pgWakeups.js"

/** @internal */
export const defaults = {
  schema: "effect_worker",
  listenCheckInterval: Duration.seconds(10),
  /** The deadline of every call on the store's own connections. */
  callTimeout: Duration.seconds(10),
  /** The store's own connections, at most. */
  maxConnections: 4,
  /** An idle connection of the store's own is closed after this long. */
  idleTimeout: Duration.seconds(30),
  /** The most settlements one statement carries. */
  maxSettleBatch: 1_000,
  /** The longest a `wakeups` subscription waits for the listening connection before it returns. */
  listenWait: Duration.seconds(5),
  /** Enqueues of a key that was taken while the statement ran are retried this many times. */
  keyRetries: 10
} as const

const schemaPattern = /^[a-z_][a-z0-9_]{0,47}$/

const invalidOption = (option: string, value: unknown, expected: string) =>
  storeInvalidOption("PgJobStore", option, value, expected)

/** A decimal bigint as PostgreSQL's `bigint` takes it: ids and tokens that are not one are unknown, never an error. */
const isBigintText = (value: string): boolean => /^[1-9][0-9]{0,17}$/.test(value)

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

interface ErrorLike {
  readonly code?: unknown
  readonly message?: unknown
  readonly address?: unknown
  readonly port?: unknown
  readonly hostname?: unknown
  readonly errors?: unknown
  readonly cause?: unknown
}

/**
 * The errors of the chain under an `SqlError`, outermost first, down to the first with a `code` (a driver or system
 * error: what says what really failed) or the innermost.
 */
const errorChain = (error: unknown): ReadonlyArray<ErrorLike> => {
  const chain: Array<ErrorLike> = []
  let current: unknown = error
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    const like = current as ErrorLike
    chain.push(like)
    if (typeof like.code === "string") break
    current = Array.isArray(like.errors) && like.errors.length > 0 ? like.errors[0] : like.cause
  }
  return chain
}

/**
 * Says what failed in words an operator acts on: the address a connection was refused at, the schema that is
 * missing, the permission that is lacking, the lock that kept it waiting.
 *
 * @internal
 */
export const describeError = (error: unknown, schema: string): string => {
  const chain = errorChain(error)
  const root = chain[chain.length - 1]
  const message = typeof root?.message === "string" ? root.message : String(error)
  switch (root?.code) {
    case "EWC_CALL_TIMEOUT":
    case "EWC_CLOSED":
      return message
    case "ECONNREFUSED":
      return `connection refused to ${String(root.address ?? "?")}:${String(root.port ?? "?")}`
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `host not found: ${String(root.hostname ?? message)}`
    case "ETIMEDOUT":
      return `connection timed out${root.address !== undefined ? ` to ${root.address}:${root.port}` : ""}`
    case "ECONNRESET":
    case "EPIPE":
      return `connection lost: ${message}`
    case "3F000":
    case "42P01":
    case "42883":
      return `schema "${schema}" is missing or not migrated (build the store with migrate: true): ${message}`
    case "42501":
      return `permission denied: ${message}`
    case "28P01":
    case "28000":
      return `authentication failed: ${message}`
    case "55P03":
      return `another session holds a lock on the store's tables (lock_timeout): ${message}`
    case "57014":
      return `the statement ran past its deadline (statement_timeout): ${message}`
    case "57P01":
      // admin_shutdown: what `pg_terminate_backend` sends, and what a fast or smart shutdown sends every backend.
      return `the connection was terminated by an administrator (pg_terminate_backend) or a server shutdown: ${message}`
    case "57P02":
    case "57P03":
      return `the server is shutting down or starting up: ${message}`
    case "53300":
      return `too many connections: ${message}`
  }
  if (/timeout/i.test(message)) return `connection timed out: ${message}`
  if (/Connection terminated/i.test(message)) return `connection lost: ${message}`
  if (typeof root?.code === "string") return message
  // No code to go by: every message of the chain, the innermost last ("Connection error: ..." alone says nothing).
  const messages = chain.flatMap((like) =>
    typeof like.message === "string" && like.message !== "" ? [like.message] : []
  )
  return messages.length > 0 ? [...new Set(messages)].join(": ") : String(error)
}

// ---------------------------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------------------------

const durationOption = (
  name: string,
  value: Duration.DurationInput | undefined,
  fallback: Duration.Duration
): Effect.Effect<Duration.Duration> => {
  if (value === undefined) return Effect.succeed(fallback)
  const decoded = Option.getOrUndefined(Duration.decodeUnknown(value))
  if (decoded === undefined || !Duration.isFinite(decoded) || Duration.toMillis(decoded) <= 0) {
    return invalidOption(name, value, "a finite duration above zero")
  }
  return Effect.succeed(decoded)
}

/** Counts of no job, to add rows' counts to. */
const noCounts = (): Mutable<QueueStats> => ({ ready: 0, scheduled: 0, leased: 0, dead: 0, cancelled: 0, succeeded: 0 })

/** Adds `counts` to `sum`, state by state. */
const addCounts = (sum: Mutable<QueueStats>, counts: QueueStats): void => {
  for (const state of Object.keys(sum) as Array<keyof QueueStats>) sum[state] += counts[state]
}

/** @internal */
export const make = (
  options?: PgJobStoreOptions,
  /** Plays a store of an earlier release, which knows the schema versions up to this one only (for tests). */
  schemaVersion?: number
): Effect.Effect<JobStore.Service, JobStoreError, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function*() {
    const schema = options?.schema ?? defaults.schema
    if (typeof schema !== "string" || !schemaPattern.test(schema)) {
      return yield* invalidOption(
        "schema",
        schema,
        "a lower-case SQL identifier of at most 48 characters (letters, digits and _, not starting with a digit)"
      )
    }
    const migrateOption = options?.migrate ?? true
    if (typeof migrateOption !== "boolean") return yield* invalidOption("migrate", migrateOption, "true or false")
    const listen = options?.listen ?? true
    if (typeof listen !== "boolean") return yield* invalidOption("listen", listen, "true or false")
    const batchAcks = options?.batchAcks ?? true
    if (typeof batchAcks !== "boolean") return yield* invalidOption("batchAcks", batchAcks, "true or false")
    const keepSucceeded = succeededRetentionOption(options?.succeededRetention)
    if (keepSucceeded === undefined) {
      return yield* invalidOption("succeededRetention", options?.succeededRetention, "a duration")
    }
    const retention = retentionOption(options?.deadLetterRetention)
    if (retention === undefined) {
      return yield* invalidOption("deadLetterRetention", options?.deadLetterRetention, "a duration above zero")
    }
    const checkInterval = yield* durationOption(
      "listenCheckInterval",
      options?.listenCheckInterval,
      defaults.listenCheckInterval
    )
    const callTimeout = yield* durationOption("callTimeout", options?.callTimeout, defaults.callTimeout)
    const maxConnections = options?.maxConnections ?? defaults.maxConnections
    if (typeof maxConnections !== "number" || !Number.isSafeInteger(maxConnections) || maxConnections < 1) {
      return yield* invalidOption("maxConnections", maxConnections, "an integer of 1 or more")
    }

    const client = yield* PgClient.PgClient
    const s = Pg.escapeIdentifier(schema)
    const channel = `${schema}.wakeups`
    const sql = statements(s, schemaVersion, keepSucceeded > 0)
    const version = schemaVersion ?? latestVersion
    const failed = (operation: string) => (error: unknown) =>
      new JobStoreError({ operation, reason: describeError(error, schema), cause: error })

    // Refuses a schema this release cannot work with, and migrates one that lacks versions when allowed.
    yield* prepare(client, schema, s, migrateOption, (error) => describeError(error, schema), schemaVersion)

    const own = yield* makeConnections({
      config: clientConfig(client.config, "store"),
      max: maxConnections,
      callTimeout,
      idleTimeout: defaults.idleTimeout
    })
    /** Runs a statement on the store's own connections, prepared under `name` when given. */
    const run = <A>(operation: string, text: string, params: ReadonlyArray<unknown>, name?: string) =>
      Effect.mapError(own<A>(name, text, params), failed(operation))

    const wakeups = yield* makeWakeups({
      listen,
      config: clientConfig(client.config, "listen"),
      channel,
      checkInterval,
      liveWithin: Duration.min(callTimeout, defaults.listenWait),
      readyQueues: Effect.map(
        run<{ readonly queue: string }>("wakeups", sql.readyQueues, []),
        (rows) => rows.map((row) => row.queue)
      ),
      notify: (payload) => run("wakeups", `SELECT pg_notify($1, $2)`, [channel, payload]),
      describe: (error) => describeError(error, schema)
    })

    // The enqueues, on the caller's connection.
    const enqueues = makeEnqueues({ client, sql, channel, failed, version, keyRetries: defaults.keyRetries })

    /** One settle statement for `settlements`: which applied, in order. */
    const settleNow = (settlements: ReadonlyArray<Settlement>): Effect.Effect<Array<boolean>, JobStoreError> => {
      const ids: Array<string> = []
      const tokens: Array<string> = []
      const kinds: Array<string> = []
      const delays: Array<number> = []
      const errors: Array<string | null> = []
      const runMs: Array<number | null> = []
      const results: Array<string | null> = []
      const sent = new Set<string>()
      // Each settlement's `id:token`, or undefined when it is not sent (not a lease of this store, or a repeat).
      const keys: Array<string | undefined> = settlements.map(({ durationMs, lease, outcome, result }) => {
        const key = `${lease.jobId}:${lease.token}`
        if (!isBigintText(lease.jobId) || !isBigintText(lease.token) || sent.has(key)) return undefined
        sent.add(key)
        ids.push(lease.jobId)
        tokens.push(lease.token)
        kinds.push(kindOf({ lease, outcome }))
        delays.push(
          outcome._tag === "Retry" || outcome._tag === "Snoozed" ? Math.ceil(Duration.toMillis(outcome.delay)) : 0
        )
        errors.push(outcome._tag === "Retry" || outcome._tag === "Dead" ? outcome.error : null)
        runMs.push(durationMs ?? null)
        results.push(result === undefined ? null : JSON.stringify(result))
        return key
      })
      if (ids.length === 0) return Effect.succeed(keys.map(() => false))
      // A batch of completions only (the common case) is one plain DELETE, prepared. The statement for every kind is
      // planned at each call: its generic plan, the one a prepared statement settles on, measured slower.
      const completions = kinds.every((kind) => kind === Kind.Completed)
      return Effect.map(
        completions
          ? run<{ readonly applied: string | ReadonlyArray<string> }>(
            "settle",
            sql.complete,
            keepSucceeded > 0
              ? [ids.join(","), tokens.join(","), runMs, results]
              : [ids.join(","), tokens.join(",")],
            "ewc_complete"
          )
          : run<{ readonly applied: string | ReadonlyArray<string> }>(
            "settle",
            sql.settle,
            keepSucceeded > 0
              ? [channel, ids.join(","), tokens.join(","), kinds, delays, errors, runMs, results]
              : [channel, ids.join(","), tokens.join(","), kinds, delays, errors],
            undefined
          ),
        (rows) => {
          const applied = new Set(rows.flatMap((row) => row.applied))
          return keys.map((key) => key !== undefined && applied.has(key))
        }
      )
    }

    /** Settles in statements of at most `maxSettleBatch` settlements, one after the other. */
    const settleChunked = (settlements: ReadonlyArray<Settlement>) =>
      settlements.length <= defaults.maxSettleBatch
        ? settleNow(settlements)
        : Effect.map(
          Effect.forEach(
            Array.from(
              { length: Math.ceil(settlements.length / defaults.maxSettleBatch) },
              (_, i) => settlements.slice(i * defaults.maxSettleBatch, (i + 1) * defaults.maxSettleBatch)
            ),
            settleNow
          ),
          (results) => results.flat()
        )

    const settle = batchAcks ? yield* batchSettles(settleChunked) : settleChunked

    /** Whether the last prune deleted a full batch: the next call is the same round's, and does not fold again. */
    let pruneMore = false
    const driver: JobStore.Driver = {
      name: "PgJobStore",
      insert: enqueues.insert,
      enqueueSlot: enqueues.enqueueSlot,
      claim: (request) => {
        if (request.queues.length === 0 || request.names.length === 0) {
          return Effect.succeed({ jobs: [], buried: [] })
        }
        return Effect.map(
          run<ClaimRow>("claim", sql.claim, [
            request.queues,
            request.names,
            request.limit,
            Duration.toMillis(request.lease),
            String(request.worker)
          ], "ewc_claim"),
          (rows) => {
            const jobs: Array<ClaimRow> = []
            const buried: Array<BuriedJob> = []
            for (const row of rows) {
              if (row.kind === "c") jobs.push(row)
              else buried.push(buriedJob(row, row.attempts))
            }
            return { jobs: jobs.sort(claimOrder).map(claimedJob), buried }
          }
        )
      },
      renew: (leases, lease) => {
        const valid = leases.filter((held) => isBigintText(held.jobId) && isBigintText(held.token))
        if (valid.length === 0) return Effect.succeed(leases.map((held) => held.jobId))
        return Effect.map(
          run<{ readonly id: string; readonly token: string }>("renew", sql.renew, [
            valid.map((held) => held.jobId).join(","),
            valid.map((held) => held.token).join(","),
            Duration.toMillis(lease)
          ], "ewc_renew"),
          (rows) => {
            const renewed = new Set(rows.map((row) => `${row.id}:${row.token}`))
            return leases.filter((held: Lease) => !renewed.has(`${held.jobId}:${held.token}`)).map((held) => held.jobId)
          }
        )
      },
      settle: (settlements) => settle(settlements),
      // The jobs kept to run after a holder that is gone are promoted at each reap (see `promoteOrphans`).
      reap: Effect.map(
        run<{ readonly found: number; readonly buried: ReadonlyArray<BuriedJob> }>(
          "reap",
          sql.reap,
          [channel],
          "ewc_reap"
        ),
        ([row]) => ({ reaped: row!.found, buried: row!.buried.map((job) => buriedJob(job, job.attempt)) })
      ).pipe(
        Effect.tap(() => version >= 7 ? run("reap", sql.promoteOrphans, [channel]) : Effect.void)
      ),
      // The counts' deltas are folded, and the counts of lanes gone dropped, before the dead letters are pruned.
      prune: Effect.gen(function*() {
        // The counts are folded once per round of prunes: not again by the calls that follow a full batch.
        if (!pruneMore) {
          yield* run("prune", sql.fold, [], "ewc_fold")
          yield* run("prune", sql.dropZeroCounts, [], "ewc_drop_zero_counts")
        }
        let pruned = 0
        if (Duration.isFinite(retention)) {
          const [row] = yield* run<{ readonly pruned: number }>(
            "prune",
            sql.prune,
            [Duration.toMillis(retention), pruneBatch],
            "ewc_prune"
          )
          pruned += row!.pruned
        }
        if (keepSucceeded > 0 && keepSucceeded !== Infinity) {
          const [row] = yield* run<{ readonly pruned: number }>(
            "prune",
            sql.pruneSucceeded,
            [keepSucceeded, pruneBatch],
            "ewc_prune_succeeded"
          )
          pruned += row!.pruned
        }
        // A full batch of either kind: more may be left.
        pruneMore = pruned >= pruneBatch
        return { pruned, more: pruneMore }
      }),
      wakeups: wakeups.subscribe,
      stats: Effect.map(
        run<{ readonly queue: string; readonly name: string | null; readonly paused: boolean } & QueueStats>(
          "stats",
          sql.stats,
          []
        ),
        (rows): JobStats => {
          const total = noCounts()
          const byQueue = new Map<string, Mutable<QueueStats>>()
          const byName = new Map<string, number>()
          const paused: Array<string> = []
          for (const { name, paused: isPaused, queue, ...counts } of rows) {
            if (isPaused) {
              paused.push(queue)
              continue
            }
            addCounts(total, counts)
            let sum = byQueue.get(queue)
            if (sum === undefined) byQueue.set(queue, sum = noCounts())
            addCounts(sum, counts)
            if (name !== null && counts.ready > 0) byName.set(name, (byName.get(name) ?? 0) + counts.ready)
          }
          // `fromEntries` defines own properties, so a queue named "__proto__" is a queue like any other.
          return {
            ...total,
            byQueue: Object.fromEntries(byQueue),
            readyByName: Object.fromEntries(byName),
            pausedQueues: paused.sort()
          }
        }
      ),
      deadLetters: (list) => {
        const limit = list?.limit ?? 100
        if (limit === 0) return Effect.succeed([])
        return Effect.map(
          run<
            {
              readonly id: string
              readonly name: string
              readonly queue: string
              readonly payload: unknown
              readonly attempts: number
              readonly last_error: string
              readonly failed_at: number
            }
          >(
            "deadLetters",
            list?.queue === undefined ? sql.deadLetters : sql.deadLettersOfQueue,
            list?.queue === undefined ? [limit] : [limit, list.queue]
          ),
          (rows) =>
            rows.map((row): DeadJob => ({
              id: row.id,
              name: row.name,
              queue: row.queue,
              payload: row.payload,
              attempts: row.attempts,
              lastError: row.last_error,
              failedAt: new Date(row.failed_at)
            }))
        )
      },
      redrive: (ids) => {
        const valid = ids.filter(isBigintText)
        if (valid.length === 0) return Effect.succeed(0)
        return Effect.map(
          run<{ readonly moved: number }>("redrive", sql.redrive, [channel, valid]),
          ([row]) => row!.moved
        )
      },
      get: (id) =>
        isBigintText(id)
          ? Effect.map(run<StoredRow>("get", sql.get, [id]), (rows) => rows[0] && storedJob(rows[0]))
          : Effect.succeed(undefined),
      list: (options) => {
        const { params, text } = listStatement(s, version, options)
        return Effect.map(run<StoredRow>("list", text, params), (rows) => {
          const jobs = rows.slice(0, options.limit).map(storedJob)
          return { jobs, next: rows.length > options.limit ? jobs[jobs.length - 1]!.id : undefined }
        })
      },
      cancel: (id) =>
        isBigintText(id)
          ? Effect.map(
            run<{ readonly cancelled: number; readonly ended: boolean }>("cancel", sql.cancel, [channel, id]),
            ([row]): CancelResult => row!.cancelled > 0 ? "cancelled" : row!.ended ? "alreadyFinished" : "notFound"
          )
          : Effect.succeed("notFound"),
      cancelBatch: (filter, limit) => {
        const { params, text } = cancelBatchStatement(s, channel, filter, limit)
        return Effect.map(run<{ readonly cancelled: number }>("cancelMany", text, params), ([row]) => row!.cancelled)
      },
      cancellations: wakeups.cancellations,
      delete: (ids) => {
        const valid = ids.filter(isBigintText)
        if (valid.length === 0) return Effect.succeed(0)
        return Effect.map(run<{ readonly deleted: number }>("delete", sql.delete, [valid]), ([row]) => row!.deleted)
      },
      runNow: (id) =>
        isBigintText(id)
          ? Effect.map(
            run<{ readonly moved: number; readonly found: boolean }>("runNow", sql.runNow, [channel, id]),
            ([row]): RunNowResult => row!.moved > 0 ? "ready" : row!.found ? "notScheduled" : "notFound"
          )
          : Effect.succeed("notFound"),
      pauseQueue: (queue) => Effect.asVoid(run("pauseQueue", sql.pauseQueue, [queue])),
      resumeQueue: (queue) => Effect.asVoid(run("resumeQueue", sql.resumeQueue, [channel, queue]))
    }
    return makeJobStore(driver)
  })
