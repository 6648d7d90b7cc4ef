// The owner: terminals' deltas (sequence numbers, idempotent retries, answers only
// once the write concern holds and the lease is valid), the commit rule, stepping
// down, waiters that time out, and group repair.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { becomeOwner, clientAppend, countsInGroup, expireWaiters, maintainGroup, memberLost, onAck } from '../../agent/sessions/owner.ts'
import { config, voters } from '../../agent/sessions/replica.ts'
import type { Replica } from '../../agent/sessions/replica.ts'
import type { SessionsConfig } from '../../agent/sessions/config.ts'
import type { JsonValue, MemberStatus, SessionAppend } from '../../protocol/messages.ts'
import {
  FakeCtx, FakeDirectory, LAN, SESSION, ackFrom, createEntry, deltaEntry, epochsOf, lastSentTo, ownerGroup, renewLease,
  standby, terminal
} from './session-fixtures.ts'

function append (ctx: FakeCtx, r: Replica, clientSeq: number, op: JsonValue = { append: `op${clientSeq}` }, requestId = `t-${clientSeq}`): void {
  clientAppend(ctx, r, terminal(requestId), clientSeq, op)
}

function statuses (ctx: FakeCtx): Array<[string, number]> {
  return ctx.replies().map((reply) => [reply.to, reply.status])
}

// ---- deltas and their answers ----------------------------------------------------

test('deltas 1, 2, 3 are logged at once and answered only when every live member holds them', () => {
  const { ctx, r } = ownerGroup()
  append(ctx, r, 1, { append: 'a' })
  append(ctx, r, 2, { append: 'b' })
  append(ctx, r, 3, { append: 'c' })
  assert.equal(ctx.persists('session-entries').map((p) => p.kind === 'session-entries' ? p.entries.map((e) => [e.index, e.epoch]) : []), [[[2, 1]], [[3, 1]], [[4, 1]]])
  assert.equal(ctx.replies(), [], 'nothing is answered before the write concern holds')
  assert.equal(ctx.sends('session-append').map((s) => s.to), ['B', 'C', 'B', 'C', 'B', 'C'], 'every delta is streamed at once')

  ackFrom(ctx, r, 'B')
  assert.equal([r.commitIndex, ctx.replies().length], [1, 0], 'a majority is not enough while C is live')
  ackFrom(ctx, r, 'C')
  assert.is(r.commitIndex, 4)
  assert.equal(ctx.replies(), [
    { to: 't-1', status: 200, body: { index: 2, epoch: 1 } },
    { to: 't-2', status: 200, body: { index: 3, epoch: 1 } },
    { to: 't-3', status: 200, body: { index: 4, epoch: 1 } }
  ])
  assert.equal(ctx.events('acknowledged').map((e) => e.type === 'acknowledged' ? [e.index, e.clientSeq] : []), [[2, 1], [3, 2], [4, 3]])
  assert.equal(r.state, ['a', 'b', 'c'])
  assert.ok(ctx.persists('session-commit').length > 0, 'the commit index is remembered')
})

test('a retry of an applied delta gets its original index, marked duplicate, and appends nothing', () => {
  const { ctx, r } = ownerGroup()
  for (const seq of [1, 2, 3]) append(ctx, r, seq)
  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  ctx.take()
  for (const [seq, index] of [[1, 2], [2, 3], [3, 4]]) {
    append(ctx, r, seq, { append: 'retried' }, `retry-${seq}`)
    assert.equal(ctx.replies(), [{ to: `retry-${seq}`, status: 200, body: { index, epoch: 1, duplicate: true } }])
    assert.equal(ctx.persists(), [])
    assert.equal(ctx.sends(), [])
    ctx.take()
  }
  assert.is(r.log.lastIndex, 4)
  assert.equal(r.state, ['op1', 'op2', 'op3'])
})

