// Field codecs of the session frames (protocol/session-codec.ts): text fields,
// statuses, session info, group config, dedup and snapshot bodies. Readers throw
// WireError; writers throw RangeError for what a peer would refuse.

import { Reader, WireError, Writer, readFlag } from './wire.ts'
import { SERVICE_NAME_PATTERN, isPeerId, readId, readPosition, writeId, writePosition } from './record.ts'
import { MAX_DEDUP_RECENT, MAX_GROUP_MEMBERS, MAX_ID_CHARS, MAX_REASON_CHARS, MAX_SERVICE_NAME_CHARS, MAX_SESSION_ID_CHARS, MAX_STATE_BYTES, MAX_TERMINAL_ID_CHARS } from './limits.ts'
import type { Dedup, GroupConfig, SessionInfo, SessionSnapshotBody } from './messages.ts'
import { readJson, writeJson } from './session-json.ts'

// ---------------------------------------------------------------- text fields

// Every pattern is ASCII-only, so a rule's character limit is also its byte limit.
type TextRule = { maxChars: number; pattern: RegExp; refusal: string }

export const SESSION_ID: TextRule = {
  maxChars: MAX_SESSION_ID_CHARS, pattern: /^[A-Za-z0-9._:-]+$/, refusal: 'has characters outside [A-Za-z0-9._:-]'
}
const TERMINAL_ID: TextRule = { maxChars: MAX_TERMINAL_ID_CHARS, pattern: /^[\x21-\x7e]+$/, refusal: 'is not printable ASCII' }
const SERVICE: TextRule = { maxChars: MAX_SERVICE_NAME_CHARS, pattern: SERVICE_NAME_PATTERN, refusal: 'is not a valid service name' }
// A SHA-256 in lowercase hex: one spelling per hash, so comparing strings compares hashes.
const TOKEN_HASH_CHARS = 64
export const TOKEN_HASH: TextRule = { maxChars: TOKEN_HASH_CHARS, pattern: /^[0-9a-f]{64}$/, refusal: 'is not 64 lowercase hex characters' }
// Prose for logs and HTTP answers: spaces allowed, control characters not.
export const REASON: TextRule = { maxChars: MAX_REASON_CHARS, pattern: /^[\x20-\x7e]*$/, refusal: 'is not printable ASCII' }

// `emptyAllowed`: '' is a value of its own (no reason; no token hash when not found).
function textProblem (text: unknown, rule: TextRule, emptyAllowed: boolean): string | null {
  if (typeof text !== 'string') return 'is not a string'
  if (text === '') return emptyAllowed ? null : 'is empty'
  if (text.length > rule.maxChars) return `of ${text.length} characters exceeds the ${rule.maxChars}-character limit`
  return rule.pattern.test(text) ? null : rule.refusal
}

export function readText (r: Reader, rule: TextRule, field: string, emptyAllowed = false): string {
  const text = r.string(rule.maxChars, field)
  const problem = textProblem(text, rule, emptyAllowed)
  if (problem !== null) throw new WireError(`${field} ${problem}`)
  return text
}

export function writeText (w: Writer, text: string, rule: TextRule, field: string, emptyAllowed = false): void {
  const problem = textProblem(text, rule, emptyAllowed)
  if (problem !== null) throw new RangeError(`${field} ${problem}`)
  w.string(text, rule.maxChars)
}

// An owner is a peer id, or '' when the sender does not know one (a refused open, a
// location answered by a member that has lost track of the owner).
export function readOwner (r: Reader, field: string): string {
  const id = r.string(MAX_ID_CHARS, field)
  if (id !== '' && !isPeerId(id)) throw new WireError(`${field} has characters outside [A-Za-z0-9._-]`)
  return id
}

export function writeOwner (w: Writer, id: string, field: string): void {
  if (id === '') w.string('', 0)
  else writeId(w, id, field)
}

// ---------------------------------------------------------------- numbers

export const MIN_STATUS = 100
export const MAX_STATUS = 599

export function isHttpStatus (status: number): boolean {
  return Number.isSafeInteger(status) && status >= MIN_STATUS && status <= MAX_STATUS
}

// A 2xx answer names a group; any other may carry an empty one.
export function isSuccess (status: number): boolean {
  return status >= 200 && status <= 299
}

// ---------------------------------------------------------------- info, config, dedup

export function readInfo (r: Reader, field: string): SessionInfo {
  const sessionId = readText(r, SESSION_ID, `${field}.sessionId`)
  const service = readText(r, SERVICE, `${field}.service`)
  const terminalId = readText(r, TERMINAL_ID, `${field}.terminalId`)
  const tokenHash = readText(r, TOKEN_HASH, `${field}.tokenHash`)
  return { sessionId, service, terminalId, tokenHash, position: readPosition(r, `${field}.position`) }
}

export function writeInfo (w: Writer, info: SessionInfo, field: string): void {
  writeText(w, info.sessionId, SESSION_ID, `${field}.sessionId`)
  writeText(w, info.service, SERVICE, `${field}.service`)
  writeText(w, info.terminalId, TERMINAL_ID, `${field}.terminalId`)
  writeText(w, info.tokenHash, TOKEN_HASH, `${field}.tokenHash`)
  writePosition(w, info.position, `${field}.position`)
}

