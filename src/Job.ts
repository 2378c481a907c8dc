/**
 * Job types: a name, a payload `Schema`, and the defaults a worker runs them with (queue, attempts, timeout,
 * retry schedule). A job type enqueues payloads into the `JobStore` and makes the handler a `JobWorker` runs.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Cron from "effect/Cron"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import { notJson } from "./internal/json.js"
import { type AttemptError, type Enqueued, JobStore, type JobStoreError, type KeyMode } from "./JobStore.js"

/**
 * Options of {@link make}. Only `payload` is required.
 *
 * @example
 * ```ts
 * import { Schedule, Schema } from "effect"
 * import type { Job } from "effect-worker-context"
 *
 * const options: Job.JobOptions<{ readonly to: string }, { readonly to: string }> = {
 *   payload: Schema.Struct({ to: Schema.String }),
 *   queue: "emails",
 *   maxAttempts: 5,
 *   timeout: "30 seconds",
 *   retry: Schedule.exponential("1 second")
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface JobOptions<A, I, S = void, SI = S> {
  /** The payload's schema; its encoded side is what the store keeps, so it must be JSON. */
  readonly payload: Schema.Schema<A, I, never>
  /**
   * The schema of what the handler returns. With it, a handler returns a value of this type, and a store that keeps
   * succeeded jobs (`succeededRetention`) keeps it, encoded (so its encoded side must be JSON), as the job's
   * `result`. Without it, a handler returns nothing. A value that does not encode (or is not JSON) is not kept:
   * the job still succeeded, and the worker logs a warning.
   *
   * @since 0.6.0
   */
  readonly success?: Schema.Schema<S, SI, never> | undefined
  /** The queue the job goes to; default: the job's name. */
  readonly queue?: string | undefined
  /** The most attempts a job of this type gets, whatever the schedule says. Default 25. */
  readonly maxAttempts?: number | undefined
  /** How long one attempt may run; the handler is then interrupted. Default `"5 minutes"`; `Duration.infinity` allowed. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The delay before each retry: the schedule is stepped once per failed attempt (its input is the failure), and
   * a job whose schedule ends goes to the dead letters. Default: exponential from 1 s, factor 2, jittered, capped
   * at one hour.
   */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
}

/**
 * Options of one `enqueue`.
 *
 * @example
 * ```ts
 * import type { Job } from "effect-worker-context"
 *
 * const later: Job.EnqueueOptions = { delay: "10 minutes", priority: -1, key: "welcome:ada@example.com" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface EnqueueOptions {
  /** Not before this long from now, by the store's clock (the database's for PostgreSQL), whatever this process's clock says. */
  readonly delay?: Duration.DurationInput | undefined
  /** Not before this instant, as this process's clock tells it (wins over `delay`). */
  readonly runAt?: Date | undefined
  /** Lower runs first; an integer, default 0. */
  readonly priority?: number | undefined
  /**
   * At most one live job (ready, scheduled or leased) holds a key: what this enqueue does when one does is `keyMode`.
   */
  readonly key?: string | undefined
  /**
   * When a live job holds `key`: `"replace"` (default) updates a waiting holder (payload, `runAt`, priority,
   * attempts) and keeps one more job to run after a running one; `"afterRunning"` leaves a waiting holder as it is
   * and keeps one more job to run after a running one; `"skip"` does nothing. See `KeyMode` in `JobStore`.
   */
  readonly keyMode?: KeyMode | undefined
  /** This job's attempts, instead of the type's. */
  readonly maxAttempts?: number | undefined
}

/**
 * Options of one `enqueueMany`: those of `enqueue`, for every job of the batch, but `key`, which is a function of
 * each payload.
 *
 * @example
 * ```ts
 * import type { Job } from "effect-worker-context"
 *
 * const options: Job.EnqueueManyOptions<{ readonly to: string }> = {
 *   delay: "1 minute",
 *   key: ({ to }) => `welcome:${to}`
 * }
 * ```
 *
 * @since 0.5.0
 * @category models
 */
