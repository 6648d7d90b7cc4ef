// The per-peer limits on the real network (an agent through the CLI, a raw libp2p
// client on 127.0.0.1): an oversized frame, a flood of frames, too many streams
// and too many records in one exchange are each refused at the boundary, counted
// under their limit in /metrics, and the agent keeps serving.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openRawStreams, writeRawOverLibp2p } from '../../agent/net/client.ts'
import { MAX_INBOUND_STREAMS_PER_PEER, MEMBERSHIP_FRAMES_PER_PEER } from '../../agent/net/constants.ts'
import { encode } from '../../protocol/codec.ts'
import { MAX_FRAME_BYTES } from '../../protocol/limits.ts'
import { AgentProcess } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 60_000
const dir = mkdtempSync(join(tmpdir(), 'edge-limits-'))
let target: AgentProcess | null = null
let full: AgentProcess | null = null

function withTimeout<T> (promise: Promise<T>): Promise<T> {
  return within(promise, TIMEOUT_MS)
}

function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) { out.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80) }
  out.push(n)
  return out
}

const framed = (payload: Uint8Array): number[] => [...varint(payload.length), ...payload]

async function limits (http: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${http}/metrics`)).text()
  const counts: Record<string, number> = {}
  for (const m of text.matchAll(/^edge_agent_limit_exceeded_total\{limit="([a-z-]+)"\} (\d+)/gm)) counts[m[1]] = Number(m[2])
  return counts
}

async function agent (): Promise<AgentProcess> {
  target ??= await AgentProcess.start({ name: 'limits', dataDir: join(dir, 'a'), profile: 'local', services: 'log', logLevel: 'warn' })
  return target
}

async function stillServing (a: AgentProcess): Promise<void> {
  const health = await (await fetch(`${a.http}/v1/health`)).json() as { ok: boolean; id: string }
  assert.equal({ ok: health.ok, id: health.id }, { ok: true, id: a.id })
  assert.ok(a.running)
}

test('a frame over MAX_FRAME_BYTES ends the stream and is counted as frame-size', () => withTimeout((async () => {
  const a = await agent()
  const before = await limits(a.http)
  const ended = await writeRawOverLibp2p(a.addrs[0], 'default', new Uint8Array(varint(MAX_FRAME_BYTES + 1)), 10_000)
  assert.is(ended, 'reset')
  assert.is((await limits(a.http))['frame-size'], before['frame-size'] + 1)
  await stillServing(a)
})()))

test('a flood of frames from one peer is cut to its rate and counted as message-rate', () => withTimeout((async () => {
  const a = await agent()
  const before = await limits(a.http)
  // The bucket refills while the agent reads: ten times the burst over it, so
  // that only a box taking over 20 s to read 80 KiB of frames would not drop any.
  const frames = MEMBERSHIP_FRAMES_PER_PEER.burst + 40_000
  const bytes = new Uint8Array(frames * 2)
  for (let i = 0; i < frames; i++) bytes.set([1, 0], i * 2)
  await writeRawOverLibp2p(a.addrs[0], 'default', bytes, 10_000, undefined, true)
  assert.ok((await limits(a.http))['message-rate'] > before['message-rate'])
  await stillServing(a)
})()))

test('streams beyond the per-peer limit are reset and counted as streams-per-peer', () => withTimeout((async () => {
  const a = await agent()
  const before = await limits(a.http)
  const extra = 4
  // Held 2 s: time for every reset to arrive on a loaded box.
  const result = await openRawStreams(a.addrs[0], 'default', MAX_INBOUND_STREAMS_PER_PEER + extra, 2_000)
  assert.is(result.accepted, MAX_INBOUND_STREAMS_PER_PEER)
  assert.is(result.refused, extra)
  assert.is((await limits(a.http))['streams-per-peer'], before['streams-per-peer'] + extra)
  await stillServing(a)
})()))

test('an exchange with more records than allowed is refused and counted as records-per-exchange', () => withTimeout((async () => {
  const a = await agent()
  const before = await limits(a.http)
  const frame = encode({ type: 'gossip', updates: [] })
  // The updates count is the frame's last byte: claim 257 (over MAX_UPDATES).
  const tooMany = new Uint8Array([...frame.slice(0, frame.length - 1), 0x81, 0x02])
  await writeRawOverLibp2p(a.addrs[0], 'default', new Uint8Array(framed(tooMany)), 10_000, undefined, true)
  assert.is((await limits(a.http))['records-per-exchange'], before['records-per-exchange'] + 1)
  await stillServing(a)
})()))

test('an agent at its maximum of sessions answers 503 naming the setting, and counts it', () => withTimeout((async () => {
  const config = join(dir, 'max.json')
  writeFileSync(config, JSON.stringify({ sessions: { maxSessions: 1 } }))
  full = await AgentProcess.start({ name: 'full', dataDir: join(dir, 'full'), profile: 'local', services: 'log', logLevel: 'warn', extraArgs: ['--replicas', '0', '--config', config] })
  const open = async (): Promise<{ status: number; body: { error?: string } }> => {
    const response = await fetch(`${full!.http}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ terminalId: 't', service: 'log' }) })
    return { status: response.status, body: await response.json() as { error?: string } }
  }
  assert.is((await open()).status, 201)
  const refused = await open()
  assert.is(refused.status, 503)
  assert.match(String(refused.body.error), 'this agent holds its maximum of 1 sessions (sessions.maxSessions)')
  assert.is((await limits(full.http))['sessions-per-agent'], 1)
  await stillServing(full)
})()))

test.after(async () => {
  if (target?.running === true) await target.stop().catch(() => {})
  if (full?.running === true) await full.stop().catch(() => {})
  rmSync(dir, { recursive: true, force: true })
})

test.run()
