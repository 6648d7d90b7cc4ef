// The owner of a session: logs deltas, streams them to the group (pipelined, one
// append frame per member per step), acknowledges a delta once the write concern
// holds, keeps its lease, and repairs the group. Functions over a Replica.

import type { EntryBody, LogEntry, SessionAppendAck } from '../../protocol/messages.ts'
import { MAX_SESSION_ENTRIES } from '../../protocol/limits.ts'
import type { PeerKey } from '../core/io.ts'
import { replacementFor, witnessFor } from './placement.ts'
import { LEASE_SAFETY, applyCommitted, config, forgottenByMajority, majority, maybeSnapshot, memberGone, snapshotAt, voters } from './replica.ts'
import { batchReply } from './replica.ts'
import { applyStalled } from './apply.ts'
import type { Ctx, Progress, Replica, Waiter } from './replica.ts'

// Entries in flight to one member beyond its acknowledged index; past this the
// owner waits for acks (the heartbeat resends) instead of queueing more.
const MAX_INFLIGHT_ENTRIES = MAX_SESSION_ENTRIES * 4
// Weight of the newest timed round trip in a member's ackMs.
const ACK_SMOOTHING = 0.25
// A snapshot is resent to a member that has not caught up after this long.
const SNAPSHOT_RESEND_MS = 2_000
// A repair whose new member has not caught up in this long is abandoned.
const REPAIR_TIMEOUT_MS = 30_000

export function newProgress (nextIndex: number): Progress {
  return { nextIndex, matchIndex: 0, lastAckMs: -Infinity, promiseUntilMs: -Infinity, sentAtMs: new Map(), timedSend: null, ackMs: NaN, snapshotSentAtMs: -Infinity, deadSinceMs: null }
}

// Takes ownership of epoch r.epoch (already won): every member's progress starts
// unknown, and an epoch entry is logged, so everything before it commits with it.
export function becomeOwner (ctx: Ctx, r: Replica, previousOwner: PeerKey | null, tookMs: number, sendFrom = r.log.lastIndex + 1): void {
  r.role = 'owner'
  r.owner = ctx.self
  r.ownerGone = false
  r.candidacy = null
  r.diagnosis = null
  r.electionAtMs = Infinity
  r.promotedAtMs = ctx.now
  r.progress = new Map()
  r.lagCheckAtMs = Infinity
  for (const peer of peersOf(ctx, r)) r.progress.set(peer, newProgress(sendFrom))
  // The log alone says which sequence numbers were taken: one this member
  // accepted as an earlier owner may since have been truncated away.
  r.lastAcceptedSeq = lastLoggedSeq(r)
  if (r.epoch > 1 || r.log.lastIndex > 1) appendEntry(ctx, r, { kind: 'epoch' })
  // Until this entry commits, our commit index may lag what the previous owner
  // acknowledged: reads wait for it (Raft's rule for a new leader's reads).
  r.readableFromIndex = r.log.lastIndex
  ctx.emit({ type: 'promoted', sessionId: r.id, service: r.info.service, epoch: r.epoch, previousOwner, tookMs })
  replicateAll(ctx, r)
  // A group of one (replicas 0) gets no ack that would commit the epoch entry:
  // it commits here, with everything before it. Without this, a restarted
  // single agent whose stored commit index lags its log (commit indexes are
  // written lazily) waited forever: a retried delta found in that tail waits
  // for its commit, and no new delta comes to trigger one.
  advanceCommit(ctx, r)
}

// The highest client sequence number in the log, committed or not.
function lastLoggedSeq (r: Replica): number {
  for (let i = r.log.lastIndex; i > r.appliedIndex; i--) {
    const body = r.log.entry(i)?.body
    if (body?.kind === 'delta') return body.clientSeq
  }
  return r.dedup.lastClientSeq
}

// Members and the witness other than us, plus a member being added.
function peersOf (ctx: Ctx, r: Replica): PeerKey[] {
  const peers = voters(r).filter((p) => p !== ctx.self)
  if (r.repair !== null && !peers.includes(r.repair.adding)) peers.push(r.repair.adding)
  return peers
}

