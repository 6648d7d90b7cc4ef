// Terminals against a real agent (the CLI, 127.0.0.1): one terminal's token
// opens nothing of another's session; rate limits answer 429 with Retry-After
// and size limits 413, each counted in /metrics; the HTTP API over TLS works with
// EdgeClient, `edge-agent session` and `edge-agent peek` given the CA; an API
// bound beyond loopback without TLS warns.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { connect } from 'node:net'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { DeltaStreams } from '../../agent/client/deltas-stream.ts'
import { EdgeClient } from '../../agent/client/index.ts'
import { AgentProcess, runCli } from '../../sim/processes.ts'
import { MAX_OP_BYTES } from '../../protocol/limits.ts'
import { until, within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 90_000
const dir = mkdtempSync(join(tmpdir(), 'edge-terminals-'))
const started: AgentProcess[] = []

function withTimeout<T> (promise: Promise<T>): Promise<T> {
  return within(promise, TIMEOUT_MS)
}

async function agent (name: string, extraArgs: string[] = [], httpHost = '127.0.0.1'): Promise<AgentProcess> {
  const args = ['--replicas', '0', ...extraArgs]
  if (httpHost !== '127.0.0.1') args.push('--http', `${httpHost}:0`)
  const a = await AgentProcess.start({ name, dataDir: join(dir, name), profile: 'local', services: 'log', extraArgs: args, logLevel: 'warn' })
  started.push(a)
  return a
}

async function limitCount (http: string, limit: string): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text()
  const match = new RegExp(`^edge_agent_limit_exceeded_total\\{limit="${limit}"\\} (\\d+)`, 'm').exec(text)
  return match === null ? NaN : Number(match[1])
}

async function call (url: string, init: { method?: string; token?: string; body?: unknown; raw?: string } = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
  const response = await fetch(url, { method: init.method ?? 'GET', headers, body: init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body)) })
  return { status: response.status, body: await response.json() as Record<string, unknown>, headers: response.headers }
}

test('an open asked again with the same openKey gets the same session and token; the key with another request is 409; a bad key is refused', () => withTimeout((async () => {
  const a = await agent('open-retry')
  const url = `${a.http}/v1/sessions`
  const key = 'k'.repeat(11) + 'Z'.repeat(11) + '_-'
  // The retry arriving while the first is still being made, and after it.
  const [first, concurrent] = await Promise.all([
    call(url, { method: 'POST', body: { terminalId: 't', service: 'log', openKey: key } }),
    call(url, { method: 'POST', body: { terminalId: 't', service: 'log', openKey: key } })
  ])
  const later = await call(url, { method: 'POST', body: { terminalId: 't', service: 'log', openKey: key } })
  assert.is(first.status, 201)
  for (const again of [concurrent, later]) {
    assert.is(again.status, 201)
    assert.is(again.body.sessionId, first.body.sessionId)
    assert.is(again.body.token, first.body.token)
  }
  const other = await call(url, { method: 'POST', body: { terminalId: 't', service: 'log', openKey: key + 'x' } })
  assert.is.not(other.body.sessionId, first.body.sessionId)
  // The same key with another request is not a retry: 409, no session, and not the first one's token.
  for (const changed of [{ terminalId: 'u', service: 'log' }, { terminalId: 't', service: 'kv' }, { terminalId: 't', service: 'log', position: '40.4,-3.7' }]) {
    const reused = await call(url, { method: 'POST', body: { ...changed, openKey: key } })
    assert.is(reused.status, 409, JSON.stringify(changed))
    assert.match(String(reused.body.error), /openKey/)
    assert.is(reused.body.token, undefined)
  }
  const listed = await call(url)
  assert.is((listed.body.sessions as unknown[]).length, 2, 'two keys, two sessions')
  const bad = await call(url, { method: 'POST', body: { terminalId: 't', service: 'log', openKey: 'short' } })
  assert.is(bad.status, 400)
  assert.match(String(bad.body.error), /openKey/)
})()))

test("one terminal's token neither reads nor writes another's session", () => withTimeout((async () => {
  const a = await agent('isolation')
  const client = new EdgeClient({ agents: [a.http] })
  try {
    const mine = await client.open({ terminalId: 'kiosk-1', service: 'log' })
    const theirs = await client.open({ terminalId: 'kiosk-2', service: 'log' })
    await theirs.append({ append: 'secret' })
    const path = `${a.http}/v1/sessions/${encodeURIComponent(theirs.sessionId)}`
    // My valid token, their session: refused on every route, nothing applied.
    assert.is((await call(path, { token: mine.token })).status, 401)
    assert.is((await call(`${path}/deltas`, { method: 'POST', token: mine.token, body: { clientSeq: 2, op: { append: 'forged' } } })).status, 401)
    assert.is((await call(path, { method: 'DELETE', token: mine.token })).status, 401)
    // Their session id with a made-up secret, as a resume: refused too.
    const guessed = `${theirs.sessionId}~${'0'.repeat(64)}`
    assert.is((await call(`${a.http}/v1/sessions`, { method: 'POST', token: guessed, body: {} })).status, 401)
    assert.is((await call(path, { token: guessed })).status, 401)
    const state = await theirs.get()
    assert.equal(state.state, ['secret'], 'their session holds only their append')
    assert.is(state.lastClientSeq, 1)
    assert.equal((await mine.get()).state, [])
  } finally {
    client.destroy()
  }
})()))

