import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Context,
  Deferred,
  type Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Option,
  Queue,
  Ref,
  Scope,
  Stream,
  TestClock
} from "effect"
import {
  type CustomEvent,
  TaskRejected,
  type Tracked,
  WorkerContext,
  WorkerContextLive,
  type WorkerContextOptions,
  WorkerEvent,
  type WorkerState,
  WorkerStateError
} from "../src/index.js"
import { idleStatus } from "./fibers.js"

/** Asserts that `fiber` is parked: idle, and not done. Run it after a handshake that shows how far the program got. */
const assertWaiting = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, message = "expected the fiber to be still waiting") =>
  Effect.gen(function*() {
    assert.strictEqual((yield* idleStatus(fiber))._tag, "Suspended", message)
    assert.isNull(fiber.unsafePoll(), message)
  })

/** Forks `effect` and returns once the new fiber has begun it: the fiber signals just before. */
const forkStarted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(Effect.zipRight(Deferred.succeed(started, void 0), effect))
    yield* Deferred.await(started)
    return fiber
  })

/** Tracks `effect` and returns once the task has begun it: the task signals as its first step. */
const trackStarted = <A, E, R>(ctx: WorkerContext["Type"], effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const task = yield* ctx.track(Effect.zipRight(Deferred.succeed(started, void 0), effect))
    yield* Deferred.await(started)
    return task
  })

const drain = (queue: Queue.Dequeue<WorkerEvent>) => Effect.map(Queue.takeAll(queue), Chunk.toReadonlyArray)

const tags = (events: ReadonlyArray<WorkerEvent>): ReadonlyArray<string> => events.map((event) => event._tag)

const count = (events: ReadonlyArray<WorkerEvent>, tag: WorkerEvent["_tag"]): number =>
  events.filter((event) => event._tag === tag).length

const lastStopped = (events: ReadonlyArray<WorkerEvent>) => {
  const last = events[events.length - 1]
  assert.isDefined(last)
  assert.strictEqual(last._tag, "Stopped", "Stopped is the last event")
  return last as Extract<WorkerEvent, { _tag: "Stopped" }>
}

const finishedOutcomes = (events: ReadonlyArray<WorkerEvent>): Record<number, string> =>
  Object.fromEntries(
    events.filter(WorkerEvent.$is("TaskFinished")).map((event) => [event.taskId, event.outcome])
  )

/** A started context in the test's scope, with a subscription opened before `start`. */
const running = (options?: WorkerContextOptions) =>
  Effect.gen(function*() {
    const ctx = yield* WorkerContext.make({ name: "w", ...options })
    const events = yield* ctx.subscribe
    yield* ctx.start
    return { ctx, events }
  })

/** A context held in `Stopping`: a task sleeps for one second and a forked `stop` waits for it. */
const stopping = Effect.gen(function*() {
  const { ctx, events } = yield* running({ shutdownTimeout: "1 minute" })
  const task = yield* trackStarted(ctx, Effect.sleep("1 second").pipe(Effect.as("drained")))
  const stopper = yield* Effect.fork(ctx.stop)
  yield* ctx.shutdownRequested
  assert.strictEqual(yield* ctx.state, "Stopping")
  return { ctx, events, task, stopper }
})

/** A context built from the layer in a scope the test closes itself. */
const buildInScope = (options?: WorkerContextOptions) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(WorkerContext.layer({ name: "w", ...options }), scope)
    return { ctx: Context.get(context, WorkerContext), scope }
  })

const assertStateError = (
  error: WorkerStateError,
  operation: WorkerStateError["operation"],
  state: WorkerStateError["state"]
) => {
  assert.instanceOf(error, WorkerStateError)
  assert.strictEqual(error._tag, "WorkerStateError")
  assert.strictEqual(error.worker, "w")
  assert.strictEqual(error.operation, operation)
  assert.strictEqual(error.state, state)
}

const assertRejected = (error: TaskRejected, state: TaskRejected["state"]) => {
  assert.instanceOf(error, TaskRejected)
  assert.strictEqual(error._tag, "TaskRejected")
  assert.strictEqual(error.worker, "w")
  assert.strictEqual(error.state, state)
}

const defectOf = <A, E>(exit: Exit.Exit<A, E>): unknown => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  if (Exit.isSuccess(exit)) return undefined
  const defect = Cause.dieOption(exit.cause)
  assert.isTrue(Option.isSome(defect), "expected a defect")
  return Option.getOrUndefined(defect)
}

