/**
 * The PostgreSQL store's schema versions: its migrations, the table that records them, and the check a store makes
 * before it works on a schema (see "Schema and upgrades" in `docs/postgres.md`).
 *
 * - The versions applied live in `<schema>.effect_worker_context_migrations`, a table of this library's own: a
 *   schema shared with an application (`public`, say) has its own `migrations` table, which is never read as ours.
 * - Every migration says which releases still work on the schema once it ran (`compatibleFrom`, a schema version:
 *   the oldest version a release may know). Migrations within a release line are additive, so a worker of the
 *   previous release keeps working beside a new one during a rolling deploy; a worker refuses only a schema that
 *   needs a newer release, naming both versions.
 * - A schema that is up to date is not touched: a role that may not `CREATE` starts with `migrate: true` as long as
 *   someone migrated the schema. Only a schema that lacks migrations takes the advisory lock and runs them.
 * - Schemas migrated by earlier releases (by `@effect/sql`'s Migrator, into `<schema>.migrations`) are adopted: their
 *   rows of this store's migrations are copied into the new table.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { JobStoreError } from "../JobStore.js"

/** One schema version. A shipped migration is never edited (stores are deployed): a change is a new one. */
interface Migration {
  readonly version: number
  readonly name: string
  /**
   * The oldest schema version a release may know and still work on a schema migrated to this one. An additive
   * migration keeps the one before it; one that older releases cannot work with raises it to its own version.
   */
  readonly compatibleFrom: number
  /** Its statements, for the schema whose quoted name is `s`, run in order in one transaction. */
  readonly statements: (s: string) => ReadonlyArray<string>
}

/** The table of applied versions, in the store's schema. */
export const versionTable = "effect_worker_context_migrations"

/** A job's count state in `jobs`: waiting (ready or scheduled) or leased. */
const jobsState = `CASE WHEN lease_token IS NULL THEN 'waiting' ELSE 'leased' END`

/** The net change of the counts, per lane, priority and state `st`, of `rows` (negated with `sign` `-`). */
const countDelta = (rows: string, st: string, sign: string) =>
  `SELECT queue, name, priority, ${st} AS state, ${sign}count(*) AS n FROM ${rows} GROUP BY 1, 2, 3, 4`

/** The statement trigger function that records the count deltas of `table`, whose rows' state is `st`. */
const countFunction = (s: string, table: string, st: string) =>
  `CREATE OR REPLACE FUNCTION ${s}.count_${table}() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      INSERT INTO ${s}.job_count_deltas ${countDelta("new_rows", st, "")};
    ELSIF TG_OP = 'DELETE' THEN
      INSERT INTO ${s}.job_count_deltas ${countDelta("old_rows", st, "-")};
    ELSE
      INSERT INTO ${s}.job_count_deltas
      SELECT queue, name, priority, state, sum(n) FROM (
        ${countDelta("old_rows", st, "-")} UNION ALL ${countDelta("new_rows", st, "")}
      ) AS d GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
  END $$`

const countTriggers = (s: string, table: string) => [
  `CREATE TRIGGER ${table}_counted_insert AFTER INSERT ON ${s}.${table} REFERENCING NEW TABLE AS new_rows
   FOR EACH STATEMENT EXECUTE FUNCTION ${s}.count_${table}()`,
  `CREATE TRIGGER ${table}_counted_update AFTER UPDATE ON ${s}.${table}
   REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${s}.count_${table}()`,
  `CREATE TRIGGER ${table}_counted_delete AFTER DELETE ON ${s}.${table} REFERENCING OLD TABLE AS old_rows
   FOR EACH STATEMENT EXECUTE FUNCTION ${s}.count_${table}()`,
  `CREATE TRIGGER ${table}_counted_truncate AFTER TRUNCATE ON ${s}.${table}
   FOR EACH STATEMENT EXECUTE FUNCTION ${s}.uncount_${table}()`
]

