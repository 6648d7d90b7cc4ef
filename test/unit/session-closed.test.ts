// An owner that missed its session's close. Cut off while a later epoch's owner
// closed the session, it comes back to members that forgot it. Two faults a
// chaos sweep with closes found (README, "Closing"):
//  - a member that had held the owner's entries answered "nothing held", and
//    the owner took that for an ack: its lease stayed valid, and it served
//    reads of the closed session from its stale state, for good (14 of 200
//    seeds, SEED=145 among them);
//  - a member that had never acked the owner was sent the session from its
//    create entry and took it as a new session: the owner had its majority
//    back and acknowledged deltas in an epoch already succeeded (SEED=517).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeededRandom } from '../../agent/core/random.ts'
import { onAck, leaseValid } from '../../agent/sessions/owner.ts'
import { BUILT_IN_SERVICES } from '../../agent/sessions/services.ts'
import { CLOSED_REMEMBERED_MS } from '../../agent/sessions/closed.ts'
import { Sessions } from '../../agent/sessions/sessions.ts'
import type { SessionEffect } from '../../agent/sessions/types.ts'
import type { SessionAppend, SessionAppendAck, SessionMessage } from '../../protocol/messages.ts'
import { FakeCtx, FakeDirectory, GROUP, INFO, LAN, SESSION, configEntry, createEntry, deltaEntry, nodeRecord, ownerGroup, standby } from './session-fixtures.ts'
import { CLOSED_SESSION, UNKNOWN_SESSION, onVote, watchOwner } from '../../agent/sessions/election.ts'
import { WITNESS_PROBE_OWNER_TIMEOUTS } from '../../agent/sessions/replica.ts'

// What a member answers when it knows nothing of the session.
function nothingHeld (epoch: number, seq: number): SessionAppendAck {
  return { type: 'session-append-ack', sessionId: SESSION, epoch, seq, ok: false, matchIndex: 0, lastIndex: 0 }
}

test('an owner whose members answer "nothing held" after holding its entries: no lease from them, and it steps down once no majority holds the session', () => {
  const { ctx, r } = ownerGroup()
  assert.ok(leaseValid(ctx, r))
  // Much later (the lease has run out), B and C answer a heartbeat with nothing held.
  ctx.now += 10 * LAN.ownerTimeoutMs
  assert.not.ok(leaseValid(ctx, r))
  onAck(ctx, r, 'B', nothingHeld(1, 99))
  assert.not.ok(leaseValid(ctx, r), 'a member that forgot the session renews no lease')
  assert.is(r.role, 'owner', 'one of three forgetting it leaves a majority')
  onAck(ctx, r, 'C', nothingHeld(1, 100))
  assert.is.not(r.role, 'owner', 'two of three: no majority holds it, the owner steps down')
  assert.ok(r.orphanedAtMs !== null, 'and, without the close in its log, gives its copy up after the orphan grace')
  assert.not.ok(leaseValid(ctx, r))
})

test('a new member (nothing matched yet) answering "nothing held" is sent the session from its start, as before', () => {
  const { ctx, r } = ownerGroup({ group: { members: ['A', 'B', 'C', 'D'], witness: null }, peers: ['A', 'B', 'C', 'D'] })
  const d = r.progress.get('D')
  assert.ok(d !== undefined)
  d.matchIndex = 0
  d.nextIndex = 2
  onAck(ctx, r, 'D', nothingHeld(1, 1))
  assert.is(r.role, 'owner')
  const sent = ctx.sends('session-append').filter((s) => s.to === 'D').map((s) => s.message as SessionAppend)
  assert.equal(sent.at(-1)?.prevIndex, 0, 'resent from the create entry')
})

