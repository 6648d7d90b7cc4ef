// One JSON request to one agent over node:http(s), with a hard deadline that
// covers connecting, sending and reading the whole answer. node:http rather than
// fetch: fetch refuses some ports outright ("bad port"). The retry policy lives
// in edge-client.ts; this file only moves bytes and decodes the envelope.

import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import type { ClientRequest, IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { rootCertificates as tlsRootCertificates } from 'node:tls'
import { MAX_STATE_BYTES } from '../../protocol/limits.ts'

// The largest answer read: a GET carries the whole session state (at most
// MAX_STATE_BYTES as JSON) plus a small envelope.
export const MAX_REPLY_BYTES = MAX_STATE_BYTES + 1024 * 1024

export type HttpReply = {
  status: number
  // The JSON object answered; a non-JSON or non-object answer becomes {"error": …}.
  body: Record<string, unknown>
  // The Location header of a redirect, as sent.
  location: string | null
  // The Retry-After header in ms, when the agent sent one.
  retryAfterMs: number | null
}

export type HttpRequest = {
  url: string
  method: 'GET' | 'POST' | 'DELETE'
  token?: string
  body?: unknown
  timeoutMs: number
}

// No HTTP answer at all. `code` is the system's (ECONNREFUSED, ECONNRESET…) or
// ETIMEDOUT for the hard deadline. `reusedSocket` says a kept-alive connection
// was reused, which the agent may have closed just as the request left.
export class NetworkError extends Error {
  override name = 'NetworkError'
  readonly code: string
  readonly reusedSocket: boolean

  constructor (message: string, code: string, reusedSocket: boolean) {
    super(message)
    this.code = code
    this.reusedSocket = reusedSocket
  }
}

export type Connections = { http: HttpAgent; https: HttpsAgent }

// Kept-alive connections: a terminal appends often, to the same owner. `ca`
// (PEM) is trusted for https agents, on top of the system's roots: an agent
// with a self-signed or private-CA certificate.
export function keepAliveConnections (ca?: string | Buffer): Connections {
  return { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true, ...(ca === undefined ? {} : { ca: withSystemRoots(ca) }) }) }
}

// Node's `ca` replaces the default roots; a private CA should add to them.
export function withSystemRoots (ca: string | Buffer): string[] {
  return [...tlsRootCertificates, ca.toString()]
}

export function closeConnections (connections: Connections): void {
  connections.http.destroy()
  connections.https.destroy()
}

export function requestJson (connections: Connections, spec: HttpRequest): Promise<HttpReply> {
  const secure = spec.url.startsWith('https:')
  const payload = spec.body === undefined ? undefined : JSON.stringify(spec.body)
  const headers: Record<string, string> = { accept: 'application/json' }
  if (payload !== undefined) headers['content-type'] = 'application/json'
  if (spec.token !== undefined) headers.authorization = `Bearer ${spec.token}`
  return new Promise((resolve, reject) => {
    const send = secure ? httpsRequest : httpRequest
    const request = send(spec.url, { method: spec.method, headers, agent: secure ? connections.https : connections.http })
    let settled = false
    const fail = (error: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const code = (error as NodeJS.ErrnoException).code ?? 'EPROTO'
      reject(new NetworkError(`${spec.method} ${spec.url}: ${code === 'ETIMEDOUT' ? error.message : code}`, code, request.reusedSocket))
    }
    // A socket timeout only measures idleness; this bounds the whole exchange.
    const timer = setTimeout(() => {
      request.destroy(Object.assign(new Error(`no answer within ${spec.timeoutMs} ms`), { code: 'ETIMEDOUT' }))
    }, spec.timeoutMs)
    request.on('error', fail)
    request.on('response', (response) => {
      readReply(response, request).then((reply) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(reply)
      }, fail)
    })
    request.end(payload)
  })
}

function readReply (response: IncomingMessage, request: ClientRequest): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let bytes = 0
    response.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > MAX_REPLY_BYTES) request.destroy(Object.assign(new Error(`answer larger than ${MAX_REPLY_BYTES} bytes`), { code: 'E2BIG' }))
      else chunks.push(chunk)
    })
    response.on('error', reject)
    response.on('close', () => {
      if (!response.complete) reject(Object.assign(new Error('answer cut short'), { code: 'ECONNRESET' }))
    })
    response.on('end', () => resolve({
      status: response.statusCode ?? 0,
      body: parseBody(Buffer.concat(chunks).toString('utf8')),
      location: typeof response.headers.location === 'string' ? response.headers.location : null,
      retryAfterMs: parseRetryAfter(response.headers['retry-after'])
    }))
  })
}

function parseBody (text: string): Record<string, unknown> {
  if (text.trim() === '') return {}
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {}
  return { error: `not a JSON object: ${text.slice(0, 200).trim()}` }
}

// Retry-After in seconds (RFC 9110); an HTTP date is ignored.
function parseRetryAfter (value: string | undefined): number | null {
  if (value === undefined || !/^\d+$/.test(value.trim())) return null
  return Number(value.trim()) * 1000
}
