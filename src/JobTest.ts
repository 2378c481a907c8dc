/**
 * A test kit for the jobs of your application, in the manner of Oban's `Oban.Testing` and River's `rivertest`: a
 * store that remembers what was enqueued, `drain` to run the jobs a test enqueued as a worker would, `runJob` to
 * run one handler with no store, and `assertEnqueued` / `refuteEnqueued` to check what your code enqueued.
 *
 * - {@link layer} provides a `JobStore` (a `MemoryJobStore` that records every job stored into it) and the
 *   {@link JobTest} service that `enqueued`, `assertEnqueued`, `refuteEnqueued` and `drain` read. Build it once
 *   per test (`Effect.provide(JobTest.layer())` inside `it.effect`), so each test starts empty.
 * - {@link drain} runs a real `JobWorker` (payload decoding, `Job.Current`, timeouts, retries, snoozes and
 *   dead-lettering are the worker's own) on that store until no job it can run is ready, and returns each attempt
 *   and its outcome.
 * - {@link runJob} runs one attempt of a handler, with `Job.Current` filled with test values, and decides its
 *   outcome as the worker would, without a store.
 *
 * Everything judges time by Effect's `Clock`, so it runs under `TestClock`; it imports only `effect`.
 *
 * @since 0.6.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import type * as ParseResult from "effect/ParseResult"
import * as internal from "./internal/jobTest.js"
import type * as Job from "./Job.js"
import type { JobStore } from "./JobStore.js"
import type { MemoryJobStoreOptions } from "./MemoryJobStore.js"

/**
 * What became of one attempt, as a test sees it:
 *
 * - `Completed`: the handler succeeded; the store deleted the job.
 * - `Retried`: the attempt failed (`error` is the text the store keeps) and the job runs again `delay` later, by
 *   the store's clock.
 * - `Dead`: the job went to the dead letters with `error`: its last attempt failed, its retry schedule ended, it
 *   failed with `Job.Fatal`, its payload did not decode, its handler returned no Effect, or its lease expired on its
 *   last attempt (`"lease expired"`).
 * - `Snoozed`: the handler asked to run again `delay` later (`Job.snooze`); the attempt does not count.
 * - `Released`: the worker gave the job back unfinished (`refunded`: its attempt does not count).
 * - `LeaseLost`: the lease no longer held when the outcome reached the store, which discarded it.
 *
 * @example
 * ```ts
 * import * as JobTest from "effect-worker-context/JobTest"
 *
 * const describe = (outcome: JobTest.Outcome) =>
 *   JobTest.Outcome.$match(outcome, {
 *     Completed: () => "done",
 *     Retried: ({ error }) => `again: ${error}`,
 *     Dead: ({ error }) => `dead: ${error}`,
 *     Snoozed: () => "later",
 *     Released: () => "given back",
 *     LeaseLost: () => "lease lost"
 *   })
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export type Outcome = Data.TaggedEnum<{
  Completed: {}
  Retried: { readonly error: string; readonly delay: Duration.Duration }
  Dead: { readonly error: string }
  Snoozed: { readonly delay: Duration.Duration }
  Released: { readonly refunded: boolean }
  LeaseLost: {}
}>

/**
 * The constructors, guards (`$is`) and `$match` of {@link Outcome}: build the outcomes a test expects.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import * as JobTest from "effect-worker-context/JobTest"
 *
 * const expected = JobTest.Outcome.Retried({ error: "smtp timeout", delay: Duration.millis(500) })
 * const isDead = JobTest.Outcome.$is("Dead")
 * ```
 *
 * @since 0.6.0
 * @category constructors
 */
export const Outcome: Data.TaggedEnum.Constructor<Outcome> = internal.Outcome

