import { assert, describe, it } from "@effect/vitest"
import { Chunk, Clock, Duration, Effect, Either, Exit, FastCheck as fc, Logger, Queue, Scope, TestClock } from "effect"
import * as internal from "../src/internal/memoryJobStore.js"
import {
  type ClaimRequest,
  JobStore,
  JobStoreError,
  type Lease,
  Outcome,
  type QueueStats,
  type Settlement
} from "../src/JobStore.js"
import * as MemoryJobStore from "../src/MemoryJobStore.js"
import {
  assertIllegal,
  claimRequest,
  jobStoreConformance,
  LEASE,
  newJob,
  wakeupsBefore
} from "./jobStoreConformance.js"

jobStoreConformance(
  "MemoryJobStore",
  MemoryJobStore.layer(),
  { now: Clock.currentTimeMillis, advance: TestClock.adjust },
  MemoryJobStore.layer({ succeededRetention: "1 hour" })
)

const job = newJob
const request = claimRequest

const claim = (store: JobStore.Service, fields?: Partial<ClaimRequest>) =>
  Effect.map(store.claim(request(fields)), (result) => result.jobs)

const claimOne = (store: JobStore.Service, fields?: Partial<ClaimRequest>) =>
  Effect.map(claim(store, { limit: 1, ...fields }), (jobs) => {
    assert.strictEqual(jobs.length, 1, "one job claimed")
    return jobs[0]!
  })

/** Settles one lease that must hold. */
const settle = (store: JobStore.Service, lease: Lease, outcome: Outcome) =>
  Effect.map(store.settle([{ lease, outcome }]), (applied) => assert.deepStrictEqual(applied, [true]))

const complete = (store: JobStore.Service, lease: Lease) => settle(store, lease, Outcome.Completed())
const dead = (store: JobStore.Service, lease: Lease, error: string) => settle(store, lease, Outcome.Dead({ error }))

const zero: QueueStats = { ready: 0, scheduled: 0, leased: 0, dead: 0, cancelled: 0, succeeded: 0 }
const empty = { ...zero, byQueue: {}, readyByName: {}, pausedQueues: [] }

/** The warnings logged while `self` runs, and its result. */
const warningsOf = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") lines.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    const value = yield* Effect.provide(self, Logger.replace(Logger.defaultLogger, logger))
    return [value, lines] as const
  })

