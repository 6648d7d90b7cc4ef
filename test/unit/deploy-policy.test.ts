// Deployment policies and hub choice (agent/deploy/policy.ts): pure functions of
// the policy and the member table.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { fetchOrder, hubOf, isTarget, parsePolicy, redirectTarget, resolveTargets } from '../../agent/deploy/policy.ts'
import type { Policy } from '../../agent/deploy/policy.ts'
import type { NodeRecord, Position } from '../../protocol/messages.ts'

type Opts = { region?: string; zone?: string; load?: number; position?: Position | null; services?: string[]; http?: string }

function node (id: string, o: Opts = {}): NodeRecord {
  return {
    id, addrs: [], ip: '10.0.0.1', http: o.http ?? `http://${id}:7700`,
    services: (o.services ?? []).map((name) => ({ name, version: '1', capacity: 100 })),
    load: { score: o.load ?? 0, sessions: 0, elu: 0, cpu: 0 },
    position: o.position ?? null, region: o.region ?? '', zone: o.zone ?? '', incarnation: 1, seq: 1, status: 'alive'
  }
}

function policy (text: string): Policy {
  const parsed = parsePolicy(text)
  if (!parsed.ok) throw new Error(parsed.reason)
  return parsed.policy
}

const TABLE = [
  node('a1', { region: 'eu', zone: 'dc1', load: 0.5 }),
  node('a2', { region: 'eu', zone: 'dc2', load: 0.2 }),
  node('a3', { region: 'eu', zone: 'edge', load: 0.0 }),
  node('b1', { region: 'us', zone: 'edge', load: 0.3 }),
  node('b2', { region: 'us', zone: 'edge', load: 0.1 }),
  node('c1', { region: 'ap', zone: 'dc', load: 0.95 }),
  node('c2', { region: 'ap', zone: 'dc', load: 0.97 })
]

test('parsePolicy() accepts each policy and refuses bad ones with the list of policies', () => {
  assert.equal(policy('all'), { kind: 'all' })
  assert.equal(policy('nodes:b,a,a'), { kind: 'nodes', ids: ['a', 'b'] })
  assert.equal(policy('regions:us, eu'), { kind: 'regions', regions: ['eu', 'us'] })
  assert.equal(policy('hub-per-region'), { kind: 'hub-per-region' })
  assert.equal(policy('replicas:3'), { kind: 'replicas', count: 3 })
  assert.equal(policy('auto'), { kind: 'auto' })
  for (const bad of ['', 'everything', 'all:x', 'nodes:', 'regions:', 'replicas:0', 'replicas:two', 'nodes:a b']) {
    const parsed = parsePolicy(bad)
    assert.not.ok(parsed.ok, bad)
    if (!parsed.ok) assert.match(parsed.reason, /policies: all, nodes/)
  }
})

test('resolveTargets() for all, nodes, regions and auto', () => {
  assert.equal(resolveTargets(policy('all'), TABLE, 'cart', 0.9), ['a1', 'a2', 'a3', 'b1', 'b2', 'c1', 'c2'])
  assert.equal(resolveTargets(policy('nodes:b2,zz'), TABLE, 'cart', 0.9), ['b2', 'zz'])
  assert.equal(resolveTargets(policy('regions:us,ap'), TABLE, 'cart', 0.9), ['b1', 'b2', 'c1', 'c2'])
  // auto skips the overloaded ap nodes.
  assert.equal(resolveTargets(policy('auto'), TABLE, 'cart', 0.9), ['a1', 'a2', 'a3', 'b1', 'b2'])
  const left = TABLE.map((r) => r.id === 'a3' ? { ...r, status: 'left' as const } : r)
  assert.equal(resolveTargets(policy('all'), left, 'cart', 0.9), ['a1', 'a2', 'b1', 'b2', 'c1', 'c2'])
})

test('hubOf() takes a data-centre node (zone dc…), under the threshold, least loaded, then by id', () => {
  // eu: dc1 and dc2 are data-centre nodes; a3 (edge) is idle but not one.
  assert.is(hubOf(TABLE.filter((r) => r.region === 'eu'), 0.9)?.id, 'a2')
  // us has no data-centre node: any node, least loaded.
  assert.is(hubOf(TABLE.filter((r) => r.region === 'us'), 0.9)?.id, 'b2')
  // ap: both over the threshold: still a hub, the least loaded (in 0.1 steps), then by id.
  assert.is(hubOf(TABLE.filter((r) => r.region === 'ap'), 0.9)?.id, 'c1')
  // Loads within one 0.1 step tie, and the smaller id wins: no flapping on noise.
  assert.is(hubOf([node('x', { load: 0.21 }), node('w', { load: 0.29 })], 0.9)?.id, 'w')
  assert.is(hubOf([], 0.9), null)
  assert.equal(resolveTargets(policy('hub-per-region'), TABLE, 'cart', 0.9), ['a2', 'b2', 'c1'])
})

