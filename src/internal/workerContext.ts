import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type { Tracked, WorkerContext, WorkerContextOptions, WorkerState } from "../WorkerContext.js"
import { TaskRejected, WorkerStateError } from "../WorkerContextError.js"
import { type TaskOutcome, WorkerEvent } from "../WorkerEvent.js"
import * as WorkerMetrics from "../WorkerMetrics.js"
import { TaskSpan, taskSpanName } from "./taskSpan.js"

type Service = WorkerContext["Type"]
type AnyFiber = Fiber.RuntimeFiber<unknown, unknown>

/**
 * Marks the context of a task's fiber (and so of every fiber it forks) with the core that owns the task. `stop`
 * and `awaitShutdown` read it so a task never waits for itself; a task tracked into another context belongs to
 * that one. It rides in the task's copy of the caller's context (where the task's span goes too), so marking
 * costs no copy of the caller's fiber refs.
 */
const taskOwnerKey = "effect-worker-context/TaskOwner"
const parentSpanKey = Tracer.ParentSpan.key

/** Effect's default tracer, whose spans go nowhere unless read: tasks get a lazily built `TaskSpan` under it. */
const builtInTracer = Effect.runSync(Effect.tracer)

const isInsideTaskOf = (fiber: AnyFiber, core: WorkerCore): boolean =>
  fiber.currentContext.unsafeMap.get(taskOwnerKey) === core

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): TaskOutcome =>
  Exit.isSuccess(exit) ? "success" : Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failure"

/** Publishes synchronously. `unsafeOffer` refuses when the hub is full; `publish` then slides out the oldest. */
const offer = <A>(hub: PubSub.PubSub<A>, value: A): void => {
  if (!hub.unsafeOffer(value)) Effect.runSync(hub.publish(value))
}

interface StateChange {
  readonly seq: number
  readonly state: WorkerState
}

class TrackedImpl<A, E> implements Tracked<A, E> {
  constructor(
    readonly id: number,
    readonly fiber: Fiber.RuntimeFiber<A, E>,
    /** For the core: clock millis at admission, and the task's span (timed or not). */
    readonly startedAt: number,
    readonly span: Tracer.Span | undefined,
    readonly timing: boolean
  ) {}
  get await(): Effect.Effect<Exit.Exit<A, E>> {
    return Fiber.await(this.fiber)
  }
  get join(): Effect.Effect<A, E> {
    // Not `Fiber.join`: the task is not the caller's child, and must not hand its fiber refs (its context, with
    // its span and owner) to whoever waits for it.
    return Effect.flatMap(Fiber.await(this.fiber), (exit) => exit)
  }
  get interrupt(): Effect.Effect<void> {
    return Effect.asVoid(Fiber.interrupt(this.fiber))
  }
}

/**
 * The mutable heart of a context. Every method is synchronous, and JavaScript runs one of them at a time, so each
 * method is one atomic step: no other fiber can observe or change the state half-way through. That is what makes
 * admission and shutdown race-free without locks.
 */
class WorkerCore {
  state: WorkerState = "Pending"
  /** Live task fibers: the task count is `tasks.size`. */
  readonly tasks = new Set<AnyFiber>()
  /** Subscribers of `hub`; task events (`TaskStarted`, `TaskFinished`, `Idle`) are only built while there is one. */
  subscribers = 0
  private nextId = 1
  private transitions = 0
  private resumed: Deferred.Deferred<void> | undefined = undefined
  private cuttingOff = false
  private interrupted = 0
  private stoppingAt = 0
  readonly shutdownRequested = Deferred.unsafeMake<void>(FiberId.none)
  readonly stopped = Deferred.unsafeMake<void>(FiberId.none)

  constructor(
    readonly name: string,
    private readonly hub: PubSub.PubSub<WorkerEvent>,
    private readonly stateHub: PubSub.PubSub<StateChange>,
    private readonly metrics: WorkerMetrics.WorkerMetrics,
    private readonly clock: Clock.Clock
  ) {
    // Registered now, so an exporter shows every series (at 0) before the first task.
    const { shutdownDrain, state: _, taskDuration, ...counts } = metrics
    for (const metric of Object.values(counts)) metric.unsafeUpdate(0, [])
    taskDuration.unsafeValue([])
    shutdownDrain.unsafeValue([])
    for (const [state, gauge] of Object.entries(metrics.state)) gauge.unsafeUpdate(state === this.state ? 1 : 0, [])
  }