test('a retry of a delta still in flight waits for the same entry', () => {
  const { ctx, r } = ownerGroup()
  append(ctx, r, 1, { append: 'a' }, 'first')
  ctx.take()
  append(ctx, r, 1, { append: 'a' }, 'retry')
  assert.equal([ctx.replies(), ctx.persists(), r.log.lastIndex], [[], [], 2], 'no answer yet and no second entry')
  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  assert.equal(ctx.replies(), [
    { to: 'first', status: 200, body: { index: 2, epoch: 1 } },
    { to: 'retry', status: 200, body: { index: 2, epoch: 1 } }
  ])
  assert.equal(r.state, ['a'])
})

test('a sequence number that skips ahead is refused with 409 and the expected number', () => {
  const cases: Array<{ name: string; committed: number; pending: number; seq: number; expected: number }> = [
    { name: 'a fresh session', committed: 0, pending: 0, seq: 2, expected: 1 },
    { name: 'seq 5 after 3', committed: 3, pending: 0, seq: 5, expected: 4 },
    { name: 'far ahead', committed: 3, pending: 0, seq: 40, expected: 4 },
    { name: 'past a delta in flight', committed: 0, pending: 1, seq: 3, expected: 2 }
  ]
  for (const c of cases) {
    const { ctx, r } = ownerGroup()
    for (let seq = 1; seq <= c.committed; seq++) append(ctx, r, seq)
    if (c.committed > 0) {
      ackFrom(ctx, r, 'B')
      ackFrom(ctx, r, 'C')
    }
    for (let seq = c.committed + 1; seq <= c.committed + c.pending; seq++) append(ctx, r, seq)
    const lastIndex = r.log.lastIndex
    ctx.take()
    append(ctx, r, c.seq)
    const [reply] = ctx.replies()
    assert.is(reply?.status, 409, c.name)
    assert.is(reply.body.expectedSeq, c.expected, c.name)
    assert.equal([r.log.lastIndex, ctx.persists()], [lastIndex, []], `${c.name}: nothing appended`)
  }
})

test('an op the service refuses is answered 400, logged nowhere, and does not use up its number', () => {
  const invalid: JsonValue[] = [{ push: 'x' }, 'text', { append: 1, extra: 2 }, null, []]
  for (const op of invalid) {
    const { ctx, r } = ownerGroup()
    append(ctx, r, 1, op)
    assert.equal(statuses(ctx), [['t-1', 400]], JSON.stringify(op))
    assert.equal([r.log.lastIndex, ctx.persists(), ctx.sends()], [1, [], []], JSON.stringify(op))
    ctx.take()
    append(ctx, r, 1, { append: 'ok' })
    assert.is(r.log.entry(2)?.body.kind, 'delta', 'the same number is taken by a valid op')
  }
})

// ---- the commit rule --------------------------------------------------------------

test('a delta commits with a majority and, under "all", every live member', () => {
  // A and B hold the delta; C last answered cAckAgeMs before it was logged.
  const cases: Array<{ concern: SessionsConfig['writeConcern']; cStatus: MemberStatus; cAckAgeMs: number; bAcks: boolean; committed: boolean }> = [
    { concern: 'all', cStatus: 'alive', cAckAgeMs: 0, bAcks: true, committed: false },
    { concern: 'all', cStatus: 'suspect', cAckAgeMs: 0, bAcks: true, committed: false },
    { concern: 'all', cStatus: 'alive', cAckAgeMs: LAN.memberStaleMs - 1, bAcks: true, committed: false },
    { concern: 'all', cStatus: 'alive', cAckAgeMs: LAN.memberStaleMs, bAcks: true, committed: true },
    { concern: 'all', cStatus: 'dead', cAckAgeMs: 0, bAcks: true, committed: true },
    { concern: 'all', cStatus: 'left', cAckAgeMs: 0, bAcks: true, committed: true },
    { concern: 'all', cStatus: 'dead', cAckAgeMs: 0, bAcks: false, committed: false },
    { concern: 'majority', cStatus: 'alive', cAckAgeMs: 0, bAcks: true, committed: true },
    { concern: 'majority', cStatus: 'alive', cAckAgeMs: 0, bAcks: false, committed: false }
  ]
  for (const c of cases) {
    const name = `${c.concern}, C ${c.cStatus} and last heard ${c.cAckAgeMs} ms before, B ${c.bAcks ? 'holds it' : 'silent'}`
    const { ctx, r, directory } = ownerGroup({ config: { writeConcern: c.concern } })
    ctx.now += c.cAckAgeMs
    renewLease(ctx, r, ['B'])
    directory.set('C', c.cStatus)
    append(ctx, r, 1)
    if (c.bAcks) ackFrom(ctx, r, 'B')
    assert.is(r.commitIndex, c.committed ? 2 : 1, name)
    assert.equal(statuses(ctx), c.committed ? [['t-1', 200]] : [], name)
  }
})

