// A session's replicated log: ReplicaLog on its own, then a standby taking the
// owner's appends (log matching, truncation of a divergent tail, commit).

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ReplicaLog } from '../../agent/sessions/log.ts'
import type { SnapshotMeta } from '../../agent/sessions/log.ts'
import { onAppend, onSnapshot } from '../../agent/sessions/follower.ts'
import type { GroupConfig, LogEntry, SessionSnapshotBody } from '../../protocol/messages.ts'
import {
  FakeCtx, FakeDirectory, GROUP, INFO, SESSION, appendMsg, configEntry, createEntry, deltaEntry, entriesWithEpochs,
  epochEntry, epochsOf, standby
} from './session-fixtures.ts'

function logOf (entries: LogEntry[]): ReplicaLog {
  return ReplicaLog.from(null, entries)
}

function throws (run: () => unknown): boolean {
  try {
    run()
    return false
  } catch {
    return true
  }
}

// Entries 1..10 with epochs 1,1,1,2,2,2,3,3,3,3.
const TEN = entriesWithEpochs([1, 1, 1, 2, 2, 2, 3, 3, 3, 3])

// TEN, snapshotted at 6 (epoch 2) keeping entries from 4 on.
function compactedTen (): ReplicaLog {
  const log = logOf(TEN)
  log.compact({ index: 6, epoch: 2, config: GROUP }, 4)
  return log
}

// ---- ReplicaLog ----------------------------------------------------------------

test('an empty log is at index 0, epoch 0, with no config', () => {
  const log = new ReplicaLog()
  assert.equal([log.firstIndex, log.lastIndex, log.lastEpoch, log.snapshotIndex, log.length], [1, 0, 0, 0, 0])
  assert.is(log.config, null)
  assert.is(log.epochAt(0), 0)
})

test('append() takes only the entry that follows the last one', () => {
  const cases: Array<{ held: number; next: number; ok: boolean }> = [
    { held: 0, next: 1, ok: true },
    { held: 0, next: 2, ok: false },
    { held: 3, next: 4, ok: true },
    { held: 3, next: 3, ok: false },
    { held: 3, next: 5, ok: false },
    { held: 3, next: 1, ok: false }
  ]
  for (const c of cases) {
    const log = logOf(TEN.slice(0, c.held))
    const failed = throws(() => log.append(deltaEntry(c.next, 1)))
    assert.is(failed, !c.ok, `append ${c.next} after ${c.held}`)
    assert.is(log.lastIndex, c.ok ? c.next : c.held)
  }
})

test('epochAt() answers for kept entries, the one before them and the snapshot, and null elsewhere', () => {
  const log = compactedTen()
  assert.equal([log.firstIndex, log.snapshotIndex, log.lastIndex, log.lastEpoch], [4, 6, 10, 3])
  const cases: Array<[index: number, epoch: number | null]> = [
    [0, 0], [1, null], [2, null], [3, 1], [4, 2], [6, 2], [7, 3], [10, 3], [11, null]
  ]
  for (const [index, epoch] of cases) assert.is(log.epochAt(index), epoch, `epochAt(${index})`)
})

test('entry(), has() and slice() see only the entries kept from firstIndex on', () => {
  const log = compactedTen()
  assert.is(log.entry(3), null)
  assert.is(log.entry(4)?.index, 4)
  assert.is(log.entry(6)?.index, 6, 'entries the snapshot covers are kept a while')
  assert.is(log.entry(11), null)
  assert.equal([3, 4, 6, 10, 11].map((i) => log.has(i)), [false, true, true, true, true])
  const indexes = (entries: LogEntry[]): number[] => entries.map((e) => e.index)
  assert.equal(indexes(log.slice(1, 100)), [4, 5, 6, 7, 8, 9, 10])
  assert.equal(indexes(log.slice(8, 2)), [8, 9])
  assert.equal(indexes(log.slice(11, 5)), [])
  assert.is(log.length, 7)
})

