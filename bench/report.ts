/**
 * Turns a {@link SuiteResult} into the tables `npm run bench` prints and into `docs/benchmarks.md`. The tables
 * also take a {@link PartialSuiteResult} (`BENCH_ONLY`): they show only the benchmarks that ran.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import * as os from "node:os"
import { fmt, gcAvailable, mb, median } from "./common.js"
import { type JobsMemoryResult, type JobsRatio, type JobsResult, JobsVariants } from "./jobs.js"
import type { MemoryResult } from "./memory.js"
import { type OverheadResult, type Ratio, Variants, YieldEvery } from "./overhead.js"
import { GraphileBatching, type LatencyResult, type PgRatio, type PgResult, PgVariants } from "./pg.js"
import { besideRatio, type CallTimes, drainRatio, type PgScaleResult } from "./pgScale.js"
import type { ShutdownResult } from "./shutdown.js"
import type { PartialSuiteResult, SuiteConfig, SuiteResult } from "./suite.js"
import type { ThroughputResult } from "./throughput.js"

/** The machine and the versions a run was made with. */
export interface Environment {
  readonly date: string
  readonly cpuModel: string
  readonly cpuCount: number
  readonly memoryGb: number
  readonly os: string
  readonly node: string
  readonly effect: string
  readonly library: string
  readonly tinybench: string
  readonly pQueue: string
  /** Benchmark 9's clients: graphile-worker and the node-postgres it runs on, and ours, `@effect/sql(-pg)`. */
  readonly graphileWorker: string
  readonly nodePostgres: string
  readonly effectSql: string
  readonly effectSqlPg: string
  /** The library source measured: git commit, whether `src/` differs from it, and a digest of `src/`. */
  readonly source: string
  readonly gc: boolean
  /** 1-minute load average when the suite started and when it ended: other processes compete for the cores. */
  readonly loadStart: number
  readonly loadEnd: number
}

const root = new URL("../", import.meta.url)

const versionOf = (packageJson: string): string => {
  try {
    return (JSON.parse(readFileSync(new URL(packageJson, root), "utf8")) as { version: string }).version
  } catch {
    return "unknown"
  }
}

