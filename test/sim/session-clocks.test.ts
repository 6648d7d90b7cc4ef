// Every agent on its own clock (SimOptions.clocks): a real agent's times are
// its process's performance.now(), which starts near 0 at each start and runs
// at its machine's rate. Nothing may compare one agent's times with another's,
// and the owner's lease must hold while clocks run at different rates within
// the margin it keeps: the owner counts on 0.8 of the ownerTimeoutMs its
// members promise (LEASE_SAFETY), so an owner's clock may run up to 20% slower
// than a member's. Beyond the margin the read checker sees stale reads, which
// shows the scenario can fail.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { checkOwners, checkTerminal, recordOwnerAcks } from '../../sim/checkers.ts'
import { seedFor, withSeed } from './helpers.ts'
import { finish, openTerminal, pollReads, replicaOf, sessionCluster } from './session-helpers.ts'

const FILE = 'test/sim/session-clocks.test.ts'

test('each agent reads its own clock: near 0 at its start, at its own rate, restarted from near 0', () => withSeed(FILE, seedFor(71), (seed) => {
  const cluster = sessionCluster(seed, 5, { clocks: { maxDrift: 0.1 } })
  const start = cluster.nodes.map((node) => node.nowMs)
  const at = cluster.nowMs
  cluster.run(20_000)
  const rates = cluster.nodes.map((node, i) => (node.nowMs - start[i]) / (cluster.nowMs - at))
  for (const rate of rates) assert.ok(rate >= 0.9 && rate <= 1.1, `rate ${rate} within ±10%`)
  assert.ok(new Set(rates.map((rate) => rate.toFixed(6))).size === rates.length, `every agent at its own rate: ${rates.join(', ')}`)
  assert.ok(cluster.converged(), 'the membership converged all the same')
  const id = cluster.ids[3]
  cluster.crash(id)
  cluster.run(2_000)
  cluster.restart(id)
  assert.ok(cluster.node(id).nowMs < 1_000, `restarted, it reads ${cluster.node(id).nowMs} ms, while virtual time is ${cluster.nowMs}`)
  assert.ok(cluster.runUntil(() => cluster.converged(), 20_000, 10), 'and the restarted agent rejoined')
}))

// Three agents, one session (awake, or gone quiet); from the moment the owner
// is cut off from its standbys, its clock runs at `ownerRate` and theirs at
// `standbyRate`, while every agent is read every 4 ms and the terminal, moved
// to a new owner, appends 40 deltas. (The rates change at the cut, not before:
// an owner whose clock ran far slower beat too rarely for its session to stay
// quiet.)
// Returns the stale reads and what the other checkers found.
function cutOffOwner (seed: number, ownerRate: number, standbyRate: number, quietAfterMs: number): { stale: string[]; problems: string[]; reads: number } {
  const cluster = sessionCluster(seed, 3, { clocks: { maxDrift: 0 }, sessionsPatch: { quietAfterMs } })
  const acks = recordOwnerAcks(cluster)
  const t = openTerminal(cluster, 'term', cluster.ids[0])
  t.appendMany(5, 5)
  assert.ok(finish(cluster, [t], 5, 10_000), 'the first appends acknowledged')
  const owner = t.owner as string
  cluster.run(quietAfterMs === 0 ? 1_000 : quietAfterMs + 2_000)
  const quiet = t.queue.every((member) => replicaOf(cluster, member, t.sessionId)?.quiet != null)
  assert.is(quiet, quietAfterMs > 0, quietAfterMs > 0 ? 'the session went quiet before the cut' : 'the session is awake')
  for (const node of cluster.nodes) node.setClock(node.nowMs, node.id === owner ? ownerRate : standbyRate)
  cluster.partition([[owner], cluster.ids.filter((id) => id !== owner)])
  const { stale, reads } = pollReads(cluster, t, 45)
  t.appendMany(40, 5)
  assert.ok(finish(cluster, [t], 45, 30_000), 'every append acknowledged by a new owner')
  cluster.heal()
  cluster.run(2_000)
  return { stale, problems: [...checkOwners(acks), ...checkTerminal(cluster, t)], reads: reads() }
}

const SEEDS = Number(process.env.SEEDS ?? 10)

// quietAfterMs 0: never quiet.
for (const quietAfterMs of [0, 150]) {
  const kind = quietAfterMs === 0 ? 'awake' : 'quiet'
  test(`${SEEDS} seeds, a ${kind} session: its owner's clock 0.9×, its standbys' 1.1× (within the lease's margin), the owner cut off: no stale read, nothing lost`, () => {
    for (let seed = seedFor(1); seed < seedFor(1) + SEEDS; seed++) {
      withSeed(FILE, seed, () => {
        const { stale, problems, reads } = cutOffOwner(seed, 0.9, 1.1, quietAfterMs)
        assert.ok(reads > 50, `${reads} reads answered`)
        assert.equal(stale, [])
        assert.equal(problems, [])
      })
    }
  })

  // The scenario is not blind: with the owner's clock at 0.2× and its
  // standbys' at 1.8× (nine times as fast, far beyond the margin), the old
  // owner's lease outlasts the promises behind it and it serves reads that lack
  // what the new owner acknowledged, in 20 seeds of 20, awake or quiet. Stale
  // reads begin between 0.6×/1.4× (none in 20 seeds) and 0.5×/1.5× (3 and 4
  // in 20): an election adds its own delays to the promise (the diagnosis, the
  // stagger, a vote's round trip) before a new owner acknowledges anything.
  test(`a ${kind} session, its owner's clock 0.2× and its standbys' 1.8× (beyond the margin): the read checker sees stale reads`, () => {
    let caught = 0
    for (let seed = seedFor(1); seed < seedFor(1) + 5; seed++) if (cutOffOwner(seed, 0.2, 1.8, quietAfterMs).stale.length > 0) caught++
    assert.ok(caught > 0, 'no stale read in 5 seeds with clocks nine times apart')
  })
}

test.run()
