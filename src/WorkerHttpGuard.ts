/**
 * Who may call the worker's routes, and from where: the `Guard` that authenticates a request (a bearer token, one
 * of your own, or none), and the checks every route of this package makes whether or not it is guarded, because
 * the operator's own browser is the first way in:
 *
 * - the host check: a `Host` header off the allow-list is answered 421, so that a page whose host name an attacker
 *   points at 127.0.0.1 (DNS rebinding) cannot read or drive a worker on a loopback listener;
 * - the cross-site check, on routes that change state: a request that a browser marks as coming from another site
 *   (`Sec-Fetch-Site`) or another origin (`Origin`, compared with the request's own `Host`) is answered 403;
 * - the media type: a route that changes state takes a JSON body or none, so an HTML form (which cannot send
 *   `application/json`) is answered 415;
 * - the body limit: a body larger than the limit (1 MB unless set) is answered 413 and never held in memory.
 *
 * A request without `Origin` or `Sec-Fetch-Site` is not a browser's: scripts and `curl -X POST` keep working.
 *
 * @since 0.4.0
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import {
  Forbidden,
  type HttpError,
  isBodyTooLarge,
  MisdirectedRequest,
  PayloadTooLarge,
  toResponse,
  Unauthorized,
  UnsupportedMediaType
} from "./WorkerHttpError.js"

export {
  /**
   * What a {@link Guard} fails with to refuse a request: answered 401 `{ error: "Unauthorized", message }` with a
   * `WWW-Authenticate` header.
   *
   * @since 0.3.0
   */
  Unauthorized
} from "./WorkerHttpError.js"

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

/**
 * Lets every request through: for routes that something in front already guards (a reverse proxy that
 * authenticates, a port only the cluster reaches). `WorkerHttp.routes` requires a guard, so serving the control
 * routes and the dashboard open is a choice written in the code. The host, cross-site, media type and body checks
 * still apply.
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

/**
 * Whether `guard` is {@link unguarded}: then data that a guard would protect is served without it.
 *
 * @example
 * ```ts
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const open = WorkerHttp.isUnguarded(WorkerHttp.unguarded) // true
 * ```
 *
 * @since 0.4.0
 * @category guards
 */
export const isUnguarded = (guard: Guard<any>): boolean => guard === unguarded

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

/**
 * The host names, besides the loopback ones, that the routes answer for: `"worker.internal"` (any port) or
 * `"worker.internal:8080"` (that port only). `WorkerHttp.serve` and `WorkerHttp.routes` set it with their
 * `allowedHosts` option; the default is none.
 *
 * On a loopback listener (127.0.0.0/8, `::1`) a request is answered only when its `Host` is `localhost`,
 * `127.0.0.1`, `[::1]` (any port) or one of these; on any other listener, only when this list is not empty and its
 * `Host` is on it or a loopback name. A request without `Host` (HTTP/1.0, not a browser) is let through.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 * import * as WorkerHttpGuard from "effect-worker-context/WorkerHttpGuard"
 *
 * const app = WorkerHttp.toApp(WorkerHttp.router).pipe(
 *   Effect.provideService(WorkerHttpGuard.AllowedHosts, ["worker.internal"])
 * )
 * ```
 *
 * @since 0.4.0
 * @category configuration
 */
export class AllowedHosts
  extends Context.Reference<AllowedHosts>()("effect-worker-context/WorkerHttpGuard/AllowedHosts", {
    defaultValue: (): ReadonlyArray<string> => []
  })
{}

/**
 * The largest body, in bytes, that a route of this package reads: 1 MB (1,048,576 bytes) unless `WorkerHttp.serve`
 * or `WorkerHttp.routes` set another with `maxBodySize`.
 *
 * @example
 * ```ts
 * import * as WorkerHttpGuard from "effect-worker-context/WorkerHttpGuard"
 *
 * const limit = WorkerHttpGuard.defaultMaxBodySize // 1048576
 * ```
 *
 * @since 0.4.0
 * @category configuration
 */
export const defaultMaxBodySize = 1024 * 1024

const loopbackNames = new Set(["localhost", "127.0.0.1", "[::1]"])

/** `host[:port]` split; an IPv6 literal keeps its brackets. Lowercase. */
const splitHost = (host: string): { readonly name: string; readonly port: string | undefined } => {
  const text = host.trim().toLowerCase()
  const ipv6 = /^(\[[^\]]*\])(?::(\d*))?$/.exec(text)
  if (ipv6 !== null) return { name: ipv6[1]!, port: ipv6[2] }
  const colon = text.lastIndexOf(":")
  return colon === -1 ? { name: text, port: undefined } : { name: text.slice(0, colon), port: text.slice(colon + 1) }
}

