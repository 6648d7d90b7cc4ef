// The terminal API on the agent's HTTP server (see README, "Terminal API").
// Validates requests at the boundary, turns them into commands for the sessions
// core, and its answers into HTTP: 307 with Location to the owner, 503 with
// Retry-After when nothing was acknowledged.

import type { IncomingMessage } from 'node:http'
import { MAX_BATCH_BYTES, MAX_BATCH_OPS, MAX_OP_BYTES, MAX_TERMINAL_ID_CHARS } from '../../protocol/limits.ts'
import type { JsonValue, Position } from '../../protocol/messages.ts'
import { notJoinedReply } from '../sessions/remote.ts'
import { BUILT_IN_SERVICES } from '../sessions/services.ts'
import type { ClientReply } from '../sessions/types.ts'
import { ConfigError, parsePosition } from '../config.ts'
import { continueBody } from './http-api.ts'
import type { HttpApi, Reply } from './http-api.ts'
import { hashToken, newSessionId, newToken } from './sessions-host.ts'
import type { SessionsHost } from './sessions-host.ts'
import type { DeployHost } from './deploy-host.ts'
import { stampOp, unwrapState } from './deployed-service.ts'
import { SERVICE_NAME_PATTERN } from '../../protocol/record.ts'

// A request body: a delta plus its envelope. Larger bodies are refused unread.
const MAX_BODY_BYTES = MAX_OP_BYTES + 4_096
const SESSION_PATH = /^\/v1\/sessions\/([^/]+)$/
const DELTAS_PATH = /^\/v1\/sessions\/([^/]+)\/deltas$/
const BATCH_PATH = /^\/v1\/sessions\/([^/]+)\/batch$/
const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/

type Parsed<T> = { ok: true; value: T } | { ok: false; reply: Reply }

function refuse (status: number, error: string): { ok: false; reply: Reply } {
  return { ok: false, reply: { status, body: { error } } }
}

