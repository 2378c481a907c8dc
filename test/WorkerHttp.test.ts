/**
 * Real HTTP: every test serves the worker's routes on a free loopback port and calls them with a real client
 * (one connection per request). Time is real here, so every wait is bounded.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerRespondable from "@effect/platform/HttpServerRespondable"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { assert, describe, it } from "@effect/vitest"
import {
  Chunk,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  Metric,
  Queue,
  Ref,
  Schema,
  Scope,
  Stream,
  Supervisor
} from "effect"
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import { WorkerContext, type WorkerContextOptions, type WorkerEvent, WorkerMetrics } from "../src/index.js"
import { type JobStats, JobStore, JobStoreError, type NewJob, Outcome } from "../src/JobStore.js"
import * as MemoryJobStore from "../src/MemoryJobStore.js"
import * as WorkerHttp from "../src/WorkerHttp.js"
import * as WorkerPrometheus from "../src/WorkerPrometheus.js"

const WAIT = "5 seconds"

/** A worker name no other test uses, so the process-wide metrics of one test never mix with another's. */
const uniqueName = (label: string) => `http-${label}-${randomUUID()}`

const ServerLive = NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })

/** A client with the server's base URL. No keep-alive: an idle connection must not hold the server open. */
const ClientLive = HttpServer.layerTestClient.pipe(
  Layer.provide(NodeHttpClient.layerWithoutAgent),
  Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: false }))
)

/** The library logs every transition; keep the test output readable. */
const quiet = Effect.provide(Logger.remove(Logger.defaultLogger))

class TimedOut extends Error {}

const within = (what: string) =>
  Effect.timeoutFail({ duration: WAIT, onTimeout: () => new TimedOut(`timed out waiting for ${what}`) })

interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly text: string
  /** The parsed body when the response says it is JSON, else `undefined`. */
  readonly body: unknown
}

type Method = "GET" | "POST" | "PUT" | "DELETE"

/** Calls `path` with `method`, sending `json` (the text of a JSON body, well-formed or not) when given. */
const requestWith =
  (client: HttpClient.HttpClient) => (method: Method, path: string, json?: string): Effect.Effect<Answer, unknown> =>
    Effect.gen(function*() {
      const request = HttpClientRequest.make(method)(path)
      const response = yield* client.execute(
        json === undefined ? request : HttpClientRequest.bodyText(request, json, "application/json")
      )
      const text = yield* response.text
      const isJson = (response.headers["content-type"] ?? "").includes("application/json")
      return { status: response.status, headers: response.headers, text, body: isJson ? JSON.parse(text) : undefined }
    }).pipe(within(`${method} ${path}`))

/**
 * Serves `app` for `ctx` with `WorkerHttp.serve` on a free loopback port until the test's scope closes, and
 * returns a function that calls it.
 */
/** The worker's routes and `GET /metrics`. */
const workerApp = WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, WorkerPrometheus.router))

const serveFor = (ctx: WorkerContext["Type"], app: HttpApp.Default<never, WorkerContext> = workerApp) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      Layer.merge(WorkerHttp.serve(app), ClientLive).pipe(
        Layer.provideMerge(ServerLive),
        Layer.provide(Layer.succeed(WorkerContext, ctx))
      )
    )
    return requestWith(Context.get(context, HttpClient.HttpClient))
  })

/**
 * A worker served over HTTP, with a `release` latch that tasks can wait on. The latch is opened when the test ends
 * (before the server's finalizers), so a failing test never leaves a task that holds up the shutdown.
 */
const served = (label: string, options?: WorkerContextOptions, app?: HttpApp.Default<never, WorkerContext>) =>
  Effect.gen(function*() {
    const ctx = yield* WorkerContext.make({ name: uniqueName(label), shutdownTimeout: "1 minute", ...options })
    const request = yield* serveFor(ctx, app)
    const release = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() => Deferred.succeed(release, undefined))
    return { ctx, request, release, blocked: Deferred.await(release) }
  })

/** Keeps a tracked task in flight and forks `stop`: the worker is then held in `Stopping` until `release`. */
const holdInStopping = (ctx: WorkerContext["Type"], blocked: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const task = yield* ctx.track(blocked.pipe(Effect.as("finished")))
    const stopper = yield* Effect.fork(ctx.stop)
    yield* ctx.shutdownRequested.pipe(within("Stopping"))
    return { task, stopper }
  })

const assertJson = (answer: Answer, status: number, fields: Record<string, unknown>) => {
  assert.strictEqual(answer.status, status, answer.text)
  assert.include(answer.headers["content-type"], "application/json")
  assert.isObject(answer.body, answer.text)
  assert.deepInclude(answer.body as object, fields, answer.text)
}

/** An error answer: the status, a JSON body with `fields`, and nothing that looks like a stack trace. */
const assertError = (answer: Answer, status: number, fields: Record<string, unknown>) => {
  assertJson(answer, status, fields)
  assert.notMatch(answer.text, /\bat .*:\d+:\d+/, "the body carries a stack frame")
  assert.notInclude(answer.text, "stack")
}

const Item = Schema.Struct({ name: Schema.String, count: Schema.Number })

/** An error that answers with an empty 429 and a `Retry-After` header. */
class Teapot extends Data.TaggedError("Teapot") implements HttpServerRespondable.Respondable {
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(HttpServerResponse.empty({ status: 429, headers: { "retry-after": "7" } }))
  }
}

/** An error that answers with a response of its own, body included. */
class Brewed extends Data.TaggedError("Brewed") implements HttpServerRespondable.Respondable {
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(HttpServerResponse.text("short and stout", { status: 418 }))
  }
}