export function appendEntry (ctx: Ctx, r: Replica, body: EntryBody): number {
  const index = r.log.lastIndex + 1
  const entry = { index, epoch: r.epoch, body }
  r.log.append(entry)
  r.activeAtMs = ctx.now
  r.quietAsk = null
  ctx.persist({ kind: 'session-entries', sessionId: r.id, entries: [entry] })
  return index
}

// ---- terminals' deltas --------------------------------------------------
// In deltas.ts (one delta, or a batch of them); re-exported for the callers.
export { clientAppend } from './deltas.ts'

// Promoted within the last vote timeout, and the first entry of our epoch not
// yet committed: nobody has answered this owner yet.
export function freshOwner (ctx: Ctx, r: Replica): boolean {
  return r.role === 'owner' && r.commitIndex < r.readableFromIndex && ctx.now - r.promotedAtMs < ctx.config.voteTimeoutMs
}

export function wait (ctx: Ctx, r: Replica, index: number, waiter: Waiter): void {
  const list = r.waiters.get(index)
  if (list === undefined) r.waiters.set(index, [waiter])
  else list.push(waiter)
  void ctx
}

// ---- replication --------------------------------------------------------

export function replicateAll (ctx: Ctx, r: Replica): void {
  for (const [peer, progress] of r.progress) replicateTo(ctx, r, peer, progress, false)
}

// Sends what `peer` lacks (or a heartbeat). The next index advances optimistically
// so that appends pipeline; a refusal moves it back.
export function replicateTo (ctx: Ctx, r: Replica, peer: PeerKey, p: Progress, heartbeat: boolean): void {
  if (!r.log.has(p.nextIndex)) return sendSnapshot(ctx, r, peer, p)
  const inflight = p.nextIndex - 1 - p.matchIndex
  const room = Math.max(0, Math.min(ctx.config.maxBatchEntries, MAX_INFLIGHT_ENTRIES - inflight))
  const entries = p.nextIndex <= r.log.lastIndex ? withinBytes(r.log.slice(p.nextIndex, room)) : []
  if (entries.length === 0 && !heartbeat) return
  const prevIndex = p.nextIndex - 1
  const seq = ++r.seq
  p.sentAtMs.set(seq, ctx.now)
  if (p.sentAtMs.size > 4_096) p.sentAtMs.delete(p.sentAtMs.keys().next().value as number)
  if (entries.length > 0 && p.timedSend === null) p.timedSend = { seq, sentAtMs: ctx.now }
  ctx.send(peer, {
    type: 'session-append', sessionId: r.id, epoch: r.epoch, seq,
    prevIndex, prevEpoch: r.log.epochAt(prevIndex) ?? 0, commitIndex: r.commitIndex, entries
  })
  p.nextIndex += entries.length
}

// Entries in one append stay within this many bytes of ops (a frame may not
// exceed MAX_SESSION_FRAME_BYTES; 4,096 entries of 64 KiB ops would).
const MAX_APPEND_BYTES = 4 * 1024 * 1024
const entryBytes = new WeakMap<LogEntry, number>()

function sizeOf (entry: LogEntry): number {
  let bytes = entryBytes.get(entry)
  if (bytes === undefined) {
    bytes = entry.body.kind === 'delta' ? JSON.stringify(entry.body.op).length + 16 : 256
    entryBytes.set(entry, bytes)
  }
  return bytes
}

// The longest prefix within MAX_APPEND_BYTES (always at least one entry).
export function withinBytes (entries: LogEntry[]): LogEntry[] {
  let total = 0
  for (let i = 0; i < entries.length; i++) {
    total += sizeOf(entries[i])
    if (total > MAX_APPEND_BYTES && i > 0) return entries.slice(0, i)
  }
  return entries
}

function sendSnapshot (ctx: Ctx, r: Replica, peer: PeerKey, p: Progress): void {
  if (ctx.now - p.snapshotSentAtMs < SNAPSHOT_RESEND_MS) return
  const snapshot = snapshotAt(r, r.appliedIndex)
  if (snapshot === null) return
  const seq = ++r.seq
  p.sentAtMs.set(seq, ctx.now)
  p.snapshotSentAtMs = ctx.now
  ctx.send(peer, { type: 'session-snapshot', sessionId: r.id, epoch: r.epoch, seq, snapshot })
  p.nextIndex = snapshot.index + 1
}

