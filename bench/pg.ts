/**
 * Benchmark 9: jobs through PostgreSQL, `JobWorker` + `PgJobStore` next to graphile-worker 0.17.3, on one throwaway
 * server (`test/pgServer.ts`), each library in a database of its own.
 *
 * - **Throughput.** A batch of no-op jobs is enqueued in bulk (one call: our `enqueueMany`, graphile-worker's
 *   `addJobs`), timed apart from the drain, while nothing claims: our worker's context is `Paused`, graphile-worker's runner is not running. The timed call starts the worker (our
 *   `ctx.resume`; graphile-worker's `run()`, on a pool made beforehand, its schema migrated) and ends when the last
 *   handler ran. The variants run in interleaved rounds: each library with its defaults and with its batching
 *   options, and ours with `batchAcks: false` (one acknowledgement per statement) to show what batching buys.
 *   Before every batch the job tables are truncated and, once the batch is in, analyzed, so that every round starts
 *   from the same tables and plans.
 * - **Bulk enqueue.** One call of `bulkJobs` no-op jobs (our `enqueueMany`, graphile-worker's `addJobs`) into emptied
 *   tables, nothing claiming, timed, in interleaved rounds of their own; each library with its defaults.
 * - **Latency.** With the worker running, idle, and listening (`LISTEN`), single jobs are enqueued one at a time,
 *   each once the previous one started and a pause later; the payload carries the time of the enqueue call
 *   (`performance.timeOrigin + performance.now()`, in this process) and the handler notes how long ago that was.
 *
 * Every variant has a pool of the same size (graphile-worker's default `maxPoolSize`, 10; our `PgClient` as well),
 * and concurrency 24. The server runs with PostgreSQL's own durability settings unless `durable` is off: a commit
 * waits for its WAL flush, as in a deployment, and that is what batching saves.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Runtime, Schema, type Scope } from "effect"
import {
  Logger as GraphileLogger,
  makeWorkerUtils,
  run as runGraphile,
  type Runner,
  type TaskList,
  type WorkerUtils
} from "graphile-worker"
import pg from "pg"
import { Job, JobStore, WorkerContext } from "../src/index.js"
import * as JobWorker from "../src/JobWorker.js"
import * as PgJobStore from "../src/PgJobStore.js"
import { startPgServer } from "../test/pgServer.js"
import { Countdown, median, now, quietLogs } from "./common.js"
import { interleaved, pairedRatio, type Variant } from "./interleave.js"

export interface PgConfig {
  /** Jobs per measured batch, in every variant. */
  readonly jobs: number
  /** Jobs run at once by each worker. */
  readonly concurrency: number
  readonly rounds: number
  readonly warmupRounds: number
  /** Connections in each variant's pool. */
  readonly poolSize: number
  /** Latency: measured jobs per variant, after `latencyWarmup` discarded ones, `latencySpacingMs` apart. */
  readonly latencySamples: number
  readonly latencyWarmup: number
  readonly latencySpacingMs: number
  /** Whether the server keeps PostgreSQL's durability defaults; off, it runs as `startPgServer`'s test default. */
  readonly durable: boolean
  /** Bulk enqueue: jobs per call (our `enqueueMany`, graphile-worker's `addJobs`), and measured rounds of it. */
  readonly bulkJobs: number
  readonly bulkRounds: number
}

/**
 * graphile-worker's batching, as its performance page configures it for concurrency 24: a local queue of 500 jobs
 * (the pool fetches and locks up to 500 at once and hands them to its workers) and batched completion and failure
 * (`completeJobBatchDelay`, `failJobBatchDelay`: 0 ms, the calls of one tick go in one statement). The defaults are
 * `localQueue.size: -1` and both delays `-1` (off): one `get_job` and one `complete_job` per job.
 */
export const GraphileBatching = {
  localQueue: { size: 500 },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0
} as const

/** The variants, by their names in the figures. */
export const PgVariants = {
  graphile: "graphile-worker, defaults",
  graphileBatched:
    `graphile-worker, batched (localQueue ${GraphileBatching.localQueue.size}, completeJobBatchDelay ${GraphileBatching.completeJobBatchDelay})`,
  ours: "JobWorker + PgJobStore, defaults",
  oursBatched: "JobWorker + PgJobStore, batched (prefetch 500, batchAcks)",
  oursUnbatched: "JobWorker + PgJobStore, batchAcks: false"
} as const

