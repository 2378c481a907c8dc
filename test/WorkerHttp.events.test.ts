/**
 * `WorkerHttp.routes`: the event stream, the guard and the dashboard page, over real HTTP on a free loopback port
 * (the stream with a real streaming client, the slow client with a raw socket that stops reading). Time is real
 * here, so every wait is bounded; intervals are made short through the routes' options.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  Option,
  Queue,
  Redacted,
  Scope,
  Stream,
  TestClock
} from "effect"
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import * as Net from "node:net"
import { WorkerContext, type WorkerContextOptions, WorkerEvent } from "../src/index.js"
import { JobWorker } from "../src/index.js"
import * as WorkerEvents from "../src/internal/workerEvents.js"
import { JobStore, JobStoreError } from "../src/JobStore.js"
import * as MemoryJobStore from "../src/MemoryJobStore.js"
import * as WorkerHttp from "../src/WorkerHttp.js"
import * as WorkerHttpEvents from "../src/WorkerHttpEvents.js"

const WAIT = "10 seconds"
const TOKEN = "t0ken-for-tests"
const auth = { authorization: `Bearer ${TOKEN}` }
const guard = WorkerHttp.bearerToken(Redacted.make(TOKEN))

const uniqueName = (label: string) => `sse-${label}-${randomUUID()}`

const quiet = Effect.provide(Logger.remove(Logger.defaultLogger))

class TimedOut extends Data.TaggedError("TimedOut")<{ readonly message: string }> {}

const within = (what: string) =>
  Effect.timeoutFail({ duration: WAIT, onTimeout: () => new TimedOut({ message: `timed out waiting for ${what}` }) })

const ServerLive = NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })

const ClientLive = HttpServer.layerTestClient.pipe(
  Layer.provide(NodeHttpClient.layerWithoutAgent),
  Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: false }))
)

interface Served {
  readonly client: HttpClient.HttpClient
  readonly port: number
  /** Closes what `serve` built (the server and, by `WorkerHttp.serve`, the worker first). */
  readonly close: Effect.Effect<void>
}

/** Serves `toApp(router)` for `ctx` (and `store`, when given) with `WorkerHttp.serve`, in a scope of its own. */
const serveRouter = (
  ctx: WorkerContext.Service,
  router: HttpRouter.HttpRouter<never, WorkerContext | JobStore | WorkerHttpEvents.EventHubs>,
  store?: JobStore.Service
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(
      WorkerHttp.serve(WorkerHttp.toApp(router)).pipe(
        Layer.provideMerge(ServerLive),
        Layer.provide(Layer.succeed(WorkerContext, ctx)),
        // Without a store, the routes that need one are not called: the event stream then sees no `JobStore`.
        Layer.provide((store === undefined ? Layer.empty : Layer.succeed(JobStore, store)) as Layer.Layer<JobStore>)
      ),
      scope
    )
    // The client lives in the test's scope, so that closing the server does not abort the client's requests first.
    const clientContext = yield* Layer.build(Layer.provide(ClientLive, Layer.succeedContext(context)))
    const address = Context.get(context, HttpServer.HttpServer).address
    return {
      client: Context.get(clientContext, HttpClient.HttpClient),
      port: address._tag === "TcpAddress" ? address.port : 0,
      close: Scope.close(scope, Exit.void)
    } satisfies Served
  })

const makeWorker = (label: string, options?: WorkerContextOptions) =>
  WorkerContext.make({ name: uniqueName(label), shutdownTimeout: "10 seconds", logLevel: "None", ...options })

// --- reading the stream ---------------------------------------------------------------------------------------------

/** One message of the stream: its fields, `data` parsed; a comment has only `comment`. */
interface Sse {
  readonly id?: number
  readonly event?: string
  readonly data?: any
  readonly comment?: string
}

const parseBlock = (block: string): Sse => {
  const fields: Record<string, string> = {}
  let comment: string | undefined
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      comment = line.slice(1).trim()
      continue
    }
    const at = line.indexOf(": ")
    assert.isAbove(at, 0, `not a field line: ${JSON.stringify(line)}`)
    const name = line.slice(0, at)
    assert.notProperty(fields, name, `field ${name} given twice in ${JSON.stringify(block)}`)
    fields[name] = line.slice(at + 2)
  }
  if (comment !== undefined) return { comment }
  return {
    ...(fields.id === undefined ? {} : { id: Number(fields.id) }),
    ...(fields.event === undefined ? {} : { event: fields.event }),
    ...(fields.data === undefined ? {} : { data: JSON.parse(fields.data) })
  }
}

/** Splits SSE text into blocks; returns them and what is left over (a block not ended yet). */
const splitBlocks = (text: string): { readonly blocks: Array<string>; readonly rest: string } => {
  const blocks = text.split("\n\n")
  const rest = blocks.pop()!
  return { blocks, rest }
}

const End = Symbol("End")

interface Stream_ {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  /** Every message, heartbeats included, then `End` once the response completed. */
  readonly messages: Queue.Queue<Sse | typeof End>
  /** Aborts the request: the client goes away. */
  readonly disconnect: Effect.Effect<void>
}

/** Opens `path` and reads it as an event stream, on a fiber of the test's scope. */
const openStream = (client: HttpClient.HttpClient, path: string, headers: Record<string, string> = auth) =>
  Effect.gen(function*() {
    const messages = yield* Queue.unbounded<Sse | typeof End>()
    const opened = yield* Deferred.make<{ status: number; headers: Record<string, string | undefined> }, unknown>()
    const fiber = yield* Effect.gen(function*() {
      const response = yield* client.execute(HttpClientRequest.get(path, { headers }))
      yield* Deferred.succeed(opened, { status: response.status, headers: response.headers })
      // Chunks are collected until a blank line ends a message, so a large message costs one scan, not one per chunk.
      let rest = ""
      yield* response.stream.pipe(
        Stream.decodeText(),
        Stream.runForEach((text) => {
          const tail = rest.slice(-1) + text
          rest += text
          if (!tail.includes("\n\n")) return Effect.void
          const split = splitBlocks(rest)
          rest = split.rest
          return Queue.offerAll(messages, split.blocks.map(parseBlock))
        })
      )
      assert.strictEqual(rest, "", "the stream ended in the middle of a message")
      yield* Queue.offer(messages, End)
    }).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.void : Effect.zipRight(Deferred.failCause(opened, cause), Effect.void)
      ),
      Effect.forkScoped
    )
    const { headers: responseHeaders, status } = yield* Deferred.await(opened).pipe(within(`GET ${path}`))
    return { status, headers: responseHeaders, messages, disconnect: Fiber.interrupt(fiber) } satisfies Stream_
  })

