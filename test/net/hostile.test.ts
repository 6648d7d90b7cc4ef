// A hostile peer on the real network (127.0.0.1, the agent's own transport
// stack). First: garbage, wrong-type frames and forged records on the membership
// stream; the agent refuses each one, counts it in /metrics, keeps its table
// intact and keeps serving. Then every protocol the agent speaks (the SWIM and
// replication streams, peek, the gossip topic) gets garbage, truncated frames,
// oversized frames, bad length prefixes, valid-looking frames of the wrong type
// and a flood, aimed at the owner of a session whose terminal appends all along:
// every refusal is counted in edge_agent_refused_total{protocol,reason}, the
// appends keep being acknowledged during the attack, and at the end every
// acknowledged append is in the session once, in order.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import { writeRawOverLibp2p } from '../../agent/net/client.ts'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { encode, encodeRecord } from '../../protocol/codec.ts'
import { FLOOD_FRAMES } from '../fixtures/hostile-attack.ts'
import type { NodeRecord } from '../../protocol/messages.ts'
import { LocalCluster } from '../../sim/processes.ts'
import { ContinuousWriter } from '../../sim/writer.ts'
import { within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 90_000

// it-length-prefixed's framing: an unsigned varint length, then the bytes.
function framed (payload: Uint8Array): Uint8Array {
  const prefix: number[] = []
  let n = payload.length
  while (n >= 0x80) { prefix.push((n & 0x7f) | 0x80); n >>>= 7 }
  prefix.push(n)
  return new Uint8Array([...prefix, ...payload])
}

async function rejected (http: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${http}/metrics`)).text()
  const counts: Record<string, number> = {}
  for (const m of text.matchAll(/^edge_agent_rejected_messages_total\{reason="([a-z]+)"\} (\d+)/gm)) counts[m[1]] = Number(m[2])
  return counts
}

function withTimeout<T> (promise: Promise<T>): Promise<T> {
  return within(promise, TIMEOUT_MS)
}

test('garbage, wrong types and forged records are refused, counted, and change nothing', () => withTimeout((async () => {
  const cluster = await LocalCluster.start({ nodes: 2, services: 'log' })
  try {
    await cluster.waitConverged(20_000)
    const [target, victim] = cluster.agents
    const addr = target.addrs[0]
    const before = await rejected(target.http)

    // Bytes that are no frame at all, a frame of an unknown version, and a
    // well-formed frame of a type that does not belong on this stream.
    await writeRawOverLibp2p(addr, 'default', framed(randomBytes(40)), 10_000, undefined, true)
    await writeRawOverLibp2p(addr, 'default', framed(new Uint8Array([99, 1, 0])), 10_000, undefined, true)
    await writeRawOverLibp2p(addr, 'default', framed(encode({ type: 'peek-request' })), 10_000, undefined, true)

    // A record in the victim's name, claiming another IP, signed by someone else.
    const victimRecord = (await target.members()).find((m) => m.id === victim.id) as unknown as NodeRecord & { status: string }
    const forged: NodeRecord = {
      ...victimRecord, status: 'alive', ip: '10.66.66.66', seq: 1_000_000, incarnation: victimRecord.incarnation + 100
    }
    const bytes = encodeRecord({
      id: forged.id, addrs: forged.addrs, ip: forged.ip, http: forged.http, services: forged.services, load: forged.load,
      position: forged.position, region: forged.region, zone: forged.zone, incarnation: forged.incarnation, seq: forged.seq, status: 'alive'
    })
    const gossip = encode({ type: 'gossip', updates: [{ kind: 'record', signed: { record: forged, bytes, sig: randomBytes(64) } }] })
    await writeRawOverLibp2p(addr, 'default', framed(gossip), 10_000, undefined, true)

    let after = await rejected(target.http)
    for (let i = 0; i < 50 && (after.decode ?? 0) - (before.decode ?? 0) < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      after = await rejected(target.http)
    }
    assert.ok((after.decode ?? 0) - (before.decode ?? 0) >= 2, `decode refusals: ${JSON.stringify(after)}`)
    assert.ok((after.type ?? 0) - (before.type ?? 0) >= 1, `type refusals: ${JSON.stringify(after)}`)
    assert.ok((after.signature ?? 0) - (before.signature ?? 0) >= 1, `signature refusals: ${JSON.stringify(after)}`)

    const health = await (await fetch(`${target.http}/v1/health`)).json() as { ok: boolean }
    assert.ok(health.ok, 'still serving')
    const seen = (await target.members()).find((m) => m.id === victim.id) as unknown as { ip: string; status: string; incarnation: number }
    assert.is(seen.ip, '127.0.0.1', 'the forged IP was not taken')
    assert.is(seen.status, 'alive')
    assert.is(seen.incarnation, victimRecord.incarnation, 'the forged incarnation was not taken')
    await cluster.waitConverged(5_000)
  } finally {
    await cluster.destroy()
  }
})()))

// edge_agent_refused_total by "protocol/reason".
async function refused (http: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${http}/metrics`)).text()
  const counts: Record<string, number> = {}
  for (const m of text.matchAll(/^edge_agent_refused_total\{protocol="([a-z]+)",reason="([a-z]+)"\} (\d+)/gm)) counts[`${m[1]}/${m[2]}`] = Number(m[3])
  // Frames over a peer's rate limit are dropped before decoding (counted once
  // per burst of drops, under the limit).
  for (const m of text.matchAll(/^edge_agent_limit_exceeded_total\{limit="([a-z-]+)"\} (\d+)/gm)) counts[`limit/${m[1]}`] = Number(m[2])
  return counts
}