describe("MemoryJobStore", () => {
  describe("options", () => {
    it.effect("rejects options that make no sense with an IllegalArgumentException naming the option", () =>
      Effect.gen(function*() {
        for (const maxDeadLetters of [-1, 1.5, Number.NaN, Infinity, "10" as unknown as number]) {
          assertIllegal(yield* Effect.exit(MemoryJobStore.make({ maxDeadLetters })), "maxDeadLetters")
        }
        for (const maxJobs of [0, -1, 2.5, Number.NaN, "10" as unknown as number]) {
          assertIllegal(yield* Effect.exit(MemoryJobStore.make({ maxJobs })), "maxJobs")
        }
        for (const deadLetterRetention of [0, -1, "soon", Duration.zero]) {
          assertIllegal(
            yield* Effect.exit(
              MemoryJobStore.make({ deadLetterRetention: deadLetterRetention as Duration.DurationInput })
            ),
            "deadLetterRetention"
          )
        }
        const exit = yield* Effect.exit(Effect.provide(JobStore, MemoryJobStore.layer({ maxDeadLetters: -1 })))
        assertIllegal(exit, "MemoryJobStore: invalid maxDeadLetters \"-1\"")
        // The edges are fine.
        yield* MemoryJobStore.make({ maxDeadLetters: 0, maxJobs: 1 })
        yield* MemoryJobStore.make({ maxJobs: Infinity, deadLetterRetention: Duration.infinity })
        yield* MemoryJobStore.make({ maxDeadLetters: undefined, maxJobs: undefined })
      }))

    it.effect("counts a cancelled job out of maxJobs once, whichever state it was cancelled in", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make({ maxJobs: 3 })
        yield* store.enqueue([job({ key: "k" }), job()])
        yield* claim(store, { limit: 1 })
        const [kept] = yield* store.insert([job({ key: "k" })])
        assert.strictEqual(kept!.outcome, "queuedAfter", "three live jobs: the holder, the one after it, one more")
        yield* store.cancel(kept!.id)
        yield* store.enqueue([job()])
        const full = yield* Effect.either(store.enqueue([job()]))
        assert.isTrue(Either.isLeft(full), "three live jobs again: a fourth does not fit")
      }))

    it.effect("builds a new, empty store each time the layer is built", () =>
      Effect.gen(function*() {
        const layer = MemoryJobStore.layer()
        yield* Effect.provide(Effect.flatMap(JobStore, (store) => store.enqueue([job()])), layer)
        const stats = yield* Effect.provide(Effect.flatMap(JobStore, (store) => store.stats), layer)
        assert.deepStrictEqual(stats, empty)
      }))
  })

  describe("time", () => {
    it.effect("is the Clock the store was built with, whatever the clock of the fiber that calls it", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        // A caller an hour ahead (a producer or a worker whose clock is off) moves nothing.
        const base = yield* Effect.clock
        const ahead: Clock.Clock = Object.create(base, {
          unsafeCurrentTimeMillis: { value: () => base.unsafeCurrentTimeMillis() + 3_600_000 },
          currentTimeMillis: { value: Effect.map(base.currentTimeMillis, (millis) => millis + 3_600_000) }
        })
        const skewed = <A, E>(effect: Effect.Effect<A, E>) => Effect.withClock(effect, ahead)
        assert.strictEqual(yield* skewed(Clock.currentTimeMillis), 3_600_000, "the caller's clock is off")
        const [id] = yield* skewed(store.enqueue([job({ runAt: undefined, delay: Duration.seconds(10) })]))
        assert.deepStrictEqual(yield* skewed(claim(store)), [], "not due by the caller's clock")
        yield* TestClock.adjust("10 seconds")
        const claimed = yield* skewed(claimOne(store))
        assert.strictEqual(claimed.id, id)
        assert.deepStrictEqual([claimed.enqueuedAt.getTime(), claimed.runAt.getTime()], [0, 10_000])
        assert.strictEqual(claimed.leaseExpiresAt.getTime(), 10_000 + Duration.toMillis(LEASE))
        yield* skewed(settle(store, claimed.lease, Outcome.Retry({ delay: Duration.minutes(10), error: "x" })))
        yield* TestClock.adjust(Duration.minutes(10).pipe(Duration.subtract(Duration.millis(1))))
        assert.deepStrictEqual(yield* skewed(claim(store)), [], "the retry is due 10 minutes after the settle")
        yield* TestClock.adjust(1)
        assert.strictEqual((yield* skewed(claimOne(store))).attempt, 2)
      }))
  })

  describe("ids", () => {
    it.effect("are the decimal strings of a counter, and a redriven job keeps its id", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        assert.deepStrictEqual(yield* store.enqueue([job(), job(), job({ key: "k" }), job({ key: "k" })]), [
          "1",
          "2",
          "3",
          "3"
        ])
        yield* dead(store, (yield* claimOne(store)).lease, "fatal")
        assert.strictEqual(yield* store.redrive(["1"]), 1)
        assert.deepStrictEqual(yield* store.enqueue([job()]), ["4"])
        const ids = (yield* claim(store)).map((claimedJob) => claimedJob.id)
        assert.deepStrictEqual(ids, ["2", "3", "1", "4"], "the redriven job goes behind the jobs enqueued before it")
      }))
  })

  describe("settle", () => {
    it.effect("applies the first of two outcomes for one lease in a batch, and refuses the second", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const [id] = yield* store.enqueue([job()])
        const { lease } = yield* claimOne(store)
        const applied = yield* store.settle([
          { lease, outcome: Outcome.Released({ refund: true }) },
          { lease, outcome: Outcome.Dead({ error: "fatal" }) }
        ])
        assert.deepStrictEqual(applied, [true, false])
        assert.deepStrictEqual(yield* store.deadLetters(), [])
        const again = yield* claimOne(store)
        assert.strictEqual(again.id, id)
        assert.strictEqual(again.attempt, 1)
      }))

    it.effect("Released keeps the job's place in line: its runAt and enqueue order", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const [first, second] = yield* store.enqueue([job(), job()])
        yield* TestClock.adjust("1 minute")
        yield* settle(store, (yield* claimOne(store)).lease, Outcome.Released({ refund: true }))
        const again = yield* claimOne(store)
        assert.strictEqual(again.id, first)
        assert.strictEqual(again.runAt.getTime(), 0)
        assert.strictEqual((yield* claimOne(store)).id, second)
      }))
  })

  describe("buried jobs", () => {
    it.effect("reap counts the jobs it reports buried that another operation settled, so reaped >= buried", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const [doomed, again] = yield* store.enqueue([job({ maxAttempts: 1 }), job()])
        const claimed = yield* claim(store)
        yield* TestClock.adjust(LEASE)
        // `stats` brings the store up to its clock: it buries one job and makes the other ready, reporting nothing.
        assert.deepStrictEqual((yield* store.stats).dead, 1)
        assert.deepStrictEqual(internal.sizes(store)!.buried, 1)
        const reaped = yield* store.reap
        assert.deepStrictEqual(reaped.buried.map((buried) => buried.id), [doomed])
        assert.strictEqual(reaped.reaped, 1, "the one it reports; the other was made ready before it ran")
        assert.strictEqual(internal.sizes(store)!.buried, 0)
        assert.deepStrictEqual((yield* claimOne(store)).id, again)
        assert.strictEqual(claimed.length, 2)
      }))

    it.effect("are in the dead letters as soon as any operation brought the store up to its clock", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const [id] = yield* store.enqueue([job({ maxAttempts: 1 })])
        yield* claimOne(store)
        yield* TestClock.adjust(LEASE)
        const [dead] = yield* store.deadLetters()
        assert.deepStrictEqual([dead?.id, dead?.lastError, dead?.failedAt.getTime()], [id, "lease expired", 30_000])
        assert.deepStrictEqual((yield* store.reap).buried.map((buried) => buried.id), [id], "reported later")
      }))

    it.effect("are reported even when maxDeadLetters dropped them at once", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make({ maxDeadLetters: 0 })
        const [id] = yield* store.enqueue([job({ maxAttempts: 1 })])
        yield* claimOne(store)
        yield* TestClock.adjust(LEASE)
        const [result] = yield* warningsOf(store.claim(request()))
        assert.deepStrictEqual(result.buried.map((buried) => buried.id), [id])
        assert.deepStrictEqual(yield* store.deadLetters(), [])
      }))
  })

  describe("maxDeadLetters", () => {
    it.effect("keeps the most recent dead letters, drops the oldest for good, and logs a warning naming them", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make({ maxDeadLetters: 2 })
        const ids = yield* store.enqueue([job({ queue: "x" }), job({ queue: "y" }), job({ queue: "x" })])
        const claimed = yield* claim(store, { queues: ["x", "y"] })
        yield* dead(store, claimed[0]!.lease, "first")
        const [, quiet] = yield* warningsOf(dead(store, claimed[1]!.lease, "second"))
        assert.deepStrictEqual(quiet, [], "nothing dropped yet")
        const [, warnings] = yield* warningsOf(dead(store, claimed[2]!.lease, "third"))
        assert.strictEqual(warnings.length, 1)
        assert.include(warnings[0], "1 dead letter(s) dropped")
        assert.include(warnings[0], "maxDeadLetters (2)")
        assert.include(warnings[0], `send-email ${ids[0]} in queue x (first)`)
        assert.deepStrictEqual((yield* store.deadLetters()).map((deadJob) => deadJob.id), [ids[2], ids[1]])
        assert.deepStrictEqual((yield* store.deadLetters({ queue: "x" })).map((deadJob) => deadJob.id), [ids[2]])
        assert.strictEqual(yield* store.redrive([ids[0]!]), 0, "a dropped dead letter is gone")
        assert.deepStrictEqual(yield* store.stats, {
          ...zero,
          dead: 2,
          byQueue: { x: { ...zero, dead: 1 }, y: { ...zero, dead: 1 } },
          readyByName: {},
          pausedQueues: []
        })
        assert.deepStrictEqual(internal.sizes(store)!.jobs, 2)
      }))

    it.effect("with 0 keeps none, and logs each operation's drops once, naming the first ten", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make({ maxDeadLetters: 0 })
        yield* store.enqueue(Array.from({ length: 12 }, () => job({ maxAttempts: 1 })))
        yield* store.claim(request({ limit: 12 }))
        yield* TestClock.adjust(LEASE)
        const [reaped, warnings] = yield* warningsOf(store.reap)
        assert.strictEqual(reaped.reaped, 12)
        assert.strictEqual(reaped.buried.length, 12)
        assert.strictEqual(warnings.length, 1)
        assert.include(warnings[0], "12 dead letter(s) dropped")
        assert.include(warnings[0], "(lease expired)")
        assert.include(warnings[0], "and 2 more")
        assert.deepStrictEqual(yield* store.deadLetters(), [])
        assert.deepStrictEqual(yield* store.stats, empty)
        assert.strictEqual(internal.sizes(store)!.jobs, 0)
      }))
  })

  describe("maxJobs", () => {
    it.effect("fails an enqueue or redrive that would not fit with a JobStoreError, storing nothing", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make({ maxJobs: 2 })
        const [first] = yield* store.enqueue([job({ key: "k" }), job()])
        const full = yield* Effect.either(store.enqueue([job()]))
        assert.isTrue(Either.isLeft(full) && full.left instanceof JobStoreError && full.left.operation === "enqueue")
        if (Either.isLeft(full)) assert.include(full.left.message, "the store is full")
        assert.deepStrictEqual(yield* store.enqueue([job({ key: "k" })]), [first!], "a held key adds nothing: it fits")
        const claimed = yield* claim(store)
        yield* dead(store, claimed[0]!.lease, "fatal")
        // One free slot now, and a batch of two: all or nothing.
        assert.isTrue(Either.isLeft(yield* Effect.either(store.enqueue([job(), job()]))))
        assert.strictEqual((yield* store.stats).leased, 1)
        yield* store.enqueue([job()])
        const refused = yield* Effect.either(store.redrive([first!]))
        assert.isTrue(Either.isLeft(refused) && refused.left.operation === "redrive")
        yield* complete(store, claimed[1]!.lease)
        assert.strictEqual(yield* store.redrive([first!]), 1, "fits once a job completed")
      }))
  })

  describe("stats", () => {
    it.effect("counts a queue or a job named __proto__ like any other", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        yield* store.enqueue([job({ queue: "__proto__", name: "__proto__" })])
        const stats = yield* store.stats
        assert.deepStrictEqual(Object.keys(stats.byQueue), ["__proto__"])
        assert.deepStrictEqual(Object.getOwnPropertyDescriptor(stats.byQueue, "__proto__")?.value, {
          ...zero,
          ready: 1
        })
        assert.deepStrictEqual(Object.keys(stats.readyByName), ["__proto__"])
        assert.strictEqual(Object.getOwnPropertyDescriptor(stats.readyByName, "__proto__")?.value, 1)
      }))

    it.effect("leaves out of readyByName the names that have no job ready", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        yield* store.enqueue([job({ name: "a" }), job({ name: "b", runAt: new Date(60_000) })])
        assert.deepStrictEqual((yield* store.stats).readyByName, { a: 1 })
        yield* claimOne(store, { names: ["a"] })
        assert.deepStrictEqual((yield* store.stats).readyByName, {})
      }))
  })

  describe("wakeups", () => {
    it.scoped("wakes each queue once per enqueue, however many jobs it got, and not for a held key", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const received = yield* store.wakeups
        yield* store.enqueue([
          job({ queue: "a" }),
          job({ queue: "b" }),
          job({ queue: "a", key: "k" }),
          job({ queue: "a" })
        ])
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "marker-1"), ["a", "b"])
        yield* store.enqueue([job({ queue: "a", key: "k", keyMode: "skip" })])
        yield* store.enqueue([job({ queue: "later", runAt: new Date(60_000) })])
        yield* store.enqueue([job({ queue: "later", runAt: undefined, delay: Duration.seconds(1) })])
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "marker-2"), [])
      }))

    it.scoped("wakes a queue once per settle batch for Released and a due Retry, not for Completed, Dead, later", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const received = yield* store.wakeups
        yield* store.enqueue(Array.from({ length: 6 }, () => job({ queue: "q" })))
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m0"), ["q"])
        const [a, b, c, d, e, f] = yield* claim(store, { queues: ["q"] })
        yield* store.settle([
          { lease: a!.lease, outcome: Outcome.Completed() },
          { lease: b!.lease, outcome: Outcome.Retry({ delay: Duration.minutes(1), error: "later" }) },
          { lease: c!.lease, outcome: Outcome.Dead({ error: "fatal" }) }
        ])
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m1"), [], "claim, Completed, Dead, later Retry")
        yield* store.settle([
          { lease: d!.lease, outcome: Outcome.Released({ refund: false }) },
          { lease: e!.lease, outcome: Outcome.Retry({ delay: Duration.zero, error: "now" }) },
          { lease: f!.lease, outcome: Outcome.Released({ refund: true }) }
        ])
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m2"), ["q"], "once for the batch")
        yield* store.redrive([c!.id])
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m3"), ["q"], "redrive")
        yield* store.claim(request({ queues: ["q"] }))
        yield* TestClock.adjust(LEASE)
        assert.strictEqual((yield* store.reap).reaped, 4)
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m4"), ["q"], "reap, once for its jobs")
        yield* TestClock.adjust(Duration.minutes(1))
        yield* store.stats
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m5"), [], "not when a retry comes due")
      }))

    it.scoped("drops a lagging subscriber's oldest wake-ups, never the newest", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        // Nobody takes from this subscription while 300 queues are woken: it keeps the newest 256.
        const received = yield* store.wakeups
        for (let i = 0; i < 300; i++) yield* store.enqueue([job({ queue: `q${i}` })])
        const woken = Chunk.toReadonlyArray(yield* Queue.takeAll(received))
        assert.strictEqual(woken.length, 256)
        assert.strictEqual(woken[0], "q44")
        assert.strictEqual(woken[255], "q299")
      }))

    it.effect("ends the subscription when its scope closes", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const scope = yield* Scope.make()
        const received = yield* Scope.extend(store.wakeups, scope)
        yield* store.enqueue([job({ queue: "q" })])
        assert.strictEqual(yield* Queue.take(received), "q")
        yield* Scope.close(scope, Exit.void)
        assert.isTrue(yield* Queue.isShutdown(received))
        yield* store.enqueue([job({ queue: "q" })])
      }))
  })

  describe("memory", () => {
    it.effect("keeps nothing of the jobs that completed", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make({ maxDeadLetters: 10 })
        for (let round = 0; round < 100; round++) {
          yield* store.enqueue(
            Array.from({ length: 100 }, (_, i) =>
              job({
                key: i % 3 === 0 ? `k${i}` : undefined,
                priority: i % 5,
                runAt: i % 11 === 0 ? undefined : new Date(i % 7 === 0 ? 1 : 0),
                payload: { round, i }
              }))
          )
          yield* TestClock.adjust(1)
          const claimed = yield* claim(store, { limit: 100 })
          assert.strictEqual(claimed.length, 100)
          const settlements: Array<Settlement> = []
          for (const [i, claimedJob] of claimed.entries()) {
            if (i % 10 === 0) {
              settlements.push({ lease: claimedJob.lease, outcome: Outcome.Released({ refund: i % 20 === 0 }) })
            } else if (i % 10 === 1) {
              settlements.push({ lease: claimedJob.lease, outcome: Outcome.Retry({ delay: Duration.zero, error: "" }) })
            } else if (i % 10 === 2) {
              yield* store.renew([claimedJob.lease], LEASE)
            }
          }
          yield* store.settle(settlements)
          const rest = yield* claim(store, { limit: 100 })
          yield* store.settle(rest.map((claimedJob) => ({ lease: claimedJob.lease, outcome: Outcome.Completed() })))
          yield* store.stats
          // Completes the jobs still leased (those neither settled nor claimed again); refuses the rest.
          const late = yield* store.settle(
            claimed.map((claimedJob) => ({ lease: claimedJob.lease, outcome: Outcome.Completed() }))
          )
          assert.strictEqual(late.filter((applied) => applied).length, 80)
        }
        assert.deepStrictEqual(yield* store.stats, empty)
        assert.deepStrictEqual(internal.sizes(store), {
          jobs: 0,
          keys: 0,
          ready: 0,
          scheduled: 0,
          leases: 0,
          dead: 0,
          queues: 1,
          lanes: 1,
          buried: 0
        })
      }))

    it.effect("sweeps the lanes of queue and job names no job uses any more", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        for (let i = 0; i < 1_000; i++) {
          yield* store.enqueue([job({ queue: `tenant-${i}`, name: `type-${i % 3}` })])
          yield* complete(store, (yield* claimOne(store, { queues: [`tenant-${i}`], names: [`type-${i % 3}`] })).lease)
        }
        const sizes = internal.sizes(store)!
        assert.strictEqual(sizes.jobs, 0)
        assert.isAtMost(sizes.lanes, 65)
        assert.isAtMost(sizes.queues, 65)
      }))
  })

  describe("against a model", () => {
    it.effect.prop(
      "agrees with a naive model on every claim, renewal, settle, reap, burial, stats and dead letter",
      { program: programArb },
      ({ program }) => runAgainstModel(program),
      { fastCheck: { numRuns: 100 } }
    )
  })
})

