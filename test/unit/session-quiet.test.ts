// Quiet sessions, one step at a time (agent/sessions/quiet.ts): when an owner
// asks, what a member says, how the beats keep the lease, and what wakes a
// session. The scenarios with crashes, freezes and partitions are in
// test/sim/session-quiet.test.ts.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { heartbeat, leaseValid } from '../../agent/sessions/owner.ts'
import { QUIET_RETRY_MS, QUIET_SILENT_ASKS, QUIET_SILENT_PEER_MS } from '../../agent/sessions/quiet.ts'
import type { Replica } from '../../agent/sessions/replica.ts'
import type { SessionBeat, SessionQuiesce } from '../../protocol/messages.ts'
import { FakeCtx, FakeDirectory, SESSION, appendMsg, createEntry, deltaEntry, ownerGroup, renewLease, standby } from './session-fixtures.ts'

// An owner at A whose session has been idle for quietAfterMs, its lease fresh.
function idleOwner (): { ctx: FakeCtx; r: Replica } {
  const { ctx, r } = ownerGroup()
  ctx.now += ctx.config.quietAfterMs
  renewLease(ctx, r, ['B', 'C'])
  ctx.take()
  return { ctx, r }
}

function ask (ctx: FakeCtx, r: Replica): SessionQuiesce[] {
  ctx.quiet.maybeQuiesce(ctx, r)
  return ctx.sends('session-quiesce').map((s) => s.message as SessionQuiesce)
}

function yes (ctx: FakeCtx, r: Replica, from: string, request: SessionQuiesce, gen = 0): void {
  ctx.quiet.onQuiesced(ctx, r, from, { type: 'session-quiesced', sessionId: r.id, epoch: r.epoch, seq: request.seq, ok: true, boot: from.charCodeAt(0), gen })
}

// A quiet owner at A, B and C having said yes (boots 66 and 67, gen 0).
function quietOwner (): { ctx: FakeCtx; r: Replica } {
  const { ctx, r } = idleOwner()
  const [request] = ask(ctx, r)
  yes(ctx, r, 'B', request)
  yes(ctx, r, 'C', request)
  if (r.quiet?.kind !== 'owner') throw new Error('fixture: the session did not go quiet')
  ctx.take()
  return { ctx, r }
}

// One round of beats from the owner, answered by each listed member.
function beatRound (ctx: FakeCtx, answers: Array<[string, number]>): void {
  ctx.take()
  ctx.quiet.tick(ctx)
  const beats = ctx.sends('session-beat')
  for (const [peer, gen] of answers) {
    const beat = beats.find((b) => b.to === peer)?.message as SessionBeat
    ctx.quiet.onBeatAck(ctx, peer, { type: 'session-beat-ack', seq: beat.seq, boot: peer.charCodeAt(0), gen })
  }
}

test('an idle owner asks its members once, sends the session nothing else until they answer, and goes quiet when all said yes', () => {
  const { ctx, r } = idleOwner()
  const requests = ask(ctx, r)
  assert.equal(ctx.sends('session-quiesce').map((s) => s.to), ['B', 'C'])
  assert.equal([requests[0].index, requests[0].indexEpoch], [1, 1], 'at its last index, all of it committed')
  ctx.take()
  ctx.now += 50
  heartbeat(ctx, r)
  assert.equal(ctx.sends('session-append'), [], 'no heartbeat while the request is out')
  yes(ctx, r, 'B', requests[0])
  assert.is(r.quiet, null, 'one yes is not enough')
  yes(ctx, r, 'C', requests[1])
  assert.is(r.quiet?.kind, 'owner')
  assert.equal(ask(ctx, r), [], 'quiet: nothing more to ask')
})

test('not asked while anything is under way: a fresh write, a member behind, a member suspected', () => {
  const recent = ownerGroup()
  recent.ctx.now += recent.ctx.config.quietAfterMs - 1
  renewLease(recent.ctx, recent.r, ['B', 'C'])
  recent.ctx.take()
  assert.equal(ask(recent.ctx, recent.r), [], 'idle for less than quietAfterMs')

  const behind = idleOwner()
  behind.r.log.append(deltaEntry(2, 1))
  assert.equal(ask(behind.ctx, behind.r), [], 'an entry not yet held by every member')

  const suspected = idleOwner()
  ;(suspected.ctx.directory as FakeDirectory).statuses.set('C', 'suspect')
  assert.equal(ask(suspected.ctx, suspected.r), [], 'a member not alive')
})

