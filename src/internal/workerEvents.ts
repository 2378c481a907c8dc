/**
 * The server-sent event stream of `GET /events`: a hub per (routes value, context) that records the context's
 * events and a stats message per interval into a bounded replay ring, and a bounded buffer per connection.
 *
 * Per hub, however many clients: one listener on the context's core, called in the step that publishes each event
 * (no fiber wakes per event, and none is missed); one flusher that hands what was recorded to every client as one
 * batch, encoded once, at most once per `flushInterval`; one stats ticker and one heartbeat. The hubs are an
 * `RcMap`: a hub is made with its first client and released `linger` after its last, its fibers bound to its scope,
 * so a context nobody watches pays nothing and nothing outlives the owner of the map. Every batch reaches every
 * client in one step, in id order; a client's response waits on one latch, with nothing forked.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as RcMap from "effect/RcMap"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type { JobStore } from "../JobStore.js"
import type { WorkerContext } from "../WorkerContext.js"
import type { WorkerEvent } from "../WorkerEvent.js"
import { causeText, eventJson } from "./eventJson.js"
import { type EventMessage, frame, type Stats, type WorkerEventJson } from "./eventMessage.js"
import { coreOf } from "./workerContext.js"

/** The options of the event stream, as `routes` resolved them. */
export interface ResolvedEventsOptions {
  readonly heartbeat: Duration.Duration
  readonly statsInterval: Duration.Duration
  readonly replay: number
  readonly clientBuffer: number
  readonly linger: Duration.Duration
  readonly maxStreams: number
  readonly flushInterval: Duration.Duration
  readonly requestEvents: boolean
}

/**
 * Messages in id order, framed once for every client: `count` messages, ids `from` to `to`, as one text (kept in the
 * replay ring) and as the UTF-8 bytes written as they are to every client.
 */
interface Batch {
  readonly bytes: Uint8Array
  readonly count: number
  readonly from: number
  readonly to: number
}

const encoder = new TextEncoder()

const heartbeatBytes = encoder.encode(": heartbeat\n\n")

/**
 * The first bytes of every stream. A server sends a response's headers with its first bytes, and a replay may have
 * nothing to send yet: without them a client would wait for its response until the next message or heartbeat.
 */
const connectedBytes = encoder.encode(": connected\n\n")

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

/** A batch as the replay ring keeps it: its text, and where each of its messages starts in it. */
interface Recorded {
  readonly from: number
  readonly to: number
  readonly text: string
  readonly starts: ReadonlyArray<number>
}

/**
 * The latest batches, oldest first, holding at least the newest `capacity` messages. It keeps one text per batch,
 * not one per message, so that what it holds costs the garbage collector little however many messages that is.
 */
class Ring {
  private items: Array<Recorded> = []
  private head = 0
  private messages = 0

  constructor(readonly capacity: number) {}

  push(recorded: Recorded): void {
    this.items.push(recorded)
    this.messages += recorded.to - recorded.from + 1
    for (;;) {
      const oldest = this.items[this.head]!
      const count = oldest.to - oldest.from + 1
      if (this.messages - count < this.capacity) break
      this.messages -= count
      this.head++
    }
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }

  /** The id of the oldest message held, or `undefined` when none is. */
  get oldest(): number | undefined {
    return this.items[this.head]?.from
  }

  /** The text of every message held after `id`, oldest first. */
  after(id: number): string {
    let text = ""
    for (let i = this.head; i < this.items.length; i++) {
      const { from, starts, text: all, to } = this.items[i]!
      if (to <= id) continue
      text += id < from ? all : all.slice(starts[id + 1 - from])
    }
    return text
  }
}

/**
 * One connection: a buffer of at most `capacity` messages (a replay or a final batch may exceed it), filled by the
 * hub with whole batches and emptied by the response. A batch that would overfill the buffer is dropped for this
 * client and counted; the next time the response takes what is buffered, it gets a `dropped` message after it, so
 * the client learns which ids it missed at the place it missed them. The hub's heartbeat asks for one
 * `: heartbeat` comment, sent with whatever else is buffered.
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

  offer(batch: Batch, force = false): void {
    if (this.ended) return
    if (!force && this.messages + batch.count > this.capacity) {
      if (this.dropped === 0) this.droppedFrom = batch.from
      this.dropped += batch.count
      this.droppedTo = batch.to
      return
    }
    if (this.dropped > 0) this.flushDropped()
    this.buffer.push(batch.bytes)
    this.messages += batch.count
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
    this.buffer.push(encoder.encode(frame(to, { event: "dropped", data: { count: this.dropped, from, to } })))
    this.messages++
    this.dropped = 0
  }
}

/**
 * What the response of one client sends: what its buffer gets, heartbeats included, in one write per wake-up; ends
 * once the client is ended and its buffer is empty. One latch to wait on and nothing forked. The hub hands every
 * client at most one batch per `flushInterval`, so a client that keeps up writes at most once per interval.
 */
