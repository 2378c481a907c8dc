import { PgClient } from "@effect/sql-pg"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Layer, Option, Queue, Redacted, Schema, String } from "effect"
import { Job, JobWorker, WorkerContext } from "../src/index.js"
import * as internal from "../src/internal/pgJobStore.js"
import { type JobStore, JobStoreError, LeaseLost } from "../src/JobStore.js"
import * as PgJobStore from "../src/PgJobStore.js"
import { claimRequest, jobStoreConformance, newJob, subscribeWakeups, wakeupsBefore } from "./jobStoreConformance.js"
import {
  clientLayer,
  databaseUrl,
  makeTestClock,
  query,
  scopedPgServer,
  testStore,
  testStoreLayer,
  uniqueName
} from "./pgTestStore.js"

const clock = makeTestClock()
afterAll(clock.drop)

jobStoreConformance("PgJobStore", testStoreLayer({ clock }), clock)

const now = () => new Date()

describe("PgJobStore on PostgreSQL", () => {
  it.scopedLive(
    "claims with one statement that uses the index of ready jobs, from the first big batch on",
    () =>
      Effect.gen(function*() {
        const schema = uniqueName("t")
        const store = yield* testStore({ schema })
        const sql = yield* PgClient.PgClient
        // Enough jobs, some of them in other queues and some scheduled, that a sequential scan would cost more.
        const jobs = Array.from({ length: 20_000 }, (_, i) =>
          newJob({
            queue: i % 4 === 0 ? "emails" : "other",
            runAt: new Date(Date.now() + (i % 3 === 0 ? 3_600_000 : -1_000))
          }))
        yield* store.enqueue(jobs)
        // The claim statement as the store sends it, from the module's own SQL.
        const claimSql = internal.statements(`"${schema}"`).claim
        const explain = Effect.map(
          sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN ${claimSql}`, [["emails"], ["send-email"], 8, 30_000, "x"])
            .withoutTransform,
          (plan) => plan.map((row) => row["QUERY PLAN"]).join("\n")
        )
        // The first big batch made the store analyze the table, which autovacuum may not do for a minute: until
        // then the planner would sort every ready job. Wait for that analysis, then read the plan.
        yield* waitFor(
          Effect.map(
            sql.unsafe<{ analyzed: boolean }>(
              `SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL AS analyzed
               FROM pg_stat_user_tables WHERE relid = $1::regclass`,
              [`${schema}.jobs`]
            ).withoutTransform,
            ([row]) => row?.analyzed === true
          ),
          (analyzed) => analyzed
        )
        const text = yield* explain
        assert.match(text, /Index Scan using jobs_ready on/, text)
        assert.match(text, /Index Scan using jobs_leased on/, text)
        assert.notMatch(text, /Seq Scan on jobs/, text)
      }).pipe(Effect.provide(clientLayer())),
    60_000
  )

  it.scoped("enqueue joins the caller's transaction: a rollback leaves no job and wakes nobody", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      const sql = yield* PgClient.PgClient
      const received = yield* subscribeWakeups(store)
      const rolledBack = yield* Effect.either(sql.withTransaction(
        Effect.zipRight(store.enqueue([newJob({ queue: "rolled-back", runAt: now() })]), Effect.fail("abort"))
      ))
      assert.deepStrictEqual(rolledBack, Either.left("abort"))
      yield* sql.withTransaction(store.enqueue([newJob({ queue: "committed", runAt: now() })]))
      const woken = yield* wakeupsBefore(store, received, "marker")
      assert.include(woken, "committed")
      assert.notInclude(woken, "rolled-back")
      const stats = yield* store.stats
      assert.isUndefined(stats.byQueue["rolled-back"])
      assert.strictEqual(stats.byQueue["committed"]?.ready, 1)
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("concurrent enqueues with one key, on separate connections, store one job and all get its id", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      for (let round = 0; round < 5; round++) {
        const key = `order-${round}`
        const ids = yield* Effect.all(
          Array.from({ length: 16 }, () => store.enqueue([newJob({ key, runAt: now() })])),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(new Set(ids.flat()).size, 1, `one id for ${key}: ${ids.flat().join(", ")}`)
      }
      assert.strictEqual((yield* store.stats).ready, 5)
    }).pipe(Effect.provide(clientLayer({ maxConnections: 8 }))))

  it.scopedLive("by the database's real clock, a delayed job is never claimed early, and priority comes first", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      const sql = yield* PgClient.PgClient
      const dbNow = Effect.map(
        sql.unsafe<{ ms: number }>(`SELECT (extract(epoch FROM statement_timestamp()) * 1000)::float8 AS ms`)
          .withoutTransform,
        ([row]) => row!.ms
      )
      const runAt = new Date((yield* dbNow) + 300)
      const [delayed] = yield* store.enqueue([newJob({ runAt, priority: -10 })])
      const [low, high] = yield* store.enqueue([
        newJob({ runAt: new Date(0), priority: 5 }),
        newJob({ runAt: new Date(0), priority: 1 })
      ])
      assert.deepStrictEqual((yield* store.claim(claimRequest({ limit: 1 }))).map((job) => job.id), [high])
      assert.deepStrictEqual((yield* store.claim(claimRequest({ limit: 1 }))).map((job) => job.id), [low])
      while (true) {
        const before = yield* dbNow
        const claimed = yield* store.claim(claimRequest())
        if (claimed.length > 0) {
          assert.deepStrictEqual(claimed.map((job) => job.id), [delayed])
          assert.isAtLeast(yield* dbNow, runAt.getTime(), "claimed at or after runAt")
          break
        }
        assert.isBelow(before, runAt.getTime() + 1_000, "claimable within a second of runAt")
        yield* Effect.sleep("20 millis")
      }
    }).pipe(Effect.provide(clientLayer())))

  it.scopedLive("hears wake-ups again after its listening connection is killed", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      const sql = yield* PgClient.PgClient
      const received = yield* subscribeWakeups(store)
      const killed = yield* sql.unsafe<{ killed: boolean }>(
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
         WHERE application_name LIKE '%(listen)' AND pid <> pg_backend_pid()`
      ).withoutTransform
      assert.isAtLeast(killed.length, 1, "a listening connection was found")
      // Whatever is heard from now on was heard by a new connection: the old one is gone.
      yield* Effect.iterate(false, {
        while: (heard) => !heard,
        body: () =>
          Effect.zipRight(
            store.enqueue([newJob({ queue: "after-kill", runAt: now() })]),
            Effect.map(
              Effect.timeoutOption(Queue.take(received), "200 millis"),
              (queue) => Option.getOrUndefined(queue) === "after-kill"
            )
          )
      })
    }).pipe(Effect.provide(clientLayer())), 30_000)

  it.scoped("migrates once when several stores start at once on one schema", () =>
    Effect.gen(function*() {
      const schema = uniqueName("t")
      const sql = yield* PgClient.PgClient
      yield* Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)))
      const stores = yield* Effect.all(
        Array.from({ length: 6 }, () => PgJobStore.make({ schema, listen: false })),
        { concurrency: "unbounded" }
      )
      const [id] = yield* stores[0]!.enqueue([newJob({ runAt: now() })])
      assert.deepStrictEqual((yield* stores[5]!.claim(claimRequest())).map((job) => job.id), [id])
      const migrations = yield* sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.migrations`)
        .withoutTransform
      assert.deepStrictEqual(migrations, [{ n: 1 }])
    }).pipe(Effect.provide(clientLayer({ maxConnections: 8 }))))

  it.scoped("batches concurrent completions, and a lost lease among them fails alone", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      yield* store.enqueue(Array.from({ length: 50 }, () => newJob({ runAt: now() })))
      const claimed = yield* store.claim(claimRequest({ limit: 50 }))
      assert.strictEqual(claimed.length, 50)
      const stale = { jobId: claimed[0]!.id, token: "999999" }
      const results = yield* Effect.all(
        [stale, ...claimed.slice(1).map((job) => job.lease)].map((lease) => Effect.either(store.complete(lease))),
        { concurrency: "unbounded" }
      )
      assert.instanceOf(Either.getLeft(results[0]!).pipe(Option.getOrUndefined), LeaseLost)
      assert.isTrue(results.slice(1).every(Either.isRight))
      const stats = yield* store.stats
      assert.strictEqual(stats.leased, 1, "only the job whose stale lease was used is still leased")
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("works on a PgClient that transforms names and JSON", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      const [id] = yield* store.enqueue([newJob({ runAt: now(), payload: { some_field: 1 }, key: "k" })])
      const [job] = yield* store.claim(claimRequest())
      assert.strictEqual(job?.id, id)
      assert.deepStrictEqual(job?.payload, { some_field: 1 })
      assert.strictEqual(job?.maxAttempts, 5)
    }).pipe(Effect.provide(PgClient.layer({
      url: Redacted.make(databaseUrl),
      transformResultNames: String.snakeToCamel,
      transformQueryNames: String.camelToSnake,
      transformJson: true
    }))))
})

describe("PgJobStore errors", () => {
  it.scoped("names the missing schema when built without migrating", () =>
    Effect.gen(function*() {
      const schema = uniqueName("missing")
      const store = yield* PgJobStore.make({ schema, migrate: false, listen: false })
      const error = yield* Effect.flip(store.stats)
      assert.instanceOf(error, JobStoreError)
      assert.strictEqual(error.operation, "stats")
      assert.match(error.reason, new RegExp(`schema "${schema}" is missing or not migrated`))
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("names a permission the database user lacks", () =>
    Effect.gen(function*() {
      const schema = uniqueName("t")
      yield* testStore({ schema, listen: false })
      const role = uniqueName("ewc_reader")
      yield* Effect.promise(() => query(`CREATE ROLE ${role} LOGIN`))
      yield* Effect.addFinalizer(() => Effect.promise(() => query(`DROP OWNED BY ${role}; DROP ROLE ${role}`)))
      const url = new URL(databaseUrl)
      url.username = role
      const error = yield* Effect.flip(
        Effect.flatMap(
          PgJobStore.make({ schema, migrate: false, listen: false }),
          (store) => store.stats
        ).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url.toString()) })))
      )
      assert.instanceOf(error, JobStoreError)
      assert.match((error as JobStoreError).reason, /^permission denied: permission denied for schema/)
    }).pipe(Effect.provide(clientLayer())))

  it.scoped(
    "says a connection was refused, and where, while the server is down; works again once it is back",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const client = yield* Layer.build(PgClient.layer({ url: Redacted.make(server.url) }))
        const store = yield* Effect.provide(PgJobStore.make({ listen: false }), client)
        yield* store.enqueue([newJob({ runAt: now() })])
        yield* Effect.promise(() => server.stopServer())
        // The pool's idle connection may report its own end first; a new one is refused.
        const reasons: Array<string> = []
        while (!reasons.some((reason) => reason.startsWith("connection refused"))) {
          reasons.push((yield* Effect.flip(store.stats)).reason)
        }
        assert.strictEqual(reasons.at(-1), `connection refused to 127.0.0.1:${server.port}`)
        yield* Effect.promise(() => server.start())
        assert.strictEqual((yield* store.stats).ready, 1, "the job is still there")
      }),
    60_000
  )

  it.effect("refuses options that make no sense", () =>
    Effect.gen(function*() {
      for (
        const [options, message] of [
          [{ schema: "Bad-Name" }, /PgJobStore: invalid schema "Bad-Name"/],
          [{ schema: "a".repeat(49) }, /PgJobStore: invalid schema/],
          [{ listenCheckInterval: 0 }, /PgJobStore: invalid listenCheckInterval "0"/],
          [{ batchAcks: "yes" as unknown as boolean }, /PgJobStore: invalid batchAcks "yes"/]
        ] as const
      ) {
        const exit = yield* Effect.exit(Effect.scoped(PgJobStore.make(options)).pipe(Effect.provide(clientLayer())))
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), JSON.stringify(options))
        if (Exit.isFailure(exit)) assert.match(Cause.pretty(exit.cause), message)
      }
    }))
})

/** Repeats `effect` every 50 ms (real time) until `done` holds for what it returns. */
const waitFor = <A, E>(effect: Effect.Effect<A, E>, done: (a: A) => boolean): Effect.Effect<A, E> =>
  Effect.flatMap(
    effect,
    (a) => done(a) ? Effect.succeed(a) : Effect.zipRight(Effect.sleep("50 millis"), waitFor(effect, done))
  )

describe("JobWorker on PgJobStore", () => {
  it.scopedLive(
    "keeps running while the database is down: readiness says why, and every job runs once it is back",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const Ping = Job.make("ping", { payload: Schema.Struct({ n: Schema.Number }), queue: "pings" })
        const ran = yield* Queue.unbounded<number>()
        const context = yield* Layer.build(
          JobWorker.layer({
            handlers: [Ping.handler(({ n }) => Queue.offer(ran, n))],
            pollInterval: "200 millis",
            lease: "5 seconds"
          }).pipe(
            Layer.provideMerge(PgJobStore.layer({ listen: false })),
            Layer.provideMerge(WorkerContext.layer({ name: "pg-outage" })),
            Layer.provide(PgClient.layer({ url: Redacted.make(server.url) }))
          )
        )
        const run = <A, E>(effect: Effect.Effect<A, E, WorkerContext | JobStore>): Effect.Effect<A, E> =>
          Effect.provide(effect, context)
        const ctx = yield* run(WorkerContext)
        yield* run(Ping.enqueue({ n: 1 }))
        assert.strictEqual(yield* Queue.take(ran), 1)

        yield* Effect.promise(() => server.stopServer())
        // The first failure may be a connection the server ended as it stopped; then new ones are refused.
        const unready = yield* waitFor(
          ctx.readiness,
          (readiness) => readiness.unready.some(({ reason }) => reason.includes("connection refused"))
        )
        assert.strictEqual(unready.state, "Running")
        assert.deepStrictEqual(unready.unready.map(({ check }) => check), ["job store"])
        assert.match(unready.unready[0]!.reason, new RegExp(`connection refused to 127\\.0\\.0\\.1:${server.port}`))

        yield* Effect.promise(() => server.start())
        yield* run(Ping.enqueue({ n: 2 }))
        assert.strictEqual(yield* Queue.take(ran), 2)
        const ready = yield* waitFor(ctx.readiness, (readiness) => readiness.ready)
        assert.deepStrictEqual(ready.unready, [])
        assert.strictEqual(yield* ctx.state, "Running")
      }),
    60_000
  )
})
