// The CLI's HTTP requests (agent/cli/http-call.ts, used by peek, deploy and
// services) end at their deadline even when the server trickles bytes: with
// node:http's idle `timeout`, `edge-agent peek --timeout 2000` against a server
// sending one byte a second hung until killed.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { httpCall } from '../../agent/cli/http-call.ts'
import { fetchMembers } from '../../agent/cli/peek.ts'

test('a request to a server that trickles its answer fails at the deadline; a prompt one gets its body', async () => {
  const timers = new Set<NodeJS.Timeout>()
  const server = createServer((request, response) => {
    if (request.url === '/prompt') { response.end('{"ok":true}'); return }
    response.writeHead(200)
    const timer = setInterval(() => response.write(' '), 100)
    timers.add(timer)
    response.on('close', () => clearInterval(timer))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  try {
    assert.equal(await httpCall(`${base}/prompt`, { timeoutMs: 5_000 }), { status: 200, text: '{"ok":true}' })
    let failed: (Error & { code?: string }) | null = null
    try {
      await httpCall(`${base}/trickle`, { timeoutMs: 400 })
    } catch (error) {
      failed = error as Error & { code?: string }
    }
    assert.ok(failed !== null, 'the trickling answer did not end the request')
    assert.is(failed.code, 'ETIMEDOUT')
    assert.match(failed.message, 'within 400 ms')
  } finally {
    for (const timer of timers) clearInterval(timer)
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

// `edge-agent peek` at a server that is not an edge-agent: a clear refusal naming
// what is wrong, not a TypeError from the table formatter.
test('peek refuses a member list that is not an edge-agent\'s, naming the first bad entry', async () => {
  const bodies = ['{"self":"a","members":[{}]}', '{"self":"a","members":[{"id":null}]}', JSON.stringify({ self: 'a', members: Array.from({ length: 3 }, () => ({ id: 'x' })) })]
  let next = 0
  const server = createServer((_request, response) => { response.end(bodies[next++]) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  try {
    for (const expected of ["members[0] has no string 'id'", "members[0] has no string 'id'", "members[0] has no string 'ip'"]) {
      let refused: Error | null = null
      try {
        await fetchMembers(base, 2_000, 'default')
      } catch (error) {
        refused = error as Error
      }
      assert.ok(refused !== null && refused.name !== 'TypeError', String(refused))
      assert.match(refused.message, expected)
    }
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

test.run()
