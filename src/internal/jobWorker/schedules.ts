/**
 * Recurring schedules: one fiber per schedule offers each slot of its cron to the store (`enqueueSlot`), which
 * stores it once whichever worker offers it first. No leader: every worker offers every slot, and the store's record
 * of each schedule's latest slots, changed only by the statement that inserts the slot's job, decides.
 *
 * - A schedule starts when the context first runs (`Running` or `Paused`): it offers the slots of its `backfill`
 *   window before that instant, oldest first, marked as backfill (the store takes them only for a schedule it
 *   knows), then sleeps until each next slot and offers every slot since the last one it offered (so a worker whose
 *   event loop was held offers the slots it slept through, in order).
 * - A slot whose offer fails is offered again on a back-off until the store answers: it is late, never skipped.
 * - It ends once shutdown begins.
 */
import type * as Clock from "effect/Clock"
import * as Cron from "effect/Cron"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as Job from "../../Job.js"
import type { JobStore } from "../../JobStore.js"
import type { WorkerContext } from "../../WorkerContext.js"
import { backoff } from "./completer.js"
import type { Publisher } from "./metrics.js"
import type { StoreCalls } from "./storeCalls.js"

/** The slots of `cron` after `from` and at or before `to` (epoch milliseconds), oldest first. */
const slotsBetween = (cron: Cron.Cron, from: number, to: number): Array<number> => {
  const slots: Array<number> = []
  for (
    let slot = Cron.next(cron, new Date(from)).getTime();
    slot <= to;
    slot = Cron.next(cron, new Date(slot)).getTime()
  ) {
    slots.push(slot)
  }
  return slots
}

export const make = (deps: {
  readonly ctx: WorkerContext.Service
  readonly store: JobStore.Service
  readonly calls: StoreCalls
  readonly publisher: Publisher
  readonly clock: Clock.Clock
  readonly warn: (message: string, cause?: unknown) => Effect.Effect<void>
}) => {
  const { calls, clock, ctx, publisher, store, warn } = deps

  /** Offers one slot until the store answers; publishes `JobScheduled` when this worker's offer took it. */
  const offer = (schedule: Job.JobSchedule, slot: number, backfill: boolean): Effect.Effect<void> =>
    calls.run(
      "enqueueSlot",
      store.enqueueSlot({
        schedule: schedule.name,
        slot: new Date(slot),
        backfill,
        job: {
          name: schedule.job.name,
          queue: schedule.job.queue,
          payload: schedule.payload,
          runAt: new Date(slot),
          priority: schedule.priority,
          key: undefined,
          maxAttempts: schedule.maxAttempts
        }
      })
    ).pipe(
      Effect.tapError((error) =>
        warn(
          `schedule ${JSON.stringify(schedule.name)}: offering its slot ${new Date(slot).toISOString()} failed; again`,
          error
        )
      ),
      Effect.retry(backoff(5_000)),
      Effect.flatMap((id) =>
        Effect.sync(() => {
          if (id !== undefined) publisher.scheduled(schedule, new Date(slot), id)
        })
      ),
      Effect.orDie
    )

  const offerAll = (schedule: Job.JobSchedule, slots: ReadonlyArray<number>, backfill: boolean) =>
    Effect.forEach(slots, (slot) => offer(schedule, slot, backfill), { discard: true })

  const started = Stream.runDrain(
    Stream.takeUntil(ctx.stateChanges, (state) => state !== "Pending")
  )

  const run = (schedule: Job.JobSchedule): Effect.Effect<void> =>
    Effect.gen(function*() {
      yield* started
      if (yield* ctx.isShuttingDown) return
      let from = clock.unsafeCurrentTimeMillis()
      const backfill = Duration.toMillis(schedule.backfill)
      if (backfill > 0) yield* offerAll(schedule, slotsBetween(schedule.cron, from - backfill, from), true)
      while (true) {
        const next = Cron.next(schedule.cron, new Date(from)).getTime()
        publisher.nextSlot(schedule.name, next)
        const wait = next - clock.unsafeCurrentTimeMillis()
        if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        if (yield* ctx.isShuttingDown) return
        const now = clock.unsafeCurrentTimeMillis()
        if (now < next) continue
        yield* offerAll(schedule, slotsBetween(schedule.cron, from, now), false)
        from = now
      }
    })

  return { run }
}
