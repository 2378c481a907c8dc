/**
 * Leases: renewal and fencing.
 *
 * - **Renewal.** Every `lease / 3`, one `renew` call extends every lease the worker believes holds, with a deadline
 *   of `min(storeTimeout, lease / 3)`; a failed call is tried again on a back-off (100 ms, doubling, at most
 *   `min(lease / 3, 5 s)`). The store's answer names the leases it no longer holds: their jobs are cut (a job not
 *   started yet is dropped), their outcome discarded.
 * - **Fencing.** Each claim knows until when its lease surely holds, by this worker's clock: the instant its claim
 *   or last successful renewal was *sent*, plus the lease. Whatever the renewals do (fail, hang, answer late), a
 *   fence timer stops every job not renewed by `until - margin` (`margin`: a tenth of the lease, at most 5 s, at
 *   least a few ms), so that no other worker can claim it while it still runs here; the job keeps its slot until
 *   `until` has passed (the store may count its lease until then).
 * - **Cancellation.** A job cancelled in the store (`JobStore.cancel`) while this worker holds it is stopped as soon
 *   as the store's `cancellations` name it, as a lost lease is (its handler interrupted, its outcome discarded), and
 *   evented as `JobCancelled`; a cancellation the worker did not hear of is found by the next renewal.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { JobStore } from "../../JobStore.js"
import type { Claim, Claims } from "./claims.js"
import { backoff } from "./completer.js"
import type { Executor } from "./executor.js"
import type { Publisher } from "./metrics.js"
import type { StoreCalls } from "./storeCalls.js"

export interface Leases {
  /** The renewal loop and the fence timer, run on fibers of the worker's scope. */
  readonly renewer: Effect.Effect<never>
  readonly fencer: Effect.Effect<never>
  /** Claims were added: the fence timer watches them. */
  readonly claimed: () => void
  /** The store cancelled these jobs: stop those this worker holds. */
  readonly cancelled: (ids: ReadonlyArray<string>) => void
}

/** How often the leases are renewed: a third of the lease. */
export const renewEvery = (lease: Duration.Duration): Duration.Duration =>
  Duration.millis(Math.max(1, Duration.toMillis(lease) / 3))

/** How long before a lease could lapse the worker stops a job it could not renew. */
export const fenceMargin = (leaseMillis: number): number =>
  Math.max(Math.min(leaseMillis / 10, 5_000), Math.min(5, leaseMillis / 2))

export const make = (deps: {
  readonly store: JobStore.Service
  readonly calls: StoreCalls
  readonly claims: Claims
  readonly executor: Executor
  readonly publisher: Publisher
  readonly clock: Clock.Clock
  readonly lease: Duration.Duration
  /** A fenced job's slot freed once its lease lapsed: the job may be claimable again. */
  readonly lapsed: () => void
  readonly warn: (message: string, cause?: unknown) => Effect.Effect<void>
}): Leases => {
  const { calls, claims, clock, executor, publisher, store, warn } = deps
  const lease = deps.lease
  const leaseMillis = Duration.toMillis(lease)
  const every = renewEvery(lease)
  const renewTimeout = Duration.min(calls.storeTimeout, every)
  const margin = fenceMargin(leaseMillis)
  const added = Effect.unsafeMakeLatch(false)

  /** The store no longer holds these leases: cut their jobs. */
  const lost = (sent: ReadonlyArray<Claim>, ids: ReadonlyArray<string>): void => {
    if (ids.length === 0) return
    const byId = new Map(sent.map((claim) => [claim.job.id, claim]))
    for (const id of ids) {
      const claim = byId.get(id)
      // Only the claim this renewal was for, still live: a job being settled learns about its lease from the settle.
      if (claim === undefined || claims.live.get(id) !== claim) continue
      const wasRunning = claim.state._tag === "Running"
      if (!claims.lose(claim)) continue
      publisher.leaseLost(claim.job)
      if (wasRunning) executor.cut(claim, "lease")
    }
  }

  const cancelled = (ids: ReadonlyArray<string>): void => {
    for (const id of ids) {
      const claim = claims.live.get(id)
      if (claim === undefined) continue
      const wasRunning = claim.state._tag === "Running"
      if (!claims.lose(claim)) continue
      publisher.cancelled(claim.job)
      if (wasRunning) executor.cut(claim, "lease")
    }
  }

  const renewOnce: Effect.Effect<void, unknown> = Effect.suspend(() => {
    if (claims.live.size === 0) return Effect.void
    const sent = Array.from(claims.live.values())
    const sentAt = clock.unsafeCurrentTimeMillis()
    return calls.run("renew", store.renew(sent.map((claim) => claim.job.lease), lease), renewTimeout).pipe(
      Effect.tapError((error) => warn(`JobStore.renew of ${sent.length} lease(s) failed; trying again`, error)),
      Effect.map((ids) => {
        const until = sentAt + leaseMillis
        for (const claim of sent) if (claim.until < until) claim.until = until
        lost(sent, ids)
      })
    )
  })

  /**
   * After a failed renewal, the next try comes on the back-off, or in time to save the first lease the fence would
   * otherwise stop (half a margin before its fence), whichever is first: a store back from a short outage then
   * keeps every job running.
   */
  const retrySchedule = Schedule.modifyDelay(
    backoff(Math.min(Duration.toMillis(every), 5_000)),
    (_, delay) => {
      const now = clock.unsafeCurrentTimeMillis()
      let first = Infinity
      for (const claim of claims.live.values()) if (claim.until < first) first = claim.until
      const save = first - margin * 1.5 - now
      return save >= 1 && save < Duration.toMillis(delay) ? Duration.millis(save) : delay
    }
  )

  const renewer: Effect.Effect<never> = Effect.retry(renewOnce, retrySchedule)
    .pipe(
      Effect.ignore,
      Effect.repeat(Schedule.spaced(every)),
      Effect.delay(every),
      Effect.zipRight(Effect.never)
    )

  /** Stops the jobs whose lease may lapse within the margin; frees the slots of those whose lease has lapsed. */
  const fenceStep: Effect.Effect<void> = Effect.suspend(() => {
    const now = clock.unsafeCurrentTimeMillis()
    let next = Infinity
    let fenced: Array<Claim> | undefined
    for (const claim of claims.live.values()) {
      const at = claim.until - margin
      if (at <= now) (fenced ??= []).push(claim)
      else if (at < next) next = at
    }
    let warning: Effect.Effect<void> | undefined
    if (fenced !== undefined) {
      warning = warn(`could not renew ${fenced.length} lease(s) in time: stopping their job(s) before they lapse`)
      for (const claim of fenced) {
        const queued = claim.state._tag === "Queued"
        if (!claims.fence(claim)) continue
        // A job that never started is evented now; one that runs, when its task ends without success.
        if (queued) publisher.leaseLost(claim.job)
        else executor.cut(claim, "lease")
      }
    }
    const before = claims.held
    const lapse = claims.freeLapsed(now)
    if (claims.held < before) deps.lapsed()
    next = Math.min(next, lapse)
    let wait: Effect.Effect<void>
    if (next === Infinity) {
      added.unsafeClose()
      wait = added.await
    } else {
      wait = Effect.sleep(Duration.millis(Math.max(1, next - now)))
    }
    return warning === undefined ? wait : Effect.zipRight(warning, wait)
  })

  const fencer: Effect.Effect<never> = Effect.forever(fenceStep)

  return { renewer, fencer, claimed: () => added.unsafeOpen(), cancelled }
}
