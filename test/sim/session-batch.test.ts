// Batches of deltas in virtual time: the real sessions core on every node of a
// simulated cluster, a terminal sending batches (POST …/batch as the core sees
// it: 'append-batch') to whoever owns its session, retrying a batch whose answer
// does not come with the same clientSeqs, while the owner is SIGKILLed or frozen
// mid-batch. Checks: every acknowledged op once, in order; a retried batch never
// doubles anything; at most one owner acknowledging per epoch.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { checkOwners, ownerState, recordOwnerAcks } from '../../sim/checkers.ts'
import type { SimCluster } from '../../sim/cluster.ts'
import type { SimTerminal } from '../../sim/terminal.ts'
import { seedFor, withSeed } from './helpers.ts'
import { openTerminal, sessionCluster } from './session-helpers.ts'

const FILE = 'test/sim/session-batch.test.ts'
const REQUEST_TIMEOUT_MS = 600

type BatchWriter = { acked: string[]; batchesDone: number; retries: number; problems: string[]; inFlight: boolean }

// Sends `batches` batches of `size` ops, one in flight, each to the current owner
// (or the first member it knew); a batch without a 200 in time is sent again as
// it was. Records what was acknowledged, in order.
function writeBatches (cluster: SimCluster, terminal: SimTerminal, batches: number, size: number): BatchWriter {
  const w: BatchWriter = { acked: [], batchesDone: 0, retries: 0, problems: [], inFlight: false }
  let lastSeq = 0
  let pending: string[] | null = null
  const send = (): void => {
    if (pending === null) {
      if (w.batchesDone >= batches) return
      pending = Array.from({ length: size }, (_, i) => `b${w.batchesDone}-${i}`)
    }
    const ops = pending
    const target = ownerState(cluster, terminal.sessionId)?.owner ?? terminal.queue[0]
    let settled = false
    w.inFlight = true
    const retry = (): void => {
      w.inFlight = false
      w.retries++
      cluster.scheduler.after(50, send)
    }
    cluster.request(target, { type: 'append-batch', sessionId: terminal.sessionId, tokenHash: terminal.tokenHash, clientSeq: lastSeq + 1, ops: ops.map((v) => ({ append: v })) }, (outcome) => {
      if (settled) return
      settled = true
      if (outcome.status !== 200) return retry()
      w.inFlight = false
      const results = outcome.body.results as Array<{ clientSeq: number; index: number }>
      if (results.length !== ops.length || outcome.body.refused !== undefined) w.problems.push(`batch ${w.batchesDone}: ${JSON.stringify(outcome.body).slice(0, 200)}`)
      results.forEach((r, i) => { if (r.clientSeq !== lastSeq + 1 + i) w.problems.push(`batch ${w.batchesDone}: result ${i} is for clientSeq ${r.clientSeq}`) })
      w.acked.push(...ops)
      lastSeq += ops.length
      pending = null
      w.batchesDone++
      cluster.scheduler.after(1, send)
    })
    cluster.scheduler.after(REQUEST_TIMEOUT_MS, () => {
      if (settled) return
      settled = true
      retry()
    })
  }
  send()
  return w
}

function checkLog (cluster: SimCluster, terminal: SimTerminal, acked: string[]): string[] {
  const held = ownerState(cluster, terminal.sessionId)
  if (held === null) return ['no owner holds the session']
  const values = held.state as string[]
  const problems: string[] = []
  if (new Set(values).size !== values.length) problems.push('a value was applied twice')
  if (JSON.stringify(values.slice(0, acked.length)) !== JSON.stringify(acked)) problems.push(`the state does not start with the ${acked.length} acknowledged values in order`)
  return problems
}

for (const fault of ['SIGKILL', 'SIGSTOP'] as const) {
  test(`batches across an owner ${fault} mid-batch: every acknowledged op once, in order; retries never double`, () => withSeed(FILE, seedFor(fault === 'SIGKILL' ? 61 : 62), (seed) => {
    const cluster = sessionCluster(seed, 5)
    const acks = recordOwnerAcks(cluster)
    const terminal = openTerminal(cluster, 'batcher', 'n0')
    const w = writeBatches(cluster, terminal, 30, 40)
    // Strike while a batch is in flight (sent, not yet answered).
    assert.ok(cluster.runUntil(() => w.batchesDone >= 10 && w.inFlight, 20_000))
    const owner = ownerState(cluster, terminal.sessionId)?.owner as string
    if (fault === 'SIGKILL') cluster.crash(owner)
    else cluster.pause(owner)
    assert.ok(cluster.runUntil(() => w.batchesDone >= 30, 60_000, 10), `only ${w.batchesDone} of 30 batches acknowledged`)
    if (fault === 'SIGSTOP') {
      cluster.resume(owner)
      cluster.runUntil(() => false, 3_000)
    }
    assert.equal(w.problems, [])
    assert.ok(w.retries > 0, 'the fault made the terminal retry a batch')
    if (fault === 'SIGKILL') assert.is.not(ownerState(cluster, terminal.sessionId)?.owner, owner)
    assert.equal(checkOwners(acks), [])
    assert.equal(checkLog(cluster, terminal, w.acked), [])
    assert.is(w.acked.length, 30 * 40)
  }))
}

