/**
 * The errors of the worker's HTTP routes, each carrying its status, and the one place that turns a failure into a
 * JSON error body: every route of this package answers an error as `{ error, message, ...details }` (the
 * {@link ErrorBody} schema), with the status the error class says.
 *
 * @since 0.4.0
 */
import * as Headers from "@effect/platform/Headers"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerRespondable from "@effect/platform/HttpServerRespondable"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"

/**
 * The body of every error answer: `error` names the kind of error, `message` says what went wrong in words a client
 * may show, and some errors add fields (`allow`, `state`, `operation`, `limit`...).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const body = Schema.decodeUnknownSync(WorkerHttpError.ErrorBody)({ error: "NotFound", message: "no route" })
 * ```
 *
 * @since 0.4.0
 * @category schemas
 */
export const ErrorBody = Schema.Struct(
  { error: Schema.String, message: Schema.String },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
).annotations({ identifier: "ErrorBody" })

/**
 * The type of {@link ErrorBody}.
 *
 * @example
 * ```ts
 * import type * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const body: WorkerHttpError.ErrorBody = { error: "Forbidden", message: "cross-site request refused" }
 * ```
 *
 * @since 0.4.0
 * @category schemas
 */
export type ErrorBody = typeof ErrorBody.Type

const encodeBody = Schema.encodeSync(ErrorBody)