  get seq(): number {
    return this.transitions
  }

  publish(event: WorkerEvent): void {
    offer(this.hub, event)
  }

  private transition(state: WorkerState, event: WorkerEvent): void {
    this.metrics.state[this.state].unsafeUpdate(0, [])
    this.metrics.state[state].unsafeUpdate(1, [])
    this.state = state
    this.transitions++
    this.publish(event)
    offer(this.stateHub, { seq: this.transitions, state })
  }

  start(): WorkerStateError | undefined {
    if (this.state === "Pending") {
      this.transition("Running", WorkerEvent.Started({ worker: this.name }))
    } else if (this.state !== "Running") {
      return new WorkerStateError({ worker: this.name, operation: "start", state: this.state })
    }
  }

  pause(): WorkerStateError | undefined {
    if (this.state === "Running") {
      this.resumed = Deferred.unsafeMake(FiberId.none)
      this.transition("Paused", WorkerEvent.Paused({ worker: this.name }))
    } else if (this.state !== "Paused") {
      return new WorkerStateError({ worker: this.name, operation: "pause", state: this.state })
    }
  }

  resume(): WorkerStateError | undefined {
    if (this.state === "Paused") {
      this.transition("Running", WorkerEvent.Resumed({ worker: this.name }))
      this.releaseWaiters()
    } else if (this.state !== "Running") {
      return new WorkerStateError({ worker: this.name, operation: "resume", state: this.state })
    }
  }

  /** Begins shutdown unless it has begun already. Callers waiting in a paused `track` retry and are rejected. */
  beginShutdown(): void {
    if (this.state === "Stopping" || this.state === "Stopped") return
    this.stoppingAt = this.clock.unsafeCurrentTimeMillis()
    this.transition("Stopping", WorkerEvent.Stopping({ worker: this.name }))
    this.releaseWaiters()
    Deferred.unsafeDone(this.shutdownRequested, Exit.void)
    if (this.tasks.size === 0) this.finish()
  }

  /** The deadline passed: interrupt what is still running; the tasks report back through `onTaskExit`. */
  cutOff(by: FiberId.FiberId): void {
    this.cuttingOff = true
    for (const fiber of this.tasks) fiber.unsafeInterruptAsFork(by)
  }

  /** How many tasks the shutdown deadline cut off. */
  get cutOffCount(): number {
    return this.interrupted
  }

  /**
   * `Stopping → Stopped`, in the same step as the last task's exit (or the beginning of shutdown, when nothing
   * runs): `stop` callers wake up without waiting for another fiber to notice.
   */
  private finish(): void {
    this.metrics.shutdownDrain.unsafeUpdate((this.clock.unsafeCurrentTimeMillis() - this.stoppingAt) / 1000, [])
    this.transition("Stopped", WorkerEvent.Stopped({ worker: this.name, interrupted: this.interrupted }))
    Deferred.unsafeDone(this.stopped, Exit.void)
  }

  /** The latch a paused `track` waits on: released by `resume` and by the beginning of shutdown. */
  awaitResume(): Effect.Effect<void> {
    return this.resumed === undefined ? Effect.void : Deferred.await(this.resumed)
  }

  private releaseWaiters(): void {
    if (this.resumed !== undefined) {
      Deferred.unsafeDone(this.resumed, Exit.void)
      this.resumed = undefined
    }
  }

  reject(): TaskRejected {
    this.metrics.tasksRejected.unsafeUpdate(1, [])
    return new TaskRejected({ worker: this.name, state: this.state })
  }

