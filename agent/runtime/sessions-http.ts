// The terminal API on the agent's HTTP server (see README, "Terminal API").
// Validates requests at the boundary, turns them into commands for the sessions
// core, and its answers into HTTP: 307 with Location to the owner, 503 with
// Retry-After when nothing was acknowledged.

import type { IncomingMessage } from 'node:http'
import { MAX_OP_BYTES, MAX_TERMINAL_ID_CHARS } from '../../protocol/limits.ts'
import type { JsonValue, Position } from '../../protocol/messages.ts'
import { BUILT_IN_SERVICES } from '../sessions/services.ts'
import type { ClientReply } from '../sessions/types.ts'
import { ConfigError, parsePosition } from '../config.ts'
import type { HttpApi, Reply } from './http-api.ts'
import { hashToken, newSessionId, newToken } from './sessions-host.ts'
import type { SessionsHost } from './sessions-host.ts'

// A request body: a delta plus its envelope. Larger bodies are refused unread.
const MAX_BODY_BYTES = MAX_OP_BYTES + 4_096
const SESSION_PATH = /^\/v1\/sessions\/([^/]+)$/
const DELTAS_PATH = /^\/v1\/sessions\/([^/]+)\/deltas$/

type Parsed<T> = { ok: true; value: T } | { ok: false; reply: Reply }

function refuse (status: number, error: string): { ok: false; reply: Reply } {
  return { ok: false, reply: { status, body: { error } } }
}

// A JSON object body of at most maxBytes (an empty body is {}), or the refusal.
export async function readJson (request: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<Parsed<Record<string, unknown>>> {
  const declared = Number(request.headers['content-length'] ?? 0)
  if (declared > maxBytes) return refuse(413, `request body of ${declared} bytes exceeds ${maxBytes}`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request) {
    size += (chunk as Buffer).length
    if (size > maxBytes) return refuse(413, `request body exceeds ${maxBytes} bytes`)
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
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(id)) return refuse(400, `not a session id: ${JSON.stringify(id)}`)
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
    return refuse(400, `'terminalId' must be 1-${MAX_TERMINAL_ID_CHARS} printable characters`)
  }
  if (typeof service !== 'string' || !BUILT_IN_SERVICES.has(service)) {
    return refuse(400, `unknown service ${JSON.stringify(service)} (known: ${[...BUILT_IN_SERVICES.keys()].join(', ')})`)
  }
  if (position === undefined || position === null) return { ok: true, value: { terminalId, service, position: null } }
  try {
    return { ok: true, value: { terminalId, service, position: parsePosition(position) } }
  } catch (error) {
    if (error instanceof ConfigError) return refuse(400, error.message)
    throw error
  }
}

export function registerSessionRoutes (http: HttpApi, host: SessionsHost): void {
  http.route('GET', /^\/v1\/sessions$/, async () => toHttp(await host.request({ type: 'list' })))

  http.route('POST', /^\/v1\/sessions$/, async (request) => {
    const body = await readJson(request)
    if (!body.ok) return body.reply
    const token = bearer(request)
    // With a token: resume the session it opens.
    if (token !== null) {
      const sessionId = token.split('~')[0]
      return toHttp(await host.request({ type: 'resume', sessionId, tokenHash: hashToken(token) }))
    }
    const open = parseOpen(body.value)
    if (!open.ok) return open.reply
    const sessionId = newSessionId(open.value.service)
    const issued = newToken(sessionId)
    const reply = await host.request({ type: 'open', sessionId, tokenHash: issued.tokenHash, ...open.value })
    return toHttp(reply, reply.status === 201 ? { token: issued.token } : {})
  })

  http.route('POST', DELTAS_PATH, async (request, params) => {
    const id = sessionIdOf(params[0])
    if (!id.ok) return id.reply
    const token = bearer(request)
    if (token === null) return { status: 401, body: { error: 'an Authorization: Bearer <token> header is required' } }
    const body = await readJson(request)
    if (!body.ok) return body.reply
    const { clientSeq, op } = body.value
    if (typeof clientSeq !== 'number' || !Number.isSafeInteger(clientSeq) || clientSeq < 1) return { status: 400, body: { error: "'clientSeq' must be a whole number ≥ 1" } }
    if (op === undefined) return { status: 400, body: { error: "'op' is required" } }
    return toHttp(await host.request({ type: 'append', sessionId: id.value, tokenHash: hashToken(token), clientSeq, op: op as JsonValue }))
  })

  http.route('GET', SESSION_PATH, async (request, params) => {
    const id = sessionIdOf(params[0])
    if (!id.ok) return id.reply
    const token = bearer(request)
    if (token === null) return { status: 401, body: { error: 'an Authorization: Bearer <token> header is required' } }
    return toHttp(await host.request({ type: 'get', sessionId: id.value, tokenHash: hashToken(token) }))
  })

  http.route('DELETE', SESSION_PATH, async (request, params) => {
    const id = sessionIdOf(params[0])
    if (!id.ok) return id.reply
    const token = bearer(request)
    if (token === null) return { status: 401, body: { error: 'an Authorization: Bearer <token> header is required' } }
    return toHttp(await host.request({ type: 'close', sessionId: id.value, tokenHash: hashToken(token) }))
  })
}
