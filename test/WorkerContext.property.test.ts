import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Deferred,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Option,
  Queue,
  Scope,
  TestClock
} from "effect"
import {
  TaskRejected,
  type Tracked,
  WorkerContext,
  type WorkerEvent,
  WorkerEvent as Event,
  type WorkerState,
  WorkerStateError
} from "../src/index.js"
import { idleStatus } from "./fibers.js"

// The properties run a random program against a real context and, step by step, against a pure model of SPEC.md's
// state table. Time only moves through `TestClock.adjust`, in multiples of 10 ms, and sleeping tasks sleep
// 10k + 5 ms: a task can never end at the very instant of the shutdown deadline, so the model has no ties to guess.

const NAME = "prop"

/** A run takes a few milliseconds, mostly in `TestClock.adjust`; a loaded CI machine gets room to spare. */
const PROPERTY_TIMEOUT = 120_000

type Kind =
  | { readonly _tag: "Succeed" }
  | { readonly _tag: "Fail" }
  | { readonly _tag: "Die" }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "SelfInterrupt" }
  | { readonly _tag: "Sleep"; readonly millis: number }

type Op =
  | { readonly _tag: "Start" }
  | { readonly _tag: "Pause" }
  | { readonly _tag: "Resume" }
  | { readonly _tag: "Stop"; readonly interruptCaller: boolean }
  | { readonly _tag: "Track"; readonly kind: Kind }
  | { readonly _tag: "TrackRacingStop"; readonly kind: Kind; readonly trackFirst: boolean }
  | { readonly _tag: "Interrupt"; readonly index: number }
  | { readonly _tag: "Adjust"; readonly millis: number }
  | { readonly _tag: "Emit" }

/** How a task ended, finer than `TaskOutcome`: the fiber's exit tells a failure from a defect. */
type Outcome = "success" | "fail" | "die" | "interrupted"

const kindArb: fc.Arbitrary<Kind> = fc.oneof(
  { arbitrary: fc.constant({ _tag: "Succeed" } as const), weight: 1 },
  { arbitrary: fc.constant({ _tag: "Fail" } as const), weight: 1 },
  { arbitrary: fc.constant({ _tag: "Die" } as const), weight: 1 },
  { arbitrary: fc.constant({ _tag: "SelfInterrupt" } as const), weight: 1 },
  { arbitrary: fc.constant({ _tag: "Hang" } as const), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 30 }).map((k) => ({ _tag: "Sleep", millis: k * 10 + 5 } as const)), weight: 3 }
)

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.constant({ _tag: "Start" } as const), weight: 2 },
  { arbitrary: fc.constant({ _tag: "Pause" } as const), weight: 2 },
  { arbitrary: fc.constant({ _tag: "Resume" } as const), weight: 3 },
  { arbitrary: fc.boolean().map((interruptCaller) => ({ _tag: "Stop", interruptCaller } as const)), weight: 1 },
  { arbitrary: kindArb.map((kind) => ({ _tag: "Track", kind } as const)), weight: 10 },
  {
    arbitrary: fc.record({ kind: kindArb, trackFirst: fc.boolean() }).map((r) =>
      ({ _tag: "TrackRacingStop", ...r }) as const
    ),
    weight: 1
  },
  { arbitrary: fc.nat({ max: 50 }).map((index) => ({ _tag: "Interrupt", index } as const)), weight: 2 },
  { arbitrary: fc.integer({ min: 1, max: 20 }).map((k) => ({ _tag: "Adjust", millis: k * 10 } as const)), weight: 3 },
  { arbitrary: fc.constant({ _tag: "Emit" } as const), weight: 1 }
)

/** Most programs start the worker first: a worker that is never started has little to show. */
const programArb: fc.Arbitrary<ReadonlyArray<Op>> = fc.oneof(
  {
    arbitrary: fc.array(opArb, { maxLength: 40, size: "medium" }).map((ops) => [{ _tag: "Start" } as const, ...ops]),
    weight: 4
  },
  { arbitrary: fc.array(opArb, { maxLength: 40, size: "medium" }), weight: 1 }
)

