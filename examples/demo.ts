/**
 * A demo job worker: it runs two job types from an in-memory job store, serves the worker's probes, control routes
 * and metrics and the store's routes over HTTP, and on SIGTERM or Ctrl-C drains the jobs in flight, gives back the
 * ones the deadline cuts off, prints a summary and exits 0.
 *
 *     npm start                  # then, from another terminal: curl localhost:3000/jobs/stats
 *
 * - Two job types, each in a queue of its own: `resize-image` `{ width, height }` (queue `images`) and
 *   `send-email` `{ to }` (queue `emails`). A job takes 200 to 1500 ms and one attempt in five fails; a failed
 *   attempt is retried after 500 ms, then 1 s, and a job dies after its third failed attempt. An email to an
 *   address ending in `.invalid` fails with `Job.Fatal`: it goes to the dead letters at once.
 * - A producer enqueues a random job every 100 to 400 ms, until shutdown begins. `JobWorker` claims them (at most
 *   four in flight) while the worker is `Running`, and runs each as a task of the worker.
 * - HTTP (`WorkerHttp.routes`): `GET /worker`, `/health/live`, `/health/ready`, `/metrics`,
 *   `POST /worker/pause|resume|start|stop`; `GET /jobs/stats`, `GET /jobs/dead[?limit=N&queue=Q]`,
 *   `POST /jobs/dead/:id/redrive`; `GET /events` (server-sent events) and the live dashboard at
 *   `http://127.0.0.1:3000/dashboard`; `GET /metrics` (`WorkerPrometheus.router`); and `POST /jobs` with a JSON
 *   body (`Content-Type: application/json`, else 415)
 *   `{ "type": "send-email", "payload": { "to": "..." }, "delay"?: ms, "priority"?: n }`: 202 `{ id }`, 400 on a
 *   body that is not JSON, an unknown type or a payload its schema rejects. `POST /jobs` is a tracked route: 503
 *   while the worker is not running. It is behind the same guard and checks as the control routes: every route
 *   refuses a host name other than the loopback ones (421), the routes that act refuse a web page of another site
 *   (403), and no body may exceed 1 MB (413).
 * - SIGTERM or SIGINT (Ctrl-C): the worker goes `Stopping`. Readiness answers 503 at once, no job is claimed any
 *   more, and the jobs in flight get `SHUTDOWN_TIMEOUT` seconds to finish; the ones still running then are
 *   interrupted and released (back in the store, their attempt refunded). The server stops, a line counts what is
 *   left in the store (the store lives in memory: it goes with the process), a line
 *   `summary: succeeded=N retried=N dead=N released=N` is printed and the process exits 0. A second signal, at
 *   least half a second after the first, ends the process at once with code 130 (SIGINT) or 143 (SIGTERM).
 * - `POST /worker/stop` shuts the worker down the same way, and the process exits once it is stopped.
 *
 * Environment:
 * - `PORT`: the HTTP port (default 3000). `0` picks a free port; the log says which (`listening on http://...`).
 *   The server listens before the worker starts: a port in use ends the program at once, before any job ran.
 * - `HOST`: the interface to listen on (default `127.0.0.1`: without `DASHBOARD_TOKEN` the control routes have no
 *   authentication).
 * - `DASHBOARD_TOKEN`: a token the control routes, the redrive, the dead letters, `POST /jobs` and `GET /events`
 *   then ask for (`Authorization: Bearer <token>`); type it into the dashboard's form (it leaves no trace), or open
 *   the dashboard as `/dashboard#token=<token>` (the address stays in the browser's history). Unset (or empty),
 *   they are open to the programs of this host and its own pages, not to other web sites: fine on 127.0.0.1 for
 *   one user.
 * - `SHUTDOWN_TIMEOUT`: seconds shutdown waits for the jobs in flight (default 10, fractions allowed).
 * - `DEMO_JOB_MS`: every job takes exactly this many milliseconds (default: random, 200 to 1500).
 * - `DATABASE_URL`: a PostgreSQL server (`postgres://user:password@host:5432/db`): the jobs live there, in the
 *   schema `effect_worker` (created at start), instead of in memory. They survive the process, and every demo
 *   started with the same `DATABASE_URL` (on another `PORT`) shares the work: each claims what the others do not.
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import {
  Array as Arr,
  Cause,
  Config,
  Context,
  Duration,
  Effect,
  Exit,
  Inspectable,
  Layer,
  Logger,
  Option,
  Random,
  Redacted,
  Ref,
  Schema
} from "effect"
import { createServer } from "node:http"
import { JobStore, JobWorker, MemoryJobStore, WorkerContext, WorkerEvent } from "../src/index.js"
import * as PgJobStore from "../src/PgJobStore.js"
import * as WorkerHttp from "../src/WorkerHttp.js"
import * as WorkerHttpError from "../src/WorkerHttpError.js"
import * as WorkerHttpGuard from "../src/WorkerHttpGuard.js"
import * as WorkerNode from "../src/WorkerNode.js"
import * as WorkerPrometheus from "../src/WorkerPrometheus.js"
import { handlers, jobMillis, jobTypes, ResizeImage, SendEmail } from "./demoJobs.js"

const CONCURRENCY = 4
/** The longest `delay` `POST /jobs` takes: a day. */
const MAX_DELAY_MS = 86_400_000

