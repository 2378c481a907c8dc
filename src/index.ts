/**
 * effect-worker-context: a worker lifecycle you can trust, on Effect-TS.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * from "./WorkerContext.js"

/**
 * @since 0.1.0
 */
export * from "./WorkerContextError.js"

/**
 * @since 0.1.0
 */
export * from "./WorkerEvent.js"

/**
 * The Effect metrics every worker keeps.
 *
 * @since 0.1.0
 */
export * as WorkerMetrics from "./WorkerMetrics.js"

/**
 * Job types: a name, a payload schema, and how a worker runs them.
 *
 * @since 0.2.0
 */
export * as Job from "./Job.js"

/**
 * The job store port, its errors and models.
 *
 * @since 0.2.0
 */
export * as JobStore from "./JobStore.js"

/**
 * The embedded job store: jobs in this process's memory, not durable.
 *
 * @since 0.2.0
 */
export * as MemoryJobStore from "./MemoryJobStore.js"

/**
 * The job runner: claims jobs from a `JobStore` and runs them as tasks of a `WorkerContext`.
 *
 * @since 0.2.0
 */
export * as JobWorker from "./JobWorker.js"

/**
 * A test kit for jobs: a recording store, `drain`, `runJob`, `assertEnqueued`.
 *
 * @since 0.6.0
 */
export * as JobTest from "./JobTest.js"
