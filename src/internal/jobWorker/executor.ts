/**
 * The executor: runs one attempt of a claimed job as a task of the context and decides its outcome, as data, where
 * the attempt ends (Oban's executor, River's job executor):
 *
 * - `Completed`: the handler succeeded, whatever tried to cut it short (its timeout, the shutdown deadline): a
 *   success is never thrown away here; the store decides whether the lease still held.
 * - `Retry { delay, error }` / `Dead { error }`: it failed, died, or was cut off by its timeout; `Dead` when it was
 *   its last attempt, its schedule ended, it failed with `Job.Fatal`, its payload no longer decodes, or its handler
 *   did not return an Effect.
 * - `Released { refund: true }`: the shutdown deadline cut it off.
 * - `Snoozed { delay }`: the handler failed with `Job.Snooze` (`Job.snooze`): it runs again later, this attempt not
 *   counted.
 * - `Discarded`: its lease was lost (the store said so, or the worker stopped it before the lease could lapse):
 *   nothing is sent to the store.
 *
 * The handler runs on the task's fiber. The task is admitted uninterruptible and makes only the handler (and the
 * waits before it) interruptible: only the handler's own interruptible parts can be interrupted, and the outcome is
 * decided and handed on whatever happened to it.
 * Cutting an attempt short (timeout, deadline, lost lease) interrupts the task only while it is interruptible,
 * checking again every few milliseconds otherwise: Effect 3 delivers an interruption that arrives inside an
 * uninterruptible region when the region ends, and throws away what the region returned, so a handler whose last
 * step is uninterruptible would lose its success. The context does not interrupt these tasks at its shutdown
 * deadline: it calls the executor's cut instead (`onCutOff` of the core's `admit`).
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Inspectable from "effect/Inspectable"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Job from "../../Job.js"
import { type ClaimedJob, Outcome } from "../../JobStore.js"
import { maxDelayMs } from "../jobStore.js"
import { notJson } from "../json.js"
import type { WorkerCore } from "../workerContext.js"
import type { Claim, Claims, Cut } from "./claims.js"
import type { Completer } from "./completer.js"
import type { Publisher } from "./metrics.js"
import { textOf } from "./storeCalls.js"

/** How an attempt ended, as the executor decided it: a store `Outcome`, or `Discarded` (nothing to send). */
export type AttemptOutcome = Outcome | { readonly _tag: "Discarded" }

const Discarded: AttemptOutcome = { _tag: "Discarded" }
const ReleasedRefunded: AttemptOutcome = Outcome.Released({ refund: true })
const Completed: AttemptOutcome = Outcome.Completed()
const interrupted: Exit.Exit<never> = Exit.interrupt(FiberId.none)

/** The attempts running under one timeout, in the order of their deadlines. */
export class TimeoutList {
  head: Claim | undefined = undefined
  tail: Claim | undefined = undefined
  /** Opened when an attempt is added to an empty list, for a watcher waiting on it. */
  readonly added = Effect.unsafeMakeLatch(false)
  readonly message: string
  constructor(readonly timeoutMs: number) {
    this.message = `timed out after ${Duration.format(Duration.millis(timeoutMs))}`
  }

  /**
   * Every attempt of a job type gets the same timeout and they start one after the other, so appending keeps the
   * list sorted by deadline: one watcher per list sleeps until the first, instead of a timer fiber per attempt.
   */
  add(claim: Claim, now: number): void {
    claim.deadline = now + this.timeoutMs
    claim.listed = true
    claim.before = this.tail
    if (this.tail === undefined) {
      this.head = claim
      this.added.unsafeOpen()
    } else {
      this.tail.after = claim
    }
    this.tail = claim
  }

  remove(claim: Claim): void {
    if (!claim.listed) return
    if (claim.before === undefined) this.head = claim.after
    else claim.before.after = claim.after
    if (claim.after === undefined) this.tail = claim.before
    else claim.after.before = claim.before
    claim.before = claim.after = undefined
    claim.listed = false
  }
}

