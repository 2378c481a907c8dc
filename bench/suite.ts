/**
 * The whole suite: the configurations (full and smoke), `runSuite`, which runs the nine benchmarks in order, and
 * `runBenchmarks`, which runs a chosen few of them (`BENCH_ONLY`). Each benchmark dies rather than fails: a rejected
 * `track` or a refused transition is a bug in the benchmark.
 */
import { Effect } from "effect"
import { contention, type ContentionConfig, type ContentionResult } from "./contention.js"
import { type EventsConfig, type EventsResult, eventThroughput } from "./events.js"
import {
  type JobsConfig,
  jobsMemory,
  type JobsMemoryConfig,
  type JobsMemoryResult,
  type JobsResult,
  jobsThroughput
} from "./jobs.js"
import { inFlightMemory, type MemoryConfig, type MemoryResult } from "./memory.js"
import { type OverheadConfig, type OverheadResult, perTaskOverhead } from "./overhead.js"
import { type PgConfig, pgJobs, type PgResult } from "./pg.js"
import { pgScale, type PgScaleConfig, type PgScaleResult } from "./pgScale.js"
import { type ShutdownConfig, shutdownLatency, type ShutdownResult } from "./shutdown.js"
import { throughputAtScale, type ThroughputConfig, type ThroughputResult } from "./throughput.js"

export interface SuiteConfig {
  readonly overhead: OverheadConfig
  readonly throughput: ThroughputConfig
  /** Benchmark 2 again, smaller, with a listener attached, so that event objects are built for every task. */
  readonly throughputListener: ThroughputConfig
  readonly memory: MemoryConfig
  readonly shutdown: ShutdownConfig
  readonly events: EventsConfig
  readonly contention: ContentionConfig
  readonly jobs: JobsConfig
  readonly jobsMemory: JobsMemoryConfig
  readonly pg: PgConfig
  readonly pgScale: PgScaleConfig
}

/** The benchmarks by name, in the order they run: the names `BENCH_ONLY` takes, the keys of {@link SuiteConfig}. */
export const BenchmarkNames = [
  "overhead",
  "throughput",
  "throughputListener",
  "memory",
  "shutdown",
  "events",
  "contention",
  "jobs",
  "jobsMemory",
  "pg",
  "pgScale"
] as const satisfies ReadonlyArray<keyof SuiteConfig>

export type BenchmarkName = typeof BenchmarkNames[number]

/** The figures of each benchmark. */
export interface BenchmarkResults {
  readonly overhead: OverheadResult
  readonly throughput: ThroughputResult
  readonly throughputListener: ThroughputResult
  readonly memory: MemoryResult
  readonly shutdown: ShutdownResult
  readonly events: EventsResult
  readonly contention: ContentionResult
  readonly jobs: JobsResult
  readonly jobsMemory: JobsMemoryResult
  readonly pg: PgResult
  readonly pgScale: PgScaleResult
}

interface Timing {
  /** Wall-clock seconds for the whole suite, and for each step. */
  readonly seconds: number
  readonly stepSeconds: ReadonlyArray<{ readonly step: string; readonly seconds: number }>
}

/** A run of the whole suite. */
export interface SuiteResult extends BenchmarkResults, Timing {}

/** A run of some of the benchmarks: those that did not run are absent. */
export interface PartialSuiteResult extends Partial<BenchmarkResults>, Timing {}

/** `npm run bench`: the sizes the issue asks for. */
export const fullConfig: SuiteConfig = {
  overhead: { tasks: 100_000, rounds: 5, warmupRounds: 1 },
  throughput: { tasks: 1_000_000, batch: 10_000, samples: 10, listener: false },
  throughputListener: { tasks: 200_000, batch: 10_000, samples: 4, listener: true },
  memory: { tasks: 100_000, runs: 3 },
  shutdown: { tasks: 10_000, runs: 7 },
  events: { events: 100_000, trackTasks: 50_000, rounds: 5, warmupRounds: 1 },
  contention: { callers: 1_000, tasksPerCaller: 100, flipEveryMs: 1 },
  jobs: { jobs: 50_000, concurrencies: [10, 100], rounds: 5, warmupRounds: 1 },
  jobsMemory: { jobs: 1_000_000, batch: 100_000, concurrency: 10, samples: 4 },
  pg: {
    jobs: 30_000,
    concurrency: 24,
    // Three rounds, not five: a batch of 30,000 takes 10–30 s in the unbatched variants on 2 cores.
    rounds: 3,
    warmupRounds: 1,
    poolSize: 10,
    latencySamples: 500,
    latencyWarmup: 20,
    latencySpacingMs: 5,
    durable: true,
    bulkJobs: 10_000,
    bulkRounds: 7
  },
  pgScale: { rows: 1_000_000, samples: 20, pruneRows: 100_000, drainJobs: 30_000, drainRounds: 3 }
}

