// The terminal's side of a replicated session: open or resume it at any agent,
// then append deltas to whoever owns it now. Requests go to the owner the client
// knows, else down the backup queue (the group's owner and standbys in priority
// order); 307s are followed, 503s waited out, dead agents skipped. A retry always
// reuses the clientSeq, and a clientSeq whose fate is unknown is never skipped:
// it stays pending and the next append() re-sends it first. sim/terminal.ts plays
// the same policy in virtual time; keep the two in step.

import { randomBytes } from 'node:crypto'
import { MAX_BATCH_BYTES, MAX_BATCH_OPS, MAX_OP_BYTES } from '../../protocol/limits.ts'
import type { JsonValue } from '../../protocol/messages.ts'
import { BatchRefusedError, EdgeClientError, OutcomeUnknownError, RollbackError } from './types.ts'
import type { AppendResult, EdgeClientOptions, GroupMember, OpenRequest, OwnerRef, PendingOp, SavedSession, SessionJson, SessionState, SessionSummary } from './types.ts'
import { Exchanger, Route, base } from './route.ts'
import type { Attempts, Exchanged, Settings } from './route.ts'
import { decodeAck, decodeBatch, decodeOpened, decodeState, decoded, refusal, sessionIdOf } from './decode.ts'

export { BatchRefusedError, EdgeClientError, OutcomeUnknownError, RollbackError } from './types.ts'
export type { AppendResult, EdgeClientOptions, GroupMember, OpenRequest, OwnerRef, PendingOp, Role, SavedSession, SessionJson, SessionState, SessionSummary } from './types.ts'
export { sessionIdOf } from './decode.ts'

export const CLIENT_DEFAULTS = {
  // One request to one agent. An owner answers an append once its group holds
  // the delta; a frozen standby stalls that for memberStaleMs (500 ms on lan),
  // so 800 ms lets a slow write finish yet leaves a frozen agent quickly. (600
  // ms would leave a frozen owner sooner, but on a loaded box opens, which
  // cross two agents and commit a create, timed out and were retried elsewhere,
  // adding orphan sessions to the load.)
  requestTimeoutMs: 800,
  // One operation across every retry. Past it an append's outcome is unknown.
  deadlineMs: 15_000,
  // Appends on the deltas stream (one kept connection per agent, pipelined).
  transport: 'stream' as 'stream' | 'http'
}


// ---- the client and its sessions -----------------------------------------------

export class EdgeClient {
  readonly #exchanger: Exchanger

  constructor (options: EdgeClientOptions) {
    this.#exchanger = new Exchanger(checkOptions(options))
  }

