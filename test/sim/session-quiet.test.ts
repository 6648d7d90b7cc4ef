// Quiet sessions (agent/sessions/quiet.ts) in virtual time: idle sessions stop
// their per-session heartbeats and are kept by one beat per pair of agents; a
// write wakes them; an owner killed, frozen or cut off while its sessions are
// quiet is taken over as fast as an awake one, with nothing acknowledged lost
// and no stale read.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { checkOwners, checkTerminal, ownerState, recordOwnerAcks } from '../../sim/checkers.ts'
import { runChaos } from '../../sim/chaos.ts'
import type { SimCluster } from '../../sim/cluster.ts'
import type { SimTerminal } from '../../sim/terminal.ts'
import { seedFor, withSeed } from './helpers.ts'
import { finish, openTerminal, pollReads, replicaOf, sessionCluster } from './session-helpers.ts'

const FILE = 'test/sim/session-quiet.test.ts'

function sentIn (cluster: SimCluster, ms: number): Map<string, number> {
  const before = new Map(cluster.sent)
  cluster.run(ms)
  return new Map([...cluster.sent].map(([type, n]) => [type, n - (before.get(type) ?? 0)]))
}

function quietEverywhere (cluster: SimCluster, terminal: SimTerminal): boolean {
  return terminal.queue.every((member) => replicaOf(cluster, member, terminal.sessionId)?.quiet != null)
}

// Five nodes, `count` terminals that wrote a few deltas and then went idle
// until every copy of their sessions is quiet.
function idleCluster (seed: number, count: number, nodes = 5): { cluster: SimCluster; terminals: SimTerminal[] } {
  const cluster = sessionCluster(seed, nodes, { trace: true })
  const terminals = Array.from({ length: count }, (_, i) => openTerminal(cluster, `t${i}`, `n${i % nodes}`))
  for (const t of terminals) t.appendMany(5, 10)
  assert.ok(finish(cluster, terminals, 5))
  assert.ok(cluster.runUntil(() => terminals.every((t) => quietEverywhere(cluster, t)), 5_000), 'every copy goes quiet within 5 s of the last write')
  return { cluster, terminals }
}

test('idle sessions go quiet: no frame per session, one beat per pair of agents; a write wakes its session at once and it goes quiet again', () => withSeed(FILE, seedFor(51), (seed) => {
  const { cluster, terminals } = idleCluster(seed, 20)
  const quiet = sentIn(cluster, 2_000)
  assert.is(quiet.get('session-append') ?? 0, 0, 'no heartbeat of any session in 2 s')
  assert.is(quiet.get('session-append-ack') ?? 0, 0)
  const beats = quiet.get('session-beat') ?? 0
  // 5 agents, at most 4 peers each, one beat per 100 ms: ≤ 400 in 2 s
  // (20 sessions awake sent 20 × 2 appends per 100 ms: 800 in 2 s).
  assert.ok(beats > 0 && beats <= 400, `${beats} beats in 2 s`)
  assert.is(quiet.get('session-beat-ack'), beats, 'every beat answered')

  const t = terminals[0]
  const at = cluster.nowMs
  let acked = false
  t.append((ok) => { acked = ok })
  assert.ok(cluster.runUntil(() => acked, 1_000), 'the write is acknowledged')
  assert.ok(cluster.nowMs - at < 50, `acknowledged ${(cluster.nowMs - at).toFixed(1)} ms after it was sent`)
  assert.is(replicaOf(cluster, t.owner as string, t.sessionId)?.quiet, null, 'its session woke')
  assert.ok(quietEverywhere(cluster, terminals[1]), 'the others stay quiet')
  assert.ok(cluster.runUntil(() => quietEverywhere(cluster, t), 5_000), 'and it goes quiet again')
  assert.equal(checkTerminal(cluster, t), [])
}))

test('quietAfterMs 0: sessions never go quiet', () => withSeed(FILE, seedFor(52), (seed) => {
  const cluster = sessionCluster(seed, 5, { sessionsPatch: { quietAfterMs: 0 } })
  const t = openTerminal(cluster, 't0', 'n0')
  t.appendMany(3, 10)
  assert.ok(finish(cluster, [t], 3))
  const sent = sentIn(cluster, 3_000)
  assert.is(sent.get('session-quiesce') ?? 0, 0)
  assert.is(sent.get('session-beat') ?? 0, 0)
  assert.ok((sent.get('session-append') ?? 0) >= 50, 'heartbeats go on')
}))

test('owner SIGKILL while its sessions are quiet: a standby takes over within 1 s, every acknowledged delta survives', () => withSeed(FILE, seedFor(53), (seed) => {
  const { cluster, terminals } = idleCluster(seed, 6)
  const acks = recordOwnerAcks(cluster)
  const t = terminals[0]
  const owner = t.owner as string
  const killedAt = cluster.nowMs
  cluster.crash(owner)
  t.appendMany(20, 10)
  assert.ok(finish(cluster, [t], 25))
  assert.is(t.failed, 0, t.errors.join('; '))
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, t), [])
  assert.is.not(ownerState(cluster, t.sessionId)?.owner, owner)
  const takeover = t.takeovers[0] - killedAt
  assert.ok(takeover < 1_000, `first acknowledgement by the new owner ${takeover.toFixed(0)} ms after the kill`)
}))

