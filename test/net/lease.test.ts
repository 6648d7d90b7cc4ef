// The promise behind an owner's lease, on real agents (127.0.0.1): session
// timings slower than the membership's (ownerTimeoutMs 2.5 s; the lan
// membership declares a cut-off agent dead in about 1-2 s). The fault gate cuts
// the owner off while a terminal appends through the others and a reader asks
// the old owner for the session every 50 ms. The old owner serves reads while
// its lease holds (0.8 × 2.5 s from the last heartbeat its members
// acknowledged), so no other member may vote before its promise has run out,
// whatever the membership says: every read it answers must hold every append
// acknowledged before the read was sent, and the new owner acknowledges
// nothing until the old one's lease is over. Before, a standby voted as soon as
// the membership's verdict came, inside that promise (README, "The promise
// behind the lease"; SEED=296 of the chaos sweep with the wan session timings).
// The test has a hard timeout; every process and directory is removed.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import { LocalCluster } from '../../sim/processes.ts'
import { timedTest } from './timed-test.ts'

const TEST_TIMEOUT_MS = 120_000
const CONVERGE_TIMEOUT_MS = 30_000
const OWNER_TIMEOUT_MS = 2_500
// The owner's lease: this share of ownerTimeoutMs from the heartbeat its
// members acknowledged last (agent/sessions/replica.ts, LEASE_SAFETY).
const LEASE_MS = 0.8 * OWNER_TIMEOUT_MS
// How long the reader keeps asking the old owner after the cut.
const READ_FOR_MS = 6_000

async function call (url: string, method: string, body?: unknown): Promise<number> {
  const response = await fetch(url, { method, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5_000) })
  await response.arrayBuffer()
  return response.status
}

type Read = { sentAtMs: number; values: number }

let cluster: LocalCluster | null = null
const configDir = mkdtempSync(join(tmpdir(), 'edge-agent-lease-test-'))
test.after(async () => {
  await cluster?.destroy()
  rmSync(configDir, { recursive: true, force: true })
})

timedTest('an owner cut off while the membership declares it dead within its lease: no other owner acknowledges until the lease is over, and every read it serves is up to date', TEST_TIMEOUT_MS, async () => {
  const configFile = join(configDir, 'agent.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { ownerTimeoutMs: OWNER_TIMEOUT_MS } }))
  cluster = await LocalCluster.start({ nodes: 3, services: 'log', configure: () => ({ extraArgs: ['--fault-injection', '--config', configFile] }) })
  const agents = cluster.agents
  await cluster.waitConverged(CONVERGE_TIMEOUT_MS)
  const client = new EdgeClient({ agents: agents.map((a) => a.http), requestTimeoutMs: 500, deadlineMs: 30_000 })
  try {
    const session = await client.open({ terminalId: 'lease-kept', service: 'log' })
    // When each append was acknowledged, in order: the n-th acknowledged append
    // is the n-th value of the log.
    const ackedAtMs: number[] = []
    for (let i = 0; i < 5; i++) {
      await session.append({ append: `before-${i}` })
      ackedAtMs.push(Date.now())
    }
    const old = agents.find((a) => a.id === session.owner?.id)
    assert.ok(old !== undefined, 'the owner is one of the agents')
    const others = agents.filter((a) => a !== old)

    const cutAtMs = Date.now()
    for (const agent of others) assert.is(await call(`${agent.http}/v1/faults`, 'POST', { seed: 5, blockedPeers: [old.id] }), 200)
    assert.is(await call(`${old.http}/v1/faults`, 'POST', { seed: 6, blockedPeers: others.map((a) => a.id) }), 200)

    // The reader: the old owner's answers, each with when its GET was sent.
    const reads: Read[] = []
    const refusals = new Map<number, number>()
    const reader = (async () => {
      while (Date.now() - cutAtMs < READ_FOR_MS) {
        const sentAtMs = Date.now()
        try {
          const response = await fetch(`${old.http}/v1/sessions/${encodeURIComponent(session.sessionId)}`, { headers: { authorization: `Bearer ${session.token}` }, redirect: 'manual', signal: AbortSignal.timeout(2_000) })
          const body = await response.json() as { state?: unknown }
          if (response.status === 200 && Array.isArray(body.state)) reads.push({ sentAtMs, values: body.state.length })
          else refusals.set(response.status, (refusals.get(response.status) ?? 0) + 1)
        } catch {
          refusals.set(0, (refusals.get(0) ?? 0) + 1)
        }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    // The terminal goes on appending: to the old owner first, which cannot get
    // them acknowledged, then through the others once one of them owns it.
    for (let i = 0; i < 3; i++) {
      await session.append({ append: `after-${i}` })
      ackedAtMs.push(Date.now())
    }
    await reader
    const firstAfterCutMs = ackedAtMs[5] - cutAtMs
    assert.is.not(session.owner?.id, old.id, 'another agent took over')
    assert.ok(reads.length > 0, 'the old owner served reads while its lease held')
    for (const read of reads) {
      const acknowledgedBefore = ackedAtMs.filter((at) => at < read.sentAtMs).length
      assert.ok(read.values >= acknowledgedBefore, `a read sent ${read.sentAtMs - cutAtMs} ms after the cut was served with ${read.values} values, while ${acknowledgedBefore} were acknowledged before it was sent (first append after the cut acknowledged at ${firstAfterCutMs} ms; refusals by status: ${JSON.stringify([...refusals])})`)
    }
    assert.ok(firstAfterCutMs >= LEASE_MS, `the new owner acknowledged ${firstAfterCutMs} ms after the cut, inside the old owner's lease (${LEASE_MS} ms)`)
    console.log(`  the new owner's first acknowledgement ${firstAfterCutMs} ms after the cut (lease ${LEASE_MS} ms); ${reads.length} reads served by the old owner, the last sent ${reads[reads.length - 1].sentAtMs - cutAtMs} ms after the cut`)
    for (const agent of agents) assert.is(await call(`${agent.http}/v1/faults`, 'DELETE'), 200)
  } finally {
    client.destroy()
  }
})

test.run()
