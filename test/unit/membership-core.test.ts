// The membership state machine stepped by hand: one input, the effects out.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Effect, Input } from '../../agent/core/io.ts'
import { SeededRandom } from '../../agent/core/random.ts'
import { membershipProfile } from '../../agent/membership/config.ts'
import { Membership } from '../../agent/membership/membership.ts'
import { encodeAccusation, encodeRecord } from '../../protocol/codec.ts'
import type { Accusation, NodeRecord, Update } from '../../protocol/messages.ts'
import { SimAuth } from '../../sim/auth.ts'

const config = membershipProfile('lan')

function recordOf (id: string, incarnation = 1, seq = 0): NodeRecord {
  return {
    id, addrs: [`/sim/${id}`], ip: '10.0.0.1', http: '', services: [{ name: 'log', version: '1', capacity: 10 }],
    load: { score: 0, sessions: 0, elu: 0, cpu: 0 }, position: null, region: '', zone: '', incarnation, seq, status: 'alive'
  }
}

function signedRecord (record: NodeRecord, signer = record.id): Update {
  const bytes = encodeRecord(record)
  return { kind: 'record', signed: { record, bytes, sig: new SimAuth(signer).sign(bytes) } }
}

function signedAccusation (accusation: Accusation, signer = accusation.accuser): Update {
  const bytes = encodeAccusation(accusation)
  return { kind: 'accusation', signed: { accusation, bytes, sig: new SimAuth(signer).sign(bytes) } }
}

function core (id = 'me', incarnation = 1, seed = 1): Membership {
  const { seq: _seq, status: _status, ...self } = recordOf(id, incarnation)
  return new Membership({ self, config, random: new SeededRandom(seed), auth: new SimAuth(id), nowMs: 0 })
}

// Steps the core; every ping it sends is answered 1 ms later, as a healthy
// member would. Returns the effects of both.
function answered (m: Membership, input: Input): Effect[] {
  const effects = m.step(input)
  const out = [...effects]
  for (const e of effects) {
    if (e.kind !== 'send' || e.message.type !== 'ping') continue
    out.push(...m.step({ kind: 'receive', nowMs: input.nowMs + 1, from: e.to, channel: 'direct', message: { type: 'ack', seq: e.message.seq, updates: [] } }))
  }
  return out
}

// Ticks the core at every wake-up it asks for, up to `toMs`, as a host would.
function advance (m: Membership, toMs: number): Effect[] {
  const out: Effect[] = []
  for (let wake = m.nextWakeMs(); wake <= toMs; wake = m.nextWakeMs()) out.push(...answered(m, { kind: 'tick', nowMs: wake }))
  return out
}

function events (effects: Effect[]): string[] {
  return effects.filter((e) => e.kind === 'event').map((e) => e.kind === 'event' ? e.event.type : '')
}

function gossip (from: string, updates: Update[], nowMs = 10, channel: 'gossip' | 'direct' = 'gossip'): Input {
  return { kind: 'receive', nowMs, from, channel, message: { type: 'gossip', updates } }
}

test('a record signed by its author joins the table', () => {
  const m = core()
  const out = m.step(gossip('a', [signedRecord(recordOf('a'))]))
  assert.ok(events(out).includes('member-joined'))
  assert.is(m.statusOf('a'), 'alive')
})

test('gossip whose signed origin is not the record\'s author is refused: nobody speaks for another', () => {
  const m = core()
  const out = m.step(gossip('mallory', [signedRecord(recordOf('a'))]))
  assert.equal(events(out), ['rejected'])
  assert.is(m.statusOf('a'), null)
})

test('a relayed record with a bad signature is refused', () => {
  const m = core()
  const forged = signedRecord(recordOf('a'), 'mallory')
  const out = m.step(gossip('b', [forged], 10, 'direct'))
  assert.ok(events(out).includes('rejected'))
  assert.is(m.statusOf('a'), null)
})

