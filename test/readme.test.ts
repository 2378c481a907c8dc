/**
 * The README's "Try the demo" walkthrough, run as written: the `sh` block after "From another terminal:" is taken
 * from `README.md`, pointed at a demo started on a free port (`localhost:3000` becomes that port), and run in bash,
 * one command after another. Each command's output must match what its line expects, and so must the example
 * output its comment shows, so that the README says what happens.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { root, spawnDemo } from "./browserSupport.js"

/** The walkthrough's block, line by line. */
const walkthrough = (): Array<string> => {
  const readme = readFileSync(join(root, "README.md"), "utf8")
  const after = readme.slice(readme.indexOf("From another terminal:"))
  const block = /```sh\n([\s\S]*?)\n```/.exec(after)
  assert.isNotNull(block, "the README has no walkthrough block")
  return block![1]!.split("\n")
}

/** What each line prints (every line of it), and, when its comment shows an example output, what that must match. */
const expected: ReadonlyArray<{ readonly output: ReadonlyArray<RegExp>; readonly comment?: RegExp }> = [
  { output: [/^\{"name":"demo","state":"Running","taskCount":\d+,"shuttingDown":false\}$/] },
  { output: [/^HTTP\/1\.1 200 OK$/, /^\{"status":"ok","state":"Running"\}$/] },
  {
    output: [
      /^\{"ready":\d+,"scheduled":\d+,"leased":\d+,"dead":\d+,"cancelled":\d+,"succeeded":\d+,"byQueue":\{.*\},"readyByName":\{.*\},"pausedQueues":\[.*\]\}$/
    ]
  },
  { output: [/^\{"id":"\d+"\}$/] },
  { output: [/^\{"id":"\d+"\}$/] },
  { output: [] },
  { output: [] },
  { output: [/^"id":"\d+","name":"send-email"$/] },
  { output: [/^\{"redriven":1\}$/] },
  { output: [/^\{"state":"Paused"\}$/] },
  { output: [/^\{"state":"Running"\}$/] },
  { output: [/^effect_worker_tasks_started_total\{worker="demo",label="send-email"\} \d+$/] }
]

/** The example output a line's comment shows: the comment up to a `:` that starts its prose, if it is one. */
const commentExample = (line: string): string | undefined => {
  const at = line.indexOf("   # ")
  if (at === -1) return undefined
  return line.slice(at).replace(/^\s*#\s*/, "").replace(/:\s.*$/, "").trim()
}

describe("the README's walkthrough", () => {
  it.scopedLive(
    "runs as written against the demo, and every command prints what the README says",
    () =>
      Effect.gen(function*() {
        const lines = walkthrough()
        assert.strictEqual(lines.length, expected.length, `the walkthrough has ${lines.length} commands`)
        const demo = yield* spawnDemo({ DEMO_JOB_MS: "200" })
        const [, port] = yield* demo.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+) /)
        yield* demo.waitFor(/Started: claiming jobs/)
        const script = lines.map((line, i) =>
          `echo "::: ${i}"\n${line.replaceAll("localhost:3000", `localhost:${port}`)}\necho`
        ).join("\n")
        const run = spawnSync("bash", ["-e", "-o", "pipefail", "-c", script], {
          encoding: "utf8",
          timeout: 60_000
        })
        assert.strictEqual(run.status, 0, `${run.stdout}\n${run.stderr}\n--- demo ---\n${demo.output()}`)
        const outputs = run.stdout.split(/^::: \d+\n/m).slice(1)
        assert.strictEqual(outputs.length, expected.length, run.stdout)
        expected.forEach(({ output }, i) => {
          const printed = outputs[i]!.split("\n").map((line) => line.replace(/\r$/, "")).filter((line) => line !== "")
          // `curl -i` prints headers too: each expected line must be there, in order.
          let from = 0
          for (const pattern of output) {
            const found = printed.findIndex((line, j) => j >= from && pattern.test(line))
            assert.isAtLeast(
              found,
              0,
              `${lines[i]}\nprinted:\n${printed.join("\n")}\nexpected a line matching ${pattern}`
            )
            from = found + 1
          }
          if (output.length === 0) assert.deepStrictEqual(printed, [], lines[i])
          const example = commentExample(lines[i]!)
          if (example !== undefined && /^[{"]|^effect_/.test(example)) {
            assert.isTrue(
              output.some((pattern) => pattern.test(example!)),
              `the README's example output ${example} does not match what the command prints (${output.join(", ")})`
            )
          }
        })
      }),
    120_000
  )
})
