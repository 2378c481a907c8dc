/**
 * What the PostgreSQL tests share: the server (`DATABASE_URL`, or the run's throwaway server, see
 * `pgGlobalSetup.ts`), a client layer on it, stores in schemas of their own (dropped at the end of each test), and
 * a clock the tests can move: every test store's `clock()` reads one row that `advance` updates.
 */
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Redacted, type Scope } from "effect"
import Pg from "pg"
import { inject } from "vitest"
import { type ClaimRequest, JobStore, type NewJob } from "../src/JobStore.js"
import * as PgJobStore from "../src/PgJobStore.js"
import type { StoreClock } from "./jobStoreConformance.js"
import { type PgServer, startPgServer } from "./pgServer.js"

export const databaseUrl = inject("databaseUrl")

/** A throwaway server of the test's own (one it may stop and restart), removed when the scope closes. */
export const scopedPgServer: Effect.Effect<PgServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => startPgServer()),
  (server) => Effect.promise(() => server.stop())
)

/** A fresh name for a schema (or anything else) that no other test uses. */
export const uniqueName = (prefix: string): string =>
  `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`

/** A `PgClient` on the tests' server. */
export const clientLayer = (options?: { readonly maxConnections?: number }) =>
  PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: options?.maxConnections ?? 4 })

/**
 * Connections for {@link query}, shared by the tests of a file (the clock reads and moves through them at every
 * step); idle ones close by themselves, and do not keep the process alive.
 */
const setupPool = new Pg.Pool({ connectionString: databaseUrl, max: 2, allowExitOnIdle: true })
// An idle connection the server ended is dropped by the pool; without a listener its error would end the process.
setupPool.on("error", () => {})

/** Runs one statement outside Effect, outside any test's store: for setup and for the tests' clock. */
export const query = async <A = Record<string, unknown>>(text: string, params?: Array<unknown>) =>
  (await setupPool.query(text, params)).rows as Array<A>

/**
 * A clock the tests move: one row in a schema of its own, that every store made by {@link testStore} reads as its
 * `clock()`. It starts at the real time, truncated to the millisecond, and moves only when `advance` moves it.
 */
export const makeTestClock = (): StoreClock & { readonly schema: string; readonly drop: () => Promise<void> } => {
  const schema = uniqueName("test_clock")
  let created: Promise<unknown> | undefined
  const ensure = () =>
    created ??= query(
      `CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.now (t timestamptz NOT NULL);
       INSERT INTO ${schema}.now VALUES (date_trunc('milliseconds', now()))`
    )
  return {
    schema,
    now: Effect.promise(async () => {
      await ensure()
      const [row] = await query<{ ms: number }>(
        `SELECT (extract(epoch FROM t) * 1000)::float8 AS ms FROM ${schema}.now`
      )
      return row!.ms
    }),
    advance: (duration) =>
      Effect.promise(async () => {
        await ensure()
        await query(`UPDATE ${schema}.now SET t = t + $1::float8 * interval '1 millisecond'`, [
          Duration.toMillis(duration)
        ])
      }),
    drop: async () => {
      if (created !== undefined) await query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    }
  }
}

/**
 * A PostgreSQL store in a schema of its own, dropped when the scope closes; with `clock`, the store judges time by
 * that clock instead of the database's.
 */
export const testStore = (
  options?: PgJobStore.PgJobStoreOptions & { readonly clock?: ReturnType<typeof makeTestClock> }
): Effect.Effect<JobStore.Service, unknown, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function*() {
    const schema = options?.schema ?? uniqueName("t")
    const sql = yield* PgClient.PgClient
    yield* Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)))
    const store = yield* PgJobStore.make({ ...options, schema })
    if (options?.clock !== undefined) {
      yield* options.clock.now
      yield* sql.unsafe(
        `CREATE OR REPLACE FUNCTION ${schema}.clock() RETURNS timestamptz LANGUAGE sql STABLE
         AS 'SELECT t FROM ${options.clock.schema}.now'`
      )
    }
    return store
  })

/** {@link testStore} as a layer, with its client. */
export const testStoreLayer = (
  options?: PgJobStore.PgJobStoreOptions & { readonly clock?: ReturnType<typeof makeTestClock> }
): Layer.Layer<JobStore, unknown> => Layer.scoped(JobStore, testStore(options)).pipe(Layer.provide(clientLayer()))

/** Repeats `effect` every 50 ms (real time) until `done` holds for what it returns. */
export const waitFor = <A, E>(effect: Effect.Effect<A, E>, done: (a: A) => boolean): Effect.Effect<A, E> =>
  Effect.flatMap(
    effect,
    (a) => done(a) ? Effect.succeed(a) : Effect.zipRight(Effect.sleep("50 millis"), waitFor(effect, done))
  )

/** A `send-email` job for the `emails` queue, ready now by the store's clock unless `fields` says otherwise. */
export const newJob = (fields?: Partial<NewJob>): NewJob => ({
  name: "send-email",
  queue: "emails",
  payload: {},
  priority: 0,
  key: undefined,
  maxAttempts: 5,
  ...fields
})

/** A claim of up to 10 `send-email` jobs of `emails`, with a 30 s lease. */
export const claimRequest = (fields?: Partial<ClaimRequest>): ClaimRequest => ({
  queues: ["emails"],
  names: ["send-email"],
  limit: 10,
  lease: Duration.seconds(30),
  worker: "worker-a",
  ...fields
})
