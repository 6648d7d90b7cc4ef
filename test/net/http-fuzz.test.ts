// The HTTP API under random and hostile requests, against a real agent process
// (two agents, so session requests go through placement and the replication
// stream): random methods, paths (known routes with garbage ids, bad percent
// encoding, long paths, query strings), headers (Authorization with made-up,
// malformed and foreign tokens; content types) and bodies (random bytes, random
// JSON, objects with the API's field names and wrong values, oversized bodies),
// plus raw bytes that are no HTTP at all. Every answer is a 2xx-4xx, never a
// 5xx; every refusal is JSON with an "error" that says what was refused; the
// agent keeps running and keeps serving a real terminal's session.
//
//   SEED=123 node test/net/http-fuzz.test.ts     replays one run

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { randomInt } from 'node:crypto'
import { request } from 'node:http'
import { connect } from 'node:net'
import { EdgeClient } from '../../agent/client/index.ts'
import { LocalCluster } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

const SEED = process.env.SEED === undefined ? randomInt(2 ** 31) : Number(process.env.SEED)
const RUNS = Number(process.env.RUNS ?? 400)
const TIMEOUT_MS = 120_000

type Req = { method: string; path: string; headers: Record<string, string>; body: Uint8Array }
type Res = { status: number; headers: Record<string, string | string[] | undefined>; text: string }

function send (base: URL, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    const r = request({ host: base.hostname, port: base.port, method: req.method, path: req.path, headers: { ...req.headers, 'content-length': String(req.body.length) }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    r.on('timeout', () => r.destroy(new Error('no answer within 10 s')))
    r.on('error', reject)
    r.end(req.body)
  })
}

const token = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.stringMatching(/^[A-Za-z0-9._:~-]{1,80}$/),
  fc.constant('log-0000~' + 'a'.repeat(43)),
  fc.constant('~'),
  fc.constant('../../etc~x')
)
const segment = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9._:-]{1,20}$/),
  fc.string({ maxLength: 30 }).map(encodeURIComponent),
  fc.constantFrom('%', '%zz', '%00', '%2F', '..', '%E0%A4%A', 'a'.repeat(200), '%C0%AF', '~', '')
)
const path = fc.oneof(
  fc.constantFrom('/v1/health', '/v1/members', '/metrics', '/v1/sessions', '/', '/v1', '/v1/sessions/'),
  segment.map((s) => `/v1/sessions/${s}`),
  segment.map((s) => `/v1/sessions/${s}/deltas`),
  fc.tuple(segment, segment).map(([a, b]) => `/v1/${a}/${b}`),
  fc.tuple(fc.constantFrom('/v1/sessions', '/v1/health'), fc.string({ maxLength: 40 })).map(([p, q]) => `${p}?${encodeURIComponent(q)}`),
  fc.nat({ max: 6000 }).map((n) => '/' + 'x'.repeat(n))
)
const method = fc.oneof(
  { arbitrary: fc.constantFrom('GET', 'POST', 'DELETE'), weight: 4 },
  { arbitrary: fc.constantFrom('PUT', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE'), weight: 1 },
  { arbitrary: fc.stringMatching(/^[A-Z]{1,12}$/), weight: 1 }
)
const fieldValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(-1), fc.constant(2 ** 60), fc.constant(1.5), fc.constant('log'), fc.constant('x'.repeat(300)))
const bodyObject = fc.record({
  terminalId: fieldValue, service: fieldValue, position: fieldValue, clientSeq: fieldValue, op: fieldValue
}, { requiredKeys: [] })
const encoder = new TextEncoder()
const body = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ maxLength: 300 }),
  fc.jsonValue().map((v) => encoder.encode(JSON.stringify(v))),
  bodyObject.map((v) => encoder.encode(JSON.stringify(v))),
  fc.string({ maxLength: 100 }).map((s) => encoder.encode('{"op": ' + s)),
  fc.constant(encoder.encode(JSON.stringify({ clientSeq: 1, op: 'x'.repeat(80_000) }))),
  fc.constant(encoder.encode('[' .repeat(100_000)))
)
const headers = fc.record({
  authorization: fc.oneof(token.map((t) => `Bearer ${t}`), token, fc.constant('Bearer'), fc.constant('Basic dXNlcjpwYXNz')),
  'content-type': fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x')
}, { requiredKeys: [] }).map((h) => {
  // Header values must be Latin-1 without control characters for node's client to send them.
  const clean: Record<string, string> = {}
  for (const [k, v] of Object.entries(h)) if (v !== undefined && /^[\x20-\x7e]*$/.test(v)) clean[k] = v
  return clean
})
const req: fc.Arbitrary<Req> = fc.record({ method, path, headers, body })

