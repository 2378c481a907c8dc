/**
 * Helpers shared by the benchmarks: forced GC and heap sampling, medians, timing, and the log level the suite runs
 * at.
 */
import { Effect, Logger, LogLevel } from "effect"
import { setImmediate as nextMacrotask } from "node:timers/promises"

/** Whether `global.gc` is available (node was started with `--expose-gc`). */
export const gcAvailable = (): boolean => typeof globalThis.gc === "function"

/**
 * Lets pending timers, microtasks and fibers settle, then forces a full GC (twice: the first pass may only make
 * more garbage collectable) and returns `heapUsed` in bytes. Without `--expose-gc` it only settles.
 */
export const heapAfterGc = async (): Promise<number> => {
  await nextMacrotask()
  await nextMacrotask()
  if (gcAvailable()) {
    globalThis.gc!()
    await nextMacrotask()
    globalThis.gc!()
  }
  return process.memoryUsage().heapUsed
}

/** {@link heapAfterGc} as an Effect. */
export const sampleHeap: Effect.Effect<number> = Effect.promise(heapAfterGc)

/** The median of `values` (the mean of the middle two for an even count); `NaN` when empty. */
export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Milliseconds since an arbitrary origin, sub-millisecond precision. */
export const now = (): number => performance.now()

/** `values` rotated left by `by`: each round of an interleaved benchmark starts with a different variant. */
export const rotate = <A>(values: ReadonlyArray<A>, by: number): Array<A> => {
  const k = values.length === 0 ? 0 : by % values.length
  return [...values.slice(k), ...values.slice(0, k)]
}

/**
 * Every benchmark runs with lifecycle logs at `Warning` and above. The context logs at `Info` only on transitions (never
 * per task); printing them would interleave a few hundred lines with the table.
 */
export const quietLogs = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Logger.withMinimumLogLevel(self, LogLevel.Warning)

/** A counter that completes a promise when it reaches a target; reset for each measured batch. */
export class Countdown {
  private armed = 0
  private remaining = 0
  private resolve: (() => void) | undefined = undefined
  /** How many times `tick` was called since the counter was made. */
  total = 0

  /** How many times `tick` was called since the last `arm`. */
  get ticked(): number {
    return this.armed - this.remaining
  }

  /** Arms the counter for `n` ticks; the promise resolves on the `n`th. */
  arm(n: number): Promise<void> {
    this.armed = n
    this.remaining = n
    return new Promise<void>((resolve) => {
      if (n === 0) resolve()
      else this.resolve = resolve
    })
  }

  readonly tick = (): void => {
    this.total++
    if (--this.remaining === 0) {
      const resolve = this.resolve
      this.resolve = undefined
      resolve?.()
    }
  }
}

/** Formats a number with `digits` decimals, or `n/a`. */
export const fmt = (value: number, digits = 2): string => Number.isFinite(value) ? value.toFixed(digits) : "n/a"

/** Formats bytes as MB with two decimals. */
export const mb = (bytes: number): string => fmt(bytes / 1024 / 1024, 2)
