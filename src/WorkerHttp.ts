/**
 * HTTP probes, control routes, Prometheus metrics and request tracking for a `WorkerContext`, on
 * `@effect/platform`'s `HttpRouter` and `HttpServer`.
 *
 * @since 0.1.0
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import * as Headers from "@effect/platform/Headers"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerRespondable from "@effect/platform/HttpServerRespondable"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as DashboardAssets from "./internal/dashboardAssets.js"
import * as WorkerEvents from "./internal/workerEvents.js"
import { JobStore, type JobStoreError } from "./JobStore.js"
import { WorkerContext } from "./WorkerContext.js"
import type { WorkerStateError } from "./WorkerContextError.js"

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers })

const stateError = (error: WorkerStateError) =>
  json({ error: error._tag, operation: error.operation, state: error.state, message: error.message }, 409)

const control = (operation: "start" | "pause" | "resume") =>
  Effect.gen(function*() {
    const ctx = yield* WorkerContext
    yield* ctx[operation]
    return json({ state: yield* ctx.state })
  }).pipe(Effect.catchTag("WorkerStateError", (error) => Effect.succeed(stateError(error))))

const serializer = new PrometheusSerializer(undefined, false, undefined, true, true)

/**
 * Every Effect metric of the process (the workers' among them, see `WorkerMetrics`) in the Prometheus text
 * exposition format, produced by OpenTelemetry's Prometheus serializer from `@effect/opentelemetry`'s metric
 * producer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const dump = WorkerHttp.prometheusMetrics.pipe(Effect.tap((text) => Effect.log(text)))
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const prometheusMetrics: Effect.Effect<string> = Effect.gen(function*() {
  const producer = yield* Effect.provide(Metrics.makeProducer, Resource.layerEmpty)
  const { errors, resourceMetrics } = yield* Effect.promise(() => producer.collect())
  if (errors.length > 0) yield* Effect.logWarning("some metrics could not be collected", errors)
  return serializer.serialize(resourceMetrics)
})

/**
 * What a {@link Guard} fails with to refuse a request: answered 401 `{ error: "Unauthorized", message }` with a
 * `WWW-Authenticate` header (`challenge`, default `Bearer`). It is an `HttpServerRespondable`, so failing with it in
 * a route of your own under {@link toApp} gets the same answer.
 *
 * @example
 * ```ts
 * import { HttpServerRequest } from "@effect/platform"
 * import { Effect } from "effect"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * // a guard that trusts the user header your reverse proxy sets after its own login
 * const fromProxy: WorkerHttp.Guard = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
 *   request.headers["x-forwarded-user"] === undefined
 *     ? Effect.fail(new WorkerHttp.Unauthorized({ message: "log in through the proxy", challenge: "Basic" }))
 *     : Effect.void)
 * ```
 *
 * @since 0.3.0
 * @category guards
 */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{
  readonly message: string
  /** The `WWW-Authenticate` header of the answer. Default `Bearer`. */
  readonly challenge?: string | undefined
}> implements HttpServerRespondable.Respondable {
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(unauthorized(this))
  }
}

const unauthorized = (error: Unauthorized) =>
  json({ error: "Unauthorized", message: error.message }, 401, {
    "www-authenticate": error.challenge ?? "Bearer",
    "cache-control": "no-store"
  })

/**
 * Decides, for each request to a guarded route, whether it may go on: succeed to let it through, fail with
 * {@link Unauthorized} to answer 401. It reads the request with `yield* HttpServerRequest.HttpServerRequest` and
 * may need services of its own (`R`), which the routes then need. Build one with {@link bearerToken}, write your
 * own, or use {@link unguarded} when something in front of the routes already decides.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const guard: WorkerHttp.Guard = WorkerHttp.bearerToken(Redacted.make("s3cret"))
 * ```
 *
 * @since 0.3.0
 * @category guards
 */
export type Guard<R = never> = Effect.Effect<void, Unauthorized, R | HttpServerRequest.HttpServerRequest>

/** What the route builders apply to the handlers of guarded routes. */
type Protect<RG> = <E, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | RG>

const unprotected: Protect<never> = (handler) => handler

const protectWith = <RG>(guard: Guard<RG>): Protect<RG | HttpServerRequest.HttpServerRequest> => (handler) =>
  Effect.matchEffect(guard, {
    onFailure: (error) => Effect.succeed(unauthorized(error)),
    onSuccess: () => handler
  })

/**
 * Runs `guard` before `app`: a request it refuses is answered 401 (see {@link Unauthorized}) and never reaches
 * `app`. The routes of {@link routes} are guarded this way; use it for routes of your own, with
 * `HttpRouter.use(WorkerHttp.authorize(guard))`.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { Redacted } from "effect"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const guard = WorkerHttp.bearerToken(Redacted.make("s3cret"))
 * const admin = HttpRouter.empty.pipe(
 *   HttpRouter.post("/admin/flush", HttpServerResponse.json({ flushed: true })),
 *   HttpRouter.use(WorkerHttp.authorize(guard))
 * )
 * ```
 *
 * @since 0.3.0
 * @category guards
 */
