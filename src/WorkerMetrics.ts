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
import type { WorkerState } from "./WorkerContext.js"

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
 * | `effect_worker_state` | gauge, tag `state` | 1 for the current state, 0 for the others |
 * | `effect_worker_shutdown_drain_seconds` | gauge | how long the last shutdown took, `Stopping` to `Stopped` |
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
export interface WorkerMetrics {
  readonly tasksActive: Metric.Metric.Gauge<number>
  readonly tasksStarted: Metric.Metric.Counter<number>
  readonly tasksSucceeded: Metric.Metric.Counter<number>
  readonly tasksFailed: Metric.Metric.Counter<number>
  readonly tasksInterrupted: Metric.Metric.Counter<number>
  readonly tasksRejected: Metric.Metric.Counter<number>
  readonly taskDuration: Metric.Metric.Histogram<number>
  readonly state: { readonly [S in WorkerState]: Metric.Metric.Gauge<number> }
  readonly shutdownDrain: Metric.Metric.Gauge<number>
}

/**
 * Bucket boundaries of `effect_worker_task_duration_seconds`: 1 ms to about 4.4 minutes (262 s), doubling.
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
 * The metrics of the worker named `worker`. Metrics are looked up by name and tags, so calling this twice returns
 * metrics that read and write the same values.
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
  // The tags go into the key, not through `Metric.tagged`: an untagged update then hits a cached hook,
  // which keeps the per-task cost of metrics to a few field writes.
  const counter = (name: string, description: string) =>
    Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.counter(name, { description, incremental: true }), tags))
  const gauge = (name: string, description: string, extra: ReadonlyArray<MetricLabel.MetricLabel> = []) =>
    Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.gauge(name, { description }), [...tags, ...extra]))
  const stateGauge = (state: WorkerState) =>
    gauge("effect_worker_state", "1 for the worker's current state, 0 for the others", [
      MetricLabel.make("state", state)
    ])
  return {
    tasksActive: gauge("effect_worker_tasks_active", "Tasks admitted and not ended"),
    tasksStarted: counter("effect_worker_tasks_started", "Tasks admitted by track"),
    tasksSucceeded: counter("effect_worker_tasks_succeeded", "Tasks that ended with success"),
    tasksFailed: counter("effect_worker_tasks_failed", "Tasks that ended with a failure or a defect"),
    tasksInterrupted: counter("effect_worker_tasks_interrupted", "Tasks that ended interrupted"),
    tasksRejected: counter("effect_worker_tasks_rejected", "track calls refused with TaskRejected"),
    taskDuration: Metric.fromMetricKey(
      MetricKey.taggedWithLabels(
        MetricKey.histogram(
          "effect_worker_task_duration_seconds",
          taskDurationBoundaries,
          "Task run time from admission to end, in seconds"
        ),
        tags
      )
    ),
    state: {
      Pending: stateGauge("Pending"),
      Running: stateGauge("Running"),
      Paused: stateGauge("Paused"),
      Stopping: stateGauge("Stopping"),
      Stopped: stateGauge("Stopped")
    },
    shutdownDrain: gauge("effect_worker_shutdown_drain_seconds", "How long the last shutdown took, in seconds")
  }
}
