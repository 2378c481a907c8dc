/**
 * The server-sent event stream of `GET /events`: a hub per (routes value, context) that records the context's
 * events and a stats message per interval into a bounded replay ring, and a bounded buffer per connection.
 *
 * One subscription and one ticker per hub, however many clients: the hub's collector starts with the first client
 * and stops `linger` after the last one left, so a context nobody watches pays nothing. Everything the collector
 * does to the ring and the clients is synchronous, so each message reaches the ring and every client in one step,
 * in id order.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type { JobStore } from "../JobStore.js"
import type { WorkerContext } from "../WorkerContext.js"
import type { WorkerEvent } from "../WorkerEvent.js"

/** The options of the event stream, as `routes` resolved them. */
export interface ResolvedEventsOptions {
  readonly heartbeat: Duration.Duration
  readonly statsInterval: Duration.Duration
  readonly replay: number
  readonly clientBuffer: number
  readonly linger: Duration.Duration
}

/** One message of the stream, in its wire form. */
interface Message {
  readonly id: number
  readonly text: string
}

/** `id`, `event` and one line of JSON (`JSON.stringify` escapes every line break), then the blank line. */
const frame = (id: number, event: string, data: unknown): string =>
  `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`

const heartbeatText = ": heartbeat\n\n"

/**
 * The first bytes of every stream. A server sends a response's headers with its first bytes, and a replay may have
 * nothing to send yet: without them a client would wait for its response until the next message or heartbeat.
 */
const connectedText = ": connected\n\n"

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

  clear(): void {
    this.items.fill(undefined)
    this.head = 0
    this.size = 0
  }
}

/**
 * One connection: a buffer of at most `capacity` messages (a replay or a final message may exceed it), filled by
 * the hub and emptied by the response. A message that finds the buffer full is dropped for this client and counted;
 * the next time the response takes what is buffered, it gets a `dropped` message after it, so the client learns
 * which ids it missed at the place it missed them.
 */
export class Client {
  private buffer: Array<string> = []
  private dropped = 0
  private droppedFrom = 0
  private droppedTo = 0
  ended = false
  readonly wake = Effect.unsafeMakeLatch(false)

  constructor(readonly capacity: number) {}

  offer(message: Message, force = false): void {
    if (this.ended) return
    if (!force && this.buffer.length >= this.capacity) {
      if (this.dropped === 0) this.droppedFrom = message.id
      this.dropped++
      this.droppedTo = message.id
      return
    }
    if (this.dropped > 0) this.flushDropped()
    this.buffer.push(message.text)
    this.wake.unsafeOpen()
  }

  end(): void {
    this.ended = true
    this.wake.unsafeOpen()
  }

  get hasData(): boolean {
    return this.buffer.length > 0 || this.dropped > 0
  }

  /** Everything buffered, then the `dropped` message when some were dropped since the last take. */
  takeAll(): Array<string> {
    if (this.dropped > 0) this.flushDropped()
    const out = this.buffer
    this.buffer = []
    if (!this.ended) this.wake.unsafeClose()
    return out
  }

  private flushDropped(): void {
    this.buffer.push(
      frame(this.droppedTo, "dropped", { count: this.dropped, from: this.droppedFrom, to: this.droppedTo })
    )
    this.dropped = 0
  }
}

const encoder = new TextEncoder()

/**
 * What the response of one client sends: what its buffer gets, and a heartbeat comment every `heartbeat`; ends
 * once the client is ended and its buffer is empty, or when `closing` completes.
 */
export const clientStream = (
  client: Client,
  heartbeat: Duration.Duration,
  closing: Effect.Effect<void>
): Stream.Stream<Uint8Array> => {
  const beat = Duration.toMillis(heartbeat)
  const closed = Effect.map(closing, () => client.end())
  return Stream.unwrap(Effect.map(Clock.currentTimeMillis, (start) => {
    let next = start + beat
    let opening = true
    const pull: Effect.Effect<Uint8Array, Option.Option<never>> = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      // The heartbeat keeps its period whether or not messages flow: a proxy that wants bytes gets them.
      const due = now >= next
      if (due) next = now + beat
      if (opening) {
        opening = false
        return Effect.succeed(encoder.encode(connectedText + client.takeAll().join("")))
      }
      if (client.hasData) {
        const text = client.takeAll().join("")
        return Effect.succeed(encoder.encode(due ? heartbeatText + text : text))
      }
      if (client.ended) return Effect.fail(Option.none())
      if (due) return Effect.succeed(encoder.encode(heartbeatText))
      return Effect.zipRight(
        Effect.raceAll([client.wake.await, Effect.sleep(Duration.millis(next - now)), closed]),
        pull
      )
    })
    return Stream.repeatEffectOption(pull)
  }))
}

