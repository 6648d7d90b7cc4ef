// Push-pull anti-entropy (memberlist's pushPull, with a digest first so that a
// converged pair exchanges summaries, not full records). Gossip does not reach
// every node every time; this exchange is what guarantees convergence, for late
// joiners and after a partition heals.

import type { DigestEntry, Entry } from '../../protocol/messages.ts'
import { claimIsNewer, compareVersion, digestOf, knowsMore } from './table.ts'
import type { Member, MemberTable } from './table.ts'

export function entryOf (member: Member): Entry {
  return { signed: member.signed, status: member.status, statusIncarnation: member.statusIncarnation }
}

export function digestOfTable (table: MemberTable): DigestEntry[] {
  const digest: DigestEntry[] = []
  for (const member of table.all()) digest.push(digestOf(member))
  return digest
}

// What to send back for a digest: full entries where we know more, and the ids of
// the entries where the digest's owner knows more.
export function answerDigest (table: MemberTable, digest: DigestEntry[]): { entries: Entry[]; want: string[] } {
  const theirs = new Map<string, DigestEntry>()
  for (const line of digest) theirs.set(line.id, line)
  const entries: Entry[] = []
  for (const member of table.all()) {
    if (knowsMore(member, theirs.get(member.id))) entries.push(entryOf(member))
  }
  const want: string[] = []
  for (const line of digest) {
    const mine = table.get(line.id)
    if (mine === undefined) {
      if (line.status === 'alive' || line.status === 'suspect') want.push(line.id)
    } else if (compareVersion(line, mine.signed.record) > 0 || claimIsNewer(line, mine)) {
      want.push(line.id)
    }
  }
  return { entries, want }
}

export function entriesFor (table: MemberTable, ids: string[]): Entry[] {
  const entries: Entry[] = []
  for (const id of ids) {
    const member = table.get(id)
    if (member !== undefined) entries.push(entryOf(member))
  }
  return entries
}