// A member that never answers (an older agent) is left alone for a minute, but
// only after QUIET_SILENT_ASKS requests unanswered in a row: one request lost
// (a partition, a member just killed or restarting) left every session the
// member shared with the owner awake for a minute.
test('a member that never answers (an older agent): heartbeats resume after one period, it is asked again after QUIET_RETRY_MS, and after QUIET_SILENT_ASKS requests unanswered in a row not for a minute', () => {
  const { ctx, r } = idleOwner()
  for (let i = 1; i <= QUIET_SILENT_ASKS; i++) {
    const requests = ask(ctx, r)
    assert.is(requests.length, 2, `request ${i} goes to B and C`)
    yes(ctx, r, 'B', requests[0])
    ctx.take()
    ctx.now += ctx.config.heartbeatMs
    heartbeat(ctx, r)
    assert.equal(ctx.sends('session-append').map((s) => s.to), ['B', 'C'], 'heartbeats go on')
    ctx.take()
    ctx.now += QUIET_RETRY_MS
    renewLease(ctx, r, ['B', 'C'])
    ctx.take()
  }
  assert.equal(ask(ctx, r), [], `C said nothing ${QUIET_SILENT_ASKS} times: left alone`)
  ctx.now += QUIET_SILENT_PEER_MS
  renewLease(ctx, r, ['B', 'C'])
  ctx.take()
  assert.is(ask(ctx, r).length, 2, 'asked again after a minute')
})

test('a member that missed one request (lost on the way) is asked again after QUIET_RETRY_MS, and the session goes quiet', () => {
  const { ctx, r } = idleOwner()
  const [lost] = ask(ctx, r)
  yes(ctx, r, 'B', lost)
  ctx.take()
  ctx.now += ctx.config.heartbeatMs
  heartbeat(ctx, r)
  ctx.take()
  // The request was given up a heartbeat period after it left.
  ctx.now += QUIET_RETRY_MS - 1
  renewLease(ctx, r, ['B', 'C'])
  ctx.take()
  assert.equal(ask(ctx, r), [], 'not before QUIET_RETRY_MS after that')
  ctx.now += 1
  const again = ask(ctx, r)
  assert.equal(again.map((request) => request.seq > lost.seq), [true, true])
  yes(ctx, r, 'B', again[0])
  yes(ctx, r, 'C', again[0])
  assert.is(r.quiet?.kind, 'owner')
})

test('quiet, the lease stands on the beats: each answered round renews it; unanswered it runs out', () => {
  const { ctx, r } = quietOwner()
  for (let i = 0; i < 10; i++) {
    ctx.now += ctx.config.heartbeatMs
    beatRound(ctx, [['B', 0], ['C', 0]])
  }
  assert.ok(leaseValid(ctx, r))
  assert.equal(ctx.sends('session-append'), [], 'no heartbeat of the session')
  assert.is(r.quiet?.kind, 'owner')
  // B and C fall silent: the lease runs out at the last answered beat + ownerTimeoutMs × 0.8.
  const lastBeatAt = ctx.now
  ctx.now = lastBeatAt + ctx.config.ownerTimeoutMs * 0.8 - 1
  assert.ok(leaseValid(ctx, r))
  ctx.now = lastBeatAt + ctx.config.ownerTimeoutMs * 0.8
  assert.not.ok(leaseValid(ctx, r))
})

test('a beat answered with another token (the member woke the session, or restarted) wakes it, and the owner heartbeats at once', () => {
  const { ctx, r } = quietOwner()
  ctx.now += ctx.config.heartbeatMs
  beatRound(ctx, [['B', 0], ['C', 1]])
  assert.is(r.quiet, null)
  assert.equal(ctx.sends('session-append').map((s) => s.to), ['B', 'C'])
  assert.ok(leaseValid(ctx, r), 'B\'s beat still backs the lease, with the owner\'s own vote')
})

