// A hostile peer on the real network: garbage, wrong-type frames and forged
// records on the membership stream. The agent refuses each one, counts it in
// /metrics, keeps its table intact and keeps serving.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { writeRawOverLibp2p } from '../../agent/net/client.ts'
import { encode, encodeRecord } from '../../protocol/codec.ts'
import type { NodeRecord } from '../../protocol/messages.ts'
import { LocalCluster } from '../../sim/processes.ts'

const TIMEOUT_MS = 60_000

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

async function withTimeout<T> (promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<T>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
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

test.run()
