/**
 * Fault injection against the real server: backends stalled with `SIGSTOP` (a silent stall: no error, no reset,
 * nothing but silence), a table locked by another session, a server that went away. Each test stalls only the
 * backends of its own store (found by their `application_name`), and resumes them in a finalizer.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Either, Exit, Fiber, Layer, Queue, Redacted, Schema, Scope } from "effect"
import * as Net from "node:net"
import Pg from "pg"
import { Job, JobWorker, WorkerContext } from "../src/index.js"
import * as JobStore from "../src/JobStore.js"
import { JobStoreError, Outcome } from "../src/JobStore.js"
import * as PgJobStore from "../src/PgJobStore.js"
import { isReadinessChanged, type ReadinessChanged } from "../src/WorkerEvent.js"
import {
  claimRequest,
  clientLayer,
  databaseUrl,
  newJob,
  query,
  scopedPgServer,
  testStore,
  uniqueName,
  waitFor
} from "./pgTestStore.js"

/** A `PgClient` for the test's scope, whose connections, and the store's own, carry a name of the test's own. */
const namedClient = Effect.gen(function*() {
  const name = uniqueName("faults")
  const layer = yield* Layer.build(
    PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 4, applicationName: name })
  )
  return { name, layer }
})

/**
 * Another session that holds `LOCK TABLE <schema>.jobs IN ACCESS EXCLUSIVE MODE` in an open transaction until it
 * commits (`locker.query("COMMIT")`) or the scope closes.
 */
const lockJobs = (schema: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const locker = new Pg.Client({ connectionString: databaseUrl })
      await locker.connect()
      await locker.query(`BEGIN; LOCK TABLE ${schema}.jobs IN ACCESS EXCLUSIVE MODE`)
      return locker
    }),
    (locker) => Effect.promise(() => locker.end())
  )

/**
 * The backends of the store's own connections once there are `n` of them (any number above zero when `n` is not
 * given), every one idle: the one a call used and the spare the store keeps open beside it, say. A spare still
 * connecting would not be idle in the store's pool yet, and a call made then would open a connection of its own,
 * unstalled.
 */
const backendsOnceThere = (name: string, n?: number) =>
  Effect.map(
    waitFor(idleBackends(name), (backends) =>
      (n === undefined ? backends.length > 0 : backends.length === n) &&
      backends.every((backend) => backend.idle)),
    (backends) => backends.map((backend) => backend.pid)
  )

/** The store's own backends, and whether each is idle. */
const idleBackends = (name: string) =>
  Effect.promise(() =>
    query<{ pid: number; idle: boolean }>(
      `SELECT pid, state = 'idle' AS idle FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid`,
      [`${name} (store)`]
    )
  )

/** Stops these backends (`SIGSTOP`) until the scope closes (`SIGCONT`). */
const stall = (pids: ReadonlyArray<number>) =>
  Effect.acquireRelease(
    Effect.sync(() => pids.forEach((pid) => process.kill(pid, "SIGSTOP"))),
    () =>
      Effect.sync(() =>
        pids.forEach((pid) => {
          try {
            process.kill(pid, "SIGCONT")
          } catch {
            // gone already
          }
        })
      )
  )

