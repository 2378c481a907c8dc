/**
 * Chaos tests of the PostgreSQL job store: job workers run as child processes (`pgChaosWorker.ts`), and the tests
 * kill them with SIGKILL, stop them past their lease with SIGSTOP, shut them down with SIGTERM mid-job, restart the
 * database under them and cut their LISTEN connection. What happened is judged from the rows the workers' handler
 * wrote (`runs`: every start, finish and interruption of an attempt, by which worker), the store's tables, and the
 * job events each worker prints.
 *
 * Each scenario runs three rounds (the cron scenario on twenty processes one), each in a schema of its own (dropped
 * at its end) with workers of its own (killed at its end, and again after each test, however it ends). Nothing waits
 * a fixed time for something to happen: the tests poll for it, with a deadline. Leases are 2 s, so that recovery
 * takes seconds.
 */
import { PgClient } from "@effect/sql-pg"
import { afterAll, afterEach, assert, beforeAll, describe, it } from "@effect/vitest"
import { Data, Deferred, Duration, Effect, Exit, Fiber, Option, Redacted, Schedule } from "effect"
import * as esbuild from "esbuild"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { NewJob } from "../src/JobStore.js"
import { clientLayer, databaseUrl, scopedPgServer, testStore, uniqueName } from "./pgTestStore.js"

const root = fileURLToPath(new URL("..", import.meta.url))

/** Three by default; `CHAOS_ROUNDS=1` for a quicker look. */
const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? 3)
const LEASE_MS = 2_000
/** Generous: on a busy machine, a worker takes seconds to start. */
const READY_TIMEOUT = Duration.seconds(45)

class ChaosError extends Data.TaggedError("ChaosError")<{ readonly reason: string; readonly output: string }> {
  override get message(): string {
    return `${this.reason}\n${this.output}`
  }
}

// --- worker processes ----------------------------------------------------------------------------------------------

/**
 * The worker (`pgChaosWorker.ts`, the library's sources and its dependencies) bundled into one file, once per run:
 * `node` starts it in a fraction of a second, where `node --import tsx` spends more than a second of CPU compiling
 * and loading each process's modules, which twenty processes starting at once on two cores turn into half a minute.
 */
let workerBundle = ""
let bundleDir = ""

beforeAll(async () => {
  bundleDir = await mkdtemp(join(tmpdir(), "chaos-worker-"))
  workerBundle = join(bundleDir, "pgChaosWorker.mjs")
  await esbuild.build({
    entryPoints: [join(root, "test/pgChaosWorker.ts")],
    outfile: workerBundle,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
    // The CommonJS packages in the bundle (`pg`) call `require` for Node's modules, which an ES module lacks.
    banner: { js: `import { createRequire } from "node:module"; const require = createRequire(import.meta.url);` }
  })
}, 60_000)

afterAll(() => bundleDir === "" ? undefined : rm(bundleDir, { recursive: true, force: true }))

/** Every worker process a test started: killed after each test, however it ended. */
const children = new Set<ChildProcess>()

const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** SIGKILL (which also ends a stopped process), then waits for the exit. */
const killChild = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (hasExited(child)) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGKILL")
  })

afterEach(async () => {
  await Promise.all(Array.from(children, killChild))
  children.clear()
})

/** A job event as a worker prints it. */
interface EventLine {
  readonly event: string
  readonly id: string
  readonly attempt: number
  readonly at: number
  readonly refunded?: boolean
  /** `JobScheduled`'s: the slot its worker's offer took, as an ISO date. */
  readonly slot?: string
}

interface WorkerOptions {
  readonly concurrency?: number
  readonly pollMs?: number
  readonly shutdownTimeoutMs?: number
  readonly events?: "all" | "failures"
  readonly schedule?: string
  readonly leaseMs?: number
  /** The `PgClient`'s pool and the store's own connections; unset, the worker's defaults (`concurrency` + 4, and 4). */
  readonly pgConnections?: number
  readonly storeConnections?: number
}

interface Worker {
  readonly id: string
  readonly pid: number
  readonly child: ChildProcess
  /** The job events it printed so far. */
  readonly events: ReadonlyArray<EventLine>
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** Waits for the process to exit: its exit code, or the signal that ended it. */
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly isRunning: () => boolean
  /** Whether a line it logged (on stderr) matches `pattern`. */
  readonly logged: (pattern: RegExp) => boolean
  /** Its last lines of output, stdout and stderr. */
  readonly output: () => string
}

