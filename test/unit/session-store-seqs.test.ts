// The session store's entries table keyed by seq (schema version 2): the rows a
// snapshot, a truncate or a delete removes are found by seq, a group commit of
// many sessions appends to the table's end, and a version 1 store is migrated.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { DatabaseSync } from 'node:sqlite'
import { join } from 'node:path'
import { SessionStore, SessionStoreError, SESSION_STORE_SCHEMA_VERSION } from '../../agent/runtime/session-store.ts'
import { DEAD_ROWS, EntrySeqs, RECLAIM_COST, planReclaim } from '../../agent/runtime/session-store-seqs.ts'
import type { DeadRowLimits } from '../../agent/runtime/session-store-seqs.ts'
import { checkWalFile } from '../../agent/runtime/wal-check.ts'
import type { LogEntry, SessionSnapshotBody } from '../../protocol/messages.ts'
import type { SessionDurable, StoredSession } from '../../agent/sessions/types.ts'
import { withDir as withTempDir } from '../fixtures/temp-dir.ts'
import { loadFrom, sql } from '../fixtures/store.ts'

const SEED = Number(process.env.STORE_SEED ?? 20261123)

const withDir = (run: (dir: string) => void): void => { withTempDir('seqs', run) }

const CONFIG = { members: ['peer-a', 'peer-b'], witness: 'peer-w' }
const INFO = { sessionId: 's', service: 'cart', terminalId: 'till-7', tokenHash: 'ab'.repeat(32), position: { lat: 52.52, lon: 13.405 } }

function entry (sessionId: string, index: number, epoch = 1, pad = 0): LogEntry {
  if (index === 1) return { index, epoch, body: { kind: 'create', info: { ...INFO, sessionId }, config: CONFIG } }
  return { index, epoch, body: { kind: 'delta', clientSeq: index, op: { add: `item-${index}`, pad: 'x'.repeat(pad) } } }
}

function snapshot (sessionId: string, index: number): SessionSnapshotBody {
  return { index, indexEpoch: 1, info: { ...INFO, sessionId }, config: CONFIG, state: { upTo: index }, dedup: { lastClientSeq: index, recent: [] } }
}

function entries (sessionId: string, list: LogEntry[]): SessionDurable {
  return { kind: 'session-entries', sessionId, entries: list }
}

test('a group commit of one entry for each of 64 sessions appends a few WAL pages, not a page per session', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const store = SessionStore.open(path)
    try {
      const ids = Array.from({ length: 64 }, (_, i) => `cart:${(i * 7919).toString(16).padStart(16, '0')}`)
      // Enough entries per session that each session's rows span pages of their own.
      for (let index = 1; index <= 40; index++) store.apply(ids.map((id) => entries(id, [entry(id, index, 1, 256)])))
      const before = checkWalFile(`${path}-wal`).validFrames
      store.apply(ids.map((id) => entries(id, [entry(id, 41, 1, 256)])))
      const frames = checkWalFile(`${path}-wal`).validFrames - before
      // 64 × ~330 bytes is ~6 pages of rows, plus the pages a split and the
      // database header touch. Keyed by (session, index), as in version 1, the
      // same batch writes 31 (a leaf of the key's index for every few sessions).
      assert.ok(frames > 0 && frames <= 12, `the batch wrote ${frames} WAL frames`)
    } finally {
      store.close()
    }
    assert.is(loadFrom(path).length, 64)
  })
})

const rowsOf = (path: string): Array<[string, number]> =>
  sql<{ session_id: string; idx: number }>(path, 'SELECT session_id, idx FROM entries ORDER BY seq').map((row) => [row.session_id, row.idx])

