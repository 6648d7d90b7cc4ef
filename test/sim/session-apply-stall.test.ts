// A member whose service cannot apply a committed entry for a while (a deployed
// service's worker loading, timed out or crashed there) stops at that entry and
// applies it once the service works again (agent/sessions/apply.ts). Before, the
// member recorded the failure and went on: its state lacked an acknowledged op
// for good, and a takeover served that state. Each test prints its seed on
// failure.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { APPLY_RETRY_MS } from '../../agent/sessions/apply.ts'
import { BUILT_IN_SERVICES, logService } from '../../agent/sessions/services.ts'
import type { SessionEvent } from '../../agent/sessions/types.ts'
import { checkOwners, checkTerminal, ownerState, recordOwnerAcks } from '../../sim/checkers.ts'
import type { SimCluster } from '../../sim/cluster.ts'
import { flakyServices } from '../../sim/flaky-services.ts'
import { seedFor, withSeed } from './helpers.ts'
import { finish, openTerminal, replicaOf, sessionCluster } from './session-helpers.ts'

const FILE = 'test/sim/session-apply-stall.test.ts'

function stallEvents (cluster: SimCluster): Array<{ node: string; event: SessionEvent }> {
  const seen: Array<{ node: string; event: SessionEvent }> = []
  cluster.onEvent((entry) => {
    const event = entry.event as SessionEvent
    if (event.type === 'apply-stalled' || event.type === 'apply-resumed') seen.push({ node: entry.node, event })
  })
  return seen
}

function read (cluster: SimCluster, node: string, sessionId: string, tokenHash: string): { status: number; body: Record<string, unknown> } {
  let answer: { status: number; body: Record<string, unknown> } | null = null
  cluster.request(node, { type: 'get', sessionId, tokenHash }, (outcome) => { answer = outcome as { status: number; body: Record<string, unknown> } })
  cluster.runUntil(() => answer !== null, 5_000)
  return answer ?? { status: 0, body: {} }
}