test('size limits: an oversized body and an oversized delta are 413, counted, and the agent keeps serving', () => withTimeout((async () => {
  const a = await agent('sizes')
  const client = new EdgeClient({ agents: [a.http] })
  try {
    const session = await client.open({ terminalId: 'kiosk-3', service: 'log' })
    const deltas = `${a.http}/v1/sessions/${encodeURIComponent(session.sessionId)}/deltas`
    const huge = await call(deltas, { method: 'POST', token: session.token, raw: JSON.stringify({ clientSeq: 1, op: { append: 'x'.repeat(200_000) } }) })
    assert.is(huge.status, 413)
    assert.match(String(huge.body.error), 'request body of')
    // Fits the body limit, not the delta limit: refused by the owner.
    const big = await call(deltas, { method: 'POST', token: session.token, body: { clientSeq: 1, op: { append: 'x'.repeat(MAX_OP_BYTES) } } })
    assert.is(big.status, 413)
    assert.match(String(big.body.error), `exceeds ${MAX_OP_BYTES}`)
    assert.is(await limitCount(a.http, 'request-body-size'), 1)
    assert.is(await limitCount(a.http, 'delta-size'), 1)
    assert.equal(await session.append({ append: 'still fine' }), { index: 2, epoch: 1, duplicate: false })
  } finally {
    client.destroy()
  }
})()))

test('rate limits: a flooding session gets 429 with Retry-After; the client waits it out; counted', () => withTimeout((async () => {
  const config = join(dir, 'limits.json')
  writeFileSync(config, JSON.stringify({ limits: { sessionRequestsPerS: 20 } }))
  const a = await agent('rates', ['--config', config])
  const client = new EdgeClient({ agents: [a.http] })
  try {
    const session = await client.open({ terminalId: 'kiosk-4', service: 'log' })
    const path = `${a.http}/v1/sessions/${encodeURIComponent(session.sessionId)}`
    const t0 = performance.now()
    // 300 at once against a burst of 40 refilled at 20/s: some are refused
    // unless answering them all took the box over 13 s.
    const flood = 300
    const answers = await Promise.all(Array.from({ length: flood }, async () => await call(path, { token: session.token })))
    const elapsedS = (performance.now() - t0) / 1000
    const throttled = answers.filter((r) => r.status === 429)
    const served = answers.filter((r) => r.status === 200).length
    // At most the burst (40) plus what the rate refilled meanwhile was served.
    assert.ok(served >= 1 && served <= 40 + Math.ceil(20 * elapsedS) + 1, `${served} of ${flood} served in ${elapsedS.toFixed(2)} s`)
    assert.is(served + throttled.length, flood)
    assert.is(throttled[0].headers.get('retry-after'), '1')
    assert.match(String(throttled[0].body.error), `rate limit: session ${session.sessionId} is over 20 requests/s (limits.sessionRequestsPerS)`)
    assert.ok(await limitCount(a.http, 'session-requests') >= throttled.length)
    // The client treats 429 as "wait and ask again": every append gets through.
    for (let i = 0; i < 50; i++) await session.append({ append: i })
    assert.is((await session.get()).index, 51)
  } finally {
    client.destroy()
  }
})()))

const hasOpenssl = spawnSync('openssl', ['version']).status === 0

