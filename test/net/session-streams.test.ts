// The replication streams inside a session's group, on real agents: each
// standby keeps a stream to the other standby, and gets it back after that
// standby restarts. The two standbys exchange nothing until their owner fails,
// so before this a restarted standby was reached again only at the next
// takeover, which then began with a dial (TCP, noise, yamux: 100-300 ms of a
// SIGKILL takeover on a busy box, bench/takeover-timeline.ts).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { EdgeClient } from '../../agent/client/index.ts'
import { LocalCluster } from '../../sim/processes.ts'
import type { AgentProcess } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

const TEST_TIMEOUT_MS = 90_000

async function sessionStreams (agent: AgentProcess): Promise<number> {
  const text = await (await fetch(`${agent.http}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith('edge_agent_streams_open{channel="sessions"}'))
  if (line === undefined) throw new Error(`no edge_agent_streams_open{channel="sessions"} in ${agent.name}'s /metrics`)
  return Number(line.split(' ').pop())
}

// Polls until `agent` holds `n` replication streams; throws with the last count.
async function untilStreams (agent: AgentProcess, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = NaN
  while (Date.now() < deadline) {
    last = await sessionStreams(agent)
    if (last === n) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${agent.name} holds ${last} replication streams after ${timeoutMs} ms, expected ${n}`)
}

test('a standby reopens its stream to the other standby after that one restarts', () => within((async () => {
  const cluster = await LocalCluster.start({ nodes: 3, services: 'log' })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http), requestTimeoutMs: 1_000, deadlineMs: 20_000 })
  try {
    await cluster.waitConverged(30_000)
    const session = await client.open({ terminalId: 'kiosk-1', service: 'log' })
    assert.is(session.group.length, 3)
    await session.append({ append: 'before' })
    const ownerId = (session.owner as { id: string }).id
    const [b, c] = cluster.agents.filter((a) => a.id !== ownerId)
    // b's streams: to the owner and to c.
    await untilStreams(b, 2, 10_000)

    c.signal('SIGKILL')
    await untilStreams(b, 1, 10_000)
    const restarted = await cluster.restart(cluster.agents.indexOf(c))
    await cluster.waitConverged(30_000)
    // Nothing is sent from b to c in this time: only the group's own upkeep
    // can reopen the stream.
    await untilStreams(b, 2, 10_000)
    await untilStreams(restarted, 2, 10_000)
    await session.append({ append: 'after' })
    assert.equal((await session.get()).state, ['before', 'after'])
  } finally {
    client.destroy()
    await cluster.destroy()
  }
})(), TEST_TIMEOUT_MS))

test.run()
