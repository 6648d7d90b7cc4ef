// Prometheus metrics (prom-client), one registry per agent so that several agents
// in one process (tests) never share counters. Counters move on core events;
// gauges and transport totals are read when scraped.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { AgentEvent } from '../core/io.ts'
import type { PeekMember } from '../../protocol/messages.ts'
import { MEMBER_STATUS } from '../../protocol/messages.ts'
import type { FaultCounts } from '../net/fault-gate.ts'
import type { NetStats } from '../net/types.ts'
import type { SessionEvent } from '../sessions/types.ts'

export type MetricsSources = {
  members: () => PeekMember[]
  health: () => number
  incarnation: () => number
  net: () => NetStats
  eventLoopLagP99Ms: () => number
  // `quiet`: held quiet here (agent/sessions/quiet.ts).
  sessions: () => Array<{ role: string; quiet?: boolean }>
  // The fault-injection gate's counts; null when the gate is off (no metric then).
  faults?: (() => FaultCounts) | null
  // Peers cut off now for malformed frames (peer-strikes.ts).
  blockedPeers?: () => number
  // The session store's disk (disk-watch.ts): slow or not, median fsync in ms.
  disk?: () => { slow: boolean; medianMs: number }
  // A private cluster's key ids, and the open connections under each.
  clusterKeys?: () => { ids: { primary: string; previous: string[] } | null; connections: Map<string, number> }
}

export type RejectReason = 'decode' | 'author' | 'signature' | 'type' | 'other'

// Every limit of the README's "Limits" table, as the `limit` label.
export type LimitLabel =
  | 'frame-size' | 'message-rate' | 'streams-per-peer' | 'records-per-exchange'
  | 'sessions-per-agent' | 'delta-size' | 'state-size' | 'request-body-size'
  | 'terminal-requests' | 'terminal-bytes' | 'session-requests' | 'session-bytes'
export const LIMIT_LABELS: LimitLabel[] = [
  'frame-size', 'message-rate', 'streams-per-peer', 'records-per-exchange', 'sessions-per-agent', 'delta-size',
  'state-size', 'request-body-size', 'terminal-requests', 'terminal-bytes', 'session-requests', 'session-bytes'
]
export type ConnectionRefusal = 'cluster-key' | 'allowlist' | 'blocked'

// The decoders name the limit a frame broke in their reason (protocol/wire.ts):
// "… count N exceeds the limit of M" for lists, "frame of N bytes exceeds …".
export function limitOfDecodeReason (reason: string): LimitLabel | null {
  if (/ count \d+ exceeds the limit of /.test(reason)) return 'records-per-exchange'
  if (/^frame of \d+ bytes exceeds /.test(reason)) return 'frame-size'
  return null
}
// The protocols an agent reads from peers, as edge_agent_refused_total labels
// them: the SWIM stream, the replication stream and the gossip topic. (Peek reads
// nothing from its stream, so it has nothing to refuse.)
export type PeerProtocol = 'swim' | 'replicate' | 'gossip'
// Why: a frame that does not decode, a frame of a type that does not belong on
// the protocol, a statement authored or signed by someone else, a length prefix
// over the frame limit, one that is not a varint, a stream ending inside a
// frame, or a well-formed message the sessions core refused ('other').
export type RefuseReason = RejectReason | 'oversize' | 'framing' | 'truncated'

export class AgentMetrics {
  readonly registry = new Registry()
  readonly #probes: Counter<'result'>
  readonly #suspicions: Counter
  readonly #deadVerdicts: Counter
  readonly #ownVerdicts: Counter
  readonly #refutations: Counter
  readonly #stalls: Counter
  readonly #rejected: Counter<'reason'>
  readonly #refused: Counter<'protocol' | 'reason'>
  readonly #takeovers: Counter
  readonly #takeoverMs: Histogram
  readonly #acknowledged: Counter
  readonly #elections: Counter<'outcome'>
  readonly #groupChanges: Counter
  readonly #truncated: Counter
  readonly #applyStalls: Counter
  readonly #resignations: Counter
  readonly #limits: Counter<'limit'>
  readonly #refusedConnections: Counter<'reason'>
  readonly #peersBlocked: Counter
  readonly #identityShared: Counter
  readonly #packagesRefused: Counter<'reason'>
  readonly #packagesStored: Counter<'via'>
  readonly #packagesRetired: Counter
  readonly #serviceRedirects: Counter
  readonly #streamConnections: Gauge
  readonly #streamRequests: Counter<'result'>

