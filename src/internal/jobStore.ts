/**
 * `JobStore.make`: the wrapper every store's driver goes through, so that the memory store and the PostgreSQL store
 * refuse the same nonsense with the same words, and hold payloads to the same JSON. Each check returns `undefined`
 * when the arguments are fine, or what is wrong as `[what, value, expected]`; {@link illegal} turns that into the
 * defect the port specifies.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type {
  CancelFilter,
  ClaimRequest,
  EncodedJob,
  EndedFilter,
  JobStore,
  Lease,
  ListOptions,
  NewJob,
  PruneResult,
  ScheduleSlot,
  Settlement
} from "../JobStore.js"
import { type JobState, JobStoreError } from "../JobStore.js"
import { notJson } from "./json.js"

/** What is wrong with an argument: its name, its value, and what was expected. */
export type Problem = readonly [what: string, value: unknown, expected: string]

/** The defect for `problem` in `store`'s `operation`: `MemoryJobStore.claim: invalid limit "-1": expected ...`. */
export const illegal = (store: string, operation: string, [what, value, expected]: Problem) =>
  Effect.die(
    new Cause.IllegalArgumentException(`${store}.${operation}: invalid ${what} ${show(value)}: expected ${expected}`)
  )

/** The defect for an option of `store`'s constructor that makes no sense: `PgJobStore: invalid schema "X": ...`. */
export const invalidOption = (store: string, option: string, value: unknown, expected: string) =>
  Effect.die(new Cause.IllegalArgumentException(`${store}: invalid ${option} ${show(value)}: expected ${expected}`))

/**
 * How many of a recurring schedule's latest slots a store remembers (`enqueueSlot`): a slot among them is taken, and
 * a slot older than all of them is refused.
 */
export const recentSlots = 16

/** The default of every store's `deadLetterRetention`: 14 days, as pg-boss keeps them (River keeps 7). */
export const defaultDeadLetterRetention = Duration.days(14)

/** How many dead letters one `prune` call deletes at most. */
export const pruneBatch = 1_000

/**
 * A store's `succeededRetention` option, checked: how long completed jobs are kept, in milliseconds (0, the default:
 * not at all; `Infinity` for ever, until a bound drops them). `undefined` when it is invalid.
 */
export const succeededRetentionOption = (value: Duration.DurationInput | undefined): number | undefined => {
  if (value === undefined) return 0
  const decoded = Option.getOrUndefined(Duration.decodeUnknown(value))
  return decoded === undefined ? undefined : Duration.toMillis(decoded)
}

/**
 * A store's `deadLetterRetention` option, checked: a duration above zero, `Duration.infinity` to keep them for ever.
 * `undefined` when it is invalid (the store dies with {@link invalidOption}).
 */
export const retentionOption = (value: Duration.DurationInput | undefined): Duration.Duration | undefined => {
  if (value === undefined) return defaultDeadLetterRetention
  const decoded = Option.getOrUndefined(Duration.decodeUnknown(value))
  return decoded !== undefined && Duration.toMillis(decoded) > 0 ? decoded : undefined
}

/** What a store that keeps nothing to prune answers. */
export const nothingToPrune: Effect.Effect<PruneResult> = Effect.succeed({ pruned: 0, more: false })

export const show = (value: unknown): string => {
  if (value instanceof Date) return JSON.stringify(String(value))
  if (Duration.isDuration(value)) return JSON.stringify(Duration.format(value))
  return JSON.stringify(String(value))
}

const isName = (value: unknown): value is string => typeof value === "string" && value.length > 0
const isValidDate = (value: unknown): value is Date => value instanceof Date && Number.isFinite(value.getTime())
export const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0
const isLeaseDuration = (value: unknown): value is Duration.Duration =>
  Duration.isDuration(value) && Duration.isFinite(value) && Duration.toMillis(value) > 0
const isDelay = (value: unknown): value is Duration.Duration =>
  Duration.isDuration(value) && Duration.isFinite(value) && Duration.toMillis(value) <= maxDelayMs
const isLease = (value: unknown): value is Lease =>
  typeof value === "object" && value !== null && typeof (value as Lease).jobId === "string" &&
  typeof (value as Lease).token === "string"

