// Test tool: a hostile peer on the agent's own transport stack (TCP, noise,
// yamux, pnet when given), with a key of its own and gossipsub on the cluster
// topic. It opens the agent's protocols and writes whatever bytes it is given:
// garbage, truncated or oversized frames, frames of the wrong type, floods.
// test/net/hostile.test.ts and bench/flood.ts drive it; the agent never uses it.
// (It lives in agent/net/ because only agent/net/ imports libp2p.)

import { createLibp2p, type Libp2p } from 'libp2p'
import { gossipsub, type GossipsubEvents } from '@chainsafe/libp2p-gossipsub'
import { identify } from '@libp2p/identify'
import { StrictSign } from '@libp2p/interface'
import type { PubSub, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { directProtocol, gossipTopic, peekProtocol, replicationProtocol } from './constants.ts'
import { connectionStack } from './transport.ts'

export type HostileProtocol = 'swim' | 'replicate' | 'peek'

// One stream the peer writes on at will. `ended` resolves when the agent ends
// the stream (closed or reset), with what the agent wrote on it.
export type RawStream = {
  write: (bytes: Uint8Array) => Promise<void>
  // Ends our side; the agent then ends its own.
  close: () => void
  abort: () => void
  readonly ended: Promise<{ how: 'closed' | 'reset'; received: number }>
}

type Services = { identify: unknown; pubsub: PubSub<GossipsubEvents> }

export class HostilePeer {
  readonly #node: Libp2p<Services>
  readonly #cluster: string

  private constructor (node: Libp2p<Services>, cluster: string) {
    this.#node = node
    this.#cluster = cluster
  }

  static async start (cluster: string, psk?: Uint8Array): Promise<HostilePeer> {
    const node = await createLibp2p<Services>({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      ...connectionStack(psk),
      connectionMonitor: { enabled: false },
      services: {
        identify: identify(),
        pubsub: gossipsub({ globalSignaturePolicy: StrictSign, allowPublishToZeroTopicPeers: true, emitSelf: false, fallbackToFloodsub: false })
      }
    })
    node.services.pubsub.subscribe(gossipTopic(cluster))
    return new HostilePeer(node, cluster)
  }

  get id (): string {
    return this.#node.peerId.toString()
  }

  protocolId (which: HostileProtocol): string {
    if (which === 'swim') return directProtocol(this.#cluster)
    if (which === 'replicate') return replicationProtocol(this.#cluster)
    return peekProtocol(this.#cluster)
  }

  async connect (target: string, timeoutMs = 10_000): Promise<void> {
    await this.#node.dial(multiaddr(target), { signal: AbortSignal.timeout(timeoutMs) })
  }

  // Opens `which` on the agent at `target` (a multiaddr ending in /p2p/<id>).
  async open (target: string, which: HostileProtocol, timeoutMs = 10_000): Promise<RawStream> {
    const stream = await this.#node.dialProtocol(multiaddr(target), this.protocolId(which), { signal: AbortSignal.timeout(timeoutMs) })
    return rawStream(stream)
  }

  // Publishes `bytes` on the cluster topic, signed with this peer's key. Resolves
  // with how many peers it went to (0: not yet in anyone's mesh or fanout).
  async publish (bytes: Uint8Array): Promise<number> {
    const result = await this.#node.services.pubsub.publish(gossipTopic(this.#cluster), bytes)
    return result.recipients.length
  }

  // Peers subscribed to the cluster topic, as gossipsub sees them.
  topicPeers (): string[] {
    return this.#node.services.pubsub.getSubscribers(gossipTopic(this.#cluster)).map((p) => p.toString())
  }

  async stop (): Promise<void> {
    await Promise.resolve(this.#node.stop()).catch(() => {})
  }
}

// A stream fed from a queue of writes, so a test can write, wait, and write again.
function rawStream (stream: Stream): RawStream {
  const queue: Uint8Array[] = []
  let wake: (() => void) | null = null
  let done = false
  let drained: Array<() => void> = []
  const source = async function * (): AsyncGenerator<Uint8Array> {
    while (true) {
      while (queue.length > 0) yield queue.shift() as Uint8Array
      for (const resolve of drained) resolve()
      drained = []
      if (done) return
      await new Promise<void>((resolve) => { wake = resolve })
      wake = null
    }
  }
  const kick = (): void => { if (wake !== null) wake() }
  void stream.sink(source()).catch(() => {})
  const ended = (async () => {
    let received = 0
    try {
      for await (const chunk of stream.source) received += chunk.byteLength
      return { how: stream.status === 'reset' ? 'reset' as const : 'closed' as const, received }
    } catch {
      return { how: 'reset' as const, received }
    } finally {
      done = true
      for (const resolve of drained) resolve()
      kick()
    }
  })()
  return {
    write: async (bytes) => {
      if (done) return
      await new Promise<void>((resolve) => { drained.push(resolve); queue.push(bytes); kick() })
    },
    close: () => { done = true; kick() },
    abort: () => { done = true; stream.abort(new Error('hostile peer aborts')); kick() },
    ended
  }
}
