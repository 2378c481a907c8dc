/**
 * The job store conformance suite: what every `JobStore` must do, tested only through the port, so that the memory
 * store and the PostgreSQL store run the same tests. A store's test file calls {@link jobStoreConformance} with
 * a layer that gives every test an empty store of its own, and with the store's clock.
 *
 * The tests pin instants to the millisecond ("not one tick before `runAt`, and at `runAt`"), so the store's clock
 * must stand still except when `advance` moves it: `TestClock` for the memory store; for a database, a clock the
 * tests can set (a `now()` the store reads from a table, say) rather than real time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Either, type Layer, Queue, type Scope, Stream } from "effect"
import {
  type ClaimedJob,
  type ClaimRequest,
  JobStore,
  type JobStoreError,
  LeaseLost,
  type NewJob,
  type QueueStats
} from "../src/JobStore.js"

/** The store's clock, as the suite sees it. */
export interface StoreClock {
  /** The store's current time, in milliseconds since the epoch. */
  readonly now: Effect.Effect<number, unknown>
  /** Moves the store's clock forward by `duration`: once it returns, the store judges time by the new instant. */
  readonly advance: (duration: Duration.Duration) => Effect.Effect<void, unknown>
}

/** The lease every test claims with, unless it says otherwise. */
export const LEASE = Duration.seconds(30)

/** The queue the wake-up probes go to (see {@link subscribeWakeups}): every test that reads wake-ups skips it. */
export const probeQueue = "wakeup-probe"

/**
 * Runs `store.wakeups` into a queue until the scope closes, and returns the queue once the subscription is live.
 * The stream subscribes when its fiber gets to run, and no store can say when that was; so a probe job is
 * enqueued, ready, into {@link probeQueue} until a probe's wake-up comes through. The loop waits for that
 * condition, yielding between tries, however many it takes; it does not count on a number of yields.
 */
export const subscribeWakeups = (
  store: JobStore.Service
): Effect.Effect<Queue.Dequeue<string>, JobStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const received = yield* Queue.unbounded<string>()
    yield* Effect.forkScoped(Stream.runForEach(store.wakeups, (queue) => Queue.offer(received, queue)))
    while (true) {
      yield* store.enqueue([newJob({ queue: probeQueue })])
      yield* Effect.yieldNow()
      if (Chunk.some(yield* Queue.takeAll(received), (queue) => queue === probeQueue)) return received
    }
  })

/**
 * Enqueues a ready job into the queue `marker` and returns the wake-ups received before the marker's, probes left
 * out: everything the operations before it woke.
 */
export const wakeupsBefore = (
  store: JobStore.Service,
  received: Queue.Dequeue<string>,
  marker: string
): Effect.Effect<ReadonlyArray<string>, JobStoreError> =>
  Effect.gen(function*() {
    yield* store.enqueue([newJob({ queue: marker })])
    const seen: Array<string> = []
    while (true) {
      const queue = yield* Queue.take(received)
      if (queue === marker) return seen
      if (queue !== probeQueue) seen.push(queue)
    }
  })

/**
 * Ids compared in shortlex order (shorter first, then character by character): the order of counters written in
 * decimal ("9" < "10") and of fixed-width ids (UUIDv7, zero-padded) alike.
 */
const compareIds = (a: string, b: string): number =>
  a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0

const zero: QueueStats = { ready: 0, scheduled: 0, leased: 0, dead: 0 }

/** A `send-email` job for the `emails` queue, ready at the epoch unless `fields` says otherwise. */
export const newJob = (fields?: Partial<NewJob>): NewJob => ({
  name: "send-email",
  queue: "emails",
  payload: {},
  runAt: new Date(0),
  priority: 0,
  key: undefined,
  maxAttempts: 5,
  ...fields
})

/** A claim of up to 10 `send-email` jobs of `emails` by `worker-a`, with the suite's lease. */
export const claimRequest = (fields?: Partial<ClaimRequest>): ClaimRequest => ({
  queues: ["emails"],
  names: ["send-email"],
  limit: 10,
  lease: LEASE,
  worker: "worker-a",
  ...fields
})