const config = Config.all({
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "expected a port number, 0 to 65535", validation: (p) => p >= 0 && p <= 65535 }),
    Config.withDefault(3000)
  ),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  dashboardToken: Config.option(Config.redacted("DASHBOARD_TOKEN")).pipe(
    Config.map(Option.filter((token) => Redacted.value(token) !== ""))
  ),
  shutdownTimeout: Config.number("SHUTDOWN_TIMEOUT").pipe(
    Config.validate({ message: "expected a number of seconds, zero or more", validation: (s) => s >= 0 }),
    Config.withDefault(10),
    Config.map(Duration.seconds)
  ),
  // Empty counts as unset, so `DATABASE_URL= npm start` runs on the memory store whatever the shell exports.
  databaseUrl: Config.option(Config.redacted("DATABASE_URL")).pipe(
    Config.map(Option.filter((url) => Redacted.value(url) !== ""))
  ),
  jobMillis
})

// --- jobs: examples/demoJobs.ts ---------------------------------------------------------------------------------

/** Enqueues a random job every 100 to 400 ms, until shutdown begins. */
const produce = Effect.gen(function*() {
  const ctx = yield* WorkerContext
  const produceOne = Effect.gen(function*() {
    const n = yield* Random.nextIntBetween(1, 1000)
    yield* (yield* Random.nextBoolean)
      ? SendEmail.enqueue({ to: `user${n}@example.com` })
      : ResizeImage.enqueue({ width: 100 + n, height: 100 + n })
  }).pipe(
    Effect.catchAll((error) => Effect.logWarning("could not enqueue a demo job", error)),
    Effect.zipRight(Effect.flatMap(Random.nextIntBetween(100, 401), (ms) => Effect.sleep(Duration.millis(ms))))
  )
  yield* Effect.race(Effect.forever(produceOne), ctx.shutdownRequested)
})

// --- what happened ------------------------------------------------------------------------------------------------

interface Tally {
  readonly succeeded: number
  readonly retried: number
  readonly dead: number
  readonly released: number
}

/** The numbers of the final summary, counted from the job worker's events. */
class Outcomes extends Context.Tag("demo/Outcomes")<Outcomes, Ref.Ref<Tally>>() {
  static readonly layer = Layer.effect(Outcomes, Ref.make<Tally>({ succeeded: 0, retried: 0, dead: 0, released: 0 }))
}