export const authorize = <RG>(guard: Guard<RG>) =>
<E, R>(
  app: HttpApp.Default<E, R>
): HttpApp.Default<E, R | RG | HttpServerRequest.HttpServerRequest> => protectWith(guard)(app)

/**
 * Lets every request through: for routes that something in front already guards (a reverse proxy that
 * authenticates, a port only the cluster reaches). {@link routes} requires a guard, so serving the control routes
 * and the dashboard open is a choice written in the code.
 *
 * @example
 * ```ts
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * // behind oauth2-proxy, which authenticates every request before it gets here
 * const routes = WorkerHttp.routes({ guard: WorkerHttp.unguarded })
 * ```
 *
 * @since 0.3.0
 * @category guards
 */
export const unguarded: Guard = Effect.void

/** Compares in time that depends on `expected`'s length only, not on where the two differ. */
const sameText = (given: string, expected: string): boolean => {
  let diff = given.length ^ expected.length
  for (let i = 0; i < expected.length; i++) diff |= (given.charCodeAt(i) | 0) ^ expected.charCodeAt(i)
  return diff === 0
}

/**
 * A {@link Guard} that lets a request through when it carries `Authorization: Bearer <token>` with one of the
 * given tokens (several, to rotate one without downtime), compared in constant time. It reads that header only: a
 * token in the query string or a cookie is ignored, so it never lands in access logs, browser history or a
 * cross-site request. Without the header (or with another scheme) it answers 401 with `WWW-Authenticate: Bearer`;
 * with a wrong token, 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
 *
 * An empty token, or no token, is a bug: `bearerToken` throws an `IllegalArgumentException`.
 *
 * @example
 * ```ts
 * import { Config, Effect } from "effect"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * // the token from the environment, never from the code
 * const routes = Effect.map(Config.redacted("DASHBOARD_TOKEN"), (token) =>
 *   WorkerHttp.routes({ guard: WorkerHttp.bearerToken(token), jobs: true }))
 * ```
 *
 * @since 0.3.0
 * @category guards
 */
export const bearerToken = (
  token: Redacted.Redacted<string> | ReadonlyArray<Redacted.Redacted<string>>
): Guard => {
  const tokens = (Redacted.isRedacted(token) ? [token] : token).map((t) => Redacted.value(t))
  if (tokens.length === 0 || tokens.some((t) => typeof t !== "string" || t === "" || /\s/.test(t))) {
    throw new Cause.IllegalArgumentException(
      "WorkerHttp.bearerToken: give at least one token, each a non-empty string without whitespace"
    )
  }
  return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? "")
    if (match === null) {
      return Effect.fail(
        new Unauthorized({ message: "this route needs a bearer token: send the header Authorization: Bearer <token>" })
      )
    }
    const given = match[1]!
    // Every token is compared, so the time does not say which one matched.
    let ok = false
    for (const expected of tokens) ok = sameText(given, expected) || ok
    return ok
      ? Effect.void
      : Effect.fail(
        new Unauthorized({ message: "the bearer token is not valid", challenge: "Bearer error=\"invalid_token\"" })
      )
  })
}