describe("WorkerContext", () => {
  describe("in Pending", () => {
    it.scoped("a new context is Pending, not shutting down, with no tasks", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        assert.strictEqual(ctx.name, "w")
        assert.strictEqual(yield* ctx.state, "Pending")
        assert.isFalse(yield* ctx.isShuttingDown)
        assert.strictEqual(yield* ctx.taskCount, 0)
        assert.isFalse(yield* ctx.hasPendingTasks)
      }))

    it.scoped("start moves it to Running and publishes Started", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        const events = yield* ctx.subscribe
        yield* ctx.start
        assert.strictEqual(yield* ctx.state, "Running")
        assert.deepStrictEqual(yield* drain(events), [WorkerEvent.Started({ worker: "w" })])
      }))

    it.scoped("pause fails with WorkerStateError and changes nothing", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        const events = yield* ctx.subscribe
        assertStateError(yield* Effect.flip(ctx.pause), "pause", "Pending")
        assert.strictEqual(yield* ctx.state, "Pending")
        assert.deepStrictEqual(yield* drain(events), [])
      }))

    it.scoped("resume fails with WorkerStateError and changes nothing", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        const events = yield* ctx.subscribe
        assertStateError(yield* Effect.flip(ctx.resume), "resume", "Pending")
        assert.strictEqual(yield* ctx.state, "Pending")
        assert.deepStrictEqual(yield* drain(events), [])
      }))

    it.scoped("stop goes through Stopping to Stopped, publishing Stopping then Stopped", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        const events = yield* ctx.subscribe
        yield* ctx.stop
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.isTrue(yield* ctx.isShuttingDown)
        assert.deepStrictEqual(yield* drain(events), [
          WorkerEvent.Stopping({ worker: "w" }),
          WorkerEvent.Stopped({ worker: "w", interrupted: 0 })
        ])
      }))

    it.scoped("track rejects with TaskRejected carrying Pending, and the effect never runs", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        const events = yield* ctx.subscribe
        const ran = yield* Ref.make(false)
        assertRejected(yield* Effect.flip(ctx.track(Ref.set(ran, true))), "Pending")
        // A minute later (the test clock first lets every fiber that can run do so), the effect has still not run.
        yield* TestClock.adjust("1 minute")
        assert.isFalse(yield* Ref.get(ran))
        assert.strictEqual(yield* ctx.taskCount, 0)
        assert.deepStrictEqual(yield* drain(events), [])
      }))

    it.scoped("awaitShutdown waits, and returns once the context is stopped", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        const waiter = yield* forkStarted(ctx.awaitShutdown)
        yield* assertWaiting(waiter)
        yield* ctx.stop
        yield* Fiber.join(waiter)
        assert.strictEqual(yield* ctx.state, "Stopped")
      }))
  })

  describe("in Running", () => {
    it.scoped("start is a no-op that publishes no event", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.start
        yield* ctx.start
        assert.strictEqual(yield* ctx.state, "Running")
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started"])
      }))

    it.scoped("two concurrent start calls publish one Started", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        const events = yield* ctx.subscribe
        yield* Effect.all([ctx.start, ctx.start, ctx.start], { concurrency: "unbounded" })
        assert.strictEqual(yield* ctx.state, "Running")
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started"])
      }))

    it.scoped("pause moves it to Paused and publishes Paused", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.pause
        assert.strictEqual(yield* ctx.state, "Paused")
        assert.deepStrictEqual(yield* drain(events), [
          WorkerEvent.Started({ worker: "w" }),
          WorkerEvent.Paused({ worker: "w" })
        ])
      }))

    it.scoped("resume is a no-op that publishes no event", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.resume
        assert.strictEqual(yield* ctx.state, "Running")
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started"])
      }))

    it.scoped("track admits the task at once, forks it, and returns a handle", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const gate = yield* Deferred.make<void>()
        const started = yield* Deferred.make<void>()
        const task = yield* ctx.track(
          Deferred.succeed(started, void 0).pipe(Effect.zipRight(Deferred.await(gate)), Effect.as(42))
        )
        assert.strictEqual(task.id, 1)
        assert.strictEqual(yield* ctx.taskCount, 1)
        assert.isTrue(yield* ctx.hasPendingTasks)
        yield* Deferred.await(started)
        yield* assertWaiting(task.fiber)
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* task.join, 42)
        assert.strictEqual(yield* ctx.taskCount, 0)
        assert.deepStrictEqual(yield* drain(events), [
          WorkerEvent.Started({ worker: "w" }),
          WorkerEvent.TaskStarted({ worker: "w", taskId: 1 }),
          WorkerEvent.TaskFinished({ worker: "w", taskId: 1, outcome: "success" }),
          WorkerEvent.Idle({ worker: "w" })
        ])
      }))

    it.scoped("stop closes intake, drains in-flight tasks and ends Stopped", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running({ shutdownTimeout: "10 seconds" })
        const task = yield* trackStarted(ctx, Effect.sleep("2 seconds").pipe(Effect.as("done")))
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* assertWaiting(stopper)
        assert.strictEqual(yield* ctx.state, "Stopping")
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(stopper)
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.deepStrictEqual(yield* Fiber.await(task.fiber), Exit.succeed("done"))
        assert.deepStrictEqual(yield* drain(events), [
          WorkerEvent.Started({ worker: "w" }),
          WorkerEvent.TaskStarted({ worker: "w", taskId: 1 }),
          WorkerEvent.Stopping({ worker: "w" }),
          WorkerEvent.TaskFinished({ worker: "w", taskId: 1, outcome: "success" }),
          WorkerEvent.Stopped({ worker: "w", interrupted: 0 })
        ])
      }))

    it.scoped("awaitShutdown waits while Running, and returns once stopped", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const waiter = yield* forkStarted(ctx.awaitShutdown)
        yield* assertWaiting(waiter)
        assert.isFalse(yield* ctx.isShuttingDown)
        yield* ctx.stop
        yield* Fiber.join(waiter)
      }))
  })

  describe("in Paused", () => {
    it.scoped("start fails with WorkerStateError and the worker stays Paused", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.pause
        assertStateError(yield* Effect.flip(ctx.start), "start", "Paused")
        assert.strictEqual(yield* ctx.state, "Paused")
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started", "Paused"])
      }))

    it.scoped("pause is a no-op that publishes no event", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.pause
        yield* ctx.pause
        assert.strictEqual(yield* ctx.state, "Paused")
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started", "Paused"])
      }))

    it.scoped("resume moves it back to Running and publishes Resumed", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.pause
        yield* ctx.resume
        assert.strictEqual(yield* ctx.state, "Running")
        assert.deepStrictEqual(yield* drain(events), [
          WorkerEvent.Started({ worker: "w" }),
          WorkerEvent.Paused({ worker: "w" }),
          WorkerEvent.Resumed({ worker: "w" })
        ])
      }))

    it.scoped("is not shutting down", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        yield* ctx.pause
        assert.isFalse(yield* ctx.isShuttingDown)
        const requested = yield* forkStarted(ctx.shutdownRequested)
        yield* assertWaiting(requested)
      }))

    it.scoped("stop goes to Stopping, drains the running tasks and ends Stopped", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running({ shutdownTimeout: "10 seconds" })
        const task = yield* trackStarted(ctx, Effect.sleep("1 second").pipe(Effect.as("done")))
        yield* ctx.pause
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* assertWaiting(stopper)
        assert.strictEqual(yield* ctx.state, "Stopping")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.strictEqual(yield* task.join, "done")
        const seen = yield* drain(events)
        assert.deepStrictEqual(tags(seen), ["Started", "TaskStarted", "Paused", "Stopping", "TaskFinished", "Stopped"])
        assert.strictEqual(lastStopped(seen).interrupted, 0)
      }))

    it.scoped("track waits for resume, then admits the task", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.pause
        const ran = yield* Ref.make(false)
        const caller = yield* forkStarted(ctx.track(Ref.set(ran, true).pipe(Effect.as("ran"))))
        assert.strictEqual(yield* ctx.state, "Paused")
        yield* assertWaiting(caller)
        yield* assertWaiting(caller)
        assert.isFalse(yield* Ref.get(ran))
        assert.strictEqual(yield* ctx.taskCount, 0)
        yield* ctx.resume
        const task = yield* Fiber.join(caller)
        assert.strictEqual(yield* task.join, "ran")
        assert.isTrue(yield* Ref.get(ran))
        assert.deepStrictEqual(
          tags(yield* drain(events)),
          ["Started", "Paused", "Resumed", "TaskStarted", "TaskFinished", "Idle"]
        )
      }))

    it.scoped("a track waiting for resume is rejected with TaskRejected(Stopping) when shutdown begins", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running({ shutdownTimeout: "1 minute" })
        // A task in flight keeps the worker in Stopping: the waiter must be rejected when shutdown begins,
        // not when it ends.
        const inFlight = yield* trackStarted(ctx, Effect.sleep("1 second"))
        yield* ctx.pause
        const ran = yield* Ref.make(false)
        const caller = yield* forkStarted(ctx.track(Ref.set(ran, true)))
        yield* assertWaiting(caller)
        const stopper = yield* Effect.fork(ctx.stop)
        const exit = yield* Fiber.await(caller)
        assert.strictEqual(yield* ctx.state, "Stopping")
        assert.isNull(inFlight.fiber.unsafePoll())
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const error = Cause.failureOption(exit.cause)
          assert.isTrue(Option.isSome(error))
          if (Option.isSome(error)) assertRejected(error.value, "Stopping")
        }
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.isFalse(yield* Ref.get(ran))
        const seen = yield* drain(events)
        assert.strictEqual(count(seen, "TaskStarted"), 1)
        assert.strictEqual(lastStopped(seen).interrupted, 0)
      }))

    it.scoped("tasks already running keep running while paused", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const progress = yield* Ref.make(0)
        const task = yield* ctx.track(
          Effect.sleep("1 second").pipe(Effect.zipRight(Ref.updateAndGet(progress, (n) => n + 1)), Effect.repeatN(2))
        )
        yield* ctx.pause
        yield* TestClock.adjust("3 seconds")
        assert.deepStrictEqual(yield* task.await, Exit.succeed(3))
        assert.strictEqual(yield* Ref.get(progress), 3)
        assert.strictEqual(yield* ctx.state, "Paused")
        assert.deepStrictEqual(
          tags(yield* drain(events)),
          ["Started", "TaskStarted", "Paused", "TaskFinished", "Idle"]
        )
      }))

    it.scoped("awaitShutdown waits while Paused", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        yield* ctx.pause
        const waiter = yield* forkStarted(ctx.awaitShutdown)
        yield* assertWaiting(waiter)
        yield* ctx.stop
        yield* Fiber.join(waiter)
      }))
  })

  describe("in Stopping", () => {
    it.scoped("start, pause and resume fail with WorkerStateError naming the operation and Stopping", () =>
      Effect.gen(function*() {
        const { ctx, events, stopper } = yield* stopping
        assertStateError(yield* Effect.flip(ctx.start), "start", "Stopping")
        assertStateError(yield* Effect.flip(ctx.pause), "pause", "Stopping")
        assertStateError(yield* Effect.flip(ctx.resume), "resume", "Stopping")
        assert.strictEqual(yield* ctx.state, "Stopping")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.deepStrictEqual(
          tags(yield* drain(events)),
          ["Started", "TaskStarted", "Stopping", "TaskFinished", "Stopped"]
        )
      }))

    it.scoped("is shutting down, and shutdownRequested has completed", () =>
      Effect.gen(function*() {
        const { ctx, stopper } = yield* stopping
        assert.isTrue(yield* ctx.isShuttingDown)
        assert.isTrue(yield* ctx.hasPendingTasks)
        yield* ctx.shutdownRequested
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
      }))

    it.scoped("stop waits until the context is Stopped", () =>
      Effect.gen(function*() {
        const { ctx, events, stopper, task } = yield* stopping
        const second = yield* forkStarted(ctx.stop)
        yield* assertWaiting(second)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(second)
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.strictEqual(yield* task.join, "drained")
        yield* Fiber.join(stopper)
        const seen = yield* drain(events)
        assert.strictEqual(count(seen, "Stopping"), 1)
        assert.strictEqual(count(seen, "Stopped"), 1)
      }))

    it.scoped("track rejects with TaskRejected carrying Stopping, and the effect never runs", () =>
      Effect.gen(function*() {
        const { ctx, events, stopper } = yield* stopping
        const ran = yield* Ref.make(false)
        assertRejected(yield* Effect.flip(ctx.track(Ref.set(ran, true))), "Stopping")
        assert.strictEqual(yield* ctx.taskCount, 1)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.isFalse(yield* Ref.get(ran))
        assert.strictEqual(count(yield* drain(events), "TaskStarted"), 1)
      }))

    it.scoped("awaitShutdown waits until the context is Stopped", () =>
      Effect.gen(function*() {
        const { ctx, stopper } = yield* stopping
        const waiter = yield* forkStarted(ctx.awaitShutdown)
        yield* assertWaiting(waiter)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(waiter)
        assert.strictEqual(yield* ctx.state, "Stopped")
        yield* Fiber.join(stopper)
      }))
  })

  describe("in Stopped", () => {
    const stopped = Effect.gen(function*() {
      const { ctx, events } = yield* running()
      yield* ctx.stop
      assert.strictEqual(yield* ctx.state, "Stopped")
      return { ctx, events }
    })

    it.scoped("start, pause and resume fail with WorkerStateError naming the operation and Stopped", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* stopped
        assertStateError(yield* Effect.flip(ctx.start), "start", "Stopped")
        assertStateError(yield* Effect.flip(ctx.pause), "pause", "Stopped")
        assertStateError(yield* Effect.flip(ctx.resume), "resume", "Stopped")
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started", "Stopping", "Stopped"])
      }))

    it.scoped("stop returns at once and publishes nothing more", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* stopped
        yield* ctx.stop
        yield* ctx.stop
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started", "Stopping", "Stopped"])
      }))

    it.scoped("track rejects with TaskRejected carrying Stopped, and the effect never runs", () =>
      Effect.gen(function*() {
        const { ctx } = yield* stopped
        const ran = yield* Ref.make(false)
        assertRejected(yield* Effect.flip(ctx.track(Ref.set(ran, true))), "Stopped")
        // A minute later (the test clock first lets every fiber that can run do so), the effect has still not run.
        yield* TestClock.adjust("1 minute")
        assert.isFalse(yield* Ref.get(ran))
        assert.strictEqual(yield* ctx.taskCount, 0)
      }))

    it.scoped("awaitShutdown and shutdownRequested return at once", () =>
      Effect.gen(function*() {
        const { ctx } = yield* stopped
        yield* ctx.awaitShutdown
        yield* ctx.shutdownRequested
        assert.isTrue(yield* ctx.isShuttingDown)
      }))
  })

  describe("track", () => {
    it.scoped("adds the services of its context option to the task's own context, and to no one else's", () =>
      Effect.gen(function*() {
        class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}
        class Caller extends Context.Tag("test/Caller")<Caller, string>() {}
        const { ctx } = yield* running()
        const read = Effect.all([Effect.serviceOption(Greeting), Effect.serviceOption(Caller)])
        const first = yield* ctx.track(read, { context: Context.make(Greeting, "hello") }).pipe(
          Effect.provideService(Caller, "caller")
        )
        const second = yield* ctx.track(read, { context: Context.make(Greeting, "bonjour") })
        const plain = yield* ctx.track(read)
        assert.deepStrictEqual(yield* first.join, [Option.some("hello"), Option.some("caller")])
        assert.deepStrictEqual(yield* second.join, [Option.some("bonjour"), Option.none()])
        assert.deepStrictEqual(yield* plain.join, [Option.none(), Option.none()])
        assert.isTrue(Option.isNone(yield* Effect.serviceOption(Greeting)), "the caller's context is untouched")
        const bad = yield* Effect.exit(ctx.track(Effect.void, { context: "nope" as never }))
        assert.isTrue(Exit.isFailure(bad) && Cause.isDie(bad.cause))
      }))

    it.scoped("counts a task before its effect starts", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const task = yield* ctx.track(ctx.taskCount)
        assert.strictEqual(yield* ctx.taskCount, 1)
        assert.strictEqual(yield* task.join, 1)
        assert.strictEqual(yield* ctx.taskCount, 0)
      }))

    it.scoped("gives tasks unique ids, increasing in admission order from 1", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const first = yield* ctx.track(Effect.void)
        const second = yield* ctx.track(Effect.fail("boom"))
        yield* first.await
        const third = yield* ctx.track(Effect.void)
        assert.deepStrictEqual([first.id, second.id, third.id], [1, 2, 3])
      }))

    it.scoped("counts a task down when it succeeds, fails, dies or is interrupted", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const gate = yield* Deferred.make<void>()
        // Each task has begun, and waits.
        const succeeding = yield* trackStarted(ctx, Deferred.await(gate).pipe(Effect.as("ok")))
        const failing = yield* trackStarted(ctx, Deferred.await(gate).pipe(Effect.zipRight(Effect.fail("boom"))))
        const dying = yield* trackStarted(ctx, Deferred.await(gate).pipe(Effect.zipRight(Effect.die("bug"))))
        const hanging = yield* trackStarted(ctx, Effect.never)
        assert.strictEqual(yield* ctx.taskCount, 4)

        yield* hanging.interrupt
        assert.strictEqual(yield* ctx.taskCount, 3)
        assert.isTrue(Exit.isInterrupted(yield* hanging.await))

        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(yield* succeeding.await, Exit.succeed("ok"))
        assert.deepStrictEqual(yield* failing.await, Exit.fail("boom"))
        assert.deepStrictEqual(yield* Effect.exit(failing.join), Exit.fail("boom"))
        assert.strictEqual(defectOf(yield* dying.await), "bug")
        assert.strictEqual(yield* ctx.taskCount, 0)
        assert.isFalse(yield* ctx.hasPendingTasks)

        const seen = yield* drain(events)
        assert.deepStrictEqual(finishedOutcomes(seen), {
          [succeeding.id]: "success",
          [failing.id]: "failure",
          [dying.id]: "failure",
          [hanging.id]: "interrupted"
        })
        assert.strictEqual(count(seen, "Idle"), 1)
        assert.strictEqual(seen[seen.length - 1]?._tag, "Idle")
      }))

    it.scoped("a task's failure or defect never touches the worker or the other tasks", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const sibling = yield* ctx.track(Effect.sleep("1 second").pipe(Effect.as("sibling done")))
        const failing = yield* ctx.track(Effect.fail("boom"))
        const dying = yield* ctx.track(Effect.die("bug"))
        yield* failing.await
        yield* dying.await
        assert.strictEqual(yield* ctx.state, "Running")
        assert.isFalse(yield* ctx.isShuttingDown)
        assert.isNull(sibling.fiber.unsafePoll())
        assert.strictEqual(yield* ctx.taskCount, 1)
        const next = yield* ctx.track(Effect.succeed("still admitted"))
        assert.strictEqual(yield* next.join, "still admitted")
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* sibling.join, "sibling done")
        assert.deepStrictEqual(finishedOutcomes(yield* drain(events)), {
          [sibling.id]: "success",
          [failing.id]: "failure",
          [dying.id]: "failure",
          [next.id]: "success"
        })
      }))

    it.scoped("a tracked task outlives the caller of track when that caller is interrupted", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const finished = yield* Ref.make(false)
        const handle = yield* Deferred.make<Tracked<void, never>>()
        const caller = yield* Effect.fork(Effect.gen(function*() {
          const task = yield* trackStarted(ctx, Effect.sleep("1 second").pipe(Effect.zipRight(Ref.set(finished, true))))
          yield* Deferred.succeed(handle, task)
          return yield* Effect.never
        }))
        const task = yield* Deferred.await(handle)
        yield* Fiber.interrupt(caller)
        // Asked after the caller has ended, the task still sleeps.
        yield* assertWaiting(task.fiber)
        assert.strictEqual(yield* ctx.taskCount, 1)
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* task.await, Exit.void)
        assert.isTrue(yield* Ref.get(finished))
        assert.strictEqual(yield* ctx.taskCount, 0)
      }))

    it.scoped("a task tracked from an uninterruptible region stays interruptible, so the shutdown timeout cuts it off", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running({ shutdownTimeout: "5 seconds" })
        const finalized = yield* Ref.make(false)
        const task = yield* Effect.uninterruptible(
          trackStarted(ctx, Effect.never.pipe(Effect.ensuring(Ref.set(finalized, true))))
        )
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* assertWaiting(stopper)
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(stopper)
        assert.isTrue(Exit.isInterrupted(yield* task.await))
        assert.isTrue(yield* Ref.get(finalized))
        assert.strictEqual(lastStopped(yield* drain(events)).interrupted, 1)
      }))

    it.scoped("a task tracked from an uninterruptible region can be interrupted through its handle", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const task = yield* Effect.uninterruptible(ctx.track(Effect.never))
        yield* task.interrupt
        assert.isTrue(Exit.isInterrupted(yield* task.await))
        assert.strictEqual(yield* ctx.taskCount, 0)
      }))

    it.effect("a tracked task gets the context with yield* WorkerContext", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext
        yield* ctx.start
        const task = yield* ctx.track(Effect.gen(function*() {
          const inner = yield* WorkerContext
          return { name: inner.name, state: yield* inner.state, count: yield* inner.taskCount, same: inner === ctx }
        }))
        assert.deepStrictEqual(yield* task.join, { name: "inner", state: "Running", count: 1, same: true })
      }).pipe(Effect.provide(WorkerContext.layer({ name: "inner" }))))

    it.scoped("a track racing stop is either admitted before Stopping and drained, or rejected", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const ran = yield* Ref.make(0)
        const attempts = 40
        // Caller `i` calls track once gate `i % 7` opens, and `stop` is called once gate 3 opens; the gates open in
        // turn. The callers of gates 0 to 2 are admitted before stop is called, those of gates 4 to 6 call track once
        // shutdown has begun, and those of gate 3 are let go together with stop and race it. A task waits for task
        // gate `i % 3`: those of gate 0 end at once, the others only once shutdown has begun, so stop drains them.
        const gates = yield* Effect.forEach(Array.from({ length: 7 }), () => Deferred.make<void>())
        const taskGates = yield* Effect.forEach(Array.from({ length: 3 }), () => Deferred.make<void>())
        const open = (gates: ReadonlyArray<Deferred.Deferred<void>>) =>
          Effect.forEach(gates, (gate) => Deferred.succeed(gate, void 0), { discard: true })
        const attempt = (i: number) =>
          Deferred.await(gates[i % 7]!).pipe(
            Effect.zipRight(
              ctx.track(
                Deferred.await(taskGates[i % 3]!).pipe(Effect.zipRight(Ref.update(ran, (n) => n + 1)))
              )
            ),
            Effect.either
          )
        const callers: Array<Fiber.RuntimeFiber<Either.Either<Tracked<void, never>, TaskRejected>>> = []
        let stopper: Fiber.RuntimeFiber<void> | undefined
        for (let i = 0; i < attempts; i++) {
          if (i === attempts / 2) stopper = yield* Effect.fork(Effect.zipRight(Deferred.await(gates[3]!), ctx.stop))
          callers.push(yield* Effect.fork(attempt(i)))
        }
        yield* open(taskGates.slice(0, 1))
        yield* open(gates.slice(0, 3))
        yield* Fiber.joinAll(callers.filter((_, i) => i % 7 < 3))
        yield* open(gates.slice(3, 4))
        yield* ctx.shutdownRequested
        yield* open(gates.slice(4))
        yield* open(taskGates.slice(1))
        assert.isDefined(stopper)
        if (stopper !== undefined) yield* Fiber.join(stopper)
        const results = yield* Fiber.joinAll(callers)

        const admitted = results.filter(Either.isRight).map((result) => result.right)
        const rejected = results.filter(Either.isLeft).map((result) => result.left)
        assert.strictEqual(admitted.length + rejected.length, attempts)
        assert.isAbove(admitted.length, 0)
        assert.isAbove(rejected.length, 0)
        for (const error of rejected) {
          assert.strictEqual(error._tag, "TaskRejected")
          assert.include(["Stopping", "Stopped"], error.state)
        }
        for (const task of admitted) {
          assert.deepStrictEqual(task.fiber.unsafePoll(), Exit.void, "admitted tasks were drained before Stopped")
        }
        assert.strictEqual(yield* Ref.get(ran), admitted.length)
        assert.strictEqual(yield* ctx.taskCount, 0)

        const seen = yield* drain(events)
        const stoppingAt = seen.findIndex((event) => event._tag === "Stopping")
        assert.isAbove(stoppingAt, 0)
        const startedIds = seen.filter(WorkerEvent.$is("TaskStarted")).map((event) => event.taskId)
        assert.isTrue(
          seen.every((event, i) => event._tag !== "TaskStarted" || i < stoppingAt),
          "no task is admitted after Stopping"
        )
        assert.deepStrictEqual(
          [...startedIds].sort((a, b) => a - b),
          admitted.map((task) => task.id).sort((a, b) => a - b)
        )
        assert.strictEqual(count(seen, "TaskFinished"), admitted.length)
        assert.strictEqual(count(seen, "Stopped"), 1)
        assert.strictEqual(lastStopped(seen).interrupted, 0)
      }))
  })

  describe("shutdown", () => {
    it.scoped("drains tasks that finish within the timeout and interrupts none", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running({ shutdownTimeout: "5 seconds" })
        const finalized = yield* Ref.make(false)
        const task = yield* trackStarted(
          ctx,
          Effect.sleep("3 seconds").pipe(Effect.as("done"), Effect.ensuring(Ref.set(finalized, true)))
        )
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* TestClock.adjust("2 seconds")
        yield* assertWaiting(stopper)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.deepStrictEqual(yield* task.await, Exit.succeed("done"))
        assert.isTrue(yield* Ref.get(finalized))
        const seen = yield* drain(events)
        assert.strictEqual(lastStopped(seen).interrupted, 0)
        assert.deepStrictEqual(finishedOutcomes(seen), { [task.id]: "success" })
      }))

    it.scoped("interrupts the tasks still running after the timeout, runs their finalizers and counts them", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running({ shutdownTimeout: "5 seconds" })
        const finalizers = yield* Ref.make(0)
        const quick = yield* trackStarted(ctx, Effect.sleep("1 second"))
        const slow = yield* trackStarted(
          ctx,
          Effect.sleep("1 minute").pipe(Effect.onInterrupt(() => Ref.update(finalizers, (n) => n + 1)))
        )
        const stuck = yield* trackStarted(ctx, Effect.never.pipe(Effect.ensuring(Ref.update(finalizers, (n) => n + 1))))
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* quick.await, Exit.void)
        yield* TestClock.adjust("3 seconds")
        yield* assertWaiting(stopper)
        assert.strictEqual(yield* ctx.state, "Stopping")
        assert.strictEqual(yield* ctx.taskCount, 2)
        assert.strictEqual(yield* Ref.get(finalizers), 0)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.strictEqual(yield* ctx.taskCount, 0)
        assert.strictEqual(yield* Ref.get(finalizers), 2)
        assert.isTrue(Exit.isInterrupted(yield* slow.await))
        assert.isTrue(Exit.isInterrupted(yield* stuck.await))
        const seen = yield* drain(events)
        assert.deepStrictEqual(lastStopped(seen), WorkerEvent.Stopped({ worker: "w", interrupted: 2 }))
        assert.deepStrictEqual(finishedOutcomes(seen), {
          [quick.id]: "success",
          [slow.id]: "interrupted",
          [stuck.id]: "interrupted"
        })
      }))

    it.scoped("does not count tasks interrupted before the deadline as cut off", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running({ shutdownTimeout: "5 seconds" })
        const early = yield* ctx.track(Effect.never)
        const late = yield* ctx.track(Effect.never)
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* early.interrupt
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(stopper)
        assert.isTrue(Exit.isInterrupted(yield* late.await))
        assert.strictEqual(lastStopped(yield* drain(events)).interrupted, 1)
      }))

    it.scoped("waits 30 seconds for in-flight tasks by default", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make()
        const events = yield* ctx.subscribe
        yield* ctx.start
        yield* ctx.track(Effect.never)
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* TestClock.adjust("29 seconds")
        yield* assertWaiting(stopper)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.deepStrictEqual(
          lastStopped(yield* drain(events)),
          WorkerEvent.Stopped({ worker: "worker", interrupted: 1 })
        )
      }))

    it.scoped("publishes Stopped exactly once, as the last event, however many times shutdown is requested", () =>
      Effect.gen(function*() {
        const signal = yield* Deferred.make<void>()
        const signalEnded = yield* Deferred.make<void>()
        const { ctx, events } = yield* running({
          shutdownSignal: Deferred.await(signal).pipe(Effect.onExit(() => Deferred.succeed(signalEnded, void 0)))
        })
        yield* trackStarted(ctx, Effect.sleep("1 second"))
        const stoppers = yield* Effect.forEach([1, 2, 3], () => forkStarted(ctx.stop))
        for (const stopper of stoppers) yield* assertWaiting(stopper)
        yield* Deferred.succeed(signal, undefined)
        // The context no longer waits for its signal: the signal has ended (or was interrupted when shutdown began).
        yield* Deferred.await(signalEnded)
        yield* TestClock.adjust("1 second")
        yield* Fiber.joinAll(stoppers)
        yield* ctx.stop
        const seen = yield* drain(events)
        assert.strictEqual(count(seen, "Stopping"), 1)
        assert.strictEqual(count(seen, "Stopped"), 1)
        lastStopped(seen)
      }))

    it.scoped("awaitShutdown completes for every waiter", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        yield* trackStarted(ctx, Effect.sleep("1 second"))
        const waiters = yield* Effect.forEach(Array.from({ length: 10 }), () => forkStarted(ctx.awaitShutdown))
        for (const waiter of waiters) yield* assertWaiting(waiter)
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        for (const waiter of waiters) yield* assertWaiting(waiter)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        const exits = yield* Effect.forEach(waiters, Fiber.await)
        assert.deepStrictEqual(exits, Array.from({ length: 10 }, () => Exit.void))
      }))

    it.scoped("concurrent stop callers all return once the context is Stopped", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const task = yield* trackStarted(ctx, Effect.sleep("1 second"))
        const stoppers = yield* Effect.forEach(Array.from({ length: 5 }), () => forkStarted(ctx.stop))
        for (const stopper of stoppers) yield* assertWaiting(stopper)
        yield* TestClock.adjust("1 second")
        yield* Fiber.joinAll(stoppers)
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.deepStrictEqual(yield* task.await, Exit.void)
        const seen = yield* drain(events)
        assert.deepStrictEqual(tags(seen), ["Started", "TaskStarted", "Stopping", "TaskFinished", "Stopped"])
      }))

    it.scoped("interrupting a caller of stop does not cancel the shutdown", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running({ shutdownTimeout: "10 seconds" })
        const finished = yield* Ref.make(false)
        yield* trackStarted(ctx, Effect.sleep("1 second").pipe(Effect.zipRight(Ref.set(finished, true))))
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* Fiber.interrupt(stopper)
        assert.strictEqual(yield* ctx.state, "Stopping")
        yield* TestClock.adjust("1 second")
        yield* ctx.awaitShutdown
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.isTrue(yield* Ref.get(finished))
        assert.strictEqual(lastStopped(yield* drain(events)).interrupted, 0)
      }))

    it.scoped("stop is idempotent", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.stop
        yield* ctx.stop
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started", "Stopping", "Stopped"])
      }))

    it.scoped("shutdownRequested completes as shutdown begins, before the tasks have drained", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const task = yield* trackStarted(ctx, Effect.sleep("1 second"))
        const requested = yield* forkStarted(ctx.shutdownRequested)
        yield* assertWaiting(requested)
        const stopper = yield* Effect.fork(ctx.stop)
        yield* Fiber.join(requested)
        assert.strictEqual(yield* ctx.state, "Stopping")
        assert.isNull(task.fiber.unsafePoll())
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
      }))

    it.scoped("a shutdown signal that succeeds begins shutdown and drains the tasks", () =>
      Effect.gen(function*() {
        const signal = yield* Deferred.make<void, string>()
        const listening = yield* Deferred.make<void>()
        const { ctx, events } = yield* running({
          shutdownSignal: Effect.zipRight(Deferred.succeed(listening, void 0), Deferred.await(signal))
        })
        const task = yield* trackStarted(ctx, Effect.sleep("1 second").pipe(Effect.as("done")))
        // The context waits for its signal, and has not begun shutdown.
        yield* Deferred.await(listening)
        assert.strictEqual(yield* ctx.state, "Running")
        yield* Deferred.succeed(signal, undefined)
        yield* ctx.shutdownRequested
        assert.strictEqual(yield* ctx.state, "Stopping")
        assertRejected(yield* Effect.flip(ctx.track(Effect.void)), "Stopping")
        yield* TestClock.adjust("1 second")
        yield* ctx.awaitShutdown
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.deepStrictEqual(yield* task.await, Exit.succeed("done"))
        assert.deepStrictEqual(
          tags(yield* drain(events)),
          ["Started", "TaskStarted", "Stopping", "TaskFinished", "Stopped"]
        )
      }))

    it.scoped("a shutdown signal that fails still begins shutdown and drains the tasks", () =>
      Effect.gen(function*() {
        const signal = yield* Deferred.make<void, string>()
        const listening = yield* Deferred.make<void>()
        const { ctx, events } = yield* running({
          shutdownSignal: Effect.zipRight(Deferred.succeed(listening, void 0), Deferred.await(signal))
        })
        const task = yield* trackStarted(ctx, Effect.sleep("1 second").pipe(Effect.as("done")))
        yield* Deferred.await(listening)
        yield* Deferred.fail(signal, "signal broke")
        yield* ctx.shutdownRequested
        assert.strictEqual(yield* ctx.state, "Stopping")
        yield* TestClock.adjust("1 second")
        yield* ctx.awaitShutdown
        assert.deepStrictEqual(yield* task.await, Exit.succeed("done"))
        const seen = yield* drain(events)
        assert.deepStrictEqual(tags(seen), ["Started", "TaskStarted", "Stopping", "TaskFinished", "Stopped"])
        assert.strictEqual(lastStopped(seen).interrupted, 0)
      }))

    it.effect("closing the layer's scope shuts the worker down and drains in-flight tasks", () =>
      Effect.gen(function*() {
        const { ctx, scope } = yield* buildInScope({ shutdownTimeout: "10 seconds" })
        const seen: Array<WorkerEvent> = []
        yield* ctx.listen((event) => Effect.sync(() => seen.push(event)))
        yield* ctx.start
        const finished = yield* Ref.make(false)
        const task = yield* trackStarted(ctx, Effect.sleep("1 second").pipe(Effect.zipRight(Ref.set(finished, true))))
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* ctx.shutdownRequested
        yield* assertWaiting(closing)
        assert.strictEqual(yield* ctx.state, "Stopping")
        assert.isFalse(yield* Ref.get(finished))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)
        assert.isTrue(yield* Ref.get(finished))
        assert.deepStrictEqual(yield* task.await, Exit.void)
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.deepStrictEqual(tags(seen), ["Started", "TaskStarted", "Stopping", "TaskFinished", "Stopped"])
        assert.strictEqual(lastStopped(seen).interrupted, 0)
      }))

    it.effect("closing the layer's scope cuts off tasks after the shutdown timeout", () =>
      Effect.gen(function*() {
        const { ctx, scope } = yield* buildInScope({ shutdownTimeout: "2 seconds" })
        yield* ctx.start
        const finalized = yield* Ref.make(false)
        const task = yield* trackStarted(ctx, Effect.never.pipe(Effect.ensuring(Ref.set(finalized, true))))
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* ctx.shutdownRequested
        yield* assertWaiting(closing)
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(closing)
        assert.isTrue(Exit.isInterrupted(yield* task.await))
        assert.isTrue(yield* Ref.get(finalized))
        assert.strictEqual(yield* ctx.state, "Stopped")
      }))

    it.scoped("stop called from inside a tracked task requests shutdown and returns without waiting for itself", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const task = yield* ctx.track(Effect.gen(function*() {
          yield* ctx.stop
          return yield* ctx.state
        }))
        assert.strictEqual(yield* task.join, "Stopping")
        yield* ctx.awaitShutdown
        assert.strictEqual(yield* ctx.state, "Stopped")
        const seen = yield* drain(events)
        assert.deepStrictEqual(tags(seen), ["Started", "TaskStarted", "Stopping", "TaskFinished", "Stopped"])
        assert.deepStrictEqual(finishedOutcomes(seen), { [task.id]: "success" })
        assert.strictEqual(lastStopped(seen).interrupted, 0)
      }))

    it.scoped("awaitShutdown called from inside a tracked task dies with a message instead of hanging", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const task = yield* ctx.track(ctx.awaitShutdown)
        const defect = defectOf(yield* task.await)
        assert.instanceOf(defect, Error)
        assert.include((defect as Error).message, "would wait for itself")
        assert.include((defect as Error).message, "\"w\"")
        assert.strictEqual(yield* ctx.state, "Running")
        assert.strictEqual(yield* ctx.taskCount, 0)
      }))

    it.scoped("a fiber that joined a tracked task is not inside it: its awaitShutdown waits and its stop drains", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const first = yield* ctx.track(Effect.succeed(1))
        assert.strictEqual(yield* first.join, 1)
        const waiter = yield* forkStarted(ctx.awaitShutdown)
        yield* assertWaiting(waiter)
        const inFlight = yield* trackStarted(ctx, Effect.sleep("1 second"))
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        yield* assertWaiting(stopper)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.deepStrictEqual(yield* inFlight.await, Exit.void)
        assert.deepStrictEqual(yield* Fiber.await(waiter), Exit.void)
      }))

    it.scoped("joining a tracked task leaves the caller's current span as it was", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const task = yield* ctx.track(Effect.map(Effect.currentSpan, (span) => span.name))
        assert.strictEqual(yield* task.join, "WorkerContext.task")
        const after = yield* Effect.currentSpan
        assert.strictEqual(after.name, "caller")
      }).pipe(Effect.withSpan("caller")))

    it.scoped("a task tracked into another context from a task is inside that context only", () =>
      Effect.gen(function*() {
        const a = yield* WorkerContext.make({ name: "a" })
        const b = yield* WorkerContext.make({ name: "b" })
        yield* a.start
        yield* b.start
        const release = yield* Deferred.make<void>()
        const outer = yield* a.track(b.track(Effect.zipRight(Deferred.await(release), Effect.exit(a.awaitShutdown))))
        const inner = yield* outer.join
        yield* Deferred.succeed(release, void 0)
        yield* assertWaiting(inner.fiber, "b's task waits for a's shutdown instead of dying")
        yield* a.stop
        assert.deepStrictEqual(yield* inner.join, Exit.void)
      }))
  })

  describe("events", () => {
    it.scoped("every subscriber sees the events in the order they happened, each carrying the worker's name", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        const first = yield* ctx.subscribe
        const second = yield* ctx.subscribe
        yield* ctx.start
        const ok = yield* ctx.track(Effect.void)
        yield* ok.await
        yield* ctx.pause
        yield* ctx.resume
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: { hello: "world" } }))
        const bad = yield* ctx.track(Effect.fail("boom"))
        yield* bad.await
        yield* ctx.stop
        const expected = [
          WorkerEvent.Started({ worker: "w" }),
          WorkerEvent.TaskStarted({ worker: "w", taskId: 1 }),
          WorkerEvent.TaskFinished({ worker: "w", taskId: 1, outcome: "success" }),
          WorkerEvent.Idle({ worker: "w" }),
          WorkerEvent.Paused({ worker: "w" }),
          WorkerEvent.Resumed({ worker: "w" }),
          WorkerEvent.Custom({ worker: "w", value: { hello: "world" } }),
          WorkerEvent.TaskStarted({ worker: "w", taskId: 2 }),
          WorkerEvent.TaskFinished({ worker: "w", taskId: 2, outcome: "failure", cause: Cause.fail("boom") }),
          WorkerEvent.Idle({ worker: "w" }),
          WorkerEvent.Stopping({ worker: "w" }),
          WorkerEvent.Stopped({ worker: "w", interrupted: 0 })
        ]
        assert.deepStrictEqual(yield* drain(first), expected)
        assert.deepStrictEqual(yield* drain(second), expected)
      }))

    it.scoped("a subscriber sees only what is published after it subscribed", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const late = yield* ctx.subscribe
        yield* ctx.pause
        assert.deepStrictEqual(tags(yield* drain(late)), ["Paused"])
      }))

    it.scoped("publishes Idle when the task count drops to zero while Running", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const gate = yield* Deferred.make<void>()
        const first = yield* ctx.track(Effect.void)
        const second = yield* ctx.track(Deferred.await(gate))
        // The context handles a task's end as the task's fiber exits, before `await` returns.
        yield* first.await
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started", "TaskStarted", "TaskStarted", "TaskFinished"])
        yield* Deferred.succeed(gate, undefined)
        yield* second.await
        assert.deepStrictEqual(tags(yield* drain(events)), ["TaskFinished", "Idle"])
      }))

    it.scoped("publishes Idle when the task count drops to zero while Paused", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const task = yield* ctx.track(Effect.sleep("1 second"))
        yield* ctx.pause
        yield* TestClock.adjust("1 second")
        yield* task.await
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started", "TaskStarted", "Paused", "TaskFinished", "Idle"])
      }))

    it.scoped("does not publish Idle when the last task ends while Stopping", () =>
      Effect.gen(function*() {
        const { ctx, events, stopper } = yield* stopping
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.deepStrictEqual(
          tags(yield* drain(events)),
          ["Started", "TaskStarted", "Stopping", "TaskFinished", "Stopped"]
        )
      }))

    it.scoped("emit publishes a Custom event to every subscriber", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        const other = yield* ctx.subscribe
        yield* ctx.emit(WorkerEvent.Custom({ worker: ctx.name, value: 1 }))
        yield* ctx.emit(WorkerEvent.Custom({ worker: ctx.name, value: 2 }))
        const expected = [WorkerEvent.Custom({ worker: "w", value: 1 }), WorkerEvent.Custom({ worker: "w", value: 2 })]
        assert.deepStrictEqual((yield* drain(events)).slice(1), expected)
        assert.deepStrictEqual(yield* drain(other), expected)
      }))

    it.scoped("emit stamps a Custom event with the context's name", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.emit(WorkerEvent.Custom({ worker: "someone-else", value: 7 }))
        assert.deepStrictEqual((yield* drain(events)).slice(1), [WorkerEvent.Custom({ worker: "w", value: 7 })])
      }))

    it.scoped("emit of an event other than Custom dies with IllegalArgumentException and publishes nothing", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        for (
          const event of [
            WorkerEvent.Started({ worker: "w" }),
            WorkerEvent.Stopped({ worker: "w", interrupted: 0 }),
            WorkerEvent.TaskFinished({ worker: "w", taskId: 9, outcome: "success" })
          ]
        ) {
          // Not a Custom event: the type says so, and at run time it is a defect.
          const defect = defectOf(yield* Effect.exit(ctx.emit(event as unknown as CustomEvent)))
          assert.isTrue(Cause.isIllegalArgumentException(defect), `emit(${event._tag}) dies`)
        }
        assert.strictEqual(yield* ctx.state, "Running")
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started"])
      }))

    it.scoped("emit after Stopped publishes nothing: Stopped stays the last event", () =>
      Effect.gen(function*() {
        const { ctx, events } = yield* running()
        yield* ctx.stop
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: "late" }))
        assert.deepStrictEqual(tags(yield* drain(events)), ["Started", "Stopping", "Stopped"])
      }))

    it.scoped("the events stream delivers events in order and ends after Stopped", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        const collector = yield* Effect.fork(Stream.runCollect(ctx.events))
        // The stream has subscribed, and waits for the first event.
        yield* assertWaiting(collector)
        yield* ctx.start
        const task = yield* ctx.track(Effect.void)
        yield* task.await
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: "x" }))
        yield* ctx.stop
        const collected = Chunk.toReadonlyArray(yield* Fiber.join(collector))
        assert.deepStrictEqual(
          tags(collected),
          ["Started", "TaskStarted", "TaskFinished", "Idle", "Custom", "Stopping", "Stopped"]
        )
      }))

    it.scoped("an events stream opened after Stopped ends at once, empty", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        yield* ctx.stop
        const collector = yield* Effect.fork(Stream.runCollect(ctx.events))
        // Idle without anything else happening: it has ended, or it waits.
        yield* idleStatus(collector)
        assert.isNotNull(collector.unsafePoll(), "the stream has ended")
        assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(collector)), [])
      }))

    it.effect("a slow events stream still gets every event through Stopped when the context's scope closes", () =>
      Effect.gen(function*() {
        const { ctx, scope } = yield* buildInScope()
        const collector = yield* Effect.fork(
          Stream.runCollect(ctx.events.pipe(Stream.tap(() => Effect.sleep("1 second"))))
        )
        // The stream has subscribed, and waits for the first event.
        yield* assertWaiting(collector)
        yield* ctx.start
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: 1 }))
        yield* Scope.close(scope, Exit.void)
        yield* TestClock.adjust("10 seconds")
        const seen = Chunk.toReadonlyArray(yield* Fiber.join(collector))
        assert.deepStrictEqual(tags(seen), ["Started", "Custom", "Stopping", "Stopped"])
      }))

    it.scoped("stateChanges starts with the current state, follows every change and ends after Stopped", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w" })
        /** Collects `stateChanges`, and returns once the stream has emitted its first state: it has subscribed. */
        const collect = Effect.gen(function*() {
          const emitted = yield* Queue.unbounded<WorkerState>()
          const fiber = yield* Effect.fork(
            Stream.runCollect(Stream.tap(ctx.stateChanges, (state) => Queue.offer(emitted, state)))
          )
          return { fiber, first: yield* Queue.take(emitted) }
        })
        const fromPending = yield* collect
        assert.strictEqual(fromPending.first, "Pending")
        yield* ctx.start
        const fromRunning = yield* collect
        assert.strictEqual(fromRunning.first, "Running")
        yield* ctx.pause
        yield* ctx.pause
        yield* ctx.resume
        yield* trackStarted(ctx, Effect.sleep("1 second"))
        const stopper = yield* Effect.fork(ctx.stop)
        yield* ctx.shutdownRequested
        const fromStopping = yield* collect
        assert.strictEqual(fromStopping.first, "Stopping")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopper)
        assert.deepStrictEqual(
          Chunk.toReadonlyArray(yield* Fiber.join(fromPending.fiber)),
          ["Pending", "Running", "Paused", "Running", "Stopping", "Stopped"]
        )
        assert.deepStrictEqual(
          Chunk.toReadonlyArray(yield* Fiber.join(fromRunning.fiber)),
          ["Running", "Paused", "Running", "Stopping", "Stopped"]
        )
        assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(fromStopping.fiber)), ["Stopping", "Stopped"])
        const fromStopped = yield* Stream.runCollect(ctx.stateChanges)
        assert.deepStrictEqual(Chunk.toReadonlyArray(fromStopped), ["Stopped"])
      }))

    it.scoped("a subscriber that never reads blocks neither track, emit nor stop, and keeps only the newest events", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "w", eventBufferSize: 4 })
        const slow = yield* ctx.subscribe
        yield* ctx.start
        for (let i = 0; i < 10; i++) {
          const task = yield* ctx.track(Effect.void)
          yield* task.await
        }
        for (let value = 1; value <= 3; value++) {
          yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value }))
        }
        yield* ctx.stop
        assert.strictEqual(yield* ctx.state, "Stopped")
        assert.deepStrictEqual(yield* drain(slow), [
          WorkerEvent.Custom({ worker: "w", value: 2 }),
          WorkerEvent.Custom({ worker: "w", value: 3 }),
          WorkerEvent.Stopping({ worker: "w" }),
          WorkerEvent.Stopped({ worker: "w", interrupted: 0 })
        ])
      }))
  })

  describe("listen", () => {
    it.effect("a listener sees every event published after listen returns, in order, through Stopped", () =>
      Effect.gen(function*() {
        const { ctx, scope } = yield* buildInScope()
        yield* ctx.start
        const seen: Array<WorkerEvent> = []
        yield* ctx.listen((event) => Effect.sync(() => seen.push(event)))
        const task = yield* ctx.track(Effect.succeed(1))
        yield* task.await
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: "hi" }))
        yield* ctx.pause
        yield* ctx.resume
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(seen, [
          WorkerEvent.TaskStarted({ worker: "w", taskId: 1 }),
          WorkerEvent.TaskFinished({ worker: "w", taskId: 1, outcome: "success" }),
          WorkerEvent.Idle({ worker: "w" }),
          WorkerEvent.Custom({ worker: "w", value: "hi" }),
          WorkerEvent.Paused({ worker: "w" }),
          WorkerEvent.Resumed({ worker: "w" }),
          WorkerEvent.Stopping({ worker: "w" }),
          WorkerEvent.Stopped({ worker: "w", interrupted: 0 })
        ])
      }))

    it.effect("a listener outlives the fiber that attached it", () =>
      Effect.gen(function*() {
        const { ctx, scope } = yield* buildInScope()
        const seen: Array<string> = []
        const attacher = yield* Effect.fork(ctx.listen((event) => Effect.sync(() => seen.push(event._tag))))
        yield* Fiber.join(attacher)
        yield* ctx.start
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(seen, ["Started", "Stopping", "Stopped"])
      }))

    it.scoped("a listener attached from inside a task is not part of that task", () =>
      Effect.gen(function*() {
        const { ctx } = yield* running()
        const seen = yield* Deferred.make<Exit.Exit<void>>()
        const received = yield* Deferred.make<void>()
        const attach = yield* ctx.track(ctx.listen((event) =>
          event._tag === "Custom"
            ? Deferred.succeed(received, void 0).pipe(
              Effect.zipRight(Effect.exit(ctx.awaitShutdown)),
              Effect.flatMap((exit) => Deferred.succeed(seen, exit))
            )
            : Effect.void
        ))
        yield* attach.join
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: "wait for shutdown" }))
        // The handler has the event, and has gone on into awaitShutdown: had it died there, `seen` would be done.
        yield* Deferred.await(received)
        assert.isFalse(yield* Deferred.isDone(seen), "the handler's awaitShutdown waits instead of dying")
        yield* ctx.stop
        assert.deepStrictEqual(yield* Deferred.await(seen), Exit.void)
      }))

    it.effect("a handler that fails, dies or throws keeps receiving events", () =>
      Effect.gen(function*() {
        const { ctx, scope } = yield* buildInScope()
        const seen: Array<string> = []
        yield* ctx.listen((event) => {
          const label = event._tag === "Custom" ? String(event.value) : event._tag
          if (label === "throw") {
            seen.push(label)
            throw new Error("thrown by the handler")
          }
          return Effect.sync(() => seen.push(label)).pipe(
            Effect.zipRight(
              label === "fail"
                ? Effect.fail("handler failed")
                : label === "die"
                ? Effect.die("handler died")
                : Effect.void
            )
          )
        })
        yield* ctx.start
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: "fail" }))
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: "die" }))
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: "throw" }))
        yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: "fine" }))
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(seen, ["Started", "fail", "die", "throw", "fine", "Stopping", "Stopped"])
      }))

    it.effect("closing the scope waits until every listener has handled Stopped", () =>
      Effect.gen(function*() {
        const { ctx, scope } = yield* buildInScope({ shutdownTimeout: "10 seconds" })
        const handled = yield* Ref.make<ReadonlyArray<string>>([])
        const received = yield* Queue.unbounded<string>()
        const slowOnStopped = (id: string, delay: Duration.DurationInput) => (event: WorkerEvent) =>
          event._tag === "Stopped"
            ? Queue.offer(received, id).pipe(
              Effect.zipRight(Effect.sleep(delay)),
              Effect.zipRight(Ref.update(handled, (done) => [...done, id]))
            )
            : Effect.void
        yield* ctx.listen(slowOnStopped("a", "1 second"))
        yield* ctx.listen(slowOnStopped("b", "2 seconds"))
        yield* ctx.start
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        // Both listeners have Stopped, and are handling it.
        assert.sameMembers([yield* Queue.take(received), yield* Queue.take(received)], ["a", "b"])
        yield* assertWaiting(closing)
        assert.strictEqual(yield* ctx.state, "Stopped")
        yield* TestClock.adjust("1 second")
        yield* assertWaiting(closing)
        assert.deepStrictEqual(yield* Ref.get(handled), ["a"])
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)
        assert.deepStrictEqual(yield* Ref.get(handled), ["a", "b"])
      }))

    it.effect("closing the scope stops waiting for a listener that hangs on Stopped after the shutdown timeout", () =>
      Effect.gen(function*() {
        const { ctx, scope } = yield* buildInScope({ shutdownTimeout: "5 seconds" })
        const interrupted = yield* Ref.make(false)
        const received = yield* Deferred.make<void>()
        yield* ctx.listen((event) =>
          event._tag === "Stopped"
            ? Deferred.succeed(received, void 0).pipe(
              Effect.zipRight(Effect.never),
              Effect.onInterrupt(() => Ref.set(interrupted, true))
            )
            : Effect.void
        )
        yield* ctx.start
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        // The listener has Stopped, and hangs on it.
        yield* Deferred.await(received)
        yield* assertWaiting(closing)
        yield* TestClock.adjust("4 seconds")
        yield* assertWaiting(closing)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)
        assert.isTrue(yield* Ref.get(interrupted))
        assert.strictEqual(yield* ctx.state, "Stopped")
      }))
  })

  describe("options", () => {
    const defectOfMake = (options: WorkerContextOptions) =>
      Effect.gen(function*() {
        const defect = defectOf(yield* Effect.exit(Effect.scoped(WorkerContext.make(options))))
        assert.isTrue(Cause.isIllegalArgumentException(defect), "dies with IllegalArgumentException")
        return (defect as Cause.IllegalArgumentException).message
      })

    it.effect("an empty name makes make die with IllegalArgumentException naming the option", () =>
      Effect.gen(function*() {
        assert.include(yield* defectOfMake({ name: "" }), "name")
        assert.include(yield* defectOfMake({ name: "   " }), "name")
      }))

    it.effect("a negative shutdownTimeout makes make die with IllegalArgumentException naming the option", () =>
      Effect.gen(function*() {
        assert.include(yield* defectOfMake({ shutdownTimeout: -1 }), "shutdownTimeout")
        assert.include(yield* defectOfMake({ shutdownTimeout: "-5 seconds" }), "shutdownTimeout")
      }))

    it.effect("an eventBufferSize that is not a positive integer makes make die with IllegalArgumentException", () =>
      Effect.gen(function*() {
        assert.include(yield* defectOfMake({ eventBufferSize: 0 }), "eventBufferSize")
        assert.include(yield* defectOfMake({ eventBufferSize: 1.5 }), "eventBufferSize")
        assert.include(yield* defectOfMake({ eventBufferSize: -3 }), "eventBufferSize")
      }))

    it.effect("the layer dies the same way on invalid options", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.provide(WorkerContext, WorkerContext.layer({ eventBufferSize: 0 })))
        assert.isTrue(Cause.isIllegalArgumentException(defectOf(exit)))
      }))

    it.effect("WorkerContextLive provides a Pending context named worker", () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext
        assert.strictEqual(ctx.name, "worker")
        assert.strictEqual(yield* ctx.state, "Pending")
      }).pipe(Effect.provide(WorkerContextLive)))

    it.effect("a shutdown timeout of zero interrupts in-flight tasks at once", () =>
      Effect.gen(function*() {
        const { ctx, scope } = yield* buildInScope({ shutdownTimeout: 0 })
        yield* ctx.start
        const task = yield* ctx.track(Effect.never)
        yield* ctx.stop
        assert.isTrue(Exit.isInterrupted(yield* task.await))
        yield* Scope.close(scope, Exit.void)
      }))
  })
})
