import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import {
  type BuriedJob,
  type CancelFilter,
  type CancelResult,
  type ClaimedJob,
  type ClaimRequest,
  type ClaimResult,
  type DeadJob,
  type EncodedJob,
  type EncodedSlot,
  type Enqueued,
  type JobPage,
  type JobState,
  type JobStats,
  type JobStore,
  JobStoreError,
  type Lease,
  type ListOptions,
  maxAttemptErrors,
  type PruneResult,
  type QueueStats,
  type ReapResult,
  type RunNowResult,
  type Settlement,
  type StoredJob
} from "../JobStore.js"
import type { MemoryJobStoreOptions } from "../MemoryJobStore.js"
import * as jobStore from "./jobStore.js"
import {
  claimOrder,
  expiryOrder,
  JobRecord,
  Lane,
  QueueState,
  RecordHeap,
  scheduleOrder,
  State
} from "./memoryJobRecords.js"

type Service = JobStore.Service

/** @internal The default of `maxDeadLetters`. */
export const defaultMaxDeadLetters = 10_000

/** How many wake-ups a subscriber may lag behind before its oldest are dropped (they are hints: it polls anyway). */
const wakeupBufferSize = 256

/** How many dropped dead letters one warning names; the rest are counted. */
const droppedNamed = 10

/** What a claim or a reap reports when it buried nothing: shared, so that the common path allocates nothing. */
const noneBuried: ReadonlyArray<BuriedJob> = Object.freeze([])

/** The error of a job buried because its lease expired on its last attempt. */
const leaseExpired = "lease expired"

/** What `sizes` reports: every structure that holds jobs, for the tests that prove completed jobs leave nothing. */
export interface StoreSizes {
  readonly jobs: number
  readonly keys: number
  readonly ready: number
  readonly scheduled: number
  readonly leases: number
  readonly dead: number
  readonly queues: number
  readonly lanes: number
  /** Jobs buried for an expired lease that no claim or reap has reported yet. */
  readonly buried: number
}

/** When `job` is due: its `runAt`, or its delay after `now`. */
const dueAt = (job: EncodedJob, now: number): number =>
  job.runAt === undefined ? now + job.delayMs : job.runAt.getTime()

/** What a key mode's update of a waiting job (or of the one kept to run after a running one) takes from `job`. */
const takeValues = (record: JobRecord, job: EncodedJob, now: number): void => {
  record.payload = job.payload
  record.priority = job.priority
  record.maxAttempts = job.maxAttempts
  record.runAt = dueAt(job, now)
}

/** A relative delay as whole milliseconds, rounded up (never early), as `JobStore.make` does for `enqueue`. */
const delayMillis = (delay: Duration.Duration): number => Math.ceil(Duration.toMillis(delay))

/**
 * The store's state. Every method is synchronous, and JavaScript runs one of them at a time, so each operation of
 * the driver (one `Effect.suspend` around one method) is one atomic step: no other fiber sees a job half-way
 * from one structure to another. Each operation first brings the store up to its clock (`catchUp`): scheduled jobs
 * that are due become ready, and expired leases give their job back (or bury it, when its attempts are used up).
 * The jobs buried that way wait in `buried` until a claim or a reap reports them, each exactly once.
 */
class StoreCore {
  private readonly jobs = new Map<string, JobRecord>()
  /** The job holding each key: only jobs that are ready, scheduled or leased. */
  private readonly keys = new Map<string, JobRecord>()
  private readonly queues = new Map<string, QueueState>()
  /** The queues no claim takes from (`pauseQueue`), until resumed. */
  private readonly paused = new Set<string>()
  /** The latest slots each recurring schedule enqueued (`enqueueSlot`), newest first, by the schedule's name. */
  private readonly slots = new Map<string, Array<number>>()
  private readonly schedule = new RecordHeap(scheduleOrder)
  private readonly leases = new RecordHeap(expiryOrder)
  private live = 0
  private deadCount = 0
  private oldestDead: JobRecord | undefined = undefined
  private newestDead: JobRecord | undefined = undefined
  private nextId = 0
  private nextSeq = 0
  private nextToken = 0
  private operation = 0
  private laneCount = 0
  private sweepAbove = 64
  /** Jobs buried because their lease expired on their last attempt, not yet reported by a claim or a reap. */
  private buried: Array<BuriedJob> | undefined = undefined
  /** Dead letters dropped past the bound during this operation: counted, and the first few named in a warning. */
  private droppedCount = 0
  private dropped: Array<JobRecord> | undefined = undefined
  /** Wake-ups the hub refused during this operation (it was full): published by an effect after the step. */
  private unsent: Array<string> | undefined = undefined

  constructor(
    private readonly clock: Clock.Clock,
    private readonly hub: PubSub.PubSub<string>,
    /** The ids of the leased jobs cancelled (`cancellations`). */
    private readonly cancelHub: PubSub.PubSub<string>,
    private readonly maxDeadLetters: number,
    private readonly maxJobs: number,
    /** Dead letters older than this many milliseconds are pruned (`Infinity`: never). */
    private readonly retention: number,
    /** Completed jobs are kept this many milliseconds (0: not at all). */
    private readonly keepSucceeded: number
  ) {}

