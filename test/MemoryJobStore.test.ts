import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FastCheck as fc,
  Logger,
  Option,
  Queue,
  Stream,
  TestClock
} from "effect"
import * as internal from "../src/internal/memoryJobStore.js"
import {
  type ClaimRequest,
  JobStore,
  JobStoreError,
  type Lease,
  type NewJob,
  type QueueStats
} from "../src/JobStore.js"
import * as MemoryJobStore from "../src/MemoryJobStore.js"
import {
  claimRequest,
  jobStoreConformance,
  LEASE,
  newJob,
  subscribeWakeups,
  wakeupsBefore
} from "./jobStoreConformance.js"

jobStoreConformance("MemoryJobStore", MemoryJobStore.layer(), {
  now: Clock.currentTimeMillis,
  advance: TestClock.adjust
})

const job = newJob
const request = claimRequest

const claimOne = (store: JobStore.Service, fields?: Partial<ClaimRequest>) =>
  Effect.map(store.claim(request({ limit: 1, ...fields })), (jobs) => {
    assert.strictEqual(jobs.length, 1, "one job claimed")
    return jobs[0]!
  })

const zero: QueueStats = { ready: 0, scheduled: 0, leased: 0, dead: 0 }

const assertIllegal = (exit: Exit.Exit<unknown, unknown>, includes: string) => {
  assert.isTrue(Exit.isFailure(exit), `expected a defect naming ${includes}`)
  if (Exit.isSuccess(exit)) return
  const defect = Option.getOrUndefined(Cause.dieOption(exit.cause))
  assert.isTrue(
    Cause.isIllegalArgumentException(defect),
    `an IllegalArgumentException, got ${Cause.pretty(exit.cause)}`
  )
  assert.include((defect as Error).message, includes)
}

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
        const exit = yield* Effect.exit(Effect.provide(JobStore, MemoryJobStore.layer({ maxDeadLetters: -1 })))
        assertIllegal(exit, "MemoryJobStore: invalid maxDeadLetters \"-1\"")
        // The edges are fine.
        yield* MemoryJobStore.make({ maxDeadLetters: 0, maxJobs: 1 })
        yield* MemoryJobStore.make({ maxJobs: Infinity })
        yield* MemoryJobStore.make({ maxDeadLetters: undefined, maxJobs: undefined })
      }))

    it.effect("builds a new, empty store each time the layer is built", () =>
      Effect.gen(function*() {
        const layer = MemoryJobStore.layer()
        yield* Effect.provide(Effect.flatMap(JobStore, (store) => store.enqueue([job()])), layer)
        const stats = yield* Effect.provide(Effect.flatMap(JobStore, (store) => store.stats), layer)
        assert.deepStrictEqual(stats, { ...zero, byQueue: {} })
      }))
  })

  describe("bad arguments", () => {
    it.effect("die with an IllegalArgumentException naming the operation and the argument, changing nothing", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const bad = (fields: Partial<NewJob>) => Effect.exit(store.enqueue([job(), job(fields)]))
        assertIllegal(yield* bad({ name: "" }), "MemoryJobStore.enqueue: invalid job 1 name")
        assertIllegal(yield* bad({ queue: 3 as unknown as string }), "job 1 queue")
        assertIllegal(yield* bad({ runAt: new Date(Number.NaN) }), "job 1 runAt")
        assertIllegal(yield* bad({ priority: 0.5 }), "job 1 priority")
        assertIllegal(yield* bad({ key: "" }), "job 1 key")
        assertIllegal(yield* bad({ maxAttempts: 0 }), "job 1 maxAttempts")
        assertIllegal(yield* Effect.exit(store.enqueue("x" as unknown as Array<NewJob>)), "enqueue: invalid jobs")
        assert.deepStrictEqual(yield* store.stats, { ...zero, byQueue: {} }, "a batch with a bad job stores nothing")

        assertIllegal(yield* Effect.exit(store.claim(request({ limit: -1 }))), "claim: invalid limit")
        assertIllegal(yield* Effect.exit(store.claim(request({ limit: 1.5 }))), "claim: invalid limit")
        assertIllegal(yield* Effect.exit(store.claim(request({ lease: Duration.zero }))), "claim: invalid lease")
        assertIllegal(yield* Effect.exit(store.claim(request({ lease: Duration.infinity }))), "claim: invalid lease")
        assertIllegal(
          yield* Effect.exit(store.claim(request({ queues: "emails" as unknown as Array<string> }))),
          "claim: invalid queues"
        )
        yield* store.enqueue([job()])
        const claimed = yield* claimOne(store)
        assertIllegal(yield* Effect.exit(store.renew([claimed.lease], Duration.zero)), "renew: invalid lease")
        assertIllegal(
          yield* Effect.exit(store.renew([{ jobId: 1 } as unknown as Lease], LEASE)),
          "renew: invalid leases"
        )
        assertIllegal(yield* Effect.exit(store.retry(claimed.lease, new Date(Number.NaN), "x")), "retry: invalid runAt")
        assertIllegal(
          yield* Effect.exit(store.release(claimed.lease, {} as { refund: boolean })),
          "release: invalid refund"
        )
        assertIllegal(yield* Effect.exit(store.complete(undefined as unknown as Lease)), "complete: invalid lease")
        assertIllegal(yield* Effect.exit(store.deadLetters({ limit: -1 })), "deadLetters: invalid limit")
        assertIllegal(yield* Effect.exit(store.redrive([1 as unknown as string])), "redrive: invalid ids")
        assert.deepStrictEqual(yield* store.stats, { ...zero, leased: 1, byQueue: { emails: { ...zero, leased: 1 } } })
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
        const claimed = yield* store.claim(request({ limit: 1 }))
        yield* store.deadLetter(claimed[0]!.lease, "fatal")
        assert.strictEqual(yield* store.redrive(["1"]), 1)
        assert.deepStrictEqual(yield* store.enqueue([job()]), ["4"])
        const ids = (yield* store.claim(request())).map((claimedJob) => claimedJob.id)
        assert.deepStrictEqual(ids, ["2", "3", "1", "4"], "the redriven job goes behind the jobs enqueued before it")
      }))
  })

  describe("maxDeadLetters", () => {
    it.effect("keeps the most recent dead letters, drops the oldest for good, and logs a warning naming them", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make({ maxDeadLetters: 2 })
        const ids = yield* store.enqueue([job({ queue: "x" }), job({ queue: "y" }), job({ queue: "x" })])
        const claimed = yield* store.claim(request({ queues: ["x", "y"] }))
        yield* store.deadLetter(claimed[0]!.lease, "first")
        const [, quiet] = yield* warningsOf(store.deadLetter(claimed[1]!.lease, "second"))
        assert.deepStrictEqual(quiet, [], "nothing dropped yet")
        const [, warnings] = yield* warningsOf(store.deadLetter(claimed[2]!.lease, "third"))
        assert.strictEqual(warnings.length, 1)
        assert.include(warnings[0], "1 dead letter(s) dropped")
        assert.include(warnings[0], "maxDeadLetters (2)")
        assert.include(warnings[0], `send-email ${ids[0]} in queue x (first)`)
        assert.deepStrictEqual((yield* store.deadLetters()).map((dead) => dead.id), [ids[2], ids[1]])
        assert.deepStrictEqual((yield* store.deadLetters({ queue: "x" })).map((dead) => dead.id), [ids[2]])
        assert.strictEqual(yield* store.redrive([ids[0]!]), 0, "a dropped dead letter is gone")
        assert.deepStrictEqual(yield* store.stats, {
          ...zero,
          dead: 2,
          byQueue: { x: { ...zero, dead: 1 }, y: { ...zero, dead: 1 } }
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
        assert.strictEqual(reaped, 12)
        assert.strictEqual(warnings.length, 1)
        assert.include(warnings[0], "12 dead letter(s) dropped")
        assert.include(warnings[0], "(lease expired)")
        assert.include(warnings[0], "and 2 more")
        assert.deepStrictEqual(yield* store.deadLetters(), [])
        assert.deepStrictEqual(yield* store.stats, { ...zero, byQueue: {} })
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
        const claimed = yield* store.claim(request())
        yield* store.deadLetter(claimed[0]!.lease, "fatal")
        // One free slot now, and a batch of two: all or nothing.
        assert.isTrue(Either.isLeft(yield* Effect.either(store.enqueue([job(), job()]))))
        assert.strictEqual((yield* store.stats).leased, 1)
        yield* store.enqueue([job()])
        const refused = yield* Effect.either(store.redrive([first!]))
        assert.isTrue(Either.isLeft(refused) && refused.left.operation === "redrive")
        yield* store.complete(claimed[1]!.lease)
        assert.strictEqual(yield* store.redrive([first!]), 1, "fits once a job completed")
      }))
  })

  describe("redrive", () => {
    it.effect("leaves dead a job whose key a live job took since it died", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const [dead] = yield* store.enqueue([job({ key: "k" })])
        yield* store.deadLetter((yield* claimOne(store)).lease, "fatal")
        const [live] = yield* store.enqueue([job({ key: "k" })])
        assert.strictEqual(yield* store.redrive([dead!]), 0)
        assert.deepStrictEqual((yield* store.deadLetters()).map((job) => job.id), [dead])
        yield* store.complete((yield* claimOne(store)).lease)
        assert.strictEqual(yield* store.redrive([dead!]), 1, "once the key is free again")
        assert.deepStrictEqual(yield* store.enqueue([job({ key: "k" })]), [dead!], "and it holds the key")
        assert.notStrictEqual(live, dead)
      }))
  })

  describe("stats", () => {
    it.effect("counts a queue named __proto__ like any other", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        yield* store.enqueue([job({ queue: "__proto__" })])
        const stats = yield* store.stats
        assert.deepStrictEqual(Object.keys(stats.byQueue), ["__proto__"])
        assert.deepStrictEqual(Object.getOwnPropertyDescriptor(stats.byQueue, "__proto__")?.value, {
          ...zero,
          ready: 1
        })
      }))
  })

  describe("release", () => {
    it.effect("keeps the job's place in line: its runAt and enqueue order", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const [first, second] = yield* store.enqueue([job(), job()])
        yield* TestClock.adjust("1 minute")
        yield* store.release((yield* claimOne(store)).lease, { refund: true })
        const again = yield* claimOne(store)
        assert.strictEqual(again.id, first)
        assert.strictEqual(again.runAt.getTime(), 0)
        assert.strictEqual((yield* claimOne(store)).id, second)
      }))
  })

  describe("wakeups", () => {
    it.scoped("wakes each queue once per enqueue, however many jobs it got, and not for a held key", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const received = yield* subscribeWakeups(store)
        yield* store.enqueue([
          job({ queue: "a" }),
          job({ queue: "b" }),
          job({ queue: "a", key: "k" }),
          job({ queue: "a" })
        ])
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "marker-1"), ["a", "b"])
        yield* store.enqueue([job({ queue: "a", key: "k" })])
        yield* store.enqueue([job({ queue: "later", runAt: new Date(60_000) })])
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "marker-2"), [])
      }))

    it.scoped("wakes for release, redrive, reap and a retry that is due, and not for claim, complete or a later retry", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const received = yield* subscribeWakeups(store)
        yield* store.enqueue([job({ queue: "q" }), job({ queue: "q" }), job({ queue: "q" }), job({ queue: "q" })])
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m0"), ["q"])
        const [a, b, c, d] = yield* store.claim(request({ queues: ["q"] }))
        yield* store.complete(a!.lease)
        yield* store.retry(b!.lease, new Date(60_000), "later")
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m1"), [], "claim, complete, later retry")
        yield* store.release(c!.lease, { refund: false })
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m2"), ["q"], "release")
        yield* store.retry(d!.lease, new Date(0), "now")
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m3"), ["q"], "due retry")
        const [e] = yield* store.claim(request({ queues: ["q"], limit: 1 }))
        yield* store.deadLetter(e!.lease, "fatal")
        yield* store.redrive([e!.id])
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m4"), ["q"], "redrive")
        yield* store.claim(request({ queues: ["q"] }))
        yield* TestClock.adjust(LEASE)
        assert.strictEqual(yield* store.reap, 2)
        assert.deepStrictEqual(yield* wakeupsBefore(store, received, "m5"), ["q"], "reap, once for its two jobs")
      }))

    it.scoped("drops a lagging subscriber's oldest wake-ups, never the newest", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const gate = yield* Deferred.make<void>()
        const received = yield* Queue.unbounded<string>()
        // This subscriber stops at the first wake-up it gets until the gate opens: the rest pile up in its buffer.
        yield* Effect.forkScoped(
          Stream.runForEach(
            store.wakeups,
            (queue) => Effect.zipRight(Queue.offer(received, queue), Deferred.await(gate))
          )
        )
        while (Option.isNone(yield* Queue.poll(received))) {
          yield* store.enqueue([job({ queue: "wakeup-probe" })])
          yield* Effect.yieldNow()
        }
        for (let i = 0; i < 300; i++) yield* store.enqueue([job({ queue: `q${i}` })])
        yield* Deferred.succeed(gate, undefined)
        const woken = yield* wakeupsBefore(store, received, "marker")
        assert.include(woken, "q299")
        assert.notInclude(woken, "q0")
        assert.isAtMost(woken.length, 256)
      }))

    it.scoped("gives every subscriber every wake-up", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const one = yield* subscribeWakeups(store)
        const two = yield* subscribeWakeups(store)
        yield* store.enqueue([job({ queue: "q" })])
        assert.deepStrictEqual(yield* wakeupsBefore(store, one, "m"), ["q"])
        assert.deepStrictEqual(yield* Queue.take(two).pipe(Effect.repeat({ until: (queue) => queue === "q" })), "q")
      }))
  })

  describe("memory", () => {
    it.effect("keeps nothing of the jobs that completed", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make({ maxDeadLetters: 10 })
        for (let round = 0; round < 100; round++) {
          yield* store.enqueue(
            Array.from({ length: 100 }, (_, i) =>
              job({ key: i % 3 === 0 ? `k${i}` : undefined, priority: i % 5, runAt: new Date(i % 7 === 0 ? 1 : 0) }))
          )
          yield* TestClock.adjust(1)
          const claimed = yield* store.claim(request({ limit: 100 }))
          assert.strictEqual(claimed.length, 100)
          for (const [i, claimedJob] of claimed.entries()) {
            if (i % 10 === 0) {
              yield* store.release(claimedJob.lease, { refund: i % 20 === 0 })
            } else if (i % 10 === 1) {
              yield* store.retry(claimedJob.lease, new Date(0), "again")
            } else if (i % 10 === 2) {
              yield* store.renew([claimedJob.lease], LEASE)
            }
          }
          for (const claimedJob of yield* store.claim(request({ limit: 100 }))) {
            yield* store.complete(claimedJob.lease)
          }
          yield* store.stats
          for (const claimedJob of claimed) {
            yield* Effect.either(store.complete(claimedJob.lease))
          }
        }
        assert.deepStrictEqual(yield* store.stats, { ...zero, byQueue: {} })
        assert.deepStrictEqual(internal.sizes(store), {
          jobs: 0,
          keys: 0,
          ready: 0,
          scheduled: 0,
          leases: 0,
          dead: 0,
          queues: 1,
          lanes: 1
        })
      }))

    it.effect("sweeps the lanes of queue and job names no job uses any more", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        for (let i = 0; i < 1_000; i++) {
          yield* store.enqueue([job({ queue: `tenant-${i}`, name: `type-${i % 3}` })])
          yield* store.complete((yield* claimOne(store, { queues: [`tenant-${i}`], names: [`type-${i % 3}`] })).lease)
        }
        const sizes = internal.sizes(store)!
        assert.strictEqual(sizes.jobs, 0)
        assert.isAtMost(sizes.lanes, 65)
        assert.isAtMost(sizes.queues, 65)
      }))
  })

  describe("against a model", () => {
    it.effect.prop(
      "agrees with a naive model on every claim, renewal, acknowledgement, reap, stats and dead letter",
      { program: programArb },
      ({ program }) => runAgainstModel(program),
      { fastCheck: { numRuns: 100 } }
    )
  })
})