// The owner's entries leave before its own commit (agent/sessions/commit-order.ts);
// here the commit takes 20 virtual ms (fsyncMs), longer than a hop, and the owner
// is SIGKILLed inside that window: the standbys hold entries its disk never got.
// None of them was acknowledged, so nothing acknowledged is lost; the extra
// entries are kept or dropped by the next owner; the old owner comes back as a
// standby and catches up.
test('owner SIGKILLed after sending entries, before committing them: nothing acknowledged is lost', () => withSeed(FILE, seedFor(63), (seed) => {
  const cluster = sessionCluster(seed, 5, { fsyncMs: 20 })
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 'batcher', 'n0')
  const w = writeBatches(cluster, terminal, 30, 40)
  let owner = ''
  const inWindow = (): boolean => {
    owner = ownerState(cluster, terminal.sessionId)?.owner ?? ''
    return w.batchesDone >= 10 && owner !== '' && cluster.node(owner).committing
  }
  assert.ok(cluster.runUntil(inWindow, 20_000), 'caught the owner between its send and its commit')
  const stored = (): number => {
    const s = cluster.node(owner).disk.load().find((x) => x.sessionId === terminal.sessionId)
    return s === undefined ? 0 : (s.entries.at(-1)?.index ?? s.snapshot?.index ?? 0)
  }
  const ownerLast = cluster.node(owner).sessions?.replica(terminal.sessionId)?.log.lastIndex ?? 0
  assert.ok(stored() < ownerLast, `the owner's newest entries are not on its disk yet (${stored()} < ${ownerLast})`)
  cluster.crash(owner)
  // A hop later, a standby holds entries the dead owner never stored.
  cluster.runUntil(() => false, 5)
  const ahead = cluster.running().some((n) => (n.sessions?.replica(terminal.sessionId)?.log.lastIndex ?? 0) > stored())
  assert.ok(ahead, 'a standby received entries the owner never committed')
  assert.ok(cluster.runUntil(() => w.batchesDone >= 30, 60_000, 10), `only ${w.batchesDone} of 30 batches acknowledged`)
  cluster.restart(owner)
  cluster.runUntil(() => false, 3_000)
  assert.equal(w.problems, [])
  assert.equal(checkOwners(acks), [])
  assert.equal(checkLog(cluster, terminal, w.acked), [])
  assert.is(w.acked.length, 30 * 40)
  // The old owner is back as a standby holding the acknowledged log.
  const back = cluster.node(owner).sessions?.replica(terminal.sessionId)
  assert.ok(back !== undefined && back.role !== 'owner', 'the restarted owner is a standby')
  assert.ok(back.commitIndex >= (ownerState(cluster, terminal.sessionId)?.commitIndex ?? Infinity) - 40, 'and caught up')
}))


// A group of one (replicas 0): the agent's store is the only copy, and it
// writes commit indexes lazily (the simulated disk as the real store), so the
// restarted agent finds its newest acknowledged deltas beyond its stored commit
// index and must commit them again as it becomes owner. (The real hang this
// guards against, a retried delta found in that tail, needs a SIGKILL after the
// write and before the fsync returned, which the simulator does not model for a
// group of one: test/unit/session-regressions.test.ts and
// test/net/agent-crash.test.ts pin it.)
test('a single agent SIGKILLed with a stale stored commit index and restarted: every acknowledged op once, in order', () => withSeed(FILE, seedFor(64), (seed) => {
  const cluster = sessionCluster(seed, 1, { fsyncMs: 5, sessionsPatch: { replicas: 0 } })
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 'batcher', 'n0')
  const w = writeBatches(cluster, terminal, 30, 40)
  const owner = 'n0'
  // Strike while the disk holds committed deltas whose commit index it has not
  // written yet, and the next batch is in flight.
  const tail = (): boolean => {
    const held = cluster.node(owner).disk.onDisk(terminal.sessionId)
    return held !== null && held.commitIndex < held.lastIndex
  }
  assert.ok(cluster.runUntil(() => w.batchesDone >= 10 && w.inFlight && tail(), 20_000), 'caught the disk with an unwritten commit index')
  cluster.crash(owner)
  cluster.runUntil(() => false, 200)
  cluster.restart(owner)
  assert.ok(cluster.runUntil(() => w.batchesDone >= 30, 60_000, 10), `only ${w.batchesDone} of 30 batches acknowledged`)
  assert.equal(w.problems, [])
  assert.ok(w.retries > 0, 'the crash made the terminal retry a batch')
  assert.equal(checkOwners(acks), [])
  assert.equal(checkLog(cluster, terminal, w.acked), [])
  assert.is(w.acked.length, 30 * 40)
}))

test.run()