test('a member the transport lost stops holding up "all" at once', () => {
  const { ctx, r } = ownerGroup()
  append(ctx, r, 1)
  ackFrom(ctx, r, 'B')
  assert.is(r.commitIndex, 1)
  memberLost(ctx, r, 'C')
  assert.is(r.commitIndex, 2)
  assert.equal(statuses(ctx), [['t-1', 200]])
})

test('entries of an earlier epoch are not committed by counting, only with one of the current epoch', () => {
  const directory = new FakeDirectory('A', ['A', 'B', 'C'])
  const ctx = new FakeCtx('A', directory)
  // A won epoch 2 holding an unacknowledged delta of epoch 1 (clientSeq 1).
  const r = standby(ctx, [createEntry(), deltaEntry(2, 1, 1, 'old')], { epoch: 2, commitIndex: 1, owner: null, votedFor: 'A' })
  becomeOwner(ctx, r, null, 0)
  assert.equal(epochsOf(r.log), [1, 1, 2], 'the new owner logs an epoch entry')
  append(ctx, r, 1, { append: 'old' }, 'retry')
  assert.equal(r.log.lastIndex, 3, 'the retry waits for the entry already logged')

  ackFrom(ctx, r, 'B', { matchIndex: 2 })
  ackFrom(ctx, r, 'C', { matchIndex: 2 })
  assert.equal([r.commitIndex, r.state, ctx.replies()], [1, [], []], 'index 2 is on every member, yet not committed')

  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  assert.equal([r.commitIndex, r.state], [3, ['old']], 'the epoch entry commits everything before it')
  assert.equal(ctx.replies(), [{ to: 'retry', status: 200, body: { index: 2, epoch: 2 } }])
})

test('without a valid lease nothing is acknowledged, even what committed', () => {
  const { ctx, r } = ownerGroup()
  append(ctx, r, 1)
  // The acks arrive after the promises they carry ran out.
  ctx.now += LAN.ownerTimeoutMs
  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  assert.is(r.commitIndex, 2)
  assert.equal(statuses(ctx), [['t-1', 503]])
  assert.equal(ctx.events('acknowledged'), [])
  ctx.take()
  append(ctx, r, 2)
  assert.equal([statuses(ctx), r.log.lastIndex], [[['t-2', 503]], 2], 'no new delta is taken either')
  ctx.take()
  renewLease(ctx, r, ['B', 'C'])
  append(ctx, r, 2)
  assert.equal(r.log.lastIndex, 3, 'a renewed lease takes deltas again')
})

test('an owner without its lease answers a sequence it does not expect with 503, never 409 (it may have been replaced)', () => {
  // Seen in a real partition: the old owner, cut off with a stale log, told a
  // terminal far ahead "clientSeq must be 104", which reads as a rollback.
  const { ctx, r } = ownerGroup()
  append(ctx, r, 1)
  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  ctx.take()
  ctx.now += LAN.ownerTimeoutMs
  append(ctx, r, 21)
  append(ctx, r, 1)
  assert.equal(statuses(ctx), [['t-21', 503], ['t-1', 200]], 'ahead: 503; a retry of what it holds: its answer')
})