/**
 * One attempt that {@link drain} ran: the job, the attempt's number (1-based, as the store counted it) and its
 * outcome. `payload` is the payload as stored (encoded), `undefined` for a job the store buried by itself.
 *
 * @example
 * ```ts
 * import type * as JobTest from "effect-worker-context/JobTest"
 *
 * const line = (run: JobTest.Attempt) => `${run.name} ${run.id} #${run.attempt}: ${run.outcome._tag}`
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface Attempt {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly attempt: number
  readonly payload: unknown
  readonly outcome: Outcome
}

/**
 * A job stored through the store of {@link layer}: by `enqueue`, `insert`, `enqueueMany` or a recurring schedule.
 * `payload` is what the store keeps (the schema's encoded side, as JSON); `runAt` is when it was due then, by the
 * store's clock. A job whose `key` made its enqueue a no-op (`keyMode: "skip"`, or any key mode of a slot) is not
 * recorded; a `"replaced"` one is recorded again with its new values, under the holder's id.
 *
 * @example
 * ```ts
 * import type * as JobTest from "effect-worker-context/JobTest"
 *
 * const recipients = (jobs: ReadonlyArray<JobTest.EnqueuedJob>) => jobs.map((job) => (job.payload as any).to)
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface EnqueuedJob {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly payload: unknown
  readonly runAt: Date
  readonly priority: number
  readonly key: string | undefined
  readonly maxAttempts: number
  /** What the enqueue did: a new job, an update of the waiting holder of its key, or a job kept to run after it. */
  readonly outcome: "inserted" | "replaced" | "queuedAfter"
  /** The slot, for a job a recurring schedule enqueued. */
  readonly scheduledFor: Date | undefined
}

/**
 * Which enqueued jobs to look at: every field given must match.
 *
 * - `job` (a job type) or `name`: the job's name; with `job`, a `payload` function gets the payload decoded by
 *   the job's schema (a payload that no longer decodes does not match).
 * - `queue`, `key`, `priority`: equal.
 * - `payload`: a function of the payload, or a part of the encoded payload: every key it has must be there with
 *   the same value (objects are compared key by key, recursively; arrays element by element; the rest by
 *   `Object.is`), as Oban's `args:` matches.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Job } from "effect-worker-context"
 * import type * as JobTest from "effect-worker-context/JobTest"
 *
 * const SendEmail = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
 *
 * const toAda: JobTest.Filter<{ readonly to: string }, { readonly to: string }> = {
 *   job: SendEmail,
 *   payload: { to: "ada@example.com" }
 * }
 * const anyExample: JobTest.Filter = { queue: "emails", payload: (payload) => JSON.stringify(payload).includes("@") }
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface Filter<A = unknown, I = unknown> {
  readonly job?: Job.Job<A, I, any> | undefined
  readonly name?: string | undefined
  readonly queue?: string | undefined
  readonly key?: string | undefined
  readonly priority?: number | undefined
  readonly payload?: ((payload: A) => boolean) | Partial<I> | undefined
}

/**
 * Options of {@link drain}. Only `handlers` is required.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 * import type * as JobTest from "effect-worker-context/JobTest"
 *
 * const Ping = Job.make("ping", { payload: Schema.Struct({}) })
 *
 * const options: JobTest.DrainOptions<never> = {
 *   handlers: [Ping.handler(() => Effect.void)],
 *   withScheduled: "1 hour",
 *   limit: 100
 * }
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface DrainOptions<R> {
  /** The handlers to run jobs with, as `JobWorker.layer` takes them: jobs of other names stay in the store. */
  readonly handlers: ReadonlyArray<Job.JobHandler<R>>
  /** The queues to run jobs from. Default: the handlers' queues. */
  readonly queues?: ReadonlyArray<string> | undefined
  /**
   * How many jobs run at once. Default `1`: one after the other, in the store's order (priority, then `runAt`,
   * then enqueue order), so the attempts come back in a stable order.
   */
  readonly concurrency?: number | undefined
  /**
   * Whether to run jobs that are not due yet (delayed enqueues, retries, snoozes) by moving the `TestClock` to
   * when each is due, as Oban's `with_scheduled` does. Default `false`: only the jobs ready now, and those made
   * ready while the drain runs (jobs the handlers enqueue). `true`: every scheduled job, however far away; a
   * duration: the jobs due within it from the drain's start.
   */
  readonly withScheduled?: boolean | Duration.DurationInput | undefined
  /**
   * The most attempts the drain starts; once it has, it returns, leaving the rest in the store. Default: no limit
   * (a job that enqueues itself for ever then never lets the drain return).
   */
  readonly limit?: number | undefined
}