/** The function that drops the counts of `states` when `table` is truncated. */
const uncountFunction = (s: string, table: string, states: string) =>
  `CREATE OR REPLACE FUNCTION ${s}.uncount_${table}() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    DELETE FROM ${s}.job_counts WHERE state IN (${states});
    DELETE FROM ${s}.job_count_deltas WHERE state IN (${states});
    RETURN NULL;
  END $$`

const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    name: "jobs",
    compatibleFrom: 1,
    statements: (s) => [
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
    ]
  },
  {
    // A claim reads each (queue, name) lane of its request from the head of its own index range: a queue whose jobs
    // are few is not found by scanning past every ready job of a busier one. The index of all ready jobs goes: left
    // beside it, the planner chose it whenever its statistics said a lane's jobs were common. A worker of release 1
    // still claims, by this index and a sort of the lanes it asks for.
    version: 2,
    name: "ready_by_lane",
    compatibleFrom: 1,
    statements: (s) => [
      `CREATE INDEX jobs_ready_by_lane ON ${s}.jobs (queue, name, priority, run_at, seq) WHERE lease_token IS NULL`,
      `DROP INDEX ${s}.jobs_ready`
    ]
  },
  {
    // Exact counts without scanning the tables: `job_counts` holds a count per lane, priority and state (`waiting`,
    // `leased`, `dead`), and every statement that changes jobs or dead letters adds its net change as rows of
    // `job_count_deltas`, from a statement-level trigger (one insert per statement, whatever its size, and none when
    // nothing changed state: a renewal). Inserts do not contend, so workers never wait on a count; the store's
    // maintenance folds the deltas into `job_counts` now and then. Triggers keep the counts for every writer, a
    // worker of the previous release and an operator's own SQL included.
    version: 3,
    name: "counts",
    compatibleFrom: 1,
    statements: (s) => [
      `CREATE TABLE ${s}.job_counts (
          queue text NOT NULL,
          name text NOT NULL,
          priority bigint NOT NULL,
          state text NOT NULL,
          n bigint NOT NULL,
          PRIMARY KEY (queue, name, priority, state)
        )`,
      `CREATE TABLE ${s}.job_count_deltas (
          queue text NOT NULL,
          name text NOT NULL,
          priority bigint NOT NULL,
          state text NOT NULL,
          n bigint NOT NULL
        )`,
      // Rows come and go by the thousand: vacuum it often.
      `ALTER TABLE ${s}.job_count_deltas SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000)`,
      countFunction(s, "jobs", jobsState),
      countFunction(s, "dead_jobs", `'dead'`),
      uncountFunction(s, "jobs", `'waiting', 'leased'`),
      uncountFunction(s, "dead_jobs", `'dead'`),
      // The triggers first: creating them locks out writers until this transaction commits, so the counts below
      // miss no change and count none twice.
      ...countTriggers(s, "jobs"),
      ...countTriggers(s, "dead_jobs"),
      `INSERT INTO ${s}.job_counts ${countDelta(`${s}.jobs`, jobsState, "")}`,
      `INSERT INTO ${s}.job_counts ${countDelta(`${s}.dead_jobs`, `'dead'`, "")}`
    ]
  },
  {
    // The errors of a job's earlier failed attempts, `[{ attempt, error, at }]` with `at` in epoch milliseconds,
    // the newest ten. A column with a constant default is added without rewriting the table, and a release that
    // does not know it inserts the default.
    version: 4,
    name: "attempt_errors",
    compatibleFrom: 1,
    statements: (s) => [`ALTER TABLE ${s}.jobs ADD COLUMN errors jsonb NOT NULL DEFAULT '[]'::jsonb`]
  },
  {
    // The queues no claim takes from, kept by the store so that a pause survives the workers. A release that does
    // not know the table keeps claiming from a paused queue: pause queues once every worker runs this one.
    version: 5,
    name: "paused_queues",
    compatibleFrom: 1,
    statements: (s) => [`CREATE TABLE ${s}.paused_queues (queue text PRIMARY KEY, paused_at timestamptz NOT NULL)`]
  },
  {
    // Recurring schedules: the latest slots each one enqueued (`recent`, newest first, and `last_slot`), changed only
    // by the statement that inserts the slot's job, so any number of workers may offer a slot and one stores it; and
    // the slot a job was enqueued for.
    // A release that does not know them runs no schedules and reads no slot.
    version: 6,
    name: "schedules",
    compatibleFrom: 1,
    statements: (s) => [
      `CREATE TABLE ${s}.schedules (name text PRIMARY KEY, last_slot timestamptz NOT NULL,
                                    recent timestamptz[] NOT NULL, updated_at timestamptz NOT NULL)`,
      `ALTER TABLE ${s}.jobs ADD COLUMN scheduled_for timestamptz`
    ]
  },
  {
    // Key modes: the job kept to run after the running holder of its key (`afterRunning`, and `replace` of a running
    // holder), one per key, with the id it will have. When the holder leaves `jobs` (completed, dead, buried), the
    // trigger makes it a job, holding the key; it skips a row a producer's open transaction holds, so no worker's
    // settle ever waits for a producer: the reap promotes such a row, and one whose holder ended while it was being
    // written. A release that does not know the table keeps the keys as "skip" did, and promotes nothing.
    version: 7,
    name: "key_successors",
    compatibleFrom: 1,
    statements: (s) => [
      `CREATE TABLE ${s}.key_successors (key text PRIMARY KEY, id bigint NOT NULL, name text NOT NULL,
         queue text NOT NULL, payload jsonb NOT NULL, priority bigint NOT NULL, max_attempts bigint NOT NULL,
         run_at timestamptz NOT NULL, enqueued_at timestamptz NOT NULL)`,
      `CREATE FUNCTION ${s}.promote_successor() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE
         next ${s}.key_successors;
       BEGIN
         SELECT * INTO next FROM ${s}.key_successors WHERE key = OLD.key FOR UPDATE SKIP LOCKED;
         IF NOT FOUND THEN
           RETURN NULL;
         END IF;
         INSERT INTO ${s}.jobs AS j (id, seq, name, queue, payload, priority, key, max_attempts, run_at, enqueued_at)
         VALUES (next.id, nextval('${s}.job_ids'), next.name, next.queue, next.payload, next.priority, next.key,
                 next.max_attempts, next.run_at, next.enqueued_at)
         ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING;
         IF FOUND THEN
           DELETE FROM ${s}.key_successors WHERE key = OLD.key;
           IF next.run_at <= ${s}.clock() THEN
             PERFORM pg_notify(TG_TABLE_SCHEMA || '.wakeups', json_build_array(next.queue)::text);
           END IF;
         END IF;
         RETURN NULL;
       END $$`,
      `CREATE TRIGGER jobs_promote_successor AFTER DELETE ON ${s}.jobs FOR EACH ROW WHEN (OLD.key IS NOT NULL)
       EXECUTE FUNCTION ${s}.promote_successor()`
    ]
  },
  {
    // Job control: when a job's running attempt was claimed (`leased_at`, for how long it has run); the ended jobs
    // (`dead_jobs`) are dead, cancelled or succeeded (`state`, counted as such; succeeded ones are kept only with
    // `succeededRetention`, with their handler's run time `run_ms`), and keep their
    // attempt errors and slot; indexes that serve `list` newest first by queue, name and key, its scheduled jobs (by
    // `run_at`, when they are few among many ready ones), its cancelled ones, and `get` of a job kept to run after
    // its key's holder. Creating the indexes locks writes to `jobs` while they build (seconds per
    // million jobs). A release that does not know `state` lists cancelled jobs among its dead letters.
    version: 8,
    name: "job_control",
    compatibleFrom: 1,
    statements: (s) => [
      `ALTER TABLE ${s}.jobs ADD COLUMN leased_at timestamptz`,
      `ALTER TABLE ${s}.dead_jobs ADD COLUMN state text NOT NULL DEFAULT 'dead',
         ADD COLUMN errors jsonb NOT NULL DEFAULT '[]'::jsonb, ADD COLUMN scheduled_for timestamptz,
         ADD COLUMN run_ms float8, ADD COLUMN result jsonb, ALTER COLUMN last_error DROP NOT NULL`,
      countFunction(s, "dead_jobs", "state"),
      uncountFunction(s, "dead_jobs", `'dead', 'cancelled', 'succeeded'`),
      `CREATE INDEX jobs_by_queue ON ${s}.jobs (queue, id)`,
      `CREATE INDEX jobs_by_name ON ${s}.jobs (name, id)`,
      `CREATE INDEX jobs_waiting_by_run_at ON ${s}.jobs (run_at) WHERE lease_token IS NULL`,
      `CREATE INDEX dead_jobs_by_queue ON ${s}.dead_jobs (queue, id)`,
      `CREATE INDEX dead_jobs_by_name ON ${s}.dead_jobs (name, id)`,
      `CREATE INDEX dead_jobs_by_key ON ${s}.dead_jobs (key, id) WHERE key IS NOT NULL`,
      `CREATE INDEX dead_jobs_by_state ON ${s}.dead_jobs (state, id)`,
      `CREATE INDEX dead_jobs_succeeded ON ${s}.dead_jobs (failed_at) WHERE state = 'succeeded'`,
      `CREATE INDEX key_successors_by_id ON ${s}.key_successors (id)`
    ]
  }
]

