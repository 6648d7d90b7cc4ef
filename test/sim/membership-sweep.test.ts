// Seed sweep: small clusters under random crashes, restarts, freezes, partitions
// and loss (chaos phase), then every fault heals (liveness phase). Invariants:
// no member is declared dead while it was running and reachable; a node's
// incarnation never goes backwards; the cluster converges once faults heal.
// A failure prints its seed and the command that replays it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeededRandom, deriveSeed } from '../../agent/core/random.ts'
import type { PeerKey } from '../../agent/core/io.ts'
import { SimCluster } from '../../sim/cluster.ts'
import { withSeed } from './helpers.ts'

const FILE = 'test/sim/membership-sweep.test.ts'
const SEEDS = Number(process.env.SEEDS ?? 200)
const FIRST_SEED = Number(process.env.SEED ?? 1000)
const CHAOS_MS = 60_000
const LIVENESS_LIMIT_MS = 30_000
// A verdict is false if its subject was running and reachable, with loss at most
// 10%, for this long before it: longer than the maximum suspicion timeout plus a
// probe round, so no legitimate suspicion could have started in a fault.
const QUIET_BEFORE_VERDICT_MS = 5_000

type Fault = 'crash' | 'restart' | 'pause' | 'resume' | 'partition' | 'heal' | 'loss'

function runSeed (seed: number, clocks?: { maxDrift: number }): void {
  const random = new SeededRandom(deriveSeed(seed, 77))
  const nodes = 6 + random.nextInt(7)
  const cluster = new SimCluster({ seed, nodes, trace: false, ...(clocks === undefined ? {} : { clocks }) })
  // When each node last stopped being running-and-reachable (ms).
  const lastDisturbed = new Map<PeerKey, number>()
  const disturb = (id: PeerKey): void => { lastDisturbed.set(id, cluster.nowMs) }
  let partitionedSince = -Infinity
  let heavyLossUntil = -Infinity
  const falseVerdicts: string[] = []
  const incarnations = new Map<PeerKey, number>()
  cluster.onEvent(({ atMs, node, event }) => {
    // Only a node's own verdicts (its suspicion timer ran out) are judged here; a
    // relayed verdict was judged when its accuser made it, possibly long before
    // (a frozen node reads its backlog when it resumes; a restarted node may
    // hear its previous life's accusations).
    if (event.type === 'suspicion-expired') {
      const quietSince = Math.max(lastDisturbed.get(event.id) ?? -Infinity, partitionedSince, heavyLossUntil)
      const subject = cluster.node(event.id)
      if (subject.state === 'running' && !cluster.network.partitioned && atMs - quietSince > QUIET_BEFORE_VERDICT_MS) {
        falseVerdicts.push(`${node} declared ${event.id} dead at ${atMs.toFixed(0)} ms (quiet since ${quietSince.toFixed(0)})`)
      }
    }
  })
  cluster.start()
  assert.ok(cluster.runUntil(() => cluster.running().length === nodes && cluster.converged(), 20_000, 10), 'initial convergence')

  // Chaos phase.
  while (cluster.nowMs < CHAOS_MS) {
    cluster.run(200 + random.nextInt(3_000))
    const ids = cluster.ids
    const id = ids[random.nextInt(ids.length)]
    const node = cluster.node(id)
    const fault: Fault = (['crash', 'restart', 'pause', 'resume', 'partition', 'heal', 'loss'] as const)[random.nextInt(7)]
    if (fault === 'crash' && node.state === 'running' && cluster.running().length > 3) { disturb(id); cluster.crash(id) }
    if (fault === 'restart' && node.state === 'crashed') { disturb(id); cluster.restart(id) }
    if (fault === 'pause' && node.state === 'running') { disturb(id); cluster.pause(id) }
    if (fault === 'resume' && node.state === 'paused') { disturb(id); cluster.resume(id) }
    if (fault === 'partition' && !cluster.network.partitioned) {
      const shuffled = random.shuffle([...ids])
      const cut = 1 + random.nextInt(ids.length - 1)
      cluster.partition([shuffled.slice(0, cut), shuffled.slice(cut)])
      partitionedSince = cluster.nowMs
    }
    if (fault === 'heal' && cluster.network.partitioned) { cluster.heal(); partitionedSince = cluster.nowMs }
    if (fault === 'loss') {
      const lossRate = random.nextInt(4) === 0 ? 0.3 : random.nextFloat() * 0.1
      cluster.setLink({ lossRate })
      if (lossRate > 0.1) heavyLossUntil = Infinity
      else if (heavyLossUntil === Infinity) heavyLossUntil = cluster.nowMs
    }
    for (const n of cluster.nodes) {
      const incarnation = n.core?.incarnation ?? n.diskIncarnation
      assert.ok(incarnation >= (incarnations.get(n.id) ?? 0), `${n.id} incarnation went backwards`)
      incarnations.set(n.id, incarnation)
    }
  }

  // Liveness phase: every fault heals; the cluster must converge. A suspicion
  // raised across the partition, or of a frozen node, may still run out just
  // after the heal (before the refutation arrives): those faults count until now.
  if (cluster.network.partitioned) partitionedSince = cluster.nowMs
  cluster.heal()
  cluster.setLink({ lossRate: 0 })
  for (const n of cluster.nodes) {
    if (n.state === 'paused') { disturb(n.id); cluster.resume(n.id) }
    if (n.state === 'crashed') { disturb(n.id); cluster.restart(n.id) }
  }
  const healedAt = cluster.nowMs
  const converged = cluster.runUntil(() => cluster.converged(), LIVENESS_LIMIT_MS, 10)
  assert.ok(converged, `${nodes} nodes did not converge within ${LIVENESS_LIMIT_MS} ms of healing`)
  assert.equal(falseVerdicts, [], 'dead verdicts about running, reachable members')
  assert.ok(cluster.nowMs - healedAt < LIVENESS_LIMIT_MS)
}

test(`${SEEDS} seeds from ${FIRST_SEED}: no false dead verdict, incarnations monotonic, convergence after healing`, () => {
  for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) withSeed(FILE, seed, (s) => { runSeed(s) })
})

// Every node on its own clock (SimOptions.clocks): 0-1 s at each start, and a
// rate within ±10% for each life; its probe periods and suspicion timeouts
// run on it.
const CLOCK_SEEDS = Math.ceil(SEEDS / 4)
test(`${CLOCK_SEEDS} seeds from ${FIRST_SEED}, every node on its own clock (rates within ±10%): the same checks`, () => {
  for (let seed = FIRST_SEED; seed < FIRST_SEED + CLOCK_SEEDS; seed++) withSeed(FILE, seed, (s) => { runSeed(s, { maxDrift: 0.1 }) })
})

test.run()