export const clientStream = (client: Client): Stream.Stream<Uint8Array> => {
  const pull: Effect.Effect<Uint8Array, Option.Option<never>> = Effect.zipRight(
    client.wake.await,
    Effect.suspend(() => {
      const out = client.takeAll()
      if (out.length > 0) return Effect.succeed(concat(out))
      return client.ended ? Effect.fail(Option.none()) : Effect.succeed(new Uint8Array(0))
    })
  )
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

  /** The framed messages recorded since the last batch, in id order; the first one's id is `seq - length + 1`. */
  private pending: Array<string> = []
  /** Open while messages are pending: what the hub's flusher waits on. */
  readonly due = Effect.unsafeMakeLatch(false)

  /**
   * Records a message. It goes to the ring and the clients in the next batch: at once when `force` is set or a
   * client's buffer's worth is pending, else when the flusher runs.
   */
  private publish(data: typeof EventMessage.Type, force = false): void {
    this.pending.push(frame(++this.seq, data))
    if (force || this.pending.length >= this.options.clientBuffer) this.flush(force)
    else this.due.unsafeOpen()
  }

  /**
   * Hands what is pending to every client as one batch, encoded once, and keeps it in the ring; with `force`, even
   * to clients whose buffer is full.
   */
  flush(force = false): void {
    const pending = this.pending
    if (pending.length === 0) return
    this.pending = []
    this.due.unsafeClose()
    const starts = new Array<number>(pending.length)
    let at = 0
    for (let i = 0; i < pending.length; i++) {
      starts[i] = at
      at += pending[i]!.length
    }
    const text = pending.join("")
    const from = this.seq - pending.length + 1
    this.ring.push({ from, to: this.seq, text, starts })
    const batch: Batch = { bytes: encoder.encode(text), count: pending.length, from, to: this.seq }
    for (const client of this.clients) client.offer(batch, force)
  }

  /** Records one event; synchronous, so that every client gets it in the same step, in id order. */
  record(event: WorkerEvent, now: number): void {
    if (event._tag === "TaskStarted" || event._tag === "TaskFinished") {
      const isRequest = event.label === HTTP_LABEL
      count(isRequest ? this.http : this.counts, event)
      if (isRequest && event._tag === "TaskStarted") this.requests.add(event.taskId)
      if (event._tag === "TaskFinished") this.requests.delete(event.taskId)
      // Counted in `stats.http`; sent one by one only when asked for (`requestEvents`).
      if (isRequest && !this.options.requestEvents) return
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

  /** Ends every client, after what is pending: nothing more will come. */
  finish(): void {
    this.flush()
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
    this.flush()
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
      const given = lastEventId === undefined || lastEventId.trim() === "" ? undefined : lastEventId.trim()
      const last = given !== undefined && /^[0-9]{1,16}$/.test(given) ? Number(given) : undefined
      const readiness = yield* ctx.readiness
      const taskCount = yield* ctx.taskCount
      const shuttingDown = yield* ctx.isShuttingDown
      const now = yield* Clock.currentTimeMillis
      // From here to the `add` below, one synchronous step: the clients attached so far get what is pending, and
      // this one gets it in its replay or snapshot, so it sees every message once.
      this.flush()
      const client = new Client(this.options.clientBuffer)
      if (last !== undefined && this.covers(last)) {
        const replayed = this.ring.after(last)
        if (replayed !== "") {
          client.offer({ bytes: encoder.encode(replayed), count: this.seq - last, from: last + 1, to: this.seq }, true)
        }
      } else {
        const snapshot = frame(this.seq, {
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
        })
        client.offer({ bytes: encoder.encode(snapshot), count: 1, from: this.seq, to: this.seq }, true)
      }
      if (this.finished) client.end()
      else this.clients.add(client)
      return client
    })
  }

  /** Whether the ring holds every message after `id`. */
  private covers(id: number): boolean {
    if (id < this.coveredSince || id > this.seq) return false
    // The ring keeps whole batches, so it may hold more than the newest `replay` messages: it promises only those.
    const oldest = this.ring.oldest
    return id >= this.seq - this.options.replay && (oldest === undefined || id >= oldest - 1)
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
    yield* Effect.addFinalizer(() => Effect.sync(() => hub.finish()))
    const core = coreOf(ctx)
    if (core === undefined) {
      return yield* Effect.dieMessage(
        "GET /events needs a WorkerContext made by WorkerContext.make or WorkerContext.layer, not one built by hand"
      )
    }
    // Every event is recorded in the step that publishes it: no fiber wakes per event.
    const remove = core.addListener((event) => hub.record(event, core.now()))
    if (remove === undefined) {
      // `Stopped` was published before: it will not come again.
      hub.finished = true
      return hub
    }
    yield* Effect.addFinalizer(() => Effect.sync(remove))
    const every = (interval: Duration.Duration, effect: Effect.Effect<void>) =>
      Effect.zipRight(
        Effect.sleep(interval),
        Effect.repeat(effect, { schedule: Schedule.fixed(interval), until: () => hub.finished })
      )
    // The first batch after a quiet spell goes out at once, then at most one per `flushInterval`.
    const pause = Duration.toMillis(options.flushInterval) > 0 ? Effect.sleep(options.flushInterval) : Effect.void
    yield* forkIn(Effect.forever(Effect.zip(hub.due.await, Effect.zip(Effect.sync(() => hub.flush()), pause))), scope)
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
