/**
 * When the worker's calls to the store must end: the context's shutdown deadline (shutdown began + its
 * `shutdownTimeout`), then a grace of `min(storeTimeout, 5 s)` for the last settles (the jobs the deadline cut off go
 * back then). Written by the worker's deadline fiber and its state watcher; read by the completer and the
 * finalizer, so that shutdown ends within `shutdownTimeout` plus at most 5 s, whatever the store does.
 */
import * as Duration from "effect/Duration"

export const maxGraceMs = 5_000

export class Shutdown {
  /** Shutdown has begun. */
  begun = false
  /** The shutdown deadline (this worker's clock), once shutdown has begun with a finite `shutdownTimeout`. */
  deadlineAt = Infinity
  /** No store call goes on past this instant. */
  endAt = Infinity
  readonly graceMs: number

  constructor(storeTimeout: Duration.Duration) {
    this.graceMs = Math.min(Duration.toMillis(storeTimeout), maxGraceMs)
  }

  /** Shutdown began at `now`: its deadline is `now + shutdownTimeout`. */
  began(now: number, shutdownTimeout: Duration.Duration): void {
    this.begun = true
    if (!Duration.isFinite(shutdownTimeout)) return
    this.deadlineAt = Math.min(this.deadlineAt, now + Duration.toMillis(shutdownTimeout))
    this.endAt = Math.min(this.endAt, this.deadlineAt + this.graceMs)
  }

  /** The context is `Stopped` at `now`: what is left to write gets the grace, from now at the latest. */
  stopped(now: number): void {
    this.deadlineAt = Math.min(this.deadlineAt, now)
    this.endAt = Math.min(this.endAt, now + this.graceMs)
  }

  pastDeadline(now: number): boolean {
    return now >= this.deadlineAt
  }
}
