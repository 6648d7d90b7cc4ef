// What the sessions core consumes and produces. Like the membership core it is a
// deterministic state machine (shared/style.md §1): time arrives in every input,
// randomness through the injected Random, and all I/O leaves as effects.

import type {
  GroupConfig, JsonValue, LogEntry, MemberStatus, NodeRecord, Position, SessionMessage, SessionSnapshotBody
} from '../../protocol/messages.ts'
import type { PeerKey } from '../core/io.ts'

// Requests from terminals, made at this agent. `requestId` ties the reply effect
// to the request; the host hashes tokens (tokenHash) and draws ids and tokens
// from a cryptographic source, so the core stays deterministic.
export type SessionCommand =
  | { type: 'open'; requestId: string; sessionId: string; terminalId: string; service: string; position: Position | null; tokenHash: string }
  | { type: 'resume'; requestId: string; sessionId: string; tokenHash: string }
  | { type: 'append'; requestId: string; sessionId: string; tokenHash: string; clientSeq: number; op: JsonValue }
  // Deltas clientSeq, clientSeq + 1, … in one request (owner: deltas.ts).
  | { type: 'append-batch'; requestId: string; sessionId: string; tokenHash: string; clientSeq: number; ops: JsonValue[] }
  | { type: 'get'; requestId: string; sessionId: string; tokenHash: string }
  | { type: 'close'; requestId: string; sessionId: string; tokenHash: string }
  | { type: 'list'; requestId: string }
  // The transport lost its connection to a peer: a hint that an owner may be gone.
  | { type: 'disconnected'; peer: PeerKey }
  // The transport could not deliver to a peer at all (dial refused).
  | { type: 'unreachable'; peer: PeerKey }
  // The host's verdict on this agent's disk changed (disk-watch.ts).
  | { type: 'disk'; slow: boolean }

export type SessionInput =
  | { kind: 'tick'; nowMs: number }
  // arrivedMs: when the host read it, if it was held (driver.ts, heldBatch).
  | { kind: 'receive'; nowMs: number; from: PeerKey; message: SessionMessage; arrivedMs?: number }
  | { kind: 'command'; nowMs: number; command: SessionCommand }

// An answer to a terminal's request, in HTTP terms. `location` is set with 307.
export type ClientReply = { status: number; body: Record<string, unknown>; location?: string }

// Durable state, applied by the host in order and made durable (fsync) before it
// performs any send or reply of the same step.
export type SessionDurable =
  // Hard state: the epoch this member is in and whom it voted for in it.
  | { kind: 'session-meta'; sessionId: string; epoch: number; votedFor: PeerKey | null }
  // Appends entries (indexes follow the stored ones).
  | { kind: 'session-entries'; sessionId: string; entries: LogEntry[] }
  // Deletes entries with index ≥ fromIndex (a divergent, unacknowledged tail).
  | { kind: 'session-truncate'; sessionId: string; fromIndex: number }
  // Replaces the snapshot and deletes entries with index ≤ snapshot.index.
  | { kind: 'session-snapshot'; sessionId: string; snapshot: SessionSnapshotBody }
  // Remembers how far the log is known to be acknowledged (lazy: not needed for
  // safety, saves replay after a restart).
  | { kind: 'session-commit'; sessionId: string; commitIndex: number }
  // Forgets the session. `closedEpoch`: it was closed (our copy in that epoch),
  // and is remembered as closed (closed.ts), across restarts too.
  | { kind: 'session-delete'; sessionId: string; closedEpoch?: number }

// A session remembered as closed, as the store gives it back at start (oldest
// first).
export type ClosedSession = { sessionId: string; epoch: number }

// A session as the store gives it back at start.
export type StoredSession = {
  sessionId: string
  epoch: number
  votedFor: PeerKey | null
  commitIndex: number
  snapshot: SessionSnapshotBody | null
  entries: LogEntry[]
}

export type SessionRole = 'owner' | 'standby' | 'candidate' | 'witness'

export type SessionEvent =
  | { type: 'session-created'; sessionId: string; service: string; config: GroupConfig }
  | { type: 'promoted'; sessionId: string; service: string; epoch: number; previousOwner: PeerKey | null; tookMs: number }
  | { type: 'demoted'; sessionId: string; service: string; epoch: number; owner: PeerKey | null }
  // This owner's disk is slow: it stepped down for a member that keeps up
  // (`to`, caught up and acking within half of slowFsyncMs: `ackMs`) to take over.
  | { type: 'resigned'; sessionId: string; service: string; epoch: number; to: PeerKey; ackMs: number }
  | { type: 'election-started'; sessionId: string; epoch: number; reason: string }
  | { type: 'election-lost'; sessionId: string; epoch: number; reason: string }
  | { type: 'owner-suspected'; sessionId: string; owner: PeerKey; reason: string }
  | { type: 'group-changed'; sessionId: string; epoch: number; config: GroupConfig; reason: string }
  | { type: 'acknowledged'; sessionId: string; epoch: number; index: number; clientSeq: number }
  | { type: 'truncated'; sessionId: string; fromIndex: number; entries: number }
  | { type: 'snapshot-taken'; sessionId: string; index: number }
  | { type: 'snapshot-installed'; sessionId: string; index: number }
  | { type: 'session-closed'; sessionId: string }
  | { type: 'fenced'; sessionId: string; epoch: number }
  | { type: 'rejected'; from: PeerKey; reason: string }
  // A terminal's request refused by a limit (README, "Limits").
  | { type: 'limit'; limit: 'sessions-per-agent' | 'delta-size' | 'state-size'; sessionId: string }
  // This member's service has not been able to apply a committed entry for
  // `stalledMs` (reported once it is APPLY_REPORT_AFTER_MS, apply.ts); then,
  // only after a reported stall, that it applied it `stalledMs` after it first
  // tried.
  | { type: 'apply-stalled'; sessionId: string; index: number; reason: string; stalledMs: number }
  | { type: 'apply-resumed'; sessionId: string; index: number; stalledMs: number }

export type SessionEffect =
  | { kind: 'send'; to: PeerKey; message: SessionMessage }
  // Keep a replication stream open to this peer: members of a group that never
  // talk until their owner dies should not pay for stream setup in the election.
  | { kind: 'connect'; peer: PeerKey }
  | { kind: 'persist'; record: SessionDurable }
  | { kind: 'event'; event: SessionEvent }
  // `acknowledges`: this reply reports log entries of the session up to `index`
  // as committed, and promises nothing else of its step. commit-order.ts lets it
  // leave before the step's own commit when those entries were stored by an
  // earlier step (already durable), not by this one.
  | { kind: 'reply'; requestId: string; reply: ClientReply; acknowledges?: Acknowledges }

export type Acknowledges = { sessionId: string; index: number }

// The membership table as the sessions core reads it (read-only; the host steps
// both cores, so reads are as deterministic as the inputs).
export interface MemberDirectory {
  readonly self: PeerKey
  status (id: PeerKey): MemberStatus | null
  record (id: PeerKey): NodeRecord | null
  // Alive members, self included, in no particular order.
  alive (): NodeRecord[]
  // True from this agent's start while it has bootstrap peers to join and no
  // other member's record has reached its table: it knows nothing of its
  // cluster yet, so nothing it finds (or fails to find) says anything.
  joining (): boolean
}
