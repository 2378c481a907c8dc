/**
 * `JobTest`: a recording store over `MemoryJobStore` (what was enqueued, and when each live job is due), `drain` (a
 * real `JobWorker` on a view of that store that counts its claims and records its settlements), and `runJob` (one
 * attempt of a handler, decided as the executor decides it, without a store).
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Job from "../Job.js"
import * as JobStore from "../JobStore.js"
import type * as JobTest from "../JobTest.js"
import * as JobWorker from "../JobWorker.js"
import * as MemoryJobStore from "../MemoryJobStore.js"
import { WorkerContext } from "../WorkerContext.js"
import { handlerEffect, isFatal, isSnooze, NotAnEffect, storeDelay } from "./jobWorker/executor.js"
import { textOf } from "./jobWorker/storeCalls.js"
import { notJson } from "./json.js"

// --- outcomes ---------------------------------------------------------------------------------------------------

/** @internal */
export const Outcome: Data.TaggedEnum.Constructor<JobTest.Outcome> = Data.taggedEnum<JobTest.Outcome>()

const fromStore = (outcome: JobStore.Outcome): JobTest.Outcome => {
  switch (outcome._tag) {
    case "Completed":
      return Outcome.Completed()
    case "Retry":
      return Outcome.Retried({ error: outcome.error, delay: outcome.delay })
    case "Dead":
      return Outcome.Dead({ error: outcome.error })
    case "Snoozed":
      return Outcome.Snoozed({ delay: outcome.delay })
    case "Released":
      return Outcome.Released({ refunded: outcome.refund })
  }
}

// --- the recording store ------------------------------------------------------------------------------------------

/** A live job, as far as the recorder follows it: enough to know when it is due. */
interface Tracked {
  readonly name: string
  readonly queue: string
  dueAt: number
}

/** @internal What `JobTest.layer` keeps besides the store: read by `drain` and `enqueued`. */
export interface Recorder {
  readonly store: JobStore.JobStore.Service
  readonly clock: Clock.Clock
  readonly log: Array<JobTest.EnqueuedJob>
  readonly live: Map<string, Tracked>
  readonly dead: Map<string, Tracked>
  /** Whether a drain runs: two at once would share the store's jobs and each other's clock moves. */
  draining: boolean
}

const recorders = new WeakMap<JobTest.JobTest.Service, Recorder>()

const delayMillis = (delay: Duration.Duration): number => Math.ceil(Duration.toMillis(delay))

const newJobOf = (job: JobStore.EncodedJob): JobStore.NewJob => ({
  name: job.name,
  queue: job.queue,
  payload: JSON.parse(job.payload),
  runAt: job.runAt,
  delay: Duration.millis(job.delayMs),
  priority: job.priority,
  key: job.key,
  keyMode: job.keyMode,
  maxAttempts: job.maxAttempts
})

/** Follows the outcomes the store took: a job that ended leaves `live`; one that waits again gets its new due time. */
const followSettled = (
  recorder: Recorder,
  settlements: ReadonlyArray<JobStore.Settlement>,
  results: ReadonlyArray<boolean>,
  now: number
): void => {
  settlements.forEach(({ lease, outcome }, i) => {
    if (results[i] !== true) return
    const tracked = recorder.live.get(lease.jobId)
    if (tracked === undefined) return
    switch (outcome._tag) {
      case "Completed":
        recorder.live.delete(lease.jobId)
        return
      case "Dead":
        recorder.live.delete(lease.jobId)
        recorder.dead.set(lease.jobId, tracked)
        return
      case "Retry":
      case "Snoozed":
        tracked.dueAt = now + delayMillis(outcome.delay)
        return
      case "Released":
        tracked.dueAt = now
        return
    }
  })
}

const followBuried = (recorder: Recorder, buried: ReadonlyArray<JobStore.BuriedJob>): void => {
  for (const job of buried) {
    const tracked = recorder.live.get(job.id)
    recorder.live.delete(job.id)
    if (tracked !== undefined) recorder.dead.set(job.id, tracked)
  }
}

