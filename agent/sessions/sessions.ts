// The sessions core: every session this agent holds a copy of, and the requests
// of terminals made at this agent. One deterministic state machine over
// replicas (owner.ts, follower.ts, election.ts do the per-session work): it
// routes messages by session, answers terminals (or redirects them to the
// owner), creates sessions at their owner, and finds sessions it does not hold
// (remote.ts, for the requests that wait on another agent).

import type { GroupConfig, SessionInfo, SessionMessage } from '../../protocol/messages.ts'
import type { PeerKey, Random } from '../core/io.ts'
import { ClosedSessions } from './closed.ts'
import type { SessionsConfig } from './config.ts'
import { CLOSED_SESSION, ORPHAN_GRACE_MS, UNKNOWN_SESSION, onDiagnosis, onVote, ownerHint, watchOwner } from './election.ts'
import { onAppend, onSnapshot, onVoteRequest } from './follower.ts'
import {
  advanceCommit, appendEntry, becomeOwner, clientAppend, countsInGroup, expireWaiters, heartbeat, leaseValid, maintainGroup, readRefusal,
  memberLost, onAck, wait
} from './owner.ts'
import { clientAppendBatch } from './deltas.ts'
import { maybeResign } from './resign.ts'
import { placeGroup } from './placement.ts'
import { STREAMS_RECHECK_MS, streamsToAsk } from './group-streams.ts'
import { applyCommitted, config, maybeSnapshot, newReplica, onWitnessProbeAnswer, restoreReplica, voters, witnessProbeAtMs } from './replica.ts'
import { CHANGING_OWNER_RETRY_MS, RemoteRequests, notJoinedReply, pathFor, viewOf, viewOfReplica } from './remote.ts'
import { SnapshotBudget } from './snapshot-budget.ts'
import { SessionWakes } from './wakes.ts'
import { QuietPeers } from './quiet.ts'
import type { Ctx, ParkableCommand, Replica, ReplyTarget } from './replica.ts'
import { dueParked, park } from './parked.ts'
import type { Service } from './services.ts'
import type { Acknowledges, ClientReply, ClosedSession, MemberDirectory, SessionCommand, SessionEffect, SessionInput, StoredSession } from './types.ts'

export type SessionsOptions = {
  directory: MemberDirectory
  config: SessionsConfig
  random: Random
  services: ReadonlyMap<string, Service>
  stored: StoredSession[]
  // Sessions remembered as closed (the store's, oldest first; default none).
  closed?: ClosedSession[]
  nowMs: number
  // Compares a stored token hash with a presented one in constant time. The host
  // passes node:crypto's timingSafeEqual; the default is the same in plain code.
  tokenHashesEqual?: (a: string, b: string) => boolean
  // Check every nextWakeMs against a scan of every session, and throw if they
  // differ (the simulator does, so its sweeps check the wake-up heap).
  verifyWake?: boolean
  // This process's name in quiet sessions' tokens (quiet.ts), below 2^48; the
  // host draws it at each start. Default: drawn from `random`.
  bootId?: number
}

// Constant-time equality of two hex hashes: every character is looked at, so the
// time taken does not tell how long a prefix matched.
export function constantTimeEqual (a: string, b: string): boolean {
  let diff = a.length ^ b.length
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i % Math.max(1, b.length))
  return diff === 0
}

export class Sessions {
  readonly self: PeerKey
  readonly #directory: MemberDirectory
  readonly #config: SessionsConfig
  readonly #random: Random
  readonly #snapshotBudget: SnapshotBudget
  readonly #services: ReadonlyMap<string, Service>
  readonly #tokensEqual: (a: string, b: string) => boolean
  readonly #replicas = new Map<string, Replica>()
  // Sessions this agent forgot because they were closed (closed.ts).
  readonly #closed = new ClosedSessions()
  // Requests waiting on another agent (remote.ts).
  readonly #remote: RemoteRequests
  #out: SessionEffect[] = []
  #now: number
  #ctxObject: Ctx | null = null
  // The host's verdict on this agent's disk (a 'disk' command).
  #diskSlow = false
  // When the input being stepped was read (Ctx.arrivedMs).
  #arrivedMs = 0
  // The wake-up last asked for (nextWakeMs): a step far later means we stalled.
  #wakeAskedMs = Infinity
  // The sessions' wake-ups, kept in a heap (nextWakeMs).
  readonly #wakes: SessionWakes
  // Quiet sessions' beats and tokens (quiet.ts).
  readonly #quiet: QuietPeers