/**
 * Our variants' store and worker options, and the schema each lives in (one database, a schema each). `batchAcks`
 * is on by default; "batched" adds the worker's `prefetch`, the counterpart of graphile-worker's local queue (500
 * jobs claimed ahead), and "batchAcks: false" shows what batched acknowledgements buy.
 */
const OurVariants: ReadonlyArray<{
  readonly name: string
  readonly schema: string
  readonly options: PgJobStore.PgJobStoreOptions
  readonly prefetch: number
}> = [
  { name: PgVariants.ours, schema: "bench_ewc", options: {}, prefetch: 0 },
  { name: PgVariants.oursBatched, schema: "bench_ewc_batched", options: { batchAcks: true }, prefetch: 500 },
  { name: PgVariants.oursUnbatched, schema: "bench_ewc_unbatched", options: { batchAcks: false }, prefetch: 0 }
]

/** The server settings the report shows: read back from `pg_settings`, not what was asked for. */
export const ReportedSettings = [
  "fsync",
  "synchronous_commit",
  "full_page_writes",
  "wal_level",
  "shared_buffers",
  "work_mem",
  "max_wal_size",
  "checkpoint_timeout",
  "max_connections",
  "autovacuum",
  "jit"
] as const

export interface LatencyResult {
  /** Enqueue call → handler start, in ms, over the measured samples. */
  readonly samples: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

export interface PgRatio {
  /** Ours / graphile-worker in jobs per second: the median of the per-round ratios of graphile's time to ours. */
  readonly wall: number
  /** The same with this process's CPU time (the server's processes are not in it). */
  readonly cpu: number
}

/** Bulk enqueue of `bulkJobs` jobs in one call, ours (`enqueueMany`) and graphile-worker's (`addJobs`). */
export interface BulkResult {
  /** Median jobs per second over the rounds. */
  readonly jobsPerSecond: { readonly ours: number; readonly graphile: number }
  /** Ours / graphile-worker's throughput: the median of per-round ratios. */
  readonly ratio: number
  /** Wall-clock ms of each measured call, by variant name, in round order. */
  readonly samples: Readonly<Record<string, ReadonlyArray<number>>>
}

export interface PgResult {
  readonly config: PgConfig
  /** The throwaway server's port: closed again, the server stopped and its folder removed, once this returns. */
  readonly serverPort: number
  /** `SHOW server_version`. */
  readonly serverVersion: string
  /** {@link ReportedSettings} as the server reports them (`current_setting`: with their units). */
  readonly settings: ReadonlyArray<{ readonly name: string; readonly value: string }>
  /** Median jobs per second (wall clock), by variant name. */
  readonly jobsPerSecond: Readonly<Record<string, number>>
  readonly usPerJob: Readonly<Record<string, number>>
  readonly cpuUsPerJob: Readonly<Record<string, number>>
  /** Wall-clock ms of each measured batch, by variant name, in round order. */
  readonly samples: Readonly<Record<string, ReadonlyArray<number>>>
  /** Median µs per job of the untimed bulk enqueue, by variant name. */
  readonly enqueueUsPerJob: Readonly<Record<string, number>>
  /** Median ms for graphile-worker's `run()` to resolve (its start-up, inside the timed call), by variant name. */
  readonly startupMs: Readonly<Record<string, number>>
  /** Ours / graphile-worker, defaults against defaults and batched against batched. */
  readonly ratios: { readonly defaults: PgRatio; readonly batched: PgRatio }
  /** Enqueue-to-start latency with the worker idle, by variant name. */
  readonly latency: Readonly<Record<string, LatencyResult>>
  readonly bulk: BulkResult
  /** By variant name, how many times the no-op handler ran: `jobs × (rounds + warmupRounds)` each. */
  readonly completed: Readonly<Record<string, number>>
  /** Job rows left in the tables after each round's teardown and each latency run, summed: 0. */
  readonly leftInStore: number
  /** The variants, in the order they were built (the first round's order). */
  readonly variants: ReadonlyArray<string>
}

/** Wall-clock time in ms, comparable across processes on one machine: what a payload carries. */
const wallNow = (): number => performance.timeOrigin + performance.now()

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** The `p`th percentile (0–100) of `values`, nearest rank. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p / 100 * sorted.length)))
  return sorted[rank - 1]!
}

