/**
 * The PostgreSQL job store's driver (see `docs/postgres.md` for the schema and the lease model), made into a
 * `JobStore` by `JobStore.make`, which checks the arguments and encodes the payloads.
 *
 * Two kinds of connections:
 * - `enqueue` (and the migration) run on the caller's `PgClient`, so that an enqueue inside `sql.withTransaction`
 *   joins that transaction.
 * - Everything else (`claim`, `renew`, `settle`, `reap`, the wake-up queries, `stats`, `deadLetters`, `redrive`) runs
 *   on a small pool of raw `pg` clients of the store's own (`makeConnections`, in `pgConnections.ts`).
 *   `@effect/sql-pg` gives an interrupted query's connection back to its pool, whose next caller then waits on the
 *   same stalled backend; here an interrupted call destroys its connection's socket, and the next call gets a fresh
 *   connection.
 *
 * Statements are written out in full, with the schema's quoted name in them. Timestamps travel as ISO strings in and
 * epoch milliseconds out, ids and tokens as text: on the caller's `PgClient` they run `withoutTransform`, and the
 * store's own connections parse only the types its statements return (`types`, in `pgConnections.ts`), so no name
 * transform or type parser the user configured changes what the store reads.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import Pg from "pg"
import {
  type BuriedJob,
  type ClaimedJob,
  type DeadJob,
  type EncodedJob,
  type JobStats,
  type JobStore,
  JobStoreError,
  type Lease,
  make as makeJobStore,
  maxAttemptErrors,
  type QueueStats,
  type Settlement
} from "../JobStore.js"
import type { PgJobStoreOptions } from "../PgJobStore.js"
import { invalidOption as storeInvalidOption, pruneBatch, retentionOption } from "./jobStore.js"
import { clientConfig, makeConnections } from "./pgConnections.js"
import { latestVersion, prepare } from "./pgMigrations.js"

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
// Statements
// ---------------------------------------------------------------------------------------------------------------

/** Epoch milliseconds of a timestamp column, as a float the driver reads as a number. */
const ms = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`

/**
 * The columns of a claimed job, in the order `claimedJob` reads them; a schema before version 4 has no attempt
 * errors, and gives none.
 */
const claimedColumns = (t: string, version: number) =>
  `${t}.id::text AS id, ${t}.name, ${t}.queue, ${t}.payload, ${t}.attempts::float8 AS attempts,
   ${t}.max_attempts::float8 AS max_attempts, ${t}.priority::float8 AS priority, ${t}.key,
   ${ms(`${t}.enqueued_at`)} AS enqueued_at, ${ms(`${t}.run_at`)} AS run_at, ${t}.lease_token::text AS token,
   ${ms(`${t}.lease_expires_at`)} AS lease_expires_at, ${t}.seq::float8 AS seq, ${t}.last_error,
   ${version >= 4 ? `${t}.errors` : `'[]'::jsonb AS errors`}`

/**
 * Notifies `channel` (the placeholder of the store's channel) once with the distinct queues of `rows` that are
 * `ready`, as a JSON array; when the array would not fit in a notification's 8,000 bytes, with `*` instead (the
 * listener then asks the database which queues have ready jobs). One `pg_notify` per statement at most.
 */
const notifyReady = (channel: string, rows: string, where: string) =>
  `SELECT pg_notify(${channel}, CASE WHEN octet_length(q) < 7900 THEN q ELSE '*' END)
   FROM (SELECT json_agg(DISTINCT queue)::text AS q FROM ${rows} WHERE ${where}) AS agg WHERE q IS NOT NULL`

/** The settlement kinds as the settle statement reads them. */
const Kind = { Completed: "c", Retry: "r", Dead: "d", Released: "l", Refunded: "f", Snoozed: "s" } as const

/**
 * @internal The store's statements, for the schema whose quoted name is `s`, as a release that knows the schema
 * versions up to `version` writes them (an earlier one only in tests, which play an earlier release).
 */
export const statements = (s: string, version: number = latestVersion) => {
  /** The queues of `$1` a claim may take from: all of them before version 5, else those not paused. */
  const open = version < 5
    ? `SELECT DISTINCT unnest($1::text[])`
    : `SELECT DISTINCT q FROM unnest($1::text[]) AS u(q) WHERE NOT EXISTS (
          SELECT 1 FROM ${s}.paused_queues AS p WHERE p.queue = u.q)`
  /** A settle's `SET` item that appends a retry's error to `errors`, keeping the newest; none before version 4. */
  const appendError = version < 4 ? "" : `errors = CASE WHEN i.kind = '${Kind.Retry}' THEN (
            SELECT jsonb_agg(e ORDER BY n) FROM jsonb_array_elements(j.errors || jsonb_build_array(jsonb_build_object(
              'attempt', j.attempts, 'error', i.error, 'at', ${ms(`${s}.clock()`)}))) WITH ORDINALITY AS x(e, n)
            WHERE n > jsonb_array_length(j.errors) + 1 - ${maxAttemptErrors}
          ) ELSE j.errors END,`
  /** Moves the rows of `source` (deleted from `jobs`) to the dead letters with `error`. */
  const bury = (source: string, error: string) =>
    `INSERT INTO ${s}.dead_jobs (id, name, queue, payload, priority, key, attempts, max_attempts, run_at, enqueued_at,
                                 last_error, failed_at)
     SELECT id, name, queue, payload, priority, key, attempts, max_attempts, run_at, enqueued_at, ${error},
            ${s}.clock() FROM ${source}
     RETURNING id`
  /** `rows`, buried for a lease that expired on their last attempt, as JSON `BuriedJob`s. */
  const buriedJson = (rows: string) =>
    `(SELECT coalesce(json_agg(json_build_object('id', id::text, 'name', name, 'queue', queue,
       'attempt', attempts::float8) ORDER BY id), '[]'::json) FROM ${rows})`
  /**
   * A lease `l` (with `id` and `token`) that still holds on the job `j`, by the store's clock; `ids` is the array
   * parameter of every lease's id. The rows are found by id (`id = ANY(ids)` on the primary key), never by scanning
   * `jobs_leased`: whenever its statistics say few jobs are leased, the planner would otherwise join every leased row
   * with every settlement (half a second for a batch of 1,000 once), and it filtered every leased row by id even
   * when it did not (a settle took 4 ms instead of 1.5 under load). So nothing here lets `jobs_leased` serve: the
   * token is compared with `IS NOT DISTINCT FROM` (never null on either side, so the same as `=`), which, unlike
   * `=`, does not imply the index's `lease_token IS NOT NULL`; and the expiry is written so that no index serves it.
   */
  /**
   * The list parameter `p` of ids or tokens (checked decimal digits, joined by commas) as a `bigint[]`: one text
   * parameter instead of an array, which the driver would escape element by element.
   */
  const list = (p: string) => `string_to_array(${p}, ',')::bigint[]`
  const holds = (j: string, l: string, ids: string) =>
    `${j}.id = ANY(${ids}) AND ${j}.id = ${l}.id AND ${j}.lease_token IS NOT DISTINCT FROM ${l}.token
     AND ${j}.lease_expires_at - ${s}.clock() > interval '0'`
  return {
    /**
     * Inserts the jobs in order, each due at its `run_at` (the caller's instant) or `delay_ms` after the store's
     * now. A key already taken (by a committed job, or by one this statement waited for) is left alone: `ON
     * CONFLICT DO NOTHING` takes no lock on the existing row, so a producer's open transaction never holds a row a
     * worker renews or settles. The existing job's id is read in the same statement when its snapshot shows it;
     * `keyed` lacks the keys taken by a transaction that committed while this statement ran, and the driver asks
     * again for those.
     */
    enqueue: `
      WITH input AS (
        SELECT x.o, x.name, x.queue, coalesce(x.payload, 'null'::jsonb) AS payload, x.priority, x.key, x.max_attempts,
               coalesce(x.run_at, ${s}.clock() + x.delay_ms * interval '1 millisecond') AS run_at,
               nextval('${s}.job_ids') AS id
        FROM jsonb_to_recordset($2::jsonb) AS x(o int, name text, queue text, payload jsonb, run_at timestamptz,
                                                delay_ms float8, priority bigint, key text, max_attempts bigint)
        ORDER BY x.o
      ), fresh AS (
        SELECT * FROM input i
        WHERE i.key IS NULL OR NOT EXISTS (SELECT 1 FROM input e WHERE e.key = i.key AND e.o < i.o)
      ), ins AS (
        INSERT INTO ${s}.jobs AS j (id, seq, name, queue, payload, priority, key, max_attempts, run_at, enqueued_at)
        SELECT id, id, name, queue, payload, priority, key, max_attempts, run_at, ${s}.clock() FROM fresh ORDER BY o
        ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
        RETURNING j.id, j.key, j.queue, j.run_at <= ${s}.clock() AS ready
      ), keyed AS (
        SELECT DISTINCT ON (key) key, id FROM (
          SELECT key, id, 0 AS pass FROM ins WHERE key IS NOT NULL
          UNION ALL
          SELECT j.key, j.id, 1 FROM ${s}.jobs j WHERE j.key IN (SELECT key FROM input WHERE key IS NOT NULL)
        ) AS k ORDER BY key, pass
      ), woken AS (${notifyReady("$1", "ins", "ready")})
      SELECT (SELECT json_agg(id::text ORDER BY o) FROM input) AS ids,
             (SELECT json_object_agg(key, id::text) FROM keyed) AS keyed,
             (SELECT count(*) FROM woken)::int AS woken`,
    /**
     * Claims up to `$3` jobs, ready ones and ones whose lease expired with attempts left, in order; and buries, in
     * the same statement, the jobs of these queues and names whose lease expired on their last attempt. Rows of
     * kind `c` are claimed jobs, rows of kind `b` buried ones.
     */
    claim: `
      WITH open AS MATERIALIZED (${open}), ready AS (
        SELECT r.id, r.priority, r.run_at, r.seq
        FROM open AS q(queue) CROSS JOIN (SELECT DISTINCT unnest($2::text[])) AS n(name)
        CROSS JOIN LATERAL (
          SELECT id, priority, run_at, seq FROM ${s}.jobs
          WHERE lease_token IS NULL AND queue = q.queue AND name = n.name AND run_at <= ${s}.clock()
          ORDER BY priority, run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED
        ) AS r
      ), expired AS (
        SELECT id, priority, run_at, seq FROM ${s}.jobs
        WHERE lease_token IS NOT NULL AND lease_expires_at <= ${s}.clock() AND attempts < max_attempts
          AND queue = ANY(ARRAY(SELECT * FROM open)) AND name = ANY($2::text[])
        ORDER BY priority, run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED
      ), chosen AS (
        SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM expired) AS c
        ORDER BY priority, run_at, seq LIMIT $3
      ), exhausted AS (
        DELETE FROM ${s}.jobs WHERE id IN (
          SELECT id FROM ${s}.jobs
          WHERE lease_token IS NOT NULL AND lease_expires_at <= ${s}.clock() AND attempts >= max_attempts
            AND queue = ANY($1::text[]) AND name = ANY($2::text[])
          FOR UPDATE SKIP LOCKED
        ) RETURNING *
      ), buried AS (${bury("exhausted", "'lease expired'")}), claimed AS (
        UPDATE ${s}.jobs AS j
        SET attempts = j.attempts + 1, lease_token = nextval('${s}.lease_tokens'),
            lease_expires_at = ${s}.clock() + $4::float8 * interval '1 millisecond', leased_by = $5
        FROM chosen WHERE j.id = chosen.id
        RETURNING ${claimedColumns("j", version)}
      )
      SELECT 'c' AS kind, * FROM claimed
      UNION ALL
      SELECT 'b', e.id::text, e.name, e.queue, NULL, e.attempts::float8, e.max_attempts::float8, NULL, NULL, NULL,
             NULL, NULL, NULL, NULL, NULL, NULL
      FROM exhausted e`,
    /** Extends every lease of `$1`/`$2` that still holds; returns the ones it extended. */
    renew: `
      UPDATE ${s}.jobs AS j SET lease_expires_at = ${s}.clock() + $3::float8 * interval '1 millisecond'
      FROM unnest(${list("$1")}, ${list("$2")}) AS l(id, token)
      WHERE ${holds("j", "l", list("$1"))}
      RETURNING j.id::text AS id, j.lease_token::text AS token`,
    /**
     * Applies every settlement whose lease still holds, each by its kind (see {@link Kind}), and returns the ones it
     * applied as `id:token`; wakes the queues that got a job ready now, once.
     */
    settle: `
      WITH input AS (
        SELECT * FROM unnest(${list("$2")}, ${list("$3")}, $4::text[], $5::float8[], $6::text[])
          AS x(id, token, kind, delay_ms, error)
      ), done AS (
        DELETE FROM ${s}.jobs AS j USING input i WHERE i.kind = '${Kind.Completed}' AND ${holds("j", "i", list("$2"))}
        RETURNING i.id, i.token
      ), dead AS (
        DELETE FROM ${s}.jobs AS j USING input i WHERE i.kind = '${Kind.Dead}' AND ${holds("j", "i", list("$2"))}
        RETURNING j.*, i.token AS settled_token, i.error AS final_error
      ), buried AS (
        INSERT INTO ${s}.dead_jobs (id, name, queue, payload, priority, key, attempts, max_attempts, run_at,
                                    enqueued_at, last_error, failed_at)
        SELECT id, name, queue, payload, priority, key, attempts, max_attempts, run_at, enqueued_at, final_error,
               ${s}.clock() FROM dead
        RETURNING id
      ), back AS (
        UPDATE ${s}.jobs AS j SET lease_token = NULL, lease_expires_at = NULL, leased_by = NULL,
          run_at = CASE WHEN i.kind IN ('${Kind.Retry}', '${Kind.Snoozed}')
                   THEN ${s}.clock() + i.delay_ms * interval '1 millisecond' ELSE j.run_at END,
          last_error = CASE WHEN i.kind = '${Kind.Retry}' THEN i.error ELSE j.last_error END,
          ${appendError}
          attempts = j.attempts - CASE WHEN i.kind IN ('${Kind.Refunded}', '${Kind.Snoozed}') THEN 1 ELSE 0 END
        FROM input i
        WHERE i.kind IN ('${Kind.Retry}', '${Kind.Released}', '${Kind.Refunded}', '${Kind.Snoozed}')
          AND ${holds("j", "i", list("$2"))}
        RETURNING i.id, i.token, j.queue, j.run_at <= ${s}.clock() AS ready
      ), woken AS (${notifyReady("$1", "back", "ready")})
      SELECT (SELECT coalesce(json_agg(a.id::text || ':' || a.token::text), '[]'::json) FROM (
                SELECT id, token FROM done UNION ALL SELECT id, settled_token FROM dead
                UNION ALL SELECT id, token FROM back) AS a) AS applied,
             (SELECT count(*) FROM buried)::int AS buried,
             (SELECT count(*) FROM woken)::int AS woken`,
    /** {@link settle} for a batch of completions only (the common case): one `DELETE`, and no notification. */
    complete: `
      DELETE FROM ${s}.jobs AS j USING unnest(${list("$1")}, ${list("$2")}) AS i(id, token)
      WHERE ${holds("j", "i", list("$1"))}
      RETURNING i.id::text || ':' || i.token::text AS applied`,
    /**
     * Makes the expired leases' jobs ready again, or buries them on their last attempt. The rows are found again by
     * primary key (`id = ANY(ARRAY(...))`): joined with the expired ones, a table never analyzed was read in full.
     */
    reap: `
      WITH expired AS (
        SELECT id FROM ${s}.jobs WHERE lease_token IS NOT NULL AND lease_expires_at <= ${s}.clock()
        FOR UPDATE SKIP LOCKED
      ), dead AS (
        DELETE FROM ${s}.jobs AS j
        WHERE j.id = ANY(ARRAY(SELECT id FROM expired)) AND j.attempts >= j.max_attempts RETURNING j.*
      ), buried AS (${bury("dead", "'lease expired'")}), revived AS (
        UPDATE ${s}.jobs AS j SET lease_token = NULL, lease_expires_at = NULL, leased_by = NULL,
          last_error = 'lease expired'
        WHERE j.id = ANY(ARRAY(SELECT id FROM expired)) AND j.attempts < j.max_attempts
        RETURNING j.queue, true AS ready
      ), woken AS (${notifyReady("$1", "revived", "ready")})
      SELECT (SELECT count(*) FROM expired)::int AS found, ${buriedJson("dead")} AS buried,
             (SELECT count(*) FROM buried)::int AS moved, (SELECT count(*) FROM woken)::int AS woken`,
    /**
     * The counts, exact, without scanning the tables (migration 3): the folded counts plus the deltas not yet folded,
     * per lane, priority and state. Time splits them further, by index: the waiting jobs of a lane that are not due
     * yet are scheduled (a range of `jobs_ready_by_lane` per lane and priority), and leases that expired (a range of
     * `jobs_leased`) count as ready, or dead when their attempts are used up. Rows with a null `name` are dead
     * letters. The now is a sub-select, so that both ranges are index conditions; the run-at range is closed (`<
     * 'infinity'`, which holds for every job) because an open one on an unknown bound is estimated at a third of the
     * lane, and the planner then read the whole table for a lane of a million ready jobs (250 ms).
     */
    stats: `
      WITH now AS (SELECT ${s}.clock() AS t), counted AS (
        SELECT queue, name, priority, state, sum(n) AS n FROM (
          SELECT queue, name, priority, state, n FROM ${s}.job_counts
          UNION ALL
          SELECT queue, name, priority, state, n FROM ${s}.job_count_deltas
        ) AS c GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
      ), scheduled AS MATERIALIZED (
        SELECT c.queue, c.name, (
          SELECT count(*) FROM ${s}.jobs AS j
          WHERE j.lease_token IS NULL AND j.queue = c.queue AND j.name = c.name AND j.priority = c.priority
            AND j.run_at > (SELECT t FROM now) AND j.run_at < 'infinity'
        ) AS n
        FROM counted AS c WHERE c.state = 'waiting'
      ), expired AS (
        SELECT queue, name, count(*) FILTER (WHERE attempts < max_attempts) AS ready,
               count(*) FILTER (WHERE attempts >= max_attempts) AS dead
        FROM ${s}.jobs WHERE lease_token IS NOT NULL AND lease_expires_at <= (SELECT t FROM now) GROUP BY 1, 2
      )
      SELECT queue, name, sum(ready)::float8 AS ready, sum(scheduled)::float8 AS scheduled,
             sum(leased)::float8 AS leased, sum(dead)::float8 AS dead, false AS paused
      FROM (
        SELECT queue, name, n AS ready, 0 AS scheduled, 0 AS leased, 0 AS dead FROM counted WHERE state = 'waiting'
        UNION ALL SELECT queue, name, -n, n, 0, 0 FROM scheduled
        UNION ALL SELECT queue, name, 0, 0, n, 0 FROM counted WHERE state = 'leased'
        UNION ALL SELECT queue, name, ready, 0, -(ready + dead), dead FROM expired
      ) AS live GROUP BY queue, name
      UNION ALL
      SELECT queue, NULL, 0, 0, 0, sum(n)::float8, false FROM counted WHERE state = 'dead' GROUP BY queue
      ${version < 5 ? "" : `UNION ALL SELECT queue, NULL, 0, 0, 0, 0, true FROM ${s}.paused_queues`}`,
    /** Pauses `$1`: no claim takes from it until it is resumed. (A release before version 5 knows no pause.) */
    pauseQueue: version < 5
      ? "SELECT $1::text"
      : `INSERT INTO ${s}.paused_queues (queue, paused_at) VALUES ($1, ${s}.clock()) ON CONFLICT DO NOTHING`,
    /** Resumes `$2`, and wakes its workers when it was paused. */
    resumeQueue: version < 5 ? "SELECT $1::text, $2::text" : `
      WITH gone AS (DELETE FROM ${s}.paused_queues WHERE queue = $2 RETURNING queue, true AS ready),
           woken AS (${notifyReady("$1", "gone", "ready")})
      SELECT count(*)::int AS woken FROM woken`,
    /**
     * Folds the count deltas into `job_counts`, in one statement: whatever it deleted, it added.
     */
    fold: `
      WITH folded AS (
        DELETE FROM ${s}.job_count_deltas RETURNING queue, name, priority, state, n
      ), summed AS (
        INSERT INTO ${s}.job_counts AS c (queue, name, priority, state, n)
        SELECT queue, name, priority, state, sum(n) FROM folded GROUP BY 1, 2, 3, 4
        ON CONFLICT (queue, name, priority, state) DO UPDATE SET n = c.n + excluded.n
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM summed)::int AS folded`,
    /** Drops the counts that reached zero (a lane gone); a concurrent fold that changed one keeps it. */
    dropZeroCounts: `DELETE FROM ${s}.job_counts WHERE n = 0`,
    /**
     * Deletes at most `$2` dead letters that failed more than `$1` ms ago by the store's clock, oldest first (by
     * `dead_jobs_recent`, read backwards), skipping rows another worker is deleting.
     */
    prune: `
      WITH doomed AS (
        SELECT id FROM ${s}.dead_jobs WHERE failed_at < ${s}.clock() - $1::float8 * interval '1 millisecond'
        ORDER BY failed_at, dead_seq LIMIT $2 FOR UPDATE SKIP LOCKED
      ), gone AS (
        DELETE FROM ${s}.dead_jobs AS d USING doomed WHERE d.id = doomed.id RETURNING 1
      )
      SELECT (SELECT count(*) FROM gone)::int AS pruned`,
    /**
     * The newest dead letters, by index (`dead_jobs_recent`): ordered by the table's columns, qualified, since an
     * output column named `failed_at` (the epoch milliseconds) would otherwise be what `ORDER BY` sorts, every row.
     */
    deadLetters: `
      SELECT d.id::text AS id, d.name, d.queue, d.payload, d.attempts::float8 AS attempts, d.last_error,
             ${ms("d.failed_at")} AS failed_at
      FROM ${s}.dead_jobs AS d ORDER BY d.failed_at DESC, d.dead_seq DESC LIMIT $1`,
    /** {@link deadLetters} of one queue (`$2`), by its own index (`dead_jobs_queue`). */
    deadLettersOfQueue: `
      SELECT d.id::text AS id, d.name, d.queue, d.payload, d.attempts::float8 AS attempts, d.last_error,
             ${ms("d.failed_at")} AS failed_at
      FROM ${s}.dead_jobs AS d WHERE d.queue = $2 ORDER BY d.failed_at DESC, d.dead_seq DESC LIMIT $1`,
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
    readyQueues: `SELECT DISTINCT queue FROM ${s}.jobs WHERE lease_token IS NULL AND run_at <= ${s}.clock()`
  }
}

interface ClaimRow {
  readonly kind: "c" | "b"
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
  readonly last_error: string | null
  readonly errors: ReadonlyArray<{ readonly attempt: number; readonly error: string; readonly at: number }>
}

const claimedJob = (row: ClaimRow): ClaimedJob => ({
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
  leaseExpiresAt: new Date(row.lease_expires_at),
  lastError: row.last_error ?? undefined,
  errors: row.errors.map(({ at, attempt, error }) => ({ attempt, error, at: new Date(at) }))
})

const buriedJob = (row: { readonly id: string; readonly name: string; readonly queue: string }, attempt: number) => ({
  id: row.id,
  name: row.name,
  queue: row.queue,
  attempt,
  error: "lease expired"
})

const claimOrder = (a: ClaimRow, b: ClaimRow) => a.priority - b.priority || a.run_at - b.run_at || a.seq - b.seq

/** The kind of a settlement, as the settle statement reads it. */
const kindOf = (settlement: Settlement): string => {
  const outcome = settlement.outcome
  switch (outcome._tag) {
    case "Completed":
      return Kind.Completed
    case "Retry":
      return Kind.Retry
    case "Dead":
      return Kind.Dead
    case "Released":
      return outcome.refund ? Kind.Refunded : Kind.Released
    case "Snoozed":
      return Kind.Snoozed
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Wake-ups: LISTEN on a connection of its own
// ---------------------------------------------------------------------------------------------------------------

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
      Effect.sync(() => {
        const client = new Pg.Client(config)
        client.on("error", (error) => Deferred.unsafeDone(lost, Exit.fail(error)))
        client.on("end", () => Deferred.unsafeDone(lost, Exit.fail(new Error("the listening connection ended"))))
        client.on("notification", (message) => {
          if (message.channel === channel && message.payload !== undefined) received.unsafeOffer(message.payload)
        })
        return client
      }),
      (client) =>
        // Interruptible, inside an uninterruptible release, so that the deadline can cut a stalled server short.
        Effect.promise(() => client.end().catch(() => {})).pipe(
          Effect.interruptible,
          Effect.timeoutOption(Duration.seconds(1)),
          Effect.ensuring(Effect.sync(() => client.connection.stream.destroy()))
        )
    )
    // Connecting is interruptible (a closing store does not wait for a server that does not answer): the release
    // above destroys the socket.
    yield* Effect.async<void, unknown>((resume) => {
      client.connect()
        .then(() => client.query(`LISTEN ${Pg.escapeIdentifier(channel)}`))
        .then(() => resume(Effect.void), (error) => resume(Effect.fail(error)))
    })
    received.unsafeOffer("*")
    yield* connected
    const check: Effect.Effect<void, unknown> = Effect.async<void, unknown>((resume) => {
      client.query("SELECT 1").then(() => resume(Effect.void), (error) => resume(Effect.fail(error)))
    }).pipe(
      Effect.timeoutFail({
        duration: Duration.seconds(5),
        onTimeout: () => new Error("the listening connection did not answer a check within 5 s")
      })
    )
    return yield* Effect.raceFirst(
      Deferred.await(lost),
      Effect.forever(Effect.zipRight(Effect.sleep(checkInterval), check))
    )
  })

// ---------------------------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------------------------

/** One `settle` call waiting for the batched statement. */
interface PendingSettle {
  readonly settlements: ReadonlyArray<Settlement>
  readonly done: Deferred.Deferred<ReadonlyArray<boolean>, JobStoreError>
  /** Its caller stopped waiting (interrupted) before its batch was sent: it is left out. */
  abandoned: boolean
  /** The batch it was sent in, once sent. */
  batch: SettleBatch | undefined
}

/** A batched settle statement in flight, and how many of its callers still wait for it. */
interface SettleBatch {
  waiting: number
  /** Done when every caller stopped waiting: the statement is then interrupted, and its connection destroyed. */
  readonly abandoned: Deferred.Deferred<void>
}

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
    const sql = statements(s, schemaVersion)
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

    const hub = yield* PubSub.sliding<string>(256)
    const listening = yield* Effect.makeLatch(false)
    /**
     * The barriers `wakeups` waits for: a notification `#<id>` it sent itself. The listening connection hears
     * notifications in commit order, so once the forwarder reached it, it has published every wake-up committed
     * before; what came before is not the new subscriber's.
     */
    const barriers = new Map<string, Deferred.Deferred<void>>()
    const storeId = (yield* Random.nextInt).toString(36)
    let barrierCount = 0
    const publishReadyQueues = Effect.flatMap(
      run<{ readonly queue: string }>("wakeups", sql.readyQueues, []),
      (rows) => PubSub.publishAll(hub, rows.map((row) => row.queue))
    )
    if (listen) {
      const received = yield* Queue.unbounded<string>()
      const forward = Effect.forever(Effect.flatMap(Queue.take(received), (payload) => {
        if (payload === "*") {
          // A new listening connection (or too many queues for one notification): the refresh covers whatever was
          // committed before it listened, a barrier notification sent while it was away included, so the
          // subscriptions waiting for one are live from here on.
          return Effect.zipRight(
            Effect.forEach(barriers.values(), (barrier) => Deferred.succeed(barrier, undefined), { discard: true }),
            Effect.ignore(publishReadyQueues)
          )
        }
        if (payload.startsWith("#")) {
          const barrier = barriers.get(payload)
          return barrier === undefined ? Effect.void : Deferred.succeed(barrier, undefined)
        }
        return Effect.try(() => JSON.parse(payload) as unknown).pipe(
          Effect.flatMap((queues) => Array.isArray(queues) ? PubSub.publishAll(hub, queues.map(String)) : Effect.void),
          Effect.ignore
        )
      }))
      yield* Effect.forkScoped(Effect.interruptible(forward))
      const config = clientConfig(client.config, "listen")
      let failures = 0
      const connected = Effect.suspend(() => {
        const recovered = failures > 0
        failures = 0
        return Effect.zipRight(
          listening.open,
          recovered ? Effect.logInfo(`PgJobStore: listening on ${channel} again`) : Effect.void
        )
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
            return Effect.zipRight(
              Effect.zipRight(listening.close, log),
              Effect.sleep(Duration.millis(wait))
            )
          })
      )
      yield* Effect.forkScoped(Effect.interruptible(Effect.forever(attempt)))
    }

    /** Inserts `jobs` on the caller's connection; the ids of the keys it could not resolve are `undefined`. */
    const insert = (jobs: ReadonlyArray<EncodedJob>) => {
      // The payloads are JSON text already: spliced into the input as they are, not parsed and encoded again.
      const input = "[" + jobs.map((job, o) =>
        JSON.stringify({
          o,
          name: job.name,
          queue: job.queue,
          run_at: job.runAt === undefined ? null : job.runAt.toISOString(),
          delay_ms: job.delayMs,
          priority: job.priority,
          key: job.key ?? null,
          max_attempts: job.maxAttempts
        }).slice(0, -1) + ",\"payload\":" + job.payload + "}"
      ).join(",") + "]"
      return Effect.map(
        Effect.mapError(
          client.unsafe<{ readonly ids: ReadonlyArray<string>; readonly keyed: Record<string, string> | null }>(
            sql.enqueue,
            [channel, input]
          ).withoutTransform,
          failed("enqueue")
        ),
        ([row]): Array<string | undefined> =>
          jobs.map((job, i) => job.key !== undefined ? row!.keyed?.[job.key] : row!.ids[i]!)
      )
    }

    /**
     * A key taken by a transaction that committed while the statement ran is invisible to that statement's
     * snapshot: ask again, in a new statement (a new snapshot in READ COMMITTED), for those jobs only.
     */
    const enqueue = (jobs: ReadonlyArray<EncodedJob>): Effect.Effect<ReadonlyArray<string>, JobStoreError> =>
      Effect.gen(function*() {
        const ids = yield* insert(jobs)
        for (let round = 0; round < defaults.keyRetries; round++) {
          const missing = ids.flatMap((id, i) => id === undefined ? [i] : [])
          if (missing.length === 0) break
          const again = yield* insert(missing.map((i) => jobs[i]!))
          missing.forEach((i, j) => (ids[i] = again[j]))
        }
        const unresolved = ids.findIndex((id) => id === undefined)
        if (unresolved >= 0) {
          return yield* new JobStoreError({
            operation: "enqueue",
            reason: `the key ${JSON.stringify(jobs[unresolved]!.key)} of job ${unresolved} was taken and freed ` +
              `${defaults.keyRetries} times while it was being enqueued`
          })
        }
        return ids as ReadonlyArray<string>
      })

    /** One settle statement for `settlements`: which applied, in order. */
    const settleNow = (settlements: ReadonlyArray<Settlement>): Effect.Effect<Array<boolean>, JobStoreError> => {
      const ids: Array<string> = []
      const tokens: Array<string> = []
      const kinds: Array<string> = []
      const delays: Array<number> = []
      const errors: Array<string | null> = []
      const sent = new Set<string>()
      // Each settlement's `id:token`, or undefined when it is not sent (not a lease of this store, or a repeat).
      const keys: Array<string | undefined> = settlements.map(({ lease, outcome }) => {
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
            [ids.join(","), tokens.join(",")],
            "ewc_complete"
          )
          : run<{ readonly applied: string | ReadonlyArray<string> }>(
            "settle",
            sql.settle,
            [channel, ids.join(","), tokens.join(","), kinds, delays, errors],
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

    let settle: (settlements: ReadonlyArray<Settlement>) => Effect.Effect<ReadonlyArray<boolean>, JobStoreError> =
      settleChunked
    if (batchAcks) {
      const pending = yield* Queue.unbounded<PendingSettle>()
      let closed = false
      const closedError = new JobStoreError({ operation: "settle", reason: "the store is closed" })
      let inFlight: ReadonlyArray<PendingSettle> = []
      const flush = Effect.gen(function*() {
        const first = yield* Queue.take(pending)
        const rest = yield* Queue.takeAll(pending)
        const calls = [first, ...rest].filter((call) => !call.abandoned)
        if (calls.length === 0) return
        const batch: SettleBatch = { waiting: calls.length, abandoned: Deferred.unsafeMake<void>(FiberId.none) }
        for (const call of calls) call.batch = batch
        inFlight = calls
        const settlements = calls.flatMap((call) => call.settlements)
        // When every caller stopped waiting (their deadline passed), the statement is interrupted too, and its
        // connection destroyed: nobody waits on a stalled backend.
        const exit = yield* Effect.exit(
          Effect.raceFirst(
            settleChunked(settlements),
            Effect.zipRight(
              Deferred.await(batch.abandoned),
              Effect.failSync(() => new JobStoreError({ operation: "settle", reason: "abandoned by its callers" }))
            )
          )
        )
        let offset = 0
        for (const call of calls) {
          const count = call.settlements.length
          const start = offset
          offset += count
          Deferred.unsafeDone(call.done, Exit.map(exit, (applied) => applied.slice(start, start + count)))
        }
      })
      // The store is closing: the settles in flight (interrupted with the flusher) and the ones still queued fail,
      // so that no caller waits for ever.
      const failPending = Effect.flatMap(Queue.takeAll(pending), (calls) =>
        Effect.sync(() => {
          closed = true
          for (const call of [...inFlight, ...calls]) Deferred.unsafeDone(call.done, Exit.fail(closedError))
        }))
      yield* Effect.forkScoped(
        Effect.interruptible(Effect.forever(flush)).pipe(Effect.onExit(() => failPending))
      )
      settle = (settlements) =>
        Effect.suspend(() => {
          if (closed) return Effect.fail(closedError)
          const call: PendingSettle = {
            settlements,
            done: Deferred.unsafeMake<ReadonlyArray<boolean>, JobStoreError>(FiberId.none),
            abandoned: false,
            batch: undefined
          }
          return Effect.zipRight(
            Queue.offer(pending, call),
            Effect.onInterrupt(Deferred.await(call.done), () =>
              Effect.sync(() => {
                call.abandoned = true
                const batch = call.batch
                if (batch !== undefined && --batch.waiting === 0) Deferred.unsafeDone(batch.abandoned, Exit.void)
              }))
          )
        })
    }

    const driver: JobStore.Driver = {
      name: "PgJobStore",
      enqueue,
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
      reap: Effect.map(
        run<{ readonly found: number; readonly buried: ReadonlyArray<BuriedJob> }>(
          "reap",
          sql.reap,
          [channel],
          "ewc_reap"
        ),
        ([row]) => ({ reaped: row!.found, buried: row!.buried.map((job) => buriedJob(job, job.attempt)) })
      ),
      // The counts' deltas are folded, and the counts of lanes gone dropped, before the dead letters are pruned.
      prune: Effect.gen(function*() {
        yield* run("prune", sql.fold, [], "ewc_fold")
        yield* run("prune", sql.dropZeroCounts, [], "ewc_drop_zero_counts")
        if (!Duration.isFinite(retention)) return { pruned: 0, more: false }
        const [row] = yield* run<{ readonly pruned: number }>(
          "prune",
          sql.prune,
          [Duration.toMillis(retention), pruneBatch],
          "ewc_prune"
        )
        return { pruned: row!.pruned, more: row!.pruned === pruneBatch }
      }),
      wakeups: Effect.gen(function*() {
        const subscription = yield* PubSub.subscribe(hub)
        if (!listen) return subscription
        // Live when it returns: the listening connection is up, and every wake-up committed before this point has
        // been published (and is dropped here: it is not this subscriber's); or that could not be had within a
        // bounded wait (the server is unreachable), and the connection keeps being tried.
        const id = `#${storeId}.${++barrierCount}`
        const reached = yield* Deferred.make<void>()
        barriers.set(id, reached)
        yield* Effect.gen(function*() {
          yield* listening.await
          yield* run("wakeups", `SELECT pg_notify($1, $2)`, [channel, id])
          yield* Deferred.await(reached)
          yield* Queue.takeAll(subscription)
        }).pipe(
          Effect.ignore,
          Effect.timeoutOption(Duration.min(callTimeout, defaults.listenWait)),
          Effect.ensuring(Effect.sync(() => barriers.delete(id)))
        )
        return subscription
      }),
      stats: Effect.map(
        run<{ readonly queue: string; readonly name: string | null; readonly paused: boolean } & QueueStats>(
          "stats",
          sql.stats,
          []
        ),
        (rows): JobStats => {
          const total = { ready: 0, scheduled: 0, leased: 0, dead: 0 }
          const byQueue = new Map<string, { ready: number; scheduled: number; leased: number; dead: number }>()
          const byName = new Map<string, number>()
          const paused: Array<string> = []
          for (const { name, paused: isPaused, queue, ...counts } of rows) {
            if (isPaused) {
              paused.push(queue)
              continue
            }
            total.ready += counts.ready
            total.scheduled += counts.scheduled
            total.leased += counts.leased
            total.dead += counts.dead
            const sum = byQueue.get(queue) ?? { ready: 0, scheduled: 0, leased: 0, dead: 0 }
            sum.ready += counts.ready
            sum.scheduled += counts.scheduled
            sum.leased += counts.leased
            sum.dead += counts.dead
            byQueue.set(queue, sum)
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
      pauseQueue: (queue) => Effect.asVoid(run("pauseQueue", sql.pauseQueue, [queue])),
      resumeQueue: (queue) => Effect.asVoid(run("resumeQueue", sql.resumeQueue, [channel, queue]))
    }
    return makeJobStore(driver)
  })