describe("PgJobStore under faults", () => {
  it.scopedLive(
    "an interrupted call destroys its connection: the next call runs on a fresh one while the old backend is stopped",
    () =>
      Effect.gen(function*() {
        const { layer, name } = yield* namedClient
        const store = yield* testStore({ listen: false }).pipe(Effect.provide(layer))
        yield* store.enqueue([newJob()])
        yield* store.stats
        // The connection the call used, and the spare opened beside it: both stopped.
        const stalled = yield* backendsOnceThere(name, 2)
        yield* stall(stalled)
        // The engine's deadline, shortened: the claim gets no answer and is interrupted.
        const cut = yield* Effect.exit(Effect.timeout(store.claim(claimRequest()), "300 millis"))
        assert.isTrue(Exit.isFailure(cut), "the stalled claim did not answer")
        // The backend is still stopped: whatever answers now answers on another connection.
        const { jobs } = yield* store.claim(claimRequest())
        assert.strictEqual(jobs.length, 1)
        assert.deepStrictEqual(
          yield* store.settle([{ lease: jobs[0]!.lease, outcome: Outcome.Completed() }]),
          [true]
        )
      }),
    30_000
  )

  it.scopedLive(
    "a call that gets no answer fails at callTimeout, and the next one succeeds on a fresh connection",
    () =>
      Effect.gen(function*() {
        const { layer, name } = yield* namedClient
        // 3 s, not less: the follow-up call connects afresh within the same deadline, and the shared test server
        // may be busy with another file's million-row inserts meanwhile (1 s was once too short for that).
        const store = yield* testStore({ listen: false, callTimeout: "3 seconds" }).pipe(Effect.provide(layer))
        yield* store.stats
        yield* stall(yield* backendsOnceThere(name, 2))
        const error = yield* Effect.flip(store.stats)
        assert.instanceOf(error, JobStoreError)
        assert.strictEqual(error.operation, "stats")
        assert.strictEqual(error.reason, "no answer within 3000 ms; the connection was closed")
        assert.deepStrictEqual((yield* store.stats).ready, 0)
      }),
    30_000
  )

  it.scopedLive(
    "however many idle connections stalled, one interrupted call is enough to get a fresh one",
    () =>
      Effect.gen(function*() {
        const { layer, name } = yield* namedClient
        const store = yield* testStore({ listen: false, maxConnections: 4 }).pipe(Effect.provide(layer))
        yield* store.enqueue([newJob()])
        // Four connections at once, all idle afterwards, all stopped.
        yield* Effect.all(Array.from({ length: 4 }, () => store.stats), { concurrency: "unbounded" })
        yield* stall(yield* backendsOnceThere(name, 4))
        assert.isTrue(Exit.isFailure(yield* Effect.exit(Effect.timeout(store.stats, "300 millis"))))
        const { jobs } = yield* store.claim(claimRequest())
        assert.strictEqual(jobs.length, 1)
      }),
    30_000
  )

  it.scopedLive(
    "batched settles whose callers all gave up interrupt their statement and its connection",
    () =>
      Effect.gen(function*() {
        const { layer, name } = yield* namedClient
        const store = yield* testStore({ listen: false, batchAcks: true }).pipe(Effect.provide(layer))
        yield* store.enqueue([newJob(), newJob()])
        const { jobs } = yield* store.claim(claimRequest())
        yield* stall(yield* backendsOnceThere(name, 2))
        const cut = yield* Effect.exit(
          Effect.timeout(store.settle([{ lease: jobs[0]!.lease, outcome: Outcome.Completed() }]), "300 millis")
        )
        assert.isTrue(Exit.isFailure(cut))
        assert.deepStrictEqual(
          yield* store.settle([{ lease: jobs[1]!.lease, outcome: Outcome.Completed() }]),
          [true],
          "the next batch went out on a fresh connection"
        )
      }),
    30_000
  )

  it.scopedLive(
    "a table locked by another session makes every worker call fail within its deadline, not hang",
    () =>
      Effect.gen(function*() {
        const { layer } = yield* namedClient
        const schema = uniqueName("t")
        const store = yield* testStore({ schema, listen: false, callTimeout: "2 seconds", maxConnections: 5 }).pipe(
          Effect.provide(layer)
        )
        yield* store.enqueue([newJob(), newJob()])
        const { jobs } = yield* store.claim(claimRequest({ limit: 1 }))
        const locker = yield* lockJobs(schema)
        const errors = yield* Effect.all([
          Effect.flip(store.claim(claimRequest())),
          Effect.flip(store.renew([jobs[0]!.lease], Duration.seconds(30))),
          Effect.flip(store.settle([{ lease: jobs[0]!.lease, outcome: Outcome.Completed() }])),
          Effect.flip(store.reap),
          Effect.flip(store.stats)
        ], { concurrency: "unbounded" })
        for (const error of errors) {
          assert.instanceOf(error, JobStoreError)
          assert.match(error.reason, /^another session holds a lock on the store's tables \(lock_timeout\)/)
        }
        yield* Effect.promise(() => locker.query("COMMIT"))
        assert.deepStrictEqual(
          yield* store.settle([{ lease: jobs[0]!.lease, outcome: Outcome.Completed() }]),
          [true],
          "the lock is gone: the lease still holds"
        )
      }),
    30_000
  )

  it.scopedLive(
    "an enqueue cut off by the caller's statement_timeout says so, not that a connection timed out",
    () =>
      Effect.gen(function*() {
        const { layer } = yield* namedClient
        const schema = uniqueName("t")
        const store = yield* testStore({ schema, listen: false }).pipe(Effect.provide(layer))
        yield* lockJobs(schema)
        // The enqueue joins the caller's transaction, and so its statement_timeout.
        const error = yield* Effect.flip(
          Effect.flatMap(PgClient.PgClient, (sql) =>
            sql.withTransaction(
              Effect.zipRight(sql.unsafe(`SET LOCAL statement_timeout = '200ms'`), store.enqueue([newJob()]))
            )).pipe(Effect.provide(layer))
        )
        assert.instanceOf(error, JobStoreError)
        assert.strictEqual(
          (error as JobStoreError).reason,
          "the statement ran past its deadline (statement_timeout): canceling statement due to statement timeout"
        )
      }),
    30_000
  )

  it.scopedLive(
    "a call whose backend an administrator terminates says so, and the next call runs on a new connection",
    () =>
      Effect.gen(function*() {
        const { layer } = yield* namedClient
        const schema = uniqueName("t")
        const store = yield* testStore({ schema, listen: false, callTimeout: "10 seconds" }).pipe(
          Effect.provide(layer)
        )
        yield* store.enqueue([newJob()])
        // A lock held elsewhere keeps the claim waiting in its backend, long enough to terminate that backend.
        const locker = yield* lockJobs(schema)
        const claim = yield* Effect.fork(Effect.flip(store.claim(claimRequest())))
        const waiting = () =>
          query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%${schema}%'`
          )
        const [backend] = yield* waitFor(Effect.promise(waiting), (rows) => rows.length > 0)
        yield* Effect.promise(() => query(`SELECT pg_terminate_backend($1)`, [backend!.pid]))
        const error = yield* Fiber.join(claim)
        assert.instanceOf(error, JobStoreError)
        assert.match(error.reason, /^the connection was terminated by an administrator \(pg_terminate_backend\)/)
        yield* Effect.promise(() => locker.query("COMMIT"))
        assert.strictEqual((yield* store.claim(claimRequest())).jobs.length, 1)
      }),
    30_000
  )

  it.scopedLive("closing the store does not wait for a hung call", () =>
    Effect.gen(function*() {
      const { layer, name } = yield* namedClient
      const scope = yield* Scope.make()
      const store = yield* testStore({ listen: false }).pipe(Effect.provide(layer), Scope.extend(scope))
      yield* store.stats
      // Every connection the store holds, once all are idle, is stopped: the claim gets a stalled one. A spare still
      // connecting when the backends were counted is not stopped, and a claim that got it ends at once: then the
      // backends are counted and stopped again, and another claim is made.
      let hung: Fiber.RuntimeFiber<unknown, unknown> | undefined
      const stalled = new Set<number>()
      while (hung === undefined) {
        const pids = (yield* backendsOnceThere(name)).filter((pid) => !stalled.has(pid))
        yield* stall(pids)
        pids.forEach((pid) => stalled.add(pid))
        const claim = yield* Effect.fork(store.claim(claimRequest()))
        // Once the claim waits on a stopped backend (its fiber suspended), nothing but the close can end it.
        const status = yield* waitFor(Fiber.status(claim), (s) => s._tag === "Suspended" || s._tag === "Done")
        if (status._tag === "Suspended") hung = claim
      }
      yield* Scope.close(scope, Exit.void)
      // Closed while the backend is still stopped; the hung call ended with it.
      const exit = yield* Fiber.await(hung)
      assert.isTrue(Exit.isFailure(exit))
    }), 30_000)

  it.scopedLive(
    "closing the store does not wait for the spare connection it is opening, however long that hangs",
    () =>
      Effect.gen(function*() {
        // A proxy in front of the server that, once told to, takes new connections and never answers them: a spare
        // the store opens then hangs in its connect (for the minute of `connectTimeout`). A held connection's bytes
        // are read and dropped, so that it is seen to close when its client gives up on it.
        const target = new URL(databaseUrl)
        let hold = false
        const sockets = new Set<Net.Socket>()
        /** The connections taken while holding, still open. */
        const held = new Set<Net.Socket>()
        const proxy = Net.createServer((socket) => {
          sockets.add(socket)
          socket.on("error", () => {})
          socket.on("close", () => {
            sockets.delete(socket)
            held.delete(socket)
          })
          if (hold) {
            held.add(socket)
            socket.resume()
            return
          }
          const upstream = Net.connect(Number(target.port), target.hostname)
          upstream.on("error", () => socket.destroy())
          socket.on("close", () => upstream.destroy())
          upstream.on("close", () => socket.destroy())
          socket.pipe(upstream).pipe(socket)
        })
        yield* Effect.acquireRelease(
          Effect.async<void>((resume) => void proxy.listen(0, "127.0.0.1", () => resume(Effect.void))),
          () =>
            Effect.sync(() => {
              for (const socket of sockets) socket.destroy()
              proxy.close()
            })
        )
        const url = new URL(databaseUrl)
        url.host = `127.0.0.1:${(proxy.address() as Net.AddressInfo).port}`
        const name = uniqueName("faults")
        const client = yield* Layer.build(PgClient.layer({
          url: Redacted.make(url.toString()),
          applicationName: name,
          connectTimeout: Duration.minutes(1)
        }))
        // The schema is dropped past the proxy. Through it, the drop would hang when the client's pool had closed its
        // idle connection (after 10 s: a call that hung to its deadline is enough), and opened one to drop it.
        const schema = uniqueName("t")
        yield* Effect.addFinalizer(() => Effect.promise(() => query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)))
        const scope = yield* Scope.make()
        // A call's deadline (and the spare's) of 10 s: closing must not wait for it, and takes less than 5.
        const store = yield* PgJobStore.make({ schema, listen: false, callTimeout: "10 seconds" }).pipe(
          Effect.provide(client),
          Scope.extend(scope)
        )
        // The first call opens a connection, and a spare beside it: two idle ones.
        yield* store.stats
        yield* backendsOnceThere(name, 2)
        hold = true
        // Two calls at once take both: the store opens a spare, which hangs. On a busy machine the first may end
        // before the second takes its connection, and no spare is needed; or the spare was idle on the server but
        // not yet in the store's pool, and a call opened a connection of its own, which hung to the call's deadline.
        // Two more, until both calls answered and a held connection is open: then it is the spare, opening.
        const stats = Effect.either(store.stats)
        yield* waitFor(
          Effect.map(
            Effect.all([stats, stats], { concurrency: "unbounded" }),
            (answers) => answers.every(Either.isRight) && held.size > 0
          ),
          (spareOpening) => spareOpening
        )
        // Closing runs uninterruptibly: it is awaited, so that a close that hangs fails the test here.
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        const closed = yield* Fiber.await(closing).pipe(Effect.timeoutOption("5 seconds"))
        assert.isTrue(closed._tag === "Some", "the store closed without waiting for the hanging spare")
      }),
    60_000
  )

  it.scopedLive(
    "wakeups returns after a bounded wait when the server is unreachable, and keeps trying",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const client = yield* Layer.build(PgClient.layer({ url: Redacted.make(server.url) }))
        const store = yield* Effect.provide(PgJobStore.make({ callTimeout: "1 second" }), client)
        yield* Effect.promise(() => server.stopServer())
        const received = yield* store.wakeups
        yield* Effect.promise(() => server.start())
        // The listening connection comes back by itself: a job enqueued once it has is heard.
        yield* waitFor(
          Effect.zipRight(
            Effect.ignore(store.enqueue([newJob({ queue: "after-restart" })])),
            Effect.map(Effect.timeoutOption(received.take, "200 millis"), (queue) => queue._tag === "Some")
          ),
          (heard) => heard
        )
      }),
    60_000
  )
})