  constructor (sources: MetricsSources) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'edge_agent_process_' })
    this.#probes = new Counter({ name: 'edge_agent_probes_total', help: 'SWIM probes this agent ran, by result (ack, indirect-ack, failed)', labelNames: ['result'], registers })
    this.#suspicions = new Counter({ name: 'edge_agent_suspicions_total', help: 'Times a member became suspect in this agent\'s table', registers })
    this.#deadVerdicts = new Counter({ name: 'edge_agent_dead_verdicts_total', help: 'Times a member became dead in this agent\'s table', registers })
    this.#ownVerdicts = new Counter({ name: 'edge_agent_suspicions_expired_total', help: 'Dead verdicts this agent reached itself (its suspicion timer ran out), as opposed to learnt', registers })
    this.#refutations = new Counter({ name: 'edge_agent_refutations_total', help: 'Times this agent raised its incarnation to refute an accusation', registers })
    this.#stalls = new Counter({ name: 'edge_agent_event_loop_stalls_total', help: 'Inputs that arrived long after the core asked to be woken (local stalls)', registers })
    this.#rejected = new Counter({ name: 'edge_agent_rejected_messages_total', help: 'Messages refused, by reason (decode, author, signature, type, other)', labelNames: ['reason'], registers })
    this.#refused = new Counter({
      name: 'edge_agent_refused_total',
      help: 'Frames and streams from peers refused, by protocol (swim, replicate, gossip) and reason (decode, type, author, signature, oversize, framing, truncated, other)',
      labelNames: ['protocol', 'reason'], registers
    })
    this.#takeovers = new Counter({ name: 'edge_agent_session_takeovers_total', help: 'Sessions this agent took over as owner (after the previous owner failed)', registers })
    this.#takeoverMs = new Histogram({
      name: 'edge_agent_session_takeover_seconds', help: 'From this agent suspecting the owner to serving as the new owner', registers,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5]
    })
    this.#acknowledged = new Counter({ name: 'edge_agent_session_deltas_acknowledged_total', help: 'Deltas this agent acknowledged as owner (held durably by the write concern)', registers })
    this.#elections = new Counter({ name: 'edge_agent_session_elections_total', help: 'Elections this agent stood in, by outcome (started, lost)', labelNames: ['outcome'], registers })
    this.#groupChanges = new Counter({ name: 'edge_agent_session_group_changes_total', help: 'Group changes this agent made as owner (repairs)', registers })
    this.#truncated = new Counter({ name: 'edge_agent_session_entries_truncated_total', help: 'Unacknowledged entries dropped when a new owner replaced them', registers })
    this.#resignations = new Counter({ name: 'edge_agent_session_resignations_total', help: 'Sessions this agent handed over as owner because its disk was slow (sessions.slowFsyncMs) and a member kept up', registers })
    this.#applyStalls = new Counter({ name: 'edge_agent_session_apply_stalls_total', help: 'Times a session copy here waited 5 s or more at a committed entry its service could not apply (a deployed service\'s worker loading, timed out or crashed): it applies nothing more of the session until a retry, every second, succeeds', registers })
    this.#limits = new Counter({ name: 'edge_agent_limit_exceeded_total', help: 'Requests, frames, streams or sessions refused because they exceeded a limit (README, "Limits"), by limit', labelNames: ['limit'], registers })
    this.#refusedConnections = new Counter({ name: 'edge_agent_refused_connections_total', help: 'Connections refused: peer without the cluster key (cluster-key), outside the allowlist (allowlist), or blocked for malformed frames (blocked)', labelNames: ['reason'], registers })
    this.#identityShared = new Counter({ name: 'edge_agent_identity_shared_total', help: 'Times this agent saw two different records of one member at one version, both signed with its key: two nodes hold that key (a data directory copied to two boxes)', registers })
    this.#peersBlocked = new Counter({ name: 'edge_agent_peers_blocked_total', help: 'Times this agent cut a peer off (hung up, its connections refused for limits.peerBlockMs) because it kept sending malformed frames', registers })
    // Zero from the start, so a dashboard sees every label before the first refusal.
    for (const limit of LIMIT_LABELS) this.#limits.inc({ limit }, 0)
    for (const reason of ['cluster-key', 'allowlist', 'blocked']) this.#refusedConnections.inc({ reason }, 0)
    this.#packagesRefused = new Counter({ name: 'edge_agent_packages_refused_total', help: 'Service packages or announcements refused, by reason (malformed, too-large, untrusted, bad-signature, hash-mismatch, manifest-mismatch, cluster-key: sealed for a cluster key this agent lacks, decrypt-failed)', labelNames: ['reason'], registers })
    this.#packagesStored = new Counter({ name: 'edge_agent_packages_stored_total', help: 'Service packages this agent stored, by how they came (deploy, push, fetch)', labelNames: ['via'], registers })
    this.#packagesRetired = new Counter({ name: 'edge_agent_packages_retired_total', help: 'Services this agent stopped running because it was no longer a target of their policy, nobody asked for them here and it held no copy of their sessions', registers })
    this.#serviceRedirects = new Counter({ name: 'edge_agent_service_redirects_total', help: 'Requests by URL this agent answered with 307 because it was over its load or request limit', registers })
    this.#streamConnections = new Gauge({ name: 'edge_agent_deltas_stream_connections', help: 'Terminal connections open on the deltas stream (README, "The deltas stream")', registers })
    this.#streamRequests = new Counter({ name: 'edge_agent_deltas_stream_requests_total', help: 'Appends and batches answered on the deltas stream, by result (ok: 2xx, refused: any other status)', labelNames: ['result'], registers })
    this.#gauges(sources, registers)
    if (typeof sources.faults === 'function') this.#faultGauges(sources.faults, registers)
    new Gauge({
      name: 'edge_agent_sessions', help: 'Sessions this agent holds, by role (owner, standby, candidate, witness)', labelNames: ['role'], registers,
      collect () {
        const counts = new Map<string, number>([['owner', 0], ['standby', 0], ['candidate', 0], ['witness', 0]])
        for (const session of sources.sessions()) counts.set(session.role, (counts.get(session.role) ?? 0) + 1)
        for (const [role, count] of counts) this.set({ role }, count)
      }
    })
    const disk = sources.disk
    if (disk !== undefined) {
      new Gauge({ name: 'edge_agent_disk_slow', help: 'Whether this agent finds its disk slow: 1 once its session store\'s median fsync over 5 s reached sessions.slowFsyncMs, 0 again once under half of it', registers, collect () { this.set(disk().slow ? 1 : 0) } })
      new Gauge({ name: 'edge_agent_fsync_median_seconds', help: 'Median fsync of the session store over the last 5 s (NaN before any)', registers, collect () { this.set(disk().medianMs / 1000) } })
    }
    const blockedPeers = sources.blockedPeers
    if (blockedPeers !== undefined) {
      new Gauge({ name: 'edge_agent_peers_blocked', help: 'Peers cut off now for malformed frames (limits.peerBlockMs after each block)', registers, collect () { this.set(blockedPeers()) } })
    }
    new Gauge({
      name: 'edge_agent_sessions_quiet', help: 'Sessions held quiet here (owner or member): idle, kept by one beat per pair of agents instead of per-session heartbeats', registers,
      collect () { this.set(sources.sessions().filter((session) => session.quiet === true).length) }
    })
  }

  observeSession (event: SessionEvent): void {
    switch (event.type) {
      case 'promoted':
        if (event.previousOwner !== null) {
          this.#takeovers.inc()
          this.#takeoverMs.observe(event.tookMs / 1000)
        }
        return
      case 'acknowledged': this.#acknowledged.inc(); return
      case 'election-started': this.#elections.inc({ outcome: 'started' }); return
      case 'election-lost': this.#elections.inc({ outcome: 'lost' }); return
      case 'group-changed': this.#groupChanges.inc(); return
      case 'truncated': this.#truncated.inc(event.entries); return
      case 'apply-stalled': this.#applyStalls.inc(); return
      case 'resigned': this.#resignations.inc(); return
      case 'rejected':
        this.#rejected.inc({ reason: 'other' })
        this.#refused.inc({ protocol: 'replicate', reason: 'other' })
        return
      case 'limit': this.#limits.inc({ limit: event.limit })
    }
  }

  #gauges (sources: MetricsSources, registers: Registry[]): void {
    new Gauge({
      name: 'edge_agent_members', help: 'Members in this agent\'s table, by status (self included)', labelNames: ['status'], registers,
      collect () {
        const counts = new Map<string, number>(MEMBER_STATUS.map((s) => [s, 0]))
        for (const member of sources.members()) counts.set(member.status, (counts.get(member.status) ?? 0) + 1)
        for (const [status, count] of counts) this.set({ status }, count)
      }
    })
    if (sources.clusterKeys !== undefined) {
      const keys = sources.clusterKeys
      new Gauge({
        name: 'edge_agent_cluster_key', help: 'The cluster keys this agent holds, by id: role="primary" dials under it, role="previous" is still accepted', labelNames: ['key', 'role'], registers,
        collect () {
          this.reset()
          const ids = keys().ids
          if (ids === null) return
          this.set({ key: ids.primary, role: 'primary' }, 1)
          for (const id of ids.previous) this.set({ key: id, role: 'previous' }, 1)
        }
      })
      new Gauge({
        name: 'edge_agent_peer_connections', help: 'Open connections to peers, by the id of the cluster key each runs under', labelNames: ['key'], registers,
        collect () {
          this.reset()
          const { ids, connections } = keys()
          for (const id of [ids?.primary, ...(ids?.previous ?? [])]) if (id !== undefined) this.set({ key: id }, 0)
          for (const [id, count] of connections) this.set({ key: id }, count)
        }
      })
    }
    new Gauge({ name: 'edge_agent_local_health', help: 'Lifeguard local health score (0 = healthy); timeouts scale by score + 1', registers, collect () { this.set(sources.health()) } })
    new Gauge({ name: 'edge_agent_incarnation', help: 'This agent\'s current incarnation', registers, collect () { this.set(sources.incarnation()) } })
    new Gauge({ name: 'edge_agent_event_loop_lag_p99_seconds', help: 'p99 event-loop delay over the last sample window', registers, collect () { this.set(sources.eventLoopLagP99Ms() / 1000) } })
    new Gauge({
      name: 'edge_agent_messages_total', help: 'Messages sent and received, by direction and channel (direct: membership stream, gossip: topic, sessions: replication stream)', labelNames: ['direction', 'channel'], registers,
      collect () {
        const s = sources.net()
        this.set({ direction: 'out', channel: 'direct' }, s.directFramesOut)
        this.set({ direction: 'in', channel: 'direct' }, s.directFramesIn)
        this.set({ direction: 'out', channel: 'gossip' }, s.gossipFramesOut)
        this.set({ direction: 'in', channel: 'gossip' }, s.gossipFramesIn)
        this.set({ direction: 'out', channel: 'sessions' }, s.sessionFramesOut)
        this.set({ direction: 'in', channel: 'sessions' }, s.sessionFramesIn)
      }
    })
    new Gauge({
      name: 'edge_agent_bytes_total', help: 'Payload bytes of messages, by direction and channel', labelNames: ['direction', 'channel'], registers,
      collect () {
        const s = sources.net()
        this.set({ direction: 'out', channel: 'direct' }, s.directBytesOut)
        this.set({ direction: 'in', channel: 'direct' }, s.directBytesIn)
        this.set({ direction: 'out', channel: 'gossip' }, s.gossipBytesOut)
        this.set({ direction: 'in', channel: 'gossip' }, s.gossipBytesIn)
        this.set({ direction: 'out', channel: 'sessions' }, s.sessionBytesOut)
        this.set({ direction: 'in', channel: 'sessions' }, s.sessionBytesIn)
      }
    })
    new Gauge({
      name: 'edge_agent_streams_open', help: 'Peers this agent holds an open outbound stream to, by channel (direct: membership, sessions: replication)', labelNames: ['channel'], registers,
      collect () {
        const s = sources.net()
        this.set({ channel: 'direct' }, s.directStreamsOut)
        this.set({ channel: 'sessions' }, s.sessionStreamsOut)
      }
    })
    new Gauge({ name: 'edge_agent_redial_held_total', help: 'Frames dropped because their peer failed a dial moments ago (redial backoff: 250 ms, doubling to 2 s)', registers, collect () { this.set(sources.net().redialHeld) } })
    new Gauge({ name: 'edge_agent_send_queue_drops_total', help: 'Frames dropped because a peer\'s send queue was full', registers, collect () { this.set(sources.net().sendQueueDrops) } })
  }

  #faultGauges (counts: () => FaultCounts, registers: Registry[]): void {
    new Gauge({
      name: 'edge_agent_fault_dropped_messages_total', help: 'Messages the fault-injection gate dropped, by direction, channel and reason (partition, loss); test facility', labelNames: ['direction', 'channel', 'reason'], registers,
      collect () { for (const c of counts().dropped) this.set({ direction: c.direction, channel: c.channel, reason: c.reason }, c.messages) }
    })
    new Gauge({
      name: 'edge_agent_fault_delayed_messages_total', help: 'Messages the fault-injection gate delayed, by direction and channel; test facility', labelNames: ['direction', 'channel'], registers,
      collect () { for (const c of counts().delayed) this.set({ direction: c.direction, channel: c.channel }, c.messages) }
    })
  }

  // `protocol`: what the event's input arrived on (its refusals are counted there).
  observe (event: AgentEvent, protocol: PeerProtocol = 'swim'): void {
    switch (event.type) {
      case 'probe': this.#probes.inc({ result: event.result }); return
      case 'member-status':
        if (event.status === 'suspect') this.#suspicions.inc()
        if (event.status === 'dead') this.#deadVerdicts.inc()
        return
      case 'suspicion-expired': this.#ownVerdicts.inc(); return
      case 'refuted': this.#refutations.inc(); return
      case 'stall': this.#stalls.inc(); return
      case 'rejected': {
        const reason = classify(event.reason)
        this.#rejected.inc({ reason })
        this.#refused.inc({ protocol, reason })
        return
      }
    }
  }

  packageRefused (reason: string): void {
    this.#packagesRefused.inc({ reason })
  }

  packageRetired (): void {
    this.#packagesRetired.inc()
  }

  packageStored (via: string): void {
    this.#packagesStored.inc({ via })
  }

  deltasStreamOpened (): void {
    this.#streamConnections.inc()
  }

  deltasStreamClosed (): void {
    this.#streamConnections.dec()
  }

  deltasStreamAnswered (status: number): void {
    this.#streamRequests.inc({ result: status >= 200 && status < 300 ? 'ok' : 'refused' })
  }

  serviceRedirected (): void {
    this.#serviceRedirects.inc()
  }

  rejected (reason: RejectReason, protocol: PeerProtocol): void {
    this.#rejected.inc({ reason })
    this.#refused.inc({ protocol, reason })
  }

  // A stream refused by the transport before any frame was decoded.
  refusedStream (reason: RefuseReason, protocol: PeerProtocol): void {
    this.#refused.inc({ protocol, reason })
  }

  limitExceeded (limit: LimitLabel): void {
    this.#limits.inc({ limit })
  }

  peerBlocked (): void {
    this.#peersBlocked.inc()
  }

  identityShared (): void {
    this.#identityShared.inc()
  }

  connectionRefused (reason: ConnectionRefusal): void {
    this.#refusedConnections.inc({ reason })
  }

  async text (): Promise<string> {
    return await this.registry.metrics()
  }

  get contentType (): string {
    return this.registry.contentType
  }
}

function classify (reason: string): RejectReason {
  if (reason.includes('signature')) return 'signature'
  if (reason.includes('carried')) return 'author'
  if (reason.includes('is not a')) return 'type'
  return 'other'
}
