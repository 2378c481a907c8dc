/**
 * The dashboard page, `GET /dashboard`, and its script and style: static files with no data in them, built from
 * `src/dashboard/` into the package (no CDN, no file system access), served with a strict Content-Security-Policy.
 * The page reads `GET events` and calls the control routes, all by relative URLs, so it works under any prefix.
 *
 * @since 0.4.0
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as DashboardAssets from "./internal/dashboardAssets.js"
import { routerPath } from "./WorkerHttpError.js"
import { checkHost } from "./WorkerHttpGuard.js"

/**
 * The page's policy: nothing from another origin, and no inline script or style, so that text the page shows can
 * never run. `frame-ancestors 'none'` keeps it out of frames (its buttons stop a worker), `base-uri 'none'` keeps
 * its relative URLs where they are, `form-action 'none'` sends its token form nowhere.
 */
const contentSecurityPolicy =
  "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const assetResponse = (body: string, contentType: string, cacheControl: string) =>
  HttpServerResponse.text(body, {
    contentType,
    headers: {
      "cache-control": cacheControl,
      "content-security-policy": contentSecurityPolicy,
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer"
    }
  })

const page = assetResponse(DashboardAssets.html, "text/html; charset=utf-8", "no-store")

/**
 * The dashboard's routes, each handler passed through `protect` (a guard, or nothing).
 *
 * @internal
 */
export const routes = <RG>(protect: <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E, R | RG>) =>
  HttpRouter.empty.pipe(
    // The router matches `/dashboard/` here too, but relative URLs resolve against it differently (`events` would
    // be `/dashboard/events`): send the browser to `../dashboard`, relatively, so it works under any mount prefix.
    HttpRouter.get(
      "/dashboard",
      protect(Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
        routerPath(request.url).endsWith("/")
          ? HttpServerResponse.empty({
            status: 301,
            headers: { location: "../dashboard", "cache-control": "no-store" }
          })
          : page))
    ),
    HttpRouter.get(
      "/dashboard/app.js",
      protect(Effect.succeed(assetResponse(DashboardAssets.js, "text/javascript; charset=utf-8", "no-cache")))
    ),
    HttpRouter.get(
      "/dashboard/app.css",
      protect(Effect.succeed(assetResponse(DashboardAssets.css, "text/css; charset=utf-8", "no-cache")))
    )
  )

/**
 * The dashboard's routes alone, unguarded (they serve files with no data), with the host check: `GET /dashboard`,
 * `/dashboard/app.js`, `/dashboard/app.css`, and `/dashboard/` redirected to `../dashboard`. `WorkerHttp.routes`
 * includes them; this is for a router of your own that serves `GET events` and the control routes next to them.
 *
 * @example
 * ```ts
 * import { HttpRouter } from "@effect/platform"
 * import * as WorkerHttpDashboard from "effect-worker-context/WorkerHttpDashboard"
 *
 * const pages = HttpRouter.mount(HttpRouter.empty, "/ops", WorkerHttpDashboard.router)
 * ```
 *
 * @since 0.4.0
 * @category routes
 */
export const router: HttpRouter.HttpRouter = routes<never>((app) => app).pipe(HttpRouter.use(checkHost))
