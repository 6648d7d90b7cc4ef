// One member's copy of one session: its log, the service state built from the
// committed entries, and the role it plays in the group. A plain record that the
// owner, follower and election functions work on; `Ctx` is the narrow window they
// have on the rest of the core (no globals, no god object).

import type {
  Dedup, GroupConfig, JsonValue, SessionInfo, SessionMessage, SessionSnapshotBody, SessionVote
} from '../../protocol/messages.ts'
import type { PeerKey, Random } from '../core/io.ts'
import type { SessionsConfig } from './config.ts'
import type { AskedStreams } from './group-streams.ts'
import type { QuietAsk, QuietMember, QuietOwner, QuietPeers } from './quiet.ts'
import { ReplicaLog } from './log.ts'
import { applyCommitted, windowStart } from './apply.ts'
import type { ApplyStall } from './apply.ts'
import { keptStateBytes, snapshotOfText } from './snapshot-text.ts'
import { SNAPSHOT_MAX_WAIT_MS } from './snapshot-budget.ts'
import type { SnapshotBudget } from './snapshot-budget.ts'
import { hash32 } from './placement.ts'
import type { Service } from './services.ts'
import type { Acknowledges, ClientReply, MemberDirectory, SessionCommand, SessionDurable, SessionEvent, SessionRole, StoredSession } from './types.ts'

export interface Ctx {
  readonly self: PeerKey
  readonly config: SessionsConfig
  readonly directory: MemberDirectory
  readonly random: Random
  readonly now: number
  // This agent's snapshots, counted across its sessions (snapshot-budget.ts).
  readonly snapshotBudget: SnapshotBudget
  // Quiet sessions' beats and tokens (quiet.ts).
  readonly quiet: QuietPeers
  send (to: PeerKey, message: SessionMessage): void
  persist (record: SessionDurable): void
  emit (event: SessionEvent): void
  reply (target: ReplyTarget, reply: ClientReply, acknowledges?: Acknowledges): void
  service (name: string): Service | null
  // The host finds this agent's disk slow (disk-watch.ts).
  readonly diskSlow: boolean
  // When the message being stepped was read (at most now: a message held
  // behind this agent's fsync is stepped after it); only to time acks.
  readonly arrivedMs: number
}

// Who is waiting for an answer: a terminal at this agent, or another agent that
// forwarded a terminal's request (session-open).
export type ReplyTarget = { local: string } | { peer: PeerKey; requestId: number }

export type Waiter =
  | { target: ReplyTarget; clientSeq: number; deadlineMs: number; kind: 'append' | 'open' | 'close' }
  // A batch of deltas (POST …/batch), answered once its last logged
  // delta commits: the items in clientSeq order, then the first refusal if any.
  | { target: ReplyTarget; clientSeq: number; deadlineMs: number; kind: 'batch'; items: BatchItem[]; refused: BatchRefusal | null }

export type BatchItem = { clientSeq: number; index: number; duplicate: boolean }
export type BatchRefusal = { clientSeq: number; status: number; body: Record<string, unknown> }

// What the owner knows of each member's copy.
export type Progress = {
  nextIndex: number
  matchIndex: number
  // When it last answered anything.
  lastAckMs: number
  // Until when it promised not to vote for anyone else, as the owner can safely
  // assume: send time of the append it acknowledged + ownerTimeoutMs × LEASE_SAFETY.
  promiseUntilMs: number
  sentAtMs: Map<number, number>
  // One send carrying entries at a time is timed to its ack (a heartbeat's ack
  // needs no fsync, so it says nothing of the member's disk): ackMs is the
  // average of those round trips (NaN before one), what an owner whose own
  // disk is slow compares (maybeResign).
  timedSend: { seq: number; sentAtMs: number } | null
  ackMs: number
  snapshotSentAtMs: number
  deadSinceMs: number | null
}

export type Candidacy = {
  // First a pre-vote for `epoch` (nobody changes state), then the real vote.
  pre: boolean
  epoch: number
  // The commit index the candidate asked with: voters' tails start after it.
  commitIndex: number
  deadlineMs: number
  resendAtMs: number
  votes: Map<PeerKey, SessionVote>
  // Members that gave their vote for this epoch to someone else.
  lostTo: Set<PeerKey>
  // The last refusal from each member, for the election-lost event.
  refusals: Map<PeerKey, string>
  // Vote timeouts added because every missing vote was silence (election.ts).
  extended: number
}

