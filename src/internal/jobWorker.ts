import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Inspectable from "effect/Inspectable"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Job from "../Job.js"
import { type ClaimedJob, type ClaimRequest, JobStore, JobStoreError, LeaseLost } from "../JobStore.js"
import type { JobEvent as JobEventType, JobMetrics, JobWorker, Options } from "../JobWorker.js"
import { type Tracked, WorkerContext, type WorkerState } from "../WorkerContext.js"
import type { TaskRejected } from "../WorkerContextError.js"
import { WorkerEvent } from "../WorkerEvent.js"
import * as WorkerMetrics from "../WorkerMetrics.js"

/** @internal */
export const JobEvent = Data.taggedEnum<JobEventType>()

const jobEventTags: ReadonlySet<string> = new Set([
  "JobClaimed",
  "JobSucceeded",
  "JobRetried",
  "JobDeadLettered",
  "JobTimedOut",
  "JobLeaseLost",
  "JobReleased"
])

/** @internal */
export const isJobEvent = (u: unknown): u is JobEventType =>
  typeof u === "object" && u !== null && jobEventTags.has((u as { readonly _tag?: unknown })._tag as string) &&
  typeof (u as { readonly id?: unknown }).id === "string"

// -----------------------------------------------------------------------------------------------------------------
// Metrics
// -----------------------------------------------------------------------------------------------------------------

/** @internal */
export const jobWaitBoundaries = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 24 })

const counter = (name: string, description: string, tags: ReadonlyArray<MetricLabel.MetricLabel>) =>
  Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.counter(name, { description, incremental: true }), tags))

const histogram = (
  name: string,
  boundaries: MetricBoundaries.MetricBoundaries,
  description: string,
  tags: ReadonlyArray<MetricLabel.MetricLabel>
) => Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.histogram(name, boundaries, description), tags))

/** @internal */
export const metrics = (worker: string, queue: string): JobMetrics => {
  // Tags in the key, as `WorkerMetrics` does: an untagged update then hits a cached hook.
  const tags = [MetricLabel.make("worker", worker), MetricLabel.make("queue", queue)]
  return {
    jobsClaimed: counter("effect_worker_jobs_claimed", "Jobs claimed", tags),
    jobsSucceeded: counter("effect_worker_jobs_succeeded", "Jobs completed", tags),
    jobsRetried: counter("effect_worker_jobs_retried", "Failed attempts scheduled to run again", tags),
    jobsDeadLettered: counter("effect_worker_jobs_dead_lettered", "Jobs moved to the dead letters", tags),
    jobsReleased: counter("effect_worker_jobs_released", "Jobs given back unfinished", tags),
    jobsTimedOut: counter("effect_worker_jobs_timed_out", "Attempts cut off by their job type's timeout", tags),
    jobsLeaseLost: counter("effect_worker_jobs_lease_lost", "Jobs whose lease was lost while held", tags),
    jobDuration: histogram(
      "effect_worker_job_duration_seconds",
      WorkerMetrics.taskDurationBoundaries,
      "Handler run time per attempt, in seconds",
      tags
    ),
    jobWait: histogram(
      "effect_worker_job_wait_seconds",
      jobWaitBoundaries,
      "Time from a job's runAt to the start of its attempt, in seconds",
      tags
    )
  }
}

/** Registers every series at 0, so an exporter shows them before the first job. */
const registered = (m: JobMetrics): JobMetrics => {
  for (
    const c of [m.jobsClaimed, m.jobsSucceeded, m.jobsRetried, m.jobsDeadLettered, m.jobsReleased, m.jobsTimedOut]
  ) c.unsafeUpdate(0, [])
  m.jobsLeaseLost.unsafeUpdate(0, [])
  m.jobDuration.unsafeValue([])
  m.jobWait.unsafeValue([])
  return m
}

// -----------------------------------------------------------------------------------------------------------------
// Options
// -----------------------------------------------------------------------------------------------------------------

interface Resolved {
  readonly handlers: ReadonlyArray<Job.JobHandler<any>>
  readonly concurrency: number
  readonly prefetch: number
  readonly lease: Duration.Duration
  readonly pollInterval: Duration.Duration
  readonly reapInterval: Duration.Duration
  readonly autoStart: boolean
  readonly queues: ReadonlyArray<string>
  readonly workerId: string | undefined
}

class InvalidOption {
  constructor(readonly option: string, readonly value: unknown, readonly expected: string) {}
}

const invalid = (option: string, value: unknown, expected: string) =>
  new Cause.IllegalArgumentException(
    `JobWorker: invalid ${option} ${JSON.stringify(String(value))}: expected ${expected}`
  )

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

const isName = (u: unknown): u is string => typeof u === "string" && u.trim().length > 0

const resolve = <R>(options: Options<R>): Resolved | InvalidOption => {
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
  return { handlers, concurrency, prefetch, lease, pollInterval, reapInterval, autoStart, queues, workerId }
}

// -----------------------------------------------------------------------------------------------------------------
// Running jobs
// -----------------------------------------------------------------------------------------------------------------

/** The failure of an attempt that ran past its job type's timeout. */
class JobTimeout extends Data.TaggedError("JobTimeout")<{ readonly message: string; readonly timeoutMs: number }> {}

/**
 * The attempts running under one timeout, in the order of their deadlines: every attempt of a job type gets the same
 * timeout and they start one after the other, so appending keeps the list sorted. One watcher fiber per list sleeps
 * until the first deadline, instead of a timer fiber (two, with `Effect.timeout`) per attempt.
 */
class TimeoutList {
  head: Held | undefined = undefined
  tail: Held | undefined = undefined
  /** Opened when an attempt is added to an empty list, for a watcher waiting on it. */
  readonly added = Effect.unsafeMakeLatch(false)
  constructor(readonly timeoutMs: number, readonly error: JobTimeout) {}

  add(held: Held, now: number): void {
    held.deadline = now + this.timeoutMs
    held.timeouts = this
    held.before = this.tail
    if (this.tail === undefined) {
      this.head = held
      this.added.unsafeOpen()
    } else {
      this.tail.after = held
    }
    this.tail = held
  }

  remove(held: Held): void {
    if (held.timeouts !== this) return
    if (held.before === undefined) this.head = held.after
    else held.before.after = held.after
    if (held.after === undefined) this.tail = held.before
    else held.after.before = held.before
    held.before = held.after = held.timeouts = undefined
  }
}