// The model: every job in an array, every question answered by filtering and sorting it. Time moves in steps of
// 5 ms, and leases and delays are multiples of 10 ms, so expiries and run-at instants often fall on the very
// instant an operation runs.

type ModelOutcome =
  | { readonly _tag: "Completed" }
  | { readonly _tag: "Retry"; readonly delay: number }
  | { readonly _tag: "Dead" }
  | { readonly _tag: "Released"; readonly refund: boolean }

type Op =
  | {
    readonly _tag: "Enqueue"
    readonly queue: string
    readonly name: string
    readonly priority: number
    readonly delay: number
    /** Whether the delay goes as `delay` (relative, the store's clock) rather than as an absolute `runAt`. */
    readonly relative: boolean
    readonly maxAttempts: number
  }
  | {
    readonly _tag: "Claim"
    readonly queues: ReadonlyArray<string>
    readonly names: ReadonlyArray<string>
    readonly limit: number
    readonly lease: number
  }
  | { readonly _tag: "Renew"; readonly leases: ReadonlyArray<number>; readonly lease: number }
  | {
    readonly _tag: "Settle"
    readonly settlements: ReadonlyArray<{ readonly lease: number; readonly outcome: ModelOutcome }>
  }
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "Reap" }
  | { readonly _tag: "Redrive"; readonly dead: number }

