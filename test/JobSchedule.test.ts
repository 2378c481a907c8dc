/**
 * Recurring schedules (`job.schedule`, `JobWorker`'s `schedules`) on the memory store and `TestClock`: which slots
 * are offered and stored, by how many workers, across stops, time zones and daylight-saving nights. The store's
 * `enqueueSlot` is wrapped so that every offer's answer reaches the test: the handshake for "this worker offered
 * this slot".
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Cron, Effect, Exit, Metric, Queue, Schema, Scope, TestClock } from "effect"
import { Job, JobStore, JobWorker, MemoryJobStore, WorkerContext } from "../src/index.js"
import { nextSlotGauge } from "../src/internal/jobWorker/metrics.js"

type Store = JobStore.JobStore.Service

const Report = Job.make("report", { payload: Schema.Struct({ kind: Schema.String }), queue: "reports" })

/** One offer of a slot by a worker, and what the store answered: the job's id, or `undefined` (not taken). */
interface Offer {
  readonly worker: string
  readonly schedule: string
  readonly slot: number
  readonly backfill: boolean
  readonly id: string | undefined
}

/** The offers made, a queue per schedule. */
class Offers {
  private readonly queues = new Map<string, Queue.Queue<Offer>>()
  of(schedule: string): Queue.Queue<Offer> {
    let queue = this.queues.get(schedule)
    if (queue === undefined) {
      queue = Effect.runSync(Queue.unbounded<Offer>())
      this.queues.set(schedule, queue)
    }
    return queue
  }
}

/** The store, with every `enqueueSlot` answer sent to `offers` (failing the first `failures` calls). */
const recording = (store: Store, offers: Offers, worker: string, failures = 0): Store => {
  let failed = 0
  return {
    ...store,
    enqueueSlot: (slot) =>
      Effect.suspend(() =>
        failed++ < failures
          ? Effect.fail(new JobStore.JobStoreError({ operation: "enqueueSlot", reason: "connection refused" }))
          : Effect.tap(store.enqueueSlot(slot), (id) =>
            Queue.offer(offers.of(slot.schedule), {
              worker,
              schedule: slot.schedule,
              slot: slot.slot.getTime(),
              backfill: slot.backfill,
              id
            }))
      )
  }
}

/** What a handler saw of a scheduled job. */
interface Ran {
  readonly id: string
  readonly kind: string
  readonly scheduledFor: number | undefined
}

/**
 * A worker named `name` on `store` (wrapped by {@link recording}) with `schedules`, in `scope`; its handler sends
 * what it ran to `ran`.
 */
const startWorker = (options: {
  readonly name: string
  readonly store: Store
  readonly offers: Offers
  readonly ran: Queue.Queue<Ran>
  readonly schedules: ReadonlyArray<Job.JobSchedule>
  readonly scope: Scope.Scope
  readonly failures?: number
  /** For tests that move the clock by days: polls and reaps once an hour instead of every few seconds. */
  readonly hourly?: boolean
}) =>
  Effect.gen(function*() {
    const ctx = yield* WorkerContext.make({ name: options.name, shutdownTimeout: "1 second", logLevel: "None" })
    const events = yield* ctx.subscribe
    yield* JobWorker.make({
      handlers: [
        Report.handler(({ kind }) =>
          Effect.flatMap(Job.Current, (job) =>
            Queue.offer(options.ran, { id: job.id, kind, scheduledFor: job.scheduledFor?.getTime() }))
        )
      ],
      schedules: options.schedules,
      workerId: options.name,
      ...(options.hourly === true ? { pollInterval: "1 hour", lease: "2 hours" } : {})
    }).pipe(
      Effect.provideService(
        JobStore.JobStore,
        recording(options.store, options.offers, options.name, options.failures)
      ),
      Effect.provideService(WorkerContext, ctx)
    )
    return { ctx, events }
  }).pipe(Scope.extend(options.scope))

/** Takes the offers of `schedule`, in order, until one is of a slot at or after `until`. */
const offersUntil = (offers: Offers, schedule: string, until: number) =>
  Effect.gen(function*() {
    const taken: Array<Offer> = []
    while (true) {
      const offer = yield* Queue.take(offers.of(schedule))
      taken.push(offer)
      if (offer.slot >= until) return taken
    }
  })