function checkAnswer (r: Req, res: Res): void {
  const what = `${r.method} ${r.path.slice(0, 120)} (${r.body.length}-byte body) -> ${res.status} ${res.text.slice(0, 200)}`
  assert.ok(res.status >= 200 && res.status < 500, `a server error for bad input: ${what}`)
  if (r.method === 'HEAD' || res.status < 400) return
  let parsed: unknown
  try {
    parsed = JSON.parse(res.text)
  } catch {
    assert.unreachable(`a refusal that is not JSON: ${what}`)
  }
  const error = (parsed as { error?: unknown }).error
  assert.ok(typeof error === 'string' && error.length > 5, `a refusal without a clear "error": ${what}`)
}

function withTimeout<T> (promise: Promise<T>): Promise<T> {
  return within(promise, TIMEOUT_MS)
}

// Bytes that are no HTTP request: the server's parser answers 400 or hangs up.
function rawGarbage (base: URL, bytes: Uint8Array): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(Number(base.port), base.hostname)
    let answer = ''
    socket.setTimeout(3_000, () => socket.destroy())
    socket.on('data', (c) => { answer += c.toString('latin1') })
    socket.on('close', () => resolve(answer))
    socket.on('error', () => resolve(answer))
    socket.end(bytes)
  })
}

test(`random and hostile HTTP requests get a clear 4xx, never a 5xx, and the agent keeps serving (seed ${SEED})`, () => withTimeout((async () => {
  console.log(`SEED=${SEED} RUNS=${RUNS} (replay: SEED=${SEED} node test/net/http-fuzz.test.ts)`)
  const cluster = await LocalCluster.start({ nodes: 2, services: 'log', configure: () => ({ extraArgs: ['--replicas', '1'] }) })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http) })
  try {
    await cluster.waitConverged(20_000)
    const target = cluster.agents[0]
    const base = new URL(target.http)
    const session = await client.open({ terminalId: 'fuzz-http', service: 'log' })
    // The real session's id, for requests that reach a live session with a wrong token.
    const real = fc.constantFrom(`/v1/sessions/${session.sessionId}`, `/v1/sessions/${session.sessionId}/deltas`)
    const requests = fc.sample(fc.oneof({ arbitrary: req, weight: 4 }, { arbitrary: fc.record({ method, path: real, headers, body }), weight: 1 }), { seed: SEED, numRuns: RUNS })
    const statuses = new Map<number, number>()
    let appended = 0
    for (const [i, r] of requests.entries()) {
      const res = await send(base, r)
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      checkAnswer(r, res)
      // A terminal's append between the attacks, acknowledged every time.
      if (i % 50 === 0) {
        await session.append({ append: `between-${i}` })
        appended++
      }
    }
    for (const [i, bytes] of fc.sample(fc.uint8Array({ minLength: 1, maxLength: 200 }), { seed: SEED, numRuns: 30 }).entries()) {
      const answer = await rawGarbage(base, bytes)
      assert.ok(answer === '' || /^HTTP\/1\.1 4\d\d/.test(answer), `raw garbage ${i}: ${answer.slice(0, 80)}`)
    }
    console.log(`  statuses: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(', ')}`)
    assert.ok(target.running, 'the agent is still running')
    const state = await session.get()
    const values = state.state as string[]
    assert.is(values.filter((v) => v.startsWith('between-')).length, appended, 'every acknowledged append is there once')
  } finally {
    client.destroy()
    await cluster.destroy()
  }
})()))

test.run()
