// The session store alone: what a group commit costs on one agent, by how many
// sessions it carries (one entry of a 256-byte delta each, as the replication
// benchmark's terminals append), beside the layout it replaced.
//
// - edge-agent's SessionStore: write() (one transaction) and then an fdatasync
//   of the WAL, as the host runs them, entries keyed by seq (schema 2).
// - the same statements and pragmas on the version 1 layout: entries keyed by
//   (session_id, idx), whose index takes a leaf page per session or few.
//
// Each batch is measured for CPU (user + system of this process, the fsync's
// own included) and for the wall time of its fsync; WAL frames per batch come
// from the WAL file's own frame headers (WalFrames). Run alone:
// `node bench/store.ts`.

import { mkdtempSync, openSync, fdatasyncSync, closeSync, readSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { crc32 } from 'node:zlib'
import { SessionStore } from '../agent/runtime/session-store.ts'
import type { SessionDurable } from '../agent/sessions/types.ts'
import { fmt } from './lib.ts'

export type StoreRow = { layout: string; sessionsPerBatch: number; batches: number; cpuUsPerEntry: number; fsyncMsPerBatch: number; walFramesPerBatch: number }
export type DeleteRow = {
  scenario: string; deletedSessions: number; entriesEach: number; keptSessions: number
  // Schema version 2's delete: every row of the deleted sessions in the delete's own write.
  atOnceMs: number
  // Graves: the delete's write, then the kept sessions' writes until the rows are reclaimed.
  deleteWriteMs: number; longestLaterWriteMs: number; laterWrites: number; totalMs: number
  // The longest checkpoint after those writes: its copy of the WAL into the
  // database file (on the event loop) and that file's fdatasync (in the thread
  // pool, in the agent), each the longest of the run. Absent in runs before
  // they were measured apart.
  longestCheckpointCopyMs?: number
  longestCheckpointFsyncMs?: number
}
export type StoreResult = { valueBytes: number; snapshotEvery: number; rows: StoreRow[]; deletes?: DeleteRow[] }

const VALUE_BYTES = 256
// Each session is snapshotted every this many entries (the agent's default
// snapshotEveryEntries), the sessions' snapshots spread evenly over the cycle;
// the measured batches follow one whole cycle of warming up, so that each
// session has a log of this length and snapshots as a session that has run a
// while does.
const SNAPSHOT_EVERY = 1_000

// Counts the frames of a WAL's current generation by their 24-byte headers
// (their salts match the file header's), without reading pages or checking
// checksums (wal-check.ts does that): a few small reads per batch. After a
// checkpoint SQLite writes the WAL again from its start under new salts; the
// count then starts again from 0, and frames written before the restart in the
// same batch are not counted (at most one batch in ~1,000 pages).
class WalFrames {
  readonly #path: string
  #fd: number | null = null
  #salts = ''
  #frames = 0
  #counted = 0

  constructor (path: string) {
    this.#path = path
  }

  // Frames written since this counter was made.
  count (): number {
    this.#fd ??= openSync(this.#path, 'r')
    const header = Buffer.alloc(32)
    if (readSync(this.#fd, header, 0, 32, 0) < 32) return this.#counted
    const pageSize = header.readUInt32BE(8)
    const salts = header.subarray(16, 24).toString('hex')
    if (salts !== this.#salts) {
      // A new generation: its frames so far are new.
      this.#salts = salts
      this.#frames = 0
    }
    const frameHeader = Buffer.alloc(24)
    for (;;) {
      const at = 32 + this.#frames * (24 + pageSize)
      if (readSync(this.#fd, frameHeader, 0, 24, at) < 24) break
      if (frameHeader.subarray(8, 16).toString('hex') !== salts) break
      this.#frames++
      this.#counted++
    }
    return this.#counted
  }

  close (): void {
    if (this.#fd !== null) closeSync(this.#fd)
  }
}

function ids (n: number): string[] {
  return Array.from({ length: n }, (_, i) => `cart:${(i * 7919 + 1).toString(16).padStart(16, '0')}`)
}

function delta (index: number) {
  return { kind: 'delta' as const, clientSeq: index, op: { set: 'x'.repeat(VALUE_BYTES) } }
}

// The sessions of a batch at `index` due for a snapshot at it (session i of n
// at indexes ≡ i·SNAPSHOT_EVERY/n modulo SNAPSHOT_EVERY).
function dueForSnapshot (sessions: string[], index: number): string[] {
  const step = SNAPSHOT_EVERY / sessions.length
  return sessions.filter((_, i) => (index + Math.round(i * step)) % SNAPSHOT_EVERY === 0)
}

const STATE = { items: Array.from({ length: 16 }, (_, i) => ({ sku: `sku-${i}`, qty: i })) }

function snapshotBody (sessionId: string, index: number) {
  return {
    index,
    indexEpoch: 1,
    info: { sessionId, service: 'cart', terminalId: 'till-1', tokenHash: 'ab'.repeat(32), position: { lat: 0, lon: 0 } },
    config: { members: ['a', 'b', 'c'], witness: null },
    state: STATE,
    dedup: { lastClientSeq: index, recent: [] }
  }
}

type Layout = { write: (sessions: string[], index: number) => void; sync: () => void; walPath: string; close: () => void }

function currentLayout (dir: string): Layout {
  const path = join(dir, 'sessions.db')
  const store = SessionStore.open(path)
  return {
    write: (sessions, index) => {
      const records: SessionDurable[] = sessions.map((sessionId) => ({ kind: 'session-entries', sessionId, entries: [{ index, epoch: 1, body: delta(index) }] }))
      for (const sessionId of dueForSnapshot(sessions, index)) records.push({ kind: 'session-snapshot', sessionId, snapshot: snapshotBody(sessionId, index) as never })
      store.write(records)
    },
    sync: () => { store.syncNow() },
    walPath: `${path}-wal`,
    close: () => { store.close() }
  }
}

// Version 1's tables, written with the statements version 1 ran: a
// transaction, one INSERT per entry with its checksum; a snapshot replaced,
// then the entries it covers deleted by session and index.
function version1Layout (dir: string): Layout {
  const path = join(dir, 'v1.db')
  const db = new DatabaseSync(path)
  db.exec('PRAGMA synchronous = NORMAL')
  db.exec('PRAGMA journal_mode = WAL')
  db.exec(`CREATE TABLE entries (session_id TEXT NOT NULL, idx INTEGER NOT NULL, epoch INTEGER NOT NULL, body TEXT NOT NULL, crc INTEGER NOT NULL,
      PRIMARY KEY (session_id, idx)) STRICT;
    CREATE TABLE snapshots (session_id TEXT PRIMARY KEY, idx INTEGER NOT NULL, body TEXT NOT NULL, crc INTEGER NOT NULL) STRICT`)
  const insert = db.prepare('INSERT INTO entries (session_id, idx, epoch, body, crc) VALUES ($id, $idx, $epoch, $body, $crc)')
  const putSnapshot = db.prepare(`INSERT INTO snapshots (session_id, idx, body, crc) VALUES ($id, $idx, $body, $crc)
    ON CONFLICT (session_id) DO UPDATE SET idx = excluded.idx, body = excluded.body, crc = excluded.crc`)
  const deleteUpTo = db.prepare('DELETE FROM entries WHERE session_id = $id AND idx <= $idx')
  const begin = db.prepare('BEGIN IMMEDIATE')
  const commit = db.prepare('COMMIT')
  const crc = (key: unknown[], body: string): number => crc32(body, crc32(JSON.stringify(key)))
  let fd: number | null = null
  return {
    write: (sessions, index) => {
      begin.run()
      for (const id of sessions) {
        const body = JSON.stringify(delta(index))
        insert.run({ id, idx: index, epoch: 1, body, crc: crc([id, index, 1], body) })
      }
      for (const id of dueForSnapshot(sessions, index)) {
        const body = JSON.stringify(snapshotBody(id, index))
        putSnapshot.run({ id, idx: index, body, crc: crc([id, index], body) })
        deleteUpTo.run({ id, idx: index })
      }
      commit.run()
      fd ??= openSync(`${path}-wal`, 'r')
    },
    sync: () => { if (fd !== null) fdatasyncSync(fd) },
    walPath: `${path}-wal`,
    close: () => {
      if (fd !== null) closeSync(fd)
      db.close()
    }
  }
}

function measure (name: string, make: (dir: string) => Layout, sessionsPerBatch: number, batches: number): StoreRow {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-bench-store-'))
  const layout = make(dir)
  try {
    const sessions = ids(sessionsPerBatch)
    let index = 0
    while (index < SNAPSHOT_EVERY) layout.write(sessions, ++index)
    layout.sync()
    let cpuUs = 0
    let fsyncMs = 0
    let frames = 0
    const wal = new WalFrames(layout.walPath)
    for (let b = 1; b <= batches; b++) {
      const before = wal.count()
      const cpu = process.cpuUsage()
      layout.write(sessions, ++index)
      const startedSync = performance.now()
      layout.sync()
      fsyncMs += performance.now() - startedSync
      const used = process.cpuUsage(cpu)
      cpuUs += used.user + used.system
      frames += wal.count() - before
    }
    wal.close()
    return { layout: name, sessionsPerBatch, batches, cpuUsPerEntry: cpuUs / (batches * sessionsPerBatch), fsyncMsPerBatch: fsyncMs / batches, walFramesPerBatch: frames / batches }
  } finally {
    layout.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---- deleting sessions -------------------------------------------------------

// `sessions` sessions of `entries` entries each, one entry of each per group
// commit (interleaved, as the agent writes them), in a store at `path`.
function fillInterleaved (path: string, sessions: string[], entries: number): void {
  const store = SessionStore.open(path)
  try {
    for (let index = 1; index <= entries; index++) {
      store.write(sessions.map((sessionId) => ({ kind: 'session-entries', sessionId, entries: [{ index, epoch: 1, body: delta(index) }] })))
      if (index % 100 === 0) store.syncNow()
    }
  } finally {
    store.close()
  }
}

// Schema version 2 deleted a session's rows, live and dead, with it: one
// DELETE by seq for each session (its seqs from the store's map in memory;
// here read first, untimed), in the delete's own transaction.
function deleteAtOnce (path: string, doomed: string[]): number {
  const db = new DatabaseSync(path)
  try {
    const seqsOf = db.prepare('SELECT json_group_array(seq) AS seqs FROM entries WHERE session_id = ?')
    const seqs = doomed.map((id) => (seqsOf.get(id) as { seqs: string }).seqs)
    const remove = db.prepare('DELETE FROM entries WHERE seq IN (SELECT value FROM json_each(?))')
    const removeSession = db.prepare('DELETE FROM sessions WHERE session_id = ?')
    const started = performance.now()
    db.exec('BEGIN IMMEDIATE')
    doomed.forEach((id, i) => { remove.run(seqs[i]); removeSession.run(id) })
    db.exec('COMMIT')
    return performance.now() - started
  } finally {
    db.close()
  }
}

// The store: the delete's write, then one entry for each kept session per
// write (and an fsync each, untimed) until only their rows are left. The kept
// sessions hold `from` - 1 entries each already.
function deleteWithGraves (path: string, doomed: string[], kept: string[], from: number): Omit<DeleteRow, 'scenario' | 'deletedSessions' | 'entriesEach' | 'keptSessions' | 'atOnceMs'> {
  const store = SessionStore.open(path)
  const rows = new DatabaseSync(path, { readOnly: true })
  const count = rows.prepare('SELECT count(*) AS n FROM entries')
  const writeKept = (index: number): void => { store.write(kept.map((sessionId) => ({ kind: 'session-entries', sessionId, entries: [{ index, epoch: 1, body: delta(index) }] }))) }
  try {
    // A first write reads the rows' seqs (once per start of the agent), untimed.
    writeKept(from)
    store.syncNow()
    let started = performance.now()
    store.write(doomed.map((sessionId) => ({ kind: 'session-delete', sessionId })))
    const deleteWriteMs = performance.now() - started
    let totalMs = deleteWriteMs
    let longest = 0
    let writes = 0
    let longestCheckpointCopyMs = 0
    let longestCheckpointFsyncMs = 0
    // As the agent does (sessions-host.ts): once the fsync returned, a checkpoint
    // when the WAL holds enough frames. checkpoint() copies the WAL into the
    // database file on the event loop and starts that file's fdatasync in the
    // thread pool; syncNow() waits for an fdatasync of it here (the agent's
    // event loop goes on meanwhile, its session writes held).
    const syncAndCheckpoint = (): void => {
      store.syncNow()
      if (!store.checkpointDue()) return
      const at = performance.now()
      store.checkpoint(() => {})
      const copied = performance.now()
      store.syncNow()
      longestCheckpointCopyMs = Math.max(longestCheckpointCopyMs, copied - at)
      longestCheckpointFsyncMs = Math.max(longestCheckpointFsyncMs, performance.now() - copied)
    }
    syncAndCheckpoint()
    for (let index = from + 1; (count.get() as { n: number }).n > kept.length * (index - 1) && writes < 1_000; index++) {
      started = performance.now()
      writeKept(index)
      const ms = performance.now() - started
      syncAndCheckpoint()
      totalMs += ms
      longest = Math.max(longest, ms)
      writes++
    }
    return { deleteWriteMs, longestLaterWriteMs: longest, laterWrites: writes, totalMs, longestCheckpointCopyMs, longestCheckpointFsyncMs }
  } finally {
    rows.close()
    store.close()
  }
}

// `kept` of the `sessions` filled go on writing; with none, a new session writes.
const DELETE_SCENARIOS = [
  { scenario: '64 sessions written alike, 63 deleted', sessions: 64, kept: 1, entries: 2_000 },
  { scenario: '64 sessions written alike, 56 deleted', sessions: 64, kept: 8, entries: 2_000 },
  { scenario: '512 sessions of 250 entries written alike, 448 deleted', sessions: 512, kept: 64, entries: 250 },
  { scenario: 'one session of 65,000 entries deleted', sessions: 1, kept: 0, entries: 65_000 }
]

export function benchDeletes (): DeleteRow[] {
  return DELETE_SCENARIOS.map(({ scenario, sessions: n, kept: k, entries }) => {
    const sessions = ids(n)
    const kept = k > 0 ? sessions.slice(0, k) : ['cart:writer']
    const doomed = sessions.slice(k)
    // Side by side, alternating, twice each (the mean of the two).
    const runs: Array<{ atOnceMs: number; graves: ReturnType<typeof deleteWithGraves> }> = []
    for (let round = 0; round < 2; round++) {
      const dir = mkdtempSync(join(tmpdir(), 'edge-agent-bench-store-'))
      try {
        fillInterleaved(join(dir, 'a.db'), sessions, entries)
        fillInterleaved(join(dir, 'b.db'), sessions, entries)
        const atOnceMs = deleteAtOnce(join(dir, 'a.db'), doomed)
        runs.push({ atOnceMs, graves: deleteWithGraves(join(dir, 'b.db'), doomed, kept, k > 0 ? entries + 1 : 1) })
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
    const mean = (f: (r: typeof runs[number]) => number): number => (f(runs[0]) + f(runs[1])) / 2
    return {
      scenario, deletedSessions: doomed.length, entriesEach: entries, keptSessions: k,
      atOnceMs: mean((r) => r.atOnceMs),
      deleteWriteMs: mean((r) => r.graves.deleteWriteMs),
      longestLaterWriteMs: mean((r) => r.graves.longestLaterWriteMs),
      laterWrites: mean((r) => r.graves.laterWrites),
      totalMs: mean((r) => r.graves.totalMs),
      longestCheckpointCopyMs: mean((r) => r.graves.longestCheckpointCopyMs ?? 0),
      longestCheckpointFsyncMs: mean((r) => r.graves.longestCheckpointFsyncMs ?? 0)
    }
  })
}

export function benchStore (): StoreResult {
  const rows: StoreRow[] = []
  for (const sessionsPerBatch of [1, 16, 64]) {
    const batches = SNAPSHOT_EVERY
    // Side by side, alternating, twice each: the median of two is their mean.
    const pair = (): StoreRow[] => [measure('edge-agent (entries by seq)', currentLayout, sessionsPerBatch, batches), measure('version 1 layout (entries by session, index)', version1Layout, sessionsPerBatch, batches)]
    const [a1, b1] = pair()
    const [a2, b2] = pair()
    for (const [x, y] of [[a1, a2], [b1, b2]]) {
      rows.push({ ...x, cpuUsPerEntry: (x.cpuUsPerEntry + y.cpuUsPerEntry) / 2, fsyncMsPerBatch: (x.fsyncMsPerBatch + y.fsyncMsPerBatch) / 2, walFramesPerBatch: (x.walFramesPerBatch + y.walFramesPerBatch) / 2 })
    }
  }
  return { valueBytes: VALUE_BYTES, snapshotEvery: SNAPSHOT_EVERY, rows, deletes: benchDeletes() }
}

export function storeMarkdown (r: StoreResult): string[] {
  const lines = ['## The session store alone: one group commit per batch', '',
    `One agent's store, one entry (a ${r.valueBytes}-byte delta) per session per batch, each session snapshotted every ${r.snapshotEvery} entries (the snapshots spread evenly), measured over ${r.snapshotEvery} batches after as many to warm up. ` +
    'CPU: user + system of the process per entry, the fdatasync of the WAL included; fsync: its wall time per batch; WAL frames: 4 KiB pages written per batch. ' +
    'Two runs of each layout, alternating, averaged. The version 1 rows run bare statements on version 1\'s tables, without the store\'s own bookkeeping (checksums of keys, kept commit indexes: a few µs per batch).', '',
    '| layout | sessions per batch | batches | CPU µs per entry | fsync ms per batch | WAL frames per batch |', '|---|---|---|---|---|---|']
  for (const row of r.rows) lines.push(`| ${row.layout} | ${row.sessionsPerBatch} | ${row.batches} | ${fmt(row.cpuUsPerEntry, 1)} | ${fmt(row.fsyncMsPerBatch, 2)} | ${fmt(row.walFramesPerBatch, 1)} |`)
  const ratios: string[] = []
  for (const n of new Set(r.rows.map((row) => row.sessionsPerBatch))) {
    const [now, before] = r.rows.filter((row) => row.sessionsPerBatch === n)
    ratios.push(`${n} per batch: ${fmt(before.cpuUsPerEntry / now.cpuUsPerEntry, 1)}× less CPU, ${fmt(before.walFramesPerBatch / now.walFramesPerBatch, 1)}× fewer WAL pages`)
  }
  lines.push('', `Version 1 layout / edge-agent: ${ratios.join('; ')}.`)
  if (r.deletes === undefined) return lines
  lines.push('', '### Deleting sessions', '',
    'Sessions of 256-byte deltas written one entry each per group commit (interleaved, as the agent writes them), then deleted in one write, as a burst of closes does. ' +
    'Schema version 2 deleted every row of a deleted session in that write (its statements, run bare on the same table). ' +
    'Now the rows wait under a grave and the reclaims free them at the next writes (the kept sessions write one entry each per write), each within a budget of 8,192 rows deleted in a range: ' +
    'a row moved (a kept session\'s run copied to the end of the table, so that the cut can pass it) counts 5, or 13 when its old row lies above the cut and is deleted one by one (RECLAIM_COST, agent/runtime/session-store-seqs.ts); at least one run moves per write. ' +
    'Milliseconds of the event loop inside write() (the fsync, in the thread pool, excluded); two runs of each, alternating, averaged. ' +
    'After each write\'s fsync a checkpoint runs when due, as in the agent: it copies the WAL into the database file on the event loop (the longest copy: next to last column), then fdatasyncs that file in the thread pool, the agent\'s session writes held meanwhile but its event loop free (the longest fdatasync: last column). Neither is counted in the other columns.', '',
    '| scenario | rows deleted | at once (version 2): the delete\'s write, ms | graves: the delete\'s write, ms | graves: longest later write, ms | writes until reclaimed | graves: all writes, ms | checkpoint: longest copy (event loop), ms | checkpoint: longest fdatasync (thread pool), ms |', '|---|---|---|---|---|---|---|---|---|')
  const ms = (value: number | undefined): string => value === undefined ? '-' : fmt(value, 1)
  for (const d of r.deletes) lines.push(`| ${d.scenario} | ${d.deletedSessions * d.entriesEach} | ${fmt(d.atOnceMs, 1)} | ${fmt(d.deleteWriteMs, 1)} | ${fmt(d.longestLaterWriteMs, 1)} | ${fmt(d.laterWrites, 0)} | ${fmt(d.totalMs, 1)} | ${ms(d.longestCheckpointCopyMs)} | ${ms(d.longestCheckpointFsyncMs)} |`)
  lines.push('', `Longest write, at once / graves: ${r.deletes.map((d) => `${d.scenario}: ${fmt(d.atOnceMs / Math.max(d.deleteWriteMs, d.longestLaterWriteMs), 1)}×`).join('; ')}.`)
  return lines
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(storeMarkdown(benchStore()).join('\n') + '\n')
