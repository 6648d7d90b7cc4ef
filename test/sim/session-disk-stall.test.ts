// A disk that stalls (SimCluster.stallDisk, SimOptions.slowFsyncs): an SD card
// or a busy disk can hold an fsync for seconds. Meanwhile the agent's sessions
// wait for it, as the real host's do (agent/runtime/sessions-host.ts holds a
// session's inputs and ticks while its fsync runs), but its membership carries
// on and answers probes: the membership calls it alive while its sessions say
// nothing. The group must carry on without it, lose nothing acknowledged, and
// serve no stale read.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { checkOwners, checkTerminal, ownerState, recordOwnerAcks } from '../../sim/checkers.ts'
import type { OwnerAck } from '../../sim/checkers.ts'
import type { SimCluster } from '../../sim/cluster.ts'
import type { SimTerminal } from '../../sim/terminal.ts'
import { DISK_MIN_SAMPLES } from '../../agent/sessions/disk-watch.ts'
import { config } from '../../agent/sessions/replica.ts'
import { seedFor, withSeed } from './helpers.ts'
import { finish, openTerminal, pollReads, sessionCluster } from './session-helpers.ts'

const FILE = 'test/sim/session-disk-stall.test.ts'
const STALL_MS = 3_000

// Five agents, one terminal that has 5 deltas acknowledged.
function started (seed: number): { cluster: SimCluster; acks: OwnerAck[]; t: SimTerminal } {
  const cluster = sessionCluster(seed, 5)
  const acks = recordOwnerAcks(cluster)
  const t = openTerminal(cluster, 'term', cluster.ids[0])
  t.appendMany(5, 5)
  assert.ok(finish(cluster, [t], 5, 10_000))
  return { cluster, acks, t }
}

test(`the owner's disk stalls for ${STALL_MS} ms while its terminal appends: a standby takes over, the membership still calling the owner alive; nothing lost, no stale read`, () => withSeed(FILE, seedFor(81), (seed) => {
  const { cluster, acks, t } = started(seed)
  const owner = t.owner as string
  const epoch = t.epoch
  cluster.stallDisk(owner, STALL_MS)
  const stalledAt = cluster.nowMs
  const { stale, reads } = pollReads(cluster, t, 45)
  t.appendMany(40, 5)
  assert.ok(finish(cluster, [t], 45, 30_000), 'every append acknowledged')
  const moved = t.acks.find((ack) => ack.atMs > stalledAt && ack.agent !== owner)
  assert.ok(moved !== undefined, 'acknowledged by another agent')
  assert.ok(moved.atMs - stalledAt < STALL_MS, `by a new owner ${Math.round(moved.atMs - stalledAt)} ms into the stall, before it ended`)
  assert.ok(t.epoch > epoch, 'in a later epoch')
  assert.is(cluster.statusSeenBy(cluster.ids.find((id) => id !== owner) as string, owner), 'alive', 'the membership still calls the stalled owner alive')
  cluster.run(STALL_MS + 2_000)
  assert.ok(reads() > 50, `${reads()} reads answered`)
  assert.equal(stale, [])
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, t), [])
  assert.ok(ownerState(cluster, t.sessionId)?.owner !== owner, 'the old owner, its disk back, did not take the session back')
}))

test(`a standby's disk stalls for ${STALL_MS} ms: the owner carries on without it after memberLagMs, and it catches up`, () => withSeed(FILE, seedFor(82), (seed) => {
  const { cluster, acks, t } = started(seed)
  const owner = t.owner as string
  const standby = t.queue.find((id) => id !== owner) as string
  cluster.stallDisk(standby, STALL_MS)
  const stalledAt = cluster.nowMs
  t.appendMany(40, 5)
  assert.ok(finish(cluster, [t], 45, 30_000), 'every append acknowledged')
  const during = t.acks.filter((ack) => ack.atMs > stalledAt && ack.atMs < stalledAt + STALL_MS)
  assert.ok(during.length >= 30, `${during.length} appends acknowledged during the stall`)
  const slowest = Math.max(...during.map((ack) => ack.latencyMs))
  // About memberLagMs (103-105 ms in seeds 1-10); before that rule, memberStaleMs (~560).
  assert.ok(slowest <= cluster.sessionsConfig!.memberLagMs + 50, `the slowest ${Math.round(slowest)} ms: about memberLagMs at most`)
  cluster.run(STALL_MS + 3_000)
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, t), [])
  const held = cluster.node(standby).sessions?.replica(t.sessionId)
  assert.is(held?.log.lastIndex, ownerState(cluster, t.sessionId)?.commitIndex, 'the standby caught up once its disk came back')
}))

const SLOW_MS = 300

