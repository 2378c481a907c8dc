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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Inspectable from "effect/Inspectable"
import * as Option from "effect/Option"
import { JobStoreError } from "../../JobStore.js"
import type { WorkerContext } from "../../WorkerContext.js"

export type CallKind = "claim" | "renew" | "settle" | "reap" | "wakeups" | "stats"

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
  readonly run: <A, R = never>(
    kind: CallKind,
    call: Effect.Effect<A, JobStoreError, R>,
    timeout?: Duration.Duration
  ) => Effect.Effect<A, JobStoreError, R>
  /** Reports a call of `kind` that succeeded or failed outside `run` (a wake-up subscription that dropped). */
  readonly succeeded: (kind: CallKind) => Effect.Effect<void>
  readonly failed: (kind: CallKind, reason: string) => Effect.Effect<void>
  /** The kinds of calls failing now, and why: what readiness shows. */
  readonly failing: ReadonlyMap<CallKind, string>
  readonly storeTimeout: Duration.Duration
}

export const make = (ctx: WorkerContext.Service, storeTimeout: Duration.Duration): StoreCalls => {
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

  const run = <A, R = never>(
    kind: CallKind,
    call: Effect.Effect<A, JobStoreError, R>,
    timeout: Duration.Duration = storeTimeout
  ): Effect.Effect<A, JobStoreError, R> =>
    call.pipe(
      Effect.catchAllDefect((defect) =>
        Effect.fail(new JobStoreError({ operation: kind, reason: `died: ${textOf(defect)}`, cause: defect }))
      ),
      Effect.disconnect,
      Effect.timeoutFail({ duration: timeout, onTimeout: noAnswer(kind, timeout) }),
      Effect.onExit((exit) => {
        if (Exit.isSuccess(exit)) return succeeded(kind)
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure)) return failed(kind, failure.value.message)
        return Effect.void
      })
    )

  return { run, succeeded, failed, failing, storeTimeout }
}
