/**
 * A smoke run of the benchmark suite, so that it cannot rot: every benchmark runs with a few thousand tasks and must
 * come back with counts that add up and figures that are finite. Nothing here asserts on the values of time or memory
 * figures: `npm run bench` measures.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as net from "node:net"
import { contention } from "../bench/contention.js"
import { eventThroughput } from "../bench/events.js"
import { jobsMemory, jobsThroughput, JobsVariants } from "../bench/jobs.js"
import { inFlightMemory } from "../bench/memory.js"
import { perTaskOverhead, Variants, YieldEvery } from "../bench/overhead.js"
import { pgJobs, PgVariants } from "../bench/pg.js"
import {
  jobsRoundsTextTable,
  markdown,
  overheadRoundsTextTable,
  pgRoundsTextTable,
  rows,
  targets,
  targetsTextTable,
  textTable
} from "../bench/report.js"
import { shutdownLatency } from "../bench/shutdown.js"
import {
  BenchmarkNames,
  fullConfig,
  isComplete,
  parseOnly,
  parseRounds,
  runBenchmarks,
  runSuite,
  smokeConfig,
  type SuiteConfig,
  withRounds
} from "../bench/suite.js"
import { throughputAtScale } from "../bench/throughput.js"

const isPositive = (value: number) => Number.isFinite(value) && value > 0

/** Whether something accepts connections on 127.0.0.1:`port`. */
const isListening = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
  })

