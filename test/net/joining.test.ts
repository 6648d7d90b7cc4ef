// An agent that has not joined its cluster yet (started with bootstrap peers,
// none of which has answered) knows nothing of the sessions held elsewhere. It
// answers 503 (retry, or ask another agent), never "no such session", and opens
// no session with itself alone as the group. Once it has joined, it finds the
// session. Real agents on 127.0.0.1.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import { AgentProcess, LocalCluster } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

// A loopback port nobody listens on (taken, then freed).
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

type Answer = { status: number; error: string }

async function answer (response: Response): Promise<Answer> {
  const body = await response.json().catch(() => ({})) as { error?: string }
  return { status: response.status, error: body.error ?? '' }
}

test('an agent whose bootstrap peers do not answer says it has not joined (503) for a session held elsewhere and for an open; once joined, it finds the session', () => within((async () => {
  const cluster = await LocalCluster.start({ nodes: 3, services: 'log' })
  const dataDir = mkdtempSync(join(tmpdir(), 'edge-agent-joining-'))
  let lonely: AgentProcess | null = null
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http) })
  try {
    await cluster.waitConverged(60_000)
    const session = await client.open({ terminalId: 'joining', service: 'log' })
    await session.append({ append: 'kept' })
    const first = cluster.agents[0]
    const bootstrap = first.addrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
    assert.ok(bootstrap !== undefined, `a loopback address among ${first.addrs.join(', ')}`)
    const nowhere = bootstrap.replace(/\/tcp\/\d+\//, `/tcp/${await closedPort()}/`)
    lonely = await AgentProcess.start({ name: 'lonely', dataDir, bootstrap: [nowhere], services: 'log' })

    const ask = async (agent: AgentProcess): Promise<{ get: Answer; resume: Answer; open: Answer }> => ({
      get: await answer(await fetch(`${agent.http}/v1/sessions/${encodeURIComponent(session.sessionId)}`, { headers: { authorization: `Bearer ${session.token}` }, redirect: 'manual' })),
      resume: await answer(await fetch(`${agent.http}/v1/sessions`, { method: 'POST', headers: { authorization: `Bearer ${session.token}`, 'content-type': 'application/json' }, body: '{}', redirect: 'manual' })),
      open: await answer(await fetch(`${agent.http}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ terminalId: 'another', service: 'log' }) }))
    })
    const health = async (agent: AgentProcess): Promise<unknown> => ((await (await fetch(`${agent.http}/v1/health`)).json()) as { joining?: unknown }).joining
    assert.is(await health(lonely), true, '/v1/health says it is joining')
    const before = await ask(lonely)
    for (const [what, got] of Object.entries(before)) {
      assert.is(got.status, 503, `${what} at the agent that has not joined: ${JSON.stringify(got)}`)
      assert.match(got.error, /not joined its cluster/, what)
    }
    // A service to deploy: no agent to fetch it from yet, so not "unknown service" (400).
    const deployed = await answer(await fetch(`${lonely.http}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ terminalId: 'another', service: 'tally' }) }))
    assert.is(deployed.status, 503, `an open of a service to deploy: ${JSON.stringify(deployed)}`)
    const listed = await (await fetch(`${lonely.http}/v1/sessions`)).json() as { sessions: unknown[] }
    assert.equal(listed.sessions, [], 'it created no session of its own')

    // The same agent, restarted with a bootstrap peer that answers.
    await lonely.stop()
    lonely = await AgentProcess.start({ name: 'lonely', dataDir, bootstrap: [bootstrap], services: 'log' })
    await cluster.waitConverged(60_000, [...cluster.running(), lonely])
    assert.is(await health(lonely), false, '/v1/health: joined')
    const after = await ask(lonely)
    assert.ok(after.get.status === 307 || after.get.status === 200, `read once joined: ${JSON.stringify(after.get)}`)
    assert.is(after.resume.status, 200, `resume once joined: ${JSON.stringify(after.resume)}`)
    assert.is(after.open.status, 201, `open once joined: ${JSON.stringify(after.open)}`)
  } finally {
    client.destroy()
    lonely?.signal('SIGKILL')
    await cluster.destroy()
    rmSync(dataDir, { recursive: true, force: true })
  }
})(), 120_000))

// A singleton's keeper creates the session when the agent is first on the
// service's ring and a lookup says "no such session" (agent/runtime/singletons.ts).
// An agent whose bootstrap peers do not answer sees only itself: before it
// said 503 "not joined", it answered its own lookup 404 and created a second
// singleton session beside the cluster's, a second leader.
test('an agent that has not joined creates no second singleton session beside its cluster\'s', () => within((async () => {
  const singleton = { services: 'log,leader', configure: () => ({ extraArgs: ['--singletons', 'leader'] }) }
  const cluster = await LocalCluster.start({ nodes: 2, ...singleton })
  const dataDir = mkdtempSync(join(tmpdir(), 'edge-agent-joining-'))
  let lonely: AgentProcess | null = null
  const holds = async (agent: AgentProcess): Promise<boolean> => {
    const listed = await (await fetch(`${agent.http}/v1/sessions`)).json() as { sessions: Array<{ sessionId: string }> }
    return listed.sessions.some((s) => s.sessionId === 'leader:singleton')
  }
  try {
    await cluster.waitConverged(60_000)
    const deadline = Date.now() + 30_000
    while (!(await holds(cluster.agents[0]))) {
      assert.ok(Date.now() < deadline, 'the cluster created its singleton session')
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const bootstrap = cluster.agents[0].addrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/')) as string
    const nowhere = bootstrap.replace(/\/tcp\/\d+\//, `/tcp/${await closedPort()}/`)
    lonely = await AgentProcess.start({ name: 'lonely', dataDir, bootstrap: [nowhere], services: 'log,leader', extraArgs: ['--singletons', 'leader'] })
    // The keeper first looks 5 s after the start, then every 2 s.
    await new Promise((resolve) => setTimeout(resolve, 9_500))
    assert.is(await holds(lonely), false, 'the agent that has not joined holds no singleton session')
  } finally {
    lonely?.signal('SIGKILL')
    await cluster.destroy()
    rmSync(dataDir, { recursive: true, force: true })
  }
})(), 120_000))

test.run()
