/**
 * The dashboard page in a real browser: Debian's Chromium, driven by `playwright-core`, against `examples/demo.ts`
 * run as a child process on a free port with a `DASHBOARD_TOKEN`. It checks what an operator sees and does: the
 * state in words, Pause and Resume (and readiness with them), a job enqueued over HTTP showing in the queue table
 * and the event feed, a queue paused and resumed from its row, a dead letter redriven from the page, the page at 375 px, the token form, and a confirmed
 * Stop through `Stopping` and `Stopped` to the page saying the server is gone. Three check the job browser against
 * the demo: a running job found by id, its detail, cancelled after the page's confirm step (interrupted, gone from
 * the running view), a route's refusal shown with its message, keyset pages; 1,000,000 jobs in PostgreSQL (counts,
 * pages and a job found by id, each within the page's usual 5 s); and the dead jobs of a filter redriven at once,
 * with the page at 375 px and a job open. Two more run a worker in this process:
 * one at some 10,000 events a second (the feed stays at 200 rows and counts what it skipped, a button still
 * answers), one behind a TCP proxy that cuts the connection (the page says so, reconnects with `Last-Event-ID`, and
 * the replay brings what happened meanwhile).
 *
 * Each step leaves a screenshot in `test-output/dashboard/`. `docs/dashboard.png`, the picture in the README, is
 * the "dead letter" step's: written when it is missing or with `UPDATE_SCREENSHOTS=1`, so that a plain `npm test`
 * leaves the work tree clean.
 *
 * Everything waits with Playwright's locators and explicit timeouts, never a fixed sleep. Chromium runs headless
 * with a fresh profile (removed afterwards) and with its background networking off: this machine's network
 * refuses those connections.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { existsSync, mkdirSync } from "node:fs"
import { createServer } from "node:http"
import * as Net from "node:net"
import { join } from "node:path"
import Pg from "pg"
import type { Locator, Page } from "playwright-core"
import { WorkerContext } from "../src/index.js"
import * as WorkerHttp from "../src/WorkerHttp.js"
import { launchBrowser, openPage, promise, requireChromium, root, spawnDemo, START_TIMEOUT } from "./browserSupport.js"
import { startPgServer } from "./pgServer.js"

/** What the functions this file runs in the page use of it (the project compiles without the DOM's types). */
interface PageElement {
  readonly textContent: string | null
  readonly scrollWidth: number
  readonly clientWidth: number
  readonly parentElement: PageElement | null
  getAttribute(name: string): string | null
}
declare const document: {
  readonly documentElement: PageElement
  readonly activeElement: PageElement | null
  querySelector(selector: string): PageElement | null
}
declare const location: { readonly hash: string }

const OUTPUT = join(root, "test-output", "dashboard")
const DOCS_SCREENSHOT = join(root, "docs", "dashboard.png")
const TOKEN = "dashboard-test-token"

/** A change the page shows from the event stream: well past the second a `stats` message takes. */
const SHOWN_WITHIN = 5_000
const TEST_TIMEOUT = 180_000

/** Waits until `locator` has a match whose text matches `text`, then returns that text. */
const shows = (locator: Locator, text: string | RegExp, timeout = SHOWN_WITHIN) =>
  promise(async () => {
    const match = locator.filter({ hasText: text }).first()
    await match.waitFor({ state: "visible", timeout })
    return (await match.textContent()) ?? ""
  })

const screenshot = (page: Page, name: string) =>
  promise(() => page.screenshot({ path: join(OUTPUT, `${name}.png`), fullPage: true }))

interface Answer {
  readonly status: number
  readonly body: any
}