const latencyOf = (values: ReadonlyArray<number>): LatencyResult => ({
  samples: values.length,
  p50: percentile(values, 50),
  p90: percentile(values, 90),
  p99: percentile(values, 99),
  max: Math.max(...values)
})

/** Collects handler start latencies; `expect` returns the promise of the next start. */
class LatencyProbe {
  readonly values: Array<number> = []
  private next: (() => void) | undefined = undefined

  expect(): Promise<void> {
    return new Promise<void>((resolve) => (this.next = resolve))
  }

  readonly started = (enqueuedAt: number): void => {
    this.values.push(wallNow() - enqueuedAt)
    const next = this.next
    this.next = undefined
    next?.()
  }
}

/**
 * Enqueues one job at a time, each once the previous one started and `spacingMs` later, and returns the latencies
 * of the measured ones.
 */
const measureLatency = async (
  config: PgConfig,
  probe: LatencyProbe,
  enqueue: (enqueuedAt: number) => Promise<void>
): Promise<LatencyResult> => {
  probe.values.length = 0
  for (let i = 0; i < config.latencyWarmup + config.latencySamples; i++) {
    const started = probe.expect()
    await enqueue(wallNow())
    const timedOut = await Promise.race([started.then(() => false), sleep(10_000).then(() => true)])
    if (timedOut) throw new Error(`latency job ${i} did not start within 10 s`)
    await sleep(config.latencySpacingMs)
  }
  return latencyOf(probe.values.slice(config.latencyWarmup))
}

/** A quiet graphile-worker logger: the suite prints its tables, nothing else. */
const graphileLogger = new GraphileLogger(() => () => {})

/** A `pg.Pool` that swallows the errors of idle clients (the server going away at the end). */
const makePool = (connectionString: string, max: number): pg.Pool => {
  const pool = new pg.Pool({ connectionString, max })
  pool.on("error", () => {})
  pool.on("connect", (client) => client.on("error", () => {}))
  return pool
}

const acquirePool = (connectionString: string, max: number): Effect.Effect<pg.Pool, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => makePool(connectionString, max)),
    (pool) => Effect.promise(() => pool.end())
  )

const query = <R extends pg.QueryResultRow = pg.QueryResultRow>(
  pool: pg.Pool,
  text: string,
  values?: ReadonlyArray<unknown>
): Promise<pg.QueryResult<R>> => pool.query<R>(text, values as Array<unknown> | undefined)

const countRows = async (pool: pg.Pool, tables: ReadonlyArray<string>): Promise<number> => {
  let total = 0
  for (const table of tables) {
    const result = await query<{ n: number }>(pool, `select count(*)::int as n from ${table}`)
    total += result.rows[0]!.n
  }
  return total
}

/** Fails unless `tables` hold `count` rows: a bulk enqueue stored its whole batch. */
const expectRows = async (pool: pg.Pool, tables: ReadonlyArray<string>, count: number): Promise<void> => {
  const rows = await countRows(pool, tables)
  if (rows !== count) throw new Error(`a bulk enqueue of ${count} jobs left ${rows} rows in ${tables.join(", ")}`)
}

/** graphile-worker's tables that hold jobs; `_private_tasks` (task names → ids, cached by the worker) is kept. */
const graphileJobTables = ["graphile_worker._private_jobs", "graphile_worker._private_job_queues"] as const

interface Contender {
  readonly variant: Variant
  readonly counter: Countdown
  /** Latency with the worker running and idle; leaves it as it found it. */
  readonly latency: () => Promise<LatencyResult>
  readonly enqueueMs: ReadonlyArray<number>
  readonly startupMs: ReadonlyArray<number>
  /** One bulk enqueue of `bulkJobs` no-op jobs into emptied tables, with nothing claiming them. */
  readonly bulk: Variant
}

