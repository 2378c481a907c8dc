import * as Context from "effect/Context"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"

/** The name of every task's span, whichever tracer makes it. */
export const taskSpanName = "WorkerContext.task"

const hex = "0123456789abcdef"
const randomHex = (length: number): string => {
  let out = ""
  for (let i = 0; i < length; i++) out += hex[Math.floor(Math.random() * 16)]
  return out
}

const nanosOf = (time: bigint | number): bigint => typeof time === "bigint" ? time : BigInt(time) * BigInt(1_000_000)

/**
 * The span of a tracked task under Effect's built-in tracer. It behaves as the built-in tracer's spans do, but
 * builds its ids and attribute map only when someone reads them: most task spans are never read, and a span is
 * made for every task, so this keeps tracing off the hot path of `track`.
 */
export class TaskSpan implements Tracer.Span {
  declare readonly _tag: "Span"
  declare readonly name: string
  declare readonly context: Context.Context<never>
  declare readonly sampled: boolean
  declare readonly kind: Tracer.SpanKind
  /** The end time in nanoseconds, or in clock milliseconds when the core ended the span. */
  private ended: { readonly endTime: bigint | number; readonly exit: Exit.Exit<unknown, unknown> } | undefined =
    undefined
  private ids: { readonly traceId: string; readonly spanId: string } | undefined = undefined
  private attributeMap: Map<string, unknown> | undefined = undefined
  private linkList: Array<Tracer.SpanLink> | undefined = undefined
  private eventList: Array<[name: string, startTime: bigint, attributes: Record<string, unknown>]> | undefined =
    undefined

  /**
   * Times are kept in clock milliseconds (the core reads the clock once per task start and end, in millis) and
   * turned into the nanoseconds of `Tracer.Span` only when read; `0` means timing is off.
   */
  constructor(
    private readonly parentSpan: Tracer.AnySpan | undefined,
    private readonly startMillis: number,
    private readonly worker: string,
    private readonly taskId: number,
    private readonly label: string | undefined
  ) {}

  private get startTime(): bigint {
    return nanosOf(this.startMillis)
  }

  get parent(): Option.Option<Tracer.AnySpan> {
    return Option.fromNullable(this.parentSpan)
  }
  get status(): Tracer.SpanStatus {
    return this.ended === undefined
      ? { _tag: "Started", startTime: this.startTime }
      : { _tag: "Ended", startTime: this.startTime, endTime: nanosOf(this.ended.endTime), exit: this.ended.exit }
  }
  private get idPair() {
    return this.ids ??= {
      traceId: this.parentSpan !== undefined ? this.parentSpan.traceId : randomHex(32),
      spanId: randomHex(16)
    }
  }
  get traceId(): string {
    return this.idPair.traceId
  }
  get spanId(): string {
    return this.idPair.spanId
  }
  get attributes(): Map<string, unknown> {
    if (this.attributeMap === undefined) {
      this.attributeMap = new Map<string, unknown>([["worker", this.worker], ["task.id", this.taskId]])
      if (this.label !== undefined) this.attributeMap.set("task.label", this.label)
    }
    return this.attributeMap
  }
  get links(): Array<Tracer.SpanLink> {
    return this.linkList ??= []
  }
  get events(): Array<[name: string, startTime: bigint, attributes: Record<string, unknown>]> {
    return this.eventList ??= []
  }

  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    this.ended ??= { endTime, exit }
  }
  /** `end`, from the clock milliseconds the core read anyway. */
  endAtMillis(endMillis: number, exit: Exit.Exit<unknown, unknown>): void {
    this.ended ??= { endTime: endMillis, exit }
  }
  attribute(key: string, value: unknown): void {
    this.attributes.set(key, value)
  }
  event(name: string, startTime: bigint, attributes?: Record<string, unknown>): void {
    this.events.push([name, startTime, attributes ?? {}])
  }
  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    this.links.push(...links)
  }
}

// Constants live on the prototype: one span per task, so every per-instance field counts.
Object.assign(TaskSpan.prototype, {
  _tag: "Span",
  name: taskSpanName,
  context: Context.empty(),
  sampled: true,
  kind: "internal"
})