/** The newest schema version this release knows. */
export const latestVersion = migrations[migrations.length - 1]!.version

/** What a schema holds, as read before deciding anything. */
interface Found {
  /** The versions applied, by version: their `compatibleFrom`. */
  readonly applied: ReadonlyMap<number, number>
  /** Versions read from an earlier release's `<schema>.migrations`, not yet copied into {@link versionTable}. */
  readonly adopted: ReadonlyArray<number>
}

/** Reads which versions `schema` has, without writing anything. */
const read = (sql: SqlClient.SqlClient, schema: string, s: string): Effect.Effect<Found, unknown> =>
  Effect.gen(function*() {
    const [where] = yield* sql.unsafe<{ ours: boolean; legacy: boolean; jobs: boolean }>(
      `SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL AS ours,
              to_regclass(format('%I.%I', $1::text, 'migrations')) IS NOT NULL AS legacy,
              EXISTS (SELECT 1 FROM pg_attribute
                      WHERE attrelid = to_regclass(format('%I.%I', $1::text, 'jobs'))
                        AND attname = 'lease_token' AND NOT attisdropped) AS jobs`,
      [schema, versionTable]
    ).withoutTransform
    if (where?.ours === true) {
      const rows = yield* sql.unsafe<{ version: number; compatible_from: number }>(
        `SELECT version, compatible_from FROM ${s}.${versionTable}`
      ).withoutTransform
      if (rows.length > 0) {
        return { applied: new Map(rows.map((row) => [row.version, row.compatible_from])), adopted: [] }
      }
    }
    // An earlier release recorded its versions in `<schema>.migrations` as (migration_id, name). Only rows that name
    // one of ours, beside our `jobs` table, count: a `migrations` table of the application's own is not ours.
    if (where?.legacy !== true || where.jobs !== true) return { applied: new Map(), adopted: [] }
    const rows = yield* sql.unsafe<{ migration_id: number; name: string }>(
      `SELECT migration_id, name FROM ${s}.migrations`
    ).withoutTransform
    const adopted = migrations
      .filter((migration) => rows.some((row) => row.migration_id === migration.version && row.name === migration.name))
      .map((migration) => migration.version)
    return {
      applied: new Map(adopted.map((version) => [version, migrations[version - 1]!.compatibleFrom])),
      adopted
    }
  })

