import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Clock,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  List,
  Logger,
  Metric,
  Option,
  Queue,
  Ref,
  Schedule,
  Schema,
  Scope,
  TestClock
} from "effect"
import * as Http from "node:http"
import {
  Job,
  JobStore,
  JobWorker,
  MemoryJobStore,
  WorkerContext,
  type WorkerContextOptions,
  WorkerEvent
} from "../src/index.js"

type Store = JobStore.JobStore.Service
type Ctx = WorkerContext.Service
type JobEvent = JobWorker.JobEvent

// -----------------------------------------------------------------------------------------------------------------
// Helpers
// -----------------------------------------------------------------------------------------------------------------

/** A job type whose payload says what the handler does. */
const Work = Job.make("work", {
  payload: Schema.Struct({ n: Schema.Number }),
  queue: "main",
  maxAttempts: 3,
  timeout: "30 seconds",
  retry: Schedule.exponential("1 second")
})

/** What the tests' handlers report when an attempt starts. */
interface Report {
  readonly _tag: "started"
  readonly n: number
  readonly info: Job.JobInfo
}

/**
 * A controllable handler: each attempt reports `started`, then waits until the test opens the gate of its `n` (a
 * `Deferred` per job payload, made on demand) and does what the gate says.
 */
const gates = () => {
  const table = new Map<number, Deferred.Deferred<void, unknown>>()
  const gate = (n: number) => {
    let d = table.get(n)
    if (d === undefined) {
      d = Deferred.unsafeMake<void, unknown>(undefined as never)
      table.set(n, d)
    }
    return d
  }
  return {
    gate,
    open: (n: number) => Deferred.succeed(gate(n), void 0),
    fail: (n: number, error: unknown) => Deferred.fail(gate(n), error),
    /** A fresh gate for the next attempt of `n`. */
    reset: (n: number) => Effect.sync(() => table.delete(n))
  }
}

/** Builds a context and a memory store, and a job worker on them, in the current scope. */
const setup = Effect.fnUntraced(function*<R>(
  options: JobWorker.Options<R>,
  ctxOptions?: WorkerContextOptions & { readonly wrap?: (store: Store, ctx: Ctx) => Store; readonly store?: Store }
) {
  const store = ctxOptions?.store ?? (yield* MemoryJobStore.make())
  const ctx = yield* WorkerContext.make({
    name: "jobs",
    shutdownTimeout: "10 seconds",
    logLevel: "None",
    ...ctxOptions
  })
  const events = yield* ctx.subscribe
  const used = ctxOptions?.wrap === undefined ? store : ctxOptions.wrap(store, ctx)
  const worker = yield* JobWorker.make(options).pipe(
    Effect.provideService(JobStore.JobStore, used),
    Effect.provideService(WorkerContext, ctx)
  )
  // Runs first when the test's scope closes: a test that failed half-way leaves jobs hanging, and the deadline of
  // the shutdown that the worker's finalizer waits for only passes when the test clock moves.
  yield* Effect.addFinalizer(() =>
    Effect.zipRight(ctx.requestStop, TestClock.adjust(Duration.sum(ctx.options.shutdownTimeout, "1 second")))
  )
  return { store, ctx, events, worker }
})

const enqueue = <A, I, S>(store: Store, job: Job.Job<A, I, S>, payload: A, options?: Job.EnqueueOptions) =>
  job.enqueue(payload, options).pipe(Effect.provideService(JobStore.JobStore, store), Effect.orDie)

const stats = (store: Store) => Effect.orDie(store.stats)

const jobEventsOf = (events: ReadonlyArray<WorkerEvent>): Array<JobEvent> =>
  events.flatMap((event) => event._tag === "Custom" && JobWorker.isJobEvent(event.value) ? [event.value] : [])

const drain = (queue: Queue.Dequeue<WorkerEvent>) => Effect.map(Queue.takeAll(queue), Chunk.toArray)

/** Takes events until one satisfies `until`, and returns them all (that one last). */
const takeUntil = (queue: Queue.Dequeue<WorkerEvent>, until: (event: WorkerEvent) => boolean) =>
  Effect.gen(function*() {
    const taken: Array<WorkerEvent> = []
    while (true) {
      const event = yield* Queue.take(queue)
      taken.push(event)
      if (until(event)) return taken
    }
  })

const isJob = <T extends JobEvent["_tag"]>(tag: T, id?: string) => (event: WorkerEvent): boolean =>
  event._tag === "Custom" && JobWorker.isJobEvent(event.value) && event.value._tag === tag &&
  (id === undefined || event.value.id === id)

/** Waits for the job event `tag` (of job `id`) and returns it. */
const awaitJobEvent = <T extends JobEvent["_tag"]>(queue: Queue.Dequeue<WorkerEvent>, tag: T, id?: string) =>
  Effect.map(
    takeUntil(queue, isJob(tag, id)),
    (events) => (events[events.length - 1] as { readonly value: Extract<JobEvent, { _tag: T }> }).value
  )

/** A handler of `Work` that reports to `reports` and waits for the gate of its payload. */
const gatedHandler = (reports: Queue.Queue<Report>, g: ReturnType<typeof gates>) =>
  Work.handler(({ n }) =>
    Effect.gen(function*() {
      const info = yield* Job.Current
      yield* Queue.offer(reports, { _tag: "started", n, info })
      yield* Deferred.await(g.gate(n))
    })
  )

const started = (reports: Queue.Queue<Report>) => Queue.take(reports)

/** A store whose operations can be made to fail, and that counts its calls. */
const flaky = (store: Store) => {
  /** How many calls of each operation fail from now on (`Infinity`: all of them). */
  const failing = {
    claim: 0,
    renew: false,
    /** Renewals answer that every lease holds, and renew nothing: a store whose clock runs ahead of the worker's. */
    lyingRenew: false,
    settle: 0
  }
  const calls = {
    claim: 0,
    renew: [] as Array<number>,
    reap: 0,
    settle: 0,
    /** Every outcome sent, with the token of its lease. */
    acks: [] as Array<{ readonly operation: string; readonly token: string }>
  }
  const error = (operation: string) => new JobStore.JobStoreError({ operation, reason: "connection refused" })
  const wrapped: Store = {
    ...store,
    claim: (request) =>
      Effect.suspend(() => {
        calls.claim++
        if (failing.claim > 0) {
          failing.claim--
          return Effect.fail(error("claim"))
        }
        return store.claim(request)
      }),
    renew: (leases, lease) =>
      Effect.suspend(() => {
        calls.renew.push(leases.length)
        if (failing.lyingRenew) return Effect.succeed([])
        return failing.renew ? Effect.fail(error("renew")) : store.renew(leases, lease)
      }),
    settle: (settlements) =>
      Effect.suspend(() => {
        calls.settle++
        for (const { lease, outcome } of settlements) calls.acks.push({ operation: outcome._tag, token: lease.token })
        if (failing.settle > 0) {
          failing.settle--
          return Effect.fail(error("settle"))
        }
        return store.settle(settlements)
      }),
    reap: Effect.suspend(() => {
      calls.reap++
      return store.reap
    })
  }
  return { wrapped, failing, calls }
}

/** The jobs a claim by another worker gets. */
const claimJobs = (store: Store, request: JobStore.ClaimRequest) =>
  Effect.map(Effect.orDie(store.claim(request)), (result) => result.jobs)

/** Completes the job of `lease` as another worker would. */
const complete = (store: Store, lease: JobStore.Lease) =>
  Effect.orDie(store.settle([{ lease, outcome: JobStore.Outcome.Completed() }]))

/** One claim the worker made of an {@link outage} store: when (by the test clock), and whether the store was down. */
interface ClaimCall {
  readonly at: number
  readonly down: boolean
}

/**
 * A store that cannot be reached while `down` is set: every call the worker makes fails with a `JobStoreError`, as a
 * database's would. Each claim is written to `claims` as it is made.
 */
const outage = (store: Store, down: Ref.Ref<boolean>, claims: Queue.Queue<ClaimCall>): Store => {
  const unreachable = (operation: string) =>
    new JobStore.JobStoreError({ operation, reason: "connection refused to 127.0.0.1:5432" })
  const guarded = <A, E>(operation: string, call: Effect.Effect<A, E>): Effect.Effect<A, E | JobStore.JobStoreError> =>
    Effect.flatMap(
      Ref.get(down),
      (isDown): Effect.Effect<A, E | JobStore.JobStoreError> => isDown ? Effect.fail(unreachable(operation)) : call
    )
  return {
    ...store,
    claim: (request) =>
      Effect.gen(function*() {
        yield* Queue.offer(claims, { at: yield* Clock.currentTimeMillis, down: yield* Ref.get(down) })
        return yield* guarded("claim", store.claim(request))
      }),
    renew: (leases, lease) => guarded("renew", store.renew(leases, lease)),
    settle: (settlements) => guarded("settle", store.settle(settlements)),
    reap: guarded("reap", store.reap)
  }
}

