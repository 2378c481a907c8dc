/**
 * HTTP probes, control routes and request tracking for a `WorkerContext`, on `@effect/platform`'s `HttpRouter` and
 * `HttpServer`; and {@link routes}, everything of this package in one router: the probes and control routes, the
 * job store's routes (`WorkerHttpJobs`), the event stream (`WorkerHttpEvents`) and the dashboard
 * (`WorkerHttpDashboard`), behind a guard and the checks of `WorkerHttpGuard`. Prometheus metrics are in
 * `WorkerPrometheus`, the one module that needs OpenTelemetry.
 *
 * @since 0.1.0
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type { JobStore } from "./JobStore.js"
import { WorkerContext } from "./WorkerContext.js"
import * as WorkerHttpDashboard from "./WorkerHttpDashboard.js"
import { Conflict, respond, ServiceUnavailable, toApp, toResponse } from "./WorkerHttpError.js"
import * as WorkerHttpEvents from "./WorkerHttpEvents.js"
import { AllowedHosts, authorize, checkHost, type Guard, isUnguarded, limitBody, unguarded } from "./WorkerHttpGuard.js"
import * as WorkerHttpJobs from "./WorkerHttpJobs.js"

export {
  /**
   * Runs `guard`, with the cross-site and media type checks, before a route that changes state.
   *
   * @since 0.3.0
   */
  authorize,
  /**
   * A guard that asks for `Authorization: Bearer <token>`.
   *
   * @since 0.3.0
   */
  bearerToken,
  /**
   * Decides whether a request to a guarded route may go on.
   *
   * @since 0.3.0
   */
  type Guard,
  /**
   * Whether a guard is `unguarded`.
   *
   * @since 0.4.0
   */
  isUnguarded,
  /**
   * What a guard fails with: answered 401.
   *
   * @since 0.3.0
   */
  Unauthorized,
  /**
   * The guard that lets every request through.
   *
   * @since 0.3.0
   */
  unguarded
} from "./WorkerHttpGuard.js"

export {
  /**
   * The job store's routes as an app.
   *
   * @since 0.2.0
   */
  jobsApp,
  /**
   * The job store's routes.
   *
   * @since 0.2.0
   */
  jobsRouter
} from "./WorkerHttpJobs.js"

export {
  /**
   * Turns a router into an app that answers every bad request with a JSON error.
   *
   * @since 0.1.0
   */
  toApp
} from "./WorkerHttpError.js"

export type {
  /**
   * Options of `GET /events`.
   *
   * @since 0.3.0
   */
  EventsOptions
} from "./WorkerHttpEvents.js"

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })

const control = (operation: "start" | "pause" | "resume") =>
  respond(
    Effect.gen(function*() {
      const ctx = yield* WorkerContext
      yield* ctx[operation]
      return json({ state: yield* ctx.state })
    }).pipe(Effect.catchTag("WorkerStateError", (error) =>
      Effect.fail(
        new Conflict({
          error: "WorkerStateError",
          message: error.message,
          details: { operation: error.operation, state: error.state }
        })
      )))
  )

/** The probes, and the control routes each passed through `protect`. */
const workerRoutes = <RG>(
  protect: <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E, R | RG>
) =>
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
    )
  )

