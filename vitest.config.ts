import { defineConfig } from "vitest/config"

/**
 * `npm test`: every test that needs only Node and npm packages, but the two slow tiers: the real-Chromium tests
 * (`*.browser.test.ts`, `npm run test:browser`, vitest.browser.config.ts) and the PostgreSQL chaos tests
 * (`*.chaos.test.ts`, `npm run test:chaos`, vitest.chaos.config.ts).
 */
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/**/*.browser.test.ts", "test/**/*.chaos.test.ts", "node_modules/**"],
    globalSetup: ["test/pgGlobalSetup.ts"],
    testTimeout: 30_000
  }
})