test('truncateFrom() drops the tail and says how many entries went', () => {
  const cases: Array<{ from: number; dropped: number; last: number; lastEpoch: number }> = [
    { from: 8, dropped: 3, last: 7, lastEpoch: 3 },
    { from: 4, dropped: 7, last: 3, lastEpoch: 1 },
    { from: 2, dropped: 9, last: 1, lastEpoch: 1 },
    { from: 11, dropped: 0, last: 10, lastEpoch: 3 },
    { from: 50, dropped: 0, last: 10, lastEpoch: 3 }
  ]
  for (const c of cases) {
    const log = logOf(TEN)
    assert.is(log.truncateFrom(c.from), c.dropped, `truncateFrom(${c.from})`)
    assert.equal([log.lastIndex, log.lastEpoch], [c.last, c.lastEpoch], `after truncateFrom(${c.from})`)
    assert.is(log.entry(c.from), null)
    log.append(deltaEntry(c.last + 1, 9))
    assert.is(log.lastEpoch, 9, 'the log grows again from the cut')
  }
})

test('truncateFrom() takes back a config appended in the dropped tail', () => {
  const twoOf = { members: ['A', 'B'], witness: null }
  const withD = { members: ['A', 'B', 'D'], witness: null }
  const entries = [createEntry(), deltaEntry(2, 1), configEntry(3, 1, ['A', 'B']), deltaEntry(4, 1), configEntry(5, 1, ['A', 'B', 'D']), deltaEntry(6, 1)]
  const cases: Array<{ from: number; config: GroupConfig | null }> = [
    { from: 6, config: withD },
    { from: 5, config: twoOf },
    { from: 4, config: twoOf },
    { from: 3, config: GROUP },
    { from: 2, config: GROUP },
    { from: 1, config: null }
  ]
  for (const c of cases) {
    const log = logOf(entries)
    log.truncateFrom(c.from)
    assert.equal(log.config, c.config, `config after truncateFrom(${c.from})`)
  }
})

test('truncateFrom() falls back to the snapshot config when every later config goes', () => {
  const twoOf = { members: ['A', 'B'], witness: null }
  const log = logOf([createEntry(), deltaEntry(2, 1), configEntry(3, 1, ['A', 'B']), deltaEntry(4, 1), configEntry(5, 1, ['A', 'B', 'D'])])
  log.compact({ index: 4, epoch: 1, config: twoOf }, 1)
  assert.equal(log.config, { members: ['A', 'B', 'D'], witness: null })
  log.truncateFrom(5)
  assert.equal(log.config, twoOf)
})

test('truncateFrom() refuses to cut at or below the snapshot', () => {
  const cases: Array<[from: number, refused: boolean]> = [[1, true], [4, true], [6, true], [7, false]]
  for (const [from, refused] of cases) {
    const log = compactedTen()
    assert.is(throws(() => log.truncateFrom(from)), refused, `truncateFrom(${from})`)
    assert.is(log.lastIndex, refused ? 10 : from - 1)
  }
})

test('compact() records the snapshot, keeps entries from keepFrom on and configAt() still answers', () => {
  const twoOf = { members: ['A', 'B'], witness: null }
  const withD = { members: ['A', 'B', 'D'], witness: null }
  const log = logOf([createEntry(), deltaEntry(2, 1), configEntry(3, 1, ['A', 'B']), deltaEntry(4, 2), deltaEntry(5, 2), configEntry(6, 2, ['A', 'B', 'D']), deltaEntry(7, 2)])
  log.compact({ index: 5, epoch: 2, config: twoOf }, 3)
  assert.equal([log.firstIndex, log.snapshotIndex, log.lastIndex], [3, 5, 7])
  assert.ok(log.firstIndex <= log.snapshotIndex)
  assert.is(log.epochAt(2), 1, 'the epoch before the first kept entry is remembered')
  assert.equal(log.configAt(5), twoOf)
  assert.equal(log.configAt(6), withD)
  assert.equal(log.configAt(7), withD)
  assert.equal(log.config, withD)
})

