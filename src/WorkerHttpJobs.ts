/**
 * The job store's routes: its counts, its jobs (listed, looked up, cancelled), its dead letters, the redrive of a
 * dead or cancelled job, and the pause and resume of a queue.
 *
 * @since 0.4.0
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { type JobState, jobStates, JobStore, type JobStoreError, maxListLimit, type StoredJob } from "./JobStore.js"
import { answerCause, BadRequest, Conflict, NotFound, respond, ServiceUnavailable, toApp } from "./WorkerHttpError.js"
import { authorize, checkHost, type Guard, isUnguarded, unguarded } from "./WorkerHttpGuard.js"

const storeError = (error: JobStoreError) =>
  Effect.zipRight(
    Effect.logWarning("job store unavailable", error),
    Effect.fail(
      new ServiceUnavailable({
        error: "JobStoreError",
        message: error.message,
        details: { operation: error.operation }
      })
    )
  )

/** The one value of a search parameter, or why it cannot be used: given twice, or given empty. */
const singleParam = (
  params: Readonly<Record<string, string | ReadonlyArray<string>>>,
  name: string
): Either.Either<string | undefined, string> => {
  const value = params[name]
  if (value === undefined) return Either.right(undefined)
  if (typeof value !== "string") return Either.left(`${name} must be given once, not ${value.length} times`)
  return value === "" ? Either.left(`${name} must not be empty`) : Either.right(value)
}

/** The `limit` search parameter: an integer from 1 to 1000, `fallback` when it is not given. */
const limitParam = (params: Readonly<Record<string, string | ReadonlyArray<string>>>, fallback: number) =>
  Either.flatMap(singleParam(params, "limit"), (text) => {
    if (text === undefined) return Either.right(fallback)
    const limit = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN
    return limit >= 1 && limit <= maxListLimit
      ? Either.right(limit)
      : Either.left(`limit must be an integer from 1 to ${maxListLimit}, not ${JSON.stringify(text)}`)
  })

const deadLettersOptions = (params: Readonly<Record<string, string | ReadonlyArray<string>>>) =>
  Either.gen(function*() {
    const limit = yield* limitParam(params, 100)
    return { limit, queue: yield* singleParam(params, "queue") }
  })

/** A job as the routes answer it: its instants as ISO 8601 strings. */
const jobJson = (job: StoredJob) => ({
  ...job,
  enqueuedAt: job.enqueuedAt.toISOString(),
  runAt: job.runAt.toISOString(),
  errors: job.errors.map((error) => ({ ...error, at: error.at.toISOString() })),
  scheduledFor: job.scheduledFor?.toISOString(),
  leaseExpiresAt: job.leaseExpiresAt?.toISOString(),
  endedAt: job.endedAt?.toISOString()
})

const isJobState = (value: string): value is JobState => (jobStates as ReadonlyArray<string>).includes(value)

const listOptions = (params: Readonly<Record<string, string | ReadonlyArray<string>>>) =>
  Either.gen(function*() {
    const stateText = yield* singleParam(params, "state")
    if (stateText !== undefined && !isJobState(stateText)) {
      return yield* Either.left(`state must be one of ${jobStates.join(", ")}, not ${JSON.stringify(stateText)}`)
    }
    const limit = yield* limitParam(params, 50)
    return {
      state: stateText,
      queue: yield* singleParam(params, "queue"),
      name: yield* singleParam(params, "name"),
      key: yield* singleParam(params, "key"),
      after: yield* singleParam(params, "after"),
      limit
    }
  })

const list = respond(
  Effect.gen(function*() {
    const options = listOptions(yield* HttpServerRequest.ParsedSearchParams)
    if (Either.isLeft(options)) return yield* new BadRequest({ message: options.left })
    const page = yield* (yield* JobStore).list(options.right)
    return HttpServerResponse.unsafeJson({ jobs: page.jobs.map(jobJson), next: page.next })
  }).pipe(Effect.catchTag("JobStoreError", storeError))
)

const noSuchJob = (id: string) => new NotFound({ message: `no such job: ${JSON.stringify(id)}`, details: { id } })

const getJob = respond(
  Effect.gen(function*() {
    const { id = "" } = yield* HttpRouter.params
    const job = yield* (yield* JobStore).get(id)
    if (job === undefined) return yield* noSuchJob(id)
    return HttpServerResponse.unsafeJson(jobJson(job))
  }).pipe(Effect.catchTag("JobStoreError", storeError))
)