type Counts = { started: number; succeeded: number; failed: number; interrupted: number }

const zeroCounts = (): Counts => ({ started: 0, succeeded: 0, failed: 0, interrupted: 0 })

/** How long the jobs part of a stats message may take before it says `jobsError` instead. */
const JOBS_TIMEOUT = Duration.seconds(5)

/** The hub of one context for one `routes` value. */
export class Hub {
  /**
   * The id of the last message: starts at the clock's milliseconds times 1,000 when the hub is made, so that an id
   * a client got from another process (a restart, another replica) is older than anything in this ring and gets a
   * gap, not a wrong replay.
   */
  private seq: number
  /** The id from which the ring holds every message: set when the collector (re)starts. */
  private coveredSince: number
  private readonly ring: Ring
  private readonly clients = new Set<Client>()
  /** `Stopped` was recorded (or the context was stopped before anything was): nothing follows. */
  private finished = false
  private collector: Fiber.RuntimeFiber<void> | undefined = undefined
  private generation = 0
  private linger: Fiber.RuntimeFiber<void> | undefined = undefined
  private counts = zeroCounts()
  private lastTick = 0
  private readonly lock = Effect.unsafeMakeSemaphore(1)

  constructor(
    private readonly ctx: WorkerContext.Service,
    private readonly options: ResolvedEventsOptions,
    now: number
  ) {
    this.seq = Math.floor(now) * 1000
    this.coveredSince = this.seq
    this.ring = new Ring(options.replay)
  }

  private publish(event: string, data: unknown, force = false): void {
    const id = ++this.seq
    const message = { id, text: frame(id, event, data) }
    this.ring.push(message)
    for (const client of this.clients) client.offer(message, force)
  }

  private record(event: WorkerEvent, now: number): void {
    switch (event._tag) {
      case "TaskStarted":
        this.counts.started++
        break
      case "TaskFinished":
        this
          .counts[event.outcome === "success" ? "succeeded" : event.outcome === "failure" ? "failed" : "interrupted"]++
        break
      case "Stopped":
        // The last partial interval's counts, then `Stopped`, delivered even to a client whose buffer is full.
        this.publish("stats", this.statsData(now, "Stopped", 0), true)
        this.publish("worker", eventJson(event), true)
        this.finished = true
        for (const client of this.clients) client.end()
        return
    }
    this.publish("worker", eventJson(event))
  }

  private statsData(now: number, state: string, taskCount: number): Record<string, unknown> {
    const counts = this.counts
    this.counts = zeroCounts()
    const intervalMs = now - this.lastTick
    this.lastTick = now
    return { at: new Date(now).toISOString(), intervalMs, state, taskCount, ...counts }
  }

  private tick(store: Option.Option<JobStore.Service>, generation: number): Effect.Effect<void> {
    const ctx = this.ctx
    return Effect.gen(this, function*() {
      const now = yield* Clock.currentTimeMillis
      const data = this.statsData(now, yield* ctx.state, yield* ctx.taskCount)
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
      if (!this.finished && generation === this.generation) this.publish("stats", data)
    })
  }

  /** Subscribes (so nothing published from now on is missed) and forks the collector; under the lock. */
  private start(store: Option.Option<JobStore.Service>): Effect.Effect<void> {
    const ctx = this.ctx
    return Effect.gen(this, function*() {
      const scope = yield* Scope.make()
      const queue = yield* Scope.extend(ctx.subscribe, scope)
      if ((yield* ctx.state) === "Stopped") {
        // `Stopped` may have been published before the subscription: it will not come again.
        this.finished = true
        return yield* Scope.close(scope, Exit.void)
      }
      // Whatever happened while nobody recorded is lost: burn an id so that no client id can claim to cover it.
      this.seq++
      this.coveredSince = this.seq
      this.ring.clear()
      this.counts = zeroCounts()
      this.lastTick = yield* Clock.currentTimeMillis
      const generation = ++this.generation
      const interval = this.options.statsInterval
      const dispatch = Effect.gen(this, function*() {
        while (!this.finished) {
          const batch = yield* Queue.takeBetween(queue, 1, 4096)
          if (generation !== this.generation) return
          const now = yield* Clock.currentTimeMillis
          for (const event of batch) {
            this.record(event, now)
            if (this.finished) return
          }
        }
      })
      const ticker = Effect.zipRight(
        Effect.sleep(interval),
        Effect.repeat(this.tick(store, generation), Schedule.fixed(interval))
      )
      this.collector = yield* Effect.zipRight(Effect.fork(ticker), dispatch).pipe(
        Effect.ensuring(Scope.close(scope, Exit.void)),
        // The collector outlives the request that started it: it must not hang off the request's span.
        Effect.mapInputContext((context: Context.Context<never>) => Context.omit(Tracer.ParentSpan)(context)),
        // `attach` runs in `acquireRelease`'s acquire, which is uninterruptible, and a fork inherits that: without
        // this, neither the linger's interruption nor the end of the collector could stop the ticker, whose timer
        // would then hold the process up for ever once the worker stopped.
        Effect.interruptible,
        Effect.forkDaemon
      )
    })
  }