test('a member not heard for memberStaleMs wakes the session', () => {
  const { ctx, r } = quietOwner()
  ctx.now += ctx.config.heartbeatMs
  beatRound(ctx, [['B', 0]])
  assert.is(r.quiet?.kind, 'owner')
  ctx.now += ctx.config.memberStaleMs
  ctx.quiet.tick(ctx)
  assert.is(r.quiet, null)
})

// ---- the member's side -------------------------------------------------------

function member (): { ctx: FakeCtx; r: Replica } {
  const ctx = new FakeCtx('B', new FakeDirectory('B', ['A', 'B', 'C']))
  const r = standby(ctx, [createEntry(), deltaEntry(2, 1)], { commitIndex: 1 })
  return { ctx, r }
}

function request (fields: Partial<SessionQuiesce> = {}): SessionQuiesce {
  return { type: 'session-quiesce', sessionId: SESSION, epoch: 1, seq: 10, index: 2, indexEpoch: 1, boot: 500, ...fields }
}

test('a member says yes only to its owner, in its epoch, at exactly its last index; yes commits that index', () => {
  for (const [why, from, msg] of [
    ['another agent', 'C', request()],
    ['another epoch', 'A', request({ epoch: 2 })],
    ['a longer log', 'A', request({ index: 3 })],
    ['another epoch at that index', 'A', request({ indexEpoch: 2 })]
  ] as const) {
    const { ctx, r } = member()
    ctx.quiet.onQuiesce(ctx, r, from, msg)
    assert.equal([ctx.sends('session-quiesced').map((s) => (s.message as { ok: boolean }).ok), r.quiet], [[false], null], why)
  }
  const { ctx, r } = member()
  ctx.quiet.onQuiesce(ctx, r, 'A', request())
  assert.equal(ctx.sends('session-quiesced').map((s) => s.message), [{ type: 'session-quiesced', sessionId: SESSION, epoch: 1, seq: 10, ok: true, boot: 1, gen: 0 }])
  assert.is(r.quiet?.kind, 'member')
  assert.is(r.commitIndex, 2)
})

test('quiet member: an append sent before the request changes nothing; one sent after wakes it with the same token; anything else wakes it with a new one', () => {
  const early = member()
  early.ctx.quiet.onQuiesce(early.ctx, early.r, 'A', request())
  early.ctx.quiet.onMessageFor(early.ctx, early.r, 'A', appendMsg({ prevIndex: 2, entries: [], seq: 9 }))
  assert.is(early.r.quiet?.kind, 'member')
  early.ctx.quiet.onMessageFor(early.ctx, early.r, 'A', appendMsg({ prevIndex: 2, entries: [], seq: 11 }))
  assert.is(early.r.quiet, null)
  early.ctx.take()
  early.ctx.quiet.onBeat(early.ctx, 'A', { type: 'session-beat', boot: 500, seq: 1 })
  assert.is((early.ctx.sends('session-beat-ack')[0].message as { gen: number }).gen, 0, 'woken by its owner: same token')

  const located = member()
  located.ctx.quiet.onQuiesce(located.ctx, located.r, 'A', request())
  located.ctx.quiet.onMessageFor(located.ctx, located.r, 'C', { type: 'session-locate', requestId: 1, sessionId: SESSION })
  assert.is(located.r.quiet?.kind, 'member', 'another agent looking for the session only reads')

  const vote = member()
  vote.ctx.quiet.onQuiesce(vote.ctx, vote.r, 'A', request())
  vote.ctx.quiet.onMessageFor(vote.ctx, vote.r, 'C', { type: 'session-vote-request', sessionId: SESSION, epoch: 2, candidate: 'C', lastIndex: 2, lastEpoch: 1, commitIndex: 2, preVote: true })
  assert.is(vote.r.quiet, null)
  vote.ctx.take()
  vote.ctx.quiet.onBeat(vote.ctx, 'A', { type: 'session-beat', boot: 500, seq: 1 })
  assert.is((vote.ctx.sends('session-beat-ack')[0].message as { gen: number }).gen, 1, 'woken on its own: a new token')
})