// A member B of a session owned by A, through the sessions core.
function memberThatSawTheClose (): { core: Sessions; now: number } {
  const directory = new FakeDirectory('B', ['A', 'B', 'C'])
  const core = new Sessions({ directory, config: LAN, random: new SeededRandom(7), services: BUILT_IN_SERVICES, stored: [], nowMs: 0 })
  const append = (fields: Partial<SessionAppend> & Pick<SessionAppend, 'prevIndex' | 'entries'>, nowMs: number): SessionEffect[] =>
    core.step({ kind: 'receive', nowMs, from: 'A', message: { type: 'session-append', sessionId: SESSION, epoch: 3, seq: nowMs, prevEpoch: 3, commitIndex: 0, ...fields } })
  append({ prevIndex: 0, prevEpoch: 0, entries: [createEntry(3, GROUP), deltaEntry(2, 3)] }, 10)
  append({ prevIndex: 2, entries: [{ index: 3, epoch: 3, body: { kind: 'close' } }], commitIndex: 3 }, 20)
  core.step({ kind: 'tick', nowMs: 30 })
  assert.is(core.replica(SESSION), undefined, 'the fixture: B forgot the closed session')
  return { core, now: 40 }
}

test('a member that forgot a closed session refuses it from an owner that missed the close, in a later epoch, and does not take it up again', () => {
  const { core, now } = memberThatSawTheClose()
  // C owned epoch 2 and was cut off; it sends the session from its create entry.
  const effects = core.step({ kind: 'receive', nowMs: now, from: 'C', message: { type: 'session-append', sessionId: SESSION, epoch: 2, seq: 5, prevIndex: 0, prevEpoch: 0, commitIndex: 1, entries: [{ ...createEntry(1, GROUP), body: { kind: 'create', info: INFO, config: GROUP } }] } })
  assert.is(core.replica(SESSION), undefined, 'not created again')
  const acks = effects.flatMap((e) => e.kind === 'send' && e.message.type === 'session-append-ack' ? [e.message] : [])
  assert.equal(acks.length, 1)
  assert.is(acks[0].ok, false)
  assert.ok(acks[0].epoch > 2, `refused in epoch ${acks[0].epoch}, later than the sender's`)
  // A snapshot is refused alike.
  const snap = core.step({ kind: 'receive', nowMs: now + 1, from: 'C', message: { type: 'session-snapshot', sessionId: SESSION, epoch: 2, seq: 6, snapshot: { index: 1, indexEpoch: 1, info: INFO, config: GROUP, state: [], dedup: { lastClientSeq: 0, recent: [] } } } })
  assert.is(core.replica(SESSION), undefined)
  assert.ok(snap.some((e) => e.kind === 'send' && e.message.type === 'session-append-ack' && !e.message.ok))
})

test('the owner that missed the close steps down on that refusal', () => {
  const { ctx, r } = ownerGroup()
  onAck(ctx, r, 'B', { type: 'session-append-ack', sessionId: SESSION, epoch: 3, seq: 7, ok: false, matchIndex: 0, lastIndex: 0 })
  assert.is.not(r.role, 'owner')
  assert.is(r.epoch, 3)
})

test('a closed session is remembered for CLOSED_REMEMBERED_MS, then an append for it is taken as any other', () => {
  const { core, now } = memberThatSawTheClose()
  const later = now + CLOSED_REMEMBERED_MS + 1
  core.step({ kind: 'receive', nowMs: later, from: 'C', message: { type: 'session-append', sessionId: SESSION, epoch: 4, seq: 5, prevIndex: 0, prevEpoch: 0, commitIndex: 1, entries: [createEntry(4, GROUP)] } })
  assert.ok(core.replica(SESSION) !== undefined)
})

// A witness C of A and B's session, through the sessions core: it got the
// session and a delta, then nothing (the close, told once, did not reach it).
function silentWitness (directory = new FakeDirectory('C', ['A', 'B', 'C'])): { core: Sessions; sentAt: number } {
  const core = new Sessions({ directory, config: LAN, random: new SeededRandom(7), services: BUILT_IN_SERVICES, stored: [], nowMs: 0 })
  const group = { members: ['A', 'B'], witness: 'C' }
  core.step({ kind: 'receive', nowMs: 10, from: 'A', message: { type: 'session-append', sessionId: SESSION, epoch: 1, seq: 1, prevIndex: 0, prevEpoch: 0, commitIndex: 2, entries: [createEntry(1, group), deltaEntry(2, 1)] } })
  // A heartbeat: C knows its role once it holds the group.
  core.step({ kind: 'receive', nowMs: 20, from: 'A', message: { type: 'session-append', sessionId: SESSION, epoch: 1, seq: 2, prevIndex: 2, prevEpoch: 1, commitIndex: 2, entries: [] } })
  assert.is(core.replica(SESSION)?.role, 'witness', 'the fixture: C is the witness')
  return { core, sentAt: 20 }
}