export interface EnqueueManyOptions<A> extends Omit<EnqueueOptions, "key"> {
  /**
   * Deduplication, per job: the key of the payload at `index` (`undefined` for none). Within the batch, as across
   * batches, the first job with a key is stored and the later ones get its id.
   */
  readonly key?: ((payload: A, index: number) => string | undefined) | undefined
}

/**
 * Options of a job type's `schedule`.
 *
 * @example
 * ```ts
 * import type { Job } from "effect-worker-context"
 *
 * const options: Job.ScheduleOptions = { name: "nightly-report", timezone: "Europe/Berlin", backfill: "6 hours" }
 * ```
 *
 * @since 0.5.0
 * @category models
 */
export interface ScheduleOptions {
  /**
   * What the store keeps the schedule's slots under: two schedules of one name share their slots. Default: the
   * job's name and the cron, such as `report 0 2 * * *` (so a changed cron is a new schedule).
   */
  readonly name?: string | undefined
  /** The IANA time zone the cron's fields are read in, such as `"Europe/Berlin"`. Default `"UTC"`. */
  readonly timezone?: string | undefined
  /**
   * How far back a worker that starts enqueues the slots that no worker enqueued (none ran), oldest first, when
   * the store knows the schedule. Default: none, so only the slots from the worker's start on.
   */
  readonly backfill?: Duration.DurationInput | undefined
  /** The jobs' priority (lower runs first); an integer, default 0. */
  readonly priority?: number | undefined
  /** The jobs' attempts, instead of the type's. */
  readonly maxAttempts?: number | undefined
}

/**
 * A recurring schedule of a job type, made by its `schedule`: give it to a worker (`JobWorker.layer({ handlers,
 * schedules })`), and every slot of the cron is enqueued once, whichever of the workers sharing the store offers
 * it first.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Job } from "effect-worker-context"
 *
 * const Report = Job.make("report", { payload: Schema.Struct({ kind: Schema.String }) })
 * const nightly: Job.JobSchedule = Report.schedule("0 2 * * *", { kind: "daily" }, { timezone: "Europe/Berlin" })
 * ```
 *
 * @since 0.5.0
 * @category models
 */
export interface JobSchedule {
  readonly name: string
  readonly job: Any
  /** The cron, in its time zone (`UTC` unless one was given). */
  readonly cron: Cron.Cron
  /** The payload, encoded: what every slot's job carries. */
  readonly payload: unknown
  readonly backfill: Duration.Duration
  readonly priority: number
  readonly maxAttempts: number
}

