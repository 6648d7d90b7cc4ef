// `edge-agent sim` in virtual time: the real membership and sessions cores on the
// simulated network, a scenario's terminals appending, its faults applied (chaos
// phase), then every fault healed and the cluster required to converge and serve
// every terminal again within a bound (liveness phase), in the manner of
// TigerBeetle's VOPR. The result is a function of (seed, options): no wall clock,
// no Math.random, Maps iterated in insertion order.

import { SeededRandom, deriveSeed } from '../agent/core/random.ts'
import type { PeerKey } from '../agent/core/io.ts'
import { sessionsProfile } from '../agent/sessions/config.ts'
import { checkOwners, checkTerminal, recordOwnerAcks } from './checkers.ts'
import { SimCluster } from './cluster.ts'
import type { NodePlacement, SimNode } from './cluster.ts'
import type { NodeStateName, Quantiles, SimRunResult } from './result.ts'
import type { FaultName, Scenario, ScheduledFault } from './scenarios.ts'
import { SimTerminal } from './terminal.ts'

export type VirtualRunOptions = {
  seed: number
  scenario: Scenario
  // Progress: virtual ms done of the expected total (chaos + liveness bound).
  onProgress?: (doneMs: number, totalMs: number, phase: string) => void
  // Start converged instead of joining (SimCluster.startWarm): for runs at
  // thousands of nodes, whose cold join costs N² messages. Off by default.
  warmStart?: boolean
  // Test-only: the checkers must catch a broken core. Never set by the CLI.
  plantedFault?: 'ack-before-replication'
  // SimOptions.verifyWake (default on); the CLI turns it off.
  verifyWake?: boolean
}

// A node counts as healthy and reachable for the false-positive count when it
// has been running, not slow, not isolated, for this long before a verdict.
const HEALTHY_FOR_MS = 5_000
// Traffic is sampled this often, virtual ms.
const SAMPLE_MS = 1_000
// Dissemination of a restarted node's new record is given up after this long.
const DISSEMINATION_LIMIT_MS = 30_000
const SLOW_DEFAULT_MS = 200
const OPEN_ATTEMPTS = 20
const OPEN_RETRY_MS = 500

type Detection = SimRunResult['detections'][number] & { survivorsAtFault: Set<PeerKey>; deadBy: Set<PeerKey>; open: boolean }
type PendingTakeover = { terminal: SimTerminal; atMs: number; from: PeerKey; epoch: number }

export function quantiles (values: number[]): Quantiles {
  if (values.length === 0) return { n: 0, p50: null, p90: null, p99: null, max: null }
  const sorted = [...values].sort((a, b) => a - b)
  const at = (p: number): number => round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))])
  return { n: sorted.length, p50: at(50), p90: at(90), p99: at(99), max: round(sorted[sorted.length - 1]) }
}

function round (value: number): number {
  return Math.round(value * 10) / 10
}

