/**
 * A demo worker: it takes simulated jobs from an in-memory queue, serves the worker's probes, control routes and
 * metrics over HTTP, and on SIGTERM or Ctrl-C drains the jobs in flight, prints a summary and exits 0.
 *
 *     npm start                  # then, from another terminal: curl localhost:3000/worker
 *
 * - A producer puts a job on a bounded queue (16 jobs) every 100 to 400 ms, and `POST /jobs` adds one. Four
 *   consumers take jobs and run each as a task of the worker (`ctx.track`), so at most four jobs are in flight.
 *   A job takes 200 to 1500 ms, and one in five fails.
 * - HTTP: `GET /worker`, `/health/live`, `/health/ready`, `/metrics`, `POST /worker/pause|resume|start|stop`
 *   (`WorkerHttp.router`), and `POST /jobs[?ms=N&fail=true]`, a tracked route: 503 while the worker is not running.
 * - SIGTERM or SIGINT (Ctrl-C): the worker goes `Stopping`. Readiness answers 503 at once, the consumers stop
 *   taking jobs, and the jobs in flight get `SHUTDOWN_TIMEOUT` seconds to finish before they are interrupted. The
 *   jobs still queued are dropped (the queue lives in memory), and so are the ones the consumers took while the
 *   worker was paused; a log line counts both. Then the server stops, a line
 *   `summary: completed=N failed=N interrupted=N` is printed and the process exits 0. A second signal, at least
 *   half a second after the first, ends the process at once with code 130 (SIGINT) or 143 (SIGTERM).
 * - `POST /worker/stop` shuts the worker down the same way, and the process exits once it is stopped.
 *
 * Environment:
 * - `PORT`: the HTTP port (default 3000). `0` picks a free port; the log says which (`listening on http://...`).
 *   The server listens before the worker starts: a port in use ends the program at once, before any job ran.
 * - `HOST`: the interface to listen on (default `127.0.0.1`: the control routes have no authentication).
 * - `SHUTDOWN_TIMEOUT`: seconds shutdown waits for the jobs in flight (default 10, fractions allowed).
 * - `DEMO_JOB_MS`: every job takes exactly this many milliseconds (default: random, 200 to 1500).
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import {
  Array as Arr,
  Cause,
  Clock,
  Config,
  Context,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  Inspectable,
  Layer,
  Logger,
  Option,
  Queue,
  Random,
  Ref
} from "effect"
import { createServer } from "node:http"
import { WorkerContext, WorkerEvent } from "../src/index.js"
import * as WorkerHttp from "../src/WorkerHttp.js"
import * as WorkerNode from "../src/WorkerNode.js"

const CONSUMERS = 4
const QUEUE_CAPACITY = 16
const FAILURE_RATE = 0.2

const config = Config.all({
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "expected a port number, 0 to 65535", validation: (p) => p >= 0 && p <= 65535 }),
    Config.withDefault(3000)
  ),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  shutdownTimeout: Config.number("SHUTDOWN_TIMEOUT").pipe(
    Config.validate({ message: "expected a number of seconds, zero or more", validation: (s) => s >= 0 }),
    Config.withDefault(10),
    Config.map(Duration.seconds)
  ),
  jobMillis: Config.option(
    Config.integer("DEMO_JOB_MS").pipe(
      Config.validate({ message: "expected a number of milliseconds, zero or more", validation: (ms) => ms >= 0 })
    )
  )
})

// --- jobs ---------------------------------------------------------------------------------------------------------

interface Job {
  readonly id: number
  readonly durationMs: number
  readonly fails: boolean
}

/** What a caller may fix about a new job; the rest is random. */
interface JobSpec {
  readonly durationMs?: number | undefined
  readonly fails?: boolean | undefined
}

class JobFailed extends Data.TaggedError("JobFailed")<{ readonly job: number }> {
  override get message(): string {
    return `job ${this.job} failed (simulated)`
  }
}

/** The queue of jobs waiting for a consumer, and a factory of new jobs. */
class Jobs extends Context.Tag("demo/Jobs")<Jobs, {
  /** Bounded: a producer that gets ahead of the consumers waits. */
  readonly queue: Queue.Queue<Job>
  /** A job with the next id; what is not given is random (the duration is `DEMO_JOB_MS` when set). */
  readonly make: (spec?: JobSpec) => Effect.Effect<Job>
}>() {
  static readonly layer = Layer.scoped(
    Jobs,
    Effect.gen(function*() {
      const { jobMillis } = yield* config
      const queue = yield* Effect.acquireRelease(Queue.bounded<Job>(QUEUE_CAPACITY), Queue.shutdown)
      const lastId = yield* Ref.make(0)
      const make = (spec: JobSpec = {}) =>
        Effect.gen(function*() {
          const id = yield* Ref.updateAndGet(lastId, (n) => n + 1)
          const durationMs = spec.durationMs ?? Option.getOrUndefined(jobMillis) ??
            (yield* Random.nextIntBetween(200, 1501))
          const fails = spec.fails ?? (yield* Random.next) < FAILURE_RATE
          return { id, durationMs, fails }
        })
      return { queue, make }
    })
  )
}

