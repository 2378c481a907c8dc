/**
 * Maintenance: the loops that keep the worker claiming and the store tidy, each a `Schedule` (River's
 * `internal/maintenance`).
 *
 * - **Reap**, every `reapInterval`: expired leases (of any worker) go back to ready, or to the dead letters when that
 *   was their last attempt; each job buried so is published as `JobDeadLettered` by the worker whose call buried it.
 *   At the same cadence, a queue that holds ready jobs the worker cannot run is reported (see `Unserved`), and the
 *   store is pruned (dead letters past their retention; on PostgreSQL, the counts folded).
 * - **Poll**, every `pollInterval`: there may be jobs (those that came due by their `runAt` wake nobody).
 * - **Wake-ups**: a subscription to the store's wake-ups, live when it returns; a wake-up for a served queue makes
 *   the producer claim. Beside it, one to the store's cancellations: the jobs cancelled that this worker holds are
 *   stopped. A subscription that fails or ends is made again on a back-off (100 ms, doubling, at most 5 s).
 */
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type { JobStats, JobStore } from "../../JobStore.js"
import { backoff } from "./completer.js"
import type { Publisher } from "./metrics.js"
import type { Producer } from "./producer.js"
import type { StoreCalls } from "./storeCalls.js"

export interface Maintenance {
  readonly reaper: Effect.Effect<never>
  readonly poller: Effect.Effect<never>
  readonly wakeups: Effect.Effect<never>
  /** Waits until the first wake-up subscription is live, or could not be made (it is a store call: bounded). */
  readonly subscribed: Effect.Effect<void>
}

/**
 * Warns once per job name that the store holds ready in a served queue and no handler of this worker runs, while
 * the worker's own claims come back short: jobs that will never run here. `check` reads the store's `readyByName`.
 */
export class Unserved {
  private readonly warned = new Set<string>()
  constructor(private readonly names: ReadonlySet<string>, private readonly queues: ReadonlyArray<string>) {}

  /** The names to warn about now, given the store's counts. */
  unserved(stats: JobStats): ReadonlyArray<string> {
    const readyHere = this.queues.some((queue) => (stats.byQueue[queue]?.ready ?? 0) > 0)
    if (!readyHere) return []
    const found: Array<string> = []
    for (const [name, count] of Object.entries(stats.readyByName)) {
      if (count > 0 && !this.names.has(name) && !this.warned.has(name)) {
        this.warned.add(name)
        found.push(name)
      }
    }
    return found
  }
}

export const make = (deps: {
  readonly store: JobStore.Service
  readonly calls: StoreCalls
  readonly producer: Producer
  readonly publisher: Publisher
  readonly served: ReadonlySet<string>
  readonly unserved: Unserved
  readonly queues: ReadonlyArray<string>
  readonly pollInterval: Duration.Duration
  readonly reapInterval: Duration.Duration
  /** The store cancelled these jobs (`JobStore.cancellations`). */
  readonly cancelled: (ids: ReadonlyArray<string>) => void
  readonly warn: (message: string, cause?: unknown) => Effect.Effect<void>
}): Maintenance => {
  const { calls, producer, publisher, served, store, warn } = deps

  const checkUnserved: Effect.Effect<void> = Effect.suspend(() => {
    if (!producer.starved()) return Effect.void
    return calls.run("stats", store.stats).pipe(
      Effect.flatMap((stats) => {
        const names = deps.unserved.unserved(stats)
        if (names.length === 0) return Effect.void
        return warn(
          `the store holds ready jobs no handler of this worker runs, in the queues it serves ` +
            `(${deps.queues.join(", ")}): ${
              names.map((name) => `${name} (${stats.readyByName[name]} ready)`).join(", ")
            }; they wait for a worker that has a handler for them`
        )
      }),
      Effect.ignore
    )
  })

  // Dead letters past the store's retention go, a bounded batch per call, again at once while batches are full (at
  // most 10 per round: the next round goes on). A failure waits for the next round.
  const pruneOnce: Effect.Effect<void> = calls.run("prune", store.prune).pipe(
    Effect.repeat({ while: (result) => result.more, times: 9 }),
    Effect.tapError((error) => warn("JobStore.prune failed; pruning again at the next reap", error)),
    Effect.ignore
  )

  // A failed reap is tried again on the back-off, at most `min(reapInterval, 5 s)` apart: readiness turns green
  // again within that once the store is back.
  const reapCap = Math.min(Duration.toMillis(deps.reapInterval), 5_000)
  const reapOnce: Effect.Effect<void> = calls.run("reap", store.reap).pipe(
    Effect.tapError((error) => warn("JobStore.reap failed; reaping again", error)),
    Effect.retry(backoff(reapCap)),
    Effect.matchEffect({
      onFailure: () => Effect.void,
      onSuccess: (result) =>
        Effect.suspend(() => {
          for (const job of result.buried) publisher.deadLettered(job, job.error)
          if (result.reaped > 0) producer.mayHaveJobs()
          return Effect.zipRight(checkUnserved, pruneOnce)
        })
    })
  )

  const every = (interval: Duration.Duration, effect: Effect.Effect<void>): Effect.Effect<never> =>
    effect.pipe(Effect.repeat(Schedule.spaced(interval)), Effect.delay(interval), Effect.zipRight(Effect.never))

  const reaper = every(deps.reapInterval, reapOnce)
  const poller = every(deps.pollInterval, Effect.sync(producer.poll))

  /**
   * Opened once the first subscription is live, or could not be made: the producer's first claim waits for it, so
   * that a job made ready after that claim wakes the worker.
   */
  const firstAttempt = Effect.unsafeMakeLatch(false)
  let resubscribing = false

  /** One subscription, until it fails or ends; fails when it could not be made. */
  const listen: Effect.Effect<void, unknown> = Effect.scoped(
    Effect.gen(function*() {
      const cancellations = yield* calls.runWith("wakeups", store.cancellations)
      yield* Effect.forkScoped(Effect.forever(Effect.map(
        Queue.takeBetween(cancellations, 1, Number.MAX_SAFE_INTEGER),
        (ids) => deps.cancelled(Chunk.toReadonlyArray(ids))
      )))
      const queue = yield* calls.runWith("wakeups", store.wakeups)
      // Live from here on. A job made ready while this one was being made (after an earlier one failed) woke
      // nobody: claim.
      if (resubscribing) producer.mayHaveJobs()
      resubscribing = true
      firstAttempt.unsafeOpen()
      while (true) {
        const woken = yield* Queue.takeBetween(queue, 1, Number.MAX_SAFE_INTEGER)
        for (const queue of woken) {
          if (served.has(queue)) {
            producer.mayHaveJobs()
            break
          }
        }
      }
    })
  )

  const wakeups: Effect.Effect<never> = listen.pipe(
    Effect.catchAllCause((cause) =>
      Effect.zipRight(
        Effect.zipRight(
          Effect.sync(() => {
            resubscribing = true
            firstAttempt.unsafeOpen()
          }),
          warn("the store's wake-ups failed; listening again, polling meanwhile", cause)
        ),
        Effect.zipRight(calls.failed("wakeups", "JobStore.wakeups failed"), Effect.fail(cause))
      )
    ),
    Effect.retry(backoff(5_000)),
    Effect.ignore,
    Effect.repeat(Schedule.spaced(Duration.millis(100))),
    Effect.zipRight(Effect.never)
  )

  return { reaper, poller, wakeups, subscribed: firstAttempt.await }
}
