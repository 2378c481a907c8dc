/**
 * The core's internal pieces: the per-subscriber event buffer, and the two places where the core reads a private
 * field of effect 3.22 for speed, each with the public path it falls back to (and which path runs).
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, FiberRef, PubSub, Queue } from "effect"
import { EventBuffer } from "../src/internal/eventBuffer.js"
import { CallerCache, hubPublisher } from "../src/internal/workerContext.js"

describe("EventBuffer", () => {
  it.effect("hands over every item pushed, oldest first, growing past its first allocation", () =>
    Effect.gen(function*() {
      const buffer = new EventBuffer<number>(100)
      for (let i = 1; i <= 40; i++) buffer.push(i)
      assert.deepStrictEqual(yield* buffer.takeAll, Array.from({ length: 40 }, (_, i) => i + 1))
    }))

  it.effect("keeps only the newest capacity items when its reader lags", () =>
    Effect.gen(function*() {
      const buffer = new EventBuffer<number>(5)
      for (let i = 1; i <= 12; i++) buffer.push(i)
      assert.deepStrictEqual(yield* buffer.takeAll, [8, 9, 10, 11, 12])
      buffer.push(13)
      assert.deepStrictEqual(yield* buffer.takeAll, [13])
    }))

  it.effect("takeAll waits until something is pushed", () =>
    Effect.gen(function*() {
      const buffer = new EventBuffer<string>(4)
      const reader = yield* Effect.fork(buffer.takeAll)
      const other = yield* Effect.fork(Effect.void)
      yield* Fiber.join(other)
      assert.isNull(reader.unsafePoll(), "nothing to take yet")
      buffer.push("a")
      assert.deepStrictEqual(yield* Fiber.join(reader), ["a"])
    }))
})

describe("hubPublisher", () => {
  const overflow = (publish: (n: number) => void) => {
    for (let i = 1; i <= 10; i++) publish(i)
  }

  it.scoped("with effect's private slide, a full hub drops its oldest without running an effect", () =>
    Effect.gen(function*() {
      const hub = yield* PubSub.sliding<number>(4)
      const queue = yield* PubSub.subscribe(hub)
      let forks = 0
      const publisher = hubPublisher(hub, () => forks++)
      assert.isTrue(publisher.slidesPrivately, "effect 3.22 has the private slide")
      overflow(publisher.publish)
      assert.strictEqual(forks, 0)
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Queue.takeAll(queue)), [7, 8, 9, 10])
    }))

  it.scoped("without it, a full hub publishes through the public publish, with the same result", () =>
    Effect.gen(function*() {
      const hub = yield* PubSub.sliding<number>(4)
      const queue = yield* PubSub.subscribe(hub)
      // Another effect version's hub: the same public methods, no private `pubsub` field.
      const publicOnly = {
        unsafeOffer: (n: number) => hub.unsafeOffer(n),
        publish: (n: number) => hub.publish(n)
      } as unknown as PubSub.PubSub<number>
      let forks = 0
      const publisher = hubPublisher(publicOnly, (effect) => {
        forks++
        Effect.runSync(effect)
      })
      assert.isFalse(publisher.slidesPrivately)
      overflow(publisher.publish)
      assert.strictEqual(forks, 6, "one fiber per event that found the hub full")
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Queue.takeAll(queue)), [7, 8, 9, 10])
    }))
})

describe("CallerCache", () => {
  const ref = FiberRef.unsafeMake(0)

  it.effect("reuses the last copy while the caller's fiber refs are unchanged, and copies again once they change", () =>
    Effect.gen(function*() {
      const cache = new CallerCache([])
      const [first, second] = yield* Effect.withFiberRuntime<readonly [unknown, unknown]>((fiber) =>
        Effect.succeed([cache.of(fiber).fiberRefs, cache.of(fiber).fiberRefs])
      )
      assert.strictEqual(first, second, "the same copy")
      assert.strictEqual(cache.reused, 1, "the private path ran")
      const changed = yield* Effect.locally(
        Effect.withFiberRuntime<unknown>((fiber) => Effect.succeed(cache.of(fiber).fiberRefs)),
        ref,
        1
      )
      assert.notStrictEqual(changed, first, "a change makes a new copy")
      assert.strictEqual(cache.reused, 1)
    }))

  it.effect("without the private field, copies on every call", () =>
    Effect.gen(function*() {
      const cache = new CallerCache([])
      let copies = 0
      const copies1 = yield* Effect.withFiberRuntime<number>((fiber) => {
        // Another effect version's fiber: the public `getFiberRefs`, no `_fiberRefs`.
        const publicOnly = {
          currentContext: fiber.currentContext,
          getFiberRef: (ref: FiberRef.FiberRef<unknown>) => fiber.getFiberRef(ref),
          getFiberRefs: () => {
            copies++
            return fiber.getFiberRefs()
          }
        } as unknown as typeof fiber
        cache.of(publicOnly)
        cache.of(publicOnly)
        return Effect.succeed(copies)
      })
      assert.strictEqual(copies1, 2)
      assert.strictEqual(cache.reused, 0, "the public path ran")
    }))
})