/** @internal */
export const makeRecorder = (options?: MemoryJobStoreOptions): Effect.Effect<Recorder> =>
  Effect.gen(function*() {
    const memory = yield* MemoryJobStore.make(options)
    const clock = yield* Effect.clock
    const log: Array<JobTest.EnqueuedJob> = []
    const live = new Map<string, Tracked>()
    const dead = new Map<string, Tracked>()
    const record = (
      job: JobStore.EncodedJob,
      result: JobStore.Enqueued,
      now: number,
      scheduledFor: Date | undefined
    ): void => {
      if (result.outcome === "skipped") return
      const dueAt = job.runAt === undefined ? now + job.delayMs : job.runAt.getTime()
      const tracked = live.get(result.id)
      if (tracked === undefined) live.set(result.id, { name: job.name, queue: job.queue, dueAt })
      else tracked.dueAt = dueAt
      log.push({
        id: result.id,
        name: job.name,
        queue: job.queue,
        payload: JSON.parse(job.payload),
        runAt: new Date(dueAt),
        priority: job.priority,
        key: job.key,
        maxAttempts: job.maxAttempts,
        outcome: result.outcome,
        scheduledFor
      })
    }
    const recorder: Recorder = { store: undefined as never, clock, log, live, dead, draining: false }
    const driver: JobStore.JobStore.Driver = {
      name: "JobTest",
      immediate: true,
      insert: (jobs) =>
        Effect.map(memory.insert(jobs.map(newJobOf)), (results) => {
          const now = clock.unsafeCurrentTimeMillis()
          results.forEach((result, i) => record(jobs[i]!, result, now, undefined))
          return results
        }),
      enqueueSlot: (slot) =>
        Effect.map(memory.enqueueSlot({ ...slot, job: newJobOf(slot.job) }), (id) => {
          if (id !== undefined && !live.has(id)) {
            record(slot.job, { id, duplicate: false, outcome: "inserted" }, clock.unsafeCurrentTimeMillis(), slot.slot)
          }
          return id
        }),
      claim: (request) =>
        Effect.map(memory.claim(request), (result) => {
          followBuried(recorder, result.buried)
          return result
        }),
      renew: memory.renew,
      settle: (settlements) =>
        Effect.map(memory.settle(settlements), (results) => {
          followSettled(recorder, settlements, results, clock.unsafeCurrentTimeMillis())
          return results
        }),
      reap: Effect.map(memory.reap, (result) => {
        followBuried(recorder, result.buried)
        return result
      }),
      prune: memory.prune,
      wakeups: memory.wakeups,
      stats: memory.stats,
      deadLetters: memory.deadLetters,
      redrive: (ids) =>
        Effect.map(memory.redrive(ids), (moved) => {
          const now = clock.unsafeCurrentTimeMillis()
          for (const id of ids) {
            const tracked = dead.get(id)
            // A dead job whose key a live job holds stays dead: the store skips it.
            if (tracked === undefined || moved === 0) continue
            dead.delete(id)
            tracked.dueAt = now
            live.set(id, tracked)
          }
          return moved
        }),
      pauseQueue: memory.pauseQueue,
      resumeQueue: memory.resumeQueue,
      get: memory.get,
      list: memory.list,
      cancel: (id) =>
        Effect.tap(memory.cancel(id), (result) => Effect.sync(() => result === "cancelled" && live.delete(id))),
      // The whole filter at once (the memory store is one step anyway); the jobs it cancelled leave `live`.
      cancelBatch: (filter) =>
        Effect.tap(memory.cancelMany(filter), () =>
          Effect.forEach(Array.from(live.keys()), (id) =>
            Effect.map(memory.get(id), (job) => {
              if (job?.state === "cancelled") {
                live.delete(id)
              }
            }), { discard: true })),
      cancellations: memory.cancellations,
      delete: memory.delete,
      runNow: memory.runNow
    }
    return Object.assign(recorder, { store: JobStore.make(driver) })
  })

type MemoryJobStoreOptions = MemoryJobStore.MemoryJobStoreOptions

/** @internal */
export const recorderOf = (service: JobTest.JobTest.Service): Recorder | undefined => recorders.get(service)

