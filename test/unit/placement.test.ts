import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  HashRing, distanceKm, eligible, hash32, placeGroup, priority, proximity, rankCandidates, replacementFor, witnessFor
} from '../../agent/sessions/placement.ts'
import { sessionsProfile } from '../../agent/sessions/config.ts'
import type { SessionsConfig } from '../../agent/sessions/config.ts'
import { SeededRandom } from '../../agent/core/random.ts'
import type { GroupConfig, NodeRecord, Position, RecordStatus, ServiceOffer } from '../../protocol/messages.ts'

const LAN = sessionsProfile('lan')
const BERLIN: Position = { lat: 52.52, lon: 13.405 }
const POTSDAM: Position = { lat: 52.39, lon: 13.065 }
const LISBON: Position = { lat: 38.72, lon: -9.139 }

type NodeOptions = { load?: number; capacity?: number; position?: Position | null; status?: RecordStatus; services?: ServiceOffer[] }

function node (id: string, options: NodeOptions = {}): NodeRecord {
  return {
    id,
    addrs: [],
    ip: '10.0.0.1',
    http: '',
    services: options.services ?? [{ name: 'kv', version: '1', capacity: options.capacity ?? 100 }],
    load: { score: options.load ?? 0, sessions: 0, elu: 0, cpu: 0 },
    position: options.position ?? null,
    region: '',
    zone: '',
    incarnation: 1,
    seq: 1,
    status: options.status ?? 'alive'
  }
}

function nodes (count: number, options: NodeOptions = {}): NodeRecord[] {
  return Array.from({ length: count }, (_, i) => node(`node-${String(i).padStart(2, '0')}`, options))
}

function keys (count: number): string[] {
  return Array.from({ length: count }, (_, i) => `session-${i}`)
}

function config (overrides: Partial<SessionsConfig> = {}): SessionsConfig {
  return { ...LAN, ...overrides }
}

function place (records: NodeRecord[], key: string, cfg: SessionsConfig = LAN, terminal: Position | null = null): GroupConfig {
  const group = placeGroup(records, key, 'kv', terminal, cfg)
  if (group === null) throw new Error(`no group for ${key}`)
  return group
}

function ownerCounts (records: NodeRecord[], cfg: SessionsConfig, count: number): Map<string, number> {
  const counts = new Map<string, number>(records.map((r) => [r.id, 0]))
  for (const key of keys(count)) {
    const owner = place(records, key, cfg).members[0]
    counts.set(owner, (counts.get(owner) ?? 0) + 1)
  }
  return counts
}

function sameSet (a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id))
}

function pct (fraction: number): string {
  return `${(fraction * 100).toFixed(2)}%`
}

// ---- hash32 ----

test('hash32() keeps its pinned values (a change moves every session on upgrade)', () => {
  const cases: Array<[string, number]> = [
    ['', 0xab3e7c0b],
    ['a', 0x1a80b1b3],
    ['node-00#0', 0xd3aa9f37],
    ['session-1', 0x23b81b8b],
    ['é✓😀', 0x30798695]
  ]
  for (const [text, expected] of cases) assert.is(hash32(text), expected, JSON.stringify(text))
})

test('hash32() gives 10,000 distinct unsigned 32-bit values for 10,000 session keys', () => {
  const hashes = keys(10_000).map(hash32)
  assert.ok(hashes.every((h) => Number.isInteger(h) && h >= 0 && h < 2 ** 32))
  assert.is(new Set(hashes).size, 10_000)
})

// ---- the ring ----

test('HashRing.walk() returns distinct nodes in ring order, wrapping around, at most all of them', () => {
  const ring = new HashRing([{ id: 'a', capacity: 100 }, { id: 'b', capacity: 100 }, { id: 'c', capacity: 100 }], 32)
  for (const key of keys(200)) {
    const all = ring.walk(key, 10)
    assert.is(all.length, 3)
    assert.equal([...all].sort(), ['a', 'b', 'c'])
    assert.equal(ring.walk(key, 2), all.slice(0, 2))
  }
  assert.is(ring.size, 3)
})