test('compact() never keeps more than the snapshot allows and ignores an older snapshot', () => {
  const log = logOf(TEN)
  log.compact({ index: 6, epoch: 2, config: GROUP }, 50)
  assert.equal([log.firstIndex, log.snapshotIndex, log.epochAt(6)], [7, 6, 2], 'keepFrom is capped at snapshot + 1')
  log.compact({ index: 5, epoch: 2, config: GROUP }, 1)
  assert.equal([log.firstIndex, log.snapshotIndex], [7, 6], 'an older snapshot changes nothing')
  log.compact({ index: 8, epoch: 3, config: GROUP }, -100)
  assert.equal([log.firstIndex, log.snapshotIndex, log.lastIndex], [7, 8, 10], 'a keepFrom below firstIndex drops nothing')
})

function snapshotBody (index: number, indexEpoch: number, config: GroupConfig = GROUP): SessionSnapshotBody {
  return { index, indexEpoch, info: INFO, config, state: ['x'], dedup: { lastClientSeq: index - 1, recent: [] } }
}

test('installSnapshot() replaces everything the log held', () => {
  const log = logOf(TEN)
  const config = { members: ['A', 'D', 'E'], witness: null }
  log.installSnapshot(snapshotBody(20, 4, config))
  assert.equal([log.firstIndex, log.snapshotIndex, log.lastIndex, log.lastEpoch, log.length], [21, 20, 20, 4, 0])
  assert.equal(log.config, config)
  assert.equal(log.configAt(20), config)
  assert.equal([log.epochAt(20), log.epochAt(10), log.entry(10)], [4, null, null])
  assert.is(log.has(20), false)
  log.append(deltaEntry(21, 5))
  assert.equal([log.lastIndex, log.lastEpoch], [21, 5])
})

test('ReplicaLog.compare() orders logs by last epoch first, then by last index', () => {
  const cases: Array<[a: [number, number], b: [number, number], sign: -1 | 0 | 1]> = [
    [[2, 1], [1, 9], 1],
    [[1, 9], [2, 1], -1],
    [[1, 5], [1, 3], 1],
    [[1, 3], [1, 5], -1],
    [[3, 7], [3, 7], 0],
    [[0, 0], [1, 1], -1]
  ]
  for (const [a, b, sign] of cases) assert.is(Math.sign(ReplicaLog.compare(a[0], a[1], b[0], b[1])), sign, `${a} vs ${b}`)
})

test('ReplicaLog.from(snapshot, entries) rebuilds the log it was saved from', () => {
  const original = logOf([...TEN, configEntry(11, 3, ['A', 'B']), deltaEntry(12, 3)])
  const meta: SnapshotMeta = { index: 6, epoch: 2, config: original.configAt(6) as GroupConfig }
  original.compact(meta, 7)
  const restored = ReplicaLog.from(snapshotBody(6, 2, meta.config as GroupConfig), original.slice(7, 100))
  const shape = (log: ReplicaLog): unknown => ({
    first: log.firstIndex, snapshot: log.snapshotIndex, last: log.lastIndex, lastEpoch: log.lastEpoch,
    config: log.config, epochs: [6, 7, 8, 9, 10, 11, 12].map((i) => log.epochAt(i)), configs: [6, 10, 11, 12].map((i) => log.configAt(i))
  })
  assert.equal(shape(restored), shape(original))
  assert.equal(epochsOf(logOf(TEN)), [1, 1, 1, 2, 2, 2, 3, 3, 3, 3], 'from(null, entries) is plain appending')
})

// ---- a standby taking the owner's appends --------------------------------------

function standbyCtx (): FakeCtx {
  return new FakeCtx('B', new FakeDirectory('B', ['A', 'B', 'C']))
}