/** graphile-worker with `preset` (its defaults when empty): the runner starts in each timed call, stops after. */
const graphileContender = (
  name: string,
  config: PgConfig,
  pool: pg.Pool,
  utils: WorkerUtils,
  preset: GraphileConfig.WorkerOptions,
  left: { count: number }
): Contender => {
  const counter = new Countdown()
  const probe = new LatencyProbe()
  const taskList: TaskList = {
    "bench-noop": () => counter.tick(),
    "bench-latency": (payload) => probe.started((payload as { readonly t: number }).t)
  }
  const enqueueMs: Array<number> = []
  const startupMs: Array<number> = []
  let runner: Runner | undefined
  const start = () =>
    runGraphile({
      pgPool: pool,
      logger: graphileLogger,
      concurrency: config.concurrency,
      noHandleSignals: true,
      crontab: "",
      taskList,
      preset: { worker: preset }
    })
  const stop = async () => {
    const running = runner
    runner = undefined
    await running?.stop()
  }
  const bulkSpecs = Array.from({ length: config.bulkJobs }, (_, n) => ({ identifier: "bench-noop", payload: { n } }))
  return {
    counter,
    enqueueMs,
    startupMs,
    bulk: {
      name,
      setup: () => query(pool, `truncate ${graphileJobTables.join(", ")}`).then(() => undefined),
      run: () => utils.addJobs(bulkSpecs).then(() => undefined),
      teardown: () => expectRows(pool, ["graphile_worker._private_jobs"], config.bulkJobs)
    },
    variant: {
      name,
      setup: async () => {
        await query(pool, `truncate ${graphileJobTables.join(", ")}`)
        const specs = new Array(config.jobs)
        for (let n = 0; n < config.jobs; n++) specs[n] = { identifier: "bench-noop", payload: { n } }
        const begin = now()
        await utils.addJobs(specs)
        enqueueMs.push(now() - begin)
        await query(pool, `analyze ${graphileJobTables.join(", ")}`)
      },
      run: async () => {
        const done = counter.arm(config.jobs)
        const begin = now()
        runner = await start()
        startupMs.push(now() - begin)
        await done
      },
      teardown: async () => {
        // `stop` waits for the jobs in flight and flushes the batched completions.
        await stop()
        left.count += await rowsLeft(pool, ["graphile_worker._private_jobs"])
      }
    },
    latency: async () => {
      await query(pool, `truncate ${graphileJobTables.join(", ")}`)
      runner = await start()
      try {
        return await measureLatency(config, probe, async (t) => {
          await utils.addJob("bench-latency", { t })
        })
      } finally {
        await stop()
        left.count += await rowsLeft(pool, ["graphile_worker._private_jobs"])
      }
    }
  }
}

/** Our job types: the same payloads as graphile-worker's tasks, `Job.make`'s defaults otherwise. */
const Noop = Job.make("bench-noop", { payload: Schema.Struct({ n: Schema.Number }), queue: "bench" })
const Latency = Job.make("bench-latency", { payload: Schema.Struct({ t: Schema.Number }), queue: "bench" })

/** `count` payloads of no-op jobs. */
const payloads = (count: number): Array<{ readonly n: number }> => Array.from({ length: count }, (_, n) => ({ n }))

/** Waits until `done` holds, checking every few milliseconds; dies after `seconds`. */
const waitUntil = async (what: string, done: () => Promise<boolean>, seconds = 30): Promise<void> => {
  const deadline = now() + seconds * 1000
  while (!(await done())) {
    if (now() > deadline) throw new Error(`${what} did not happen within ${seconds} s`)
    await sleep(5)
  }
}

/**
 * The job rows left in `tables` once they stop shrinking for long: 0 unless a job ran and was never acknowledged.
 * graphile-worker's `stop()` can resolve a moment before its last `complete_job` is visible, so one count right
 * after it could see a job that is about to go.
 */
const rowsLeft = async (pool: pg.Pool, tables: ReadonlyArray<string>): Promise<number> => {
  const deadline = now() + 5_000
  let count = await countRows(pool, tables)
  while (count > 0 && now() < deadline) {
    await sleep(5)
    count = await countRows(pool, tables)
  }
  return count
}

