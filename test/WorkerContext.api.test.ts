/**
 * The second pass of the core: handlers get their own worker, track options (label, whenPaused), requestStop,
 * resolved options, lifecycle log levels, the cause on TaskFinished, and the defects a demanding user found.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Option,
  Queue,
  Scope,
  Supervisor,
  TestClock
} from "effect"
import {
  type CustomEvent,
  isReadinessChanged,
  type ReadinessChanged,
  TaskRejected,
  WorkerContext,
  type WorkerContextOptions,
  WorkerEvent,
  WorkerMetrics
} from "../src/index.js"

const running = (options?: WorkerContextOptions) =>
  Effect.gen(function*() {
    const ctx = yield* WorkerContext.make({ name: "w", ...options })
    yield* ctx.start
    return ctx
  })

const defectOf = <A, E>(exit: Exit.Exit<A, E>): unknown => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  if (Exit.isSuccess(exit)) return undefined
  const defect = Cause.dieOption(exit.cause)
  assert.isTrue(Option.isSome(defect), "expected a defect")
  return Option.getOrUndefined(defect)
}

const assertIllegal = (exit: Exit.Exit<unknown, unknown>, includes: string) => {
  const defect = defectOf(exit)
  assert.isTrue(Cause.isIllegalArgumentException(defect), "an IllegalArgumentException")
  assert.include((defect as Error).message, includes)
}

/** Waits for the next event of `queue` that satisfies `pick`, dropping the others. */
const takeUntil = <A extends WorkerEvent>(
  queue: Queue.Dequeue<WorkerEvent>,
  pick: (event: WorkerEvent) => event is A
) =>
  Effect.gen(function*() {
    while (true) {
      const event = yield* Queue.take(queue)
      if (pick(event)) return event
    }
  })

/** The log lines written while a test runs: all of them, and a queue to wait for the next one. */
interface Logs {
  readonly lines: Array<[level: string, message: string]>
  readonly next: Queue.Queue<[level: string, message: string]>
}

/** Captures every log line's level and message while `self` runs. */
const capturingLogs = <A, E, R>(self: (logs: Logs) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const logs: Logs = { lines: [], next: yield* Queue.unbounded<[string, string]>() }
    const logger = Logger.make(({ logLevel, message }) => {
      const line: [string, string] = [logLevel.label, Array.isArray(message) ? message.join(" ") : String(message)]
      logs.lines.push(line)
      logs.next.unsafeOffer(line)
    })
    return yield* self(logs).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
  })

/**
 * Waits until some fiber sleeps on the test clock: the handshake before `TestClock.adjust` when the sleeper is
 * started by another fiber at a moment the test cannot see.
 */
const sleeping = TestClock.sleeps().pipe(
  Effect.zipLeft(Effect.yieldNow()),
  Effect.repeat({ until: (sleeps) => Chunk.isNonEmpty(sleeps) })
)

/** Waits until a line containing `text` has been logged. */
const logged = (logs: Logs, text: string) =>
  Effect.gen(function*() {
    while (true) {
      const [, message] = yield* Queue.take(logs.next)
      if (message.includes(text)) return
    }
  })

describe("handlers get their own worker", () => {
  it.scoped("inside a task, yield* WorkerContext is the context that tracked it, whatever the caller provides", () =>
    Effect.gen(function*() {
      const images = yield* running({ name: "images" })
      const emails = yield* running({ name: "emails" })
      const whoAmI = Effect.map(WorkerContext, (ctx) => ctx.name)
      // The caller's services say "emails"; the task belongs to "images".
      const fromImages = yield* images.track(whoAmI).pipe(
        Effect.flatMap((task) => task.join),
        Effect.provideService(WorkerContext, emails)
      )
      const fromEmails = yield* emails.track(whoAmI).pipe(Effect.flatMap((task) => task.join))
      assert.strictEqual(fromImages, "images")
      assert.strictEqual(fromEmails, "emails")
    }))

  it.scoped("a handler reaches its own worker's operations: stop from inside a task begins shutdown", () =>
    Effect.gen(function*() {
      const ctx = yield* running({ name: "own" })
      const task = yield* ctx.track(Effect.flatMap(WorkerContext, (self) => self.stop))
      yield* task.join
      yield* ctx.awaitShutdown
      assert.strictEqual(yield* ctx.state, "Stopped")
    }))
})

