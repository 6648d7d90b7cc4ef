// The fault-injection gate on real agents (127.0.0.1), through the CLI flag and
// the HTTP API: a partition cuts one agent off (the others declare it dead, it
// declares them dead), /metrics counts what was dropped, and after the rules are
// cleared the four converge alive again. Without the flag there is no endpoint.
// Every test has a hard timeout; every process and directory is removed.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import { AgentProcess, LocalCluster, runCli } from '../../sim/processes.ts'
import { timedTest } from './timed-test.ts'

const CLUSTER_TEST_TIMEOUT_MS = 90_000
const TEST_TIMEOUT_MS = 30_000
// lan promises a dead verdict within about 2 s; this only catches a gate that
// does not cut anything.
const VERDICT_TIMEOUT_MS = 15_000
// The cut-off agent's own verdicts come slower by design (Lifeguard): every
// failed probe raises its local health, which spaces its next probes out, and it
// hears no confirmation, so each suspicion runs its maximum. With 3 others, lan:
// 12.75 s after its first failed probe (test/unit/membership-core.test.ts).
const CUT_OFF_VERDICTS_TIMEOUT_MS = 25_000
const CONVERGE_TIMEOUT_MS = 30_000

async function call (url: string, method: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, { method, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5_000) })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

function metric (text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((label) => l.includes(label)))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

let cluster: LocalCluster | null = null
test.after(async () => { await cluster?.destroy() })

timedTest('a partition cuts agent3 off: both sides declare the other dead; after healing all four converge alive', CLUSTER_TEST_TIMEOUT_MS, async () => {
  cluster = await LocalCluster.start({ nodes: 4, services: 'log', configure: () => ({ extraArgs: ['--fault-injection'] }) })
  const agents = cluster.agents
  await cluster.waitConverged(CONVERGE_TIMEOUT_MS)
  for (const agent of agents) {
    assert.is(agent.events[0].faultInjection, true, `${agent.name}'s started event says the gate is on`)
    assert.match(agent.stderr, /WARNING: FAULT INJECTION IS ON/)
  }
  const [victim, ...others] = [agents[3], agents[0], agents[1], agents[2]]
  const cutAt = Date.now()
  for (const agent of others) {
    const { status, json } = await call(`${agent.http}/v1/faults`, 'POST', { seed: 1, blockedPeers: [victim.id] })
    assert.is(status, 200, JSON.stringify(json))
    assert.equal((json.rules as { blockedPeers: string[] }).blockedPeers, [victim.id])
  }
  assert.is((await call(`${victim.http}/v1/faults`, 'POST', { seed: 2, blockedPeers: others.map((a) => a.id) })).status, 200)

  await Promise.all(others.map(async (a) => await a.waitFor((e) => e.event === 'member' && e.id === victim.id && e.status === 'dead' && e.atMs >= cutAt, VERDICT_TIMEOUT_MS)))
  await Promise.all(others.map(async (a) => await victim.waitFor((e) => e.event === 'member' && e.id === a.id && e.status === 'dead' && e.atMs >= cutAt, CUT_OFF_VERDICTS_TIMEOUT_MS)))
  // The majority still sees itself whole.
  await cluster.waitConverged(CONVERGE_TIMEOUT_MS, others)
  const metrics = await (await fetch(`${victim.http}/metrics`)).text()
  assert.ok(metric(metrics, 'edge_agent_fault_dropped_messages_total', 'direction="out",channel="direct",reason="partition"') > 0, metrics.split('\n').filter((l) => l.includes('fault')).join('\n'))
  assert.ok(metric(metrics, 'edge_agent_fault_dropped_messages_total', 'direction="in",reason="partition"') > 0)
  const state = await call(`${victim.http}/v1/faults`, 'GET')
  assert.is(state.json.active, true)

  const healAt = Date.now()
  for (const agent of agents) {
    const { status, json } = await call(`${agent.http}/v1/faults`, 'DELETE')
    assert.is(status, 200)
    assert.is(json.active, false)
  }
  await cluster.waitConverged(CONVERGE_TIMEOUT_MS)
  for (const a of others) {
    const back = a.events.find((e) => e.event === 'member' && e.id === victim.id && e.status === 'alive' && e.atMs >= healAt)
    assert.ok(back !== undefined, `${a.name} saw ${victim.name} alive again`)
  }
})

