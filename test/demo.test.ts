/**
 * Runs `examples/demo.ts` as a real child process on a free port (with `node`, or with `npm start`), talks to it
 * over real HTTP, signals it, and checks what an operator would see: readiness turns 503 while the jobs in flight
 * drain (or, past the deadline, are released back to the store), a summary is printed and the process exits 0; a
 * second signal half a second later forces the exit; a port in use fails at once. Real time is bounded everywhere, and the child (and
 * its process group) is killed with SIGKILL when a test ends, however it ends.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Command from "@effect/platform/Command"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import { databaseUrl, query, uniqueName } from "./pgTestStore.js"

const root = fileURLToPath(new URL("..", import.meta.url))

/** Generous: on a busy machine, node and tsx take several seconds to start. */
const STEP_TIMEOUT = "30 seconds"
const REQUEST_TIMEOUT = "5 seconds"
const TEST_TIMEOUT = 60_000

class DemoError extends Data.TaggedError("DemoError")<{ readonly reason: string; readonly output: string }> {
  override get message(): string {
    return `${this.reason}\n--- demo output ---\n${this.output}`
  }
}

interface Line {
  readonly stream: "stdout" | "stderr"
  readonly text: string
}

interface Summary {
  readonly succeeded: number
  readonly retried: number
  readonly dead: number
  readonly released: number
}

const parseSummary = (lines: ReadonlyArray<Line>): Summary | undefined => {
  for (const { text } of lines) {
    const match = /summary: succeeded=(\d+) retried=(\d+) dead=(\d+) released=(\d+)/.exec(text)
    if (match !== null) {
      return {
        succeeded: Number(match[1]),
        retried: Number(match[2]),
        dead: Number(match[3]),
        released: Number(match[4])
      }
    }
  }
  return undefined
}

interface LeftInStore {
  readonly ready: number
  readonly scheduled: number
  readonly leased: number
  readonly dead: number
}

/** What the demo says its memory store still held once the job worker had drained. */
const parseLeft = (lines: ReadonlyArray<Line>): LeftInStore | undefined => {
  for (const { text } of lines) {
    const match = /left in the store: ready=(\d+) scheduled=(\d+) leased=(\d+) dead=(\d+)/.exec(text)
    if (match !== null) {
      return { ready: Number(match[1]), scheduled: Number(match[2]), leased: Number(match[3]), dead: Number(match[4]) }
    }
  }
  return undefined
}

/** A job's attempt that ended: it succeeded, failed (and was retried) or died. */
const jobEnded = /job \d+ \S+ (succeeded|failed|dead) /

const indexOf = (lines: ReadonlyArray<Line>, pattern: RegExp): number =>
  lines.findIndex((line) => pattern.test(line.text))

const lastIndexOf = (lines: ReadonlyArray<Line>, pattern: RegExp): number => {
  for (let i = lines.length - 1; i >= 0; i--) {
    if (pattern.test(lines[i]!.text)) return i
  }
  return -1
}

const show = (lines: ReadonlyArray<Line>): string =>
  lines.map((line) => (line.stream === "stderr" ? "[stderr] " : "") + line.text).join("\n")

interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** A fresh connection per request: nothing of the test keeps the demo's server open. */
const HttpClientLive = NodeHttpClient.layerWithoutAgent.pipe(
  Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: false }))
)

/** How a test runs the demo: with `node` itself, or with `npm start` as the README says. */
type Launcher = "node" | "npm"

const launchers: Record<Launcher, Command.Command> = {
  node: Command.make(process.execPath, "--import", "tsx", "examples/demo.ts"),
  npm: Command.make("npm", "start")
}

/**
 * SIGKILL to every process left in the group of `pid`. The executor spawns each child detached, the leader of a
 * group of its own, so this also reaches what npm started if npm is gone and left it running.
 */
const killGroup = (pid: number) =>
  Effect.sync(() => {
    try {
      process.kill(-pid, "SIGKILL")
    } catch {
      // No process left in the group.
    }
  })