const workerRoutes = <RG>(protect: Protect<RG>) =>
  HttpRouter.empty.pipe(
    HttpRouter.get(
      "/worker",
      Effect.gen(function*() {
        const ctx = yield* WorkerContext
        return json({
          name: ctx.name,
          state: yield* ctx.state,
          taskCount: yield* ctx.taskCount,
          shuttingDown: yield* ctx.isShuttingDown
        })
      })
    ),
    HttpRouter.get(
      "/health/live",
      Effect.gen(function*() {
        const state = yield* (yield* WorkerContext).state
        return state === "Stopped" ? json({ status: "stopped", state }, 503) : json({ status: "ok", state })
      })
    ),
    HttpRouter.get(
      "/health/ready",
      Effect.gen(function*() {
        const { ready, state, unready } = yield* (yield* WorkerContext).readiness
        if (ready) return json({ status: "ok", state })
        const reasons = unready.map(({ check, reason, since }) => ({ check, reason, since: since.toISOString() }))
        return json({ status: "unavailable", state, reasons }, 503)
      })
    ),
    HttpRouter.post("/worker/start", protect(control("start"))),
    HttpRouter.post("/worker/pause", protect(control("pause"))),
    HttpRouter.post("/worker/resume", protect(control("resume"))),
    HttpRouter.post(
      "/worker/stop",
      protect(Effect.gen(function*() {
        const ctx = yield* WorkerContext
        // Shutdown begins before `requestStop` returns and drains on the context's own fibers, not the request's.
        yield* ctx.requestStop
        return json({ state: yield* ctx.state }, 202)
      }))
    ),
    HttpRouter.get(
      "/metrics",
      Effect.map(
        prometheusMetrics,
        (text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
      )
    )
  )

/**
 * The worker's routes, all JSON but `/metrics`, to mount into your own router or serve with {@link serve}:
 *
 * | route | answer |
 * |---|---|
 * | `GET /worker` | 200 `{ name, state, taskCount, shuttingDown }` |
 * | `GET /health/live` | 200 `{ status: "ok", state }`, 503 once `Stopped`; never checks dependencies |
 * | `GET /health/ready` | 200 `{ status: "ok", state }` only while `Running` with every readiness check ready; 503 `{ status: "unavailable", state, reasons: [{ check, reason, since }] }` otherwise (`reasons` empty when the state alone is the cause) |
 * | `POST /worker/start`, `/worker/pause`, `/worker/resume` | 200 `{ state }`; 409 `{ error: "WorkerStateError", operation, state, message }` |
 * | `POST /worker/stop` | 202 `{ state }` at once (`Stopping`, or `Stopped` when nothing was in flight); the graceful stop goes on in the background |
 * | `GET /metrics` | 200 Prometheus text (`text/plain; version=0.0.4`) |
 *
 * Readiness flips to 503 the moment shutdown begins or the worker is paused, so Kubernetes stops routing traffic
 * while in-flight work drains, and while a component has marked a check unready (`ctx.setUnready`: a `JobWorker`
 * does so while its store cannot be reached), until it is ready again. `since` is an ISO 8601 time.
 *
 * @example
 * ```ts
 * import { HttpRouter } from "@effect/platform"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * // the worker's routes under /ops, next to your own
 * const routes = HttpRouter.empty.pipe(HttpRouter.mount("/ops", WorkerHttp.router))
 * ```
 *
 * @since 0.1.0
 * @category routes
 */
export const router: HttpRouter.HttpRouter<never, WorkerContext> = workerRoutes(unprotected)

const badRequest = (message: string) => json({ error: "BadRequest", message }, 400)

const storeError = (error: JobStoreError) =>
  Effect.as(
    Effect.logWarning("job store unavailable", error),
    json({ error: "JobStoreError", operation: error.operation, message: error.message }, 503)
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

const jobsRoutes = <RG>(protect: Protect<RG>) =>
  HttpRouter.empty.pipe(
    HttpRouter.get(
      "/jobs/stats",
      Effect.gen(function*() {
        const store = yield* JobStore
        return json(yield* store.stats)
      }).pipe(Effect.catchTag("JobStoreError", storeError))
    ),
    HttpRouter.get(
      "/jobs/dead",
      Effect.gen(function*() {
        const options = deadLettersOptions(yield* HttpServerRequest.ParsedSearchParams)
        if (Either.isLeft(options)) return badRequest(options.left)
        const store = yield* JobStore
        const jobs = yield* store.deadLetters(options.right)
        return json({ jobs: jobs.map((job) => ({ ...job, failedAt: job.failedAt.toISOString() })) })
      }).pipe(Effect.catchTag("JobStoreError", storeError))
    ),
    HttpRouter.post(
      "/jobs/dead/:id/redrive",
      protect(
        Effect.gen(function*() {
          const { id = "" } = yield* HttpRouter.params
          const store = yield* JobStore
          // One store operation: a job that is not dead (or was redriven meanwhile) moves nothing.
          const redriven = yield* store.redrive([id])
          return redriven === 0
            ? json({
              error: "NotFound",
              message: `no dead job with id ${JSON.stringify(id)} to redrive (or a live job holds its key)`
            }, 404)
            : json({ redriven })
        }).pipe(Effect.catchTag("JobStoreError", storeError))
      )
    )
  )

/**
 * Routes to inspect a `JobStore` and act on its dead letters, all JSON, to mount next to {@link router} or serve
 * on their own with {@link jobsApp}. They need only the store, not a worker: a process that enqueues and inspects
 * jobs but runs none can serve them too.
 *
 * | route | answer |
 * |---|---|
 * | `GET /jobs/stats` | 200 the store's `JobStats`: `{ ready, scheduled, leased, dead, byQueue: { [queue]: { ready, scheduled, leased, dead } } }` |
 * | `GET /jobs/dead?limit=N&queue=Q` | 200 `{ jobs: [{ id, name, queue, payload, attempts, lastError, failedAt }] }`, most recent first, `failedAt` an ISO 8601 string; `limit` an integer from 1 to 1000 (default 100), `queue` optional; 400 `{ error: "BadRequest", message }` naming the parameter otherwise |
 * | `POST /jobs/dead/:id/redrive` | 200 `{ redriven: 1 }`: the job is ready again, its attempts reset, under the same id; 404 `{ error: "NotFound", message }` when the store moved nothing: no dead job has this id (or a live job holds its `key` by now) |
 *
 * A store that fails (`JobStoreError`: unreachable, or it refused) makes any of them answer 503
 * `{ error: "JobStoreError", operation, message }` and logs a warning: the client may retry (a redrive that went
 * through before the error answers 404 the second time). The routes have no authentication: a redrive runs a job
 * again.
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
export const jobsRouter: HttpRouter.HttpRouter<never, JobStore> = jobsRoutes(unprotected)

/**
 * Options of `GET /events` (see {@link routes}). Every field is optional.
 *
 * A value that makes no sense (a heartbeat or stats interval that is not a positive duration, a negative `linger`,
 * a `replay` or `clientBuffer` that is not an integer from 1 to 100,000) makes {@link routes} throw an
 * `IllegalArgumentException` that names it.
 *
 * @example
 * ```ts
 * import type * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const events: WorkerHttp.EventsOptions = { heartbeat: "30 seconds", replay: 5000, linger: "5 minutes" }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface EventsOptions {
  /** How often each connection gets a `: heartbeat` comment, so proxies keep it open. Default `"15 seconds"`. */
  readonly heartbeat?: Duration.DurationInput | undefined
  /** How often a `stats` message is recorded, and the window its task counts cover. Default `"1 second"`. */
  readonly statsInterval?: Duration.DurationInput | undefined
  /** How many of the latest messages are kept per context to replay after `Last-Event-ID`. Default `1000`. */
  readonly replay?: number | undefined
  /** How many messages a connection may have waiting before further ones are dropped for it. Default `1000`. */
  readonly clientBuffer?: number | undefined
  /**
   * How long the context's events are still recorded after its last connection closed, so that a client that
   * reconnects within it gets a replay rather than a gap. Default `"30 seconds"`; `0` stops at once.
   */
  readonly linger?: Duration.DurationInput | undefined
}

/**
 * Options of {@link routes}. `guard` is required: the control routes can stop the worker, so serving them open
 * is written down as `guard: WorkerHttp.unguarded`.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const options: WorkerHttp.RoutesOptions = {
 *   guard: WorkerHttp.bearerToken(Redacted.make("s3cret")),
 *   jobs: true,
 *   events: { heartbeat: "30 seconds" }
 * }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface RoutesOptions<R = never> {
  /**
   * Decides who may call the guarded routes: `POST /worker/*`, `GET /events`, and with `jobs`
   * `POST /jobs/dead/:id/redrive` (and the dashboard's routes with `guardDashboard`).
   */
  readonly guard: Guard<R>
  /** Whether to add {@link jobsRouter}'s routes (the routes then need a `JobStore`). Default `false`. */
  readonly jobs?: boolean | undefined
  /** Whether to serve the dashboard page, `GET /dashboard` and its assets. Default `true`. */
  readonly dashboard?: boolean | undefined
  /**
   * Whether `guard` also checks the dashboard page and its assets. Default `false`: they are static files with no
   * data in them, and a browser that navigates to a page cannot send an `Authorization` header, so a
   * {@link bearerToken} guard would lock the page out (the page sends the token with each of its own requests).
   * Set it for a guard that a navigation can satisfy: a cookie of your own, a header your proxy adds.
   */
  readonly guardDashboard?: boolean | undefined
  /** Options of `GET /events`. */
  readonly events?: EventsOptions | undefined
}

