/**
 * The completer: every outcome of an attempt goes to the store through here, in batches (River's batch completer).
 * One `settle` call carries every outcome that came in while the previous call was on its way, so retries, dead
 * letters and releases batch like completions. An outcome's event and metric are published once the store took it;
 * an outcome whose lease no longer held (`false`) is evented as `JobLeaseLost`, never counted as succeeded.
 *
 * A failed `settle` is tried again (100 ms, doubling, at most 5 s apart) until the context's shutdown deadline; the
 * outcomes it carried then stay unwritten, and their jobs stay leased in the store until their lease expires (they
 * run again: at least once). After the deadline, what is left is tried once, within the shutdown grace.
 */
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Schedule from "effect/Schedule"
import { type JobStore, JobStoreError, type Outcome, type Settlement } from "../../JobStore.js"
import type { Claim, Claims } from "./claims.js"
import type { Publisher } from "./metrics.js"
import type { Shutdown } from "./shutdown.js"
import type { StoreCalls } from "./storeCalls.js"

/** What is settled for a claim, with what its event needs. */
export interface Item {
  readonly claim: Claim
  readonly outcome: Outcome
  readonly durationMs: number
  /** A completed job's result, encoded (JSON), when its job type has a `success` schema. */
  readonly result: unknown
}

export interface Completer {
  /**
   * Hands `outcome` to the store; the result is done once the store took it (its event published, the claim done)
   * or it was given up.
   */
  readonly submit: (claim: Claim, outcome: Outcome, durationMs: number, result?: unknown) => void
  /**
   * Done once the outcomes pending now were written or given up. Called in the same synchronous step as `submit`,
   * so that the outcome just submitted is among them.
   */
  readonly pendingWritten: () => Deferred.Deferred<void>
  /** The batch loop, run on a fiber of the worker's scope. */
  readonly loop: Effect.Effect<never>
  /** Waits until nothing is pending or being written. */
  readonly flushed: Effect.Effect<void>
}

/** The back-off of failed store calls that are tried again: 100 ms, doubling, at most `cap` apart. */
export const backoff = (capMs: number) =>
  Schedule.exponential(Duration.millis(100)).pipe(Schedule.union(Schedule.spaced(Duration.millis(capMs))))

/**
 * `Effect.retry(effect, options)`, for calls made for every batch: the schedule's state is built only once the first
 * try failed (that failure is replayed to it first, so the delays are those of `Effect.retry`).
 */
export const retried = <A, E, X>(
  effect: Effect.Effect<A, E>,
  options: { readonly schedule: Schedule.Schedule<X, E>; readonly while: (error: E) => boolean }
): Effect.Effect<A, E> =>
  Effect.catchAll(effect, (first) => {
    let replay = true
    return Effect.retry(
      Effect.suspend(() => {
        if (!replay) return effect
        replay = false
        return Effect.fail(first)
      }),
      options
    )
  })