/**
 * The worker's probes and control routes, all JSON, to mount into your own router or serve with {@link serve}:
 *
 * | route | answer |
 * |---|---|
 * | `GET /worker` | 200 `{ name, state, taskCount, shuttingDown }` |
 * | `GET /health/live` | 200 `{ status: "ok", state }`, 503 once `Stopped`; never checks dependencies |
 * | `GET /health/ready` | 200 `{ status: "ok", state }` only while `Running` with every readiness check ready; 503 `{ status: "unavailable", state, reasons: [{ check, reason, since }] }` otherwise (`reasons` empty when the state alone is the cause) |
 * | `POST /worker/start`, `/worker/pause`, `/worker/resume` | 200 `{ state }`; 409 `{ error: "WorkerStateError", operation, state, message }` |
 * | `POST /worker/stop` | 202 `{ state }` at once (`Stopping`, or `Stopped` when nothing was in flight); the graceful stop goes on in the background |
 *
 * Readiness flips to 503 the moment shutdown begins or the worker is paused, so Kubernetes stops routing traffic
 * while in-flight work drains, and while a component has marked a check unready (`ctx.setUnready`: a `JobWorker`
 * does so while its store cannot be reached), until it is ready again. `since` is an ISO 8601 time.
 *
 * The control routes have no guard here (serve {@link routes} for one), but every route makes the host check
 * (`WorkerHttpGuard.checkHost`: on a loopback listener, only loopback host names) and the control routes the
 * cross-site and media type checks (`WorkerHttpGuard.authorize`): a web page the operator visits cannot drive the
 * worker. Prometheus metrics are `WorkerPrometheus.router`.
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
export const router: HttpRouter.HttpRouter<never, WorkerContext> = workerRoutes<HttpServerRequest.HttpServerRequest>(
  authorize(unguarded)
).pipe(
  HttpRouter.use(checkHost)
)

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
 *   events: { heartbeat: "30 seconds" },
 *   allowedHosts: ["worker.internal"]
 * }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface RoutesOptions<R = never> {
  /**
   * Decides who may call the guarded routes: `POST /worker/*`, `GET /events`, and with `jobs`
   * `GET /jobs/dead`, `POST /jobs/dead/:id/redrive` and `POST /jobs/queues/:queue/pause` and `/resume` (and the
   * dashboard's routes with `guardDashboard`).
   */
  readonly guard: Guard<R>
  /**
   * A second guard, for the routes that only read (`GET /events`, `GET /jobs`, `GET /jobs/:id`, `GET /jobs/dead`,
   * and the dashboard's with `guardDashboard`): a request passes them when it passes either guard, so a read-only
   * token can be handed out, and `guard`'s token still reads. Default: none (`guard` alone). Ignored when `guard`
   * is `unguarded`.
   */
  readonly readGuard?: Guard<R> | undefined
  /** Whether to add `jobsRouter`'s routes (the routes then need a `JobStore`). Default `false`. */
  readonly jobs?: boolean | undefined
  /** Whether to serve the dashboard page, `GET /dashboard` and its assets. Default `true`. */
  readonly dashboard?: boolean | undefined
  /**
   * Whether `guard` also checks the dashboard page and its assets. Default `false`: they are static files with no
   * data in them, and a browser that navigates to a page cannot send an `Authorization` header, so a
   * `bearerToken` guard would lock the page out (the page sends the token with each of its own requests).
   * Set it for a guard that a navigation can satisfy: a cookie of your own, a header your proxy adds.
   */
  readonly guardDashboard?: boolean | undefined
  /** Options of `GET /events`. */
  readonly events?: WorkerHttpEvents.EventsOptions | undefined
  /**
   * Host names these routes answer for besides `localhost`, `127.0.0.1` and `[::1]` (see
   * `WorkerHttpGuard.AllowedHosts`): `"worker.internal"` (any port) or `"worker.internal:8080"`. Default: what
   * {@link serve} was given, else none. On a listener that is not a loopback address, an empty list checks nothing.
   */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /** The largest request body these routes read, in bytes; larger ones are answered 413. Default 1 MB. */
  readonly maxBodySize?: number | undefined
}

const resolveHosts = (hosts: ReadonlyArray<string> | undefined, by: string): ReadonlyArray<string> | undefined => {
  if (hosts === undefined) return undefined
  if (!Array.isArray(hosts) || hosts.some((host) => typeof host !== "string" || !/^[^\s/@]+$/.test(host))) {
    throw new Cause.IllegalArgumentException(
      `WorkerHttp.${by}: allowedHosts must be host names, each with an optional port ("worker.internal:8080")`
    )
  }
  return hosts
}

/** Runs `app` with `hosts` as the allow-list, when given. */
const withHosts = (hosts: ReadonlyArray<string> | undefined) => <E, R>(app: HttpApp.Default<E, R>) =>
  hosts === undefined ? app : Effect.provideService(app, AllowedHosts, hosts)