// Members: 1..MAX_GROUP_MEMBERS distinct peer ids, in priority order. The witness
// votes but holds no data, so it is never also a member. `emptyAllowed`: the
// negative answers (a refused open, a session not found) carry an empty group,
// { members: [], witness: null }.
export function readConfig (r: Reader, field: string, emptyAllowed: boolean): GroupConfig {
  const count = r.count(MAX_GROUP_MEMBERS, `${field}.members`)
  if (count === 0 && !emptyAllowed) throw new WireError(`${field}.members is empty`)
  const members: string[] = []
  for (let i = 0; i < count; i++) {
    const id = readId(r, `${field}.members[${i}]`)
    if (members.includes(id)) throw new WireError(`${field}.members[${i}] ${id} is a duplicate`)
    members.push(id)
  }
  if (!readFlag(r, `${field}.witness presence`)) return { members, witness: null }
  if (count === 0) throw new WireError(`${field}.witness is set in an empty group`)
  const witness = readId(r, `${field}.witness`)
  if (members.includes(witness)) throw new WireError(`${field}.witness ${witness} is also a member`)
  return { members, witness }
}

export function writeConfig (w: Writer, config: GroupConfig, field: string, emptyAllowed: boolean): void {
  const { members, witness } = config
  if (!Array.isArray(members)) throw new RangeError(`${field}.members is not an array`)
  if (members.length > MAX_GROUP_MEMBERS) throw new RangeError(`${field}.members count ${members.length} exceeds the limit of ${MAX_GROUP_MEMBERS}`)
  if (members.length === 0 && !emptyAllowed) throw new RangeError(`${field}.members is empty`)
  w.varint(members.length)
  for (let i = 0; i < members.length; i++) {
    writeId(w, members[i], `${field}.members[${i}]`)
    if (members.indexOf(members[i]) !== i) throw new RangeError(`${field}.members[${i}] ${members[i]} is a duplicate`)
  }
  if (witness === null) { w.u8(0); return }
  if (members.length === 0) throw new RangeError(`${field}.witness is set in an empty group`)
  if (members.includes(witness)) throw new RangeError(`${field}.witness ${witness} is also a member`)
  w.u8(1)
  writeId(w, witness, `${field}.witness`)
}

// Recent pairs are in the order they were applied: clientSeq strictly increasing,
// none above lastClientSeq, each at a log index the snapshot covers.
function recentProblem (clientSeq: number, index: number, previous: number, dedup: Dedup, snapshotIndex: number): string | null {
  if (clientSeq <= previous) return `clientSeq ${clientSeq} does not increase`
  if (clientSeq > dedup.lastClientSeq) return `clientSeq ${clientSeq} is above lastClientSeq ${dedup.lastClientSeq}`
  if (index < 1 || index > snapshotIndex) return `index ${index} is outside 1..${snapshotIndex}`
  return null
}

function readDedup (r: Reader, snapshotIndex: number): Dedup {
  const dedup: Dedup = { lastClientSeq: r.varint('snapshot.dedup.lastClientSeq'), recent: [] }
  const count = r.count(MAX_DEDUP_RECENT, 'snapshot.dedup.recent')
  let previous = -1
  for (let i = 0; i < count; i++) {
    const clientSeq = r.varint('snapshot.dedup.recent.clientSeq')
    const index = r.varint('snapshot.dedup.recent.index')
    const problem = recentProblem(clientSeq, index, previous, dedup, snapshotIndex)
    if (problem !== null) throw new WireError(`snapshot.dedup.recent[${i}] ${problem}`)
    dedup.recent.push([clientSeq, index])
    previous = clientSeq
  }
  return dedup
}

function writeDedup (w: Writer, dedup: Dedup, snapshotIndex: number): void {
  const recent = dedup.recent
  w.varint(dedup.lastClientSeq)
  if (recent.length > MAX_DEDUP_RECENT) throw new RangeError(`snapshot.dedup.recent count ${recent.length} exceeds the limit of ${MAX_DEDUP_RECENT}`)
  w.varint(recent.length)
  let previous = -1
  for (let i = 0; i < recent.length; i++) {
    const [clientSeq, index] = recent[i]
    w.varint(clientSeq)
    w.varint(index)
    const problem = recentProblem(clientSeq, index, previous, dedup, snapshotIndex)
    if (problem !== null) throw new RangeError(`snapshot.dedup.recent[${i}] ${problem}`)
    previous = clientSeq
  }
}

// The snapshot covers index ≥ 1 (the create entry at least), was written in an
// epoch no later than the sender's, and describes the session the frame names.
function snapshotProblem (index: number, indexEpoch: number, epoch: number): string | null {
  if (index < 1) return `snapshot.index ${index} is below 1`
  if (indexEpoch > epoch) return `snapshot.indexEpoch ${indexEpoch} is above the message epoch ${epoch}`
  return null
}

export function readSnapshotBody (r: Reader, sessionId: string, epoch: number): SessionSnapshotBody {
  const index = r.varint('snapshot.index')
  const indexEpoch = r.varint('snapshot.indexEpoch')
  const problem = snapshotProblem(index, indexEpoch, epoch)
  if (problem !== null) throw new WireError(problem)
  const info = readInfo(r, 'snapshot.info')
  if (info.sessionId !== sessionId) throw new WireError('snapshot.info.sessionId differs from sessionId')
  const config = readConfig(r, 'snapshot.config', false)
  const state = readJson(r, MAX_STATE_BYTES, 'snapshot.state')
  return { index, indexEpoch, info, config, state, dedup: readDedup(r, index) }
}

export function writeSnapshotBody (w: Writer, s: SessionSnapshotBody, sessionId: string, epoch: number): void {
  w.varint(s.index)
  w.varint(s.indexEpoch)
  const problem = snapshotProblem(s.index, s.indexEpoch, epoch)
  if (problem !== null) throw new RangeError(problem)
  if (s.info.sessionId !== sessionId) throw new RangeError('snapshot.info.sessionId differs from sessionId')
  writeInfo(w, s.info, 'snapshot.info')
  writeConfig(w, s.config, 'snapshot.config', false)
  writeJson(w, s.state, MAX_STATE_BYTES, 'snapshot.state')
  writeDedup(w, s.dedup, s.index)
}
