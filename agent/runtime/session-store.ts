// The durable store behind the sessions core: one SQLite database (the agent
// opens <dataDir>/sessions.db) holding, per session, the hard state (epoch,
// votedFor), the commit index, the snapshot and the log entries after it.
//
// Durability policy. The core hands over one step's SessionDurable records and
// may send or reply only once they are durable. `write` puts them in the WAL in
// one transaction (SQLite `synchronous=OFF`: SQLite itself never fsyncs), `sync`
// fsyncs the WAL file in libuv's thread pool and calls back once the fsync
// returned: from then on every transaction written before the call survives a
// crash of the process, the kernel or the power. That is exactly what
// `synchronous=FULL` does inside COMMIT (one fsync of the WAL after the commit
// frame), moved off the event loop so that the agent keeps reading its sockets
// while the disk works. The host sends nothing that depends on a write before
// its sync has called back (sessions-host.ts). `apply` = write + a blocking
// fsync (and checkpoint when due), for tools and tests. One fsync per batch of
// steps, however many records: group commit. A failed write, fsync or
// checkpoint (EIO above all) is reported; the host must stop rather than carry
// on with state it cannot trust to be on disk.
//
// Checkpoints, ours too. SQLite's automatic checkpoint runs inside the COMMIT
// that takes the WAL past 1,000 pages and, at `synchronous=NORMAL`, fsyncs the
// WAL and then the database file there, on the event loop: with a snapshot of
// several MiB in the batch that blocked the agent 60-175 ms (three agents on one
// disk), every session and the membership with it. So automatic checkpoints are
// off (`wal_autocheckpoint=0`) and the host runs them: once a sync() has
// returned (the frames to copy are durable, the order NORMAL keeps) and
// checkpointDue() says the WAL holds CHECKPOINT_FRAMES not yet copied,
// checkpoint() copies them into the database file (a PASSIVE checkpoint: writes
// to the page cache, no fsync) and fdatasyncs the database file in the thread
// pool. Until that returns nothing is written: the next write transaction may
// restart the WAL from its start, overwriting frames whose pages must be on disk
// first. write() and syncNow() make sure of that themselves (a blocking fsync of
// the database file if one is still under way). close() sets `synchronous=FULL`
// so that SQLite's own last checkpoint, at close, fsyncs as it must.
//
// Why an fsync of our own descriptor of a file is SQLite's fsync: fsync flushes
// the file (inode), whichever descriptor wrote it; SQLite never deletes or
// replaces the -wal file while this connection is open (it rewrites it from the
// start after a checkpoint, same file). So a sync that returns covers every
// frame committed before it, as FULL's would, and the database file's fsync
// after a checkpoint is the one NORMAL would have made.
//
// The sync is fdatasync(2), as PostgreSQL's WAL defaults to on Linux: the data,
// and the metadata needed to read it back (the size, when the WAL grew), but
// not the modification time. fsync also wrote the inode for the new mtime at
// every batch: on this ext4 disk a WAL fdatasync took 0.16 ms against fsync's
// 0.19 (p50, 4 KiB rewritten in place).
//
// Torn writes. Every WAL frame carries a checksum chained over the frames before
// it, and a transaction counts only once its commit frame is whole: when the
// power fails halfway through writing the last transaction, recovery at the next
// open drops that transaction whole and keeps every one before it. That is the
// "torn last record is detected and dropped" guarantee; no step is half applied.
//
// A flipped bit in the write-ahead log is another matter: SQLite's recovery
// would take it for a torn tail and silently drop every transaction after it.
// `open` checks the log first (wal-check.ts) and refuses it when committed
// transactions would be dropped.
//
// Damage at rest. `open` runs `PRAGMA quick_check` (the b-tree structure) and
// every stored row carries a CRC-32 of its key and content, checked by `load`,
// so a flipped bit in a row is reported, never misread. A store that fails
// either check throws SessionStoreError naming the file, and the agent refuses
// to serve from it: it never recreates the store or skips a session, because the
// sessions it holds may hold acknowledged deltas. Moving the file away starts
// the agent without them; the other members of each group still have them.
// (CRC-32 rather than a cryptographic hash: the threat is bit rot and torn
// sectors, and anyone able to rewrite the file could recompute any unkeyed hash.)

