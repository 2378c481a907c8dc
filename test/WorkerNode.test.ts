/**
 * Real signals, sent to this test process. SIGUSR2 ends a Node process that does not listen to it, so every test
 * keeps a no-op listener of its own installed while it runs: a bug in the code under test then fails the test
 * instead of killing the test runner. Time is real, so every wait is bounded.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Logger, Queue, Schedule, Scope } from "effect"
import { randomUUID } from "node:crypto"
import { WorkerContext, type WorkerEvent } from "../src/index.js"
import * as WorkerNode from "../src/WorkerNode.js"

const WAIT = "5 seconds"

class TimedOut extends Error {}

const within = (what: string) =>
  Effect.timeoutFail({ duration: WAIT, onTimeout: () => new TimedOut(`timed out waiting for ${what}`) })

/** Polls `check` until it holds, for at most `WAIT`. */
const eventually = (what: string, check: Effect.Effect<boolean>) =>
  check.pipe(Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (ok) => ok }), within(what))

const listeners = (signal: NodeJS.Signals) => Effect.sync(() => process.listenerCount(signal))

/** Keeps the test process alive should a signal arrive with nobody else listening. */
const guard = (signal: NodeJS.Signals) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const ignore = () => {}
      process.on(signal, ignore)
      return ignore
    }),
    (ignore) => Effect.sync(() => process.removeListener(signal, ignore))
  )

const send = (signal: NodeJS.Signals) => Effect.sync(() => process.kill(process.pid, signal))

const quiet = Effect.provide(Logger.remove(Logger.defaultLogger))

