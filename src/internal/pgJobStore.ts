/**
 * The PostgreSQL job store: every port operation is one SQL statement (see `docs/postgres.md` for the schema and
 * the lease model). Statements are written out in full, with the schema's quoted name in them, and run with
 * `unsafe(...).withoutTransform`, so a `PgClient` configured to transform names or JSON changes nothing here.
 * Timestamps travel as ISO strings in and epoch milliseconds out, ids and tokens as text: no driver type parser
 * the user configured can change what the store reads.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import Pg from "pg"
import {
  type ClaimedJob,
  type DeadJob,
  type JobStats,
  JobStore,
  JobStoreError,
  type Lease,
  LeaseLost,
  type NewJob,
  type QueueStats
} from "../JobStore.js"
import type { PgJobStoreOptions } from "../PgJobStore.js"
import * as storeArgs from "./storeArgs.js"

type Service = JobStore.Service

/** @internal */
export const defaults = {
  schema: "effect_worker",
  listenCheckInterval: Duration.seconds(10),
  /** The most acknowledgements one batched statement carries. */
  maxAckBatch: 1_000
} as const

const schemaPattern = /^[a-z_][a-z0-9_]{0,47}$/

const invalidOption = (option: string, value: unknown, expected: string) =>
  storeArgs.invalidOption("PgJobStore", option, value, expected)

const illegal = (operation: string, problem: storeArgs.Problem) => storeArgs.illegal("PgJobStore", operation, problem)

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

/** The innermost driver or system error under an `SqlError`: what says what really failed. */
const rootCause = (error: unknown): ErrorLike | undefined => {
  let current: unknown = error
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const like = current as ErrorLike
    if (typeof like.code === "string") return like
    if (Array.isArray(like.errors) && like.errors.length > 0) current = like.errors[0]
    else current = like.cause
  }
  return typeof current === "object" && current !== null ? current as ErrorLike : undefined
}

/**
 * Says what failed in words an operator acts on: the address a connection was refused at, the schema that is
 * missing, the permission that is lacking.
 *
 * @internal
 */
export const describeError = (error: unknown, schema: string): string => {
  const root = rootCause(error)
  const message = typeof root?.message === "string" ? root.message : String(error)
  switch (root?.code) {
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
    case "57P01":
    case "57P02":
    case "57P03":
      return `the server is shutting down or starting up: ${message}`
    case "53300":
      return `too many connections: ${message}`
  }
  if (/timeout/i.test(message)) return `connection timed out: ${message}`
  if (/Connection terminated/i.test(message)) return `connection lost: ${message}`
  return message
}

// ---------------------------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------------------------

/** The migrations, in order: each one an effect of statements, run once per schema by `@effect/sql`'s Migrator. */
const migrations = (s: string): Record<string, Effect.Effect<void, SqlError, SqlClient.SqlClient>> => ({
  "1_jobs": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach([
      `CREATE SEQUENCE ${s}.job_ids`,
      `CREATE SEQUENCE ${s}.lease_tokens`,
      // The store's clock: every statement judges time by it. Tests replace it with one they can move.
      `CREATE FUNCTION ${s}.clock() RETURNS timestamptz LANGUAGE sql STABLE AS 'SELECT statement_timestamp()'`,
      `CREATE TABLE ${s}.jobs (
        id bigint PRIMARY KEY,
        seq bigint NOT NULL,
        name text NOT NULL,
        queue text NOT NULL,
        payload jsonb NOT NULL,
        priority bigint NOT NULL,
        key text,
        attempts bigint NOT NULL DEFAULT 0,
        max_attempts bigint NOT NULL,
        run_at timestamptz NOT NULL,
        enqueued_at timestamptz NOT NULL,
        lease_token bigint,
        lease_expires_at timestamptz,
        leased_by text,
        last_error text
      )`,
      // A queue table churns: every job is inserted, updated a few times and deleted. Vacuum and analyze it after
      // 2% of its rows changed, not PostgreSQL's default 20% (10% for analyze), so that its statistics follow.
      `ALTER TABLE ${s}.jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)`,
      `CREATE UNIQUE INDEX jobs_key ON ${s}.jobs (key) WHERE key IS NOT NULL`,
      `CREATE INDEX jobs_ready ON ${s}.jobs (priority, run_at, seq) WHERE lease_token IS NULL`,
      `CREATE INDEX jobs_leased ON ${s}.jobs (lease_expires_at) WHERE lease_token IS NOT NULL`,
      `CREATE TABLE ${s}.dead_jobs (
        id bigint PRIMARY KEY,
        dead_seq bigint GENERATED ALWAYS AS IDENTITY,
        name text NOT NULL,
        queue text NOT NULL,
        payload jsonb NOT NULL,
        priority bigint NOT NULL,
        key text,
        attempts bigint NOT NULL,
        max_attempts bigint NOT NULL,
        run_at timestamptz NOT NULL,
        enqueued_at timestamptz NOT NULL,
        last_error text NOT NULL,
        failed_at timestamptz NOT NULL
      )`,
      `CREATE INDEX dead_jobs_recent ON ${s}.dead_jobs (failed_at DESC, dead_seq DESC)`,
      `CREATE INDEX dead_jobs_queue ON ${s}.dead_jobs (queue, failed_at DESC, dead_seq DESC)`
    ], (statement) =>
      sql.unsafe(statement).withoutTransform, { discard: true }))
})

