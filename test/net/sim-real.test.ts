// `edge-agent sim --real`: the demo scenario on five real agent processes on
// 127.0.0.1 (SIGKILL, restart, SIGSTOP, SIGCONT), through the CLI, with the same
// checkers and the same result shape as virtual mode.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'

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

test.run()
