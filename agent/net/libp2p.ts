// The Net the agent host drives, on libp2p 2.x: TCP + noise + yamux (+ pnet),
// identify and ping for libp2p's own needs, gossipsub for the membership topic,
// and the direct and peek protocols (direct.ts).
//
// The node does nothing network-wide by itself: no mDNS, DHT, relay, autonat,
// UPnP or bootstrap module. It dials only when the agent sends, dials or learns
// an address, and accepts whoever dials it (within the private network, if any).

import { createLibp2p, type Libp2p } from 'libp2p'
import { gossipsub, type GossipsubEvents } from '@chainsafe/libp2p-gossipsub'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { StrictSign, TopicValidatorResult } from '@libp2p/interface'
import type { Message, PeerId, PrivateKey, PubSub } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { DirectChannelName, GossipVerdict, Net, NetHandlers, NetOptions, NetStats } from './types.ts'
import { MAX_ADDRS, MAX_GOSSIP_FRAME_BYTES } from '../../protocol/limits.ts'
import {
  CLUSTER_NAME_PATTERN, CONNECTION_PING_INTERVAL_MS, CONNECTION_PING_TIMEOUT_MAX_MS,
  CONNECTION_PING_TIMEOUT_MIN_MS, GOSSIP_DECODE_LIMITS, GOSSIP_MAX_RPC_BYTES,
  GOSSIP_MESH, GOSSIP_OUTBOUND_BUFFER_BYTES, INBOUND_CONNECTIONS_PER_HOST_PER_S, MAX_CONNECTIONS,
  MAX_DIAL_TIMEOUT_MS, MAX_INCOMING_PENDING_CONNECTIONS, directProtocol, gossipTopic, replicationProtocol
} from './constants.ts'
import { DirectChannel, parsePeerId } from './direct.ts'
import { errorMessage, guard } from './guard.ts'
import { privateKeyOf } from './identity.ts'
import { connectionStack } from './transport.ts'

export { loadOrCreateIdentity, generateIdentity } from './identity.ts'
export { peekOverLibp2p } from './client.ts'

// libp2p's peer id multiaddr component, /p2p/<id>.
const P2P_CODE = 421

type Services = { identify: unknown, ping: unknown, pubsub: PubSub<GossipsubEvents> }

const VERDICTS: Record<GossipVerdict, TopicValidatorResult> = {
  accept: TopicValidatorResult.Accept,
  reject: TopicValidatorResult.Reject,
  ignore: TopicValidatorResult.Ignore
}

export async function createNet (options: NetOptions): Promise<Net> {
  checkOptions(options)
  const privateKey = privateKeyOf(options.identity)
  let node: Libp2p<Services>
  try {
    node = await createNode(options, privateKey)
  } catch (err) {
    throw new Error(`Cannot start the libp2p node: ${errorMessage(err)}`, { cause: err })
  }
  const net = new Libp2pNet(node, options)
  try {
    await net.start()
  } catch (err) {
    await Promise.resolve(node.stop()).catch(() => {})
    throw new Error(`Cannot start the libp2p node on ${options.listen.join(', ')}: ${errorMessage(err)}`, { cause: err })
  }
  return net
}

