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
