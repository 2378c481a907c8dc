/**
 * Helpers the behaviour suites share for asserting that a fiber is parked.
 */
import { Effect, Fiber, type FiberStatus } from "effect"

/**
 * Asks `fiber` how it stands until it is idle: `Suspended` (parked) or `Done`. A fiber answers `Fiber.status` itself,
 * after the messages sent to it before the question (its start, the completion it waited for, an interruption): one
 * that was due to return has returned by the time it answers. While busy with such a message it answers `Running`,
 * and handling one may queue another, so the question is repeated until two answers in a row are the same idle
 * status (at most 20 times).
 */
export const idleStatus = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): Effect.Effect<FiberStatus.FiberStatus> => {
  const ask = (previous: string | undefined, left: number): Effect.Effect<FiberStatus.FiberStatus> =>
    Effect.flatMap(
      Fiber.status(fiber),
      (status) =>
        (status._tag !== "Running" && status._tag === previous) || left === 0
          ? Effect.succeed(status)
          : ask(status._tag, left - 1)
    )
  return ask(undefined, 20)
}
