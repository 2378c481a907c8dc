import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
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
import { WorkerContext, type WorkerState } from "../WorkerContext.js"
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
  return { handlers, concurrency, lease, pollInterval, reapInterval, autoStart, queues, workerId }
}

// -----------------------------------------------------------------------------------------------------------------
// Running jobs
// -----------------------------------------------------------------------------------------------------------------

/** The failure of an attempt that ran past its job type's timeout. */
class JobTimeout extends Data.TaggedError("JobTimeout")<{ readonly message: string; readonly timeoutMs: number }> {}

/** What the worker knows about one job type, computed once. */
interface Entry {
  readonly handler: Job.JobHandler<any>
  readonly decode: (payload: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
  readonly trackOptions: { readonly label: string; readonly whenPaused: "reject" }
  /** `undefined` for `Duration.infinity`. */
  readonly timeout: Duration.Duration | undefined
  readonly timeoutError: () => JobTimeout
}

/**
 * One claimed job, from its claim until its outcome is acknowledged, it is given back, or (its lease lost) its task
 * has ended. Its presence in `Core.slots` is its slot.
 */
class Held {
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  /**
   * This worker's earlier claim of the same job, when the store gave the job out again while that one's task still
   * ran (its lease expired unrenewed, say): this attempt starts once that task has ended.
   */
  previous: Held | undefined = undefined
  /** The lease no longer holds: the outcome is discarded, nothing is acknowledged. */
  lost = false
  /** The handler ended and its outcome is being acknowledged: the acknowledgement, not the renewer, tells a loss. */
  settling = false
  /** Out of `Core.slots`: the slot is free. */
  done = false
  /** The payload did not decode: the attempt's failure is the `ParseError`. */
  undecodable = false
  startedAt = -1
  durationMs = 0
  delayMs = 0
  error = ""
  constructor(readonly job: ClaimedJob, readonly entry: Entry, readonly metrics: JobMetrics) {}
}

/** The worker's mutable state. Every method is synchronous: one atomic step, as in `WorkerCore`. */
class Core {
  /** The jobs that take a slot: never more than `concurrency`. */
  readonly slots = new Set<Held>()
  /** By job id, the claims whose lease the worker believes holds: what the renewer renews. */
  readonly live = new Map<string, Held>()
  /** There may be claimable jobs: set by wake-ups, polls, resumes and claims that filled every slot. */
  dirty = false
  /** A claim failed: the next one waits for the poll, whatever wakes the loop before it. */
  claimBlocked = false
  /** The context left `Running` for good: the claim loop has ended. */
  ended = false
  /** Opened to wake the claim loop; the loop closes it before it looks at what to do. */
  readonly wake = Effect.unsafeMakeLatch(false)

  constructor(readonly concurrency: number) {}

  trigger(): void {
    this.dirty = true
    if (!this.claimBlocked) this.wake.unsafeOpen()
  }

  poll(): void {
    this.claimBlocked = false
    this.trigger()
  }

  /** The lease no longer holds (the store said so, or gave the job out again). */
  lose(held: Held): void {
    held.lost = true
    if (this.live.get(held.job.id) === held) this.live.delete(held.job.id)
  }

