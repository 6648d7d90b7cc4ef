// Regressions: three bugs the unit tests of the sessions core found (each test
// failed against the code before its fix). The comments above each test describe
// the bug as it was.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { onVote, watchOwner } from '../../agent/sessions/election.ts'
import { onAppend, onVoteRequest } from '../../agent/sessions/follower.ts'
import { clientAppend, maintainGroup } from '../../agent/sessions/owner.ts'
import { config } from '../../agent/sessions/replica.ts'
import type { SessionVote } from '../../protocol/messages.ts'
import { LAN, SESSION, ackFrom, appendMsg, epochEntry, ownerGroup, terminal, voteRequest } from './session-fixtures.ts'

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
  // B dies; A wins epoch 3 with C's vote.
  directory.set('B', 'dead')
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

test.run()