// A JSON object body of at most maxBytes (an empty body is {}), or the refusal.
// Over the size: 413 and counted; the rest of the body is not read (the server
// closes the connection rather than drain it).
export async function readJson (request: IncomingMessage, onLimit: (limit: 'request-body-size') => void = () => {}, maxBytes = MAX_BODY_BYTES): Promise<Parsed<Record<string, unknown>>> {
  const hint = maxBytes === MAX_BODY_BYTES ? ` (a delta is at most ${MAX_OP_BYTES} bytes of JSON)` : ''
  const declared = Number(request.headers['content-length'] ?? 0)
  if (declared > maxBytes) {
    onLimit('request-body-size')
    return tooLarge(`request body of ${declared} bytes exceeds ${maxBytes}${hint}`)
  }
  continueBody(request)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request) {
    size += (chunk as Buffer).length
    if (size > maxBytes) {
      onLimit('request-body-size')
      return tooLarge(`request body exceeds ${maxBytes} bytes${hint}`)
    }
    chunks.push(chunk as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return { ok: true, value: {} }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    return refuse(400, `the body is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return refuse(400, 'the body must be a JSON object')
  return { ok: true, value: value as Record<string, unknown> }
}

function tooLarge (error: string): { ok: false; reply: Reply } {
  return { ok: false, reply: { status: 413, body: { error, limit: 'request-body-size' }, headers: { connection: 'close' } } }
}

function bearer (request: IncomingMessage): string | null {
  const header = request.headers.authorization
  const match = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null
  return match === null ? null : match[1]
}

function sessionIdOf (raw: string): Parsed<string> {
  let id: string
  try {
    id = decodeURIComponent(raw)
  } catch {
    return refuse(400, 'the session id is not valid URL encoding')
  }
  if (!SESSION_ID.test(id)) return refuse(400, `not a session id: ${JSON.stringify(id)}`)
  return { ok: true, value: id }
}

// HTTP from the core's answer. `config` is an internal detail of group views.
function toHttp (reply: ClientReply, extra: Record<string, unknown> = {}): Reply {
  const { config: _config, ...body } = reply.body
  const headers: Record<string, string> = {}
  if (reply.location !== undefined) headers.location = reply.location
  const retry = body.retryAfterMs
  if (reply.status === 503 && typeof retry === 'number') headers['retry-after'] = String(Math.max(1, Math.ceil(retry / 1000)))
  return { status: reply.status, body: { ...body, ...extra }, headers }
}

function parseOpen (body: Record<string, unknown>): Parsed<{ terminalId: string; service: string; position: Position | null }> {
  const { terminalId, service, position } = body
  if (typeof terminalId !== 'string' || !/^[\x21-\x7e]+$/.test(terminalId) || terminalId.length > MAX_TERMINAL_ID_CHARS) {
    return refuse(400, `'terminalId' must be 1-${MAX_TERMINAL_ID_CHARS} printable ASCII characters without spaces (! to ~)`)
  }
  if (typeof service !== 'string' || service.length > 64 || !SERVICE_NAME_PATTERN.test(service)) {
    return refuse(400, `'service' must be a service name: a built-in (${[...BUILT_IN_SERVICES.keys()].join(', ')}) or a deployed package`)
  }
  if (position === undefined || position === null) return { ok: true, value: { terminalId, service, position: null } }
  try {
    return { ok: true, value: { terminalId, service, position: parsePosition(position) } }
  } catch (error) {
    if (error instanceof ConfigError) return refuse(400, error.message)
    throw error
  }
}

// A terminal whose open timed out asks again with the same `openKey`: it gets
// the first attempt's answer (the same session and token) instead of a second
// session that nobody would ever use or close. Kept OPEN_RETRY_MS, at most
// MAX_OPEN_RETRIES keys (the oldest go first). The key is a secret of the
// terminal's own choosing (128 bits or more): whoever holds it gets the token.
const OPEN_KEY = /^[A-Za-z0-9_-]{22,128}$/
const OPEN_RETRY_MS = 120_000
const MAX_OPEN_RETRIES = 10_000

// A key sent again with another request (another terminalId, service or
// position) is not a retry: 409, rather than the first request's session.
class OpenRetries {
  readonly #answers = new Map<string, { atMs: number; request: string; reply: Promise<Reply> }>()

  once (key: string, request: string, run: () => Promise<Reply>): Promise<Reply> {
    const now = performance.now()
    for (const [k, v] of this.#answers) {
      if (now - v.atMs < OPEN_RETRY_MS && this.#answers.size < MAX_OPEN_RETRIES) break
      this.#answers.delete(k)
    }
    const seen = this.#answers.get(key)
    if (seen !== undefined) {
      if (seen.request === request) return seen.reply
      return Promise.resolve({ status: 409, body: { error: "this 'openKey' was sent with another request (terminalId, service or position) in the last 2 minutes: a retry repeats the request, a new open needs a new key" } })
    }
    const reply = run()
    this.#answers.set(key, { atMs: now, request, reply })
    // A failed attempt (no session made) may be tried afresh.
    reply.then((r) => { if (r.status !== 201) this.#answers.delete(key) }, () => this.#answers.delete(key))
    return reply
  }
}

// The deployed service a session id belongs to ("<service>:<hex>"), if any.
function deployedOf (deploy: DeployHost, sessionId: string): string | null {
  const name = sessionId.split(':')[0]
  return BUILT_IN_SERVICES.has(name) ? null : (deploy.deployed(name) === null ? null : name)
}

// A deployed service's session state, as the terminal sees it: the service's own
// state, and which version serves it (see deployed-service.ts).
function unwrapReply (reply: ClientReply): ClientReply {
  if (!('state' in reply.body)) return reply
  const w = unwrapState(reply.body.state as JsonValue)
  return { ...reply, body: { ...reply.body, state: w.state, serviceVersion: w.version, ...(w.error !== undefined ? { serviceError: w.error } : {}) } }
}

// Appends, after the transport (an HTTP request or a deltas-stream frame) has
// given the session id, the token and the body: one delta ({clientSeq, op}) or
// a batch ({clientSeq, ops}). Both transports share this, so they check and
// answer alike.
export type SessionAppends = {
  delta: (sessionId: string, token: string, body: Record<string, unknown>) => Promise<Reply>
  batch: (sessionId: string, token: string, body: Record<string, unknown>) => Promise<Reply>
}

export function sessionAppends (host: SessionsHost, deploy: DeployHost): SessionAppends {
  // Ops of a deployed service carry a version stamp (DeployHost.stampFor).
  const versionOf = (sessionId: string): string | null => {
    const deployed = deployedOf(deploy, sessionId)
    return deployed === null ? null : deploy.stampFor(deployed, host.members(sessionId) ?? [])
  }
  return {
    delta: async (sessionId, token, body) => {
      const { clientSeq, op } = body
      if (typeof clientSeq !== 'number' || !Number.isSafeInteger(clientSeq) || clientSeq < 1) return { status: 400, body: { error: "'clientSeq' must be a whole number ≥ 1" } }
      if (op === undefined) return { status: 400, body: { error: "'op' is required" } }
      const version = versionOf(sessionId)
      const stamped = version === null ? op as JsonValue : stampOp(version, op as JsonValue)
      return toHttp(await host.request({ type: 'append', sessionId, tokenHash: hashToken(token), clientSeq, op: stamped }))
    },
    batch: async (sessionId, token, body) => {
      const { clientSeq, ops } = body
      if (typeof clientSeq !== 'number' || !Number.isSafeInteger(clientSeq) || clientSeq < 1) return { status: 400, body: { error: "'clientSeq' must be a whole number ≥ 1 (the first op's)" } }
      if (!Array.isArray(ops) || ops.length === 0 || ops.length > MAX_BATCH_OPS) return { status: 400, body: { error: `'ops' must be a list of 1-${MAX_BATCH_OPS} ops` } }
      const version = versionOf(sessionId)
      const stamped = version === null ? ops as JsonValue[] : (ops as JsonValue[]).map((op) => stampOp(version, op))
      return toHttp(await host.request({ type: 'append-batch', sessionId, tokenHash: hashToken(token), clientSeq, ops: stamped }))
    }
  }
}

// A session id as a deltas-stream frame names it (not URL-encoded), or the refusal.
export function checkSessionId (id: string): Reply | null {
  return SESSION_ID.test(id) ? null : { status: 400, body: { error: `not a session id: ${JSON.stringify(id)}` } }
}

// Reads of a session at one index share one serialisation of its state (each
// read serialised it). What bounds a burst of reads is the byte charge
// (ChargeRead below): 600 concurrent reads of a 1 MB state stalled the owner's
// event loop 7 s, with or without this, until its lease ran out and its group
// took the session over. The text of a session's committed state at an index
// never changes (the committed log is the same on every member, and apply is
// deterministic), so it is kept per session for the index it was read at, the
// most recent sessions first, within a bound on entries and bytes.
const STATE_TEXT_ENTRIES = 256
const STATE_TEXT_BYTES = 64 * 1024 * 1024

export class StateTexts {
  readonly #texts = new Map<string, { index: number; text: string }>()
  #bytes = 0
  serialised = 0

  // The reply of a read (GET /v1/sessions/{id}) with its state's text shared.
  reply (sessionId: string, reply: Reply): Reply {
    const body = reply.body as Record<string, unknown> | undefined
    if (reply.status !== 200 || body === undefined || !('state' in body) || typeof body.index !== 'number') return reply
    const { state, ...rest } = body
    const head = JSON.stringify(rest)
    return { status: 200, headers: { ...reply.headers, 'content-type': 'application/json' }, raw: `${head.slice(0, -1)}${head.length > 2 ? ',' : ''}"state":${this.text(sessionId, body.index, state)}}\n` }
  }

  text (sessionId: string, index: number, state: unknown): string {
    const kept = this.#texts.get(sessionId)
    if (kept !== undefined && kept.index === index) {
      this.#texts.delete(sessionId)
      this.#texts.set(sessionId, kept)
      return kept.text
    }
    const text = JSON.stringify(state) ?? 'null'
    this.serialised++
    if (kept !== undefined) { this.#texts.delete(sessionId); this.#bytes -= kept.text.length }
    this.#texts.set(sessionId, { index, text })
    this.#bytes += text.length
    for (const [id, entry] of this.#texts) {
      if (this.#texts.size <= STATE_TEXT_ENTRIES && this.#bytes <= STATE_TEXT_BYTES) break
      this.#texts.delete(id)
      this.#bytes -= entry.text.length
    }
    return text
  }
}

// A read's answer charged to its session's byte budget (HttpLimits.chargeRead):
// the 429 to send instead, or null.
export type ChargeRead = (sessionId: string, bytes: number) => Reply | null

export function registerSessionRoutes (http: HttpApi, host: SessionsHost, deploy: DeployHost, onLimit: (limit: 'request-body-size') => void = () => {}, chargeRead: ChargeRead = () => null): SessionAppends {
  const opens = new OpenRetries()
  const stateTexts = new StateTexts()
  const appends = sessionAppends(host, deploy)
  http.route('GET', /^\/v1\/sessions$/, async () => toHttp(await host.request({ type: 'list' })))

  http.route('POST', /^\/v1\/sessions$/, async (request) => {
    const body = await readJson(request, onLimit)
    if (!body.ok) return body.reply
    const token = bearer(request)
    // With a token: resume the session it opens.
    if (token !== null) {
      const sessionId = token.split('~')[0]
      return toHttp(await host.request({ type: 'resume', sessionId, tokenHash: hashToken(token) }))
    }
    const open = parseOpen(body.value)
    if (!open.ok) return open.reply
    const openKey = body.value.openKey
    if (openKey !== undefined && (typeof openKey !== 'string' || !OPEN_KEY.test(openKey))) return { status: 400, body: { error: "'openKey' must be 22-128 characters of A-Z a-z 0-9 _ -" } }
    // A service this agent lacks: fetch its package first (M3.3). Not joined
    // yet, it knows no agent to fetch it from: 503 (retry), not 400 "unknown
    // service", as the sessions core answers an open of a built-in meanwhile.
    const service = open.value.service
    if (!BUILT_IN_SERVICES.has(service)) {
      if (host.joining) return toHttp(notJoinedReply())
      if (!(await deploy.ensure(service))) {
        return { status: 400, body: { error: `unknown service ${service}: not a built-in (${[...BUILT_IN_SERVICES.keys()].join(', ')}), and no agent this one can reach has a package of that name` } }
      }
    }
    const run = async (): Promise<Reply> => {
      const sessionId = newSessionId(open.value.service)
      const issued = newToken(sessionId)
      const reply = await host.request({ type: 'open', sessionId, tokenHash: issued.tokenHash, ...open.value })
      return toHttp(reply, reply.status === 201 ? { token: issued.token } : {})
    }
    return typeof openKey === 'string' ? opens.once(openKey, JSON.stringify(open.value), run) : run()
  })

  http.route('POST', DELTAS_PATH, async (request, params) => {
    const id = sessionIdOf(params[0])
    if (!id.ok) return id.reply
    const token = bearer(request)
    if (token === null) return { status: 401, body: { error: 'an Authorization: Bearer <token> header is required' } }
    const body = await readJson(request, onLimit)
    if (!body.ok) return body.reply
    return await appends.delta(id.value, token, body.value)
  })

  // A batch of deltas: {"clientSeq": first, "ops": [op, …]}, the ops taking
  // clientSeq, clientSeq + 1, … (see deltas.ts for the answer).
  http.route('POST', BATCH_PATH, async (request, params) => {
    const id = sessionIdOf(params[0])
    if (!id.ok) return id.reply
    const token = bearer(request)
    if (token === null) return { status: 401, body: { error: 'an Authorization: Bearer <token> header is required' } }
    const body = await readJson(request, onLimit, MAX_BATCH_BYTES)
    if (!body.ok) return body.reply
    return await appends.batch(id.value, token, body.value)
  })

  http.route('GET', SESSION_PATH, async (request, params) => {
    const id = sessionIdOf(params[0])
    if (!id.ok) return id.reply
    const token = bearer(request)
    if (token === null) return { status: 401, body: { error: 'an Authorization: Bearer <token> header is required' } }
    const reply = await host.request({ type: 'get', sessionId: id.value, tokenHash: hashToken(token) })
    const answer = stateTexts.reply(id.value, toHttp(deployedOf(deploy, id.value) === null ? reply : unwrapReply(reply)))
    return answer.raw === undefined ? answer : chargeRead(id.value, answer.raw.length) ?? answer
  })

  http.route('DELETE', SESSION_PATH, async (request, params) => {
    const id = sessionIdOf(params[0])
    if (!id.ok) return id.reply
    const token = bearer(request)
    if (token === null) return { status: 401, body: { error: 'an Authorization: Bearer <token> header is required' } }
    return toHttp(await host.request({ type: 'close', sessionId: id.value, tokenHash: hashToken(token) }))
  })
  return appends
}
