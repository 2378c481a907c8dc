/**
 * `npm run bench:http`: what `GET /events` clients cost the worker, with the stream cap's worth of them open.
 *
 * Side by side, in interleaved rounds: the same server (`WorkerHttp.routes` served by `WorkerHttp.serve`, a
 * `JobWorker` on a `MemoryJobStore`) with no event stream open, with one, with `maxStreams` (the default cap, 10)
 * and with 50 (the cap raised to 50 for it), every one read to the end by another process
 * (`bench/httpEventsClients.ts`), which also probes
 * `GET /health/live` one request after another throughout. Two scenarios:
 *
 * - `http`, the issue's: 2,000 jobs enqueued over HTTP (`POST /enqueue`, a tracked route, one request after
 *   another), each job waiting 20 ms as a job that calls a service does, at concurrency 20; timed from the first
 *   request to the last job's end.
 * - `saturated`, the worst case: 20,000 no-op jobs in one `store.enqueue`, at concurrency 10, timed to the last
 *   handler: the worker runs flat out and every job is four events, so the stream carries the most it ever can.
 *
 * Reported per variant: the probes' latency (p50, p99, max), jobs per second (median of rounds), the median of
 * per-round throughput ratios against no stream, and the `dropped` messages the reading streams got.
 *
 * `BENCH_WRITE=1` replaces the section between the `http-events` markers of `docs/benchmarks.md` with the figures.
 * `BENCH_ROUNDS=<n>` sets the rounds (default 5), `BENCH_STREAMS=<n>` the streams in place of the cap,
 * `BENCH_SCENARIOS=http,saturated` which scenarios run, `BENCH_PLACEMENTS=apart,shared` where the processes run
 * (`apart`: the worker on core 0 and the clients on core 1, with `taskset`, where the machine has two cores and
 * `taskset`; `shared`: both on every core), each scenario once per placement.
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Schema } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import * as os from "node:os"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { Job, JobStore, MemoryJobStore, WorkerContext } from "../src/index.js"
import * as JobWorker from "../src/JobWorker.js"
import * as WorkerHttp from "../src/WorkerHttp.js"
import * as WorkerHttpEvents from "../src/WorkerHttpEvents.js"
import { Countdown, median, now, quietLogs, rotate } from "./common.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const rounds = Number(process.env.BENCH_ROUNDS ?? "5")
const streams = Number(process.env.BENCH_STREAMS ?? String(WorkerHttpEvents.defaultMaxStreams))
/** Beside the cap, more streams than it allows by default: what raising `maxStreams` costs. */
const raised = 50
const scenarios = (process.env.BENCH_SCENARIOS ?? "http,saturated").split(",")

interface Scenario {
  readonly name: string
  readonly title: string
  readonly jobs: number
  readonly concurrency: number
  /** What a job's handler waits, in ms (0: nothing). */
  readonly jobMs: number
  /** Enqueue over HTTP, one request per job, rather than in one `store.enqueue`. */
  readonly overHttp: boolean
}

const Scenarios: Record<string, Scenario> = {
  http: {
    name: "http",
    title: "2,000 jobs enqueued over HTTP, 20 ms each, concurrency 20",
    jobs: 2000,
    concurrency: 20,
    jobMs: 20,
    overHttp: true
  },
  saturated: {
    name: "saturated",
    title: "20,000 no-op jobs in one `store.enqueue`, concurrency 10",
    jobs: 20_000,
    concurrency: 10,
    jobMs: 0,
    overHttp: false
  }
}

const Noop = Job.make("bench-http-noop", { payload: Schema.Struct({ n: Schema.Number }), queue: "bench" })

const epoch = new Date(0)
const newJobs = (count: number): Array<JobStore.NewJob> =>
  Array.from({ length: count }, (_, n) => ({
    name: Noop.name,
    queue: Noop.queue,
    payload: { n },
    runAt: epoch,
    priority: 0,
    key: undefined,
    maxAttempts: Noop.maxAttempts
  }))

interface ClientReport {
  readonly enqueueMs: number
  readonly latencies: ReadonlyArray<number>
  readonly streams: ReadonlyArray<{ status: number; bytes: number; messages: number; dropped: number }>
}

interface Round {
  readonly streams: number
  readonly jobsPerSecond: number
  readonly report: ClientReport
}

/**
 * Where the processes run. `apart`: this process (the worker and its server) on core 0, the clients' processes on
 * core 1, so that what the clients do with what they read (in a deployment, browsers on other machines) takes no
 * time from the worker: what is measured is what streams cost the worker itself. `shared`: every process on every
 * core, as they come, the readers' parsing competing with the worker for the two cores.
 */
type Placement = "apart" | "shared"

const canPin = os.cpus().length >= 2 && spawnSync("taskset", ["-V"]).status === 0
const placements = (process.env.BENCH_PLACEMENTS ?? (canPin ? "apart,shared" : "shared")).split(",") as Array<
  Placement
>

/** Puts this process's threads on the cores of `placement`. */
const place = (placement: Placement) => {
  const cores = placement === "apart" ? "0" : `0-${os.cpus().length - 1}`
  const result = spawnSync("taskset", ["-a", "-p", "-c", cores, String(process.pid)])
  if (placement === "apart" && result.status !== 0) throw new Error(`taskset failed: ${result.stderr}`)
}