test('HashRing does not depend on the order of its nodes, and counts a repeated node once', () => {
  const list = [{ id: 'x', capacity: 100 }, { id: 'y', capacity: 300 }, { id: 'z', capacity: 50 }]
  const forward = new HashRing(list, 32)
  const backward = new HashRing([...list].reverse(), 32)
  const repeated = new HashRing([...list, { id: 'x', capacity: 100 }], 32)
  for (const key of keys(500)) {
    assert.equal(backward.walk(key, 3), forward.walk(key, 3))
    assert.equal(repeated.walk(key, 3), forward.walk(key, 3))
  }
})

// ---- determinism ----

test('placeGroup() gives the same group for 1,000 keys whatever the order of the records', () => {
  const positions = [BERLIN, POTSDAM, LISBON, null]
  const table = Array.from({ length: 24 }, (_, i) => node(`n${i}`, {
    load: (i * 37 % 100) / 100, capacity: 50 + (i % 4) * 100, position: positions[i % 4]
  }))
  const random = new SeededRandom(7)
  for (const cfg of [config(), config({ replicas: 1 })]) {
    const shuffles = [0, 1, 2].map(() => random.shuffle([...table]))
    for (const key of keys(1_000)) {
      const expected = placeGroup(table, key, 'kv', BERLIN, cfg)
      for (const shuffled of shuffles) assert.equal(placeGroup(shuffled, key, 'kv', BERLIN, cfg), expected, key)
    }
  }
})

// ---- eligibility (M0.3, M4.2) ----

test('eligible() keeps alive nodes that offer the service with capacity, under the load threshold', () => {
  const cases: Array<[string, NodeRecord, boolean]> = [
    ['alive, offering, idle', node('ok'), true],
    ['another version of the service', node('v2', { services: [{ name: 'kv', version: '2', capacity: 10 }] }), true],
    ['just under the threshold', node('under', { load: 0.89 }), true],
    ['announced its departure', node('left', { status: 'left' }), false],
    // A table entry copied with a member status rather than a record status.
    ['dead', node('dead', { status: 'dead' as RecordStatus }), false],
    ['suspect', node('suspect', { status: 'suspect' as RecordStatus }), false],
    ['offers another service only', node('other', { services: [{ name: 'log', version: '1', capacity: 100 }] }), false],
    ['offers nothing', node('none', { services: [] }), false],
    ['load at the threshold', node('at', { load: 0.9 }), false],
    ['load above the threshold', node('over', { load: 0.95 }), false],
    ['capacity 0', node('full', { capacity: 0 }), false]
  ]
  for (const [name, record, expected] of cases) {
    assert.is(eligible([record], 'kv', 0.9).length === 1, expected, name)
  }
  // A threshold of 1 turns the load filter off, even for a node at full load.
  for (const load of [0, 0.99, 1]) {
    assert.is(eligible([node('x', { load })], 'kv', 1).length, 1, `load ${load} with threshold 1`)
  }
})

test('placeGroup() never picks an ineligible node, however attractive', () => {
  const ineligible = [
    node('left', { status: 'left', position: BERLIN }),
    node('other', { services: [{ name: 'log', version: '1', capacity: 100 }], position: BERLIN }),
    node('busy', { load: 0.95, position: BERLIN }),
    node('full', { capacity: 0, position: BERLIN })
  ]
  const table = [...ineligible, ...nodes(5, { load: 0.5, position: LISBON })]
  for (const key of keys(300)) {
    const { members } = place(table, key, LAN, BERLIN)
    assert.is(members.length, 3)
    assert.ok(members.every((id) => id.startsWith('node-')), members.join())
  }
})