  /** The succeeded jobs kept, oldest first (from `succeededHead` on). */
  private succeeded: Array<JobRecord | undefined> = []
  private succeededHead = 0

  /** Keeps a completed job (it is in no structure), dropping the oldest kept past `maxDeadLetters`. */
  private keep(record: JobRecord, now: number, durationMs: number | undefined, result: unknown): void {
    record.state = State.Succeeded
    record.failedAt = now
    record.durationMs = durationMs
    record.result = result === undefined ? undefined : JSON.stringify(result)
    record.lane.queue.succeeded++
    this.succeeded.push(record)
    while (this.succeeded.length - this.succeededHead > this.maxDeadLetters) this.dropOldestSucceeded()
  }

  private dropOldestSucceeded(): void {
    const oldest = this.succeeded[this.succeededHead]!
    this.succeeded[this.succeededHead++] = undefined
    if (this.succeededHead >= 1024 && this.succeededHead * 2 >= this.succeeded.length) {
      this.succeeded = this.succeeded.slice(this.succeededHead)
      this.succeededHead = 0
    }
    oldest.lane.queue.succeeded--
    this.forget(oldest)
  }

  /** Starts an operation: reads the clock once and brings the store up to that instant. */
  private begin(): number {
    const now = this.clock.unsafeCurrentTimeMillis()
    this.operation++
    this.catchUp(now, false)
    return now
  }

  /**
   * Due scheduled jobs become ready; every expired lease (one that reached its expiry instant) gives its job back,
   * ready with the attempt counted, or buries it when its attempts are used up. Returns how many leases expired.
   */
  private catchUp(now: number, wake: boolean): number {
    const schedule = this.schedule
    let due = schedule.peek()
    while (due !== undefined && due.runAt <= now) {
      schedule.remove(due)
      due.lane.queue.scheduled--
      this.makeReady(due, wake)
      due = schedule.peek()
    }
    const leases = this.leases
    let expired = 0
    let lapsed = leases.peek()
    while (lapsed !== undefined && lapsed.leaseExpiresAt <= now) {
      expired++
      leases.remove(lapsed)
      lapsed.token = undefined
      lapsed.worker = undefined
      lapsed.lane.queue.leased--
      if (lapsed.attempts >= lapsed.maxAttempts) {
        ;(this.buried ??= []).push({
          id: lapsed.id,
          name: lapsed.lane.name,
          queue: lapsed.lane.queue.name,
          attempt: lapsed.attempts,
          error: leaseExpired
        })
        this.bury(lapsed, leaseExpired, now)
      } else {
        this.makeReady(lapsed, wake)
      }
      lapsed = leases.peek()
    }
    return expired
  }

  /** The buried jobs not reported yet, which the caller reports: each is handed out once. */
  private takeBuried(): ReadonlyArray<BuriedJob> {
    const buried = this.buried
    if (buried === undefined) return noneBuried
    this.buried = undefined
    return buried
  }

  private makeReady(record: JobRecord, wake: boolean): void {
    record.state = State.Ready
    record.lane.ready.push(record)
    const queue = record.lane.queue
    queue.ready++
    if (wake) this.wake(queue)
  }

  /** A job that is not in any heap: ready now, or scheduled for its `runAt`. */
  private place(record: JobRecord, now: number, wake: boolean): void {
    if (record.runAt <= now) {
      this.makeReady(record, wake)
    } else {
      record.state = State.Scheduled
      this.schedule.push(record)
      record.lane.queue.scheduled++
    }
  }

  private wake(queue: QueueState): void {
    if (queue.wokenBy === this.operation) return
    queue.wokenBy = this.operation
    if (!this.hub.unsafeOffer(queue.name)) (this.unsent ??= []).push(queue.name)
  }

  private laneOf(queueName: string, name: string): Lane {
    let queue = this.queues.get(queueName)
    if (queue === undefined) {
      queue = new QueueState(queueName)
      this.queues.set(queueName, queue)
    }
    let lane = queue.lanes.get(name)
    if (lane === undefined) {
      if (++this.laneCount > this.sweepAbove) {
        this.sweep()
        // The queue may have just been swept: look it up again.
        return this.laneOf(queueName, name)
      }
      lane = new Lane(queue, name)
      queue.lanes.set(name, lane)
    }
    return lane
  }

  /**
   * Drops the lanes no job refers to, and the queues left without lanes. Run when the lanes have doubled since the
   * last sweep, so that a store that sees ever new queue or job names holds at most about twice the lanes in use,
   * at an amortized cost of O(1) per lane created; a store with a fixed set of names never sweeps.
   */
  private sweep(): void {
    let lanes = 0
    for (const [queueName, queue] of this.queues) {
      for (const [name, lane] of queue.lanes) {
        if (lane.members === 0) queue.lanes.delete(name)
        else lanes++
      }
      if (queue.lanes.size === 0) this.queues.delete(queueName)
    }
    this.laneCount = lanes
    this.sweepAbove = 2 * lanes + 64
  }

  /** The job that `lease` holds, or `undefined` when the lease no longer holds (settled, or expired). */
  private held(lease: Lease): JobRecord | undefined {
    const record = this.jobs.get(lease.jobId)
    return record !== undefined && record.state === State.Leased && record.token === lease.token ? record : undefined
  }