test(`a standby's disk turns slow for good (every fsync ${SLOW_MS} ms): the owner waits for it at most memberLagMs, not for every fsync; nothing lost, and it keeps every entry`, () => withSeed(FILE, seedFor(83), (seed) => {
  const { cluster, acks, t } = started(seed)
  const owner = t.owner as string
  const standby = t.queue.find((id) => id !== owner) as string
  const config = cluster.sessionsConfig!
  cluster.slowDisk(standby, SLOW_MS)
  const slowedAt = cluster.nowMs
  t.appendMany(100, 10)
  assert.ok(finish(cluster, [t], 105, 30_000), 'every append acknowledged')
  const latencies = t.acks.filter((ack) => ack.atMs > slowedAt).map((ack) => ack.latencyMs).sort((a, b) => a - b)
  const median = latencies[Math.floor(latencies.length / 2)]
  const slowest = latencies[latencies.length - 1]
  // Before the lag rule every one of these waited for the slow fsync (~SLOW_MS).
  assert.ok(median < 50, `median ${Math.round(median)} ms: the slow standby is not waited for`)
  assert.ok(slowest <= config.memberLagMs + 100, `the slowest ${Math.round(slowest)} ms: about memberLagMs at most`)
  assert.ok(t.acks.every((ack) => ack.agent === owner), 'no takeover: the owner is healthy')
  // It keeps up in its own time, with its fsyncs still slow.
  cluster.run(2 * SLOW_MS + 500)
  const held = cluster.node(standby).sessions?.replica(t.sessionId)
  assert.is(held?.log.lastIndex, ownerState(cluster, t.sessionId)?.commitIndex, 'the slow standby holds every committed entry')
  cluster.slowDisk(standby, 0)
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, t), [])
}))

test(`the owner's disk turns slow for good (every fsync ${SLOW_MS} ms): it hands the session to a standby that keeps up, once; writes are fast again; nothing lost`, () => withSeed(FILE, seedFor(84), (seed) => {
  const { cluster, acks, t } = started(seed)
  const owner = t.owner as string
  const epoch = t.epoch
  const resigned: string[] = []
  cluster.onEvent((entry) => { if (entry.event.type === 'resigned') resigned.push(entry.node) })
  cluster.slowDisk(owner, SLOW_MS)
  const slowedAt = cluster.nowMs
  t.appendMany(150, 10)
  assert.ok(finish(cluster, [t], 155, 60_000), 'every append acknowledged')
  assert.equal(resigned, [owner], 'the slow owner resigned, once')
  assert.ok(t.owner !== owner, 'another member owns the session')
  assert.is(t.epoch, epoch + 1, 'one takeover')
  const moved = t.acks.find((ack) => ack.atMs > slowedAt && ack.agent !== owner)
  assert.ok(moved !== undefined)
  // The watch needs DISK_MIN_SAMPLES slow fsyncs (one per write here), then a
  // standby finds the owner silent (ownerTimeoutMs) and takes over.
  const boundMs = (DISK_MIN_SAMPLES + 2) * SLOW_MS + cluster.sessionsConfig!.ownerTimeoutMs + 500
  assert.ok(moved.atMs - slowedAt < boundMs, `handed over ${Math.round(moved.atMs - slowedAt)} ms after the disk slowed (at most ${boundMs})`)
  const after = t.acks.filter((ack) => ack.atMs > moved.atMs + 500).map((ack) => ack.latencyMs).sort((a, b) => a - b)
  assert.ok(after.length > 50, `${after.length} appends after the handover`)
  assert.ok(after[after.length - 1] <= cluster.sessionsConfig!.memberLagMs + 100, `after the handover the slowest took ${Math.round(after[after.length - 1])} ms`)
  cluster.run(3_000)
  assert.ok(ownerState(cluster, t.sessionId)?.owner !== owner, 'the slow agent did not take the session back')
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, t), [])
}))

test(`the owner crashes while the first standby's disk is slow for good: the other standby takes over, nothing lost`, () => withSeed(FILE, seedFor(86), (seed) => {
  const { cluster, acks, t } = started(seed)
  const owner = t.owner as string
  const held = cluster.node(owner).sessions?.replica(t.sessionId)
  assert.ok(held !== undefined)
  const group = config(held).members
  const [first, second] = group.filter((id) => id !== owner)
  const promoted: string[] = []
  cluster.onEvent((entry) => { if (entry.event.type === 'promoted' && entry.event.sessionId === t.sessionId) promoted.push(entry.node) })
  cluster.slowDisk(first, SLOW_MS)
  // Writes until the slow standby's agent has found its disk slow (it takes
  // DISK_MIN_SAMPLES of its commits, 300 ms each, while the owner no longer
  // waits for it).
  t.appendMany(200, 10)
  assert.ok(finish(cluster, [t], 205, 30_000), 'every append acknowledged')
  assert.ok(cluster.node(first).diskWatch?.slow === true, 'the first standby found its disk slow')
  cluster.crash(owner)
  t.appendMany(20, 10)
  assert.ok(finish(cluster, [t], 225, 30_000), 'every append acknowledged after the crash')
  // First in the queue, it would have stood first; its slow disk puts it last.
  assert.equal(promoted, [second], 'the standby that keeps up took over')
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, t), [])
}))

test('every disk slow: nobody resigns (no member keeps up), and writes carry on at the disks\' pace', () => withSeed(FILE, seedFor(85), (seed) => {
  const { cluster, acks, t } = started(seed)
  const epoch = t.epoch
  let resigned = 0
  cluster.onEvent((entry) => { if (entry.event.type === 'resigned') resigned++ })
  for (const id of cluster.ids) cluster.slowDisk(id, SLOW_MS)
  t.appendMany(30, 10)
  assert.ok(finish(cluster, [t], 35, 60_000), 'every append acknowledged')
  assert.is(resigned, 0)
  assert.is(t.epoch, epoch, 'no takeover')
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, t), [])
}))

test.run()