/** The clients' process: resolves `ready` once its streams are open, `report` once told to stop. */
const clients = (base: string, count: number, enqueues: number, placement: Placement) =>
  Effect.acquireRelease(
    Effect.async<{ readonly send: (text: string) => void; readonly report: Promise<ClientReport> }>((resume) => {
      const args = ["--import", "tsx", "bench/httpEventsClients.ts"]
      const [command, commandArgs] = placement === "apart"
        ? ["taskset", ["-c", "1", process.execPath, ...args]]
        : [process.execPath, args]
      const child = spawn(command, commandArgs, {
        cwd: root,
        env: { ...process.env, BASE: base, STREAMS: String(count), ENQUEUES: String(enqueues) },
        stdio: ["pipe", "pipe", "inherit"]
      })
      let settle: (report: ClientReport) => void = () => {}
      const report = new Promise<ClientReport>((resolve) => {
        settle = resolve
      })
      createInterface({ input: child.stdout! }).on("line", (line) => {
        if (line === "ready") resume(Effect.succeed({ send: (text) => child.stdin!.write(text), report, child }))
        else if (line.startsWith("{")) settle(JSON.parse(line))
      })
    }),
    () => Effect.void
  )

const oneRound = (scenario: Scenario, count: number, placement: Placement): Effect.Effect<Round> =>
  Effect.scoped(Effect.gen(function*() {
    const { concurrency, jobMs, jobs, overHttp } = scenario
    const store = yield* MemoryJobStore.make()
    const ctx = yield* WorkerContext.make({ name: `bench-http-${count}`, logLevel: "None" })
    const counter = new Countdown()
    const work = jobMs > 0 ? Effect.sleep(jobMs) : Effect.void
    yield* JobWorker.make({
      handlers: [Noop.handler(() => Effect.zipRight(work, Effect.sync(counter.tick)))],
      concurrency,
      lease: "10 minutes",
      pollInterval: "10 minutes"
    }).pipe(Effect.provideService(JobStore.JobStore, store), Effect.provideService(WorkerContext, ctx))
    yield* Effect.ignore(ctx.start)
    const enqueue = HttpRouter.empty.pipe(
      HttpRouter.post(
        "/enqueue",
        Effect.map(
          Effect.flatMap(HttpServerRequest.schemaBodyJson(Noop.payload), (payload) => Noop.enqueue(payload)),
          (id) => HttpServerResponse.unsafeJson({ id }, { status: 202 })
        )
      ),
      HttpRouter.use(WorkerHttp.trackRequests),
      HttpRouter.use(WorkerHttp.authorize(WorkerHttp.unguarded, { body: "json" }))
    )
    const app = WorkerHttp.toApp(
      HttpRouter.concat(
        WorkerHttp.routes({
          guard: WorkerHttp.unguarded,
          jobs: true,
          events: { maxStreams: Math.max(count, WorkerHttpEvents.defaultMaxStreams) }
        }),
        enqueue
      )
    )
    const context = yield* Layer.build(
      WorkerHttp.serve(app).pipe(
        Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
        Layer.provide(Layer.succeed(WorkerContext, ctx)),
        Layer.provide(Layer.succeed(JobStore.JobStore, store))
      )
    )
    const address = Context.get(context, HttpServer.HttpServer).address
    const base = `http://127.0.0.1:${address._tag === "TcpAddress" ? address.port : 0}`
    const readers = count > 0 ? yield* clients(base, count, 0, placement) : undefined
    const client = yield* clients(base, 0, overHttp ? jobs : 0, placement)
    const done = counter.arm(jobs)
    const started = now()
    client.send("probe\n")
    if (!overHttp) yield* store.enqueue(newJobs(jobs))
    yield* Effect.promise(() => done)
    const elapsed = now() - started
    client.send("stop\n")
    readers?.send("stop\n")
    const report = yield* Effect.promise(() => client.report)
    const read = readers === undefined ? [] : (yield* Effect.promise(() => readers.report)).streams
    return { streams: count, jobsPerSecond: (jobs / elapsed) * 1000, report: { ...report, streams: read } }
  })).pipe(Effect.orDie, quietLogs)

const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}

const fixed = (n: number, digits = 1) => n.toFixed(digits)

/**
 * What the capped variant (`streams` streams) measured; against the targets (`targets`) only where they apply: the
 * first scenario, with the worker on a core of its own.
 */
const verdict = (
  capped: { readonly p99: number; readonly ratio: number },
  targets: boolean,
  placement: Placement
): string => {
  const met = (ok: boolean) => ok ? "met" : "missed"
  const health = `health p99 ${fixed(capped.p99, 1)} ms`
  const throughput = `throughput ${fixed(capped.ratio, 3)} of no stream`
  const measured = targets
    ? `${health} (target ≤ 100 ms: ${met(capped.p99 <= 100)}), ${throughput} (target ≥ 0.9: ${
      met(capped.ratio >= 0.9)
    })`
    : `${health}, ${throughput}${
      placement === "shared"
        ? ", the readers' own work included"
        : " (the worst case; the targets are the first scenario's)"
    }`
  return `With ${streams} streams (the cap): ${measured}.`
}

