// Which peers to cut off: one that keeps sending frames no agent sends. Pure (the
// time comes in with every call); the agent host asks it at each malformed frame
// and, when it answers with a block, has the transport hang up on the peer and
// refuse it both ways for that long (Net.block).
//
// What counts is only what an honest agent never sends, whatever its load: a
// frame that does not decode, one of a type that does not belong on its stream,
// a gossip statement in another node's name, a length prefix over the frame
// limit or not a varint, a stream that ends inside a frame. Frames dropped for
// rate, and well-formed messages a core refuses (a stale epoch, an unknown
// session), do not: a busy or lagging member is slowed or answered, never cut
// off. An agent of another version may send the odd frame this one cannot read;
// the token bucket lets `ratePerS` of them through for good (burst twice that),
// which a flood passes within milliseconds.

import { Blocklist } from '../core/blocklist.ts'
import { BucketMap } from '../core/token-bucket.ts'

// Peers tracked at once (buckets of peers that sent something malformed lately;
// a full bucket is dropped when room is needed).
export const STRIKE_TRACKED_PEERS = 10_000

export type Block = { peer: string; forMs: number; untilMs: number }

export class PeerStrikes {
  readonly #buckets: BucketMap | null
  readonly #blockMs: number
  // Peers blocked now, until when (ms, the caller's clock): a peer is not blocked
  // again, nor reported, while its block lasts (frames still in flight from it
  // arrive after the hang-up).
  readonly #blocked = new Blocklist(STRIKE_TRACKED_PEERS)

  constructor (limits: { peerMalformedFramesPerS: number; peerBlockMs: number }) {
    this.#blockMs = limits.peerBlockMs
    this.#buckets = limits.peerBlockMs > 0
      ? new BucketMap({ ratePerS: limits.peerMalformedFramesPerS, burst: 2 * limits.peerMalformedFramesPerS }, STRIKE_TRACKED_PEERS)
      : null
  }

  // One malformed frame (or stream) from `peer`. Returns the block to impose when
  // this one is over the limit, or null.
  strike (peer: string, nowMs: number): Block | null {
    if (this.#buckets === null || this.blocked(peer, nowMs)) return null
    if (this.#buckets.take(peer, 1, nowMs).ok) return null
    const untilMs = nowMs + this.#blockMs
    this.#blocked.add(peer, untilMs, nowMs)
    return { peer, forMs: this.#blockMs, untilMs }
  }

  blocked (peer: string, nowMs: number): boolean {
    return this.#blocked.has(peer, nowMs)
  }

  // Peers blocked at `nowMs`.
  count (nowMs: number): number {
    return this.#blocked.size(nowMs)
  }
}