function locates (effects: SessionEffect[]): Array<{ to: string; requestId: number }> {
  return effects.flatMap((e) => e.kind === 'send' && e.message.type === 'session-locate' ? [{ to: e.to, requestId: e.message.requestId }] : [])
}

function location (requestId: number, found: boolean): SessionMessage {
  return { type: 'session-location', requestId, sessionId: SESSION, found, epoch: found ? 1 : 0, owner: found ? 'A' : '', config: { members: ['A', 'B'], witness: 'C' }, tokenHash: '0'.repeat(64) }
}

test('a witness that hears no owner asks the members; when no majority holds the session it gives its copy up and answers "not here"', () => {
  const { core, sentAt } = silentWitness()
  const probeAt = sentAt + WITNESS_PROBE_OWNER_TIMEOUTS * LAN.ownerTimeoutMs
  assert.ok(core.nextWakeMs() <= probeAt, 'the witness wakes for its probe')
  assert.equal(locates(core.step({ kind: 'tick', nowMs: probeAt - 1 })), [])
  const asked = locates(core.step({ kind: 'tick', nowMs: probeAt }))
  assert.equal(asked.map((a) => a.to).sort(), ['A', 'B'])
  core.step({ kind: 'receive', nowMs: probeAt + 5, from: 'A', message: location(asked[0].requestId, false) })
  assert.is(core.replica(SESSION)?.orphanedAtMs, null, 'one of three forgetting it proves nothing')
  core.step({ kind: 'receive', nowMs: probeAt + 6, from: 'B', message: location(asked[0].requestId, false) })
  assert.ok(core.replica(SESSION)?.orphanedAtMs !== null, 'no majority holds it: given up')
  // Another agent looking for the session is told it is not here.
  const answer = core.step({ kind: 'receive', nowMs: probeAt + 10, from: 'D', message: { type: 'session-locate', requestId: 77, sessionId: SESSION } })
  const reply = answer.flatMap((e) => e.kind === 'send' && e.message.type === 'session-location' ? [e.message] : [])
  assert.equal(reply.map((m) => m.found), [false])
  // And it asks no more.
  assert.equal(locates(core.step({ kind: 'tick', nowMs: probeAt * 3 })), [])
})

// SEED=655 (slow nodes, disks and own clocks, replicas 1): an agent back from
// a freeze held the owner dead, asked only the ring's alive agents about a
// terminal's request, heard "not held" from a member dropped from the group,
// and answered "no such session" for a session its own copy shows existed.
test('a copy given up: a terminal\'s request asks every member the copy names, one held dead too, and waits for them', () => {
  const directory = new FakeDirectory('C', ['A', 'B', 'C'])
  const { core, sentAt } = silentWitness(directory)
  const asked = locates(core.step({ kind: 'tick', nowMs: sentAt + WITNESS_PROBE_OWNER_TIMEOUTS * LAN.ownerTimeoutMs }))
  const at = sentAt + WITNESS_PROBE_OWNER_TIMEOUTS * LAN.ownerTimeoutMs + 5
  core.step({ kind: 'receive', nowMs: at, from: 'A', message: location(asked[0].requestId, false) })
  core.step({ kind: 'receive', nowMs: at + 1, from: 'B', message: location(asked[0].requestId, false) })
  assert.ok(core.replica(SESSION)?.orphanedAtMs !== null, 'the fixture: its copy given up')
  directory.set('A', 'dead')
  directory.records.set('A', { ...nodeRecord('A'), http: 'http://a.example:8080' })
  const get = { kind: 'command', nowMs: at + 10, command: { type: 'get', requestId: 'g1', sessionId: SESSION, tokenHash: INFO.tokenHash } } as const
  const ask = locates(core.step(get))
  assert.equal(ask.map((a) => a.to).sort(), ['A', 'B'], 'A, held dead, is asked too')
  const replies = (effects: SessionEffect[]): number[] => effects.flatMap((e) => e.kind === 'reply' ? [e.reply.status] : [])
  assert.equal(replies(core.step({ kind: 'receive', nowMs: at + 12, from: 'B', message: location(ask[0].requestId, false) })), [], 'no answer on B\'s "not held" alone')
  const found: SessionMessage = { ...(location(ask[0].requestId, true) as Extract<SessionMessage, { type: 'session-location' }>), tokenHash: INFO.tokenHash }
  assert.equal(replies(core.step({ kind: 'receive', nowMs: at + 13, from: 'A', message: found })), [307], 'sent to the owner A names')
  // A member that does not answer leaves the request to the deadline: 503.
  const again = locates(core.step({ ...get, nowMs: at + 20, command: { ...get.command, requestId: 'g2' } }))
  core.step({ kind: 'receive', nowMs: at + 22, from: 'B', message: location(again[0].requestId, false) })
  assert.equal(replies(core.step({ kind: 'tick', nowMs: at + 20 + 2_001 })), [503])
})

