import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { TaskRejected, WorkerStateError } from "../src/index.js"

describe("WorkerContextError", () => {
  describe("WorkerStateError", () => {
    it("carries the worker, the operation and the state, under the tag WorkerStateError", () => {
      const error = new WorkerStateError({ worker: "mailer", operation: "pause", state: "Pending" })
      assert.strictEqual(error._tag, "WorkerStateError")
      assert.strictEqual(error.worker, "mailer")
      assert.strictEqual(error.operation, "pause")
      assert.strictEqual(error.state, "Pending")
    })

    it("says which worker cannot do what in which state", () => {
      assert.strictEqual(
        new WorkerStateError({ worker: "mailer", operation: "pause", state: "Pending" }).message,
        "Worker \"mailer\" cannot pause while Pending"
      )
      assert.strictEqual(
        new WorkerStateError({ worker: "images", operation: "start", state: "Stopped" }).message,
        "Worker \"images\" cannot start while Stopped"
      )
      assert.strictEqual(
        new WorkerStateError({ worker: "w", operation: "resume", state: "Stopping" }).message,
        "Worker \"w\" cannot resume while Stopping"
      )
    })

    it("is an Error whose tag is not the platform's WorkerError", () => {
      const error = new WorkerStateError({ worker: "w", operation: "start", state: "Paused" })
      assert.instanceOf(error, Error)
      assert.notStrictEqual(error._tag, "WorkerError")
    })

    it.effect("fails an effect when yielded, and is caught by its tag", () =>
      Effect.gen(function*() {
        const failing = Effect.gen(function*() {
          return yield* new WorkerStateError({ worker: "w", operation: "resume", state: "Pending" })
        })
        const result = yield* Effect.either(failing)
        assert.isTrue(Either.isLeft(result))
        if (Either.isLeft(result)) assert.strictEqual(result.left.operation, "resume")
        const recovered = yield* failing.pipe(
          Effect.catchTag("WorkerStateError", (error) => Effect.succeed(`${error.operation}/${error.state}`))
        )
        assert.strictEqual(recovered, "resume/Pending")
      }))
  })

  describe("TaskRejected", () => {
    it("carries the worker and the state, under the tag TaskRejected", () => {
      const error = new TaskRejected({ worker: "mailer", state: "Stopping" })
      assert.strictEqual(error._tag, "TaskRejected")
      assert.strictEqual(error.worker, "mailer")
      assert.strictEqual(error.state, "Stopping")
      assert.instanceOf(error, Error)
    })

    it("says the worker has not been started when it is Pending", () => {
      assert.strictEqual(
        new TaskRejected({ worker: "mailer", state: "Pending" }).message,
        "Worker \"mailer\" rejected a task: it has not been started"
      )
    })

    it("says shutdown has begun, naming the state, when it is Stopping or Stopped", () => {
      assert.strictEqual(
        new TaskRejected({ worker: "mailer", state: "Stopping" }).message,
        "Worker \"mailer\" rejected a task: shutdown has begun (Stopping)"
      )
      assert.strictEqual(
        new TaskRejected({ worker: "mailer", state: "Stopped" }).message,
        "Worker \"mailer\" rejected a task: shutdown has begun (Stopped)"
      )
    })

    it.effect("fails an effect when yielded, and is caught by its tag", () =>
      Effect.gen(function*() {
        const recovered = yield* Effect.fail(new TaskRejected({ worker: "w", state: "Stopped" })).pipe(
          Effect.catchTag("TaskRejected", (error) => Effect.succeed(error.state))
        )
        assert.strictEqual(recovered, "Stopped")
      }))
  })
})
