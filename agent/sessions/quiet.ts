// Quiet sessions: an idle session costs nothing per heartbeat.
//
// A session's owner heartbeats each member every heartbeatMs, and each member
// acks: the acks renew the owner's lease, the heartbeats keep the members from
// standing for election. With a thousand idle sessions that is thousands of
// frames a second per agent, all saying "still here". Like CockroachDB's
// quiesced ranges, an owner whose session has been idle for quietAfterMs asks
// its members to go quiet; then one beat per pair of agents per heartbeatMs
// (`session-beat`, answered by `session-beat-ack`) stands for the heartbeats
// of every quiet session between them.
//
// What keeps it safe (the lease: a member promises no vote for anyone else
// while it has heard the owner within ownerTimeoutMs):
// - The owner asks (`session-quiesce`, at its last index, all of it committed
//   and acked by every member) and goes quiet only once every member said yes
//   (`session-quiesced`), stopping its heartbeats meanwhile so that nothing it
//   sends after the request reaches a member first. A member says yes only if
//   it holds exactly that log from that owner, with nothing in doubt.
// - A quiet member counts a beat from the owner's process (`boot`) as the
//   owner heard for every session quiet under it. A member that stops doing
//   so for a session on its own (no beat for ownerTimeoutMs, a beat from
//   another boot of the owner, a vote request, any frame but the owner's)
//   changes its token for that owner (`gen`), which every later beat ack
//   carries; a restarted member has a new boot, so a new token too. A gen is
//   drawn from one counter for all owners, never reused in a process: the
//   entries about an owner nothing is quiet under any more can be dropped,
//   and the one made when it comes back cannot match a token it still holds.
// - The owner counts a beat ack toward a quiet session's lease only if its
//   token is the one the member said yes with; an ack with another token wakes
//   every quiet session it shares with that member. So the lease the owner
//   computes is always backed by a member that refreshes the session from
//   those beats.
// - Anything that happens to a quiet session wakes it first: a terminal's
//   write, any frame about it but a harmless late ack or another agent's
//   `session-locate` (it only reads who owns it), a lost connection, a
//   member gone quiet (no beat ack for memberStaleMs) or no longer alive. An
//   owner that wakes carries its members' beat promises over to the session's
//   own lease and heartbeats at once; its next appends (later `seq` than the
//   request) wake the members without changing their tokens.
// Quiet state lives in memory only: after a restart everything is awake.
// Agents that do not know these frames refuse them (an unknown type), never
// say yes, and keep their sessions heartbeated.

import type { SessionBeat, SessionBeatAck, SessionMessage, SessionQuiesce, SessionQuiesced } from '../../protocol/messages.ts'
import type { PeerKey } from '../core/io.ts'
import { heartbeat, leaseValid } from './owner.ts'
import { LEASE_SAFETY, applyCommitted, config, maybeSnapshot, voters } from './replica.ts'
import type { Ctx, Replica } from './replica.ts'

export type QuietToken = { boot: number; gen: number }
// Owner side: the token each member said yes with.
export type QuietOwner = { kind: 'owner'; members: Map<PeerKey, QuietToken> }
// Member side: quiet under this owner's process, since its request `seq`.
export type QuietMember = { kind: 'member'; owner: PeerKey; ownerBoot: number; seq: number }
// Owner side: a request sent, the members' answers so far.
// `open` until answered by all, or given up.
export type QuietAsk = { seq: number; index: number; atMs: number; acks: Map<PeerKey, QuietToken>; open: boolean }

