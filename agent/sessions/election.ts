// Takeover, as the standbys see it (M0.8, M1.3, M2.1–M2.3). A standby that stops
// hearing the owner diagnoses it (does it still serve the session?); when the
// owner fails the diagnosis, or the transport or the membership shows it dead,
// the standbys stand in the group's priority order, the first qualified one
// after 0 ms, the next after candidateStaggerMs, and so on. A candidate wins the
// next epoch with a majority of the group's votes, completes its log from the
// most up-to-date voter, and becomes the owner.

import type { SessionDiagnosis, SessionVote } from '../../protocol/messages.ts'
import type { PeerKey } from '../core/io.ts'
import { ReplicaLog } from './log.ts'
import { becomeOwner, stepDown } from './owner.ts'
import { RESIGN_HOLDOFF_MS } from './resign.ts'
import { truncate } from './follower.ts'
import { config, forgottenByMajority, majority, memberGone, voters } from './replica.ts'
import type { Candidacy, Ctx, Replica } from './replica.ts'

// The end of the refusal of a candidate the voter's config does not have.
export const NOT_A_MEMBER = 'is not a member of the group'

// The start of the refusal of a member that voted for another candidate.
export const VOTED_ELSEWHERE = 'already voted for'

// The refusal of a member that does not hold the session at all.
export const UNKNOWN_SESSION = 'unknown session'

// The refusal of a member that forgot the session because it was closed (it
// remembers that: closed.ts, stored across restarts). A candidate told so
// gives its copy up as closed: no one can serve the session again. Before, it
// counted as one member without the session; a candidate behind a witness
// that held the close uncommitted (and so refused it as behind) stood for
// good, and the terminal's close got 503 (SEED=1151 of a sweep with
// `replicas` 1, own clocks, stalling disks and slow nodes, on a course that
// the locate of agents' suspects made). An agent without this reads it as any
// refusal.
export const CLOSED_SESSION = 'closed session'

// The start of a refusal that shields an owner heard within ownerTimeoutMs (or
// of the owner's own, while it holds its lease).
export const SHIELD_REFUSAL = 'the owner'

// How long an orphan (told by a later epoch that it is out of the group) keeps
// its copy before deleting it.
export const ORPHAN_GRACE_MS = 10 * 60_000

// The promise behind an owner's lease (owner.ts, leaseValid): an owner counts a
// member's acknowledgement as its promise to vote for no one else, itself
// included, for LEASE_SAFETY × ownerTimeoutMs from when it sent what the member
// acknowledged. The member keeps it for ownerTimeoutMs from when it heard the
// owner: no vote for another candidate, and no candidacy of its own, unless its
// connection to the owner closed since (the transport saw the owner's process
// go: a killed process's kernel closes its sockets, a dial to it is refused).
// A verdict of the membership or a failed diagnosis does not end it: either can
// come within the promise (a membership that suspected the owner before its
// last heartbeat got through, with session timings slower than the
// membership's; a diagnosis asked for by another member's candidacy), while
// the owner, cut off, still serves reads under the lease it counts on (SEED=296
// of a chaos sweep with readers and the wan session timings on the lan
// membership: the membership's verdict 840 ms after the cut, a standby's vote
// at once, a new owner 30 ms later, and the old one answering a read 1.7 s
// after the cut with four acknowledged deltas missing). A member restarted
// from its store may have promised before it stopped: it keeps that for
// ownerTimeoutMs from its start.
export function promiseHolds (ctx: Ctx, r: Replica): boolean {
  return ctx.now < promiseEndMs(r, ctx.self, ctx.config.ownerTimeoutMs)
}

// When the promise ends, absent news from the owner.
function promiseEndMs (r: Replica, self: PeerKey, ownerTimeoutMs: number): number {
  const heard = r.owner !== null && r.owner !== self && r.ownerLostMs === null ? r.lastOwnerContactMs + ownerTimeoutMs : -Infinity
  return Math.max(heard, r.restartShieldUntilMs)
}