/** A logger that keeps the warnings, with their annotations. */
const capturedWarnings = () => {
  const lines: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    if (logLevel._tag !== "Warning") return
    const parts = Array.isArray(message) ? message : [message]
    lines.push({
      message: parts.map(String).join(" "),
      annotations: Object.fromEntries(Array.from(annotations))
    })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const deadLetters = (store: Store) => Effect.orDie(store.deadLetters())

// -----------------------------------------------------------------------------------------------------------------
// Tests
// -----------------------------------------------------------------------------------------------------------------

describe("JobWorker", () => {
  describe("running jobs", () => {
    it.scoped("runs a job and completes it: the job is gone from the store", () =>
      Effect.gen(function*() {
        const ran = yield* Deferred.make<number>()
        const { events, store } = yield* setup({ handlers: [Work.handler(({ n }) => Deferred.succeed(ran, n))] })
        const id = yield* enqueue(store, Work, { n: 7 })
        assert.strictEqual(yield* Deferred.await(ran), 7)
        const succeeded = yield* awaitJobEvent(events, "JobSucceeded", id)
        assert.deepStrictEqual({ ...succeeded, durationMs: 0 }, {
          ...JobWorker.JobEvent.JobSucceeded({ id, name: "work", queue: "main", attempt: 1, durationMs: 0 })
        })
        const s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.scheduled, s.leased, s.dead], [0, 0, 0, 0])
      }))

    it.scoped(
      "an update enqueued while its keyed job runs is not lost: by default it runs after it, with its payload",
      () =>
        Effect.gen(function*() {
          const reports = yield* Queue.unbounded<Report>()
          const g = gates()
          const { store } = yield* setup({ handlers: [gatedHandler(reports, g)] })
          const insert = (n: number, keyMode?: JobStore.KeyMode) =>
            Work.insert({ n }, { key: "reindex:ada", keyMode }).pipe(
              Effect.provideService(JobStore.JobStore, store),
              Effect.orDie
            )
          const first = yield* insert(1)
          assert.strictEqual((yield* started(reports)).n, 1)
          // While 1 runs: 2 is kept to run after it, 3 replaces 2's payload, and a skip changes nothing.
          const second = yield* insert(2)
          assert.deepStrictEqual(second, { id: second.id, duplicate: true, outcome: "queuedAfter" })
          assert.notStrictEqual(second.id, first.id)
          assert.deepStrictEqual(yield* insert(3), { ...second })
          assert.deepStrictEqual(yield* insert(4, "skip"), { id: first.id, duplicate: true, outcome: "skipped" })
          yield* g.open(1)
          const next = yield* started(reports)
          assert.deepStrictEqual([next.n, next.info.id, next.info.key], [3, second.id, "reindex:ada"])
          yield* g.open(3)
        })
    )

    it.scoped("gives the handler the job it runs as Job.Current", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const { store } = yield* setup({ handlers: [gatedHandler(reports, g)] })
        yield* TestClock.adjust("5 seconds")
        const id = yield* enqueue(store, Work, { n: 1 }, { priority: 3, key: "k-1", maxAttempts: 2 })
        const { info } = yield* started(reports)
        assert.deepStrictEqual(info, {
          id,
          name: "work",
          queue: "main",
          attempt: 1,
          maxAttempts: 2,
          priority: 3,
          key: "k-1",
          enqueuedAt: new Date(5000),
          runAt: new Date(5000),
          lastError: undefined,
          errors: [],
          scheduledFor: undefined
        })
        yield* g.open(1)
      }))

    it.scoped("retries a failed attempt after the schedule's delay, and not before", () =>
      Effect.gen(function*() {
        const attempts = yield* Queue.unbounded<number>()
        const handler = Work.handler(() =>
          Effect.gen(function*() {
            const { attempt } = yield* Job.Current
            yield* Queue.offer(attempts, attempt)
            if (attempt < 3) return yield* Effect.fail(new Error(`failure ${attempt}`))
          })
        )
        const { events, store } = yield* setup({ handlers: [handler], pollInterval: "1 second" })
        const id = yield* enqueue(store, Work, { n: 1 })
        assert.strictEqual(yield* Queue.take(attempts), 1)
        const first = yield* awaitJobEvent(events, "JobRetried", id)
        assert.deepStrictEqual([first.attempt, first.delayMs, first.error], [1, 1000, "failure 1"])
        assert.strictEqual((yield* stats(store)).scheduled, 1)
        yield* TestClock.adjust("999 millis")
        assert.strictEqual(yield* Queue.size(attempts), 0, "not run again before its delay")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Queue.take(attempts), 2)
        const second = yield* awaitJobEvent(events, "JobRetried", id)
        assert.deepStrictEqual([second.attempt, second.delayMs, second.error], [2, 2000, "failure 2"])
        yield* TestClock.adjust("1999 millis")
        assert.strictEqual(yield* Queue.size(attempts), 0, "not run again before its second delay")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Queue.take(attempts), 3)
        yield* awaitJobEvent(events, "JobSucceeded", id)
        const s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.scheduled, s.leased, s.dead], [0, 0, 0, 0])
      }))

    it.scoped("claims nothing from a queue paused in the store, and runs its jobs once it is resumed, woken", () =>
      Effect.gen(function*() {
        const ran = yield* Queue.unbounded<number>()
        const { store } = yield* setup({
          handlers: [Work.handler(({ n }) => Queue.offer(ran, n))],
          pollInterval: "1 second"
        })
        yield* store.pauseQueue(Work.queue)
        yield* enqueue(store, Work, { n: 1 })
        // Polls come and go: the job stays ready.
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* Queue.size(ran), 0)
        assert.strictEqual((yield* stats(store)).ready, 1)
        // The resume's wake-up, not a poll, starts it: the clock does not move.
        yield* store.resumeQueue(Work.queue)
        assert.strictEqual(yield* Queue.take(ran), 1)
      }))

    it.scoped("gives the handler the errors of the earlier attempts, with their attempt and time", () =>
      Effect.gen(function*() {
        const seen = yield* Queue.unbounded<Job.JobInfo>()
        const handler = Work.handler(() =>
          Effect.gen(function*() {
            const info = yield* Job.Current
            yield* Queue.offer(seen, info)
            if (info.attempt < 3) return yield* Effect.fail(new Error(`failure ${info.attempt}`))
          })
        )
        const { store } = yield* setup({ handlers: [handler], pollInterval: "1 second" })
        const id = yield* enqueue(store, Work, { n: 1 })
        const first = yield* Queue.take(seen)
        assert.deepStrictEqual([first.lastError, first.errors], [undefined, []])
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Queue.take(seen)).lastError, "failure 1")
        yield* TestClock.adjust("2 seconds")
        const third = yield* Queue.take(seen)
        assert.strictEqual(third.id, id)
        assert.strictEqual(third.lastError, "failure 2")
        assert.deepStrictEqual(third.errors, [
          { attempt: 1, error: "failure 1", at: new Date(0) },
          { attempt: 2, error: "failure 2", at: new Date(1000) }
        ])
      }))

    it.scoped("dead-letters a job after its last attempt, with the last error", () =>
      Effect.gen(function*() {
        const handler = Work.handler(() =>
          Effect.flatMap(Job.Current, ({ attempt }) => Effect.fail(`attempt ${attempt} failed`))
        )
        const { events, store } = yield* setup({ handlers: [handler], pollInterval: "1 second" })
        const id = yield* enqueue(store, Work, { n: 1 }, { maxAttempts: 2 })
        yield* awaitJobEvent(events, "JobRetried", id)
        yield* TestClock.adjust("1 second")
        const dead = yield* awaitJobEvent(events, "JobDeadLettered", id)
        assert.deepStrictEqual([dead.attempt, dead.error], [2, "attempt 2 failed"])
        const [letter] = yield* deadLetters(store)
        assert.deepStrictEqual([letter?.id, letter?.attempts, letter?.lastError], [id, 2, "attempt 2 failed"])
      }))

    it.scoped("dead-letters a job at once when its retry schedule has ended", () =>
      Effect.gen(function*() {
        const Once = Job.make("once", { payload: Schema.Struct({}), retry: Schedule.recurs(0) })
        const { events, store } = yield* setup({
          handlers: [Once.handler(() => Effect.die(new Error("kaput")))]
        })
        const id = yield* enqueue(store, Once, {})
        const dead = yield* awaitJobEvent(events, "JobDeadLettered", id)
        assert.deepStrictEqual([dead.attempt, dead.error], [1, "kaput"])
      }))

    it.scoped("dead-letters a job at once when its handler fails with Job.Fatal", () =>
      Effect.gen(function*() {
        const handler = Work.handler(() => Effect.fail(new Job.Fatal({ message: "no such account" })))
        const { events, store } = yield* setup({ handlers: [handler] })
        const id = yield* enqueue(store, Work, { n: 1 }, { maxAttempts: 10 })
        const dead = yield* awaitJobEvent(events, "JobDeadLettered", id)
        assert.deepStrictEqual([dead.attempt, dead.error], [1, "no such account"])
        const [letter] = yield* deadLetters(store)
        assert.deepStrictEqual([letter?.attempts, letter?.lastError], [1, "no such account"])
      }))

    it.scoped("runs a snoozed job again after its delay, the attempt not counted, evented and counted", () =>
      Effect.gen(function*() {
        const attempts = yield* Queue.unbounded<number>()
        let runs = 0
        const handler = Work.handler(() =>
          Effect.gen(function*() {
            const { attempt } = yield* Job.Current
            yield* Queue.offer(attempts, attempt)
            if (++runs < 3) return yield* Job.snooze("30 seconds")
          })
        )
        const { events, store } = yield* setup({ handlers: [handler], pollInterval: "1 second" }, { name: "snoozy" })
        // One attempt only: snoozing does not use it up.
        const id = yield* enqueue(store, Work, { n: 1 }, { maxAttempts: 1 })
        for (let run = 1; run <= 2; run++) {
          assert.strictEqual(yield* Queue.take(attempts), 1)
          const snoozed = yield* awaitJobEvent(events, "JobSnoozed", id)
          assert.deepStrictEqual([snoozed.attempt, snoozed.delayMs], [1, 30_000])
          assert.strictEqual((yield* stats(store)).scheduled, 1)
          yield* TestClock.adjust("29999 millis")
          assert.strictEqual(yield* Queue.size(attempts), 0, "not run again before its delay")
          yield* TestClock.adjust("1 millis")
        }
        assert.strictEqual(yield* Queue.take(attempts), 1)
        yield* awaitJobEvent(events, "JobSucceeded", id)
        const snoozedCount = yield* Metric.value(JobWorker.metrics("snoozy", "main").jobsSnoozed)
        assert.strictEqual(snoozedCount.count, 2)
      }))

    it("Job.snooze refuses a delay that is not a finite duration of zero or more", () => {
      for (const delay of [-1, Duration.infinity, "soon" as Duration.DurationInput]) {
        const exit = Effect.runSyncExit(Job.snooze(delay))
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), String(delay))
      }
    })

    it.scoped("dead-letters a job whose payload no longer decodes, without running the handler", () =>
      Effect.gen(function*() {
        const ran = yield* Ref.make(false)
        const { events, store } = yield* setup({ handlers: [Work.handler(() => Ref.set(ran, true))] })
        const [id] = yield* Effect.orDie(store.enqueue([{
          name: "work",
          queue: "main",
          payload: { n: "seven" },
          runAt: new Date(0),
          priority: 0,
          key: undefined,
          maxAttempts: 5
        }]))
        const dead = yield* awaitJobEvent(events, "JobDeadLettered", id)
        assert.strictEqual(dead.attempt, 1)
        assert.include(dead.error, "Expected number")
        assert.isFalse(yield* Ref.get(ran))
      }))

    it.scoped("reads defects and failures without a message as readable text", () =>
      Effect.gen(function*() {
        class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", { status: Schema.Number }) {}
        const errors: ReadonlyArray<Effect.Effect<void, unknown>> = [
          Effect.dieMessage("the disk is full"),
          Effect.fail(new Unavailable({ status: 503 })),
          Effect.fail({ code: 42 })
        ]
        const handler = Work.handler(({ n }) => errors[n]!)
        const { events, store } = yield* setup({ handlers: [handler] })
        const texts: Array<string> = []
        for (let n = 0; n < errors.length; n++) {
          const id = yield* enqueue(store, Work, { n })
          texts.push((yield* awaitJobEvent(events, "JobRetried", id)).error)
        }
        assert.strictEqual(texts[0], "the disk is full")
        assert.include(texts[1], "\"status\": 503")
        assert.include(texts[2], "\"code\":42")
      }))

    it.scoped("counts a handler that throws instead of returning an Effect as a defect of the attempt", () =>
      Effect.gen(function*() {
        const Throws = Job.make("throws", { payload: Schema.Struct({}), maxAttempts: 1 })
        const { events, store, worker } = yield* setup({
          handlers: [Throws.handler((): Effect.Effect<void> => {
            throw new Error("not an Effect")
          })]
        })
        const id = yield* enqueue(store, Throws, {})
        const dead = yield* awaitJobEvent(events, "JobDeadLettered", id)
        assert.strictEqual(dead.error, "not an Effect")
        assert.strictEqual(yield* worker.inFlight, 0, "its slot is free")
      }))

    it.scoped("interrupts a handler that runs past its timeout, runs its finalizers, and retries the job", () =>
      Effect.gen(function*() {
        const startedAttempt = yield* Queue.unbounded<number>()
        const finalized = yield* Deferred.make<void>()
        const handler = Work.handler(() =>
          Effect.gen(function*() {
            const { attempt } = yield* Job.Current
            yield* Queue.offer(startedAttempt, attempt)
            if (attempt === 1) {
              yield* Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(finalized, void 0)))
            }
          })
        )
        const { events, store } = yield* setup({ handlers: [handler], pollInterval: "1 second" })
        const id = yield* enqueue(store, Work, { n: 1 })
        assert.strictEqual(yield* Queue.take(startedAttempt), 1)
        yield* TestClock.adjust("29 seconds")
        assert.isFalse(yield* Deferred.isDone(finalized), "not cut off before the timeout")
        yield* TestClock.adjust("1 second")
        yield* Deferred.await(finalized)
        const timedOut = yield* awaitJobEvent(events, "JobTimedOut", id)
        assert.deepStrictEqual([timedOut.attempt, timedOut.timeoutMs], [1, 30_000])
        const retried = yield* awaitJobEvent(events, "JobRetried", id)
        assert.deepStrictEqual([retried.attempt, retried.error, retried.delayMs], [1, "timed out after 30s", 1000])
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Queue.take(startedAttempt), 2)
        yield* awaitJobEvent(events, "JobSucceeded", id)
      }))

    it.scoped("stops a running job cancelled in the store: interrupted, finalizers run, evented, never run again", () =>
      Effect.gen(function*() {
        const startedAttempt = yield* Queue.unbounded<number>()
        const finalized = yield* Deferred.make<void>()
        const handler = Work.handler(() =>
          Effect.gen(function*() {
            const { attempt } = yield* Job.Current
            yield* Queue.offer(startedAttempt, attempt)
            yield* Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(finalized, void 0)))
          })
        )
        const { events, store } = yield* setup({ handlers: [handler], pollInterval: "1 second" })
        const id = yield* enqueue(store, Work, { n: 1 })
        assert.strictEqual(yield* Queue.take(startedAttempt), 1)
        assert.strictEqual(yield* Effect.orDie(store.cancel(id)), "cancelled")
        // No clock moves: the cancellation reaches the worker through the store's subscription, not a renewal.
        yield* Deferred.await(finalized)
        const cancelled = yield* awaitJobEvent(events, "JobCancelled", id)
        assert.deepStrictEqual([cancelled.attempt, cancelled.queue], [1, "main"])
        const metric = yield* Metric.value(JobWorker.metrics("jobs", "main").jobsCancelled)
        assert.isAtLeast(metric.count, 1)
        // Past the retry delay (1 s) and the lease (30 s): a retried or released job would have run again.
        yield* TestClock.adjust("40 seconds")
        assert.deepStrictEqual(yield* Queue.takeAll(startedAttempt).pipe(Effect.map(Chunk.toArray)), [], "not again")
        assert.deepInclude(yield* Effect.orDie(store.get(id)), { state: "cancelled", attempts: 1 })
        const outcomes = jobEventsOf(yield* drain(events)).map((event) => event._tag)
        assert.notInclude(outcomes, "JobRetried")
        assert.notInclude(outcomes, "JobSucceeded")
      }))

    it.scoped("keeps a completed job with its run time when the store keeps succeeded jobs", () =>
      Effect.gen(function*() {
        const handler = Work.handler(() => Effect.sleep("1500 millis"))
        const store = yield* MemoryJobStore.make({ succeededRetention: "1 day" })
        const { events } = yield* setup({ handlers: [handler] }, { store })
        const id = yield* enqueue(store, Work, { n: 1 })
        yield* awaitJobEvent(events, "JobClaimed", id)
        yield* TestClock.adjust("1500 millis")
        yield* awaitJobEvent(events, "JobSucceeded", id)
        assert.deepInclude(yield* Effect.orDie(store.get(id)), { state: "succeeded", durationMs: 1500, attempts: 1 })
      }))

    it.scoped("keeps the handler's result, encoded by the job type's success schema, and logs one that does not encode", () =>
      Effect.gen(function*() {
        const Resize = Job.make("resize", {
          payload: Schema.Struct({ width: Schema.Number }),
          success: Schema.Struct({ bytes: Schema.Int, at: Schema.DateFromString })
        })
        const handler = Resize.handler(({ width }) =>
          width > 0
            ? Effect.succeed({ bytes: width * 10, at: new Date(0) })
            : Effect.succeed({ bytes: 0.5, at: new Date(0) })
        )
        const store = yield* MemoryJobStore.make({ succeededRetention: "1 day" })
        const { events } = yield* setup({ handlers: [handler] }, { store })
        const kept = yield* enqueue(store, Resize, { width: 3 })
        yield* awaitJobEvent(events, "JobSucceeded", kept)
        assert.deepInclude(yield* Effect.orDie(store.get(kept)), {
          state: "succeeded",
          result: { bytes: 30, at: "1970-01-01T00:00:00.000Z" }
        })
        // A result the schema refuses (not an integer) is not kept: the job succeeded all the same.
        const unkept = yield* enqueue(store, Resize, { width: 0 })
        yield* awaitJobEvent(events, "JobSucceeded", unkept)
        assert.deepInclude(yield* Effect.orDie(store.get(unkept)), { state: "succeeded", result: undefined })
      }))

    it.scoped("aborts the promise of a cancelled job through the AbortSignal of Effect.tryPromise", () =>
      Effect.gen(function*() {
        // A server that never answers: only an aborted request ends.
        const aborted = yield* Deferred.make<void>()
        const arrived = yield* Deferred.make<void>()
        const server = Http.createServer((request) => {
          Deferred.unsafeDone(arrived, Exit.void)
          request.on("close", () => Deferred.unsafeDone(aborted, Exit.void))
        })
        yield* Effect.acquireRelease(
          Effect.async<void>((resume) => {
            server.listen(0, "127.0.0.1", () => resume(Effect.void))
          }),
          () => Effect.sync(() => server.closeAllConnections()).pipe(Effect.zipRight(Effect.sync(() => server.close())))
        )
        const port = (server.address() as { readonly port: number }).port
        const handler = Work.handler(() =>
          Effect.tryPromise((signal) => fetch(`http://127.0.0.1:${port}/slow`, { signal })).pipe(Effect.asVoid)
        )
        const { events, store } = yield* setup({ handlers: [handler] })
        const id = yield* enqueue(store, Work, { n: 1 })
        yield* Deferred.await(arrived)
        assert.strictEqual(yield* Effect.orDie(store.cancel(id)), "cancelled")
        yield* Deferred.await(aborted)
        yield* awaitJobEvent(events, "JobCancelled", id)
      }))

    it.scoped("starts the jobs of one claim in the order the store returned them", () =>
      Effect.gen(function*() {
        const order = yield* Queue.unbounded<number>()
        const { ctx, store } = yield* setup({
          handlers: [Work.handler(({ n }) => Queue.offer(order, n))],
          autoStart: false
        })
        yield* enqueue(store, Work, { n: 1 }, { priority: 5 })
        yield* enqueue(store, Work, { n: 2 }, { priority: 1 })
        yield* enqueue(store, Work, { n: 3 }, { priority: 5 })
        yield* enqueue(store, Work, { n: 4 }, { priority: -1 })
        yield* ctx.start
        const seen: Array<number> = []
        for (let i = 0; i < 4; i++) seen.push(yield* Queue.take(order))
        assert.deepStrictEqual(seen, [4, 2, 1, 3])
      }))
  })

  describe("concurrency", () => {
    it.scoped("runs at most `concurrency` jobs at once, and claims only for its free slots", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const running = yield* Ref.make({ now: 0, most: 0 })
        const handler = Work.handler(({ n }) =>
          Ref.update(running, ({ most, now }) => ({ now: now + 1, most: Math.max(most, now + 1) })).pipe(
            Effect.zipRight(Queue.offer(reports, { _tag: "started", n, info: undefined as never })),
            Effect.zipRight(Deferred.await(g.gate(n))),
            Effect.ensuring(Ref.update(running, (r) => ({ ...r, now: r.now - 1 })))
          )
        )
        const { store, worker } = yield* setup({ handlers: [handler], concurrency: 2, pollInterval: "1 second" })
        for (let n = 1; n <= 5; n++) yield* enqueue(store, Work, { n })
        const first = [(yield* started(reports)).n, (yield* started(reports)).n]
        assert.deepStrictEqual(first, [1, 2])
        // Polls and wake-ups come and go: still only two are leased.
        yield* TestClock.adjust("3 seconds")
        let s = yield* stats(store)
        assert.deepStrictEqual([s.leased, s.ready], [2, 3])
        assert.strictEqual(yield* worker.leased, 2)
        for (let n = 1; n <= 3; n++) {
          yield* g.open(n)
          const next = yield* started(reports)
          assert.strictEqual(next.n, n + 2)
          s = yield* stats(store)
          assert.isAtMost(s.leased, 2)
        }
        yield* g.open(4)
        yield* g.open(5)
        while ((yield* stats(store)).leased > 0) yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Ref.get(running)).most, 2)
        s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.scheduled, s.leased, s.dead], [0, 0, 0, 0])
      }))
  })

  describe("lifecycle", () => {
    it.scoped("stops claiming on pause, lets the jobs in flight finish, and claims again on resume", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        let control: ReturnType<typeof flaky> | undefined
        const { ctx, events, store } = yield* setup(
          { handlers: [gatedHandler(reports, g)], pollInterval: "1 second" },
          {
            wrap: (store) => (control = flaky(store)).wrapped
          }
        )
        const inFlight = yield* enqueue(store, Work, { n: 1 })
        yield* started(reports)
        yield* ctx.pause
        const claimsBefore = control!.calls.claim
        const waiting = yield* enqueue(store, Work, { n: 2 })
        // Wake-ups and polls came: nothing was claimed, nor even asked for.
        yield* TestClock.adjust("3 seconds")
        let s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.leased], [1, 1])
        assert.strictEqual(yield* Queue.size(reports), 0)
        assert.strictEqual(control!.calls.claim, claimsBefore, "no claim while paused")
        // The job in flight goes on.
        yield* g.open(1)
        yield* awaitJobEvent(events, "JobSucceeded", inFlight)
        yield* TestClock.adjust("3 seconds")
        s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.leased], [1, 0])
        assert.isFalse(jobEventsOf(yield* drain(events)).some((e) => e.id === waiting), "no event of the waiting job")
        assert.strictEqual(control!.calls.claim, claimsBefore, "no claim while paused")
        yield* ctx.resume
        assert.strictEqual((yield* started(reports)).n, 2)
        yield* g.open(2)
        yield* awaitJobEvent(events, "JobSucceeded", waiting)
      }))

    it.scoped("claims a newly enqueued job at once when the store wakes it, without waiting for the poll", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const { events, store } = yield* setup({ handlers: [gatedHandler(reports, g)], pollInterval: "1 hour" })
        // The worker is idle: it claimed, found nothing and waits.
        const first = yield* enqueue(store, Work, { n: 1 })
        yield* started(reports)
        yield* g.open(1)
        yield* awaitJobEvent(events, "JobSucceeded", first)
        yield* enqueue(store, Work, { n: 2 })
        assert.strictEqual((yield* started(reports)).n, 2)
        yield* g.open(2)
      }))

    it.scoped("does not claim before the context is started, and starts it unless autoStart is false", () =>
      Effect.gen(function*() {
        const ran = yield* Deferred.make<void>()
        const { ctx, store } = yield* setup({
          handlers: [Work.handler(() => Deferred.succeed(ran, void 0))],
          autoStart: false
        })
        yield* enqueue(store, Work, { n: 1 })
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* ctx.state, "Pending")
        assert.deepStrictEqual((yield* stats(store)).ready, 1)
        yield* ctx.start
        yield* Deferred.await(ran)

        const auto = yield* setup({ handlers: [Work.handler(() => Effect.void)] })
        assert.strictEqual(yield* auto.ctx.state, "Running")
      }))

    it.scoped("gives back, attempt refunded, the jobs a claim returns after the context left Running", () =>
      Effect.gen(function*() {
        const ran = yield* Ref.make(0)
        const { ctx, events, store } = yield* setup({ handlers: [Work.handler(() => Ref.update(ran, (n) => n + 1))] }, {
          // The context is paused while the claim is on its way.
          wrap: (store, ctx) => ({
            ...store,
            claim: (request) =>
              Effect.tap(store.claim(request), ({ jobs }) => jobs.length > 0 ? Effect.orDie(ctx.pause) : Effect.void)
          })
        })
        const id = yield* enqueue(store, Work, { n: 1 })
        const released = yield* awaitJobEvent(events, "JobReleased", id)
        assert.isTrue(released.refunded)
        assert.strictEqual(yield* ctx.state, "Paused")
        assert.strictEqual(yield* Ref.get(ran), 0)
        const s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.leased], [1, 0])
        const [again] = yield* claimJobs(store, {
          queues: ["main"],
          names: ["work"],
          limit: 1,
          lease: Duration.seconds(30),
          worker: "other"
        })

        assert.strictEqual(again?.attempt, 1, "the attempt was refunded")
      }))

    it.scoped("gives back, attempt refunded, a job claimed while the context was being paused", () =>
      Effect.gen(function*() {
        const ran = yield* Ref.make(0)
        const memory = yield* MemoryJobStore.make()
        const ctx = yield* WorkerContext.make({ name: "refusing", logLevel: "None" })
        const events = yield* ctx.subscribe
        // The context is paused while the claim is on its way: the job it returns must not start.
        const store: JobStore.JobStore.Service = {
          ...memory,
          claim: (request) => Effect.zipLeft(memory.claim(request), Effect.orDie(ctx.pause))
        }
        yield* JobWorker.make({ handlers: [Work.handler(() => Ref.update(ran, (n) => n + 1))] }).pipe(
          Effect.provideService(JobStore.JobStore, store),
          Effect.provideService(WorkerContext, ctx)
        )
        yield* Effect.addFinalizer(() => ctx.requestStop)
        const id = yield* enqueue(store, Work, { n: 1 })
        const released = yield* awaitJobEvent(events, "JobReleased", id)
        assert.isTrue(released.refunded)
        assert.strictEqual(yield* Ref.get(ran), 0)
        const s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.leased], [1, 0])
      }))

    it.scoped("refuses, with a clear defect, a WorkerContext service built by hand", () =>
      Effect.gen(function*() {
        const store = yield* MemoryJobStore.make()
        const ctx = yield* WorkerContext.make({ name: "by-hand", logLevel: "None" })
        const exit = yield* JobWorker.make({ handlers: [Work.handler(() => Effect.void)] }).pipe(
          Effect.provideService(JobStore.JobStore, store),
          Effect.provideService(WorkerContext, { ...ctx }),
          Effect.exit
        )
        assert.isTrue(Exit.isFailure(exit))
        assert.match(String(Cause.squash((exit as Exit.Failure<unknown, unknown>).cause)), /WorkerContext made by/)
      }))

    it.scoped("gives every job that runs at once its own Job.Current", () =>
      Effect.gen(function*() {
        const seen = yield* Queue.unbounded<readonly [number, string, string]>()
        const both = yield* Deferred.make<void>()
        const count = yield* Ref.make(0)
        const handler = Work.handler(({ n }) =>
          Effect.gen(function*() {
            const before = (yield* Job.Current).id
            if ((yield* Ref.updateAndGet(count, (c) => c + 1)) === 3) yield* Deferred.succeed(both, void 0)
            yield* Deferred.await(both)
            // Read again once all three run: each still sees its own job.
            yield* Queue.offer(seen, [n, before, (yield* Job.Current).id])
          })
        )
        const { store } = yield* setup({ handlers: [handler] }, { name: "current" })
        const ids = [
          yield* enqueue(store, Work, { n: 0 }),
          yield* enqueue(store, Work, { n: 1 }),
          yield* enqueue(store, Work, { n: 2 })
        ]
        for (let i = 0; i < 3; i++) {
          const [n, before, after] = yield* Queue.take(seen)
          assert.deepStrictEqual([before, after], [ids[n], ids[n]])
        }
      }))

    it.scoped("gives back a job the store returned without a handler for it", () =>
      Effect.gen(function*() {
        const warnings = capturedWarnings()
        const Other = Job.make("other", { payload: Schema.Struct({}), queue: "main" })
        const { store } = yield* setup({ handlers: [Work.handler(() => Effect.void)] }, {
          // A store that ignores the names it is asked for.
          wrap: (store) => ({ ...store, claim: (request) => store.claim({ ...request, names: ["work", "other"] }) })
        }).pipe(Effect.provide(warnings.layer))
        yield* enqueue(store, Other, {})
        yield* TestClock.adjust("2 seconds")
        assert.isTrue(warnings.lines.some((line) => line.message.includes("no handler")))
        assert.strictEqual((yield* stats(store)).leased, 0)
      }))
  })

  describe("shutdown", () => {
    it.scoped("stops claiming when shutdown begins and drains the jobs in flight", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const { ctx, events, store } = yield* setup({ handlers: [gatedHandler(reports, g)], pollInterval: "1 second" })
        const inFlight = yield* enqueue(store, Work, { n: 1 })
        yield* started(reports)
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* enqueue(store, Work, { n: 2 })
        yield* TestClock.adjust("3 seconds")
        assert.strictEqual(yield* Queue.size(reports), 0, "nothing claimed once shutdown began")
        assert.strictEqual(yield* ctx.state, "Stopping")
        yield* g.open(1)
        yield* Fiber.join(stopper)
        const log = yield* drain(events)
        assert.isTrue(jobEventsOf(log).some((e) => e._tag === "JobSucceeded" && e.id === inFlight))
        const s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.leased], [1, 0])
      }))

    it.scoped("gives back a job cut off at the shutdown deadline, attempt refunded, before the context stops", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const store = yield* MemoryJobStore.make()
        const first = yield* setup({ handlers: [gatedHandler(reports, g)] }, { shutdownTimeout: "5 seconds", store })
        const id = yield* enqueue(store, Work, { n: 1 })
        yield* started(reports)
        const stopper = yield* Effect.fork(first.ctx.stop)
        yield* first.ctx.shutdownRequested
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(stopper)
        // Stopped: the job is back in the store, not leased.
        const s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.scheduled, s.leased, s.dead], [1, 0, 0, 0])
        const log = yield* drain(first.events)
        const releasedAt = log.findIndex(isJob("JobReleased", id))
        assert.isAtLeast(releasedAt, 0, "JobReleased published")
        assert.isTrue((jobEventsOf(log).find((e) => e._tag === "JobReleased") as any).refunded)
        assert.isBelow(releasedAt, log.findIndex((e) => e._tag === "Stopped"), "released before Stopped")
        // The next worker gets the same attempt.
        const second = yield* setup({ handlers: [gatedHandler(reports, g)] }, { store, name: "second" })
        const again = yield* started(reports)
        assert.deepStrictEqual([again.info.id, again.info.attempt], [id, 1])
        yield* g.open(1)
        yield* awaitJobEvent(second.events, "JobSucceeded", id)
      }))

    it.scoped("holds no lease once the context is Stopped", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const { ctx, store } = yield* setup({ handlers: [gatedHandler(reports, g)], concurrency: 3 }, {
          shutdownTimeout: "1 second"
        })
        for (let n = 1; n <= 5; n++) yield* enqueue(store, Work, { n })
        for (let i = 0; i < 3; i++) yield* started(reports)
        yield* g.open(2)
        yield* started(reports)
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        const s = yield* stats(store)
        assert.strictEqual(s.leased, 0)
        assert.strictEqual(s.ready, 4, "the three cut off and the one never claimed")
      }))

    it.effect("releasing the layer shuts the context down and drains the jobs, renewing their leases", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const store = yield* MemoryJobStore.make()
        const { calls, wrapped } = flaky(store)
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          JobWorker.layer({ handlers: [gatedHandler(reports, g)], lease: "3 seconds" }).pipe(
            Layer.provideMerge(WorkerContext.layer({ name: "layered", shutdownTimeout: "1 minute", logLevel: "None" })),
            Layer.provide(Layer.succeed(JobStore.JobStore, wrapped))
          ),
          scope
        )
        const ctx = yield* Effect.provide(WorkerContext, context)
        assert.strictEqual(yield* ctx.state, "Running", "the layer started the context")
        const id = yield* enqueue(store, Work, { n: 1 })
        yield* started(reports)
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* ctx.shutdownRequested
        // Twenty seconds of drain, well past the three-second lease: the lease is renewed meanwhile.
        yield* TestClock.adjust("20 seconds")
        assert.isAtLeast(calls.renew.length, 6)
        assert.strictEqual((yield* stats(store)).leased, 1)
        yield* g.open(1)
        yield* Fiber.join(closing)
        assert.strictEqual(yield* ctx.state, "Stopped")
        const s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.leased, s.dead], [0, 0, 0])
        void id
      }))
  })

  describe("leases", () => {
    it.scoped("renews every lease it holds in one call per lease / 3", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        let calls: ReturnType<typeof flaky>["calls"] | undefined
        const { store } = yield* setup({ handlers: [gatedHandler(reports, g)], lease: "3 seconds" }, {
          wrap: (store) => {
            const f = flaky(store)
            calls = f.calls
            return f.wrapped
          }
        })
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(calls!.renew, [], "nothing to renew while nothing is held")
        for (let n = 1; n <= 3; n++) yield* enqueue(store, Work, { n })
        for (let i = 0; i < 3; i++) yield* started(reports)
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(calls!.renew, [3])
        // Ten seconds on, well past the lease: still held, still one call per second.
        yield* TestClock.adjust("10 seconds")
        assert.deepStrictEqual(calls!.renew, Array(11).fill(3))
        assert.strictEqual((yield* stats(store)).leased, 3)
        for (let n = 1; n <= 3; n++) yield* g.open(n)
      }))

    it.scoped("reaps expired leases every reapInterval", () =>
      Effect.gen(function*() {
        let calls: ReturnType<typeof flaky>["calls"] | undefined
        yield* setup({ handlers: [Work.handler(() => Effect.void)], lease: "4 seconds" }, {
          wrap: (store) => {
            const f = flaky(store)
            calls = f.calls
            return f.wrapped
          }
        })
        yield* TestClock.adjust("1 second")
        assert.strictEqual(calls!.reap, 0)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(calls!.reap, 1, "lease / 2 by default")
        yield* TestClock.adjust("4 seconds")
        assert.strictEqual(calls!.reap, 3)
      }))

    it.scoped("prunes the dead letters past the store's retention at its reaps", () =>
      Effect.gen(function*() {
        const handler = Work.handler(() => Effect.fail("boom"))
        const { events, store } = yield* setup({
          handlers: [handler],
          lease: "10 minutes",
          pollInterval: "10 minutes"
        }, { store: yield* MemoryJobStore.make({ deadLetterRetention: "1 hour" }) })
        const id = yield* enqueue(store, Work, { n: 1 }, { maxAttempts: 1 })
        yield* awaitJobEvent(events, "JobDeadLettered", id)
        // A reap every 5 minutes (lease / 2): the one at 1 h 5 min is the first past the hour.
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual((yield* deadLetters(store)).map((job) => job.id), [id])
        yield* TestClock.adjust("5 minutes")
        assert.deepStrictEqual(yield* deadLetters(store), [])
        assert.strictEqual((yield* stats(store)).dead, 0)
      }))

    it.scoped("interrupts a job whose lease was lost, publishes JobLeaseLost, and acknowledges nothing", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const finalized = yield* Deferred.make<void>()
        const handler = Work.handler(({ n }) =>
          Effect.gen(function*() {
            yield* Queue.offer(reports, { _tag: "started", n, info: yield* Job.Current })
            yield* Deferred.await(g.gate(n))
          }).pipe(Effect.onInterrupt(() => Deferred.succeed(finalized, void 0)))
        )
        let control: ReturnType<typeof flaky> | undefined
        // One slot, taken by the job: the worker cannot claim it again itself.
        const { events, store } = yield* setup({ handlers: [handler], lease: "3 seconds", concurrency: 1 }, {
          wrap: (store) => (control = flaky(store)).wrapped
        })
        const id = yield* enqueue(store, Work, { n: 1 })
        yield* started(reports)
        // The renewals say the lease holds but renew nothing: it lapses unnoticed, and another worker claims the job.
        control!.failing.lyingRenew = true
        yield* TestClock.adjust("3 seconds")
        const [taken] = yield* claimJobs(store, {
          queues: ["main"],
          names: ["work"],
          limit: 1,
          lease: Duration.minutes(1),
          worker: "other"
        })

        assert.deepStrictEqual([taken?.id, taken?.attempt], [id, 2])
        // The next renewal tells.
        control!.failing.lyingRenew = false
        yield* TestClock.adjust("1 second")
        yield* Deferred.await(finalized)
        const lost = yield* awaitJobEvent(events, "JobLeaseLost", id)
        assert.strictEqual(lost.attempt, 1)
        // The other claim holds; this worker acknowledged nothing.
        const s = yield* stats(store)
        assert.deepStrictEqual([s.leased, s.ready, s.scheduled, s.dead], [1, 0, 0, 0])
        yield* TestClock.adjust("5 seconds")
        assert.deepStrictEqual(control!.calls.acks, [], "no acknowledgement of the lost lease")
        yield* complete(store, taken!.lease)
        assert.isFalse(jobEventsOf(yield* drain(events)).some((e) => e.id === id && e._tag !== "JobClaimed"))
      }))

    it.scoped("discards the outcome of a job whose acknowledgement finds its lease lost", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        let control: ReturnType<typeof flaky> | undefined
        const { events, store } = yield* setup({
          handlers: [gatedHandler(reports, g)],
          lease: "3 seconds",
          concurrency: 1
        }, { wrap: (store) => (control = flaky(store)).wrapped })
        const id = yield* enqueue(store, Work, { n: 1 })
        yield* started(reports)
        control!.failing.lyingRenew = true
        yield* TestClock.adjust("3 seconds")
        const [taken] = yield* claimJobs(store, {
          queues: ["main"],
          names: ["work"],
          limit: 1,
          lease: Duration.minutes(1),
          worker: "other"
        })

        assert.strictEqual(taken?.attempt, 2)
        // The handler ends before the renewer noticed: its completion fails with LeaseLost.
        yield* g.open(1)
        const lost = yield* awaitJobEvent(events, "JobLeaseLost", id)
        assert.strictEqual(lost.attempt, 1)
        const s = yield* stats(store)
        assert.deepStrictEqual([s.leased, s.ready, s.dead], [1, 0, 0], "the other claim still holds the job")
        yield* complete(store, taken!.lease)
        assert.isFalse(jobEventsOf(yield* drain(events)).some((e) => e._tag === "JobSucceeded"))
      }))
    it.scoped("stops a job whose lease it cannot renew before the lease lapses, and acknowledges nothing", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const finalized = yield* Deferred.make<void>()
        const handler = Work.handler(({ n }) =>
          Effect.gen(function*() {
            yield* Queue.offer(reports, { _tag: "started", n, info: yield* Job.Current })
            yield* Deferred.await(g.gate(n))
          }).pipe(Effect.onInterrupt(() => Deferred.succeed(finalized, void 0)))
        )
        let control: ReturnType<typeof flaky> | undefined
        const { events, store, worker } = yield* setup({ handlers: [handler], lease: "3 seconds", concurrency: 1 }, {
          wrap: (store) => (control = flaky(store)).wrapped
        })
        const id = yield* enqueue(store, Work, { n: 1 })
        yield* started(reports)
        // The store cannot be reached to renew.
        control!.failing.renew = true
        yield* TestClock.adjust("2600 millis")
        assert.isFalse(yield* Deferred.isDone(finalized), "still running while the lease surely holds")
        // 300 ms (a tenth of the lease) before the lease would lapse, the worker stops the job.
        yield* TestClock.adjust("100 millis")
        yield* Deferred.await(finalized)
        const lost = yield* awaitJobEvent(events, "JobLeaseLost", id)
        assert.strictEqual(lost.attempt, 1)
        assert.strictEqual((yield* stats(store)).leased, 1, "the lease has not lapsed yet")
        assert.deepStrictEqual(
          [yield* worker.inFlight, yield* worker.leased],
          [1, 0],
          "the job keeps its slot until its lease lapses"
        )
        assert.deepStrictEqual(control!.calls.acks, [], "no acknowledgement of the lost lease")
        // Once it has lapsed, the job may be claimed again (here by this worker, whose slot is free again).
        yield* TestClock.adjust("299 millis")
        assert.strictEqual(yield* Queue.size(reports), 0)
        yield* TestClock.adjust("1 millis")
        const again = yield* started(reports)
        assert.deepStrictEqual([again.info.id, again.info.attempt], [id, 2])
        assert.deepStrictEqual(control!.calls.acks, [], "no acknowledgement of the lost lease")
      }))

    it.scoped("starts a job it claimed again only once its earlier attempt, whose lease was lost, has ended", () =>
      Effect.gen(function*() {
        const log = yield* Queue.unbounded<string>()
        const release = yield* Deferred.make<void>()
        const handler = Work.handler(() =>
          Effect.gen(function*() {
            const { attempt } = yield* Job.Current
            yield* Queue.offer(log, `start ${attempt}`)
            // The first attempt takes a while to let go once interrupted.
            if (attempt === 1) {
              yield* Effect.never.pipe(
                Effect.onInterrupt(() => Effect.zipRight(Deferred.await(release), Queue.offer(log, "end 1")))
              )
            }
          })
        )
        let control: ReturnType<typeof flaky> | undefined
        const { events, store, worker } = yield* setup({ handlers: [handler], lease: "3 seconds", concurrency: 2 }, {
          wrap: (store) => (control = flaky(store)).wrapped
        })
        const id = yield* enqueue(store, Work, { n: 1 })
        assert.strictEqual(yield* Queue.take(log), "start 1")
        control!.failing.lyingRenew = true
        // The lease lapses unnoticed; the reaper makes the job ready and the worker, with a slot free, claims it.
        yield* TestClock.adjust("3 seconds")
        const lost = yield* awaitJobEvent(events, "JobLeaseLost", id)
        assert.strictEqual(lost.attempt, 1)
        const s = yield* stats(store)
        assert.strictEqual(s.leased, 1, "the second claim")
        assert.strictEqual(yield* worker.inFlight, 2, "the lost attempt still takes its slot")
        assert.strictEqual(yield* Queue.size(log), 0, "the second attempt waits for the first")
        yield* Deferred.succeed(release, void 0)
        assert.deepStrictEqual([yield* Queue.take(log), yield* Queue.take(log)], ["end 1", "start 2"])
        control!.failing.lyingRenew = false
        const done = yield* awaitJobEvent(events, "JobSucceeded", id)
        assert.strictEqual(done.attempt, 2)
      }))
  })

  describe("store errors", () => {
    /** Moves the clock by each of `delays` and checks the worker claims exactly then, not a millisecond before. */
    const claimsAfter = (claims: Queue.Queue<ClaimCall>, delays: ReadonlyArray<number>) =>
      Effect.gen(function*() {
        const calls: Array<ClaimCall> = []
        for (const delay of delays) {
          yield* TestClock.adjust(delay - 1)
          assert.strictEqual(yield* Queue.size(claims), 0, `no claim before ${delay} ms`)
          yield* TestClock.adjust(1)
          calls.push(yield* Queue.take(claims))
        }
        return calls
      })

    it.scoped("retries a failed claim after 100 ms, doubling up to 5 s, not at the next poll, and logs each failure", () =>
      Effect.gen(function*() {
        const warnings = capturedWarnings()
        const down = yield* Ref.make(false)
        const claims = yield* Queue.unbounded<ClaimCall>()
        const ran = yield* Deferred.make<void>()
        const { ctx, store } = yield* setup({
          handlers: [Work.handler(() => Deferred.succeed(ran, void 0))],
          pollInterval: "60 seconds"
        }, { wrap: (store) => outage(store, down, claims) }).pipe(Effect.provide(warnings.layer))
        assert.deepStrictEqual(yield* Queue.take(claims), { at: 0, down: false }, "the claim at start")
        yield* Ref.set(down, true)
        yield* enqueue(store, Work, { n: 1 })
        assert.deepStrictEqual(yield* Queue.take(claims), { at: 0, down: true }, "the wake-up's claim")
        const retries = yield* claimsAfter(claims, [100, 200, 400, 800, 1600, 3200, 5000, 5000])
        assert.deepStrictEqual(
          retries.map((call) => call.at),
          [100, 300, 700, 1500, 3100, 6300, 11300, 16300]
        )
        assert.isFalse(yield* Deferred.isDone(ran))
        assert.strictEqual(yield* ctx.state, "Running")
        yield* Ref.set(down, false)
        const [back] = yield* claimsAfter(claims, [5000])
        assert.deepStrictEqual(back, { at: 21300, down: false })
        yield* Deferred.await(ran)
        const claimWarnings = warnings.lines.filter((line) => line.message.includes("JobStore.claim failed;"))
        assert.strictEqual(claimWarnings.length, 9)
        const readinessWarnings = warnings.lines.filter((line) => line.message.includes("readiness check"))
        assert.deepStrictEqual(readinessWarnings.map((line) => line.message), [
          "readiness check \"job store\" is not ready: JobStore.claim failed: connection refused to 127.0.0.1:5432"
        ], "one warning for the outage")
        assert.include(claimWarnings[0]!.message, "claiming again in 100 ms")
        assert.strictEqual(claimWarnings[0]!.annotations.worker, "jobs")
      }))

    it.scoped("caps the claim back-off at pollInterval when it is shorter than 5 s, and polls add no claim to it", () =>
      Effect.gen(function*() {
        const down = yield* Ref.make(false)
        const claims = yield* Queue.unbounded<ClaimCall>()
        const { store } = yield* setup({ handlers: [Work.handler(() => Effect.void)], pollInterval: "1 second" }, {
          wrap: (store) => outage(store, down, claims)
        })
        yield* Queue.take(claims)
        yield* Ref.set(down, true)
        yield* enqueue(store, Work, { n: 1 })
        yield* Queue.take(claims)
        const retries = yield* claimsAfter(claims, [100, 200, 400, 800, 1000, 1000])
        assert.deepStrictEqual(retries.map((call) => call.at), [100, 300, 700, 1500, 2500, 3500])
      }))

    it.scoped("resets the claim back-off once a claim succeeds", () =>
      Effect.gen(function*() {
        const down = yield* Ref.make(false)
        const claims = yield* Queue.unbounded<ClaimCall>()
        const ran = yield* Queue.unbounded<number>()
        const { store } = yield* setup({
          handlers: [Work.handler(({ n }) => Queue.offer(ran, n))],
          pollInterval: "60 seconds"
        }, { wrap: (store) => outage(store, down, claims) })
        yield* Queue.take(claims)
        for (const n of [1, 2]) {
          yield* Ref.set(down, true)
          yield* enqueue(store, Work, { n })
          yield* Queue.take(claims)
          yield* claimsAfter(claims, [100, 200, 400])
          yield* Ref.set(down, false)
          const [back] = yield* claimsAfter(claims, [800])
          assert.isFalse(back!.down)
          assert.strictEqual(yield* Queue.take(ran), n)
        }
      }))

    it.scoped("keeps running through a store outage: unready with the reason while down, ready after, no job lost", () =>
      Effect.gen(function*() {
        const down = yield* Ref.make(false)
        const claims = yield* Queue.unbounded<ClaimCall>()
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        const { ctx, events, store, worker } = yield* setup({
          handlers: [gatedHandler(reports, g)],
          concurrency: 2,
          lease: "30 seconds",
          pollInterval: "60 seconds"
        }, { wrap: (store) => outage(store, down, claims) })
        const first = yield* enqueue(store, Work, { n: 1 })
        assert.strictEqual((yield* started(reports)).n, 1)
        assert.isTrue((yield* ctx.readiness).ready)

        yield* TestClock.adjust("1 second")
        yield* Ref.set(down, true)
        // Jobs keep coming while the store cannot be reached; the running job ends, and cannot be acknowledged.
        const later = [
          yield* enqueue(store, Work, { n: 2 }),
          yield* enqueue(store, Work, { n: 3 }),
          yield* enqueue(store, Work, { n: 4 })
        ]
        for (const n of [2, 3, 4]) yield* g.open(n)
        yield* g.open(1)
        // 20 s of outage: renewals fail too, but the lease (30 s from the claim) surely holds for 6 s more.
        yield* TestClock.adjust("20 seconds")
        const during = yield* ctx.readiness
        assert.deepStrictEqual([during.ready, during.state], [false, "Running"])
        assert.deepStrictEqual(during.unready.map((c) => [c.check, c.since.getTime()]), [["job store", 1000]])
        assert.match(during.unready[0]!.reason, /^JobStore\.\w+ failed: connection refused to 127\.0\.0\.1:5432$/)
        assert.deepStrictEqual(
          [yield* worker.inFlight, yield* worker.leased],
          [1, 1],
          "the unacknowledged job keeps its slot and its lease"
        )
        assert.strictEqual(yield* Queue.size(reports), 0, "nothing claimed while down")

        yield* Ref.set(down, false)
        // Within one capped back-off (5 s) the acknowledgement and a claim go through.
        yield* TestClock.adjust("5 seconds")
        const pending = new Set([first, ...later])
        const seen = yield* takeUntil(events, (event) => {
          if (isJob("JobSucceeded")(event)) pending.delete((event as { readonly value: JobEvent }).value.id)
          return pending.size === 0
        })
        assert.isTrue((yield* ctx.readiness).ready)
        const s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.scheduled, s.leased, s.dead], [0, 0, 0, 0])
        const outcomes = jobEventsOf([...seen, ...(yield* drain(events))])
        assert.isFalse(outcomes.some((e) => e._tag === "JobDeadLettered" || e._tag === "JobLeaseLost"))
        const reran = yield* Queue.takeAll(reports)
        assert.deepStrictEqual(Chunk.toArray(reran).map((r) => [r.n, r.info.attempt]), [[2, 1], [3, 1], [4, 1]])
      }))

    it.scoped("reports a failed renewal as the job store's reason, and is ready again once a renewal succeeds", () =>
      Effect.gen(function*() {
        const reports = yield* Queue.unbounded<Report>()
        const g = gates()
        let control: ReturnType<typeof flaky> | undefined
        const { ctx, store, worker } = yield* setup({ handlers: [gatedHandler(reports, g)], lease: "30 seconds" }, {
          wrap: (store) => (control = flaky(store)).wrapped
        })
        yield* enqueue(store, Work, { n: 1 })
        yield* started(reports)
        control!.failing.renew = true
        yield* TestClock.adjust("10 seconds")
        assert.deepStrictEqual(
          (yield* ctx.readiness).unready.map(({ check, reason }) => ({ check, reason })),
          [{ check: "job store", reason: "JobStore.renew failed: connection refused" }]
        )
        control!.failing.renew = false
        yield* TestClock.adjust("100 millis")
        assert.deepStrictEqual(control!.calls.renew, [1, 1])
        assert.isTrue((yield* ctx.readiness).ready)
        assert.strictEqual(yield* worker.leased, 1, "the job kept its lease")
        yield* g.open(1)
      }))

    it.scoped("retries a failed acknowledgement until the store takes it", () =>
      Effect.gen(function*() {
        let control: ReturnType<typeof flaky> | undefined
        const { events, store } = yield* setup({ handlers: [Work.handler(() => Effect.void)] }, {
          wrap: (store) => {
            control = flaky(store)
            control.failing.settle = 3
            return control.wrapped
          }
        })
        const id = yield* enqueue(store, Work, { n: 1 })
        yield* TestClock.adjust("100 millis")
        yield* TestClock.adjust("200 millis")
        assert.strictEqual((yield* stats(store)).leased, 1)
        yield* TestClock.adjust("400 millis")
        yield* awaitJobEvent(events, "JobSucceeded", id)
        const s = yield* stats(store)
        assert.deepStrictEqual([s.ready, s.leased], [0, 0])
      }))

    it.scoped("retries the acknowledgement of an attempt that timed out", () =>
      Effect.gen(function*() {
        const Slow = Job.make("slow", {
          payload: Schema.Struct({}),
          timeout: "1 second",
          retry: Schedule.spaced("1 minute")
        })
        const startedSlow = yield* Deferred.make<void>()
        let control: ReturnType<typeof flaky> | undefined
        const { events, store } = yield* setup({
          handlers: [Slow.handler(() => Effect.zipRight(Deferred.succeed(startedSlow, void 0), Effect.never))]
        }, {
          wrap: (store) => {
            control = flaky(store)
            control.failing.settle = 2
            return control.wrapped
          }
        })
        const id = yield* enqueue(store, Slow, {})
        yield* Deferred.await(startedSlow)
        yield* TestClock.adjust("1 second")
        yield* awaitJobEvent(events, "JobTimedOut", id)
        assert.strictEqual((yield* stats(store)).leased, 1, "the retry failed: still leased")
        yield* TestClock.adjust("100 millis")
        assert.strictEqual((yield* stats(store)).leased, 1, "failed again")
        yield* TestClock.adjust("200 millis")
        const retried = yield* awaitJobEvent(events, "JobRetried", id)
        assert.strictEqual(retried.error, "timed out after 1s")
        const s = yield* stats(store)
        assert.deepStrictEqual([s.leased, s.scheduled], [0, 1])
      }))

    it.scoped("stops retrying an acknowledgement at the shutdown deadline, leaving the job to its lease", () =>
      Effect.gen(function*() {
        const warnings = capturedWarnings()
        const gate = yield* Deferred.make<void>()
        const startedJob = yield* Deferred.make<void>()
        let control: ReturnType<typeof flaky> | undefined
        const { ctx, store } = yield* setup({
          handlers: [Work.handler(() => Effect.zipRight(Deferred.succeed(startedJob, void 0), Deferred.await(gate)))],
          lease: "1 minute"
        }, {
          shutdownTimeout: "10 seconds",
          wrap: (store) => {
            control = flaky(store)
            control.failing.settle = Infinity
            return control.wrapped
          }
        }).pipe(Effect.provide(warnings.layer))
        const id = yield* enqueue(store, Work, { n: 1 })
        yield* Deferred.await(startedJob)
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        // The job ends once shutdown began: its task ends when its outcome is written, and that keeps failing, so
        // the context waits for it until its deadline.
        yield* Deferred.succeed(gate, void 0)
        yield* TestClock.adjust("9 seconds")
        assert.strictEqual(yield* ctx.state, "Stopping")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.isTrue(warnings.lines.some((line) => line.message.includes("failed at the shutdown deadline")))
        // Still leased, until the lease expires: then it runs again (at least once).
        assert.strictEqual((yield* stats(store)).leased, 1)
        yield* TestClock.adjust("1 minute")
        const [again] = yield* claimJobs(store, {
          queues: ["main"],
          names: ["work"],
          limit: 1,
          lease: Duration.seconds(30),
          worker: "other"
        })

        assert.deepStrictEqual([again?.id, again?.attempt], [id, 2])
      }))
  })

  describe("events and metrics", () => {
    it.scoped("publishes job events to the context's listeners", () =>
      Effect.gen(function*() {
        const seen = yield* Queue.unbounded<JobEvent>()
        const { ctx, store } = yield* setup({ handlers: [Work.handler(() => Effect.void)] })
        yield* ctx.listen((event) =>
          event._tag === "Custom" && JobWorker.isJobEvent(event.value) ? Queue.offer(seen, event.value) : Effect.void
        )
        const id = yield* enqueue(store, Work, { n: 1 })
        const claimed = yield* Queue.take(seen)
        const succeeded = yield* Queue.take(seen)
        assert.deepStrictEqual(claimed, JobWorker.JobEvent.JobClaimed({ id, name: "work", queue: "main", attempt: 1 }))
        assert.strictEqual(succeeded._tag, "JobSucceeded")
        assert.isFalse(JobWorker.isJobEvent({ _tag: "JobClaimed" }))
        assert.isFalse(JobWorker.isJobEvent("JobClaimed"))
      }))

    it.scoped("counts jobs per queue", () =>
      Effect.gen(function*() {
        const Mail = Job.make("mail", {
          payload: Schema.Struct({ ok: Schema.Boolean }),
          queue: "mail",
          maxAttempts: 2,
          retry: Schedule.spaced("1 second")
        })
        const Sms = Job.make("sms", { payload: Schema.Struct({}), queue: "sms" })
        const { events, store } = yield* setup({
          handlers: [
            Mail.handler(({ ok }) => ok ? Effect.void : Effect.fail("no")),
            Sms.handler(() => Effect.void)
          ],
          pollInterval: "1 second"
        }, { name: "metered" })
        yield* TestClock.adjust("10 seconds")
        const okId = yield* enqueue(store, Mail, { ok: true })
        yield* awaitJobEvent(events, "JobSucceeded", okId)
        const badId = yield* enqueue(store, Mail, { ok: false }, { runAt: new Date(4000) })
        yield* awaitJobEvent(events, "JobRetried", badId)
        yield* TestClock.adjust("1 second")
        yield* awaitJobEvent(events, "JobDeadLettered", badId)
        const smsId = yield* enqueue(store, Sms, {})
        yield* awaitJobEvent(events, "JobSucceeded", smsId)
        const mail = JobWorker.metrics("metered", "mail")
        const sms = JobWorker.metrics("metered", "sms")
        const count = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (s) => s.count)
        assert.deepStrictEqual(
          [
            yield* count(mail.jobsClaimed),
            yield* count(mail.jobsSucceeded),
            yield* count(mail.jobsRetried),
            yield* count(mail.jobsDeadLettered),
            yield* count(mail.jobsReleased)
          ],
          [3, 1, 1, 1, 0]
        )
        assert.deepStrictEqual([yield* count(sms.jobsClaimed), yield* count(sms.jobsSucceeded)], [1, 1])
        const duration = yield* Metric.value(mail.jobDuration)
        assert.strictEqual(duration.count, 3)
        const wait = yield* Metric.value(mail.jobWait)
        assert.strictEqual(wait.count, 3)
        // The bad job was due at 4 s and started at 10 s: waited 6 s; its retry waited 0 s (it started on time).
        assert.strictEqual(wait.max, 6)
      }))
  })

  describe("options", () => {
    const invalid: ReadonlyArray<readonly [string, JobWorker.Options<never>]> = [
      ["handlers", { handlers: [] }],
      ["handlers", { handlers: [Work.handler(() => Effect.void), Work.handler(() => Effect.void)] }],
      ["handlers", { handlers: [{ job: undefined } as never] }],
      ["concurrency", { handlers: [Work.handler(() => Effect.void)], concurrency: 0 }],
      ["concurrency", { handlers: [Work.handler(() => Effect.void)], concurrency: 1.5 }],
      ["lease", { handlers: [Work.handler(() => Effect.void)], lease: 0 }],
      ["lease", { handlers: [Work.handler(() => Effect.void)], lease: "forever" as never }],
      ["lease", { handlers: [Work.handler(() => Effect.void)], lease: Duration.infinity }],
      ["pollInterval", { handlers: [Work.handler(() => Effect.void)], pollInterval: -1 }],
      ["pollInterval", { handlers: [Work.handler(() => Effect.void)], pollInterval: "-5 seconds" }],
      ["reapInterval", { handlers: [Work.handler(() => Effect.void)], reapInterval: "soon" as never }],
      ["queues", { handlers: [Work.handler(() => Effect.void)], queues: [] }],
      ["workerId", { handlers: [Work.handler(() => Effect.void)], workerId: "" }],
      ["autoStart", { handlers: [Work.handler(() => Effect.void)], autoStart: "yes" as never }]
    ]
    for (const [option, options] of invalid) {
      it.scoped(`dies with an IllegalArgumentException naming ${option} for ${describeOptions(options)}`, () =>
        Effect.gen(function*() {
          const exit = yield* Effect.exit(setup(options))
          assert.isTrue(Exit.isFailure(exit))
          const defect = Exit.isFailure(exit) ? Cause.dieOption(exit.cause) : Option.none()
          assert.isTrue(Option.isSome(defect), "a defect")
          const error = Option.getOrThrow(defect)
          assert.instanceOf(error, Cause.IllegalArgumentException)
          assert.include((error as Error).message, `JobWorker: invalid ${option}`)
        }))
    }

    it.scoped("claims as the given workerId, from the given queues", () =>
      Effect.gen(function*() {
        const requests: Array<JobStore.ClaimRequest> = []
        const { worker } = yield* setup({
          handlers: [Work.handler(() => Effect.void)],
          workerId: "mailer-7",
          queues: ["main", "extra"]
        }, {
          wrap: (store) => ({
            ...store,
            claim: (request) => Effect.suspend(() => (requests.push(request), store.claim(request)))
          })
        })
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual(worker.workerId, "mailer-7")
        assert.isAtLeast(requests.length, 1)
        assert.deepStrictEqual(requests[0]!.queues, ["main", "extra"])
        assert.deepStrictEqual(requests[0]!.names, ["work"])
        assert.strictEqual(requests[0]!.worker, "mailer-7")
        const generated = yield* setup({ handlers: [Work.handler(() => Effect.void)] }, { name: "named" })
        assert.match(generated.worker.workerId, /^named-[0-9a-f]{8}$/)
      }))
  })
})

