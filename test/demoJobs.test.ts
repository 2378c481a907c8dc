/**
 * The demo's jobs (`examples/demoJobs.ts`), tested as a user tests their own jobs: with `JobTest`. The handlers
 * draw their failures from `Random` (fed by `TestRandom`) and their run time from `DEMO_JOB_MS` (given by a
 * `ConfigProvider`), and sleep on the `TestClock`.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Duration, Effect, Fiber, Random, TestClock } from "effect"
import { handlers, ResizeImage, SendEmail, SendEmailHandler } from "../examples/demoJobs.js"
import * as JobTest from "../src/JobTest.js"

/** Every job takes `ms` milliseconds. */
const jobMillis = (ms: number) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DEMO_JOB_MS", `${ms}`]])))

/** `Random.next` answers these, in turn (then again from the first): below 0.2 an attempt fails. */
const draws = (...values: readonly [number, ...Array<number>]) => Effect.withRandom(Random.fixed([...values]))

const outcomes = (attempts: ReadonlyArray<JobTest.Attempt>) => attempts.map((attempt) => attempt.outcome)

describe("the demo's jobs", () => {
  it.effect("dead-letters an email to a .invalid address at once, with the Fatal message", () =>
    Effect.gen(function*() {
      yield* SendEmail.enqueue({ to: "ada@example.invalid" })
      const attempts = yield* JobTest.drain({ handlers, withScheduled: true })
      assert.deepStrictEqual(outcomes(attempts), [
        JobTest.Outcome.Dead({
          error: "ada@example.invalid: the .invalid domain never delivers, retrying will not help"
        })
      ])
      assert.strictEqual(attempts[0]!.attempt, 1)
    }).pipe(Effect.provide(JobTest.layer()), jobMillis(0)))

  it.effect("completes an email to a valid address when the attempt does not fail", () =>
    Effect.gen(function*() {
      yield* SendEmail.enqueue({ to: "ada@example.com" })
      const attempts = yield* JobTest.drain({ handlers })
      assert.deepStrictEqual(outcomes(attempts), [JobTest.Outcome.Completed()])
    }).pipe(Effect.provide(JobTest.layer()), jobMillis(0), draws(0.5)))

  it.effect("retries a failed attempt after 500 ms, then 1 s, and dead-letters the job after the third", () =>
    Effect.gen(function*() {
      yield* ResizeImage.enqueue({ width: 100, height: 80 })
      const attempts = yield* JobTest.drain({ handlers, withScheduled: true })
      assert.deepStrictEqual(outcomes(attempts), [
        JobTest.Outcome.Retried({ error: "simulated failure", delay: Duration.millis(500) }),
        JobTest.Outcome.Retried({ error: "simulated failure", delay: Duration.seconds(1) }),
        JobTest.Outcome.Dead({ error: "simulated failure" })
      ])
      assert.strictEqual(yield* Effect.clockWith((clock) => clock.currentTimeMillis), 1_500)
    }).pipe(Effect.provide(JobTest.layer()), jobMillis(0), draws(0.1, 0.1, 0.1)))

  it.effect("completes a job on its second attempt when only the first fails", () =>
    Effect.gen(function*() {
      yield* SendEmail.enqueue({ to: "ada@example.com" })
      const attempts = yield* JobTest.drain({ handlers, withScheduled: true })
      assert.deepStrictEqual(attempts.map((a) => [a.attempt, a.outcome._tag]), [[1, "Retried"], [2, "Completed"]])
    }).pipe(Effect.provide(JobTest.layer()), jobMillis(0), draws(0.1, 0.9)))

  it.effect("takes DEMO_JOB_MS on the clock before it completes", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      // The demo's handler, run once the test knows it started.
      const observed = SendEmail.handler((payload) =>
        Effect.zipRight(Deferred.succeed(started, undefined), SendEmailHandler.run(payload))
      )
      yield* SendEmail.enqueue({ to: "ada@example.com" })
      const drain = yield* Effect.fork(JobTest.drain({ handlers: [observed] }))
      yield* Deferred.await(started)
      yield* TestClock.adjust("999 millis")
      assert.isNull(drain.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(outcomes(yield* Fiber.join(drain)), [JobTest.Outcome.Completed()])
    }).pipe(Effect.provide(JobTest.layer()), jobMillis(1_000), draws(0.5)))

  it.effect("runs one resize with runJob: a failed attempt is retried 500 ms later", () =>
    Effect.gen(function*() {
      const { outcome } = yield* JobTest.runJob(handlers[0]!, { width: 10, height: 10 })
      assert.deepStrictEqual(
        outcome,
        JobTest.Outcome.Retried({ error: "simulated failure", delay: Duration.millis(500) })
      )
    }).pipe(jobMillis(0), draws(0.1)))

  it.effect("refuses an email payload that is not an address, storing nothing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(SendEmail.enqueue({ to: "not an address" }))
      assert.strictEqual(error._tag, "ParseError")
      yield* JobTest.refuteEnqueued({ job: SendEmail })
    }).pipe(Effect.provide(JobTest.layer())))
})
