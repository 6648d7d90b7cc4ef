// Seed sweep for sessions (sim/chaos.ts): small clusters, terminals appending
// while nodes crash and restart, freeze and resume, get partitioned and lose
// messages; then every fault heals and every terminal must finish. Checkers: no
// acknowledged delta lost, none duplicated, order kept, at most one owner
// acknowledging per session epoch, service resumed; in the shapes with readers,
// every read answered holds what was acknowledged before it was sent, nothing
// the final log lacks, and no less than a read answered before it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { runChaos } from '../../sim/chaos.ts'
import type { ChaosOptions } from '../../sim/chaos.ts'
import { sessionsProfile } from '../../agent/sessions/config.ts'

const FILE = 'test/sim/sessions-sweep.test.ts'

// A run's problems; a run that throws (the simulator's guard against a core
// woken at one time without end, sim/node.ts) is one.
function problemsOf (seed: number, options: Partial<ChaosOptions> = {}): { problems: string[]; nodes: number | null } {
  try {
    const result = runChaos(seed, options)
    return { problems: result.problems, nodes: result.nodes }
  } catch (error) {
    return { problems: [`the run threw: ${(error as Error).message}`], nodes: null }
  }
}
const SEEDS = Number(process.env.SEEDS ?? 200)
const FIRST_SEED = Number(process.env.SEED ?? 1)

test(`${SEEDS} seeds from ${FIRST_SEED}: nothing acknowledged lost or duplicated, order kept, one owner per epoch, service resumes`, () => {
  const failures: string[] = []
  for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
    const result = problemsOf(seed)
    if (result.problems.length > 0) failures.push(`SEED=${seed} (${result.nodes} nodes; replay: SEED=${seed} SEEDS=1 node ${FILE}):\n      ${result.problems.join('\n      ')}`)
  }
  assert.equal(failures, [], `${failures.length} of ${SEEDS} seeds failed`)
})

// Sessions going quiet and waking all through the chaos: quiet after 150 ms
// idle, less than the terminals' gaps between appends (50-150 ms) allow at
// times, so requests, beats and wake-ups interleave with the faults.
const QUICK_QUIET_SEEDS = Math.ceil(SEEDS / 2)
test(`${QUICK_QUIET_SEEDS} seeds from ${FIRST_SEED} with quietAfterMs 150: the same checks while sessions go quiet and wake between appends`, () => {
  const failures: string[] = []
  for (let seed = FIRST_SEED; seed < FIRST_SEED + QUICK_QUIET_SEEDS; seed++) {
    const result = problemsOf(seed, { sessions: { quietAfterMs: 150 } })
    if (result.problems.length > 0) failures.push(`SEED=${seed} quietAfterMs 150 (${result.nodes} nodes; replay: SEED=${seed} SEEDS=1 node ${FILE}):\n      ${result.problems.join('\n      ')}`)
  }
  assert.equal(failures, [], `${failures.length} of ${QUICK_QUIET_SEEDS} seeds failed`)
})

