/**
 * What a store keeps of a payload: JSON, as PostgreSQL's `jsonb` takes it. A module of its own, importing nothing,
 * so that both the store port and the job types check payloads the same way.
 */

/**
 * What PostgreSQL's `jsonb` refuses in a string that JSON allows: the NUL character, and a lone UTF-16 surrogate
 * (in a `u` pattern a well-formed pair is one code point, so `\p{Cs}` finds only lone halves).
 */
const unstorable = /[\u0000\p{Cs}]/u
const unstorableText = "a string with a NUL character or a lone surrogate, which PostgreSQL cannot store"

/**
 * Where `value` is not JSON, as a path and what was found there (`$.amount: a bigint`), or `undefined` when it is:
 * `null`, booleans, finite numbers, strings (without NUL nor lone surrogates), arrays of JSON, and plain objects
 * of JSON (a property that is `undefined` is left out, as `JSON.stringify` does). Anything else would come back
 * from a database as something else, or not at all, so no store takes it, the memory store included.
 */
export const notJson = (value: unknown, path = "$", seen: Set<object> = new Set()): string | undefined => {
  switch (typeof value) {
    case "string":
      return unstorable.test(value) ? `${path}: ${unstorableText}` : undefined
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) ? undefined : `${path}: ${value} (not a finite number)`
    case "object": {
      if (value === null) return undefined
      if (seen.has(value)) return `${path}: a circular reference`
      const prototype = Object.getPrototypeOf(value)
      if (Array.isArray(value)) {
        seen.add(value)
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i]
          const problem = item === undefined ? `${path}[${i}]: undefined` : notJson(item, `${path}[${i}]`, seen)
          if (problem !== undefined) return problem
        }
        seen.delete(value)
        return undefined
      }
      if (prototype !== Object.prototype && prototype !== null) {
        return `${path}: ${
          value instanceof Date ? "a Date" : `an instance of ${prototype?.constructor?.name ?? "a class"}`
        }`
      }
      seen.add(value)
      for (const key of Object.keys(value)) {
        const item: unknown = (value as Record<string, unknown>)[key]
        if (item === undefined) continue
        if (unstorable.test(key)) return `${path}: the key ${JSON.stringify(key)}, ${unstorableText}`
        const problem = notJson(item, `${path}.${key}`, seen)
        if (problem !== undefined) return problem
      }
      seen.delete(value)
      return undefined
    }
    case "undefined":
      return `${path}: undefined`
    default:
      return `${path}: a ${typeof value}`
  }
}