const keyModes: ReadonlySet<unknown> = new Set(["skip", "replace", "afterRunning"])

const jobProblem = (job: NewJob, i: number): Problem | undefined => {
  if (typeof job !== "object" || job === null) return [`job ${i}`, job, "a NewJob"]
  if (!isName(job.name)) return [`job ${i} name`, job.name, "a non-empty string"]
  if (!isName(job.queue)) return [`job ${i} queue`, job.queue, "a non-empty string"]
  if (job.runAt !== undefined && !isValidDate(job.runAt)) {
    return [`job ${i} runAt`, job.runAt, "a valid Date or undefined"]
  }
  if (job.delay !== undefined && !isDelay(job.delay)) {
    return [`job ${i} delay`, job.delay, "a finite Duration of zero or more, or undefined"]
  }
  if (!Number.isSafeInteger(job.priority)) return [`job ${i} priority`, job.priority, "an integer"]
  if (job.key !== undefined && !isName(job.key)) return [`job ${i} key`, job.key, "a non-empty string or undefined"]
  if (job.keyMode !== undefined && !keyModes.has(job.keyMode)) {
    return [`job ${i} keyMode`, job.keyMode, "\"skip\", \"replace\" or \"afterRunning\""]
  }
  if (!Number.isSafeInteger(job.maxAttempts) || job.maxAttempts < 1) {
    return [`job ${i} maxAttempts`, job.maxAttempts, "an integer of 1 or more"]
  }
  return undefined
}

export const enqueueProblem = (jobs: ReadonlyArray<NewJob>): Problem | undefined => {
  if (!Array.isArray(jobs)) return ["jobs", jobs, "an array of NewJob"]
  for (let i = 0; i < jobs.length; i++) {
    const problem = jobProblem(jobs[i]!, i)
    if (problem !== undefined) return problem
  }
  return undefined
}

export const slotProblem = (slot: ScheduleSlot): Problem | undefined => {
  if (typeof slot !== "object" || slot === null) return ["slot", slot, "a ScheduleSlot"]
  if (!isName(slot.schedule)) return ["schedule", slot.schedule, "a non-empty string"]
  if (!isValidDate(slot.slot)) return ["slot", slot.slot, "a valid Date"]
  if (typeof slot.backfill !== "boolean") return ["backfill", slot.backfill, "true or false"]
  return jobProblem(slot.job, 0)
}

export const claimProblem = (request: ClaimRequest): Problem | undefined => {
  if (typeof request !== "object" || request === null) return ["request", request, "a ClaimRequest"]
  const { limit, names, queues } = request
  if (!Array.isArray(queues)) return ["queues", queues, "an array of queue names"]
  if (!Array.isArray(names)) return ["names", names, "an array of job names"]
  if (!isCount(limit)) return ["limit", limit, "an integer of 0 or more"]
  if (!isLeaseDuration(request.lease)) return ["lease", request.lease, "a finite Duration longer than zero"]
  return undefined
}

export const renewProblem = (leases: ReadonlyArray<Lease>, lease: Duration.Duration): Problem | undefined => {
  if (!Array.isArray(leases) || !leases.every(isLease)) return ["leases", leases, "an array of Lease"]
  if (!isLeaseDuration(lease)) return ["lease", lease, "a finite Duration longer than zero"]
  return undefined
}