/** @internal */
export const layer = <Tag extends Context.Tag<JobTest.JobTest, JobTest.JobTest.Service>>(
  tag: Tag,
  options?: MemoryJobStoreOptions
): Layer.Layer<JobTest.JobTest | JobStore.JobStore> =>
  Layer.effectContext(Effect.map(makeRecorder(options), (recorder) => {
    const service: JobTest.JobTest.Service = {
      store: recorder.store,
      enqueued: Effect.sync(() => recorder.log.slice())
    }
    recorders.set(service, recorder)
    return Context.make(tag as unknown as Context.Tag<JobTest.JobTest, JobTest.JobTest.Service>, service).pipe(
      Context.add(JobStore.JobStore, recorder.store)
    )
  }))

// --- enqueued -----------------------------------------------------------------------------------------------------

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** Whether `value` has everything `pattern` has: objects by subset of keys, arrays element by element, the rest by `===`. */
const includes = (pattern: unknown, value: unknown): boolean => {
  if (isPlainObject(pattern)) {
    return isPlainObject(value) && Object.keys(pattern).every((key) => includes(pattern[key], value[key]))
  }
  if (Array.isArray(pattern)) {
    return Array.isArray(value) && pattern.length === value.length && pattern.every((p, i) => includes(p, value[i]))
  }
  return Object.is(pattern, value)
}

/** @internal */
export const matches = (filter: JobTest.Filter<any, any> | undefined, job: JobTest.EnqueuedJob): boolean => {
  if (filter === undefined) return true
  const name = filter.job?.name ?? filter.name
  if (name !== undefined && job.name !== name) return false
  if (filter.name !== undefined && job.name !== filter.name) return false
  if (filter.queue !== undefined && job.queue !== filter.queue) return false
  if (filter.key !== undefined && job.key !== filter.key) return false
  if (filter.priority !== undefined && job.priority !== filter.priority) return false
  const payload = filter.payload
  if (payload === undefined) return true
  if (typeof payload === "function") {
    if (filter.job === undefined) return (payload as (payload: unknown) => boolean)(job.payload)
    const decoded = Schema.decodeUnknownOption(filter.job.payload)(job.payload)
    return Option.isSome(decoded) && (payload as (payload: unknown) => boolean)(decoded.value)
  }
  return includes(payload, job.payload)
}

const describeFilter = (filter: JobTest.Filter<any, any>): string => {
  const parts: Array<string> = []
  if (filter.job !== undefined) parts.push(`job ${filter.job.name}`)
  if (filter.name !== undefined) parts.push(`name ${JSON.stringify(filter.name)}`)
  if (filter.queue !== undefined) parts.push(`queue ${JSON.stringify(filter.queue)}`)
  if (filter.key !== undefined) parts.push(`key ${JSON.stringify(filter.key)}`)
  if (filter.priority !== undefined) parts.push(`priority ${filter.priority}`)
  if (typeof filter.payload === "function") parts.push("a payload the predicate accepts")
  else if (filter.payload !== undefined) parts.push(`payload including ${JSON.stringify(filter.payload)}`)
  return parts.length === 0 ? "any job" : parts.join(", ")
}

const describeJob = (job: JobTest.EnqueuedJob): string =>
  `${job.id} ${job.name} (queue ${job.queue}) ${JSON.stringify(job.payload)}` +
  (job.key === undefined ? "" : ` key ${JSON.stringify(job.key)}`) + ` runAt ${job.runAt.toISOString()}`

/** @internal */
export const assertionMessage = (
  assertion: "assertEnqueued" | "refuteEnqueued",
  filter: JobTest.Filter<any, any>,
  all: ReadonlyArray<JobTest.EnqueuedJob>,
  matched: ReadonlyArray<JobTest.EnqueuedJob>
): string => {
  const wanted = describeFilter(filter)
  if (assertion === "assertEnqueued") {
    const list = all.length === 0
      ? "nothing was enqueued"
      : `enqueued:\n${all.map((j) => `  ${describeJob(j)}`).join("\n")}`
    return `expected a job matching ${wanted} to be enqueued, but none was; ${list}`
  }
  return `expected no job matching ${wanted} to be enqueued, but ${matched.length} was:\n` +
    matched.map((j) => `  ${describeJob(j)}`).join("\n")
}

// --- runJob -------------------------------------------------------------------------------------------------------

