// A member that does not own the session (standby or witness): accepts the
// owner's appends and snapshots, acknowledges what it holds durably, and grants
// votes under two rules: one vote per epoch (persisted), and none while it has
// heard the current owner within ownerTimeoutMs unless it saw that owner die.

import type { SessionAppend, SessionSnapshot, SessionVote, SessionVoteRequest } from '../../protocol/messages.ts'
import { MAX_SESSION_ENTRIES } from '../../protocol/limits.ts'
import type { PeerKey } from '../core/io.ts'
import { checkOwner, deferTo, NOT_A_MEMBER, promiseHolds, rivalRefusal, SHIELD_REFUSAL, VOTED_ELSEWHERE } from './election.ts'
import { ReplicaLog } from './log.ts'
import { leaseValid, stepDown, withinBytes } from './owner.ts'
import { applyCommitted, config, loadSnapshotState, maybeSnapshot, newReplica } from './replica.ts'
import type { Ctx, Replica } from './replica.ts'
import { resumeIfPast } from './apply.ts'

// An append from the owner of `msg.epoch`. Returns the replica (created when the
// append starts the session), or null when it cannot be taken.
export function onAppend (ctx: Ctx, existing: Replica | undefined, from: PeerKey, msg: SessionAppend): Replica | null {
  const r = existing ?? createFromAppend(ctx, msg)
  if (r === null) {
    // We know nothing of this session: ask for it from the start.
    ctx.send(from, { type: 'session-append-ack', sessionId: msg.sessionId, epoch: msg.epoch, seq: msg.seq, ok: false, matchIndex: 0, lastIndex: 0 })
    return null
  }
  if (msg.epoch < r.epoch) {
    refuse(ctx, r, from, msg.seq)
    return r
  }
  acceptOwner(ctx, r, from, msg.epoch)
  const conflict = reconcile(ctx, r, msg)
  if (conflict !== null) {
    ctx.send(from, { type: 'session-append-ack', sessionId: r.id, epoch: r.epoch, seq: msg.seq, ok: false, matchIndex: 0, lastIndex: conflict })
    return r
  }
  const matchIndex = msg.prevIndex + msg.entries.length
  r.knownCommitIndex = Math.max(r.knownCommitIndex, msg.commitIndex)
  r.commitIndex = Math.max(r.commitIndex, Math.min(msg.commitIndex, matchIndex))
  applyCommitted(ctx, r)
  maybeSnapshot(ctx, r)
  ctx.send(from, { type: 'session-append-ack', sessionId: r.id, epoch: r.epoch, seq: msg.seq, ok: true, matchIndex, lastIndex: r.log.lastIndex })
  return r
}

function createFromAppend (ctx: Ctx, msg: SessionAppend): Replica | null {
  const first = msg.entries[0]
  if (msg.prevIndex !== 0 || first === undefined || first.body.kind !== 'create') return null
  const r = newReplica(first.body.info, ctx.now)
  r.lastOwnerContactMs = ctx.now
  return r
}

function refuse (ctx: Ctx, r: Replica, from: PeerKey, seq: number): void {
  ctx.send(from, { type: 'session-append-ack', sessionId: r.id, epoch: r.epoch, seq, ok: false, matchIndex: 0, lastIndex: r.log.lastIndex })
}

// `from` owns `epoch` (≥ ours): follow it.
function acceptOwner (ctx: Ctx, r: Replica, from: PeerKey, epoch: number): void {
  if (epoch > r.epoch || r.role === 'owner' || r.role === 'candidate') stepDown(ctx, r, epoch, from, `${from} owns epoch ${epoch}`)
  r.owner = from
  r.lastOwnerContactMs = ctx.now
  // An owner serves the session and counts us in: whatever made us give up on
  // it no longer holds.
  r.orphanedAtMs = null
  r.forgottenBy.clear()
  r.ownerLostMs = null
  r.ownerGone = false
  r.diagnosis = null
  r.electionAtMs = Infinity
  r.role = config(r).witness === ctx.self ? 'witness' : 'standby'
}

// Log matching: our entry at prevIndex must carry prevEpoch. Entries that
// conflict with the owner's are dropped (they were never acknowledged: the owner
// of a later epoch would have them otherwise). Returns null on success, else the
// index to resend from (minus one).
function reconcile (ctx: Ctx, r: Replica, msg: SessionAppend): number | null {
  if (msg.prevIndex > r.log.lastIndex) return r.log.lastIndex
  const have = r.log.epochAt(msg.prevIndex)
  // Below our snapshot: everything there is committed and matches.
  if (have === null && msg.prevIndex < r.log.snapshotIndex) return skipCovered(ctx, r, msg)
  if (have !== msg.prevEpoch) return Math.max(r.commitIndex, msg.prevIndex - 1)
  appendNew(ctx, r, msg.entries)
  return null
}

