import { assert, describe, it } from "@effect/vitest"
import {
  Chunk,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  FastCheck as fc,
  Fiber,
  Queue,
  Schedule,
  Schema,
  Scope,
  TestClock
} from "effect"
import { Job, JobStore, JobWorker, MemoryJobStore, WorkerContext, type WorkerEvent } from "../src/index.js"

// Random programs of enqueues, pauses, resumes, stops, store outages and clock moves run against one or two job
// workers (each on a context of its own) that share a memory store. The handlers follow a script carried by the
// payload: what each attempt does. Time only moves through `TestClock.adjust`. Leases last 3 s and are renewed every
// second; during an outage a worker's renewals fail or hang, so its leases may lapse and the jobs be claimed again:
// the worker must have stopped them first.

/** A run takes well under a second; a loaded CI machine gets room to spare. */
const PROPERTY_TIMEOUT = 120_000

const MAX_ATTEMPTS = 3
const TIMEOUT_MS = 200
const RETRY_MS = 50
const SHUTDOWN_MS = 300

/** What one attempt does: a script step. `sleep:N` sleeps N ms (less than the timeout); `hang` times out. */
type Step = "succeed" | "fail" | "die" | "fatal" | "hang" | `sleep:${number}`

const Scripted = Job.make("scripted", {
  payload: Schema.Struct({ script: Schema.Array(Schema.String) }),
  queue: "props",
  maxAttempts: MAX_ATTEMPTS,
  timeout: Duration.millis(TIMEOUT_MS),
  retry: Schedule.spaced(Duration.millis(RETRY_MS))
})

/** A job whose handler never ends and has no timeout: only shutdown (or a lost lease) ends it. */
const Stuck = Job.make("stuck", { payload: Schema.Struct({}), queue: "props", timeout: Duration.infinity })

type Op =
  | { readonly _tag: "Enqueue"; readonly script: ReadonlyArray<Step>; readonly delayMs: number }
  | { readonly _tag: "EnqueueStuck" }
  | { readonly _tag: "Pause"; readonly worker: number }
  | { readonly _tag: "Resume"; readonly worker: number }
  | { readonly _tag: "Stop"; readonly worker: number }
  | { readonly _tag: "Adjust"; readonly millis: number }
  /**
   * The worker's renewals fail (or, with `hang`, never answer) for `millis` (the clock moves on meanwhile), then
   * succeed again.
   */
  | { readonly _tag: "Outage"; readonly worker: number; readonly millis: number; readonly hang: boolean }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.constant("succeed" as const), weight: 4 },
  { arbitrary: fc.constant("fail" as const), weight: 2 },
  { arbitrary: fc.constant("die" as const), weight: 1 },
  { arbitrary: fc.constant("fatal" as const), weight: 1 },
  { arbitrary: fc.constant("hang" as const), weight: 1 },
  // 5, 15, ..., 195 ms: never at the instant of a 200 ms timeout, so the script says how the attempt ends.
  { arbitrary: fc.integer({ min: 0, max: 19 }).map((k) => `sleep:${k * 10 + 5}` as const), weight: 3 }
)

const opArb = (workers: number): fc.Arbitrary<Op> => {
  const worker = fc.integer({ min: 0, max: workers - 1 })
  return fc.oneof(
    {
      arbitrary: fc.record({
        script: fc.array(stepArb, { minLength: 1, maxLength: MAX_ATTEMPTS }),
        delayMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 }).map((k) => k * 10))
      }).map((r) => ({ _tag: "Enqueue", ...r }) as const),
      weight: 10
    },
    { arbitrary: fc.constant({ _tag: "EnqueueStuck" } as const), weight: 2 },
    { arbitrary: worker.map((w) => ({ _tag: "Pause", worker: w }) as const), weight: 2 },
    { arbitrary: worker.map((w) => ({ _tag: "Resume", worker: w }) as const), weight: 3 },
    { arbitrary: worker.map((w) => ({ _tag: "Stop", worker: w }) as const), weight: 1 },
    { arbitrary: fc.integer({ min: 1, max: 30 }).map((k) => ({ _tag: "Adjust", millis: k * 10 }) as const), weight: 6 },
    // Long enough, at 2 to 5 s, for the leases held through it to lapse.
    {
      arbitrary: fc.record({
        worker,
        millis: fc.integer({ min: 2, max: 5 }).map((k) => k * 1000),
        hang: fc.boolean()
      }).map((r) => ({ _tag: "Outage", ...r }) as const),
      weight: 2
    }
  )
}