// Heavier shapes than the default, a few seeds each on every run (SEEDS / 4):
// the 3- and 5-terminal shapes found SEED=931 and SEED=2253 below, which the
// default sweep never reached. Longer sweeps of each: README, "Sessions".
const VARIANT_SEEDS = Math.ceil(SEEDS / 4)
const WAN_SESSIONS_WITH_READERS: Partial<ChaosOptions> = { chaosMs: 40_000, livenessLimitMs: 120_000, readEveryMs: 300, close: true, sessions: sessionsProfile('wan') }
const OWN_CLOCKS: Partial<ChaosOptions> = { clocks: { maxDrift: 0.1 } }
// Disks that stall (sim/cluster.ts, SimOptions.slowFsyncs): 5% of commits take
// up to 800 ms more, longer than ownerTimeoutMs on lan; the agent's membership
// carries on meanwhile.
const SLOW_DISKS: Partial<ChaosOptions> = { slowFsyncs: { share: 0.05, maxMs: 800 } }
const VARIANTS: Array<{ name: string; options: Partial<ChaosOptions> }> = [
  { name: '3 terminals, 4-8 nodes, 30 s of chaos', options: { terminals: 3, appends: 40, chaosMs: 30_000, minNodes: 4, maxNodes: 8 } },
  { name: '5 terminals, 5-9 nodes, 25 s of chaos', options: { terminals: 5, appends: 30, chaosMs: 25_000, minNodes: 5, maxNodes: 9 } },
  { name: '8 terminals, 3-5 nodes, quietAfterMs 150', options: { terminals: 8, appends: 30, chaosMs: 30_000, minNodes: 3, maxNodes: 5, sessions: { quietAfterMs: 150 } } },
  { name: '4 terminals, 3-4 nodes, loss up to 30%', options: { terminals: 4, appends: 40, chaosMs: 40_000, minNodes: 3, maxNodes: 4, maxLossRate: 0.3 } },
  // Groups of other sizes, and the other write concern (README, "Sessions").
  { name: 'replicas 1 (two members, and a witness when one is lost), 3-6 nodes', options: { minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } } },
  { name: 'replicas 3, 3 terminals, 5-8 nodes', options: { terminals: 3, minNodes: 5, maxNodes: 8, sessions: { replicas: 3 } } },
  { name: 'write concern majority, replicas 3, 3 terminals, 5-8 nodes', options: { terminals: 3, minNodes: 5, maxNodes: 8, sessions: { replicas: 3, writeConcern: 'majority' } } },
  // Snapshots all through the chaos (at the defaults a sweep's 30 appends never
  // reach one): compaction, snapshots installed on members behind, elections
  // over compacted logs.
  { name: 'a snapshot every 5 entries', options: { sessions: { snapshotEveryEntries: 5, snapshotLogRatio: 0 } } },
  // Reads all through the chaos, to the owner and to any agent (an old owner
  // cut off, a frozen one, a standby): the owner's lease, awake and quiet.
  { name: 'a GET about every 150 ms per terminal', options: { readEveryMs: 150 } },
  { name: 'a GET about every 150 ms per terminal, quietAfterMs 150', options: { readEveryMs: 150, sessions: { quietAfterMs: 150 } } },
  // Each terminal closes its session after its appends, in the chaos: no read
  // sent after the close was acknowledged may be served, and no running agent
  // may still own the session once everything healed.
  { name: 'every terminal closes its session after its appends, with readers', options: { readEveryMs: 150, close: true } },
  { name: 'closes with readers, replicas 1 (a witness in every group that loses a member), 3-6 nodes', options: { readEveryMs: 150, close: true, minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } } },
  // Session timings slower than the membership's: its verdict on a cut-off
  // owner comes well within the promise behind the owner's lease (SEED=296).
  { name: 'the wan session timings (ownerTimeoutMs 2.5 s) on the lan membership, readers and closes, 40 s of chaos', options: WAN_SESSIONS_WITH_READERS },
  // Every agent on its own clock (sim/cluster.ts, SimOptions.clocks): 0-1 s at
  // each start, and for each life a rate within ±10% (the lease's margin is
  // 20%: test/sim/session-clocks.test.ts).
  { name: 'every agent on its own clock (rates within ±10%), readers and closes', options: { ...OWN_CLOCKS, readEveryMs: 150, close: true } },
  { name: 'the wan timings, sessions and membership, every agent on its own clock, readers and closes, 40 s of chaos', options: { ...WAN_SESSIONS_WITH_READERS, ...OWN_CLOCKS, membership: 'wan' } },
  { name: 'disks that stall (5% of commits up to 800 ms longer), readers and closes', options: { ...SLOW_DISKS, readEveryMs: 150, close: true } },
  { name: 'disks that stall, readers and closes, replicas 1, 3-6 nodes', options: { ...SLOW_DISKS, readEveryMs: 150, close: true, minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } } },
  { name: 'disks that stall, quietAfterMs 150, readers', options: { ...SLOW_DISKS, readEveryMs: 150, sessions: { quietAfterMs: 150 } } },
  { name: 'disks that stall, a snapshot every 5 entries, readers', options: { ...SLOW_DISKS, readEveryMs: 150, sessions: { snapshotEveryEntries: 5, snapshotLogRatio: 0 } } },
  // Gray failures (sim/chaos.ts, slowNodes): a node whose every message takes
  // up to 1.5 s longer each way, alive to the membership's patient probes.
  // Disks that turn slow for good (a worn SD card, SimCluster.slowDisk): their
  // agents hand over the sessions they own (agent/sessions/resign.ts).
  { name: 'disks that turn slow for good (300 ms per fsync), readers and closes', options: { slowDisks: { fsyncMs: 300 }, readEveryMs: 150, close: true } },
  { name: 'disks that turn slow for good, readers, replicas 1, 3-6 nodes', options: { slowDisks: { fsyncMs: 300 }, readEveryMs: 150, minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } } },
  { name: 'nodes that turn slow (up to 1.5 s more each way), readers and closes', options: { slowNodes: { maxExtraMs: 1_500 }, readEveryMs: 150, close: true } },
  // A node whose service cannot apply for a while (sim/flaky-services.ts: a
  // deployed service's worker loading or timed out there): its copies stop at
  // the entry and catch up later, never skip it (agent/sessions/apply.ts).
  // Skipping instead fails 21 of 100 seeds with readers (stale reads).
  { name: 'services that cannot apply on a node for a while, readers and closes', options: { flakyServices: true, readEveryMs: 150, close: true } },
  { name: 'services that cannot apply on a node for a while, readers, replicas 1, 3-6 nodes', options: { flakyServices: true, readEveryMs: 150, minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } } },
  // Everything at once: own clocks, disks that stall, slow nodes.
  { name: 'own clocks, disks that stall and slow nodes at once, readers and closes', options: { ...OWN_CLOCKS, ...SLOW_DISKS, slowNodes: { maxExtraMs: 1_500 }, readEveryMs: 150, close: true } },
  { name: 'own clocks, disks that stall or turn slow, slow nodes, readers and closes', options: { ...OWN_CLOCKS, ...SLOW_DISKS, slowDisks: { fsyncMs: 300 }, slowNodes: { maxExtraMs: 1_500 }, readEveryMs: 150, close: true } }
]
for (const { name, options } of VARIANTS) {
  test(`${VARIANT_SEEDS} seeds from ${FIRST_SEED}, ${name}: the same checks`, () => {
    const failures: string[] = []
    for (let seed = FIRST_SEED; seed < FIRST_SEED + VARIANT_SEEDS; seed++) {
      const result = problemsOf(seed, options)
      if (result.problems.length > 0) failures.push(`SEED=${seed} ${JSON.stringify(options)} (${result.nodes} nodes):\n      ${result.problems.join('\n      ')}`)
    }
    assert.equal(failures, [], `${failures.length} of ${VARIANT_SEEDS} seeds failed`)
  })
}

