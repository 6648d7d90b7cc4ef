// Sessions on real agents: five `edge-agent start` processes on 127.0.0.1, a
// terminal (EdgeClient) appending all along while owners are SIGKILLed and
// SIGSTOPped. At the end the session holds every acknowledged append exactly
// once, in order; role hooks ran; the killed owner came back as a standby.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import { LocalCluster } from '../../sim/processes.ts'
import type { AgentProcess } from '../../sim/processes.ts'
import { ContinuousWriter } from '../../sim/writer.ts'
import { within } from '../fixtures/timeout.ts'

const TEST_TIMEOUT_MS = 120_000

function withTimeout<T> (promise: Promise<T>): Promise<T> {
  return within(promise, TEST_TIMEOUT_MS)
}

// Until `owner` reports the session's group without `dead` (repaired).
async function groupWithout (owner: AgentProcess, sessionId: string, dead: string): Promise<void> {
  for (;;) {
    const list = await (await fetch(`${owner.http}/v1/sessions`)).json() as { sessions: Array<{ sessionId: string; members: string[] }> }
    const members = list.sessions.find((s) => s.sessionId === sessionId)?.members ?? []
    if (members.length >= 3 && !members.includes(dead)) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

function agentById (cluster: LocalCluster, id: string): AgentProcess {
  const agent = cluster.agents.find((a) => a.id === id)
  if (agent === undefined) throw new Error(`no agent ${id}`)
  return agent
}

// On failure: every agent's takeover steps and membership verdicts, in time order,
// so a stalled takeover in CI can be read without re-running it.
function dumpSessionEvents (cluster: LocalCluster, marks: Array<{ at: number; text: string }>): void {
  const lines = [...marks, ...cluster.agents.flatMap((a) => a.events
    .filter((e) => e.event !== 'started')
    .map((e) => ({ at: Number(e.atMs), text: `${a.name}(${a.id.slice(-6)}) ${JSON.stringify({ ...e, atMs: undefined })}` })))]
  lines.sort((x, y) => x.at - y.at)
  const t0 = lines[0]?.at ?? 0
  console.error(lines.map((l) => `  +${l.at - t0} ms ${l.text}`).join('\n'))
}

test('a terminal appends through an owner SIGKILL and an owner SIGSTOP; nothing acknowledged is lost or doubled', () => withTimeout((async () => {
  const hooks = mkdtempSync(join(tmpdir(), 'edge-agent-hooks-'))
  const hookFile = join(hooks, 'hooks.log')
  const hook = (role: string): string => `echo "${role} $EDGE_SESSION_ID $EDGE_EPOCH $EDGE_ROLE" >> ${hookFile}`
  // No load filter: on a shared 2-core box running other tests, CPU load alone
  // would leave agents out of the group (that filter has its own tests).
  const configFile = join(hooks, 'config.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  const cluster = await LocalCluster.start({
    nodes: 5,
    services: 'log',
    configure: () => ({ extraArgs: ['--config', configFile, '--on-promote', hook('promote'), '--on-demote', hook('demote')] })
  })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http), requestTimeoutMs: 500, deadlineMs: 20_000 })
  const marks: Array<{ at: number; text: string }> = []
  try {
    await cluster.waitConverged(30_000)
    const session = await client.open({ terminalId: 'kiosk-1', service: 'log' })
    assert.is(session.group.length, 3, 'owner and two standbys')
    const writer = new ContinuousWriter(session)
    await writer.waitFor(20)

    const first = agentById(cluster, (session.owner as { id: string }).id)
    const killedAt = Date.now()
    first.signal('SIGKILL')
    marks.push({ at: killedAt, text: `test: SIGKILL ${first.name} (owner, epoch ${session.epoch})` })
    await writer.waitFor(writer.acked.length + 20)
    const killTakeover = writer.takeoverAfter(killedAt, 1)

    const second = agentById(cluster, (session.owner as { id: string }).id)
    assert.is.not(second, first)
    // Freezing the new owner before the group replaced the dead one would leave a
    // single live member: no majority, so rightly no takeover. Wait for repair.
    await groupWithout(second, session.sessionId, first.id)
    const epoch = session.epoch
    const frozenAt = Date.now()
    second.signal('SIGSTOP')
    marks.push({ at: frozenAt, text: `test: SIGSTOP ${second.name} (owner, epoch ${epoch})` })
    await writer.waitFor(writer.acked.length + 20)
    const stopTakeover = writer.takeoverAfter(frozenAt, epoch)
    second.signal('SIGCONT')
    marks.push({ at: Date.now(), text: `test: SIGCONT ${second.name}` })

    await cluster.restart(cluster.agents.indexOf(first))
    await writer.waitFor(writer.acked.length + 10)
    await writer.stop()
    console.log(`takeover seen by the terminal: SIGKILL ${killTakeover} ms, SIGSTOP ${stopTakeover} ms; ${writer.acked.length} appends acknowledged`)
    // Liveness only (the latency figures live in `npm run bench`): a takeover happened.
    assert.ok(Number.isFinite(killTakeover) && killTakeover < 10_000, `SIGKILL takeover ${killTakeover} ms`)
    assert.ok(Number.isFinite(stopTakeover) && stopTakeover < 10_000, `SIGSTOP takeover ${stopTakeover} ms`)

    const state = await session.get()
    assert.equal(state.state, writer.acked.map((a) => a.value), 'every acknowledged append, once, in order')
    assert.equal(await writer.check(), [])
    assert.ok(writer.acked.every((a, i) => i === 0 || a.index > writer.acked[i - 1].index), 'indexes only grow')

    // The frozen owner found it was replaced and demoted itself.
    const frozenView = await second.members()
    assert.ok(frozenView.length > 0)
    const lines = readFileSync(hookFile, 'utf8').trim().split('\n')
    // A takeover's epoch is 2 or later: an election that found no majority in
    // time used up an epoch.
    const promotedAfterKill = lines.some((l) => {
      const [what, id, epoch, role] = l.split(' ')
      return what === 'promote' && id === session.sessionId && Number(epoch) >= 2 && role === 'owner'
    })
    assert.ok(promotedAfterKill, `hooks: ${lines.join(' | ')}`)
    assert.ok(lines.some((l) => l.startsWith(`demote ${session.sessionId}`) && l.endsWith('standby')), `hooks: ${lines.join(' | ')}`)
  } catch (error) {
    dumpSessionEvents(cluster, marks)
    throw error
  } finally {
    client.destroy()
    await cluster.destroy()
    rmSync(hooks, { recursive: true, force: true })
  }
})()))

