// Which effects of a step may leave before the step's durable records are
// committed (fsynced). Shared by the libp2p host (agent/runtime/sessions-host.ts)
// and the simulator (sim/node.ts), so the simulator's checkers exercise the order
// the real agent uses.
//
// The rule: a step's effects wait for its commit, except
// - an owner's `session-append` frames (entries to standbys) of a session whose
//   durable records in this step are only `session-entries` and
//   `session-commit`. Those frames leave first, and the owner's fsync runs while
//   they travel and the standbys fsync: the two fsyncs of an acknowledgement
//   overlap instead of adding up (Raft's leader writes its log in parallel with
//   AppendEntries, §10.2.1 of Ongaro's thesis);
// - a terminal's answer that acknowledges entries committed by counting
//   (`acknowledges`: session, index) when no entry of that session up to that
//   index is stored by this step, and the step stores nothing else of the
//   session. Such an answer reports only entries an earlier step stored, which
//   are durable already (below), so it need not wait for this step's fsync of
//   other deltas. Without this, an answer whose standbys' acks arrived together
//   with new deltas waited for those deltas' fsync: one more fsync on the path of
//   every write under load.
//
// Why no acknowledged write can be lost by this:
// - An answer that acknowledges a delta waits until the delta's entry is
//   fsynced on the owner: either the entry was stored by an earlier step (the
//   host commits a step before it steps any later input, so it is durable), or
//   by this step, and then the answer is late, after this step's commit. The
//   owner answers only once the write concern's standbys acked, and a standby's
//   ack (`session-append-ack`) leaves only after ITS commit. So an acknowledged
//   delta is fsynced on the owner and on every standby the write concern
//   counted. With the fsync off the event loop (sessions-host.ts) this still
//   holds: the driver queues every input from the step until its fsync has
//   returned, and "late" means after that return, not after the write.
// - If the owner dies after sending and before committing, standbys hold entries
//   the owner lost. None of them was acknowledged (their answers waited for the
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
//   Every other answer (an open, a close, a refusal, a duplicate) waits too.

import type { Acknowledges, SessionDurable, SessionEffect } from './types.ts'

export type CommitOrder = {
  // May leave at once, before the commit.
  early: SessionEffect[]
  // After the commit, in their original order.
  late: SessionEffect[]
}

export function orderAroundCommit (effects: SessionEffect[], durable: SessionDurable[]): CommitOrder {
  if (durable.length === 0) return { early: [], late: effects }
  // Sessions whose records in this step are more than log appends, and the
  // first index each session's appends of this step store.
  let held: Set<string> | null = null
  let firstStored: Map<string, number> | null = null
  for (const record of durable) {
    if (record.kind === 'session-entries') {
      // A record's entries are in index order: its first is its lowest.
      const first = record.entries[0]?.index
      if (first === undefined) continue
      firstStored ??= new Map()
      const known = firstStored.get(record.sessionId)
      if (known === undefined || first < known) firstStored.set(record.sessionId, first)
    } else if (record.kind !== 'session-commit') (held ??= new Set()).add(record.sessionId)
  }
  const early: SessionEffect[] = []
  const late: SessionEffect[] = []
  // The `acknowledged` events an answer emits just before it (owner.ts,
  // answer): they leave with it, early or late, so an acknowledgement is
  // counted (edge_agent_session_deltas_acknowledged_total) when the terminal is
  // told: not a stalled fsync later, and not never, when the fsync fails after
  // the answer left early.
  let pending: SessionEffect[] = []
  for (const effect of effects) {
    if (effect.kind === 'event' && effect.event.type === 'acknowledged') {
      pending.push(effect)
      continue
    }
    const leaves = (
      (effect.kind === 'send' && effect.message.type === 'session-append' && !(held?.has(effect.message.sessionId) ?? false)) ||
      (effect.kind === 'reply' && effect.acknowledges !== undefined && acknowledgesOnlyStored(effect.acknowledges, held, firstStored)))
    if (pending.length > 0) {
      const withThis = effect.kind === 'reply' && leaves ? early : late
      for (const event of pending) withThis.push(event)
      pending = []
    }
    ;(leaves ? early : late).push(effect)
  }
  for (const event of pending) late.push(event)
  return { early, late }
}

// The answer's entries were all stored by earlier steps: none of this step's
// appends of the session is at or below its index, and nothing else of the
// session is stored by this step.
function acknowledgesOnlyStored (ack: Acknowledges, held: Set<string> | null, firstStored: Map<string, number> | null): boolean {
  if (held?.has(ack.sessionId) ?? false) return false
  const first = firstStored?.get(ack.sessionId)
  return first === undefined || ack.index < first
}
