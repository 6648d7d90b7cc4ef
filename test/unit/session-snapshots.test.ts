// Snapshot cadence (agent/sessions/replica.ts maybeSnapshot, config.ts
// snapshotLogRatio): a state that grows with its log is snapshotted at
// geometrically spaced points, so the bytes serialised per delta stay bounded;
// a state of constant size is still snapshotted every snapshotEveryEntries.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { appendEntry } from '../../agent/sessions/owner.ts'
import type { SessionDurable } from '../../agent/sessions/types.ts'
import type { JsonValue } from '../../protocol/messages.ts'
import { ackFrom, ownerGroup } from './session-fixtures.ts'

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
  // Every 100 entries: 200 snapshots of a state up to 2 MB, ~200 MB serialised.
  assert.is(every.snapshots, 200)
  assert.ok(every.bytes > 100 * every.stateBytes / 2, `every 100: ${every.bytes} bytes`)
  // Amortised: each snapshot follows at least as many log bytes as its state.
  assert.ok(amortised.snapshots >= 5 && amortised.snapshots <= 12, `${amortised.snapshots} snapshots`)
  assert.ok(amortised.bytes <= 2 * amortised.stateBytes + 100_000, `${amortised.bytes} bytes serialised for a ${amortised.stateBytes}-byte state`)
  // The log kept since the last snapshot is at most about the state's size.
  assert.ok(amortised.logLength * 100 <= amortised.stateBytes * 0.6, `${amortised.logLength} entries kept for a ${amortised.stateBytes}-byte state`)
})

test('a state of constant size is still snapshotted every snapshotEveryEntries', () => {
  const counter = run(1, 2_000, () => ({ add: 1 }), 'counter')
  assert.is(counter.snapshots, 20)
})

test.run()
