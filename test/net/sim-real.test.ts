// `edge-agent sim --real`: scenarios on real agent processes on 127.0.0.1,
// through the CLI, with the same checkers and the same result shape as virtual
// mode: the demo (SIGKILL, restart, SIGSTOP, SIGCONT), the built-in partition
// scenario and a file with loss, delay and a slow node (the agents'
// fault-injection gates).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

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

test('the demo scenario on 5 real agents: faults by signal, every checker passes', async () => {
  const { code, stdout, stderr } = await run(['--real', '--scenario', 'demo', '--nodes', '5', '--duration', '24', '--seed', '4', '--json'], 180_000)
  assert.is(code, 0, stderr.slice(-2_000))
  assert.match(stderr.split('\n')[0], /^edge-agent sim --scenario demo --nodes 5 --duration 24 --seed 4 --real --json/)
  const result = JSON.parse(stdout)
  assert.is(result.mode, 'real')
  assert.equal(result.faults.map((f: { fault: string }) => f.fault).slice(0, 4), ['crash', 'restart', 'pause', 'resume'])
  assert.ok(result.deltas.acknowledged > 50, `${result.deltas.acknowledged} acknowledged`)
  assert.ok(result.takeovers.length >= 1, 'terminals saw a takeover')
  for (const d of result.detections) assert.ok(d.lastDeadMs !== null && d.lastDeadMs < 5_000, JSON.stringify(d))
  assert.equal(result.checkers.filter((c: { ok: boolean }) => !c.ok), [])
})

type Detection = { node: string; fault: string; lastDeadMs: number | null; firstSuspicionMs: number | null }

test('the partition scenario on 5 real agents: cut-off nodes are declared dead by the other side, healing converges, every checker passes', async () => {
  const { code, stdout, stderr } = await run(['--real', '--scenario', 'partition', '--nodes', '5', '--duration', '30', '--seed', '3', '--json'], 240_000)
  assert.is(code, 0, stderr.slice(-2_000))
  assert.not.match(stderr, /virtual s/, 'progress counts wall seconds in real mode')
  const result = JSON.parse(stdout)
  const kinds = result.faults.map((f: { fault: string }) => f.fault)
  assert.ok(kinds.includes('partition') && kinds.includes('heal'), kinds.join(', '))
  const cut = result.detections.filter((d: Detection) => d.fault === 'partition')
  assert.ok(cut.length >= 1, JSON.stringify(result.detections))
  // Every cut-off node is noticed by the other side; on a loaded machine a short
  // partition may heal before every verdict, but one node at least is declared
  // dead by every survivor.
  for (const d of cut) assert.ok(d.firstSuspicionMs !== null, `the other side suspected ${d.node}: ${JSON.stringify(d)}`)
  assert.ok(cut.some((d: Detection) => d.lastDeadMs !== null), `every survivor declared a cut-off node dead: ${JSON.stringify(cut)}`)
  assert.ok(result.traffic.series.length >= 15, `traffic sampled during the run (${result.traffic.series.length} samples)`)
  assert.ok(result.traffic.messagesPerNodePerSec > 0)
  assert.equal(result.checkers.filter((c: { ok: boolean }) => !c.ok), [])
})

test('loss, delay and a slow node from a scenario file on 5 real agents: applied through the gates, every checker passes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-sim-real-file-'))
  const file = join(dir, 'rough.json')
  writeFileSync(file, JSON.stringify({
    nodes: 5,
    durationS: 24,
    livenessS: 60,
    workload: { terminals: 3, deltaIntervalMs: 100, valueBytes: 32 },
    faults: [
      { atS: 3, fault: 'loss', rate: 0.05 },
      { atS: 6, fault: 'delay', minMs: 5, maxMs: 30 },
      { atS: 9, fault: 'slow', target: 'agent2', ms: 150 },
      { atS: 15, fault: 'slow', target: 'agent2', ms: 0 },
      { atS: 16, fault: 'partition', target: 'agent1' },
      { atS: 20, fault: 'heal' }
    ]
  }))
  try {
    const { code, stdout, stderr } = await run(['--real', '--scenario', file, '--seed', '5', '--json'], 240_000)
    assert.is(code, 0, stderr.slice(-2_000))
    const result = JSON.parse(stdout)
    // Each detail ends with how long the agents took to hold the rules.
    assert.equal(result.faults.slice(0, 6).map((f: { fault: string; detail: string }) => `${f.fault} ${f.detail.replace(/ ?\(gates set in \d+ ms\)$/, '')}`), [
      'loss loss 5%', 'delay delay 5-30 ms', 'slow +150 ms per message', 'slow normal speed again', 'partition 1 of 5 cut off', 'heal '
    ])
    assert.equal(result.faults[4].targets, ['agent1'])
    const d = result.detections.find((x: Detection) => x.fault === 'partition')
    assert.ok(d !== undefined && d.node === 'agent1' && d.firstSuspicionMs !== null, JSON.stringify(result.detections))
    assert.ok(result.deltas.acknowledged > 20, `${result.deltas.acknowledged} acknowledged`)
    assert.equal(result.checkers.filter((c: { ok: boolean }) => !c.ok), [])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