/** Closes a worker's scope: its context stops (the test clock moves past its shutdown grace meanwhile). */
const stopWorker = (scope: Scope.CloseableScope) =>
  Effect.gen(function*() {
    const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
    yield* TestClock.adjust("2 seconds")
    yield* closing.await
  })

const minute = 60_000
const iso = (ms: number) => new Date(ms).toISOString()

const setup = Effect.gen(function*() {
  const store = yield* MemoryJobStore.make()
  const offers = new Offers()
  const ran = yield* Queue.unbounded<Ran>()
  return { store, offers, ran }
})

describe("Job.schedule", () => {
  it("reads a cron of 5 or 6 fields in UTC by default, or in the time zone given, and names the schedule", () => {
    const daily = Report.schedule("0 2 * * *", { kind: "daily" })
    assert.strictEqual(daily.name, "report 0 2 * * *")
    assert.strictEqual(daily.job, Report)
    assert.deepStrictEqual(daily.payload, { kind: "daily" })
    assert.strictEqual(
      Cron.next(daily.cron, new Date("2026-01-01T00:00:00Z")).toISOString(),
      "2026-01-01T02:00:00.000Z"
    )
    const berlin = Report.schedule("0 2 * * *", { kind: "daily" }, { timezone: "Europe/Berlin", name: "nightly" })
    assert.strictEqual(berlin.name, "nightly")
    assert.strictEqual(
      Cron.next(berlin.cron, new Date("2026-01-01T00:00:00Z")).toISOString(),
      "2026-01-01T01:00:00.000Z"
    )
    const seconds = Report.schedule("*/5 * * * * *", { kind: "fast" })
    assert.strictEqual(Cron.next(seconds.cron, new Date(0)).getTime(), 5_000)
    const fromCron = Report.schedule(Cron.unsafeParse("0 3 * * 1"), { kind: "weekly" })
    assert.strictEqual(fromCron.name, "report 0 0 3 * * 1")
    assert.strictEqual(
      Cron.next(fromCron.cron, new Date("2026-12-07T00:00:00Z")).toISOString(),
      "2026-12-07T03:00:00.000Z"
    )
  })

  it("throws an IllegalArgumentException naming what makes no sense", () => {
    const throws = (f: () => unknown, message: string) => {
      try {
        f()
      } catch (error) {
        assert.isTrue(Cause.isIllegalArgumentException(error), String(error))
        assert.include((error as Error).message, message)
        return
      }
      assert.fail(`did not throw: ${message}`)
    }
    throws(() => Report.schedule("every day", { kind: "x" }), "report.schedule cron: invalid \"every day\"")
    throws(() => Report.schedule("0 2 30 2 *", { kind: "x" }), "a cron that matches a date")
    throws(() => Report.schedule("0 2 * * *", { kind: "x" }, { timezone: "Mars/Olympus" }), "report.schedule timezone")
    throws(() => Report.schedule("0 2 * * *", { kind: "x" }, { backfill: "-1 hour" }), "report.schedule backfill")
    throws(() => Report.schedule("0 2 * * *", { kind: "x" }, { name: "" }), "report.schedule name")
    throws(() => Report.schedule("0 2 * * *", { kind: 3 } as unknown as { kind: string }), "report.schedule payload")
    const Big = Job.make("big", { payload: Schema.Struct({ n: Schema.BigIntFromSelf }) })
    throws(() => Big.schedule("0 2 * * *", { n: BigInt(1) }), "$.n: a bigint")
  })
})