const cancel = respond(
  Effect.gen(function*() {
    const { id = "" } = yield* HttpRouter.params
    const result = yield* (yield* JobStore).cancel(id)
    if (result === "notFound") return yield* noSuchJob(id)
    return HttpServerResponse.unsafeJson({ id, result })
  }).pipe(Effect.catchTag("JobStoreError", storeError))
)

const Name = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1_000))
/** The body of `POST /jobs/cancel`: a queue, a name, or both, and optionally one live state. */
const CancelManyBody = Schema.Struct({
  queue: Schema.optional(Name),
  name: Schema.optional(Name),
  state: Schema.optional(Schema.Literal("ready", "scheduled", "leased"))
}).pipe(
  Schema.filter((body) => body.queue !== undefined || body.name !== undefined || "give a queue, a name, or both")
)

/** The body of `POST /jobs/redrive` and `POST /jobs/delete`: which ended jobs. */
const EndedBody = Schema.Struct({
  queue: Schema.optional(Name),
  name: Schema.optional(Name),
  state: Schema.optional(Schema.Literal("dead", "cancelled"))
})

/**
 * A route that reads a filter from its JSON body and answers `{ [field]: count }`. A body that is not JSON (400),
 * too large (413) or not such a filter (400) is answered as every route answers it.
 */
const withFilter = <A, I>(
  schema: Schema.Schema<A, I>,
  field: string,
  act: (store: JobStore.Service, filter: A) => Effect.Effect<number, JobStoreError>
) =>
  Effect.flatMap(
    Effect.either(HttpServerRequest.schemaBodyJson(schema)),
    (body) =>
      Either.isLeft(body) ? answerCause(Cause.fail(body.left)) : respond(
        Effect.gen(function*() {
          const count = yield* act(yield* JobStore, body.right)
          return HttpServerResponse.unsafeJson({ [field]: count })
        }).pipe(Effect.catchTag("JobStoreError", storeError))
      )
  )

const cancelMany = withFilter(CancelManyBody, "cancelled", (store, filter) => store.cancelMany(filter))
const redriveMany = withFilter(EndedBody, "redriven", (store, filter) => store.redriveMany(filter))
const deleteMany = withFilter(EndedBody, "deleted", (store, filter) => store.deleteMany(filter))

const deleteJob = respond(
  Effect.gen(function*() {
    const { id = "" } = yield* HttpRouter.params
    const store = yield* JobStore
    const deleted = yield* store.delete([id])
    if (deleted > 0) return HttpServerResponse.unsafeJson({ deleted })
    const job = yield* store.get(id)
    if (job === undefined) return yield* noSuchJob(id)
    return yield* new Conflict({
      message: `job ${
        JSON.stringify(id)
      } is ${job.state}: only a dead or cancelled job can be deleted (cancel it first)`,
      details: { id, state: job.state }
    })
  }).pipe(Effect.catchTag("JobStoreError", storeError))
)

const runNow = respond(
  Effect.gen(function*() {
    const { id = "" } = yield* HttpRouter.params
    const store = yield* JobStore
    const result = yield* store.runNow(id)
    if (result === "ready") return HttpServerResponse.unsafeJson({ id, result })
    if (result === "notFound") return yield* noSuchJob(id)
    const job = yield* store.get(id)
    return yield* new Conflict({
      message: `job ${JSON.stringify(id)} is not scheduled${job === undefined ? "" : ` (${job.state})`}: ` +
        "only a scheduled job can be made to run now",
      details: { id, state: job?.state }
    })
  }).pipe(Effect.catchTag("JobStoreError", storeError))
)

const stats = respond(
  Effect.gen(function*() {
    const store = yield* JobStore
    return HttpServerResponse.unsafeJson(yield* store.stats)
  }).pipe(Effect.catchTag("JobStoreError", storeError))
)

const deadLetters = respond(
  Effect.gen(function*() {
    const options = deadLettersOptions(yield* HttpServerRequest.ParsedSearchParams)
    if (Either.isLeft(options)) return yield* new BadRequest({ message: options.left })
    const store = yield* JobStore
    const jobs = yield* store.deadLetters(options.right)
    return HttpServerResponse.unsafeJson({
      jobs: jobs.map((job) => ({ ...job, failedAt: job.failedAt.toISOString() }))
    })
  }).pipe(Effect.catchTag("JobStoreError", storeError))
)