/** What the executor knows about one job type, computed once. */
export interface Entry {
  readonly handler: Job.JobHandler<any>
  readonly decode: (payload: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
  /** `undefined` for `Duration.infinity`. */
  readonly timeouts: TimeoutList | undefined
}

export const entries = (handlers: ReadonlyArray<Job.JobHandler<any>>) => {
  const lists = new Map<number, TimeoutList>()
  const byName = new Map<string, Entry>()
  for (const handler of handlers) {
    const timeout = handler.job.timeout
    let timeouts: TimeoutList | undefined
    if (Duration.isFinite(timeout)) {
      const timeoutMs = Duration.toMillis(timeout)
      timeouts = lists.get(timeoutMs)
      if (timeouts === undefined) {
        timeouts = new TimeoutList(timeoutMs)
        lists.set(timeoutMs, timeouts)
      }
    }
    byName.set(handler.job.name, { handler, decode: Schema.decodeUnknown(handler.job.payload), timeouts })
  }
  return { byName, lists: Array.from(lists.values()) }
}

/** @internal Shared with the test kit's `runJob`, which decides an attempt's outcome as this executor does. */
export const isFatal = (error: unknown): error is Job.Fatal =>
  error instanceof Job.Fatal ||
  (typeof error === "object" && error !== null && (error as { readonly _tag?: unknown })._tag === "JobFatal")

/** @internal */
export const isSnooze = (error: unknown): error is Job.Snooze =>
  error instanceof Job.Snooze ||
  (typeof error === "object" && error !== null && (error as { readonly _tag?: unknown })._tag === "JobSnooze" &&
    Duration.isDuration((error as { readonly delay?: unknown }).delay))

/**
 * A finite delay as a store takes it: whole milliseconds, and beyond what a store holds (an uncapped exponential at
 * attempt 44 and later) the longest it holds.
 */
export const storeDelay = (delay: Duration.Duration): Duration.Duration =>
  Duration.millis(Math.min(Math.max(0, Math.ceil(Duration.toMillis(delay))), maxDelayMs))

/** A handler that returned something else than an Effect: a bug no retry will fix. */
export class NotAnEffect {
  constructor(readonly message: string) {}
}

/** @internal The handler's effect for `payload`: a handler that throws or returns no Effect makes a defect. */
export const handlerEffect = <R>(handler: Job.JobHandler<R>, payload: unknown): Effect.Effect<unknown, unknown, R> => {
  let result: unknown
  try {
    result = handler.run(payload)
  } catch (defect) {
    return Effect.die(defect)
  }
  if (Effect.isEffect(result)) return result as Effect.Effect<unknown, unknown, R>
  return Effect.die(
    new NotAnEffect(`the handler of job ${handler.job.name} returned ${describeValue(result)} instead of an Effect`)
  )
}

const describeValue = (value: unknown): string => {
  if (value instanceof Promise) return "a Promise (wrap it with Effect.promise or Effect.tryPromise)"
  if (value === null || value === undefined) return String(value)
  if (typeof value === "object" && typeof (value as { then?: unknown }).then === "function") {
    return "a thenable (wrap it with Effect.promise or Effect.tryPromise)"
  }
  return `${typeof value} ${Inspectable.toStringUnknown(value, 0).slice(0, 80)}`
}

const infoOf = (job: ClaimedJob): Job.JobInfo => ({
  id: job.id,
  name: job.name,
  queue: job.queue,
  attempt: job.attempt,
  maxAttempts: job.maxAttempts,
  priority: job.priority,
  key: job.key,
  enqueuedAt: job.enqueuedAt,
  runAt: job.runAt,
  lastError: job.lastError,
  errors: job.errors,
  scheduledFor: job.scheduledFor
})

/** How often a cut looks again at a handler that is in an uninterruptible region: 5 ms, doubling, at most 100 ms. */
const recheck = Schedule.exponential(Duration.millis(5)).pipe(Schedule.union(Schedule.spaced(Duration.millis(100))))

export interface Executor {
  /**
   * Admits the attempt of `claim` as a task of the context, in the caller's synchronous step; `false` (the job was
   * not started) unless the context is `Running`.
   */
  readonly admit: (
    claim: Claim,
    caller: Fiber.RuntimeFiber<unknown, unknown>,
    flags: RuntimeFlags.RuntimeFlags
  ) => boolean
  /** Cuts the attempt of `claim` short, for `why`: see the module's description. */
  readonly cut: (claim: Claim, why: Cut) => void
  /** The watcher of one timeout list, run on a fiber of the worker's scope. */
  readonly watch: (list: TimeoutList) => Effect.Effect<never>
}

export const make = (deps: {
  readonly core: WorkerCore
  readonly claims: Claims
  readonly completer: Completer
  readonly publisher: Publisher
  readonly clock: Clock.Clock
  /**
   * Forks a cut onto a fiber set that outlives the worker's finalizer (a cut made while the worker's scope closes
   * must still run), and interrupts what is left when it closes.
   */
  readonly runCut: (cut: Effect.Effect<void>) => unknown
  readonly warn: (message: string, cause?: unknown) => Effect.Effect<void>
}): Executor => {
  const { claims, clock, completer, core, publisher, runCut, warn } = deps

  /**
   * Interrupts the task of `claim` once it is interruptible (at once, if it is): while its handler runs, or, for the
   * shutdown deadline (`any`), wherever it waits (for the attempt before it, for its payload to decode, or to begin).
   */
  const interruptWhenInterruptible = (claim: Claim, task: Fiber.RuntimeFiber<unknown, unknown>, any: boolean) => {
    const gone = () => task.unsafePoll() !== null || !(any || claim.running)
    return Effect.repeat(
      Effect.suspend(() =>
        gone() ? Effect.succeed(true) : Effect.map(task.runtimeFlags, (flags) => {
          if (gone()) return true
          if (!RuntimeFlags.interruption(flags)) return false
          task.unsafeInterruptAsFork(FiberId.none)
          return true
        })
      ),
      { schedule: recheck, until: (done) => done }
    )
  }

  const cut = (claim: Claim, why: Cut): void => {
    if (claim.cut === undefined || why === "lease") claim.cut = why
    const task = claim.task
    const any = why === "deadline"
    if (task === undefined || task.unsafePoll() !== null || !(any || claim.running)) return
    runCut(interruptWhenInterruptible(claim, task, any))
  }

  const watch = (list: TimeoutList): Effect.Effect<never> => {
    const step: Effect.Effect<void> = Effect.suspend(() => {
      const first = list.head
      if (first === undefined) {
        list.added.unsafeClose()
        return list.added.await
      }
      const left = first.deadline - clock.unsafeCurrentTimeMillis()
      if (left > 0) return Effect.sleep(Duration.millis(left))
      list.remove(first)
      cut(first, "timeout")
      return Effect.void
    })
    return Effect.forever(step)
  }

  /** The attempt failed with `error`: retry after the schedule's delay, or dead-letter. */
  const failedAttempt = (claim: Claim, error: unknown, text: string): Effect.Effect<AttemptOutcome> => {
    const job = claim.job
    if (job.attempt >= job.maxAttempts) return Effect.succeed(Outcome.Dead({ error: text }))
    return Job.retryDelay(claim.entry.handler.job.retry, job.attempt, error).pipe(
      // A schedule that dies is a bug of its own: the job must still end somewhere.
      Effect.catchAllCause((cause) =>
        Effect.as(warn(`the retry schedule of ${job.name} died`, cause), Option.none<Duration.Duration>())
      ),
      Effect.map((delay): AttemptOutcome => {
        if (Option.isNone(delay) || !Duration.isFinite(delay.value)) return Outcome.Dead({ error: text })
        return Outcome.Retry({ delay: storeDelay(delay.value), error: text })
      })
    )
  }

  /** What the handler's exit makes of the attempt: the outcome, or an effect that decides it (a retry's delay). */
  const outcomeOf = (claim: Claim, exit: Exit.Exit<void, unknown>): AttemptOutcome | Effect.Effect<AttemptOutcome> => {
    const state = claim.state._tag
    if (state === "Lost") return Discarded
    if (Exit.isSuccess(exit)) return Completed
    if (state === "Fenced") return Discarded
    const cause = exit.cause
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const error = failure.value
      if (isFatal(error)) return Outcome.Dead({ error: error.message })
      if (isSnooze(error)) return Outcome.Snoozed({ delay: storeDelay(error.delay) })
      return failedAttempt(claim, error, textOf(error))
    }
    const defect = Cause.dieOption(cause)
    if (Option.isSome(defect)) {
      const value = defect.value
      if (value instanceof NotAnEffect) return Outcome.Dead({ error: value.message })
      return failedAttempt(claim, value, textOf(value))
    }
    // Interrupted.
    switch (claim.cut) {
      case "deadline":
        return ReleasedRefunded
      case "timeout": {
        const list = claim.entry.timeouts!
        publisher.timedOut(claim.job, list.timeoutMs)
        return failedAttempt(claim, list.message, list.message)
      }
      default:
        // By someone else: at shutdown, give the job back; otherwise an attempt that did not finish.
        return core.state === "Stopping" || core.state === "Stopped"
          ? ReleasedRefunded
          : failedAttempt(claim, "interrupted", "interrupted")
    }
  }