export function heartbeat (ctx: Ctx, r: Replica): void {
  // On a grid shared by every session this agent owns: their heartbeats fall due
  // in the same tick, so the host sends each peer one write carrying them all
  // instead of one write per session (idle sessions cost per peer, not per
  // session, in syscalls and encryption).
  const hb = ctx.config.heartbeatMs
  r.heartbeatAtMs = (Math.floor(ctx.now / hb) + 1) * hb
  if (ctx.quiet.holdsHeartbeat(ctx, r)) return
  for (const [peer, progress] of r.progress) replicateTo(ctx, r, peer, progress, true)
}

export function onAck (ctx: Ctx, r: Replica, from: PeerKey, ack: SessionAppendAck): void {
  const p = r.progress.get(from)
  // Only what we replicate to counts; a removed member's epoch, inflated by
  // elections it could not win in our group, must not unseat us.
  if (p === undefined) return
  // A member of the group in a later epoch: someone else owns the session now.
  if (ack.epoch > r.epoch && voters(r).includes(from)) return stepDown(ctx, r, ack.epoch, null, `${from} is in epoch ${ack.epoch}`)
  if (ack.epoch !== r.epoch) return
  // A member that held our entries and now holds nothing of the session forgot
  // it (forgottenByMajority): the session was closed, or a later epoch's group
  // dropped that member. Its refusal promises nothing and says nothing of its
  // liveness: counted as an ack, it kept an owner cut off through a takeover
  // and a close serving reads from its stale state under a lease renewed by
  // members that had forgotten the session, for good. Once no majority is left
  // that holds it, we step down.
  if (!ack.ok && ack.lastIndex === 0 && ack.matchIndex === 0 && p.matchIndex > 0) {
    if (forgottenByMajority(ctx, r, from)) stepDown(ctx, r, r.epoch, null, 'a majority of the group forgot the session')
    return
  }
  p.lastAckMs = ctx.now
  p.deadSinceMs = null
  const sentAt = p.sentAtMs.get(ack.seq)
  if (sentAt !== undefined) p.promiseUntilMs = Math.max(p.promiseUntilMs, sentAt + ctx.config.ownerTimeoutMs * LEASE_SAFETY)
  // Sends up to this one are settled: an earlier send's ack, if it still
  // comes, promises less. Kept until then, a busy session held 4,096 send
  // times per member for good, and every send and ack paid for the big map.
  for (const seq of p.sentAtMs.keys()) {
    if (seq > ack.seq) break
    p.sentAtMs.delete(seq)
  }
  if (ack.ok) {
    if (p.timedSend !== null && ack.seq >= p.timedSend.seq) {
      const tookMs = Math.max(0, ctx.arrivedMs - p.timedSend.sentAtMs)
      p.ackMs = Number.isNaN(p.ackMs) ? tookMs : p.ackMs + ACK_SMOOTHING * (tookMs - p.ackMs)
      p.timedSend = null
    }
    if (r.forgottenBy.size > 0) r.forgottenBy.delete(from)
    p.matchIndex = Math.max(p.matchIndex, ack.matchIndex)
    p.nextIndex = Math.max(p.nextIndex, p.matchIndex + 1)
    advanceCommit(ctx, r)
    return
  }
  // Refused: the member lacks or disagrees on what precedes; resend from its hint.
  p.nextIndex = Math.max(p.matchIndex + 1, Math.min(p.nextIndex, ack.lastIndex + 1))
  replicateTo(ctx, r, from, p, false)
}

// The transport lost a member: it stops counting as live for the write concern
// at once (it counts again with its next acknowledgement).
export function memberLost (ctx: Ctx, r: Replica, peer: PeerKey): void {
  const p = r.progress.get(peer)
  if (p === undefined) return
  p.lastAckMs = -Infinity
  p.timedSend = null
  advanceCommit(ctx, r)
}

// The lease: a majority of the group (us included) promised, recently enough,
// not to vote for anyone else. Without it the owner acknowledges nothing.
export function leaseValid (ctx: Ctx, r: Replica): boolean {
  const group = voters(r)
  let promised = group.includes(ctx.self) ? 1 : 0
  for (const peer of group) {
    if (peer === ctx.self) continue
    const p = r.progress.get(peer)
    if (p !== undefined && (p.promiseUntilMs > ctx.now || (r.quiet !== null && ctx.quiet.promiseUntil(ctx, r, peer) > ctx.now))) promised++
  }
  return promised >= majority(group.length)
}

