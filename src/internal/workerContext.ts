import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import type * as FiberRefs from "effect/FiberRefs"
import * as FiberSet from "effect/FiberSet"
import * as GlobalValue from "effect/GlobalValue"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type {
  Readiness,
  ResolvedWorkerContextOptions,
  Tracked,
  TrackOptions,
  UnreadyCheck,
  WorkerContext,
  WorkerContextOptions
} from "../WorkerContext.js"
import { TaskRejected, WorkerStateError } from "../WorkerContextError.js"
import { type CustomEvent, type TaskOutcome, WorkerEvent } from "../WorkerEvent.js"
import * as WorkerMetrics from "../WorkerMetrics.js"
import type { WorkerState } from "../WorkerState.js"
import { EventBuffer } from "./eventBuffer.js"
import { TaskSpan, taskSpanName } from "./taskSpan.js"

type Service = WorkerContext.Service
type AnyFiber = Fiber.RuntimeFiber<unknown, unknown>

/** @internal The key of the `WorkerContext` tag; a task finds its own context under it. */
export const tagKey = "effect-worker-context/WorkerContext"

/**
 * Marks the context of a task's fiber (and so of every fiber it forks) with the core that owns the task. `stop`
 * and `awaitShutdown` read it so a task never waits for itself; a task tracked into another context belongs to
 * that one. It rides in the task's copy of the caller's context (where the task's span goes too), so marking
 * costs no copy of the caller's fiber refs.
 */
class TaskOwner extends Context.Tag("effect-worker-context/TaskOwner")<TaskOwner, WorkerCore>() {}

const parentSpanKey = Tracer.ParentSpan.key

/**
 * How many tasks one fiber may admit in one run before `track` yields it (see `WorkerCore.burstFrom`): below the
 * about 820 that `FiberSet.run` admits per scheduler turn, so a tight loop holds fewer unstarted tasks than with it.
 */
const burstSize = 384
/** At how many admissions in one run the core starts watching for the end of the run. */
const burstWatch = 64

/** Not `immediate`: a task starts on the scheduler, after `track` returned, like `Effect.fork`. */
const onTheScheduler: Runtime.RunForkOptions = { immediate: false }

/** The core of every context `make` built, for the job worker, which admits and publishes in synchronous steps. */
const cores = new WeakMap<Service, WorkerCore>()

/** The core behind `service`, when `make` built it. */
export const coreOf = (service: Service): WorkerCore | undefined => cores.get(service)

/** Effect's built-in tracer, whose spans go nowhere unless read: tasks get a lazily built `TaskSpan` under it. */
const builtInTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

const isInsideTaskOf = (fiber: AnyFiber, core: WorkerCore): boolean =>
  Option.getOrUndefined(Context.getOption(fiber.currentContext, TaskOwner)) === core

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): TaskOutcome =>
  Exit.isSuccess(exit) ? "success" : Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failure"

const isStopped = (event: WorkerEvent): boolean => event._tag === "Stopped"

/**
 * @internal
 * Publishes to a sliding `PubSub` synchronously. `unsafeOffer` refuses when the hub is full; sliding out the oldest
 * event then takes the hub's own `slide`, a private field of effect 3.22's implementation, so that no fiber runs
 * per event. Where that field is missing (another effect version), the public `publish` runs on a fiber of its own.
 */
export const hubPublisher = <A>(
  hub: PubSub.PubSub<A>,
  runFork: (effect: Effect.Effect<boolean>) => unknown
): { readonly publish: (value: A) => void; readonly slidesPrivately: boolean } => {
  const inner = (hub as unknown as { readonly pubsub?: { readonly slide?: unknown } }).pubsub
  const slide = typeof inner?.slide === "function" ? () => (inner.slide as () => void).call(inner) : undefined
  return {
    slidesPrivately: slide !== undefined,
    publish: (value) => {
      if (hub.unsafeOffer(value)) return
      if (slide !== undefined) {
        slide()
        if (hub.unsafeOffer(value)) return
      }
      runFork(hub.publish(value))
    }
  }
}

/** What a task takes from its caller, derived from the caller's fiber refs alone. */
export interface CallerSnapshot {
  readonly fiberRefs: FiberRefs.FiberRefs
  /** The caller's services, plus the task's owner marker and its own `WorkerContext`; the span is added per task. */
  readonly services: ReadonlyMap<string, unknown>
  readonly tracing: boolean
  readonly timing: boolean
}

/**
 * @internal
 * What a task starts with: its caller's fiber refs and services. `getFiberRefs()` copies the fiber refs on every
 * call, and everything else here derives from them, so while the caller's refs are the very object the last call
 * returned (its private `_fiberRefs`, in effect 3.22) the last snapshot is reused. Where that field is missing,
 * every call makes a new snapshot.
 */
export class CallerCache {
  private seen: unknown = undefined
  private last: CallerSnapshot | undefined = undefined
  /** How many calls reused the last snapshot: the private path ran. */
  reused = 0

  constructor(private readonly ownServices: ReadonlyArray<readonly [string, unknown]>) {}

