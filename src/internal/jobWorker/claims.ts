/**
 * The claims a worker holds, from the claim until the job is settled, given back or let go, and the slots they
 * take. A claim's state is one tagged union, changed only here, in synchronous steps (one atomic step each, as in
 * `WorkerCore`):
 *
 * ```text
 *             start                 handler ended           store took it
 *   Queued ─────────► Running ─────────────────► Settling ───────────────► Done
 *     │  (prefetched,   │ ▲ cut (timeout,                     ▲
 *     │   no slot)      │ │  deadline: still Running)         │ settle refused / lease lost
 *     │                 │ lease lost (store said so) ► Lost ──┘ (task ended)
 *     │                 └ not renewed in time ──► Fenced{until} ──► Done (task ended and `until` passed)
 *     └ lease lost / given back ───────────────────────────────────► Done
 * ```
 *
 * Slots: `Running`, `Lost` and `Fenced` take one; `Settling` keeps its slot unless the worker prefetches (then the
 * slot goes to the next job while the store takes the outcome); `Queued` takes none. So `inFlight ≤ concurrency`,
 * and the worker holds (or may still hold, for `Fenced`) at most `concurrency + prefetch` leases: the producer
 * claims only for `room`.
 */
import type * as Fiber from "effect/Fiber"
import type { ClaimedJob } from "../../JobStore.js"
import type { Entry } from "./executor.js"

export type ClaimState =
  | { readonly _tag: "Queued" }
  | { readonly _tag: "Running" }
  | { readonly _tag: "Settling" }
  /** The store said the lease no longer holds: the outcome is discarded; the slot frees when the task ends. */
  | { readonly _tag: "Lost" }
  /**
   * The worker could not renew the lease in time and stopped the job before it could lapse: the store may still
   * count it until `until` (this worker's clock), so the job keeps its slot until then, and until its task ended.
   */
  | { readonly _tag: "Fenced"; readonly until: number; readonly ended: boolean }
  | { readonly _tag: "Done" }

const Queued: ClaimState = { _tag: "Queued" }
const Running: ClaimState = { _tag: "Running" }
const Settling: ClaimState = { _tag: "Settling" }
const Lost: ClaimState = { _tag: "Lost" }
const Done: ClaimState = { _tag: "Done" }

/** Why an attempt was cut short, when it was: decides its outcome if the handler did not succeed. */
export type Cut = "timeout" | "deadline" | "lease"

/** One claimed job. Its fields are written by the part that owns each, as named. */
export class Claim {
  /** Claims: the state, and whether it takes a slot. */
  state: ClaimState = Running
  slot = false
  /** Leases: until when the lease surely holds, by this worker's clock (the claim or last renewal sent + lease). */
  until: number
  /** Executor: the task's fiber, once tracked; whether its handler runs now; why it was cut, if it was. */
  task: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  running = false
  cut: Cut | undefined = undefined
  /** Whether the task has begun the attempt (a task cut off before it began never settles: the sweep does). */
  begun = false
  startedAt = -1
  /** Executor's timeouts: the links of the list of attempts under one timeout, and this attempt's deadline. */
  deadline = 0
  before: Claim | undefined = undefined
  after: Claim | undefined = undefined
  listed = false
  /**
   * This worker's earlier claim of the same job, when the store gave the job out again while that one's task still
   * ran: this attempt starts once that task has ended.
   */
  previous: Claim | undefined = undefined
  constructor(readonly job: ClaimedJob, readonly entry: Entry, until: number) {
    this.until = until
  }
}

export class Claims {
  /** The claims whose lease the worker believes holds, by job id: what the renewer renews. */
  readonly live = new Map<string, Claim>()
  /** Claims that hold a slot or a lease and are not in `live`: lost or fenced, their task not ended yet. */
  readonly gone = new Set<Claim>()
  /** The claims waiting for a slot, oldest first (one lost meanwhile is skipped). */
  private readonly queue: Array<Claim> = []
  private queueHead = 0
  /** How many of `queue` still wait. */
  waiting = 0
  /** Slots taken: never more than `concurrency`. */
  inFlight = 0
  /** Claims not `Done`: every lease the worker holds or may still hold. */
  held = 0
  /** Called when a slot frees (or a claim ends): the producer starts a queued job or claims. */
  onFreed: () => void = () => {}

