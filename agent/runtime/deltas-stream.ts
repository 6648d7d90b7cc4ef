// The agent's end of the deltas stream (protocol/deltas-stream.ts): appends
// arrive as frames on one upgraded connection and are answered as they complete,
// through the same checks, limits and sessions core as the HTTP API's POST
// …/deltas and …/batch (sessions-http.ts, http-limits.ts).
//
// A connection holds at most `maxInFlight` requests; past that it is not read
// until half have been answered (TCP then holds the terminal back), and it is
// not read either while the terminal is not reading its answers. A connection
// silent for `idleTimeoutMs` with nothing in flight is closed.

import type { Socket } from 'node:net'
import { DELTAS_STREAM_PROTOCOL, FrameReader, FrameWriter, parseStreamRequest } from '../../protocol/deltas-stream.ts'
import type { StreamReply } from '../../protocol/deltas-stream.ts'
import type { Reply } from './http-api.ts'
import type { SessionAppends } from './sessions-http.ts'
import { checkSessionId } from './sessions-http.ts'

export const STREAM_DEFAULTS = { maxInFlight: 1_024, idleTimeoutMs: 300_000 }

// The longest a refusal (a rate limit's 429) is held before it is answered.
const MAX_REFUSAL_HOLD_MS = 1_000

export type DeltasStreamOptions = {
  appends: SessionAppends
  // The HTTP API's rate limits: the connection's address, the frame's size, its session.
  admit: (terminal: string, bytes: number, session: string) => Reply | null
  // A handler threw (a bug): logged; the terminal gets a 500.
  onError: (error: unknown) => void
  // A frame or a connection refused: said once, with the reason.
  onRefused: (terminal: string, reason: string) => void
  // Counts: a connection opened and closed, each answer's status.
  onOpened?: () => void
  onClosed?: () => void
  onAnswered?: (status: number) => void
  maxInFlight?: number
  idleTimeoutMs?: number
}

export function serveDeltasStream (socket: Socket, head: Buffer, remoteAddress: string, options: DeltasStreamOptions): void {
  const maxInFlight = options.maxInFlight ?? STREAM_DEFAULTS.maxInFlight
  const idleTimeoutMs = options.idleTimeoutMs ?? STREAM_DEFAULTS.idleTimeoutMs
  const reader = new FrameReader()
  let inFlight = 0
  let writeBlocked = false
  let broken = false
  const flow = (): void => {
    if (inFlight >= maxInFlight || writeBlocked) socket.pause()
    else if (inFlight <= maxInFlight / 2) socket.resume()
  }
  const writer = new FrameWriter(socket)
  const send = (reply: StreamReply): void => {
    if (socket.destroyed || !socket.writable) return
    if (!writer.write(reply) && !writeBlocked) {
      writeBlocked = true
      flow()
      socket.once('drain', () => { writeBlocked = false; flow() })
    }
  }
  const answer = (id: number, reply: Reply): void => {
    const body = (typeof reply.body === 'object' && reply.body !== null ? reply.body : {}) as Record<string, unknown>
    options.onAnswered?.(reply.status)
    const location = reply.headers?.location
    // The wait in ms: the body's when it says (a 429's, a 503's), else the
    // Retry-After header's whole seconds.
    const retryAfter = reply.headers?.['retry-after']
    const retryAfterMs = typeof body.retryAfterMs === 'number' ? body.retryAfterMs : retryAfter === undefined ? undefined : Number(retryAfter) * 1000
    send({ id, status: reply.status, body, ...(location === undefined ? {} : { location }), ...(retryAfterMs === undefined ? {} : { retryAfterMs }) })
  }

  const handle = async (frame: Buffer): Promise<void> => {
    const parsed = parseStreamRequest(frame)
    if (!parsed.ok) {
      options.onRefused(remoteAddress, parsed.error)
      return answer(parsed.id, { status: 400, body: { error: parsed.error } })
    }
    const request = parsed.value
    const refusal = checkSessionId(request.session) ?? options.admit(remoteAddress, request.bytes, request.session)
    if (refusal !== null) {
      if (refusal.delayMs !== undefined && refusal.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(refusal.delayMs ?? 0, MAX_REFUSAL_HOLD_MS)))
      return answer(request.id, refusal)
    }
    let reply: Reply
    try {
      reply = request.batch
        ? await options.appends.batch(request.session, request.token, request.body)
        : await options.appends.delta(request.session, request.token, request.body)
    } catch (error) {
      options.onError(error)
      reply = { status: 500, body: { error: 'internal error' } }
    }
    answer(request.id, reply)
  }

  const onData = (chunk: Buffer): void => {
    if (broken) return
    const { frames, error } = reader.push(chunk)
    for (const frame of frames) {
      inFlight++
      void handle(frame).finally(() => {
        inFlight--
        flow()
      })
    }
    flow()
    if (error !== null) {
      // Past a bad length nothing is a frame boundary any more: say why and close.
      broken = true
      options.onRefused(remoteAddress, error)
      answer(0, { status: 413, body: { error: `${error}; the connection is closed` } })
      socket.end()
    }
  }

  socket.on('data', onData)
  options.onOpened?.()
  socket.on('close', () => { options.onClosed?.() })
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${DELTAS_STREAM_PROTOCOL}\r\nconnection: Upgrade\r\n\r\n`)
  socket.setNoDelay(true)
  // Silent this long (no byte either way) with nothing in flight: closed. With
  // requests in flight it waits: their answers are activity and re-arm it.
  socket.setTimeout(idleTimeoutMs, () => { if (inFlight === 0) socket.end() })
  if (head.length > 0) onData(head)
}
