// A whole cluster in one process and virtual time: every node runs the real
// membership core and, when sessions are on, the real sessions core; the
// network, the disks, crashes and pauses are simulated. Everything random comes
// from the seed, so a run replays exactly.

import type { AgentEvent, PeerKey, SelfPatch } from '../agent/core/io.ts'
import { SeededRandom, deriveSeed } from '../agent/core/random.ts'
import type { MembershipConfig } from '../agent/membership/config.ts'
import { membershipProfile } from '../agent/membership/config.ts'
import { Membership } from '../agent/membership/membership.ts'
import { MemberNumbers } from '../agent/membership/numbers.ts'
import type { SessionsConfig } from '../agent/sessions/config.ts'
import { BUILT_IN_SERVICES } from '../agent/sessions/services.ts'
import type { Service } from '../agent/sessions/services.ts'
import { Sessions } from '../agent/sessions/sessions.ts'
import { DiskWatch } from '../agent/sessions/disk-watch.ts'
import type { ClientReply, SessionCommand, SessionEvent } from '../agent/sessions/types.ts'
import { decode, encode, frameBytes } from '../protocol/codec.ts'
import type { Entry, MemberStatus, Message, NodeRecord, PeekMember, ServiceOffer } from '../protocol/messages.ts'
import { SimAuth } from './auth.ts'
import { GossipMesh } from './mesh.ts'
import type { MeshLinks } from './mesh.ts'
import { DEFAULT_LINK, SimNetwork } from './network.ts'
import type { LinkModel } from './network.ts'
import { SimNode } from './node.ts'
import type { NodeHost } from './node.ts'
import { Scheduler } from './scheduler.ts'

export type { NodeState, Traffic } from './node.ts'
export { SimNode }

export type SimOptions = {
  seed: number
  nodes: number
  config?: MembershipConfig
  // Runs a sessions core on every node with these settings.
  sessions?: SessionsConfig
  // The services each node offers (default: log, kv and counter, capacity 100).
  services?: (index: number) => ServiceOffer[]
  // The code of those services on each node (default: the built-in ones). A
  // test gives one node a service that fails as a deployed one can.
  serviceCode?: (index: number) => ReadonlyMap<string, Service>
  // Where each node is (default: a grid around 40-50°N, regions r0-r2).
  placement?: (index: number) => NodePlacement
  link?: Partial<LinkModel>
  // How many of the first nodes serve as bootstrap peers for the others.
  seeds?: number
  // Joins are spread uniformly over this window, ms.
  joinSpreadMs?: number
  // Keep every event in `trace` (tests that inspect history).
  trace?: boolean
  // Decode every frame at the receiver, as the real host does. Off by default:
  // messages are immutable, so receivers can share the sender's objects, which
  // keeps one copy of each record in memory instead of one per node (frames are
  // counted with frameBytes(), not encoded). The codec has its own tests; a scenario test
  // runs with this on to exercise it end to end.
  decodeFrames?: boolean
  // How long a node's commit of session records takes, virtual ms (default 1).
  // An owner's entries to its standbys leave before it, everything else of the
  // step after it (agent/sessions/commit-order.ts), so a crash can fall between
  // an owner's send and its commit, as on a real agent. 0: commit, then send.
  fsyncMs?: number
  // Check each sessions core's wake-up heap against a scan of every session at
  // every nextWakeMs, and throw where they differ (Sessions' verifyWake). On by
  // default, so every test and sweep checks it; `edge-agent sim` turns it off,
  // as the scan costs what the heap saves.
  verifyWake?: boolean
  // Each node keeps its own monotonic clock, as a real agent does
  // (performance.now()): at every start it reads a random 0 to 1,000 ms, whatever
  // the others read, and it runs, for that life, at a rate drawn uniformly from
  // [1 − maxDrift, 1 + maxDrift] local ms per virtual ms. Timers fire when the
  // node's own clock reaches them. Off (the default): every node reads virtual
  // time. The cores must be right either way: nothing compares one node's
  // times with another's, and a bound on time (a lease) must hold while clocks
  // run at different rates within the bound it assumes.
  clocks?: { maxDrift: number }
  // Disks that stall: every commit of session records takes fsyncMs, except a
  // `share` of them (0-1) that take up to `maxMs` more (uniform), as an SD
  // card or a busy disk does now and then. Meanwhile the node's sessions core
  // waits, as the real host's does for its fsync (its inputs held, its tick
  // too), while its membership carries on. Off by default; when on, a
  // standby's commit (and so its ack) takes its time as well.
  slowFsyncs?: { share: number; maxMs: number }
}