describe("WorkerHttp.app", () => {
  it.scopedLive("GET /worker answers 200 with the worker's name, state, task count and shutdown flag", () =>
    Effect.gen(function*() {
      const { blocked, ctx, release, request } = yield* served("worker")
      const worker = (state: string, taskCount: number, shuttingDown: boolean) => ({
        name: ctx.name,
        state,
        taskCount,
        shuttingDown
      })

      let answer = yield* request("GET", "/worker")
      assertJson(answer, 200, {})
      assert.deepStrictEqual(answer.body, worker("Pending", 0, false))

      yield* ctx.start
      yield* ctx.track(blocked)
      answer = yield* request("GET", "/worker")
      assert.deepStrictEqual(answer.body, worker("Running", 1, false))

      yield* Effect.fork(ctx.stop)
      yield* ctx.shutdownRequested.pipe(within("Stopping"))
      answer = yield* request("GET", "/worker")
      assert.deepStrictEqual(answer.body, worker("Stopping", 1, true))

      yield* Deferred.succeed(release, undefined)
      yield* ctx.awaitShutdown.pipe(within("Stopped"))
      answer = yield* request("GET", "/worker")
      assertJson(answer, 200, {})
      assert.deepStrictEqual(answer.body, worker("Stopped", 0, true))
    }).pipe(quiet))

  it.scopedLive("GET /health/live answers 200 in every state but Stopped, and 503 once Stopped", () =>
    Effect.gen(function*() {
      const { blocked, ctx, release, request } = yield* served("live")
      assertJson(yield* request("GET", "/health/live"), 200, { state: "Pending" })
      yield* ctx.start
      assertJson(yield* request("GET", "/health/live"), 200, { state: "Running" })
      yield* ctx.pause
      assertJson(yield* request("GET", "/health/live"), 200, { state: "Paused" })
      yield* ctx.resume

      const { stopper } = yield* holdInStopping(ctx, blocked)
      assertJson(yield* request("GET", "/health/live"), 200, { state: "Stopping" })

      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(stopper).pipe(within("stop"))
      assertError(yield* request("GET", "/health/live"), 503, { state: "Stopped" })
    }).pipe(quiet))

  it.scopedLive("GET /health/ready answers 200 only while Running, and 503 with the state in every other state", () =>
    Effect.gen(function*() {
      const { blocked, ctx, release, request } = yield* served("ready")
      assertError(yield* request("GET", "/health/ready"), 503, { status: "unavailable", state: "Pending", reasons: [] })
      yield* ctx.start
      assertJson(yield* request("GET", "/health/ready"), 200, { status: "ok", state: "Running" })
      yield* ctx.pause
      assertError(yield* request("GET", "/health/ready"), 503, { status: "unavailable", state: "Paused", reasons: [] })
      yield* ctx.resume
      assertJson(yield* request("GET", "/health/ready"), 200, { state: "Running" })

      const { stopper, task } = yield* holdInStopping(ctx, blocked)
      assertError(yield* request("GET", "/health/ready"), 503, { state: "Stopping" })
      assert.isNull(task.fiber.unsafePoll(), "the task is still draining")

      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(stopper).pipe(within("stop"))
      assertError(yield* request("GET", "/health/ready"), 503, { state: "Stopped" })
    }).pipe(quiet))

  it.scopedLive("GET /health/ready answers 503 with every unready check's reason while Running, and 200 once ready", () =>
    Effect.gen(function*() {
      const { ctx, request } = yield* served("reasons", { logLevel: "None" })
      yield* ctx.start
      yield* ctx.setUnready("job store", "JobStore.claim failed: connection refused to 127.0.0.1:5432")
      yield* ctx.setUnready("cache", "timed out")
      const { unready } = yield* ctx.readiness
      const answer = yield* request("GET", "/health/ready")
      assertError(answer, 503, { status: "unavailable", state: "Running" })
      assert.deepStrictEqual((answer.body as { readonly reasons: unknown }).reasons, [
        {
          check: "job store",
          reason: "JobStore.claim failed: connection refused to 127.0.0.1:5432",
          since: unready[0]!.since.toISOString()
        },
        { check: "cache", reason: "timed out", since: unready[1]!.since.toISOString() }
      ])
      yield* ctx.setReady("job store")
      yield* ctx.setReady("cache")
      const ok = yield* request("GET", "/health/ready")
      assertJson(ok, 200, { status: "ok", state: "Running" })
      assert.notProperty(ok.body, "reasons")
      assertJson(yield* request("GET", "/health/live"), 200, { state: "Running" })
    }).pipe(quiet))

  it.scopedLive("POST /worker/start, /worker/pause and /worker/resume answer 200 with the new state", () =>
    Effect.gen(function*() {
      const { ctx, request } = yield* served("control")
      assertJson(yield* request("POST", "/worker/start"), 200, { state: "Running" })
      assert.strictEqual(yield* ctx.state, "Running")
      assertJson(yield* request("POST", "/worker/pause"), 200, { state: "Paused" })
      assert.strictEqual(yield* ctx.state, "Paused")
      assertJson(yield* request("POST", "/worker/pause"), 200, { state: "Paused" })
      assertJson(yield* request("POST", "/worker/resume"), 200, { state: "Running" })
      assert.strictEqual(yield* ctx.state, "Running")
      // Asking for the state the worker is already in is a no-op, not a conflict.
      assertJson(yield* request("POST", "/worker/start"), 200, { state: "Running" })
      assertJson(yield* request("POST", "/worker/resume"), 200, { state: "Running" })
    }).pipe(quiet))

  it.scopedLive("control routes answer 409 with the error, operation and state on an impossible transition", () =>
    Effect.gen(function*() {
      const { ctx, request } = yield* served("conflict")
      const conflict = (operation: string, state: string) => ({ error: "WorkerStateError", operation, state })

      assertError(yield* request("POST", "/worker/pause"), 409, conflict("pause", "Pending"))
      assertError(yield* request("POST", "/worker/resume"), 409, conflict("resume", "Pending"))
      assert.strictEqual(yield* ctx.state, "Pending")

      yield* ctx.start
      yield* ctx.pause
      assertError(yield* request("POST", "/worker/start"), 409, conflict("start", "Paused"))
      assert.strictEqual(yield* ctx.state, "Paused")

      yield* ctx.stop
      assertError(yield* request("POST", "/worker/start"), 409, conflict("start", "Stopped"))
      assertError(yield* request("POST", "/worker/pause"), 409, conflict("pause", "Stopped"))
      assertError(yield* request("POST", "/worker/resume"), 409, conflict("resume", "Stopped"))
      assert.strictEqual(yield* ctx.state, "Stopped")
    }).pipe(quiet))

  it.scopedLive("POST /worker/stop answers 202 at once while a task is in flight; the worker stops once it ends", () =>
    Effect.gen(function*() {
      const { blocked, ctx, release, request } = yield* served("stop")
      yield* ctx.start
      const task = yield* ctx.track(blocked.pipe(Effect.as("finished")))

      assertJson(yield* request("POST", "/worker/stop"), 202, { state: "Stopping" })
      assert.strictEqual(yield* ctx.state, "Stopping")
      assert.strictEqual(yield* ctx.taskCount, 1)
      assert.isNull(task.fiber.unsafePoll(), "the task is still running: stop waits for it")
      assertError(yield* request("GET", "/health/ready"), 503, { state: "Stopping" })

      yield* Deferred.succeed(release, undefined)
      yield* ctx.awaitShutdown.pipe(within("Stopped"))
      assert.strictEqual(yield* ctx.state, "Stopped")
      assert.deepStrictEqual(yield* task.await, Exit.succeed("finished"), "the task finished, it was not cut off")
      assertJson(yield* request("GET", "/worker"), 200, { state: "Stopped", taskCount: 0 })
    }).pipe(quiet))

  it.scopedLive("POST /worker/stop answers 202 Stopped when nothing is in flight", () =>
    Effect.gen(function*() {
      const { ctx, request } = yield* served("stop-idle")
      yield* ctx.start
      assertJson(yield* request("POST", "/worker/stop"), 202, { state: "Stopped" })
      assert.strictEqual(yield* ctx.state, "Stopped")
    }).pipe(quiet))

  it.scopedLive("POST /worker/stop leaves no fiber of its own behind: the drain is the context's", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const { blocked, ctx, release, request } = yield* served(
        "stop-no-fiber",
        {},
        Effect.supervised(WorkerHttp.app, supervisor)
      )
      yield* ctx.start
      yield* ctx.track(blocked)

      assertJson(yield* request("POST", "/worker/stop"), 202, { state: "Stopping" })
      const left = yield* supervisor.value
      assert.deepStrictEqual(left.map((fiber) => fiber.id()), [], "the request forked a fiber that outlives it")

      yield* Deferred.succeed(release, undefined)
      yield* ctx.awaitShutdown.pipe(within("Stopped"))
    }).pipe(quiet))

  it.scopedLive("an unknown route answers 404 with a JSON error", () =>
    Effect.gen(function*() {
      const { request } = yield* served("not-found")
      assertError(yield* request("GET", "/nope"), 404, { error: "NotFound" })
      assertError(yield* request("POST", "/worker/restart"), 404, { error: "NotFound" })
      assertError(yield* request("GET", "/health"), 404, { error: "NotFound" })
    }).pipe(quiet))

  it.scopedLive("a known route with the wrong method answers 405 with a JSON error and an Allow header", () =>
    Effect.gen(function*() {
      const { ctx, request } = yield* served("method")

      let answer = yield* request("GET", "/worker/start")
      assertError(answer, 405, { error: "MethodNotAllowed", allow: ["POST"] })
      assert.strictEqual(answer.headers["allow"], "POST")
      assert.strictEqual(yield* ctx.state, "Pending", "the wrong method did not start the worker")

      answer = yield* request("POST", "/health/ready")
      assertError(answer, 405, { error: "MethodNotAllowed", allow: ["GET"] })
      assert.strictEqual(answer.headers["allow"], "GET")

      answer = yield* request("DELETE", "/worker")
      assertError(answer, 405, { error: "MethodNotAllowed" })
      assert.strictEqual(answer.headers["allow"], "GET")

      answer = yield* request("PUT", "/metrics")
      assertError(answer, 405, { error: "MethodNotAllowed" })
      assert.strictEqual(answer.headers["allow"], "GET")
    }).pipe(quiet))

  it.scopedLive("a path that cannot be decoded answers 400 with a JSON error, not 404 or 405", () =>
    Effect.gen(function*() {
      const items = HttpRouter.empty.pipe(
        HttpRouter.get("/items/:id", Effect.succeed(HttpServerResponse.unsafeJson({ item: true })))
      )
      const { request } = yield* served(
        "undecodable",
        {},
        WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, items))
      )
      assertJson(yield* request("GET", "/items/%41"), 200, { item: true })

      // The router matches on the decoded path; `%ZZ` or a cut-off UTF-8 sequence cannot be decoded.
      for (const path of ["/items/%ZZ", "/items/%E0%A4%A", "/items/%", "/nope/%ZZ?x=1"]) {
        const answer = yield* request("GET", path)
        assertError(answer, 400, { error: "BadRequest" })
        assert.isString((answer.body as { message?: unknown }).message, path)
        assert.isUndefined(answer.headers["allow"], path)
      }
      assertError(yield* request("POST", "/items/%ZZ"), 400, { error: "BadRequest" })
    }).pipe(quiet))

  it.scopedLive("405 lists the methods the router itself would match, never the request's own", () =>
    Effect.gen(function*() {
      const numbers = HttpRouter.empty.pipe(
        HttpRouter.get("/numbers/:n(^\\d+$)", Effect.succeed(HttpServerResponse.unsafeJson({ number: true }))),
        HttpRouter.put("/numbers/:n(^\\d+$)", Effect.succeed(HttpServerResponse.unsafeJson({ number: true })))
      )
      const { request } = yield* served("allow", {}, WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, numbers)))
      assertJson(yield* request("GET", "/numbers/42"), 200, { number: true })

      // The path has the route's shape but not its parameter's pattern: no method matches it.
      assertError(yield* request("GET", "/numbers/abc"), 404, { error: "NotFound" })
      assertError(yield* request("POST", "/numbers/abc"), 404, { error: "NotFound" })

      let answer = yield* request("POST", "/numbers/42")
      assertError(answer, 405, { error: "MethodNotAllowed", allow: ["GET", "PUT"] })
      assert.strictEqual(answer.headers["allow"], "GET, PUT")
      answer = yield* request("PUT", "/numbers/42")
      assert.strictEqual(answer.status, 200, answer.text)

      // The router matches paths case-insensitively and ignores a trailing slash: so does the Allow list.
      answer = yield* request("DELETE", "/WORKER/")
      assertError(answer, 405, { error: "MethodNotAllowed", allow: ["GET"] })
      assert.strictEqual(answer.headers["allow"], "GET")
    }).pipe(quiet))

  it.scopedLive("a handler that dies answers 500 with a JSON error and no stack trace", () =>
    Effect.gen(function*() {
      const broken = HttpRouter.empty.pipe(
        HttpRouter.get("/broken", Effect.die(new Error("secret detail of the failure")))
      )
      const { request } = yield* served("defect", {}, WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, broken)))
      const answer = yield* request("GET", "/broken")
      assertError(answer, 500, { error: "InternalServerError" })
      assert.notInclude(answer.text, "secret detail")
    }).pipe(quiet))

  it.scopedLive("a handler failing with an error that has its own response answers with it, not 500", () =>
    Effect.gen(function*() {
      const parsing = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/parse",
          Effect.flatMap(
            HttpServerRequest.HttpServerRequest,
            (request) => Effect.fail(new HttpServerError.RequestError({ request, reason: "Decode" }))
          )
        )
      )
      const { request } = yield* served(
        "respondable",
        {},
        WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, parsing))
      )
      const answer = yield* request("GET", "/parse")
      assertError(answer, 400, { error: "BadRequest" })
    }).pipe(quiet))

  it.scopedLive("a POST with malformed JSON answers 400 with a JSON error, whether read by schema or by hand", () =>
    Effect.gen(function*() {
      const body = HttpRouter.empty.pipe(
        HttpRouter.post(
          "/schema",
          Effect.map(HttpServerRequest.schemaBodyJson(Item), (item) => HttpServerResponse.unsafeJson({ got: item }))
        ),
        HttpRouter.post(
          "/raw",
          Effect.flatMap(
            HttpServerRequest.HttpServerRequest,
            (request) => Effect.map(request.json, (json) => HttpServerResponse.unsafeJson({ got: json }))
          )
        )
      )
      const { request } = yield* served("bad-json", {}, WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, body)))
      assertJson(yield* request("POST", "/schema", `{"name":"a","count":1}`), 200, { got: { name: "a", count: 1 } })
      assertJson(yield* request("POST", "/raw", `[1]`), 200, { got: [1] })

      for (const path of ["/schema", "/raw"]) {
        const answer = yield* request("POST", path, `{"name": "a",`)
        assertError(answer, 400, {
          error: "BadRequest",
          message: `the request body could not be decoded (POST ${path})`
        })
      }
    }).pipe(quiet))

  it.scopedLive("a JSON body of the wrong shape answers 400 with the schema's message, not 500", () =>
    Effect.gen(function*() {
      const body = HttpRouter.empty.pipe(
        HttpRouter.post(
          "/schema",
          Effect.map(HttpServerRequest.schemaBodyJson(Item), (item) => HttpServerResponse.unsafeJson({ got: item }))
        )
      )
      const { request } = yield* served("bad-shape", {}, WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, body)))
      const answer = yield* request("POST", "/schema", `{"name":"a","count":"many"}`)
      assertError(answer, 400, { error: "BadRequest" })
      const message = (answer.body as { message?: unknown }).message
      assert.isString(message)
      assert.include(message, "count", answer.text)
      assert.include(message, "Expected number", answer.text)
    }).pipe(quiet))

  it.scopedLive("an error whose response has no body keeps its status and headers and gets a JSON body", () =>
    Effect.gen(function*() {
      const teapot = HttpRouter.empty.pipe(
        HttpRouter.get("/teapot", Effect.fail(new Teapot())),
        HttpRouter.get("/brewed", Effect.fail(new Brewed()))
      )
      const { request } = yield* served(
        "empty-respondable",
        {},
        WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, teapot))
      )
      let answer = yield* request("GET", "/teapot")
      assertError(answer, 429, { error: "TooManyRequests" })
      assert.isString((answer.body as { message?: unknown }).message)
      assert.strictEqual(answer.headers["retry-after"], "7")

      // A response that has a body is left as it is.
      answer = yield* request("GET", "/brewed")
      assert.strictEqual(answer.status, 418)
      assert.strictEqual(answer.text, "short and stout")
      assert.match(answer.headers["content-type"] ?? "", /^text\/plain/)
    }).pipe(quiet))
})

