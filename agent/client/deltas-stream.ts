// The client's end of the deltas stream (protocol/deltas-stream.ts): one
// connection per agent, opened on the first append to it, carrying every
// append and batch of every session this client holds there, pipelined. An
// answer is exactly the HTTP API's (status, JSON body, Location, Retry-After),
// so the retry and redirect rules (route.ts) are the same for both transports,
// and so are the errors: no answer is a NetworkError with the code HTTP would
// give (ECONNREFUSED, ECONNRESET, ETIMEDOUT).
//
// An agent that refuses the upgrade for good (404: an older one; another 4xx: a
// proxy between that does not pass upgrades) is asked over HTTP from then on;
// a refusal that may pass (408, 429, 5xx) sends that one request over HTTP. A request not answered in time closes the connection if nothing at all
// came back meanwhile: the agent may be frozen, and the other requests on it
// are better retried on a fresh one.

import { request as httpRequest } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import { DELTAS_STREAM_PATH, DELTAS_STREAM_PROTOCOL, FrameReader, FrameWriter, parseStreamReply } from '../../protocol/deltas-stream.ts'
import type { HttpReply } from './http.ts'
import { NetworkError, withSystemRoots } from './http.ts'

export type StreamCall = {
  // The agent's base URL (http(s)://host:port).
  agent: string
  sessionId: string
  token: string
  // {clientSeq, op} or {clientSeq, ops}.
  body: Record<string, unknown>
  timeoutMs: number
}

type Pending = { resolve: (reply: HttpReply) => void; reject: (error: NetworkError) => void; timer: ReturnType<typeof setTimeout> }

class StreamConnection {
  readonly #socket: Socket
  readonly #reader = new FrameReader()
  readonly #writer: FrameWriter
  readonly #pending = new Map<number, Pending>()
  readonly #onClosed: () => void
  #nextId = 1
  #closed = false
  // Requests sent so far: a reset of a connection already used is the race
  // HTTP keep-alive has too (the agent closed it as the request left).
  #sent = 0
  // When the last bytes arrived (performance.now()).
  #lastReadMs = 0

  constructor (socket: Socket, head: Buffer, onClosed: () => void) {
    this.#socket = socket
    this.#writer = new FrameWriter(socket)
    this.#onClosed = onClosed
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => { this.#read(chunk) })
    socket.on('error', (error: NodeJS.ErrnoException) => { this.#close(error.code ?? 'ECONNRESET') })
    socket.on('close', () => { this.#close('ECONNRESET') })
    socket.unref()
    if (head.length > 0) this.#read(head)
  }

  get closed (): boolean {
    return this.#closed
  }

  send (call: StreamCall): Promise<HttpReply> {
    const id = this.#nextId++
    const reused = this.#sent++ > 0
    return new Promise((resolve, reject) => {
      const sentAt = performance.now()
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new NetworkError(`POST ${call.agent}${DELTAS_STREAM_PATH} (${call.sessionId}): no answer within ${call.timeoutMs} ms`, 'ETIMEDOUT', false))
        // Nothing heard since it left: the agent is frozen or the path is gone.
        // The other requests on the connection fail as timed out too, so the
        // client asks the next member at once, as it does after a timeout,
        // instead of asking this agent again on a fresh connection and waiting
        // out a second timeout. Answers to others still coming: only this one
        // is slow (its late answer is dropped).
        if (this.#lastReadMs <= sentAt) this.#fail('ETIMEDOUT', `nothing came back for ${call.timeoutMs} ms`)
      }, call.timeoutMs)
      this.#pending.set(id, {
        resolve,
        reject: (error) => { reject(reused && error.code === 'ECONNRESET' ? new NetworkError(error.message, error.code, true) : error) },
        timer
      })
      this.#socket.ref()
      this.#writer.write({ id, session: call.sessionId, token: call.token, ...call.body })
    })
  }

  destroy (): void {
    this.#socket.destroy()
    this.#close('ECONNRESET')
  }

  #read (chunk: Buffer): void {
    this.#lastReadMs = performance.now()
    const { frames, error } = this.#reader.push(chunk)
    for (const frame of frames) {
      const parsed = parseStreamReply(frame)
      const pending = parsed.ok ? this.#pending.get(parsed.value.id) : undefined
      if (!parsed.ok || pending === undefined) {
        // An answer to nothing we asked (or one we gave up on, id still unknown
        // to us: ignored), or the agent could not read a frame of ours (id 0).
        if (parsed.ok && parsed.value.id !== 0) continue
        this.#fail('EPROTO', parsed.ok ? String(parsed.value.body.error ?? 'refused') : parsed.error)
        return
      }
      this.#pending.delete(parsed.value.id)
      clearTimeout(pending.timer)
      const reply = parsed.value
      pending.resolve({ status: reply.status, body: reply.body, location: reply.location ?? null, retryAfterMs: reply.retryAfterMs ?? null })
    }
    if (error !== null) this.#fail('EPROTO', error)
    if (this.#pending.size === 0) this.#socket.unref()
  }

  #fail (code: string, why: string): void {
    this.#socket.destroy()
    this.#close(code, why)
  }

