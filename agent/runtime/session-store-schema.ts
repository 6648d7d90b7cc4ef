// The session store's file: its schema, the checks and migration run when it
// is opened, and how damage is reported (session-store.ts is the store).

import type { DatabaseSync } from 'node:sqlite'

// Bump on any change of the tables or of a row's encoding, with a migration.
export const SESSION_STORE_SCHEMA_VERSION = 4

// SQLite primary result codes that mean the file itself is damaged.
const SQLITE_CORRUPT = 11
const SQLITE_NOTADB = 26

export class SessionStoreError extends Error {
  override name = 'SessionStoreError'
}

// Entries and snapshots are rowid tables (an op may be 64 KiB, a snapshot many
// MiB: too large for WITHOUT ROWID). Entries are keyed by `seq`, in the order
// they were written, with no index by session: every insert goes to the end of
// the table (session-store-seqs.ts says why, and how rows are found to delete).
// Bodies are the JSON of EntryBody and SessionSnapshotBody; `crc` is rowCrc()
// of the row's key (session, index, epoch: not seq) and content.
const ENTRIES_TABLE = `
  CREATE TABLE entries (
    seq INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    body TEXT NOT NULL,
    crc INTEGER NOT NULL
  ) STRICT;
`
// A deleted session whose entry rows are not all deleted yet: every row of it
// in the entries table is dead, reclaimed with the others (session-store-seqs.ts
// says why a session's rows are not deleted with it). A grave and a session row
// never share an id: a session stored again takes its grave's rows first.
// `crc` is rowCrc() of [session_id]. Version 3 added this table.
const GRAVES_TABLE = `
  CREATE TABLE graves (session_id TEXT PRIMARY KEY, crc INTEGER NOT NULL) STRICT, WITHOUT ROWID;
`
// Sessions deleted because they were closed (session-delete's closedEpoch), in
// the order they were, the last MAX_CLOSED of them (agent/sessions/closed.ts):
// read back at start, so a member restarted after a close still refuses an
// owner that missed it. `crc` is rowCrc() of [session_id, epoch]. Version 4
// added this table.
const CLOSED_TABLE = `
  CREATE TABLE closed (seq INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE, epoch INTEGER NOT NULL, crc INTEGER NOT NULL) STRICT;
`
const SCHEMA = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT, WITHOUT ROWID;
  CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    voted_for TEXT,
    commit_index INTEGER NOT NULL,
    crc INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE snapshots (
    session_id TEXT PRIMARY KEY REFERENCES sessions (session_id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    body TEXT NOT NULL,
    crc INTEGER NOT NULL
  ) STRICT;
  ${ENTRIES_TABLE}
  ${GRAVES_TABLE}
  ${CLOSED_TABLE}
`

export function configure (db: DatabaseSync, path: string): void {
  // Every fsync is the store's own, off the event loop: the WAL's after each
  // commit (sync()), the database file's after each checkpoint, which the store
  // runs itself (checkpoint()). See the top of session-store.ts.
  db.exec('PRAGMA synchronous = OFF')
  db.exec('PRAGMA wal_autocheckpoint = 0')
  db.exec('PRAGMA foreign_keys = ON')
  const problems = (db.prepare('PRAGMA quick_check').all() as Array<{ quick_check: string }>).map((row) => row.quick_check)
  if (problems.length !== 1 || problems[0] !== 'ok') throw corrupt(path, `quick_check: ${problems.slice(0, 3).join('; ')}`)
  const mode = (db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string }).journal_mode
  if (mode !== 'wal') throw new SessionStoreError(`session store ${path}: cannot use write-ahead logging (journal mode stays ${mode}); put the data directory on a local filesystem`)
}

// A file without tables is new (SQLite makes an empty file a database); one with
// tables must be a session store of this schema version.
export function ensureSchema (db: DatabaseSync, path: string): void {
  const tables = (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all() as Array<{ name: string }>).map((row) => row.name)
  if (tables.length === 0) {
    db.exec(`BEGIN IMMEDIATE; ${SCHEMA}; INSERT INTO meta (key, value) VALUES ('schema_version', ${SESSION_STORE_SCHEMA_VERSION}); COMMIT`)
    return
  }
  if (!tables.includes('meta')) throw new SessionStoreError(`${path} is an SQLite database but not an edge-agent session store (no meta table); refusing to use it. Point the agent at its own data directory.`)
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: number } | undefined
  if (row === undefined) throw corrupt(path, 'no schema version')
  if (row.value === 1) {
    migrateFromVersion1(db)
    return
  }
  if (row.value === 2) {
    migrateFromVersion2(db)
    return
  }
  if (row.value === 3) {
    migrateFromVersion3(db)
    return
  }
  if (row.value !== SESSION_STORE_SCHEMA_VERSION) {
    throw new SessionStoreError(`session store ${path} has schema version ${row.value}, and this edge-agent reads only version ${SESSION_STORE_SCHEMA_VERSION} (was it written by a newer edge-agent?); refusing to open it. Run the edge-agent that wrote it, or move the file away to start without the sessions it holds.`)
  }
}

// Version 1 keyed entries by (session_id, idx), with a foreign key to their
// session. Version 2 keys them by seq (ENTRIES_TABLE): the rows are copied in
// session and index order, so each session's seqs ascend with its indexes, and
// the copy, the swap, the (empty) graves of version 3, the (empty) closed
// table of version 4 and the new version commit together (open() fsyncs it before the store is used). Rows and their checksums are copied as they were;
// load() checks them as always.
function migrateFromVersion1 (db: DatabaseSync): void {
  db.exec(`BEGIN IMMEDIATE;
    ${ENTRIES_TABLE.replace('CREATE TABLE entries', 'CREATE TABLE entries_v2')}
    INSERT INTO entries_v2 (session_id, idx, epoch, body, crc) SELECT session_id, idx, epoch, body, crc FROM entries ORDER BY session_id, idx;
    DROP TABLE entries;
    ALTER TABLE entries_v2 RENAME TO entries;
    ${GRAVES_TABLE}
    ${CLOSED_TABLE}
    UPDATE meta SET value = ${SESSION_STORE_SCHEMA_VERSION} WHERE key = 'schema_version';
    COMMIT`)
}

// Version 3 only adds the graves table, empty: a version 2 store deleted a
// session's rows with it; and version 4 the closed table, empty.
function migrateFromVersion2 (db: DatabaseSync): void {
  db.exec(`BEGIN IMMEDIATE;
    ${GRAVES_TABLE}
    ${CLOSED_TABLE}
    UPDATE meta SET value = ${SESSION_STORE_SCHEMA_VERSION} WHERE key = 'schema_version';
    COMMIT`)
}

// Version 4 only adds the closed table, empty: a version 3 store remembered
// closed sessions in memory only.
function migrateFromVersion3 (db: DatabaseSync): void {
  db.exec(`BEGIN IMMEDIATE;
    ${CLOSED_TABLE}
    UPDATE meta SET value = ${SESSION_STORE_SCHEMA_VERSION} WHERE key = 'schema_version';
    COMMIT`)
}

export function corrupt (path: string, why: string, cause?: unknown): SessionStoreError {
  return new SessionStoreError(
    `session store ${path} is corrupt (${why}); the agent refuses to serve sessions from it. ` +
    `Move it away (with ${path}-wal and ${path}-shm, if present), and state.json beside it, to start without the sessions it held: ` +
    'the other members of each session\'s group still have them (the agent keeps its identity and rejoins with a higher incarnation).', { cause })
}

export function openFailure (path: string, error: unknown): unknown {
  if (error instanceof SessionStoreError) return error
  if (isDamage(error)) return corrupt(path, sqliteMessage(error), error)
  return new SessionStoreError(`session store ${path} could not be opened: ${sqliteMessage(error)}`, { cause: error })
}

export function isDamage (error: unknown): boolean {
  const code = (error as { errcode?: unknown } | null)?.errcode
  return typeof code === 'number' && ((code & 0xff) === SQLITE_CORRUPT || (code & 0xff) === SQLITE_NOTADB)
}

export function sqliteMessage (error: unknown): string {
  const errstr = (error as { errstr?: unknown } | null)?.errstr
  if (typeof errstr === 'string') return error instanceof Error && error.message !== errstr ? `${errstr}: ${error.message}` : errstr
  return error instanceof Error ? error.message : String(error)
}