test('a tampered record byte breaks its signature', () => {
  const m = core()
  const update = signedRecord(recordOf('a'))
  if (update.kind !== 'record') throw new Error('unreachable')
  const bytes = update.signed.bytes.slice()
  bytes[bytes.length - 2] ^= 1
  const tampered: Update = { kind: 'record', signed: { ...update.signed, record: { ...update.signed.record, seq: 1 }, bytes } }
  const out = m.step(gossip('b', [tampered], 10, 'direct'))
  assert.ok(events(out).includes('rejected'))
})

test('an accusation in someone else\'s name is refused', () => {
  const m = core()
  m.step(gossip('a', [signedRecord(recordOf('a'))]))
  const forged = signedAccusation({ kind: 'dead', subject: 'a', incarnation: 1, accuser: 'b' }, 'mallory')
  const out = m.step(gossip('c', [forged], 20, 'direct'))
  assert.ok(events(out).includes('rejected'))
  assert.is(m.statusOf('a'), 'alive')
})

test('a suspicion about ourselves is refuted: incarnation raised, persisted, published, told to the accuser', () => {
  const m = core('me', 4)
  const out = m.step(gossip('b', [signedAccusation({ kind: 'suspect', subject: 'me', incarnation: 4, accuser: 'b' })], 10, 'direct'))
  assert.is(m.incarnation, 5)
  const persist = out.find((e) => e.kind === 'persist')
  assert.equal(persist, { kind: 'persist', record: { kind: 'incarnation', incarnation: 5 } })
  assert.ok(out.indexOf(persist as Effect) < out.findIndex((e) => e.kind === 'publish'), 'persisted before anyone hears of it')
  assert.ok(out.some((e) => e.kind === 'send' && e.to === 'b' && e.message.type === 'gossip'))
  assert.ok(events(out).includes('refuted'))
})

test('a suspicion is shown to the suspect before its deadline, also once confirmations have shortened it', () => {
  const m = core()
  for (const id of ['a', 'b', 'c', 'd', 'e']) m.step(gossip(id, [signedRecord(recordOf(id))], 0, 'direct'))
  const accuse = (accuser: string, nowMs: number): Effect[] => m.step(gossip(accuser, [signedAccusation({ kind: 'suspect', subject: 'a', incarnation: 1, accuser })], nowMs))
  const shownAt: number[] = []
  const watch = (effects: Effect[], nowMs: number): void => {
    for (const e of effects) if (e.kind === 'send' && e.to === 'a' && e.message.type === 'gossip' && e.message.updates.some((u) => u.kind === 'accusation')) shownAt.push(nowMs)
  }
  watch(accuse('b', 10), 10)
  // Two more accusers: the suspicion is at its minimum, 500 ms from its start.
  watch(accuse('c', 20), 20)
  watch(accuse('d', 30), 30)
  let deadAt = Infinity
  for (let wake = m.nextWakeMs(); wake <= 2_000 && deadAt === Infinity; wake = m.nextWakeMs()) {
    watch(m.step({ kind: 'tick', nowMs: wake }), wake)
    if (m.statusOf('a') === 'dead') deadAt = wake
  }
  assert.is(deadAt, 10 + config.suspicionMinMs, 'the confirmed suspicion ran its minimum')
  assert.ok(shownAt.some((t) => t > 30 && t < deadAt), `shown to the suspect at ${shownAt.join(', ')} ms, before ${deadAt}`)
})

test('a stale accusation about ourselves is answered with our current record', () => {
  const m = core('me', 6)
  const out = m.step(gossip('c', [signedAccusation({ kind: 'suspect', subject: 'me', incarnation: 5, accuser: 'b' })], 10, 'direct'))
  assert.is(m.incarnation, 6)
  const answer = out.find((e) => e.kind === 'send' && e.to === 'c' && e.message.type === 'gossip')
  assert.ok(answer !== undefined && answer.kind === 'send' && answer.message.type === 'gossip' &&
    answer.message.updates[0].kind === 'record' && answer.message.updates[0].signed.record.incarnation === 6)
})

