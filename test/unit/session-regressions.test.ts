// Regressions: bugs the tests of the sessions core found (each test
// failed against the code before its fix). The comments above each test describe
// the bug as it was.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { onVote, ownerHint, watchOwner } from '../../agent/sessions/election.ts'
import { onAppend, onVoteRequest } from '../../agent/sessions/follower.ts'
import { becomeOwner, clientAppend, leaseValid, maintainGroup, readRefusal } from '../../agent/sessions/owner.ts'
import { config } from '../../agent/sessions/replica.ts'
import type { SessionVote } from '../../protocol/messages.ts'
import { FakeCtx, FakeDirectory, LAN, SESSION, ackFrom, appendMsg, createEntry, deltaEntry, epochEntry, ownerGroup, standby, terminal, voteRequest } from './session-fixtures.ts'

// owner.ts becomeOwner(): `r.lastAcceptedSeq = Math.max(r.lastAcceptedSeq, lastLoggedSeq(r))`
// keeps the number of a delta this member accepted as an earlier owner even when
// that delta was since truncated away. Regaining ownership, it demands the next
// number, so the terminal's retry of the lost delta gets 409 forever.
test('a delta lost to truncation is taken again when its first owner regains ownership', () => {
  const { ctx, r, directory } = ownerGroup()
  clientAppend(ctx, r, terminal('first'), 1, { append: 'a' })
  assert.equal(r.log.entry(2)?.body.kind, 'delta')
  // B won epoch 2 without the delta: A steps down and its entry 2 is overwritten.
  ackFrom(ctx, r, 'B', { epoch: 2, ok: false, matchIndex: 0, lastIndex: 1 })
  onAppend(ctx, r, 'B', appendMsg({ epoch: 2, prevIndex: 1, prevEpoch: 1, entries: [epochEntry(2, 2)], commitIndex: 2 }))
  assert.equal([r.role, r.log.entry(2)?.body.kind, r.commitIndex], ['standby', 'epoch', 2])
  // B dies (its connection closes, and the membership says so); A wins epoch 3
  // with C's vote.
  directory.set('B', 'dead')
  ownerHint(ctx, r, 'B', false)
  watchOwner(ctx, r)
  watchOwner(ctx, r)
  const vote: SessionVote = { type: 'session-vote', sessionId: SESSION, epoch: 3, granted: true, preVote: true, reason: 'would vote', lastIndex: 2, lastEpoch: 2, commitIndex: 2, tail: [] }
  onVote(ctx, r, 'C', vote)
  onVote(ctx, r, 'C', { ...vote, preVote: false, reason: 'granted' })
  assert.equal([r.role, r.epoch], ['owner', 3])
  ackFrom(ctx, r, 'C')
  assert.is(r.commitIndex, 3)
  ctx.take()

  // The terminal never got an answer for seq 1 and retries it.
  clientAppend(ctx, r, terminal('retry'), 1, { append: 'a' })
  const replies = ctx.replies()
  assert.equal(replies.filter((reply) => reply.status === 409), [], `seq 1 was never applied, yet: ${JSON.stringify(replies)}`)
  assert.equal(r.log.entry(4)?.body, { kind: 'delta', clientSeq: 1, op: { append: 'a' } })
})

// owner.ts maintainGroup(): `if (c.members.length < ctx.config.replicas + 1) return startRepair(ctx, r, false)`
// returns even when replacementFor() finds nobody, so rule 3 ("a group of exactly
// two members gets a witness") is never reached with replicas = 2. A group that
// lost its third member and has no eligible replacement stays at two voters: one
// more failure leaves no majority, although an alive node could serve as witness.
test('a two-member group with no eligible third member still gets a witness', () => {
  const { ctx, r, directory } = ownerGroup({ peers: ['A', 'B', 'C', { id: 'W', services: [] }] })
  const start = ctx.now
  directory.set('C', 'dead')
  maintainGroup(ctx, r)
  ctx.now = start + LAN.repairDelayMs
  maintainGroup(ctx, r)
  assert.equal(config(r), { members: ['A', 'B'], witness: null })
  ackFrom(ctx, r, 'B')
  assert.is(r.commitIndex, 2)
  ctx.take()

  maintainGroup(ctx, r)
  assert.equal(ctx.sends('session-append').filter((s) => s.to === 'W').length, 1, 'W, the only alive non-member, should be brought up to date as witness')
  ackFrom(ctx, r, 'W', { ok: false, matchIndex: 0, lastIndex: 0 })
  ackFrom(ctx, r, 'W')
  maintainGroup(ctx, r)
  assert.equal(config(r), { members: ['A', 'B'], witness: 'W' })
})

