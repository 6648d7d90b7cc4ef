// An op nested deeper than the session codec carries, on three real agents
// (`edge-agent start` processes on 127.0.0.1): it used to be logged, its
// replication frame then failed to encode and the exception ended the owner;
// the client's retry ended the next owner too. Now each way in (POST …/deltas,
// POST …/batch, the deltas stream through the EdgeClient) answers 400 naming the
// limit, nothing is logged, every agent keeps running, and the session carries
// on with an op at the limit.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { EdgeClient, EdgeClientError } from '../../agent/client/index.ts'
import { MAX_JSON_DEPTH } from '../../protocol/limits.ts'
import { LocalCluster } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

const TEST_TIMEOUT_MS = 120_000

// {"append": [[…[1]…]]}, `depth` deep counting the op object.
function nestedText (depth: number): string {
  return `{"append":${'['.repeat(depth - 1)}1${']'.repeat(depth - 1)}}`
}

async function post (url: string, token: string, body: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body })
  return { status: response.status, body: await response.json() as Record<string, unknown> }
}

test('ops nested too deep are 400 by every way in, on real agents; none stops, the session carries on', () => within((async () => {
  const cluster = await LocalCluster.start({ nodes: 3, profile: 'local', services: 'log' })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http), transport: 'stream' })
  try {
    await cluster.waitConverged(60_000)
    const session = await client.open({ terminalId: 'deep', service: 'log' })
    assert.is(session.group?.length, 3, 'a group of three, so that the owner sends frames')
    const owner = cluster.agents.find((a) => a.id === session.owner?.id)
    assert.ok(owner !== undefined)
    const path = `${owner.http}/v1/sessions/${encodeURIComponent(session.sessionId)}`
    const tooDeep = `nests deeper than ${MAX_JSON_DEPTH} levels`

    const single = await post(`${path}/deltas`, session.token, `{"clientSeq":1,"op":${nestedText(MAX_JSON_DEPTH + 1)}}`)
    assert.is(single.status, 400)
    assert.match(String(single.body.error), tooDeep)
    const bomb = await post(`${path}/deltas`, session.token, `{"clientSeq":1,"op":${nestedText(5_000)}}`)
    assert.is(bomb.status, 400)

    // The deltas stream, through the client; clientSeq 1 stays free for the next op.
    let refused: unknown = null
    try {
      await session.append(JSON.parse(nestedText(MAX_JSON_DEPTH + 1)))
    } catch (error) {
      refused = error
    }
    assert.ok(refused instanceof EdgeClientError, `refused: ${String(refused)}`)
    assert.is(refused.status, 400)
    assert.match(String(refused.serverError), tooDeep)
    const fits = await session.append(JSON.parse(nestedText(MAX_JSON_DEPTH)))
    assert.is(fits.index, 2)

    // A batch logs the op before the deep one and refuses the rest.
    const batch = await post(`${path}/batch`, session.token, `{"clientSeq":2,"ops":[{"append":"ok"},${nestedText(MAX_JSON_DEPTH + 1)}]}`)
    assert.is(batch.status, 200, JSON.stringify(batch.body))
    assert.equal((batch.body.results as unknown[]).length, 1, 'the op before the deep one is logged')
    assert.match(JSON.stringify(batch.body.refused), tooDeep)

    await new Promise((resolve) => setTimeout(resolve, 500))
    for (const agent of cluster.agents) assert.ok(agent.running, `${agent.name} still runs`)
    const state = await session.get()
    assert.equal(state.state, [JSON.parse(nestedText(MAX_JSON_DEPTH)).append, 'ok'])
  } finally {
    client.destroy()
    await cluster.destroy()
  }
})(), TEST_TIMEOUT_MS))

test.run()