test('a truncate deletes its rows at once; a snapshot\'s rows wait, skipped by load, until their session is deleted or DEAD_ROWS.reclaim of them wait', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    let store = SessionStore.open(path)
    try {
      // Two sessions' rows interleaved, as group commits write them.
      for (let index = 1; index <= 10; index++) store.apply([entries('a', [entry('a', index)]), entries('b', [entry('b', index)])])
      store.apply([{ kind: 'session-snapshot', sessionId: 'a', snapshot: snapshot('a', 4) }])
      store.apply([{ kind: 'session-truncate', sessionId: 'a', fromIndex: 9 }])
      assert.equal(rowsOf(path).filter(([id]) => id === 'a').map(([, idx]) => idx), [1, 2, 3, 4, 5, 6, 7, 8], 'the tail is gone, the snapshot\'s rows wait')
      assert.equal(store.load()[0].entries.map((e) => e.index), [5, 6, 7, 8])
    } finally {
      store.close()
    }
    // After a reopen they are found dead again, and still skipped.
    store = SessionStore.open(path)
    try {
      assert.equal(store.load()[0].entries.map((e) => e.index), [5, 6, 7, 8])
      store.apply([{ kind: 'session-snapshot', sessionId: 'b', snapshot: snapshot('b', 6) }, entries('a', [entry('a', 9, 2), entry('a', 10, 2)])])
      store.apply([{ kind: 'session-delete', sessionId: 'b' }])
    } finally {
      store.close()
    }
    assert.equal(rowsOf(path).filter(([id]) => id === 'b').length, 10, 'a deleted session\'s rows, live and dead, wait for a reclaim')
    assert.equal(sql<{ session_id: string }>(path, 'SELECT session_id FROM graves'), [{ session_id: 'b' }], 'under a grave')
    const [a, ...others] = loadFrom(path)
    assert.equal(others, [], 'load skips a grave\'s rows')
    assert.equal(a.entries.map((e) => [e.index, e.epoch]), [[5, 1], [6, 1], [7, 1], [8, 1], [9, 2], [10, 2]])

    // DEAD_ROWS.reclaim dead rows are reclaimed together, by the batch that makes them so many.
    store = SessionStore.open(path)
    try {
      let index = 10
      const per = 500
      while (index + per <= 10 + DEAD_ROWS.reclaim) {
        store.apply([entries('a', Array.from({ length: per }, (_, i) => entry('a', index + 1 + i)))])
        index += per
        store.apply([{ kind: 'session-snapshot', sessionId: 'a', snapshot: snapshot('a', index - 1) }])
      }
      const waiting = rowsOf(path).length - 1
      assert.ok(waiting > DEAD_ROWS.reclaim - per && waiting < DEAD_ROWS.reclaim, `${waiting} dead rows wait`)
      store.apply([entries('a', Array.from({ length: per }, (_, i) => entry('a', index + 1 + i)))])
      index += per
      store.apply([{ kind: 'session-snapshot', sessionId: 'a', snapshot: snapshot('a', index - 1) }])
      assert.equal(rowsOf(path), [['a', index]], 'only the live row is left, the grave\'s rows gone too')
      assert.equal(sql(path, 'SELECT session_id FROM graves'), [], 'and the grave with them')
      assert.equal(store.load()[0].entries.map((e) => e.index), [index])
    } finally {
      store.close()
    }
  })
})

const run = (first: number, seqs: number[]) => ({ first, seqs })

test('planReclaim: the oldest live row is the cutoff; a quiet session\'s few old rows are moved past, a busy session\'s many are not', () => {
  const dead = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
  // Steady state: every run's rows are recent, the dead ones older.
  let plan = planReclaim([run(1, [101, 103]), run(1, [102, 104])], dead(1, 100), 105)
  assert.equal(plan, { cutoff: 101, move: [], capped: false })
  // A quiet run of 2 rows at seqs 5 and 6 holds back 98 dead rows: moved.
  const quiet = run(1, [5, 6])
  plan = planReclaim([run(1, [101, 103]), quiet], [...dead(1, 4), ...dead(7, 100)], 105)
  assert.equal(plan, { cutoff: 101, move: [quiet], capped: false })
  // A run of 60 old rows holding back 40 dead rows is left where it is.
  plan = planReclaim([run(1, [...dead(1, 30), ...dead(71, 100)]), run(1, [101])], dead(31, 70), 102)
  assert.equal(plan, { cutoff: 1, move: [], capped: false })
  // No live row at all: everything goes.
  plan = planReclaim([run(5, [])], dead(1, 9), 10)
  assert.equal(plan, { cutoff: 10, move: [], capped: false })
})

