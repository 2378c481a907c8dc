/**
 * Benchmarks 7 and 8: jobs through `JobWorker` on a `MemoryJobStore`.
 *
 * 7. **Throughput.** Jobs per second from "the batch is in the store" to "the last handler ran", through a
 *    `JobWorker` at concurrency 10 and 100, next to the same no-op run as bare `ctx.track` tasks with at most as many
 *    in flight, and as p-queue functions at the same concurrency, in interleaved rounds. The batch is enqueued
 *    before the timed call (one `store.enqueue` of all its jobs, timed on its own), with the worker's context paused
 *    so that nothing is claimed yet; the timed call resumes the context and ends when the handler's countdown does.
 * 8. **Memory.** A million jobs through one `JobWorker`, in batches (each enqueued in one `store.enqueue`, then
 *    drained), with the heap sampled after a forced GC before the first batch (after a warm-up batch), between
 *    batches and after the last one: whatever a finished job leaves behind would show as growth.
 *
 * The workers run with a lease and a poll interval of ten minutes, so their renewer, reaper and poller never fire
 * during a measurement (nor does the timeout watcher, which sleeps until the earliest deadline, five minutes away):
 * the store's wake-ups and the claim loop's own re-claims drive them, as in a deployment whose store wakes its
 * workers. The suite's logs are quiet (`quietLogs`), as in the other benchmarks.
 */
import { Effect, Runtime, Schema, type Scope } from "effect"
import PQueue from "p-queue"
import { Job, JobStore, MemoryJobStore, WorkerContext } from "../src/index.js"
import { yieldPolicy } from "../src/internal/jobWorker/producer.js"
import { sizes } from "../src/internal/memoryJobStore.js"
import * as JobWorker from "../src/JobWorker.js"
import { Countdown, median, now, quietLogs, sampleHeap } from "./common.js"
import { interleaved, pairedRatio, type Variant } from "./interleave.js"

export interface JobsConfig {
  /** Jobs per measured batch, in every variant. */
  readonly jobs: number
  /** The concurrencies compared: each gets a worker, a bare `track` loop and a p-queue. */
  readonly concurrencies: ReadonlyArray<number>
  readonly rounds: number
  readonly warmupRounds: number
}

/**
 * The variants of benchmark 7 at one concurrency, by their names in the figures: the worker as shipped, the same
 * worker with its yield to the event loop turned off (what the yield costs: it lets timers, I/O and signals run
 * during a backlog of fast jobs), the bare `track` loop and p-queue.
 */
export const JobsVariants = (concurrency: number) => ({
  worker: `JobWorker + MemoryJobStore, concurrency ${concurrency}`,
  workerNoYield: `JobWorker + MemoryJobStore, no yield to the event loop, concurrency ${concurrency}`,
  track: `ctx.track, at most ${concurrency} in flight`,
  pQueue: `p-queue, concurrency ${concurrency}`
})

export interface Ratio {
  /** Median of per-round ratios: wall clock, CPU time. */
  readonly wall: number
  readonly cpu: number
}

export interface JobsRatio extends Ratio {
  readonly concurrency: number
  /** The same ratio for the worker that never yields to the event loop: what the yield costs. */
  readonly noYield: Ratio
}

export interface JobsResult {
  readonly config: JobsConfig
  /** Median jobs per second (wall clock), by variant name. */
  readonly jobsPerSecond: Readonly<Record<string, number>>
  /** Median wall-clock and CPU µs per job, by variant name. */
  readonly usPerJob: Readonly<Record<string, number>>
  readonly cpuUsPerJob: Readonly<Record<string, number>>
  /** Wall-clock ms of each measured batch, by variant name, in round order. */
  readonly samples: Readonly<Record<string, ReadonlyArray<number>>>
  /** The median µs per job of the untimed `store.enqueue` of each worker's batch (all its jobs in one call). */
  readonly enqueueUsPerJob: number
  /** JobWorker / bare `ctx.track` per job, at each concurrency. */
  readonly ratios: ReadonlyArray<JobsRatio>
  /** By variant name, how many times the handler (task, function) ran: `jobs × (rounds + warmupRounds)` each. */
  readonly completed: Readonly<Record<string, number>>
  /** Jobs still in the stores (any state, dead letters included) once every round ended: 0. */
  readonly leftInStore: number
  /** Tasks, leases and queued functions still counted once every round ended: 0. */
  readonly leftInFlight: number
}

