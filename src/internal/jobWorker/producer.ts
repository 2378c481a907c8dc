/**
 * The producer: claims jobs as slots free up and starts them (River's producer, Oban's queue producer). It owns
 * "may there be jobs to claim" (`dirty`: set by wake-ups, polls, resumes, freed slots of lapsed leases and claims
 * that filled what they asked for) and whether claiming waits for the next poll (`blocked`: a claim returned jobs the
 * worker had to give back). One fiber runs its rounds; everything else only wakes it.
 *
 * A round, while the context is `Running`: start the jobs claimed ahead (`Queued`) in the free slots, then, if
 * there may be jobs, claim for the room left (free slots plus `prefetch`, at most `concurrency + prefetch` leases
 * held), with the store call's deadline; a failed claim is tried again on a back-off (100 ms, doubling, at most
 * `min(pollInterval, 5 s)`) for as long as the context stays `Running`, without claims from wake-ups or polls in
 * between. Jobs a claim returned that cannot start (the context left `Running` meanwhile, or refused the task) are
 * given back, attempt refunded; jobs the claim buried are evented as dead.
 *
 * The producer yields to the macrotask queue (timers, I/O, signals) every 10 ms of its clock or every 1,024 jobs it
 * started: Effect 3 yields a fiber to the event loop only after 2,048 operations of that fiber, and every job is a
 * new fiber, so a backlog of fast jobs would otherwise run to its end on microtasks, starving timers, HTTP and lease
 * renewals.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Scheduler from "effect/Scheduler"
import type { ClaimedJob, ClaimRequest, ClaimResult, JobStore, JobStoreError } from "../../JobStore.js"
import { Outcome } from "../../JobStore.js"
import type { WorkerCore } from "../workerContext.js"
import { Claim, type Claims } from "./claims.js"
import { backoff, type Completer, retried } from "./completer.js"
import type { Entry, Executor } from "./executor.js"
import type { Publisher } from "./metrics.js"
import type { StoreCalls } from "./storeCalls.js"

export interface Producer {
  /** The claim loop, run on a fiber of the worker's scope; it ends once shutdown has begun. */
  readonly loop: Effect.Effect<void>
  /** There may be jobs: claim at the next chance (a wake-up, a freed slot of a lapsed lease). */
  readonly mayHaveJobs: () => void
  /** A poll or a resume: there may be jobs, and a claim blocked since one had to give jobs back may go again. */
  readonly poll: () => void
  /** Runs a round now: the state changed (paused: give the queued jobs back; stopping: end). */
  readonly wake: () => void
  /** Whether the last claim came back with fewer jobs than it asked for, and the worker has room. */
  readonly starved: () => boolean
}

/** Yield to the macrotask queue after this many jobs started, or this long by the worker's clock. */
export const yieldPolicy = {
  everyJobs: 1_024,
  everyMillis: 10,
  /** Off only in the benchmark that measures what the yield costs. */
  enabled: true
}

/** `setImmediate`, not `setTimeout(0)`: timers and I/O run before it, and it costs no 1 ms wait. */
const macrotask = Effect.withScheduler(Effect.yieldNow(), Scheduler.make((task) => setImmediate(task)))

const ReleasedRefunded = Outcome.Released({ refund: true })

/** A claim that is not tried again: the context left `Running`. */
const notRunning = { _tag: "NotRunning" } as const