test('quiet member: beats count as its owner heard; a beat from another boot of the owner, or none for ownerTimeoutMs, wakes it with a new token', () => {
  const { ctx, r } = member()
  const t0 = ctx.now
  ctx.quiet.onQuiesce(ctx, r, 'A', request())
  ctx.now += 300
  ctx.quiet.onBeat(ctx, 'A', { type: 'session-beat', boot: 500, seq: 1 })
  ctx.now += ctx.config.ownerTimeoutMs - 1
  ctx.quiet.tick(ctx)
  assert.is(r.quiet?.kind, 'member', 'heard within ownerTimeoutMs')
  ctx.now += 1
  assert.is(ctx.quiet.nextWakeMs(ctx), ctx.now, 'its watch is due now')
  ctx.quiet.tick(ctx)
  assert.is(r.quiet, null)
  assert.is(r.lastOwnerContactMs, t0 + 300, 'the owner was last heard at its last beat')

  const other = member()
  other.ctx.quiet.onQuiesce(other.ctx, other.r, 'A', request())
  other.ctx.quiet.onBeat(other.ctx, 'A', { type: 'session-beat', boot: 501, seq: 1 })
  assert.is(other.r.quiet, null, 'the owner restarted: its old promises are gone')
  assert.is((other.ctx.sends('session-beat-ack')[0].message as { gen: number }).gen, 1)
})

test('what is kept about peers nothing is quiet with any more is dropped, and a gen drawn again never matches a token the owner still holds', () => {
  // Member side: yes to A (gen 0), then woken on its own (a vote request: gen 1).
  const { ctx, r } = member()
  ctx.quiet.onQuiesce(ctx, r, 'A', request())
  ctx.quiet.onBeat(ctx, 'A', { type: 'session-beat', boot: 500, seq: 1 })
  ctx.quiet.onMessageFor(ctx, r, 'C', { type: 'session-vote-request', sessionId: SESSION, epoch: 2, candidate: 'C', lastIndex: 2, lastEpoch: 1, commitIndex: 2, preVote: true })
  assert.is(r.quiet, null)
  ctx.quiet.tick(ctx)
  assert.equal(ctx.quiet.keptPeers().owners, 1, 'A beat within ownerTimeoutMs: kept')
  // A falls silent (it left, say): its beat and gen go after ownerTimeoutMs.
  ctx.now += 2 * ctx.config.ownerTimeoutMs
  ctx.quiet.tick(ctx)
  assert.equal(ctx.quiet.keptPeers(), { owners: 0, members: 0, silent: 0 })
  // A comes back still holding the yes (gen 0): the ack's gen is a new one.
  ctx.take()
  ctx.quiet.onBeat(ctx, 'A', { type: 'session-beat', boot: 500, seq: 2 })
  const gen = (ctx.sends('session-beat-ack')[0].message as { gen: number }).gen
  assert.ok(gen !== 0 && gen !== 1, `gen ${gen}: drawn again, never one given before`)

  // Owner side: a quiet session with B and C wakes; their acks go after
  // memberStaleMs, and a silence once it ran out.
  const owner = quietOwner()
  owner.ctx.now += owner.ctx.config.heartbeatMs
  beatRound(owner.ctx, [['B', 0], ['C', 0]])
  owner.ctx.quiet.forget(owner.ctx, owner.r)
  owner.ctx.quiet.tick(owner.ctx)
  assert.is(owner.ctx.quiet.keptPeers().members, 2, 'heard within memberStaleMs: kept')
  owner.ctx.now += owner.ctx.config.memberStaleMs + owner.ctx.config.ownerTimeoutMs
  owner.ctx.quiet.tick(owner.ctx)
  assert.equal(owner.ctx.quiet.keptPeers(), { owners: 0, members: 0, silent: 0 })

  const silent = idleOwner()
  const [asked] = ask(silent.ctx, silent.r)
  yes(silent.ctx, silent.r, 'B', asked)
  silent.ctx.now += silent.ctx.config.heartbeatMs
  heartbeat(silent.ctx, silent.r)
  assert.is(silent.ctx.quiet.keptPeers().silent, 1, 'C said nothing: counted')
  silent.ctx.now += QUIET_RETRY_MS
  silent.ctx.quiet.tick(silent.ctx)
  assert.is(silent.ctx.quiet.keptPeers().silent, 1, 'a recent silence is kept, to count the next one on')
  silent.ctx.now += QUIET_SILENT_PEER_MS
  silent.ctx.quiet.tick(silent.ctx)
  assert.is(silent.ctx.quiet.keptPeers().silent, 0, 'an old one is dropped')
})

test.run()