const outcomeProblem = (settlement: Settlement, i: number): Problem | undefined => {
  if (typeof settlement !== "object" || settlement === null) return [`settlement ${i}`, settlement, "a Settlement"]
  if (!isLease(settlement.lease)) return [`settlement ${i} lease`, settlement.lease, "a Lease"]
  const durationMs = settlement.durationMs
  if (durationMs !== undefined && !(typeof durationMs === "number" && Number.isFinite(durationMs) && durationMs >= 0)) {
    return [`settlement ${i} durationMs`, durationMs, "a number of milliseconds, 0 or more, or undefined"]
  }
  const notJsonResult = settlement.result === undefined ? undefined : notJson(settlement.result)
  if (notJsonResult !== undefined) {
    return [`settlement ${i} result`, settlement.result, `a JSON value (${notJsonResult})`]
  }
  const outcome = settlement.outcome
  switch (outcome?._tag) {
    case "Completed":
      return undefined
    case "Retry":
      if (!isDelay(outcome.delay)) {
        return [`settlement ${i} delay`, outcome.delay, `a finite Duration of zero to ${maxDelayMs} ms`]
      }
      return typeof outcome.error === "string" ? undefined : [`settlement ${i} error`, outcome.error, "a string"]
    case "Dead":
      return typeof outcome.error === "string" ? undefined : [`settlement ${i} error`, outcome.error, "a string"]
    case "Snoozed":
      return isDelay(outcome.delay)
        ? undefined
        : [`settlement ${i} delay`, outcome.delay, `a finite Duration of zero to ${maxDelayMs} ms`]
    case "Released":
      return typeof outcome.refund === "boolean"
        ? undefined
        : [`settlement ${i} refund`, outcome.refund, "true or false"]
    default:
      return [`settlement ${i} outcome`, outcome, "an Outcome"]
  }
}

export const settleProblem = (settlements: ReadonlyArray<Settlement>): Problem | undefined => {
  if (!Array.isArray(settlements)) return ["settlements", settlements, "an array of Settlement"]
  for (let i = 0; i < settlements.length; i++) {
    const problem = outcomeProblem(settlements[i]!, i)
    if (problem !== undefined) return problem
  }
  return undefined
}

/** The dead letters listed when `deadLetters` is given no limit. */
export const defaultDeadLettersLimit = 100

export const deadLettersProblem = (
  options: { readonly limit?: number | undefined; readonly queue?: string | undefined } | undefined
): Problem | undefined => {
  const limit = options?.limit ?? defaultDeadLettersLimit
  if (!isCount(limit)) return ["limit", limit, "an integer of 0 or more"]
  const queue = options?.queue
  if (queue !== undefined && typeof queue !== "string") return ["queue", queue, "a string or undefined"]
  return undefined
}

export const redriveProblem = (ids: ReadonlyArray<string>): Problem | undefined =>
  Array.isArray(ids) && ids.every((id) => typeof id === "string") ? undefined : ["ids", ids, "an array of job ids"]

/** Here rather than in `JobStore.ts`, which imports this module: a value of that one is not defined yet here. */
export const jobStates: ReadonlyArray<JobState> = ["ready", "scheduled", "leased", "succeeded", "dead", "cancelled"]

/** The most jobs one `list` page holds. */
export const maxListLimit = 1_000

/** The jobs one `list` page holds when it is given no limit. */
export const defaultListLimit = 50

/** How many ended jobs one step of `redriveMany` and `deleteMany` takes. */
const pageOfEnded = 1_000

/** How many jobs one batch of `cancelMany` cancels at most. */
export const cancelBatch = 1_000

const states: ReadonlySet<unknown> = new Set(jobStates)
const liveStates: ReadonlySet<unknown> = new Set(["ready", "scheduled", "leased"])
const isOptionalName = (value: unknown) => value === undefined || isName(value)

export const listProblem = (options: ListOptions | undefined): Problem | undefined => {
  if (options === undefined) return undefined
  if (typeof options !== "object" || options === null) return ["options", options, "ListOptions or undefined"]
  const { after, key, limit, name, queue, state } = options
  if (state !== undefined && !states.has(state)) return ["state", state, `one of ${jobStates.join(", ")}`]
  if (!isOptionalName(queue)) return ["queue", queue, "a non-empty string or undefined"]
  if (!isOptionalName(name)) return ["name", name, "a non-empty string or undefined"]
  if (!isOptionalName(key)) return ["key", key, "a non-empty string or undefined"]
  if (limit !== undefined && !(isCount(limit) && limit >= 1 && limit <= maxListLimit)) {
    return ["limit", limit, `an integer from 1 to ${maxListLimit}`]
  }
  if (after !== undefined && typeof after !== "string") return ["after", after, "a job id or undefined"]
  return undefined
}

