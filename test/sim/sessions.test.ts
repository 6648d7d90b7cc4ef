// Session scenarios in virtual time: the real sessions core on every node of a
// simulated cluster, terminals appending while owners crash, freeze and get
// partitioned away. Every test checks: no acknowledged delta lost or duplicated,
// order kept, at most one owner acknowledging per epoch.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ORPHAN_GRACE_MS } from '../../agent/sessions/election.ts'
import { checkOwners, checkTerminal, ownerState, recordOwnerAcks } from '../../sim/checkers.ts'
import type { SimCluster } from '../../sim/cluster.ts'
import { seedFor, withSeed } from './helpers.ts'
import { finish, openTerminal, pollReads, replicaOf, sessionCluster } from './session-helpers.ts'

const FILE = 'test/sim/sessions.test.ts'

test('a session opened at any agent gets an owner and two standbys, ordered by priority', () => withSeed(FILE, seedFor(31), (seed) => {
  const cluster = sessionCluster(seed, 6)
  const terminal = openTerminal(cluster, 't1', 'n4')
  assert.is(terminal.queue.length, 3, 'owner + R = 2 standbys')
  assert.is(terminal.owner, terminal.queue[0])
  for (const member of terminal.queue) assert.is(replicaOf(cluster, member, terminal.sessionId)?.log.lastIndex, 1, `${member} holds the create entry`)
}))

test('owner SIGKILL: a standby takes over and every acknowledged delta survives, once, in order', () => withSeed(FILE, seedFor(32), (seed) => {
  const cluster = sessionCluster(seed, 5)
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(60, 10)
  cluster.runUntil(() => terminal.acks.length >= 20, 10_000)
  const owner = terminal.owner as string
  const killedAt = cluster.nowMs
  cluster.crash(owner)
  assert.ok(finish(cluster, [terminal], 60))
  assert.is(terminal.failed, 0, terminal.errors.join('; '))
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, terminal), [])
  assert.is.not(ownerState(cluster, terminal.sessionId)?.owner, owner)
  const takeover = terminal.takeovers[0] - killedAt
  assert.ok(takeover < 1_000, `first acknowledgement by the new owner ${takeover.toFixed(0)} ms after the kill`)
}))

// A killed agent's sockets are closed by the kernel: a terminal whose request
// the owner held at the kill hears of it at once and retries at the new owner,
// instead of waiting out its own request timeout (5 s here). Commits take 20 ms
// so that the request is surely held when the owner dies.
test('owner SIGKILL with a request in flight: the terminal\'s connection is reset, it does not wait for its timeout', () => withSeed(FILE, seedFor(42), (seed) => {
  const cluster = sessionCluster(seed, 5, { fsyncMs: 20 })
  const terminal = openTerminal(cluster, 't1', 'n0', 5_000)
  terminal.appendMany(40, 10)
  cluster.runUntil(() => terminal.acks.length >= 10, 10_000)
  // The next append leaves 10 ms after this ack and reaches the owner within 3.
  const at = cluster.nowMs + 15
  cluster.runUntil(() => cluster.nowMs >= at, 100)
  assert.ok(terminal.busy, 'a request is in flight')
  const owner = terminal.owner as string
  const killedAt = cluster.nowMs
  cluster.crash(owner)
  assert.ok(finish(cluster, [terminal], 40))
  assert.is(terminal.failed, 0, terminal.errors.join('; '))
  assert.equal(checkTerminal(cluster, terminal), [])
  const takeover = terminal.takeovers[0] - killedAt
  assert.ok(takeover < 1_000, `first acknowledgement by the new owner ${takeover.toFixed(0)} ms after the kill`)
}))

// Five nodes, a terminal appending 80 deltas; its owner is frozen for
// `frozenMs` once 20 are acknowledged, then resumed and the terminal finishes.
function freezeOwner (seed: number, frozenMs: number, checkWhileFrozen: (cluster: SimCluster, owner: string, sessionId: string) => void = () => {}) {
  const cluster = sessionCluster(seed, 5, { trace: true })
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(80, 10)
  cluster.runUntil(() => terminal.acks.length >= 20, 10_000)
  const owner = terminal.owner as string
  const frozenAt = cluster.nowMs
  cluster.pause(owner)
  cluster.run(frozenMs)
  checkWhileFrozen(cluster, owner, terminal.sessionId)
  cluster.resume(owner)
  assert.ok(finish(cluster, [terminal], 80))
  return { cluster, acks, terminal, owner, frozenAt, sessionId: terminal.sessionId }
}

