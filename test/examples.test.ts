/**
 * Every `@example` in the JSDoc of `src/*.ts` and every ```ts block in `docs/*.md` and `README.md` must typecheck
 * against the real API. The blocks become virtual files of one TypeScript program, compiled with the repo's
 * options, and "effect-worker-context" (and its subpaths) resolve to `src/`, so a doc that drifts from the code
 * fails here rather than in a reader's editor.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = fileURLToPath(new URL("..", import.meta.url))
const virtualDir = path.join(root, ".doc-examples")

interface Block {
  /** Where the block comes from, relative to the repo root. */
  readonly source: string
  /** 1-based position of the block among the blocks of its source. */
  readonly index: number
  /** 1-based line, in the source, of the block's first line of code. */
  readonly line: number
  readonly code: string
  readonly fileName: string
}

const makeBlock = (source: string, index: number, line: number, code: string): Block => ({
  source,
  index,
  line,
  code,
  fileName: path.join(virtualDir, `${source.replace(/[^A-Za-z0-9]/g, "_")}_${index}.ts`)
})

/** The ```ts / ```typescript blocks of a text, fences possibly indented (inside a list item or a JSDoc comment). */
const fencedBlocks = (
  lines: ReadonlyArray<string>
): Array<{ readonly line: number; readonly code: string }> => {
  const blocks: Array<{ readonly line: number; readonly code: string }> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,})(ts|typescript)\s*$/.exec(lines[i]!)
    if (open === null) continue
    const [, indent = "", fence = "```"] = open
    const body: Array<string> = []
    let j = i + 1
    while (j < lines.length && lines[j]!.trim() !== fence) {
      body.push(lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!)
      j++
    }
    blocks.push({ line: i + 2, code: body.join("\n") })
    i = j
  }
  return blocks
}

/** The code blocks that follow an `@example` tag in the JSDoc comments of a TypeScript file. */
const jsdocExamples = (source: string, text: string): Array<Block> => {
  const blocks: Array<Block> = []
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const startLine = text.slice(0, comment.index).split("\n").length
    // Strip the comment's ` * ` gutter, keeping line numbers aligned with the file.
    const lines = comment[0].split("\n").map((line) => line.replace(/^\s*\/?\*+\/?( ?)/, "").replace(/\*\/\s*$/, ""))
    const tags = lines.map((line, i) => ({ line, i })).filter(({ line }) => /^\s*@\w+/.test(line))
    for (const tag of tags) {
      if (!/^\s*@example\b/.test(tag.line)) continue
      const next = tags.find((t) => t.i > tag.i)
      const section = lines.slice(tag.i + 1, next === undefined ? lines.length : next.i)
      for (const block of fencedBlocks(section)) {
        blocks.push(makeBlock(source, blocks.length + 1, startLine + tag.i + block.line, block.code))
      }
    }
  }
  return blocks
}

const markdownBlocks = (source: string, text: string): Array<Block> =>
  fencedBlocks(text.split("\n")).map((block, i) => makeBlock(source, i + 1, block.line, block.code))

const listFiles = (dir: string, extension: string): Array<string> =>
  fs.existsSync(path.join(root, dir))
    ? fs.readdirSync(path.join(root, dir))
      .filter((name) => name.endsWith(extension))
      .sort()
      .map((name) => path.posix.join(dir, name))
    : []

const sources: Array<{ readonly source: string; readonly blocks: ReadonlyArray<Block> }> = [
  ...listFiles("src", ".ts").map((source) => ({
    source,
    blocks: jsdocExamples(source, fs.readFileSync(path.join(root, source), "utf8"))
  })),
  ...[...listFiles("docs", ".md"), ...(fs.existsSync(path.join(root, "README.md")) ? ["README.md"] : [])].map(
    (source) => ({ source, blocks: markdownBlocks(source, fs.readFileSync(path.join(root, source), "utf8")) })
  )
]

/** A block that must not typecheck: proves that the harness reports errors rather than passing everything. */
const canary = makeBlock(
  "canary",
  1,
  1,
  [
    "import { Effect } from \"effect\"",
    "import { WorkerContext } from \"effect-worker-context\"",
    "export const bad = Effect.gen(function*() {",
    "  const ctx = yield* WorkerContext",
    "  yield* ctx.track(42)",
    "})"
  ].join("\n")
)