export const endedFilterProblem = (filter: EndedFilter): Problem | undefined => {
  if (typeof filter !== "object" || filter === null) return ["filter", filter, "an EndedFilter"]
  const { name, queue, state } = filter
  if (!isOptionalName(queue)) return ["queue", queue, "a non-empty string or undefined"]
  if (!isOptionalName(name)) return ["name", name, "a non-empty string or undefined"]
  if (state !== undefined && state !== "dead" && state !== "cancelled") {
    return ["state", state, "dead, cancelled or undefined"]
  }
  return undefined
}

export const cancelManyProblem = (filter: CancelFilter): Problem | undefined => {
  if (typeof filter !== "object" || filter === null) return ["filter", filter, "a CancelFilter"]
  const { name, queue, state } = filter
  if (!isOptionalName(queue)) return ["queue", queue, "a non-empty string or undefined"]
  if (!isOptionalName(name)) return ["name", name, "a non-empty string or undefined"]
  if (queue === undefined && name === undefined) return ["filter", "{}", "a queue, a name, or both"]
  if (state !== undefined && !liveStates.has(state)) return ["state", state, "ready, scheduled, leased or undefined"]
  return undefined
}

/**
 * The longest delay a store holds: 100 years. A retry schedule that asks for more (an uncapped exponential at attempt
 * 44 and beyond) is clamped to it by the worker.
 */
export const maxDelayMs = 100 * 365 * 24 * 60 * 60 * 1000

/** The jobs as the driver takes them, or the `JobStoreError` for the first payload that is not JSON. */
const encode = (jobs: ReadonlyArray<NewJob>): ReadonlyArray<EncodedJob> | JobStoreError => {
  const encoded: Array<EncodedJob> = new Array(jobs.length)
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i]!
    const problem = notJson(job.payload)
    if (problem !== undefined) {
      return new JobStoreError({
        operation: "enqueue",
        reason: `the payload of job ${i} (${job.name}) is not JSON: ${problem}`
      })
    }
    encoded[i] = {
      name: job.name,
      queue: job.queue,
      payload: JSON.stringify(job.payload),
      runAt: job.runAt,
      delayMs: job.delay === undefined ? 0 : Math.ceil(Duration.toMillis(job.delay)),
      priority: job.priority,
      key: job.key,
      keyMode: job.keyMode ?? "replace",
      maxAttempts: job.maxAttempts
    }
  }
  return encoded
}

/** The stores whose driver said its calls answer at once (`Driver.immediate`): the very service objects `make` built. */
const immediateStores = new WeakSet<JobStore.Service>()

/** @internal Whether every call of `store` answers at once: see `Driver.immediate`. */
export const isImmediate = (store: JobStore.Service): boolean => immediateStores.has(store)