  constructor(readonly concurrency: number, readonly prefetch: number) {}

  /** How many jobs the worker may claim now: at most `concurrency + prefetch` held in all. */
  get room(): number {
    return this.concurrency + this.prefetch - this.held
  }

  get freeSlots(): number {
    return this.concurrency - this.inFlight
  }

  /** A claim returned `claim`: with `slot`, it is about to start; without, it waits in the queue. */
  add(claim: Claim, slot: boolean): void {
    this.held++
    this.live.set(claim.job.id, claim)
    if (slot) {
      claim.state = Running
      claim.slot = true
      this.inFlight++
    } else {
      claim.state = Queued
      this.queue.push(claim)
      this.waiting++
    }
  }

  /** The oldest claim still waiting, out of the queue: it takes a slot (`slot`) or is about to be given back. */
  nextQueued(slot: boolean): Claim | undefined {
    while (this.queueHead < this.queue.length) {
      const claim = this.queue[this.queueHead]!
      this.queue[this.queueHead++] = undefined as never
      if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
        this.queue.splice(0, this.queueHead)
        this.queueHead = 0
      }
      if (claim.state._tag !== "Queued") continue
      this.waiting--
      if (slot) {
        claim.state = Running
        claim.slot = true
        this.inFlight++
      } else {
        claim.state = Settling
      }
      return claim
    }
    return undefined
  }

  /**
   * The attempt ended and its outcome goes to the store: prefetching, the slot goes to the next job now (the claim
   * keeps its lease, renewed, until the store took the outcome).
   */
  settling(claim: Claim): void {
    if (claim.state._tag !== "Running") return
    claim.state = Settling
    if (this.prefetch > 0 && claim.slot) {
      this.freeSlot(claim)
      this.onFreed()
    }
  }

  /** The lease no longer holds: the store said so, or gave the job out again. Returns whether it was held. */
  lose(claim: Claim): boolean {
    switch (claim.state._tag) {
      case "Queued":
        this.waiting--
        this.end(claim)
        return true
      case "Running":
        claim.state = Lost
        this.unlive(claim)
        this.gone.add(claim)
        return true
      default:
        return false
    }
  }

  /** Stopped before its lease could lapse: it keeps its slot (if any) until `until`, and until its task ended. */
  fence(claim: Claim): boolean {
    if (claim.state._tag === "Queued") {
      this.waiting--
      claim.state = { _tag: "Fenced", until: claim.until, ended: true }
      this.unlive(claim)
      this.gone.add(claim)
      return true
    }
    if (claim.state._tag !== "Running") return false
    claim.state = { _tag: "Fenced", until: claim.until, ended: false }
    this.unlive(claim)
    this.gone.add(claim)
    return true
  }

  /**
   * The claim's task has ended (or it never had one) and nothing more is sent for it: it is done, unless it is
   * fenced and its lease may still hold at `now`, then it stays until `freeLapsed` sees `until` pass.
   */
  finish(claim: Claim, now: number): void {
    const state = claim.state
    if (state._tag === "Done") return
    if (state._tag === "Fenced" && state.until > now) {
      if (!state.ended) claim.state = { _tag: "Fenced", until: state.until, ended: true }
      return
    }
    this.end(claim)
  }

  /** Frees the fenced claims whose lease surely lapsed by `now`; returns when the next will (`Infinity`: none). */
  freeLapsed(now: number): number {
    let next = Infinity
    for (const claim of this.gone) {
      const state = claim.state
      if (state._tag !== "Fenced") continue
      // One whose task has not ended yet is freed when it ends (`finish`).
      if (state.until > now) next = Math.min(next, state.until)
      else if (state.ended) this.end(claim)
    }
    return next
  }

  private unlive(claim: Claim): void {
    if (this.live.get(claim.job.id) === claim) this.live.delete(claim.job.id)
  }

  private freeSlot(claim: Claim): void {
    if (!claim.slot) return
    claim.slot = false
    this.inFlight--
  }

  private end(claim: Claim): void {
    claim.state = Done
    this.held--
    this.freeSlot(claim)
    this.unlive(claim)
    this.gone.delete(claim)
    this.onFreed()
  }
}