test('a stale accusation is answered again, inside the rate limit, once our record has moved on', () => {
  const m = core('me', 6)
  const recordSentTo = (effects: Effect[], to: string): number | null => {
    for (const e of effects) {
      if (e.kind !== 'send' || e.to !== to || e.message.type !== 'gossip') continue
      const update = e.message.updates[0]
      if (update?.kind === 'record') return update.signed.record.incarnation
    }
    return null
  }
  const stale = (incarnation: number, nowMs: number): Input => gossip('c', [signedAccusation({ kind: 'suspect', subject: 'me', incarnation, accuser: 'b' })], nowMs, 'direct')
  assert.is(recordSentTo(m.step(stale(5, 10)), 'c'), 6)
  assert.is(recordSentTo(m.step(stale(5, 20)), 'c'), null, 'the same answer is not repeated within the rate limit')
  // Someone else suspects our current incarnation: we refute, to 7.
  m.step(gossip('d', [signedAccusation({ kind: 'suspect', subject: 'me', incarnation: 6, accuser: 'd' })], 30, 'direct'))
  assert.is(m.incarnation, 7)
  // c still holds the suspicion of 6 (it missed the refutation): it is told now,
  // not a probe period later, when its suspicion may have run out.
  assert.is(recordSentTo(m.step(stale(6, 40)), 'c'), 7)
  // c shows its suspicion again a third of the way to its deadline (at least
  // suspicionMinMs / 3 later): that showing is answered too, in case the first
  // answer was lost.
  const again = 40 + Math.ceil(config.suspicionMinMs / 3)
  assert.is(recordSentTo(m.step(stale(6, again)), 'c'), 7, `shown again at ${again} ms`)
})

// Ticks the core at each wake-up until it sends its first ping (within 5 s);
// returns the ping and the time it went out.
function firstPing (m: Membership): { ping: Effect & { kind: 'send' }; seq: number; nowMs: number } {
  for (let now = 0; now < 5_000;) {
    now = m.nextWakeMs()
    const ping = m.step({ kind: 'tick', nowMs: now }).find((e) => e.kind === 'send' && e.message.type === 'ping')
    if (ping !== undefined && ping.kind === 'send' && ping.message.type === 'ping') return { ping, seq: ping.message.seq, nowMs: now }
  }
  throw new Error('no ping within 5 s')
}

// Two boxes given one data directory sign with one key. A record of our id
// that we did not sign can be an earlier life's (state lost): stepped past, as
// before, which puts us above it. One whose incarnation rises above ours after
// that is being raised by another signer now: said once, no longer stepped
// past, or the two would raise incarnations without end.
test('a record of our id raised above ours after we stepped past one is an identity conflict: said once, not refuted', () => {
  const m = core('me', 1)
  const other = (incarnation: number, seq = 0): Update => signedRecord({ ...recordOf('me', incarnation, seq), ip: '10.0.0.9', addrs: ['/sim/clone'] })
  const first = m.step(gossip('a', [other(3)], 10, 'direct'))
  assert.ok(events(first).includes('refuted'))
  assert.is(m.incarnation, 4)
  // Our own record, or an older one of ours, echoed back: nothing.
  assert.equal(events(m.step(gossip('a', [other(2)], 20, 'direct'))), [])
  const second = m.step(gossip('b', [other(5)], 30, 'direct'))
  const conflict = second.find((e) => e.kind === 'event' && e.event.type === 'identity-conflict')
  assert.ok(conflict !== undefined && conflict.kind === 'event' && conflict.event.type === 'identity-conflict')
  assert.is(conflict.event.record.ip, '10.0.0.9')
  assert.is(conflict.event.from, 'b')
  assert.is(m.incarnation, 4, 'not refuted again')
  assert.equal(events(m.step(gossip('b', [other(6)], 40, 'direct'))), [], 'said once')
  // Equal version, other bytes: not ours either; stepped past.
  const n = core('me', 1)
  assert.ok(events(n.step(gossip('a', [other(1)], 10, 'direct'))).includes('refuted'))
  assert.is(n.incarnation, 2)
  // An earlier life seen out of order (a lagging member's older record first):
  // its later records reach our incarnation at most, and are stepped past too.
  assert.ok(events(n.step(gossip('a', [other(2, 1)], 20, 'direct'))).includes('refuted'))
  assert.is(n.incarnation, 3)
  assert.ok(events(n.step(gossip('a', [other(4)], 30, 'direct'))).includes('identity-conflict'), 'then raised above ours: another signer')
})