test('an append whose prevIndex lies beyond the log is refused with the last index as hint', () => {
  const ctx = standbyCtx()
  const r = standby(ctx, entriesWithEpochs([1, 1, 1]), { commitIndex: 1 })
  onAppend(ctx, r, 'A', appendMsg({ seq: 9, prevIndex: 5, prevEpoch: 1, entries: [deltaEntry(6, 1)], commitIndex: 5 }))
  const ack = ctx.ack()
  assert.equal({ ok: ack.ok, lastIndex: ack.lastIndex, seq: ack.seq }, { ok: false, lastIndex: 3, seq: 9 })
  assert.equal(ctx.persists('session-entries'), [])
  assert.equal([r.log.lastIndex, r.commitIndex], [3, 1])
})

test('an append whose prevEpoch differs is refused, with a hint never below the commit index', () => {
  // The standby holds five entries of epoch 1; the owner of epoch 2 disagrees at prevIndex.
  const cases: Array<{ prevIndex: number; commitIndex: number; hint: number }> = [
    { prevIndex: 5, commitIndex: 2, hint: 4 },
    { prevIndex: 4, commitIndex: 2, hint: 3 },
    { prevIndex: 4, commitIndex: 3, hint: 3 },
    { prevIndex: 3, commitIndex: 3, hint: 3 }
  ]
  for (const c of cases) {
    const ctx = standbyCtx()
    const r = standby(ctx, entriesWithEpochs([1, 1, 1, 1, 1]), { commitIndex: c.commitIndex })
    onAppend(ctx, r, 'A', appendMsg({ epoch: 2, prevIndex: c.prevIndex, prevEpoch: 2, entries: [epochEntry(c.prevIndex + 1, 2)] }))
    const ack = ctx.ack()
    assert.is(ack.ok, false, `prevIndex ${c.prevIndex}`)
    assert.is(ack.lastIndex, c.hint, `hint for prevIndex ${c.prevIndex} with commit ${c.commitIndex}`)
    assert.equal(epochsOf(r.log), [1, 1, 1, 1, 1], 'nothing is dropped before the logs agree')
    assert.equal(ctx.persists('session-entries'), [])
  }
})

test('conflicting unacknowledged entries are truncated before the owner\'s entries are stored', () => {
  const ctx = standbyCtx()
  const r = standby(ctx, entriesWithEpochs([1, 1, 1, 1, 1]), { commitIndex: 2 })
  onAppend(ctx, r, 'A', appendMsg({ epoch: 2, prevIndex: 3, prevEpoch: 1, entries: [epochEntry(4, 2), deltaEntry(5, 2, 3, 'new')], commitIndex: 3 }))
  const truncatePersist = ctx.indexOf((e) => e.kind === 'persist' && e.record.kind === 'session-truncate')
  const truncatedEvent = ctx.indexOf((e) => e.kind === 'event' && e.event.type === 'truncated')
  const entriesPersist = ctx.indexOf((e) => e.kind === 'persist' && e.record.kind === 'session-entries')
  const ackSent = ctx.indexOf((e) => e.kind === 'send')
  assert.ok(truncatePersist >= 0 && truncatedEvent >= 0 && entriesPersist >= 0)
  assert.ok(truncatePersist < entriesPersist, 'session-truncate is persisted before the new entries')
  assert.ok(truncatedEvent < entriesPersist)
  assert.ok(entriesPersist < ackSent, 'the ack leaves after everything is persisted')
  assert.equal(ctx.persists('session-truncate'), [{ kind: 'session-truncate', sessionId: SESSION, fromIndex: 4 }])
  assert.equal(ctx.events('truncated'), [{ type: 'truncated', sessionId: SESSION, fromIndex: 4, entries: 2 }])
  const stored = ctx.persists('session-entries')[0]
  assert.equal(stored.kind === 'session-entries' ? stored.entries.map((e) => e.index) : null, [4, 5])
  assert.equal(epochsOf(r.log), [1, 1, 1, 2, 2])
  assert.equal({ ok: ctx.ack().ok, matchIndex: ctx.ack().matchIndex }, { ok: true, matchIndex: 5 })
  assert.equal([r.epoch, r.owner, r.commitIndex], [2, 'A', 3])
})