/** A `ping` job: its handler reports its `n`. */
const Ping = Job.make("ping", { payload: Schema.Struct({ n: Schema.Number }), queue: "pings" })

/**
 * A job worker on a `PgJobStore` of its own (in a schema of the test's own), in a scope the test closes, with the
 * store's connections named after the test, and a producer's store (listening not) to enqueue with.
 */
const workerOnPg = (
  options: { readonly storeTimeout: Duration.DurationInput; readonly shutdownTimeout?: Duration.DurationInput }
) =>
  Effect.gen(function*() {
    const name = uniqueName("faults")
    const schema = uniqueName("t")
    const ran = yield* Queue.unbounded<number>()
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      JobWorker.layer({
        handlers: [Ping.handler(({ n }) => Queue.offer(ran, n))],
        pollInterval: "200 millis",
        lease: "30 seconds",
        storeTimeout: options.storeTimeout
      }).pipe(
        Layer.provideMerge(PgJobStore.layer({ schema, listen: false })),
        Layer.provideMerge(
          WorkerContext.layer({ name, shutdownTimeout: options.shutdownTimeout ?? Duration.seconds(3) })
        ),
        Layer.provide(PgClient.layer({ url: Redacted.make(databaseUrl), applicationName: name }))
      ),
      scope
    )
    const producer = yield* Layer.build(clientLayer())
    const store = yield* testStore({ schema, listen: false, migrate: false }).pipe(Effect.provide(producer))
    const ctx = Context.get(context, WorkerContext)
    // Every readiness flip of the job store's check, in order.
    const readiness = yield* Queue.unbounded<ReadinessChanged>()
    yield* ctx.listen((event) =>
      event._tag === "Custom" && isReadinessChanged(event.value) && event.value.check === "job store"
        ? Queue.offer(readiness, event.value)
        : Effect.void
    )
    // Closed before the test's schema is dropped (a test may close it earlier itself).
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const enqueue = (ns: ReadonlyArray<number>) =>
      store.enqueue(
        ns.map((n) => ({
          name: Ping.name,
          queue: Ping.queue,
          payload: { n },
          priority: 0,
          key: undefined,
          maxAttempts: 25
        }))
      )
    return { name, schema, ran, scope, ctx, readiness, enqueue }
  })

