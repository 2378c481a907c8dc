/**
 * A job worker process for the chaos tests (`PgJobStore.chaos.test.ts`): a `PgJobStore` and a `JobWorker` with
 * one job type, `chaos`. The tests bundle it with esbuild and run the bundle with `node` (it starts much faster than
 * `node --import tsx test/pgChaosWorker.ts`, which runs it as well). They kill it, stop it, signal it and restart its
 * database, and judge what happened from what it wrote down.
 *
 * - A `chaos` job's payload is `{ ms, retryMs? }`: the handler sleeps `ms` (interruptibly; on attempts after the
 *   first, `retryMs` when given), and records each `start`, each `finish` and each `interrupt` as a row of
 *   `<SCHEMA>.runs (job_id, attempt, worker, pid, event, at, slot)`, `at` being this process's `Date.now()` and
 *   `slot` the job's `scheduledFor` (epoch milliseconds, null for a job no schedule enqueued), through the
 *   worker's own `PgClient` (a job of 0 ms writes its start and its finish in one statement: nothing happens between
 *   them). A row that cannot be written (the database is down) fails the attempt.
 * - stdout carries one JSON object per line: `{"ready":true,...}` once the worker runs, then one line per job
 *   event (`{"event":"JobLeaseLost","id":"7","attempt":1,"at":...}`), all of them or, with `EVENTS=failures`, all
 *   but `JobClaimed` and `JobSucceeded`. Logs go to stderr, one line each.
 * - SIGTERM or SIGINT shuts it down gracefully (`WorkerNode.runMain`): the jobs in flight get `SHUTDOWN_TIMEOUT_MS`,
 *   the ones still running then are released, attempt refunded, and the process exits 0.
 *
 * Environment: `DATABASE_URL`, `SCHEMA`, `WORKER_ID` (required); `CONCURRENCY` (default 4), `LEASE_MS` (2000),
 * `POLL_MS` (100), `SHUTDOWN_TIMEOUT_MS` (10000), `EVENTS` (`all`), `SCHEDULE` (a cron: the worker offers its slots
 * as the schedule `chaos-schedule`, each a `chaos` job of 0 ms; default none), `PG_CONNECTIONS` (the `PgClient`'s
 * pool, for the handler's rows and the schedule's offers: `CONCURRENCY` + 4) and `STORE_CONNECTIONS` (the store's
 * own, `maxConnections`: the store's default, 4); with the listening connection, a process holds at most their sum
 * and one. The `PgClient`'s application name is `chaos-<WORKER_ID>`, so the store's listening connection is
 * `chaos-<WORKER_ID> (listen)` and its own ones `chaos-<WORKER_ID> (store)`.
 */
import { PgClient } from "@effect/sql-pg"
import {
  Array as Arr,
  Cause,
  Config,
  Duration,
  Effect,
  Inspectable,
  Layer,
  Logger,
  Option,
  Redacted,
  Schedule,
  Schema
} from "effect"
import { Job, JobWorker, WorkerContext } from "../src/index.js"
import * as PgJobStore from "../src/PgJobStore.js"
import * as WorkerNode from "../src/WorkerNode.js"

const config = Config.all({
  url: Config.string("DATABASE_URL"),
  schema: Config.string("SCHEMA"),
  workerId: Config.string("WORKER_ID"),
  concurrency: Config.integer("CONCURRENCY").pipe(Config.withDefault(4)),
  leaseMs: Config.integer("LEASE_MS").pipe(Config.withDefault(2_000)),
  pollMs: Config.integer("POLL_MS").pipe(Config.withDefault(100)),
  shutdownTimeoutMs: Config.integer("SHUTDOWN_TIMEOUT_MS").pipe(Config.withDefault(10_000)),
  events: Config.literal("all", "failures")("EVENTS").pipe(Config.withDefault("all" as const)),
  schedule: Config.string("SCHEDULE").pipe(Config.withDefault("")),
  pgConnections: Config.option(Config.integer("PG_CONNECTIONS")),
  storeConnections: Config.option(Config.integer("STORE_CONNECTIONS"))
})

const Chaos = Job.make("chaos", {
  payload: Schema.Struct({ ms: Schema.Number, retryMs: Schema.optional(Schema.Number) }),
  // A failed attempt (its row could not be written) runs again soon, well within the tests' deadlines.
  retry: Schedule.spaced("200 millis")
})

const line = (value: object) => process.stdout.write(JSON.stringify(value) + "\n")

