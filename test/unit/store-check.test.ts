// The session store's own checks beyond load(): the write-ahead log checked
// before SQLite recovers it (agent/runtime/wal-check.ts), and check(), what
// `edge-agent check` runs.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { copyFileSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SessionStore, SessionStoreError, storeAbsence } from '../../agent/runtime/session-store.ts'
import { checkWal } from '../../agent/runtime/wal-check.ts'
import type { LogEntry } from '../../protocol/messages.ts'
import { withDir as withTempDir } from '../fixtures/temp-dir.ts'

const withDir = (run: (dir: string) => void): void => { withTempDir('check', run) }

function caught (run: () => unknown): Error {
  try {
    run()
  } catch (error) {
    return error as Error
  }
  throw new Error('expected an error, none was thrown')
}

const CREATE: LogEntry = {
  index: 1, epoch: 1,
  body: { kind: 'create', info: { sessionId: 's', service: 'log', terminalId: 't', tokenHash: 'ab'.repeat(32), position: null }, config: { members: ['peer-a'], witness: null } }
}

function deltas (from: number, to: number): LogEntry[] {
  const list: LogEntry[] = []
  for (let index = from; index <= to; index++) list.push({ index, epoch: 1, body: { kind: 'delta', clientSeq: index, op: { n: index, pad: 'x'.repeat(50) } } })
  return list
}

// A store of 41 entries in five commits, copied (database and log) while open:
// what a SIGKILL leaves on disk, every commit still in the log.
function crashedCopy (dir: string): string {
  const path = join(dir, 'sessions.db')
  const copy = join(dir, 'copy.db')
  const store = SessionStore.open(path)
  try {
    store.apply([{ kind: 'session-entries', sessionId: 's', entries: [CREATE] }])
    for (let from = 2; from <= 41; from += 10) store.apply([{ kind: 'session-entries', sessionId: 's', entries: deltas(from, from + 9) }])
    copyFileSync(path, copy)
    copyFileSync(path + '-wal', copy + '-wal')
  } finally {
    store.close()
  }
  return copy
}

function flip (path: string, offset: number): void {
  const bytes = readFileSync(path)
  bytes[offset] ^= 0x10
  writeFileSync(path, bytes)
}

test('a log as a crash leaves it passes the check and loses nothing', () => {
  withDir((dir) => {
    const copy = crashedCopy(dir)
    const report = checkWal(readFileSync(copy + '-wal'))
    assert.is(report.problem, null)
    assert.is(report.validFrames, report.frames)
    const store = SessionStore.open(copy)
    try {
      const summary = store.check()
      assert.equal({ sessions: summary.sessions, entries: summary.entries, snapshots: summary.snapshots }, { sessions: 1, entries: 41, snapshots: 0 })
    } finally {
      store.close()
    }
  })
})

test('a flipped byte in an early frame of the log is reported with the log\'s path, before SQLite drops the commits after it', () => {
  withDir((dir) => {
    const copy = crashedCopy(dir)
    // Inside the first frame's page (32-byte log header, 24-byte frame header).
    flip(copy + '-wal', 32 + 24 + 100)
    const report = checkWal(readFileSync(copy + '-wal'))
    assert.ok(report.problem !== null && report.commitsAfterBreak >= 2, JSON.stringify(report))
    const error = caught(() => SessionStore.open(copy))
    assert.instance(error, SessionStoreError)
    assert.ok(error.message.includes(`${copy}-wal`), error.message)
    assert.ok(error.message.includes('refuses to serve'), error.message)
    // Nothing was recovered or rewritten: the damaged log is still there to inspect.
    assert.ok(statSync(copy + '-wal').size > 0)
  })
})

test('a flipped byte in the log header is reported: SQLite would ignore the whole log', () => {
  withDir((dir) => {
    const copy = crashedCopy(dir)
    flip(copy + '-wal', 17)
    const error = caught(() => SessionStore.open(copy))
    assert.instance(error, SessionStoreError)
    assert.ok(error.message.includes(`${copy}-wal`) && error.message.includes('header'), error.message)
  })
})

test('a log torn inside its last commit is still left to SQLite\'s recovery, which drops that commit only', () => {
  withDir((dir) => {
    const copy = crashedCopy(dir)
    truncateSync(copy + '-wal', statSync(copy + '-wal').size - 100)
    assert.is(checkWal(readFileSync(copy + '-wal')).problem, null)
    const store = SessionStore.open(copy)
    try {
      assert.is(store.check().entries, 31)
    } finally {
      store.close()
    }
  })
})

test('check() reports a damaged page that open()\'s quick check lets through as corrupt, naming the file', () => {
  withDir((dir) => {
    const path = join(dir, 'sessions.db')
    const store = SessionStore.open(path)
    store.apply([{ kind: 'session-entries', sessionId: 's', entries: [CREATE, ...deltas(2, 400)] }])
    store.close()
    const bytes = readFileSync(path)
    const at = bytes.indexOf('"n":321')
    assert.ok(at > 0)
    bytes.write('"n":999', at)
    writeFileSync(path, bytes)
    const reopened = SessionStore.open(path)
    try {
      const error = caught(() => reopened.check())
      assert.instance(error, SessionStoreError)
      assert.ok(error.message.includes(path) && error.message.includes('entry 321 fails its checksum'), error.message)
    } finally {
      reopened.close()
    }
  })
})

test('random bytes as a log never make the check throw', () => {
  for (let i = 0; i < 200; i++) {
    const bytes = new Uint8Array(i * 37)
    for (let k = 0; k < bytes.length; k++) bytes[k] = (k * 2654435761 + i) >>> 24
    const report = checkWal(bytes)
    assert.type(report.frames, 'number')
  }
})

// A directory that has run got its store at its first start: a store missing or
// emptied since is damage. Opened, SQLite made a new empty store of a 0-byte
// file (`edge-agent check` did too, erasing the evidence) and the agent answered
// 404 for sessions it had acknowledged.
test('storeAbsence: a missing or empty store is refused once the directory has run, and left as it is', () => withDir((dir) => {
  const path = join(dir, 'sessions.db')
  assert.is(storeAbsence(path, 0), null, 'a first start creates it')
  const missing = storeAbsence(path, 2)
  assert.ok(missing instanceof SessionStoreError)
  assert.match(missing.message, `session store ${path} is missing, but this data directory has run before (incarnation 2)`)
  writeFileSync(path, '')
  assert.match(String(storeAbsence(path, 1)?.message), 'is empty')
  assert.is(statSync(path).size, 0)
  SessionStore.open(path).close()
  assert.is(storeAbsence(path, 1), null, 'a store with its header')
}))

test.run()
