/**
 * Interleaved measurement with tinybench: every round runs each variant once, in an order rotated by the round, so
 * that drift on a noisy machine (thermal, other processes, heap growth) affects all variants alike. Figures are the
 * median over the rounds; ratios are the median of the per-round ratios, so each is taken between neighbours in
 * time.
 */
import { Bench } from "tinybench"
import { heapAfterGc, median, rotate } from "./common.js"

/**
 * One contender: `run` performs one measured batch of `units` operations and resolves when all of them ended.
 * `setup`, when given, runs before the forced GC that precedes each batch, and `teardown` after the batch; neither
 * is timed (a job benchmark enqueues its batch in `setup`, and waits for the last acknowledgements in `teardown`).
 */
export interface Variant {
  readonly name: string
  readonly run: () => Promise<void>
  readonly setup?: (() => Promise<void>) | undefined
  readonly teardown?: (() => Promise<void>) | undefined
}

export interface InterleavedResult {
  /** Per variant, the duration of each measured round in ms, in round order. */
  readonly samples: Readonly<Record<string, ReadonlyArray<number>>>
  /** Per variant, the process CPU time (all threads: JS, GC helpers) of each measured round in ms. */
  readonly cpuSamples: Readonly<Record<string, ReadonlyArray<number>>>
  /** Per variant, the median wall-clock duration of one operation in µs. */
  readonly usPerOp: Readonly<Record<string, number>>
  /** Per variant, the median CPU time of one operation in µs: less sensitive to other processes on the machine. */
  readonly cpuUsPerOp: Readonly<Record<string, number>>
  readonly rounds: number
  readonly units: number
}

/**
 * Runs `warmupRounds` discarded rounds, then `rounds` measured ones. Each round is a tinybench `Bench` with one
 * iteration per variant (an iteration being a whole batch of `units` operations); a forced GC before every
 * iteration (outside the timed call, after the variant's `setup`) starts each batch on a clean heap.
 */
export const interleaved = async (
  variants: ReadonlyArray<Variant>,
  options: { readonly rounds: number; readonly warmupRounds: number; readonly units: number }
): Promise<InterleavedResult> => {
  const samples: Record<string, Array<number>> = {}
  const cpuSamples: Record<string, Array<number>> = {}
  const lastCpu: Record<string, number> = {}
  for (const variant of variants) {
    samples[variant.name] = []
    cpuSamples[variant.name] = []
  }
  for (let round = 0; round < options.warmupRounds + options.rounds; round++) {
    const bench = new Bench({ time: 0, iterations: 1, warmup: false, throws: true })
    for (const variant of rotate(variants, round)) {
      const run = async () => {
        const before = process.cpuUsage()
        await variant.run()
        const spent = process.cpuUsage(before)
        lastCpu[variant.name] = (spent.user + spent.system) / 1000
      }
      bench.add(variant.name, run, {
        async: true,
        beforeEach: async () => {
          await variant.setup?.()
          await heapAfterGc()
        },
        afterEach: async () => {
          await variant.teardown?.()
        }
      })
    }
    await bench.run()
    if (round < options.warmupRounds) continue
    for (const task of bench.tasks) {
      const result = task.result
      if (result.state !== "completed") throw new Error(`benchmark ${task.name} did not complete: ${result.state}`)
      samples[task.name]!.push(result.latency.mean)
      cpuSamples[task.name]!.push(lastCpu[task.name]!)
    }
  }
  const usPerOp: Record<string, number> = {}
  const cpuUsPerOp: Record<string, number> = {}
  for (const variant of variants) {
    usPerOp[variant.name] = median(samples[variant.name]!) * 1000 / options.units
    cpuUsPerOp[variant.name] = median(cpuSamples[variant.name]!) * 1000 / options.units
  }
  return { samples, cpuSamples, usPerOp, cpuUsPerOp, rounds: options.rounds, units: options.units }
}

/**
 * The median over rounds of `numerator`'s duration divided by `denominator`'s in the same round: wall-clock time,
 * or CPU time with `"cpu"`.
 */
export const pairedRatio = (
  result: InterleavedResult,
  numerator: string,
  denominator: string,
  clock: "wall" | "cpu" = "wall"
): number => {
  const source = clock === "wall" ? result.samples : result.cpuSamples
  const a = source[numerator] ?? []
  const b = source[denominator] ?? []
  return median(a.map((value, i) => value / b[i]!))
}