  constructor (options: SessionsOptions) {
    this.self = options.directory.self
    this.#directory = options.directory
    this.#config = options.config
    this.#random = options.random
    this.#snapshotBudget = new SnapshotBudget(options.config.snapshotBytesPerS)
    this.#services = options.services
    this.#tokensEqual = options.tokenHashesEqual ?? constantTimeEqual
    this.#wakes = new SessionWakes(options.directory.self, options.config.ownerTimeoutMs, options.verifyWake ?? false)
    this.#quiet = new QuietPeers(options.bootId ?? QuietPeers.drawBoot((n) => options.random.nextInt(n)), (r) => this.#wakes.touched(r))
    this.#now = options.nowMs
    this.#remote = new RemoteRequests({
      self: this.self, directory: this.#directory, config: this.#config, tokensEqual: this.#tokensEqual, now: () => this.#now, emit: (effect) => { this.#out.push(effect) },
      // A witness's members answering whether they still hold its session.
      probed: (sessionId, peer, found, group) => this.#withReplica(sessionId, (r) => {
        onWitnessProbeAnswer(this.#ctx(), r, peer, found, group)
        this.#wakes.touched(r)
      })
    })
    // Remembered for CLOSED_REMEMBERED_MS from this start: a monotonic clock's
    // times do not survive a restart, so their age is not known.
    for (const closed of options.closed ?? []) this.#closed.remember(closed.sessionId, closed.epoch, options.nowMs)
    const ctx = this.#ctx()
    for (const stored of options.stored) {
      const replica = restoreReplica(stored, ctx)
      if (replica !== null) this.#replicas.set(replica.id, replica)
    }
    this.#out = []
  }

  step (input: SessionInput): SessionEffect[] {
    this.#out = []
    this.#now = input.nowMs
    if (input.nowMs - this.#wakeAskedMs > this.#config.ownerTimeoutMs) this.#afterStall()
    this.#wakeAskedMs = Infinity
    this.#arrivedMs = input.kind === 'receive' ? Math.min(input.arrivedMs ?? input.nowMs, input.nowMs) : input.nowMs
    if (input.kind === 'receive') {
      const message = input.message
      // Beats concern the agents' quiet sessions together (quiet.ts).
      if (message.type === 'session-beat') {
        this.#quiet.onBeat(this.#ctx(), input.from, message)
        return this.#out
      }
      if (message.type === 'session-beat-ack') {
        this.#quiet.onBeatAck(this.#ctx(), input.from, message)
        return this.#out
      }
      // A message concerns one session: only that one is looked at again, so a
      // burst of appends costs O(messages), not O(messages x sessions). Every
      // other replica's timers are due at nextWakeMs, when the host ticks.
      const id = 'sessionId' in message ? message.sessionId : null
      const quiet = id === null ? undefined : this.#replicas.get(id)
      if (quiet !== undefined && quiet.quiet !== null) this.#quiet.onMessageFor(this.#ctx(), quiet, input.from, message)
      this.#onMessage(input.from, message)
      const r = id === null ? undefined : this.#replicas.get(id)
      if (r !== undefined) {
        this.#tickReplica(this.#ctx(), r)
        this.#connectGroup(r)
        this.#wakes.touched(r)
      } else if (id === null) {
        // session-open, -opened, -location: may create a session here.
        this.#wakes.touchedAll()
      }
      return this.#out
    }
    if (input.kind === 'command') {
      this.#wakeFor(input.command)
      this.#onCommand(input.command)
      // A terminal's request about one session, like a message: only that
      // session is looked at again (a burst of appends from many terminals then
      // costs O(requests), not O(requests x sessions)); the others' timers are
      // due at nextWakeMs.
      const id = 'sessionId' in input.command && input.command.type !== 'open' ? input.command.sessionId : null
      if (id !== null) {
        const r = this.#replicas.get(id)
        if (r !== undefined) {
          this.#tickReplica(this.#ctx(), r)
          this.#connectGroup(r)
          this.#wakes.touched(r)
        }
        return this.#out
      }
    }
    this.#onTick()
    for (const r of this.#replicas.values()) this.#connectGroup(r)
    this.#wakes.touchedAll()
    return this.#out
  }

  // The earliest time anything here is due (wakes.ts keeps the sessions').
  nextWakeMs (): number {
    const next = Math.min(this.#quiet.nextWakeMs(this.#ctx()), this.#remote.nextDeadlineMs())
    this.#wakeAskedMs = this.#wakes.next(this.#replicas, next)
    return this.#wakeAskedMs
  }

  // What this agent holds, for GET /v1/sessions and metrics.
  list (): Array<{ sessionId: string; service: string; role: string; epoch: number; index: number; owner: PeerKey | null; members: PeerKey[]; quiet: boolean }> {
    return [...this.#replicas.values()].map((r) => ({
      sessionId: r.id, service: r.info.service, role: r.role, epoch: r.epoch, index: r.commitIndex, owner: r.owner, members: [...voters(r)], quiet: r.quiet !== null
    }))
  }

  // The services of the sessions this agent holds a copy of (any role): the
  // deploy host keeps their packages running (agent/deploy/distribution.ts).
  services (): Set<string> {
    const names = new Set<string>()
    for (const r of this.#replicas.values()) names.add(r.info.service)
    return names
  }

  // The voting members of a session held here, or null.
  members (sessionId: string): PeerKey[] | null {
    const r = this.#replicas.get(sessionId)
    return r === undefined ? null : [...voters(r)]
  }

  replica (sessionId: string): Replica | undefined {
    return this.#replicas.get(sessionId)
  }

  // A terminal's request wakes its quiet session where this agent owns it
  // (a read or a resume need not: the lease holds through the beats); a lost
  // peer wakes whatever is quiet with it.
  #wakeFor (command: SessionCommand): void {
    if (command.type === 'disconnected' || command.type === 'unreachable') return this.#quiet.peerLost(this.#ctx(), command.peer)
    if (command.type === 'open' || command.type === 'list' || command.type === 'get' || command.type === 'resume' || command.type === 'disk') return
    const r = this.#replicas.get(command.sessionId)
    if (r?.quiet?.kind === 'owner') this.#quiet.wakeOwner(this.#ctx(), r)
  }

  // This agent stalled (frozen, or its event loop blocked) for longer than
  // ownerTimeoutMs: what an owner knew of its members' deaths is as old as the
  // stall, and the inputs waiting may say the world moved on (a new epoch).
  // The repair delay starts again before any member is dropped: an owner frozen
  // through a takeover, once resumed, dropped the new owner from its group
  // before reading the new epoch in its backlog, and two uncommitted group
  // changes then refused each other's candidates for good (a 5-terminal chaos
  // sweep, SEED=2253).
  #afterStall (): void {
    for (const r of this.#replicas.values()) {
      if (r.role !== 'owner') continue
      for (const p of r.progress.values()) if (p.deadSinceMs !== null) p.deadSinceMs = this.#now
    }
  }

  // ---- plumbing -----------------------------------------------------------

  // The window the per-session functions get on this core: one object for the
  // core's life (built on first use; a step used to build two, with five
  // closures each, for every message). Its `now` is the current step's time and
  // its effects go to the current step's list.
  #ctx (): Ctx {
    if (this.#ctxObject !== null) return this.#ctxObject
    const core = this
    this.#ctxObject = {
      self: this.self,
      config: this.#config,
      directory: this.#directory,
      random: this.#random,
      get now () { return core.#now },
      snapshotBudget: this.#snapshotBudget,
      quiet: this.#quiet,
      send: (to, message) => { if (to !== this.self) this.#out.push({ kind: 'send', to, message }) },
      persist: (record) => { this.#out.push({ kind: 'persist', record }) },
      emit: (event) => { this.#out.push({ kind: 'event', event }) },
      reply: (target, reply, acknowledges) => this.#reply(target, reply, acknowledges),
      service: (name) => this.#services.get(name) ?? null,
      get diskSlow () { return core.#diskSlow },
      get arrivedMs () { return core.#arrivedMs }
    }
    return this.#ctxObject
  }

  #reply (target: ReplyTarget, reply: ClientReply, acknowledges?: Acknowledges): void {
    if ('local' in target) {
      const body = reply.body as { sessionId?: string; service?: string; epoch?: number; config?: GroupConfig }
      // A session created here: the terminal gets the full view of its group.
      const created = reply.status === 201 && body.config !== undefined && body.sessionId !== undefined
      const view = created ? { ...viewOf(this.#directory, body.sessionId as string, body.service ?? '', body.epoch ?? 0, this.self, body.config as GroupConfig) } : reply.body
      this.#out.push({ kind: 'reply', requestId: target.local, reply: { ...reply, body: view }, ...(acknowledges === undefined ? {} : { acknowledges }) })
      return
    }
    // Another agent forwarded a terminal's open: answer it in kind.
    const body = reply.body as { error?: string; epoch?: number; config?: GroupConfig }
    this.#out.push({
      kind: 'send',
      to: target.peer,
      message: {
        type: 'session-opened', requestId: target.requestId, status: reply.status, reason: body.error ?? '',
        epoch: body.epoch ?? 0, owner: reply.status === 201 ? this.self : '', config: body.config ?? { members: [this.self], witness: null }
      }
    })
  }

  // ---- time -----------------------------------------------------------------

  #onTick (): void {
    const ctx = this.#ctx()
    this.#remote.expire()
    this.#quiet.tick(ctx)
    for (const r of [...this.#replicas.values()]) {
      if (r.quiet === null) this.#tickReplica(ctx, r)
      else this.#retryApply(ctx, r)
    }
  }

  #tickReplica (ctx: Ctx, r: Replica): void {
    this.#tickRole(ctx, r)
    // Requests held while the owner was in doubt: served, redirected or refused
    // as soon as that is settled (or their window ends).
    if (this.#replicas.get(r.id) !== r) return
    for (const held of dueParked(r, ctx.now)) this.#serveOrRedirect(ctx, r, held.command, false)
  }

  // Its service could not apply an entry: time to ask it again (apply.ts),
  // quiet or not (a quiet copy keeps no timers of its own).
  #retryApply (ctx: Ctx, r: Replica): void {
    if (r.applyStall === null || ctx.now < r.applyStall.retryAtMs) return
    applyCommitted(ctx, r)
    maybeSnapshot(ctx, r)
  }

  #tickRole (ctx: Ctx, r: Replica): void {
    this.#retryApply(ctx, r)
    if (r.quiet !== null) return
    if (r.role !== 'owner' && (r.defunct || (r.closed && r.appliedIndex >= r.commitIndex))) return this.#forget(ctx, r, true)
    if (r.role === 'owner') {
      if (ctx.now >= r.heartbeatAtMs) heartbeat(ctx, r)
      if (ctx.now >= r.lagCheckAtMs) advanceCommit(ctx, r)
      expireWaiters(ctx, r)
      maintainGroup(ctx, r)
      if (maybeResign(ctx, r)) return
      this.#quiet.maybeQuiesce(ctx, r)
      if (r.closed) {
        // The members hold the close but may not know it committed: tell them
        // now, as nothing will after this (else they would stand for election
        // in a session nobody serves).
        heartbeat(ctx, r)
        return this.#forget(ctx, r, true)
      }
      return
    }
    watchOwner(ctx, r)
    if (ctx.now >= witnessProbeAtMs(r, ctx.self, ctx.config.ownerTimeoutMs)) {
      r.witnessProbedAtMs = ctx.now
      this.#remote.probe(r.id, config(r).members)
    }
    if (r.orphanedAtMs !== null && ctx.now - r.orphanedAtMs > ORPHAN_GRACE_MS && ctx.now - r.lastOwnerContactMs > ORPHAN_GRACE_MS) this.#forget(ctx, r, false)
  }

  // `closed`: the session was closed (or our copy is defunct: a majority forgot
  // it and we hold its close), so it is remembered as closed (#refuseClosed).
  #forget (ctx: Ctx, r: Replica, closed: boolean): void {
    this.#quiet.forget(ctx, r)
    this.#replicas.delete(r.id)
    if (closed) this.#closed.remember(r.id, r.epoch, ctx.now)
    ctx.persist({ kind: 'session-delete', sessionId: r.id, ...(closed ? { closedEpoch: r.epoch } : {}) })
    ctx.emit({ type: 'session-closed', sessionId: r.id })
    // Held requests are answered as if they arrived now (found elsewhere, or not).
    for (const held of r.parked.splice(0)) this.#remote.locate(held.command)
  }

  // ---- messages between agents -------------------------------------------

  #onMessage (from: PeerKey, message: SessionMessage): void {
    const ctx = this.#ctx()
    switch (message.type) {
      case 'session-append': {
        if (this.#refuseClosed(ctx, from, message)) return
        const r = onAppend(ctx, this.#replicas.get(message.sessionId), from, message)
        if (r !== null) this.#replicas.set(r.id, r)
        return
      }
      case 'session-snapshot': {
        if (this.#refuseClosed(ctx, from, message)) return
        const r = onSnapshot(ctx, this.#replicas.get(message.sessionId), from, message)
        this.#replicas.set(r.id, r)
        return
      }
      case 'session-append-ack': return this.#withReplica(message.sessionId, (r) => { if (r.role === 'owner') onAck(ctx, r, from, message) })
      case 'session-vote-request': return this.#onVoteRequest(ctx, from, message)
      case 'session-vote': return this.#withReplica(message.sessionId, (r) => onVote(ctx, r, from, message))
      case 'session-diagnose': return this.#onDiagnose(ctx, from, message.sessionId, message.nonce)
      case 'session-diagnosis': return this.#withReplica(message.sessionId, (r) => onDiagnosis(ctx, r, from, message))
      case 'session-open': return this.#createHere(ctx, { peer: from, requestId: message.requestId }, message.info, message.config)
      case 'session-opened': return this.#remote.onOpened(message)
      case 'session-locate': return this.#remote.onLocate(from, message.requestId, message.sessionId, this.#replicas.get(message.sessionId))
      case 'session-location': return this.#remote.onLocation(from, message)
      case 'session-quiesce': return this.#quiet.onQuiesce(ctx, this.#replicas.get(message.sessionId), from, message)
      case 'session-quiesced': return this.#withReplica(message.sessionId, (r) => this.#quiet.onQuiesced(ctx, r, from, message))
      // Handled in step().
      case 'session-beat': case 'session-beat-ack': return
    }
  }

  // An append or snapshot for a session we forgot because it was closed comes
  // from an owner that missed the close: refused in a later epoch (closed.ts).
  #refuseClosed (ctx: Ctx, from: PeerKey, message: Extract<SessionMessage, { type: 'session-append' | 'session-snapshot' }>): boolean {
    if (this.#replicas.has(message.sessionId)) return false
    const epoch = this.#closed.refusalEpoch(message.sessionId, message.epoch, ctx.now)
    if (epoch === null) return false
    ctx.send(from, { type: 'session-append-ack', sessionId: message.sessionId, epoch, seq: message.seq, ok: false, matchIndex: 0, lastIndex: 0 })
    return true
  }

  #withReplica (sessionId: string, act: (r: Replica) => void): void {
    const r = this.#replicas.get(sessionId)
    if (r !== undefined) act(r)
  }

  // Asks the host to keep streams open to the other members of a group we are
  // in (agent/sessions/group-streams.ts says when and why).
  // Quiet sessions too (quiet.ts): a member restarted while they were quiet
  // is reached again before the next takeover needs it.
  #connectGroup (r: Replica): void {
    const recheck = this.#now - r.streamsCheckedAtMs >= STREAMS_RECHECK_MS
    // Nothing changes a quiet session's group (any change wakes it first).
    if (r.quiet !== null && !recheck) return
    if (recheck) r.streamsCheckedAtMs = this.#now
    const asked = streamsToAsk(r.connectedTo, voters(r), (peer) => this.#directory.record(peer)?.incarnation ?? -1, recheck)
    if (asked === null) return
    r.connectedTo = asked
    for (const { peer } of asked) if (peer !== this.self) this.#out.push({ kind: 'connect', peer })
  }

  #onVoteRequest (ctx: Ctx, from: PeerKey, message: Extract<SessionMessage, { type: 'session-vote-request' }>): void {
    const r = this.#replicas.get(message.sessionId)
    if (r === undefined) {
      const reason = this.#closed.remembers(message.sessionId, ctx.now) ? CLOSED_SESSION : UNKNOWN_SESSION
      ctx.send(from, { type: 'session-vote', sessionId: message.sessionId, epoch: 0, granted: false, preVote: message.preVote, reason, lastIndex: 0, lastEpoch: 0, commitIndex: 0, tail: [] })
      return
    }
    onVoteRequest(ctx, r, from, message)
  }

  // M2.1: the owner answers whether it serves the session: it owns it, holds its
  // lease, and runs its service.
  #onDiagnose (ctx: Ctx, from: PeerKey, sessionId: string, nonce: number): void {
    const r = this.#replicas.get(sessionId)
    // A member our group no longer counts (replaced while it was frozen or cut
    // off) still holds its old copy and diagnoses us as its owner. Answered,
    // it would go on doing so every ownerTimeoutMs for good, never told it is
    // out. Unanswered, it gives us up, stands for election, and the members
    // refuse it as not a member: it retires its copy (the orphan path, as for
    // a member removed while it was down). An agent we are bringing up to
    // date to add it is not in the group yet, but is answered.
    if (r !== undefined && r.role === 'owner' && !countsInGroup(r, from)) return
    const serving = r !== undefined && r.role === 'owner' && leaseValid(ctx, r) && ctx.service(r.info.service) !== null
    ctx.send(from, { type: 'session-diagnosis', sessionId, nonce, epoch: r?.epoch ?? 0, serving, commitIndex: r?.commitIndex ?? 0 })
  }

  // ---- terminals ---------------------------------------------------------

  #onCommand (command: SessionCommand): void {
    const ctx = this.#ctx()
    if (command.type === 'disk') {
      this.#diskSlow = command.slow
      return
    }
    if (command.type === 'disconnected' || command.type === 'unreachable') {
      for (const r of this.#replicas.values()) {
        if (r.role === 'owner') memberLost(ctx, r, command.peer)
        else ownerHint(ctx, r, command.peer, command.type === 'unreachable')
      }
      return
    }
    if (command.type === 'list') return ctx.reply({ local: command.requestId }, { status: 200, body: { sessions: this.list() } })
    if (command.type === 'open') return this.#open(ctx, command)
    const target: ReplyTarget = { local: command.requestId }
    const r = this.#replicas.get(command.sessionId)
    if (r === undefined) return this.#remote.locate(command)
    if (!this.#tokensEqual(r.info.tokenHash, command.tokenHash)) return ctx.reply(target, { status: 401, body: { error: 'this token does not open this session' } })
    if (r.orphanedAtMs !== null) return this.#locateElsewhere(r, command)
    if (command.type === 'resume') return ctx.reply(target, { status: 200, body: this.#view(r) })
    this.#serveOrRedirect(ctx, r, command, true)
  }

  // Our copy was dropped from its group by a later epoch (orphanedAtMs): it
  // cannot name the owner, and its group is stale. Answered from it (503, its
  // view), a terminal would keep asking its members, this agent among them, until
  // the copy is forgotten (ORPHAN_GRACE_MS, 10 minutes): with one standby (R = 1)
  // its view may name no other data member at all. So the request goes as it
  // would at an agent without a copy, to the ring's holders and to the members
  // this copy last knew, witness included: one of them knows the owner.
  #locateElsewhere (r: Replica, command: SessionCommand): void {
    const group = config(r)
    this.#remote.locate(command, group.witness === null ? group.members : [...group.members, group.witness])
  }

  // The owner serves; another member redirects to it, or holds the request
  // while the owner is in doubt (parked.ts) when `mayPark`.
  #serveOrRedirect (ctx: Ctx, r: Replica, command: ParkableCommand, mayPark: boolean): void {
    const target: ReplyTarget = { local: command.requestId }
    if (r.role !== 'owner' && r.orphanedAtMs !== null) return this.#locateElsewhere(r, command)
    if (r.role !== 'owner') {
      if (mayPark && park(r, command, ctx.now, this.#config)) return
      return this.#redirect(ctx, target, r, command.type)
    }
    if (command.type === 'append') return clientAppend(ctx, r, target, command.clientSeq, command.op)
    if (command.type === 'append-batch') return clientAppendBatch(ctx, r, target, command.clientSeq, command.ops)
    if (command.type === 'get') return this.#get(ctx, target, r)
    return this.#close(ctx, target, r)
  }

  #open (ctx: Ctx, command: Extract<SessionCommand, { type: 'open' }>): void {
    const target: ReplyTarget = { local: command.requestId }
    if (!this.#services.has(command.service)) return ctx.reply(target, { status: 400, body: { error: `unknown service ${command.service} (known: ${[...this.#services.keys()].join(', ')})` } })
    if (this.#directory.joining()) return ctx.reply(target, notJoinedReply())
    const info: SessionInfo = { sessionId: command.sessionId, service: command.service, terminalId: command.terminalId, tokenHash: command.tokenHash, position: command.position }
    const group = placeGroup(this.#directory.alive(), info.sessionId, info.service, info.position, this.#config)
    if (group === null) return ctx.reply(target, { status: 503, body: { error: `no agent offers ${command.service} under the load threshold`, retryAfterMs: 1_000 } })
    const owner = group.members[0]
    if (owner === this.self) return this.#createHere(ctx, target, info, group)
    this.#remote.open(owner, command.requestId, info, group)
  }

  // Creates a session with this agent as its owner, at epoch 1; the terminal is
  // answered once the write concern holds the create entry.
  #createHere (ctx: Ctx, target: ReplyTarget, info: SessionInfo, group: GroupConfig): void {
    if (this.#replicas.has(info.sessionId)) return ctx.reply(target, { status: 409, body: { error: 'a session with this id exists' } })
    if (this.#replicas.size >= this.#config.maxSessions) {
      ctx.emit({ type: 'limit', limit: 'sessions-per-agent', sessionId: info.sessionId })
      return ctx.reply(target, { status: 503, body: { error: `this agent holds its maximum of ${this.#config.maxSessions} sessions (sessions.maxSessions)`, retryAfterMs: 1_000 } })
    }
    if (ctx.service(info.service) === null || !group.members.includes(this.self)) return ctx.reply(target, { status: 503, body: { error: `this agent cannot own a ${info.service} session` } })
    const r = newReplica(info, ctx.now)
    r.epoch = 1
    r.votedFor = this.self
    ctx.persist({ kind: 'session-meta', sessionId: info.sessionId, epoch: 1, votedFor: this.self })
    this.#replicas.set(r.id, r)
    const index = appendEntry(ctx, r, { kind: 'create', info, config: group })
    ctx.emit({ type: 'session-created', sessionId: r.id, service: info.service, config: group })
    wait(ctx, r, index, { target, clientSeq: 0, deadlineMs: this.#now + this.#config.writeTimeoutMs, kind: 'open' })
    // The group has nothing yet: send from the create entry on.
    becomeOwner(ctx, r, null, 0, 1)
    advanceCommit(ctx, r)
  }

  #get (ctx: Ctx, target: ReplyTarget, r: Replica): void {
    // A broken core for the simulator's read checker (it must catch it): an
    // owner serves reads without its lease, a cut-off one from a stale state.
    const refusal = ctx.config.plantedFault === 'read-without-lease' ? null : readRefusal(ctx, r)
    if (refusal !== null) return ctx.reply(target, { status: 503, body: { error: refusal, retryAfterMs: this.#config.heartbeatMs } })
    ctx.reply(target, { status: 200, body: { ...this.#view(r), index: r.commitIndex, state: r.state, lastClientSeq: r.dedup.lastClientSeq } })
  }

  #close (ctx: Ctx, target: ReplyTarget, r: Replica): void {
    if (!leaseValid(ctx, r)) return ctx.reply(target, { status: 503, body: { error: 'the owner cannot reach a majority of its group', retryAfterMs: this.#config.heartbeatMs } })
    const index = appendEntry(ctx, r, { kind: 'close' })
    wait(ctx, r, index, { target, clientSeq: 0, deadlineMs: this.#now + this.#config.writeTimeoutMs, kind: 'close' })
    advanceCommit(ctx, r)
  }

  // A member that does not own the session sends the terminal to the owner.
  #redirect (ctx: Ctx, target: ReplyTarget, r: Replica, kind: SessionCommand['type']): void {
    const http = r.owner === null ? '' : (this.#directory.record(r.owner)?.http ?? '')
    if (http === '' || r.ownerGone) return ctx.reply(target, { status: 503, body: { error: 'the session is changing owner; retry', retryAfterMs: CHANGING_OWNER_RETRY_MS, ...this.#view(r) } })
    ctx.reply(target, { status: 307, location: http + pathFor(r.id, kind), body: { ...this.#view(r) } })
  }

  #view (r: Replica): Record<string, unknown> {
    return viewOfReplica(this.self, this.#directory, r)
  }
}

