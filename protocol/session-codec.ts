// Bodies of the session frames (message types 11–21), behind the version and type
// bytes that codec.ts reads and writes. codec.ts checks the frame limit and refuses
// trailing bytes; everything between is here. Readers throw WireError, which
// decode() turns into a refusal; writers throw RangeError for input that a peer
// would refuse, so what encode() produces always decodes.
//
// Layouts, in order (varint: canonical unsigned LEB128, a safe integer; flag: u8 0/1;
// text: length-prefixed UTF-8):
//   session-append        sessionId, epoch, seq, prevIndex, prevEpoch, commitIndex, entries
//   session-append-ack    sessionId, epoch, seq, ok flag, matchIndex, lastIndex
//   session-vote-request  sessionId, epoch, candidate, lastIndex, lastEpoch, commitIndex,
//                         preVote flag
//   session-vote          sessionId, epoch, granted flag, preVote flag, reason, lastIndex,
//                         lastEpoch, commitIndex, tail entries
//   session-snapshot      sessionId, epoch, seq, index, indexEpoch, info, config,
//                         state JSON, dedup
//   session-open          requestId, info, config
//   session-opened        requestId, status, reason, epoch, owner, config
//   session-locate        requestId, sessionId
//   session-location      requestId, sessionId, found flag, epoch, owner, config, tokenHash
//   session-diagnose      sessionId, nonce
//   session-diagnosis     sessionId, nonce, epoch, serving flag, commitIndex
// with
//   entries   count (≤ MAX_SESSION_ENTRIES), then per entry: index, epoch, kind u8,
//             and the kind's fields: 1 create (info, config), 2 delta (clientSeq,
//             op JSON), 3 epoch, 4 config (config), 5 close
//   info      sessionId, service, terminalId, tokenHash, position (as in records)
//   config    members count, member ids, witness presence u8 (+ id)
//   dedup     lastClientSeq, recent count (≤ MAX_DEDUP_RECENT), (clientSeq, index) pairs
//   JSON      text as JSON.stringify writes it; decode accepts any JSON text within
//             the limits (nothing signs or hashes session frames, so the text need
//             not be canonical)
//
// Nothing decoded here is a view of the frame: strings and parsed JSON are fresh
// values, so a retained entry never pins the frame it arrived in.

import { readFlag, Reader, WireError, Writer, writeFlag } from './wire.ts'
import { isPeerId, readId, readPosition, SERVICE_NAME_PATTERN, writeId, writePosition } from './record.ts'
import {
  MAX_DEDUP_RECENT, MAX_GROUP_MEMBERS, MAX_ID_CHARS, MAX_JSON_DEPTH, MAX_OP_BYTES,
  MAX_REASON_CHARS, MAX_SERVICE_NAME_CHARS, MAX_SESSION_ENTRIES, MAX_SESSION_FRAME_BYTES, MAX_SESSION_ID_CHARS,
  MAX_STATE_BYTES, MAX_TERMINAL_ID_CHARS
} from './limits.ts'
import type {
  Dedup, EntryBody, GroupConfig, JsonValue, LogEntry, SessionInfo, SessionMessage,
  SessionSnapshotBody
} from './messages.ts'

export type SessionTypeName = SessionMessage['type']

// ---------------------------------------------------------------- dispatch