export type NodePlacement = { position: { lat: number; lon: number } | null; region: string; zone: string }

export type TraceEntry = { atMs: number; node: PeerKey; event: AgentEvent | SessionEvent }

// The answer to a terminal's request: an HTTP-like reply, or no answer at all.
export type RequestOutcome = ClientReply | { status: 0; body: { error: string } }

const DEFAULT_SERVICES: ServiceOffer[] = [
  { name: 'log', version: '1', capacity: 100 },
  { name: 'kv', version: '1', capacity: 100 },
  { name: 'counter', version: '1', capacity: 100 }
]

export class SimCluster {
  readonly seed: number
  readonly scheduler = new Scheduler()
  readonly network: SimNetwork
  readonly nodes: SimNode[] = []
  readonly trace: TraceEntry[] = []
  readonly config: MembershipConfig
  readonly sessionsConfig: SessionsConfig | null
  readonly #byId = new Map<PeerKey, SimNode>()
  readonly #listeners: Array<(entry: TraceEntry) => void> = []
  readonly #random: SeededRandom
  // Draws the nodes' clocks (SimOptions.clocks), apart from #random, so that
  // turning clocks on leaves the other draws as they were.
  readonly #clockRandom: SeededRandom
  // Draws the slow fsyncs (SimOptions.slowFsyncs), apart from the rest too.
  readonly #fsyncRandom: SeededRandom
  // Until when each stalled disk stalls (stallDisk), virtual ms.
  readonly #diskStalls = new Map<PeerKey, number>()
  // Disks slow for good (slowDisk): every commit takes this long, virtual ms.
  readonly #slowDisks = new Map<PeerKey, number>()
  readonly #mesh: GossipMesh
  readonly #meshLinks: MeshLinks
  readonly #options: Required<Omit<SimOptions, 'config' | 'link' | 'sessions' | 'services' | 'serviceCode' | 'placement' | 'clocks' | 'slowFsyncs'>> & { clocks: { maxDrift: number } | null }
  readonly #services: (index: number) => ServiceOffer[]
  readonly #serviceCode: (index: number) => ReadonlyMap<string, Service>
  readonly #placement: ((index: number) => NodePlacement) | null
  readonly #host: NodeHost
  // Terminals' requests an agent holds, unanswered: which agent, and the answer's way back.
  readonly #requests = new Map<string, { agent: PeerKey; onOutcome: (outcome: RequestOutcome) => void }>()
  // One numbering of member ids for every node's member table: the ids are the
  // simulated nodes, so no table needs an id-to-number map of its own.
  readonly #memberNumbers = new MemberNumbers(true)
  #nextRequest = 1
  rejectedFrames = 0
  // Gossip publishes, by what they carried: 'record', 'suspect', 'dead'.
  readonly publishes = new Map<string, number>()
  // Direct messages sent (refused connections excluded), by type.
  readonly sent = new Map<string, number>()

