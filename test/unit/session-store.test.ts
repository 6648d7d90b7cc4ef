import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { copyFileSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CHECKPOINT_FRAMES, SessionStore, SessionStoreError, SESSION_STORE_SCHEMA_VERSION } from '../../agent/runtime/session-store.ts'
import { checkWalFile } from '../../agent/runtime/wal-check.ts'
import { COMMIT_INDEX_WRITE_EVERY } from '../../agent/runtime/session-store-commits.ts'
import type { LogEntry, SessionSnapshotBody } from '../../protocol/messages.ts'
import type { SessionDurable, StoredSession } from '../../agent/sessions/types.ts'
import { withDir as withTempDir } from '../fixtures/temp-dir.ts'
import { caught, loadFrom } from '../fixtures/store.ts'

const withDir = (run: (dir: string) => void): void => { withTempDir('store', run) }

function withStore (path: string, run: (store: SessionStore) => void): void {
  const store = SessionStore.open(path)
  try {
    run(store)
  } finally {
    store.close()
  }
}

function assertStoreError (error: Error, ...parts: string[]): void {
  assert.instance(error, SessionStoreError, `not a SessionStoreError: ${error.stack}`)
  for (const part of parts) assert.ok(error.message.includes(part), `message lacks ${JSON.stringify(part)}: ${error.message}`)
}

const CONFIG = { members: ['peer-a', 'peer-b'], witness: 'peer-w' }

function create (sessionId: string, epoch = 1): LogEntry {
  const info = { sessionId, service: 'cart', terminalId: 'till-7', tokenHash: 'ab'.repeat(32), position: { lat: 52.52, lon: 13.405 } }
  return { index: 1, epoch, body: { kind: 'create', info, config: CONFIG } }
}

function delta (index: number, epoch: number, pad = 0): LogEntry {
  return { index, epoch, body: { kind: 'delta', clientSeq: index, op: { add: 'item-' + index, qty: index % 3, pad: 'x'.repeat(pad) } } }
}

function deltas (from: number, to: number, epoch: number, pad = 0): LogEntry[] {
  const list: LogEntry[] = []
  for (let index = from; index <= to; index++) list.push(delta(index, epoch, pad))
  return list
}

function snapshot (sessionId: string, index: number, indexEpoch: number): SessionSnapshotBody {
  return {
    index,
    indexEpoch,
    info: (create(sessionId).body as { info: SessionSnapshotBody['info'] }).info,
    config: CONFIG,
    state: { items: ['a', 'b'], total: 12.5, nested: { ok: true, none: null } },
    dedup: { lastClientSeq: index, recent: [[index - 1, index - 1], [index, index]] }
  }
}

function entries (sessionId: string, list: LogEntry[]): SessionDurable {
  return { kind: 'session-entries', sessionId, entries: list }
}

test('what is applied comes back after a reopen, sessions ordered by id', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    withStore(path, (store) => {
      store.apply([
        { kind: 'session-meta', sessionId: 'beta', epoch: 1, votedFor: 'peer-a' },
        entries('beta', [create('beta'), ...deltas(2, 10, 1)]),
        { kind: 'session-commit', sessionId: 'beta', commitIndex: 6 }
      ])
      store.apply([{ kind: 'session-snapshot', sessionId: 'beta', snapshot: snapshot('beta', 4, 1) }])
      store.apply([
        { kind: 'session-truncate', sessionId: 'beta', fromIndex: 9 },
        { kind: 'session-meta', sessionId: 'beta', epoch: 2, votedFor: null },
        entries('beta', [{ index: 9, epoch: 2, body: { kind: 'epoch' } }, delta(10, 2)])
      ])
      store.apply([{ kind: 'session-meta', sessionId: 'alpha', epoch: 3, votedFor: 'peer-b' }, entries('alpha', [create('alpha', 3)])])
      store.apply([{ kind: 'session-meta', sessionId: 'gone', epoch: 1, votedFor: null }, entries('gone', [create('gone')])])
      store.apply([{ kind: 'session-delete', sessionId: 'gone' }])
      assert.is(store.sessionCount(), 2)
    })
    const expected: StoredSession[] = [
      { sessionId: 'alpha', epoch: 3, votedFor: 'peer-b', commitIndex: 0, snapshot: null, entries: [create('alpha', 3)] },
      {
        sessionId: 'beta',
        epoch: 2,
        votedFor: null,
        commitIndex: 6,
        snapshot: snapshot('beta', 4, 1),
        entries: [...deltas(5, 8, 1), { index: 9, epoch: 2, body: { kind: 'epoch' } }, delta(10, 2)]
      }
    ]
    assert.equal(loadFrom(path), expected)
    // A second reopen changes nothing.
    assert.equal(loadFrom(path), expected)
  })
})

