// A deployed service whose worker cannot apply an op on the standbys, on real
// agents: three `edge-agent start` processes on 127.0.0.1 run a package whose
// apply() loops (so the call times out and the worker is replaced) on agents
// whose pid has a flag file. The standbys stop at the op and keep it; the
// owner is killed; the standby that takes over answers 503 naming the reason
// instead of serving a state without the acknowledged ops, and serves every
// one of them once the flags are gone. Before agent/sessions/apply.ts, the
// standbys recorded the timeout in the state and went on, and the new owner
// served a cart without them.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import { deployerKeyFile, generateDeployerKey } from '../../agent/runtime/package.ts'
import { LocalCluster, runCli } from '../../sim/processes.ts'
import type { AgentProcess } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

const TEST_TIMEOUT_MS = 120_000

async function until (what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function metric (agent: AgentProcess, name: string): Promise<number> {
  const text = await (await fetch(`${agent.http}/metrics`)).text()
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
}

test('standbys whose worker cannot apply wait at the op; the one that takes over answers 503, then serves every acknowledged op', () => within((async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-stall-'))
  const flags = join(dir, 'flags')
  mkdirSync(flags)
  const pkg = join(dir, 'tally')
  mkdirSync(pkg)
  writeFileSync(join(pkg, 'manifest.json'), JSON.stringify({ name: 'tally', version: '1.0.0', entry: 'tally.js' }))
  // The worker runs in the agent's process: process.pid is the agent's.
  writeFileSync(join(pkg, 'tally.js'), `import { existsSync } from 'node:fs'
export const initial = () => []
export const validate = (op) => typeof op === 'number' ? true : 'a number'
export function apply (state, op) {
  if (existsSync(${JSON.stringify(flags)} + '/' + process.pid)) for (;;) {}
  state.push(op)
  return state
}
`)
  const keyFile = join(dir, 'deployer.key')
  writeFileSync(keyFile, deployerKeyFile(generateDeployerKey()), { mode: 0o600 })
  const configFile = join(dir, 'config.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  let cluster: LocalCluster | null = null
  try {
    cluster = await LocalCluster.start({ nodes: 3, configure: () => ({ extraArgs: ['--config', configFile, '--trusted-deployers', keyFile] }) })
    const agents = cluster.agents
    await cluster.waitConverged(30_000)
    const deployed = await runCli(['deploy', pkg, '--name', 'tally', '--policy', 'all', '--key', keyFile, '--to', agents[0].http])
    assert.is(deployed.code, 0, deployed.stderr)
    await until('every agent runs tally', async () => (await Promise.all(agents.map(async (a) => ((await (await fetch(`${a.http}/v1/packages`)).json()) as { running: unknown[] }).running.length))).every((n) => n === 1), 20_000)

    const client = new EdgeClient({ agents: agents.map((a) => a.http), requestTimeoutMs: 3_000, deadlineMs: 30_000 })
    const session = await client.open({ terminalId: 'kiosk-1', service: 'tally' })
    const byId = (id: string | undefined): AgentProcess => agents.find((a) => a.id === id) as AgentProcess
    const owner = byId(session.owner?.id)
    const standbys = agents.filter((a) => a !== owner)
    await session.append(0)
    for (const s of standbys) writeFileSync(join(flags, String(s.pid)), '')
    for (let i = 1; i <= 5; i++) await session.append(i)
    await until('both standbys stopped at the op', async () => (await Promise.all(standbys.map(async (s) => await metric(s, 'edge_agent_session_apply_stalls_total')))).every((n) => n === 1), 20_000)
    assert.is(await metric(owner, 'edge_agent_session_apply_stalls_total'), 0)

    owner.signal('SIGKILL')
    let refused = null as { status: number; error: string } | null
    await until('a standby took over and refuses to serve its stale state', async () => {
      for (const s of standbys) {
        const r = await fetch(`${s.http}/v1/sessions/${session.sessionId}`, { headers: { authorization: `Bearer ${session.token}` }, redirect: 'manual' })
        if (r.status === 503) {
          const error = ((await r.json()) as { error: string }).error
          if (/cannot apply/.test(error)) refused = { status: r.status, error }
        }
      }
      return refused !== null
    }, 20_000)
    // The reason is the last retry's: the call timed out, or the worker that
    // replaced the timed-out one was still loading.
    assert.match(String(refused?.error), /this agent's tally service cannot apply the session's committed ops now \(tally@1\.0\.0: (apply did not answer within 200 ms|the worker is still loading)/)

    for (const s of standbys) unlinkSync(join(flags, String(s.pid)))
    const state = await session.get()
    assert.equal(state.state, [0, 1, 2, 3, 4, 5])
    await session.append(6)
    assert.equal((await session.get()).state, [0, 1, 2, 3, 4, 5, 6])
    client.destroy()
  } catch (error) {
    for (const a of cluster?.agents ?? []) console.error(`--- ${a.name} ${a.id} running=${String(a.running)}\n${a.stderr.slice(-3000)}`)
    throw error
  } finally {
    await cluster?.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
})(), TEST_TIMEOUT_MS))

test.run()