test('two different records of one member at one version, both signed with its key: said, and both sent to that member', () => {
  const m = core()
  m.step(gossip('x', [signedRecord(recordOf('x'))]))
  // The same record again (a duplicate): nothing.
  assert.equal(events(m.step(gossip('x', [signedRecord(recordOf('x'))], 20))), [])
  const clone = signedRecord({ ...recordOf('x'), ip: '10.0.0.9', addrs: ['/sim/clone'] })
  const out = m.step(gossip('y', [clone], 30, 'direct'))
  const shared = out.find((e) => e.kind === 'event' && e.event.type === 'identity-shared')
  assert.ok(shared !== undefined && shared.kind === 'event' && shared.event.type === 'identity-shared')
  assert.equal(shared.event.records.map((r) => r.ip).sort(), ['10.0.0.1', '10.0.0.9'])
  const told = out.find((e) => e.kind === 'send' && e.to === 'x' && e.message.type === 'gossip')
  assert.ok(told !== undefined && told.kind === 'send' && told.message.type === 'gossip')
  assert.is(told.message.updates.length, 2)
  // At most once per probe period per member.
  assert.equal(events(m.step(gossip('y', [clone], 40, 'direct'))), [])
  assert.ok(events(m.step(gossip('y', [clone], 40 + config.probeIntervalMs, 'direct'))).includes('identity-shared'))
  // A forged one (not signed with x's key) is refused, not taken for a clone.
  const forged = signedRecord({ ...recordOf('x'), ip: '10.0.0.8' }, 'mallory')
  const refused = events(m.step(gossip('y', [forged], 50 + 2 * config.probeIntervalMs, 'direct')))
  assert.ok(refused.includes('rejected') && !refused.includes('identity-shared'), refused.join(', '))
})

test('a probe whose ack is read right after a local stall does not fail', () => {
  const m = core()
  m.step(gossip('a', [signedRecord(recordOf('a'))], 0))
  const { seq } = firstPing(m)
  // The event loop stalls for 500 ms past the core's next wake-up (the ping's
  // deadline or the next probe): the overdue timer runs first, then the ack.
  const stalledUntil = m.nextWakeMs() + 500
  const late = m.step({ kind: 'tick', nowMs: stalledUntil })
  assert.ok(events(late).includes('stall'))
  assert.ok(m.health > 0, 'local health degraded by the stall')
  assert.not.ok(late.some((e) => e.kind === 'send' && e.message.type === 'ping-req'), 'no indirect probes for a stall')
  const acked = m.step({ kind: 'receive', nowMs: stalledUntil + 1, from: 'a', channel: 'direct', message: { type: 'ack', seq, updates: [] } })
  assert.ok(acked.some((e) => e.kind === 'event' && e.event.type === 'probe' && e.event.result === 'ack'))
})