/** Probes and control outside the middleware, `GET /job` inside it, as the docs show. */
const withJobs = (job: Effect.Effect<HttpServerResponse.HttpServerResponse, never, WorkerContext>) =>
  WorkerHttp.toApp(
    HttpRouter.concatAll(
      WorkerHttp.router,
      WorkerPrometheus.router,
      HttpRouter.empty.pipe(HttpRouter.get("/job", job), HttpRouter.use(WorkerHttp.trackRequests))
    )
  )

/**
 * A request handler that counts its runs, says when it entered, then waits for `release` and answers with what it
 * sees of the worker, which it gets with `yield* WorkerContext`; it says when it is `done`, just before it returns.
 */
const slowJob = Effect.gen(function*() {
  const runs = yield* Ref.make(0)
  const entered = yield* Deferred.make<void>()
  const release = yield* Deferred.make<void>()
  const done = yield* Deferred.make<void>()
  yield* Effect.addFinalizer(() => Deferred.succeed(release, undefined))
  const job = Effect.gen(function*() {
    const ctx = yield* WorkerContext
    yield* Ref.update(runs, (n) => n + 1)
    yield* Deferred.succeed(entered, undefined)
    yield* Deferred.await(release)
    const seen = { worker: ctx.name, taskCount: yield* ctx.taskCount }
    yield* Deferred.succeed(done, undefined)
    return HttpServerResponse.unsafeJson(seen)
  })
  return { runs, entered, release, done, app: withJobs(job) }
})