export const make = (deps: {
  readonly store: JobStore.Service
  readonly calls: StoreCalls
  readonly claims: Claims
  readonly publisher: Publisher
  readonly clock: Clock.Clock
  readonly shutdown: Shutdown
  readonly warn: (message: string, cause?: unknown) => Effect.Effect<void>
}): Completer => {
  const { calls, claims, clock, publisher, shutdown, store, warn } = deps
  let pending: Array<Item> = []
  /** When the first outcome now pending came in. */
  let firstArrival = 0
  /** Made when someone waits: done once the pending outcomes were written (or given up). */
  let pendingDone: Deferred.Deferred<void> | undefined = undefined
  /** Something is pending or being written; `idle`, when someone waits for it, completes when that ends. */
  let busy = false
  let idle: Deferred.Deferred<void> | undefined = undefined
  const wake = Effect.unsafeMakeLatch(false)

  const submit = (claim: Claim, outcome: Outcome, durationMs: number, result?: unknown): void => {
    claims.settling(claim)
    busy = true
    if (pending.length === 0) firstArrival = clock.unsafeCurrentTimeMillis()
    pending.push({ claim, outcome, durationMs, result })
    wake.unsafeOpen()
  }

  const pendingWritten = (): Deferred.Deferred<void> => pendingDone ??= Deferred.unsafeMake<void>(FiberId.none)

  const now = () => clock.unsafeCurrentTimeMillis()

  /**
   * One `settle` call for outcomes that came in from `arrivedAt` on. Its deadline is cut to the end of the shutdown
   * grace; outcomes that came in after that (a handler that ended past the deadline) get a grace of their own.
   */
  const settleOnce = (
    settlements: ReadonlyArray<Settlement>,
    arrivedAt: number
  ): Effect.Effect<ReadonlyArray<boolean>, JobStoreError> =>
    Effect.suspend(() => {
      const end = arrivedAt >= shutdown.endAt ? arrivedAt + shutdown.graceMs : shutdown.endAt
      const left = end - now()
      if (left <= 0) {
        return Effect.fail(new JobStoreError({ operation: "settle", reason: "the shutdown grace has passed" }))
      }
      const timeout = Duration.toMillis(calls.storeTimeout) <= left ? calls.storeTimeout : Duration.millis(left)
      return calls.run("settle", store.settle(settlements), timeout)
    })

  // Never waits past the shutdown deadline: the last try is made then.
  const schedule = Schedule.modifyDelay(
    backoff(5_000),
    (_, delay) => Duration.millis(Math.max(0, Math.min(Duration.toMillis(delay), shutdown.deadlineAt - now())))
  )

  const settle = (batch: ReadonlyArray<Item>, arrivedAt: number) => {
    const settlements = batch.map((item) => ({
      lease: item.claim.job.lease,
      outcome: item.outcome,
      durationMs: item.durationMs,
      result: item.result
    }))
    return settleOnce(settlements, arrivedAt).pipe(
      Effect.tapError((error) =>
        shutdown.pastDeadline(now())
          ? Effect.void
          : warn(`JobStore.settle of ${batch.length} outcome(s) failed; trying again`, error)
      ),
      (effect) => retried(effect, { schedule, while: () => !shutdown.pastDeadline(now()) })
    )
  }

  const published = (item: Item): void => {
    const job = item.claim.job
    const outcome = item.outcome
    switch (outcome._tag) {
      case "Completed":
        return publisher.succeeded(job, item.durationMs)
      case "Retry":
        return publisher.retried(job, Duration.toMillis(outcome.delay), outcome.error)
      case "Dead":
        return publisher.deadLettered(job, outcome.error)
      case "Released":
        return publisher.released(job, outcome.refund)
      case "Snoozed":
        return publisher.snoozed(job, Duration.toMillis(outcome.delay))
    }
  }

  const applied = (batch: ReadonlyArray<Item>, results: ReadonlyArray<boolean>): void => {
    const at = now()
    for (let i = 0; i < batch.length; i++) {
      const item = batch[i]!
      claims.finish(item.claim, at)
      if (results[i] === true) published(item)
      else publisher.leaseLost(item.claim.job)
    }
  }

  const givenUp = (batch: ReadonlyArray<Item>, error: JobStoreError): Effect.Effect<void> => {
    const at = now()
    for (const item of batch) claims.finish(item.claim, at)
    return warn(
      `JobStore.settle of ${batch.length} outcome(s) failed at the shutdown deadline (${error.message}); ` +
        "their jobs stay leased until their lease expires, then run again"
    )
  }

  const round: Effect.Effect<void> = Effect.suspend(() => {
    const batch = pending
    const done = pendingDone
    const arrivedAt = firstArrival
    pending = []
    pendingDone = undefined
    return settle(batch, arrivedAt).pipe(
      Effect.matchEffect({
        onFailure: (error) => givenUp(batch, error),
        onSuccess: (results) => Effect.sync(() => applied(batch, results))
      }),
      Effect.ensuring(Effect.sync(() => {
        if (done !== undefined) Deferred.unsafeDone(done, Exit.void)
        if (pending.length === 0) {
          busy = false
          if (idle !== undefined) Deferred.unsafeDone(idle, Exit.void)
          idle = undefined
        }
      }))
    )
  })

  const loop: Effect.Effect<never> = Effect.forever(
    Effect.zipRight(
      wake.await,
      Effect.suspend(() => {
        wake.unsafeClose()
        return pending.length === 0 ? Effect.void : Effect.uninterruptible(round)
      })
    )
  )

  const flushed = Effect.suspend(() =>
    busy ? Deferred.await(idle ??= Deferred.unsafeMake<void>(FiberId.none)) : Effect.void
  )

  return { submit, pendingWritten, loop, flushed }
}
