/**
 * `npm run bench:pg-capacity`: what one PostgreSQL server sustains for `PgJobStore`, for the "Beyond one PostgreSQL"
 * section of `docs/postgres.md`. On a throwaway server with PostgreSQL's durability settings (`test/pgServer.ts`),
 * one worker process (this one), and prints a table:
 *
 * - claims and acknowledgements per second: drains of `JOBS` no-op jobs (default 30,000) at concurrency 24 and 96,
 *   with the defaults and with `prefetch: 500`; each job is one claimed row and one acknowledged row, and the
 *   statements come from `pg_stat_statements`;
 * - notifications per second: 4 connections sending `pg_notify` in autocommit for 5 s, counted by a listener;
 * - table and index sizes before and after a drain of `BIG` jobs (default 1,000,000), enqueued in batches of 10,000,
 *   autovacuum on;
 * - the connections one worker process holds, by `application_name`, during a drain.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Schema } from "effect"
import pg from "pg"
import { Job, JobStore, WorkerContext } from "../src/index.js"
import * as JobWorker from "../src/JobWorker.js"
import * as PgJobStore from "../src/PgJobStore.js"
import { startPgServer } from "../test/pgServer.js"
import { Countdown, fmt, now, quietLogs } from "./common.js"

const jobs = Number(process.env.JOBS ?? 30_000)
const big = Number(process.env.BIG ?? 1_000_000)
const Noop = Job.make("bench-noop", { payload: Schema.Struct({ n: Schema.Number }), queue: "bench" })

const newJobs = (count: number, from = 0): Array<JobStore.NewJob> =>
  Array.from({ length: count }, (_, i) => ({
    name: Noop.name,
    queue: Noop.queue,
    payload: { n: from + i },
    priority: 0,
    key: undefined,
    maxAttempts: 5
  }))

const server = await startPgServer({
  settings: {
    fsync: "on",
    synchronous_commit: "on",
    full_page_writes: "on",
    shared_preload_libraries: "pg_stat_statements"
  }
})
const admin = new pg.Pool({ connectionString: server.url, max: 2 })
admin.on("error", () => {})
const query = async <A extends pg.QueryResultRow>(text: string, params?: Array<unknown>) =>
  (await admin.query<A>(text, params)).rows
await query("CREATE EXTENSION pg_stat_statements")
const rows: Array<[string, string]> = []

/** Drains `count` jobs with a worker of `concurrency` and `prefetch`, on a fresh schema; reports what it measured. */
const drain = (
  schema: string,
  count: number,
  concurrency: number,
  prefetch: number,
  during?: () => Promise<void>
) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* Layer.build(PgClient.layer({ url: Redacted.make(server.url), maxConnections: 10 }))
    const store = yield* PgJobStore.make({ schema }).pipe(Effect.provide(client))
    const counter = new Countdown()
    const ctx = yield* WorkerContext.make({ name: `capacity-${schema}`, logLevel: "None" })
    yield* JobWorker.make({ handlers: [Noop.handler(() => Effect.sync(counter.tick))], concurrency, prefetch }).pipe(
      Effect.provideService(JobStore.JobStore, store),
      Effect.provideService(WorkerContext, ctx)
    )
    yield* ctx.pause
    for (let from = 0; from < count; from += 10_000) {
      yield* store.enqueue(newJobs(Math.min(10_000, count - from), from))
    }
    yield* Effect.promise(() => query("SELECT pg_stat_statements_reset()"))
    const done = counter.arm(count)
    const begin = now()
    yield* ctx.resume
    if (during !== undefined) yield* Effect.promise(during)
    yield* Effect.promise(() => done)
    const seconds = (now() - begin) / 1000
    const statements = yield* Effect.promise(() =>
      query<{ calls: string }>(
        `SELECT sum(calls)::text AS calls FROM pg_stat_statements WHERE query ILIKE '%${schema}%jobs%'`
      )
    )
    return { perSecond: count / seconds, statementsPerSecond: Number(statements[0]!.calls) / seconds, store }
  })).pipe(quietLogs)

for (const concurrency of [24, 96]) {
  for (const prefetch of [0, 500]) {
    const result = await Effect.runPromise(drain(`c${concurrency}_p${prefetch}`, jobs, concurrency, prefetch))
    rows.push([
      `drain of ${jobs.toLocaleString("en")}, concurrency ${concurrency}, prefetch ${prefetch}`,
      `${fmt(result.perSecond, 0)} claims/s and acks/s (${fmt(result.statementsPerSecond, 0)} statements/s)`
    ])
  }
}

// Notifications: 4 senders in autocommit, one listener.
{
  const listener = new pg.Client({ connectionString: server.url })
  await listener.connect()
  let heard = 0
  listener.on("notification", () => heard++)
  await listener.query("LISTEN capacity")
  const senders = await Promise.all(Array.from({ length: 4 }, async () => {
    const client = new pg.Client({ connectionString: server.url })
    await client.connect()
    return client
  }))
  let sent = 0
  const end = now() + 5_000
  await Promise.all(senders.map(async (client) => {
    while (now() < end) {
      await client.query("SELECT pg_notify('capacity', 'queue')")
      sent++
    }
  }))
  await new Promise((resolve) => setTimeout(resolve, 500))
  rows.push(["notifications, 4 senders in autocommit, 5 s", `${fmt(sent / 5, 0)}/s sent, ${fmt(heard / 5, 0)}/s heard`])
  await Promise.all([listener, ...senders].map((client) => client.end()))
}

// Bloat over a big drain, and the connections one worker holds.
{
  const sizes = async (schema: string) => {
    const [row] = await query<{ heap: string; indexes: string; dead: string }>(
      `SELECT pg_size_pretty(pg_relation_size($1::regclass)) AS heap,
              pg_size_pretty(pg_indexes_size($1::regclass)) AS indexes,
              (SELECT n_dead_tup::text FROM pg_stat_user_tables WHERE relid = $1::regclass) AS dead`,
      [`${schema}.jobs`]
    )
    return `heap ${row!.heap}, indexes ${row!.indexes}, ${row!.dead} dead tuples`
  }
  let connections = ""
  let before = ""
  const begin = now()
  await Effect.runPromise(drain("big", big, 24, 500, async () => {
    before = await sizes("big")
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const held = await query<{ application_name: string; n: number }>(
      `SELECT application_name, count(*)::int AS n FROM pg_stat_activity
       WHERE application_name <> '' AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1`
    )
    connections = held.map((row) => `${row.application_name || "?"}: ${row.n}`).join(", ")
  }))
  rows.push([`jobs table with ${big.toLocaleString("en")} jobs enqueued, as the drain starts`, before])
  rows.push([`jobs table after draining them (${fmt((now() - begin) / 1000, 0)} s)`, await sizes("big")])
  rows.push(["connections during a drain (by application_name; the pg Pool's own show as ?)", connections])
}

await admin.end()
await server.stop()
const width = Math.max(...rows.map(([label]) => label.length))
for (const [label, value] of rows) process.stdout.write(`${label.padEnd(width)}  ${value}\n`)