function describeOptions(options: JobWorker.Options<never>): string {
  const { handlers, ...rest } = options
  return JSON.stringify({ handlers: Array.isArray(handlers) ? handlers.length : handlers, ...rest }) ?? "?"
}

void List

describe("prefetch", () => {
  /** A worker of concurrency 2 and prefetch 3 on a store holding jobs 1 to 6, that writes down each claim's limit. */
  const prefetching = Effect.gen(function*() {
    const reports = yield* Queue.unbounded<Report>()
    const g = gates()
    const limits: Array<number> = []
    const setUp = yield* setup(
      { handlers: [gatedHandler(reports, g)], concurrency: 2, prefetch: 3, autoStart: false },
      {
        wrap: (store) => ({
          ...store,
          claim: (request) => Effect.suspend(() => (limits.push(request.limit), store.claim(request)))
        })
      }
    )
    for (let n = 1; n <= 6; n++) yield* enqueue(setUp.store, Work, { n })
    yield* setUp.ctx.start
    assert.deepStrictEqual([(yield* started(reports)).n, (yield* started(reports)).n], [1, 2])
    return { ...setUp, reports, g, limits }
  })

  it.scoped("claims ahead of its free slots in one claim, and starts the next job as soon as a slot frees", () =>
    Effect.gen(function*() {
      const { g, limits, reports, store, worker } = yield* prefetching
      assert.strictEqual(limits[0], 5, "2 free slots + 3 ahead")
      assert.strictEqual(yield* worker.inFlight, 2, "the jobs claimed ahead take no slot")
      assert.strictEqual(yield* worker.leased, 5)
      assert.deepStrictEqual(yield* Effect.map(stats(store), (s) => [s.leased, s.ready]), [5, 1])
      yield* g.open(1)
      const third = yield* started(reports)
      assert.strictEqual(third.n, 3, "a job claimed ahead starts in the freed slot")
      assert.strictEqual(third.info.attempt, 1)
      // Each freed slot starts the next job: 4 and 5 from the worker, then 6, claimed once none was left ahead.
      for (const [done, next] of [[2, 4], [3, 5], [4, 6]]) {
        yield* g.open(done!)
        assert.strictEqual((yield* started(reports)).n, next)
      }
      yield* g.open(5)
      yield* g.open(6)
    }))

  it.scoped("gives the jobs claimed ahead back, attempt refunded, when paused, and claims them again on resume", () =>
    Effect.gen(function*() {
      const { ctx, events, g, reports, store } = yield* prefetching
      yield* ctx.pause
      const released = yield* awaitJobEvent(events, "JobReleased")
      assert.isTrue(released.refunded)
      while ((yield* stats(store)).leased > 2) yield* awaitJobEvent(events, "JobReleased")
      assert.deepStrictEqual(yield* Effect.map(stats(store), (s) => [s.leased, s.ready]), [2, 4])
      yield* ctx.resume
      yield* g.open(1)
      const next = yield* started(reports)
      assert.strictEqual(next.n, 3)
      assert.strictEqual(next.info.attempt, 1, "the release refunded the attempt")
      for (const n of [2, 3]) yield* g.open(n)
    }))

  it.scoped("gives the jobs claimed ahead back when shutdown begins, before the context is Stopped", () =>
    Effect.gen(function*() {
      const { ctx, events, g, reports, store } = yield* prefetching
      yield* ctx.requestStop
      yield* g.open(1)
      yield* g.open(2)
      yield* takeUntil(events, (event) => event._tag === "Stopped")
      assert.strictEqual(yield* Queue.size(reports), 0, "no job claimed ahead started once shutdown had begun")
      const left = yield* stats(store)
      assert.deepStrictEqual([left.leased, left.ready], [0, 4], "jobs 3 to 5 given back, job 6 never claimed")
    }))

  it.scoped("drops a job claimed ahead whose lease was lost before its turn: it never runs here", () =>
    Effect.gen(function*() {
      const reports = yield* Queue.unbounded<Report>()
      const g = gates()
      const lose = new Set<string>()
      const { ctx, events, store } = yield* setup(
        { handlers: [gatedHandler(reports, g)], concurrency: 1, prefetch: 2, autoStart: false },
        {
          // The store says these leases no longer hold: another worker has the job.
          wrap: (store) => ({
            ...store,
            renew: (leases, lease) =>
              Effect.map(
                store.renew(leases.filter((held) => !lose.has(held.jobId)), lease),
                (lost) => [...lost, ...leases.filter((held) => lose.has(held.jobId)).map((held) => held.jobId)]
              )
          })
        }
      )
      const ids: Array<string> = []
      for (let n = 1; n <= 3; n++) ids.push(yield* enqueue(store, Work, { n }))
      yield* ctx.start
      assert.strictEqual((yield* started(reports)).n, 1)
      lose.add(ids[1]!)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* awaitJobEvent(events, "JobLeaseLost")).id, ids[1])
      yield* g.open(1)
      assert.strictEqual((yield* started(reports)).n, 3, "job 2 was skipped")
      yield* g.open(3)
    }))

  it.scoped("gives a finished job's slot to the next one while its acknowledgement is on its way", () =>
    Effect.gen(function*() {
      const reports = yield* Queue.unbounded<Report>()
      const g = gates()
      const ackGate = yield* Deferred.make<void>()
      const acking = yield* Deferred.make<void>()
      const { ctx, store, worker } = yield* setup(
        { handlers: [gatedHandler(reports, g)], concurrency: 1, prefetch: 1, autoStart: false },
        {
          // The store takes its time to take the first outcome.
          wrap: (store) => ({
            ...store,
            settle: (settlements) =>
              Effect.zipRight(
                Effect.zipRight(Deferred.succeed(acking, void 0), Deferred.await(ackGate)),
                store.settle(settlements)
              )
          })
        }
      )
      yield* enqueue(store, Work, { n: 1 })
      yield* enqueue(store, Work, { n: 2 })
      yield* ctx.start
      assert.strictEqual((yield* started(reports)).n, 1)
      yield* g.open(1)
      yield* Deferred.await(acking)
      assert.strictEqual((yield* started(reports)).n, 2, "job 2 starts before job 1's outcome is taken")
      assert.strictEqual(yield* worker.inFlight, 1)
      assert.strictEqual(yield* worker.leased, 2, "job 1 keeps its lease until the store took its outcome")
      yield* Deferred.succeed(ackGate, void 0)
      yield* g.open(2)
    }))
})