test('planReclaim with a budget: a plan over it is carried out in parts, oldest rows first, each within the budget', () => {
  const dead = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
  // Three quiet runs of 2 old rows each hold back 94 dead rows: the whole plan
  // moves all three (6 rows copied) and frees the 94. Its cost (RECLAIM_COST):
  // 94 dead rows, and 6 rows copied (4 each) whose old rows go in the range
  // below the cut (1 each): 124.
  const quiet = [run(1, [1, 2]), run(1, [3, 4]), run(1, [5, 6])]
  const busy = run(1, [101])
  const deadRows = dead(7, 100)
  assert.equal(planReclaim([busy, ...quiet], deadRows, 102), { cutoff: 101, move: quiet, capped: false })
  assert.equal(planReclaim([busy, ...quiet], deadRows, 102, 124), { cutoff: 101, move: quiet, capped: false }, 'within the budget: whole')
  // A budget of 30: two runs (20); the third still holds the cut at its oldest
  // row. The next part moves it, its rows counted as deleted one by one (26),
  // and frees the 4 dead rows the rest of the budget holds.
  assert.equal(planReclaim([busy, ...quiet], deadRows, 102, 30), { cutoff: 5, move: quiet.slice(0, 2), capped: true })
  const moved = [run(1, [102, 103]), run(1, [104, 105])]
  assert.equal(planReclaim([busy, quiet[2], ...moved], deadRows, 106, 30), { cutoff: 11, move: [quiet[2]], capped: true })
  // A run moved whose old rows lie above the cut costs more: 13 a row (copied,
  // then deleted one by one). Two runs interleaved with dead rows up to seq 40:
  // moving the first with the cut at the second's oldest row leaves its later
  // rows above the cut.
  const spread = run(1, [1, 3, 21, 23])
  const other = run(1, [2, 4, 22, 24])
  const deadSpread = [...dead(5, 20), ...dead(25, 40)]
  // The whole plan (both runs, cut at 41): 32 dead rows, 8 rows copied and
  // deleted in the range: 72. Within a budget of 72; at 71, the first run alone
  // with the cut at seq 2 costs 4 × 4 + 1 + 9 × 3 = 44, and nothing more fits.
  assert.equal(planReclaim([spread, other], deadSpread, 41, 72), { cutoff: 41, move: [spread, other], capped: false })
  assert.equal(planReclaim([spread, other], deadSpread, 41, 71), { cutoff: 2, move: [spread], capped: true })
  assert.equal(planReclaim([spread, other], deadSpread, 41, 43).move, [spread], 'one run at least, when nothing else can go')
  // Dead rows below the oldest live row only: up to the budget of them.
  assert.equal(planReclaim([run(1, [60])], dead(1, 59), 61, 10), { cutoff: 11, move: [], capped: true })
  // One run larger than the budget, and nothing else to free: it moves alone.
  const big = run(1, dead(1, 20))
  assert.equal(planReclaim([big, run(1, [200])], dead(21, 199), 201, 10), { cutoff: 21, move: [big], capped: true })
  // Nothing worth moving: no plan, whatever the budget.
  assert.equal(planReclaim([run(1, [...dead(1, 30), ...dead(71, 100)]), run(1, [101])], dead(31, 70), 102, 10), { cutoff: 1, move: [], capped: false })
})

// The store's reclaim (session-store.ts) on a model of the table: returns the
// rows it touched (copied twice, deleted once).
function reclaimModel (seqs: EntrySeqs, rows: Set<number>, next: { seq: number }): number {
  const plan = seqs.planReclaim(next.seq)
  const moved = plan.move.flatMap((r) => r.seqs)
  const movedSet = new Set(moved)
  let touched = 2 * moved.length
  for (const seq of [...rows]) if (seq < plan.cutoff && !movedSet.has(seq)) { rows.delete(seq); touched++ }
  for (const seq of moved) rows.delete(seq)
  const base = next.seq
  for (let i = 0; i < moved.length; i++) rows.add(base + i)
  next.seq += moved.length
  for (const seq of seqs.reclaimed(plan, base)) { rows.delete(seq); touched++ }
  return touched
}

