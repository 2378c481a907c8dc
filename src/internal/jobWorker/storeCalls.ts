/**
 * Every call the engine makes to its store goes through here: each gets a deadline, and each kind of call reports
 * its health to the context's readiness check `"job store"`.
 *
 * - **Deadline.** A call that has not answered by its deadline (`storeTimeout`, or shorter) is given up at once, not
 *   waited out: it runs disconnected (`Effect.disconnect`), so interrupting or timing it out returns without waiting
 *   for the store (the PostgreSQL store destroys the connection of an interrupted call). It then fails with a
 *   `JobStoreError` ("no answer within 10s"). A defect of a store call is turned into a `JobStoreError` too: a broken
 *   store must not kill the worker's loops.
 * - **Readiness.** The check is unready while any kind of call (claim, renew, settle, reap, wakeups, stats) last
 *   failed, and ready again only once every kind that failed has succeeded since. An interrupted call tells nothing.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Inspectable from "effect/Inspectable"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import { JobStoreError } from "../../JobStore.js"
import type { WorkerContext } from "../../WorkerContext.js"

export type CallKind = "claim" | "renew" | "settle" | "reap" | "wakeups" | "stats" | "prune" | "enqueueSlot"

/** The readiness check a job worker reports its store's health under. */
export const storeCheck = "job store"

/** A failure or defect as text for a log line or a readiness reason. */
export const textOf = (error: unknown): string => {
  if (typeof error === "string") return error
  if (typeof error === "object" && error !== null) {
    const message = (error as { readonly message?: unknown }).message
    if (typeof message === "string" && message.length > 0) return message
    if (error instanceof Error && !("_tag" in error)) return error.name
  }
  return Inspectable.toStringUnknown(error, 0)
}

export interface StoreCalls {
  /**
   * Runs `call`, a store call of `kind`, with a deadline of `timeout` (default: `storeTimeout`), and reports how it
   * ended. Fails with a `JobStoreError` when the store fails, dies, or does not answer in time.
   */
  readonly run: <A>(
    kind: CallKind,
    call: Effect.Effect<A, JobStoreError>,
    timeout?: Duration.Duration
  ) => Effect.Effect<A, JobStoreError>
  /** As `run`, for a call that needs the caller's services (a wake-up subscription needs its scope). */
  readonly runWith: <A, R>(
    kind: CallKind,
    call: Effect.Effect<A, JobStoreError, R>,
    timeout?: Duration.Duration
  ) => Effect.Effect<A, JobStoreError, R>
  /** Reports a call of `kind` that succeeded or failed outside `run` (a wake-up subscription that dropped). */
  readonly succeeded: (kind: CallKind) => Effect.Effect<void>
  readonly failed: (kind: CallKind, reason: string) => Effect.Effect<void>
  /** Gives up, at `at` (this worker's clock) at the latest, every call on its way: shutdown has a deadline. */
  readonly shorten: (at: number) => void
  /** Gives up the calls past their deadline; run on a fiber of the worker's scope. */
  readonly watchdog: Effect.Effect<never>
  /** The kinds of calls failing now, and why: what readiness shows. */
  readonly failing: ReadonlyMap<CallKind, string>
  readonly storeTimeout: Duration.Duration
}

/** A call on its way, watched by the watchdog. */
interface Outstanding {
  deadline: number
  readonly fiber: Fiber.RuntimeFiber<unknown, JobStoreError>
  readonly timeout: () => void
  done: boolean
}

