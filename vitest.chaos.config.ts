import { defineConfig } from "vitest/config"

/**
 * `npm run test:chaos`: the PostgreSQL chaos tests (`*.chaos.test.ts`), worker processes killed, stopped and
 * restarted under load for minutes. They need what `npm test` needs (a throwaway PostgreSQL server, started by
 * `test/pgGlobalSetup.ts`); `.ci/run` runs them as a tier of their own.
 */
export default defineConfig({
  test: {
    include: ["test/**/*.chaos.test.ts"],
    globalSetup: ["test/pgGlobalSetup.ts"],
    testTimeout: 30_000
  }
})