const taskEffect = (kind: Kind): Effect.Effect<unknown, unknown> => {
  switch (kind._tag) {
    case "Succeed":
      return Effect.succeed(kind._tag)
    case "Fail":
      return Effect.fail("task failed")
    case "Die":
      return Effect.dieMessage("task died")
    case "Hang":
      return Effect.never
    case "SelfInterrupt":
      return Effect.interrupt
    case "Sleep":
      return Effect.sleep(Duration.millis(kind.millis))
  }
}

/** A task of `kind` that signals `started` as its first step. */
const signallingTask = (kind: Kind, started: Deferred.Deferred<void>): Effect.Effect<unknown, unknown> =>
  Effect.zipRight(Deferred.succeed(started, void 0), taskEffect(kind))

/** The outcome of a kind that ends as soon as it runs, or undefined for one that waits. */
const instantOutcome = (kind: Kind): Outcome | undefined => {
  switch (kind._tag) {
    case "Succeed":
      return "success"
    case "Fail":
      return "fail"
    case "Die":
      return "die"
    case "SelfInterrupt":
      return "interrupted"
    case "Hang":
    case "Sleep":
      return undefined
  }
}

const outcomeOfExit = (exit: Exit.Exit<unknown, unknown>): Outcome =>
  Exit.isSuccess(exit)
    ? "success"
    : Cause.isInterruptedOnly(exit.cause)
    ? "interrupted"
    : Cause.isDie(exit.cause)
    ? "die"
    : "fail"

const eventOutcome = (outcome: Outcome): string => outcome === "fail" || outcome === "die" ? "failure" : outcome

/** Lifecycle and Custom events as the model writes them down: their order is fully determined by the program. */
const marker = (event: WorkerEvent): string | undefined => {
  switch (event._tag) {
    case "Started":
    case "Paused":
    case "Resumed":
    case "Stopping":
      return event._tag
    case "Stopped":
      return `Stopped(${event.interrupted})`
    case "Custom":
      return `Custom(${String(event.value)})`
    default:
      return undefined
  }
}

type AnyTracked = Tracked<unknown, unknown>

interface ModelTask {
  readonly tracked: AnyTracked
  readonly kind: Kind
  /** For a sleeping task, the instant its sleep ends. */
  readonly endsAt: number | undefined
  /** Undefined while the task is alive. */
  outcome: Outcome | undefined
}

/** SPEC.md's state table as a pure state machine, with the clock and the tasks it needs to predict shutdown. */
class Model {
  state: WorkerState = "Pending"
  now = 0
  deadline: number | undefined = undefined
  interrupted: number | undefined = undefined
  readonly tasks: Array<ModelTask> = []
  readonly markers: Array<string> = []

  constructor(readonly timeout: number) {}

  get live(): Array<ModelTask> {
    return this.tasks.filter((task) => task.outcome === undefined)
  }

  /** Each of these returns whether the operation must fail with WorkerStateError. */
  start(): boolean {
    if (this.state === "Pending") this.transition("Running", "Started")
    return this.state !== "Running"
  }

  pause(): boolean {
    if (this.state === "Running") this.transition("Paused", "Paused")
    return this.state !== "Paused"
  }

  resume(): boolean {
    if (this.state === "Paused") this.transition("Running", "Resumed")
    return this.state !== "Running"
  }

  stop(): void {
    if (this.state === "Stopping" || this.state === "Stopped") return
    this.transition("Stopping", "Stopping")
    this.deadline = this.now + this.timeout
    this.drainCheck()
  }

  admit(tracked: AnyTracked, kind: Kind): void {
    const endsAt = kind._tag === "Sleep" ? this.now + kind.millis : undefined
    this.tasks.push({ tracked, kind, endsAt, outcome: instantOutcome(kind) })
    this.drainCheck()
  }

  interrupt(task: ModelTask): void {
    if (task.outcome !== undefined) return
    task.outcome = "interrupted"
    this.drainCheck()
  }

  emit(value: number): void {
    if (this.state !== "Stopped") this.markers.push(`Custom(${value})`)
  }