// Why the owner may not serve a read now, or null. A lease alone is not enough:
// a member's refusal (its log differs) renews the lease without committing
// anything, and a new owner's commit index may lag what its predecessor
// acknowledged until the first entry of its own epoch commits.
export function readRefusal (ctx: Ctx, r: Replica): string | null {
  if (!leaseValid(ctx, r)) return 'the owner cannot reach a majority of its group'
  if (r.commitIndex < r.readableFromIndex) return 'the new owner is still committing its first entry; retry'
  return applyStalled(r)
}

// Commits the highest index of this epoch that a majority of the group holds
// and, under the 'all' concern, every live member that is not lagging holds too.
export function advanceCommit (ctx: Ctx, r: Replica): void {
  const group = voters(r)
  const matches = group.map((peer) => peer === ctx.self ? r.log.lastIndex : (r.progress.get(peer)?.matchIndex ?? 0)).sort((a, b) => b - a)
  let target = matches[majority(group.length) - 1] ?? 0
  r.lagCheckAtMs = Infinity
  // A broken core for the simulator's own test (its checkers must catch it):
  // everything logged here counts as committed, replicated or not (and it is
  // replicated only with the next heartbeat).
  if (ctx.config.plantedFault === 'ack-before-replication') target = r.log.lastIndex
  else if (ctx.config.writeConcern === 'all') {
    for (const peer of group) {
      if (peer === ctx.self || !isLive(ctx, r, peer)) continue
      const p = r.progress.get(peer)
      const match = p?.matchIndex ?? 0
      if (match >= target) continue
      // Waited for until it has left a send unanswered memberLagMs; the tick
      // at that time commits without it.
      const lagAtMs = p === undefined ? Infinity : oldestUnansweredMs(p) + ctx.config.memberLagMs
      if (ctx.now >= lagAtMs) continue
      target = match
      r.lagCheckAtMs = Math.min(r.lagCheckAtMs, lagAtMs)
    }
  }
  // Only entries of our own epoch are committed by counting (Raft §5.4.2).
  if (target <= r.commitIndex || r.log.epochAt(target) !== r.epoch) return
  r.commitIndex = target
  ctx.persist({ kind: 'session-commit', sessionId: r.id, commitIndex: target })
  applyCommitted(ctx, r)
  answerWaiters(ctx, r)
  maybeSnapshot(ctx, r)
}

// When the oldest send the member has not answered left (sends are kept in
// order, and an ack settles every send up to it), or Infinity.
function oldestUnansweredMs (p: Progress): number {
  for (const sentAtMs of p.sentAtMs.values()) return sentAtMs
  return Infinity
}

// A member counts for the 'all' concern while the membership thinks it alive and
// it has answered within memberStaleMs.
export function isLive (ctx: Ctx, r: Replica, peer: PeerKey): boolean {
  const status = ctx.directory.status(peer)
  if (status !== 'alive' && status !== 'suspect') return false
  const p = r.progress.get(peer)
  return p !== undefined && ctx.now - p.lastAckMs < ctx.config.memberStaleMs
}

function answerWaiters (ctx: Ctx, r: Replica): void {
  const valid = leaseValid(ctx, r)
  for (const [index, list] of r.waiters) {
    if (index > r.commitIndex) continue
    r.waiters.delete(index)
    for (const waiter of list) {
      if (!valid) ctx.reply(waiter.target, { status: 503, body: { error: 'the owner lost its lease; retry', retryAfterMs: ctx.config.heartbeatMs } })
      else answer(ctx, r, index, waiter)
    }
  }
}

function answer (ctx: Ctx, r: Replica, index: number, waiter: Waiter): void {
  if (waiter.kind === 'append') {
    ctx.emit({ type: 'acknowledged', sessionId: r.id, epoch: r.epoch, index, clientSeq: waiter.clientSeq })
    ctx.reply(waiter.target, { status: 200, body: { index, epoch: r.epoch } }, { sessionId: r.id, index })
  } else if (waiter.kind === 'batch') {
    for (const item of waiter.items) if (!item.duplicate) ctx.emit({ type: 'acknowledged', sessionId: r.id, epoch: r.epoch, index: item.index, clientSeq: item.clientSeq })
    ctx.reply(waiter.target, batchReply(r, waiter.items, waiter.refused), { sessionId: r.id, index })
  } else if (waiter.kind === 'open') {
    ctx.reply(waiter.target, { status: 201, body: { sessionId: r.id, service: r.info.service, epoch: r.epoch, config: config(r) } })
  } else {
    ctx.reply(waiter.target, { status: 200, body: { sessionId: r.id, closed: true } })
  }
}