  /** Hands the outcome on, and ends the task as the attempt did. */
  const settle = (
    claim: Claim,
    outcome: AttemptOutcome,
    exit: Exit.Exit<void, unknown>,
    result?: unknown
  ): Effect.Effect<void, unknown> => {
    claim.entry.timeouts?.remove(claim)
    const now = clock.unsafeCurrentTimeMillis()
    let durationMs = 0
    if (claim.startedAt >= 0) {
      durationMs = now - claim.startedAt
      publisher.duration(claim.job, durationMs)
    }
    if (outcome._tag === "Discarded") {
      // A lease the store said was lost was evented then; one the worker gave up on is evented now.
      if (claim.state._tag === "Fenced") publisher.leaseLost(claim.job)
      claims.finish(claim, now)
      return exit
    }
    completer.submit(claim, outcome, durationMs, result)
    // While the context runs, the task ends at once: its slot is the claim's, freed when the store took the outcome.
    // Otherwise (stopping, paused) it ends only then, so the context is `Stopped` once every outcome is in the store.
    return core.state === "Running" ? exit : Effect.zipRight(Deferred.await(completer.pendingWritten()), exit)
  }

  const settleExit = (claim: Claim, exit: Exit.Exit<void, unknown>): Effect.Effect<void, unknown> => {
    const outcome = outcomeOf(claim, exit)
    return Effect.isEffect(outcome)
      ? Effect.flatMap(outcome, (decided) => settle(claim, decided, exit))
      : settle(claim, outcome, exit)
  }

