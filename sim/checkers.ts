// Checkers over a simulated run's history (TigerBeetle's VOPR style): they look
// at what terminals were told and what the agents hold, never at internals.

import type { PeerKey } from '../agent/core/io.ts'
import type { SimCluster } from './cluster.ts'
import type { SimTerminal } from './terminal.ts'

export type OwnerAck = { atMs: number; node: PeerKey; sessionId: string; epoch: number; index: number }

// Records every acknowledgement an owner sends (its 'acknowledged' events).
export function recordOwnerAcks (cluster: SimCluster): OwnerAck[] {
  const acks: OwnerAck[] = []
  cluster.onEvent(({ atMs, node, event }) => {
    if (event.type === 'acknowledged') acks.push({ atMs, node, sessionId: event.sessionId, epoch: event.epoch, index: event.index })
  })
  return acks
}

// At most one owner acknowledges per session epoch, and acknowledgements of a
// session never go back to an earlier epoch: two owners never both acknowledge
// in overlapping time.
// Judged in the order the owners decided (an event's time is its step's, even
// when it was recorded after a stalled fsync: sim/node.ts).
export function checkOwners (acks: OwnerAck[]): string[] {
  const problems: string[] = []
  const ownerOf = new Map<string, PeerKey>()
  const lastEpoch = new Map<string, number>()
  for (const ack of [...acks].sort((a, b) => a.atMs - b.atMs)) {
    const key = `${ack.sessionId}@${ack.epoch}`
    const owner = ownerOf.get(key)
    if (owner !== undefined && owner !== ack.node) problems.push(`${ack.sessionId}: ${owner} and ${ack.node} both acknowledged in epoch ${ack.epoch}`)
    ownerOf.set(key, ack.node)
    const last = lastEpoch.get(ack.sessionId) ?? 0
    if (ack.epoch < last) problems.push(`${ack.sessionId}: ${ack.node} acknowledged in epoch ${ack.epoch} at ${ack.atMs.toFixed(0)} ms after epoch ${last}`)
    lastEpoch.set(ack.sessionId, Math.max(last, ack.epoch))
  }
  return problems
}

// The session's state as its current owner holds it (a log service: the list).
// A member cut off from its group may still believe it owns an earlier epoch
// until it hears otherwise; the owner of the highest epoch is the real one.
export function ownerState (cluster: SimCluster, sessionId: string): { owner: PeerKey; epoch: number; state: unknown; commitIndex: number } | null {
  let best: { owner: PeerKey; epoch: number; state: unknown; commitIndex: number } | null = null
  for (const node of cluster.running()) {
    const replica = node.sessions?.replica(sessionId)
    if (replica === undefined || replica.role !== 'owner') continue
    if (best === null || replica.epoch > best.epoch) best = { owner: node.id, epoch: replica.epoch, state: replica.state, commitIndex: replica.commitIndex }
  }
  return best
}

// Settled: one running node believes it owns the session, and it has committed
// everything in its log (a new owner commits what it inherited only with the
// first entry of its own epoch).
export function ownershipSettled (cluster: SimCluster, sessionId: string): boolean {
  let owners = 0
  let committed = false
  for (const node of cluster.running()) {
    const replica = node.sessions?.replica(sessionId)
    if (replica?.role !== 'owner') continue
    owners++
    committed = replica.commitIndex === replica.log.lastIndex
  }
  return owners === 1 && committed
}

// A read answered 200: what the terminal had been acknowledged when it sent the
// GET (its first `ackedBefore` acks), and the state it got (a log service: the list).
export type Read = { terminal: SimTerminal; agent: PeerKey; sentAtMs: number; answeredAtMs: number; ackedBefore: number; values: string[] }

// Reads are linearizable: each answer holds every delta acknowledged before the
// GET was sent, holds only a prefix of the session's final log (nothing that was
// later dropped), and never less than a read answered before it was sent.
export function checkReads (cluster: SimCluster, terminal: SimTerminal, reads: Read[]): string[] {
  const problems: string[] = []
  // A closed session has no final log to compare with.
  const held = terminal.closedAtMs === null ? ownerState(cluster, terminal.sessionId) : null
  const final = held !== null && Array.isArray(held.state) ? held.state as string[] : null
  const describe = (read: Read): string => `the read sent to ${read.agent} at ${read.sentAtMs.toFixed(0)} ms (answered at ${read.answeredAtMs.toFixed(0)} ms, ${read.values.length} values)`
  for (const read of reads) {
    const have = new Set(read.values)
    const missing = terminal.acks.slice(0, read.ackedBefore).filter((ack) => !have.has(ack.value))
    if (missing.length > 0) problems.push(`${terminal.sessionId}: stale read: ${describe(read)} lacks ${missing.length} delta(s) acknowledged before it was sent, ${missing[0].value} (acknowledged at ${missing[0].atMs.toFixed(0)} ms) first`)
    if (final !== null) {
      const at = read.values.findIndex((value, i) => final[i] !== value)
      if (at >= 0) problems.push(`${terminal.sessionId}: ${describe(read)} has ${read.values[at]} at ${at}, where the final log has ${final[at] ?? 'nothing'}`)
    }
  }
  // A session whose close was acknowledged is gone: no agent may serve it.
  const closedAt = terminal.closedAtMs
  const afterClose = closedAt === null ? undefined : reads.find((read) => read.sentAtMs > closedAt)
  if (afterClose !== undefined) problems.push(`${terminal.sessionId}: ${describe(afterClose)} was served, after the close was acknowledged at ${(closedAt ?? 0).toFixed(0)} ms`)
  const bySent = [...reads].sort((a, b) => a.sentAtMs - b.sentAtMs)
  for (const later of bySent) {
    const earlier = reads.find((read) => read.answeredAtMs < later.sentAtMs && read.values.length > later.values.length)
    if (earlier !== undefined) problems.push(`${terminal.sessionId}: ${describe(later)} has fewer values than ${describe(earlier)}, answered before it was sent`)
  }
  return problems
}

// Every acknowledged delta present exactly once, in order; nothing duplicated.
export function checkTerminal (cluster: SimCluster, terminal: SimTerminal): string[] {
  const problems = [...terminal.violations]
  const held = ownerState(cluster, terminal.sessionId)
  if (held === null) return [...problems, `${terminal.sessionId}: no owner holds the session`]
  const values = Array.isArray(held.state) ? held.state as string[] : []
  const seen = new Map<string, number>()
  values.forEach((value, at) => {
    if (seen.has(value)) problems.push(`${terminal.sessionId}: ${value} applied twice (at ${seen.get(value)} and ${at})`)
    seen.set(value, at)
  })
  let previous = -1
  for (const ack of terminal.acks) {
    const at = seen.get(ack.value)
    if (at === undefined) {
      problems.push(`${terminal.sessionId}: acknowledged ${ack.value} (index ${ack.index}, epoch ${ack.epoch}) is missing`)
      continue
    }
    if (at < previous) problems.push(`${terminal.sessionId}: ${ack.value} out of order`)
    previous = at
  }
  return problems
}