// An owner whose request was not answered by every member asks again after
// this long.
export const QUIET_RETRY_MS = 5_000
// A member that did not answer QUIET_SILENT_ASKS requests in a row (an agent of
// an older version refuses the frame as an unknown type) is not asked again,
// for any session, for this long: a rolling upgrade costs it a few refused
// frames per minute per owner, not one per session every few seconds. One
// unanswered request (lost in a partition, sent to a member that was just
// killed or restarting) only waits QUIET_RETRY_MS: left alone for a minute
// after any such loss, every session it shared with the owner stayed awake
// that long (the real-process bench's quiet rounds: a session of 5 still
// awake 20 s after the restart of a killed member, two rounds running; the
// simulator: 39 of 200 chaos seeds with sessions going quiet after 150 ms had
// a group awake 20 s after everything healed).
export const QUIET_SILENT_PEER_MS = 60_000
export const QUIET_SILENT_ASKS = 3
// Beat rounds whose send times are kept for their acks.
const BEATS_KEPT = 64
// Boot ids are drawn below this (a safe integer, a varint on the wire).
const BOOT_LIMIT = 2 ** 48

export class QuietPeers {
  // This process's name in tokens and beats: drawn once per start.
  readonly boot: number
  readonly #touched: (r: Replica) => void
  // Member side: the token per owner (and the last gen drawn), the last beat
  // per owner, the sessions quiet under each owner.
  readonly #gens = new Map<PeerKey, number>()
  #lastGen = -1
  readonly #beatsFrom = new Map<PeerKey, { atMs: number; boot: number }>()
  readonly #under = new Map<PeerKey, Set<Replica>>()
  // Owner side: beats sent, the last ack and when each member was last heard,
  // the quiet sessions shared with each member.
  #beatSeq = 0
  readonly #beatSent = new Map<number, number>()
  // Members that left requests unanswered: how many in a row, and until when
  // they are not asked again.
  readonly #silent = new Map<PeerKey, { unanswered: number; untilMs: number }>()
  #nextBeatAtMs = -Infinity
  readonly #acks = new Map<PeerKey, { sentAtMs: number; boot: number; gen: number }>()
  readonly #heard = new Map<PeerKey, number>()
  readonly #with = new Map<PeerKey, Set<Replica>>()
  // When the entries about peers nothing is quiet with are next dropped.
  #pruneAtMs = -Infinity

  constructor (boot: number, touched: (r: Replica) => void) {
    this.boot = boot
    this.#touched = touched
  }

  static drawBoot (nextInt: (n: number) => number): number {
    // Two draws: Random.nextInt takes n up to 2^32 in some hosts.
    return (nextInt(2 ** 24) * 2 ** 24 + nextInt(2 ** 24)) % BOOT_LIMIT
  }

  // ---- owner side ---------------------------------------------------------