  // An open whose answer was lost is sent again, and may leave an orphan session
  // behind on the agents: harmless to this terminal, which only ever uses the
  // session whose token it received.
  async open (request: OpenRequest): Promise<Session> {
    checkOpen(request)
    const route = new Route(this.#exchanger.settings.agents)
    // A retry of this open carries the same key: an agent that made the session
    // on the first try answers with it, rather than making a second one.
    const openKey = randomBytes(24).toString('base64url')
    const body = { terminalId: request.terminalId, service: request.service, openKey, ...(request.position === undefined ? {} : { position: request.position }) }
    const exchanged = await this.#exchanger.exchange(route, { method: 'POST', path: '/v1/sessions', body, what: 'open', sameAgentFirst: true })
    if (exchanged.reply.status !== 201) throw refusal('open', exchanged)
    const opened = decoded('open', exchanged, decodeOpened)
    route.learn(opened.group)
    route.owner = opened.owner === null || opened.owner.http === '' ? exchanged.agent : base(opened.owner.http)
    // The epoch of a 201 is the owner's own: it just created the session in it.
    return new Session(this.#exchanger, route, { sessionId: opened.sessionId, token: opened.token, epoch: opened.epoch, lastIndex: 0, clientSeq: 0, pending: [] })
  }

  // Takes up a session saved with toJSON(); refuses one that rolled back.
  async resume (saved: SavedSession): Promise<Session> {
    const start = checkSaved(saved)
    const session = new Session(this.#exchanger, new Route(this.#exchanger.settings.agents), start)
    await Session.catchUp(session)
    return session
  }

  // The sessions the first agent that answers holds (any role).
  async list (): Promise<SessionSummary[]> {
    const exchanged = await this.#exchanger.exchange(new Route(this.#exchanger.settings.agents), { method: 'GET', path: '/v1/sessions', what: 'list' })
    if (exchanged.reply.status !== 200) throw refusal('list', exchanged)
    return decoded('list', exchanged, (body) => {
      if (!Array.isArray(body.sessions)) throw new TypeError('"sessions" is not a list')
      for (const s of body.sessions) if (typeof s !== 'object' || s === null || typeof s.sessionId !== 'string') throw new TypeError('a session has no "sessionId"')
      return body.sessions as SessionSummary[]
    })
  }

  // Closes kept-alive connections; the client is unusable afterwards.
  destroy (): void {
    this.#exchanger.destroy()
  }
}

type SessionStart = { sessionId: string; token: string; epoch: number; lastIndex: number; clientSeq: number; pending: PendingOp[] }

// append() calls joined into one request, each with its own promise.
type AppendWaiter = { resolve: (result: AppendResult) => void; reject: (error: unknown) => void }
type AppendGroup = { ops: JsonValue[]; bytes: number; waiters: AppendWaiter[] }

// Made by EdgeClient.open() and resume(); the constructor is not for callers.
export class Session {
  readonly sessionId: string
  readonly token: string
  readonly #exchanger: Exchanger
  readonly #route: Route
  readonly #path: string
  // Learnt from acknowledgements only: a standby's view may carry the epoch of
  // an election that was never won.
  #epoch: number
  #lastIndex: number
  // The last clientSeq known applied; pending ops hold clientSeq + 1, + 2, …
  #clientSeq: number
  #pending: PendingOp[]
  #closed = false
  // Appends and close run one at a time, in call order.
  #tail: Promise<unknown> = Promise.resolve()
  // Appends waiting for their turn, joined into one batch (append()).
  #coalescing: AppendGroup | null = null

  constructor (exchanger: Exchanger, route: Route, start: SessionStart) {
    this.#exchanger = exchanger
    this.#route = route
    this.sessionId = start.sessionId
    this.token = start.token
    this.#path = `/v1/sessions/${encodeURIComponent(start.sessionId)}`
    this.#epoch = start.epoch
    this.#lastIndex = start.lastIndex
    this.#clientSeq = start.clientSeq
    this.#pending = start.pending
  }

  get epoch (): number { return this.#epoch }
  get lastIndex (): number { return this.#lastIndex }
  get clientSeq (): number { return this.#clientSeq }
  get pending (): PendingOp | null { return this.#pending[0] ?? null }
  get pendingOps (): PendingOp[] { return [...this.#pending] }
  get group (): GroupMember[] { return this.#route.group }
  get owner (): OwnerRef | null { return this.#route.ownerRef() }

  // Appends queued behind another request of this session (or made in the same
  // tick) coalesce: they leave together as one batch request (POST …/batch), in
  // call order, at consecutive clientSeqs, each promise settled with its own
  // result, as if sent one by one (one round trip and one fsync for all).
  append (op: JsonValue): Promise<AppendResult> {
    let bytes: number
    try {
      bytes = checkOp(op) + 1
    } catch (error) {
      return Promise.reject(error)
    }
    const group = this.#coalescing
    if (group !== null && group.ops.length < MAX_BATCH_OPS && group.bytes + bytes + 64 <= MAX_BATCH_BYTES) {
      group.bytes += bytes
      group.ops.push(op)
      return new Promise((resolve, reject) => group.waiters.push({ resolve, reject }))
    }
    const fresh: AppendGroup = { ops: [op], bytes, waiters: [] }
    this.#coalescing = fresh
    const first = new Promise<AppendResult>((resolve, reject) => fresh.waiters.push({ resolve, reject }))
    void this.#serialised(async () => {
      if (this.#coalescing === fresh) this.#coalescing = null
      await this.#appendGroup(fresh.ops, fresh.waiters)
    })
    return first
  }

  // One request for the group's ops (a single op as POST …/deltas). A refusal of
  // op k by the service or a limit settles ops before k as acknowledged and op k
  // as refused, and sends the ops after it on (a refused op's clientSeq is free).
  // Any other failure rejects every op of the group with it: they stay pending,
  // as a failed append() does, and the next append re-sends them first.
  async #appendGroup (ops: JsonValue[], waiters: AppendWaiter[]): Promise<void> {
    try {
      if (ops.length === 1) {
        waiters[0].resolve(await this.#appendNow(ops[0]))
        return
      }
      const results = await this.#appendManyNow(ops)
      results.forEach((result, i) => waiters[i].resolve(result))
    } catch (error) {
      if (error instanceof BatchRefusedError) {
        const k = error.acknowledged.length
        error.acknowledged.forEach((result, i) => waiters[i].resolve(result))
        waiters[k].reject(new EdgeClientError(`append clientSeq ${error.refusedClientSeq}: refused with ${error.status} ${error.serverError ?? ''} (${error.agent ?? 'the client'})`, error.status, error.serverError, error.agent))
        if (k + 1 < ops.length) await this.#appendGroup(ops.slice(k + 1), waiters.slice(k + 1))
        return
      }
      // The batch's first op refused (the agent answers with its refusal): the
      // rest were not logged and go on.
      if (ops.length > 1 && error instanceof EdgeClientError && (error.status === 400 || error.status === 413) && this.#pending.length === 0) {
        waiters[0].reject(error)
        await this.#appendGroup(ops.slice(1), waiters.slice(1))
        return
      }
      for (const waiter of waiters) waiter.reject(error)
    }
  }

  // Several ops in one request (POST …/batch), taking consecutive clientSeqs:
  // one round trip, one fsync and one replication frame for all of them.
  // Resolves with each op's result, in order, once all are acknowledged. A
  // refusal of op k by the service or a limit rejects with a BatchRefusedError
  // holding the results of ops 1..k-1 (acknowledged); ops k.. were not logged.
  // Any other failure leaves the unacknowledged ops pending, like append().
  appendMany (ops: JsonValue[]): Promise<AppendResult[]> {
    return this.#serialised(() => this.#appendManyNow(ops))
  }

  // A read does not queue behind appends: it never changes what an append checks.
  async get (): Promise<SessionState> {
    if (this.#closed) throw this.#closedError('get')
    return await this.#read('get')
  }

  close (): Promise<void> {
    return this.#serialised(() => this.#closeNow())
  }

  toJSON (): SessionJson {
    const saved = { sessionId: this.sessionId, token: this.token, epoch: this.#epoch, lastIndex: this.#lastIndex, clientSeq: this.#clientSeq }
    if (this.#pending.length === 0) return saved
    return this.#pending.length === 1 ? { ...saved, pending: this.#pending[0] } : { ...saved, pending: this.#pending[0], pendingOps: [...this.#pending] }
  }

  // Resume: learn lastClientSeq from the owner, refusing a session older than
  // the one saved; a saved pending op stays pending unless it was applied.
  static async catchUp (session: Session): Promise<void> {
    const state = await session.#read('resume')
    if (state.lastClientSeq < session.#clientSeq) {
      throw new RollbackError(`resume: the session's lastClientSeq is ${state.lastClientSeq}, below the ${session.#clientSeq} this client saw acknowledged`)
    }
    session.#pending = session.#pending.filter((p) => p.clientSeq > state.lastClientSeq)
    session.#clientSeq = state.lastClientSeq
    session.#lastIndex = Math.max(session.#lastIndex, state.index)
  }

  #serialised<T> (run: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(run)
    this.#tail = result.catch(() => undefined)
    return result
  }

  async #appendNow (op: JsonValue): Promise<AppendResult> {
    if (this.#closed) throw this.#closedError('append')
    checkOp(op)
    await this.#flushPending()
    this.#pending = [{ clientSeq: this.#clientSeq + 1, op }]
    return await this.#deliver(this.#pending[0], null)
  }

  // Earlier ops whose fate is unknown go first, with their own clientSeqs.
  async #flushPending (): Promise<void> {
    if (this.#pending.length === 1) await this.#deliver(this.#pending[0], 'this op was not sent')
    else if (this.#pending.length > 1) await this.#deliverBatch('this batch was not sent')
  }

  async #appendManyNow (ops: JsonValue[]): Promise<AppendResult[]> {
    if (this.#closed) throw this.#closedError('appendMany')
    if (!Array.isArray(ops) || ops.length === 0 || ops.length > MAX_BATCH_OPS) throw new TypeError(`appendMany: 'ops' must be a list of 1-${MAX_BATCH_OPS} ops (got ${Array.isArray(ops) ? ops.length : typeof ops})`)
    let bytes = 0
    for (const op of ops) bytes += checkOp(op) + 1
    // The envelope ({"clientSeq":…,"ops":[…]}) is well under 64 bytes.
    if (bytes + 64 > MAX_BATCH_BYTES) throw new EdgeClientError(`appendMany: ${bytes} bytes of ops exceed the batch limit of ${MAX_BATCH_BYTES}`, 413, null, null)
    await this.#flushPending()
    this.#pending = ops.map((op, i) => ({ clientSeq: this.#clientSeq + 1 + i, op }))
    return await this.#deliverBatch(null)
  }

  async #deliverBatch (earlier: string | null): Promise<AppendResult[]> {
    const ops = [...this.#pending]
    const first = ops[0].clientSeq
    const what = `append batch clientSeq ${first}-${ops[ops.length - 1].clientSeq}${earlier === null ? '' : ' (left pending by an earlier append)'}`
    const onDeadline = (a: Attempts): Error => new OutcomeUnknownError(
      `${what}: not acknowledged within ${this.#exchanger.settings.deadlineMs} ms (last: ${a.last}); its outcome is unknown and the next append re-sends it with the same clientSeqs${earlier === null ? '' : '; ' + earlier}`,
      a.lastStatus, a.lastError, a.lastAgent, first)
    const exchanged = await this.#exchanger.exchange(this.#route, { method: 'POST', path: `${this.#path}/batch`, token: this.token, body: { clientSeq: first, ops: ops.map((p) => p.op) }, what, onDeadline, stream: { sessionId: this.sessionId } })
    const status = exchanged.reply.status
    if (status === 200) {
      const answer = decoded(what, exchanged, (body) => decodeBatch(body, first, ops.length))
      const results = answer.results.map((ack, i) => this.#acknowledge(ops[i], ack, exchanged.agent))
      if (answer.refused === null) return results
      const r = answer.refused
      const message = `${what}: clientSeq ${r.clientSeq} refused with ${r.status} ${r.error} (${exchanged.agent}); the ${results.length} op(s) before it are acknowledged`
      // Refused by the service or a limit: nothing from it on was logged.
      if (r.status === 400 || r.status === 413) {
        this.#pending = []
        throw new BatchRefusedError(message, r.status, r.error, exchanged.agent, results, r.clientSeq)
      }
      throw new EdgeClientError(`${message}; the rest stay pending`, r.status, r.error, exchanged.agent)
    }
    if (status === 409) return await this.#settleBatchConflict(ops, what, exchanged)
    if (status === 400 || status === 413) this.#pending = []
    throw refusal(what, exchanged)
  }

  // As #settleConflict, for a batch: the ops up to the session's lastClientSeq
  // are applied (their own indexes are no longer known; the session's is given).
  async #settleBatchConflict (ops: PendingOp[], what: string, exchanged: Exchanged): Promise<AppendResult[]> {
    const expected = exchanged.reply.body.expectedSeq
    const reason = refusal(what, exchanged)
    if (typeof expected === 'number' && expected < ops[0].clientSeq) {
      throw new EdgeClientError(`${reason.message}: the session expects clientSeq ${expected}, so it and this client disagree (the ops stay pending; resume the session)`, 409, reason.serverError, reason.agent)
    }
    const state = await this.#read(`${what} (checking a 409)`)
    const applied = ops.filter((p) => p.clientSeq <= state.lastClientSeq)
    if (applied.length === 0) throw new EdgeClientError(`${reason.message}, yet the session's lastClientSeq is ${state.lastClientSeq} (the ops stay pending)`, 409, reason.serverError, reason.agent)
    const ack = this.#acknowledge(applied[applied.length - 1], { index: state.index, epoch: state.epoch, duplicate: true }, this.#route.owner ?? exchanged.agent)
    if (applied.length === ops.length) return ops.map(() => ack)
    throw new EdgeClientError(`${reason.message}: the session holds up to clientSeq ${state.lastClientSeq}; the ops after it stay pending`, 409, reason.serverError, reason.agent)
  }

  async #deliver (pending: PendingOp, earlier: string | null): Promise<AppendResult> {
    const seq = pending.clientSeq
    const what = `append clientSeq ${seq}${earlier === null ? '' : ' (left pending by an earlier append)'}`
    const onDeadline = (a: Attempts): Error => new OutcomeUnknownError(
      `${what}: not acknowledged within ${this.#exchanger.settings.deadlineMs} ms (last: ${a.last}); its outcome is unknown and the next append() re-sends it with the same clientSeq${earlier === null ? '' : '; ' + earlier}`,
      a.lastStatus, a.lastError, a.lastAgent, seq)
    const exchanged = await this.#exchanger.exchange(this.#route, { method: 'POST', path: `${this.#path}/deltas`, token: this.token, body: { clientSeq: seq, op: pending.op }, what, onDeadline, stream: { sessionId: this.sessionId } })
    const status = exchanged.reply.status
    if (status === 200) return this.#acknowledge(pending, decoded(what, exchanged, decodeAck), exchanged.agent)
    if (status === 409) return await this.#settleConflict(pending, what, exchanged)
    // The service refused the op itself before logging it, wherever it was sent:
    // nothing holds this clientSeq, so it is free again.
    if (status === 400 || status === 413) this.#pending = []
    throw refusal(what, exchanged)
  }

  #acknowledge (pending: PendingOp, ack: AppendResult, agent: string): AppendResult {
    const what = `append clientSeq ${pending.clientSeq}`
    if (ack.index <= this.#lastIndex) throw new RollbackError(`${what}: ${agent} acknowledged it at index ${ack.index}, not after ${this.#lastIndex}: the session rolled back`)
    if (ack.epoch < this.#epoch) throw new RollbackError(`${what}: ${agent} acknowledged it in epoch ${ack.epoch}, after epoch ${this.#epoch}: a deposed owner answered`)
    this.#lastIndex = ack.index
    this.#epoch = ack.epoch
    this.#clientSeq = pending.clientSeq
    this.#pending = this.#pending.filter((p) => p.clientSeq > pending.clientSeq)
    this.#route.owner = agent
    return ack
  }

  // 409: the owner expects another clientSeq. Lower: it lacks deltas this client
  // saw acknowledged. Higher (or no hint): ours may be applied already, which
  // only the session's lastClientSeq can confirm.
  async #settleConflict (pending: PendingOp, what: string, exchanged: Exchanged): Promise<AppendResult> {
    const expected = exchanged.reply.body.expectedSeq
    const reason = refusal(what, exchanged)
    if (typeof expected === 'number' && expected < pending.clientSeq) {
      throw new EdgeClientError(`${reason.message}: the session expects clientSeq ${expected}, so it and this client disagree (the op stays pending; resume the session)`, 409, reason.serverError, reason.agent)
    }
    const state = await this.#read(`${what} (checking a 409)`)
    if (state.lastClientSeq >= pending.clientSeq) {
      // Applied; its own index is no longer known, the session's is an upper bound.
      return this.#acknowledge(pending, { index: state.index, epoch: state.epoch, duplicate: true }, this.#route.owner ?? exchanged.agent)
    }
    throw new EdgeClientError(`${reason.message}, yet the session's lastClientSeq is ${state.lastClientSeq} (the op stays pending)`, 409, reason.serverError, reason.agent)
  }

  // A read is judged against what was acknowledged when it was sent: an append
  // acknowledged while the read was in flight may be newer than the state read.
  async #read (what: string): Promise<SessionState> {
    const seenIndex = this.#lastIndex
    const seenEpoch = this.#epoch
    const exchanged = await this.#exchanger.exchange(this.#route, { method: 'GET', path: this.#path, token: this.token, what })
    if (exchanged.reply.status !== 200) throw refusal(what, exchanged)
    const state = decoded(what, exchanged, decodeState)
    if (state.index < seenIndex) throw new RollbackError(`${what}: ${exchanged.agent} shows index ${state.index}, below ${seenIndex} already seen: the session rolled back`)
    if (state.epoch < seenEpoch) throw new RollbackError(`${what}: ${exchanged.agent} shows epoch ${state.epoch}, below ${seenEpoch} already seen: a deposed owner answered`)
    // An answer overtaken by a newer acknowledgement says nothing new about the group.
    if (state.epoch < this.#epoch) return state
    if (state.group.length > 0) this.#route.learn(state.group)
    this.#route.owner = exchanged.agent
    return state
  }

  async #closeNow (): Promise<void> {
    if (this.#closed) return
    const exchanged = await this.#exchanger.exchange(this.#route, { method: 'DELETE', path: this.#path, token: this.token, what: 'close' })
    // A 404 after an attempt whose answer was lost: that attempt closed it.
    const status = exchanged.reply.status
    if (status !== 200 && !(status === 404 && exchanged.uncertain)) throw refusal('close', exchanged)
    this.#closed = true
  }

  #closedError (what: string): EdgeClientError {
    return new EdgeClientError(`${what}: session ${this.sessionId} is closed`, 0, null, null)
  }
}

// ---- checking what callers hand in ----------------------------------------------

function checkOptions (options: EdgeClientOptions): Settings {
  const agents = options.agents
  if (!Array.isArray(agents) || agents.length === 0) throw new TypeError("Cannot create EdgeClient: 'agents' must hold at least one http(s) URL")
  for (const agent of agents) {
    if (typeof agent !== 'string' || !/^https?:\/\/[^/]/.test(agent)) throw new TypeError(`Cannot create EdgeClient: 'agents' must be http(s) URLs (got ${String(agent)})`)
  }
  const requestTimeoutMs = options.requestTimeoutMs ?? CLIENT_DEFAULTS.requestTimeoutMs
  const deadlineMs = options.deadlineMs ?? CLIENT_DEFAULTS.deadlineMs
  if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs < 1) throw new TypeError(`Cannot create EdgeClient: 'requestTimeoutMs' must be a positive whole number of ms (got ${requestTimeoutMs})`)
  if (!Number.isInteger(deadlineMs) || deadlineMs < requestTimeoutMs) throw new TypeError(`Cannot create EdgeClient: 'deadlineMs' must be a whole number of ms, at least 'requestTimeoutMs' (got ${deadlineMs} < ${requestTimeoutMs})`)
  if (options.ca !== undefined && typeof options.ca !== 'string' && !Buffer.isBuffer(options.ca)) throw new TypeError("Cannot create EdgeClient: 'ca' must be PEM text or a Buffer")
  const transport = options.transport ?? CLIENT_DEFAULTS.transport
  if (transport !== 'stream' && transport !== 'http') throw new TypeError(`Cannot create EdgeClient: 'transport' must be 'stream' or 'http' (got ${String(transport)})`)
  return { agents: [...new Set(agents.map(base))], requestTimeoutMs, deadlineMs, transport, ...(options.ca === undefined ? {} : { ca: options.ca }) }
}

function checkOpen (request: OpenRequest): void {
  if (typeof request.terminalId !== 'string' || request.terminalId === '') throw new TypeError("open: 'terminalId' must be a non-empty string")
  if (typeof request.service !== 'string' || request.service === '') throw new TypeError("open: 'service' must be a non-empty string")
  const p = request.position
  if (p !== undefined && !(Number.isFinite(p.lat) && Number.isFinite(p.lon) && Math.abs(p.lat) <= 90 && Math.abs(p.lon) <= 180)) {
    throw new TypeError(`open: 'position' must be {lat: -90..90, lon: -180..180} (got ${JSON.stringify(p)})`)
  }
}

function checkSaved (saved: SavedSession): SessionStart {
  const sessionId = typeof saved.token === 'string' ? sessionIdOf(saved.token) : null
  if (sessionId === null) throw new TypeError("resume: 'token' must look like <sessionId>~<64 hex>")
  if (saved.sessionId !== undefined && saved.sessionId !== sessionId) throw new TypeError(`resume: the token belongs to ${sessionId}, not ${saved.sessionId}`)
  for (const key of ['epoch', 'lastIndex', 'clientSeq'] as const) {
    const value = saved[key]
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) throw new TypeError(`resume: '${key}' must be a whole number ≥ 0 (got ${value})`)
  }
  const pending = saved.pendingOps ?? (saved.pending === undefined || saved.pending === null ? [] : [saved.pending])
  if (!Array.isArray(pending)) throw new TypeError("resume: 'pendingOps' must be a list of {clientSeq, op}")
  const clientSeq = saved.clientSeq ?? (pending.length === 0 ? 0 : pending[0].clientSeq - 1)
  for (const [i, p] of pending.entries()) {
    if (p.clientSeq !== clientSeq + 1 + i) throw new TypeError(`resume: pending op ${i + 1} must hold clientSeq ${clientSeq + 1 + i} (got ${p.clientSeq})`)
  }
  return { sessionId, token: saved.token, epoch: saved.epoch ?? 0, lastIndex: saved.lastIndex ?? 0, clientSeq, pending }
}

// Refused here, before it takes a clientSeq: nothing the agent would accept.
// Returns the op's size as JSON.
function checkOp (op: JsonValue): number {
  let json: string | undefined
  try {
    json = JSON.stringify(op)
  } catch (error) {
    throw new TypeError(`append: the op is not JSON (${(error as Error).message})`)
  }
  if (json === undefined) throw new TypeError('append: the op is not JSON')
  if (json.length > MAX_OP_BYTES) throw new EdgeClientError(`append: op of ${json.length} bytes exceeds ${MAX_OP_BYTES}`, 413, null, null)
  return json.length
}