// SEED=2785 (own clocks, stalling disks, slow nodes, replicas 1): B holds the
// change that dropped it from A's group (never told it committed), then A
// closed the session and forgot it. B could not stand, and answered every
// "where is this session?" with "held, owner unknown": the terminal's close got
// 503 for good. Like a silent witness, it now asks the members.
test('a standby its own group no longer names, its owner silent, asks the members and gives its copy up when no majority holds it', () => {
  const directory = new FakeDirectory('B', ['A', 'B', 'C', 'D'])
  const core = new Sessions({ directory, config: LAN, random: new SeededRandom(9), services: BUILT_IN_SERVICES, stored: [], nowMs: 0 })
  const group = { members: ['A', 'B'], witness: 'C' }
  core.step({ kind: 'receive', nowMs: 10, from: 'A', message: { type: 'session-append', sessionId: SESSION, epoch: 1, seq: 1, prevIndex: 0, prevEpoch: 0, commitIndex: 2, entries: [createEntry(1, group), deltaEntry(2, 1), configEntry(3, 1, ['A', 'D'])] } })
  const r = core.replica(SESSION)
  assert.equal([r?.role, r?.log.lastIndex], ['standby', 3], 'the fixture: B holds the change that drops it')
  const probeAt = 10 + WITNESS_PROBE_OWNER_TIMEOUTS * LAN.ownerTimeoutMs
  assert.ok(core.nextWakeMs() <= probeAt, 'it wakes for its probe')
  const asked = locates(core.step({ kind: 'tick', nowMs: probeAt }))
  assert.equal(asked.map((a) => a.to).sort(), ['A', 'D'], 'the members of the group it holds')
  core.step({ kind: 'receive', nowMs: probeAt + 5, from: 'A', message: location(asked[0].requestId, false) })
  core.step({ kind: 'receive', nowMs: probeAt + 6, from: 'D', message: location(asked[0].requestId, false) })
  assert.ok(core.replica(SESSION)?.orphanedAtMs !== null, 'no majority holds it: given up')
  const answer = core.step({ kind: 'receive', nowMs: probeAt + 10, from: 'C', message: { type: 'session-locate', requestId: 78, sessionId: SESSION } })
  assert.equal(answer.flatMap((e) => e.kind === 'send' && e.message.type === 'session-location' ? [e.message.found] : []), [false], 'and says so to an agent looking for it')
})