// Answers 503 to whoever waited too long: nothing was acknowledged (the delta
// may still commit later; its retry then gets its index, not a duplicate).
export function expireWaiters (ctx: Ctx, r: Replica): void {
  for (const [index, list] of r.waiters) {
    if (!list.some((waiter) => waiter.deadlineMs <= ctx.now)) continue
    const remaining = list.filter((waiter) => {
      if (waiter.deadlineMs > ctx.now) return true
      ctx.reply(waiter.target, { status: 503, body: { error: 'the write concern was not met in time; nothing was acknowledged', retryAfterMs: ctx.config.heartbeatMs } })
      return false
    })
    if (remaining.length === 0) r.waiters.delete(index)
    else r.waiters.set(index, remaining)
  }
}

export function nextWaiterDeadline (r: Replica): number {
  let next = Infinity
  for (const list of r.waiters.values()) for (const waiter of list) next = Math.min(next, waiter.deadlineMs)
  return next
}

// Someone else owns a later epoch (or we lost the right to own): become a
// standby; pending terminals are told to retry elsewhere.
export function stepDown (ctx: Ctx, r: Replica, epoch: number, owner: PeerKey | null, reason: string): void {
  const wasOwner = r.role === 'owner'
  if (epoch > r.epoch) {
    r.epoch = epoch
    r.votedFor = null
    ctx.persist({ kind: 'session-meta', sessionId: r.id, epoch, votedFor: null })
  }
  r.role = config(r).members.includes(ctx.self) ? 'standby' : (config(r).witness === ctx.self ? 'witness' : 'standby')
  r.owner = owner
  r.candidacy = null
  r.repair = null
  r.lastOwnerContactMs = ctx.now
  r.ownerGone = false
  r.electionAtMs = Infinity
  for (const list of r.waiters.values()) {
    for (const waiter of list) ctx.reply(waiter.target, { status: 503, body: { error: `this agent no longer owns the session (${reason})`, retryAfterMs: ctx.config.heartbeatMs } })
  }
  r.waiters.clear()
  r.progress.clear()
  if (wasOwner) ctx.emit({ type: 'demoted', sessionId: r.id, service: r.info.service, epoch: r.epoch, owner })
}

// ---- group repair ----------------------------------------------------------

// One change at a time, each a config entry that takes effect when appended
// (single-member changes keep every old and new majority overlapping):
//  1. a member or witness dead for repairDelayMs is removed first, so the config
//     never holds more dead members than before (adding first, then losing the
//     newcomer, can leave a group without a live majority for good);
//  2. a group short of replicas + 1 members brings the best eligible node up to
//     date, then adds it;
//  3. a group of exactly two members gets a witness (which holds the log and
//     votes, but never owns), and loses it once it has three members again.
export function maintainGroup (ctx: Ctx, r: Replica): void {
  if (!configSettled(r)) return
  if (r.repair !== null) return advanceRepair(ctx, r)
  const c = config(r)
  const dead = deadPeer(ctx, r, [...c.members, ...(c.witness === null ? [] : [c.witness])])
  if (dead !== null) {
    const members = c.members.filter((m) => m !== dead)
    // Never remove the last member; a dead witness just goes.
    if (members.length === 0) return
    return appendConfig(ctx, r, { members, witness: dead === c.witness ? null : c.witness }, `${dead} is dead`)
  }
  if (c.members.length < ctx.config.replicas + 1) startRepair(ctx, r, false)
  // Short of members with nobody eligible to add: a group of two still gets a
  // witness, so that one more failure leaves a majority.
  if (r.repair === null && c.members.length === 2 && c.witness === null) return startRepair(ctx, r, true)
  if (r.repair !== null) return
  if (c.members.length !== 2 && c.witness !== null) appendConfig(ctx, r, { members: c.members, witness: null }, 'the witness is no longer needed')
}

