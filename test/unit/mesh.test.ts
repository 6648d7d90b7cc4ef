// The simulator's gossipsub model: a mesh flood, not a broadcast.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeededRandom } from '../../agent/core/random.ts'
import { GOSSIP_MESH } from '../../agent/net/constants.ts'
import { GossipMesh, MESH_HEARTBEAT_MS } from '../../sim/mesh.ts'
import type { MeshLinks, MeshPeer } from '../../sim/mesh.ts'

const SEED = 11
console.log(`mesh tests: seed ${SEED}`)

function peers (n: number, crashed: Set<number> = new Set()): MeshPeer[] {
  return Array.from({ length: n }, (_, index) => ({ index, id: `n${index}`, state: crashed.has(index) ? 'crashed' : 'running' }))
}

// Every link takes 1 ms; `cut` splits the nodes at an index (a partition).
function links (cut = Infinity, lossEvery = 0): MeshLinks {
  let copies = 0
  const side = (id: string): boolean => Number(id.slice(1)) < cut
  return {
    canReach: (from, to) => side(from) === side(to),
    transit: (from, to) => {
      if (side(from) !== side(to)) return null
      copies++
      return lossEvery > 0 && copies % lossEvery === 0 ? null : 1
    }
  }
}

test('every node gets D to Dhi mesh links', () => {
  const mesh = new GossipMesh(new SeededRandom(SEED))
  mesh.grow(500)
  for (let i = 0; i < 500; i++) {
    const degree = mesh.links(i).length
    assert.ok(degree >= GOSSIP_MESH.D && degree <= GOSSIP_MESH.Dhi, `node ${i} has ${degree} links`)
  }
})

test('a flood reaches every node once, in about log N hops, and each node sees about D copies', () => {
  for (const n of [100, 1_000, 10_000]) {
    const mesh = new GossipMesh(new SeededRandom(SEED))
    const all = peers(n)
    const flood = mesh.flood(all[0], all, links())
    assert.is(flood.deliveries.length, n - 1, `${n} nodes`)
    assert.is(new Set(flood.deliveries.map((d) => d.node)).size, n - 1)
    const hops = Math.max(...flood.deliveries.map((d) => d.atMs))
    assert.ok(hops <= 3 * Math.log(n) / Math.log(GOSSIP_MESH.D), `${n} nodes: ${hops} hops`)
    assert.ok(hops >= Math.log(n) / Math.log(GOSSIP_MESH.Dhi), `${n} nodes: ${hops} hops is a broadcast, not a mesh`)
    const received = [...flood.received]
    const mean = received.reduce((a, b) => a + b, 0) / n
    assert.ok(mean >= GOSSIP_MESH.D - 1 && mean <= GOSSIP_MESH.Dhi, `${n} nodes: ${mean} copies per node`)
  }
})

test('crashed nodes get nothing; nodes cut off from the mesh get it one heartbeat later', () => {
  const mesh = new GossipMesh(new SeededRandom(SEED))
  mesh.grow(50)
  // Crash every mesh peer of node 7: only the heartbeat's repair reaches it.
  const crashed = new Set(mesh.links(7))
  crashed.delete(0)
  const all = peers(50, crashed)
  const flood = mesh.flood(all[0], all, links())
  const reached = new Map(flood.deliveries.map((d) => [d.node, d.atMs]))
  for (const c of crashed) assert.not.ok(reached.has(c), `crashed node ${c} got it`)
  assert.is(reached.size, 50 - 1 - crashed.size)
  if (!mesh.links(7).includes(0)) assert.ok((reached.get(7) ?? 0) > MESH_HEARTBEAT_MS)
})

test('a partition stops the flood at its edge', () => {
  const mesh = new GossipMesh(new SeededRandom(SEED))
  const all = peers(200)
  const flood = mesh.flood(all[0], all, links(100))
  assert.ok(flood.deliveries.every((d) => d.node < 100))
  assert.is(flood.deliveries.length, 99)
})

test('loss of single copies is hidden by the mesh', () => {
  const mesh = new GossipMesh(new SeededRandom(SEED))
  const all = peers(1_000)
  const flood = mesh.flood(all[0], all, links(Infinity, 10))
  assert.ok(flood.deliveries.length >= 990, `${flood.deliveries.length} of 999 reached with 10% of copies lost`)
})

test.run()
