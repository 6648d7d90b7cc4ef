// A second box given this box's data directory (a copied disk image) holds its
// identity, and the first such box to join takes the id: every peer already
// has a connection to that id, and libp2p sends each peer's frames on the first
// connection it holds. So the second one's join is heard but never answered,
// and it would sit "joining" for good, saying nothing. While an agent is still
// joining, every JOIN_IDENTITY_CHECK_MS it asks its bootstrap peers for their
// member tables (a peek, on a connection of its own, whose answer comes back on
// the same stream); if twice in a row one of them lists this agent's id as
// another node's, the agent says where that node is and stops
// (Agent.#onIdentityConflict). Joined agents find a clone through the records
// (Membership.#recordAboutSelf, #checkEquivocation).

import { compareVersion } from '../membership/table.ts'
import type { NodeRecord, PeekMember } from '../../protocol/messages.ts'

export const JOIN_IDENTITY_CHECK_MS = 5_000
// Checks in a row that must find the id elsewhere: one peek could catch the
// table of a peer that has not yet heard of our restart.
const CHECKS_TO_CONCLUDE = 2

// The record of our id in a peer's table if it is another node's: alive or
// suspect, as new as ours or newer, and not ours (other addresses or URL). An
// earlier life of ours is older: a start raises the incarnation above any it
// published.
export function ownIdElsewhere (members: readonly PeekMember[], self: NodeRecord): NodeRecord | null {
  const entry = members.find((m) => m.record.id === self.id)
  if (entry === undefined || (entry.status !== 'alive' && entry.status !== 'suspect')) return null
  if (compareVersion(entry.record, self) < 0) return null
  const same = entry.record.http === self.http && entry.record.addrs.length === self.addrs.length && entry.record.addrs.every((a, i) => a === self.addrs[i])
  return same ? null : entry.record
}

export type JoinWatch = {
  bootstrap: readonly string[]
  joining: () => boolean
  stopped: () => boolean
  self: () => NodeRecord
  // A bootstrap peer's member table; rejects when it does not answer.
  peek: (addr: string) => Promise<PeekMember[]>
  onConflict: (record: NodeRecord, addr: string) => void
  sleep?: (ms: number) => Promise<void>
}

export async function watchJoin (w: JoinWatch): Promise<void> {
  const sleep = w.sleep ?? (async (ms: number) => { await new Promise((resolve) => setTimeout(resolve, ms).unref()) })
  let found = 0
  while (!w.stopped() && w.joining()) {
    await sleep(JOIN_IDENTITY_CHECK_MS)
    if (w.stopped() || !w.joining()) return
    let conflict: { record: NodeRecord; addr: string } | null = null
    for (const addr of w.bootstrap) {
      const members = await w.peek(addr).catch(() => null)
      const record = members === null ? null : ownIdElsewhere(members, w.self())
      if (record !== null) {
        conflict = { record, addr }
        break
      }
    }
    found = conflict === null ? 0 : found + 1
    if (conflict !== null && found >= CHECKS_TO_CONCLUDE && !w.stopped() && w.joining()) {
      w.onConflict(conflict.record, conflict.addr)
      return
    }
  }
}