  // Called at the owner's tick: asks the members to go quiet once the session
  // has been settled and idle for quietAfterMs.
  maybeQuiesce (ctx: Ctx, r: Replica): void {
    if (r.quiet !== null || ctx.config.quietAfterMs <= 0) return
    if (ctx.now - r.activeAtMs < ctx.config.quietAfterMs || !settled(ctx, r)) {
      r.quietAsk = null
      return
    }
    if (r.quietAsk !== null && ctx.now - r.quietAsk.atMs < QUIET_RETRY_MS) return
    const members = membersOf(ctx, r)
    for (const peer of members) if ((this.#silent.get(peer)?.untilMs ?? -Infinity) > ctx.now) return
    const seq = ++r.seq
    r.quietAsk = { seq, index: r.log.lastIndex, atMs: ctx.now, acks: new Map(), open: true }
    if (members.length === 0) return this.#enterOwner(ctx, r)
    const indexEpoch = r.log.epochAt(r.log.lastIndex) ?? 0
    for (const peer of members) {
      ctx.send(peer, { type: 'session-quiesce', sessionId: r.id, epoch: r.epoch, seq, index: r.log.lastIndex, indexEpoch, boot: this.boot })
    }
  }

  // While a request waits for its answers the owner sends the session nothing
  // else (a later frame would reach a member after the request and wake it
  // unseen). One heartbeat period is ample for the answers; then it gives up.
  holdsHeartbeat (ctx: Ctx, r: Replica): boolean {
    const ask = r.quietAsk
    if (ask === null || !ask.open) return false
    if (ctx.now - ask.atMs < ctx.config.heartbeatMs) return true
    // Unanswered: heartbeats go on; another request after QUIET_RETRY_MS, or
    // QUIET_SILENT_PEER_MS for a member that said nothing QUIET_SILENT_ASKS
    // times in a row.
    for (const peer of membersOf(ctx, r)) {
      if (ask.acks.has(peer)) continue
      const unanswered = (this.#silent.get(peer)?.unanswered ?? 0) + 1
      this.#silent.set(peer, { unanswered, untilMs: ctx.now + (unanswered >= QUIET_SILENT_ASKS ? QUIET_SILENT_PEER_MS : QUIET_RETRY_MS) })
    }
    ask.open = false
    return false
  }

  onQuiesced (ctx: Ctx, r: Replica, from: PeerKey, msg: SessionQuiesced): void {
    const ask = r.quietAsk
    if (r.role !== 'owner' || r.quiet !== null || ask === null || !ask.open || msg.seq !== ask.seq || msg.epoch !== r.epoch || ask.index !== r.log.lastIndex) return
    this.#silent.delete(from)
    const members = membersOf(ctx, r)
    if (!msg.ok || !members.includes(from)) return
    ask.acks.set(from, { boot: msg.boot, gen: msg.gen })
    this.#heard.set(from, ctx.now)
    // The member refreshed the session when the request reached it: a promise
    // from the request's send time.
    const p = r.progress.get(from)
    if (p !== undefined) {
      p.promiseUntilMs = Math.max(p.promiseUntilMs, ask.atMs + ctx.config.ownerTimeoutMs * LEASE_SAFETY)
      p.lastAckMs = ctx.now
    }
    if (ask.acks.size < members.length) return
    if (settled(ctx, r)) this.#enterOwner(ctx, r)
    else ask.open = false
  }

  #enterOwner (ctx: Ctx, r: Replica): void {
    const ask = r.quietAsk as QuietAsk
    r.quiet = { kind: 'owner', members: new Map(ask.acks) }
    r.quietAsk = null
    for (const peer of r.quiet.members.keys()) setOf(this.#with, peer).add(r)
    if (this.#nextBeatAtMs === -Infinity || this.#nextBeatAtMs < ctx.now) this.#nextBeatAtMs = gridAfter(ctx.now, ctx.config.heartbeatMs)
    this.#touched(r)
  }

  // The owner's lease from a member's beats: until when the member's promise
  // for this quiet session stands, as its beat acks tell.
  promiseUntil (ctx: Ctx, r: Replica, peer: PeerKey): number {
    if (r.quiet?.kind !== 'owner') return -Infinity
    const token = r.quiet.members.get(peer)
    const ack = this.#acks.get(peer)
    if (token === undefined || ack === undefined || ack.boot !== token.boot || ack.gen !== token.gen) return -Infinity
    return ack.sentAtMs + ctx.config.ownerTimeoutMs * LEASE_SAFETY
  }

  // The owner's session wakes: its members' promises carry over to the
  // session's own lease, and it heartbeats at once.
  wakeOwner (ctx: Ctx, r: Replica): void {
    if (r.quiet?.kind !== 'owner') return
    for (const peer of r.quiet.members.keys()) {
      const p = r.progress.get(peer)
      if (p !== undefined) {
        p.promiseUntilMs = Math.max(p.promiseUntilMs, this.promiseUntil(ctx, r, peer))
        p.lastAckMs = Math.max(p.lastAckMs, this.#heard.get(peer) ?? -Infinity)
      }
      this.#with.get(peer)?.delete(r)
    }
    r.quiet = null
    r.activeAtMs = ctx.now
    this.#touched(r)
    if (r.role === 'owner') heartbeat(ctx, r)
  }

  onBeatAck (ctx: Ctx, from: PeerKey, msg: SessionBeatAck): void {
    const sentAtMs = this.#beatSent.get(msg.seq)
    if (sentAtMs === undefined) return
    const last = this.#acks.get(from)
    if (last === undefined || last.sentAtMs <= sentAtMs) this.#acks.set(from, { sentAtMs, boot: msg.boot, gen: msg.gen })
    this.#heard.set(from, Math.max(this.#heard.get(from) ?? -Infinity, ctx.now))
    const shared = this.#with.get(from)
    if (shared === undefined || shared.size === 0) return
    for (const r of [...shared]) {
      const token = r.quiet?.kind === 'owner' ? r.quiet.members.get(from) : undefined
      if (token === undefined || token.boot !== msg.boot || token.gen !== msg.gen) this.wakeOwner(ctx, r)
    }
  }

  // ---- member side --------------------------------------------------------

  onQuiesce (ctx: Ctx, r: Replica | undefined, from: PeerKey, msg: SessionQuiesce): void {
    const ok = r !== undefined && this.#mayQuiesce(r, from, msg)
    if (ok) {
      if (r.quiet !== null) this.wakeMember(ctx, r, false)
      r.knownCommitIndex = Math.max(r.knownCommitIndex, msg.index)
      r.commitIndex = Math.max(r.commitIndex, msg.index)
      applyCommitted(ctx, r)
      maybeSnapshot(ctx, r)
      r.lastOwnerContactMs = ctx.now
      // A beat from a new boot of the owner wakes what was quiet under the old.
      this.#beat(ctx, from, msg.boot)
      r.quiet = { kind: 'member', owner: from, ownerBoot: msg.boot, seq: msg.seq }
      setOf(this.#under, from).add(r)
      this.#touched(r)
    }
    ctx.send(from, { type: 'session-quiesced', sessionId: msg.sessionId, epoch: msg.epoch, seq: msg.seq, ok, boot: this.boot, gen: this.#genFor(from) })
  }

  #mayQuiesce (r: Replica, from: PeerKey, msg: SessionQuiesce): boolean {
    if (r.role !== 'standby' && r.role !== 'witness') return false
    if (r.owner !== from || r.epoch !== msg.epoch || r.ownerGone || r.ownerLostMs !== null || r.diagnosis !== null || r.candidacy !== null) return false
    if (r.parked.length > 0 || r.closed || r.defunct || r.orphanedAtMs !== null) return false
    if (r.quiet !== null && (r.quiet.kind !== 'member' || msg.seq <= r.quiet.seq)) return false
    return r.log.lastIndex === msg.index && r.log.epochAt(msg.index) === msg.indexEpoch && msg.index >= r.commitIndex
  }

  // A member's quiet session wakes. `onItsOwn`: not because its owner sent it
  // something newer than the request, so the owner must learn through a new
  // token that the beats no longer stand for it.
  wakeMember (ctx: Ctx, r: Replica, onItsOwn: boolean): void {
    const q = r.quiet
    if (q?.kind !== 'member') return
    const beat = this.#beatsFrom.get(q.owner)
    if (beat !== undefined && beat.boot === q.ownerBoot) r.lastOwnerContactMs = Math.max(r.lastOwnerContactMs, beat.atMs)
    this.#under.get(q.owner)?.delete(r)
    if (onItsOwn) this.#gens.set(q.owner, ++this.#lastGen)
    r.quiet = null
    this.#touched(r)
  }

  onBeat (ctx: Ctx, from: PeerKey, msg: SessionBeat): void {
    this.#beat(ctx, from, msg.boot)
    ctx.send(from, { type: 'session-beat-ack', seq: msg.seq, boot: this.boot, gen: this.#genFor(from) })
  }

  #genFor (owner: PeerKey): number {
    let gen = this.#gens.get(owner)
    if (gen === undefined) {
      gen = ++this.#lastGen
      this.#gens.set(owner, gen)
    }
    return gen
  }

  #beat (ctx: Ctx, from: PeerKey, boot: number): void {
    const under = this.#under.get(from)
    if (under !== undefined) for (const r of [...under]) if (r.quiet?.kind === 'member' && r.quiet.ownerBoot !== boot) this.wakeMember(ctx, r, true)
    this.#beatsFrom.set(from, { atMs: ctx.now, boot })
  }

  // ---- both -----------------------------------------------------------------

  // A frame about a quiet session: wakes it unless harmless.
  onMessageFor (ctx: Ctx, r: Replica, from: PeerKey, msg: SessionMessage): void {
    const q = r.quiet
    // Another agent looking for the session (a terminal's request there) only
    // reads who owns it.
    if (q === null || msg.type === 'session-locate') return
    if (q.kind === 'owner') {
      const harmless = msg.type === 'session-quiesced' || (msg.type === 'session-append-ack' && msg.epoch === r.epoch && msg.ok)
      if (!harmless) this.wakeOwner(ctx, r)
      return
    }
    if (msg.type === 'session-quiesce') return
    if (msg.type === 'session-append' && from === q.owner && msg.epoch === r.epoch) {
      // Sent before the request: harmless. After it: the owner woke.
      if (msg.seq > q.seq) this.wakeMember(ctx, r, false)
      return
    }
    this.wakeMember(ctx, r, true)
  }

  // The transport lost `peer`, or gave up on it: whatever is quiet with it wakes.
  peerLost (ctx: Ctx, peer: PeerKey): void {
    for (const r of [...(this.#with.get(peer) ?? [])]) this.wakeOwner(ctx, r)
    for (const r of [...(this.#under.get(peer) ?? [])]) this.wakeMember(ctx, r, true)
  }

  // Before a session is forgotten or replaced.
  forget (ctx: Ctx, r: Replica): void {
    if (r.quiet?.kind === 'owner') {
      for (const peer of r.quiet.members.keys()) this.#with.get(peer)?.delete(r)
      r.quiet = null
    } else if (r.quiet?.kind === 'member') {
      this.wakeMember(ctx, r, true)
    }
    r.quietAsk = null
  }

  // The timers: beats to send, members no longer heard, owners no longer
  // beating. Runs at every tick of the core.
  tick (ctx: Ctx): void {
    if (ctx.now >= this.#pruneAtMs) this.#prune(ctx)
    if (this.#with.size === 0 && this.#under.size === 0) return
    let beating = false
    for (const [peer, shared] of this.#with) {
      if (shared.size === 0) {
        this.#with.delete(peer)
        continue
      }
      const heard = this.#heard.get(peer) ?? -Infinity
      // Each bound here is the sum nextWakeMs names, not a difference: a
      // difference can fall a rounding short of it and never be due.
      if (ctx.now >= heard + ctx.config.memberStaleMs || ctx.directory.status(peer) !== 'alive') {
        for (const r of [...shared]) this.wakeOwner(ctx, r)
        continue
      }
      beating = true
    }
    if (beating && ctx.now >= this.#nextBeatAtMs) {
      // One round: every peer's beat carries the same seq.
      const seq = ++this.#beatSeq
      this.#beatSent.set(seq, ctx.now)
      for (const [peer, shared] of this.#with) if (shared.size > 0) ctx.send(peer, { type: 'session-beat', boot: this.boot, seq })
      while (this.#beatSent.size > BEATS_KEPT) this.#beatSent.delete(this.#beatSent.keys().next().value as number)
      this.#nextBeatAtMs = gridAfter(ctx.now, ctx.config.heartbeatMs)
    }
    for (const [owner, under] of this.#under) {
      if (under.size === 0) {
        this.#under.delete(owner)
        continue
      }
      const beat = this.#beatsFrom.get(owner)
      // Woken as an awake session would start to doubt its owner: the tick
      // goes on to watch it (sessions.ts), from the last beat heard.
      if (beat === undefined || ctx.now >= beat.atMs + ctx.config.ownerTimeoutMs) for (const r of [...under]) this.wakeMember(ctx, r, true)
    }
  }

  // Drops what is kept about peers nothing is quiet with any more (peers that
  // left, above all), once it can no longer matter: an owner's last beat once
  // ownerTimeoutMs old, then its gen (a new one is drawn if it comes back); a
  // member's last ack once memberStaleMs old (a quiet session with it would
  // have woken by then); silences that ran out. At most once per
  // ownerTimeoutMs; not a timer of its own (nextWakeMs): any later tick will do.
  #prune (ctx: Ctx): void {
    this.#pruneAtMs = ctx.now + ctx.config.ownerTimeoutMs
    const quietUnder = (owner: PeerKey): boolean => (this.#under.get(owner)?.size ?? 0) > 0
    for (const [owner, beat] of this.#beatsFrom) if (!quietUnder(owner) && ctx.now - beat.atMs >= ctx.config.ownerTimeoutMs) this.#beatsFrom.delete(owner)
    for (const owner of this.#gens.keys()) if (!quietUnder(owner) && !this.#beatsFrom.has(owner)) this.#gens.delete(owner)
    for (const [peer, heard] of this.#heard) {
      if ((this.#with.get(peer)?.size ?? 0) > 0 || ctx.now - heard < ctx.config.memberStaleMs) continue
      this.#heard.delete(peer)
      this.#acks.delete(peer)
    }
    // A silence is counted on while it is recent: a member that said nothing
    // once, a minute ago, starts again from zero.
    for (const [peer, silence] of this.#silent) if (ctx.now - silence.untilMs >= QUIET_SILENT_PEER_MS) this.#silent.delete(peer)
  }

  // Peers something is kept about (tests).
  keptPeers (): { owners: number; members: number; silent: number } {
    return { owners: new Set([...this.#gens.keys(), ...this.#beatsFrom.keys()]).size, members: new Set([...this.#heard.keys(), ...this.#acks.keys()]).size, silent: this.#silent.size }
  }

  // The earliest of those timers (Infinity: none). The simulator asks every
  // node after every step: with nothing quiet it must not even iterate.
  nextWakeMs (ctx: Ctx): number {
    if (this.#with.size === 0 && this.#under.size === 0) return Infinity
    let next = Infinity
    for (const [peer, shared] of this.#with) {
      if (shared.size === 0) continue
      next = Math.min(next, this.#nextBeatAtMs, (this.#heard.get(peer) ?? -Infinity) + ctx.config.memberStaleMs)
    }
    for (const [owner, under] of this.#under) {
      if (under.size === 0) continue
      next = Math.min(next, (this.#beatsFrom.get(owner)?.atMs ?? -Infinity) + ctx.config.ownerTimeoutMs)
    }
    return next
  }
}

// Nothing is under way in the session, every member holds all of it, and the
// group wants no change (owner.ts, maintainGroup): it may go quiet.
function settled (ctx: Ctx, r: Replica): boolean {
  if (r.role !== 'owner' || r.closed || r.waiters.size > 0 || r.parked.length > 0 || r.repair !== null || r.candidacy !== null) return false
  if (r.snapshotWaitingSinceMs !== null || r.commitIndex !== r.log.lastIndex || r.appliedIndex !== r.commitIndex || r.commitIndex < r.readableFromIndex) return false
  const c = config(r)
  if (c.members.length < ctx.config.replicas + 1) return false
  if (c.members.length === 2 ? c.witness === null : c.witness !== null) return false
  for (const peer of membersOf(ctx, r)) {
    const p = r.progress.get(peer)
    if (p === undefined || p.matchIndex !== r.log.lastIndex || p.nextIndex !== r.log.lastIndex + 1 || p.deadSinceMs !== null) return false
    if (ctx.now - p.lastAckMs >= ctx.config.memberStaleMs || ctx.directory.status(peer) !== 'alive') return false
  }
  if (r.progress.size !== membersOf(ctx, r).length) return false
  return leaseValid(ctx, r)
}

function membersOf (ctx: Ctx, r: Replica): readonly PeerKey[] {
  const all = voters(r)
  return all.includes(ctx.self) ? all.filter((p) => p !== ctx.self) : all
}

function setOf<K, V> (map: Map<K, Set<V>>, key: K): Set<V> {
  let set = map.get(key)
  if (set === undefined) {
    set = new Set()
    map.set(key, set)
  }
  return set
}

function gridAfter (now: number, periodMs: number): number {
  return (Math.floor(now / periodMs) + 1) * periodMs
}