  /** Moves the clock, ending sleeps and cutting off the drain at the deadline, in the order they fall due. */
  advance(millis: number): void {
    const end = this.now + millis
    for (;;) {
      const sleeps = this.live.flatMap((task) => task.endsAt !== undefined && task.endsAt <= end ? [task.endsAt] : [])
      const next = sleeps.length > 0 ? Math.min(...sleeps) : undefined
      const deadline = this.state === "Stopping" && this.deadline! <= end ? this.deadline! : undefined
      if (next === undefined && deadline === undefined) break
      if (next === deadline) throw new Error("model: a task ends at the shutdown deadline")
      if (deadline !== undefined && (next === undefined || deadline < next)) {
        this.now = deadline
        const cut = this.live
        for (const task of cut) task.outcome = "interrupted"
        this.finish(cut.length)
      } else {
        this.now = next!
        for (const task of this.live) if (task.endsAt === next) task.outcome = "success"
        this.drainCheck()
      }
    }
    this.now = end
  }

  private drainCheck(): void {
    if (this.state === "Stopping" && this.live.length === 0) this.finish(0)
  }

  private finish(interrupted: number): void {
    this.interrupted = interrupted
    this.transition("Stopped", `Stopped(${interrupted})`)
  }

  private transition(state: WorkerState, marker: string): void {
    this.state = state
    this.markers.push(marker)
  }
}

/**
 * Runs a program in a scope of its own and closes it without waiting: the context's finalizer waits for Stopped, so
 * a program that failed because shutdown hangs would otherwise hang too, instead of reporting its counterexample.
 * After a program that passed, the context is Stopped: the close must complete without the clock moving.
 */
const inOwnScope = <A, E>(program: Effect.Effect<A, E, Scope.Scope>): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const exit = yield* Effect.exit(Scope.extend(program, scope))
    const closing = yield* Effect.forkDaemon(Scope.close(scope, exit))
    if (Exit.isSuccess(exit)) {
      assert.deepStrictEqual(yield* Fiber.await(closing), Exit.void, "closing the scope of a Stopped context completes")
    }
    return yield* exit
  })

const show = (value: unknown): string => JSON.stringify(value)

const assertRejected = (
  exit: Exit.Exit<unknown, unknown> | null,
  states: ReadonlyArray<WorkerState>,
  label: string
): void => {
  assert.isNotNull(exit, `${label}: track is still waiting`)
  if (Exit.isSuccess(exit)) return assert.fail(`${label}: track was admitted, expected TaskRejected`)
  const error = Cause.failureOption(exit.cause)
  assert.isTrue(Option.isSome(error) && error.value instanceof TaskRejected, `${label}: ${Cause.pretty(exit.cause)}`)
  const rejected = (error as Option.Some<TaskRejected>).value
  assert.include(states, rejected.state, `${label}: TaskRejected.state`)
  assert.strictEqual(rejected.worker, NAME)
}

const admittedTracked = (exit: Exit.Exit<AnyTracked, TaskRejected> | null, label: string): AnyTracked => {
  assert.isNotNull(exit, `${label}: track is still waiting`)
  if (Exit.isFailure(exit)) return assert.fail(`${label}: expected admission, got ${Cause.pretty(exit.cause)}`)
  return exit.value
}

interface AdmittedTask {
  readonly id: number
  readonly outcome: Outcome
}

/**
 * What every subscriber's log must satisfy, whatever the program: one `Stopped`, last, with the expected count;
 * lifecycle and Custom events in the expected order; each admitted task started before `Stopping` and finished once
 * with its outcome, after it started; and `Idle` exactly when the count replayed from the log drops to zero while
 * Running or Paused.
 */