/** The next message that is not a heartbeat (or `End`). */
const next = (stream: Stream_): Effect.Effect<Sse | typeof End, TimedOut> =>
  Queue.take(stream.messages).pipe(
    Effect.flatMap((message) =>
      message !== End && message.comment !== undefined ? next(stream) : Effect.succeed(message)
    ),
    within("the next message")
  )

/** The next message that is not a heartbeat; fails the test at `End`. */
const nextMessage = (stream: Stream_) =>
  Effect.map(next(stream), (message) => {
    assert.notStrictEqual(message, End, "the stream ended")
    return message as Sse
  })

/** Messages (heartbeats left out) until and including the first one `last` picks. */
const takeUntil = (stream: Stream_, last: (message: Sse) => boolean) =>
  Effect.gen(function*() {
    const out: Array<Sse> = []
    for (;;) {
      const message = yield* nextMessage(stream)
      out.push(message)
      if (last(message)) return out
    }
  })

const isWorker = (tag: string) => (message: Sse) => message.event === "worker" && message.data._tag === tag

const assertIncreasing = (messages: ReadonlyArray<Sse>) => {
  for (let i = 1; i < messages.length; i++) {
    assert.isAbove(messages[i]!.id!, messages[i - 1]!.id!, `ids must increase: ${JSON.stringify(messages)}`)
  }
}

/** Every message has `id`, `event` and `data`. */
const assertFramed = (messages: ReadonlyArray<Sse>) => {
  for (const message of messages) {
    assert.isNumber(message.id, JSON.stringify(message))
    assert.isString(message.event, JSON.stringify(message))
    assert.property(message, "data", JSON.stringify(message))
  }
}

/** A plain GET or POST, the body read as text. */
const call = (
  client: HttpClient.HttpClient,
  method: "GET" | "POST",
  path: string,
  headers: Record<string, string> = {}
) =>
  Effect.gen(function*() {
    const response = yield* client.execute(HttpClientRequest.make(method)(path, { headers }))
    const text = yield* response.text
    return { status: response.status, headers: response.headers, text }
  }).pipe(within(`${method} ${path}`))

const eventsRoutes = (events?: WorkerHttp.EventsOptions) =>
  WorkerHttp.routes({ guard, jobs: true, events: { statsInterval: "1 hour", ...events } })

// --- the stream -----------------------------------------------------------------------------------------------------

