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
  'peek-reply': 10,
  'session-append': 11,
  'session-append-ack': 12,
  'session-vote-request': 13,
  'session-vote': 14,
  'session-snapshot': 15,
  'session-open': 16,
  'session-opened': 17,
  'session-locate': 18,
  'session-location': 19,
  'session-diagnose': 20,
  'session-diagnosis': 21,
  'session-quiesce': 22,
  'session-quiesced': 23,
  'session-beat': 24,
  'session-beat-ack': 25
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

export type MembershipMessage =
  | Ping | Ack | PingReq | Nack
  | PushPullRequest | PushPullReply | PushPullEntries
  | Gossip | PeekRequest | PeekReply

// ---- sessions (replication between the members of a session's group) ----

// Any JSON value: service ops and service state.
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

// What a session is, fixed at creation.
export type SessionInfo = {
  sessionId: string
  service: string
  terminalId: string
  // SHA-256 of the bearer token, hex; the token itself is never stored.
  tokenHash: string
  // The terminal's position when it opened the session (placement input).
  position: Position | null
}

// The group: data members in priority order (the backup connection queue), and
// a vote-only witness when there are exactly two members.
export type GroupConfig = { members: string[]; witness: string | null }

export type EntryBody =
  // Index 1 of every session: what it is and its first group.
  | { kind: 'create'; info: SessionInfo; config: GroupConfig }
  // A terminal's state delta, with its client sequence number.
  | { kind: 'delta'; clientSeq: number; op: JsonValue }
  // The first entry of every owner's epoch (commits what came before it).
  | { kind: 'epoch' }
  // A change of the group, agreed by appending it (one member at a time).
  | { kind: 'config'; config: GroupConfig }
  // The session is closed once this commits.
  | { kind: 'close' }

export type LogEntry = { index: number; epoch: number; body: EntryBody }

// Idempotency state: the last client sequence number applied, and the index of
// the most recent ones, so that a retry gets its original answer.
export type Dedup = { lastClientSeq: number; recent: Array<[clientSeq: number, index: number]> }

export type SessionSnapshotBody = {
  // Last entry included, and its epoch.
  index: number
  indexEpoch: number
  info: SessionInfo
  config: GroupConfig
  state: JsonValue
  dedup: Dedup
}

// Owner to member: entries after (prevIndex, prevEpoch), or none (heartbeat).
// `seq` is echoed in the ack so the owner knows which send time a member's
// lease promise dates from.
export type SessionAppend = {
  type: 'session-append'
  sessionId: string
  epoch: number
  seq: number
  prevIndex: number
  prevEpoch: number
  commitIndex: number
  entries: LogEntry[]
}

export type SessionAppendAck = {
  type: 'session-append-ack'
  sessionId: string
  epoch: number
  seq: number
  ok: boolean
  // Highest index known to match the owner's log (when ok).
  matchIndex: number
  // The member's last index, to skip back quickly when not ok.
  lastIndex: number
}

export type SessionVoteRequest = {
  type: 'session-vote-request'
  sessionId: string
  epoch: number
  candidate: string
  lastIndex: number
  lastEpoch: number
  commitIndex: number
  // Pre-vote (Raft §9.6): "would you vote for me in `epoch`?" Nobody changes
  // state; only a majority of yes lets the candidate raise its epoch, so a member
  // cut off from its group does not come back with an inflated epoch that
  // unseats a healthy owner.
  preVote: boolean
}

export type SessionVote = {
  type: 'session-vote'
  sessionId: string
  epoch: number
  granted: boolean
  preVote: boolean
  reason: string
  lastIndex: number
  lastEpoch: number
  commitIndex: number
  // The voter's entries after the candidate's commitIndex: the candidate
  // completes its log from the most up-to-date voter.
  tail: LogEntry[]
}

export type SessionSnapshot = { type: 'session-snapshot'; sessionId: string; epoch: number; seq: number; snapshot: SessionSnapshotBody }

// Agent to owner-to-be: create this session with this group.
export type SessionOpen = { type: 'session-open'; requestId: number; info: SessionInfo; config: GroupConfig }

export type SessionOpened = {
  type: 'session-opened'
  requestId: number
  // An HTTP status: 201 created, 4xx/5xx refused (with reason).
  status: number
  reason: string
  epoch: number
  owner: string
  config: GroupConfig
}

export type SessionLocate = { type: 'session-locate'; requestId: number; sessionId: string }

export type SessionLocation = {
  type: 'session-location'
  requestId: number
  sessionId: string
  found: boolean
  epoch: number
  // '' when the answering member does not know the current owner.
  owner: string
  config: GroupConfig
  // The token hash, so the asking agent can check a terminal's token.
  tokenHash: string
}

// M2.1: does the owner still serve this session?
export type SessionDiagnose = { type: 'session-diagnose'; sessionId: string; nonce: number }

export type SessionDiagnosis = {
  type: 'session-diagnosis'
  sessionId: string
  nonce: number
  epoch: number
  serving: boolean
  commitIndex: number
}

// Quiet sessions (agent/sessions/quiet.ts). Owner to member: nothing has
// happened in this session for a while and every member holds all of it up to
// `index` (of epoch `indexEpoch`), committed; the owner stops sending it
// heartbeats and keeps the member's promise alive with one beat per pair of
// agents instead. `boot` names the owner's process, `seq` orders this request
// among the owner's appends of the session.
export type SessionQuiesce = { type: 'session-quiesce'; sessionId: string; epoch: number; seq: number; index: number; indexEpoch: number; boot: number }

// Member to owner: the session is quiet here (ok) under the member's token
// (`boot`, `gen`), which its beat acks repeat while the promise stands; not ok
// when the member's copy does not match.
export type SessionQuiesced = { type: 'session-quiesced'; sessionId: string; epoch: number; seq: number; ok: boolean; boot: number; gen: number }

// Owner agent to member agent, every heartbeat while it owns quiet sessions
// there: "I am alive" for all of them at once.
export type SessionBeat = { type: 'session-beat'; boot: number; seq: number }

// Member agent to owner agent: the beat `seq` arrived; `boot`/`gen` is the
// member's token for that owner (it changes when the member stops honouring a
// quiet session on its own: its restart, a vote, a silent owner).
export type SessionBeatAck = { type: 'session-beat-ack'; seq: number; boot: number; gen: number }

export type SessionMessage =
  | SessionAppend | SessionAppendAck | SessionVoteRequest | SessionVote | SessionSnapshot
  | SessionOpen | SessionOpened | SessionLocate | SessionLocation | SessionDiagnose | SessionDiagnosis
  | SessionQuiesce | SessionQuiesced | SessionBeat | SessionBeatAck

export type Message = MembershipMessage | SessionMessage

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string }