export const make = (deps: {
  readonly core: WorkerCore
  readonly store: JobStore.Service
  readonly calls: StoreCalls
  readonly claims: Claims
  readonly executor: Executor
  readonly completer: Completer
  readonly publisher: Publisher
  readonly clock: Clock.Clock
  readonly entries: ReadonlyMap<string, Entry>
  readonly request: Omit<ClaimRequest, "limit">
  readonly pollInterval: Duration.Duration
  readonly leaseMillis: number
  /** New claims were added: the fencer watches them. */
  readonly claimed: () => void
  readonly warn: (message: string, cause?: unknown) => Effect.Effect<void>
}): Producer => {
  const { calls, claims, clock, completer, core, entries, executor, publisher, store, warn } = deps
  let dirty = true
  let blocked = false
  let lastClaimShort = false
  const wakeLatch = Effect.unsafeMakeLatch(true)
  let startedSinceYield = 0
  let lastYield = clock.unsafeCurrentTimeMillis()

  const wake = () => wakeLatch.unsafeOpen()
  const mayHaveJobs = () => {
    dirty = true
    if (!blocked) wake()
  }
  const poll = () => {
    blocked = false
    mayHaveJobs()
  }
  claims.onFreed = () => {
    if (claims.waiting > 0 || (dirty && !blocked)) wake()
  }

  const capMs = Math.min(Duration.toMillis(deps.pollInterval), 5_000)
  const schedule = backoff(capMs)

  /** Releases `claim` (never started), attempt refunded; the producer does not wait for the store. */
  const giveBack = (claim: Claim): void => {
    completer.submit(claim, ReleasedRefunded, 0)
  }

  /**
   * Starts `toStart` in order, in one synchronous step; a job the context refuses (paused or stopping since the
   * claim) is given back, and claiming waits for the next poll or resume (the release wakes the worker, which would
   * claim it again at once).
   */
  const startAll = (toStart: ReadonlyArray<Claim>, announce: boolean): Effect.Effect<void> =>
    Effect.withFiberRuntime((caller, status) => {
      for (const claim of toStart) {
        if (announce) publisher.claimed(claim.job)
        startedSinceYield++
        if (!executor.admit(claim, caller, status.runtimeFlags)) {
          blocked = true
          giveBack(claim)
        }
      }
      return core.labelWarning() ?? Effect.void
    })

  const unknownJob = (job: ClaimedJob): Effect.Effect<void> => {
    // Its release wakes the worker, which would claim it again at once, for ever: no claim until the next poll.
    blocked = true
    return warn(`claimed job ${job.id} of ${job.name}, which this worker has no handler for: releasing it`).pipe(
      Effect.zipRight(
        Effect.ignore(calls.run("settle", store.settle([{ lease: job.lease, outcome: ReleasedRefunded }])))
      )
    )
  }

  /** What to do with what a claim returned. Runs uninterruptibly: every claimed job is started or given back. */
  const afterClaim = (result: ClaimResult, limit: number, sentAt: number): Effect.Effect<void> => {
    for (const job of result.buried) publisher.deadLettered(job, job.error)
    const jobs = result.jobs
    lastClaimShort = jobs.length < limit
    if (jobs.length === 0) return Effect.void
    if (jobs.length >= limit) dirty = true
    const taken: Array<Claim> = []
    let ahead: Array<Claim> | undefined
    let unknown: Array<ClaimedJob> | undefined
    let superseded: Array<Claim> | undefined
    const until = sentAt + deps.leaseMillis
    for (const job of jobs) {
      const entry = entries.get(job.name)
      if (entry === undefined) {
        ;(unknown ??= []).push(job)
        continue
      }
      const claim = new Claim(job, entry, until)
      const previous = claims.live.get(job.id)
      if (previous !== undefined) {
        // The store gave out a job this worker still runs: that claim's lease is gone.
        claim.previous = previous
        if (claims.lose(previous)) (superseded ??= []).push(previous)
      }
      // Behind the jobs claimed ahead, if any still wait: they start first, in order.
      if (claims.freeSlots > 0 && claims.waiting === 0) {
        claims.add(claim, true)
        taken.push(claim)
      } else {
        claims.add(claim, false)
        ;(ahead ??= []).push(claim)
      }
    }
    deps.claimed()
    if (superseded !== undefined) {
      for (const claim of superseded) {
        publisher.leaseLost(claim.job)
        executor.cut(claim, "lease")
      }
    }
    // The state is read again now that the claim has returned: shutdown or a pause may have begun meanwhile.
    const then = Effect.suspend(() => {
      if (core.state === "Running") {
        if (ahead !== undefined) { for (const claim of ahead) publisher.claimed(claim.job) }
        return startAll(taken, true)
      }
      blocked = true
      for (const claim of taken) {
        claims.settling(claim)
        publisher.claimed(claim.job)
        giveBack(claim)
      }
      if (ahead !== undefined) { for (const claim of ahead) publisher.claimed(claim.job) }
      return releaseQueued
    })
    return unknown === undefined ? then : Effect.zipRight(Effect.forEach(unknown, unknownJob, { discard: true }), then)
  }

  /** Gives back, attempt refunded, every job claimed ahead that still waits for a slot. */
  const releaseQueued: Effect.Effect<void> = Effect.sync(() => {
    for (let claim = claims.nextQueued(false); claim !== undefined; claim = claims.nextQueued(false)) giveBack(claim)
  })

  /** One claim for `limit` jobs, tried again on the back-off while the context stays `Running`. */
  const claim = (limit: number): Effect.Effect<void> => {
    let failures = 0
    let sentAt = 0
    const request: ClaimRequest = { ...deps.request, limit }
    const once = Effect.suspend((): Effect.Effect<ClaimResult, JobStoreError | typeof notRunning> => {
      if (core.state !== "Running") return Effect.fail(notRunning)
      sentAt = clock.unsafeCurrentTimeMillis()
      return calls.run("claim", store.claim(request)).pipe(
        Effect.tapError((error) => {
          const delay = Math.min(100 * 2 ** failures++, capMs)
          return warn(`JobStore.claim failed; claiming again in ${delay} ms`, error)
        })
      )
    })
    return retried(once, { schedule, while: (error) => error !== notRunning }).pipe(
      Effect.matchEffect({
        // Paused or stopping while retrying: the next round decides.
        onFailure: () =>
          Effect.sync(() => {
            dirty = true
          }),
        onSuccess: (result) => Effect.uninterruptible(afterClaim(result, limit, sentAt))
      })
    )
  }

  const yieldIfDue = (): Effect.Effect<void> | undefined => {
    if (startedSinceYield === 0 || !yieldPolicy.enabled) return undefined
    const now = clock.unsafeCurrentTimeMillis()
    if (startedSinceYield < yieldPolicy.everyJobs && now - lastYield < yieldPolicy.everyMillis) return undefined
    startedSinceYield = 0
    lastYield = now
    return macrotask
  }

  let ended = false

  const round: Effect.Effect<void> = Effect.suspend(() => {
    const pause = yieldIfDue()
    if (pause !== undefined) return Effect.zipRight(pause, round)
    return Effect.suspend(() => {
      const state = core.state
      if (state === "Stopping" || state === "Stopped") {
        ended = true
        return releaseQueued
      }
      // Paused (or not started): the jobs claimed ahead go back, so that other workers can run them meanwhile.
      if (state !== "Running") return releaseQueued
      if (claims.waiting > 0 && claims.freeSlots > 0) {
        const starting: Array<Claim> = []
        while (claims.freeSlots > 0) {
          const next = claims.nextQueued(true)
          if (next === undefined) break
          starting.push(next)
        }
        return Effect.zipRight(Effect.uninterruptible(startAll(starting, false)), round)
      }
      const limit = claims.room
      if (!dirty || blocked || limit <= 0) return Effect.void
      // Prefetching, claim in batches: not for every freed slot while at least half the prefetch still waits.
      if (claims.waiting > 0 && limit < Math.ceil(claims.prefetch / 2)) return Effect.void
      dirty = false
      return Effect.zipRight(claim(limit), round)
    })
  })

  const loop: Effect.Effect<void> = Effect.flatMap(wakeLatch.await, () => {
    wakeLatch.unsafeClose()
    return Effect.flatMap(round, () => (ended ? Effect.void : loop))
  })

  const starved = () => lastClaimShort && claims.room > 0 && !dirty

  return { loop, mayHaveJobs, poll, wake, starved }
}