test('a direct message from the member under probe answers the probe: lost pings and relays cannot accuse it later', () => {
  const m = core()
  for (const id of ['a', 'b', 'c', 'd']) m.step(gossip(id, [signedRecord(recordOf(id))], 0, 'direct'))
  const { ping, nowMs: now } = firstPing(m)
  const target = ping.to
  // Our ping (or its ack) is lost; the target's own probe of us arrives.
  const out = m.step({ kind: 'receive', nowMs: now + 50, from: target, channel: 'direct', message: { type: 'ping', seq: 99, updates: [] } })
  assert.ok(out.some((e) => e.kind === 'event' && e.event.type === 'probe' && e.event.target === target && e.event.result === 'ack'), 'the probe ends as acknowledged')
  // No indirect probes, and no failure once every window of that probe is past.
  const later: Effect[] = []
  for (let wake = m.nextWakeMs(); wake <= now + 3 * config.probeIntervalMs; wake = m.nextWakeMs()) later.push(...m.step({ kind: 'tick', nowMs: wake }))
  assert.not.ok(later.some((e) => e.kind === 'send' && e.message.type === 'ping-req' && e.message.target === target && e.to !== target), 'no ping-req about the target')
  assert.not.ok(later.some((e) => e.kind === 'event' && e.event.type === 'probe' && e.event.target === target && e.event.result === 'failed'), 'no failed probe of the target')
  assert.is(m.statusOf(target), 'alive')
})

test('a refused dial ends the probe one indirect window later, whatever the first-contact grace', () => {
  const m = core()
  for (const id of ['a', 'b', 'c', 'd']) m.step(gossip(id, [signedRecord(recordOf(id))], 0))
  const { ping, nowMs: now } = firstPing(m)
  const target = ping.to
  // Never contacted, so the direct wait would be probeTimeoutMs + firstContactGraceMs;
  // the transport reports the dial refused 5 ms in.
  const indirect = m.step({ kind: 'command', nowMs: now + 5, command: { type: 'unreachable', peer: target } })
  assert.ok(indirect.some((e) => e.kind === 'send' && e.message.type === 'ping-req'), 'indirect probes at once')
  const window = config.probeIntervalMs - config.probeTimeoutMs
  assert.is(m.nextWakeMs(), now + 5 + window)
  const out = m.step({ kind: 'tick', nowMs: now + 5 + window })
  assert.ok(out.some((e) => e.kind === 'event' && e.event.type === 'member-status' && e.event.id === target && e.event.status === 'suspect'))
})

test('a relay whose ping to the target is refused starts no probe of its own (no cascade); a refused dial outside a relay does', () => {
  const m = core()
  for (const id of ['a', 'b', 'c', 'x']) m.step(gossip(id, [signedRecord(recordOf(id))], 0))
  // 'a' asks us to probe 'x' for it: we ping 'x'.
  const relayed = m.step({ kind: 'receive', nowMs: 10, from: 'a', channel: 'direct', message: { type: 'ping-req', seq: 7, target: 'x', updates: [] } })
  assert.ok(relayed.some((e) => e.kind === 'send' && e.to === 'x' && e.message.type === 'ping'))
  // The dial to 'x' is refused: 'a' is probing it already; we add nothing.
  const refused = m.step({ kind: 'command', nowMs: 15, command: { type: 'unreachable', peer: 'x' } })
  assert.not.ok(refused.some((e) => e.kind === 'send' && (e.message.type === 'ping' || e.message.type === 'ping-req')), 'no probe of our own, no ping-reqs')
  // A refused dial to a member we are not relaying to (say, a push-pull) is a hint worth a probe.
  const other = m.step({ kind: 'command', nowMs: 20, command: { type: 'unreachable', peer: 'b' } })
  assert.ok(other.some((e) => e.kind === 'send' && e.to === 'b' && e.message.type === 'ping'))
})