export function watchOwner (ctx: Ctx, r: Replica): void {
  if (r.role === 'candidate') return candidacyTick(ctx, r)
  if (r.role !== 'standby') return
  const owner = r.owner
  if (owner !== null && !r.ownerGone) {
    const status = ctx.directory.status(owner)
    if (status === 'dead' || status === 'left') ownerGone(ctx, r, `the membership declared ${owner} ${status}`)
  }
  // Due at the very time nextElectionWake names (the same sum: a difference
  // compared with ownerTimeoutMs can fall a rounding short of it, and the host
  // would wake the core at that time again and again).
  if (!r.ownerGone && r.diagnosis === null && ctx.now >= r.lastOwnerContactMs + ctx.config.ownerTimeoutMs) diagnose(ctx, r, `no heartbeat for ${Math.round(ctx.now - r.lastOwnerContactMs)} ms`)
  if (r.diagnosis !== null && ctx.now >= r.diagnosis.deadlineMs) {
    r.diagnosis = null
    ownerGone(ctx, r, `no answer to the service diagnosis in time (${r.ownerLostMs === null ? 'its heartbeats stopped' : 'the connection to it was lost'})`)
  }
  // Our own vote is a vote too: no candidacy while our promise to the owner
  // holds (promiseHolds, above).
  if (r.ownerGone && ctx.now >= r.electionAtMs && !promiseHolds(ctx, r)) standForElection(ctx, r)
}

export function nextElectionWake (r: Replica, self: PeerKey, ownerTimeoutMs: number): number {
  if (r.role === 'candidate' && r.candidacy !== null) return Math.min(r.candidacy.deadlineMs, r.candidacy.resendAtMs)
  if (r.role !== 'standby') return Infinity
  if (r.diagnosis !== null) return r.diagnosis.deadlineMs
  if (r.ownerGone) return Math.max(r.electionAtMs, promiseEndMs(r, self, ownerTimeoutMs))
  return r.lastOwnerContactMs + ownerTimeoutMs
}

// The transport lost the owner (a closed stream is a hint: diagnose now), or
// could not reach it at all (as good as a failed diagnosis).
export function ownerHint (ctx: Ctx, r: Replica, peer: PeerKey, unreachable: boolean): void {
  if (r.owner !== peer) return
  // Witnesses and standbys alike stop shielding an owner they lost.
  r.ownerLostMs ??= ctx.now
  if (r.role !== 'standby' || r.ownerGone) return
  if (unreachable) return ownerGone(ctx, r, `${peer} is unreachable`)
  if (r.diagnosis === null) diagnose(ctx, r, `lost the connection to ${peer}`)
}

// Another member's word that the owner may be gone: diagnose it now, unless we
// are already doing so or have given up on it.
export function checkOwner (ctx: Ctx, r: Replica, reason: string): void {
  if (r.role === 'standby' && !r.ownerGone && r.diagnosis === null) diagnose(ctx, r, reason)
}

// A diagnosis sent after the transport lost the owner waits this share of
// diagnoseTimeoutMs: the send redials, so a live owner answers within a round
// trip or two, while a killed one is gone for good (its redial is refused, which
// usually settles it sooner still).
const LOST_DIAGNOSE_SHARE = 1 / 3

function diagnose (ctx: Ctx, r: Replica, reason: string): void {
  const owner = r.owner
  if (owner === null) return ownerGone(ctx, r, `no known owner (${reason})`)
  const waitMs = r.ownerLostMs === null ? ctx.config.diagnoseTimeoutMs : Math.ceil(ctx.config.diagnoseTimeoutMs * LOST_DIAGNOSE_SHARE)
  r.diagnosis = { nonce: ctx.random.nextInt(2 ** 31), deadlineMs: ctx.now + waitMs }
  ctx.emit({ type: 'owner-suspected', sessionId: r.id, owner, reason })
  ctx.send(owner, { type: 'session-diagnose', sessionId: r.id, nonce: r.diagnosis.nonce })
}

export function onDiagnosis (ctx: Ctx, r: Replica, from: PeerKey, msg: SessionDiagnosis): void {
  if (r.diagnosis === null || msg.nonce !== r.diagnosis.nonce || from !== r.owner) return
  r.diagnosis = null
  if (msg.serving && msg.epoch >= r.epoch) {
    r.lastOwnerContactMs = ctx.now
    return
  }
  ownerGone(ctx, r, `${from} does not serve the session (epoch ${msg.epoch})`)
}

function ownerGone (ctx: Ctx, r: Replica, reason: string): void {
  if (r.ownerGone) return
  r.ownerGone = true
  r.suspectedAtMs = ctx.now
  r.electionAtMs = ctx.now + standAfterMs(ctx, r)
  if (r.owner !== null) ctx.emit({ type: 'owner-suspected', sessionId: r.id, owner: r.owner, reason })
}