// A terminal's request held while the session changes owner (parked.ts).
export type ParkableCommand = Extract<SessionCommand, { type: 'append' | 'append-batch' | 'get' | 'close' }>
export type Parked = { command: ParkableCommand; deadlineMs: number }

export type Repair = { adding: PeerKey; asWitness: boolean; removing: PeerKey | null; startedMs: number; phase: 'catch-up' }

export type Replica = {
  readonly id: string
  info: SessionInfo
  epoch: number
  votedFor: PeerKey | null
  log: ReplicaLog
  commitIndex: number
  // The highest commit index any owner told us: how far the group is, even where
  // our own log lags (M2.2's "in sync").
  knownCommitIndex: number
  appliedIndex: number
  state: JsonValue
  // JSON size of the state at the last snapshot plus the ops applied since.
  stateBytes: number
  // Bytes of ops applied since the last snapshot (taken, installed or loaded).
  bytesSinceSnapshot: number
  // Since when its due snapshot has waited for the agent's snapshot budget.
  snapshotWaitingSinceMs: number | null
  // The service could not apply the entry after appliedIndex here (apply.ts):
  // nothing more is applied until a retry at `retryAtMs` succeeds.
  applyStall: ApplyStall | null
  // When this member last handed the session over for its slow disk
  // (resign.ts), or -Infinity.
  resignedAtMs: number
  dedup: Dedup
  role: SessionRole
  owner: PeerKey | null
  // Standby side.
  lastOwnerContactMs: number
  ownerGone: boolean
  // When the transport last lost its connection to the owner (null once the owner
  // is heard again): a closed connection is strong evidence a process died.
  ownerLostMs: number | null
  // Loaded from the store at start: until then this member keeps whatever
  // promise it may have made before it stopped (promiseHolds).
  restartShieldUntilMs: number
  diagnosis: { nonce: number; deadlineMs: number } | null
  electionAtMs: number
  candidacy: Candidacy | null
  // Owner side.
  progress: Map<PeerKey, Progress>
  waiters: Map<number, Waiter[]>
  lastAcceptedSeq: number
  heartbeatAtMs: number
  // When a member the 'all' concern waits for becomes lagging (memberLagMs),
  // so the owner commits without it then; Infinity when nothing waits so.
  lagCheckAtMs: number
  seq: number
  promotedAtMs: number
  suspectedAtMs: number
  repair: Repair | null
  closed: boolean
  // Set when a member of a later epoch told us we are no longer in the group.
  orphanedAtMs: number | null
  // Members that answered our vote request with "unknown session": they closed
  // it (a member forgets a session only once its close is committed) or lost it.
  forgottenBy: Set<PeerKey>
  // Set when the session can never be served again and we hold its close: the
  // host forgets it at the next tick.
  defunct: boolean
  // A witness: when it last asked the members whether they still hold the
  // session (witnessProbeAtMs).
  witnessProbedAtMs: number
  // Owner side: reads are served once the commit index reaches this (the first
  // entry of our epoch).
  readableFromIndex: number
  // The members of the group we last asked the host to connect to
  // (group-streams.ts).
  connectedTo: AskedStreams
  // When their incarnations were last compared (STREAMS_RECHECK_MS).
  streamsCheckedAtMs: number
  // The wake-up the core last filed for this session (Sessions.nextWakeMs;
  // NaN: none filed yet).
  wakeFiledMs: number
  // Terminals' requests held while the owner is in doubt, oldest first.
  parked: Parked[]
  // Quiet (quiet.ts): as owner or member, or null; an owner's request under way.
  quiet: QuietOwner | QuietMember | null
  quietAsk: QuietAsk | null
  // Owner side: when an entry was last logged (or the session woke), for
  // quietAfterMs.
  activeAtMs: number
}

// The owner's lease counts a member's promise for only this share of
// ownerTimeoutMs, a margin for clock-rate differences between boxes.
export const LEASE_SAFETY = 0.8

