// Snapshot cadence (agent/sessions/replica.ts maybeSnapshot, config.ts
// snapshotLogRatio): a state that grows with its log is snapshotted at
// geometrically spaced points, so the bytes serialised per delta stay bounded;
// a state of constant size is still snapshotted every snapshotEveryEntries.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { appendEntry } from '../../agent/sessions/owner.ts'
import { snapshotSpread } from '../../agent/sessions/replica.ts'
import type { SessionDurable } from '../../agent/sessions/types.ts'
import type { JsonValue } from '../../protocol/messages.ts'
import { INFO, ackFrom, ownerGroup } from './session-fixtures.ts'

// Appends `count` deltas one at a time, each acknowledged by B and C; returns the
// snapshots stored and the bytes of state they serialised in all.
function run (ratio: number, count: number, op: (i: number) => JsonValue, service?: string): { snapshots: number; bytes: number; stateBytes: number; logLength: number } {
  const { ctx, r } = ownerGroup({ config: { snapshotEveryEntries: 100, snapshotLogRatio: ratio } })
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
  const sessions = Array.from({ length: 16 }, (_, i) => ownerGroup({ sessionId: `log:${i.toString(16).padStart(16, '0')}`, config: { snapshotEveryEntries: 100, snapshotLogRatio: 1 } }))
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

test('a state of constant size is still snapshotted every snapshotEveryEntries times the session\'s factor', () => {
  const counter = run(1, 2_000, () => ({ add: 1 }), 'counter')
  const every = Math.ceil(100 * snapshotSpread(INFO.sessionId))
  assert.ok(every >= 100 && every < 150)
  assert.is(counter.snapshots, Math.floor(2_000 / every))
})

test.run()