/** Whether a process with this pid exists (signal 0 checks without signalling). */
const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Starts the demo with `launcher` and `env` added to this process's environment (`PORT=0`, a free port, unless
 * `env` says otherwise). Its output (stdout and stderr, line by line) is collected as it comes. When the scope
 * closes, the process is killed with SIGKILL if it is still running, and so is anything left in its group.
 */
const spawnDemo = (env: Record<string, string>, launcher: Launcher) =>
  Effect.gen(function*() {
    const command = launchers[launcher].pipe(
      Command.workingDirectory(root),
      // The tests' own DATABASE_URL (the server the store tests use) is not the demo's unless a test says so.
      Command.env({ PORT: "0", DATABASE_URL: "", ...env })
    )
    const proc = yield* Command.start(command)
    // Added after `start`, so it runs before the executor's own finalizer (which sends SIGTERM and waits).
    yield* Effect.addFinalizer(() =>
      proc.isRunning.pipe(
        Effect.flatMap((running) => running ? proc.kill("SIGKILL") : Effect.void),
        Effect.ignore,
        Effect.zipRight(killGroup(proc.pid))
      )
    )

    const output = yield* SubscriptionRef.make<ReadonlyArray<Line>>([])
    const lines = <E>(stream: Stream.Stream<Uint8Array, E>, name: Line["stream"]) =>
      stream.pipe(Stream.decodeText(), Stream.splitLines, Stream.map((text): Line => ({ stream: name, text })))
    const reader = yield* Stream.merge(lines(proc.stdout, "stdout"), lines(proc.stderr, "stderr")).pipe(
      Stream.runForEach((line) => SubscriptionRef.update(output, (all) => [...all, line])),
      Effect.forkScoped
    )

    const fail = (reason: string) =>
      Effect.flatMap(SubscriptionRef.get(output), (all) => Effect.fail(new DemoError({ reason, output: show(all) })))

    /** Waits until a line matches `pattern` and returns the match; fails if the demo exits first or in time. */
    const waitFor = (pattern: RegExp): Effect.Effect<RegExpExecArray, DemoError> =>
      output.changes.pipe(
        Stream.filterMap((all) => Option.firstSomeOf(all.map((line) => Option.fromNullable(pattern.exec(line.text))))),
        Stream.runHead,
        Effect.flatMap(Option.match({
          onNone: () => fail(`output ended before a line matched ${pattern}`),
          onSome: Effect.succeed
        })),
        // The line may still be in the pipe when the process exits: give up only once the output is read.
        Effect.raceFirst(
          Effect.ignore(Effect.zipRight(proc.exitCode, Fiber.join(reader))).pipe(
            Effect.zipRight(fail(`the demo exited before a line matched ${pattern}`))
          )
        ),
        Effect.timeout(STEP_TIMEOUT),
        Effect.catchTag("TimeoutException", () => fail(`no line matched ${pattern} within ${STEP_TIMEOUT}`))
      )

    /** Sends `signal` to the process the test started (npm itself under `npm start`); does not wait. */
    const signal = (signal: NodeJS.Signals) => Effect.sync(() => process.kill(proc.pid, signal))

    /** Waits for the process the test started to exit; returns its exit code and every line the demo printed. */
    const awaitExit = Effect.gen(function*() {
      const exitCode = yield* proc.exitCode
      yield* Fiber.join(reader)
      const all = yield* SubscriptionRef.get(output)
      return { exitCode, lines: all, output: show(all) }
    }).pipe(
      Effect.timeout(STEP_TIMEOUT),
      Effect.catchAll((error) => fail(`waiting for the demo to exit: ${error.message}`))
    )

    return { childPid: proc.pid, fail, waitFor, signal, isRunning: proc.isRunning, awaitExit } as const
  })

/**
 * {@link spawnDemo}, then waits until the demo listens. `demoPid` is the demo's own process (it logs it): under
 * `npm start`, not the process the test started (`childPid`) but npm's child.
 */
