// @ts-check
/**
 * The dashboard's script: plain DOM, no library, checked by TypeScript against the DOM (`src/dashboard/tsconfig.json`)
 * and turned into the served module by `scripts/build-dashboard.mjs`. The messages it reads are the server's
 * `EventMessage` schema, through its type.
 *
 * @typedef {import("../internal/eventMessage.js").EventMessage} EventMessage
 * @typedef {Extract<EventMessage, { event: "snapshot" }>["data"]} Snapshot
 * @typedef {Extract<EventMessage, { event: "worker" }>["data"]} WorkerEventJson
 * @typedef {Extract<EventMessage, { event: "stats" }>["data"]} Stats
 * @typedef {Extract<EventMessage, { event: "dropped" }>["data"]} Dropped
 */
"use strict"
;(() => {
  const FEED_ROWS = 200
  /** Seconds of stats the chart shows. */
  const CHART_SECONDS = 300
  const DEAD_LIMIT = 20
  /** Without a byte for this long, the stream is taken for dead and opened again (heartbeats come every 15 s). */
  const STALE_MS = 40000
  const TOKEN_KEY = "effect-worker-context/dashboard/token"
  const DETAIL = {
    Pending: "Not started yet: nothing runs.",
    Running: "Claiming and running tasks.",
    Paused: "Tasks in flight go on; no new ones start until it is resumed.",
    Stopping: "Shutting down: draining the tasks in flight, taking no new ones.",
    Stopped: "Stopped: nothing runs, and it cannot start again."
  }

  /**
   * An element of the page by id. The page's HTML has every id the script asks for; `any`, so that each use can
   * take the element as the kind it is (an input, a button) without a cast at every line.
   * @type {(id: string) => any}
   */
  const $ = (id) => document.getElementById(id)

  const integer = new Intl.NumberFormat()
  const oneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 })
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" })
  const count = (n) => integer.format(n)
  const perSecond = (n, one, many) => {
    const text = n >= 10 ? integer.format(Math.round(n)) : oneDecimal.format(n)
    return text + " " + (text === "1" ? one : many) + "/s"
  }
  const plural = (n, one, many) => count(n) + " " + (n === 1 ? one : many)
  const clockTime = (ms) => timeFormat.format(new Date(ms))
  /** The time alone for today, the date and time otherwise. */
  const when = (ms) => {
    const date = new Date(ms)
    return date.toDateString() === new Date().toDateString() ? date.toLocaleTimeString() : date.toLocaleString()
  }

  // --- the token ------------------------------------------------------------------------------------------------

  const storage = {
    get() {
      try {
        return sessionStorage.getItem(TOKEN_KEY)
      } catch {
        return null
      }
    },
    set(value) {
      try {
        if (value) sessionStorage.setItem(TOKEN_KEY, value)
        else sessionStorage.removeItem(TOKEN_KEY)
      } catch { /* private mode */ }
    }
  }
  /** @type {string | null} */
  let token = null
  /** The token in the address's fragment, if any, taken out of the address bar (and so not bookmarked). */
  const tokenFromFragment = () => {
    const fromFragment = new URLSearchParams(location.hash.slice(1)).get("token")
    if (fromFragment) {
      storage.set(fromFragment)
      // Out of the address bar, so it is neither bookmarked nor shown over a shoulder. It stays in the browser's
      // history, which is why the token form is the way that leaves no trace.
      history.replaceState(null, "", location.pathname + location.search)
    }
    return fromFragment
  }
  token = tokenFromFragment() || storage.get()
  const withToken = (headers) => {
    if (token) headers.authorization = "Bearer " + token
    return headers
  }

  // --- the model ------------------------------------------------------------------------------------------------

  /**
   * @type {{
   *   name: string | null, state: string | null, taskCount: number | null, inFlight: number | null,
   *   unready: Map<string, Snapshot["readiness"]["unready"][number]>,
   *   samples: Array<{ at: number, done: number, failed: number }>,
   *   statsSeen: boolean, jobs: Stats["jobs"], jobsError: string | null, jobsAt: number, lastDead: number | null,
   *   connection: string, connectionText: string, stopped: boolean
   * }}
   */
  const model = {
    name: null,
    state: null,
    taskCount: null,
    inFlight: null,
    unready: new Map(),
    samples: [],
    statsSeen: false,
    jobs: undefined,
    jobsError: null,
    jobsAt: 0,
    lastDead: null,
    connection: "connecting",
    connectionText: "Connecting…",
    stopped: false
  }
  const dirty = { state: false, figures: false, chart: false, queues: false }
  let frame = 0
  const schedule = () => {
    if (frame === 0) frame = requestAnimationFrame(render)
  }
  const touch = (part) => {
    dirty[part] = true
    schedule()
  }

  // The feed's ring: the latest items not drawn yet, one fewer than the rows, so that the row that counts the ones
  // it overwrote still fits in the list below them.
  const RING = FEED_ROWS - 1
  const ring = new Array(RING)
  let ringHead = 0
  let ringSize = 0
  let unseen = 0
  let received = 0
  let frozen = false
  const shown = { lifecycle: true, job: true, task: true }
  const category = (e) =>
    e._tag === "Custom"
      ? "job"
      : e._tag === "TaskStarted" || e._tag === "TaskFinished" || e._tag === "Idle"
      ? "task"
      : "lifecycle"
  const pushFeed = (item) => {
    if (item.event && !shown[category(item.event)]) return
    if (ringSize === RING) {
      ring[ringHead] = item
      ringHead = (ringHead + 1) % RING
      unseen++
    } else {
      ring[(ringHead + ringSize) % RING] = item
      ringSize++
    }
    if (!frozen) schedule()
  }
  const note = (text, kind) => pushFeed({ at: Date.now(), note: text, kind: kind || "note" })

  // --- messages -------------------------------------------------------------------------------------------------

  const setState = (state) => {
    if (state && state !== model.state) {
      model.state = state
      touch("state")
    }
  }

  /** @param {Snapshot} s */
  const applySnapshot = (s) => {
    const first = model.name === null
    model.name = s.name
    setState(s.state)
    model.taskCount = s.taskCount
    model.unready = new Map()
    for (const u of (s.readiness && s.readiness.unready) || []) model.unready.set(u.check, u)
    touch("state")
    touch("figures")
    if (first) note("connected to worker " + s.name + ": " + s.state)
    else if (s.gap) note("reconnected: events between the two connections were missed")
    else note("reconnected")
    if (model.lastDead !== null) refreshDeadSoon()
  }

  const LIFECYCLE = {
    Started: "Running",
    Paused: "Paused",
    Resumed: "Running",
    Stopping: "Stopping",
    Stopped: "Stopped"
  }

  /** @param {WorkerEventJson} e */
  const applyEvent = (e) => {
    received++
    const state = /** @type {Record<string, string>} */ (LIFECYCLE)[e._tag]
    if (state) setState(state)
    if (e._tag === "Stopped") model.stopped = true
    if (e._tag === "TaskStarted" && model.taskCount !== null) {
      model.taskCount++
      touch("figures")
    } else if (e._tag === "TaskFinished" && model.taskCount) {
      model.taskCount--
      touch("figures")
    } else if (e._tag === "Custom" && e.value) {
      const v = /** @type {any} */ (e.value)
      if (v._tag === "ReadinessChanged" && typeof v.check === "string") {
        if (v.ready) model.unready.delete(v.check)
        else model.unready.set(v.check, { check: v.check, reason: v.reason || "", since: new Date().toISOString() })
        touch("figures")
      } else if (v._tag === "JobDeadLettered") refreshDeadSoon()
    }
    pushFeed({ at: Date.now(), event: e })
  }

  /** @param {Stats} s */
  const applyStats = (s) => {
    setState(s.state)
    model.taskCount = s.taskCount
    // The tasks in flight but HTTP requests: the jobs, not the requests that enqueue them.
    model.inFlight = typeof s.inFlight === "number" ? s.inFlight : s.taskCount
    model.statsSeen = true
    const at = Date.parse(s.at) || Date.now()
    const seconds = (typeof s.intervalMs === "number" ? s.intervalMs : 1000) / 1000
    // A sliver of an interval (the last one, cut short by Stopped) would read as a spike: leave it out.
    if (seconds >= 0.25) {
      model.samples.push({
        at,
        done: ((s.succeeded || 0) + (s.failed || 0) + (s.interrupted || 0)) / seconds,
        failed: (s.failed || 0) / seconds
      })
      while (model.samples.length > 0 && model.samples[0].at < at - CHART_SECONDS * 1000) model.samples.shift()
    }
    // The last stats (the one Stopped sends) may come without the store's counts: keep the last ones known then.
    if (s.jobs || s.jobsError) {
      model.jobs = s.jobs
      model.jobsError = s.jobsError || null
      model.jobsAt = at
    }
    // The dead letters are asked for once the stats say there is a store, and again whenever its dead count moves.
    if (s.jobs) startBrowser()
    else if (!s.jobsError && !browser.started) {
      show(jobsNote, "This worker reports no job store.", false)
      show(runningNote, "This worker reports no job store.", false)
    }
    if (s.jobs && s.jobs.dead !== model.lastDead) {
      model.lastDead = s.jobs.dead
      refreshDeadSoon()
    }
    touch("figures")
    touch("chart")
    touch("queues")
  }

  const onMessage = (type, data) => {
    let value
    try {
      value = JSON.parse(data)
    } catch {
      note("a " + type + " message the page could not read", "bad")
      return
    }
    switch (type) {
      case "snapshot":
        applySnapshot(value)
        break
      case "worker":
        applyEvent(value)
        break
      case "stats":
        applyStats(value)
        break
      case "dropped":
        note(
          "the server dropped " + plural(value.count, "event", "events") + " for this page: it could not keep up",
          "warn"
        )
        break
      default:
        break
    }
  }

  // --- the stream -----------------------------------------------------------------------------------------------

  let lastEventId = null
  let lastByteAt = 0
  let current = null
  let running = false

  const setConnection = (kind, text) => {
    model.connection = kind
    model.connectionText = text
    touch("state")
  }

  /** Splits the text into server-sent event blocks, dispatches the complete ones, returns the rest. */
  const parse = (text) => {
    let start = 0
    let end
    while ((end = text.indexOf("\n\n", start)) >= 0) {
      const block = text.slice(start, end)
      start = end + 2
      let type = "message"
      let data = null
      for (const line of block.split("\n")) {
        if (line === "" || line[0] === ":") continue
        const colon = line.indexOf(":")
        const field = colon < 0 ? line : line.slice(0, colon)
        let value = colon < 0 ? "" : line.slice(colon + 1)
        if (value[0] === " ") value = value.slice(1)
        if (field === "id") lastEventId = value
        else if (field === "event") type = value
        else if (field === "data") data = data === null ? value : data + "\n" + value
      }
      if (data !== null) onMessage(type, data)
    }
    return text.slice(start)
  }

  /**
   * One connection: resolves with "ended" when the stream ends, "auth" when the token is refused, "status N" for
   * another answer; rejects when fetch fails (no server) or the stream breaks.
   */
  const connect = async () => {
    const controller = new AbortController()
    current = controller
    const headers = withToken({ accept: "text/event-stream" })
    if (lastEventId !== null) headers["last-event-id"] = lastEventId
    const response = await fetch("events", { headers, cache: "no-store", signal: controller.signal })
    if (response.status === 401) {
      const body = await response.json().catch(() => null)
      needToken(body && body.message)
      return "auth"
    }
    if (!response.ok || !response.body) return "status " + response.status
    lastByteAt = Date.now()
    setConnection("live", "Live")
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
    let rest = ""
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return "ended"
      lastByteAt = Date.now()
      rest = parse(rest + (value.indexOf("\r") >= 0 ? value.replace(/\r\n?/g, "\n") : value))
      attempt = 0
    }
  }

  let attempt = 0
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

  const run = async () => {
    if (running) return
    running = true
    for (;;) {
      let outcome
      try {
        outcome = await connect()
      } catch {
        outcome = "failed"
      }
      current = null
      if (model.stopped) {
        running = false
        return afterStopped()
      }
      if (outcome === "auth") {
        running = false
        return
      }
      attempt++
      const delay = Math.round(Math.min(10000, 500 * Math.pow(2, attempt - 1)) * (0.8 + Math.random() * 0.4))
      const seconds = Math.ceil(delay / 1000) + " s"
      setConnection(
        "lost",
        outcome === "failed"
          ? "The server is gone: retrying in " + seconds
          : outcome === "ended"
          ? "The stream ended: reconnecting in " + seconds
          : "The event stream answered " + outcome.slice(7) + ": retrying in " + seconds
      )
      await sleep(delay)
      setConnection("connecting", "Reconnecting…")
    }
  }

  /** After Stopped the stream ends: watch whether the server still answers, and say so. */
  const afterStopped = async () => {
    setConnection("gone", "Worker stopped — the event stream has ended")
    for (let i = 0; i < 60; i++) {
      try {
        await fetch("worker", { cache: "no-store", signal: AbortSignal.timeout(3000) })
      } catch {
        setConnection("gone", "Worker stopped — the server is gone")
        return
      }
      await sleep(1000)
    }
    setConnection("gone", "Worker stopped — the server still answers: reload to watch a new worker")
  }

  setInterval(() => {
    if (current !== null && model.connection === "live" && Date.now() - lastByteAt > STALE_MS) current.abort()
  }, 5000)

  // --- requests -------------------------------------------------------------------------------------------------

  /**
   * A JSON request, with `body` (if given) sent as JSON; never rejects: { ok, status, body, message }.
   * @param {string} method @param {string} path @param {unknown} [body]
   */
  const request = async (method, path, body) => {
    let response
    try {
      const headers = withToken({ accept: "application/json" })
      if (body !== undefined) headers["content-type"] = "application/json"
      response = await fetch(path, {
        method,
        headers,
        cache: "no-store",
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
    } catch {
      return { ok: false, status: 0, body: null, message: "the server did not answer" }
    }
    const answer = await response.json().catch(() => null)
    if (response.status === 401) needToken(answer && answer.message)
    const message = answer && typeof answer.message === "string" ? answer.message : "HTTP " + response.status
    return { ok: response.ok, status: response.status, body: answer, message }
  }
  /** What the page says when a request failed: what it was for, the status, and the server's message. */
  const failed = (what, answer) =>
    what + " failed" + (answer.status ? " (" + answer.status + ")" : "") + ": " + answer.message

  const show = (element, text, error) => {
    element.textContent = text
    element.classList.toggle("error", Boolean(error))
  }

  // --- controls -------------------------------------------------------------------------------------------------

  const controlStatus = $("control-status")
  let busy = null
  /** @param {string} action @param {string} label */
  const control = async (action, label) => {
    // A control that cannot act now says so (aria-disabled) but keeps the keyboard's focus.
    if ($(action).getAttribute("aria-disabled") === "true") return
    if (
      action === "stop" &&
      !confirm(
        "Stop the worker?\n\nIt takes no new tasks, gives the ones in flight until its shutdown timeout to finish, and stops. It cannot be started again from this page."
      )
    ) return
    busy = action
    touch("state")
    show(controlStatus, label + "…", false)
    const answer = await request("POST", "worker/" + action)
    busy = null
    if (answer.ok) {
      show(controlStatus, label + ": the worker is " + answer.body.state + ".", false)
      setState(answer.body.state)
    } else {
      show(
        controlStatus,
        label + " failed" + (answer.status ? " (" + answer.status + ")" : "") + ": " + answer.message,
        true
      )
    }
    touch("state")
  }
  $("pause").addEventListener("click", () => control("pause", "Pause"))
  $("resume").addEventListener("click", () => control("resume", "Resume"))
  $("stop").addEventListener("click", () => control("stop", "Stop"))

  // --- dead letters ---------------------------------------------------------------------------------------------

  const deadList = $("dead-list")
  const deadNote = $("dead-note")
  const deadStatus = $("dead-status")
  let deadLoading = false
  let deadAgain = false
  let deadTimer = 0
  const refreshDeadSoon = () => {
    if (deadTimer === 0) {
      deadTimer = setTimeout(() => {
        deadTimer = 0
        refreshDead()
      }, 250)
    }
  }
  let noDeadRoute = false
  const refreshDead = async () => {
    if (noDeadRoute) return
    if (deadLoading) {
      deadAgain = true
      return
    }
    deadLoading = true
    const answer = await request("GET", "jobs/dead?limit=" + DEAD_LIMIT)
    deadLoading = false
    if (answer.ok && answer.body && Array.isArray(answer.body.jobs)) renderDead(answer.body.jobs)
    else if (answer.status === 404) {
      // Not mounted (routes without jobs): asking again would only fill the console with 404s.
      noDeadRoute = true
      deadList.replaceChildren()
      show(deadNote, "This server does not serve the job store's routes.", false)
    } else {show(
        deadNote,
        "Could not load the dead letters" + (answer.status ? " (" + answer.status + ")" : "") + ": " + answer.message,
        true
      )}
    if (deadAgain) {
      deadAgain = false
      refreshDeadSoon()
    }
  }
  const element = (tag, className, text) => {
    const node = document.createElement(tag)
    if (className) node.className = className
    if (text !== undefined) node.textContent = text
    return node
  }
  const renderDead = (jobs) => {
    const items = jobs.map((job) => {
      const li = element("li")
      li.dataset.id = job.id
      li.append(element("span", "dead-title", "#" + job.id + " " + job.name))
      const failed = Date.parse(job.failedAt)
      li.append(element(
        "span",
        "dead-meta",
        job.queue + " · " + plural(job.attempts, "attempt", "attempts") +
          (Number.isNaN(failed) ? "" : " · failed " + when(failed))
      ))
      const button = element("button", "small", "Redrive")
      button.type = "button"
      button.setAttribute("aria-label", "Redrive job " + job.id + " (" + job.name + ")")
      button.addEventListener("click", () => redrive(job, button))
      li.append(button)
      li.append(element("p", "dead-error", job.lastError || "no error recorded"))
      return li
    })
    deadList.replaceChildren(...items)
    const total = model.jobs ? model.jobs.dead : null
    if (jobs.length === 0) show(deadNote, "No dead letters.", false)
    else if (total !== null && total > jobs.length) {
      show(deadNote, "The latest " + count(jobs.length) + " of " + count(total) + ".", false)
    } else show(deadNote, "", false)
  }
  const redrive = async (job, button) => {
    button.disabled = true
    show(deadStatus, "Redriving job " + job.id + "…", false)
    const answer = await request("POST", "jobs/dead/" + encodeURIComponent(job.id) + "/redrive")
    if (answer.ok) {
      show(deadStatus, "Job " + job.id + " (" + job.name + ") redriven: it is ready again, its attempts reset.", false)
    } else {
      show(
        deadStatus,
        "Redrive of job " + job.id + " failed" + (answer.status ? " (" + answer.status + ")" : "") + ": " +
          answer.message,
        true
      )
      button.disabled = false
    }
    refreshDeadSoon()
  }
  $("dead-refresh").addEventListener("click", () => refreshDead())

  // --- the job browser ------------------------------------------------------------------------------------------

  /** Jobs per page of the table; the store answers one keyset page at a time, never all of them. */
  const JOBS_LIMIT = 50
  /** The running view asks for this many leased jobs at most, and says when there are more. */
  const RUNNING_LIMIT = 500
  const RUNNING_EVERY_MS = 2000
  /** A job running longer than this (or past its lease) stands out in the running view. */
  const STUCK_MS = 5 * 60 * 1000
  /** The payload shown in the page is cut here; the raw JSON has all of it. */
  const PAYLOAD_CHARS = 4000
  const FILTER_FIELDS = ["state", "queue", "name", "key"]

  /** How long `ms` is, in words: "42 s", "3 min 5 s", "2 h 10 min". */
  const duration = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000))
    if (s < 60) return s + " s"
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s"
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min"
  }
  /** An ISO instant as the page shows it: the time (and date unless today), and how far from now. */
  const instant = (iso) => {
    const ms = Date.parse(iso)
    if (Number.isNaN(ms)) return String(iso)
    const from = ms - Date.now()
    return when(ms) + " (" + (from > 0 ? "in " + duration(from) : duration(-from) + " ago") + ")"
  }
  const jobLabel = (job) => "job " + job.id + " (" + job.name + ")"
  const badge = (state) => element("span", "badge job-" + state, state)
  /** aria-disabled, not disabled, as for the worker's controls: the keyboard's focus stays where it was. */
  const enable = (button, on) => button.setAttribute("aria-disabled", String(!on))
  const isEnabled = (button) => button.getAttribute("aria-disabled") !== "true"

  const jobsBody = $("jobs-body")
  const jobsNote = $("jobs-note")
  const jobsStatus = $("jobs-status")
  /**
   * The filter applied (the form's fields may differ until it is submitted) and the keyset pages walked so far:
   * `pages[i]` is the `after` of page i, undefined for the first, so Newer goes back without asking for offsets.
   * @type {{ filter: Record<string, string>, pages: Array<string | undefined>, next: string | undefined,
   *   jobs: Array<any> | null, started: boolean, noRoutes: boolean, openSingle: boolean }}
   */
  const browser = {
    filter: { state: "", queue: "", name: "", key: "" },
    pages: [undefined],
    next: undefined,
    jobs: null,
    started: false,
    noRoutes: false,
    openSingle: false
  }
  const jobsPath = (filter, after, limit) => {
    const params = new URLSearchParams()
    for (const field of FILTER_FIELDS) if (filter[field]) params.set(field, filter[field])
    params.set("limit", String(limit))
    if (after !== undefined) params.set("after", after)
    return "jobs?" + params.toString()
  }
  const filterText = (filter) => {
    const parts = FILTER_FIELDS.filter((field) => filter[field]).map((field) => field + " " + filter[field])
    return parts.length === 0 ? "All jobs, newest first." : "Jobs with " + parts.join(", ") + ", newest first."
  }

  let jobsSeq = 0
  const loadJobs = async () => {
    if (browser.noRoutes) return
    // Only the latest answer is drawn: a page asked for before the filter changed is dropped.
    const seq = ++jobsSeq
    show(jobsNote, "Loading…", false)
    const answer = await request("GET", jobsPath(browser.filter, browser.pages[browser.pages.length - 1], JOBS_LIMIT))
    if (seq !== jobsSeq) return
    if (answer.ok && answer.body && Array.isArray(answer.body.jobs)) {
      const jobs = answer.body.jobs
      browser.jobs = jobs
      browser.next = typeof answer.body.next === "string" ? answer.body.next : undefined
      renderJobs()
      // A search by key that found one job opens it at once (not a reload of the same list after an action).
      if (browser.openSingle && jobs.length === 1) openJob(jobs[0].id)
      browser.openSingle = false
    } else if (answer.status === 404) {
      // Not mounted (routes without jobs): asking again would only fill the console with 404s.
      browser.noRoutes = true
      browser.jobs = null
      renderJobs()
      show(jobsNote, "This server does not serve the job store's routes.", false)
    } else show(jobsNote, failed("Loading the jobs", answer), true)
  }
  const startBrowser = () => {
    if (browser.started) return
    browser.started = true
    loadJobs()
    loadRunning()
  }

  const jobRow = (job) => {
    const tr = element("tr")
    tr.dataset.id = job.id
    const th = element("th")
    th.scope = "row"
    const open = element("button", "link", "#" + job.id)
    open.type = "button"
    open.dataset.id = job.id
    open.setAttribute("aria-label", "Open " + jobLabel(job))
    open.addEventListener("click", () => openJob(job.id))
    th.append(open)
    const state = element("td")
    state.append(badge(job.state))
    const enqueued = Date.parse(job.enqueuedAt)
    tr.append(
      th,
      element("td", "", job.name),
      element("td", "", job.queue),
      state,
      element("td", "wide-only", count(job.attempts) + "/" + count(job.maxAttempts)),
      element("td", "wide-only", Number.isNaN(enqueued) ? "" : when(enqueued))
    )
    return tr
  }
  const renderJobs = () => {
    const jobs = browser.jobs || []
    const focused = document.activeElement
    const focusedId = focused && focused.closest("#jobs-body") ? focused.getAttribute("data-id") : null
    jobsBody.replaceChildren(...jobs.map(jobRow))
    if (focusedId !== null) {
      for (const button of jobsBody.querySelectorAll("button")) {
        if (button.getAttribute("data-id") === focusedId) button.focus()
      }
    }
    $("jobs-filter-text").textContent = filterText(browser.filter)
    const page = browser.pages.length
    if (browser.jobs === null) show(jobsNote, "", false)
    else if (jobs.length === 0) show(jobsNote, page === 1 ? "No job matches." : "No more jobs.", false)
    else show(jobsNote, "", false)
    $("jobs-page").textContent = browser.jobs === null
      ? ""
      : "Page " + count(page) + (jobs.length > 0 ? ": " + plural(jobs.length, "job", "jobs") : "")
    enable($("jobs-first"), page > 1)
    enable($("jobs-newer"), page > 1)
    enable($("jobs-older"), browser.next !== undefined)
    renderBulk()
  }
  const turn = (pages) => {
    browser.pages = pages
    browser.next = undefined
    loadJobs()
  }
  $("jobs-first").addEventListener("click", (event) => {
    if (isEnabled(event.currentTarget)) turn([undefined])
  })
  $("jobs-newer").addEventListener("click", (event) => {
    if (isEnabled(event.currentTarget)) turn(browser.pages.slice(0, -1))
  })
  $("jobs-older").addEventListener("click", (event) => {
    if (isEnabled(event.currentTarget) && browser.next !== undefined) turn([...browser.pages, browser.next])
  })
  $("jobs-refresh").addEventListener("click", () => {
    browser.noRoutes = false
    loadJobs()
  })

  const filterState = $("filter-state")
  const filterQueue = $("filter-queue")
  const filterName = $("filter-name")
  const applyFilter = (filter) => {
    browser.filter = filter
    filterState.value = filter.state
    filterQueue.value = filter.queue
    filterName.value = filter.name
    hideConfirm(bulkConfirm, null)
    turn([undefined])
  }
  $("job-filter").addEventListener("submit", (event) => {
    event.preventDefault()
    applyFilter({
      state: filterState.value,
      queue: filterQueue.value.trim(),
      name: filterName.value.trim(),
      key: ""
    })
  })
  const findText = $("find-text")
  $("job-find").addEventListener("submit", (event) => {
    event.preventDefault()
    const text = findText.value.trim()
    if (!text) return
    if ($("find-by").value === "key") {
      browser.openSingle = true
      applyFilter({ state: "", queue: "", name: "", key: text })
    } else openJob(text)
  })

  // A confirm step in the page, under the button that asked: the question, a button that does it, and Back.
  /** @type {{ run: () => void, from: HTMLElement } | null} */
  let pending = null
  const askConfirm = (box, question, yesLabel, from, run) => {
    pending = { run, from }
    box.querySelector("p").textContent = question
    const yes = box.querySelector("button.danger")
    yes.textContent = yesLabel
    box.hidden = false
    yes.focus()
  }
  const hideConfirm = (box, focusBack) => {
    if (box.hidden) return
    box.hidden = true
    if (pending && focusBack) pending.from.focus()
    pending = null
  }
  const bulkConfirm = $("bulk-confirm")
  const jobConfirm = $("job-confirm")
  for (const box of [bulkConfirm, jobConfirm]) {
    box.querySelector("button.danger").addEventListener("click", () => {
      const run = pending && pending.run
      hideConfirm(box, false)
      if (run) run()
    })
    box.querySelector("button:not(.danger)").addEventListener("click", () => hideConfirm(box, true))
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") hideConfirm(box, true)
    })
  }

  // --- bulk actions on the applied filter

  const BULK = {
    redrive: {
      states: ["", "dead", "cancelled"],
      path: "jobs/redrive",
      verb: "Redrive",
      ask: "Redrive every dead or cancelled job",
      effect: "They become ready again, their attempts reset.",
      result: (body) => plural(body.redriven, "job", "jobs") + " redriven: ready again, their attempts reset."
    },
    delete: {
      states: ["", "dead", "cancelled"],
      path: "jobs/delete",
      verb: "Delete",
      ask: "Delete every dead or cancelled job",
      effect: "They are removed from the store for good.",
      result: (body) => plural(body.deleted, "job", "jobs") + " deleted."
    },
    cancel: {
      states: ["", "ready", "scheduled", "leased"],
      path: "jobs/cancel",
      verb: "Cancel",
      ask: "Cancel every live job",
      effect: "Those running are interrupted; none of them runs again unless redriven.",
      result: (body) => plural(body.cancelled, "job", "jobs") + " cancelled."
    }
  }
  let bulkBusy = false
  const bulkFilter = () => {
    const f = browser.filter
    /** @type {Record<string, string>} */
    const body = {}
    if (f.queue) body.queue = f.queue
    if (f.name) body.name = f.name
    if (f.state) body.state = f.state
    return body
  }
  const bulkAllowed = (kind) => {
    const f = browser.filter
    return !bulkBusy && !browser.noRoutes && !f.key && Boolean(f.queue || f.name) &&
      BULK[kind].states.includes(f.state)
  }
  const renderBulk = () => {
    for (const kind of Object.keys(BULK)) enable($("bulk-" + kind), bulkAllowed(kind))
  }
  const bulk = (kind) => {
    const button = $("bulk-" + kind)
    if (!isEnabled(button)) return
    const action = BULK[kind]
    const body = bulkFilter()
    const of = Object.entries(body).map(([field, value]) => field + " " + value).join(", ")
    hideConfirm(jobConfirm, false)
    const question = action.ask + " with " + of + "? " + action.effect
    askConfirm(bulkConfirm, question, "Yes, " + action.verb.toLowerCase() + " all", button, async () => {
      bulkBusy = true
      renderBulk()
      show(jobsStatus, action.verb + " all with " + of + "…", false)
      const answer = await request("POST", action.path, body)
      bulkBusy = false
      if (answer.ok && answer.body) show(jobsStatus, action.result(answer.body), false)
      else show(jobsStatus, failed(action.verb + " all with " + of, answer), true)
      renderBulk()
      button.focus()
      afterChange(true)
    })
  }
  for (const kind of Object.keys(BULK)) $("bulk-" + kind).addEventListener("click", () => bulk(kind))

  // --- a job's detail

  const detailCard = $("detail-card")
  const detailStatus = $("detail-status")
  const detailRaw = $("detail-raw")
  /** @type {{ id: string | null, job: any, gone: boolean, busy: boolean, rawUrl: string | null }} */
  const detail = { id: null, job: null, gone: false, busy: false, rawUrl: null }
  /** @type {HTMLElement | null} */
  let detailOpener = null
  let detailSeq = 0

  /** Fetches the job `id` into the detail card; `focus` moves the keyboard there (when the user opened it). */
  const loadDetail = async (id, focus) => {
    const seq = ++detailSeq
    const answer = await request("GET", "jobs/" + encodeURIComponent(id))
    if (seq !== detailSeq) return false
    if (answer.ok && answer.body) {
      detail.id = id
      detail.job = answer.body
      detail.gone = false
    } else if (answer.status === 404 && detail.id === id && answer.body && answer.body.error === "NotFound") {
      // It was here a moment ago: deleted, or completed (completed jobs are not kept).
      detail.gone = true
    } else {
      show(jobsStatus, failed("Finding job " + id, answer), true)
      return false
    }
    renderDetail()
    if (detailCard.hidden) detailCard.hidden = false
    if (focus) $("detail-heading").focus()
    return true
  }
  const openJob = (id) => {
    const focused = document.activeElement
    detailOpener = focused instanceof HTMLElement && focused !== document.body ? focused : null
    if (detail.id !== id) show(detailStatus, "", false)
    hideConfirm(jobConfirm, false)
    return loadDetail(id, true)
  }
  $("detail-refresh").addEventListener("click", () => {
    if (detail.id !== null) loadDetail(detail.id, false)
  })
  $("detail-close").addEventListener("click", () => {
    detailCard.hidden = true
    detail.id = null
    detail.job = null
    hideConfirm(jobConfirm, false)
    if (detailOpener && detailOpener.isConnected) detailOpener.focus()
    else findText.focus()
  })

  const field = (list, term, value, className) => {
    if (value === undefined || value === null || value === "") return
    const div = element("div", className)
    div.dataset.field = term
    div.append(element("dt", "", term))
    const dd = element("dd")
    if (value instanceof Node) dd.append(value)
    else dd.textContent = String(value)
    div.append(dd)
    list.append(div)
  }
  const renderDetail = () => {
    const job = detail.job
    if (job === null) return
    $("detail-heading").textContent = "Job #" + job.id + " · " + job.name
    const state = $("detail-state")
    state.replaceChildren(badge(detail.gone ? "gone" : job.state))
    if (detail.gone) state.append(" no longer in the store (deleted, or completed: completed jobs are not kept)")
    const fields = $("detail-fields")
    fields.replaceChildren()
    field(fields, "State", job.state)
    field(fields, "Queue", job.queue)
    field(fields, "Attempts", count(job.attempts) + " of " + count(job.maxAttempts))
    field(fields, "Priority", count(job.priority))
    field(fields, "Key", job.key)
    field(fields, "Enqueued", job.enqueuedAt && instant(job.enqueuedAt))
    field(
      fields,
      job.state === "scheduled" || job.state === "ready" ? "Due" : "Was due",
      job.runAt && instant(job.runAt)
    )
    field(fields, "Scheduled for", job.scheduledFor && instant(job.scheduledFor))
    field(fields, "Worker", job.worker)
    field(fields, "Started", job.startedAt && instant(job.startedAt))
    if (job.state === "leased" && Date.parse(job.startedAt)) {
      field(fields, "Running for", duration(Date.now() - Date.parse(job.startedAt)))
    }
    const lease = Date.parse(job.leaseExpiresAt)
    field(
      fields,
      "Lease until",
      job.leaseExpiresAt && instant(job.leaseExpiresAt) + (lease < Date.now() ? ": expired" : ""),
      lease < Date.now() ? "error" : ""
    )
    field(fields, "Ended", job.endedAt && instant(job.endedAt))
    field(fields, "Ran for", typeof job.durationMs === "number" ? count(Math.round(job.durationMs)) + " ms" : undefined)
    const result = job.result === undefined ? undefined : JSON.stringify(job.result)
    field(fields, "Result", result === undefined || result.length <= 500 ? result : result.slice(0, 500) + "…")
    field(fields, "Last error", job.lastError, "error")

    const errors = Array.isArray(job.errors) ? job.errors : []
    const attempts = errors.map((e) => {
      const li = element("li")
      const at = Date.parse(e.at)
      li.append(
        element("span", "attempt-head", "Attempt " + e.attempt + (Number.isNaN(at) ? "" : " · " + when(at))),
        element("span", "attempt-error", String(e.error))
      )
      return li
    })
    if (job.state === "leased") {
      attempts.push(element(
        "li",
        "attempt-running",
        "Attempt " + job.attempts + " running" + (job.worker ? " on " + job.worker : "") +
          (Date.parse(job.startedAt) ? " since " + when(Date.parse(job.startedAt)) : "")
      ))
    }
    $("detail-errors").replaceChildren(...attempts)
    if (attempts.length === 0) $("detail-errors").append(element("li", "muted", "No failed attempt."))

    const text = JSON.stringify(job.payload, null, 2) ?? "(no payload)"
    const payload = $("detail-payload")
    const note = $("detail-payload-note")
    if (text.length > PAYLOAD_CHARS) {
      payload.textContent = text.slice(0, PAYLOAD_CHARS) + "\n…"
      note.textContent = "The first " + count(PAYLOAD_CHARS) + " of " + count(text.length) +
        " characters: the raw JSON has all of it."
    } else {
      payload.textContent = text
      note.textContent = ""
    }
    // The raw answer is `jobs/<id>`; behind a token a plain link would be refused (it cannot send the header), so
    // the link then opens the answer the page already has.
    if (detail.rawUrl !== null) URL.revokeObjectURL(detail.rawUrl)
    detail.rawUrl = null
    if (token) {
      detail.rawUrl = URL.createObjectURL(new Blob([JSON.stringify(job, null, 2)], { type: "application/json" }))
      detailRaw.href = detail.rawUrl
    } else detailRaw.href = "jobs/" + encodeURIComponent(job.id)
    detailRaw.setAttribute("aria-label", "Raw JSON of job " + job.id)
    renderActions()
  }

  const JOB_ACTIONS = {
    cancel: {
      states: ["ready", "scheduled", "leased"],
      verb: "Cancel",
      method: "POST",
      path: (id) => "jobs/" + id + "/cancel",
      ask: (job) =>
        "Cancel " + jobLabel(job) + "? " + (job.state === "leased"
          ? "Its handler is interrupted now" + (job.worker ? " on " + job.worker : "") + "; it"
          : "It") +
        " does not run again unless redriven.",
      done: (job, body) =>
        body.result === "alreadyFinished"
          ? "Job " + job.id + " had already ended: nothing to cancel."
          : "Job " + job.id + " cancelled."
    },
    run: {
      states: ["scheduled"],
      verb: "Run now",
      method: "POST",
      path: (id) => "jobs/" + id + "/run",
      ask: (job) => "Run " + jobLabel(job) + " now? It becomes ready at once instead of " + instant(job.runAt) + ".",
      done: (job) => "Job " + job.id + " is ready: the next free worker claims it."
    },
    redrive: {
      states: ["dead", "cancelled"],
      verb: "Redrive",
      method: "POST",
      path: (id) => "jobs/dead/" + id + "/redrive",
      ask: (job) => "Redrive " + jobLabel(job) + "? It becomes ready again, its attempts reset.",
      done: (job) => "Job " + job.id + " redriven: it is ready again, its attempts reset."
    },
    delete: {
      states: ["dead", "cancelled"],
      verb: "Delete",
      method: "DELETE",
      path: (id) => "jobs/" + id,
      ask: (job) => "Delete " + jobLabel(job) + "? It is removed from the store for good.",
      done: (job) => "Job " + job.id + " deleted."
    }
  }
  const renderActions = () => {
    const job = detail.job
    for (const kind of Object.keys(JOB_ACTIONS)) {
      enable(
        $("job-" + kind),
        job !== null && !detail.gone && !detail.busy && JOB_ACTIONS[kind].states.includes(job.state)
      )
    }
  }
  const jobAction = (kind) => {
    const button = $("job-" + kind)
    const job = detail.job
    if (!isEnabled(button) || job === null) return
    const action = JOB_ACTIONS[kind]
    hideConfirm(bulkConfirm, false)
    askConfirm(jobConfirm, action.ask(job), action.verb + " job " + job.id, button, async () => {
      detail.busy = true
      renderActions()
      show(detailStatus, action.verb + " job " + job.id + "…", false)
      const answer = await request(action.method, action.path(encodeURIComponent(job.id)))
      detail.busy = false
      if (answer.ok) show(detailStatus, action.done(job, answer.body || {}), false)
      else show(detailStatus, failed(action.verb + " of job " + job.id, answer), true)
      if (detail.id === job.id) await loadDetail(job.id, false)
      renderActions()
      button.focus()
      afterChange(false)
    })
  }
  for (const kind of Object.keys(JOB_ACTIONS)) $("job-" + kind).addEventListener("click", () => jobAction(kind))

  /** After an action: the table, the running view and the dead letters show the store as it is now. */
  const afterChange = (withDetail) => {
    loadJobs()
    loadRunning()
    refreshDeadSoon()
    if (withDetail && detail.id !== null) loadDetail(detail.id, false)
  }

  // --- what runs now, by worker

  const runningList = $("running")
  const runningNote = $("running-note")
  /** @type {{ jobs: Array<any> | null, more: boolean, at: number, loading: boolean, again: boolean }} */
  const runningJobs = { jobs: null, more: false, at: 0, loading: false, again: false }
  const loadRunning = async () => {
    if (browser.noRoutes) return
    if (runningJobs.loading) {
      // Asked for after a change: the answer on its way may predate it.
      runningJobs.again = true
      return
    }
    runningJobs.loading = true
    const answer = await request("GET", jobsPath({ state: "leased" }, undefined, RUNNING_LIMIT))
    runningJobs.loading = false
    if (answer.ok && answer.body && Array.isArray(answer.body.jobs)) {
      runningJobs.jobs = answer.body.jobs
      runningJobs.more = typeof answer.body.next === "string"
      runningJobs.at = Date.now()
      renderRunning()
    } else if (answer.status !== 404) show(runningNote, failed("Loading the running jobs", answer), true)
    if (runningJobs.again) {
      runningJobs.again = false
      loadRunning()
    }
  }
  /** How long the job has run, and whether that looks stuck: past STUCK_MS, or past its lease. */
  const runningFor = (job) => {
    const started = Date.parse(job.startedAt)
    const lease = Date.parse(job.leaseExpiresAt)
    const now = Date.now()
    const leaseGone = !Number.isNaN(lease) && lease < now
    const stuck = leaseGone || (!Number.isNaN(started) && now - started > STUCK_MS)
    const text = (Number.isNaN(started) ? "start unknown" : "running " + duration(now - started)) +
      (leaseGone ? ", lease expired " + duration(now - lease) + " ago" : "")
    return { text, stuck }
  }
  const runningItem = (job) => {
    const li = element("li")
    li.dataset.id = job.id
    const open = element("button", "link", "#" + job.id + " " + job.name)
    open.type = "button"
    open.dataset.id = job.id
    open.setAttribute("aria-label", "Open " + jobLabel(job))
    open.addEventListener("click", () => openJob(job.id))
    const { stuck, text } = runningFor(job)
    li.classList.toggle("stuck", stuck)
    li.append(
      open,
      element("span", "running-meta", job.queue + " · attempt " + job.attempts),
      element("span", "elapsed", text)
    )
    return li
  }
  const renderRunning = () => {
    const jobs = runningJobs.jobs
    if (jobs === null) return
    /** @type {Map<string, Array<any>>} */
    const byWorker = new Map()
    for (const job of jobs) {
      const worker = job.worker || "(no worker recorded)"
      const list = byWorker.get(worker)
      if (list) list.push(job)
      else byWorker.set(worker, [job])
    }
    const focused = document.activeElement
    const focusedId = focused && focused.closest("#running") ? focused.getAttribute("data-id") : null
    const groups = Array.from(byWorker.keys()).sort().map((worker) => {
      const group = element("section", "worker-group")
      group.dataset.worker = worker
      const list = byWorker.get(worker) || []
      // The longest running first: a stuck job is at the top of its worker's list.
      list.sort((a, b) => (Date.parse(a.startedAt) || 0) - (Date.parse(b.startedAt) || 0))
      const heading = element("h3", "", worker)
      heading.append(" ", element("span", "muted", plural(list.length, "job", "jobs")))
      const ul = element("ul", "running-list")
      ul.append(...list.map(runningItem))
      group.append(heading, ul)
      return group
    })
    runningList.replaceChildren(...groups)
    if (focusedId !== null) {
      for (const button of runningList.querySelectorAll("button")) {
        if (button.getAttribute("data-id") === focusedId) button.focus()
      }
    }
    const stuck = runningList.querySelectorAll("li.stuck").length
    show(
      runningNote,
      jobs.length === 0
        ? "Nothing runs now."
        : plural(jobs.length, "job", "jobs") + " on " + plural(byWorker.size, "worker", "workers") +
          (runningJobs.more ? " (the first " + count(RUNNING_LIMIT) + ")" : "") +
          (stuck > 0
            ? " · " + plural(stuck, "looks", "look") + " stuck: running over " + duration(STUCK_MS) +
              " or past its lease"
            : "") +
          " · as of " + clockTime(runningJobs.at),
      stuck > 0
    )
  }
  $("running-refresh").addEventListener("click", () => loadRunning())
  setInterval(() => {
    // Asked again only while someone can see it and the worker is there to ask.
    if (browser.started && model.connection === "live" && !document.hidden) loadRunning()
  }, RUNNING_EVERY_MS)

  // --- the token form -------------------------------------------------------------------------------------------

  const auth = $("auth")
  const tokenInput = $("token")
  const needToken = (message) => {
    if (token) {
      token = null
      storage.set(null)
    }
    $("auth-message").textContent = message || "This worker's event stream and controls need a token."
    if (auth.hidden) {
      auth.hidden = false
      tokenInput.focus()
    }
    setConnection("auth", "Needs a token")
  }
  // A token added to the address of an open page is taken at once, as at load.
  window.addEventListener("hashchange", () => {
    const fromFragment = tokenFromFragment()
    if (!fromFragment || fromFragment === token) return
    token = fromFragment
    auth.hidden = true
    if (current !== null) current.abort()
    else {
      setConnection("connecting", "Connecting…")
      run()
    }
    if (model.lastDead !== null) refreshDead()
    if (browser.started) {
      loadJobs()
      loadRunning()
    }
  })
  auth.addEventListener("submit", (event) => {
    event.preventDefault()
    const value = tokenInput.value.trim()
    if (!value) return
    token = value
    storage.set(value)
    tokenInput.value = ""
    auth.hidden = true
    setConnection("connecting", "Connecting…")
    run()
    if (model.lastDead !== null) refreshDead()
    if (browser.started) {
      loadJobs()
      loadRunning()
    }
  })

  // --- the feed -------------------------------------------------------------------------------------------------

  const feed = $("feed")
  const feedCount = $("feed-count")
  const freeze = $("feed-freeze")
  freeze.addEventListener("click", () => {
    frozen = !frozen
    freeze.setAttribute("aria-pressed", String(frozen))
    freeze.textContent = frozen ? "Unfreeze" : "Freeze"
    schedule()
  })

  for (const box of /** @type {NodeListOf<HTMLInputElement>} */ (document.querySelectorAll(".feed-filter input"))) {
    box.addEventListener("change", () => {
      shown[box.name] = box.checked
      feed.classList.toggle("hide-" + box.name, !box.checked)
    })
  }

  const jobText = (v) => {
    const job = "job " + v.id + " " + v.name
    const attempt = "attempt " + v.attempt
    switch (v._tag) {
      case "JobClaimed":
        return ["job", "claimed", job + " claimed (" + v.queue + ", " + attempt + ")"]
      case "JobSucceeded":
        return ["job", "succeeded", job + " succeeded in " + count(v.durationMs) + " ms (" + attempt + ")"]
      case "JobRetried":
        return [
          "warn",
          "retried",
          job + " failed (" + attempt + "), retried in " + count(v.delayMs) + " ms: " + v.error
        ]
      case "JobDeadLettered":
        return ["bad", "dead", job + " dead after " + attempt + ": " + v.error]
      case "JobTimedOut":
        return ["bad", "timed out", job + " timed out after " + count(v.timeoutMs) + " ms (" + attempt + ")"]
      case "JobLeaseLost":
        return ["bad", "lease lost", job + " lost its lease: its outcome was discarded"]
      case "JobReleased":
        return ["warn", "released", job + " released unfinished" + (v.refunded ? ", attempt refunded" : "")]
      case "JobSnoozed":
        return ["job", "snoozed", job + " snoozed for " + count(v.delayMs) + " ms (" + attempt + " not counted)"]
      case "JobScheduled":
        return ["job", "scheduled", job + " enqueued by schedule " + v.schedule + " for " + v.slot]
      case "JobCancelled":
        return ["warn", "cancelled", job + " cancelled: its handler was interrupted"]
      default:
        return null
    }
  }

  const describe = (e) => {
    switch (e._tag) {
      case "Started":
        return ["lifecycle", "started", "Started: the worker runs"]
      case "Paused":
        return ["lifecycle", "paused", "Paused: tasks in flight go on, no new ones start"]
      case "Resumed":
        return ["lifecycle", "resumed", "Resumed: the worker runs"]
      case "Stopping":
        return ["lifecycle", "stopping", "Stopping: draining the tasks in flight"]
      case "Stopped":
        return [
          "lifecycle",
          "stopped",
          "Stopped: " + plural(e.interrupted, "task", "tasks") + " interrupted at the deadline"
        ]
      case "Idle":
        return ["task", "idle", "Idle: no task in flight"]
      case "TaskStarted":
        return ["task", "task", "task " + e.taskId + (e.label ? " (" + e.label + ")" : "") + " started"]
      case "TaskFinished": {
        const what = "task " + e.taskId + (e.label ? " (" + e.label + ")" : "")
        if (e.outcome === "success") return ["task", "task", what + " succeeded"]
        if (e.outcome === "interrupted") return ["warn", "task", what + " interrupted"]
        return ["bad", "task", what + " failed" + (e.cause ? ": " + e.cause : "")]
      }
      case "Custom": {
        const v = e.value
        if (v && typeof v._tag === "string") {
          const job = jobText(v)
          if (job) return job
          if (v._tag === "ReadinessChanged") {
            return v.ready
              ? ["job", "ready", "readiness: " + v.check + " is ready"]
              : ["bad", "unready", "readiness: " + v.check + " is unready" + (v.reason ? ": " + v.reason : "")]
          }
        }
        return ["note", "custom", JSON.stringify(v)]
      }
      default:
        return ["note", String(e._tag), JSON.stringify(e)]
    }
  }

  const feedRow = (item) => {
    const [kind, tag, text] = item.event ? describe(item.event) : [item.kind, "page", item.note]
    const li = element("li", "ev-" + kind + (item.event ? " cat-" + category(item.event) : ""))
    const time = element("time", "", clockTime(item.at))
    time.dateTime = new Date(item.at).toISOString()
    li.append(time, element("span", "tag", tag), element("span", "text", text))
    return li
  }

  const renderFeed = () => {
    if (frozen || (ringSize === 0 && unseen === 0)) return
    const rows = document.createDocumentFragment()
    for (let i = ringSize - 1; i >= 0; i--) rows.append(feedRow(ring[(ringHead + i) % RING]))
    if (unseen > 0) {
      // Older than every row above it: the ones the ring overwrote before a frame could show them.
      const more = element("li", "ev-more")
      more.append(
        element("span", "", ""),
        element("span", "tag", "…"),
        element("span", "text", plural(unseen, "more event", "more events") + " not shown")
      )
      rows.append(more)
    }
    feed.prepend(rows)
    while (feed.childElementCount > FEED_ROWS) feed.lastElementChild.remove()
    ring.fill(undefined)
    ringHead = 0
    ringSize = 0
    unseen = 0
  }

  // --- drawing --------------------------------------------------------------------------------------------------

  const stateElement = $("state")
  const stateCard = stateElement.closest(".card")
  const renderState = () => {
    const state = model.state
    stateElement.textContent = state || "Unknown"
    stateElement.className = "state state-" + (state || "unknown")
    const stale = model.connection !== "live" && state !== "Stopped"
    stateCard.classList.toggle("stale", stale)
    $("state-detail").textContent = state
      ? DETAIL[state] + (stale ? " (last known: the page is not connected)" : "")
      : "Waiting for the worker's event stream."
    for (const li of $("diagram").children) {
      const on = li.dataset.state === state
      li.classList.toggle("current", on)
      if (on) li.setAttribute("aria-current", "step")
      else li.removeAttribute("aria-current")
    }
    const live = model.connection === "live" && busy === null
    // aria-disabled, not disabled: a disabled button loses the keyboard's focus, which then drops to the page.
    const enable = (id, on) => $(id).setAttribute("aria-disabled", String(!on))
    enable("pause", live && state === "Running")
    enable("resume", live && state === "Paused")
    enable("stop", live && (state === "Pending" || state === "Running" || state === "Paused"))
    // What a control said is history once the worker stopped.
    if (state === "Stopped" && busy === null && controlStatus.textContent !== "") show(controlStatus, "", false)
    // While not connected, everything the page shows is as of the last message: say so on every card.
    document.body.classList.toggle("disconnected", stale)
    const connection = $("connection")
    connection.textContent = model.connectionText
    connection.className = "connection connection-" + model.connection
    if (model.name) $("worker-name").textContent = model.name
    document.title = (model.name ? model.name + ": " : "") + (state || "…") + " · worker dashboard"
  }

  const average = (key, n) => {
    const recent = model.samples.slice(-n)
    if (recent.length === 0) return null
    return recent.reduce((sum, s) => sum + s[key], 0) / recent.length
  }

  const renderFigures = () => {
    const inFlight = model.inFlight ?? model.taskCount
    $("in-flight").textContent = inFlight === null ? "–" : plural(inFlight, "job", "jobs")
    const stopped = model.state === "Stopped"
    const done = stopped ? 0 : average("done", 5)
    const failed = stopped ? 0 : average("failed", 5)
    $("rate-done").textContent = done === null ? "–" : perSecond(done, "job", "jobs")
    $("rate-failed").textContent = failed === null ? "–" : perSecond(failed, "failure", "failures")
    const readiness = $("readiness")
    if (model.state === null) readiness.textContent = "–"
    else if (model.unready.size > 0) {
      const [first] = model.unready.values()
      readiness.textContent = "Not ready: " + first.check + (first.reason ? " (" + first.reason + ")" : "") +
        (Date.parse(first.since) ? ", since " + clockTime(Date.parse(first.since)) : "")
    } else readiness.textContent = model.state === "Running" ? "Ready" : "Not ready: " + model.state
    readiness.classList.toggle("error", model.unready.size > 0)
  }

  const niceCeiling = (n) => {
    if (n <= 1) return 1
    const power = Math.pow(10, Math.floor(Math.log10(n)))
    for (const step of [1, 2, 5, 10]) if (n <= step * power) return step * power
    return 10 * power
  }

  const renderChart = () => {
    const samples = model.samples
    if (samples.length === 0) return
    const last = samples[samples.length - 1].at
    let peak = 0
    for (const s of samples) peak = Math.max(peak, s.done, s.failed)
    const top = niceCeiling(peak)
    // The window grows with the data, from a minute to CHART_SECONDS, so a fresh page draws more than a sliver.
    const span = Math.min(CHART_SECONDS, Math.max(60, Math.ceil((last - samples[0].at) / 60000) * 60))
    const x = (s) => (300 - ((last - s.at) / 1000) * (300 / span)).toFixed(1)
    const y = (v) => (100 - (v / top) * 96).toFixed(1)
    const done = samples.map((s) => x(s) + "," + y(s.done)).join(" ")
    $("line-done").setAttribute("points", done)
    $("area-done").setAttribute(
      "points",
      x(samples[0]) + ",100 " + done + " " + x(samples[samples.length - 1]) + ",100"
    )
    $("line-failed").setAttribute("points", samples.map((s) => x(s) + "," + y(s.failed)).join(" "))
    $("chart-max").textContent = count(top)
    $("chart-since").textContent = plural(span / 60, "min", "min") + " ago"
    $("chart-updated").textContent = "now (" + clockTime(last) + ")"
    const now = samples[samples.length - 1]
    $("chart").setAttribute(
      "aria-label",
      "Jobs per second over the last " + plural(span / 60, "minute", "minutes") + ": now " +
        perSecond(now.done, "job", "jobs") + ", peak " + perSecond(peak, "job", "jobs") + "; failures now " +
        perSecond(now.failed, "failure", "failures")
    )
  }

  const cell = (tag, text, className) => {
    const node = element(tag, className, text)
    if (tag === "th") node.scope = "row"
    return node
  }
  /** The queues paused in the store, as the last stats said, or as the page's own pause or resume just did. */
  let pausedQueues = new Set()
  const queueStatus = $("queues-status")
  /** The queues whose pause or resume is on its way: their button says so (aria-disabled keeps the focus on it). */
  const queuesBusy = new Set()
  const queueControl = async (name, pause) => {
    if (queuesBusy.has(name)) return
    queuesBusy.add(name)
    touch("queues")
    const verb = pause ? "Pausing" : "Resuming"
    show(queueStatus, verb + " queue " + name + "…", false)
    const answer = await request("POST", "jobs/queues/" + encodeURIComponent(name) + (pause ? "/pause" : "/resume"))
    if (answer.ok) {
      if (pause) pausedQueues.add(name)
      else pausedQueues.delete(name)
      show(
        queueStatus,
        pause
          ? "Queue " + name + " paused: no worker claims from it until it is resumed; jobs already running finish."
          : "Queue " + name + " resumed: its workers claim again.",
        false
      )
    } else {
      show(
        queueStatus,
        (pause ? "Pause" : "Resume") + " of queue " + name + " failed" +
          (answer.status ? " (" + answer.status + ")" : "") + ": " + answer.message,
        true
      )
    }
    queuesBusy.delete(name)
    touch("queues")
  }
  const queueRow = (name, counts, isTotal) => {
    const tr = element("tr")
    if (!isTotal) tr.dataset.queue = name
    const paused = !isTotal && pausedQueues.has(name)
    const th = cell("th", name)
    if (paused) th.append(" ", element("span", "badge-paused", "paused"))
    tr.append(th)
    for (const column of ["ready", "scheduled", "leased", "dead"]) {
      const td = cell("td", count(counts[column] || 0), column === "dead" && counts.dead > 0 ? "nonzero-dead" : "")
      td.dataset.col = column
      tr.append(td)
    }
    const control = element("td")
    if (!isTotal) {
      const button = element("button", "small", paused ? "Resume" : "Pause")
      button.type = "button"
      button.dataset.queue = name
      button.setAttribute("aria-label", (paused ? "Resume" : "Pause") + " queue " + name)
      if (queuesBusy.has(name)) button.setAttribute("aria-disabled", "true")
      button.addEventListener("click", () => queueControl(name, !paused))
      control.append(button)
    }
    tr.append(control)
    return tr
  }
  const renderQueues = () => {
    const note = $("queues-note")
    const body = $("queues-body")
    const total = $("queues-total")
    const stale = model.state === "Stopped" || model.connection !== "live"
    $("queues-card").classList.toggle("stale", Boolean(model.jobs) && stale)
    if (model.jobsError) show(note, "The job store did not answer: " + model.jobsError, true)
    // Only a stats message can say there is no store: before the first one, the page does not know.
    else if (!model.jobs) {
      show(note, model.statsSeen ? "This worker reports no job store." : "Waiting for the worker's counts…", false)
    } else if (stale) {
      show(
        note,
        "As of " + clockTime(model.jobsAt) + (model.state === "Stopped"
          ? ": the worker stopped, these counts no longer change here."
          : ": the page is not connected."),
        false
      )
    } else show(note, "", false)
    if (!model.jobs) {
      if (!model.jobsError) {
        body.replaceChildren()
        total.replaceChildren()
      }
      return
    }
    const byQueue = model.jobs.byQueue || {}
    if (model.jobs.pausedQueues) pausedQueues = new Set(model.jobs.pausedQueues)
    // A paused queue is listed even when it holds nothing.
    const names = Array.from(new Set([...Object.keys(byQueue), ...pausedQueues])).sort()
    // The rows are made anew: the keyboard's focus goes back to the same queue's button.
    const focused = document.activeElement
    const focusedQueue = focused && focused.closest("#queues-body") ? focused.getAttribute("data-queue") : null
    body.replaceChildren(...names.map((name) => queueRow(name, byQueue[name] || {}, false)))
    if (focusedQueue !== null) {
      for (const button of body.querySelectorAll("button")) {
        if (button.getAttribute("data-queue") === focusedQueue) button.focus()
      }
    }
    total.replaceChildren(queueRow("All", model.jobs, true))
    if (names.length === 0) show(note, "No jobs in the store.", false)
  }

  let lastCountAt = Date.now()
  let lastReceived = 0
  const renderCount = () => {
    const now = Date.now()
    const rate = ((received - lastReceived) * 1000) / Math.max(1, now - lastCountAt)
    lastCountAt = now
    lastReceived = received
    feedCount.textContent = plural(received, "event", "events") + " · " + perSecond(rate, "event", "events") +
      (frozen ? " · frozen" : "")
  }
  setInterval(renderCount, 1000)

  function render() {
    frame = 0
    if (dirty.state) {
      dirty.state = false
      renderState()
    }
    if (dirty.figures) {
      dirty.figures = false
      renderFigures()
    }
    if (dirty.chart) {
      dirty.chart = false
      renderChart()
    }
    if (dirty.queues) {
      dirty.queues = false
      renderQueues()
    }
    renderFeed()
  }

  show(deadNote, "This worker reports no job store.", false)
  show(jobsNote, "Waiting for the worker's counts…", false)
  show(runningNote, "Waiting for the worker's counts…", false)
  renderState()
  renderCount()
  run()
})()