// -----------------------------------------------------------------------------------------------------------------
// The defects of issue 14, one test (or more) each
// -----------------------------------------------------------------------------------------------------------------

/** A store whose calls can be made to hang (never answer), per operation. */
const hanging = (store: Store) => {
  const hang = { claim: false, renew: false, settle: false, reap: false }
  const calls = { claim: 0, renew: 0, settle: 0 }
  const maybe = <A, E>(operation: keyof typeof hang, call: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => (hang[operation] ? Effect.never : call))
  const wrapped: Store = {
    ...store,
    claim: (request) => Effect.suspend(() => (calls.claim++, maybe("claim", store.claim(request)))),
    renew: (leases, lease) => Effect.suspend(() => (calls.renew++, maybe("renew", store.renew(leases, lease)))),
    settle: (settlements) => Effect.suspend(() => (calls.settle++, maybe("settle", store.settle(settlements)))),
    reap: maybe("reap", store.reap)
  }
  return { wrapped, hang, calls }
}

/** A clock `offsetMillis` ahead of `clock` (behind, when negative), moved by the same `TestClock`. */
const skewed = (clock: Clock.Clock, offsetMillis: number): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => clock.unsafeCurrentTimeMillis() + offsetMillis,
  currentTimeMillis: Effect.sync(() => clock.unsafeCurrentTimeMillis() + offsetMillis),
  unsafeCurrentTimeNanos: () => clock.unsafeCurrentTimeNanos() + BigInt(offsetMillis) * BigInt(1_000_000),
  currentTimeNanos: Effect.sync(() => clock.unsafeCurrentTimeNanos() + BigInt(offsetMillis) * BigInt(1_000_000)),
  sleep: (duration) => clock.sleep(duration)
})

