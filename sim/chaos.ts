// A chaos run over sessions, VOPR style: a small cluster, terminals appending,
// random faults from the seed (chaos phase), then every fault heals and every
// terminal must finish (liveness phase); checkers judge the history. Used by the
// seed sweep in CI and for replaying one seed with a trace.

import { SeededRandom, deriveSeed } from '../agent/core/random.ts'
import { membershipProfile } from '../agent/membership/config.ts'
import type { ProfileName } from '../agent/membership/config.ts'
import { sessionsProfile } from '../agent/sessions/config.ts'
import type { SessionsConfig } from '../agent/sessions/config.ts'
import { checkOwners, checkReads, checkTerminal, ownershipSettled, recordOwnerAcks } from './checkers.ts'
import type { Read } from './checkers.ts'
import { SimCluster } from './cluster.ts'
import { SimTerminal } from './terminal.ts'
import { flakyServices } from './flaky-services.ts'
import type { ServiceSwitch } from './flaky-services.ts'

export type ChaosOptions = {
  minNodes: number
  maxNodes: number
  terminals: number
  appends: number
  chaosMs: number
  livenessLimitMs: number
  // Highest loss rate the chaos phase sets.
  maxLossRate: number
  trace: boolean
  // Changes to the lan sessions profile (the sweep's quick-quiet variant).
  sessions: Partial<SessionsConfig>
  // Each terminal's reader sends a GET about every this many ms (0: no reads),
  // from the first append until the run is judged, to the owner the terminal
  // knows or to any agent; checkReads judges what they were answered.
  readEveryMs: number
  // Each terminal closes its session once its appends are acknowledged, in the
  // chaos; then no agent may serve it again (and no read sent after the close
  // was acknowledged may be answered), and no running agent may own it.
  close: boolean
  // Every node on its own clock (SimOptions.clocks), or null: virtual time.
  clocks: { maxDrift: number } | null
  // The membership profile (default lan).
  membership: ProfileName
  // Disks that stall now and then (SimOptions.slowFsyncs), or null.
  slowFsyncs: { share: number; maxMs: number } | null
  // Gray failures, or null: after each chaos step, with probability 0.3, a
  // random node's every message in and out takes up to maxExtraMs longer
  // (uniform), or a slow node recovers (SimNetwork.slow). Drawn apart from the
  // other faults, so the rest of a seed's course starts the same.
  slowNodes: { maxExtraMs: number } | null
  // Disks that turn slow for good, or null: after each chaos step, with
  // probability 0.3, a random node's every commit starts taking fsyncMs
  // (SimCluster.slowDisk: a worn SD card), or a slow disk is fast again. Its
  // agent finds it out (disk-watch.ts) and hands over the sessions it owns.
  // Drawn apart from the other faults.
  slowDisks: { fsyncMs: number } | null
  // Services that fail on one node for a while (sim/flaky-services.ts): after
  // each chaos step, with probability 0.3, a random node's service stops
  // applying (a deployed service's worker loading or timed out there), or one
  // that stopped works again. Drawn apart from the other faults.
  flakyServices: boolean
}

export const DEFAULT_CHAOS: ChaosOptions = {
  minNodes: 5, maxNodes: 7, terminals: 2, appends: 30, chaosMs: 20_000, livenessLimitMs: 60_000, maxLossRate: 0.1, trace: false, sessions: {}, readEveryMs: 0, close: false, clocks: null, membership: 'lan', slowFsyncs: null, slowNodes: null, slowDisks: null, flakyServices: false
}

export type ChaosResult = {
  seed: number
  nodes: number
  problems: string[]
  // Whether every terminal finished within the liveness bound after healing.
  resumed: boolean
  faults: string[]
  cluster: SimCluster
  terminals: SimTerminal[]
}

