/**
 * The PostgreSQL store's statements, written out in full with the schema's quoted name in them, and how the store
 * reads their rows. Timestamps travel as ISO strings in and epoch milliseconds out, ids and tokens as text.
 */
import {
  type CancelFilter,
  type ClaimedJob,
  type JobState,
  type ListOptions,
  maxAttemptErrors,
  type Settlement,
  type StoredJob
} from "../JobStore.js"
import { recentSlots } from "./jobStore.js"
import { latestVersion } from "./pgMigrations.js"

/** Epoch milliseconds of a timestamp column, as a float the driver reads as a number. */
const ms = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`

/**
 * The columns of a claimed job, in the order `claimedJob` reads them; a schema before version 4 has no attempt
 * errors, and gives none; one before version 6 no slot.
 */
const claimedColumns = (t: string, version: number) =>
  `${t}.id::text AS id, ${t}.name, ${t}.queue, ${t}.payload, ${t}.attempts::float8 AS attempts,
   ${t}.max_attempts::float8 AS max_attempts, ${t}.priority::float8 AS priority, ${t}.key,
   ${ms(`${t}.enqueued_at`)} AS enqueued_at, ${ms(`${t}.run_at`)} AS run_at, ${t}.lease_token::text AS token,
   ${ms(`${t}.lease_expires_at`)} AS lease_expires_at, ${t}.seq::float8 AS seq, ${t}.last_error,
   ${version >= 4 ? `${t}.errors` : `'[]'::jsonb AS errors`},
   ${version >= 6 ? `${ms(`${t}.scheduled_for`)}` : "NULL::float8"} AS scheduled_for`

/**
 * Notifies `channel` (the placeholder of the store's channel) once with the distinct queues of `rows` that are
 * `ready`, as a JSON array; when the array would not fit in a notification's 8,000 bytes, with `*` instead (the
 * listener then asks the database which queues have ready jobs). One `pg_notify` per statement at most.
 */
const notifyReady = (channel: string, rows: string, where: string) =>
  `SELECT pg_notify(${channel}, CASE WHEN octet_length(q) < 7900 THEN q ELSE '*' END)
   FROM (SELECT json_agg(DISTINCT queue)::text AS q FROM ${rows} WHERE ${where}) AS agg WHERE q IS NOT NULL`

/** The settlement kinds as the settle statement reads them. */
export const Kind = { Completed: "c", Retry: "r", Dead: "d", Released: "l", Refunded: "f", Snoozed: "s" } as const

/**
 * @internal The store's statements, for the schema whose quoted name is `s`, as a release that knows the schema
 * versions up to `version` writes them (an earlier one only in tests, which play an earlier release).
 */
export const statements = (s: string, version: number = latestVersion, keepSucceeded = false) => {
  /** The queues of `$1` a claim may take from: all of them before version 5, else those not paused. */
  const open = version < 5
    ? `SELECT DISTINCT unnest($1::text[])`
    : `SELECT DISTINCT q FROM unnest($1::text[]) AS u(q) WHERE NOT EXISTS (
          SELECT 1 FROM ${s}.paused_queues AS p WHERE p.queue = u.q)`
  /** Leaves out the succeeded jobs kept: neither redriven nor deleted by hand (the prune takes them). */
  const notSucceeded = version < 8 ? "" : "AND state <> 'succeeded'"
  /** The condition that keeps the dead letters among the ended jobs (all of them before version 8). */
  const onlyDead = (join: string) => version < 8 ? "" : `${join} d.state = 'dead'`
  /** The columns of an ended job that a schema from version 8 on keeps, and their values for a state. */
  const endedColumns = version < 8 ? "" : ", state, errors, scheduled_for"
  const endedValues = (state: string) => version < 8 ? "" : `, '${state}', errors, scheduled_for`
  /** A settle's `SET` item that appends a retry's error to `errors`, keeping the newest; none before version 4. */
  const appendError = version < 4 ? "" : `errors = CASE WHEN i.kind = '${Kind.Retry}' THEN (
            SELECT jsonb_agg(e ORDER BY n) FROM jsonb_array_elements(j.errors || jsonb_build_array(jsonb_build_object(
              'attempt', j.attempts, 'error', i.error, 'at', ${ms(`${s}.clock()`)}))) WITH ORDINALITY AS x(e, n)
            WHERE n > jsonb_array_length(j.errors) + 1 - ${maxAttemptErrors}
          ) ELSE j.errors END,`
  /**
   * Moves the rows of `source` (deleted from `jobs`) to the ended jobs in `state`, with `error` as their last error,
   * and the columns of `[columns, values]` besides (each list starting with a comma).
   */
  const end = (source: string, state: string, error: string, [columns, values] = ["", ""]) =>
    `INSERT INTO ${s}.dead_jobs (id, name, queue, payload, priority, key, attempts, max_attempts, run_at, enqueued_at,
                                 last_error, failed_at${endedColumns}${columns})
     SELECT id, name, queue, payload, priority, key, attempts, max_attempts, run_at, enqueued_at, ${error},
            ${s}.clock()${endedValues(state)}${values} FROM ${source}
     RETURNING id`
  /** Keeps the rows of `source` (completed, with their `run_ms` and `result`) as succeeded. */
  const kept = (source: string) =>
    end(source, "succeeded", "last_error", [", run_ms, result", ", run_ms, result::jsonb"])
  /** Moves the rows of `source` to the dead letters with `error`. */
  const bury = (source: string, error: string) => end(source, "dead", error)
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
  /**
   * Whether the job `j` waits, for a key mode: it has no lease, or its lease expired with attempts left (it is
   * ready again, as a reap would make it; one whose attempts are used up is to be buried, and counts as running).
   */
  const waits = (j: string) =>
    `(${j}.lease_token IS NULL OR (${j}.lease_expires_at <= ${s}.clock() AND ${j}.attempts < ${j}.max_attempts))`
  /** Whether `slot` is free in the schedule row `c`: not among its recent slots, and later than the oldest of them. */
  const slotFree = (c: string, slot: string) =>
    `${slot} <> ALL(${c}.recent) AND ${slot} > (SELECT min(t) FROM unnest(${c}.recent) AS u(t))`
  /** The `SET` of a schedule row `c` that takes `slot`: it keeps the newest `recentSlots` slots, newest first. */
  const takeSlot = (c: string, slot: string) =>
    `last_slot = greatest(${c}.last_slot, ${slot}),
     recent = ARRAY(SELECT t FROM unnest(${c}.recent || ${slot}) AS u(t) ORDER BY t DESC LIMIT ${recentSlots}),
     updated_at = ${s}.clock()`
  /**
   * The fields of the job records an enqueue reads from `$2`, as `pgEnqueue` writes them: short names, and a field at
   * its default left out (`r` the caller's `run_at`, `d` the delay in milliseconds, `p` the priority, `k` the key).
   * Records half as long as named in full made a bulk enqueue's statement a third faster (10,000 jobs: 92 ms, not 133).
   */
  const recordFields = "n text, q text, a jsonb, r timestamptz, d float8, p bigint, k text, m bigint"
  const recordNames = recordFields.split(", ").map((field) => field.split(" ")[0]).join(", ")
  /** The job of the record `x`, as the columns of `jobs` it gives. */
  const jobOf = (x: string) =>
    `${x}.n AS name, ${x}.q AS queue, coalesce(${x}.a, 'null'::jsonb) AS payload, coalesce(${x}.p, 0) AS priority,
     ${x}.k AS key, ${x}.m AS max_attempts,
     coalesce(${x}.r, ${s}.clock() + coalesce(${x}.d, 0) * interval '1 millisecond') AS run_at`
  /**
   * The `INSERT` of the enqueue statement's jobs in `from` that satisfy `where`: keyless jobs are inserted plainly,
   * and only keyed ones go through `ON CONFLICT`, whose speculative insertion costs every row it is given.
   */
  const insertFresh = (slot: string, from: string, where: string, conflict: string) => `
        INSERT INTO ${s}.jobs AS j (id, seq, name, queue, payload, priority, key, max_attempts, run_at, enqueued_at
                                    ${slot === "" ? "" : ", scheduled_for"})
        SELECT id, id, name, queue, payload, priority, key, max_attempts, run_at, ${s}.clock()
               ${slot === "" ? "" : ", $4::timestamptz"}
        FROM ${from} WHERE ${where}
        ${conflict}
        RETURNING j.id, j.key, j.queue, j.run_at <= ${s}.clock() AS ready`
  /**
   * The enqueue statement; with a `slot` CTE, only when it returns a row, and with `scheduled_for` set to `$4`.
   * Without `keys`, for a batch in which no job has a key: every job is inserted, with none of the key handling.
   *
   * Nothing is sorted: the function scan yields the records in the array's order, and `nextval` is taken row by row
   * as they come, so the ids follow the batch's order (and `first_id` says so). A sort by `o` would cost as much as
   * a tenth of the statement, and spill to disk past `work_mem` (a batch of 30,000 is about 5 MB).
   */
  const enqueue = (slot: string, keys = true) => `
      WITH ${slot}input AS (
        SELECT x.o, ${jobOf("x")}, nextval('${s}.job_ids') AS id
        FROM ROWS FROM (jsonb_to_recordset($2::jsonb) AS (${recordFields})) WITH ORDINALITY AS x(${recordNames}, o)
        ${slot === "" ? "" : "WHERE EXISTS (SELECT 1 FROM slot)"}
      ), ${
    keys
      ? `fresh AS (
        SELECT * FROM input i
        WHERE i.key IS NULL OR NOT EXISTS (SELECT 1 FROM input e WHERE e.key = i.key AND e.o < i.o)
      ), unkeyed AS (${insertFresh(slot, "fresh", "key IS NULL", "")}
      ), keyed_new AS (${
        insertFresh(slot, "fresh", "key IS NOT NULL", "ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING")
      }
      ), ins AS (
        SELECT * FROM unkeyed UNION ALL SELECT * FROM keyed_new
      ), keyed AS (
        SELECT DISTINCT ON (key) key, id FROM (
          SELECT key, id, 0 AS pass FROM ins WHERE key IS NOT NULL
          UNION ALL
          SELECT j.key, j.id, 1 FROM ${s}.jobs j WHERE j.key IN (SELECT key FROM input WHERE key IS NOT NULL)
        ) AS k ORDER BY key, pass
      ),`
      : `ins AS (${insertFresh(slot, "input", "true", "")}
      ),`
  } woken AS (${notifyReady("$1", "ins", "ready")})
      SELECT f.first::text AS first_id,
             CASE WHEN f.counted THEN NULL ELSE (SELECT json_agg(id::text ORDER BY o) FROM input) END AS ids,
             ${
    keys
      ? `(SELECT json_object_agg(key, id::text) FROM keyed) AS keyed,
             (SELECT json_agg(id::text) FROM keyed_new) AS inserted,`
      : ""
  }
             ${slot === "" ? "" : "(SELECT count(*) FROM slot)::int AS taken,"}
             (SELECT count(*) FROM woken)::int AS woken
      FROM (SELECT min(id) AS first, max(id) - min(id) = count(*) - 1 AS counted FROM input) AS f`
  return {
    /**
     * Inserts the jobs in order, each due at its `run_at` (the caller's instant) or `delay_ms` after the store's
     * now. A key already taken (by a committed job, or by one this statement waited for) is left alone: `ON
     * CONFLICT DO NOTHING` takes no lock on the existing row, so a producer's open transaction never holds a row a
     * worker renews or settles. The existing job's id is read in the same statement when its snapshot shows it;
     * `keyed` lacks the keys taken by a transaction that committed while this statement ran, and the driver asks
     * again for those. The jobs' ids, in order, are `ids`; or only `first_id`, when they are that id counted up (the
     * sequence handed them out one after the other, as it does unless a concurrent statement took some in between):
     * 10,000 ids are then not sent and parsed for nothing.
     */
    enqueue: enqueue(""),
    /** {@link enqueue} for a batch in which no job has a key. */
    enqueueUnkeyed: enqueue("", false),
    /**
     * The enqueue of a recurring schedule's slot (`$3` the schedule, `$4` the slot): the slot is taken, in the same
     * statement, by adding it to the schedule's `recent` slots, only if it is not among them and is later than the
     * oldest of them (a new schedule takes its first slot); the job is inserted only then, with `scheduled_for` the
     * slot. `ON CONFLICT DO UPDATE ... WHERE` locks the schedule's row, and a concurrent statement for the same slot
     * waits for it, then sees the slot among the recent ones and takes nothing: one slot, one job, without an
     * advisory lock or a leader. `taken` says whether this statement took the slot.
     */
    enqueueSlot: enqueue(`slot AS (
        INSERT INTO ${s}.schedules AS c (name, last_slot, recent, updated_at)
        VALUES ($3, $4::timestamptz, ARRAY[$4::timestamptz], ${s}.clock())
        ON CONFLICT (name) DO UPDATE SET ${takeSlot("c", "EXCLUDED.last_slot")}
        WHERE ${slotFree("c", "EXCLUDED.last_slot")}
        RETURNING 1
      ), `),
    /** {@link enqueueSlot} for a backfilled slot: taken only when the schedule is known. */
    enqueueBackfill: enqueue(`slot AS (
        UPDATE ${s}.schedules AS c SET ${takeSlot("c", "$4::timestamptz")}
        WHERE c.name = $3 AND ${slotFree("c", "$4::timestamptz")}
        RETURNING 1
      ), `),
    /**
     * Claims up to `$3` jobs, ready ones and ones whose lease expired with attempts left, in order; and buries, in
     * the same statement, the jobs of these queues and names whose lease expired on their last attempt. Rows of
     * kind `c` are claimed jobs, rows of kind `b` buried ones.
     *
     * The lapsed leases are found first (`lapsed`), by the lease alone, so that the leased index (`jobs_leased`) is
     * the way to them: asked by queue and name in the same scan, a planner without statistics, or with statistics
     * older than the queue's jobs, took the `list` indexes by queue and by name instead, and read every job of the
     * queue at every claim (a drain of 30,000 jobs went from about 5,000 to 1,800 jobs/s).
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
      ), lapsed AS MATERIALIZED (
        SELECT id, queue, name, attempts < max_attempts AS retry FROM ${s}.jobs
        WHERE lease_token IS NOT NULL AND lease_expires_at <= ${s}.clock()
      ), expired AS (
        SELECT id, priority, run_at, seq FROM ${s}.jobs
        WHERE id IN (
            SELECT id FROM lapsed WHERE retry AND queue = ANY(ARRAY(SELECT * FROM open)) AND name = ANY($2::text[])
          )
          -- Again on the row itself: one that a concurrent statement changed is locked in its new version, and
          -- checked again against these conditions only (\`lapsed\` read the old one).
          AND lease_token IS NOT NULL AND lease_expires_at <= ${s}.clock() AND attempts < max_attempts
        ORDER BY priority, run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED
      ), chosen AS (
        SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM expired) AS c
        ORDER BY priority, run_at, seq LIMIT $3
      ), exhausted AS (
        DELETE FROM ${s}.jobs WHERE id IN (
          SELECT id FROM ${s}.jobs
          WHERE id IN (SELECT id FROM lapsed WHERE NOT retry AND queue = ANY($1::text[]) AND name = ANY($2::text[]))
            AND lease_token IS NOT NULL AND lease_expires_at <= ${s}.clock() AND attempts >= max_attempts
          FOR UPDATE SKIP LOCKED
        ) RETURNING *
      ), buried AS (${bury("exhausted", "'lease expired'")}), claimed AS (
        UPDATE ${s}.jobs AS j
        SET attempts = j.attempts + 1, lease_token = nextval('${s}.lease_tokens'),
            lease_expires_at = ${s}.clock() + $4::float8 * interval '1 millisecond', leased_by = $5
            ${version >= 8 ? `, leased_at = ${s}.clock()` : ""}
        FROM chosen WHERE j.id = chosen.id
        RETURNING ${claimedColumns("j", version)}
      )
      SELECT 'c' AS kind, * FROM claimed
      UNION ALL
      SELECT 'b', e.id::text, e.name, e.queue, NULL, e.attempts::float8, e.max_attempts::float8, NULL, NULL, NULL,
             NULL, NULL, NULL, NULL, NULL, NULL, NULL
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
        SELECT * FROM unnest(${list("$2")}, ${list("$3")}, $4::text[], $5::float8[], $6::text[]${
      keepSucceeded ? ", $7::float8[], $8::text[]" : ""
    })
          AS x(id, token, kind, delay_ms, error${keepSucceeded ? ", run_ms, result" : ""})
      ), done AS (
        DELETE FROM ${s}.jobs AS j USING input i WHERE i.kind = '${Kind.Completed}' AND ${holds("j", "i", list("$2"))}
        RETURNING ${keepSucceeded ? "j.*, i.run_ms, i.result, " : ""}i.id AS done_id, i.token AS done_token
      ), ${keepSucceeded ? `kept AS (${kept("done")}), ` : ""}dead AS (
        DELETE FROM ${s}.jobs AS j USING input i WHERE i.kind = '${Kind.Dead}' AND ${holds("j", "i", list("$2"))}
        RETURNING j.*, i.token AS settled_token, i.error AS final_error
      ), buried AS (${bury("dead", "final_error")}), back AS (
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
                SELECT done_id AS id, done_token AS token FROM done UNION ALL SELECT id, settled_token FROM dead
                UNION ALL SELECT id, token FROM back) AS a) AS applied,
             (SELECT count(*) FROM buried)::int AS buried,
             (SELECT count(*) FROM woken)::int AS woken`,
    /** {@link settle} for a batch of completions only (the common case): one `DELETE`, and no notification. */
    complete: keepSucceeded
      ? `
      WITH done AS (
        DELETE FROM ${s}.jobs AS j
        USING unnest(${list("$1")}, ${list("$2")}, $3::float8[], $4::text[]) AS i(id, token, run_ms, result)
        WHERE ${holds("j", "i", list("$1"))}
        RETURNING j.*, i.run_ms, i.result, i.token AS done_token
      ), kept AS (${kept("done")})
      SELECT id::text || ':' || done_token::text AS applied FROM done`
      : `
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
             sum(leased)::float8 AS leased, sum(dead)::float8 AS dead, 0::float8 AS cancelled,
             0::float8 AS succeeded, false AS paused
      FROM (
        SELECT queue, name, n AS ready, 0 AS scheduled, 0 AS leased, 0 AS dead FROM counted WHERE state = 'waiting'
        UNION ALL SELECT queue, name, -n, n, 0, 0 FROM scheduled
        UNION ALL SELECT queue, name, 0, 0, n, 0 FROM counted WHERE state = 'leased'
        UNION ALL SELECT queue, name, ready, 0, -(ready + dead), dead FROM expired
      ) AS live GROUP BY queue, name
      UNION ALL
      SELECT queue, NULL, 0, 0, 0, coalesce(sum(n) FILTER (WHERE state = 'dead'), 0)::float8,
             coalesce(sum(n) FILTER (WHERE state = 'cancelled'), 0)::float8,
             coalesce(sum(n) FILTER (WHERE state = 'succeeded'), 0)::float8, false
      FROM counted WHERE state IN ('dead', 'cancelled', 'succeeded') GROUP BY queue
      ${version < 5 ? "" : `UNION ALL SELECT queue, NULL, 0, 0, 0, 0, 0, 0, true FROM ${s}.paused_queues`}
      ${
      version < 7 ? "" : `UNION ALL SELECT queue, name, 0, count(*)::float8, 0, 0, 0, 0, false FROM ${s}.key_successors
                          GROUP BY queue, name`
    }`,
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
          ${version >= 8 ? "AND state <> 'succeeded'" : ""}
        ORDER BY failed_at, dead_seq LIMIT $2 FOR UPDATE SKIP LOCKED
      ), gone AS (
        DELETE FROM ${s}.dead_jobs AS d USING doomed WHERE d.id = doomed.id RETURNING 1
      )
      SELECT (SELECT count(*) FROM gone)::int AS pruned`,
    /** {@link prune} of the succeeded jobs kept, past their own retention `$1`, by `dead_jobs_succeeded`. */
    pruneSucceeded: `
      WITH doomed AS (
        SELECT id FROM ${s}.dead_jobs
        WHERE state = 'succeeded' AND failed_at < ${s}.clock() - $1::float8 * interval '1 millisecond'
        ORDER BY failed_at LIMIT $2 FOR UPDATE SKIP LOCKED
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
      FROM ${s}.dead_jobs AS d ${onlyDead("WHERE")} ORDER BY d.failed_at DESC, d.dead_seq DESC LIMIT $1`,
    /** {@link deadLetters} of one queue (`$2`), by its own index (`dead_jobs_queue`). */
    deadLettersOfQueue: `
      SELECT d.id::text AS id, d.name, d.queue, d.payload, d.attempts::float8 AS attempts, d.last_error,
             ${ms("d.failed_at")} AS failed_at
      FROM ${s}.dead_jobs AS d WHERE d.queue = $2 ${onlyDead("AND")} ORDER BY d.failed_at DESC, d.dead_seq DESC
      LIMIT $1`,
    redrive: `
      WITH moved AS (
        INSERT INTO ${s}.jobs (id, seq, name, queue, payload, priority, key, max_attempts, attempts, run_at,
                               enqueued_at)
        SELECT id, nextval('${s}.job_ids'), name, queue, payload, priority, key, max_attempts, 0, ${s}.clock(),
               ${s}.clock()
        FROM (SELECT * FROM ${s}.dead_jobs WHERE id = ANY($2::bigint[]) ${notSucceeded} ORDER BY dead_seq) AS d
        ON CONFLICT DO NOTHING
        RETURNING id, queue, true AS ready
      ), gone AS (
        DELETE FROM ${s}.dead_jobs AS d USING moved m WHERE d.id = m.id RETURNING d.id
      ), woken AS (${notifyReady("$1", "moved", "ready")})
      SELECT (SELECT count(*) FROM gone)::int AS moved, (SELECT count(*) FROM woken)::int AS woken`,
    /**
     * One job whose key a live job may hold, by its key mode (`$3`: `replace` or `afterRunning`; `skip` goes through
     * {@link enqueue}): inserted when no job holds the key; else a waiting holder takes the new values (`replace`)
     * or is left alone (`afterRunning`); a running holder gets the job kept to run after it (`key_successors`),
     * made or updated. The holder is read, never locked: a producer's open transaction holds at most a waiting job,
     * which claims skip, or the successor's row, which the promotion skips. No row of the answer set: the key was
     * taken or freed while the statement ran, and the driver asks again.
     */
    keyed: `
      WITH x AS (
        SELECT ${jobOf("x")} FROM jsonb_to_record($2::jsonb) AS x(${recordFields})
      ), holder AS (
        SELECT j.id, ${waits("j")} AS waiting FROM ${s}.jobs AS j, x WHERE j.key = x.key
      ), replaced AS (
        UPDATE ${s}.jobs AS j SET payload = x.payload, run_at = x.run_at, priority = x.priority,
                                 max_attempts = x.max_attempts, lease_token = NULL, lease_expires_at = NULL,
                                 leased_by = NULL,
                                 last_error = CASE WHEN j.lease_token IS NULL THEN j.last_error ELSE 'lease expired' END
        FROM x WHERE $3 = 'replace' AND j.key = x.key AND ${waits("j")}
        RETURNING j.id, j.queue, j.run_at <= ${s}.clock() AS ready
      ), after AS (
        INSERT INTO ${s}.key_successors AS k (key, id, name, queue, payload, priority, max_attempts, run_at,
                                               enqueued_at)
        SELECT x.key, nextval('${s}.job_ids'), x.name, x.queue, x.payload, x.priority, x.max_attempts, x.run_at,
               ${s}.clock()
        FROM x, holder WHERE NOT holder.waiting
        ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name, queue = EXCLUDED.queue, payload = EXCLUDED.payload,
          priority = EXCLUDED.priority, max_attempts = EXCLUDED.max_attempts, run_at = EXCLUDED.run_at
        RETURNING k.id
      ), ins AS (
        INSERT INTO ${s}.jobs AS j (id, seq, name, queue, payload, priority, key, max_attempts, run_at, enqueued_at)
        SELECT n.id, n.id, x.name, x.queue, x.payload, x.priority, x.key, x.max_attempts, x.run_at, ${s}.clock()
        FROM x, (SELECT nextval('${s}.job_ids') AS id) AS n WHERE NOT EXISTS (SELECT 1 FROM holder)
        ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
        RETURNING j.id, j.queue, j.run_at <= ${s}.clock() AS ready
      ), woken AS (
        ${notifyReady("$1", "(SELECT * FROM replaced UNION ALL SELECT * FROM ins) AS r", "ready")}
      )
      SELECT id::text AS id, outcome, (SELECT count(*) FROM woken)::int AS woken FROM (
        SELECT id, 'inserted' AS outcome FROM ins
        UNION ALL SELECT id, 'replaced' FROM replaced
        UNION ALL SELECT id, 'queuedAfter' FROM after
        UNION ALL SELECT id, 'skipped' FROM holder WHERE holder.waiting AND $3 = 'afterRunning'
      ) AS o`,
    /**
     * Promotes, at most 100 at a time, the jobs kept to run after a holder that is gone (the trigger skipped them
     * while a producer held them, or they were written as the holder ended): each becomes the key's holder, unless
     * a new job took the key meanwhile, and then it waits for that one instead.
     */
    promoteOrphans: `
      WITH orphan AS (
        SELECT * FROM ${s}.key_successors AS k
        WHERE NOT EXISTS (SELECT 1 FROM ${s}.jobs AS j WHERE j.key = k.key)
        ORDER BY enqueued_at LIMIT 100 FOR UPDATE SKIP LOCKED
      ), promoted AS (
        INSERT INTO ${s}.jobs AS j (id, seq, name, queue, payload, priority, key, max_attempts, run_at, enqueued_at)
        SELECT id, nextval('${s}.job_ids'), name, queue, payload, priority, key, max_attempts, run_at, enqueued_at
        FROM orphan
        ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
        RETURNING j.key, j.queue, j.run_at <= ${s}.clock() AS ready
      ), gone AS (
        DELETE FROM ${s}.key_successors AS k USING promoted AS p WHERE k.key = p.key RETURNING k.key
      ), woken AS (${notifyReady("$1", "promoted", "ready")})
      SELECT (SELECT count(*) FROM gone)::int AS promoted, (SELECT count(*) FROM woken)::int AS woken`,
    /** The job `$1`, wherever it is (see {@link storedJobsOf}). */
    get: `${storedJobsOf(s, version, "jobs", "WHERE id = $1")} UNION ALL ${
      storedJobsOf(s, version, "dead_jobs", "WHERE id = $1")
    } UNION ALL ${storedJobsOf(s, version, "key_successors", "WHERE id = $1")}`,
    /**
     * Cancels the job `$2` if it is live, and tells its worker through `$1` (the channel) when it was leased: moves
     * it from `jobs` (or from `key_successors`) to the ended jobs, as `cancelled`. Deleting a holder of a key
     * promotes the job kept to run after it (the trigger). `ended`: whether it had ended already.
     */
    cancel: `
      WITH target AS (
        DELETE FROM ${s}.jobs WHERE id = $2 RETURNING *
      ), successor AS (
        DELETE FROM ${s}.key_successors WHERE id = $2 RETURNING *
      ), ended AS (${cancelled(s, "target", "successor")}), told AS (
        SELECT pg_notify($1, '!' || id::text) FROM target WHERE lease_token IS NOT NULL
      )
      SELECT (SELECT count(*) FROM ended)::int AS cancelled, (SELECT count(*) FROM told)::int AS told,
             EXISTS (SELECT 1 FROM ${s}.dead_jobs WHERE id = $2) AS ended`,
    /** Deletes the ended jobs among the ids `$1`. */
    delete: `WITH gone AS (DELETE FROM ${s}.dead_jobs WHERE id = ANY($1::bigint[]) ${notSucceeded} RETURNING 1)
             SELECT count(*)::int AS deleted FROM gone`,
    /**
     * Makes the job `$2` ready now if it is scheduled, and wakes its queue through `$1`; `found`: whether a job (or
     * a job kept to run after a key's holder) has this id.
     */
    runNow: `
      WITH moved AS (
        UPDATE ${s}.jobs SET run_at = ${s}.clock()
        WHERE id = $2 AND lease_token IS NULL AND run_at > ${s}.clock() RETURNING queue, true AS ready
      ), woken AS (${notifyReady("$1", "moved", "ready")})
      SELECT (SELECT count(*) FROM moved)::int AS moved, (SELECT count(*) FROM woken)::int AS woken,
             EXISTS (SELECT 1 FROM ${s}.jobs WHERE id = $2) OR EXISTS (SELECT 1 FROM ${s}.dead_jobs WHERE id = $2)
             OR EXISTS (SELECT 1 FROM ${s}.key_successors WHERE id = $2) AS found`,
    /** The id of the job holding the key `$1`, if any. */
    keyHolder: `SELECT id::text AS id FROM ${s}.jobs WHERE key = $1`,
    readyQueues: `SELECT DISTINCT queue FROM ${s}.jobs WHERE lease_token IS NULL AND run_at <= ${s}.clock()`
  }
}

/**
 * The rows of `table` (`jobs`, `dead_jobs` or `key_successors`) that `where` selects, as `StoredRow`s: a live job's
 * state by the store's clock; an expired lease not settled yet still shows as leased.
 */
const storedJobsOf = (s: string, version: number, table: "jobs" | "dead_jobs" | "key_successors", where: string) => {
  const t = "t"
  const common = `${t}.id::text AS id, ${t}.name, ${t}.queue, ${t}.payload, ${t}.max_attempts::float8 AS max_attempts,
    ${t}.priority::float8 AS priority, ${t}.key, ${ms(`${t}.enqueued_at`)} AS enqueued_at,
    ${ms(`${t}.run_at`)} AS run_at`
  switch (table) {
    case "jobs":
      return `(SELECT ${common}, CASE WHEN ${t}.lease_token IS NOT NULL THEN 'leased'
          WHEN ${t}.run_at <= ${s}.clock() THEN 'ready' ELSE 'scheduled' END AS state,
        ${t}.attempts::float8 AS attempts, ${t}.last_error, ${version >= 4 ? `${t}.errors` : `'[]'::jsonb`} AS errors,
        ${version >= 6 ? ms(`${t}.scheduled_for`) : "NULL::float8"} AS scheduled_for, ${t}.leased_by AS worker,
        ${ms(`${t}.lease_expires_at`)} AS lease_expires_at, NULL::float8 AS ended_at,
        ${version >= 8 ? `CASE WHEN ${t}.lease_token IS NOT NULL THEN ${ms(`${t}.leased_at`)} END` : "NULL::float8"}
          AS started_at, NULL::float8 AS run_ms, NULL::jsonb AS result
        FROM ${s}.jobs AS ${t} ${where})`
    case "dead_jobs":
      return `(SELECT ${common}, ${version >= 8 ? `${t}.state` : `'dead'`} AS state, ${t}.attempts::float8 AS attempts,
        ${t}.last_error, ${version >= 8 ? `${t}.errors` : `'[]'::jsonb`} AS errors,
        ${version >= 8 ? ms(`${t}.scheduled_for`) : "NULL::float8"} AS scheduled_for, NULL AS worker,
        NULL::float8 AS lease_expires_at, ${ms(`${t}.failed_at`)} AS ended_at, NULL::float8 AS started_at,
        ${version >= 8 ? `${t}.run_ms` : "NULL::float8"} AS run_ms, ${
        version >= 8 ? `${t}.result` : "NULL::jsonb"
      } AS result
        FROM ${s}.dead_jobs AS ${t} ${where})`
    case "key_successors":
      return `(SELECT ${common}, 'scheduled' AS state, 0::float8 AS attempts, NULL AS last_error,
        '[]'::jsonb AS errors, NULL::float8 AS scheduled_for, NULL AS worker, NULL::float8 AS lease_expires_at,
        NULL::float8 AS ended_at, NULL::float8 AS started_at, NULL::float8 AS run_ms,
        NULL::jsonb AS result FROM ${s}.key_successors AS ${t} ${where})`
  }
}

/** Inserts the rows of `live` (deleted from `jobs`) and of `successors` (from `key_successors`) as cancelled. */
const cancelled = (s: string, live: string, successors: string) =>
  `INSERT INTO ${s}.dead_jobs (id, name, queue, payload, priority, key, attempts, max_attempts, run_at, enqueued_at,
                               last_error, failed_at, state, errors, scheduled_for)
   SELECT id, name, queue, payload, priority, key, attempts, max_attempts, run_at, enqueued_at, 'cancelled',
          ${s}.clock(), 'cancelled', errors, scheduled_for FROM ${live}
   UNION ALL
   SELECT id, name, queue, payload, priority, key, 0, max_attempts, run_at, enqueued_at, 'cancelled', ${s}.clock(),
          'cancelled', '[]'::jsonb, NULL FROM ${successors}
   RETURNING id`

/** The columns of a job that every statement reading jobs returns, as the driver gives them. */
interface JobRow {
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
  readonly last_error: string | null
  /** `at` in epoch milliseconds. */
  readonly errors: ReadonlyArray<{ readonly attempt: number; readonly error: string; readonly at: number }>
  readonly scheduled_for: number | null
}

const attemptErrors = (row: JobRow) =>
  row.errors.map(({ at, attempt, error }) => ({ attempt, error, at: new Date(at) }))

/** A row of `get` and `list`. */
export interface StoredRow extends JobRow {
  readonly state: JobState
  readonly worker: string | null
  readonly lease_expires_at: number | null
  readonly ended_at: number | null
  readonly started_at: number | null
  readonly run_ms: number | null
  readonly result: unknown
}

const dateOrUndefined = (ms: number | null) => ms === null ? undefined : new Date(ms)

export const storedJob = (row: StoredRow): StoredJob => ({
  id: row.id,
  state: row.state,
  name: row.name,
  queue: row.queue,
  payload: row.payload,
  attempts: row.attempts,
  maxAttempts: row.max_attempts,
  priority: row.priority,
  key: row.key ?? undefined,
  enqueuedAt: new Date(row.enqueued_at),
  runAt: new Date(row.run_at),
  lastError: row.last_error ?? undefined,
  errors: attemptErrors(row),
  scheduledFor: dateOrUndefined(row.scheduled_for),
  worker: row.worker ?? undefined,
  leaseExpiresAt: dateOrUndefined(row.lease_expires_at),
  endedAt: dateOrUndefined(row.ended_at),
  startedAt: dateOrUndefined(row.started_at),
  durationMs: row.run_ms ?? undefined,
  result: row.result ?? undefined
})

/** A statement built for its arguments: its text, with `$n` placeholders, and their values. */
export interface Built {
  readonly text: string
  readonly params: ReadonlyArray<unknown>
}

/** Collects the values of a built statement, answering each one's placeholder. */
const placeholders = () => {
  const params: Array<unknown> = []
  return { params, add: (value: unknown) => `$${params.push(value)}` }
}

/** The conditions on `queue` and `name` of a filter, on the table aliased `t`. */
const laneConditions = (
  filter: { readonly queue?: string | undefined; readonly name?: string | undefined },
  add: (value: unknown) => string
): Array<string> => [
  ...(filter.queue === undefined ? [] : [`t.queue = ${add(filter.queue)}`]),
  ...(filter.name === undefined ? [] : [`t.name = ${add(filter.name)}`])
]

const where = (conditions: ReadonlyArray<string>) => conditions.length === 0 ? "" : `WHERE ${conditions.join(" AND ")}`

/**
 * One page of `list`: for each table that can hold jobs in the state asked for, the newest `limit + 1` rows that
 * match, by an index on `id` (the primary key, or `(queue, id)`, `(name, id)`, `(key, id)`) read backwards; then the
 * newest `limit + 1` of them all. One more than a page says whether another follows.
 */
export const listStatement = (s: string, version: number, options: ListOptions & { readonly limit: number }): Built => {
  const { add, params } = placeholders()
  const { state } = options
  const conditions = laneConditions(options, add)
  if (options.key !== undefined) conditions.push(`t.key = ${add(options.key)}`)
  if (options.after !== undefined) {
    conditions.push(`t.id < ${add(/^[0-9]{1,18}$/.test(options.after) ? options.after : "0")}`)
  }
  const limit = add(options.limit + 1)
  const page = (table: "jobs" | "dead_jobs" | "key_successors", extra: ReadonlyArray<string>) =>
    `${storedJobsOf(s, version, table, `${where([...conditions, ...extra])} ORDER BY t.id DESC LIMIT ${limit}`)}`
  const parts: Array<string> = []
  if (state === undefined) parts.push(page("jobs", []), page("dead_jobs", []))
  if (state === "ready") parts.push(page("jobs", ["t.lease_token IS NULL", `t.run_at <= ${s}.clock()`]))
  if (state === "scheduled") parts.push(page("jobs", ["t.lease_token IS NULL", `t.run_at > ${s}.clock()`]))
  if (state === "leased") parts.push(page("jobs", ["t.lease_token IS NOT NULL"]))
  if ((state === undefined || state === "scheduled") && version >= 7) parts.push(page("key_successors", []))
  if (state === "dead" || state === "cancelled" || state === "succeeded") {
    parts.push(page("dead_jobs", [`t.state = ${add(state)}`]))
  }
  return { text: `SELECT * FROM (${parts.join(" UNION ALL ")}) AS p ORDER BY p.id::bigint DESC LIMIT ${limit}`, params }
}

/**
 * One batch of `cancelMany`: at most `limit` live jobs of the filter (and as many jobs kept to run after a key's
 * holder), oldest first, skipping rows another transaction holds locked; their workers told through `$1` (the
 * channel), 200 ids per notification.
 */
export const cancelBatchStatement = (s: string, channel: string, filter: CancelFilter, limit: number): Built => {
  const { add, params } = placeholders()
  add(channel)
  const conditions = laneConditions(filter, add)
  const max = add(limit)
  const state = filter.state
  const live = state === "ready"
    ? ["t.lease_token IS NULL", `t.run_at <= ${s}.clock()`]
    : state === "scheduled"
    ? ["t.lease_token IS NULL", `t.run_at > ${s}.clock()`]
    : state === "leased"
    ? ["t.lease_token IS NOT NULL"]
    : []
  const successors = state === undefined || state === "scheduled"
  const text = `
    WITH picked AS (
      SELECT t.id FROM ${s}.jobs AS t ${where([...conditions, ...live])} ORDER BY t.id LIMIT ${max}
      FOR UPDATE SKIP LOCKED
    ), target AS (
      DELETE FROM ${s}.jobs AS j USING picked AS p WHERE j.id = p.id RETURNING j.*
    ), successor AS (
      DELETE FROM ${s}.key_successors AS k WHERE ${successors ? "" : "false AND "}k.id IN (
        SELECT t.id FROM ${s}.key_successors AS t ${where(conditions)} ORDER BY t.id LIMIT ${max}
        FOR UPDATE SKIP LOCKED
      ) RETURNING k.*
    ), ended AS (${cancelled(s, "target", "successor")}), told AS (
      SELECT pg_notify($1, '!' || string_agg(id::text, ',')) FROM (
        SELECT id, (row_number() OVER ()) / 200 AS chunk FROM target WHERE lease_token IS NOT NULL
      ) AS c GROUP BY chunk
    )
    SELECT (SELECT count(*) FROM ended)::int AS cancelled, (SELECT count(*) FROM told)::int AS told`
  return { text, params }
}

/** A row of the claim statement: a claimed job (`c`) or a buried one (`b`). */
export interface ClaimRow extends JobRow {
  readonly kind: "c" | "b"
  readonly token: string
  readonly lease_expires_at: number
  readonly seq: number
}

export const claimedJob = (row: ClaimRow): ClaimedJob => ({
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
  errors: attemptErrors(row),
  scheduledFor: dateOrUndefined(row.scheduled_for)
})

export const buriedJob = (
  row: { readonly id: string; readonly name: string; readonly queue: string },
  attempt: number
) => ({
  id: row.id,
  name: row.name,
  queue: row.queue,
  attempt,
  error: "lease expired"
})

/** Claim order: priority, then run_at, then enqueue order. */
export const claimOrder = (a: ClaimRow, b: ClaimRow) => a.priority - b.priority || a.run_at - b.run_at || a.seq - b.seq

/** The kind of a settlement, as the settle statement reads it. */
export const kindOf = (settlement: Settlement): string => {
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