/** `count` ready jobs of `Noop`. */
const Noop = Job.make("noop", { payload: Schema.Struct({ n: Schema.Number }), queue: "bulk" })
const noopJobs = (count: number): Array<JobStore.NewJob> =>
  Array.from({ length: count }, (_, n) => ({
    name: Noop.name,
    queue: Noop.queue,
    payload: { n },
    priority: 0,
    key: undefined,
    maxAttempts: 3
  }))

describe("the defects of issue 14", () => {
  it.scoped(
    "1. yields to the event loop during a drain of fast jobs: a timer set at its start runs long before its end",
    () =>
      Effect.gen(function*() {
        const total = 50_000
        let finished = 0
        const drained = yield* Deferred.make<void>()
        const { ctx, store } = yield* setup({
          handlers: [
            Noop.handler(() => Effect.sync(() => ++finished === total && Deferred.unsafeDone(drained, Exit.void)))
          ],
          concurrency: 10,
          autoStart: false
        })
        yield* Effect.orDie(store.enqueue(noopJobs(total)))
        let finishedWhenTimerRan = -1
        const timer = setTimeout(() => (finishedWhenTimerRan = finished), 0)
        yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(timer)))
        yield* ctx.start
        yield* Deferred.await(drained)
        assert.isAtLeast(finishedWhenTimerRan, 0, "the timer ran")
        assert.isBelow(finishedWhenTimerRan, total / 10, `the timer ran after ${finishedWhenTimerRan} of ${total} jobs`)
      }),
    120_000
  )

  // On the real clock: the defect is the event loop's, timers included.
  it.live(
    "2. renews the lease of a slow job beside a long drain of fast jobs: it runs once",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const total = 50_000
        const Slow = Job.make("slow", { payload: Schema.Struct({}), queue: "bulk", timeout: "1 minute" })
        let finished = 0
        const renewedAt: Array<number> = []
        const drained = yield* Deferred.make<void>()
        const slowRuns = yield* Ref.make(0)
        const store = yield* MemoryJobStore.make()
        const ctx = yield* WorkerContext.make({ name: "long-drain", logLevel: "None" })
        const renewing: Store = {
          ...store,
          renew: (leases, lease) => Effect.suspend(() => (renewedAt.push(finished), store.renew(leases, lease)))
        }
        yield* JobWorker.make({
          handlers: [
            Noop.handler(() => Effect.sync(() => ++finished === total && Deferred.unsafeDone(drained, Exit.void))),
            // Longer than its lease: it must be renewed while the fast jobs drain.
            Slow.handler(() => Effect.zipRight(Ref.update(slowRuns, (n) => n + 1), Effect.sleep("1500 millis")))
          ],
          concurrency: 10,
          // Renewed every 200 ms; a job not renewed for 540 ms would be stopped.
          lease: "600 millis",
          pollInterval: "1 hour",
          autoStart: false
        }).pipe(Effect.provideService(JobStore.JobStore, renewing), Effect.provideService(WorkerContext, ctx))
        yield* enqueue(store, Slow, {}, { priority: -1 })
        yield* Effect.orDie(store.enqueue(noopJobs(total)))
        yield* ctx.start
        yield* Deferred.await(drained)
        const m = JobWorker.metrics("long-drain", "bulk")
        while ((yield* Metric.value(m.jobsSucceeded)).count < total + 1) yield* Effect.sleep("100 millis")
        assert.isAtLeast(renewedAt.length, 2, "renewals happened")
        assert.isBelow(renewedAt[0]!, total / 2, `the first renewal came after ${renewedAt[0]} of ${total} jobs`)
        assert.strictEqual((yield* Metric.value(m.jobsLeaseLost)).count, 0, "no lease lost")
        assert.strictEqual((yield* Metric.value(m.jobsClaimed)).count, total + 1, "no job claimed twice")
        assert.strictEqual(yield* Ref.get(slowRuns), 1, "the slow job ran once")
      })),
    120_000
  )

  it.scoped("3. completes, once, a handler whose uninterruptible work ends after its timeout", () =>
    Effect.gen(function*() {
      const Slow = Job.make("slow", { payload: Schema.Struct({}), timeout: "1 second", maxAttempts: 3 })
      const runs = yield* Ref.make(0)
      const { events, store } = yield* setup({
        handlers: [
          Slow.handler(() =>
            Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.uninterruptible(Effect.sleep("3 seconds")))
          )
        ]
      })
      const id = yield* enqueue(store, Slow, {})
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("2 seconds")
      const done = yield* awaitJobEvent(events, "JobSucceeded", id)
      assert.strictEqual(done.attempt, 1)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Ref.get(runs), 1, "ran once")
      const others = jobEventsOf(yield* drain(events)).filter((e) => e.id === id && e._tag !== "JobClaimed")
      assert.deepStrictEqual(others, [], "not timed out, retried nor released")
      const s = yield* stats(store)
      assert.deepStrictEqual([s.ready, s.scheduled, s.leased, s.dead], [0, 0, 0, 0])
    }))

  it.scoped("3. completes, once, a handler whose uninterruptible work ends after the shutdown deadline", () =>
    Effect.gen(function*() {
      const Slow = Job.make("slow", { payload: Schema.Struct({}), timeout: Duration.infinity })
      const started = yield* Deferred.make<void>()
      const runs = yield* Ref.make(0)
      const { ctx, events, store } = yield* setup({
        handlers: [Slow.handler(() =>
          Effect.zipRight(
            Effect.zipRight(Ref.update(runs, (n) => n + 1), Deferred.succeed(started, void 0)),
            Effect.uninterruptible(Effect.sleep("20 seconds"))
          )
        )]
      }, { shutdownTimeout: "10 seconds" })
      const id = yield* enqueue(store, Slow, {})
      yield* Deferred.await(started)
      const stopper = yield* Effect.fork(ctx.stop)
      yield* ctx.shutdownRequested
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* ctx.state, "Stopping", "the handler is not cut off inside its uninterruptible work")
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(stopper)
      const log = jobEventsOf(yield* drain(events)).filter((e) => e.id === id)
      assert.deepStrictEqual(log.map((e) => e._tag), ["JobClaimed", "JobSucceeded"])
      assert.strictEqual(yield* Ref.get(runs), 1)
      const s = yield* stats(store)
      assert.deepStrictEqual([s.ready, s.scheduled, s.leased, s.dead], [0, 0, 0, 0])
    }))

  it.scoped("4. publishes one JobDeadLettered, and counts it, for a job buried because its lease expired", () =>
    Effect.gen(function*() {
      const Once = Job.make("once", { payload: Schema.Struct({}), queue: "buried", maxAttempts: 1 })
      const { ctx, events, store } = yield* setup({
        handlers: [Once.handler(() => Effect.void)],
        pollInterval: "1 second",
        lease: "10 seconds",
        autoStart: false
      }, { name: "burying" })
      const id = yield* enqueue(store, Once, {})
      // Another worker took it first, on its last attempt, and died: its lease expires.
      const [taken] = yield* claimJobs(store, {
        queues: ["buried"],
        names: ["once"],
        limit: 1,
        lease: Duration.seconds(1),
        worker: "dead"
      })
      assert.strictEqual(taken?.id, id)
      yield* ctx.start
      yield* TestClock.adjust("20 seconds")
      const dead = yield* awaitJobEvent(events, "JobDeadLettered", id)
      assert.deepStrictEqual([dead.attempt, dead.error], [1, "lease expired"])
      yield* TestClock.adjust("20 seconds")
      const more = jobEventsOf(yield* drain(events)).filter((e) => e.id === id)
      assert.deepStrictEqual(more, [], "one event for one death")
      const [letter] = yield* deadLetters(store)
      assert.deepStrictEqual([letter?.id, letter?.lastError], [id, "lease expired"])
      const counted = yield* Metric.value(JobWorker.metrics("burying", "buried").jobsDeadLettered)
      assert.strictEqual(counted.count, 1)
    }))

  it.scoped("5. ends shutdown within shutdownTimeout plus 5 s when the store hangs, interrupting the hung calls", () =>
    Effect.gen(function*() {
      const reports = yield* Queue.unbounded<Report>()
      const g = gates()
      let control: ReturnType<typeof hanging> | undefined
      const { ctx, store } = yield* setup({ handlers: [gatedHandler(reports, g)], concurrency: 2 }, {
        shutdownTimeout: "3 seconds",
        wrap: (store) => (control = hanging(store)).wrapped
      })
      yield* enqueue(store, Work, { n: 1 })
      yield* enqueue(store, Work, { n: 2 })
      yield* started(reports)
      yield* started(reports)
      // The store stops answering: a silent stall. Job 1 ends (its settle hangs), job 2 does not end by itself.
      control!.hang.settle = true
      control!.hang.renew = true
      control!.hang.claim = true
      control!.hang.reap = true
      yield* g.open(1)
      const stopper = yield* Effect.fork(ctx.stop)
      yield* ctx.shutdownRequested
      yield* TestClock.adjust("3 seconds")
      assert.isNull(stopper.unsafePoll(), "still stopping at the deadline: the cut-off job's release is on its way")
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(stopper)
      assert.strictEqual(yield* ctx.state, "Stopped", "stopped within shutdownTimeout + 5 s")
    }))

  it.scoped("5. gives up a hung claim at its deadline, and runs the jobs enqueued meanwhile within one deadline", () =>
    Effect.gen(function*() {
      const ran = yield* Queue.unbounded<number>()
      let control: ReturnType<typeof hanging> | undefined
      const { ctx, store } = yield* setup({
        handlers: [Work.handler(({ n }) => Queue.offer(ran, n))],
        storeTimeout: "5 seconds",
        pollInterval: "1 second"
      }, { wrap: (store) => (control = hanging(store)).wrapped })
      // Idle; the next claim hangs.
      control!.hang.claim = true
      yield* enqueue(store, Work, { n: 1 })
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Queue.size(ran), 0)
      // The store answers again, but the claim on its way never will.
      control!.hang.claim = false
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(yield* Queue.size(ran), 0, "the hung claim holds the producer until its deadline")
      const during = yield* ctx.readiness
      assert.isTrue(during.ready, "not unready before the deadline")
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(
        (yield* ctx.readiness).unready.map((c) => c.reason),
        ["JobStore.claim failed: no answer within 5s"],
        "unready once the call is past its deadline"
      )
      // Given up at its deadline; claimed again after the back-off (100 ms).
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* Queue.take(ran), 1)
      assert.isTrue((yield* ctx.readiness).ready, "ready again once a claim succeeded")
    }))

  it.scoped("6. stops a job before its lease could lapse while renewals hang, and frees its slot once it lapsed", () =>
    Effect.gen(function*() {
      const reports = yield* Queue.unbounded<Report>()
      const g = gates()
      const finalized = yield* Deferred.make<number>()
      const handler = Work.handler(({ n }) =>
        Effect.gen(function*() {
          yield* Queue.offer(reports, { _tag: "started", n, info: yield* Job.Current })
          yield* Deferred.await(g.gate(n))
        }).pipe(
          Effect.onInterrupt(() => Effect.flatMap(Clock.currentTimeMillis, (at) => Deferred.succeed(finalized, at)))
        )
      )
      let control: ReturnType<typeof hanging> | undefined
      const { events, store, worker } = yield* setup({ handlers: [handler], lease: "3 seconds", concurrency: 1 }, {
        wrap: (store) => (control = hanging(store)).wrapped
      })
      const id = yield* enqueue(store, Work, { n: 1 })
      yield* started(reports)
      // Every renewal from now on hangs: none fails, none answers.
      control!.hang.renew = true
      yield* TestClock.adjust("2699 millis")
      assert.isFalse(yield* Deferred.isDone(finalized), "still running while the lease surely holds")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Deferred.await(finalized), 2700, "stopped a tenth of the lease before it could lapse")
      yield* awaitJobEvent(events, "JobLeaseLost", id)
      assert.isAtLeast(control!.calls.renew, 2, "renewals were made, and hung")
      assert.deepStrictEqual([yield* worker.inFlight, yield* worker.leased], [1, 0], "its slot is kept until it lapsed")
      // Once it lapsed, the job may be claimed again (here by this worker, whose slot is free again).
      yield* TestClock.adjust("299 millis")
      assert.strictEqual(yield* Queue.size(reports), 0)
      yield* TestClock.adjust("1 millis")
      const again = yield* started(reports)
      assert.deepStrictEqual([again.info.id, again.info.attempt], [id, 2])
    }))

  it.scoped("8. retries after the delay by the store's clock, not the worker's, and enqueues delays by it too", () =>
    Effect.gen(function*() {
      const Later = Job.make("later", {
        payload: Schema.Struct({}),
        queue: "main",
        maxAttempts: 5,
        retry: Schedule.spaced("10 minutes")
      })
      const attempts = yield* Queue.unbounded<number>()
      // The store's clock is an hour ahead of the worker's (and the producer's).
      const store = yield* Effect.flatMap(
        Effect.clock,
        (clock) => Effect.withClock(MemoryJobStore.make(), skewed(clock, 60 * 60 * 1000))
      )
      const { events } = yield* setup({
        handlers: [
          Later.handler(() =>
            Effect.flatMap(
              Job.Current,
              ({ attempt }) => Effect.zipRight(Queue.offer(attempts, attempt), Effect.fail("no"))
            )
          )
        ],
        pollInterval: "1 minute"
      }, { store })
      const id = yield* enqueue(store, Later, {})
      assert.strictEqual(yield* Queue.take(attempts), 1)
      const retried = yield* awaitJobEvent(events, "JobRetried", id)
      assert.strictEqual(retried.delayMs, 600_000)
      yield* TestClock.adjust("9 minutes")
      assert.strictEqual(yield* Queue.size(attempts), 0, "not before ten minutes by the store's clock")
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Queue.take(attempts), 2)
      // A delay given to enqueue counts from the store's now too.
      const delayed = yield* enqueue(store, Later, {}, { delay: "10 minutes", key: "delayed" })
      yield* TestClock.adjust("9 minutes")
      const s = yield* stats(store)
      assert.isAtLeast(s.scheduled, 1, "still scheduled after nine minutes")
      assert.isFalse(jobEventsOf(yield* drain(events)).some((e) => e.id === delayed && e._tag === "JobClaimed"))
    }))

  it.scoped("9. stays unready while renewals fail, whatever claims succeed, and is ready once they succeed again", () =>
    Effect.gen(function*() {
      const reports = yield* Queue.unbounded<Report>()
      const g = gates()
      let control: ReturnType<typeof flaky> | undefined
      const { ctx, store } = yield* setup(
        { handlers: [gatedHandler(reports, g)], lease: "30 seconds", concurrency: 3 },
        {
          wrap: (store) => (control = flaky(store)).wrapped
        }
      )
      yield* enqueue(store, Work, { n: 1 })
      yield* started(reports)
      control!.failing.renew = true
      yield* TestClock.adjust("10 seconds")
      assert.isFalse((yield* ctx.readiness).ready)
      // A claim succeeds meanwhile (a new job runs): still unready, for the renewals.
      yield* enqueue(store, Work, { n: 2 })
      assert.strictEqual((yield* started(reports)).n, 2)
      const still = yield* ctx.readiness
      assert.deepStrictEqual(still.unready.map((c) => c.reason), ["JobStore.renew failed: connection refused"])
      control!.failing.renew = false
      yield* TestClock.adjust("1 second")
      assert.isTrue((yield* ctx.readiness).ready)
      yield* g.open(1)
      yield* g.open(2)
    }))

  it.scoped("10. clamps a retry delay too large for a store to the longest a store holds", () =>
    Effect.gen(function*() {
      const Forever = Job.make("forever", {
        payload: Schema.Struct({}),
        queue: "main",
        retry: Schedule.spaced(Duration.days(365 * 1000))
      })
      const { events, store } = yield* setup({ handlers: [Forever.handler(() => Effect.fail("no"))] })
      const id = yield* enqueue(store, Forever, {})
      const retried = yield* awaitJobEvent(events, "JobRetried", id)
      assert.strictEqual(retried.delayMs, 100 * 365 * 24 * 60 * 60 * 1000, "100 years")
      const s = yield* stats(store)
      assert.deepStrictEqual([s.scheduled, s.leased, s.dead], [1, 0, 0])
    }))

  it.scoped("11. warns once per job name no handler serves in its queues, and once per queue no handler serves", () =>
    Effect.gen(function*() {
      const warnings = capturedWarnings()
      const Other = Job.make("other", { payload: Schema.Struct({}), queue: "main" })
      const { store } = yield* setup({
        handlers: [Work.handler(() => Effect.void)],
        queues: ["main", "nobody"],
        lease: "4 seconds"
      }).pipe(Effect.provide(warnings.layer))
      assert.isTrue(
        warnings.lines.some((line) => line.message.includes("\"nobody\"")),
        "a warning for the queue no handler serves"
      )
      yield* enqueue(store, Other, {})
      yield* enqueue(store, Other, {})
      yield* TestClock.adjust("10 seconds")
      const about = warnings.lines.filter((line) => line.message.includes("other (2 ready)"))
      assert.strictEqual(about.length, 1, "one warning for the name, however many reaps")
      assert.strictEqual((yield* stats(store)).readyByName["other"], 2)
    }))

  it.scoped("12. dead-letters a job whose handler returns a Promise, naming the job and what it returned", () =>
    Effect.gen(function*() {
      const Promised = Job.make("promised", { payload: Schema.Struct({}), queue: "main" })
      const { events, store } = yield* setup({
        handlers: [Promised.handler((() => Promise.resolve()) as unknown as () => Effect.Effect<void>)]
      })
      const id = yield* enqueue(store, Promised, {})
      const dead = yield* awaitJobEvent(events, "JobDeadLettered", id)
      assert.strictEqual(
        dead.error,
        "the handler of job promised returned a Promise (wrap it with Effect.promise or Effect.tryPromise) instead of an Effect"
      )
    }))
})