test('a probe that fails after its target\'s record moved on (refuted, restarted) accuses nobody', () => {
  const m = core()
  for (const id of ['a', 'b', 'c', 'd']) m.step(gossip(id, [signedRecord(recordOf(id))], 0))
  const { ping, seq: staleSeq, nowMs: now } = firstPing(m)
  const target = ping.to
  // The target restarts with a new incarnation while our probe of the old one is out.
  m.step(gossip(target, [signedRecord(recordOf(target, 2))], now + 1))
  const out: Effect[] = []
  for (let wake = m.nextWakeMs(); wake <= now + (config.probeIntervalMs + config.firstContactGraceMs) * 2; wake = m.nextWakeMs()) {
    // Only the stale probe goes unanswered; later probes are acked.
    const effects = m.step({ kind: 'tick', nowMs: wake })
    out.push(...effects)
    for (const e of effects) {
      if (e.kind === 'send' && e.message.type === 'ping' && e.message.seq !== staleSeq) {
        out.push(...m.step({ kind: 'receive', nowMs: wake + 1, from: e.to, channel: 'direct', message: { type: 'ack', seq: e.message.seq, updates: [] } }))
      }
    }
  }
  assert.ok(out.some((e) => e.kind === 'event' && e.event.type === 'probe' && e.event.target === target && e.event.result === 'failed'), 'the stale probe failed')
  assert.not.ok(out.some((e) => e.kind === 'event' && e.event.type === 'member-status' && e.event.id === target && e.event.status === 'suspect'), 'no suspicion of the new incarnation')
})

test('a backlog of messages read after one stall counts as one stall', () => {
  const m = core()
  for (const id of ['a', 'b', 'c']) m.step(gossip(id, [signedRecord(recordOf(id))], 0))
  advance(m, 1_000)
  const wake = m.nextWakeMs()
  // 400 ms late, then ten messages in a burst, 1 ms apart, before any tick.
  let stalls = 0
  for (let i = 0; i < 10; i++) {
    const out = m.step({ kind: 'receive', nowMs: wake + 400 + i, from: 'a', channel: 'direct', message: { type: 'gossip', updates: [] } })
    stalls += events(out).filter((e) => e === 'stall').length
  }
  assert.is(stalls, 1)
  assert.is(m.health, 1)
  assert.ok(m.nextWakeMs() > wake + 409, 'due timers ran on the way')
})

test('a confirmation that moves a suspicion\'s deadline into the past ends it at once, and is not taken for a stall', () => {
  const m = core()
  const ids = ['a', 'b', 'c', 'd', 'x']
  for (const id of ids) m.step(gossip(id, [signedRecord(recordOf(id))], 0))
  advance(m, 1_000)
  // Suspected at 1,000: 6 live members, so 2 confirmations are expected and the
  // timeout runs from 1,500 ms (none) down to 500 ms (two).
  m.step(gossip('a', [signedAccusation({ kind: 'suspect', subject: 'x', incarnation: 1, accuser: 'a' })], 1_000))
  advance(m, 1_600)
  assert.is(m.statusOf('x'), 'suspect')
  // Two confirmations at 1,600, in one message (a table exchange can carry
  // both): the deadline is now 1,500, already behind us. (Had they come in two
  // steps, the first would have moved the showing to the suspect to 1,600, and
  // the second step, with that timer due, would have ended the suspicion itself.)
  m.step(gossip('b', [
    signedAccusation({ kind: 'suspect', subject: 'x', incarnation: 1, accuser: 'b' }),
    signedAccusation({ kind: 'suspect', subject: 'x', incarnation: 1, accuser: 'c' })
  ], 1_600, 'direct'))
  assert.is(m.nextWakeMs(), 1_600, 'the host is asked to tick now, not at a moment already past')
  // The host ticks as soon as it can, a few ms later.
  const out = m.step({ kind: 'tick', nowMs: 1_603 })
  assert.not.ok(events(out).includes('stall'), 'not a stall: our own deadline moved, the event loop did not')
  assert.is(m.health, 0)
  assert.ok(events(out).includes('suspicion-expired'))
  assert.is(m.statusOf('x'), 'dead')
})

