/**
 * The dashboard page, as strings: the build compiles them into `dist/` with the rest, so the package ships the
 * page with no copy step and no file system access. Every URL in them is relative to `GET /dashboard` (no leading
 * slash), so the page works wherever the routes are mounted: under `/ops`, `dashboard/app.js` is
 * `/ops/dashboard/app.js` and `events` is `/ops/events`. The script and the style are separate routes, since the
 * page's Content-Security-Policy allows no inline script or style (nor `style` attributes: the script sets none).
 *
 * The script is plain DOM, no library: it reads `GET events` with `fetch` (an `EventSource` cannot send an
 * `Authorization` header), keeps a model of the worker, and draws it at most once per animation frame. The event
 * feed is coalesced: messages land in a ring of the latest {@link FEED_ROWS}, a frame moves them into the list
 * and trims it to as many rows, and the events that were overwritten before any frame showed them become one
 * "N more events" row, so the page keeps up however fast the worker goes and holds a bounded amount of memory.
 */

/** How many rows the event feed keeps, and how many events wait for the next frame at most. */
const FEED_ROWS = 200

/** `GET /dashboard`. */
export const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="data:,">
<title>Worker dashboard</title>
<link rel="stylesheet" href="dashboard/app.css">
<script src="dashboard/app.js" defer></script>
</head>
<body>
<header class="top">
  <h1><span id="worker-name">Worker</span> <span class="subtitle">dashboard</span></h1>
  <p id="connection" class="connection connection-connecting" role="status">Connecting…</p>
</header>

<form id="auth" class="card auth" hidden>
  <h2>Access token</h2>
  <p id="auth-message">This worker's event stream and controls need a token.</p>
  <div class="auth-row">
    <label for="token">Token</label>
    <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required>
    <button type="submit">Connect</button>
  </div>
  <p class="hint">Kept for this tab only (session storage). The page also takes it from its address:
  <code>dashboard#token=…</code> (a fragment never reaches the server).</p>
</form>

<main>
  <section class="card state-card" aria-labelledby="state-heading">
    <h2 id="state-heading">State</h2>
    <p id="state" class="state state-unknown" aria-live="polite" aria-atomic="true">Unknown</p>
    <p id="state-detail" class="muted">Waiting for the worker's event stream.</p>
    <ol id="diagram" class="diagram" aria-label="Lifecycle">
      <li data-state="Pending"><span>Pending</span></li>
      <li data-state="Running"><span>Running</span></li>
      <li data-state="Paused"><span>Paused</span></li>
      <li data-state="Stopping"><span>Stopping</span></li>
      <li data-state="Stopped"><span>Stopped</span></li>
    </ol>
    <div class="controls" role="group" aria-label="Worker controls" aria-describedby="controls-help">
      <button id="pause" type="button" disabled>Pause</button>
      <button id="resume" type="button" disabled>Resume</button>
      <button id="stop" type="button" class="danger" disabled>Stop</button>
    </div>
    <p id="controls-help" class="hint">Pause: tasks in flight finish, no new ones start. Stop: drains the tasks in
    flight, then the worker stops for good.</p>
    <p id="control-status" class="status" role="status" aria-live="polite"></p>
  </section>

  <section class="card" aria-labelledby="tasks-heading">
    <h2 id="tasks-heading">Tasks</h2>
    <dl class="figures">
      <div><dt>In flight</dt><dd id="in-flight">–</dd></div>
      <div><dt>Done</dt><dd id="rate-done">–</dd></div>
      <div><dt>Failures</dt><dd id="rate-failed">–</dd></div>
      <div><dt>Readiness</dt><dd id="readiness">–</dd></div>
    </dl>
    <figure class="chart">
      <div class="chart-scale"><span id="chart-max">0</span><span>per second</span></div>
      <svg id="chart" viewBox="0 0 300 100" preserveAspectRatio="none" role="img"
        aria-label="Tasks per second: no data yet">
        <line class="grid-line" x1="0" y1="50" x2="300" y2="50"></line>
        <polygon id="area-done" class="area-done" points=""></polygon>
        <polyline id="line-done" class="line-done" points=""></polyline>
        <polyline id="line-failed" class="line-failed" points=""></polyline>
      </svg>
      <div class="chart-axis"><span id="chart-since">1 min ago</span><span id="chart-updated">now</span></div>
      <figcaption>
        <span class="key key-done">tasks done/s</span>
        <span class="key key-failed">failures/s</span>
      </figcaption>
    </figure>
  </section>

  <section class="card" aria-labelledby="queues-heading">
    <h2 id="queues-heading">Job queues</h2>
    <div class="table-wrap">
      <table id="queues">
        <thead>
          <tr>
            <th scope="col">Queue</th><th scope="col">Ready</th><th scope="col">Scheduled</th>
            <th scope="col">Leased</th><th scope="col">Dead</th>
          </tr>
        </thead>
        <tbody id="queues-body"></tbody>
        <tfoot id="queues-total"></tfoot>
      </table>
    </div>
    <p id="queues-note" class="muted">Waiting for the first stats.</p>
  </section>

  <section class="card" aria-labelledby="dead-heading">
    <div class="card-head">
      <h2 id="dead-heading">Dead letters</h2>
      <button id="dead-refresh" type="button" class="small">Refresh</button>
    </div>
    <p id="dead-status" class="status" role="status" aria-live="polite"></p>
    <ul id="dead-list" class="dead-list"></ul>
    <p id="dead-note" class="muted"></p>
  </section>

  <section class="card feed-card" aria-labelledby="feed-heading">
    <div class="card-head">
      <h2 id="feed-heading">Events</h2>
      <span id="feed-count" class="muted"></span>
      <button id="feed-freeze" type="button" class="small" aria-pressed="false">Freeze</button>
    </div>
    <fieldset class="feed-filter">
      <legend>Show</legend>
      <label><input type="checkbox" name="lifecycle" checked> lifecycle</label>
      <label><input type="checkbox" name="job" checked> jobs</label>
      <label><input type="checkbox" name="task" checked> tasks</label>
    </fieldset>
    <ol id="feed" class="feed" aria-label="Latest events, newest first"></ol>
  </section>
