import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { WorkerContext } from "../src/index.js"

describe("smoke", () => {
  it.scoped("tracks and stops", () =>
    Effect.gen(function*() {
      const ctx = yield* WorkerContext.make({ shutdownTimeout: "1 second" })
      const events: Array<string> = []
      yield* ctx.listen((e) => Effect.sync(() => events.push(e._tag)))
      yield* ctx.start
      const t = yield* ctx.track(Effect.sleep("2 seconds"))
      const t2 = yield* ctx.track(Effect.succeed(1))
      assert.strictEqual(yield* t2.join, 1)
      assert.strictEqual(yield* ctx.taskCount, 1)
      const stopper = yield* Effect.fork(ctx.stop)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(stopper)
      assert.strictEqual(yield* ctx.state, "Stopped")
      const exit = yield* t.await
      assert.isTrue(exit._tag === "Failure")
      yield* Effect.yieldNow()
      console.log(events)
    }))
})