/**
 * Refuses a schema this release cannot work with: one newer than it that needs a newer release, or, when it may not
 * migrate, one that lacks versions this release needs.
 */
const check = (
  schema: string,
  found: Found,
  migrate: boolean,
  known: ReadonlyArray<Migration>
): Effect.Effect<void, JobStoreError> => {
  const latest = known[known.length - 1]!.version
  const versions = [...found.applied.keys()]
  const current = versions.length === 0 ? 0 : Math.max(...versions)
  const needs = Math.max(0, ...found.applied.values())
  if (needs > latest) {
    return Effect.fail(
      new JobStoreError({
        operation: "migrate",
        reason: `schema "${schema}" is at version ${current}, which needs a release that knows schema version ` +
          `${needs} or later; this release knows up to version ${latest}: upgrade this worker`
      })
    )
  }
  const missing = known.filter((migration) => !found.applied.has(migration.version))
  if (!migrate && missing.length > 0) {
    return Effect.fail(
      new JobStoreError({
        operation: "migrate",
        reason: current === 0
          ? `schema "${schema}" is missing or not migrated (build the store with migrate: true)`
          : `schema "${schema}" is at version ${current}; this release needs version ${latest}: migrate it ` +
            `(build a store with migrate: true, from a deploy step say)`
      })
    )
  }
  return Effect.void
}