export function runChaos (seed: number, options: Partial<ChaosOptions> = {}): ChaosResult {
  const o = { ...DEFAULT_CHAOS, ...options }
  const random = new SeededRandom(deriveSeed(seed, 0x5e55))
  const nodes = o.minNodes + random.nextInt(o.maxNodes - o.minNodes + 1)
  const flaky = o.flakyServices ? flakyServices(nodes) : null
  const cluster = new SimCluster({ seed, nodes, config: membershipProfile(o.membership), sessions: { ...sessionsProfile('lan'), ...o.sessions }, trace: o.trace, ...(o.clocks === null ? {} : { clocks: o.clocks }), ...(o.slowFsyncs === null ? {} : { slowFsyncs: o.slowFsyncs }), ...(flaky === null ? {} : { serviceCode: flaky.serviceCode }) })
  ;(globalThis as { __simNow?: () => number }).__simNow = () => cluster.nowMs
  cluster.start()
  if (!cluster.runUntil(() => cluster.running().length === nodes && cluster.converged(), 30_000, 10)) {
    return { seed, nodes, problems: ['the cluster did not converge before the chaos'], resumed: false, faults: [], cluster, terminals: [] }
  }
  const acks = recordOwnerAcks(cluster)
  // Each terminal's close, once answered (200, or 404: sim/terminal.ts).
  const closes = new Map<SimTerminal, number>()
  const close = (t: SimTerminal): void => { t.close((status) => { closes.set(t, status) }) }
  const terminals = openTerminals(cluster, random, o, close)
  const reads = o.readEveryMs > 0 ? startReads(cluster, new SeededRandom(deriveSeed(seed, 0x4ead)), terminals, o.readEveryMs) : null
  const faults = chaos(cluster, random, o, new SeededRandom(deriveSeed(seed, 0x5105)), flaky?.switches ?? null, new SeededRandom(deriveSeed(seed, 0xf1a4)), new SeededRandom(deriveSeed(seed, 0xd15c)))
  healAll(cluster, faults, flaky?.switches ?? null)
  // A close answered 404 in the chaos may have met a partition, not a closed
  // session: it is sent again, and now must be answered (200, or 404 with
  // everything healed).
  for (const t of terminals) {
    if (closes.get(t) !== 404) continue
    closes.delete(t)
    close(t)
  }
  // Service must resume: once a terminal is done with the chaos-time appends,
  // it makes one more, which must be acknowledged within the liveness bound.
  const healedAt = cluster.nowMs
  // With closes: every close must be answered instead.
  const resumed = o.close
    ? cluster.runUntil(() => terminals.every((t) => closes.has(t)), o.livenessLimitMs, 10)
    : cluster.runUntil(() => {
      for (const t of terminals) if (!t.busy && t.acks.length === o.appends && t.seq === o.appends) t.append(() => {})
      return terminals.every((t) => !t.busy && t.acks.length === o.appends + 1)
    }, o.livenessLimitMs, 10)
  if (resumed) faults.push(`${cluster.nowMs.toFixed(0)} ms: every terminal served again, ${(cluster.nowMs - healedAt).toFixed(0)} ms after healing`)
  // Elections may still be settling (a member frozen through the chaos comes back
  // believing in an old owner); the final state is read from a settled owner.
  // A closed session is settled once no running agent owns it.
  const settledOne = (t: SimTerminal): boolean => o.close ? cluster.running().every((n) => n.sessions?.replica(t.sessionId)?.role !== 'owner') : ownershipSettled(cluster, t.sessionId)
  const settled = cluster.runUntil(() => terminals.every(settledOne), o.livenessLimitMs, 10)
  const problems = [...checkOwners(acks), ...(o.close ? [] : terminals.flatMap((t) => checkTerminal(cluster, t)))]
  if (o.close) faults.push(`closes answered: ${terminals.map((t) => `${t.id} ${closes.get(t) ?? 'none'}`).join(', ')}`)
  if (reads !== null) {
    reads.stop()
    problems.push(...terminals.flatMap((t) => checkReads(cluster, t, reads.answered.filter((r) => r.terminal === t))))
    faults.push(`${reads.answered.length} reads answered 200`)
  }
  if (!settled) problems.push(o.close ? `a closed session is still owned ${o.livenessLimitMs} ms after healing` : `ownership did not settle on one node per session within ${o.livenessLimitMs} ms`)
  if (!resumed) problems.push(o.close ? `a close was not answered within ${o.livenessLimitMs} ms of healing` : `service did not resume within ${o.livenessLimitMs} ms of healing: ${terminals.map((t) => `${t.id} ${t.acks.length}/${o.appends + 1}`).join(', ')}`)
  return { seed, nodes, problems, resumed, faults, cluster, terminals }
}

function openTerminals (cluster: SimCluster, random: SeededRandom, o: ChaosOptions, close: (t: SimTerminal) => void): SimTerminal[] {
  const terminals: SimTerminal[] = []
  for (let i = 0; i < o.terminals; i++) {
    const terminal = new SimTerminal(cluster, { terminalId: `t${i}`, entry: cluster.ids[random.nextInt(cluster.ids.length)], requestTimeoutMs: 600 })
    let done = false
    terminal.open(() => { done = true })
    cluster.runUntil(() => done, 10_000)
    terminal.appendMany(o.appends, 50 + random.nextInt(100), o.close ? () => close(terminal) : undefined)
    terminals.push(terminal)
  }
  return terminals
}