const spawnWorker = (url: string, schema: string, id: string, options: WorkerOptions = {}) =>
  Effect.gen(function*() {
    const child = spawn(process.execPath, [workerBundle], {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: url,
        SCHEMA: schema,
        WORKER_ID: id,
        CONCURRENCY: String(options.concurrency ?? 4),
        LEASE_MS: String(options.leaseMs ?? LEASE_MS),
        POLL_MS: String(options.pollMs ?? 100),
        SHUTDOWN_TIMEOUT_MS: String(options.shutdownTimeoutMs ?? 10_000),
        EVENTS: options.events ?? "all",
        SCHEDULE: options.schedule ?? "",
        // Unset, the worker's own defaults.
        ...(options.pgConnections === undefined ? {} : { PG_CONNECTIONS: String(options.pgConnections) }),
        ...(options.storeConnections === undefined ? {} : { STORE_CONNECTIONS: String(options.storeConnections) })
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.add(child)
    const lines: Array<string> = []
    const events: Array<EventLine> = []
    const ready = Deferred.unsafeMake<void, string>(undefined as never)
    const closed = Deferred.unsafeMake<{ code: number | null; signal: NodeJS.Signals | null }>(undefined as never)
    const onLines = (stream: NodeJS.ReadableStream, prefix: string, parse: boolean) => {
      let rest = ""
      stream.setEncoding("utf8")
      stream.on("data", (chunk: string) => {
        const parts = (rest + chunk).split("\n")
        rest = parts.pop()!
        for (const text of parts) {
          lines.push(prefix + text)
          if (!parse || !text.startsWith("{")) continue
          const value = JSON.parse(text) as { readonly ready?: boolean } & EventLine
          if (value.ready === true) Deferred.unsafeDone(ready, Exit.void)
          else if (typeof value.event === "string") events.push(value)
        }
      })
    }
    onLines(child.stdout!, "", true)
    onLines(child.stderr!, "[stderr] ", false)
    // `close`: the process has exited and its output is read.
    child.once("close", (code, signal) => {
      Deferred.unsafeDone(ready, Exit.fail(`exited (${code ?? signal}) before it was ready`))
      Deferred.unsafeDone(closed, Exit.succeed({ code, signal }))
    })
    const output = () => `--- worker ${id} (pid ${child.pid}) ---\n${lines.slice(-80).join("\n")}`
    yield* Deferred.await(ready).pipe(
      Effect.timeoutFail({ duration: READY_TIMEOUT, onTimeout: () => `not ready within ${READY_TIMEOUT}` }),
      Effect.mapError((reason) => new ChaosError({ reason: `worker ${id} ${reason}`, output: output() }))
    )
    return {
      id,
      pid: child.pid!,
      child,
      events,
      signal: (signal) => Effect.sync(() => void child.kill(signal)),
      exited: Deferred.await(closed),
      isRunning: () => !hasExited(child),
      logged: (pattern) => lines.some((text) => text.startsWith("[stderr] ") && pattern.test(text)),
      output
    } satisfies Worker
  })

// --- a round: a schema, its store, its workers ---------------------------------------------------------------------

interface Run {
  readonly job: string
  readonly attempt: number
  readonly worker: string
  readonly event: "start" | "finish" | "interrupt"
  readonly at: number
}

/** The payload of a `chaos` job: sleep `ms` (`retryMs` on attempts after the first). */
interface Payload {
  readonly ms: number
  readonly retryMs?: number
}

/**
 * A round on the server at `url` (the `PgClient` in the context is on it): a fresh schema with its store (which
 * the test enqueues with, without listening) and its `runs` table, and the workers the round starts, killed when
 * the round's scope closes, before the schema is dropped.
 */
const makeRound = (url: string) =>
  Effect.gen(function*() {
    const schema = uniqueName("chaos")
    const store = yield* testStore({ schema, listen: false })
    const sql = yield* PgClient.PgClient
    yield* sql.unsafe(
      `CREATE TABLE ${schema}.runs (job_id bigint NOT NULL, attempt int NOT NULL, worker text NOT NULL,
         pid int NOT NULL, event text NOT NULL, at float8 NOT NULL, slot float8)`
    )
    const workers: Array<Worker> = []
    yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all(workers.map((w) => killChild(w.child)))))

    const output = () => workers.map((w) => w.output()).join("\n")
    const fail = (reason: string) => new ChaosError({ reason, output: output() })

    const start = (id: string, options?: WorkerOptions) =>
      Effect.tap(spawnWorker(url, schema, id, options), (worker) => Effect.sync(() => workers.push(worker)))

    const enqueue = (payloads: ReadonlyArray<Payload>): Effect.Effect<ReadonlyArray<string>, unknown> =>
      Effect.gen(function*() {
        // Ready now by the database's clock.
        const jobs = payloads.map((payload): NewJob => ({
          name: "chaos",
          queue: "chaos",
          payload,
          priority: 0,
          key: undefined,
          maxAttempts: 25
        }))
        const ids: Array<string> = []
        for (let i = 0; i < jobs.length; i += 5_000) ids.push(...(yield* store.enqueue(jobs.slice(i, i + 5_000))))
        return ids
      })

    /** Repeats `check` every 25 ms until it returns a value; fails after `timeout`. */
    const waitFor = <A, E, R>(
      what: string,
      check: Effect.Effect<Option.Option<A>, E, R>,
      timeout: Duration.DurationInput = "30 seconds"
    ): Effect.Effect<A, E | ChaosError, R> =>
      Effect.gen(function*() {
        while (true) {
          const found = yield* check
          if (Option.isSome(found)) return found.value
          yield* Effect.sleep("25 millis")
        }
      }).pipe(
        Effect.timeoutFail({ duration: timeout, onTimeout: () => fail(`timed out waiting for ${what}`) })
      )

    const runs = sql.unsafe<Run>(
      `SELECT job_id::text AS job, attempt, worker, event, at FROM ${schema}.runs ORDER BY at`
    )
    const count = (text: string, params: ReadonlyArray<unknown> = []) =>
      Effect.map(sql.unsafe<{ readonly n: number }>(text, params as Array<unknown>), ([row]) => row!.n)
    const finishedJobs = count(`SELECT count(DISTINCT job_id)::int AS n FROM ${schema}.runs WHERE event = 'finish'`)
    const liveJobs = count(`SELECT count(*)::int AS n FROM ${schema}.jobs`)
    const deadJobs = count(`SELECT count(*)::int AS n FROM ${schema}.dead_jobs`)

    /** Waits until `n` jobs have finished and the store holds none any more (every one acknowledged). */
    const awaitAllDone = (n: number, timeout: Duration.DurationInput = "30 seconds") =>
      waitFor(
        `${n} jobs finished and acknowledged`,
        // The cheap count first: counting the finishes while thousands of jobs are left would only slow them down.
        Effect.flatMap(liveJobs, (live) =>
          live > 0
            ? Effect.succeedNone
            : Effect.map(finishedJobs, (finished) => Option.liftPredicate(finished, () => finished >= n))),
        timeout
      )

    /** Waits until `worker` printed `event` for job `id`. */
    const awaitEvent = (worker: Worker, event: string, id: string, timeout: Duration.DurationInput = "30 seconds") =>
      waitFor(
        `${event} of job ${id} from worker ${worker.id}`,
        Effect.sync(() => Option.fromNullable(worker.events.find((e) => e.event === event && e.id === id))),
        timeout
      )

    return {
      schema,
      sql,
      store,
      start,
      enqueue,
      waitFor,
      runs,
      count,
      liveJobs,
      deadJobs,
      awaitAllDone,
      awaitEvent,
      fail
    }
  })