  constructor (options: SimOptions) {
    this.seed = options.seed
    this.config = options.config ?? membershipProfile('lan')
    this.sessionsConfig = options.sessions ?? null
    this.#services = options.services ?? (() => DEFAULT_SERVICES)
    this.#serviceCode = options.serviceCode ?? (() => BUILT_IN_SERVICES)
    this.#placement = options.placement ?? null
    this.#options = {
      seed: options.seed,
      nodes: options.nodes,
      seeds: options.seeds ?? 3,
      joinSpreadMs: options.joinSpreadMs ?? 1_000,
      trace: options.trace ?? false,
      decodeFrames: options.decodeFrames ?? false,
      fsyncMs: options.fsyncMs ?? 1,
      verifyWake: options.verifyWake ?? true,
      clocks: options.clocks ?? null
    }
    this.#random = new SeededRandom(deriveSeed(options.seed, 0x5eed))
    this.#clockRandom = new SeededRandom(deriveSeed(options.seed, 0xc10c))
    this.#fsyncRandom = new SeededRandom(deriveSeed(options.seed, 0xf5c))
    this.network = new SimNetwork(new SeededRandom(deriveSeed(options.seed, 0x0e7)), { ...DEFAULT_LINK, ...options.link })
    this.#mesh = new GossipMesh(new SeededRandom(deriveSeed(options.seed, 0x3e5)))
    const network = this.network
    this.#meshLinks = { transit: (from, to) => network.transit(from, to), canReach: (from, to) => network.canReach(from, to) }
    const scheduler = this.scheduler
    this.#host = {
      get nowMs () { return scheduler.nowMs },
      send: (from, to, message) => this.#send(from, to, message),
      publish: (from, message) => this.#publish(from, message),
      record: (node, event, atMs) => this.#record(node, event, atMs),
      reply: (node, requestId, reply) => this.#replyFrom(node, requestId, reply),
      at: (atMs, run) => this.scheduler.at(atMs, run),
      fsyncMs: options.fsyncMs ?? 1,
      commitsWait: (node) => options.slowFsyncs !== undefined || this.#slowDisks.has(node.id) || this.#stalledUntil(node) > this.nowMs,
      fsyncDelayMs: (node) => {
        const fsyncMs = this.#options.fsyncMs
        const slow = options.slowFsyncs
        const drawn = slow === undefined || this.#fsyncRandom.nextFloat() >= slow.share ? fsyncMs : fsyncMs + this.#fsyncRandom.nextFloat() * slow.maxMs
        return Math.max(drawn, this.#slowDisks.get(node.id) ?? 0, this.#stalledUntil(node) - this.nowMs)
      }
    }
    for (let i = 0; i < options.nodes; i++) this.#addNode()
  }

  get nowMs (): number {
    return this.scheduler.nowMs
  }

  node (id: PeerKey): SimNode {
    const node = this.#byId.get(id)
    if (node === undefined) throw new Error(`no simulated node ${id}`)
    return node
  }

  get ids (): PeerKey[] {
    return this.nodes.map((node) => node.id)
  }

  onEvent (listener: (entry: TraceEntry) => void): void {
    this.#listeners.push(listener)
  }

  // Starts every node; joins are spread over `joinSpreadMs`.
  start (): void {
    for (const node of this.nodes) {
      const at = node.index < this.#options.seeds ? 0 : this.#random.nextInt(this.#options.joinSpreadMs + 1)
      this.scheduler.at(at, () => this.#boot(node))
    }
  }

  // Starts every node already converged, as if the cluster had been bootstrapped
  // long before: at time 0 each node boots and is handed every node's signed
  // record in one push-pull exchange from a seed (the real merge path, signatures
  // checked), instead of a cold join's N² gossip deliveries and table exchanges,
  // which dominate the cost of a run at thousands of nodes. Warm nodes have no
  // bootstrap list (no node is alone); a node restarted later joins cold.
  startWarm (): void {
    for (const node of this.nodes) this.#boot(node, false)
    const entries: Entry[] = []
    for (const node of this.nodes) {
      const signed = node.membership?.signedRecord
      if (signed !== undefined) entries.push({ signed, status: 'alive', statusIncarnation: signed.record.incarnation })
    }
    const message: Message = { type: 'push-pull-entries', entries }
    for (const node of this.nodes) {
      const seed = this.nodes[node.index === 0 ? Math.min(1, this.nodes.length - 1) : 0]
      node.receive(seed.id, 'direct', message)
    }
  }

  // Adds and starts one more node (a late joiner).
  addNode (): SimNode {
    const node = this.#addNode()
    this.#boot(node)
    return node
  }

  run (durationMs: number): void {
    this.scheduler.runUntil(this.nowMs + durationMs)
  }

  // Runs until `done()` holds (checked each virtual `checkEveryMs`) or `limitMs`.
  runUntil (done: () => boolean, limitMs: number, checkEveryMs = 1): boolean {
    return this.scheduler.runUntilTrue(done, this.nowMs + limitMs, checkEveryMs)
  }

  // ---- faults -------------------------------------------------------------

  // The process dies: its connections close, so peers get a disconnect hint.
  crash (id: PeerKey): void {
    const node = this.node(id)
    if (node.state === 'crashed') return
    node.crash()
    // Its terminals' connections are reset (the kernel closes a killed
    // process's sockets): a request it held fails now, not at the terminal's
    // own timeout. A frozen agent's requests still wait for that timeout.
    for (const [requestId, held] of this.#requests) {
      if (held.agent !== id) continue
      this.#requests.delete(requestId)
      this.scheduler.after(this.network.delay(), () => held.onOutcome({ status: 0, body: { error: 'connection reset' } }))
    }
    for (const peer of node.peers) {
      const other = this.#byId.get(peer)
      if (other === undefined || !this.network.canReach(peer, id)) continue
      this.scheduler.after(this.network.delay(), () => other.hint('disconnected', id))
      other.dropPeer(node)
    }
    node.clearPeers()
  }

  restart (id: PeerKey): void {
    const node = this.node(id)
    if (node.state !== 'crashed') return
    this.#boot(node)
  }

  // The node's disk stalls for `forMs`: a commit of session records begun
  // meanwhile returns only when the stall ends (the node's sessions core waits
  // for it, its membership carries on).
  stallDisk (id: PeerKey, forMs: number): void {
    this.#diskStalls.set(id, this.nowMs + forMs)
  }

  // The node's disk turns slow (a worn SD card): every commit of session
  // records from now on takes `fsyncMs`; 0 makes it as fast as the others again.
  slowDisk (id: PeerKey, fsyncMs: number): void {
    if (fsyncMs > 0) this.#slowDisks.set(id, fsyncMs)
    else this.#slowDisks.delete(id)
  }

  // Nodes whose disk is slow for good now.
  get slowDisks (): PeerKey[] {
    return [...this.#slowDisks.keys()]
  }

  #stalledUntil (node: SimNode): number {
    return this.#diskStalls.get(node.id) ?? -Infinity
  }

  // SIGSTOP: the process is frozen but its sockets stay open, so messages are
  // accepted and queue up; nothing is processed or sent until it resumes.
  pause (id: PeerKey): void {
    const node = this.node(id)
    if (node.state === 'running') node.state = 'paused'
  }

  resume (id: PeerKey): void {
    const node = this.node(id)
    if (node.state === 'paused') node.resume()
  }

  // A graceful leave (SIGTERM): announce, then stop shortly after.
  leave (id: PeerKey, stopAfterMs = 200): void {
    const node = this.node(id)
    if (node.state !== 'running') return
    node.command({ type: 'leave' })
    this.scheduler.after(stopAfterMs, () => this.crash(id))
  }

  partition (sides: PeerKey[][]): void {
    this.network.partition(sides)
  }

  heal (): void {
    this.network.heal()
  }

  setLink (patch: Partial<LinkModel>): void {
    this.network.setLink(patch)
  }

  updateSelf (id: PeerKey, patch: SelfPatch): void {
    this.node(id).command({ type: 'update-self', patch })
  }

  // ---- terminals ----------------------------------------------------------

  // A terminal's request to an agent, over the simulated network. A crashed
  // agent refuses the connection (and resets those it held when it crashed); a
  // frozen one never answers (the terminal's own timeout decides); a partition
  // between terminals and agents is not modelled.
  request (agent: PeerKey, command: DistributiveOmit<Exclude<SessionCommand, { type: 'disconnected' | 'unreachable' | 'disk' }>, 'requestId'>, onOutcome: (outcome: RequestOutcome) => void): void {
    const node = this.node(agent)
    const requestId = `r${this.#nextRequest++}`
    const delay = this.network.delay()
    this.scheduler.after(delay, () => {
      if (node.state === 'crashed') return this.scheduler.after(delay, () => onOutcome({ status: 0, body: { error: 'connection refused' } }))
      this.#requests.set(requestId, { agent, onOutcome })
      node.sessionCommand({ ...command, requestId } as SessionCommand)
    })
  }

  #replyFrom (node: SimNode, requestId: string, reply: ClientReply): void {
    const held = this.#requests.get(requestId)
    if (held === undefined) return
    this.#requests.delete(requestId)
    void node
    // A copy, as the wire makes one: a GET's state is the replica's own object,
    // which later applies change in place.
    const sent = structuredClone(reply)
    this.scheduler.after(this.network.delay(), () => held.onOutcome(sent))
  }

  // ---- views --------------------------------------------------------------

  // What `observer` believes about `subject`, or null if it has no entry.
  statusSeenBy (observer: PeerKey, subject: PeerKey): MemberStatus | null {
    const core = this.node(observer).membership
    return core === null ? null : core.statusOf(subject)
  }

  view (observer: PeerKey): PeekMember[] {
    const node = this.node(observer)
    const core = node.membership
    return core === null ? [] : core.snapshot(node.nowMs)
  }

  running (): SimNode[] {
    return this.nodes.filter((node) => node.state === 'running')
  }

  // Every running node sees every running node alive and every other node as
  // dead, left or unknown.
  converged (nodes: SimNode[] = this.running()): boolean {
    const live = new Set(nodes.map((node) => node.id))
    // Counts first: O(N) instead of O(N²) while the cluster is still settling.
    for (const observer of nodes) {
      const core = observer.membership
      if (core === null || core.liveCount !== live.size || core.suspectCount > 0) return false
    }
    for (const observer of nodes) {
      const core = observer.membership
      if (core === null) return false
      for (const subject of this.nodes) {
        const status = core.statusOf(subject.id)
        if (live.has(subject.id) ? status !== 'alive' : status === 'alive' || status === 'suspect') return false
      }
    }
    return true
  }

  // The node that acts as http://<id> in redirects and group views.
  nodeForUrl (url: string): SimNode | null {
    const match = /^http:\/\/([^/]+)/.exec(url)
    return match === null ? null : (this.#byId.get(match[1]) ?? null)
  }

  // ---- internals ----------------------------------------------------------

  #addNode (): SimNode {
    const index = this.nodes.length
    const node = new SimNode(`n${index}`, index, this.#host)
    this.nodes.push(node)
    this.#byId.set(node.id, node)
    return node
  }

  #boot (node: SimNode, join = true): void {
    node.diskIncarnation += 1
    node.state = 'running'
    node.inbox = []
    node.tickAtMs = Infinity
    const clocks = this.#options.clocks
    if (clocks !== null) node.setClock(this.#clockRandom.nextFloat() * 1_000, 1 + (2 * this.#clockRandom.nextFloat() - 1) * clocks.maxDrift)
    const membership = new Membership({
      self: this.#recordFor(node, node.diskIncarnation),
      config: this.config,
      random: new SeededRandom(deriveSeed(this.seed, node.index * 7919 + node.diskIncarnation)),
      auth: new SimAuth(node.id),
      nowMs: node.nowMs,
      memberNumbers: this.#memberNumbers
    })
    node.membership = membership
    node.sessions = this.sessionsConfig === null
      ? null
      : new Sessions({
        directory: membership.directory(),
        config: this.sessionsConfig,
        random: new SeededRandom(deriveSeed(this.seed, node.index * 104729 + node.diskIncarnation)),
        services: this.#serviceCode(node.index),
        stored: node.disk.load(),
        closed: node.disk.loadClosed(),
        nowMs: node.nowMs,
        verifyWake: this.#options.verifyWake
      })
    node.diskWatch = this.sessionsConfig === null ? null : new DiskWatch(this.sessionsConfig.slowFsyncMs)
    if (join) node.command({ type: 'join', peers: this.#bootstrapFor(node) })
    else node.schedule()
  }

  #bootstrapFor (node: SimNode): PeerKey[] {
    const seeds = this.nodes.slice(0, this.#options.seeds).map((n) => n.id).filter((id) => id !== node.id)
    // A restarted node also knows a couple of random peers, as an operator's
    // bootstrap list would name several boxes.
    if (node.diskIncarnation > 1 && this.nodes.length > 1) {
      for (let i = 0; i < 2; i++) seeds.push(this.nodes[this.#random.nextInt(this.nodes.length)].id)
    }
    return [...new Set(seeds)].filter((id) => id !== node.id)
  }

  #recordFor (node: SimNode, incarnation: number): Omit<NodeRecord, 'seq' | 'status'> {
    const i = node.index
    const placed = this.#placement?.(i) ?? { position: { lat: 40 + (i % 10), lon: -3 + Math.floor(i / 10) % 10 }, region: `r${i % 3}`, zone: `z${i % 6}` }
    return {
      id: node.id,
      addrs: [`/sim/${node.id}`],
      ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      http: `http://${node.id}`,
      services: this.#services(i),
      load: { score: 0, sessions: 0, elu: 0, cpu: 0 },
      position: placed.position,
      region: placed.region,
      zone: placed.zone,
      incarnation
    }
  }

  // The frame to decode at the receiver (decodeFrames), or only its length.
  #frame (message: Message): { frame: Uint8Array | null; bytes: number } {
    if (!this.#options.decodeFrames) return { frame: null, bytes: frameBytes(message) }
    const frame = encode(message)
    return { frame, bytes: frame.length }
  }

  // A crashed target refuses the connection: nothing leaves the sender, so
  // nothing is counted (a message lost on the way, or dropped by a partition,
  // did leave it and is counted).
  #send (from: SimNode, to: PeerKey, message: Message): void {
    const target = this.#byId.get(to)
    const delay = target === undefined ? null : this.network.transit(from.id, to)
    if (target !== undefined && delay !== null && target.state === 'crashed') {
      // Connection refused: the sender's transport reports it.
      this.scheduler.after(2 * delay, () => from.hint('unreachable', to))
      return
    }
    const { frame, bytes } = this.#frame(message)
    from.traffic.messagesOut++
    from.traffic.bytesOut += bytes
    this.sent.set(message.type, (this.sent.get(message.type) ?? 0) + 1)
    if (target === undefined || delay === null) return
    from.addPeer(target)
    target.addPeer(from)
    this.scheduler.after(delay, () => this.#arrive(target, from.id, 'direct', frame, bytes, message))
  }

  // Gossipsub: a flood over the mesh (sim/mesh.ts); traffic counts every copy.
  #publish (from: SimNode, message: Message): void {
    const { frame, bytes } = this.#frame(message)
    if (message.type === 'gossip') {
      for (const u of message.updates) {
        const kind = u.kind === 'record' ? 'record' : u.signed.accusation.kind
        this.publishes.set(kind, (this.publishes.get(kind) ?? 0) + 1)
      }
    }
    const flood = this.#mesh.flood(from, this.nodes, this.#meshLinks)
    for (let index = 0; index < flood.sent.length; index++) {
      const sent = flood.sent[index]
      const received = flood.received[index]
      if (sent === 0 && received === 0) continue
      const traffic = this.nodes[index].traffic
      traffic.messagesOut += sent
      traffic.bytesOut += sent * bytes
      traffic.messagesIn += received
      traffic.bytesIn += received * bytes
    }
    const now = this.nowMs
    for (const { node, atMs } of flood.deliveries) {
      const target = this.nodes[node]
      this.scheduler.at(now + atMs, () => this.#arrive(target, from.id, 'gossip', frame, bytes, message, false))
    }
  }

  #arrive (target: SimNode, from: PeerKey, channel: 'direct' | 'gossip', frame: Uint8Array | null, bytes: number, message: Message, count = true): void {
    if (target.state === 'crashed') return
    if (count) {
      target.traffic.messagesIn++
      target.traffic.bytesIn += bytes
    }
    if (frame === null) return target.receive(from, channel, message)
    const decoded = decode(frame)
    if (!decoded.ok) {
      this.rejectedFrames++
      return
    }
    target.receive(from, channel, decoded.value)
  }

  #record (node: SimNode, event: AgentEvent | SessionEvent, atMs = this.nowMs): void {
    const entry: TraceEntry = { atMs, node: node.id, event }
    if (this.#options.trace) this.trace.push(entry)
    for (const listener of this.#listeners) listener(entry)
  }
}

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never
