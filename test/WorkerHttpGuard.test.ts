/**
 * The checks every route makes whatever its guard, tried the way an attacker would, over real HTTP on a free
 * loopback port with `node:http` (which sends any `Host`, `Origin` or body): the cross-site check on the routes that
 * act, the media type, the body limit, the host allow-list against DNS rebinding, the dead letters behind the guard,
 * and the cap on event streams. What a real browser does is in `test/security.browser.test.ts`.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { assert, describe, it } from "@effect/vitest"
import { Context, Data, Effect, Exit, Layer, Logger, Redacted, Schedule, Scope } from "effect"
import { randomUUID } from "node:crypto"
import * as Http from "node:http"
import { WorkerContext } from "../src/index.js"
import { JobStore } from "../src/JobStore.js"
import * as MemoryJobStore from "../src/MemoryJobStore.js"
import * as WorkerHttp from "../src/WorkerHttp.js"

const TOKEN = "guard-test-token"
const auth = { authorization: `Bearer ${TOKEN}` }

const quiet = Effect.provide(Logger.remove(Logger.defaultLogger))

class RequestFailed extends Data.TaggedError("RequestFailed")<{ readonly message: string }> {}

interface Answer {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
  readonly body: any
}

/**
 * One request with `node:http`, on a connection of its own: any headers (`Host` among them), and a body given
 * whole (`Content-Length`) or as `chunks` of text (chunked, with no length said). Waits at most 10 seconds.
 */
const raw = (
  port: number,
  method: string,
  path: string,
  options: {
    readonly headers?: Record<string, string>
    readonly body?: string
    readonly chunks?: { readonly count: number; readonly text: string }
  } = {}
) =>
  Effect.async<Answer, RequestFailed>((resume) => {
    const request = Http.request({ host: "127.0.0.1", port, method, path, headers: options.headers, agent: false })
    request.on("response", (response) => {
      const parts: Array<Buffer> = []
      response.on("data", (part: Buffer) => parts.push(part))
      response.on("end", () => {
        const text = Buffer.concat(parts).toString("utf8")
        const isJson = (response.headers["content-type"] ?? "").includes("application/json")
        resume(
          Effect.succeed({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text,
            body: isJson ? JSON.parse(text) : undefined
          })
        )
      })
    })
    // A server that answers before it read the whole body may close the connection while we still send it.
    request.on("error", (error) => resume(Effect.fail(new RequestFailed({ message: error.message }))))
    if (options.chunks !== undefined) {
      let sent = 0
      const sendMore = () => {
        while (sent < options.chunks!.count) {
          sent++
          if (!request.write(options.chunks!.text)) return request.once("drain", sendMore)
        }
        request.end()
      }
      sendMore()
    } else {
      request.end(options.body)
    }
    return Effect.sync(() => request.destroy())
  }).pipe(
    Effect.timeoutFail({
      duration: "10 seconds",
      onTimeout: () => new RequestFailed({ message: `${method} ${path}: no answer within 10 seconds` })
    })
  )

/** `routes` (and the demo-like `POST /echo` next to them) served by `WorkerHttp.serve` on a free loopback port. */
const serveRoutes = (
  options: Partial<WorkerHttp.RoutesOptions> = {},
  serveOptions?: WorkerHttp.ServeOptions,
  host = "127.0.0.1"
) =>
  Effect.gen(function*() {
    const ctx = yield* WorkerContext.make({ name: `guard-${randomUUID()}`, logLevel: "None" })
    const store = yield* MemoryJobStore.make()
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const guard = options.guard ?? WorkerHttp.unguarded
    const echo = HttpRouter.empty.pipe(
      HttpRouter.post(
        "/echo",
        Effect.map(HttpServerRequest.HttpServerRequest, (request) => request.text).pipe(
          Effect.flatten,
          Effect.map((text) => HttpServerResponse.unsafeJson({ length: text.length }))
        )
      ),
      HttpRouter.use(WorkerHttp.authorize(guard, { body: "json" }))
    )
    const context = yield* Layer.buildWithScope(
      WorkerHttp.serve(
        WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.routes({ jobs: true, ...options, guard }), echo)),
        serveOptions
      ).pipe(
        Layer.provideMerge(NodeHttpServer.layer(Http.createServer, { port: 0, host })),
        Layer.provide(Layer.succeed(WorkerContext, ctx)),
        Layer.provide(Layer.succeed(JobStore, store))
      ),
      scope
    )
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "TcpAddress" ? address.port : 0
    return {
      ctx,
      store,
      port,
      request: (method: string, path: string, o?: Parameters<typeof raw>[3]) => raw(port, method, path, o)
    }
  })

