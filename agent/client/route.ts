// Where a client request goes and how one operation is retried across agents:
// the Route (owner, else the backup queue), the Exchanger, and the rules that
// turn an answer (or a network error) into the next step. See edge-client.ts;
// sim/terminal.ts plays the same policy in virtual time: keep the two in step.

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { closeConnections, keepAliveConnections, NetworkError, requestJson } from './http.ts'
import { DeltaStreams } from './deltas-stream.ts'
import type { Connections, HttpReply } from './http.ts'
import { EdgeClientError } from './types.ts'
import type { GroupMember, OwnerRef } from './types.ts'
import { decodeGroup } from './decode.ts'

// After a 503: wait retryAfterMs, at least the minimum, or the default without it.
// Agents ask for 25 ms while a session changes owner: the new owner is polled
// for, not slept past.
const RETRY_AFTER_MIN_MS = 20
// Short retries while an owner changes, but not forever: after the second in a
// row, each wait doubles, up to this (so a dead owner's many terminals do not
// poll its group at 40 requests per second each for long).
const POLL_BACKOFF_CAP_MS = 100
const RETRY_AFTER_DEFAULT_MS = 100
// 503s in a row from one agent before the next agent in the queue is tried.
const REFUSALS_BEFORE_MOVING_ON = 2
// Every agent in the queue failed without answering: pause before the next round,
// or refused connections would spin the loop until the deadline.
const ROUND_PAUSE_MS = 100
// Redirects in a row before a pause: agents whose views disagree for a moment
// may point at each other.
const REDIRECTS_BEFORE_PAUSE = 4
// A redirect to an agent that failed this long ago or less (refused, reset or
// timed out) comes from a standby that has not yet seen the owner fail: the
// client asks that standby again soon (pollWait) rather than going back
// to the dead owner (a refused connection costs nothing, so that loop would spin;
// a frozen owner would cost a whole request timeout). The standby answers with
// the new owner, or "changing owner", once it has seen the failure.
const AVOID_FAILED_MS = 400


// ---- where requests go ------------------------------------------------------

// The owner when known, else the backup queue in order: the group's owner and
// standbys (never the witness), then the configured agents, which can locate the
// session and redirect when the whole group is unreachable.
export class Route {
  owner: string | null = null
  group: GroupMember[] = []
  readonly #agents: string[]
  #queue: string[]
  // How many entries at the front of the queue are the group's own members.
  #members = 0
  #cursor = 0

  constructor (agents: string[]) {
    this.#agents = agents
    this.#queue = [...agents]
  }

  get size (): number {
    return this.#queue.length
  }

  target (): string {
    return this.owner ?? this.#queue[this.#cursor % this.#queue.length]
  }

  // `from` failed: forget the owner and try the agent after it in the queue.
  advance (from: string): void {
    this.owner = null
    const at = this.#queue.indexOf(from)
    this.#cursor = at < 0 ? this.#cursor + 1 : at + 1
  }