export function writeSessionBody (w: Writer, m: SessionMessage): void {
  switch (m.type) {
    case 'session-append':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      w.varint(m.seq)
      w.varint(m.prevIndex)
      w.varint(m.prevEpoch)
      w.varint(m.commitIndex)
      writeEntries(w, m.entries, 'entries', appendRule(m.sessionId, m.prevIndex, m.prevEpoch, m.epoch))
      return
    case 'session-append-ack':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      w.varint(m.seq)
      writeFlag(w, m.ok, 'ok')
      w.varint(m.matchIndex)
      w.varint(m.lastIndex)
      return
    case 'session-vote-request':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      writeId(w, m.candidate, 'candidate')
      w.varint(m.lastIndex)
      w.varint(m.lastEpoch)
      w.varint(m.commitIndex)
      writeFlag(w, m.preVote, 'preVote')
      return
    case 'session-vote':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      writeFlag(w, m.granted, 'granted')
      writeFlag(w, m.preVote, 'preVote')
      writeText(w, m.reason, REASON, 'reason', true)
      w.varint(m.lastIndex)
      w.varint(m.lastEpoch)
      w.varint(m.commitIndex)
      writeEntries(w, m.tail, 'tail', tailRule(m.sessionId))
      return
    case 'session-snapshot':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      w.varint(m.seq)
      writeSnapshotBody(w, m.snapshot, m.sessionId, m.epoch)
      return
    case 'session-open':
      w.varint(m.requestId)
      writeInfo(w, m.info, 'info')
      writeConfig(w, m.config, 'config', false)
      return
    case 'session-opened':
      w.varint(m.requestId)
      if (!isHttpStatus(m.status)) throw new RangeError(`status ${m.status} is outside ${MIN_STATUS}..${MAX_STATUS}`)
      w.varint(m.status)
      writeText(w, m.reason, REASON, 'reason', true)
      w.varint(m.epoch)
      writeOwner(w, m.owner, 'owner')
      writeConfig(w, m.config, 'config', !isSuccess(m.status))
      return
    case 'session-locate':
      w.varint(m.requestId)
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      return
    case 'session-location':
      w.varint(m.requestId)
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      writeFlag(w, m.found, 'found')
      w.varint(m.epoch)
      writeOwner(w, m.owner, 'owner')
      writeConfig(w, m.config, 'config', !m.found)
      writeText(w, m.tokenHash, TOKEN_HASH, 'tokenHash', !m.found)
      return
    case 'session-diagnose':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.nonce)
      return
    case 'session-diagnosis':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.nonce)
      w.varint(m.epoch)
      writeFlag(w, m.serving, 'serving')
      w.varint(m.commitIndex)
      return
  }
}

export function readSessionBody (r: Reader, type: SessionTypeName): SessionMessage {
  switch (type) {
    case 'session-append': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const seq = r.varint('seq')
      const prevIndex = r.varint('prevIndex')
      const prevEpoch = r.varint('prevEpoch')
      const commitIndex = r.varint('commitIndex')
      const entries = readEntries(r, 'entries', appendRule(sessionId, prevIndex, prevEpoch, epoch))
      return { type, sessionId, epoch, seq, prevIndex, prevEpoch, commitIndex, entries }
    }
    case 'session-append-ack': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const seq = r.varint('seq')
      const ok = readFlag(r, 'ok')
      const matchIndex = r.varint('matchIndex')
      return { type, sessionId, epoch, seq, ok, matchIndex, lastIndex: r.varint('lastIndex') }
    }
    case 'session-vote-request': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const candidate = readId(r, 'candidate')
      const lastIndex = r.varint('lastIndex')
      const lastEpoch = r.varint('lastEpoch')
      const commitIndex = r.varint('commitIndex')
      return { type, sessionId, epoch, candidate, lastIndex, lastEpoch, commitIndex, preVote: readFlag(r, 'preVote') }
    }
    case 'session-vote': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const granted = readFlag(r, 'granted')
      const preVote = readFlag(r, 'preVote')
      const reason = readText(r, REASON, 'reason', true)
      const lastIndex = r.varint('lastIndex')
      const lastEpoch = r.varint('lastEpoch')
      const commitIndex = r.varint('commitIndex')
      const tail = readEntries(r, 'tail', tailRule(sessionId))
      return { type, sessionId, epoch, granted, preVote, reason, lastIndex, lastEpoch, commitIndex, tail }
    }
    case 'session-snapshot': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const seq = r.varint('seq')
      return { type, sessionId, epoch, seq, snapshot: readSnapshotBody(r, sessionId, epoch) }
    }
    case 'session-open': {
      const requestId = r.varint('requestId')
      const info = readInfo(r, 'info')
      return { type, requestId, info, config: readConfig(r, 'config', false) }
    }
    case 'session-opened': {
      const requestId = r.varint('requestId')
      const status = r.varint('status')
      if (!isHttpStatus(status)) throw new WireError(`status ${status} is outside ${MIN_STATUS}..${MAX_STATUS}`)
      const reason = readText(r, REASON, 'reason', true)
      const epoch = r.varint('epoch')
      const owner = readOwner(r, 'owner')
      return { type, requestId, status, reason, epoch, owner, config: readConfig(r, 'config', !isSuccess(status)) }
    }
    case 'session-locate': {
      const requestId = r.varint('requestId')
      return { type, requestId, sessionId: readText(r, SESSION_ID, 'sessionId') }
    }
    case 'session-location': {
      const requestId = r.varint('requestId')
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const found = readFlag(r, 'found')
      const epoch = r.varint('epoch')
      const owner = readOwner(r, 'owner')
      const config = readConfig(r, 'config', !found)
      const tokenHash = readText(r, TOKEN_HASH, 'tokenHash', !found)
      return { type, requestId, sessionId, found, epoch, owner, config, tokenHash }
    }
    case 'session-diagnose': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      return { type, sessionId, nonce: r.varint('nonce') }
    }
    case 'session-diagnosis': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const nonce = r.varint('nonce')
      const epoch = r.varint('epoch')
      const serving = readFlag(r, 'serving')
      return { type, sessionId, nonce, epoch, serving, commitIndex: r.varint('commitIndex') }
    }
  }
}