/**
 * A job type, made by {@link make}.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 *
 * const SendEmail = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
 *
 * const signUp = SendEmail.enqueue({ to: "ada@example.com" }) // Effect<string, ParseError | JobStoreError, JobStore>
 * const newsletter = SendEmail.enqueueMany([{ to: "ada@example.com" }, { to: "alan@example.com" }])
 * const handler = SendEmail.handler(({ to }) => Effect.log(`sending to ${to}`))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Job<A, I = A, S = void> {
  readonly name: string
  readonly queue: string
  readonly payload: Schema.Schema<A, I, never>
  /** The schema of the handler's result, when the job type has one (see {@link JobOptions.success}). */
  readonly success: Schema.Schema<S, any, never> | undefined
  readonly maxAttempts: number
  readonly timeout: Duration.Duration
  readonly retry: Schedule.Schedule<unknown, unknown>
  /**
   * Encodes `payload` with the schema and stores the job; returns its id (or, with a `key` that a live job holds,
   * the id its `keyMode` gives: the holder's, or the job kept to run after it). A payload the schema rejects fails
   * with its `ParseError` and stores nothing.
   */
  readonly enqueue: (
    payload: A,
    options?: EnqueueOptions | undefined
  ) => Effect.Effect<string, ParseResult.ParseError | JobStoreError, JobStore>
  /**
   * {@link enqueue}, answering what the job came to: `{ id, duplicate, outcome }`, where `duplicate` says a live job
   * held its key and `outcome` what the `keyMode` did (`"inserted"`, `"skipped"`, `"replaced"`, `"queuedAfter"`).
   */
  readonly insert: (
    payload: A,
    options?: EnqueueOptions | undefined
  ) => Effect.Effect<Enqueued, ParseResult.ParseError | JobStoreError, JobStore>
  /**
   * Encodes every payload with the schema, then stores them all in one store call (one statement on PostgreSQL);
   * returns their ids, in order. A payload the schema rejects fails with its `ParseError` (its path starts with the
   * payload's index) and stores nothing; an empty batch stores nothing and calls no store.
   */
  readonly enqueueMany: (
    payloads: Iterable<A>,
    options?: EnqueueManyOptions<A> | undefined
  ) => Effect.Effect<ReadonlyArray<string>, ParseResult.ParseError | JobStoreError, JobStore>
  /**
   * A recurring schedule of this job type: at every slot of `cron` (a cron string of 5 fields, or 6 with seconds
   * first, or a `Cron.Cron`), one job with `payload`. A cron, a time zone or an option that makes no sense, and a
   * payload that the schema or JSON rejects, throw an `IllegalArgumentException`: a bug in the program.
   */
  readonly schedule: (cron: string | Cron.Cron, payload: A, options?: ScheduleOptions | undefined) => JobSchedule
  /** What a worker runs for this type: `run` gets the decoded payload; `Job.Current` tells it which job it is. */
  readonly handler: <E, R>(run: (payload: A) => Effect.Effect<S, E, R>) => JobHandler<R>
}

/**
 * Any job type, whatever its payload.
 *
 * @example
 * ```ts
 * import type { Job } from "effect-worker-context"
 *
 * const names = (jobs: ReadonlyArray<Job.Any>) => jobs.map((job) => job.name)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Any = Job<any, any, any>

/**
 * What a worker runs for one job type: made by a job type's `handler`. `R` is what the handler needs.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 *
 * const Ping = Job.make("ping", { payload: Schema.Struct({}) })
 * const handlers: ReadonlyArray<Job.JobHandler<never>> = [Ping.handler(() => Effect.log("pong"))]
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface JobHandler<out R> {
  readonly job: Any
  /** Runs the handler on a decoded payload; what it returns is kept when the job type has a `success` schema. */
  readonly run: (payload: unknown) => Effect.Effect<unknown, unknown, R>
}

/**
 * What a handler can learn about the job it runs: `yield* Job.Current`.
 *
 * @example
 * ```ts
 * import type { Job } from "effect-worker-context"
 *
 * const idempotencyKey = (job: Job.JobInfo) => `${job.name}:${job.id}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface JobInfo {
  /** The job's id: the same on every attempt, so the idempotency key for what the handler does. */
  readonly id: string
  readonly name: string
  readonly queue: string
  /** This attempt, 1-based. */
  readonly attempt: number
  readonly maxAttempts: number
  readonly priority: number
  readonly key: string | undefined
  readonly enqueuedAt: Date
  readonly runAt: Date
  /** The previous failed attempt's error, if an attempt failed (and reported it) since the job was enqueued. */
  readonly lastError: string | undefined
  /**
   * Every earlier failed attempt's error with its attempt number and time (the store's), oldest first: the newest
   * ten. An attempt that never reported (its worker crashed, its lease lapsed) has none; a snoozed one is no
   * failure.
   */
  readonly errors: ReadonlyArray<AttemptError>
  /** The slot of the recurring schedule that enqueued the job (`job.schedule`), or `undefined` for other jobs. */
  readonly scheduledFor: Date | undefined
}