describe("JobWorker schedules", () => {
  it.scoped("enqueue each slot once as the clock passes it; the handler sees the slot; JobScheduled and a gauge", () =>
    Effect.gen(function*() {
      const { offers, ran, store } = yield* setup
      const scope = yield* Scope.make()
      const schedule = Report.schedule("* * * * *", { kind: "minutely" })
      const { events } = yield* startWorker({ name: "a", store, offers, ran, schedules: [schedule], scope })
      const gauge = nextSlotGauge("a", schedule.name)
      for (let i = 1; i <= 3; i++) {
        yield* TestClock.adjust("1 minute")
        const [offer] = yield* offersUntil(offers, schedule.name, i * minute)
        assert.deepStrictEqual({ ...offer!, id: typeof offer!.id }, {
          worker: "a",
          schedule: schedule.name,
          slot: i * minute,
          backfill: false,
          id: "string"
        })
        const run = yield* Queue.take(ran)
        assert.deepStrictEqual(run, { id: offer!.id!, kind: "minutely", scheduledFor: i * minute })
      }
      const scheduled = []
      while (scheduled.length < 3) {
        const event = yield* Queue.take(events)
        if (event._tag === "Custom" && JobWorker.isJobEvent(event.value) && event.value._tag === "JobScheduled") {
          scheduled.push(event.value)
        }
      }
      assert.deepStrictEqual(
        scheduled.map(({ attempt, queue, schedule, slot }) => [schedule, iso(slot.getTime()), queue, attempt]),
        [1, 2, 3].map((i) => [schedule.name, iso(i * minute), "reports", 0])
      )
      // The worker sleeps until the next slot, and says when it is.
      const next = yield* Metric.value(gauge)
      assert.strictEqual(next.value, (4 * minute) / 1000)
      yield* stopWorker(scope)
    }))

  it.scoped("across two workers of one store, each slot is stored once: the other's offer is refused", () =>
    Effect.gen(function*() {
      const { offers, ran, store } = yield* setup
      const scope = yield* Scope.make()
      const schedule = Report.schedule("*/30 * * * * *", { kind: "half-minutely" })
      yield* startWorker({ name: "a", store, offers, ran, schedules: [schedule], scope })
      yield* startWorker({ name: "b", store, offers, ran, schedules: [schedule], scope })
      for (let i = 1; i <= 4; i++) {
        yield* TestClock.adjust("30 seconds")
        const both = [yield* Queue.take(offers.of(schedule.name)), yield* Queue.take(offers.of(schedule.name))]
        assert.deepStrictEqual(both.map((offer) => offer.slot), [i * 30_000, i * 30_000])
        assert.deepStrictEqual(both.map((offer) => offer.worker).sort(), ["a", "b"])
        assert.strictEqual(both.filter((offer) => offer.id !== undefined).length, 1, `slot ${i}: one stored`)
        assert.strictEqual((yield* Queue.take(ran)).scheduledFor, i * 30_000)
      }
      yield* stopWorker(scope)
    }))

  it.scoped(
    "a worker that starts late backfills the missed slots of its window, only of a schedule the store knows",
    () =>
      Effect.gen(function*() {
        const { offers, ran, store } = yield* setup
        const schedule = Report.schedule("* * * * *", { kind: "x" }, { name: "minutely", backfill: "3 minutes" })
        const first = yield* Scope.make()
        yield* startWorker({ name: "a", store, offers, ran, schedules: [schedule], scope: first })
        yield* TestClock.adjust("2 minutes")
        const before = yield* offersUntil(offers, "minutely", 2 * minute)
        assert.deepStrictEqual(
          before.map(({ backfill, id, slot }) => [slot / minute, backfill, id !== undefined]),
          [[-2, true, false], [-1, true, false], [0, true, false], [1, false, true], [2, false, true]],
          "a schedule the store does not know yet backfills nothing"
        )
        yield* stopWorker(first)
        // No worker runs for eight minutes.
        yield* TestClock.setTime(10 * minute)
        const fresh = Report.schedule("* * * * *", { kind: "y" }, { name: "brand-new", backfill: "3 minutes" })
        const second = yield* Scope.make()
        yield* startWorker({ name: "b", store, offers, ran, schedules: [schedule, fresh], scope: second })
        const backfilled = yield* offersUntil(offers, "minutely", 10 * minute)
        assert.deepStrictEqual(
          backfilled.map(({ backfill, id, slot }) => [slot / minute, backfill, id !== undefined]),
          [[8, true, true], [9, true, true], [10, true, true]],
          "the window's slots, not the older ones"
        )
        const refused = yield* offersUntil(offers, "brand-new", 10 * minute)
        assert.deepStrictEqual(
          refused.map(({ backfill, id, slot }) => [slot / minute, backfill, id]),
          [[8, true, undefined], [9, true, undefined], [10, true, undefined]],
          "a schedule the store never saw starts with its next slot"
        )
        yield* TestClock.adjust("1 minute")
        const live = yield* offersUntil(offers, "brand-new", 11 * minute)
        assert.deepStrictEqual(live.map(({ backfill, slot }) => [slot / minute, backfill]), [[11, false]])
        assert.isString(live[0]!.id)
        yield* stopWorker(second)
      })
  )

  it.scoped("a slot whose offer fails is offered again until the store answers: late, never skipped", () =>
    Effect.gen(function*() {
      const { offers, ran, store } = yield* setup
      const scope = yield* Scope.make()
      const schedule = Report.schedule("* * * * *", { kind: "x" })
      yield* startWorker({ name: "a", store, offers, ran, schedules: [schedule], scope, failures: 3 })
      yield* TestClock.adjust("1 minute")
      // The back-off: 100 ms, 200 ms, 400 ms.
      const retried = yield* Effect.fork(offersUntil(offers, schedule.name, minute))
      yield* TestClock.adjust("1 second")
      const [offer] = yield* retried.await.pipe(Effect.flatten)
      assert.strictEqual(offer!.slot, minute)
      assert.isString(offer!.id)
      assert.strictEqual((yield* Queue.take(ran)).scheduledFor, minute)
      yield* stopWorker(scope)
    }))

  it.scoped(
    "in a time zone, each wall-clock slot runs once across daylight saving: 02:30 that does not exist runs at " +
      "03:30, and 01:30 that happens twice runs at the first",
    () =>
      Effect.gen(function*() {
        const { offers, ran, store } = yield* setup
        const scope = yield* Scope.make()
        const timezone = "America/New_York"
        const early = Report.schedule("30 1 * * *", { kind: "01:30" }, { timezone })
        const late = Report.schedule("30 2 * * *", { kind: "02:30" }, { timezone })
        const hourly = Report.schedule("0 * * * *", { kind: "hourly" }, { timezone })
        // Spring forward: 2026-03-08, 02:00 EST becomes 03:00 EDT.
        yield* TestClock.setTime(Date.parse("2026-03-07T12:00:00Z"))
        yield* startWorker({ name: "a", store, offers, ran, schedules: [early, late], scope, hourly: true })
        yield* TestClock.adjust("2 days")
        const spring = (schedule: Job.JobSchedule) =>
          Effect.map(
            offersUntil(offers, schedule.name, Date.parse("2026-03-09T05:00:00Z")),
            (taken) => taken.map((offer) => iso(offer.slot))
          )
        assert.deepStrictEqual(yield* spring(early), ["2026-03-08T06:30:00.000Z", "2026-03-09T05:30:00.000Z"])
        assert.deepStrictEqual(yield* spring(late), ["2026-03-08T07:30:00.000Z", "2026-03-09T06:30:00.000Z"])
        yield* stopWorker(scope)

        // Fall back: 2026-11-01, 02:00 EDT becomes 01:00 EST, so 01:00 to 02:00 happens twice.
        const fall = yield* Scope.make()
        yield* TestClock.setTime(Date.parse("2026-10-31T12:00:00Z"))
        yield* startWorker({ name: "b", store, offers, ran, schedules: [early, hourly], scope: fall, hourly: true })
        yield* TestClock.adjust("2 days")
        const once = yield* offersUntil(offers, early.name, Date.parse("2026-11-02T00:00:00Z"))
        assert.deepStrictEqual(once.map((offer) => iso(offer.slot)), [
          "2026-11-01T05:30:00.000Z",
          "2026-11-02T06:30:00.000Z"
        ])
        const hours = yield* offersUntil(offers, hourly.name, Date.parse("2026-11-01T08:00:00Z"))
        assert.deepStrictEqual(
          hours.map((offer) => iso(offer.slot)).filter((slot) => slot >= "2026-11-01T03"),
          [
            "2026-11-01T03:00:00.000Z", // 23:00 EDT
            "2026-11-01T04:00:00.000Z", // 00:00 EDT
            "2026-11-01T05:00:00.000Z", // 01:00 EDT; 01:00 EST (06:00Z) is the same wall-clock slot
            "2026-11-01T07:00:00.000Z", // 02:00 EST
            "2026-11-01T08:00:00.000Z"
          ]
        )
        yield* stopWorker(fall)
      })
  )

  it.scoped(
    "two workers with different schedule lists: a changed cron under one name shares its slots, and a schedule " +
      "removed from the code stops once no worker has it",
    () =>
      Effect.gen(function*() {
        const { offers, ran, store } = yield* setup
        const oldScope = yield* Scope.make()
        const newScope = yield* Scope.make()
        // The old release: "tick" every minute, and "cleanup"; the new one: "tick" every two minutes, no "cleanup".
        const oldTick = Report.schedule("* * * * *", { kind: "tick" }, { name: "tick" })
        const cleanup = Report.schedule("* * * * *", { kind: "cleanup" }, { name: "cleanup" })
        const newTick = Report.schedule("*/2 * * * *", { kind: "tick" }, { name: "tick" })
        yield* startWorker({ name: "old", store, offers, ran, schedules: [oldTick, cleanup], scope: oldScope })
        yield* startWorker({ name: "new", store, offers, ran, schedules: [newTick], scope: newScope })
        yield* TestClock.adjust("4 minutes")
        const both = yield* offersUntil(offers, "tick", 4 * minute)
        const stored = (taken: ReadonlyArray<Offer>) =>
          taken.filter((offer) => offer.id !== undefined).map((offer) => offer.slot / minute)
        // While both run, each slot of either version, once.
        assert.deepStrictEqual(stored(both), [1, 2, 3, 4])
        yield* stopWorker(oldScope)
        const cleanups = yield* offersUntil(offers, "cleanup", 4 * minute)
        assert.deepStrictEqual(stored(cleanups), [1, 2, 3, 4])
        yield* TestClock.adjust("4 minutes")
        const after = yield* offersUntil(offers, "tick", 8 * minute)
        assert.deepStrictEqual(stored(after), [6, 8], "the new cron only")
        assert.strictEqual(yield* Queue.size(offers.of("cleanup")), 0, "no cleanup once the old release stopped")
        yield* stopWorker(newScope)
      })
  )

  it.scoped("offers no slot before the context runs", () =>
    Effect.gen(function*() {
      const { offers, store } = yield* setup
      const scope = yield* Scope.make()
      const ctx = yield* WorkerContext.make({ name: "idle", logLevel: "None" })
      yield* JobWorker.make({
        handlers: [Report.handler(() => Effect.void)],
        schedules: [Report.schedule("* * * * *", { kind: "x" })],
        autoStart: false
      }).pipe(
        Effect.provideService(JobStore.JobStore, recording(store, offers, "idle")),
        Effect.provideService(WorkerContext, ctx),
        Scope.extend(scope)
      )
      yield* TestClock.adjust("3 minutes")
      assert.strictEqual(yield* Queue.size(offers.of("report * * * * *")), 0)
      yield* ctx.start
      yield* TestClock.adjust("1 minute")
      const [offer] = yield* offersUntil(offers, "report * * * * *", 4 * minute)
      assert.strictEqual(offer!.slot, 4 * minute, "the first slot after the start")
      yield* stopWorker(scope)
    }))

  it.scoped("two schedules of one name make the worker die naming it", () =>
    Effect.gen(function*() {
      const ctx = yield* WorkerContext.make({ name: "dup", logLevel: "None" })
      const exit = yield* JobWorker.make({
        handlers: [Report.handler(() => Effect.void)],
        schedules: [
          Report.schedule("* * * * *", { kind: "a" }, { name: "x" }),
          Report.schedule("0 * * * *", { kind: "b" }, { name: "x" })
        ]
      }).pipe(
        Effect.provideService(JobStore.JobStore, yield* MemoryJobStore.make()),
        Effect.provideService(WorkerContext, ctx),
        Effect.exit
      )
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        assert.include(Cause.pretty(exit.cause), `JobWorker: invalid schedules "x": expected one schedule per name`)
      }
    }))
})
