// Gossipsub as a mesh, for the simulator. Each node keeps about D mesh links
// (at most Dhi, the agent's own GOSSIP_MESH settings); a publish floods the
// mesh: every node that receives a message for the first time forwards it to
// its other mesh peers, each copy over one link with that link's delay and loss.
// A node's delivery time is therefore the fastest surviving path from the
// publisher, about log_D(N) hops, and each node sends and receives about D
// copies of every message (the duplicates are dropped by gossipsub's seen-cache
// before they reach the agent, so only the first is delivered).
//
// Crashed nodes neither receive nor forward; paused ones receive (the kernel
// queues it) but do not forward. Gossipsub re-grafts around missing peers at its
// next heartbeat: a node the mesh cannot reach, though the network can, gets the
// message one heartbeat after the last mesh delivery. Loss is per copy, so the
// mesh's redundancy hides most of it, as it does in the real thing.

import { GOSSIP_MESH } from '../agent/net/constants.ts'
import type { SeededRandom } from '../agent/core/random.ts'
import { MinHeap } from '../agent/core/min-heap.ts'

// Gossipsub's heartbeat, which repairs the mesh (its default, 1 s).
export const MESH_HEARTBEAT_MS = 1_000

export type MeshPeer = {
  readonly index: number
  readonly id: string
  readonly state: 'running' | 'paused' | 'crashed'
}

export type MeshLinks = {
  // One copy's delay over the link, or null when it is lost or cannot cross.
  transit: (from: string, to: string) => number | null
  canReach: (from: string, to: string) => boolean
}

// Per publish: when each reached node gets it, and the copies each node sent
// and received (duplicates included), by node index.
export type MeshFlood = {
  deliveries: Array<{ node: number; atMs: number }>
  sent: Int32Array
  received: Int32Array
}

export class GossipMesh {
  readonly #random: SeededRandom
  readonly #degree: number
  readonly #maxDegree: number
  readonly #links: number[][] = []

  constructor (random: SeededRandom, degree = GOSSIP_MESH.D, maxDegree = GOSSIP_MESH.Dhi) {
    this.#random = random
    this.#degree = degree
    this.#maxDegree = maxDegree
  }

  // Mesh links of node `index` (for tests and the report).
  links (index: number): readonly number[] {
    return this.#links[index] ?? []
  }

  // Grafts links until every node up to `count` has D of them (or no peer
  // under Dhi is left to take one).
  grow (count: number): void {
    while (this.#links.length < count) this.#links.push([])
    for (let node = 0; node < count; node++) {
      for (let tries = 0; this.#links[node].length < this.#degree && tries < 8 * this.#degree; tries++) {
        const peer = this.#random.nextInt(count)
        if (peer === node || this.#links[peer].length >= this.#maxDegree || this.#links[node].includes(peer)) continue
        this.#links[node].push(peer)
        this.#links[peer].push(node)
      }
    }
  }

  flood (publisher: MeshPeer, peers: readonly MeshPeer[], links: MeshLinks): MeshFlood {
    this.grow(peers.length)
    const arrival = new Float64Array(peers.length).fill(Infinity)
    const parent = new Int32Array(peers.length).fill(-1)
    const sent = new Int32Array(peers.length)
    const received = new Int32Array(peers.length)
    const deliveries: MeshFlood['deliveries'] = []
    const heap = new MinHeap<number>()
    arrival[publisher.index] = 0
    heap.push(0, publisher.index)
    let lastMs = 0
    while (heap.size > 0) {
      const atMs = heap.topTime
      const node = heap.pop()
      if (atMs > arrival[node]) continue
      const peer = peers[node]
      if (node !== publisher.index) {
        deliveries.push({ node, atMs })
        lastMs = Math.max(lastMs, atMs)
      }
      if (peer.state !== 'running') continue
      for (const next of this.#links[node]) {
        if (next === parent[node] || peers[next].state === 'crashed') continue
        sent[node]++
        const delay = links.transit(peer.id, peers[next].id)
        if (delay === null) continue
        received[next]++
        if (atMs + delay < arrival[next]) {
          arrival[next] = atMs + delay
          parent[next] = node
          heap.push(atMs + delay, next)
        }
      }
    }
    // The heartbeat's repair: reachable nodes the mesh missed.
    for (const peer of peers) {
      if (peer.state === 'crashed' || arrival[peer.index] !== Infinity || !links.canReach(publisher.id, peer.id)) continue
      const delay = links.transit(publisher.id, peer.id)
      if (delay === null) continue
      sent[publisher.index]++
      received[peer.index]++
      deliveries.push({ node: peer.index, atMs: lastMs + MESH_HEARTBEAT_MS + delay })
    }
    return { deliveries, sent, received }
  }
}