/**
 * The job a handler is running. Provided by the worker to every handler.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 *
 * const Charge = Job.make("charge", { payload: Schema.Struct({ cents: Schema.Number }) })
 * const handler = Charge.handler(({ cents }) =>
 *   Effect.gen(function*() {
 *     const job = yield* Job.Current
 *     yield* Effect.log(`charging ${cents} with idempotency key ${job.id} (attempt ${job.attempt})`)
 *   })
 * )
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export class Current extends Context.Tag("effect-worker-context/Job/Current")<Current, JobInfo>() {}

/**
 * Fail a handler with it to skip the remaining attempts: the job goes to the dead letters at once, with `message`
 * as its last error.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 *
 * const Refund = Job.make("refund", { payload: Schema.Struct({ order: Schema.String }) })
 * const handler = Refund.handler(({ order }) =>
 *   order === "" ? Effect.fail(new Job.Fatal({ message: "no order id: retrying will not help" })) : Effect.void
 * )
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class Fatal extends Data.TaggedError("JobFatal")<{ readonly message: string }> {}

/**
 * What {@link snooze} fails a handler with: the job waits `delay` and runs again, and this attempt does not count.
 * Let it through the handler's error channel (do not catch it).
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { Job } from "effect-worker-context"
 *
 * const later = new Job.Snooze({ delay: Duration.minutes(5) })
 * ```
 *
 * @since 0.5.0
 * @category errors
 */
export class Snooze extends Data.TaggedError("JobSnooze")<{ readonly delay: Duration.Duration }> {}

/**
 * Ends the handler and puts the job back to wait `delay` (by the store's clock, as a retry's delay is), without
 * counting the attempt, as Oban's `{:snooze, n}` and River's `JobSnooze` do: for a job that finds it is too early
 * (a rate limit, a resource not ready yet). The worker publishes `JobSnoozed` and counts it in
 * `effect_worker_jobs_snoozed`. A job may snooze any number of times; its `maxAttempts` counts only the attempts
 * that failed. A delay that is not a finite duration of zero or more is a defect; one longer than a store holds
 * (about 68 years) is shortened to that.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 *
 * const Sync = Job.make("sync-account", { payload: Schema.Struct({ account: Schema.String }) })
 * const rateLimited = (account: string) => Effect.succeed(account.startsWith("busy"))
 *
 * const handler = Sync.handler(({ account }) =>
 *   Effect.gen(function*() {
 *     if (yield* rateLimited(account)) return yield* Job.snooze("30 seconds")
 *     yield* Effect.log(`syncing ${account}`)
 *   })
 * )
 * ```
 *
 * @since 0.5.0
 * @category retries
 */
export const snooze = (delay: Duration.DurationInput): Effect.Effect<never, Snooze> => {
  const duration = durationOf(delay)
  if (duration === undefined || !Duration.isFinite(duration)) {
    return Effect.die(illegal("Job.snooze delay", delay, "a finite duration of zero or more"))
  }
  return Effect.fail(new Snooze({ delay: duration }))
}

/**
 * The retry schedule of a job type that gives none: exponential from 1 second, factor 2, jittered (each delay
 * times a random 0.8 to 1.2), capped at one hour.
 *
 * @example
 * ```ts
 * import { Job } from "effect-worker-context"
 *
 * const schedule = Job.defaultRetry
 * ```
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("1 second", 2).pipe(
  Schedule.jittered,
  Schedule.union(Schedule.spaced("1 hour"))
)

const illegal = (what: string, value: unknown, expected: string): Cause.IllegalArgumentException =>
  new Cause.IllegalArgumentException(`${what}: invalid ${JSON.stringify(String(value))}: expected ${expected}`)

const isAttempts = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 1

/** A duration of zero or more given as a number, a string, a tuple or a `Duration`; `undefined` when invalid. */
const durationOf = (input: unknown): Duration.Duration | undefined => {
  if (typeof input === "number" && (Number.isNaN(input) || input < 0)) return undefined
  if (typeof input === "string" && input.trimStart().startsWith("-")) return undefined
  if (Array.isArray(input) && input.some((part) => typeof part !== "number" || Number.isNaN(part) || part < 0)) {
    return undefined
  }
  return Option.getOrUndefined(Duration.decodeUnknown(input))
}

