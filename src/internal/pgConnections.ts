/**
 * The PostgreSQL store's own connections: a small pool of raw `pg` clients whose sockets a call destroys when it is
 * interrupted or gets no answer by its deadline, so that the next call runs on a fresh connection (see
 * `pgJobStore.ts` for why the worker's calls do not use the caller's `PgClient`). It owns the idle connections, the
 * spare it keeps open, and the deadline of every call.
 */

import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import Pg from "pg"

/** The `lock_timeout` of the store's connections: 2 s, or half the call deadline when that is shorter. */
export const lockTimeoutMs = (callTimeoutMs: number): number =>
  Math.max(1, Math.min(2_000, Math.floor(callTimeoutMs / 2)))

/** A call on the store's own connections that did not answer within its deadline: its connection was destroyed. */
export class CallTimedOut extends Error {
  readonly code = "EWC_CALL_TIMEOUT"
  constructor(readonly millis: number) {
    super(`no answer within ${millis} ms; the connection was closed`)
  }
}

/** The store was closed (its scope ended) before or while the call ran. */
export class StoreClosed extends Error {
  readonly code = "EWC_CLOSED"
  constructor() {
    super("the store is closed")
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The store's own connections
// ---------------------------------------------------------------------------------------------------------------

/** The connection settings of the store's own clients, from the `PgClient`'s. */
export const clientConfig = (config: PgClient.PgClientConfig, role: string): Pg.ClientConfig => ({
  ...(config.url !== undefined ? { connectionString: Redacted.value(config.url) } : {}),
  ...(config.host !== undefined ? { host: config.host } : config.path !== undefined ? { host: config.path } : {}),
  ...(config.port !== undefined ? { port: config.port } : {}),
  ...(config.database !== undefined ? { database: config.database } : {}),
  ...(config.username !== undefined ? { user: config.username } : {}),
  ...(config.password !== undefined ? { password: Redacted.value(config.password) } : {}),
  ...(config.ssl !== undefined ? { ssl: config.ssl } : {}),
  ...(config.stream !== undefined ? { stream: config.stream } : {}),
  connectionTimeoutMillis: config.connectTimeout !== undefined ? Duration.toMillis(config.connectTimeout) : 10_000,
  application_name: `${config.applicationName ?? "effect-worker-context"} (${role})`,
  keepAlive: true,
  keepAliveInitialDelayMillis: 10_000
})

/**
 * The only types the store's statements return, parsed the same way whatever `pg.types` the application changed:
 * booleans, 4-byte integers and floats as numbers, JSON parsed, everything else as text.
 */
export const types: Pg.CustomTypesConfig = {
  getTypeParser: ((oid: number) => {
    switch (oid) {
      case 16:
        return (value: string) => value === "t"
      case 21:
      case 23:
      case 700:
      case 701:
        return Number
      case 114:
      case 3802:
        return (value: string) => JSON.parse(value)
      default:
        return (value: string) => value
    }
  }) as Pg.CustomTypesConfig["getTypeParser"]
}

interface Connection {
  readonly client: Pg.Client
  /** Lost, ended or destroyed: never used again. */
  broken: boolean
  /** When it was last given back, in epoch milliseconds. */
  idleSince: number
}

/**
 * The store's own connections: at most `max` raw `pg` clients, the most recently used first. Each call takes one
 * (or opens one), runs one statement and gives it back; a call that is interrupted (its deadline, the caller's, a
 * closing scope) or fails in a way that leaves the connection in doubt destroys that connection's socket at once,
 * so that no later call waits on a stalled backend. Every call ends within `callTimeout`, waiting for a connection
 * and connecting included. Closing the scope destroys every connection: it never waits for a hung query.
 */
export const makeConnections = (options: {
  readonly config: Pg.ClientConfig
  readonly max: number
  readonly callTimeout: Duration.Duration
  readonly idleTimeout: Duration.Duration
}): Effect.Effect<
  <A>(
    name: string | undefined,
    text: string,
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<A>, unknown>,
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const callTimeoutMs = Duration.toMillis(options.callTimeout)
    const config: Pg.ClientConfig = {
      ...options.config,
      types,
      // The server gives up too: a statement past the deadline, or waiting for another session's lock past
      // lockTimeoutMs, fails there and leaves the connection usable.
      statement_timeout: callTimeoutMs,
      lock_timeout: lockTimeoutMs(callTimeoutMs)
    }
    /** Sessions whose client went away stop at once (PostgreSQL 14 and later) instead of running to their end. */
    const setup = `SELECT set_config(name, '1000', false) FROM pg_settings
      WHERE name = 'client_connection_check_interval'`
    const idle: Array<Connection> = []
    const live = new Set<Connection>()
    let closed = false
    const permits = yield* Effect.makeSemaphore(options.max)
    const scope = yield* Effect.scope

    const destroy = (connection: Connection) => {
      connection.broken = true
      live.delete(connection)
      connection.client.connection.stream.destroy()
    }

    const open: Effect.Effect<Connection, unknown> = Effect.async<Connection, unknown>((resume) => {
      const client = new Pg.Client(config)
      const connection: Connection = { client, broken: false, idleSince: 0 }
      // Without a listener, an error on an idle client (the server ended it) would end the process.
      client.on("error", () => {
        connection.broken = true
      })
      client.on("end", () => {
        connection.broken = true
        live.delete(connection)
      })
      live.add(connection)
      client.connect()
        .then(() => client.query(setup))
        .then(
          () => resume(Effect.succeed(connection)),
          (error) => {
            destroy(connection)
            resume(Effect.fail(error))
          }
        )
      return Effect.sync(() => destroy(connection))
    })

    /**
     * Runs one statement on `connection`, sent at `sentAt`. Interrupted (a deadline passed: the backend may be
     * stalled, or the network silent), the connection is given up at once, and with it its socket. So are the idle
     * connections that have not answered since the statement was sent: what stalled one may have stalled them all (a
     * partition, a frozen server), and the most recently used first would hand them out one after another, each to
     * wait out a deadline; a connection that answered since is alive, and kept, so that a server that is only slow
     * does not cost every call a new connection. (The statement may still run, if the server is only slow: a call
     * that did not answer may have been applied.)
     */
    const query = <A>(
      connection: Connection,
      sentAt: number,
      name: string | undefined,
      text: string,
      params: ReadonlyArray<unknown>
    ) =>
      Effect.async<ReadonlyArray<A>, unknown>((resume) => {
        connection.client.query<A & Pg.QueryResultRow>(
          name === undefined ? { text, values: [...params] } : { name, text, values: [...params] }
        ).then(
          (result) => resume(Effect.succeed(result.rows)),
          (error) => resume(Effect.fail(error))
        )
        return Effect.suspend(() => {
          destroy(connection)
          for (let i = idle.length - 1; i >= 0; i--) {
            const other = idle[i]!
            if (other.idleSince <= sentAt) {
              idle.splice(i, 1)
              destroy(other)
            }
          }
          return keepSpare
        })
      })

    /** A server's error about the statement (it has a SQLSTATE) leaves the connection usable; anything else not. */
    const keeps = (exit: Exit.Exit<unknown, unknown>) => {
      if (Exit.isSuccess(exit)) return true
      const error = Cause.failureOption(exit.cause)
      if (error._tag === "None") return false
      const { code, severity } = error.value as { readonly code?: unknown; readonly severity?: unknown }
      return typeof severity === "string" && typeof code === "string" && !code.startsWith("08") &&
        !code.startsWith("57P")
    }

    const giveBack = (connection: Connection, exit: Exit.Exit<unknown, unknown>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          if (connection.broken) return
          if (closed || !keeps(exit)) return destroy(connection)
          connection.idleSince = now
          idle.push(connection)
        }))