/** What the worker knows about one job type, computed once. */
interface Entry {
  readonly handler: Job.JobHandler<any>
  readonly decode: (payload: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
  readonly trackOptions: { readonly label: string; readonly whenPaused: "reject" }
  /** `undefined` for `Duration.infinity`. */
  readonly timeouts: TimeoutList | undefined
}

/**
 * One claimed job, from its claim until its outcome is acknowledged, it is given back, or (its lease lost) its task
 * has ended: as long, it takes one of the worker's slots (`Core.inFlight`).
 */
class Held {
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  /**
   * This worker's earlier claim of the same job, when the store gave the job out again while that one's task still
   * ran (its lease expired unrenewed, say): this attempt starts once that task has ended.
   */
  previous: Held | undefined = undefined
  /** The task has begun: only then is it interrupted (a task interrupted before it begins never runs its settle). */
  begun = false
  /** The lease no longer holds: the outcome is discarded, nothing is acknowledged. */
  lost = false
  /**
   * The worker could not renew the lease and stopped the job before it would lapse: the lease may still hold in the
   * store, so the job keeps its slot, once its task has ended (`lapsing`), until `expiresAt`.
   */
  fenced = false
  lapsing = false
  /** The attempt ran past its timeout and was interrupted for it. */
  timedOut = false
  /** The handler ended and its outcome is being acknowledged: the acknowledgement, not the renewer, tells a loss. */
  settling = false
  /** Claimed ahead (`prefetch`): it waits in `Core.queued` for a slot, its lease renewed, its task not begun. */
  queued = false
  /** It took a slot (claimed onto one, or started from the queue): its end frees one. */
  slot = false
  /** Its handler has ended and, the worker prefetching, it gave its slot up while its acknowledgement is sent. */
  acking = false
  /** Its slot is free. */
  done = false
  /** The payload did not decode: the attempt's failure is the `ParseError`. */
  undecodable = false
  startedAt = -1
  /**
   * Until when the lease holds at least, by this worker's clock: the instant the claim (or the last renewal that
   * kept it) was sent, plus the lease. The renewer stops the job before then if it cannot renew it.
   */
  expiresAt: number
  durationMs = 0
  delayMs = 0
  error = ""
  // Links of the `TimeoutList` the attempt is in, while it runs under a timeout.
  deadline = 0
  timeouts: TimeoutList | undefined = undefined
  before: Held | undefined = undefined
  after: Held | undefined = undefined
  constructor(
    readonly job: ClaimedJob,
    readonly entry: Entry,
    readonly metrics: JobMetrics,
    expiresAt: number
  ) {
    this.expiresAt = expiresAt
  }
}

/**
 * The back-off of the store calls that are retried (claims, acknowledgements, renewals): 100 ms, doubling, at most
 * 5 s apart (a claim's, at most `pollInterval`; a renewal's, at most `lease / 3`).
 */
const ackBackoffStart = 100
const ackBackoffCap = 5_000

/** The readiness check a job worker reports its store's health under. */
const storeCheck = "job store"

/** The worker's mutable state. Every method is synchronous: one atomic step, as in `WorkerCore`. */
class Core {
  /** How many jobs take a slot: never more than `concurrency`. */
  inFlight = 0
  /** The jobs claimed ahead, waiting for a slot, oldest first; one whose lease was lost meanwhile is skipped. */
  readonly queued: Array<Held> = []
  /** How many of `queued` still wait. */
  waiting = 0
  /** How many jobs gave their slot up to be acknowledged (with `prefetch` only): they still hold a lease. */
  acking = 0
  /** By job id, the claims whose lease the worker believes holds: what the renewer renews. */
  readonly live = new Map<string, Held>()
  /** The claims whose lease was lost while their task has not ended yet, or whose lease may not have lapsed yet. */
  readonly lost = new Set<Held>()
  /** There may be claimable jobs: set by wake-ups, polls, resumes and claims that filled every slot. */
  dirty = false
  /**
   * A claim returned jobs the worker had to give back: the next one waits for the poll (or a resume), whatever wakes
   * the loop before it.
   */
  claimBlocked = false
  /**
   * A claim failed: the next one waits until the back-off timer ends (`claimRetry`), whatever wakes the loop before
   * it (wake-ups, polls, freed slots, a resume), so a store that is down is not called more often than the schedule.
   */
  claimBackoff = false
  /** The back-off after the last failed claim, in ms: 0 once a claim succeeded. */
  claimDelay = 0
  /** The context left `Running` for good: the claim loop has ended. */
  ended = false
  /** Opened to wake the claim loop; the loop closes it before it looks at what to do. */
  readonly wake = Effect.unsafeMakeLatch(false)
  /** The context's shutdown deadline has passed, or it is Stopped: acknowledgements stop retrying. */
  pastDeadline = false
  /** The waits between acknowledgement retries: each ends after its delay, or at the shutdown deadline. */
  readonly pauses = new Set<Deferred.Deferred<void>>()

  deadline(): void {
    this.pastDeadline = true
    for (const pause of this.pauses) Deferred.unsafeDone(pause, Exit.void)
    this.pauses.clear()
  }

  trigger(): void {
    this.dirty = true
    if (!this.claimBlocked && !this.claimBackoff) this.wake.unsafeOpen()
  }

  /** A claim failed: no claim until `claimRetry`. Returns the back-off: 100 ms, doubling, at most `cap`. */
  claimFailed(cap: number): number {
    this.claimBackoff = true
    this.dirty = true
    this.claimDelay = Math.min(this.claimDelay === 0 ? ackBackoffStart : this.claimDelay * 2, cap)
    return this.claimDelay
  }

  /** The back-off after a failed claim has passed: claim again at once. */
  claimRetry(): void {
    this.claimBackoff = false
    this.trigger()
  }

  poll(): void {
    this.claimBlocked = false
    this.trigger()
  }

  /**
   * Frees the slots of the stopped jobs whose lease has surely lapsed by `now`, and returns when the next one will
   * have (`Infinity` if none is waiting).
   */
  freeLapsed(now: number): number {
    let next = Infinity
    for (const held of this.lost) {
      if (!held.lapsing) continue
      if (held.expiresAt <= now) this.finish(held)
      else next = Math.min(next, held.expiresAt)
    }
    return next
  }

  /** A claim returned `held`: it takes a slot, and its lease is live. */
  take(held: Held): void {
    held.slot = true
    this.inFlight++
    this.live.set(held.job.id, held)
  }

