/**
 * Vitest's global setup: the PostgreSQL server the store tests use. With `DATABASE_URL` set, the tests run against
 * that server (each test in a schema of its own, dropped at its end); without it, a throwaway server is started
 * for the run (see `pgServer.ts`) and removed when the run ends. It says which at the start of the run.
 */
import type { TestProject } from "vitest/node"
import { findBinaries, startPgServer } from "./pgServer.js"

declare module "vitest" {
  export interface ProvidedContext {
    /** The server every PostgreSQL test connects to. */
    readonly databaseUrl: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL
  if (external !== undefined && external !== "") {
    process.stdout.write(`PostgreSQL for the tests: the server at DATABASE_URL\n`)
    project.provide("databaseUrl", external)
    return async () => {}
  }
  process.stdout.write(`PostgreSQL for the tests: a throwaway server, from ${findBinaries().source}\n`)
  const server = await startPgServer()
  project.provide("databaseUrl", server.url)
  return server.stop
}