const redrive = respond(
  Effect.gen(function*() {
    const { id = "" } = yield* HttpRouter.params
    const store = yield* JobStore
    // One store operation: a job that is not dead (or was redriven meanwhile) moves nothing.
    const redriven = yield* store.redrive([id])
    if (redriven === 0) {
      // Why, as the store says it now: no such job, a live one, or an ended one whose key a live job holds.
      const job = yield* store.get(id)
      if (job === undefined) return yield* noSuchJob(id)
      return yield* new NotFound({
        message: job.state === "dead" || job.state === "cancelled"
          ? `job ${JSON.stringify(id)} is ${job.state}, but a live job holds its key ${JSON.stringify(job.key)}`
          : `job ${JSON.stringify(id)} is ${job.state}: only a dead or cancelled job can be redriven`,
        details: { id, state: job.state }
      })
    }
    return HttpServerResponse.unsafeJson({ redriven })
  }).pipe(Effect.catchTag("JobStoreError", storeError))
)

/** Pauses or resumes the queue named in the path, for every worker of the store. */
const queueControl = (paused: boolean) =>
  respond(
    Effect.gen(function*() {
      const { queue = "" } = yield* HttpRouter.params
      const store = yield* JobStore
      yield* paused ? store.pauseQueue(queue) : store.resumeQueue(queue)
      return HttpServerResponse.unsafeJson({ queue, paused })
    }).pipe(Effect.catchTag("JobStoreError", storeError))
  )

/**
 * The store's routes with `guard`: the redrive and the queue controls behind it and the cross-site checks; the dead
 * letters, which carry payloads and errors, behind it too unless it is `unguarded`.
 *
 * @internal
 */
export const guardedRoutes = <RG, RR = never>(guard: Guard<RG>, readGuard?: Guard<RR>) => {
  const reads = readGuard === undefined || isUnguarded(guard) ? guard : Effect.orElse(readGuard, () => guard)
  const guardRead = <E, R>(app: HttpApp.Default<E, R>) =>
    isUnguarded(guard)
      ? app
      : Effect.matchEffect(reads, { onFailure: (e) => respond(Effect.fail(e)), onSuccess: () => app })
  return HttpRouter.empty.pipe(
    HttpRouter.get("/jobs/stats", stats),
    HttpRouter.get("/jobs/dead", guardRead(deadLetters)),
    HttpRouter.get("/jobs", guardRead(list)),
    HttpRouter.get("/jobs/:id", guardRead(getJob)),
    HttpRouter.post("/jobs/:id/cancel", authorize(guard)(cancel)),
    HttpRouter.post("/jobs/cancel", authorize(guard, { body: "json" })(cancelMany)),
    HttpRouter.post("/jobs/redrive", authorize(guard, { body: "json" })(redriveMany)),
    HttpRouter.post("/jobs/delete", authorize(guard, { body: "json" })(deleteMany)),
    HttpRouter.del("/jobs/:id", authorize(guard)(deleteJob)),
    HttpRouter.post("/jobs/:id/run", authorize(guard)(runNow)),
    HttpRouter.post("/jobs/dead/:id/redrive", authorize(guard)(redrive)),
    HttpRouter.post("/jobs/queues/:queue/pause", authorize(guard)(queueControl(true))),
    HttpRouter.post("/jobs/queues/:queue/resume", authorize(guard)(queueControl(false)))
  )
}

