// A terminal's request for a session this agent does not hold: an open whose
// owner-to-be is another agent (sent there as `session-open`), and a request
// about a session held elsewhere (`session-locate` to the agents likeliest to
// hold it, then a redirect to its owner). Part of the sessions core
// (sessions.ts): deterministic, effects through `emit`. Also the terminal's
// view of a session, which both build.

import type { GroupConfig, SessionInfo, SessionMessage } from '../../protocol/messages.ts'
import type { PeerKey } from '../core/io.ts'
import type { SessionsConfig } from './config.ts'
import { HashRing, serviceCapacity } from './placement.ts'
import { config } from './replica.ts'
import type { Replica } from './replica.ts'
import type { MemberDirectory, SessionCommand, SessionEffect } from './types.ts'

// Agents asked at once when looking for a session this agent does not hold.
const LOCATE_FANOUT = 10
// How long an agent waits for another to create or find a session, ms.
const REMOTE_TIMEOUT_MS = 2_000
// What an agent that has not joined its cluster yet (directory.joining) answers
// for a session it does not hold, and for an open: its table holds only itself,
// so "no such session" would be a guess, and a new session's group would be
// itself alone. A restarted agent asked at once answered 404 for every session
// held elsewhere (the simulator: 20 seeds of 20, a resume sent as the agent
// restarted), and a real one does so for as long as its bootstrap peers do not
// answer. The terminal's client tries another agent.
export function notJoinedReply (): { status: number; body: Record<string, unknown> } {
  return { status: 503, body: { error: 'this agent has not joined its cluster yet (no bootstrap peer has answered); retry, or ask another agent', retryAfterMs: 200 } }
}

// The retry a terminal is told while its session changes owner, ms: a takeover
// completes within a few round trips of the standbys' verdict, and a terminal
// sleeping a whole heartbeat past it would add that much to every takeover.
export const CHANGING_OWNER_RETRY_MS = 25

// A terminal's request about one session (not an open, a list or a peer's loss).
export type SessionRequest = Exclude<SessionCommand, { type: 'open' | 'list' | 'disconnected' | 'unreachable' | 'disk' }>

type Pending =
  | { kind: 'open'; requestId: string; deadlineMs: number; info: SessionInfo }
  | { kind: 'locate'; requestId: string; deadlineMs: number; command: SessionRequest; asked: number; answered: number; found: boolean }
  // A witness asking its members whether they still hold its session.
  | { kind: 'probe'; deadlineMs: number; sessionId: string }

export type RemoteOptions = {
  self: PeerKey
  directory: MemberDirectory
  config: SessionsConfig
  tokensEqual: (a: string, b: string) => boolean
  // The current step's time, and where its effects go.
  now: () => number
  emit: (effect: SessionEffect) => void
  // `peer`'s answer to probe(): whether it holds the session, and its group.
  probed: (sessionId: string, peer: PeerKey, found: boolean, group: GroupConfig) => void
}

export class RemoteRequests {
  readonly #o: RemoteOptions
  readonly #pending = new Map<number, Pending>()
  #nextRequestId = 1

  constructor (options: RemoteOptions) {
    this.#o = options
  }