const compilerOptions = (): ts.CompilerOptions => {
  const configPath = path.join(root, "tsconfig.json")
  const config = ts.readConfigFile(configPath, ts.sys.readFile)
  if (config.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, "\n"))
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root, undefined, configPath)
  return {
    ...parsed.options,
    noEmit: true,
    // Examples declare things to show them, not to use them.
    noUnusedLocals: false,
    noUnusedParameters: false,
    baseUrl: root,
    paths: {
      "effect-worker-context": ["src/index.ts"],
      "effect-worker-context/*": ["src/*.ts"]
    }
  }
}

/** Type-checks every block in one program (one pass over `effect`'s types) and returns the diagnostics per file. */
const typecheck = (blocks: ReadonlyArray<Block>): Map<string, ReadonlyArray<ts.Diagnostic>> => {
  const options = compilerOptions()
  // `export {}` keeps each block a module of its own, even one without imports.
  const virtual = new Map(blocks.map((block) => [path.normalize(block.fileName), `${block.code}\nexport {}\n`]))
  const host = ts.createCompilerHost(options)
  const { directoryExists, fileExists, getSourceFile, readFile } = host
  host.fileExists = (fileName) => virtual.has(path.normalize(fileName)) || fileExists.call(host, fileName)
  host.readFile = (fileName) => virtual.get(path.normalize(fileName)) ?? readFile.call(host, fileName)
  host.directoryExists = (dir) => path.normalize(dir) === virtualDir || (directoryExists?.call(host, dir) ?? true)
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const code = virtual.get(path.normalize(fileName))
    return code === undefined
      ? getSourceFile.call(host, fileName, languageVersion, onError, shouldCreate)
      : ts.createSourceFile(fileName, code, languageVersion)
  }
  const program = ts.createProgram({ rootNames: [...virtual.keys()], options, host })
  const result = new Map<string, ReadonlyArray<ts.Diagnostic>>()
  for (const fileName of virtual.keys()) {
    const file = program.getSourceFile(fileName)!
    result.set(fileName, [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)])
  }
  return result
}

const describeDiagnostic = (block: Block, diagnostic: ts.Diagnostic): string => {
  const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n  ")
  if (diagnostic.file === undefined || diagnostic.start === undefined) return `TS${diagnostic.code}: ${text}`
  const { character, line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
  const codeLine = block.code.split("\n")[line]?.trim() ?? ""
  return `line ${block.line + line}:${character + 1} (block line ${
    line + 1
  }: ${codeLine})\n  TS${diagnostic.code}: ${text}`
}

const report = (block: Block, diagnostics: ReadonlyArray<ts.Diagnostic>): string =>
  `${block.source}, block ${block.index} (line ${block.line}):\n` +
  diagnostics.map((d) => `  ${describeDiagnostic(block, d)}`).join("\n")

describe("code examples", () => {
  let diagnostics = new Map<string, ReadonlyArray<ts.Diagnostic>>()

  beforeAll(() => {
    diagnostics = typecheck([canary, ...sources.flatMap(({ blocks }) => blocks)])
  }, 120_000)

  const failuresOf = (blocks: ReadonlyArray<Block>): Array<string> =>
    blocks.flatMap((block) => {
      const found = diagnostics.get(path.normalize(block.fileName))
      if (found === undefined) return [`${block.source}, block ${block.index}: not typechecked`]
      return found.length === 0 ? [] : [report(block, found)]
    })

  it("reports a block that does not typecheck", () => {
    const failures = failuresOf([canary])
    assert.strictEqual(failures.length, 1)
    assert.include(failures[0], "canary, block 1")
    assert.include(failures[0], "TS2345")
  })

  it("finds the examples of the public modules and of the guide", () => {
    const count = (source: string) => sources.find((s) => s.source === source)?.blocks.length ?? 0
    assert.isAbove(count("src/WorkerContext.ts"), 0)
    assert.isAbove(count("src/WorkerEvent.ts"), 0)
    assert.isAbove(count("src/WorkerContextError.ts"), 0)
    assert.isAbove(count("docs/guide.md"), 0)
    assert.isAbove(count("README.md"), 0)
  })

  for (const { blocks, source } of sources) {
    if (blocks.length === 0) continue
    it(`every example in ${source} typechecks (${blocks.length} blocks)`, () => {
      const failures = failuresOf(blocks)
      assert.deepStrictEqual(failures, [], `\n${failures.join("\n\n")}\n`)
    })
  }
})