const assertUnavailable = (answer: Answer, state: string, retryAfter: string | undefined) => {
  assertError(answer, 503, { error: "WorkerUnavailable", state })
  assert.strictEqual(answer.headers["retry-after"], retryAfter)
}

describe("WorkerHttp.trackRequests", () => {
  it.scopedLive("runs a request as a tracked task whose handler gets the worker with yield* WorkerContext", () =>
    Effect.gen(function*() {
      const job = yield* slowJob
      const { ctx, request } = yield* served("tracked", {}, job.app)
      const events = yield* ctx.subscribe
      yield* ctx.start

      const inFlight = yield* Effect.fork(request("GET", "/job"))
      yield* Deferred.await(job.entered).pipe(within("the handler"))
      assert.strictEqual(yield* ctx.taskCount, 1)
      // The probes are outside the middleware: asking for the count is not a task of its own.
      assertJson(yield* request("GET", "/worker"), 200, { taskCount: 1 })
      const started = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
      assert.deepStrictEqual(started.filter((event) => event._tag === "TaskStarted"), [
        { _tag: "TaskStarted", worker: ctx.name, taskId: 1, label: "http" } as WorkerEvent
      ])

      yield* Deferred.succeed(job.release, undefined)
      const answer = yield* Fiber.join(inFlight)
      assertJson(answer, 200, {})
      assert.deepStrictEqual(answer.body, { worker: ctx.name, taskCount: 1 })
      // The task ends just after the response is handed over: wait for its TaskFinished.
      const finished = Chunk.toReadonlyArray(
        yield* Stream.fromQueue(events).pipe(
          Stream.takeUntil((event) => event._tag === "TaskFinished"),
          Stream.runCollect,
          within("the task to end")
        )
      )
      assert.strictEqual(yield* ctx.taskCount, 0)
      assert.deepInclude(finished, {
        _tag: "TaskFinished",
        worker: ctx.name,
        taskId: 1,
        label: "http",
        outcome: "success"
      })
      assert.strictEqual(yield* Ref.get(job.runs), 1)
    }).pipe(quiet))

  it.scopedLive("graceful stop waits for a request in flight, whose response still arrives", () =>
    Effect.gen(function*() {
      const job = yield* slowJob
      const { ctx, request } = yield* served("drain-request", {}, job.app)
      yield* ctx.start

      const inFlight = yield* Effect.fork(request("GET", "/job"))
      yield* Deferred.await(job.entered).pipe(within("the handler"))
      // `stop` answers whether the handler was done when it returned.
      const stopper = yield* Effect.fork(Effect.zipRight(ctx.stop, Deferred.isDone(job.done)))
      yield* ctx.shutdownRequested.pipe(within("Stopping"))
      assert.strictEqual(yield* ctx.state, "Stopping")
      assert.isNull(stopper.unsafePoll(), "stop waits for the request")
      assert.isNull(inFlight.unsafePoll(), "the request is still being handled")
      assert.strictEqual(yield* ctx.taskCount, 1)

      yield* Deferred.succeed(job.release, undefined)
      const answer = yield* Fiber.join(inFlight)
      assertJson(answer, 200, {})
      assert.deepStrictEqual(answer.body, { worker: ctx.name, taskCount: 1 })
      assert.isTrue(yield* Fiber.join(stopper).pipe(within("stop")), "stop returned before the handler was done")
      assert.strictEqual(yield* ctx.state, "Stopped")
    }).pipe(quiet))

  it.scopedLive("answers 503 with Retry-After while Paused, without running the handler", () =>
    Effect.gen(function*() {
      const job = yield* slowJob
      const { ctx, request } = yield* served("paused", {}, job.app)
      yield* ctx.start
      yield* ctx.pause

      const answer = yield* request("GET", "/job")
      assertUnavailable(answer, "Paused", "5")
      assert.strictEqual(yield* Ref.get(job.runs), 0, "the handler did not run")
      assert.strictEqual(yield* ctx.taskCount, 0)

      // Once resumed, the same route runs its handler again.
      yield* ctx.resume
      yield* Deferred.succeed(job.release, undefined)
      assertJson(yield* request("GET", "/job"), 200, { worker: ctx.name })
      assert.strictEqual(yield* Ref.get(job.runs), 1)
    }).pipe(quiet))

  it.scopedLive("answers 503 with Retry-After when a pause lands just before admission, instead of waiting", () =>
    Effect.gen(function*() {
      const job = yield* slowJob
      const ctx = yield* WorkerContext.make({ name: uniqueName("pause-race"), shutdownTimeout: "1 minute" })
      // The pause lands after anything the middleware may have read and before the context admits the request.
      const pausingFirst: WorkerContext.Service = {
        ...ctx,
        track: (effect, options) => Effect.zipRight(Effect.orDie(ctx.pause), ctx.track(effect, options))
      }
      const request = yield* serveFor(pausingFirst, job.app)
      yield* ctx.start

      assertUnavailable(yield* request("GET", "/job"), "Paused", "5")
      assert.strictEqual(yield* Ref.get(job.runs), 0, "the handler did not run")
      assert.strictEqual(yield* ctx.taskCount, 0)
    }).pipe(quiet))

  it.scopedLive("counts requests as tasks labelled http, a paused 503 among the rejections", () =>
    Effect.gen(function*() {
      const job = yield* slowJob
      const { ctx, request } = yield* served("http-label", {}, job.app)
      const http = WorkerMetrics.taskMetrics(ctx.name, "http")
      const count = (counter: Metric.Metric.Counter<number>) =>
        Effect.map(Metric.value(counter), (state) => state.count)
      yield* ctx.start
      yield* Deferred.succeed(job.release, undefined)
      assertJson(yield* request("GET", "/job"), 200, { worker: ctx.name })
      yield* ctx.pause
      assertUnavailable(yield* request("GET", "/job"), "Paused", "5")

      assert.strictEqual(yield* count(http.tasksRejected), 1)
      assert.strictEqual(yield* count(http.tasksStarted), 1)
      assert.strictEqual(yield* count(WorkerMetrics.forWorker(ctx.name).tasksStarted), 0, "no unlabelled task")
      const metrics = yield* request("GET", "/metrics")
      const series = (name: string) => `${name}{worker="${ctx.name}",label="http"}`
      assert.strictEqual(sample(metrics.text, series("effect_worker_tasks_rejected_total")), "1")
      assert.strictEqual(sample(metrics.text, series("effect_worker_tasks_started_total")), "1")
      assert.strictEqual(sample(metrics.text, `effect_worker_tasks_rejected_total{worker="${ctx.name}"}`), "0")
    }).pipe(quiet))

  it.scopedLive("answers 503 without Retry-After while Pending, Stopping or Stopped, without running the handler", () =>
    Effect.gen(function*() {
      const job = yield* slowJob
      const { blocked, ctx, release, request } = yield* served("unavailable", {}, job.app)

      assertUnavailable(yield* request("GET", "/job"), "Pending", undefined)

      yield* ctx.start
      const { stopper } = yield* holdInStopping(ctx, blocked)
      assertUnavailable(yield* request("GET", "/job"), "Stopping", undefined)
      assert.strictEqual(yield* ctx.taskCount, 1, "only the held task is in flight")

      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(stopper).pipe(within("stop"))
      assertUnavailable(yield* request("GET", "/job"), "Stopped", undefined)
      assert.strictEqual(yield* Ref.get(job.runs), 0, "the handler never ran")
    }).pipe(quiet))
})