const QUEUES = ["a", "b"]
const NAMES = ["x", "y"]
const MODEL_DEAD_LETTERS = 3

const outcomeArb: fc.Arbitrary<ModelOutcome> = fc.oneof(
  { arbitrary: fc.constant({ _tag: "Completed" } as const), weight: 3 },
  {
    arbitrary: fc.integer({ min: 0, max: 3 }).map((k) => ({ _tag: "Retry", delay: k * 10 } as const)),
    weight: 2
  },
  { arbitrary: fc.constant({ _tag: "Dead" } as const), weight: 1 },
  { arbitrary: fc.boolean().map((refund) => ({ _tag: "Released", refund } as const)), weight: 2 }
)

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      queue: fc.constantFrom(...QUEUES),
      name: fc.constantFrom(...NAMES),
      priority: fc.integer({ min: 0, max: 2 }),
      delay: fc.constantFrom(-10, 0, 0, 0, 10, 20, 30),
      relative: fc.boolean(),
      maxAttempts: fc.integer({ min: 1, max: 3 })
    }).map((r) => ({ _tag: "Enqueue", ...r, relative: r.relative && r.delay >= 0 } as const)),
    weight: 5
  },
  {
    arbitrary: fc.record({
      queues: fc.subarray(QUEUES, { minLength: 1 }),
      names: fc.subarray(NAMES, { minLength: 1 }),
      limit: fc.integer({ min: 0, max: 3 }),
      lease: fc.integer({ min: 1, max: 4 }).map((k) => k * 10)
    }).map((r) => ({ _tag: "Claim", ...r } as const)),
    weight: 5
  },
  {
    arbitrary: fc.record({
      leases: fc.array(fc.nat(), { maxLength: 3 }),
      lease: fc.integer({ min: 1, max: 4 }).map((k) => k * 10)
    }).map((r) => ({ _tag: "Renew", ...r } as const)),
    weight: 2
  },
  {
    arbitrary: fc.array(fc.record({ lease: fc.nat(), outcome: outcomeArb }), { minLength: 1, maxLength: 3 }).map((
      settlements
    ) => ({ _tag: "Settle", settlements } as const)),
    weight: 7
  },
  {
    arbitrary: fc.integer({ min: 1, max: 4 }).map((k) => ({ _tag: "Advance", millis: k * 5 } as const)),
    weight: 4
  },
  { arbitrary: fc.constant({ _tag: "Reap" } as const), weight: 3 },
  { arbitrary: fc.nat().map((dead) => ({ _tag: "Redrive", dead } as const)), weight: 1 }
)

