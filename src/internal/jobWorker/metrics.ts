/**
 * The job events (`JobEvent`, published as `WorkerEvent.Custom` values) and the job metrics, per worker name and
 * queue. What every part publishes goes through {@link Publisher}, so each outcome is evented and counted in one
 * place.
 */
import * as Data from "effect/Data"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import type * as Job from "../../Job.js"
import type { BuriedJob, ClaimedJob } from "../../JobStore.js"
import type { JobEvent as JobEventType, JobMetrics, JobRef } from "../../JobWorker.js"
import * as WorkerMetrics from "../../WorkerMetrics.js"
import type { WorkerCore } from "../workerContext.js"

/** @internal */
export const JobEvent = Data.taggedEnum<JobEventType>()

const jobEventTags: ReadonlySet<string> = new Set([
  "JobClaimed",
  "JobSucceeded",
  "JobRetried",
  "JobDeadLettered",
  "JobTimedOut",
  "JobLeaseLost",
  "JobReleased",
  "JobSnoozed",
  "JobScheduled",
  "JobCancelled"
])

/** @internal */
export const isJobEvent = (u: unknown): u is JobEventType =>
  typeof u === "object" && u !== null && jobEventTags.has((u as { readonly _tag?: unknown })._tag as string) &&
  typeof (u as { readonly id?: unknown }).id === "string"

/** @internal */
export const jobWaitBoundaries = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 24 })

const counter = (name: string, description: string, tags: ReadonlyArray<MetricLabel.MetricLabel>) =>
  Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.counter(name, { description, incremental: true }), tags))

const histogram = (
  name: string,
  boundaries: MetricBoundaries.MetricBoundaries,
  description: string,
  tags: ReadonlyArray<MetricLabel.MetricLabel>
) => Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.histogram(name, boundaries, description), tags))

/** @internal */
export const metrics = (worker: string, queue: string): JobMetrics => {
  // Tags in the key, as `WorkerMetrics` does: an untagged update then hits a cached hook.
  const tags = [MetricLabel.make("worker", worker), MetricLabel.make("queue", queue)]
  return {
    jobsClaimed: counter("effect_worker_jobs_claimed", "Jobs claimed", tags),
    jobsSucceeded: counter("effect_worker_jobs_succeeded", "Jobs completed", tags),
    jobsRetried: counter("effect_worker_jobs_retried", "Failed attempts scheduled to run again", tags),
    jobsDeadLettered: counter("effect_worker_jobs_dead_lettered", "Jobs moved to the dead letters", tags),
    jobsReleased: counter("effect_worker_jobs_released", "Jobs given back unfinished", tags),
    jobsSnoozed: counter("effect_worker_jobs_snoozed", "Jobs whose handler asked to run again later", tags),
    jobsTimedOut: counter("effect_worker_jobs_timed_out", "Attempts cut off by their job type's timeout", tags),
    jobsLeaseLost: counter("effect_worker_jobs_lease_lost", "Jobs whose lease was lost while held", tags),
    jobsCancelled: counter("effect_worker_jobs_cancelled", "Jobs cancelled while held", tags),
    jobDuration: histogram(
      "effect_worker_job_duration_seconds",
      WorkerMetrics.taskDurationBoundaries,
      "Handler run time per attempt, in seconds",
      tags
    ),
    jobWait: histogram(
      "effect_worker_job_wait_seconds",
      jobWaitBoundaries,
      "Time from a job's runAt to the start of its attempt, in seconds",
      tags
    )
  }
}

/** @internal The gauge of a recurring schedule's next slot, in epoch seconds, per worker name and schedule. */
export const nextSlotGauge = (worker: string, schedule: string) =>
  Metric.fromMetricKey(
    MetricKey.taggedWithLabels(
      MetricKey.gauge("effect_worker_schedule_next_slot_seconds", {
        description: "The next slot of a recurring schedule, in seconds since the epoch"
      }),
      [MetricLabel.make("worker", worker), MetricLabel.make("schedule", schedule)]
    )
  )

/** Registers every series at 0, so an exporter shows them before the first job. */
const registered = (m: JobMetrics): JobMetrics => {
  for (
    const c of [
      m.jobsClaimed,
      m.jobsSucceeded,
      m.jobsRetried,
      m.jobsDeadLettered,
      m.jobsReleased,
      m.jobsSnoozed,
      m.jobsTimedOut,
      m.jobsLeaseLost,
      m.jobsCancelled
    ]
  ) c.unsafeUpdate(0, [])
  m.jobDuration.unsafeValue([])
  m.jobWait.unsafeValue([])
  return m
}

