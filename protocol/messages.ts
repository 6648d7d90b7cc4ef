// The messages agents exchange, as the core sees them after decoding.
// The wire form lives in codec.ts; every limit lives in limits.ts.

// Protocol version carried in the first byte of every frame. A frame with another
// version is refused, so a mixed cluster fails loudly instead of misreading bytes.
export const PROTOCOL_VERSION = 1

// Message type numbers are part of the protocol: only append to this table.
// Never renumber or reuse a retired number.
export const MESSAGE_TYPE = {
  'ping': 1,
  'ack': 2,
  'ping-req': 3,
  'nack': 4,
  'push-pull-request': 5,
  'push-pull-reply': 6,
  'push-pull-entries': 7,
  'gossip': 8,
  'peek-request': 9,
  'peek-reply': 10
} as const

export type MessageTypeName = keyof typeof MESSAGE_TYPE

// Member status as a member table holds it. `alive` and `left` are authored by the
// member itself (in its signed record); `suspect` and `dead` are claims by others.
// Wire codes are part of the protocol: only append.
export const MEMBER_STATUS = ['alive', 'suspect', 'dead', 'left'] as const
export type MemberStatus = typeof MEMBER_STATUS[number]

// Status a node writes into its own record.
export type RecordStatus = 'alive' | 'left'

export type ServiceOffer = {
  name: string
  version: string
  // How many sessions of this service the node is willing to hold; also its weight
  // on the placement ring (later issues).
  capacity: number
}

export type Load = {
  // The figure placement uses, 0..1: the largest of the parts below (sessions as a
  // share of capacity).
  score: number
  sessions: number
  // Event-loop utilisation of the agent process, 0..1.
  elu: number
  // Busy share of the machine's CPUs, 0..1.
  cpu: number
}

export type Position = { lat: number; lon: number }

// The node record (M0.1). Authored and signed by the node it describes; anyone may
// relay it, nobody may alter it.
export type NodeRecord = {
  id: string
  addrs: string[]
  ip: string
  // The agent's HTTP API as other agents and terminals should reach it ('' if none).
  http: string
  services: ServiceOffer[]
  load: Load
  position: Position | null
  region: string
  zone: string
  // SWIM incarnation: raised only by the node itself, to refute a suspicion or on
  // restart. Persisted so a restarted node overrides its old `dead` entry.
  incarnation: number
  // Bumped on every change of the record within one incarnation; orders updates.
  seq: number
  status: RecordStatus
}

// A record together with the exact bytes its author signed. Relays forward `bytes`
// unchanged so any receiver can check the signature.
export type SignedRecord = { record: NodeRecord; bytes: Uint8Array; sig: Uint8Array }

// A claim by `accuser` that `subject` at `incarnation` is suspect or dead. Only a
// claim: the subject refutes it by raising its incarnation.
export type Accusation = {
  kind: 'suspect' | 'dead'
  subject: string
  incarnation: number
  accuser: string
}
export type SignedAccusation = { accusation: Accusation; bytes: Uint8Array; sig: Uint8Array }

// One piece of membership news, piggybacked on probes or published on gossip.
export type Update =
  | { kind: 'record'; signed: SignedRecord }
  | { kind: 'accusation'; signed: SignedAccusation }

// A summary line of one member, for the push-pull exchange.
export type DigestEntry = {
  id: string
  incarnation: number
  seq: number
  status: MemberStatus
  statusIncarnation: number
}

// A full member entry: the signed record and the sender's view of its status.
export type Entry = {
  signed: SignedRecord
  status: MemberStatus
  statusIncarnation: number
}

// A member as shown to `peek`. `lastHeardMs` is an age: milliseconds since the
// answering agent last heard from that member.
export type PeekMember = {
  record: NodeRecord
  status: MemberStatus
  statusIncarnation: number
  lastHeardMs: number
}

export type Ping = { type: 'ping'; seq: number; updates: Update[] }
export type Ack = { type: 'ack'; seq: number; updates: Update[] }
// Ask the receiver to probe `target` on the sender's behalf and forward the ack.
export type PingReq = { type: 'ping-req'; seq: number; target: string; updates: Update[] }
// Lifeguard: the intermediary tried and got no ack from the target in time.
export type Nack = { type: 'nack'; seq: number }
export type PushPullRequest = { type: 'push-pull-request'; join: boolean; digest: DigestEntry[] }
export type PushPullReply = { type: 'push-pull-reply'; entries: Entry[]; want: string[] }
export type PushPullEntries = { type: 'push-pull-entries'; entries: Entry[] }
export type Gossip = { type: 'gossip'; updates: Update[] }
export type PeekRequest = { type: 'peek-request' }
export type PeekReply = { type: 'peek-reply'; self: string; members: PeekMember[] }

export type Message =
  | Ping | Ack | PingReq | Nack
  | PushPullRequest | PushPullReply | PushPullEntries
  | Gossip | PeekRequest | PeekReply

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string }