/** Runs `round` `count` times (`ROUNDS` by default), one after the other, each in a scope of its own. */
const rounds = <E, R>(round: (n: number) => Effect.Effect<void, E, R>, count = ROUNDS) =>
  Effect.forEach(Array.from({ length: count }, (_, i) => i + 1), (n) =>
    Effect.scoped(Effect.gen(function*() {
      const startedAt = Date.now()
      yield* round(n)
      report(`round ${n} took ${Date.now() - startedAt} ms`)
    })), { discard: true })

const report = (text: string) => console.log(`[chaos] ${text}`)

const by = (runs: ReadonlyArray<Run>, filter: Partial<Run>) =>
  runs.filter((run) => Object.entries(filter).every(([key, value]) => run[key as keyof Run] === value))

const sleepFor = (ms: number): Payload => ({ ms })

// --- the cron scenario, for five and twenty processes ---------------------------------------------------------------

/**
 * A round of the cron scenario: `processes` workers offer the slots of a 1-second cron, and for the next 10 s, every
 * `replaceEvery`, one chosen at random is killed (SIGKILL) or stopped (SIGTERM) and a new one starts (it takes a
 * moment to be ready: one fewer runs meanwhile). Every slot the store took must be one job, and none may be missing
 * over the whole window, from the first second after the workers ran to the last second before they stopped.
 */