// The owner cut off (the gate's partition), the others elect another, which
// acknowledges more and then closes the session; healed, the old owner meets
// members that forgot it. Before, it took their "nothing held" for acks, kept
// its lease, and served GETs of the closed session from its stale state for
// good (README, "Closing"; test/unit/session-closed.test.ts).
timedTest('a session closed while its owner was cut off: healed, the old owner answers 404, not its stale state', CLUSTER_TEST_TIMEOUT_MS, async () => {
  if (cluster === null) throw new Error('the cluster did not start (see the first test)')
  const agents = cluster.agents
  await cluster.waitConverged(CONVERGE_TIMEOUT_MS)
  const client = new EdgeClient({ agents: agents.map((a) => a.http), requestTimeoutMs: 500, deadlineMs: 20_000 })
  try {
    const session = await client.open({ terminalId: 'closed-while-cut-off', service: 'log' })
    for (let i = 0; i < 5; i++) await session.append({ append: `before-${i}` })
    const old = agents.find((a) => a.id === session.owner?.id)
    assert.ok(old !== undefined, 'the owner is one of the agents')
    const others = agents.filter((a) => a !== old)
    for (const agent of others) assert.is((await call(`${agent.http}/v1/faults`, 'POST', { seed: 3, blockedPeers: [old.id] })).status, 200)
    assert.is((await call(`${old.http}/v1/faults`, 'POST', { seed: 4, blockedPeers: others.map((a) => a.id) })).status, 200)
    // The terminal reaches a new owner on the majority side.
    for (let i = 0; i < 3; i++) await session.append({ append: `after-${i}` })
    assert.is.not(session.owner?.id, old.id, 'another agent took over')
    await session.close()
    for (const agent of agents) assert.is((await call(`${agent.http}/v1/faults`, 'DELETE')).status, 200)
    await cluster.waitConverged(CONVERGE_TIMEOUT_MS)
    // Its heartbeats meet the members that forgot the session within ~100 ms.
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const response = await fetch(`${old.http}/v1/sessions/${encodeURIComponent(session.sessionId)}`, { headers: { authorization: `Bearer ${session.token}` }, redirect: 'manual', signal: AbortSignal.timeout(5_000) })
    const body = await response.text()
    assert.is(response.status, 404, `the old owner answered ${response.status}: ${body.slice(0, 300)}`)
  } finally {
    client.destroy()
  }
})