  finish(held: Held): void {
    if (held.done) return
    held.done = true
    this.slots.delete(held)
    if (this.live.get(held.job.id) === held) this.live.delete(held.job.id)
    // A slot frees up: claim at once only if there may be more jobs (the last claim filled every slot, or a wake-up
    // came in while the slots were full).
    if (this.dirty && !this.claimBlocked) this.wake.unsafeOpen()
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

const ackBackoffStart = 100
const ackBackoffCap = 5_000

const randomHex = Effect.map(
  Effect.zip(Random.nextIntBetween(0, 0x10000), Random.nextIntBetween(0, 0x10000)),
  ([a, b]) => a.toString(16).padStart(4, "0") + b.toString(16).padStart(4, "0")
)

/** @internal */
export const make = <R>(
  options: Options<R>
): Effect.Effect<JobWorker, never, Scope.Scope | JobStore | WorkerContext | Exclude<R, Job.Current>> =>
  Effect.gen(function*() {
    /** What the handlers need, but `Job.Current`: the worker provides it. */
    type Needs = Exclude<R, Job.Current>
    const resolved = resolve(options)
    if (resolved instanceof InvalidOption) {
      return yield* Effect.die(invalid(resolved.option, resolved.value, resolved.expected))
    }
    const { autoStart, concurrency, handlers, lease, pollInterval, queues, reapInterval } = resolved
    const ctx = yield* WorkerContext
    const store = yield* JobStore
    const clock: Clock.Clock = yield* Effect.clock
    const workerId = resolved.workerId ?? `${ctx.name}-${yield* randomHex}`
    const core = new Core(concurrency)
    const renewEvery = Duration.millis(Math.max(1, Duration.toMillis(lease) / 3))
    const renewEveryMillis = Duration.toMillis(renewEvery)

    const entries = new Map<string, Entry>()
    for (const handler of handlers) {
      const timeout = Duration.isFinite(handler.job.timeout) ? handler.job.timeout : undefined
      const message = `timed out after ${Duration.format(handler.job.timeout)}`
      const timeoutMs = Duration.toMillis(handler.job.timeout)
      entries.set(handler.job.name, {
        handler,
        decode: Schema.decodeUnknown(handler.job.payload),
        trackOptions: { label: handler.job.name, whenPaused: "reject" },
        timeout,
        timeoutError: () => new JobTimeout({ message, timeoutMs })
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

    const annotate = <A, E, Q>(effect: Effect.Effect<A, E, Q>) =>
      Effect.annotateLogs(effect, { worker: ctx.name, jobWorker: workerId })
    const warn = (message: string, cause?: Cause.Cause<unknown>): Effect.Effect<void> =>
      annotate(cause === undefined ? Effect.logWarning(message) : Effect.logWarning(message, cause))
    const emit = (value: JobEventType): Effect.Effect<void> => ctx.emit(WorkerEvent.Custom({ worker: ctx.name, value }))

    // Background releases of jobs whose task ended without settling them (interrupted before it began).
    const orphans = yield* FiberSet.make<void>()
    const runOrphan = yield* FiberSet.runtime(orphans)<never>()

    // --- Acknowledgements -------------------------------------------------------------------------------------

    const lostLease = (held: Held): Effect.Effect<void> => {
      if (held.lost) return Effect.void
      core.lose(held)
      held.metrics.jobsLeaseLost.unsafeUpdate(1, [])
      return emit(JobEvent.JobLeaseLost(refOf(held.job)))
    }

    /**
     * Runs `op`, an acknowledgement of `held`, until the store takes it; then frees the slot and runs `after`.
     * A `JobStoreError` is retried (100 ms doubling, capped at 5 s); each attempt runs uninterruptibly and only the
     * wait in between can be interrupted, so the shutdown deadline ends the retries (the job then stays leased in
     * the store until its lease expires, and runs again: at least once). `LeaseLost` means the outcome is void.
     */
    const acknowledge = (
      held: Held,
      op: Effect.Effect<void, JobStoreError | LeaseLost>,
      after: (held: Held) => Effect.Effect<void>,
      what: string
    ): Effect.Effect<void> =>
      Effect.matchCauseEffect(op, {
        onSuccess: () => {
          core.finish(held)
          return after(held)
        },
        onFailure: (cause) => ackFailed(held, op, after, what, cause, ackBackoffStart)
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
      return warn(`JobStore.${what} of job ${held.job.id} failed; trying again in ${delay} ms`, cause).pipe(
        Effect.zipRight(Effect.interruptible(Effect.sleep(Duration.millis(delay)))),
        Effect.zipRight(Effect.matchCauseEffect(op, {
          onSuccess: () => {
            core.finish(held)
            return after(held)
          },
          onFailure: (next) => ackFailed(held, op, after, what, next, Math.min(delay * 2, ackBackoffCap))
        })),
        Effect.onInterrupt(() => {
          if (held.done) return Effect.void
          core.finish(held)
          return warn(
            `gave up JobStore.${what} of job ${held.job.id} at the shutdown deadline; ` +
              "the job stays leased until its lease expires, then runs again"
          )
        })
      )
    }

    const succeeded = (held: Held): Effect.Effect<void> => {
      held.metrics.jobsSucceeded.unsafeUpdate(1, [])
      const job = held.job
      return emit(JobEvent.JobSucceeded({
        id: job.id,
        name: job.name,
        queue: job.queue,
        attempt: job.attempt,
        durationMs: held.durationMs
      }))
    }

    const retried = (held: Held): Effect.Effect<void> => {
      held.metrics.jobsRetried.unsafeUpdate(1, [])
      const job = held.job
      return emit(JobEvent.JobRetried({
        id: job.id,
        name: job.name,
        queue: job.queue,
        attempt: job.attempt,
        delayMs: held.delayMs,
        error: held.error
      }))
    }

    const deadLettered = (held: Held): Effect.Effect<void> => {
      held.metrics.jobsDeadLettered.unsafeUpdate(1, [])
      const job = held.job
      return emit(JobEvent.JobDeadLettered({
        id: job.id,
        name: job.name,
        queue: job.queue,
        attempt: job.attempt,
        error: held.error
      }))
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

    const failed = (held: Held, cause: Cause.Cause<unknown>): Effect.Effect<void> => {
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure)) {
        const error = failure.value
        if (held.undecodable) return deadLetter(held, textOf(error))
        if (isFatal(error)) return deadLetter(held, error.message)
        if (error instanceof JobTimeout) {
          held.metrics.jobsTimedOut.unsafeUpdate(1, [])
          return Effect.zipRight(
            emit(JobEvent.JobTimedOut({ ...refOf(held.job), timeoutMs: error.timeoutMs })),
            attemptFailed(held, error, error.message)
          )
        }
        return attemptFailed(held, error, textOf(error))
      }
      const defect = Cause.dieOption(cause)
      if (Option.isSome(defect)) return attemptFailed(held, defect.value, textOf(defect.value))
      // Interrupted, and not for a lost lease: by the shutdown deadline (give the job back, attempt refunded), or
      // by someone else while the worker runs (an attempt that did not finish).
      return Effect.flatMap(
        ctx.state,
        (state) => isShuttingDown(state) ? release(held) : attemptFailed(held, "interrupted", "interrupted")
      )
    }

    /** The handler ended: acknowledge its outcome. Runs uninterruptibly, inside the job's task. */
    const settle = (held: Held, exit: Exit.Exit<void, unknown>): Effect.Effect<void, unknown> => {
      held.settling = true
      if (held.startedAt >= 0) {
        const durationMs = clock.unsafeCurrentTimeMillis() - held.startedAt
        held.durationMs = durationMs
        held.metrics.jobDuration.unsafeUpdate(durationMs / 1000, [])
      }
      if (held.lost) {
        core.finish(held)
        return exit
      }
      // The task ends as the attempt did, so task events and metrics tell failed attempts apart.
      return Effect.zipRight(exit._tag === "Success" ? complete(held) : failed(held, exit.cause), exit)
    }

    /** The attempt: decode, then the handler with `Job.Current`, under the job type's timeout. */
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
      const job = held.job
      const entry = held.entry
      const now = clock.unsafeCurrentTimeMillis()
      held.startedAt = now
      held.metrics.jobWait.unsafeUpdate(Math.max(0, now - job.runAt.getTime()) / 1000, [])
      return Effect.matchEffect(entry.decode(job.payload), {
        onFailure: (error) => {
          held.undecodable = true
          return Effect.fail(error)
        },
        onSuccess: (payload) => {
          const run = Effect.provideService(
            entry.handler.run(payload) as Effect.Effect<void, unknown, R>,
            Job.Current,
            infoOf(job)
          )
          return entry.timeout === undefined
            ? run
            : Effect.timeoutFail(run, { duration: entry.timeout, onTimeout: entry.timeoutError })
        }
      })
    }

    /** A job's task: the attempt (interruptible), then its acknowledgement (not). */
    const runJob = (held: Held): Effect.Effect<void, unknown, Needs> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.exit(restore(Effect.suspend(() => attempt(held)))), (exit) => settle(held, exit))
      )

    /** The task ended without settling its job: it was interrupted before it began (at the deadline, say). */
    const orphaned = (held: Held): void => {
      if (held.settling || held.done) return
      held.settling = true
      if (held.lost) core.finish(held)
      else runOrphan(release(held))
    }

    // --- Claiming ---------------------------------------------------------------------------------------------

    const start = (held: Held): Effect.Effect<void, never, Needs> =>
      Effect.matchEffect(ctx.track(runJob(held), held.entry.trackOptions), {
        // Paused or stopping since the claim: give the job back, as if it had not been claimed.
        onFailure: () => release(held),
        onSuccess: (task) => {
          const fiber = task.fiber
          held.fiber = fiber
          fiber.addObserver(() => orphaned(held))
          // The lease was lost before the task was tracked: the task sees it and ends at once.
          return Effect.void
        }
      })

    const claimed = (held: Held): Effect.Effect<void> => {
      held.metrics.jobsClaimed.unsafeUpdate(1, [])
      return emit(JobEvent.JobClaimed(refOf(held.job)))
    }

    const unknownJob = (job: ClaimedJob): Effect.Effect<void> =>
      warn(`claimed job ${job.id} of ${job.name}, which this worker has no handler for: releasing it`).pipe(
        Effect.zipRight(Effect.ignore(store.release(job.lease, { refund: true })))
      )

    /** What to do with the jobs a claim returned: start them, in order, if the context is still `Running`. */
    const afterClaim = (jobs: ReadonlyArray<ClaimedJob>, limit: number): Effect.Effect<void, never, Needs> => {
      if (jobs.length === 0) return Effect.void
      if (jobs.length >= limit) core.dirty = true
      const taken: Array<Held> = []
      let unknown: Array<ClaimedJob> | undefined
      let superseded: Array<Held> | undefined
      for (const job of jobs) {
        const entry = entries.get(job.name)
        if (entry === undefined) {
          ;(unknown ??= []).push(job)
          continue
        }
        const held = new Held(job, entry, metricsFor(job.queue))
        const previous = core.live.get(job.id)
        if (previous !== undefined) {
          // The store gave out a job this worker still runs: that claim's lease is gone.
          held.previous = previous
          ;(superseded ??= []).push(previous)
        }
        core.slots.add(held)
        core.live.set(job.id, held)
        taken.push(held)
      }
      const before = unknown === undefined
        ? superseded === undefined ? Effect.void : interruptLost(superseded)
        : Effect.zipRight(
          Effect.forEach(unknown, unknownJob, { discard: true }),
          superseded === undefined ? Effect.void : interruptLost(superseded)
        )
      // The state is read again now that the claim has returned: shutdown or a pause may have begun meanwhile.
      return Effect.zipRight(
        before,
        Effect.flatMap(ctx.state, (state) =>
          state === "Running"
            ? Effect.forEach(taken, (held) => Effect.zipRight(claimed(held), start(held)), { discard: true })
            : Effect.forEach(taken, (held) => Effect.zipRight(claimed(held), release(held)), { discard: true }))
      )
    }

    const claimFailed = (cause: Cause.Cause<JobStoreError>): Effect.Effect<void> => {
      core.claimBlocked = true
      core.dirty = true
      return warn("JobStore.claim failed; claiming again at the next poll", cause)
    }

    /**
     * Claims for the free slots until there is nothing to do. The state is read right before each claim, in the
     * same run of the fiber as the call to the store, so no claim begins once shutdown (or a pause) has: the step
     * that begins shutdown makes every later round end here.
     */
    const claimRound: Effect.Effect<void, never, Needs> = Effect.flatMap(ctx.state, (state) => {
      if (isShuttingDown(state)) {
        core.ended = true
        return Effect.void
      }
      const limit = concurrency - core.slots.size
      if (state !== "Running" || !core.dirty || core.claimBlocked || limit <= 0) return Effect.void
      core.dirty = false
      const request: ClaimRequest = { queues, names, limit, lease, worker: workerId }
      return Effect.zipRight(
        Effect.matchCauseEffect(store.claim(request), {
          onFailure: claimFailed,
          onSuccess: (jobs) => afterClaim(jobs, limit)
        }),
        Effect.suspend(() => claimRound)
      )
    })

    // Each round runs uninterruptibly: a claimed job is started or released, even when the layer closes right then.
    const claimLoop: Effect.Effect<void, never, Needs> = Effect.flatMap(core.wake.await, () => {
      core.wake.unsafeClose()
      return Effect.flatMap(Effect.uninterruptible(claimRound), () => core.ended ? Effect.void : claimLoop)
    })

    // --- Leases -----------------------------------------------------------------------------------------------

    /** Publishes the loss of these leases and interrupts their tasks (a task not begun yet sees it when it begins). */
    const interruptLost = (lost: ReadonlyArray<Held>): Effect.Effect<void> =>
      Effect.flatMap(Effect.fiberId, (by) =>
        Effect.forEach(lost, (held) =>
          held.lost ? Effect.void : Effect.zipRight(
            lostLease(held),
            // A task whose handler has ended is acknowledging: it is not interrupted (that part is uninterruptible
            // anyway), and its acknowledgement fails with `LeaseLost`.
            Effect.sync(() => {
              if (!held.settling) held.fiber?.unsafeInterruptAsFork(by)
            })
          ), { discard: true }))

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

    const renewLoop = (wait: Duration.Duration, backoff: number): Effect.Effect<void> =>
      Effect.zipRight(
        Effect.sleep(wait),
        Effect.suspend(() => {
          if (core.live.size === 0) return renewLoop(renewEvery, ackBackoffStart)
          const sent = Array.from(core.live.values())
          return Effect.matchCauseEffect(store.renew(sent.map((held) => held.job.lease), lease), {
            onSuccess: (lostIds) => Effect.zipRight(renewed(sent, lostIds), renewLoop(renewEvery, ackBackoffStart)),
            onFailure: (cause) =>
              Effect.zipRight(
                warn(`JobStore.renew of ${sent.length} lease(s) failed; trying again in ${backoff} ms`, cause),
                renewLoop(Duration.millis(backoff), Math.min(backoff * 2, renewEveryMillis))
              )
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

    const wakeupListener: Effect.Effect<void> = Stream.runForEach(
      store.wakeups,
      (queue) => served.has(queue) ? Effect.sync(() => core.trigger()) : Effect.void
    ).pipe(Effect.catchAllCause((cause) => warn("the store's wake-ups ended with a failure; polling only", cause)))

    const background = (effect: Effect.Effect<void>) => Effect.forkScoped(Effect.interruptible(effect))

    const wakeups = yield* background(wakeupListener)
    const poller = yield* background(pollLoop)
    const reaper = yield* background(reapLoop)
    const renewer = yield* background(renewLoop(renewEvery, ackBackoffStart))
    const claimer = yield* Effect.forkScoped(Effect.interruptible(claimLoop))
    // Running: claim. Stopping: the claim loop sees it and ends. Stopped: every job is done, given back or left to
    // its lease (an acknowledgement cut off at the deadline), so nothing is left to renew, reap or claim.
    yield* background(Stream.runForEach(ctx.stateChanges, (state) =>
      state === "Stopped"
        ? Fiber.interruptAll([wakeups, poller, reaper, renewer])
        : Effect.sync(() => {
          if (state === "Running" || state === "Stopping") core.trigger()
        })))

    // Added after the fibers, so it runs before their finalizers: the context drains (its jobs acknowledged, its
    // leases renewed meanwhile) before the renewer stops, and the claim loop finishes the round it is in.
    yield* Effect.addFinalizer(() => Effect.zipRight(ctx.stop, Fiber.interrupt(claimer)))

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
      inFlight: Effect.sync(() => core.slots.size)
    } satisfies JobWorker
  })