// How long after giving up on the owner we stand: the i-th in the backup queue
// waits i × candidateStaggerMs, so that the first has the epoch before the next
// stands and the two do not split the vote. Where one vote is a majority
// (directVote), two standbys standing at once settle in one exchange (the one
// ahead refuses the one behind and gets its vote: rivalRefusal), so the stagger
// only has to keep the queue's order when both see the owner die within a
// scheduling hiccup of each other: a quarter of it. A first standby slow to see
// the death (a busy box) then costs the next 50 ms on lan, not 200.
export const DIRECT_STAGGER_SHARE = 1 / 4

// A member whose service cannot apply its committed entries now (apply.ts)
// stands after every other member in the queue: as owner it could serve
// nothing until its service works again.
function standAfterMs (ctx: Ctx, r: Replica): number {
  let place = rank(ctx, r)
  if (!Number.isFinite(place)) return Infinity
  if (r.applyStall !== null) place += config(r).members.length
  let afterMs = place * ctx.config.candidateStaggerMs * (directVote(r) ? DIRECT_STAGGER_SHARE : 1)
  // A member whose disk is slow (as owner it would make every write wait for
  // its fsyncs: resign.ts) stands ownerTimeoutMs later, and one that just
  // handed the session over for it twice that later again: it gave up the
  // session at a time of its choosing, so its own timer and the others'
  // start together, and a few places of stagger (150 ms) were not enough on
  // a busy box (a clean-clone CI run: the slow agent won back a session it had
  // handed over, and kept it through the holdoff).
  if (ctx.diskSlow) afterMs += ctx.config.ownerTimeoutMs
  if (ctx.now - r.resignedAtMs < RESIGN_HOLDOFF_MS) afterMs += 2 * ctx.config.ownerTimeoutMs
  return afterMs
}

// Our place in the backup queue: data members in config order, skipping the
// owner that failed. A witness never stands.
function rank (ctx: Ctx, r: Replica): number {
  return rankOf(r, ctx.self)
}

function rankOf (r: Replica, peer: PeerKey): number {
  const queue = config(r).members.filter((m) => m !== r.owner)
  const at = queue.indexOf(peer)
  return at < 0 ? Infinity : at
}

// M2.2: a candidate offers the service and its replica is in sync.
function qualified (ctx: Ctx, r: Replica): boolean {
  if (r.orphanedAtMs !== null || !config(r).members.includes(ctx.self)) return false
  const offers = ctx.directory.record(ctx.self)?.services.some((s) => s.name === r.info.service) ?? false
  const lag = r.knownCommitIndex - r.log.lastIndex
  return offers && lag <= ctx.config.maxCandidateLagEntries
}

// Stands for the next epoch: a pre-vote first (Raft §9.6). Only when a majority
// would vote for us do we raise our epoch and ask for real: a member that cannot
// reach its group keeps its epoch, and cannot unseat a healthy owner on return.
//
// Where one vote besides our own is a majority (the usual group: an owner and
// two standbys, or two members and a witness), the pre-vote guards nothing the
// real vote does not, and costs a round trip of every takeover: we ask for the
// real vote at once, still without raising our epoch, and cast (and persist)
// our own vote only as we win (maybeWin). A cut-off candidate thus changes no
// one's epoch, its own included; a voter changes its epoch only by granting, on
// the same rule (it saw the owner die) by which it would have granted the
// pre-vote, and one grant is the win: the same outcome as the two rounds.
function standForElection (ctx: Ctx, r: Replica): void {
  if (!qualified(ctx, r)) {
    r.electionAtMs = Infinity
    return
  }
  r.role = 'candidate'
  const direct = directVote(r)
  r.candidacy = { pre: !direct, epoch: r.epoch + 1, commitIndex: r.commitIndex, deadlineMs: ctx.now + ctx.config.voteTimeoutMs, resendAtMs: ctx.now, votes: new Map(), lostTo: new Set(), refusals: new Map(), extended: 0 }
  if (direct) ctx.emit({ type: 'election-started', sessionId: r.id, epoch: r.epoch + 1, reason: 'owner gone; one vote is a majority, asked for without a pre-vote' })
  requestVotes(ctx, r)
  maybeWin(ctx, r)
}

// One vote besides the candidate's own makes a majority of the voters.
export function directVote (r: Replica): boolean {
  return majority(voters(r).length) <= 2
}

