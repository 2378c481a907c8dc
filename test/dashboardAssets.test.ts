/**
 * The dashboard is built from `src/dashboard/` by `scripts/build-dashboard.mjs` into `src/internal/dashboardAssets.ts`,
 * which the server serves: the committed module must be what the sources make (`npm run check` runs the script's
 * `--check`), and the check must fail when it is not. The second test runs the script on a copy of the files, in a
 * temporary folder, with one source changed.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as DashboardAssets from "../src/internal/dashboardAssets.js"

const root = fileURLToPath(new URL("..", import.meta.url))

const check = (dir: string) =>
  spawnSync(process.execPath, [join(dir, "scripts", "build-dashboard.mjs"), "--check"], { encoding: "utf8" })

describe("the dashboard's generated module", () => {
  it("is what src/dashboard/ makes, and serves those files", () => {
    const result = check(root)
    assert.strictEqual(result.status, 0, result.stderr)
    assert.strictEqual(DashboardAssets.js, readFileSync(join(root, "src/dashboard/app.js"), "utf8"))
    assert.strictEqual(DashboardAssets.css, readFileSync(join(root, "src/dashboard/app.css"), "utf8"))
    assert.strictEqual(DashboardAssets.html, readFileSync(join(root, "src/dashboard/index.html"), "utf8"))
  })

  it("fails the check when a source changed and the module was not built again", () => {
    const dir = mkdtempSync(join(tmpdir(), "dashboard-check-"))
    try {
      for (const path of ["scripts", "src/dashboard", "src/internal/dashboardAssets.ts"]) {
        cpSync(join(root, path), join(dir, path), { recursive: true })
      }
      assert.strictEqual(check(dir).status, 0)
      const app = join(dir, "src/dashboard/app.js")
      writeFileSync(app, readFileSync(app, "utf8") + "\n// changed\n")
      const stale = check(dir)
      assert.strictEqual(stale.status, 1)
      assert.match(stale.stderr, /stale/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