// Quiet sessions (agent/sessions/quiet.ts) on real agents: idle sessions stop
// their per-session heartbeats (the agents' metric counts every copy quiet),
// and an owner SIGKILLed while its session is quiet is taken over: the
// terminal's next appends are acknowledged by a standby, nothing lost.
test('idle sessions go quiet on real agents; an owner SIGKILLed while quiet is taken over, nothing acknowledged lost', () => withTimeout((async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-quiet-'))
  const configFile = join(dir, 'config.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1, quietAfterMs: 500 } }))
  const cluster = await LocalCluster.start({ nodes: 3, services: 'log', configure: () => ({ extraArgs: ['--config', configFile] }) })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http), requestTimeoutMs: 500, deadlineMs: 20_000 })
  const quietCopies = async (): Promise<number> => {
    let total = 0
    for (const agent of cluster.agents) {
      if (!agent.running) continue
      const text = await (await fetch(`${agent.http}/metrics`)).text()
      total += Number(/^edge_agent_sessions_quiet (\d+)/m.exec(text)?.[1] ?? NaN)
    }
    return total
  }
  try {
    await cluster.waitConverged(30_000)
    const sessions = []
    for (let i = 0; i < 3; i++) sessions.push(await client.open({ terminalId: `idle-${i}`, service: 'log' }))
    for (const session of sessions) for (let i = 0; i < 3; i++) await session.append({ append: `before-${i}` })
    const deadline = Date.now() + 15_000
    let quiet = await quietCopies()
    while (quiet < 9 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200))
      quiet = await quietCopies()
    }
    assert.is(quiet, 9, 'every copy of the 3 sessions (owner and two standbys each) is quiet')
    for (const agent of cluster.agents) {
      const list = await (await fetch(`${agent.http}/v1/sessions`)).json() as { sessions: Array<{ quiet: boolean }> }
      assert.ok(list.sessions.length > 0 && list.sessions.every((x) => x.quiet), `${agent.name}: GET /v1/sessions shows every copy quiet`)
    }

    const session = sessions[0]
    const owner = agentById(cluster, (session.owner as { id: string }).id)
    owner.signal('SIGKILL')
    for (let i = 0; i < 5; i++) await session.append({ append: `after-${i}` })
    assert.is.not((session.owner as { id: string }).id, owner.id, 'a standby took over')
    const state = await session.get()
    assert.equal(state.state, ['before-0', 'before-1', 'before-2', 'after-0', 'after-1', 'after-2', 'after-3', 'after-4'])
  } finally {
    client.destroy()
    await cluster.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
})()))

test.run()
