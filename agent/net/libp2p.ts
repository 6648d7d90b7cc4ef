// The Net the agent host drives, on libp2p 2.x: TCP + noise + yamux (+ the
// private network's keys, keyring.ts),
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
import type { Connection, ConnectionGater, Message, PeerId, PrivateKey, PubSub } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { DirectChannelName, GossipVerdict, Net, NetHandlers, NetOptions, NetRefusal, NetStats } from './types.ts'
import { MAX_ADDRS, MAX_GOSSIP_FRAME_BYTES } from '../../protocol/limits.ts'
import {
  CLUSTER_NAME_PATTERN, CONNECTION_MONITOR_ENABLED, GOSSIP_DECODE_LIMITS, GOSSIP_MAX_RPC_BYTES,
  GOSSIP_MESH, GOSSIP_MESSAGES_PER_PEER, GOSSIP_SCORE_PARAMS, GOSSIP_OUTBOUND_BUFFER_BYTES, INBOUND_CONNECTIONS_PER_HOST_PER_S, MAX_CONNECTIONS,
  MAX_DIAL_TIMEOUT_MS, MAX_INCOMING_PENDING_CONNECTIONS, MEMBERSHIP_FRAMES_PER_PEER, RATE_TRACKED_PEERS, REDIAL_BACKOFF_MAX_MS, REDIAL_BACKOFF_MIN_MS,
  REQUEST_SERVE_TIMEOUT_MS, SESSION_FRAMES_PER_PEER, directProtocol, gossipTopic, packagesProtocol, replicationProtocol
} from './constants.ts'
import { BucketMap } from '../core/token-bucket.ts'
import { Blocklist } from '../core/blocklist.ts'
import { DirectChannel, parsePeerId } from './direct.ts'
import { RequestChannel } from './requests.ts'
import type { FaultChannel, FaultGate } from './fault-gate.ts'
import { errorMessage, guard } from './guard.ts'
import { privateKeyOf } from './identity.ts'
import { ClusterKeyring } from './keyring.ts'
import type { ClusterKeys } from './keyring.ts'
import { connectionStack } from './transport.ts'

export { loadOrCreateIdentity, generateIdentity } from './identity.ts'
export { peekOverLibp2p } from './client.ts'

// Peers the gater refuses at once (Net.block), at most.
const MAX_BLOCKED_PEERS = 10_000

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
  const blocklist = new Blocklist(MAX_BLOCKED_PEERS)
  const allowlist: Allowlist = { ids: options.allowPeers == null ? null : new Set(options.allowPeers) }
  const refused = (what: NetRefusal, peer: string, detail: string): void => {
    guard('onRefused', () => { options.handlers.onRefused?.(what, peer, detail) })
  }
  const keyring = options.keys === undefined
    ? null
    : new ClusterKeyring(options.keys, {
      refused: (addr, detail) => { refused('cluster-key', addr, detail) },
      switched: (address, from, to) => { guard('onKeySwitched', () => { options.onKeySwitched?.(address, from, to) }) }
    })
  let node: Libp2p<Services>
  try {
    node = await createNode(options, privateKey, blocklist, allowlist, keyring, refused)
  } catch (err) {
    throw new Error(`Cannot start the libp2p node: ${errorMessage(err)}`, { cause: err })
  }
  const net = new Libp2pNet(node, options, blocklist, allowlist, keyring)
  try {
    await net.start()
  } catch (err) {
    await Promise.resolve(node.stop()).catch(() => {})
    throw new Error(`Cannot start the libp2p node on ${options.listen.join(', ')}: ${listenFailure(errorMessage(err))}`, { cause: err })
  }
  return net
}

// libp2p's listen failure is a paragraph advising a transport setting the user
// cannot reach, then each address with its error's stack. The reasons alone, one
// line: "/ip4/127.0.0.1/tcp/7701: listen EADDRINUSE: address already in use …".
export function listenFailure (message: string): string {
  const reasons = [...message.matchAll(/^\s*(\/\S+): (?:\w*Error: )?(.+)$/gm)].map((m) => `${m[1]}: ${m[2].trim()}`)
  if (reasons.length > 0) return reasons.join('; ')
  return message.split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('at ')).join(' ')
}

