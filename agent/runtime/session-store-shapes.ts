// What the session store reads back is checked twice: each row's CRC-32 (in
// session-store.ts) catches bits that changed on disk; these shape checks catch
// rows that were written wrong. Parsing never throws: a bad body is `undefined`.

import type { EntryBody, GroupConfig, SessionInfo, SessionSnapshotBody } from '../../protocol/messages.ts'

export function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

type Obj = Record<string, unknown>

function isObject (value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isCount (value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

function isConfig (value: unknown): value is GroupConfig {
  return isObject(value) && Array.isArray(value.members) && value.members.every((m) => typeof m === 'string') &&
    (value.witness === null || typeof value.witness === 'string')
}

function isInfo (value: unknown): value is SessionInfo {
  if (!isObject(value)) return false
  const strings = [value.sessionId, value.service, value.terminalId, value.tokenHash].every((s) => typeof s === 'string')
  const position = value.position
  return strings && (position === null || (isObject(position) && typeof position.lat === 'number' && typeof position.lon === 'number'))
}

export function isEntryBody (value: unknown): value is EntryBody {
  if (!isObject(value)) return false
  switch (value.kind) {
    case 'create': return isInfo(value.info) && isConfig(value.config)
    case 'delta': return Number.isSafeInteger(value.clientSeq) && 'op' in value
    case 'config': return isConfig(value.config)
    case 'epoch':
    case 'close': return true
    default: return false
  }
}

export function isSnapshot (value: unknown): value is SessionSnapshotBody {
  if (!isObject(value) || !isCount(value.index) || !isCount(value.indexEpoch)) return false
  const dedup = value.dedup
  return isInfo(value.info) && isConfig(value.config) && 'state' in value && isObject(dedup) &&
    Number.isSafeInteger(dedup.lastClientSeq) && Array.isArray(dedup.recent)
}
