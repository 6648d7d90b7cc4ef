// What the deterministic core consumes and produces (shared/style.md §1).
// The core never reads a clock, draws randomness on its own, or touches a socket:
// time arrives inside every input, randomness through an injected Random, and all
// I/O leaves as effects that a host (libp2p runtime or simulator) carries out.

import type { Message, NodeRecord, MemberStatus } from '../../protocol/messages.ts'

// A peer's identity as the core knows it: the libp2p peer id string in the
// runtime, a short name in the simulator.
export type PeerKey = string

// Where a received message came from. `direct` frames arrive on a stream whose
// remote peer the transport authenticated; `gossip` messages arrive from the
// cluster topic and `from` is the message's signed origin.
export type Channel = 'direct' | 'gossip'

export type Command =
  // Contact these peers to join (push-pull with join=true); retried while alone.
  // `bootstrapping`: bootstrap addresses were given, though none has been
  // resolved to a peer yet (`peers` empty until one answers a dial).
  | { type: 'join'; peers: PeerKey[]; bootstrapping?: boolean }
  // Announce a graceful leave; the host stops after the announcement drains.
  | { type: 'leave' }
  // Change fields of the own record (load, services, position…).
  | { type: 'update-self'; patch: SelfPatch }
  // The transport lost its connection to a peer: probe it soon.
  | { type: 'disconnected'; peer: PeerKey }
  // The transport could not deliver to a peer (dial refused, stream reset).
  | { type: 'unreachable'; peer: PeerKey }

export type SelfPatch = Partial<Pick<NodeRecord,
  'addrs' | 'ip' | 'http' | 'services' | 'load' | 'position' | 'region' | 'zone'>>

export type Input =
  | { kind: 'tick'; nowMs: number }
  | { kind: 'receive'; nowMs: number; from: PeerKey; channel: Channel; message: Message }
  | { kind: 'command'; nowMs: number; command: Command }

// Durable state the host must write (and fsync) before it performs any later effect.
export type DurableRecord = { kind: 'incarnation'; incarnation: number }

export type AgentEvent =
  | { type: 'member-joined'; id: PeerKey; record: NodeRecord }
  | { type: 'member-updated'; id: PeerKey; record: NodeRecord }
  | { type: 'member-status'; id: PeerKey; status: MemberStatus; previous: MemberStatus; incarnation: number; by: PeerKey | null }
  | { type: 'member-reaped'; id: PeerKey }
  | { type: 'probe'; target: PeerKey; result: 'ack' | 'indirect-ack' | 'failed' }
  | { type: 'suspicion-confirmed'; id: PeerKey; by: PeerKey; confirmations: number }
  // This node's own suspicion timer ran out: it is about to declare `id` dead.
  | { type: 'suspicion-expired'; id: PeerKey; incarnation: number; confirmations: number }
  | { type: 'refuted'; incarnation: number; accusation: MemberStatus; by: PeerKey }
  | { type: 'local-health'; score: number; reason: string }
  | { type: 'stall'; lateMs: number }
  | { type: 'rejected'; from: PeerKey; reason: string }
  | { type: 'left' }
  // Another node signs records with this node's key (Membership.#recordAboutSelf):
  // `record` is one of its, `from` whoever passed it on.
  | { type: 'identity-conflict'; record: NodeRecord; from: PeerKey }
  // Two records of member `id` at one version, both validly signed: two nodes
  // hold its key (Membership.#checkEquivocation).
  | { type: 'identity-shared'; id: PeerKey; records: [NodeRecord, NodeRecord] }

export type Effect =
  | { kind: 'send'; to: PeerKey; message: Message }
  | { kind: 'publish'; message: Message }
  | { kind: 'persist'; record: DurableRecord }
  | { kind: 'event'; event: AgentEvent }

// Deterministic randomness, injected. Seeded in the simulator, crypto-seeded in
// production.
export interface Random {
  // An integer in [0, n).
  nextInt (n: number): number
  // A float in [0, 1).
  nextFloat (): number
  // Shuffles in place and returns the array.
  shuffle<T> (items: T[]): T[]
}

// Signs and checks membership statements. Ed25519 with the libp2p identity key in
// the runtime; a keyed hash in the simulator.
export interface Auth {
  sign (bytes: Uint8Array): Uint8Array
  verify (signer: PeerKey, bytes: Uint8Array, sig: Uint8Array): boolean
}