export interface JobsMemoryConfig {
  /** Jobs in total, after the warm-up batch. */
  readonly jobs: number
  /** Jobs per batch: each batch is one `store.enqueue`, then drained. */
  readonly batch: number
  readonly concurrency: number
  /** How many heap samples to take between batches (evenly spaced). */
  readonly samples: number
}

export interface JobsMemoryResult {
  readonly config: JobsMemoryConfig
  /** Handlers that ran: `jobs` plus the warm-up batch. */
  readonly completed: number
  /** Jobs per second over the batches (enqueue and drain; forced GCs and building the job objects excluded). */
  readonly jobsPerSecond: number
  /** `heapUsed` in bytes after a forced GC: after the warm-up batch, between batches, after the last batch. */
  readonly heapBefore: number
  readonly heapDuring: ReadonlyArray<{ readonly afterJobs: number; readonly heapUsed: number }>
  readonly heapAfter: number
  /** `(heapAfter - heapBefore) / heapBefore`, in percent. */
  readonly growthPercent: number
  /** `(heapAfter - heapBefore) / jobs`, in bytes: what each finished job would leave behind. */
  readonly bytesPerJob: number
  /** Jobs still in the store (any state), and entries of its internal structures, after the last batch: 0. */
  readonly leftInStore: number
  /** The worker's slots and leases and the context's tasks after the last batch: 0. */
  readonly leftInFlight: number
}

/**
 * The job type of both benchmarks: a small payload, decoded by the worker, ignored by the handler; the defaults of
 * `Job.make` otherwise (5-minute timeout, 25 attempts).
 */
const Noop = Job.make("bench-noop", { payload: Schema.Struct({ n: Schema.Number }), queue: "bench" })

/** The track options the worker gives each job's task: the bare loop uses the same, so both run the same `track`. */
const trackOptions = { label: Noop.name, whenPaused: "reject" } as const

/** Long enough that the renewer (every lease / 3), the reaper (lease / 2) and the poller never fire in a run. */
const quietTimers = { lease: "10 minutes", pollInterval: "10 minutes" } as const

const epoch = new Date(0)

/** `count` jobs to enqueue, ready now. */
const newJobs = (count: number): Array<JobStore.NewJob> => {
  const jobs = new Array<JobStore.NewJob>(count)
  for (let i = 0; i < count; i++) {
    jobs[i] = {
      name: Noop.name,
      queue: Noop.queue,
      payload: { n: i },
      runAt: epoch,
      priority: 0,
      key: undefined,
      maxAttempts: Noop.maxAttempts
    }
  }
  return jobs
}

interface WorkerHandle {
  readonly store: JobStore.JobStore.Service
  readonly ctx: WorkerContext.Service
  readonly worker: JobWorker.JobWorker
  readonly counter: Countdown
}

/** A store, a context and a worker at `concurrency`, whose handler only ticks the countdown. */
const makeWorker = (
  name: string,
  concurrency: number
): Effect.Effect<WorkerHandle, never, Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* MemoryJobStore.make()
    const ctx = yield* WorkerContext.make({ name })
    const counter = new Countdown()
    const handler = Noop.handler(() => Effect.sync(counter.tick))
    const worker = yield* JobWorker.make({ handlers: [handler], concurrency, ...quietTimers }).pipe(
      Effect.provideService(JobStore.JobStore, store),
      Effect.provideService(WorkerContext, ctx)
    )
    return { store, ctx, worker, counter }
  })

/** Waits until the worker holds nothing: the last jobs' acknowledgements run after their handlers ticked. */
const drained = (handle: WorkerHandle): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let spins = 0; (yield* handle.worker.inFlight) > 0; spins++) {
      if (spins > 100_000) return yield* Effect.dieMessage("the job worker did not drain")
      yield* Effect.sleep(spins < 1000 ? 0 : 1)
    }
  })

