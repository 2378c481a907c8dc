/**
 * Slow faults against the real server, with the whole engine (`JobWorker` on `PgJobStore`) in this process: every
 * connection of the worker stalled (its backends stopped with SIGSTOP, a silent stall no error reports), a
 * producer's transaction left open on a dedup hit of a running job, and clocks that are off. What is judged is what a
 * user sees: which handlers ran, how often, how long shutdown took, what readiness said, and where the store put a
 * job. Each test starts a throwaway server of its own, since it stops that server's processes.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import {
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Redacted,
  Schedule,
  Schema,
  Scope,
  Stream
} from "effect"
import { Job, JobStore, JobWorker, WorkerContext } from "../src/index.js"
import * as PgJobStore from "../src/PgJobStore.js"
import type { PgServer } from "./pgServer.js"
import { scopedPgServer, uniqueName } from "./pgTestStore.js"

const Ping = Job.make("ping", { payload: Schema.Struct({ n: Schema.Number }), queue: "faults", maxAttempts: 5 })

const client = (server: PgServer, applicationName: string) =>
  PgClient.layer({ url: Redacted.make(server.url), maxConnections: 4, applicationName })

/** Runs one statement on a connection of its own (never one the worker uses, never a stalled one). */
const query = (server: PgServer, text: string, params: ReadonlyArray<unknown> = []) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    return yield* sql.unsafe<Record<string, unknown>>(text, params as Array<unknown>)
  }).pipe(Effect.provide(client(server, "faults-test")), Effect.orDie)

/**
 * Stops (SIGSTOP) every backend of the store's own connections, the ones the worker claims, renews, settles and
 * listens on, and resumes them when the scope closes. The producers' connections (the `PgClient`'s) go on.
 */
const stallWorkerBackends = (server: PgServer) =>
  Effect.gen(function*() {
    const rows = yield* query(
      server,
      "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'worker-app (%' AND pid <> pg_backend_pid()"
    )
    const pids = rows.map((row) => Number(row.pid))
    assert.isAbove(pids.length, 0, "the store has connections of its own to stall")
    yield* Effect.acquireRelease(
      Effect.sync(() => pids.forEach((pid) => process.kill(pid, "SIGSTOP"))),
      () => Effect.sync(() => pids.forEach((pid) => process.kill(pid, "SIGCONT")))
    )
    return pids
  })

interface Running {
  readonly ctx: WorkerContext.Service
  readonly producer: JobStore.JobStore.Service
  readonly scope: Scope.CloseableScope
}

/**
 * A worker context, a store and a job worker on `server`, in a scope the test closes (or that closes with the
 * test), and a second store on another client for the producer: its `enqueue` runs on that client's connections.
 */
const startWorker = <R>(
  server: PgServer,
  schema: string,
  options: JobWorker.Options<R> & { readonly shutdownTimeout?: Duration.DurationInput }
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const storeLayer = PgJobStore.layer({ schema, callTimeout: "2 seconds" }).pipe(
      Layer.provide(client(server, "worker-app"))
    )
    const ctxLayer = WorkerContext.layer({
      name: "faults",
      shutdownTimeout: options.shutdownTimeout ?? "3 seconds",
      logLevel: "None"
    })
    const context = yield* Layer.buildWithScope(
      JobWorker.layer(options).pipe(Layer.provideMerge(Layer.merge(ctxLayer, storeLayer))),
      scope
    ).pipe(Effect.orDie)
    const ctx = Context.get(context, WorkerContext)
    const producerClient = yield* Layer.buildWithScope(client(server, "producer-app"), scope).pipe(Effect.orDie)
    const producer = yield* PgJobStore.make({ schema, listen: false }).pipe(
      Effect.provide(producerClient),
      Scope.extend(scope),
      Effect.orDie
    )
    return { ctx, producer, scope } satisfies Running
  })

const enqueue = (producer: JobStore.JobStore.Service, n: number, options?: Job.EnqueueOptions) =>
  Ping.enqueue({ n }, options).pipe(Effect.provideService(JobStore.JobStore, producer), Effect.orDie)

/** Runs `effect` every 50 ms until what it returns passes `test`, and returns that; fails with `what` after `within`. */
const pollUntil = <A, E>(
  effect: Effect.Effect<A, E>,
  test: (a: A) => boolean,
  within: Duration.DurationInput,
  what: string
) =>
  effect.pipe(
    Effect.filterOrFail(test, () => "not yet"),
    Effect.retry(Schedule.spaced("50 millis")),
    Effect.timeoutFail({ duration: within, onTimeout: () => what })
  )

