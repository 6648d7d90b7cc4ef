// The snapshot text the store writes (agent/sessions/snapshot-text.ts): built
// around the state text the core already made, it must be JSON.stringify's own.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { keptStateBytes, snapshotJson, snapshotOfText } from '../../agent/sessions/snapshot-text.ts'
import type { JsonValue, SessionSnapshotBody } from '../../protocol/messages.ts'

const SEED = process.env.SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.SEED)

const FIELDS = {
  index: 9,
  indexEpoch: 2,
  info: { sessionId: 'log:00ff', service: 'log', terminalId: 'till-7', tokenHash: 'ab'.repeat(32), position: { lat: 52.52, lon: -0 } },
  config: { members: ['peer-a', 'peer-b'], witness: null }
}

// A plain snapshot, its state a value.
function snapshotOf (state: JsonValue, recent: Array<[number, number]> = [[4, 9]]): SessionSnapshotBody {
  return { ...FIELDS, state: JSON.parse(JSON.stringify(state)) as JsonValue, dedup: { lastClientSeq: 4, recent } }
}

// As snapshotAt takes it: the state as its text.
function takenOf (state: JsonValue, recent: Array<[number, number]> = [[4, 9]]): SessionSnapshotBody {
  return snapshotOfText(FIELDS, JSON.stringify(state), { lastClientSeq: 4, recent })
}

test('the text built around the kept state text is JSON.stringify(snapshot), once; then it is serialised as usual', () => {
  const state = { items: ['a', 'ü\u2028"\\'], 10: 'integer-like key first', total: -0, big: 1e21, none: null, nested: { ok: true } }
  const snapshot = takenOf(state, [])
  assert.is(keptStateBytes(snapshot), JSON.stringify(state).length)
  assert.is(snapshotJson(snapshot), JSON.stringify(snapshotOf(state, [])))
  assert.is(keptStateBytes(snapshot), null, 'taken once')
  assert.is(snapshotJson(snapshot), JSON.stringify(snapshotOf(state, [])), 'the state is still there, parsed from the text')
  assert.is(snapshotJson(snapshotOf('no text kept')), JSON.stringify(snapshotOf('no text kept')))
})

test('the store\'s text is built without parsing the state', () => {
  const text = JSON.stringify({ items: ['a', 'b'] })
  const snapshot = snapshotOfText(FIELDS, text, { lastClientSeq: 4, recent: [] })
  const expected = JSON.stringify(snapshotOf({ items: ['a', 'b'] }, []))
  const parse = JSON.parse
  let parsedState = 0
  JSON.parse = ((source: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
    if (source === text) parsedState++
    return parse(source, reviver)
  }) as typeof JSON.parse
  try {
    assert.is(snapshotJson(snapshot), expected)
  } finally {
    JSON.parse = parse
  }
  assert.is(parsedState, 0)
  assert.equal(snapshot.state, { items: ['a', 'b'] }, 'read afterwards, it is parsed then')
})

test('the state is parsed when first read, once; from then on it is the snapshot\'s, changes included', () => {
  const snapshot = takenOf({ items: ['a'] })
  assert.equal(Object.keys(snapshot), ['index', 'indexEpoch', 'info', 'config', 'state', 'dedup'])
  const state = snapshot.state as { items: string[] }
  assert.equal(state, { items: ['a'] })
  assert.ok(snapshot.state === state, 'the same value on every read')
  assert.is(keptStateBytes(snapshot), null, 'a state read is no longer its text')
  state.items.push('b')
  assert.is(snapshotJson(snapshot), JSON.stringify(snapshotOf({ items: ['a', 'b'] })))
  const replaced = takenOf([1])
  replaced.state = [2]
  assert.equal(replaced.state, [2])
  assert.is(snapshotJson(replaced), JSON.stringify(snapshotOf([2])))
})

test(`any JSON state: the same text (fast-check, SEED=${SEED})`, () => {
  console.log(`SEED=${SEED} (replay: SEED=${SEED} node test/unit/snapshot-text.test.ts)`)
  fc.assert(fc.property(fc.jsonValue(), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 4 }), (state, recent) => {
    const expected = JSON.stringify(snapshotOf(state as JsonValue, recent))
    return snapshotJson(takenOf(state as JsonValue, recent)) === expected && JSON.stringify(takenOf(state as JsonValue, recent)) === expected
  }), { seed: SEED, numRuns: 500 })
})

test.run()