/** One line per job outcome (claims at Debug), counted in `outcomes` for the summary. */
const logJobEvent = (event: JobWorker.JobEvent, outcomes: Ref.Ref<Tally>) => {
  const job = `job ${event.id} ${event.name}`
  const count = (outcome: keyof Tally) => Ref.update(outcomes, (tally) => ({ ...tally, [outcome]: tally[outcome] + 1 }))
  return JobWorker.JobEvent.$match(event, {
    JobClaimed: ({ attempt }) => Effect.logDebug(`${job} claimed (attempt ${attempt})`),
    JobSucceeded: ({ attempt, durationMs }) =>
      Effect.zipRight(Effect.log(`${job} succeeded after ${durationMs}ms (attempt ${attempt})`), count("succeeded")),
    JobRetried: ({ attempt, delayMs, error }) =>
      Effect.zipRight(
        Effect.logWarning(`${job} failed (attempt ${attempt}), retried in ${delayMs}ms: ${error}`),
        count("retried")
      ),
    JobDeadLettered: ({ attempt, error }) =>
      Effect.zipRight(Effect.logWarning(`${job} dead after attempt ${attempt}: ${error}`), count("dead")),
    JobTimedOut: ({ timeoutMs }) => Effect.logWarning(`${job} timed out after ${timeoutMs}ms`),
    JobLeaseLost: () => Effect.logWarning(`${job} lost its lease: its outcome was discarded`),
    JobReleased: ({ refunded }) =>
      Effect.zipRight(
        Effect.logWarning(`${job} released unfinished${refunded ? ", attempt refunded" : ""}`),
        count("released")
      ),
    JobSnoozed: ({ delayMs }) => Effect.log(`${job} snoozed for ${delayMs}ms`),
    JobScheduled: ({ schedule, slot }) => Effect.logDebug(`${job} enqueued by ${schedule} for ${slot.toISOString()}`),
    JobCancelled: () => Effect.log(`${job} cancelled`)
  })
}

/** One line per lifecycle event and per job outcome; the per-task events are for debugging. */
const logEvent = (outcomes: Ref.Ref<Tally>) => (event: WorkerEvent): Effect.Effect<void> =>
  WorkerEvent.$match(event, {
    Started: () => Effect.log("Started: claiming jobs"),
    Paused: () => Effect.log("Paused: jobs in flight go on, none claimed until resumed"),
    Resumed: () => Effect.log("Resumed: claiming jobs"),
    Stopping: () => Effect.log("Stopping: readiness is 503, no more claims, draining the jobs in flight"),
    Stopped: ({ interrupted }) => Effect.log(`Stopped: ${interrupted} task(s) interrupted at the deadline`),
    Idle: () => Effect.logDebug("Idle"),
    TaskStarted: ({ label, taskId }) => Effect.logDebug(`task ${taskId} (${label ?? "unlabelled"}) started`),
    TaskFinished: ({ outcome, taskId }) => Effect.logDebug(`task ${taskId} ended: ${outcome}`),
    Custom: ({ value }) =>
      JobWorker.isJobEvent(value) ? logJobEvent(value, outcomes) : Effect.log("custom event", value)
  })

// --- HTTP ---------------------------------------------------------------------------------------------------------

const EnqueueBody = Schema.Struct({
  type: Schema.String,
  payload: Schema.Unknown,
  delay: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, MAX_DELAY_MS)), { exact: true }),
  priority: Schema.optionalWith(Schema.Int, { exact: true })
}).annotations({ identifier: "EnqueueBody" })

/**
 * `POST /jobs`: enqueues a job of the body's `type`, its payload checked by the type's schema; 202 `{ id }`. A body
 * that is not JSON, or not of this shape, is a 400 from `WorkerHttp.toApp`; an unknown type or a payload the schema
 * rejects is a 400 here, with the schema's message.
 */