  /** Admission: id, count, fork and `TaskStarted` in one step, so `beginShutdown` can never fall in between. */
  admit<A, E, R>(
    effect: Effect.Effect<A, E, R>,
    caller: Fiber.RuntimeFiber<unknown, unknown>,
    callerFlags: RuntimeFlags.RuntimeFlags
  ): Tracked<A, E> {
    const id = this.nextId++
    const startedAt = this.clock.unsafeCurrentTimeMillis()
    // The span is made by hand, not with `Effect.withSpan`: that would capture a stack trace and add effects to
    // every task. It is the task's parent span, and ends in `onTaskExit`.
    const timing = caller.getFiberRef(FiberRef.currentTracerTimingEnabled)
    const span = caller.getFiberRef(FiberRef.currentTracerEnabled) ? this.taskSpan(caller, id, timing) : undefined
    const services = new Map(caller.currentContext.unsafeMap)
    services.set(taskOwnerKey, this)
    if (span !== undefined) services.set(parentSpanKey, span)
    const runtime = Runtime.make({
      context: Context.unsafeMake(services) as Context.Context<R>,
      fiberRefs: caller.getFiberRefs(),
      // A task forked from an uninterruptible region would inherit it, and shutdown could never cut it off.
      runtimeFlags: RuntimeFlags.enable(callerFlags, RuntimeFlags.Interruption)
    })
    // Not `immediate`: the task starts on the scheduler, after `track` returned, like `Effect.fork`.
    const fiber = Runtime.runFork(runtime, effect, { immediate: false })
    this.tasks.add(fiber)
    this.metrics.tasksStarted.unsafeUpdate(1, [])
    this.metrics.tasksActive.unsafeUpdate(this.tasks.size, [])
    if (this.subscribers > 0) this.publish(WorkerEvent.TaskStarted({ worker: this.name, taskId: id }))
    const tracked = new TrackedImpl(id, fiber, startedAt, span, timing)
    fiber.addObserver((exit) => this.onTaskExit(tracked, exit))
    return tracked
  }

  private taskSpan(caller: AnyFiber, taskId: number, timing: boolean): Tracer.Span {
    const startTime = timing ? this.clock.unsafeCurrentTimeNanos() : BigInt(0)
    if (caller.currentTracer === builtInTracer) return new TaskSpan(caller.currentSpan, startTime, this.name, taskId)
    const span = caller.currentTracer.span(
      taskSpanName,
      Option.fromNullable(caller.currentSpan),
      Context.empty(),
      [],
      startTime,
      "internal"
    )
    span.attribute("worker", this.name)
    span.attribute("task.id", taskId)
    return span
  }

  private onTaskExit(task: TrackedImpl<unknown, unknown>, exit: Exit.Exit<unknown, unknown>): void {
    this.tasks.delete(task.fiber)
    const outcome = outcomeOf(exit)
    task.span?.end(task.timing ? this.clock.unsafeCurrentTimeNanos() : BigInt(0), exit)
    const metrics = this.metrics
    metrics.tasksActive.unsafeUpdate(this.tasks.size, [])
    metrics.taskDuration.unsafeUpdate((this.clock.unsafeCurrentTimeMillis() - task.startedAt) / 1000, [])
    if (outcome === "success") metrics.tasksSucceeded.unsafeUpdate(1, [])
    else if (outcome === "failure") metrics.tasksFailed.unsafeUpdate(1, [])
    else metrics.tasksInterrupted.unsafeUpdate(1, [])
    if (this.cuttingOff && outcome === "interrupted") this.interrupted++
    if (this.subscribers > 0) {
      this.publish(WorkerEvent.TaskFinished({ worker: this.name, taskId: task.id, outcome }))
    }
    if (this.tasks.size > 0) return
    if (this.state === "Stopping") {
      this.finish()
    } else if (this.subscribers > 0) {
      this.publish(WorkerEvent.Idle({ worker: this.name }))
    }
  }
}

const invalid = (option: string, value: unknown, expected: string) =>
  Effect.die(
    new Cause.IllegalArgumentException(
      `WorkerContext: invalid ${option} ${JSON.stringify(String(value))}: expected ${expected}`
    )
  )

const isNegative = (input: unknown): boolean =>
  (typeof input === "number" && (Number.isNaN(input) || input < 0)) ||
  (typeof input === "bigint" && input < BigInt(0)) ||
  (typeof input === "string" && input.trimStart().startsWith("-")) ||
  (Array.isArray(input) && input.some(isNegative))

interface ResolvedOptions {
  readonly name: string
  readonly shutdownTimeout: Duration.Duration
  readonly shutdownSignal: Effect.Effect<unknown, unknown> | undefined
  readonly eventBufferSize: number
}

