// A box whose address changes under a running agent (a DHCP lease that changes,
// a failover link), on real agents in network namespaces (root only: elsewhere
// the test prints that it is skipped, as sim-netns.test.ts does). Three agents,
// each in its own namespace on one bridge; the third listens on 0.0.0.0 (libp2p
// and HTTP), as an agent does by default. A terminal appends to a session whose
// group holds all three. Then the third box's address is taken away and another
// given: its agent announces the new one (an `addrs-changed` line), every agent
// records it (IP, addresses, HTTP URL) and calls it alive, its HTTP API answers
// at the new URL, and the terminal's appends carry on, none lost. An address
// added after that is announced too, and the record's IP stays.
//
// Before the agent watched its addresses, its record kept the old address for
// good, and its connections, made through the old address, stalled instead of
// failing: the other agents declared it dead and it declared them dead, and
// the cluster stayed split (watched for 40 s).

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import { NetnsLab, netnsUnavailable } from '../../sim/netns.ts'
import { AgentProcess, killAll } from '../../sim/processes.ts'
import { ContinuousWriter } from '../../sim/writer.ts'
import { within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 120_000
const MOVED = 2

type MemberView = { id: string; status: string; ip: string; http: string; addrs: string[] }

// An agent's HTTP API as the runner reaches it: one bound to 0.0.0.0 at its
// namespace's address.
function urlOf (agent: AgentProcess): string {
  return agent.http.replace('//0.0.0.0:', `//${agent.options.netns?.host ?? '127.0.0.1'}:`)
}

async function viewOf (agent: AgentProcess, id: string): Promise<MemberView | null> {
  const response = await fetch(`${urlOf(agent)}/v1/members`, { signal: AbortSignal.timeout(3_000) })
  const body = await response.json() as { members: MemberView[] }
  return body.members.find((m) => m.id === id) ?? null
}

async function until (what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

test('an agent whose box changes address announces the new one; the cluster follows it and its terminal carries on', () => within((async () => {
  const unavailable = netnsUnavailable()
  if (unavailable !== null) {
    console.log(`\nskip: ${unavailable}`)
    return
  }
  const lab = NetnsLab.create(3)
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-readdress-'))
  const agents: AgentProcess[] = []
  let writer: ContinuousWriter | null = null
  try {
    const options = (i: number): Parameters<typeof AgentProcess.start>[0] => ({
      name: `agent${i}`,
      dataDir: join(dir, `agent${i}`),
      netns: { ns: lab.ns(i), host: lab.host(i) },
      services: 'log',
      bootstrap: i === 0 ? [] : agents[0].addrs,
      ...(i === MOVED ? { extraArgs: ['--listen', '/ip4/0.0.0.0/tcp/0', '--http', '0.0.0.0:0'] } : {})
    })
    for (let i = 0; i < 3; i++) agents.push(await AgentProcess.start(options(i)))
    const moved = agents[MOVED]
    const others = agents.filter((a) => a !== moved)
    const oldHost = lab.host(MOVED)
    await until('every agent sees the others alive', async () => {
      const views = await Promise.all(agents.flatMap((a) => agents.filter((b) => b !== a).map(async (b) => await viewOf(a, b.id))))
      return views.every((v) => v?.status === 'alive')
    }, 30_000)
    const before = await viewOf(others[0], moved.id)
    assert.is(before?.ip, oldHost)

    // A session held by all three (R = 2 of three agents), its terminal writing.
    const client = new EdgeClient({ agents: [...others.map((a) => a.http), before?.http ?? ''], requestTimeoutMs: 2_000, deadlineMs: 30_000 })
    const session = await client.open({ terminalId: 'kiosk-moved', service: 'log' })
    assert.ok(session.group.some((m) => m.id === moved.id), 'the moved agent holds a copy')
    writer = new ContinuousWriter(session, 'v', 20)
    await writer.waitFor(10)

    const newHost = lab.readdress(MOVED, 200)
    const changed = await moved.waitFor((e) => e.event === 'addrs-changed', 15_000)
    assert.ok((changed.addrs as string[]).some((a) => a.startsWith(`/ip4/${newHost}/tcp/`)), JSON.stringify(changed))
    assert.ok((changed.lost as string[]).some((a) => a.startsWith(`/ip4/${oldHost}/tcp/`)), JSON.stringify(changed))
    assert.is(changed.ip, newHost)

    let seen: MemberView | null = null
    for (const agent of others) {
      await until(`${agent.name} records the moved agent alive at ${newHost}`, async () => {
        seen = await viewOf(agent, moved.id)
        return seen?.status === 'alive' && seen.ip === newHost && seen.http.startsWith(`http://${newHost}:`) && seen.addrs.some((a) => a.startsWith(`/ip4/${newHost}/`))
      }, 20_000)
    }
    // Its HTTP API answers at the URL its record now gives, and it sees the others.
    const url = (seen as MemberView | null)?.http ?? ''
    await until('the moved agent sees the others alive', async () => {
      const response = await fetch(`${url}/v1/members`, { signal: AbortSignal.timeout(3_000) })
      const body = await response.json() as { members: MemberView[] }
      return others.every((o) => body.members.find((m) => m.id === o.id)?.status === 'alive')
    }, 20_000)

    // One more address, on an interface listed before eth0 (here lo, as a
    // bridge or a VPN's can be): announced, and the record's IP stays the one
    // the box still has (picked afresh, it would have moved to the new one).
    const extra = lab.addAddress(MOVED, 201, 'lo')
    const added = await moved.waitFor((e) => e.event === 'addrs-changed' && (e.addrs as string[]).some((a) => a.startsWith(`/ip4/${extra}/`)), 15_000)
    assert.is(added.ip, newHost)
    assert.equal(added.lost, [])
    for (const agent of others) {
      await until(`${agent.name} lists the extra address`, async () => {
        const view = await viewOf(agent, moved.id)
        return view?.ip === newHost && view.addrs.some((a) => a.startsWith(`/ip4/${extra}/`))
      }, 20_000)
    }

    const ackedAtChange = writer.acked.length
    await writer.waitFor(ackedAtChange + 20, 30_000)
    const declaredDead = others.filter((a) => a.statusEvent(moved.id, 'dead') !== null).map((a) => a.name)
    console.log(`\n  the moved agent was declared dead by: ${declaredDead.length === 0 ? 'nobody' : declaredDead.join(', ')}`)
    await writer.stop()
    assert.is(writer.error, null, writer.error?.message)
    assert.equal(await writer.check(), [])
  } finally {
    if (writer !== null) writer.stopped = true
    await killAll(agents)
    lab.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
})(), TIMEOUT_MS))

test.run()