test('placeGroup() makes up standbys from agents over the load threshold, least loaded first; never an owner; null when none is under it', () => {
  const two = [node('a'), node('b'), node('busy', { load: 0.99 }), node('busier', { load: 0.995 })]
  for (const key of keys(50)) {
    const group = place(two, key)
    assert.equal([...group.members.slice(0, 2)].sort(), ['a', 'b'], 'the eligible first, one of them the owner')
    assert.is(group.members[2], 'busy', 'then the least loaded over the threshold')
    assert.is(group.witness, null)
  }
  // One agent under the threshold: it owns, the loaded ones stand by (before: a group of one).
  for (const key of keys(50)) assert.equal(place([node('busier', { load: 0.995 }), node('free'), node('busy', { load: 0.99 })], key).members, ['free', 'busy', 'busier'])
  // Fewer agents offering the service than replicas + 1: a smaller group, with a witness for two.
  const pair = place([node('a'), node('b', { load: 0.99 }), node('other', { services: [{ name: 'log', version: '1', capacity: 100 }] })], 'k')
  assert.equal(pair.members, ['a', 'b'])
  assert.is(pair.witness, 'other')
  assert.equal(place([node('solo')], 'k').members, ['solo'])
  assert.is(placeGroup([node('busy', { load: 0.99 }), node('left', { status: 'left' })], 'k', 'kv', null, LAN), null)
  assert.is(placeGroup([], 'k', 'kv', null, LAN), null)
})

// ---- spread and capacity weighting (M4.1) ----

test('a node of capacity 300 owns about 3× the sessions of a capacity-100 node (20,000 keys)', () => {
  const table = [node('big', { capacity: 300 }), ...nodes(9)]
  const cfg = config({ vnodesPer100Capacity: 256 })
  const counts = ownerCounts(table, cfg, 20_000)
  const big = counts.get('big') ?? 0
  const ratio = big / ((20_000 - big) / 9)
  console.log(`    capacity 300 vs 100, 256 vnodes per 100: owner ratio ${ratio.toFixed(3)}`)
  assert.ok(ratio > 3 * 0.85 && ratio < 3 * 1.15, `ratio ${ratio}`)
})

test('owners of 20,000 keys on 20 equal nodes stay within ±25% of the mean (256 vnodes per 100)', () => {
  const spread = (vnodes: number): { min: number; max: number } => {
    const counts = [...ownerCounts(nodes(20), config({ vnodesPer100Capacity: vnodes }), 20_000).values()]
    return { min: Math.min(...counts) / 1_000, max: Math.max(...counts) / 1_000 }
  }
  const tuned = spread(256)
  const shipped = spread(LAN.vnodesPer100Capacity)
  console.log(`    owners per node / mean: 256 vnodes ${tuned.min}–${tuned.max}; default ${LAN.vnodesPer100Capacity} vnodes ${shipped.min}–${shipped.max}`)
  assert.ok(tuned.min >= 0.75 && tuned.max <= 1.25, JSON.stringify(tuned))
})

// ---- ring stability (M4.3) ----

test('adding a 21st node moves about 1/21 of owners, all to the new node, and changes few groups', () => {
  const before = nodes(20)
  const after = [...before, node('node-20')]
  let ownerMoved = 0
  let setChanged = 0
  for (const key of keys(10_000)) {
    const a = place(before, key)
    const b = place(after, key)
    if (a.members[0] !== b.members[0]) {
      ownerMoved++
      assert.is(b.members[0], 'node-20', key)
    }
    if (!sameSet(a.members, b.members)) {
      setChanged++
      assert.ok(b.members.includes('node-20'), key)
    }
  }
  const owners = ownerMoved / 10_000
  const sets = setChanged / 10_000
  console.log(`    join: owners moved ${pct(owners)} (1/21 = ${pct(1 / 21)}); member sets changed ${pct(sets)} ((R+1)/21 = ${pct(3 / 21)})`)
  assert.ok(owners >= 0.5 / 21 && owners <= 1.6 / 21, `owners moved ${owners}`)
  assert.ok(sets <= 2 * 3 / 21, `member sets changed ${sets}`)
})