/**
 * Routes to inspect a `JobStore` and act on its dead letters, all JSON, to mount next to `WorkerHttp.router` or
 * serve on their own with {@link jobsApp}. They need only the store, not a worker: a process that enqueues and
 * inspects jobs but runs none can serve them too.
 *
 * | route | answer |
 * |---|---|
 * | `GET /jobs/stats` | 200 the store's `JobStats`: `{ ready, scheduled, leased, dead, cancelled, succeeded, byQueue: { [queue]: { ready, scheduled, leased, dead, cancelled, succeeded } }, readyByName, pausedQueues }` |
 * | `GET /jobs?state=S&queue=Q&name=N&key=K&limit=L&after=ID` | 200 `{ jobs: [StoredJob], next }`: one page of `JobStore.list`, newest first, instants as ISO 8601 strings; `next` (the `after` of the next page) absent on the last page; `state` one of `ready`, `scheduled`, `leased`, `succeeded`, `dead`, `cancelled`; `limit` from 1 to 1000 (default 50); 400 naming the parameter otherwise |
 * | `GET /jobs/:id` | 200 the job (`StoredJob`: `{ id, state, name, queue, payload, attempts, maxAttempts, priority, key, enqueuedAt, runAt, lastError, errors, scheduledFor, worker, leaseExpiresAt, endedAt }`); 404 `{ error: "NotFound", message: "no such job: ..." }` |
 * | `POST /jobs/:id/cancel` | 200 `{ id, result }`, `result` `"cancelled"` (it was live: it will not run, or is being interrupted on its worker) or `"alreadyFinished"` (dead or cancelled already); 404 when there is no such job (a completed job is not kept) |
 * | `POST /jobs/cancel` | body `{ queue?, name?, state? }` (a queue, a name or both; `state` one of `ready`, `scheduled`, `leased`), `application/json`: 200 `{ cancelled: N }`, every live job of the filter cancelled; 400 for a body that is not such a filter |
 * | `GET /jobs/dead?limit=N&queue=Q` | 200 `{ jobs: [{ id, name, queue, payload, attempts, lastError, failedAt }] }`, most recent first, `failedAt` an ISO 8601 string; `limit` an integer from 1 to 1000 (default 100), `queue` optional; 400 `{ error: "BadRequest", message }` naming the parameter otherwise |
 * | `POST /jobs/:id/run` | 200 `{ id, result: "ready" }`: the scheduled job is ready now, its workers woken; 404 for no such job; 409 `{ error: "Conflict", message, state }` for one that is not scheduled |
 * | `DELETE /jobs/:id` | 200 `{ deleted: 1 }`: the dead or cancelled job is gone for good; 404 for no such job; 409 `{ error: "Conflict", message, state }` for a live one (cancel it first) |
 * | `POST /jobs/redrive`, `POST /jobs/delete` | body `{ queue?, name?, state? }` (`state` `dead` or `cancelled`; both when left out; `{}` takes every ended job), `application/json`: 200 `{ redriven: N }` or `{ deleted: N }` |
 * | `POST /jobs/dead/:id/redrive` | 200 `{ redriven: 1 }`: the dead or cancelled job is ready again, its attempts reset, under the same id; 404 `{ error: "NotFound", message }` when the store moved nothing, the message saying why: no such job, a job that is live (`details.state`), or one whose `key` a live job holds by now |
 * | `POST /jobs/queues/:queue/pause` | 200 `{ queue, paused: true }`: no worker of the store claims from the queue (its name URL-encoded in the path) until it is resumed; jobs already claimed run to their end |
 * | `POST /jobs/queues/:queue/resume` | 200 `{ queue, paused: false }`: the queue's workers are woken and claim again |
 *
 * A store that fails (`JobStoreError`: unreachable, or it refused) makes any of them answer 503
 * `{ error: "JobStoreError", operation, message }` and logs a warning: the client may retry (a redrive that went
 * through before the error answers 404 the second time).
 *
 * These routes have no guard, but they make the checks every route of this package makes: the host check on each
 * (`WorkerHttpGuard.checkHost`), and on the routes that act (cancel, redrive, queue controls) the cross-site and
 * media type checks (`WorkerHttpGuard.authorize`). `WorkerHttp.routes({ guard, readGuard, jobs: true })` puts
 * every route but the counts behind a guard: those that act behind `guard`, those that read payloads and errors
 * (`GET /jobs`, `GET /jobs/:id`, `GET /jobs/dead`) behind either guard.
 *
 * @example
 * ```ts
 * import { HttpRouter } from "@effect/platform"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * // the worker's routes and the store's, as one app: it needs a WorkerContext and a JobStore
 * const app = WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, WorkerHttp.jobsRouter))
 * ```
 *
 * @since 0.2.0
 * @category routes
 */
export const jobsRouter: HttpRouter.HttpRouter<never, JobStore> = guardedRoutes(unguarded).pipe(
  HttpRouter.use(checkHost)
)

/**
 * {@link jobsRouter} as a complete app: `toApp` applied, so unknown routes get JSON 404/405. For a process that
 * serves the store's routes without a worker; next to a worker, concatenate the routers instead (see
 * {@link jobsRouter}).
 *
 * @example
 * ```ts
 * import { HttpServer } from "@effect/platform"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const JobsServerLive = HttpServer.serve(WorkerHttp.jobsApp) // needs a JobStore and an HttpServer
 * ```
 *
 * @since 0.2.0
 * @category routes
 */
export const jobsApp = toApp(jobsRouter)