test('an ack of a later epoch from a group member makes the owner step down; pending terminals get 503', () => {
  const { ctx, r } = ownerGroup()
  append(ctx, r, 1)
  append(ctx, r, 2)
  ctx.take()
  ackFrom(ctx, r, 'C', { epoch: 2, ok: false, matchIndex: 0, lastIndex: 1 })
  assert.equal([r.role, r.epoch, r.votedFor, r.waiters.size, r.progress.size], ['standby', 2, null, 0, 0])
  assert.equal(ctx.persists('session-meta'), [{ kind: 'session-meta', sessionId: SESSION, epoch: 2, votedFor: null }])
  assert.equal(statuses(ctx), [['t-1', 503], ['t-2', 503]])
  assert.equal(ctx.events('demoted').length, 1)
})

test('an ack of a later epoch from outside the group is ignored', () => {
  const { ctx, r } = ownerGroup()
  append(ctx, r, 1)
  ctx.take()
  onAck(ctx, r, 'X', { type: 'session-append-ack', sessionId: SESSION, epoch: 9, seq: 1, ok: false, matchIndex: 0, lastIndex: 0 })
  assert.equal([r.role, r.epoch, r.waiters.size], ['owner', 1, 1])
  assert.equal(ctx.effects, [])
})

test('a delta not held in time is answered 503 after writeTimeoutMs, and only once', () => {
  const { ctx, r } = ownerGroup()
  const start = ctx.now
  append(ctx, r, 1)
  ctx.now = start + LAN.writeTimeoutMs - 1
  expireWaiters(ctx, r)
  assert.equal(ctx.replies(), [])
  ctx.now = start + LAN.writeTimeoutMs
  expireWaiters(ctx, r)
  assert.equal(statuses(ctx), [['t-1', 503]])
  ctx.take()
  renewLease(ctx, r, [])
  ackFrom(ctx, r, 'B', { matchIndex: 2 })
  ackFrom(ctx, r, 'C', { matchIndex: 2 })
  assert.equal([r.commitIndex, ctx.replies()], [2, []], 'it may still commit, but is not answered twice')
  append(ctx, r, 1, { append: 'op1' }, 'retry')
  assert.equal(ctx.replies(), [{ to: 'retry', status: 200, body: { index: 2, epoch: 1, duplicate: true } }])
})

// ---- group repair -------------------------------------------------------------------

function appendsTo (ctx: FakeCtx, peer: string): SessionAppend[] {
  return ctx.sends('session-append').filter((s) => s.to === peer).map((s) => s.message as SessionAppend)
}

test('a member dead for repairDelayMs is removed first; the replacement joins only once it holds the commit', () => {
  const { ctx, r, directory } = ownerGroup({ peers: ['A', 'B', 'C', 'D'] })
  const start = ctx.now
  directory.set('C', 'dead')
  for (const at of [start, start + LAN.repairDelayMs - 1]) {
    ctx.now = at
    maintainGroup(ctx, r)
    assert.equal([r.log.lastIndex, ctx.events('group-changed')], [1, []], `nothing changes ${at - start} ms after C died`)
  }

  ctx.now = start + LAN.repairDelayMs
  maintainGroup(ctx, r)
  assert.equal(config(r), { members: ['A', 'B'], witness: null }, 'C goes before anyone is added')
  assert.equal(r.log.entry(2)?.body.kind, 'config')
  assert.equal(appendsTo(ctx, 'D'), [], 'D is not contacted yet')
  assert.equal([...r.progress.keys()], ['B'])

  maintainGroup(ctx, r)
  assert.equal([r.log.lastIndex, appendsTo(ctx, 'D')], [2, []], 'no second change before the first commits')
  ackFrom(ctx, r, 'B')
  assert.is(r.commitIndex, 2)

  ctx.take()
  maintainGroup(ctx, r)
  assert.equal(appendsTo(ctx, 'D').map((m) => m.prevIndex), [2], 'D is being brought up to date')
  assert.equal(config(r).members, ['A', 'B'], 'but is not a member yet')

  ackFrom(ctx, r, 'D', { ok: false, matchIndex: 0, lastIndex: 0 })
  assert.equal(lastSentTo(ctx, 'D').type === 'session-append' ? (lastSentTo(ctx, 'D') as SessionAppend).entries.map((e) => e.index) : [], [1, 2])
  onAck(ctx, r, 'D', { type: 'session-append-ack', sessionId: SESSION, epoch: 7, seq: 0, ok: false, matchIndex: 0, lastIndex: 0 })
  assert.equal([r.role, r.epoch], ['owner', 1], 'a newcomer\'s later epoch does not unseat the owner')
  maintainGroup(ctx, r)
  assert.equal(config(r).members, ['A', 'B'], 'D does not join while it lacks committed entries')

  ackFrom(ctx, r, 'D')
  maintainGroup(ctx, r)
  assert.equal(config(r), { members: ['A', 'B', 'D'], witness: null })
  assert.equal(voters(r), ['A', 'B', 'D'])
  assert.equal(ctx.events('group-changed').length, 1)
})

