/**
 * The PostgreSQL store's wake-ups: a connection of its own that `LISTEN`s on the store's channel, reconnecting with
 * a backoff when it is lost, and the hubs it feeds: the queues woken (`wakeups`, which a worker waits on between
 * polls) and the leased jobs cancelled (`cancellations`). It owns the listening connection, whether it is up, and
 * the barriers that make a new subscription live.
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import Pg from "pg"
import type { JobStoreError } from "../JobStore.js"

/**
 * One life of the listening connection: connects, listens, publishes what it hears, asks which queues have ready
 * jobs (so that nothing enqueued while it was away waits for a poll), and checks the connection every
 * `checkInterval`. Fails when the connection is lost, a check fails, or it cannot connect.
 */
const listenOnce = (
  config: Pg.ClientConfig,
  channel: string,
  checkInterval: Duration.Duration,
  received: Queue.Queue<string>,
  connected: Effect.Effect<void>
): Effect.Effect<never, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const lost = yield* Deferred.make<never, unknown>()
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const client = new Pg.Client(config)
        client.on("error", (error) => Deferred.unsafeDone(lost, Exit.fail(error)))
        client.on("end", () => Deferred.unsafeDone(lost, Exit.fail(new Error("the listening connection ended"))))
        client.on("notification", (message) => {
          if (message.channel === channel && message.payload !== undefined) received.unsafeOffer(message.payload)
        })
        return client
      }),
      (client) =>
        // Interruptible, inside an uninterruptible release, so that the deadline can cut a stalled server short.
        Effect.promise(() => client.end().catch(() => {})).pipe(
          Effect.interruptible,
          Effect.timeoutOption(Duration.seconds(1)),
          Effect.ensuring(Effect.sync(() => client.connection.stream.destroy()))
        )
    )
    // Connecting is interruptible (a closing store does not wait for a server that does not answer): the release
    // above destroys the socket.
    yield* Effect.async<void, unknown>((resume) => {
      client.connect()
        .then(() => client.query(`LISTEN ${Pg.escapeIdentifier(channel)}`))
        .then(() => resume(Effect.void), (error) => resume(Effect.fail(error)))
    })
    received.unsafeOffer("*")
    yield* connected
    const check: Effect.Effect<void, unknown> = Effect.async<void, unknown>((resume) => {
      client.query("SELECT 1").then(() => resume(Effect.void), (error) => resume(Effect.fail(error)))
    }).pipe(
      Effect.timeoutFail({
        duration: Duration.seconds(5),
        onTimeout: () => new Error("the listening connection did not answer a check within 5 s")
      })
    )
    return yield* Effect.raceFirst(
      Deferred.await(lost),
      Effect.forever(Effect.zipRight(Effect.sleep(checkInterval), check))
    )
  })

/**
 * The wake-ups of a store on `channel`. Without `listen`, no connection listens: a subscription hears nothing, and
 * the worker polls.
 */
