// The agent's HTTP API on node:http, or node:https when given a certificate.
// Loopback by default. Every answer is JSON except /metrics; every refusal
// carries {"error": "<reason>"}.

import { createServer, STATUS_CODES } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Server as HttpsServer } from 'node:https'
import { createSecureContext } from 'node:tls'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'

export type Reply = {
  status: number
  body?: unknown
  headers?: Record<string, string>
  raw?: string
  // Hold the answer this long first (a rate-limit refusal: see #hold).
  delayMs?: number
}

// Refusals held at once. A client that ignores Retry-After and asks again at once
// gets its 429 only when it could have retried: each of its connections then
// costs us one timer per Retry-After instead of a request per round trip. Past
// this many held answers, refusals go out at once with Connection: close.
const MAX_HELD_REFUSALS = 1_024
// The longest a refusal is held, ms.
const MAX_REFUSAL_HOLD_MS = 1_000

export type RouteHandler = (request: IncomingMessage, params: string[], url: URL) => Promise<Reply> | Reply

export type Route = { method: string; pattern: RegExp; handler: RouteHandler }

// Runs before routing; a Reply refuses the request unread (rate limits).
export type Admission = (request: IncomingMessage, url: URL) => Reply | null

// Takes over an upgraded connection (the deltas stream); the 101 is its to send.
export type UpgradeHandler = (socket: Socket, head: Buffer, request: IncomingMessage) => void

export type HttpOptions = {
  onError: (error: unknown) => void
  // PEM certificate chain and private key: HTTPS only.
  tls?: { cert: Buffer; key: Buffer }
  admit?: Admission
}

export class HttpApi {
  readonly #routes: Route[] = []
  readonly #server: Server
  readonly #onError: (error: unknown) => void
  readonly #admit: Admission
  readonly secure: boolean
  #held = 0
  // Upgrade protocol (lower case) → its path and handler.
  readonly #upgrades = new Map<string, { path: string; handler: UpgradeHandler }>()
  // Upgraded connections leave the server's books: close() ends them itself.
  readonly #upgraded = new Set<Socket>()