// SEED=1151 (a course only an experiment made; README, "Slow nodes"): a
// candidate whose log lagged the witness's (which held the close, uncommitted
// in its view, and refused it as behind) stood for good after the owner closed
// the session and forgot it. A member that remembers the close now says so, and
// the candidate gives its copy up as closed.
test('a member that remembers the session closed refuses a vote as "closed session", and the candidate gives its copy up as closed', () => {
  const remembering = new Sessions({ directory: new FakeDirectory('A', ['A', 'B', 'C']), config: LAN, random: new SeededRandom(4), services: BUILT_IN_SERVICES, stored: [], closed: [{ sessionId: SESSION, epoch: 2 }], nowMs: 0 })
  const request: SessionMessage = { type: 'session-vote-request', sessionId: SESSION, epoch: 3, candidate: 'B', lastIndex: 22, lastEpoch: 2, commitIndex: 0, preVote: false }
  const refusal = remembering.step({ kind: 'receive', nowMs: 10, from: 'B', message: request }).flatMap((e) => e.kind === 'send' && e.message.type === 'session-vote' ? [e.message] : [])
  assert.equal(refusal.map((v) => [v.granted, v.epoch, v.reason]), [[false, 0, CLOSED_SESSION]])
  const forgetful = new Sessions({ directory: new FakeDirectory('A', ['A', 'B', 'C']), config: LAN, random: new SeededRandom(4), services: BUILT_IN_SERVICES, stored: [], nowMs: 0 })
  const unknown = forgetful.step({ kind: 'receive', nowMs: 10, from: 'B', message: request }).flatMap((e) => e.kind === 'send' && e.message.type === 'session-vote' ? [e.message.reason] : [])
  assert.equal(unknown, [UNKNOWN_SESSION], 'a session never held is only unknown')

  // The candidate: B, standing in the group {A, B} with witness C.
  const ctx = new FakeCtx('B', new FakeDirectory('B', ['A', 'B', 'C']))
  const r = standby(ctx, [createEntry(1, GROUP), deltaEntry(2, 1)], { commitIndex: 1, heardOwnerAgoMs: LAN.ownerTimeoutMs })
  ctx.directory.set('A', 'dead')
  watchOwner(ctx, r)
  watchOwner(ctx, r)
  assert.is(r.role, 'candidate', 'the fixture: B stands')
  onVote(ctx, r, 'A', { ...refusal[0], epoch: 0 })
  assert.equal([r.role, r.defunct], ['standby', true], 'no longer standing, its copy closed')
})

test('a witness whose members still hold the session keeps it, and asks again only after another silence', () => {
  const { core, sentAt } = silentWitness()
  const every = WITNESS_PROBE_OWNER_TIMEOUTS * LAN.ownerTimeoutMs
  const asked = locates(core.step({ kind: 'tick', nowMs: sentAt + every }))
  core.step({ kind: 'receive', nowMs: sentAt + every + 5, from: 'A', message: location(asked[0].requestId, true) })
  core.step({ kind: 'receive', nowMs: sentAt + every + 6, from: 'B', message: location(asked[0].requestId, false) })
  assert.is(core.replica(SESSION)?.orphanedAtMs, null)
  assert.equal(locates(core.step({ kind: 'tick', nowMs: sentAt + every + 100 })), [])
  assert.equal(locates(core.step({ kind: 'tick', nowMs: sentAt + 2 * every })).length, 2)
})

test('a witness whose members name a group without it takes its copy for dropped, and asks no more', () => {
  const { core, sentAt } = silentWitness()
  const asked = locates(core.step({ kind: 'tick', nowMs: sentAt + WITNESS_PROBE_OWNER_TIMEOUTS * LAN.ownerTimeoutMs }))
  core.step({ kind: 'receive', nowMs: sentAt + 3_000, from: 'A', message: { ...location(asked[0].requestId, true), config: { members: ['A', 'B'], witness: 'D' } } as SessionMessage })
  assert.ok(core.replica(SESSION)?.orphanedAtMs !== null)
  assert.equal(locates(core.step({ kind: 'tick', nowMs: sentAt + 60_000 })), [])
})

test('a witness restarted with its copy waits as the witness its stored group names, and asks the members after a silence', () => {
  const directory = new FakeDirectory('C', ['A', 'B', 'C'])
  const group = { members: ['A', 'B'], witness: 'C' }
  const stored = { sessionId: SESSION, epoch: 1, votedFor: null, commitIndex: 2, snapshot: null, entries: [createEntry(1, group), deltaEntry(2, 1)] }
  const core = new Sessions({ directory, config: LAN, random: new SeededRandom(7), services: BUILT_IN_SERVICES, stored: [stored], nowMs: 1_000 })
  assert.is(core.replica(SESSION)?.role, 'witness', 'restored as a standby, it could neither stand nor ask')
  const asked = locates(core.step({ kind: 'tick', nowMs: 1_000 + WITNESS_PROBE_OWNER_TIMEOUTS * LAN.ownerTimeoutMs }))
  assert.equal(asked.map((a) => a.to).sort(), ['A', 'B'])
})

test.run()