test('entries the standby already holds are not truncated nor stored again', () => {
  const ctx = standbyCtx()
  const r = standby(ctx, entriesWithEpochs([1, 1, 1, 1, 1]), { commitIndex: 2 })
  onAppend(ctx, r, 'A', appendMsg({ prevIndex: 1, entries: [deltaEntry(2, 1), deltaEntry(3, 1)], commitIndex: 2 }))
  assert.equal(ctx.persists(), [])
  assert.equal(ctx.events('truncated'), [])
  assert.is(r.log.lastIndex, 5, 'a matching prefix leaves the tail alone')
  assert.equal([ctx.ack().ok, ctx.ack().matchIndex], [true, 3], 'the ack claims only what the append verified')
})

test('a duplicated append is idempotent: stored once, acknowledged twice alike', () => {
  const ctx = standbyCtx()
  const r = standby(ctx, entriesWithEpochs([1]), { commitIndex: 1 })
  const msg = appendMsg({ seq: 4, prevIndex: 1, entries: [deltaEntry(2, 1), deltaEntry(3, 1)], commitIndex: 1 })
  onAppend(ctx, r, 'A', msg)
  assert.is(ctx.persists('session-entries').length, 1)
  const first = ctx.ack()
  ctx.take()
  onAppend(ctx, r, 'A', msg)
  assert.equal(ctx.persists(), [], 'nothing is persisted the second time')
  assert.equal(ctx.ack(), first)
  assert.is(r.log.lastIndex, 3)
})

test('the commit index follows min(owner\'s commit, what the append verified) and feeds the log service', () => {
  // The standby holds 1..5 (create + v2..v5), committed up to 1.
  const cases: Array<{ name: string; prevIndex: number; entries: number; ownerCommit: number; commit: number; state: string[] }> = [
    { name: 'owner commit below the match', prevIndex: 1, entries: 4, ownerCommit: 3, commit: 3, state: ['v2', 'v3'] },
    { name: 'owner commit above the match', prevIndex: 1, entries: 2, ownerCommit: 5, commit: 3, state: ['v2', 'v3'] },
    { name: 'a heartbeat commits only what it verified', prevIndex: 2, entries: 0, ownerCommit: 5, commit: 2, state: ['v2'] },
    { name: 'a full match', prevIndex: 1, entries: 4, ownerCommit: 5, commit: 5, state: ['v2', 'v3', 'v4', 'v5'] }
  ]
  const all = entriesWithEpochs([1, 1, 1, 1, 1])
  for (const c of cases) {
    const ctx = standbyCtx()
    const r = standby(ctx, all, { commitIndex: 1 })
    assert.equal(r.state, [], 'the create entry starts the log service with an empty list')
    onAppend(ctx, r, 'A', appendMsg({ prevIndex: c.prevIndex, entries: all.slice(c.prevIndex, c.prevIndex + c.entries), commitIndex: c.ownerCommit }))
    assert.is(r.commitIndex, c.commit, c.name)
    assert.is(r.appliedIndex, c.commit, c.name)
    assert.equal(r.state, c.state, c.name)
    assert.is(r.knownCommitIndex, c.ownerCommit, `${c.name}: how far the group is`)
  }
})

test('an append from an earlier epoch is refused and changes nothing', () => {
  const ctx = standbyCtx()
  const r = standby(ctx, entriesWithEpochs([1, 1, 3]), { epoch: 3, owner: 'C', heardOwnerAgoMs: 250, commitIndex: 2 })
  onAppend(ctx, r, 'A', appendMsg({ epoch: 2, prevIndex: 3, prevEpoch: 3, entries: [deltaEntry(4, 2)], commitIndex: 4 }))
  const ack = ctx.ack()
  assert.equal({ ok: ack.ok, epoch: ack.epoch, lastIndex: ack.lastIndex }, { ok: false, epoch: 3, lastIndex: 3 })
  assert.equal(ctx.persists(), [])
  assert.equal(ctx.events(), [])
  assert.equal([r.epoch, r.owner, r.lastOwnerContactMs, r.log.lastIndex, r.commitIndex], [3, 'C', ctx.now - 250, 3, 2])
})