  /** Takes a leased job out of the lease heap: it is then in no structure, and the caller puts it somewhere. */
  private unlease(record: JobRecord): void {
    this.leases.remove(record)
    record.token = undefined
    record.worker = undefined
    record.lane.queue.leased--
  }

  /** The job ends for good (completed, or dropped from the dead letters): nothing refers to it any more. */
  private forget(record: JobRecord): void {
    this.jobs.delete(record.id)
    record.lane.members--
  }

  /** The job ends for good: its key is free, or passes to the job kept to run after it, which is placed now. */
  private releaseKey(record: JobRecord, now: number): void {
    if (record.key === undefined || this.keys.get(record.key) !== record) return
    const next = record.successor
    record.successor = undefined
    if (next === undefined) {
      this.keys.delete(record.key)
      return
    }
    this.keys.set(record.key, next)
    next.lane.queue.scheduled--
    next.seq = ++this.nextSeq
    this.place(next, now, true)
  }

  /** Takes a ready or scheduled job out of its structure: the caller places it again. */
  private unplace(record: JobRecord): void {
    const queue = record.lane.queue
    if (record.state === State.Ready) {
      record.lane.ready.remove(record)
      queue.ready--
    } else {
      this.schedule.remove(record)
      queue.scheduled--
    }
  }

  /** An enqueue of `job`, whose key `holder` holds, by its `keyMode`. */
  private keyHeld(holder: JobRecord, job: EncodedJob, now: number): Enqueued {
    if (job.keyMode === "skip" || (job.keyMode === "afterRunning" && holder.state !== State.Leased)) {
      return { id: holder.id, duplicate: true, outcome: "skipped" }
    }
    if (holder.state !== State.Leased) {
      this.unplace(holder)
      takeValues(holder, job, now)
      this.place(holder, now, true)
      return { id: holder.id, duplicate: true, outcome: "replaced" }
    }
    let next = holder.successor
    if (next === undefined) {
      const lane = this.laneOf(job.queue, job.name)
      next = new JobRecord(
        String(++this.nextId),
        lane,
        job.payload,
        job.priority,
        holder.key,
        job.maxAttempts,
        now,
        dueAt(job, now),
        0
      )
      next.state = State.Waiting
      holder.successor = next
      this.jobs.set(next.id, next)
      this.live++
      lane.members++
      lane.queue.scheduled++
    } else {
      takeValues(next, job, now)
    }
    return { id: next.id, duplicate: true, outcome: "queuedAfter" }
  }

  /** Moves a job that is in no heap to the newest end of the dead letters, and drops the oldest past the bound. */
  private bury(record: JobRecord, error: string, now: number, state: State = State.Dead): void {
    record.state = state
    record.lastError = error
    record.failedAt = now
    this.live--
    this.releaseKey(record, now)
    const queue = record.lane.queue
    record.older = this.newestDead
    if (this.newestDead !== undefined) this.newestDead.newer = record
    else this.oldestDead = record
    this.newestDead = record
    record.olderInQueue = queue.newestDead
    if (queue.newestDead !== undefined) queue.newestDead.newerInQueue = record
    else queue.oldestDead = record
    queue.newestDead = record
    if (state === State.Dead) queue.dead++
    else queue.cancelled++
    this.deadCount++
    while (this.deadCount > this.maxDeadLetters) {
      const oldest = this.dropOldestDead()
      this.droppedCount++
      if (this.droppedCount <= droppedNamed) (this.dropped ??= []).push(oldest)
    }
  }

  /** Forgets the oldest dead letter (there is one): past `maxDeadLetters`, or past the retention. */
  private dropOldestDead(): JobRecord {
    const oldest = this.oldestDead!
    this.unbury(oldest)
    this.forget(oldest)
    return oldest
  }

  /** Takes a job out of the dead letters. */
  private unbury(record: JobRecord): void {
    const queue = record.lane.queue
    if (record.older !== undefined) record.older.newer = record.newer
    else this.oldestDead = record.newer
    if (record.newer !== undefined) record.newer.older = record.older
    else this.newestDead = record.older
    if (record.olderInQueue !== undefined) record.olderInQueue.newerInQueue = record.newerInQueue
    else queue.oldestDead = record.newerInQueue
    if (record.newerInQueue !== undefined) record.newerInQueue.olderInQueue = record.olderInQueue
    else queue.newestDead = record.olderInQueue
    record.older =
      record.newer =
      record.olderInQueue =
      record.newerInQueue =
        undefined
    if (record.state === State.Dead) queue.dead--
    else queue.cancelled--
    this.deadCount--
  }

