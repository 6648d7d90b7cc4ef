// Sessions deleted because they were closed are remembered in the store
// (schema version 4, the closed table): read back at start, oldest first, the
// last MAX_CLOSED; a version 3 store gains the table at open; a damaged mark is
// reported, not skipped. And the sessions core restored with them refuses an
// owner that missed the close, as it does before a restart.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DatabaseSync } from 'node:sqlite'
import { join } from 'node:path'
import { SESSION_STORE_SCHEMA_VERSION } from '../../agent/runtime/session-store-schema.ts'
import { SessionStore, SessionStoreError } from '../../agent/runtime/session-store.ts'
import { MAX_CLOSED } from '../../agent/sessions/closed.ts'
import { Sessions } from '../../agent/sessions/sessions.ts'
import { BUILT_IN_SERVICES } from '../../agent/sessions/services.ts'
import { SeededRandom } from '../../agent/core/random.ts'
import type { SessionDurable, SessionEffect } from '../../agent/sessions/types.ts'
import type { LogEntry, SessionMessage } from '../../protocol/messages.ts'
import { withDir as withTempDir } from '../fixtures/temp-dir.ts'
import { caught, sql } from '../fixtures/store.ts'
import { FakeDirectory, LAN } from './session-fixtures.ts'

const withDir = (run: (dir: string) => void): void => { withTempDir('closed', run) }

const CONFIG = { members: ['A', 'B'], witness: 'W' }

function create (sessionId: string): LogEntry {
  return { index: 1, epoch: 1, body: { kind: 'create', info: { sessionId, service: 'log', terminalId: 'till-7', tokenHash: 'ab'.repeat(32), position: null }, config: CONFIG } }
}

const stored = (sessionId: string): SessionDurable => ({ kind: 'session-entries', sessionId, entries: [create(sessionId)] })
const closed = (sessionId: string, epoch: number): SessionDurable => ({ kind: 'session-delete', sessionId, closedEpoch: epoch })

function reopened<T> (path: string, read: (store: SessionStore) => T): T {
  const store = SessionStore.open(path)
  try {
    return read(store)
  } finally {
    store.close()
  }
}

test('a session deleted as closed is remembered across a reopen, oldest first; closed again, it moves last; a plain delete is not remembered', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const store = SessionStore.open(path)
    try {
      store.apply(['a', 'b', 'c', 'd'].map(stored))
      store.apply([closed('a', 3), closed('b', 1)])
      store.apply([{ kind: 'session-delete', sessionId: 'c' }])
      store.apply([closed('d', 2), closed('a', 4)])
    } finally {
      store.close()
    }
    assert.equal(reopened(path, (s) => s.loadClosed()), [{ sessionId: 'b', epoch: 1 }, { sessionId: 'd', epoch: 2 }, { sessionId: 'a', epoch: 4 }])
    assert.equal(reopened(path, (s) => s.load()), [])
    assert.is(reopened(path, (s) => s.check()).closed, 3)
  })
})

test(`the store keeps the last ${MAX_CLOSED} sessions closed`, () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const store = SessionStore.open(path)
    try {
      // Closes of sessions never stored here (a member that only heard of the
      // close): one write, as a burst of closes would come.
      store.apply(Array.from({ length: MAX_CLOSED + 5 }, (_, i) => closed(`s${i}`, 1)))
    } finally {
      store.close()
    }
    const kept = reopened(path, (s) => s.loadClosed())
    assert.is(kept.length, MAX_CLOSED)
    assert.equal([kept[0].sessionId, kept.at(-1)?.sessionId], ['s5', `s${MAX_CLOSED + 4}`])
  })
})

test('a mark whose checksum fails is reported as damage, naming the session', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const store = SessionStore.open(path)
    try {
      store.apply([closed('gone', 2)])
    } finally {
      store.close()
    }
    const db = new DatabaseSync(path)
    db.exec("UPDATE closed SET epoch = 3 WHERE session_id = 'gone'")
    db.close()
    const error = caught(() => reopened(path, (s) => s.loadClosed()))
    assert.instance(error, SessionStoreError)
    assert.match(error.message, /corrupt.*session "gone": its mark as closed fails its checksum/)
  })
})

test('a version 3 store gains the closed table at open, empty, and then remembers closes', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    let store = SessionStore.open(path)
    store.apply([stored('a'), stored('b')])
    store.close()
    const db = new DatabaseSync(path)
    db.exec("BEGIN; DROP TABLE closed; UPDATE meta SET value = 3 WHERE key = 'schema_version'; COMMIT")
    db.close()
    store = SessionStore.open(path)
    try {
      assert.equal(store.loadClosed(), [])
      assert.equal(store.load().map((s) => s.sessionId), ['a', 'b'])
      store.apply([closed('a', 1)])
    } finally {
      store.close()
    }
    assert.equal(sql<{ value: number }>(path, "SELECT value FROM meta WHERE key = 'schema_version'"), [{ value: SESSION_STORE_SCHEMA_VERSION }])
    assert.equal(reopened(path, (s) => s.loadClosed()), [{ sessionId: 'a', epoch: 1 }])
  })
})

// The core, restarted: B remembers closing session 's' in epoch 3 (from its
// store). A, its owner in epoch 2, cut off through the close, sends B the
// session from its create entry: B refuses it in a later epoch than A's, as it
// did before the restart, instead of taking it as a new session and giving A
// its majority back (SEED=409 of a sweep with replicas 1 and slow disks).
test('a sessions core restored with a session remembered as closed refuses an owner that missed the close', () => {
  const core = (closedSessions: Array<{ sessionId: string; epoch: number }>): Sessions => new Sessions({
    directory: new FakeDirectory('B', ['A', 'B', 'W']), config: LAN, random: new SeededRandom(3), services: BUILT_IN_SERVICES, stored: [], closed: closedSessions, nowMs: 1_000
  })
  const append: SessionMessage = { type: 'session-append', sessionId: 's', epoch: 2, seq: 7, prevIndex: 0, prevEpoch: 0, commitIndex: 1, entries: [create('s')] }
  const answer = (effects: SessionEffect[]): SessionMessage | undefined => effects.flatMap((e) => e.kind === 'send' && e.message.type === 'session-append-ack' ? [e.message] : [])[0]

  const remembering = core([{ sessionId: 's', epoch: 3 }])
  const refused = answer(remembering.step({ kind: 'receive', nowMs: 1_010, from: 'A', message: append }))
  assert.equal(refused, { type: 'session-append-ack', sessionId: 's', epoch: 3, seq: 7, ok: false, matchIndex: 0, lastIndex: 0 })
  assert.is(remembering.replica('s'), undefined, 'not taken as a new session')

  const forgetful = core([])
  const taken = answer(forgetful.step({ kind: 'receive', nowMs: 1_010, from: 'A', message: append }))
  assert.is((taken as { ok: boolean } | undefined)?.ok, true, 'without the mark it is taken as new: what the store now prevents')
  assert.ok(forgetful.replica('s') !== undefined)
})

test.run()