async function createNode (options: NetOptions, privateKey: PrivateKey, blocklist: Blocklist, allowlist: Allowlist, keyring: ClusterKeyring | null, refused: (what: NetRefusal, peer: string, detail: string) => void): Promise<Libp2p<Services>> {
  return await createLibp2p<Services>({
    privateKey,
    addresses: { listen: options.listen },
    ...connectionStack(keyring ?? undefined),
    connectionGater: gater(allowlist, blocklist, refused),
    connectionManager: {
      maxConnections: MAX_CONNECTIONS,
      inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_HOST_PER_S,
      maxIncomingPendingConnections: MAX_INCOMING_PENDING_CONNECTIONS,
      dialTimeout: Math.max(MAX_DIAL_TIMEOUT_MS, options.dialTimeoutMs),
      // Only peers tagged keep-alive are redialled by libp2p; we tag none, and
      // whom to reach is the agent's decision.
      reconnectRetries: 0
    },
    // Off: see CONNECTION_MONITOR_ENABLED (SWIM is the failure detector).
    connectionMonitor: { enabled: CONNECTION_MONITOR_ENABLED },
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
        scoreParams: GOSSIP_SCORE_PARAMS,
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

// The blocklist and the allowlist, checked once the peer has proven its id (after
// noise), both for connections it opens and for ones we open; we do not even
// dial a blocked peer, or one outside the allowlist.
// The allowlist (null: any peer may connect), replaced whole on a reload.
type Allowlist = { ids: ReadonlySet<string> | null }

function gater (allowlist: Allowlist, blocklist: Blocklist, refused: (what: NetRefusal, peer: string, detail: string) => void): ConnectionGater {
  const deny = (direction: string) => (peerId: PeerId): boolean => {
    const peer = peerId.toString()
    if (blocklist.has(peer, performance.now())) {
      refused('blocked', peer, `${direction} connection from a peer blocked for malformed frames`)
      return true
    }
    if (allowlist.ids === null || allowlist.ids.has(peer)) return false
    refused('allowlist', peer, `${direction} connection from a peer outside the allowlist`)
    return true
  }
  return {
    denyDialPeer: (peerId) => blocklist.has(peerId.toString(), performance.now()) || (allowlist.ids !== null && !allowlist.ids.has(peerId.toString())),
    denyInboundEncryptedConnection: deny('inbound'),
    denyOutboundEncryptedConnection: deny('outbound')
  }
}

// Throws, naming it, on an entry that is not a peer id.
export function checkAllowlist (ids: readonly string[] | null, prefix = ''): void {
  for (const peer of ids ?? []) {
    if (parsePeerId(peer) === null) throw new Error(`${prefix}'allowPeers' holds ${JSON.stringify(peer)}, which is not a libp2p peer id`)
  }
}

function checkOptions (options: NetOptions): void {
  checkAllowlist(options.allowPeers ?? null, 'Cannot start: ')
  if (!CLUSTER_NAME_PATTERN.test(options.cluster)) {
    throw new Error(`Cannot start: 'cluster' must be 1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-', starting with a letter or digit (got ${JSON.stringify(options.cluster)})`)
  }
  if (!(Number.isFinite(options.dialTimeoutMs) && options.dialTimeoutMs > 0)) {
    throw new Error(`Cannot start: 'dialTimeoutMs' must be a positive number of milliseconds (got ${options.dialTimeoutMs})`)
  }
  const backoff = options.redialBackoffMs
  if (backoff !== undefined && !(Number.isFinite(backoff.min) && backoff.min > 0 && Number.isFinite(backoff.max) && backoff.max >= backoff.min)) {
    throw new Error(`Cannot start: 'redialBackoffMs' must be { min, max } in milliseconds with 0 < min <= max (got ${JSON.stringify(backoff)})`)
  }
}

class Libp2pNet implements Net {
  readonly id: string
  private readonly node: Libp2p<Services>
  private readonly handlers: NetHandlers
  private readonly topic: string
  private readonly direct: DirectChannel
  private readonly replication: DirectChannel
  private readonly requests: RequestChannel
  // Only in an agent started with --fault-injection; null otherwise, and then no
  // message goes near the fault rules.
  private readonly gate: FaultGate | null
  private readonly gossip = { framesOut: 0, bytesOut: 0, framesIn: 0, bytesIn: 0 }
  private readonly gossipRate = new BucketMap(GOSSIP_MESSAGES_PER_PEER, RATE_TRACKED_PEERS)
  private readonly gossipDropping = new Set<string>()
  private readonly blocklist: Blocklist
  private readonly allowlist: Allowlist
  private readonly keyring: ClusterKeyring | null
  private stopping: Promise<void> | null = null
  // The addresses each peer's record listed when last learnt (learnAddrs), to
  // tell the ones it dropped; forgotten with the peer.
  private readonly learntAddrs = new Map<string, Set<string>>()
  // A peer that connected (either way) may be dialled again at once (only the
  // sessions channel holds redials back).
  private readonly onPeerConnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString()
    this.replication.reachableAgain(peer)
  }

  private readonly onPeerDisconnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString()
    guard('onDisconnected', () => { this.handlers.onDisconnected(peer) })
  }

  constructor (node: Libp2p<Services>, options: NetOptions, blocklist: Blocklist, allowlist: Allowlist, keyring: ClusterKeyring | null) {
    this.node = node
    this.blocklist = blocklist
    this.allowlist = allowlist
    this.keyring = keyring
    this.id = node.peerId.toString()
    this.gate = options.faults ?? null
    const gate = this.gate
    const handlersOf = (channel: FaultChannel): NetHandlers => gate === null ? options.handlers : gatedHandlers(options.handlers, gate, channel)
    this.handlers = handlersOf('direct')
    this.topic = gossipTopic(options.cluster)
    const channel = { node, cluster: options.cluster, dialTimeoutMs: options.dialTimeoutMs }
    this.direct = new DirectChannel({ ...channel, handlers: handlersOf('direct'), protocol: directProtocol(options.cluster), channel: 'membership', servesPeek: true, frameRate: MEMBERSHIP_FRAMES_PER_PEER, redialBackoffMs: null })
    this.replication = new DirectChannel({ ...channel, handlers: handlersOf('sessions'), protocol: replicationProtocol(options.cluster), channel: 'sessions', servesPeek: false, frameRate: SESSION_FRAMES_PER_PEER, redialBackoffMs: options.redialBackoffMs ?? { min: REDIAL_BACKOFF_MIN_MS, max: REDIAL_BACKOFF_MAX_MS } })
    this.requests = new RequestChannel(node, packagesProtocol(options.cluster), REQUEST_SERVE_TIMEOUT_MS)
  }

  async start (): Promise<void> {
    // Handlers first, so nothing that arrives once listening finds them missing.
    await this.direct.register()
    await this.replication.register()
    await this.requests.register(this.handlers.onRequest?.bind(this.handlers))
    this.node.services.pubsub.topicValidators.set(this.topic, (source, message) => this.validate(source, message))
    this.node.addEventListener('peer:disconnect', this.onPeerDisconnect)
    this.node.addEventListener('peer:connect', this.onPeerConnect)
    await this.node.start()
    this.node.services.pubsub.subscribe(this.topic)
  }

  addrs (): string[] {
    return this.node.getMultiaddrs().map((ma) => ma.toString())
  }

  send (peer: string, frame: Uint8Array, channel: DirectChannelName = 'membership'): void {
    if (this.stopping !== null) return
    if (this.gate !== null) return this.gate.pass(peer, 'out', channel === 'sessions' ? 'sessions' : 'direct', () => this.sendNow(peer, frame, channel))
    this.sendNow(peer, frame, channel)
  }

  private sendNow (peer: string, frame: Uint8Array, channel: DirectChannelName): void {
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
    if (this.gate !== null) return this.gate.pass(null, 'out', 'gossip', () => this.publishNow(frame))
    this.publishNow(frame)
  }

  private publishNow (frame: Uint8Array): void {
    if (this.stopping !== null) return
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
    const listed = new Set(multiaddrs.map((ma) => ma.toString()))
    const before = this.learntAddrs.get(peer)
    this.learntAddrs.set(peer, listed)
    const dropped = before === undefined ? [] : [...before].filter((addr) => !listed.has(addr))
    if (dropped.length === 0) this.node.peerStore.merge(peerId, { multiaddrs }).catch(() => {})
    else this.dropPeerAddrs(peer, peerId, dropped, multiaddrs)
    // Its record came again (a restart announces a new one): worth a dial.
    this.replication.reachableAgain(peer)
  }

  // A peer's record no longer lists some addresses (its box lost them: a DHCP
  // lease changed, a link failed over). They leave the peer store, or a dial
  // would try them first and spend its timeout there; and a connection to one
  // of their IPs is hung up: its packets go to an address nobody has, so it
  // would stall until the socket's 2-minute inactivity timeout, and every send
  // to the peer would take it (libp2p reuses a peer's first open connection).
  // Only IPs the peer itself dropped count: a connection from an address its
  // record never listed (a NAT's) is left alone.
  private dropPeerAddrs (peer: string, peerId: PeerId, dropped: string[], multiaddrs: Multiaddr[]): void {
    const goneIps = new Set(dropped.map(ipOf))
    for (const ma of multiaddrs) goneIps.delete(ipOf(ma.toString()))
    goneIps.delete(null)
    const droppedSet = new Set(dropped)
    void (async () => {
      const held = await this.node.peerStore.get(peerId).then((p) => p.addresses.map((a) => a.multiaddr), () => [])
      const kept = held.filter((ma) => !droppedSet.has(ma.toString()))
      for (const ma of multiaddrs) if (!kept.some((k) => k.equals(ma))) kept.push(ma)
      await this.node.peerStore.patch(peerId, { multiaddrs: kept })
    })().catch(() => {})
    if (goneIps.size === 0) return
    const stale = this.node.getConnections(peerId).filter((c) => goneIps.has(ipOf(c.remoteAddr.toString())))
    this.abortConnections(stale, (c) => `${peer} no longer has the address ${c.remoteAddr.toString()}`)
  }

  // Hangs up these connections, dropping our streams to their peers first, so
  // that the next frame to each opens a stream on a connection that works.
  private abortConnections (connections: Connection[], why: (connection: Connection) => string): void {
    for (const connection of connections) {
      const peer = connection.remotePeer.toString()
      this.direct.forget(peer)
      this.replication.forget(peer)
      connection.abort(new Error(why(connection)))
    }
  }

  setAllowlist (ids: readonly string[] | null): void {
    checkAllowlist(ids, '')
    if (ids === null) {
      this.allowlist.ids = null
      return
    }
    this.allowlist.ids = new Set(ids)
    if (this.stopping !== null) return
    // Peers no longer allowed are hung up on; the gater refuses their return.
    const allowed = this.allowlist.ids
    const outside = this.node.getConnections().filter((c) => !allowed.has(c.remotePeer.toString()))
    this.abortConnections(outside, (c) => `${c.remotePeer.toString()} is no longer in the allowlist`)
  }

  clusterKeys (): { primary: string; previous: string[] } | null {
    return this.keyring?.ids() ?? null
  }

  setClusterKeys (keys: ClusterKeys): number {
    if (this.keyring === null) throw new Error('the cluster is open (no cluster key); a restart makes it private')
    this.keyring.setKeys(keys)
    return this.keyring.openUnderDropped()
  }

  connectionKey (peer: string): string | null {
    if (this.keyring === null) return null
    const peerId = parsePeerId(peer)
    if (peerId === null) return null
    for (const c of this.node.getConnections(peerId)) {
      const id = this.keyring.keyOf(c.remoteAddr.toString())
      if (id !== null) return id
    }
    return null
  }

  connectionKeys (): Map<string, number> {
    return this.keyring?.liveCounts() ?? new Map()
  }

  dropConnections (): void {
    if (this.stopping !== null) return
    this.abortConnections(this.node.getConnections(), () => 'this box lost the address the connection was made through')
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

  async request (peer: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.stopping !== null) throw new Error('the agent is stopping')
    return await this.requests.request(peer, frame, timeoutMs)
  }

  forget (peer: string): void {
    this.learntAddrs.delete(peer)
    this.direct.forget(peer)
    this.replication.forget(peer)
    const peerId = parsePeerId(peer)
    if (peerId === null || this.stopping !== null || peer === this.id) return
    // Its addresses go too, so a reaped member's entry does not stay forever.
    this.node.hangUp(peerId)
      .then(async () => { await this.node.peerStore.delete(peerId) })
      .catch(() => {})
  }

  block (peer: string, forMs: number): void {
    const peerId = parsePeerId(peer)
    if (peerId === null || this.stopping !== null || peer === this.id || !(forMs > 0)) return
    const now = performance.now()
    this.blocklist.add(peer, now + forMs, now)
    this.direct.forget(peer)
    this.replication.forget(peer)
    this.node.hangUp(peerId).catch(() => {})
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
      sendQueueDrops: d.queueDrops + r.queueDrops,
      redialHeld: d.redialHeld + r.redialHeld,
      directStreamsOut: this.direct.openStreams(),
      sessionStreamsOut: this.replication.openStreams()
    }
  }

  async stop (): Promise<void> {
    if (this.stopping === null) {
      this.gate?.stop()
      this.direct.stop()
      this.replication.stop()
      this.node.removeEventListener('peer:disconnect', this.onPeerDisconnect)
      this.node.removeEventListener('peer:connect', this.onPeerConnect)
      this.stopping = Promise.resolve(this.node.stop()).catch(() => {})
    }
    await this.stopping
  }

  // gossipsub's topic validator: runs after the signature check, for messages not
  // seen before. `message.from` is the signed origin, `source` the forwarding peer
  // (whose rate is limited). Under the fault gate the verdict may come later
  // (gossipsub awaits it).
  private validate (source: PeerId, message: Message): TopicValidatorResult | Promise<TopicValidatorResult> {
    const relay = source.toString()
    if (message.type !== 'signed') return TopicValidatorResult.Reject
    if (message.data.length > MAX_GOSSIP_FRAME_BYTES) return TopicValidatorResult.Reject
    if (!this.gossipRate.take(relay, 1, performance.now()).ok) {
      // Reported once per burst of drops from that neighbour.
      if (!this.gossipDropping.has(relay)) {
        this.gossipDropping.add(relay)
        guard('onRefused', () => { this.handlers.onRefused?.('message-rate', relay, `over ${GOSSIP_MESSAGES_PER_PEER.ratePerS} gossip messages/s`) })
      }
      return TopicValidatorResult.Ignore
    }
    this.gossipDropping.delete(relay)
    this.gossip.framesIn++
    this.gossip.bytesIn += message.data.length
    const deliver = (): TopicValidatorResult => {
      let verdict: GossipVerdict = 'ignore'
      guard('onGossip', () => { verdict = this.handlers.onGossip(message.from.toString(), message.data) })
      return VERDICTS[verdict] ?? TopicValidatorResult.Ignore
    }
    if (this.gate === null) return deliver()
    // A dropped message is ignored, not rejected: the forwarder is not to blame.
    return this.gate.passGossip(source.toString(), message.from.toString(), deliver, TopicValidatorResult.Ignore)
  }
}