export function newReplica (info: SessionInfo, nowMs: number): Replica {
  return {
    id: info.sessionId,
    info,
    epoch: 0,
    votedFor: null,
    log: new ReplicaLog(),
    commitIndex: 0,
    knownCommitIndex: 0,
    appliedIndex: 0,
    state: null,
    stateBytes: 0,
    bytesSinceSnapshot: 0,
    snapshotWaitingSinceMs: null,
    applyStall: null,
    resignedAtMs: -Infinity,
    dedup: { lastClientSeq: 0, recent: [] },
    role: 'standby',
    owner: null,
    lastOwnerContactMs: nowMs,
    ownerGone: false,
    ownerLostMs: null,
    restartShieldUntilMs: -Infinity,
    diagnosis: null,
    electionAtMs: Infinity,
    candidacy: null,
    progress: new Map(),
    waiters: new Map(),
    lastAcceptedSeq: 0,
    heartbeatAtMs: 0,
    lagCheckAtMs: Infinity,
    seq: 0,
    promotedAtMs: 0,
    suspectedAtMs: 0,
    repair: null,
    closed: false,
    orphanedAtMs: null,
    forgottenBy: new Set(),
    defunct: false,
    witnessProbedAtMs: -Infinity,
    readableFromIndex: 0,
    connectedTo: [],
    streamsCheckedAtMs: 0,
    wakeFiledMs: NaN,
    parked: [],
    quiet: null,
    quietAsk: null,
    activeAtMs: nowMs
  }
}

// A replica as the store gave it back after a restart: everything up to the
// stored commit index is applied again. It waits for an owner as a standby, or
// as the witness its stored group names: restored as a standby, a witness could
// neither stand (not a member) nor ask its members whether they still hold the
// session (witnessProbeAtMs), and one that missed its session's close while it
// was down kept the copy for good (a sweep with closes and replicas 1,
// SEED=1675).
export function restoreReplica (stored: StoredSession, ctx: Ctx): Replica | null {
  const log = ReplicaLog.from(stored.snapshot, stored.entries)
  const info = stored.snapshot?.info ?? infoFromLog(log)
  if (info === null) return null
  const r = newReplica(info, ctx.now)
  r.log = log
  r.epoch = stored.epoch
  r.votedFor = stored.votedFor
  if (stored.snapshot !== null) loadSnapshotState(r, stored.snapshot)
  r.commitIndex = Math.min(Math.max(stored.commitIndex, r.appliedIndex), log.lastIndex)
  applyCommitted(ctx, r)
  r.lastOwnerContactMs = ctx.now
  r.restartShieldUntilMs = ctx.now + ctx.config.ownerTimeoutMs
  if (config(r).witness === ctx.self) r.role = 'witness'
  return r
}

function infoFromLog (log: ReplicaLog): SessionInfo | null {
  const first = log.entry(1)
  return first !== null && first.body.kind === 'create' ? first.body.info : null
}

export function loadSnapshotState (r: Replica, snapshot: SessionSnapshotBody): void {
  r.info = snapshot.info
  // A copy: services may change the live state in place, and the snapshot may be
  // shared (the simulator hands the same message object to every receiver).
  const text = JSON.stringify(snapshot.state)
  r.state = JSON.parse(text) as JsonValue
  r.stateBytes = text.length
  r.bytesSinceSnapshot = 0
  r.snapshotWaitingSinceMs = null
  r.dedup = { lastClientSeq: snapshot.dedup.lastClientSeq, recent: snapshot.dedup.recent.map(([s, i]) => [s, i]) }
  r.appliedIndex = snapshot.index
  r.commitIndex = Math.max(r.commitIndex, snapshot.index)
  r.lastAcceptedSeq = Math.max(r.lastAcceptedSeq, snapshot.dedup.lastClientSeq)
}

export function config (r: Replica): GroupConfig {
  return r.log.config ?? { members: [], witness: null }
}

// Voting members: data members and the witness (which holds the log too).
// Asked for several times per message (routing, the lease, the commit, the
// group's streams), so each config's list is built once and shared: it is
// frozen, and callers that need their own copy make it. Configs are never
// changed in place (a change is a new log entry with a new config).
const VOTERS = new WeakMap<GroupConfig, readonly PeerKey[]>()
const NO_VOTERS: readonly PeerKey[] = Object.freeze([])

export function voters (r: Replica): readonly PeerKey[] {
  const c = r.log.config
  if (c === null) return NO_VOTERS
  let list = VOTERS.get(c)
  if (list === undefined) {
    list = Object.freeze(c.witness === null ? [...c.members] : [...c.members, c.witness])
    VOTERS.set(c, list)
  }
  return list
}