  /** A claim returned `held` beyond the free slots: it waits for one, and its lease is live. */
  hold(held: Held): void {
    held.queued = true
    this.waiting++
    this.queued.push(held)
    this.live.set(held.job.id, held)
  }

  /**
   * The oldest job still waiting, out of the queue; with `slot`, it takes a slot now (it is about to start), without,
   * it takes none (it is about to be given back). `undefined` when none waits.
   */
  nextQueued(slot: boolean): Held | undefined {
    while (this.queued.length > 0) {
      const held = this.queued.shift()!
      if (!held.queued) continue
      held.queued = false
      this.waiting--
      if (slot) {
        held.slot = true
        this.inFlight++
      }
      return held
    }
    return undefined
  }

  /**
   * The handler of `held` has ended and its outcome is about to be acknowledged: its slot goes to the next job now,
   * not once the store has taken the acknowledgement. It still holds its lease (renewed) until then.
   */
  vacate(held: Held): void {
    if (!held.slot || held.done) return
    held.slot = false
    held.acking = true
    this.acking++
    this.inFlight--
    this.slotFreed()
  }

  /** The lease no longer holds (the store said so, or gave the job out again). */
  lose(held: Held): void {
    if (held.queued) {
      // Its task never began: it is simply dropped, and took no slot.
      held.queued = false
      this.waiting--
      held.lost = true
      held.done = true
      if (this.live.get(held.job.id) === held) this.live.delete(held.job.id)
      return
    }
    held.lost = true
    if (this.live.get(held.job.id) === held) this.live.delete(held.job.id)
    if (!held.done) this.lost.add(held)
  }

  finish(held: Held): void {
    if (held.done) return
    held.done = true
    if (held.slot) this.inFlight--
    if (held.acking) {
      held.acking = false
      this.acking--
    }
    if (held.lost) this.lost.delete(held)
    else if (this.live.get(held.job.id) === held) this.live.delete(held.job.id)
    this.slotFreed()
  }