// The read checker is not blind: an owner that serves reads without its lease
// (a fault planted for this test) is caught within a few seeds (SEED=9 is the
// first, of 30 seeds 5 fail). So is a lease twice too long, more rarely (README,
// "Sessions").
test('an owner serving reads without its lease: the read checker reports stale reads', () => {
  let caught: string | null = null
  for (let seed = 1; seed <= 30 && caught === null; seed++) {
    const result = runChaos(seed, { readEveryMs: 150, sessions: { plantedFault: 'read-without-lease' } })
    caught = result.problems.find((problem) => problem.includes('stale read')) ?? null
  }
  assert.ok(caught !== null, 'no stale read reported in 30 seeds with the lease check removed')
})

const EVERYTHING_R1: Partial<ChaosOptions> = { ...OWN_CLOCKS, ...SLOW_DISKS, slowNodes: { maxExtraMs: 1_500 }, readEveryMs: 150, close: true, minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } }

// Seeds that once lost acknowledged deltas or never served again, each with the
// options it ran with: replayed on every run, whatever SEED and SEEDS say.
// - 30508: a candidate frozen with vote requests out counted, once resumed, a
//   grant whose tail started before its commit index, and won without it.
// - 931 (3 terminals, 4-8 nodes, 30 s of chaos): a grant from a member removed
//   since it was asked made a majority of a group of two.
// - 2253 (5 terminals, 5-9 nodes, 25 s of chaos; liveness, nothing lost): an
//   owner frozen through a takeover dropped the new owner from its group as
//   soon as it resumed, and two uncommitted group changes refused each other's
//   candidates for good.
// - 2528 and 1797 (replicas 3, 3 terminals, 5-8 nodes): a candidate counted its
//   votes against its own stale group, not the group of the log a grant handed
//   over, and won with a majority that missed the one that had acknowledged
//   deltas (1797 failed only once the fix for 168 below changed its course).
// - 168 (replicas 1, 3-6 nodes; liveness, nothing lost): a copy dropped from
//   its group answered its terminal from its stale view, which named only
//   itself, and the terminal asked it again for 10 minutes.
// - 549 (5 terminals, 5-9 nodes, write concern majority): an owner frozen with
//   acks held behind its fsync stepped them at SIGCONT at a time from before
//   the freeze, judged its lease valid by it, and acknowledged in epoch 1 after
//   epoch 2 had.
// - 145 (closes, with readers): the owner, cut off while another was elected
//   and closed the session, came back and took its members' "nothing held"
//   for acks: its lease held, and it served reads of the closed session.
// - 517 (closes, with readers): on the fix for 145, a member that had never
//   acked that owner was sent the session from its create entry, took it as a
//   new one, and gave the old owner its majority back: it acknowledged in
//   epoch 2 after epoch 3 had. Members now remember closed sessions.
// - 484 and 1675 (closes, with readers, replicas 1; liveness): a witness that
//   missed the close, and one restarted after it (restored as a standby), kept
//   their copies for good, and the session answered "changing owner".
// - 171 (closes, with readers; liveness): a close committed by a takeover, its
//   answer lost; a restarted member's copy, given up, still counted as
//   "changing owner", and the terminal's close got 503 for ten minutes.
// - 296 (the wan session timings on the lan membership, readers and closes):
//   the membership declared the cut-off owner dead 840 ms after the cut, and
//   a standby voted at once, inside the 2.5 s promise behind the owner's
//   lease; the old owner served a read 1.7 s after the cut that lacked four
//   acknowledged deltas. The promise now holds whatever the membership says.
//   407, the same shape, failed the same way.
// - 3 and 57 (every agent on its own clock, rates within ±1%): fractional
//   times. A standby asked to be woken at its last contact + ownerTimeoutMs,
//   and found it not due then (the difference came a rounding short); so did
//   a quiet owner's check of its members (57). The simulator woke it at that
//   time without end.
// - 409 (slow disks, readers and closes, replicas 1) and 547 (slow disks up to
//   2 s on 3% of commits, own clocks, readers and closes): a member that had
//   closed the session restarted and had forgotten the close (it was kept in
//   memory only); the owner of an earlier epoch, cut off through the close,
//   sent it the session, it took it as new, and that owner had its majority
//   again: it served the closed session's stale state for good. Closes are
//   now stored (agent/sessions/closed.ts).
// - 283 (slow disks up to 2 s on 3% of commits, readers and closes) and 1034
//   (slow disks, quietAfterMs 150, readers): an owner's 'acknowledged' event
//   waited for a stalled fsync (the answer it records had left at once, or
//   waited too, with a snapshot in the step), so the checker saw epoch 1
//   acknowledge after epoch 2 had. The owner had decided before epoch 2 began,
//   and its answer's entries were committed: the checker now judges acks in
//   the order of the steps that made them (sim/node.ts, sim/checkers.ts).
// - 655 and 386 (own clocks, disks that stall and slow nodes at once, readers
//   and closes, replicas 1; liveness): an agent back from a freeze, holding the
//   session's owner dead, asked only the alive agents about a terminal's
//   close, heard "not held" from a member dropped from the group, and answered
//   "no such session" for a session its own copy showed existed. It now asks
//   every member its copy names (agent/sessions/remote.ts, locate).
// - 2785 (the same options; liveness): a standby held the change that dropped
//   it from the group, never told it committed; the owner then closed the
//   session and forgot it. The standby could not stand and answered "held,
//   owner unknown" to every agent looking for the session: the terminal's
//   close got 503 for good. It now asks the members, as a silent witness does
//   (agent/sessions/replica.ts, witnessProbeAtMs).
const REGRESSIONS: Array<{ seed: number; options: Partial<ChaosOptions> }> = [
  { seed: 30508, options: {} },
  { seed: 30508, options: { sessions: { quietAfterMs: 150 } } },
  { seed: 931, options: { terminals: 3, appends: 40, chaosMs: 30_000, minNodes: 4, maxNodes: 8 } },
  { seed: 2253, options: { terminals: 5, appends: 30, chaosMs: 25_000, minNodes: 5, maxNodes: 9 } },
  { seed: 2528, options: { terminals: 3, minNodes: 5, maxNodes: 8, sessions: { replicas: 3 } } },
  { seed: 1797, options: { terminals: 3, minNodes: 5, maxNodes: 8, sessions: { replicas: 3 } } },
  { seed: 168, options: { minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } } },
  { seed: 549, options: { terminals: 5, appends: 30, chaosMs: 25_000, minNodes: 5, maxNodes: 9, sessions: { writeConcern: 'majority' } } },
  { seed: 145, options: { readEveryMs: 150, close: true } },
  { seed: 517, options: { readEveryMs: 150, close: true } },
  { seed: 171, options: { readEveryMs: 150, close: true } },
  { seed: 484, options: { readEveryMs: 150, close: true, minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } } },
  { seed: 1675, options: { readEveryMs: 150, close: true, minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } } },
  { seed: 296, options: WAN_SESSIONS_WITH_READERS },
  { seed: 407, options: WAN_SESSIONS_WITH_READERS },
  { seed: 3, options: { clocks: { maxDrift: 0.01 } } },
  { seed: 57, options: { clocks: { maxDrift: 0.01 } } },
  { seed: 409, options: { ...SLOW_DISKS, readEveryMs: 150, close: true, minNodes: 3, maxNodes: 6, sessions: { replicas: 1 } } },
  { seed: 547, options: { readEveryMs: 200, close: true, clocks: { maxDrift: 0.1 }, slowFsyncs: { share: 0.03, maxMs: 2_000 } } },
  { seed: 283, options: { readEveryMs: 200, close: true, slowFsyncs: { share: 0.03, maxMs: 2_000 } } },
  { seed: 1034, options: { ...SLOW_DISKS, readEveryMs: 150, sessions: { quietAfterMs: 150 } } },
  { seed: 655, options: EVERYTHING_R1 },
  { seed: 386, options: EVERYTHING_R1 },
  { seed: 2785, options: EVERYTHING_R1 }
]
test(`${REGRESSIONS.length} seeds that once failed: the same checks`, () => {
  const failures: string[] = []
  for (const { seed, options } of REGRESSIONS) {
    const result = problemsOf(seed, options)
    if (result.problems.length > 0) failures.push(`SEED=${seed} ${JSON.stringify(options)} (${result.nodes} nodes):\n      ${result.problems.join('\n      ')}`)
  }
  assert.equal(failures, [], `${failures.length} of ${REGRESSIONS.length} seeds failed`)
})

test.run()