/**
 * Makes a job type. Options that make no sense (an empty name or queue, `maxAttempts` that is not a positive
 * integer, a negative or unparsable `timeout`, a `retry` that is not a `Schedule`, a `payload` that is not a
 * `Schema`) throw an `IllegalArgumentException` naming the option: a bug in the program.
 *
 * @example
 * ```ts
 * import { Effect, Schedule, Schema } from "effect"
 * import { Job } from "effect-worker-context"
 *
 * const SendEmail = Job.make("send-email", {
 *   payload: Schema.Struct({ to: Schema.String }),
 *   queue: "emails",
 *   maxAttempts: 5,
 *   timeout: "30 seconds",
 *   retry: Schedule.exponential("1 second")
 * })
 * const SendEmailHandler = SendEmail.handler(({ to }) => Effect.log(`sent to ${to}`))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <A, I, S = void, SI = S>(name: string, options: JobOptions<A, I, S, SI>): Job<A, I, S> => {
  if (typeof name !== "string" || name.trim().length === 0) throw illegal("Job.make name", name, "a non-empty string")
  if (!Schema.isSchema(options?.payload)) throw illegal(`Job ${name}: payload`, options?.payload, "a Schema")
  const queue = options.queue ?? name
  if (typeof queue !== "string" || queue.trim().length === 0) {
    throw illegal(`Job ${name}: queue`, queue, "a non-empty string")
  }
  const maxAttempts = options.maxAttempts ?? 25
  if (!isAttempts(maxAttempts)) throw illegal(`Job ${name}: maxAttempts`, maxAttempts, "an integer of 1 or more")
  const timeout = durationOf(options.timeout ?? "5 minutes")
  if (timeout === undefined) {
    throw illegal(`Job ${name}: timeout`, options.timeout, "a duration of zero or more, such as \"30 seconds\"")
  }
  const retry = options.retry ?? defaultRetry
  if (!Schedule.isSchedule(retry)) throw illegal(`Job ${name}: retry`, retry, "a Schedule")
  const success = options.success
  if (success !== undefined && !Schema.isSchema(success)) {
    throw illegal(`Job ${name}: success`, success, "a Schema or undefined")
  }
  const payload = options.payload
  const encode = Schema.encode(payload)
  const encodeArray = Schema.encode(Schema.Array(payload))
  const encodeOne = Schema.encodeEither(payload)
  /**
   * The batch encoded payload by payload, synchronously, without the array's own machinery (which collects and
   * sorts its results); on the first payload that does not encode (or encodes only asynchronously), the array's
   * encode, for its error, which names the payload's index.
   */
  const encodeMany = (values: ReadonlyArray<A>): Effect.Effect<ReadonlyArray<unknown>, ParseResult.ParseError> => {
    const encoded = new Array<unknown>(values.length)
    for (let i = 0; i < values.length; i++) {
      const one = encodeOne(values[i]!)
      if (Either.isLeft(one)) return encodeArray(values)
      encoded[i] = one.right
    }
    return Effect.succeed(encoded)
  }
  const insert = (value: A, enqueueOptions: EnqueueOptions | undefined) =>
    Effect.gen(function*() {
      const { delay, key, keyMode, priority, runAt } = yield* enqueueSettings(`${name}.enqueue`, enqueueOptions)
      const jobAttempts = enqueueOptions?.maxAttempts ?? maxAttempts
      const encoded = yield* encode(value)
      const store = yield* JobStore
      const [result] = yield* store.insert([{
        name,
        queue,
        payload: encoded,
        runAt,
        delay,
        priority,
        key,
        keyMode,
        maxAttempts: jobAttempts
      }])
      return result!
    })
  const job: Job<A, I, S> = {
    name,
    queue,
    payload,
    success,
    maxAttempts,
    timeout,
    retry,
    enqueue: (value, enqueueOptions) => Effect.map(insert(value, enqueueOptions), (result) => result.id),
    insert: (value, enqueueOptions) => insert(value, enqueueOptions),
    enqueueMany: (values, manyOptions) =>
      Effect.gen(function*() {
        const keyOf = manyOptions?.key
        if (keyOf !== undefined && typeof keyOf !== "function") {
          return yield* Effect.die(illegal(`${name}.enqueueMany key`, keyOf, "a function of the payload"))
        }
        const { delay, keyMode, priority, runAt } = yield* enqueueSettings(`${name}.enqueueMany`, {
          ...manyOptions,
          key: undefined
        })
        const jobAttempts = manyOptions?.maxAttempts ?? maxAttempts
        const all = Array.from(values)
        const keys = all.map((value, i) => keyOf?.(value, i))
        const badKey = keys.findIndex((key) => key !== undefined && (typeof key !== "string" || key.length === 0))
        if (badKey >= 0) {
          return yield* Effect.die(
            illegal(`${name}.enqueueMany key of payload ${badKey}`, keys[badKey], "a non-empty string or undefined")
          )
        }
        const encoded = yield* encodeMany(all)
        if (encoded.length === 0) return []
        const store = yield* JobStore
        return yield* store.enqueue(encoded.map((value, i) => ({
          name,
          queue,
          payload: value,
          runAt,
          delay,
          priority,
          key: keys[i],
          keyMode,
          maxAttempts: jobAttempts
        })))
      }),
    schedule: (cron, value, scheduleOptions) => makeSchedule(job, cron, value, scheduleOptions),
    handler: (run) => ({ job, run: run as (payload: unknown) => Effect.Effect<unknown, unknown, never> })
  }
  return job
}

