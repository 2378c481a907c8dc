/**
 * The other side of `bench/httpEvents.ts`, in processes of their own so that reading the streams does not cost the
 * server's event loop. As the readers (`STREAMS` > 0): opens that many event streams to `BASE/events` and reads them
 * all. As the driver (`STREAMS=0`): once the server says `probe`, probes `BASE/health/live` one request after another (a keep-alive connection) and,
 * with `ENQUEUES`, sends that many `POST BASE/enqueue` one after another. Both say `ready` once set up, and print
 * one line of JSON when they read `stop`: the probes' latencies in ms, and per stream what it read.
 */
import * as Http from "node:http"

const base = process.env.BASE!
const streams = Number(process.env.STREAMS ?? "0")
/** How many `POST /enqueue` to send, one after another, once told to probe (0: none). */
const enqueues = Number(process.env.ENQUEUES ?? "0")

interface StreamFigures {
  status: number
  bytes: number
  messages: number
  dropped: number
}

const figures: Array<StreamFigures> = []
let opened = 0
const requests: Array<Http.ClientRequest> = []

const ready = () => process.stdout.write("ready\n")

for (let i = 0; i < streams; i++) {
  const stream: StreamFigures = { status: 0, bytes: 0, messages: 0, dropped: 0 }
  figures.push(stream)
  let tail = ""
  const request = Http.get(`${base}/events`, { agent: false }, (response) => {
    stream.status = response.statusCode ?? 0
    response.setEncoding("utf8")
    let counted = false
    response.on("data", (text: string) => {
      stream.bytes += text.length
      // As little work as a reader can do: the readers share the machine's cores with the server.
      const scan = tail + text
      for (let at = scan.indexOf("\nid: "); at !== -1; at = scan.indexOf("\nid: ", at + 5)) stream.messages++
      for (let at = scan.indexOf("event: dropped"); at !== -1; at = scan.indexOf("event: dropped", at + 14)) {
        stream.dropped++
      }
      tail = scan.slice(-16)
      if (!counted) {
        counted = true
        if (++opened === streams) ready()
      }
    })
  })
  request.on("error", () => {})
  requests.push(request)
}
if (streams === 0) ready()

const agent = new Http.Agent({ keepAlive: true, maxSockets: 1 })
const latencies: Array<number> = []
let stopping = false

const probe = () => {
  if (stopping) return finish()
  const started = process.hrtime.bigint()
  Http.get(`${base}/health/live`, { agent }, (response) => {
    response.resume()
    response.on("end", () => {
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6)
      probe()
    })
  }).on("error", () => {
    latencies.push(Number.POSITIVE_INFINITY)
    probe()
  })
}

let enqueueMs = 0

/** Sends the enqueues one after another on a keep-alive connection of their own; says `enqueued` when done. */
const enqueueAll = () => {
  const posting = new Http.Agent({ keepAlive: true, maxSockets: 1 })
  const started = process.hrtime.bigint()
  let sent = 0
  const next = () => {
    if (sent === enqueues) {
      enqueueMs = Number(process.hrtime.bigint() - started) / 1e6
      posting.destroy()
      return process.stdout.write("enqueued\n")
    }
    sent++
    const request = Http.request(`${base}/enqueue`, {
      method: "POST",
      agent: posting,
      headers: { "content-type": "application/json" }
    }, (response) => {
      response.resume()
      response.on("end", next)
    })
    request.on("error", next)
    request.end(JSON.stringify({ n: sent }))
  }
  next()
}

const finish = () => {
  for (const request of requests) request.destroy()
  agent.destroy()
  process.stdout.write(JSON.stringify({ latencies, streams: figures, enqueueMs }) + "\n")
  process.exit(0)
}

process.stdin.setEncoding("utf8")
process.stdin.on("data", (text: string) => {
  if (text.includes("probe") && streams === 0) {
    probe()
    if (enqueues > 0) enqueueAll()
  }
  if (text.includes("stop")) {
    stopping = true
    // The readers probe nothing: they answer at once.
    if (streams > 0) finish()
  }
})