import { closeSync, existsSync, fdatasync, fdatasyncSync, openSync, statSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import type { LogEntry, SessionSnapshotBody } from '../../protocol/messages.ts'
import { snapshotJson } from '../sessions/snapshot-text.ts'
import type { ClosedSession, SessionDurable, StoredSession } from '../sessions/types.ts'
import { checkWalFile } from './wal-check.ts'
import { WalIndex } from './wal-index.ts'
import { KeptCommitIndexes } from './session-store-commits.ts'
import { corruptSession, loadClosed, loadSessions, readGraves } from './session-store-load.ts'
import { MAX_CLOSED } from '../sessions/closed.ts'
import { coalesceEntries, prepareStatements, rowCrc, sessionCrc } from './session-store-sql.ts'
import type { HardState, SessionRow, Statements } from './session-store-sql.ts'
import { DEAD_ROWS, EntrySeqs } from './session-store-seqs.ts'
import type { DeadRowLimits, EntryRun } from './session-store-seqs.ts'
import { SessionStoreError, configure, corrupt, ensureSchema, isDamage, openFailure, sqliteMessage } from './session-store-schema.ts'

export { SESSION_STORE_SCHEMA_VERSION, SessionStoreError } from './session-store-schema.ts'
export { coalesceEntries } from './session-store-sql.ts'

// What check() found in a sound store.
export type StoreSummary = { sessions: number; closed: number; entries: number; snapshots: number; walFrames: number }

// A checkpoint once this many WAL frames (pages of 4 KiB) wait to be copied:
// SQLite's own automatic checkpoint's default.
export const CHECKPOINT_FRAMES = 1_000
// When the WAL index cannot be read: a checkpoint every this many writes.
const CHECKPOINT_FALLBACK_WRITES = 250

// A data directory that has run (incarnation ≥ 1) got its store at that first
// start, before the incarnation was written: a missing or empty sessions.db is
// damage, not a first start. Opened, SQLite would make a new empty store of it,
// and the agent would answer 404 for sessions it had acknowledged. Null when
// all is as it should be.
export function storeAbsence (path: string, incarnation: number): SessionStoreError | null {
  if (incarnation < 1) return null
  let size: number
  try {
    size = statSync(path).size
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return null
    size = -1
  }
  if (size > 0) return null
  return new SessionStoreError(
    `session store ${path} is ${size < 0 ? 'missing' : 'empty'}, but this data directory has run before (incarnation ${incarnation}): the sessions it held were in it. ` +
    'Restore it from a backup; or, to start without them (the other members of each session\'s group still have them), move state.json away too: ' +
    'the agent keeps its identity and rejoins with a higher incarnation.')
}

export class SessionStore {
  readonly path: string
  readonly #db: DatabaseSync
  readonly #sql: Statements
  // Commit indexes given and not written yet (session-store-commits.ts).
  readonly #commits = new KeptCommitIndexes()
  // The seq of each session's stored entries (session-store-seqs.ts): read from
  // the table at the first write, kept as the store writes, and read again
  // after a transaction that failed. A session listed here has its row.
  #seqs: EntrySeqs | null = null
  // The graves (deleted sessions whose rows wait to be reclaimed), read and
  // dropped with #seqs.
  #graves = new Set<string>()
  // Our descriptor of the -wal file, opened at the first write (the file exists
  // from then on while the connection is open), for sync().
  #walFd: number | null = null
  // Our descriptor of the database file, for a checkpoint's fsync, and whether
  // one is under way (no write until it returned: see the top of this file).
  #dbFd: number | null = null
  #dbSyncPending = false
  // Writes since the last checkpoint: the fallback measure when the WAL index
  // cannot be read (wal-index.ts).
  #writesSinceCheckpoint = 0
  readonly #walIndex: WalIndex

  readonly #deadRows: DeadRowLimits

  private constructor (db: DatabaseSync, path: string, deadRows: DeadRowLimits) {
    this.#deadRows = deadRows
    this.#db = db
    this.path = path
    this.#sql = prepareStatements(db)
    this.#walIndex = new WalIndex(`${path}-shm`)
  }

  // Opens (or creates) the store at `path`; throws SessionStoreError when the
  // file is damaged, not a session store, or from a newer schema. Callers that
  // know the data directory ran before check storeAbsence() first.
  static open (path: string, options: { deadRows?: DeadRowLimits } = {}): SessionStore {
    const wal = checkWalFile(`${path}-wal`)
    if (wal.problem !== null) throw corrupt(path, `${path}-wal: ${wal.problem}`)
    let db: DatabaseSync
    try {
      db = new DatabaseSync(path, { enableForeignKeyConstraints: true })
    } catch (error) {
      throw openFailure(path, error)
    }
    try {
      configure(db, path)
      ensureSchema(db, path)
      const store = new SessionStore(db, path, options.deadRows ?? DEAD_ROWS)
      // A new store's schema (written without an fsync) is durable before use.
      store.#walFd = existsSync(`${path}-wal`) ? openSync(`${path}-wal`, 'r') : null
      store.#dbFd = openSync(path, 'r')
      store.syncNow()
      return store
    } catch (error) {
      db.close()
      throw openFailure(path, error)
    }
  }

  // Writes the commit indexes still kept (write()), makes everything written
  // durable, then closes.
  close (): void {
    if (!this.#db.isOpen) return
    if (this.#commits.size > 0) {
      const records = this.#commits.all()
      try {
        this.#sql.begin.run()
        this.#seqs ??= this.#readSeqs()
        for (const record of records) this.#applyOne(record)
        this.#sql.commit.run()
      } catch {
        // Advisory: a store that cannot write them closes without them.
        if (this.#db.isTransaction) this.#sql.rollback.run()
      }
    }
    try {
      this.syncNow()
    } catch {
      // Closing: the host has already stopped on a failed sync, or never needed it.
    }
    for (const fd of [this.#walFd, this.#dbFd]) if (fd !== null) closeSync(fd)
    this.#walFd = this.#dbFd = null
    this.#walIndex.close()
    // SQLite checkpoints the whole WAL as the last connection closes, then
    // deletes it: with FULL it fsyncs the database file before that.
    try {
      this.#db.exec('PRAGMA synchronous = FULL')
    } catch {
      // Closing a store that failed: SQLite closes it as it can.
    }
    this.#db.close()
  }

  sessionCount (): number {
    return (this.#sql.countSessions.get() as { n: number }).n
  }

  // Every session, by sessionId, each checked whole: rows against their CRC,
  // entries consecutive after the snapshot, bodies of a known shape.
  load (): StoredSession[] {
    this.#sql.beginRead.run()
    try {
      return loadSessions(this.#sql, this.path, this.#commits)
    } catch (error) {
      throw this.#translate(error)
    } finally {
      this.#sql.commit.run()
    }
  }

  // The sessions remembered as closed, oldest first (the last MAX_CLOSED
  // deleted as closed), each checked against its CRC.
  loadClosed (): ClosedSession[] {
    this.#sql.beginRead.run()
    try {
      return loadClosed(this.#sql, this.path)
    } catch (error) {
      throw this.#translate(error)
    } finally {
      this.#sql.commit.run()
    }
  }

  // The whole store, checked as `edge-agent check` reports it: SQLite's full
  // integrity_check (every page, index and constraint, beyond open's
  // quick_check), foreign keys, then every session loaded (checksums, order,
  // shape). Throws SessionStoreError naming the file on any damage.
  check (): StoreSummary {
    const walFrames = checkWalFile(`${this.path}-wal`).frames
    try {
      const problems = (this.#db.prepare('PRAGMA integrity_check').all() as Array<{ integrity_check: string }>).map((row) => row.integrity_check)
      if (problems.length !== 1 || problems[0] !== 'ok') throw corrupt(this.path, `integrity_check: ${problems.slice(0, 3).join('; ')}`)
      const orphans = this.#db.prepare('PRAGMA foreign_key_check').all()
      if (orphans.length > 0) throw corrupt(this.path, `${orphans.length} rows belong to no session`)
    } catch (error) {
      throw this.#translate(error)
    }
    const sessions = this.load()
    const closed = this.loadClosed()
    return {
      sessions: sessions.length,
      closed: closed.length,
      entries: sessions.reduce((n, s) => n + s.entries.length, 0),
      snapshots: sessions.filter((s) => s.snapshot !== null).length,
      walFrames
    }
  }

  // Applies one step's records and makes them durable before it returns:
  // write() then a blocking fsync (syncNow). Throws on any error.
  apply (records: SessionDurable[]): void {
    if (!this.write(records)) return
    this.syncNow()
    if (this.checkpointDue()) this.checkpointNow()
  }

  // Writes one step's records in order, in one transaction, durable once a
  // sync() started after it has called back. True when it wrote something that
  // needs that sync; false when there was nothing to make durable. On any error
  // nothing of the batch remains and the error is rethrown.
  //
  // Commit-index records are kept, not written with their batch: a session's
  // is written once it runs COMMIT_INDEX_WRITE_EVERY entries ahead of the stored
  // one, and at close() (session-store-commits.ts says why that loses nothing
  // but a re-commit after a crash). So a batch of them only writes nothing.
  write (records: SessionDurable[]): boolean {
    if (records.length === 0) return false
    const rest = this.#commits.beginBatch(records)
    if (rest.length === 0) return false
    // Commit indexes due are older than this batch's records: they go first.
    const due = this.#commits.due()
    // This transaction may restart the WAL over frames a checkpoint copied.
    if (this.#dbSyncPending) this.#syncDatabaseNow()
    this.#sql.begin.run()
    try {
      this.#seqs ??= this.#readSeqs()
      for (const record of due) this.#applyOne(record)
      for (const record of coalesceEntries(rest)) this.#applyOne(record)
      if (this.#seqs.reclaimDue()) this.#reclaim()
      this.#sql.commit.run()
    } catch (error) {
      this.#seqs = null
      this.#commits.rollback()
      if (this.#db.isTransaction) this.#sql.rollback.run()
      throw this.#translate(error)
    }
    this.#walFd ??= openSync(`${this.path}-wal`, 'r')
    this.#writesSinceCheckpoint++
    return true
  }

  // Fsyncs the WAL in libuv's thread pool (the event loop goes on); `done` gets
  // null once every transaction written before this call is durable, or the
  // error. One at a time is enough: the host starts the next after this one.
  sync (done: (error: Error | null) => void): void {
    const fd = this.#walFd
    if (fd === null) {
      queueMicrotask(() => { done(null) })
      return
    }
    fdatasync(fd, (error) => { done(error === null ? null : this.#syncFailure(error)) })
  }

  // The same, blocking (and the database file's, if a checkpoint's is under way).
  syncNow (): void {
    if (this.#dbSyncPending) this.#syncDatabaseNow()
    if (this.#walFd === null) return
    try {
      fdatasyncSync(this.#walFd)
    } catch (error) {
      throw this.#syncFailure(error)
    }
  }

  #syncFailure (error: unknown, file = 'write-ahead log'): Error {
    return new SessionStoreError(`session store ${this.path}: fsync of the ${file} failed: ${(error as Error).message}`, { cause: error })
  }

  // True when the WAL holds CHECKPOINT_FRAMES frames not yet copied into the
  // database file: time for checkpoint(), once a sync() has returned.
  checkpointDue (): boolean {
    const frames = this.#walIndex.framesToCopy()
    return frames === null ? this.#writesSinceCheckpoint >= CHECKPOINT_FALLBACK_WRITES : frames >= CHECKPOINT_FRAMES
  }

  // Copies the WAL's durable frames into the database file (no fsync: SQLite
  // runs with synchronous=OFF), then fdatasyncs the database file in libuv's
  // thread pool; `done` gets null once it is durable, or the error. Call it only
  // after a sync() that followed the last write() has returned, and write
  // nothing before `done` (write() would otherwise wait for that fsync itself,
  // blocking). A failed checkpoint calls back with the error too.
  checkpoint (done: (error: Error | null) => void): void {
    try {
      this.#copyWal()
    } catch (error) {
      queueMicrotask(() => { done(error as Error) })
      return
    }
    const fd = this.#dbFd
    if (fd === null) {
      queueMicrotask(() => { done(null) })
      return
    }
    fdatasync(fd, (error) => {
      if (this.#dbFd !== fd) return
      if (error !== null) {
        done(this.#syncFailure(error, 'database file'))
        return
      }
      this.#dbSyncPending = false
      done(null)
    })
  }

  // The same, blocking (tools: apply()).
  checkpointNow (): void {
    this.#copyWal()
    this.#syncDatabaseNow()
  }

  #copyWal (): void {
    try {
      this.#sql.checkpoint.get()
    } catch (error) {
      throw new SessionStoreError(`session store ${this.path}: checkpoint of the write-ahead log failed: ${sqliteMessage(error)}`, { cause: error })
    }
    this.#writesSinceCheckpoint = 0
    this.#dbSyncPending = this.#dbFd !== null
  }

  #syncDatabaseNow (): void {
    if (this.#dbFd === null) return
    try {
      fdatasyncSync(this.#dbFd)
    } catch (error) {
      throw this.#syncFailure(error, 'database file')
    }
    this.#dbSyncPending = false
  }

  #applyOne (record: SessionDurable): void {
    const id = record.sessionId
    switch (record.kind) {
      case 'session-meta': {
        const state = this.#hardState(id)
        this.#putSession(id, { ...state, epoch: record.epoch, votedFor: record.votedFor })
        return
      }
      case 'session-entries': return this.#appendEntries(id, record.entries)
      case 'session-truncate': return this.#truncate(id, record.fromIndex)
      case 'session-snapshot': return this.#putSnapshot(id, record.snapshot)
      case 'session-commit': {
        const state = this.#hardState(id)
        // Lazy and advisory: a late or reordered record must not take it back.
        if (record.commitIndex > state.commitIndex) this.#putSession(id, { ...state, commitIndex: record.commitIndex })
        return
      }
      case 'session-delete':
        // Its rows wait for the reclaims, under a grave (session-store-seqs.ts).
        if (this.#seqsNow().entomb(id)) {
          this.#sql.putGrave.run({ id, crc: rowCrc([id]) })
          this.#graves.add(id)
        }
        // The snapshot follows by ON DELETE CASCADE.
        this.#sql.deleteSession.run({ id })
        if (record.closedEpoch !== undefined) {
          this.#sql.deleteClosed.run({ id })
          this.#sql.putClosed.run({ id, epoch: record.closedEpoch, crc: rowCrc([id, record.closedEpoch]) })
          this.#sql.trimClosed.run({ keep: MAX_CLOSED })
        }
        return
      default:
        throw new Error(`session store: unknown record ${JSON.stringify((record as { kind: unknown }).kind)}`)
    }
  }

  // Every record but a delete creates its session, so a member that first hears
  // of a session through an append or a snapshot stores it whole.
  #hardState (id: string): HardState {
    const row = this.#sql.getSession.get({ id }) as SessionRow | undefined
    if (row !== undefined) return { epoch: row.epoch, votedFor: row.voted_for, commitIndex: row.commit_index }
    // Stored again while its grave waits: the old rows go first, at once.
    if (this.#graves.delete(id)) {
      this.#deleteEntries(this.#seqsNow().remove(id))
      this.#sql.deleteGrave.run({ id })
    }
    const state = { epoch: 0, votedFor: null, commitIndex: 0 }
    this.#putSession(id, state)
    return state
  }

  #putSession (id: string, state: HardState): void {
    this.#sql.putSession.run({ id, ...state, crc: sessionCrc(id, state) })
    this.#commits.stored(id, state.commitIndex)
  }

  // The store holds what load() can read back: a log with a hole or a repeated
  // index would make the agent refuse to start, so it is refused here instead.
  #appendEntries (id: string, entries: LogEntry[]): void {
    const seqs = this.#seqsNow()
    const run = seqs.get(id) ?? this.#startRun(id)
    for (const entry of entries) {
      const last = seqs.last(run)
      if (entry.index !== last + 1) throw new Error(`session store: session ${id}: entry ${entry.index} does not follow ${last} (a bug in the sessions core)`)
      const body = JSON.stringify(entry.body)
      const crc = rowCrc([id, entry.index, entry.epoch], body)
      const { lastInsertRowid } = this.#sql.insertEntry.run(id, entry.index, entry.epoch, body, crc)
      seqs.push(run, Number(lastInsertRowid))
    }
  }

  // A session not in #seqs has no entries stored: its next one follows its
  // snapshot (or is the first). Its row is created if it has none.
  #startRun (id: string): EntryRun {
    this.#hardState(id)
    return this.#seqsNow().start(id, this.#snapshotIndex(id))
  }

  // Snapshotted entries are committed; only a divergent tail may be cut.
  #truncate (id: string, fromIndex: number): void {
    const run = this.#seqsNow().get(id) ?? this.#startRun(id)
    const snapshotIndex = this.#snapshotIndex(id)
    if (!(fromIndex > snapshotIndex)) throw new Error(`session store: session ${id}: cannot truncate from ${fromIndex}, entries up to ${snapshotIndex} are in the snapshot (a bug in the sessions core)`)
    this.#deleteEntries(this.#seqsNow().cutFrom(run, fromIndex))
  }

  // An older snapshot would leave a hole between it and the entries kept.
  #putSnapshot (id: string, snapshot: SessionSnapshotBody): void {
    const run = this.#seqsNow().get(id) ?? this.#startRun(id)
    const current = this.#snapshotIndex(id)
    if (snapshot.index < current) throw new Error(`session store: session ${id}: snapshot at ${snapshot.index} is older than the stored one at ${current} (a bug in the sessions core)`)
    const body = snapshotJson(snapshot)
    this.#sql.putSnapshot.run({ id, idx: snapshot.index, body, crc: rowCrc([id, snapshot.index], body) })
    this.#seqsNow().bury(id, this.#seqsNow().cutUpTo(run, snapshot.index))
  }

  #deleteEntries (seqs: number[]): void {
    if (seqs.length > 0) this.#sql.deleteEntries.run({ seqs: JSON.stringify(seqs) })
  }

  // Frees the rows snapshots left dead (session-store-seqs.ts): the live rows
  // of the runs to move are copied to the end of the table with new seqs, in
  // the plan's order; everything below the cutoff goes, and so do the moved
  // runs' old rows above it.
  #reclaim (): void {
    const seqs = this.#seqsNow()
    const nextSeq = (this.#sql.nextSeq.get() as { next: number }).next
    const plan = seqs.planReclaim(nextSeq)
    const moved = plan.move.flatMap((run) => run.seqs)
    if (moved.length > 0) this.#sql.copyEntries.run({ seqs: JSON.stringify(moved), base: nextSeq })
    this.#sql.deleteBelow.run({ cutoff: plan.cutoff })
    this.#deleteEntries(moved.filter((seq) => seq >= plan.cutoff))
    this.#deleteEntries(seqs.reclaimed(plan, nextSeq))
    for (const id of this.#graves) {
      if (seqs.hasDead(id)) continue
      this.#sql.deleteGrave.run({ id })
      this.#graves.delete(id)
    }
  }

  #snapshotIndex (id: string): number {
    const row = this.#sql.snapshotIndex.get({ id }) as { idx: number } | undefined
    return row === undefined ? 0 : row.idx
  }

  // Inside write()'s transaction, which read them first.
  #seqsNow (): EntrySeqs {
    if (this.#seqs === null) throw new Error('session store: entry seqs read outside a write (a bug in the store)')
    return this.#seqs
  }

  // Every session's entry seqs, from one scan of the table (the first write,
  // and the first after a failed one). A session's rows ascend by seq in index
  // order (session-store-seqs.ts), and must be consecutive, as load() checks
  // too. Rows its snapshot covers are dead.
  #readSeqs (): EntrySeqs {
    const seqs = new EntrySeqs(this.#deadRows)
    this.#graves = readGraves(this.#sql, this.path)
    for (const row of this.#sql.entrySeqs.iterate() as Iterable<{ seq: number; session_id: string; idx: number; snapshot_idx: number }>) {
      if (row.idx <= row.snapshot_idx || this.#graves.has(row.session_id)) {
        seqs.bury(row.session_id, [row.seq])
        continue
      }
      const run = seqs.get(row.session_id) ?? seqs.start(row.session_id, row.idx - 1)
      if (row.idx !== seqs.last(run) + 1) throw this.#corruptSession(row.session_id, `entry ${row.idx} found where ${seqs.last(run) + 1} should be`)
      seqs.push(run, row.seq)
    }
    return seqs
  }

  #corruptSession (id: string, why: string): SessionStoreError {
    return corruptSession(this.path, id, why)
  }

  // SQLite noticing damage mid-query is the same news as a failed checksum.
  #translate (error: unknown): unknown {
    return isDamage(error) ? corrupt(this.path, sqliteMessage(error), error) : error
  }
}
