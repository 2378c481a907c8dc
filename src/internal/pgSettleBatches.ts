/**
 * The PostgreSQL store's batched settles (`batchAcks`): the settles of concurrent callers wait in one queue and go
 * to the server together, one statement (or one per `maxSettleBatch`) at a time. It owns the queue, the batch in
 * flight, and whether the store closed; each caller gets back its own settlements' results.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { JobStoreError, type Settlement } from "../JobStore.js"

/** One `settle` call waiting for the batched statement. */
interface PendingSettle {
  readonly settlements: ReadonlyArray<Settlement>
  readonly done: Deferred.Deferred<ReadonlyArray<boolean>, JobStoreError>
  /** Its caller stopped waiting (interrupted) before its batch was sent: it is left out. */
  abandoned: boolean
  /** The batch it was sent in, once sent. */
  batch: SettleBatch | undefined
}

/** A batched settle statement in flight, and how many of its callers still wait for it. */
interface SettleBatch {
  waiting: number
  /** Done when every caller stopped waiting: the statement is then interrupted, and its connection destroyed. */
  readonly abandoned: Deferred.Deferred<void>
}

type Settle = (settlements: ReadonlyArray<Settlement>) => Effect.Effect<ReadonlyArray<boolean>, JobStoreError>

/**
 * A `settle` that sends the settlements of every call waiting, together, with `send`, and answers each call with
 * its own part, in order. A batch whose callers all stopped waiting is interrupted. When the scope closes, the calls
 * in flight and queued fail (the store is closed), and later ones fail at once.
 */
export const batchSettles = (send: Settle): Effect.Effect<Settle, never, Scope.Scope> =>
  Effect.gen(function*() {
    const pending = yield* Queue.unbounded<PendingSettle>()
    let closed = false
    const closedError = new JobStoreError({ operation: "settle", reason: "the store is closed" })
    let inFlight: ReadonlyArray<PendingSettle> = []
    const flush = Effect.gen(function*() {
      const first = yield* Queue.take(pending)
      const rest = yield* Queue.takeAll(pending)
      const calls = [first, ...rest].filter((call) => !call.abandoned)
      if (calls.length === 0) return
      const batch: SettleBatch = { waiting: calls.length, abandoned: Deferred.unsafeMake<void>(FiberId.none) }
      for (const call of calls) call.batch = batch
      inFlight = calls
      const settlements = calls.flatMap((call) => call.settlements)
      // When every caller stopped waiting (their deadline passed), the statement is interrupted too, and its
      // connection destroyed: nobody waits on a stalled backend.
      const exit = yield* Effect.exit(
        Effect.raceFirst(
          send(settlements),
          Effect.zipRight(
            Deferred.await(batch.abandoned),
            Effect.failSync(() => new JobStoreError({ operation: "settle", reason: "abandoned by its callers" }))
          )
        )
      )
      let offset = 0
      for (const call of calls) {
        const count = call.settlements.length
        const start = offset
        offset += count
        Deferred.unsafeDone(call.done, Exit.map(exit, (applied) => applied.slice(start, start + count)))
      }
    })
    // The store is closing: the settles in flight (interrupted with the flusher) and the ones still queued fail,
    // so that no caller waits for ever.
    const failPending = Effect.flatMap(Queue.takeAll(pending), (calls) =>
      Effect.sync(() => {
        closed = true
        for (const call of [...inFlight, ...calls]) Deferred.unsafeDone(call.done, Exit.fail(closedError))
      }))
    yield* Effect.forkScoped(
      Effect.interruptible(Effect.forever(flush)).pipe(Effect.onExit(() => failPending))
    )
    return (settlements) =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(closedError)
        const call: PendingSettle = {
          settlements,
          done: Deferred.unsafeMake<ReadonlyArray<boolean>, JobStoreError>(FiberId.none),
          abandoned: false,
          batch: undefined
        }
        return Effect.zipRight(
          Queue.offer(pending, call),
          Effect.onInterrupt(Deferred.await(call.done), () =>
            Effect.sync(() => {
              call.abandoned = true
              const batch = call.batch
              if (batch !== undefined && --batch.waiting === 0) Deferred.unsafeDone(batch.abandoned, Exit.void)
            }))
        )
      })
  })
