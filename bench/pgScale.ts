/**
 * Benchmark 10: `PgJobStore` with big tables, on a throwaway server of its own with PostgreSQL's durability
 * settings (`test/pgServer.ts`).
 *
 * - **Claims beside a big queue.** `rows` ready jobs in queue `bulk` (inserted with `generate_series`, then
 *   analyzed). Timed, each `samples` times, one call of the store at a time: a claim of the one job of queue `work`
 *   (enqueued, untimed, before each claim), a claim from the empty queue `idle` (what an idle worker's poll costs),
 *   and a claim of 10 jobs at the head of `bulk`.
 * - **Dead letters.** `rows` dead letters in 10 queues: `deadLetters()` (the newest 100) and `deadLetters` of one
 *   queue; then `stats` with the ready jobs and the dead letters both there.
 * - **Prune.** The dead letters failed 30 days ago, the store keeps them 14 days: the time of `prune` calls (1,000
 *   rows each) until `pruneRows` are gone, as rows per second.
 * - **A specialised worker.** `drainJobs` jobs enqueued into queue `work` beside the big queue, drained by a
 *   `JobWorker` with its defaults that serves only `work`, `drainRounds` times; each followed by the same drain on
 *   a fresh, empty schema (bulk enqueue, analyzed). The two alternate: this machine's speed drifts over minutes, and
 *   drains of each kind run minutes apart measured the drift (0.68x to 1.11x over runs of the same code; alternated,
 *   0.96x).
 * - **Plans without statistics.** `drainJobs` jobs enqueued one at a time (64 calls at once) on a fresh schema whose
 *   table autovacuum may not analyze, then drained by a `JobWorker` with its defaults (concurrency 24), timed from
 *   resume to the last job; against the same drain after one bulk enqueue and an `ANALYZE`. The drains alternate,
 *   `drainRounds` of each.
 */
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Redacted, Schema, type Scope } from "effect"
import pg from "pg"
import { Job, JobStore, WorkerContext } from "../src/index.js"
import * as JobWorker from "../src/JobWorker.js"
import * as PgJobStore from "../src/PgJobStore.js"
import { startPgServer } from "../test/pgServer.js"
import { Countdown, median, now, quietLogs } from "./common.js"

export interface PgScaleConfig {
  /** Ready jobs in the big queue, and dead letters. */
  readonly rows: number
  /** Timed calls of each kind. */
  readonly samples: number
  /** Dead letters pruned while timed. */
  readonly pruneRows: number
  /** Jobs per drain, and drains of each kind. */
  readonly drainJobs: number
  readonly drainRounds: number
}

/** A latency: median and the slowest of the samples, in ms. */
export interface CallTimes {
  readonly median: number
  readonly max: number
}

export interface PgScaleResult {
  readonly config: PgScaleConfig
  readonly claimSmallQueue: CallTimes
  readonly claimEmptyQueue: CallTimes
  readonly claimBigQueueHead: CallTimes
  readonly deadLetters: CallTimes
  readonly deadLettersOfQueue: CallTimes
  readonly stats: CallTimes
  readonly prunePerSecond: number
  /** Jobs per second of each drain: after single enqueues, never analyzed; after a bulk enqueue, analyzed. */
  readonly drainUnanalyzed: ReadonlyArray<number>
  readonly drainAnalyzed: ReadonlyArray<number>
  /** Jobs per second of a worker that serves only queue `work`, beside the big queue's ready jobs. */
  readonly drainBeside: ReadonlyArray<number>
  /** Jobs per second of the same drain on an empty schema, each right after one beside the big queue. */
  readonly drainBesideEmpty: ReadonlyArray<number>
}

const Noop = Job.make("bench-noop", { payload: Schema.Struct({ n: Schema.Number }), queue: "bench" })
/** The same job type in queue `work`, for the worker that serves only it. */
const NoopWork = Job.make(Noop.name, { payload: Noop.payload, queue: "work" })

/** A no-op job of `queue`, ready now. */
const newJob = (queue: string, n: number): JobStore.NewJob => ({
  name: Noop.name,
  queue,
  payload: { n },
  priority: 0,
  key: undefined,
  maxAttempts: 5
})

