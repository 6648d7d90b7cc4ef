// Shared pieces for the sessions unit tests: a fake Ctx that records every effect
// in order, a member directory whose statuses the test sets, log entries for the
// `log` service, and replicas built through the exported functions.

import { QuietPeers } from '../../agent/sessions/quiet.ts'
import { SeededRandom } from '../../agent/core/random.ts'
import type { PeerKey } from '../../agent/core/io.ts'
import { sessionsProfile } from '../../agent/sessions/config.ts'
import type { SessionsConfig } from '../../agent/sessions/config.ts'
import { ReplicaLog } from '../../agent/sessions/log.ts'
import { appendEntry, becomeOwner, heartbeat, onAck } from '../../agent/sessions/owner.ts'
import { applyCommitted, newReplica } from '../../agent/sessions/replica.ts'
import type { Ctx, Replica, ReplyTarget } from '../../agent/sessions/replica.ts'
import { SnapshotBudget } from '../../agent/sessions/snapshot-budget.ts'
import { BUILT_IN_SERVICES } from '../../agent/sessions/services.ts'
import type { Service } from '../../agent/sessions/services.ts'
import type { ClientReply, MemberDirectory, SessionDurable, SessionEvent } from '../../agent/sessions/types.ts'
import type {
  GroupConfig, LogEntry, MemberStatus, NodeRecord, SessionAppend, SessionAppendAck, SessionInfo, SessionMessage,
  SessionVote, SessionVoteRequest
} from '../../protocol/messages.ts'

export const LAN: SessionsConfig = sessionsProfile('lan')
export const SESSION = 's-1'
export const INFO: SessionInfo = { sessionId: SESSION, service: 'log', terminalId: 'till-1', tokenHash: 'ab'.repeat(32), position: null }
export const GROUP: GroupConfig = { members: ['A', 'B', 'C'], witness: null }

// ---- the member directory ----------------------------------------------------

export function nodeRecord (id: PeerKey, services: string[] = ['log']): NodeRecord {
  return {
    id, addrs: [], ip: '10.0.0.1', http: '',
    services: services.map((name) => ({ name, version: '1', capacity: 100 })),
    load: { score: 0, sessions: 0, elu: 0, cpu: 0 },
    position: null, region: '', zone: '', incarnation: 1, seq: 1, status: 'alive'
  }
}

export class FakeDirectory implements MemberDirectory {
  readonly self: PeerKey
  readonly statuses = new Map<PeerKey, MemberStatus>()
  readonly records = new Map<PeerKey, NodeRecord>()

  // Every peer starts alive and offering the `log` service unless given services.
  constructor (self: PeerKey, peers: Array<PeerKey | { id: PeerKey; services: string[] }>) {
    this.self = self
    for (const peer of peers) {
      const id = typeof peer === 'string' ? peer : peer.id
      this.records.set(id, nodeRecord(id, typeof peer === 'string' ? ['log'] : peer.services))
      this.statuses.set(id, 'alive')
    }
  }

  set (id: PeerKey, status: MemberStatus): void {
    this.statuses.set(id, status)
  }

  status (id: PeerKey): MemberStatus | null {
    return this.statuses.get(id) ?? null
  }

  record (id: PeerKey): NodeRecord | null {
    return this.records.get(id) ?? null
  }

  // directory.joining(): set by a test of an agent that has not joined yet.
  joiningNow = false

  joining (): boolean {
    return this.joiningNow
  }

  alive (): NodeRecord[] {
    return [...this.records.values()].filter((record) => this.statuses.get(record.id) === 'alive')
  }
}

// ---- the recording Ctx -------------------------------------------------------

export type Recorded =
  | { kind: 'send'; to: PeerKey; message: SessionMessage }
  | { kind: 'persist'; record: SessionDurable }
  | { kind: 'event'; event: SessionEvent }
  | { kind: 'reply'; target: ReplyTarget; reply: ClientReply }

export class FakeCtx implements Ctx {
  readonly self: PeerKey
  readonly config: SessionsConfig
  readonly directory: FakeDirectory
  readonly random = new SeededRandom(7)
  now: number
  // Its own unless a test shares one between contexts (one agent's sessions).
  snapshotBudget: SnapshotBudget
  readonly quiet = new QuietPeers(1, () => {})
  // The host's verdict on this agent's disk (a test sets it).
  diskSlow = false
  get arrivedMs (): number { return this.now }
  // Effects since the last take(), in the order they were produced.
  effects: Recorded[] = []
  // Every append or snapshot ever sent, per peer (acks echo their seq).
  readonly sentTo = new Map<PeerKey, SessionMessage[]>()

