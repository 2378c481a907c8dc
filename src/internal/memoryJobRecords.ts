/**
 * The memory store's records and the structures that hold them: a job (`JobRecord`) and where it can be (a lane's
 * ready jobs, a heap by run time or lease expiry, a queue's dead letters). They know nothing of time, keys or
 * capacity: `StoreCore` (in `memoryJobStore.ts`) owns the state and moves records between these.
 */
import type { AttemptError } from "../JobStore.js"

/**
 * Where a job is. A completed job is in no state: nothing refers to it any more. `Waiting`: kept to run after the
 * running holder of its key (`keyMode`), in no structure but the holder's `successor`; counted as scheduled.
 * `Dead` and `Cancelled` jobs are the ended ones, kept in one list (`older`/`newer`) until pruned; `Succeeded` ones
 * (kept only with `succeededRetention`) in a list of their own, in the order they completed.
 */
export const State = { Ready: 0, Scheduled: 1, Leased: 2, Dead: 3, Waiting: 4, Cancelled: 5, Succeeded: 6 } as const
export type State = typeof State[keyof typeof State]

/**
 * One job, from `enqueue` to a `Completed` settle or to the end of the dead letters. The same object moves between the
 * structures: a lane's ready heap, the schedule heap, the lease heap, the dead-letter lists. It is in at most one
 * heap at a time, so one `index` field serves them all.
 */
export class JobRecord {
  state: State = State.Ready
  attempts = 0
  lastError: string | undefined = undefined
  /** The errors of earlier failed attempts, oldest first, the newest `maxAttemptErrors`. */
  errors: Array<AttemptError> = []
  token: string | undefined = undefined
  /** The worker that holds the lease, and when it claimed the job, while leased. */
  worker: string | undefined = undefined
  leasedAt = 0
  /** The slot of the schedule that enqueued the job, if one did. */
  scheduledFor: number | undefined = undefined
  /** The job kept to run after this one, which holds the key (`keyMode`), once this one has ended for good. */
  successor: JobRecord | undefined = undefined
  leaseExpiresAt = 0
  /** When it died, was cancelled or succeeded. */
  failedAt = 0
  /** A succeeded job's run time, and its result as JSON text, when the worker said them. */
  durationMs: number | undefined = undefined
  result: string | undefined = undefined
  /** Position in the heap that holds the job; -1 when in none. */
  index = -1
  /** The ended jobs (dead or cancelled), oldest to newest: of the whole store, and of the job's queue. */
  older: JobRecord | undefined = undefined
  newer: JobRecord | undefined = undefined
  olderInQueue: JobRecord | undefined = undefined
  newerInQueue: JobRecord | undefined = undefined

  constructor(
    readonly id: string,
    readonly lane: Lane,
    /** JSON text: each claim parses it, so every handler gets a copy of its own, as from a database. */
    public payload: string,
    public priority: number,
    readonly key: string | undefined,
    public maxAttempts: number,
    public enqueuedAt: number,
    public runAt: number,
    /** Enqueue order: the last tie-break of claim order; a redriven job gets a new one. */
    public seq: number
  ) {}
}

type Less = (a: JobRecord, b: JobRecord) => boolean

/** Claim order: lower priority first, then earlier `runAt`, then enqueue order. */
export const claimOrder: Less = (a, b) =>
  a.priority !== b.priority ? a.priority < b.priority : a.runAt !== b.runAt ? a.runAt < b.runAt : a.seq < b.seq

export const scheduleOrder: Less = (a, b) => a.runAt !== b.runAt ? a.runAt < b.runAt : a.seq < b.seq

export const expiryOrder: Less = (a, b) =>
  a.leaseExpiresAt !== b.leaseExpiresAt ? a.leaseExpiresAt < b.leaseExpiresAt : a.seq < b.seq

/** A binary min-heap of jobs that keeps each job's position in it, so that any job can be removed in O(log n). */
export class RecordHeap {
  readonly items: Array<JobRecord> = []
  constructor(private readonly less: Less) {}

