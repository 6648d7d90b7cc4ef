// The probe ring (agent/membership/ring.ts) and the member table that keeps it:
// in every probe period the schedule is a rotation of the ring, so every live
// member probes exactly one other and is probed by exactly one other, and over
// N − 1 periods each member probes every other once.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { PROBE_RING_MAX, ProbeRing } from '../../agent/membership/ring.ts'
import { MemberTable } from '../../agent/membership/table.ts'
import type { Accusation, NodeRecord, SignedRecord } from '../../protocol/messages.ts'

const SEED = Number(process.env.FC_SEED ?? Date.now() % 2_147_483_647)

function record (id: string, incarnation: number, status: 'alive' | 'left' = 'alive', seq = 0): SignedRecord {
  const r: NodeRecord = {
    id, addrs: [], ip: '', http: '', services: [], load: { score: 0, sessions: 0, elu: 0, cpu: 0 },
    position: null, region: '', zone: '', incarnation, seq, status
  }
  return { record: r, bytes: new Uint8Array(1), sig: new Uint8Array(1) }
}

function accuse (kind: 'suspect' | 'dead', subject: string, incarnation: number): Accusation {
  return { kind, subject, incarnation, accuser: 'x' }
}

const deadline = (start: number): number => start + 1000

test('the ring keeps ids in code-unit order, once each', () => {
  const ring = new ProbeRing()
  for (const id of ['m', 'b', 'Z', 'b', 'z', 'a1', 'a']) ring.add(id)
  assert.equal([...ring.ids()], ['Z', 'a', 'a1', 'b', 'm', 'z'])
  ring.remove('a1')
  ring.remove('absent')
  assert.equal([...ring.ids()], ['Z', 'a', 'b', 'm', 'z'])
  assert.ok(ring.has('m'))
  assert.not.ok(ring.has('a1'))
  assert.equal([...ProbeRing.of(['c', 'a', 'b']).ids()], ['a', 'b', 'c'])
})

test('target(): nobody alone, nobody outside the ring', () => {
  assert.is(ProbeRing.of(['a']).target('a', 3), null)
  assert.is(ProbeRing.of(['a', 'b']).target('c', 3), null)
  assert.is(ProbeRing.of(['a', 'b']).target('a', 3), 'b')
  assert.is(ProbeRing.of(['a', 'b']).target('b', 3), 'a')
})

test(`target(): each period is a rotation; N − 1 periods cover every pair (fast-check seed ${SEED})`, () => {
  fc.assert(fc.property(
    fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 2, maxLength: 40 }),
    fc.integer({ min: -1_000_000, max: 2_000_000_000 }),
    (ids, firstSlot) => {
      const ring = ProbeRing.of(ids)
      const n = ids.length
      const probed = new Map<string, Set<string>>(ids.map((id) => [id, new Set()]))
      for (let slot = firstSlot; slot < firstSlot + n - 1; slot++) {
        const targets = new Set<string>()
        for (const id of ids) {
          const target = ring.target(id, slot)
          assert.ok(target !== null && target !== id, `slot ${slot}: ${id} probes ${String(target)}`)
          targets.add(target)
          probed.get(id)!.add(target)
        }
        assert.is(targets.size, n, `slot ${slot}: every member probed exactly once`)
      }
      for (const [id, targets] of probed) assert.is(targets.size, n - 1, `${id} probed every other member once`)
    }
  ), { seed: SEED, numRuns: 300 })
})

test('the table keeps the ring to its live members: alive and suspect in, dead and left out, back on refutation', () => {
  const table = new MemberTable()
  table.addSelf(record('me', 1), 0)
  for (const id of ['c', 'a', 'b', 'd']) table.applyRecord(record(id, 1), 0)
  const ids = (): string[] => [...table.probeRing()!.ids()]
  assert.equal(ids(), ['a', 'b', 'c', 'd', 'me'])
  table.applyAccusation(null, accuse('suspect', 'b', 1), 10, deadline)
  assert.equal(ids(), ['a', 'b', 'c', 'd', 'me'], 'a suspect is still probed')
  table.applyAccusation(null, accuse('dead', 'b', 1), 20, deadline)
  assert.equal(ids(), ['a', 'c', 'd', 'me'])
  table.applyRecord(record('b', 2), 30)
  assert.equal(ids(), ['a', 'b', 'c', 'd', 'me'], 'a refutation brings it back')
  table.applyRecord(record('c', 1, 'left', 1), 40)
  assert.equal(ids(), ['a', 'b', 'd', 'me'])
  assert.equal(table.reap(1_000), ['c'])
  assert.equal(ids(), ['a', 'b', 'd', 'me'])
  assert.is(table.probeRing()!.size, table.liveCount)
})

test(`above ${PROBE_RING_MAX} live members the table drops the ring, and rebuilds it below`, () => {
  const table = new MemberTable()
  table.addSelf(record('me', 1), 0)
  const id = (i: number): string => `m${String(i).padStart(5, '0')}`
  for (let i = 0; i < PROBE_RING_MAX - 1; i++) table.applyRecord(record(id(i), 1), 0)
  assert.is(table.probeRing()?.size, PROBE_RING_MAX)
  table.applyRecord(record(id(PROBE_RING_MAX), 1), 0)
  table.applyRecord(record(id(PROBE_RING_MAX + 1), 1), 0)
  assert.is(table.probeRing(), null)
  for (const i of [3, 7]) table.applyAccusation(null, accuse('dead', id(i), 1), 10, deadline)
  const ring = table.probeRing()
  assert.ok(ring !== null)
  assert.is(ring.size, PROBE_RING_MAX)
  assert.not.ok(ring.has(id(3)))
  assert.ok(ring.has(id(PROBE_RING_MAX + 1)) && ring.has('me'))
  const sorted = [...ring.ids()]
  assert.equal(sorted, [...sorted].sort(), 'rebuilt in order')
  table.applyAccusation(null, accuse('dead', id(9), 1), 20, deadline)
  assert.not.ok(table.probeRing()!.has(id(9)), 'kept up to date again once rebuilt')
})

test.run()