/**
 * How the jobs ended: the numbers of the final summary. The jobs count themselves, rather than a listener counting
 * `TaskFinished`, because the tracked `POST /jobs` requests are tasks of the worker too.
 */
class Outcomes extends Context.Tag("demo/Outcomes")<
  Outcomes,
  Ref.Ref<{ readonly completed: number; readonly failed: number; readonly interrupted: number }>
>() {
  static readonly layer = Layer.effect(Outcomes, Ref.make({ completed: 0, failed: 0, interrupted: 0 }))
}

/** The job itself, which the worker runs as a task; it counts and logs how it ended, shutdown included. */
const runJob = (job: Job) =>
  Effect.gen(function*() {
    const outcomes = yield* Outcomes
    const startedAt = yield* Clock.currentTimeMillis
    const took = Effect.map(Clock.currentTimeMillis, (now) => `${now - startedAt}ms`)
    yield* Effect.sleep(Duration.millis(job.durationMs)).pipe(
      Effect.zipRight(job.fails ? Effect.fail(new JobFailed({ job: job.id })) : Effect.void),
      Effect.onExit((exit) =>
        Effect.gen(function*() {
          const outcome = Exit.isSuccess(exit)
            ? "completed"
            : Cause.isInterruptedOnly(exit.cause)
            ? "interrupted"
            : "failed"
          yield* Ref.update(outcomes, (counts) => ({ ...counts, [outcome]: counts[outcome] + 1 }))
          const message = `job ${job.id} ${outcome} after ${yield* took}`
          yield* outcome === "completed" ? Effect.log(message) : Effect.logWarning(message)
        })
      )
    )
  })

/**
 * How many jobs wait in the queue. `Queue.size` counts waiting takers as negative, and an offer waiting for room in
 * a full queue (the producer's) as one more: neither is a job in the queue.
 */
const waiting = (queue: Queue.Queue<Job>) =>
  Effect.map(Queue.size(queue), (size) => Math.min(Math.max(0, size), QUEUE_CAPACITY))

/** Puts a new job on the queue every 100 to 400 ms, waiting while the queue is full, until shutdown begins. */
const produce = Effect.gen(function*() {
  const ctx = yield* WorkerContext
  const jobs = yield* Jobs
  const produceOne = jobs.make().pipe(
    Effect.flatMap((job) => Queue.offer(jobs.queue, job)),
    Effect.zipRight(Effect.flatMap(Random.nextIntBetween(100, 401), (ms) => Effect.sleep(Duration.millis(ms))))
  )
  yield* Effect.race(Effect.forever(produceOne), ctx.shutdownRequested)
})

/**
 * `CONSUMERS` loops, each taking one job at a time and waiting for it, until shutdown begins. A job's task belongs
 * to the worker, not to its consumer: interrupting the consumers at shutdown leaves the jobs in flight to the drain.
 * A job a consumer has taken but the worker has not admitted (it waits in a paused `track`, or shutdown rejects it)
 * is dropped too; it is counted apart from the queued ones.
 */
const consume = Effect.gen(function*() {
  const ctx = yield* WorkerContext
  const jobs = yield* Jobs
  const takenNotStarted = yield* Ref.make(0)
  const consumer = Effect.gen(function*() {
    const job = yield* Queue.take(jobs.queue)
    // Waits while the worker is paused; fails with `TaskRejected` once shutdown has begun.
    const task = yield* ctx.track(runJob(job)).pipe(
      Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Ref.update(takenNotStarted, (n) => n + 1))
    )
    yield* task.await
  }).pipe(Effect.forever)
  const dropped = Effect.gen(function*() {
    const queued = yield* waiting(jobs.queue)
    const taken = yield* Ref.get(takenNotStarted)
    yield* Effect.log(
      `no longer taking jobs; ${queued} queued job(s) dropped` +
        (taken > 0 ? `, ${taken} taken job(s) never started` : "")
    )
  })
  const all = Effect.all(Arr.replicate(consumer, CONSUMERS), { concurrency: "unbounded", discard: true }).pipe(
    // A consumer that took a job just as shutdown began sees it rejected: the job never ran, stop taking more.
    Effect.catchTag("TaskRejected", () => Effect.void)
  )
  const consumers = yield* Effect.fork(all)
  // Until shutdown begins or this fiber is interrupted. The jobs are counted once the consumers have stopped, so
  // that the ones they were holding are counted too.
  yield* Effect.race(Fiber.join(consumers), ctx.shutdownRequested).pipe(
    Effect.ensuring(Effect.zipRight(Fiber.interrupt(consumers), dropped))
  )
})