// ---------------------------------------------------------------- text fields

// Every pattern is ASCII-only, so a rule's character limit is also its byte limit.
type TextRule = { maxChars: number; pattern: RegExp; refusal: string }

const SESSION_ID: TextRule = {
  maxChars: MAX_SESSION_ID_CHARS, pattern: /^[A-Za-z0-9._:-]+$/, refusal: 'has characters outside [A-Za-z0-9._:-]'
}
const TERMINAL_ID: TextRule = { maxChars: MAX_TERMINAL_ID_CHARS, pattern: /^[\x21-\x7e]+$/, refusal: 'is not printable ASCII' }
const SERVICE: TextRule = { maxChars: MAX_SERVICE_NAME_CHARS, pattern: SERVICE_NAME_PATTERN, refusal: 'is not a valid service name' }
// A SHA-256 in lowercase hex: one spelling per hash, so comparing strings compares hashes.
const TOKEN_HASH_CHARS = 64
const TOKEN_HASH: TextRule = { maxChars: TOKEN_HASH_CHARS, pattern: /^[0-9a-f]{64}$/, refusal: 'is not 64 lowercase hex characters' }
// Prose for logs and HTTP answers: spaces allowed, control characters not.
const REASON: TextRule = { maxChars: MAX_REASON_CHARS, pattern: /^[\x20-\x7e]*$/, refusal: 'is not printable ASCII' }

// `emptyAllowed`: '' is a value of its own (no reason; no token hash when not found).
function textProblem (text: unknown, rule: TextRule, emptyAllowed: boolean): string | null {
  if (typeof text !== 'string') return 'is not a string'
  if (text === '') return emptyAllowed ? null : 'is empty'
  if (text.length > rule.maxChars) return `of ${text.length} characters exceeds the ${rule.maxChars}-character limit`
  return rule.pattern.test(text) ? null : rule.refusal
}

function readText (r: Reader, rule: TextRule, field: string, emptyAllowed = false): string {
  const text = r.string(rule.maxChars, field)
  const problem = textProblem(text, rule, emptyAllowed)
  if (problem !== null) throw new WireError(`${field} ${problem}`)
  return text
}

function writeText (w: Writer, text: string, rule: TextRule, field: string, emptyAllowed = false): void {
  const problem = textProblem(text, rule, emptyAllowed)
  if (problem !== null) throw new RangeError(`${field} ${problem}`)
  w.string(text, rule.maxChars)
}

// An owner is a peer id, or '' when the sender does not know one (a refused open, a
// location answered by a member that has lost track of the owner).
function readOwner (r: Reader, field: string): string {
  const id = r.string(MAX_ID_CHARS, field)
  if (id !== '' && !isPeerId(id)) throw new WireError(`${field} has characters outside [A-Za-z0-9._-]`)
  return id
}

function writeOwner (w: Writer, id: string, field: string): void {
  if (id === '') w.string('', 0)
  else writeId(w, id, field)
}

// ---------------------------------------------------------------- numbers

const MIN_STATUS = 100
const MAX_STATUS = 599

function isHttpStatus (status: number): boolean {
  return Number.isSafeInteger(status) && status >= MIN_STATUS && status <= MAX_STATUS
}

// A 2xx answer names a group; any other may carry an empty one.
function isSuccess (status: number): boolean {
  return status >= 200 && status <= 299
}

// ---------------------------------------------------------------- info, config, dedup