// A member the membership no longer counts on: dead, left, or unknown.
export function memberGone (status: string | null): boolean {
  return status === 'dead' || status === 'left' || status === null
}

export function majority (count: number): number {
  return Math.floor(count / 2) + 1
}

// `from`, a voter of our group, told us it knows nothing of the session (a vote
// refused as an unknown session; an append refused with nothing held, by a
// member that held our entries before). A member forgets a session only once it
// applied its close, or once a later epoch's group dropped it and it gave its
// copy up. When so many have forgotten it that no majority can ever vote or
// acknowledge again, the session is over for us, and true is returned: with the
// close in our log, it was closed while our copy of the commit index was behind
// (the owner forgot it before we heard the close committed), and our copy is
// defunct, forgotten at once; without it (we were cut off when it happened),
// we cannot tell a closed session from one whose other members lost their
// disks: either way nobody can serve it again, so our copy is orphaned,
// forgotten after the orphan grace unless an owner speaks up meanwhile.
export function forgottenByMajority (ctx: Ctx, r: Replica, from: PeerKey): boolean {
  const group = voters(r)
  if (!group.includes(from)) return false
  r.forgottenBy.add(from)
  const left = group.filter((peer) => !r.forgottenBy.has(peer)).length
  if (left >= majority(group.length)) return false
  if (holdsClose(r)) r.defunct = true
  else r.orphanedAtMs ??= ctx.now
  return true
}

// A witness never stands for election, so it never hears a vote refused as an
// unknown session: when the close of its session did not reach it (the closing
// owner tells its members once, then forgets), it kept its copy for good, and
// its session answered "changing owner" (503) to every terminal (a sweep with
// closes and replicas 1, SEED=484). So a witness that has heard from no owner
// for this many owner timeouts asks the group's members whether they hold the
// session (session-locate), and again as long as the silence lasts; answers of
// members that do not count toward forgottenByMajority, and an answer whose
// group no longer has us makes our copy an orphan. A live session's owner
// heartbeats its witness (or beats for it while quiet: a quiet copy asks
// nothing), so this costs only silent witnesses.
// A standby that is not a member of its own group (it holds the change that
// dropped it, never told it was committed) cannot stand either, and asks the
// same way: otherwise, its owner gone after closing the session, it answered
// every other agent's "where is this session?" with "held, owner unknown", and
// the terminal's close got "changing owner" (503) for good (a sweep with own
// clocks, stalling disks and slow nodes, replicas 1: SEED=2785).
export const WITNESS_PROBE_OWNER_TIMEOUTS = 5

// A copy that never stands for election: a witness, or a standby its own group
// no longer names.
function neverStands (r: Replica, self: PeerKey): boolean {
  return r.role === 'witness' || (r.role === 'standby' && !config(r).members.includes(self))
}

// When such a copy next asks its members (Infinity: not one that would).
export function witnessProbeAtMs (r: Replica, self: PeerKey, ownerTimeoutMs: number): number {
  if (!neverStands(r, self) || r.orphanedAtMs !== null || r.defunct) return Infinity
  return Math.max(r.lastOwnerContactMs, r.witnessProbedAtMs) + WITNESS_PROBE_OWNER_TIMEOUTS * ownerTimeoutMs
}

// A member's answer to our probe: it does not hold the session (counted toward
// forgottenByMajority), or it does with a group that has us neither as witness
// nor as member (a later group dropped us: the orphan path, as for a member).
export function onWitnessProbeAnswer (ctx: Ctx, r: Replica, peer: PeerKey, found: boolean, group: GroupConfig): void {
  if (!neverStands(r, ctx.self)) return
  if (!found) forgottenByMajority(ctx, r, peer)
  else if (group.witness !== ctx.self && !group.members.includes(ctx.self)) r.orphanedAtMs ??= ctx.now
}

function holdsClose (r: Replica): boolean {
  if (r.closed) return true
  for (let i = r.log.lastIndex; i > r.commitIndex; i--) if (r.log.entry(i)?.body.kind === 'close') return true
  return false
}