test('owner frozen and resumed: a standby takes over; the old owner demotes and catches up', () => withSeed(FILE, seedFor(33), (seed) => {
  // Shorter than the membership's verdict (0.7–2 s after a freeze) plus
  // repairDelayMs (2 s): the group still counts the old owner when it returns.
  // (Frozen longer, it is replaced in the group: see the next test.)
  const { cluster, acks, terminal, owner, frozenAt } = freezeOwner(seed, 2_000)
  cluster.run(1_000)
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, terminal), [])
  assert.ok(terminal.takeovers[0] - frozenAt < 2_000, `takeover seen ${(terminal.takeovers[0] - frozenAt).toFixed(0)} ms after the freeze`)
  assert.ok(cluster.trace.some((e) => e.node === owner && e.event.type === 'demoted'), 'the returning owner demoted itself')
  const old = replicaOf(cluster, owner, terminal.sessionId)
  const now = ownerState(cluster, terminal.sessionId)
  assert.is(old?.role, 'standby')
  assert.is(old?.commitIndex, now?.commitIndex, 'and caught up')
}))

test('owner frozen until the group replaced it: back, it is told it is out, goes quiet, and retires its copy', () => withSeed(FILE, seedFor(41), (seed) => {
  // The membership's verdict (at most ~2 s) plus repairDelayMs (2 s).
  const { cluster, acks, terminal, owner, sessionId } = freezeOwner(seed, 6_000, (cluster, owner, sessionId) => {
    const held = ownerState(cluster, sessionId)
    assert.not.ok(replicaOf(cluster, held?.owner as string, sessionId)?.log.config?.members.includes(owner), 'replaced while frozen')
  })
  cluster.run(5_000)
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, terminal), [])
  const old = replicaOf(cluster, owner, sessionId)
  assert.ok(old !== undefined && old.orphanedAtMs !== null, 'the members told it it is not one of them')
  assert.ok(cluster.trace.some((e) => e.node === owner && e.event.type === 'election-lost'), 'it stood once and was refused')
  // Quiet since: it no longer diagnoses the new owner every ownerTimeoutMs.
  const quietFrom = cluster.nowMs - 3_000
  const late = cluster.trace.filter((e) => e.node === owner && e.atMs >= quietFrom && (e.event.type === 'owner-suspected' || e.event.type === 'election-started'))
  assert.equal(late.map((e) => e.event.type), [])
  cluster.run(ORPHAN_GRACE_MS + 30_000)
  assert.is(replicaOf(cluster, owner, sessionId), undefined, 'its copy is deleted after the orphan grace')
  assert.equal(checkTerminal(cluster, terminal), [])
}))

test('standby SIGKILL: writes go on, and the group is repaired back to three members', () => withSeed(FILE, seedFor(34), (seed) => {
  const cluster = sessionCluster(seed, 6)
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(400, 10)
  cluster.runUntil(() => terminal.acks.length >= 50, 10_000)
  const standby = terminal.queue.find((m) => m !== terminal.owner) as string
  cluster.crash(standby)
  assert.ok(finish(cluster, [terminal], 400))
  cluster.run(2_000)
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, terminal), [])
  const held = ownerState(cluster, terminal.sessionId)
  const members = replicaOf(cluster, held?.owner as string, terminal.sessionId)?.log.config?.members ?? []
  assert.is(members.length, 3)
  assert.not.ok(members.includes(standby), 'the dead standby left the group')
  for (const member of members) assert.is(replicaOf(cluster, member, terminal.sessionId)?.commitIndex, held?.commitIndex, `${member} is up to date`)
}))

test('owner partitioned from its group: it stops acknowledging, the majority side takes over, no two owners in one epoch', () => withSeed(FILE, seedFor(35), (seed) => {
  const cluster = sessionCluster(seed, 5, { trace: true })
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(100, 10)
  cluster.runUntil(() => terminal.acks.length >= 20, 10_000)
  const owner = terminal.owner as string
  cluster.partition([[owner], cluster.ids.filter((id) => id !== owner)])
  cluster.run(4_000)
  const oldAcksAfter = acks.filter((a) => a.node === owner && a.atMs > cluster.nowMs - 3_000)
  assert.equal(oldAcksAfter, [], 'the isolated owner acknowledged nothing once it lost its majority')
  cluster.heal()
  assert.ok(finish(cluster, [terminal], 100))
  cluster.run(2_000)
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, terminal), [])
  assert.is(replicaOf(cluster, owner, terminal.sessionId)?.role, 'standby')
}))