export const refOf = (job: ClaimedJob | BuriedJob): JobRef => ({
  id: job.id,
  name: job.name,
  queue: job.queue,
  attempt: job.attempt
})

/**
 * Publishes job events on the context and counts them in the queue's metrics, each in one synchronous step: an
 * event is built only while someone listens to the context.
 */
export class Publisher {
  private readonly byQueue = new Map<string, JobMetrics>()
  private readonly nextSlots = new Map<string, ReturnType<typeof nextSlotGauge>>()
  constructor(private readonly core: WorkerCore, queues: ReadonlyArray<string>) {
    for (const queue of queues) this.of(queue)
  }

  of(queue: string): JobMetrics {
    let m = this.byQueue.get(queue)
    if (m === undefined) {
      m = registered(metrics(this.core.name, queue))
      this.byQueue.set(queue, m)
    }
    return m
  }

  private get listening(): boolean {
    return this.core.listening
  }

  claimed(job: ClaimedJob): void {
    this.of(job.queue).jobsClaimed.unsafeUpdate(1, [])
    if (this.listening) this.core.publishCustom(JobEvent.JobClaimed(refOf(job)))
  }

  succeeded(job: ClaimedJob, durationMs: number): void {
    this.of(job.queue).jobsSucceeded.unsafeUpdate(1, [])
    if (this.listening) this.core.publishCustom(JobEvent.JobSucceeded({ ...refOf(job), durationMs }))
  }

  retried(job: ClaimedJob, delayMs: number, error: string): void {
    this.of(job.queue).jobsRetried.unsafeUpdate(1, [])
    if (this.listening) this.core.publishCustom(JobEvent.JobRetried({ ...refOf(job), delayMs, error }))
  }

  deadLettered(job: ClaimedJob | BuriedJob, error: string): void {
    this.of(job.queue).jobsDeadLettered.unsafeUpdate(1, [])
    if (this.listening) this.core.publishCustom(JobEvent.JobDeadLettered({ ...refOf(job), error }))
  }

  released(job: ClaimedJob, refunded: boolean): void {
    this.of(job.queue).jobsReleased.unsafeUpdate(1, [])
    if (this.listening) this.core.publishCustom(JobEvent.JobReleased({ ...refOf(job), refunded }))
  }

  snoozed(job: ClaimedJob, delayMs: number): void {
    this.of(job.queue).jobsSnoozed.unsafeUpdate(1, [])
    if (this.listening) this.core.publishCustom(JobEvent.JobSnoozed({ ...refOf(job), delayMs }))
  }

  timedOut(job: ClaimedJob, timeoutMs: number): void {
    this.of(job.queue).jobsTimedOut.unsafeUpdate(1, [])
    if (this.listening) this.core.publishCustom(JobEvent.JobTimedOut({ ...refOf(job), timeoutMs }))
  }

  leaseLost(job: ClaimedJob): void {
    this.of(job.queue).jobsLeaseLost.unsafeUpdate(1, [])
    if (this.listening) this.core.publishCustom(JobEvent.JobLeaseLost(refOf(job)))
  }

  cancelled(job: ClaimedJob): void {
    this.of(job.queue).jobsCancelled.unsafeUpdate(1, [])
    if (this.listening) this.core.publishCustom(JobEvent.JobCancelled(refOf(job)))
  }

  scheduled(schedule: Job.JobSchedule, slot: Date, id: string): void {
    if (this.listening) {
      this.core.publishCustom(
        JobEvent.JobScheduled({
          id,
          name: schedule.job.name,
          queue: schedule.job.queue,
          attempt: 0,
          schedule: schedule.name,
          slot
        })
      )
    }
  }

  nextSlot(schedule: string, at: number): void {
    let gauge = this.nextSlots.get(schedule)
    if (gauge === undefined) {
      gauge = nextSlotGauge(this.core.name, schedule)
      this.nextSlots.set(schedule, gauge)
    }
    gauge.unsafeUpdate(at / 1000, [])
  }

  /** The handler's run time and the job's wait, at the end and the start of an attempt. */
  duration(job: ClaimedJob, ms: number): void {
    this.of(job.queue).jobDuration.unsafeUpdate(ms / 1000, [])
  }

  wait(job: ClaimedJob, ms: number): void {
    this.of(job.queue).jobWait.unsafeUpdate(ms / 1000, [])
  }
}