const durationOption = (
  name: string,
  input: Duration.DurationInput | undefined,
  fallback: Duration.Duration,
  zero: "allowed" | "refused"
): Duration.Duration => {
  if (input === undefined) return fallback
  // `Duration` clamps a negative number of milliseconds to zero: a negative input is refused, not made zero.
  const negative = (typeof input === "number" || typeof input === "bigint") && input < 0
  const duration = negative ? Option.none() : Duration.decodeUnknown(input)
  const millis = Option.isSome(duration) && Duration.isFinite(duration.value) ? Duration.toMillis(duration.value) : NaN
  if (!(millis > 0 || (millis === 0 && zero === "allowed"))) {
    throw new Cause.IllegalArgumentException(
      `WorkerHttp.routes: events.${name} must be a ${zero === "allowed" ? "non-negative" : "positive"} finite duration`
    )
  }
  return Duration.millis(millis)
}

const boundedInteger = (name: string, input: number | undefined, fallback: number) => {
  if (input === undefined) return fallback
  if (!Number.isInteger(input) || input < 1 || input > 100_000) {
    throw new Cause.IllegalArgumentException(`WorkerHttp.routes: events.${name} must be an integer from 1 to 100000`)
  }
  return input
}

const resolveEventsOptions = (options: EventsOptions = {}): WorkerEvents.ResolvedEventsOptions => ({
  heartbeat: durationOption("heartbeat", options.heartbeat, Duration.seconds(15), "refused"),
  statsInterval: durationOption("statsInterval", options.statsInterval, Duration.seconds(1), "refused"),
  replay: boundedInteger("replay", options.replay, 1000),
  clientBuffer: boundedInteger("clientBuffer", options.clientBuffer, 1000),
  linger: durationOption("linger", options.linger, Duration.seconds(30), "allowed")
})