/** A cron read in `timezone` (UTC by default; a `Cron.Cron` keeps a zone of its own unless one is given). */
const cronOf = (what: string, cron: string | Cron.Cron, timezone: string | undefined): Cron.Cron => {
  if (timezone !== undefined && (typeof timezone !== "string" || Option.isNone(DateTime.zoneMakeNamed(timezone)))) {
    throw illegal(`${what} timezone`, timezone, "an IANA time zone name, such as \"Europe/Berlin\"")
  }
  if (Cron.isCron(cron)) {
    if (timezone === undefined && Option.isSome(cron.tz)) return cron
    return Cron.make({
      seconds: cron.seconds,
      minutes: cron.minutes,
      hours: cron.hours,
      days: cron.days,
      months: cron.months,
      weekdays: cron.weekdays,
      // Not in `Cron`'s declared type, but every `Cron` has it: whether days and weekdays must both match.
      and: (cron as unknown as { readonly and?: boolean }).and,
      tz: DateTime.zoneUnsafeMakeNamed(timezone ?? "UTC")
    })
  }
  if (typeof cron !== "string") throw illegal(`${what} cron`, cron, "a cron string or a Cron.Cron")
  const parsed = Cron.parse(cron, timezone ?? "UTC")
  if (Either.isLeft(parsed)) {
    throw illegal(`${what} cron`, cron, `5 fields, or 6 with seconds first (${parsed.left.message})`)
  }
  return parsed.right
}

/** A cron's fields as text, `*` for a field that takes every value: the default name of a `Cron.Cron`'s schedule. */
const cronText = (cron: Cron.Cron): string =>
  [cron.seconds, cron.minutes, cron.hours, cron.days, cron.months, cron.weekdays]
    .map((field) => field.size === 0 ? "*" : Array.from(field).sort((a, b) => a - b).join(","))
    .join(" ")