// 64 sessions appended to alike, 50 entries each per batch, each snapshotting
// every 1,000–1,500 entries (as snapshotSpread spreads them): every live run
// reaches back ~1,000 entries of each session, interleaved.
function writtenAlike (limits: DeadRowLimits): { worst: number; total: number; maxDead: number; appended: number } {
  const seqs = new EntrySeqs(limits)
  const rows = new Set<number>()
  const next = { seq: 1 }
  const ids = Array.from({ length: 64 }, (_, i) => `s${i}`)
  const every = new Map(ids.map((id, i) => [id, 1_000 + Math.round((i * 37 % 64) * 500 / 64)]))
  const applied = new Map(ids.map((id) => [id, 0]))
  const snapped = new Map(ids.map((id) => [id, 0]))
  for (const id of ids) seqs.start(id, 0)
  let worst = 0
  let total = 0
  let maxDead = 0
  let appended = 0
  for (let batch = 0; batch < 250; batch++) {
    for (const id of ids) {
      const run = seqs.get(id)!
      for (let i = 0; i < 50; i++) { seqs.push(run, next.seq); rows.add(next.seq++) }
      appended += 50
      applied.set(id, applied.get(id)! + 50)
      if (applied.get(id)! - snapped.get(id)! >= every.get(id)!) {
        snapped.set(id, applied.get(id)!)
        seqs.bury(id, seqs.cutUpTo(run, applied.get(id)!))
      }
    }
    if (seqs.reclaimDue()) {
      const touched = reclaimModel(seqs, rows, next)
      worst = Math.max(worst, touched)
      total += touched
    }
    const live = ids.reduce((n, id) => n + seqs.get(id)!.seqs.length, 0)
    maxDead = Math.max(maxDead, rows.size - live)
  }
  return { worst, total, maxDead, appended }
}

test('sessions written alike: each reclaim touches at most the budget, for about the same work in all; without a budget one touched ~100,000 rows', () => {
  const budgeted = writtenAlike(DEAD_ROWS)
  const whole = writtenAlike({ ...DEAD_ROWS, budget: Infinity })
  console.log(`64 sessions alike, 800,000 entries: rows touched by one reclaim at most ${budgeted.worst} (budget ${DEAD_ROWS.budget}), ${whole.worst} without; in all ${budgeted.total} and ${whole.total}; dead rows at most ${budgeted.maxDead} and ${whole.maxDead}`)
  assert.ok(whole.worst > 8 * DEAD_ROWS.budget, 'the scenario does hold plans far over the budget')
  assert.ok(budgeted.worst <= DEAD_ROWS.budget, `one reclaim touched ${budgeted.worst} rows`)
  // Parts add up to about the work of whole plans, and keep up with the writes.
  assert.ok(budgeted.total <= 1.5 * whole.total, `${budgeted.total} rows touched in all, against ${whole.total}`)
  // More dead rows wait meanwhile (skipped by load: disk space, not state).
  assert.ok(budgeted.maxDead <= 3 * whole.maxDead, `${budgeted.maxDead} dead rows at once, against ${whole.maxDead}`)
})

