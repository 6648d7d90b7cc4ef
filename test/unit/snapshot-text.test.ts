// The snapshot text the store writes (agent/sessions/snapshot-text.ts): built
// around the state text the core already made, it must be JSON.stringify's own.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { keepStateText, keptStateBytes, snapshotJson } from '../../agent/sessions/snapshot-text.ts'
import type { JsonValue, SessionSnapshotBody } from '../../protocol/messages.ts'

const SEED = process.env.SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.SEED)

function snapshotOf (state: JsonValue, recent: Array<[number, number]> = [[4, 9]]): SessionSnapshotBody {
  // As snapshotAt builds it: the state is the parse of its text.
  return {
    index: 9,
    indexEpoch: 2,
    info: { sessionId: 'log:00ff', service: 'log', terminalId: 'till-7', tokenHash: 'ab'.repeat(32), position: { lat: 52.52, lon: -0 } },
    config: { members: ['peer-a', 'peer-b'], witness: null },
    state: JSON.parse(JSON.stringify(state)) as JsonValue,
    dedup: { lastClientSeq: 4, recent }
  }
}

test('the text built around the kept state text is JSON.stringify(snapshot), once; then it is serialised as usual', () => {
  const state = { items: ['a', 'ü\u2028"\\'], 10: 'integer-like key first', total: -0, big: 1e21, none: null, nested: { ok: true } }
  const snapshot = snapshotOf(state, [])
  keepStateText(snapshot, JSON.stringify(snapshot.state))
  assert.is(keptStateBytes(snapshot), JSON.stringify(snapshot.state).length)
  assert.is(snapshotJson(snapshot), JSON.stringify(snapshot))
  assert.is(keptStateBytes(snapshot), null, 'taken once')
  assert.is(snapshotJson(snapshot), JSON.stringify(snapshot))
  assert.is(snapshotJson(snapshotOf('no text kept')), JSON.stringify(snapshotOf('no text kept')))
})

test(`any JSON state: the same text (fast-check, SEED=${SEED})`, () => {
  console.log(`SEED=${SEED} (replay: SEED=${SEED} node test/unit/snapshot-text.test.ts)`)
  fc.assert(fc.property(fc.jsonValue(), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 4 }), (state, recent) => {
    const snapshot = snapshotOf(state as JsonValue, recent)
    keepStateText(snapshot, JSON.stringify(snapshot.state))
    return snapshotJson(snapshot) === JSON.stringify(snapshot)
  }), { seed: SEED, numRuns: 500 })
})

test.run()