/**
 * Makes sure the store can work on `schema` (quoted: `s`): refuses a schema it cannot work with, and, when
 * `migrate`, creates the schema and runs the migrations it lacks, under a transaction-scoped advisory lock keyed by
 * the schema's name (workers that start at once migrate one after the other, and the later ones find nothing to
 * do). A schema that is up to date is only read. Fails with a `JobStoreError` (`operation: "migrate"`) that quotes
 * PostgreSQL; `describe` words the server's errors. `upTo` plays an earlier release, which knows the versions up
 * to it only (for tests).
 */
export const prepare = (
  sql: SqlClient.SqlClient,
  schema: string,
  s: string,
  migrate: boolean,
  describe: (error: unknown) => string,
  upTo: number = latestVersion
): Effect.Effect<void, JobStoreError> => {
  const known = migrations.filter((migration) => migration.version <= upTo)
  const failed = (error: unknown) =>
    error instanceof JobStoreError
      ? error
      : new JobStoreError({ operation: "migrate", reason: describe(error), cause: error })
  const upToDate = (found: Found) =>
    found.adopted.length === 0 && known.every((migration) => found.applied.has(migration.version))
  return Effect.gen(function*() {
    const found = yield* Effect.mapError(read(sql, schema, s), failed)
    yield* check(schema, found, migrate, known)
    if (!migrate || upToDate(found)) return
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql.unsafe(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`effect-worker-context:${schema}`])
        .withoutTransform
      yield* sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${s}`).withoutTransform
      yield* sql.unsafe(
        `CREATE TABLE IF NOT EXISTS ${s}.${versionTable} (
          version integer PRIMARY KEY,
          name text NOT NULL,
          compatible_from integer NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`
      ).withoutTransform
      // Read again under the lock: another store may have migrated meanwhile.
      const locked = yield* read(sql, schema, s)
      yield* check(schema, locked, true, known)
      const record = (migration: Migration) =>
        sql.unsafe(
          `INSERT INTO ${s}.${versionTable} (version, name, compatible_from) VALUES ($1, $2, $3)`,
          [migration.version, migration.name, migration.compatibleFrom]
        ).withoutTransform
      for (const version of locked.adopted) yield* record(migrations[version - 1]!)
      for (const migration of known) {
        if (locked.applied.has(migration.version)) continue
        yield* Effect.forEach(
          migration.statements(s),
          (statement) => sql.unsafe(statement).withoutTransform,
          { discard: true }
        ).pipe(
          Effect.mapError((error) =>
            new JobStoreError({
              operation: "migrate",
              reason: `Migration "${migration.version}_${migration.name}" failed: ${describe(error)}`,
              cause: error
            })
          )
        )
        yield* record(migration)
      }
    }))
  }).pipe(Effect.mapError(failed))
}