const failedAttempt = (job: Job.Any, info: Job.JobInfo, error: unknown, text: string) => {
  if (info.attempt >= info.maxAttempts) return Effect.succeed(Outcome.Dead({ error: text }))
  return Job.retryDelay(job.retry, info.attempt, error).pipe(
    Effect.catchAllCause(() => Effect.succeed(Option.none<Duration.Duration>())),
    Effect.map((delay) =>
      Option.isNone(delay) || !Duration.isFinite(delay.value)
        ? Outcome.Dead({ error: text })
        : Outcome.Retried({ error: text, delay: storeDelay(delay.value) })
    )
  )
}

const outcomeOf = (
  job: Job.Any,
  info: Job.JobInfo,
  exit: Exit.Exit<unknown, unknown>,
  timedOut: string | undefined
): Effect.Effect<JobTest.Outcome> => {
  if (Exit.isSuccess(exit)) return Effect.succeed(Outcome.Completed())
  if (timedOut !== undefined) return failedAttempt(job, info, timedOut, timedOut)
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (isFatal(error)) return Effect.succeed(Outcome.Dead({ error: error.message }))
    if (isSnooze(error)) return Effect.succeed(Outcome.Snoozed({ delay: storeDelay(error.delay) }))
    return failedAttempt(job, info, error, textOf(error))
  }
  const defect = Cause.dieOption(exit.cause)
  if (Option.isSome(defect)) {
    if (defect.value instanceof NotAnEffect) return Effect.succeed(Outcome.Dead({ error: defect.value.message }))
    return failedAttempt(job, info, defect.value, textOf(defect.value))
  }
  return failedAttempt(job, info, "interrupted", "interrupted")
}

/** @internal */
export const runJob = <R>(
  handler: Job.JobHandler<R>,
  payload: unknown,
  options?: JobTest.RunJobOptions
): Effect.Effect<JobTest.RunResult, ParseResult.ParseError, Exclude<R, Job.Current>> =>
  Effect.gen(function*() {
    const job = handler.job
    const encoded = yield* Schema.encodeUnknown(job.payload)(payload)
    const problem = notJson(encoded)
    if (problem !== undefined) {
      return yield* Effect.die(
        new Cause.IllegalArgumentException(
          `JobTest.runJob: the payload of ${job.name} does not encode to JSON: ${problem}`
        )
      )
    }
    const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    const info: Job.JobInfo = {
      id: "1",
      name: job.name,
      queue: job.queue,
      attempt: 1,
      maxAttempts: job.maxAttempts,
      priority: 0,
      key: undefined,
      enqueuedAt: new Date(now),
      runAt: new Date(now),
      lastError: undefined,
      errors: [],
      scheduledFor: undefined,
      ...options?.info
    }
    // As the store does: the handler gets its own copy of the JSON, decoded anew.
    const decoded = yield* Effect.either(Schema.decodeUnknown(job.payload)(JSON.parse(JSON.stringify(encoded))))
    if (decoded._tag === "Left") {
      return { outcome: Outcome.Dead({ error: textOf(decoded.left) }), exit: Exit.fail(decoded.left), info }
    }
    const fiber = yield* Effect.fork(
      Effect.interruptible(Effect.provideService(handlerEffect(handler, decoded.right), Job.Current, info))
    )
    let timedOut: string | undefined
    let exit: Exit.Exit<unknown, unknown>
    if (Duration.isFinite(job.timeout)) {
      const done = yield* Effect.timeoutOption(Fiber.await(fiber), job.timeout)
      if (Option.isSome(done)) {
        exit = done.value
      } else {
        exit = yield* Fiber.interrupt(fiber)
        // A success in an uninterruptible region that outlived the timeout is kept, as the worker keeps it.
        if (!Exit.isSuccess(exit)) timedOut = `timed out after ${Duration.format(job.timeout)}`
      }
    } else {
      exit = yield* Fiber.await(fiber)
    }
    const outcome = yield* outcomeOf(job, info, exit, timedOut)
    return { outcome, exit, info }
  }) as Effect.Effect<JobTest.RunResult, ParseResult.ParseError, Exclude<R, Job.Current>>

// --- drain --------------------------------------------------------------------------------------------------------

/** One attempt of a claimed job, as `drain` reports it. */
const attemptOf = (job: JobStore.ClaimedJob, outcome: JobTest.Outcome): JobTest.Attempt => ({
  id: job.id,
  name: job.name,
  queue: job.queue,
  attempt: job.attempt,
  payload: job.payload,
  outcome
})

