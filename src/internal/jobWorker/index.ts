/**
 * The job engine, assembled from its parts (each owns its state; none reads another's locals):
 *
 * - `options`: the options, resolved and checked.
 * - `storeCalls`: every store call, with its deadline and its report to readiness.
 * - `claims`: the claims held, their state (one tagged union) and the slots they take.
 * - `producer`: claims as slots free up, starts jobs, gives back what cannot start.
 * - `executor`: runs one attempt as a task and decides its outcome.
 * - `completer`: writes outcomes to the store in batches, then publishes them.
 * - `leases`: renews leases and fences jobs whose lease could lapse.
 * - `maintenance`: reap, poll, wake-ups.
 * - `schedules`: offers the slots of recurring schedules.
 * - `shutdown`: when the last store calls must end.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Job from "../../Job.js"
import { JobStore, Outcome } from "../../JobStore.js"
import type { JobWorker, Options } from "../../JobWorker.js"
import { WorkerContext } from "../../WorkerContext.js"
import { isImmediate } from "../jobStore.js"
import { coreOf } from "../workerContext.js"
import { Claims } from "./claims.js"
import * as Completer from "./completer.js"
import * as Executor from "./executor.js"
import * as Leases from "./leases.js"
import * as Maintenance from "./maintenance.js"
import { Publisher } from "./metrics.js"
import { InvalidOption, resolve } from "./options.js"
import * as Producer from "./producer.js"
import * as Schedules from "./schedules.js"
import { Shutdown } from "./shutdown.js"
import * as StoreCalls from "./storeCalls.js"

export { isJobEvent, JobEvent, jobWaitBoundaries, metrics } from "./metrics.js"

const randomHex = Effect.map(
  Effect.zip(Random.nextIntBetween(0, 0x10000), Random.nextIntBetween(0, 0x10000)),
  ([a, b]) => a.toString(16).padStart(4, "0") + b.toString(16).padStart(4, "0")
)

/** @internal */
export const make: <R>(
  options: Options<R>
) => Effect.Effect<JobWorker, never, Scope.Scope | JobStore | WorkerContext | Exclude<R, Job.Current>> = Effect
  .fnUntraced(function*<R>(options: Options<R>) {
    const resolved = resolve(options)
    if (resolved instanceof InvalidOption) return yield* Effect.die(resolved.defect)
    const {
      autoStart,
      concurrency,
      handlers,
      lease,
      pollInterval,
      prefetch,
      queues,
      reapInterval,
      schedules,
      storeTimeout
    } = resolved
    const ctx = yield* WorkerContext
    const core = coreOf(ctx)
    if (core === undefined) {
      return yield* Effect.dieMessage(
        "JobWorker needs a WorkerContext made by WorkerContext.make or WorkerContext.layer, not one built by hand"
      )
    }
    const store = yield* JobStore
    const clock: Clock.Clock = yield* Effect.clock
    const workerId = resolved.workerId ?? `${ctx.name}-${yield* randomHex}`

    const annotate = <A, E, Q>(effect: Effect.Effect<A, E, Q>) =>
      Effect.annotateLogs(effect, { worker: ctx.name, jobWorker: workerId })
    const warn = (message: string, cause?: unknown): Effect.Effect<void> =>
      annotate(
        cause === undefined
          ? Effect.logWarning(message)
          : Effect.logWarning(message, Cause.isCause(cause) ? cause : Cause.fail(cause))
      )

    const calls = StoreCalls.make({
      ctx,
      clock,
      runtime: yield* Effect.runtime<never>(),
      storeTimeout,
      immediate: isImmediate(store)
    })
    const publisher = new Publisher(core, queues)
    const claims = new Claims(concurrency, prefetch)
    const shutdown = new Shutdown(storeTimeout)
    const completer = Completer.make({ store, calls, claims, publisher, clock, shutdown, warn })
    const { byName, lists } = Executor.entries(handlers)
    // Made before the worker's finalizer is added, so closed after it.
    const cutters = yield* FiberSet.make<unknown, unknown>()
    const runCut = yield* FiberSet.runtime(cutters)<never>()
    // Interruptible, though forked from a task's uninterruptible part: the worker's scope must be able to end it.
    const executor = Executor.make({
      core,
      claims,
      completer,
      publisher,
      clock,
      runCut: (cut) => runCut(Effect.interruptible(cut)),
      warn
    })
    const names = Array.from(byName.keys())
    const producer: Producer.Producer = Producer.make({
      core,
      store,
      calls,
      claims,
      executor,
      completer,
      publisher,
      clock,
      entries: byName,
      request: { queues, names, lease, worker: workerId },
      pollInterval,
      leaseMillis: Duration.toMillis(lease),
      claimed: () => leases.claimed(),
      warn
    })
    const leases = Leases.make({
      store,
      calls,
      claims,
      executor,
      publisher,
      clock,
      lease,
      lapsed: producer.mayHaveJobs,
      warn
    })
    const served = new Set(queues)
    const maintenance = Maintenance.make({
      store,
      calls,
      producer,
      publisher,
      served,
      unserved: new Maintenance.Unserved(new Set(names), queues),
      queues,
      pollInterval,
      reapInterval,
      cancelled: leases.cancelled,
      warn
    })

    // Jobs that can never run here: a queue the worker claims from that none of its handlers serves.
    const handledQueues = new Set(handlers.map((handler) => handler.job.queue))
    for (const queue of queues) {
      if (!handledQueues.has(queue)) {
        yield* warn(
          `no handler of this worker runs jobs of queue ${JSON.stringify(queue)}: ` +
            `its jobs of the names it handles (${names.join(", ")}) are claimed; any other waits for another worker`
        )
      }
    }

    /**
     * Gives back the claims whose task was cut off before it began (at the shutdown deadline, right after its
     * admission): such a task never settles its job.
     */
    const sweep = Effect.sync(() => {
      const now = clock.unsafeCurrentTimeMillis()
      for (const claim of [...claims.live.values(), ...claims.gone]) {
        if (claim.begun || claim.task === undefined || claim.task.unsafePoll() === null) continue
        if (claim.state._tag === "Running") completer.submit(claim, Outcome.Released({ refund: true }), 0)
        else claims.finish(claim, now)
      }
    })

    const background = <A>(effect: Effect.Effect<A>) => Effect.forkScoped(Effect.interruptible(effect))

    yield* background(calls.watchdog)
    yield* background(completer.loop)
    yield* background(leases.renewer)
    yield* background(leases.fencer)
    for (const list of lists) yield* background(executor.watch(list))
    yield* background(maintenance.reaper)
    yield* background(maintenance.poller)
    yield* background(maintenance.wakeups)
    const offers = Schedules.make({ ctx, store, calls, publisher, clock, warn })
    for (const schedule of schedules) yield* background(offers.run(schedule))
    // Bounded: the subscription is a store call under its deadline.
    yield* maintenance.subscribed
    const claimer = yield* background(producer.loop)
    yield* background(Stream.runForEach(ctx.stateChanges, (state) =>
      Effect.sync(() => {
        const now = clock.unsafeCurrentTimeMillis()
        switch (state) {
          case "Running":
            return producer.poll()
          case "Paused":
            return producer.wake()
          case "Stopping":
            shutdown.began(now, ctx.options.shutdownTimeout)
            calls.shorten(shutdown.endAt)
            return producer.wake()
          case "Stopped":
            shutdown.began(now, ctx.options.shutdownTimeout)
            shutdown.stopped(now)
            calls.shorten(shutdown.endAt)
            return producer.wake()
        }
      }).pipe(Effect.zipRight(state === "Stopped" ? sweep : Effect.void))))

    // Added after the fibers, so it runs before their finalizers: the context drains (its jobs settled, their
    // leases renewed meanwhile), the claim loop ends, and every pending settle is written or given up (within the
    // shutdown grace) before the renewer stops.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* ctx.stop
        const now = clock.unsafeCurrentTimeMillis()
        shutdown.began(now, ctx.options.shutdownTimeout)
        shutdown.stopped(now)
        calls.shorten(shutdown.endAt)
        // The claim loop ends by itself once it sees the context stopped: a claim on its way is finished (its jobs
        // given back), within the shutdown grace; then it is interrupted.
        producer.wake()
        const left = shutdown.endAt - clock.unsafeCurrentTimeMillis()
        // Interruptible: a finalizer is not, and the timeout could not give up the wait otherwise.
        if (left > 0) yield* Effect.timeoutOption(Effect.interruptible(Fiber.await(claimer)), Duration.millis(left))
        yield* Fiber.interrupt(claimer)
        yield* sweep
        yield* completer.flushed
      })
    )

    if (autoStart) {
      yield* Effect.catchTag(
        ctx.start,
        "WorkerStateError",
        (error) => annotate(Effect.logDebug(`JobWorker: not starting the context: ${error.message}`))
      )
    }

    return {
      workerId,
      concurrency,
      queues,
      leased: Effect.sync(() => claims.live.size),
      inFlight: Effect.sync(() => claims.inFlight)
    } satisfies JobWorker
  })