describe("JobWorker on PgJobStore under faults", () => {
  it.scopedLive(
    "shutdown ends within its grace while another session holds LOCK TABLE on the jobs",
    () =>
      Effect.gen(function*() {
        const w = yield* workerOnPg({ storeTimeout: "10 seconds", shutdownTimeout: "1 second" })
        yield* w.enqueue([0])
        assert.strictEqual(yield* Queue.take(w.ran), 0)
        yield* lockJobs(w.schema)
        const startedAt = Date.now()
        yield* Scope.close(w.scope, Exit.void)
        report(`shutdown under LOCK TABLE took ${Date.now() - startedAt} ms (shutdownTimeout 1 s)`)
        assert.strictEqual(yield* w.ctx.state, "Stopped")
      }),
    60_000
  )

  it.scopedLive(
    "keeps running while the database is down: readiness says why, and every job runs once it is back",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const ran = yield* Queue.unbounded<number>()
        const context = yield* Layer.build(
          JobWorker.layer({
            handlers: [Ping.handler(({ n }) => Queue.offer(ran, n))],
            pollInterval: "200 millis",
            lease: "5 seconds"
          }).pipe(
            Layer.provideMerge(PgJobStore.layer({ listen: false })),
            Layer.provideMerge(WorkerContext.layer({ name: "pg-outage" })),
            Layer.provide(PgClient.layer({ url: Redacted.make(server.url) }))
          )
        )
        const run = <A, E>(effect: Effect.Effect<A, E, WorkerContext | JobStore.JobStore>): Effect.Effect<A, E> =>
          Effect.provide(effect, context)
        const ctx = yield* run(WorkerContext)
        yield* run(Ping.enqueue({ n: 1 }))
        assert.strictEqual(yield* Queue.take(ran), 1)

        yield* Effect.promise(() => server.stopServer())
        // The first failure may be a connection the server ended as it stopped; then new ones are refused.
        const unready = yield* waitFor(
          ctx.readiness,
          (readiness) => readiness.unready.some(({ reason }) => reason.includes("connection refused"))
        )
        assert.strictEqual(unready.state, "Running")
        assert.deepStrictEqual(unready.unready.map(({ check }) => check), ["job store"])
        assert.match(unready.unready[0]!.reason, new RegExp(`connection refused to 127\\.0\\.0\\.1:${server.port}`))

        yield* Effect.promise(() => server.start())
        yield* run(Ping.enqueue({ n: 2 }))
        assert.strictEqual(yield* Queue.take(ran), 2)
        const ready = yield* waitFor(ctx.readiness, (readiness) => readiness.ready)
        assert.deepStrictEqual(ready.unready, [])
        assert.strictEqual(yield* ctx.state, "Running")
      }),
    60_000
  )
})

/** Measured numbers, for docs/postgres.md (tests assert no timing). */
const report = (text: string) => console.log(`[faults] ${text}`)