/**
 * Options of {@link runJob}.
 *
 * @example
 * ```ts
 * import type * as JobTest from "effect-worker-context/JobTest"
 *
 * const lastAttempt: JobTest.RunJobOptions = { info: { attempt: 3, maxAttempts: 3, lastError: "smtp timeout" } }
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface RunJobOptions {
  /**
   * What the handler sees as `Job.Current`, over the defaults: `id` `"1"`, the job type's name, queue and
   * `maxAttempts`, attempt 1, priority 0, no key, `enqueuedAt` and `runAt` now (by the `Clock`), no earlier errors.
   * The attempt and `maxAttempts` also decide between `Retried` and `Dead`.
   */
  readonly info?: Partial<Job.JobInfo> | undefined
}

/**
 * What {@link runJob} found: the outcome the worker would have sent the store, the handler's exit (the
 * `ParseError` when the payload does not decode; an interruption when it timed out), and the `Job.Current` it
 * ran with.
 *
 * @example
 * ```ts
 * import { Exit } from "effect"
 * import type * as JobTest from "effect-worker-context/JobTest"
 *
 * const succeeded = (result: JobTest.RunResult) => Exit.isSuccess(result.exit) && result.outcome._tag === "Completed"
 * ```
 *
 * @since 0.6.0
 * @category models
 */
export interface RunResult {
  readonly outcome: Outcome
  readonly exit: Exit.Exit<unknown, unknown>
  readonly info: Job.JobInfo
}

/**
 * The test kit's service: the recording store of {@link layer}. Use the module's functions (`enqueued`,
 * `assertEnqueued`, `drain`, ...) rather than the service itself.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobTest } from "effect-worker-context/JobTest"
 *
 * const count = Effect.flatMap(JobTest, (kit) => Effect.map(kit.enqueued, (jobs) => jobs.length))
 * ```
 *
 * @since 0.6.0
 * @category tags
 */
export class JobTest extends Context.Tag("effect-worker-context/JobTest")<JobTest, JobTest.Service>() {}

/**
 * @since 0.6.0
 */
// A namespace merged with the tag class, as JobStore does, so the shape reads `JobTest.Service`.
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace JobTest {
  /**
   * What the service holds.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import type { JobTest } from "effect-worker-context/JobTest"
   *
   * const ready = (kit: JobTest.Service) => Effect.map(kit.store.stats, (stats) => stats.ready)
   * ```
   *
   * @since 0.6.0
   * @category models
   */
  export interface Service {
    /** The store the layer provides as `JobStore`. */
    readonly store: JobStore.Service
    /** Every job stored through it so far, in order (see {@link EnqueuedJob}). */
    readonly enqueued: Effect.Effect<ReadonlyArray<EnqueuedJob>>
  }
}

/**
 * A test's job store: a new, empty `MemoryJobStore` (built with `options`) that records every job stored into it,
 * provided as `JobStore` and with the {@link JobTest} service. Build it per test; it judges time by the `Clock` of
 * the fiber that builds it (the `TestClock` inside `it.effect`).
 *
 * @example
 * ```ts
 * import { it } from "@effect/vitest"
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 * import * as JobTest from "effect-worker-context/JobTest"
 *
 * const SendEmail = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
 *
 * it.effect("enqueues a welcome email", () =>
 *   Effect.gen(function*() {
 *     yield* SendEmail.enqueue({ to: "ada@example.com" })
 *     yield* JobTest.assertEnqueued({ job: SendEmail, payload: { to: "ada@example.com" } })
 *   }).pipe(Effect.provide(JobTest.layer())))
 * ```
 *
 * @since 0.6.0
 * @category layers
 */
export const layer = (options?: MemoryJobStoreOptions | undefined): Layer.Layer<JobTest | JobStore> =>
  internal.layer(JobTest, options)

/**
 * The jobs stored through the store of {@link layer} so far that match `filter` (every one without), in the order
 * they were stored. It is the record of what was enqueued, not of what the store still holds: a job that ran and
 * completed is still listed.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 * import * as JobTest from "effect-worker-context/JobTest"
 *
 * const SendEmail = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
 *
 * const toExample = JobTest.enqueued({ job: SendEmail, payload: ({ to }) => to.endsWith("@example.com") })
 * ```
 *
 * @since 0.6.0
 * @category inspecting
 */
