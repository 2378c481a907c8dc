/**
 * The server-sent event stream of `GET /events`: a hub per (routes value, context) that records the context's
 * events and a stats message per interval into a bounded replay ring, and a bounded buffer per connection.
 *
 * One subscription, one stats ticker and one heartbeat per hub, however many clients, and each message encoded once
 * for all of them. The hubs are an `RcMap`: a hub is made with its first client and released `linger` after its
 * last, its fibers bound to its scope, so a context nobody watches pays nothing and nothing outlives the owner of
 * the map. Everything the collector does to the ring and the clients is synchronous, so each message reaches the
 * ring and every client in one step, in id order; a client's response waits on one latch, with nothing forked.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as RcMap from "effect/RcMap"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type { JobStore } from "../JobStore.js"
import type { WorkerContext } from "../WorkerContext.js"
import type { WorkerEvent } from "../WorkerEvent.js"
import { type EventMessage, frame, type Stats, type WorkerEventJson } from "./eventMessage.js"

/** The options of the event stream, as `routes` resolved them. */
export interface ResolvedEventsOptions {
  readonly heartbeat: Duration.Duration
  readonly statsInterval: Duration.Duration
  readonly replay: number
  readonly clientBuffer: number
  readonly linger: Duration.Duration
  readonly maxStreams: number
  readonly flushInterval: Duration.Duration
}

const MAX_TEXT = 300
const MAX_DEPTH = 8