const assertError = (answer: Answer, status: number, error: string) => {
  assert.strictEqual(answer.status, status, answer.text)
  assert.include(answer.headers["content-type"], "application/json")
  assert.strictEqual(answer.body.error, error, answer.text)
  assert.isString(answer.body.message)
}

describe("the cross-site check", () => {
  it.scopedLive("refuses a control route a browser sends from another site, even unguarded", () =>
    Effect.gen(function*() {
      const { ctx, port, request } = yield* serveRoutes()
      yield* ctx.start
      const own = `127.0.0.1:${port}`
      for (
        const headers of [
          { "sec-fetch-site": "cross-site" },
          { "sec-fetch-site": "same-site" },
          { origin: "http://evil.example" },
          { origin: "null" },
          // Another port on the same host is another origin.
          { origin: `http://127.0.0.1:${port + 1}` },
          { origin: `http://${own}`, "sec-fetch-site": "cross-site" }
        ]
      ) {
        for (
          const path of ["/worker/pause", "/worker/stop", "/jobs/dead/1/redrive", "/jobs/queues/emails/pause"]
        ) {
          assertError(yield* request("POST", path, { headers }), 403, "Forbidden")
        }
      }
      assert.strictEqual(yield* ctx.state, "Running", "no refused request reached the worker")
      // The page's own requests, and a script's (no Origin, no Sec-Fetch-Site), go through.
      const sameOrigin = { origin: `http://${own}`, "sec-fetch-site": "same-origin" }
      assert.strictEqual((yield* request("POST", "/worker/pause", { headers: sameOrigin })).status, 200)
      assert.strictEqual((yield* request("POST", "/worker/resume")).status, 200)
      assert.strictEqual(yield* ctx.state, "Running")
    }).pipe(quiet))

  it.scopedLive("refuses what an HTML form can send: a body that is not JSON, on a route that reads none or JSON", () =>
    Effect.gen(function*() {
      const { ctx, request } = yield* serveRoutes()
      yield* ctx.start
      for (const type of ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"]) {
        const headers = { "content-type": type }
        assertError(yield* request("POST", "/worker/stop", { headers, body: "a=b" }), 415, "UnsupportedMediaType")
        assertError(yield* request("POST", "/echo", { headers, body: "{\"a\":1}" }), 415, "UnsupportedMediaType")
      }
      assertError(yield* request("POST", "/echo", { body: "{}" }), 415, "UnsupportedMediaType")
      assert.strictEqual(yield* ctx.state, "Running")
      const json = { "content-type": "application/json; charset=utf-8" }
      const echoed = yield* request("POST", "/echo", { headers: json, body: "{\"a\":1}" })
      assert.deepStrictEqual(echoed.body, { length: 7 })
    }).pipe(quiet))
})

describe("the body limit", () => {
  it.scopedLive("answers 413 to a body past 1 MB by default, said or not in Content-Length, and keeps serving", () =>
    Effect.gen(function*() {
      const { request } = yield* serveRoutes()
      const json = { "content-type": "application/json" }
      const big = "x".repeat(1024 * 1024 + 1)
      const said = yield* request("POST", "/echo", { headers: json, body: big })
      assertError(said, 413, "PayloadTooLarge")
      assert.strictEqual(said.body.limit, 1024 * 1024)
      // 8 MB in chunks, no length said: refused once past the limit, not held.
      const chunked = yield* Effect.either(
        request("POST", "/echo", { headers: json, chunks: { count: 128, text: "y".repeat(64 * 1024) } })
      )
      if (chunked._tag === "Right") assertError(chunked.right, 413, "PayloadTooLarge")
      else assert.match(chunked.left.message, /EPIPE|ECONNRESET|socket hang up/)
      const small = yield* request("POST", "/echo", { headers: json, body: JSON.stringify("z".repeat(1000)) })
      assert.deepStrictEqual(small.body, { length: 1002 })
      assert.strictEqual((yield* request("GET", "/health/live")).status, 200, "the server still answers")
    }).pipe(quiet))

  it.scopedLive("takes its limit from serve's maxBodySize for every route, and from routes' for its own", () =>
    Effect.gen(function*() {
      const { request } = yield* serveRoutes({}, { maxBodySize: 100 })
      const json = { "content-type": "application/json" }
      assertError(
        yield* request("POST", "/echo", { headers: json, body: JSON.stringify("a".repeat(200)) }),
        413,
        "PayloadTooLarge"
      )
      assert.strictEqual((yield* request("POST", "/echo", { headers: json, body: "\"ok\"" })).status, 200)
      const routes = yield* serveRoutes({ maxBodySize: 10 })
      assertError(
        yield* routes.request("POST", "/worker/start", { headers: json, body: "{\"more\":\"than ten\"}" }),
        413,
        "PayloadTooLarge"
      )
    }).pipe(quiet))
})