describe("WorkerHttp.serve", () => {
  it.scopedLive("releasing its layer stops the worker first, while the server still answers", () =>
    Effect.gen(function*() {
      const job = yield* slowJob
      const scope = yield* Scope.make()
      yield* Effect.addFinalizer((exit) => Scope.close(scope, exit))
      const name = uniqueName("serve")
      const context = yield* Layer.buildWithScope(
        WorkerHttp.serve(job.app).pipe(
          Layer.provideMerge(ServerLive),
          Layer.provideMerge(WorkerContext.layer({ name, shutdownTimeout: "1 minute" }))
        ),
        scope
      )
      const ctx = Context.get(context, WorkerContext)
      // The client lives in the test's scope, so it outlives the layer.
      const client = yield* Layer.build(
        ClientLive.pipe(
          Layer.provide(Layer.succeed(HttpServer.HttpServer, Context.get(context, HttpServer.HttpServer)))
        )
      )
      const request = requestWith(Context.get(client, HttpClient.HttpClient))
      yield* ctx.start

      const inFlight = yield* Effect.fork(request("GET", "/job"))
      yield* Deferred.await(job.entered).pipe(within("the handler"))
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* ctx.shutdownRequested.pipe(within("Stopping"))
      assert.strictEqual(yield* ctx.state, "Stopping")

      // Draining: the server still answers, readiness says 503 and new requests are turned away.
      assertError(yield* request("GET", "/health/ready"), 503, { state: "Stopping" })
      assertUnavailable(yield* request("GET", "/job"), "Stopping", undefined)
      assertJson(yield* request("GET", "/worker"), 200, { name, state: "Stopping", taskCount: 1 })
      assert.isNull(closing.unsafePoll(), "the layer waits for the request in flight")

      yield* Deferred.succeed(job.release, undefined)
      const answer = yield* Fiber.join(inFlight)
      assertJson(answer, 200, { worker: name })
      yield* Fiber.join(closing).pipe(within("the layer to close"))
      assert.strictEqual(yield* ctx.state, "Stopped")
      assert.strictEqual(yield* Ref.get(job.runs), 1)

      // And only then did the server stop taking requests.
      const after = yield* Effect.either(request("GET", "/health/live"))
      assert.isTrue(Either.isLeft(after), "the server still answers after its layer was released")
    }).pipe(quiet))
})

/** The value of the sample line `series` (name and labels) in Prometheus text, or `undefined` if absent. */
const sample = (text: string, series: string): string | undefined => {
  const line = text.split("\n").find((line) => line.startsWith(`${series} `))
  return line?.slice(series.length + 1)
}

describe("GET /metrics", () => {
  it.scopedLive("reports the worker's task counts and durations as Prometheus text", () =>
    Effect.gen(function*() {
      const { blocked, ctx, request } = yield* served("metrics")
      const rejected = yield* Effect.either(ctx.track(Effect.void))
      assert.isTrue(Either.isLeft(rejected), "a Pending worker rejects")
      yield* ctx.start
      const run = <E>(effect: Effect.Effect<void, E>) => Effect.flatMap(ctx.track(effect), (task) => task.await)
      yield* Effect.repeatN(run(Effect.void), 2)
      yield* run(Effect.fail("boom"))
      yield* run(Effect.die("bang"))
      const stuck = yield* ctx.track(blocked)
      yield* stuck.interrupt

      const answer = yield* request("GET", "/metrics")
      assert.strictEqual(answer.status, 200)
      assert.match(answer.headers["content-type"] ?? "", /^text\/plain/)
      const worker = `{worker="${ctx.name}"}`
      const expected: Record<string, string> = {
        [`effect_worker_tasks_started_total${worker}`]: "6",
        [`effect_worker_tasks_succeeded_total${worker}`]: "3",
        [`effect_worker_tasks_failed_total${worker}`]: "2",
        [`effect_worker_tasks_interrupted_total${worker}`]: "1",
        [`effect_worker_tasks_rejected_total${worker}`]: "1",
        [`effect_worker_tasks_active${worker}`]: "0",
        [`effect_worker_task_duration_seconds_count${worker}`]: "6",
        [`effect_worker_state{worker="${ctx.name}",state="Pending"}`]: "0",
        [`effect_worker_state{worker="${ctx.name}",state="Running"}`]: "1"
      }
      for (const [series, value] of Object.entries(expected)) {
        assert.strictEqual(sample(answer.text, series), value, series)
      }
      assert.include(answer.text, "# TYPE effect_worker_task_duration_seconds histogram")
      assert.isDefined(sample(answer.text, `effect_worker_task_duration_seconds_sum${worker}`))
      assert.strictEqual(
        sample(answer.text, `effect_worker_task_duration_seconds_bucket{worker="${ctx.name}",le="+Inf"}`),
        "6"
      )
    }).pipe(quiet))
})