// A candidate asking for the real vote without a pre-vote has not cast its own
// vote yet (it does as it wins). It acts as if it had for a rival of its epoch
// behind it in the backup queue, and refuses it; a rival ahead of it gets the
// vote (the grant ends this candidacy), so two standbys that stood at once
// settle in one exchange instead of splitting the vote.
export function rivalRefusal (ctx: Ctx, r: Replica, candidate: PeerKey, epoch: number, preVote: boolean): string | null {
  const c = r.candidacy
  if (r.role !== 'candidate' || c === null || c.pre || preVote || candidate === ctx.self || epoch !== c.epoch || r.epoch >= c.epoch) return null
  return rankOf(r, candidate) > rank(ctx, r) ? `${VOTED_ELSEWHERE} ${ctx.self} in epoch ${epoch}` : null
}

function startRealElection (ctx: Ctx, r: Replica): void {
  const c = r.candidacy as Candidacy
  r.epoch = c.epoch
  r.votedFor = ctx.self
  ctx.persist({ kind: 'session-meta', sessionId: r.id, epoch: r.epoch, votedFor: ctx.self })
  r.candidacy = { pre: false, epoch: r.epoch, commitIndex: r.commitIndex, deadlineMs: ctx.now + ctx.config.voteTimeoutMs, resendAtMs: ctx.now, votes: new Map(), lostTo: new Set(), refusals: new Map(), extended: 0 }
  ctx.emit({ type: 'election-started', sessionId: r.id, epoch: r.epoch, reason: 'owner gone; a majority would vote for us' })
  requestVotes(ctx, r)
  maybeWin(ctx, r)
}

// Votes are asked again this often while a candidacy lasts: a voter that refused
// because it still heard the owner may have lost it a few ms later.
const VOTE_RESEND_MS = 25

function requestVotes (ctx: Ctx, r: Replica): void {
  const c = r.candidacy
  if (c === null) return
  c.resendAtMs = ctx.now + Math.min(ctx.config.heartbeatMs, VOTE_RESEND_MS)
  for (const peer of voters(r)) {
    if (peer === ctx.self || c.votes.has(peer)) continue
    ctx.send(peer, {
      type: 'session-vote-request', sessionId: r.id, epoch: c.epoch, candidate: ctx.self,
      lastIndex: r.log.lastIndex, lastEpoch: r.log.lastEpoch, commitIndex: c.commitIndex, preVote: c.pre
    })
  }
}

// A candidacy whose missing votes are all silence, or refusals only because the
// voter still heard the owner lately, is given this many more vote timeouts
// before it is lost: a new epoch would ask the same members again, after a
// stagger. A voter slow to answer (a busy box, a slow disk under its vote's
// fsync) or still checking on the owner is waited for instead of costing a lost
// election, a stagger and a second round. Any other refusal (a vote given to
// another, a log too short) loses at the deadline as before.
export const SILENT_EXTENSIONS = 2

function onlyWaiting (ctx: Ctx, r: Replica, c: Candidacy): boolean {
  if (c.lostTo.size > 0) return false
  return voters(r).every((peer) => peer === ctx.self || c.votes.has(peer) || (c.refusals.get(peer) ?? SHIELD_REFUSAL).startsWith(SHIELD_REFUSAL))
}

function candidacyTick (ctx: Ctx, r: Replica): void {
  const c = r.candidacy
  if (c === null) return
  if (ctx.now >= c.deadlineMs && c.extended < SILENT_EXTENSIONS && onlyWaiting(ctx, r, c)) {
    c.extended++
    c.deadlineMs = ctx.now + ctx.config.voteTimeoutMs
  }
  if (ctx.now >= c.deadlineMs) {
    // Who said what: an operator (and the bench) can tell a split vote, a shield
    // or a silent member apart.
    const answers = voters(r).filter((peer) => peer !== ctx.self && !c.votes.has(peer)).map((peer) => `${peer}: ${c.refusals.get(peer) ?? 'no answer'}`)
    return loseElection(ctx, r, `${c.pre ? 'no majority for the pre-vote in time' : 'no majority in time'} (${answers.join('; ')})`)
  }
  if (ctx.now >= c.resendAtMs) requestVotes(ctx, r)
}

