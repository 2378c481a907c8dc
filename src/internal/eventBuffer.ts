import * as Effect from "effect/Effect"

/**
 * The events of one listener or stream: a ring buffer that keeps the newest `capacity` items, dropping the oldest,
 * and a latch its one reader waits on. `push` is synchronous and never waits, so the context publishes from inside
 * a transition or a task's exit observer without a fiber per event, and a slow reader costs the publisher nothing
 * but the copy into its buffer. The buffer starts small and grows up to `capacity` only while its reader lags.
 */
export class EventBuffer<A> {
  private items: Array<A | undefined>
  private head = 0
  private size = 0
  private readonly ready = Effect.unsafeMakeLatch(false)

  constructor(readonly capacity: number) {
    this.items = new Array(Math.min(capacity, 16))
  }

  push(item: A): void {
    let length = this.items.length
    if (this.size === length) {
      if (length < this.capacity) {
        this.grow()
        length = this.items.length
      } else {
        this.items[this.head] = undefined
        this.head = (this.head + 1) % length
        this.size--
      }
    }
    this.items[(this.head + this.size) % length] = item
    this.size++
    this.ready.unsafeOpen()
  }

  /** Waits until at least one item is buffered, then takes them all, oldest first. */
  readonly takeAll: Effect.Effect<Array<A>> = Effect.zipRight(this.ready.await, Effect.sync(() => this.unsafeTakeAll()))

  private unsafeTakeAll(): Array<A> {
    const length = this.items.length
    const out = new Array<A>(this.size)
    for (let i = 0; i < this.size; i++) {
      const at = (this.head + i) % length
      out[i] = this.items[at]!
      this.items[at] = undefined
    }
    this.head = 0
    this.size = 0
    this.ready.unsafeClose()
    return out
  }

  private grow(): void {
    const length = this.items.length
    const next = new Array<A | undefined>(Math.min(this.capacity, length * 2))
    for (let i = 0; i < this.size; i++) next[i] = this.items[(this.head + i) % length]
    this.items = next
    this.head = 0
  }
}