describe("the host check", () => {
  it.scopedLive("on a loopback listener, answers only loopback host names: a rebound name gets 421 on every route", () =>
    Effect.gen(function*() {
      const { ctx, port, request } = yield* serveRoutes()
      yield* ctx.start
      const evil = { host: `rebound.example:${port}` }
      for (const path of ["/worker", "/jobs/dead", "/jobs/stats", "/events", "/dashboard", "/health/ready"]) {
        assertError(yield* request("GET", path, { headers: evil }), 421, "MisdirectedRequest")
      }
      assertError(yield* request("POST", "/worker/stop", { headers: evil }), 421, "MisdirectedRequest")
      assert.strictEqual(yield* ctx.state, "Running")
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, "LOCALHOST"]) {
        assert.strictEqual((yield* request("GET", "/worker", { headers: { host } })).status, 200, host)
      }
    }).pipe(quiet))

  it.scopedLive("answers the names in allowedHosts too, from routes or from serve", () =>
    Effect.gen(function*() {
      const fromRoutes = yield* serveRoutes({ allowedHosts: ["worker.internal"] })
      assert.strictEqual(
        (yield* fromRoutes.request("GET", "/worker", { headers: { host: "worker.internal:8080" } })).status,
        200
      )
      const fromServe = yield* serveRoutes({}, { allowedHosts: ["ops.example:443"] })
      assert.strictEqual(
        (yield* fromServe.request("GET", "/worker", { headers: { host: "ops.example:443" } })).status,
        200
      )
      assertError(
        yield* fromServe.request("GET", "/worker", { headers: { host: "ops.example:444" } }),
        421,
        "MisdirectedRequest"
      )
    }).pipe(quiet))

  it.scopedLive("on a listener that is not loopback, checks nothing until allowedHosts is set", () =>
    Effect.gen(function*() {
      const open = yield* serveRoutes({}, undefined, "0.0.0.0")
      assert.strictEqual((yield* open.request("GET", "/worker", { headers: { host: "anything.example" } })).status, 200)
      const listed = yield* serveRoutes({ allowedHosts: ["worker.internal"] }, undefined, "0.0.0.0")
      assertError(
        yield* listed.request("GET", "/worker", { headers: { host: "anything.example" } }),
        421,
        "MisdirectedRequest"
      )
    }).pipe(quiet))
})

describe("the guard and the dead letters", () => {
  it.scopedLive("puts the dead letters, with their payloads and errors, behind a guard when one is set", () =>
    Effect.gen(function*() {
      const { request } = yield* serveRoutes({ guard: WorkerHttp.bearerToken(Redacted.make(TOKEN)) })
      assertError(yield* request("GET", "/jobs/dead"), 401, "Unauthorized")
      assert.strictEqual((yield* request("GET", "/jobs/dead", { headers: auth })).status, 200)
      assert.strictEqual((yield* request("GET", "/jobs/stats")).status, 200, "counts stay open")
      const open = yield* serveRoutes()
      assert.strictEqual((yield* open.request("GET", "/jobs/dead")).status, 200, "unguarded: open, as every route")
    }).pipe(quiet))
})