test('dead rows past deleteOneByOne go one by one, as many a write as the budget holds at RECLAIM_COST.deleteOneByOne each', () => {
  const seqs = new EntrySeqs({ reclaim: 4, deleteOneByOne: 24, budget: 90 })
  const live = seqs.start('live', 0)
  for (let seq = 1; seq <= 60; seq++) seqs.push(live, seq)
  seqs.bury('gone', Array.from({ length: 40 }, (_, i) => 61 + i))
  assert.ok(seqs.reclaimDue())
  const plan = seqs.planReclaim(101)
  assert.equal(plan, { cutoff: 1, move: [], capped: false }, 'moving 60 live rows to free 40 is not worth it')
  const perWrite = Math.floor(90 / RECLAIM_COST.deleteOneByOne)
  assert.equal(seqs.reclaimed(plan, 101), Array.from({ length: perWrite }, (_, i) => 61 + i), `${perWrite} of the 40, oldest first`)
  assert.ok(seqs.reclaimDue(), 'the rest at the next write')
})

test('a quiet session holding back a reclaim has its rows copied to the end of the table; the rest is freed, and all of it loads after a reopen', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const deadRows = { reclaim: 40, deleteOneByOne: 1000, budget: 1000 }
    let store = SessionStore.open(path, { deadRows })
    try {
      store.apply([entries('quiet', [entry('quiet', 1), entry('quiet', 2)])])
      for (let index = 1; index <= 45; index++) store.apply([entries('busy', [entry('busy', index)])])
      store.apply([{ kind: 'session-snapshot', sessionId: 'busy', snapshot: snapshot('busy', 44) }])
      assert.equal(rowsOf(path), [['busy', 45], ['quiet', 1], ['quiet', 2]], 'quiet moved after busy\'s live row; every dead row freed')
      store.apply([entries('quiet', [entry('quiet', 3)]), { kind: 'session-truncate', sessionId: 'quiet', fromIndex: 2 }, entries('quiet', [entry('quiet', 2, 2)])])
      assert.equal(store.load().map((session) => [session.sessionId, session.entries.map((e) => [e.index, e.epoch])]), [['busy', [[45, 1]]], ['quiet', [[1, 1], [2, 2]]]])
    } finally {
      store.close()
    }
    store = SessionStore.open(path, { deadRows })
    try {
      assert.equal(store.load().map((session) => [session.sessionId, session.entries.map((e) => e.index)]), [['busy', [45]], ['quiet', [1, 2]]])
      store.apply([entries('quiet', [entry('quiet', 3)])])
      assert.equal(store.load()[1].entries.map((e) => e.index), [1, 2, 3])
    } finally {
      store.close()
    }
  })
})

test('entries of no stored session are reported at load, naming the session', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const store = SessionStore.open(path)
    store.apply([entries('a', [entry('a', 1), entry('a', 2)])])
    store.close()
    sql(path, "DELETE FROM sessions WHERE session_id = 'a'")
    let error: unknown = null
    try {
      loadFrom(path)
    } catch (caught) {
      error = caught
    }
    assert.instance(error, SessionStoreError)
    assert.match((error as Error).message, /session "a": 2 stored entries belong to no stored session/)
  })
})

// Turns a store back into version 2's: no graves (it deleted a session's rows
// with it).
function downgradeToVersion2 (path: string): void {
  const db = new DatabaseSync(path)
  db.exec(`BEGIN;
    DROP TABLE graves;
    DROP TABLE closed;
    UPDATE meta SET value = 2 WHERE key = 'schema_version';
    COMMIT`)
  db.close()
}

test('a version 2 store is migrated at open: graves added, the same sessions load, and a delete then leaves a grave', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    let store = SessionStore.open(path)
    for (let index = 1; index <= 10; index++) store.apply([entries('a', [entry('a', index)]), entries('b', [entry('b', index)])])
    const before = store.load()
    store.close()
    downgradeToVersion2(path)
    assert.equal(sql<{ n: number }>(path, "SELECT count(*) AS n FROM sqlite_schema WHERE name = 'graves'"), [{ n: 0 }])
    store = SessionStore.open(path)
    try {
      assert.equal(store.load(), before)
      store.apply([{ kind: 'session-delete', sessionId: 'b' }])
    } finally {
      store.close()
    }
    assert.equal(sql<{ value: number }>(path, "SELECT value FROM meta WHERE key = 'schema_version'"), [{ value: SESSION_STORE_SCHEMA_VERSION }])
    assert.equal(sql<{ session_id: string }>(path, 'SELECT session_id FROM graves'), [{ session_id: 'b' }])
    assert.equal(loadFrom(path).map((s) => s.sessionId), ['a'])
  })
})