const checkEventLog = (
  log: ReadonlyArray<WorkerEvent>,
  admitted: ReadonlyArray<AdmittedTask>,
  expectedMarkers: ReadonlyArray<string> | undefined,
  interrupted: number
): void => {
  for (const event of log) assert.strictEqual(event.worker, NAME, `worker of ${show(event)}`)

  const stoppedAt = log.flatMap((event, i) => event._tag === "Stopped" ? [i] : [])
  assert.deepStrictEqual(stoppedAt, [log.length - 1], "exactly one Stopped, and it is the last event")
  assert.deepStrictEqual(
    log[log.length - 1],
    Event.Stopped({ worker: NAME, interrupted }),
    `Stopped counts the ${interrupted} tasks cut off at the deadline, got ${show(log[log.length - 1])}`
  )
  const stoppingAt = log.findIndex((event) => event._tag === "Stopping")
  assert.isAtLeast(stoppingAt, 0, "Stopping is published")
  assert.strictEqual(log.filter((event) => event._tag === "Stopping").length, 1, "exactly one Stopping")

  if (expectedMarkers !== undefined) {
    assert.deepStrictEqual(log.flatMap((event) => marker(event) ?? []), expectedMarkers, "lifecycle and Custom events")
  }

  const startedIds = log.flatMap((event) => event._tag === "TaskStarted" ? [event.taskId] : [])
  assert.deepStrictEqual(startedIds, [...startedIds].sort((a, b) => a - b), "TaskStarted ids increase")
  assert.sameMembers(startedIds, admitted.map((task) => task.id), "one TaskStarted per admitted task")
  for (const [i, event] of log.entries()) {
    if (event._tag === "TaskStarted") assert.isBelow(i, stoppingAt, `TaskStarted(${event.taskId}) after Stopping`)
  }
  for (const task of admitted) {
    const started = log.findIndex((event) => event._tag === "TaskStarted" && event.taskId === task.id)
    const finished = log.flatMap((event, i) =>
      event._tag === "TaskFinished" && event.taskId === task.id ? [{ i, outcome: event.outcome }] : []
    )
    assert.strictEqual(finished.length, 1, `task ${task.id} finishes exactly once`)
    assert.isAbove(finished[0]!.i, started, `task ${task.id} finishes after it starts`)
    assert.strictEqual(finished[0]!.outcome, eventOutcome(task.outcome), `outcome of task ${task.id}`)
  }

  let count = 0
  let state: WorkerState = "Pending"
  for (const [i, event] of log.entries()) {
    if (event._tag === "Idle") {
      const previous = log[i - 1]
      assert.isTrue(
        previous?._tag === "TaskFinished" && count === 0 && (state === "Running" || state === "Paused"),
        `Idle at ${i} does not follow the last task finishing while Running or Paused`
      )
    }
    if (event._tag === "TaskStarted") count++
    if (event._tag === "TaskFinished") {
      count--
      assert.isAtLeast(count, 0, "replayed task count")
      if (count === 0 && (state === "Running" || state === "Paused")) {
        assert.strictEqual(log[i + 1]?._tag, "Idle", `Idle after the last task finished at ${i}`)
      }
    }
    if (event._tag === "Started" || event._tag === "Resumed") state = "Running"
    if (event._tag === "Paused" || event._tag === "Stopping" || event._tag === "Stopped") state = event._tag
  }
  assert.strictEqual(count, 0, "no task is alive when Stopped is published")
}

/** A forked `track` call, and the signal its task gives when it starts (if it is admitted). */
interface TrackCall {
  readonly fiber: Fiber.RuntimeFiber<AnyTracked, TaskRejected>
  readonly kind: Kind
  readonly started: Deferred.Deferred<void>
}

