// Batches of deltas on real agents: three `edge-agent start` processes on
// 127.0.0.1 (libp2p between them). EdgeClient.appendMany() gets every op
// acknowledged in order at rising indexes, through a redirect from a standby and
// across a SIGKILL of the owner; a retried batch gets duplicates, never a second
// copy; an op refused part-way leaves the ops before it acknowledged; malformed
// batches are refused with an error naming what was wrong. At the end the
// session holds every acknowledged op exactly once, in order.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { EdgeClient, BatchRefusedError } from '../../agent/client/index.ts'
import { LocalCluster } from '../../sim/processes.ts'
import { MAX_BATCH_BYTES, MAX_BATCH_OPS } from '../../protocol/limits.ts'
import { within } from '../fixtures/timeout.ts'

const TEST_TIMEOUT_MS = 120_000

async function call (url: string, init: { token: string; body?: unknown; raw?: string }): Promise<{ status: number; body: Record<string, unknown>; location: string | null }> {
  const response = await fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/json', authorization: `Bearer ${init.token}` }, body: init.raw ?? JSON.stringify(init.body) })
  return { status: response.status, body: await response.json() as Record<string, unknown>, location: response.headers.get('location') }
}

test('appendMany on three real agents: in order, redirected, retried, refused part-way, across an owner SIGKILL; nothing lost or doubled', () => within((async () => {
  const cluster = await LocalCluster.start({ nodes: 3, profile: 'local', services: 'log' })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http) })
  try {
    await cluster.waitConverged(60_000)
    const session = await client.open({ terminalId: 'batcher', service: 'log' })
    const acked: string[] = []
    const batch = (tag: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${tag}-${i}`)

    // In order, at rising indexes.
    const first = batch('a', 200)
    const results = await session.appendMany(first.map((v) => ({ append: v })))
    assert.is(results.length, 200)
    for (let i = 1; i < results.length; i++) assert.ok(results[i].index === results[i - 1].index + 1, 'consecutive indexes')
    acked.push(...first)
    assert.is(session.clientSeq, 200)

    // A standby redirects a batch to the owner's /batch path.
    const owner = cluster.agents.find((a) => a.id === session.owner?.id)
    const standby = cluster.agents.find((a) => a.id !== session.owner?.id)
    assert.ok(owner !== undefined && standby !== undefined)
    const path = `/v1/sessions/${encodeURIComponent(session.sessionId)}/batch`
    const redirected = await call(`${standby.http}${path}`, { token: session.token, body: { clientSeq: 201, ops: [{ append: 'r-0' }] } })
    assert.is(redirected.status, 307)
    assert.is(redirected.location, `${owner.http}${path}`)

    // A raw retry of the first batch's tail: duplicates, nothing appended.
    const retry = await call(`${owner.http}${path}`, { token: session.token, body: { clientSeq: 199, ops: [{ append: 'a-198' }, { append: 'a-199' }] } })
    assert.is(retry.status, 200)
    assert.equal(retry.body.results, [{ clientSeq: 199, index: results[198].index, duplicate: true }, { clientSeq: 200, index: results[199].index, duplicate: true }])

    // Malformed batches: refused, each naming what was wrong.
    const bad = async (body: unknown, raw?: string): Promise<{ status: number; error: string }> => {
      const r = await call(`${owner.http}${path}`, { token: session.token, body, ...(raw === undefined ? {} : { raw }) })
      return { status: r.status, error: String(r.body.error) }
    }
    assert.equal(await bad({ clientSeq: 201, ops: 'x' }), { status: 400, error: `'ops' must be a list of 1-${MAX_BATCH_OPS} ops` })
    assert.equal(await bad({ clientSeq: 201, ops: [] }), { status: 400, error: `'ops' must be a list of 1-${MAX_BATCH_OPS} ops` })
    assert.equal(await bad({ ops: [{ append: 'x' }] }), { status: 400, error: "'clientSeq' must be a whole number ≥ 1 (the first op's)" })
    assert.equal((await bad(undefined, '{"clientSeq": 201, "ops": [')).status, 400)
    const huge = await bad(undefined, JSON.stringify({ clientSeq: 201, ops: [{ append: 'x'.repeat(MAX_BATCH_BYTES) }] }))
    assert.is(huge.status, 413)
    assert.match(huge.error, `exceeds ${MAX_BATCH_BYTES}`)

    // An op refused part-way: the ops before it are acknowledged; its clientSeq is free.
    try {
      await session.appendMany([{ append: 'b-0' }, { append: 'b-1' }, { nope: 'b-2' }, { append: 'b-3' }])
      assert.unreachable('the batch should be refused part-way')
    } catch (error) {
      assert.instance(error, BatchRefusedError)
      const refused = error as BatchRefusedError
      assert.is(refused.acknowledged.length, 2)
      assert.is(refused.refusedClientSeq, 203)
      assert.is(refused.status, 400)
    }
    acked.push('b-0', 'b-1')
    assert.equal([session.clientSeq, session.pending], [202, null])

    // Batches across a SIGKILL of the owner: the client moves to the new owner.
    const next = batch('c', 100)
    await session.appendMany(next.map((v) => ({ append: v })))
    acked.push(...next)
    const victim = cluster.agents.find((a) => a.id === session.owner?.id)
    assert.ok(victim !== undefined)
    victim.signal('SIGKILL')
    const after = batch('d', 100)
    await session.appendMany(after.map((v) => ({ append: v })))
    acked.push(...after)
    assert.is.not(session.owner?.id, victim.id, 'a new owner acknowledged it')

    const state = await session.get()
    assert.equal(state.state, acked, 'every acknowledged op once, in order')
  } finally {
    client.destroy()
    await cluster.destroy()
  }
})(), TEST_TIMEOUT_MS))

test.run()
