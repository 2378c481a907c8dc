/**
 * The job store conformance suite: what every `JobStore` must do, tested only through the port, so that the memory
 * store and the PostgreSQL store run the same tests. A store's test file calls {@link jobStoreConformance} with
 * a layer that gives every test an empty store of its own, and with the store's clock.
 *
 * The tests pin instants to the millisecond ("not one tick before `runAt`, and at `runAt`"), so the store's clock
 * must stand still except when `advance` moves it: `TestClock` for the memory store; for a database, a clock the
 * tests can set (a `now()` the store reads from a table, say) rather than real time.
 *
 * No test waits by polling: a wake-up subscription is live when `store.wakeups` returns, so a test subscribes,
 * acts, and takes from the queue. Wake-ups are hints, possibly repeated and out of order, so a test that checks
 * that a queue was *not* woken uses a queue that never held a ready job.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Duration, Effect, Either, Exit, type Layer, Option, Queue, type Scope } from "effect"
import {
  type ClaimedJob,
  type ClaimRequest,
  type ClaimResult,
  JobStore,
  JobStoreError,
  type Lease,
  type NewJob,
  Outcome,
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
const LEASE_MS = Duration.toMillis(LEASE)

/**
 * Subscribes to `store.wakeups` in the scope. The port makes the subscription live when it returns: every wake-up
 * after that reaches the queue, with no probe needed.
 */
export const subscribeWakeups = (
  store: JobStore.Service
): Effect.Effect<Queue.Dequeue<string>, never, Scope.Scope> => store.wakeups

/**
 * Takes wake-ups from `received` until every queue of `queues` has come, and returns all it took. A wake-up that
 * does not come fails the test by its timeout.
 */
