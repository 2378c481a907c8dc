import { assert, describe, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Either, Exit, Fiber, Metric, Option, TestClock, type Tracer } from "effect"
import { randomUUID } from "node:crypto"
import { WorkerContext, WorkerMetrics, type WorkerState } from "../src/index.js"
import { idleStatus } from "./fibers.js"

/** Metrics are process-wide and keyed by the worker's name: a fresh name per test keeps tests apart. */
const uniqueName = (label: string) => `metrics-${label}-${randomUUID()}`

/** Tracks `effect` and returns once the task has begun it: the task signals as its first step. */
const trackStarted = <A, E>(ctx: WorkerContext["Type"], effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const task = yield* ctx.track(Effect.zipRight(Deferred.succeed(started, void 0), effect))
    yield* Deferred.await(started)
    return task
  })

const states: ReadonlyArray<WorkerState> = ["Pending", "Running", "Paused", "Stopping", "Stopped"]

interface Counts {
  readonly started: number
  readonly succeeded: number
  readonly failed: number
  readonly interrupted: number
  readonly rejected: number
}

const counts = (name: string): Effect.Effect<Counts> => {
  const metrics = WorkerMetrics.forWorker(name)
  return Effect.all({
    started: Effect.map(Metric.value(metrics.tasksStarted), (state) => state.count),
    succeeded: Effect.map(Metric.value(metrics.tasksSucceeded), (state) => state.count),
    failed: Effect.map(Metric.value(metrics.tasksFailed), (state) => state.count),
    interrupted: Effect.map(Metric.value(metrics.tasksInterrupted), (state) => state.count),
    rejected: Effect.map(Metric.value(metrics.tasksRejected), (state) => state.count)
  })
}

const active = (name: string) => Effect.map(Metric.value(WorkerMetrics.forWorker(name).tasksActive), (s) => s.value)

/** The state gauges of worker `name`, as `{ Pending: 1, Running: 0, ... }`. */
const stateGauges = (name: string) =>
  Effect.map(
    Effect.forEach(states, (state) => Metric.value(WorkerMetrics.forWorker(name).state[state])),
    (values) => Object.fromEntries(states.map((state, i) => [state, values[i]?.value]))
  )

const only = (current: WorkerState) => Object.fromEntries(states.map((state) => [state, state === current ? 1 : 0]))

const started = (label: string, options?: { readonly shutdownTimeout?: Duration.DurationInput }) =>
  Effect.gen(function*() {
    const name = uniqueName(label)
    const ctx = yield* WorkerContext.make({ name, shutdownTimeout: options?.shutdownTimeout ?? "1 minute" })
    yield* ctx.start
    return { name, ctx }
  })

const runTask = <A, E>(ctx: WorkerContext["Type"], effect: Effect.Effect<A, E>) =>
  Effect.flatMap(ctx.track(effect), (task) => task.await)