/**
 * Two workers, long-running jobs and outages: the programs where a lease lapses while a worker still runs its job
 * and the other worker claims it.
 */
const outageArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.constant({ _tag: "EnqueueStuck" } as const), weight: 2 },
  {
    arbitrary: fc.array(fc.constant("sleep:195" as const), { minLength: 1, maxLength: 1 }).map((script) =>
      ({ _tag: "Enqueue", script, delayMs: 0 }) as const
    ),
    weight: 1
  },
  {
    arbitrary: fc.record({
      worker: fc.integer({ min: 0, max: 1 }),
      millis: fc.integer({ min: 2, max: 5 }),
      hang: fc.boolean()
    }).map((r) => ({ _tag: "Outage", worker: r.worker, millis: r.millis * 1000, hang: r.hang }) as const),
    weight: 2
  },
  { arbitrary: fc.integer({ min: 1, max: 30 }).map((k) => ({ _tag: "Adjust", millis: k * 10 }) as const), weight: 1 }
)

const programArb = fc.integer({ min: 1, max: 2 }).chain((workers) =>
  fc.record({
    concurrency: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: workers, maxLength: workers }),
    ops: fc.array(opArb(workers), { minLength: 3, maxLength: 30, size: "medium" })
  })
)

/** What the handlers saw, across the workers of one run. */
class Observed {
  /** Job ids whose handler is running now. */
  readonly running = new Set<string>()
  /** Handlers running now, by worker. */
  readonly live: Array<number>
  readonly violations: Array<string> = []
  constructor(readonly concurrency: ReadonlyArray<number>) {
    this.live = concurrency.map(() => 0)
  }
}

const workerName = (w: number) => `prop-${w}`

const runStep = (step: Step | undefined): Effect.Effect<void, unknown> => {
  switch (step) {
    case undefined:
    case "succeed":
      return Effect.void
    case "fail":
      return Effect.fail(new Error("scripted failure"))
    case "die":
      return Effect.die(new Error("scripted defect"))
    case "fatal":
      return Effect.fail(new Job.Fatal({ message: "scripted fatal" }))
    case "hang":
      return Effect.never
    default:
      return Effect.sleep(Duration.millis(Number(step.slice("sleep:".length))))
  }
}

/** Wraps a handler's work with the checks of every run: concurrency per worker, one attempt of a job at a time. */
const observed = (seen: Observed, work: (job: Job.JobInfo) => Effect.Effect<void, unknown>) =>
  Effect.gen(function*() {
    const job = yield* Job.Current
    const ctx = yield* WorkerContext
    const w = Number(ctx.name.slice("prop-".length))
    if (seen.running.has(job.id)) seen.violations.push(`job ${job.id} started while another attempt of it ran`)
    seen.running.add(job.id)
    seen.live[w]!++
    if (seen.live[w]! > seen.concurrency[w]!) {
      seen.violations.push(`worker ${w} ran ${seen.live[w]} handlers at once (concurrency ${seen.concurrency[w]})`)
    }
    yield* work(job).pipe(Effect.ensuring(Effect.sync(() => {
      seen.running.delete(job.id)
      seen.live[w]!--
    })))
  })

interface Worker {
  readonly ctx: WorkerContext.Service
  readonly scope: Scope.CloseableScope
  readonly events: Queue.Dequeue<WorkerEvent>
  readonly worker: JobWorker.JobWorker
  /** While set, this worker's renewals fail, or never answer (`hang`). */
  readonly outage: { on: boolean; hang: boolean }
}

type JobEvent = JobWorker.JobEvent

/** What the script says attempt `attempt` ends as, on a worker that is not shutting down. */
const expectedOutcome = (script: ReadonlyArray<string>, attempt: number): JobEvent["_tag"] => {
  const step = script[Math.min(attempt, script.length) - 1]
  if (step === "fatal") return "JobDeadLettered"
  if (step === "fail" || step === "die" || step === "hang") {
    return attempt >= MAX_ATTEMPTS ? "JobDeadLettered" : "JobRetried"
  }
  return "JobSucceeded"
}

