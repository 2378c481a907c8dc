/**
 * The messages of `GET /events`, as one schema: the server encodes each message with it, and the dashboard page
 * reads them through its `Encoded` type.
 */
import * as Schema from "effect/Schema"

const Counts = {
  /** Tasks that started in the interval. */
  started: Schema.Number,
  /** Tasks that ended in the interval, by outcome. */
  succeeded: Schema.Number,
  failed: Schema.Number,
  interrupted: Schema.Number
}

/** Tasks started and ended in an interval, by outcome. */
export const TaskCounts = Schema.Struct(Counts).annotations({ identifier: "TaskCounts" })

const QueueStats = Schema.Struct({
  ready: Schema.Number,
  scheduled: Schema.Number,
  leased: Schema.Number,
  dead: Schema.Number,
  cancelled: Schema.Number,
  succeeded: Schema.Number
})

/** The first message of a stream that starts afresh: the worker as it is now. */
export const Snapshot = Schema.Struct({
  name: Schema.String,
  state: Schema.String,
  taskCount: Schema.Number,
  shuttingDown: Schema.Boolean,
  readiness: Schema.Struct({
    ready: Schema.Boolean,
    unready: Schema.Array(Schema.Struct({ check: Schema.String, reason: Schema.String, since: Schema.String }))
  }),
  at: Schema.String,
  /** A `Last-Event-ID` was given that the replay cannot honour: messages were missed. */
  gap: Schema.Boolean
}).annotations({ identifier: "Snapshot" })

/**
 * One `WorkerEvent` as JSON: `_tag`, `worker` and the event's fields; `TaskFinished`'s `cause` is one line of text,
 * a `Custom` event's `value` plain JSON.
 */
export const WorkerEventJson = Schema.Struct(
  { _tag: Schema.String, worker: Schema.String },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
).annotations({ identifier: "WorkerEventJson" })

/**
 * What happened in the last interval. The task counts leave out HTTP requests (tasks labelled `http`, as
 * `trackRequests` tracks them), which `http` counts apart; `inFlight` is the tasks in flight but those requests.
 */
export const Stats = Schema.Struct({
  at: Schema.String,
  intervalMs: Schema.Number,
  state: Schema.String,
  taskCount: Schema.Number,
  inFlight: Schema.Number,
  ...Counts,
  http: TaskCounts,
  /** The job store's counts, when the routes have a `JobStore`. */
  jobs: Schema.optionalWith(
    Schema.Struct({
      ...QueueStats.fields,
      byQueue: Schema.Record({ key: Schema.String, value: QueueStats }),
      /** The queues paused in the store (`JobStore.pauseQueue`). */
      pausedQueues: Schema.optionalWith(Schema.Array(Schema.String), { exact: true })
    }),
    { exact: true }
  ),
  /** Why the store's counts are missing this time. */
  jobsError: Schema.optionalWith(Schema.String, { exact: true })
}).annotations({ identifier: "Stats" })

/** Messages this client missed because it read too slowly: ids `from` to `to`. */
export const Dropped = Schema.Struct({ count: Schema.Number, from: Schema.Number, to: Schema.Number }).annotations({
  identifier: "Dropped"
})

/** A message of the stream: its `event` field and its `data`. */
export const EventMessage = Schema.Union(
  Schema.Struct({ event: Schema.Literal("snapshot"), data: Snapshot }),
  Schema.Struct({ event: Schema.Literal("worker"), data: WorkerEventJson }),
  Schema.Struct({ event: Schema.Literal("stats"), data: Stats }),
  Schema.Struct({ event: Schema.Literal("dropped"), data: Dropped })
).annotations({ identifier: "EventMessage" })

/** A message as the page receives it. */
export type EventMessage = typeof EventMessage.Encoded

const encode = Schema.encodeSync(EventMessage)

/**
 * `id`, `event` and one line of JSON (`JSON.stringify` escapes every line break), then the blank line: the frame of
 * `message`, encoded by {@link EventMessage}. A `worker` message, one per event and so the hot path, is written
 * directly: its schema transforms nothing (its encoded form is its type, which the compiler checks here), so the
 * encoder would only check again what the type already says, at several times the cost of `JSON.stringify`.
 */
export const frame = (id: number, message: typeof EventMessage.Type): string => {
  const { data, event }: EventMessage = message.event === "worker" ? message : encode(message)
  return `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}