test('cut off from everyone (no ack, no nack: health at its worst), an agent still probes, and suspects, every member', () => {
  const m = core()
  const ids = ['a', 'b', 'c']
  // Heard directly: connected, so a probe gets no first-contact grace.
  for (const id of ids) m.step(gossip(id, [signedRecord(recordOf(id))], 0, 'direct'))
  // Tick at every wake-up for 15 s and answer nothing. Each failed probe
  // raises local health, which stretches the next probes' timeouts and spaces
  // them out: the agent must not spend them all on the same member.
  const probed = new Set<string>()
  for (let wake = m.nextWakeMs(); wake <= 15_000; wake = m.nextWakeMs()) {
    for (const e of m.step({ kind: 'tick', nowMs: wake })) {
      if (e.kind === 'send' && e.message.type === 'ping') probed.add(e.to)
    }
  }
  assert.ok(m.health > 1, `health ${m.health}`)
  assert.equal([...probed].sort(), ids)
  for (const id of ids) assert.ok(m.statusOf(id) === 'suspect' || m.statusOf(id) === 'dead', `${id}: ${String(m.statusOf(id))}`)
})

test('cut off, an agent probes a different member each period until its view changes, and declares them all dead in time', () => {
  for (let seed = 1; seed <= 30; seed++) for (const ids of [['a', 'b', 'c'], ['a', 'b', 'c', 'd', 'e'], ['m', 'n', 'o', 'p', 'q', 'r', 's']]) {
    const m = core('me', 1, seed)
    for (const id of ids) m.step(gossip(id, [signedRecord(recordOf(id))], 0, 'direct'))
    const probes: Array<{ to: string, atMs: number }> = []
    const deadAt = new Map<string, number>()
    for (let wake = m.nextWakeMs(); wake <= 60_000 && deadAt.size < ids.length; wake = m.nextWakeMs()) {
      // A period's probe is its first ping; a second warms up the connection
      // to the next period's target (nobody here ever answers).
      const sent = m.step({ kind: 'tick', nowMs: wake }).filter((e) => e.kind === 'send' && e.message.type === 'ping')
      if (sent.length > 0 && sent[0].kind === 'send') probes.push({ to: sent[0].to, atMs: wake })
      for (const id of ids) if (!deadAt.has(id) && m.statusOf(id) === 'dead') deadAt.set(id, wake)
    }
    const trail = `seed ${seed}: probes ${probes.map((p) => p.to).join(' ')}`
    // Until a verdict changes the ring, each period's target is another member
    // (its rotation), poor health or not: no probe is spent on a member just probed.
    const firstVerdictMs = Math.min(...deadAt.values())
    const before = probes.filter((p) => p.atMs < firstVerdictMs).map((p) => p.to)
    assert.is(new Set(before).size, before.length, trail)
    assert.is(new Set(probes.map((p) => p.to)).size, ids.length, trail)
    assert.is(deadAt.size, ids.length, `seed ${seed}: declared dead: ${[...deadAt.keys()].join(', ')}`)
    // Slow to accuse all the same: each failed probe without nacks raises local
    // health, which stretches the next probes' timeouts (by health + 1), and a
    // suspicion with no confirmation runs its maximum. With 3 others, the lan
    // profile's numbers: the last verdict at 9 s (12.75 s when an agent in poor
    // health also sat out periods).
    const lastMs = Math.max(...deadAt.values())
    if (ids.length === 3) assert.ok(lastMs >= 6_000 && lastMs <= 10_000, `seed ${seed}: last verdict at ${lastMs} ms`)
  }
})

test('a leave publishes a left record and tells members directly, then the core goes quiet', () => {
  const m = core()
  for (const id of ['a', 'b', 'c']) m.step(gossip(id, [signedRecord(recordOf(id))], 0))
  const out = m.step({ kind: 'command', nowMs: 100, command: { type: 'leave' } })
  const published = out.find((e) => e.kind === 'publish')
  assert.ok(published !== undefined && published.kind === 'publish' && published.message.type === 'gossip' &&
    published.message.updates[0].kind === 'record' && published.message.updates[0].signed.record.status === 'left')
  assert.is(out.filter((e) => e.kind === 'send').length, 3)
  assert.ok(events(out).includes('left'))
  assert.is(m.nextWakeMs(), Infinity)
  assert.equal(m.step({ kind: 'tick', nowMs: 10_000 }), [])
})