  // `from` answered but cannot serve yet (503): try the next member of the
  // group, round and round, rather than agents outside it, which could only ask
  // the same members (a locate that waits on a dead owner's answer, too).
  advanceInGroup (from: string): void {
    const at = this.#queue.indexOf(from)
    if (at < 0 || at >= this.#members) return this.advance(from)
    this.owner = null
    this.#cursor = (at + 1) % this.#members
  }

  learn (group: GroupMember[]): void {
    this.group = group
    const serving = [...new Set(group.filter((m) => m.role !== 'witness' && m.http !== '').map((m) => base(m.http)))]
    this.#members = serving.length
    const queue = [...new Set([...serving, ...this.#agents])]
    // Start from the top only when the queue changed, so two agents that keep
    // answering 503 with the same view cannot bounce the client between them.
    if (queue.join(' ') !== this.#queue.join(' ')) this.#cursor = 0
    this.#queue = queue
  }

  ownerRef (): OwnerRef | null {
    if (this.owner === null) return null
    const member = this.group.find((m) => base(m.http) === this.owner)
    return { id: member?.id ?? '', http: this.owner }
  }
}

export function base (url: string): string {
  return url.replace(/\/+$/, '')
}

// ---- one operation, retried across agents ------------------------------------

type Call = {
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  token?: string
  body?: unknown
  // Names the operation in errors: "append clientSeq 3".
  what: string
  // The error thrown when the deadline passes (default: an EdgeClientError).
  onDeadline?: (last: Attempts) => Error
  // After an answer lost in transit (a timeout), ask the same agent once more
  // before the next one: it may still be working on the first request, and
  // recognises the retry (open's `openKey`).
  sameAgentFirst?: boolean
  // An append or a batch of this session: it may go on the deltas stream.
  stream?: { sessionId: string }
}

// An answer to act on. `uncertain`: an earlier attempt may have taken effect
// (it was sent, and its answer lost).
export type Exchanged = { reply: HttpReply; agent: string; uncertain: boolean }

export type Attempts = {
  last: string
  lastStatus: number
  lastError: string | null
  lastAgent: string | null
  uncertain: boolean
  refusals: { agent: string; count: number }
  silent: number
  redirects: number
  // When each agent last failed without answering, during this operation.
  failedAt: Map<string, number>
  // 503s and redirects to a failed owner so far in this operation.
  polls: number
}

export type Transport = 'stream' | 'http'
export type Settings = { agents: string[]; requestTimeoutMs: number; deadlineMs: number; transport: Transport; ca?: string | Buffer }

export class Exchanger {
  readonly settings: Settings
  readonly #connections: Connections
  readonly #streams: DeltaStreams | null

  constructor (settings: Settings) {
    this.settings = settings
    this.#connections = keepAliveConnections(settings.ca)
    this.#streams = settings.transport === 'stream' ? new DeltaStreams(settings.ca) : null
  }

  destroy (): void {
    closeConnections(this.#connections)
    this.#streams?.destroy()
  }

  async exchange (route: Route, call: Call): Promise<Exchanged> {
    const deadline = performance.now() + this.settings.deadlineMs
    let askedAgain = false
    const attempts: Attempts = { last: 'no agent tried', lastStatus: 0, lastError: null, lastAgent: null, uncertain: false, refusals: { agent: '', count: 0 }, silent: 0, redirects: 0, failedAt: new Map(), polls: 0 }
    for (;;) {
      const leftMs = deadline - performance.now()
      if (leftMs <= 0) throw call.onDeadline?.(attempts) ?? this.#deadlineError(call, attempts)
      const agent = route.target()
      const outcome = await this.#attempt(agent, call, Math.max(1, Math.min(this.settings.requestTimeoutMs, Math.ceil(leftMs))))
      if (call.sameAgentFirst === true && !askedAgain && outcome instanceof NetworkError && outcome.code !== 'ECONNREFUSED') {
        askedAgain = true
        attempts.uncertain = true
        continue
      }
      const waitMs = nextStep(route, agent, call.path, outcome, attempts)
      if (waitMs === null) return { reply: outcome as HttpReply, agent, uncertain: attempts.uncertain }
      if (waitMs > 0) await sleep(Math.max(0, Math.min(waitMs, deadline - performance.now())))
    }
  }

  // One request (an append or a batch on the deltas stream when it may); a reset
  // on a reused kept-alive connection is retried once at once, as the agent may
  // have closed that connection as the request left.
  async #attempt (agent: string, call: Call, timeoutMs: number): Promise<HttpReply | NetworkError> {
    const spec = { url: agent + call.path, method: call.method, token: call.token, body: call.body, timeoutMs }
    for (let tries = 0; ; tries++) {
      try {
        const streamed = call.stream === undefined || call.token === undefined || this.#streams === null
          ? null
          : await this.#streams.request({ agent, sessionId: call.stream.sessionId, token: call.token, body: call.body as Record<string, unknown>, timeoutMs })
        return streamed ?? await requestJson(this.#connections, spec)
      } catch (error) {
        if (!(error instanceof NetworkError)) throw error
        if (tries > 0 || !error.reusedSocket || error.code !== 'ECONNRESET') return error
      }
    }
  }

  #deadlineError (call: Call, a: Attempts): EdgeClientError {
    return new EdgeClientError(`${call.what}: no agent served it within ${this.settings.deadlineMs} ms (last: ${a.last})`, a.lastStatus, a.lastError, a.lastAgent)
  }
}

// What to do after one attempt: null to act on the answer, else the ms to wait
// before the next attempt (the route already points at its target).
function nextStep (route: Route, agent: string, path: string, outcome: HttpReply | NetworkError, a: Attempts): number | null {
  if (outcome instanceof NetworkError) {
    // A refused connection never delivered the request; anything else may have.
    if (outcome.code !== 'ECONNREFUSED') a.uncertain = true
    a.failedAt.set(agent, performance.now())
    Object.assign(a, { last: `${agent}: ${outcome.code}`, lastStatus: 0, lastError: null, lastAgent: agent })
    return failed(route, agent, a)
  }
  const error = typeof outcome.body.error === 'string' ? outcome.body.error : null
  Object.assign(a, { last: `${agent}: ${outcome.status}${error === null ? '' : ' ' + error}`, lastStatus: outcome.status, lastError: error, lastAgent: agent })
  if (outcome.status === 307) return redirected(route, agent, path, outcome, a)
  a.redirects = 0
  if (outcome.status === 503) return refused(route, agent, outcome, a)
  // Rate limited: nothing reached the session; wait as told and ask the same agent.
  if (outcome.status === 429) return throttled(outcome, a)
  // Other 5xx (500, 504): the agent failed mid-way; the request may have acted.
  if (outcome.status >= 500) {
    a.uncertain = true
    return failed(route, agent, a)
  }
  // "No such session" from an agent outside the session's group (one cut off
  // from the holders, say) is that agent's ignorance, not the session's end:
  // ask the group. A member saying it is the answer.
  if (outcome.status === 404 && path.startsWith('/v1/sessions/') && route.group.length > 0 && !route.group.some((m) => base(m.http) === agent)) {
    return failed(route, agent, a)
  }
  a.silent = 0
  return null
}

// No usable answer: move to the next agent at once; after a whole round of
// failures, pause.
function failed (route: Route, agent: string, a: Attempts): number {
  Object.assign(a, { refusals: { agent: '', count: 0 }, redirects: 0 })
  route.advance(agent)
  a.silent += 1
  if (a.silent < route.size) return 0
  a.silent = 0
  return ROUND_PAUSE_MS
}

function redirected (route: Route, agent: string, path: string, reply: HttpReply, a: Attempts): number {
  const owner = ownerFromLocation(reply.location, path)
  if (owner === null) {
    a.last = `${agent}: 307 without a usable Location`
    return failed(route, agent, a)
  }
  a.silent = 0
  const group = decodeGroup(reply.body.group)
  const failedAt = a.failedAt.get(owner)
  if (failedAt !== undefined && performance.now() - failedAt < AVOID_FAILED_MS) {
    // The standby still points at the owner that just failed: ask it again soon.
    if (group !== null) route.learn(group)
    a.redirects = 0
    route.owner = agent
    return pollWait(a, RETRY_AFTER_MIN_MS)
  }
  if (group !== null) route.learn(group)
  route.owner = owner
  a.redirects += 1
  return a.redirects % REDIRECTS_BEFORE_PAUSE === 0 ? ROUND_PAUSE_MS : 0
}

// 503: nothing was acknowledged. Wait, then ask again; after the second refusal
// in a row from one agent, ask the next in the queue.
function refused (route: Route, agent: string, reply: HttpReply, a: Attempts): number {
  a.silent = 0
  // An owner that logged the request and then lost its lease, stepped down or
  // ran out of time answers 503 too, and the entry may still commit (a close
  // found done by the next attempt, say).
  a.uncertain = true
  const group = decodeGroup(reply.body.group)
  if (group !== null) route.learn(group)
  a.refusals = a.refusals.agent === agent ? { agent, count: a.refusals.count + 1 } : { agent, count: 1 }
  if (a.refusals.count >= REFUSALS_BEFORE_MOVING_ON) {
    route.advanceInGroup(agent)
    a.refusals = { agent: '', count: 0 }
  }
  const hinted = typeof reply.body.retryAfterMs === 'number' && Number.isFinite(reply.body.retryAfterMs) ? reply.body.retryAfterMs : reply.retryAfterMs
  return pollWait(a, Math.max(RETRY_AFTER_MIN_MS, hinted ?? RETRY_AFTER_DEFAULT_MS))
}

// The wait before the next poll: as asked for the first two, then doubling up
// to POLL_BACKOFF_CAP_MS (an agent asking for longer still gets its wait).
function pollWait (a: Attempts, asked: number): number {
  a.polls += 1
  if (asked >= POLL_BACKOFF_CAP_MS) return asked
  return Math.min(POLL_BACKOFF_CAP_MS, asked * 2 ** Math.max(0, a.polls - 2))
}

function throttled (reply: HttpReply, a: Attempts): number {
  a.silent = 0
  const hinted = typeof reply.body.retryAfterMs === 'number' && Number.isFinite(reply.body.retryAfterMs) ? reply.body.retryAfterMs : reply.retryAfterMs
  return Math.max(RETRY_AFTER_MIN_MS, hinted ?? RETRY_AFTER_DEFAULT_MS)
}

// The Location is the owner's URL for the same path; the owner is what precedes it.
function ownerFromLocation (location: string | null, path: string): string | null {
  if (location === null) return null
  let url: URL
  try {
    url = new URL(location)
  } catch {
    return null
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null
  const text = url.href
  return text.endsWith(path) ? base(text.slice(0, text.length - path.length)) : url.origin
}
