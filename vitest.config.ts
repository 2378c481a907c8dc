import { defineConfig } from "vitest/config"

/**
 * `npm test`: every test that needs only Node and npm packages. The real-Chromium tests (`*.browser.test.ts`) are
 * the other tier, `npm run test:browser` (vitest.browser.config.ts).
 */
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/**/*.browser.test.ts", "node_modules/**"],
    globalSetup: ["test/pgGlobalSetup.ts"],
    testTimeout: 30_000
  }
})