const startDemo = (env: Record<string, string>, launcher: Launcher = "node") =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const demo = yield* spawnDemo(env, launcher)
    const { fail } = demo
    const listening = yield* demo.waitFor(/listening on (http:\/\/\S+) \(pid (\d+)\)/)
    const url = listening[1]!
    const demoPid = Number(listening[2])

    /**
     * One real HTTP request, with `json` as its body when given (any text, sent as `application/json`); fails if the
     * server does not answer within `REQUEST_TIMEOUT`.
     */
    const request = (method: "GET" | "POST", path: string, json?: string): Effect.Effect<Answer, DemoError> =>
      client.execute(
        json === undefined
          ? HttpClientRequest.make(method)(url + path)
          : HttpClientRequest.bodyText(HttpClientRequest.make(method)(url + path), json, "application/json")
      ).pipe(
        Effect.flatMap((response) =>
          Effect.map(response.text, (body): Answer => ({ status: response.status, headers: response.headers, body }))
        ),
        Effect.timeout(REQUEST_TIMEOUT),
        Effect.catchAll((error) => fail(`${method} ${path}: ${error.message}`))
      )

    /** Repeats `check` every 50 ms until it returns a value; fails after `STEP_TIMEOUT` or as soon as `check` fails. */
    const poll = <A>(what: string, check: Effect.Effect<Option.Option<A>, DemoError>): Effect.Effect<A, DemoError> =>
      Effect.gen(function*() {
        while (true) {
          const found = yield* check
          if (Option.isSome(found)) return found.value
          yield* Effect.sleep("50 millis")
        }
      }).pipe(
        Effect.timeout(STEP_TIMEOUT),
        Effect.catchTag("TimeoutException", () => fail(`timed out after ${STEP_TIMEOUT} waiting for ${what}`))
      )

    /** Waits until the demo is ready (readiness 200) and has a job in flight (`taskCount` at least 1). */
    const awaitBusy = Effect.gen(function*() {
      yield* poll(
        "readiness 200",
        Effect.map(request("GET", "/health/ready"), (answer) => Option.liftPredicate(answer, (a) => a.status === 200))
      )
      yield* poll(
        "a job in flight",
        Effect.map(
          request("GET", "/worker"),
          (answer) => Option.liftPredicate(answer, (a) => JSON.parse(a.body).taskCount >= 1)
        )
      )
    })

    return { ...demo, url, demoPid, request, poll, awaitBusy } as const
  })