  /**
   * Ends an operation: `result`, after publishing the wake-ups the hub refused (it was full: `publish` slides out
   * the oldest) and logging the dead letters the bound dropped. Both are rare, so the common path allocates nothing.
   */
  after<A, E>(result: Effect.Effect<A, E>): Effect.Effect<A, E> {
    if (this.unsent === undefined && this.droppedCount === 0) return result
    let effect: Effect.Effect<unknown> = Effect.void
    const unsent = this.unsent
    if (unsent !== undefined) {
      this.unsent = undefined
      effect = Effect.forEach(unsent, (queue) => this.hub.publish(queue), { discard: true })
    }
    if (this.droppedCount > 0) {
      const named = (this.dropped ?? []).map((job) =>
        `${job.lane.name} ${job.id} in queue ${job.lane.queue.name} (${job.lastError})`
      )
      const more = this.droppedCount - named.length
      const message = `MemoryJobStore: ${this.droppedCount} dead letter(s) dropped, the oldest, past maxDeadLetters ` +
        `(${this.maxDeadLetters}): ${named.join(", ")}${more > 0 ? ` and ${more} more` : ""}`
      this.droppedCount = 0
      this.dropped = undefined
      effect = Effect.zipRight(effect, Effect.logWarning(message))
    }
    return Effect.zipRight(effect, result)
  }

  enqueue(jobs: ReadonlyArray<EncodedJob>): Effect.Effect<ReadonlyArray<Enqueued>, JobStoreError> {
    const results = this.insert(jobs, this.begin(), undefined)
    return results instanceof JobStoreError ? Effect.fail(results) : Effect.succeed(results)
  }

  enqueueSlot(slot: EncodedSlot): Effect.Effect<string | undefined, JobStoreError> {
    const now = this.begin()
    const at = slot.slot.getTime()
    const recent = this.slots.get(slot.schedule)
    const free = recent === undefined ? !slot.backfill : !recent.includes(at) && at > recent[recent.length - 1]!
    if (!free) return Effect.succeed(undefined)
    const results = this.insert([slot.job], now, at)
    if (results instanceof JobStoreError) return Effect.fail(results)
    this.slots.set(slot.schedule, [...(recent ?? []), at].sort((a, b) => b - a).slice(0, jobStore.recentSlots))
    return Effect.succeed(results[0]!.id)
  }

