// `edge-agent sim --real --netns` (root only): each agent in its own network
// namespace on a private /24 the run creates and removes; a partition splits the
// bridge between them. Without root (or where namespaces cannot be made) the CLI
// refuses --netns with the reason, and the scenario run is skipped with a line
// saying why.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync, spawn } from 'node:child_process'
import { netnsUnavailable } from '../../sim/netns.ts'

const CLI = new URL('../../bin/edge-agent.ts', import.meta.url).pathname

function run (args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'sim', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  return new Promise((resolve) => child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) }))
}

function labNamespaces (): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('eagt'))
  } catch {
    return []
  }
}

const unavailable = netnsUnavailable()

test('--netns needs --real, and is refused with its reason where namespaces cannot be made', async () => {
  const alone = await run(['--netns'], 30_000)
  assert.is(alone.code, 2)
  assert.match(alone.stderr, /--netns needs --real/)
  if (unavailable === null) return
  const refused = await run(['--real', '--netns', '--scenario', 'partition', '--nodes', '3'], 30_000)
  assert.is(refused.code, 2)
  assert.ok(refused.stderr.includes(unavailable), refused.stderr)
})

test('the partition scenario on 4 agents in network namespaces: the bridge splits, the other side declares the cut-off agents dead, everything is removed after', async () => {
  if (unavailable !== null) {
    console.log(`\nskip: ${unavailable}`)
    return
  }
  const before = labNamespaces()
  // 22 s: seed 3 cuts one agent off at 12 s for 5.4 s; a longer run would start a
  // second cut too close to its end for a 1.25 s probe period to reach a verdict.
  const { code, stdout, stderr } = await run(['--real', '--netns', '--scenario', 'partition', '--nodes', '4', '--duration', '22', '--seed', '3', '--json'], 240_000)
  assert.is(code, 0, stderr.slice(-2_000))
  assert.match(stderr.split('\n')[0], /--real --netns --json$/)
  const result = JSON.parse(stdout)
  assert.is(result.options.partitions, 'network namespaces')
  const split = result.faults.filter((f: { fault: string }) => f.fault === 'partition')
  assert.ok(split.length >= 1 && split.every((f: { detail: string }) => /bridge split in \d+ ms/.test(f.detail)), JSON.stringify(result.faults))
  const cut = result.detections.filter((d: { fault: string }) => d.fault === 'partition')
  for (const d of cut) assert.ok(d.firstSuspicionMs !== null, `the other side suspected ${d.node}: ${JSON.stringify(d)}`)
  assert.ok(cut.some((d: { lastDeadMs: number | null }) => d.lastDeadMs !== null), JSON.stringify(cut))
  assert.equal(result.checkers.filter((c: { ok: boolean }) => !c.ok), [])
  assert.equal(labNamespaces(), before, 'every namespace the run made is gone')
})

test.run()