// Turns a version 2 store back into version 1's layout: entries keyed by
// (session_id, idx), with a foreign key to their session.
function downgradeToVersion1 (path: string): void {
  const db = new DatabaseSync(path)
  db.exec(`BEGIN;
    CREATE TABLE entries_v1 (
      session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
      idx INTEGER NOT NULL,
      epoch INTEGER NOT NULL,
      body TEXT NOT NULL,
      crc INTEGER NOT NULL,
      PRIMARY KEY (session_id, idx)
    ) STRICT;
    INSERT INTO entries_v1 SELECT session_id, idx, epoch, body, crc FROM entries;
    DROP TABLE entries;
    ALTER TABLE entries_v1 RENAME TO entries;
    DROP TABLE graves;
    DROP TABLE closed;
    UPDATE meta SET value = 1 WHERE key = 'schema_version';
    COMMIT`)
  db.close()
}

test('a version 1 store is migrated at open: the same sessions load, and it goes on taking writes', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    let store = SessionStore.open(path)
    for (let index = 1; index <= 30; index++) store.apply([entries('a', [entry('a', index)]), entries('b', [entry('b', index)])])
    store.apply([{ kind: 'session-snapshot', sessionId: 'a', snapshot: snapshot('a', 10) }, { kind: 'session-meta', sessionId: 'b', epoch: 3, votedFor: 'peer-b' }])
    const before = store.load()
    store.close()
    downgradeToVersion1(path)
    assert.equal(sql<{ value: number }>(path, "SELECT value FROM meta WHERE key = 'schema_version'"), [{ value: 1 }])

    store = SessionStore.open(path)
    try {
      assert.equal(store.load(), before)
      store.apply([entries('a', [entry('a', 31)]), { kind: 'session-truncate', sessionId: 'b', fromIndex: 20 }])
      store.apply([{ kind: 'session-snapshot', sessionId: 'a', snapshot: snapshot('a', 25) }])
    } finally {
      store.close()
    }
    assert.equal(sql<{ value: number }>(path, "SELECT value FROM meta WHERE key = 'schema_version'"), [{ value: SESSION_STORE_SCHEMA_VERSION }])
    const [a, b] = loadFrom(path)
    assert.equal(a.entries.map((e) => e.index), [26, 27, 28, 29, 30, 31])
    assert.is(a.snapshot?.index, 25)
    assert.equal(b.entries.map((e) => e.index), Array.from({ length: 19 }, (_, i) => i + 1))
    assert.is(b.epoch, 3)
  })
})

// What the store must hold after any sequence of records: a model of each
// session's snapshot index and entries, against load() after every batch and
// after reopening the store at random points.
type Model = Map<string, { snapshot: number; entries: Array<{ index: number; epoch: number }> }>

type Op =
  | { kind: 'append'; session: number; count: number; epoch: number }
  | { kind: 'truncate'; session: number; back: number }
  | { kind: 'snapshot'; session: number; ahead: number }
  | { kind: 'delete'; session: number }
  | { kind: 'reopen' }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), session: fc.nat(3), count: fc.integer({ min: 1, max: 5 }), epoch: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), session: fc.nat(3), back: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), session: fc.nat(3), ahead: fc.integer({ min: -3, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), session: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) }
)

