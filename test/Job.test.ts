import { assert, describe, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Option, ParseResult, Schedule, Schema } from "effect"
import { Job, JobStore, MemoryJobStore } from "../src/index.js"

const Email = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })

const delays = (schedule: Schedule.Schedule<unknown, unknown>, attempts: number) =>
  Effect.forEach(
    Array.from({ length: attempts }, (_, i) => i + 1),
    (attempt) => Effect.map(Job.retryDelay(schedule, attempt, "boom"), Option.map(Duration.toMillis))
  )

const defectMessage = (exit: Exit.Exit<unknown, unknown>): string => {
  assert.isTrue(Exit.isFailure(exit))
  const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
  assert.isTrue(Cause.isIllegalArgumentException(defect), "an IllegalArgumentException")
  return (defect as Error).message
}

describe("Job.make", () => {
  it("fills in the defaults: queue from the name, 25 attempts, 5 minutes, the default retry", () => {
    const Ping = Job.make("ping", { payload: Schema.Struct({}) })
    assert.strictEqual(Ping.queue, "ping")
    assert.strictEqual(Ping.maxAttempts, 25)
    assert.isTrue(Duration.equals(Ping.timeout, Duration.minutes(5)))
    assert.strictEqual(Ping.retry, Job.defaultRetry)
    assert.strictEqual(Email.queue, "emails")
  })

  it("throws an IllegalArgumentException naming the option that makes no sense", () => {
    const payload = Schema.Struct({})
    const cases: ReadonlyArray<[() => unknown, string]> = [
      [() => Job.make("", { payload }), "name"],
      [() => Job.make("x", { payload: "nope" as unknown as typeof payload }), "payload"],
      [() => Job.make("x", { payload, queue: " " }), "queue"],
      [() => Job.make("x", { payload, maxAttempts: 0 }), "maxAttempts"],
      [() => Job.make("x", { payload, maxAttempts: 1.5 }), "maxAttempts"],
      [() => Job.make("x", { payload, timeout: -1 }), "timeout"],
      [() => Job.make("x", { payload, timeout: "soon" as Duration.DurationInput }), "timeout"],
      [() => Job.make("x", { payload, retry: 3 as unknown as Schedule.Schedule<unknown> }), "retry"]
    ]
    for (const [make, option] of cases) {
      let thrown: unknown
      try {
        make()
      } catch (error) {
        thrown = error
      }
      assert.isTrue(Cause.isIllegalArgumentException(thrown), `${option}: an IllegalArgumentException`)
      assert.include((thrown as Error).message, option)
    }
  })

  it("allows Duration.infinity as a timeout", () => {
    const Long = Job.make("long", { payload: Schema.Struct({}), timeout: Duration.infinity })
    assert.isFalse(Duration.isFinite(Long.timeout))
  })
})

describe("enqueue", () => {
  it.effect("encodes the payload and stores the job; a payload the schema rejects stores nothing", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const id = yield* Email.enqueue({ to: "ada@example.com" })
      assert.isString(id)
      const bad = yield* Effect.exit(Email.enqueue({ to: 42 } as unknown as { to: string }))
      assert.isTrue(Exit.isFailure(bad))
      if (Exit.isFailure(bad)) {
        const failure = Option.getOrUndefined(Cause.failureOption(bad.cause))
        assert.strictEqual((failure as { _tag: string })._tag, "ParseError")
      }
      assert.strictEqual((yield* store.stats).ready, 1)
    }).pipe(Effect.provide(MemoryJobStore.layer())))

  it.effect("hands the store a delay to count from its own now, and a runAt as the caller's instant", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const seen: Array<JobStore.NewJob> = []
      const recording: JobStore.JobStore.Service = {
        ...store,
        insert: (jobs) => Effect.suspend(() => (seen.push(...jobs), store.insert(jobs)))
      }
      const enqueue = (options?: Job.EnqueueOptions) =>
        Effect.provideService(Email.enqueue({ to: "x@example.com" }, options), JobStore.JobStore, recording)
      yield* enqueue({ delay: "10 minutes" })
      yield* enqueue({ runAt: new Date(60_000) })
      yield* enqueue()
      assert.deepStrictEqual(seen.map((job) => [job.runAt, job.delay && Duration.toMillis(job.delay)]), [
        [undefined, 600_000],
        [new Date(60_000), 0],
        [undefined, 0]
      ])
    }).pipe(Effect.provide(MemoryJobStore.layer())))

  it.effect("options that make no sense are a defect naming the option", () =>
    Effect.gen(function*() {
      const enqueue = (options: Job.EnqueueOptions) => Effect.exit(Email.enqueue({ to: "x@example.com" }, options))
      assert.include(defectMessage(yield* enqueue({ delay: -5 })), "delay")
      assert.include(defectMessage(yield* enqueue({ delay: Duration.infinity })), "delay")
      assert.include(defectMessage(yield* enqueue({ priority: 0.5 })), "priority")
      assert.include(defectMessage(yield* enqueue({ maxAttempts: 0 })), "maxAttempts")
      assert.include(defectMessage(yield* enqueue({ runAt: new Date(Number.NaN) })), "runAt")
      assert.include(defectMessage(yield* enqueue({ key: "" })), "key")
      assert.strictEqual((yield* (yield* JobStore.JobStore).stats).ready, 0, "nothing was stored")
    }).pipe(Effect.provide(MemoryJobStore.layer())))
})