// --- the job store's routes -----------------------------------------------------------------------------------------

/** A memory store of its own for one test, as the layer provides it. */
const makeStore = Effect.map(Layer.build(MemoryJobStore.layer()), (context) => Context.get(context, JobStore))

/** A store that cannot be reached: every operation fails with a `JobStoreError` naming it. */
const unreachableStore: JobStore.Service = (() => {
  const down = (operation: string) =>
    Effect.fail(new JobStoreError({ operation, reason: "connection refused to 127.0.0.1:5432" }))
  return {
    enqueue: () => down("enqueue"),
    enqueueSlot: () => down("enqueueSlot"),
    insert: () => down("insert"),
    claim: () => down("claim"),
    renew: () => down("renew"),
    settle: () => down("settle"),
    reap: down("reap"),
    prune: down("prune"),
    wakeups: Queue.unbounded<string>(),
    stats: down("stats"),
    deadLetters: () => down("deadLetters"),
    redrive: () => down("redrive"),
    pauseQueue: () => down("pauseQueue"),
    resumeQueue: () => down("resumeQueue"),
    get: () => down("get"),
    list: () => down("list"),
    cancel: () => down("cancel"),
    cancelMany: () => down("cancelMany"),
    cancellations: Queue.unbounded<string>(),
    redriveMany: () => down("redriveMany"),
    delete: () => down("delete"),
    deleteMany: () => down("deleteMany"),
    runNow: () => down("runNow")
  }
})()

const newJob = (name: string, queue: string, payload: unknown, delayMs = 0): NewJob => ({
  name,
  queue,
  payload,
  delay: Duration.millis(delayMs),
  priority: 0,
  key: undefined,
  maxAttempts: 3
})

const claimRequest = (queue: string, limit = 1000) => ({
  queues: [queue],
  names: ["resize-image", "send-email"],
  limit,
  lease: Duration.seconds(30),
  worker: "http-test"
})

/** Enqueues `jobs`, claims them and dead-letters each with `error`, in order; returns their ids. */
const deadLettered = (store: JobStore.Service, jobs: ReadonlyArray<NewJob>, error = "boom") =>
  Effect.gen(function*() {
    const ids = yield* store.enqueue(jobs)
    const queues = [...new Set(jobs.map((job) => job.queue))]
    const claimed = (yield* Effect.forEach(queues, (queue) => store.claim(claimRequest(queue))))
      .flatMap((result) => result.jobs)
    const byId = new Map(claimed.map((job) => [job.id, job]))
    yield* store.settle(ids.map((id) => ({ lease: byId.get(id)!.lease, outcome: Outcome.Dead({ error }) })))
    return ids
  })

/**
 * Serves the worker's routes and the store's, mounted together as the docs show, with `store` and a worker of its
 * own, on a free loopback port until the test's scope closes; returns a function that calls them.
 */
const servedStore = (store: JobStore.Service) =>
  Effect.gen(function*() {
    const app = WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, WorkerHttp.jobsRouter))
    const ctx = yield* WorkerContext.make({ name: uniqueName("jobs"), shutdownTimeout: "1 minute" })
    const context = yield* Layer.build(
      Layer.merge(HttpServer.serve(app), ClientLive).pipe(
        Layer.provideMerge(ServerLive),
        Layer.provide(Layer.succeed(WorkerContext, ctx)),
        Layer.provide(Layer.succeed(JobStore, store))
      )
    )
    return requestWith(Context.get(context, HttpClient.HttpClient))
  })

/** What a JSON body holds: `value` as the server serialized it (dates as ISO strings). */
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value))

