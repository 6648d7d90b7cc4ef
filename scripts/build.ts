// `npm pack` runs this (the prepack script): compiles the CLI and the client
// library to JavaScript in dist/, for the installed package. Node refuses to strip
// types from files under node_modules (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING),
// so an installed edge-agent cannot run its .ts sources; in this repository the
// sources keep running as they are (node bin/edge-agent.ts, npm start, npm test).
//
//   node scripts/build.ts            build dist/ (5-10 s on a 2-core box)
//   node scripts/build.ts --clean    remove dist/ (the postpack script)
//
// The emit does not type-check (noCheck in tsconfig.build.json): `npm test` and
// `npm run typecheck` do, over the whole repository; checking again here doubled
// the time of a pack and produced the same files.
//
// tsc rewrites relative import specifiers (.ts → .js, rewriteRelativeImportExtensions)
// but not string literals, so this script also rewrites `new URL('./x.ts',
// import.meta.url)` (the service worker's file, the CLI that sim --real spawns) and
// the specifiers in the .d.ts files, and fails the build if a relative .ts path is
// left anywhere in dist/ or points at a file that was not compiled.

import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = join(root, 'dist')

// `new URL('./x.ts', import.meta.url)`, quotes of either kind.
const URL_TS = /new URL\((['"])(\.{1,2}\/[^'"\n]+)\.ts\1, import\.meta\.url\)/g
// Relative specifiers in declaration files: from './x.ts', import('./x.ts').
const DTS_TS = /((?:from|import\()\s*)(['"])(\.{1,2}\/[^'"\n]+)\.ts\2/g
// Anything relative ending in .ts left in a string literal after the rewrites.
const LEFTOVER_TS = /(['"`])\.{1,2}\/[^'"`\n]*\.ts\1/

function walk (dir: string): string[] {
  const found: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) found.push(...walk(path))
    else found.push(path)
  }
  return found
}

// Rewrites one emitted file; returns the problems found in it.
export function rewriteEmitted (path: string, text: string, exists: (path: string) => boolean): { text: string; problems: string[] } {
  const problems: string[] = []
  let out = text
  if (path.endsWith('.d.ts')) {
    out = out.replace(DTS_TS, (_all, lead: string, quote: string, base: string) => `${lead}${quote}${base}.js${quote}`)
  } else {
    out = out.replace(URL_TS, (_all, quote: string, base: string) => {
      const target = resolve(dirname(path), `${base}.js`)
      if (!exists(target)) problems.push(`${path}: new URL('${base}.ts') has no compiled ${target} (add its source to tsconfig.build.json "files")`)
      return `new URL(${quote}${base}.js${quote}, import.meta.url)`
    })
  }
  out.split('\n').forEach((line, i) => {
    if (/^\s*(\/\/|\*|\/\*)/.test(line)) return
    if (LEFTOVER_TS.test(line)) problems.push(`${path}:${i + 1}: a relative .ts path is left: ${line.trim().slice(0, 120)}`)
  })
  return { text: out, problems }
}

function build (): number {
  rmSync(dist, { recursive: true, force: true })
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' })
  if (compiled.status !== 0) {
    process.stderr.write(`build: tsc -p tsconfig.build.json failed (exit ${compiled.status ?? compiled.signal})\n`)
    return 1
  }
  const problems: string[] = []
  let files = 0
  for (const path of walk(dist)) {
    if (!path.endsWith('.js') && !path.endsWith('.d.ts')) continue
    files++
    const text = readFileSync(path, 'utf8')
    const result = rewriteEmitted(path, text, existsSync)
    problems.push(...result.problems.map((p) => p.replace(root, '')))
    if (result.text !== text) writeFileSync(path, result.text)
  }
  // dist/ is a package scope of its own: ES modules, and the version that
  // `edge-agent --version` reads (new URL('../package.json') from dist/bin/).
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string }
  writeFileSync(join(dist, 'package.json'), JSON.stringify({ name: `${pkg.name}-dist`, version: pkg.version, private: true, type: 'module' }, null, 2) + '\n')
  if (problems.length > 0) {
    process.stderr.write(`build: ${problems.length} problem(s) in dist/:\n  ${problems.join('\n  ')}\n`)
    return 1
  }
  process.stderr.write(`build: compiled ${files} files into ${relative(process.cwd(), dist) || '.'}/\n`)
  return 0
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--clean') {
    rmSync(dist, { recursive: true, force: true })
  } else {
    process.exitCode = build()
  }
}
