// Rate limits on the HTTP API, checked before a request is routed or its body
// read: one token bucket per terminal (its IP address) for requests and one for
// body bytes, and the same two per session (the session id a request names).
// Over a limit: 429 with Retry-After and a sentence saying which limit, and the
// refusal is counted. Nothing of a refused request reaches the sessions core, so
// retrying it (same clientSeq) is always safe.

import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import { BucketMap } from '../core/token-bucket.ts'
import type { TerminalLimits } from '../config.ts'
import type { Reply } from './http-api.ts'

// Terminals and sessions tracked at once; beyond it, idle buckets are dropped.
const TRACKED_KEYS = 100_000
// A refusal is held, and its retry advised, for at least this long: a client that
// ignores Retry-After and asks again at once is then held to a few requests per
// second per connection, so refusing it costs next to nothing. At most 1 s.
const MIN_HOLD_MS = 250
const MAX_HOLD_MS = 1_000
const SESSION_PATH = /^\/v1\/sessions\/([^/]+)(?:\/deltas|\/batch)?$/

export type LimitName = 'terminal-requests' | 'terminal-bytes' | 'session-requests' | 'session-bytes'

export class HttpLimits {
  readonly #limits: TerminalLimits
  readonly #buckets: Record<LimitName, BucketMap>
  readonly #onExceeded: (limit: LimitName) => void

  constructor (limits: TerminalLimits, onExceeded: (limit: LimitName) => void) {
    this.#limits = limits
    this.#onExceeded = onExceeded
    const bucket = (ratePerS: number): BucketMap => new BucketMap({ ratePerS, burst: 2 * ratePerS }, TRACKED_KEYS)
    this.#buckets = {
      'terminal-requests': bucket(limits.terminalRequestsPerS),
      'terminal-bytes': bucket(limits.terminalBytesPerS),
      'session-requests': bucket(limits.sessionRequestsPerS),
      'session-bytes': bucket(limits.sessionBytesPerS)
    }
  }

  // null admits the request; a Reply (429) refuses it.
  admit (request: IncomingMessage, url: URL, nowMs = performance.now()): Reply | null {
    const terminal = request.socket.remoteAddress ?? 'unknown'
    const bytes = Math.max(0, Number(request.headers['content-length'] ?? 0) || 0)
    return this.admitParts(terminal, bytes, sessionOf(request, url), nowMs)
  }

  // The same check for a request that came another way (a deltas-stream frame:
  // its connection's address, its size, the session it names).
  admitParts (terminal: string, bytes: number, session: string | null, nowMs = performance.now()): Reply | null {
    // A loopback client is a process on this box: a local proxy fronting many
    // terminals (one address for all of them) or a co-located service. Only its
    // sessions' limits apply.
    const checks: Array<[LimitName, string, number]> = isLoopback(terminal) ? [] : [['terminal-requests', terminal, 1], ['terminal-bytes', terminal, bytes]]
    if (session !== null) checks.push(['session-requests', session, 1], ['session-bytes', session, bytes])
    for (const [limit, key, cost] of checks) {
      if (cost === 0) continue
      const taken = this.#buckets[limit].take(key, cost, nowMs)
      if (!taken.ok) return this.#refuse(limit, key, taken.waitMs)
    }
    return null
  }

  // A read's answer, charged to its session's byte budget once its size is
  // known: a session's state is read back whole, so 600 concurrent reads of a
  // 1 MB state sent 600 MB, stalled the owner 7 s (its lease ran out and its
  // group took the session over) while the request limit let 400 of them in.
  // A state larger than the burst costs the whole burst, so it can still be read,
  // once per burst's worth of time. null when the budget covers it, else 429.
  chargeRead (session: string, bytes: number, nowMs = performance.now()): Reply | null {
    const cost = Math.min(bytes, 2 * this.#limits.sessionBytesPerS)
    const taken = this.#buckets['session-bytes'].take(session, cost, nowMs)
    return taken.ok ? null : this.#refuse('session-bytes', session, taken.waitMs)
  }

  #refuse (limit: LimitName, key: string, waitMs: number): Reply {
    this.#onExceeded(limit)
    const [who, what] = limit.split('-') as ['terminal' | 'session', 'requests' | 'bytes']
    const setting = `${who}${what === 'requests' ? 'Requests' : 'Bytes'}PerS`
    const rate = this.#limits[setting as keyof TerminalLimits]
    // A body larger than the whole burst can never pass: 413, not "retry later".
    if (!Number.isFinite(waitMs)) {
      return { status: 413, body: { error: `request body larger than the ${who}'s burst of ${2 * rate} bytes (limits.${setting} = ${rate})`, limit } }
    }
    const retryAfterMs = Math.min(MAX_HOLD_MS, Math.max(MIN_HOLD_MS, waitMs))
    return {
      status: 429,
      delayMs: retryAfterMs,
      headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) },
      body: { error: `rate limit: ${who} ${key} is over ${rate} ${what === 'requests' ? 'requests' : 'body bytes'}/s (limits.${setting}); retry in ${retryAfterMs} ms`, limit, retryAfterMs }
    }
  }
}

function isLoopback (address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.')
}

// The session a request names: in its path, or, for a resume (POST /v1/sessions
// with a token), in its token ("<sessionId>~<secret>").
function sessionOf (request: IncomingMessage, url: URL): string | null {
  const match = SESSION_PATH.exec(url.pathname)
  if (match !== null) {
    try {
      return decodeURIComponent(match[1])
    } catch {
      return match[1]
    }
  }
  const auth = request.headers.authorization
  if (url.pathname === '/v1/sessions' && typeof auth === 'string') {
    const token = /^Bearer\s+(\S+)$/i.exec(auth)?.[1]
    const id = token?.split('~')[0]
    if (id !== undefined && id !== '') return id
  }
  return null
}