describe("track options", () => {
  it.scoped("whenPaused: reject fails at once with TaskRejected { state: Paused } and counts the rejection", () =>
    Effect.gen(function*() {
      const ctx = yield* running({ name: "reject-when-paused" })
      yield* ctx.pause
      const ran = yield* Deferred.make<void>()
      const error = yield* Effect.flip(ctx.track(Deferred.succeed(ran, undefined), { whenPaused: "reject" }))
      assert.instanceOf(error, TaskRejected)
      assert.strictEqual(error.state, "Paused")
      assert.include(error.message, "paused")
      assert.isFalse(yield* Deferred.isDone(ran), "the effect never ran")
      const rejected = yield* Metric.value(WorkerMetrics.forWorker("reject-when-paused").tasksRejected)
      assert.strictEqual(rejected.count, 1)
      // A waiting call in the same state waits.
      const waiting = yield* Effect.fork(ctx.track(Effect.void))
      const admitted = yield* Effect.fork(ctx.track(Effect.void, { whenPaused: "wait" }))
      yield* ctx.resume
      yield* Fiber.join(waiting)
      yield* Fiber.join(admitted)
    }))

  it.scoped("whenPaused: reject admits while Running", () =>
    Effect.gen(function*() {
      const ctx = yield* running()
      const task = yield* ctx.track(Effect.succeed(1), { whenPaused: "reject" })
      assert.strictEqual(yield* task.join, 1)
    }))

  it.scoped("a label is on TaskStarted, TaskFinished, the task span and the label's own metric series", () =>
    Effect.gen(function*() {
      const ctx = yield* running({ name: "labelled" })
      const events = yield* ctx.subscribe
      const task = yield* ctx.track(
        Effect.flatMap(Effect.currentSpan, (span) => Effect.succeed(span.attributes.get("task.label"))),
        { label: "image" }
      )
      assert.strictEqual(task.label, "image")
      assert.strictEqual(yield* task.join, "image")
      const started = yield* takeUntil(events, WorkerEvent.$is("TaskStarted"))
      const finished = yield* takeUntil(events, WorkerEvent.$is("TaskFinished"))
      assert.strictEqual(started.label, "image")
      assert.strictEqual(finished.label, "image")
      const labelled = WorkerMetrics.taskMetrics("labelled", "image")
      assert.strictEqual((yield* Metric.value(labelled.tasksStarted)).count, 1)
      assert.strictEqual((yield* Metric.value(labelled.tasksSucceeded)).count, 1)
      assert.strictEqual((yield* Metric.value(labelled.taskDuration)).count, 1)
      // Unlabelled tasks keep the series without the label.
      const unlabelled = WorkerMetrics.forWorker("labelled")
      assert.strictEqual((yield* Metric.value(unlabelled.tasksStarted)).count, 0)
      yield* Effect.flatMap(ctx.track(Effect.void), (t) => t.await)
      assert.strictEqual((yield* Metric.value(unlabelled.tasksStarted)).count, 1)
      assert.strictEqual((yield* Metric.value(labelled.tasksStarted)).count, 1)
    }))

  it.scoped("unlabelled events carry no label key, so they equal events built by hand", () =>
    Effect.gen(function*() {
      const ctx = yield* running()
      const events = yield* ctx.subscribe
      yield* Effect.flatMap(ctx.track(Effect.void), (t) => t.await)
      assert.deepStrictEqual(yield* Queue.take(events), WorkerEvent.TaskStarted({ worker: "w", taskId: 1 }))
      assert.deepStrictEqual(
        yield* Queue.take(events),
        WorkerEvent.TaskFinished({ worker: "w", taskId: 1, outcome: "success" })
      )
    }))

  it.scoped("options that make no sense are a defect naming them", () =>
    Effect.gen(function*() {
      const ctx = yield* running()
      assertIllegal(yield* Effect.exit(ctx.track(Effect.void, { label: 7 as unknown as string })), "label")
      assertIllegal(
        yield* Effect.exit(ctx.track(Effect.void, { whenPaused: "never" as unknown as "wait" })),
        "whenPaused"
      )
    }))
})

