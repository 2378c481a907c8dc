import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import * as internal from "../src/internal/pgJobStore.js"
import { latestVersion, versionTable } from "../src/internal/pgMigrations.js"
import { type JobStore, JobStoreError, Outcome } from "../src/JobStore.js"
import * as PgJobStore from "../src/PgJobStore.js"
import { claimRequest, clientLayer, databaseUrl, newJob, query, uniqueName } from "./pgTestStore.js"

/** A schema of this test's own, dropped when the scope closes. */
const scopedSchema = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => uniqueName(prefix)),
    (schema) => Effect.promise(() => query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`))
  )

/** The versions recorded in the store's own table, in order. */
const versions = (schema: string) =>
  Effect.promise(() => query<{ version: number }>(`SELECT version FROM ${schema}.${versionTable} ORDER BY version`))
    .pipe(Effect.map((rows) => rows.map((row) => row.version)))

const allVersions = Array.from({ length: latestVersion }, (_, i) => i + 1)

/** Enqueues a job, claims it and completes it: the store works. */
const roundTrip = (store: JobStore.Service) =>
  Effect.gen(function*() {
    const [id] = yield* store.enqueue([newJob()])
    const { jobs: [job] } = yield* store.claim(claimRequest())
    assert.strictEqual(job?.id, id)
    assert.deepStrictEqual(yield* store.settle([{ lease: job!.lease, outcome: Outcome.Completed() }]), [true])
  })

describe("PgJobStore schema versions", () => {
  it.scoped("keeps its versions in a table of its own, beside an application's own migrations table", () =>
    Effect.gen(function*() {
      // An application's @effect/sql Migrator table, and a TypeORM-style one, in the schema the store is given.
      for (
        const appTable of [
          `CREATE TABLE migrations (migration_id integer PRIMARY KEY, created_at timestamptz DEFAULT now(), name text);
           INSERT INTO migrations (migration_id, name) VALUES (1, 'create_users'), (2, 'add_orders')`,
          `CREATE TABLE migrations (id serial PRIMARY KEY, "timestamp" bigint NOT NULL, name varchar NOT NULL);
           INSERT INTO migrations ("timestamp", name) VALUES (1700000000000, 'CreateUsers1700000000000')`
        ]
      ) {
        const schema = yield* scopedSchema("app")
        yield* Effect.promise(() => query(`CREATE SCHEMA ${schema}; SET search_path = ${schema}; ${appTable}`))
        const before = yield* Effect.promise(() => query(`SELECT * FROM ${schema}.migrations ORDER BY 1`))
        const store = yield* PgJobStore.make({ schema, listen: false })
        yield* roundTrip(store)
        assert.deepStrictEqual(yield* versions(schema), allVersions)
        // The application's table is left as it was.
        assert.deepStrictEqual(
          yield* Effect.promise(() => query(`SELECT * FROM ${schema}.migrations ORDER BY 1`)),
          before
        )
      }
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("adopts a schema an earlier release migrated, with its jobs", () =>
    Effect.gen(function*() {
      const schema = yield* scopedSchema("old")
      // A store of the last release that recorded its versions so, which knew versions 1 and 2.
      const first = yield* internal.make({ schema, listen: false }, 2)
      const [id] = yield* first.enqueue([newJob()])
      // As the releases before this table left a schema: the @effect/sql Migrator's `migrations` table.
      yield* Effect.promise(() =>
        query(
          `DROP TABLE ${schema}.${versionTable};
           CREATE TABLE ${schema}.migrations (migration_id integer PRIMARY KEY, created_at timestamptz NOT NULL
             DEFAULT now(), name text NOT NULL);
           INSERT INTO ${schema}.migrations (migration_id, name) VALUES (1, 'jobs'), (2, 'ready_by_lane')`
        )
      )
      const store = yield* PgJobStore.make({ schema, listen: false })
      assert.deepStrictEqual(yield* versions(schema), allVersions)
      const { jobs: [job] } = yield* store.claim(claimRequest())
      assert.strictEqual(job?.id, id)
      assert.strictEqual((yield* store.stats).leased, 1)
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("refuses a schema that needs a newer release, naming both versions; works on a newer compatible one", () =>
    Effect.gen(function*() {
      const schema = yield* scopedSchema("newer")
      yield* PgJobStore.make({ schema, listen: false })
      const future = latestVersion + 1
      yield* Effect.promise(() =>
        query(`INSERT INTO ${schema}.${versionTable} (version, name, compatible_from) VALUES ($1, 'future', $1)`, [
          future
        ])
      )
      for (const migrate of [true, false]) {
        const error = yield* Effect.flip(PgJobStore.make({ schema, listen: false, migrate }))
        assert.instanceOf(error, JobStoreError)
        assert.strictEqual(error.operation, "migrate")
        assert.strictEqual(
          error.reason,
          `schema "${schema}" is at version ${future}, which needs a release that knows schema version ${future} ` +
            `or later; this release knows up to version ${latestVersion}: upgrade this worker`
        )
      }
      // An additive version of a newer release (this one still works on it): the store starts, and works.
      yield* Effect.promise(() =>
        query(`UPDATE ${schema}.${versionTable} SET compatible_from = 1 WHERE version = $1`, [future])
      )
      yield* roundTrip(yield* PgJobStore.make({ schema, listen: false }))
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("refuses, without migrating, a schema that lacks versions this release needs", () =>
    Effect.gen(function*() {
      const schema = yield* scopedSchema("behind")
      yield* internal.make({ schema, listen: false }, latestVersion - 1)
      const error = yield* Effect.flip(PgJobStore.make({ schema, listen: false, migrate: false }))
      assert.strictEqual(
        error.reason,
        `schema "${schema}" is at version ${latestVersion - 1}; this release needs version ${latestVersion}: ` +
          `migrate it (build a store with migrate: true, from a deploy step say)`
      )
      assert.deepStrictEqual(yield* versions(schema), allVersions.slice(0, -1))
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("starts with migrate: true under a role that may not create anything, on a migrated schema", () =>
    Effect.gen(function*() {
      const schema = yield* scopedSchema("granted")
      yield* PgJobStore.make({ schema, listen: false })
      const role = uniqueName("ewc_worker")
      yield* Effect.acquireRelease(
        Effect.promise(() =>
          query(
            `CREATE ROLE ${role} LOGIN;
             GRANT USAGE ON SCHEMA ${schema} TO ${role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${role};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${schema} TO ${role}`
          )
        ),
        () => Effect.promise(() => query(`DROP OWNED BY ${role}; DROP ROLE ${role}`))
      )
      const url = new URL(databaseUrl)
      url.username = role
      const asRole = Layer.succeedContext(yield* Layer.build(PgClient.layer({ url: Redacted.make(url.toString()) })))
      // The role may not create a schema or a table: a migration would fail.
      const denied = yield* Effect.flip(
        Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`CREATE SCHEMA ${role}`)).pipe(Effect.provide(asRole))
      )
      assert.match(String(denied.cause), /permission denied/)
      yield* roundTrip(yield* PgJobStore.make({ schema, listen: false, migrate: true }).pipe(Effect.provide(asRole)))
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("migrates a schema of the previous version while a store of that version keeps working on it", () =>
    Effect.gen(function*() {
      const schema = yield* scopedSchema("rolling")
      // A worker of the previous release, on the schema it migrated.
      const previous = yield* internal.make({ schema, listen: false }, latestVersion - 1)
      const ids = yield* previous.enqueue(Array.from({ length: 20 }, () => newJob()))
      const early = yield* previous.claim(claimRequest({ limit: 5 }))
      // The new release starts beside it and migrates.
      const current = yield* PgJobStore.make({ schema, listen: false })
      assert.deepStrictEqual(yield* versions(schema), allVersions)
      // Both claim and settle, side by side, after the migration: every job once.
      const late = yield* previous.claim(claimRequest({ limit: 5 }))
      const rest = yield* current.claim(claimRequest({ limit: 20 }))
      const claimed = [...early.jobs, ...late.jobs, ...rest.jobs]
      assert.deepStrictEqual(claimed.map((job) => job.id).sort(), [...ids].sort())
      const settle = (store: JobStore.Service, jobs: ReadonlyArray<(typeof claimed)[number]>) =>
        store.settle(jobs.map((job) => ({ lease: job.lease, outcome: Outcome.Completed() })))
      assert.isTrue((yield* settle(current, early.jobs)).every(Boolean))
      assert.isTrue((yield* settle(previous, [...late.jobs, ...rest.jobs])).every(Boolean))
      const stats = yield* current.stats
      assert.deepStrictEqual([stats.ready, stats.scheduled, stats.leased, stats.dead], [0, 0, 0, 0])
    }).pipe(Effect.provide(clientLayer())))
})