describe("GET /events", () => {
  it.scopedLive("sends a snapshot first, then every worker event in order, with increasing ids", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("order")
      const { client } = yield* serveRouter(ctx, eventsRoutes(), yield* MemoryJobStore.make())
      yield* ctx.start
      yield* ctx.setUnready("cache", "redis: connection refused")
      const stream = yield* openStream(client, "/events")
      assert.strictEqual(stream.status, 200)
      assert.strictEqual(stream.headers["content-type"], "text/event-stream; charset=utf-8")
      assert.strictEqual(stream.headers["cache-control"], "no-store")

      const snapshot = yield* nextMessage(stream)
      assert.strictEqual(snapshot.event, "snapshot")
      const { at, readiness, ...rest } = snapshot.data
      assert.deepStrictEqual(rest, { name: ctx.name, state: "Running", taskCount: 0, shuttingDown: false, gap: false })
      assert.strictEqual(new Date(at).toISOString(), at)
      const [unready] = (yield* ctx.readiness).unready
      assert.deepStrictEqual(readiness, {
        ready: false,
        unready: [{ check: "cache", reason: "redis: connection refused", since: unready!.since.toISOString() }]
      })

      const ok = yield* ctx.track(Effect.succeed(1), { label: "image" })
      yield* ok.await
      const failed = yield* ctx.track(Effect.fail(new Error("boom\nsecond line")))
      yield* failed.await
      const died = yield* ctx.track(Effect.die("kaput"))
      yield* died.await
      const when = new Date("2025-01-01T12:00:00.000Z")
      yield* ctx.emit(WorkerEvent.Custom({ worker: ctx.name, value: { when, big: 10n, nested: { at: when } } }))
      yield* ctx.emit(WorkerEvent.Custom({
        worker: ctx.name,
        value: JobWorker.JobEvent.JobSucceeded({
          id: "7",
          name: "send-email",
          queue: "emails",
          attempt: 1,
          durationMs: 12
        })
      }))
      yield* ctx.pause

      const messages = yield* takeUntil(stream, isWorker("Paused"))
      assertFramed([snapshot, ...messages])
      assertIncreasing([snapshot, ...messages])
      assert.isTrue(messages.every((m) => m.event === "worker"), JSON.stringify(messages))
      assert.deepStrictEqual(messages.map((m) => m.data), [
        { _tag: "TaskStarted", worker: ctx.name, taskId: ok.id, label: "image" },
        { _tag: "TaskFinished", worker: ctx.name, taskId: ok.id, label: "image", outcome: "success" },
        { _tag: "Idle", worker: ctx.name },
        { _tag: "TaskStarted", worker: ctx.name, taskId: failed.id },
        {
          _tag: "TaskFinished",
          worker: ctx.name,
          taskId: failed.id,
          outcome: "failure",
          cause: "Error: boom second line"
        },
        { _tag: "Idle", worker: ctx.name },
        { _tag: "TaskStarted", worker: ctx.name, taskId: died.id },
        { _tag: "TaskFinished", worker: ctx.name, taskId: died.id, outcome: "failure", cause: "defect: kaput" },
        { _tag: "Idle", worker: ctx.name },
        {
          _tag: "Custom",
          worker: ctx.name,
          value: { when: "2025-01-01T12:00:00.000Z", big: "10", nested: { at: "2025-01-01T12:00:00.000Z" } }
        },
        {
          _tag: "Custom",
          worker: ctx.name,
          value: { _tag: "JobSucceeded", id: "7", name: "send-email", queue: "emails", attempt: 1, durationMs: 12 }
        },
        { _tag: "Paused", worker: ctx.name }
      ])
      // The snapshot's id is the last message it accounts for: the first message after it has the next one.
      assert.strictEqual(messages[0]!.id, snapshot.id! + 1)
    }).pipe(quiet))

  it.scopedLive("gives every client the same messages with the same ids, from one subscription", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("shared")
      const { client } = yield* serveRouter(ctx, eventsRoutes())
      yield* ctx.start
      const first = yield* openStream(client, "/events")
      const second = yield* openStream(client, "/events")
      const [a, b] = [yield* nextMessage(first), yield* nextMessage(second)]
      assert.strictEqual(a.event, "snapshot")
      assert.strictEqual(b.event, "snapshot")
      yield* Effect.flatMap(ctx.track(Effect.void), (task) => task.await)
      yield* ctx.pause
      const fromFirst = yield* takeUntil(first, isWorker("Paused"))
      const fromSecond = yield* takeUntil(second, isWorker("Paused"))
      assert.deepStrictEqual(fromFirst, fromSecond)
      assert.deepStrictEqual(fromFirst.map((m) => m.data._tag), ["TaskStarted", "TaskFinished", "Idle", "Paused"])
    }).pipe(quiet))

  it.scopedLive("sends stats each interval: the tasks started and ended in it, the state, and the store's counts", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("stats")
      const store = yield* MemoryJobStore.make()
      yield* store.enqueue([{
        name: "send-email",
        queue: "emails",
        payload: {},
        runAt: new Date(),
        priority: 0,
        key: undefined,
        maxAttempts: 3
      }])
      const { client } = yield* serveRouter(ctx, eventsRoutes({ statsInterval: "100 millis" }), store)
      yield* ctx.start
      const stream = yield* openStream(client, "/events")
      yield* nextMessage(stream)
      const gate = yield* Deferred.make<void>()
      yield* Effect.flatMap(ctx.track(Effect.void), (task) => task.await)
      yield* ctx.track(Effect.fail("no"))
      const held = yield* ctx.track(Deferred.await(gate))
      const stats: Array<any> = []
      const totals = () =>
        stats.reduce((sum, s) => ({
          started: sum.started + s.started,
          succeeded: sum.succeeded + s.succeeded,
          failed: sum.failed + s.failed,
          interrupted: sum.interrupted + s.interrupted
        }), { started: 0, succeeded: 0, failed: 0, interrupted: 0 })
      while (totals().started < 3 || totals().failed < 1) {
        const message = yield* nextMessage(stream)
        if (message.event === "stats") stats.push(message.data)
      }
      assert.deepStrictEqual(totals(), { started: 3, succeeded: 1, failed: 1, interrupted: 0 })
      const last = stats[stats.length - 1]
      assert.strictEqual(last.state, "Running")
      assert.strictEqual(last.taskCount, 1)
      assert.isNumber(last.intervalMs)
      assert.strictEqual(new Date(last.at).toISOString(), last.at)
      assert.deepStrictEqual(last.jobs, {
        ready: 1,
        scheduled: 0,
        leased: 0,
        dead: 0,
        cancelled: 0,
        succeeded: 0,
        byQueue: { emails: { ready: 1, scheduled: 0, leased: 0, dead: 0, cancelled: 0, succeeded: 0 } },
        pausedQueues: []
      })
      yield* held.interrupt
      for (;;) {
        const message = yield* nextMessage(stream)
        if (message.event === "stats" && message.data.interrupted === 1) break
      }
    }).pipe(quiet))

  it.scopedLive("says jobsError in stats when the store fails, and goes on", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("store-down")
      const down = Effect.fail(new JobStoreError({ operation: "stats", reason: "connection refused" }))
      const store = { ...(yield* MemoryJobStore.make()), stats: down }
      const { client } = yield* serveRouter(ctx, eventsRoutes({ statsInterval: "50 millis" }), store)
      const stream = yield* openStream(client, "/events")
      yield* nextMessage(stream)
      const first = yield* nextMessage(stream)
      const second = yield* nextMessage(stream)
      for (const message of [first, second]) {
        assert.strictEqual(message.event, "stats")
        assert.notProperty(message.data, "jobs")
        assert.include(message.data.jobsError, "connection refused")
      }
    }).pipe(quiet))

  it.scopedLive("leaves jobs out of stats when the context has no job store", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("no-store")
      const { client } = yield* serveRouter(ctx, eventsRoutes({ statsInterval: "50 millis" }))
      const stream = yield* openStream(client, "/events")
      yield* nextMessage(stream)
      const stats = yield* nextMessage(stream)
      assert.strictEqual(stats.event, "stats")
      assert.notProperty(stats.data, "jobs")
      assert.notProperty(stats.data, "jobsError")
      assert.strictEqual(stats.data.state, "Pending")
    }).pipe(quiet))

  it.scopedLive("sends a heartbeat comment every heartbeat interval", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("heartbeat")
      const { client } = yield* serveRouter(ctx, eventsRoutes({ heartbeat: "50 millis" }))
      const stream = yield* openStream(client, "/events")
      const seen: Array<Sse | typeof End> = []
      while (seen.filter((m) => m !== End && m.comment === "heartbeat").length < 3) {
        seen.push(yield* Queue.take(stream.messages).pipe(within("heartbeats")))
      }
      assert.deepStrictEqual(seen[0], { comment: "connected" })
      assert.strictEqual((seen[1] as Sse).event, "snapshot")
      assert.isTrue(seen.slice(2).every((m) => m !== End && m.comment === "heartbeat"), JSON.stringify(seen))
    }).pipe(quiet))

  it.scopedLive("replays what came after Last-Event-ID when the ring still holds it, without a snapshot", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("replay")
      const { client } = yield* serveRouter(ctx, eventsRoutes())
      yield* ctx.start
      const first = yield* openStream(client, "/events")
      yield* nextMessage(first)
      yield* Effect.flatMap(ctx.track(Effect.void), (task) => task.await)
      const seen = yield* takeUntil(first, isWorker("TaskFinished"))
      yield* first.disconnect

      // Published while nobody is connected: the hub lingers and records them.
      yield* Effect.flatMap(ctx.track(Effect.void), (task) => task.await)
      yield* ctx.pause
      const again = yield* openStream(client, "/events", { ...auth, "last-event-id": String(seen[0]!.id) })
      const replayed = yield* takeUntil(again, isWorker("Paused"))
      assert.deepStrictEqual(replayed.map((m) => m.data._tag), [
        "TaskFinished",
        "Idle",
        "TaskStarted",
        "TaskFinished",
        "Idle",
        "Paused"
      ])
      assert.strictEqual(replayed[0]!.id, seen[1]!.id)
      assertIncreasing(replayed)

      // An id that is the last one sent: nothing to replay, the stream goes on live.
      const lastId = replayed[replayed.length - 1]!.id!
      const live = yield* openStream(client, "/events", { ...auth, "last-event-id": String(lastId) })
      yield* ctx.resume
      const resumed = yield* nextMessage(live)
      assert.strictEqual(resumed.data._tag, "Resumed")
      assert.strictEqual(resumed.id, lastId + 1)
    }).pipe(quiet))

  it.scopedLive("answers a Last-Event-ID it cannot honour with a snapshot that says gap: true", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("gap")
      const { client } = yield* serveRouter(ctx, eventsRoutes({ replay: 5 }))
      yield* ctx.start
      const first = yield* openStream(client, "/events")
      const snapshot = yield* nextMessage(first)
      for (let i = 0; i < 10; i++) yield* Effect.flatMap(ctx.track(Effect.void), (task) => task.await)
      yield* ctx.pause
      const sent = yield* takeUntil(first, isWorker("Paused"))
      assert.isAtLeast(sent.length, 21)
      const lastId = sent[sent.length - 1]!.id!

      // Fell out of the ring (5 messages), from the future, from another process, not a number.
      for (const id of [String(sent[2]!.id), String(lastId + 1), "1", "abc"]) {
        const again = yield* openStream(client, "/events", { ...auth, "last-event-id": id })
        const message = yield* nextMessage(again)
        assert.strictEqual(message.event, "snapshot", id)
        assert.isTrue(message.data.gap, id)
        assert.strictEqual(message.data.state, "Paused")
        assert.strictEqual(message.id, lastId, "a snapshot accounts for every message so far")
        yield* again.disconnect
      }
      // The oldest id the ring can still follow: the one just before its first message.
      const edge = yield* openStream(client, "/events", { ...auth, "last-event-id": String(lastId - 5) })
      const replayed = yield* takeUntil(edge, (m) => m.id === lastId)
      assert.deepStrictEqual(replayed, sent.slice(-5))
      const tooOld = yield* openStream(client, "/events", { ...auth, "last-event-id": String(lastId - 6) })
      assert.isTrue((yield* nextMessage(tooOld)).data.gap)
      assert.isAbove(snapshot.id!, 0)
    }).pipe(quiet))

  it.scopedLive("gives a gap once the hub stopped recording after the last client left and linger passed", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("linger")
      const { client } = yield* serveRouter(ctx, eventsRoutes({ linger: 0 }))
      yield* ctx.start
      let stream = yield* openStream(client, "/events")
      let lastId = (yield* nextMessage(stream)).id!
      // The server learns that a client left when it sees the connection close, some time after the client
      // closed it: until then the hub still records, and the next connection gets a replay. Try again until the
      // hub had stopped.
      const deadline = Date.now() + 5000
      for (;;) {
        yield* stream.disconnect
        yield* Effect.sleep("20 millis")
        yield* Effect.flatMap(ctx.track(Effect.void), (task) => task.await)
        stream = yield* openStream(client, "/events", { ...auth, "last-event-id": String(lastId) })
        const message = yield* nextMessage(stream)
        if (message.event === "snapshot") {
          assert.isTrue(message.data.gap)
          assert.isAbove(message.id!, lastId, "the unrecorded time has an id of its own")
          break
        }
        assert.isBelow(Date.now(), deadline, "the hub never stopped recording")
        lastId = (yield* takeUntil(stream, isWorker("Idle"))).pop()!.id!
      }
    }).pipe(quiet))

  it.scopedLive("ends the stream after Stopped, with the last interval's stats just before it", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("stopped")
      const { client } = yield* serveRouter(ctx, eventsRoutes())
      yield* ctx.start
      const stream = yield* openStream(client, "/events")
      yield* nextMessage(stream)
      const task = yield* ctx.track(Effect.void)
      yield* task.await
      yield* ctx.stop
      const messages = yield* takeUntil(stream, isWorker("Stopped"))
      assert.deepStrictEqual(messages.map((m) => m.event === "worker" ? m.data._tag : m.event), [
        "TaskStarted",
        "TaskFinished",
        "Idle",
        "Stopping",
        "stats",
        "Stopped"
      ])
      const stats = messages[4]!.data
      assert.deepInclude(stats, { state: "Stopped", taskCount: 0, started: 1, succeeded: 1, failed: 0, interrupted: 0 })
      assert.deepStrictEqual(messages[5]!.data, { _tag: "Stopped", worker: ctx.name, interrupted: 0 })
      assert.strictEqual(yield* next(stream), End)

      // A client that comes later gets the snapshot of a stopped worker, and the end.
      const late = yield* openStream(client, "/events")
      const snapshot = yield* nextMessage(late)
      assert.deepInclude(snapshot.data, { state: "Stopped", shuttingDown: true, gap: false })
      assert.strictEqual(yield* next(late), End)
    }).pipe(quiet))

  it.scopedLive("ends the stream when the server closes, after showing the drain", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("close")
      const served = yield* serveRouter(ctx, eventsRoutes())
      yield* ctx.start
      const stream = yield* openStream(served.client, "/events")
      yield* nextMessage(stream)
      const closing = yield* Effect.fork(served.close)
      const messages = yield* takeUntil(stream, isWorker("Stopped"))
      assert.deepStrictEqual(messages.map((m) => m.data._tag ?? m.event), ["Stopping", "stats", "Stopped"])
      assert.strictEqual(yield* next(stream), End)
      yield* Fiber.join(closing).pipe(within("the server to close"))
    }).pipe(quiet))
})