describe("bursts", () => {
  it.scoped("a fiber that tracks 384 tasks in one run yields, so the tasks it admitted start before it goes on", () =>
    Effect.gen(function*() {
      const ctx = yield* running()
      let started = 0
      const startedBefore: Array<number> = []
      for (let i = 1; i <= 768; i++) {
        yield* ctx.track(Effect.sync(() => started++))
        startedBefore.push(started)
      }
      assert.strictEqual(startedBefore[382], 0, "no task ran during the first 383 calls")
      assert.isAbove(startedBefore[383]!, 0, "the 384th call yielded, and tasks ran")
      assert.isBelow(startedBefore[766]!, 768)
      assert.isAtLeast(startedBefore[767]!, 384, "and again after the 768th")
    }))

  it.scoped("a fiber that yields by itself is not yielded again", () =>
    Effect.gen(function*() {
      const ctx = yield* running()
      let started = 0
      const startedBefore: Array<number> = []
      for (let i = 1; i <= 900; i++) {
        yield* ctx.track(Effect.sync(() => started++))
        startedBefore.push(started)
        if (i % 300 === 0) yield* Effect.yieldNow()
      }
      // Tasks run only at the caller's own yields, after the 300th and the 600th call: not at the 384th.
      assert.strictEqual(startedBefore[383], 300, "the 384th call did not yield")
      assert.strictEqual(startedBefore[598], 300)
      assert.strictEqual(startedBefore[683], 600, "nor the 684th")
    }))
})

describe("TaskFinished carries the cause", () => {
  it.scoped("a failure, a defect and an interruption each come with their cause; a success with none", () =>
    Effect.gen(function*() {
      const ctx = yield* running()
      const events = yield* ctx.subscribe
      const failed = yield* ctx.track(Effect.fail("boom"))
      yield* failed.await
      const died = yield* ctx.track(Effect.die(new Error("kaput")))
      yield* died.await
      const started = yield* Deferred.make<void>()
      const interrupted = yield* ctx.track(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      yield* Deferred.await(started)
      yield* interrupted.interrupt
      const ok = yield* ctx.track(Effect.void)
      yield* ok.await
      const finished: Array<WorkerEvent> = []
      while (finished.length < 4) finished.push(yield* takeUntil(events, WorkerEvent.$is("TaskFinished")))
      const [f, d, i, s] = finished as Array<Extract<WorkerEvent, { _tag: "TaskFinished" }>>
      assert.deepStrictEqual(f!.cause, Cause.fail("boom"))
      assert.strictEqual(Option.getOrUndefined(Cause.dieOption(d!.cause!)) instanceof Error, true)
      assert.strictEqual((Option.getOrUndefined(Cause.dieOption(d!.cause!)) as Error).message, "kaput")
      assert.isTrue(Cause.isInterruptedOnly(i!.cause!))
      assert.strictEqual(s!.outcome, "success")
      assert.isFalse("cause" in s!)
    }))
})

describe("the context's fibers", () => {
  it.effect("closing the context's scope leaves none of its fibers running: signal watcher, deadline, listeners", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const signalEnded = yield* Deferred.make<void>()
      const scope = yield* Scope.make()
      const ctx = yield* WorkerContext.make({
        name: "fibers",
        shutdownSignal: Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(signalEnded, undefined)))
      }).pipe(Scope.extend(scope), Effect.supervised(supervisor))
      yield* ctx.listen(() => Effect.void)
      yield* ctx.start
      const task = yield* ctx.track(Effect.void)
      yield* task.await
      const started = yield* supervisor.value
      assert.isAtLeast(started.length, 3, "the watcher, the deadline fiber and the listener were supervised")
      yield* Scope.close(scope, Exit.void)
      yield* Deferred.await(signalEnded)
      const running = (yield* supervisor.value).filter((fiber) => fiber.unsafePoll() === null)
      assert.deepStrictEqual(running.map((fiber) => fiber.id()), [], "a fiber of the context outlived its scope")
    }))
})

describe("requestStop", () => {
  it.scoped("begins shutdown and returns at once, without waiting for the tasks in flight", () =>
    Effect.gen(function*() {
      const ctx = yield* running({ shutdownTimeout: "1 minute" })
      const release = yield* Deferred.make<void>()
      const task = yield* ctx.track(Deferred.await(release))
      yield* ctx.requestStop
      assert.strictEqual(yield* ctx.state, "Stopping")
      assert.isNull(task.fiber.unsafePoll(), "the task still runs")
      yield* ctx.requestStop // idempotent
      yield* Deferred.succeed(release, undefined)
      yield* ctx.awaitShutdown
      assert.strictEqual(yield* ctx.state, "Stopped")
    }))

  it.scoped("with nothing in flight, the worker is Stopped when it returns", () =>
    Effect.gen(function*() {
      const ctx = yield* running()
      yield* ctx.requestStop
      assert.strictEqual(yield* ctx.state, "Stopped")
    }))
})

