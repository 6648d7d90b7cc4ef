// The replication streams a member keeps open to the other members of each
// group it is in: asked for once per group change, and again to a member whose
// record shows a new incarnation (it restarted, or refuted a suspicion). A
// restarted member's streams died with its old process, and nothing else
// reopens them between standbys, which exchange nothing until their owner
// fails: without this the takeover after the next owner failure would first
// dial (TCP, noise, yamux; 100-300 ms on a busy box, measured in
// bench/takeover-timeline.ts), and a restarted member, which connects before it
// has learnt its peers' addresses, would never retry. The host treats a stream
// already open as done.

import type { PeerKey } from '../core/io.ts'

// The members last asked for, each with the incarnation its record had then
// (-1: no record yet).
export type AskedStreams = ReadonlyArray<{ peer: PeerKey; incarnation: number }>

// Incarnations are looked up at most this often per session: the check runs on
// every message and tick of the session, and three record lookups each cost an
// idle agent holding ~600 copies a few percent of its CPU (a profile: 2.4% in
// the check alone). A restarted member is noticed within this.
export const STREAMS_RECHECK_MS = 1_000

// The new list to ask for (every member of `group`), or null when nothing
// changed since `asked`. Incarnations are compared only when `recheck`.
export function streamsToAsk (asked: AskedStreams, group: readonly PeerKey[], incarnationOf: (peer: PeerKey) => number, recheck: boolean): AskedStreams | null {
  const sameGroup = asked.length === group.length && group.every((peer, i) => asked[i].peer === peer)
  if (sameGroup && (!recheck || group.every((peer, i) => asked[i].incarnation === incarnationOf(peer)))) return null
  return group.map((peer) => ({ peer, incarnation: incarnationOf(peer) }))
}
