// One edge agent: the membership core driven over libp2p, its data directory, the
// HTTP API and metrics. This is the host of style.md §1; the decisions are the
// core's, the I/O is here.

import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import type { AgentEvent, Effect, Input, PeerKey } from '../core/io.ts'
import { SeededRandom } from '../core/random.ts'
import { Membership } from '../membership/membership.ts'
import { decode, encode } from '../../protocol/codec.ts'
import type { Message, NodeRecord, PeekMember, SessionMessage } from '../../protocol/messages.ts'
import { FaultGate } from '../net/fault-gate.ts'
import type { StoredSession } from '../sessions/types.ts'
import { checkAllowlist, createNet, loadOrCreateIdentity, peekOverLibp2p } from '../net/libp2p.ts'
import type { DirectChannelName, GossipVerdict, Net, NetRefusal, StreamRefusal } from '../net/types.ts'
import { clusterKeyHint } from '../net/cluster-key.ts'
import type { ClusterKeys } from '../net/keyring.ts'
import { packageKeyOf } from './package.ts'
import type { PackageKey } from './package.ts'
import { addressChange, advertisedHttp, isLoopback, pickIp, readAllowlist, readClusterKeys, readTls, recordAddrs, warnFaultInjection } from './agent-setup.ts'
import { DataDir } from './data-dir.ts'
import { CoreDriver } from './driver.ts'
import { HttpApi } from './http-api.ts'
import { LoadSampler } from './load.ts'
import { AgentMetrics } from './metrics.ts'
import { limitOfDecodeReason } from './metrics.ts'
import type { LimitLabel, PeerProtocol, RejectReason } from './metrics.ts'
import { HttpLimits } from './http-limits.ts'
import { PeerStrikes } from './peer-strikes.ts'
import { membersJson } from './view.ts'
import { SessionStore, storeAbsence } from './session-store.ts'
import { SessionsHost } from './sessions-host.ts'
import { registerFaultRoutes } from './faults-http.ts'
import { registerSessionRoutes } from './sessions-http.ts'
import { serveDeltasStream } from './deltas-stream.ts'
import { DELTAS_STREAM_PATH, DELTAS_STREAM_PROTOCOL } from '../../protocol/deltas-stream.ts'
import { SingletonKeeper } from './singletons.ts'
import { watchJoin } from './identity-watch.ts'
import { DeployHost } from './deploy-host.ts'
import { registerDeployRoutes } from './deploy-http.ts'
import { refusedAnswer } from './deploy-wire.ts'
import { servicesFor } from '../sessions/services.ts'
import { DEFAULT_DEPLOY_CONFIG } from '../deploy/distribution.ts'
import { join } from 'node:path'

export type AgentOutput = {
  // One JSON object per line on stdout when --json is given.
  line: (object: Record<string, unknown>) => void
}

export type AgentStartOptions = {
  // The fault-injection gate and its /v1/faults endpoint (a test facility; only
  // the --fault-injection flag of `edge-agent start` sets it, never a config file).
  faultInjection?: boolean
}

const monotonic = { nowMs: () => performance.now() }

// Rejections are logged once per peer, protocol and reason per minute; all are counted.
const REJECT_LOG_GAP_MS = 60_000
const IDENTITY_SHARED_LOG_GAP_MS = 60_000

export type AgentHalt = { kind: 'store-failed' | 'identity-conflict'; reason: string }

export class Agent {
  readonly id: string
  readonly config: AgentConfig
  readonly #log: Logger
  readonly #output: AgentOutput
  readonly #dataDir: DataDir
  readonly #net: Net
  readonly #http: HttpApi
  readonly #limits: HttpLimits
  readonly #metrics: AgentMetrics
  readonly #load = new LoadSampler()
  readonly #core: Membership
  readonly #driver: CoreDriver<Input, Effect>
  readonly #store: SessionStore
  readonly #sessions: SessionsHost
  readonly #singletons: SingletonKeeper
  readonly #deploy: DeployHost
  readonly #rejectLogged = new Map<string, number>()
  // Malformed frames per peer, and the peers cut off for them.
  readonly #strikes: PeerStrikes
  readonly #faults: FaultGate | null
  // The cluster's keys (undefined: an open cluster); a reload may change them.
  #keys: ClusterKeys | undefined
  // The package keys of those keys; the deploy host holds this array, and a
  // reload replaces its contents.
  readonly #packageKeys: PackageKey[]
  // The deployer keys packages are checked against; the deploy host holds this
  // set, and a reload replaces its contents.
  readonly #trusted: Set<string>
  // The protocol of the message the membership core is stepping on, so that its
  // refusals are counted under it (steps and their effects are synchronous).
  #receiving: PeerProtocol = 'swim'
  readonly httpUrl: string
  #loadTimer: NodeJS.Timeout | null = null
  // Whether the last load sample was at or over sessions.loadThreshold.
  #overloaded = false
  #stopping: Promise<void> | null = null
  // Resolves once the agent stopped itself, and why: its session store failed
  // (it left its cluster first: #onStoreFailed), or another node uses its
  // identity (#onIdentityConflict). Never otherwise.
  readonly halted: Promise<AgentHalt>
  #halt: (halt: AgentHalt) => void = () => {}