  of(caller: AnyFiber): CallerSnapshot {
    const current = (caller as unknown as { readonly _fiberRefs?: unknown })._fiberRefs
    if (current !== undefined && current === this.seen) {
      this.reused++
      return this.last!
    }
    const fiberRefs = caller.getFiberRefs()
    const services = new Map(caller.currentContext.unsafeMap)
    for (const [key, service] of this.ownServices) services.set(key, service)
    this.seen = (caller as unknown as { readonly _fiberRefs?: unknown })._fiberRefs
    this.last = {
      fiberRefs,
      services,
      tracing: caller.getFiberRef(FiberRef.currentTracerEnabled),
      timing: caller.getFiberRef(FiberRef.currentTracerTimingEnabled)
    }
    return this.last
  }
}

/**
 * The series handed out so far in this process, by worker name and label: what `WorkerMetrics.maxSeries` bounds.
 * One set per process, shared by every copy of this module; looked up when needed, so importing has no effect.
 */
const seriesSeen = () =>
  GlobalValue.globalValue(Symbol.for("effect-worker-context/seriesSeen"), () => new Set<string>())

const claimSeries = (worker: string, label: string | undefined): boolean => {
  const key = label === undefined ? worker : `${worker}\u0000${label}`
  const seen = seriesSeen()
  if (seen.has(key)) return true
  if (seen.size >= WorkerMetrics.maxSeries) return false
  seen.add(key)
  return true
}

/** Registers every task series at 0, so an exporter shows them before the first task. */
const registerTaskMetrics = (metrics: WorkerMetrics.TaskMetrics): WorkerMetrics.TaskMetrics => {
  for (
    const counter of [
      metrics.tasksStarted,
      metrics.tasksSucceeded,
      metrics.tasksFailed,
      metrics.tasksInterrupted,
      metrics.tasksRejected
    ]
  ) counter.unsafeUpdate(0, [])
  metrics.tasksActive.unsafeModify(0, [])
  metrics.taskDuration.unsafeValue([])
  return metrics
}