const makeSchedule = <A, I, S>(
  job: Job<A, I, S>,
  cron: string | Cron.Cron,
  value: A,
  options: ScheduleOptions | undefined
): JobSchedule => {
  const what = `${job.name}.schedule`
  const parsed = cronOf(what, cron, options?.timezone)
  // A cron that matches no date (the 30th of February) is found out here, not at its first slot.
  try {
    Cron.next(parsed, new Date(0))
  } catch {
    throw illegal(`${what} cron`, typeof cron === "string" ? cron : cronText(cron), "a cron that matches a date")
  }
  const name = options?.name ?? `${job.name} ${typeof cron === "string" ? cron.trim() : cronText(cron)}`
  if (typeof name !== "string" || name.length === 0) throw illegal(`${what} name`, name, "a non-empty string")
  const backfill = durationOf(options?.backfill ?? 0)
  if (backfill === undefined || !Duration.isFinite(backfill)) {
    throw illegal(`${what} backfill`, options?.backfill, "a finite duration of zero or more")
  }
  const priority = options?.priority ?? 0
  if (!Number.isSafeInteger(priority)) throw illegal(`${what} priority`, priority, "an integer")
  const maxAttempts = options?.maxAttempts ?? job.maxAttempts
  if (!isAttempts(maxAttempts)) throw illegal(`${what} maxAttempts`, maxAttempts, "an integer of 1 or more")
  const encoded = Schema.encodeEither(job.payload)(value)
  if (Either.isLeft(encoded)) {
    throw illegal(`${what} payload`, value, `a payload of the schema (${encoded.left.message})`)
  }
  const problem = notJson(encoded.right)
  if (problem !== undefined) {
    throw illegal(`${what} payload`, value, `a payload whose encoded side is JSON (${problem})`)
  }
  return { name, job, cron: parsed, payload: encoded.right, backfill, priority, maxAttempts }
}

/** The settings of an enqueue, checked; `what` names the call in the defect's message. */
const enqueueSettings = (what: string, options: EnqueueOptions | undefined) => {
  const priority = options?.priority ?? 0
  if (!Number.isSafeInteger(priority)) return Effect.die(illegal(`${what} priority`, priority, "an integer"))
  const key = options?.key
  if (key !== undefined && (typeof key !== "string" || key.length === 0)) {
    return Effect.die(illegal(`${what} key`, key, "a non-empty string"))
  }
  if (options?.maxAttempts !== undefined && !isAttempts(options.maxAttempts)) {
    return Effect.die(illegal(`${what} maxAttempts`, options.maxAttempts, "an integer of 1 or more"))
  }
  const keyMode = options?.keyMode
  if (keyMode !== undefined && keyMode !== "skip" && keyMode !== "replace" && keyMode !== "afterRunning") {
    return Effect.die(illegal(`${what} keyMode`, keyMode, "\"skip\", \"replace\" or \"afterRunning\""))
  }
  const runAt = options?.runAt
  if (runAt !== undefined && !(runAt instanceof Date && Number.isFinite(runAt.getTime()))) {
    return Effect.die(illegal(`${what} runAt`, runAt, "a valid Date"))
  }
  const delay = options?.delay === undefined ? Duration.zero : durationOf(options.delay)
  if (delay === undefined || !Duration.isFinite(delay)) {
    return Effect.die(illegal(`${what} delay`, options?.delay, "a finite duration of zero or more"))
  }
  return Effect.succeed({ priority, key, keyMode, runAt, delay })
}

/**
 * The delay before the retry that follows failed attempt number `attempt` (1-based), stepping `schedule` once per
 * failed attempt from its start, without sleeping; `None` when the schedule ends before it. Each step gets
 * `error` as its input, and is taken at the instant the previous delay ended (as if every attempt took no time),
 * so time-limited schedules (`Schedule.upTo`, `Schedule.during`) end once their delays add up past the limit.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Job } from "effect-worker-context"
 *
 * const third = Job.retryDelay(Schedule.exponential("1 second"), 3, "boom") // Some(4 seconds)
 * ```
 *
 * @since 0.2.0
 * @category retries
 */
export const retryDelay = (
  schedule: Schedule.Schedule<unknown, unknown>,
  attempt: number,
  error: unknown
): Effect.Effect<Option.Option<Duration.Duration>> =>
  Effect.gen(function*() {
    let now = yield* Clock.currentTimeMillis
    let state = schedule.initial
    let delay = 0
    for (let step = 1; step <= attempt; step++) {
      const [next, _, decision] = yield* schedule.step(now, error, state)
      if (ScheduleDecision.isDone(decision)) return Option.none()
      state = next
      delay = Math.max(0, ScheduleIntervals.start(decision.intervals) - now)
      now += delay
    }
    return Option.some(Duration.millis(delay))
  })