test('owner frozen while its sessions are quiet: taken over as fast as an awake one; back, the old owner demotes and catches up', () => withSeed(FILE, seedFor(54), (seed) => {
  const { cluster, terminals } = idleCluster(seed, 6)
  const acks = recordOwnerAcks(cluster)
  const t = terminals[0]
  const owner = t.owner as string
  const frozenAt = cluster.nowMs
  cluster.pause(owner)
  t.appendMany(20, 10)
  cluster.run(2_000)
  cluster.resume(owner)
  assert.ok(finish(cluster, [t], 25))
  cluster.run(1_000)
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, t), [])
  // The sessions tests' bound for an owner frozen while awake.
  assert.ok(t.takeovers[0] - frozenAt < 2_000, `takeover seen ${(t.takeovers[0] - frozenAt).toFixed(0)} ms after the freeze`)
  assert.ok(cluster.trace.some((e) => e.node === owner && e.event.type === 'demoted' && e.event.sessionId === t.sessionId), 'the returning owner demoted itself')
  const old = replicaOf(cluster, owner, t.sessionId)
  assert.is(old?.role, 'standby')
  assert.is(old?.commitIndex, ownerState(cluster, t.sessionId)?.commitIndex, 'and caught up')
}))

test('a member restarted while quiet: the owner sees its new token, wakes the session, and it goes quiet again', () => withSeed(FILE, seedFor(55), (seed) => {
  const { cluster, terminals } = idleCluster(seed, 4)
  const t = terminals[0]
  const owner = t.owner as string
  const standby = t.queue.find((m) => m !== owner) as string
  cluster.crash(standby)
  cluster.restart(standby)
  assert.ok(cluster.runUntil(() => replicaOf(cluster, owner, t.sessionId)?.quiet === null, 3_000), 'the owner woke the session')
  assert.ok(cluster.runUntil(() => quietEverywhere(cluster, t), 10_000), 'quiet again, the restarted member included')
  let acked = false
  t.append((ok) => { acked = ok })
  assert.ok(cluster.runUntil(() => acked, 2_000))
  assert.equal(checkTerminal(cluster, t), [])
}))

test('reads while quiet are served on the beats\' lease without waking; a quiet owner cut off from its group serves no stale read', () => withSeed(FILE, seedFor(56), (seed) => {
  const { cluster, terminals } = idleCluster(seed, 4)
  const acks = recordOwnerAcks(cluster)
  const t = terminals[0]
  const owner = t.owner as string
  let served = 0
  for (let i = 0; i < 5; i++) {
    cluster.request(owner, { type: 'get', sessionId: t.sessionId, tokenHash: t.tokenHash }, (outcome) => { if (outcome.status === 200) served++ })
    cluster.run(300)
  }
  assert.is(served, 5, 'reads at the quiet owner answered')
  assert.ok(quietEverywhere(cluster, t), 'still quiet after reads')

  const rest = cluster.ids.filter((id) => id !== owner)
  cluster.partition([[owner], rest])
  const { stale, reads } = pollReads(cluster, t, 45)
  t.appendMany(40, 5)
  assert.ok(finish(cluster, [t], 45, 30_000))
  cluster.heal()
  cluster.run(2_000)
  assert.ok(reads() > 50, `${reads()} reads answered`)
  assert.equal(stale, [])
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, t), [])
}))

// After chaos, once everything healed, every session's group goes quiet again
// within a few seconds. A member that left one quiesce request unanswered (cut
// off, or killed, as it was sent) used to be left alone for a minute, and with
// it every session it shared with that owner: 39 of the first 200 seeds of
// this sweep still had a group awake 20 s after healing.
const QUIET_AGAIN_SEEDS = Number(process.env.SEEDS ?? 50)
const QUIET_AGAIN_WITHIN_MS = 8_000
test(`${QUIET_AGAIN_SEEDS} chaos seeds with quietAfterMs 150: healed, every session's current group is quiet within ${QUIET_AGAIN_WITHIN_MS} ms`, () => {
  const awake: string[] = []
  const first = Number(process.env.SEED ?? 1)
  for (let seed = first; seed < first + QUIET_AGAIN_SEEDS; seed++) {
    const result = runChaos(seed, { sessions: { quietAfterMs: 150 } })
    assert.equal(result.problems, [], `SEED=${seed}`)
    const cluster = result.cluster
    if (!cluster.runUntil(() => awakeCopies(cluster).length === 0, QUIET_AGAIN_WITHIN_MS, 10)) awake.push(`SEED=${seed} (replay: SEED=${seed} SEEDS=1 node ${FILE}): awake ${awakeCopies(cluster).join(', ')}`)
  }
  assert.equal(awake, [], `${awake.length} of ${QUIET_AGAIN_SEEDS} seeds`)
})

// The copies not quiet among each session's current group: the members of
// the running owner of the highest epoch.
function awakeCopies (cluster: SimCluster): string[] {
  const owners = new Map<string, { epoch: number; members: string[] }>()
  for (const node of cluster.running()) {
    for (const s of node.sessions?.list() ?? []) {
      const known = owners.get(s.sessionId)
      if (s.role === 'owner' && (known === undefined || s.epoch > known.epoch)) owners.set(s.sessionId, { epoch: s.epoch, members: s.members })
    }
  }
  const awake: string[] = []
  for (const [sessionId, { members }] of owners) {
    for (const member of members) {
      const copy = cluster.running().find((node) => node.id === member)?.sessions?.list().find((s) => s.sessionId === sessionId)
      if (copy !== undefined && !copy.quiet) awake.push(`${member}:${sessionId}`)
    }
  }
  return awake
}

test.run()