const timeCalls = <A, E>(samples: number, before: Effect.Effect<unknown, E>, call: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    for (let i = 0; i < samples; i++) {
      yield* before
      const begin = now()
      yield* call
      times.push(now() - begin)
    }
    return { median: median(times), max: Math.max(...times) }
  })

/** A store in `schema` on `url`, with its own `PgClient`, for the scope. */
const storeOn = (url: string, schema: string, options?: PgJobStore.PgJobStoreOptions) =>
  Effect.gen(function*() {
    const client = yield* Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections: 10 }))
    return yield* PgJobStore.make({ schema, listen: false, ...options }).pipe(Effect.provide(client))
  })

/**
 * How a drain's jobs are enqueued: one at a time on a fresh schema never analyzed (`single`), in one call on a fresh
 * schema then analyzed (`bulk`), or in one call into queue `work` of the big schema, served alone (`beside`).
 */
type DrainKind = "single" | "bulk" | "beside"

/** One drain of `jobs` by a `JobWorker` with its defaults: jobs/s. */
const drain = (
  url: string,
  admin: pg.Pool,
  schema: string,
  jobs: number,
  kind: DrainKind
): Effect.Effect<number, unknown, Scope.Scope> =>
  Effect.scoped(Effect.gen(function*() {
    if (kind !== "beside") yield* Effect.promise(() => admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`))
    const store = yield* storeOn(url, schema)
    const counter = new Countdown()
    const ctx = yield* WorkerContext.make({ name: `bench-pg-scale-${schema}`, logLevel: "None" })
    const job = kind === "beside" ? NoopWork : Noop
    const queue = job.queue
    yield* JobWorker.make({ handlers: [job.handler(() => Effect.sync(counter.tick))], concurrency: 24 }).pipe(
      Effect.provideService(JobStore.JobStore, store),
      Effect.provideService(WorkerContext, ctx)
    )
    yield* ctx.pause
    const payloads = Array.from({ length: jobs }, (_, n) => newJob(queue, n))
    if (kind === "single") {
      // The table is never analyzed: autovacuum may not, and the store does not.
      yield* Effect.promise(() => admin.query(`ALTER TABLE ${schema}.jobs SET (autovacuum_enabled = false)`))
      yield* Effect.forEach(payloads, (job) => store.enqueue([job]), { concurrency: 64, discard: true })
    } else {
      yield* store.enqueue(payloads)
      if (kind === "bulk") yield* Effect.promise(() => admin.query(`ANALYZE ${schema}.jobs`))
    }
    const done = counter.arm(jobs)
    const begin = now()
    yield* ctx.resume
    yield* Effect.promise(() => done)
    return jobs / ((now() - begin) / 1000)
  }))

export const pgScale = (config: PgScaleConfig): Effect.Effect<PgScaleResult> =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* Effect.acquireRelease(
      Effect.promise(() =>
        startPgServer({ settings: { fsync: "on", synchronous_commit: "on", full_page_writes: "on" } })
      ),
      (server) => Effect.promise(() => server.stop())
    )
    const admin = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const pool = new pg.Pool({ connectionString: server.url, max: 2 })
        pool.on("error", () => {})
        return pool
      }),
      (pool) => Effect.promise(() => pool.end())
    )
    const sql = (text: string) => Effect.promise(() => admin.query(text))
    // Keeps its dead letters: its prune only folds the counts. The prune below is another store's.
    const store = yield* storeOn(server.url, "scale", { deadLetterRetention: Duration.infinity })
    const rows = config.rows
    yield* sql(
      `INSERT INTO scale.jobs (id, seq, name, queue, payload, priority, max_attempts, run_at, enqueued_at)
       SELECT i, i, 'bench-noop', 'bulk', '{"n":0}'::jsonb, 0, 5, now() - interval '1 hour', now()
       FROM generate_series(1, ${rows}) AS i`
    )
    yield* sql(
      `INSERT INTO scale.dead_jobs (id, name, queue, payload, priority, key, attempts, max_attempts, run_at,
                                    enqueued_at, last_error, failed_at)
       SELECT i, 'bench-noop', 'q' || (i % 10), '{"n":0}'::jsonb, 0, NULL, 5, 5, now(), now(), 'boom',
              now() - interval '30 days' + (i - ${rows}) * interval '1 millisecond'
       FROM generate_series(${rows + 1}, ${2 * rows}) AS i`
    )
    yield* sql(`SELECT setval('scale.job_ids', ${2 * rows})`)
    // At rest, as autovacuum leaves tables that stopped changing: analyzed, and vacuumed (hint bits and the
    // visibility map set). Otherwise autovacuum's first pass over the new rows runs beside the timed calls.
    yield* sql(`VACUUM ANALYZE scale.jobs`)
    yield* sql(`VACUUM ANALYZE scale.dead_jobs`)
    yield* store.prune
    const request = (queue: string, limit: number): JobStore.ClaimRequest => ({
      queues: [queue],
      names: [Noop.name],
      limit,
      lease: Duration.minutes(5),
      worker: "bench"
    })
    const enqueueWork = Effect.asVoid(store.enqueue([newJob("work", 0)]))
    const claimSmallQueue = yield* timeCalls(config.samples, enqueueWork, store.claim(request("work", 10)))
    const claimEmptyQueue = yield* timeCalls(config.samples, Effect.void, store.claim(request("idle", 10)))
    const claimBigQueueHead = yield* timeCalls(config.samples, Effect.void, store.claim(request("bulk", 10)))
    const deadLetters = yield* timeCalls(config.samples, Effect.void, store.deadLetters())
    const deadLettersOfQueue = yield* timeCalls(config.samples, Effect.void, store.deadLetters({ queue: "q3" }))
    const stats = yield* timeCalls(config.samples, Effect.void, store.stats)
    // Prune: calls of 1,000 until `pruneRows` are gone.
    const pruner = yield* storeOn(server.url, "scale", { deadLetterRetention: "14 days" })
    let pruned = 0
    const pruneBegin = now()
    while (pruned < config.pruneRows) {
      const result = yield* pruner.prune
      pruned += result.pruned
      if (!result.more) break
    }
    const prunePerSecond = pruned / ((now() - pruneBegin) / 1000)
    // The pruned dead letters are vacuumed first too.
    yield* sql(`VACUUM scale.dead_jobs`)
    const drainBeside: Array<number> = []
    const drainBesideEmpty: Array<number> = []
    for (let round = 0; round < config.drainRounds; round++) {
      drainBeside.push(yield* drain(server.url, admin, "scale", config.drainJobs, "beside"))
      drainBesideEmpty.push(yield* drain(server.url, admin, "drain_empty", config.drainJobs, "bulk"))
    }
    // The big tables go first: their autovacuum would run beside the other drains.
    yield* sql(`DROP SCHEMA scale CASCADE`)
    const drainUnanalyzed: Array<number> = []
    const drainAnalyzed: Array<number> = []
    for (let round = 0; round < config.drainRounds; round++) {
      drainUnanalyzed.push(yield* drain(server.url, admin, "drain_single", config.drainJobs, "single"))
      drainAnalyzed.push(yield* drain(server.url, admin, "drain_bulk", config.drainJobs, "bulk"))
    }
    return {
      config,
      claimSmallQueue,
      claimEmptyQueue,
      claimBigQueueHead,
      deadLetters,
      deadLettersOfQueue,
      stats,
      prunePerSecond,
      drainUnanalyzed,
      drainAnalyzed,
      drainBeside,
      drainBesideEmpty
    }
  })).pipe(quietLogs, Effect.orDie)

/** The drain after single enqueues, never analyzed, over the one after a bulk enqueue, analyzed: medians. */
export const drainRatio = (result: PgScaleResult): number =>
  median(result.drainUnanalyzed) / median(result.drainAnalyzed)

/** The drain of a worker serving one queue beside the big one, over the ones on an empty schema beside them: medians. */
export const besideRatio = (result: PgScaleResult): number =>
  median(result.drainBeside) / median(result.drainBesideEmpty)