/** `BENCH_SMOKE=1` and the test suite: every benchmark with a few thousand tasks, in a few seconds. */
export const smokeConfig: SuiteConfig = {
  overhead: { tasks: 2_000, rounds: 2, warmupRounds: 1 },
  throughput: { tasks: 5_000, batch: 1_000, samples: 3, listener: false },
  throughputListener: { tasks: 3_000, batch: 1_000, samples: 2, listener: true },
  memory: { tasks: 2_000, runs: 1 },
  shutdown: { tasks: 2_000, runs: 2 },
  events: { events: 2_000, trackTasks: 2_000, rounds: 2, warmupRounds: 1 },
  contention: { callers: 1_000, tasksPerCaller: 3, flipEveryMs: 1 },
  jobs: { jobs: 2_000, concurrencies: [10, 100], rounds: 2, warmupRounds: 1 },
  jobsMemory: { jobs: 4_000, batch: 1_000, concurrency: 10, samples: 2 },
  pg: {
    jobs: 500,
    concurrency: 24,
    rounds: 2,
    warmupRounds: 1,
    poolSize: 10,
    latencySamples: 30,
    latencyWarmup: 5,
    latencySpacingMs: 2,
    durable: true,
    bulkJobs: 500,
    bulkRounds: 2
  },
  pgScale: { rows: 5_000, samples: 3, pruneRows: 1_000, drainJobs: 300, drainRounds: 1 }
}

/**
 * Parses `BENCH_ONLY`: comma-separated names of {@link BenchmarkNames}, spaces allowed. `undefined` when the text is
 * absent or blank (run everything); throws on an unknown name.
 */
export const parseOnly = (text: string | undefined): ReadonlyArray<BenchmarkName> | undefined => {
  const names = (text ?? "").split(",").map((name) => name.trim()).filter((name) => name !== "")
  if (names.length === 0) return undefined
  const unknown = names.filter((name) => !(BenchmarkNames as ReadonlyArray<string>).includes(name))
  if (unknown.length > 0) {
    throw new Error(`BENCH_ONLY: unknown benchmark(s) ${unknown.join(", ")}; known: ${BenchmarkNames.join(", ")}`)
  }
  return BenchmarkNames.filter((name) => names.includes(name))
}

/** Parses `BENCH_ROUNDS`: a whole number ≥ 1, or `undefined` when absent or blank; throws otherwise. */
export const parseRounds = (text: string | undefined): number | undefined => {
  const trimmed = (text ?? "").trim()
  if (trimmed === "") return undefined
  const rounds = Number(trimmed)
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`BENCH_ROUNDS: expected a whole number ≥ 1, got ${text}`)
  return rounds
}

/** `config` with `rounds` measured rounds in the interleaved benchmarks (1, 5, 7 and 9); warm-up rounds unchanged. */
export const withRounds = (config: SuiteConfig, rounds: number | undefined): SuiteConfig =>
  rounds === undefined ? config : {
    ...config,
    overhead: { ...config.overhead, rounds },
    events: { ...config.events, rounds },
    jobs: { ...config.jobs, rounds },
    pg: { ...config.pg, rounds }
  }

/** Runs the benchmarks named in `only`, in the suite's order; `progress` is told when each one starts. */
export const runBenchmarks = (
  config: SuiteConfig,
  only: ReadonlyArray<BenchmarkName>,
  progress: (step: string) => void = () => {}
): Effect.Effect<PartialSuiteResult> =>
  Effect.gen(function*() {
    const start = performance.now()
    const stepSeconds: Array<{ step: string; seconds: number }> = []
    const results: { -readonly [K in BenchmarkName]?: BenchmarkResults[K] } = {}
    const step = <K extends BenchmarkName>(name: K, label: string, self: () => Effect.Effect<BenchmarkResults[K]>) =>
      only.includes(name) ?
        Effect.suspend(() => {
          progress(label)
          const begin = performance.now()
          return Effect.map(self(), (value) => {
            stepSeconds.push({ step: label, seconds: (performance.now() - begin) / 1000 })
            results[name] = value
          })
        }) :
        Effect.void
    yield* step("overhead", "1 per-task overhead", () => perTaskOverhead(config.overhead))
    yield* step("throughput", "2 throughput at scale", () => throughputAtScale(config.throughput))
    yield* step(
      "throughputListener",
      "2 throughput at scale, one listener",
      () => throughputAtScale(config.throughputListener)
    )
    yield* step("memory", "3 memory per in-flight task", () => inFlightMemory(config.memory))
    yield* step("shutdown", "4 shutdown latency", () => shutdownLatency(config.shutdown))
    yield* step("events", "5 events", () => eventThroughput(config.events))
    yield* step("contention", "6 contention", () => contention(config.contention))
    yield* step("jobs", "7 jobs throughput", () => jobsThroughput(config.jobs))
    yield* step("jobsMemory", "8 jobs memory", () => jobsMemory(config.jobsMemory))
    yield* step("pg", "9 PostgreSQL jobs", () => pgJobs(config.pg))
    yield* step("pgScale", "10 PostgreSQL at scale", () => pgScale(config.pgScale))
    return { ...results, seconds: (performance.now() - start) / 1000, stepSeconds }
  })

/** Whether every benchmark ran. */
export const isComplete = (result: PartialSuiteResult): result is SuiteResult =>
  BenchmarkNames.every((name) => result[name] !== undefined)

/** Runs the nine benchmarks one after the other; `progress` is told when each one starts. */
export const runSuite = (
  config: SuiteConfig,
  progress: (step: string) => void = () => {}
): Effect.Effect<SuiteResult> =>
  Effect.flatMap(
    runBenchmarks(config, BenchmarkNames, progress),
    (result) => isComplete(result) ? Effect.succeed(result) : Effect.dieMessage("a benchmark of the suite did not run")
  )