/**
 * Creates the schema and runs the migrations it lacks, under a transaction-scoped advisory lock keyed by the
 * schema's name: workers that start at once migrate one after the other, and the later ones find nothing to do.
 */
const migrate = (sql: SqlClient.SqlClient, schema: string, s: string) =>
  sql.withTransaction(Effect.gen(function*() {
    yield* sql.unsafe(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`effect-worker-context:${schema}`])
      .withoutTransform
    yield* sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${s}`).withoutTransform
    // The Migrator creates its table only after a failed lookup, which would abort this transaction: create it first.
    yield* sql.unsafe(
      `CREATE TABLE IF NOT EXISTS ${s}.migrations (
        migration_id integer PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        name text NOT NULL
      )`
    ).withoutTransform
    yield* Migrator.make({})({ loader: Migrator.fromRecord(migrations(s)), table: `${schema}.migrations` })
  })).pipe(Effect.provideService(SqlClient.SqlClient, sql))

// ---------------------------------------------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------------------------------------------

/** Epoch milliseconds of a timestamp column, as a float the driver reads as a number. */
const ms = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`

/** The columns of a claimed job, in the order `claimedJob` reads them. */
const claimedColumns = (t: string) =>
  `${t}.id::text AS id, ${t}.name, ${t}.queue, ${t}.payload, ${t}.attempts::float8 AS attempts,
   ${t}.max_attempts::float8 AS max_attempts, ${t}.priority::float8 AS priority, ${t}.key,
   ${ms(`${t}.enqueued_at`)} AS enqueued_at, ${ms(`${t}.run_at`)} AS run_at, ${t}.lease_token::text AS token,
   ${ms(`${t}.lease_expires_at`)} AS lease_expires_at, ${t}.seq::float8 AS seq`

/**
 * Notifies `channel` (the placeholder of the store's channel) once with the distinct queues of `rows` that are `ready`, as a JSON array;
 * when the array would not fit in a notification's 8,000 bytes, with `*` instead (the listener then asks the
 * database which queues have ready jobs).
 */
const notifyReady = (channel: string, rows: string, where: string) =>
  `SELECT pg_notify(${channel}, CASE WHEN octet_length(q) < 7900 THEN q ELSE '*' END)
   FROM (SELECT json_agg(DISTINCT queue)::text AS q FROM ${rows} WHERE ${where}) AS agg WHERE q IS NOT NULL`

/** @internal The store's statements, for the schema whose quoted name is `s`. */
export const statements = (s: string) => {
  /** Moves the rows of `source` (deleted from `jobs`) to the dead letters with `error`. */
  const bury = (source: string, error: string) =>
    `INSERT INTO ${s}.dead_jobs (id, name, queue, payload, priority, key, attempts, max_attempts, run_at, enqueued_at,
                                 last_error, failed_at)
     SELECT id, name, queue, payload, priority, key, attempts, max_attempts, run_at, enqueued_at, ${error},
            ${s}.clock() FROM ${source}
     RETURNING id`
  /** The jobs whose lease expired on their last attempt: dead, though no reap has said so yet. */
  const exhausted = `DELETE FROM ${s}.jobs WHERE id IN (
      SELECT id FROM ${s}.jobs
      WHERE lease_token IS NOT NULL AND lease_expires_at <= ${s}.clock() AND attempts >= max_attempts
      FOR UPDATE SKIP LOCKED
    ) RETURNING *`
  const held = `id = $1::bigint AND lease_token = $2::bigint AND lease_expires_at > ${s}.clock()`
  return {
    enqueue: `
      WITH input AS (
        SELECT x.o, x.name, x.queue, x.payload, x.run_at, x.priority, x.key, x.max_attempts,
               nextval('${s}.job_ids') AS id
        FROM jsonb_to_recordset($2::jsonb) AS x(o int, name text, queue text, payload jsonb, run_at timestamptz,
                                                priority bigint, key text, max_attempts bigint)
        ORDER BY x.o
      ), fresh AS (
        SELECT * FROM input i
        WHERE i.key IS NULL OR NOT EXISTS (SELECT 1 FROM input e WHERE e.key = i.key AND e.o < i.o)
      ), ins AS (
        INSERT INTO ${s}.jobs AS j (id, seq, name, queue, payload, priority, key, max_attempts, run_at, enqueued_at)
        SELECT id, id, name, queue, payload, priority, key, max_attempts, run_at, ${s}.clock() FROM fresh ORDER BY o
        ON CONFLICT (key) WHERE key IS NOT NULL DO UPDATE SET key = EXCLUDED.key
        RETURNING j.id, j.key, j.queue, (j.xmax = 0) AS inserted, j.run_at <= ${s}.clock() AS ready
      ), woken AS (${notifyReady("$1", "ins", "inserted AND ready")})
      SELECT (SELECT json_agg(id::text ORDER BY o) FROM input) AS ids,
             (SELECT json_object_agg(key, id::text) FROM ins WHERE key IS NOT NULL) AS keyed,
             (SELECT count(*) FROM woken)::int AS woken`,
    claim: `
      WITH ready AS (
        SELECT id, priority, run_at, seq FROM ${s}.jobs
        WHERE lease_token IS NULL AND run_at <= ${s}.clock() AND queue = ANY($1::text[]) AND name = ANY($2::text[])
        ORDER BY priority, run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED
      ), expired AS (
        SELECT id, priority, run_at, seq FROM ${s}.jobs
        WHERE lease_token IS NOT NULL AND lease_expires_at <= ${s}.clock() AND attempts < max_attempts
          AND queue = ANY($1::text[]) AND name = ANY($2::text[])
        ORDER BY priority, run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED
      ), chosen AS (
        SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM expired) AS c
        ORDER BY priority, run_at, seq LIMIT $3
      ), exhausted AS (${exhausted}), buried AS (${bury("exhausted", "'lease expired'")})
      UPDATE ${s}.jobs AS j
      SET attempts = j.attempts + 1, lease_token = nextval('${s}.lease_tokens'),
          lease_expires_at = ${s}.clock() + $4::float8 * interval '1 millisecond', leased_by = $5
      FROM chosen WHERE j.id = chosen.id
      RETURNING ${claimedColumns("j")}`,
    renew: `
      UPDATE ${s}.jobs AS j SET lease_expires_at = ${s}.clock() + $3::float8 * interval '1 millisecond'
      FROM unnest($1::bigint[], $2::bigint[]) AS l(id, token)
      WHERE j.id = l.id AND j.lease_token = l.token AND j.lease_expires_at > ${s}.clock()
      RETURNING j.id::text AS id, j.lease_token::text AS token`,
    complete: `DELETE FROM ${s}.jobs WHERE id = $1::bigint AND lease_token = $2::bigint
      AND lease_expires_at > ${s}.clock() RETURNING id::text AS id`,
    completeMany: `
      DELETE FROM ${s}.jobs AS j USING unnest($1::bigint[], $2::bigint[]) AS l(id, token)
      WHERE j.id = l.id AND j.lease_token = l.token AND j.lease_expires_at > ${s}.clock()
      RETURNING j.id::text AS id, j.lease_token::text AS token`,
    retry: `
      WITH u AS (
        UPDATE ${s}.jobs SET lease_token = NULL, lease_expires_at = NULL, leased_by = NULL,
          run_at = $3::timestamptz, last_error = $4
        WHERE ${held}
        RETURNING queue, run_at <= ${s}.clock() AS ready
      ), woken AS (${notifyReady("$5", "u", "ready")})
      SELECT (SELECT count(*) FROM u)::int AS changed, (SELECT count(*) FROM woken)::int AS woken`,
    deadLetter: `
      WITH d AS (
        DELETE FROM ${s}.jobs WHERE ${held} RETURNING *
      ), buried AS (${bury("d", "$3")})
      SELECT count(*)::int AS changed FROM buried`,
    release: `
      WITH u AS (
        UPDATE ${s}.jobs SET lease_token = NULL, lease_expires_at = NULL, leased_by = NULL,
          attempts = attempts - CASE WHEN $3::boolean THEN 1 ELSE 0 END
        WHERE ${held}
        RETURNING queue, true AS ready
      ), woken AS (${notifyReady("$4", "u", "ready")})
      SELECT (SELECT count(*) FROM u)::int AS changed, (SELECT count(*) FROM woken)::int AS woken`,
    reap: `
      WITH expired AS (
        SELECT id FROM ${s}.jobs WHERE lease_token IS NOT NULL AND lease_expires_at <= ${s}.clock()
        FOR UPDATE SKIP LOCKED
      ), dead AS (
        DELETE FROM ${s}.jobs AS j USING expired e WHERE j.id = e.id AND j.attempts >= j.max_attempts RETURNING j.*
      ), buried AS (${bury("dead", "'lease expired'")}), revived AS (
        UPDATE ${s}.jobs AS j SET lease_token = NULL, lease_expires_at = NULL, leased_by = NULL,
          last_error = 'lease expired'
        FROM expired e WHERE j.id = e.id AND j.attempts < j.max_attempts
        RETURNING j.queue, true AS ready
      ), woken AS (${notifyReady("$1", "revived", "ready")})
      SELECT (SELECT count(*) FROM expired)::int AS found, (SELECT count(*) FROM buried)::int AS buried,
             (SELECT count(*) FROM woken)::int AS woken`,
    stats: `
      WITH now AS (SELECT ${s}.clock() AS t), live AS (
        SELECT queue,
          count(*) FILTER (WHERE (lease_token IS NULL AND run_at <= now.t)
            OR (lease_token IS NOT NULL AND lease_expires_at <= now.t AND attempts < max_attempts))::float8 AS ready,
          count(*) FILTER (WHERE lease_token IS NULL AND run_at > now.t)::float8 AS scheduled,
          count(*) FILTER (WHERE lease_token IS NOT NULL AND lease_expires_at > now.t)::float8 AS leased,
          count(*) FILTER (WHERE lease_token IS NOT NULL AND lease_expires_at <= now.t
            AND attempts >= max_attempts)::float8 AS dead
        FROM ${s}.jobs, now GROUP BY queue
      ), dead AS (
        SELECT queue, 0::float8, 0::float8, 0::float8, count(*)::float8 FROM ${s}.dead_jobs GROUP BY queue
      )
      SELECT queue, sum(ready)::float8 AS ready, sum(scheduled)::float8 AS scheduled, sum(leased)::float8 AS leased,
             sum(dead)::float8 AS dead
      FROM (SELECT * FROM live UNION ALL SELECT * FROM dead) AS counts GROUP BY queue`,
    deadLetters: `
      SELECT id::text AS id, name, queue, payload, attempts::float8 AS attempts, last_error,
             ${ms("failed_at")} AS failed_at
      FROM ${s}.dead_jobs WHERE ($2::text IS NULL OR queue = $2) ORDER BY failed_at DESC, dead_seq DESC LIMIT $1`,
    redrive: `
      WITH moved AS (
        INSERT INTO ${s}.jobs (id, seq, name, queue, payload, priority, key, max_attempts, attempts, run_at,
                               enqueued_at)
        SELECT id, nextval('${s}.job_ids'), name, queue, payload, priority, key, max_attempts, 0, ${s}.clock(),
               ${s}.clock()
        FROM (SELECT * FROM ${s}.dead_jobs WHERE id = ANY($2::bigint[]) ORDER BY dead_seq) AS d
        ON CONFLICT DO NOTHING
        RETURNING id, queue, true AS ready
      ), gone AS (
        DELETE FROM ${s}.dead_jobs AS d USING moved m WHERE d.id = m.id RETURNING d.id
      ), woken AS (${notifyReady("$1", "moved", "ready")})
      SELECT (SELECT count(*) FROM gone)::int AS moved, (SELECT count(*) FROM woken)::int AS woken`,
    neverAnalyzed: `SELECT (last_analyze IS NULL AND last_autoanalyze IS NULL) AS never
      FROM pg_stat_user_tables WHERE relid = $1::regclass`,
    analyze: `ANALYZE ${s}.jobs`,
    readyQueues: `SELECT DISTINCT queue FROM ${s}.jobs WHERE lease_token IS NULL AND run_at <= ${s}.clock()`
  }
}

interface ClaimedRow {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly payload: unknown
  readonly attempts: number
  readonly max_attempts: number
  readonly priority: number
  readonly key: string | null
  readonly enqueued_at: number
  readonly run_at: number
  readonly token: string
  readonly lease_expires_at: number
  readonly seq: number
}

const claimedJob = (row: ClaimedRow): ClaimedJob => ({
  id: row.id,
  name: row.name,
  queue: row.queue,
  payload: row.payload,
  attempt: row.attempts,
  maxAttempts: row.max_attempts,
  priority: row.priority,
  key: row.key ?? undefined,
  enqueuedAt: new Date(row.enqueued_at),
  runAt: new Date(row.run_at),
  lease: { jobId: row.id, token: row.token },
  leaseExpiresAt: new Date(row.lease_expires_at)
})

const claimOrder = (a: ClaimedRow, b: ClaimedRow) => a.priority - b.priority || a.run_at - b.run_at || a.seq - b.seq

// ---------------------------------------------------------------------------------------------------------------
// Wake-ups: LISTEN on a connection of its own
// ---------------------------------------------------------------------------------------------------------------

/** The settings of the listening connection, from the `PgClient`'s own. */
const listenConfig = (config: PgClient.PgClientConfig): Pg.ClientConfig => ({
  ...(config.url !== undefined ? { connectionString: Redacted.value(config.url) } : {}),
  ...(config.host !== undefined ? { host: config.host } : {}),
  ...(config.port !== undefined ? { port: config.port } : {}),
  ...(config.database !== undefined ? { database: config.database } : {}),
  ...(config.username !== undefined ? { user: config.username } : {}),
  ...(config.password !== undefined ? { password: Redacted.value(config.password) } : {}),
  ...(config.ssl !== undefined ? { ssl: config.ssl } : {}),
  ...(config.stream !== undefined ? { stream: config.stream } : {}),
  connectionTimeoutMillis: config.connectTimeout !== undefined ? Duration.toMillis(config.connectTimeout) : 10_000,
  application_name: `${config.applicationName ?? "effect-worker-context"} (listen)`,
  keepAlive: true,
  keepAliveInitialDelayMillis: 10_000
})

/**
 * One life of the listening connection: connects, listens, publishes what it hears, asks which queues have ready
 * jobs (so that nothing enqueued while it was away waits for a poll), and checks the connection every
 * `checkInterval`. Fails when the connection is lost, a check fails, or it cannot connect.
 */
const listenOnce = (
  config: Pg.ClientConfig,
  channel: string,
  checkInterval: Duration.Duration,
  received: Queue.Queue<string>,
  connected: Effect.Effect<void>
): Effect.Effect<never, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const lost = yield* Deferred.make<never, unknown>()
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async (signal) => {
          const client = new Pg.Client(config)
          client.on("error", (error) => Deferred.unsafeDone(lost, Exit.fail(error)))
          client.on("end", () => Deferred.unsafeDone(lost, Exit.fail(new Error("the listening connection ended"))))
          client.on("notification", (message) => {
            if (message.channel === channel && message.payload !== undefined) received.unsafeOffer(message.payload)
          })
          signal.addEventListener("abort", () => void client.end().catch(() => {}))
          try {
            await client.connect()
            await client.query(`LISTEN ${Pg.escapeIdentifier(channel)}`)
          } catch (error) {
            void client.end().catch(() => {})
            throw error
          }
          return client
        },
        catch: (error) => error
      }),
      (client) => Effect.promise(() => client.end().catch(() => {})).pipe(Effect.timeoutOption(1_000))
    )
    received.unsafeOffer("*")
    yield* connected
    const check: Effect.Effect<void, unknown> = Effect.tryPromise({
      try: () => client.query("SELECT 1"),
      catch: (error) => error
    }).pipe(
      Effect.timeoutFail({
        duration: Duration.seconds(5),
        onTimeout: () => new Error("the listening connection did not answer a check within 5 s")
      }),
      Effect.asVoid
    )
    return yield* Effect.raceFirst(
      Deferred.await(lost),
      Effect.forever(Effect.zipRight(Effect.sleep(checkInterval), check))
    )
  })