/** Completed by {@link serve} once the worker stopped, before the server closes: event streams end then. */
class ServerClosing extends Context.Tag("effect-worker-context/WorkerHttp/ServerClosing")<
  ServerClosing,
  Effect.Effect<void>
>() {}

const eventsRoute = (options: WorkerEvents.ResolvedEventsOptions) => {
  const hubFor = WorkerEvents.makeHubs(options)
  return Effect.gen(function*() {
    const ctx = yield* WorkerContext
    const request = yield* HttpServerRequest.HttpServerRequest
    const store = yield* Effect.serviceOption(JobStore)
    const closing = Option.getOrElse(yield* Effect.serviceOption(ServerClosing), () => Effect.never)
    const hub = yield* hubFor(ctx)
    const lastEventId = request.headers["last-event-id"]
    // The client is attached when the body starts, inside the stream, so a client gone before that is never counted.
    const body = Stream.unwrapScoped(
      Effect.map(
        Effect.acquireRelease(hub.attach(lastEventId, store), (client) => hub.detach(client)),
        (client) => WorkerEvents.clientStream(client, options.heartbeat, closing)
      )
    )
    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream; charset=utf-8",
      headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
    })
  })
}

/**
 * The page's policy: nothing from another origin, and no inline script or style, so that text the page shows can
 * never run. `frame-ancestors 'none'` keeps it out of frames (its buttons stop a worker), `base-uri 'none'` keeps
 * its relative URLs where they are.
 */
const contentSecurityPolicy =
  "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
  "base-uri 'none'; frame-ancestors 'none'"

const assetResponse = (body: string, contentType: string, cacheControl: string) =>
  HttpServerResponse.text(body, {
    contentType,
    headers: {
      "cache-control": cacheControl,
      "content-security-policy": contentSecurityPolicy,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer"
    }
  })

const asset = (body: string, contentType: string, cacheControl: string) =>
  Effect.succeed(assetResponse(body, contentType, cacheControl))

const page = assetResponse(DashboardAssets.html, "text/html; charset=utf-8", "no-store")

const dashboardRoutes = <RG>(protect: Protect<RG>) =>
  HttpRouter.empty.pipe(
    // The router matches `/dashboard/` here too, but relative URLs resolve against it differently (`events` would
    // be `/dashboard/events`): send the browser to `../dashboard`, relatively, so it works under any mount prefix.
    HttpRouter.get(
      "/dashboard",
      protect(Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
        routerPath(request.url).endsWith("/")
          ? HttpServerResponse.empty({
            status: 301,
            headers: { location: "../dashboard", "cache-control": "no-store" }
          })
          : page))
    ),
    HttpRouter.get(
      "/dashboard/app.js",
      protect(asset(DashboardAssets.js, "text/javascript; charset=utf-8", "no-cache"))
    ),
    HttpRouter.get("/dashboard/app.css", protect(asset(DashboardAssets.css, "text/css; charset=utf-8", "no-cache")))
  )

/**
 * Every route of this module as one router, with the control routes behind `guard`: {@link router}'s routes,
 * `GET /events` (a server-sent event stream of the worker), the dashboard page `GET /dashboard`, and with
 * `jobs: true` {@link jobsRouter}'s. Mount it under a prefix like the others: the page uses relative URLs only.
 *
 * | route | guarded |
 * |---|---|
 * | `GET /health/live`, `GET /health/ready`, `GET /worker`, `GET /metrics`, `GET /jobs/stats`, `GET /jobs/dead` | no: probes, scrapers and read-only views |
 * | `POST /worker/start`, `/worker/pause`, `/worker/resume`, `/worker/stop`, `POST /jobs/dead/:id/redrive` | yes |
 * | `GET /events` | yes: it tells what the worker does |
 * | `GET /dashboard`, `/dashboard/app.js`, `/dashboard/app.css` (and `/dashboard/`, redirected to `../dashboard`) | only with `guardDashboard`: static files, no data |
 *
 * `GET /events` answers `text/event-stream`: a `snapshot`, then a `worker` message per `WorkerEvent`, a `stats`
 * message per `statsInterval`, heartbeats, replay after `Last-Event-ID`, and it ends after `Stopped`; the protocol is
 * in the operations guide (`docs/operations.md`). A client that reads too slowly never slows the worker: past
 * `clientBuffer` waiting messages, further ones are dropped for it, and it gets a `dropped { count, from, to }`
 * message where they were. With a `JobStore` in the context, `stats` carries the store's `JobStats`.
 *
 * The dashboard page is HTML, CSS and a script shipped in the package (no build step, no CDN), served with a strict
 * `Content-Security-Policy` and `Cache-Control: no-store`; it reads the stream with `fetch` and sends
 * `Authorization: Bearer <token>`, the token taken from the URL fragment (`/dashboard#token=...`).
 *
 * Each `routes` value keeps, per context, one subscription and one stats ticker for all its connections, from the
 * first connection until `linger` after the last: build it once, not per request.
 *
 * @example
 * ```ts
 * import { HttpRouter } from "@effect/platform"
 * import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
 * import { Config, Effect, Layer } from "effect"
 * import { createServer } from "node:http"
 * import { MemoryJobStore, WorkerContext } from "effect-worker-context"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * // everything under /ops: the page at /ops/dashboard#token=..., the stream at /ops/events
 * const Main = Layer.unwrapEffect(Effect.map(Config.redacted("OPS_TOKEN"), (token) =>
 *   WorkerHttp.serve(WorkerHttp.toApp(HttpRouter.empty.pipe(
 *     HttpRouter.mount("/ops", WorkerHttp.routes({ guard: WorkerHttp.bearerToken(token), jobs: true }))
 *   ))))).pipe(
 *     Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 })),
 *     Layer.provide(WorkerContext.layer({ name: "mailer" })),
 *     Layer.provide(MemoryJobStore.layer())
 *   )
 * NodeRuntime.runMain(Layer.launch(Main))
 * ```
 *
 * @since 0.3.0
 * @category routes
 */