/** Which source was measured: `src/` may hold uncommitted work, so its digest identifies it. */
const sourceOf = (): string => {
  const src = new URL("src/", root)
  const hash = createHash("sha256")
  const files = readdirSync(src, { recursive: true, encoding: "utf8" }).filter((file) => file.endsWith(".ts")).sort()
  for (const file of files) hash.update(file).update(readFileSync(new URL(file, src)))
  const digest = hash.digest("hex").slice(0, 12)
  const git = (...args: Array<string>) => {
    try {
      return execFileSync("git", args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
    } catch {
      return undefined
    }
  }
  const head = git("rev-parse", "--short", "HEAD")
  const dirty = git("status", "--porcelain", "--", "src")
  const state = head === undefined ? "not a git checkout" : `commit ${head}${dirty ? " + uncommitted changes" : ""}`
  return `${state}; src/ digest ${digest}`
}

/** Describes this machine and process; call `loadStart` before the suite and this after it. */
export const environment = (loadStart: number): Environment => {
  const cpus = os.cpus()
  return {
    date: new Date().toISOString(),
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cpuCount: cpus.length,
    memoryGb: os.totalmem() / 1024 ** 3,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    effect: versionOf("node_modules/effect/package.json"),
    library: versionOf("package.json"),
    tinybench: versionOf("node_modules/tinybench/package.json"),
    pQueue: versionOf("node_modules/p-queue/package.json"),
    graphileWorker: versionOf("node_modules/graphile-worker/package.json"),
    nodePostgres: versionOf("node_modules/pg/package.json"),
    effectSql: versionOf("node_modules/@effect/sql/package.json"),
    effectSqlPg: versionOf("node_modules/@effect/sql-pg/package.json"),
    source: sourceOf(),
    gc: gcAvailable(),
    loadStart,
    loadEnd: os.loadavg()[0]!
  }
}

/** One line of the results: a figure of a benchmark, with its target and verdict when the issue sets one. */
export interface Row {
  readonly benchmark: string
  readonly figure: string
  readonly value: string
  readonly target: string
  readonly verdict: string
}

/** A target of the project, evaluated. */
export interface Target {
  readonly target: string
  readonly measured: string
  readonly met: boolean
  readonly by: string
}

const atMost = (value: number, limit: number): { met: boolean; by: string } =>
  value <= limit
    ? { met: true, by: `${fmt((1 - value / limit) * 100, 0)}% under the limit` }
    : { met: false, by: `${fmt((value / limit - 1) * 100, 0)}% over the limit` }

/** The ratio limits of benchmark 1: the tight loop with no listener and with one, and the yielding shape. */
export const OverheadLimits = { tight: 1.25, tightListener: 1.5, yielding: 1.1 } as const

const ratioMeasured = (ratio: Ratio, overhead: OverheadResult, numerator: string, denominator: string) =>
  `${fmt(ratio.wall)}x (CPU time: ${fmt(ratio.cpu)}x; peak in flight ${
    (overhead.peakInFlight[numerator] ?? Number.NaN).toLocaleString("en")
  } vs ${(overhead.peakInFlight[denominator] ?? Number.NaN).toLocaleString("en")})`

/** The three targets of benchmark 1. */
const overheadTargets = (overhead: OverheadResult): readonly [Target, Target, Target] => [
  {
    target: `\`track\` ≤ ${OverheadLimits.tight}x \`FiberSet.run\` per task, tight loop, no listener`,
    measured: ratioMeasured(overhead.ratioTrack, overhead, Variants.track0, Variants.fiberSet),
    ...atMost(overhead.ratioTrack.wall, OverheadLimits.tight)
  },
  {
    target: `\`track\` ≤ ${OverheadLimits.tightListener}x \`FiberSet.run\` per task, tight loop, one listener`,
    measured: ratioMeasured(overhead.ratioTrackListener, overhead, Variants.track1, Variants.fiberSet),
    ...atMost(overhead.ratioTrackListener.wall, OverheadLimits.tightListener)
  },
  {
    target: `\`track\` ≤ ${
      fmt(OverheadLimits.yielding)
    }x \`FiberSet.run\` per task, yielding every ${YieldEvery} tasks, no listener`,
    measured: ratioMeasured(overhead.ratioTrackYield, overhead, Variants.track0Yield, Variants.fiberSetYield),
    ...atMost(overhead.ratioTrackYield.wall, OverheadLimits.yielding)
  }
]

const memoryTarget = (memory: MemoryResult): Target => ({
  target: "In-flight memory per tracked task ≤ 1.25x a bare `FiberSet` fiber",
  measured: `${fmt(memory.ratio)}x (${fmt(memory.trackBytesPerTask, 0)} B vs ${fmt(memory.fiberSetBytesPerTask, 0)} B)`,
  ...atMost(memory.ratio, 1.25)
})

const heapTarget = (throughput: ThroughputResult): Target => ({
  target: `Heap after ${throughput.config.tasks.toLocaleString("en")} tasks within 5% of the heap before`,
  measured: `${throughput.growthPercent >= 0 ? "+" : ""}${fmt(throughput.growthPercent)}% (${
    mb(throughput.heapBefore)
  } MB → ${mb(throughput.heapAfter)} MB)`,
  ...atMost(Math.abs(throughput.growthPercent), 5)
})

const stopTarget = (shutdown: ShutdownResult): Target => ({
  target: "`stop` returns within 1 ms of the last task ending",
  measured: `${fmt(shutdown.fromLastTaskMs, 3)} ms (median of ${shutdown.runs.length})`,
  ...atMost(shutdown.fromLastTaskMs, 1)
})

/** The limit of benchmark 7: a job through the worker costs at most this many times a bare `ctx.track` task. */
export const JobsLimit = 2

const jobsPerSecond = (jobs: JobsResult, name: string) => fmt(jobs.jobsPerSecond[name] ?? Number.NaN, 0)

/** What the worker's yield to the event loop costs in throughput, from the paired ratios of one run. */
const yieldCost = (ratio: JobsRatio): string => {
  const loss = (1 - ratio.noYield.wall / ratio.wall) * 100
  return loss >= 0
    ? `the yield costs ${fmt(loss, 1)}% of the throughput`
    : `no cost of the yield measured (the worker with it was ${fmt(-loss, 1)}% faster: noise)`
}

/** Benchmark 7's target at one concurrency. */
const jobsTarget = (jobs: JobsResult, ratio: JobsRatio): Target => {
  const names = JobsVariants(ratio.concurrency)
  return {
    target:
      `A job through \`JobWorker\` + \`MemoryJobStore\` ≤ ${JobsLimit}x a bare \`ctx.track\` task, concurrency ${ratio.concurrency}`,
    measured: `${fmt(ratio.wall)}x (CPU time: ${fmt(ratio.cpu)}x; ${jobsPerSecond(jobs, names.worker)} vs ${
      jobsPerSecond(jobs, names.track)
    } jobs/s)`,
    ...atMost(ratio.wall, JobsLimit)
  }
}

const jobsHeapTarget = (memory: JobsMemoryResult): Target => ({
  target: `Heap after ${
    memory.config.jobs.toLocaleString("en")
  } jobs through \`JobWorker\` within 5% of the heap before`,
  measured: `${memory.growthPercent >= 0 ? "+" : ""}${fmt(memory.growthPercent)}% (${mb(memory.heapBefore)} MB → ${
    mb(memory.heapAfter)
  } MB)`,
  ...atMost(Math.abs(memory.growthPercent), 5)
})

const atLeast = (value: number, floor: number): { met: boolean; by: string } =>
  value >= floor
    ? { met: true, by: `${fmt((value / floor - 1) * 100, 0)}% over the floor` }
    : {
      met: false,
      by: Number.isFinite(value) ? `${fmt((1 - value / floor) * 100, 0)}% under the floor` : "not measured"
    }

/** Benchmark 9's floor for a bulk enqueue (`enqueueMany` of `bulkJobs` jobs in one call), in jobs/s. */
export const PgBulkFloor = 50_000

/** Benchmark 9's latency limits for our worker with its defaults, in ms. */
export const PgLatencyLimits = { p50: 10, p99: 50 } as const

const pgJobsPerSecond = (pg: PgResult, name: string) => fmt(pg.jobsPerSecond[name] ?? Number.NaN, 0)

const pgRatioMeasured = (pg: PgResult, ratio: PgRatio, ours: string, theirs: string) =>
  `${fmt(ratio.wall)}x (${pgJobsPerSecond(pg, ours)} vs ${
    pgJobsPerSecond(pg, theirs)
  } jobs/s; CPU time of this process: ${fmt(ratio.cpu)}x)`

/**
 * Benchmark 9's five targets: throughput against graphile-worker, defaults and batched; latency p50 and p99; bulk
 * enqueue.
 */
const pgTargets = (pg: PgResult): readonly [Target, Target, Target, Target, Target] => {
  const jobs = `${pg.config.jobs.toLocaleString("en")} no-op jobs, concurrency ${pg.config.concurrency}`
  const latency: LatencyResult | undefined = pg.latency[PgVariants.ours]
  const latencyMeasured = (value: number | undefined) =>
    latency === undefined ? "not measured" : `${fmt(value ?? Number.NaN)} ms (${latency.samples} jobs)`
  return [
    {
      target: `\`JobWorker\` + \`PgJobStore\` with its defaults ≥ graphile-worker with its defaults, jobs/s (${jobs})`,
      measured: pgRatioMeasured(pg, pg.ratios.defaults, PgVariants.ours, PgVariants.graphile),
      ...atLeast(pg.ratios.defaults.wall, 1)
    },
    {
      target: `\`JobWorker\` + \`PgJobStore\` batched ≥ graphile-worker batched, jobs/s (${jobs})`,
      measured: pgRatioMeasured(pg, pg.ratios.batched, PgVariants.oursBatched, PgVariants.graphileBatched),
      ...atLeast(pg.ratios.batched.wall, 1)
    },
    {
      target:
        `Enqueue-to-start latency p50 ≤ ${PgLatencyLimits.p50} ms, \`PgJobStore\` defaults, idle worker listening`,
      measured: latencyMeasured(latency?.p50),
      ...atMost(latency?.p50 ?? Number.NaN, PgLatencyLimits.p50)
    },
    {
      target:
        `Enqueue-to-start latency p99 ≤ ${PgLatencyLimits.p99} ms, \`PgJobStore\` defaults, idle worker listening`,
      measured: latencyMeasured(latency?.p99),
      ...atMost(latency?.p99 ?? Number.NaN, PgLatencyLimits.p99)
    },
    {
      target: `\`enqueueMany\` of ${pg.config.bulkJobs.toLocaleString("en")} jobs in one call ≥ ${
        PgBulkFloor.toLocaleString("en")
      } jobs/s`,
      measured: `${fmt(pg.bulk.jobsPerSecond.ours, 0)} jobs/s (graphile-worker's \`addJobs\`: ${
        fmt(pg.bulk.jobsPerSecond.graphile, 0)
      }; ${fmt(pg.bulk.ratio)}x)`,
      ...atLeast(pg.bulk.jobsPerSecond.ours, PgBulkFloor)
    }
  ]
}

/** Benchmark 10's limits, in ms (medians of single calls at `rows` jobs), and the drain ratio's floor. */
export const PgScaleLimits = { claim: 10, deadLetters: 10, stats: 20, drainRatio: 0.8 } as const

const callText = (times: CallTimes) => `${fmt(times.median)} ms median, ${fmt(times.max)} ms max`

/** Benchmark 10's targets: claims from a small or an empty queue, dead letters, stats; the drain without statistics. */
const pgScaleTargets = (scale: PgScaleResult): ReadonlyArray<Target> => {
  const rows = scale.config.rows.toLocaleString("en")
  const call = (what: string, times: CallTimes, limit: number): Target => ({
    target: `${what} ≤ ${limit} ms`,
    measured: callText(times),
    ...atMost(times.median, limit)
  })
  const ratio = drainRatio(scale)
  const beside = besideRatio(scale)
  return [
    call(`A claim from a small queue beside ${rows} ready jobs of another`, scale.claimSmallQueue, PgScaleLimits.claim),
    call(`A claim that finds its queue empty beside ${rows} ready jobs`, scale.claimEmptyQueue, PgScaleLimits.claim),
    call(`\`deadLetters()\` among ${rows} dead letters`, scale.deadLetters, PgScaleLimits.deadLetters),
    call(`\`stats\` at ${rows} ready jobs and ${rows} dead letters`, scale.stats, PgScaleLimits.stats),
    {
      target:
        `A drain right after single enqueues on a never-analyzed table within 20% of one after a bulk enqueue and ` +
        `\`ANALYZE\``,
      measured: `${fmt(ratio)}x (${fmt(median(scale.drainUnanalyzed), 0)} vs ${
        fmt(median(scale.drainAnalyzed), 0)
      } jobs/s)`,
      ...atLeast(ratio, PgScaleLimits.drainRatio)
    },
    {
      target: `A worker serving one queue drains it beside ${rows} ready jobs of another within 20% of its rate on ` +
        `an empty schema`,
      measured: `${fmt(beside)}x (${fmt(median(scale.drainBeside), 0)} vs ${
        fmt(median(scale.drainBesideEmpty), 0)
      } jobs/s)`,
      ...atLeast(beside, PgScaleLimits.drainRatio)
    }
  ]
}

/** The targets of the project, from the figures of one run: those of the benchmarks that ran. */
export const targets = (result: PartialSuiteResult): ReadonlyArray<Target> => [
  ...(result.overhead ? overheadTargets(result.overhead) : []),
  ...(result.memory ? [memoryTarget(result.memory)] : []),
  ...(result.throughput ? [heapTarget(result.throughput)] : []),
  ...(result.shutdown ? [stopTarget(result.shutdown)] : []),
  ...(result.jobs ? result.jobs.ratios.map((ratio) => jobsTarget(result.jobs!, ratio)) : []),
  ...(result.jobsMemory ? [jobsHeapTarget(result.jobsMemory)] : []),
  ...(result.pg ? pgTargets(result.pg) : []),
  ...(result.pgScale ? pgScaleTargets(result.pgScale) : [])
]

const verdict = (target: Target): string => `${target.met ? "met" : "NOT MET"} (${target.by})`

/** Every figure of a run, in the order of the issue; only the benchmarks that ran. */
export const rows = (result: PartialSuiteResult): ReadonlyArray<Row> => {
  const { contention, events, jobs, jobsMemory, memory, overhead, pg, pgScale, shutdown, throughput } = result
  const out: Array<Row> = []
  const add = (benchmark: string, figure: string, value: string, target = "", verdictText = "") =>
    out.push({ benchmark, figure, value, target, verdict: verdictText })
  const runs = (values: ReadonlyArray<number>, digits: number) => values.map((value) => fmt(value, digits)).join(", ")

  if (overhead) {
    const [tight, tightListener, yielding] = overheadTargets(overhead)
    const b1 = `1. per-task overhead (${overhead.config.tasks.toLocaleString("en")} tasks)`
    for (const name of Object.values(Variants)) {
      add(
        b1,
        name,
        `${fmt(overhead.usPerTask[name]!)} µs/task (CPU ${fmt(overhead.cpuUsPerTask[name]!)} µs), peak ${
          (overhead.peakInFlight[name] ?? Number.NaN).toLocaleString("en")
        } in flight`
      )
    }
    add(
      b1,
      "track / FiberSet.run, tight loop, 0 listeners",
      tight.measured,
      `≤ ${OverheadLimits.tight}x`,
      verdict(tight)
    )
    add(
      b1,
      "track / FiberSet.run, tight loop, 1 listener",
      tightListener.measured,
      `≤ ${OverheadLimits.tightListener}x`,
      verdict(tightListener)
    )
    add(
      b1,
      `track / FiberSet.run, yield every ${YieldEvery}, 0 listeners`,
      yielding.measured,
      `≤ ${fmt(OverheadLimits.yielding)}x`,
      verdict(yielding)
    )
    add(
      b1,
      `track / FiberSet.run, yield every ${YieldEvery}, 1 listener`,
      ratioMeasured(overhead.ratioTrackListenerYield, overhead, Variants.track1Yield, Variants.fiberSetYield)
    )
  }

  if (throughput) {
    const b2 = `2. throughput at scale (${throughput.config.tasks.toLocaleString("en")} tasks)`
    add(b2, "tasks/s (batches only)", fmt(throughput.tasksPerSecond, 0))
    add(b2, "heap before", `${mb(throughput.heapBefore)} MB`)
    const during = throughput.heapDuring.map((sample) => sample.heapUsed)
    if (during.length > 0) {
      add(b2, "heap during (min–max)", `${mb(Math.min(...during))}–${mb(Math.max(...during))} MB`)
    }
    add(b2, "heap after", `${mb(throughput.heapAfter)} MB`)
    const heap = heapTarget(throughput)
    add(b2, "growth", heap.measured, "within 5%", verdict(heap))
    add(b2, "retained per completed task", `${fmt(throughput.bytesPerTask)} B`)
  }
  const listened = result.throughputListener
  if (listened) {
    const b2l = `2. throughput at scale, 1 listener (${listened.config.tasks.toLocaleString("en")} tasks)`
    add(b2l, "tasks/s (batches only)", fmt(listened.tasksPerSecond, 0))
    add(
      b2l,
      "heap before → after",
      `${mb(listened.heapBefore)} MB → ${mb(listened.heapAfter)} MB (${listened.growthPercent >= 0 ? "+" : ""}${
        fmt(listened.growthPercent)
      }%)`
    )
    add(b2l, "retained per completed task", `${fmt(listened.bytesPerTask)} B`)
  }

  if (memory) {
    const b3 = `3. memory per in-flight task (${memory.config.tasks.toLocaleString("en")} tasks)`
    add(b3, "ctx.track", `${fmt(memory.trackBytesPerTask, 0)} B/task (runs: ${runs(memory.trackRuns, 0)})`)
    add(b3, "FiberSet.run", `${fmt(memory.fiberSetBytesPerTask, 0)} B/task (runs: ${runs(memory.fiberSetRuns, 0)})`)
    const target = memoryTarget(memory)
    add(b3, "ratio", target.measured, "≤ 1.25x", verdict(target))
  }

  if (shutdown) {
    const b4 = `4. shutdown latency (${shutdown.config.tasks.toLocaleString("en")} tasks in flight)`
    const target = stopTarget(shutdown)
    add(b4, "last task's end → stop returns", target.measured, "≤ 1 ms", verdict(target))
    add(b4, "last task's end → stop returns, each run", `${runs(shutdown.runs.map((run) => run.fromLastTask), 3)} ms`)
    add(b4, "Deferred completed → stop returns", `${fmt(shutdown.fromReleaseMs)} ms (median)`)
  }

  if (events) {
    const b5 = `5. events`
    for (const emit of events.emit) {
      add(
        b5,
        `emit, ${emit.subscribers} subscriber(s)`,
        `${fmt(emit.usPerEvent)} µs/event, ${fmt(emit.eventsPerSecond, 0)} events/s, ${
          fmt(emit.deliveredFraction * 100, 1)
        }% delivered`
      )
    }
    add(b5, "track, no subscriber", `${fmt(events.trackUs)} µs/task`)
    add(b5, "track, 1 listener", `${fmt(events.trackListenerUs)} µs/task`)
    add(b5, "track, stalled subscriber", `${fmt(events.trackStalledUs)} µs/task`)
    add(b5, "stalled / no subscriber", `${fmt(events.stalledRatio)}x`, "stalled must not slow track")
    add(b5, "stalled / 1 listener", `${fmt(events.stalledVsListenerRatio)}x`)
  }

  if (contention) {
    const b6 = `6. contention (${contention.config.callers.toLocaleString("en")} callers)`
    add(b6, "tasks/s (first track → stop returned)", fmt(contention.tasksPerSecond, 0))
    add(
      b6,
      "tasks admitted / ended / expected",
      `${contention.admitted} / ${contention.ended} / ${contention.expected} (${contention.rejected} rejected)`
    )
    add(
      b6,
      "flips, mean interval",
      `${contention.flips} flips, ${
        fmt(contention.meanFlipIntervalMs)
      } ms apart (asked: ${contention.config.flipEveryMs} ms)`
    )
    add(b6, "track calls made while paused", `${contention.whilePaused}`)
    add(b6, "completed", `${contention.finalState} in ${fmt(contention.totalMs / 1000)} s`)
  }

  if (jobs) {
    const b7 = `7. jobs throughput (${jobs.config.jobs.toLocaleString("en")} jobs per batch)`
    for (const ratio of jobs.ratios) {
      const names = JobsVariants(ratio.concurrency)
      for (const name of Object.values(names)) {
        add(
          b7,
          name,
          `${jobsPerSecond(jobs, name)} jobs/s (${fmt(jobs.usPerJob[name]!)} µs/job, CPU ${
            fmt(jobs.cpuUsPerJob[name]!)
          } µs)`
        )
      }
      const target = jobsTarget(jobs, ratio)
      add(
        b7,
        `JobWorker / ctx.track per job, concurrency ${ratio.concurrency}`,
        target.measured,
        `≤ ${JobsLimit}x`,
        verdict(target)
      )
      add(
        b7,
        `JobWorker without its yield to the event loop / ctx.track per job, concurrency ${ratio.concurrency}`,
        `${fmt(ratio.noYield.wall)}x (CPU time: ${fmt(ratio.noYield.cpu)}x; ${
          jobsPerSecond(jobs, names.workerNoYield)
        } jobs/s; ${yieldCost(ratio)})`
      )
    }
    add(
      b7,
      `store.enqueue of ${jobs.config.jobs.toLocaleString("en")} jobs in one call (untimed setup)`,
      `${fmt(jobs.enqueueUsPerJob)} µs/job, ${fmt(1e6 / jobs.enqueueUsPerJob, 0)} jobs/s`
    )
    add(
      b7,
      "jobs run / left in the stores / left in flight",
      `${
        Object.values(jobs.completed).reduce((a, b) => a + b, 0).toLocaleString("en")
      } / ${jobs.leftInStore} / ${jobs.leftInFlight}`
    )
  }

  if (jobsMemory) {
    const b8 = `8. jobs memory (${jobsMemory.config.jobs.toLocaleString("en")} jobs)`
    add(
      b8,
      `jobs/s (${
        jobsMemory.config.batch.toLocaleString("en")
      }-job batches, enqueue and drain, concurrency ${jobsMemory.config.concurrency})`,
      fmt(jobsMemory.jobsPerSecond, 0)
    )
    add(b8, "heap before", `${mb(jobsMemory.heapBefore)} MB`)
    const during = jobsMemory.heapDuring.map((sample) => sample.heapUsed)
    if (during.length > 0) {
      add(b8, "heap during (min–max)", `${mb(Math.min(...during))}–${mb(Math.max(...during))} MB`)
    }
    add(b8, "heap after", `${mb(jobsMemory.heapAfter)} MB`)
    const heap = jobsHeapTarget(jobsMemory)
    add(b8, "growth", heap.measured, "within 5%", verdict(heap))
    add(b8, "retained per finished job", `${fmt(jobsMemory.bytesPerJob)} B`)
    add(
      b8,
      "jobs run / left in the store / left in flight",
      `${jobsMemory.completed.toLocaleString("en")} / ${jobsMemory.leftInStore} / ${jobsMemory.leftInFlight}`
    )
  }

  if (pg) {
    const b9 = `9. PostgreSQL jobs (${
      pg.config.jobs.toLocaleString("en")
    } jobs per batch, concurrency ${pg.config.concurrency})`
    const [defaults, batched, p50, p99, bulk] = pgTargets(pg)
    add(b9, "PostgreSQL server", `${pg.serverVersion}; ${pgSettingsText(pg)}`)
    for (const name of Object.values(PgVariants)) {
      if (!pg.variants.includes(name)) {
        add(b9, name, "not run")
        continue
      }
      const startup = pg.startupMs[name]
      add(
        b9,
        name,
        `${pgJobsPerSecond(pg, name)} jobs/s (${fmt(pg.usPerJob[name]!)} µs/job, CPU ${fmt(pg.cpuUsPerJob[name]!)} µs)${
          startup === undefined ? "" : `; run() resolved after ${fmt(startup, 1)} ms`
        }`
      )
    }
    add(b9, "ours / graphile-worker, defaults", defaults.measured, "≥ 1x", verdict(defaults))
    add(b9, "ours / graphile-worker, batched", batched.measured, "≥ 1x", verdict(batched))
    for (const name of pg.variants) {
      add(
        b9,
        `bulk enqueue of ${
          pg.config.jobs.toLocaleString("en")
        } jobs in one call (\`enqueueMany\`, graphile-worker's \`addJobs\`; untimed setup), ${name}`,
        `${fmt(pg.enqueueUsPerJob[name]!)} µs/job, ${fmt(1e6 / pg.enqueueUsPerJob[name]!, 0)} jobs/s`
      )
    }
    const bulkCalls = (name: string) =>
      (pg.bulk.samples[name] ?? []).map((ms) => fmt(pg.config.bulkJobs / ms * 1000, 0)).join(", ")
    add(
      b9,
      `bulk enqueue of ${
        pg.config.bulkJobs.toLocaleString("en")
      } jobs in one call, timed, ${pg.config.bulkRounds} interleaved rounds: ours / graphile-worker's \`addJobs\``,
      bulk.measured,
      `≥ ${PgBulkFloor.toLocaleString("en")} jobs/s`,
      verdict(bulk)
    )
    add(
      b9,
      "bulk enqueue, jobs/s by round: ours / graphile-worker's",
      `${bulkCalls(PgVariants.ours)} / ${bulkCalls(PgVariants.graphile)}`
    )
    for (const name of pg.variants) {
      const latency = pg.latency[name]
      if (latency === undefined) continue
      const ours = name === PgVariants.ours
      add(
        b9,
        `enqueue → start, ${name}`,
        latencyText(latency),
        ours ? `p50 ≤ ${PgLatencyLimits.p50} ms, p99 ≤ ${PgLatencyLimits.p99} ms` : "",
        ours ? `p50 ${verdict(p50)}; p99 ${verdict(p99)}` : ""
      )
    }
    add(
      b9,
      "jobs run / left in the tables",
      `${Object.values(pg.completed).reduce((a, b) => a + b, 0).toLocaleString("en")} / ${pg.leftInStore}`
    )
  }

  if (pgScale) {
    const b10 = `10. PostgreSQL at scale (${pgScale.config.rows.toLocaleString("en")} ready jobs and dead letters)`
    const [small, empty, dead, stats, drain, beside] = pgScaleTargets(pgScale)
    add(b10, "claim of the one job of a small queue", small!.measured, `≤ ${PgScaleLimits.claim} ms`, verdict(small!))
    add(
      b10,
      "claim from an empty queue (an idle poll)",
      empty!.measured,
      `≤ ${PgScaleLimits.claim} ms`,
      verdict(empty!)
    )
    add(b10, "claim of 10 jobs at the head of the big queue", callText(pgScale.claimBigQueueHead))
    add(b10, "`deadLetters()`, the newest 100", dead!.measured, `≤ ${PgScaleLimits.deadLetters} ms`, verdict(dead!))
    add(b10, "`deadLetters` of one queue of ten", callText(pgScale.deadLettersOfQueue))
    add(b10, "`stats`", stats!.measured, `≤ ${PgScaleLimits.stats} ms`, verdict(stats!))
    add(b10, "prune of dead letters past their retention", `${fmt(pgScale.prunePerSecond, 0)} rows/s (1,000 per call)`)
    add(
      b10,
      `drain of ${pgScale.config.drainJobs.toLocaleString("en")} jobs, jobs/s by round: single enqueues, never ` +
        `analyzed / bulk enqueue, analyzed`,
      `${pgScale.drainUnanalyzed.map((value) => fmt(value, 0)).join(", ")} / ${
        pgScale.drainAnalyzed.map((value) => fmt(value, 0)).join(", ")
      }`,
      "≥ 0.8x",
      verdict(drain!)
    )
    add(
      b10,
      `drain of ${pgScale.config.drainJobs.toLocaleString("en")} jobs of a queue served alone, jobs/s by round: ` +
        `beside the big one / on an empty schema, alternating`,
      `${pgScale.drainBeside.map((value) => fmt(value, 0)).join(", ")} / ${
        pgScale.drainBesideEmpty.map((value) => fmt(value, 0)).join(", ")
      }`,
      "≥ 0.8x",
      verdict(beside!)
    )
  }
  return out
}

const latencyText = (latency: LatencyResult): string =>
  `p50 ${fmt(latency.p50)} ms, p90 ${fmt(latency.p90)} ms, p99 ${fmt(latency.p99)} ms, max ${
    fmt(latency.max)
  } ms (${latency.samples} jobs)`

const pgSettingsText = (pg: PgResult): string => pg.settings.map(({ name, value }) => `${name}=${value}`).join(", ")

/** An aligned plain-text table. */
const alignedTable = (header: ReadonlyArray<string>, body: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, i) => Math.max(title.length, ...body.map((line) => (line[i] ?? "").length)))
  const render = (line: ReadonlyArray<string>) =>
    widths.map((width, i) => (line[i] ?? "").padEnd(width)).join(" │ ").trimEnd()
  const rule = widths.map((width) => "─".repeat(width)).join("─┼─")
  return [render(header), rule, ...body.map(render)].join("\n")
}

