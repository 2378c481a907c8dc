/**
 * The job store's routes: its counts, its dead letters, the redrive of a dead letter, and the pause and resume of a
 * queue.
 *
 * @since 0.4.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { JobStore, type JobStoreError } from "./JobStore.js"
import { BadRequest, NotFound, respond, ServiceUnavailable, toApp } from "./WorkerHttpError.js"
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

const deadLettersOptions = (params: Readonly<Record<string, string | ReadonlyArray<string>>>) =>
  Either.gen(function*() {
    const limitText = yield* singleParam(params, "limit")
    const queue = yield* singleParam(params, "queue")
    if (limitText === undefined) return { limit: 100, queue }
    const limit = /^[0-9]+$/.test(limitText) ? Number(limitText) : Number.NaN
    if (!(limit >= 1 && limit <= 1000)) {
      return yield* Either.left(`limit must be an integer from 1 to 1000, not ${JSON.stringify(limitText)}`)
    }
    return { limit, queue }
  })

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
      return yield* new NotFound({
        message: `no dead job with id ${JSON.stringify(id)} to redrive (or a live job holds its key)`
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
export const guardedRoutes = <RG>(guard: Guard<RG>) =>
  HttpRouter.empty.pipe(
    HttpRouter.get("/jobs/stats", stats),
    HttpRouter.get(
      "/jobs/dead",
      isUnguarded(guard)
        ? deadLetters
        : Effect.matchEffect(guard, { onFailure: (e) => respond(Effect.fail(e)), onSuccess: () => deadLetters })
    ),
    HttpRouter.post("/jobs/dead/:id/redrive", authorize(guard)(redrive)),
    HttpRouter.post("/jobs/queues/:queue/pause", authorize(guard)(queueControl(true))),
    HttpRouter.post("/jobs/queues/:queue/resume", authorize(guard)(queueControl(false)))
  )

/**
 * Routes to inspect a `JobStore` and act on its dead letters, all JSON, to mount next to `WorkerHttp.router` or
 * serve on their own with {@link jobsApp}. They need only the store, not a worker: a process that enqueues and
 * inspects jobs but runs none can serve them too.
 *
 * | route | answer |
 * |---|---|
 * | `GET /jobs/stats` | 200 the store's `JobStats`: `{ ready, scheduled, leased, dead, byQueue: { [queue]: { ready, scheduled, leased, dead } }, readyByName, pausedQueues }` |
 * | `GET /jobs/dead?limit=N&queue=Q` | 200 `{ jobs: [{ id, name, queue, payload, attempts, lastError, failedAt }] }`, most recent first, `failedAt` an ISO 8601 string; `limit` an integer from 1 to 1000 (default 100), `queue` optional; 400 `{ error: "BadRequest", message }` naming the parameter otherwise |
 * | `POST /jobs/dead/:id/redrive` | 200 `{ redriven: 1 }`: the job is ready again, its attempts reset, under the same id; 404 `{ error: "NotFound", message }` when the store moved nothing: no dead job has this id (or a live job holds its `key` by now) |
 * | `POST /jobs/queues/:queue/pause` | 200 `{ queue, paused: true }`: no worker of the store claims from the queue (its name URL-encoded in the path) until it is resumed; jobs already claimed run to their end |
 * | `POST /jobs/queues/:queue/resume` | 200 `{ queue, paused: false }`: the queue's workers are woken and claim again |
 *
 * A store that fails (`JobStoreError`: unreachable, or it refused) makes any of them answer 503
 * `{ error: "JobStoreError", operation, message }` and logs a warning: the client may retry (a redrive that went
 * through before the error answers 404 the second time).
 *
 * These routes have no guard, but they make the checks every route of this package makes: the host check on each
 * (`WorkerHttpGuard.checkHost`), and on the redrive and the queue controls the cross-site and media type checks
 * (`WorkerHttpGuard.authorize`). `WorkerHttp.routes({ guard, jobs: true })` puts the dead letters, the redrive and
 * the queue controls behind a guard.
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
