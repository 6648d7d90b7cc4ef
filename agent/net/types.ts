// The transport the agent host drives, implemented on libp2p in libp2p.ts.
// Frames are opaque bytes here; protocol/codec.ts gives them meaning.
// Nothing outside agent/net/ imports libp2p (DEVELOPERS.md, architecture).

import type { Auth } from '../core/io.ts'
import type { FaultGate } from './fault-gate.ts'
import type { ClusterKeys } from './keyring.ts'

export type GossipVerdict = 'accept' | 'reject' | 'ignore'

// What the transport refused on its own, before any frame reached the agent:
// a connection from a peer without the cluster key or outside the allowlist, or
// a peer over one of the per-peer limits (agent/net/constants.ts), or a
// connection from (or a dial to) a peer the agent blocked (Net.block).
export type NetRefusal = 'cluster-key' | 'allowlist' | 'blocked' | 'frame-size' | 'message-rate' | 'streams-per-peer'

export type NetHandlers = {
  // A frame arrived from an authenticated remote peer on one of the direct
  // protocols: `channel` says which (membership: swim, sessions: replicate).
  onDirect (from: string, frame: Uint8Array, channel: DirectChannelName): void
  // A stream was refused before any frame reached onDirect: a length prefix
  // beyond MAX_FRAME_BYTES ('oversize'), one that is not a varint ('framing'), or
  // a stream that ended inside a frame ('truncated').
  // The stream is aborted; the peer's other streams carry on.
  onStreamRefused? (from: string, channel: DirectChannelName, reason: StreamRefusal): void
  // A message arrived on the cluster topic; `from` is its signed origin. Called
  // synchronously from gossipsub's topic validator: 'reject' drops the message,
  // stops its propagation and penalises the peer that forwarded it.
  onGossip (from: string, frame: Uint8Array): GossipVerdict
  // The last connection to a peer closed.
  onDisconnected (peer: string): void
  // A frame to this peer could not be delivered (dial failed, stream reset).
  onUnreachable (peer: string): void
  // A peek client asked for the member table; the answer is an encoded frame.
  onPeek (): Uint8Array
  // The transport refused a connection, a stream or a frame. `peer` is the peer id,
  // or the remote address when the peer never proved who it is.
  onRefused? (what: NetRefusal, peer: string, detail: string): void
  // A request on the packages protocol; resolves with the answer frame.
  // Without it the protocol is not served.
  onRequest? (from: string, frame: Uint8Array): Promise<Uint8Array>
}

export type NetOptions = {
  identity: Identity
  listen: string[]
  // Cluster name; the gossip topic and protocol ids are derived from it.
  cluster: string
  handlers: NetHandlers
  // The private network's keys, when given: the primary this node dials under
  // and previous ones it still accepts (keyring.ts).
  keys?: ClusterKeys
  // A peer answered a dial under another of our keys: the next dials use it.
  onKeySwitched?: (address: string, from: string, to: string) => void
  // Peer ids allowed to connect (either way); null or absent lets any peer that
  // holds the cluster key (if any) connect.
  allowPeers?: string[] | null
  // Dial timeout, ms.
  dialTimeoutMs: number
  // The fault-injection gate (a test facility, --fault-injection): every message
  // in and out passes its rules. Absent in production.
  faults?: FaultGate
  // How long a failed dial holds back the next ones on the sessions channel:
  // the first wait, doubling up to max while dials keep failing (ms). Absent:
  // REDIAL_BACKOFF_MIN_MS / _MAX_MS (250 ms / 2 s); tests lengthen it so that a
  // slow box still sends within it.
  redialBackoffMs?: { min: number; max: number }
}

// An opaque identity: the libp2p private key stays inside agent/net/.
export type Identity = {
  readonly id: string
  readonly auth: Auth
}

// Which stream a frame travels on: membership (SWIM, push-pull) or sessions
// (replication between the members of a session's group).
export type DirectChannelName = 'membership' | 'sessions'

export type StreamRefusal = 'oversize' | 'framing' | 'truncated'

export type NetStats = {
  directFramesOut: number
  directBytesOut: number
  directFramesIn: number
  directBytesIn: number
  gossipFramesOut: number
  gossipBytesOut: number
  gossipFramesIn: number
  gossipBytesIn: number
  sessionFramesOut: number
  sessionBytesOut: number
  sessionFramesIn: number
  sessionBytesIn: number
  // Frames dropped because a peer's send queue was full.
  sendQueueDrops: number
  // Frames dropped because their peer failed a dial moments ago (REDIAL_BACKOFF_*).
  redialHeld: number
  // Peers this node holds an open outbound stream to, per channel.
  directStreamsOut: number
  sessionStreamsOut: number
}

export interface Net {
  readonly id: string
  // Multiaddrs this node listens on, each ending in /p2p/<id>.
  addrs (): string[]
  // Fire and forget: queues the frame on a long-lived stream to the peer, opening
  // one if needed; never blocks the caller. Failure is reported via onUnreachable.
  send (peer: string, frame: Uint8Array, channel?: DirectChannelName): void
  // Opens (and keeps) the stream to a peer without sending anything yet.
  connect (peer: string, channel: DirectChannelName): void
  // Publishes on the cluster topic (signed by this node's key).
  publish (frame: Uint8Array): void
  // Addresses learnt from a peer's record, so later sends can dial it.
  learnAddrs (peer: string, addrs: string[]): void
  // Dials a bootstrap multiaddr and resolves with the remote peer id.
  dial (addr: string, timeoutMs: number): Promise<string>
  // One request on the packages protocol; resolves with the peer's answer.
  request (peer: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>
  // Drops connections to a peer (used after a member leaves or is reaped).
  forget (peer: string): void
  // Hangs up every connection: this box lost an address, and connections made
  // through it stall instead of failing. Peers are dialled again as needed.
  dropConnections (): void
  // Replaces the allowlist (null: any peer); peers outside the new one are hung
  // up on and refused from now on. Throws, changing nothing, on a bad peer id.
  setAllowlist (ids: readonly string[] | null): void
  // Hangs up on a peer and refuses it for `forMs`: its connections either way
  // (reported through onRefused as 'blocked') and our dials to it (its frames
  // are dropped as undeliverable, through onUnreachable).
  block (peer: string, forMs: number): void
  // The private network's key ids (null in an open cluster).
  clusterKeys (): { primary: string; previous: string[] } | null
  // Replaces the private network's keys: new connections need one of them.
  // Connections made under a key no longer held stay open (each is noise's,
  // authenticated end to end; hanging it up looks like a dead box to the
  // sessions on it); returns how many there are. Throws, changing nothing, in
  // an open cluster or on keys it cannot use.
  setClusterKeys (keys: ClusterKeys): number
  // The id of the key this node's connection to the peer runs under; null
  // without one, or in an open cluster.
  connectionKey (peer: string): string | null
  // Open connections under each key id.
  connectionKeys (): Map<string, number>
  stats (): NetStats
  stop (): Promise<void>
}
