// The shared probe schedule (agent/membership/ring.ts, detector.ts): in every
// probe period each live member is probed by exactly one other, so a member
// that freezes is probed, and suspected, within one period. SWIM's random or
// shuffled round-robin choice probes a member once per period only on average;
// the wait for the first probe then has an exponential tail, and it was most of
// the time to a verdict after a freeze.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeededRandom, deriveSeed } from '../../agent/core/random.ts'
import { membershipProfile } from '../../agent/membership/config.ts'
import { suspicionBoundsMs } from '../../agent/membership/math.ts'
import { SimCluster } from '../../sim/cluster.ts'
import { seedFor, startConverged, watchStatus, withSeed } from './helpers.ts'

const FILE = 'test/sim/probe-schedule.test.ts'
const lan = membershipProfile('lan')
const PERIOD_MS = lan.probeIntervalMs
const SEEDS = Number(process.env.SEEDS ?? 40)
const FIRST_SEED = Number(process.env.SEED ?? 4000)

test('at rest, every member is probed exactly once in every probe period', () => withSeed(FILE, seedFor(31), (seed) => {
  const nodes = 9
  const cluster = new SimCluster({ seed, nodes })
  startConverged(cluster)
  cluster.run(10_000)
  const firstSlot = Math.ceil(cluster.nowMs / PERIOD_MS)
  const periods = 3 * (nodes - 1)
  // target → slot → probes answered in that slot (acks come back within ms).
  const probes = new Map<string, Map<number, number>>()
  cluster.onEvent(({ atMs, event }) => {
    if (event.type !== 'probe' || event.result !== 'ack') return
    const slot = Math.floor(atMs / PERIOD_MS)
    const bySlot = probes.get(event.target) ?? new Map<number, number>()
    probes.set(event.target, bySlot)
    bySlot.set(slot, (bySlot.get(slot) ?? 0) + 1)
  })
  cluster.run((firstSlot + periods) * PERIOD_MS - cluster.nowMs)
  for (const node of cluster.nodes) {
    for (let slot = firstSlot; slot < firstSlot + periods; slot++) {
      assert.is(probes.get(node.id)?.get(slot) ?? 0, 1, `${node.id} in period ${slot}`)
    }
  }
}))

// Freezes `victim` and checks the schedule's bound: suspected within one
// period and the probe, dead at every survivor once the suspicion has run its
// minimum.
function freezeIsSuspectedWithinOnePeriod (cluster: SimCluster, victim: string, label: string): void {
  const survivors = cluster.nodes.length - 1
  const suspect = watchStatus(cluster, 'suspect')
  const dead = watchStatus(cluster, 'dead')
  const frozenAt = cluster.nowMs
  cluster.pause(victim)
  cluster.runUntil(() => (dead.get(victim)?.size ?? 0) === survivors, 20_000)
  const verdicts = [...(dead.get(victim)?.values() ?? [])].map((t) => t - frozenAt)
  assert.is(verdicts.length, survivors, `${label}: every survivor reached a verdict`)
  // One period to the probe; the probe itself fails once its direct
  // timeout (100 ms) and the intermediaries' nacks (at 80 ms) are in.
  const suspectedAfter = Math.min(...(suspect.get(victim)?.values() ?? [])) - frozenAt
  const probeMs = lan.probeTimeoutMs + 200
  assert.ok(suspectedAfter <= PERIOD_MS + probeMs, `${label}: first suspected after ${suspectedAfter.toFixed(0)} ms`)
  // Then the suspicion at its minimum: the other members confirm it at once.
  const { minMs } = suspicionBoundsMs(survivors, lan.suspicionMinMs, lan.suspicionMaxTimeoutMult)
  const last = Math.max(...verdicts)
  assert.ok(last <= PERIOD_MS + probeMs + minMs + 300, `${label}: last verdict after ${last.toFixed(0)} ms`)
}

test(`a freeze at any moment is suspected within one probe period, and dead everywhere soon after (${SEEDS} seeds)`, () => {
  for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
    withSeed(FILE, seed, () => {
      const random = new SeededRandom(deriveSeed(seed, 5))
      const nodes = 4 + random.nextInt(13)
      const cluster = new SimCluster({ seed, nodes })
      startConverged(cluster)
      // A round of the schedule first (N − 1 periods), so that every member has
      // probed every other once: a first probe also waits for the connection
      // (firstContactGraceMs). Then a moment anywhere in a period.
      cluster.run(nodes * PERIOD_MS + random.nextInt(PERIOD_MS))
      freezeIsSuspectedWithinOnePeriod(cluster, cluster.nodes[random.nextInt(nodes)].id, `${nodes} nodes`)
    })
  }
})

// The same bound just after a restart, with one to three other members' event
// loops stalled for 250–650 ms (on one box, a restarting agent's CPU takes
// other agents' turns): their local health goes up, and the restarted agent is
// connected to nobody. Before, a member in poor health sat out probe periods
// (Lifeguard as memberlist runs it), leaving its scheduled targets unprobed,
// and the restarted agent's first probe of each member waited
// firstContactGraceMs for the connection: 48 of 1,000 seeds exceeded this
// bound, the last verdict up to 3.4 s after the freeze.
test(`a freeze just after a restart and stalls elsewhere is still suspected within one probe period (${SEEDS * 5} seeds)`, () => {
  for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS * 5; seed++) {
    withSeed(FILE, seed, () => {
      const random = new SeededRandom(deriveSeed(seed, 6))
      const nodes = 4 + random.nextInt(13)
      const cluster = new SimCluster({ seed, nodes })
      startConverged(cluster)
      cluster.run(nodes * PERIOD_MS + random.nextInt(PERIOD_MS))
      const restarted = cluster.nodes[random.nextInt(nodes)].id
      cluster.crash(restarted)
      cluster.run(200 + random.nextInt(2_000))
      cluster.restart(restarted)
      cluster.run(500 + random.nextInt(1_500))
      const stalled = random.shuffle(cluster.ids.filter((id) => id !== restarted)).slice(0, 1 + random.nextInt(Math.min(3, nodes - 3)))
      for (const id of stalled) cluster.pause(id)
      cluster.run(250 + random.nextInt(400))
      for (const id of stalled) cluster.resume(id)
      cluster.run(random.nextInt(2_000))
      const others = cluster.ids.filter((id) => id !== restarted && !stalled.includes(id))
      freezeIsSuspectedWithinOnePeriod(cluster, others[random.nextInt(others.length)], `${nodes} nodes, ${restarted} restarted, ${stalled.join(' ')} stalled`)
    })
  }
})

test.run()