/**
 * One of our contenders: a `PgClient` of `poolSize` connections, a `PgJobStore` in `schema`, a context and a
 * `JobWorker` with its defaults but the concurrency, for the whole benchmark; the context is `Paused` between
 * batches.
 */
const ourContender = (
  variant: typeof OurVariants[number],
  config: PgConfig,
  databaseUrl: string,
  tables: pg.Pool,
  left: { count: number }
): Effect.Effect<Contender, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runPromise = Runtime.runPromise(yield* Effect.runtime<never>())
    const client = yield* Layer.build(
      PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: config.poolSize })
    )
    const store = yield* PgJobStore.make({ schema: variant.schema, ...variant.options }).pipe(Effect.provide(client))
    const ctx = yield* WorkerContext.make({ name: `bench-pg-${variant.schema}` })
    const counter = new Countdown()
    const probe = new LatencyProbe()
    const worker = yield* JobWorker.make({
      handlers: [
        Noop.handler(() => Effect.sync(counter.tick)),
        Latency.handler(({ t }) => Effect.sync(() => probe.started(t)))
      ],
      concurrency: config.concurrency,
      prefetch: variant.prefetch
    }).pipe(Effect.provideService(JobStore.JobStore, store), Effect.provideService(WorkerContext, ctx))
    yield* ctx.pause
    const jobTables = [`${variant.schema}.jobs`, `${variant.schema}.dead_jobs`]
    const enqueueMs: Array<number> = []
    /** Pauses, then waits until the worker holds no job and the table holds none either. */
    const settle = async () => {
      await runPromise(ctx.pause)
      // A job leaves the worker once its acknowledgement ran.
      await waitUntil(`${variant.name}: the worker draining`, async () => (await runPromise(worker.inFlight)) === 0)
      left.count += await rowsLeft(tables, jobTables)
    }
    const bulkBatch = payloads(config.bulkJobs)
    return {
      counter,
      enqueueMs,
      startupMs: [],
      bulk: {
        name: variant.name,
        setup: () => query(tables, `truncate ${jobTables.join(", ")}`).then(() => undefined),
        run: () =>
          runPromise(Effect.provideService(Noop.enqueueMany(bulkBatch), JobStore.JobStore, store)).then(() =>
            undefined
          ),
        teardown: () => expectRows(tables, jobTables, config.bulkJobs)
      },
      variant: {
        name: variant.name,
        setup: async () => {
          await query(tables, `truncate ${jobTables.join(", ")}`)
          const batch = payloads(config.jobs)
          const begin = now()
          await runPromise(Effect.provideService(Noop.enqueueMany(batch), JobStore.JobStore, store))
          enqueueMs.push(now() - begin)
          await query(tables, `analyze ${jobTables.join(", ")}`)
        },
        run: async () => {
          const done = counter.arm(config.jobs)
          await runPromise(ctx.resume)
          await done
        },
        teardown: settle
      },
      latency: async () => {
        await query(tables, `truncate ${jobTables.join(", ")}`)
        await runPromise(ctx.resume)
        try {
          return await measureLatency(config, probe, async (t) => {
            await runPromise(Latency.enqueue({ t }).pipe(Effect.provideService(JobStore.JobStore, store)))
          })
        } finally {
          await settle()
        }
      }
    }
  }).pipe(Effect.orDie)