test('apply is atomic: a batch whose third record fails leaves nothing of itself', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    withStore(path, (store) => {
      store.apply([{ kind: 'session-meta', sessionId: 's', epoch: 1, votedFor: null }, entries('s', [create('s')])])
      const before = store.load()
      const error = caught(() => store.apply([
        { kind: 'session-meta', sessionId: 's', epoch: 2, votedFor: 'peer-b' },
        entries('s', deltas(2, 4, 2)),
        entries('s', [delta(3, 2)]),
        { kind: 'session-commit', sessionId: 's', commitIndex: 4 }
      ]))
      assert.match(error.message, /entry 3 does not follow 4/)
      assert.equal(store.load(), before)
      // The store stays usable after a rolled-back batch.
      store.apply([entries('s', deltas(2, 3, 1))])
      assert.is(store.load()[0].entries.length, 3)
    })
    assert.is(loadFrom(path)[0].entries.length, 3)
  })
})

test('a snapshot deletes the entries it covers, a truncate the tail, and the commit index never goes down', () => {
  withDir((dir) => {
    withStore(join(dir, 'sessions.db'), (store) => {
      store.apply([entries('s', [create('s'), ...deltas(2, 20, 1)])])
      store.apply([{ kind: 'session-snapshot', sessionId: 's', snapshot: snapshot('s', 12, 1) }])
      let [session] = store.load()
      assert.equal(session.entries.map((e) => e.index), [13, 14, 15, 16, 17, 18, 19, 20])
      store.apply([{ kind: 'session-truncate', sessionId: 's', fromIndex: 17 }])
      assert.equal(store.load()[0].entries.map((e) => e.index), [13, 14, 15, 16])
      // A snapshot beyond the log leaves no entries; the next one follows it.
      store.apply([{ kind: 'session-snapshot', sessionId: 's', snapshot: snapshot('s', 30, 2) }])
      assert.equal(store.load()[0].entries, [])
      store.apply([entries('s', [delta(31, 2)])])
      store.apply([{ kind: 'session-commit', sessionId: 's', commitIndex: 9 }])
      store.apply([{ kind: 'session-commit', sessionId: 's', commitIndex: 5 }]);
      [session] = store.load()
      assert.is(session.commitIndex, 9)
      assert.equal(session.entries, [delta(31, 2)])
      assert.is(session.snapshot?.index, 30)
    })
  })
})

test('entry records of one batch are stored as one run, and a kept commit index (written at close) survives a reopen', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    withStore(path, (store) => {
      store.apply([entries('s', [create('s')]), ...deltas(2, 6, 1).map((d) => entries('s', [d])), { kind: 'session-commit', sessionId: 's', commitIndex: 3 }])
      store.apply([{ kind: 'session-commit', sessionId: 's', commitIndex: 6 }])
      store.apply([entries('s', [delta(7, 1)])])
    })
    const [session] = loadFrom(path)
    assert.equal(session.entries.map((e) => e.index), [1, 2, 3, 4, 5, 6, 7])
    assert.is(session.commitIndex, 6)
  })
})

