import { PgClient } from "@effect/sql-pg"
import { SqlError } from "@effect/sql/SqlError"
import { afterAll, assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Option,
  Queue,
  Redacted,
  Schema,
  String
} from "effect"
import Pg from "pg"
import { Job } from "../src/index.js"
import * as internal from "../src/internal/pgJobStore.js"
import { latestVersion } from "../src/internal/pgMigrations.js"
import * as pgStatements from "../src/internal/pgStatements.js"
import { type JobPage, JobStore, JobStoreError, type ListOptions, Outcome } from "../src/JobStore.js"
import * as PgJobStore from "../src/PgJobStore.js"
import { awaitWakeups, jobStoreConformance, wakeupsBefore } from "./jobStoreConformance.js"
import {
  claimRequest,
  clientLayer,
  databaseUrl,
  makeTestClock,
  newJob,
  query,
  scopedPgServer,
  testStore,
  testStoreLayer,
  uniqueName,
  waitFor
} from "./pgTestStore.js"

const clock = makeTestClock()
afterAll(clock.drop)

jobStoreConformance(
  "PgJobStore",
  testStoreLayer({ clock }),
  clock,
  testStoreLayer({ clock, succeededRetention: "1 hour" })
)

/** The plan PostgreSQL makes for `text` with `params`, as the lines `EXPLAIN` prints. */
const explain = (text: string, params: ReadonlyArray<unknown>) =>
  Effect.flatMap(PgClient.PgClient, (sql) =>
    Effect.map(
      sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN ${text}`, params).withoutTransform,
      (rows) => rows.map((row) => row["QUERY PLAN"]).join("\n")
    ))

/** Inserts `count` ready jobs (ids from 1) into queue `bulk` of `schema`, an hour old, then analyzes the table. */
const insertReadyJobs = (schema: string, count: number) =>
  Effect.flatMap(PgClient.PgClient, (sql) =>
    Effect.zipRight(
      sql.unsafe(
        `INSERT INTO ${schema}.jobs (id, seq, name, queue, payload, priority, max_attempts, run_at, enqueued_at)
         SELECT i, i, 'send-email', 'bulk', '{}'::jsonb, 0, 5, now() - interval '1 hour', now()
         FROM generate_series(1, ${count}) AS i`
      ).withoutTransform,
      sql.unsafe(`ANALYZE ${schema}.jobs`).withoutTransform
    ))

/**
 * Inserts `count` dead letters into `schema`, ids from `firstId`, in ten queues (`q` and the id's last digit), each
 * failed one millisecond after the one before; then analyzes the table.
 */
const insertDeadLetters = (schema: string, firstId: number, count: number) =>
  Effect.flatMap(PgClient.PgClient, (sql) =>
    Effect.zipRight(
      sql.unsafe(
        `INSERT INTO ${schema}.dead_jobs (id, name, queue, payload, priority, key, attempts, max_attempts, run_at,
                                         enqueued_at, last_error, failed_at)
         SELECT i, 'send-email', 'q' || (i % 10), '{}'::jsonb, 0, NULL, 5, 5, now(), now(), 'boom',
                timestamptz '2026-01-01' + i * interval '1 millisecond'
         FROM generate_series(${firstId}, ${firstId + count - 1}) AS i`
      ).withoutTransform,
      sql.unsafe(`ANALYZE ${schema}.dead_jobs`).withoutTransform
    ))

describe("PgJobStore on PostgreSQL", () => {
  it.scopedLive(
    "plans every statement by index on a table never analyzed: its plans do not wait for statistics",
    () =>
      Effect.gen(function*() {
        const schema = uniqueName("t")
        const store = yield* testStore({ schema })
        const sql = yield* PgClient.PgClient
        // No statistics, ever: what a big first batch, or jobs enqueued one at a time, give a table autovacuum has
        // not analyzed yet (the store does not ANALYZE: a role that does not own the table could not).
        yield* sql.unsafe(`ALTER TABLE ${schema}.jobs SET (autovacuum_enabled = false)`).withoutTransform
        // Enough jobs, some of them in other queues, some scheduled and some leased, that a sequential scan would
        // cost more.
        const jobs = Array.from({ length: 20_000 }, (_, i) =>
          newJob({
            queue: i % 4 === 0 ? "emails" : "other",
            runAt: new Date(Date.now() + (i % 3 === 0 ? 3_600_000 : -1_000))
          }))
        yield* store.enqueue(jobs)
        yield* store.claim(claimRequest({ queues: ["other"], limit: 1_000 }))
        const [never] = yield* sql.unsafe<{ never: boolean }>(
          `SELECT last_analyze IS NULL AND last_autoanalyze IS NULL AS never
           FROM pg_stat_user_tables WHERE relid = $1::regclass`,
          [`${schema}.jobs`]
        ).withoutTransform
        assert.isTrue(never?.never, "the table was never analyzed")
        // The statements as the store sends them, from the module's own SQL.
        const statements = pgStatements.statements(`"${schema}"`)
        const ids = "1,2,3"
        for (
          const [name, text, params] of [
            ["claim", statements.claim, [["emails"], ["send-email"], 8, 30_000, "x"]],
            ["reap", statements.reap, ["c"]],
            ["complete", statements.complete, [ids, ids]],
            ["settle", statements.settle, ["c", ids, ids, ["r", "l", "d"], [0, 0, 0], ["e", null, "e"]]],
            ["renew", statements.renew, [ids, ids, 30_000]],
            ["stats", statements.stats, []]
          ] as const
        ) {
          const plan = yield* explain(text, params)
          assert.notMatch(plan, /Seq Scan on jobs\b/, `${name}:\n${plan}`)
          // Nor every job of a queue or a name by the `list` indexes (the claim once found its lapsed leases so).
          assert.notMatch(plan, /jobs_by_(queue|name)/, `${name}:\n${plan}`)
          if (name === "claim") assert.match(plan, /Index Scan using jobs_ready_by_lane on/, plan)
        }
      }).pipe(Effect.provide(clientLayer())),
    60_000
  )

  it.scopedLive(
    "claims from a small queue, or finds it empty, by index beside 1,000,000 ready jobs of another queue",
    () =>
      Effect.gen(function*() {
        const schema = uniqueName("t")
        const store = yield* testStore({ schema })
        const sql = yield* PgClient.PgClient
        yield* insertReadyJobs(schema, 1_000_000)
        yield* sql.unsafe(`SELECT setval('${schema}.job_ids', 1000000)`).withoutTransform
        const [work] = yield* store.enqueue([newJob({ queue: "work" })])
        const claimSql = pgStatements.statements(`"${schema}"`).claim
        for (const queues of [["work"], ["idle"], ["bulk"], ["bulk", "work"]]) {
          const text = yield* explain(claimSql, [queues, ["send-email"], 10, 30_000, "x"])
          assert.match(text, /Index Scan using jobs_ready_by_lane on/, text)
          // The ready jobs by their lane, the lapsed leases by the leased index: nothing else reads the table.
          assert.notMatch(text, /Seq Scan on jobs|Bitmap Index Scan on (?!jobs_leased\b)|jobs_by_(queue|name)/, text)
        }
        // And the claims themselves: the small queue's one job, nothing from an empty queue, the big queue's head.
        const claimed = (queues: Array<string>, limit: number) =>
          Effect.map(store.claim(claimRequest({ queues, limit })), (result) => result.jobs.map((job) => job.id))
        assert.deepStrictEqual(yield* claimed(["work"], 10), [work!])
        assert.deepStrictEqual(yield* claimed(["idle"], 10), [])
        assert.deepStrictEqual(yield* claimed(["bulk"], 3), ["1", "2", "3"])
      }).pipe(Effect.provide(clientLayer())),
    120_000
  )

  it.scopedLive(
    "finds the jobs of a settle or a renewal by primary key, not by reading every leased job",
    () =>
      Effect.gen(function*() {
        const schema = uniqueName("t")
        yield* testStore({ schema })
        const sql = yield* PgClient.PgClient
        // 20,000 jobs, 5,000 of them leased: the settles of a busy worker, where jobs_leased holds far more rows
        // than a batch settles.
        yield* sql.unsafe(
          `INSERT INTO ${schema}.jobs (id, seq, name, queue, payload, priority, max_attempts, run_at, enqueued_at,
                                       attempts, lease_token, lease_expires_at)
           SELECT i, i, 'send-email', 'q', '{}'::jsonb, 0, 5, now(), now(), 1,
                  CASE WHEN i <= 5000 THEN i END, CASE WHEN i <= 5000 THEN now() + interval '1 hour' END
           FROM generate_series(1, 20000) AS i`
        ).withoutTransform
        yield* sql.unsafe(`ANALYZE ${schema}.jobs`).withoutTransform
        const statements = pgStatements.statements(`"${schema}"`)
        const ids = Array.from({ length: 160 }, (_, i) => `${i + 1}`).join(",")
        const plans = {
          complete: [statements.complete, [ids, ids]],
          renew: [statements.renew, [ids, ids, 30_000]],
          settle: [statements.settle, ["c", ids, ids, ["c"], [0], [null]]]
        } as const
        // The plan for these parameters, and the generic one a prepared statement settles on after five calls.
        for (const mode of ["force_custom_plan", "force_generic_plan"]) {
          for (const [name, [text, params]] of Object.entries(plans)) {
            const plan = yield* sql.withTransaction(
              Effect.zipRight(
                sql.unsafe(`SET LOCAL plan_cache_mode = ${mode}`).withoutTransform,
                explain(text, params)
              )
            )
            assert.match(plan, /Index Scan using jobs_pkey on jobs/, `${name}, ${mode}:\n${plan}`)
            assert.notMatch(plan, /jobs_leased|Seq Scan on jobs/, `${name}, ${mode}:\n${plan}`)
          }
        }
      }).pipe(Effect.provide(clientLayer())),
    60_000
  )

  it.scoped("keeps exact counts through every kind of change, folded or not, as a count of the rows says", () =>
    Effect.gen(function*() {
      const schema = uniqueName("t")
      // Completed jobs are kept, so that their count is checked too.
      const store = yield* testStore({ schema, clock, succeededRetention: "1 hour" })
      /** The counts by queue as a scan of both tables says them, by the store's clock: what the counts must equal. */
      const scanned = Effect.promise(() =>
        query<
          {
            queue: string
            ready: number
            scheduled: number
            leased: number
            dead: number
            cancelled: number
            succeeded: number
          }
        >(
          `WITH now AS (SELECT ${schema}.clock() AS t)
           SELECT queue, sum(ready)::int AS ready, sum(scheduled)::int AS scheduled, sum(leased)::int AS leased,
                  sum(dead)::int AS dead, sum(cancelled)::int AS cancelled, sum(succeeded)::int AS succeeded FROM (
             SELECT queue,
               count(*) FILTER (WHERE (lease_token IS NULL AND run_at <= now.t)
                 OR (lease_token IS NOT NULL AND lease_expires_at <= now.t AND attempts < max_attempts)) AS ready,
               count(*) FILTER (WHERE lease_token IS NULL AND run_at > now.t) AS scheduled,
               count(*) FILTER (WHERE lease_token IS NOT NULL AND lease_expires_at > now.t) AS leased,
               count(*) FILTER (WHERE lease_token IS NOT NULL AND lease_expires_at <= now.t
                 AND attempts >= max_attempts) AS dead, 0 AS cancelled, 0 AS succeeded
             FROM ${schema}.jobs, now GROUP BY queue
             UNION ALL SELECT queue, 0, 0, 0, count(*) FILTER (WHERE state = 'dead'),
               count(*) FILTER (WHERE state = 'cancelled'), count(*) FILTER (WHERE state = 'succeeded')
             FROM ${schema}.dead_jobs GROUP BY queue
           ) AS c GROUP BY queue ORDER BY queue`
        )
      )
      const check = (step: string) =>
        Effect.gen(function*() {
          const stats = yield* store.stats
          const expected = (yield* scanned).filter((row) =>
            row.ready + row.scheduled + row.leased + row.dead + row.cancelled + row.succeeded > 0
          )
          const counted = Object.entries(stats.byQueue)
            .map(([queue, counts]) => ({ queue, ...counts }))
            .filter((row) => row.ready + row.scheduled + row.leased + row.dead + row.cancelled + row.succeeded > 0)
            .sort((a, b) => a.queue < b.queue ? -1 : 1)
          assert.deepStrictEqual(counted, expected, step)
        })
      const now = new Date(yield* clock.now)
      const later = new Date(now.getTime() + 60_000)
      yield* store.enqueue(Array.from({ length: 60 }, (_, i) =>
        newJob({
          queue: `q${i % 3}`,
          name: `n${i % 2}`,
          priority: i % 4,
          runAt: i % 5 === 0 ? later : now,
          maxAttempts: i % 6 === 0 ? 1 : 3
        })))
      yield* check("enqueued")
      const queues = ["q0", "q1", "q2"]
      const names = ["n0", "n1"]
      const { jobs } = yield* store.claim(claimRequest({ queues, names, limit: 30 }))
      yield* check("claimed")
      const outcomes = [
        Outcome.Completed(),
        Outcome.Retry({ delay: Duration.minutes(5), error: "again" }),
        Outcome.Retry({ delay: Duration.zero, error: "again" }),
        Outcome.Dead({ error: "boom" }),
        Outcome.Released({ refund: true }),
        Outcome.Released({ refund: false })
      ]
      yield* store.settle(jobs.slice(0, 24).map((job, i) => ({ lease: job.lease, outcome: outcomes[i % 6]! })))
      yield* check("settled")
      yield* store.prune
      yield* check("folded")
      // The rest of the leases expire: ready again, or dead on their last attempt, before and after a reap.
      yield* clock.advance(Duration.minutes(2))
      yield* check("expired")
      yield* store.reap
      yield* check("reaped")
      const dead = yield* store.deadLetters()
      yield* store.redrive(dead.slice(0, 3).map((job) => job.id))
      yield* check("redriven")
      yield* store.cancelMany({ queue: "q1" })
      yield* store.cancel(dead[3]!.id)
      yield* check("cancelled")
      yield* store.redrive((yield* store.list({ state: "cancelled", limit: 2 })).jobs.map((job) => job.id))
      yield* check("cancelled jobs redriven")
      // An operator's own SQL, and a renewal that changes no state.
      yield* Effect.promise(() =>
        query(`DELETE FROM ${schema}.jobs WHERE id IN (SELECT id FROM ${schema}.jobs LIMIT 5)`)
      )
      yield* check("deleted by hand")
      const more = yield* store.claim(claimRequest({ queues, names, limit: 5 }))
      yield* store.renew(more.jobs.map((job) => job.lease), Duration.minutes(1))
      yield* store.prune
      yield* check("renewed and folded")
      yield* Effect.promise(() => query(`TRUNCATE ${schema}.dead_jobs`))
      yield* check("dead letters truncated")
      yield* Effect.promise(() => query(`TRUNCATE ${schema}.jobs`))
      yield* check("jobs truncated")
      const stats = yield* store.stats
      assert.deepStrictEqual([stats.ready, stats.scheduled, stats.leased, stats.dead], [0, 0, 0, 0])
    }).pipe(Effect.provide(clientLayer())))

  it.scopedLive(
    "counts by index beside 1,000,000 ready jobs of one lane and 1,000,000 dead letters",
    () =>
      Effect.gen(function*() {
        const schema = uniqueName("t")
        const store = yield* testStore({ schema })
        yield* insertReadyJobs(schema, 1_000_000)
        yield* insertDeadLetters(schema, 2_000_001, 1_000_000)
        const statements = pgStatements.statements(`"${schema}"`)
        const plan = yield* explain(statements.stats, [])
        // The tables of jobs are read only by index ranges: scheduled jobs (none here, in a lane of a million ready
        // ones) and expired leases (none).
        assert.notMatch(plan, /Seq Scan on (jobs|dead_jobs)\b/, plan)
        assert.match(plan, /Index Cond: .*run_at > \$\d+/, plan)
        assert.match(plan, /Index Cond: \(lease_expires_at <= \$\d+\)/, plan)
        const stats = yield* store.stats
        assert.deepStrictEqual([stats.ready, stats.scheduled, stats.leased, stats.dead], [1_000_000, 0, 0, 1_000_000])
        assert.deepStrictEqual(stats.byQueue["bulk"], {
          ready: 1_000_000,
          scheduled: 0,
          leased: 0,
          dead: 0,
          cancelled: 0,
          succeeded: 0
        })
        assert.deepStrictEqual(stats.byQueue["q3"], {
          ready: 0,
          scheduled: 0,
          leased: 0,
          dead: 100_000,
          cancelled: 0,
          succeeded: 0
        })
      }).pipe(Effect.provide(clientLayer())),
    120_000
  )

  it.scopedLive(
    "lists the newest dead letters by index, of all queues or of one, among 1,000,000",
    () =>
      Effect.gen(function*() {
        const schema = uniqueName("t")
        const store = yield* testStore({ schema })
        yield* insertDeadLetters(schema, 1, 1_000_000)
        const statements = pgStatements.statements(`"${schema}"`)
        const all = yield* explain(statements.deadLetters, [100])
        assert.match(all, /Index Scan using dead_jobs_recent on/, all)
        assert.notMatch(all, /Sort|Seq Scan/, all)
        const ofQueue = yield* explain(statements.deadLettersOfQueue, [100, "q3"])
        assert.match(ofQueue, /Index Scan using dead_jobs_queue on/, ofQueue)
        assert.notMatch(ofQueue, /Sort|Seq Scan/, ofQueue)
        // And the store's answer is the newest first, of the queue asked for.
        const newest = yield* store.deadLetters({ limit: 3 })
        assert.deepStrictEqual(newest.map((job) => job.id), ["1000000", "999999", "999998"])
        const ofQ3 = yield* store.deadLetters({ limit: 2, queue: "q3" })
        assert.deepStrictEqual(ofQ3.map((job) => job.id), ["999993", "999983"])
      }).pipe(Effect.provide(clientLayer())),
    120_000
  )

  it.scopedLive(
    "lists every kind of page by index among 1,000,000 ready jobs and 1,000,000 dead letters",
    () =>
      Effect.gen(function*() {
        const schema = uniqueName("t")
        const store = yield* testStore({ schema, clock })
        yield* insertReadyJobs(schema, 1_000_000)
        yield* insertDeadLetters(schema, 2_000_001, 1_000_000)
        // The rows above took their ids by hand: the store's own come after them.
        yield* Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`SELECT setval('${schema}.job_ids', 3000000)`))
        const now = new Date(yield* clock.now)
        const later = new Date(now.getTime() + 3_600_000)
        const newer = yield* store.enqueue([
          newJob({ queue: "rare", name: "rare-job", key: "only-one", runAt: later }),
          newJob({ queue: "rare", name: "rare-job", runAt: now })
        ])
        yield* store.claim(claimRequest({ queues: ["rare"], names: ["rare-job"], limit: 1 }))
        yield* Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`ANALYZE ${schema}.jobs`))
        const filters: ReadonlyArray<ListOptions & { readonly limit: number }> = [
          { limit: 50 },
          { limit: 50, after: "1500000" },
          { limit: 50, state: "ready" },
          { limit: 50, state: "scheduled" },
          { limit: 50, state: "leased" },
          { limit: 50, state: "dead" },
          { limit: 50, state: "dead", queue: "q3", after: "2500000" },
          { limit: 50, state: "cancelled" },
          { limit: 50, queue: "rare" },
          { limit: 50, name: "rare-job" },
          { limit: 50, key: "only-one" },
          { limit: 50, queue: "bulk", name: "send-email", after: "500000" }
        ]
        const timings: Array<string> = []
        for (const filter of filters) {
          const { params, text } = pgStatements.listStatement(`"${schema}"`, latestVersion, filter)
          const plan = yield* explain(text, params)
          assert.notMatch(plan, /Seq Scan on (jobs|dead_jobs)\b/, `${JSON.stringify(filter)}\n${plan}`)
          const started = performance.now()
          const page = yield* store.list(filter)
          timings.push(`${JSON.stringify(filter)}: ${(performance.now() - started).toFixed(1)} ms`)
          assert.isAtMost(page.jobs.length, 50)
        }
        console.log(`list pages among 2,000,000 jobs:\n${timings.join("\n")}`)
        const ids = (page: JobPage) => page.jobs.map((job) => job.id)
        assert.deepStrictEqual(ids(yield* store.list({ queue: "rare" })), [newer[1], newer[0]])
        assert.deepStrictEqual(ids(yield* store.list({ state: "scheduled" })), [newer[0]])
        assert.deepStrictEqual(ids(yield* store.list({ state: "leased" })), [newer[1]])
        assert.deepStrictEqual(ids(yield* store.list({ limit: 2, after: "1000000" })), ["999999", "999998"])
        assert.deepStrictEqual(ids(yield* store.list({ limit: 2, state: "dead", queue: "q3" })), ["2999993", "2999983"])
      }).pipe(Effect.provide(clientLayer())),
    180_000
  )

  it.scoped("enqueue joins the caller's transaction: a rollback leaves no job and wakes nobody", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      const sql = yield* PgClient.PgClient
      const received = yield* store.wakeups
      const rolledBack = yield* Effect.either(sql.withTransaction(
        Effect.zipRight(store.enqueue([newJob({ queue: "rolled-back" })]), Effect.fail("abort"))
      ))
      assert.deepStrictEqual(rolledBack, Either.left("abort"))
      yield* sql.withTransaction(store.enqueue([newJob({ queue: "committed" })]))
      // Wake-ups may come in any order: the committed queue's comes, and the rolled-back queue's never does.
      const woken = yield* awaitWakeups(received, ["committed"])
      assert.notInclude([...woken, ...(yield* wakeupsBefore(store, received, "marker"))], "rolled-back")
      const stats = yield* store.stats
      assert.isUndefined(stats.byQueue["rolled-back"])
      assert.strictEqual(stats.byQueue["committed"]?.ready, 1)
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("enqueueMany stores 10,000 typed jobs in one call, inside the caller's transaction", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      const sql = yield* PgClient.PgClient
      const Bulk = Job.make("bulk", { payload: Schema.Struct({ n: Schema.Number, at: Schema.DateFromString }) })
      const payloads = Array.from({ length: 10_000 }, (_, n) => ({ n, at: new Date(n) }))
      const enqueueMany = Effect.provideService(Bulk.enqueueMany(payloads), JobStore, store)
      assert.deepStrictEqual(
        yield* Effect.either(sql.withTransaction(Effect.zipRight(enqueueMany, Effect.fail("abort")))),
        Either.left("abort")
      )
      assert.strictEqual((yield* store.stats).ready, 0)
      const ids = yield* enqueueMany
      assert.strictEqual(new Set(ids).size, 10_000)
      assert.deepStrictEqual(ids.map(Number), [...ids.map(Number)].sort((a, b) => a - b), "ids in enqueue order")
      assert.strictEqual((yield* store.stats).ready, 10_000)
      const { jobs } = yield* store.claim(claimRequest({ names: ["bulk"], queues: ["bulk"], limit: 2 }))
      assert.deepStrictEqual(jobs.map((job) => job.payload), [{ n: 0, at: new Date(0).toISOString() }, {
        n: 1,
        at: new Date(1).toISOString()
      }])
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("enqueue answers each job's own id when its ids are not counted up by one, and past 2^53", () =>
    Effect.gen(function*() {
      const schema = uniqueName("t")
      const store = yield* testStore({ schema })
      const sql = yield* PgClient.PgClient
      // One statement: jobs without a key, and, with `keyed`, every third with a key skipped when held.
      const enqueueAndCheck = (count: number, keyed: boolean) =>
        Effect.gen(function*() {
          const ids = yield* store.enqueue(Array.from({ length: count }, (_, n) =>
            newJob({
              payload: { n },
              ...(keyed && n % 3 === 0 ? { key: `k${n}`, keyMode: "skip" } : {})
            })))
          for (const [n, id] of ids.entries()) {
            assert.deepStrictEqual((yield* store.get(id))?.payload, { n }, `job ${n}'s id ${id}`)
          }
          return ids
        })
      // Ids two apart, as when a concurrent statement takes every other one: the statement lists them all.
      yield* sql.unsafe(`ALTER SEQUENCE ${schema}.job_ids INCREMENT BY 2`)
      const apart = yield* enqueueAndCheck(7, true)
      assert.strictEqual(Number(apart[1]) - Number(apart[0]), 2)
      // Counted up from an id just below 2^53: the ones past it are exact too.
      yield* sql.unsafe(`ALTER SEQUENCE ${schema}.job_ids INCREMENT BY 1 RESTART WITH 9007199254740990`)
      assert.deepStrictEqual(yield* enqueueAndCheck(4, false), [
        "9007199254740990",
        "9007199254740991",
        "9007199254740992",
        "9007199254740993"
      ])
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("concurrent enqueues with one key, on separate connections, store one job and all get its id", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      for (let round = 0; round < 5; round++) {
        const key = `order-${round}`
        const ids = yield* Effect.all(
          Array.from({ length: 16 }, () => store.enqueue([newJob({ key })])),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(new Set(ids.flat()).size, 1, `one id for ${key}: ${ids.flat().join(", ")}`)
      }
      assert.strictEqual((yield* store.stats).ready, 5)
    }).pipe(Effect.provide(clientLayer({ maxConnections: 8 }))))

  it.scopedLive(
    "an enqueue of a key that an open transaction holds waits for it, and gets the committed job's id",
    () =>
      Effect.gen(function*() {
        const store = yield* testStore()
        const sql = yield* PgClient.PgClient
        const inserted = yield* Deferred.make<string>()
        const commit = yield* Deferred.make<void>()
        const producer = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
          const [id] = yield* store.enqueue([newJob({ key: "k" })])
          yield* Deferred.succeed(inserted, id!)
          yield* Deferred.await(commit)
          return id!
        })))
        const held = yield* Deferred.await(inserted)
        // Outside the transaction, the same key: it waits for the producer, which then commits; the statement that
        // waited cannot see the committed row (its snapshot is older), so the store asks again.
        const other = yield* Effect.fork(store.enqueue([newJob({ key: "k" }), newJob({ key: "other" })]))
        yield* waitFor(
          Effect.promise(() =>
            query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`
            )
          ),
          ([row]) => row!.n > 0
        )
        yield* Deferred.succeed(commit, undefined)
        assert.strictEqual(yield* Fiber.join(producer), held)
        const [again, fresh] = yield* Fiber.join(other)
        assert.strictEqual(again, held)
        assert.notStrictEqual(fresh, held)
        assert.strictEqual((yield* store.stats).ready, 2)
      }).pipe(Effect.provide(clientLayer())),
    30_000
  )

  for (const keyMode of ["skip", "replace"] as const) {
    it.scoped(
      `a producer's open transaction enqueueing a running job's key (keyMode ${keyMode}) blocks no renewal and no ` +
        "settle, of that job or others",
      () =>
        Effect.gen(function*() {
          const store = yield* testStore()
          const sql = yield* PgClient.PgClient
          yield* store.enqueue([newJob({ key: "running" }), newJob(), newJob(), newJob()])
          const { jobs } = yield* store.claim(claimRequest())
          assert.strictEqual(jobs.length, 4)
          const running = jobs.find((job) => job.key === "running")!
          const others = jobs.filter((job) => job !== running)
          const enqueued = yield* Deferred.make<string>()
          const commit = yield* Deferred.make<void>()
          const producer = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
            // A job with the running job's key, and a fresh job, in a transaction that stays open.
            const [id] = yield* store.enqueue([
              newJob({ key: "running", keyMode, payload: { next: true } }),
              newJob({ queue: "other" })
            ])
            yield* Deferred.succeed(enqueued, id!)
            yield* Deferred.await(commit)
          })))
          const id = yield* Deferred.await(enqueued)
          if (keyMode === "skip") assert.strictEqual(id, running.id, "a skip returns the running job's id")
          else assert.notStrictEqual(id, running.id, "a replace keeps one more job to run after it")
          // The transaction is open: every renewal and settle below completes anyway.
          assert.deepStrictEqual(yield* store.renew(jobs.map((job) => job.lease), Duration.seconds(30)), [])
          assert.deepStrictEqual(
            yield* store.settle([
              { lease: running.lease, outcome: Outcome.Completed() },
              { lease: others[0]!.lease, outcome: Outcome.Retry({ delay: Duration.minutes(1), error: "again" }) },
              { lease: others[1]!.lease, outcome: Outcome.Released({ refund: true }) },
              { lease: others[2]!.lease, outcome: Outcome.Dead({ error: "fatal" }) }
            ]),
            [true, true, true, true]
          )
          assert.isNull(producer.unsafePoll(), "the producer's transaction was still open")
          yield* Deferred.succeed(commit, undefined)
          yield* Fiber.join(producer)
          if (keyMode === "replace") {
            // Its holder ended while the producer's transaction was open: the next reap makes it a job.
            assert.strictEqual((yield* store.stats).scheduled, 2, "the one kept waits, as scheduled")
            yield* store.reap
            const [next] = (yield* store.claim(claimRequest({ limit: 10 }))).jobs.filter((job) => job.id === id)
            assert.deepStrictEqual([next?.key, next?.payload], ["running", { next: true }])
            yield* store.settle([{ lease: next!.lease, outcome: Outcome.Completed() }])
          }
          const stats = yield* store.stats
          assert.deepStrictEqual(
            [stats.ready, stats.scheduled, stats.leased, stats.dead],
            // With replace, the claim above took the released job too (not the other queue's).
            keyMode === "replace" ? [1, 1, 1, 1] : [2, 1, 0, 1],
            "released and other: ready (or leased); retried: scheduled; dead: dead; the running job completed"
          )
        }).pipe(Effect.provide(clientLayer())),
      30_000
    )
  }

  it.scoped("settles a batch of every kind of outcome in one call, each judged on its own lease", () =>
    Effect.gen(function*() {
      const store = yield* testStore({ clock })
      const ids = yield* store.enqueue(Array.from({ length: 6 }, (_, i) => newJob({ payload: { i } })))
      const { jobs } = yield* store.claim(claimRequest())
      assert.deepStrictEqual(jobs.map((job) => job.id), ids)
      const stale = { jobId: jobs[5]!.id, token: "999999" }
      const results = yield* store.settle([
        { lease: jobs[0]!.lease, outcome: Outcome.Completed() },
        { lease: jobs[1]!.lease, outcome: Outcome.Retry({ delay: Duration.seconds(10), error: "e1" }) },
        { lease: jobs[2]!.lease, outcome: Outcome.Dead({ error: "fatal" }) },
        { lease: jobs[3]!.lease, outcome: Outcome.Released({ refund: true }) },
        { lease: jobs[4]!.lease, outcome: Outcome.Released({ refund: false }) },
        { lease: stale, outcome: Outcome.Completed() },
        { lease: jobs[0]!.lease, outcome: Outcome.Completed() }
      ])
      assert.deepStrictEqual(results, [true, true, true, true, true, false, false])
      const again = yield* store.claim(claimRequest())
      assert.deepStrictEqual(
        again.jobs.map((job) => [job.id, job.attempt]),
        [[ids[3], 1], [ids[4], 2]],
        "the refunded release runs again as attempt 1, the other as attempt 2"
      )
      yield* clock.advance(Duration.seconds(10))
      const retried = yield* store.claim(claimRequest())
      assert.deepStrictEqual(retried.jobs.map((job) => [job.id, job.attempt]), [[ids[1], 2]])
      const dead = yield* store.deadLetters()
      assert.deepStrictEqual(dead.map((job) => [job.id, job.lastError]), [[ids[2], "fatal"]])
      // Leased: the three claimed again, and the one whose stale lease settled nothing.
      assert.strictEqual((yield* store.stats).leased, 4)
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("coalesces concurrent settles into one statement, and a lost lease among them fails alone", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      yield* store.enqueue(Array.from({ length: 50 }, () => newJob()))
      const { jobs } = yield* store.claim(claimRequest({ limit: 50 }))
      assert.strictEqual(jobs.length, 50)
      const stale = { jobId: jobs[0]!.id, token: "999999" }
      const results = yield* Effect.all(
        [stale, ...jobs.slice(1).map((job) => job.lease)].map((lease) =>
          store.settle([{ lease, outcome: Outcome.Completed() }])
        ),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results.flat(), [false, ...jobs.slice(1).map(() => true)])
      const stats = yield* store.stats
      assert.strictEqual(stats.leased, 1, "only the job whose stale lease was used is still leased")
    }).pipe(Effect.provide(clientLayer())))

  it.scoped(
    "turns retry delays into instants by the database's clock, whatever the worker's clock says",
    () =>
      Effect.gen(function*() {
        // The store's clock is an hour ahead of this process's: a delay added to this process's clock would put the
        // retry 50 minutes in the store's past, and the job would be claimable at once.
        const store = yield* testStore({ clock })
        yield* clock.advance(Duration.hours(1))
        yield* store.enqueue([newJob(), newJob({ delay: Duration.minutes(10) })])
        const { jobs } = yield* store.claim(claimRequest())
        assert.strictEqual(jobs.length, 1, "the delayed job waits 10 minutes of the store's clock")
        yield* store.settle([{
          lease: jobs[0]!.lease,
          outcome: Outcome.Retry({ delay: Duration.minutes(10), error: "x" })
        }])
        assert.deepStrictEqual((yield* store.claim(claimRequest())).jobs, [])
        yield* clock.advance(Duration.minutes(10))
        const due = yield* store.claim(claimRequest())
        assert.deepStrictEqual(due.jobs.map((job) => job.attempt).sort(), [1, 2])
      }).pipe(Effect.provide(clientLayer()))
  )

  it.scopedLive("by the database's real clock, a delayed job is never claimed early, and priority comes first", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      const sql = yield* PgClient.PgClient
      const dbNow = Effect.map(
        sql.unsafe<{ ms: number }>(`SELECT (extract(epoch FROM statement_timestamp()) * 1000)::float8 AS ms`)
          .withoutTransform,
        ([row]) => row!.ms
      )
      const before = yield* dbNow
      const [delayed] = yield* store.enqueue([newJob({ delay: Duration.millis(300), priority: -10 })])
      const [low, high] = yield* store.enqueue([
        newJob({ runAt: new Date(0), priority: 5 }),
        newJob({ runAt: new Date(0), priority: 1 })
      ])
      assert.deepStrictEqual((yield* store.claim(claimRequest({ limit: 1 }))).jobs.map((job) => job.id), [high])
      assert.deepStrictEqual((yield* store.claim(claimRequest({ limit: 1 }))).jobs.map((job) => job.id), [low])
      while (true) {
        const { jobs } = yield* store.claim(claimRequest())
        const after = yield* dbNow
        if (jobs.length > 0) {
          assert.deepStrictEqual(jobs.map((job) => job.id), [delayed])
          assert.isAtLeast(jobs[0]!.runAt.getTime(), before + 300, "due 300 ms after the enqueue by the database")
          break
        }
        assert.isBelow(after, before + 1_300, "claimable within a second of its due instant")
        yield* Effect.sleep("20 millis")
      }
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("claims and reaps report the jobs they buried, and stats count ready jobs per name", () =>
    Effect.gen(function*() {
      const store = yield* testStore({ clock })
      const [first, second, other] = yield* store.enqueue([
        newJob({ maxAttempts: 1 }),
        newJob({ maxAttempts: 1, queue: "reaped" }),
        newJob({ name: "unserved" })
      ])
      yield* store.claim(claimRequest())
      yield* store.claim(claimRequest({ queues: ["reaped"] }))
      assert.deepStrictEqual((yield* store.stats).readyByName, { unserved: 1 })
      yield* clock.advance(Duration.seconds(30))
      const claimed = yield* store.claim(claimRequest())
      assert.deepStrictEqual(claimed.jobs, [])
      assert.deepStrictEqual(claimed.buried, [
        { id: first!, name: "send-email", queue: "emails", attempt: 1, error: "lease expired" }
      ])
      const reaped = yield* store.reap
      assert.deepStrictEqual(reaped, {
        reaped: 1,
        buried: [{ id: second!, name: "send-email", queue: "reaped", attempt: 1, error: "lease expired" }]
      })
      const stats = yield* store.stats
      assert.deepStrictEqual([stats.ready, stats.dead], [1, 2])
      assert.deepStrictEqual(stats.readyByName, { unserved: 1 })
      assert.deepStrictEqual(
        (yield* store.claim(claimRequest({ names: ["unserved"] }))).jobs.map((job) => job.id),
        [other]
      )
    }).pipe(Effect.provide(clientLayer())))

  it.scopedLive("hears wake-ups again after its listening connection is killed", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      const sql = yield* PgClient.PgClient
      const received = yield* store.wakeups
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
            store.enqueue([newJob({ queue: "after-kill" })]),
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
      const [id] = yield* stores[0]!.enqueue([newJob()])
      assert.deepStrictEqual((yield* stores[5]!.claim(claimRequest())).jobs.map((job) => job.id), [id])
      const migrations = yield* sql.unsafe<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${schema}.effect_worker_context_migrations`
      ).withoutTransform
      // One row per migration, each run once whatever the number of stores.
      assert.deepStrictEqual(migrations, [{ n: latestVersion }])
    }).pipe(Effect.provide(clientLayer({ maxConnections: 8 }))))

  it.scoped("works on a PgClient that transforms names and JSON", () =>
    Effect.gen(function*() {
      const store = yield* testStore()
      const [id] = yield* store.enqueue([newJob({ payload: { some_field: 1 }, key: "k" })])
      const { jobs: [job] } = yield* store.claim(claimRequest())
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
      const error = yield* Effect.flip(PgJobStore.make({ schema, migrate: false, listen: false }))
      assert.instanceOf(error, JobStoreError)
      assert.strictEqual(error.operation, "migrate")
      assert.strictEqual(
        error.reason,
        `schema "${schema}" is missing or not migrated (build the store with migrate: true)`
      )
    }).pipe(Effect.provide(clientLayer())))

  it.scoped("fails a migration that PostgreSQL refuses with a JobStoreError that quotes it", () =>
    Effect.gen(function*() {
      const schema = uniqueName("taken")
      // A table of someone else's where migration 1 creates the store's.
      yield* Effect.promise(() => query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.jobs (x int)`))
      yield* Effect.addFinalizer(() => Effect.promise(() => query(`DROP SCHEMA ${schema} CASCADE`)))
      const exit = yield* Effect.exit(PgJobStore.make({ schema, listen: false }))
      assert.isTrue(
        Exit.isFailure(exit) && Cause.isFailType(exit.cause),
        Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "succeeded"
      )
      const error = Cause.squash((exit as Exit.Failure<unknown, unknown>).cause)
      assert.instanceOf(error, JobStoreError)
      assert.strictEqual((error as JobStoreError).operation, "migrate")
      assert.match((error as JobStoreError).reason, /^Migration "1_jobs" failed: .*relation "jobs" already exists/)
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
        PgJobStore.make({ schema, migrate: false, listen: false }).pipe(
          Effect.provide(PgClient.layer({ url: Redacted.make(url.toString()) }))
        )
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
        yield* store.enqueue([newJob()])
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

  it.scopedLive(
    "says what ended a statement an immediate shutdown cut off, in the driver's own words",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const client = yield* Layer.build(PgClient.layer({ url: Redacted.make(server.url) }))
        const store = yield* Effect.provide(PgJobStore.make({ listen: false }), client)
        // An enqueue that waits for a lock when the server goes down (a crash: immediate shutdown).
        const locker = new Pg.Client({ connectionString: server.url })
        yield* Effect.promise(() => locker.connect())
        locker.on("error", () => {})
        yield* Effect.promise(() => locker.query(`BEGIN; LOCK TABLE effect_worker.jobs IN ACCESS EXCLUSIVE MODE`))
        const enqueue = yield* Effect.fork(Effect.flip(store.enqueue([newJob()])))
        yield* waitFor(
          Effect.promise(() =>
            locker.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted`)
          ),
          (result) => result.rows[0]!.n > 0
        )
        yield* Effect.promise(() => server.stopServer("immediate"))
        const error = yield* Fiber.join(enqueue)
        // Not the pool's "Connection error" alone: what the server or the socket said.
        assert.notMatch(error.reason, /^(SqlError: )?Connection error$/, error.reason)
        assert.match(error.reason, /terminat|shut ?down|connection lost/i, error.reason)
        yield* Effect.promise(() => server.start())
        yield* store.enqueue([newJob()])
      }),
    60_000
  )

  it("keeps the innermost message of an error that has no code", () => {
    // What pg says of a client used after its connection failed, under the pool's SqlError.
    const error = new SqlError({
      message: "Connection error",
      cause: new Error("Client has encountered a connection error and is not queryable")
    })
    assert.strictEqual(
      internal.describeError(error, "jobs"),
      "Connection error: Client has encountered a connection error and is not queryable"
    )
  })

  it.effect("refuses options that make no sense", () =>
    Effect.gen(function*() {
      for (
        const [options, message] of [
          [{ schema: "Bad-Name" }, /PgJobStore: invalid schema "Bad-Name"/],
          [{ schema: "a".repeat(49) }, /PgJobStore: invalid schema/],
          [{ listenCheckInterval: 0 }, /PgJobStore: invalid listenCheckInterval "0"/],
          [{ callTimeout: "0 millis" }, /PgJobStore: invalid callTimeout "0 millis"/],
          [{ maxConnections: 0 }, /PgJobStore: invalid maxConnections "0"/],
          [{ batchAcks: "yes" as unknown as boolean }, /PgJobStore: invalid batchAcks "yes"/],
          [{ deadLetterRetention: "0 millis" }, /PgJobStore: invalid deadLetterRetention "0 millis"/]
        ] as const
      ) {
        const exit = yield* Effect.exit(Effect.scoped(PgJobStore.make(options)).pipe(Effect.provide(clientLayer())))
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), JSON.stringify(options))
        if (Exit.isFailure(exit)) assert.match(Cause.pretty(exit.cause), message)
      }
    }))
})