const programArb = fc.array(opArb, { minLength: 40, maxLength: 120 })

interface ModelJob {
  readonly id: string
  readonly queue: string
  readonly name: string
  readonly priority: number
  readonly maxAttempts: number
  /** The step that enqueued it: its payload is `{ i: step }`. */
  readonly step: number
  runAt: number
  seq: number
  attempts: number
  state: "ready" | "scheduled" | "leased" | "dead" | "gone"
  expiresAt: number
  token: string | undefined
}

class Model {
  now = 0
  jobs: Array<ModelJob> = []
  /** Dead job ids, oldest first. */
  dead: Array<string> = []
  /** Jobs buried for an expired lease that no claim or reap reported yet, in the order they died. */
  buried: Array<string> = []
  private seq = 0

  byId(id: string): ModelJob | undefined {
    return this.jobs.find((job) => job.id === id)
  }

  settle(): number {
    for (const job of this.jobs) {
      if (job.state === "scheduled" && job.runAt <= this.now) job.state = "ready"
    }
    const expired = this.jobs
      .filter((job) => job.state === "leased" && job.expiresAt <= this.now)
      .sort((a, b) => a.expiresAt - b.expiresAt || a.seq - b.seq)
    for (const job of expired) {
      job.token = undefined
      if (job.attempts >= job.maxAttempts) {
        this.buried.push(job.id)
        this.bury(job)
      } else {
        job.state = "ready"
      }
    }
    return expired.length
  }