// --- a client that stops reading -------------------------------------------------------------------------------------

/**
 * A raw HTTP/1.0 request for `/events` on a socket that, once the response has begun, reads nothing more until
 * `resume`: the server's writes back up through the socket buffers to the response. HTTP/1.0, so the body comes
 * as it is written (no chunked framing) and ends when the connection does.
 */
const stalledClient = (port: number) =>
  Effect.gen(function*() {
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => Net.connect({ port, host: "127.0.0.1" })),
      (socket) => Effect.sync(() => socket.destroy())
    )
    const ended = yield* Deferred.make<string>()
    const begun = yield* Deferred.make<void>()
    const chunks: Array<Buffer> = []
    socket.write(`GET /events HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`)
    // A `readable` listener puts the socket in paused mode: nothing is consumed until `read()`, so the socket
    // stops reading from the kernel once its own buffer is full.
    socket.once("readable", () => Deferred.unsafeDone(begun, Effect.void))
    yield* Deferred.await(begun).pipe(within("the stalled client's response to begin"))
    return {
      /** Reads everything from now on; completes `body` with the response body once the server ends it. */
      resume: Effect.sync(() => {
        socket.on("data", (chunk: Buffer) => chunks.push(chunk))
        socket.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          Deferred.unsafeDone(ended, Effect.succeed(text.slice(text.indexOf("\r\n\r\n") + 4)))
        })
        socket.resume()
      }),
      body: Deferred.await(ended)
    }
  })

