/**
 * Installs the package as a user of the core would: `npm run build`, `npm pack` into a temporary directory, then
 * `npm install <tarball> effect` in an empty project elsewhere (and, in a second project, with `@effect/platform` but
 * no OpenTelemetry package, to serve the probes from `WorkerHttp`). Checks what that install brings (itself, `effect`
 * and what `effect` depends on: none of the optional peers of `WorkerHttp`, `WorkerNode` and `PgJobStore`), and that a plain ESM
 * script runs a worker from the installed package. Real npm, real registry; everything happens outside the repo,
 * and the temporary directory is removed at the end.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const root = fileURLToPath(new URL("..", import.meta.url))

/** Build, pack and install talk to the registry and compile the library: generous. */
const SETUP_TIMEOUT = 240_000
const TEST_TIMEOUT = 60_000

/** This process's environment without npm's `npm_*` variables, so that `npm test` passes none of its own config on. */
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_")))

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end; returns its exit code and output. */
const exec = async (command: string, args: ReadonlyArray<string>, cwd: string): Promise<Run> => {
  try {
    const { stderr, stdout } = await promisify(execFile)(command, [...args], { cwd, env, maxBuffer: 16 << 20 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const { code, stderr = "", stdout = "" } = error as { code?: unknown; stdout?: string; stderr?: string }
    if (typeof code !== "number") throw error
    return { code, stdout, stderr }
  }
}

/** Runs a command; fails with its output when it exits non-zero. */
const run = async (command: string, args: ReadonlyArray<string>, cwd: string): Promise<Run> => {
  const result = await exec(command, args, cwd)
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.code} in ${cwd}\n${result.stdout}\n${result.stderr}`)
  }
  return result
}

const readJson = async (file: string): Promise<Record<string, any>> => JSON.parse(await fs.readFile(file, "utf8"))

/** Every package directly under `node_modules`, scoped ones as `@scope/name`. */
const installed = async (nodeModules: string): Promise<Array<string>> => {
  const names: Array<string> = []
  for (const entry of await fs.readdir(nodeModules)) {
    if (entry.startsWith(".")) continue
    if (entry.startsWith("@")) {
      for (const name of await fs.readdir(path.join(nodeModules, entry))) names.push(`${entry}/${name}`)
    } else {
      names.push(entry)
    }
  }
  return names.sort()
}

/** `name` and what it depends on, transitively, as installed under `nodeModules`. */
const closure = async (nodeModules: string, name: string, seen = new Set<string>()): Promise<Set<string>> => {
  if (seen.has(name)) return seen
  seen.add(name)
  const manifest = await readJson(path.join(nodeModules, name, "package.json"))
  for (const dependency of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) {
    await closure(nodeModules, dependency, seen)
  }
  return seen
}

/** A user's first script against the installed core: a context, started, one task tracked, then stopped. */
const script = `
import { Effect } from "effect"
import { WorkerContext } from "effect-worker-context"

const program = Effect.gen(function*() {
  const ctx = yield* WorkerContext.make({ name: "packed" })
  yield* ctx.start
  const task = yield* ctx.track(Effect.as(Effect.sleep("20 millis"), 42))
  console.log("main: started: " + (yield* ctx.state) + ", tasks: " + (yield* ctx.taskCount))
  yield* ctx.stop
  const exit = yield* task.await
  console.log("main: stopped: " + (yield* ctx.state) + ", task: " + exit._tag + " " + exit.value)
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
`

/** A worker's readiness probe, answered by `WorkerHttp.app` through the platform's web handler: no server needed. */
const probesScript = `
import { HttpApp } from "@effect/platform"
import { Effect } from "effect"
import { WorkerContext } from "effect-worker-context"
import * as WorkerHttp from "effect-worker-context/WorkerHttp"

const program = Effect.gen(function*() {
  const ctx = yield* WorkerContext.make({ name: "probes", logLevel: "None" })
  yield* ctx.start
  const handler = HttpApp.toWebHandler(Effect.provideService(WorkerHttp.app, WorkerContext, ctx))
  const response = yield* Effect.promise(() => handler(new Request("http://localhost/health/ready")))
  console.log("main: " + response.status + " " + (yield* Effect.promise(() => response.text())))
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
`

describe("the packed package, installed with effect alone", () => {
  let tmp = ""
  let project = ""
  /** A second project: the package with effect and @effect/platform, and no OpenTelemetry package. */
  let probes = ""

  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), "effect-worker-context-pack-"))
    await run("npm", ["run", "build"], root)
    const packed = JSON.parse((await run("npm", ["pack", "--json", "--pack-destination", tmp], root)).stdout)
    const tarball = path.join(tmp, packed[0].filename)
    project = path.join(tmp, "project")
    await fs.mkdir(project)
    await fs.writeFile(
      path.join(project, "package.json"),
      JSON.stringify({ name: "core-only", version: "1.0.0", private: true, type: "module" }, null, 2)
    )
    await run("npm", ["install", tarball, "effect@3.22.4", "--no-audit", "--no-fund", "--ignore-scripts"], project)
    probes = path.join(tmp, "probes")
    await fs.mkdir(probes)
    await fs.writeFile(
      path.join(probes, "package.json"),
      JSON.stringify({ name: "probes-only", version: "1.0.0", private: true, type: "module" }, null, 2)
    )
    await run(
      "npm",
      ["install", tarball, "effect@3.22.4", "@effect/platform@0.97.2", "--no-audit", "--no-fund", "--ignore-scripts"],
      probes
    )
  }, SETUP_TIMEOUT)

  afterAll(async () => {
    if (tmp !== "") await fs.rm(tmp, { recursive: true, force: true })
  })

  it("installs nothing but itself, effect and what effect depends on", async () => {
    const nodeModules = path.join(project, "node_modules")
    const names = await installed(nodeModules)
    for (
      const unwanted of [
        "@opentelemetry",
        "@effect/platform",
        "@effect/platform-node",
        "@effect/opentelemetry",
        "@effect/sql",
        "@effect/sql-pg",
        "pg"
      ]
    ) {
      assert.isFalse(
        names.some((name) => name === unwanted || name.startsWith(`${unwanted}/`)),
        `${unwanted} installed: ${names.join(", ")}`
      )
    }
    const allowed = await closure(nodeModules, "effect")
    allowed.add("effect-worker-context")
    assert.deepStrictEqual(names.filter((name) => !allowed.has(name)), [], `installed: ${names.join(", ")}`)
    const manifest = await readJson(path.join(nodeModules, "effect-worker-context", "package.json"))
    assert.isUndefined(manifest.dependencies)
  }, TEST_TIMEOUT)

  it("runs a worker from a plain ESM script: started, a task tracked, stopped once it is done", async () => {
    await fs.writeFile(path.join(project, "main.js"), script)
    const { stdout } = await run(process.execPath, ["main.js"], project)
    // The script's own lines; the worker logs its transitions in between.
    const lines = stdout.split("\n").filter((line) => line.startsWith("main: "))
    assert.deepStrictEqual(lines, [
      "main: started: Running, tasks: 1",
      "main: stopped: Stopped, task: Success 42"
    ], stdout)
  }, TEST_TIMEOUT)

  it("does not load effect-worker-context/WorkerHttp without its optional peers, as the README says", async () => {
    const { code, stderr } = await exec(
      process.execPath,
      ["--input-type=module", "--eval", "await import(\"effect-worker-context/WorkerHttp\")"],
      project
    )
    assert.notStrictEqual(code, 0, stderr)
    assert.match(stderr, /ERR_MODULE_NOT_FOUND/)
    assert.match(stderr, /Cannot find package '@(effect\/(opentelemetry|platform)|opentelemetry\/[\w-]+)'/)
  }, TEST_TIMEOUT)

  it(
    "serves /health/ready from effect-worker-context/WorkerHttp with @effect/platform and no OpenTelemetry package",
    async () => {
      const names = await installed(path.join(probes, "node_modules"))
      assert.isFalse(
        names.some((name) => name.startsWith("@opentelemetry/") || name === "@effect/opentelemetry"),
        names.join(", ")
      )
      await fs.writeFile(path.join(probes, "main.js"), probesScript)
      const { stdout } = await run(process.execPath, ["main.js"], probes)
      const lines = stdout.split("\n").filter((line) => line.startsWith("main: "))
      assert.deepStrictEqual(lines, ["main: 200 {\"status\":\"ok\",\"state\":\"Running\"}"], stdout)
    },
    TEST_TIMEOUT
  )

  it(
    "does not load effect-worker-context/WorkerPrometheus without OpenTelemetry, the only module that needs it",
    async () => {
      const { code, stderr } = await exec(
        process.execPath,
        ["--input-type=module", "--eval", "await import(\"effect-worker-context/WorkerPrometheus\")"],
        probes
      )
      assert.notStrictEqual(code, 0, stderr)
      assert.match(stderr, /ERR_MODULE_NOT_FOUND/)
      assert.match(stderr, /Cannot find package '@(effect\/opentelemetry|opentelemetry\/[\w-]+)'/)
    },
    TEST_TIMEOUT
  )

  it("does not load effect-worker-context/PgJobStore without its optional peers", async () => {
    const { code, stderr } = await exec(
      process.execPath,
      ["--input-type=module", "--eval", "await import(\"effect-worker-context/PgJobStore\")"],
      project
    )
    assert.notStrictEqual(code, 0, stderr)
    assert.match(stderr, /ERR_MODULE_NOT_FOUND/)
    assert.match(stderr, /Cannot find package '(@effect\/sql(-pg)?|pg)'/)
  }, TEST_TIMEOUT)

  it("leaves no tarball in the repository, and dist/ ignored by git", async () => {
    const entries = await fs.readdir(root)
    assert.deepStrictEqual(entries.filter((entry) => entry.endsWith(".tgz")), [])
    const ignored = (await fs.readFile(path.join(root, ".gitignore"), "utf8")).split("\n").map((line) => line.trim())
    assert.include(ignored, "dist/")
  }, TEST_TIMEOUT)
})