const runProgram = Effect.fnUntraced(function*(timeoutMillis: number, ops: ReadonlyArray<Op>) {
  const ctx = yield* WorkerContext.make({ name: NAME, shutdownTimeout: Duration.millis(timeoutMillis) })
  const events = yield* ctx.subscribe
  const model = new Model(timeoutMillis)
  let waiters: Array<TrackCall> = []
  const awaiters: Array<Fiber.RuntimeFiber<void>> = [yield* Effect.fork(ctx.awaitShutdown)]
  const stoppers: Array<Fiber.RuntimeFiber<void>> = []
  /** The model's ended tasks whose end the program has seen. */
  const seenEnded = new Set<ModelTask>()

  const forkTrack = Effect.fnUntraced(function*(kind: Kind) {
    const started = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(ctx.track(signallingTask(kind, started)))
    return { fiber, kind, started } satisfies TrackCall
  })

  /**
   * Hands an admitted task to the model once the task has begun: a sleep is then counted from the current instant,
   * as the model counts it (no time passes within a step).
   */
  const admit = Effect.fnUntraced(function*(tracked: AnyTracked, call: TrackCall) {
    yield* Deferred.await(call.started)
    model.admit(tracked, call.kind)
  })

  const lifecycleOp = Effect.fnUntraced(function*(
    label: string,
    operation: "start" | "pause" | "resume",
    mustFail: boolean,
    before: WorkerState
  ) {
    const result = yield* Effect.either(ctx[operation])
    if (mustFail) {
      if (result._tag === "Right") return assert.fail(`${label}: ${operation} in ${before} must fail`)
      assert.deepStrictEqual(result.left, new WorkerStateError({ worker: NAME, operation, state: before }))
    } else {
      assert.isTrue(result._tag === "Right", `${label}: ${operation} in ${before} must succeed`)
    }
  })

  /** Callers waiting in a paused `track` are rejected once shutdown begins. */
  const rejectWaiters = Effect.fnUntraced(function*(label: string) {
    for (const waiter of waiters) assertRejected(yield* Fiber.await(waiter.fiber), ["Stopping", "Stopped"], label)
    waiters = []
  })

  /**
   * Waits until the system is quiescent after a step, by waiting for what the step caused. Every task the model has
   * ended has ended (it published its TaskFinished, and any Idle or Stopped, as it ended); once the model is Stopped,
   * every caller of stop and awaitShutdown has returned. The fibers the model has waiting are asked how they stand:
   * a fiber that was due to return has done so by the time it answers, which the invariants then check.
   */
  const quiesce = Effect.fnUntraced(function*() {
    for (const task of model.tasks) {
      if (task.outcome !== undefined && !seenEnded.has(task)) {
        yield* task.tracked.await
        seenEnded.add(task)
      }
    }
    if (model.state === "Stopped") {
      for (const fiber of [...stoppers, ...awaiters]) yield* Fiber.await(fiber)
    } else {
      const waiting: Array<Fiber.RuntimeFiber<unknown, unknown>> = [
        ...stoppers,
        ...awaiters,
        ...waiters.map((w) => w.fiber)
      ]
      for (const fiber of waiting) yield* idleStatus(fiber)
    }
  })

  const step = Effect.fnUntraced(function*(op: Op, index: number) {
    const label = `step ${index} ${show(op)}`
    const before = model.state
    switch (op._tag) {
      case "Start": {
        yield* lifecycleOp(label, "start", model.start(), before)
        break
      }
      case "Pause": {
        yield* lifecycleOp(label, "pause", model.pause(), before)
        break
      }
      case "Resume": {
        yield* lifecycleOp(label, "resume", model.resume(), before)
        if (before === "Paused") {
          // Resuming lets every waiting caller go on: each returns, admitted.
          for (const waiter of waiters) yield* admit(admittedTracked(yield* Fiber.await(waiter.fiber), label), waiter)
          waiters = []
        }
        break
      }
      case "Stop": {
        const entered = yield* Deferred.make<void>()
        const stopper = yield* Effect.fork(Effect.zipRight(Deferred.succeed(entered, void 0), ctx.stop))
        awaiters.push(yield* Effect.fork(ctx.awaitShutdown))
        // The caller has called stop, and shutdown has begun (by this call, unless it had already).
        yield* Deferred.await(entered)
        yield* ctx.shutdownRequested
        // Interrupting a caller of `stop` must not cancel the shutdown it began.
        if (op.interruptCaller) yield* Fiber.interrupt(stopper)
        else stoppers.push(stopper)
        model.stop()
        yield* rejectWaiters(label)
        break
      }
      case "Track": {
        const call = yield* forkTrack(op.kind)
        if (before === "Running") yield* admit(admittedTracked(yield* Fiber.await(call.fiber), label), call)
        else if (before === "Paused") {
          yield* idleStatus(call.fiber)
          assert.isNull(call.fiber.unsafePoll(), `${label}: track while Paused waits`)
          waiters.push(call)
        } else assertRejected(yield* Fiber.await(call.fiber), [before], label)
        break
      }
      case "TrackRacingStop": {
        // Both are forked before either runs; which wins is up to the scheduler, so either answer is accepted, but
        // an admitted task must then be drained like any other, and the event log checks it started before Stopping.
        let call: TrackCall
        if (op.trackFirst) {
          call = yield* forkTrack(op.kind)
          stoppers.push(yield* Effect.fork(ctx.stop))
        } else {
          stoppers.push(yield* Effect.fork(ctx.stop))
          call = yield* forkTrack(op.kind)
        }
        // Shutdown has begun, and the track returns: it never waits past the beginning of shutdown.
        yield* ctx.shutdownRequested
        const exit = yield* Fiber.await(call.fiber)
        if (Exit.isSuccess(exit)) {
          assert.strictEqual(before, "Running", `${label}: admitted although the worker was ${before}`)
          yield* admit(exit.value, call)
        } else {
          assertRejected(exit, [before, "Stopping", "Stopped"], label)
        }
        model.stop()
        yield* rejectWaiters(label)
        break
      }
      case "Interrupt": {
        // A live task if there is one, else one that has ended already (interrupting it must change nothing).
        const candidates = model.live.length > 0 ? model.live : model.tasks
        const task = candidates[op.index % Math.max(1, candidates.length)]
        if (task !== undefined) {
          // Returns once the task and its finalizers have ended.
          const interrupted = yield* Effect.exit(task.tracked.interrupt)
          assert.deepStrictEqual(interrupted, Exit.void, `${label}: interrupting a task returns`)
          model.interrupt(task)
        }
        break
      }
      case "Adjust": {
        yield* TestClock.adjust(Duration.millis(op.millis))
        model.advance(op.millis)
        break
      }
      case "Emit": {
        yield* ctx.emit(Event.Custom({ worker: NAME, value: index }))
        model.emit(index)
        break
      }
    }
    yield* quiesce()
  })

  const checkInvariants = Effect.fnUntraced(function*(label: string) {
    assert.strictEqual(yield* ctx.state, model.state, `${label}: state`)
    assert.strictEqual(
      yield* ctx.isShuttingDown,
      model.state === "Stopping" || model.state === "Stopped",
      `${label}: isShuttingDown`
    )
    const count = yield* ctx.taskCount
    assert.isAtLeast(count, 0, `${label}: taskCount`)
    const liveFibers = model.tasks.filter((task) => task.tracked.fiber.unsafePoll() === null).length
    assert.strictEqual(count, liveFibers, `${label}: taskCount equals the live tracked fibers`)
    assert.strictEqual(count, model.live.length, `${label}: taskCount equals the model's live tasks`)
    assert.strictEqual(yield* ctx.hasPendingTasks, count > 0, `${label}: hasPendingTasks`)
    for (const task of model.tasks) {
      const exit = task.tracked.fiber.unsafePoll()
      if (task.outcome === undefined) assert.isNull(exit, `${label}: task ${task.tracked.id} is alive`)
      else {
        assert.isNotNull(exit, `${label}: task ${task.tracked.id} has ended`)
        assert.strictEqual(outcomeOfExit(exit), task.outcome, `${label}: outcome of task ${task.tracked.id}`)
      }
    }
    for (const waiter of waiters) assert.isNull(waiter.fiber.unsafePoll(), `${label}: paused track waits`)
    const stopped = model.state === "Stopped"
    for (const awaiter of awaiters) {
      assert.strictEqual(awaiter.unsafePoll() !== null, stopped, `${label}: awaitShutdown completes iff Stopped`)
    }
    for (const stopper of stoppers) {
      assert.strictEqual(stopper.unsafePoll() !== null, stopped, `${label}: stop returns iff Stopped`)
    }
  })

  for (const [index, op] of ops.entries()) {
    yield* step(op, index)
    yield* checkInvariants(`step ${index} ${show(op)}`)
  }

  // Shut down whatever state the program left behind, and let the deadline pass.
  yield* step({ _tag: "Stop", interruptCaller: false }, ops.length)
  yield* checkInvariants("final stop")
  if (model.state === "Stopping") {
    const millis = model.deadline! - model.now + 10
    yield* step({ _tag: "Adjust", millis }, ops.length + 1)
  }
  yield* checkInvariants("after the deadline")

  assert.strictEqual(model.state, "Stopped")
  for (const awaiter of awaiters) assert.deepStrictEqual(awaiter.unsafePoll(), Exit.void)
  const ids = model.tasks.map((task) => task.tracked.id)
  assert.strictEqual(new Set(ids).size, ids.length, "task ids are unique")
  const log = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
  checkEventLog(
    log,
    model.tasks.map((task) => ({ id: task.tracked.id, outcome: task.outcome! })),
    model.markers,
    model.interrupted!
  )
})