test('commit indexes are kept, not written with their batch, until one runs COMMIT_INDEX_WRITE_EVERY entries ahead of the stored value (a delete stays deleted, a failed batch keeps nothing)', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const onDisk = (): number | undefined => {
      const db = new DatabaseSync(path, { readOnly: true })
      try {
        return (db.prepare('SELECT commit_index FROM sessions WHERE session_id = ?').get('s') as { commit_index: number } | undefined)?.commit_index
      } finally {
        db.close()
      }
    }
    const every = COMMIT_INDEX_WRITE_EVERY
    withStore(path, (store) => {
      store.apply([entries('s', [create('s'), ...deltas(2, every + 10, 1)])])
      store.apply([{ kind: 'session-commit', sessionId: 's', commitIndex: 4 }])
      store.apply([{ kind: 'session-commit', sessionId: 's', commitIndex: 6 }, { kind: 'session-commit', sessionId: 's', commitIndex: 5 }])
      assert.is(onDisk(), 0, 'not written yet')
      assert.is(store.load()[0].commitIndex, 6, 'load() sees it')
      // Riding with entries: still kept while under the threshold.
      store.apply([entries('s', [delta(every + 11, 1)]), { kind: 'session-commit', sessionId: 's', commitIndex: every - 1 }])
      assert.is(onDisk(), 0, 'less than COMMIT_INDEX_WRITE_EVERY ahead: kept')
      store.apply([entries('s', [delta(every + 12, 1)]), { kind: 'session-commit', sessionId: 's', commitIndex: every + 1 }])
      assert.is(onDisk(), every + 1, 'written once far enough ahead, with the batch that made it so')
      store.apply([entries('s', [delta(every + 13, 1)]), { kind: 'session-commit', sessionId: 's', commitIndex: every + 5 }])
      assert.is(onDisk(), every + 1, 'counted from the stored value')
      // A failed batch keeps none of its commit indexes.
      caught(() => store.apply([{ kind: 'session-commit', sessionId: 's', commitIndex: every + 9 }, entries('s', [delta(every + 20, 1)])]))
      assert.is(store.load()[0].commitIndex, every + 5, 'the failed batch\'s commit index is gone')
      store.apply([{ kind: 'session-commit', sessionId: 's', commitIndex: every + 7 }])
      store.apply([{ kind: 'session-delete', sessionId: 's' }])
      assert.equal(store.load(), [])
    })
    assert.equal(loadFrom(path), [], 'the kept commit index did not create the deleted session again at close')
  })
})

test('a kept commit index is written at close and survives a reopen', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    withStore(path, (store) => {
      store.apply([entries('s', [create('s'), ...deltas(2, 6, 1)]), { kind: 'session-commit', sessionId: 's', commitIndex: 3 }])
      store.apply([entries('s', [delta(7, 1)]), { kind: 'session-commit', sessionId: 's', commitIndex: 5 }])
    })
    assert.is(loadFrom(path)[0].commitIndex, 5)
  })
})

test('write() says whether a sync is needed; sync() calls back from the thread pool, once per call, and what was written is there after a reopen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-store-'))
  try {
    const path = join(dir, 'sessions.db')
    const store = SessionStore.open(path)
    assert.is(store.write([]), false, 'nothing to write')
    assert.is(store.write([entries('s', [create('s'), ...deltas(2, 4, 1)])]), true)
    assert.is(store.write([{ kind: 'session-commit', sessionId: 's', commitIndex: 3 }]), false, 'a commit-only batch is kept, nothing to fsync')
    let returned = 0
    let sameTick = true
    const synced = new Promise<Error | null>((resolve) => { store.sync((error) => { returned++; resolve(error) }) })
    sameTick = returned > 0
    assert.is(await synced, null)
    assert.not.ok(sameTick, 'the callback comes later, never from inside sync()')
    assert.is(returned, 1)
    store.close()
    const [session] = loadFrom(path)
    assert.is(session.entries.length, 4)
    assert.is(session.commitIndex, 3, 'the kept commit index is written at close')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('records that would leave a log load() cannot read are refused', () => {
  withDir((dir) => {
    withStore(join(dir, 'sessions.db'), (store) => {
      store.apply([entries('s', [create('s'), ...deltas(2, 10, 1)])])
      store.apply([{ kind: 'session-snapshot', sessionId: 's', snapshot: snapshot('s', 5, 1) }])
      const before = store.load()
      const cases: Array<[SessionDurable, RegExp]> = [
        [entries('s', [delta(12, 1)]), /entry 12 does not follow 10/],
        [entries('s', [delta(10, 1)]), /entry 10 does not follow 10/],
        [entries('t', [delta(2, 1)]), /entry 2 does not follow 0/],
        [{ kind: 'session-truncate', sessionId: 's', fromIndex: 5 }, /cannot truncate from 5/],
        [{ kind: 'session-snapshot', sessionId: 's', snapshot: snapshot('s', 4, 1) }, /older than the stored one at 5/]
      ]
      for (const [record, message] of cases) assert.match(caught(() => store.apply([record])).message, message)
      assert.equal(store.load(), before)
      assert.is(store.sessionCount(), 1)
    })
  })
})

// Writes a store with enough entries to span many pages, closed (checkpointed).
function writeLargeStore (path: string): void {
  withStore(path, (store) => {
    store.apply([entries('big', [create('big')])])
    for (let from = 2; from < 3000; from += 100) store.apply([entries('big', deltas(from, from + 99, 1, 200))])
  })
}

test('a page of garbage in the middle of the file is reported with the path', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    writeLargeStore(path)
    const pageSize = 4096
    const middle = Math.floor(statSync(path).size / 2 / pageSize) * pageSize
    const fd = openSync(path, 'r+')
    writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, middle)
    closeSync(fd)
    assertStoreError(caught(() => loadFrom(path)), path, 'is corrupt', 'refuses to serve', 'Move it away')
  })
})

