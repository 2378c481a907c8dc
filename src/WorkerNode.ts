/**
 * Node process integration: signals that begin a graceful shutdown, and a `runMain` where a second signal forces
 * the exit.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type { RunMain } from "@effect/platform/Runtime"
import * as Effect from "effect/Effect"
import { constants } from "node:os"

/**
 * The signals a deploy or a terminal sends to ask a process to stop.
 *
 * @example
 * ```ts
 * import * as WorkerNode from "effect-worker-context/WorkerNode"
 *
 * console.log(WorkerNode.defaultSignals) // ["SIGINT", "SIGTERM"]
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultSignals: ReadonlyArray<NodeJS.Signals> = ["SIGINT", "SIGTERM"]

/**
 * Waits for the first of `signals` (default SIGINT and SIGTERM) and returns it: give it to a context as its
 * `shutdownSignal`, for programs that do not use `runMain`.
 *
 * Its handlers are installed when it starts and removed when it completes or is interrupted (the context
 * interrupts it once shutdown has begun for any other reason), so it never keeps a signal to itself after it is
 * done. With its handlers gone, a second signal during the drain gets Node's default action, which ends the
 * process at once, unless another part of the program listens to that signal.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkerContext } from "effect-worker-context"
 * import * as WorkerNode from "effect-worker-context/WorkerNode"
 *
 * const program = Effect.gen(function*() {
 *   const ctx = yield* WorkerContext.make({ name: "mailer", shutdownSignal: WorkerNode.shutdownSignal() })
 *   yield* ctx.start
 *   yield* ctx.awaitShutdown // returns once a signal arrived and in-flight tasks drained
 * })
 *
 * Effect.runFork(Effect.scoped(program))
 * ```
 *
 * @since 0.1.0
 * @category signals
 */
export const shutdownSignal = (
  signals: ReadonlyArray<NodeJS.Signals> = defaultSignals
): Effect.Effect<NodeJS.Signals> =>
  Effect.async<NodeJS.Signals>((resume) => {
    const remove = () => signals.forEach((signal) => process.removeListener(signal, onSignal))
    const onSignal = (signal: NodeJS.Signals) => {
      remove()
      resume(Effect.succeed(signal))
    }
    signals.forEach((signal) => process.on(signal, onSignal))
    return Effect.sync(remove)
  })

/**
 * `NodeRuntime.runMain` from `@effect/platform-node`, plus a forced exit: the first SIGINT or SIGTERM interrupts
 * the main fiber, so layers close and workers drain (the process then exits 0); a second one during the drain
 * writes a line to stderr and exits at once with code 128 + the signal's number (130 for SIGINT, 143 for
 * SIGTERM), as users expect from pressing Ctrl-C twice. Signals within half a second of the first count as the
 * first: one Ctrl-C under `npm start` can reach the process twice (from the terminal, and again from npm).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { WorkerContext } from "effect-worker-context"
 * import * as WorkerNode from "effect-worker-context/WorkerNode"
 *
 * const Main = Layer.scopedDiscard(Effect.gen(function*() {
 *   const ctx = yield* WorkerContext
 *   yield* ctx.start
 * })).pipe(Layer.provide(WorkerContext.layer({ name: "mailer" })))
 *
 * WorkerNode.runMain(Layer.launch(Main))
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const runMain: RunMain = ((...args: [unknown, unknown?]) => {
  if (!Effect.isEffect(args[0])) {
    const options = args[0] as Parameters<RunMain>[1]
    return (effect: Effect.Effect<unknown, unknown>) => runMainForced(effect, options)
  }
  return runMainForced(args[0] as Effect.Effect<unknown, unknown>, args[1] as Parameters<RunMain>[1])
}) as RunMain

/**
 * One Ctrl-C often arrives more than once: the terminal signals the whole process group, and a wrapper such as
 * `npm` (or the `tsx` CLI, when it runs the program) forwards it again. Repeats this close to the first are the
 * same request, not a second one.
 */
const repeatWindowMillis = 500

const runMainForced = (effect: Effect.Effect<unknown, unknown>, options: Parameters<RunMain>[1]): void => {
  let firstAt: number | undefined
  // `NodeRuntime.runMain` handles the first signal and then removes its own listeners; this one stays, so a later
  // signal forces the exit instead of being ignored or getting Node's default action.
  const onSignal = (signal: NodeJS.Signals) => {
    const now = performance.now()
    if (firstAt === undefined) {
      firstAt = now
    } else if (now - firstAt >= repeatWindowMillis) {
      process.stderr.write(`${signal} received again during graceful shutdown: exiting now\n`)
      process.exit(128 + constants.signals[signal])
    }
  }
  defaultSignals.forEach((signal) => process.on(signal, onSignal))
  // A program that ends without a signal gives the signals back, as `NodeRuntime.runMain` does with its own.
  const release = Effect.sync(() => {
    if (firstAt === undefined) defaultSignals.forEach((signal) => process.removeListener(signal, onSignal))
  })
  NodeRuntime.runMain(Effect.ensuring(effect, release), options)
}
