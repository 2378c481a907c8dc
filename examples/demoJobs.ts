/**
 * The demo's job types and their handlers (`examples/demo.ts` runs them; `test/demoJobs.test.ts` tests them with
 * `JobTest`):
 *
 * - `resize-image` `{ width, height }` (queue `images`) and `send-email` `{ to }` (queue `emails`), three attempts
 *   each, retried after 500 ms, then 1 s.
 * - Every handler takes a while (`DEMO_JOB_MS` milliseconds, or a random 200 to 1500) and fails one attempt in five
 *   with `SimulatedFailure`, both from `Random` (so `TestRandom` decides them in a test).
 * - An email to an address ending in `.invalid` fails with `Job.Fatal`: it goes to the dead letters at once.
 */
import { Config, Data, Duration, Effect, Option, Random, Schedule, Schema } from "effect"
import { Job } from "../src/index.js"

/** One attempt in five fails. */
export const FAILURE_RATE = 0.2

/** `DEMO_JOB_MS`: how long every job takes, in milliseconds; unset, a random 200 to 1500. */
export const jobMillis = Config.option(
  Config.integer("DEMO_JOB_MS").pipe(
    Config.validate({ message: "expected a number of milliseconds, zero or more", validation: (ms) => ms >= 0 })
  )
)

/** Short retries, so that a few jobs reach the dead letters while you watch: 500 ms, then 1 s; three attempts. */
const retry = { retry: Schedule.exponential("500 millis"), maxAttempts: 3 }

export const ResizeImage = Job.make("resize-image", {
  payload: Schema.Struct({ width: Schema.Int.pipe(Schema.positive()), height: Schema.Int.pipe(Schema.positive()) })
    .annotations({ identifier: "ResizeImage" }),
  queue: "images",
  ...retry
})

export const SendEmail = Job.make("send-email", {
  payload: Schema.Struct({
    to: Schema.String.pipe(Schema.pattern(/^[^@\s]+@[^@\s]+$/, { identifier: "EmailAddress" }))
  }).annotations({ identifier: "SendEmail" }),
  queue: "emails",
  ...retry
})

/** The job types `POST /jobs` takes, by name. */
export const jobTypes: Readonly<Record<string, Job.Any>> = {
  [ResizeImage.name]: ResizeImage,
  [SendEmail.name]: SendEmail
}

export class SimulatedFailure extends Data.TaggedError("SimulatedFailure") {
  override get message(): string {
    return "simulated failure"
  }
}

/** What every handler does: takes a while (`DEMO_JOB_MS`, or 200 to 1500 ms), and fails one attempt in five. */
export const simulateWork = Effect.gen(function*() {
  const ms = Option.getOrUndefined(yield* jobMillis) ?? (yield* Random.nextIntBetween(200, 1501))
  yield* Effect.sleep(Duration.millis(ms))
  if ((yield* Random.next) < FAILURE_RATE) return yield* new SimulatedFailure()
})

export const ResizeImageHandler = ResizeImage.handler(() => simulateWork)

export const SendEmailHandler = SendEmail.handler(({ to }) =>
  Effect.gen(function*() {
    if (to.endsWith(".invalid")) {
      return yield* new Job.Fatal({ message: `${to}: the .invalid domain never delivers, retrying will not help` })
    }
    yield* simulateWork
  })
)

export const handlers = [ResizeImageHandler, SendEmailHandler]