export const make = (deps: {
  readonly ctx: WorkerContext.Service
  readonly clock: Clock.Clock
  /** Runs each call on a fiber of its own, with the worker's services and fiber refs. */
  readonly runtime: Runtime.Runtime<never>
  readonly storeTimeout: Duration.Duration
  /** The store's calls answer at once (`JobStore.Driver.immediate`): no deadline, no fiber of their own. */
  readonly immediate: boolean
}): StoreCalls => {
  const { clock, ctx, immediate, runtime, storeTimeout } = deps
  const failing = new Map<CallKind, string>()
  let reported: string | undefined = undefined

  /** Tells the context the state of `failing`, when it changed what readiness shows. */
  const report = (): Effect.Effect<void> => {
    if (failing.size === 0) {
      if (reported === undefined) return Effect.void
      reported = undefined
      return ctx.setReady(storeCheck)
    }
    const first = failing.values().next().value as string
    if (reported === first) return Effect.void
    reported = first
    return ctx.setUnready(storeCheck, first)
  }

  const succeeded = (kind: CallKind): Effect.Effect<void> => {
    if (!failing.has(kind)) return Effect.void
    failing.delete(kind)
    return report()
  }

  const failed = (kind: CallKind, reason: string): Effect.Effect<void> => {
    // `stats` is a diagnostic the worker makes now and then, not a call it needs to work.
    if (kind === "stats") return Effect.void
    failing.set(kind, reason)
    return report()
  }

  const noAnswer = (kind: CallKind, timeout: Duration.Duration) => () =>
    new JobStoreError({ operation: kind, reason: `no answer within ${Duration.format(timeout)}` })

  const reportExit = (kind: CallKind) => <A>(exit: Exit.Exit<A, JobStoreError>): Effect.Effect<void> => {
    if (Exit.isSuccess(exit)) return succeeded(kind)
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) return failed(kind, failure.value.message)
    return Effect.void
  }

  const noDefects = <A, R>(kind: CallKind, call: Effect.Effect<A, JobStoreError, R>) =>
    Effect.catchAllDefect(
      call,
      (defect) => Effect.fail(new JobStoreError({ operation: kind, reason: `died: ${textOf(defect)}`, cause: defect }))
    )

  // The calls on their way, and a watchdog that gives up those past their deadline: one sleeping fiber for all of
  // them, instead of a timer and a race per call.
  const outstanding = new Set<Outstanding>()
  const watched = Effect.unsafeMakeLatch(false)
  /** Completed to wake the watchdog early: some deadline moved closer. */
  let poke = Deferred.unsafeMake<void>(FiberId.none)
  let poked = false
  /** When the watchdog wakes next: a call due before then pokes it. */
  let wakeAt = Infinity
  const wake = (): void => {
    poked = true
    Deferred.unsafeDone(poke, Exit.void)
  }
  /** No call outlives this instant: the end of the shutdown grace, once shutdown began. */
  let latest = Infinity
  const shorten = (at: number): void => {
    latest = Math.min(latest, at)
    for (const call of outstanding) if (call.deadline > at) call.deadline = at
    if (at < wakeAt) wake()
  }
  const watchdog: Effect.Effect<never> = Effect.forever(Effect.suspend(() => {
    if (poked) {
      poked = false
      poke = Deferred.unsafeMake<void>(FiberId.none)
    }
    const now = clock.unsafeCurrentTimeMillis()
    let earliest = Infinity
    for (const call of outstanding) {
      if (call.deadline <= now) call.timeout()
      else if (call.deadline < earliest) earliest = call.deadline
    }
    if (outstanding.size === 0) {
      wakeAt = Infinity
      watched.unsafeClose()
      return watched.await
    }
    wakeAt = earliest
    return Effect.raceFirst(Effect.sleep(Duration.millis(earliest - now)), Deferred.await(poke))
  }))

  /**
   * The call runs on a fiber of its own, started at once: one that ends without suspending (the memory store's) is
   * answered at once; the watchdog watches the others.
   */
  const watchedCall = <A>(
    kind: CallKind,
    call: Effect.Effect<A, JobStoreError>,
    timeout: Duration.Duration
  ): Effect.Effect<A, JobStoreError> =>
    Effect.suspend(() => {
      const fiber = Runtime.runFork(runtime, noDefects(kind, call))
      return fiber.unsafePoll() ?? watch(kind, fiber, timeout)
    })

  const watch = <A>(
    kind: CallKind,
    fiber: Fiber.RuntimeFiber<A, JobStoreError>,
    timeout: Duration.Duration
  ): Effect.Effect<A, JobStoreError> =>
    Effect.async<A, JobStoreError>((resume) => {
      const entry: Outstanding = {
        deadline: Math.min(clock.unsafeCurrentTimeMillis() + Duration.toMillis(timeout), latest),
        fiber,
        done: false,
        timeout: () => {
          // Given up without waiting: the store's own interruption (a destroyed connection) runs on its own.
          entry.done = true
          outstanding.delete(entry)
          fiber.unsafeInterruptAsFork(FiberId.none)
          resume(Effect.fail(noAnswer(kind, timeout)()))
        }
      }
      outstanding.add(entry)
      watched.unsafeOpen()
      if (entry.deadline < wakeAt && wakeAt !== Infinity) wake()
      fiber.addObserver((exit) => {
        if (entry.done) return
        entry.done = true
        outstanding.delete(entry)
        resume(exit)
      })
      return Effect.sync(() => {
        if (entry.done) return
        entry.done = true
        outstanding.delete(entry)
        fiber.unsafeInterruptAsFork(FiberId.none)
      })
    })

  const run = <A>(
    kind: CallKind,
    call: Effect.Effect<A, JobStoreError>,
    timeout: Duration.Duration = storeTimeout
  ): Effect.Effect<A, JobStoreError> =>
    Effect.onExit(immediate ? noDefects(kind, call) : watchedCall(kind, call, timeout), reportExit(kind))

  /**
   * A call that needs the caller's services (a wake-up subscription needs its scope): it runs disconnected, under a
   * timer of its own. Only from an interruptible region: the timer's race forks fibers that inherit the region.
   */
  const runWith = <A, R>(
    kind: CallKind,
    call: Effect.Effect<A, JobStoreError, R>,
    timeout: Duration.Duration = storeTimeout
  ): Effect.Effect<A, JobStoreError, R> =>
    noDefects(kind, call).pipe(
      Effect.disconnect,
      Effect.timeoutFail({ duration: timeout, onTimeout: noAnswer(kind, timeout) }),
      Effect.onExit(reportExit(kind))
    )

  return { run, runWith, succeeded, failed, failing, storeTimeout, watchdog, shorten }
}
