// Failure detection in virtual time (the real core on the simulated network, lan
// profile, 1-3 ms links): first and last survivor's `dead` verdict after a crash
// and after a freeze, and bytes sent per node per second at rest, at N nodes.

import { SimCluster } from '../sim/cluster.ts'
import { SeededRandom, deriveSeed } from '../agent/core/random.ts'
import type { PeerKey } from '../agent/core/io.ts'
import { log, spread } from './lib.ts'
import type { Spread } from './lib.ts'
import type { DetectionRound } from './detection-real.ts'

export type SimDetectionResult = {
  nodes: number
  seed: number
  rounds: number
  convergeMs: number
  kill: { first: Spread; last: Spread }
  stop: { first: Spread; last: Spread }
  atRest: { virtualSeconds: number; bytesPerSecPerNode: Spread; messagesPerSecPerNode: Spread }
  falseDeadVerdicts: number
  wallSeconds: number
  peakRssMiB: number
}

// The fault strikes at a random moment of the probe period (`phase`): in
// virtual time the rounds would otherwise fall at the same point of it each
// time (just after convergence, which follows a probe), and a freeze's wait
// for its first probe would be the same in every round.
function verdictRound (cluster: SimCluster, victim: PeerKey, fault: (id: PeerKey) => void, phase: SeededRandom): DetectionRound {
  cluster.run(phase.nextInt(cluster.config.probeIntervalMs))
  const seen = new Map<PeerKey, number>()
  const started = cluster.nowMs
  cluster.onEvent(({ atMs, node, event }) => {
    if (event.type === 'member-status' && event.id === victim && event.status === 'dead' && atMs >= started && !seen.has(node)) seen.set(node, atMs - started)
  })
  fault(victim)
  const survivors = cluster.running().filter((n) => n.id !== victim).length
  const ok = cluster.runUntil(() => seen.size >= survivors, 60_000)
  if (!ok) throw new Error(`seed ${cluster.seed}: ${victim} not dead everywhere (${seen.size}/${survivors})`)
  const times = [...seen.values()]
  return { first: Math.min(...times), last: Math.max(...times) }
}

export function benchSimDetection (nodes: number, rounds: number, seed: number): SimDetectionResult {
  const wallStart = process.hrtime.bigint()
  let peakRss = process.memoryUsage().rss
  log(`sim detection: ${nodes} nodes, seed ${seed}`)
  const cluster = new SimCluster({ seed, nodes, joinSpreadMs: Math.max(1_000, nodes * 5) })
  cluster.start()
  const converged = cluster.runUntil(() => cluster.running().length === nodes && cluster.converged(), 300_000, 100)
  if (!converged) throw new Error(`seed ${seed}: ${nodes} nodes did not converge`)
  const convergeMs = cluster.nowMs
  // Let the join traffic drain (every joiner's record is piggybacked ~4 log10 N
  // times by every member) so that "at rest" is the steady state.
  cluster.run(150_000)
  const victims = new Set<PeerKey>()
  let falseDead = 0
  cluster.onEvent(({ event }) => { if (event.type === 'member-status' && event.status === 'dead' && !victims.has(event.id)) falseDead++ })
  const before = cluster.nodes.map((n) => ({ ...n.traffic }))
  const restMs = 30_000
  cluster.run(restMs)
  const bytes = cluster.nodes.map((n, i) => (n.traffic.bytesOut - before[i].bytesOut) / (restMs / 1000))
  const messages = cluster.nodes.map((n, i) => (n.traffic.messagesOut - before[i].messagesOut) / (restMs / 1000))
  const kills: DetectionRound[] = []
  const stops: DetectionRound[] = []
  const phase = new SeededRandom(deriveSeed(seed, 3))
  for (let round = 0; round < rounds; round++) {
    const crashed = cluster.nodes[(7 + 13 * round) % nodes].id
    victims.add(crashed)
    kills.push(verdictRound(cluster, crashed, (id) => cluster.crash(id), phase))
    cluster.restart(crashed)
    cluster.runUntil(() => cluster.converged(), 60_000, 50)
    const frozen = cluster.nodes[(11 + 17 * round) % nodes].id
    victims.add(frozen)
    stops.push(verdictRound(cluster, frozen, (id) => cluster.pause(id), phase))
    cluster.resume(frozen)
    cluster.runUntil(() => cluster.converged(), 60_000, 50)
    peakRss = Math.max(peakRss, process.memoryUsage().rss)
  }
  const wallSeconds = Number(process.hrtime.bigint() - wallStart) / 1e9
  return {
    nodes,
    seed,
    rounds,
    convergeMs,
    kill: { first: spread(kills.map((r) => r.first)), last: spread(kills.map((r) => r.last)) },
    stop: { first: spread(stops.map((r) => r.first)), last: spread(stops.map((r) => r.last)) },
    atRest: { virtualSeconds: restMs / 1000, bytesPerSecPerNode: spread(bytes), messagesPerSecPerNode: spread(messages) },
    falseDeadVerdicts: falseDead,
    wallSeconds,
    peakRssMiB: Math.round(peakRss / 1024 / 1024)
  }
}
