// Log entries in session frames (protocol/session-codec.ts): kinds, order rules
// and the entry bodies. Readers throw WireError; writers throw RangeError.

import { Reader, WireError, Writer } from './wire.ts'
import { MAX_OP_BYTES, MAX_SESSION_ENTRIES, MAX_SESSION_FRAME_BYTES } from './limits.ts'
import type { EntryBody, LogEntry } from './messages.ts'
import { readConfig, readInfo, writeConfig, writeInfo } from './session-fields.ts'
import { readJson, writeJson } from './session-json.ts'

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
export function appendRule (sessionId: string, prevIndex: number, prevEpoch: number, epoch: number): EntryRule {
  return { sessionId, firstIndex: prevIndex + 1, minEpoch: prevEpoch, maxEpoch: epoch }
}

export function tailRule (sessionId: string): EntryRule {
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
export function readEntries (r: Reader, field: string, rule: EntryRule): LogEntry[] {
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

export function writeEntries (w: Writer, entries: readonly LogEntry[], field: string, rule: EntryRule): void {
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