/** What every error of this module has: a message, fields for the body, headers for the answer. */
interface Fields {
  readonly message: string
  /** More fields of the body, after `error` and `message`. */
  readonly details?: Readonly<Record<string, unknown>> | undefined
  /** Headers of the answer. */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/**
 * The answer to `error`: its status, `{ error, message, ...details }` as JSON, its headers and `Cache-Control:
 * no-store` (an error is never cached).
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const response = WorkerHttpError.toResponse(new WorkerHttpError.NotFound({ message: "no such job" }))
 * ```
 *
 * @since 0.4.0
 * @category conversions
 */
export const toResponse = (error: HttpError): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(
    encodeBody({ ...error.details, error: error.error ?? error._tag, message: error.message }),
    { status: error.status, headers: { "cache-control": "no-store", ...error.headers } }
  )

/**
 * 400: the request cannot be used as it is (a body that is not JSON or not of the right shape, a bad parameter).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const refuse = Effect.fail(new WorkerHttpError.BadRequest({ message: "limit must be a number" }))
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class BadRequest extends Data.TaggedError("BadRequest")<Fields> implements HttpServerRespondable.Respondable {
  readonly status = 400 as const
  declare readonly error?: string | undefined;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 401: the request needs credentials it did not carry, or carried wrong ones. What a `Guard` fails with to refuse
 * a request; answered with a `WWW-Authenticate` header (`challenge`, default `Bearer`).
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
 * @category errors
 */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{
  readonly message: string
  /** The `WWW-Authenticate` header of the answer. Default `Bearer`. */
  readonly challenge?: string | undefined
}> implements HttpServerRespondable.Respondable {
  readonly status = 401 as const
  declare readonly error?: string | undefined
  declare readonly details?: Readonly<Record<string, unknown>> | undefined
  get headers(): Readonly<Record<string, string>> {
    return { "www-authenticate": this.challenge ?? "Bearer" }
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 403: the request is understood and refused (a cross-site request to a route that changes state).
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const error = new WorkerHttpError.Forbidden({ message: "cross-site request refused" })
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class Forbidden extends Data.TaggedError("Forbidden")<Fields> implements HttpServerRespondable.Respondable {
  readonly status = 403 as const
  declare readonly error?: string | undefined;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 404: nothing answers to this path, or the thing it names does not exist.
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const error = new WorkerHttpError.NotFound({ message: "no dead job with id 7" })
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class NotFound extends Data.TaggedError("NotFound")<Fields> implements HttpServerRespondable.Respondable {
  readonly status = 404 as const
  declare readonly error?: string | undefined;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 405: the path exists for other methods, listed in `details.allow` and the `Allow` header.
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const error = new WorkerHttpError.MethodNotAllowed({
 *   message: "GET is not allowed on /worker/stop",
 *   details: { allow: ["POST"] },
 *   headers: { allow: "POST" }
 * })
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class MethodNotAllowed extends Data.TaggedError("MethodNotAllowed")<Fields>
  implements HttpServerRespondable.Respondable
{
  readonly status = 405 as const
  declare readonly error?: string | undefined;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 409: the request conflicts with the state of the worker (`error` in the body is `WorkerStateError` for an
 * impossible transition).
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const error = new WorkerHttpError.Conflict({ message: "already stopped", error: "WorkerStateError" })
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class Conflict extends Data.TaggedError("Conflict")<Fields & { readonly error?: string | undefined }>
  implements HttpServerRespondable.Respondable
{
  readonly status = 409 as const;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 413: the body is larger than the route's limit (`details.limit`, in bytes).
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const error = new WorkerHttpError.PayloadTooLarge({ message: "at most 1048576 bytes", details: { limit: 1048576 } })
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class PayloadTooLarge extends Data.TaggedError("PayloadTooLarge")<Fields>
  implements HttpServerRespondable.Respondable
{
  readonly status = 413 as const
  declare readonly error?: string | undefined;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 415: the route reads a JSON body and the request says its body is something else.
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const error = new WorkerHttpError.UnsupportedMediaType({ message: "send Content-Type: application/json" })
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class UnsupportedMediaType extends Data.TaggedError("UnsupportedMediaType")<Fields>
  implements HttpServerRespondable.Respondable
{
  readonly status = 415 as const
  declare readonly error?: string | undefined;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 421: the request names a host this server does not answer for (a `Host` header off the allow-list, as a DNS
 * rebinding attack sends).
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const error = new WorkerHttpError.MisdirectedRequest({ message: "this server does not answer for evil.example" })
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class MisdirectedRequest extends Data.TaggedError("MisdirectedRequest")<Fields>
  implements HttpServerRespondable.Respondable
{
  readonly status = 421 as const
  declare readonly error?: string | undefined;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 500: a bug or an unexpected failure; the cause is in the server's log, never in the body.
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const error = new WorkerHttpError.InternalServerError({ message: "the request failed; see the server log" })
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class InternalServerError extends Data.TaggedError("InternalServerError")<Fields>
  implements HttpServerRespondable.Respondable
{
  readonly status = 500 as const
  declare readonly error?: string | undefined;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * 503: the request may succeed later: the worker is not taking requests (`error: "WorkerUnavailable"`), the job
 * store failed (`"JobStoreError"`), too many event streams are open (`"TooManyStreams"`).
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const error = new WorkerHttpError.ServiceUnavailable({
 *   error: "WorkerUnavailable",
 *   message: "the worker is Paused",
 *   headers: { "retry-after": "5" }
 * })
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export class ServiceUnavailable extends Data.TaggedError("ServiceUnavailable")<
  Fields & { readonly error?: string | undefined }
> implements HttpServerRespondable.Respondable {
  readonly status = 503 as const;
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(toResponse(this))
  }
}

/**
 * Every error of this module.
 *
 * @example
 * ```ts
 * import type * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const status = (error: WorkerHttpError.HttpError): number => error.status
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export type HttpError =
  | BadRequest
  | Unauthorized
  | Forbidden
  | NotFound
  | MethodNotAllowed
  | Conflict
  | PayloadTooLarge
  | UnsupportedMediaType
  | MisdirectedRequest
  | InternalServerError
  | ServiceUnavailable

/**
 * The path as the router matches it: `find-my-way` drops a leading `scheme://host` and ends the path at the first
 * `?`, `;` or `#`.
 *
 * @internal
 */
export const routerPath = (url: string): string => {
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

const statusNames: Record<number, string> = {
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
  421: "MisdirectedRequest",
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
    toResponse(new InternalServerError({ message: "the request failed; see the server log" }))
  )

/**
 * Whether `error` is the platform's failure to read a body past `HttpIncomingMessage.MaxBodySize`.
 *
 * @internal
 */
export const isBodyTooLarge = (error: unknown): boolean =>
  HttpServerError.isServerError(error) && error._tag === "RequestError" && error.reason === "Decode" &&
  error.cause instanceof Error && error.cause.message === "maxBytes exceeded"

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
      encodeBody({
        error: statusNames[response.status] ?? (response.status < 500 ? "ClientError" : "ServerError"),
        message
      }),
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
 * The app's answer to a failure, as {@link toApp} gives it: an error that carries a response keeps it, a
 * `ParseError` is a 400, a body past the limit a 413, anything else a logged 500.
 *
 * @internal
 */
export const answerCause = (cause: Cause.Cause<unknown>): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause) as never
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (isBodyTooLarge(error)) {
      return Effect.succeed(toResponse(new PayloadTooLarge({ message: "the request body is larger than allowed" })))
    }
    // An error that knows its own response (a platform `RequestError`, an `HttpApiError`, ours...) keeps it.
    if (HttpServerRespondable.isRespondable(error)) {
      return Effect.catchAllCause(
        respondableResponse(error),
        (failed) => Cause.isInterruptedOnly(failed) ? Effect.failCause(failed) as never : internalError(failed)
      )
    }
    // A body, path or query that does not match its schema is the client's mistake, as the platform has it.
    if (ParseResult.isParseError(error)) {
      return Effect.succeed(toResponse(new BadRequest({ message: error.message })))
    }
  }
  return internalError(cause)
}

/**
 * Turns a router into an app that answers every bad request with a JSON error ({@link ErrorBody}) and never a
 * stack trace: an unknown path gets 404 `{ error: "NotFound" }`, a known path with the wrong method 405
 * `{ error: "MethodNotAllowed", allow }` with an `Allow` header, a path that cannot be decoded (a malformed
 * percent-encoding such as `%ZZ`) 400 `{ error: "BadRequest" }`, a body past the limit 413
 * `{ error: "PayloadTooLarge" }`, and a defect or an unhandled failure 500 `{ error: "InternalServerError" }` (the
 * cause is logged). The `Allow` list comes from the router's own matching (parameter patterns, case, trailing
 * slash), so it never names the method of the request it answers.
 *
 * A failure that carries its own response (an `HttpServerRespondable`, as every error of this module is) is
 * answered with that response; when it is an error status with no body, such as the platform's `RequestError` (a
 * body that is not valid JSON, for one), it keeps its status and headers and gets a JSON body: 400
 * `{ error: "BadRequest", message }` for a `RequestError`. A `ParseError` (a body decoded with
 * `HttpServerRequest.schemaBodyJson` that does not match its schema) is 400 `{ error: "BadRequest", message }`
 * with the schema's message, as the platform itself treats it; decode your own data with `Effect.orDie` so that a
 * mismatch there stays a 500.
 *
 * @example
 * ```ts
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const app = WorkerHttp.toApp(WorkerHttp.router)
 * ```
 *
 * @since 0.4.0
 * @category routes
 */
export const toApp = <E, R>(self: HttpRouter.HttpRouter<E, R>): HttpApp.Default<never, R> => {
  const probes = methodProbes(self)
  return self.pipe(
    Effect.catchTag("RouteNotFound", () =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        const path = routerPath(request.url)
        if (!isDecodable(path)) {
          return Effect.fail<HttpError>(
            new BadRequest({ message: `the path ${path} cannot be decoded: malformed percent-encoding` })
          )
        }
        // The request's own method did not match: only the other methods can be allowed.
        const others = probes.filter((probe) => probe.method !== request.method)
        return Effect.flatMap(Effect.filter(others, (probe) => probe.matches), (matched) => {
          const allow = matched.map((probe) => probe.method)
          return Effect.fail<HttpError>(
            allow.length > 0
              ? new MethodNotAllowed({
                message: `${request.method} is not allowed on ${path}`,
                details: { allow },
                headers: { allow: allow.join(", ") }
              })
              : new NotFound({ message: `no route for ${request.method} ${path}` })
          )
        })
      })),
    Effect.catchAllCause(answerCause)
  ) as HttpApp.Default<never, R>
}

/**
 * Answers the errors of this module that `handler` fails with, each with its own response, so that a route's error
 * channel stays empty.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { Effect } from "effect"
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const routes = HttpRouter.empty.pipe(
 *   HttpRouter.get(
 *     "/maybe",
 *     WorkerHttpError.respond(Effect.fail(new WorkerHttpError.NotFound({ message: "nothing here" })))
 *   ),
 *   HttpRouter.get("/sure", WorkerHttpError.respond(HttpServerResponse.json({ ok: true })))
 * )
 * ```
 *
 * @since 0.4.0
 * @category conversions
 */
export const respond = <E, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, Exclude<E, HttpError>, R> =>
  Effect.catchIf(handler, isHttpError, (error) => Effect.succeed(toResponse(error))) as any

const tags = new Set([
  "BadRequest",
  "Unauthorized",
  "Forbidden",
  "NotFound",
  "MethodNotAllowed",
  "Conflict",
  "PayloadTooLarge",
  "UnsupportedMediaType",
  "MisdirectedRequest",
  "InternalServerError",
  "ServiceUnavailable"
])

/**
 * Whether `u` is one of this module's errors.
 *
 * @example
 * ```ts
 * import * as WorkerHttpError from "effect-worker-context/WorkerHttpError"
 *
 * const yes = WorkerHttpError.isHttpError(new WorkerHttpError.Forbidden({ message: "no" }))
 * ```
 *
 * @since 0.4.0
 * @category guards
 */
export const isHttpError = (u: unknown): u is HttpError =>
  u instanceof Error && tags.has((u as { readonly _tag?: unknown })._tag as string) &&
  typeof (u as { readonly status?: unknown }).status === "number" && HttpServerRespondable.isRespondable(u)
