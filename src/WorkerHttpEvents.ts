/**
 * `GET /events`: the worker as a server-sent event stream, for the dashboard and for your own tools. Its messages
 * are one schema ({@link EventMessage}); its hubs (one per context and `routes` value) are a scoped resource,
 * {@link EventHubs}, that `WorkerHttp.serve` provides and closes.
 *
 * @since 0.4.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RcMap from "effect/RcMap"
import type * as Scope from "effect/Scope"
import * as internalMessage from "./internal/eventMessage.js"
import * as WorkerEvents from "./internal/workerEvents.js"
import { JobStore } from "./JobStore.js"
import { WorkerContext } from "./WorkerContext.js"
import { ServiceUnavailable, toResponse } from "./WorkerHttpError.js"

/**
 * The messages of `GET /events`, as one schema: `{ event, data }` with `event` one of `snapshot` (the worker as it
 * is, first on a fresh stream), `worker` (one `WorkerEvent`), `stats` (the last interval's task counts, requests
 * apart, and the store's counts) and `dropped` (ids a slow client missed). The server encodes every message with
 * it; a reader takes `typeof EventMessage.Encoded` as the type of what it parses.
 *
 * @example
 * ```ts
 * import type * as WorkerHttpEvents from "effect-worker-context/WorkerHttpEvents"
 *
 * const onMessage = (message: WorkerHttpEvents.EventMessage) =>
 *   message.event === "stats" ? message.data.succeeded : 0
 * ```
 *
 * @since 0.4.0
 * @category schemas
 */
export const EventMessage = internalMessage.EventMessage

/**
 * A message of `GET /events` as it is on the wire (the `data` line parsed).
 *
 * @example
 * ```ts
 * import type * as WorkerHttpEvents from "effect-worker-context/WorkerHttpEvents"
 *
 * const isStats = (message: WorkerHttpEvents.EventMessage) => message.event === "stats"
 * ```
 *
 * @since 0.4.0
 * @category schemas
 */
export type EventMessage = internalMessage.EventMessage

/**
 * Options of `GET /events` (see `WorkerHttp.routes`). Every field is optional.
 *
 * A value that makes no sense (a heartbeat or stats interval that is not a positive duration, a negative `linger`,
 * a `replay`, `clientBuffer` or `maxStreams` that is not an integer from 1 to 100,000, a `requestEvents` that is not
 * a boolean) makes `WorkerHttp.routes` throw an `IllegalArgumentException` that names it.
 *
 * @example
 * ```ts
 * import type * as WorkerHttp from "effect-worker-context/WorkerHttp"
 *
 * const events: WorkerHttp.EventsOptions = { heartbeat: "30 seconds", replay: 5000, maxStreams: 20 }
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
  /**
   * How many streams of one context may be open at once; one more is answered 503
   * `{ error: "TooManyStreams", max }` with `Retry-After: 5`. Default `10`: a stream is for a person watching or a
   * tool, and each costs the worker a share of its event loop (see `docs/benchmarks.md`). A client that keeps reading
   * is never dropped to make room.
   */
  readonly maxStreams?: number | undefined
  /**
   * The shortest time between two batches: the first message after a quiet spell goes out at once, and what the
   * worker publishes meanwhile goes out in the next batch, encoded once and written as it is to every stream, so a
   * stream costs at most one write per interval however busy the worker is. Default `"100 millis"`; `0` sends a
   * batch at every wake-up.
   */
  readonly flushInterval?: Duration.DurationInput | undefined
  /**
   * Whether every HTTP request that `trackRequests` tracks (a task labelled `http`) is sent as its own
   * `TaskStarted` and `TaskFinished`. Default `false`: requests are counted in each `stats` message (`http`, and left
   * out of `inFlight`), and not sent one by one. They are the stream's own kind of traffic (the dashboard's calls
   * among them), and at one request per job they would be a third of what every stream carries.
   */
  readonly requestEvents?: boolean | undefined
}

/**
 * The default of {@link EventsOptions.maxStreams}: 10 streams per context.
 *
 * @example
 * ```ts
 * import * as WorkerHttpEvents from "effect-worker-context/WorkerHttpEvents"
 *
 * const twice = WorkerHttpEvents.defaultMaxStreams * 2
 * ```
 *
 * @since 0.4.0
 * @category options
 */
export const defaultMaxStreams = 10

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

const booleanOption = (name: string, input: boolean | undefined) => {
  if (input === undefined) return false
  if (typeof input !== "boolean") {
    throw new Cause.IllegalArgumentException(`WorkerHttp.routes: events.${name} must be a boolean`)
  }
  return input
}