async function createNode (options: NetOptions, privateKey: PrivateKey): Promise<Libp2p<Services>> {
  return await createLibp2p<Services>({
    privateKey,
    addresses: { listen: options.listen },
    ...connectionStack(options.psk),
    connectionManager: {
      maxConnections: MAX_CONNECTIONS,
      inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_HOST_PER_S,
      maxIncomingPendingConnections: MAX_INCOMING_PENDING_CONNECTIONS,
      dialTimeout: Math.max(MAX_DIAL_TIMEOUT_MS, options.dialTimeoutMs),
      // Only peers tagged keep-alive are redialled by libp2p; we tag none, and
      // whom to reach is the agent's decision.
      reconnectRetries: 0
    },
    connectionMonitor: {
      enabled: true,
      pingInterval: CONNECTION_PING_INTERVAL_MS,
      pingTimeout: { minTimeout: CONNECTION_PING_TIMEOUT_MIN_MS, maxTimeout: CONNECTION_PING_TIMEOUT_MAX_MS },
      abortConnectionOnPingFailure: true
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        globalSignaturePolicy: StrictSign,
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        // A lean mesh: gossipsub's defaults (D = 6, flood publishing) are sized for
        // open networks where gossip is the only path. Here membership news also
        // rides on probes and anti-entropy, and at D = 6 each record publish cost
        // a 10-agent cluster ~33 KB on the wire (bench/, "at rest"). D = 3 halves
        // that; forwarding adds a hop of a few ms at most.
        ...GOSSIP_MESH,
        floodPublish: false,
        // Every peer runs this agent: no floodsub fallback, no peer exchange, and
        // no topic but ours.
        fallbackToFloodsub: false,
        doPX: false,
        allowedTopics: [gossipTopic(options.cluster)],
        maxInboundDataLength: GOSSIP_MAX_RPC_BYTES,
        maxOutboundBufferSize: GOSSIP_OUTBOUND_BUFFER_BYTES,
        decodeRpcLimits: GOSSIP_DECODE_LIMITS
      })
    },
    // Started by Libp2pNet.start(), once our handlers are registered.
    start: false
  })
}

function checkOptions (options: NetOptions): void {
  if (!CLUSTER_NAME_PATTERN.test(options.cluster)) {
    throw new Error(`Cannot start: 'cluster' must be 1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-', starting with a letter or digit (got ${JSON.stringify(options.cluster)})`)
  }
  if (!(Number.isFinite(options.dialTimeoutMs) && options.dialTimeoutMs > 0)) {
    throw new Error(`Cannot start: 'dialTimeoutMs' must be a positive number of milliseconds (got ${options.dialTimeoutMs})`)
  }
}