  takeBuried(): Array<string> {
    const buried = this.buried
    this.buried = []
    return buried
  }

  bury(job: ModelJob): void {
    job.state = "dead"
    this.dead.push(job.id)
    while (this.dead.length > MODEL_DEAD_LETTERS) this.byId(this.dead.shift()!)!.state = "gone"
  }

  enqueue(id: string, op: Extract<Op, { _tag: "Enqueue" }>, step: number): void {
    const runAt = this.now + op.delay
    this.jobs.push({
      id,
      step,
      queue: op.queue,
      name: op.name,
      priority: op.priority,
      maxAttempts: op.maxAttempts,
      runAt,
      seq: ++this.seq,
      attempts: 0,
      state: runAt <= this.now ? "ready" : "scheduled",
      expiresAt: 0,
      token: undefined
    })
  }

  /** The jobs a claim gets, in order. */
  claimable(op: Extract<Op, { _tag: "Claim" }>): Array<ModelJob> {
    return this.jobs
      .filter((job) => job.state === "ready" && op.queues.includes(job.queue) && op.names.includes(job.name))
      .sort((a, b) => a.priority - b.priority || a.runAt - b.runAt || a.seq - b.seq)
      .slice(0, op.limit)
  }

  held(lease: Lease): ModelJob | undefined {
    const job = this.byId(lease.jobId)
    return job !== undefined && job.state === "leased" && job.token === lease.token ? job : undefined
  }