  /**
   * A slot frees up: start a job claimed ahead, or claim at once if there may be more jobs (the last claim filled
   * every slot, or a wake-up came in while the slots were full).
   */
  private slotFreed(): void {
    if (this.waiting > 0 || (this.dirty && !this.claimBlocked && !this.claimBackoff)) this.wake.unsafeOpen()
  }
}

const textOf = (error: unknown): string => {
  if (typeof error === "string") return error
  if (typeof error === "object" && error !== null) {
    const message = (error as { readonly message?: unknown }).message
    if (typeof message === "string" && message.length > 0) return message
    if (error instanceof Error && !("_tag" in error)) return error.name
  }
  return Inspectable.toStringUnknown(error, 0)
}

const isFatal = (error: unknown): error is Job.Fatal =>
  error instanceof Job.Fatal ||
  (typeof error === "object" && error !== null && (error as { readonly _tag?: unknown })._tag === "JobFatal")

const isShuttingDown = (state: WorkerState): boolean => state === "Stopping" || state === "Stopped"

const infoOf = (job: ClaimedJob): Job.JobInfo => ({
  id: job.id,
  name: job.name,
  queue: job.queue,
  attempt: job.attempt,
  maxAttempts: job.maxAttempts,
  priority: job.priority,
  key: job.key,
  enqueuedAt: job.enqueuedAt,
  runAt: job.runAt
})

const refOf = (job: ClaimedJob) => ({ id: job.id, name: job.name, queue: job.queue, attempt: job.attempt })

const currentKey = Job.Current.key

const randomHex = Effect.map(
  Effect.zip(Random.nextIntBetween(0, 0x10000), Random.nextIntBetween(0, 0x10000)),
  ([a, b]) => a.toString(16).padStart(4, "0") + b.toString(16).padStart(4, "0")
)

/** @internal */
export const make: <R>(
  options: Options<R>
) => Effect.Effect<JobWorker, never, Scope.Scope | JobStore | WorkerContext | Exclude<R, Job.Current>> = Effect
  .fnUntraced(function*<R>(options: Options<R>) {
    /** What the handlers need, but `Job.Current`: the worker provides it. */
    type Needs = Exclude<R, Job.Current>
    const resolved = resolve(options)
    if (resolved instanceof InvalidOption) {
      return yield* Effect.die(invalid(resolved.option, resolved.value, resolved.expected))
    }
    const { autoStart, concurrency, handlers, lease, pollInterval, prefetch, queues, reapInterval } = resolved
    const ctx = yield* WorkerContext
    const rawStore = yield* JobStore
    const clock: Clock.Clock = yield* Effect.clock
    const workerId = resolved.workerId ?? `${ctx.name}-${yield* randomHex}`
    const core = new Core()
    const scope = yield* Effect.scope
    const renewEvery = Duration.millis(Math.max(1, Duration.toMillis(lease) / 3))
    const renewEveryMillis = Duration.toMillis(renewEvery)
    const leaseMillis = Duration.toMillis(lease)
    /** How long before a lease lapses the worker stops a job it could not renew. */
    const fenceMargin = Math.min(leaseMillis / 10, 5_000)
    const claimBackoffCap = Math.min(Duration.toMillis(pollInterval), ackBackoffCap)
    /** The longest wait between two renewals while they fail. */
    const renewBackoffCap = Math.min(renewEveryMillis, ackBackoffCap)

    const timeoutLists = new Map<number, TimeoutList>()
    const entries = new Map<string, Entry>()
    for (const handler of handlers) {
      const timeout = handler.job.timeout
      let timeouts: TimeoutList | undefined
      if (Duration.isFinite(timeout)) {
        const timeoutMs = Duration.toMillis(timeout)
        timeouts = timeoutLists.get(timeoutMs)
        if (timeouts === undefined) {
          const message = `timed out after ${Duration.format(timeout)}`
          timeouts = new TimeoutList(timeoutMs, new JobTimeout({ message, timeoutMs }))
          timeoutLists.set(timeoutMs, timeouts)
        }
      }
      entries.set(handler.job.name, {
        handler,
        decode: Schema.decodeUnknown(handler.job.payload),
        trackOptions: { label: handler.job.name, whenPaused: "reject" },
        timeouts
      })
    }
    const names = Array.from(entries.keys())
    const served = new Set(queues)
    const queueMetrics = new Map<string, JobMetrics>()
    const metricsFor = (queue: string): JobMetrics => {
      let m = queueMetrics.get(queue)
      if (m === undefined) {
        m = registered(metrics(ctx.name, queue))
        queueMetrics.set(queue, m)
      }
      return m
    }
    for (const queue of queues) metricsFor(queue)

    // --- The store's health ------------------------------------------------------------------------------------

    const storeReady = ctx.setReady(storeCheck)
    /**
     * Tells the context's readiness how a store call ended: an answer (a `LeaseLost` too) makes the store ready, a
     * failure or a defect unready with its message. An interruption tells nothing.
     */
    const reported = <A, E>(operation: string, call: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.onExit(call, (exit) => {
        if (Exit.isSuccess(exit)) return storeReady
        const cause = exit.cause
        if (Cause.isInterruptedOnly(cause)) return Effect.void
        const failure = Cause.failureOption(cause)
        if (Option.isSome(failure)) {
          const error = failure.value
          if (error instanceof LeaseLost) return storeReady
          return ctx.setUnready(
            storeCheck,
            error instanceof JobStoreError ? error.message : `JobStore.${operation} failed: ${textOf(error)}`
          )
        }
        return ctx.setUnready(storeCheck, `JobStore.${operation} died: ${textOf(Cause.squash(cause))}`)
      })
    /**
     * The store, every call the worker makes reported to readiness; `renew` is reported with its timeout. Named
     * fields, not a spread: a store whose operations live on a prototype keeps them.
     */
    const store: Pick<
      typeof rawStore,
      "claim" | "renew" | "complete" | "retry" | "deadLetter" | "release" | "reap" | "wakeups"
    > = {
      renew: (leases, lease) => rawStore.renew(leases, lease),
      wakeups: rawStore.wakeups,
      claim: (request) => reported("claim", rawStore.claim(request)),
      complete: (lease) => reported("complete", rawStore.complete(lease)),
      retry: (lease, runAt, error) => reported("retry", rawStore.retry(lease, runAt, error)),
      deadLetter: (lease, error) => reported("deadLetter", rawStore.deadLetter(lease, error)),
      release: (lease, options) => reported("release", rawStore.release(lease, options)),
      reap: reported("reap", rawStore.reap)
    }

    const annotate = <A, E, Q>(effect: Effect.Effect<A, E, Q>) =>
      Effect.annotateLogs(effect, { worker: ctx.name, jobWorker: workerId })
    const warn = (message: string, cause?: Cause.Cause<unknown>): Effect.Effect<void> =>
      annotate(cause === undefined ? Effect.logWarning(message) : Effect.logWarning(message, cause))
    const emit = (value: JobEventType): Effect.Effect<void> => ctx.emit(WorkerEvent.Custom({ worker: ctx.name, value }))
    /** The services of the fiber that builds the worker, which the claim loop (the caller of `track`) inherits. */
    const claimerServices = (yield* Effect.context<never>()).unsafeMap

    // --- Acknowledgements -------------------------------------------------------------------------------------

    const lostLease = (held: Held): Effect.Effect<void> => {
      if (held.lost) return Effect.void
      core.lose(held)
      held.metrics.jobsLeaseLost.unsafeUpdate(1, [])
      return emit(JobEvent.JobLeaseLost(refOf(held.job)))
    }

    /**
     * Runs `op`, an acknowledgement of `held`, until the store takes it; then frees the slot and runs `after`
     * (prefetching, the slot is freed as it begins, and the lease let go once the store took it).
     * A `JobStoreError` is retried (100 ms doubling, capped at 5 s) until the context's shutdown deadline; then the
     * job stays leased in the store until its lease expires, and runs again (at least once). `LeaseLost` means the
     * outcome is void. The waits are not interruptible: a task that timed out is interrupted for good, and must
     * still wait between tries.
     */
    const acknowledge = (
      held: Held,
      op: Effect.Effect<void, JobStoreError | LeaseLost>,
      after: (held: Held) => Effect.Effect<void>,
      what: string
    ): Effect.Effect<void> => {
      // Prefetching, the slot goes to the next job while the store takes this outcome: the worker's pace is then
      // the handlers', not one acknowledgement round trip per slot.
      if (prefetch > 0) core.vacate(held)
      return Effect.matchCauseEffect(op, {
        onSuccess: () => {
          core.finish(held)
          return after(held)
        },
        onFailure: (cause) => ackFailed(held, op, after, what, cause, ackBackoffStart)
      })
    }

    /**
     * Waits `delay` ms, or until the shutdown deadline if it comes first. Not interruptible, and without a `race`
     * (which is interruptible even in an uninterruptible region): a task that timed out is interrupted for good, and
     * must still wait between tries. The sleep runs on a fiber of its own, which completes the wait.
     */
    const ackPause = (delay: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (core.pastDeadline) return Effect.void
        const woken = Deferred.unsafeMake<void>(FiberId.none)
        core.pauses.add(woken)
        return Effect.flatMap(
          Effect.forkIn(Effect.zipRight(Effect.sleep(Duration.millis(delay)), Deferred.succeed(woken, void 0)), scope),
          (sleeper) =>
            Effect.ensuring(
              Deferred.await(woken),
              Effect.sync(() => {
                core.pauses.delete(woken)
                sleeper.unsafeInterruptAsFork(FiberId.none)
              })
            )
        )
      })

    const ackFailed = (
      held: Held,
      op: Effect.Effect<void, JobStoreError | LeaseLost>,
      after: (held: Held) => Effect.Effect<void>,
      what: string,
      cause: Cause.Cause<JobStoreError | LeaseLost>,
      delay: number
    ): Effect.Effect<void> => {
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure) && failure.value instanceof LeaseLost) {
        core.finish(held)
        return lostLease(held)
      }
      if (Option.isNone(failure) || !(failure.value instanceof JobStoreError)) {
        core.finish(held)
        return warn(`JobStore.${what} of job ${held.job.id} died; the job stays leased until its lease expires`, cause)
      }
      if (core.pastDeadline) {
        core.finish(held)
        return warn(
          `JobStore.${what} of job ${held.job.id} failed at the shutdown deadline; ` +
            "the job stays leased until its lease expires, then runs again",
          cause
        )
      }
      return warn(`JobStore.${what} of job ${held.job.id} failed; trying again in ${delay} ms`, cause).pipe(
        Effect.zipRight(ackPause(delay)),
        Effect.zipRight(Effect.matchCauseEffect(op, {
          onSuccess: () => {
            core.finish(held)
            return after(held)
          },
          onFailure: (next) => ackFailed(held, op, after, what, next, Math.min(delay * 2, ackBackoffCap))
        }))
      )
    }

