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
 * - `Discarded`: its lease was lost (the store said so, or the worker stopped it before the lease could lapse):
 *   nothing is sent to the store.
 *
 * The handler runs on a fiber of its own, which the task waits for. Cutting an attempt short (timeout, deadline,
 * lost lease) interrupts that fiber only while it is interruptible, checking again every few milliseconds
 * otherwise: Effect 3 delivers an interruption that arrives inside an uninterruptible region when the region ends,
 * and throws away what the region returned, so a handler whose last step is uninterruptible would lose its success.
 * The context's own interruption of the task at its shutdown deadline reaches the task, not the handler, and is
 * turned into the same careful cut.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Inspectable from "effect/Inspectable"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Job from "../../Job.js"
import { type ClaimedJob, Outcome } from "../../JobStore.js"
import type { Tracked, WorkerContext } from "../../WorkerContext.js"
import type { TaskRejected } from "../../WorkerContextError.js"
import { maxDelayMs } from "../jobStore.js"
import type { Claim, Claims } from "./claims.js"
import type { Completer } from "./completer.js"
import type { Publisher } from "./metrics.js"
import { textOf } from "./storeCalls.js"

/** How an attempt ended, as the executor decided it: a store `Outcome`, or `Discarded` (nothing to send). */
export type AttemptOutcome = Outcome | { readonly _tag: "Discarded" }

const Discarded: AttemptOutcome = { _tag: "Discarded" }
const ReleasedRefunded: AttemptOutcome = Outcome.Released({ refund: true })
const Completed: AttemptOutcome = Outcome.Completed()

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

const isFatal = (error: unknown): error is Job.Fatal =>
  error instanceof Job.Fatal ||
  (typeof error === "object" && error !== null && (error as { readonly _tag?: unknown })._tag === "JobFatal")

/** A handler that returned something else than an Effect: a bug no retry will fix. */
class NotAnEffect {
  constructor(readonly message: string) {}
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
  runAt: job.runAt
})

/** How often a cut looks again at a handler that is in an uninterruptible region: 5 ms, doubling, at most 100 ms. */
const recheck = Schedule.exponential(Duration.millis(5)).pipe(Schedule.union(Schedule.spaced(Duration.millis(100))))

export interface Executor {
  /** Tracks the attempt of `claim` as a task; fails with `TaskRejected` when the context refuses it. */
  readonly start: (claim: Claim) => Effect.Effect<Tracked<void, unknown>, TaskRejected>
  /** Cuts the attempt of `claim` short, for `why`: see the module's description. */
  readonly cut: (claim: Claim, why: Claim["cut"] & string) => Effect.Effect<void>
  /** The watcher of one timeout list, run on a fiber of the worker's scope. */
  readonly watch: (list: TimeoutList) => Effect.Effect<never>
}