describe("enqueueMany", () => {
  /** The store of the test, recording what each of its `enqueue` calls was given. */
  const recording = Effect.map(JobStore.JobStore, (store) => {
    const calls: Array<ReadonlyArray<JobStore.NewJob>> = []
    const service: JobStore.JobStore.Service = {
      ...store,
      enqueue: (jobs) => Effect.suspend(() => (calls.push(jobs), store.enqueue(jobs)))
    }
    return { calls, provide: Effect.provideService(JobStore.JobStore, service) }
  })

  it.effect("encodes every payload and stores the batch in one store call, ids in order, the options on each job", () =>
    Effect.gen(function*() {
      const { calls, provide } = yield* recording
      const Stamped = Job.make("stamped", { payload: Schema.Struct({ at: Schema.DateFromString }) })
      const ids = yield* provide(
        Stamped.enqueueMany([{ at: new Date(0) }, { at: new Date(1000) }], { delay: "1 minute", priority: 3 })
      )
      assert.strictEqual(ids.length, 2)
      assert.strictEqual(new Set(ids).size, 2)
      assert.strictEqual(calls.length, 1)
      assert.deepStrictEqual(
        calls[0]!.map((job) => [job.payload, job.priority, job.delay && Duration.toMillis(job.delay), job.maxAttempts]),
        [[{ at: new Date(0).toISOString() }, 3, 60_000, 25], [{ at: new Date(1000).toISOString() }, 3, 60_000, 25]]
      )
      assert.strictEqual((yield* (yield* JobStore.JobStore).stats).scheduled, 2)
    }).pipe(Effect.provide(MemoryJobStore.layer())))

  it.effect("encodes with a schema whose encoding is asynchronous, and fails at the index of its rejection", () =>
    Effect.gen(function*() {
      const { calls, provide } = yield* recording
      // Encoding waits on a promise: no synchronous encode can do it.
      const Upper = Schema.transformOrFail(Schema.String, Schema.String, {
        decode: (text) => Effect.succeed(text.toLowerCase()),
        encode: (text, _, ast) =>
          Effect.flatMap(
            Effect.promise(() => Promise.resolve(text.toUpperCase())),
            (upper) => upper === "BAD" ? Effect.fail(new ParseResult.Type(ast, text, "bad")) : Effect.succeed(upper)
          )
      })
      const Shout = Job.make("shout", { payload: Schema.Struct({ text: Upper }) })
      yield* provide(Shout.enqueueMany([{ text: "a" }, { text: "b" }]))
      assert.deepStrictEqual(calls[0]!.map((job) => job.payload), [{ text: "A" }, { text: "B" }])
      const error = yield* Effect.flip(provide(Shout.enqueueMany([{ text: "c" }, { text: "bad" }])))
      assert.include(error.message, "[1]")
      assert.strictEqual(calls.length, 1)
    }).pipe(Effect.provide(MemoryJobStore.layer())))

  it.effect("a payload the schema rejects fails with a ParseError at its index, and nothing is stored", () =>
    Effect.gen(function*() {
      const { calls, provide } = yield* recording
      const payloads = [{ to: "a@example.com" }, { to: "b@example.com" }, { to: 42 } as unknown as { to: string }]
      const error = yield* Effect.flip(provide(Email.enqueueMany(payloads)))
      assert.strictEqual(error._tag, "ParseError")
      assert.include(error.message, "[2]")
      assert.strictEqual(calls.length, 0)
      assert.strictEqual((yield* (yield* JobStore.JobStore).stats).ready, 0)
    }).pipe(Effect.provide(MemoryJobStore.layer())))

  it.effect("keys each job by its payload: repeats in the batch and live jobs give the first job's id", () =>
    Effect.gen(function*() {
      const live = yield* Email.enqueue({ to: "c@example.com" }, { key: "c@example.com" })
      const ids = yield* Email.enqueueMany(
        [{ to: "a@example.com" }, { to: "b@example.com" }, { to: "a@example.com" }, { to: "c@example.com" }],
        { key: ({ to }) => to }
      )
      assert.strictEqual(ids[2], ids[0])
      assert.notStrictEqual(ids[1], ids[0])
      assert.strictEqual(ids[3], live)
      assert.strictEqual((yield* (yield* JobStore.JobStore).stats).ready, 3)
    }).pipe(Effect.provide(MemoryJobStore.layer())))

  it.effect("an empty batch returns no ids and calls no store", () =>
    Effect.gen(function*() {
      const { calls, provide } = yield* recording
      assert.deepStrictEqual(yield* provide(Email.enqueueMany([])), [])
      assert.strictEqual(calls.length, 0)
    }).pipe(Effect.provide(MemoryJobStore.layer())))

  it.effect("options that make no sense are a defect naming the option, and nothing is stored", () =>
    Effect.gen(function*() {
      const payloads = [{ to: "a@example.com" }, { to: "b@example.com" }]
      const enqueueMany = (options: Job.EnqueueManyOptions<{ readonly to: string }>) =>
        Effect.exit(Email.enqueueMany(payloads, options))
      assert.include(defectMessage(yield* enqueueMany({ delay: -5 })), "send-email.enqueueMany delay")
      assert.include(defectMessage(yield* enqueueMany({ priority: 0.5 })), "priority")
      assert.include(
        defectMessage(yield* enqueueMany({ key: ({ to }) => to === "b@example.com" ? "" : to })),
        "payload 1"
      )
      assert.include(defectMessage(yield* enqueueMany({ key: "k" as unknown as () => string })), "key")
      assert.strictEqual((yield* (yield* JobStore.JobStore).stats).ready, 0)
    }).pipe(Effect.provide(MemoryJobStore.layer())))
})