export function routes<R = never>(
  options: RoutesOptions<R> & { readonly jobs: true }
): HttpRouter.HttpRouter<never, WorkerContext | JobStore | HttpRouter.HttpRouter.ExcludeProvided<R>>
export function routes<R = never>(
  options: RoutesOptions<R> & { readonly jobs?: false | undefined }
): HttpRouter.HttpRouter<never, WorkerContext | HttpRouter.HttpRouter.ExcludeProvided<R>>
export function routes<R = never>(
  options: RoutesOptions<R>
): HttpRouter.HttpRouter<never, WorkerContext | JobStore | HttpRouter.HttpRouter.ExcludeProvided<R>>
export function routes<R = never>(
  options: RoutesOptions<R>
): HttpRouter.HttpRouter<never, WorkerContext | JobStore | HttpRouter.HttpRouter.ExcludeProvided<R>> {
  if (!Effect.isEffect(options?.guard)) {
    throw new Cause.IllegalArgumentException(
      "WorkerHttp.routes: guard is required: WorkerHttp.bearerToken(token), a guard of your own, or WorkerHttp.unguarded"
    )
  }
  const protect = protectWith(options.guard)
  const events = resolveEventsOptions(options.events)
  const worker = HttpRouter.concat(
    workerRoutes(protect),
    HttpRouter.get("/events", protect(eventsRoute(events)))(HttpRouter.empty)
  )
  const withPage = options.dashboard === false
    ? worker
    : HttpRouter.concat(worker, dashboardRoutes(options.guardDashboard === true ? protect : unprotected))
  return options.jobs === true ? HttpRouter.concat(withPage, jobsRoutes(protect)) : withPage
}

/**
 * Runs every request through the worker as a tracked task, so graceful shutdown waits for requests in flight.
 * While the worker is not `Running` it answers 503 `{ error: "WorkerUnavailable", state, message }` without running
 * the handler, with `Retry-After: 5` while `Paused`. Admission is one atomic step of `track` (with
 * `whenPaused: "reject"`): a request is either admitted while `Running` or answered 503, never held until `resume`.
 *
 * Requests are tasks with the label `http`: their `TaskStarted`/`TaskFinished` events and their spans carry it, and
 * they count in the task metrics' series with tag `label="http"` (a 503 counts as a rejection there), apart from
 * the worker's other work.
 *
 * The handler runs with the request's services, so it gets the context with `yield* WorkerContext`. Tracking ends
 * when the handler returns its response. If the client goes away and the request fiber is interrupted, the
 * handler is interrupted too. Keep probes outside this middleware: they must answer while the worker drains.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { Effect } from "effect"
 * import { WorkerContext } from "effect-worker-context"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const jobs = HttpRouter.empty.pipe(
 *   HttpRouter.post(
 *     "/jobs",
 *     Effect.gen(function*() {
 *       const ctx = yield* WorkerContext // the worker, from inside the request
 *       return HttpServerResponse.unsafeJson({ worker: ctx.name, tasks: yield* ctx.taskCount })
 *     })
 *   ),
 *   HttpRouter.use(WorkerHttp.trackRequests)
 * )
 * const app = HttpRouter.concat(WorkerHttp.router, jobs)
 * ```
 *
 * @since 0.1.0
 * @category middleware
 */
export const trackRequests = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R | WorkerContext> =>
  Effect.gen(function*() {
    const ctx = yield* WorkerContext
    // One atomic admission: a paused worker rejects at once (a waiting `track` would hold the request until
    // `resume`), so the client gets its 503 now and retries.
    const admitted = yield* Effect.either(ctx.track(app, { whenPaused: "reject", label: "http" }))
    if (Either.isLeft(admitted)) return unavailable(ctx.name, admitted.left.state)
    const tracked = admitted.right
    return yield* Effect.onInterrupt(tracked.join, () => tracked.interrupt)
  })