</main>
</body>
</html>
`

/** `GET /dashboard/app.css`. */
export const css = `:root {
  --bg: #f6f7f9; --card: #fff; --text: #1b1f24; --muted: #59636e; --line: #d1d9e0; --accent: #0969da;
  --ok: #1a7f37; --ok-bg: #dafbe1; --warn: #8a5a00; --warn-bg: #fff8c5; --busy: #bc4c00; --busy-bg: #fff1e5;
  --bad: #cf222e; --bad-bg: #ffebe9; --idle: #59636e; --idle-bg: #eaeef2;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --card: #161b22; --text: #e6edf3; --muted: #9198a1; --line: #30363d; --accent: #4493f8;
    --ok: #3fb950; --ok-bg: #12261e; --warn: #d29922; --warn-bg: #272115; --busy: #db6d28; --busy-bg: #2b1a10;
    --bad: #f85149; --bad-bg: #2d1517; --idle: #9198a1; --idle-bg: #21262d;
  }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--text);
  background: var(--bg); }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
h1 { font-size: 1.35rem; margin: 0; }
h2 { font-size: 1rem; margin: 0 0 0.6rem; }
.subtitle { color: var(--muted); font-weight: 400; }
.top { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 0.5rem 1rem;
  padding: 0.9rem 1rem; max-width: 90rem; margin: 0 auto; }
.connection { margin: 0; padding: 0.2rem 0.7rem; border-radius: 999px; font-size: 0.9rem; background: var(--idle-bg);
  color: var(--idle); }
.connection-live { background: var(--ok-bg); color: var(--ok); }
.connection-lost, .connection-auth { background: var(--warn-bg); color: var(--warn); }
.connection-gone { background: var(--bad-bg); color: var(--bad); font-weight: 600; }
main { display: grid; gap: 1rem; padding: 0 1rem 1rem; max-width: 90rem; margin: 0 auto;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 22rem), 1fr)); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem; min-width: 0; }
.auth { max-width: 40rem; margin: 0 auto 1rem; }
.auth-row { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: center; }
.auth-row input { flex: 1 1 12rem; min-width: 0; }
.card-head { display: flex; align-items: baseline; gap: 0.75rem; flex-wrap: wrap; }
.card-head h2 { margin-right: auto; }
.feed-card { grid-column: 1 / -1; }
@media (min-width: 72rem) { .feed-card { grid-column: span 2; } }
.muted, .hint { color: var(--muted); }
.hint { font-size: 0.85rem; }
.status { margin: 0.4rem 0; }
.status:empty { margin: 0; }
.status.error, .error { color: var(--bad); }
.state { display: inline-block; font-size: 1.6rem; font-weight: 700; margin: 0; padding: 0.1rem 0.8rem;
  border-radius: 6px; background: var(--idle-bg); color: var(--idle); }
.state-Running { background: var(--ok-bg); color: var(--ok); }
.state-Paused { background: var(--warn-bg); color: var(--warn); }
.state-Stopping { background: var(--busy-bg); color: var(--busy); }
.state-Stopped { background: var(--bad-bg); color: var(--bad); }
.stale .state { opacity: 0.6; }
.diagram { list-style: none; display: flex; flex-wrap: wrap; align-items: center; gap: 0.3rem; padding: 0;
  margin: 0.8rem 0; font-size: 0.85rem; }
.diagram li { display: flex; align-items: center; }
.diagram li span { padding: 0.15rem 0.5rem; border: 1px solid var(--line); border-radius: 4px; color: var(--muted); }
.diagram li + li::before { content: "→" / ""; margin-right: 0.3rem; color: var(--muted); }
.diagram li[data-state="Paused"]::before { content: "⇄" / ""; }
.diagram li.current span { font-weight: 700; border-color: currentColor; color: var(--text); }
.diagram li.current[data-state="Running"] span { color: var(--ok); background: var(--ok-bg); }
.diagram li.current[data-state="Paused"] span { color: var(--warn); background: var(--warn-bg); }
.diagram li.current[data-state="Stopping"] span { color: var(--busy); background: var(--busy-bg); }
.diagram li.current[data-state="Stopped"] span { color: var(--bad); background: var(--bad-bg); }
.controls { display: flex; flex-wrap: wrap; gap: 0.5rem; }
button { font: inherit; padding: 0.35rem 0.9rem; border-radius: 6px; border: 1px solid var(--line);
  background: var(--idle-bg); color: var(--text); cursor: pointer; min-height: 2.25rem; }