class TrackedImpl<A, E> implements Tracked<A, E> {
  constructor(
    readonly id: number,
    readonly label: string | undefined,
    readonly fiber: Fiber.RuntimeFiber<A, E>,
    /** For the core: clock millis at admission, the task's metrics and span. */
    readonly startedAt: number,
    readonly metrics: WorkerMetrics.TaskMetrics,
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
export class WorkerCore {
  state: WorkerState = "Pending"
  /**
   * Tasks admitted and not ended: always the size of `tasks`, which drops a fiber in the same exit notification,
   * just before the core's own observer runs. Kept as a number because the core decides on it synchronously.
   */
  inFlight = 0
  /** Whether anyone receives events; task events are only built then. */
  listening = false
  private nextId = 1
  private interrupted = 0
  private stoppingAt = 0
  private hubSubscribers = 0
  private readonly buffers: Array<EventBuffer<WorkerEvent>> = []
  private readonly listeners: Array<(event: WorkerEvent) => void> = []
  private readonly stateBuffers: Array<EventBuffer<WorkerState>> = []
  private readonly labelled = new Map<string, WorkerMetrics.TaskMetrics>()
  private readonly unlabelled: WorkerMetrics.TaskMetrics
  /** Set by `bind` once `make` has built the service, before any task can be tracked. */
  private callers: CallerCache | undefined = undefined
  private readonly shutdownHooks: Array<() => void> = []
  /** The readiness checks that are not ready, by name, in the order they became so. */
  private readonly unready = new Map<string, UnreadyCheck>()
  /**
   * What the deadline does to the tasks admitted with a cut of their own (`admit`'s `onCutOff`) instead of
   * interrupting them: the job worker's, which cuts its handler only where a success cannot be lost. Such a task
   * starts uninterruptible.
   */
  private readonly cutHooks = new Map<AnyFiber, () => void>()
  private burstCaller = -1
  private burst = 0
  /** Closed while `Paused`: the gate a waiting `track` waits at. Opened by `resume` and by the beginning of shutdown. */
  readonly resumed = Effect.unsafeMakeLatch(true)
  readonly shutdownRequested = Deferred.unsafeMake<void>(FiberId.none)
  readonly stopped = Deferred.unsafeMake<void>(FiberId.none)
  /**
   * The first label that got no series of its own (past `WorkerMetrics.maxSeries`), until `track` has logged it;
   * then `null`, so the warning is logged once.
   */
  unseriesedLabel: string | null | undefined = undefined
  /** Whether this context's metrics went to the overflow series (the process has too many worker names). */
  readonly overflowed: boolean

  constructor(
    readonly name: string,
    private readonly eventBufferSize: number,
    readonly tasks: FiberSet.FiberSet<unknown, unknown>,
    private readonly publishToHub: (event: WorkerEvent) => void,
    private readonly metrics: WorkerMetrics.WorkerMetrics,
    private readonly clock: Clock.Clock,
    overflowed: boolean
  ) {
    this.overflowed = overflowed
    this.unlabelled = registerTaskMetrics(metrics)
    metrics.shutdownDrain.unsafeValue([])
    // State gauges count this worker name's contexts in each state: modified, not set, so that contexts that share
    // a name (or the overflow series) add up instead of overwriting each other.
    for (const gauge of Object.values(metrics.state)) gauge.unsafeModify(0, [])
    metrics.state[this.state].unsafeModify(1, [])
  }

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  /** Gives the core its service: inside a task, `yield* WorkerContext` returns it. */
  bind(service: Service): void {
    this.callers = new CallerCache([[TaskOwner.key, this], [tagKey, service]])
  }

  publish(event: WorkerEvent): void {
    for (let i = 0; i < this.buffers.length; i++) this.buffers[i]!.push(event)
    for (let i = 0; i < this.listeners.length; i++) {
      try {
        this.listeners[i]!(event)
      } catch {
        // A listener is internal code that must not throw; if it does, the event still reaches everyone else.
      }
    }
    if (this.hubSubscribers > 0) this.publishToHub(event)
  }

  /**
   * Calls `listener` with every event from now on, synchronously, in the publisher's step: for internal consumers
   * whose handling is synchronous and cheap (the `/events` hub), so that no fiber wakes per event. Returns the
   * function that removes it, or `undefined` once `Stopped` was published (nothing follows).
   */
  addListener(listener: (event: WorkerEvent) => void): (() => void) | undefined {
    if (this.state === "Stopped") return undefined
    this.listeners.push(listener)
    this.listening = true
    return () => {
      const at = this.listeners.indexOf(listener)
      if (at >= 0) this.listeners.splice(at, 1)
      this.updateListening()
    }
  }

  /** A buffer that receives every event from now on, or `undefined` once `Stopped` was published (nothing follows). */
  addBuffer(): EventBuffer<WorkerEvent> | undefined {
    if (this.state === "Stopped") return undefined
    const buffer = new EventBuffer<WorkerEvent>(this.eventBufferSize)
    this.buffers.push(buffer)
    this.listening = true
    return buffer
  }

  removeBuffer(buffer: EventBuffer<WorkerEvent>): void {
    const at = this.buffers.indexOf(buffer)
    if (at >= 0) this.buffers.splice(at, 1)
    this.updateListening()
  }

  /** A buffer that holds the current state and then receives every change: `stateChanges`, in one step. */
  addStateBuffer(): EventBuffer<WorkerState> {
    const buffer = new EventBuffer<WorkerState>(this.eventBufferSize)
    buffer.push(this.state)
    if (this.state !== "Stopped") this.stateBuffers.push(buffer)
    return buffer
  }

  removeStateBuffer(buffer: EventBuffer<WorkerState>): void {
    const at = this.stateBuffers.indexOf(buffer)
    if (at >= 0) this.stateBuffers.splice(at, 1)
  }

  hubSubscribed(delta: number): void {
    this.hubSubscribers += delta
    this.updateListening()
  }

  private updateListening(): void {
    this.listening = this.buffers.length > 0 || this.listeners.length > 0 || this.hubSubscribers > 0
  }

  private transition(state: WorkerState, event: WorkerEvent): void {
    this.metrics.state[this.state].unsafeModify(-1, [])
    this.metrics.state[state].unsafeModify(1, [])
    this.state = state
    this.publish(event)
    for (let i = 0; i < this.stateBuffers.length; i++) this.stateBuffers[i]!.push(state)
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
      this.resumed.unsafeClose()
      this.transition("Paused", WorkerEvent.Paused({ worker: this.name }))
    } else if (this.state !== "Paused") {
      return new WorkerStateError({ worker: this.name, operation: "pause", state: this.state })
    }
  }

  resume(): WorkerStateError | undefined {
    if (this.state === "Paused") {
      this.transition("Running", WorkerEvent.Resumed({ worker: this.name }))
      this.resumed.unsafeOpen()
    } else if (this.state !== "Running") {
      return new WorkerStateError({ worker: this.name, operation: "resume", state: this.state })
    }
  }

  /** Marks `check` unready; returns whether it was ready until now (only then is the flip published). */
  setUnready(check: string, reason: string): boolean {
    const current = this.unready.get(check)
    if (current !== undefined) {
      if (current.reason !== reason) this.unready.set(check, { check, reason, since: current.since })
      return false
    }
    this.unready.set(check, { check, reason, since: new Date(this.clock.unsafeCurrentTimeMillis()) })
    this.publishCustom({ _tag: "ReadinessChanged", check, ready: false, reason })
    return true
  }

  /** Marks `check` ready; returns what it was while unready, or `undefined` if it was ready (nothing flipped). */
  setReady(check: string): UnreadyCheck | undefined {
    const current = this.unready.get(check)
    if (current === undefined) return undefined
    this.unready.delete(check)
    this.publishCustom({ _tag: "ReadinessChanged", check, ready: true })
    return current
  }

  readiness(): Readiness {
    return {
      ready: this.state === "Running" && this.unready.size === 0,
      state: this.state,
      unready: Array.from(this.unready.values())
    }
  }

  /** `emit` of a `Custom` event with `value`, as one synchronous step: nothing is built unless someone listens. */
  publishCustom(value: unknown): void {
    if (this.listening && this.state !== "Stopped") this.publish(WorkerEvent.Custom({ worker: this.name, value }))
  }

  /** Runs `f` in the step that begins shutdown (at once, if it has begun). */
  onShutdown(f: () => void): void {
    if (this.state === "Stopping" || this.state === "Stopped") f()
    else this.shutdownHooks.push(f)
  }

  /** Begins shutdown unless it has begun already. Callers waiting in a paused `track` retry and are rejected. */
  beginShutdown(): void {
    if (this.state === "Stopping" || this.state === "Stopped") return
    this.stoppingAt = this.clock.unsafeCurrentTimeMillis()
    this.transition("Stopping", WorkerEvent.Stopping({ worker: this.name }))
    this.resumed.unsafeOpen()
    Deferred.unsafeDone(this.shutdownRequested, Exit.void)
    for (const hook of this.shutdownHooks.splice(0)) hook()
    if (this.inFlight === 0) this.finish()
  }

  /**
   * The deadline passed: every task still in flight is cut off and counted so, however it then ends (even if a
   * finalizer fails or dies). No task can be admitted any more, so the count is final.
   */
  cutOff(by: FiberId.FiberId): void {
    this.interrupted = this.inFlight
    for (const fiber of this.tasks) {
      const cut = this.cutHooks.get(fiber)
      if (cut === undefined) fiber.unsafeInterruptAsFork(by)
      else cut()
    }
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

  private metricsFor(label: string | undefined): WorkerMetrics.TaskMetrics {
    if (label === undefined) return this.unlabelled
    let metrics = this.labelled.get(label)
    if (metrics === undefined) {
      if (!this.overflowed && claimSeries(this.name, label)) {
        metrics = registerTaskMetrics(WorkerMetrics.taskMetrics(this.name, label))
      } else {
        metrics = this.unlabelled
        this.unseriesedLabel ??= label
      }
      this.labelled.set(label, metrics)
    }
    return metrics
  }

  /**
   * Whether `caller` has just made `burstSize` admissions in one run (no other fiber tracked in between, and the
   * caller did not yield), and should yield so that the tasks it admitted can start. A tight loop of `track` calls
   * costs the caller about one operation each, so without this it would admit about 2,000 tasks per scheduler turn
   * (Effect yields a fiber after 2,048 operations), all alive at once before the first one ran. A long run is
   * noticed at `burstWatch` admissions: a task is then put on the scheduler that ends the run when it runs, which
   * is as soon as the caller yields by itself.
   */
  burstFrom(caller: AnyFiber): boolean {
    const id = caller.id().id
    if (id !== this.burstCaller) {
      this.burstCaller = id
      this.burst = 1
      return false
    }
    const burst = ++this.burst
    if (burst === burstWatch) caller.currentScheduler.scheduleTask(this.endBurst, 0)
    if (burst < burstSize) return false
    this.burst = 0
    return true
  }

  private readonly endBurst = () => {
    this.burst = 0
  }

  /** The warning to log once the first label got no series of its own (`unseriesedLabel`), once. */
  labelWarning(): Effect.Effect<void> | undefined {
    const label = this.unseriesedLabel
    if (typeof label !== "string") return undefined
    this.unseriesedLabel = null
    return Effect.annotateLogs(
      Effect.logWarning(
        `more than ${WorkerMetrics.maxSeries} metric series in this process: ` +
          `tasks labelled ${JSON.stringify(label)} are counted in the worker's unlabelled series`
      ),
      "worker",
      this.name
    )
  }

  reject(label: string | undefined): TaskRejected {
    this.metricsFor(label).tasksRejected.unsafeUpdate(1, [])
    return new TaskRejected({ worker: this.name, state: this.state })
  }

  /**
   * Admission: id, count, fork and `TaskStarted` in one synchronous step, so `beginShutdown` can never fall in
   * between: the state the caller read is the state the task is admitted in.
   */
  admit<A, E, R>(
    effect: Effect.Effect<A, E, R>,
    caller: AnyFiber,
    callerFlags: RuntimeFlags.RuntimeFlags,
    label: string | undefined,
    extra?: Context.Context<never> | undefined,
    onCutOff?: (() => void) | undefined
  ): Tracked<A, E> {
    const id = this.nextId++
    const startedAt = this.clock.unsafeCurrentTimeMillis()
    const metrics = this.metricsFor(label)
    // The span is made by hand, not with `Effect.withSpan`: that would capture a stack trace and add effects to
    // every task. It is the task's parent span, and ends in `onTaskExit`.
    const from = this.callers!.of(caller)
    const timing = from.timing
    const span = from.tracing ? this.taskSpan(caller, id, label, timing ? startedAt : 0) : undefined
    const services = new Map(from.services)
    if (extra !== undefined) { for (const [key, service] of extra.unsafeMap) services.set(key, service) }
    if (span !== undefined) services.set(parentSpanKey, span)
    const runtime = Runtime.make({
      context: Context.unsafeMake(services) as Context.Context<R>,
      fiberRefs: from.fiberRefs,
      // A task forked from an uninterruptible region would inherit it, and shutdown could never cut it off. One with
      // a cut of its own starts uninterruptible: it makes interruptible what may be cut, and only that.
      runtimeFlags: onCutOff === undefined
        ? RuntimeFlags.enable(callerFlags, RuntimeFlags.Interruption)
        : RuntimeFlags.disable(callerFlags, RuntimeFlags.Interruption)
    })
    const fiber = Runtime.runFork(runtime, effect, onTheScheduler)
    // The set's observer goes first: by the time `onTaskExit` runs, the set no longer holds the fiber.
    FiberSet.unsafeAdd(this.tasks, fiber)
    if (onCutOff !== undefined) this.cutHooks.set(fiber, onCutOff)
    this.inFlight++
    metrics.tasksStarted.unsafeUpdate(1, [])
    metrics.tasksActive.unsafeModify(1, [])
    if (this.listening) {
      this.publish(
        label === undefined
          ? WorkerEvent.TaskStarted({ worker: this.name, taskId: id })
          : WorkerEvent.TaskStarted({ worker: this.name, taskId: id, label })
      )
    }
    const tracked = new TrackedImpl(id, label, fiber, startedAt, metrics, span, timing)
    fiber.addObserver((exit) => this.onTaskExit(tracked, exit))
    return tracked
  }

  /** `startedAt` is `0` when timing is off. */
  private taskSpan(caller: AnyFiber, taskId: number, label: string | undefined, startedAt: number): Tracer.Span {
    if (caller.currentTracer === builtInTracer) {
      return new TaskSpan(caller.currentSpan, startedAt, this.name, taskId, label)
    }
    const span = caller.currentTracer.span(
      taskSpanName,
      Option.fromNullable(caller.currentSpan),
      Context.empty(),
      [],
      startedAt === 0 ? BigInt(0) : this.clock.unsafeCurrentTimeNanos(),
      "internal"
    )
    span.attribute("worker", this.name)
    span.attribute("task.id", taskId)
    if (label !== undefined) span.attribute("task.label", label)
    return span
  }

  private onTaskExit(task: TrackedImpl<unknown, unknown>, exit: Exit.Exit<unknown, unknown>): void {
    this.inFlight--
    if (this.cutHooks.size > 0) this.cutHooks.delete(task.fiber)
    const endedAt = this.clock.unsafeCurrentTimeMillis()
    const span = task.span
    if (span instanceof TaskSpan) span.endAtMillis(task.timing ? endedAt : 0, exit)
    else span?.end(task.timing ? this.clock.unsafeCurrentTimeNanos() : BigInt(0), exit)
    const metrics = task.metrics
    metrics.tasksActive.unsafeModify(-1, [])
    metrics.taskDuration.unsafeUpdate((endedAt - task.startedAt) / 1000, [])
    const outcome = outcomeOf(exit)
    if (outcome === "success") metrics.tasksSucceeded.unsafeUpdate(1, [])
    else if (outcome === "failure") metrics.tasksFailed.unsafeUpdate(1, [])
    else metrics.tasksInterrupted.unsafeUpdate(1, [])
    if (this.listening) this.publish(finishedEvent(this.name, task, outcome, exit))
    if (this.inFlight > 0) return
    if (this.state === "Stopping") {
      this.finish()
    } else if (this.listening) {
      this.publish(WorkerEvent.Idle({ worker: this.name }))
    }
  }
}

/** `TaskFinished`, with `label` and `cause` only when there is one (so events compare equal to hand-built ones). */
const finishedEvent = (
  worker: string,
  task: TrackedImpl<unknown, unknown>,
  outcome: TaskOutcome,
  exit: Exit.Exit<unknown, unknown>
): WorkerEvent => {
  const taskId = task.id
  const label = task.label
  if (Exit.isSuccess(exit)) {
    return label === undefined
      ? WorkerEvent.TaskFinished({ worker, taskId, outcome })
      : WorkerEvent.TaskFinished({ worker, taskId, label, outcome })
  }
  const cause = exit.cause
  return label === undefined
    ? WorkerEvent.TaskFinished({ worker, taskId, outcome, cause })
    : WorkerEvent.TaskFinished({ worker, taskId, label, outcome, cause })
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

/** The largest `eventBufferSize`: the `subscribe` hub allocates its buffer at full size when the context is built. */
const maxEventBufferSize = 65_536

const logLevelOf = (input: unknown): LogLevel.LogLevel | undefined => {
  if (input === undefined) return LogLevel.Info
  return LogLevel.allLevels.find((level) => level === input || level._tag === input)
}

const resolveOptions = (options: WorkerContextOptions | undefined): Effect.Effect<ResolvedWorkerContextOptions> => {
  const name = options?.name ?? "worker"
  if (typeof name !== "string" || name.trim().length === 0) return invalid("name", name, "a non-empty string")
  const timeoutInput = options?.shutdownTimeout ?? "30 seconds"
  const shutdownTimeout = Duration.decodeUnknown(timeoutInput)
  if (Option.isNone(shutdownTimeout) || isNegative(timeoutInput)) {
    return invalid("shutdownTimeout", timeoutInput, "a duration of zero or more, such as \"30 seconds\"")
  }
  const eventBufferSize = options?.eventBufferSize ?? 1024
  if (!Number.isSafeInteger(eventBufferSize) || eventBufferSize < 1 || eventBufferSize > maxEventBufferSize) {
    return invalid("eventBufferSize", eventBufferSize, `an integer from 1 to ${maxEventBufferSize}`)
  }
  const shutdownSignal = options?.shutdownSignal
  if (shutdownSignal !== undefined && !Effect.isEffect(shutdownSignal)) {
    return invalid("shutdownSignal", shutdownSignal, "an Effect, such as WorkerNode.shutdownSignal()")
  }
  const logLevel = logLevelOf(options?.logLevel)
  if (logLevel === undefined) {
    return invalid("logLevel", options?.logLevel, `a LogLevel or one of ${LogLevel.allLevels.map((l) => l._tag)}`)
  }
  return Effect.succeed({
    name,
    shutdownTimeout: shutdownTimeout.value,
    hasShutdownSignal: shutdownSignal !== undefined,
    eventBufferSize,
    logLevel
  })
}

const describe = (value: unknown): string =>
  value === null || typeof value !== "object"
    ? String(value)
    : "_tag" in value
    ? `an object with _tag ${JSON.stringify(String(value._tag))}`
    : "an object without _tag"

const lifecycleTags: ReadonlySet<string> = new Set(["Started", "Paused", "Resumed", "Stopping", "Stopped", "Idle"])
const taskTags: ReadonlySet<string> = new Set(["TaskStarted", "TaskFinished"])

/** How long a listener still busy at the end of the close may take to end once interrupted, before it is abandoned. */
const abandonListenersAfter = Duration.seconds(1)

/** @internal */
export const make = (options?: WorkerContextOptions): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const resolved = yield* resolveOptions(options)
    const { eventBufferSize, logLevel, name, shutdownTimeout } = resolved
    const shutdownSignal = options?.shutdownSignal
    const scope = yield* Effect.scope
    const runtime = yield* Effect.runtime<never>()
    // The hub is never shut down: that would discard what slow subscribers have not read yet, `Stopped` among
    // them. Nothing is published after `Stopped`; each subscription ends with the scope it was made in.
    const hub = yield* PubSub.sliding<WorkerEvent>(eventBufferSize)
    const publisher = hubPublisher(hub, Runtime.runFork(runtime))
    // Made before the shutdown finalizer, so closed after it: by then the set is empty, unless `make` was
    // interrupted half-way, and then the set interrupts whatever it holds.
    const tasks = yield* FiberSet.make<unknown, unknown>()
    // Listeners live in a scope of their own, closed by the shutdown finalizer once they have handled `Stopped`.
    const listenerScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    yield* Effect.addFinalizer((exit) => Scope.close(listenerScope, exit))
    const listeners = yield* FiberSet.make<void>().pipe(Scope.extend(listenerScope))
    // Listeners run with the services and fiber refs of `make`, not of whoever calls `listen`: they belong to the
    // context, and one attached from inside a task must not count as part of that task.
    const runListener = yield* FiberSet.runtime(listeners)<never>()
    const overflowed = !claimSeries(name, undefined)
    const metrics = WorkerMetrics.forWorker(overflowed ? WorkerMetrics.overflowWorker : name)
    const core = new WorkerCore(
      name,
      eventBufferSize,
      tasks,
      publisher.publish,
      metrics,
      yield* Effect.clock,
      overflowed
    )

    /** The context's own logs carry its name; what tasks and listeners log is theirs. */
    const annotated = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.annotateLogs(effect, "worker", name)
    const lifecycleLog = (message: string): Effect.Effect<void> =>
      logLevel === LogLevel.None ? Effect.void : annotated(Effect.logWithLevel(logLevel, message))

    if (overflowed) {
      yield* annotated(Effect.logWarning(
        `more than ${WorkerMetrics.maxSeries} worker names in this process: ` +
          `this worker's metrics are counted under worker="${WorkerMetrics.overflowWorker}"`
      ))
    }

    // Shutdown runs here, on a fiber of the context's scope, so no caller of `stop` can cancel it by being
    // interrupted, and an interrupted `make` leaves it behind no more than the scope does.
    const deadline = yield* Effect.gen(function*() {
      yield* Deferred.await(core.shutdownRequested)
      yield* lifecycleLog(
        `shutting down: ${core.inFlight} task(s) in flight, ${Duration.format(shutdownTimeout)} to finish`
      )
      const drained = yield* Effect.timeoutOption(Deferred.await(core.stopped), shutdownTimeout)
      if (Option.isNone(drained)) {
        yield* annotated(Effect.logWarning(`shutdown deadline passed: interrupting ${core.inFlight} task(s)`))
        core.cutOff(yield* Effect.fiberId)
        yield* Deferred.await(core.stopped)
      }
      yield* lifecycleLog(`stopped: ${core.cutOffCount} task(s) interrupted`)
    }).pipe(Effect.interruptible, Effect.forkIn(scope))

    if (shutdownSignal !== undefined) {
      const watcher = Effect.exit(shutdownSignal).pipe(
        Effect.tap((exit) =>
          annotated(
            Exit.isFailure(exit)
              ? Effect.logWarning("shutdown signal failed; shutting down anyway", exit.cause)
              : Effect.logDebug("shutdown signal completed; shutting down")
          )
        ),
        Effect.zipRight(Effect.sync(() => core.beginShutdown())),
        Effect.interruptible
      )
      // Started at once, not on the scheduler (no `race`, which would fork it): a signal handler the effect
      // installs is in place when `make` returns. Forked and given its finalizer under one mask, so an interrupted
      // `make` leaves nothing running; interrupted as soon as shutdown begins for another reason.
      yield* Effect.uninterruptible(Effect.gen(function*() {
        const fiber = Runtime.runFork(runtime, watcher)
        core.onShutdown(() => fiber.unsafeInterruptAsFork(FiberId.none))
        yield* Effect.addFinalizer(() => Fiber.interrupt(fiber))
      }))
    }

    const closeListeners = (exit: Exit.Exit<unknown, unknown>) =>
      Effect.gen(function*() {
        const pending = Array.from(listeners)
        if (pending.length > 0) {
          const handled = yield* Effect.interruptible(Fiber.awaitAll(pending)).pipe(
            Effect.timeoutOption(shutdownTimeout)
          )
          if (Option.isNone(handled)) {
            yield* Effect.logWarning(
              `listeners did not handle Stopped within ${Duration.format(shutdownTimeout)}: interrupting them`
            )
          }
        }
        // The set interrupts what is left, and its finalizer waits for it uninterruptibly (as every finalizer
        // does): on a fiber of its own, so that a listener that will not end is abandoned, not waited for.
        const closer = yield* Effect.forkDaemon(Scope.close(listenerScope, exit))
        const closed = yield* Effect.interruptible(Fiber.await(closer)).pipe(
          Effect.timeoutOption(abandonListenersAfter)
        )
        if (Option.isNone(closed)) {
          // Counted from `pending`: a closed FiberSet cannot be iterated in effect 3.22.
          yield* Effect.logWarning(
            `${pending.filter((fiber) => fiber.unsafePoll() === null).length} listener(s) did not end within ` +
              `${Duration.format(abandonListenersAfter)} of their interruption: abandoned`
          )
        }
      })

    yield* Effect.addFinalizer((exit) =>
      Effect.gen(function*() {
        core.beginShutdown()
        yield* Deferred.await(core.stopped)
        yield* Fiber.await(deadline)
        yield* closeListeners(exit)
      }).pipe(annotated)
    )

    const subscribe: Effect.Effect<Queue.Dequeue<WorkerEvent>, never, Scope.Scope> = Effect.acquireRelease(
      Effect.sync(() => core.hubSubscribed(1)),
      () => Effect.sync(() => core.hubSubscribed(-1))
    ).pipe(Effect.zipRight(PubSub.subscribe(hub)))

    /** A stream of what `buffer` receives, up to and including the element `isLast` picks. */
    const fromBuffer = <A>(buffer: EventBuffer<A>, isLast: (a: A) => boolean): Stream.Stream<A> =>
      Stream.takeUntil(Stream.repeatEffectChunk(Effect.map(buffer.takeAll, Chunk.unsafeFromArray)), isLast)

    const events: Stream.Stream<WorkerEvent> = Stream.unwrapScoped(
      Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => core.addBuffer()),
          (buffer) => Effect.sync(() => buffer !== undefined && core.removeBuffer(buffer))
        ),
        (buffer) => buffer === undefined ? Stream.empty : fromBuffer(buffer, isStopped)
      )
    )

    const stateChanges: Stream.Stream<WorkerState> = Stream.unwrapScoped(
      Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => core.addStateBuffer()),
          (buffer) => Effect.sync(() => core.removeStateBuffer(buffer))
        ),
        (buffer) => fromBuffer(buffer, (state) => state === "Stopped")
      )
    )

    const listen = (handler: (event: WorkerEvent) => Effect.Effect<unknown, unknown>): Effect.Effect<void> =>
      Effect.sync(() => {
        const buffer = core.addBuffer()
        if (buffer === undefined) return
        const handle = (event: WorkerEvent) =>
          Effect.suspend(() => handler(event)).pipe(
            Effect.catchAllCause((cause) => annotated(Effect.logWarning(`listener failed on ${event._tag}`, cause)))
          )
        const loop: Effect.Effect<void> = Effect.flatMap(buffer.takeAll, (batch) =>
          Effect.zipRight(
            Effect.forEach(batch, handle, { discard: true }),
            isStopped(batch[batch.length - 1]!) ? Effect.void : Effect.suspend(() => loop)
          ))
        runListener(loop.pipe(Effect.ensuring(Effect.sync(() => core.removeBuffer(buffer))), Effect.interruptible))
      })

    const fromCore = (f: () => WorkerStateError | undefined): Effect.Effect<void, WorkerStateError> =>
      Effect.suspend(() => {
        const before = core.state
        const error = f()
        if (error !== undefined) return Effect.fail(error)
        return before === core.state ? Effect.void : lifecycleLog(`${before} -> ${core.state}`)
      })

    // Shutdown is logged by the deadline fiber ("shutting down: ..."), once, however it began.
    const requestStop = Effect.sync(() => core.beginShutdown())

    const track = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      options?: TrackOptions | undefined
    ): Effect.Effect<Tracked<A, E>, TaskRejected, Exclude<R, WorkerContext>> => {
      const label = options?.label
      const whenPaused = options?.whenPaused ?? "wait"
      const context = options?.context
      if (context !== undefined && !Context.isContext(context)) {
        return Effect.die(new Cause.IllegalArgumentException(`WorkerContext.track: context must be a Context`))
      }
      if (label !== undefined && typeof label !== "string") {
        return Effect.die(new Cause.IllegalArgumentException(`WorkerContext.track: label must be a string`))
      }
      if (whenPaused !== "wait" && whenPaused !== "reject") {
        return Effect.die(
          new Cause.IllegalArgumentException(
            `WorkerContext.track: whenPaused must be "wait" or "reject", got ${JSON.stringify(String(whenPaused))}`
          )
        )
      }
      // Reading the state and admitting happen in the one synchronous callback of `withFiberRuntime`: no other
      // fiber runs in between, so the task is admitted in exactly the state that was read.
      const attempt: Effect.Effect<Tracked<A, E>, TaskRejected> = Effect.withFiberRuntime((caller, status) => {
        const state = core.state
        if (state === "Running") {
          const tracked = core.admit(effect, caller, status.runtimeFlags, label, context)
          const warning = core.labelWarning()
          if (warning !== undefined) return Effect.as(warning, tracked)
          return core.burstFrom(caller) ? Effect.as(Effect.yieldNow(), tracked) : Effect.succeed(tracked)
        }
        if (state === "Paused" && whenPaused === "wait") return Effect.zipRight(core.resumed.await, attempt)
        return Effect.fail(core.reject(label))
      })
      return attempt
    }

    const awaitShutdown = Effect.withFiberRuntime<void>((caller) =>
      isInsideTaskOf(caller, core)
        ? Effect.dieMessage(
          `WorkerContext.awaitShutdown was called from inside a task of worker "${name}": ` +
            "it would wait for itself for ever. Use stop to request shutdown from a task."
        )
        : Deferred.await(core.stopped)
    )

    const emit = (event: CustomEvent): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (!WorkerEvent.$is("Custom")(event)) {
          const tag = (event as { readonly _tag?: unknown } | null)?._tag
          const reason = typeof tag === "string" && (lifecycleTags.has(tag) || taskTags.has(tag))
            ? `${tag} is published by worker "${name}" itself`
            : `got ${describe(event)}`
          return Effect.die(
            new Cause.IllegalArgumentException(
              `WorkerContext.emit accepts Custom events only, made with WorkerEvent.Custom({ worker, value }): ${reason}`
            )
          )
        }
        if (core.listening && core.state !== "Stopped") {
          core.publish(event.worker === name ? event : WorkerEvent.Custom({ worker: name, value: event.value }))
        }
        return Effect.void
      })

    const setUnready = (check: string, reason: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (typeof check !== "string" || check.length === 0) {
          return Effect.die(
            new Cause.IllegalArgumentException("WorkerContext.setUnready: check must be a non-empty string")
          )
        }
        const text = String(reason)
        return core.setUnready(check, text)
          ? annotated(Effect.logWarning(`readiness check "${check}" is not ready: ${text}`))
          : Effect.void
      })

    const setReady = (check: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const was = core.setReady(check)
        if (was === undefined) return Effect.void
        const unreadyFor = Duration.millis(Math.max(0, core.now() - was.since.getTime()))
        return lifecycleLog(`readiness check "${check}" is ready again, after ${Duration.format(unreadyFor)}`)
      })

    const service: Service = {
      name,
      options: resolved,
      state: Effect.sync(() => core.state),
      stateChanges,
      start: fromCore(() => core.start()),
      pause: fromCore(() => core.pause()),
      resume: fromCore(() => core.resume()),
      stop: Effect.withFiberRuntime((caller) =>
        Effect.zipRight(requestStop, isInsideTaskOf(caller, core) ? Effect.void : Deferred.await(core.stopped))
      ),
      requestStop,
      track,
      taskCount: FiberSet.size(tasks),
      hasPendingTasks: Effect.map(FiberSet.size(tasks), (size) => size > 0),
      isShuttingDown: Effect.sync(() => core.state === "Stopping" || core.state === "Stopped"),
      awaitShutdown,
      shutdownRequested: Deferred.await(core.shutdownRequested),
      emit,
      subscribe,
      events,
      listen,
      setUnready,
      setReady,
      readiness: Effect.sync(() => core.readiness())
    }
    core.bind(service)
    cores.set(service, core)
    return service
  })