export const makeWakeups = (options: {
  readonly listen: boolean
  /** The listening connection's settings. */
  readonly config: Pg.ClientConfig
  readonly channel: string
  /** How often the listening connection is checked with a query. */
  readonly checkInterval: Duration.Duration
  /** The longest a new subscription waits to be live before it returns. */
  readonly liveWithin: Duration.Duration
  /** The queues that have ready jobs: published whenever the connection (re)starts listening. */
  readonly readyQueues: Effect.Effect<ReadonlyArray<string>, JobStoreError>
  /** Sends `payload` on the channel, from another connection. */
  readonly notify: (payload: string) => Effect.Effect<unknown, JobStoreError>
  /** An error, for the log. */
  readonly describe: (error: unknown) => string
}) =>
  Effect.gen(function*() {
    const { channel, checkInterval, config, describe, listen, liveWithin, notify, readyQueues } = options
    const hub = yield* PubSub.sliding<string>(256)
    /** The ids of the leased jobs cancelled, as notifications `!<id>,<id>...` say them. */
    const cancelHub = yield* PubSub.sliding<string>(1024)
    const listening = yield* Effect.makeLatch(false)
    /**
     * The barriers `wakeups` waits for: a notification `#<id>` it sent itself. The listening connection hears
     * notifications in commit order, so once the forwarder reached it, it has published every wake-up committed
     * before; what came before is not the new subscriber's.
     */
    const barriers = new Map<string, Deferred.Deferred<void>>()
    const storeId = (yield* Random.nextInt).toString(36)
    let barrierCount = 0
    const publishReadyQueues = Effect.flatMap(readyQueues, (queues) => PubSub.publishAll(hub, queues))
    if (listen) {
      const received = yield* Queue.unbounded<string>()
      const forward = Effect.forever(Effect.flatMap(Queue.take(received), (payload) => {
        if (payload === "*") {
          // A new listening connection (or too many queues for one notification): the refresh covers whatever was
          // committed before it listened, a barrier notification sent while it was away included, so the
          // subscriptions waiting for one are live from here on.
          return Effect.zipRight(
            Effect.forEach(barriers.values(), (barrier) => Deferred.succeed(barrier, undefined), { discard: true }),
            Effect.ignore(publishReadyQueues)
          )
        }
        if (payload.startsWith("!")) return PubSub.publishAll(cancelHub, payload.slice(1).split(","))
        if (payload.startsWith("#")) {
          const barrier = barriers.get(payload)
          return barrier === undefined ? Effect.void : Deferred.succeed(barrier, undefined)
        }
        return Effect.try(() => JSON.parse(payload) as unknown).pipe(
          Effect.flatMap((queues) => Array.isArray(queues) ? PubSub.publishAll(hub, queues.map(String)) : Effect.void),
          Effect.ignore
        )
      }))
      yield* Effect.forkScoped(Effect.interruptible(forward))
      let failures = 0
      const connected = Effect.suspend(() => {
        const recovered = failures > 0
        failures = 0
        return Effect.zipRight(
          listening.open,
          recovered ? Effect.logInfo(`PgJobStore: listening on ${channel} again`) : Effect.void
        )
      })
      const attempt = Effect.catchAllCause(
        Effect.scoped(listenOnce(config, channel, checkInterval, received, connected)),
        (cause) =>
          Effect.suspend(() => {
            failures++
            // 100 ms after the first failure, doubling, at most 10 s: a restarted server is heard again within seconds.
            const wait = Math.min(100 * 2 ** (failures - 1), 10_000)
            const reason = describe(Cause.squash(cause))
            const log = failures === 1
              ? Effect.logWarning(`PgJobStore: the listening connection failed (${reason}); polling until it is back`)
              : Effect.logDebug(`PgJobStore: listening connection attempt ${failures} failed: ${reason}`)
            return Effect.zipRight(
              Effect.zipRight(listening.close, log),
              Effect.sleep(Duration.millis(wait))
            )
          })
      )
      yield* Effect.forkScoped(Effect.interruptible(Effect.forever(attempt)))
    }

    /** A subscription to the names of the queues woken (`JobStore.Driver.wakeups`). */
    const subscribe = Effect.gen(function*() {
      const subscription = yield* PubSub.subscribe(hub)
      if (!listen) return subscription
      // Live when it returns: the listening connection is up, and every wake-up committed before this point has
      // been published (and is dropped here: it is not this subscriber's); or that could not be had within a
      // bounded wait (the server is unreachable), and the connection keeps being tried.
      const id = `#${storeId}.${++barrierCount}`
      const reached = yield* Deferred.make<void>()
      barriers.set(id, reached)
      yield* Effect.gen(function*() {
        yield* listening.await
        yield* notify(id)
        yield* Deferred.await(reached)
        yield* Queue.takeAll(subscription)
      }).pipe(
        Effect.ignore,
        Effect.timeoutOption(liveWithin),
        Effect.ensuring(Effect.sync(() => barriers.delete(id)))
      )
      return subscription
    })

    return {
      subscribe,
      cancellations: PubSub.subscribe(cancelHub)
    }
  })