  constructor (self: PeerKey, directory: FakeDirectory, now = 10_000, config: Partial<SessionsConfig> = {}) {
    this.self = self
    this.directory = directory
    this.now = now
    this.config = { ...LAN, ...config }
    this.snapshotBudget = new SnapshotBudget(this.config.snapshotBytesPerS)
  }

  send (to: PeerKey, message: SessionMessage): void {
    this.effects.push({ kind: 'send', to, message })
    const list = this.sentTo.get(to) ?? []
    list.push(message)
    this.sentTo.set(to, list)
  }

  persist (record: SessionDurable): void {
    this.effects.push({ kind: 'persist', record })
  }

  emit (event: SessionEvent): void {
    this.effects.push({ kind: 'event', event })
  }

  reply (target: ReplyTarget, reply: ClientReply): void {
    this.effects.push({ kind: 'reply', target, reply })
  }

  service (name: string): Service | null {
    return BUILT_IN_SERVICES.get(name) ?? null
  }

  take (): Recorded[] {
    const effects = this.effects
    this.effects = []
    return effects
  }

  sends (type?: SessionMessage['type']): Array<{ to: PeerKey; message: SessionMessage }> {
    return this.effects.flatMap((e) => e.kind === 'send' && (type === undefined || e.message.type === type) ? [{ to: e.to, message: e.message }] : [])
  }

  persists (kind?: SessionDurable['kind']): SessionDurable[] {
    return this.effects.flatMap((e) => e.kind === 'persist' && (kind === undefined || e.record.kind === kind) ? [e.record] : [])
  }

  events (type?: SessionEvent['type']): SessionEvent[] {
    return this.effects.flatMap((e) => e.kind === 'event' && (type === undefined || e.event.type === type) ? [e.event] : [])
  }

  // Replies to terminals at this agent, by request id.
  replies (): Array<{ to: string; status: number; body: Record<string, unknown> }> {
    return this.effects.flatMap((e) => e.kind === 'reply' && 'local' in e.target ? [{ to: e.target.local, status: e.reply.status, body: e.reply.body }] : [])
  }

  // The one append-ack sent (the follower answers every append with exactly one).
  ack (): SessionAppendAck {
    const acks = this.sends('session-append-ack')
    if (acks.length !== 1) throw new Error(`expected one append-ack, got ${acks.length}`)
    return acks[0].message as SessionAppendAck
  }

  vote (): SessionVote {
    const votes = this.sends('session-vote')
    if (votes.length !== 1) throw new Error(`expected one vote, got ${votes.length}`)
    return votes[0].message as SessionVote
  }

  // Where in the effect list the first effect matching `match` sits (-1: none).
  indexOf (match: (effect: Recorded) => boolean): number {
    return this.effects.findIndex(match)
  }
}

// ---- log entries ---------------------------------------------------------------

export function createEntry (epoch = 1, config: GroupConfig = GROUP): LogEntry {
  return { index: 1, epoch, body: { kind: 'create', info: INFO, config } }
}

// A `log` service delta: appends `value` to the session's list.
export function deltaEntry (index: number, epoch: number, clientSeq = index - 1, value: string = `v${index}`): LogEntry {
  return { index, epoch, body: { kind: 'delta', clientSeq, op: { append: value } } }
}

export function epochEntry (index: number, epoch: number): LogEntry {
  return { index, epoch, body: { kind: 'epoch' } }
}

export function configEntry (index: number, epoch: number, members: PeerKey[], witness: PeerKey | null = null): LogEntry {
  return { index, epoch, body: { kind: 'config', config: { members, witness } } }
}

// A log whose entry i (1-based) carries epochs[i-1]: a create, then deltas with
// clientSeq = index - 1 and value `v<index>`.
export function entriesWithEpochs (epochs: number[], config: GroupConfig = GROUP): LogEntry[] {
  return epochs.map((epoch, i) => i === 0 ? createEntry(epoch, config) : deltaEntry(i + 1, epoch))
}

export function epochsOf (log: ReplicaLog): number[] {
  const epochs: number[] = []
  for (let i = log.firstIndex; i <= log.lastIndex; i++) epochs.push(log.entry(i)?.epoch ?? -1)
  return epochs
}

// ---- replicas ------------------------------------------------------------------

export type StandbyOptions = { epoch?: number; commitIndex?: number; owner?: PeerKey | null; heardOwnerAgoMs?: number; votedFor?: PeerKey | null }

