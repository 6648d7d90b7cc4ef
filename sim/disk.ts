// A simulated node's disk for sessions: what survives a crash. It applies the
// core's durable records with the same meaning and the same refusals as the
// SQLite store (agent/runtime/session-store.ts), so a core bug that would corrupt
// the real store fails the simulation instead. Commit indexes are kept in memory
// and written as the real store writes them (session-store-commits.ts: once a
// session's runs COMMIT_INDEX_WRITE_EVERY entries ahead of the stored one), so a
// crash loses the kept ones here too, and a restarted node comes back with the
// stale commit index the real one would have.

import type { LogEntry, SessionSnapshotBody } from '../protocol/messages.ts'
import type { ClosedSession, SessionDurable, StoredSession } from '../agent/sessions/types.ts'
import { MAX_CLOSED } from '../agent/sessions/closed.ts'
import { KeptCommitIndexes } from '../agent/runtime/session-store-commits.ts'

type Stored = { epoch: number; votedFor: string | null; commitIndex: number; snapshot: SessionSnapshotBody | null; entries: LogEntry[] }

export class SimSessionDisk {
  readonly #sessions = new Map<string, Stored>()
  // Sessions deleted as closed, oldest first, the last MAX_CLOSED (as the
  // store's closed table).
  readonly #closed = new Map<string, number>()
  #commits = new KeptCommitIndexes()
  writes = 0

  get size (): number {
    return this.#sessions.size
  }

  load (): StoredSession[] {
    return [...this.#sessions.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([sessionId, s]) => {
      const commitIndex = this.#commits.loaded(sessionId, s.commitIndex)
      return { sessionId, epoch: s.epoch, votedFor: s.votedFor, commitIndex, snapshot: s.snapshot, entries: [...s.entries] }
    })
  }

  // As SessionStore.loadClosed.
  loadClosed (): ClosedSession[] {
    return [...this.#closed].map(([sessionId, epoch]) => ({ sessionId, epoch }))
  }

  // As SessionStore.write: commit indexes kept, the due ones written before the
  // batch's other records; a batch of commit indexes only writes nothing.
  apply (records: SessionDurable[]): void {
    const rest = this.#commits.beginBatch(records)
    if (rest.length === 0) return
    this.writes++
    for (const record of [...this.#commits.due(), ...rest]) this.#apply(record)
  }

  // What a crash now would leave of a session: its stored commit index (not a
  // kept one) and its last entry's index; null when it has no row.
  onDisk (sessionId: string): { commitIndex: number; lastIndex: number } | null {
    const row = this.#sessions.get(sessionId)
    if (row === undefined) return null
    return { commitIndex: row.commitIndex, lastIndex: row.entries.at(-1)?.index ?? row.snapshot?.index ?? 0 }
  }

  // The process died: what it kept in memory is gone.
  crash (): void {
    this.#commits = new KeptCommitIndexes()
  }

  #row (sessionId: string): Stored {
    let row = this.#sessions.get(sessionId)
    if (row === undefined) {
      row = { epoch: 0, votedFor: null, commitIndex: 0, snapshot: null, entries: [] }
      this.#sessions.set(sessionId, row)
    }
    return row
  }

  #apply (record: SessionDurable): void {
    if (record.kind === 'session-delete') {
      this.#sessions.delete(record.sessionId)
      if (record.closedEpoch !== undefined) {
        this.#closed.delete(record.sessionId)
        this.#closed.set(record.sessionId, record.closedEpoch)
        if (this.#closed.size > MAX_CLOSED) this.#closed.delete(this.#closed.keys().next().value as string)
      }
      return
    }
    const row = this.#row(record.sessionId)
    switch (record.kind) {
      case 'session-meta':
        if (record.epoch < row.epoch) throw new Error(`sim disk: ${record.sessionId} epoch went back from ${row.epoch} to ${record.epoch}`)
        row.epoch = record.epoch
        row.votedFor = record.votedFor
        return
      case 'session-entries': return this.#append(record.sessionId, row, record.entries)
      case 'session-truncate': {
        const base = row.snapshot?.index ?? 0
        if (record.fromIndex <= base) throw new Error(`sim disk: ${record.sessionId} truncate at ${record.fromIndex} at or below the snapshot ${base}`)
        row.entries = row.entries.filter((e) => e.index < record.fromIndex)
        return
      }
      case 'session-snapshot': {
        if (row.snapshot !== null && record.snapshot.index < row.snapshot.index) throw new Error(`sim disk: ${record.sessionId} snapshot went back`)
        row.snapshot = record.snapshot
        row.entries = row.entries.filter((e) => e.index > record.snapshot.index)
        return
      }
      case 'session-commit':
        row.commitIndex = Math.max(row.commitIndex, record.commitIndex)
        this.#commits.stored(record.sessionId, row.commitIndex)
    }
  }

  #append (sessionId: string, row: Stored, entries: LogEntry[]): void {
    for (const entry of entries) {
      const last = row.entries.length > 0 ? row.entries[row.entries.length - 1].index : (row.snapshot?.index ?? 0)
      if (entry.index !== last + 1) throw new Error(`sim disk: ${sessionId} entry ${entry.index} does not follow ${last}`)
      row.entries.push(entry)
    }
  }
}