const outcomeTags: ReadonlySet<string> = new Set([
  "JobSucceeded",
  "JobRetried",
  "JobDeadLettered",
  "JobReleased",
  "JobLeaseLost"
])

/** Checks one worker's event log: claims only while Running, and one outcome per claim, the one its script says. */
const checkLog = (
  w: number,
  log: ReadonlyArray<WorkerEvent>,
  scripts: ReadonlyMap<string, ReadonlyArray<string> | "stuck">
) => {
  let state: "Running" | "Paused" | "Stopping" | "Other" = "Other"
  let stoppingSeen = false
  /** Claims without an outcome yet, by job id. */
  const open = new Map<string, Extract<JobEvent, { _tag: "JobClaimed" }>>()
  const where = (i: number) => `worker ${w}, event ${i}`
  for (const [i, event] of log.entries()) {
    if (event._tag === "Started" || event._tag === "Resumed") state = "Running"
    else if (event._tag === "Paused") state = "Paused"
    else if (event._tag === "Stopping") {
      state = "Stopping"
      stoppingSeen = true
    }
    if (event._tag !== "Custom" || !JobWorker.isJobEvent(event.value)) continue
    const value = event.value
    const script = scripts.get(value.id)
    assert.isDefined(script, `${where(i)}: an event of an unknown job ${value.id}`)
    if (value._tag === "JobClaimed") {
      assert.strictEqual(state, "Running", `${where(i)}: job ${value.id} claimed while ${state}`)
      assert.isFalse(stoppingSeen, `${where(i)}: job ${value.id} claimed after Stopping`)
      assert.isFalse(open.has(value.id), `${where(i)}: job ${value.id} claimed twice by one worker`)
      open.set(value.id, value)
      continue
    }
    if (value._tag === "JobTimedOut") {
      assert.isTrue(script !== "stuck", `${where(i)}: a stuck job timed out`)
      continue
    }
    assert.isTrue(outcomeTags.has(value._tag))
    const claim = open.get(value.id)
    assert.isDefined(claim, `${where(i)}: ${value._tag} of job ${value.id} without a claim`)
    assert.strictEqual(value.attempt, claim!.attempt, `${where(i)}: the outcome's attempt is the claim's`)
    open.delete(value.id)
    // A lease lost (during an outage): the worker stopped the job and acknowledged nothing.
    if (value._tag === "JobLeaseLost") continue
    if (value._tag === "JobReleased") {
      // Only shutdown gives jobs back here (the store answers at once, so no claim returns into a pause).
      assert.isTrue(stoppingSeen, `${where(i)}: job ${value.id} released before shutdown`)
      assert.isTrue(value.refunded, `${where(i)}: released without a refund`)
      continue
    }
    assert.isTrue(script !== "stuck", `${where(i)}: a stuck job ended with ${value._tag}`)
    assert.strictEqual(
      value._tag,
      expectedOutcome(script as ReadonlyArray<string>, value.attempt),
      `${where(i)}: job ${value.id} attempt ${value.attempt} of script ${JSON.stringify(script)}`
    )
  }
  assert.deepStrictEqual(Array.from(open.keys()), [], `worker ${w}: claims without an outcome after Stopped`)
}