describe("Job.retryDelay", () => {
  it.effect("steps the schedule once per failed attempt, without sleeping", () =>
    Effect.gen(function*() {
      const got = yield* delays(Schedule.exponential("1 second"), 4)
      assert.deepStrictEqual(got, [1000, 2000, 4000, 8000].map(Option.some))
    }))

  it.effect("is None once the schedule ends", () =>
    Effect.gen(function*() {
      const got = yield* delays(Schedule.spaced("1 second").pipe(Schedule.compose(Schedule.recurs(2))), 3)
      assert.deepStrictEqual(got, [Option.some(1000), Option.some(1000), Option.none()])
    }))

  it.effect("ends a time-limited schedule once its delays add up past the limit", () =>
    Effect.gen(function*() {
      const got = yield* delays(Schedule.spaced("1 minute").pipe(Schedule.upTo("150 seconds")), 4)
      assert.deepStrictEqual(got.map(Option.isSome), [true, true, true, false])
    }))

  it.effect("the default retry is jittered exponential from 1 s, capped at one hour", () =>
    Effect.gen(function*() {
      const got = yield* delays(Job.defaultRetry, 20)
      const [first, second] = got.map((delay) => Option.getOrThrow(delay))
      assert.isTrue(first! >= 800 && first! <= 1200, `first delay ${first}`)
      assert.isTrue(second! >= 1600 && second! <= 2400, `second delay ${second}`)
      assert.isTrue(got.every((delay) => Option.getOrThrow(delay) <= 3_600_000), "capped at one hour")
    }))
})
