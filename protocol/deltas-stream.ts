// The deltas stream: a terminal's appends on one long-lived connection to an
// agent, pipelined, instead of one HTTP request each (README, "The deltas
// stream"). The connection is an HTTP/1.1 upgrade of the agent's API port
// (`GET /v1/stream`, `Upgrade: edge-agent-deltas/1`), so it takes the same port,
// TLS and firewall rule as the HTTP API. After the 101, both sides send frames:
// a 4-byte big-endian length, then that many bytes of one JSON object.
//
//   request  {"id": 7, "session": "<id>", "token": "<token>", "clientSeq": 12, "op": <op>}
//            {"id": 8, "session": "<id>", "token": "<token>", "clientSeq": 13, "ops": [<op>, …]}
//   reply    {"id": 7, "status": 200, "body": {…}, "location"?: "<url>", "retryAfterMs"?: 1000}
//
// A request is exactly the HTTP API's POST /v1/sessions/<id>/deltas (with "op")
// or /batch (with "ops"), and its reply carries that request's status, JSON body
// and Location / Retry-After: the same validation, limits and answers. Replies
// may come out of order; `id` (the client's, 1 … 2^53 − 1) matches them up. A
// frame the agent cannot read gets a reply with status 400 (id 0 when it had no
// usable id); a frame over MAX_STREAM_FRAME_BYTES, or bytes that are no frame,
// get that reply and the connection is closed.

import { MAX_BATCH_BYTES } from './limits.ts'

export const DELTAS_STREAM_PATH = '/v1/stream'
export const DELTAS_STREAM_PROTOCOL = 'edge-agent-deltas/1'
// A batch's body (the HTTP API's limit) plus the envelope.
export const MAX_STREAM_FRAME_BYTES = MAX_BATCH_BYTES + 4_096
const HEADER_BYTES = 4

export type StreamRequest = {
  id: number
  session: string
  token: string
  // The HTTP body: {clientSeq, op} or {clientSeq, ops}.
  body: Record<string, unknown>
  batch: boolean
  // Bytes of the frame (the rate limits count them as the HTTP body's).
  bytes: number
}

export type StreamReply = {
  id: number
  status: number
  body: Record<string, unknown>
  location?: string
  retryAfterMs?: number
}

export function encodeFrame (value: object): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8')
  const frame = Buffer.allocUnsafe(HEADER_BYTES + json.length)
  frame.writeUInt32BE(json.length, 0)
  json.copy(frame, HEADER_BYTES)
  return frame
}

// Where frames are written: a socket (only what the writer needs of one).
export type FrameSink = { cork: () => void; uncork: () => void; write: (chunk: Buffer) => boolean }

// Writes frames; those written in one turn of the event loop (an owner's replies
// to a batch it acknowledged at once, a client's requests from terminals answered
// together) leave in one write: a write is a system call, and on loopback the
// receiver's TCP work is done in it too. write() returns the sink's answer
// (false: it is buffering past its high-water mark).
export class FrameWriter {
  readonly #sink: FrameSink
  #corked = false

  constructor (sink: FrameSink) {
    this.#sink = sink
  }

  write (value: object): boolean {
    if (!this.#corked) {
      this.#corked = true
      this.#sink.cork()
      process.nextTick(() => {
        this.#corked = false
        this.#sink.uncork()
      })
    }
    return this.#sink.write(encodeFrame(value))
  }
}

// Cuts a byte stream into frames. push() returns the complete frames the chunk
// finished, or an error once a header announces more than `maxBytes` (nothing
// after it can be trusted to be a frame boundary).
export class FrameReader {
  readonly #maxBytes: number
  #chunks: Buffer[] = []
  #buffered = 0

  constructor (maxBytes = MAX_STREAM_FRAME_BYTES) {
    this.#maxBytes = maxBytes
  }

  push (chunk: Buffer): { frames: Buffer[]; error: string | null } {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    const frames: Buffer[] = []
    while (this.#buffered >= HEADER_BYTES) {
      const head = this.#peek(HEADER_BYTES)
      const length = head.readUInt32BE(0)
      if (length > this.#maxBytes) return { frames, error: `a frame of ${length} bytes exceeds ${this.#maxBytes}` }
      if (this.#buffered < HEADER_BYTES + length) break
      frames.push(this.#take(HEADER_BYTES + length).subarray(HEADER_BYTES))
    }
    return { frames, error: null }
  }

  #peek (bytes: number): Buffer {
    if (this.#chunks[0].length >= bytes) return this.#chunks[0]
    const joined = Buffer.concat(this.#chunks)
    this.#chunks = [joined]
    return joined
  }

  #take (bytes: number): Buffer {
    const first = this.#peek(bytes)
    const taken = first.subarray(0, bytes)
    const rest = first.subarray(bytes)
    if (rest.length > 0) this.#chunks[0] = rest
    else this.#chunks.shift()
    this.#buffered -= bytes
    return taken
  }
}

type Parsed<T> = { ok: true; value: T } | { ok: false; id: number; error: string }

function jsonObject (frame: Buffer): Record<string, unknown> | string {
  let value: unknown
  try {
    value = JSON.parse(frame.toString('utf8'))
  } catch (error) {
    return `the frame is not valid JSON: ${(error as Error).message}`
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the frame must be a JSON object'
  return value as Record<string, unknown>
}

function isId (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1
}

// The envelope only; the body ({clientSeq, op | ops}) is checked by the same
// code as the HTTP API's.
export function parseStreamRequest (frame: Buffer): Parsed<StreamRequest> {
  const value = jsonObject(frame)
  if (typeof value === 'string') return { ok: false, id: 0, error: value }
  const { id, session, token, clientSeq, op, ops } = value
  if (!isId(id)) return { ok: false, id: 0, error: "'id' must be a whole number ≥ 1" }
  if (typeof session !== 'string' || session.length === 0 || session.length > 128) return { ok: false, id, error: "'session' must be a session id" }
  if (typeof token !== 'string' || token.length === 0 || token.length > 512) return { ok: false, id, error: "'token' must be the session's token" }
  if ((op === undefined) === (ops === undefined)) return { ok: false, id, error: "a request has either 'op' (one delta) or 'ops' (a batch)" }
  const batch = ops !== undefined
  return { ok: true, value: { id, session, token, body: batch ? { clientSeq, ops } : { clientSeq, op }, batch, bytes: frame.length } }
}

export function parseStreamReply (frame: Buffer): Parsed<StreamReply> {
  const value = jsonObject(frame)
  if (typeof value === 'string') return { ok: false, id: 0, error: value }
  const { id, status, body, location, retryAfterMs } = value
  if (!(id === 0 || isId(id))) return { ok: false, id: 0, error: "'id' must be a whole number ≥ 0" }
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) return { ok: false, id, error: "'status' must be an HTTP status" }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, id, error: "'body' must be a JSON object" }
  if (location !== undefined && typeof location !== 'string') return { ok: false, id, error: "'location' must be a string" }
  if (retryAfterMs !== undefined && (typeof retryAfterMs !== 'number' || !(retryAfterMs >= 0))) return { ok: false, id, error: "'retryAfterMs' must be a number ≥ 0" }
  return { ok: true, value: { id, status, body: body as Record<string, unknown>, ...(location === undefined ? {} : { location }), ...(retryAfterMs === undefined ? {} : { retryAfterMs }) } }
}