  /** The handler's effect for `payload`: a handler that throws or returns no Effect makes a defect. */
  const ended = (claim: Claim) => ({
    onFailure: (cause: Cause.Cause<unknown>): Effect.Effect<void, unknown> => {
      claim.running = false
      return settleExit(claim, Exit.failCause(cause))
    },
    onSuccess: (value: unknown): Effect.Effect<void, unknown> => {
      claim.running = false
      if (claim.state._tag === "Lost") return settle(claim, Discarded, Exit.void)
      const success = claim.entry.handler.job.success
      if (success === undefined) return settle(claim, Completed, Exit.void)
      // The result, encoded by the job type's schema and checked to be JSON; one that is not is only logged.
      const notKept = (problem: string) =>
        Effect.zipRight(
          warn(`the result of job ${claim.job.name} ${claim.job.id} is not kept: ${problem}`),
          settle(claim, Completed, Exit.void)
        )
      return Effect.matchEffect(Schema.encodeUnknown(success)(value), {
        onFailure: (error) => notKept(textOf(error)),
        onSuccess: (encoded) => {
          const problem = notJson(encoded)
          return problem === undefined ? settle(claim, Completed, Exit.void, encoded) : notKept(problem)
        }
      })
    }
  })

  /** Runs the handler, interruptible where it is itself (the rest of the task is not); a cut one is not run. */
  const runHandler = (claim: Claim, payload: unknown): Effect.Effect<void, unknown> => {
    // Cut before it could run (the shutdown deadline while it waited or decoded).
    if (claim.cut !== undefined) return settleExit(claim, interrupted)
    const now = clock.unsafeCurrentTimeMillis()
    claim.startedAt = now
    publisher.wait(claim.job, Math.max(0, now - claim.job.runAt.getTime()))
    claim.entry.timeouts?.add(claim, now)
    claim.running = true
    return Effect.matchCauseEffect(
      Effect.interruptible(handlerEffect(claim.entry.handler as Job.JobHandler<never>, payload)),
      ended(claim)
    )
  }