export function runVirtual (options: VirtualRunOptions): SimRunResult {
  const { seed, scenario } = options
  const random = new SeededRandom(deriveSeed(seed, 0x51a))
  const placement = placeNodes(scenario, new SeededRandom(deriveSeed(seed, 0x91ace)))
  const sessions = { ...sessionsProfile('lan'), ...(options.plantedFault === undefined ? {} : { plantedFault: options.plantedFault }) }
  const cluster = new SimCluster({
    seed,
    nodes: scenario.nodes,
    sessions,
    link: scenario.link,
    joinSpreadMs: Math.max(1_000, scenario.nodes * 5),
    services: () => scenario.placement.services.map((name) => ({ name, version: '1', capacity: scenario.placement.capacity })),
    placement: (i) => placement[i],
    ...(options.verifyWake === undefined ? {} : { verifyWake: options.verifyWake })
  })
  const ids = cluster.ids
  const durationMs = scenario.durationS * 1_000
  const livenessMs = scenario.livenessS * 1_000
  const totalMs = durationMs + livenessMs
  const progress = (doneMs: number, phase: string): void => options.onProgress?.(Math.min(doneMs, totalMs), totalMs, phase)

  // ---- start and converge ----------------------------------------------------
  if (options.warmStart === true) cluster.startWarm()
  else cluster.start()
  progress(0, options.warmStart === true ? 'warm start' : 'joining')
  const converged = cluster.runUntil(() => cluster.running().length === scenario.nodes && cluster.converged(), Math.max(60_000, scenario.nodes * 100), 100)
  const t0 = cluster.nowMs
  const rel = (atMs: number): number => round(atMs - t0)

  // ---- state the run keeps ------------------------------------------------------
  const timeline: SimRunResult['timeline'] = ids.map((node) => ({ atMs: 0, node, state: 'alive' as NodeStateName }))
  const state = new Map<PeerKey, NodeStateName>(ids.map((id) => [id, 'alive']))
  const lastTroubleMs = new Map<PeerKey, number>()
  const slow = new Set<PeerKey>()
  let partitionChangedMs = -Infinity
  const faults: SimRunResult['faults'] = []
  const detections: Detection[] = []
  const disseminations: Array<{ node: PeerKey; atMs: number; waiting: Set<PeerKey>; doneMs: number | null }> = []
  const pendingTakeovers: PendingTakeover[] = []
  let falseDead = 0
  const falseDeadSamples: string[] = []

  const setState = (node: PeerKey, next: NodeStateName): void => {
    if (state.get(node) === next) return
    state.set(node, next)
    timeline.push({ atMs: rel(cluster.nowMs), node, state: next })
    lastTroubleMs.set(node, cluster.nowMs)
  }

  const healthy = (node: PeerKey, now: number): boolean =>
    cluster.node(node).state === 'running' && !slow.has(node) && state.get(node) === 'alive' && now - (lastTroubleMs.get(node) ?? -Infinity) > HEALTHY_FOR_MS

  cluster.onEvent(({ atMs, node, event }) => {
    if (event.type !== 'member-status' || atMs < t0) return
    for (const d of detections) {
      if (!d.open || d.node !== event.id) continue
      if (event.status === 'suspect' && d.firstSuspicionMs === null) d.firstSuspicionMs = round(atMs - t0 - d.atMs)
      if (event.status === 'dead' && d.survivorsAtFault.has(node) && !d.deadBy.has(node)) {
        d.deadBy.add(node)
        d.firstDeadMs ??= round(atMs - t0 - d.atMs)
        d.lastDeadMs = round(atMs - t0 - d.atMs)
        d.verdicts = d.deadBy.size
      }
    }
    if (event.status === 'alive') {
      for (const s of disseminations) {
        if (s.node !== event.id || s.doneMs !== null || event.incarnation < cluster.node(s.node).diskIncarnation) continue
        s.waiting.delete(node)
        if (s.waiting.size === 0) s.doneMs = round(atMs - t0 - s.atMs)
      }
    }
    if (event.status === 'dead' && healthy(event.id, atMs) && healthy(node, atMs) &&
        atMs - partitionChangedMs > HEALTHY_FOR_MS && cluster.network.canReach(node, event.id)) {
      falseDead++
      if (falseDeadSamples.length < 10) falseDeadSamples.push(`${rel(atMs)} ms: ${node} declared ${event.id} dead`)
    }
  })
  const ownerAcks = recordOwnerAcks(cluster)

  // ---- terminals ----------------------------------------------------------------
  const terminals: SimTerminal[] = []
  let appending = true
  const openFailures: string[] = []
  for (let i = 0; i < scenario.workload.terminals; i++) {
    const entry = ids[random.nextInt(ids.length)]
    const terminal = new SimTerminal(cluster, { terminalId: `t${i}`, entry, valueBytes: scenario.workload.valueBytes })
    terminals.push(terminal)
    const loop = (): void => {
      if (!appending) return
      terminal.append(() => cluster.scheduler.after(scenario.workload.deltaIntervalMs, loop))
    }
    // A refused open is retried, as the EdgeClient does (a 503 while the
    // owner-to-be is slow or a message was lost), up to OPEN_ATTEMPTS times.
    const open = (attempt: number): void => terminal.open((ok) => {
      if (ok) return loop()
      if (attempt + 1 < OPEN_ATTEMPTS) return cluster.scheduler.after(OPEN_RETRY_MS, () => open(attempt + 1))
      openFailures.push(`t${i}: ${terminal.errors.slice(-3).join('; ')}`)
    })
    open(0)
  }

  // ---- faults -------------------------------------------------------------------
  const running = (): PeerKey[] => cluster.running().map((n: SimNode) => n.id).filter((id) => state.get(id) === 'alive')
  const pick = (list: PeerKey[]): PeerKey | null => list.length === 0 ? null : list[random.nextInt(list.length)]
  const ownerTarget = (): PeerKey | null => {
    const owners = terminals.map((t) => t.owner).filter((o): o is PeerKey => o !== null && state.get(o) === 'alive' && cluster.node(o).state === 'running')
    return pick(owners) ?? pick(running())
  }
  const resolve = (target: string | undefined, fallback: 'random' | 'crashed' | 'paused'): PeerKey[] => {
    const t = target ?? fallback
    if (t === 'random') return listOf(pick(running()))
    if (t === 'owner') return listOf(ownerTarget())
    if (t === 'crashed' || t === 'paused') return ids.filter((id) => state.get(id) === t)
    if (t === 'all') return [...ids]
    return ids.includes(t) ? [t] : []
  }

  const noteTakeovers = (victims: PeerKey[]): void => {
    for (const terminal of terminals) {
      if (terminal.owner !== null && victims.includes(terminal.owner)) pendingTakeovers.push({ terminal, atMs: cluster.nowMs, from: terminal.owner, epoch: terminal.epoch })
    }
  }

  const startDetection = (node: PeerKey, fault: 'crash' | 'pause'): void => {
    const survivors = new Set(running().filter((id) => id !== node))
    detections.push({ node, fault, atMs: rel(cluster.nowMs), firstSuspicionMs: null, firstDeadMs: null, lastDeadMs: null, verdicts: 0, survivors: survivors.size, survivorsAtFault: survivors, deadBy: new Set(), open: true })
  }
  const closeDetections = (node: PeerKey): void => {
    for (const d of detections) if (d.node === node) d.open = false
  }

  const apply = (fault: FaultName, target: string | undefined, extra: ScheduledFault = { atS: 0, fault }): PeerKey[] => {
    let targets: PeerKey[] = []
    let detail = ''
    switch (fault) {
      case 'crash':
        targets = resolve(target, 'random')
        for (const id of targets) { noteTakeovers([id]); startDetection(id, 'crash'); cluster.crash(id); setState(id, 'crashed') }
        break
      case 'restart':
        targets = resolve(target, 'crashed').filter((id) => cluster.node(id).state === 'crashed')
        for (const id of targets) {
          closeDetections(id)
          cluster.restart(id)
          setState(id, 'alive')
          disseminations.push({ node: id, atMs: rel(cluster.nowMs), waiting: new Set(running().filter((o) => o !== id)), doneMs: null })
        }
        break
      case 'pause':
        targets = resolve(target, 'random')
        for (const id of targets) { noteTakeovers([id]); startDetection(id, 'pause'); cluster.pause(id); setState(id, 'paused') }
        break
      case 'resume':
        targets = resolve(target, 'paused').filter((id) => cluster.node(id).state === 'paused')
        for (const id of targets) { closeDetections(id); cluster.resume(id); setState(id, 'alive') }
        break
      case 'partition': {
        const live = running()
        const minority = target === 'half' ? Math.floor(live.length / 2) : 1 + random.nextInt(Math.max(1, Math.min(3, Math.floor((live.length - 1) / 2))))
        const shuffled = [...live]
        random.shuffle(shuffled)
        const cut = target !== undefined && ids.includes(target) ? [target] : shuffled.slice(0, minority)
        cluster.partition([ids.filter((id) => !cut.includes(id)), cut])
        partitionChangedMs = cluster.nowMs
        noteTakeovers(cut)
        for (const id of cut) setState(id, 'isolated')
        targets = cut
        detail = `${cut.length} of ${ids.length} cut off`
        break
      }
      case 'heal':
        cluster.heal()
        partitionChangedMs = cluster.nowMs
        targets = ids.filter((id) => state.get(id) === 'isolated')
        for (const id of targets) setState(id, 'alive')
        break
      case 'loss':
        cluster.setLink({ lossRate: extra.rate ?? 0 })
        detail = `loss ${(100 * (extra.rate ?? 0)).toFixed(0)}%`
        partitionChangedMs = cluster.nowMs
        break
      case 'delay':
        cluster.setLink({ delayMinMs: extra.minMs ?? 1, delayMaxMs: extra.maxMs ?? 3 })
        detail = `delay ${extra.minMs}-${extra.maxMs} ms`
        break
      case 'slow': {
        const ms = extra.ms ?? SLOW_DEFAULT_MS
        targets = resolve(target, 'random')
        for (const id of targets) {
          cluster.network.slow(id, ms)
          if (ms > 0) slow.add(id)
          else slow.delete(id)
          lastTroubleMs.set(id, cluster.nowMs)
        }
        detail = ms > 0 ? `+${ms} ms per message` : 'normal speed again'
        break
      }
    }
    faults.push({ atMs: rel(cluster.nowMs), fault, targets, detail })
    return targets
  }

  for (const f of scenario.faults) cluster.scheduler.at(t0 + f.atS * 1_000, () => { if (cluster.nowMs <= t0 + durationMs) apply(f.fault, f.target, f) })
  if (scenario.random !== null) scheduleRandomFaults(scenario.random)

  function scheduleRandomFaults (plan: NonNullable<Scenario['random']>): void {
    let down = 0
    const next = (): void => {
      if (cluster.nowMs >= t0 + durationMs) return
      cluster.scheduler.after(plan.everyS * 1_000, next)
      if (down >= plan.maxDown) return
      const fault = plan.faults[random.nextInt(plan.faults.length)]
      if (fault === 'partition' && cluster.network.partitioned) return
      const target = fault === 'partition' ? undefined : (random.nextFloat() < 0.5 ? 'owner' : 'random')
      const targets = apply(fault, target)
      if (targets.length === 0) return
      down++
      const [lo, hi] = plan.downS
      const backAfterMs = (lo + random.nextFloat() * (hi - lo)) * 1_000
      cluster.scheduler.after(backAfterMs, () => {
        down--
        if (fault === 'crash') apply('restart', targets[0])
        else if (fault === 'pause') apply('resume', targets[0])
        else if (fault === 'partition') apply('heal', undefined)
        else apply('slow', targets[0], { atS: 0, fault: 'slow', ms: 0 })
      })
    }
    cluster.scheduler.at(t0 + plan.everyS * 1_000, next)
  }

  // ---- chaos phase ----------------------------------------------------------------
  const series: SimRunResult['traffic']['series'] = []
  let before = cluster.nodes.map((n) => ({ ...n.traffic }))
  const sample = (): void => {
    const now = cluster.nodes.map((n) => ({ ...n.traffic }))
    const live = cluster.nodes.filter((n) => n.state !== 'crashed').length || 1
    const perNode = now.map((t, i) => (t.bytesOut - before[i].bytesOut) / (SAMPLE_MS / 1_000))
    const bytes = perNode.reduce((a, b) => a + b, 0)
    const messages = now.reduce((sum, t, i) => sum + t.messagesOut - before[i].messagesOut, 0) / (SAMPLE_MS / 1_000)
    series.push({ atMs: rel(cluster.nowMs), bytesPerNodePerSec: round(bytes / live), messagesPerNodePerSec: round(messages / live), maxBytesPerNodePerSec: round(Math.max(0, ...perNode)) })
    before = now
  }
  while (cluster.nowMs < t0 + durationMs) {
    cluster.run(Math.min(SAMPLE_MS, t0 + durationMs - cluster.nowMs))
    sample()
    progress(cluster.nowMs - t0, 'chaos')
  }

  // ---- liveness phase: heal everything, then everyone must be served -----------------
  const healedAt = cluster.nowMs
  apply('heal', undefined)
  apply('restart', 'crashed')
  apply('resume', 'paused')
  for (const id of [...slow]) apply('slow', id, { atS: 0, fault: 'slow', ms: 0 })
  cluster.setLink(scenario.link)
  const acksAtHeal = terminals.map((t) => t.acks.length)
  let livenessOk = false
  let convergedAfterHeal = false
  while (cluster.nowMs < healedAt + livenessMs) {
    cluster.run(SAMPLE_MS)
    sample()
    progress(durationMs + cluster.nowMs - healedAt, 'liveness')
    convergedAfterHeal = cluster.converged()
    livenessOk = convergedAfterHeal && terminals.every((t, i) => t.sessionId === '' || t.acks.length > acksAtHeal[i])
    if (livenessOk) break
  }
  const livenessMsTaken = round(cluster.nowMs - healedAt)
  appending = false
  cluster.runUntil(() => terminals.every((t) => !t.busy), 30_000, 10)
  progress(totalMs, 'checking')

  // ---- figures ---------------------------------------------------------------------
  for (const d of detections) if (d.lastDeadMs !== null && d.deadBy.size < d.survivorsAtFault.size) d.lastDeadMs = null
  const takeovers: SimRunResult['takeovers'] = []
  for (const p of pendingTakeovers) {
    const first = p.terminal.acks.find((a) => a.atMs >= p.atMs && a.epoch > p.epoch)
    if (first === undefined) continue
    takeovers.push({ sessionId: p.terminal.sessionId, atMs: rel(p.atMs), from: p.from, to: first.agent, latencyMs: round(first.atMs - p.atMs) })
  }
  const allAcks = terminals.flatMap((t) => t.acks)
  const activeMs = cluster.nowMs - t0
  const checkers: SimRunResult['checkers'] = [
    { name: 'cluster converged before the run', ok: converged, problems: converged ? [] : ['the nodes did not converge before the chaos began'] },
    { name: 'sessions opened', ok: openFailures.length === 0, problems: openFailures.slice(0, 20) },
    { name: 'no acknowledged delta lost or duplicated, order kept', ...verdict(terminals.filter((t) => t.sessionId !== '').flatMap((t) => checkTerminal(cluster, t))) },
    { name: 'at most one owner acknowledging per session epoch', ...verdict(checkOwners(ownerAcks)) },
    { name: 'membership converged after healing', ok: convergedAfterHeal, problems: convergedAfterHeal ? [] : [`not converged ${livenessMsTaken} ms after healing`] },
    { name: `every terminal served again within ${scenario.livenessS} s of healing`, ok: livenessOk, problems: livenessOk ? [] : terminals.filter((t, i) => t.acks.length <= acksAtHeal[i]).slice(0, 20).map((t) => `${t.id} (${t.sessionId}) got no acknowledgement after healing`) },
    { name: 'no node declared dead while healthy and reachable', ok: falseDead === 0, problems: falseDeadSamples }
  ]
  const result: SimRunResult = {
    replay: '',
    seed,
    mode: 'virtual',
    scenario: scenario.name,
    nodes: scenario.nodes,
    durationMs,
    options: { scenario: scenario.name, description: scenario.description, nodes: scenario.nodes, durationS: scenario.durationS, livenessS: scenario.livenessS, workload: scenario.workload, link: scenario.link, placement: scenario.placement, faults: scenario.faults, random: scenario.random, profile: 'lan', warmStart: options.warmStart === true, replicas: sessions.replicas, writeConcern: sessions.writeConcern, convergedAtMs: round(t0), livenessTookMs: livenessMsTaken },
    nodeIds: ids,
    timeline,
    faults,
    detections: detections.map(({ survivorsAtFault: _s, deadBy: _d, open: _o, ...d }) => d),
    detection: {
      firstSuspicionMs: quantiles(detections.flatMap((d) => d.firstSuspicionMs ?? [])),
      firstDeadMs: quantiles(detections.flatMap((d) => d.firstDeadMs ?? [])),
      lastDeadMs: quantiles(detections.flatMap((d) => d.lastDeadMs ?? []))
    },
    dissemination: quantiles(disseminations.flatMap((s) => s.doneMs !== null && s.doneMs <= DISSEMINATION_LIMIT_MS ? [s.doneMs] : [])),
    takeovers,
    takeover: quantiles(takeovers.map((t) => t.latencyMs)),
    traffic: {
      intervalMs: SAMPLE_MS,
      series,
      bytesPerNodePerSec: round(mean(series.map((s) => s.bytesPerNodePerSec))),
      messagesPerNodePerSec: round(mean(series.map((s) => s.messagesPerNodePerSec)))
    },
    deltas: {
      terminals: terminals.length,
      sessions: terminals.filter((t) => t.sessionId !== '').length,
      acknowledged: allAcks.length,
      perSec: round(allAcks.length / Math.max(1, activeMs / 1_000)),
      latencyMs: quantiles(allAcks.map((a) => a.latencyMs))
    },
    falseDead,
    checkers,
    ok: checkers.every((c) => c.ok)
  }
  return result
}

function verdict (problems: string[]): { ok: boolean; problems: string[] } {
  return { ok: problems.length === 0, problems: problems.slice(0, 50) }
}

function mean (values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length
}

function listOf (id: PeerKey | null): PeerKey[] {
  return id === null ? [] : [id]
}

// Nodes spread over the scenario's regions by share, each jittered around its
// region's centre; zones are the region's name plus a letter.
export function placeNodes (scenario: Scenario, random: SeededRandom): NodePlacement[] {
  const regions = scenario.placement.regions
  const total = regions.reduce((sum, r) => sum + r.share, 0)
  const out: NodePlacement[] = []
  for (let i = 0; i < scenario.nodes; i++) {
    let x = random.nextFloat() * total
    let region = regions[regions.length - 1]
    for (const r of regions) {
      if (x < r.share) { region = r; break }
      x -= r.share
    }
    const jitter = (): number => (random.nextFloat() * 2 - 1) * region.spreadDeg
    out.push({
      position: { lat: Math.max(-90, Math.min(90, round(region.lat + jitter()))), lon: ((region.lon + jitter() + 540) % 360) - 180 },
      region: region.name,
      zone: `${region.name}-${String.fromCharCode(97 + random.nextInt(3))}`
    })
  }
  return out
}