describe("WorkerMetrics.forWorker", () => {
  it.scoped("counts started, succeeded, failed, interrupted and rejected tasks", () =>
    Effect.gen(function*() {
      const name = uniqueName("counts")
      const ctx = yield* WorkerContext.make({ name, shutdownTimeout: "1 second" })
      assert.deepStrictEqual(yield* counts(name), { started: 0, succeeded: 0, failed: 0, interrupted: 0, rejected: 0 })

      // Rejected while Pending.
      assert.isTrue(Either.isLeft(yield* Effect.either(ctx.track(Effect.void))))
      yield* ctx.start
      yield* runTask(ctx, Effect.succeed(1))
      yield* runTask(ctx, Effect.succeed(2))
      yield* runTask(ctx, Effect.succeed(3))
      yield* runTask(ctx, Effect.fail("a typed failure"))
      yield* runTask(ctx, Effect.die("a defect"))
      const interrupted = yield* ctx.track(Effect.never)
      yield* interrupted.interrupt
      assert.deepStrictEqual(yield* counts(name), { started: 6, succeeded: 3, failed: 2, interrupted: 1, rejected: 1 })

      // A task cut off by the shutdown deadline is interrupted; a caller waiting in a paused worker is rejected.
      yield* ctx.track(Effect.never)
      yield* ctx.pause
      const waiting = yield* Effect.fork(Effect.either(ctx.track(Effect.void)))
      assert.strictEqual((yield* idleStatus(waiting))._tag, "Suspended", "the caller waits in the paused worker")
      const stopper = yield* Effect.fork(ctx.stop)
      yield* ctx.shutdownRequested
      assert.isTrue(Either.isLeft(yield* Fiber.join(waiting)), "the paused caller is rejected by shutdown")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(stopper)
      // Rejected once Stopped.
      assert.isTrue(Either.isLeft(yield* Effect.either(ctx.track(Effect.void))))

      assert.deepStrictEqual(yield* counts(name), { started: 7, succeeded: 3, failed: 2, interrupted: 2, rejected: 3 })
    }))

  it.scoped("keeps each worker's counts apart", () =>
    Effect.gen(function*() {
      const busy = yield* started("busy")
      const idle = yield* started("idle")
      yield* runTask(busy.ctx, Effect.void)
      yield* runTask(busy.ctx, Effect.fail("boom"))
      assert.deepStrictEqual(yield* counts(busy.name), {
        started: 2,
        succeeded: 1,
        failed: 1,
        interrupted: 0,
        rejected: 0
      })
      assert.deepStrictEqual(yield* counts(idle.name), {
        started: 0,
        succeeded: 0,
        failed: 0,
        interrupted: 0,
        rejected: 0
      })
    }))

  it.scoped("tasksActive is the number of tasks in flight", () =>
    Effect.gen(function*() {
      const { ctx, name } = yield* started("active")
      assert.strictEqual(yield* active(name), 0)

      const first = yield* Deferred.make<void>()
      const second = yield* Deferred.make<void>()
      // The three tasks have begun, and wait.
      const a = yield* trackStarted(ctx, Deferred.await(first))
      const b = yield* trackStarted(ctx, Deferred.await(second))
      const c = yield* trackStarted(ctx, Effect.never)
      assert.strictEqual(yield* active(name), 3)

      yield* Deferred.succeed(first, undefined)
      yield* a.await
      assert.strictEqual(yield* active(name), 2)
      yield* c.interrupt
      assert.strictEqual(yield* active(name), 1)
      yield* Deferred.succeed(second, undefined)
      yield* b.await
      assert.strictEqual(yield* active(name), 0)
    }))

  it.scoped("the state gauges are 1 for the current state and 0 for the others through every transition", () =>
    Effect.gen(function*() {
      const name = uniqueName("state")
      const ctx = yield* WorkerContext.make({ name, shutdownTimeout: "1 minute" })
      assert.deepStrictEqual(yield* stateGauges(name), only("Pending"))
      yield* ctx.start
      assert.deepStrictEqual(yield* stateGauges(name), only("Running"))
      yield* ctx.pause
      assert.deepStrictEqual(yield* stateGauges(name), only("Paused"))
      yield* ctx.resume
      assert.deepStrictEqual(yield* stateGauges(name), only("Running"))

      yield* trackStarted(ctx, Effect.sleep("1 second"))
      const stopper = yield* Effect.fork(ctx.stop)
      yield* ctx.shutdownRequested
      assert.deepStrictEqual(yield* stateGauges(name), only("Stopping"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(stopper)
      assert.deepStrictEqual(yield* stateGauges(name), only("Stopped"))
    }))

  it.scoped("shutdownDrain is how long the last shutdown took, from Stopping to Stopped", () =>
    Effect.gen(function*() {
      const { ctx, name } = yield* started("drain")
      const drain = Effect.map(Metric.value(WorkerMetrics.forWorker(name).shutdownDrain), (s) => s.value)
      yield* trackStarted(ctx, Effect.sleep("10 seconds"))
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(yield* drain, 0, "no shutdown yet")

      const stopper = yield* Effect.fork(ctx.stop)
      yield* ctx.shutdownRequested
      yield* TestClock.adjust("6 seconds")
      yield* Fiber.join(stopper)
      assert.strictEqual(yield* drain, 6)
    }))

  it.scoped("shutdownDrain of a shutdown cut off at its deadline is the deadline", () =>
    Effect.gen(function*() {
      const { ctx, name } = yield* started("deadline", { shutdownTimeout: "2 seconds" })
      yield* ctx.track(Effect.never)
      const stopper = yield* Effect.fork(ctx.stop)
      yield* ctx.shutdownRequested
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(stopper)
      const drain = yield* Metric.value(WorkerMetrics.forWorker(name).shutdownDrain)
      assert.strictEqual(drain.value, 2)
    }))

  it.scoped("the task duration histogram counts every task and sums its run time in seconds", () =>
    Effect.gen(function*() {
      const { ctx, name } = yield* started("duration")
      const histogram = Metric.value(WorkerMetrics.forWorker(name).taskDuration)
      assert.strictEqual((yield* histogram).count, 0)

      const slow = yield* trackStarted(ctx, Effect.sleep("2 seconds"))
      yield* TestClock.adjust("2 seconds")
      yield* slow.await
      let state = yield* histogram
      assert.strictEqual(state.count, 1)
      assert.strictEqual(state.sum, 2)

      const failing = yield* trackStarted(ctx, Effect.zipRight(Effect.sleep("500 millis"), Effect.fail("boom")))
      yield* TestClock.adjust("500 millis")
      yield* failing.await
      state = yield* histogram
      assert.strictEqual(state.count, 2)
      assert.strictEqual(state.sum, 2.5)
      assert.strictEqual(state.min, 0.5)
      assert.strictEqual(state.max, 2)
      const atMost = (seconds: number) => state.buckets.find(([boundary]) => boundary >= seconds)?.[1]
      assert.strictEqual(atMost(1), 1, "one task took at most 1 second")
      assert.strictEqual(atMost(2), 2, "both took at most 2 seconds")
    }))
})

/** Runs `body` as a tracked task and returns its handle and the span that was current inside it. */
const trackCapturingSpan = <A, E>(ctx: WorkerContext["Type"], body: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const inner = yield* Deferred.make<Tracer.Span>()
    const task = yield* ctx.track(
      Effect.zipRight(Effect.flatMap(Effect.orDie(Effect.currentSpan), (span) => Deferred.succeed(inner, span)), body)
    )
    return { task, span: yield* Deferred.await(inner) }
  })

describe("task spans", () => {
  it.scoped("a tracked task runs in a WorkerContext.task span, a child of the span where track was called", () =>
    Effect.gen(function*() {
      const { ctx, name } = yield* started("span")
      const { caller, span, task } = yield* Effect.gen(function*() {
        const caller = yield* Effect.orDie(Effect.currentSpan)
        return { caller, ...yield* trackCapturingSpan(ctx, Effect.void) }
      }).pipe(Effect.withSpan("enqueue job"))

      assert.strictEqual(span.name, "WorkerContext.task")
      assert.strictEqual(span.attributes.get("worker"), name)
      assert.strictEqual(span.attributes.get("task.id"), task.id)
      assert.isTrue(Option.isSome(span.parent), "the task span has a parent")
      const parent = Option.getOrThrow(span.parent)
      assert.strictEqual(parent.spanId, caller.spanId)
      assert.strictEqual(caller.name, "enqueue job")
      assert.strictEqual(span.traceId, caller.traceId, "the task span is in the caller's trace")
      assert.notStrictEqual(span.spanId, caller.spanId)
    }))

  it.scoped("each task gets its own span, with its own task id", () =>
    Effect.gen(function*() {
      const { ctx } = yield* started("span-ids")
      const first = yield* trackCapturingSpan(ctx, Effect.void)
      const second = yield* trackCapturingSpan(ctx, Effect.void)
      assert.notStrictEqual(first.span.spanId, second.span.spanId)
      assert.strictEqual(first.span.attributes.get("task.id"), first.task.id)
      assert.strictEqual(second.span.attributes.get("task.id"), second.task.id)
      assert.notStrictEqual(first.task.id, second.task.id)
    }))

  it.scoped("a task tracked where no span is active gets a root span", () =>
    Effect.gen(function*() {
      const { ctx } = yield* started("root-span")
      const { span } = yield* trackCapturingSpan(ctx, Effect.void)
      assert.strictEqual(span.name, "WorkerContext.task")
      assert.isTrue(Option.isNone(span.parent))
    }))

  it.scoped("the task span ends when the task ends, with the task's exit and run time", () =>
    Effect.gen(function*() {
      const { ctx } = yield* started("span-end")
      // Away from the epoch: the library reads a start time of 0 as "timing disabled" and then records no end time.
      yield* TestClock.adjust("1 minute")
      const release = yield* Deferred.make<void>()
      const released = yield* Deferred.make<void>()
      const ok = yield* trackCapturingSpan(
        ctx,
        Deferred.await(release).pipe(
          Effect.zipRight(Deferred.succeed(released, void 0)),
          Effect.zipRight(Effect.sleep("2 seconds"))
        )
      )
      assert.strictEqual(ok.span.status._tag, "Started", "the span is open while the task runs")
      yield* Deferred.succeed(release, undefined)
      // The task has gone on to its sleep.
      yield* Deferred.await(released)
      yield* TestClock.adjust("2 seconds")
      yield* ok.task.await
      const status = ok.span.status
      assert.strictEqual(status._tag, "Ended")
      if (status._tag === "Ended") {
        assert.isTrue(Exit.isSuccess(status.exit))
        assert.strictEqual(status.endTime - status.startTime, BigInt(2_000_000_000))
      }

      const failed = yield* trackCapturingSpan(ctx, Effect.fail("boom"))
      yield* failed.task.await
      assert.deepStrictEqual(failed.span.status._tag === "Ended" && failed.span.status.exit, Exit.fail("boom"))

      const cut = yield* trackCapturingSpan(ctx, Effect.never)
      yield* cut.task.interrupt
      const cutStatus = cut.span.status
      assert.isTrue(cutStatus._tag === "Ended" && Exit.isInterrupted(cutStatus.exit), "ended interrupted")
    }))
})
