/**
 * The argument checks every job store makes, so that the memory store and the PostgreSQL store refuse the same
 * nonsense with the same words. Each check returns `undefined` when the arguments are fine, or what is wrong as
 * `[what, value, expected]`; {@link illegal} turns that into the defect the port specifies.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { ClaimRequest, Lease, NewJob } from "../JobStore.js"

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
const isLease = (value: unknown): value is Lease =>
  typeof value === "object" && value !== null && typeof (value as Lease).jobId === "string" &&
  typeof (value as Lease).token === "string"

const jobProblem = (job: NewJob, i: number): Problem | undefined => {
  if (typeof job !== "object" || job === null) return [`job ${i}`, job, "a NewJob"]
  if (!isName(job.name)) return [`job ${i} name`, job.name, "a non-empty string"]
  if (!isName(job.queue)) return [`job ${i} queue`, job.queue, "a non-empty string"]
  if (!isValidDate(job.runAt)) return [`job ${i} runAt`, job.runAt, "a valid Date"]
  if (!Number.isSafeInteger(job.priority)) return [`job ${i} priority`, job.priority, "an integer"]
  if (job.key !== undefined && !isName(job.key)) return [`job ${i} key`, job.key, "a non-empty string or undefined"]
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

export const leaseProblem = (lease: Lease): Problem | undefined =>
  isLease(lease) ? undefined : ["lease", lease, "a Lease"]

export const retryProblem = (lease: Lease, runAt: Date, error: string): Problem | undefined => {
  if (!isLease(lease)) return ["lease", lease, "a Lease"]
  if (!isValidDate(runAt)) return ["runAt", runAt, "a valid Date"]
  if (typeof error !== "string") return ["error", error, "a string"]
  return undefined
}

export const deadLetterProblem = (lease: Lease, error: string): Problem | undefined => {
  if (!isLease(lease)) return ["lease", lease, "a Lease"]
  if (typeof error !== "string") return ["error", error, "a string"]
  return undefined
}

export const releaseProblem = (lease: Lease, options: { readonly refund: boolean }): Problem | undefined => {
  if (!isLease(lease)) return ["lease", lease, "a Lease"]
  if (typeof options?.refund !== "boolean") return ["refund", options?.refund, "true or false"]
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