describe("resolved options", () => {
  it.scoped("are readable from the service, defaults filled in", () =>
    Effect.gen(function*() {
      const ctx = yield* WorkerContext.make()
      assert.strictEqual(ctx.options.name, "worker")
      assert.isTrue(Duration.equals(ctx.options.shutdownTimeout, Duration.seconds(30)))
      assert.strictEqual(ctx.options.eventBufferSize, 1024)
      assert.strictEqual(ctx.options.logLevel, LogLevel.Info)
      assert.isFalse(ctx.options.hasShutdownSignal)
      const custom = yield* WorkerContext.make({
        name: "custom",
        shutdownTimeout: 1500,
        eventBufferSize: 8,
        logLevel: "Debug",
        shutdownSignal: Effect.never
      })
      assert.isTrue(Duration.equals(custom.options.shutdownTimeout, Duration.millis(1500)))
      assert.strictEqual(custom.options.eventBufferSize, 8)
      assert.strictEqual(custom.options.logLevel, LogLevel.Debug)
      assert.isTrue(custom.options.hasShutdownSignal)
    }))
})

describe("lifecycle log level", () => {
  const lifecycle = (options: WorkerContextOptions) =>
    capturingLogs((logs) =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "logs", ...options })
        yield* ctx.start
        yield* ctx.pause
        yield* ctx.resume
        yield* ctx.stop
      }).pipe(Effect.scoped, Effect.as(logs.lines))
    )

  it.effect("logs each transition and the shutdown at Info by default", () =>
    Effect.gen(function*() {
      const lines = yield* lifecycle({})
      const messages = lines.map(([, message]) => message)
      assert.includeMembers(messages, ["Pending -> Running", "Running -> Paused", "Paused -> Running"])
      assert.isTrue(messages.some((m) => m.startsWith("shutting down")), "the start of the shutdown")
      assert.isTrue(messages.some((m) => m.startsWith("stopped")), "the end of the shutdown")
      assert.isTrue(lines.every(([level]) => level === "INFO"))
    }))

  it.effect("logs them at the level given, and not at all with None", () =>
    Effect.gen(function*() {
      const debug = yield* lifecycle({ logLevel: "Debug" })
      assert.isAbove(debug.length, 4)
      assert.isTrue(debug.every(([level]) => level === "DEBUG"))
      assert.deepStrictEqual(yield* lifecycle({ logLevel: LogLevel.None }), [])
    }))
})