export const make = (deps: {
  readonly ctx: WorkerContext.Service
  readonly claims: Claims
  readonly completer: Completer
  readonly publisher: Publisher
  readonly clock: Clock.Clock
  /**
   * Where the cuts run: a set that outlives the worker's finalizer (a cut made while the worker's scope closes must
   * still run), and interrupts what is left when it closes.
   */
  readonly cutters: FiberSet.FiberSet<unknown, unknown>
  readonly warn: (message: string, cause?: unknown) => Effect.Effect<void>
}): Executor => {
  const { claims, clock, completer, ctx, cutters, publisher, warn } = deps

  /** Interrupts `fiber` once it is interruptible (at once, if it is), from a fiber of the worker's scope. */
  const interruptWhenInterruptible = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<void> =>
    Effect.asVoid(FiberSet.run(
      cutters,
      // Interruptible, though forked from the task's uninterruptible part: the worker's scope must be able to end it.
      Effect.interruptible(Effect.repeat(
        Effect.suspend(() =>
          fiber.unsafePoll() !== null ? Effect.succeed(true) : Effect.map(fiber.runtimeFlags, (flags) => {
            if (fiber.unsafePoll() !== null) return true
            if (!RuntimeFlags.interruption(flags)) return false
            fiber.unsafeInterruptAsFork(FiberId.none)
            return true
          })
        ),
        { schedule: recheck, until: (done) => done }
      ))
    ))

  const cut = (claim: Claim, why: "timeout" | "deadline" | "lease"): Effect.Effect<void> => {
    if (claim.cut === undefined || why === "lease") claim.cut = why
    const handler = claim.handler
    return handler === undefined || handler.unsafePoll() !== null ? Effect.void : interruptWhenInterruptible(handler)
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
      return cut(first, "timeout")
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
        // Beyond what a store holds (an uncapped exponential at attempt 44 and later): the longest it holds.
        const ms = Math.min(Math.max(0, Math.ceil(Duration.toMillis(delay.value))), maxDelayMs)
        return Outcome.Retry({ delay: Duration.millis(ms), error: text })
      })
    )
  }

  const shuttingDown = Effect.map(ctx.state, (state) => state === "Stopping" || state === "Stopped")

  /** What the handler's exit makes of the attempt. */
  const outcomeOf = (claim: Claim, exit: Exit.Exit<void, unknown>): Effect.Effect<AttemptOutcome> => {
    const state = claim.state._tag
    if (state === "Lost") return Effect.succeed(Discarded)
    if (Exit.isSuccess(exit)) return Effect.succeed(Completed)
    if (state === "Fenced") return Effect.succeed(Discarded)
    const cause = exit.cause
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const error = failure.value
      if (isFatal(error)) return Effect.succeed(Outcome.Dead({ error: error.message }))
      return failedAttempt(claim, error, textOf(error))
    }
    const defect = Cause.dieOption(cause)
    if (Option.isSome(defect)) {
      const value = defect.value
      if (value instanceof NotAnEffect) return Effect.succeed(Outcome.Dead({ error: value.message }))
      return failedAttempt(claim, value, textOf(value))
    }
    // Interrupted.
    switch (claim.cut) {
      case "deadline":
        return Effect.succeed(ReleasedRefunded)
      case "timeout": {
        const list = claim.entry.timeouts!
        return Effect.zipRight(
          publisher.timedOut(claim.job, list.timeoutMs),
          failedAttempt(claim, list.message, list.message)
        )
      }
      default:
        // By someone else: at shutdown, give the job back; otherwise an attempt that did not finish.
        return Effect.flatMap(
          shuttingDown,
          (down) =>
            down
              ? Effect.succeed(Outcome.Released({ refund: true }))
              : failedAttempt(claim, "interrupted", "interrupted")
        )
    }
  }

  /** Hands the outcome on, and ends the task as the attempt did. */
  const settle = (
    claim: Claim,
    outcome: AttemptOutcome,
    exit: Exit.Exit<void, unknown>
  ): Effect.Effect<void, unknown> => {
    claim.entry.timeouts?.remove(claim)
    const now = clock.unsafeCurrentTimeMillis()
    let durationMs = 0
    if (claim.startedAt >= 0) {
      durationMs = now - claim.startedAt
      publisher.duration(claim.job, durationMs)
    }
    claim.handler = undefined
    if (outcome._tag === "Discarded") {
      const fenced = claim.state._tag === "Fenced"
      claims.finish(claim, now)
      // A lease the store said was lost was evented then; one the worker gave up on is evented now.
      return fenced ? Effect.zipRight(publisher.leaseLost(claim.job), exit) : exit
    }
    const written = completer.submit(claim, outcome, durationMs)
    // While the context runs, the task ends at once: its slot is the claim's, freed when the store took the outcome.
    // Otherwise (stopping, paused) it ends only then, so the context is `Stopped` once every outcome is in the store.
    return Effect.flatMap(ctx.state, (state) => state === "Running" ? exit : Effect.zipRight(written, exit))
  }

  const handlerOf = (claim: Claim, payload: unknown): Effect.Effect<void, unknown> =>
    Effect.suspend(() => {
      const result: unknown = claim.entry.handler.run(payload)
      if (Effect.isEffect(result)) return result as Effect.Effect<void, unknown>
      return Effect.die(
        new NotAnEffect(
          `the handler of job ${claim.job.name} returned ${describeValue(result)} instead of an Effect`
        )
      )
    })

  /** Runs the handler on a fiber of its own and waits for it; a cut of the task becomes a careful cut of it. */
  const runHandler = (
    claim: Claim,
    payload: unknown,
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  ): Effect.Effect<void, unknown> => {
    const now = clock.unsafeCurrentTimeMillis()
    claim.startedAt = now
    publisher.wait(claim.job, Math.max(0, now - claim.job.runAt.getTime()))
    claim.entry.timeouts?.add(claim, now)
    // A fiber of its own, not the task's child (an interruption of the task, the context's at its shutdown deadline,
    // would reach a child at once, blindly), started at once with the task's services and fiber refs: a handler that
    // ends without suspending is done before the task waits for it.
    const forked = Effect.withFiberRuntime<Fiber.RuntimeFiber<void, unknown>>((task, status) =>
      Effect.succeed(Runtime.runFork(
        Runtime.make({
          context: task.currentContext,
          fiberRefs: task.getFiberRefs(),
          runtimeFlags: RuntimeFlags.enable(status.runtimeFlags, RuntimeFlags.Interruption)
        }),
        handlerOf(claim, payload),
        { immediate: true }
      ))
    )
    return Effect.flatMap(forked, (fiber) => {
      claim.handler = fiber
      // Cut while the fiber was being forked (a lost lease, a timeout of zero): cut it now.
      const before = claim.cut === undefined ? Effect.void : cut(claim, claim.cut)
      return Effect.zipRight(
        before,
        Effect.flatMap(Effect.exit(restore(Fiber.await(fiber))), (waited) => {
          if (Exit.isSuccess(waited)) return settleExit(claim, waited.value)
          // The task was interrupted: the context's shutdown deadline. The handler is cut with care, and waited for.
          return Effect.zipRight(
            cut(claim, "deadline"),
            Effect.flatMap(Fiber.await(fiber), (exit) => settleExit(claim, exit))
          )
        })
      )
    })
  }

  const settleExit = (claim: Claim, exit: Exit.Exit<void, unknown>): Effect.Effect<void, unknown> =>
    Effect.flatMap(outcomeOf(claim, exit), (outcome) => settle(claim, outcome, exit))

  const decoded = (
    claim: Claim,
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  ): Effect.Effect<void, unknown> => {
    const result = claim.entry.decode(claim.job.payload)
    // A schema without asynchronous parts decodes to an `Either` (an Effect too): no continuation needed.
    if (Either.isEither(result)) {
      if (Either.isRight(result)) return runHandler(claim, result.right, restore)
      return settle(claim, Outcome.Dead({ error: textOf(result.left) }), Exit.fail(result.left))
    }
    return Effect.flatMap(Effect.exit(restore(result)), (exit) => {
      if (Exit.isSuccess(exit)) return runHandler(claim, exit.value, restore)
      const failure = Cause.failureOption(exit.cause)
      // A payload that no longer decodes is dead; a decoding cut off by the shutdown deadline is given back.
      return Option.isSome(failure)
        ? settle(claim, Outcome.Dead({ error: textOf(failure.value) }), exit)
        : settle(claim, ReleasedRefunded, exit)
    })
  }

  const attempt = (claim: Claim): Effect.Effect<void, unknown> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        claim.begun = true
        if (claim.state._tag !== "Running") {
          // Lost or fenced before it began.
          return settle(claim, Discarded, Exit.interrupt(FiberId.none))
        }
        const previous = claim.previous
        if (previous !== undefined) {
          claim.previous = undefined
          // Never two attempts of one job at once, even when the first one's lease is already gone.
          const task = previous.task
          if (task !== undefined && previous.state._tag !== "Done") {
            return Effect.zipRight(Effect.exit(restore(Fiber.await(task))), decodedAfterWait(claim, restore))
          }
        }
        return decoded(claim, restore)
      })
    )

  const decodedAfterWait = (
    claim: Claim,
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  ): Effect.Effect<void, unknown> =>
    Effect.suspend(() => {
      if (claim.state._tag !== "Running") return settle(claim, Discarded, Exit.interrupt(FiberId.none))
      return decoded(claim, restore)
    })

  const options = (claim: Claim) => ({
    label: claim.job.name,
    whenPaused: "reject" as const,
    context: Context.make(Job.Current, infoOf(claim.job)) as Context.Context<never>
  })

  const start = (claim: Claim): Effect.Effect<Tracked<void, unknown>, TaskRejected> =>
    Effect.map(ctx.track(attempt(claim), options(claim)), (tracked) => {
      claim.task = tracked.fiber
      return tracked
    })

  return { start, cut, watch }
}
