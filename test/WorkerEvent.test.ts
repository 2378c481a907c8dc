import { assert, describe, it } from "@effect/vitest"
import { Equal } from "effect"
import { match, WorkerEvent } from "../src/index.js"

const describeEvent = match({
  Started: ({ worker }) => `${worker} started`,
  Paused: ({ worker }) => `${worker} paused`,
  Resumed: ({ worker }) => `${worker} resumed`,
  Stopping: ({ worker }) => `${worker} stopping`,
  Stopped: ({ interrupted, worker }) => `${worker} stopped, ${interrupted} interrupted`,
  Idle: ({ worker }) => `${worker} idle`,
  TaskStarted: ({ taskId, worker }) => `${worker} task ${taskId} started`,
  TaskFinished: ({ outcome, taskId, worker }) => `${worker} task ${taskId} ${outcome}`,
  Custom: ({ value, worker }) => `${worker} custom ${JSON.stringify(value)}`
})

describe("WorkerEvent", () => {
  describe("constructors", () => {
    it("build every variant with its tag, its worker and its fields", () => {
      const events = [
        WorkerEvent.Started({ worker: "w" }),
        WorkerEvent.Paused({ worker: "w" }),
        WorkerEvent.Resumed({ worker: "w" }),
        WorkerEvent.Stopping({ worker: "w" }),
        WorkerEvent.Stopped({ worker: "w", interrupted: 2 }),
        WorkerEvent.Idle({ worker: "w" }),
        WorkerEvent.TaskStarted({ worker: "w", taskId: 7 }),
        WorkerEvent.TaskFinished({ worker: "w", taskId: 7, outcome: "failure" }),
        WorkerEvent.Custom({ worker: "w", value: { sent: 3 } })
      ]
      assert.deepStrictEqual(
        events.map((event) => event._tag),
        ["Started", "Paused", "Resumed", "Stopping", "Stopped", "Idle", "TaskStarted", "TaskFinished", "Custom"]
      )
      assert.isTrue(events.every((event) => event.worker === "w"))
      const stopped = WorkerEvent.Stopped({ worker: "w", interrupted: 2 })
      assert.strictEqual(stopped.interrupted, 2)
      const finished = WorkerEvent.TaskFinished({ worker: "w", taskId: 7, outcome: "interrupted" })
      assert.strictEqual(finished.taskId, 7)
      assert.strictEqual(finished.outcome, "interrupted")
      assert.deepStrictEqual(WorkerEvent.Custom({ worker: "w", value: { sent: 3 } }).value, { sent: 3 })
    })

    it("build values that are equal when their tag and fields are equal", () => {
      assert.isTrue(Equal.equals(WorkerEvent.Started({ worker: "w" }), WorkerEvent.Started({ worker: "w" })))
      assert.isFalse(Equal.equals(WorkerEvent.Started({ worker: "w" }), WorkerEvent.Started({ worker: "v" })))
      assert.isFalse(Equal.equals(WorkerEvent.Started({ worker: "w" }), WorkerEvent.Paused({ worker: "w" })))
      assert.isTrue(
        Equal.equals(
          WorkerEvent.TaskFinished({ worker: "w", taskId: 1, outcome: "success" }),
          WorkerEvent.TaskFinished({ worker: "w", taskId: 1, outcome: "success" })
        )
      )
      assert.isFalse(
        Equal.equals(
          WorkerEvent.TaskFinished({ worker: "w", taskId: 1, outcome: "success" }),
          WorkerEvent.TaskFinished({ worker: "w", taskId: 1, outcome: "failure" })
        )
      )
    })
  })

  describe("$is", () => {
    it("recognises exactly the events of the given tag", () => {
      const isStopped = WorkerEvent.$is("Stopped")
      assert.isTrue(isStopped(WorkerEvent.Stopped({ worker: "w", interrupted: 0 })))
      assert.isFalse(isStopped(WorkerEvent.Stopping({ worker: "w" })))
      assert.isFalse(isStopped(WorkerEvent.Custom({ worker: "w", value: "Stopped" })))
      assert.isFalse(isStopped({ _tag: "Started" }))
      assert.isFalse(isStopped(null))
    })

    it("narrows an event to its variant", () => {
      const events: ReadonlyArray<WorkerEvent> = [
        WorkerEvent.TaskStarted({ worker: "w", taskId: 1 }),
        WorkerEvent.Idle({ worker: "w" }),
        WorkerEvent.TaskStarted({ worker: "w", taskId: 2 })
      ]
      const ids = events.filter(WorkerEvent.$is("TaskStarted")).map((event) => event.taskId)
      assert.deepStrictEqual(ids, [1, 2])
    })
  })

  describe("match", () => {
    it("runs the case of the event's tag with the event's fields, data-last", () => {
      assert.strictEqual(describeEvent(WorkerEvent.Started({ worker: "w" })), "w started")
      assert.strictEqual(describeEvent(WorkerEvent.Paused({ worker: "w" })), "w paused")
      assert.strictEqual(describeEvent(WorkerEvent.Resumed({ worker: "w" })), "w resumed")
      assert.strictEqual(describeEvent(WorkerEvent.Stopping({ worker: "w" })), "w stopping")
      assert.strictEqual(
        describeEvent(WorkerEvent.Stopped({ worker: "w", interrupted: 3 })),
        "w stopped, 3 interrupted"
      )
      assert.strictEqual(describeEvent(WorkerEvent.Idle({ worker: "w" })), "w idle")
      assert.strictEqual(describeEvent(WorkerEvent.TaskStarted({ worker: "w", taskId: 4 })), "w task 4 started")
      assert.strictEqual(
        describeEvent(WorkerEvent.TaskFinished({ worker: "w", taskId: 4, outcome: "success" })),
        "w task 4 success"
      )
      assert.strictEqual(describeEvent(WorkerEvent.Custom({ worker: "w", value: [1, 2] })), "w custom [1,2]")
    })

    it("runs the case of the event's tag, data-first", () => {
      const label = match(WorkerEvent.Stopped({ worker: "mailer", interrupted: 1 }), {
        Started: () => "up",
        Paused: () => "paused",
        Resumed: () => "up",
        Stopping: () => "going down",
        Stopped: ({ interrupted }) => `down (${interrupted})`,
        Idle: () => "idle",
        TaskStarted: () => "busy",
        TaskFinished: () => "busy",
        Custom: () => "custom"
      })
      assert.strictEqual(label, "down (1)")
    })

    it("is the same function as WorkerEvent.$match", () => {
      assert.strictEqual(match, WorkerEvent.$match)
    })
  })
})
