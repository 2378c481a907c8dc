/**
 * The options of a job worker, resolved and checked once: defaults filled in, durations decoded. An option that
 * makes no sense is a defect naming it (`JobWorker: invalid lease "0": expected ...`).
 */
import * as Cause from "effect/Cause"
import * as Cron from "effect/Cron"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Job from "../../Job.js"
import type { Options } from "../../JobWorker.js"

export interface Resolved {
  readonly handlers: ReadonlyArray<Job.JobHandler<any>>
  readonly concurrency: number
  readonly prefetch: number
  readonly lease: Duration.Duration
  readonly pollInterval: Duration.Duration
  readonly reapInterval: Duration.Duration
  readonly storeTimeout: Duration.Duration
  readonly autoStart: boolean
  readonly queues: ReadonlyArray<string>
  readonly workerId: string | undefined
  readonly schedules: ReadonlyArray<Job.JobSchedule>
}

export class InvalidOption {
  constructor(readonly option: string, readonly value: unknown, readonly expected: string) {}
  get defect(): Cause.IllegalArgumentException {
    return new Cause.IllegalArgumentException(
      `JobWorker: invalid ${this.option} ${JSON.stringify(String(this.value))}: expected ${this.expected}`
    )
  }
}

const isNegative = (input: unknown): boolean =>
  (typeof input === "number" && (Number.isNaN(input) || input < 0)) ||
  (typeof input === "bigint" && input < BigInt(0)) ||
  (typeof input === "string" && input.trimStart().startsWith("-")) ||
  (Array.isArray(input) && input.some(isNegative))

/** A positive, finite duration, or the reason it is not one. */
const positiveDuration = (option: string, input: unknown): Duration.Duration | InvalidOption => {
  const decoded = Duration.decodeUnknown(input)
  if (
    Option.isNone(decoded) || isNegative(input) || !Duration.isFinite(decoded.value) ||
    Duration.lessThanOrEqualTo(decoded.value, Duration.zero)
  ) return new InvalidOption(option, input, "a positive, finite duration, such as \"30 seconds\"")
  return decoded.value
}

const isHandler = (u: unknown): u is Job.JobHandler<unknown> =>
  typeof u === "object" && u !== null && typeof (u as Job.JobHandler<unknown>).run === "function" &&
  typeof (u as Job.JobHandler<unknown>).job?.name === "string" &&
  Schema.isSchema((u as Job.JobHandler<unknown>).job.payload)

const isSchedule = (u: unknown): u is Job.JobSchedule =>
  typeof u === "object" && u !== null && isName((u as Job.JobSchedule).name) &&
  Cron.isCron((u as Job.JobSchedule).cron) && typeof (u as Job.JobSchedule).job?.name === "string"

const isName = (u: unknown): u is string => typeof u === "string" && u.trim().length > 0

export const resolve = <R>(options: Options<R>): Resolved | InvalidOption => {
  const handlers = options?.handlers
  if (!Array.isArray(handlers) || handlers.length === 0) {
    return new InvalidOption("handlers", handlers, "at least one handler, made with a job type's handler")
  }
  const names = new Set<string>()
  for (const handler of handlers) {
    if (!isHandler(handler)) return new InvalidOption("handlers", handler, "handlers made with a job type's handler")
    if (names.has(handler.job.name)) {
      return new InvalidOption("handlers", handler.job.name, "one handler per job name, got two for this one")
    }
    names.add(handler.job.name)
  }
  const concurrency = options.concurrency ?? 10
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    return new InvalidOption("concurrency", concurrency, "an integer of 1 or more")
  }
  const prefetch = options.prefetch ?? 0
  if (!Number.isSafeInteger(prefetch) || prefetch < 0) {
    return new InvalidOption("prefetch", prefetch, "an integer of 0 or more")
  }
  const lease = positiveDuration("lease", options.lease ?? "30 seconds")
  if (lease instanceof InvalidOption) return lease
  const pollInterval = positiveDuration("pollInterval", options.pollInterval ?? "2 seconds")
  if (pollInterval instanceof InvalidOption) return pollInterval
  const reapInterval = options.reapInterval === undefined
    ? Duration.millis(Math.max(1, Duration.toMillis(lease) / 2))
    : positiveDuration("reapInterval", options.reapInterval)
  if (reapInterval instanceof InvalidOption) return reapInterval
  const storeTimeout = positiveDuration("storeTimeout", options.storeTimeout ?? "10 seconds")
  if (storeTimeout instanceof InvalidOption) return storeTimeout
  const autoStart = options.autoStart ?? true
  if (typeof autoStart !== "boolean") return new InvalidOption("autoStart", autoStart, "a boolean")
  const queues = options.queues ?? Array.from(new Set(handlers.map((handler) => handler.job.queue)))
  if (!Array.isArray(queues) || queues.length === 0 || !queues.every(isName)) {
    return new InvalidOption("queues", queues, "a non-empty array of non-empty queue names")
  }
  const workerId = options.workerId
  if (workerId !== undefined && !isName(workerId)) {
    return new InvalidOption("workerId", workerId, "a non-empty string")
  }
  const schedules = options.schedules ?? []
  if (!Array.isArray(schedules)) return new InvalidOption("schedules", schedules, "an array of job schedules")
  const scheduleNames = new Set<string>()
  for (const schedule of schedules) {
    if (!isSchedule(schedule)) {
      return new InvalidOption("schedules", schedule, "schedules made with a job type's schedule")
    }
    if (scheduleNames.has(schedule.name)) {
      return new InvalidOption("schedules", schedule.name, "one schedule per name, got two for this one")
    }
    scheduleNames.add(schedule.name)
  }
  return {
    schedules,
    handlers,
    concurrency,
    prefetch,
    lease,
    pollInterval,
    reapInterval,
    storeTimeout,
    autoStart,
    queues,
    workerId
  }
}