describe("GET /events with a client that stops reading", () => {
  it.scopedLive(
    "neither slows the worker nor holds back other clients, and tells the slow one what it dropped",
    () =>
      Effect.gen(function*() {
        const ctx = yield* makeWorker("slow", { eventBufferSize: 4096 })
        const { client, port } = yield* serveRouter(
          ctx,
          eventsRoutes({ clientBuffer: 8, statsInterval: "100 millis", flushInterval: 0 })
        )
        yield* ctx.start
        const fast = yield* openStream(client, "/events")
        yield* nextMessage(fast)

        /** Runs `tasks` trivial tasks at once; returns how long the worker took and what the stats counted. */
        const burst = (tasks: number) =>
          Effect.gen(function*() {
            const started = Date.now()
            const handles = []
            for (let i = 0; i < tasks; i++) handles.push(yield* ctx.track(Effect.yieldNow()))
            for (const handle of handles) yield* handle.await.pipe(within("the tasks"))
            const took = Date.now() - started
            assert.strictEqual(yield* ctx.taskCount, 0)
            const counted = { started: 0, succeeded: 0, failed: 0, interrupted: 0 }
            while (counted.succeeded < tasks) {
              const message = yield* nextMessage(fast)
              if (message.event !== "stats") continue
              for (const key of Object.keys(counted) as Array<keyof typeof counted>) counted[key] += message.data[key]
            }
            assert.deepStrictEqual(counted, { started: tasks, succeeded: tasks, failed: 0, interrupted: 0 })
            return took
          })
        const tasks = 2000
        const alone = yield* burst(tasks)

        const slow = yield* stalledClient(port)
        // Far more than the socket buffers between the server and the stalled client can hold, one at a time: the
        // fast client gets each one while the slow one is stuck.
        const big = "x".repeat(1 << 20)
        for (let i = 0; i < 40; i++) {
          yield* ctx.emit(WorkerEvent.Custom({ worker: ctx.name, value: { i, big } }))
          const message = yield* takeUntil(fast, (m) => m.event !== "stats")
          assert.strictEqual(message[message.length - 1]!.data.value.i, i)
        }

        // The same burst with the slow client stuck: the same counts, and no slower than measurement noise allows.
        const withSlow = yield* burst(tasks)
        assert.isBelow(
          withSlow,
          4 * alone + 1000,
          `${tasks} tasks took ${withSlow} ms, ${alone} ms without the slow client`
        )

        // The slow client catches up: what its buffer held, then where it lost messages, then the rest.
        yield* slow.resume
        yield* ctx.stop
        const body = yield* slow.body.pipe(within("the stalled client's stream to end"))
        const received = splitBlocks(body).blocks.map(parseBlock).filter((m) => m.comment === undefined)
        assertFramed(received)
        assertIncreasing(received)
        assert.strictEqual(received[0]!.event, "snapshot")
        const dropped = received.filter((m) => m.event === "dropped")
        assert.isAbove(dropped.length, 0, "the slow client was told it dropped messages")
        assert.deepStrictEqual(received.slice(-2).map((m) => m.event), ["stats", "worker"])
        assert.strictEqual(received[received.length - 1]!.data._tag, "Stopped")
        // Every id after the snapshot is either delivered or inside a `dropped` range.
        const ids = new Set<number>()
        for (const message of received.slice(1)) {
          if (message.event === "dropped") {
            const { count, from, to } = message.data
            assert.strictEqual(message.id, to)
            assert.strictEqual(count, to - from + 1, JSON.stringify(message))
            for (let id = from; id <= to; id++) ids.add(id)
          } else {
            ids.add(message.id!)
          }
        }
        const first = received[0]!.id! + 1
        const last = received[received.length - 1]!.id!
        assert.strictEqual(ids.size, last - first + 1)
      }).pipe(quiet),
    60_000
  )
})

