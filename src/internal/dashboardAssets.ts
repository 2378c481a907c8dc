/**
 * The dashboard page, as strings: the build compiles them into `dist/` with the rest, so the package ships the
 * page with no copy step and no file system access. Every URL in them is relative to `GET /dashboard` (no leading
 * slash), so the page works wherever the routes are mounted: under `/ops`, `dashboard/app.js` is
 * `/ops/dashboard/app.js` and `events` is `/ops/events`. The script and the style are separate routes, since the
 * page's Content-Security-Policy allows no inline script or style.
 *
 * This is a placeholder: it shows the stream's messages as they come. The page proper replaces these strings.
 */

/** `GET /dashboard`. */
export const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Worker dashboard</title>
<link rel="stylesheet" href="dashboard/app.css">
<script src="dashboard/app.js" defer></script>
</head>
<body>
<main>
<h1>Worker dashboard</h1>
<p id="status">connecting…</p>
<pre id="log"></pre>
</main>
</body>
</html>
`

/** `GET /dashboard/app.css`. */
export const css = `body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1b1b1f; background: #fafafa; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
#log { white-space: pre-wrap; font-size: 12px; background: #fff; border: 1px solid #ddd; padding: 0.5rem; }
`

/**
 * `GET /dashboard/app.js`: reads `GET events` with `fetch` (an `EventSource` cannot send an `Authorization`
 * header), with the token from the URL fragment (`#token=...`, which the browser never sends to a server), and
 * prints each message.
 */
export const js = `"use strict";
(() => {
  const status = document.getElementById("status");
  const log = document.getElementById("log");
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const headers = token ? { authorization: "Bearer " + token } : {};
  let lastId;
  const connect = async () => {
    const response = await fetch("events", {
      headers: lastId === undefined ? headers : { ...headers, "last-event-id": lastId },
      cache: "no-store"
    });
    if (!response.ok) { status.textContent = "events: HTTP " + response.status; return false; }
    status.textContent = "connected";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return true;
      text += value;
      let end;
      while ((end = text.indexOf("\\n\\n")) >= 0) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        const id = /^id: (.*)$/m.exec(block);
        if (id) lastId = id[1];
        if (!block.startsWith(":")) log.textContent = (block + "\\n\\n" + log.textContent).slice(0, 20000);
      }
    }
  };
  const loop = async () => {
    for (;;) {
      const again = await connect().catch(() => true);
      if (!again) return;
      status.textContent = "reconnecting…";
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  };
  loop();
})();
`