export const enqueued = <A = unknown, I = unknown>(
  filter?: Filter<A, I> | undefined
): Effect.Effect<ReadonlyArray<EnqueuedJob>, never, JobTest> =>
  Effect.flatMap(
    JobTest,
    (kit) => Effect.map(kit.enqueued, (jobs) => jobs.filter((job) => internal.matches(filter, job)))
  )

/**
 * What {@link assertEnqueued} and {@link refuteEnqueued} fail with: its `message` says what was looked for and
 * lists what was enqueued (or what matched, for `refuteEnqueued`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as JobTest from "effect-worker-context/JobTest"
 *
 * const explain = JobTest.assertEnqueued({ name: "send-email" }).pipe(
 *   Effect.catchTag("EnqueueAssertionError", (error) => Effect.log(error.message))
 * )
 * ```
 *
 * @since 0.6.0
 * @category errors
 */
export class EnqueueAssertionError extends Data.TaggedError("EnqueueAssertionError")<{
  readonly assertion: "assertEnqueued" | "refuteEnqueued"
  readonly message: string
  /** Every job enqueued so far. */
  readonly enqueued: ReadonlyArray<EnqueuedJob>
}> {}

/**
 * Succeeds with the enqueued jobs that match `filter` (at least one), or fails with an
 * {@link EnqueueAssertionError} whose message lists every job enqueued so far: Oban's `assert_enqueued`, River's
 * `RequireInserted`. It looks at what was enqueued since the layer was built (see {@link enqueued}), and does not
 * wait.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 * import * as JobTest from "effect-worker-context/JobTest"
 *
 * const SendEmail = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
 *
 * const test = Effect.gen(function*() {
 *   yield* SendEmail.enqueue({ to: "ada@example.com" }, { delay: "1 hour" })
 *   const jobs = yield* JobTest.assertEnqueued({ job: SendEmail, payload: { to: "ada@example.com" } })
 *   return jobs.map((job) => job.runAt) // [1970-01-01T01:00:00.000Z] under the TestClock
 * }).pipe(Effect.provide(JobTest.layer()))
 * ```
 *
 * @since 0.6.0
 * @category assertions
 */
export const assertEnqueued: <A = unknown, I = unknown>(
  filter: Filter<A, I>
) => Effect.Effect<ReadonlyArray<EnqueuedJob>, EnqueueAssertionError, JobTest> = Effect.fn("JobTest.assertEnqueued")(
  function*<A, I>(filter: Filter<A, I>) {
    const all = yield* Effect.flatMap(JobTest, (kit) => kit.enqueued)
    const matched = all.filter((job) => internal.matches(filter, job))
    if (matched.length > 0) return matched
    return yield* new EnqueueAssertionError({
      assertion: "assertEnqueued",
      message: internal.assertionMessage("assertEnqueued", filter, all, matched),
      enqueued: all
    })
  }
)

/**
 * Succeeds when no enqueued job matches `filter`, or fails with an {@link EnqueueAssertionError} that lists those
 * that do: Oban's `refute_enqueued`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as JobTest from "effect-worker-context/JobTest"
 *
 * const noEmails = JobTest.refuteEnqueued({ queue: "emails" }).pipe(Effect.provide(JobTest.layer()))
 * ```
 *
 * @since 0.6.0
 * @category assertions
 */
export const refuteEnqueued: <A = unknown, I = unknown>(
  filter: Filter<A, I>
) => Effect.Effect<void, EnqueueAssertionError, JobTest> = Effect.fn("JobTest.refuteEnqueued")(
  function*<A, I>(filter: Filter<A, I>) {
    const all = yield* Effect.flatMap(JobTest, (kit) => kit.enqueued)
    const matched = all.filter((job) => internal.matches(filter, job))
    if (matched.length === 0) return
    return yield* new EnqueueAssertionError({
      assertion: "refuteEnqueued",
      message: internal.assertionMessage("refuteEnqueued", filter, all, matched),
      enqueued: all
    })
  }
)