// follower.ts voteRefusal(): the "owner was heard within ownerTimeoutMs" rule also
// applies on the owner itself (r.owner === ctx.self, lastOwnerContactMs from before
// it became owner). An owner whose lease has run out refuses with "the owner A was
// heard N ms ago" for up to ownerTimeoutMs after its creation or promotion, instead
// of stepping down and granting. Minor: delays an election by < ownerTimeoutMs.
test('an owner whose lease ran out grants a vote even soon after it became owner', () => {
  const { ctx, r } = ownerGroup()
  ctx.now += LAN.ownerTimeoutMs * 0.8 + 10
  const req = voteRequest({ candidate: 'B', epoch: 2, lastEpoch: 1, lastIndex: 1, commitIndex: 1 })
  onVoteRequest(ctx, r, 'B', req)
  const vote = ctx.vote()
  assert.ok(vote.granted, `refused: ${vote.reason}`)
  assert.equal([r.role, r.epoch, r.votedFor], ['standby', 2, 'B'])
})

// sessions.ts #get(): served a read whenever the lease held. A member that
// refuses an append (its log lacks an entry) still renews the lease, and a new
// owner knows the commit index only as far as its predecessor told it: the real
// bench's client saw "index 1750, below 1751 already seen" (RollbackError).
test('a new owner serves reads only once the first entry of its epoch commits', () => {
  const ctx = new FakeCtx('A', new FakeDirectory('A', ['A', 'B', 'C']), 10_000)
  // A holds delta 2, acknowledged by the old owner B, but heard commit only up to 1.
  const r = standby(ctx, [createEntry(), deltaEntry(2, 1)], { commitIndex: 1, owner: 'B' })
  r.epoch = 2
  becomeOwner(ctx, r, 'B', 0)
  // C lacks delta 2: it refuses the append, and its answer renews the lease.
  ackFrom(ctx, r, 'C', { ok: false, matchIndex: 0, lastIndex: 1 })
  assert.ok(leaseValid(ctx, r))
  assert.is(r.commitIndex, 1)
  assert.ok(readRefusal(ctx, r) !== null, 'a read now would show index 1, below the acknowledged 2')
  ackFrom(ctx, r, 'C', { ok: true, matchIndex: 3, lastIndex: 3 })
  assert.is(r.commitIndex, 3)
  assert.is(readRefusal(ctx, r), null)
})

// owner.ts becomeOwner() logged the epoch entry and waited for acks to commit
// it. A group of one (replicas 0) gets none: a restarted single agent whose
// stored commit index lags its log (the store writes commit indexes lazily)
// never committed again. The terminal's retry of a delta in that tail waited
// for its commit (503 at each deadline, forever), and reads were refused as
// "the new owner is still committing its first entry".
test('a group of one commits its epoch entry, and the tail before it, as it becomes owner', () => {
  const ctx = new FakeCtx('A', new FakeDirectory('A', ['A']), 10_000)
  const r = standby(ctx, [createEntry(1, { members: ['A'], witness: null }), deltaEntry(2, 1), deltaEntry(3, 1)], { commitIndex: 1, owner: null })
  r.epoch = 2
  becomeOwner(ctx, r, null, 0)
  assert.is(r.log.lastIndex, 4, 'the epoch entry')
  assert.is(r.commitIndex, 4, 'committed with everything before it')
  assert.is(readRefusal(ctx, r), null)
  // The retry of the delta that was in flight at the crash is a duplicate now.
  clientAppend(ctx, r, terminal('t1'), 2, { append: 'v3' })
  assert.equal(ctx.replies().map((x) => [x.status, x.body.index, x.body.duplicate]), [[200, 3, true]])
})

test.run()
