import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Exit, Layer, Logger, LogLevel, Redacted, Schema, Scope } from "effect"
import Pg from "pg"
import { Job, JobWorker, WorkerContext } from "../src/index.js"
import { JobStore } from "../src/JobStore.js"
import * as PgJobStore from "../src/PgJobStore.js"
import { startPgServer } from "../test/pgServer.js"

const Chaos = Job.make("chaos", { payload: Schema.Struct({ n: Schema.Number }) })
const main = async () => {
  const server = await startPgServer()
  const admin = new Pg.Client({ connectionString: server.url })
  await admin.connect()
  let started = 0
  let startedAt = 0
  const scope = Effect.runSync(Scope.make())
  const t0 = performance.now()
  const log = (s: string) => console.log(((performance.now() - t0) / 1000).toFixed(3), s)
  const Traced = Layer.scoped(JobStore, Effect.gen(function*() {
    const store = yield* PgJobStore.make({ schema: "l" })
    const wrap = <A, E>(name: string, e: Effect.Effect<A, E>) => Effect.suspend(() => { log(`call ${name}`); return e.pipe(Effect.onExit((x) => Effect.sync(() => log(`done ${name} ${x._tag}`)))) })
    return { ...store, claim: (r) => wrap("claim", store.claim(r)), settle: (x) => wrap(`settle ${x.length}`, store.settle(x)), renew: (l, d) => wrap("renew", store.renew(l, d)), reap: wrap("reap", store.reap), wakeups: Effect.tap(store.wakeups, () => Effect.sync(() => log("wakeups returned"))) } as JobStore.Service
  })).pipe(Layer.provide(PgClient.layer({ url: Redacted.make(server.url), applicationName: "x" })))
  const ctx = await Effect.runPromise(Layer.buildWithScope(JobWorker.layer({ handlers: [Chaos.handler(() => Effect.sync(() => { started++; startedAt = performance.now() }))], pollInterval: "60 seconds", concurrency: 2 }).pipe(
    Layer.provideMerge(Traced), Layer.provideMerge(WorkerContext.layer({ name: "w" })), Layer.provide(Logger.minimumLogLevel(LogLevel.Debug))), scope))
  const store = Effect.runSync(Effect.provide(JobStore, ctx))
  const enq = async () => { const t = performance.now(); log("enqueue"); await Effect.runPromise(store.enqueue([{ name: "chaos", queue: "chaos", payload: { n: 1 }, priority: 0, key: undefined, maxAttempts: 5 }])); const n = started; while (started === n) await new Promise((r) => setTimeout(r, 5)); log(`started after ${(startedAt - t).toFixed(0)} ms`) }
  Effect.runFork(Effect.scoped(Effect.gen(function*() { const q = yield* store.wakeups; log("probe subscribed"); while (true) { const x = yield* q.take; log(`probe got ${x}`) } })))
  await new Promise((r) => setTimeout(r, 1000))
  await enq()
  for (let i = 0; i < 5; i++) {
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'x (listen)'")
    log("killed")
    await enq()
    await new Promise((r) => setTimeout(r, 300))
    await enq()
  }
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await admin.end(); await server.stop()
}
main()
