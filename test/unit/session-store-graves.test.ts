// A deleted session's rows wait for the reclaims under a grave (schema version
// 3): the delete itself writes a few rows, however many entries the session
// held; later writes free them within the reclaim budget; a session stored again
// under a grave's id takes the old rows first; damage to a grave is reported.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DatabaseSync } from 'node:sqlite'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { SessionStore, SessionStoreError } from '../../agent/runtime/session-store.ts'
import type { LogEntry } from '../../protocol/messages.ts'
import type { SessionDurable } from '../../agent/sessions/types.ts'
import { withDir as withTempDir } from '../fixtures/temp-dir.ts'
import { caught, loadFrom, sql } from '../fixtures/store.ts'

const withDir = (run: (dir: string) => void): void => { withTempDir('graves', run) }

const CONFIG = { members: ['peer-a', 'peer-b'], witness: 'peer-w' }

function entry (sessionId: string, index: number, epoch = 1): LogEntry {
  if (index === 1) return { index, epoch, body: { kind: 'create', info: { sessionId, service: 'cart', terminalId: 'till-7', tokenHash: 'ab'.repeat(32), position: null }, config: CONFIG } }
  return { index, epoch, body: { kind: 'delta', clientSeq: index, op: { add: `item-${index}` } } }
}

const append = (sessionId: string, index: number, epoch = 1): SessionDurable => ({ kind: 'session-entries', sessionId, entries: [entry(sessionId, index, epoch)] })
const remove = (sessionId: string): SessionDurable => ({ kind: 'session-delete', sessionId })

const count = (path: string, table: string): number => sql<{ n: number }>(path, `SELECT count(*) AS n FROM ${table}`)[0].n
const graves = (path: string): string[] => sql<{ session_id: string }>(path, 'SELECT session_id FROM graves ORDER BY session_id').map((row) => row.session_id)

test('deleting 64 interleaved sessions removes no entry row at once beyond the budget; later writes free them all, at most the budget each, and the graves go with the last rows', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const budget = 500
    const store = SessionStore.open(path, { deadRows: { reclaim: 64, deleteOneByOne: 1_024, budget } })
    const ids = Array.from({ length: 64 }, (_, i) => `s${i}`)
    try {
      // 100 group commits of one entry for each of 64 sessions and 'keep'.
      for (let index = 1; index <= 100; index++) store.apply([...ids, 'keep'].map((id) => append(id, index)))
      assert.is(count(path, 'entries'), 6_500)
      store.apply(ids.map(remove))
      const afterDelete = count(path, 'entries')
      assert.ok(afterDelete >= 6_500 - budget, `the delete itself removed ${6_500 - afterDelete} rows`)
      assert.equal(store.load().map((s) => s.sessionId), ['keep'], 'the deleted sessions are gone at once')
      let rows = afterDelete
      let writes = 0
      for (let index = 101; rows > 100 + writes && writes < 100; index++) {
        store.apply([append('keep', index)])
        writes++
        const now = count(path, 'entries')
        assert.ok(rows + 1 - now <= budget, `write ${writes} removed ${rows + 1 - now} rows`)
        rows = now
      }
      assert.is(rows, 100 + writes, `only keep's rows are left after ${writes} writes`)
      assert.ok(writes >= 6_400 / budget - 1, `${writes} writes`)
      assert.equal(graves(path), [], 'no grave outlives its rows')
      assert.is(store.load()[0].entries.length, 100 + writes)
    } finally {
      store.close()
    }
  })
})

test('a session stored again under a grave\'s id takes the old rows at once: it loads with its new entries only, before and after a reopen', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    let store = SessionStore.open(path)
    try {
      for (let index = 1; index <= 20; index++) store.apply([append('x', index), append('y', index)])
      store.apply([remove('x')])
      assert.equal(graves(path), ['x'])
      assert.is(count(path, 'entries'), 40)
      store.apply([append('x', 1, 2), append('x', 2, 2)])
      assert.equal(graves(path), [])
      assert.equal(sql<{ n: number }>(path, "SELECT count(*) AS n FROM entries WHERE session_id = 'x'"), [{ n: 2 }])
      assert.equal(store.load().map((s) => [s.sessionId, s.entries.map((e) => [e.index, e.epoch])]), [['x', [[1, 2], [2, 2]]], ['y', Array.from({ length: 20 }, (_, i) => [i + 1, 1])]])
      // Deleted and stored again in one batch, and a delete of a session never stored.
      store.apply([remove('y'), append('y', 1, 3), remove('nobody')])
      assert.equal(graves(path), [])
    } finally {
      store.close()
    }
    const loaded = loadFrom(path)
    assert.equal(loaded.map((s) => [s.sessionId, s.entries.map((e) => [e.index, e.epoch])]), [['x', [[1, 2], [2, 2]]], ['y', [[1, 3]]]])
    // A grave read back from the file at the first write after a reopen.
    store = SessionStore.open(path)
    try {
      store.apply([remove('x')])
      store.close()
      store = SessionStore.open(path)
      store.apply([append('x', 1, 4)])
      assert.equal(graves(path), [])
      assert.equal(store.load().find((s) => s.sessionId === 'x')?.entries.map((e) => e.epoch), [4])
    } finally {
      store.close()
    }
  })
})

test('a grave that fails its checksum, or that names a stored session, is reported at load as damage, naming the session', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const store = SessionStore.open(path)
    try {
      for (let index = 1; index <= 5; index++) store.apply([append('a', index), append('b', index)])
      store.apply([remove('b')])
    } finally {
      store.close()
    }
    const db = new DatabaseSync(path)
    db.exec("UPDATE graves SET crc = crc + 1 WHERE session_id = 'b'")
    db.close()
    let error = caught(() => loadFrom(path))
    assert.instance(error, SessionStoreError)
    assert.match(error.message, /session "b": its grave \(a deleted session\) fails its checksum/)

    const fix = new DatabaseSync(path)
    fix.exec("UPDATE graves SET crc = crc - 1 WHERE session_id = 'b'")
    fix.close()
    assert.equal(loadFrom(path).map((s) => s.sessionId), ['a'])
    // A grave under a stored session's id would hide that session's rows.
    const forged = new DatabaseSync(path)
    forged.prepare('INSERT INTO graves (session_id, crc) VALUES (?, ?)').run('a', crc32(JSON.stringify(['a'])))
    forged.close()
    error = caught(() => loadFrom(path))
    assert.instance(error, SessionStoreError)
    assert.match(error.message, /session "a": it is stored and has a grave \(deleted\) too/)
  })
})

test.run()