describe("the read guard", () => {
  it.scopedLive("lets a read-only token read jobs and events but not act; the operating token does both", () =>
    Effect.gen(function*() {
      const { ctx, request, store } = yield* serveRoutes({
        guard: WorkerHttp.bearerToken(Redacted.make(TOKEN)),
        readGuard: WorkerHttp.bearerToken(Redacted.make("read-only"))
      })
      yield* ctx.start
      const [id] = yield* store.enqueue([{
        name: "send-email",
        queue: "emails",
        payload: { to: "ada@example.com" },
        priority: 0,
        key: undefined,
        maxAttempts: 3
      }])
      const reader = { authorization: "Bearer read-only" }
      for (const path of ["/jobs", `/jobs/${id}`, "/jobs/dead"]) {
        assertError(yield* request("GET", path), 401, "Unauthorized")
        assert.strictEqual((yield* request("GET", path, { headers: reader })).status, 200, path)
        assert.strictEqual((yield* request("GET", path, { headers: auth })).status, 200, path)
      }
      for (const path of [`/jobs/${id}/cancel`, `/jobs/${id}/run`, "/worker/pause", `/jobs/dead/${id}/redrive`]) {
        assertError(yield* request("POST", path, { headers: reader }), 401, "Unauthorized")
      }
      assertError(yield* request("DELETE", `/jobs/${id}`, { headers: reader }), 401, "Unauthorized")
      for (const path of ["/jobs/redrive", "/jobs/delete"]) {
        const body = "{}"
        const headers = { ...reader, "content-type": "application/json" }
        assertError(yield* request("POST", path, { headers, body }), 401, "Unauthorized")
      }
      const json = { ...reader, "content-type": "application/json" }
      assertError(
        yield* request("POST", "/jobs/cancel", { headers: json, body: "{\"queue\":\"emails\"}" }),
        401,
        "Unauthorized"
      )
      assert.deepInclude(yield* store.get(id!), { state: "ready" }, "the read-only token changed nothing")
      assert.strictEqual(yield* ctx.state, "Running")
      assert.strictEqual((yield* request("POST", `/jobs/${id}/cancel`, { headers: auth })).status, 200)
      assert.deepInclude(yield* store.get(id!), { state: "cancelled" })
    }).pipe(quiet))

  it.scopedLive("refuses a cancel a browser sends from another site, and a cancel filter that is not JSON", () =>
    Effect.gen(function*() {
      const { request, store } = yield* serveRoutes()
      const [id] = yield* store.enqueue([{
        name: "send-email",
        queue: "emails",
        payload: {},
        priority: 0,
        key: undefined,
        maxAttempts: 3
      }])
      const crossSite = { "sec-fetch-site": "cross-site" }
      assertError(yield* request("POST", `/jobs/${id}/cancel`, { headers: crossSite }), 403, "Forbidden")
      assertError(
        yield* request("POST", "/jobs/cancel", {
          headers: { "content-type": "text/plain" },
          body: "{\"queue\":\"emails\"}"
        }),
        415,
        "UnsupportedMediaType"
      )
      assert.deepInclude(yield* store.get(id!), { state: "ready" })
    }).pipe(quiet))
})

describe("the event stream cap", () => {
  it.scopedLive("answers 503 TooManyStreams past maxStreams, and takes a new stream once one closed", () =>
    Effect.gen(function*() {
      const { port, request } = yield* serveRoutes({ events: { maxStreams: 2 } })
      /** Opens a stream and keeps it open until the returned effect closes it; resolves once its headers came. */
      const open = Effect.async<{ readonly status: number; readonly close: Effect.Effect<void> }>((resume) => {
        const req = Http.get({ host: "127.0.0.1", port, path: "/events", agent: false }, (response) => {
          response.resume()
          resume(Effect.succeed({ status: response.statusCode ?? 0, close: Effect.sync(() => req.destroy()) }))
        })
        req.on("error", () => {})
      })
      const first = yield* open
      const second = yield* open
      assert.deepStrictEqual([first.status, second.status], [200, 200])
      const third = yield* request("GET", "/events")
      assertError(third, 503, "TooManyStreams")
      assert.strictEqual(third.body.max, 2)
      assert.strictEqual(third.headers["retry-after"], "5")
      yield* first.close
      // The slot is free once the server saw the connection close: ask until it is.
      const again = yield* open.pipe(
        Effect.filterOrFail((stream) => stream.status === 200),
        Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 250 })
      )
      assert.strictEqual(again.status, 200)
      yield* Effect.all([second.close, again.close])
    }).pipe(quiet))
})
