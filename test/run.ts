// Runs every test file in its own Node process (real-network tests start child
// processes and ports; isolation keeps one file's leftovers out of the next), then
// prints one line per file and a final `N passed, N failed` that sums them all.
//
//   node test/run.ts [substring…]     only files whose path contains a substring
//   TEST_CONCURRENCY=2                files run at once (default 2: this box has 2 cores)
//   TEST_FILE_TIMEOUT_S=300           a file still running after this is killed and failed

import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const filters = process.argv.slice(2)
const concurrency = Number(process.env.TEST_CONCURRENCY ?? 2)
const fileTimeoutMs = Number(process.env.TEST_FILE_TIMEOUT_S ?? 300) * 1000

type Outcome = { file: string; passed: number; failed: number; skipped: number; ms: number; output: string; note: string }

function findTests (dir: string): string[] {
  const found: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) found.push(...findTests(path))
    else if (name.endsWith('.test.ts')) found.push(path)
  }
  return found
}

function stripAnsi (text: string): string {
  return text.replace(/\u001b\[[0-9;]*m/g, '')
}

// uvu prints "Total: N / Passed: N / Skipped: N" once per process.
function parseSummary (output: string): { total: number; passed: number; skipped: number } | null {
  const clean = stripAnsi(output)
  const total = /Total:\s+(\d+)/.exec(clean)
  const passed = /Passed:\s+(\d+)/.exec(clean)
  const skipped = /Skipped:\s+(\d+)/.exec(clean)
  if (total === null || passed === null) return null
  return { total: Number(total[1]), passed: Number(passed[1]), skipped: skipped === null ? 0 : Number(skipped[1]) }
}

function runFile (file: string): Promise<Outcome> {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: root, env: { ...process.env, FORCE_COLOR: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk) => { output += chunk })
    child.stderr.on('data', (chunk) => { output += chunk })
    let timedOut = false
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, fileTimeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      const ms = Date.now() - started
      const summary = parseSummary(output)
      const rel = relative(root, file)
      if (summary === null) {
        const note = timedOut ? `killed after ${fileTimeoutMs / 1000} s` : `exited ${code} without a summary`
        resolve({ file: rel, passed: 0, failed: 1, skipped: 0, ms, output, note })
        return
      }
      let failed = summary.total - summary.passed - summary.skipped
      let note = ''
      if (failed === 0 && code !== 0) { failed = 1; note = `exited ${code} after its tests passed` }
      if (timedOut) { failed = Math.max(failed, 1); note = `killed after ${fileTimeoutMs / 1000} s` }
      resolve({ file: rel, passed: summary.passed, failed, skipped: summary.skipped, ms, output, note })
    })
  })
}

// `tsc --noEmit` proves the types (Node only strips them); it counts as one test.
function typecheck (): Promise<Outcome> {
  const started = Date.now()
  return new Promise((resolve) => {
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const child = spawn(process.execPath, [tsc, '--noEmit', '-p', root], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk) => { output += chunk })
    child.stderr.on('data', (chunk) => { output += chunk })
    child.on('close', (code) => {
      const ok = code === 0
      resolve({ file: 'tsc --noEmit', passed: ok ? 1 : 0, failed: ok ? 0 : 1, skipped: 0, ms: Date.now() - started, output, note: '' })
    })
  })
}

async function main (): Promise<void> {
  const files = findTests(join(root, 'test')).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  const queue = [...files]
  const outcomes: Outcome[] = []
  if (filters.length === 0) {
    const checked = await typecheck()
    outcomes.push(checked)
    console.log(`${checked.failed > 0 ? 'FAIL' : 'ok  '} ${checked.file} (${(checked.ms / 1000).toFixed(1)} s)`)
    if (checked.failed > 0) console.log(checked.output.split('\n').map((l) => '    | ' + l).join('\n'))
  }
  async function worker (): Promise<void> {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const outcome = await runFile(file)
      outcomes.push(outcome)
      const mark = outcome.failed > 0 ? 'FAIL' : 'ok  '
      const skipped = outcome.skipped > 0 ? `, ${outcome.skipped} skipped` : ''
      console.log(`${mark} ${outcome.file}: ${outcome.passed} passed, ${outcome.failed} failed${skipped} (${(outcome.ms / 1000).toFixed(1)} s)${outcome.note ? ' — ' + outcome.note : ''}`)
      if (outcome.failed > 0) console.log(outcome.output.split('\n').map((l) => '    | ' + l).join('\n'))
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker))
  const passed = outcomes.reduce((n, o) => n + o.passed, 0)
  const failed = outcomes.reduce((n, o) => n + o.failed, 0)
  if (files.length === 0) console.log('no test files matched')
  console.log(`${passed} passed, ${failed} failed`)
  process.exitCode = failed > 0 || files.length === 0 ? 1 : 0
}

await main()