  apply(job: ModelJob, outcome: ModelOutcome): void {
    job.token = undefined
    switch (outcome._tag) {
      case "Completed":
        job.state = "gone"
        break
      case "Retry":
        job.runAt = this.now + outcome.delay
        job.state = job.runAt <= this.now ? "ready" : "scheduled"
        break
      case "Dead":
        this.bury(job)
        break
      case "Released":
        if (outcome.refund) job.attempts--
        job.state = "ready"
        break
    }
  }

  redrive(job: ModelJob): void {
    this.dead.splice(this.dead.indexOf(job.id), 1)
    job.attempts = 0
    job.runAt = this.now
    job.seq = ++this.seq
    job.state = "ready"
  }

  stats() {
    const byQueue: Record<
      string,
      { ready: number; scheduled: number; leased: number; dead: number; cancelled: number; succeeded: number }
    > = {}
    const readyByName: Record<string, number> = {}
    const total = { ready: 0, scheduled: 0, leased: 0, dead: 0, cancelled: 0, succeeded: 0 }
    for (const job of this.jobs) {
      if (job.state === "gone") continue
      const counts = byQueue[job.queue] ??= { ready: 0, scheduled: 0, leased: 0, dead: 0, cancelled: 0, succeeded: 0 }
      counts[job.state]++
      total[job.state]++
      if (job.state === "ready") readyByName[job.name] = (readyByName[job.name] ?? 0) + 1
    }
    return { ...total, byQueue, readyByName, pausedQueues: [] }
  }
}

const toOutcome = (outcome: ModelOutcome): Outcome => {
  switch (outcome._tag) {
    case "Completed":
      return Outcome.Completed()
    case "Retry":
      return Outcome.Retry({ delay: Duration.millis(outcome.delay), error: "retry" })
    case "Dead":
      return Outcome.Dead({ error: "fatal" })
    case "Released":
      return Outcome.Released({ refund: outcome.refund })
  }
}

