/**
 * The PostgreSQL store's enqueues (`insert`, `enqueueSlot`): they run on the caller's `PgClient`, so that an enqueue
 * inside `sql.withTransaction` joins that transaction, and they ask again, in a new statement, for the keys a
 * concurrent transaction took or freed while a statement ran.
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import { type EncodedJob, type EncodedSlot, type Enqueued, JobStoreError } from "../JobStore.js"
import type { statements } from "./pgStatements.js"

export const makeEnqueues = (deps: {
  readonly client: PgClient.PgClient
  readonly sql: ReturnType<typeof statements>
  /** The store's wake-up channel. */
  readonly channel: string
  readonly failed: (operation: string) => (error: unknown) => JobStoreError
  /** The schema version the statements are for. */
  readonly version: number
  /** How many times an enqueue asks again for a key taken or freed while its statement ran. */
  readonly keyRetries: number
}) => {
  const { channel, client, failed, keyRetries, sql, version } = deps

  /**
   * The jobs as the enqueue statements' `$2`: a JSON array of records (the fields `pgStatements` reads: short names,
   * and none at its default), written as text at once. The payloads are JSON text already, spliced in as they are,
   * and a batch's few names and queues are encoded once each.
   */
  const inputOf = (jobs: ReadonlyArray<EncodedJob>) => {
    const texts = new Map<string, string>()
    const text = (value: string) => {
      let json = texts.get(value)
      if (json === undefined) texts.set(value, json = JSON.stringify(value))
      return json
    }
    const records = new Array<string>(jobs.length)
    for (let o = 0; o < jobs.length; o++) {
      const job = jobs[o]!
      records[o] = `{"n":${text(job.name)},"q":${text(job.queue)},"m":${job.maxAttempts}${
        job.runAt === undefined ? "" : `,"r":"${job.runAt.toISOString()}"`
      }${job.delayMs === 0 ? "" : `,"d":${job.delayMs}`}${job.priority === 0 ? "" : `,"p":${job.priority}`}${
        job.key === undefined ? "" : `,"k":${JSON.stringify(job.key)}`
      },"a":${job.payload}}`
    }
    return "[" + records.join(",") + "]"
  }

  interface EnqueueRow {
    /** The first job's id; the others' are counted up from it, unless `ids` lists them. */
    readonly first_id: string | null
    readonly ids: ReadonlyArray<string> | null
    /** Absent from the statement for a batch without keys. */
    readonly keyed?: Record<string, string> | null
    /** The ids of the keyed jobs the statement inserted. */
    readonly inserted?: ReadonlyArray<string> | null
    readonly taken?: number
  }

  /** The id of the `i`th job of an enqueue statement's answer. */
  const idsOf = (row: EnqueueRow) => (i: number): string => {
    if (row.ids !== null) return row.ids[i]!
    const first = row.first_id!
    const n = Number(first)
    return Number.isSafeInteger(n + i) ? String(n + i) : String(BigInt(first) + BigInt(i))
  }

  /**
   * One enqueue statement for `jobs` (each without a key, or with a key that is skipped when held), on the caller's
   * connection: what each came to, `undefined` for a key it could not resolve.
   */
  const insertBatch = (jobs: ReadonlyArray<EncodedJob>) =>
    Effect.map(
      Effect.mapError(
        client.unsafe<EnqueueRow>(
          jobs.some((job) => job.key !== undefined) ? sql.enqueue : sql.enqueueUnkeyed,
          [channel, inputOf(jobs)]
        ).withoutTransform,
        failed("enqueue")
      ),
      ([row]): Array<Enqueued | undefined> => {
        const idOf = idsOf(row!)
        const inserted = new Set(row!.inserted)
        const seen = new Set<string>()
        return jobs.map((job, i) => {
          if (job.key === undefined) return { id: idOf(i), duplicate: false, outcome: "inserted" }
          const id = row!.keyed?.[job.key]
          if (id === undefined) return undefined
          // `inserted` lists the keyed jobs inserted.
          const fresh = inserted.has(id) && !seen.has(id)
          seen.add(id)
          return { id, duplicate: !fresh, outcome: fresh ? "inserted" : "skipped" }
        })
      }
    )

  /**
   * The slot's job, if the slot was free. When its key was taken by a transaction that committed while the
   * statement ran, the holder's id is asked for in a new statement; a holder gone by then is no job for the slot.
   */
  const enqueueSlot = (slot: EncodedSlot): Effect.Effect<string | undefined, JobStoreError> =>
    Effect.gen(function*() {
      const [row] = yield* Effect.mapError(
        client.unsafe<EnqueueRow>(slot.backfill ? sql.enqueueBackfill : sql.enqueueSlot, [
          channel,
          inputOf([slot.job]),
          slot.schedule,
          slot.slot.toISOString()
        ]).withoutTransform,
        failed("enqueueSlot")
      )
      if (row === undefined || row.taken === 0) return undefined
      const key = slot.job.key
      if (key === undefined) return row.first_id ?? undefined
      const keyed = row.keyed?.[key]
      if (keyed !== undefined) return keyed
      const [holder] = yield* Effect.mapError(
        client.unsafe<{ readonly id: string }>(sql.keyHolder, [key]).withoutTransform,
        failed("enqueueSlot")
      )
      return holder?.id
    })

  const keyTakenAndFreed = (key: string | undefined, i: number) =>
    new JobStoreError({
      operation: "enqueue",
      reason: `the key ${JSON.stringify(key)} of job ${i} was taken and freed ${keyRetries} times while ` +
        `it was being enqueued`
    })

  /**
   * A key taken by a transaction that committed while the statement ran is invisible to that statement's
   * snapshot: ask again, in a new statement (a new snapshot in READ COMMITTED), for those jobs only.
   */
  const enqueueBatch = (jobs: ReadonlyArray<EncodedJob>, offset: number) =>
    Effect.gen(function*() {
      const results = yield* insertBatch(jobs)
      for (let round = 0; round < keyRetries; round++) {
        const missing = results.flatMap((result, i) => result === undefined ? [i] : [])
        if (missing.length === 0) break
        const again = yield* insertBatch(missing.map((i) => jobs[i]!))
        missing.forEach((i, j) => (results[i] = again[j]))
      }
      const unresolved = results.findIndex((result) => result === undefined)
      if (unresolved >= 0) return yield* keyTakenAndFreed(jobs[unresolved]!.key, offset + unresolved)
      return results as ReadonlyArray<Enqueued>
    })

  /** One job with a key and the key mode `replace` or `afterRunning`: a statement of its own. */
  const enqueueKeyed = (job: EncodedJob, i: number) =>
    Effect.gen(function*() {
      const record = inputOf([job]).slice(1, -1)
      for (let round = 0; round <= keyRetries; round++) {
        const [row] = yield* Effect.mapError(
          client.unsafe<{ readonly id: string; readonly outcome: Enqueued["outcome"] }>(sql.keyed, [
            channel,
            record,
            job.keyMode
          ]).withoutTransform,
          failed("enqueue")
        )
        if (row !== undefined) return { id: row.id, duplicate: row.outcome !== "inserted", outcome: row.outcome }
      }
      return yield* keyTakenAndFreed(job.key, i)
    })

  // A schema before version 7 has no successors: its keys are kept as "skip" keeps them.
  const isKeyed = (job: EncodedJob) => job.key !== undefined && job.keyMode !== "skip" && version >= 7

  /**
   * The jobs, in order: runs of jobs without a key mode to apply in one statement each, and each job with one in a
   * statement of its own; in one transaction (the caller's, if it has one) when that takes more than one.
   */
  const insertAll = (jobs: ReadonlyArray<EncodedJob>): Effect.Effect<ReadonlyArray<Enqueued>, JobStoreError> => {
    if (!jobs.some(isKeyed)) return enqueueBatch(jobs, 0)
    const all = Effect.gen(function*() {
      const results: Array<Enqueued> = []
      let i = 0
      while (i < jobs.length) {
        if (isKeyed(jobs[i]!)) {
          results.push(yield* enqueueKeyed(jobs[i]!, i))
          i++
          continue
        }
        let end = i + 1
        while (end < jobs.length && !isKeyed(jobs[end]!)) end++
        results.push(...(yield* enqueueBatch(jobs.slice(i, end), i)))
        i = end
      }
      return results
    })
    return jobs.length === 1 ? all : Effect.mapError(client.withTransaction(all), failed("enqueue"))
  }

  return { insert: insertAll, enqueueSlot }
}