const truncate = (text: string): string => text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT - 1)}…`

/** A short, one-line description of an error or a defect: `Tag: message`, or its JSON. */
const errorText = (error: unknown): string => {
  if (typeof error === "string") return error
  if (typeof error === "object" && error !== null) {
    const tag = (error as { readonly _tag?: unknown })._tag
    const message = (error as { readonly message?: unknown }).message
    const name = typeof tag === "string" ? tag : error instanceof Error ? error.name : undefined
    if (name !== undefined) return typeof message === "string" && message !== "" ? `${name}: ${message}` : name
  }
  return JSON.stringify(toJson(error)) ?? String(error)
}

/**
 * A cause in one short line: `"interrupted"` when it is only interruptions, else its first failure (`Tag: message`)
 * or, when it failed with none, its first defect (`defect: Error: message`), and how many more there are.
 */
export const causeText = (cause: Cause.Cause<unknown>): string => {
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  const failures = Chunk.toReadonlyArray(Cause.failures(cause))
  const defects = Chunk.toReadonlyArray(Cause.defects(cause))
  const more = failures.length + defects.length - 1
  const first = failures.length > 0
    ? errorText(failures[0])
    : defects.length > 0
    ? `defect: ${errorText(defects[0])}`
    : "empty"
  return truncate(more > 0 ? `${first} (and ${more} more)` : first).replace(/[\r\n]+/g, " ")
}

const jsonValue = (value: unknown, depth: number, seen: Set<object>): unknown => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value
    case "number":
      return Number.isFinite(value) ? value : String(value)
    case "bigint":
      return value.toString()
    case "undefined":
    case "function":
    case "symbol":
      return undefined
  }
  if (value === null) return null
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString()
  if (Cause.isCause(value)) return causeText(value)
  if (Exit.isExit(value)) {
    return Exit.isSuccess(value)
      ? { _tag: "Success", value: jsonValue(value.value, depth + 1, seen) ?? null }
      : { _tag: "Failure", cause: causeText(value.cause) }
  }
  const object = value as object
  if (depth >= MAX_DEPTH || seen.has(object)) return "[…]"
  seen.add(object)
  let out: unknown
  if (Array.isArray(object)) {
    out = object.map((item) => jsonValue(item, depth + 1, seen) ?? null)
  } else if (object instanceof Map) {
    out = Array.from(object, ([k, v]) => [jsonValue(k, depth + 1, seen) ?? null, jsonValue(v, depth + 1, seen) ?? null])
  } else if (object instanceof Set) {
    out = Array.from(object, (item) => jsonValue(item, depth + 1, seen) ?? null)
  } else if (!(object instanceof Error) && typeof (object as { toJSON?: unknown }).toJSON === "function") {
    out = jsonValue((object as { toJSON: () => unknown }).toJSON(), depth + 1, seen)
  } else {
    const fields: Record<string, unknown> = {}
    if (object instanceof Error) {
      fields.name = object.name
      fields.message = object.message
    }
    for (const key of Object.keys(object)) {
      if (key === "stack") continue
      const field = jsonValue((object as Record<string, unknown>)[key], depth + 1, seen)
      if (field !== undefined) fields[key] = field
    }
    out = fields
  }
  seen.delete(object)
  return out
}

/**
 * `value` as plain JSON data: Dates as ISO 8601 strings, causes as {@link causeText}, exits as
 * `{ _tag: "Success", value }` / `{ _tag: "Failure", cause }`, errors as `{ name, message, ...fields }` without the
 * stack, bigints as strings, `toJSON` honoured, cycles and depth past 8 as `"[…]"`. A value that throws while being
 * read (a getter) becomes its `String`.
 */
export const toJson = (value: unknown): unknown =>
  Either.getOrElse(Either.try(() => jsonValue(value, 0, new Set())), () => String(value))

/**
 * A `WorkerEvent` as the `data` of a `worker` message: its fields as they are (`_tag`, `worker`, ...), but
 * `TaskFinished`'s `cause` as {@link causeText} and a `Custom` event's `value` through {@link toJson}.
 */
export const eventJson = (event: WorkerEvent): unknown => {
  if (event._tag === "TaskFinished") {
    const { cause, label, outcome, taskId, worker } = event
    return {
      _tag: event._tag,
      worker,
      taskId,
      ...(label === undefined ? {} : { label }),
      outcome,
      ...(cause === undefined ? {} : { cause: causeText(cause) })
    }
  }
  return toJson({ ...event })
}

/** One message of the stream, encoded once for every client. */
interface Message {
  readonly id: number
  readonly bytes: Uint8Array
}

const encoder = new TextEncoder()

const heartbeatBytes = encoder.encode(": heartbeat\n\n")

/**
 * The first bytes of every stream. A server sends a response's headers with its first bytes, and a replay may have
 * nothing to send yet: without them a client would wait for its response until the next message or heartbeat.
 */
const connectedBytes = encoder.encode(": connected\n\n")

const message = (id: number, data: typeof EventMessage.Type): Message => ({
  id,
  bytes: encoder.encode(frame(id, data))
})

/** The newest `capacity` messages, oldest first. */
class Ring {
  private readonly items: Array<Message | undefined>
  private head = 0
  size = 0

  constructor(readonly capacity: number) {
    this.items = new Array(capacity)
  }

  push(message: Message): void {
    if (this.size === this.capacity) {
      this.items[this.head] = message
      this.head = (this.head + 1) % this.capacity
    } else {
      this.items[(this.head + this.size) % this.capacity] = message
      this.size++
    }
  }

  at(i: number): Message {
    return this.items[(this.head + i) % this.capacity]!
  }
}

/**
 * One connection: a buffer of at most `capacity` messages (a replay or a final message may exceed it), filled by
 * the hub and emptied by the response. A message that finds the buffer full is dropped for this client and counted;
 * the next time the response takes what is buffered, it gets a `dropped` message after it, so the client learns
 * which ids it missed at the place it missed them. The hub's heartbeat asks for one `: heartbeat` comment, sent
 * with whatever else is buffered.
 */
export class Client {
  private buffer: Array<Uint8Array> = [connectedBytes]
  private messages = 0
  private dropped = 0
  private droppedFrom = 0
  private droppedTo = 0
  private beat = false
  ended = false
  readonly wake = Effect.unsafeMakeLatch(true)

  constructor(readonly capacity: number) {}

  offer(message: Message, force = false): void {
    if (this.ended) return
    if (!force && this.messages >= this.capacity) {
      if (this.dropped === 0) this.droppedFrom = message.id
      this.dropped++
      this.droppedTo = message.id
      return
    }
    if (this.dropped > 0) this.flushDropped()
    this.buffer.push(message.bytes)
    this.messages++
    this.wake.unsafeOpen()
  }

  heartbeat(): void {
    if (this.ended) return
    this.beat = true
    this.wake.unsafeOpen()
  }

  end(): void {
    this.ended = true
    this.wake.unsafeOpen()
  }

  /** The heartbeat when one is due, everything buffered, then the `dropped` message when some were dropped. */
  takeAll(): Array<Uint8Array> {
    if (this.dropped > 0) this.flushDropped()
    const out = this.buffer
    if (this.beat) {
      out.unshift(heartbeatBytes)
      this.beat = false
    }
    this.buffer = []
    this.messages = 0
    if (!this.ended) this.wake.unsafeClose()
    return out
  }

  private flushDropped(): void {
    const { droppedFrom: from, droppedTo: to } = this
    this.buffer.push(message(to, { event: "dropped", data: { count: this.dropped, from, to } }).bytes)
    this.messages++
    this.dropped = 0
  }
}

/** `parts` as one array: one write to the socket instead of one per message. */
const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (parts.length === 1) return parts[0]!
  let length = 0
  for (const part of parts) length += part.length
  const out = new Uint8Array(length)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

/**
 * What the response of one client sends: what its buffer gets, heartbeats included, in one write per wake-up; ends
 * once the client is ended and its buffer is empty. One latch to wait on and nothing forked. After a write it waits
 * `flushInterval` before the next, so that a client costs at most one write per interval however fast the worker
 * publishes (what comes meanwhile is buffered, up to `clientBuffer` messages).
 */
export const clientStream = (client: Client, flushInterval: Duration.Duration): Stream.Stream<Uint8Array> => {
  const pause = Duration.toMillis(flushInterval) > 0 ? Effect.sleep(flushInterval) : Effect.void
  let wrote = false
  const take = Effect.suspend(() => {
    const out = client.takeAll()
    if (out.length > 0) return Effect.succeed(Option.some(concat(out)))
    return Effect.succeed(client.ended ? Option.none() : Option.some(new Uint8Array(0)))
  })
  const pull: Effect.Effect<Uint8Array, Option.Option<never>> = Effect.gen(function*() {
    if (wrote && !client.ended) yield* pause
    yield* client.wake.await
    const next = yield* take
    if (Option.isNone(next)) return yield* Effect.fail(Option.none())
    wrote = next.value.length > 0
    return next.value
  })
  return Stream.repeatEffectOption(pull).pipe(Stream.filter((bytes) => bytes.length > 0))
}

type Counts = { started: number; succeeded: number; failed: number; interrupted: number }

const zeroCounts = (): Counts => ({ started: 0, succeeded: 0, failed: 0, interrupted: 0 })

const count = (counts: Counts, event: WorkerEvent): void => {
  if (event._tag === "TaskStarted") counts.started++
  else if (event._tag === "TaskFinished") {
    counts[event.outcome === "success" ? "succeeded" : event.outcome === "failure" ? "failed" : "interrupted"]++
  }
}

/** How long the jobs part of a stats message may take before it says `jobsError` instead. */
const JOBS_TIMEOUT = Duration.seconds(5)

/** The label `trackRequests` gives requests: they are counted apart from the worker's tasks. */
const HTTP_LABEL = "http"

/**
 * What `GET /events` refuses a stream with: `maxStreams` streams of this hub are open.
 */
export class TooManyStreams extends Data.TaggedError("TooManyStreams")<{ readonly max: number }> {}

/**
 * The hub of one context for one `routes` value: it records the context's events and a stats message per interval
 * into a bounded replay ring and hands each message, encoded once, to every client. Made by {@link makeHub} in a
 * scope that owns its subscription and its fibers.
 */
export class Hub {
  /**
   * The id of the last message: starts at the clock's milliseconds times 1,000 when the hub is made, so that an id
   * a client got from another process (a restart, another replica) or from an earlier hub of this one is older than
   * anything in this ring and gets a gap, not a wrong replay.
   */
  private seq: number
  /** The id from which the ring holds every message. */
  private readonly coveredSince: number
  private readonly ring: Ring
  private readonly clients = new Set<Client>()
  /** `Stopped` was recorded (or the context was stopped before anything was): nothing follows. */
  finished = false
  private counts = zeroCounts()
  private http = zeroCounts()
  /** The requests in flight, by task id, so that `inFlight` can leave them out. */
  private readonly requests = new Set<number>()
  private lastTick: number

  constructor(
    private readonly ctx: WorkerContext.Service,
    private readonly options: ResolvedEventsOptions,
    now: number
  ) {
    this.seq = Math.floor(now) * 1000
    this.coveredSince = this.seq
    this.lastTick = now
    this.ring = new Ring(options.replay)
  }

  private publish(data: typeof EventMessage.Type, force = false): void {
    const next = message(++this.seq, data)
    this.ring.push(next)
    for (const client of this.clients) client.offer(next, force)
  }

  /** Records one event; synchronous, so that every client gets it in the same step, in id order. */
  record(event: WorkerEvent, now: number): void {
    if (event._tag === "TaskStarted" || event._tag === "TaskFinished") {
      const isRequest = event.label === HTTP_LABEL
      count(isRequest ? this.http : this.counts, event)
      if (isRequest && event._tag === "TaskStarted") this.requests.add(event.taskId)
      if (event._tag === "TaskFinished") this.requests.delete(event.taskId)
    }
    if (event._tag === "Stopped") {
      // The last partial interval's counts, then `Stopped`, delivered even to a client whose buffer is full.
      this.publish({ event: "stats", data: this.statsData(now, "Stopped", 0) }, true)
      this.publish({ event: "worker", data: eventJson(event) as typeof WorkerEventJson.Type }, true)
      this.finish()
      return
    }
    this.publish({ event: "worker", data: eventJson(event) as typeof WorkerEventJson.Type })
  }

  /** Ends every client: nothing more will come. */
  finish(): void {
    this.finished = true
    for (const client of this.clients) client.end()
    this.clients.clear()
  }

  private statsData(now: number, state: string, taskCount: number) {
    const counts = this.counts
    const http = this.http
    this.counts = zeroCounts()
    this.http = zeroCounts()
    const intervalMs = now - this.lastTick
    this.lastTick = now
    const inFlight = Math.max(0, taskCount - this.requests.size)
    return { at: new Date(now).toISOString(), intervalMs, state, taskCount, inFlight, ...counts, http }
  }

  /** One stats message: the interval's counts, the state, and the store's counts when there is a store. */
  tick(store: Option.Option<JobStore.Service>): Effect.Effect<void> {
    const ctx = this.ctx
    return Effect.gen(this, function*() {
      const now = yield* Clock.currentTimeMillis
      const data: Mutable<typeof Stats.Type> = this.statsData(now, yield* ctx.state, yield* ctx.taskCount)
      if (Option.isSome(store)) {
        const jobs = yield* store.value.stats.pipe(
          Effect.timeoutFail({
            duration: JOBS_TIMEOUT,
            onTimeout: () => ({ message: `the job store did not answer within ${Duration.format(JOBS_TIMEOUT)}` })
          }),
          Effect.sandbox,
          Effect.either
        )
        if (Either.isRight(jobs)) data.jobs = jobs.right
        else {
          const failure = Cause.failureOption(jobs.left)
          data.jobsError = Option.isSome(failure) ? failure.value.message : causeText(jobs.left)
        }
      }
      if (!this.finished) this.publish({ event: "stats", data })
    })
  }

  /** A `: heartbeat` for every client. */
  heartbeat(): void {
    for (const client of this.clients) client.heartbeat()
  }

  /**
   * A new client, with what it must see first: after a `Last-Event-ID` the ring still covers, the messages that
   * followed it; otherwise a `snapshot` (with `gap: true` when an id was given but cannot be honoured). Fails with
   * {@link TooManyStreams} when `maxStreams` clients are attached.
   */
  attach(lastEventId: string | undefined): Effect.Effect<Client, TooManyStreams> {
    const ctx = this.ctx
    return Effect.gen(this, function*() {
      if (this.clients.size >= this.options.maxStreams) {
        return yield* new TooManyStreams({ max: this.options.maxStreams })
      }
      const client = new Client(this.options.clientBuffer)
      const given = lastEventId === undefined || lastEventId.trim() === "" ? undefined : lastEventId.trim()
      const last = given !== undefined && /^[0-9]{1,16}$/.test(given) ? Number(given) : undefined
      if (last !== undefined && this.covers(last)) {
        for (let i = 0; i < this.ring.size; i++) {
          const replayed = this.ring.at(i)
          if (replayed.id > last) client.offer(replayed, true)
        }
      } else {
        // Read in one step with no yield between them and the `add` below would be ideal; the reads are
        // synchronous in effect, and an event that lands meanwhile is recorded after this snapshot's id.
        const readiness = yield* ctx.readiness
        const taskCount = yield* ctx.taskCount
        const shuttingDown = yield* ctx.isShuttingDown
        const now = yield* Clock.currentTimeMillis
        client.offer(
          message(this.seq, {
            event: "snapshot",
            data: {
              name: ctx.name,
              state: readiness.state,
              taskCount,
              shuttingDown,
              readiness: {
                ready: readiness.ready,
                unready: readiness.unready.map(({ check, reason, since }) => ({
                  check,
                  reason,
                  since: since.toISOString()
                }))
              },
              at: new Date(now).toISOString(),
              gap: given !== undefined
            }
          }),
          true
        )
      }
      if (this.finished) client.end()
      else this.clients.add(client)
      return client
    })
  }

  /** Whether the ring holds every message after `id`. */
  private covers(id: number): boolean {
    if (id < this.coveredSince || id > this.seq) return false
    return this.ring.size === 0 || id >= this.ring.at(0).id - 1
  }

  /** Forgets `client`. */
  detach(client: Client): void {
    client.end()
    this.clients.delete(client)
  }

  /** How many clients are attached. */
  get size(): number {
    return this.clients.size
  }
}

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

/** Runs `effect` on a fiber of `scope`, interruptible and without the span of the request that made the hub. */
const forkIn = (effect: Effect.Effect<void>, scope: Scope.Scope) =>
  effect.pipe(
    Effect.mapInputContext((context: Context.Context<never>) => Context.omit(Tracer.ParentSpan)(context)),
    // The hub is made inside `RcMap`'s acquire, which is uninterruptible, and a fork inherits that: without this,
    // closing the scope could not stop the fibers, whose timers would hold the process up.
    Effect.interruptible,
    Effect.forkIn(scope)
  )

/**
 * The hub of `ctx` for `options`, with its subscription and its three fibers (the collector, the stats ticker and
 * the heartbeat) bound to the current scope: closing it ends every client and stops them all.
 */
export const makeHub = (
  ctx: WorkerContext.Service,
  options: ResolvedEventsOptions,
  store: Option.Option<JobStore.Service>
): Effect.Effect<Hub, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const hub = new Hub(ctx, options, yield* Clock.currentTimeMillis)
    // Subscribed before reading the state: nothing published from now on is missed.
    const queue = yield* ctx.subscribe
    yield* Effect.addFinalizer(() => Effect.sync(() => hub.finish()))
    if ((yield* ctx.state) === "Stopped") {
      // `Stopped` may have been published before the subscription: it will not come again.
      hub.finished = true
      return hub
    }
    const collector = Effect.gen(function*() {
      while (!hub.finished) {
        const batch = yield* Queue.takeBetween(queue, 1, 4096)
        const now = yield* Clock.currentTimeMillis
        for (const event of batch) {
          hub.record(event, now)
          if (hub.finished) return
        }
      }
    })
    const every = (interval: Duration.Duration, effect: Effect.Effect<void>) =>
      Effect.zipRight(
        Effect.sleep(interval),
        Effect.repeat(effect, { schedule: Schedule.fixed(interval), until: () => hub.finished })
      )
    yield* forkIn(collector, scope)
    // The heartbeat first: when both are due at once, it is sent just before the stats.
    yield* forkIn(every(options.heartbeat, Effect.sync(() => hub.heartbeat())), scope)
    yield* forkIn(every(options.statsInterval, hub.tick(store)), scope)
    return hub
  })

/** What identifies a hub: the context, the options of the `routes` value, and the store it reports on. */
export class HubKey extends Data.Class<{
  readonly ctx: WorkerContext.Service
  readonly options: ResolvedEventsOptions
  readonly store: Option.Option<JobStore.Service>
}> {}

/**
 * The hubs of a server, one per context and `routes` value, made at the first connection and released `linger`
 * after the last one left (then the next connection gets a new hub and a gap). Closing the scope ends them all.
 */
export const makeHubs: Effect.Effect<RcMap.RcMap<HubKey, Hub>, never, Scope.Scope> = RcMap.make({
  lookup: (key: HubKey) => makeHub(key.ctx, key.options, key.store),
  idleTimeToLive: (key: HubKey) => key.options.linger
})