test('bytes flipped inside a stored entry are caught by its checksum, naming the session', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    writeLargeStore(path)
    const bytes = readFileSync(path)
    const at = bytes.indexOf('"add":"item-1500"')
    assert.ok(at > 0, 'entry 1500 not found in the file')
    // Same length, still valid JSON: only the checksum can tell.
    bytes.write('"add":"item-9999"', at)
    writeFileSync(path, bytes)
    assertStoreError(caught(() => loadFrom(path)), path, 'is corrupt', 'session "big"', 'entry 1500 fails its checksum')
  })
})

test('a file that is not an SQLite database is refused and left as it was', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const content = 'these are not the bytes you are looking for\n'.repeat(200)
    writeFileSync(path, content)
    assertStoreError(caught(() => SessionStore.open(path)), path, 'is corrupt', 'file is not a database')
    assert.is(readFileSync(path, 'utf8'), content)
  })
})

test('an SQLite database of something else is refused', () => {
  withDir((dir) => {
    const path = join(dir, 'other.db')
    const db = new DatabaseSync(path)
    db.exec('CREATE TABLE notes (text TEXT)')
    db.close()
    assertStoreError(caught(() => SessionStore.open(path)), path, 'not an edge-agent session store')
  })
})

test('a row changed behind the store\'s back fails its checksum at load, naming the session', () => {
  const tamperings: Array<[string, string]> = [
    ["UPDATE entries SET body = replace(body, 'item-3', 'item-4') WHERE idx = 3", 'entry 3 fails its checksum'],
    ['UPDATE entries SET epoch = 7 WHERE idx = 4', 'entry 4 fails its checksum'],
    ['UPDATE entries SET idx = 100 WHERE idx = 5', 'entry 6 found where 5 should be'],
    ['UPDATE sessions SET epoch = 9', 'hard state fails its checksum'],
    ["UPDATE snapshots SET body = replace(body, '12.5', '13.5')", 'snapshot fails its checksum']
  ]
  for (const [sql, why] of tamperings) {
    withDir((dir) => {
      const path = join(dir, 'sessions.db')
      withStore(path, (store) => {
        store.apply([{ kind: 'session-meta', sessionId: 'cart-42', epoch: 1, votedFor: null }, entries('cart-42', [create('cart-42'), ...deltas(2, 8, 1)])])
        store.apply([{ kind: 'session-snapshot', sessionId: 'cart-42', snapshot: snapshot('cart-42', 1, 1) }])
      })
      const db = new DatabaseSync(path)
      db.exec(sql)
      db.close()
      assertStoreError(caught(() => loadFrom(path)), path, 'session "cart-42"', why)
    })
  }
})

