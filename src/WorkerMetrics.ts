/**
 * The Effect metrics every `WorkerContext` keeps, tagged with `worker` (the context's name). They are ordinary
 * `effect/Metric`s: any Effect metrics exporter sees them, and `WorkerHttp` serves them as Prometheus text.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import type { WorkerState } from "./WorkerState.js"

/**
 * The metrics of one worker. Names, as Prometheus shows them once exported (counters get `_total`):
 *
 * | metric | type | meaning |
 * |---|---|---|
 * | `effect_worker_tasks_active` | gauge | tasks admitted and not ended |
 * | `effect_worker_tasks_started` | counter | tasks admitted by `track` |
 * | `effect_worker_tasks_succeeded` | counter | tasks that ended with success |
 * | `effect_worker_tasks_failed` | counter | tasks that ended with a failure or a defect |
 * | `effect_worker_tasks_interrupted` | counter | tasks that ended interrupted (by shutdown or otherwise) |
 * | `effect_worker_tasks_rejected` | counter | `track` calls refused with `TaskRejected` |
 * | `effect_worker_task_duration_seconds` | histogram | task run time, admission to end |
 * | `effect_worker_state` | gauge, tag `state` | how many contexts of this name are in the state: 1 or 0 for a single context |
 * | `effect_worker_shutdown_drain_seconds` | gauge | how long the last shutdown took, `Stopping` to `Stopped` |
 *
 * Every metric has the tag `worker`; the task metrics (the first seven) of tasks tracked with a `label` have the
 * tag `label` too, in series of their own, so the worker's totals are the sums over its series.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { WorkerContext, WorkerMetrics } from "effect-worker-context"
 *
 * const program = Effect.gen(function*() {
 *   const ctx = yield* WorkerContext
 *   yield* ctx.start
 *   const task = yield* ctx.track(Effect.succeed("done"))
 *   yield* task.await
 *   const succeeded = yield* Metric.value(WorkerMetrics.forWorker(ctx.name).tasksSucceeded)
 *   return succeeded.count // 1
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerMetrics extends TaskMetrics {
  readonly state: { readonly [S in WorkerState]: Metric.Metric.Gauge<number> }
  readonly shutdownDrain: Metric.Metric.Gauge<number>
}

/**
 * The task metrics of one worker and one task label (or of its unlabelled tasks).
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { WorkerMetrics } from "effect-worker-context"
 *
 * const httpFailures = Metric.value(WorkerMetrics.taskMetrics("api", "http").tasksFailed)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface TaskMetrics {
  readonly tasksActive: Metric.Metric.Gauge<number>
  readonly tasksStarted: Metric.Metric.Counter<number>
  readonly tasksSucceeded: Metric.Metric.Counter<number>
  readonly tasksFailed: Metric.Metric.Counter<number>
  readonly tasksInterrupted: Metric.Metric.Counter<number>
  readonly tasksRejected: Metric.Metric.Counter<number>
  readonly taskDuration: Metric.Metric.Histogram<number>
}

/**
 * Bucket boundaries of `effect_worker_task_duration_seconds`: 1 ms, doubling, to 131 s (2^17 ms), then `+Inf`.
 *
 * @example
 * ```ts
 * import { taskDurationBoundaries } from "effect-worker-context/WorkerMetrics"
 *
 * console.log(taskDurationBoundaries.values[0]) // 0.001
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const taskDurationBoundaries: MetricBoundaries.MetricBoundaries = MetricBoundaries.exponential({
  start: 0.001,
  factor: 2,
  count: 19
})

/**
 * How many metric series (one group per distinct worker name, and one per distinct worker name and task label)
 * the contexts of one process create, at most. Effect's metric registry keeps every series for the life of the
 * process, so a program that makes contexts with ever new names (one per tenant, per request, per test) or tracks
 * with ever new labels would grow without bound. Past this limit, a context with a new name counts under the
 * worker {@link overflowWorker} instead, and tasks with a new label count in their worker's unlabelled series; each
 * logs a warning once. Names and labels already seen keep their series.
 *
 * @example
 * ```ts
 * import { WorkerMetrics } from "effect-worker-context"
 *
 * console.log(WorkerMetrics.maxSeries) // 256
 * ```
 *
 * @since 0.2.0
 * @category constants
 */