/** Runs benchmark 9 on a server of its own, removed at the end. */
export const pgJobs = (config: PgConfig): Effect.Effect<PgResult> =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* Effect.acquireRelease(
      Effect.promise(() =>
        startPgServer(
          config.durable ? { settings: { fsync: "on", synchronous_commit: "on", full_page_writes: "on" } } : undefined
        )
      ),
      (server) => Effect.promise(() => server.stop())
    )
    const urlOf = (database: string) => server.url.replace(/\/postgres$/, `/${database}`)
    const admin = yield* acquirePool(server.url, 2)
    yield* Effect.promise(async () => {
      await query(admin, "create database bench_graphile")
      await query(admin, "create database bench_ewc")
    })
    const serverVersion = (yield* Effect.promise(() => query<{ server_version: string }>(admin, "show server_version")))
      .rows[0]!.server_version
    const settingRows = (yield* Effect.promise(() =>
      query<{ name: string; value: string }>(
        admin,
        "select name, current_setting(name) as value from pg_settings where name = any($1::text[])",
        [ReportedSettings]
      )
    )).rows
    const settings = ReportedSettings.map((name) => {
      const row = settingRows.find((row) => row.name === name)
      return { name, value: row?.value ?? "n/a" }
    })

    const left = { count: 0 }
    const ewcTables = yield* acquirePool(urlOf("bench_ewc"), 2)
    const graphilePool = yield* acquirePool(urlOf("bench_graphile"), config.poolSize)
    const utils = yield* Effect.acquireRelease(
      Effect.promise(() => makeWorkerUtils({ pgPool: graphilePool, logger: graphileLogger })),
      (utils) =>
        Effect.promise(async () => {
          await utils.release()
        })
    )
    yield* Effect.promise(() => utils.migrate())
    const contenders: Array<Contender> = [
      graphileContender(PgVariants.graphile, config, graphilePool, utils, {}, left),
      graphileContender(PgVariants.graphileBatched, config, graphilePool, utils, GraphileBatching, left),
      ...(yield* Effect.forEach(
        OurVariants,
        (variant) => ourContender(variant, config, urlOf("bench_ewc"), ewcTables, left)
      ))
    ]

    const result = yield* Effect.promise(() =>
      interleaved(contenders.map((contender) => contender.variant), {
        rounds: config.rounds,
        warmupRounds: config.warmupRounds,
        units: config.jobs
      })
    )
    const latency: Record<string, LatencyResult> = {}
    for (const contender of contenders) {
      latency[contender.variant.name] = yield* Effect.promise(() => contender.latency())
    }

    // Bulk enqueue, with each library's defaults (batching options change nothing there), tables emptied after.
    const bulkOf = (name: string) => contenders.find((contender) => contender.variant.name === name)!.bulk
    const bulkVariants = [bulkOf(PgVariants.ours), bulkOf(PgVariants.graphile)]
    const bulkResult = yield* Effect.promise(() =>
      interleaved(bulkVariants, { rounds: config.bulkRounds, warmupRounds: 1, units: config.bulkJobs })
    )
    for (const variant of bulkVariants) yield* Effect.promise(() => variant.setup!())
    const bulk: BulkResult = {
      jobsPerSecond: {
        ours: 1e6 / bulkResult.usPerOp[PgVariants.ours]!,
        graphile: 1e6 / bulkResult.usPerOp[PgVariants.graphile]!
      },
      ratio: pairedRatio(bulkResult, PgVariants.graphile, PgVariants.ours),
      samples: bulkResult.samples
    }

    const jobsPerSecond: Record<string, number> = {}
    const enqueueUsPerJob: Record<string, number> = {}
    const startupMs: Record<string, number> = {}
    const completed: Record<string, number> = {}
    for (const { counter, enqueueMs, startupMs: startup, variant } of contenders) {
      jobsPerSecond[variant.name] = 1e6 / result.usPerOp[variant.name]!
      enqueueUsPerJob[variant.name] = median(enqueueMs.slice(config.warmupRounds)) * 1000 / config.jobs
      if (startup.length > 0) startupMs[variant.name] = median(startup.slice(config.warmupRounds))
      completed[variant.name] = counter.total
    }
    const names = contenders.map((contender) => contender.variant.name)
    const ratio = (ours: string, theirs: string): PgRatio =>
      names.includes(ours) && names.includes(theirs)
        ? { wall: pairedRatio(result, theirs, ours), cpu: pairedRatio(result, theirs, ours, "cpu") }
        : { wall: Number.NaN, cpu: Number.NaN }
    return {
      config,
      serverPort: server.port,
      serverVersion,
      settings,
      jobsPerSecond,
      usPerJob: result.usPerOp,
      cpuUsPerJob: result.cpuUsPerOp,
      samples: result.samples,
      enqueueUsPerJob,
      startupMs,
      ratios: {
        defaults: ratio(PgVariants.ours, PgVariants.graphile),
        batched: ratio(PgVariants.oursBatched, PgVariants.graphileBatched)
      },
      latency,
      bulk,
      completed,
      leftInStore: left.count,
      variants: names
    }
  })).pipe(quietLogs)