const enqueue = WorkerHttpError.respond(
  Effect.gen(function*() {
    const { delay, payload, priority, type } = yield* HttpServerRequest.schemaBodyJson(EnqueueBody)
    // An own property only: `__proto__` or `toString` is not a job type.
    const job = Object.hasOwn(jobTypes, type) ? jobTypes[type] : undefined
    if (job === undefined) {
      return yield* new WorkerHttpError.BadRequest({
        message: `unknown job type ${JSON.stringify(type)}: expected one of ${Object.keys(jobTypes).join(", ")}`
      })
    }
    const decoded = yield* Effect.either(Schema.decodeUnknown(job.payload)(payload))
    if (decoded._tag === "Left") {
      return yield* new WorkerHttpError.BadRequest({ message: `invalid payload for ${type}: ${decoded.left.message}` })
    }
    const id = yield* job.enqueue(decoded.right, {
      delay: delay === undefined ? undefined : Duration.millis(delay),
      priority
    })
    return HttpServerResponse.unsafeJson({ id }, { status: 202 })
  }).pipe(
    Effect.catchTag("JobStoreError", (error) =>
      Effect.fail(
        new WorkerHttpError.ServiceUnavailable({
          error: "JobStoreError",
          message: error.message,
          details: { operation: error.operation }
        })
      ))
  )
)

/**
 * The worker's and the store's routes, the event stream, the dashboard and the metrics, with the control routes
 * behind `DASHBOARD_TOKEN` when it is set. They stay outside `trackRequests`: they must answer while the worker
 * drains. `POST /jobs` is behind the same guard and checks (same origin, JSON only), as it changes state too.
 */
const makeApp = (token: Option.Option<Redacted.Redacted<string>>) => {
  const guard = Option.match(token, { onNone: () => WorkerHttp.unguarded, onSome: WorkerHttp.bearerToken })
  return WorkerHttp.toApp(HttpRouter.concatAll(
    WorkerHttp.routes({ guard, jobs: true }),
    WorkerPrometheus.router,
    HttpRouter.empty.pipe(
      HttpRouter.post("/jobs", enqueue),
      HttpRouter.use(WorkerHttp.trackRequests),
      HttpRouter.use(WorkerHttp.authorize(guard, { body: "json" })),
      HttpRouter.use(WorkerHttpGuard.checkHost)
    )
  ))
}

const logListening = HttpServer.addressWith((address) =>
  address._tag === "TcpAddress"
    ? Effect.zipRight(
      Effect.log(`listening on http://${address.hostname}:${address.port} (pid ${process.pid})`),
      Effect.log(`dashboard: http://${address.hostname}:${address.port}/dashboard`)
    )
    : Effect.log(`listening on ${address.path} (pid ${process.pid})`)
)

// --- the program --------------------------------------------------------------------------------------------------

const WorkerLive = Layer.unwrapEffect(
  Effect.map(config, ({ shutdownTimeout }) => WorkerContext.layer({ name: "demo", shutdownTimeout, logLevel: "Debug" }))
)

/** `WorkerHttp.serve` stops the worker before the server: readiness answers 503 while the jobs drain. */
const HttpLive = Layer.unwrapEffect(
  Effect.map(config, ({ dashboardToken, host, port }) =>
    WorkerHttp.serve(makeApp(dashboardToken)).pipe(
      Layer.tap(() => logListening),
      Layer.provide(NodeHttpServer.layer(createServer, { host, port }))
    ))
)

/** Listens before the job worker starts the context, so that the listener sees `Started`. */
const ListenerLive = Layer.effectDiscard(Effect.gen(function*() {
  const ctx = yield* WorkerContext
  yield* ctx.listen(logEvent(yield* Outcomes))
}))

/**
 * The job store: PostgreSQL when `DATABASE_URL` is set (with a pool of its own, closed after the worker drained),
 * otherwise in memory.
 */
const StoreLive = Layer.unwrapEffect(Effect.map(config, ({ databaseUrl }) =>
  Option.match(databaseUrl, {
    // Completed jobs are kept an hour, so the dashboard's job browser shows what ran (state "succeeded").
    onNone: () => MemoryJobStore.layer({ succeededRetention: "1 hour" }),
    onSome: (url) =>
      PgJobStore.layer({ succeededRetention: "1 hour" }).pipe(
        Layer.tap(() =>
          Effect.log("jobs in PostgreSQL (schema effect_worker): shared with every demo on this database")
        ),
        Layer.provide(PgClient.layer({ url, applicationName: "effect-worker-context demo" }))
      )
  })))