const isLoopbackAddress = (address: HttpServer.Address): boolean =>
  address._tag === "TcpAddress" &&
  (address.hostname.startsWith("127.") || address.hostname === "::1" || address.hostname.startsWith("::ffff:127.") ||
    address.hostname === "localhost")

const hostAllowed = (host: string, allowed: ReadonlyArray<string>): boolean => {
  const { name, port } = splitHost(host)
  if (loopbackNames.has(name)) return true
  return allowed.some((entry) => {
    const wanted = splitHost(entry)
    return wanted.name === name && (wanted.port === undefined || wanted.port === port)
  })
}

/**
 * Answers 421 `{ error: "MisdirectedRequest" }` to a request whose `Host` the routes do not answer for (see
 * {@link AllowedHosts}): what keeps a DNS rebinding page, which the browser thinks is its own origin, from reading
 * or driving a worker that listens on a loopback address. `WorkerHttp.routes`, `WorkerHttp.router` and
 * `WorkerHttp.jobsRouter` make it on every route.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import * as WorkerHttpGuard from "effect-worker-context/WorkerHttpGuard"
 *
 * const mine = HttpRouter.empty.pipe(
 *   HttpRouter.get("/hello", HttpServerResponse.text("hello")),
 *   HttpRouter.use(WorkerHttpGuard.checkHost)
 * )
 * ```
 *
 * @since 0.4.0
 * @category checks
 */
export const checkHost = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(hostRefusal, (refusal) => Option.isSome(refusal) ? Effect.succeed(toResponse(refusal.value)) : app)

const hostRefusal: Effect.Effect<Option.Option<MisdirectedRequest>, never, HttpServerRequest.HttpServerRequest> = Effect
  .gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const host = request.headers.host
    if (host === undefined) return Option.none()
    const allowed = yield* AllowedHosts
    if (allowed.length === 0) {
      // Only a loopback listener knows which names are its own; elsewhere the list says.
      const server = yield* Effect.serviceOption(HttpServer.HttpServer)
      if (Option.isNone(server) || !isLoopbackAddress(server.value.address)) return Option.none()
    }
    if (hostAllowed(host, allowed)) return Option.none()
    return Option.some(
      new MisdirectedRequest({
        message: `this server does not answer for the host ${JSON.stringify(splitHost(host).name)}: ` +
          "use localhost or 127.0.0.1, or add the name to allowedHosts"
      })
    )
  })

const refuse = (error: HttpError) => Effect.succeed(toResponse(error))

const mediaType = (contentType: string): string => contentType.split(";")[0]!.trim().toLowerCase()

/**
 * Answers 403 `{ error: "Forbidden" }` to a request that a browser sent from another site or origin: its
 * `Sec-Fetch-Site` is `cross-site` or `same-site`, or its `Origin` is `null` or names another host and port than
 * the request's own `Host` (another port on the same host is another origin). A request with neither header (a
 * script, `curl`) is let through. Routes that change state make it: a browser sends a form or a `no-cors` fetch to
 * any origin, no CORS needed.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import * as WorkerHttpGuard from "effect-worker-context/WorkerHttpGuard"
 *
 * const mine = HttpRouter.empty.pipe(
 *   HttpRouter.post("/flush", HttpServerResponse.text("flushed")),
 *   HttpRouter.use(WorkerHttpGuard.checkSameOrigin)
 * )
 * ```
 *
 * @since 0.4.0
 * @category checks
 */
export const checkSameOrigin = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const site = request.headers["sec-fetch-site"]
    if (site !== undefined && site !== "same-origin" && site !== "none") {
      return refuse(
        new Forbidden({ message: `cross-site request refused (Sec-Fetch-Site: ${site}): this route changes state` })
      )
    }
    const origin = request.headers.origin
    if (origin !== undefined && !sameOrigin(origin, request.headers.host)) {
      return refuse(
        new Forbidden({ message: `cross-origin request refused (Origin: ${origin}): this route changes state` })
      )
    }
    return app
  })

const sameOrigin = (origin: string, host: string | undefined): boolean => {
  if (host === undefined || origin === "null") return false
  const parse = (text: string) => Option.liftThrowable(() => new URL(text))()
  const from = parse(origin)
  if (Option.isNone(from) || (from.value.protocol !== "http:" && from.value.protocol !== "https:")) return false
  // The request's host as a URL of the origin's scheme normalizes it the same way: case, default port.
  const own = parse(`${from.value.protocol}//${host}`)
  return Option.isSome(own) && own.value.host === from.value.host
}