/** The operations of the port, with the defaults the tests use. */
const ops = (store: JobStore.Service, clock: StoreClock) => {
  const at = (offset: number) => Effect.map(clock.now, (now) => new Date(now + offset))
  const job = (runAt: Date, fields?: Partial<NewJob>): NewJob => newJob({ runAt, ...fields })
  const request = claimRequest
  return {
    at,
    job,
    request,
    /** Enqueues one job, ready now unless `fields` says otherwise, and returns its id. */
    enqueue: (fields?: Partial<NewJob>) =>
      Effect.flatMap(at(0), (now) => Effect.map(store.enqueue([job(now, fields)]), (ids) => ids[0]!)),
    claim: (fields?: Partial<ClaimRequest>) => store.claim(request(fields)),
    /** Claims exactly one job and returns it. */
    claimOne: (fields?: Partial<ClaimRequest>) =>
      Effect.map(store.claim(request({ limit: 1, ...fields })), (jobs) => {
        assert.strictEqual(jobs.length, 1, "one job claimed")
        return jobs[0]!
      }),
    /** The ids of what a claim gets. */
    claimIds: (fields?: Partial<ClaimRequest>) =>
      Effect.map(store.claim(request(fields)), (jobs) => jobs.map((claimed) => claimed.id)),
    advance: (millis: number) => clock.advance(Duration.millis(millis))
  }
}

/** Fails the test unless `effect` fails with `LeaseLost` for `jobId` and `operation`. */
const assertLeaseLost = <A>(
  effect: Effect.Effect<A, JobStoreError | LeaseLost>,
  jobId: string,
  operation: string
) =>
  Effect.gen(function*() {
    const result = yield* Effect.either(effect)
    assert.isTrue(Either.isLeft(result), `${operation} after the lease was lost should fail`)
    if (Either.isRight(result)) return
    const error = result.left
    assert.instanceOf(error, LeaseLost, `${operation} fails with LeaseLost`)
    assert.strictEqual((error as LeaseLost).jobId, jobId)
    assert.strictEqual((error as LeaseLost).operation, operation)
  })

const sorted = (ids: ReadonlyArray<string>) => [...ids].sort(compareIds)

/**
 * Registers the conformance tests of a job store. `layer` must give each test an empty store of its own (it is
 * built once per test); `clock` reads and moves the store's clock.
 */