test('replicas:n picks n nodes under the threshold, stable when a non-chosen node leaves', () => {
  const many = Array.from({ length: 20 }, (_, i) => node(`n${String(i).padStart(2, '0')}`))
  const three = resolveTargets(policy('replicas:3'), many, 'cart', 0.9)
  assert.is(three.length, 3)
  const other = many.find((r) => !three.includes(r.id))!
  assert.equal(resolveTargets(policy('replicas:3'), many.filter((r) => r !== other), 'cart', 0.9), three)
  // Another package name spreads elsewhere (not always the same three nodes).
  const names = ['cart', 'video', 'docs', 'chat', 'maps'].map((n) => resolveTargets(policy('replicas:3'), many, n, 0.9).join())
  assert.ok(new Set(names).size > 1)
  assert.equal(resolveTargets(policy('replicas:50'), many, 'cart', 0.9).length, 20)
})

test('property: every agent computing from the same table gets the same targets', () => {
  const record = fc.record({
    id: fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/),
    region: fc.constantFrom('eu', 'us', 'ap', ''),
    zone: fc.constantFrom('dc1', 'dc', 'edge', ''),
    load: fc.double({ min: 0, max: 1, noNaN: true })
  })
  const policies = fc.constantFrom('all', 'hub-per-region', 'auto', 'replicas:1', 'replicas:4', 'regions:eu,ap', 'nodes:a,b')
  fc.assert(fc.property(fc.uniqueArray(record, { selector: (r) => r.id, minLength: 1, maxLength: 30 }), policies, fc.integer(), (specs, text, seed) => {
    const table = specs.map((s) => node(s.id, s))
    const shuffled = [...table].sort((a, b) => ((a.id.charCodeAt(0) * seed) % 7) - ((b.id.charCodeAt(0) * seed) % 7))
    const one = resolveTargets(policy(text), table, 'cart', 0.9)
    assert.equal(resolveTargets(policy(text), shuffled, 'cart', 0.9), one)
    // And each agent's own verdict agrees with the list.
    for (const r of table) assert.is(isTarget(policy(text), shuffled, r, 'cart', 0.9), one.includes(r.id))
  }), { seed: 42, numRuns: 300 })
})

test('fetchOrder(): the region hub among holders first, then same-region, then nearest', () => {
  const berlin = { lat: 52.5, lon: 13.4 }
  const holders = [
    node('far', { region: 'us', position: { lat: 40.7, lon: -74 } }),
    node('near', { region: 'us', position: { lat: 48.8, lon: 2.3 } }),
    node('hub', { region: 'eu', zone: 'dc1', load: 0.4 }),
    node('peer', { region: 'eu', load: 0.1 })
  ]
  assert.equal(fetchOrder(holders, { region: 'eu', position: berlin }, 0.9), ['hub', 'peer', 'near', 'far'])
  assert.equal(fetchOrder([], { region: 'eu', position: berlin }, 0.9), [])
})

test('redirectTarget(): nearest healthy same-region agent under the threshold that offers the service', () => {
  const self = node('self', { region: 'eu', position: { lat: 52.5, lon: 13.4 }, load: 0.99, services: ['cart'] })
  const offering = [
    self,
    node('busy', { region: 'eu', position: { lat: 52.4, lon: 13.1 }, load: 0.95, services: ['cart'] }),
    node('far', { region: 'eu', position: { lat: 38.7, lon: -9.1 }, services: ['cart'] }),
    node('close', { region: 'eu', position: { lat: 51.3, lon: 12.4 }, services: ['cart'] }),
    node('other-region', { region: 'us', position: { lat: 52.5, lon: 13.4 }, services: ['cart'] }),
    node('no-http', { region: 'eu', position: { lat: 52.5, lon: 13.4 }, services: ['cart'], http: '' })
  ]
  assert.is(redirectTarget(offering, self, 0.9)?.id, 'close')
  assert.is(redirectTarget([self], self, 0.9), null)
})

test.run()