/** Jobs the store holds in any state, and entries its internal structures hold. */
const storeLeft = (store: JobStore.JobStore.Service): Effect.Effect<number, JobStore.JobStoreError> =>
  Effect.map(store.stats, (stats) => {
    const inside = sizes(store)
    const structures = inside === undefined
      ? 0
      : inside.jobs + inside.keys + inside.ready + inside.scheduled + inside.leases + inside.dead
    return stats.ready + stats.scheduled + stats.leased + stats.dead + structures
  })

const workerLeft = (handle: WorkerHandle): Effect.Effect<number> =>
  Effect.map(
    Effect.all([handle.worker.inFlight, handle.worker.leased, handle.ctx.taskCount]),
    ([inFlight, leased, tasks]) => inFlight + leased + tasks
  )

/** Runs benchmark 7. The workers, contexts and queues live for the whole benchmark, like a deployment's. */
export const jobsThroughput = (config: JobsConfig): Effect.Effect<JobsResult> =>
  Effect.scoped(Effect.gen(function*() {
    const runPromise = Runtime.runPromise(yield* Effect.runtime<never>())
    const { jobs } = config
    const variants: Array<Variant & { readonly counter: Countdown }> = []
    const handles: Array<WorkerHandle> = []
    /** Per worker, the ms of each batch's `store.enqueue`. */
    const enqueueMs: Array<Array<number>> = []
    const queues: Array<PQueue> = []
    const trackCtx = yield* WorkerContext.make({ name: "bench-jobs-track" })
    yield* trackCtx.start

    for (const concurrency of config.concurrencies) {
      const names = JobsVariants(concurrency)

      // The workers: paused between their batches, so that the enqueue (untimed) starts nothing.
      for (
        const [name, yields, ctxName] of [
          [names.worker, true, `bench-jobs-${concurrency}`],
          [names.workerNoYield, false, `bench-jobs-${concurrency}-no-yield`]
        ] as const
      ) {
        const handle = yield* makeWorker(ctxName, concurrency)
        yield* handle.ctx.pause
        handles.push(handle)
        const enqueued: Array<number> = []
        enqueueMs.push(enqueued)
        variants.push({
          name,
          counter: handle.counter,
          setup: async () => {
            const batch = newJobs(jobs)
            const start = now()
            await runPromise(handle.store.enqueue(batch))
            enqueued.push(now() - start)
          },
          run: async () => {
            const done = handle.counter.arm(jobs)
            yieldPolicy.enabled = yields
            await runPromise(handle.ctx.resume)
            await done
          },
          teardown: async () => {
            await runPromise(Effect.zipRight(handle.ctx.pause, drained(handle)))
            yieldPolicy.enabled = true
          }
        })
      }

      // The bare loop: one fiber tracks each task once a slot is free, as the worker's claim loop starts each job.
      const counter = new Countdown()
      const slots = yield* Effect.makeSemaphore(concurrency)
      // The task cannot fail, so the slot is released after the tick, without `ensuring`.
      const task = Effect.zipRight(Effect.sync(counter.tick), slots.release(1))
      const submit = Effect.gen(function*() {
        for (let i = 0; i < jobs; i++) {
          yield* slots.take(1)
          yield* trackCtx.track(task, trackOptions)
        }
      })
      variants.push({
        name: names.track,
        counter,
        run: async () => {
          const done = counter.arm(jobs)
          await runPromise(submit)
          await done
        },
        // The last tasks release their slot after they ticked: wait for them, so the next round starts with all.
        teardown: () => runPromise(slots.withPermits(concurrency)(Effect.void))
      })

      // p-queue: paused between batches, so that adding the batch (untimed) starts nothing.
      const pCounter = new Countdown()
      const queue = new PQueue({ concurrency, autoStart: false })
      queues.push(queue)
      const fn = pCounter.tick
      variants.push({
        name: names.pQueue,
        counter: pCounter,
        setup: async () => {
          for (let i = 0; i < jobs; i++) void queue.add(fn)
        },
        run: async () => {
          const done = pCounter.arm(jobs)
          queue.start()
          await done
        },
        teardown: async () => {
          await queue.onIdle()
          queue.pause()
        }
      })
    }

    const result = yield* Effect.promise(() =>
      interleaved(variants, { rounds: config.rounds, warmupRounds: config.warmupRounds, units: jobs })
    )
    const completed: Record<string, number> = {}
    const jobsPerSecond: Record<string, number> = {}
    for (const variant of variants) {
      completed[variant.name] = variant.counter.total
      jobsPerSecond[variant.name] = 1e6 / result.usPerOp[variant.name]!
    }
    // Over the measured rounds of every worker: each batch is the same enqueue, into an empty store.
    const enqueueUsPerJob = median(enqueueMs.flatMap((ms) => ms.slice(config.warmupRounds))) * 1000 / jobs
    let leftInStore = 0
    let leftInFlight = (yield* trackCtx.taskCount) + queues.reduce((n, queue) => n + queue.size + queue.pending, 0)
    for (const handle of handles) {
      leftInStore += yield* storeLeft(handle.store)
      leftInFlight += yield* workerLeft(handle)
    }
    return {
      config,
      jobsPerSecond,
      usPerJob: result.usPerOp,
      cpuUsPerJob: result.cpuUsPerOp,
      samples: result.samples,
      enqueueUsPerJob,
      ratios: config.concurrencies.map((concurrency) => {
        const names = JobsVariants(concurrency)
        return {
          concurrency,
          wall: pairedRatio(result, names.worker, names.track),
          cpu: pairedRatio(result, names.worker, names.track, "cpu"),
          noYield: {
            wall: pairedRatio(result, names.workerNoYield, names.track),
            cpu: pairedRatio(result, names.workerNoYield, names.track, "cpu")
          }
        }
      }),
      completed,
      leftInStore,
      leftInFlight
    }
  })).pipe(Effect.orDie, quietLogs)