// The records an op makes for a model (which it updates), or null when the op
// makes no sense for the model's state (the core never sends those).
function recordsFor (model: Model, o: Exclude<Op, { kind: 'reopen' }>): SessionDurable[] | null {
  const id = `s${o.session}`
  const session = model.get(id) ?? { snapshot: 0, entries: [] }
  const last = session.entries.at(-1)?.index ?? session.snapshot
  switch (o.kind) {
    case 'append': {
      const list = Array.from({ length: o.count }, (_, i) => entry(id, last + 1 + i, o.epoch))
      session.entries.push(...list.map((e) => ({ index: e.index, epoch: e.epoch })))
      model.set(id, session)
      return [entries(id, list)]
    }
    case 'truncate': {
      const fromIndex = last - o.back + 1
      if (!model.has(id) || fromIndex <= session.snapshot) return null
      session.entries = session.entries.filter((e) => e.index < fromIndex)
      return [{ kind: 'session-truncate', sessionId: id, fromIndex }]
    }
    case 'snapshot': {
      const index = last + o.ahead
      if (!model.has(id) || index < session.snapshot || index < 1) return null
      session.snapshot = index
      session.entries = session.entries.filter((e) => e.index > index)
      return [{ kind: 'session-snapshot', sessionId: id, snapshot: snapshot(id, index) }]
    }
    case 'delete':
      if (!model.has(id)) return null
      model.delete(id)
      return [{ kind: 'session-delete', sessionId: id }]
  }
}

function assertMatches (loaded: StoredSession[], model: Model, context: string): void {
  const got = loaded.map((s) => [s.sessionId, s.snapshot?.index ?? 0, s.entries.map((e) => [e.index, e.epoch])])
  const want = [...model.keys()].sort().map((id) => [id, model.get(id)!.snapshot, model.get(id)!.entries.map((e) => [e.index, e.epoch])])
  assert.equal(got, want, context)
}

test(`any sequence of appends, truncates, snapshots, deletes and reopens loads as the model says (fast-check seed ${SEED}; STORE_SEED=n replays)`, () => {
  fc.assert(fc.property(fc.array(fc.array(op, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 25 }), fc.constantFrom(2, 5, 1_000_000), (batches, budget) => {
    let ok = true
    withDir((dir) => {
      const path = join(dir, 'sessions.db')
      const model: Model = new Map()
      // Small limits, so that reclaims (and deletes one by one) happen within a
      // few batches, whole or in parts.
      const deadRows = { reclaim: 4, deleteOneByOne: 24, budget }
      let store = SessionStore.open(path, { deadRows })
      try {
        for (const [b, batch] of batches.entries()) {
          const records: SessionDurable[] = []
          for (const o of batch) {
            if (o.kind === 'reopen') {
              store.apply(records.splice(0))
              store.close()
              store = SessionStore.open(path, { deadRows })
              continue
            }
            records.push(...(recordsFor(model, o) ?? []))
          }
          store.apply(records)
          assertMatches(store.load(), model, `after batch ${b}`)
        }
      } finally {
        store.close()
      }
      assertMatches(loadFrom(path), model, 'after the last reopen')
      // Rows a snapshot covers may wait to be deleted (DEAD_ROWS.reclaim); no
      // other row may be left over, and none of a session that is gone.
      // A deleted session's rows wait too, under its grave; a grave has rows
      // (it goes with its last one) and never shares its id with a session.
      const live = sql<{ n: number }>(path, `SELECT count(*) AS n FROM entries LEFT JOIN snapshots USING (session_id)
        WHERE entries.idx > coalesce(snapshots.idx, 0) AND entries.session_id NOT IN (SELECT session_id FROM graves)`)[0].n
      const orphans = sql<{ n: number }>(path, `SELECT count(*) AS n FROM entries
        WHERE session_id NOT IN (SELECT session_id FROM sessions) AND session_id NOT IN (SELECT session_id FROM graves)`)[0].n
      const emptyGraves = sql<{ n: number }>(path, 'SELECT count(*) AS n FROM graves WHERE session_id NOT IN (SELECT session_id FROM entries)')[0].n
      const stored = sql<{ n: number }>(path, 'SELECT count(*) AS n FROM graves WHERE session_id IN (SELECT session_id FROM sessions)')[0].n
      const modelled = [...model.values()].reduce((n, s) => n + s.entries.length, 0)
      ok = live === modelled && orphans === 0 && emptyGraves === 0 && stored === 0
    })
    return ok
  }), { seed: SEED, numRuns: 150 })
})

test.run()