describe("readiness checks", () => {
  it.scoped("is ready only while Running with no check unready, and says which checks are not, why and since when", () =>
    Effect.gen(function*() {
      const ctx = yield* WorkerContext.make({ name: "w", logLevel: "None" })
      assert.deepStrictEqual(yield* ctx.readiness, { ready: false, state: "Pending", unready: [] })
      yield* ctx.start
      assert.deepStrictEqual(yield* ctx.readiness, { ready: true, state: "Running", unready: [] })

      yield* TestClock.adjust("1 second")
      yield* ctx.setUnready("db", "connection refused")
      yield* TestClock.adjust("1 second")
      yield* ctx.setUnready("cache", "timed out")
      yield* TestClock.adjust("1 second")
      // Still unready: the reason is the latest one, the time is when it became unready.
      yield* ctx.setUnready("db", "no route to host")
      assert.deepStrictEqual(yield* ctx.readiness, {
        ready: false,
        state: "Running",
        unready: [
          { check: "db", reason: "no route to host", since: new Date(1000) },
          { check: "cache", reason: "timed out", since: new Date(2000) }
        ]
      })
      assert.strictEqual(yield* ctx.state, "Running", "an unready check does not change the state")

      yield* ctx.setReady("db")
      yield* ctx.setReady("never named")
      assert.deepStrictEqual((yield* ctx.readiness).unready.map((c) => c.check), ["cache"])
      yield* ctx.setReady("cache")
      assert.deepStrictEqual(yield* ctx.readiness, { ready: true, state: "Running", unready: [] })

      yield* ctx.pause
      assert.deepStrictEqual(yield* ctx.readiness, { ready: false, state: "Paused", unready: [] })
    }))

  it.scoped("admits tasks while a check is unready: readiness is what probes report, not intake", () =>
    Effect.gen(function*() {
      const ctx = yield* running({ logLevel: "None" })
      yield* ctx.setUnready("db", "down")
      const task = yield* ctx.track(Effect.succeed(42))
      assert.strictEqual(yield* task.join, 42)
    }))

  it.scoped("publishes a ReadinessChanged custom event per flip, and nothing for a call that changes nothing", () =>
    Effect.gen(function*() {
      const ctx = yield* running({ logLevel: "None" })
      const events = yield* ctx.subscribe
      yield* ctx.setUnready("db", "down")
      yield* ctx.setUnready("db", "still down")
      yield* ctx.setReady("db")
      yield* ctx.setReady("db")
      yield* ctx.emit(WorkerEvent.Custom({ worker: "w", value: "marker" }))
      const values = Chunk.toArray(yield* Queue.takeAll(events)).map((event) =>
        event._tag === "Custom" ? event.value : event._tag
      )
      const down: ReadinessChanged = { _tag: "ReadinessChanged", check: "db", ready: false, reason: "down" }
      const up: ReadinessChanged = { _tag: "ReadinessChanged", check: "db", ready: true }
      assert.deepStrictEqual(values, [down, up, "marker"])
      assert.isTrue(isReadinessChanged(values[0]))
      assert.isFalse(isReadinessChanged(values[2]))
    }))

  it.effect("logs a warning when a check becomes unready and an info when it is ready again, once per flip", () =>
    Effect.gen(function*() {
      const lines = yield* capturingLogs((logs) =>
        Effect.scoped(Effect.gen(function*() {
          const ctx = yield* running()
          const before = logs.lines.length
          yield* ctx.setUnready("db", "connection refused")
          yield* ctx.setUnready("db", "connection refused")
          yield* TestClock.adjust("1500 millis")
          yield* ctx.setReady("db")
          yield* ctx.setReady("db")
          return logs.lines.slice(before)
        }))
      )
      assert.deepStrictEqual(lines, [
        ["WARN", "readiness check \"db\" is not ready: connection refused"],
        ["INFO", "readiness check \"db\" is ready again, after 1s 500ms"]
      ])
    }))

  it.scoped("dies with an IllegalArgumentException on an empty check name", () =>
    Effect.gen(function*() {
      const ctx = yield* running({ logLevel: "None" })
      assertIllegal(yield* Effect.exit(ctx.setUnready("", "down")), "check must be a non-empty string")
      assert.isTrue((yield* ctx.readiness).ready)
    }))
})