/** @internal */
export const make = (driver: JobStore.Driver): JobStore.Service => {
  const refuse = (operation: string, problem: Problem) => illegal(driver.name, operation, problem)
  const insert = (operation: string, jobs: ReadonlyArray<NewJob>) => {
    const problem = enqueueProblem(jobs)
    if (problem !== undefined) return refuse(operation, problem)
    if (jobs.length === 0) return Effect.succeed([])
    const encoded = encode(jobs)
    return encoded instanceof JobStoreError ? Effect.fail(encoded) : driver.insert(encoded)
  }
  /** Runs `act` on the ids of each page of the ended jobs `filter` takes, newest first, and adds up its counts. */
  const eachEnded = (
    filter: EndedFilter,
    act: (ids: ReadonlyArray<string>) => Effect.Effect<number, JobStoreError>
  ): Effect.Effect<number, JobStoreError> => {
    const { name, queue } = filter
    const pages = (state: "dead" | "cancelled", after: string | undefined, total: number) =>
      Effect.flatMap(
        driver.list({ state, queue, name, limit: pageOfEnded, after }),
        (page): Effect.Effect<number, JobStoreError> =>
          page.jobs.length === 0 ? Effect.succeed(total) : Effect.flatMap(
            act(page.jobs.map((job) => job.id)),
            (n) => page.next === undefined ? Effect.succeed(total + n) : pages(state, page.next, total + n)
          )
      )
    const states = filter.state === undefined ? ["dead", "cancelled"] as const : [filter.state]
    return Effect.reduce(states, 0, (total, state) => pages(state, undefined, total))
  }
  const service: JobStore.Service = {
    enqueue: (jobs) => Effect.map(insert("enqueue", jobs), (results) => results.map((result) => result.id)),
    insert: (jobs) => insert("insert", jobs),
    enqueueSlot: (slot) => {
      const problem = slotProblem(slot)
      if (problem !== undefined) return refuse("enqueueSlot", problem)
      const encoded = encode([slot.job])
      return encoded instanceof JobStoreError
        ? Effect.fail(encoded)
        : driver.enqueueSlot({
          schedule: slot.schedule,
          slot: slot.slot,
          backfill: slot.backfill,
          // A slot's job whose key a live job holds is skipped, whatever its key mode: the slot is taken.
          job: { ...encoded[0]!, keyMode: "skip" }
        })
    },
    claim: (request) => {
      const problem = claimProblem(request)
      if (problem !== undefined) return refuse("claim", problem)
      return request.limit === 0 ? Effect.succeed({ jobs: [], buried: [] }) : driver.claim(request)
    },
    renew: (leases, lease) => {
      const problem = renewProblem(leases, lease)
      if (problem !== undefined) return refuse("renew", problem)
      return leases.length === 0 ? Effect.succeed([]) : driver.renew(leases, lease)
    },
    settle: (settlements) => {
      const problem = settleProblem(settlements)
      if (problem !== undefined) return refuse("settle", problem)
      return settlements.length === 0 ? Effect.succeed([]) : driver.settle(settlements)
    },
    reap: driver.reap,
    prune: driver.prune ?? nothingToPrune,
    wakeups: driver.wakeups,
    stats: driver.stats,
    deadLetters: (options) => {
      const problem = deadLettersProblem(options)
      if (problem !== undefined) return refuse("deadLetters", problem)
      return driver.deadLetters({ limit: options?.limit ?? defaultDeadLettersLimit, queue: options?.queue })
    },
    redrive: (ids) => {
      const problem = redriveProblem(ids)
      if (problem !== undefined) return refuse("redrive", problem)
      return ids.length === 0 ? Effect.succeed(0) : driver.redrive(ids)
    },
    get: (id) => typeof id === "string" ? driver.get(id) : refuse("get", ["id", id, "a job id"]),
    list: (options) => {
      const problem = listProblem(options)
      if (problem !== undefined) return refuse("list", problem)
      return driver.list({ ...options, limit: options?.limit ?? defaultListLimit })
    },
    cancel: (id) => typeof id === "string" ? driver.cancel(id) : refuse("cancel", ["id", id, "a job id"]),
    cancelMany: (filter) => {
      const problem = cancelManyProblem(filter)
      if (problem !== undefined) return refuse("cancelMany", problem)
      const { name, queue, state } = filter
      const batch = (total: number): Effect.Effect<number, JobStoreError> =>
        Effect.flatMap(
          driver.cancelBatch({ name, queue, state }, cancelBatch),
          (n) => n === cancelBatch ? batch(total + n) : Effect.succeed(total + n)
        )
      return batch(0)
    },
    cancellations: driver.cancellations,
    redriveMany: (filter) => {
      const problem = endedFilterProblem(filter)
      return problem === undefined ? eachEnded(filter, driver.redrive) : refuse("redriveMany", problem)
    },
    delete: (ids) => {
      const problem = redriveProblem(ids)
      if (problem !== undefined) return refuse("delete", problem)
      return ids.length === 0 ? Effect.succeed(0) : driver.delete(ids)
    },
    deleteMany: (filter) => {
      const problem = endedFilterProblem(filter)
      return problem === undefined ? eachEnded(filter, driver.delete) : refuse("deleteMany", problem)
    },
    runNow: (id) => typeof id === "string" ? driver.runNow(id) : refuse("runNow", ["id", id, "a job id"]),
    pauseQueue: (queue) =>
      isName(queue) ? driver.pauseQueue(queue) : refuse("pauseQueue", ["queue", queue, "a non-empty string"]),
    resumeQueue: (queue) =>
      isName(queue) ? driver.resumeQueue(queue) : refuse("resumeQueue", ["queue", queue, "a non-empty string"])
  }
  if (driver.immediate === true) immediateStores.add(service)
  return service
}
