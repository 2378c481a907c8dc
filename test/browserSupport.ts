/**
 * What the browser tests share: `examples/demo.ts` as a child process, and Debian's Chromium driven by
 * `playwright-core` (no browser download is possible here). Not a test file: the browser tier's files import it.
 */
import { Data, Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type BrowserContext, chromium, type ConsoleMessage } from "playwright-core"

export const root = fileURLToPath(new URL("..", import.meta.url))
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

/** On a busy machine, node and tsx take several seconds to start. */
export const START_TIMEOUT = 30_000

/** Never skipped: without the browser these tests fail, saying how to get it. */
export const requireChromium = () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the browser tests need Debian's chromium package ` +
        "(apt-get install -y chromium; .ci/run installs it)"
    )
  }
}

export class DemoError extends Data.TaggedError("DemoError")<{ readonly reason: string; readonly output: string }> {
  override get message(): string {
    return `${this.reason}\n--- demo output ---\n${this.output}`
  }
}

export interface Demo {
  readonly child: ChildProcess
  readonly output: () => string
  /** Resolves with the first line matching `pattern` (waiting for it), the match's groups. */
  readonly waitFor: (pattern: RegExp, timeout?: number) => Effect.Effect<RegExpExecArray, DemoError>
  readonly exitCode: Effect.Effect<number | null, DemoError>
}

/** `examples/demo.ts` in a process group of its own, killed with SIGKILL when the scope closes, however it ends. */
export const spawnDemo = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync((): Demo => {
      const child = spawn(process.execPath, ["--import", "tsx", "examples/demo.ts"], {
        cwd: root,
        env: { ...process.env, PORT: "0", ...env },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const lines: Array<string> = []
      const watchers = new Set<() => void>()
      let partial = ""
      const onData = (chunk: Buffer) => {
        const text = partial + chunk.toString("utf8")
        const parts = text.split("\n")
        partial = parts.pop()!
        lines.push(...parts)
        for (const watcher of watchers) watcher()
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
      const output = () => lines.join("\n")
      const waitFor = (pattern: RegExp, timeout = START_TIMEOUT) =>
        Effect.async<RegExpExecArray>((resume) => {
          const check = () => {
            for (const line of lines) {
              const match = pattern.exec(line)
              if (match !== null) {
                watchers.delete(check)
                resume(Effect.succeed(match))
                return
              }
            }
          }
          watchers.add(check)
          check()
          return Effect.sync(() => watchers.delete(check))
        }).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () =>
              new DemoError({ reason: `no line matching ${pattern} within ${timeout} ms`, output: output() })
          })
        )
      const exitCode = Effect.promise(() => exited).pipe(
        Effect.timeoutFail({
          duration: START_TIMEOUT,
          onTimeout: () => new DemoError({ reason: "the demo did not exit", output: output() })
        })
      )
      return { child, output, waitFor, exitCode }
    }),
    ({ child }) =>
      Effect.sync(() => {
        try {
          process.kill(-child.pid!, "SIGKILL")
        } catch {
          // The group is gone already.
        }
      })
  )

/** Chromium with a fresh profile in a temporary folder, closed and removed with the scope. */
export const launchBrowser = (extraArgs: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.promise(() => {
      const profile = mkdtempSync(join(tmpdir(), "dashboard-chromium-"))
      return chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        locale: "en-US",
        timezoneId: "UTC",
        viewport: { width: 1280, height: 900 },
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--disable-quic",
          ...extraArgs
        ]
      }).then((context) => ({ context, profile }))
    }),
    ({ context, profile }) =>
      Effect.promise(() => context.close()).pipe(
        Effect.ensuring(Effect.sync(() => rmSync(profile, { recursive: true, force: true })))
      )
  )

/** A page of `context` whose console errors and uncaught exceptions are collected. */
export const openPage = (context: BrowserContext) =>
  Effect.promise(() => context.newPage()).pipe(Effect.map((page) => {
    const errors: Array<string> = []
    page.on("console", (message: ConsoleMessage) => {
      if (message.type() === "error") errors.push(`console: ${message.text()}`)
    })
    page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`))
    return { page, errors }
  }))

export const promise = <A>(f: () => Promise<A>) => Effect.promise(f)
