// Snapshot cadence (agent/sessions/replica.ts maybeSnapshot, config.ts
// snapshotLogRatio): a state that grows with its log is snapshotted at
// geometrically spaced points, so the bytes serialised per delta stay bounded;
// a state of constant size is still snapshotted every snapshotEveryEntries.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { appendEntry } from '../../agent/sessions/owner.ts'
import { snapshotSpread } from '../../agent/sessions/replica.ts'
import { SNAPSHOT_MAX_WAIT_MS, SNAPSHOT_WINDOW_MS, SnapshotBudget } from '../../agent/sessions/snapshot-budget.ts'
import type { SessionDurable } from '../../agent/sessions/types.ts'
import type { JsonValue } from '../../protocol/messages.ts'
import { INFO, ackFrom, ownerGroup } from './session-fixtures.ts'

// Appends `count` deltas one at a time, each acknowledged by B and C; returns the
// snapshots stored and the bytes of state they serialised in all.
function run (ratio: number, count: number, op: (i: number) => JsonValue, service?: string): { snapshots: number; bytes: number; stateBytes: number; logLength: number } {
  // The cadence alone: no agent-wide budget (its own test is below).
  const { ctx, r } = ownerGroup({ config: { snapshotEveryEntries: 100, snapshotLogRatio: ratio, snapshotBytesPerS: 0 } })
  if (service !== undefined) r.info = { ...r.info, service }
  let snapshots = 0
  let bytes = 0
  for (let i = 1; i <= count; i++) {
    appendEntry(ctx, r, { kind: 'delta', clientSeq: i, op: op(i) })
    ackFrom(ctx, r, 'B', { matchIndex: r.log.lastIndex })
    ackFrom(ctx, r, 'C', { matchIndex: r.log.lastIndex })
    for (const record of ctx.persists('session-snapshot') as Array<Extract<SessionDurable, { kind: 'session-snapshot' }>>) {
      snapshots++
      bytes += JSON.stringify(record.snapshot.state).length
    }
    ctx.take()
  }
  assert.is(r.appliedIndex, count + 1 + (r.log.lastIndex - count - 1))
  return { snapshots, bytes, stateBytes: r.stateBytes, logLength: r.log.lastIndex - r.log.snapshotIndex }
}

const line = (i: number): JsonValue => ({ append: `line ${i} `.padEnd(100, '.') })

test('a growing state (the log service) is snapshotted at geometric points: O(1) bytes per delta', () => {
  const amortised = run(1, 20_000, line)
  const every = run(0, 20_000, line)
  // Every 100 entries (times the session's factor, 1-1.5): 133-200 snapshots
  // of a state up to 2 MB, ~200 MB serialised.
  assert.is(every.snapshots, Math.floor(20_000 / Math.ceil(100 * snapshotSpread(INFO.sessionId))))
  assert.ok(every.bytes > 100 * every.stateBytes / 2, `every 100: ${every.bytes} bytes`)
  // Amortised: each snapshot follows at least as many log bytes as its state.
  assert.ok(amortised.snapshots >= 5 && amortised.snapshots <= 12, `${amortised.snapshots} snapshots`)
  assert.ok(amortised.bytes <= 2 * amortised.stateBytes + 100_000, `${amortised.bytes} bytes serialised for a ${amortised.stateBytes}-byte state`)
  // The log kept since the last snapshot is at most about the state's size.
  assert.ok(amortised.logLength * 100 <= amortised.stateBytes * 0.6, `${amortised.logLength} entries kept for a ${amortised.stateBytes}-byte state`)
})

test('sessions written alike do not snapshot together: each waits by its own factor (snapshotSpread)', () => {
  const sessions = Array.from({ length: 16 }, (_, i) => ownerGroup({ sessionId: `log:${i.toString(16).padStart(16, '0')}`, config: { snapshotEveryEntries: 100, snapshotLogRatio: 1, snapshotBytesPerS: 0 } }))
  const factors = sessions.map(({ r }) => snapshotSpread(r.id))
  assert.ok(factors.every((f) => f >= 1 && f < 1.5), String(factors))
  assert.ok(new Set(factors).size >= 14, 'the factors differ')
  let most = 0
  let bigStalls = 0
  for (let i = 1; i <= 20_000; i++) {
    let together = 0
    for (const { ctx, r } of sessions) {
      appendEntry(ctx, r, { kind: 'delta', clientSeq: i, op: line(i) })
      ackFrom(ctx, r, 'B', { matchIndex: r.log.lastIndex })
      ackFrom(ctx, r, 'C', { matchIndex: r.log.lastIndex })
      together += ctx.persists('session-snapshot').length
      ctx.take()
    }
    most = Math.max(most, together)
    if (together > 1) bigStalls++
  }
  // Without the spread all 16 snapshot in the same round every time.
  assert.ok(most <= 3, `${most} sessions snapshotted in the same round`)
  assert.ok(bigStalls <= 6, `${bigStalls} rounds with more than one snapshot`)
})