/** One line per log on stderr: time, level, message, annotations, and the cause's first line (no stack). */
const OneLineLogger = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const text = Arr.ensure(message).map((part) => Inspectable.toStringUnknown(part, 0)).join(" ")
  const fields = Arr.map(Arr.fromIterable(annotations), ([key, value]) => ` ${key}=${String(value)}`).join("")
  const reason = Cause.isEmpty(cause) ? "" : ` cause=${JSON.stringify(Cause.pretty(cause).split("\n")[0])}`
  process.stderr.write(`${date.toISOString().slice(11, 23)} ${logLevel.label} ${text}${fields}${reason}\n`)
})

const program = Effect.gen(function*() {
  const {
    concurrency,
    events,
    leaseMs,
    pgConnections,
    pollMs,
    schedule,
    schema,
    shutdownTimeoutMs,
    storeConnections,
    url,
    workerId
  } = yield* config
  const runs = `${schema}.runs`

  const record = (job: Job.JobInfo, event: "start" | "finish" | "interrupt") =>
    Effect.flatMap(PgClient.PgClient, (sql) =>
      sql.unsafe(
        `INSERT INTO ${runs} (job_id, attempt, worker, pid, event, at, slot) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [job.id, job.attempt, workerId, process.pid, event, Date.now(), job.scheduledFor?.getTime() ?? null]
      ))

  /** A job of 0 ms does nothing between its start and its finish: both rows go in one statement. */
  const recordBoth = (job: Job.JobInfo) =>
    Effect.flatMap(PgClient.PgClient, (sql) => {
      const at = Date.now()
      return sql.unsafe(
        `INSERT INTO ${runs} (job_id, attempt, worker, pid, event, at, slot)
         VALUES ($1, $2, $3, $4, 'start', $5, $6), ($1, $2, $3, $4, 'finish', $5, $6)`,
        [job.id, job.attempt, workerId, process.pid, at, job.scheduledFor?.getTime() ?? null]
      )
    })

  const handler = Chaos.handler(({ ms, retryMs }) =>
    Effect.gen(function*() {
      const job = yield* Job.Current
      const sleep = job.attempt > 1 && retryMs !== undefined ? retryMs : ms
      if (sleep <= 0) return yield* recordBoth(job)
      yield* record(job, "start")
      yield* Effect.sleep(Duration.millis(sleep)).pipe(
        // Written from the interruption's finalizer: a row that cannot be written within 2 s is given up.
        Effect.onInterrupt(() => Effect.ignore(Effect.timeout(record(job, "interrupt"), "2 seconds")))
      )
      yield* record(job, "finish")
    })
  )

  /** Listens before the job worker starts the context, so that no job event is missed. */
  const ListenerLive = Layer.effectDiscard(Effect.gen(function*() {
    const ctx = yield* WorkerContext
    yield* ctx.listen((event) =>
      Effect.sync(() => {
        if (event._tag !== "Custom" || !JobWorker.isJobEvent(event.value)) return
        const job = event.value
        if (events === "failures" && (job._tag === "JobClaimed" || job._tag === "JobSucceeded")) return
        line({ ...job, event: job._tag, at: Date.now() })
      })
    )
  }))

  const WorkerLive = JobWorker.layer({
    handlers: [handler],
    concurrency,
    lease: Duration.millis(leaseMs),
    pollInterval: Duration.millis(pollMs),
    workerId,
    schedules: schedule === "" ? [] : [Chaos.schedule(schedule, { ms: 0 }, { name: "chaos-schedule" })]
  }).pipe(
    Layer.provide(ListenerLive),
    Layer.provideMerge(WorkerContext.layer({ name: workerId, shutdownTimeout: Duration.millis(shutdownTimeoutMs) })),
    Layer.provideMerge(PgJobStore.layer({ schema, maxConnections: Option.getOrUndefined(storeConnections) })),
    Layer.provideMerge(PgClient.layer({
      url: Redacted.make(url),
      applicationName: `chaos-${workerId}`,
      maxConnections: Option.getOrElse(pgConnections, () => concurrency + 4)
    }))
  )

  yield* Effect.gen(function*() {
    line({ ready: true, worker: workerId, pid: process.pid })
    // Until SIGTERM or SIGINT interrupts this fiber: the layers are then released, which drains the worker.
    yield* Effect.never
  }).pipe(Effect.provide(WorkerLive))
})

WorkerNode.runMain(
  program.pipe(
    Effect.tapErrorCause((cause) => Effect.logError("the chaos worker failed", cause)),
    Effect.provide(Logger.replace(Logger.defaultLogger, OneLineLogger))
  ),
  { disablePrettyLogger: true }
)