    const succeeded = (held: Held): Effect.Effect<void> => {
      held.metrics.jobsSucceeded.unsafeUpdate(1, [])
      return emit(JobEvent.JobSucceeded({ ...refOf(held.job), durationMs: held.durationMs }))
    }

    const retried = (held: Held): Effect.Effect<void> => {
      held.metrics.jobsRetried.unsafeUpdate(1, [])
      return emit(JobEvent.JobRetried({ ...refOf(held.job), delayMs: held.delayMs, error: held.error }))
    }

    const deadLettered = (held: Held): Effect.Effect<void> => {
      held.metrics.jobsDeadLettered.unsafeUpdate(1, [])
      return emit(JobEvent.JobDeadLettered({ ...refOf(held.job), error: held.error }))
    }

    const releasedRefunded = (held: Held): Effect.Effect<void> => {
      held.metrics.jobsReleased.unsafeUpdate(1, [])
      return emit(JobEvent.JobReleased({ ...refOf(held.job), refunded: true }))
    }

    const complete = (held: Held) => acknowledge(held, store.complete(held.job.lease), succeeded, "complete")

    const deadLetter = (held: Held, error: string) => {
      held.error = error
      return acknowledge(held, store.deadLetter(held.job.lease, error), deadLettered, "deadLetter")
    }

    /** Gives the job back, its attempt refunded: it is ready again at once. */
    const release = (held: Held) =>
      acknowledge(held, store.release(held.job.lease, { refund: true }), releasedRefunded, "release")

    const noDelay = Effect.succeed(Option.none<Duration.Duration>())

    /** The attempt failed: retry after the schedule's delay, or dead-letter when the schedule or attempts ended. */
    const attemptFailed = (held: Held, error: unknown, text: string): Effect.Effect<void> => {
      const job = held.job
      if (job.attempt >= job.maxAttempts) return deadLetter(held, text)
      return Job.retryDelay(held.entry.handler.job.retry, job.attempt, error).pipe(
        // A schedule that dies is a bug of its own: the job must still end somewhere.
        Effect.catchAllCause((cause) =>
          Effect.zipRight(warn(`the retry schedule of ${job.name} died`, cause), noDelay)
        ),
        Effect.flatMap((delay) => {
          if (Option.isNone(delay) || !Duration.isFinite(delay.value)) return deadLetter(held, text)
          const delayMs = Duration.toMillis(delay.value)
          held.error = text
          held.delayMs = delayMs
          const runAt = new Date(clock.unsafeCurrentTimeMillis() + delayMs)
          return acknowledge(held, store.retry(job.lease, runAt, text), retried, "retry")
        })
      )
    }

    const timedOut = (held: Held, error: JobTimeout): Effect.Effect<void> => {
      held.metrics.jobsTimedOut.unsafeUpdate(1, [])
      return Effect.zipRight(
        emit(JobEvent.JobTimedOut({ ...refOf(held.job), timeoutMs: error.timeoutMs })),
        attemptFailed(held, error, error.message)
      )
    }