// 32 sessions of one agent (one budget), written alike, 1 ms apart per round:
// the state bytes snapshotted in each window, and each session's snapshots.
function oneAgent (bytesPerS: number): { worstWindow: number; biggest: number; perSession: number[]; longestLog: number; longestWaitMs: number } {
  const budget = new SnapshotBudget(bytesPerS)
  const sessions = Array.from({ length: 32 }, (_, i) => ownerGroup({ sessionId: `log:${i.toString(16).padStart(16, '0')}`, config: { snapshotEveryEntries: 100, snapshotLogRatio: 1, snapshotBytesPerS: bytesPerS } }))
  for (const { ctx } of sessions) ctx.snapshotBudget = budget
  const windows = new Map<number, number>()
  const perSession = sessions.map(() => 0)
  let biggest = 0
  let longestLog = 0
  let longestWaitMs = 0
  for (let i = 1; i <= 3_000; i++) {
    const now = 10_000 + i
    for (const [s, { ctx, r }] of sessions.entries()) {
      ctx.now = now
      appendEntry(ctx, r, { kind: 'delta', clientSeq: i, op: line(i) })
      ackFrom(ctx, r, 'B', { matchIndex: r.log.lastIndex })
      ackFrom(ctx, r, 'C', { matchIndex: r.log.lastIndex })
      for (const record of ctx.persists('session-snapshot') as Array<Extract<SessionDurable, { kind: 'session-snapshot' }>>) {
        const bytes = JSON.stringify(record.snapshot.state).length
        const window = Math.floor(now / SNAPSHOT_WINDOW_MS)
        windows.set(window, (windows.get(window) ?? 0) + bytes)
        biggest = Math.max(biggest, bytes)
        perSession[s]++
      }
      longestLog = Math.max(longestLog, r.log.lastIndex - r.log.snapshotIndex)
      if (r.snapshotWaitingSinceMs !== null) longestWaitMs = Math.max(longestWaitMs, now - r.snapshotWaitingSinceMs)
      ctx.take()
    }
  }
  return { worstWindow: Math.max(...windows.values()), biggest, perSession, longestLog, longestWaitMs }
}

test('one agent\'s sessions share the snapshot budget: a window holds its share of state, and no due snapshot waits past SNAPSHOT_MAX_WAIT_MS', () => {
  // 8 MiB/s, 400 KiB per 50 ms window: about twice what these sessions
  // snapshot on average, less than what comes together.
  const bytesPerS = 8 * 1_048_576
  const limited = oneAgent(bytesPerS)
  const free = oneAgent(0)
  const share = bytesPerS * SNAPSHOT_WINDOW_MS / 1_000
  console.log(`32 sessions alike: worst window ${limited.worstWindow} bytes snapshotted with the budget (share ${share}), ${free.worstWindow} without; longest log ${limited.longestLog} and ${free.longestLog} entries; longest wait ${limited.longestWaitMs} ms`)
  assert.ok(free.worstWindow > 1.5 * share, 'without the budget, snapshot points come together')
  // The share, or one snapshot alone (the first of its window), or the share
  // and an overdue one.
  assert.ok(limited.worstWindow <= Math.max(share, limited.biggest) + limited.biggest, `${limited.worstWindow} bytes in one window`)
  assert.ok(limited.worstWindow < free.worstWindow)
  assert.ok(limited.longestWaitMs <= SNAPSHOT_MAX_WAIT_MS, `a snapshot waited ${limited.longestWaitMs} ms`)
  // Nobody starves: each session snapshots about as often, its log a little longer.
  for (const [s, count] of limited.perSession.entries()) assert.ok(count >= free.perSession[s] - 1, `session ${s}: ${count} snapshots, ${free.perSession[s]} without the budget`)
  assert.ok(limited.longestLog <= 1.5 * free.longestLog, `${limited.longestLog} entries kept, ${free.longestLog} without`)
})

test('a state of constant size is still snapshotted every snapshotEveryEntries times the session\'s factor', () => {
  const counter = run(1, 2_000, () => ({ add: 1 }), 'counter')
  const every = Math.ceil(100 * snapshotSpread(INFO.sessionId))
  assert.ok(every >= 100 && every < 150)
  assert.is(counter.snapshots, Math.floor(2_000 / every))
})

test.run()