class Libp2pNet implements Net {
  readonly id: string
  private readonly node: Libp2p<Services>
  private readonly handlers: NetHandlers
  private readonly topic: string
  private readonly direct: DirectChannel
  private readonly replication: DirectChannel
  private readonly gossip = { framesOut: 0, bytesOut: 0, framesIn: 0, bytesIn: 0 }
  private stopping: Promise<void> | null = null
  private readonly onPeerDisconnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString()
    guard('onDisconnected', () => { this.handlers.onDisconnected(peer) })
  }

  constructor (node: Libp2p<Services>, options: NetOptions) {
    this.node = node
    this.id = node.peerId.toString()
    this.handlers = options.handlers
    this.topic = gossipTopic(options.cluster)
    const channel = { node, cluster: options.cluster, handlers: options.handlers, dialTimeoutMs: options.dialTimeoutMs }
    this.direct = new DirectChannel({ ...channel, protocol: directProtocol(options.cluster), channel: 'membership', servesPeek: true })
    this.replication = new DirectChannel({ ...channel, protocol: replicationProtocol(options.cluster), channel: 'sessions', servesPeek: false })
  }

  async start (): Promise<void> {
    // Handlers first, so nothing that arrives once listening finds them missing.
    await this.direct.register()
    await this.replication.register()
    this.node.services.pubsub.topicValidators.set(this.topic, (_from, message) => this.validate(message))
    this.node.addEventListener('peer:disconnect', this.onPeerDisconnect)
    await this.node.start()
    this.node.services.pubsub.subscribe(this.topic)
  }

  addrs (): string[] {
    return this.node.getMultiaddrs().map((ma) => ma.toString())
  }

  send (peer: string, frame: Uint8Array, channel: DirectChannelName = 'membership'): void {
    if (this.stopping !== null) return
    if (channel === 'sessions') this.replication.send(peer, frame)
    else this.direct.send(peer, frame)
  }

  connect (peer: string, channel: DirectChannelName): void {
    if (this.stopping !== null) return
    if (channel === 'sessions') this.replication.open(peer)
    else this.direct.open(peer)
  }

  publish (frame: Uint8Array): void {
    if (this.stopping !== null) return
    // Decoders refuse it anyway; not worth the bandwidth.
    if (frame.length > MAX_GOSSIP_FRAME_BYTES) return
    try {
      this.node.services.pubsub.publish(this.topic, frame).then(
        () => { this.gossip.framesOut++; this.gossip.bytesOut += frame.length },
        () => {}
      )
    } catch {
      // publish() is async and rejects rather than throws; this is a seatbelt.
    }
  }

  learnAddrs (peer: string, addrs: string[]): void {
    if (this.stopping !== null || peer === this.id || !Array.isArray(addrs)) return
    const peerId = parsePeerId(peer)
    if (peerId === null) return
    const multiaddrs = parseAddrsOf(peer, addrs)
    if (multiaddrs.length === 0) return
    this.node.peerStore.merge(peerId, { multiaddrs }).catch(() => {})
  }

  async dial (addr: string, timeoutMs: number): Promise<string> {
    let ma: Multiaddr
    try {
      ma = multiaddr(addr)
    } catch (err) {
      throw new Error(`dial ${addr}: not a multiaddr (${errorMessage(err)})`)
    }
    const signal = AbortSignal.timeout(timeoutMs)
    try {
      const connection = await this.node.dial(ma, { signal })
      return connection.remotePeer.toString()
    } catch (err) {
      if (signal.aborted) throw new Error(`dial ${addr}: no connection within ${timeoutMs} ms`, { cause: err })
      throw new Error(`dial ${addr}: ${errorMessage(err)}`, { cause: err })
    }
  }

  forget (peer: string): void {
    this.direct.forget(peer)
    this.replication.forget(peer)
    const peerId = parsePeerId(peer)
    if (peerId === null || this.stopping !== null || peer === this.id) return
    // Its addresses go too, so a reaped member's entry does not stay forever.
    this.node.hangUp(peerId)
      .then(async () => { await this.node.peerStore.delete(peerId) })
      .catch(() => {})
  }

  stats (): NetStats {
    const d = this.direct.counters
    const r = this.replication.counters
    return {
      sessionFramesOut: r.framesOut,
      sessionBytesOut: r.bytesOut,
      sessionFramesIn: r.framesIn,
      sessionBytesIn: r.bytesIn,
      directFramesOut: d.framesOut,
      directBytesOut: d.bytesOut,
      directFramesIn: d.framesIn,
      directBytesIn: d.bytesIn,
      gossipFramesOut: this.gossip.framesOut,
      gossipBytesOut: this.gossip.bytesOut,
      gossipFramesIn: this.gossip.framesIn,
      gossipBytesIn: this.gossip.bytesIn,
      sendQueueDrops: d.queueDrops + r.queueDrops
    }
  }

  async stop (): Promise<void> {
    if (this.stopping === null) {
      this.direct.stop()
      this.replication.stop()
      this.node.removeEventListener('peer:disconnect', this.onPeerDisconnect)
      this.stopping = Promise.resolve(this.node.stop()).catch(() => {})
    }
    await this.stopping
  }

  // gossipsub's topic validator: runs after the signature check, for messages not
  // seen before. `message.from` is the signed origin, not the forwarding peer.
  private validate (message: Message): TopicValidatorResult {
    if (message.type !== 'signed') return TopicValidatorResult.Reject
    if (message.data.length > MAX_GOSSIP_FRAME_BYTES) return TopicValidatorResult.Reject
    this.gossip.framesIn++
    this.gossip.bytesIn += message.data.length
    let verdict: GossipVerdict = 'ignore'
    guard('onGossip', () => { verdict = this.handlers.onGossip(message.from.toString(), message.data) })
    return VERDICTS[verdict] ?? TopicValidatorResult.Ignore
  }
}

// Parsable addresses of `peer`, without its /p2p/ suffix (the peer store keys
// them by peer id); addresses naming another peer are dropped.
function parseAddrsOf (peer: string, addrs: string[]): Multiaddr[] {
  const parsed: Multiaddr[] = []
  for (const addr of addrs.slice(0, MAX_ADDRS)) {
    try {
      let ma = multiaddr(addr)
      const named = ma.getPeerId()
      if (named !== null) {
        if (named !== peer) continue
        ma = ma.decapsulateCode(P2P_CODE)
      }
      parsed.push(ma)
    } catch {
      // Unparsable: ignored, the record's other addresses may do.
    }
  }
  return parsed
}