test('a store from a newer schema version is refused with a clear message', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    withStore(path, (store) => store.apply([entries('s', [create('s')])]))
    const db = new DatabaseSync(path)
    db.exec(`UPDATE meta SET value = ${SESSION_STORE_SCHEMA_VERSION + 1} WHERE key = 'schema_version'`)
    db.close()
    assertStoreError(caught(() => SessionStore.open(path)), path, `schema version ${SESSION_STORE_SCHEMA_VERSION + 1}`, `reads only version ${SESSION_STORE_SCHEMA_VERSION}`, 'newer edge-agent')
  })
})

// What a power cut halfway through the last commit leaves: the WAL ends inside
// that commit's frames. Recovery drops the torn transaction and keeps the rest.
test('SQLite never checkpoints by itself; checkpoint() copies the WAL into the database file once due, calls back after that file\'s fsync, and the WAL then starts over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-store-'))
  try {
    const path = join(dir, 'sessions.db')
    const store = SessionStore.open(path)
    const sync = async (): Promise<void> => { await new Promise<void>((resolve, reject) => { store.sync((error) => { if (error === null) resolve(); else reject(error) }) }) }
    store.write([entries('s', [create('s')])])
    await sync()
    const databaseBytes = statSync(path).size
    assert.not.ok(store.checkpointDue())
    // ~2 KiB deltas, 40 a batch: about 20 WAL pages a batch.
    let last = 1
    while (!store.checkpointDue()) {
      assert.ok(last < 4_000, 'a checkpoint comes due well before 8 MiB of WAL')
      store.write([entries('s', deltas(last + 1, last + 40, 1, 2_000))])
      last += 40
      await sync()
    }
    const frames = checkWalFile(path + '-wal').validFrames
    assert.ok(frames >= CHECKPOINT_FRAMES && frames < CHECKPOINT_FRAMES + 100, `due at ${frames} frames`)
    assert.is(statSync(path).size, databaseBytes, 'no automatic checkpoint wrote the database file')
    let sameTick = true
    const done = new Promise<Error | null>((resolve) => { store.checkpoint(resolve) })
    sameTick = false
    assert.is(await done, null)
    assert.not.ok(sameTick)
    assert.ok(statSync(path).size > databaseBytes + 2_000_000, `the pages are in the database file (${databaseBytes} → ${statSync(path).size} bytes)`)
    assert.not.ok(store.checkpointDue())
    store.write([entries('s', deltas(last + 1, last + 1, 1))])
    await sync()
    assert.ok(checkWalFile(path + '-wal').validFrames < 10, 'the next write restarted the WAL from its start')
    store.close()
    const [session] = loadFrom(path)
    assert.is(session.entries.length, last + 1)
    assert.equal(session.entries.at(-1), delta(last + 1, 1))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('apply() (tools) checkpoints by itself when due: the WAL stays near CHECKPOINT_FRAMES pages', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    let most = 0
    withStore(path, (store) => {
      store.apply([entries('s', [create('s')])])
      for (let from = 2; from < 6_000; from += 40) {
        store.apply([entries('s', deltas(from, from + 39, 1, 2_000))])
        most = Math.max(most, checkWalFile(path + '-wal').validFrames)
      }
    })
    assert.ok(most >= CHECKPOINT_FRAMES - 100 && most < CHECKPOINT_FRAMES + 100, `the WAL reached ${most} frames`)
    const [session] = loadFrom(path)
    assert.is(session.entries.length, 6_001)
  })
})

test('a write-ahead log torn inside its last commit loses that commit only', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const copy = join(dir, 'copy.db')
    withStore(path, (store) => {
      store.apply([entries('s', [create('s')])])
      for (let from = 2; from <= 41; from += 10) store.apply([entries('s', deltas(from, from + 9, 1, 50))])
      // While the store is open its commits live in the WAL (no checkpoint yet).
      copyFileSync(path, copy)
      copyFileSync(path + '-wal', copy + '-wal')
    })
    truncateSync(copy + '-wal', statSync(copy + '-wal').size - 100)
    const [session] = loadFrom(copy)
    assert.equal(session.entries, [create('s'), ...deltas(2, 31, 1, 50)])
  })
})

test.run()