const runProgram = (concurrency: ReadonlyArray<number>, ops: ReadonlyArray<Op>) =>
  Effect.gen(function*() {
    const store = yield* MemoryJobStore.make()
    const seen = new Observed(concurrency)
    const handlers = [
      Scripted.handler(({ script }) =>
        observed(seen, (job) => runStep(script[Math.min(job.attempt, script.length) - 1] as Step))
      ),
      Stuck.handler(() => observed(seen, () => Effect.never))
    ]
    const workers: Array<Worker> = []
    const runScope = yield* Effect.scope
    for (const [w, c] of concurrency.entries()) {
      // Closed by the run, or by the run's scope when a check failed half-way.
      const scope = yield* Scope.fork(runScope, ExecutionStrategy.sequential)
      const ctx = yield* WorkerContext.make({
        name: workerName(w),
        shutdownTimeout: Duration.millis(SHUTDOWN_MS),
        logLevel: "None",
        eventBufferSize: 65_536
      }).pipe(Scope.extend(scope))
      // In the run's scope: the log stays readable once the worker's scope has closed.
      const events = yield* ctx.subscribe
      const outage = { on: false, hang: false }
      const reachable: JobStore.JobStore.Service = {
        ...store,
        renew: (leases, lease) =>
          Effect.suspend(() =>
            outage.on
              ? outage.hang
                ? Effect.never
                : Effect.fail(new JobStore.JobStoreError({ operation: "renew", reason: "outage" }))
              : store.renew(leases, lease)
          )
      }
      const worker = yield* JobWorker.make({ handlers, concurrency: c, lease: "3 seconds", pollInterval: "500 millis" })
        .pipe(
          Effect.provideService(JobStore.JobStore, reachable),
          Effect.provideService(WorkerContext, ctx),
          Scope.extend(scope)
        )
      workers.push({ ctx, scope, events, worker, outage })
    }
    // Runs first when a check failed half-way: shut every worker down and let the deadline pass, so that the
    // workers' scopes close at once, and a failing run does not leave hanging jobs behind for the next.
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        Effect.forEach(workers, ({ ctx }) => ctx.requestStop, { discard: true }),
        TestClock.adjust(Duration.millis(SHUTDOWN_MS + 10))
      )
    )
    const scripts = new Map<string, ReadonlyArray<string> | "stuck">()
    const totalConcurrency = concurrency.reduce((a, b) => a + b, 0)

    const checkNow = (label: string) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(seen.violations, [], label)
        const stats = yield* Effect.orDie(store.stats)
        assert.isAtMost(stats.leased, totalConcurrency, `${label}: leased jobs`)
        for (const [w, { worker }] of workers.entries()) {
          assert.isAtMost(yield* worker.inFlight, concurrency[w]!, `${label}: worker ${w}'s slots`)
        }
      })

    for (const [i, op] of ops.entries()) {
      switch (op._tag) {
        case "Enqueue": {
          const id = yield* Scripted.enqueue({ script: op.script }, { delay: Duration.millis(op.delayMs) }).pipe(
            Effect.provideService(JobStore.JobStore, store),
            Effect.orDie
          )
          scripts.set(id, op.script)
          break
        }
        case "EnqueueStuck": {
          const id = yield* Stuck.enqueue({}).pipe(Effect.provideService(JobStore.JobStore, store), Effect.orDie)
          scripts.set(id, "stuck")
          break
        }
        case "Pause":
          yield* Effect.ignore(workers[op.worker]!.ctx.pause)
          break
        case "Resume":
          yield* Effect.ignore(workers[op.worker]!.ctx.resume)
          break
        case "Stop":
          yield* workers[op.worker]!.ctx.requestStop
          break
        case "Adjust":
          yield* TestClock.adjust(Duration.millis(op.millis))
          break
        case "Outage":
          workers[op.worker]!.outage.on = true
          workers[op.worker]!.outage.hang = op.hang
          yield* TestClock.adjust(Duration.millis(op.millis))
          workers[op.worker]!.outage.on = false
          break
      }
      yield* checkNow(`after op ${i} (${JSON.stringify(op)})`)
    }

    // Release every worker (a graceful shutdown each) and let the deadlines pass.
    const closers = yield* Effect.forEach(workers, ({ scope }) => Effect.fork(Scope.close(scope, Exit.void)))
    yield* TestClock.adjust(Duration.millis(SHUTDOWN_MS + 10))
    yield* Effect.forEach(closers, Fiber.join)
    yield* checkNow("after the workers were released")

    const logs = yield* Effect.forEach(
      workers,
      ({ events }) => Effect.map(Queue.takeAll(events), Chunk.toReadonlyArray)
    )
    for (const [w, log] of logs.entries()) {
      assert.strictEqual(log[log.length - 1]?._tag, "Stopped", `worker ${w} stopped`)
      checkLog(w, log, scripts)
    }

    // Every job ended exactly once: done, dead, or still in the store, and no lease is left.
    const jobEvents = logs.flat().flatMap((event) =>
      event._tag === "Custom" && JobWorker.isJobEvent(event.value) ? [event.value] : []
    )
    const count = (tag: JobEvent["_tag"], id: string) =>
      jobEvents.filter((event) => event._tag === tag && event.id === id).length
    let stats = yield* Effect.orDie(store.stats)
    if (stats.leased > 0) {
      // Only a job a worker stopped before its lease could lapse (its last event there JobLeaseLost) may still be
      // leased once every worker stopped: the store counts its lease until it lapses, within one lease.
      const lastById = new Map<string, JobEvent["_tag"]>()
      for (const event of jobEvents) lastById.set(event.id, event._tag)
      const fenced = Array.from(lastById.values()).filter((tag) => tag === "JobLeaseLost").length
      assert.isAtMost(stats.leased, fenced, "no lease left once every worker stopped, but of jobs stopped for it")
      yield* TestClock.adjust("3 seconds")
      yield* Effect.orDie(store.reap)
      stats = yield* Effect.orDie(store.stats)
    }
    const dead = yield* Effect.orDie(store.deadLetters({ limit: 10_000 }))
    const deadIds = new Set(dead.map((job) => job.id))
    assert.strictEqual(deadIds.size, dead.length, "each dead job once in the dead letters")
    assert.strictEqual(stats.leased, 0, "no lease left once every worker stopped")
    let done = 0
    const lapsed = new Set(dead.filter((job) => job.lastError === "lease expired").map((job) => job.id))
    for (const [id, script] of scripts) {
      const succeeded = count("JobSucceeded", id)
      const deadLettered = count("JobDeadLettered", id)
      assert.isAtMost(succeeded + deadLettered, 1, `job ${id} ended more than once`)
      // A job whose last lease lapsed is dead-lettered by the store, not by a worker: after a lost lease.
      if (lapsed.has(id)) {
        assert.strictEqual(deadLettered + succeeded, 0, `job ${id}: lapsed, and ended by a worker too`)
        assert.isAtLeast(count("JobLeaseLost", id), 1, `job ${id}: lapsed without a lost lease`)
      } else {
        assert.strictEqual(deadLettered, deadIds.has(id) ? 1 : 0, `job ${id}: dead letter and event agree`)
      }
      if (script === "stuck") assert.strictEqual(succeeded + deadLettered, 0, `stuck job ${id} ended`)
      done += succeeded
    }
    assert.strictEqual(done + dead.length + stats.ready + stats.scheduled, scripts.size, "every job is accounted for")
    assert.strictEqual(stats.dead, dead.length)
    assert.deepStrictEqual(seen.running.size, 0, "no handler still running")

    // What is left comes back with the attempts it used: one per retry and per lost lease, none for a release at
    // shutdown.
    yield* TestClock.adjust("1 second")
    const { jobs: left } = yield* Effect.orDie(store.claim({
      queues: ["props"],
      names: [Scripted.name, Stuck.name],
      limit: 10_000,
      lease: Duration.minutes(1),
      worker: "checker"
    }))
    assert.strictEqual(left.length, stats.ready + stats.scheduled)
    for (const job of left) {
      assert.strictEqual(
        job.attempt,
        1 + count("JobRetried", job.id) + count("JobLeaseLost", job.id),
        `job ${job.id}: attempts counted`
      )
    }
  })

describe("JobWorker properties", () => {
  it.effect.prop(
    "claims only while Running and within its slots, runs no job twice at once, and loses no job",
    { program: programArb },
    ({ program }) => Effect.scoped(runProgram(program.concurrency, program.ops)),
    { timeout: PROPERTY_TIMEOUT, fastCheck: { numRuns: 30 } }
  )

  it.effect.prop(
    "stops a job whose lease it cannot renew before another worker can claim it",
    {
      program: fc.record({
        concurrency: fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 2, maxLength: 2 }),
        ops: fc.array(outageArb, { minLength: 2, maxLength: 8 })
      })
    },
    ({ program }) => Effect.scoped(runProgram(program.concurrency, program.ops)),
    { timeout: PROPERTY_TIMEOUT, fastCheck: { numRuns: 12 } }
  )
})