// A standby holding `entries`, following `owner` (A by default), with everything
// up to commitIndex applied.
export function standby (ctx: FakeCtx, entries: LogEntry[], options: StandbyOptions = {}): Replica {
  const r = newReplica(INFO, ctx.now)
  r.log = ReplicaLog.from(null, entries)
  r.epoch = options.epoch ?? Math.max(1, r.log.lastEpoch)
  r.votedFor = options.votedFor ?? null
  r.owner = options.owner === undefined ? 'A' : options.owner
  r.lastOwnerContactMs = ctx.now - (options.heardOwnerAgoMs ?? 0)
  r.commitIndex = options.commitIndex ?? 0
  r.knownCommitIndex = r.commitIndex
  applyCommitted(ctx, r)
  return r
}

export function appendMsg (fields: Partial<SessionAppend> & { prevIndex: number; entries: LogEntry[] }): SessionAppend {
  return {
    type: 'session-append', sessionId: SESSION, epoch: 1, seq: 1, prevEpoch: 1, commitIndex: 0, ...fields
  }
}

export function voteRequest (fields: Partial<SessionVoteRequest> & { candidate: PeerKey }): SessionVoteRequest {
  return {
    type: 'session-vote-request', sessionId: SESSION, epoch: 2, lastIndex: 1, lastEpoch: 1, commitIndex: 0, preVote: false, ...fields
  }
}

// The last append or snapshot the owner sent to `peer`.
export function lastSentTo (ctx: FakeCtx, peer: PeerKey): SessionMessage {
  const list = ctx.sentTo.get(peer) ?? []
  const last = [...list].reverse().find((m) => m.type === 'session-append' || m.type === 'session-snapshot')
  if (last === undefined) throw new Error(`nothing was sent to ${peer}`)
  return last
}

export type AckOptions = { ok?: boolean; matchIndex?: number; lastIndex?: number; epoch?: number }

// `peer` answers the last append the owner sent it: by default it holds
// everything that append carried.
export function ackFrom (ctx: FakeCtx, r: Replica, peer: PeerKey, options: AckOptions = {}): void {
  const sent = lastSentTo(ctx, peer)
  const seq = sent.type === 'session-append' || sent.type === 'session-snapshot' ? sent.seq : 0
  const held = sent.type === 'session-append' ? sent.prevIndex + sent.entries.length : sent.type === 'session-snapshot' ? sent.snapshot.index : 0
  const matchIndex = options.matchIndex ?? held
  onAck(ctx, r, peer, {
    type: 'session-append-ack', sessionId: r.id, epoch: options.epoch ?? r.epoch, seq,
    ok: options.ok ?? true, matchIndex, lastIndex: options.lastIndex ?? matchIndex
  })
}

// The owner heartbeats and every listed member answers, holding what it held
// before: the lease is renewed, nothing new is acknowledged.
export function renewLease (ctx: FakeCtx, r: Replica, peers: PeerKey[]): void {
  heartbeat(ctx, r)
  for (const peer of peers) ackFrom(ctx, r, peer, { matchIndex: r.progress.get(peer)?.matchIndex ?? 0 })
}

export type OwnerOptions = { group?: GroupConfig; peers?: Array<PeerKey | { id: PeerKey; services: string[] }>; config?: Partial<SessionsConfig>; now?: number; sessionId?: string }

// A session just created at A (epoch 1): the create entry is held by every other
// voter and committed, and A holds its lease. Effects so far are dropped.
export function ownerGroup (options: OwnerOptions = {}): { ctx: FakeCtx; r: Replica; directory: FakeDirectory } {
  const group = options.group ?? GROUP
  const voters = group.witness === null ? group.members : [...group.members, group.witness]
  const directory = new FakeDirectory('A', options.peers ?? voters)
  const ctx = new FakeCtx('A', directory, options.now ?? 10_000, options.config)
  const info = options.sessionId === undefined ? INFO : { ...INFO, sessionId: options.sessionId }
  const r = newReplica(info, ctx.now)
  r.epoch = 1
  r.votedFor = 'A'
  appendEntry(ctx, r, { kind: 'create', info, config: group })
  becomeOwner(ctx, r, null, 0)
  heartbeat(ctx, r)
  for (const peer of voters) if (peer !== 'A') ackFrom(ctx, r, peer, { matchIndex: 1 })
  if (r.commitIndex !== 1) throw new Error('fixture: the create entry did not commit')
  ctx.take()
  return { ctx, r, directory }
}

// A local terminal request target.
export function terminal (requestId: string): ReplyTarget {
  return { local: requestId }
}