  /**
   * A new client, with what it must see first: after a `Last-Event-ID` the ring still covers, the messages that
   * followed it; otherwise a `snapshot` (with `gap: true` when an id was given but cannot be honoured).
   */
  attach(lastEventId: string | undefined, store: Option.Option<JobStore.Service>): Effect.Effect<Client> {
    const ctx = this.ctx
    return this.lock.withPermits(1)(Effect.gen(this, function*() {
      if (this.linger !== undefined) {
        yield* Fiber.interruptFork(this.linger)
        this.linger = undefined
      }
      // A collector that ended without `Stopped` (it cannot fail, but a defect is a defect) is started again.
      if (!this.finished && (this.collector === undefined || this.collector.unsafePoll() !== null)) {
        yield* this.start(store)
      }
      const client = new Client(this.options.clientBuffer)
      const given = lastEventId === undefined || lastEventId.trim() === "" ? undefined : lastEventId.trim()
      const last = given !== undefined && /^[0-9]{1,16}$/.test(given) ? Number(given) : undefined
      if (last !== undefined && this.covers(last)) {
        for (let i = 0; i < this.ring.size; i++) {
          const message = this.ring.at(i)
          if (message.id > last) client.offer(message, true)
        }
      } else {
        const readiness = yield* ctx.readiness
        const taskCount = yield* ctx.taskCount
        const shuttingDown = yield* ctx.isShuttingDown
        const now = yield* Clock.currentTimeMillis
        client.offer({
          id: this.seq,
          text: frame(this.seq, "snapshot", {
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
          })
        }, true)
      }
      if (this.finished) client.end()
      else this.clients.add(client)
      return client
    }))
  }

  /** Whether the ring holds every message after `id`. */
  private covers(id: number): boolean {
    if (id < this.coveredSince || id > this.seq) return false
    return this.ring.size === 0 || id >= this.ring.at(0).id - 1
  }

  /** Forgets `client`; the last one out stops the collector `linger` later, unless another one came meanwhile. */
  detach(client: Client): Effect.Effect<void> {
    return Effect.suspend(() => {
      client.end()
      this.clients.delete(client)
      // Once `Stopped` was recorded the collector has ended: no timer to keep (it would hold a process up).
      if (this.clients.size > 0 || this.finished || this.collector === undefined || this.linger !== undefined) {
        return Effect.void
      }
      const stop = this.lock.withPermits(1)(Effect.suspend(() => {
        this.linger = undefined
        const collector = this.collector
        if (this.clients.size > 0 || collector === undefined) return Effect.void
        this.collector = undefined
        this.generation++
        return Fiber.interruptFork(collector)
      }))
      return Effect.asVoid(
        Effect.tap(
          // Forked from `acquireRelease`'s release, which is uninterruptible: a client that comes back must be able
          // to interrupt the linger.
          Effect.forkDaemon(Effect.interruptible(Effect.zipRight(Effect.sleep(this.options.linger), stop))),
          (fiber) => {
            this.linger = fiber
          }
        )
      )
    })
  }
}

/** The hubs of one `routes` value, one per context, created at the first request and dropped with the context. */
export const makeHubs = (options: ResolvedEventsOptions) => {
  const hubs = new WeakMap<WorkerContext.Service, Hub>()
  return (ctx: WorkerContext.Service): Effect.Effect<Hub> =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      let hub = hubs.get(ctx)
      if (hub === undefined) {
        hub = new Hub(ctx, options, now)
        hubs.set(ctx, hub)
      }
      return hub
    })
}