export const jobStoreConformance = (
  name: string,
  layer: Layer.Layer<JobStore, unknown>,
  clock: StoreClock
): void => {
  const test = (
    title: string,
    body: (store: JobStore.Service, op: ReturnType<typeof ops>) => Effect.Effect<void, unknown, Scope.Scope>
  ) =>
    it.scoped(title, () =>
      Effect.provide(
        Effect.flatMap(JobStore, (store) => body(store, ops(store, clock))),
        layer
      ))

  describe(`${name}: the JobStore port`, () => {
    describe("enqueue", () => {
      test("returns one id per job, unique and increasing in enqueue order", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const batch = yield* store.enqueue([op.job(now), op.job(now), op.job(now)])
          const single = yield* op.enqueue()
          const ids = [...batch, single]
          assert.strictEqual(ids.length, 4)
          assert.strictEqual(new Set(ids).size, 4, "unique")
          assert.deepStrictEqual(sorted(ids), ids, "increasing")
          assert.deepStrictEqual(yield* store.enqueue([]), [])
        }))

      test(
        "keeps what it was given: name, queue, payload, priority, key, attempts and instants",
        (store, op) =>
          Effect.gen(function*() {
            const enqueuedAt = yield* op.at(0)
            const payload = { to: "ada@example.com", tags: ["a", "b"], cents: 1250, nested: { ok: true, none: null } }
            const runAt = yield* op.at(-1_000)
            const [id] = yield* store.enqueue([
              op.job(runAt, { name: "charge", queue: "billing", payload, priority: 3, key: "order-7", maxAttempts: 7 })
            ])
            const claimed = yield* op.claimOne({ queues: ["billing"], names: ["charge"] })
            assert.strictEqual(claimed.id, id)
            assert.strictEqual(claimed.name, "charge")
            assert.strictEqual(claimed.queue, "billing")
            assert.deepStrictEqual(claimed.payload, payload)
            assert.strictEqual(claimed.priority, 3)
            assert.strictEqual(claimed.key, "order-7")
            assert.strictEqual(claimed.attempt, 1)
            assert.strictEqual(claimed.maxAttempts, 7)
            assert.strictEqual(claimed.enqueuedAt.getTime(), enqueuedAt.getTime())
            assert.strictEqual(claimed.runAt.getTime(), runAt.getTime())
            assert.strictEqual(claimed.leaseExpiresAt.getTime(), enqueuedAt.getTime() + Duration.toMillis(LEASE))
            assert.strictEqual(claimed.lease.jobId, id)
            assert.isString(claimed.lease.token)
            assert.isAbove(claimed.lease.token.length, 0)
          })
      )

      test(
        "stores one job for ten concurrent enqueues with one key, and gives them all its id",
        (store, op) =>
          Effect.gen(function*() {
            const ids = yield* Effect.all(
              Array.from({ length: 10 }, (_, i) => op.enqueue({ key: "welcome:ada", payload: { i } })),
              { concurrency: "unbounded" }
            )
            assert.strictEqual(new Set(ids).size, 1, `one id: ${ids.join(", ")}`)
            const claimed = yield* op.claim()
            assert.deepStrictEqual(claimed.map((job) => job.id), [ids[0]])
            assert.deepStrictEqual((yield* store.stats).leased, 1)
          })
      )

      test("returns the id of the job holding the key while it is scheduled, ready or leased, adding nothing", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue({ key: "k", runAt: yield* op.at(1_000) })
          assert.strictEqual(yield* op.enqueue({ key: "k" }), id, "while scheduled")
          yield* op.advance(1_000)
          assert.strictEqual(yield* op.enqueue({ key: "k" }), id, "while ready")
          const claimed = yield* op.claimOne()
          assert.strictEqual(yield* op.enqueue({ key: "k" }), id, "while leased")
          yield* store.retry(claimed.lease, yield* op.at(5_000), "boom")
          assert.strictEqual(yield* op.enqueue({ key: "k" }), id, "while scheduled for a retry")
          const stats = yield* store.stats
          assert.strictEqual(stats.ready + stats.scheduled + stats.leased, 1, "one job in all")
        }))

      test("frees a key when its job completes or dies", (store, op) =>
        Effect.gen(function*() {
          const first = yield* op.enqueue({ key: "k" })
          yield* store.complete((yield* op.claimOne()).lease)
          const second = yield* op.enqueue({ key: "k" })
          assert.notStrictEqual(second, first, "a new job after complete")
          yield* store.deadLetter((yield* op.claimOne()).lease, "fatal")
          const third = yield* op.enqueue({ key: "k" })
          assert.notStrictEqual(third, second, "a new job after deadLetter")
          assert.deepStrictEqual(yield* op.claimIds(), [third])
        }))

      test("deduplicates by key within one batch", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const ids = yield* store.enqueue([op.job(now, { key: "k" }), op.job(now, { key: "k" }), op.job(now)])
          assert.strictEqual(ids[1], ids[0])
          assert.notStrictEqual(ids[2], ids[0])
          assert.deepStrictEqual(yield* op.claimIds(), [ids[0], ids[2]])
        }))
    })

    describe("claim", () => {
      const orderJobs = (op: ReturnType<typeof ops>) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const earlier = yield* op.at(-1_000)
          const earliest = yield* op.at(-2_000)
          const long = yield* op.at(-5_000)
          const j = (label: string, queue: string, name: string, priority: number, runAt: Date) =>
            op.job(runAt, { queue, name, priority, payload: { label } })
          return [
            j("a", "q1", "n1", 1, long),
            j("b", "q2", "n2", -1, now),
            j("c", "q1", "n2", 0, earlier),
            j("d", "q2", "n1", 0, earlier),
            j("e", "q1", "n1", 0, earliest)
          ]
        })
      const labels = (jobs: ReadonlyArray<ClaimedJob>) => jobs.map((job) => (job.payload as { label: string }).label)
      const everything = { queues: ["q1", "q2"], names: ["n1", "n2"] }

      test(
        "claims by priority, then runAt, then enqueue order, across queues and names",
        (store, op) =>
          Effect.gen(function*() {
            yield* store.enqueue(yield* orderJobs(op))
            assert.deepStrictEqual(labels(yield* op.claim(everything)), ["b", "e", "c", "d", "a"])
          })
      )

      test("claims in the same order one job at a time", (store, op) =>
        Effect.gen(function*() {
          yield* store.enqueue(yield* orderJobs(op))
          const order: Array<string> = []
          for (let i = 0; i < 5; i++) order.push(...labels(yield* op.claim({ ...everything, limit: 1 })))
          assert.deepStrictEqual(order, ["b", "e", "c", "d", "a"])
          assert.deepStrictEqual(yield* op.claim(everything), [])
        }))

      test(
        "does not claim a job before its runAt: not one tick before, and at runAt it does",
        (_store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ runAt: yield* op.at(60_000) })
            assert.deepStrictEqual(yield* op.claim(), [])
            yield* op.advance(59_999)
            assert.deepStrictEqual(yield* op.claim(), [], "one tick before runAt")
            yield* op.advance(1)
            assert.deepStrictEqual(yield* op.claimIds(), [id], "at runAt")
          })
      )

      test(
        "claims only the given queues and names, leaving other jobs untouched",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const [wanted, otherName, otherQueue] = yield* store.enqueue([
              op.job(now, { queue: "q1", name: "n1" }),
              op.job(now, { queue: "q1", name: "unknown-type" }),
              op.job(now, { queue: "q2", name: "n1" })
            ])
            assert.deepStrictEqual(yield* op.claimIds({ queues: ["q1"], names: ["n1"] }), [wanted])
            assert.deepStrictEqual(yield* op.claimIds({ queues: ["q1"], names: ["n1"] }), [])
            assert.deepStrictEqual(yield* op.claimIds({ queues: [], names: ["n1", "unknown-type"] }), [])
            assert.deepStrictEqual(yield* op.claimIds({ queues: ["q1", "q2"], names: [] }), [])
            const stats = yield* store.stats
            assert.deepStrictEqual(stats.byQueue["q1"], { ...zero, ready: 1, leased: 1 })
            assert.deepStrictEqual(stats.byQueue["q2"], { ...zero, ready: 1 })
            // Untouched: claimed now, each is on its first attempt.
            const later = yield* op.claim({ queues: ["q1", "q2"], names: ["unknown-type", "n1"] })
            assert.deepStrictEqual(sorted(later.map((job) => job.id)), sorted([otherName!, otherQueue!]))
            assert.deepStrictEqual(later.map((job) => job.attempt), [1, 1])
          })
      )

      test("claims at most limit jobs, and none with limit 0", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const ids = yield* store.enqueue(Array.from({ length: 5 }, () => op.job(now)))
          assert.deepStrictEqual(yield* op.claim({ limit: 0 }), [])
          assert.deepStrictEqual(yield* op.claimIds({ limit: 2 }), ids.slice(0, 2))
          assert.deepStrictEqual(yield* op.claimIds({ limit: 2 }), ids.slice(2, 4))
          assert.deepStrictEqual(yield* op.claimIds({ limit: 2 }), ids.slice(4))
        }))

      test("hands each job to one of many concurrent claims", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const ids = yield* store.enqueue(Array.from({ length: 5 }, () => op.job(now)))
          const claims = yield* Effect.all(
            Array.from({ length: 10 }, (_, i) => op.claimIds({ limit: 1, worker: `worker-${i}` })),
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual(sorted(claims.flat()), ids)
        }))

      test(
        "counts an attempt on each claim, and gives each claim a fresh lease",
        (store, op) =>
          Effect.gen(function*() {
            yield* op.enqueue({ maxAttempts: 3 })
            const first = yield* op.claimOne()
            assert.strictEqual(first.attempt, 1)
            yield* store.release(first.lease, { refund: false })
            const second = yield* op.claimOne()
            assert.strictEqual(second.attempt, 2)
            yield* store.retry(second.lease, yield* op.at(0), "boom")
            const third = yield* op.claimOne({ lease: Duration.seconds(10) })
            assert.strictEqual(third.attempt, 3)
            assert.strictEqual(third.maxAttempts, 3)
            assert.strictEqual(third.leaseExpiresAt.getTime(), (yield* op.at(10_000)).getTime())
            const tokens = new Set([first.lease.token, second.lease.token, third.lease.token])
            assert.strictEqual(tokens.size, 3, "a fresh token per claim")
          })
      )

      test(
        "makes a job claimable again at its lease's expiry instant, with the attempt counted",
        (_store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue()
            const first = yield* op.claimOne()
            yield* op.advance(Duration.toMillis(LEASE) - 1)
            assert.deepStrictEqual(yield* op.claim(), [], "the lease still holds one tick before it expires")
            yield* op.advance(1)
            const again = yield* op.claimOne({ worker: "worker-b" })
            assert.strictEqual(again.id, id)
            assert.strictEqual(again.attempt, 2)
            assert.notStrictEqual(again.lease.token, first.lease.token)
          })
      )

      test(
        "dead-letters a job whose lease expired on its last attempt instead of claiming it",
        (store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ maxAttempts: 2 })
            yield* store.release((yield* op.claimOne()).lease, { refund: false })
            assert.strictEqual((yield* op.claimOne()).attempt, 2)
            yield* op.advance(Duration.toMillis(LEASE))
            assert.deepStrictEqual(yield* op.claim(), [])
            const dead = yield* store.deadLetters()
            assert.deepStrictEqual(dead.map((job) => [job.id, job.attempts, job.lastError]), [[id, 2, "lease expired"]])
            assert.deepStrictEqual(yield* store.stats, { ...zero, dead: 1, byQueue: { emails: { ...zero, dead: 1 } } })
          })
      )
    })

    describe("renew", () => {
      test("extends a live lease to the given duration from now", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          const claimed = yield* op.claimOne()
          yield* op.advance(20_000)
          assert.deepStrictEqual(yield* store.renew([claimed.lease], LEASE), [])
          yield* op.advance(Duration.toMillis(LEASE) - 1)
          assert.deepStrictEqual(yield* op.claim(), [], "renewed: still held 49.999 s after the claim")
          assert.deepStrictEqual(yield* store.renew([], LEASE), [])
          yield* op.advance(1)
          assert.deepStrictEqual(yield* op.claimIds(), [id], "expired 30 s after the renewal")
        }))

      test("returns the ids whose lease no longer holds: claimed again, expired, completed or unknown", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const [reclaimedId, expiredId, completedId] = yield* store.enqueue([op.job(now), op.job(now), op.job(now)])
          const [reclaimed, expired, completed] = yield* op.claim()
          yield* store.complete(completed!.lease)
          yield* op.advance(Duration.toMillis(LEASE))
          const holder = yield* op.claimOne({ worker: "worker-b" })
          assert.strictEqual(holder.id, reclaimedId)
          const lost = yield* store.renew(
            [reclaimed!.lease, holder.lease, expired!.lease, completed!.lease, { jobId: "no-such-job", token: "t" }],
            LEASE
          )
          assert.deepStrictEqual(sorted(lost), sorted([reclaimedId!, expiredId!, completedId!, "no-such-job"]))
          assert.strictEqual((yield* store.stats).leased, 1, "the new holder's lease alone holds")
          yield* store.complete(holder.lease)
        }))
    })

    describe("complete, retry, deadLetter and release", () => {
      test("complete deletes the job", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          const claimed = yield* op.claimOne()
          yield* store.complete(claimed.lease)
          assert.deepStrictEqual(yield* store.stats, { ...zero, byQueue: {} })
          assert.deepStrictEqual(yield* op.claim(), [])
          assert.deepStrictEqual(yield* store.deadLetters(), [])
          assert.deepStrictEqual(yield* store.renew([claimed.lease], LEASE), [id])
          yield* assertLeaseLost(store.complete(claimed.lease), id, "complete")
        }))

      test("retry schedules the job for runAt: not claimable before, claimable at runAt, attempt counted", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          const claimed = yield* op.claimOne()
          yield* store.retry(claimed.lease, yield* op.at(10_000), "boom")
          assert.deepStrictEqual(yield* op.claim(), [])
          assert.deepStrictEqual(yield* store.stats, {
            ...zero,
            scheduled: 1,
            byQueue: { emails: { ...zero, scheduled: 1 } }
          })
          yield* op.advance(9_999)
          assert.deepStrictEqual(yield* op.claim(), [], "one tick before runAt")
          yield* op.advance(1)
          const again = yield* op.claimOne()
          assert.strictEqual(again.id, id)
          assert.strictEqual(again.attempt, 2)
          assert.strictEqual(again.runAt.getTime(), (yield* op.at(0)).getTime())
        }))

      test("retry for an instant that has passed makes the job ready at once", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          yield* store.retry((yield* op.claimOne()).lease, yield* op.at(-1), "boom")
          assert.deepStrictEqual(yield* op.claimIds(), [id])
        }))

      test("deadLetter moves the job to the dead letters with its error", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue({ name: "charge", queue: "billing", payload: { cents: 5 } })
          const claimed = yield* op.claimOne({ queues: ["billing"], names: ["charge"] })
          yield* op.advance(1_000)
          const failedAt = yield* op.at(0)
          yield* store.deadLetter(claimed.lease, "card declined")
          assert.deepStrictEqual(yield* store.deadLetters(), [{
            id,
            name: "charge",
            queue: "billing",
            payload: { cents: 5 },
            attempts: 1,
            lastError: "card declined",
            failedAt
          }])
          assert.deepStrictEqual(yield* store.stats, { ...zero, dead: 1, byQueue: { billing: { ...zero, dead: 1 } } })
          assert.deepStrictEqual(yield* op.claim({ queues: ["billing"], names: ["charge"] }), [])
        }))

      test("release makes the job ready at once, its attempt counted", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          yield* store.release((yield* op.claimOne()).lease, { refund: false })
          const again = yield* op.claimOne()
          assert.strictEqual(again.id, id)
          assert.strictEqual(again.attempt, 2)
        }))

      test(
        "release with refund makes the job ready at once, its attempt not counted",
        (store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ maxAttempts: 1 })
            yield* store.release((yield* op.claimOne()).lease, { refund: true })
            const again = yield* op.claimOne()
            assert.strictEqual(again.id, id)
            assert.strictEqual(again.attempt, 1)
            yield* store.release(again.lease, { refund: true })
            assert.strictEqual((yield* op.claimOne()).attempt, 1, "refunded again")
          })
      )

      test(
        "after the lease was lost and the job claimed again, every late call fails with LeaseLost and changes nothing",
        (
          store,
          op
        ) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue()
            const first = yield* op.claimOne()
            yield* op.advance(Duration.toMillis(LEASE))
            const second = yield* op.claimOne({ worker: "worker-b" })
            assert.strictEqual(second.id, id)
            yield* assertLeaseLost(store.complete(first.lease), id, "complete")
            yield* assertLeaseLost(store.retry(first.lease, yield* op.at(0), "late"), id, "retry")
            yield* assertLeaseLost(store.deadLetter(first.lease, "late"), id, "deadLetter")
            yield* assertLeaseLost(store.release(first.lease, { refund: true }), id, "release")
            yield* assertLeaseLost(store.release(first.lease, { refund: false }), id, "release")
            assert.deepStrictEqual(yield* store.stats, {
              ...zero,
              leased: 1,
              byQueue: { emails: { ...zero, leased: 1 } }
            })
            assert.deepStrictEqual(yield* store.deadLetters(), [])
            assert.deepStrictEqual(yield* op.claim(), [], "still held by the new holder")
            // The new holder's lease works: it renews, and its release counts from its own attempt.
            assert.deepStrictEqual(yield* store.renew([second.lease], LEASE), [])
            yield* store.release(second.lease, { refund: false })
            assert.strictEqual((yield* op.claimOne()).attempt, 3)
          })
      )

      test(
        "a lease is lost at its expiry instant even if nobody claimed the job again",
        (store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue()
            const claimed = yield* op.claimOne()
            yield* op.advance(Duration.toMillis(LEASE))
            yield* assertLeaseLost(store.complete(claimed.lease), id, "complete")
            yield* assertLeaseLost(store.retry(claimed.lease, yield* op.at(60_000), "late"), id, "retry")
            yield* assertLeaseLost(store.deadLetter(claimed.lease, "late"), id, "deadLetter")
            yield* assertLeaseLost(store.release(claimed.lease, { refund: true }), id, "release")
            assert.deepStrictEqual(yield* store.renew([claimed.lease], LEASE), [id])
            assert.deepStrictEqual(yield* store.stats, {
              ...zero,
              ready: 1,
              byQueue: { emails: { ...zero, ready: 1 } }
            })
            const again = yield* op.claimOne()
            assert.strictEqual(again.id, id)
            assert.strictEqual(again.attempt, 2, "the expired attempt counted, the late release refunded nothing")
          })
      )
    })

    describe("reap", () => {
      test("makes every expired lease ready again, or dead with \"lease expired\" when its attempts are used up", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const [exhausted, retried, renewed] = yield* store.enqueue([
            op.job(now, { maxAttempts: 1, payload: { n: 1 } }),
            op.job(now, { payload: { n: 2 } }),
            op.job(now, { payload: { n: 3 } })
          ])
          const claimed = yield* op.claim()
          assert.strictEqual(yield* store.reap, 0, "nothing expired yet")
          yield* op.advance(10_000)
          yield* store.renew([claimed[2]!.lease], LEASE)
          yield* op.advance(Duration.toMillis(LEASE) - 10_000)
          assert.strictEqual(yield* store.reap, 2)
          assert.deepStrictEqual(yield* store.stats, {
            ready: 1,
            scheduled: 0,
            leased: 1,
            dead: 1,
            byQueue: { emails: { ready: 1, scheduled: 0, leased: 1, dead: 1 } }
          })
          const dead = yield* store.deadLetters()
          assert.deepStrictEqual(dead.map((job) => [job.id, job.attempts, job.lastError, job.payload]), [[
            exhausted,
            1,
            "lease expired",
            { n: 1 }
          ]])
          assert.strictEqual(yield* store.reap, 0, "each expired lease is reaped once")
          const again = yield* op.claimOne()
          assert.strictEqual(again.id, retried)
          assert.strictEqual(again.attempt, 2)
          assert.deepStrictEqual(yield* store.renew([claimed[2]!.lease], LEASE), [], `${renewed} still held`)
        }))
    })

    describe("stats", () => {
      test(
        "counts ready, scheduled, leased and dead jobs, in all and per queue that holds something",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            yield* store.enqueue([
              op.job(yield* op.at(-1), { queue: "a" }),
              op.job(now, { queue: "a" }),
              op.job(yield* op.at(60_000), { queue: "a" }),
              op.job(now, { queue: "b" }),
              op.job(now, { queue: "c" }),
              op.job(now, { queue: "d" })
            ])
            yield* op.claimOne({ queues: ["b"] })
            yield* store.deadLetter((yield* op.claimOne({ queues: ["c"] })).lease, "fatal")
            yield* store.complete((yield* op.claimOne({ queues: ["d"] })).lease)
            assert.deepStrictEqual(yield* store.stats, {
              ready: 2,
              scheduled: 1,
              leased: 1,
              dead: 1,
              byQueue: {
                a: { ...zero, ready: 2, scheduled: 1 },
                b: { ...zero, leased: 1 },
                c: { ...zero, dead: 1 }
              }
            })
          })
      )

      test("counts a scheduled job as ready once its runAt has come, and an expired lease as not leased", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          yield* op.enqueue({ runAt: yield* op.at(10_000) })
          yield* op.enqueue()
          yield* op.claimOne()
          const only = (counts: QueueStats) => ({ ...counts, byQueue: { emails: counts } })
          assert.deepStrictEqual(yield* store.stats, only({ ...zero, scheduled: 1, leased: 1 }))
          yield* op.advance(10_000)
          assert.deepStrictEqual(yield* store.stats, only({ ...zero, ready: 1, leased: 1 }))
          yield* op.advance(Duration.toMillis(LEASE) - 10_000)
          assert.deepStrictEqual(yield* store.stats, only({ ...zero, ready: 2 }))
        }))
    })

    describe("deadLetters and redrive", () => {
      test(
        "lists dead letters most recent first, at most limit, of one queue if given",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const ids = yield* store.enqueue([
              op.job(now, { queue: "x", payload: { n: 1 } }),
              op.job(now, { queue: "y", payload: { n: 2 } }),
              op.job(now, { queue: "x", payload: { n: 3 } })
            ])
            const claimed = yield* op.claim({ queues: ["x", "y"] })
            for (const [i, job] of claimed.entries()) {
              if (i > 0) yield* op.advance(1_000)
              yield* store.deadLetter(job.lease, `error ${i + 1}`)
            }
            const idsOf = (jobs: ReadonlyArray<{ readonly id: string }>) => jobs.map((job) => job.id)
            const all = yield* store.deadLetters()
            assert.deepStrictEqual(idsOf(all), [ids[2], ids[1], ids[0]])
            assert.deepStrictEqual(all.map((job) => job.lastError), ["error 3", "error 2", "error 1"])
            assert.deepStrictEqual(all.map((job) => job.failedAt.getTime() - now.getTime()), [2_000, 1_000, 0])
            assert.deepStrictEqual(all.map((job) => job.payload), [{ n: 3 }, { n: 2 }, { n: 1 }])
            assert.deepStrictEqual(idsOf(yield* store.deadLetters({ limit: 2 })), [ids[2], ids[1]])
            assert.deepStrictEqual(idsOf(yield* store.deadLetters({ queue: "x" })), [ids[2], ids[0]])
            assert.deepStrictEqual(idsOf(yield* store.deadLetters({ queue: "x", limit: 1 })), [ids[2]])
            assert.deepStrictEqual(yield* store.deadLetters({ queue: "no-such-queue" }), [])
            assert.deepStrictEqual(yield* store.deadLetters({ limit: 0 }), [])
          })
      )

      test("lists at most 100 dead letters by default", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          yield* store.enqueue(Array.from({ length: 101 }, () => op.job(now, { maxAttempts: 1 })))
          assert.strictEqual((yield* op.claim({ limit: 101 })).length, 101)
          yield* op.advance(Duration.toMillis(LEASE))
          assert.strictEqual(yield* store.reap, 101)
          assert.strictEqual((yield* store.deadLetters()).length, 100)
          assert.strictEqual((yield* store.deadLetters({ limit: 1_000 })).length, 101)
        }))

      test("redrive moves dead jobs back, ready now, as new jobs with their attempts reset, ignoring unknown ids", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const [tired, other] = yield* store.enqueue([
            op.job(now, { maxAttempts: 2, payload: { job: "tired" } }),
            op.job(now, { payload: { job: "other" } })
          ])
          const [first] = yield* op.claim({ limit: 1 })
          yield* store.release(first!.lease, { refund: false })
          const claimed = yield* op.claim()
          assert.deepStrictEqual(claimed.map((job) => [job.id, job.attempt]), [[tired, 2], [other, 1]])
          for (const job of claimed) yield* store.deadLetter(job.lease, "fatal")
          yield* op.advance(60_000)
          // Enqueued at the instant of the redrive, with the same runAt: a redriven job goes behind it.
          const fresh = yield* op.enqueue({ payload: { job: "fresh" } })
          assert.strictEqual(yield* store.redrive([tired!, "no-such-job", tired!]), 1)
          assert.deepStrictEqual((yield* store.deadLetters()).map((job) => job.id), [other])
          assert.deepStrictEqual(yield* store.stats, {
            ...zero,
            ready: 2,
            dead: 1,
            byQueue: { emails: { ...zero, ready: 2, dead: 1 } }
          })
          const back = yield* op.claim()
          assert.deepStrictEqual(back.map((job) => job.payload), [{ job: "fresh" }, { job: "tired" }])
          assert.strictEqual(back[0]!.id, fresh)
          assert.strictEqual(back[1]!.attempt, 1, "attempts reset")
          assert.strictEqual(back[1]!.maxAttempts, 2)
          assert.strictEqual(yield* store.redrive([tired!]), 0, "a live job is not redriven")
          assert.strictEqual(yield* store.redrive([]), 0)
        }))
    })

    describe("wakeups", () => {
      test(
        "emits the queues that got a job ready now, not one that got only a delayed job",
        (store, op) =>
          Effect.gen(function*() {
            const received = yield* subscribeWakeups(store)
            yield* op.enqueue({ queue: "later", runAt: yield* op.at(60_000) })
            const now = yield* op.at(0)
            yield* store.enqueue([op.job(now, { queue: "now-a" }), op.job(now, { queue: "now-b" })])
            const woken = yield* wakeupsBefore(store, received, "marker")
            assert.includeMembers([...woken], ["now-a", "now-b"])
            assert.notInclude(woken, "later")
          })
      )
    })
  })
}