// Raft's rule for single-member changes (owner.ts, configSettled): a change made
// before the new owner's epoch commits can sit on a config some earlier owner
// logged and never committed.
test('a new owner changes its group only once an entry of its epoch is committed', () => {
  const directory = new FakeDirectory('A', ['A', 'B', 'C'])
  const ctx = new FakeCtx('A', directory, 10_000)
  const r = standby(ctx, [createEntry(), deltaEntry(2, 1)], { epoch: 2, commitIndex: 1, owner: null, votedFor: 'A' })
  becomeOwner(ctx, r, null, 0)
  directory.set('C', 'dead')
  const start = ctx.now
  for (const at of [start, start + LAN.repairDelayMs, start + 10 * LAN.repairDelayMs]) {
    ctx.now = at
    maintainGroup(ctx, r)
    assert.equal([r.log.lastIndex, config(r).members, ctx.events('group-changed')], [3, ['A', 'B', 'C'], []], `no change ${at - start} ms after C died, the epoch entry uncommitted`)
  }
  ackFrom(ctx, r, 'B')
  assert.is(r.commitIndex, 3, 'B holds the epoch entry: it commits')
  const committedAt = ctx.now
  maintainGroup(ctx, r)
  assert.equal(config(r).members, ['A', 'B', 'C'], 'the repair delay starts when the change may')
  ctx.now = committedAt + LAN.repairDelayMs
  maintainGroup(ctx, r)
  assert.equal(config(r), { members: ['A', 'B'], witness: null }, 'then C goes')
})

test('a two-member group gets a witness once the witness holds the log', () => {
  const { ctx, r } = ownerGroup({
    group: { members: ['A', 'B'], witness: null },
    peers: ['A', 'B', { id: 'W', services: [] }],
    config: { replicas: 1 }
  })
  maintainGroup(ctx, r)
  assert.equal(appendsTo(ctx, 'W').length, 1, 'the witness is brought up to date first')
  assert.equal(config(r).witness, null)
  ackFrom(ctx, r, 'W', { ok: false, matchIndex: 0, lastIndex: 0 })
  ackFrom(ctx, r, 'W')
  maintainGroup(ctx, r)
  assert.equal(config(r), { members: ['A', 'B'], witness: 'W' })
  assert.equal(voters(r), ['A', 'B', 'W'])
  ackFrom(ctx, r, 'B')
  assert.equal(r.commitIndex, 1, 'the witness is a live voter: under "all" it must hold the change too')
  ackFrom(ctx, r, 'W')
  assert.equal(r.commitIndex, 2)
})

test('the owner counts its members, its witness and the agent it is adding; not an agent it replaced', () => {
  const { r } = ownerGroup({ group: { members: ['A', 'B', 'C'], witness: null } })
  assert.ok(countsInGroup(r, 'B') && countsInGroup(r, 'C'))
  assert.not.ok(countsInGroup(r, 'X'), 'X is out of the group: its diagnosis goes unanswered')
  r.repair = { adding: 'X', asWitness: false, removing: null, startedMs: 0, phase: 'catch-up' }
  assert.ok(countsInGroup(r, 'X'), 'being brought up to date to join')
  const witnessed = ownerGroup({ group: { members: ['A', 'B'], witness: 'W' } }).r
  assert.ok(countsInGroup(witnessed, 'W'))
})

test.run()