// --- the guard --------------------------------------------------------------------------------------------------------

describe("WorkerHttp.routes guard", () => {
  const open = ["/health/live", "/health/ready", "/worker", "/jobs/stats"]
  const guarded: ReadonlyArray<readonly ["GET" | "POST", string]> = [
    ["POST", "/worker/start"],
    ["POST", "/worker/pause"],
    ["POST", "/worker/resume"],
    ["POST", "/worker/stop"],
    ["POST", "/jobs/dead/1/redrive"],
    ["POST", "/jobs/queues/emails/pause"],
    ["POST", "/jobs/queues/emails/resume"],
    ["GET", "/events"],
    // It carries payloads and errors, as `/events` does.
    ["GET", "/jobs/dead"]
  ]

  it.scopedLive("answers 401 without the bearer token or with a wrong one, and lets the right one through", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("guard")
      const { client } = yield* serveRouter(ctx, eventsRoutes(), yield* MemoryJobStore.make())
      for (const [method, path] of guarded) {
        for (
          const [headers, challenge] of [
            [{}, "Bearer"],
            [{ authorization: "Basic dXNlcjpwYXNz" }, "Bearer"],
            [{ authorization: "Bearer wrong" }, "Bearer error=\"invalid_token\""],
            [{ authorization: `Bearer ${TOKEN}x` }, "Bearer error=\"invalid_token\""]
          ] as const
        ) {
          const answer = yield* call(client, method, path, headers)
          assert.strictEqual(answer.status, 401, `${method} ${path} ${JSON.stringify(headers)}`)
          assert.strictEqual(answer.headers["www-authenticate"], challenge)
          assert.include(answer.headers["content-type"], "application/json")
          const body = JSON.parse(answer.text)
          assert.strictEqual(body.error, "Unauthorized")
          assert.isString(body.message)
        }
      }
      assert.strictEqual(yield* ctx.state, "Pending", "no refused request reached the worker")
      // A token in the query string is not a token.
      assert.strictEqual((yield* call(client, "GET", `/events?access_token=${TOKEN}`)).status, 401)

      for (const path of open) {
        const answer = yield* call(client, "GET", path)
        assert.oneOf(answer.status, [200, 503], `${path} is open: ${answer.text}`)
      }
      assert.strictEqual((yield* call(client, "POST", "/worker/start", auth)).status, 200)
      assert.strictEqual(yield* ctx.state, "Running")
      assert.strictEqual(
        (yield* call(client, "POST", "/worker/pause", { authorization: `bearer  ${TOKEN}` })).status,
        200
      )
      assert.strictEqual((yield* call(client, "POST", "/jobs/dead/1/redrive", auth)).status, 404)
      const stream = yield* openStream(client, "/events")
      assert.strictEqual(stream.status, 200)
    }).pipe(quiet))

  it.scopedLive("accepts any of several tokens, and a guard of your own", () =>
    Effect.gen(function*() {
      const rotating = WorkerHttp.bearerToken([Redacted.make("old"), Redacted.make("new")])
      const ctx = yield* makeWorker("rotate")
      const { client } = yield* serveRouter(ctx, WorkerHttp.routes({ guard: rotating, jobs: true }))
      assert.strictEqual((yield* call(client, "POST", "/worker/start", { authorization: "Bearer old" })).status, 200)
      assert.strictEqual((yield* call(client, "POST", "/worker/pause", { authorization: "Bearer new" })).status, 200)
      assert.strictEqual((yield* call(client, "POST", "/worker/resume", { authorization: "Bearer other" })).status, 401)

      const own: WorkerHttp.Guard = Effect.fail(
        new WorkerHttp.Unauthorized({ message: "log in first", challenge: "Basic realm=\"ops\"" })
      )
      const ctx2 = yield* makeWorker("own")
      const served = yield* serveRouter(ctx2, WorkerHttp.routes({ guard: own, guardDashboard: true }))
      for (const path of ["/dashboard", "/dashboard/app.js", "/dashboard/app.css", "/events"]) {
        const answer = yield* call(served.client, "GET", path)
        assert.strictEqual(answer.status, 401, path)
        assert.strictEqual(answer.headers["www-authenticate"], "Basic realm=\"ops\"")
        assert.deepStrictEqual(JSON.parse(answer.text), { error: "Unauthorized", message: "log in first" })
      }
      assert.strictEqual((yield* call(served.client, "GET", "/worker")).status, 200)
      // Without `jobs`, the store's routes are not there.
      assert.strictEqual((yield* call(served.client, "GET", "/jobs/stats")).status, 404)
    }).pipe(quiet))

  it("refuses a missing guard, an empty token and options that make no sense", () => {
    assert.throws(() => WorkerHttp.routes({} as any), /guard is required/)
    assert.throws(() => WorkerHttp.bearerToken(Redacted.make("")), /non-empty/)
    assert.throws(() => WorkerHttp.bearerToken([]), /at least one token/)
    assert.throws(() => WorkerHttp.routes({ guard, events: { heartbeat: 0 } }), /events\.heartbeat/)
    assert.throws(() => WorkerHttp.routes({ guard, events: { statsInterval: "forever" as any } }), /statsInterval/)
    assert.throws(() => WorkerHttp.routes({ guard, events: { replay: 0 } }), /events\.replay/)
    assert.throws(() => WorkerHttp.routes({ guard, events: { clientBuffer: 1.5 } }), /events\.clientBuffer/)
    assert.throws(() => WorkerHttp.routes({ guard, events: { linger: -1 } }), /events\.linger/)
    assert.throws(() => WorkerHttp.routes({ guard, events: { maxStreams: 0 } }), /events\.maxStreams/)
    assert.throws(() => WorkerHttp.routes({ guard, events: { requestEvents: "yes" as any } }), /events\.requestEvents/)
    assert.throws(() => WorkerHttp.routes({ guard, maxBodySize: 0 }), /maxBodySize/)
    assert.throws(() => WorkerHttp.routes({ guard, allowedHosts: ["http://x/"] }), /allowedHosts/)
    assert.doesNotThrow(() => WorkerHttp.routes({ guard, events: { linger: 0 } }))
  })
})

