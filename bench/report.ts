/**
 * Turns a {@link SuiteResult} into the tables `npm run bench` prints and into `docs/benchmarks.md`. The tables
 * also take a {@link PartialSuiteResult} (`BENCH_ONLY`): they show only the benchmarks that ran.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import * as os from "node:os"
import { fmt, gcAvailable, mb } from "./common.js"
import type { MemoryResult } from "./memory.js"
import { type OverheadResult, type Ratio, Variants, YieldEvery } from "./overhead.js"
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

/** The targets of the project, from the figures of one run: those of the benchmarks that ran. */
export const targets = (result: PartialSuiteResult): ReadonlyArray<Target> => [
  ...(result.overhead ? overheadTargets(result.overhead) : []),
  ...(result.memory ? [memoryTarget(result.memory)] : []),
  ...(result.throughput ? [heapTarget(result.throughput)] : []),
  ...(result.shutdown ? [stopTarget(result.shutdown)] : [])
]

const verdict = (target: Target): string => `${target.met ? "met" : "NOT MET"} (${target.by})`

/** Every figure of a run, in the order of the issue; only the benchmarks that ran. */
export const rows = (result: PartialSuiteResult): ReadonlyArray<Row> => {
  const { contention, events, memory, overhead, shutdown, throughput } = result
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
  return out
}

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
  const { overhead } = result
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

Time per step: ${result.stepSeconds.map(({ seconds, step }) => `${step} ${fmt(seconds, 0)} s`).join("; ")}.

## Method

- **Harness.** tinybench runs the interleaved benchmarks (1 and 5): each round is a \`Bench\` with one iteration
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
`
}