test('a new member crashing during catch-up is replaced by another', () => withSeed(FILE, seedFor(36), (seed) => {
  const cluster = sessionCluster(seed, 7, { trace: true, sessionsPatch: { snapshotEveryEntries: 100, snapshotLogRatio: 0, repairDelayMs: 500 } })
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(600, 5)
  cluster.runUntil(() => terminal.acks.length >= 300, 20_000)
  const standby = terminal.queue.find((m) => m !== terminal.owner) as string
  let joiner: string | null = null
  cluster.onEvent(({ event }) => {
    if (joiner === null && event.type === 'snapshot-installed') joiner = null
  })
  cluster.crash(standby)
  // Crash whichever node starts receiving the session to replace it, once.
  const before = new Set(terminal.queue)
  cluster.runUntil(() => cluster.running().some((n) => !before.has(n.id) && n.sessions?.replica(terminal.sessionId) !== undefined), 10_000)
  const catching = cluster.running().find((n) => !before.has(n.id) && n.sessions?.replica(terminal.sessionId) !== undefined)
  assert.ok(catching !== undefined, 'a replacement started catching up')
  cluster.crash((catching as { id: string }).id)
  assert.ok(finish(cluster, [terminal], 600))
  cluster.runUntil(() => (replicaOf(cluster, ownerState(cluster, terminal.sessionId)?.owner as string, terminal.sessionId)?.log.config?.members ?? []).every((m) => cluster.node(m).state === 'running'), 60_000, 50)
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, terminal), [])
  const members = replicaOf(cluster, ownerState(cluster, terminal.sessionId)?.owner as string, terminal.sessionId)?.log.config?.members ?? []
  assert.is(members.length, 3)
  assert.ok(members.every((m) => cluster.node(m).state === 'running'), `group of running members: ${members.join(',')}`)
}))

test('every member restarts: the session is served again with everything acknowledged', () => withSeed(FILE, seedFor(37), (seed) => {
  const cluster = sessionCluster(seed, 5)
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(40, 10)
  cluster.runUntil(() => terminal.acks.length >= 20, 10_000)
  const members = [...terminal.queue]
  for (const member of members) cluster.crash(member)
  cluster.run(1_000)
  for (const member of members) cluster.restart(member)
  assert.ok(finish(cluster, [terminal], 40))
  cluster.run(1_000)
  assert.is(terminal.failed, 0, terminal.errors.join('; '))
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, terminal), [])
}))

test('with only two nodes offering the service, a witness joins; the owner dies and the standby takes over', () => withSeed(FILE, seedFor(38), (seed) => {
  const services = (index: number) => index < 2 ? [{ name: 'log', version: '1', capacity: 100 }] : [{ name: 'kv', version: '1', capacity: 100 }]
  const cluster = sessionCluster(seed, 4, { services })
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n3')
  const owner = terminal.owner as string
  const config = replicaOf(cluster, owner, terminal.sessionId)?.log.config
  assert.is(config?.members.length, 2)
  assert.ok(config?.witness !== null && config?.witness !== undefined, 'a witness holds the log too')
  terminal.appendMany(40, 10)
  cluster.runUntil(() => terminal.acks.length >= 10, 10_000)
  cluster.crash(owner)
  assert.ok(finish(cluster, [terminal], 40))
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, terminal), [])
  assert.is.not(ownerState(cluster, terminal.sessionId)?.owner, owner)
}))


// A closed session must leave every member: none of them may stand for election
// in it afterwards (found by the real-process bench: standbys that never heard
// the close commit held elections forever, and 150 closed sessions saturated
// ten agents).
function closeSession (cluster: ReturnType<typeof sessionCluster>, terminal: ReturnType<typeof openTerminal>): number {
  let status = 0
  cluster.request(terminal.owner as string, { type: 'close', sessionId: terminal.sessionId, tokenHash: terminal.tokenHash }, (outcome) => { status = outcome.status })
  return cluster.runUntil(() => status !== 0, 5_000) ? status : 0
}

function electionsSince (cluster: ReturnType<typeof sessionCluster>, sessionId: string, sinceMs: number): number {
  return cluster.trace.filter((e) => e.atMs >= sinceMs && (e.event.type === 'election-started' || e.event.type === 'election-lost') && 'sessionId' in e.event && e.event.sessionId === sessionId).length
}

test('close: every member forgets the session, and nobody stands for election in it', () => withSeed(FILE, seedFor(38), (seed) => {
  const cluster = sessionCluster(seed, 5, { trace: true })
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(10, 10)
  assert.ok(cluster.runUntil(() => terminal.acks.length >= 10, 10_000))
  assert.is(closeSession(cluster, terminal), 200)
  const closedAt = cluster.nowMs
  cluster.run(5_000)
  for (const member of terminal.queue) assert.is(replicaOf(cluster, member, terminal.sessionId), undefined, `${member} forgot it`)
  assert.is(electionsSince(cluster, terminal.sessionId, closedAt), 0)
}))