/** @internal */
export const resolveOptions = (options: EventsOptions = {}): WorkerEvents.ResolvedEventsOptions => ({
  heartbeat: durationOption("heartbeat", options.heartbeat, Duration.seconds(15), "refused"),
  statsInterval: durationOption("statsInterval", options.statsInterval, Duration.seconds(1), "refused"),
  replay: boundedInteger("replay", options.replay, 1000),
  clientBuffer: boundedInteger("clientBuffer", options.clientBuffer, 1000),
  linger: durationOption("linger", options.linger, Duration.seconds(30), "allowed"),
  maxStreams: boundedInteger("maxStreams", options.maxStreams, defaultMaxStreams),
  flushInterval: durationOption("flushInterval", options.flushInterval, Duration.millis(100), "allowed"),
  requestEvents: booleanOption("requestEvents", options.requestEvents)
})

/**
 * The event hubs of a server: per context and `routes` value, one listener on the context, one stats ticker, one
 * heartbeat and one batch per `flushInterval` for all its streams, each batch encoded once for all of them. A hub is made at its first stream and released
 * `linger` after its last (an `RcMap` with that idle time to live); the next stream then gets a new hub, and a
 * `Last-Event-ID` from the old one gets a snapshot with `gap: true`. Releasing the service ends every stream.
 *
 * `WorkerHttp.serve` provides it, bound to the server: its streams end after the worker stopped and before the
 * server closes. Provide {@link layer} yourself to serve `GET /events` another way.
 *
 * @example
 * ```ts
 * import { HttpServer } from "@effect/platform"
 * import { Layer } from "effect"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 * import * as WorkerHttpEvents from "effect-worker-context/WorkerHttpEvents"
 *
 * // served without WorkerHttp.serve: the hubs are yours to provide
 * const ServerLive = HttpServer.serve(WorkerHttp.toApp(WorkerHttp.routes({ guard: WorkerHttp.unguarded }))).pipe(
 *   Layer.provide(WorkerHttpEvents.layer)
 * )
 * ```
 *
 * @since 0.4.0
 * @category services
 */
export class EventHubs extends Context.Tag("effect-worker-context/WorkerHttpEvents/EventHubs")<
  EventHubs,
  EventHubs.Service
>() {}

/**
 * @since 0.4.0
 */
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace EventHubs {
  /**
   * The shape of {@link EventHubs}.
   *
   * @since 0.4.0
   * @category models
   */
  export interface Service {
    /** The hub of a context for a `routes` value, held for the current scope. */
    readonly hub: (key: WorkerEvents.HubKey) => Effect.Effect<WorkerEvents.Hub, never, Scope.Scope>
  }
}

/**
 * Makes the {@link EventHubs} service, its hubs bound to the current scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as WorkerHttpEvents from "effect-worker-context/WorkerHttpEvents"
 *
 * const program = Effect.scoped(Effect.asVoid(WorkerHttpEvents.make))
 * ```
 *
 * @since 0.4.0
 * @category constructors
 */
export const make: Effect.Effect<EventHubs.Service, never, Scope.Scope> = Effect.map(
  WorkerEvents.makeHubs,
  (hubs) => ({ hub: (key) => RcMap.get(hubs, key) })
)

/**
 * {@link EventHubs} as a scoped layer: the hubs end with it.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import * as WorkerHttpEvents from "effect-worker-context/WorkerHttpEvents"
 *
 * const HubsLive: Layer.Layer<WorkerHttpEvents.EventHubs> = WorkerHttpEvents.layer
 * ```
 *
 * @since 0.4.0
 * @category layers
 */
export const layer: Layer.Layer<EventHubs> = Layer.scoped(EventHubs, make)

/**
 * The handler of `GET /events` for the options of one `routes` value. The stream's client is attached before the
 * answer's status is chosen (so a stream over `maxStreams` gets its 503), in the request's scope, which ends when
 * the answer is sent or the client goes away.
 *
 * @internal
 */
export const route = (options: WorkerEvents.ResolvedEventsOptions) =>
  Effect.gen(function*() {
    const ctx = yield* WorkerContext
    const hubs = yield* EventHubs
    const request = yield* HttpServerRequest.HttpServerRequest
    const store = yield* Effect.serviceOption(JobStore)
    const hub = yield* hubs.hub(new WorkerEvents.HubKey({ ctx, options, store }))
    const attached = yield* Effect.either(
      Effect.acquireRelease(hub.attach(request.headers["last-event-id"]), (client) =>
        Effect.sync(() => hub.detach(client)))
    )
    if (attached._tag === "Left") {
      return toResponse(
        new ServiceUnavailable({
          error: "TooManyStreams",
          message: `${attached.left.max} event streams are open, the most this server allows: try again later`,
          details: { max: attached.left.max },
          headers: { "retry-after": "5" }
        })
      )
    }
    return HttpServerResponse.stream(WorkerEvents.clientStream(attached.right), {
      contentType: "text/event-stream; charset=utf-8",
      headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
    })
  })
