// A terminal's request at a member while the session changes owner is held
// there (agent/sessions/parked.ts), not answered 503 for the terminal to poll:
// the member that wins serves it when it takes the epoch, the one that loses
// redirects it as soon as it hears the winner, and nothing is held past the
// window. Virtual time; every test checks the acknowledged history too.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { PeerKey } from '../../agent/core/io.ts'
import type { SessionsConfig } from '../../agent/sessions/config.ts'
import { parkWindowMs } from '../../agent/sessions/parked.ts'
import type { RequestOutcome, SimCluster } from '../../sim/cluster.ts'
import { checkOwners, checkTerminal, ownerState, recordOwnerAcks } from '../../sim/checkers.ts'
import type { SimTerminal } from '../../sim/terminal.ts'
import { seedFor, withSeed } from './helpers.ts'
import { openTerminal, sessionCluster } from './session-helpers.ts'

const FILE = 'test/sim/session-parking.test.ts'

type Answer = { outcome: RequestOutcome; atMs: number }

// A session with a few acknowledged deltas, its terminal idle.
function idleSession (seed: number): { cluster: SimCluster; terminal: SimTerminal; acks: ReturnType<typeof recordOwnerAcks> } {
  const cluster = sessionCluster(seed, 5, { trace: true })
  const acks = recordOwnerAcks(cluster)
  const terminal = openTerminal(cluster, 't1', 'n0')
  let done = false
  terminal.appendMany(5, 10, () => { done = true })
  cluster.runUntil(() => done, 10_000)
  return { cluster, terminal, acks }
}

function appendAt (cluster: SimCluster, terminal: SimTerminal, agent: PeerKey, clientSeq: number): () => Answer | null {
  let answer: Answer | null = null
  cluster.request(agent, { type: 'append', sessionId: terminal.sessionId, tokenHash: terminal.tokenHash, clientSeq, op: { append: `held-${clientSeq}` } }, (outcome) => {
    answer ??= { outcome, atMs: cluster.nowMs }
  })
  return () => answer
}

function promotedAt (cluster: SimCluster, sessionId: string): { node: PeerKey; atMs: number } | null {
  const e = cluster.trace.find((t) => t.event.type === 'promoted' && 'sessionId' in t.event && t.event.sessionId === sessionId && t.event.epoch > 1)
  return e === undefined ? null : { node: e.node, atMs: e.atMs }
}

test('an append held at the standby that wins is acknowledged by it as it takes the epoch, with no 503 first', () => withSeed(FILE, seedFor(61), (seed) => {
  const { cluster, terminal, acks } = idleSession(seed)
  const [owner, first] = terminal.queue
  cluster.crash(owner)
  // Once the first standby has seen the connection close (a network delay).
  cluster.run(5)
  const answer = appendAt(cluster, terminal, first, terminal.seq + 1)
  cluster.runUntil(() => answer() !== null, 5_000)
  const got = answer() as Answer
  const promoted = promotedAt(cluster, terminal.sessionId)
  assert.ok(promoted !== null, 'a standby took over')
  assert.is(promoted.node, first, 'the first standby in the queue won')
  assert.is(got.outcome.status, 200, JSON.stringify(got.outcome.body))
  assert.is((got.outcome.body as { epoch: number }).epoch, 2)
  assert.ok(got.atMs >= promoted.atMs, 'answered once it owned the session')
  cluster.run(500)
  assert.equal(checkOwners(acks), [])
}))

test('an append held at the standby that loses is redirected to the winner as soon as it hears it', () => withSeed(FILE, seedFor(62), (seed) => {
  const { cluster, terminal, acks } = idleSession(seed)
  const [owner, first, second] = terminal.queue
  cluster.crash(owner)
  cluster.run(5)
  const answer = appendAt(cluster, terminal, second, terminal.seq + 1)
  cluster.runUntil(() => answer() !== null, 5_000)
  const got = answer() as Answer
  const promoted = promotedAt(cluster, terminal.sessionId)
  assert.ok(promoted !== null)
  assert.is(promoted.node, first)
  assert.is(got.outcome.status, 307, JSON.stringify(got.outcome.body))
  assert.is(cluster.nodeForUrl((got.outcome as { location?: string }).location ?? '')?.id, first)
  assert.ok(got.atMs > promoted.atMs && got.atMs - promoted.atMs < 50, `redirected ${(got.atMs - promoted.atMs).toFixed(0)} ms after the promotion`)
  cluster.run(500)
  assert.equal(checkOwners(acks), [])
  assert.equal(checkTerminal(cluster, terminal), [])
}))

test('with no takeover possible, a held request gets its 503 when the window ends, not later', () => withSeed(FILE, seedFor(63), (seed) => {
  const { cluster, terminal } = idleSession(seed)
  const [owner, first, second] = terminal.queue
  // The owner and the first standby die: the second cannot win a majority.
  cluster.crash(first)
  cluster.crash(owner)
  cluster.run(5)
  const sentAt = cluster.nowMs
  const answer = appendAt(cluster, terminal, second, terminal.seq + 1)
  cluster.runUntil(() => answer() !== null, 5_000)
  const got = answer() as Answer
  assert.is(got.outcome.status, 503, JSON.stringify(got.outcome.body))
  const heldMs = got.atMs - sentAt
  const windowMs = parkWindowMs(cluster.sessionsConfig as SessionsConfig)
  assert.ok(heldMs >= windowMs && heldMs < windowMs + 50, `answered ${heldMs.toFixed(0)} ms after it was sent (window ${windowMs} ms)`)
  assert.is(ownerState(cluster, terminal.sessionId)?.owner ?? null, null, 'nobody owns it')
}))

test('a member that hears its owner answers at once with a redirect, as before', () => withSeed(FILE, seedFor(64), (seed) => {
  const { cluster, terminal } = idleSession(seed)
  const [owner, first] = terminal.queue
  const sentAt = cluster.nowMs
  const answer = appendAt(cluster, terminal, first, terminal.seq + 1)
  cluster.runUntil(() => answer() !== null, 5_000)
  const got = answer() as Answer
  assert.is(got.outcome.status, 307)
  assert.is(cluster.nodeForUrl((got.outcome as { location?: string }).location ?? '')?.id, owner)
  assert.ok(got.atMs - sentAt < 50, 'not held')
}))

test.run()