test('removing a node changes only the groups that held it; every other session keeps its group', () => {
  const before = nodes(20)
  const gone = 'node-07'
  const after = before.filter((r) => r.id !== gone)
  let ownerMoved = 0
  let held = 0
  for (const key of keys(10_000)) {
    const a = place(before, key)
    const b = place(after, key)
    if (!a.members.includes(gone)) {
      assert.equal(b, a, key)
      continue
    }
    held++
    if (a.members[0] !== b.members[0]) ownerMoved++
    assert.equal(b.members.filter((id) => a.members.includes(id)), a.members.filter((id) => id !== gone), key)
  }
  console.log(`    leave: owners moved ${pct(ownerMoved / 10_000)} (1/20 = ${pct(1 / 20)}); groups holding the node ${pct(held / 10_000)}`)
  assert.ok(ownerMoved > 0 && ownerMoved <= held)
})

// ---- ranking (M0.7) ----

test('distanceKm() is the great-circle distance', () => {
  const cases: Array<[Position, Position, number, number]> = [
    [BERLIN, BERLIN, 0, 0.001],
    [BERLIN, POTSDAM, 27, 1],
    [BERLIN, LISBON, 2310, 15],
    [{ lat: 0, lon: 0 }, { lat: 0, lon: 180 }, Math.PI * 6371, 0.001]
  ]
  for (const [a, b, km, tolerance] of cases) {
    assert.ok(Math.abs(distanceKm(a, b) - km) <= tolerance, `${distanceKm(a, b)} ≈ ${km}`)
  }
})

test('proximity() is 1 at the terminal, ½ at 1,000 km, and neutral when a position is unknown', () => {
  assert.is(proximity(BERLIN, BERLIN), 1)
  assert.ok(Math.abs(proximity({ lat: 0, lon: 0 }, { lat: 0, lon: 1000 / 6371 * 180 / Math.PI }) - 0.5) < 1e-9)
  assert.is(proximity(null, BERLIN), 0.5)
  assert.is(proximity(BERLIN, null), 0.5)
})

test('priority() sums the weighted ring, spare-load and proximity terms', () => {
  const weights = { weightRing: 2, weightLoad: 3, weightDistance: 5 }
  assert.is(priority(node('a', { load: 0.25, position: BERLIN }), 1, 4, BERLIN, weights), 2 * 0.75 + 3 * 0.75 + 5 * 1)
  assert.is(priority(node('b', { load: 1 }), 0, 4, null, weights), 2 + 0 + 5 * 0.5)
})

test('rankCandidates(): a nearby node outranks a far one of equal load, even when later on the ring', () => {
  const far = node('far', { load: 0.3, position: LISBON })
  const near = node('near', { load: 0.3, position: POTSDAM })
  assert.equal(rankCandidates([far, near], BERLIN, LAN).map((r) => r.id), ['near', 'far'])
})

test('rankCandidates(): at equal positions the less loaded node outranks the busier one', () => {
  const busy = node('busy', { load: 0.8, position: BERLIN })
  const idle = node('idle', { load: 0.1, position: BERLIN })
  assert.equal(rankCandidates([busy, idle], BERLIN, LAN).map((r) => r.id), ['idle', 'busy'])
})

test('rankCandidates(): with weightDistance 0 distance is irrelevant and ring order decides', () => {
  const far = node('far', { position: LISBON })
  const near = node('near', { position: BERLIN })
  const weights = config({ weightDistance: 0 })
  assert.equal(rankCandidates([far, near], BERLIN, weights).map((r) => r.id), ['far', 'near'])
  assert.equal(rankCandidates([near, far], BERLIN, weights).map((r) => r.id), ['near', 'far'])
})

test('rankCandidates(): equal priorities keep ring order', () => {
  const list = nodes(6, { load: 0.5 })
  assert.equal(rankCandidates(list, null, config({ weightRing: 0 })).map((r) => r.id), list.map((r) => r.id))
})

test('placeGroup() never chooses a node beyond the candidate window, however idle and near', () => {
  const cfg = config({ candidateWindow: 4 })
  const ids = nodes(12).map((r) => r.id)
  const ring = new HashRing(ids.map((id) => ({ id, capacity: 100 })), cfg.vnodesPer100Capacity)
  for (const key of keys(200)) {
    const window = ring.walk(key, cfg.candidateWindow)
    const table = ids.map((id) => window.includes(id)
      ? node(id, { load: 0.85, position: LISBON })
      : node(id, { load: 0, position: BERLIN }))
    const { members } = place(table, key, cfg, BERLIN)
    assert.ok(members.every((id) => window.includes(id)), `${key}: ${members.join()} outside ${window.join()}`)
  }
})