button:hover:not(:disabled) { border-color: var(--accent); }
button:focus-visible, input:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
button:disabled { opacity: 0.45; cursor: not-allowed; }
button.danger { color: var(--bad); }
button.small { padding: 0.1rem 0.6rem; min-height: 1.9rem; font-size: 0.85rem; }
input { font: inherit; padding: 0.35rem 0.5rem; border: 1px solid var(--line); border-radius: 6px;
  background: var(--bg); color: var(--text); }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(7.5rem, 1fr)); gap: 0.6rem; margin: 0; }
.figures div { background: var(--bg); border-radius: 6px; padding: 0.4rem 0.6rem; }
.figures dt { font-size: 0.8rem; color: var(--muted); }
.figures dd { margin: 0; font-size: 1.15rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.chart { margin: 0.8rem 0 0; }
.chart svg { display: block; width: 100%; height: 7.5rem; border-left: 1px solid var(--line);
  border-bottom: 1px solid var(--line); }
.chart-scale, .chart-axis { display: flex; justify-content: space-between; font-size: 0.75rem; color: var(--muted); }
.grid-line { stroke: var(--line); stroke-dasharray: 3 3; vector-effect: non-scaling-stroke; }
.line-done, .line-failed { fill: none; stroke-width: 2; vector-effect: non-scaling-stroke; stroke-linejoin: round; }
.line-done { stroke: var(--accent); }
.area-done { fill: var(--accent); opacity: 0.12; stroke: none; }
.line-failed { stroke: var(--bad); }
figcaption { display: flex; gap: 1rem; font-size: 0.8rem; color: var(--muted); margin-top: 0.3rem; }
.key::before { content: ""; display: inline-block; width: 0.8rem; height: 0.2rem; margin-right: 0.3rem;
  vertical-align: middle; }
.key-done::before { background: var(--accent); }
.key-failed::before { background: var(--bad); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 0.3rem 0.5rem; text-align: right; border-bottom: 1px solid var(--line); white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { font-size: 0.8rem; color: var(--muted); font-weight: 600; }
tfoot th, tfoot td { font-weight: 700; border-bottom: 0; }
td.nonzero-dead { color: var(--bad); font-weight: 700; }
.dead-list { list-style: none; margin: 0; padding: 0; max-height: 24rem; overflow-y: auto; }
.dead-list li { display: grid; grid-template-columns: 1fr auto; gap: 0.2rem 0.75rem; padding: 0.5rem 0;
  border-bottom: 1px solid var(--line); }
.dead-list .dead-title { font-weight: 600; overflow-wrap: anywhere; }
.dead-list .dead-meta { font-size: 0.8rem; color: var(--muted); grid-column: 1; }
.dead-list .dead-error { grid-column: 1 / -1; margin: 0; font-size: 0.85rem; color: var(--bad);
  overflow-wrap: anywhere; }
.dead-list button { grid-column: 2; grid-row: 1 / span 2; align-self: center; }
.feed-filter { border: 0; padding: 0; margin: 0.3rem 0 0; display: flex; flex-wrap: wrap; gap: 0.2rem 1rem;
  font-size: 0.85rem; }
.feed-filter legend { float: left; color: var(--muted); margin-right: 0.2rem; padding: 0; }
.feed-filter input { vertical-align: middle; }
.feed { list-style: none; margin: 0.4rem 0 0; padding: 0; max-height: 28rem; overflow-y: auto;
  font-size: 0.85rem; font-variant-numeric: tabular-nums; }
.feed li { display: grid; grid-template-columns: auto 5.5rem 1fr; gap: 0.6rem; padding: 0.15rem 0.25rem;
  border-bottom: 1px solid var(--line); }
.feed time { color: var(--muted); }
.feed .tag { font-weight: 600; color: var(--muted); }
.feed .text { overflow-wrap: anywhere; }
.feed .ev-lifecycle .tag { color: var(--accent); }
.feed .ev-lifecycle .text { font-weight: 600; }
.feed .ev-job .tag { color: var(--ok); }
.feed .ev-bad .tag, .feed .ev-bad .text { color: var(--bad); }
.feed .ev-warn .tag { color: var(--warn); }
.feed.hide-lifecycle .cat-lifecycle, .feed.hide-job .cat-job, .feed.hide-task .cat-task { display: none; }
.feed .ev-note { color: var(--muted); font-style: italic; }
.feed .ev-more { color: var(--muted); background: var(--bg); }
@media (max-width: 30rem) {
  .top { padding: 0.75rem; }
  main { padding: 0 0.5rem 0.5rem; gap: 0.6rem; }
  .card { padding: 0.75rem; }
  .feed li { grid-template-columns: auto 1fr; }
  .feed .tag { display: none; }
  .state { font-size: 1.4rem; }
  th, td { padding: 0.3rem 0.25rem; font-size: 0.9rem; }
  thead th { font-size: 0.75rem; }
}
`

/**
 * `GET /dashboard/app.js`. Written as `String.raw` so its regular expressions keep their backslashes; it uses no
 * template literals of its own for the same reason.
 */
export const js = String.raw`"use strict";
(() => {
  const FEED_ROWS = ` + String(FEED_ROWS) + String.raw`;
  /** Seconds of stats the chart shows. */
  const CHART_SECONDS = 300;
  const DEAD_LIMIT = 20;
  /** Without a byte for this long, the stream is taken for dead and opened again (heartbeats come every 15 s). */
  const STALE_MS = 40000;
  const TOKEN_KEY = "effect-worker-context/dashboard/token";
  const STATES = ["Pending", "Running", "Paused", "Stopping", "Stopped"];
  const DETAIL = {
    Pending: "Not started yet: nothing runs.",
    Running: "Claiming and running tasks.",
    Paused: "Tasks in flight go on; no new ones start until it is resumed.",
    Stopping: "Shutting down: draining the tasks in flight, taking no new ones.",
    Stopped: "Stopped: nothing runs, and it cannot start again."
  };

  const $ = (id) => document.getElementById(id);

  const integer = new Intl.NumberFormat();
  const oneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  const count = (n) => integer.format(n);
  const perSecond = (n, one, many) => {
    const text = n >= 10 ? integer.format(Math.round(n)) : oneDecimal.format(n);
    return text + " " + (text === "1" ? one : many) + "/s";
  };
  const plural = (n, one, many) => count(n) + " " + (n === 1 ? one : many);
  const clockTime = (ms) => timeFormat.format(new Date(ms));
  /** The time alone for today, the date and time otherwise. */
  const when = (ms) => {
    const date = new Date(ms);
    return date.toDateString() === new Date().toDateString() ? date.toLocaleTimeString() : date.toLocaleString();
  };

  // --- the token ------------------------------------------------------------------------------------------------

  const storage = {
    get() { try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; } },
    set(value) { try { if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ } }
  };
  let token = null;
  {
    const fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fromFragment) {
      storage.set(fromFragment);
      // Out of the address bar, so it is neither bookmarked nor shown over a shoulder.
      history.replaceState(null, "", location.pathname + location.search);
    }
    token = fromFragment || storage.get();
  }
  const withToken = (headers) => {
    if (token) headers.authorization = "Bearer " + token;
    return headers;
  };

  // --- the model ------------------------------------------------------------------------------------------------

  const model = {
    name: null,
    state: null,
    taskCount: null,
    unready: new Map(),
    samples: [],
    jobs: undefined,
    jobsError: null,
    jobsAt: 0,
    lastDead: null,
    connection: "connecting",
    connectionText: "Connecting…",
    stopped: false
  };
  const dirty = { state: false, figures: false, chart: false, queues: false };
  let frame = 0;
  const schedule = () => {
    if (frame === 0) frame = requestAnimationFrame(render);
  };
  const touch = (part) => {
    dirty[part] = true;
    schedule();
  };

  // The feed's ring: the latest items not drawn yet, one fewer than the rows, so that the row that counts the ones
  // it overwrote still fits in the list below them.
  const RING = FEED_ROWS - 1;
  const ring = new Array(RING);
  let ringHead = 0;
  let ringSize = 0;
  let unseen = 0;
  let received = 0;
  let frozen = false;
  const shown = { lifecycle: true, job: true, task: true };
  const category = (e) =>
    e._tag === "Custom" ? "job" : e._tag === "TaskStarted" || e._tag === "TaskFinished" || e._tag === "Idle" ? "task" : "lifecycle";
  const pushFeed = (item) => {
    if (item.event && !shown[category(item.event)]) return;
    if (ringSize === RING) {
      ring[ringHead] = item;
      ringHead = (ringHead + 1) % RING;
      unseen++;
    } else {
      ring[(ringHead + ringSize) % RING] = item;
      ringSize++;
    }
    if (!frozen) schedule();
  };
  const note = (text, kind) => pushFeed({ at: Date.now(), note: text, kind: kind || "note" });

  // --- messages -------------------------------------------------------------------------------------------------

  const setState = (state) => {
    if (state && state !== model.state) {
      model.state = state;
      touch("state");
    }
  };

  const applySnapshot = (s) => {
    const first = model.name === null;
    model.name = s.name;
    setState(s.state);
    model.taskCount = s.taskCount;
    model.unready = new Map();
    for (const u of (s.readiness && s.readiness.unready) || []) model.unready.set(u.check, u);
    touch("state");
    touch("figures");
    if (first) note("connected to worker " + s.name + ": " + s.state);
    else if (s.gap) note("reconnected: events between the two connections were missed");
    else note("reconnected");
    if (model.lastDead !== null) refreshDeadSoon();
  };

  const LIFECYCLE = { Started: "Running", Paused: "Paused", Resumed: "Running", Stopping: "Stopping", Stopped: "Stopped" };

  const applyEvent = (e) => {
    received++;
    const state = LIFECYCLE[e._tag];
    if (state) setState(state);
    if (e._tag === "Stopped") model.stopped = true;
    if (e._tag === "TaskStarted" && model.taskCount !== null) {
      model.taskCount++;
      touch("figures");
    } else if (e._tag === "TaskFinished" && model.taskCount) {
      model.taskCount--;
      touch("figures");
    } else if (e._tag === "Custom" && e.value) {
      const v = e.value;
      if (v._tag === "ReadinessChanged" && typeof v.check === "string") {
        if (v.ready) model.unready.delete(v.check);
        else model.unready.set(v.check, { check: v.check, reason: v.reason || "", since: new Date().toISOString() });
        touch("figures");
      } else if (v._tag === "JobDeadLettered") refreshDeadSoon();
    }
    pushFeed({ at: Date.now(), event: e });
  };

  const applyStats = (s) => {
    setState(s.state);
    model.taskCount = s.taskCount;
    const at = Date.parse(s.at) || Date.now();
    const seconds = (typeof s.intervalMs === "number" ? s.intervalMs : 1000) / 1000;
    // A sliver of an interval (the last one, cut short by Stopped) would read as a spike: leave it out.
    if (seconds >= 0.25) {
      model.samples.push({
        at,
        done: ((s.succeeded || 0) + (s.failed || 0) + (s.interrupted || 0)) / seconds,
        failed: (s.failed || 0) / seconds
      });
      while (model.samples.length > 0 && model.samples[0].at < at - CHART_SECONDS * 1000) model.samples.shift();
    }
    // The last stats (the one Stopped sends) may come without the store's counts: keep the last ones known then.
    if (s.jobs || s.jobsError) {
      model.jobs = s.jobs;
      model.jobsError = s.jobsError || null;
      model.jobsAt = at;
    }
    // The dead letters are asked for once the stats say there is a store, and again whenever its dead count moves.
    if (s.jobs && s.jobs.dead !== model.lastDead) {
      model.lastDead = s.jobs.dead;
      refreshDeadSoon();
    }
    touch("figures");
    touch("chart");
    touch("queues");
  };

  const onMessage = (type, data) => {
    let value;
    try {
      value = JSON.parse(data);
    } catch (e) {
      note("a " + type + " message the page could not read", "bad");
      return;
    }
    switch (type) {
      case "snapshot": applySnapshot(value); break;
      case "worker": applyEvent(value); break;
      case "stats": applyStats(value); break;
      case "dropped":
        note("the server dropped " + plural(value.count, "event", "events") + " for this page: it could not keep up", "warn");
        break;
      default: break;
    }
  };

  // --- the stream -----------------------------------------------------------------------------------------------

  let lastEventId = null;
  let lastByteAt = 0;
  let current = null;
  let running = false;

  const setConnection = (kind, text) => {
    model.connection = kind;
    model.connectionText = text;
    touch("state");
  };

  /** Splits the text into server-sent event blocks, dispatches the complete ones, returns the rest. */
  const parse = (text) => {
    let start = 0;
    let end;
    while ((end = text.indexOf("\n\n", start)) >= 0) {
      const block = text.slice(start, end);
      start = end + 2;
      let type = "message";
      let data = null;
      for (const line of block.split("\n")) {
        if (line === "" || line[0] === ":") continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value[0] === " ") value = value.slice(1);
        if (field === "id") lastEventId = value;
        else if (field === "event") type = value;
        else if (field === "data") data = data === null ? value : data + "\n" + value;
      }
      if (data !== null) onMessage(type, data);
    }
    return text.slice(start);
  };

  /**
   * One connection: resolves with "ended" when the stream ends, "auth" when the token is refused, "status N" for
   * another answer; rejects when fetch fails (no server) or the stream breaks.
   */
  const connect = async () => {
    const controller = new AbortController();
    current = controller;
    const headers = withToken({ accept: "text/event-stream" });
    if (lastEventId !== null) headers["last-event-id"] = lastEventId;
    const response = await fetch("events", { headers, cache: "no-store", signal: controller.signal });
    if (response.status === 401) {
      const body = await response.json().catch(() => null);
      needToken(body && body.message);
      return "auth";
    }
    if (!response.ok || !response.body) return "status " + response.status;
    lastByteAt = Date.now();
    setConnection("live", "Live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return "ended";
      lastByteAt = Date.now();
      rest = parse(rest + (value.indexOf("\r") >= 0 ? value.replace(/\r\n?/g, "\n") : value));
      attempt = 0;
    }
  };

  let attempt = 0;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const run = async () => {
    if (running) return;
    running = true;
    for (;;) {
      let outcome;
      try {
        outcome = await connect();
      } catch (e) {
        outcome = "failed";
      }
      current = null;
      if (model.stopped) {
        running = false;
        return afterStopped();
      }
      if (outcome === "auth") {
        running = false;
        return;
      }
      attempt++;
      const delay = Math.round(Math.min(10000, 500 * Math.pow(2, attempt - 1)) * (0.8 + Math.random() * 0.4));
      const seconds = Math.ceil(delay / 1000) + " s";
      setConnection(
        "lost",
        outcome === "failed"
          ? "The server is gone: retrying in " + seconds
          : outcome === "ended"
          ? "The stream ended: reconnecting in " + seconds
          : "The event stream answered " + outcome.slice(7) + ": retrying in " + seconds
      );
      await sleep(delay);
      setConnection("connecting", "Reconnecting…");
    }
  };

  /** After Stopped the stream ends: watch whether the server still answers, and say so. */
  const afterStopped = async () => {
    setConnection("gone", "Worker stopped — the event stream has ended");
    for (let i = 0; i < 60; i++) {
      try {
        await fetch("worker", { cache: "no-store", signal: AbortSignal.timeout(3000) });
      } catch (e) {
        setConnection("gone", "Worker stopped — the server is gone");
        return;
      }
      await sleep(1000);
    }
    setConnection("gone", "Worker stopped — the server still answers: reload to watch a new worker");
  };

  setInterval(() => {
    if (current !== null && model.connection === "live" && Date.now() - lastByteAt > STALE_MS) current.abort();
  }, 5000);

  // --- requests -------------------------------------------------------------------------------------------------

  /** A JSON request; never rejects: { ok, status, body, message }. */
  const request = async (method, path) => {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: withToken({ accept: "application/json" }),
        cache: "no-store"
      });
    } catch (e) {
      return { ok: false, status: 0, body: null, message: "the server did not answer" };
    }
    const body = await response.json().catch(() => null);
    if (response.status === 401) needToken(body && body.message);
    const message = body && typeof body.message === "string" ? body.message : "HTTP " + response.status;
    return { ok: response.ok, status: response.status, body, message };
  };

  const show = (element, text, error) => {
    element.textContent = text;
    element.classList.toggle("error", Boolean(error));
  };

  // --- controls -------------------------------------------------------------------------------------------------

  const controlStatus = $("control-status");
  let busy = null;
  const control = async (action, label) => {
    if (
      action === "stop" &&
      !confirm("Stop the worker?\n\nIt takes no new tasks, gives the ones in flight until its shutdown timeout to finish, and stops. It cannot be started again from this page.")
    ) return;
    busy = action;
    touch("state");
    show(controlStatus, label + "…", false);
    const answer = await request("POST", "worker/" + action);
    busy = null;
    if (answer.ok) {
      show(controlStatus, label + ": the worker is " + answer.body.state + ".", false);
      setState(answer.body.state);
    } else {
      show(controlStatus, label + " failed" + (answer.status ? " (" + answer.status + ")" : "") + ": " + answer.message, true);
    }
    touch("state");
  };
  $("pause").addEventListener("click", () => control("pause", "Pause"));
  $("resume").addEventListener("click", () => control("resume", "Resume"));
  $("stop").addEventListener("click", () => control("stop", "Stop"));

  // --- dead letters ---------------------------------------------------------------------------------------------

  const deadList = $("dead-list");
  const deadNote = $("dead-note");
  const deadStatus = $("dead-status");
  let deadLoading = false;
  let deadAgain = false;
  let deadTimer = 0;
  const refreshDeadSoon = () => {
    if (deadTimer === 0) deadTimer = setTimeout(() => { deadTimer = 0; refreshDead(); }, 250);
  };
  let noDeadRoute = false;
  const refreshDead = async () => {
    if (noDeadRoute) return;
    if (deadLoading) {
      deadAgain = true;
      return;
    }
    deadLoading = true;
    const answer = await request("GET", "jobs/dead?limit=" + DEAD_LIMIT);
    deadLoading = false;
    if (answer.ok && answer.body && Array.isArray(answer.body.jobs)) renderDead(answer.body.jobs);
    else if (answer.status === 404) {
      // Not mounted (routes without jobs): asking again would only fill the console with 404s.
      noDeadRoute = true;
      deadList.replaceChildren();
      show(deadNote, "This server does not serve the job store's routes.", false);
    } else show(deadNote, "Could not load the dead letters" + (answer.status ? " (" + answer.status + ")" : "") + ": " + answer.message, true);
    if (deadAgain) {
      deadAgain = false;
      refreshDeadSoon();
    }
  };
  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const renderDead = (jobs) => {
    const items = jobs.map((job) => {
      const li = element("li");
      li.dataset.id = job.id;
      li.append(element("span", "dead-title", "#" + job.id + " " + job.name));
      const failed = Date.parse(job.failedAt);
      li.append(element(
        "span",
        "dead-meta",
        job.queue + " · " + plural(job.attempts, "attempt", "attempts") +
          (Number.isNaN(failed) ? "" : " · failed " + when(failed))
      ));
      const button = element("button", "small", "Redrive");
      button.type = "button";
      button.setAttribute("aria-label", "Redrive job " + job.id + " (" + job.name + ")");
      button.addEventListener("click", () => redrive(job, button));
      li.append(button);
      li.append(element("p", "dead-error", job.lastError || "no error recorded"));
      return li;
    });
    deadList.replaceChildren(...items);
    const total = model.jobs ? model.jobs.dead : null;
    if (jobs.length === 0) show(deadNote, "No dead letters.", false);
    else if (total !== null && total > jobs.length) show(deadNote, "The latest " + count(jobs.length) + " of " + count(total) + ".", false);
    else show(deadNote, "", false);
  };
  const redrive = async (job, button) => {
    button.disabled = true;
    show(deadStatus, "Redriving job " + job.id + "…", false);
    const answer = await request("POST", "jobs/dead/" + encodeURIComponent(job.id) + "/redrive");
    if (answer.ok) show(deadStatus, "Job " + job.id + " (" + job.name + ") redriven: it is ready again, its attempts reset.", false);
    else {
      show(deadStatus, "Redrive of job " + job.id + " failed" + (answer.status ? " (" + answer.status + ")" : "") + ": " + answer.message, true);
      button.disabled = false;
    }
    refreshDeadSoon();
  };
  $("dead-refresh").addEventListener("click", () => refreshDead());

  // --- the token form -------------------------------------------------------------------------------------------

  const auth = $("auth");
  const tokenInput = $("token");
  const needToken = (message) => {
    if (token) {
      token = null;
      storage.set(null);
    }
    $("auth-message").textContent = message || "This worker's event stream and controls need a token.";
    if (auth.hidden) {
      auth.hidden = false;
      tokenInput.focus();
    }
    setConnection("auth", "Needs a token");
  };
  auth.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = tokenInput.value.trim();
    if (!value) return;
    token = value;
    storage.set(value);
    tokenInput.value = "";
    auth.hidden = true;
    setConnection("connecting", "Connecting…");
    run();
    if (model.lastDead !== null) refreshDead();
  });

  // --- the feed -------------------------------------------------------------------------------------------------

  const feed = $("feed");
  const feedCount = $("feed-count");
  const freeze = $("feed-freeze");
  freeze.addEventListener("click", () => {
    frozen = !frozen;
    freeze.setAttribute("aria-pressed", String(frozen));
    freeze.textContent = frozen ? "Unfreeze" : "Freeze";
    schedule();
  });

  for (const box of document.querySelectorAll(".feed-filter input")) {
    box.addEventListener("change", () => {
      shown[box.name] = box.checked;
      feed.classList.toggle("hide-" + box.name, !box.checked);
    });
  }

  const jobText = (v) => {
    const job = "job " + v.id + " " + v.name;
    const attempt = "attempt " + v.attempt;
    switch (v._tag) {
      case "JobClaimed": return ["job", "claimed", job + " claimed (" + v.queue + ", " + attempt + ")"];
      case "JobSucceeded": return ["job", "succeeded", job + " succeeded in " + count(v.durationMs) + " ms (" + attempt + ")"];
      case "JobRetried": return ["warn", "retried", job + " failed (" + attempt + "), retried in " + count(v.delayMs) + " ms: " + v.error];
      case "JobDeadLettered": return ["bad", "dead", job + " dead after " + attempt + ": " + v.error];
      case "JobTimedOut": return ["bad", "timed out", job + " timed out after " + count(v.timeoutMs) + " ms (" + attempt + ")"];
      case "JobLeaseLost": return ["bad", "lease lost", job + " lost its lease: its outcome was discarded"];
      case "JobReleased": return ["warn", "released", job + " released unfinished" + (v.refunded ? ", attempt refunded" : "")];
      default: return null;
    }
  };

  const describe = (e) => {
    switch (e._tag) {
      case "Started": return ["lifecycle", "started", "Started: the worker runs"];
      case "Paused": return ["lifecycle", "paused", "Paused: tasks in flight go on, no new ones start"];
      case "Resumed": return ["lifecycle", "resumed", "Resumed: the worker runs"];
      case "Stopping": return ["lifecycle", "stopping", "Stopping: draining the tasks in flight"];
      case "Stopped": return ["lifecycle", "stopped", "Stopped: " + plural(e.interrupted, "task", "tasks") + " interrupted at the deadline"];
      case "Idle": return ["task", "idle", "Idle: no task in flight"];
      case "TaskStarted": return ["task", "task", "task " + e.taskId + (e.label ? " (" + e.label + ")" : "") + " started"];
      case "TaskFinished": {
        const what = "task " + e.taskId + (e.label ? " (" + e.label + ")" : "");
        if (e.outcome === "success") return ["task", "task", what + " succeeded"];
        if (e.outcome === "interrupted") return ["warn", "task", what + " interrupted"];
        return ["bad", "task", what + " failed" + (e.cause ? ": " + e.cause : "")];
      }
      case "Custom": {
        const v = e.value;
        if (v && typeof v._tag === "string") {
          const job = jobText(v);
          if (job) return job;
          if (v._tag === "ReadinessChanged") {
            return v.ready
              ? ["job", "ready", "readiness: " + v.check + " is ready"]
              : ["bad", "unready", "readiness: " + v.check + " is unready" + (v.reason ? ": " + v.reason : "")];
          }
        }
        return ["note", "custom", JSON.stringify(v)];
      }
      default: return ["note", String(e._tag), JSON.stringify(e)];
    }
  };

  const feedRow = (item) => {
    const [kind, tag, text] = item.event ? describe(item.event) : [item.kind, "page", item.note];
    const li = element("li", "ev-" + kind + (item.event ? " cat-" + category(item.event) : ""));
    const time = element("time", "", clockTime(item.at));
    time.dateTime = new Date(item.at).toISOString();
    li.append(time, element("span", "tag", tag), element("span", "text", text));
    return li;
  };

  const renderFeed = () => {
    if (frozen || (ringSize === 0 && unseen === 0)) return;
    const rows = document.createDocumentFragment();
    for (let i = ringSize - 1; i >= 0; i--) rows.append(feedRow(ring[(ringHead + i) % RING]));
    if (unseen > 0) {
      // Older than every row above it: the ones the ring overwrote before a frame could show them.
      const more = element("li", "ev-more");
      more.append(element("span", "", ""), element("span", "tag", "…"), element("span", "text", plural(unseen, "more event", "more events") + " not shown"));
      rows.append(more);
    }
    feed.prepend(rows);
    while (feed.childElementCount > FEED_ROWS) feed.lastElementChild.remove();
    ring.fill(undefined);
    ringHead = 0;
    ringSize = 0;
    unseen = 0;
  };

  // --- drawing --------------------------------------------------------------------------------------------------

  const stateElement = $("state");
  const stateCard = stateElement.closest(".card");
  const renderState = () => {
    const state = model.state;
    stateElement.textContent = state || "Unknown";
    stateElement.className = "state state-" + (state || "unknown");
    const stale = model.connection !== "live" && state !== "Stopped";
    stateCard.classList.toggle("stale", stale);
    $("state-detail").textContent = state
      ? DETAIL[state] + (stale ? " (last known: the page is not connected)" : "")
      : "Waiting for the worker's event stream.";
    for (const li of $("diagram").children) {
      const on = li.dataset.state === state;
      li.classList.toggle("current", on);
      if (on) li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
    }
    const live = model.connection === "live" && busy === null;
    $("pause").disabled = !(live && state === "Running");
    $("resume").disabled = !(live && state === "Paused");
    $("stop").disabled = !(live && (state === "Pending" || state === "Running" || state === "Paused"));
    const connection = $("connection");
    connection.textContent = model.connectionText;
    connection.className = "connection connection-" + model.connection;
    if (model.name) $("worker-name").textContent = model.name;
    document.title = (model.name ? model.name + ": " : "") + (state || "…") + " · worker dashboard";
  };

  const average = (key, n) => {
    const recent = model.samples.slice(-n);
    if (recent.length === 0) return null;
    return recent.reduce((sum, s) => sum + s[key], 0) / recent.length;
  };

  const renderFigures = () => {
    $("in-flight").textContent = model.taskCount === null ? "–" : plural(model.taskCount, "task", "tasks");
    const stopped = model.state === "Stopped";
    const done = stopped ? 0 : average("done", 5);
    const failed = stopped ? 0 : average("failed", 5);
    $("rate-done").textContent = done === null ? "–" : perSecond(done, "task", "tasks");
    $("rate-failed").textContent = failed === null ? "–" : perSecond(failed, "failure", "failures");
    const readiness = $("readiness");
    if (model.state === null) readiness.textContent = "–";
    else if (model.unready.size > 0) {
      const [first] = model.unready.values();
      readiness.textContent = "Not ready: " + first.check + (first.reason ? " (" + first.reason + ")" : "") +
        (Date.parse(first.since) ? ", since " + clockTime(Date.parse(first.since)) : "");
    } else readiness.textContent = model.state === "Running" ? "Ready" : "Not ready: " + model.state;
    readiness.classList.toggle("error", model.unready.size > 0);
  };

  const niceCeiling = (n) => {
    if (n <= 1) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(n)));
    for (const step of [1, 2, 5, 10]) if (n <= step * power) return step * power;
    return 10 * power;
  };

  const renderChart = () => {
    const samples = model.samples;
    if (samples.length === 0) return;
    const last = samples[samples.length - 1].at;
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, s.done, s.failed);
    const top = niceCeiling(peak);
    // The window grows with the data, from a minute to CHART_SECONDS, so a fresh page draws more than a sliver.
    const span = Math.min(CHART_SECONDS, Math.max(60, Math.ceil((last - samples[0].at) / 60000) * 60));
    const x = (s) => (300 - ((last - s.at) / 1000) * (300 / span)).toFixed(1);
    const y = (v) => (100 - (v / top) * 96).toFixed(1);
    const done = samples.map((s) => x(s) + "," + y(s.done)).join(" ");
    $("line-done").setAttribute("points", done);
    $("area-done").setAttribute("points", x(samples[0]) + ",100 " + done + " " + x(samples[samples.length - 1]) + ",100");
    $("line-failed").setAttribute("points", samples.map((s) => x(s) + "," + y(s.failed)).join(" "));
    $("chart-max").textContent = count(top);
    $("chart-since").textContent = plural(span / 60, "min", "min") + " ago";
    $("chart-updated").textContent = "now (" + clockTime(last) + ")";
    const now = samples[samples.length - 1];
    $("chart").setAttribute(
      "aria-label",
      "Tasks per second over the last " + plural(span / 60, "minute", "minutes") + ": now " + perSecond(now.done, "task", "tasks") + ", peak " + perSecond(peak, "task", "tasks") + "; failures now " +
        perSecond(now.failed, "failure", "failures")
    );
  };

  const cell = (tag, text, className) => {
    const node = element(tag, className, text);
    if (tag === "th") node.scope = "row";
    return node;
  };
  const queueRow = (name, counts, isTotal) => {
    const tr = element("tr");
    if (!isTotal) tr.dataset.queue = name;
    tr.append(cell("th", name));
    for (const column of ["ready", "scheduled", "leased", "dead"]) {
      const td = cell("td", count(counts[column] || 0), column === "dead" && counts.dead > 0 ? "nonzero-dead" : "");
      td.dataset.col = column;
      tr.append(td);
    }
    return tr;
  };
  const renderQueues = () => {
    const note = $("queues-note");
    const body = $("queues-body");
    const total = $("queues-total");
    if (model.jobsError) show(note, "The job store did not answer: " + model.jobsError, true);
    else if (!model.jobs) show(note, "This worker reports no job store.", false);
    else if (model.state === "Stopped") show(note, "As of " + clockTime(model.jobsAt) + ".", false);
    else show(note, "", false);
    if (!model.jobs) {
      if (!model.jobsError) {
        body.replaceChildren();
        total.replaceChildren();
      }
      return;
    }
    const byQueue = model.jobs.byQueue || {};
    const names = Object.keys(byQueue).sort();
    body.replaceChildren(...names.map((name) => queueRow(name, byQueue[name], false)));
    total.replaceChildren(queueRow("All", model.jobs, true));
    if (names.length === 0) show(note, "No jobs in the store.", false);
  };

  let lastCountAt = Date.now();
  let lastReceived = 0;
  const renderCount = () => {
    const now = Date.now();
    const rate = ((received - lastReceived) * 1000) / Math.max(1, now - lastCountAt);
    lastCountAt = now;
    lastReceived = received;
    feedCount.textContent = plural(received, "event", "events") + " · " + perSecond(rate, "event", "events") +
      (frozen ? " · frozen" : "");
  };
  setInterval(renderCount, 1000);

  function render() {
    frame = 0;
    if (dirty.state) { dirty.state = false; renderState(); }
    if (dirty.figures) { dirty.figures = false; renderFigures(); }
    if (dirty.chart) { dirty.chart = false; renderChart(); }
    if (dirty.queues) { dirty.queues = false; renderQueues(); }
    renderFeed();
  }

  show(deadNote, "This worker reports no job store.", false);
  renderState();
  renderCount();
  run();
})();
`
