// The commit indexes the session store has been given but not written yet.
//
// A session's commit index is advisory on disk: restoreReplica clamps it to the
// log, a restarted standby learns the current one from its owner's next frame,
// and a new owner serves nothing until an entry of its own epoch has committed
// (readableFromIndex). What a stale value costs after a crash is a longer
// uncommitted tail to re-commit, never an acknowledged entry: those are in the
// entries table of every member that acknowledged them, fsynced.
//
// Writing it with every batch cost more than the entries themselves: one
// session row read and rewritten (SELECT + UPSERT, a page of the sessions table
// dirtied) per session per group commit, on every agent. So a session's commit
// index is written only once it is COMMIT_INDEX_WRITE_EVERY entries ahead of
// the value on disk, and whatever is kept is written at close(). After a crash
// a session's stored commit index is at most that many entries (plus the last
// group commit's) behind; load() (while open) sees the kept value.

import type { SessionDurable } from '../sessions/types.ts'

// Entries a commit index may run ahead of the stored one before it is written.
// A vote carries a candidate's uncommitted tail (at most MAX_SESSION_ENTRIES,
// 4,096): after a crash this adds at most this many entries to it.
export const COMMIT_INDEX_WRITE_EVERY = 64

type CommitRecord = SessionDurable & { kind: 'session-commit' }

export class KeptCommitIndexes {
  // The newest commit index given, per session, not written yet.
  readonly #kept = new Map<string, number>()
  // The commit index in each session's row, as written or loaded. Unknown
  // counts as 0 (the row is written sooner, never later).
  readonly #stored = new Map<string, number>()
  // How to take back this transaction's changes to #kept if it rolls back.
  #undo: Array<[string, number | undefined]> = []

  get size (): number {
    return this.#kept.size
  }

  // A commit index never goes down: a late or reordered record is ignored.
  #keep (record: CommitRecord): void {
    const current = this.#kept.get(record.sessionId)
    if (current !== undefined && current >= record.commitIndex) return
    this.#set(record.sessionId, record.commitIndex)
  }

  // A session's row was read back with `commitIndex`: the index to report is
  // the newer of it and a value kept, not written yet.
  loaded (sessionId: string, commitIndex: number): number {
    this.stored(sessionId, commitIndex)
    return Math.max(commitIndex, this.#kept.get(sessionId) ?? 0)
  }

  // The session's row now holds `commitIndex` (written or loaded).
  stored (sessionId: string, commitIndex: number): void {
    this.#stored.set(sessionId, commitIndex)
    const kept = this.#kept.get(sessionId)
    if (kept !== undefined && kept <= commitIndex) this.#set(sessionId, undefined)
  }

  // The session is deleted: nothing of it may be written again.
  #forget (sessionId: string): void {
    this.#stored.delete(sessionId)
    if (this.#kept.has(sessionId)) this.#set(sessionId, undefined)
  }

  // The kept values far enough ahead of the stored ones, as records to write
  // now; they are no longer kept.
  due (): CommitRecord[] {
    const records: CommitRecord[] = []
    for (const [sessionId, commitIndex] of this.#kept) {
      if (commitIndex - (this.#stored.get(sessionId) ?? 0) < COMMIT_INDEX_WRITE_EVERY) continue
      records.push({ kind: 'session-commit', sessionId, commitIndex })
    }
    for (const record of records) this.#set(record.sessionId, undefined)
    return records
  }

  // Every kept value, as records to write now (close()).
  all (): CommitRecord[] {
    const records: CommitRecord[] = [...this.#kept].map(([sessionId, commitIndex]) => ({ kind: 'session-commit', sessionId, commitIndex }))
    for (const record of records) this.#set(record.sessionId, undefined)
    return records
  }

  // A transaction begins: changes from now on are undone by rollback().
  #begin (): void {
    this.#undo = []
  }

  // Begins a batch's transaction and keeps its commit indexes; returns the
  // batch's other records, in order. A commit index kept from before a delete
  // in the batch is forgotten, so it cannot create the session again.
  beginBatch (records: SessionDurable[]): SessionDurable[] {
    this.#begin()
    const rest: SessionDurable[] = []
    for (const record of records) {
      if (record.kind === 'session-commit') {
        this.#keep(record)
        continue
      }
      if (record.kind === 'session-delete') this.#forget(record.sessionId)
      rest.push(record)
    }
    return rest
  }

  // The transaction failed: kept values are as they were before it began, and
  // stored ones unknown (its rows were not written).
  rollback (): void {
    for (let i = this.#undo.length - 1; i >= 0; i--) {
      const [sessionId, before] = this.#undo[i]
      if (before === undefined) this.#kept.delete(sessionId)
      else this.#kept.set(sessionId, before)
    }
    this.#undo = []
    this.#stored.clear()
  }

  #set (sessionId: string, commitIndex: number | undefined): void {
    this.#undo.push([sessionId, this.#kept.get(sessionId)])
    if (commitIndex === undefined) this.#kept.delete(sessionId)
    else this.#kept.set(sessionId, commitIndex)
  }
}