/** Waits until `readiness` says the job store is not ready, and returns why; fails after `within`. */
const awaitUnready = (ctx: WorkerContext.Service, within: Duration.DurationInput) =>
  pollUntil(
    Effect.map(ctx.readiness, (readiness) => readiness.unready.find((check) => check.check === "job store")),
    (check) => check !== undefined,
    within,
    "readiness stayed green"
  ).pipe(Effect.map((check) => check!.reason))

describe("JobWorker on PostgreSQL under slow faults", () => {
  it.scopedLive(
    "runs jobs enqueued while every connection of the worker is stalled, and reports the store unready meanwhile",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const runs = new Map<number, number>()
        const allRan = yield* Deferred.make<void>()
        const total = 10
        const handler = Ping.handler(({ n }) =>
          Effect.sync(() => {
            runs.set(n, (runs.get(n) ?? 0) + 1)
            if (n > 0 && Array.from(runs.keys()).filter((k) => k > 0).length === total) {
              Deferred.unsafeDone(allRan, Exit.void)
            }
          })
        )
        const { ctx, producer } = yield* startWorker(server, uniqueName("stall"), {
          handlers: [handler],
          storeTimeout: "2 seconds",
          pollInterval: "500 millis",
          lease: "10 seconds"
        })
        // One job end to end, so the store's connections exist before they are stalled.
        yield* enqueue(producer, 0)
        yield* pollUntil(Effect.sync(() => runs.has(0)), (ran) => ran, "20 seconds", "the first job did not run")
        yield* stallWorkerBackends(server)
        const stalledAt = Date.now()
        for (let n = 1; n <= total; n++) yield* enqueue(producer, n)
        const reason = yield* awaitUnready(ctx, "10 seconds")
        assert.match(reason, /JobStore\.\w+/)
        yield* Deferred.await(allRan).pipe(
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the jobs did not run during the stall" })
        )
        const tookMs = Date.now() - stalledAt
        // Every job ran once, on fresh connections, while the stalled ones stay stopped.
        for (let n = 1; n <= total; n++) assert.strictEqual(runs.get(n), 1, `job ${n} ran once`)
        yield* Effect.logInfo(`stalled connections: ${total} jobs ran ${tookMs} ms after the stall began`)
      }),
    60_000
  )

  it.scopedLive(
    "shuts down within shutdownTimeout plus 5 s while every connection of the worker is stalled",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const started = yield* Deferred.make<void>()
        const handler = Ping.handler(() => Deferred.succeed(started, void 0))
        const { producer, scope } = yield* startWorker(server, uniqueName("stop"), {
          handlers: [handler],
          storeTimeout: "10 seconds",
          pollInterval: "500 millis",
          shutdownTimeout: "3 seconds"
        })
        yield* enqueue(producer, 1)
        yield* Deferred.await(started)
        yield* stallWorkerBackends(server)
        // Calls are now outstanding on stopped backends (the renewal, the poll's claim): shutdown must not wait
        // for their 10 s deadline, nor for ever.
        yield* enqueue(producer, 2)
        const begin = Date.now()
        yield* Scope.close(scope, Exit.void)
        const tookMs = Date.now() - begin
        assert.isBelow(tookMs, 8_000, `shutdown took ${tookMs} ms`)
      }),
    60_000
  )

  it.scopedLive(
    "a producer's open transaction on a running job's key blocks neither its renewals nor other jobs' settles",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const schema = uniqueName("locks")
        const runs = new Map<number, number>()
        const longStarted = yield* Deferred.make<void>()
        const finishLong = yield* Deferred.make<void>()
        const othersDone = yield* Deferred.make<void>()
        const others = 20
        const handler = Ping.handler(({ n }) =>
          Effect.gen(function*() {
            runs.set(n, (runs.get(n) ?? 0) + 1)
            if (n === 0) {
              yield* Deferred.succeed(longStarted, void 0)
              yield* Deferred.await(finishLong)
            } else if (Array.from(runs.keys()).filter((k) => k > 0).length === others) {
              yield* Deferred.succeed(othersDone, void 0)
            }
          })
        )
        const { ctx, producer } = yield* startWorker(server, schema, {
          handlers: [handler],
          lease: "2 seconds",
          pollInterval: "500 millis"
        })
        let leasesLost = 0
        const events = yield* ctx.subscribe
        yield* Effect.forkScoped(Stream.runForEach(Stream.fromQueue(events), (event) =>
          Effect.sync(() => {
            if (event._tag === "Custom" && (event.value as { readonly _tag?: string })._tag === "JobLeaseLost") {
              leasesLost++
            }
          })))
        const longId = yield* enqueue(producer, 0, { key: "long" })
        yield* Deferred.await(longStarted)
        // The producer's transaction enqueues a duplicate of the running job's key, and stays open.
        const inTransaction = yield* Deferred.make<string>()
        const commit = yield* Deferred.make<void>()
        const transaction = yield* Effect.gen(function*() {
          const sql = yield* PgClient.PgClient
          const store = yield* PgJobStore.make({ schema, listen: false })
          yield* sql.withTransaction(Effect.gen(function*() {
            const id = yield* enqueue(store, 99, { key: "long", keyMode: "skip" })
            yield* Deferred.succeed(inTransaction, id)
            yield* Deferred.await(commit)
          }))
        }).pipe(Effect.scoped, Effect.provide(client(server, "producer-tx")), Effect.orDie, Effect.fork)
        assert.strictEqual(yield* Deferred.await(inTransaction), longId, "the duplicate gets the running job's id")
        // Other jobs start, finish and are settled while the transaction is open.
        for (let n = 1; n <= others; n++) yield* enqueue(producer, n)
        yield* Deferred.await(othersDone).pipe(
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "other jobs did not finish" })
        )
        // Two lease periods with the transaction open: the running job must keep its lease all along.
        yield* Effect.sleep("4 seconds")
        yield* Deferred.succeed(finishLong, void 0)
        yield* pollUntil(
          query(server, `SELECT count(*)::int AS n FROM ${schema}.jobs WHERE id = $1`, [longId]),
          (rows) => rows[0]!.n === 0,
          "10 seconds",
          "the long job was not completed"
        )
        yield* Deferred.succeed(commit, void 0)
        yield* Fiber.join(transaction)
        assert.strictEqual(runs.get(0), 1, "the long job ran once")
        for (let n = 1; n <= others; n++) assert.strictEqual(runs.get(n), 1, `job ${n} ran once`)
        assert.strictEqual(leasesLost, 0, "no lease was lost")
      }),
    60_000
  )

  it.scopedLive(
    "retries by the database's clock when the worker's clock is an hour behind",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const schema = uniqueName("skew")
        const failed = yield* Deferred.make<void>()
        const Flaky = Job.make("flaky", {
          payload: Schema.Struct({ n: Schema.Number }),
          queue: "faults",
          retry: Schedule.spaced("10 minutes")
        })
        const handler = Flaky.handler(() => Effect.zipRight(Deferred.succeed(failed, void 0), Effect.fail("boom")))
        const behind = skewedClock(-60 * 60 * 1000)
        const { producer } = yield* startWorker(server, schema, { handlers: [handler], pollInterval: "200 millis" })
          .pipe(Effect.withClock(behind))
        yield* Flaky.enqueue({ n: 1 }).pipe(Effect.provideService(JobStore.JobStore, producer), Effect.orDie)
        yield* Deferred.await(failed)
        // Scheduled for the retry: not leased any more, its last error recorded.
        const rows = yield* pollUntil(
          query(
            server,
            `SELECT extract(epoch FROM run_at - ${schema}.clock())::float8 AS wait FROM ${schema}.jobs
           WHERE lease_token IS NULL AND last_error IS NOT NULL`
          ),
          (rows) => rows.length === 1,
          "10 seconds",
          "the retry was not scheduled"
        )
        const wait = Number(rows[0]!.wait)
        assert.isAbove(wait, 9 * 60, `the retry waits ${wait} s by the database's clock`)
        assert.isAtMost(wait, 10 * 60, `the retry waits ${wait} s by the database's clock`)
      }),
    60_000
  )

  it.scopedLive(
    "runs at once a job enqueued by a producer whose clock is 10 minutes ahead",
    () =>
      Effect.gen(function*() {
        const server = yield* scopedPgServer
        const ran = yield* Deferred.make<void>()
        const handler = Ping.handler(() => Deferred.succeed(ran, void 0))
        const { producer } = yield* startWorker(server, uniqueName("ahead"), {
          handlers: [handler],
          pollInterval: "200 millis"
        })
        yield* enqueue(producer, 1).pipe(Effect.withClock(skewedClock(10 * 60 * 1000)))
        yield* Deferred.await(ran).pipe(
          Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => "the job waited for the producer's clock" })
        )
      }),
    60_000
  )
})

/** The default clock, `offsetMs` off in what it tells the time is; its sleeps last as long as the real ones. */
const skewedClock = (offsetMs: number): Clock.Clock => {
  const real = Clock.make()
  return {
    ...real,
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => real.unsafeCurrentTimeMillis() + offsetMs,
    unsafeCurrentTimeNanos: () => real.unsafeCurrentTimeNanos() + BigInt(offsetMs) * BigInt(1_000_000),
    currentTimeMillis: Effect.sync(() => real.unsafeCurrentTimeMillis() + offsetMs),
    currentTimeNanos: Effect.sync(() => real.unsafeCurrentTimeNanos() + BigInt(offsetMs) * BigInt(1_000_000)),
    sleep: (duration) => real.sleep(duration)
  }
}