const cronRound = (n: number, processes: number, replaceEvery: Duration.DurationInput) =>
  Effect.gen(function*() {
    const t = yield* makeRound(databaseUrl)
    const options: WorkerOptions = {
      concurrency: 2,
      events: "failures",
      schedule: "* * * * * *",
      // Together the processes claim about 50 times a second, whatever their number (each every 100 ms of five,
      // every 400 ms of twenty): twenty polling every 100 ms keep both cores of a two-core machine busy on their own
      // (1.7 cores measured, 1.1 at 400 ms), and each start and each slot's offer waits for a core.
      pollMs: 20 * processes,
      // At most 3 + 3 connections and the listening one a process (about 5.5 of them measured): the twenty, the
      // ones stopping and starting, and this test's own stay far below the server's 200.
      pgConnections: 3,
      storeConnections: 3
    }
    let started = 0
    let fewestRunning = processes
    /** Every worker the round started, for what it printed; `running`, the ones neither killed nor stopped yet. */
    const all: Array<Worker> = []
    const running: Array<Worker> = []
    const startOne = Effect.suspend(() =>
      Effect.tap(t.start(`w${n}-${++started}`, options), (w) =>
        Effect.sync(() => {
          all.push(w)
          running.push(w)
        }))
    )
    // The workers' connections (each one's pool, its store's own and its listening one), sampled while they run:
    // the server allows 200, and every process must fit with room to spare.
    let mostConnections = 0
    const sampler = yield* Effect.fork(
      t.count(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1`, [`chaos-w${n}-%`]).pipe(
        Effect.flatMap((connections) =>
          Effect.sync(() => void (mostConnections = Math.max(mostConnections, connections)))
        ),
        Effect.ignore,
        Effect.repeat(Schedule.spaced("200 millis"))
      )
    )
    const startingAt = Date.now()
    yield* Effect.all(Array.from({ length: processes }, () => startOne), { concurrency: "unbounded", discard: true })
    const from = Date.now()
    const every = Duration.toMillis(replaceEvery)
    const done: Array<string> = []
    const starting: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
    for (let at = every; at <= 10_000; at += every) {
      yield* Effect.sleep(Duration.millis(every))
      const victim = running.splice(Math.floor(Math.random() * running.length), 1)[0]!
      // The ones replaced before and still starting are not running yet either.
      fewestRunning = Math.min(fewestRunning, running.length)
      const signal = Math.random() < 0.5 ? "SIGKILL" : "SIGTERM"
      yield* victim.signal(signal)
      done.push(`${victim.id} ${signal} at ${at / 1_000} s`)
      starting.push(yield* Effect.fork(startOne))
    }
    for (const fiber of starting) yield* Fiber.join(fiber)
    const until = Date.now()
    for (const w of running) yield* w.signal("SIGTERM")
    for (const w of running) yield* w.exited
    yield* Fiber.interrupt(sampler)

    // Every slot the store took: the jobs that ran (by their `scheduledFor`) and the ones still stored.
    const slots = yield* t.sql.unsafe<{ readonly slot: number; readonly jobs: number; readonly job: string }>(
      `SELECT slot, count(DISTINCT id)::int AS jobs, min(id)::text AS job FROM (
         SELECT slot, job_id AS id FROM ${t.schema}.runs WHERE slot IS NOT NULL
         UNION ALL
         SELECT (extract(epoch FROM scheduled_for) * 1000)::float8, id FROM ${t.schema}.jobs
         WHERE scheduled_for IS NOT NULL
       ) AS s GROUP BY slot ORDER BY slot`
    )
    const times = slots.map((row) => row.slot)
    for (const row of slots) {
      assert.strictEqual(row.jobs, 1, t.fail(`slot ${new Date(row.slot).toISOString()}: one job`).message)
    }
    for (let i = 1; i < times.length; i++) {
      assert.strictEqual(times[i]! - times[i - 1]!, 1_000, t.fail(`no slot skipped after ${times[i - 1]}`).message)
    }
    // The whole window, from the first second after the workers ran to the last second before they stopped.
    assert.isAtMost(times[0]!, Math.ceil(from / 1_000) * 1_000, t.fail("the first slot").message)
    assert.isAtLeast(times[times.length - 1]!, Math.floor(until / 1_000) * 1_000 - 1_000, t.fail("the last").message)

    // The worker whose offer took a slot says so (`JobScheduled`), the others nothing: no slot is claimed by two
    // processes, and each claim names the slot's job. (One killed right after its offer took a slot may not say it.)
    const jobOf = new Map(slots.map((row) => [row.slot, row.job]))
    const claims = all.flatMap((w) =>
      w.events.filter((e) => e.event === "JobScheduled").map((e) => ({ worker: w.id, id: e.id, slot: e.slot! }))
    )
    assert.isNotEmpty(claims, t.fail("the workers said which slots they enqueued").message)
    for (const claim of claims) {
      const others = claims.filter((other) => other.slot === claim.slot && other !== claim)
      assert.deepStrictEqual(others, [], t.fail(`slot ${claim.slot} claimed by ${claim.worker} alone`).message)
      assert.strictEqual(jobOf.get(Date.parse(claim.slot)), claim.id, t.fail(`the job of slot ${claim.slot}`).message)
    }
    const ran = yield* t.count(
      `SELECT count(DISTINCT slot)::int AS n FROM ${t.schema}.runs WHERE slot IS NOT NULL AND event = 'finish'`
    )
    const runners = yield* t.count(
      `SELECT count(DISTINCT worker)::int AS n FROM ${t.schema}.runs WHERE slot IS NOT NULL AND event = 'finish'`
    )
    report(
      `schedule on ${processes} processes, round ${n}: ${processes} ready ${from - startingAt} ms after their ` +
        `start; ${times.length} slots over ${until - from} ms, each enqueued once, ${ran} ran before the last ` +
        `workers stopped; ${started} processes in all, ${fewestRunning} to ${processes} running at once, with at ` +
        `most ${mostConnections} connections; slots enqueued by ${
          new Set(claims.map((claim) => claim.worker)).size
        } processes (their JobScheduled events), run by ${runners}; ${done.join(", ")}`
    )
  }).pipe(Effect.provide(clientLayer()))

// --- the scenarios --------------------------------------------------------------------------------------------------

describe("PgJobStore under chaos, with workers as child processes", () => {
  it.scopedLive(
    "a worker killed with SIGKILL loses nothing: another runs each of its jobs exactly once more",
    () =>
      rounds((n) =>
        Effect.gen(function*() {
          const t = yield* makeRound(databaseUrl)
          const a = yield* t.start(`a${n}`, { concurrency: 4 })
          // `a` claims the first four, which would run a minute; their second attempt takes 100 ms.
          const long = yield* t.enqueue(Array.from({ length: 4 }, () => ({ ms: 60_000, retryMs: 100 })))
          const short = yield* t.enqueue(Array.from({ length: 8 }, () => sleepFor(100)))
          const all = [...long, ...short]
          yield* t.waitFor(
            "four jobs running on a",
            Effect.map(t.runs, (runs) => Option.liftPredicate(runs, () => by(runs, { worker: a.id }).length >= 4))
          )
          const b = yield* t.start(`b${n}`, { concurrency: 4 })
          yield* a.signal("SIGKILL")
          const killedAt = Date.now()
          assert.strictEqual((yield* a.exited).signal, "SIGKILL")

          yield* t.awaitAllDone(all.length)
          const runs = yield* t.runs
          const crashed = all.filter((id) =>
            by(runs, { job: id, worker: a.id, event: "start" }).length > 0 &&
            by(runs, { job: id, worker: a.id, event: "finish" }).length === 0
          )
          assert.deepStrictEqual(crashed, long, t.fail("a crashed with its four long jobs in flight").message)
          for (const id of all) {
            const finishes = by(runs, { job: id, event: "finish" })
            assert.strictEqual(finishes.length, 1, t.fail(`job ${id} finished once`).message)
          }
          for (const id of long) {
            // Attempt 1 on a, cut off by the kill; attempt 2 on b, and nothing else.
            assert.deepStrictEqual(
              by(runs, { job: id }).map((run) => `${run.worker}:${run.attempt}:${run.event}`),
              [`${a.id}:1:start`, `${b.id}:2:start`, `${b.id}:2:finish`],
              t.fail(`job ${id}`).message
            )
          }
          for (const id of short) {
            assert.deepStrictEqual(
              by(runs, { job: id }).map((run) => `${run.attempt}:${run.event}`),
              ["1:start", "1:finish"],
              t.fail(`job ${id}`).message
            )
          }
          assert.strictEqual(yield* t.deadJobs, 0, "no job dead-lettered")
          assert.deepStrictEqual(b.events.filter((e) => e.event !== "JobClaimed" && e.event !== "JobSucceeded"), [])
          const recovered = Math.max(...long.map((id) => by(runs, { job: id, worker: b.id, event: "start" })[0]!.at))
          report(`SIGKILL round ${n}: a's ${long.length} jobs ran again on b ${recovered - killedAt} ms after the kill`)
        }).pipe(Effect.provide(clientLayer()))
      ),
    180_000
  )

  it.scopedLive(
    "a worker stopped past its lease finds it lost when it resumes: it interrupts the job, and its late ack changes nothing",
    () =>
      rounds((n) =>
        Effect.gen(function*() {
          const t = yield* makeRound(databaseUrl)
          const a = yield* t.start(`a${n}`, { concurrency: 2 })
          // j1 would run a minute on a: a is still in it when it resumes. j2's handler ends while a is stopped, so
          // a acknowledges it late, while b holds it under a lease of its own (b's attempt takes 4 s).
          const [j1, j2] = yield* t.enqueue([{ ms: 60_000, retryMs: 200 }, { ms: 1_000, retryMs: 4_000 }])
          yield* t.waitFor(
            "both jobs running on a",
            Effect.map(t.runs, (runs) => Option.liftPredicate(runs, () => by(runs, { worker: a.id }).length === 2))
          )
          yield* a.signal("SIGSTOP")
          const b = yield* t.start(`b${n}`, { concurrency: 2 })
          yield* t.awaitEvent(b, "JobSucceeded", j1!)
          yield* t.waitFor(
            "b running j2",
            Effect.map(t.runs, (runs) =>
              Option.liftPredicate(runs, () => by(runs, { job: j2!, worker: b.id }).length > 0))
          )
          const held = `SELECT leased_by, attempts::int AS attempts, lease_token::text AS token FROM ${t.schema}.jobs
                        WHERE id = $1::bigint`
          const before = yield* t.sql.unsafe<{ leased_by: string; attempts: number; token: string }>(held, [j2])
          assert.deepStrictEqual(before.map((row) => [row.leased_by, row.attempts]), [[b.id, 2]])

          yield* a.signal("SIGCONT")
          const resumedAt = Date.now()
          const lost1 = yield* t.awaitEvent(a, "JobLeaseLost", j1!, "10 seconds")
          const lost2 = yield* t.awaitEvent(a, "JobLeaseLost", j2!, "10 seconds")
          // a has given up both jobs; j2 is exactly as b holds it, and b is still running it.
          const after = yield* t.sql.unsafe<{ leased_by: string; attempts: number; token: string }>(held, [j2])
          assert.deepStrictEqual(after, before, t.fail("a's late ack left j2 as b holds it").message)
          assert.lengthOf(by(yield* t.runs, { job: j2!, worker: b.id, event: "finish" }), 0, "b still runs j2")

          yield* t.awaitEvent(b, "JobSucceeded", j2!)
          yield* t.awaitAllDone(2)
          const runs = yield* t.runs
          assert.deepStrictEqual(
            by(runs, { job: j1! }).map((run) =>
              `${run.worker}:${run.attempt}:${run.event}`
            ),
            [`${a.id}:1:start`, `${b.id}:2:start`, `${b.id}:2:finish`, `${a.id}:1:interrupt`],
            t.fail("j1: started on a, finished once by b, interrupted on a once it resumed").message
          )
          const j2Runs = by(runs, { job: j2! })
          assert.deepStrictEqual(
            by(j2Runs, { worker: b.id }).map((run) => `${run.attempt}:${run.event}`),
            ["2:start", "2:finish"],
            t.fail("j2: finished by b").message
          )
          // a's handler of j2 either wrote its finish before a learnt of the loss, or was interrupted first: either
          // way a acknowledged nothing.
          const aEnd = by(j2Runs, { worker: a.id }).map((run) => run.event).filter((event) => event !== "start")
          assert.isAtMost(aEnd.length, 1, t.fail("j2 on a").message)
          assert.deepStrictEqual(
            a.events.map((e) => `${e.event}:${e.id}`).sort(),
            [`JobClaimed:${j1}`, `JobClaimed:${j2}`, `JobLeaseLost:${j1}`, `JobLeaseLost:${j2}`].sort(),
            t.fail("a reported both leases lost and no outcome").message
          )
          assert.strictEqual(yield* t.deadJobs, 0)

          // a works on: with b gone, it runs the next job.
          yield* b.signal("SIGTERM")
          assert.strictEqual((yield* b.exited).code, 0)
          const [j3] = yield* t.enqueue([sleepFor(0)])
          yield* t.awaitEvent(a, "JobSucceeded", j3!)
          report(
            `SIGSTOP round ${n}: a learnt of the lost leases ${lost1.at - resumedAt} ms / ${
              lost2.at - resumedAt
            } ms after SIGCONT; a's j2 handler wrote ${aEnd[0] ?? "no end row (interrupted after its sleep)"}`
          )
        }).pipe(Effect.provide(clientLayer()))
      ),
    180_000
  )

  it.scopedLive(
    "four processes of eight slots run 20,000 jobs, each exactly once, and every process does a share",
    () =>
      rounds((n) =>
        Effect.gen(function*() {
          const total = 20_000
          const t = yield* makeRound(databaseUrl)
          const workers = yield* Effect.all(
            ["a", "b", "c", "d"].map((id) => t.start(`${id}${n}`, { concurrency: 8, events: "failures" })),
            { concurrency: "unbounded" }
          )
          const startedAt = Date.now()
          yield* t.enqueue(Array.from({ length: total }, () => sleepFor(0)))
          const enqueuedMs = Date.now() - startedAt
          yield* t.awaitAllDone(total, "240 seconds")
          const elapsed = Date.now() - startedAt
          const perJob = yield* t.sql.unsafe<{ finishes: number; jobs: number }>(
            `SELECT finishes, count(*)::int AS jobs FROM (
               SELECT job_id, count(*) FILTER (WHERE event = 'finish')::int AS finishes FROM ${t.schema}.runs
               GROUP BY job_id) AS per GROUP BY finishes`
          )
          assert.deepStrictEqual(perJob, [{ finishes: 1, jobs: total }], "every job finished exactly once")
          assert.strictEqual(
            yield* t.count(`SELECT count(*)::int AS n FROM ${t.schema}.runs WHERE event = 'start'`),
            total,
            "and started once"
          )
          const shares = yield* t.sql.unsafe<{ worker: string; n: number }>(
            `SELECT worker, count(*)::int AS n FROM ${t.schema}.runs WHERE event = 'finish' GROUP BY worker
             ORDER BY worker`
          )
          assert.deepStrictEqual(shares.map((share) => share.worker), workers.map((w) => w.id))
          for (const share of shares) assert.isAbove(share.n, 0, `${share.worker} did a share`)
          assert.strictEqual(yield* t.deadJobs, 0)
          for (const worker of workers) assert.deepStrictEqual(worker.events, [], worker.output())
          // The rate of each quarter of the finishes, in jobs/s: a store that slows down as jobs pile up shows here.
          const quarters = yield* t.sql.unsafe<{ rate: number }>(
            `SELECT round(count(*) / greatest(max(at) - min(at), 1) * 1000)::int AS rate FROM (
               SELECT at, ntile(4) OVER (ORDER BY at) AS q FROM ${t.schema}.runs WHERE event = 'finish') AS f
             GROUP BY q ORDER BY q`
          )
          report(
            `20,000 jobs round ${n}: enqueued in ${enqueuedMs} ms, all done in ${elapsed} ms ` +
              `(${Math.round(total / (elapsed / 1000))} jobs/s; by quarter ${
                quarters.map((q) => q.rate).join(", ")
              }); shares ${shares.map((share) => `${share.worker}=${share.n}`).join(" ")}`
          )
        }).pipe(Effect.provide(clientLayer({ maxConnections: 4 })))
      ),
    900_000
  )

  it.scopedLive(
    "SIGTERM lets short jobs finish and releases long ones, refunded, to another worker at once; the process exits 0",
    () =>
      rounds((n) =>
        Effect.gen(function*() {
          const t = yield* makeRound(databaseUrl)
          const a = yield* t.start(`a${n}`, { concurrency: 4, shutdownTimeoutMs: 1_500 })
          const short = yield* t.enqueue([sleepFor(500), sleepFor(500)])
          const long = yield* t.enqueue([sleepFor(60_000), sleepFor(60_000)])
          yield* t.waitFor(
            "four jobs running on a",
            Effect.map(t.runs, (runs) => Option.liftPredicate(runs, () => by(runs, { worker: a.id }).length === 4))
          )
          // b polls once a minute: only the release's wake-up can bring it the jobs at once.
          const b = yield* t.start(`b${n}`, { concurrency: 4, pollMs: 60_000, shutdownTimeoutMs: 1_000 })
          yield* a.signal("SIGTERM")
          const signalledAt = Date.now()
          const exit = yield* a.exited
          assert.deepStrictEqual(exit, { code: 0, signal: null }, a.output())
          const exitedAt = Date.now()

          yield* t.waitFor(
            "b running both long jobs",
            Effect.map(
              t.runs,
              (runs) =>
                Option.liftPredicate(runs, () => long.every((id) => by(runs, { job: id, worker: b.id }).length > 0))
            )
          )
          const runs = yield* t.runs
          for (const id of short) {
            assert.deepStrictEqual(
              by(runs, { job: id }).map((run) => `${run.worker}:${run.attempt}:${run.event}`),
              [`${a.id}:1:start`, `${a.id}:1:finish`],
              t.fail(`short job ${id} finished on a`).message
            )
            assert.isDefined(a.events.find((e) => e.event === "JobSucceeded" && e.id === id), a.output())
          }
          const pickups: Array<number> = []
          for (const id of long) {
            assert.deepStrictEqual(
              by(runs, { job: id }).map((run) => `${run.worker}:${run.attempt}:${run.event}`),
              [`${a.id}:1:start`, `${a.id}:1:interrupt`, `${b.id}:1:start`],
              t.fail(`long job ${id}: interrupted on a, attempt 1 again on b`).message
            )
            const released = a.events.find((e) => e.event === "JobReleased" && e.id === id)
            assert.isDefined(released, a.output())
            assert.strictEqual(released.refunded, true)
            const pickup = by(runs, { job: id, worker: b.id })[0]!.at - released.at
            pickups.push(pickup)
            assert.isBelow(pickup, 1_000, t.fail(`b started job ${id} ${pickup} ms after a released it`).message)
          }

          // b shuts down the same way: the long jobs go back again, attempts refunded, and wait in the store.
          yield* b.signal("SIGTERM")
          assert.deepStrictEqual(yield* b.exited, { code: 0, signal: null }, b.output())
          const left = yield* t.sql.unsafe<{ id: string; attempts: number; leased: boolean }>(
            `SELECT id::text AS id, attempts::int AS attempts, lease_token IS NOT NULL AS leased
             FROM ${t.schema}.jobs ORDER BY id`
          )
          assert.deepStrictEqual(left, long.map((id) => ({ id, attempts: 0, leased: false })))
          assert.strictEqual(yield* t.deadJobs, 0)
          report(
            `SIGTERM round ${n}: a exited 0 after ${exitedAt - signalledAt} ms; b picked the released jobs up ` +
              `${pickups.join(" ms, ")} ms after their release`
          )
        }).pipe(Effect.provide(clientLayer()))
      ),
    180_000
  )

  it.scopedLive(
    "a restart of PostgreSQL under running workers loses no job, runs again only jobs in flight, stops no worker",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const ServerClient = PgClient.layer({ url: Redacted.make(server.url), maxConnections: 4 })
        yield* rounds((n) =>
          Effect.gen(function*() {
            const total = 400
            const t = yield* makeRound(server.url)
            const workers = yield* Effect.all(
              [t.start(`a${n}`, { events: "failures" }), t.start(`b${n}`, { events: "failures" })],
              { concurrency: "unbounded" }
            )
            const ids = yield* t.enqueue(Array.from({ length: total }, () => sleepFor(20)))
            yield* t.waitFor(
              "a quarter of the jobs finished",
              Effect.map(
                t.count(`SELECT count(*)::int AS n FROM ${t.schema}.runs WHERE event = 'finish'`),
                (finished) => Option.liftPredicate(finished, () => finished >= total / 4)
              )
            )
            const leased = yield* t.sql.unsafe<{ id: string }>(
              `SELECT id::text AS id FROM ${t.schema}.jobs WHERE lease_token IS NOT NULL`
            )
            const snapshotAt = Date.now()
            yield* Effect.promise(() => server.stopServer())
            const downAt = Date.now()
            // The outage itself: the server stays down this long, as a failover would.
            yield* Effect.sleep("1500 millis")
            yield* Effect.promise(() => server.start())
            const upAt = Date.now()
            // This test's own pool lost its connections too: its next query waits for a fresh one.
            yield* t.waitFor("a connection to the restarted server", Effect.option(t.sql.unsafe(`SELECT 1`)))

            yield* t.awaitAllDone(total, "60 seconds")
            const doneAt = Date.now()
            const runs = yield* t.runs
            const finishes = new Map<string, number>()
            for (const run of by(runs, { event: "finish" })) finishes.set(run.job, (finishes.get(run.job) ?? 0) + 1)
            assert.deepStrictEqual(ids.filter((id) => !finishes.has(id)), [], "every job finished")
            // In flight at the restart: leased just before it, or started between then and the server's return.
            const inFlight = new Set([
              ...leased.map((row) => row.id),
              ...runs.filter((run) => run.event === "start" && run.at >= snapshotAt && run.at <= upAt).map((run) =>
                run.job
              )
            ])
            const duplicates = ids.filter((id) => finishes.get(id)! > 1)
            assert.deepStrictEqual(
              duplicates.filter((id) => !inFlight.has(id)),
              [],
              t.fail("only jobs in flight at the restart ran twice").message
            )
            assert.strictEqual(yield* t.deadJobs, 0)
            for (const worker of workers) {
              assert.isTrue(worker.isRunning(), worker.output())
              assert.isAbove(by(runs, { worker: worker.id }).filter((run) => run.at > upAt).length, 0, worker.output())
            }
            const firstAfter = Math.min(
              ...runs.filter((run) => run.event === "finish" && run.at > upAt).map((r) => r.at)
            )
            report(
              `restart round ${n}: down ${upAt - downAt} ms; first job finished ${firstAfter - upAt} ms after the ` +
                `server was back, all ${doneAt - upAt} ms after; ${inFlight.size} in flight, ${duplicates.length} ` +
                `finished twice`
            )
          }).pipe(Effect.provide(ServerClient))
        )
      }),
    240_000
  )

  it.scopedLive(
    "a killed LISTEN connection is replaced: a job enqueued after the kill starts within seconds with a 60 s poll",
    () =>
      rounds((n) =>
        Effect.gen(function*() {
          const t = yield* makeRound(databaseUrl)
          const a = yield* t.start(`a${n}`, { concurrency: 2, pollMs: 60_000 })
          const listening = `chaos-${a.id} (listen)`
          const listener = t.sql.unsafe<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity WHERE application_name = $1`,
            [listening]
          )
          const [before] = yield* t.waitFor(
            "a's listening connection",
            Effect.map(listener, (rows) => Option.liftPredicate(rows, () => rows.length === 1))
          )
          /** Enqueues a job and returns how long it took to start. */
          const startLatency = Effect.gen(function*() {
            const enqueuedAt = Date.now()
            const [id] = yield* t.enqueue([sleepFor(0)])
            const start = yield* t.waitFor(
              `job ${id} started`,
              Effect.map(t.runs, (runs) => Option.fromNullable(by(runs, { job: id!, event: "start" })[0])),
              "10 seconds"
            )
            return start.at - enqueuedAt
          })
          const baseline = yield* startLatency

          const killed = yield* t.sql.unsafe<{ killed: boolean }>(
            `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1`,
            [listening]
          )
          assert.deepStrictEqual(killed, [{ killed: true }])
          const afterKill = yield* startLatency
          assert.isBelow(afterKill, 2_000, t.fail(`a job enqueued after the kill started in ${afterKill} ms`).message)

          const [replaced] = yield* t.waitFor(
            "a new listening connection",
            Effect.map(
              listener,
              (rows) => Option.liftPredicate(rows, () => rows.length === 1 && rows[0]!.pid !== before!.pid)
            )
          )
          // The store said so: it lost the connection, polled meanwhile, and listens again.
          assert.isTrue(a.logged(/the listening connection failed/), a.output())
          yield* t.waitFor(
            "a's store listening again",
            Effect.sync(() => Option.liftPredicate(true, () => a.logged(/PgJobStore: listening on \S+ again/)))
          )
          const onNew = yield* startLatency
          assert.isBelow(onNew, 1_000, t.fail(`a job enqueued on the new connection started in ${onNew} ms`).message)
          assert.isTrue(a.isRunning())
          report(
            `LISTEN round ${n}: job start ${baseline} ms before the kill, ${afterKill} ms right after it, ` +
              `${onNew} ms on the new connection (pid ${before!.pid} -> ${replaced!.pid})`
          )
        }).pipe(Effect.provide(clientLayer()))
      ),
    120_000
  )

  it.scopedLive(
    "a job cancelled from a third process is interrupted on the worker that runs it within 1 s, its finalizer " +
      "runs, and it never runs again",
    () =>
      rounds((n) =>
        Effect.gen(function*() {
          const t = yield* makeRound(databaseUrl)
          // A lease of a minute: the workers renew every 20 s, so only the store's notification can stop the job
          // within a second.
          const options: WorkerOptions = { leaseMs: 60_000 }
          const [a, b] = yield* Effect.all([t.start(`a${n}`, options), t.start(`b${n}`, options)], {
            concurrency: "unbounded"
          })
          const [id] = yield* t.enqueue([sleepFor(60_000)])
          const started = yield* t.waitFor(
            "the job running",
            Effect.map(t.runs, (runs) => Option.fromNullable(by(runs, { job: id!, event: "start" })[0]))
          )
          const holder = started.worker === a.id ? a : b
          const cancelledAt = Date.now()
          // The test's own store (the third process): it listens to nothing, and only writes.
          assert.strictEqual(yield* t.store.cancel(id!), "cancelled")
          const interrupted = yield* t.waitFor(
            "the handler interrupted",
            Effect.map(t.runs, (runs) => Option.fromNullable(by(runs, { job: id!, event: "interrupt" })[0]))
          )
          yield* t.awaitEvent(holder, "JobCancelled", id!)
          const latency = interrupted.at - cancelledAt
          report(`cancel round ${n}: the handler on ${holder.id} was interrupted ${latency} ms after the cancel`)
          assert.isBelow(latency, 1_000, t.fail("interrupted within 1 s").message)
          assert.strictEqual(interrupted.worker, holder.id)
          // Several polls and a reap of both workers later, nothing ran it again.
          yield* Effect.sleep("2 seconds")
          const runs = by(yield* t.runs, { job: id! })
          assert.deepStrictEqual(
            runs.map((run) => `${run.worker}:${run.attempt}:${run.event}`),
            [`${holder.id}:1:start`, `${holder.id}:1:interrupt`],
            t.fail(`job ${id}`).message
          )
          assert.deepInclude(yield* t.store.get(id!), { state: "cancelled", attempts: 1 })
          for (const worker of [a, b]) {
            assert.deepStrictEqual(
              worker.events.filter((e) => e.event !== "JobClaimed" && e.event !== "JobCancelled"),
              [],
              t.fail(`no other event from ${worker.id}`).message
            )
          }
        }).pipe(Effect.provide(clientLayer()))
      ),
    180_000
  )

  it.scopedLive(
    "a 1-second cron on five worker processes, one killed or stopped and another started every 2 s: every " +
      "second's slot is enqueued once and runs",
    () => rounds((n) => cronRound(n, 5, "2 seconds")),
    180_000
  )

  it.scopedLive(
    "a 1-second cron on twenty worker processes, one killed or stopped and another started every second: every " +
      "second's slot is enqueued once and runs",
    // One round, not `ROUNDS`: twenty processes take some 10 s of both cores to start, and the round's ten
    // replacements are already twice a five-process round's.
    () => rounds((n) => cronRound(n, 20, "1 second"), 1),
    180_000
  )
})