describe("WorkerContext properties", () => {
  it.effect.prop(
    "keeps its state, task count, events and shutdown waiters consistent under any sequence of operations",
    {
      timeoutSteps: fc.integer({ min: 1, max: 30 }),
      ops: programArb
    },
    ({ ops, timeoutSteps }) => inOwnScope(runProgram(timeoutSteps * 10, ops)),
    { timeout: PROPERTY_TIMEOUT, fastCheck: { numRuns: 100 } }
  )

  it.effect.prop(
    "admits each of a burst of tracks racing concurrent stops before Stopping and drains it, or rejects it",
    {
      timeoutSteps: fc.integer({ min: 1, max: 30 }),
      calls: fc.array(
        fc.oneof(
          { arbitrary: kindArb.map((kind) => ({ _tag: "Track", kind } as const)), weight: 6 },
          { arbitrary: fc.constant({ _tag: "Stop" } as const), weight: 1 },
          { arbitrary: fc.constant({ _tag: "Wait" } as const), weight: 2 }
        ),
        { minLength: 1, maxLength: 30 }
      )
    },
    ({ calls, timeoutSteps }) =>
      inOwnScope(Effect.gen(function*() {
        const timeout = timeoutSteps * 10
        const ctx = yield* WorkerContext.make({ name: NAME, shutdownTimeout: Duration.millis(timeout) })
        const events = yield* ctx.subscribe
        yield* ctx.start
        const tracks: Array<TrackCall> = []
        const stoppers: Array<Fiber.RuntimeFiber<void>> = []
        // Nothing runs between these forks unless the program waits: the tracks and stops forked since the last
        // `Wait` race for real. A `Wait` returns once every track forked so far has returned (the worker is never
        // paused, so none waits) and, if a stop was forked, shutdown has begun.
        for (const call of calls) {
          if (call._tag === "Track") {
            const started = yield* Deferred.make<void>()
            const fiber = yield* Effect.fork(ctx.track(signallingTask(call.kind, started)))
            tracks.push({ fiber, kind: call.kind, started })
          } else if (call._tag === "Stop") {
            stoppers.push(yield* Effect.fork(ctx.stop))
          } else {
            for (const { fiber } of tracks) yield* Fiber.await(fiber)
            if (stoppers.length > 0) yield* ctx.shutdownRequested
          }
        }
        stoppers.push(yield* Effect.fork(ctx.stop))
        // At instant 0, shutdown has begun, every track has returned and every admitted task has begun (so a sleep
        // counts from 0).
        yield* ctx.shutdownRequested
        const exits = yield* Effect.forEach(tracks, ({ fiber }) => Fiber.await(fiber))
        for (const [i, exit] of exits.entries()) if (Exit.isSuccess(exit)) yield* Deferred.await(tracks[i]!.started)
        yield* TestClock.adjust(Duration.millis(timeout + 10))
        // Past the deadline, every stop returns and every admitted task has ended.
        for (const stopper of stoppers) yield* Fiber.await(stopper)
        for (const exit of exits) if (Exit.isSuccess(exit)) yield* exit.value.await

        assert.strictEqual(yield* ctx.state, "Stopped", "state after the deadline")
        assert.strictEqual(yield* ctx.taskCount, 0, "taskCount after the deadline")
        for (const stopper of stoppers) assert.deepStrictEqual(stopper.unsafePoll(), Exit.void, "every stop returns")
        const admitted: Array<AdmittedTask> = []
        for (const [i, { kind }] of tracks.entries()) {
          const exit = exits[i]!
          if (Exit.isFailure(exit)) {
            assertRejected(exit, ["Stopping", "Stopped"], `track ${i}`)
            continue
          }
          const tracked = exit.value
          // Admitted at instant 0, so a task still hanging or sleeping at the deadline is interrupted.
          const expected = instantOutcome(kind) ??
            (kind._tag === "Sleep" && kind.millis < timeout ? "success" : "interrupted")
          const taskExit = tracked.fiber.unsafePoll()
          assert.isNotNull(taskExit, `task ${tracked.id} has ended`)
          assert.strictEqual(outcomeOfExit(taskExit), expected, `outcome of task ${tracked.id} (${show(kind)})`)
          admitted.push({ id: tracked.id, outcome: expected })
        }
        const interrupted = tracks.filter(({ fiber, kind }) => {
          const exit = fiber.unsafePoll()
          return exit !== null && Exit.isSuccess(exit) &&
            (kind._tag === "Hang" || (kind._tag === "Sleep" && kind.millis > timeout))
        }).length
        const log = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
        checkEventLog(log, admitted, undefined, interrupted)
      })),
    { timeout: PROPERTY_TIMEOUT, fastCheck: { numRuns: 100 } }
  )
})
