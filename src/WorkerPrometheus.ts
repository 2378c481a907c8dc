/**
 * `GET /metrics`: every Effect metric of the process in the Prometheus text format. The only module of this
 * package that needs OpenTelemetry (`@effect/opentelemetry`, `@opentelemetry/exporter-prometheus`,
 * `@opentelemetry/sdk-metrics`, `@opentelemetry/resources`, `@opentelemetry/api`): serving the probes and the
 * control routes does not.
 *
 * @since 0.4.0
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import * as Effect from "effect/Effect"
import { checkHost } from "./WorkerHttpGuard.js"

const serializer = new PrometheusSerializer(undefined, false, undefined, true, true)

/**
 * Every Effect metric of the process (the workers' among them, see `WorkerMetrics`) in the Prometheus text
 * exposition format, produced by OpenTelemetry's Prometheus serializer from `@effect/opentelemetry`'s metric
 * producer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as WorkerPrometheus from "effect-worker-context/WorkerPrometheus"
 *
 * const dump = WorkerPrometheus.prometheusMetrics.pipe(Effect.tap((text) => Effect.log(text)))
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const prometheusMetrics: Effect.Effect<string> = Effect.gen(function*() {
  const producer = yield* Effect.provide(Metrics.makeProducer, Resource.layerEmpty)
  const { errors, resourceMetrics } = yield* Effect.promise(() => producer.collect())
  if (errors.length > 0) yield* Effect.logWarning("some metrics could not be collected", errors)
  return serializer.serialize(resourceMetrics)
})

/**
 * `GET /metrics`: 200 {@link prometheusMetrics} as `text/plain; version=0.0.4`. Unguarded, like a scrape target;
 * it makes the host check of every route of this package (`WorkerHttpGuard.checkHost`). Mount it next to
 * `WorkerHttp.routes` or `WorkerHttp.router`.
 *
 * @example
 * ```ts
 * import { HttpRouter } from "@effect/platform"
 * import * as WorkerHttp from "effect-worker-context/WorkerHttp"
 * import * as WorkerPrometheus from "effect-worker-context/WorkerPrometheus"
 *
 * const app = WorkerHttp.toApp(HttpRouter.concat(WorkerHttp.router, WorkerPrometheus.router))
 * ```
 *
 * @since 0.4.0
 * @category routes
 */
export const router: HttpRouter.HttpRouter = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/metrics",
    Effect.map(
      prometheusMetrics,
      (text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
    )
  ),
  HttpRouter.use(checkHost)
)
