// Decoding an agent's answers for the client: every field checked once, here.

import { EdgeClientError } from './types.ts'
import type { AppendResult, GroupMember, OwnerRef, Role, SessionState } from './types.ts'
import type { Exchanged } from './route.ts'

// ---- decoding answers (checked once, here) ------------------------------------

const ROLES = new Set<string>(['owner', 'standby', 'witness'])
// A group is at most MAX_GROUP_MEMBERS plus a witness; anything far larger is not a view.
const MAX_GROUP_VIEW = 64

export function decodeGroup (value: unknown): GroupMember[] | null {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_GROUP_VIEW) return null
  const group: GroupMember[] = []
  for (const item of value) {
    const m = item as Record<string, unknown> | null
    if (typeof m !== 'object' || m === null || typeof m.id !== 'string' || typeof m.http !== 'string' || typeof m.role !== 'string' || !ROLES.has(m.role)) return null
    group.push({ id: m.id, http: m.http, role: m.role as Role })
  }
  return group
}

function decodeOwner (value: unknown): OwnerRef | null {
  const o = value as Record<string, unknown> | null
  if (typeof o !== 'object' || o === null || typeof o.id !== 'string' || typeof o.http !== 'string') return null
  return { id: o.id, http: o.http }
}

function count (body: Record<string, unknown>, key: string): number {
  const value = body[key]
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new TypeError(`"${key}" is not a whole number`)
  return value
}

function text (body: Record<string, unknown>, key: string): string {
  const value = body[key]
  if (typeof value !== 'string' || value === '') throw new TypeError(`"${key}" is not a string`)
  return value
}

export function decoded<T> (what: string, exchanged: Exchanged, decode: (body: Record<string, unknown>) => T): T {
  try {
    return decode(exchanged.reply.body)
  } catch (error) {
    const { reply, agent } = exchanged
    throw new EdgeClientError(`${what}: ${agent} answered ${reply.status} with a malformed body (${(error as Error).message})`, reply.status, null, agent)
  }
}

export function decodeAck (body: Record<string, unknown>): AppendResult {
  return { index: count(body, 'index'), epoch: count(body, 'epoch'), duplicate: body.duplicate === true }
}

// A batch's 200: {epoch, results: [{clientSeq, index, duplicate?}], refused?}.
// The results must be the batch's first ops, in order, at rising indexes.
export function decodeBatch (body: Record<string, unknown>, first: number, sent: number): { results: AppendResult[]; refused: { clientSeq: number; status: number; error: string } | null } {
  const epoch = count(body, 'epoch')
  if (!Array.isArray(body.results) || body.results.length > sent) throw new TypeError('"results" is not a list of at most the ops sent')
  const results = body.results.map((item: unknown, i: number) => {
    const r = item as Record<string, unknown>
    if (typeof r !== 'object' || r === null || r.clientSeq !== first + i) throw new TypeError(`result ${i + 1} is not for clientSeq ${first + i}`)
    return { index: count(r, 'index'), epoch, duplicate: r.duplicate === true }
  })
  for (let i = 1; i < results.length; i++) if (results[i].index <= results[i - 1].index) throw new TypeError('the results\' indexes do not rise')
  const raw = body.refused as Record<string, unknown> | undefined
  if (raw === undefined) {
    if (results.length !== sent) throw new TypeError(`${results.length} results for ${sent} ops and no refusal`)
    return { results, refused: null }
  }
  if (typeof raw !== 'object' || raw === null || raw.clientSeq !== first + results.length || typeof raw.status !== 'number') throw new TypeError('"refused" does not name the op after the results')
  return { results, refused: { clientSeq: raw.clientSeq as number, status: raw.status, error: typeof raw.error === 'string' ? raw.error : 'no reason given' } }
}

export function decodeState (body: Record<string, unknown>): SessionState {
  const group = decodeGroup(body.group)
  return {
    sessionId: text(body, 'sessionId'),
    service: typeof body.service === 'string' ? body.service : '',
    epoch: count(body, 'epoch'),
    index: count(body, 'index'),
    state: body.state,
    lastClientSeq: count(body, 'lastClientSeq'),
    owner: decodeOwner(body.owner),
    group: group ?? [],
    ...(typeof body.serviceVersion === 'string' || body.serviceVersion === null ? { serviceVersion: body.serviceVersion } : {}),
    ...(typeof body.serviceError === 'string' ? { serviceError: body.serviceError } : {})
  }
}

export function decodeOpened (body: Record<string, unknown>): { sessionId: string; token: string; epoch: number; owner: OwnerRef | null; group: GroupMember[] } {
  const sessionId = text(body, 'sessionId')
  const token = text(body, 'token')
  if (sessionIdOf(token) !== sessionId) throw new TypeError('"token" does not belong to "sessionId"')
  const group = decodeGroup(body.group)
  if (group === null) throw new TypeError('"group" is not a list of members')
  return { sessionId, token, epoch: count(body, 'epoch'), owner: decodeOwner(body.owner), group }
}

export function refusal (what: string, exchanged: Exchanged): EdgeClientError {
  const { reply, agent } = exchanged
  const error = typeof reply.body.error === 'string' ? reply.body.error : null
  return new EdgeClientError(`${what}: ${reply.status} ${error ?? 'no reason given'} (${agent})`, reply.status, error, agent)
}

// Tokens are "<sessionId>~<64 hex>".
export function sessionIdOf (token: string): string | null {
  return /^(.+)~[0-9a-f]{64}$/.exec(token)?.[1] ?? null
}