const http = (base: string, method: string, path: string, body?: unknown, token?: string) =>
  promise(async (): Promise<Answer> => {
    const response = await fetch(new URL(path, base), {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await response.text()
    return { status: response.status, body: text === "" ? null : JSON.parse(text) }
  })

const cellNumber = (page: Page, queue: string, column: string) =>
  promise(async () =>
    Number(
      ((await page.locator(`#queues tr[data-queue="${queue}"] td[data-col="${column}"]`).textContent()) ?? "")
        .replace(/\D/g, "")
    )
  )

/** `WorkerHttp.routes` of `ctx`, unguarded, on a free loopback port in this process, until the scope closes. */
const serveWorker = (ctx: WorkerContext.Service) =>
  Effect.map(
    Layer.build(
      WorkerHttp.serve(WorkerHttp.toApp(WorkerHttp.routes({ guard: WorkerHttp.unguarded }))).pipe(
        Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
        Layer.provide(Layer.succeed(WorkerContext, ctx))
      )
    ),
    (context) => {
      const address = Context.get(context, HttpServer.HttpServer).address
      assert(address._tag === "TcpAddress")
      return `http://127.0.0.1:${address.port}`
    }
  )

/**
 * A TCP proxy to `port` on a free loopback port: `cut` drops every connection through it and refuses new ones
 * until `restore`, as a network that goes away and comes back would.
 */
const tcpProxy = (port: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly cut: () => void; readonly restore: () => void; close: () => void }>(
      (resume) => {
        const sockets = new Set<Net.Socket>()
        let refusing = false
        const server = Net.createServer((client) => {
          if (refusing) return void client.destroy()
          const upstream = Net.connect(port, "127.0.0.1")
          for (const [socket, other] of [[client, upstream], [upstream, client]] as const) {
            sockets.add(socket)
            socket.on("error", () => socket.destroy())
            socket.on("close", () => {
              sockets.delete(socket)
              other.destroy()
            })
            socket.pipe(other)
          }
        })
        const cut = () => {
          refusing = true
          for (const socket of sockets) socket.destroy()
        }
        server.listen(0, "127.0.0.1", () =>
          resume(Effect.succeed({
            port: (server.address() as Net.AddressInfo).port,
            cut,
            restore: () => {
              refusing = false
            },
            close: () => {
              cut()
              server.close()
            }
          })))
      }
    ),
    (proxy) => Effect.sync(() => proxy.close())
  )

requireChromium()

describe("the dashboard page, in Chromium", () => {
  it.scopedLive(
    "against the demo, shows the worker live, and its buttons pause, resume, redrive and stop it, step by step",
    () =>
      Effect.gen(function*() {
        mkdirSync(OUTPUT, { recursive: true })
        const demo = yield* spawnDemo({ DEMO_JOB_MS: "1500", SHUTDOWN_TIMEOUT: "10", DASHBOARD_TOKEN: TOKEN })
        const [, base] = yield* demo.waitFor(/listening on (http:\/\/\S+)/)
        const { context } = yield* launchBrowser()
        const { errors, page } = yield* openPage(context)
        const state = page.locator("#state")

        // The token comes in the fragment, which the page keeps in session storage and takes out of the address.
        yield* promise(() => page.goto(`${base}/dashboard#token=${TOKEN}`))
        yield* shows(state, /^Running$/, START_TIMEOUT)
        yield* shows(page.locator("#connection"), /^Live$/)
        assert.strictEqual(yield* promise(() => page.evaluate(() => location.hash)), "")
        yield* shows(page.locator("#worker-name"), /^demo$/)
        yield* shows(page.locator("#diagram li.current[aria-current=\"step\"]"), /^Running$/)
        yield* shows(page.locator("#readiness"), /^Ready$/)
        yield* shows(page.locator("#in-flight"), /^[1-9]\d* jobs?$/)
        yield* shows(page.locator("#rate-done"), /^[\d.,]+ jobs?\/s$/)
        yield* shows(page.locator("#feed li"), /job \d+ \S+ claimed \(\w+, attempt \d+\)/)
        yield* screenshot(page, "01-running")

        // By keyboard: the focus stays on the control once it acted (it is aria-disabled, not disabled).
        yield* promise(() => page.getByRole("button", { name: "Pause", exact: true }).focus())
        yield* promise(() => page.keyboard.press("Enter"))
        yield* shows(state, /^Paused$/)
        yield* shows(page.locator("#control-status"), "Pause: the worker is Paused.")
        assert.strictEqual(
          yield* promise(() => page.evaluate("document.activeElement && document.activeElement.id")),
          "pause"
        )
        yield* shows(page.locator("#feed li"), /Paused: tasks in flight go on/)
        assert.strictEqual((yield* http(base!, "GET", "/health/ready")).status, 503)
        assert.isTrue(yield* promise(() => page.getByRole("button", { name: "Pause", exact: true }).isDisabled()))
        yield* screenshot(page, "02-paused")

        yield* promise(() => page.getByRole("button", { name: "Resume" }).click())
        yield* shows(state, /^Running$/)
        assert.strictEqual((yield* http(base!, "GET", "/health/ready")).status, 200)
        yield* screenshot(page, "03-resumed")

        // Ten jobs a minute away: the retries the demo schedules by itself are never that many at once.
        for (let i = 0; i < 10; i++) {
          const queued = yield* http(base!, "POST", "/jobs", {
            type: "send-email",
            payload: { to: `later${i}@example.com` },
            delay: 600_000
          }, TOKEN)
          assert.strictEqual(queued.status, 202)
        }
        yield* promise(() =>
          page.waitForFunction(
            () =>
              Number(
                document.querySelector("#queues tr[data-queue=\"emails\"] td[data-col=\"scheduled\"]")?.textContent
              ) >= 10,
            null,
            { timeout: SHOWN_WITHIN }
          )
        )
        assert.isAtLeast(yield* cellNumber(page, "emails", "scheduled"), 10)
        yield* screenshot(page, "04-enqueued")

        // A queue paused from its row, by keyboard: no worker of the store claims from it until it is resumed.
        yield* promise(() => page.getByRole("button", { name: "Pause queue emails" }).focus())
        yield* promise(() => page.keyboard.press("Enter"))
        yield* shows(page.locator("#queues-status"), "Queue emails paused: no worker claims from it")
        yield* shows(page.locator("#queues tr[data-queue=\"emails\"] th"), /paused/)
        assert.deepStrictEqual((yield* http(base!, "GET", "/jobs/stats")).body.pausedQueues, ["emails"])
        // The table is made anew with each change; the focus stays on the row's button, now Resume.
        yield* promise(() =>
          page.waitForFunction(
            () => document.activeElement?.getAttribute("aria-label") === "Resume queue emails",
            null,
            { timeout: SHOWN_WITHIN }
          )
        )
        yield* screenshot(page, "04b-queue-paused")
        // The table at its widest (a paused badge, a Resume button) shows whole, Claims column included, on a
        // laptop's screen and a tablet's: it takes two columns of the grid, and scrolls sideways only below that.
        for (const width of [768, 1280]) {
          yield* promise(() => page.setViewportSize({ width, height: 900 }))
          const hidden = yield* promise(() =>
            page.evaluate(() => {
              const wrap = document.querySelector("#queues")!.parentElement!
              return wrap.scrollWidth - wrap.clientWidth
            })
          )
          assert.strictEqual(hidden, 0, `the queue table scrolls sideways at ${width} px`)
        }
        yield* promise(() => page.getByRole("button", { name: "Resume queue emails" }).click())
        yield* shows(page.locator("#queues-status"), "Queue emails resumed")
        assert.deepStrictEqual((yield* http(base!, "GET", "/jobs/stats")).body.pausedQueues, [])

        // An address the demo's handler fails with Job.Fatal: claimed first (priority -1), dead at its first attempt.
        const queued = yield* http(base!, "POST", "/jobs", {
          type: "send-email",
          payload: { to: "nobody@example.invalid" },
          priority: -1
        }, TOKEN)
        assert.strictEqual(queued.status, 202)
        const id: string = queued.body.id
        const claims = page.locator("#feed li", { hasText: `job ${id} send-email claimed (emails, attempt 1)` })
        yield* shows(claims, /claimed/)
        yield* shows(page.locator("#feed li"), `job ${id} send-email dead after attempt 1: nobody@example.invalid`)
        const deadItem = page.locator(`#dead-list li[data-id="${id}"]`)
        yield* shows(deadItem, "the .invalid domain never delivers")
        yield* shows(deadItem, "emails · 1 attempt")
        yield* promise(() =>
          page.waitForFunction(
            () => Number(document.querySelector("#queues tfoot td[data-col='dead']")?.textContent) >= 1,
            null,
            {
              timeout: SHOWN_WITHIN
            }
          )
        )
        yield* screenshot(page, "05-dead-letter")
        // Redriven: ready again, claimed again at attempt 1 (attempts reset), and dead again (its address).
        yield* promise(() => page.getByRole("button", { name: `Redrive job ${id} (send-email)` }).click())
        yield* shows(page.locator("#dead-status"), `Job ${id} (send-email) redriven: it is ready again`)
        yield* promise(() => claims.nth(1).waitFor({ timeout: SHOWN_WITHIN }))
        assert.strictEqual(yield* promise(() => claims.count()), 2)
        yield* screenshot(page, "06-redriven")
        if (!existsSync(DOCS_SCREENSHOT) || process.env.UPDATE_SCREENSHOTS === "1") {
          // For the README: the dead letter (dead again), and a chart with three quarters of a minute of stats.
          yield* promise(() =>
            page.waitForFunction(
              () => (document.querySelector("#line-done")?.getAttribute("points") ?? "").split(" ").length >= 45,
              null,
              { timeout: 90_000 }
            )
          )
          yield* promise(() => page.screenshot({ path: DOCS_SCREENSHOT }))
        }

        // 375 px wide: one column, nothing wider than the screen.
        yield* promise(() => page.setViewportSize({ width: 375, height: 812 }))
        yield* shows(state, /^Running$/)
        const overflow = yield* promise(() =>
          page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
        )
        assert.strictEqual(overflow, 0, "the page scrolls sideways at 375 px")
        yield* screenshot(page, "07-narrow")
        yield* promise(() => page.setViewportSize({ width: 1280, height: 900 }))

        // A second tab has no token (session storage is per tab): the page asks for it, refuses a wrong one.
        const second = yield* openPage(context)
        yield* promise(() => second.page.goto(`${base}/dashboard`))
        yield* shows(second.page.locator("#connection"), /^Needs a token$/)
        // Until a stats message says otherwise, the page does not claim the worker has no store.
        assert.notInclude(yield* promise(() => second.page.locator("#queues-note").innerText()), "no job store")
        yield* promise(() => second.page.getByLabel("Token").fill("not-the-token"))
        yield* promise(() => second.page.getByRole("button", { name: "Connect" }).click())
        yield* shows(second.page.locator("#auth-message"), "the bearer token is not valid")
        yield* promise(() => second.page.getByLabel("Token").fill(TOKEN))
        yield* promise(() => second.page.getByRole("button", { name: "Connect" }).click())
        yield* shows(second.page.locator("#state"), /^Running$/)
        yield* screenshot(second.page, "08-token-form")
        // A token added to the address of an open page is taken without a reload.
        const third = yield* openPage(context)
        yield* promise(() => third.page.goto(`${base}/dashboard`))
        yield* shows(third.page.locator("#connection"), /^Needs a token$/)
        yield* promise(() => third.page.evaluate(`location.hash = "#token=${TOKEN}"`))
        yield* shows(third.page.locator("#connection"), /^Live$/)
        yield* shows(third.page.locator("#state"), /^Running$/)
        assert.strictEqual(yield* promise(() => third.page.evaluate(() => location.hash)), "")
        yield* promise(() => third.page.close())
        // The only errors there: the browser's own lines for the two 401s.
        assert.deepStrictEqual(second.errors.filter((e) => !/status of 401/.test(e)), [], second.errors.join("\n"))
        yield* promise(() => second.page.close())

        assert.deepStrictEqual(errors, [], "console errors while the worker ran")

        // Stop asks first: dismissed, nothing happens.
        const asked: Array<string> = []
        page.once("dialog", (dialog) => {
          asked.push(dialog.message())
          void dialog.dismiss()
        })
        yield* promise(() => page.getByRole("button", { name: "Stop" }).click())
        assert.match(asked[0] ?? "", /^Stop the worker\?/)
        assert.strictEqual((yield* http(base!, "GET", "/worker")).body.state, "Running")
        yield* shows(state, /^Running$/)

        // Jobs in flight, so that Stopping lasts while they drain.
        yield* shows(page.locator("#in-flight"), /^[1-9]\d* jobs?$/)
        page.once("dialog", (dialog) => void dialog.accept())
        yield* promise(() => page.getByRole("button", { name: "Stop" }).click())
        yield* shows(state, /^Stopping$/)
        yield* screenshot(page, "09-stopping")
        yield* shows(state, /^Stopped$/, 20_000)
        yield* shows(page.locator("#feed li"), /Stopped: \d+ tasks? interrupted/)
        yield* shows(page.locator("#connection"), "Worker stopped — the server is gone", 20_000)
        assert.strictEqual(yield* demo.exitCode, 0, demo.output())
        yield* shows(page.locator("#diagram li.current[aria-current=\"step\"]"), /^Stopped$/)
        assert.isTrue(yield* promise(() => page.getByRole("button", { name: "Stop" }).isDisabled()))
        // What Stop said is gone once the worker stopped, and the queue counts say they are as of then.
        assert.strictEqual(yield* promise(() => page.locator("#control-status").innerText()), "")
        yield* shows(page.locator("#queues-note"), /^As of .*the worker stopped/)
        yield* screenshot(page, "10-gone")
        // Once the server is gone, the browser logs the refused connection of the page's last probe (or a reset one,
        // or a socket found closed, when the probe was on its way as the process exited); nothing else.
        assert.deepStrictEqual(
          errors.filter((e) => !/ERR_CONNECTION_(REFUSED|RESET)|ERR_SOCKET_NOT_CONNECTED/.test(e)),
          []
        )
      }),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "the job browser finds a running job by id, shows its detail, and cancels it: interrupted, out of the running view",
    () =>
      Effect.gen(function*() {
        mkdirSync(OUTPUT, { recursive: true })
        // Jobs that take ten minutes: the four the worker claims stay running for the whole test.
        const demo = yield* spawnDemo({ DEMO_JOB_MS: "600000", SHUTDOWN_TIMEOUT: "1", DASHBOARD_TOKEN: TOKEN })
        const [, base] = yield* demo.waitFor(/listening on (http:\/\/\S+)/)
        const { context } = yield* launchBrowser()
        const { errors, page } = yield* openPage(context)
        yield* promise(() => page.goto(`${base}/dashboard#token=${TOKEN}`))
        yield* shows(page.locator("#state"), /^Running$/, START_TIMEOUT)

        // The running view: every leased job under its worker, with how long it has run.
        yield* shows(page.locator("#running-note"), /^[1-9]\d* jobs? on 1 worker/, 10_000)
        const leased = yield* http(base!, "GET", "/jobs?state=leased", undefined, TOKEN)
        assert.strictEqual(leased.status, 200)
        const job = leased.body.jobs[0]
        assert.isString(job.worker)
        const runningItem = page.locator(`#running .worker-group li[data-id="${job.id}"]`)
        // How long it has run, from its startedAt (a store that does not record it: the page says it does not know).
        yield* shows(runningItem, job.startedAt === undefined ? /start unknown/ : /running \d+ s/)
        yield* shows(page.locator(`#running .worker-group[data-worker="${job.worker}"] h3`), /jobs?$/)

        // Found by id: the detail says who holds it and until when, and shows the payload as JSON.
        yield* promise(() => page.getByLabel("Id or key").fill(job.id))
        yield* promise(() => page.getByRole("button", { name: "Find", exact: true }).click())
        const heading = page.locator("#detail-heading")
        yield* shows(heading, `Job #${job.id} · ${job.name}`)
        assert.strictEqual(
          yield* promise(() => page.evaluate("document.activeElement && document.activeElement.id")),
          "detail-heading",
          "the keyboard's focus moves to the detail it opened"
        )
        yield* shows(page.locator("#detail-state"), /^leased$/)
        yield* shows(page.locator("#detail-fields [data-field=\"Worker\"] dd"), job.worker)
        yield* shows(page.locator("#detail-fields [data-field=\"Lease until\"] dd"), /\(in \d+ s\)$/)
        yield* shows(page.locator("#detail-errors li"), new RegExp(`^Attempt 1 running on ${job.worker}`))
        const payload = yield* promise(() => page.locator("#detail-payload").textContent())
        assert.deepStrictEqual(JSON.parse(payload ?? ""), job.payload)
        // Redrive and Delete are for ended jobs only; Run now for scheduled ones.
        assert.strictEqual(yield* promise(() => page.locator("#job-redrive").getAttribute("aria-disabled")), "true")
        assert.strictEqual(yield* promise(() => page.locator("#job-run").getAttribute("aria-disabled")), "true")
        yield* screenshot(page, "12-job-detail")

        // Cancel asks in the page first: Back leaves the job running and the focus on Cancel.
        yield* promise(() => page.locator("#job-cancel").click())
        yield* shows(page.locator("#job-confirm"), `Cancel job ${job.id} (${job.name})? Its handler is interrupted now`)
        yield* promise(() => page.locator("#job-confirm").getByRole("button", { name: "Back" }).click())
        assert.isTrue(yield* promise(() => page.locator("#job-confirm").isHidden()))
        assert.strictEqual(
          yield* promise(() => page.evaluate("document.activeElement && document.activeElement.id")),
          "job-cancel"
        )
        assert.strictEqual((yield* http(base!, "GET", `/jobs/${job.id}`, undefined, TOKEN)).body.state, "leased")

        yield* promise(() => page.locator("#job-cancel").click())
        yield* promise(() => page.getByRole("button", { name: `Cancel job ${job.id}`, exact: true }).click())
        yield* shows(page.locator("#detail-status"), `Job ${job.id} cancelled.`)
        yield* shows(page.locator("#detail-state"), /^cancelled$/)
        yield* shows(page.locator("#detail-fields [data-field=\"Last error\"] dd"), "cancelled")
        // Interrupted on its worker (the event says so), and gone from the running view.
        yield* shows(page.locator("#feed li"), `job ${job.id} ${job.name} cancelled: its handler was interrupted`)
        yield* promise(() => runningItem.waitFor({ state: "detached", timeout: SHOWN_WITHIN }))
        assert.strictEqual((yield* http(base!, "GET", `/jobs/${job.id}`, undefined, TOKEN)).body.state, "cancelled")
        yield* screenshot(page, "13-job-cancelled")

        // A route's refusal is shown with its message: the job is redriven behind the page's back, then from it.
        assert.strictEqual(
          (yield* http(base!, "POST", `/jobs/dead/${job.id}/redrive`, undefined, TOKEN)).body.redriven,
          1
        )
        yield* promise(() => page.locator("#job-redrive").click())
        yield* promise(() => page.getByRole("button", { name: `Redrive job ${job.id}`, exact: true }).click())
        yield* shows(
          page.locator("#detail-status.error"),
          new RegExp(`^Redrive of job ${job.id} failed \\(404\\): job "${job.id}" is \\w+: only a dead or cancelled`)
        )
        // And the detail, asked again after the answer, shows the job as it is now.
        yield* shows(page.locator("#detail-state"), /^(ready|leased)$/)

        // Pages: sixty jobs scheduled an hour away, fifty a page, the second page after the first's last job.
        for (let i = 0; i < 60; i++) {
          const queued = yield* http(base!, "POST", "/jobs", {
            type: "resize-image",
            payload: { width: 100 + i, height: 100 },
            delay: 3_600_000
          }, TOKEN)
          assert.strictEqual(queued.status, 202)
        }
        yield* promise(() => page.locator("#filter-state").selectOption("scheduled"))
        yield* promise(() => page.locator("#filter-queue").fill("images"))
        yield* promise(() => page.getByRole("button", { name: "Show", exact: true }).click())
        yield* shows(page.locator("#jobs-page"), /^Page 1: 50 jobs$/)
        yield* shows(page.locator("#jobs-filter-text"), "Jobs with state scheduled, queue images, newest first.")
        const ids = (selector: string) =>
          promise(() => page.locator(selector).evaluateAll((rows) => rows.map((row) => row.getAttribute("data-id"))))
        const first = yield* ids("#jobs-body tr")
        yield* promise(() => page.getByRole("button", { name: "Older", exact: true }).click())
        yield* shows(page.locator("#jobs-page"), /^Page 2: \d+ jobs?$/)
        const second = yield* ids("#jobs-body tr")
        assert.isAtLeast(second.length, 10)
        assert.deepStrictEqual(second.filter((id) => first.includes(id)), [], "a page repeats no job of the one before")
        yield* promise(() => page.getByRole("button", { name: "Newer", exact: true }).click())
        yield* shows(page.locator("#jobs-page"), /^Page 1: 50 jobs$/)
        // Opened from its row: a scheduled job can be run now.
        yield* promise(() =>
          page.locator("#jobs-body").getByRole("button", { name: `Open job ${first[0]} (resize-image)` }).click()
        )
        yield* shows(heading, `Job #${first[0]} · resize-image`)
        assert.strictEqual(yield* promise(() => page.locator("#job-run").getAttribute("aria-disabled")), "false")
        yield* screenshot(page, "14-job-pages")
        assert.deepStrictEqual(errors.filter((e) => !/status of 404/.test(e)), [])
      }),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "the job browser stays usable with 1,000,000 jobs in PostgreSQL: counts, pages, a job found by id",
    () =>
      Effect.gen(function*() {
        mkdirSync(OUTPUT, { recursive: true })
        const server = yield* Effect.acquireRelease(
          promise(() => startPgServer()),
          (pg) => Effect.promise(() => pg.stop())
        )
        const demo = yield* spawnDemo({ DATABASE_URL: server.url, DASHBOARD_TOKEN: TOKEN, DEMO_JOB_MS: "50" })
        const [, base] = yield* demo.waitFor(/listening on (http:\/\/\S+)/)
        // A million jobs due tomorrow (no worker runs them), written behind the demo's back with ids after its own.
        yield* promise(async () => {
          const client = new Pg.Client({ connectionString: server.url })
          await client.connect()
          await client.query(
            `INSERT INTO effect_worker.jobs (id, seq, name, queue, payload, priority, max_attempts, run_at, enqueued_at)
             SELECT i, i, 'resize-image', 'images', json_build_object('width', i % 1000 + 1, 'height', 1)::jsonb,
                    0, 3, now() + interval '1 day', now()
             FROM generate_series(5000001, 6000000) AS i`
          )
          await client.query(`SELECT setval('effect_worker.job_ids', 6000000)`)
          await client.query(`ANALYZE effect_worker.jobs`)
          await client.end()
        })
        const { context } = yield* launchBrowser()
        const { errors, page } = yield* openPage(context)
        yield* promise(() => page.goto(`${base}/dashboard#token=${TOKEN}`))
        yield* shows(page.locator("#state"), /^Running$/, START_TIMEOUT)
        // The counts come every second, exact.
        yield* shows(page.locator(`#queues-body tr[data-queue="images"] td[data-col="scheduled"]`), /^1,000,0\d\d$/)

        // A page, and the next, each within the page's usual few seconds.
        yield* promise(() => page.locator("#filter-state").selectOption("scheduled"))
        yield* promise(() => page.locator("#filter-queue").fill("images"))
        yield* promise(() => page.getByRole("button", { name: "Show", exact: true }).click())
        yield* shows(page.locator("#jobs-page"), /^Page 1: 50 jobs$/)
        const ids = () =>
          promise(() =>
            page.locator("#jobs-body tr").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-id")))
          )
        const first = yield* ids()
        yield* promise(() => page.getByRole("button", { name: "Older", exact: true }).click())
        yield* shows(page.locator("#jobs-page"), /^Page 2: 50 jobs$/)
        const second = yield* ids()
        assert.deepStrictEqual(second.filter((id) => first.includes(id)), [], "a page repeats no job of the one before")
        assert.isTrue(
          second.every((id) => Number(id) < Math.min(...first.map(Number))),
          "the next page is older"
        )

        // One job among the million, found by id.
        yield* promise(() => page.getByLabel("Id or key").fill("5500000"))
        yield* promise(() => page.getByRole("button", { name: "Find", exact: true }).click())
        yield* shows(page.locator("#detail-heading"), "Job #5500000 · resize-image")
        yield* shows(page.locator("#detail-state"), /^scheduled$/)
        assert.strictEqual(yield* promise(() => page.locator("#job-run").getAttribute("aria-disabled")), "false")
        yield* screenshot(page, "15-million-jobs")
        assert.deepStrictEqual(errors, [])
      }),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "the job browser redrives every dead job of a filter at once, after asking, and fits a 375 px screen",
    () =>
      Effect.gen(function*() {
        mkdirSync(OUTPUT, { recursive: true })
        const demo = yield* spawnDemo({ DEMO_JOB_MS: "300", SHUTDOWN_TIMEOUT: "1", DASHBOARD_TOKEN: TOKEN })
        const [, base] = yield* demo.waitFor(/listening on (http:\/\/\S+)/)
        const { context } = yield* launchBrowser()
        const { errors, page } = yield* openPage(context)
        yield* promise(() => page.goto(`${base}/dashboard#token=${TOKEN}`))
        yield* shows(page.locator("#state"), /^Running$/, START_TIMEOUT)

        // Three emails to .invalid addresses: dead at their first attempt.
        const ids: Array<string> = []
        for (let i = 0; i < 3; i++) {
          const queued = yield* http(base!, "POST", "/jobs", {
            type: "send-email",
            payload: { to: `x${i}@y.invalid` },
            priority: -1
          }, TOKEN)
          assert.strictEqual(queued.status, 202)
          ids.push(queued.body.id)
        }
        for (const id of ids) yield* shows(page.locator(`#dead-list li[data-id="${id}"]`), "never delivers")

        yield* promise(() => page.locator("#filter-state").selectOption("dead"))
        yield* promise(() => page.locator("#filter-name").fill("send-email"))
        yield* promise(() => page.getByRole("button", { name: "Show", exact: true }).click())
        for (const id of ids) yield* shows(page.locator(`#jobs-body tr[data-id="${id}"]`), "dead")

        // Asked first, in the page: what it acts on, and Back does nothing.
        const redriveAll = page.getByRole("button", { name: "Redrive all", exact: true })
        yield* promise(() => redriveAll.click())
        yield* shows(
          page.locator("#bulk-confirm"),
          "Redrive every dead or cancelled job with name send-email, state dead? They become ready again"
        )
        yield* promise(() => page.locator("#bulk-confirm").getByRole("button", { name: "Back" }).click())
        assert.strictEqual((yield* http(base!, "GET", `/jobs/${ids[0]}`, undefined, TOKEN)).body.state, "dead")
        yield* screenshot(page, "15-dead-filter")

        yield* promise(() => redriveAll.click())
        yield* promise(() => page.getByRole("button", { name: "Yes, redrive all", exact: true }).click())
        const said = yield* shows(page.locator("#jobs-status"), /^\d+ jobs? redriven: ready again/)
        assert.isAtLeast(Number(said.replace(/\D.*$/, "")), 3)
        // Each ran again from attempt 1 (and died again: its address).
        for (const id of ids) {
          const claims = page.locator("#feed li", { hasText: `job ${id} send-email claimed (emails, attempt 1)` })
          yield* promise(() => claims.nth(1).waitFor({ timeout: SHOWN_WITHIN }))
        }
        yield* screenshot(page, "16-bulk-redriven")

        // 375 px wide, the browser and a job's detail open: nothing wider than the screen.
        yield* promise(() => page.setViewportSize({ width: 375, height: 812 }))
        yield* promise(() =>
          page.locator("#jobs-body").getByRole("button", { name: `Open job ${ids[0]} (send-email)` }).click()
        )
        yield* shows(page.locator("#detail-heading"), `Job #${ids[0]} · send-email`)
        yield* shows(page.locator("#detail-fields [data-field=\"Last error\"] dd"), "never delivers")
        const overflow = yield* promise(() =>
          page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
        )
        assert.strictEqual(overflow, 0, "the page scrolls sideways at 375 px")
        yield* screenshot(page, "17-narrow-job-browser")
        assert.deepStrictEqual(errors, [])
      }),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "keeps up with thousands of events a second: at most 200 rows, the rest counted, and the buttons still answer",
    () =>
      Effect.gen(function*() {
        mkdirSync(OUTPUT, { recursive: true })
        // In this process: a worker that runs tiny tasks as fast as it is given them, and its routes, unguarded.
        const ctx = yield* WorkerContext.make({ name: "busy", logLevel: "None" })
        const base = yield* serveWorker(ctx)
        yield* ctx.start
        // 100 tasks every 10 ms: two events each, some 20,000 events a second (as many as this machine manages).
        const burst = Effect.forEach(Array.from({ length: 100 }), () => ctx.track(Effect.void), { discard: true })
        yield* Effect.forkScoped(Effect.repeat(burst, Schedule.spaced("10 millis")))

        const { context: browser } = yield* launchBrowser()
        const { errors, page } = yield* openPage(browser)
        yield* promise(() => page.goto(`${base}/dashboard`))
        yield* shows(page.locator("#state"), /^Running$/, START_TIMEOUT)
        // Sampling shows: rows the page never drew are counted in a row of their own.
        yield* shows(page.locator("#feed li.ev-more"), /^…[\d,]+ more events not shown$/, 10_000)
        yield* shows(page.locator("#feed-count"), /[\d,]{5,} events/, 10_000)
        const rows = yield* promise(() => page.locator("#feed li").count())
        assert.isAtMost(rows, 200)
        assert.isAtLeast(rows, 100)
        yield* screenshot(page, "11-busy")

        // The page still answers its user: a click reaches the server and the new state is drawn.
        const started = Date.now()
        yield* promise(() => page.getByRole("button", { name: "Pause", exact: true }).click({ timeout: 5_000 }))
        yield* shows(page.locator("#state"), /^Paused$/)
        const took = Date.now() - started
        assert.isBelow(took, 5_000)
        assert.strictEqual(yield* ctx.state, "Paused")
        // And it holds a bounded page: the row count stays where it was while the events poured in.
        assert.isAtMost(yield* promise(() => page.locator("#feed li").count()), 200)
        assert.deepStrictEqual(errors, [])
        yield* promise(() => page.getByRole("button", { name: "Resume" }).click())
        yield* shows(page.locator("#state"), /^Running$/)
      }),
    TEST_TIMEOUT
  )

  it.scopedLive(
    "when the stream breaks, says so, reconnects with the last event's id and misses nothing",
    () =>
      Effect.gen(function*() {
        const ctx = yield* WorkerContext.make({ name: "flaky", logLevel: "None" })
        const direct = new URL(yield* serveWorker(ctx))
        const proxy = yield* tcpProxy(Number(direct.port))
        const base = `http://127.0.0.1:${proxy.port}`
        yield* ctx.start
        const { context: browser } = yield* launchBrowser()
        const { errors, page } = yield* openPage(browser)
        // Every request for the stream, with the Last-Event-ID it carried; each is let through unchanged.
        const streams: Array<string | undefined> = []
        yield* promise(() =>
          page.route("**/events", (route) => {
            streams.push(route.request().headers()["last-event-id"])
            return route.continue()
          })
        )
        yield* promise(() => page.goto(`${base}/dashboard`))
        yield* shows(page.locator("#state"), /^Running$/, START_TIMEOUT)
        yield* shows(page.locator("#connection"), /^Live$/)

        // The network goes: the stream breaks, and the page says it is retrying.
        yield* Effect.sync(() => proxy.cut())
        yield* shows(page.locator("#connection"), /^The server is gone: retrying in \d+ s$/, 10_000)
        yield* shows(page.locator("#state-detail"), "(last known: the page is not connected)")
        // Every card, not only the state's, looks as stale as it is.
        assert.isTrue(
          (yield* promise(() => page.evaluate("document.body.classList.contains('disconnected')"))) as boolean
        )
        // Meanwhile the worker pauses: the replay after the reconnection brings the event.
        yield* ctx.pause
        yield* Effect.sync(() => proxy.restore())
        yield* shows(page.locator("#connection"), /^Live$/, 15_000)
        yield* shows(page.locator("#state"), /^Paused$/)
        yield* shows(page.locator("#feed li"), /Paused: tasks in flight go on/)
        assert.isAtLeast(streams.length, 2)
        assert.isUndefined(streams[0])
        assert.match(streams.at(-1) ?? "", /^\d+$/, "the reconnection carries the last id")
        // Replayed from that id, not a new snapshot (after which the page would note "reconnected").
        assert.strictEqual(yield* promise(() => page.locator("#feed li", { hasText: "reconnected" }).count()), 0)
        // The browser's own lines for the refused connections, nothing else.
        assert.deepStrictEqual(errors.filter((e) => !/ERR_(CONNECTION|EMPTY_RESPONSE|INCOMPLETE)/.test(e)), [])
      }),
    TEST_TIMEOUT
  )
})