  // The earliest deadline of a request waiting on another agent (Infinity: none).
  nextDeadlineMs (): number {
    let next = Infinity
    for (const pending of this.#pending.values()) next = Math.min(next, pending.deadlineMs)
    return next
  }

  // Requests whose agents did not answer in time are answered 503.
  expire (): void {
    for (const [id, pending] of this.#pending) {
      if (pending.deadlineMs > this.#o.now()) continue
      this.#pending.delete(id)
      if (pending.kind === 'probe') continue
      this.#reply(pending.requestId, { status: 503, body: { error: pending.kind === 'open' ? 'the owner-to-be did not answer in time' : 'could not find the session in time', retryAfterMs: 200 } })
    }
  }

  // Asks `owner`, the owner-to-be placement chose, to create the session.
  open (owner: PeerKey, requestId: string, info: SessionInfo, group: GroupConfig): void {
    const id = this.#nextRequestId++
    this.#pending.set(id, { kind: 'open', requestId, deadlineMs: this.#o.now() + REMOTE_TIMEOUT_MS, info })
    this.#o.emit({ kind: 'send', to: owner, message: { type: 'session-open', requestId: id, info, config: group } })
  }

  onOpened (message: Extract<SessionMessage, { type: 'session-opened' }>): void {
    const pending = this.#pending.get(message.requestId)
    if (pending === undefined || pending.kind !== 'open') return
    this.#pending.delete(message.requestId)
    if (message.status !== 201) return this.#reply(pending.requestId, { status: message.status, body: { error: message.reason } })
    this.#reply(pending.requestId, { status: 201, body: viewOf(this.#o.directory, pending.info.sessionId, pending.info.service, message.epoch, message.owner, message.config) })
  }

  // Asks the agents likeliest to hold the session (the service's placement
  // ring of alive agents) who owns it, and `also`: the members a stale copy of
  // ours last knew, which the ring may not reach once repairs moved the group.
  // Those are asked whatever our view says of them (except those that left):
  // our copy shows the session existed, and an agent just back from a freeze
  // or a partition still holds them dead for a while. Left out, it asked only
  // a member dropped from the group, heard "not held", and told the terminal
  // "no such session" while the owner it held dead served it (a chaos sweep
  // with slow nodes, disks and own clocks, replicas 1: SEED=655). One that
  // does not answer leaves the request to the deadline: 503, retry.
  locate (command: SessionCommand, also: readonly PeerKey[] = []): void {
    if (command.type === 'open' || command.type === 'list' || command.type === 'disconnected' || command.type === 'unreachable' || command.type === 'disk') return
    const service = serviceOf(command.sessionId)
    const alive = this.#o.directory.alive().filter((r) => r.id !== this.#o.self)
    const ring = new HashRing(
      alive.filter((r) => serviceCapacity(r, service) > 0).map((r) => ({ id: r.id, capacity: serviceCapacity(r, service) })),
      this.#o.config.vnodesPer100Capacity
    ).walk(command.sessionId, LOCATE_FANOUT)
    const asked = also.filter((peer) => {
      const status = this.#o.directory.status(peer)
      return peer !== this.#o.self && status !== null && status !== 'left'
    })
    const holders = [...new Set([...ring, ...asked])]
    if (holders.length === 0) return this.#reply(command.requestId, this.#o.directory.joining() ? notJoinedReply() : { status: 404, body: { error: 'no such session' } })
    const requestId = this.#nextRequestId++
    this.#pending.set(requestId, { kind: 'locate', requestId: command.requestId, deadlineMs: this.#o.now() + REMOTE_TIMEOUT_MS, command, asked: holders.length, answered: 0, found: false })
    for (const peer of holders) this.#o.emit({ kind: 'send', to: peer, message: { type: 'session-locate', requestId, sessionId: command.sessionId } })
  }

  // Asks `peers` (those alive) whether they hold the session; each answer goes
  // to `probed` (replica.ts, witnessProbeAtMs).
  probe (sessionId: string, peers: readonly PeerKey[]): void {
    const alive = peers.filter((peer) => peer !== this.#o.self && this.#o.directory.status(peer) === 'alive')
    if (alive.length === 0) return
    const requestId = this.#nextRequestId++
    this.#pending.set(requestId, { kind: 'probe', deadlineMs: this.#o.now() + REMOTE_TIMEOUT_MS, sessionId })
    for (const peer of alive) this.#o.emit({ kind: 'send', to: peer, message: { type: 'session-locate', requestId, sessionId } })
  }

  // Another agent asks about a session; `held` is our copy, if any.
  onLocate (from: PeerKey, requestId: number, sessionId: string, held: Replica | undefined): void {
    // A copy given up (orphaned: dropped by a later epoch's group, or left
    // alone by members that forgot the session; defunct: closed) serves nothing
    // and will never be owned again unless an owner takes it back: it answers
    // as if it held nothing. Counted as found, it kept a closed session
    // "changing owner" (503) for the ten minutes its one restarted member's
    // copy waited to be forgotten, and the terminal's close never got an
    // answer (a sweep with closes, SEED=171).
    const r = held === undefined || held.orphanedAtMs !== null || held.defunct ? undefined : held
    const owner = r === undefined ? '' : ownerOf(this.#o.self, r)
    this.#o.emit({
      kind: 'send', to: from, message: {
        type: 'session-location', requestId, sessionId, found: r !== undefined, epoch: r?.epoch ?? 0, owner,
        config: r === undefined ? { members: [this.#o.self], witness: null } : config(r), tokenHash: r?.info.tokenHash ?? '0'.repeat(64)
      }
    })
  }

  onLocation (from: PeerKey, message: Extract<SessionMessage, { type: 'session-location' }>): void {
    const pending = this.#pending.get(message.requestId)
    if (pending?.kind === 'probe') {
      if (message.sessionId === pending.sessionId) this.#o.probed(pending.sessionId, from, message.found, message.config)
      return
    }
    if (pending === undefined || pending.kind !== 'locate') return
    pending.answered++
    // A holder that names us as the owner holds a stale copy: we locate a
    // session because we hold none, or none we may serve. Taken at its word, we
    // sent the terminal to ourselves, again and again: a witness that missed a
    // session's close kept its copy, naming the owner that closed and forgot it
    // (a sweep with closes and replicas 1, SEED=979).
    const stale = message.owner === this.#o.self
    pending.found ||= message.found && !stale
    const command = pending.command
    // Wait for a holder that knows the owner; with none, a holder that knows the
    // session at all makes it "changing owner" (503), never "no such session".
    if (!message.found || message.owner === '' || stale) {
      if (pending.answered < pending.asked) return
      this.#pending.delete(message.requestId)
      if (!pending.found && this.#o.directory.joining()) return this.#reply(pending.requestId, notJoinedReply())
      const status = pending.found ? 503 : 404
      return this.#reply(pending.requestId, { status, body: { error: status === 404 ? 'no such session' : 'the session is changing owner; retry', retryAfterMs: status === 404 ? 200 : CHANGING_OWNER_RETRY_MS } })
    }
    this.#pending.delete(message.requestId)
    const target = pending.requestId
    if (!this.#o.tokensEqual(message.tokenHash, command.tokenHash)) return this.#reply(target, { status: 401, body: { error: 'this token does not open this session' } })
    const view = viewOf(this.#o.directory, command.sessionId, serviceOf(command.sessionId), message.epoch, message.owner, message.config)
    if (command.type === 'resume') return this.#reply(target, { status: 200, body: view })
    const http = this.#o.directory.record(message.owner)?.http ?? ''
    if (http === '') return this.#reply(target, { status: 503, body: { error: 'the session is changing owner; retry', retryAfterMs: CHANGING_OWNER_RETRY_MS } })
    this.#o.emit({ kind: 'reply', requestId: target, reply: { status: 307, location: http + pathFor(command.sessionId, command.type), body: view } })
  }

  #reply (requestId: string, reply: { status: number; body: Record<string, unknown> }): void {
    this.#o.emit({ kind: 'reply', requestId, reply })
  }
}

// ---- views ------------------------------------------------------------------

// Who owns the session as our copy says: '' while it changes owner.
function ownerOf (self: PeerKey, r: Replica): PeerKey {
  return r.role === 'owner' ? self : (r.ownerGone ? '' : (r.owner ?? ''))
}

export function viewOfReplica (self: PeerKey, directory: MemberDirectory, r: Replica): Record<string, unknown> {
  return viewOf(directory, r.id, r.info.service, r.epoch, ownerOf(self, r), config(r))
}

// The terminal's view: the owner, then the backup connection queue (the other
// members in priority order), then the witness.
export function viewOf (directory: MemberDirectory, sessionId: string, service: string, epoch: number, owner: PeerKey, group: GroupConfig): Record<string, unknown> {
  const http = (id: PeerKey): string => directory.record(id)?.http ?? ''
  const standbys = group.members.filter((m) => m !== owner)
  const queue = [
    ...(owner === '' ? [] : [{ id: owner, http: http(owner), role: 'owner' }]),
    ...standbys.map((id) => ({ id, http: http(id), role: 'standby' })),
    ...(group.witness === null ? [] : [{ id: group.witness, http: http(group.witness), role: 'witness' }])
  ]
  return { sessionId, service, epoch, owner: owner === '' ? null : { id: owner, http: http(owner) }, group: queue, config: group }
}

// Session ids are "<service>:<random>"; a service name never holds a colon.
export function serviceOf (sessionId: string): string {
  return sessionId.split(':')[0]
}

// Where a redirected request goes on the owner.
export function pathFor (sessionId: string, kind: SessionCommand['type']): string {
  const base = `/v1/sessions/${encodeURIComponent(sessionId)}`
  if (kind === 'append-batch') return `${base}/batch`
  return kind === 'append' ? `${base}/deltas` : base
}