/** Runs benchmark 8 on a fresh store, context and worker. */
export const jobsMemory = (config: JobsMemoryConfig): Effect.Effect<JobsMemoryResult> =>
  Effect.scoped(Effect.gen(function*() {
    const handle = yield* makeWorker("bench-jobs-memory", config.concurrency)

    /** Enqueues `size` jobs in one call and waits until every one ran and was acknowledged; returns the time taken. */
    const runBatch = (size: number) =>
      Effect.gen(function*() {
        const batch = newJobs(size)
        const done = handle.counter.arm(size)
        const start = now()
        yield* handle.store.enqueue(batch)
        yield* Effect.promise(() => done)
        yield* drained(handle)
        return now() - start
      })

    // The warm-up batch grows the store's structures and creates what is made once (metric series, JIT code).
    yield* runBatch(Math.min(config.batch, config.jobs))
    const heapBefore = yield* sampleHeap
    const sampleEvery = Math.max(config.batch, Math.ceil(config.jobs / Math.max(1, config.samples)))
    const heapDuring: Array<{ afterJobs: number; heapUsed: number }> = []
    let elapsed = 0
    let sent = 0
    let nextSample = sampleEvery
    while (sent < config.jobs) {
      const size = Math.min(config.batch, config.jobs - sent)
      elapsed += yield* runBatch(size)
      sent += size
      if (sent >= nextSample && sent < config.jobs) {
        heapDuring.push({ afterJobs: sent, heapUsed: yield* sampleHeap })
        nextSample += sampleEvery
      }
    }
    const heapAfter = yield* sampleHeap
    return {
      config,
      completed: handle.counter.total,
      jobsPerSecond: config.jobs / (elapsed / 1000),
      heapBefore,
      heapDuring,
      heapAfter,
      growthPercent: (heapAfter - heapBefore) / heapBefore * 100,
      bytesPerJob: (heapAfter - heapBefore) / config.jobs,
      leftInStore: yield* storeLeft(handle.store),
      leftInFlight: yield* workerLeft(handle)
    }
  })).pipe(Effect.orDie, quietLogs)