/**
 * Answers 415 `{ error: "UnsupportedMediaType" }` to a request whose body is not JSON: with `body: "json"` (a route
 * that reads one), unless `Content-Type` is `application/json`; with `body: "none"` (a route that reads none),
 * when it has a `Content-Type` that is not JSON. An HTML form can only send `application/x-www-form-urlencoded`,
 * `multipart/form-data` or `text/plain`: none of them gets through.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
 * import { Effect, Schema } from "effect"
 * import * as WorkerHttpGuard from "effect-worker-context/WorkerHttpGuard"
 *
 * const mine = HttpRouter.empty.pipe(
 *   HttpRouter.post(
 *     "/echo",
 *     WorkerHttpGuard.requireJson("json")(
 *       Effect.flatMap(HttpServerRequest.schemaBodyJson(Schema.Unknown), (body) => HttpServerResponse.json(body))
 *     )
 *   )
 * )
 * ```
 *
 * @since 0.4.0
 * @category checks
 */
export const requireJson = (body: "json" | "none") => <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const contentType = request.headers["content-type"]
    const isJson = contentType !== undefined && mediaType(contentType) === "application/json"
    if (isJson || (body === "none" && contentType === undefined)) return app
    return refuse(
      new UnsupportedMediaType({
        message: body === "json"
          ? `this route reads a JSON body: send Content-Type: application/json (not ${contentType ?? "none"})`
          : `this route reads no body: send none, or JSON (not ${contentType})`
      })
    )
  })

/**
 * Bounds what `app` reads of a request body to `maxBytes` (default {@link defaultMaxBodySize}): a request whose
 * `Content-Length` says more is answered 413 `{ error: "PayloadTooLarge", limit }` before anything is read, and one
 * that sends more without saying so (chunked) stops being read past the limit and is answered 413 too. What is
 * read is never more than the limit, so no request can take the process's memory.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
 * import { Effect } from "effect"
 * import * as WorkerHttpGuard from "effect-worker-context/WorkerHttpGuard"
 *
 * const mine = HttpRouter.empty.pipe(
 *   HttpRouter.post("/notes", Effect.flatMap(HttpServerRequest.HttpServerRequest, (r) => r.text).pipe(
 *     Effect.map((text) => HttpServerResponse.text(`${text.length} characters`))
 *   )),
 *   HttpRouter.use(WorkerHttpGuard.limitBody(64 * 1024))
 * )
 * ```
 *
 * @since 0.4.0
 * @category checks
 */
export const limitBody = (maxBytes: number = defaultMaxBodySize) => {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new Cause.IllegalArgumentException("WorkerHttp: maxBodySize must be a positive integer number of bytes")
  }
  const tooLarge = new PayloadTooLarge({
    message: `the request body is larger than ${maxBytes} bytes`,
    details: { limit: maxBytes }
  })
  return <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const length = request.headers["content-length"]
      if (length !== undefined && /^\d+$/.test(length.trim()) && Number(length) > maxBytes) {
        // The client may still be sending: close the connection rather than read the rest.
        return Effect.succeed(HttpServerResponse.setHeader(toResponse(tooLarge), "connection", "close"))
      }
      return HttpIncomingMessage.withMaxBodySize(app, Option.some(maxBytes)).pipe(
        Effect.catchIf(
          isBodyTooLarge,
          () => Effect.succeed(HttpServerResponse.setHeader(toResponse(tooLarge), "connection", "close"))
        )
      )
    })
}

/**
 * Every check a route that changes state makes, in order: {@link checkSameOrigin}, {@link requireJson} (`body`),
 * then `guard` (answering 401 with {@link Unauthorized}). `WorkerHttp.routes` puts its control routes and the
 * redrive behind it (and its dead letters and event stream behind `guard` alone: a browser cannot read another
 * origin's answer); use it for routes of your own with `HttpRouter.use(authorize(guard))`, with `body: "json"` for a
 * route that reads a JSON body.
 * Wrap the router in {@link checkHost} and {@link limitBody} too, or serve it with `WorkerHttp.serve`, which makes
 * both checks on every request.
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
export const authorize = <RG>(guard: Guard<RG>, options?: { readonly body?: "json" | "none" | undefined }) =>
<E, R>(
  app: HttpApp.Default<E, R>
): HttpApp.Default<E, R | RG | HttpServerRequest.HttpServerRequest> =>
  checkSameOrigin(
    requireJson(options?.body ?? "none")(
      Effect.matchEffect(guard, { onFailure: (error) => Effect.succeed(toResponse(error)), onSuccess: () => app })
    )
  )
