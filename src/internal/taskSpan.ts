import * as Context from "effect/Context"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"

const hex = "0123456789abcdef"
const randomHex = (length: number): string => {
  let out = ""
  for (let i = 0; i < length; i++) out += hex[Math.floor(Math.random() * 16)]
  return out
}

const emptyContext = Context.empty()

/**
 * The span of a tracked task under Effect's built-in tracer. It behaves as the built-in tracer's spans do, but
 * builds its ids and attribute map only when someone reads them: most task spans are never read, and a span is
 * made for every task, so this keeps tracing off the hot path of `track`.
 */
export class TaskSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly name = "WorkerContext.task"
  readonly context = emptyContext
  readonly sampled = true
  readonly kind = "internal"
  status: Tracer.SpanStatus
  private ids: { traceId: string; spanId: string } | undefined = undefined
  private attributeMap: Map<string, unknown> | undefined = undefined
  private linkList: Array<Tracer.SpanLink> | undefined = undefined
  private eventList: Array<[name: string, startTime: bigint, attributes: Record<string, unknown>]> | undefined =
    undefined

  constructor(
    readonly parent: Option.Option<Tracer.AnySpan>,
    startTime: bigint,
    private readonly worker: string,
    private readonly taskId: number
  ) {
    this.status = { _tag: "Started", startTime }
  }

  private get idPair() {
    return this.ids ??= {
      traceId: Option.isSome(this.parent) ? this.parent.value.traceId : randomHex(32),
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
    return this.attributeMap ??= new Map<string, unknown>([["worker", this.worker], ["task.id", this.taskId]])
  }
  get links(): Array<Tracer.SpanLink> {
    return this.linkList ??= []
  }
  get events(): Array<[name: string, startTime: bigint, attributes: Record<string, unknown>]> {
    return this.eventList ??= []
  }

  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    this.status = { _tag: "Ended", endTime, exit, startTime: this.status.startTime }
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