const runScenario = (scenario: Scenario, placement: Placement) =>
  Effect.gen(function*() {
    place(placement)
    const variants = streams < raised ? [0, 1, streams, raised] : [0, 1, streams]
    // One warm-up round of each, not counted.
    for (const count of variants) yield* oneRound(scenario, count, placement)
    const results: Array<Round> = []
    for (let r = 0; r < rounds; r++) {
      for (const count of rotate(variants, r)) {
        const round = yield* oneRound(scenario, count, placement)
        results.push(round)
        console.error(
          `${scenario.name} ${placement} round ${r + 1}, ${count} streams: ${fixed(round.jobsPerSecond, 0)} jobs/s, ` +
            `health p99 ${
              fixed(percentile(round.report.latencies, 99), 2)
            } ms (${round.report.latencies.length} probes)`
        )
      }
    }
    const of = (count: number) => results.filter((round) => round.streams === count)
    const ratioOf = (count: number) =>
      median(Array.from({ length: rounds }, (_, r) => of(count)[r]!.jobsPerSecond / of(0)[r]!.jobsPerSecond))
    const row = (count: number) => {
      const latencies = of(count).flatMap((round) => round.report.latencies)
      const opened = of(count).flatMap((round) => round.report.streams)
      return {
        count,
        probes: latencies.length,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        max: Math.max(...latencies),
        jobsPerSecond: median(of(count).map((round) => round.jobsPerSecond)),
        ratio: count === 0 ? 1 : ratioOf(count),
        refused: opened.filter((stream) => stream.status !== 200).length,
        dropped: opened.reduce((sum, stream) => sum + stream.dropped, 0),
        messages: median(opened.map((stream) => stream.messages))
      }
    }
    const table = variants.map(row)
    const capped = table[2]!
    return [
      `#### ${scenario.title}, ${
        placement === "apart"
          ? "the worker on a core of its own, the clients on the other"
          : "every process on both cores"
      }`,
      "",
      "| variant | `/health/live` p50 | p99 | max | probes | jobs/s (median) | / no stream | streams refused | `dropped` messages | messages per stream (median) |",
      "|---|---|---|---|---|---|---|---|---|---|",
      ...table.map((r) =>
        `| ${
          r.count === 0
            ? "no event stream"
            : r.count === 1
            ? "1 event stream"
            : `${r.count} event streams${
              r.count > WorkerHttpEvents.defaultMaxStreams ? ` (\`maxStreams: ${r.count}\`)` : ""
            }`
        } | ` +
        `${fixed(r.p50, 2)} ms | ${fixed(r.p99, 2)} ms | ${fixed(r.max, 1)} ms | ${r.probes} | ` +
        `${fixed(r.jobsPerSecond, 0)} | ${fixed(r.ratio, 3)} | ${r.refused} | ${r.dropped} | ` +
        `${r.count === 0 ? "–" : fixed(r.messages, 0)} |`
      ),
      "",
      verdict(capped, placement === "apart" && scenario.name === "http", placement),
      ""
    ]
  })

const main = Effect.gen(function*() {
  const sections: Array<string> = []
  for (const name of scenarios) {
    const scenario = Scenarios[name]
    if (scenario === undefined) return yield* Effect.dieMessage(`unknown scenario ${name}`)
    for (const placement of placements) sections.push(...(yield* runScenario(scenario, placement)))
  }
  const lines = [
    `<!-- http-events:start (written by \`BENCH_WRITE=1 npm run bench:http\`) -->`,
    `### HTTP: event-stream clients, up to the cap (${streams} streams)`,
    "",
    `\`bench/httpEvents.ts\`: ${rounds} interleaved rounds per variant after one warm-up each; Node ${process.version}, ` +
    `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, load average ${os.loadavg()[0]!.toFixed(1)} at the end ` +
    "(the machine is shared). The streams' reader and the health prober run in another process on the same machine; " +
    "every stream reads all the time. The targets are read with the worker on a core of its own and that process on " +
    "the other (`taskset`): what the streams cost the worker, their readers being, in a deployment, browsers and " +
    "tools on other machines. With every process on both cores, the readers' parsing of what they read also takes " +
    "the worker's time: that table shows what a reader on the worker's own machine adds.",
    "",
    ...sections,
    "<!-- http-events:end -->"
  ]
  const text = lines.join("\n")
  console.log(text)
  if (process.env.BENCH_WRITE === "1") {
    const docs = new URL("../docs/benchmarks.md", import.meta.url)
    const current = readFileSync(docs, "utf8")
    const start = current.indexOf("<!-- http-events:start")
    const end = current.indexOf("<!-- http-events:end -->")
    const next = start === -1 || end === -1
      ? current.replace("\n## Method", `\n${text}\n\n## Method`)
      : current.slice(0, start) + text + current.slice(end + "<!-- http-events:end -->".length)
    writeFileSync(docs, next)
  }
})

Effect.runPromise(main).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