/**
 * Runs the jobs of the store of {@link layer} that `handlers` can run, as a worker would, until none is left to run,
 * and returns every attempt with its outcome, in the order the store took the outcomes.
 *
 * - **The real worker.** It runs a `JobWorker` (on a `WorkerContext` of its own, named `JobTest.drain`, that logs
 *   nothing) with these handlers: payloads are decoded by their schema, `Job.Current` is what a worker gives,
 *   timeouts, retries (a retry is scheduled by the store, `delay` after the failure by its clock), snoozes and
 *   dead letters are the worker's. The handlers' requirements (but `Job.Current`) are the drain's.
 * - **When it returns.** Once nothing runs and a claim found no job ready: the jobs that were ready, and those that
 *   became ready while it ran (jobs the handlers enqueued, retries already due), have run, as Oban's
 *   `drain_queue(with_recursion: true)`. Jobs of other names or queues, and of paused queues, stay. The worker is
 *   stopped before it returns.
 * - **The clock.** Without `withScheduled`, the drain never moves the clock: scheduled jobs (delayed, retried
 *   later, snoozed) stay scheduled. With it, whenever nothing is ready, it moves the `TestClock` to when the next
 *   scheduled job of its names and queues is due (within the horizon) and goes on, so `withScheduled: true` runs a
 *   job that keeps failing through all its attempts to the dead letters. A handler that waits for the clock itself
 *   (`Effect.sleep`, or a timeout) waits until something moves it: fork the drain and `TestClock.adjust`.
 * - **Not.** It does not run two drains of one store at once (the second dies), nor recurring schedules.
 *
 * @example
 * ```ts
 * import { assert, it } from "@effect/vitest"
 * import { Effect, Schedule, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 * import * as JobTest from "effect-worker-context/JobTest"
 *
 * const SendEmail = Job.make("send-email", {
 *   payload: Schema.Struct({ to: Schema.String }),
 *   maxAttempts: 2,
 *   retry: Schedule.spaced("1 minute")
 * })
 * const handler = SendEmail.handler(({ to }) =>
 *   to.endsWith(".invalid") ? Effect.fail(new Error("no such domain")) : Effect.void
 * )
 *
 * it.effect("retries a bounced email once, then gives up", () =>
 *   Effect.gen(function*() {
 *     yield* SendEmail.enqueue({ to: "ada@example.invalid" })
 *     const attempts = yield* JobTest.drain({ handlers: [handler], withScheduled: true })
 *     assert.deepStrictEqual(attempts.map((a) => a.outcome._tag), ["Retried", "Dead"])
 *   }).pipe(Effect.provide(JobTest.layer())))
 * ```
 *
 * @since 0.6.0
 * @category running
 */
export const drain = <R>(
  options: DrainOptions<R>
): Effect.Effect<ReadonlyArray<Attempt>, never, JobTest | Exclude<R, Job.Current>> =>
  Effect.withSpan(internal.drain(JobTest, options), "JobTest.drain")

/**
 * Runs one attempt of `handler` on `payload` (the decoded type, as `enqueue` takes it), as the worker would, with
 * no store: the payload is encoded by the job's schema (a `ParseError` fails the call), copied as JSON and decoded
 * anew; the handler runs with `Job.Current` (test values, see {@link RunJobOptions}) under the job type's timeout
 * (on the `Clock`: under `TestClock`, fork it and adjust the clock); and its exit is turned into the outcome the
 * worker would send the store (a retry's delay from the job type's schedule, `Dead` on the last attempt).
 *
 * @example
 * ```ts
 * import { assert, it } from "@effect/vitest"
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 * import * as JobTest from "effect-worker-context/JobTest"
 *
 * const Charge = Job.make("charge", { payload: Schema.Struct({ cents: Schema.Int }) })
 * const handler = Charge.handler(({ cents }) =>
 *   cents <= 0 ? Effect.fail(new Job.Fatal({ message: "nothing to charge" })) : Effect.void
 * )
 *
 * it.effect("refuses to charge nothing", () =>
 *   Effect.gen(function*() {
 *     const { outcome } = yield* JobTest.runJob(handler, { cents: 0 })
 *     assert.deepStrictEqual(outcome, JobTest.Outcome.Dead({ error: "nothing to charge" }))
 *   }))
 * ```
 *
 * @since 0.6.0
 * @category running
 */
export const runJob = <R>(
  handler: Job.JobHandler<R>,
  payload: unknown,
  options?: RunJobOptions | undefined
): Effect.Effect<RunResult, ParseResult.ParseError, Exclude<R, Job.Current>> =>
  Effect.withSpan(internal.runJob(handler, payload, options), "JobTest.runJob")