    const take: Effect.Effect<Connection | undefined> = Effect.sync(() => {
      while (idle.length > 0) {
        const connection = idle.pop()!
        if (!connection.broken) return connection
        destroy(connection)
      }
      return undefined
    })

    /**
     * Keeps one idle connection ready, opened in the background: a call then rarely has to connect within its own
     * deadline (a renewal's may be a fraction of a second), least of all right after a stall destroyed connections.
     */
    let opening = 0
    const keepSpare: Effect.Effect<void> = Effect.suspend(() => {
      if (closed || idle.length > 0 || opening > 0 || live.size >= options.max) return Effect.void
      opening++
      return open.pipe(
        Effect.timeout(options.callTimeout),
        Effect.flatMap((connection) => giveBack(connection, Exit.void)),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => opening--)),
        // Forked from `run`'s uninterruptible part (or a query's interruption), the fiber would be uninterruptible
        // too: its deadline could not cut a connection short that hangs (its backend stopped while it was set up),
        // and closing the store, which interrupts it before destroying the connections, would wait for it for ever.
        Effect.interruptible,
        Effect.forkIn(scope),
        Effect.asVoid
      )
    })

    const run = <A>(name: string | undefined, text: string, params: ReadonlyArray<unknown>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          if (closed) return yield* Effect.fail(new StoreClosed())
          const connection = (yield* take) ?? (yield* restore(open))
          yield* keepSpare
          const sentAt = yield* Clock.currentTimeMillis
          const exit = yield* Effect.exit(restore(query<A>(connection, sentAt, name, text, params)))
          yield* giveBack(connection, exit)
          return yield* exit
        })
      ).pipe(
        permits.withPermits(1),
        Effect.timeoutFail({ duration: options.callTimeout, onTimeout: () => new CallTimedOut(callTimeoutMs) })
      )

    // Idle connections older than idleTimeout are closed, politely: they are not in use.
    const idleTimeoutMs = Duration.toMillis(options.idleTimeout)
    const sweep = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        for (let i = idle.length - 1; i >= 0; i--) {
          const connection = idle[i]!
          if (connection.broken || now - connection.idleSince >= idleTimeoutMs) {
            idle.splice(i, 1)
            connection.broken = true
            live.delete(connection)
            connection.client.end().catch(() => {})
          }
        }
      }))
    yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(Duration.millis(Math.max(1_000, idleTimeoutMs / 3)))))

    // Closing: idle connections are ended politely (within a second), the rest destroyed, so that no hung query
    // holds the close up, and no socket keeps the process alive.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closed = true
        const polite = idle.splice(0).filter((connection) => !connection.broken)
        for (const connection of live) if (!polite.includes(connection)) destroy(connection)
        // Finalizers run uninterruptibly: the wait is made interruptible, or its deadline could not cut it short.
        yield* Effect.promise(() => Promise.allSettled(polite.map((connection) => connection.client.end()))).pipe(
          Effect.interruptible,
          Effect.timeoutOption(Duration.seconds(1))
        )
        for (const connection of [...live]) destroy(connection)
      })
    )
    return run
  })