/** The rows as an aligned plain-text table; a benchmark's name is shown on its first row only. */
export const textTable = (all: ReadonlyArray<Row>): string => {
  let previous = ""
  const body = all.map((line) => {
    const benchmark = line.benchmark === previous ? "" : line.benchmark
    previous = line.benchmark
    return [benchmark, line.figure, line.value, line.target, line.verdict]
  })
  return alignedTable(["Benchmark", "Figure", "Value", "Target", "Result"], body)
}

/** The targets as an aligned plain-text table. */
export const targetsTextTable = (evaluated: ReadonlyArray<Target>): string =>
  alignedTable(
    ["Target", "Measured", "Result"],
    evaluated.map((target) => [target.target.replace(/`/g, ""), target.measured, verdict(target)])
  )

/** Benchmark 1's wall-clock time of each measured round, by variant, as an aligned plain-text table. */
export const overheadRoundsTextTable = (overhead: OverheadResult): string =>
  alignedTable(
    ["Variant", `ms per batch of ${overhead.config.tasks.toLocaleString("en")} tasks, by round`],
    Object.values(Variants).map((name) => [name, (overhead.samples[name] ?? []).map((ms) => fmt(ms, 0)).join(", ")])
  )

const jobsVariantNames = (jobs: JobsResult): Array<string> =>
  jobs.config.concurrencies.flatMap((concurrency) => Object.values(JobsVariants(concurrency)))

/** Benchmark 7's wall-clock time of each measured round, by variant, as an aligned plain-text table. */
export const jobsRoundsTextTable = (jobs: JobsResult): string =>
  alignedTable(
    ["Variant", `ms per batch of ${jobs.config.jobs.toLocaleString("en")} jobs, by round`],
    jobsVariantNames(jobs).map((name) => [name, (jobs.samples[name] ?? []).map((ms) => fmt(ms, 0)).join(", ")])
  )

/** Benchmark 9's wall-clock time of each measured round, by variant, as an aligned plain-text table. */
export const pgRoundsTextTable = (pg: PgResult): string =>
  alignedTable(
    ["Variant", `ms per batch of ${pg.config.jobs.toLocaleString("en")} jobs, by round`],
    pg.variants.map((name) => [name, (pg.samples[name] ?? []).map((ms) => fmt(ms, 0)).join(", ")])
  )

const cell = (text: string) => text.replace(/\|/g, "\\|")

const markdownTable = (header: ReadonlyArray<string>, body: ReadonlyArray<ReadonlyArray<string>>): string =>
  [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...body.map((line) => `| ${line.map(cell).join(" | ")} |`)
  ].join("\n")

/** `docs/benchmarks.md`. */
export const markdown = (result: SuiteResult, config: SuiteConfig, env: Environment): string => {
  const all = rows(result)
  const sections = [...new Set(all.map((row) => row.benchmark))]
  const { jobs, overhead, pg } = result
  return `# Benchmarks

Generated by \`npm run bench\` (\`bench/run.ts\`) on ${env.date.slice(0, 10)}. Every figure below comes from one run
of the suite, which took ${fmt(result.seconds, 0)} s; re-run it to refresh this page.

## Machine and versions

| | |
| --- | --- |
| Date | ${env.date} |
| CPU | ${env.cpuModel}, ${env.cpuCount} logical cores |
| Memory | ${fmt(env.memoryGb, 1)} GB |
| OS | ${env.os} |
| Node | ${env.node} (\`--expose-gc\`: ${env.gc ? "yes" : "no, heap figures are not after a forced GC"}) |
| effect | ${env.effect} |
| effect-worker-context | ${env.library} (${env.source}) |
| Harness | tinybench ${env.tinybench}; comparison p-queue ${env.pQueue} |
| PostgreSQL (benchmark 9) | ${pg.serverVersion}, a throwaway server on this machine (\`test/pgServer.ts\`) |
| PostgreSQL settings (benchmark 9) | ${pgSettingsText(pg)} |
| Clients (benchmark 9) | ours: @effect/sql-pg ${env.effectSqlPg} (@effect/sql ${env.effectSql}); graphile-worker ${env.graphileWorker} on pg (node-postgres) ${env.nodePostgres} |
| Load average (1 min) | ${fmt(env.loadStart)} at the start, ${fmt(env.loadEnd)} at the end |

The load average counts every process on the machine: above the core count, other processes competed with the
suite for the CPU, and absolute times (µs, tasks/s) are inflated. Ratios are taken between variants measured side by
side and hold better; the CPU-time columns (process CPU time, all threads) are less sensitive to competition than
wall-clock time.

## Targets

${
    markdownTable(
      ["Target", "Measured", "Result"],
      targets(result).map((
        target
      ) => [target.target, target.measured, `${target.met ? "met" : "**not met**"}: ${target.by}`])
    )
  }

## Figures

${
    sections.map((section) =>
      `### ${section}\n\n${
        markdownTable(
          ["Figure", "Value", "Target", "Result"],
          all.filter((row) => row.benchmark === section).map((row) => [row.figure, row.value, row.target, row.verdict])
        )
      }`
    ).join("\n\n")
  }

Per-round wall-clock times of benchmark 1 (ms per batch of ${overhead.config.tasks.toLocaleString("en")} tasks):

${
    markdownTable(
      ["Variant", "Rounds"],
      Object.values(Variants).map((name) => [
        name,
        (overhead.samples[name] ?? []).map((ms) => fmt(ms, 0)).join(", ")
      ])
    )
  }

Per-round wall-clock times of benchmark 7 (ms per batch of ${jobs.config.jobs.toLocaleString("en")} jobs):

${
    markdownTable(
      ["Variant", "Rounds"],
      jobsVariantNames(jobs).map((name) => [name, (jobs.samples[name] ?? []).map((ms) => fmt(ms, 0)).join(", ")])
    )
  }

Per-round wall-clock times of benchmark 9 (ms per batch of ${pg.config.jobs.toLocaleString("en")} jobs):

${
    markdownTable(
      ["Variant", "Rounds"],
      pg.variants.map((name) => [name, (pg.samples[name] ?? []).map((ms) => fmt(ms, 0)).join(", ")])
    )
  }

Time per step: ${result.stepSeconds.map(({ seconds, step }) => `${step} ${fmt(seconds, 0)} s`).join("; ")}.

## Method

- **Harness.** tinybench runs the interleaved benchmarks (1, 5 and 7): each round is a \`Bench\` with one iteration
  per variant, an iteration being a whole batch (${config.overhead.tasks.toLocaleString("en")} tasks in benchmark 1);
  the order of the variants rotates every round, a forced GC precedes every batch (outside the timed call), and
  ${config.overhead.warmupRounds} warm-up round(s) are discarded. Figures are medians over
  ${config.overhead.rounds} rounds; a ratio is the median of the per-round ratios, so it compares neighbours in time.
- **Tasks.** Every task yields once (\`Effect.yieldNow()\`, or \`await Promise.resolve()\` for p-queue and the Promise
  counter) and then ticks a counter; a batch ends when the counter reaches the batch size, the same way for every
  variant. The submitting loop runs in one fiber (\`for … yield* ctx.track(task)\`) or, for p-queue and Promises, in a
  plain loop. Metrics and task spans are on, as shipped.
- **Submit shapes.** In the tight loop the submitting fiber runs until the scheduler preempts it; in the yielding
  shape (\`ctx.track\` and \`FiberSet.run\` only) it also yields (\`Effect.yieldNow()\`) after every ${YieldEvery}
  tasks. Both shapes run in the same interleaved rounds. "Peak in flight" is the most tasks submitted and not yet
  ended at once, over all rounds, as the submitting fiber saw it.
- **Logs.** The suite runs with \`Logger.withMinimumLogLevel(Warning)\`: the context logs lifecycle transitions at
  \`Info\` (never per task), and printing them would interleave the output.
- **Heap.** \`heapUsed\` after \`global.gc()\` twice, with pending timers and microtasks settled first.
  Benchmark 2 takes its baseline after one warm-up batch (metric series, JIT). Benchmark 3 measures each variant
  ${config.memory.runs} time(s), alternating, after one discarded run each, and reports the median.
- **Shutdown.** \`stop\` is called first (the worker is \`Stopping\`, tasks keep waiting), then the shared
  \`Deferred\` is completed; each task notes the time as its last act, and the fiber that called \`stop\` notes the time
  \`stop\` returned. Median of ${config.shutdown.runs} runs on fresh contexts, after one discarded run.
- **Events.** Subscribers take with a plain loop over \`Queue.take\` (\`Effect.forever\` would yield to the scheduler
  after every event and fall behind); a round ends when every subscriber has seen a final marker event. "Delivered" is
  the share of the events that reached the subscribers (the hub slides: a subscriber more than
  \`eventBufferSize\` = 1024 events behind loses the oldest).
- **Contention.** Each caller is a worker loop: \`track\` a task, await it, ${config.contention.tasksPerCaller} times.
  The flipper polls the clock between \`yieldNow\`s, on a microtask-only scheduler: with a thousand busy fibers a
  timer (\`Effect.sleep\`) would not fire until they are done, so the achieved flip interval is reported next to the
  requested one.
- **Jobs throughput (7).** One job type, \`Job.make\`'s defaults (a 5-minute timeout, 25 attempts) with a payload
  \`{ n }\` that the worker decodes (\`Schema.Struct({ n: Schema.Number })\`); the handler is \`Effect.sync(tick)\`, a
  no-op that ticks the batch's countdown. Each worker variant has a \`MemoryJobStore\`, a \`WorkerContext\` and a
  \`JobWorker\` of its own, with a lease and a poll interval of 10 minutes, so its renewer (every lease / 3), reaper
  (lease / 2) and poller never fire during the benchmark: the store's wake-ups and the worker's own re-claims (a slot
  frees after a claim that filled every slot) drive it, as they would in a deployment. Its context is \`Paused\`
  between batches. Untimed, before each batch: ${config.jobs.jobs.toLocaleString("en")} \`NewJob\`s are built and
  enqueued in one \`store.enqueue\` call (timed on its own: the "store.enqueue" row), then the forced GC. Timed: from
  \`ctx.resume\` to the handler's ${config.jobs.jobs.toLocaleString("en")}th tick. Untimed, after: \`pause\`, and a
  wait until the worker holds no job (the last acknowledgements run after the last tick). "No yield to the event
  loop" is the same worker with its macrotask yield (every 1,024 jobs or 10 ms) turned off for the batch: what the
  yield costs. The bare loop is one fiber that, for each task,
  takes a permit of a semaphore of N (the concurrency) and \`ctx.track\`s a task that ticks and gives the permit
  back, with the track options the worker uses (\`{ label, whenPaused: "reject" }\`): at most N in flight, one
  dispatcher starting each task as a slot frees, as the worker's claim loop does, without the store, the lease,
  the decode, the timeout, the events and the job metrics. p-queue: \`new PQueue({ concurrency: N, autoStart: false
  })\`, the batch of functions (\`tick\`) added untimed, timed from \`start()\` to the last tick. The ratio
  \`JobWorker / ctx.track\` is the median of the per-round ratios; ${config.jobs.rounds} measured rounds after
  ${config.jobs.warmupRounds} warm-up round(s).
- **Jobs memory (8).** One store, context and worker (concurrency ${config.jobsMemory.concurrency}, the same job
  type, handler and timers), \`Running\` throughout. Each batch: ${config.jobsMemory.batch.toLocaleString("en")}
  \`NewJob\`s built (untimed), enqueued in one \`store.enqueue\`, then a wait for the last handler's tick and for
  the worker to hold no job. The heap (after forced GCs) is taken after one warm-up batch (the baseline: the store's
  heaps and maps have grown, metric series exist, code is compiled), between batches and after the last one;
  "jobs/s" counts the batches only (enqueue and drain).
- **PostgreSQL (9).** One throwaway PostgreSQL server (\`test/pgServer.ts\`) for the whole benchmark, ${
    config.pg.durable
      ? `with PostgreSQL's
  durability defaults put back (the test server turns \`fsync\`, \`synchronous_commit\` and \`full_page_writes\` off):
  every commit waits for its WAL flush, as in a deployment`
      : `with the test
  server's settings (\`fsync\`, \`synchronous_commit\` and \`full_page_writes\` off)`
  }; the settings above are read back from \`pg_settings\`. Each library has a database of its own
  (\`bench_graphile\`, \`bench_ewc\`), a pool of ${config.pg.poolSize} connections (graphile-worker's default
  \`maxPoolSize\`; a \`pg.Pool\` made once and passed as \`pgPool\`, so that no run opens connections) and runs
  ${config.pg.concurrency} jobs at once. Jobs are no-ops with a payload \`{ n }\`. graphile-worker "defaults" is
  \`run({ concurrency: ${config.pg.concurrency} })\` and nothing else (no local queue, completion one job at a time);
  "batched" adds its performance page's batching: \`localQueue: { size: ${GraphileBatching.localQueue.size} }\`
  (the pool fetches and locks up to ${GraphileBatching.localQueue.size} jobs at once and hands them out),
  \`completeJobBatchDelay: ${GraphileBatching.completeJobBatchDelay}\` and \`failJobBatchDelay: ${GraphileBatching.failJobBatchDelay}\`
  (the completions of one tick in one statement). Ours "defaults" is \`PgJobStore.make({ schema })\` and
  \`JobWorker.make({ handlers, concurrency: ${config.pg.concurrency} })\` with every other option at its default;
  "batched acks" is \`PgJobStore.make({ schema, batchAcks: true })\` (\`batchAcks\` is on by default, so it is
  the defaults said out loud: \`JobWorker\` has no option to claim more jobs than it has free slots, the counterpart
  of graphile-worker's local queue); "batchAcks: false" acknowledges each job in a statement of its own. Each of
  ours has a \`PgClient\` of its own and a schema of its own in \`bench_ewc\`. Untimed, before each batch: the job tables
  are truncated, ${config.pg.jobs.toLocaleString("en")} jobs are enqueued in one call (graphile-worker's
  \`addJobs\`, our \`enqueueMany\`; the "bulk enqueue" rows), the tables analyzed, then the forced GC. Timed: from
  starting the worker (graphile-worker's \`run()\`, migrations already applied, its start-up inside the timed call:
  the "run() resolved" figure; our paused context's \`resume\`) to the handler's ${
    config.pg.jobs.toLocaleString("en")
  }th
  call. Untimed, after: graphile-worker's \`runner.stop()\` (it waits for the jobs in flight and flushes its batched
  completions); our context paused and a wait until the worker holds no job (a job leaves it once acknowledged);
  then the job rows left are counted once the count stops falling, for up to 5 s (\`stop()\` can resolve a moment
  before graphile-worker's last completion is visible): the "left in the tables" figure, summed over every round and
  latency run. ${config.pg.rounds} measured rounds
  after ${config.pg.warmupRounds} warm-up round(s), the variants' order rotating every round; a ratio is the median of
  the per-round ratios of graphile-worker's time to ours. CPU time is this process's: the server's processes are not
  in it. **Latency:** after the rounds, for each variant in turn, the worker running and idle (its \`LISTEN\` up),
  ${config.pg.latencyWarmup + config.pg.latencySamples} single jobs are enqueued one at a time (graphile-worker's
  \`addJob\`, our \`Job.enqueue\`), each once the previous one started and ${config.pg.latencySpacingMs} ms later;
  the payload carries \`performance.timeOrigin + performance.now()\` taken just before the enqueue call, the handler
  subtracts it from its own; the first ${config.pg.latencyWarmup} are discarded. The issue measured
  graphile-worker at 2,011 jobs/s with its defaults and 19,355 jobs/s batched on 2 cores; the targets compare with
  graphile-worker measured here, in the same run, on the same server.
- **PostgreSQL at scale (10).** A throwaway server of its own, durability on. One \`PgJobStore\` (schema
  \`scale\`): ${config.pgScale.rows.toLocaleString("en")} ready jobs of one lane in queue \`bulk\` and as many dead
  letters in ten queues, inserted with \`generate_series\` (the count triggers run), then vacuumed and analyzed (at
  rest, as autovacuum leaves tables that stopped changing: its first pass over a million new rows would otherwise
  run beside the timed calls) and the counts folded. Each call is timed ${config.pgScale.samples} times, one at a time, on the store's own connections: a claim
  of the one job of queue \`work\` (enqueued, untimed, before each claim), a claim from the empty queue \`idle\`, a
  claim of 10 jobs at the head of \`bulk\`, \`deadLetters()\`, \`deadLetters({ queue })\` and \`stats\`. Then
  \`prune\` (dead letters 30 days old, retention 14 days) is called until ${
    config.pgScale.pruneRows.toLocaleString("en")
  } are gone. Last, drains of ${config.pgScale.drainJobs.toLocaleString("en")} jobs by a \`JobWorker\` with its
  defaults (concurrency 24): ${config.pgScale.drainRounds} into queue \`work\` beside the big queue (the pruned dead
  letters vacuumed first), by a worker that serves only \`work\`, each followed by one after a bulk enqueue on a
  fresh, empty schema (the machine's speed drifts over minutes: alternated, the two kinds of drain see the same
  drift); then, the big schema dropped, ${config.pgScale.drainRounds} pairs, each on a fresh schema: one
  after single enqueues (64 calls at a time) on a table autovacuum may not analyze, one after a bulk enqueue and an
  \`ANALYZE\`. The ratios are of the medians, each against the drains after a bulk enqueue it alternated with.

## Analysis

Written for the design, not for one run: the figures above move by a few percent between runs on this machine, and
the reasoning below says what they are made of. [docs/design.md](design.md) says why the core is built this way.

**Where a task's time goes.** Every Effect variant here spends 40–50% of its CPU time in the garbage collector
(\`node --cpu-prof\`): a fiber is a few kilobytes of short-lived objects (its fiber refs are copied from the
caller by any fork), and a scavenge costs in proportion to what is still alive. So what decides the ratio is how many
tasks are alive at once, and then what \`track\` allocates beyond a bare fork:

| per task | why it is there |
| --- | --- |
| one copy of the caller's context, with the owner marker, the task's own \`WorkerContext\` and the task span | \`stop\`/\`awaitShutdown\` know they run inside a task; handlers get their own worker; spans nest under the task |
| a task span, \`WorkerContext.task\` | each task runs in a span; under Effect's built-in tracer it is a \`TaskSpan\` that builds its ids and attributes only when read |
| five metric updates, two clock reads | counters, gauge and duration histogram, zero configuration |
| the \`Tracked\` handle, one exit observer, the \`FiberSet\` entry | the API; the observer does the count, the outcome, the events and the drain |

The caller's fiber refs, services and tracing flags are taken once per distinct fiber refs object (the
\`CallerCache\`), not per task: \`getFiberRefs()\` copies them on every call.

**Two submit shapes.** Effect's scheduler preempts a fiber after a number of operations (2048 by default), not of
tasks, and a \`track\` call costs its caller about one operation: a tight loop admitted about 2,040 tasks per
scheduler turn (\`FiberSet.run\`: about 820), all alive at once before the first one ran, which cost 1.44x
\`FiberSet.run\` (CPU time). \`track\` now yields a caller that admits 384 tasks in one run (the run ends when the
caller yields by itself, so a loop that yields anyway is not yielded again): "peak in flight" shows the effect, and
the tight-loop ratio is what a burst of submits costs. Yielding every ${YieldEvery} tasks holds the number in flight
about equal between the two, so that ratio compares the work per task alone.

**With one listener.** Each task becomes two events (\`TaskStarted\`, \`TaskFinished\`): two event objects, two
pushes into the listener's ring buffer, and two handler runs on its fiber. The buffer slides without a fiber when
the listener falls \`eventBufferSize\` events behind (before, the full \`PubSub\` ran a fiber per event: 1.8–2.1x).

**Per task with in flight held equal: about 1.1–1.2x.** What remains is the table above; each row is behaviour an
issue asks for (a span per task, handlers' own worker, metrics with no configuration, a typed fiber set). The
yielding-shape target (1.10x) is missed by a few percent in most runs; closing it would mean forking without
\`Runtime.runFork\`'s copy of the fiber refs, which only Effect's private fork can do.

**A stalled subscriber.** \`stalled / no subscriber\` is the price of building and publishing the events at all,
plus the hub's slide (a subscriber that never reads is always full). \`stalled / 1 listener\` is the figure that
answers "does a stalled subscriber slow \`track\` down?": no more than an active one does, and it never blocks it.

**Memory, heap and shutdown.** Per in-flight task, \`track\` holds the context copy, the span, the handle, its
closure and the set's observer beyond a bare fiber (about 600 B). After a million tasks the heap is where it started:
nothing per task survives (ids are numbers, events are built only for subscribers, the exit observer goes with the
fiber). \`stop\` returns about 0.1 ms after the last task ends: the last task's exit observer moves the worker to
\`Stopped\` in the same synchronous step and completes the latch \`stop\` waits on, so there is one scheduler hop and
no polling. "Deferred completed → stop returns" is dominated by running the ten thousand tasks themselves.

**Contention.** The flips are further apart than asked: with a thousand busy fibers the flipper only runs when the
scheduler reaches it. Every admitted task ended, none was rejected, and the worker stopped.

**Where a job's time goes (7).** \`JobWorker\` runs each job as a \`ctx.track\` task, so a bare tracked task is its
floor. What it adds per job, in the order it happens (read from \`src/internal/jobWorker/\` and \`MemoryJobStore\`):

| step | what it does |
| --- | --- |
| claim | one \`store.claim\` per round for every free slot (10 jobs per claim at concurrency 10, about 100 at 100): the memory store takes each job from its lane's ready jobs (an array while jobs come in order, a heap otherwise) and leases it (a token, a \`ClaimedJob\` with three \`Date\`s and a parsed copy of the payload). The store says its calls answer at once (\`Driver.immediate\`), so the worker calls it directly, without the fiber a deadline needs |
| start | the claim's jobs are admitted in one synchronous step: a \`Claim\`, the \`JobClaimed\` count (the event is built only while someone listens), \`Job.Current\` in the task's context, and the task fiber |
| attempt | the task, admitted uninterruptible, decodes the payload (an \`Either\` for a synchronous schema: no continuation), runs the handler under \`Effect.interruptible\` and matches its cause: a handful of effects |
| settle | the outcome is handed to the completer as data (no effect, no \`Deferred\` unless someone waits), written with every other outcome of the round in one \`store.settle\`, then counted and evented |

The rest is the Effect runtime and its garbage: by V8's sampling heap profiler, a job allocates about 14 KB at
concurrency 10, about 5 KB of it the task fiber a bare tracked task makes too, and a quarter to a third of the CPU
samples are the garbage collector's. Concurrency 10 pays more per job than 100: the
round's own cost (the claim, the settle, two wake-ups of the worker's fibers) is shared by ten jobs instead of a
hundred. p-queue runs a plain function per job, with no fiber: it is there for scale, not as a target.

**Jobs memory (8).** A finished job leaves nothing behind: its settle deletes the job from the store's jobs map and
lease heap, the worker frees its slot and drops its \`Claim\` from \`live\` (and from its timeout's list), and with no
subscriber no event is kept. Ids are strings of a counter, held by nobody once the job is gone.

**PostgreSQL (9).** With no-op handlers and durability on, throughput is decided by the statements each job waits
for, since every statement that changes rows waits for its WAL flush. Per job, read from graphile-worker
${env.graphileWorker}'s source and ours:

| variant | claiming | acknowledging | on the job's path |
| --- | --- | --- | --- |
| graphile-worker, defaults | each of the ${config.pg.concurrency} workers fetches one job per \`get_job\` statement | one statement per job | the fetch only: a worker does not wait for its completion before fetching the next job |
| graphile-worker, batched | the pool fetches up to ${GraphileBatching.localQueue.size} jobs in one statement when its local queue runs low | the completions of one tick in one statement | neither, mostly: jobs come from the local queue, completions run beside the next jobs |
| ours, defaults (\`batchAcks\` on, no prefetch) | one \`claim\` per claim round, for every free slot (at most ${config.pg.concurrency}) | the acknowledgements that arrive while one statement runs go in the next one | both: a job keeps its slot until its acknowledgement is taken, and the worker claims only for free slots |
| ours, batched (\`prefetch: 500\`) | one \`claim\` for up to 500 jobs ahead of the free slots, when half of them have started | as above | neither: a freed slot starts a job claimed ahead, and gives its slot up while its acknowledgement is sent |
| ours, \`batchAcks: false\` | as the defaults | one statement per job, on a pool of ${config.pg.poolSize} | both |

So with its defaults a claim round of ours is claim, run, acknowledge, one after the other, for at most ${config.pg.concurrency}
jobs, and at least two commits stand between one round's jobs and the next's. graphile-worker's defaults have one
fetch per job on the path, fanned out over its ${config.pg.concurrency} workers. With \`prefetch\` both statements are off the path too,
as in graphile-worker's batching, and what is left of the gap is CPU time in this process: 60–70 µs a job
against graphile-worker's 20 µs, spread thinly over the job's path (its \`Held\`, its task, its events and
metrics, the decoding of its row, its ack's \`Deferred\`, and garbage collection at about 15% of the time in a
profile) with no single hot spot. \`JobWorker\` on a \`MemoryJobStore\` costs about 25 µs a job on its own. Latency
with \`LISTEN\` is a notification, one claim statement and the start of a task: a few milliseconds for both
libraries.
`
}