/** A plain TCP server on a free port of 127.0.0.1, closed with the scope: the port is busy while it lives. */
const occupyPort = Effect.acquireRelease(
  Effect.async<Net.Server, Error>((resume) => {
    const server = Net.createServer()
    server.once("error", (error) => resume(Effect.fail(error)))
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map((server) => (server.address() as Net.AddressInfo).port))

const runDemo = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provide(self, Layer.merge(NodeContext.layer, HttpClientLive))

describe("examples/demo.ts", () => {
  it.scopedLive(
    "on SIGTERM, answers 503 on readiness while the jobs in flight drain, then prints a summary and exits 0",
    () =>
      runDemo(Effect.gen(function*() {
        // Jobs of a fixed 3 s: several are in flight at the signal, and they end well within the 20 s timeout.
        const demo = yield* startDemo({ SHUTDOWN_TIMEOUT: "20", DEMO_JOB_MS: "3000" })
        assert.match(demo.url, /^http:\/\/127\.0\.0\.1:\d+$/)
        yield* demo.awaitBusy

        yield* demo.signal("SIGTERM")
        const draining = yield* demo.poll(
          "readiness 503",
          Effect.map(demo.request("GET", "/health/ready"), (answer) =>
            Option.liftPredicate(answer, (a) => a.status === 503))
        )
        // The worker itself says it is still draining, and the process is still there to say it.
        assert.deepStrictEqual(JSON.parse(draining.body), { status: "unavailable", state: "Stopping", reasons: [] })
        assert.isTrue(yield* demo.isRunning)

        const { exitCode, lines, output } = yield* demo.awaitExit
        assert.strictEqual(exitCode, 0, output)
        const summary = parseSummary(lines)
        assert.isDefined(summary, output)
        assert.strictEqual(summary.released, 0, output)
        assert.notMatch(output, /\bERROR\b/, "bad input (or anything else) logged an error")
        assert.isAtLeast(summary.succeeded + summary.retried + summary.dead, 1, output)
        assert.strictEqual(parseLeft(lines)?.leased, 0, `no job is left leased\n${output}`)
        const stopping = indexOf(lines, /Stopping:/)
        assert.isAtLeast(stopping, 0, output)
        // Each transition is printed once, by the demo's listener; the library's own lines are at Debug.
        for (const transition of [/Started/, /Stopping/, /Stopped/]) {
          const printed = lines.filter((line) =>
            transition.test(line.text)
          ).length
          assert.strictEqual(printed, 1, `${transition} once\n${output}`)
        }
        const lastJob = lastIndexOf(lines, jobEnded)
        assert.isAbove(lastJob, stopping, `jobs in flight should end during the drain\n${output}`)
        assert.isAbove(indexOf(lines, /summary:/), lastJob, output)
      })),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "on SIGTERM, releases the jobs that outlive SHUTDOWN_TIMEOUT back to the store, reports them and still exits 0",
    () =>
      runDemo(Effect.gen(function*() {
        const demo = yield* startDemo({ SHUTDOWN_TIMEOUT: "1", DEMO_JOB_MS: "60000" })
        yield* demo.awaitBusy

        yield* demo.signal("SIGTERM")
        const { exitCode, lines, output } = yield* demo.awaitExit
        assert.strictEqual(exitCode, 0, output)
        const summary = parseSummary(lines)
        assert.isDefined(summary, output)
        assert.isAtLeast(summary.released, 1, output)
        assert.strictEqual(summary.succeeded + summary.retried + summary.dead, 0, output)
        assert.isAtLeast(indexOf(lines, /job \d+ \S+ released unfinished, attempt refunded/), 0, output)
        assert.isAtLeast(indexOf(lines, new RegExp(`Stopped: ${summary.released} task\\(s\\) interrupted`)), 0, output)
        // Released, not lost: each is ready again in the store, none is left leased.
        const left = parseLeft(lines)
        assert.isDefined(left, output)
        assert.strictEqual(left.leased, 0, output)
        assert.isAtLeast(left.ready, summary.released, output)
      })),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "a second SIGINT at least half a second after the first exits at once with code 130",
    () =>
      runDemo(Effect.gen(function*() {
        // Jobs and timeout far longer than the test: only the forced exit can end the process in time.
        const demo = yield* startDemo({ SHUTDOWN_TIMEOUT: "300", DEMO_JOB_MS: "300000" })
        yield* demo.awaitBusy

        yield* demo.signal("SIGINT")
        const firstAt = yield* Clock.currentTimeMillis
        yield* demo.poll(
          "readiness 503",
          Effect.map(demo.request("GET", "/health/ready"), (answer) =>
            Option.liftPredicate(answer, (a) => a.status === 503))
        )
        // Well past the half second within which a repeated signal counts as the same one.
        const waited = (yield* Clock.currentTimeMillis) - firstAt
        yield* Effect.sleep(Duration.millis(Math.max(0, 1000 - waited)))
        assert.isTrue(yield* demo.isRunning, "the drain is still going on")

        yield* demo.signal("SIGINT")
        const secondAt = yield* Clock.currentTimeMillis
        const { exitCode, lines, output } = yield* demo.awaitExit
        const exitedAfter = (yield* Clock.currentTimeMillis) - secondAt
        assert.strictEqual(exitCode, 130, output)
        assert.isBelow(exitedAfter, 15_000, output)
        const stderr = lines.filter((line) =>
          line.stream === "stderr"
        )
        assert.isAtLeast(indexOf(stderr, /SIGINT received again during graceful shutdown: exiting now/), 0, output)
        assert.isUndefined(parseSummary(lines), output)
      })),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "one SIGINT delivered twice within a few milliseconds (npm and the terminal) does not force: it drains, exits 0",
    () =>
      runDemo(Effect.gen(function*() {
        const demo = yield* startDemo({ SHUTDOWN_TIMEOUT: "30", DEMO_JOB_MS: "2000" })
        yield* demo.awaitBusy

        yield* demo.signal("SIGINT")
        yield* Effect.sleep("5 millis")
        yield* demo.signal("SIGINT")
        const { exitCode, lines, output } = yield* demo.awaitExit
        assert.strictEqual(exitCode, 0, output)
        assert.strictEqual(indexOf(lines, /exiting now/), -1, output)
        const summary = parseSummary(lines)
        assert.isDefined(summary, output)
        assert.strictEqual(summary.released, 0, output)
        assert.isAbove(lastIndexOf(lines, jobEnded), indexOf(lines, /Stopping:/), output)
      })),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "serves the routes the README shows, and exits 0 by itself after POST /worker/stop",
    () =>
      runDemo(Effect.gen(function*() {
        const demo = yield* startDemo({ SHUTDOWN_TIMEOUT: "20", DEMO_JOB_MS: "500" })
        yield* demo.awaitBusy

        const worker = yield* demo.request("GET", "/worker")
        assert.strictEqual(worker.status, 200)
        assert.include(JSON.parse(worker.body), { name: "demo", state: "Running", shuttingDown: false })

        const paused = yield* demo.request("POST", "/worker/pause")
        assert.deepStrictEqual([paused.status, JSON.parse(paused.body)], [200, { state: "Paused" }])
        const notReady = yield* demo.request("GET", "/health/ready")
        assert.deepStrictEqual([notReady.status, JSON.parse(notReady.body)], [503, {
          status: "unavailable",
          state: "Paused",
          reasons: []
        }])
        // The demo's own route is tracked: a paused worker turns it away without running it.
        const email = (to: string, more = "") => `{"type":"send-email","payload":{"to":"${to}"}${more}}`
        const refused = yield* demo.request("POST", "/jobs", email("ada@example.com"))
        assert.strictEqual(refused.status, 503)
        assert.strictEqual(refused.headers["retry-after"], "5")

        const resumed = yield* demo.request("POST", "/worker/resume")
        assert.deepStrictEqual([resumed.status, JSON.parse(resumed.body)], [200, { state: "Running" }])

        // An address the demo's handler fails with Job.Fatal: dead at its first attempt. Priority -1 jumps the queue.
        const queued = yield* demo.request("POST", "/jobs", email("nobody@example.invalid", `,"priority":-1`))
        assert.strictEqual(queued.status, 202, queued.body)
        const { id } = JSON.parse(queued.body)
        assert.isString(id)
        const deadIds = Effect.map(
          demo.request("GET", "/jobs/dead?queue=emails&limit=1000"),
          (answer) => (JSON.parse(answer.body).jobs as Array<{ id: string }>).map((job) => job.id)
        )
        yield* demo.waitFor(new RegExp(`job ${id} send-email dead after attempt 1: nobody@example\\.invalid`))
        const dead = yield* demo.request("GET", "/jobs/dead?queue=emails")
        assert.strictEqual(dead.status, 200, dead.body)
        const listed = (JSON.parse(dead.body).jobs as Array<Record<string, unknown>>).find((job) => job.id === id)
        assert.deepInclude(listed, { name: "send-email", queue: "emails", payload: { to: "nobody@example.invalid" } })
        assert.include(listed!.lastError, ".invalid")

        const redriven = yield* demo.request("POST", `/jobs/dead/${id}/redrive`)
        assert.deepStrictEqual([redriven.status, JSON.parse(redriven.body)], [200, { redriven: 1 }])
        // It runs again (and, its address being what it is, dies again at its first attempt: attempts were reset).
        yield* demo.poll(
          `job ${id} to die again`,
          Effect.map(deadIds, (ids) => Option.liftPredicate(ids, (ids) => ids.includes(id)))
        )
        assert.strictEqual((yield* demo.request("POST", "/jobs/dead/no-such-job/redrive")).status, 404)

        // Bad input is a 400 with a message, whatever is wrong with it.
        for (
          const [body, message] of [
            [`{"type":"send-email",`, /could not be decoded/],
            [`{"type":"fax","payload":{}}`, /unknown job type "fax"/],
            // Not a job type, whatever the object's prototype has: a 400, not a 500 and an ERROR log.
            [`{"type":"__proto__","payload":{}}`, /unknown job type "__proto__"/],
            [`{"type":"toString","payload":{}}`, /unknown job type "toString"/],
            [email("not an address"), /invalid payload for send-email: [\s\S]*"to"/],
            [email("ada@example.com", `,"delay":-5`), /"delay"/]
          ] as const
        ) {
          const answer = yield* demo.request("POST", "/jobs", body)
          assert.strictEqual(answer.status, 400, `${body}: ${answer.body}`)
          assert.include(JSON.parse(answer.body), { error: "BadRequest" })
          assert.match(JSON.parse(answer.body).message, message)
        }
        assert.strictEqual((yield* demo.request("GET", "/jobs/dead?limit=0")).status, 400)

        // A delayed job waits in the store, scheduled.
        const later = yield* demo.request("POST", "/jobs", email("ada@example.com", `,"delay":600000`))
        assert.strictEqual(later.status, 202, later.body)
        const stats = yield* demo.request("GET", "/jobs/stats")
        assert.strictEqual(stats.status, 200)
        assert.isAtLeast(JSON.parse(stats.body).byQueue.emails.scheduled, 1, stats.body)

        const metrics = yield* demo.request("GET", "/metrics")
        assert.strictEqual(metrics.status, 200)
        assert.match(metrics.body, /^effect_worker_jobs_claimed_total\{worker="demo",queue="emails"\} [1-9]\d*$/m)
        assert.match(metrics.body, /^effect_worker_tasks_started_total\{worker="demo",label="send-email"\} [1-9]\d*$/m)
        assert.match(metrics.body, /^effect_worker_state\{worker="demo",state="Running"\} 1$/m)

        const stop = yield* demo.request("POST", "/worker/stop")
        assert.strictEqual(stop.status, 202)
        const { exitCode, lines, output } = yield* demo.awaitExit
        assert.strictEqual(exitCode, 0, output)
        const summary = parseSummary(lines)
        assert.isDefined(summary, output)
        assert.strictEqual(summary.released, 0, output)
        assert.notMatch(output, /\bERROR\b/, "bad input (or anything else) logged an error")
        assert.isAtLeast(summary.dead, 2, output)
        const deaths = lines.filter((line) => line.text.includes(`job ${id} send-email dead after attempt 1:`))
        assert.strictEqual(deaths.length, 2, `dead, redriven, dead again at a first attempt\n${output}`)
        assert.isAtLeast(parseLeft(lines)?.scheduled ?? 0, 1, `the delayed job is still in the store\n${output}`)
      })),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "under npm start, SIGTERM to npm's own pid reaches the demo: it drains, prints its summary and is gone (3 runs)",
    () =>
      runDemo(Effect.gen(function*() {
        // Three in a row, each with a demo of its own: a signal that reaches node only some of the time fails here.
        for (let run = 1; run <= 3; run++) {
          yield* Effect.scoped(Effect.gen(function*() {
            const demo = yield* startDemo({ SHUTDOWN_TIMEOUT: "20", DEMO_JOB_MS: "1000" }, "npm")
            assert.notStrictEqual(demo.demoPid, demo.childPid, "the demo should run as npm's child, not as npm")
            yield* demo.awaitBusy

            yield* demo.signal("SIGTERM")
            yield* demo.waitFor(/summary:/)
            const { exitCode, lines, output } = yield* demo.awaitExit
            const label = `run ${run}\n${output}`
            assert.strictEqual(exitCode, 0, label)
            const summary = parseSummary(lines)
            assert.isDefined(summary, label)
            assert.strictEqual(summary.released, 0, label)
            assert.isAbove(lastIndexOf(lines, jobEnded), indexOf(lines, /Stopping:/), label)
            yield* demo.poll(
              `the demo's process ${demo.demoPid} to be gone`,
              Effect.sync(() => Option.liftPredicate(demo.demoPid, (pid) => !isAlive(pid)))
            )
          }))
        }
      })),
    3 * TEST_TIMEOUT
  )

  it.scopedLive(
    "with its port in use, exits non-zero at once with EADDRINUSE, before the worker has started or run a job",
    () =>
      runDemo(Effect.gen(function*() {
        const port = yield* occupyPort
        const demo = yield* spawnDemo({ PORT: String(port) }, "node")
        const { exitCode, lines, output } = yield* demo.awaitExit
        assert.notStrictEqual(exitCode, 0, output)
        assert.isAtLeast(indexOf(lines, /EADDRINUSE/), 0, output)
        assert.strictEqual(indexOf(lines, /Started:/), -1, output)
        assert.strictEqual(indexOf(lines, /\bjob \d+/), -1, output)
      })),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "on SIGTERM while paused, claims nothing more and leaves the jobs it did not claim in the store, counted",
    () =>
      runDemo(Effect.gen(function*() {
        const demo = yield* startDemo({ SHUTDOWN_TIMEOUT: "20", DEMO_JOB_MS: "1000" })
        yield* demo.awaitBusy
        assert.strictEqual((yield* demo.request("POST", "/worker/pause")).status, 200)
        const stats = Effect.map(demo.request("GET", "/jobs/stats"), (answer) => JSON.parse(answer.body))
        // The jobs in flight end, and the producer goes on: jobs wait in the store, none leased.
        yield* demo.poll(
          "the jobs in flight to end",
          Effect.map(
            demo.request("GET", "/worker"),
            (answer) => Option.liftPredicate(answer, (a) => JSON.parse(a.body).taskCount === 0)
          )
        )
        const waiting = yield* demo.poll(
          "jobs waiting in the store",
          Effect.map(stats, (s) => Option.liftPredicate(s, (s) => s.ready >= 1))
        )
        assert.strictEqual(waiting.leased, 0, JSON.stringify(waiting))

        yield* demo.signal("SIGTERM")
        const { exitCode, lines, output } = yield* demo.awaitExit
        assert.strictEqual(exitCode, 0, output)
        const summary = parseSummary(lines)
        assert.isDefined(summary, output)
        assert.strictEqual(summary.released, 0, output)
        assert.notMatch(output, /\bERROR\b/, "bad input (or anything else) logged an error")
        const left = parseLeft(lines)
        assert.isDefined(left, output)
        assert.strictEqual(left.leased, 0, output)
        assert.isAtLeast(left.ready, waiting.ready, output)
        // Nothing was claimed after the pause drained: no job ended after the readiness poll saw none in flight.
        assert.isBelow(lastIndexOf(lines, jobEnded), indexOf(lines, /Stopping:/), output)
      })),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "with DATABASE_URL, two demos share one PostgreSQL database's jobs, and leave them there when they stop",
    () =>
      runDemo(Effect.gen(function*() {
        const database = uniqueName("demo")
        yield* Effect.acquireRelease(
          Effect.promise(() => query(`CREATE DATABASE ${database}`)),
          () => Effect.promise(() => query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
        )
        const url = new URL(databaseUrl)
        url.pathname = `/${database}`
        const env = { DATABASE_URL: url.toString(), DEMO_JOB_MS: "200", SHUTDOWN_TIMEOUT: "5" }
        const demos = yield* Effect.all([startDemo(env), startDemo(env)], { concurrency: "unbounded" })
        for (const demo of demos) {
          yield* demo.waitFor(/jobs in PostgreSQL \(schema effect_worker\)/)
          // Each one runs jobs: the ones it enqueued or the other's, whichever it claimed first.
          yield* demo.waitFor(/job \d+ \S+ succeeded/)
        }
        for (const demo of demos) yield* demo.signal("SIGTERM")
        const succeeded: Array<Set<string>> = []
        for (const demo of demos) {
          const { exitCode, lines, output } = yield* demo.awaitExit
          assert.strictEqual(exitCode, 0, output)
          assert.isAtLeast(parseSummary(lines)?.succeeded ?? 0, 1, output)
          assert.isTrue(lines.some((line) => /left in the store: .*\(in PostgreSQL: kept\)/.test(line.text)), output)
          succeeded.push(new Set(lines.flatMap((line) => /job (\d+) \S+ succeeded/.exec(line.text)?.[1] ?? [])))
        }
        // One store: the ids are the database's, and no job succeeded in both demos.
        const [first, second] = succeeded as [Set<string>, Set<string>]
        assert.deepStrictEqual([...first].filter((id) => second.has(id)), [])
      })),
    TEST_TIMEOUT
  )
})
