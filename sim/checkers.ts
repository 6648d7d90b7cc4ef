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
export function checkOwners (acks: OwnerAck[]): string[] {
  const problems: string[] = []
  const ownerOf = new Map<string, PeerKey>()
  const lastEpoch = new Map<string, number>()
  for (const ack of acks) {
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