test('an append of a later epoch makes the standby follow its sender, persisting the epoch first', () => {
  const ctx = standbyCtx()
  const r = standby(ctx, entriesWithEpochs([1, 1]), { epoch: 1, owner: 'A', votedFor: 'A', heardOwnerAgoMs: 900, commitIndex: 2 })
  onAppend(ctx, r, 'C', appendMsg({ epoch: 3, prevIndex: 2, prevEpoch: 1, entries: [epochEntry(3, 3)], commitIndex: 2 }))
  assert.equal(ctx.persists('session-meta'), [{ kind: 'session-meta', sessionId: SESSION, epoch: 3, votedFor: null }])
  assert.equal([r.epoch, r.votedFor, r.owner, r.lastOwnerContactMs, r.role], [3, null, 'C', ctx.now, 'standby'])
  assert.ok(ctx.indexOf((e) => e.kind === 'persist' && e.record.kind === 'session-meta') < ctx.indexOf((e) => e.kind === 'send'))
})

test('an append starting an unknown session with its create entry creates the replica', () => {
  const ctx = standbyCtx()
  const r = onAppend(ctx, undefined, 'A', appendMsg({ prevIndex: 0, prevEpoch: 0, entries: [createEntry(), deltaEntry(2, 1)], commitIndex: 1 }))
  assert.ok(r !== null)
  assert.equal([r.id, r.epoch, r.owner, r.log.lastIndex, r.commitIndex, r.role], [SESSION, 1, 'A', 2, 1, 'standby'])
  assert.equal(r.state, [])
  assert.equal(ctx.persists().map((p) => p.kind), ['session-meta', 'session-entries'])
  assert.equal([ctx.ack().ok, ctx.ack().matchIndex], [true, 2])
})

test('any other append for an unknown session is refused with last index 0', () => {
  const cases: Array<{ name: string; prevIndex: number; entries: LogEntry[] }> = [
    { name: 'a heartbeat', prevIndex: 0, entries: [] },
    { name: 'entries from the middle', prevIndex: 3, entries: [deltaEntry(4, 1)] },
    { name: 'a first entry that is not a create', prevIndex: 0, entries: [deltaEntry(1, 1)] }
  ]
  for (const c of cases) {
    const ctx = standbyCtx()
    const r = onAppend(ctx, undefined, 'A', appendMsg({ seq: 7, prevIndex: c.prevIndex, entries: c.entries }))
    assert.is(r, null, c.name)
    const ack = ctx.ack()
    assert.equal({ ok: ack.ok, lastIndex: ack.lastIndex, matchIndex: ack.matchIndex, seq: ack.seq }, { ok: false, lastIndex: 0, matchIndex: 0, seq: 7 }, c.name)
    assert.equal(ctx.persists(), [], c.name)
  }
})

test('a snapshot past what the standby applied replaces its log and state', () => {
  const ctx = standbyCtx()
  const r = standby(ctx, entriesWithEpochs([1, 1, 1]), { commitIndex: 2 })
  const snapshot: SessionSnapshotBody = { index: 40, indexEpoch: 2, info: INFO, config: GROUP, state: ['a', 'b'], dedup: { lastClientSeq: 30, recent: [[30, 40]] } }
  onSnapshot(ctx, r, 'A', { type: 'session-snapshot', sessionId: SESSION, epoch: 2, seq: 3, snapshot })
  assert.equal([r.log.snapshotIndex, r.log.lastIndex, r.appliedIndex, r.commitIndex, r.epoch], [40, 40, 40, 40, 2])
  assert.equal(r.state, ['a', 'b'])
  assert.equal(ctx.persists().map((p) => p.kind), ['session-meta', 'session-snapshot', 'session-truncate'])
  assert.equal([ctx.ack().ok, ctx.ack().matchIndex], [true, 40])
})

test.run()