test('load moves below the threshold are not published; larger ones are, at most once per recordMinIntervalMs, and never piggybacked', () => {
  const m = core()
  m.step({ kind: 'command', nowMs: 0, command: { type: 'join', peers: [] } })
  m.step(gossip('a', [signedRecord(recordOf('a'))], 0))
  advance(m, 2_000)
  const small = answered(m, { kind: 'command', nowMs: 2_000, command: { type: 'update-self', patch: { load: { score: 0.01, sessions: 0, elu: 0.01, cpu: 0.01 } } } })
  assert.equal(small, [])
  // The join published the record at 0: a load change may go out once the limit is past.
  const limitMs = config.recordMinIntervalMs
  const t1 = limitMs + 1_000
  advance(m, t1)
  const big = answered(m, { kind: 'command', nowMs: t1, command: { type: 'update-self', patch: { load: { score: 0.5, sessions: 0, elu: 0.5, cpu: 0.1 } } } })
  assert.is(big.filter((e) => e.kind === 'publish').length, 1)
  const soon = answered(m, { kind: 'command', nowMs: t1 + 100, command: { type: 'update-self', patch: { load: { score: 0.9, sessions: 0, elu: 0.9, cpu: 0.1 } } } })
  assert.is(soon.filter((e) => e.kind === 'publish').length, 0, 'rate-limited')
  const later = advance(m, t1 + limitMs - 1)
  assert.is(later.filter((e) => e.kind === 'publish').length, 0, `not before ${limitMs} ms`)
  const due = advance(m, t1 + limitMs + 100)
  assert.is(due.filter((e) => e.kind === 'publish').length, 1, 'published when the limit allows')
  assert.is(m.record.load.score, 0.9)
  const pings = later.filter((e) => e.kind === 'send' && e.message.type === 'ping')
  assert.ok(pings.length >= 5, `probes ran (${pings.length})`)
  const ownOnPings = pings.flatMap((e) => e.kind === 'send' && e.message.type === 'ping' ? e.message.updates : [])
    .filter((u) => u.kind === 'record' && u.signed.record.id === 'me')
  assert.is(ownOnPings.length, 0, 'load changes are not piggybacked')
})

test('a data change (services) is published at once', () => {
  const m = core()
  m.step({ kind: 'command', nowMs: 0, command: { type: 'join', peers: [] } })
  const out = m.step({ kind: 'command', nowMs: 10, command: { type: 'update-self', patch: { services: [{ name: 'kv', version: '2', capacity: 5 }] } } })
  assert.is(out.filter((e) => e.kind === 'publish').length, 1)
  assert.is(m.record.seq, 1)
})

test('directory().joining: from a join with bootstrap addresses (resolved or not) until another member\'s record arrives; never without them', () => {
  const lone = core()
  lone.step({ kind: 'command', nowMs: 0, command: { type: 'join', peers: [] } })
  assert.is(lone.directory().joining(), false, 'no bootstrap: the first agent of its cluster, alone by design')
  const m = core()
  m.step({ kind: 'command', nowMs: 0, command: { type: 'join', peers: [], bootstrapping: true } })
  assert.is(m.directory().joining(), true, 'bootstrap addresses given, none resolved yet')
  m.step({ kind: 'command', nowMs: 100, command: { type: 'join', peers: ['b'] } })
  assert.is(m.directory().joining(), true, 'resolved, but nobody has answered')
  advance(m, 5_000)
  assert.is(m.directory().joining(), true, 'still nobody')
  m.step(gossip('b', [signedRecord(recordOf('b'))], 5_001, 'direct'))
  assert.is(m.directory().joining(), false, 'b\'s record arrived')
  assert.is(m.statusOf('b'), 'alive')
})

test.run()