/** What the drain's worker did, seen from the store view it was given. */
class DrainView {
  claimCalls = 0
  /** The claim call count at which a claim last returned jobs. */
  lastFound = -1
  remaining: number
  readonly attempts: Array<JobTest.Attempt> = []
  readonly held = new Map<string, JobStore.ClaimedJob>()
  readonly store: JobStore.JobStore.Service

  constructor(
    readonly recorder: Recorder,
    readonly ticks: Queue.Queue<void>,
    readonly kicks: PubSub.PubSub<string>,
    limit: number
  ) {
    this.remaining = limit
    const inner = recorder.store
    const tick = () => Queue.unsafeOffer(ticks, undefined)
    this.store = JobStore.make({
      name: "JobTest.drain",
      immediate: true,
      insert: (jobs) => inner.insert(jobs.map(newJobOf)),
      enqueueSlot: (slot) => inner.enqueueSlot({ ...slot, job: newJobOf(slot.job) }),
      claim: (request) => {
        const limit = Math.min(request.limit, this.remaining)
        const claimed: Effect.Effect<JobStore.ClaimResult, JobStore.JobStoreError> = limit <= 0
          ? Effect.succeed({ jobs: [], buried: [] })
          : inner.claim({ ...request, limit })
        return Effect.map(claimed, (result) => {
          this.claimCalls++
          this.remaining -= result.jobs.length
          if (result.jobs.length > 0) this.lastFound = this.claimCalls
          for (const job of result.jobs) this.held.set(job.lease.token, job)
          for (const job of result.buried) {
            this.attempts.push({
              id: job.id,
              name: job.name,
              queue: job.queue,
              attempt: job.attempt,
              payload: undefined,
              outcome: Outcome.Dead({ error: job.error })
            })
          }
          tick()
          return result
        })
      },
      renew: inner.renew,
      settle: (settlements) =>
        Effect.map(inner.settle(settlements), (results) => {
          settlements.forEach(({ lease, outcome }, i) => {
            const job = this.held.get(lease.token)
            if (job === undefined) return
            this.held.delete(lease.token)
            this.attempts.push(attemptOf(job, results[i] === true ? fromStore(outcome) : Outcome.LeaseLost()))
          })
          tick()
          return results
        }),
      reap: inner.reap,
      prune: inner.prune,
      wakeups: Effect.gen(function*() {
        const merged = yield* Queue.sliding<string>(256)
        const fromStore = yield* inner.wakeups
        const fromDrain = yield* PubSub.subscribe(kicks)
        const forward = (from: Queue.Dequeue<string>) =>
          Effect.forkScoped(
            Effect.interruptible(
              Effect.forever(Effect.flatMap(Queue.take(from), (queue) => Queue.offer(merged, queue)))
            )
          )
        yield* forward(fromStore)
        yield* forward(fromDrain)
        return merged
      }),
      stats: inner.stats,
      deadLetters: inner.deadLetters,
      redrive: inner.redrive,
      get: inner.get,
      list: inner.list,
      cancel: inner.cancel,
      cancelBatch: (filter) => inner.cancelMany(filter),
      cancellations: inner.cancellations,
      delete: inner.delete,
      runNow: inner.runNow,
      pauseQueue: inner.pauseQueue,
      resumeQueue: inner.resumeQueue
    })
  }

  /** The attempts whose lease was lost without an outcome (the worker discarded them): their lease is gone. */
  sweep(): void {
    for (const job of this.held.values()) this.attempts.push(attemptOf(job, Outcome.LeaseLost()))
    this.held.clear()
  }
}

/** When the next job of these names and queues is due, after `now` and not after `until`; `undefined` if none is. */
const nextDue = (
  recorder: Recorder,
  names: ReadonlySet<string>,
  queues: ReadonlySet<string>,
  now: number,
  until: number
): number | undefined => {
  let next: number | undefined
  for (const job of recorder.live.values()) {
    if (!names.has(job.name) || !queues.has(job.queue)) continue
    if (job.dueAt > now && job.dueAt <= until && (next === undefined || job.dueAt < next)) next = job.dueAt
  }
  return next
}