function skipCovered (ctx: Ctx, r: Replica, msg: SessionAppend): number | null {
  const newer = msg.entries.filter((entry) => entry.index > r.log.snapshotIndex)
  appendNew(ctx, r, newer)
  return null
}

function appendNew (ctx: Ctx, r: Replica, entries: SessionAppend['entries']): void {
  const fresh: typeof entries = []
  for (const entry of entries) {
    if (entry.index <= r.log.snapshotIndex) continue
    const mine = r.log.epochAt(entry.index)
    if (mine === entry.epoch && entry.index <= r.log.lastIndex) continue
    if (entry.index <= r.log.lastIndex) truncate(ctx, r, entry.index)
    r.log.append(entry)
    fresh.push(entry)
  }
  if (fresh.length > 0) ctx.persist({ kind: 'session-entries', sessionId: r.id, entries: fresh })
}

export function truncate (ctx: Ctx, r: Replica, fromIndex: number): void {
  const dropped = r.log.truncateFrom(fromIndex)
  if (dropped === 0) return
  ctx.persist({ kind: 'session-truncate', sessionId: r.id, fromIndex })
  ctx.emit({ type: 'truncated', sessionId: r.id, fromIndex, entries: dropped })
}

export function onSnapshot (ctx: Ctx, existing: Replica | undefined, from: PeerKey, msg: SessionSnapshot): Replica {
  const r = existing ?? newReplica(msg.snapshot.info, ctx.now)
  if (msg.epoch < r.epoch) {
    refuse(ctx, r, from, msg.seq)
    return r
  }
  acceptOwner(ctx, r, from, msg.epoch)
  const snapshot = msg.snapshot
  r.knownCommitIndex = Math.max(r.knownCommitIndex, snapshot.index)
  if (snapshot.index > r.appliedIndex) {
    r.log = ReplicaLog.from(snapshot, [])
    loadSnapshotState(r, snapshot)
    ctx.persist({ kind: 'session-snapshot', sessionId: r.id, snapshot })
    ctx.persist({ kind: 'session-truncate', sessionId: r.id, fromIndex: snapshot.index + 1 })
    ctx.emit({ type: 'snapshot-installed', sessionId: r.id, index: snapshot.index })
    resumeIfPast(ctx, r)
  }
  // We match the owner up to the snapshot (committed there, so committed here
  // too), not necessarily beyond it: a tail we kept may still diverge.
  ctx.send(from, { type: 'session-append-ack', sessionId: r.id, epoch: r.epoch, seq: msg.seq, ok: true, matchIndex: snapshot.index, lastIndex: r.log.lastIndex })
  return r
}

// ---- votes --------------------------------------------------------------

export function onVoteRequest (ctx: Ctx, r: Replica, from: PeerKey, req: SessionVoteRequest): void {
  const refusal = voteRefusal(ctx, r, req)
  if (refusal !== null) {
    // A member standing for election is a hint that the owner is gone: if we
    // refuse only because we heard the owner lately, check on it now, so that
    // the candidate's next request (it resends every heartbeat) can be granted
    // once we have seen the owner fail, instead of after a lost election.
    if (refusal.startsWith(SHIELD_REFUSAL)) checkOwner(ctx, r, `${req.candidate} stands for epoch ${req.epoch}`)
    return ctx.send(from, vote(r, r.epoch, false, req.preVote, refusal, []))
  }
  // A pre-vote changes nothing here: it only says we would vote.
  if (req.preVote) {
    deferTo(ctx, r, req.candidate)
    return ctx.send(from, vote(r, req.epoch, true, true, 'would vote', []))
  }
  if (req.epoch > r.epoch) stepDown(ctx, r, req.epoch, null, `${req.candidate} stands for epoch ${req.epoch}`)
  r.votedFor = req.candidate
  ctx.persist({ kind: 'session-meta', sessionId: r.id, epoch: r.epoch, votedFor: req.candidate })
  // Give the candidate time to show up as owner before standing ourselves: a
  // diagnosis of the old owner still pending would otherwise give up on it at
  // its deadline and stand for the next epoch, unseating the candidate we just
  // elected before its first append reaches us (seen in the bench's SIGSTOP
  // rounds: promoted, then demoted 0-100 ms later).
  r.ownerGone = false
  r.diagnosis = null
  r.lastOwnerContactMs = ctx.now
  const tail = config(r).members.includes(req.candidate) ? r.log.slice(req.commitIndex + 1, MAX_SESSION_ENTRIES) : []
  ctx.send(from, vote(r, req.epoch, true, false, 'granted', tail))
}