test('TLS: the API speaks https; EdgeClient, session, peek and services work given the CA, and refuse without it', () => withTimeout((async () => {
  if (!hasOpenssl) {
    console.log('  SKIPPED: openssl is not installed, so no certificate can be made for the TLS test')
    return
  }
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  const a = await agent('tls', ['--tls-cert', cert, '--tls-key', key])
  assert.match(a.http, /^https:\/\/127\.0\.0\.1:\d+$/)
  const client = new EdgeClient({ agents: [a.http], ca: readFileSync(cert) })
  try {
    const session = await client.open({ terminalId: 'kiosk-5', service: 'log' })
    await session.append({ append: 'over tls' })
    // The deltas stream is upgraded from the same https port, inside TLS.
    const streams = new DeltaStreams(readFileSync(cert))
    try {
      const streamed = await streams.request({ agent: a.http, sessionId: session.sessionId, token: session.token, body: { clientSeq: 2, op: { append: 'streamed over tls' } }, timeoutMs: 5_000 })
      assert.is(streamed?.status, 200, JSON.stringify(streamed))
    } finally {
      streams.destroy()
    }
    const cli = await runCli(['session', 'get', session.sessionId, '--token', session.token, '--agent', a.http, '--ca', cert])
    assert.is(cli.code, 0, cli.stderr)
    assert.equal((JSON.parse(cli.stdout) as { state: unknown }).state, ['over tls', 'streamed over tls'])
    const peek = await runCli(['peek', a.http, '--ca', cert, '--json'])
    assert.is(peek.code, 0, peek.stderr)
    assert.is((JSON.parse(peek.stdout) as { self: string }).self, a.id)
    const untrusted = await runCli(['peek', a.http, '--json'])
    assert.is(untrusted.code, 1)
    assert.match(untrusted.stderr, /cannot reach https:.*(SELF_SIGNED|DEPTH_ZERO|UNABLE_TO_VERIFY)/)
    // services (and deploy, which shares its requests) take the CA too; without it, the refusal says why.
    const services = await runCli(['services', a.http, '--ca', cert, '--json'])
    assert.is(services.code, 0, services.stderr)
    assert.equal((JSON.parse(services.stdout) as { agents: Array<{ id: string; error?: string }> }).agents.map((x) => [x.id, x.error]), [[a.id, undefined]])
    const servicesUntrusted = await runCli(['services', a.http])
    assert.is(servicesUntrusted.code, 1)
    assert.match(servicesUntrusted.stderr, /cannot reach https:.*(SELF_SIGNED|DEPTH_ZERO|UNABLE_TO_VERIFY).*--ca/)
    const plain = await runCli(['session', 'list', '--agent', a.http.replace('https:', 'http:'), '--timeout', '2000'])
    assert.is(plain.code, 1, 'plain http to a TLS agent gets nowhere')
  } finally {
    client.destroy()
  }
  const mismatched = await runCli(['start', '--tls-cert', cert, '--tls-key', cert, '--listen', '/ip4/127.0.0.1/tcp/0', '--http', '127.0.0.1:0', '--data-dir', join(dir, 'bad-tls'), '--log-level', 'silent'])
  assert.is(mismatched.code, 1)
  assert.match(mismatched.stderr, `cannot use the TLS certificate ${cert} with key ${cert}`)
})()))

test('an HTTP API bound beyond loopback without TLS warns at start', () => withTimeout((async () => {
  const a = await agent('exposed', [], '0.0.0.0')
  // stderr is its own pipe: the warning may arrive after the start line.
  await until(() => a.stderr.includes('reachable beyond this machine without TLS'), 5_000)
  assert.match(a.stderr, 'reachable beyond this machine without TLS')
  const local = await agent('loopback')
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.not.match(local.stderr, 'reachable beyond this machine')
})()))

// Raw HTTP/1.1 over one socket: everything the agent sent until it closed, or
// until `settleMs` of silence after the first bytes.
function rawExchange (http: string, head: string, body: Buffer | null, sendBodyAfter100: boolean): Promise<string> {
  const { hostname, port } = new URL(http)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let got = ''
    let timer: NodeJS.Timeout | null = null
    const finish = (): void => { if (timer !== null) clearTimeout(timer); socket.destroy(); resolve(got) }
    socket.on('data', (chunk) => {
      got += chunk.toString('latin1')
      if (sendBodyAfter100 && body !== null && got.startsWith('HTTP/1.1 100')) { socket.write(body); body = null }
      if (timer !== null) clearTimeout(timer)
      timer = setTimeout(finish, 1_000)
    })
    socket.on('close', finish)
    socket.on('error', (error) => { if (got === '') reject(error); else finish() })
    socket.write(head)
  })
}

test('Expect: 100-continue: a body over the limit gets its 413 at once, no 100; one within it gets 100, then its answer', () => withTimeout((async () => {
  const a = await agent('continue')
  const big = 5 * 1024 * 1024
  const refused = await rawExchange(a.http, `POST /v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${big}\r\nexpect: 100-continue\r\n\r\n`, null, false)
  assert.ok(refused.startsWith('HTTP/1.1 413'), refused.slice(0, 60))
  assert.not.ok(refused.includes('100 Continue'))
  assert.match(refused, '"limit":"request-body-size"')
  const body = Buffer.from(JSON.stringify({ terminalId: 'cont', service: 'log' }))
  const opened = await rawExchange(a.http, `POST /v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`, body, true)
  assert.ok(opened.startsWith('HTTP/1.1 100 Continue'), opened.slice(0, 60))
  assert.match(opened, 'HTTP/1.1 201')
})()))

test.after(async () => {
  for (const a of started) if (a.running) await a.stop().catch(() => {})
  rmSync(dir, { recursive: true, force: true })
})

test.run()
