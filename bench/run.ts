/**
 * `npm run bench`: runs the nine benchmarks, prints the tables and writes `docs/benchmarks.md`.
 *
 * With `BENCH_SMOKE=1` it runs every benchmark with a few thousand tasks instead, prints the tables and writes
 * nothing (the same run as the test in `test/bench.test.ts`). Start node with `--expose-gc`, as the script does:
 * without it the heap figures are not taken after a forced GC.
 *
 * Environment variables, for iterating on one benchmark:
 * - `BENCH_ONLY=<names>`: runs only the benchmarks named, comma-separated, in the suite's order: `overhead` (1),
 *   `throughput` (2), `throughputListener` (2 with a listener), `memory` (3), `shutdown` (4), `events` (5),
 *   `contention` (6), `jobs` (7), `jobsMemory` (8), `pg` (9). It prints the tables (figures, targets, and the
 *   per-round times of benchmarks 1, 7 and 9 when they ran) to stdout and does not write `docs/benchmarks.md`. An unknown name is an
 *   error.
 * - `BENCH_ROUNDS=<n>`: `n` measured rounds (a whole number ≥ 1) instead of the configured count in the interleaved
 *   benchmarks, 1 (`overhead`), 5 (`events`), 7 (`jobs`) and 9 (`pg`); the warm-up rounds are unchanged. Combines with
 *   `BENCH_ONLY` and `BENCH_SMOKE`; without `BENCH_ONLY` the full run still writes `docs/benchmarks.md`, which
 *   states the rounds.
 *
 * The ratios of benchmark 1 alone, quickly (about 45 s on 2 cores; `BENCH_ROUNDS=3`, about 30 s):
 * `BENCH_ONLY=overhead node --expose-gc --import tsx bench/run.ts`
 *
 * The job runner's benchmarks alone, 7 and 8 (about 30–45 s and 20–25 s on 2 cores):
 * `BENCH_ONLY=jobs,jobsMemory node --expose-gc --import tsx bench/run.ts`
 *
 * PostgreSQL, ours next to graphile-worker (9; about 5 minutes on 2 cores, most of it the unbatched variants'
 * 30,000-job batches): starts a throwaway server of its own (`test/pgServer.ts`, which needs PostgreSQL's server
 * binaries) and removes it at the end:
 * `BENCH_ONLY=pg node --expose-gc --import tsx bench/run.ts`
 */
import { Effect } from "effect"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { gcAvailable } from "./common.js"
import {
  environment,
  jobsRoundsTextTable,
  markdown,
  overheadRoundsTextTable,
  pgRoundsTextTable,
  rows,
  targets,
  targetsTextTable,
  textTable
} from "./report.js"
import {
  BenchmarkNames,
  fullConfig,
  isComplete,
  parseOnly,
  parseRounds,
  runBenchmarks,
  smokeConfig,
  withRounds
} from "./suite.js"

const docs = new URL("../docs/benchmarks.md", import.meta.url)

/**
 * `markdown` with the section `npm run bench:http` wrote into the current file (between its `http-events`
 * markers) kept, before `## Method`: the two scripts write one file.
 */
const keepHttpEvents = (next: string): string => {
  const current = existsSync(docs) ? readFileSync(docs, "utf8") : ""
  const start = current.indexOf("<!-- http-events:start")
  const endMarker = "<!-- http-events:end -->"
  const end = current.indexOf(endMarker)
  if (start === -1 || end === -1) return next
  return next.replace("\n## Method", `\n${current.slice(start, end + endMarker.length)}\n\n## Method`)
}

const main = Effect.gen(function*() {
  const smoke = process.env.BENCH_SMOKE === "1" || process.env.BENCH_SMOKE === "true"
  const only = yield* Effect.try({ try: () => parseOnly(process.env.BENCH_ONLY), catch: (error) => error })
  const rounds = yield* Effect.try({ try: () => parseRounds(process.env.BENCH_ROUNDS), catch: (error) => error })
  const config = withRounds(smoke ? smokeConfig : fullConfig, rounds)
  if (!gcAvailable()) yield* Effect.logWarning("global.gc is not exposed: run node with --expose-gc")
  const loadStart = os.loadavg()[0]!
  const result = yield* runBenchmarks(config, only ?? BenchmarkNames, (step) => process.stderr.write(`${step}...\n`))
  const env = environment(loadStart)
  const title = smoke ? "Smoke run" : only !== undefined ? `Benchmarks ${only.join(", ")}` : "Benchmarks"
  process.stdout.write(
    `\n${title}: ${env.cpuModel} ×${env.cpuCount}, Node ${env.node}, effect ${env.effect}, ` +
      `load ${env.loadStart.toFixed(2)} → ${env.loadEnd.toFixed(2)}, ${result.seconds.toFixed(0)} s\n` +
      `Source: ${env.source}\n\n`
  )
  process.stdout.write(`${textTable(rows(result))}\n\n`)
  const evaluated = targets(result)
  if (evaluated.length > 0) process.stdout.write(`${targetsTextTable(evaluated)}\n\n`)
  if (result.overhead) process.stdout.write(`${overheadRoundsTextTable(result.overhead)}\n\n`)
  if (result.jobs) process.stdout.write(`${jobsRoundsTextTable(result.jobs)}\n\n`)
  if (result.pg) process.stdout.write(`${pgRoundsTextTable(result.pg)}\n\n`)
  process.stdout.write(
    `Time per step: ${result.stepSeconds.map(({ seconds, step }) => `${step} ${seconds.toFixed(0)} s`).join("; ")}\n\n`
  )
  const missed = evaluated.filter((target) => !target.met)
  process.stdout.write(
    missed.length === 0
      ? evaluated.length === 0 ? "No targets evaluated.\n" : "All targets met.\n"
      : `Targets not met: ${missed.map((target) => target.target).join("; ")}\n`
  )
  if (smoke) return
  if (only !== undefined) {
    process.stdout.write(`BENCH_ONLY is set: ${docs.pathname} not written.\n`)
  } else if (isComplete(result)) {
    writeFileSync(docs, keepHttpEvents(markdown(result, config, env)))
    process.stdout.write(`Wrote ${docs.pathname}\n`)
  }
})

Effect.runPromise(main).catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
  process.exitCode = 1
})
