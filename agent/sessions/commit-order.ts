// Which effects of a step may leave before the step's durable records are
// committed (fsynced). Shared by the libp2p host (agent/runtime/sessions-host.ts)
// and the simulator (sim/node.ts), so the simulator's checkers exercise the order
// the real agent uses.
//
// The rule: a step's effects wait for its commit, except an owner's
// `session-append` frames (entries to standbys) of a session whose durable records
// in this step are only `session-entries` and `session-commit`. Those frames leave
// first, and the owner's fsync runs while they travel and the standbys fsync: the
// two fsyncs of an acknowledgement overlap instead of adding up (Raft's leader
// writes its log in parallel with AppendEntries, §10.2.1 of Ongaro's thesis).
//
// Why no acknowledged write can be lost by this:
// - A terminal's answer (`reply`) always waits for the owner's commit of its step,
//   and the owner answers only once the write concern's standbys acked, and a
//   standby's ack (`session-append-ack`) leaves only after ITS commit. So an
//   acknowledged delta is fsynced on the owner and on every standby the write
//   concern counted, as before. The owner counts itself towards the write concern
//   with entries of an earlier step only once that step has committed: the host
//   commits a step before it steps any later input (no ack can be processed
//   between the send and the commit of the entries it acknowledges). With the
//   fsync off the event loop (sessions-host.ts) this still holds: the driver
//   queues every input from the step until its fsync has returned, and "late"
//   means after that return, not after the write.
// - If the owner dies after sending and before committing, standbys hold entries
//   the owner lost. None of them was acknowledged (the answer waited for the
//   commit). On restart the owner is a standby of its stored epoch (replica.ts,
//   restoreReplica); it can own again only by winning an election of a later
//   epoch, so no other entry is ever written at (index, epoch) of a lost one: the
//   log matching property holds, and the new owner either keeps those entries
//   (they were never answered: a retried clientSeq finds them as duplicates) or
//   truncates them as an unacknowledged tail.
// - Anything whose meaning is "I have durably stored X" waits: acks, votes, and
//   every frame of a step that changes a session's epoch, vote, snapshot or
//   truncates its log (`session-meta`, `session-snapshot`, `session-truncate`,
//   `session-delete`), so an owner never sends entries of an epoch it has not
//   stored, and a new session's first frames wait for its creation to be stored.

import type { SessionDurable, SessionEffect } from './types.ts'

export type CommitOrder = {
  // May leave at once, before the commit.
  early: SessionEffect[]
  // After the commit, in their original order.
  late: SessionEffect[]
}

export function orderAroundCommit (effects: SessionEffect[], durable: SessionDurable[]): CommitOrder {
  if (durable.length === 0) return { early: [], late: effects }
  // Sessions whose records in this step are more than log appends.
  let held: Set<string> | null = null
  for (const record of durable) {
    if (record.kind !== 'session-entries' && record.kind !== 'session-commit') (held ??= new Set()).add(record.sessionId)
  }
  const early: SessionEffect[] = []
  const late: SessionEffect[] = []
  for (const effect of effects) {
    if (effect.kind === 'send' && effect.message.type === 'session-append' && !(held?.has(effect.message.sessionId) ?? false)) early.push(effect)
    else late.push(effect)
  }
  return { early, late }
}