  #close (code: string, why = ''): void {
    if (this.#closed) return
    this.#closed = true
    this.#onClosed()
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer)
      pending.reject(new NetworkError(`deltas stream closed (${code}${why === '' ? '' : `: ${why}`}) before request ${id} was answered`, code, false))
    }
    this.#pending.clear()
  }
}

export class DeltaStreams {
  readonly #ca: string[] | undefined
  // Per agent: its open connection, the connection being opened, or 'http' (it
  // does not offer the stream).
  readonly #agents = new Map<string, StreamConnection | Promise<StreamConnection | 'http' | null> | 'http'>()

  constructor (ca?: string | Buffer) {
    this.#ca = ca === undefined ? undefined : withSystemRoots(ca)
  }

  // The answer, or null when this request should go over HTTP instead.
  async request (call: StreamCall): Promise<HttpReply | null> {
    const connection = await this.#connection(call.agent, call.timeoutMs)
    if (connection === null || connection === 'http') return null
    return await connection.send(call)
  }

  destroy (): void {
    for (const entry of this.#agents.values()) if (entry instanceof StreamConnection) entry.destroy()
    this.#agents.clear()
  }

  async #connection (agent: string, timeoutMs: number): Promise<StreamConnection | 'http' | null> {
    const known = this.#agents.get(agent)
    if (known instanceof StreamConnection && !known.closed) return known
    if (known === 'http' || known instanceof Promise) return await known
    const opening = this.#open(agent, timeoutMs)
    this.#agents.set(agent, opening)
    try {
      const opened = await opening
      if (opened === null) this.#agents.delete(agent)
      else this.#agents.set(agent, opened)
      return opened
    } catch (error) {
      this.#agents.delete(agent)
      throw error
    }
  }

  #open (agent: string, timeoutMs: number): Promise<StreamConnection | 'http' | null> {
    const secure = agent.startsWith('https:')
    const send = secure ? httpsRequest : httpRequest
    return new Promise((resolve, reject) => {
      const request = send(agent + DELTAS_STREAM_PATH, {
        method: 'GET',
        headers: { connection: 'Upgrade', upgrade: DELTAS_STREAM_PROTOCOL },
        agent: false,
        ...(secure && this.#ca !== undefined ? { ca: this.#ca } : {})
      })
      const timer = setTimeout(() => {
        request.destroy(Object.assign(new Error(`no answer to the upgrade within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }))
      }, timeoutMs)
      request.on('upgrade', (response: IncomingMessage, socket: Socket, head: Buffer) => {
        clearTimeout(timer)
        const connection: StreamConnection = new StreamConnection(socket, head, () => {
          if (this.#agents.get(agent) === connection) this.#agents.delete(agent)
        })
        resolve(connection)
      })
      request.on('response', (response: IncomingMessage) => {
        clearTimeout(timer)
        response.resume()
        // A refusal that will not change (an agent without the stream: 404, or a
        // proxy that does not pass upgrades: 400…) is remembered; one that may
        // (429, 408, 5xx) sends only this request over HTTP.
        const status = response.statusCode ?? 0
        resolve(status >= 400 && status < 500 && status !== 408 && status !== 429 ? 'http' : null)
      })
      request.on('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        const code = error.code ?? 'EPROTO'
        reject(new NetworkError(`GET ${agent}${DELTAS_STREAM_PATH}: ${code === 'ETIMEDOUT' ? error.message : code}`, code, false))
      })
      request.end()
    })
  }
}
