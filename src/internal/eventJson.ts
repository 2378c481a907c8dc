/**
 * What a `WorkerEvent` becomes in a `worker` message of `GET /events`: JSON, with a cause as one short line and a
 * custom value made JSON whatever it holds (bounded in depth and text, without cycles).
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type { WorkerEvent } from "../WorkerEvent.js"

const MAX_TEXT = 300
const MAX_DEPTH = 8

const truncate = (text: string): string => text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT - 1)}…`

/** A short, one-line description of an error or a defect: `Tag: message`, or its JSON. */
const errorText = (error: unknown): string => {
  if (typeof error === "string") return error
  if (typeof error === "object" && error !== null) {
    const tag = (error as { readonly _tag?: unknown })._tag
    const message = (error as { readonly message?: unknown }).message
    const name = typeof tag === "string" ? tag : error instanceof Error ? error.name : undefined
    if (name !== undefined) return typeof message === "string" && message !== "" ? `${name}: ${message}` : name
  }
  return JSON.stringify(toJson(error)) ?? String(error)
}

/**
 * A cause in one short line: `"interrupted"` when it is only interruptions, else its first failure (`Tag: message`)
 * or, when it failed with none, its first defect (`defect: Error: message`), and how many more there are.
 */
export const causeText = (cause: Cause.Cause<unknown>): string => {
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  const failures = Chunk.toReadonlyArray(Cause.failures(cause))
  const defects = Chunk.toReadonlyArray(Cause.defects(cause))
  const more = failures.length + defects.length - 1
  const first = failures.length > 0
    ? errorText(failures[0])
    : defects.length > 0
    ? `defect: ${errorText(defects[0])}`
    : "empty"
  return truncate(more > 0 ? `${first} (and ${more} more)` : first).replace(/[\r\n]+/g, " ")
}

const jsonValue = (value: unknown, depth: number, seen: Set<object>): unknown => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value
    case "number":
      return Number.isFinite(value) ? value : String(value)
    case "bigint":
      return value.toString()
    case "undefined":
    case "function":
    case "symbol":
      return undefined
  }
  if (value === null) return null
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString()
  if (Cause.isCause(value)) return causeText(value)
  if (Exit.isExit(value)) {
    return Exit.isSuccess(value)
      ? { _tag: "Success", value: jsonValue(value.value, depth + 1, seen) ?? null }
      : { _tag: "Failure", cause: causeText(value.cause) }
  }
  const object = value as object
  if (depth >= MAX_DEPTH || seen.has(object)) return "[…]"
  seen.add(object)
  let out: unknown
  if (Array.isArray(object)) {
    out = object.map((item) => jsonValue(item, depth + 1, seen) ?? null)
  } else if (object instanceof Map) {
    out = Array.from(object, ([k, v]) => [jsonValue(k, depth + 1, seen) ?? null, jsonValue(v, depth + 1, seen) ?? null])
  } else if (object instanceof Set) {
    out = Array.from(object, (item) => jsonValue(item, depth + 1, seen) ?? null)
  } else if (!(object instanceof Error) && typeof (object as { toJSON?: unknown }).toJSON === "function") {
    out = jsonValue((object as { toJSON: () => unknown }).toJSON(), depth + 1, seen)
  } else {
    const fields: Record<string, unknown> = {}
    if (object instanceof Error) {
      fields.name = object.name
      fields.message = object.message
    }
    for (const key of Object.keys(object)) {
      if (key === "stack") continue
      const field = jsonValue((object as Record<string, unknown>)[key], depth + 1, seen)
      if (field !== undefined) fields[key] = field
    }
    out = fields
  }
  seen.delete(object)
  return out
}

/**
 * `value` as plain JSON data: Dates as ISO 8601 strings, causes as {@link causeText}, exits as
 * `{ _tag: "Success", value }` / `{ _tag: "Failure", cause }`, errors as `{ name, message, ...fields }` without the
 * stack, bigints as strings, `toJSON` honoured, cycles and depth past 8 as `"[…]"`. A value that throws while being
 * read (a getter) becomes its `String`.
 */
const toJson = (value: unknown): unknown =>
  Either.getOrElse(Either.try(() => jsonValue(value, 0, new Set())), () => String(value))

/**
 * A `WorkerEvent` as the `data` of a `worker` message: its fields as they are (`_tag`, `worker`, ...), but
 * `TaskFinished`'s `cause` as {@link causeText} and a `Custom` event's `value` through {@link toJson}.
 */
export const eventJson = (event: WorkerEvent): unknown => {
  if (event._tag === "TaskFinished") {
    const { cause, label, outcome, taskId, worker } = event
    return {
      _tag: event._tag,
      worker,
      taskId,
      ...(label === undefined ? {} : { label }),
      outcome,
      ...(cause === undefined ? {} : { cause: causeText(cause) })
    }
  }
  // Every other event's fields are strings and finite numbers: only a `Custom` event's value needs converting.
  return event._tag === "Custom" ? { _tag: event._tag, worker: event.worker, value: toJson(event.value) } : event
}
