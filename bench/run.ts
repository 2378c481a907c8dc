/**
 * `npm run bench`: runs the six benchmarks, prints the table and writes `docs/benchmarks.md`.
 *
 * With `BENCH_SMOKE=1` it runs every benchmark with a few thousand tasks instead, prints the table and writes
 * nothing (the same run as the test in `test/bench.test.ts`). Start node with `--expose-gc`, as the script does:
 * without it the heap figures are not taken after a forced GC.
 */
import { Effect } from "effect"
import { writeFileSync } from "node:fs"
import * as os from "node:os"
import { gcAvailable } from "./common.js"
import { environment, markdown, rows, targets, textTable } from "./report.js"
import { fullConfig, runSuite, smokeConfig } from "./suite.js"

const smoke = process.env.BENCH_SMOKE === "1" || process.env.BENCH_SMOKE === "true"
const config = smoke ? smokeConfig : fullConfig
const docs = new URL("../docs/benchmarks.md", import.meta.url)

const main = Effect.gen(function*() {
  if (!gcAvailable()) yield* Effect.logWarning("global.gc is not exposed: run node with --expose-gc")
  const loadStart = os.loadavg()[0]!
  const result = yield* runSuite(config, (step) => process.stderr.write(`${step}...\n`))
  const env = environment(loadStart)
  process.stdout.write(
    `\n${
      smoke ? "Smoke run" : "Benchmarks"
    }: ${env.cpuModel} ×${env.cpuCount}, Node ${env.node}, effect ${env.effect}, ` +
      `load ${env.loadStart.toFixed(2)} → ${env.loadEnd.toFixed(2)}, ${result.seconds.toFixed(0)} s\n\n`
  )
  process.stdout.write(`${textTable(rows(result))}\n\n`)
  const missed = targets(result).filter((target) => !target.met)
  process.stdout.write(
    missed.length === 0
      ? "All targets met.\n"
      : `Targets not met: ${missed.map((target) => target.target).join("; ")}\n`
  )
  if (!smoke) {
    writeFileSync(docs, markdown(result, config, env))
    process.stdout.write(`Wrote ${docs.pathname}\n`)
  }
})

Effect.runPromise(main).catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
  process.exitCode = 1
})