// The same, and every agent that closed the session is then SIGKILLed and
// restarted from its data directory before the old owner is healed: the close
// is in their stores (schema version 4: `edge-agent check` counts it) and
// everyone answers 404. (These members had acked the old owner, so its lease
// would not count their "nothing held" even had they forgotten the close; the
// path where a restarted member that never acked it takes the session as new,
// SEED=409 of a sweep with disks that stall, is replayed in
// test/sim/sessions-sweep.test.ts and pinned in
// test/unit/session-store-closed.test.ts.)
timedTest('a session closed while its owner was cut off, and its closers restarted before healing: the close is in their stores, and everyone answers 404', 150_000, async () => {
  if (cluster === null) throw new Error('the cluster did not start (see the first test)')
  const live = cluster
  await live.waitConverged(CONVERGE_TIMEOUT_MS)
  const client = new EdgeClient({ agents: live.agents.map((a) => a.http), requestTimeoutMs: 500, deadlineMs: 20_000 })
  let old: AgentProcess | undefined
  try {
    const session = await client.open({ terminalId: 'closed-then-restarted', service: 'log' })
    for (let i = 0; i < 5; i++) await session.append({ append: `before-${i}` })
    old = live.agents.find((a) => a.id === session.owner?.id)
    assert.ok(old !== undefined, 'the owner is one of the agents')
    const cutOff = old
    const others = live.agents.filter((a) => a !== cutOff)
    for (const agent of others) assert.is((await call(`${agent.http}/v1/faults`, 'POST', { seed: 5, blockedPeers: [cutOff.id] })).status, 200)
    assert.is((await call(`${cutOff.http}/v1/faults`, 'POST', { seed: 6, blockedPeers: others.map((a) => a.id) })).status, 200)
    for (let i = 0; i < 3; i++) await session.append({ append: `after-${i}` })
    assert.is.not(session.owner?.id, cutOff.id, 'another agent took over')
    const closingOwner = session.owner?.id
    await session.close()
    client.destroy()
    // One at a time, so that each restarts into the others' cluster (its own
    // gate has no rule: the old owner's still blocks it).
    for (const agent of others) {
      const index = live.agents.indexOf(agent)
      agent.signal('SIGKILL')
      await agent.exited
      await live.restart(index)
      await live.waitConverged(CONVERGE_TIMEOUT_MS, live.agents.filter((a) => a.id !== cutOff.id))
    }
    assert.is((await call(`${cutOff.http}/v1/faults`, 'DELETE')).status, 200)
    await live.waitConverged(CONVERGE_TIMEOUT_MS)
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const response = await fetch(`${cutOff.http}/v1/sessions/${encodeURIComponent(session.sessionId)}`, { headers: { authorization: `Bearer ${session.token}` }, redirect: 'manual', signal: AbortSignal.timeout(5_000) })
    const body = await response.text()
    assert.is(response.status, 404, `the old owner answered ${response.status}: ${body.slice(0, 300)}`)
    for (const agent of live.agents.filter((a) => a.id !== cutOff.id)) {
      const held = await fetch(`${agent.http}/v1/sessions/${encodeURIComponent(session.sessionId)}`, { headers: { authorization: `Bearer ${session.token}` }, redirect: 'manual', signal: AbortSignal.timeout(5_000) })
      await held.text()
      assert.is(held.status, 404, `${agent.name} answered ${held.status}`)
    }
    // The new owner closed it: stopped, its store holds the mark. Then it is
    // started again for the tests after this one.
    const closer = live.agents.find((a) => a.id === closingOwner)
    assert.ok(closer !== undefined, 'the owner that closed it is one of the agents')
    await closer.stop()
    const checked = await runCli(['check', '--data-dir', closer.options.dataDir, '--json'])
    assert.is(checked.code, 0, checked.stderr)
    assert.ok((JSON.parse(checked.stdout) as { store: { closed: number } }).store.closed >= 1, checked.stdout)
    await live.restart(live.agents.indexOf(closer))
  } finally {
    client.destroy()
  }
})

timedTest('bad rule bodies are refused with 400 naming the field; the agent keeps running and its rules unchanged', TEST_TIMEOUT_MS, async () => {
  if (cluster === null) throw new Error('the cluster did not start (see the first test)')
  const agent = cluster.agents[0]
  const cases: Array<[string, RegExp]> = [
    ['{"lossRate": 3}', /'lossRate' must be a number from 0 to 1/],
    ['{"blockedPeers": ["nope"]}', /'blockedPeers\[0\]' is not a peer id/],
    ['{"delay": 10}', /unknown field 'delay'/],
    ['[1, 2]', /the body must be a JSON object/],
    ['{"slowMs": ', /the body is not valid JSON/]
  ]
  for (const [body, reason] of cases) {
    const response = await fetch(`${agent.http}/v1/faults`, { method: 'POST', body, signal: AbortSignal.timeout(5_000) })
    assert.is(response.status, 400, body)
    assert.match(((await response.json()) as { error: string }).error, reason)
  }
  const state = await call(`${agent.http}/v1/faults`, 'GET')
  assert.is(state.json.active, false)
  assert.is((await call(`${agent.http}/v1/health`, 'GET')).status, 200)
})

timedTest('without --fault-injection there is no /v1/faults (404, body unread) and no fault metric', TEST_TIMEOUT_MS, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-nofaults-'))
  const agent = await AgentProcess.start({ name: 'plain', dataDir: join(dir, 'plain') })
  try {
    assert.is(agent.events[0].faultInjection, undefined)
    for (const method of ['GET', 'POST', 'DELETE']) {
      const { status, json } = await call(`${agent.http}/v1/faults`, method, method === 'POST' ? { blockedPeers: [] } : undefined)
      assert.is(status, 404, method)
      assert.match(String(json.error), /fault injection is off/)
    }
    assert.not.match(await (await fetch(`${agent.http}/metrics`)).text(), /edge_agent_fault_/)
    assert.not.match(agent.stderr, /FAULT INJECTION/)
  } finally {
    await agent.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