/** Once the job worker has drained, says what the store still holds. */
const LeftInStoreLive = Layer.scopedDiscard(
  Effect.addFinalizer(() =>
    Effect.flatMap(JobStore.JobStore, (store) => store.stats).pipe(
      Effect.zip(config),
      Effect.flatMap(([{ dead, leased, ready, scheduled }, { databaseUrl }]) =>
        Effect.log(
          `left in the store: ready=${ready} scheduled=${scheduled} leased=${leased} dead=${dead} ` +
            (Option.isSome(databaseUrl) ? "(in PostgreSQL: kept)" : "(in memory: gone when the process exits)")
        )
      ),
      Effect.catchAll((error) => Effect.logWarning("could not read the store's stats", error))
    )
  )
)

const JobWorkerLive = JobWorker.layer({ handlers, concurrency: CONCURRENCY })

const ProducerLive = Layer.scopedDiscard(Effect.gen(function*() {
  const { shutdownTimeout } = yield* config
  yield* Effect.log(`${CONCURRENCY} jobs at most in flight, shutdown timeout ${Duration.format(shutdownTimeout)}`)
  yield* Effect.forkScoped(produce)
}))

// Each layer is built once the one below it is, and released before it: the server listens before the job worker
// starts the context (a busy port fails the program before any job is claimed), the listener is in place before
// `Started`, and the job worker drains (its layer stops the context) before the server stops and before the store
// is counted.
const AppLive = ProducerLive.pipe(
  Layer.provide(JobWorkerLive),
  Layer.provide(ListenerLive),
  Layer.provide(HttpLive),
  Layer.provide(LeftInStoreLive),
  Layer.provideMerge(StoreLive),
  Layer.provideMerge(WorkerLive)
)

const summary = Effect.flatMap(
  Effect.flatMap(Outcomes, Ref.get),
  ({ dead, released, retried, succeeded }) =>
    Effect.log(`summary: succeeded=${succeeded} retried=${retried} dead=${dead} released=${released}`)
)

const main = Effect.gen(function*() {
  const ctx = yield* WorkerContext
  // Until a signal interrupts this fiber, or `POST /worker/stop` stops the worker.
  yield* ctx.awaitShutdown
}).pipe(
  Effect.provide(AppLive),
  // Runs once every layer is released: the jobs have drained (or were released) and the server is closed.
  Effect.onExit((exit) => Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause) ? summary : Effect.void),
  Effect.provide(Outcomes.layer)
)

/** The first line of the cause, and the message of the error that caused it (`ServeError` wraps `EADDRINUSE`). */
const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const reason = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : ""
  return Cause.pretty(cause).split("\n")[0] + reason
}

/** One line per log: time, level, message, then the annotations (`worker=demo`) and the cause, if any. */
const OneLineLogger = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const text = Arr.ensure(message).map((part) => Inspectable.toStringUnknown(part, 0)).join(" ")
  const fields = Arr.map(
    Arr.fromIterable(annotations),
    ([key, value]) => ` ${key}=${Inspectable.toStringUnknown(value, 0)}`
  )
  const error = Cause.isEmpty(cause) ? "" : ` cause=${JSON.stringify(describeCause(cause))}`
  globalThis.console.log(
    `${date.toISOString().slice(11, 23)} ${logLevel.label.padEnd(5)} ${text}${fields.join("")}${error}`
  )
})

// Errors are reported here rather than by `runMain`, so that they go through the one-line logger too.
const program = main.pipe(
  Effect.tapErrorCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("failed", cause)),
  Effect.provide(Logger.replace(Logger.defaultLogger, OneLineLogger))
)

WorkerNode.runMain(program, { disablePrettyLogger: true, disableErrorReporting: true })