// --- the dashboard page -----------------------------------------------------------------------------------------------

describe("GET /dashboard", () => {
  const csp = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

  it.scopedLive("serves the page with a strict policy, and its relative URLs work under a mount prefix", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("page")
      const mounted = HttpRouter.empty.pipe(HttpRouter.mount("/ops", eventsRoutes()))
      const { client } = yield* serveRouter(ctx, mounted, yield* MemoryJobStore.make())
      const page = yield* call(client, "GET", "/ops/dashboard")
      assert.strictEqual(page.status, 200)
      assert.strictEqual(page.headers["content-type"], "text/html; charset=utf-8")
      assert.strictEqual(page.headers["cache-control"], "no-store")
      assert.strictEqual(page.headers["content-security-policy"], csp)
      assert.strictEqual(page.headers["x-content-type-options"], "nosniff")
      assert.match(page.text, /^<!doctype html>/)
      assert.match(page.text, /<title>[^<]+<\/title>/)
      assert.match(page.text, /<main>/)
      assert.notMatch(page.text, /<script>|<style>|\sstyle=|\son[a-z]+=/, "nothing inline: the policy would block it")

      // Every URL the page and its script use, resolved as a browser would against /ops/dashboard.
      const base = new URL("http://host/ops/dashboard")
      // A `data:` URL (the page's empty icon, which spares the browser a request for /favicon.ico) is no request.
      const links = Array.from(page.text.matchAll(/(?:href|src)="([^"]+)"/g), (m) => m[1]!)
        .filter((link) => !link.startsWith("data:"))
      // The job browser's raw JSON link is the store's route, under the same prefix.
      assert.deepStrictEqual(links.map((link) => new URL(link, base).pathname).sort(), [
        "/ops/dashboard/app.css",
        "/ops/dashboard/app.js",
        "/ops/jobs"
      ])
      assert.isTrue(links.every((link) => !link.startsWith("/") && !link.includes("//")), "relative links only")
      const script = yield* call(client, "GET", "/ops/dashboard/app.js")
      assert.strictEqual(script.status, 200)
      assert.strictEqual(script.headers["content-type"], "text/javascript; charset=utf-8")
      const style = yield* call(client, "GET", "/ops/dashboard/app.css")
      assert.strictEqual(style.status, 200)
      assert.strictEqual(style.headers["content-type"], "text/css; charset=utf-8")
      const fetched = Array.from(script.text.matchAll(/fetch\("([^"]+)"/g), (m) => m[1]!)
      assert.include(fetched, "events")
      assert.isTrue(fetched.every((path) => !path.startsWith("/") && !path.includes("//")), fetched.join(", "))
      const events = yield* openStream(client, new URL("events", base).pathname)
      assert.strictEqual(events.status, 200)
      assert.strictEqual((yield* nextMessage(events)).event, "snapshot")
    }).pipe(quiet))

  it.scopedLive("redirects /dashboard/ to ../dashboard, so that relative URLs resolve the same", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("slash")
      const mounted = HttpRouter.empty.pipe(HttpRouter.mount("/ops", eventsRoutes()))
      const { client } = yield* serveRouter(ctx, mounted)
      const answer = yield* call(HttpClient.followRedirects(client, 0), "GET", "/ops/dashboard/")
      assert.strictEqual(answer.status, 301)
      assert.strictEqual(answer.headers["location"], "../dashboard")
      assert.strictEqual(new URL("../dashboard", "http://host/ops/dashboard/").pathname, "/ops/dashboard")
    }).pipe(quiet))

  it.scopedLive("is left out with dashboard: false, and GET /events stays", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("no-page")
      const { client } = yield* serveRouter(ctx, WorkerHttp.routes({ guard, dashboard: false }))
      assert.strictEqual((yield* call(client, "GET", "/dashboard")).status, 404)
      const events = yield* openStream(client, "/events")
      assert.strictEqual(events.status, 200)
      assert.isTrue(Option.isSome(Option.some(events)))
    }).pipe(quiet))
})

// --- the hub itself, by the test clock ---------------------------------------------------------------------------------