function voteRefusal (ctx: Ctx, r: Replica, req: SessionVoteRequest): string | null {
  if (req.epoch < r.epoch) return `stale epoch ${req.epoch} < ${r.epoch}`
  if (req.epoch === r.epoch && r.votedFor !== null && r.votedFor !== req.candidate) return `${VOTED_ELSEWHERE} ${r.votedFor} in epoch ${r.epoch}`
  // A candidate absent from our latest config (committed or not) gets a vote
  // only as Raft gives one: its log at least as up to date as ours, so that the
  // grant hands it nothing (completeLog takes only a longer tail than its own),
  // and only if it was a member in some config of our log (never a witness,
  // never a peer that was not in the group). Votes to shorter logs, which hand
  // over the entries the candidate lacks, go to members only: relaxed to
  // "absent from the committed config too", a member dropped two changes ago
  // won with a group that missed an acknowledged delta (SEED=2759 of a
  // 5-terminal chaos sweep). Refused outright, a member whose change was the
  // later one was refused for good by one holding an older owner's uncommitted
  // change (which the new epoch truncates), and took itself for removed
  // (SEED=2253 of the same sweep).
  if (!config(r).members.includes(req.candidate) && !upToDateFormerMember(r, req)) return `${req.candidate} ${NOT_A_MEMBER}`
  const rival = rivalRefusal(ctx, r, req.candidate, req.epoch, req.preVote)
  if (rival !== null) return rival
  if (r.role === 'owner' && leaseValid(ctx, r)) return 'the owner holds its lease'
  // A majority elected us within the last vote timeout and our lease is not
  // yet in (no member answered our first append): a rival asking for a later
  // epoch now is one that has not heard of our win, not one that saw us fail.
  if (r.role === 'owner' && ctx.now - r.promotedAtMs < ctx.config.voteTimeoutMs) return `${JUST_ELECTED} in epoch ${r.epoch}`
  // The promise behind the owner's lease (election.ts, promiseHolds): no vote
  // while it holds, whatever the membership or a diagnosis says.
  if (r.owner !== req.candidate && promiseHolds(ctx, r)) {
    return ctx.now < r.restartShieldUntilMs
      ? `${SHIELD_REFUSAL} this agent followed before it restarted may still count on its promise`
      : `${SHIELD_REFUSAL} ${r.owner} was heard ${Math.round(ctx.now - r.lastOwnerContactMs)} ms ago`
  }
  // No vote for a candidate missing what we know was acknowledged.
  const committedEpoch = r.log.epochAt(r.commitIndex) ?? 0
  if (ReplicaLog.compare(req.lastEpoch, req.lastIndex, committedEpoch, r.commitIndex) < 0) return 'the candidate lacks acknowledged entries'
  // We must be able to hand it the entries it may lack.
  if (!r.log.has(req.commitIndex + 1) && req.commitIndex < r.log.lastIndex) return 'the candidate is too far behind to complete from this log'
  if (r.log.lastIndex - req.commitIndex > MAX_SESSION_ENTRIES) return 'the candidate is too far behind'
  // The whole tail must fit in one vote: a cut tail could drop acknowledged entries.
  const tail = r.log.slice(req.commitIndex + 1, MAX_SESSION_ENTRIES)
  if (withinBytes(tail).length < tail.length) return 'the candidate is too far behind to complete in one vote'
  return null
}

function upToDateFormerMember (r: Replica, req: SessionVoteRequest): boolean {
  return config(r).witness !== req.candidate && r.log.hadMember(req.candidate) &&
    ReplicaLog.compare(req.lastEpoch, req.lastIndex, r.log.lastEpoch, r.log.lastIndex) >= 0
}

// The refusal of an owner elected moments ago, before its lease is in.
export const JUST_ELECTED = 'the owner was just elected'

function vote (r: Replica, epoch: number, granted: boolean, preVote: boolean, reason: string, tail: SessionVote['tail']): SessionVote {
  return {
    type: 'session-vote', sessionId: r.id, epoch, granted, preVote, reason,
    lastIndex: r.log.lastIndex, lastEpoch: r.log.lastEpoch, commitIndex: r.commitIndex, tail
  }
}