  const decoded = (claim: Claim): Effect.Effect<void, unknown> => {
    const result = claim.entry.decode(claim.job.payload)
    // A schema without asynchronous parts decodes to an `Either` (an Effect too): no continuation needed.
    if (Either.isEither(result)) {
      if (Either.isRight(result)) return runHandler(claim, result.right)
      return settle(claim, Outcome.Dead({ error: textOf(result.left) }), Exit.fail(result.left))
    }
    return Effect.flatMap(Effect.exit(Effect.interruptible(result)), (exit) => {
      if (Exit.isSuccess(exit)) return runHandler(claim, exit.value)
      const failure = Cause.failureOption(exit.cause)
      // A payload that no longer decodes is dead; a decoding cut off by the shutdown deadline is given back.
      return Option.isSome(failure)
        ? settle(claim, Outcome.Dead({ error: textOf(failure.value) }), exit)
        : settle(claim, ReleasedRefunded, exit)
    })
  }

  /** The task: admitted uninterruptible, so that only the handler (and the waits before it) can be cut. */
  const attempt = (claim: Claim): Effect.Effect<void, unknown> =>
    Effect.suspend(() => {
      claim.begun = true
      if (claim.state._tag !== "Running") {
        // Lost or fenced before it began.
        return settle(claim, Discarded, interrupted)
      }
      const previous = claim.previous
      if (previous !== undefined) {
        claim.previous = undefined
        // Never two attempts of one job at once, even when the first one's lease is already gone.
        const task = previous.task
        if (task !== undefined && previous.state._tag !== "Done") {
          return Effect.zipRight(Effect.exit(Effect.interruptible(Fiber.await(task))), decodedAfterWait(claim))
        }
      }
      return decoded(claim)
    })

  const decodedAfterWait = (claim: Claim): Effect.Effect<void, unknown> =>
    Effect.suspend(() => claim.state._tag !== "Running" ? settle(claim, Discarded, interrupted) : decoded(claim))

  const admit = (
    claim: Claim,
    caller: Fiber.RuntimeFiber<unknown, unknown>,
    flags: RuntimeFlags.RuntimeFlags
  ): boolean => {
    const label = claim.job.name
    if (core.state !== "Running") {
      core.reject(label)
      return false
    }
    const context = Context.make(Job.Current, infoOf(claim.job)) as Context.Context<never>
    claim.task = core.admit(attempt(claim), caller, flags, label, context, () => cut(claim, "deadline")).fiber
    return true
  }

  return { admit, cut, watch }
}