// Snapshots the applied state once enough entries have been applied since the
// last snapshot, and forgets the entries before the last `maxBatchEntries`: they
// stay available a while for a lagging standby or a candidate's completion.
export function maybeSnapshot (ctx: Ctx, r: Replica): void {
  const spread = snapshotSpread(r.id)
  if (r.appliedIndex - r.log.snapshotIndex < ctx.config.snapshotEveryEntries * spread) return
  // Amortised (config.ts, snapshotLogRatio): the state is serialised, stored and
  // fsynced whole, so wait until the log since the last snapshot is as large as
  // the state was then (stateBytes counts every op since on top of that size,
  // an upper bound for the size limit, so it is taken off here). Each session
  // waits a little longer, both in entries and in bytes, by a factor from its
  // id (snapshotSpread): sessions that grow at one rate, as terminals opened
  // together and written alike do, would otherwise reach every snapshot point
  // in the same turn, and an agent then serialised and stored dozens of their
  // states in one stall.
  if (r.bytesSinceSnapshot < ctx.config.snapshotLogRatio * spread * (r.stateBytes - r.bytesSinceSnapshot)) return
  // Due, but the agent snapshotted its share of state lately: a later step,
  // unless it has waited SNAPSHOT_MAX_WAIT_MS already (whatever the order in
  // which the agent's sessions step, none waits longer).
  const overdue = r.snapshotWaitingSinceMs !== null && ctx.now - r.snapshotWaitingSinceMs >= SNAPSHOT_MAX_WAIT_MS
  if (!ctx.snapshotBudget.take(ctx.now, r.stateBytes, overdue)) {
    r.snapshotWaitingSinceMs ??= ctx.now
    return
  }
  r.snapshotWaitingSinceMs = null
  const snapshot = snapshotAt(r, r.appliedIndex)
  if (snapshot === null) return
  r.log.compact({ index: snapshot.index, epoch: snapshot.indexEpoch, config: snapshot.config }, snapshot.index + 1 - ctx.config.maxBatchEntries)
  ctx.persist({ kind: 'session-snapshot', sessionId: r.id, snapshot })
  r.stateBytes = keptStateBytes(snapshot) ?? JSON.stringify(snapshot.state).length
  r.bytesSinceSnapshot = 0
  ctx.emit({ type: 'snapshot-taken', sessionId: r.id, index: snapshot.index })
}

// 1 to 1.5, a pure function of the session id (every member agrees, and the
// simulator replays it).
export function snapshotSpread (sessionId: string): number {
  return 1 + (hash32(sessionId) % 1_024) / 2_048
}

export function snapshotAt (r: Replica, index: number): SessionSnapshotBody | null {
  const indexEpoch = r.log.epochAt(index)
  const config = r.log.configAt(index)
  if (indexEpoch === null || config === null || index !== r.appliedIndex) return null
  // A JSON copy, as text: services may change the live state in place. Its
  // length is the state's size; it is parsed only if someone reads the
  // snapshot's state (snapshot-text.ts): the store writes the text.
  const text = JSON.stringify(r.state)
  const dedup = { lastClientSeq: r.dedup.lastClientSeq, recent: r.dedup.recent.slice(windowStart(r.dedup.recent)).map(([s, i]) => [s, i] as [number, number]) }
  return snapshotOfText({ index, indexEpoch, info: r.info, config }, text, dedup)
}

// The answer a retried delta gets: the index it was logged at, if remembered.
export function dedupIndex (r: Replica, clientSeq: number): number | null {
  const recent = r.dedup.recent
  for (let i = recent.length - 1; i >= windowStart(recent); i--) if (recent[i][0] === clientSeq) return recent[i][1]
  return null
}

export type { Random }
export { applyCommitted }

// A batch's answer: the acknowledged prefix, then the first refused delta if any
// (nothing after it was logged). Nothing acknowledged: the refusal itself.
export function batchReply (r: Replica, items: BatchItem[], refusal: BatchRefusal | null): ClientReply {
  const results = items.map((item) => ({ clientSeq: item.clientSeq, index: item.index, ...(item.duplicate ? { duplicate: true } : {}) }))
  if (results.length === 0 && refusal !== null) return { status: refusal.status, body: { ...refusal.body, clientSeq: refusal.clientSeq } }
  const body: Record<string, unknown> = { epoch: r.epoch, results }
  if (refusal !== null) body.refused = { clientSeq: refusal.clientSeq, status: refusal.status, ...refusal.body }
  return { status: 200, body }
}