/**
 * Every route of this package but `/metrics` as one router, behind `guard` where a route acts or tells what the
 * worker does: {@link router}'s routes, `GET /events` (a server-sent event stream of the worker), the dashboard page
 * `GET /dashboard`, and with `jobs: true` `jobsRouter`'s. Mount it under a prefix like the others: the page uses
 * relative URLs only.
 *
 * | route | guarded |
 * |---|---|
 * | `GET /health/live`, `GET /health/ready`, `GET /worker`, `GET /jobs/stats` | no: probes and counts |
 * | `POST /worker/start`, `/worker/pause`, `/worker/resume`, `/worker/stop`, `POST /jobs/:id/cancel`, `POST /jobs/:id/run`, `DELETE /jobs/:id`, `POST /jobs/cancel`, `/jobs/redrive`, `/jobs/delete`, `POST /jobs/dead/:id/redrive`, `POST /jobs/queues/:queue/pause`, `/resume` | `guard`: they act |
 * | `GET /events`, `GET /jobs`, `GET /jobs/:id`, `GET /jobs/dead` | `guard` or `readGuard`: they carry job payloads and errors (open only with `unguarded`, as every route is then) |
 * | `GET /dashboard`, `/dashboard/app.js`, `/dashboard/app.css` (and `/dashboard/`, redirected to `../dashboard`) | only with `guardDashboard`: static files, no data |
 *
 * Whatever the guard, every route makes the checks of `WorkerHttpGuard`: the host check (421 for a `Host` off
 * `allowedHosts`, which on a loopback listener are the loopback names), the body limit (413 past `maxBodySize`),
 * and on the routes that act, the cross-site check (403 for a browser's request from another origin) and the
 * media type (415 for a body that is not JSON). The operations guide (`docs/operations.md`) has the threat model.
 *
 * `GET /events` answers `text/event-stream`: a `snapshot`, then a `worker` message per `WorkerEvent`, a `stats`
 * message per `statsInterval`, heartbeats, replay after `Last-Event-ID`, and it ends after `Stopped`; the messages
 * are `WorkerHttpEvents.EventMessage`. A client that reads too slowly never slows the worker: past `clientBuffer`
 * waiting messages, further ones are dropped for it, and it gets a `dropped { count, from, to }` message where they
 * were. Past `maxStreams` open streams (default 10), another is answered 503. Its hubs are the `EventHubs` service,
 * which {@link serve} provides.
 *
 * The dashboard page is HTML, CSS and a script shipped in the package, served with a strict
 * `Content-Security-Policy` and `Cache-Control: no-store`; it reads the stream with `fetch` and sends
 * `Authorization: Bearer <token>`, the token typed into its form or taken from the URL fragment
 * (`/dashboard#token=...`, which stays in the browser's history).
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
 * // everything under /ops: the page at /ops/dashboard, the stream at /ops/events
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
): HttpRouter.HttpRouter<
  never,
  WorkerContext | JobStore | WorkerHttpEvents.EventHubs | HttpRouter.HttpRouter.ExcludeProvided<R>
>
export function routes<R = never>(
  options: RoutesOptions<R> & { readonly jobs?: false | undefined }
): HttpRouter.HttpRouter<never, WorkerContext | WorkerHttpEvents.EventHubs | HttpRouter.HttpRouter.ExcludeProvided<R>>
export function routes<R = never>(
  options: RoutesOptions<R>
): HttpRouter.HttpRouter<
  never,
  WorkerContext | JobStore | WorkerHttpEvents.EventHubs | HttpRouter.HttpRouter.ExcludeProvided<R>
>
export function routes<R = never>(
  options: RoutesOptions<R>
): HttpRouter.HttpRouter<
  never,
  WorkerContext | JobStore | WorkerHttpEvents.EventHubs | HttpRouter.HttpRouter.ExcludeProvided<R>
> {
  if (!Effect.isEffect(options?.guard)) {
    throw new Cause.IllegalArgumentException(
      "WorkerHttp.routes: guard is required: WorkerHttp.bearerToken(token), a guard of your own, or WorkerHttp.unguarded"
    )
  }
  const guard = options.guard
  const readGuard = options.readGuard
  if (readGuard !== undefined && !Effect.isEffect(readGuard)) {
    throw new Cause.IllegalArgumentException("WorkerHttp.routes: readGuard must be a guard, or left out")
  }
  const reads = readGuard === undefined ? guard : Effect.orElse(readGuard, () => guard)
  const events = WorkerHttpEvents.resolveOptions(options.events)
  const hosts = resolveHosts(options.allowedHosts, "routes")
  const bodyLimit = limitBody(options.maxBodySize)
  /** The guard alone, for what a browser reads: a cross-site page cannot read an answer without CORS. */
  const guardReads = <E, R2>(app: HttpApp.Default<E, R2>) =>
    isUnguarded(guard)
      ? app
      : Effect.matchEffect(reads, { onFailure: (error) => Effect.succeed(toResponse(error)), onSuccess: () => app })
  const all: Array<HttpRouter.HttpRouter<never, any>> = [
    workerRoutes(authorize(guard)),
    HttpRouter.empty.pipe(HttpRouter.get("/events", guardReads(WorkerHttpEvents.route(events))))
  ]
  if (options.dashboard !== false) {
    all.push(WorkerHttpDashboard.routes(options.guardDashboard === true ? guardReads : (app) => app))
  }
  if (options.jobs === true) all.push(WorkerHttpJobs.guardedRoutes(guard, readGuard))
  return HttpRouter.concatAll(...(all as [HttpRouter.HttpRouter<never, any>])).pipe(
    HttpRouter.use(bodyLimit),
    HttpRouter.use(checkHost),
    HttpRouter.use(withHosts(hosts))
  )
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
  toResponse(
    new ServiceUnavailable({
      error: "WorkerUnavailable",
      message: `worker "${worker}" is ${state}: not taking requests`,
      details: { state },
      headers: state === "Paused" ? { "retry-after": "5" } : {}
    })
  )

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
 * Options of {@link serve}.
 *
 * @example
 * ```ts
 * import type * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const options: WorkerHttp.ServeOptions = { allowedHosts: ["worker.internal"], maxBodySize: 64 * 1024 }
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export interface ServeOptions {
  /**
   * Host names every route answers for besides the loopback ones (see `WorkerHttpGuard.AllowedHosts`); a
   * `routes` value with `allowedHosts` of its own uses its own. Default none: on a loopback listener only
   * `localhost`, `127.0.0.1` and `[::1]` are answered, on any other listener every host is.
   */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /**
   * The largest request body any route reads, in bytes: a request with a larger one is answered 413
   * `{ error: "PayloadTooLarge", limit }`, and no more than this is ever read. Default 1 MB (1,048,576). A
   * `routes` value's own `maxBodySize` applies to its routes as well: a body must fit both.
   */
  readonly maxBodySize?: number | undefined
}

/**
 * Serves `httpApp` on the `HttpServer` you provide, in the right order for a graceful deploy: when the layer is
 * released, the worker is stopped first, while the server still answers (readiness says 503, in-flight tracked
 * requests finish, event streams show the drain); then the event streams still open end, and only then does the
 * server stop taking requests.
 *
 * It provides what `routes` needs besides the worker: the event stream's hubs (`WorkerHttpEvents.EventHubs`),
 * owned by this layer. Every request it serves gets the body limit (`maxBodySize`, default 1 MB) and the allowed
 * hosts, so that a route of your own next to the worker's (an enqueue route) is bounded too.
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
  httpApp: HttpApp.Default<E, R>,
  options?: ServeOptions
): Layer.Layer<
  never,
  never,
  | HttpServer.HttpServer
  | WorkerContext
  | Exclude<R, HttpServerRequest.HttpServerRequest | Scope.Scope | WorkerHttpEvents.EventHubs>
> => {
  const hosts = resolveHosts(options?.allowedHosts, "serve")
  const bodyLimit = limitBody(options?.maxBodySize)
  return Layer.scopedDiscard(Effect.gen(function*() {
    const ctx = yield* WorkerContext
    // The hubs' scope is closed by hand, after the worker stopped and before the server stops (see below).
    const hubsScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const hubs = yield* Scope.extend(WorkerHttpEvents.make, hubsScope)
    yield* HttpServer.serveEffect(
      withHosts(hosts)(bodyLimit(Effect.provideService(httpApp, WorkerHttpEvents.EventHubs, hubs)))
    )
    // Added after `serveEffect`, so it runs first: the worker drains while the server still answers (and event
    // streams show the drain); then the streams still open end, so that the server's close need not wait for them.
    yield* Effect.addFinalizer(() => Effect.zipRight(ctx.stop, Scope.close(hubsScope, Exit.void)))
  })) as any
}

/**
 * {@link app} served by {@link serve}: probes and control routes on the `HttpServer` you provide.
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