// The model: every job in an array, every question answered by filtering and sorting it. Time moves in steps of
// 5 ms, and leases and delays are multiples of 10 ms, so expiries and run-at instants often fall on the very
// instant an operation runs.

type Op =
  | {
    readonly _tag: "Enqueue"
    readonly queue: string
    readonly name: string
    readonly priority: number
    readonly delay: number
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
  | { readonly _tag: "Complete"; readonly lease: number }
  | { readonly _tag: "Retry"; readonly lease: number; readonly delay: number }
  | { readonly _tag: "DeadLetter"; readonly lease: number }
  | { readonly _tag: "Release"; readonly lease: number; readonly refund: boolean }
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "Reap" }
  | { readonly _tag: "Redrive"; readonly dead: number }

const QUEUES = ["a", "b"]
const NAMES = ["x", "y"]
const MODEL_DEAD_LETTERS = 3

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      queue: fc.constantFrom(...QUEUES),
      name: fc.constantFrom(...NAMES),
      priority: fc.integer({ min: 0, max: 2 }),
      delay: fc.constantFrom(-10, 0, 0, 0, 10, 20, 30),
      maxAttempts: fc.integer({ min: 1, max: 3 })
    }).map((r) => ({ _tag: "Enqueue", ...r } as const)),
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
  { arbitrary: fc.nat().map((lease) => ({ _tag: "Complete", lease } as const)), weight: 3 },
  {
    arbitrary: fc.record({ lease: fc.nat(), delay: fc.integer({ min: -1, max: 3 }).map((k) => k * 10) }).map((r) =>
      ({ _tag: "Retry", ...r }) as const
    ),
    weight: 2
  },
  { arbitrary: fc.nat().map((lease) => ({ _tag: "DeadLetter", lease } as const)), weight: 1 },
  {
    arbitrary: fc.record({ lease: fc.nat(), refund: fc.boolean() }).map((r) => ({ _tag: "Release", ...r } as const)),
    weight: 2
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
      if (job.attempts >= job.maxAttempts) this.bury(job)
      else job.state = "ready"
    }
    return expired.length
  }

  bury(job: ModelJob): void {
    job.state = "dead"
    this.dead.push(job.id)
    while (this.dead.length > MODEL_DEAD_LETTERS) this.byId(this.dead.shift()!)!.state = "gone"
  }

  enqueue(id: string, op: Extract<Op, { _tag: "Enqueue" }>): void {
    const runAt = this.now + op.delay
    this.jobs.push({
      id,
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

  redrive(job: ModelJob): void {
    this.dead.splice(this.dead.indexOf(job.id), 1)
    job.attempts = 0
    job.runAt = this.now
    job.seq = ++this.seq
    job.state = "ready"
  }

  stats() {
    const byQueue: Record<string, { ready: number; scheduled: number; leased: number; dead: number }> = {}
    const total = { ready: 0, scheduled: 0, leased: 0, dead: 0 }
    for (const job of this.jobs) {
      if (job.state === "gone") continue
      const counts = byQueue[job.queue] ??= { ready: 0, scheduled: 0, leased: 0, dead: 0 }
      counts[job.state]++
      total[job.state]++
    }
    return { ...total, byQueue }
  }
}

const runAgainstModel = (program: ReadonlyArray<Op>) =>
  Effect.gen(function*() {
    const store = yield* MemoryJobStore.make({ maxDeadLetters: MODEL_DEAD_LETTERS })
    const model = new Model()
    /** Every lease the store handed out, live or not. */
    const leases: Array<Lease> = []
    const pick = (index: number) => leases.length === 0 ? undefined : leases[index % leases.length]!
    /** Runs an acknowledgement in the store and in the model, and checks both agree on whether the lease held. */
    const ack = (
      step: string,
      lease: Lease | undefined,
      inStore: (lease: Lease) => Effect.Effect<void, unknown>,
      inModel: (job: ModelJob) => void
    ) =>
      Effect.gen(function*() {
        if (lease === undefined) return
        const result = yield* Effect.either(inStore(lease))
        model.settle()
        const job = model.held(lease)
        assert.strictEqual(Either.isRight(result), job !== undefined, `${step}: whether the lease held`)
        if (job !== undefined) {
          job.token = undefined
          inModel(job)
        }
      })

    for (const [i, op] of program.entries()) {
      const step = `step ${i} ${JSON.stringify(op)}`
      switch (op._tag) {
        case "Enqueue": {
          const [id] = yield* store.enqueue([{
            name: op.name,
            queue: op.queue,
            payload: { i },
            runAt: new Date(model.now + op.delay),
            priority: op.priority,
            key: undefined,
            maxAttempts: op.maxAttempts
          }])
          model.settle()
          model.enqueue(id!, op)
          break
        }
        case "Claim": {
          const claimed = yield* store.claim({ ...op, lease: Duration.millis(op.lease), worker: "w" })
          model.settle()
          const expected = model.claimable(op)
          assert.deepStrictEqual(
            claimed.map((job) => [job.id, job.attempt]),
            expected.map((job) => [job.id, job.attempts + 1]),
            step
          )
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
        case "Complete":
          yield* ack(step, pick(op.lease), store.complete, (job) => {
            job.state = "gone"
          })
          break
        case "Retry":
          yield* ack(step, pick(op.lease), (lease) => store.retry(lease, new Date(model.now + op.delay), "retry"), (
            job
          ) => {
            job.runAt = model.now + op.delay
            job.state = job.runAt <= model.now ? "ready" : "scheduled"
          })
          break
        case "DeadLetter":
          yield* ack(step, pick(op.lease), (lease) => store.deadLetter(lease, "fatal"), (job) => model.bury(job))
          break
        case "Release":
          yield* ack(step, pick(op.lease), (lease) => store.release(lease, { refund: op.refund }), (job) => {
            if (op.refund) job.attempts--
            job.state = "ready"
          })
          break
        case "Advance":
          yield* TestClock.adjust(op.millis)
          model.now += op.millis
          break
        case "Reap":
          assert.strictEqual(yield* store.reap, model.settle(), step)
          break
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
      // Not after `Advance`: `stats` settles the store, and the expired leases are left for a `Reap` to count.
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
  })