const ATTACK = new URL('../fixtures/hostile-attack.ts', import.meta.url).pathname

type Phase = { phase: string; ms: number; [key: string]: unknown }

// Runs the hostile peer in its own process; resolves with its phase reports.
function runAttack (args: string[], onPhase: (p: Phase) => void): Promise<Phase[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ATTACK, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    const phases: Phase[] = []
    let stderr = ''
    child.stderr.on('data', (chunk) => { stderr += chunk })
    createInterface({ input: child.stdout }).on('line', (line) => {
      const p = JSON.parse(line) as Phase
      phases.push(p)
      onPhase(p)
    })
    child.on('close', (code) => {
      if (code === 0 && phases.at(-1)?.phase === 'done') resolve(phases)
      else reject(new Error(`hostile peer exited ${code}: ${stderr.slice(-2000)}`))
    })
  })
}

// Three agents with these `limits` and a session whose terminal appends every
// 5 ms all along, already acknowledged ten times; `stop` ends it all.
async function watchedOwner (limits: Record<string, number>, tag: string) {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-hostile-'))
  const config = join(dir, 'agent.json')
  writeFileSync(config, JSON.stringify({ limits }))
  const cluster = await LocalCluster.start({ nodes: 3, services: 'log', configure: () => ({ extraArgs: ['--config', config] }) })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http) })
  const stop = async (): Promise<void> => {
    client.destroy()
    await cluster.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await cluster.waitConverged(20_000)
    const session = await client.open({ terminalId: `${tag}-test`, service: 'log' })
    const owner = cluster.agents.find((a) => a.id === session.owner?.id)
    assert.ok(owner !== undefined, 'the session has an owner')
    const writer = new ContinuousWriter(session, tag[0], 5)
    await writer.waitFor(10)
    return { cluster, session, owner, writer, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

// Agents that never cut a peer off (limits.peerBlockMs 0), so that every attack
// reaches them; the next test is about cutting off.
test('a hostile peer on every protocol is refused and counted; the terminal\'s appends keep being acknowledged and none is lost', () => withTimeout((async () => {
  const { session, owner, writer, stop } = await watchedOwner({ peerBlockMs: 0 }, 'hostile')
  try {
    const calm = writer.acked.length
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    console.log(`  before the attack: ${writer.acked.length - calm} appends acknowledged in 2 s`)
    const before = await refused(owner.http)
    const ackedAtStart = writer.acked.length
    const progress: string[] = []
    let acked = writer.acked.length
    const phases = await runAttack(['all', owner.addrs[0], owner.id], (p) => {
      progress.push(`${p.phase} (${p.ms} ms): +${writer.acked.length - acked} acked`)
      acked = writer.acked.length
    })
    const answer = (name: string): Phase => phases.find((p) => p.phase === name) ?? { phase: name, ms: 0 }
    for (const which of ['swim', 'replicate']) assert.is(answer(`${which} oversized`).ended, 'reset', `${which}: an oversized frame resets the stream`)
    assert.ok(Number(answer('peek garbage and flood').answered) > 0, 'peek answered whatever was written on it')
    assert.ok(Number(answer('peek garbage and flood').answeredDuringFlood) > 0, 'peeks answered during a flood of peeks')
    for (let i = 0; i < 50; i++) {
      const now = await refused(owner.http)
      if (['decode', 'type', 'author'].every((r) => (now[`gossip/${r}`] ?? 0) > (before[`gossip/${r}`] ?? 0))) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }

    const after = await refused(owner.http)
    const grew = (key: string): boolean => (after[key] ?? 0) > (before[key] ?? 0)
    const expected = [
      'swim/decode', 'swim/type', 'swim/oversize', 'swim/framing', 'swim/truncated',
      'replicate/decode', 'replicate/type', 'replicate/oversize', 'replicate/framing', 'replicate/truncated',
      'gossip/decode', 'gossip/type', 'gossip/author'
    ]
    for (const key of expected) assert.ok(grew(key), `${key} not counted: ${JSON.stringify(after)}`)
    // Each garbage frame of the flood is either decoded and refused, or dropped
    // by the per-peer frame-rate limit before decoding.
    const decoded = (after['swim/decode'] ?? 0) - (before['swim/decode'] ?? 0)
    assert.ok(decoded >= FLOOD_FRAMES / 2 || grew('limit/message-rate'), `the flood's garbage refused frame by frame or rate-limited: ${JSON.stringify(after)}`)

    const health = await (await fetch(`${owner.http}/v1/health`)).json() as { ok: boolean }
    assert.ok(health.ok, 'the owner still serves')
    assert.ok(owner.running, 'the owner is still running')
    console.log(`  during the attack: ${progress.join('; ')}`)
    assert.ok(writer.acked.length - ackedAtStart >= 10, `only ${writer.acked.length - ackedAtStart} appends acknowledged during the attack: ${progress.join('; ')}`)
    await writer.waitFor(writer.acked.length + 5)
    await writer.stop()
    assert.is(writer.error, null)
    assert.equal(await writer.check(), [], 'every acknowledged append once, in order')
    // With cutting off disabled, a 20,000-frame flood can keep a CPU-starved owner
    // (2 cores, two test files at once) from its heartbeats past ownerTimeoutMs,
    // and a standby then rightly takes over; the appends carry on either way. That
    // a flood does not unseat the owner is asserted below, at the defaults' cutting off.
    if (session.owner?.id !== owner.id) console.log(`  a standby took over during the attack (${owner.name} was starved); appends carried on`)
  } finally {
    await stop()
  }
})()))

// Blocks of 3 s instead of 60 s, to see one end within the test.
const BLOCK_MS = 3_000

test('a peer flooding malformed frames is cut off: hung up on, refused until the block ends, cut off again when it comes back; no member is', () => withTimeout((async () => {
  const { cluster, session, owner, writer, stop } = await watchedOwner({ peerBlockMs: BLOCK_MS }, 'block')
  try {
    const ackedAtStart = writer.acked.length
    let attacker = ''
    const reports: Phase[] = []
    const attack = runAttack(['flood', owner.addrs[0], '12'], (p) => {
      if (p.phase === 'flood-start') attacker = String(p.id)
      reports.push(p)
    })
    const blocks = async (http: string): Promise<{ blocked: number; refusedConnections: number; refusedFrames: number }> => {
      const text = await (await fetch(`${http}/metrics`)).text()
      const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN)
      let refusedFrames = 0
      for (const m of text.matchAll(/^edge_agent_refused_total\{[^}]*\} (\d+)/gm)) refusedFrames += Number(m[1])
      return {
        blocked: value(/^edge_agent_peers_blocked_total (\d+)/m),
        refusedConnections: value(/^edge_agent_refused_connections_total\{reason="blocked"\} (\d+)/m),
        refusedFrames
      }
    }
    const until = async (what: string, ok: () => Promise<boolean>, ms: number): Promise<void> => {
      const end = Date.now() + ms
      while (!(await ok())) {
        if (Date.now() > end) throw new Error(`${what} within ${ms} ms; the attacker reported ${JSON.stringify(reports.slice(-3))}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    await until('a first block', async () => (await blocks(owner.http)).blocked >= 1, 10_000)
    const blockedAt = Date.now()
    // While the block lasts no frame of the attacker reaches the agent: its
    // refusals stop growing, and its dials back are refused by the gater.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const a = await blocks(owner.http)
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    const b = await blocks(owner.http)
    assert.ok(Date.now() - blockedAt < BLOCK_MS, 'both samples inside the first block')
    assert.is(b.blocked, 1, 'one block so far')
    assert.is(b.refusedFrames, a.refusedFrames, `no frame refused while the peer is cut off: ${a.refusedFrames} then ${b.refusedFrames}`)
    assert.ok(b.refusedConnections > a.refusedConnections, `its connections refused meanwhile: ${a.refusedConnections} then ${b.refusedConnections}`)
    // Once the block ends it is let in, floods again, and is cut off again.
    await until('a second block after the first ended', async () => (await blocks(owner.http)).blocked >= 2, BLOCK_MS + 5_000)
    assert.ok(Date.now() - blockedAt >= BLOCK_MS - 100, 'the second block came only after the first ended')
    const phases = await attack
    const done = phases.find((p) => p.phase === 'flood')
    console.log(`  the attacker: ${JSON.stringify(done)}; blocks: ${(await blocks(owner.http)).blocked}`)

    const lines = owner.events.filter((e) => e.event === 'peer-blocked') as unknown as Array<{ peer: string; forMs: number }>
    assert.ok(lines.length >= 2, 'a peer-blocked line per block')
    for (const line of lines) {
      assert.is(line.peer, attacker, 'only the attacker was cut off')
      assert.is(line.forMs, BLOCK_MS)
    }
    for (const agent of cluster.agents.filter((x) => x !== owner)) assert.is((await blocks(agent.http)).blocked, 0, 'the agents not attacked cut nobody off')
    await cluster.waitConverged(10_000)
    assert.ok(writer.acked.length - ackedAtStart >= 20, `appends acknowledged during the attack: ${writer.acked.length - ackedAtStart}`)
    await writer.stop()
    assert.is(writer.error, null)
    assert.equal(await writer.check(), [], 'every acknowledged append once, in order')
    assert.is(session.owner?.id, owner.id, 'no takeover: the owner was never unseated')
  } finally {
    await stop()
  }
})()))

test.run()
