/**
 * Queues sharded over two PostgreSQL servers: one process, one context, two `JobWorker`s, each on a `PgJobStore` of
 * its own server (see "Beyond one PostgreSQL" in `docs/postgres.md`).
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue, Redacted, Schema } from "effect"
import { Job, JobStore, JobWorker, WorkerContext } from "../src/index.js"
import * as PgJobStore from "../src/PgJobStore.js"
import { scopedPgServer } from "./pgTestStore.js"

const Email = Job.make("send-email", { payload: Schema.Struct({ to: Schema.String }), queue: "emails" })
const Invoice = Job.make("make-invoice", { payload: Schema.Struct({ order: Schema.Number }), queue: "billing" })

describe("queues sharded over two PostgreSQL servers", () => {
  it.scopedLive(
    "runs each queue's jobs from its own server, with one JobWorker per store in one process",
    () =>
      Effect.gen(function*() {
        const [emailsServer, billingServer] = [yield* scopedPgServer, yield* scopedPgServer]
        const ran = yield* Queue.unbounded<string>()
        /** A store on `url` and a worker for `handler` on it, in the context `ctx`. */
        const shard = (url: string, handler: Job.JobHandler<never>) =>
          JobWorker.layer({ handlers: [handler], pollInterval: "200 millis" }).pipe(
            Layer.provideMerge(PgJobStore.layer({ schema: "jobs" })),
            Layer.provide(PgClient.layer({ url: Redacted.make(url) }))
          )
        const ctxLayer = WorkerContext.layer({ name: "sharded", shutdownTimeout: "3 seconds" })
        const emails = yield* Layer.build(
          shard(emailsServer.url, Email.handler(({ to }) => Queue.offer(ran, `email to ${to}`))).pipe(
            Layer.provideMerge(ctxLayer)
          )
        )
        const ctx = Context.get(emails, WorkerContext)
        const billing = yield* Layer.build(
          shard(billingServer.url, Invoice.handler(({ order }) => Queue.offer(ran, `invoice for ${order}`))).pipe(
            Layer.provide(Layer.succeed(WorkerContext, ctx))
          )
        )
        // A producer routes each job type to its queue's store.
        const emailStore = Context.get(emails, JobStore.JobStore)
        const billingStore = Context.get(billing, JobStore.JobStore)
        yield* Email.enqueue({ to: "ada@example.com" }).pipe(Effect.provideService(JobStore.JobStore, emailStore))
        yield* Invoice.enqueue({ order: 42 }).pipe(Effect.provideService(JobStore.JobStore, billingStore))
        const seen = [yield* Queue.take(ran), yield* Queue.take(ran)].sort()
        assert.deepStrictEqual(seen, ["email to ada@example.com", "invoice for 42"])
        // Each server held only its own queue's job, and both are done.
        for (const [store, queue] of [[emailStore, "emails"], [billingStore, "billing"]] as const) {
          const stats = yield* store.stats
          assert.deepStrictEqual(Object.keys(stats.byQueue).filter((q) => q !== queue), [], queue)
          assert.deepStrictEqual([stats.ready, stats.leased, stats.dead], [0, 0, 0], queue)
        }
      }),
    60_000
  )
})