test('close while a standby is cut off: it gives up on the session instead of electing forever', () => withSeed(FILE, seedFor(39), (seed) => {
  const cluster = sessionCluster(seed, 5, { trace: true })
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(10, 10)
  assert.ok(cluster.runUntil(() => terminal.acks.length >= 10, 10_000))
  const cut = terminal.queue.find((m) => m !== terminal.owner) as string
  cluster.partition([[cut], cluster.ids.filter((id) => id !== cut)])
  cluster.run(1_000)
  assert.is(closeSession(cluster, terminal), 200)
  cluster.heal()
  cluster.run(5_000)
  const settled = cluster.nowMs
  cluster.run(10_000)
  for (const member of terminal.queue.filter((m) => m !== cut)) assert.is(replicaOf(cluster, member, terminal.sessionId), undefined, `${member} forgot it`)
  assert.ok(replicaOf(cluster, cut, terminal.sessionId)?.orphanedAtMs !== null, 'the cut-off standby holds it as an orphan')
  assert.is(electionsSince(cluster, terminal.sessionId, settled), 0, 'and stands no more')
}))

// The owner is cut off, the majority side elects another, which acknowledges
// more deltas and then closes the session; every member forgets it. Back, the
// old owner's heartbeats met members that knew nothing of the session, and it
// took their refusals for acks: its lease stayed valid, so for good it served
// reads from its stale state (without the deltas the new owner acknowledged)
// of a session that no longer existed. Now the members' "nothing held" counts
// for nothing, and once a majority of its group has said it, it steps down.
test('close while the owner is cut off: back, it stops serving the session instead of answering reads from its stale state', () => withSeed(FILE, seedFor(43), (seed) => {
  const cluster = sessionCluster(seed, 5, { trace: true })
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(10, 10)
  assert.ok(cluster.runUntil(() => terminal.acks.length >= 10, 10_000))
  const old = terminal.owner as string
  cluster.partition([[old], cluster.ids.filter((id) => id !== old)])
  terminal.appendMany(3, 10)
  assert.ok(cluster.runUntil(() => terminal.acks.length >= 13, 20_000), 'the majority side serves the terminal')
  assert.is.not(terminal.owner, old)
  assert.is(closeSession(cluster, terminal), 200)
  cluster.run(3_000)
  cluster.heal()
  cluster.run(5_000)
  let answer: { status: number; body: Record<string, unknown> } | null = null
  cluster.request(old, { type: 'get', sessionId: terminal.sessionId, tokenHash: terminal.tokenHash }, (outcome) => { answer = outcome })
  assert.ok(cluster.runUntil(() => answer !== null, 5_000))
  const got = answer as unknown as { status: number; body: Record<string, unknown> }
  assert.is(got.status, 404, `the old owner answered ${got.status} ${JSON.stringify(got.body).slice(0, 200)}`)
  assert.is.not(replicaOf(cluster, old, terminal.sessionId)?.role, 'owner')
  for (const id of cluster.ids.filter((id) => id !== old)) assert.is(replicaOf(cluster, id, terminal.sessionId), undefined, `${id} forgot it`)
}))

// Reads against every node while owners crash: no read shows less than the
// terminal had seen acknowledged when it asked (the precise case, a member's
// refusal renewing a new owner's lease before its commit index caught up, is
// pinned in test/unit/session-regressions.test.ts).
test('reads never show less than was acknowledged, across takeovers', () => withSeed(FILE, seedFor(40), (seed) => {
  const cluster = sessionCluster(seed, 5)
  const terminal = openTerminal(cluster, 't1', 'n0')
  terminal.appendMany(300, 2)
  assert.ok(cluster.runUntil(() => terminal.acks.length >= 20, 10_000))
  const { stale, reads } = pollReads(cluster, terminal, 300)
  for (let round = 0; round < 3; round++) {
    cluster.runUntil(() => terminal.acks.length >= 50 + round * 80, 20_000)
    const owner = terminal.owner as string
    cluster.crash(owner)
    cluster.runUntil(() => terminal.owner !== null && terminal.owner !== owner, 10_000)
    cluster.restart(owner)
  }
  assert.ok(finish(cluster, [terminal], 300))
  assert.ok(reads() > 100, `${reads()} reads answered`)
  assert.equal(stale, [])
}))

test.run()