    const failed = (held: Held, cause: Cause.Cause<unknown>): Effect.Effect<void> => {
      if (held.timedOut) return timedOut(held, held.entry.timeouts!.error)
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure)) {
        const error = failure.value
        if (held.undecodable) return deadLetter(held, textOf(error))
        if (isFatal(error)) return deadLetter(held, error.message)
        return attemptFailed(held, error, textOf(error))
      }
      const defect = Cause.dieOption(cause)
      if (Option.isSome(defect)) return attemptFailed(held, defect.value, textOf(defect.value))
      // Interrupted, and not for a lost lease nor a timeout: by the shutdown deadline (give the job back, attempt
      // refunded), or by someone else while the worker runs (an attempt that did not finish).
      return Effect.flatMap(
        ctx.state,
        (state) => isShuttingDown(state) ? release(held) : attemptFailed(held, "interrupted", "interrupted")
      )
    }

    /** The handler ended: acknowledge its outcome. Runs uninterruptibly, inside the job's task. */
    const settle = (held: Held, exit: Exit.Exit<void, unknown>): Effect.Effect<void, unknown> => {
      held.settling = true
      held.timeouts?.remove(held)
      if (held.startedAt >= 0) {
        const durationMs = clock.unsafeCurrentTimeMillis() - held.startedAt
        held.durationMs = durationMs
        held.metrics.jobDuration.unsafeUpdate(durationMs / 1000, [])
      }
      if (held.lost) {
        // A job stopped before its lease lapsed keeps its slot until it has: the store still counts the lease.
        if (held.fenced && held.expiresAt > clock.unsafeCurrentTimeMillis()) held.lapsing = true
        else core.finish(held)
        return exit
      }
      // The task ends as the attempt did, so task events and metrics tell failed attempts apart.
      return Effect.zipRight(exit._tag === "Success" ? complete(held) : failed(held, exit.cause), exit)
    }

    /**
     * Runs the handler with `Job.Current` in its context. The task's fiber is the job's for its whole life, so
     * `Job.Current` goes into the task's own context once, not around the handler: `provideService` sets and restores
     * the fiber's context, and cost more than the rest of a job's path together.
     *
     * `track` gives every task a context of its own (a copy of the caller's services with the task's owner and span),
     * so `Job.Current` is written into that copy. Should a task ever get a context that is not its own (it would
     * then already hold a `Job.Current`, or be the claim loop's), the context is replaced instead, copy on write.
     */
    const withCurrent = (job: ClaimedJob, handler: Effect.Effect<void, unknown, Needs>) =>
      Effect.withFiberRuntime<void, unknown, Needs>((fiber) => {
        const services = fiber.currentContext.unsafeMap as Map<string, unknown>
        if (services.has(currentKey) || services === claimerServices) {
          return Effect.zipRight(
            FiberRef.update(
              FiberRef.currentContext,
              (context) => Context.add(context, Job.Current, infoOf(job)) as Context.Context<never>
            ),
            handler
          )
        }
        services.set(currentKey, infoOf(job))
        return handler
      })

    const runHandler = (held: Held, payload: unknown): Effect.Effect<void, unknown, Needs> => {
      const job = held.job
      const entry = held.entry
      const now = clock.unsafeCurrentTimeMillis()
      held.startedAt = now
      held.metrics.jobWait.unsafeUpdate(Math.max(0, now - job.runAt.getTime()) / 1000, [])
      entry.timeouts?.add(held, now)
      return withCurrent(job, entry.handler.run(payload) as Effect.Effect<void, unknown, Needs>)
    }

    /** The attempt: decode, then the handler. */
    const attempt = (held: Held): Effect.Effect<void, unknown, Needs> => {
      if (held.lost) return Effect.interrupt
      const previous = held.previous
      if (previous !== undefined) {
        held.previous = undefined
        // Never two attempts of one job at once, even when the first one's lease is already gone.
        if (!previous.done && previous.fiber !== undefined) {
          return Effect.zipRight(Fiber.await(previous.fiber), Effect.suspend(() => attempt(held)))
        }
      }
      const decoded = held.entry.decode(held.job.payload)
      // A schema without asynchronous parts decodes to an `Either` (an Effect too): no continuation needed.
      if (Either.isEither(decoded)) {
        if (Either.isRight(decoded)) return runHandler(held, decoded.right)
        held.undecodable = true
        return decoded
      }
      return Effect.matchEffect(decoded, {
        onFailure: (error) => {
          held.undecodable = true
          return Effect.fail(error)
        },
        onSuccess: (payload) => runHandler(held, payload)
      })
    }

    /** A job's task: the attempt (interruptible), then its acknowledgement (not). */
    const runJob = (held: Held): Effect.Effect<void, unknown, Needs> =>
      Effect.uninterruptibleMask((restore) => {
        held.begun = true
        // The attempt is made inside `restore`, so that whatever it throws (a handler's `run`, a schema's
        // transformation) is a defect of the attempt, and the job is still settled.
        return Effect.flatMap(Effect.exit(restore(Effect.suspend(() => attempt(held)))), (exit) => settle(held, exit))
      })

    /**
     * Interrupts the task of `held` if it has begun. One that has not begun is left alone: it sees `lost` or
     * `timedOut` when it begins. (A task interrupted before it begins never runs its settle at all.)
     */
    const interruptTask = (held: Held, by: FiberId.FiberId): void => {
      if (held.begun && !held.settling) held.fiber?.unsafeInterruptAsFork(by)
    }

    // --- Claiming ---------------------------------------------------------------------------------------------

    const claimed = (held: Held): Effect.Effect<void> => {
      held.metrics.jobsClaimed.unsafeUpdate(1, [])
      const job = held.job
      return emit(JobEvent.JobClaimed({ id: job.id, name: job.name, queue: job.queue, attempt: job.attempt }))
    }

    /**
     * Publishes `JobClaimed` for each job and tracks it, in order. One pair of continuations serves the whole batch
     * (the loop's position is in `next`), so tracking a job allocates nothing but its task.
     */
    const startAll = (taken: ReadonlyArray<Held>, announce: boolean): Effect.Effect<void, never, Needs> => {
      let next = 0
      const step = (): Effect.Effect<void, never, Needs> => {
        if (next === taken.length) return Effect.void
        const held = taken[next]!
        const track = Effect.flatMap(Effect.either(ctx.track(runJob(held), held.entry.trackOptions)), tracked)
        return announce ? Effect.zipRight(claimed(held), track) : track
      }
      const tracked = (
        result: Either.Either<Tracked<void, unknown>, TaskRejected>
      ): Effect.Effect<void, never, Needs> => {
        const held = taken[next++]!
        if (Either.isRight(result)) {
          held.fiber = result.right.fiber
          return step()
        }
        // Paused or stopping since the claim: give the job back, as if it had not been claimed, and claim again
        // only at the next poll or resume (the release wakes the worker, which would claim it again at once).
        core.claimBlocked = true
        return Effect.zipRight(release(held), step())
      }
      return step()
    }

    /**
     * A store that returns a job of a name the worker did not ask for gets it back, and no claim until the next
     * poll: its release wakes the worker, which would claim it again at once, for ever.
     */
    const unknownJob = (job: ClaimedJob): Effect.Effect<void> => {
      core.claimBlocked = true
      return warn(`claimed job ${job.id} of ${job.name}, which this worker has no handler for: releasing it`).pipe(
        Effect.zipRight(Effect.ignore(store.release(job.lease, { refund: true })))
      )
    }

    /** Publishes the loss of these leases and interrupts their tasks. */
    const interruptLost = (lost: ReadonlyArray<Held>): Effect.Effect<void> =>
      Effect.flatMap(Effect.fiberId, (by) =>
        Effect.forEach(lost, (held) =>
          held.lost ? Effect.void : Effect.zipRight(
            lostLease(held),
            // A task whose handler has ended is acknowledging: it is not interrupted (that part is uninterruptible
            // anyway), and its acknowledgement fails with `LeaseLost`.
            Effect.sync(() => interruptTask(held, by))
          ), { discard: true }))

    /** Gives back, attempt refunded, every job claimed ahead that still waits for a slot. */
    const releaseQueued: Effect.Effect<void> = Effect.suspend(() => {
      if (core.waiting === 0) return Effect.void
      const giving: Array<Held> = []
      for (let held = core.nextQueued(false); held !== undefined; held = core.nextQueued(false)) giving.push(held)
      return Effect.forEach(giving, release, { discard: true })
    })

    /** What to do with the jobs a claim returned: start them, in order, if the context is still `Running`. */
    const afterClaim = (
      jobs: ReadonlyArray<ClaimedJob>,
      limit: number,
      sentAt: number
    ): Effect.Effect<void, never, Needs> => {
      if (jobs.length === 0) return Effect.void
      if (jobs.length >= limit) core.dirty = true
      const taken: Array<Held> = []
      let ahead: Array<Held> | undefined
      let unknown: Array<ClaimedJob> | undefined
      let superseded: Array<Held> | undefined
      for (const job of jobs) {
        const entry = entries.get(job.name)
        if (entry === undefined) {
          ;(unknown ??= []).push(job)
          continue
        }
        const held = new Held(job, entry, metricsFor(job.queue), sentAt + leaseMillis)
        const previous = core.live.get(job.id)
        if (previous !== undefined) {
          // The store gave out a job this worker still runs: that claim's lease is gone.
          held.previous = previous
          ;(superseded ??= []).push(previous)
        }
        if (core.inFlight < concurrency) {
          core.take(held)
          taken.push(held)
        } else {
          core.hold(held)
          ;(ahead ??= []).push(held)
        }
      }
      const before = superseded === undefined ? Effect.void : interruptLost(superseded)
      const announceAhead = ahead === undefined ? Effect.void : Effect.forEach(ahead, claimed, { discard: true })
      // The state is read again now that the claim has returned: shutdown or a pause may have begun meanwhile.
      const then = Effect.flatMap(ctx.state, (state) => {
        if (state === "Running") return Effect.zipRight(startAll(taken, true), announceAhead)
        core.claimBlocked = true
        return Effect.zipRight(
          Effect.forEach(taken, (held) => Effect.zipRight(claimed(held), release(held)), { discard: true }),
          Effect.zipRight(announceAhead, releaseQueued)
        )
      })
      return Effect.zipRight(
        unknown === undefined
          ? before
          : Effect.zipRight(Effect.forEach(unknown, unknownJob, { discard: true }), before),
        then
      )
    }

    /**
     * The claim failed: claim again after the back-off (100 ms, doubling, at most `min(pollInterval, 5 s)`), not at
     * the next poll, which may be a minute away. The timer runs on a fiber of the layer's scope.
     */
    const claimFailed = (cause: Cause.Cause<JobStoreError>): Effect.Effect<void> => {
      const delay = core.claimFailed(claimBackoffCap)
      return Effect.zipRight(
        warn(`JobStore.claim failed; claiming again in ${delay} ms`, cause),
        Effect.asVoid(Effect.forkIn(
          Effect.interruptible(
            Effect.zipRight(Effect.sleep(Duration.millis(delay)), Effect.sync(() => core.claimRetry()))
          ),
          scope
        ))
      )
    }

    /**
     * Claims for the free slots until there is nothing to do. The state is read right before each claim, in the
     * same run of the fiber as the call to the store, so no claim begins once shutdown (or a pause) has: the step
     * that begins shutdown makes every later round end here.
     */
    const claimRound: Effect.Effect<void, never, Needs> = Effect.flatMap(ctx.state, (state) => {
      if (isShuttingDown(state)) {
        core.ended = true
        return releaseQueued
      }
      // Paused (or not started): the jobs claimed ahead go back, so that other workers can run them meanwhile.
      if (state !== "Running") return releaseQueued
      if (core.waiting > 0 && core.inFlight < concurrency) {
        const starting: Array<Held> = []
        while (core.inFlight < concurrency) {
          const held = core.nextQueued(true)
          if (held === undefined) break
          starting.push(held)
        }
        return Effect.zipRight(startAll(starting, false), Effect.suspend(() => claimRound))
      }
      // At most `concurrency + prefetch` leases at once: running, waiting, or being acknowledged.
      const limit = concurrency - core.inFlight + prefetch - core.waiting - core.acking
      if (!core.dirty || core.claimBlocked || core.claimBackoff || limit <= 0) return Effect.void
      // Prefetching, claim in batches: not for every freed slot while at least half the prefetch still waits.
      if (core.waiting > 0 && limit < Math.ceil(prefetch / 2)) return Effect.void
      core.dirty = false
      const request: ClaimRequest = { queues, names, limit, lease, worker: workerId }
      const sentAt = clock.unsafeCurrentTimeMillis()
      return Effect.zipRight(
        Effect.matchCauseEffect(store.claim(request), {
          onFailure: claimFailed,
          onSuccess: (jobs) => {
            core.claimDelay = 0
            return afterClaim(jobs, limit, sentAt)
          }
        }),
        Effect.suspend(() => claimRound)
      )
    })

    // Each round runs uninterruptibly: a claimed job is started or released, even when the layer closes right then.
    const claimLoop: Effect.Effect<void, never, Needs> = Effect.flatMap(core.wake.await, () => {
      core.wake.unsafeClose()
      return Effect.flatMap(Effect.uninterruptible(claimRound), () => core.ended ? Effect.void : claimLoop)
    })

    // --- Timeouts, leases, reaping, polling ---------------------------------------------------------------------

    const watchTimeouts = (list: TimeoutList, by: FiberId.FiberId): Effect.Effect<void> =>
      Effect.suspend(() => {
        const first = list.head
        if (first === undefined) {
          list.added.unsafeClose()
          return Effect.zipRight(list.added.await, watchTimeouts(list, by))
        }
        const left = first.deadline - clock.unsafeCurrentTimeMillis()
        if (left > 0) return Effect.zipRight(Effect.sleep(Duration.millis(left)), watchTimeouts(list, by))
        list.remove(first)
        first.timedOut = true
        interruptTask(first, by)
        return watchTimeouts(list, by)
      })

    const renewed = (sent: ReadonlyArray<Held>, lostIds: ReadonlyArray<string>) => {
      if (lostIds.length === 0) return Effect.void
      const byId = new Map(sent.map((held) => [held.job.id, held]))
      const lost: Array<Held> = []
      for (const id of lostIds) {
        const held = byId.get(id)
        // Only the claim this renewal was for, still live and still running: a job that is being acknowledged
        // learns about its lease from the acknowledgement.
        if (held === undefined || held.done || held.settling || held.lost || core.live.get(id) !== held) continue
        lost.push(held)
      }
      return lost.length === 0 ? Effect.void : interruptLost(lost)
    }

    /**
     * The renewal failed: every job whose lease may lapse before the next try is stopped now, as if its lease were
     * lost (once it has lapsed, another worker may claim the job, and the two must never run at once). The next try
     * comes after the back-off, or just before the next lease would have to be stopped, whichever is first.
     */
    const renewFailed = (
      sent: ReadonlyArray<Held>,
      cause: Cause.Cause<unknown>,
      backoff: number
    ): Effect.Effect<void> => {
      const now = clock.unsafeCurrentTimeMillis()
      const fenced: Array<Held> = []
      let earliest = Infinity
      for (const held of core.live.values()) {
        // A job being acknowledged is left to its acknowledgement, which tells whether its lease still held.
        if (held.settling) continue
        if (held.expiresAt - now <= fenceMargin) fenced.push(held)
        else earliest = Math.min(earliest, held.expiresAt)
      }
      // And when the first stopped job's lease lapses, to free its slot then.
      let lapse = Infinity
      for (const held of fenced) lapse = Math.min(lapse, held.expiresAt)
      const wait = Math.max(1, Math.min(backoff, earliest - fenceMargin - now, lapse - now))
      for (const held of fenced) held.fenced = true
      return warn(
        `JobStore.renew of ${sent.length} lease(s) failed; ` +
          (fenced.length > 0 ? `stopping ${fenced.length} job(s) before their lease lapses; ` : "") +
          `trying again in ${wait} ms`,
        cause
      ).pipe(
        Effect.zipRight(fenced.length === 0 ? Effect.void : interruptLost(fenced)),
        Effect.zipRight(renewLoop(Duration.millis(wait), Math.min(backoff * 2, renewBackoffCap)))
      )
    }

    const renewTimeout = (): JobStoreError =>
      new JobStoreError({ operation: "renew", reason: `no answer within ${Duration.format(renewEvery)}` })

    const renewLoop = (wait: Duration.Duration, backoff: number): Effect.Effect<void> =>
      Effect.zipRight(
        Effect.sleep(wait),
        Effect.suspend(() => {
          const sentAt = clock.unsafeCurrentTimeMillis()
          const lapse = core.freeLapsed(sentAt)
          if (core.live.size === 0) {
            return renewLoop(Duration.millis(Math.max(1, Math.min(renewEveryMillis, lapse - sentAt))), ackBackoffStart)
          }
          const sent = Array.from(core.live.values())
          // A renewal that hangs must not leave the leases to lapse unnoticed: it fails after one period.
          const renewal = reported(
            "renew",
            Effect.timeoutFail(store.renew(sent.map((held) => held.job.lease), lease), {
              duration: renewEvery,
              onTimeout: renewTimeout
            })
          )
          return Effect.matchCauseEffect(renewal, {
            onSuccess: (lostIds) => {
              for (const held of sent) held.expiresAt = sentAt + leaseMillis
              return Effect.zipRight(renewed(sent, lostIds), renewLoop(renewEvery, ackBackoffStart))
            },
            onFailure: (cause) => renewFailed(sent, cause, backoff)
          })
        })
      )

    const reapLoop: Effect.Effect<void> = Effect.zipRight(
      Effect.sleep(reapInterval),
      Effect.zipRight(
        Effect.catchAllCause(store.reap, (cause) => warn("JobStore.reap failed; reaping again later", cause)),
        Effect.suspend(() => reapLoop)
      )
    )

    const pollLoop: Effect.Effect<void> = Effect.zipRight(
      Effect.sleep(pollInterval),
      Effect.zipRight(Effect.sync(() => core.poll()), Effect.suspend(() => pollLoop))
    )

    /**
     * Claims when the store says one of the worker's queues got a job. A wake-up stream that fails (its connection
     * dropped, say) is subscribed to again after the store calls' back-off, reset by the next wake-up received; the
     * poll goes on meanwhile. One that ends without a failure leaves the worker to its poll.
     */
    let wakeupDelay = ackBackoffStart
    const wakeupListener: Effect.Effect<void> = Stream.runForEach(store.wakeups, (queue) => {
      wakeupDelay = ackBackoffStart
      return served.has(queue) ? Effect.sync(() => core.trigger()) : Effect.void
    }).pipe(Effect.catchAllCause((cause) => {
      const delay = wakeupDelay
      wakeupDelay = Math.min(delay * 2, ackBackoffCap)
      return warn(`the store's wake-ups failed; listening again in ${delay} ms, polling meanwhile`, cause).pipe(
        Effect.zipRight(Effect.sleep(Duration.millis(delay))),
        Effect.zipRight(Effect.suspend(() => wakeupListener))
      )
    }))

    const shutdownTimeout = ctx.options.shutdownTimeout
    const deadline: Effect.Effect<void> = Effect.zipRight(
      ctx.shutdownRequested,
      Duration.isFinite(shutdownTimeout)
        ? Effect.zipRight(
          Effect.sleep(shutdownTimeout),
          Effect.sync(() => core.deadline())
        )
        : Effect.void
    )

    /**
     * Gives back the jobs whose task ended without settling them: only a task interrupted before it began (cut off
     * at a deadline that came right after its admission). Run once the context is Stopped.
     */
    const sweep: Effect.Effect<void> = Effect.suspend(() => {
      if (core.waiting > 0) return Effect.zipRight(releaseQueued, sweep)
      const orphans = [...core.live.values(), ...core.lost].filter((held) =>
        !held.settling && held.fiber !== undefined && held.fiber.unsafePoll() !== null
      )
      return Effect.forEach(orphans, (held) => {
        held.settling = true
        if (!held.lost) return release(held)
        core.finish(held)
        return Effect.void
      }, { discard: true })
    })

    const background = (effect: Effect.Effect<void>) => Effect.forkScoped(Effect.interruptible(effect))

    const watchers: Array<Fiber.RuntimeFiber<void>> = []
    for (const list of timeoutLists.values()) {
      watchers.push(yield* background(Effect.flatMap(Effect.fiberId, (by) => watchTimeouts(list, by))))
    }
    const wakeups = yield* background(wakeupListener)
    const poller = yield* background(pollLoop)
    const reaper = yield* background(reapLoop)
    const renewer = yield* background(renewLoop(renewEvery, ackBackoffStart))
    const deadliner = yield* background(deadline)
    const claimer = yield* Effect.forkScoped(Effect.interruptible(claimLoop))
    // Running: claim. Stopping: the claim loop sees it and ends. Stopped: every job is done, given back or left to
    // its lease (an acknowledgement cut off at the deadline), so nothing is left to renew, reap, time or claim.
    yield* background(Stream.runForEach(ctx.stateChanges, (state) =>
      state === "Stopped"
        ? Effect.zipRight(
          Effect.sync(() => {
            core.deadline()
            // Nothing is claimed any more: the slots of stopped jobs waiting for their lease to lapse are free.
            core.freeLapsed(Infinity)
          }),
          Effect.zipRight(sweep, Fiber.interruptAll([wakeups, poller, reaper, renewer, deadliner, ...watchers]))
        )
        : Effect.sync(() => {
          if (state === "Running" || state === "Stopping") core.poll()
          // Paused: the claim loop gives back the jobs claimed ahead.
          else if (state === "Paused" && core.waiting > 0) core.wake.unsafeOpen()
        })))

    // Added after the fibers, so it runs before their finalizers: the context drains (its jobs acknowledged, its
    // leases renewed meanwhile) before the renewer stops, and the claim loop finishes the round it is in.
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        ctx.stop,
        Effect.suspend(() => {
          core.deadline()
          return Effect.zipRight(Fiber.interrupt(claimer), sweep)
        })
      )
    )

    if (autoStart) {
      yield* Effect.catchTag(
        ctx.start,
        "WorkerStateError",
        (error) => annotate(Effect.logDebug(`JobWorker: not starting the context: ${error.message}`))
      )
    }

    return {
      workerId,
      concurrency,
      queues,
      leased: Effect.sync(() => core.live.size),
      inFlight: Effect.sync(() => core.inFlight)
    } satisfies JobWorker
  })
