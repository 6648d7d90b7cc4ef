// Reading the session store back (session-store.ts is the store): every
// session checked whole, rows against their CRC-32, entries consecutive after
// the snapshot, bodies of a known shape; a grave's rows skipped (dead), and any
// other row of no stored session reported as damage.

import type { LogEntry, SessionSnapshotBody } from '../../protocol/messages.ts'
import type { ClosedSession, StoredSession } from '../sessions/types.ts'
import type { KeptCommitIndexes } from './session-store-commits.ts'
import { SessionStoreError, corrupt } from './session-store-schema.ts'
import { isEntryBody, isSnapshot, parseJson } from './session-store-shapes.ts'
import { rowCrc, sessionCrc } from './session-store-sql.ts'
import type { EntryRow, SessionRow, SnapshotRow, Statements } from './session-store-sql.ts'

// Every session, by sessionId, and the graves' ids; inside a read transaction.
export function loadSessions (sql: Statements, path: string, commits: KeptCommitIndexes): StoredSession[] {
  const rows = sql.allSessions.all() as SessionRow[]
  const entryRows = entryRowsBySession(sql)
  const graves = readGraves(sql, path)
  const sessions = rows.map((row) => {
    if (graves.has(row.session_id)) throw corruptSession(path, row.session_id, 'it is stored and has a grave (deleted) too')
    return loadSession(sql, path, commits, row, entryRows.get(row.session_id) ?? [])
  })
  // A grave's rows are dead, skipped.
  for (const id of [...rows.map((row) => row.session_id), ...graves]) entryRows.delete(id)
  const [orphan] = entryRows
  if (orphan !== undefined) throw corruptSession(path, orphan[0], `${orphan[1].length} stored entries belong to no stored session`)
  return sessions
}

export function readGraves (sql: Statements, path: string): Set<string> {
  const graves = new Set<string>()
  for (const row of sql.allGraves.iterate() as Iterable<{ session_id: string; crc: number }>) {
    if (row.crc !== rowCrc([row.session_id])) throw corruptSession(path, row.session_id, 'its grave (a deleted session) fails its checksum')
    graves.add(row.session_id)
  }
  return graves
}

// The sessions remembered as closed, oldest first, each against its CRC.
export function loadClosed (sql: Statements, path: string): ClosedSession[] {
  const closed: ClosedSession[] = []
  for (const row of sql.allClosed.iterate() as Iterable<{ session_id: string; epoch: number; crc: number }>) {
    if (row.crc !== rowCrc([row.session_id, row.epoch])) throw corruptSession(path, row.session_id, 'its mark as closed fails its checksum')
    closed.push({ sessionId: row.session_id, epoch: row.epoch })
  }
  return closed
}

// One scan of the entries table, by session, each session's rows in index
// order (as written; sorted so that a row moved out of place is reported as
// the index found where another should be).
export function entryRowsBySession (sql: Statements): Map<string, EntryRow[]> {
  const bySession = new Map<string, EntryRow[]>()
  for (const row of sql.allEntries.iterate() as Iterable<EntryRow>) {
    const rows = bySession.get(row.session_id)
    if (rows === undefined) bySession.set(row.session_id, [row])
    else rows.push(row)
  }
  for (const rows of bySession.values()) rows.sort((a, b) => a.idx - b.idx)
  return bySession
}

export function loadSession (sql: Statements, path: string, commits: KeptCommitIndexes, row: SessionRow, entryRows: EntryRow[]): StoredSession {
  const id = row.session_id
  const state = { epoch: row.epoch, votedFor: row.voted_for, commitIndex: row.commit_index }
  if (row.crc !== sessionCrc(id, state)) throw corruptSession(path, id, 'its hard state fails its checksum')
  const snapshot = loadSnapshot(sql, path, id)
  const entries = loadEntries(path, id, snapshot === null ? 0 : snapshot.index, entryRows)
  // A commit index kept, not written yet (write()), is newer than the row's.
  const commitIndex = commits.loaded(id, state.commitIndex)
  return { sessionId: id, ...state, commitIndex, snapshot, entries }
}

function loadSnapshot (sql: Statements, path: string, id: string): SessionSnapshotBody | null {
  const row = sql.getSnapshot.get({ id }) as SnapshotRow | undefined
  if (row === undefined) return null
  if (row.crc !== rowCrc([id, row.idx], row.body)) throw corruptSession(path, id, 'its snapshot fails its checksum')
  const snapshot = parseJson(row.body)
  if (!isSnapshot(snapshot) || snapshot.index !== row.idx) throw corruptSession(path, id, 'its snapshot does not decode')
  return snapshot
}

// Rows at or below the snapshot are dead (session-store-seqs.ts): skipped.
function loadEntries (path: string, id: string, snapshotIndex: number, rows: EntryRow[]): LogEntry[] {
  const entries: LogEntry[] = []
  for (const row of rows) {
    if (row.idx <= snapshotIndex) continue
    const expected = snapshotIndex + entries.length + 1
    if (row.idx !== expected) throw corruptSession(path, id, `entry ${row.idx} found where ${expected} should be`)
    if (row.crc !== rowCrc([id, row.idx, row.epoch], row.body)) throw corruptSession(path, id, `entry ${row.idx} fails its checksum`)
    const body = parseJson(row.body)
    if (!isEntryBody(body)) throw corruptSession(path, id, `entry ${row.idx} does not decode`)
    entries.push({ index: row.idx, epoch: row.epoch, body })
  }
  return entries
}

export function corruptSession (path: string, id: string, why: string): SessionStoreError {
  return corrupt(path, `session ${JSON.stringify(id)}: ${why}`)
}