const unavailable = (worker: string, state: string) =>
  json(
    { error: "WorkerUnavailable", state, message: `worker "${worker}" is ${state}: not taking requests` },
    503,
    state === "Paused" ? { "retry-after": "5" } : {}
  )

/**
 * The path as the router matches it: `find-my-way` drops a leading `scheme://host` and ends the path at the first
 * `?`, `;` or `#`.
 */
const routerPath = (url: string): string => {
  const path = url.startsWith("/") ? url : url.replace(/^https?:\/\/.*?\//, "/")
  const end = path.slice(1).search(/[?;#]/)
  return end === -1 ? path : path.slice(0, end + 1)
}

/**
 * Whether the router can decode `path`. `find-my-way` runs `decodeURI` on the path before matching and answers "no
 * route" when it throws, so a malformed percent-encoding (`%ZZ`, a cut-off UTF-8 sequence) reaches us as a
 * `RouteNotFound` on every method.
 */
const isDecodable = (path: string): boolean => Either.isRight(Either.try(() => decodeURI(path)))

const probeHandler = Effect.succeed(HttpServerResponse.empty())

/**
 * For each method of `self`'s routes, a router of that method's paths registered for every method, with handlers
 * that do nothing: running one on a request says whether the router matches the request's path for that method,
 * with the router's own matching (parameter patterns, case, trailing slash, decoding), and runs no handler. It runs
 * without the request's span, on which a match would otherwise set `http.route`.
 */
const methodProbes = <E, R>(self: HttpRouter.HttpRouter<E, R>) => {
  const probes = new Map<string, Array<HttpRouter.Route<never, never>>>()
  for (const route of self.routes) {
    if (route.method === "*") continue // it would have matched the request, whatever its method
    const routes = probes.get(route.method) ?? []
    routes.push(HttpRouter.makeRoute("*", route.path, probeHandler))
    probes.set(route.method, routes)
  }
  return Array.from(
    probes,
    ([method, routes]) => ({
      method,
      matches: Effect.isSuccess(HttpRouter.fromIterable(routes)).pipe(
        Effect.mapInputContext(Context.omit(Tracer.ParentSpan))
      )
    })
  )
}

const errorNames: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  408: "RequestTimeout",
  409: "Conflict",
  410: "Gone",
  413: "PayloadTooLarge",
  415: "UnsupportedMediaType",
  422: "UnprocessableEntity",
  429: "TooManyRequests",
  500: "InternalServerError",
  501: "NotImplemented",
  502: "BadGateway",
  503: "ServiceUnavailable",
  504: "GatewayTimeout"
}

const internalError = (cause: Cause.Cause<unknown>) =>
  Effect.as(
    Effect.logError("request failed", cause),
    json({ error: "InternalServerError", message: "the request failed; see the server log" }, 500)
  )

/** A `RequestError` without a description comes from reading the body: say so rather than "Decode error". */
const requestErrorMessage = (error: HttpServerError.RequestError): string =>
  error.reason === "Decode" && error.description === undefined
    ? `the request body could not be decoded (${error.methodAndUrl})`
    : error.message

/**
 * The response of an error that carries one. An error status with no body (the platform's `RequestError` answers
 * an empty 400) keeps its status, headers and cookies and gets the JSON body every other error has. Only the
 * platform's own `RequestError` puts its message there: another error's message may say more than a client should
 * see.
 */
const respondableResponse = (error: HttpServerRespondable.Respondable) =>
  Effect.map(HttpServerRespondable.toResponse(error), (response) => {
    if (response.status < 400 || response.body._tag !== "Empty") return response
    const message = HttpServerError.isServerError(error) && error._tag === "RequestError"
      ? requestErrorMessage(error)
      : `the request failed with status ${response.status}`
    return HttpServerResponse.unsafeJson(
      { error: errorNames[response.status] ?? (response.status < 500 ? "ClientError" : "ServerError"), message },
      {
        status: response.status,
        statusText: response.statusText,
        headers: Headers.remove(response.headers, ["content-type", "content-length"]),
        cookies: response.cookies,
        contentType: "application/json"
      }
    )
  })

/**
 * Turns a router into an app that answers every bad request with a JSON error and never a stack trace: an
 * unknown path gets 404 `{ error: "NotFound" }`, a known path with the wrong method 405
 * `{ error: "MethodNotAllowed", allow }` with an `Allow` header, a path that cannot be decoded (a malformed
 * percent-encoding such as `%ZZ`) 400 `{ error: "BadRequest" }`, and a defect or an unhandled failure 500
 * `{ error: "InternalServerError" }` (the cause is logged). The `Allow` list comes from the router's own matching
 * (parameter patterns, case, trailing slash), so it never names the method of the request it answers.
 *
 * A failure that carries its own response (an `HttpServerRespondable`) is answered with that response; when it is
 * an error status with no body, such as the platform's `RequestError` (a body that is not valid JSON, for one), it
 * keeps its status and headers and gets a JSON body: 400 `{ error: "BadRequest", message }` for a `RequestError`.
 * A `ParseError` (a body decoded with `HttpServerRequest.schemaBodyJson` that does not match its schema) is 400
 * `{ error: "BadRequest", message }` with the schema's message, as the platform itself treats it; decode your own
 * data with `Effect.orDie` so that a mismatch there stays a 500.
 *
 * @example
 * ```ts
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const app = WorkerHttp.toApp(WorkerHttp.router)
 * ```
 *
 * @since 0.1.0
 * @category routes
 */
export const toApp = <E, R>(self: HttpRouter.HttpRouter<E, R>): HttpApp.Default<never, R> => {
  const probes = methodProbes(self)
  return self.pipe(
    Effect.catchTag("RouteNotFound", () =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        const path = routerPath(request.url)
        if (!isDecodable(path)) {
          return Effect.succeed(
            json(
              { error: "BadRequest", message: `the path ${path} cannot be decoded: malformed percent-encoding` },
              400
            )
          )
        }
        // The request's own method did not match: only the other methods can be allowed.
        const others = probes.filter((probe) => probe.method !== request.method)
        return Effect.map(Effect.filter(others, (probe) => probe.matches), (matched) => {
          const allow = matched.map((probe) => probe.method)
          return allow.length > 0
            ? json(
              { error: "MethodNotAllowed", message: `${request.method} is not allowed on ${path}`, allow },
              405,
              { allow: allow.join(", ") }
            )
            : json({ error: "NotFound", message: `no route for ${request.method} ${path}` }, 404)
        })
      })),
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure)) {
        const error = failure.value
        // An error that knows its own response (a platform `RequestError`, an `HttpApiError`...) keeps it.
        if (HttpServerRespondable.isRespondable(error)) {
          return Effect.catchAllCause(
            respondableResponse(error),
            (failed) => Cause.isInterruptedOnly(failed) ? Effect.failCause(failed) : internalError(failed)
          )
        }
        // A body, path or query that does not match its schema is the client's mistake, as the platform has it.
        if (ParseResult.isParseError(error)) {
          return Effect.succeed(json({ error: "BadRequest", message: error.message }, 400))
        }
      }
      return internalError(cause)
    })
  ) as HttpApp.Default<never, R>
}