export const maxSeries = 256

/**
 * The `worker` tag of the series that count the workers and labels past {@link maxSeries}.
 *
 * @example
 * ```ts
 * import { WorkerMetrics } from "effect-worker-context"
 *
 * console.log(WorkerMetrics.overflowWorker) // "_overflow"
 * ```
 *
 * @since 0.2.0
 * @category constants
 */
export const overflowWorker = "_overflow"

const counter = (name: string, description: string, tags: ReadonlyArray<MetricLabel.MetricLabel>) =>
  Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.counter(name, { description, incremental: true }), tags))

const gauge = (name: string, description: string, tags: ReadonlyArray<MetricLabel.MetricLabel>) =>
  Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.gauge(name, { description }), tags))

/**
 * The task metrics of the worker named `worker`, for its tasks tracked with `label` (or its unlabelled ones).
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { WorkerMetrics } from "effect-worker-context"
 *
 * const httpInFlight = Metric.value(WorkerMetrics.taskMetrics("api", "http").tasksActive)
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const taskMetrics = (worker: string, label?: string | undefined): TaskMetrics => {
  // The tags go into the key, not through `Metric.tagged`: an untagged update then hits a cached hook,
  // which keeps the per-task cost of metrics to a few field writes.
  const tags = [MetricLabel.make("worker", worker)]
  if (label !== undefined) tags.push(MetricLabel.make("label", label))
  return {
    tasksActive: gauge("effect_worker_tasks_active", "Tasks admitted and not ended", tags),
    tasksStarted: counter("effect_worker_tasks_started", "Tasks admitted by track", tags),
    tasksSucceeded: counter("effect_worker_tasks_succeeded", "Tasks that ended with success", tags),
    tasksFailed: counter("effect_worker_tasks_failed", "Tasks that ended with a failure or a defect", tags),
    tasksInterrupted: counter("effect_worker_tasks_interrupted", "Tasks that ended interrupted", tags),
    tasksRejected: counter("effect_worker_tasks_rejected", "track calls refused with TaskRejected", tags),
    taskDuration: Metric.fromMetricKey(
      MetricKey.taggedWithLabels(
        MetricKey.histogram(
          "effect_worker_task_duration_seconds",
          taskDurationBoundaries,
          "Task run time from admission to end, in seconds"
        ),
        tags
      )
    )
  }
}

/**
 * The metrics of the worker named `worker` (its unlabelled tasks, its state and its last drain). Metrics are looked
 * up by name and tags, so calling this twice returns metrics that read and write the same values.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { WorkerMetrics } from "effect-worker-context"
 *
 * const inFlight = Metric.value(WorkerMetrics.forWorker("mailer").tasksActive).pipe(
 *   Effect.map((state) => state.value)
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const forWorker = (worker: string): WorkerMetrics => {
  const tags = [MetricLabel.make("worker", worker)]
  const stateGauge = (state: WorkerState) =>
    gauge("effect_worker_state", "How many contexts of this worker name are in the state (1 or 0 for one context)", [
      ...tags,
      MetricLabel.make("state", state)
    ])
  return {
    ...taskMetrics(worker),
    state: {
      Pending: stateGauge("Pending"),
      Running: stateGauge("Running"),
      Paused: stateGauge("Paused"),
      Stopping: stateGauge("Stopping"),
      Stopped: stateGauge("Stopped")
    },
    shutdownDrain: gauge("effect_worker_shutdown_drain_seconds", "How long the last shutdown took, in seconds", tags)
  }
}