  /** Stores `jobs` (in one synchronous step) and says what each came to, or the error when they would not fit. */
  private insert(
    jobs: ReadonlyArray<EncodedJob>,
    now: number,
    scheduledFor: number | undefined
  ): Array<Enqueued> | JobStoreError {
    if (this.maxJobs !== Infinity) {
      const adding = this.newJobs(jobs)
      if (this.live + adding > this.maxJobs) {
        return new JobStoreError({
          operation: "enqueue",
          reason: `the store is full: it holds ${this.live} jobs of maxJobs ${this.maxJobs}, ` +
            `and ${adding} more would not fit; nothing was enqueued`
        })
      }
    }
    const results = new Array<Enqueued>(jobs.length)
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i]!
      const key = job.key
      if (key !== undefined) {
        const holder = this.keys.get(key)
        if (holder !== undefined) {
          results[i] = this.keyHeld(holder, job, now)
          continue
        }
      }
      const lane = this.laneOf(job.queue, job.name)
      const record = new JobRecord(
        String(++this.nextId),
        lane,
        job.payload,
        job.priority,
        key,
        job.maxAttempts,
        now,
        dueAt(job, now),
        ++this.nextSeq
      )
      record.scheduledFor = scheduledFor
      this.jobs.set(record.id, record)
      this.live++
      lane.members++
      if (key !== undefined) this.keys.set(key, record)
      this.place(record, now, true)
      results[i] = { id: record.id, duplicate: false, outcome: "inserted" }
    }
    return results
  }

  /**
   * How many of `jobs` `enqueue` would store: those whose key no live job holds, once per key, and one to run after
   * a running holder that has none yet (unless skipped).
   */
  private newJobs(jobs: ReadonlyArray<EncodedJob>): number {
    let adding = 0
    let seen: Set<string> | undefined
    for (const { key, keyMode } of jobs) {
      if (key === undefined) {
        adding++
        continue
      }
      if (seen?.has(key) ?? false) continue
      const holder = this.keys.get(key)
      if (holder === undefined || (keyMode !== "skip" && holder.state === State.Leased && !holder.successor)) {
        ;(seen ??= new Set()).add(key)
        adding++
      }
    }
    return adding
  }

  claim(request: ClaimRequest): Effect.Effect<ClaimResult> {
    const { limit, names, queues } = request
    const now = this.begin()
    const claimed: Array<ClaimedJob> = []
    const expiresAt = now + Duration.toMillis(request.lease)
    const lanes: Array<Lane> = []
    for (let q = 0; q < queues.length; q++) {
      const queue = this.queues.get(queues[q]!)
      if (queue === undefined || queue.ready === 0 || this.paused.has(queue.name)) continue
      for (let n = 0; n < names.length; n++) {
        const lane = queue.lanes.get(names[n]!)
        if (lane !== undefined && lane.ready.size > 0 && !lanes.includes(lane)) lanes.push(lane)
      }
    }
    // A merge of the lanes' heaps: each pick takes the best of their tops.
    while (claimed.length < limit && lanes.length > 0) {
      let best = 0
      for (let i = 1; i < lanes.length; i++) {
        if (claimOrder(lanes[i]!.ready.peek()!, lanes[best]!.ready.peek()!)) best = i
      }
      const lane = lanes[best]!
      const record = lane.ready.pop()!
      if (lane.ready.size === 0) {
        lanes[best] = lanes[lanes.length - 1]!
        lanes.pop()
      }
      claimed.push(this.lease(record, expiresAt, request.worker, Duration.toMillis(request.lease)))
    }
    return Effect.succeed({ jobs: claimed, buried: this.takeBuried() })
  }

  private lease(record: JobRecord, expiresAt: number, worker: string, leaseMillis: number): ClaimedJob {
    const queue = record.lane.queue
    queue.ready--
    queue.leased++
    record.state = State.Leased
    record.attempts++
    const token = String(++this.nextToken)
    record.token = token
    record.leaseExpiresAt = expiresAt
    record.worker = worker
    record.leasedAt = expiresAt - leaseMillis
    this.leases.push(record)
    return {
      id: record.id,
      name: record.lane.name,
      queue: queue.name,
      // The text was made by `JSON.stringify`, so it parses; each claim gets a fresh copy.
      payload: JSON.parse(record.payload),
      attempt: record.attempts,
      maxAttempts: record.maxAttempts,
      priority: record.priority,
      key: record.key,
      enqueuedAt: new Date(record.enqueuedAt),
      runAt: new Date(record.runAt),
      lease: { jobId: record.id, token },
      leaseExpiresAt: new Date(expiresAt),
      lastError: record.lastError,
      errors: record.errors.slice(),
      scheduledFor: record.scheduledFor === undefined ? undefined : new Date(record.scheduledFor)
    }
  }

  renew(leases: ReadonlyArray<Lease>, lease: Duration.Duration): Effect.Effect<ReadonlyArray<string>> {
    const now = this.begin()
    const expiresAt = now + Duration.toMillis(lease)
    const lost: Array<string> = []
    for (let i = 0; i < leases.length; i++) {
      const record = this.held(leases[i]!)
      if (record === undefined) {
        lost.push(leases[i]!.jobId)
      } else {
        record.leaseExpiresAt = expiresAt
        this.leases.update(record)
      }
    }
    return Effect.succeed(lost)
  }

  /**
   * Applies each outcome whose lease still holds. `begin` has already settled every lease that expired by now, so
   * `held` refuses an expired lease as it refuses one settled before; a lease settled earlier in the same batch is
   * refused too, so of two outcomes for one lease only the first applies.
   */
  settle(settlements: ReadonlyArray<Settlement>): Effect.Effect<ReadonlyArray<boolean>> {
    const now = this.begin()
    const applied = new Array<boolean>(settlements.length)
    for (let i = 0; i < settlements.length; i++) {
      const { durationMs, lease, outcome, result } = settlements[i]!
      const record = this.held(lease)
      if (record === undefined) {
        applied[i] = false
        continue
      }
      this.unlease(record)
      switch (outcome._tag) {
        case "Completed":
          this.live--
          this.releaseKey(record, now)
          if (this.keepSucceeded > 0) this.keep(record, now, durationMs, result)
          else this.forget(record)
          break
        case "Retry":
          record.runAt = now + delayMillis(outcome.delay)
          record.lastError = outcome.error
          record.errors.push({ attempt: record.attempts, error: outcome.error, at: new Date(now) })
          if (record.errors.length > maxAttemptErrors) record.errors.shift()
          this.place(record, now, true)
          break
        case "Dead":
          this.bury(record, outcome.error, now)
          break
        case "Snoozed":
          record.attempts--
          record.runAt = now + delayMillis(outcome.delay)
          this.place(record, now, true)
          break
        case "Released":
          if (outcome.refund) record.attempts--
          // Its `runAt` and enqueue order are unchanged (it was claimed, so `runAt` has passed): it keeps its place.
          this.place(record, now, true)
          break
      }
      applied[i] = true
    }
    return Effect.succeed(applied)
  }

  /**
   * Settles the expired leases, waking the queues that got jobs back, and reports every job buried since the last
   * report: `reaped` counts the jobs it made ready again plus the jobs it reports buried, so that
   * `reaped - buried.length` is always how many it made ready.
   */
  reap(): Effect.Effect<ReapResult> {
    const now = this.clock.unsafeCurrentTimeMillis()
    this.operation++
    const buriedBefore = this.buried?.length ?? 0
    const reaped = this.catchUp(now, true) + buriedBefore
    return Effect.succeed({ reaped, buried: this.takeBuried() })
  }

  stats(): Effect.Effect<JobStats> {
    this.begin()
    let ready = 0
    let scheduled = 0
    let leased = 0
    let dead = 0
    let cancelled = 0
    let succeeded = 0
    const byQueue: Array<[string, QueueStats]> = []
    const readyByName = new Map<string, number>()
    for (const queue of this.queues.values()) {
      if (queue.ready + queue.scheduled + queue.leased + queue.dead + queue.cancelled + queue.succeeded === 0) continue
      ready += queue.ready
      scheduled += queue.scheduled
      leased += queue.leased
      dead += queue.dead
      cancelled += queue.cancelled
      succeeded += queue.succeeded
      byQueue.push([queue.name, {
        ready: queue.ready,
        scheduled: queue.scheduled,
        leased: queue.leased,
        dead: queue.dead,
        cancelled: queue.cancelled,
        succeeded: queue.succeeded
      }])
      if (queue.ready === 0) continue
      for (const lane of queue.lanes.values()) {
        const size = lane.ready.size
        if (size > 0) readyByName.set(lane.name, (readyByName.get(lane.name) ?? 0) + size)
      }
    }
    // `fromEntries` defines own properties, so a queue (or job) named "__proto__" is one like any other.
    return Effect.succeed({
      ready,
      scheduled,
      leased,
      dead,
      cancelled,
      succeeded,
      byQueue: Object.fromEntries(byQueue),
      readyByName: Object.fromEntries(readyByName),
      pausedQueues: Array.from(this.paused).sort()
    })
  }

  deadLetters(
    options: { readonly limit?: number | undefined; readonly queue?: string | undefined } | undefined
  ): Effect.Effect<ReadonlyArray<DeadJob>> {
    const limit = options?.limit ?? jobStore.defaultDeadLettersLimit
    const queueName = options?.queue
    this.begin()
    const found: Array<DeadJob> = []
    if (queueName === undefined) {
      for (let job = this.newestDead; job !== undefined && found.length < limit; job = job.older) {
        if (job.state === State.Dead) found.push(deadJob(job))
      }
    } else {
      const queue = this.queues.get(queueName)
      for (let job = queue?.newestDead; job !== undefined && found.length < limit; job = job.olderInQueue) {
        if (job.state === State.Dead) found.push(deadJob(job))
      }
    }
    return Effect.succeed(found)
  }

  /**
   * Deletes at most `pruneBatch` ended jobs past their retention, oldest first: the dead letters and cancelled
   * jobs past the retention, and the succeeded ones past `keepSucceeded`.
   */
  prune(): Effect.Effect<PruneResult> {
    const now = this.begin()
    const cutoff = now - this.retention
    const keptCutoff = now - this.keepSucceeded
    let pruned = 0
    const oldestKept = () => this.succeeded[this.succeededHead]
    while (pruned < jobStore.pruneBatch && this.oldestDead !== undefined && this.oldestDead.failedAt < cutoff) {
      this.dropOldestDead()
      pruned++
    }
    while (pruned < jobStore.pruneBatch && oldestKept() !== undefined && oldestKept()!.failedAt < keptCutoff) {
      this.dropOldestSucceeded()
      pruned++
    }
    const more = (this.oldestDead !== undefined && this.oldestDead.failedAt < cutoff) ||
      (oldestKept() !== undefined && oldestKept()!.failedAt < keptCutoff)
    return Effect.succeed({ pruned, more })
  }

  pauseQueue(queue: string): Effect.Effect<void> {
    this.begin()
    this.paused.add(queue)
    return Effect.void
  }

  /** Resumes `queue`, and wakes its workers when it has jobs ready. */
  resumeQueue(queue: string): Effect.Effect<void> {
    this.begin()
    const state = this.queues.get(queue)
    if (this.paused.delete(queue) && state !== undefined && state.ready > 0) this.wake(state)
    return Effect.void
  }

  redrive(ids: ReadonlyArray<string>): Effect.Effect<number, JobStoreError> {
    const now = this.begin()
    if (this.maxJobs !== Infinity) {
      const moving = this.redrivable(ids)
      if (this.live + moving > this.maxJobs) {
        return Effect.fail(
          new JobStoreError({
            operation: "redrive",
            reason: `the store is full: it holds ${this.live} jobs of maxJobs ${this.maxJobs}, ` +
              `and ${moving} more would not fit; nothing was redriven`
          })
        )
      }
    }
    let moved = 0
    for (let i = 0; i < ids.length; i++) {
      const record = this.jobs.get(ids[i]!)
      if (record === undefined || !isBuried(record)) continue
      // A live job took its key since it died: redriving it would make two live jobs with one key.
      if (record.key !== undefined && this.keys.has(record.key)) continue
      this.unbury(record)
      record.attempts = 0
      record.lastError = undefined
      record.errors = []
      record.enqueuedAt = now
      record.runAt = now
      record.seq = ++this.nextSeq
      this.live++
      if (record.key !== undefined) this.keys.set(record.key, record)
      this.place(record, now, true)
      moved++
    }
    return Effect.succeed(moved)
  }

  /** How many of `ids` `redrive` would move. */
  private redrivable(ids: ReadonlyArray<string>): number {
    const seen = new Set<string>()
    const keys = new Set<string>()
    for (const id of ids) {
      const record = this.jobs.get(id)
      if (record === undefined || !isBuried(record) || seen.has(id)) continue
      if (record.key !== undefined) {
        if (this.keys.has(record.key) || keys.has(record.key)) continue
        keys.add(record.key)
      }
      seen.add(id)
    }
    return seen.size
  }

  get(id: string): Effect.Effect<StoredJob | undefined> {
    this.begin()
    const record = this.jobs.get(id)
    return Effect.succeed(record === undefined ? undefined : storedJob(record))
  }

  /**
   * One page, newest first: the jobs are in `jobs` in id order (a job is added with its new id, and stays while it
   * lives), so one pass keeps the last `limit` matches below `after`. O(jobs) per page, whatever the filter.
   */
  list(options: ListOptions & { readonly limit: number }): Effect.Effect<JobPage> {
    this.begin()
    const { key, limit, name, queue, state } = options
    // An `after` that is no id of this store names no job: the page is empty.
    const after = options.after === undefined ? Infinity : Number(options.after) || 0
    const wanted = state === undefined ? undefined : stateOf[state]
    // The matches, as a ring of the `limit + 1` latest: one more than a page tells whether another page follows.
    const ring: Array<JobRecord> = []
    let count = 0
    for (const record of this.jobs.values()) {
      if (Number(record.id) >= after) break
      if (wanted !== undefined && !wanted.includes(record.state)) continue
      if (queue !== undefined && record.lane.queue.name !== queue) continue
      if (name !== undefined && record.lane.name !== name) continue
      if (key !== undefined && record.key !== key) continue
      ring[count++ % (limit + 1)] = record
    }
    const jobs: Array<StoredJob> = []
    for (let i = count - 1; i >= 0 && i >= count - limit; i--) jobs.push(storedJob(ring[i % (limit + 1)]!))
    return Effect.succeed({ jobs, next: count > limit ? jobs[jobs.length - 1]!.id : undefined })
  }

  cancel(id: string): Effect.Effect<CancelResult> {
    const now = this.begin()
    const record = this.jobs.get(id)
    if (record === undefined) return Effect.succeed("notFound")
    if (isEnded(record)) return Effect.succeed("alreadyFinished")
    this.cancelRecord(record, now)
    return Effect.succeed("cancelled")
  }

  cancelBatch(filter: CancelFilter, limit: number): Effect.Effect<number> {
    const now = this.begin()
    const wanted = filter.state === undefined ? live : stateOf[filter.state]
    const found: Array<JobRecord> = []
    for (const record of this.jobs.values()) {
      if (found.length === limit) break
      if (!wanted.includes(record.state)) continue
      if (filter.queue !== undefined && record.lane.queue.name !== filter.queue) continue
      if (filter.name !== undefined && record.lane.name !== filter.name) continue
      found.push(record)
    }
    for (const record of found) this.cancelRecord(record, now)
    return Effect.succeed(found.length)
  }

  /** Forgets the ended jobs among `ids`. */
  delete(ids: ReadonlyArray<string>): Effect.Effect<number> {
    this.begin()
    let deleted = 0
    for (const id of ids) {
      const record = this.jobs.get(id)
      if (record === undefined || !isBuried(record)) continue
      this.unbury(record)
      this.forget(record)
      deleted++
    }
    return Effect.succeed(deleted)
  }

  runNow(id: string): Effect.Effect<RunNowResult> {
    const now = this.begin()
    const record = this.jobs.get(id)
    if (record === undefined) return Effect.succeed("notFound")
    if (record.state !== State.Scheduled) return Effect.succeed("notScheduled")
    this.unplace(record)
    record.runAt = now
    this.place(record, now, true)
    return Effect.succeed("ready")
  }

  /**
   * Ends a live job as cancelled: out of its structure, its key free (`bury` passes it on), its worker told when it
   * was leased.
   */
  private cancelRecord(record: JobRecord, now: number): void {
    switch (record.state) {
      case State.Leased:
        this.unlease(record)
        this.cancelHub.unsafeOffer(record.id)
        break
      case State.Waiting:
        // Kept to run after the running holder of its key: only the holder refers to it.
        this.keys.get(record.key!)!.successor = undefined
        record.lane.queue.scheduled--
        break
      default:
        this.unplace(record)
    }
    this.bury(record, cancelled, now, State.Cancelled)
  }

  sizes(): StoreSizes {
    let ready = 0
    let lanes = 0
    for (const queue of this.queues.values()) {
      for (const lane of queue.lanes.values()) {
        lanes++
        ready += lane.ready.size
      }
    }
    return {
      jobs: this.jobs.size,
      keys: this.keys.size,
      ready,
      scheduled: this.schedule.size,
      leases: this.leases.size,
      dead: this.deadCount,
      queues: this.queues.size,
      lanes,
      buried: this.buried?.length ?? 0
    }
  }
}