const resolveOptions = (options: WorkerContextOptions | undefined): Effect.Effect<ResolvedOptions> => {
  const name = options?.name ?? "worker"
  if (typeof name !== "string" || name.trim().length === 0) return invalid("name", name, "a non-empty string")
  const timeoutInput = options?.shutdownTimeout ?? "30 seconds"
  const shutdownTimeout = Duration.decodeUnknown(timeoutInput)
  if (Option.isNone(shutdownTimeout) || isNegative(timeoutInput)) {
    return invalid("shutdownTimeout", timeoutInput, "a duration of zero or more, such as \"30 seconds\"")
  }
  const eventBufferSize = options?.eventBufferSize ?? 1024
  if (!Number.isSafeInteger(eventBufferSize) || eventBufferSize < 1) {
    return invalid("eventBufferSize", eventBufferSize, "a positive integer")
  }
  return Effect.succeed({
    name,
    shutdownTimeout: shutdownTimeout.value,
    shutdownSignal: options?.shutdownSignal,
    eventBufferSize
  })
}

const isStopped = (event: WorkerEvent): boolean => event._tag === "Stopped"

/** @internal */
export const make = (options?: WorkerContextOptions): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { eventBufferSize, name, shutdownSignal, shutdownTimeout } = yield* resolveOptions(options)
    const scope = yield* Effect.scope
    // The hubs are never shut down: that would discard what slow subscribers have not read yet, `Stopped` among
    // them. Nothing is published after `Stopped`; each subscription ends with the scope it was made in.
    const hub = yield* PubSub.sliding<WorkerEvent>(eventBufferSize)
    const stateHub = yield* PubSub.sliding<StateChange>(eventBufferSize)
    // Listener subscriptions live here rather than in `scope`: closed after the shutdown finalizer below.
    const listenerScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    yield* Effect.addFinalizer((exit) => Scope.close(listenerScope, exit))
    const core = new WorkerCore(name, hub, stateHub, WorkerMetrics.forWorker(name), yield* Effect.clock)
    /** The context's own logs carry its name; what tasks and listeners log is theirs. */
    const annotated = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.annotateLogs(effect, "worker", name)
    // Listeners run with the services and fiber refs of `make`, not of whoever calls `listen`: they belong to the
    // context, and one attached from inside a task must not count as part of that task.
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const listeners = new Set<Fiber.RuntimeFiber<void>>()

    // Shutdown runs here, on the context's own fiber, so no caller of `stop` can cancel it by being interrupted.
    yield* Effect.gen(function*() {
      yield* Deferred.await(core.shutdownRequested)
      yield* Effect.logInfo(
        `shutting down: ${core.tasks.size} task(s) in flight, ${Duration.format(shutdownTimeout)} to finish`
      )
      const drained = yield* Effect.timeoutOption(Deferred.await(core.stopped), shutdownTimeout)
      if (Option.isNone(drained)) {
        yield* Effect.logWarning(`shutdown deadline passed: interrupting ${core.tasks.size} task(s)`)
        core.cutOff(yield* Effect.fiberId)
        yield* Deferred.await(core.stopped)
      }
      yield* Effect.logInfo(`stopped: ${core.cutOffCount} task(s) interrupted`)
    }).pipe(annotated, Effect.interruptible, Effect.forkDaemon)

    if (shutdownSignal !== undefined) {
      yield* Effect.exit(shutdownSignal).pipe(
        Effect.tap((exit) =>
          annotated(
            Exit.isFailure(exit)
              ? Effect.logWarning("shutdown signal failed; shutting down anyway", exit.cause)
              : Effect.logDebug("shutdown signal completed; shutting down")
          )
        ),
        Effect.race(Deferred.await(core.shutdownRequested)),
        Effect.zipRight(Effect.sync(() => core.beginShutdown())),
        Effect.interruptible,
        Effect.forkDaemon
      )
    }

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        core.beginShutdown()
        yield* Deferred.await(core.stopped)
        const pending = Array.from(listeners)
        if (pending.length === 0) return
        const handled = yield* Effect.interruptible(Fiber.awaitAll(pending)).pipe(Effect.timeoutOption(shutdownTimeout))
        if (Option.isNone(handled)) {
          yield* Effect.logWarning(`listeners did not handle Stopped within ${Duration.format(shutdownTimeout)}`)
          yield* Fiber.interruptAll(pending)
        }
      }).pipe(annotated)
    )

    const subscribe: Effect.Effect<Queue.Dequeue<WorkerEvent>, never, Scope.Scope> = Effect.acquireRelease(
      Effect.sync(() => {
        core.subscribers++
      }),
      () =>
        Effect.sync(() => {
          core.subscribers--
        })
    ).pipe(Effect.zipRight(PubSub.subscribe(hub)))

    // Nothing is published after `Stopped`. So a fresh subscription that finds the worker stopped and its queue
    // empty came after `Stopped`, and has nothing to wait for.
    const untilStopped = (queue: Queue.Dequeue<WorkerEvent>): Stream.Stream<WorkerEvent> =>
      core.state === "Stopped" && Option.getOrElse(queue.unsafeSize(), () => 0) === 0
        ? Stream.empty
        : Stream.takeUntil(Stream.fromQueue(queue), isStopped)

    const events: Stream.Stream<WorkerEvent> = Stream.unwrapScoped(Effect.map(subscribe, untilStopped))

    const stateChanges: Stream.Stream<WorkerState> = Stream.unwrapScoped(
      Effect.map(PubSub.subscribe(stateHub), (queue) => {
        // Changes already counted in `state` are skipped by their sequence number.
        const state = core.state
        const seq = core.seq
        if (state === "Stopped") return Stream.make(state)
        return Stream.fromQueue(queue).pipe(
          Stream.filter((change) => change.seq > seq),
          Stream.map((change) => change.state),
          Stream.takeUntil((s) => s === "Stopped"),
          Stream.prepend(Chunk.of<WorkerState>(state))
        )
      })
    )

    const listen = (handler: (event: WorkerEvent) => Effect.Effect<unknown, unknown>): Effect.Effect<void> =>
      subscribe.pipe(
        Scope.extend(listenerScope),
        Effect.flatMap((queue) =>
          Effect.sync(() =>
            runFork(
              Effect.interruptible(Stream.runForEach(untilStopped(queue), (event) =>
                Effect.suspend(() => handler(event)).pipe(
                  Effect.catchAllCause((cause) =>
                    annotated(Effect.logWarning(`listener failed on ${event._tag}`, cause))
                  )
                )))
            )
          )
        ),
        Effect.map((fiber) => {
          listeners.add(fiber)
          fiber.addObserver(() => listeners.delete(fiber))
        })
      )

    const fromCore = (f: () => WorkerStateError | undefined): Effect.Effect<void, WorkerStateError> =>
      Effect.suspend(() => {
        const before = core.state
        const error = f()
        if (error !== undefined) return Effect.fail(error)
        return before === core.state
          ? Effect.void
          : annotated(Effect.logInfo(`${before} -> ${core.state}`))
      })

    const track = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Tracked<A, E>, TaskRejected, R> =>
      Effect.withFiberRuntime((caller, status) => {
        switch (core.state) {
          case "Running":
            return Effect.succeed(core.admit(effect, caller, status.runtimeFlags))
          case "Paused":
            return Effect.zipRight(core.awaitResume(), track(effect))
          default:
            return Effect.fail(core.reject())
        }
      })

    const service: Service = {
      name,
      state: Effect.sync(() => core.state),
      stateChanges,
      start: fromCore(() => core.start()),
      pause: fromCore(() => core.pause()),
      resume: fromCore(() => core.resume()),
      stop: Effect.withFiberRuntime((caller) => {
        core.beginShutdown()
        return isInsideTaskOf(caller, core) ? Effect.void : Deferred.await(core.stopped)
      }),
      track,
      taskCount: Effect.sync(() => core.tasks.size),
      hasPendingTasks: Effect.sync(() => core.tasks.size > 0),
      isShuttingDown: Effect.sync(() => core.state === "Stopping" || core.state === "Stopped"),
      awaitShutdown: Effect.withFiberRuntime((caller) =>
        isInsideTaskOf(caller, core)
          ? Effect.dieMessage(
            `WorkerContext.awaitShutdown was called from inside a task of worker "${name}": ` +
              "it would wait for itself for ever. Use stop to request shutdown from a task."
          )
          : Deferred.await(core.stopped)
      ),
      shutdownRequested: Deferred.await(core.shutdownRequested),
      emit: (event) =>
        Effect.suspend(() => {
          if (event._tag !== "Custom") {
            return Effect.die(
              new Cause.IllegalArgumentException(
                `WorkerContext.emit accepts Custom events only; ${event._tag} is published by worker "${name}" itself`
              )
            )
          }
          if (core.subscribers > 0 && core.state !== "Stopped") {
            core.publish(event.worker === name ? event : WorkerEvent.Custom({ worker: name, value: event.value }))
          }
          return Effect.void
        }),
      subscribe,
      events,
      listen
    }
    return service
  })