describe("the event hub, by the test clock", () => {
  const options: WorkerEvents.ResolvedEventsOptions = {
    heartbeat: Duration.seconds(15),
    statsInterval: Duration.seconds(1),
    replay: 100,
    clientBuffer: 100,
    linger: Duration.zero,
    maxStreams: 10,
    flushInterval: Duration.zero,
    requestEvents: false
  }

  /** A client of `ctx`'s hub read into a queue of messages (heartbeats included), for the test's scope. */
  const attached = (ctx: WorkerContext.Service, requestEvents = false) =>
    Effect.gen(function*() {
      const hub = yield* WorkerEvents.makeHub(ctx, { ...options, requestEvents }, Option.none())
      const client = yield* Effect.acquireRelease(hub.attach(undefined), (c) => Effect.sync(() => hub.detach(c)))
      const messages = yield* Queue.unbounded<Sse>()
      let rest = ""
      yield* WorkerEvents.clientStream(client).pipe(
        Stream.decodeText(),
        Stream.runForEach((text) => {
          const split = splitBlocks(rest + text)
          rest = split.rest
          return Queue.offerAll(messages, split.blocks.map(parseBlock))
        }),
        Effect.forkScoped
      )
      const take = Queue.take(messages)
      assert.deepStrictEqual(yield* take, { comment: "connected" })
      assert.strictEqual((yield* take).event, "snapshot")
      return { take, messages }
    })

  it.scoped("counts the tasks that started and ended in each interval, over exactly that interval", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("clock")
      yield* ctx.start
      const { take } = yield* attached(ctx)
      for (let i = 0; i < 2; i++) yield* Effect.flatMap(ctx.track(Effect.void), (task) => task.await)
      const workerMessages = [yield* take, yield* take, yield* take, yield* take, yield* take, yield* take]
      assert.isTrue(workerMessages.every((m) => m.event === "worker"))
      yield* TestClock.adjust("1 second")
      const first = yield* take
      assert.strictEqual(first.event, "stats")
      assert.deepStrictEqual(first.data, {
        at: new Date(1000).toISOString(),
        intervalMs: 1000,
        state: "Running",
        taskCount: 0,
        inFlight: 0,
        started: 2,
        succeeded: 2,
        failed: 0,
        interrupted: 0,
        http: { started: 0, succeeded: 0, failed: 0, interrupted: 0 }
      })
      const gate = yield* Deferred.make<void>()
      const held = yield* ctx.track(Deferred.await(gate))
      yield* Effect.flatMap(ctx.track(Effect.fail("no")), (task) => task.await)
      yield* Effect.replicateEffect(take, 3)
      yield* TestClock.adjust("1 second")
      assert.deepInclude((yield* take).data, {
        intervalMs: 1000,
        taskCount: 1,
        started: 2,
        succeeded: 0,
        failed: 1,
        interrupted: 0
      })
      yield* held.interrupt
      yield* Effect.replicateEffect(take, 2)
      yield* TestClock.adjust("1 second")
      assert.deepInclude((yield* take).data, { started: 0, succeeded: 0, failed: 0, interrupted: 1 })
    }).pipe(quiet))

  for (const requestEvents of [false, true]) {
    it.scoped(
      `counts HTTP requests apart from the worker's tasks, leaves them out of inFlight, and sends each ${
        requestEvents ? "as events with requestEvents" : "as no event by default"
      }`,
      () =>
        Effect.gen(function*() {
          const ctx = yield* makeWorker("clock-http")
          yield* ctx.start
          const { take } = yield* attached(ctx, requestEvents)
          const gate = yield* Deferred.make<void>()
          const request = yield* ctx.track(Deferred.await(gate), { label: "http" })
          yield* Effect.flatMap(ctx.track(Effect.void, { label: "http" }), (task) => task.await)
          yield* Effect.flatMap(ctx.track(Effect.void, { label: "send-email" }), (task) => task.await)
          // The worker's events, in order, until the stats message.
          yield* TestClock.adjust("1 second")
          const events: Array<string> = []
          let stats = yield* take
          for (; stats.event === "worker"; stats = yield* take) {
            events.push(`${stats.data._tag} ${String(stats.data["label"])}`)
          }
          const requests = ["TaskStarted http", "TaskStarted http", "TaskFinished http"]
          assert.deepStrictEqual(events, [
            ...(requestEvents ? requests : []),
            "TaskStarted send-email",
            "TaskFinished send-email"
          ])
          assert.strictEqual(stats.event, "stats")
          assert.deepInclude(stats.data, {
            taskCount: 1,
            inFlight: 0,
            started: 1,
            succeeded: 1,
            http: { started: 2, succeeded: 1, failed: 0, interrupted: 0 }
          })
          yield* request.interrupt
        }).pipe(quiet)
    )
  }

  it.scoped("sends the first message after a quiet spell at once, then at most one write per flushInterval", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("clock-flush")
      const hub = yield* WorkerEvents.makeHub(ctx, { ...options, flushInterval: Duration.millis(100) }, Option.none())
      const client = yield* Effect.acquireRelease(hub.attach(undefined), (c) => Effect.sync(() => hub.detach(c)))
      const writes = yield* Queue.unbounded<string>()
      yield* WorkerEvents.clientStream(client).pipe(
        Stream.decodeText(),
        Stream.runForEach((text) => Queue.offer(writes, text)),
        Effect.forkScoped
      )
      const emit = (n: number) => ctx.emit(WorkerEvent.Custom({ worker: ctx.name, value: { n } }))
      const values = (text: string) =>
        splitBlocks(text).blocks.map(parseBlock).flatMap((m) => m.event === "worker" ? [m.data.value.n] : [])
      assert.include(yield* Queue.take(writes), "event: snapshot")
      yield* emit(1)
      assert.deepStrictEqual(values(yield* Queue.take(writes)), [1])
      // Within the interval: held back, then written together, in one write.
      yield* emit(2)
      yield* emit(3)
      yield* TestClock.adjust("99 millis")
      assert.strictEqual(yield* Queue.size(writes), 0)
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(values(yield* Queue.take(writes)), [2, 3])
    }).pipe(quiet))

  it.scoped("refuses a WorkerContext service built by hand, whose events it could not hear", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("clock-by-hand")
      const exit = yield* Effect.exit(WorkerEvents.makeHub({ ...ctx }, options, Option.none()))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Cause.squash(Exit.isFailure(exit) ? exit.cause : Cause.empty)), "not one built by hand")
    }).pipe(quiet))

  it.scoped("sends a heartbeat every heartbeat interval, messages or not", () =>
    Effect.gen(function*() {
      const ctx = yield* makeWorker("clock-heartbeat")
      const { take } = yield* attached(ctx)
      const seen: Array<Sse> = []
      for (let second = 1; second <= 31; second++) {
        yield* TestClock.adjust("1 second")
        for (;;) {
          const message = yield* take
          seen.push(message)
          if (message.event === "stats") break
        }
      }
      // The heartbeat and the stats are due at the same instant at seconds 15 and 30: either may come first.
      const beats = seen.flatMap((m, i) => m.comment === "heartbeat" ? [i] : [])
      assert.strictEqual(beats.length, 2, JSON.stringify(seen))
      const statsBefore = (i: number) => seen.slice(0, i).filter((m) => m.event === "stats").length
      assert.deepStrictEqual(beats.map(statsBefore).map((n) => n === 14 || n === 29 ? n + 1 : n), [15, 30])
    }).pipe(quiet))
})