export const awaitWakeups = (
  received: Queue.Dequeue<string>,
  queues: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<string>> =>
  Effect.gen(function*() {
    const missing = new Set(queues)
    const seen: Array<string> = []
    while (missing.size > 0) {
      const queue = yield* Queue.take(received)
      seen.push(queue)
      missing.delete(queue)
    }
    return seen
  })

/**
 * Enqueues a ready job into the queue `marker` and returns the wake-ups received before the marker's. Wake-ups are
 * hints that a store may repeat and reorder (PostgreSQL's store republishes the queues that hold ready jobs when its
 * listening connection comes up), so the marker's may come early: use this only to check that a queue that never
 * held a ready job was not woken (such a check may miss a stray wake-up, but never fails wrongly), and
 * {@link awaitWakeups} to check that a queue was.
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
      seen.push(queue)
    }
  })

/**
 * Ids compared in shortlex order (shorter first, then character by character): the order of counters written in
 * decimal ("9" < "10") and of fixed-width ids (UUIDv7, zero-padded) alike.
 */
const compareIds = (a: string, b: string): number =>
  a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0

const zero: QueueStats = { ready: 0, scheduled: 0, leased: 0, dead: 0, cancelled: 0, succeeded: 0 }

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

/**
 * Fails the test unless `exit` is an `IllegalArgumentException` defect whose message includes `includes` (say
 * `"MemoryJobStore.claim: invalid limit"`).
 */
export const assertIllegal = (exit: Exit.Exit<unknown, unknown>, includes: string): void => {
  assert.isTrue(Exit.isFailure(exit), `expected a defect naming ${includes}`)
  if (Exit.isSuccess(exit)) return
  const defect = Option.getOrUndefined(Cause.dieOption(exit.cause))
  assert.isTrue(
    Cause.isIllegalArgumentException(defect),
    `an IllegalArgumentException, got ${Cause.pretty(exit.cause)}`
  )
  assert.include((defect as Error).message, includes)
}

/** The stats of a store whose jobs are all in `emails`, all of them `send-email`. */
const onlyEmails = (counts: QueueStats) => ({
  ...counts,
  byQueue: counts.ready + counts.scheduled + counts.leased + counts.dead + counts.cancelled + counts.succeeded === 0
    ? {}
    : { emails: counts },
  readyByName: counts.ready === 0 ? {} : { "send-email": counts.ready },
  pausedQueues: []
})

/** `readyByName` without the names that have nothing ready (a store may list them with 0, or leave them out). */
const readyNames = (readyByName: Readonly<Record<string, number>>) =>
  Object.fromEntries(Object.entries(readyByName).filter(([, count]) => count !== 0))

/** The operations of the port, with the defaults the tests use. */
const ops = (store: JobStore.Service, clock: StoreClock) => {
  const at = (offset: number) => Effect.map(clock.now, (now) => new Date(now + offset))
  const job = (runAt: Date, fields?: Partial<NewJob>): NewJob => newJob({ runAt, ...fields })
  const request = claimRequest
  const settleOne = (lease: Lease, outcome: Outcome) =>
    Effect.map(store.settle([{ lease, outcome }]), (applied) => {
      assert.strictEqual(applied.length, 1, "one boolean per settlement")
      return applied[0]!
    })
  /** Settles one lease that must hold. */
  const settleHeld = (lease: Lease, outcome: Outcome) =>
    Effect.map(settleOne(lease, outcome), (applied) => assert.isTrue(applied, `${outcome._tag} applied`))
  return {
    at,
    job,
    request,
    /** Enqueues one job, ready now unless `fields` says otherwise, and returns its id. */
    enqueue: (fields?: Partial<NewJob>) =>
      Effect.flatMap(at(0), (now) => Effect.map(store.enqueue([job(now, fields)]), (ids) => ids[0]!)),
    /** The jobs a claim gets (the buried ones left out). */
    claim: (fields?: Partial<ClaimRequest>) => Effect.map(store.claim(request(fields)), (result) => result.jobs),
    /** Claims exactly one job and returns it. */
    claimOne: (fields?: Partial<ClaimRequest>) =>
      Effect.map(store.claim(request({ limit: 1, ...fields })), ({ jobs }) => {
        assert.strictEqual(jobs.length, 1, "one job claimed")
        return jobs[0]!
      }),
    /** The ids of what a claim gets. */
    claimIds: (fields?: Partial<ClaimRequest>) =>
      Effect.map(store.claim(request(fields)), ({ jobs }) => jobs.map((claimed) => claimed.id)),
    settleOne,
    complete: (lease: Lease) => settleHeld(lease, Outcome.Completed()),
    retry: (lease: Lease, delay: number, error = "boom") =>
      settleHeld(lease, Outcome.Retry({ delay: Duration.millis(delay), error })),
    dead: (lease: Lease, error = "fatal") => settleHeld(lease, Outcome.Dead({ error })),
    release: (lease: Lease, refund: boolean) => settleHeld(lease, Outcome.Released({ refund })),
    /** The store's stats, with `readyByName` left without names that have nothing ready. */
    stats: Effect.map(store.stats, (stats) => ({ ...stats, readyByName: readyNames(stats.readyByName) })),
    advance: (millis: number) => clock.advance(Duration.millis(millis))
  }
}

type Ops = ReturnType<typeof ops>

/** One of each outcome, for the tests that check that every kind behaves alike. */
const everyOutcome: ReadonlyArray<Outcome> = [
  Outcome.Completed(),
  Outcome.Retry({ delay: Duration.seconds(1), error: "late" }),
  Outcome.Retry({ delay: Duration.zero, error: "late" }),
  Outcome.Dead({ error: "late" }),
  Outcome.Released({ refund: true }),
  Outcome.Released({ refund: false }),
  Outcome.Snoozed({ delay: Duration.seconds(5) })
]

const sorted = (ids: ReadonlyArray<string>) => [...ids].sort(compareIds)

/** The ids of the jobs a claim or a reap reported buried. */
const buriedIds = (result: { readonly buried: ClaimResult["buried"] }) => result.buried.map((job) => job.id)

/**
 * Registers the conformance tests of a job store. `layer` must give each test an empty store of its own (it is
 * built once per test); `clock` reads and moves the store's clock. `name` is the store's name, as its argument
 * checks say it (`MemoryJobStore`, `PgJobStore`).
 */
export const jobStoreConformance = (
  name: string,
  layer: Layer.Layer<JobStore, unknown>,
  clock: StoreClock,
  /** The same store with `succeededRetention: "1 hour"`. */
  keeping: Layer.Layer<JobStore, unknown>
): void => {
  const test = (
    title: string,
    body: (store: JobStore.Service, op: Ops) => Effect.Effect<void, unknown, Scope.Scope>,
    withLayer: Layer.Layer<JobStore, unknown> = layer
  ) =>
    it.scoped(title, () =>
      Effect.provide(
        Effect.flatMap(JobStore, (store) => body(store, ops(store, clock))),
        withLayer
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
            assert.strictEqual(claimed.leaseExpiresAt.getTime(), enqueuedAt.getTime() + LEASE_MS)
            assert.strictEqual(claimed.lease.jobId, id)
            assert.isString(claimed.lease.token)
            assert.isAbove(claimed.lease.token.length, 0)
          })
      )

      test("without runAt nor delay, makes the job ready at the store's now", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const [id] = yield* store.enqueue([newJob({ runAt: undefined })])
          const claimed = yield* op.claimOne()
          assert.strictEqual(claimed.id, id)
          assert.strictEqual(claimed.runAt.getTime(), now.getTime())
          assert.strictEqual(claimed.enqueuedAt.getTime(), now.getTime())
        }))

      test("with delay, makes the job due that long after the store's now: not one tick before, and then", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const [id] = yield* store.enqueue([newJob({ runAt: undefined, delay: Duration.seconds(10) })])
          assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, scheduled: 1 }))
          yield* op.advance(9_999)
          assert.deepStrictEqual(yield* op.claim(), [], "one tick before the delay is over")
          yield* op.advance(1)
          const claimed = yield* op.claimOne()
          assert.strictEqual(claimed.id, id)
          assert.strictEqual(claimed.runAt.getTime(), now.getTime() + 10_000, "runAt is the store's now + delay")
          assert.strictEqual(claimed.enqueuedAt.getTime(), now.getTime())
        }))

      test("with a delay of zero, makes the job ready at once", (store, op) =>
        Effect.gen(function*() {
          const [id] = yield* store.enqueue([newJob({ runAt: undefined, delay: Duration.zero })])
          assert.deepStrictEqual(yield* op.claimIds(), [id])
        }))

      test(
        "with an absolute runAt, makes the job due at that instant, whatever the delay says",
        (store, op) =>
          Effect.gen(function*() {
            const past = yield* op.at(-5_000)
            const future = yield* op.at(20_000)
            const [overdue, later] = yield* store.enqueue([
              newJob({ runAt: past, delay: Duration.hours(1) }),
              newJob({ runAt: future, delay: Duration.zero })
            ])
            const first = yield* op.claim()
            assert.deepStrictEqual(first.map((job) => job.id), [overdue], "a runAt that has passed: ready now")
            assert.strictEqual(first[0]!.runAt.getTime(), past.getTime())
            yield* op.advance(19_999)
            assert.deepStrictEqual(yield* op.claim(), [], "one tick before runAt")
            yield* op.advance(1)
            const second = yield* op.claim()
            assert.deepStrictEqual(second.map((job) => job.id), [later])
            assert.strictEqual(second[0]!.runAt.getTime(), future.getTime())
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

      test(
        "with keyMode skip, returns the id of the job holding the key while it is scheduled, ready or leased, adding nothing",
        (
          store,
          op
        ) =>
          Effect.gen(function*() {
            const skip = { key: "k", keyMode: "skip" } as const
            const id = yield* op.enqueue({ ...skip, runAt: yield* op.at(1_000) })
            assert.strictEqual(yield* op.enqueue(skip), id, "while scheduled")
            yield* op.advance(1_000)
            assert.strictEqual(yield* op.enqueue(skip), id, "while ready")
            const claimed = yield* op.claimOne()
            assert.strictEqual(yield* op.enqueue(skip), id, "while leased")
            yield* op.retry(claimed.lease, 5_000)
            assert.strictEqual(yield* op.enqueue(skip), id, "while scheduled for a retry")
            yield* op.advance(5_000)
            yield* op.release((yield* op.claimOne()).lease, true)
            assert.strictEqual(yield* op.enqueue(skip), id, "while ready again after Released")
            const [result] = yield* store.insert([op.job(yield* op.at(0), skip)])
            assert.deepStrictEqual(result, { id, duplicate: true, outcome: "skipped" })
            const stats = yield* store.stats
            assert.strictEqual(stats.ready + stats.scheduled + stats.leased, 1, "one job in all")
          })
      )

      test("frees a key when its job completes or dies", (_store, op) =>
        Effect.gen(function*() {
          const first = yield* op.enqueue({ key: "k" })
          yield* op.complete((yield* op.claimOne()).lease)
          const second = yield* op.enqueue({ key: "k" })
          assert.notStrictEqual(second, first, "a new job after Completed")
          yield* op.dead((yield* op.claimOne()).lease)
          const third = yield* op.enqueue({ key: "k" })
          assert.notStrictEqual(third, second, "a new job after Dead")
          assert.deepStrictEqual(yield* op.claimIds(), [third])
        }))

      test(
        "replace (the default): a waiting holder takes the new payload, runAt, priority and attempts, keeping its id",
        (
          store,
          op
        ) =>
          Effect.gen(function*() {
            const [first] = yield* store.insert([op.job(yield* op.at(1_000), { key: "k", payload: { v: 1 } })])
            assert.deepStrictEqual(first, { id: first!.id, duplicate: false, outcome: "inserted" })
            const [second] = yield* store.insert([
              op.job(yield* op.at(5_000), { key: "k", payload: { v: 2 }, priority: 3, maxAttempts: 9 })
            ])
            assert.deepStrictEqual(second, { id: first!.id, duplicate: true, outcome: "replaced" })
            yield* op.advance(1_000)
            assert.deepStrictEqual(yield* op.claim(), [], "its runAt moved: a debounce")
            yield* op.advance(4_000)
            const claimed = yield* op.claimOne()
            assert.deepStrictEqual(
              [claimed.id, claimed.payload, claimed.priority, claimed.maxAttempts, claimed.attempt],
              [first!.id, { v: 2 }, 3, 9, 1]
            )
            assert.strictEqual((yield* store.stats).leased, 1, "one job in all")
          })
      )

      test("afterRunning leaves a waiting holder as it is", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue({ key: "k", payload: { v: 1 } })
          const [result] = yield* store.insert([
            op.job(yield* op.at(0), { key: "k", keyMode: "afterRunning", payload: { v: 2 } })
          ])
          assert.deepStrictEqual(result, { id, duplicate: true, outcome: "skipped" })
          assert.deepStrictEqual((yield* op.claimOne()).payload, { v: 1 })
        }))

      for (const end of ["completes", "dies"] as const) {
        test(
          `replace and afterRunning keep one job to run after a running holder, with the newest payload; it holds the key once the holder ${end}`,
          (
            store,
            op
          ) =>
            Effect.gen(function*() {
              const holder = yield* op.enqueue({ key: "k", payload: { v: 1 } })
              const running = yield* op.claimOne()
              const now = yield* op.at(0)
              const [after] = yield* store.insert([op.job(now, { key: "k", payload: { v: 2 } })])
              assert.deepStrictEqual(after, { id: after!.id, duplicate: true, outcome: "queuedAfter" })
              assert.notStrictEqual(after!.id, holder)
              const [again] = yield* store.insert([
                op.job(now, { key: "k", keyMode: "afterRunning", payload: { v: 3 } })
              ])
              assert.deepStrictEqual(again, { id: after!.id, duplicate: true, outcome: "queuedAfter" }, "at most one")
              const counts = yield* store.stats
              assert.deepStrictEqual(
                [counts.ready, counts.scheduled, counts.leased],
                [0, 1, 1],
                "it waits, as scheduled"
              )
              assert.deepStrictEqual(yield* op.claim(), [], "not while the holder runs")
              // A retry of the holder is no end: the one kept waits for its last attempt.
              yield* op.retry(running.lease, 0)
              const rerun = yield* op.claimOne()
              assert.strictEqual(rerun.id, holder)
              if (end === "completes") yield* op.complete(rerun.lease)
              else yield* op.dead(rerun.lease)
              const next = yield* op.claimOne()
              assert.deepStrictEqual([next.id, next.payload, next.key], [after!.id, { v: 3 }, "k"])
              assert.strictEqual(yield* op.enqueue({ key: "k", keyMode: "skip" }), after!.id, "it holds the key")
            })
        )
      }

      test(
        "of ten concurrent enqueues of one key while its holder runs, one job is kept to run after it",
        (store, op) =>
          Effect.gen(function*() {
            yield* op.enqueue({ key: "k" })
            yield* op.claimOne()
            const now = yield* op.at(0)
            const results = yield* Effect.all(
              Array.from({ length: 10 }, (_, i) => store.insert([op.job(now, { key: "k", payload: { i } })])),
              { concurrency: "unbounded" }
            )
            assert.strictEqual(new Set(results.map(([r]) => r!.id)).size, 1, JSON.stringify(results))
            assert.isTrue(results.every(([r]) => r!.outcome === "queuedAfter"))
            assert.strictEqual((yield* store.stats).scheduled, 1)
          })
      )

      test("deduplicates by key within one batch", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const ids = yield* store.enqueue([op.job(now, { key: "k" }), op.job(now, { key: "k" }), op.job(now)])
          assert.strictEqual(ids[1], ids[0])
          assert.notStrictEqual(ids[2], ids[0])
          assert.deepStrictEqual(yield* op.claimIds(), [ids[0], ids[2]])
        }))
    })

    describe("payloads are JSON", () => {
      class Money {
        constructor(readonly cents: number) {}
      }
      const circular: Record<string, unknown> = { name: "loop" }
      circular["self"] = circular
      const notJson: ReadonlyArray<readonly [what: string, payload: unknown, path: string]> = [
        ["a bigint", { order: { amount: 10n } }, "$.order.amount"],
        ["a Date", { sentAt: new Date(0) }, "$.sentAt"],
        ["NaN", { ratio: [1, Number.NaN] }, "$.ratio[1]"],
        ["Infinity", Infinity, "$"],
        ["a class instance", { price: new Money(5) }, "$.price"],
        ["a circular object", circular, "$.self"],
        ["a NUL character in a string", { note: ["ok", "a\u0000b"] }, "$.note[1]"],
        ["a lone surrogate in a string", { emoji: "\ud83d" }, "$.emoji"],
        ["a NUL character in a key", { nested: { "a\u0000b": 1 } }, "$.nested: the key"]
      ]
      for (const [what, payload, path] of notJson) {
        test(`fails enqueue with a JobStoreError naming the place of ${what}, storing nothing of the batch`, (
          store,
          op
        ) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const result = yield* Effect.either(store.enqueue([op.job(now), op.job(now, { payload })]))
            assert.isTrue(Either.isLeft(result), `${what} is refused`)
            if (Either.isRight(result)) return
            assert.instanceOf(result.left, JobStoreError)
            assert.strictEqual(result.left.operation, "enqueue")
            assert.include(result.left.message, "job 1")
            assert.include(result.left.message, path)
            assert.deepStrictEqual(yield* op.stats, onlyEmails(zero))
          }))
      }

      test("gives each claim a copy: mutating the enqueued object or a claimed payload changes nothing", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const payload = { to: "ada@example.com", tags: ["a"], skipped: undefined }
          const id = yield* op.enqueue({ payload, maxAttempts: 1 })
          payload.to = "mallory@example.com"
          payload.tags.push("b")
          const first = yield* op.claimOne()
          assert.deepStrictEqual(first.payload, { to: "ada@example.com", tags: ["a"] }, "as enqueued, as JSON")
          const seen = first.payload as { to: string; tags: Array<string> }
          seen.to = "eve@example.com"
          seen.tags.push("c")
          yield* op.release(first.lease, true)
          const second = yield* op.claimOne()
          assert.strictEqual(second.id, id)
          assert.notStrictEqual(second.payload, first.payload, "a fresh copy per claim")
          assert.deepStrictEqual(second.payload, { to: "ada@example.com", tags: ["a"] })
          yield* op.dead(second.lease)
          assert.deepStrictEqual((yield* store.deadLetters()).map((job) => job.payload), [{
            to: "ada@example.com",
            tags: ["a"]
          }])
        }))

      test("keeps a payload that is null", (_store, op) =>
        Effect.gen(function*() {
          yield* op.enqueue({ payload: null })
          assert.strictEqual((yield* op.claimOne()).payload, null)
        }))

      test("keeps every JSON value: booleans, numbers, strings, arrays and objects, at any depth", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const payloads: ReadonlyArray<unknown> = [
            true,
            0,
            -1.5,
            "",
            "unicode: é ✓ 😀 \u0001",
            [],
            {},
            [1, "two", null, [false]],
            { a: { b: { c: [{ d: 1e21 }] } } }
          ]
          const now = yield* op.at(0)
          yield* store.enqueue(payloads.map((payload) => op.job(now, { payload })))
          const claimed = yield* op.claim({ limit: payloads.length })
          assert.deepStrictEqual(claimed.map((job) => job.payload), payloads)
        }))
    })

    describe("claim", () => {
      const orderJobs = (op: Ops) =>
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
          assert.deepStrictEqual(yield* store.claim(claimRequest({ limit: 0 })), { jobs: [], buried: [] })
          assert.deepStrictEqual(yield* op.claimIds({ limit: 2 }), ids.slice(0, 2))
          assert.deepStrictEqual(yield* op.claimIds({ limit: 2 }), ids.slice(2, 4))
          assert.deepStrictEqual(yield* op.claimIds({ limit: 2 }), ids.slice(4))
        }))

      test("claims a job once when the request names its queue or name twice", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const ids = yield* store.enqueue([op.job(now), op.job(now)])
          const claimed = yield* op.claimIds({ queues: ["emails", "emails"], names: ["send-email", "send-email"] })
          assert.deepStrictEqual(claimed, ids)
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
        (_store, op) =>
          Effect.gen(function*() {
            yield* op.enqueue({ maxAttempts: 3 })
            const first = yield* op.claimOne()
            assert.strictEqual(first.attempt, 1)
            yield* op.release(first.lease, false)
            const second = yield* op.claimOne()
            assert.strictEqual(second.attempt, 2)
            yield* op.retry(second.lease, 0)
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
            yield* op.advance(LEASE_MS - 1)
            assert.deepStrictEqual(yield* op.claim(), [], "the lease still holds one tick before it expires")
            yield* op.advance(1)
            const again = yield* op.claimOne({ worker: "worker-b" })
            assert.strictEqual(again.id, id)
            assert.strictEqual(again.attempt, 2)
            assert.notStrictEqual(again.lease.token, first.lease.token)
          })
      )

      test(
        "buries a job whose lease expired on its last attempt instead of claiming it, and reports it",
        (store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ name: "charge", queue: "billing", maxAttempts: 2 })
            const billing = { queues: ["billing"], names: ["charge"] }
            yield* op.release((yield* op.claimOne(billing)).lease, false)
            assert.strictEqual((yield* op.claimOne(billing)).attempt, 2)
            yield* op.advance(LEASE_MS)
            const result = yield* store.claim(claimRequest(billing))
            assert.deepStrictEqual(result, {
              jobs: [],
              buried: [{ id, name: "charge", queue: "billing", attempt: 2, error: "lease expired" }]
            })
            const dead = yield* store.deadLetters()
            assert.deepStrictEqual(dead.map((job) => [job.id, job.attempts, job.lastError]), [[id, 2, "lease expired"]])
            assert.strictEqual(dead[0]!.failedAt.getTime(), (yield* op.at(0)).getTime())
            assert.deepStrictEqual(yield* op.stats, {
              ...zero,
              dead: 1,
              byQueue: { billing: { ...zero, dead: 1 } },
              readyByName: {},
              pausedQueues: []
            })
          })
      )

      test("claims the jobs due while it buries others, in one call", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const [doomed] = yield* store.enqueue([op.job(now, { maxAttempts: 1 })])
          yield* op.claimOne()
          const [ready] = yield* store.enqueue([op.job(now)])
          yield* op.advance(LEASE_MS)
          const result = yield* store.claim(claimRequest())
          assert.deepStrictEqual(result.jobs.map((job) => job.id), [ready])
          assert.deepStrictEqual(buriedIds(result), [doomed])
        }))
    })

    describe("jobs buried for an expired lease", () => {
      test(
        "are reported once across claims and reaps, whichever call comes first",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const ids = yield* store.enqueue([
              op.job(now, { maxAttempts: 1 }),
              op.job(now, { maxAttempts: 1, queue: "other", name: "other-name" }),
              op.job(now, { maxAttempts: 1 })
            ])
            yield* op.claim({ queues: ["emails", "other"], names: ["send-email", "other-name"] })
            yield* op.advance(LEASE_MS)
            const reports: Array<string> = []
            // Claims of either queue, of nothing, and reaps, in turn: each death appears in exactly one of them.
            reports.push(...buriedIds(yield* store.claim(claimRequest({ limit: 1 }))))
            reports.push(...buriedIds(yield* store.reap))
            reports.push(...buriedIds(yield* store.claim(claimRequest({ queues: ["other"], names: ["other-name"] }))))
            reports.push(...buriedIds(yield* store.reap))
            reports.push(...buriedIds(yield* store.claim(claimRequest())))
            assert.deepStrictEqual(sorted(reports), ids)
            assert.strictEqual((yield* store.deadLetters()).length, 3)
          })
      )

      test("are reported by a reap that comes first, and not again by a claim", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue({ maxAttempts: 1 })
          yield* op.claimOne()
          yield* op.advance(LEASE_MS)
          const reaped = yield* store.reap
          assert.deepStrictEqual(reaped, {
            reaped: 1,
            buried: [{ id, name: "send-email", queue: "emails", attempt: 1, error: "lease expired" }]
          })
          assert.deepStrictEqual(yield* store.claim(claimRequest()), { jobs: [], buried: [] })
          assert.deepStrictEqual(yield* store.reap, { reaped: 0, buried: [] })
        }))

      test(
        "are reported once even when other operations ran between the expiry and the report",
        (store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ maxAttempts: 1 })
            const claimed = yield* op.claimOne()
            yield* op.advance(LEASE_MS)
            // Each of these may bring the store up to its clock; none of them reports deaths.
            assert.deepStrictEqual(yield* store.renew([claimed.lease], LEASE), [id])
            assert.deepStrictEqual(yield* store.settle([{ lease: claimed.lease, outcome: Outcome.Completed() }]), [
              false
            ])
            assert.strictEqual((yield* store.stats).dead, 1)
            yield* op.enqueue({ queue: "elsewhere" })
            yield* store.deadLetters()
            const reports = [
              ...buriedIds(yield* store.claim(claimRequest())),
              ...buriedIds(yield* store.reap),
              ...buriedIds(yield* store.claim(claimRequest())),
              ...buriedIds(yield* store.reap)
            ]
            assert.deepStrictEqual(reports, [id])
          })
      )

      test("are not reported when they died by a Dead outcome: the worker that settled it reports those", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          yield* op.enqueue({ maxAttempts: 1 })
          yield* op.dead((yield* op.claimOne()).lease)
          yield* op.advance(LEASE_MS)
          assert.deepStrictEqual(yield* store.claim(claimRequest()), { jobs: [], buried: [] })
          assert.deepStrictEqual(yield* store.reap, { reaped: 0, buried: [] })
          assert.strictEqual((yield* store.deadLetters()).length, 1)
        }))

      test("are reported once when claims and reaps run at the same time", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const ids = yield* store.enqueue(Array.from({ length: 6 }, () => op.job(now, { maxAttempts: 1 })))
          yield* op.claim()
          yield* op.advance(LEASE_MS)
          const calls = Array.from({ length: 8 }, (_, i) =>
            i % 2 === 0
              ? Effect.map(store.claim(claimRequest({ worker: `worker-${i}` })), buriedIds)
              : Effect.map(store.reap, buriedIds))
          const reports = yield* Effect.all(calls, { concurrency: "unbounded" })
          assert.deepStrictEqual(sorted(reports.flat()), ids)
          assert.strictEqual((yield* store.deadLetters()).length, 6)
        }))

      test("can be redriven like any dead job, attempts reset", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue({ maxAttempts: 1 })
          yield* op.claimOne()
          yield* op.advance(LEASE_MS)
          assert.deepStrictEqual(buriedIds(yield* store.reap), [id])
          assert.strictEqual(yield* store.redrive([id]), 1)
          const again = yield* op.claimOne()
          assert.strictEqual(again.id, id)
          assert.strictEqual(again.attempt, 1)
        }))
    })

    describe("renew", () => {
      test("extends a live lease to the given duration from now", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          const claimed = yield* op.claimOne()
          yield* op.advance(20_000)
          assert.deepStrictEqual(yield* store.renew([claimed.lease], LEASE), [])
          yield* op.advance(LEASE_MS - 1)
          assert.deepStrictEqual(yield* op.claim(), [], "renewed: still held 49.999 s after the claim")
          assert.deepStrictEqual(yield* store.renew([], LEASE), [])
          yield* op.advance(1)
          assert.deepStrictEqual(yield* op.claimIds(), [id], "expired 30 s after the renewal")
        }))

      test(
        "does not revive a lease at its expiry instant, even if nobody claimed the job again",
        (store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue()
            const claimed = yield* op.claimOne()
            yield* op.advance(LEASE_MS)
            assert.deepStrictEqual(yield* store.renew([claimed.lease], LEASE), [id])
            assert.deepStrictEqual(yield* op.settleOne(claimed.lease, Outcome.Completed()), false)
            const again = yield* op.claimOne()
            assert.strictEqual(again.attempt, 2)
          })
      )

      test("returns the ids whose lease no longer holds: claimed again, expired, settled, forged or unknown", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const [reclaimedId, expiredId, completedId, forgedId] = yield* store.enqueue([
            op.job(now),
            op.job(now),
            op.job(now),
            op.job(now, { runAt: yield* op.at(LEASE_MS) })
          ])
          const [reclaimed, expired, completed] = yield* op.claim()
          yield* op.complete(completed!.lease)
          yield* op.advance(LEASE_MS)
          const holder = yield* op.claimOne({ worker: "worker-b" })
          assert.strictEqual(holder.id, reclaimedId)
          const fresh = yield* op.claimOne()
          assert.strictEqual(fresh.id, expiredId)
          const forged = yield* op.claimOne()
          assert.strictEqual(forged.id, forgedId)
          const lost = yield* store.renew(
            [
              reclaimed!.lease,
              holder.lease,
              expired!.lease,
              completed!.lease,
              { jobId: forgedId!, token: `${forged.lease.token}-forged` },
              { jobId: "no-such-job", token: "t" }
            ],
            LEASE
          )
          assert.deepStrictEqual(
            sorted(lost),
            sorted([reclaimedId!, expiredId!, completedId!, forgedId!, "no-such-job"])
          )
          assert.strictEqual((yield* store.stats).leased, 3, "the new holders' leases still hold")
          yield* op.complete(holder.lease)
          yield* op.complete(fresh.lease)
          yield* op.complete(forged.lease)
        }))
    })

    describe("settle", () => {
      test("Completed deletes the job and frees nothing else", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          const other = yield* op.enqueue()
          const claimed = yield* op.claimOne()
          assert.strictEqual(claimed.id, id)
          yield* op.complete(claimed.lease)
          assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, ready: 1 }))
          assert.deepStrictEqual(yield* op.claimIds(), [other])
          assert.deepStrictEqual(yield* store.deadLetters(), [])
          assert.deepStrictEqual(yield* store.renew([claimed.lease], LEASE), [id])
          assert.strictEqual(yield* op.settleOne(claimed.lease, Outcome.Completed()), false, "settled once")
        }))

      test(
        "Retry schedules the job delay after the settle by the store's clock, attempt counted",
        (_store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue()
            const claimed = yield* op.claimOne()
            // The delay counts from the settle, not from the claim.
            yield* op.advance(5_000)
            const settledAt = yield* op.at(0)
            yield* op.retry(claimed.lease, 10_000)
            assert.deepStrictEqual(yield* op.claim(), [])
            assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, scheduled: 1 }))
            yield* op.advance(9_999)
            assert.deepStrictEqual(yield* op.claim(), [], "one tick before the delay is over")
            yield* op.advance(1)
            const again = yield* op.claimOne()
            assert.strictEqual(again.id, id)
            assert.strictEqual(again.attempt, 2)
            assert.strictEqual(again.runAt.getTime(), settledAt.getTime() + 10_000)
          })
      )

      test(
        "Retry with a delay of a fraction of a millisecond never makes the job due early",
        (_store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue()
            const claimed = yield* op.claimOne()
            assert.isTrue(
              yield* op.settleOne(claimed.lease, Outcome.Retry({ delay: Duration.micros(1_500n), error: "x" })),
              "applied"
            )
            yield* op.advance(1)
            assert.deepStrictEqual(yield* op.claim(), [], "1 ms after a retry of 1.5 ms")
            yield* op.advance(1)
            assert.deepStrictEqual(yield* op.claimIds(), [id])
          })
      )

      test(
        "Retry moves the job's runAt, and so its place in line, to when it is due again",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const [first, second] = yield* store.enqueue([op.job(now), op.job(now)])
            const claimed = yield* op.claimOne()
            assert.strictEqual(claimed.id, first)
            yield* op.advance(5_000)
            yield* op.retry(claimed.lease, 0)
            const order = yield* op.claim()
            assert.deepStrictEqual(order.map((job) => job.id), [second, first], "behind the job due earlier")
            assert.strictEqual(order[1]!.runAt.getTime(), now.getTime() + 5_000)
          })
      )

      test(
        "Retry keeps the attempt's error: the next claims carry it, the newest ten, each with its attempt and time",
        (store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ maxAttempts: 25 })
            const first = yield* op.claimOne()
            assert.deepStrictEqual([first.lastError, first.errors], [undefined, []])
            let lease = first.lease
            const times: Array<number> = []
            for (let attempt = 1; attempt <= 12; attempt++) {
              yield* op.advance(1_000)
              times.push((yield* op.at(0)).getTime())
              yield* op.retry(lease, 0, `failure ${attempt}`)
              const next = yield* op.claimOne()
              assert.strictEqual(next.lastError, `failure ${attempt}`)
              lease = next.lease
              if (attempt === 12) {
                assert.deepStrictEqual(
                  next.errors.map((e) => [e.attempt, e.error, e.at.getTime()]),
                  Array.from({ length: 10 }, (_, i) => [i + 3, `failure ${i + 3}`, times[i + 2]])
                )
              }
            }
            // Neither a release nor a snooze is a failure.
            yield* op.release(lease, true)
            const released = yield* op.claimOne()
            assert.strictEqual(released.errors.length, 10)
            assert.isTrue(yield* op.settleOne(released.lease, Outcome.Snoozed({ delay: Duration.zero })))
            const snoozed = yield* op.claimOne()
            assert.strictEqual(snoozed.lastError, "failure 12")
            // A redrive starts afresh.
            yield* op.dead(snoozed.lease, "fatal")
            assert.strictEqual(yield* store.redrive([id]), 1)
            const redriven = yield* op.claimOne()
            assert.deepStrictEqual([redriven.attempt, redriven.lastError, redriven.errors], [1, undefined, []])
          })
      )

      test("Retry with a delay of zero makes the job ready at once", (_store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          yield* op.retry((yield* op.claimOne()).lease, 0)
          const again = yield* op.claimOne()
          assert.strictEqual(again.id, id)
          assert.strictEqual(again.attempt, 2)
        }))

      test(
        "Dead moves the job to the dead letters with its error, at the store's now",
        (store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ name: "charge", queue: "billing", payload: { cents: 5 } })
            const claimed = yield* op.claimOne({ queues: ["billing"], names: ["charge"] })
            yield* op.advance(1_000)
            const failedAt = yield* op.at(0)
            yield* op.dead(claimed.lease, "card declined")
            assert.deepStrictEqual(yield* store.deadLetters(), [{
              id,
              name: "charge",
              queue: "billing",
              payload: { cents: 5 },
              attempts: 1,
              lastError: "card declined",
              failedAt
            }])
            assert.deepStrictEqual(yield* op.stats, {
              ...zero,
              dead: 1,
              byQueue: { billing: { ...zero, dead: 1 } },
              readyByName: {},
              pausedQueues: []
            })
            assert.deepStrictEqual(yield* op.claim({ queues: ["billing"], names: ["charge"] }), [])
          })
      )

      test("Dead on an attempt before the last buries the job all the same", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue({ maxAttempts: 25 })
          yield* op.dead((yield* op.claimOne()).lease, "fatal")
          assert.deepStrictEqual((yield* store.deadLetters()).map((job) => [job.id, job.attempts]), [[id, 1]])
        }))

      test("Released makes the job ready at once, its attempt counted", (_store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          yield* op.release((yield* op.claimOne()).lease, false)
          const again = yield* op.claimOne()
          assert.strictEqual(again.id, id)
          assert.strictEqual(again.attempt, 2)
        }))

      test(
        "Released with refund makes the job ready at once, its attempt not counted",
        (_store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ maxAttempts: 1 })
            yield* op.release((yield* op.claimOne()).lease, true)
            const again = yield* op.claimOne()
            assert.strictEqual(again.id, id)
            assert.strictEqual(again.attempt, 1)
            yield* op.release(again.lease, true)
            assert.strictEqual((yield* op.claimOne()).attempt, 1, "refunded again")
          })
      )

      test(
        "Snoozed schedules the job delay after the settle by the store's clock, its attempt not counted",
        (_store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ maxAttempts: 1 })
            const claimed = yield* op.claimOne()
            yield* op.advance(5_000)
            const settledAt = yield* op.at(0)
            assert.isTrue(yield* op.settleOne(claimed.lease, Outcome.Snoozed({ delay: Duration.seconds(10) })))
            assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, scheduled: 1 }))
            yield* op.advance(9_999)
            assert.deepStrictEqual(yield* op.claim(), [], "one tick before the delay is over")
            yield* op.advance(1)
            const again = yield* op.claimOne()
            assert.strictEqual(again.id, id)
            assert.strictEqual(again.attempt, 1, "the snoozed attempt did not count, so the last one is still to come")
            assert.strictEqual(again.runAt.getTime(), settledAt.getTime() + 10_000)
            assert.isTrue(yield* op.settleOne(again.lease, Outcome.Snoozed({ delay: Duration.zero })))
            assert.strictEqual((yield* op.claimOne()).attempt, 1, "snoozed again, ready at once")
          })
      )

      test(
        "applies a batch of every kind of outcome in one call, and answers in order",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const ids = yield* store.enqueue(Array.from({ length: 5 }, (_, i) => op.job(now, { payload: { i } })))
            const claimed = yield* op.claim()
            assert.deepStrictEqual(claimed.map((job) => job.id), ids)
            const [completed, retried, dead, released, refunded] = claimed
            const applied = yield* store.settle([
              { lease: completed!.lease, outcome: Outcome.Completed() },
              { lease: retried!.lease, outcome: Outcome.Retry({ delay: Duration.seconds(5), error: "again" }) },
              { lease: { jobId: "no-such-job", token: "t" }, outcome: Outcome.Completed() },
              { lease: dead!.lease, outcome: Outcome.Dead({ error: "fatal" }) },
              { lease: released!.lease, outcome: Outcome.Released({ refund: false }) },
              { lease: refunded!.lease, outcome: Outcome.Released({ refund: true }) }
            ])
            assert.deepStrictEqual(applied, [true, true, false, true, true, true])
            assert.deepStrictEqual(
              yield* op.stats,
              onlyEmails({ ready: 2, scheduled: 1, leased: 0, dead: 1, cancelled: 0, succeeded: 0 })
            )
            const back = yield* op.claim()
            assert.deepStrictEqual(back.map((job) => [job.id, job.attempt]), [[released!.id, 2], [refunded!.id, 1]])
            assert.deepStrictEqual((yield* store.deadLetters()).map((job) => job.id), [dead!.id])
            yield* op.advance(5_000)
            assert.deepStrictEqual((yield* op.claim()).map((job) => [job.id, job.attempt]), [[retried!.id, 2]])
            assert.deepStrictEqual(yield* store.settle([]), [])
          })
      )

      for (const outcome of everyOutcome) {
        const kind = outcome._tag === "Retry"
          ? `Retry after ${Duration.format(outcome.delay)}`
          : outcome._tag === "Released"
          ? `Released ${outcome.refund ? "with" : "without"} refund`
          : outcome._tag === "Snoozed"
          ? `Snoozed for ${Duration.format(outcome.delay)}`
          : outcome._tag

        test(`${kind} changes nothing once the lease expired by the store's clock, even if nobody claimed again`, (
          store,
          op
        ) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ key: "k" })
            const claimed = yield* op.claimOne()
            yield* op.advance(LEASE_MS)
            assert.deepStrictEqual(yield* op.settleOne(claimed.lease, outcome), false, "at the expiry instant")
            assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, ready: 1 }))
            assert.deepStrictEqual(yield* store.deadLetters(), [])
            assert.strictEqual(yield* op.enqueue({ key: "k" }), id, "the job still holds its key")
            const again = yield* op.claimOne()
            assert.strictEqual(again.id, id)
            assert.strictEqual(again.attempt, 2, "the expired attempt counted, and no refund")
          }))

        test(`${kind} changes nothing once the job was claimed again, and the new holder's lease is untouched`, (
          store,
          op
        ) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue()
            const first = yield* op.claimOne()
            yield* op.advance(LEASE_MS)
            const second = yield* op.claimOne({ worker: "worker-b" })
            assert.strictEqual(second.id, id)
            assert.deepStrictEqual(yield* op.settleOne(first.lease, outcome), false)
            assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, leased: 1 }))
            assert.deepStrictEqual(yield* store.deadLetters(), [])
            assert.deepStrictEqual(yield* op.claim(), [], "still held by the new holder")
            assert.deepStrictEqual(yield* store.renew([second.lease], LEASE), [])
            yield* op.release(second.lease, false)
            assert.strictEqual((yield* op.claimOne()).attempt, 3)
          }))

        test(`${kind} changes nothing once the lease was settled`, (_store, op) =>
          Effect.gen(function*() {
            const id = yield* op.enqueue({ maxAttempts: 1 })
            const claimed = yield* op.claimOne()
            yield* op.release(claimed.lease, true)
            assert.deepStrictEqual(yield* op.settleOne(claimed.lease, outcome), false)
            assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, ready: 1 }))
            const again = yield* op.claimOne()
            assert.strictEqual(again.id, id)
            assert.strictEqual(again.attempt, 1)
          }))
      }

      test("of concurrent settles of one lease, exactly one applies", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          const claimed = yield* op.claimOne()
          const answers = yield* Effect.all(
            everyOutcome.map((outcome) => op.settleOne(claimed.lease, outcome)),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(answers.filter((applied) => applied).length, 1, `answers: ${answers.join(", ")}`)
          assert.deepStrictEqual(yield* store.renew([claimed.lease], LEASE), [id])
        }))

      test("a lease holds until one tick before its expiry instant", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          yield* store.enqueue([op.job(now), op.job(now)])
          const [a, b] = yield* op.claim()
          yield* op.advance(LEASE_MS - 1)
          assert.deepStrictEqual(
            yield* store.settle([{ lease: a!.lease, outcome: Outcome.Completed() }]),
            [true],
            "one tick before"
          )
          yield* op.advance(1)
          assert.deepStrictEqual(yield* store.settle([{ lease: b!.lease, outcome: Outcome.Completed() }]), [false])
        }))

      test("refuses a lease whose token is not the job's", (store, op) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue()
          const claimed = yield* op.claimOne()
          const forged = { jobId: id, token: `${claimed.lease.token}-forged` }
          assert.deepStrictEqual(yield* store.settle([{ lease: forged, outcome: Outcome.Completed() }]), [false])
          assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, leased: 1 }))
          yield* op.complete(claimed.lease)
        }))
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
          assert.deepStrictEqual(yield* store.reap, { reaped: 0, buried: [] }, "nothing expired yet")
          yield* op.advance(10_000)
          yield* store.renew([claimed[2]!.lease], LEASE)
          yield* op.advance(LEASE_MS - 10_000)
          const reaped = yield* store.reap
          assert.strictEqual(reaped.reaped, 2)
          assert.deepStrictEqual(reaped.buried, [{
            id: exhausted!,
            name: "send-email",
            queue: "emails",
            attempt: 1,
            error: "lease expired"
          }])
          assert.deepStrictEqual(
            yield* op.stats,
            onlyEmails({ ready: 1, scheduled: 0, leased: 1, dead: 1, cancelled: 0, succeeded: 0 })
          )
          const dead = yield* store.deadLetters()
          assert.deepStrictEqual(dead.map((job) => [job.id, job.attempts, job.lastError, job.payload]), [[
            exhausted,
            1,
            "lease expired",
            { n: 1 }
          ]])
          assert.deepStrictEqual(yield* store.reap, { reaped: 0, buried: [] }, "each expired lease is reaped once")
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
            yield* op.dead((yield* op.claimOne({ queues: ["c"] })).lease)
            yield* op.complete((yield* op.claimOne({ queues: ["d"] })).lease)
            assert.deepStrictEqual(yield* op.stats, {
              ready: 2,
              scheduled: 1,
              leased: 1,
              dead: 1,
              cancelled: 0,
              succeeded: 0,
              byQueue: {
                a: { ...zero, ready: 2, scheduled: 1 },
                b: { ...zero, leased: 1 },
                c: { ...zero, dead: 1 }
              },
              readyByName: { "send-email": 2 },
              pausedQueues: []
            })
          })
      )

      test(
        "counts the ready jobs per job name, across queues, and only the ready ones",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            yield* store.enqueue([
              op.job(now, { queue: "a", name: "resize" }),
              op.job(now, { queue: "b", name: "resize" }),
              op.job(now, { queue: "a", name: "orphan" }),
              op.job(now, { queue: "a", name: "leased" }),
              op.job(now, { queue: "a", name: "dead" }),
              op.job(yield* op.at(60_000), { queue: "a", name: "scheduled" })
            ])
            yield* op.claimOne({ queues: ["a"], names: ["leased"] })
            yield* op.dead((yield* op.claimOne({ queues: ["a"], names: ["dead"] })).lease)
            assert.deepStrictEqual((yield* op.stats).readyByName, { resize: 2, orphan: 1 })
          })
      )

      test("counts a job whose runAt has come as ready, and a job whose lease expired as ready or dead", (
        _store,
        op
      ) =>
        Effect.gen(function*() {
          yield* op.enqueue({ runAt: yield* op.at(10_000) })
          yield* op.enqueue()
          yield* op.enqueue({ name: "last-try", maxAttempts: 1 })
          yield* op.claimOne()
          yield* op.claimOne({ names: ["last-try"] })
          const check = (
            expected: QueueStats,
            readyByName: Record<string, number>,
            message: string
          ) =>
            Effect.gen(function*() {
              assert.deepStrictEqual(
                yield* op.stats,
                { ...expected, byQueue: { emails: expected }, readyByName, pausedQueues: [] },
                message
              )
            })
          yield* check({ ...zero, scheduled: 1, leased: 2 }, {}, "at first")
          yield* op.advance(10_000)
          yield* check({ ...zero, ready: 1, leased: 2 }, { "send-email": 1 }, "runAt has come")
          yield* op.advance(LEASE_MS - 10_000)
          yield* check({ ...zero, ready: 2, dead: 1 }, { "send-email": 2 }, "the leases expired")
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
              yield* op.dead(job.lease, `error ${i + 1}`)
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
          yield* op.advance(LEASE_MS)
          const reaped = yield* store.reap
          assert.strictEqual(reaped.reaped, 101)
          assert.strictEqual(reaped.buried.length, 101)
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
          yield* op.release(first!.lease, false)
          const claimed = yield* op.claim()
          assert.deepStrictEqual(claimed.map((job) => [job.id, job.attempt]), [[tired, 2], [other, 1]])
          for (const job of claimed) yield* op.dead(job.lease)
          yield* op.advance(60_000)
          // Enqueued at the instant of the redrive, with the same runAt: a redriven job goes behind it.
          const fresh = yield* op.enqueue({ payload: { job: "fresh" } })
          assert.strictEqual(yield* store.redrive([tired!, "no-such-job", tired!]), 1)
          assert.deepStrictEqual((yield* store.deadLetters()).map((job) => job.id), [other])
          assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, ready: 2, dead: 1 }))
          const back = yield* op.claim()
          assert.deepStrictEqual(back.map((job) => job.payload), [{ job: "fresh" }, { job: "tired" }])
          assert.strictEqual(back[0]!.id, fresh)
          assert.strictEqual(back[1]!.id, tired, "a redriven job keeps its id")
          assert.strictEqual(back[1]!.attempt, 1, "attempts reset")
          assert.strictEqual(back[1]!.maxAttempts, 2)
          assert.strictEqual(yield* store.redrive([tired!]), 0, "a live job is not redriven")
          assert.strictEqual(yield* store.redrive([]), 0)
        }))

      test("redrive skips a dead job whose key a live job holds by now, and moves it once the key is free", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const dead = yield* op.enqueue({ key: "k" })
          yield* op.dead((yield* op.claimOne()).lease)
          const live = yield* op.enqueue({ key: "k" })
          assert.notStrictEqual(live, dead)
          assert.strictEqual(yield* store.redrive([dead]), 0)
          assert.deepStrictEqual((yield* store.deadLetters()).map((job) => job.id), [dead])
          yield* op.complete((yield* op.claimOne()).lease)
          assert.strictEqual(yield* store.redrive([dead]), 1, "once the key is free again")
          assert.strictEqual(yield* op.enqueue({ key: "k" }), dead, "and it holds the key")
        }))
    })

    describe("prune", () => {
      test(
        "deletes the dead letters older than the retention (14 days by default), oldest first, and nothing else",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const ids = yield* store.enqueue(Array.from({ length: 4 }, () => op.job(now)))
            // Two die now, one a day later; the fourth waits, ready.
            const claimed = yield* op.claim({ limit: 2 })
            yield* op.dead(claimed[0]!.lease, "first")
            yield* op.dead(claimed[1]!.lease, "second")
            yield* op.advance(Duration.toMillis(Duration.days(1)))
            yield* op.dead((yield* op.claimOne()).lease, "third")
            // Exactly 14 days after the first two died: not older than the retention yet.
            yield* op.advance(Duration.toMillis(Duration.days(13)))
            assert.deepStrictEqual(yield* store.prune, { pruned: 0, more: false })
            yield* op.advance(1)
            assert.deepStrictEqual(yield* store.prune, { pruned: 2, more: false })
            assert.deepStrictEqual((yield* store.deadLetters()).map((job) => job.id), [ids[2]])
            assert.strictEqual((yield* store.stats).dead, 1)
            // Pruned is gone: a redrive finds nothing.
            assert.strictEqual(yield* store.redrive([ids[0]!]), 0)
            yield* op.advance(Duration.toMillis(Duration.days(1)))
            assert.deepStrictEqual(yield* store.prune, { pruned: 1, more: false })
            const stats = yield* store.stats
            assert.deepStrictEqual([stats.dead, stats.ready], [0, 1])
          })
      )

      test("deletes 1,000 at most per call, and says when more are left", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          yield* store.enqueue(Array.from({ length: 1_001 }, () => op.job(now, { maxAttempts: 1 })))
          const claimed = yield* op.claim({ limit: 1_001 })
          yield* store.settle(claimed.map((job) => ({ lease: job.lease, outcome: Outcome.Dead({ error: "boom" }) })))
          yield* op.advance(Duration.toMillis(Duration.days(15)))
          assert.deepStrictEqual(yield* store.prune, { pruned: 1_000, more: true })
          assert.deepStrictEqual(yield* store.prune, { pruned: 1, more: false })
          assert.strictEqual((yield* store.stats).dead, 0)
        }))
    })

    describe("enqueueSlot", () => {
      const slot = (schedule: string, at: Date, backfill = false, fields?: Partial<NewJob>) => ({
        schedule,
        slot: at,
        backfill,
        job: newJob({ runAt: at, ...fields })
      })

      test("stores each slot of a schedule once, none before its first; the job carries its slot", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const [t0, t1, t2, t3] = [yield* op.at(0), yield* op.at(1_000), yield* op.at(2_000), yield* op.at(3_000)]
          const first = yield* store.enqueueSlot(slot("nightly", t1))
          assert.isString(first)
          assert.isUndefined(yield* store.enqueueSlot(slot("nightly", t1)), "the same slot again")
          assert.isUndefined(yield* store.enqueueSlot(slot("nightly", t0)), "a slot before the schedule's first")
          assert.isString(yield* store.enqueueSlot(slot("other", t0)), "another schedule has its own slots")
          const third = yield* store.enqueueSlot(slot("nightly", t3))
          // A worker held up past t3 offers t2 late: nobody took it, so it is stored, once.
          const second = yield* store.enqueueSlot(slot("nightly", t2))
          assert.isString(second)
          assert.isUndefined(yield* store.enqueueSlot(slot("nightly", t2)), "the late slot again")
          assert.strictEqual(new Set([first, second, third]).size, 3)
          yield* op.advance(3_000)
          const claimed = yield* op.claim()
          assert.deepStrictEqual(
            claimed.map((job) => [job.scheduledFor?.getTime(), job.runAt.getTime()]),
            [t0, t1, t2, t3].map((t) => [t.getTime(), t.getTime()])
          )
          const plain = yield* op.enqueue()
          const [unscheduled] = yield* op.claim()
          assert.strictEqual(unscheduled!.id, plain)
          assert.isUndefined(unscheduled!.scheduledFor)
        }))

      test(
        "remembers a schedule's latest 16 slots: a slot older than all of them is refused",
        (store, op) =>
          Effect.gen(function*() {
            const at = (s: number) => op.at(s * 1_000)
            yield* store.enqueueSlot(slot("busy", yield* at(0)))
            for (let s = 2; s <= 17; s++) yield* store.enqueueSlot(slot("busy", yield* at(s)))
            assert.isUndefined(yield* store.enqueueSlot(slot("busy", yield* at(1))), "older than the latest 16")
            for (let s = 19; s <= 33; s++) yield* store.enqueueSlot(slot("busy", yield* at(s)))
            assert.isString(yield* store.enqueueSlot(slot("busy", yield* at(18))), "among the latest 16's span")
          })
      )

      test(
        "stores a backfilled slot only for a schedule it knows, after its first slot",
        (store, op) =>
          Effect.gen(function*() {
            const [t0, t1, t2] = [yield* op.at(-2_000), yield* op.at(-1_000), yield* op.at(0)]
            assert.isUndefined(yield* store.enqueueSlot(slot("new", t0, true)), "a schedule never seen")
            assert.isString(yield* store.enqueueSlot(slot("new", t1)))
            assert.isUndefined(yield* store.enqueueSlot(slot("new", t0, true)), "before its first slot")
            assert.isString(yield* store.enqueueSlot(slot("new", t2, true)))
            assert.strictEqual((yield* store.stats).ready, 2)
          })
      )

      test("of twenty concurrent offers of one slot, one stores it", (store, op) =>
        Effect.gen(function*() {
          const at = yield* op.at(0)
          const answers = yield* Effect.all(
            Array.from({ length: 20 }, () => store.enqueueSlot(slot("busy", at))),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(answers.filter((id) => id !== undefined).length, 1, answers.join(", "))
          assert.strictEqual((yield* store.stats).ready, 1)
        }))

      test(
        "a slot's job keyed by a live job gets that job's id, and the slot is taken",
        (store, op) =>
          Effect.gen(function*() {
            const holder = yield* op.enqueue({ key: "report" })
            const at = yield* op.at(0)
            assert.strictEqual(yield* store.enqueueSlot(slot("keyed", at, false, { key: "report" })), holder)
            assert.isUndefined(yield* store.enqueueSlot(slot("keyed", at)))
            assert.strictEqual((yield* store.stats).ready, 1)
          })
      )

      test("wakes the queue of a slot's job that is ready now", (store, op) =>
        Effect.gen(function*() {
          const received = yield* subscribeWakeups(store)
          yield* store.enqueueSlot(slot("wake", yield* op.at(0), false, { queue: "slots" }))
          yield* awaitWakeups(received, ["slots"])
        }))
    })

    describe("pauseQueue and resumeQueue", () => {
      test(
        "a paused queue gives no job to any claim until resumed; other queues go on; stats lists it",
        (store, op) =>
          Effect.gen(function*() {
            const [first, , other] = yield* store.enqueue([
              op.job(yield* op.at(0), { queue: "paused" }),
              op.job(yield* op.at(0), { queue: "paused" }),
              op.job(yield* op.at(0), { queue: "other" })
            ])
            const running = yield* op.claimOne({ queues: ["paused"] })
            assert.strictEqual(running.id, first)
            yield* store.pauseQueue("paused")
            yield* store.pauseQueue("paused")
            yield* store.pauseQueue("empty")
            assert.deepStrictEqual(
              (yield* op.claim({ queues: ["paused", "other"] })).map((job) => job.id),
              [other],
              "only the other queue's job"
            )
            const stats = yield* store.stats
            assert.deepStrictEqual(stats.pausedQueues, ["empty", "paused"])
            assert.deepStrictEqual(stats.byQueue["paused"], {
              ready: 1,
              scheduled: 0,
              leased: 1,
              dead: 0,
              cancelled: 0,
              succeeded: 0
            })
            // A job claimed before the pause runs to its end, and one that fails waits for the resume.
            yield* op.retry(running.lease, 0)
            assert.deepStrictEqual(yield* op.claim({ queues: ["paused"] }), [])
            yield* store.resumeQueue("paused")
            yield* store.resumeQueue("paused")
            yield* store.resumeQueue("never-paused")
            assert.strictEqual((yield* op.claim({ queues: ["paused"] })).length, 2)
            assert.deepStrictEqual((yield* store.stats).pausedQueues, ["empty"])
          })
      )

      test("a job whose lease expired in a paused queue is not claimed again until the queue is resumed", (
        store,
        op
      ) =>
        Effect.gen(function*() {
          const id = yield* op.enqueue({ queue: "paused" })
          yield* op.claimOne({ queues: ["paused"] })
          yield* store.pauseQueue("paused")
          yield* op.advance(LEASE_MS)
          assert.deepStrictEqual(yield* op.claim({ queues: ["paused"] }), [])
          yield* store.resumeQueue("paused")
          assert.deepStrictEqual(yield* op.claimIds({ queues: ["paused"] }), [id])
        }))

      test("resumeQueue wakes the queue's workers", (store, op) =>
        Effect.gen(function*() {
          yield* store.pauseQueue("held")
          yield* op.enqueue({ queue: "held" })
          const received = yield* subscribeWakeups(store)
          yield* store.resumeQueue("held")
          yield* awaitWakeups(received, ["held"])
        }))
    })

    describe("wakeups", () => {
      /**
       * Enqueues a job in each queue that is not ready at once, moves the clock until it is, and claims it: the
       * queue then holds a leased job and never had one ready that could have woken it (or that a store could
       * repeat a wake-up for).
       */
      const leasedUnwoken = (op: Ops, queues: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const runAt = yield* op.at(1_000)
          for (const queue of queues) yield* op.enqueue({ queue, runAt })
          yield* op.advance(1_000)
          const claimed = yield* op.claim({ queues, limit: queues.length })
          assert.strictEqual(claimed.length, queues.length)
          return (queue: string) => claimed.find((job) => job.queue === queue)!
        })

      test(
        "is live when it returns: the next ready enqueue reaches it, with no probe",
        (store, op) =>
          Effect.gen(function*() {
            const received = yield* store.wakeups
            yield* op.enqueue({ queue: "first" })
            assert.strictEqual(yield* Queue.take(received), "first")
          })
      )

      test(
        "emits the queues that got a job ready now, not one that got only a delayed job",
        (store, op) =>
          Effect.gen(function*() {
            const received = yield* subscribeWakeups(store)
            yield* op.enqueue({ queue: "later", runAt: yield* op.at(60_000) })
            yield* store.enqueue([newJob({ queue: "later-too", runAt: undefined, delay: Duration.minutes(1) })])
            const now = yield* op.at(0)
            yield* store.enqueue([op.job(now, { queue: "now-a" }), op.job(now, { queue: "now-b" })])
            const woken = [
              ...(yield* awaitWakeups(received, ["now-a", "now-b"])),
              ...(yield* wakeupsBefore(store, received, "marker"))
            ]
            assert.notInclude(woken, "later")
            assert.notInclude(woken, "later-too")
          })
      )

      test("does not wake for an enqueue that found its key held", (store, op) =>
        Effect.gen(function*() {
          // Neither queue ever holds a ready job: any wake-up of them would come from the deduplicated enqueues.
          yield* op.enqueue({ queue: "dedup-scheduled", key: "k1", runAt: yield* op.at(60_000) })
          yield* op.enqueue({ queue: "dedup-leased", key: "k2", runAt: yield* op.at(1_000) })
          yield* op.advance(1_000)
          yield* op.claimOne({ queues: ["dedup-leased"] })
          const received = yield* subscribeWakeups(store)
          yield* op.enqueue({ queue: "dedup-scheduled", key: "k1", keyMode: "skip" })
          yield* op.enqueue({ queue: "dedup-leased", key: "k2", keyMode: "skip" })
          const woken = yield* wakeupsBefore(store, received, "marker")
          assert.notInclude(woken, "dedup-scheduled")
          assert.notInclude(woken, "dedup-leased")
        }))

      test(
        "wakes for Released, a Retry already due, a redrive and a reap that made jobs ready",
        (store, op) =>
          Effect.gen(function*() {
            const job = yield* leasedUnwoken(op, ["released", "retried", "redriven", "reaped"])
            const received = yield* subscribeWakeups(store)
            yield* op.release(job("released").lease, false)
            yield* awaitWakeups(received, ["released"])
            yield* op.retry(job("retried").lease, 0)
            yield* awaitWakeups(received, ["retried"])
            const redriven = job("redriven")
            yield* op.dead(redriven.lease)
            assert.strictEqual(yield* store.redrive([redriven.id]), 1)
            yield* awaitWakeups(received, ["redriven"])
            yield* op.advance(LEASE_MS)
            assert.strictEqual((yield* store.reap).reaped, 1)
            yield* awaitWakeups(received, ["reaped"])
          })
      )

      test("does not wake for a claim, Completed, Dead or a Retry not yet due", (store, op) =>
        Effect.gen(function*() {
          const job = yield* leasedUnwoken(op, ["completed", "dead", "retried-later"])
          const received = yield* subscribeWakeups(store)
          yield* op.complete(job("completed").lease)
          yield* op.dead(job("dead").lease)
          yield* op.retry(job("retried-later").lease, 60_000)
          const woken = yield* wakeupsBefore(store, received, "marker")
          assert.notInclude(woken, "completed")
          assert.notInclude(woken, "dead")
          assert.notInclude(woken, "retried-later")
        }))

      test("gives every subscriber every wake-up", (store, op) =>
        Effect.gen(function*() {
          const one = yield* subscribeWakeups(store)
          const two = yield* subscribeWakeups(store)
          yield* op.enqueue({ queue: "q" })
          assert.strictEqual(yield* Queue.take(one), "q")
          assert.strictEqual(yield* Queue.take(two), "q")
        }))
    })

    describe("get, list, cancel and cancelMany", () => {
      test("get finds a job in every state, with what an operator asks about", (store, op) =>
        Effect.gen(function*() {
          const now = yield* op.at(0)
          const [ready, scheduled, leased, dead, done] = yield* store.enqueue([
            op.job(now, { payload: { n: 1 }, key: "k1", priority: 3 }),
            op.job(yield* op.at(60_000), { payload: { n: 2 } }),
            op.job(now, { payload: { n: 3 } }),
            op.job(now, { payload: { n: 4 } }),
            op.job(now, { payload: { n: 5 } })
          ])
          const claimed = yield* op.claim({ limit: 4, worker: "worker-7" })
          const byId = new Map(claimed.map((job) => [job.id, job]))
          yield* op.dead(byId.get(dead!)!.lease, "it broke")
          yield* op.complete(byId.get(done!)!.lease)
          yield* op.retry(byId.get(ready!)!.lease, 0, "first try failed")
          const got = (id: string) => Effect.map(store.get(id), (job) => job!)

          const readyJob = yield* got(ready!)
          assert.deepStrictEqual(readyJob, {
            id: ready!,
            state: "ready",
            name: "send-email",
            queue: "emails",
            payload: { n: 1 },
            attempts: 1,
            maxAttempts: 5,
            priority: 3,
            key: "k1",
            enqueuedAt: now,
            runAt: now,
            lastError: "first try failed",
            errors: [{ attempt: 1, error: "first try failed", at: now }],
            scheduledFor: undefined,
            worker: undefined,
            leaseExpiresAt: undefined,
            endedAt: undefined,
            startedAt: undefined,
            durationMs: undefined,
            result: undefined
          })
          assert.deepInclude(yield* got(scheduled!), { state: "scheduled", attempts: 0, runAt: yield* op.at(60_000) })
          assert.deepInclude(yield* got(leased!), {
            state: "leased",
            attempts: 1,
            worker: "worker-7",
            leaseExpiresAt: yield* op.at(LEASE_MS),
            startedAt: now,
            endedAt: undefined
          })
          assert.deepInclude(yield* got(dead!), {
            state: "dead",
            lastError: "it broke",
            endedAt: now,
            worker: undefined,
            leaseExpiresAt: undefined,
            payload: { n: 4 }
          })
          assert.isUndefined(yield* store.get(done!), "a completed job is not kept")
          assert.isUndefined(yield* store.get("999999"), "no such job")
          assert.isUndefined(yield* store.get("not-an-id"), "no such job")
        }))

      test(
        "list pages newest first, by state, queue, name and key, and says when another page follows",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const ids = yield* store.enqueue([
              op.job(now, { queue: "a" }),
              op.job(now, { queue: "b", name: "resize" }),
              op.job(yield* op.at(60_000), { queue: "a", key: "later" }),
              op.job(now, { queue: "a" }),
              op.job(now, { queue: "b" })
            ])
            const idsOf = (page: { readonly jobs: ReadonlyArray<{ readonly id: string }> }) =>
              page.jobs.map((job) => job.id)
            const all = yield* store.list()
            assert.deepStrictEqual(idsOf(all), [...ids].reverse())
            assert.isUndefined(all.next)

            const first = yield* store.list({ limit: 2 })
            assert.deepStrictEqual(idsOf(first), [ids[4], ids[3]])
            assert.strictEqual(first.next, ids[3])
            const second = yield* store.list({ limit: 2, after: first.next })
            assert.deepStrictEqual(idsOf(second), [ids[2], ids[1]])
            const third = yield* store.list({ limit: 2, after: second.next })
            assert.deepStrictEqual(idsOf(third), [ids[0]])
            assert.isUndefined(third.next, "the last page says so")

            assert.deepStrictEqual(idsOf(yield* store.list({ queue: "a" })), [ids[3], ids[2], ids[0]])
            assert.deepStrictEqual(idsOf(yield* store.list({ name: "resize" })), [ids[1]])
            assert.deepStrictEqual(idsOf(yield* store.list({ queue: "b", name: "send-email" })), [ids[4]])
            assert.deepStrictEqual(idsOf(yield* store.list({ key: "later" })), [ids[2]])
            assert.deepStrictEqual(idsOf(yield* store.list({ state: "scheduled" })), [ids[2]])
            assert.deepStrictEqual(idsOf(yield* store.list({ state: "ready", queue: "a" })), [ids[3], ids[0]])

            const [claimed] = yield* op.claim({ queues: ["b"], names: ["resize"], limit: 1 })
            assert.deepStrictEqual(idsOf(yield* store.list({ state: "leased" })), [claimed!.id])
            yield* op.dead(claimed!.lease)
            assert.deepStrictEqual(idsOf(yield* store.list({ state: "dead" })), [ids[1]])
            assert.deepStrictEqual(idsOf(yield* store.list({ state: "leased" })), [])
            assert.deepStrictEqual(idsOf(yield* store.list({ state: "succeeded" })), [])
            assert.deepStrictEqual(idsOf(yield* store.list({ after: "not-an-id" })), [])
            assert.deepStrictEqual((yield* store.list({ state: "dead" })).jobs[0]!.state, "dead")
          })
      )

      test(
        "cancel of a waiting job: it never runs, its key is free, and it is kept as cancelled",
        (store, op) =>
          Effect.gen(function*() {
            const ready = yield* op.enqueue({ key: "report" })
            const scheduled = yield* op.enqueue({ runAt: yield* op.at(1_000) })
            assert.strictEqual(yield* store.cancel(ready), "cancelled")
            assert.strictEqual(yield* store.cancel(scheduled), "cancelled")
            yield* op.advance(2_000)
            assert.deepStrictEqual(yield* op.claim(), [], "neither runs")
            assert.deepInclude(yield* store.get(ready), { state: "cancelled", lastError: "cancelled" })
            assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, cancelled: 2, succeeded: 0 }))
            assert.deepStrictEqual(yield* store.deadLetters(), [], "a cancelled job is no dead letter")
            assert.strictEqual(yield* store.cancel(ready), "alreadyFinished")
            assert.strictEqual(yield* store.cancel("999999"), "notFound")
            assert.strictEqual(yield* store.cancel("not-an-id"), "notFound")
            const [again] = yield* store.insert([newJob({ key: "report" })])
            assert.strictEqual(again!.outcome, "inserted", "the key is free")
            assert.strictEqual(yield* store.redrive([scheduled]), 1, "a cancelled job can be redriven")
            assert.deepInclude(yield* store.get(scheduled), { state: "ready", attempts: 0 })
          })
      )

      test(
        "cancel of a running job: its worker is told, its lease no longer holds, and a late settle changes nothing",
        (store, op) =>
          Effect.gen(function*() {
            const cancellations = yield* store.cancellations
            const id = yield* op.enqueue({ key: "k" })
            const claimed = yield* op.claimOne()
            const next = (yield* store.insert([newJob({ key: "k", payload: { after: true } })]))[0]!
            assert.strictEqual(next.outcome, "queuedAfter")
            assert.strictEqual(yield* store.cancel(id), "cancelled")
            assert.strictEqual(yield* Queue.take(cancellations), id, "the worker is told")
            assert.deepStrictEqual(yield* store.renew([claimed.lease], LEASE), [id], "the lease no longer holds")
            assert.isFalse(yield* op.settleOne(claimed.lease, Outcome.Completed()), "a late settle changes nothing")
            assert.deepInclude(yield* store.get(id), { state: "cancelled", attempts: 1 })
            const promoted = yield* op.claimOne()
            assert.strictEqual(promoted.id, next.id, "the job kept to run after it holds the key now")
            assert.deepStrictEqual(promoted.payload, { after: true })
          })
      )

      test(
        "cancel of a job kept to run after its key's holder leaves the holder be",
        (store, op) =>
          Effect.gen(function*() {
            yield* op.enqueue({ key: "k" })
            const holder = yield* op.claimOne()
            const next = (yield* store.insert([newJob({ key: "k" })]))[0]!
            assert.deepInclude(yield* store.get(next.id), { state: "scheduled" })
            assert.strictEqual(yield* store.cancel(next.id), "cancelled")
            yield* op.complete(holder.lease)
            assert.deepStrictEqual(yield* op.claim(), [], "nothing runs after the holder")
            assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, cancelled: 1, succeeded: 0 }))
          })
      )

      test(
        "cancelMany cancels every live job of a queue or a name, in batches, optionally of one state",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            yield* store.enqueue(Array.from({ length: 2_500 }, () => op.job(now, { queue: "bulk" })))
            yield* store.enqueue([op.job(now, { queue: "other" }), op.job(now, { queue: "bulk", name: "resize" })])
            const later = yield* op.enqueue({ queue: "bulk", runAt: yield* op.at(60_000) })
            const running = yield* op.claimOne({ queues: ["bulk"] })
            const cancellations = yield* store.cancellations
            assert.strictEqual(yield* store.cancelMany({ queue: "bulk", state: "scheduled" }), 1)
            assert.deepInclude(yield* store.get(later), { state: "cancelled" })
            assert.strictEqual(yield* store.cancelMany({ queue: "bulk", name: "send-email" }), 2_500)
            assert.strictEqual(yield* Queue.take(cancellations), running.id, "the running one's worker is told")
            assert.deepStrictEqual((yield* store.stats).byQueue["bulk"], {
              ...zero,
              ready: 1,
              cancelled: 2_501,
              succeeded: 0
            })
            assert.strictEqual(yield* store.cancelMany({ name: "resize" }), 1)
            assert.strictEqual(yield* store.cancelMany({ queue: "bulk" }), 0)
            assert.deepInclude((yield* store.stats).byQueue["other"], { ready: 1 })
          })
      )
    })

    describe("succeededRetention", () => {
      test(
        "keeps a completed job as succeeded, with its run time, for the retention, then prunes it",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const [one, two] = yield* store.enqueue([
              op.job(now, { payload: { n: 1 } }),
              op.job(now, { payload: { n: 2 } })
            ])
            const claimed = yield* op.claim()
            const byId = new Map(claimed.map((job) => [job.id, job]))
            // One settle of completions only, one of mixed outcomes: both keep what completed.
            yield* store.settle([{
              lease: byId.get(one!)!.lease,
              outcome: Outcome.Completed(),
              durationMs: 42,
              result: { sent: true, to: ["a"] }
            }])
            yield* store.settle([
              { lease: byId.get(two!)!.lease, outcome: Outcome.Completed(), durationMs: 7 },
              { lease: { jobId: "999999", token: "1" }, outcome: Outcome.Retry({ delay: Duration.zero, error: "x" }) }
            ])
            assert.deepInclude(yield* store.get(one!), {
              state: "succeeded",
              payload: { n: 1 },
              attempts: 1,
              endedAt: now,
              durationMs: 42,
              result: { sent: true, to: ["a"] },
              worker: undefined
            })
            assert.deepInclude(yield* store.get(two!), { state: "succeeded", durationMs: 7, result: undefined })
            assert.deepStrictEqual((yield* store.list({ state: "succeeded" })).jobs.map((job) => job.id), [two, one])
            assert.strictEqual(yield* store.cancel(one!), "alreadyFinished")
            assert.strictEqual(yield* store.redrive([one!]), 0, "a succeeded job is not redriven")
            assert.strictEqual(yield* store.delete([one!]), 0, "nor deleted by hand: the prune takes it")
            assert.deepStrictEqual(yield* op.stats, onlyEmails({ ...zero, succeeded: 2 }), "counted as succeeded only")
            yield* op.advance(3_600_000)
            yield* store.prune
            assert.isDefined(yield* store.get(one!), "kept for the hour")
            yield* op.advance(1)
            assert.deepStrictEqual(yield* store.prune, { pruned: 2, more: false })
            assert.isUndefined(yield* store.get(one!))
            assert.deepStrictEqual((yield* store.list({ state: "succeeded" })).jobs, [])
            assert.deepStrictEqual(yield* op.stats, onlyEmails(zero))
          }),
        keeping
      )
    })

    describe("redriveMany, delete, deleteMany and runNow", () => {
      test(
        "redriveMany and deleteMany take the ended jobs of a filter, in pages, and delete takes ended ones only",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const ids = yield* store.enqueue(
              Array.from({ length: 1_203 }, (_, i) => op.job(now, { queue: i < 1_200 ? "bulk" : "other" }))
            )
            const claimed = yield* store.claim(op.request({ queues: ["bulk", "other"], limit: 1_203 }))
            yield* store.settle(
              claimed.jobs.map((job) => ({ lease: job.lease, outcome: Outcome.Dead({ error: "x" }) }))
            )
            const live = yield* op.enqueue({ queue: "bulk" })
            const cancelled = yield* op.enqueue({ queue: "bulk" })
            yield* store.cancel(cancelled)

            assert.strictEqual(yield* store.delete([live, cancelled, ids[0]!, "999999", "x"]), 2, "the live one stays")
            assert.deepInclude(yield* store.get(live), { state: "ready" })
            assert.isUndefined(yield* store.get(ids[0]!))
            assert.strictEqual(yield* store.redriveMany({ queue: "bulk", state: "cancelled" }), 0)
            assert.strictEqual(yield* store.redriveMany({ queue: "bulk" }), 1_199, "past a page of 1,000")
            assert.deepInclude((yield* store.stats).byQueue["bulk"], { ready: 1_200, dead: 0 })
            assert.strictEqual(yield* store.deleteMany({ name: "send-email", state: "dead" }), 3)
            assert.strictEqual((yield* store.stats).dead, 0)
            assert.strictEqual(yield* store.deleteMany({}), 0)
          })
      )

      test(
        "runNow makes a scheduled job ready now and wakes its queue; anything else it leaves be",
        (store, op) =>
          Effect.gen(function*() {
            const wakeups = yield* subscribeWakeups(store)
            const later = yield* op.enqueue({ queue: "later", runAt: yield* op.at(3_600_000) })
            const ready = yield* op.enqueue()
            assert.strictEqual(yield* store.runNow(later), "ready")
            yield* awaitWakeups(wakeups, ["later"])
            assert.deepInclude(yield* store.get(later), { state: "ready", runAt: yield* op.at(0) })
            assert.deepStrictEqual(yield* op.claimIds({ queues: ["later"] }), [later])
            assert.strictEqual(yield* store.runNow(later), "notScheduled", "it runs")
            assert.strictEqual(yield* store.runNow(ready), "notScheduled")
            assert.strictEqual(yield* store.runNow("999999"), "notFound")
            assert.strictEqual(yield* store.runNow("x"), "notFound")
          })
      )
    })

    describe("arguments that make no sense", () => {
      test(
        "die with an IllegalArgumentException naming the store, the operation and the argument",
        (store, op) =>
          Effect.gen(function*() {
            const now = yield* op.at(0)
            const bad = (fields: Partial<NewJob>) => Effect.exit(store.enqueue([op.job(now), op.job(now, fields)]))
            assertIllegal(yield* bad({ name: "" }), `${name}.enqueue: invalid job 1 name`)
            assertIllegal(yield* bad({ queue: 3 as unknown as string }), `${name}.enqueue: invalid job 1 queue`)
            assertIllegal(yield* bad({ runAt: new Date(Number.NaN) }), `${name}.enqueue: invalid job 1 runAt`)
            assertIllegal(yield* bad({ delay: Duration.infinity }), `${name}.enqueue: invalid job 1 delay`)
            assertIllegal(yield* bad({ priority: 0.5 }), `${name}.enqueue: invalid job 1 priority`)
            assertIllegal(yield* bad({ key: "" }), `${name}.enqueue: invalid job 1 key`)
            assertIllegal(yield* bad({ maxAttempts: 0 }), `${name}.enqueue: invalid job 1 maxAttempts`)
            assertIllegal(
              yield* Effect.exit(store.enqueue("x" as unknown as Array<NewJob>)),
              `${name}.enqueue: invalid jobs`
            )
            assert.deepStrictEqual(yield* op.stats, onlyEmails(zero), "a batch with a bad job stores nothing")

            const claim = (fields: Partial<ClaimRequest>) => Effect.exit(store.claim(claimRequest(fields)))
            assertIllegal(yield* claim({ limit: -1 }), `${name}.claim: invalid limit`)
            assertIllegal(yield* claim({ limit: 1.5 }), `${name}.claim: invalid limit`)
            assertIllegal(yield* claim({ lease: Duration.zero }), `${name}.claim: invalid lease`)
            assertIllegal(yield* claim({ lease: Duration.infinity }), `${name}.claim: invalid lease`)
            assertIllegal(
              yield* claim({ queues: "emails" as unknown as Array<string> }),
              `${name}.claim: invalid queues`
            )
            assertIllegal(
              yield* claim({ names: undefined as unknown as Array<string> }),
              `${name}.claim: invalid names`
            )

            yield* op.enqueue()
            const claimed = yield* op.claimOne()
            assertIllegal(
              yield* Effect.exit(store.renew([claimed.lease], Duration.zero)),
              `${name}.renew: invalid lease`
            )
            assertIllegal(
              yield* Effect.exit(store.renew([{ jobId: 1 } as unknown as Lease], LEASE)),
              `${name}.renew: invalid leases`
            )

            const settle = (settlement: unknown) =>
              Effect.exit(store.settle([
                { lease: claimed.lease, outcome: Outcome.Completed() },
                settlement as { lease: Lease; outcome: Outcome }
              ]))
            const lease = claimed.lease
            assertIllegal(
              yield* settle({ lease: undefined, outcome: Outcome.Completed() }),
              `${name}.settle: invalid settlement 1 lease`
            )
            assertIllegal(
              yield* settle({ lease, outcome: Outcome.Retry({ delay: Duration.infinity, error: "x" }) }),
              `${name}.settle: invalid settlement 1 delay`
            )
            assertIllegal(
              yield* settle({ lease, outcome: Outcome.Retry({ delay: Duration.days(365 * 101), error: "x" }) }),
              `${name}.settle: invalid settlement 1 delay`
            )
            assertIllegal(
              yield* settle({ lease, outcome: Outcome.Snoozed({ delay: Duration.infinity }) }),
              `${name}.settle: invalid settlement 1 delay`
            )
            assertIllegal(
              yield* settle({ lease, outcome: Outcome.Retry({ delay: Duration.zero, error: 3 as unknown as string }) }),
              `${name}.settle: invalid settlement 1 error`
            )
            assertIllegal(
              yield* settle({ lease, outcome: Outcome.Dead({ error: undefined as unknown as string }) }),
              `${name}.settle: invalid settlement 1 error`
            )
            assertIllegal(
              yield* settle({ lease, outcome: Outcome.Released({ refund: "yes" as unknown as boolean }) }),
              `${name}.settle: invalid settlement 1 refund`
            )
            assertIllegal(
              yield* settle({ lease, outcome: { _tag: "Done" } }),
              `${name}.settle: invalid settlement 1 outcome`
            )
            assertIllegal(yield* settle(null), `${name}.settle: invalid settlement 1`)
            assertIllegal(
              yield* Effect.exit(store.settle("x" as unknown as [])),
              `${name}.settle: invalid settlements`
            )

            assertIllegal(yield* Effect.exit(store.deadLetters({ limit: -1 })), `${name}.deadLetters: invalid limit`)
            assertIllegal(yield* Effect.exit(store.redrive([1 as unknown as string])), `${name}.redrive: invalid ids`)
            assertIllegal(yield* Effect.exit(store.pauseQueue("")), `${name}.pauseQueue: invalid queue`)
            assertIllegal(yield* Effect.exit(store.list({ limit: 0 })), `${name}.list: invalid limit`)
            assertIllegal(yield* Effect.exit(store.list({ limit: 1_001 })), `${name}.list: invalid limit`)
            assertIllegal(
              yield* Effect.exit(store.list({ state: "done" as "dead" })),
              `${name}.list: invalid state "done"`
            )
            assertIllegal(yield* Effect.exit(store.list({ queue: "" })), `${name}.list: invalid queue`)
            assertIllegal(yield* Effect.exit(store.get(7 as unknown as string)), `${name}.get: invalid id`)
            assertIllegal(
              yield* Effect.exit(store.cancel(undefined as unknown as string)),
              `${name}.cancel: invalid id`
            )
            assertIllegal(yield* Effect.exit(store.cancelMany({})), `${name}.cancelMany: invalid filter`)
            assertIllegal(
              yield* Effect.exit(store.redriveMany({ state: "ready" as "dead" })),
              `${name}.redriveMany: invalid state`
            )
            assertIllegal(yield* Effect.exit(store.deleteMany({ queue: "" })), `${name}.deleteMany: invalid queue`)
            assertIllegal(yield* Effect.exit(store.delete("1" as unknown as [])), `${name}.delete: invalid ids`)
            assertIllegal(yield* Effect.exit(store.runNow(1 as unknown as string)), `${name}.runNow: invalid id`)
            assertIllegal(
              yield* Effect.exit(store.settle([{ lease: claimed.lease, outcome: Outcome.Completed(), result: 1n }])),
              `${name}.settle: invalid settlement 0 result`
            )
            assertIllegal(
              yield* Effect.exit(
                store.settle([{ lease: claimed.lease, outcome: Outcome.Completed(), durationMs: -1 }])
              ),
              `${name}.settle: invalid settlement 0 durationMs`
            )
            assertIllegal(
              yield* Effect.exit(store.cancelMany({ queue: "q", state: "dead" as "ready" })),
              `${name}.cancelMany: invalid state`
            )
            const slot = { schedule: "s", slot: new Date(0), backfill: false, job: newJob() }
            assertIllegal(
              yield* Effect.exit(store.enqueueSlot({ ...slot, schedule: "" })),
              `${name}.enqueueSlot: invalid schedule`
            )
            assertIllegal(
              yield* Effect.exit(store.enqueueSlot({ ...slot, slot: new Date(NaN) })),
              `${name}.enqueueSlot: invalid slot`
            )
            assertIllegal(
              yield* Effect.exit(store.enqueueSlot({ ...slot, job: newJob({ maxAttempts: 0 }) })),
              `${name}.enqueueSlot: invalid job 0 maxAttempts`
            )
            assertIllegal(
              yield* Effect.exit(store.resumeQueue(undefined as unknown as string)),
              `${name}.resumeQueue: invalid queue`
            )
            assert.deepStrictEqual(
              yield* op.stats,
              onlyEmails({ ...zero, leased: 1 }),
              "nothing changed, the good settlement of a refused batch included"
            )
            yield* op.complete(claimed.lease)
          })
      )
    })
  })
}