/** Dead or cancelled: in the ended list, what `redrive` and `delete` take. */
const isBuried = (record: JobRecord): boolean => record.state === State.Dead || record.state === State.Cancelled

/** No longer live: buried, or completed and kept (`succeededRetention`). */
const isEnded = (record: JobRecord): boolean => isBuried(record) || record.state === State.Succeeded

/** The error a cancelled job ends with. */
const cancelled = "cancelled"

const live: ReadonlyArray<State> = [State.Ready, State.Scheduled, State.Leased, State.Waiting]

/** The record states of each `JobState`. */
const stateOf: Readonly<Record<JobState, ReadonlyArray<State>>> = {
  ready: [State.Ready],
  scheduled: [State.Scheduled, State.Waiting],
  leased: [State.Leased],
  succeeded: [State.Succeeded],
  dead: [State.Dead],
  cancelled: [State.Cancelled]
}

const stateNames: Readonly<Record<State, JobState>> = {
  [State.Ready]: "ready",
  [State.Scheduled]: "scheduled",
  [State.Leased]: "leased",
  [State.Dead]: "dead",
  [State.Waiting]: "scheduled",
  [State.Cancelled]: "cancelled",
  [State.Succeeded]: "succeeded"
}

const storedJob = (record: JobRecord): StoredJob => {
  const leased = record.state === State.Leased
  const ended = isEnded(record)
  return {
    id: record.id,
    state: stateNames[record.state],
    name: record.lane.name,
    queue: record.lane.queue.name,
    payload: JSON.parse(record.payload),
    attempts: record.attempts,
    maxAttempts: record.maxAttempts,
    priority: record.priority,
    key: record.key,
    enqueuedAt: new Date(record.enqueuedAt),
    runAt: new Date(record.runAt),
    lastError: record.lastError,
    errors: record.errors.slice(),
    scheduledFor: record.scheduledFor === undefined ? undefined : new Date(record.scheduledFor),
    worker: leased ? record.worker : undefined,
    leaseExpiresAt: leased ? new Date(record.leaseExpiresAt) : undefined,
    endedAt: ended ? new Date(record.failedAt) : undefined,
    startedAt: leased ? new Date(record.leasedAt) : undefined,
    durationMs: record.state === State.Succeeded ? record.durationMs : undefined,
    result: record.state === State.Succeeded && record.result !== undefined ? JSON.parse(record.result) : undefined
  }
}