test('placeGroup() lets an idle node third on the ring overtake the busier two ahead of it', () => {
  const ids = nodes(12).map((r) => r.id)
  const ring = new HashRing(ids.map((id) => ({ id, capacity: 100 })), LAN.vnodesPer100Capacity)
  const window = ring.walk('session-x', LAN.candidateWindow)
  // Ring steps are worth 1/6 each with a window of 6; 0.6 of spare load outweighs two.
  const idle = window[2]
  const table = ids.map((id) => node(id, { load: id === idle ? 0 : 0.6 }))
  assert.is(place(table, 'session-x').members[0], idle)
})

// ---- witness and repair ----

test('a witness is present exactly when a group has two members, and is never a member', () => {
  const table = [...nodes(8), node('busy', { load: 0.99 }), node('log-only', { services: [] })]
  for (const replicas of [0, 1, 2, 3]) {
    for (const key of keys(300)) {
      const group = place(table, key, config({ replicas }))
      assert.is(group.members.length, replicas + 1)
      if (group.members.length === 2) {
        assert.ok(group.witness !== null && !group.members.includes(group.witness), `${key}: ${group.witness}`)
      } else {
        assert.is(group.witness, null)
      }
    }
  }
})

test('witnessFor() picks any alive non-member, and nobody when there is none', () => {
  assert.is(witnessFor([node('a'), node('b')], 'k', ['a', 'b']), null)
  assert.is(witnessFor([node('a'), node('b'), node('c', { status: 'left' })], 'k', ['a', 'b']), null)
  assert.is(witnessFor([node('a'), node('b'), node('c', { load: 1, services: [] })], 'k', ['a', 'b']), 'c')
  assert.is(witnessFor([node('a'), node('b'), node('c')], 'k', ['a', 'b', 'c']), null)
})

test('replacementFor() never returns a member or the witness', () => {
  const table = [...nodes(10), node('busy', { load: 0.99 })]
  for (const replicas of [1, 2]) {
    const cfg = config({ replicas })
    for (const key of keys(300)) {
      const group = place(table, key, cfg)
      const replacement = replacementFor(table, key, 'kv', null, group, cfg)
      assert.ok(replacement !== null && !group.members.includes(replacement) && replacement !== group.witness, `${key}: ${replacement}`)
      assert.ok(replacement !== 'busy')
    }
  }
})

test('replacementFor() after a member leaves completes the group a fresh placement would choose', () => {
  const table = nodes(15)
  for (const key of keys(300)) {
    const group = place(table, key)
    const gone = group.members[1]
    const rest = table.filter((r) => r.id !== gone)
    const replacement = replacementFor(rest, key, 'kv', null, group, LAN)
    assert.ok(replacement !== null)
    const repaired = [...group.members.filter((id) => id !== gone), replacement]
    assert.ok(sameSet(repaired, place(rest, key).members), key)
  }
})

test('replacementFor() takes an eligible node first, then the least loaded over the threshold, and null when every agent is taken', () => {
  const table = [node('a'), node('b'), node('c'), node('busy', { load: 0.95 }), node('left', { load: 0.1, status: 'left' })]
  assert.is(replacementFor(table, 'k', 'kv', null, { members: ['a', 'b'], witness: null }, LAN), 'c')
  assert.is(replacementFor(table, 'k', 'kv', null, { members: ['a', 'b', 'c'], witness: null }, LAN), 'busy')
  assert.is(replacementFor(table, 'k', 'kv', null, { members: ['a', 'b'], witness: 'c' }, LAN), 'busy')
  assert.is(replacementFor(table, 'k', 'kv', null, { members: ['a', 'b', 'c', 'busy'], witness: null }, LAN), null)
  assert.is(replacementFor([], 'k', 'kv', null, { members: ['a', 'b'], witness: 'c' }, LAN), null)
})

test.run()