// Both standbys stalled: the owner's death leaves only stalled members, and
// the first in line takes over; it must not answer from its state, which lacks
// what it acknowledged.
test('standbys that cannot apply stop at the entry; one takes over, serves nothing stale, and catches up once its service works', () => withSeed(FILE, seedFor(4101), (seed) => {
  const { switches, serviceCode } = flakyServices(3)
  const cluster = sessionCluster(seed, 3, { serviceCode })
  const events = stallEvents(cluster)
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n0')
  const [owner, first, second] = terminal.queue
  const index = (id: string): number => cluster.ids.indexOf(id)
  switches[index(first)].broken = true
  switches[index(second)].broken = true
  terminal.appendMany(30, 10)
  assert.ok(finish(cluster, [terminal], 30), 'the appends are acknowledged while the standbys cannot apply them')
  const r = replicaOf(cluster, first, terminal.sessionId)
  assert.ok(r !== undefined)
  if (r === undefined) return
  assert.ok(r.applyStall !== null, 'the standby is stalled')
  assert.ok(r.appliedIndex < r.commitIndex && r.log.lastIndex >= r.commitIndex, `applied ${r.appliedIndex} < committed ${r.commitIndex}, every entry kept`)
  assert.is((r.state as unknown[]).length, 0, 'nothing past the stalled entry is applied')
  const failedBefore = switches[index(first)].failed
  cluster.run(5 * APPLY_RETRY_MS)
  const retries = switches[index(first)].failed - failedBefore
  assert.ok(retries >= 4 && retries <= 6, `retried about once per APPLY_RETRY_MS, quiet or not (${retries} in 5)`)

  cluster.crash(owner)
  terminal.appendMany(10, 10)
  cluster.run(3_000)
  assert.is(ownerState(cluster, terminal.sessionId)?.owner, first, 'the first in line took over')
  const answer = read(cluster, first, terminal.sessionId, terminal.tokenHash)
  assert.is(answer.status, 503, `a read at the stalled owner: ${JSON.stringify(answer.body)}`)
  assert.match(String(answer.body.error), /cannot apply the session's committed ops now \(log@1: the worker is still loading/)
  assert.is(terminal.acks.length, 30, 'no delta is taken while the owner is behind its log')
  switches[index(first)].broken = false
  switches[index(second)].broken = false
  assert.ok(finish(cluster, [terminal], 40), `the terminal carries on once the service works (${terminal.errors.join('; ')})`)
  assert.is(terminal.failed, 0, terminal.errors.join('; '))
  assert.equal(checkTerminal(cluster, terminal), [])
  assert.equal(checkOwners(acks), [])
  cluster.run(2_000)
  const states = cluster.running().map((n) => JSON.stringify(replicaOf(cluster, n.id, terminal.sessionId)?.state))
  assert.is(new Set(states).size, 1, 'every member holds the same state')
  assert.is(JSON.parse(states[0]).length, 40)
  for (const member of [first, second]) {
    assert.equal(events.filter((e) => e.node === member).map((e) => e.event.type), ['apply-stalled', 'apply-resumed'], `${member}: one event when it stalls, one when it resumes`)
  }
}))

// One standby stalled: it stands after the healthy one, which takes over and
// serves at once; the stalled one catches up later.
test('a stalled standby stands after a healthy one, and catches up once its service works', () => withSeed(FILE, seedFor(4103), (seed) => {
  const { switches, serviceCode } = flakyServices(3)
  const cluster = sessionCluster(seed, 3, { serviceCode })
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n0')
  const events = stallEvents(cluster)
  const [owner, first, second] = terminal.queue
  const sw = switches[cluster.ids.indexOf(first)]
  // A stall shorter than APPLY_REPORT_AFTER_MS is not reported.
  sw.broken = true
  terminal.appendMany(3, 10)
  assert.ok(finish(cluster, [terminal], 3))
  assert.ok(replicaOf(cluster, first, terminal.sessionId)?.applyStall !== null)
  sw.broken = false
  cluster.run(2 * APPLY_RETRY_MS)
  assert.is(replicaOf(cluster, first, terminal.sessionId)?.applyStall, null)
  assert.equal(events, [], 'a short stall is neither warned of nor counted')
  sw.broken = true
  terminal.appendMany(30, 10)
  assert.ok(finish(cluster, [terminal], 33))
  cluster.crash(owner)
  terminal.appendMany(10, 10)
  assert.ok(finish(cluster, [terminal], 43), `the healthy standby serves while the first cannot apply (${terminal.errors.join('; ')})`)
  assert.is(ownerState(cluster, terminal.sessionId)?.owner, second)
  const answer = read(cluster, second, terminal.sessionId, terminal.tokenHash)
  assert.is(answer.status, 200)
  assert.ok(replicaOf(cluster, first, terminal.sessionId)?.applyStall !== null, 'the first standby is still stalled')
  sw.broken = false
  cluster.run(2 * APPLY_RETRY_MS)
  assert.equal(checkTerminal(cluster, terminal), [])
  assert.equal(checkOwners(acks), [])
  assert.equal(replicaOf(cluster, first, terminal.sessionId)?.state, replicaOf(cluster, second, terminal.sessionId)?.state, 'the stalled standby caught up')
}))

// A member without the service's code at all (a deployed package not installed
// there yet) but in the group: it waits for the code instead of skipping the
// ops, and applies them once the code is there.
test('a member without the service\'s code waits for it, then applies every op', () => withSeed(FILE, seedFor(4104), (seed) => {
  const tables = Array.from({ length: 3 }, () => new Map(BUILT_IN_SERVICES))
  const cluster = sessionCluster(seed, 3, { serviceCode: (i) => tables[i] })
  const terminal = openTerminal(cluster, 't1', 'n0')
  const member = terminal.queue[2]
  const table = tables[cluster.ids.indexOf(member)]
  table.delete('log')
  terminal.appendMany(10, 10)
  assert.ok(finish(cluster, [terminal], 10))
  cluster.run(2 * APPLY_RETRY_MS)
  const r = replicaOf(cluster, member, terminal.sessionId)
  assert.match(String(r?.applyStall?.reason), /this agent does not run service log/)
  assert.ok(r !== undefined && r.appliedIndex < r.commitIndex)
  table.set('log', logService)
  cluster.run(2 * APPLY_RETRY_MS)
  assert.is(replicaOf(cluster, member, terminal.sessionId)?.applyStall, null)
  assert.equal(replicaOf(cluster, member, terminal.sessionId)?.state, replicaOf(cluster, terminal.queue[0], terminal.sessionId)?.state)
  assert.is((replicaOf(cluster, member, terminal.sessionId)?.state as unknown[]).length, 10)
}))

test('a member stalled when its session closes forgets the session all the same', () => withSeed(FILE, seedFor(4102), (seed) => {
  const { switches, serviceCode } = flakyServices(3)
  const cluster = sessionCluster(seed, 3, { serviceCode })
  const terminal = openTerminal(cluster, 't1', 'n0')
  const standby = terminal.queue[1]
  switches[cluster.ids.indexOf(standby)].broken = true
  terminal.appendMany(5, 10)
  assert.ok(finish(cluster, [terminal], 5))
  assert.ok(replicaOf(cluster, standby, terminal.sessionId)?.applyStall !== null)
  let closed = 0
  terminal.close((status) => { closed = status })
  cluster.runUntil(() => closed !== 0, 5_000)
  assert.is(closed, 200)
  assert.ok(cluster.runUntil(() => replicaOf(cluster, standby, terminal.sessionId) === undefined, 10_000, 10), 'the stalled standby forgot the closed session')
}))

test.run()