/** One line per lifecycle event; the per-task events are for debugging (the jobs log their own outcome). */
const logEvent = (event: WorkerEvent): Effect.Effect<void> =>
  WorkerEvent.$match(event, {
    Started: () => Effect.log("Started: taking jobs"),
    Paused: () => Effect.log("Paused: jobs in flight go on, no new ones until resumed"),
    Resumed: () => Effect.log("Resumed: taking jobs"),
    Stopping: () => Effect.log("Stopping: readiness is 503, no new jobs, draining the jobs in flight"),
    Stopped: ({ interrupted }) => Effect.log(`Stopped: ${interrupted} task(s) interrupted at the deadline`),
    Idle: () => Effect.logDebug("Idle"),
    TaskStarted: ({ taskId }) => Effect.logDebug(`task ${taskId} started`),
    TaskFinished: ({ outcome, taskId }) => Effect.logDebug(`task ${taskId} ended: ${outcome}`),
    Custom: ({ value }) => Effect.log("custom event", value)
  })

// --- HTTP ---------------------------------------------------------------------------------------------------------

const badRequest = (message: string) => HttpServerResponse.unsafeJson({ error: "BadRequest", message }, { status: 400 })

const single = (value: string | ReadonlyArray<string> | undefined) => typeof value === "string" ? value : value?.[0]

/** `POST /jobs[?ms=N&fail=true]`: queues a job; 202, or 429 when the queue is full. */
const enqueue = Effect.gen(function*() {
  const jobs = yield* Jobs
  const params = yield* HttpServerRequest.ParsedSearchParams
  const ms = single(params.ms)
  const durationMs = ms === undefined ? undefined : Number(ms)
  if (durationMs !== undefined && !(Number.isInteger(durationMs) && durationMs >= 0)) {
    return badRequest("ms must be a number of milliseconds, zero or more")
  }
  const fail = single(params.fail)
  const job = yield* jobs.make({ durationMs, fails: fail === undefined ? undefined : fail === "true" })
  // Never wait for room here: the client would hang while the consumers catch up.
  if (!jobs.queue.unsafeOffer(job)) {
    return HttpServerResponse.unsafeJson({ error: "QueueFull", message: "the job queue is full" }, { status: 429 })
  }
  return HttpServerResponse.unsafeJson({ job, queued: yield* waiting(jobs.queue) }, { status: 202 })
})

// The probes and control routes stay outside `trackRequests`: they must answer while the worker drains.
const app = WorkerHttp.toApp(HttpRouter.concat(
  WorkerHttp.router,
  HttpRouter.empty.pipe(HttpRouter.post("/jobs", enqueue), HttpRouter.use(WorkerHttp.trackRequests))
))

const logListening = HttpServer.addressWith((address) =>
  Effect.log(
    (address._tag === "TcpAddress"
      ? `listening on http://${address.hostname}:${address.port}`
      : `listening on ${address.path}`) + ` (pid ${process.pid})`
  )
)

// --- the program --------------------------------------------------------------------------------------------------

const WorkerLive = Layer.unwrapEffect(
  Effect.map(config, ({ shutdownTimeout }) => WorkerContext.layer({ name: "demo", shutdownTimeout, logLevel: "Debug" }))
)

/** `WorkerHttp.serve` stops the worker before the server: readiness answers 503 while the jobs drain. */
const HttpLive = Layer.unwrapEffect(
  Effect.map(config, ({ host, port }) =>
    WorkerHttp.serve(app).pipe(
      Layer.tap(() => logListening),
      Layer.provide(NodeHttpServer.layer(createServer, { host, port }))
    ))
)

const WorkLive = Layer.scopedDiscard(Effect.gen(function*() {
  const ctx = yield* WorkerContext
  const { shutdownTimeout } = yield* config
  // Listen before `start`, so that the listener sees `Started`.
  yield* ctx.listen(logEvent)
  yield* ctx.start
  yield* Effect.log(
    `${CONSUMERS} consumers, queue of ${QUEUE_CAPACITY}, shutdown timeout ${Duration.format(shutdownTimeout)}`
  )
  yield* Effect.forkScoped(produce)
  yield* Effect.forkScoped(consume)
}))

// The server is built first and the worker started only once it listens: a busy port fails the program at once,
// before any job is taken.
const AppLive = WorkLive.pipe(
  Layer.provide(HttpLive),
  Layer.provide(Jobs.layer),
  Layer.provideMerge(WorkerLive)
)

const summary = Effect.flatMap(
  Effect.flatMap(Outcomes, Ref.get),
  ({ completed, failed, interrupted }) =>
    Effect.log(`summary: completed=${completed} failed=${failed} interrupted=${interrupted}`)
)

const main = Effect.gen(function*() {
  const ctx = yield* WorkerContext
  // Until a signal interrupts this fiber, or `POST /worker/stop` stops the worker.
  yield* ctx.awaitShutdown
}).pipe(
  Effect.provide(AppLive),
  // Runs once every layer is released: the jobs have drained (or were interrupted) and the server is closed.
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
