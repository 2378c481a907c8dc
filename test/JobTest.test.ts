import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Ref, Schedule, Schema, TestClock } from "effect"
import { Job, JobStore } from "../src/index.js"
import * as JobTest from "../src/JobTest.js"

const SendEmail = Job.make("send-email", {
  payload: Schema.Struct({ to: Schema.String }),
  queue: "emails",
  maxAttempts: 3,
  timeout: "10 seconds",
  retry: Schedule.exponential("1 second")
})

const Stamp = Job.make("stamp", {
  payload: Schema.Struct({ at: Schema.Date }),
  queue: "stamps"
})

const Report = Job.make("report", { payload: Schema.Struct({ n: Schema.Number }), queue: "reports" })

const tags = (attempts: ReadonlyArray<JobTest.Attempt>) =>
  attempts.map(({ attempt, id, name, outcome }) => `${name} ${id}#${attempt} ${outcome._tag}`)

describe("JobTest", () => {
  describe("enqueued and assertEnqueued", () => {
    it.effect("records every job enqueued, with its encoded payload and when it is due", () =>
      Effect.gen(function*() {
        yield* SendEmail.enqueue({ to: "ada@example.com" })
        yield* SendEmail.enqueue({ to: "alan@example.com" }, { delay: "1 minute", priority: 3, key: "alan" })
        yield* Stamp.enqueue({ at: new Date(5) })
        const all = yield* JobTest.enqueued()
        assert.deepStrictEqual(all.map((job) => [job.id, job.name, job.queue, job.payload, job.runAt.getTime()]), [
          ["1", "send-email", "emails", { to: "ada@example.com" }, 0],
          ["2", "send-email", "emails", { to: "alan@example.com" }, 60_000],
          ["3", "stamp", "stamps", { at: "1970-01-01T00:00:00.005Z" }, 0]
        ])
        assert.strictEqual(all[1]!.priority, 3)
        assert.strictEqual(all[1]!.key, "alan")
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("filters by job, queue, key, a part of the payload, or a predicate on the decoded payload", () =>
      Effect.gen(function*() {
        yield* SendEmail.enqueueMany([{ to: "ada@example.com" }, { to: "bob@example.org" }])
        yield* Stamp.enqueue({ at: new Date(1_000) })
        const ids = (jobs: ReadonlyArray<JobTest.EnqueuedJob>) => jobs.map((job) => job.id)
        assert.deepStrictEqual(ids(yield* JobTest.enqueued({ job: SendEmail })), ["1", "2"])
        assert.deepStrictEqual(ids(yield* JobTest.enqueued({ queue: "stamps" })), ["3"])
        assert.deepStrictEqual(ids(yield* JobTest.enqueued({ payload: { to: "bob@example.org" } })), ["2"])
        assert.deepStrictEqual(
          ids(yield* JobTest.enqueued({ job: Stamp, payload: ({ at }) => at.getTime() === 1_000 })),
          ["3"]
        )
        assert.deepStrictEqual(ids(yield* JobTest.enqueued({ job: SendEmail, payload: { to: "nobody" } })), [])
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("does not record an enqueue that a live job's key skipped", () =>
      Effect.gen(function*() {
        yield* SendEmail.enqueue({ to: "ada@example.com" }, { key: "welcome", keyMode: "skip" })
        yield* SendEmail.enqueue({ to: "other@example.com" }, { key: "welcome", keyMode: "skip" })
        const all = yield* JobTest.enqueued()
        assert.deepStrictEqual(all.map((job) => job.payload), [{ to: "ada@example.com" }])
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("assertEnqueued fails with a message that lists what was enqueued", () =>
      Effect.gen(function*() {
        yield* SendEmail.enqueue({ to: "ada@example.com" })
        const matched = yield* JobTest.assertEnqueued({ job: SendEmail })
        assert.strictEqual(matched.length, 1)
        const error = yield* Effect.flip(JobTest.assertEnqueued({ job: SendEmail, payload: { to: "bob@example.com" } }))
        assert.strictEqual(error._tag, "EnqueueAssertionError")
        assert.include(error.message, "job send-email, payload including {\"to\":\"bob@example.com\"}")
        assert.include(error.message, "1 send-email (queue emails) {\"to\":\"ada@example.com\"}")
        assert.strictEqual(error.enqueued.length, 1)
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("assertEnqueued says so when nothing was enqueued", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(JobTest.assertEnqueued({ queue: "emails" }))
        assert.include(error.message, "nothing was enqueued")
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("refuteEnqueued fails with the jobs that match, and succeeds when none does", () =>
      Effect.gen(function*() {
        yield* SendEmail.enqueue({ to: "ada@example.com" })
        yield* JobTest.refuteEnqueued({ job: Stamp })
        const error = yield* Effect.flip(JobTest.refuteEnqueued({ job: SendEmail }))
        assert.strictEqual(error.assertion, "refuteEnqueued")
        assert.include(error.message, "1 send-email")
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("each layer starts empty", () =>
      Effect.gen(function*() {
        yield* SendEmail.enqueue({ to: "ada@example.com" }).pipe(Effect.provide(JobTest.layer()))
        assert.deepStrictEqual(yield* JobTest.enqueued(), [])
      }).pipe(Effect.provide(JobTest.layer())))
  })

  describe("drain", () => {
    it.effect("runs every ready job with its decoded payload and Job.Current, and completes it", () =>
      Effect.gen(function*() {
        const seen = yield* Ref.make<Array<string>>([])
        const handler = Stamp.handler(({ at }) =>
          Effect.flatMap(
            Job.Current,
            (job) =>
              Ref.update(
                seen,
                (all) => [...all, `${job.id} attempt ${job.attempt}: ${at instanceof Date} ${at.getTime()}`]
              )
          )
        )
        yield* Stamp.enqueueMany([{ at: new Date(1) }, { at: new Date(2) }])
        const attempts = yield* JobTest.drain({ handlers: [handler] })
        assert.deepStrictEqual(tags(attempts), ["stamp 1#1 Completed", "stamp 2#1 Completed"])
        assert.deepStrictEqual(yield* Ref.get(seen), ["1 attempt 1: true 1", "2 attempt 1: true 2"])
        const stats = yield* Effect.flatMap(JobStore.JobStore, (store) => store.stats)
        assert.strictEqual(stats.ready + stats.scheduled + stats.leased + stats.dead, 0)
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("leaves a retry scheduled without withScheduled, and does not move the clock", () =>
      Effect.gen(function*() {
        const handler = SendEmail.handler(() => Effect.fail(new Error("smtp down")))
        yield* SendEmail.enqueue({ to: "ada@example.com" })
        const attempts = yield* JobTest.drain({ handlers: [handler] })
        assert.deepStrictEqual(attempts.map((a) => a.outcome), [
          JobTest.Outcome.Retried({ error: "smtp down", delay: Duration.seconds(1) })
        ])
        assert.strictEqual(yield* Effect.clockWith((clock) => clock.currentTimeMillis), 0)
        const stats = yield* Effect.flatMap(JobStore.JobStore, (store) => store.stats)
        assert.strictEqual(stats.scheduled, 1)
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("with withScheduled, moves the TestClock through every retry to the dead letters", () =>
      Effect.gen(function*() {
        const handler = SendEmail.handler(() => Effect.fail(new Error("smtp down")))
        yield* SendEmail.enqueue({ to: "ada@example.com" })
        const attempts = yield* JobTest.drain({ handlers: [handler], withScheduled: true })
        assert.deepStrictEqual(tags(attempts), [
          "send-email 1#1 Retried",
          "send-email 1#2 Retried",
          "send-email 1#3 Dead"
        ])
        assert.deepStrictEqual(attempts[2]!.outcome, JobTest.Outcome.Dead({ error: "smtp down" }))
        // 1 s, then 2 s.
        assert.strictEqual(yield* Effect.clockWith((clock) => clock.currentTimeMillis), 3_000)
        const dead = yield* Effect.flatMap(JobStore.JobStore, (store) => store.deadLetters())
        assert.deepStrictEqual(dead.map((job) => [job.id, job.lastError]), [["1", "smtp down"]])
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("with a withScheduled horizon, runs only the jobs due within it", () =>
      Effect.gen(function*() {
        const handler = Report.handler(() => Effect.void)
        yield* Report.enqueue({ n: 1 }, { delay: "30 seconds" })
        yield* Report.enqueue({ n: 2 }, { delay: "2 minutes" })
        const attempts = yield* JobTest.drain({ handlers: [handler], withScheduled: "1 minute" })
        assert.deepStrictEqual(tags(attempts), ["report 1#1 Completed"])
        assert.strictEqual(yield* Effect.clockWith((clock) => clock.currentTimeMillis), 30_000)
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("runs the jobs its handlers enqueue, and reports a Fatal failure as dead at once", () =>
      Effect.gen(function*() {
        const handlers = [
          Report.handler(({ n }) =>
            Effect.gen(function*() {
              if (n >= 3) return yield* new Job.Fatal({ message: "3" })
              yield* Report.enqueue({ n: n + 1 })
            })
          )
        ]
        yield* Report.enqueue({ n: 1 })
        const attempts = yield* JobTest.drain({ handlers })
        assert.deepStrictEqual(tags(attempts), ["report 1#1 Completed", "report 2#1 Completed", "report 3#1 Dead"])
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("runs the job kept after its key's running holder, with the last update, once the holder ended", () =>
      Effect.gen(function*() {
        // While report 1 runs, two updates under its key: one job is kept to run after it, with the later payload;
        // a third, a minute away, stays scheduled until withScheduled moves the clock to it.
        const handlers = [
          Report.handler(({ n }) =>
            n === 1
              ? Effect.zipRight(
                Report.enqueue({ n: 2 }, { key: "k", keyMode: "afterRunning" }),
                Report.enqueue({ n: 3 }, { key: "k", keyMode: "afterRunning" })
              )
              : n === 3
              ? Report.enqueue({ n: 4 }, { key: "k", keyMode: "afterRunning", delay: "1 minute" })
              : Effect.void
          )
        ]
        yield* Report.enqueue({ n: 1 }, { key: "k" })
        const runs = (attempts: ReadonlyArray<JobTest.Attempt>) =>
          attempts.map((attempt) => [(attempt.payload as { n: number }).n, attempt.outcome._tag])
        assert.deepStrictEqual(runs(yield* JobTest.drain({ handlers })), [[1, "Completed"], [3, "Completed"]])
        assert.deepStrictEqual(
          (yield* JobTest.enqueued()).map((job) => [job.payload, job.outcome]),
          [[{ n: 1 }, "inserted"], [{ n: 2 }, "queuedAfter"], [{ n: 3 }, "queuedAfter"], [{ n: 4 }, "queuedAfter"]]
        )
        assert.deepStrictEqual(runs(yield* JobTest.drain({ handlers, withScheduled: true })), [[4, "Completed"]])
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("leaves jobs of other job types, and stops after limit attempts", () =>
      Effect.gen(function*() {
        yield* Stamp.enqueue({ at: new Date(0) })
        yield* Report.enqueueMany([{ n: 1 }, { n: 2 }, { n: 3 }])
        const attempts = yield* JobTest.drain({ handlers: [Report.handler(() => Effect.void)], limit: 2 })
        assert.deepStrictEqual(tags(attempts), ["report 2#1 Completed", "report 3#1 Completed"])
        const stats = yield* Effect.flatMap(JobStore.JobStore, (store) => store.stats)
        assert.deepStrictEqual(stats.readyByName, { stamp: 1, report: 1 })
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("reports a snooze and, with withScheduled, runs the job again once its delay has passed", () =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const handler = Report.handler(() =>
          Effect.flatMap(Ref.getAndUpdate(runs, (n) => n + 1), (n) => n === 0 ? Job.snooze("5 minutes") : Effect.void)
        )
        yield* Report.enqueue({ n: 1 })
        const attempts = yield* JobTest.drain({ handlers: [handler], withScheduled: true })
        assert.deepStrictEqual(attempts.map((a) => [a.attempt, a.outcome]), [
          [1, JobTest.Outcome.Snoozed({ delay: Duration.minutes(5) })],
          [1, JobTest.Outcome.Completed()]
        ])
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("times out a handler as the worker does, once the test moves the clock", () =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const handler = SendEmail.handler(() => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
        yield* SendEmail.enqueue({ to: "ada@example.com" })
        const fiber = yield* Effect.fork(JobTest.drain({ handlers: [handler] }))
        yield* Deferred.await(started)
        assert.isNull(fiber.unsafePoll())
        yield* TestClock.adjust("10 seconds")
        const attempts = yield* Fiber.join(fiber)
        assert.deepStrictEqual(attempts.map((a) => a.outcome), [
          JobTest.Outcome.Retried({ error: "timed out after 10s", delay: Duration.seconds(1) })
        ])
      }).pipe(Effect.provide(JobTest.layer())))

    it.effect("refuses a second drain of the same store while one runs", () =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        const handler = Report.handler(() =>
          Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate))
        )
        yield* Report.enqueue({ n: 1 })
        const first = yield* Effect.fork(JobTest.drain({ handlers: [handler] }))
        yield* Deferred.await(started)
        const second = yield* Effect.exit(JobTest.drain({ handlers: [handler] }))
        assert.isTrue(Exit.isFailure(second))
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(tags(yield* Fiber.join(first)), ["report 1#1 Completed"])
      }).pipe(Effect.provide(JobTest.layer())))
  })

  describe("runJob", () => {
    it.effect("runs the handler with test values in Job.Current, overridable", () =>
      Effect.gen(function*() {
        const seen = yield* Ref.make<Job.JobInfo | undefined>(undefined)
        const handler = SendEmail.handler(() => Effect.flatMap(Job.Current, (job) => Ref.set(seen, job)))
        const result = yield* JobTest.runJob(handler, { to: "ada@example.com" }, { info: { id: "42", attempt: 2 } })
        assert.deepStrictEqual(result.outcome, JobTest.Outcome.Completed())
        assert.isTrue(Exit.isSuccess(result.exit))
        const info = (yield* Ref.get(seen))!
        assert.deepStrictEqual([info.id, info.name, info.queue, info.attempt, info.maxAttempts], [
          "42",
          "send-email",
          "emails",
          2,
          3
        ])
      }))

    it.effect("decides retries and death from the attempt and the job type's schedule", () =>
      Effect.gen(function*() {
        const handler = SendEmail.handler(() => Effect.fail("boom"))
        const second = yield* JobTest.runJob(handler, { to: "a@b" }, { info: { attempt: 2 } })
        assert.deepStrictEqual(second.outcome, JobTest.Outcome.Retried({ error: "boom", delay: Duration.seconds(2) }))
        const last = yield* JobTest.runJob(handler, { to: "a@b" }, { info: { attempt: 3 } })
        assert.deepStrictEqual(last.outcome, JobTest.Outcome.Dead({ error: "boom" }))
      }))

    it.effect("decodes the payload as the worker does, and fails on one the schema cannot encode", () =>
      Effect.gen(function*() {
        const handler = Stamp.handler(({ at }) => at instanceof Date ? Effect.void : Effect.die("not a Date"))
        const result = yield* JobTest.runJob(handler, { at: new Date(7) })
        assert.deepStrictEqual(result.outcome, JobTest.Outcome.Completed())
        const error = yield* Effect.flip(JobTest.runJob(handler, { at: "yesterday" }))
        assert.strictEqual(error._tag, "ParseError")
      }))

    it.effect("reports a handler that returns a Promise as dead", () =>
      Effect.gen(function*() {
        const handler = Report.handler(() => Promise.resolve() as unknown as Effect.Effect<void>)
        const result = yield* JobTest.runJob(handler, { n: 1 })
        assert.deepStrictEqual(
          result.outcome,
          JobTest.Outcome.Dead({
            error: "the handler of job report returned a Promise (wrap it with Effect.promise or Effect.tryPromise) " +
              "instead of an Effect"
          })
        )
      }))

    it.effect("interrupts a handler at its timeout and retries it", () =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const handler = SendEmail.handler(() => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
        const fiber = yield* Effect.fork(JobTest.runJob(handler, { to: "a@b" }))
        yield* Deferred.await(started)
        yield* TestClock.adjust("10 seconds")
        const result = yield* Fiber.join(fiber)
        assert.deepStrictEqual(
          result.outcome,
          JobTest.Outcome.Retried({ error: "timed out after 10s", delay: Duration.seconds(1) })
        )
        assert.isTrue(Exit.isInterrupted(result.exit))
      }))

    it.effect("reports a snooze", () =>
      Effect.gen(function*() {
        const result = yield* JobTest.runJob(Report.handler(() => Job.snooze("30 seconds")), { n: 1 })
        assert.deepStrictEqual(result.outcome, JobTest.Outcome.Snoozed({ delay: Duration.seconds(30) }))
      }))
  })
})