const deadJob = (job: JobRecord): DeadJob => ({
  id: job.id,
  name: job.lane.name,
  queue: job.lane.queue.name,
  payload: JSON.parse(job.payload),
  attempts: job.attempts,
  lastError: job.lastError!,
  failedAt: new Date(job.failedAt)
})

/** The core behind each service `make` built, for the tests that look inside. */
const cores = new WeakMap<Service, StoreCore>()

/** @internal The sizes of every structure of the store behind `service`; `undefined` for another store. */
export const sizes = (service: Service): StoreSizes | undefined => cores.get(service)?.sizes()

const invalidOption = (option: string, value: unknown, expected: string) =>
  jobStore.invalidOption("MemoryJobStore", option, value, expected)

/** @internal */
export const make = (options?: MemoryJobStoreOptions): Effect.Effect<Service> =>
  Effect.suspend(() => {
    const maxDeadLetters = options?.maxDeadLetters ?? defaultMaxDeadLetters
    if (!jobStore.isCount(maxDeadLetters)) {
      return invalidOption("maxDeadLetters", maxDeadLetters, "an integer of 0 or more")
    }
    const maxJobs = options?.maxJobs ?? Infinity
    if (maxJobs !== Infinity && !(Number.isSafeInteger(maxJobs) && maxJobs >= 1)) {
      return invalidOption("maxJobs", maxJobs, "an integer of 1 or more, or Infinity")
    }
    const retention = jobStore.retentionOption(options?.deadLetterRetention)
    if (retention === undefined) {
      return invalidOption("deadLetterRetention", options?.deadLetterRetention, "a duration above zero")
    }
    const keepSucceeded = jobStore.succeededRetentionOption(options?.succeededRetention)
    if (keepSucceeded === undefined) {
      return invalidOption("succeededRetention", options?.succeededRetention, "a duration")
    }
    return Effect.map(
      Effect.all([
        Effect.clock,
        PubSub.sliding<string>(wakeupBufferSize),
        PubSub.sliding<string>(wakeupBufferSize)
      ]),
      ([clock, hub, cancelHub]) => {
        const core = new StoreCore(
          clock,
          hub,
          cancelHub,
          maxDeadLetters,
          maxJobs,
          Duration.toMillis(retention),
          keepSucceeded
        )
        const driver: JobStore.Driver = {
          name: "MemoryJobStore",
          immediate: true,
          insert: (jobs) => Effect.suspend(() => core.after(core.enqueue(jobs))),
          enqueueSlot: (slot) => Effect.suspend(() => core.after(core.enqueueSlot(slot))),
          claim: (request) => Effect.suspend(() => core.after(core.claim(request))),
          renew: (leases, lease) => Effect.suspend(() => core.after(core.renew(leases, lease))),
          settle: (settlements) => Effect.suspend(() => core.after(core.settle(settlements))),
          reap: Effect.suspend(() => core.after(core.reap())),
          prune: Effect.suspend(() => core.after(core.prune())),
          // Subscribed when this effect runs, in the caller's scope: live when it returns.
          wakeups: PubSub.subscribe(hub),
          stats: Effect.suspend(() => core.after(core.stats())),
          deadLetters: (listOptions) => Effect.suspend(() => core.after(core.deadLetters(listOptions))),
          redrive: (ids) => Effect.suspend(() => core.after(core.redrive(ids))),
          pauseQueue: (queue) => Effect.suspend(() => core.after(core.pauseQueue(queue))),
          resumeQueue: (queue) => Effect.suspend(() => core.after(core.resumeQueue(queue))),
          get: (id) => Effect.suspend(() => core.after(core.get(id))),
          list: (listOptions) => Effect.suspend(() => core.after(core.list(listOptions))),
          cancel: (id) => Effect.suspend(() => core.after(core.cancel(id))),
          cancelBatch: (filter, limit) => Effect.suspend(() => core.after(core.cancelBatch(filter, limit))),
          cancellations: PubSub.subscribe(cancelHub),
          delete: (ids) => Effect.suspend(() => core.after(core.delete(ids))),
          runNow: (id) => Effect.suspend(() => core.after(core.runNow(id)))
        }
        const service = jobStore.make(driver)
        cores.set(service, core)
        return service
      }
    )
  })