export function onVote (ctx: Ctx, r: Replica, from: PeerKey, vote: SessionVote): void {
  if (!vote.granted && vote.epoch === 0 && vote.reason === UNKNOWN_SESSION) return onForgotten(ctx, r, from)
  if (!vote.granted && vote.epoch === 0 && vote.reason === CLOSED_SESSION && voters(r).includes(from)) {
    r.defunct = true
    return loseElection(ctx, r, `${from} closed the session`)
  }
  r.forgottenBy.delete(from)
  // A refusal from a later epoch: someone else's epoch is real.
  if (!vote.granted && vote.epoch > r.epoch) {
    if (vote.reason.includes('not a member')) r.orphanedAtMs ??= ctx.now
    return stepDown(ctx, r, vote.epoch, null, `${from} is in epoch ${vote.epoch}`)
  }
  const c = r.candidacy
  if (r.role !== 'candidate' || c === null || vote.preVote !== c.pre) return
  if (!vote.granted) c.refusals.set(from, vote.reason)
  // A member of our epoch, or one whose log is at least as up to date as ours,
  // whose config no longer has us: we were removed (while we were down, say)
  // and our copy of the group is stale. Stop standing (we would be refused
  // forever); an owner that still counts us clears this. The log matters when
  // we hold a later epoch than the group: one we stood for and never won.
  // Refused by the owner and a member of the earlier epoch only, two members
  // dropped since stood for ever, holding their terminal's requests and
  // answering them from their stale view (SEED=1875 of a sweep with replicas 3).
  const removed = !vote.granted && vote.reason.endsWith(NOT_A_MEMBER) && vote.reason.startsWith(ctx.self) &&
    (vote.epoch >= r.epoch || ReplicaLog.compare(vote.lastEpoch, vote.lastIndex, r.log.lastEpoch, r.log.lastIndex) >= 0)
  if (removed) {
    r.orphanedAtMs ??= ctx.now
    return loseElection(ctx, r, `removed from the group (${from}: ${vote.reason})`)
  }
  // A split vote: once too many members gave this epoch to someone else for a
  // majority to remain, stand down now rather than at the vote's deadline.
  if (!vote.granted && !c.pre && vote.reason.startsWith(VOTED_ELSEWHERE) && voters(r).includes(from)) {
    c.lostTo.add(from)
    const group = voters(r)
    const possible = group.filter((peer) => !c.lostTo.has(peer) && (peer === ctx.self || !memberGone(ctx.directory.status(peer)))).length
    if (possible < majority(group.length)) loseElection(ctx, r, 'split vote')
    return
  }
  if (!vote.granted || vote.epoch !== c.epoch) return
  // Only the voters of our group as our log has it now count. A member removed
  // since we asked it (a request of an earlier candidacy, answered late by a
  // member frozen meanwhile) would otherwise make a majority of a group it is
  // not in: SEED=931 of a 3-terminal sweep elected a member of a group of two
  // with the vote of an old third member, while the other member, cut off,
  // went on acknowledging alone.
  if (!voters(r).includes(from)) {
    c.refusals.set(from, 'not a voter of our group')
    return
  }
  // A grant answering an earlier request of ours in this epoch (sent before a
  // candidacy that stood again, say: a candidate frozen with requests out, or
  // working through a backlog) carries the voter's entries after that request's
  // commit index. Entries up to ours are committed, the same on every log, so a
  // tail from further back is cut to ours (completeLog). A tail that starts
  // after ours (a request sent before a restart, whose commit index we had
  // not stored yet) leaves a hole we cannot check, so that vote is not
  // counted: winning without the entries only it holds could drop acknowledged
  // ones. (Before, a tail not starting exactly after ours was ignored and the
  // vote counted: SEED=30508 of the sessions sweep lost five acknowledged
  // deltas that way.)
  if (!c.pre && !completes(vote, c.commitIndex)) {
    c.refusals.set(from, `its vote's entries start after ${c.commitIndex + 1}`)
    return
  }
  c.votes.set(from, vote)
  maybeWin(ctx, r)
}

// Whether a granted vote's tail joins our log at or before `commitIndex` + 1.
// (An empty one: the voter held nothing after the request's commit index, all
// of it committed, so held here too.)
function completes (vote: SessionVote, commitIndex: number): boolean {
  return vote.tail.length === 0 || vote.tail[0].index <= commitIndex + 1
}

// A member granted `candidate` a pre-vote: the candidate will likely stand for
// real now. A member behind it in the backup queue steps aside (ends its own
// pre-vote, or waits one vote timeout before standing), so that the two do not
// split the real vote. A real candidate keeps going: its own vote is cast.
export function deferTo (ctx: Ctx, r: Replica, candidate: PeerKey): void {
  if (rankOf(r, candidate) >= rank(ctx, r)) return
  if (r.role === 'candidate' && r.candidacy?.pre === true) {
    r.role = 'standby'
    r.candidacy = null
    r.electionAtMs = ctx.now + ctx.config.voteTimeoutMs
  } else if (r.role === 'standby' && Number.isFinite(r.electionAtMs)) {
    r.electionAtMs = Math.max(r.electionAtMs, ctx.now + ctx.config.voteTimeoutMs)
  }
}