/** @internal */
export const drain = <R>(
  tag: Context.Tag<JobTest.JobTest, JobTest.JobTest.Service>,
  options: JobTest.DrainOptions<R>
): Effect.Effect<ReadonlyArray<JobTest.Attempt>, never, JobTest.JobTest | Exclude<R, Job.Current>> =>
  Effect.gen(function*() {
    const service = yield* tag
    const recorder = recorderOf(service)
    if (recorder === undefined) {
      return yield* Effect.dieMessage("JobTest.drain needs the JobTest service of JobTest.layer, not one built by hand")
    }
    const limit = options.limit ?? Infinity
    if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit >= 0))) {
      return yield* Effect.die(
        new Cause.IllegalArgumentException(
          `JobTest.drain: invalid limit ${String(limit)}: expected an integer of 0 or more`
        )
      )
    }
    const scheduled = options.withScheduled ?? false
    let horizon: number
    if (scheduled === false) horizon = -Infinity
    else if (scheduled === true) horizon = Infinity
    else {
      const duration = Duration.decodeUnknown(scheduled)
      if (Option.isNone(duration) || Duration.toMillis(duration.value) < 0) {
        return yield* Effect.die(
          new Cause.IllegalArgumentException(
            `JobTest.drain: invalid withScheduled ${
              String(scheduled)
            }: expected a boolean or a duration of zero or more`
          )
        )
      }
      horizon = Duration.toMillis(duration.value)
    }
    if (recorder.draining) {
      return yield* Effect.dieMessage("JobTest.drain: another drain of this store is running")
    }
    recorder.draining = true
    return yield* Effect.scoped(Effect.gen(function*() {
      yield* Effect.addFinalizer(() => Effect.sync(() => recorder.draining = false))
      const clock = recorder.clock
      const until = clock.unsafeCurrentTimeMillis() + horizon
      const ticks = yield* Queue.sliding<void>(1)
      const kicks = yield* PubSub.unbounded<string>()
      const view = new DrainView(recorder, ticks, kicks, limit)
      const ctx = yield* WorkerContext.make({ name: "JobTest.drain", logLevel: "None" })
      yield* ctx.listen(() => Queue.offer(ticks, undefined))
      const worker = yield* JobWorker.make({
        handlers: options.handlers,
        queues: options.queues,
        concurrency: options.concurrency ?? 1,
        // The drain wakes the worker itself whenever it wants a claim: a poll would only add clock-driven claims.
        pollInterval: "1 hour"
      }).pipe(
        Effect.provideService(JobStore.JobStore, view.store),
        Effect.provideService(WorkerContext, ctx)
      )
      const names = new Set(options.handlers.map((handler) => handler.job.name))
      const queues = new Set(worker.queues)
      /** Waits until `done` holds, looking again after every claim, settle and event of the drain's worker. */
      const awaitTrue = (done: Effect.Effect<boolean>): Effect.Effect<void> =>
        Effect.flatMap(done, (ok) => ok ? Effect.void : Effect.zipRight(Queue.take(ticks), awaitTrue(done)))
      const quiet = Effect.map(
        Effect.zip(worker.leased, worker.inFlight),
        ([leased, inFlight]) => leased === 0 && inFlight === 0
      )
      for (;;) {
        yield* awaitTrue(quiet)
        // Nothing runs: a claim made from now on finds every job that is ready, so an empty one means none is.
        const before = view.claimCalls
        yield* PubSub.publishAll(kicks, queues)
        yield* awaitTrue(Effect.sync(() => view.claimCalls > before))
        if (view.lastFound > before) continue
        if (view.remaining <= 0) break
        const now = clock.unsafeCurrentTimeMillis()
        const next = nextDue(recorder, names, queues, now, until)
        if (next === undefined) break
        yield* TestClock.adjust(Duration.millis(next - now))
        if (clock.unsafeCurrentTimeMillis() < next) {
          return yield* Effect.dieMessage(
            "JobTest.drain: withScheduled moves the TestClock, but the store's clock is not the TestClock " +
              "(run the test with it.effect, or build JobTest.layer under the TestClock)"
          )
        }
      }
      view.sweep()
      return view.attempts.slice()
    }))
  })