describe("WorkerHttp.jobsRouter", () => {
  it.scopedLive("GET /jobs/stats answers 200 with the store's counts, in all and per queue", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      assertJson(yield* request("GET", "/jobs/stats"), 200, { ready: 0, scheduled: 0, leased: 0, dead: 0 })

      yield* store.enqueue([
        newJob("send-email", "emails", { to: "ada@example.com" }),
        newJob("send-email", "emails", { to: "alan@example.com" }, 3_600_000)
      ])
      yield* store.enqueue([newJob("resize-image", "images", { width: 1, height: 1 })])
      yield* store.claim(claimRequest("images"))
      yield* deadLettered(store, [newJob("resize-image", "images", { width: 2, height: 2 })])

      const answer = yield* request("GET", "/jobs/stats")
      assertJson(answer, 200, { ready: 1, scheduled: 1, leased: 1, dead: 1 })
      const { byQueue } = answer.body as JobStats
      assert.deepInclude(byQueue["emails"], { ready: 1, scheduled: 1, leased: 0, dead: 0 })
      assert.deepInclude(byQueue["images"], { ready: 0, scheduled: 0, leased: 1, dead: 1 })
      assert.deepStrictEqual(answer.body, asJson(yield* store.stats), "the route answers the store's own stats")
    }).pipe(quiet))

  it.scopedLive("GET /jobs/dead answers 200 with the dead letters, most recent first, failedAt an ISO string", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      assertJson(yield* request("GET", "/jobs/dead"), 200, { jobs: [] })

      const [email] = yield* deadLettered(store, [newJob("send-email", "emails", { to: "ada@example.com" })], "bounced")
      const images = yield* deadLettered(store, [
        newJob("resize-image", "images", { width: 1, height: 1 }),
        newJob("resize-image", "images", { width: 2, height: 2 })
      ])

      const answer = yield* request("GET", "/jobs/dead")
      assertJson(answer, 200, {})
      const { jobs } = answer.body as { jobs: Array<Record<string, unknown>> }
      assert.deepStrictEqual(jobs, asJson(yield* store.deadLetters()), "the route answers the store's own list")
      assert.sameMembers(jobs.map((job) => job.id), [email!, ...images])
      assert.strictEqual(jobs.at(-1)!.id, email, "the first job to die is listed last")
      assert.deepInclude(jobs.at(-1)!, {
        id: email,
        name: "send-email",
        queue: "emails",
        payload: { to: "ada@example.com" },
        attempts: 1,
        lastError: "bounced"
      })
      for (const job of jobs) {
        assert.isString(job.failedAt)
        assert.strictEqual(new Date(job.failedAt as string).toISOString(), job.failedAt)
      }

      const ofQueue = yield* request("GET", "/jobs/dead?queue=emails")
      assertJson(ofQueue, 200, {})
      assert.deepStrictEqual((ofQueue.body as { jobs: Array<{ id: string }> }).jobs.map((job) => job.id), [email])
      const limited = yield* request("GET", "/jobs/dead?limit=2&queue=images")
      assert.strictEqual((limited.body as { jobs: Array<unknown> }).jobs.length, 2, limited.text)
      const one = yield* request("GET", "/jobs/dead?limit=1")
      assert.deepStrictEqual(one.body, { jobs: jobs.slice(0, 1) })
      assertJson(yield* request("GET", "/jobs/dead?queue=nothing-here"), 200, { jobs: [] })
    }).pipe(quiet))

  it.scopedLive("GET /jobs/dead lists 100 dead letters by default and at most 1000", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      yield* deadLettered(store, Array.from({ length: 101 }, (_, i) => newJob("send-email", "emails", { i })))
      const count = (answer: Answer) => (answer.body as { jobs: Array<unknown> }).jobs.length
      assert.strictEqual(count(yield* request("GET", "/jobs/dead")), 100)
      assert.strictEqual(count(yield* request("GET", "/jobs/dead?limit=1000")), 101)
      assert.strictEqual(count(yield* request("GET", "/jobs/dead?limit=101")), 101)
    }).pipe(quiet))

  it.scopedLive("GET /jobs/dead answers 400 naming the parameter when limit or queue cannot be used", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      for (const query of ["limit=0", "limit=1001", "limit=abc", "limit=1.5", "limit=-1", "limit=1e2", "limit="]) {
        const answer = yield* request("GET", `/jobs/dead?${query}`)
        assertError(answer, 400, { error: "BadRequest" })
        assert.include((answer.body as { message: string }).message, "limit must", query)
      }
      const twice = yield* request("GET", "/jobs/dead?limit=1&limit=2")
      assertError(twice, 400, { error: "BadRequest", message: "limit must be given once, not 2 times" })
      const empty = yield* request("GET", "/jobs/dead?queue=")
      assertError(empty, 400, { error: "BadRequest", message: "queue must not be empty" })
    }).pipe(quiet))

  it.scopedLive("POST /jobs/dead/:id/redrive answers 200 and makes the job ready again, its attempts reset", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      const [id, other] = yield* deadLettered(store, [
        newJob("send-email", "emails", { to: "ada@example.com" }),
        newJob("send-email", "emails", { to: "alan@example.com" })
      ])

      assertJson(yield* request("POST", `/jobs/dead/${id}/redrive`), 200, { redriven: 1 })
      assertJson(yield* request("GET", "/jobs/stats"), 200, { ready: 1, dead: 1 })
      const dead = yield* request("GET", "/jobs/dead")
      assert.deepStrictEqual((dead.body as { jobs: Array<{ id: string }> }).jobs.map((job) => job.id), [other])
      const [again] = (yield* store.claim(claimRequest("emails"))).jobs
      assert.deepInclude(again, { name: "send-email", payload: { to: "ada@example.com" }, attempt: 1 })
    }).pipe(quiet))

  it.scopedLive("POST /jobs/dead/:id/redrive answers 404 for an id that is not in the dead letters", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      const [dead] = yield* deadLettered(store, [newJob("send-email", "emails", { to: "ada@example.com" })])
      const [ready] = yield* store.enqueue([newJob("send-email", "emails", { to: "alan@example.com" })])

      const unknown = yield* request("POST", "/jobs/dead/no-such-job/redrive")
      assertError(unknown, 404, { error: "NotFound" })
      assert.include((unknown.body as { message: string }).message, "no-such-job")
      assertError(yield* request("POST", `/jobs/dead/${ready}/redrive`), 404, { error: "NotFound" })

      assertJson(yield* request("POST", `/jobs/dead/${dead}/redrive`), 200, { redriven: 1 })
      assertError(yield* request("POST", `/jobs/dead/${dead}/redrive`), 404, { error: "NotFound" })
      assertJson(yield* request("GET", "/jobs/stats"), 200, { ready: 2, dead: 0 })

      assertError(yield* request("GET", `/jobs/dead/${dead}/redrive`), 405, {
        error: "MethodNotAllowed",
        allow: ["POST"]
      })
    }).pipe(quiet))

  it.scopedLive("POST /jobs/dead/:id/redrive answers 404 and moves nothing while a live job holds the dead job's key", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      const welcome = { ...newJob("send-email", "emails", { to: "ada@example.com" }), key: "welcome:ada" }
      const [dead] = yield* deadLettered(store, [welcome])
      const [live] = yield* store.enqueue([welcome])
      assert.notStrictEqual(live, dead, "the key was free once its job died")

      const answer = yield* request("POST", `/jobs/dead/${dead}/redrive`)
      assertError(answer, 404, { error: "NotFound" })
      assert.include((answer.body as { message: string }).message, "holds its key")
      assertJson(yield* request("GET", "/jobs/stats"), 200, { ready: 1, dead: 1 })
    }).pipe(quiet))

  it.scopedLive("POST /jobs/queues/:queue/pause and /resume pause a queue in the store and resume it", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      yield* store.enqueue([newJob("send-email", "emails", { to: "ada@example.com" })])
      // Any queue name, URL-encoded in the path.
      const odd = "billing/eu west"
      assertJson(yield* request("POST", "/jobs/queues/emails/pause"), 200, { queue: "emails", paused: true })
      assertJson(yield* request("POST", `/jobs/queues/${encodeURIComponent(odd)}/pause`), 200, {
        queue: odd,
        paused: true
      })
      assertJson(yield* request("GET", "/jobs/stats"), 200, { ready: 1, pausedQueues: [odd, "emails"].sort() })
      assert.deepStrictEqual((yield* store.claim(claimRequest("emails"))).jobs, [])
      assertJson(yield* request("POST", "/jobs/queues/emails/resume"), 200, { queue: "emails", paused: false })
      assertJson(yield* request("GET", "/jobs/stats"), 200, { pausedQueues: [odd] })
      assert.strictEqual((yield* store.claim(claimRequest("emails"))).jobs.length, 1)
      assertError(yield* request("GET", "/jobs/queues/emails/pause"), 405, { error: "MethodNotAllowed" })
    }).pipe(quiet))

  it.scopedLive("answers 503 with the operation and the store's message when the store fails", () =>
    Effect.gen(function*() {
      const request = yield* servedStore(unreachableStore)
      const failed = (operation: string) => ({
        error: "JobStoreError",
        operation,
        message: `JobStore.${operation} failed: connection refused to 127.0.0.1:5432`
      })
      assertError(yield* request("GET", "/jobs/stats"), 503, failed("stats"))
      assertError(yield* request("GET", "/jobs/dead"), 503, failed("deadLetters"))
      assertError(yield* request("POST", "/jobs/dead/42/redrive"), 503, failed("redrive"))
      assertError(yield* request("POST", "/jobs/queues/emails/pause"), 503, failed("pauseQueue"))
      // A bad parameter is the client's mistake, whatever the store's health.
      assertError(yield* request("GET", "/jobs/dead?limit=0"), 400, { error: "BadRequest" })
    }).pipe(quiet))

  it.scopedLive("GET /jobs lists a page of jobs newest first, by filter, and GET /jobs/:id answers one job", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      const ids = yield* store.enqueue([
        newJob("send-email", "emails", { to: "ada@example.com" }),
        newJob("resize-image", "images", { width: 1, height: 1 }),
        { ...newJob("send-email", "emails", { to: "alan@example.com" }, 3_600_000), key: "alan" }
      ])
      const [dead] = yield* deadLettered(store, [newJob("send-email", "emails", { to: "x@example.invalid" })], "bad")
      const page = (answer: Answer) => answer.body as { jobs: Array<Record<string, unknown>>; next?: string }
      const all = yield* request("GET", "/jobs")
      assertJson(all, 200, {})
      assert.deepStrictEqual(page(all).jobs.map((job) => job.id), [dead, ids[2], ids[1], ids[0]])
      assert.isUndefined(page(all).next, "one page holds them all")
      assert.deepStrictEqual(page(all), asJson(yield* store.list()), "the route answers the store's own page")

      const first = yield* request("GET", "/jobs?limit=2&queue=emails")
      assert.deepStrictEqual(page(first).jobs.map((job) => job.id), [dead, ids[2]])
      const second = yield* request("GET", `/jobs?limit=2&queue=emails&after=${page(first).next}`)
      assert.deepStrictEqual(page(second).jobs.map((job) => job.id), [ids[0]])
      assert.deepStrictEqual(page(yield* request("GET", "/jobs?state=scheduled")).jobs.map((job) => job.id), [ids[2]])
      assert.deepStrictEqual(page(yield* request("GET", "/jobs?key=alan")).jobs.map((job) => job.id), [ids[2]])
      assert.deepStrictEqual(page(yield* request("GET", "/jobs?name=resize-image")).jobs.map((job) => job.id), [ids[1]])

      const one = yield* request("GET", `/jobs/${dead}`)
      assertJson(one, 200, {
        id: dead,
        state: "dead",
        name: "send-email",
        queue: "emails",
        payload: { to: "x@example.invalid" },
        attempts: 1,
        lastError: "bad"
      })
      assert.strictEqual(
        new Date((one.body as { endedAt: string }).endedAt).toISOString(),
        (one.body as { endedAt: string }).endedAt
      )
      const missing = yield* request("GET", "/jobs/123456")
      assertError(missing, 404, { error: "NotFound", message: "no such job: \"123456\"" })
      for (const query of ["state=done", "limit=0", "limit=1001", "limit=x", "queue=", "state=ready&state=dead"]) {
        assertError(yield* request("GET", `/jobs?${query}`), 400, { error: "BadRequest" })
      }
    }).pipe(quiet))

  it.scopedLive("POST /jobs/:id/cancel cancels a job, says what it found, and POST /jobs/cancel a filter's", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      const [first, second] = yield* store.enqueue([
        newJob("send-email", "emails", { to: "ada@example.com" }),
        newJob("send-email", "emails", { to: "alan@example.com" })
      ])
      yield* store.enqueue(
        Array.from({ length: 3 }, (_, i) => newJob("resize-image", "images", { width: i, height: 1 }))
      )
      assertJson(yield* request("POST", `/jobs/${first}/cancel`), 200, { id: first, result: "cancelled" })
      assertJson(yield* request("POST", `/jobs/${first}/cancel`), 200, { id: first, result: "alreadyFinished" })
      assertError(yield* request("POST", "/jobs/424242/cancel"), 404, { error: "NotFound" })
      assertJson(yield* request("GET", `/jobs/${first}`), 200, { state: "cancelled" })

      assertJson(yield* request("POST", "/jobs/cancel", JSON.stringify({ queue: "images" })), 200, { cancelled: 3 })
      assertJson(yield* request("GET", "/jobs/stats"), 200, { ready: 1, cancelled: 4 })
      for (const body of ["{}", "{\"queue\":\"\"}", "{\"queue\":\"emails\",\"state\":\"dead\"}", "[1]", "not json"]) {
        assertError(yield* request("POST", "/jobs/cancel", body), 400, { error: "BadRequest" })
      }
      assertJson(yield* request("GET", `/jobs/${second}`), 200, { state: "ready" })

      // A redrive that cannot happen says why.
      const live = yield* request("POST", `/jobs/dead/${second}/redrive`)
      assertError(live, 404, { error: "NotFound", state: "ready" })
      assert.include((live.body as { message: string }).message, "only a dead or cancelled job can be redriven")
      assertError(yield* request("POST", "/jobs/dead/999/redrive"), 404, {
        error: "NotFound",
        message: "no such job: \"999\""
      })
      assertJson(yield* request("POST", `/jobs/dead/${first}/redrive`), 200, { redriven: 1 })
    }).pipe(quiet))

  it.scopedLive("POST /jobs/:id/run, DELETE /jobs/:id, POST /jobs/redrive and /jobs/delete act on a job or a filter", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const request = yield* servedStore(store)
      const [later, now] = yield* store.enqueue([
        newJob("send-email", "emails", { to: "later@example.com" }, 3_600_000),
        newJob("send-email", "emails", { to: "now@example.com" })
      ])
      assertJson(yield* request("POST", `/jobs/${later}/run`), 200, { id: later, result: "ready" })
      assertJson(yield* request("GET", `/jobs/${later}`), 200, { state: "ready" })
      const notScheduled = yield* request("POST", `/jobs/${now}/run`)
      assertError(notScheduled, 409, { error: "Conflict", state: "ready" })
      assert.include((notScheduled.body as { message: string }).message, "only a scheduled job")
      assertError(yield* request("POST", "/jobs/777/run"), 404, { error: "NotFound" })

      const live = yield* request("DELETE", `/jobs/${now}`)
      assertError(live, 409, { error: "Conflict", state: "ready" })
      assert.include((live.body as { message: string }).message, "cancel it first")
      const dead = yield* deadLettered(store, [
        newJob("resize-image", "images", { width: 1, height: 1 }),
        newJob("resize-image", "images", { width: 2, height: 2 }),
        newJob("resize-image", "thumbs", { width: 3, height: 3 })
      ])
      assertJson(yield* request("DELETE", `/jobs/${dead[0]}`), 200, { deleted: 1 })
      assertError(yield* request("DELETE", `/jobs/${dead[0]}`), 404, { error: "NotFound" })
      assertJson(yield* request("POST", "/jobs/redrive", JSON.stringify({ queue: "images" })), 200, { redriven: 1 })
      assertJson(yield* request("GET", `/jobs/${dead[1]}`), 200, { state: "ready" })
      assertJson(yield* request("POST", "/jobs/delete", JSON.stringify({ state: "dead" })), 200, { deleted: 1 })
      assertJson(yield* request("GET", "/jobs/stats"), 200, { dead: 0 })
      for (const body of ["{\"state\":\"ready\"}", "{\"queue\":\"\"}", "nope"]) {
        assertError(yield* request("POST", "/jobs/redrive", body), 400, { error: "BadRequest" })
        assertError(yield* request("POST", "/jobs/delete", body), 400, { error: "BadRequest" })
      }
    }).pipe(quiet))

  it.scopedLive("WorkerHttp.jobsApp serves the store's routes with a store and no worker", () =>
    Effect.gen(function*() {
      const store = yield* makeStore
      const [id] = yield* deadLettered(store, [newJob("send-email", "emails", { to: "ada@example.com" })])
      const context = yield* Layer.build(
        Layer.merge(HttpServer.serve(WorkerHttp.jobsApp), ClientLive).pipe(
          Layer.provideMerge(ServerLive),
          Layer.provide(Layer.succeed(JobStore, store))
        )
      )
      const request = requestWith(Context.get(context, HttpClient.HttpClient))
      assertJson(yield* request("GET", "/jobs/stats"), 200, { dead: 1 })
      assertJson(yield* request("POST", `/jobs/dead/${id}/redrive`), 200, { redriven: 1 })
      assertError(yield* request("GET", "/worker"), 404, { error: "NotFound" })
    }).pipe(quiet))
})