// A member without the session (replica.ts, forgottenByMajority, says what we
// make of it): we stop standing once no majority can ever vote again.
function onForgotten (ctx: Ctx, r: Replica, from: PeerKey): void {
  forgottenByMajority(ctx, r, from)
}

function maybeWin (ctx: Ctx, r: Replica): void {
  const c = r.candidacy
  if (c === null || !votesMakeMajority(r, c)) return
  if (c.pre) return startRealElection(ctx, r)
  if (r.epoch < c.epoch) {
    // A direct candidacy: our own vote is cast now, persisted in this step, so
    // before anything of the new epoch leaves (commit-order.ts holds a step's
    // frames behind its session-meta). A vote given to another in this epoch
    // would have ended the candidacy (stepDown), so none was.
    r.epoch = c.epoch
    r.votedFor = ctx.self
    ctx.persist({ kind: 'session-meta', sessionId: r.id, epoch: r.epoch, votedFor: ctx.self })
  }
  if (r.epoch !== c.epoch || r.votedFor !== ctx.self) return loseElection(ctx, r, `epoch ${c.epoch} was given to ${r.votedFor ?? 'nobody'}`)
  completeLog(ctx, r, c.commitIndex, [...c.votes.values()])
  // The votes were counted against the group our own log held. The tail just
  // adopted may hold another: later group changes (we were frozen through
  // them), or a later epoch's entries in place of an uncommitted change of
  // ours. Raft's election is safe because the winner's log is at least as up
  // to date as each voter's and its voters are a majority of the group its own
  // log holds; with the tail, the winner's log is the best voter's, so its
  // voters must be a majority of that log's group. Counted against the old
  // group instead, the sweep with replicas 3 lost acknowledged deltas twice:
  // SEED=1797 elected a member frozen since the group's first changes with
  // the votes of two members dropped since, one of which handed over those
  // changes; SEED=2528 elected a member whose own uncommitted change had cut
  // its group to three, with the vote of a member holding a later epoch's
  // first entries, which replaced that change. Neither majority met the one
  // that had acknowledged the deltas.
  if (!config(r).members.includes(ctx.self)) return loseElection(ctx, r, 'the log our voters hold has a group without us')
  if (!votesMakeMajority(r, c)) return
  becomeOwner(ctx, r, r.owner, ctx.now - r.suspectedAtMs)
}

// Our vote and those of the voters of the group our log holds now (others'
// are dropped) make a majority of it.
function votesMakeMajority (r: Replica, c: Candidacy): boolean {
  const group = voters(r)
  for (const peer of c.votes.keys()) if (!group.includes(peer)) c.votes.delete(peer)
  return c.votes.size + 1 >= majority(group.length)
}

// Everything acknowledged is on a majority, so on at least one voter: the most
// up-to-date log among the voters and us holds it. Adopt that log's tail, from
// after our commit index (onVote counted only votes whose tails reach back to
// it; a tail reaching further back repeats committed entries we hold).
function completeLog (ctx: Ctx, r: Replica, commitIndex: number, votes: SessionVote[]): void {
  let best: SessionVote | null = null
  for (const vote of votes) {
    const than = best === null ? [r.log.lastEpoch, r.log.lastIndex] : [best.lastEpoch, best.lastIndex]
    if (ReplicaLog.compare(vote.lastEpoch, vote.lastIndex, than[0], than[1]) > 0 && vote.tail.length > 0) best = vote
  }
  if (best === null) return
  const tail = best.tail.filter((entry) => entry.index > commitIndex)
  if (tail.length === 0 || tail[0].index !== commitIndex + 1) return
  if (r.log.lastIndex > commitIndex) truncate(ctx, r, commitIndex + 1)
  for (const entry of tail) r.log.append(entry)
  ctx.persist({ kind: 'session-entries', sessionId: r.id, entries: tail })
}

function loseElection (ctx: Ctx, r: Replica, reason: string): void {
  ctx.emit({ type: 'election-lost', sessionId: r.id, epoch: r.epoch, reason })
  r.role = 'standby'
  r.candidacy = null
  // Step back behind the others, with jitter so that two candidates split by
  // bad luck do not collide again.
  const place = rank(ctx, r)
  r.electionAtMs = ctx.now + (Number.isFinite(place) ? place + 1 : 1) * ctx.config.candidateStaggerMs + ctx.random.nextInt(Math.max(1, ctx.config.candidateStaggerMs))
}