describe("defects found by a demanding user", () => {
  it.scoped("tasks cut off at the deadline count as interrupted even when their finalizers fail or die", () =>
    Effect.gen(function*() {
      const ctx = yield* running({ shutdownTimeout: "1 second" })
      const events = yield* ctx.subscribe
      const started = yield* Queue.unbounded<void>()
      for (const finalizer of [Effect.die("x"), Effect.fail("y"), Effect.void]) {
        yield* ctx.track(
          Effect.zipRight(Queue.offer(started, undefined), Effect.never).pipe(
            Effect.ensuring(Effect.catchAll(finalizer, (e) => Effect.die(e)))
          )
        )
      }
      yield* Effect.forEach([1, 2, 3], () => Queue.take(started))
      const stopper = yield* Effect.fork(ctx.stop)
      yield* takeUntil(events, WorkerEvent.$is("Stopping"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(stopper)
      const stopped = yield* takeUntil(events, WorkerEvent.$is("Stopped"))
      assert.strictEqual(stopped.interrupted, 3)
    }))

  it.effect("eventBufferSize is bounded: past 65,536 (and for 2^32) make dies with a message naming it", () =>
    Effect.gen(function*() {
      for (const size of [65_537, 2 ** 32, 1e7]) {
        assertIllegal(
          yield* Effect.exit(Effect.scoped(WorkerContext.make({ eventBufferSize: size }))),
          "eventBufferSize"
        )
      }
      const largest = yield* Effect.scoped(WorkerContext.make({ eventBufferSize: 65_536 }))
      assert.strictEqual(largest.options.eventBufferSize, 65_536)
    }))

  it.effect("emit of a value that is not a Custom event dies with a message that says what it got", () =>
    Effect.scoped(Effect.gen(function*() {
      const ctx = yield* running()
      const emitAny = (value: unknown) => Effect.exit(ctx.emit(value as CustomEvent))
      assertIllegal(yield* emitAny(null), "Custom events only")
      assertIllegal(yield* emitAny(null), "got null")
      assertIllegal(yield* emitAny({ _tag: "Nope" }), "got an object with _tag \"Nope\"")
      assertIllegal(yield* emitAny(42), "got 42")
      assertIllegal(yield* emitAny(WorkerEvent.Started({ worker: "w" })), "Started is published by worker")
    })))

  it.effect("options Effect cannot express are refused: NaN and negative durations, a signal that is not an Effect", () =>
    Effect.gen(function*() {
      const make = (options: WorkerContextOptions) => Effect.exit(Effect.scoped(WorkerContext.make(options)))
      const inputs: ReadonlyArray<unknown> = [Number.NaN, -5, "-5 millis", "NaN millis", [-1, 0], -Infinity]
      for (const input of inputs) {
        const shutdownTimeout = input as Duration.DurationInput
        assertIllegal(yield* make({ shutdownTimeout }), "shutdownTimeout")
      }
      assertIllegal(
        yield* make({ shutdownSignal: "SIGTERM" as unknown as Effect.Effect<unknown> }),
        "shutdownSignal"
      )
      assertIllegal(yield* make({ logLevel: "Loud" as unknown as LogLevel.Literal }), "logLevel")
    }))

  it.effect("a listener that makes itself uninterruptible does not hang the close: it is abandoned and logged", () =>
    capturingLogs((logs) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const layer = WorkerContext.layer({ name: "stuck", shutdownTimeout: "2 seconds" })
        const ctx = Context.get(yield* Layer.buildWithScope(layer, scope), WorkerContext)
        const stuck = yield* Deferred.make<void>()
        yield* ctx.listen((event) =>
          event._tag === "Stopped"
            ? Effect.uninterruptible(Effect.zipRight(Deferred.succeed(stuck, undefined), Effect.never))
            : Effect.void
        )
        yield* ctx.start
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* Deferred.await(stuck)
        yield* sleeping
        yield* TestClock.adjust("2 seconds")
        yield* logged(logs, "did not handle Stopped within 2s: interrupting them")
        assert.isNull(closing.unsafePoll(), "the close waits for the interrupted listener, for a while")
        yield* sleeping
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)
        const warnings = logs.lines.filter(([level]) => level === "WARN").map(([, message]) => message)
        assert.isTrue(warnings.some((m) => m.includes("1 listener(s) did not end")), "the abandoned listener is logged")
      })
    ))

  it.effect("a process with more worker names than maxSeries keeps a bounded number of metric series", () =>
    Effect.gen(function*() {
      for (let i = 0; i < WorkerMetrics.maxSeries + 50; i++) {
        yield* Effect.scoped(
          Effect.flatMap(WorkerContext.make({ name: `tenant-${i}`, logLevel: "None" }), (ctx) =>
            Effect.zipRight(
              ctx.start,
              Effect.flatMap(ctx.track(Effect.void), (task) => task.await)
            ))
        )
      }
      const workers = new Set<string>()
      for (const pair of Metric.unsafeSnapshot()) {
        if (pair.metricKey.name !== "effect_worker_tasks_started") continue
        const worker = pair.metricKey.tags.find((tag) => tag.key === "worker")
        if (worker !== undefined) workers.add(worker.value)
      }
      assert.isAtMost(workers.size, WorkerMetrics.maxSeries + 1)
      assert.isTrue(workers.has(WorkerMetrics.overflowWorker), "the rest is counted under the overflow series")
      const overflow = yield* Metric.value(WorkerMetrics.forWorker(WorkerMetrics.overflowWorker).tasksStarted)
      assert.isAtLeast(overflow.count, 50)

      // A name seen before the limit keeps its series; a new label past it counts in the unlabelled series.
      const known = WorkerMetrics.forWorker("tenant-0")
      const before = (yield* Metric.value(known.tasksStarted)).count
      const warnings = yield* capturingLogs((logs) =>
        Effect.scoped(Effect.gen(function*() {
          const ctx = yield* WorkerContext.make({ name: "tenant-0", logLevel: "None" })
          yield* ctx.start
          for (let i = 0; i < 2; i++) {
            yield* Effect.flatMap(ctx.track(Effect.void, { label: "brand-new" }), (t) => t.await)
          }
          return logs.lines.filter(([level]) => level === "WARN").map(([, message]) => message)
        }))
      )
      assert.strictEqual((yield* Metric.value(known.tasksStarted)).count, before + 2)
      assert.strictEqual(warnings.length, 1, "one warning")
      assert.include(warnings[0], "tasks labelled \"brand-new\" are counted in the worker's unlabelled series")
    }))
})