const runAgainstModel = (program: ReadonlyArray<Op>) =>
  Effect.gen(function*() {
    const store = yield* MemoryJobStore.make({ maxDeadLetters: MODEL_DEAD_LETTERS })
    const model = new Model()
    /** Every lease the store handed out, live or not. */
    const leases: Array<Lease> = []
    const pick = (index: number) => leases.length === 0 ? undefined : leases[index % leases.length]!

    for (const [i, op] of program.entries()) {
      const step = `step ${i} ${JSON.stringify(op)}`
      switch (op._tag) {
        case "Enqueue": {
          const [id] = yield* store.enqueue([{
            name: op.name,
            queue: op.queue,
            payload: { i },
            runAt: op.relative ? undefined : new Date(model.now + op.delay),
            delay: op.relative ? Duration.millis(op.delay) : undefined,
            priority: op.priority,
            key: undefined,
            maxAttempts: op.maxAttempts
          }])
          model.settle()
          model.enqueue(id!, op, i)
          break
        }
        case "Claim": {
          const { buried, jobs: claimed } = yield* store.claim({ ...op, lease: Duration.millis(op.lease), worker: "w" })
          model.settle()
          const expected = op.limit === 0 ? [] : model.claimable(op)
          assert.deepStrictEqual(
            claimed.map((job) => [job.id, job.attempt, job.payload]),
            expected.map((job) => [job.id, job.attempts + 1, { i: job.step }]),
            step
          )
          // A claim of limit 0 does not reach the store: what is buried waits for the next call.
          assert.deepStrictEqual(buried.map((b) => b.id), op.limit === 0 ? [] : model.takeBuried(), `${step}: buried`)
          for (const [k, job] of expected.entries()) {
            job.attempts++
            job.state = "leased"
            job.expiresAt = model.now + op.lease
            job.token = claimed[k]!.lease.token
            leases.push(claimed[k]!.lease)
          }
          break
        }
        case "Renew": {
          const chosen = leases.length === 0 ? [] : op.leases.map((k) => pick(k)!)
          const lost = yield* store.renew(chosen, Duration.millis(op.lease))
          model.settle()
          const expectedLost: Array<string> = []
          for (const lease of chosen) {
            const job = model.held(lease)
            if (job === undefined) expectedLost.push(lease.jobId)
            else job.expiresAt = model.now + op.lease
          }
          assert.deepStrictEqual(lost, expectedLost, step)
          break
        }
        case "Settle": {
          if (leases.length === 0) break
          const chosen = op.settlements.map(({ lease, outcome }) => ({ lease: pick(lease)!, outcome }))
          const applied = yield* store.settle(
            chosen.map(({ lease, outcome }) => ({ lease, outcome: toOutcome(outcome) }))
          )
          model.settle()
          const expected = chosen.map(({ lease, outcome }) => {
            const job = model.held(lease)
            if (job === undefined) return false
            model.apply(job, outcome)
            return true
          })
          assert.deepStrictEqual(applied, expected, step)
          break
        }
        case "Advance":
          yield* TestClock.adjust(op.millis)
          model.now += op.millis
          break
        case "Reap": {
          const result = yield* store.reap
          const earlier = model.buried.length
          const expired = model.settle()
          const buried = model.takeBuried()
          assert.deepStrictEqual(result.buried.map((b) => b.id), buried, `${step}: buried`)
          assert.strictEqual(result.reaped, expired + earlier, step)
          break
        }
        case "Redrive": {
          const id = model.dead.length === 0 ? "none" : model.dead[op.dead % model.dead.length]!
          const moved = yield* store.redrive([id])
          model.settle()
          const job = model.byId(id)
          assert.strictEqual(moved, job?.state === "dead" ? 1 : 0, step)
          if (job?.state === "dead") model.redrive(job)
          break
        }
      }
      // Not after `Advance`: `stats` settles the store, and the expired leases are left for a later step to find.
      if (op._tag === "Advance") continue
      const stats = yield* store.stats
      model.settle()
      assert.deepStrictEqual(stats, model.stats(), `stats after ${step}`)
      assert.deepStrictEqual(
        (yield* store.deadLetters()).map((job) => job.id),
        [...model.dead].reverse(),
        `dead letters after ${step}`
      )
    }
    const sizes = internal.sizes(store)!
    const live = model.jobs.filter((job) => job.state !== "gone").length
    assert.strictEqual(sizes.jobs, live, "the store holds the jobs the model holds, no more")
    assert.strictEqual(sizes.buried, model.buried.length, "and the same deaths to report")
  })