describe("WorkerNode.shutdownSignal", () => {
  it.scopedLive("completes with the signal when the process receives it, then removes its listener", () =>
    Effect.gen(function*() {
      yield* guard("SIGUSR2")
      const before = yield* listeners("SIGUSR2")
      const waiting = yield* Effect.fork(WorkerNode.shutdownSignal(["SIGUSR2"]))
      yield* eventually("the listener", Effect.map(listeners("SIGUSR2"), (n) => n === before + 1))
      yield* Effect.sleep("20 millis")
      assert.isNull(waiting.unsafePoll(), "it waits for a signal")

      yield* send("SIGUSR2")
      const signal = yield* Fiber.join(waiting).pipe(within("the signal"))
      assert.strictEqual(signal, "SIGUSR2")
      assert.strictEqual(yield* listeners("SIGUSR2"), before)
    }))

  it.scopedLive("removes its listeners when interrupted before any signal", () =>
    Effect.gen(function*() {
      const before = yield* listeners("SIGUSR2")
      const waiting = yield* Effect.fork(WorkerNode.shutdownSignal(["SIGUSR2"]))
      yield* eventually("the listener", Effect.map(listeners("SIGUSR2"), (n) => n === before + 1))

      yield* Fiber.interrupt(waiting).pipe(within("the interruption"))
      assert.strictEqual(yield* listeners("SIGUSR2"), before)
    }))

  it.scopedLive("listens to each of several signals, returns the one received and removes every listener", () =>
    Effect.gen(function*() {
      yield* guard("SIGUSR2")
      const usr2 = yield* listeners("SIGUSR2")
      const winch = yield* listeners("SIGWINCH")
      const waiting = yield* Effect.fork(WorkerNode.shutdownSignal(["SIGWINCH", "SIGUSR2"]))
      yield* eventually(
        "both listeners",
        Effect.map(
          Effect.all([listeners("SIGUSR2"), listeners("SIGWINCH")]),
          ([u, w]) => u === usr2 + 1 && w === winch + 1
        )
      )

      yield* send("SIGUSR2")
      assert.strictEqual(yield* Fiber.join(waiting).pipe(within("the signal")), "SIGUSR2")
      assert.strictEqual(yield* listeners("SIGUSR2"), usr2)
      assert.strictEqual(yield* listeners("SIGWINCH"), winch)
    }))

  it.scopedLive("as a context's shutdownSignal, the signal begins shutdown and in-flight tasks drain", () =>
    Effect.gen(function*() {
      yield* guard("SIGUSR2")
      const before = yield* listeners("SIGUSR2")
      const name = `node-${randomUUID()}`
      const ctx = yield* WorkerContext.make({
        name,
        shutdownTimeout: "1 minute",
        shutdownSignal: WorkerNode.shutdownSignal(["SIGUSR2"])
      })
      const events = yield* ctx.subscribe
      yield* ctx.start
      const release = yield* Deferred.make<void>()
      yield* Effect.addFinalizer(() => Deferred.succeed(release, undefined))
      const task = yield* ctx.track(Deferred.await(release).pipe(Effect.as("finished")))
      yield* eventually("the listener", Effect.map(listeners("SIGUSR2"), (n) => n === before + 1))
      assert.strictEqual(yield* ctx.state, "Running")

      yield* send("SIGUSR2")
      yield* ctx.shutdownRequested.pipe(within("shutdown to begin"))
      assert.strictEqual(yield* ctx.state, "Stopping")
      yield* Effect.sleep("20 millis")
      assert.isNull(task.fiber.unsafePoll(), "the task in flight is left to finish")
      assert.strictEqual(yield* ctx.state, "Stopping")

      yield* Deferred.succeed(release, undefined)
      yield* ctx.awaitShutdown.pipe(within("Stopped"))
      assert.deepStrictEqual(yield* task.await, Exit.succeed("finished"))
      const all = yield* Queue.takeAll(events)
      const stopped = Array.from(all).find((event): event is Extract<WorkerEvent, { _tag: "Stopped" }> =>
        event._tag === "Stopped"
      )
      assert.deepStrictEqual(stopped, { _tag: "Stopped", worker: name, interrupted: 0 } as WorkerEvent)
      assert.strictEqual(yield* listeners("SIGUSR2"), before, "the listener is gone once the signal was handled")
    }).pipe(quiet))

  it.scopedLive("as a context's shutdownSignal, its listener is installed by the time make returns", () =>
    Effect.gen(function*() {
      yield* guard("SIGUSR2")
      const before = yield* listeners("SIGUSR2")
      // No yield between make returning and the count: a signal sent right after make must begin the shutdown.
      const installed = yield* Effect.map(
        WorkerContext.make({ name: `node-${randomUUID()}`, shutdownSignal: WorkerNode.shutdownSignal(["SIGUSR2"]) }),
        (ctx) => ({ ctx, count: process.listenerCount("SIGUSR2") })
      )
      assert.strictEqual(installed.count, before + 1)
      const { ctx } = installed
      yield* ctx.start
      const task = yield* ctx.track(Effect.sleep("50 millis").pipe(Effect.as("drained")))
      yield* send("SIGUSR2")
      yield* ctx.awaitShutdown.pipe(within("Stopped"))
      assert.deepStrictEqual(yield* task.await, Exit.succeed("drained"), "the task in flight drained")
    }).pipe(quiet))

  it.scopedLive("as a context's shutdownSignal, its listener is removed when the context's scope closes", () =>
    Effect.gen(function*() {
      const before = yield* listeners("SIGUSR2")
      const scope = yield* Scope.make()
      yield* Effect.addFinalizer((exit) => Scope.close(scope, exit))
      const ctx = yield* WorkerContext.make({
        name: `node-${randomUUID()}`,
        shutdownSignal: WorkerNode.shutdownSignal(["SIGUSR2"])
      }).pipe(Scope.extend(scope))
      yield* ctx.start
      yield* eventually("the listener", Effect.map(listeners("SIGUSR2"), (n) => n === before + 1))

      yield* Scope.close(scope, Exit.void).pipe(within("the scope to close"))
      assert.strictEqual(yield* ctx.state, "Stopped")
      assert.strictEqual(yield* listeners("SIGUSR2"), before, "no listener is left once the scope is closed")
    }).pipe(quiet))
})