describe("benchmark suite, smoke run", () => {
  it.live("per-task overhead runs every variant to the end of every batch", () =>
    Effect.gen(function*() {
      const config = smokeConfig.overhead
      const result = yield* perTaskOverhead(config)
      const perVariant = config.tasks * (config.rounds + config.warmupRounds)
      for (const name of Object.values(Variants)) {
        assert.strictEqual(result.completed[name], perVariant, name)
        assert.isTrue(isPositive(result.usPerTask[name]!), name)
        assert.isTrue(isPositive(result.cpuUsPerTask[name]!), name)
        assert.strictEqual(result.samples[name]!.length, config.rounds, name)
        assert.isTrue(isPositive(result.peakInFlight[name]!), name)
        assert.isAtMost(result.peakInFlight[name]!, config.tasks, name)
      }
      assert.strictEqual(result.leftInFlight, 0)
      for (
        const ratio of [
          result.ratioTrack,
          result.ratioTrackListener,
          result.ratioTrackYield,
          result.ratioTrackListenerYield
        ]
      ) {
        assert.isTrue(isPositive(ratio.wall) && isPositive(ratio.cpu))
      }
    }), 60_000)

  it.live(
    "throughput at scale ends every task and samples the heap between batches, with and without a listener",
    () =>
      Effect.gen(function*() {
        for (const config of [smokeConfig.throughput, smokeConfig.throughputListener]) {
          const result = yield* throughputAtScale(config)
          assert.strictEqual(result.completed, config.tasks + config.batch)
          assert.strictEqual(result.leftInFlight, 0)
          assert.isAbove(result.heapDuring.length, 0)
          assert.isTrue(
            isPositive(result.tasksPerSecond) && isPositive(result.heapBefore) && isPositive(result.heapAfter)
          )
        }
      }),
    60_000
  )

  it.live("in-flight memory starts and ends every task in both variants", () =>
    Effect.gen(function*() {
      const config = smokeConfig.memory
      const result = yield* inFlightMemory(config)
      const expected = config.tasks * (config.runs + 1) * 2
      assert.strictEqual(result.started, expected)
      assert.strictEqual(result.ended, expected)
      assert.strictEqual(result.leftInFlight, 0)
      assert.strictEqual(result.trackRuns.length, config.runs)
      assert.strictEqual(result.fiberSetRuns.length, config.runs)
      assert.isTrue(Number.isFinite(result.trackBytesPerTask) && Number.isFinite(result.fiberSetBytesPerTask))
    }), 60_000)

  it.live("shutdown latency drains every task and stops the worker in each run", () =>
    Effect.gen(function*() {
      const config = smokeConfig.shutdown
      const result = yield* shutdownLatency(config)
      assert.strictEqual(result.runs.length, config.runs)
      for (const run of result.runs) {
        assert.strictEqual(run.ended, config.tasks)
        assert.strictEqual(run.state, "Stopped")
        assert.isAtLeast(run.fromLastTask, 0)
        assert.isAtLeast(run.fromRelease, run.fromLastTask)
      }
    }), 60_000)

  it.live("events reach every subscriber and track runs with a stalled one", () =>
    Effect.gen(function*() {
      const config = smokeConfig.events
      const result = yield* eventThroughput(config)
      const rounds = config.rounds + config.warmupRounds
      assert.deepStrictEqual(result.emit.map((emit) => emit.subscribers), [0, 1, 10])
      assert.strictEqual(result.markersSeen, (0 + 1 + 10) * rounds)
      for (const emit of result.emit) {
        assert.isAtMost(emit.received, config.events * rounds * emit.subscribers)
        if (emit.subscribers > 0) assert.isAbove(emit.received, 0)
        assert.isTrue(isPositive(emit.usPerEvent))
      }
      assert.strictEqual(result.trackCompleted, config.trackTasks * rounds)
      assert.strictEqual(result.trackListenerCompleted, config.trackTasks * rounds)
      assert.strictEqual(result.trackStalledCompleted, config.trackTasks * rounds)
      assert.isTrue(isPositive(result.stalledRatio))
    }), 60_000)

  it.live(
    "contention admits and ends every task while the worker flips between paused and running",
    () =>
      Effect.gen(function*() {
        const config = smokeConfig.contention
        const result = yield* contention(config)
        assert.strictEqual(result.expected, config.callers * config.tasksPerCaller)
        assert.strictEqual(result.admitted, result.expected)
        assert.strictEqual(result.ended, result.expected)
        assert.strictEqual(result.rejected, 0)
        assert.strictEqual(result.finalState, "Stopped")
      }),
    60_000
  )

  it.live(
    "jobs throughput runs every job of every variant, and leaves nothing in the stores or in flight",
    () =>
      Effect.gen(function*() {
        const config = smokeConfig.jobs
        const result = yield* jobsThroughput(config)
        const perVariant = config.jobs * (config.rounds + config.warmupRounds)
        const names = config.concurrencies.flatMap((concurrency) => Object.values(JobsVariants(concurrency)))
        assert.strictEqual(names.length, config.concurrencies.length * 4)
        for (const name of names) {
          assert.strictEqual(result.completed[name], perVariant, name)
          assert.isTrue(isPositive(result.jobsPerSecond[name]!), name)
          assert.isTrue(isPositive(result.usPerJob[name]!), name)
          assert.isTrue(isPositive(result.cpuUsPerJob[name]!), name)
          assert.strictEqual(result.samples[name]!.length, config.rounds, name)
        }
        assert.deepStrictEqual(result.ratios.map((ratio) => ratio.concurrency), [...config.concurrencies])
        for (const ratio of result.ratios) {
          assert.isTrue(isPositive(ratio.wall) && isPositive(ratio.cpu))
          assert.isTrue(isPositive(ratio.noYield.wall) && isPositive(ratio.noYield.cpu))
        }
        assert.isTrue(isPositive(result.enqueueUsPerJob))
        assert.strictEqual(result.leftInStore, 0)
        assert.strictEqual(result.leftInFlight, 0)
      }),
    60_000
  )

  it.live(
    "jobs memory runs every job through the worker, and leaves nothing in the store or in flight",
    () =>
      Effect.gen(function*() {
        const config = smokeConfig.jobsMemory
        const result = yield* jobsMemory(config)
        assert.strictEqual(result.completed, config.jobs + config.batch)
        assert.strictEqual(result.leftInStore, 0)
        assert.strictEqual(result.leftInFlight, 0)
        assert.isAbove(result.heapDuring.length, 0)
        assert.isTrue(isPositive(result.jobsPerSecond) && isPositive(result.heapBefore) && isPositive(result.heapAfter))
        assert.isTrue(Number.isFinite(result.growthPercent) && Number.isFinite(result.bytesPerJob))
      }),
    60_000
  )

  it.live(
    "the PostgreSQL benchmark runs every job of every variant on a server of its own, and removes the server",
    () =>
      Effect.gen(function*() {
        const config = smokeConfig.pg
        const result = yield* pgJobs(config)
        assert.isFalse(yield* isListening(result.serverPort), "the benchmark's server still listens")
        assert.deepStrictEqual(result.variants, Object.values(PgVariants))
        const perVariant = config.jobs * (config.rounds + config.warmupRounds)
        for (const name of result.variants) {
          assert.strictEqual(result.completed[name], perVariant, name)
          assert.isTrue(isPositive(result.jobsPerSecond[name]!), name)
          assert.isTrue(isPositive(result.cpuUsPerJob[name]!), name)
          assert.isTrue(isPositive(result.enqueueUsPerJob[name]!), name)
          assert.strictEqual(result.samples[name]!.length, config.rounds, name)
          const latency = result.latency[name]!
          assert.strictEqual(latency.samples, config.latencySamples, name)
          assert.isTrue(isPositive(latency.p50) && latency.p50 <= latency.p99 && latency.p99 <= latency.max, name)
        }
        for (const name of [PgVariants.graphile, PgVariants.graphileBatched]) {
          assert.isTrue(isPositive(result.startupMs[name]!), name)
        }
        for (const ratio of [result.ratios.defaults, result.ratios.batched]) {
          assert.isTrue(isPositive(ratio.wall) && isPositive(ratio.cpu))
        }
        assert.strictEqual(result.leftInStore, 0)
        // The bulk enqueues: every call stored its batch (the benchmark checks the rows), in every round.
        for (const name of [PgVariants.ours, PgVariants.graphile]) {
          assert.strictEqual(result.bulk.samples[name]!.length, config.bulkRounds, name)
        }
        assert.isTrue(isPositive(result.bulk.jobsPerSecond.ours) && isPositive(result.bulk.jobsPerSecond.graphile))
        assert.isTrue(isPositive(result.bulk.ratio))
        assert.match(result.serverVersion, /^\d+/)
        assert.deepInclude(result.settings, { name: "fsync", value: "on" })
        assert.deepInclude(result.settings, { name: "synchronous_commit", value: "on" })
        assert.include(pgRoundsTextTable(result), PgVariants.oursBatched)
      }),
    120_000
  )

  it.live("the report shows every benchmark and every target", () =>
    Effect.gen(function*() {
      const tiny: SuiteConfig = {
        overhead: { tasks: 200, rounds: 1, warmupRounds: 0 },
        throughput: { tasks: 400, batch: 100, samples: 2, listener: false },
        throughputListener: { tasks: 400, batch: 100, samples: 2, listener: true },
        memory: { tasks: 200, runs: 1 },
        shutdown: { tasks: 200, runs: 1 },
        events: { events: 200, trackTasks: 200, rounds: 1, warmupRounds: 0 },
        contention: { callers: 50, tasksPerCaller: 2, flipEveryMs: 1 },
        jobs: { jobs: 200, concurrencies: [10, 100], rounds: 1, warmupRounds: 0 },
        jobsMemory: { jobs: 400, batch: 100, concurrency: 10, samples: 2 },
        pg: { ...smokeConfig.pg, jobs: 100, rounds: 1, warmupRounds: 0, latencySamples: 5, latencyWarmup: 1 },
        pgScale: { rows: 1_000, samples: 2, pruneRows: 500, drainJobs: 100, drainRounds: 1 }
      }
      const result = yield* runSuite(tiny)
      const table = textTable(rows(result))
      for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) assert.include(table, `${n}. `)
      const env = {
        date: "2025-01-01T00:00:00.000Z",
        cpuModel: "test",
        cpuCount: 2,
        memoryGb: 4,
        os: "test",
        node: "v20",
        effect: "3",
        library: "0",
        tinybench: "6",
        pQueue: "9",
        graphileWorker: "0.17.3",
        nodePostgres: "8",
        effectSql: "0.52",
        effectSqlPg: "0.53",
        source: "test",
        gc: false,
        loadStart: 0,
        loadEnd: 0
      }
      const doc = markdown(result, tiny, env)
      assert.strictEqual(targets(result).length, 20)
      for (const target of targets(result)) assert.include(doc, target.target)
      for (const concurrency of tiny.jobs.concurrencies) {
        const row = rows(result).find((row) =>
          row.figure === `JobWorker / ctx.track per job, concurrency ${concurrency}`
        )
        assert.isDefined(row, `${concurrency}`)
        assert.notStrictEqual(row!.target, "", `${concurrency}`)
        for (const name of Object.values(JobsVariants(concurrency))) assert.include(doc, name)
      }
      assert.include(doc, "Jobs throughput (7)")
      assert.include(doc, "Jobs memory (8)")
      assert.include(doc, "PostgreSQL (9)")
      assert.include(doc, result.pg.serverVersion)
      for (const name of Object.values(PgVariants)) assert.include(doc, name)
      for (
        const ratio of ["tight loop, 0 listeners", "tight loop, 1 listener", `yield every ${YieldEvery}, 0 listeners`]
      ) {
        const row = rows(result).find((row) => row.figure === `track / FiberSet.run, ${ratio}`)
        assert.isDefined(row, ratio)
        assert.notStrictEqual(row!.target, "", ratio)
        assert.include(doc, `track / FiberSet.run, ${ratio}`)
      }
      for (const name of Object.values(Variants)) assert.include(doc, name)
      assert.include(doc, "## Analysis")
    }), 60_000)

  it.live("a run of some benchmarks reports only those, and its tables need no other", () =>
    Effect.gen(function*() {
      const tiny = withRounds({ ...smokeConfig, overhead: { tasks: 200, rounds: 3, warmupRounds: 0 } }, 1)
      const result = yield* runBenchmarks(tiny, ["overhead"])
      assert.isFalse(isComplete(result))
      assert.isDefined(result.overhead)
      assert.isUndefined(result.throughput)
      assert.strictEqual(result.overhead!.samples[Variants.track0Yield]!.length, 1)
      assert.deepStrictEqual(result.stepSeconds.map(({ step }) => step), ["1 per-task overhead"])
      const all = rows(result)
      assert.isAbove(all.length, 0)
      assert.isTrue(all.every((row) => row.benchmark.startsWith("1. ")))
      assert.strictEqual(targets(result).length, 3)
      assert.include(targetsTextTable(targets(result)), `yielding every ${YieldEvery} tasks`)
      assert.include(overheadRoundsTextTable(result.overhead!), Variants.fiberSetYield)
    }), 60_000)

  it.live(
    "a run of the job benchmarks alone reports their figures and their three targets",
    () =>
      Effect.gen(function*() {
        const tiny = withRounds({
          ...smokeConfig,
          jobs: { jobs: 200, concurrencies: [10, 100], rounds: 3, warmupRounds: 0 },
          jobsMemory: { jobs: 400, batch: 100, concurrency: 10, samples: 2 }
        }, 1)
        const result = yield* runBenchmarks(tiny, parseOnly("jobs,jobsMemory")!)
        assert.isFalse(isComplete(result))
        assert.isUndefined(result.overhead)
        assert.strictEqual(result.jobs!.samples[JobsVariants(10).worker]!.length, 1)
        assert.deepStrictEqual(result.stepSeconds.map(({ step }) => step), ["7 jobs throughput", "8 jobs memory"])
        const all = rows(result)
        assert.isTrue(all.every((row) => row.benchmark.startsWith("7. ") || row.benchmark.startsWith("8. ")))
        assert.strictEqual(targets(result).length, 3)
        assert.include(targetsTextTable(targets(result)), "≤ 2x a bare ctx.track task, concurrency 100")
        assert.include(jobsRoundsTextTable(result.jobs!), JobsVariants(100).pQueue)
      }),
    60_000
  )

  it("BENCH_ONLY and BENCH_ROUNDS are parsed and checked", () => {
    assert.isUndefined(parseOnly(undefined))
    assert.isUndefined(parseOnly(" "))
    assert.deepStrictEqual(parseOnly("overhead"), ["overhead"])
    assert.deepStrictEqual(parseOnly("events, overhead,"), ["overhead", "events"])
    assert.deepStrictEqual(parseOnly("jobsMemory,jobs"), ["jobs", "jobsMemory"])
    assert.deepStrictEqual(parseOnly(BenchmarkNames.join(",")), BenchmarkNames)
    assert.throws(() => parseOnly("overhead,nope"), /nope/)
    assert.isUndefined(parseRounds(undefined))
    assert.isUndefined(parseRounds(""))
    assert.strictEqual(parseRounds("3"), 3)
    for (const bad of ["0", "-1", "1.5", "x"]) assert.throws(() => parseRounds(bad), /BENCH_ROUNDS/)
    const three = withRounds(fullConfig, 3)
    assert.strictEqual(three.overhead.rounds, 3)
    assert.strictEqual(three.events.rounds, 3)
    assert.strictEqual(three.jobs.rounds, 3)
    assert.strictEqual(three.pg.rounds, 3)
    assert.strictEqual(three.jobs.warmupRounds, fullConfig.jobs.warmupRounds)
    assert.strictEqual(three.overhead.warmupRounds, fullConfig.overhead.warmupRounds)
    assert.strictEqual(withRounds(fullConfig, undefined), fullConfig)
  })
})