  constructor (options: HttpOptions) {
    this.#onError = options.onError
    this.#admit = options.admit ?? (() => null)
    this.secure = options.tls !== undefined
    const handler = (request: IncomingMessage, response: ServerResponse): void => { void this.#handle(request, response) }
    // A bad certificate or key throws here, before anything listens.
    this.#server = options.tls === undefined ? createServer(handler) : createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler)
    // Slow or idle clients must not hold sockets forever.
    this.#server.requestTimeout = 10_000
    this.#server.headersTimeout = 5_000
    this.#server.keepAliveTimeout = 5_000
    this.#server.on('clientError', (error, socket) => { malformed(error, socket as Socket) })
    // `Expect: 100-continue`: node would answer 100 at once, the client would
    // then send a body the route refuses unread (a 413 by its declared length),
    // and find the connection closed mid-send, often without the 413. The 100
    // goes out only when a route starts reading the body (continueBody).
    this.#server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
      continues.set(request, () => { response.writeContinue() })
      handler(request, response)
    })
    // node:http types it a Duplex; from a net or tls server it is a net.Socket
    // (a TLSSocket is one).
    this.#server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => { this.#onUpgrade(request, socket as Socket, head) })
  }

  // `GET <path>` with `Upgrade: <protocol>` hands the connection to `handler`.
  upgrade (path: string, protocol: string, handler: UpgradeHandler): void {
    this.#upgrades.set(protocol.toLowerCase(), { path, handler })
  }

  #onUpgrade (request: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => { socket.destroy() })
    const url = new URL(request.url ?? '/', 'http://agent')
    const protocol = String(request.headers.upgrade ?? '').toLowerCase()
    const upgrade = this.#upgrades.get(protocol)
    let refusal: Reply | null
    if (upgrade !== undefined && upgrade.path === url.pathname && request.method === 'GET') {
      refusal = this.#admit(request, url)
    } else {
      const offered = [...this.#upgrades].map(([p, u]) => `GET ${u.path} with Upgrade: ${p}`).join(', ')
      const known = [...this.#upgrades.values()].some((u) => u.path === url.pathname)
      refusal = { status: known ? 400 : 404, body: { error: `no upgrade to ${JSON.stringify(protocol)} at ${request.method ?? '?'} ${url.pathname}; this agent offers ${offered === '' ? 'none' : offered}` } }
    }
    if (refusal !== null) {
      const body = JSON.stringify(refusal.body) + '\n'
      const retry = refusal.headers?.['retry-after']
      socket.end(`HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\nconnection: close\r\ncontent-type: application/json\r\n${retry === undefined ? '' : `retry-after: ${retry}\r\n`}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
      return
    }
    this.#upgraded.add(socket)
    socket.on('close', () => { this.#upgraded.delete(socket) })
    upgrade?.handler(socket, head, request)
  }

  route (method: string, pattern: RegExp, handler: RouteHandler): void {
    this.#routes.push({ method, pattern, handler })
  }

  async listen (host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        resolve()
      })
    })
    const address = this.#server.address() as AddressInfo
    const hostText = address.family === 'IPv6' ? `[${address.address}]` : address.address
    return `${this.secure ? 'https' : 'http'}://${hostText}:${address.port}`
  }

  // Swaps the certificate and key of an HTTPS API (a renewed certificate): new
  // connections get them, those open keep theirs. Throws, changing nothing, if
  // they do not make a valid pair, or on a plain HTTP API.
  setTls (tls: { cert: Buffer; key: Buffer }): void {
    if (!this.secure) throw new Error('the HTTP API runs without TLS; a restart turns it on')
    const context = { cert: tls.cert, key: tls.key }
    createSecureContext(context)
    const server = this.#server as HttpsServer
    server.setSecureContext(context)
  }

  async close (): Promise<void> {
    for (const socket of this.#upgraded) socket.destroy()
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  async #handle (request: IncomingMessage, response: ServerResponse): Promise<void> {
    let reply: Reply
    try {
      reply = await this.#dispatch(request)
    } catch (error) {
      this.#onError(error)
      reply = { status: 500, body: { error: 'internal error' } }
    }
    if (reply.delayMs !== undefined && reply.delayMs > 0) await this.#hold(reply)
    const headers: Record<string, string> = { ...reply.headers }
    let text: string
    if (reply.raw !== undefined) {
      text = reply.raw
    } else {
      headers['content-type'] = 'application/json'
      text = JSON.stringify(reply.body) + '\n'
    }
    response.writeHead(reply.status, headers)
    response.end(text)
  }

  async #hold (reply: Reply): Promise<void> {
    if (this.#held >= MAX_HELD_REFUSALS) {
      reply.headers = { ...reply.headers, connection: 'close' }
      return
    }
    this.#held++
    try {
      await new Promise((resolve) => setTimeout(resolve, Math.min(reply.delayMs ?? 0, MAX_REFUSAL_HOLD_MS)))
    } finally {
      this.#held--
    }
  }

  async #dispatch (request: IncomingMessage): Promise<Reply> {
    const url = new URL(request.url ?? '/', 'http://agent')
    const refusal = this.#admit(request, url)
    if (refusal !== null) {
      // A refused body is not read: the connection closes instead (node:http
      // would otherwise read and discard it to reuse the connection).
      const hasBody = Number(request.headers['content-length'] ?? 0) > 0 || request.headers['transfer-encoding'] !== undefined
      if (hasBody) refusal.headers = { ...refusal.headers, connection: 'close' }
      return refusal
    }
    let pathMatched = false
    for (const route of this.#routes) {
      const match = route.pattern.exec(url.pathname)
      if (match === null) continue
      pathMatched = true
      if (route.method === request.method) return await route.handler(request, match.slice(1), url)
    }
    if (pathMatched) return { status: 405, body: { error: `method ${request.method} not allowed on ${url.pathname}` } }
    return { status: 404, body: { error: `no such endpoint: ${url.pathname}` } }
  }
}

const continues = new WeakMap<IncomingMessage, () => void>()

// A route about to read the request's body: a client that asked to be told
// (`Expect: 100-continue`) is told to send it now. Without the header, nothing.
export function continueBody (request: IncomingMessage): void {
  const send = continues.get(request)
  if (send === undefined) return
  continues.delete(request)
  send()
}

// A request node's parser refuses (unknown method, bad header, bytes that are no
// HTTP) never reaches a route; it gets the same JSON refusal as everything else,
// instead of node's bare 400, and the connection is closed.
function malformed (error: Error & { code?: string; reason?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
  const detail = (error.reason ?? error.message).replace(/^Parse Error: /, '').toLowerCase()
  const body = JSON.stringify({ error: `malformed HTTP request: ${detail}` }) + '\n'
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}