// The handlers as the fault gate lets them see the network: inbound frames pass
// its rules, and hints about a blocked peer are not heard at all.
function gatedHandlers (handlers: NetHandlers, gate: FaultGate, channel: FaultChannel): NetHandlers {
  const onRequest = handlers.onRequest?.bind(handlers)
  return {
    onDirect: (from, frame, name) => gate.pass(from, 'in', channel, () => guard('onDirect', () => { handlers.onDirect(from, frame, name) })),
    onGossip: (from, frame) => handlers.onGossip(from, frame),
    onDisconnected: (peer) => { if (!gate.blocks(peer)) handlers.onDisconnected(peer) },
    onUnreachable: (peer) => { if (!gate.blocks(peer)) handlers.onUnreachable(peer) },
    onPeek: () => handlers.onPeek(),
    ...(handlers.onRefused === undefined ? {} : { onRefused: handlers.onRefused.bind(handlers) }),
    ...(handlers.onStreamRefused === undefined ? {} : { onStreamRefused: handlers.onStreamRefused.bind(handlers) }),
    // A package request from a blocked peer is never answered (its asker times
    // out), as if dropped.
    ...(onRequest === undefined ? {} : { onRequest: (from: string, frame: Uint8Array) => gate.blocks(from) ? new Promise<Uint8Array>(() => {}) : onRequest(from, frame) })
  }
}

// The IP of an /ip4/… or /ip6/… multiaddr, or null.
function ipOf (addr: string): string | null {
  return /^\/ip[46]\/([^/]+)/.exec(addr)?.[1] ?? null
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