function readInfo (r: Reader, field: string): SessionInfo {
  const sessionId = readText(r, SESSION_ID, `${field}.sessionId`)
  const service = readText(r, SERVICE, `${field}.service`)
  const terminalId = readText(r, TERMINAL_ID, `${field}.terminalId`)
  const tokenHash = readText(r, TOKEN_HASH, `${field}.tokenHash`)
  return { sessionId, service, terminalId, tokenHash, position: readPosition(r, `${field}.position`) }
}

function writeInfo (w: Writer, info: SessionInfo, field: string): void {
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
function readConfig (r: Reader, field: string, emptyAllowed: boolean): GroupConfig {
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

function writeConfig (w: Writer, config: GroupConfig, field: string, emptyAllowed: boolean): void {
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

function readSnapshotBody (r: Reader, sessionId: string, epoch: number): SessionSnapshotBody {
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

function writeSnapshotBody (w: Writer, s: SessionSnapshotBody, sessionId: string, epoch: number): void {
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

// ---------------------------------------------------------------- log entries

// Wire codes of entry kinds: part of the protocol, only append.
const KIND_CREATE = 1
const KIND_DELTA = 2
const KIND_EPOCH = 3
const KIND_CONFIG = 4
const KIND_CLOSE = 5

// What a list of entries must satisfy besides consecutive indexes and
// non-decreasing epochs (true of any log). `firstIndex` is ANY_INDEX when the
// list may start anywhere (a vote's tail); an append continues from prevIndex.
type EntryRule = { sessionId: string; firstIndex: number; minEpoch: number; maxEpoch: number }
const ANY_INDEX = 0

// An append carries the entries right after (prevIndex, prevEpoch), all written in
// epochs no later than the owner's own.
function appendRule (sessionId: string, prevIndex: number, prevEpoch: number, epoch: number): EntryRule {
  return { sessionId, firstIndex: prevIndex + 1, minEpoch: prevEpoch, maxEpoch: epoch }
}

function tailRule (sessionId: string): EntryRule {
  return { sessionId, firstIndex: ANY_INDEX, minEpoch: 0, maxEpoch: Number.MAX_SAFE_INTEGER }
}

// Why an entry at (index, epoch) cannot come next, or null. `expectIndex` and
// `minEpoch` follow the previous entry (or the rule, for the first).
function orderProblem (index: number, epoch: number, expectIndex: number, minEpoch: number, maxEpoch: number, first: boolean): string | null {
  if (index < 1) return `index ${index} is below 1`
  if (expectIndex !== ANY_INDEX && index !== expectIndex) {
    return first ? `index ${index} is not prevIndex + 1 (${expectIndex})` : `index ${index} is not ${expectIndex}: indexes must be consecutive`
  }
  if (epoch < minEpoch) {
    return first ? `epoch ${epoch} is below prevEpoch ${minEpoch}` : `epoch ${epoch} is below the previous entry's epoch ${minEpoch}`
  }
  if (epoch > maxEpoch) return `epoch ${epoch} is above the message epoch ${maxEpoch}`
  return null
}

// Index 1 of every session is its create entry, and only index 1.
function kindProblem (index: number, isCreate: boolean): string | null {
  if (isCreate && index !== 1) return `create entry at index ${index} (only index 1 creates)`
  if (!isCreate && index === 1) return 'index 1 is not a create entry'
  return null
}

// One try around the loop, not one per entry: the hot path of an append is a few
// hundred small deltas, and `i` still names the entry a refusal came from.
function readEntries (r: Reader, field: string, rule: EntryRule): LogEntry[] {
  const count = r.count(MAX_SESSION_ENTRIES, field)
  const entries: LogEntry[] = []
  let expectIndex = rule.firstIndex
  let minEpoch = rule.minEpoch
  let i = 0
  try {
    for (; i < count; i++) {
      const index = r.varint('index')
      const epoch = r.varint('epoch')
      const problem = orderProblem(index, epoch, expectIndex, minEpoch, rule.maxEpoch, i === 0)
      if (problem !== null) throw new WireError(problem)
      entries.push({ index, epoch, body: readEntryBody(r, index, rule.sessionId) })
      expectIndex = index + 1
      minEpoch = epoch
    }
  } catch (error) {
    if (error instanceof WireError) throw new WireError(`${field}[${i}]: ${error.message}`)
    throw error
  }
  return entries
}

function readEntryBody (r: Reader, index: number, sessionId: string): EntryBody {
  const kind = r.u8('kind')
  if (kind < KIND_CREATE || kind > KIND_CLOSE) throw new WireError(`entry kind ${kind} is unknown`)
  const problem = kindProblem(index, kind === KIND_CREATE)
  if (problem !== null) throw new WireError(problem)
  switch (kind) {
    case KIND_DELTA: {
      const clientSeq = r.varint('clientSeq')
      return { kind: 'delta', clientSeq, op: readJson(r, MAX_OP_BYTES, 'op') }
    }
    case KIND_CREATE: {
      const info = readInfo(r, 'info')
      if (info.sessionId !== sessionId) throw new WireError('info.sessionId differs from sessionId')
      return { kind: 'create', info, config: readConfig(r, 'config', false) }
    }
    case KIND_EPOCH:
      return { kind: 'epoch' }
    case KIND_CONFIG:
      return { kind: 'config', config: readConfig(r, 'config', false) }
    default:
      return { kind: 'close' }
  }
}

function writeEntries (w: Writer, entries: readonly LogEntry[], field: string, rule: EntryRule): void {
  if (!Array.isArray(entries)) throw new RangeError(`${field} is not an array`)
  if (entries.length > MAX_SESSION_ENTRIES) throw new RangeError(`${field} count ${entries.length} exceeds the limit of ${MAX_SESSION_ENTRIES}`)
  w.varint(entries.length)
  let expectIndex = rule.firstIndex
  let minEpoch = rule.minEpoch
  let i = 0
  try {
    for (; i < entries.length; i++) {
      const { index, epoch, body } = entries[i]
      w.varint(index)
      w.varint(epoch)
      const problem = orderProblem(index, epoch, expectIndex, minEpoch, rule.maxEpoch, i === 0)
      if (problem !== null) throw new RangeError(problem)
      writeEntryBody(w, body, index, rule.sessionId)
      // Stop early rather than build hundreds of MiB only to refuse the frame after.
      if (w.length > MAX_SESSION_FRAME_BYTES) throw new RangeError(`frame passes the ${MAX_SESSION_FRAME_BYTES}-byte limit`)
      expectIndex = index + 1
      minEpoch = epoch
    }
  } catch (error) {
    if (error instanceof RangeError) throw new RangeError(`${field}[${i}]: ${error.message}`)
    throw error
  }
}

function writeEntryBody (w: Writer, body: EntryBody, index: number, sessionId: string): void {
  const problem = kindProblem(index, body.kind === 'create')
  if (problem !== null) throw new RangeError(problem)
  switch (body.kind) {
    case 'delta':
      w.u8(KIND_DELTA)
      w.varint(body.clientSeq)
      writeJson(w, body.op, MAX_OP_BYTES, 'op')
      return
    case 'create':
      if (body.info.sessionId !== sessionId) throw new RangeError('info.sessionId differs from sessionId')
      w.u8(KIND_CREATE)
      writeInfo(w, body.info, 'info')
      writeConfig(w, body.config, 'config', false)
      return
    case 'epoch':
      w.u8(KIND_EPOCH)
      return
    case 'config':
      w.u8(KIND_CONFIG)
      writeConfig(w, body.config, 'config', false)
      return
    case 'close':
      w.u8(KIND_CLOSE)
      return
    default:
      throw new RangeError(`entry kind ${String((body as { kind: unknown }).kind)} is unknown`)
  }
}

// ---------------------------------------------------------------- JSON

// Depth counts enclosing arrays and objects: a scalar is 0 deep, [] is 1, [[]] 2.
//
// decode scans the text before JSON.parse: V8 parses a 16 MiB run of '[' without
// overflowing its stack, but it takes seconds and builds millions of arrays, so a
// nesting bomb is refused from the text alone, in one pass that allocates nothing.
// The same pass notices numbers that could have overflowed to ±Infinity ('1e400',
// 309 or more digits in a row); only then is the parsed value walked to check.
const JSON_PLAIN = 0
const JSON_CHECK_NUMBERS = 1
const JSON_TOO_DEEP = 2
// 10^308 has 309 digits and is finite, 10^309 is not: a shorter run of digits
// without an exponent cannot overflow.
const OVERFLOW_DIGITS = 309

function scanJson (text: string): number {
  let verdict = JSON_PLAIN
  let depth = 0
  let digits = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: the next character is escaped
      else if (c === 0x22) inString = false
      continue
    }
    if (c >= 0x30 && c <= 0x39) {
      if (++digits >= OVERFLOW_DIGITS) verdict = JSON_CHECK_NUMBERS
      continue
    }
    // 'e' right after a digit is an exponent; in true and false it follows a letter.
    if ((c === 0x65 || c === 0x45) && digits > 0) verdict = JSON_CHECK_NUMBERS
    digits = 0
    if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) { if (++depth > MAX_JSON_DEPTH) return JSON_TOO_DEEP }
    else if (c === 0x5d || c === 0x7d) depth--
  }
  return verdict
}

function readJson (r: Reader, maxBytes: number, field: string): JsonValue {
  const text = r.string(maxBytes, field)
  const scan = scanJson(text)
  if (scan === JSON_TOO_DEEP) throw new WireError(`${field} nests deeper than ${MAX_JSON_DEPTH} levels`)
  let value: JsonValue
  try {
    value = JSON.parse(text)
  } catch {
    throw new WireError(`${field} is not valid JSON`)
  }
  if (scan === JSON_CHECK_NUMBERS) {
    const problem = jsonProblem(value, maxBytes)
    if (problem !== null) throw new WireError(`${field} ${problem}`)
  }
  return value
}

// The walk refuses what JSON.stringify would drop or rewrite (undefined, functions,
// NaN and ±Infinity as null, class instances through toJSON), so that peers receive
// the value the sender holds.
function writeJson (w: Writer, value: JsonValue, maxBytes: number, field: string): void {
  const problem = jsonProblem(value, maxBytes)
  if (problem !== null) throw new RangeError(`${field} ${problem}`)
  const text = JSON.stringify(value)
  if (typeof text !== 'string') throw new RangeError(`${field} has no JSON form`)
  try {
    w.string(text, maxBytes)
  } catch (error) {
    if (error instanceof RangeError) throw new RangeError(`${field}: ${error.message}`)
    throw error
  }
}

// The walk's work list, reused across calls: containers still to visit and their
// depths, as a stack below walkTop. Slots are cleared as they are popped (and all of
// them when a walk stops early), so the list never keeps a value alive; its length
// is never reset, so a walk allocates nothing once the list has grown.
const walkNodes: Array<object | null> = []
const walkDepths: number[] = []
let walkTop = 0

// Why `root` is not a JSON value within MAX_JSON_DEPTH, or null. Iterative, so no
// value overflows the stack. It stops after `maxValues` values: each takes at least
// one byte of text, and a value that shares sub-objects cannot make it run long.
function jsonProblem (root: unknown, maxValues: number): string | null {
  walkTop = 0
  let problem = visitJson(root, 0)
  let values = 1
  while (problem === null && walkTop > 0) {
    walkTop--
    const node = walkNodes[walkTop] as Record<string, unknown>
    const depth = walkDepths[walkTop]
    walkNodes[walkTop] = null
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length && problem === null; i++) problem = visitJson(node[i], depth)
      values += node.length
    } else {
      for (const key in node) {
        problem = visitJson(node[key], depth)
        values++
        if (problem !== null) break
      }
    }
    if (problem === null && values > maxValues) problem = `has more than ${maxValues} values`
  }
  while (walkTop > 0) walkNodes[--walkTop] = null
  return problem
}

// Checks a scalar in place; queues a container for the walk.
function visitJson (value: unknown, parentDepth: number): string | null {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return null
    case 'number':
      return Number.isFinite(value) ? null : `has a non-finite number ${value}`
    case 'object': {
      if (value === null) return null
      if (parentDepth >= MAX_JSON_DEPTH) return `nests deeper than ${MAX_JSON_DEPTH} levels`
      if (!Array.isArray(value)) {
        const proto: unknown = Object.getPrototypeOf(value)
        if (proto !== Object.prototype && proto !== null) return 'has an object that is not a plain object'
      }
      walkNodes[walkTop] = value
      walkDepths[walkTop] = parentDepth + 1
      walkTop++
      return null
    }
    default:
      return `has a value of type ${typeof value}`
  }
}