// The next change may start: an entry of this owner's epoch is committed (its
// epoch entry, becomeOwner()), and so is the last config entry. The first
// condition is Raft's rule for single-member changes (Ongaro, raft-dev, 2015):
// until the new owner commits in its epoch, a change some earlier owner logged
// may sit uncommitted on other members, and a change made on top of a config
// that never commits can pair with it into two configs whose majorities do not
// overlap. Committing the epoch entry first settles every earlier change: it
// commits the ones in this log, and ends any other (their owner's epoch is
// over, and its entries are truncated where they conflict).
export function configSettled (r: Replica): boolean {
  if (r.log.epochAt(r.commitIndex) !== r.epoch) return false
  for (let i = r.log.lastIndex; i > r.commitIndex; i--) {
    const kind = r.log.entry(i)?.body.kind
    if (kind === 'config' || kind === 'create') return false
  }
  return true
}

function deadPeer (ctx: Ctx, r: Replica, peers: PeerKey[]): PeerKey | null {
  for (const peer of peers) {
    if (peer === ctx.self) continue
    const status = ctx.directory.status(peer)
    const p = r.progress.get(peer)
    const gone = memberGone(status)
    if (!gone || p === undefined) {
      if (p !== undefined) p.deadSinceMs = null
      continue
    }
    p.deadSinceMs ??= ctx.now
    if (ctx.now - p.deadSinceMs >= ctx.config.repairDelayMs) return peer
  }
  return null
}

function startRepair (ctx: Ctx, r: Replica, asWitness: boolean): void {
  const c = config(r)
  const alive = ctx.directory.alive()
  const adding = asWitness
    ? witnessFor(alive, r.id, c.members)
    : replacementFor(alive, r.id, r.info.service, r.info.position, c, ctx.config)
  if (adding === null) return
  r.repair = { adding, asWitness, removing: null, startedMs: ctx.now, phase: 'catch-up' }
  r.progress.set(adding, newProgress(r.log.lastIndex + 1))
  replicateTo(ctx, r, adding, r.progress.get(adding) as Progress, true)
}

// The newcomer is added once it holds everything committed; one that does not
// catch up in time (dead, or too slow) is dropped and another is tried later.
function advanceRepair (ctx: Ctx, r: Replica): void {
  const repair = r.repair as NonNullable<Replica['repair']>
  const p = r.progress.get(repair.adding)
  if (p === undefined || memberGone(ctx.directory.status(repair.adding)) || ctx.now - repair.startedMs > REPAIR_TIMEOUT_MS) return abandonRepair(r)
  if (p.matchIndex < r.commitIndex) return
  const c = config(r)
  r.repair = null
  const next = repair.asWitness ? { members: c.members, witness: repair.adding } : { members: [...c.members, repair.adding], witness: c.witness }
  appendConfig(ctx, r, next, `${repair.adding} joins as ${repair.asWitness ? 'witness' : 'member'}`)
}

function abandonRepair (r: Replica): void {
  const adding = r.repair?.adding
  r.repair = null
  if (adding !== undefined && !voters(r).includes(adding)) r.progress.delete(adding)
}

function appendConfig (ctx: Ctx, r: Replica, next: { members: PeerKey[]; witness: PeerKey | null }, reason: string): void {
  appendEntry(ctx, r, { kind: 'config', config: next })
  for (const peer of voters(r)) if (peer !== ctx.self && !r.progress.has(peer)) r.progress.set(peer, newProgress(r.log.lastIndex))
  for (const peer of [...r.progress.keys()]) if (!voters(r).includes(peer) && r.repair?.adding !== peer) r.progress.delete(peer)
  ctx.emit({ type: 'group-changed', sessionId: r.id, epoch: r.epoch, config: next, reason })
  replicateAll(ctx, r)
  advanceCommit(ctx, r)
}

// Whether the group, as this owner holds it, counts `peer`: a member, the
// witness, or the agent being brought up to date to join. The owner answers
// the service diagnosis (M2.1) only of those (sessions.ts, #onDiagnose).
export function countsInGroup (r: Replica, peer: PeerKey): boolean {
  const group = config(r)
  return group.members.includes(peer) || group.witness === peer || r.repair?.adding === peer
}
