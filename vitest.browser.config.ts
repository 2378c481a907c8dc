import { defineConfig } from "vitest/config"

/**
 * `npm run test:browser`: the tests that drive Debian's Chromium (`/usr/bin/chromium`, or `CHROMIUM_PATH`) with
 * playwright-core. Without the browser they fail, saying how to install it; none is skipped.
 */
export default defineConfig({
  test: {
    include: ["test/**/*.browser.test.ts"],
    testTimeout: 180_000,
    // Each file starts the demo and a browser: one at a time on a small machine.
    fileParallelism: false
  }
})