// ---------------------------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------------------------

interface Ack {
  readonly lease: Lease
  readonly done: Deferred.Deferred<void, JobStoreError | LeaseLost>
}

/** @internal */
export const make = (
  options?: PgJobStoreOptions
): Effect.Effect<Service, JobStoreError, PgClient.PgClient | Scope.Scope> =>
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
    const checkInterval = options?.listenCheckInterval === undefined
      ? defaults.listenCheckInterval
      : Duration.decodeUnknown(options.listenCheckInterval)
    if (
      checkInterval === undefined || !Duration.isDuration(checkInterval) || !Duration.isFinite(checkInterval) ||
      Duration.toMillis(checkInterval) <= 0
    ) {
      return yield* invalidOption("listenCheckInterval", options?.listenCheckInterval, "a finite duration above zero")
    }

    const client = yield* PgClient.PgClient
    const scope = yield* Effect.scope
    const s = Pg.escapeIdentifier(schema)
    const channel = `${schema}.wakeups`
    const sql = statements(s)
    const failed = (operation: string) => (error: unknown) =>
      new JobStoreError({ operation, reason: describeError(error, schema), cause: error })
    const run = <A extends object>(operation: string, text: string, params: ReadonlyArray<unknown>) =>
      Effect.mapError(client.unsafe<A>(text, params as Array<unknown>).withoutTransform, failed(operation))

    if (migrateOption) yield* Effect.mapError(migrate(client, schema, s), failed("migrate"))

    const hub = yield* PubSub.sliding<string>(256)
    const publishReadyQueues = Effect.flatMap(
      run<{ readonly queue: string }>("wakeups", sql.readyQueues, []),
      (rows) => PubSub.publishAll(hub, rows.map((row) => row.queue))
    )
    if (listen) {
      const received = yield* Queue.unbounded<string>()
      const forward = Effect.forever(Effect.flatMap(Queue.take(received), (payload) => {
        if (payload === "*") return Effect.ignore(publishReadyQueues)
        try {
          const queues = JSON.parse(payload) as unknown
          return Array.isArray(queues) ? PubSub.publishAll(hub, queues.map(String)) : Effect.void
        } catch {
          return Effect.void
        }
      }))
      yield* Effect.forkScoped(Effect.interruptible(forward))
      const config = listenConfig(client.config)
      let failures = 0
      const connected = Effect.suspend(() => {
        const recovered = failures > 0
        failures = 0
        return recovered ? Effect.logInfo(`PgJobStore: listening on ${channel} again`) : Effect.void
      })
      const attempt = Effect.catchAllCause(
        Effect.scoped(listenOnce(config, channel, checkInterval, received, connected)),
        (cause) =>
          Effect.suspend(() => {
            failures++
            // 100 ms after the first failure, doubling, at most 10 s: a restarted server is heard again within seconds.
            const wait = Math.min(100 * 2 ** (failures - 1), 10_000)
            const reason = describeError(Cause.squash(cause), schema)
            const log = failures === 1
              ? Effect.logWarning(`PgJobStore: the listening connection failed (${reason}); polling until it is back`)
              : Effect.logDebug(`PgJobStore: listening connection attempt ${failures} failed: ${reason}`)
            return Effect.zipRight(log, Effect.sleep(Duration.millis(wait)))
          })
      )
      yield* Effect.forkScoped(Effect.interruptible(Effect.forever(attempt)))
    }

    /**
     * Until autovacuum has analyzed `jobs` once (up to a minute after a first big batch), the planner guesses
     * that few rows match a claim, and sorts every ready job instead of scanning `jobs_ready`: a claim then costs
     * time in proportion to the backlog. So after the first enqueue of many jobs, this store analyzes the table if
     * nothing has yet, on a fiber of its own, outside the caller's transaction.
     */
    let analyzeChecked = false
    const analyzeOnce: Effect.Effect<void> = Effect.suspend(() => {
      analyzeChecked = true
      return run<{ readonly never: boolean }>("enqueue", sql.neverAnalyzed, [`${s}.jobs`]).pipe(
        Effect.flatMap(([row]) => row?.never === true ? run("enqueue", sql.analyze, []) : Effect.void),
        Effect.catchAll((error) => Effect.logDebug(`PgJobStore: could not analyze ${schema}.jobs`, error)),
        Effect.asVoid,
        Effect.mapInputContext((context: Context.Context<never>) =>
          Context.omit(SqlClient.TransactionConnection)(context) as Context.Context<never>
        ),
        Effect.forkIn(scope),
        Effect.asVoid
      )
    })

    const completeOne = (lease: Lease) =>
      Effect.flatMap(
        run<{ readonly id: string }>("complete", sql.complete, [lease.jobId, lease.token]),
        (rows) =>
          rows.length === 1 ? Effect.void : Effect.fail(new LeaseLost({ jobId: lease.jobId, operation: "complete" }))
      )

    let complete: (lease: Lease) => Effect.Effect<void, JobStoreError | LeaseLost> = completeOne
    if (batchAcks) {
      const acks = yield* Queue.unbounded<Ack>()
      const flush = Effect.flatMap(Queue.takeBetween(acks, 1, defaults.maxAckBatch), (chunk) => {
        const batch = Array.from(chunk)
        return Effect.matchEffect(
          run<{ readonly id: string; readonly token: string }>("complete", sql.completeMany, [
            batch.map((ack) => ack.lease.jobId),
            batch.map((ack) => ack.lease.token)
          ]),
          {
            onFailure: (error) =>
              Effect.sync(() => batch.forEach((ack) => Deferred.unsafeDone(ack.done, Exit.fail(error)))),
            onSuccess: (rows) =>
              Effect.sync(() => {
                const deleted = new Set(rows.map((row) => `${row.id}:${row.token}`))
                for (const ack of batch) {
                  Deferred.unsafeDone(
                    ack.done,
                    deleted.has(`${ack.lease.jobId}:${ack.lease.token}`)
                      ? Exit.void
                      : Exit.fail(new LeaseLost({ jobId: ack.lease.jobId, operation: "complete" }))
                  )
                }
              })
          }
        )
      })
      yield* Effect.forkScoped(Effect.interruptible(Effect.forever(flush)))
      complete = (lease) =>
        Effect.flatMap(Deferred.make<void, JobStoreError | LeaseLost>(), (done) =>
          Effect.zipRight(Queue.offer(acks, { lease, done }), Deferred.await(done)))
    }

    /** Runs a statement on one held lease that answers `changed`: 0 rows changed means the lease was lost. */
    const onLease = (operation: string, text: string, lease: Lease, params: ReadonlyArray<unknown>) =>
      isBigintText(lease.jobId) && isBigintText(lease.token)
        ? Effect.flatMap(
          run<{ readonly changed: number }>(operation, text, [lease.jobId, lease.token, ...params]),
          (rows) =>
            rows[0]?.changed === 1 ? Effect.void : Effect.fail(new LeaseLost({ jobId: lease.jobId, operation }))
        )
        : Effect.fail(new LeaseLost({ jobId: lease.jobId, operation }))

    const service: Service = {
      enqueue: (jobs) =>
        Effect.suspend(() => {
          const problem = storeArgs.enqueueProblem(jobs)
          if (problem !== undefined) return illegal("enqueue", problem)
          if (jobs.length === 0) return Effect.succeed([])
          const input = JSON.stringify(jobs.map((job: NewJob, o) => ({
            o,
            name: job.name,
            queue: job.queue,
            payload: job.payload ?? null,
            run_at: job.runAt.toISOString(),
            priority: job.priority,
            key: job.key ?? null,
            max_attempts: job.maxAttempts
          })))
          return Effect.map(
            run<{ readonly ids: ReadonlyArray<string>; readonly keyed: Record<string, string> | null }>(
              "enqueue",
              sql.enqueue,
              [channel, input]
            ),
            ([row]) => jobs.map((job, i) => job.key !== undefined ? row!.keyed![job.key]! : row!.ids[i]!)
          ).pipe(Effect.tap(() => analyzeChecked || jobs.length < 1_000 ? Effect.void : analyzeOnce))
        }),
      claim: (request) =>
        Effect.suspend(() => {
          const problem = storeArgs.claimProblem(request)
          if (problem !== undefined) return illegal("claim", problem)
          if (request.limit === 0 || request.queues.length === 0 || request.names.length === 0) {
            return Effect.succeed([])
          }
          return Effect.map(
            run<ClaimedRow>("claim", sql.claim, [
              request.queues,
              request.names,
              request.limit,
              Duration.toMillis(request.lease),
              String(request.worker)
            ]),
            (rows) => [...rows].sort(claimOrder).map(claimedJob)
          )
        }),
      renew: (leases, lease) =>
        Effect.suspend(() => {
          const problem = storeArgs.renewProblem(leases, lease)
          if (problem !== undefined) return illegal("renew", problem)
          const valid = leases.filter((held) => isBigintText(held.jobId) && isBigintText(held.token))
          if (valid.length === 0) return Effect.succeed(leases.map((held) => held.jobId))
          return Effect.map(
            run<{ readonly id: string; readonly token: string }>("renew", sql.renew, [
              valid.map((held) => held.jobId),
              valid.map((held) => held.token),
              Duration.toMillis(lease)
            ]),
            (rows) => {
              const renewed = new Set(rows.map((row) => `${row.id}:${row.token}`))
              return leases.filter((held) => !renewed.has(`${held.jobId}:${held.token}`)).map((held) => held.jobId)
            }
          )
        }),
      complete: (lease) =>
        Effect.suspend(() => {
          const problem = storeArgs.leaseProblem(lease)
          if (problem !== undefined) return illegal("complete", problem)
          if (!isBigintText(lease.jobId) || !isBigintText(lease.token)) {
            return Effect.fail(new LeaseLost({ jobId: lease.jobId, operation: "complete" }))
          }
          return complete(lease)
        }),
      retry: (lease, runAt, error) =>
        Effect.suspend(() => {
          const problem = storeArgs.retryProblem(lease, runAt, error)
          if (problem !== undefined) return illegal("retry", problem)
          return onLease("retry", sql.retry, lease, [runAt.toISOString(), error, channel])
        }),
      deadLetter: (lease, error) =>
        Effect.suspend(() => {
          const problem = storeArgs.deadLetterProblem(lease, error)
          if (problem !== undefined) return illegal("deadLetter", problem)
          return onLease("deadLetter", sql.deadLetter, lease, [error])
        }),
      release: (lease, releaseOptions) =>
        Effect.suspend(() => {
          const problem = storeArgs.releaseProblem(lease, releaseOptions)
          if (problem !== undefined) return illegal("release", problem)
          return onLease("release", sql.release, lease, [releaseOptions.refund, channel])
        }),
      reap: Effect.map(
        run<{ readonly found: number }>("reap", sql.reap, [channel]),
        ([row]) => row!.found
      ),
      wakeups: listen ? Stream.fromPubSub(hub) : Stream.never,
      stats: Effect.map(
        run<{ readonly queue: string } & QueueStats>("stats", sql.stats, []),
        (rows): JobStats => {
          const total = { ready: 0, scheduled: 0, leased: 0, dead: 0 }
          const byQueue: Array<[string, QueueStats]> = []
          for (const { queue, ...counts } of rows) {
            total.ready += counts.ready
            total.scheduled += counts.scheduled
            total.leased += counts.leased
            total.dead += counts.dead
            byQueue.push([queue, counts])
          }
          // `fromEntries` defines own properties, so a queue named "__proto__" is a queue like any other.
          return { ...total, byQueue: Object.fromEntries(byQueue) }
        }
      ),
      deadLetters: (listOptions) =>
        Effect.suspend(() => {
          const problem = storeArgs.deadLettersProblem(listOptions)
          if (problem !== undefined) return illegal("deadLetters", problem)
          const limit = listOptions?.limit ?? storeArgs.defaultDeadLettersLimit
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
            >("deadLetters", sql.deadLetters, [limit, listOptions?.queue ?? null]),
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
        }),
      redrive: (ids) =>
        Effect.suspend(() => {
          const problem = storeArgs.redriveProblem(ids)
          if (problem !== undefined) return illegal("redrive", problem)
          const valid = ids.filter(isBigintText)
          if (valid.length === 0) return Effect.succeed(0)
          return Effect.map(
            run<{ readonly moved: number }>("redrive", sql.redrive, [channel, valid]),
            ([row]) => row!.moved
          )
        })
    }
    return service
  })
