/**
 * The operator's own browser as the attacker, in Debian's Chromium against `examples/demo.ts`: a page on another
 * site (served by this test on another port, under a host name that Chromium maps to 127.0.0.1) tries what any web
 * page can do without CORS: a `no-cors` fetch, a top-level auto-submitting form, a `text/plain` form that smuggles
 * JSON; and a host name rebound to 127.0.0.1 tries to read the worker as its own origin. Each must leave the worker
 * as it was. The attacker's host names resolve to 127.0.0.1, so Chromium's private network checks, which would
 * block some of this for a public site, never help: the server alone must refuse.
 *
 * Every wait is on the browser's own events (a navigation done, a fetch settled) or the demo's log, never a sleep.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import type * as Net from "node:net"
import type { Page } from "playwright-core"
import { launchBrowser, openPage, promise, requireChromium, spawnDemo, START_TIMEOUT } from "./browserSupport.js"

const TOKEN = "security-test-token"
const TEST_TIMEOUT = 120_000

/** Chromium resolves these to 127.0.0.1: `attacker.test` is another site, `rebound.test` a rebound name. */
const RESOLVER = "--host-resolver-rules=MAP attacker.test 127.0.0.1,MAP rebound.test 127.0.0.1"

/** The attacker's pages, by path, each aimed at `target` (`http://127.0.0.1:PORT`). */
const attackerPages = (target: string): Record<string, string> => ({
  "/no-cors-pause": `<!doctype html><title>wait</title><script>
    fetch(${JSON.stringify(`${target}/worker/pause`)}, { method: "POST", mode: "no-cors" })
      .then(() => { document.title = "sent" }, (e) => { document.title = "failed: " + e })
  </script>`,
  "/form-stop": `<!doctype html><form method="POST" action="${target}/worker/stop"></form>
    <script>document.forms[0].submit()</script>`,
  "/form-redrive": `<!doctype html><form method="POST" action="${target}/jobs/dead/1/redrive"></form>
    <script>document.forms[0].submit()</script>`,
  // The text/plain trick: the body is `name=value`, here `{"type":...,"pad":"="}`, valid JSON.
  "/form-enqueue": `<!doctype html><form method="POST" enctype="text/plain" action="${target}/jobs">
    <input name='{"type":"send-email","payload":{"to":"csrf@example.com"},"pad":"' value='"}'></form>
    <script>document.forms[0].submit()</script>`
})

/** The attacker's site: a server on a free loopback port serving `pages`, until the scope closes. */
const attackerSite = (pages: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly server: Http.Server }>((resume) => {
      const server = Http.createServer((request, response) => {
        const page = pages[request.url ?? ""]
        response.writeHead(page === undefined ? 404 : 200, { "content-type": "text/html; charset=utf-8" })
        response.end(page ?? "not here")
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({ port: (server.address() as Net.AddressInfo).port, server })))
    }),
    ({ server }) =>
      Effect.sync(() =>
        server.close()
      )
  )

/** A JSON GET from Node (not the browser), with the token when given. */
const get = (base: string, path: string, token?: string) =>
  promise(async () => {
    const response = await fetch(new URL(path, base), {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` }
    })
    return { status: response.status, body: await response.json() as any }
  })

/** Opens `url` as a top-level page and returns the text the browser ends up showing (after any form's navigation). */
const landOn = (page: Page, url: string, landing: RegExp) =>
  promise(async () => {
    await Promise.all([page.waitForURL(landing, { timeout: START_TIMEOUT }), page.goto(url)])
    await page.waitForLoadState("load")
    return String(await page.evaluate("document.body.innerText"))
  })

requireChromium()

describe("the HTTP surface against the operator's own browser, in Chromium", () => {
  it.scopedLive(
    "a page on another site can neither pause, stop, redrive nor enqueue on an unguarded demo",
    () =>
      Effect.gen(function*() {
        const demo = yield* spawnDemo({ DEMO_JOB_MS: "200" })
        const [, base] = yield* demo.waitFor(/listening on (http:\/\/[^ ]+) \(pid/)
        const target = base!
        const port = new URL(target).port
        const attacker = yield* attackerSite(attackerPages(target))
        const site = `http://attacker.test:${attacker.port}`
        const { context } = yield* launchBrowser([RESOLVER])
        const { page } = yield* openPage(context)

        assert.strictEqual((yield* get(target, "/worker")).body.state, "Running")

        // A no-cors fetch: the browser sends it and hides the answer; the worker must not have moved.
        yield* promise(() => page.goto(`${site}/no-cors-pause`))
        yield* promise(() => page.waitForFunction("document.title !== 'wait'", undefined, { timeout: START_TIMEOUT }))
        assert.strictEqual((yield* get(target, "/worker")).body.state, "Running", "a no-cors fetch paused the worker")

        // Top-level forms: the browser shows what the server answered.
        const stop = yield* landOn(page, `${site}/form-stop`, new RegExp(`:${port}/worker/stop$`))
        assert.include(stop, "Forbidden", stop)
        const redrive = yield* landOn(page, `${site}/form-redrive`, new RegExp(`:${port}/jobs/dead/1/redrive$`))
        assert.include(redrive, "Forbidden", redrive)
        const enqueue = yield* landOn(page, `${site}/form-enqueue`, new RegExp(`:${port}/jobs$`))
        assert.match(enqueue, /Forbidden|UnsupportedMediaType/, enqueue)
        assert.notMatch(enqueue, /"id"/, "the form enqueued a job")
        assert.strictEqual((yield* get(target, "/worker")).body.state, "Running", "a form stopped the worker")
        assert.isFalse(demo.output().includes("Stopping:"), "the worker began to stop")

        // DNS rebinding: the page's own origin, to the browser, but not a host the demo answers for.
        const rebound = `http://rebound.test:${port}`
        for (const path of ["/dashboard", "/jobs/dead", "/worker"]) {
          const shown = yield* landOn(page, `${rebound}${path}`, new RegExp(`rebound\\.test:${port}${path}$`))
          assert.include(shown, "MisdirectedRequest", `${path}: ${shown}`)
        }
        const paused = yield* promise(() =>
          page.evaluate("fetch('/worker/pause', { method: 'POST' }).then((r) => r.status)")
        )
        assert.strictEqual(paused, 421)
        assert.strictEqual((yield* get(target, "/worker")).body.state, "Running", "the rebound page paused the worker")
        // The operator's own page still works: same origin, a loopback name.
        const own = yield* landOn(page, `${target}/dashboard`, /\/dashboard$/)
        assert.include(own, "dashboard")
      }),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "a text/plain form cannot enqueue a job on a demo with DASHBOARD_TOKEN",
    () =>
      Effect.gen(function*() {
        const demo = yield* spawnDemo({ DEMO_JOB_MS: "200", DASHBOARD_TOKEN: TOKEN })
        const [, base] = yield* demo.waitFor(/listening on (http:\/\/[^ ]+) \(pid/)
        const target = base!
        const port = new URL(target).port
        const attacker = yield* attackerSite(attackerPages(target))
        const { context } = yield* launchBrowser([RESOLVER])
        const { page } = yield* openPage(context)
        const enqueue = yield* landOn(
          page,
          `http://attacker.test:${attacker.port}/form-enqueue`,
          new RegExp(`:${port}/jobs$`)
        )
        assert.match(enqueue, /Forbidden|UnsupportedMediaType|Unauthorized/, enqueue)
        assert.notMatch(enqueue, /"id"/, "the form enqueued a job")
      }),
    TEST_TIMEOUT
  )
})