// Each terminal's reader: a GET every readEveryMs (± half), half of them to the
// owner the terminal knows, the others to any agent (an old owner, a standby, a
// crashed one), so that a read reaches whoever still believes it owns the
// session. Only 200 answers are judged; the rest are refusals or redirects.
function startReads (cluster: SimCluster, random: SeededRandom, terminals: SimTerminal[], everyMs: number): { answered: Read[]; stop: () => void } {
  const answered: Read[] = []
  let stopped = false
  for (const terminal of terminals) {
    const next = (): void => {
      if (stopped) return
      const ids = cluster.ids
      const agent = terminal.owner !== null && random.nextInt(2) === 0 ? terminal.owner : ids[random.nextInt(ids.length)]
      const sentAtMs = cluster.nowMs
      // Every append acknowledged to the terminal by now must be in the answer.
      const ackedBefore = terminal.acks.length
      cluster.request(agent, { type: 'get', sessionId: terminal.sessionId, tokenHash: terminal.tokenHash }, (outcome) => {
        if (outcome.status !== 200) return
        const state = (outcome.body as { state?: unknown }).state
        answered.push({ terminal, agent, sentAtMs, answeredAtMs: cluster.nowMs, ackedBefore, values: Array.isArray(state) ? state as string[] : [] })
      })
      cluster.scheduler.after(Math.ceil(everyMs / 2) + random.nextInt(everyMs), next)
    }
    next()
  }
  return { answered, stop: () => { stopped = true } }
}

function chaos (cluster: SimCluster, random: SeededRandom, o: ChaosOptions, grayRandom: SeededRandom, switches: ServiceSwitch[] | null, flakyRandom: SeededRandom, diskRandom: SeededRandom): string[] {
  const faults: string[] = []
  const log = (text: string): void => { faults.push(`${cluster.nowMs.toFixed(0)} ms: ${text}`) }
  const end = cluster.nowMs + o.chaosMs
  while (cluster.nowMs < end) {
    cluster.run(300 + random.nextInt(2_200))
    const ids = cluster.ids
    const id = ids[random.nextInt(ids.length)]
    const state = cluster.node(id).state
    switch (random.nextInt(7)) {
      case 0: if (state === 'running') { log(`crash ${id}`); cluster.crash(id) } break
      case 1: if (state === 'crashed') { log(`restart ${id}`); cluster.restart(id) } break
      case 2: if (state === 'running') { log(`pause ${id}`); cluster.pause(id) } break
      case 3: if (state === 'paused') { log(`resume ${id}`); cluster.resume(id) } break
      case 4:
        if (!cluster.network.partitioned) {
          const shuffled = random.shuffle([...ids])
          const cut = 1 + random.nextInt(ids.length - 1)
          const sides = [shuffled.slice(0, cut), shuffled.slice(cut)]
          log(`partition ${sides.map((s) => s.join(',')).join(' | ')}`)
          cluster.partition(sides)
        }
        break
      case 5: if (cluster.network.partitioned) { log('heal'); cluster.heal() } break
      case 6: {
        const lossRate = random.nextFloat() * o.maxLossRate
        log(`loss ${(lossRate * 100).toFixed(1)}%`)
        cluster.setLink({ lossRate })
      }
    }
    if (o.slowNodes !== null && grayRandom.nextFloat() < 0.3) {
      const slow = cluster.network.slowNodes
      if (slow.length > 0 && grayRandom.nextInt(2) === 0) {
        const id = slow[grayRandom.nextInt(slow.length)]
        log(`${id} fast again`)
        cluster.network.slow(id, 0)
      } else {
        const id = ids[grayRandom.nextInt(ids.length)]
        const extraMs = 1 + grayRandom.nextFloat() * o.slowNodes.maxExtraMs
        log(`${id} slow: +${extraMs.toFixed(0)} ms each way`)
        cluster.network.slow(id, extraMs)
      }
    }
    if (o.slowDisks !== null && diskRandom.nextFloat() < 0.3) {
      const slow = cluster.slowDisks
      if (slow.length > 0 && diskRandom.nextInt(2) === 0) {
        const id = slow[diskRandom.nextInt(slow.length)]
        log(`${id}'s disk fast again`)
        cluster.slowDisk(id, 0)
      } else {
        const id = ids[diskRandom.nextInt(ids.length)]
        log(`${id}'s disk slow: ${o.slowDisks.fsyncMs} ms per fsync`)
        cluster.slowDisk(id, o.slowDisks.fsyncMs)
      }
    }
    if (switches !== null && flakyRandom.nextFloat() < 0.3) {
      const broken = ids.filter((_, i) => switches[i].broken)
      if (broken.length > 0 && flakyRandom.nextInt(2) === 0) {
        const id = broken[flakyRandom.nextInt(broken.length)]
        log(`${id}'s service works again`)
        switches[ids.indexOf(id)].broken = false
      } else {
        const at = flakyRandom.nextInt(ids.length)
        log(`${ids[at]}'s service cannot apply`)
        switches[at].broken = true
      }
    }
  }
  return faults
}

function healAll (cluster: SimCluster, faults: string[], switches: ServiceSwitch[] | null): void {
  faults.push(`${cluster.nowMs.toFixed(0)} ms: heal everything`)
  for (const s of switches ?? []) s.broken = false
  cluster.heal()
  cluster.setLink({ lossRate: 0 })
  for (const id of cluster.network.slowNodes) cluster.network.slow(id, 0)
  for (const id of cluster.slowDisks) cluster.slowDisk(id, 0)
  for (const node of cluster.nodes) {
    if (node.state === 'paused') cluster.resume(node.id)
    if (node.state === 'crashed') cluster.restart(node.id)
  }
}