  private constructor (parts: {
    config: AgentConfig, log: Logger, output: AgentOutput, dataDir: DataDir, net: Net, http: HttpApi, httpUrl: string, core: Membership, store: SessionStore, faults: FaultGate | null, stored: StoredSession[], keys: ClusterKeys | undefined, limits: HttpLimits
  }) {
    this.config = parts.config
    this.#log = parts.log
    this.#output = parts.output
    this.#dataDir = parts.dataDir
    this.#net = parts.net
    this.#faults = parts.faults
    this.#keys = parts.keys
    this.#packageKeys = packageKeysOf(parts.keys)
    this.#trusted = new Set(parts.config.trustedDeployers)
    this.#http = parts.http
    this.#limits = parts.limits
    this.#strikes = new PeerStrikes(parts.config.limits)
    this.httpUrl = parts.httpUrl
    this.#core = parts.core
    this.id = parts.core.id
    this.#driver = new CoreDriver<Input, Effect>(this.#core, monotonic, (effects) => { for (const effect of effects) this.#perform(effect) })
    this.#metrics = new AgentMetrics({
      members: () => this.members(),
      health: () => this.#core.health,
      incarnation: () => this.#core.incarnation,
      net: () => this.#net.stats(),
      eventLoopLagP99Ms: () => this.#load.eventLoopLagP99Ms,
      sessions: () => this.#sessions.list(),
      faults: parts.faults === null ? null : () => (parts.faults as FaultGate).counts(),
      blockedPeers: () => this.#strikes.count(monotonic.nowMs()),
      disk: () => this.#sessions.disk,
      clusterKeys: () => ({ ids: this.#net.clusterKeys(), connections: this.#net.connectionKeys() })
    })
    this.#store = parts.store
    this.halted = new Promise((resolve) => { this.#halt = resolve })
    const services = servicesFor(parts.config.singletons)
    // Deployed packages start before the sessions core replays its store.
    this.#deploy = new DeployHost({
      dataDir: parts.config.dataDir,
      trusted: this.#trusted,
      packageKey: this.#packageKeys,
      config: { ...DEFAULT_DEPLOY_CONFIG, pullIntervalMs: parts.config.packagePullIntervalMs, retireAfterMs: parts.config.packageRetireAfterMs, loadThreshold: parts.config.sessions.loadThreshold },
      directory: this.#core.directory(),
      net: parts.net,
      services,
      baseOffers: parts.config.services,
      advertise: (offers) => this.#driver.step({ kind: 'command', command: { type: 'update-self', patch: { services: offers } } }),
      heldServices: () => this.#sessions.services(),
      log: parts.log.child({ core: 'deploy' }),
      line: (o) => this.#output.line(o),
      onRefused: (refusal) => this.#metrics.packageRefused(refusal),
      onStored: (via) => this.#metrics.packageStored(via),
      onRetired: () => this.#metrics.packageRetired()
    })
    this.#sessions = new SessionsHost({
      services,
      config: parts.config,
      directory: this.#core.directory(),
      net: parts.net,
      store: parts.store,
      stored: parts.stored,
      log: parts.log.child({ core: 'sessions' }),
      line: (o) => this.#output.line(o),
      onEvent: (event) => this.#metrics.observeSession(event),
      onFailed: (reason) => this.#onStoreFailed(reason)
    })
    this.#singletons = new SingletonKeeper(parts.config, this.#core.directory(), this.#sessions, parts.log)
  }

  static async start (config: AgentConfig, log: Logger, output: AgentOutput, options: AgentStartOptions = {}): Promise<Agent> {
    const dataDir = new DataDir(config.dataDir)
    dataDir.open()
    let store: SessionStore | null = null
    try {
      // A corrupt store refuses the start, before the agent listens or joins:
      // serving from it could serve wrong data. open() checks the write-ahead log
      // and the b-trees, load() every row's checksum.
      // The last incarnation, read (and its checksum checked) once: 0 on a first start.
      const ranBefore = dataDir.readIncarnation()
      const absent = storeAbsence(join(config.dataDir, 'sessions.db'), ranBefore)
      if (absent !== null) throw absent
      store = SessionStore.open(join(config.dataDir, 'sessions.db'))
      const stored = store.load()
      return await Agent.#assemble(config, log, output, dataDir, ranBefore, store, options.faultInjection === true ? new FaultGate() : null, stored)
    } catch (error) {
      store?.close()
      dataDir.close()
      throw error
    }
  }

  static async #assemble (config: AgentConfig, log: Logger, output: AgentOutput, dataDir: DataDir, ranBefore: number, store: SessionStore, faults: FaultGate | null, stored: StoredSession[]): Promise<Agent> {
    // Files named by the configuration are read and checked before anything
    // listens: a bad one refuses the start with its path.
    const keys = readClusterKeys(config, (message) => log.warn(message))
    const allowPeers = readAllowlist(config)
    const tls = readTls(config)
    const identity = await loadOrCreateIdentity(config.dataDir, ranBefore)
    // Each start is a new incarnation, persisted before anyone hears of it, so a
    // restarted node overrides whatever the cluster remembers of its last life.
    const incarnation = ranBefore + 1
    dataDir.writeIncarnation(incarnation)
    // The core's inputs are routed through `agent` once it exists.
    let agent: Agent | null = null
    const net = await createNet({
      identity,
      listen: config.listen,
      cluster: config.cluster,
      dialTimeoutMs: config.dialTimeoutMs,
      keys,
      onKeySwitched: (address, from, to) => { log.info({ address, from, to }, 'a peer answered under another of this agent\'s cluster keys; dialling it under that key from now on') },
      allowPeers,
      ...(faults === null ? {} : { faults }),
      handlers: {
        onDirect: (from, frame, channel) => { if (agent !== null) agent.#onDirect(from, frame, channel) },
        onStreamRefused: (from, channel, reason) => { if (agent !== null) agent.#onRefusedStream(from, channel, reason) },
        onGossip: (from, frame) => agent === null ? 'ignore' : agent.#onGossip(from, frame),
        onDisconnected: (peer) => { if (agent !== null) agent.#hint('disconnected', peer) },
        onUnreachable: (peer) => { if (agent !== null) agent.#hint('unreachable', peer) },
        onPeek: () => agent === null ? new Uint8Array(0) : agent.#peekFrame(),
        onRefused: (what, peer, detail) => { if (agent !== null) agent.#netRefused(what, peer, detail) },
        onRequest: async (from, frame) => agent === null ? refusedAnswer('the agent is starting') : await agent.#deploy.onRequest(from, frame)
      }
    })
    const limits = new HttpLimits(config.limits, (limit) => { if (agent !== null) agent.#limitExceeded(limit, 'HTTP', limit) })
    let http: HttpApi
    let httpUrl: string
    try {
      http = new HttpApi({ onError: (error) => log.error({ err: error }, 'HTTP handler failed'), tls, admit: (request, url) => limits.admit(request, url) })
    } catch (error) {
      await net.stop()
      throw new Error(`cannot use the TLS certificate ${config.tlsCert} with key ${config.tlsKey}: ${(error as Error).message}`)
    }
    try {
      httpUrl = await http.listen(config.http.host, config.http.port)
    } catch (error) {
      await net.stop()
      throw new Error(`cannot listen for HTTP on ${config.http.host}:${config.http.port}: ${(error as Error).message}`)
    }
    const addrs = recordAddrs(net)
    const ip = pickIp(addrs)
    const core = new Membership({
      self: {
        id: identity.id,
        addrs,
        ip,
        http: advertisedHttp(httpUrl, ip),
        services: config.services,
        load: { score: 0, sessions: 0, elu: 0, cpu: 0 },
        position: config.position,
        region: config.region,
        zone: config.zone,
        incarnation
      },
      config: config.membership,
      random: new SeededRandom(randomBytes(4).readUInt32LE(0)),
      auth: identity.auth,
      nowMs: monotonic.nowMs(),
      // performance.now() counts from timeOrigin: agents on NTP-synchronised
      // boxes then start their probe periods together.
      clockOffsetMs: performance.timeOrigin
    })
    agent = new Agent({ config, log, output, dataDir, net, http, httpUrl, core, store, faults, stored, keys, limits })
    agent.#begin()
    return agent
  }

  #begin (): void {
    this.#routes()
    this.#output.line({ event: 'started', id: this.id, addrs: this.#net.addrs(), http: this.httpUrl, incarnation: this.#core.incarnation, ...(this.#faults === null ? {} : { faultInjection: true }), atMs: Date.now() })
    this.#log.info({ id: this.id, addrs: this.#net.addrs(), http: this.httpUrl, incarnation: this.#core.incarnation, profile: this.config.profile }, 'agent started')
    if (!isLoopback(this.config.http.host) && this.config.tlsCert === null) {
      this.#log.warn({ http: this.httpUrl }, 'the HTTP API is reachable beyond this machine without TLS: session tokens and state travel in clear text; give --tls-cert and --tls-key, or bind it to 127.0.0.1')
    }
    if (this.config.clusterKey === null) {
      this.#log.warn({ listen: this.config.listen }, 'this cluster is open: any libp2p node that reaches these addresses can join it and read its membership; create a key with `edge-agent keygen --cluster` and start every agent with --cluster-key')
    }
    if (this.#faults !== null) warnFaultInjection(this.#log, this.httpUrl)
    this.#driver.step({ kind: 'command', command: { type: 'join', peers: [], bootstrapping: this.config.bootstrap.length > 0 } })
    this.#loadTimer = setInterval(() => this.#sampleLoad(), this.config.loadSampleIntervalMs)
    this.#singletons.start()
    this.#deploy.begin()
    void this.#joinBootstrap()
    if (this.config.bootstrap.length > 0) {
      void watchJoin({
        bootstrap: this.config.bootstrap,
        joining: () => this.#core.directory().joining(),
        stopped: () => this.#stopping !== null,
        self: () => this.#core.directory().record(this.id) as NodeRecord,
        peek: async (addr) => peekMembers(await peekOverLibp2p(addr, this.config.cluster, this.config.dialTimeoutMs, this.#keys?.primary)),
        onConflict: (record, addr) => {
          this.#log.warn({ bootstrap: addr }, 'still joining: a bootstrap peer lists this agent\'s id as another node\'s')
          this.#onIdentityConflict({ type: 'identity-conflict', record, from: addr })
        }
      })
    }
  }

  get incarnation (): number {
    return this.#core.incarnation
  }

  get addrs (): string[] {
    return this.#net.addrs()
  }

  members (): PeekMember[] {
    return this.#core.snapshot(monotonic.nowMs())
  }

  // SIGHUP (`systemctl reload`): applies what can change while the agent runs,
  // from `next` (the configuration built again from the same file and flags):
  // the TLS certificate and key (a renewed certificate), the allowlist (peers
  // taken off it are hung up on), the cluster keys (for connections from now
  // on), the trusted deployer keys (for packages from now on; packages running
  // keep running) and the log level. Everything is
  // read and checked before anything changes: a bad file changes nothing and
  // throws, saying why. Returns the keys applied, and those that differ but
  // need a restart (listen, services, limits…), which are left as they are.
  reload (next: AgentConfig): { applied: string[]; needRestart: string[] } {
    const tls = readTls(next)
    if ((tls === undefined) !== !this.#http.secure) throw new Error(this.#http.secure ? 'the HTTP API runs with TLS; turning it off needs a restart' : 'the HTTP API runs without TLS; turning it on needs a restart')
    const allowlist = readAllowlist(next)
    checkAllowlist(allowlist)
    const keys = readClusterKeys(next, (message) => this.#log.warn(message))
    if ((keys === undefined) !== (this.#keys === undefined)) throw new Error(this.#keys === undefined ? 'the cluster is open; giving it a key (clusterKey) needs a restart of every agent' : 'the cluster is private; opening it (no clusterKey) needs a restart')
    if (tls !== undefined) {
      try {
        this.#http.setTls(tls)
      } catch (error) {
        throw new Error(`cannot use the TLS certificate ${next.tlsCert} with key ${next.tlsKey}: ${(error as Error).message}`)
      }
    }
    this.#net.setAllowlist(allowlist)
    if (keys !== undefined) this.#setClusterKeys(keys)
    this.#trusted.clear()
    for (const key of next.trustedDeployers) this.#trusted.add(key)
    this.#log.level = next.logLevel
    const reloadable = new Set(['tlsCert', 'tlsKey', 'allowPeers', 'allowPeersFile', 'trustedDeployers', 'logLevel', 'clusterKey', 'clusterKeyPrevious'])
    const applied = [...(tls === undefined ? [] : ['tlsCert', 'tlsKey']), ...(keys === undefined ? [] : ['clusterKey', 'clusterKeyPrevious']), 'allowPeers', 'allowPeersFile', 'trustedDeployers', 'logLevel']
    const needRestart = (Object.keys(next) as Array<keyof AgentConfig>).filter((key) => !reloadable.has(key) && JSON.stringify(next[key]) !== JSON.stringify(this.config[key]))
    Object.assign(this.config, { tlsCert: next.tlsCert, tlsKey: next.tlsKey, allowPeers: next.allowPeers, allowPeersFile: next.allowPeersFile, trustedDeployers: next.trustedDeployers, logLevel: next.logLevel, clusterKey: next.clusterKey, clusterKeyPrevious: next.clusterKeyPrevious })
    this.#log.info({ applied, needRestart, allowlist: allowlist?.length ?? null, trustedDeployers: next.trustedDeployers.length }, needRestart.length === 0 ? 'configuration reloaded' : 'configuration reloaded; some changed keys need a restart and were left as they are')
    this.#output.line({ event: 'reloaded', id: this.id, needRestart, atMs: Date.now() })
    return { applied, needRestart }
  }

  // A reload's cluster keys: dials from now on go under the new primary, and
  // new connections need one of the keys. Connections made under a key no
  // longer held stay open until they close (Net.setClusterKeys says why).
  #setClusterKeys (keys: ClusterKeys): void {
    const before = this.#net.clusterKeys()
    const stale = this.#net.setClusterKeys(keys)
    this.#keys = keys
    this.#packageKeys.splice(0, this.#packageKeys.length, ...packageKeysOf(keys))
    const after = this.#net.clusterKeys()
    if (JSON.stringify(before) === JSON.stringify(after)) return
    this.#log.info({ primary: after?.primary, previous: after?.previous, was: before, openUnderDropped: stale }, `cluster keys changed: dialling under ${after?.primary ?? '?'}, also accepting ${after?.previous.length === 0 ? 'no other key' : after?.previous.join(', ')}${stale === 0 ? '' : `; ${stale} connections made under a key no longer held stay open until they close`}`)
    this.#output.line({ event: 'cluster-keys', id: this.id, primary: after?.primary ?? null, previous: after?.previous ?? [], openUnderDropped: stale, atMs: Date.now() })
  }

  // Stops the agent. With `leave`, it first announces a graceful leave and lets
  // the announcement drain, so the cluster records `left`, not a failure.
  async stop (options: { leave: boolean }): Promise<void> {
    this.#stopping ??= this.#stop(options.leave)
    await this.#stopping
  }

  // A store that cannot write or fsync (a full disk, an I/O error) can make
  // nothing durable, so no session copy here can acknowledge, vote or take
  // over. Staying a member whose copies are silent would cost every group that
  // holds one: an owner's standbys wait out ownerTimeoutMs and a diagnosis, a
  // standby's owner stalls memberStaleMs on writes, the group stays one copy
  // short (repair replaces only members the membership calls gone), and new
  // groups keep placing copies here. So the agent leaves its cluster, as on
  // SIGTERM: members record `left`, standbys take over at once and groups
  // repair, and the process ends (`edge-agent start` exits 3) for its service
  // manager to restart it. A restart reopens the store as after a crash (what
  // its last fsync covered) and, once the disk has room, rejoins with a new
  // incarnation; while it is still full the restart fails before joining.
  #onStoreFailed (reason: string): void {
    this.#log.fatal({ reason }, 'the session store failed: this agent leaves its cluster and stops; its groups take over its sessions')
    this.#output.line({ event: 'store-failed', id: this.id, error: reason, atMs: Date.now() })
    void this.stop({ leave: true }).finally(() => { this.#halt({ kind: 'store-failed', reason }) })
  }

  // Two nodes sign as one member: said here (at most once a minute per id,
  // and counted), so that the operator of any box learns where both are; the
  // two find out themselves too, and one stops (#onIdentityConflict).
  #onIdentityShared (event: Extract<AgentEvent, { type: 'identity-shared' }>): void {
    this.#metrics.identityShared()
    const now = monotonic.nowMs()
    const key = `identity-shared ${event.id}`
    const last = this.#rejectLogged.get(key)
    if (last !== undefined && now - last < IDENTITY_SHARED_LOG_GAP_MS) return
    this.#rejectLogged.set(key, now)
    const where = event.records.map((r) => ({ ip: r.ip, http: r.http, addrs: r.addrs }))
    this.#log.error({ member: event.id, where }, 'two nodes sign as one member: a data directory copied to two boxes? Empty the data directory of one of them and start it again')
    this.#output.line({ event: 'identity-shared', id: event.id, where, atMs: Date.now() })
  }

  // Another node signs with this agent's key (Membership.#recordAboutSelf): a
  // data directory copied to a second box, most likely. The two cannot both be
  // members, so this one, the one that found out, stops, without a leave (a
  // `left` record in this id's name would take the other off too), and says
  // where the other is. The other carries on. `edge-agent start` exits 4,
  // which the systemd unit does not restart: a restart would only find it again.
  #onIdentityConflict (event: Extract<AgentEvent, { type: 'identity-conflict' }>): void {
    const other = { ip: event.record.ip, http: event.record.http, addrs: event.record.addrs, incarnation: event.record.incarnation }
    const reason = `another node signs with this agent's identity ${this.id} (at ${event.record.ip || event.record.addrs.join(' ') || 'an unknown address'}${event.record.http === '' ? '' : `, ${event.record.http}`}): two boxes were given one data directory (a copied disk image?). Give this box an identity of its own: empty its data directory ${this.config.dataDir} and start it again`
    this.#log.fatal({ other, from: event.from }, reason)
    this.#output.line({ event: 'identity-conflict', id: this.id, other, atMs: Date.now() })
    void this.stop({ leave: false }).finally(() => { this.#halt({ kind: 'identity-conflict', reason }) })
  }

  async #stop (leave: boolean): Promise<void> {
    if (leave) {
      this.#driver.step({ kind: 'command', command: { type: 'leave' } })
      await new Promise((resolve) => setTimeout(resolve, this.config.leaveDrainMs))
    }
    this.#driver.stop()
    this.#singletons.stop()
    this.#sessions.stop()
    this.#deploy.stop()
    if (this.#loadTimer !== null) clearInterval(this.#loadTimer)
    this.#load.stop()
    await this.#http.close()
    await this.#net.stop()
    try {
      this.#store.close()
    } catch (error) {
      // A store that failed closes as it can; what it held is what its last
      // fsync covered.
      this.#log.error({ err: error }, 'the session store did not close cleanly')
    }
    this.#dataDir.close()
    this.#output.line({ event: 'stopped', id: this.id, left: leave, atMs: Date.now() })
    this.#log.info({ left: leave }, 'agent stopped')
  }

  // ---- inbound ------------------------------------------------------------

  // Membership frames belong on the SWIM stream and session frames on the
  // replication stream (the agent never sends them elsewhere); peek frames on
  // neither.
  #onDirect (from: PeerKey, frame: Uint8Array, channel: DirectChannelName): void {
    // Frames still in flight from a peer just cut off.
    if (this.#strikes.blocked(from, monotonic.nowMs())) return
    const protocol = protocolOf(channel)
    const decoded = decode(frame)
    if (!decoded.ok) return this.#rejected(from, 'decode', decoded.reason, protocol)
    const message = decoded.value
    if (message.type === 'peek-request' || message.type === 'peek-reply') return this.#rejected(from, 'type', `${message.type} on a direct stream`, protocol)
    const isSession = message.type.startsWith('session-')
    if (isSession !== (channel === 'sessions')) return this.#rejected(from, 'type', `${message.type} on the ${protocol} stream`, protocol)
    if (isSession) return this.#sessions.receive(from, message as SessionMessage)
    this.#driver.step({ kind: 'receive', from, channel: 'direct', message })
  }

  #onRefusedStream (from: PeerKey, channel: DirectChannelName, reason: StreamRefusal): void {
    const protocol = protocolOf(channel)
    this.#metrics.refusedStream(reason, protocol)
    this.#logRejection(from, `${protocol} ${reason}: stream aborted`)
    this.#strike(from, `${protocol} ${reason}`)
  }

  // A transport hint concerns both cores: membership probes the peer, sessions
  // suspect it if it owns something here.
  #hint (type: 'disconnected' | 'unreachable', peer: PeerKey): void {
    this.#driver.step({ kind: 'command', command: { type, peer } })
    this.#sessions.hint(type, peer)
  }

  // Runs inside gossipsub's validator: decide synchronously, feed the core after.
  #onGossip (from: PeerKey, frame: Uint8Array): GossipVerdict {
    // Signed by a peer cut off: not its relay's fault.
    if (this.#strikes.blocked(from, monotonic.nowMs())) return 'ignore'
    const decoded = decode(frame)
    if (!decoded.ok) {
      this.#rejected(from, 'decode', decoded.reason, 'gossip')
      return 'reject'
    }
    const message = decoded.value
    if (message.type !== 'gossip') {
      this.#rejected(from, 'type', `${message.type} on the gossip topic`, 'gossip')
      return 'reject'
    }
    const impostor = message.updates.find((u) => (u.kind === 'record' ? u.signed.record.id : u.signed.accusation.accuser) !== from)
    if (impostor !== undefined) {
      this.#rejected(from, 'author', 'gossip carried a statement authored by another node', 'gossip')
      return 'reject'
    }
    queueMicrotask(() => {
      this.#receiving = 'gossip'
      try {
        this.#driver.step({ kind: 'receive', from, channel: 'gossip', message })
      } finally {
        this.#receiving = 'swim'
      }
    })
    return 'accept'
  }

  #peekFrame (): Uint8Array {
    return encode({ type: 'peek-reply', self: this.id, members: this.members() })
  }

  // ---- effects ------------------------------------------------------------

  #perform (effect: Effect): void {
    switch (effect.kind) {
      case 'send': return this.#net.send(effect.to, this.#encode(effect.message))
      case 'publish': return this.#net.publish(this.#encode(effect.message))
      case 'persist': return this.#dataDir.writeIncarnation(effect.record.incarnation)
      case 'event': return this.#onEvent(effect.event)
    }
  }

  #encode (message: Message): Uint8Array {
    return encode(message)
  }

  #onEvent (event: AgentEvent): void {
    this.#metrics.observe(event, this.#receiving)
    switch (event.type) {
      case 'member-joined':
        this.#deploy.tableChanged()
        this.#net.learnAddrs(event.id, event.record.addrs)
        this.#log.info({ member: event.id, ip: event.record.ip, services: event.record.services.map((s) => s.name) }, 'member joined')
        this.#output.line({ event: 'member', id: event.id, status: 'alive', previous: null, incarnation: event.record.incarnation, by: event.id, atMs: Date.now() })
        return
      case 'member-updated':
        this.#deploy.tableChanged()
        return this.#net.learnAddrs(event.id, event.record.addrs)
      case 'member-status':
        this.#deploy.tableChanged()
        return this.#onStatus(event)
      case 'member-reaped':
        this.#net.forget(event.id)
        this.#log.info({ member: event.id }, 'member reaped')
        return
      case 'refuted':
        this.#log.warn({ incarnation: event.incarnation, accusation: event.accusation, by: event.by }, 'refuted an accusation about this agent')
        this.#output.line({ event: 'refuted', incarnation: event.incarnation, accusation: event.accusation, by: event.by, atMs: Date.now() })
        return
      case 'stall': this.#log.warn({ lateMs: Math.round(event.lateMs) }, 'event loop stalled; extending pending timeouts'); return
      case 'local-health': this.#log.debug({ score: event.score, reason: event.reason }, 'local health changed'); return
      case 'rejected':
        // A record or accusation that fails its signature, or one in another
        // node's name: the membership core's refusals are all of what no agent sends.
        this.#logRejection(event.from, event.reason)
        return this.#strike(event.from, `${this.#receiving} ${event.reason}`)
      case 'left': this.#log.info('leave announced'); return
      case 'identity-conflict': return this.#onIdentityConflict(event)
      case 'identity-shared': return this.#onIdentityShared(event)
      default: this.#log.trace({ event }, 'membership event')
    }
  }

  #onStatus (event: Extract<AgentEvent, { type: 'member-status' }>): void {
    const level = event.status === 'dead' || event.status === 'suspect' ? 'warn' : 'info'
    this.#log[level]({ member: event.id, status: event.status, previous: event.previous, incarnation: event.incarnation, by: event.by }, `member ${event.status}`)
    this.#output.line({ event: 'member', id: event.id, status: event.status, previous: event.previous, incarnation: event.incarnation, by: event.by, atMs: Date.now() })
    if (event.status === 'left') this.#net.forget(event.id)
  }

  #rejected (from: PeerKey, reason: RejectReason, detail: string, protocol: PeerProtocol): void {
    this.#metrics.rejected(reason, protocol)
    if (reason === 'decode') {
      const limit = limitOfDecodeReason(detail)
      if (limit !== null) this.#metrics.limitExceeded(limit)
    }
    this.#logRejection(from, `${protocol} ${reason}: ${detail}`)
    if (reason !== 'other') this.#strike(from, `${protocol} ${reason}`)
  }

  // A frame no agent sends (peer-strikes.ts): past the peer's allowance, the
  // transport hangs up on it and refuses it for limits.peerBlockMs.
  #strike (from: PeerKey, what: string): void {
    const block = this.#strikes.strike(from, monotonic.nowMs())
    if (block === null) return
    this.#net.block(from, block.forMs)
    this.#metrics.peerBlocked()
    this.#log.warn({ peer: from, forMs: block.forMs, last: what }, `blocked a peer for ${block.forMs} ms: it kept sending malformed frames (over ${this.config.limits.peerMalformedFramesPerS}/s); hung up, its connections refused`)
    this.#output.line({ event: 'peer-blocked', peer: from, forMs: block.forMs, last: what, atMs: Date.now() })
  }

  #netRefused (what: NetRefusal, peer: string, detail: string): void {
    if (what === 'cluster-key' || what === 'allowlist' || what === 'blocked') {
      this.#metrics.connectionRefused(what)
      this.#logRejection(peer, `connection refused (${what}): ${detail}`)
      return
    }
    this.#limitExceeded(what, peer, detail)
  }

  #limitExceeded (limit: LimitLabel, from: string, detail: string): void {
    this.#metrics.limitExceeded(limit)
    this.#logRejection(from, `limit ${limit}: ${detail}`)
  }

  // The rate limit is keyed by what comes before the first ': ' (protocol and
  // reason, not the detail: garbage yields a different detail per frame, and a
  // flood must not become a flood of log lines).
  #logRejection (from: PeerKey, reason: string): void {
    const colon = reason.indexOf(': ')
    const key = `${from} ${colon < 0 ? reason : reason.slice(0, colon)}`
    const now = monotonic.nowMs()
    const last = this.#rejectLogged.get(key)
    if (last !== undefined && now - last < REJECT_LOG_GAP_MS) return
    if (this.#rejectLogged.size > 10_000) this.#rejectLogged.clear()
    this.#rejectLogged.set(key, now)
    this.#log.warn({ peer: from, reason }, 'refused a message')
  }

  // ---- periodic work ------------------------------------------------------

  #sampleLoad (): void {
    this.#checkAddrs()
    const capacity = this.config.services.reduce((sum, s) => sum + s.capacity, 0)
    const load = this.#load.sample(this.#sessions.count, capacity)
    this.#driver.step({ kind: 'command', command: { type: 'update-self', patch: { load } } })
    // Crossing the load threshold makes this agent a target of auto and
    // replicas:<n> packages, or no longer one.
    const overloaded = load.score >= this.config.sessions.loadThreshold
    if (overloaded !== this.#overloaded) this.#deploy.tableChanged()
    this.#overloaded = overloaded
  }

  // A listener on 0.0.0.0 (the default) listens on whatever addresses the box
  // has, and libp2p lists them as they are now. When they change (a DHCP lease,
  // a failover link), the record must follow, or members keep dialling an
  // address nobody has and terminals are sent to it. And connections made
  // through an address the box lost do not fail, they stall (their packets have
  // no way back), and libp2p would go on sending on them for the socket's
  // 2-minute inactivity timeout; so they are hung up, and peers are dialled
  // again from the addresses the box has now. Peers do the same on their side
  // when the new record reaches them (Libp2pNet.learnAddrs). Checked at every
  // load sample (loadSampleIntervalMs); addressChange says what the record
  // should say.
  #checkAddrs (): void {
    const self = this.#core.directory().record(this.id)
    const change = self === null ? null : addressChange(recordAddrs(this.#net), self)
    if (change === null) return
    const { addrs, lost, ip } = change
    this.#log.warn({ addrs, lost, ip }, lost.length > 0
      ? 'this box\'s addresses changed: announcing them, and hanging up connections (those made through the lost addresses are dead)'
      : 'this box\'s addresses changed: announcing them')
    this.#output.line({ event: 'addrs-changed', id: this.id, addrs, lost, ip, atMs: Date.now() })
    this.#driver.step({ kind: 'command', command: { type: 'update-self', patch: { addrs, ip, http: advertisedHttp(this.httpUrl, ip) } } })
    if (lost.length > 0) this.#net.dropConnections()
  }

  // Resolves bootstrap multiaddrs to peer ids (dialling them), retrying with
  // backoff until each answers or the agent stops; the core then joins through
  // them and keeps retrying on its own whenever it finds itself alone.
  async #joinBootstrap (): Promise<void> {
    const pending = new Set(this.config.bootstrap)
    const peers = new Set<PeerKey>()
    // Why each pending address failed last: a wrong cluster key, nothing
    // listening, a timeout. The operator reads it in the waiting line.
    const failures = new Map<string, string>()
    let delayMs = this.config.membership.joinRetryMs
    while (pending.size > 0 && this.#stopping === null) {
      let found = false
      for (const addr of [...pending]) {
        try {
          const peer = await this.#net.dial(addr, this.config.dialTimeoutMs)
          pending.delete(addr)
          failures.delete(addr)
          if (peer !== this.id) peers.add(peer)
          found = true
        } catch (error) {
          const message = (error as Error).message
          failures.set(addr, `${message}${clusterKeyHint(message, this.#keys !== undefined, 'clusterKey (--cluster-key)')}`)
          this.#log.debug({ addr, err: message }, 'bootstrap peer not reachable yet')
        }
      }
      if (this.#stopping !== null) return
      if (found) this.#driver.step({ kind: 'command', command: { type: 'join', peers: [...peers] } })
      if (pending.size === 0) return
      if (!found && peers.size === 0) this.#log.info({ pending: [...pending], retryMs: delayMs }, `waiting for bootstrap peers: ${[...failures.values()].join('; ')}`)
      await new Promise((resolve) => setTimeout(resolve, delayMs))
      delayMs = Math.min(delayMs * 2, 10_000)
    }
  }

  // ---- HTTP ---------------------------------------------------------------

  #routes (): void {
    this.#http.route('GET', /^\/v1\/health$/, () => ({ status: 200, body: { ok: true, id: this.id, incarnation: this.#core.incarnation, joining: this.#core.directory().joining(), clusterKeys: this.#net.clusterKeys() } }))
    this.#http.route('GET', /^\/v1\/members$/, () => ({ status: 200, body: membersJson(this.id, this.members(), this.#keys === undefined ? undefined : (id) => this.#net.connectionKey(id)) }))
    this.#http.route('GET', /^\/metrics$/, async () => ({ status: 200, raw: await this.#metrics.text(), headers: { 'content-type': this.#metrics.contentType } }))
    const appends = registerSessionRoutes(this.#http, this.#sessions, this.#deploy, (limit) => this.#metrics.limitExceeded(limit), (sessionId, bytes) => this.#limits.chargeRead(sessionId, bytes))
    this.#http.upgrade(DELTAS_STREAM_PATH, DELTAS_STREAM_PROTOCOL, (socket, head, request) => {
      serveDeltasStream(socket, head, request.socket.remoteAddress ?? 'unknown', {
        appends,
        admit: (terminal, bytes, session) => this.#limits.admitParts(terminal, bytes, session),
        onError: (error) => this.#log.error({ err: error }, 'deltas stream handler failed'),
        onRefused: (terminal, reason) => this.#logRejection(terminal, `deltas stream: ${reason}`),
        onOpened: () => this.#metrics.deltasStreamOpened(),
        onClosed: () => this.#metrics.deltasStreamClosed(),
        onAnswered: (status) => this.#metrics.deltasStreamAnswered(status)
      })
    })
    registerDeployRoutes(this.#http, {
      deploy: this.#deploy,
      sessions: this.#sessions,
      directory: this.#core.directory(),
      config: this.config,
      onRedirect: () => this.#metrics.serviceRedirected()
    })
    registerFaultRoutes(this.#http, this.#faults, this.#log)
  }
}

function protocolOf (channel: DirectChannelName): PeerProtocol {
  return channel === 'sessions' ? 'replicate' : 'swim'
}

// The members of a peek answer, or an error saying what came instead.
function peekMembers (frame: Uint8Array): PeekMember[] {
  const decoded = decode(frame)
  if (!decoded.ok) throw new Error(`peek answer: ${decoded.reason}`)
  if (decoded.value.type !== 'peek-reply') throw new Error(`peek answer: a ${decoded.value.type}`)
  return decoded.value.members
}

function packageKeysOf (keys: ClusterKeys | undefined): PackageKey[] {
  return keys === undefined ? [] : [keys.primary, ...keys.previous].map(packageKeyOf)
}
