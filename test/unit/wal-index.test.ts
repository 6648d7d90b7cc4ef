// The WAL index reader (agent/runtime/wal-index.ts) against SQLite's own count.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { writeFileSync } from 'node:fs'
import { WalIndex } from '../../agent/runtime/wal-index.ts'
import { withDir } from '../fixtures/temp-dir.ts'

test('frames to copy: what SQLite reports, zero after a checkpoint, counting again after the WAL restarts', () => {
  withDir('wal-index', (dir) => {
    const path = join(dir, 'a.db')
    const db = new DatabaseSync(path)
    const index = new WalIndex(`${path}-shm`)
    try {
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x TEXT)')
      const insert = db.prepare('INSERT INTO t VALUES (?)')
      for (let i = 0; i < 40; i++) insert.run('y'.repeat(3_000))
      const waiting = index.framesToCopy()
      const reported = db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number; checkpointed: number }
      assert.ok(waiting !== null && waiting > 40, `read ${waiting}`)
      assert.is(waiting, reported.log)
      assert.is(reported.checkpointed, reported.log)
      assert.is(index.framesToCopy(), 0)
      for (let i = 0; i < 3; i++) insert.run('z')
      assert.is(index.framesToCopy(), 3, 'one frame per small transaction, from the start of the log')
    } finally {
      index.close()
      db.close()
    }
  })
})

test('no WAL index, or a file too short to hold one: null (the store then counts writes)', () => {
  withDir('wal-index', (dir) => {
    assert.is(new WalIndex(join(dir, 'none-shm')).framesToCopy(), null)
    writeFileSync(join(dir, 'short-shm'), Buffer.alloc(20))
    assert.is(new WalIndex(join(dir, 'short-shm')).framesToCopy(), null)
  })
})

test.run()
