/**
 * The whole suite: the configurations (full and smoke) and `runSuite`, which runs the six benchmarks in order.
 * Each benchmark dies rather than fails: a rejected `track` or a refused transition is a bug in the benchmark.
 */
import { Effect } from "effect"
import { contention, type ContentionConfig, type ContentionResult } from "./contention.js"
import { type EventsConfig, type EventsResult, eventThroughput } from "./events.js"
import { inFlightMemory, type MemoryConfig, type MemoryResult } from "./memory.js"
import { type OverheadConfig, type OverheadResult, perTaskOverhead } from "./overhead.js"
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
}

export interface SuiteResult {
  readonly overhead: OverheadResult
  readonly throughput: ThroughputResult
  readonly throughputListener: ThroughputResult
  readonly memory: MemoryResult
  readonly shutdown: ShutdownResult
  readonly events: EventsResult
  readonly contention: ContentionResult
  /** Wall-clock seconds for the whole suite, and for each step. */
  readonly seconds: number
  readonly stepSeconds: ReadonlyArray<{ readonly step: string; readonly seconds: number }>
}

/** `npm run bench`: the sizes the issue asks for. */
export const fullConfig: SuiteConfig = {
  overhead: { tasks: 100_000, rounds: 5, warmupRounds: 1 },
  throughput: { tasks: 1_000_000, batch: 10_000, samples: 10, listener: false },
  throughputListener: { tasks: 200_000, batch: 10_000, samples: 4, listener: true },
  memory: { tasks: 100_000, runs: 3 },
  shutdown: { tasks: 10_000, runs: 7 },
  events: { events: 100_000, trackTasks: 50_000, rounds: 5, warmupRounds: 1 },
  contention: { callers: 1_000, tasksPerCaller: 100, flipEveryMs: 1 }
}

/** `BENCH_SMOKE=1` and the test suite: every benchmark with a few thousand tasks, in a few seconds. */
export const smokeConfig: SuiteConfig = {
  overhead: { tasks: 2_000, rounds: 2, warmupRounds: 1 },
  throughput: { tasks: 5_000, batch: 1_000, samples: 3, listener: false },
  throughputListener: { tasks: 3_000, batch: 1_000, samples: 2, listener: true },
  memory: { tasks: 2_000, runs: 1 },
  shutdown: { tasks: 2_000, runs: 2 },
  events: { events: 2_000, trackTasks: 2_000, rounds: 2, warmupRounds: 1 },
  contention: { callers: 1_000, tasksPerCaller: 3, flipEveryMs: 1 }
}

/** Runs the six benchmarks one after the other; `progress` is told when each one starts. */
export const runSuite = (
  config: SuiteConfig,
  progress: (step: string) => void = () => {}
): Effect.Effect<SuiteResult> =>
  Effect.gen(function*() {
    const start = performance.now()
    const stepSeconds: Array<{ step: string; seconds: number }> = []
    const step = <A>(name: string, self: Effect.Effect<A>) =>
      Effect.suspend(() => {
        progress(name)
        const begin = performance.now()
        return Effect.tap(self, () => {
          stepSeconds.push({ step: name, seconds: (performance.now() - begin) / 1000 })
        })
      })
    const overhead = yield* step("1 per-task overhead", perTaskOverhead(config.overhead))
    const throughput = yield* step("2 throughput at scale", throughputAtScale(config.throughput))
    const throughputListener = yield* step(
      "2 throughput at scale, one listener",
      throughputAtScale(config.throughputListener)
    )
    const memory = yield* step("3 memory per in-flight task", inFlightMemory(config.memory))
    const shutdown = yield* step("4 shutdown latency", shutdownLatency(config.shutdown))
    const events = yield* step("5 events", eventThroughput(config.events))
    const contended = yield* step("6 contention", contention(config.contention))
    return {
      overhead,
      throughput,
      throughputListener,
      memory,
      shutdown,
      events,
      contention: contended,
      seconds: (performance.now() - start) / 1000,
      stepSeconds
    }
  })