  get size(): number {
    return this.items.length
  }

  peek(): JobRecord | undefined {
    return this.items[0]
  }

  push(record: JobRecord): void {
    record.index = this.items.length
    this.items.push(record)
    this.up(record.index)
  }

  pop(): JobRecord | undefined {
    const top = this.items[0]
    if (top !== undefined) this.remove(top)
    return top
  }

  remove(record: JobRecord): void {
    const items = this.items
    const at = record.index
    const last = items.pop()!
    record.index = -1
    if (last === record) return
    items[at] = last
    last.index = at
    this.up(at)
    this.down(last.index)
  }

  /** Restores the order after the job's key changed. */
  update(record: JobRecord): void {
    this.up(record.index)
    this.down(record.index)
  }

  private up(at: number): void {
    const items = this.items
    const record = items[at]!
    while (at > 0) {
      const parentAt = (at - 1) >> 1
      const parent = items[parentAt]!
      if (!this.less(record, parent)) break
      items[at] = parent
      parent.index = at
      at = parentAt
    }
    items[at] = record
    record.index = at
  }

  private down(at: number): void {
    const items = this.items
    const length = items.length
    const record = items[at]!
    while (true) {
      const left = 2 * at + 1
      if (left >= length) break
      const right = left + 1
      const child = right < length && this.less(items[right]!, items[left]!) ? right : left
      const smaller = items[child]!
      if (!this.less(smaller, record)) break
      items[at] = smaller
      smaller.index = at
      at = child
    }
    items[at] = record
    record.index = at
  }
}

/**
 * A lane's ready jobs in claim order: a run of jobs that came in order (the usual case: enqueued one after the other
 * at one priority), a plain array taken from its head in O(1), and a heap for the others. A pop takes the better of
 * the two heads.
 */
export class ReadyJobs {
  private run: Array<JobRecord | undefined> = []
  private head = 0
  private readonly heap = new RecordHeap(claimOrder)

  get size(): number {
    return this.run.length - this.head + this.heap.size
  }

  peek(): JobRecord | undefined {
    const first = this.run[this.head]
    const top = this.heap.peek()
    return first === undefined || (top !== undefined && claimOrder(top, first)) ? top : first
  }

  push(record: JobRecord): void {
    const last = this.run.length > this.head ? this.run[this.run.length - 1]! : undefined
    if (last === undefined || !claimOrder(record, last)) this.run.push(record)
    else this.heap.push(record)
  }

  /** Takes out a job that is here (rare: a `replace` of a ready job), in O(n) when it is in the run. */
  remove(record: JobRecord): void {
    if (record.index >= 0) return this.heap.remove(record)
    const at = this.run.indexOf(record, this.head)
    if (at === this.head) this.pop()
    else this.run.splice(at, 1)
  }

  pop(): JobRecord | undefined {
    const first = this.run[this.head]
    const top = this.heap.peek()
    if (first === undefined || (top !== undefined && claimOrder(top, first))) return this.heap.pop()
    this.run[this.head++] = undefined
    if (this.head === this.run.length) {
      this.run = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.run.length) {
      this.run = this.run.slice(this.head)
      this.head = 0
    }
    return first
  }
}

/** The jobs of one name in one queue: what a claim asks for is a set of lanes. */
export class Lane {
  readonly ready = new ReadyJobs()
  /** The jobs of this lane in any state, dead ones included: a lane is swept only when none refers to it. */
  members = 0
  constructor(readonly queue: QueueState, readonly name: string) {}
}

/** One queue's lanes and counts, and its ended jobs (dead or cancelled) in order. */
export class QueueState {
  readonly lanes = new Map<string, Lane>()
  ready = 0
  scheduled = 0
  leased = 0
  dead = 0
  cancelled = 0
  succeeded = 0
  oldestDead: JobRecord | undefined = undefined
  newestDead: JobRecord | undefined = undefined
  /** The operation that last woke this queue: a queue is woken once per operation. */
  wokenBy = 0
  constructor(readonly name: string) {}
}