/**
 * {@link router} as a complete app: {@link toApp} applied, so unknown routes get JSON 404/405.
 *
 * @example
 * ```ts
 * import { HttpServer } from "@effect/platform"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const ServerLive = HttpServer.serve(WorkerHttp.app)
 * ```
 *
 * @since 0.1.0
 * @category routes
 */
export const app: HttpApp.Default<never, WorkerContext> = toApp(router)

/**
 * {@link jobsRouter} as a complete app: {@link toApp} applied, so unknown routes get JSON 404/405. For a process
 * that serves the store's routes without a worker; next to a worker, concatenate the routers instead (see
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
export const jobsApp: HttpApp.Default<never, JobStore> = toApp(jobsRouter)

/**
 * Serves `httpApp` on the `HttpServer` you provide, in the right order for a graceful deploy: when the layer is
 * released, the worker is stopped first, while the server still answers (readiness says 503, in-flight tracked
 * requests finish), and only then does the server stop taking requests.
 *
 * @example
 * ```ts
 * import { HttpRouter } from "@effect/platform"
 * import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { createServer } from "node:http"
 * import { WorkerContext } from "effect-worker-context"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const Main = WorkerHttp.serve(WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, HttpRouter.empty))).pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 })),
 *   Layer.provide(WorkerContext.layer({ name: "mailer" }))
 * )
 * NodeRuntime.runMain(Layer.launch(Main))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const serve = <E, R>(
  httpApp: HttpApp.Default<E, R>
): Layer.Layer<
  never,
  never,
  HttpServer.HttpServer | WorkerContext | Exclude<Exclude<R, HttpServerRequest.HttpServerRequest>, Scope.Scope>
> =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const ctx = yield* WorkerContext
    const closing = yield* Deferred.make<void>()
    yield* HttpServer.serveEffect(Effect.provideService(httpApp, ServerClosing, Deferred.await(closing)))
    // Added after `serveEffect`, so it runs first: the worker drains while the server still answers (and event
    // streams show the drain); then the streams still open end, so that the server's close need not wait for them.
    yield* Effect.addFinalizer(() => Effect.zipRight(ctx.stop, Deferred.succeed(closing, undefined)))
  }))

/**
 * {@link app} served by {@link serve}: probes, control and metrics on the `HttpServer` you provide.
 *
 * @example
 * ```ts
 * import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { createServer } from "node:http"
 * import { WorkerContext } from "effect-worker-context"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const Main = WorkerHttp.layer.pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 })),
 *   Layer.provide(WorkerContext.layer({ name: "mailer" }))
 * )
 * NodeRuntime.runMain(Layer.launch(Main))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<never, never, HttpServer.HttpServer | WorkerContext> = serve(app)
