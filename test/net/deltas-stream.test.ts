// The deltas stream on real agents: three `edge-agent start` processes on
// 127.0.0.1. The EdgeClient's appends and batches from many sessions travel on
// one connection per agent, pipelined, and are acknowledged in order; a raw
// connection gets the HTTP API's answers (401, 307, 400) frame by frame; a frame
// that is not JSON is refused and the connection goes on; a frame over the
// limit is refused and the connection closed; the agent keeps serving. A client
// meeting an agent without the stream (404 to the upgrade) uses HTTP. Seeded
// random frames (bytes, JSON, envelopes with wrong values, a live session's
// token with garbage bodies) all get a 2xx-4xx answer with a reason, never a 5xx,
// while a real terminal's appends go on. A terminal that stops reading its
// replies stops being read, and gets every reply once it reads again.
//
//   SEED=123 node test/net/deltas-stream.test.ts     replays the random frames
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { randomInt } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { EdgeClient } from '../../agent/client/index.ts'
import { DeltaStreams } from '../../agent/client/deltas-stream.ts'
import { DELTAS_STREAM_PATH, DELTAS_STREAM_PROTOCOL, encodeFrame, FrameReader, MAX_STREAM_FRAME_BYTES } from '../../protocol/deltas-stream.ts'
import { LocalCluster } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

const TEST_TIMEOUT_MS = 120_000
const SEED = process.env.SEED === undefined ? randomInt(2 ** 31) : Number(process.env.SEED)
let cluster: LocalCluster | null = null

async function agents (): Promise<LocalCluster> {
  if (cluster === null) {
    cluster = await LocalCluster.start({ nodes: 3, profile: 'local', services: 'log' })
    await cluster.waitConverged(60_000)
  }
  return cluster
}

async function metric (http: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text()
  const match = pattern.exec(text)
  return match === null ? 0 : Number(match[1])
}

type Raw = { socket: Socket; send: (frame: object | Buffer) => void; next: () => Promise<Record<string, unknown>>; closed: Promise<void> }

// A connection upgraded by hand: what any terminal in any language would do.
async function rawStream (http: string, protocol = DELTAS_STREAM_PROTOCOL): Promise<Raw | string> {
  const url = new URL(http)
  const socket = connect(Number(url.port), url.hostname)
  const reader = new FrameReader()
  const frames: Array<Record<string, unknown>> = []
  const waiters: Array<(frame: Record<string, unknown>) => void> = []
  let head = Buffer.alloc(0)
  let upgraded = false
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.on('error', () => {})
  const answer = await new Promise<string>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      if (!upgraded) {
        head = Buffer.concat([head, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        const status = head.subarray(0, end).toString()
        if (!status.startsWith('HTTP/1.1 101')) return resolve(head.toString())
        upgraded = true
        resolve('101')
        chunk = head.subarray(end + 4)
      }
      for (const frame of reader.push(chunk).frames) {
        const value = JSON.parse(frame.toString()) as Record<string, unknown>
        const waiter = waiters.shift()
        if (waiter === undefined) frames.push(value)
        else waiter(value)
      }
    })
    socket.write(`GET ${DELTAS_STREAM_PATH} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: Upgrade\r\nupgrade: ${protocol}\r\n\r\n`)
  })
  if (answer !== '101') {
    socket.destroy()
    return answer
  }
  return {
    socket,
    closed,
    send: (frame) => { socket.write(Buffer.isBuffer(frame) ? frame : encodeFrame(frame)) },
    next: async () => frames.shift() ?? await new Promise((resolve) => waiters.push(resolve))
  }
}

function lengthPrefixed (text: string): Buffer {
  const body = Buffer.from(text)
  const head = Buffer.alloc(4)
  head.writeUInt32BE(body.length, 0)
  return Buffer.concat([head, body])
}

test('appends and batches of many sessions share one connection per agent, pipelined, each acknowledged in order', () => within((async () => {
  const c = await agents()
  const client = new EdgeClient({ agents: c.agents.map((a) => a.http) })
  try {
    const sessions = await Promise.all(Array.from({ length: 6 }, async (_, i) => await client.open({ terminalId: `stream-${i}`, service: 'log' })))
    const before = await Promise.all(c.agents.map(async (a) => await metric(a.http, /^edge_agent_deltas_stream_requests_total\{result="ok"\} (\d+)/m)))
    const written = await Promise.all(sessions.map(async (s, i) => {
      const values: string[] = []
      // Several appends in flight per session (the client joins those it can),
      // and sessions side by side on the same connections.
      await Promise.all(Array.from({ length: 40 }, async (_, k) => {
        const v = `s${i}-${k}`
        values.push(v)
        await s.append({ append: v })
      }))
      const batch = Array.from({ length: 20 }, (_, k) => `s${i}-b${k}`)
      const results = await s.appendMany(batch.map((v) => ({ append: v })))
      for (let k = 1; k < results.length; k++) assert.is(results[k].index, results[k - 1].index + 1)
      return [...values, ...batch]
    }))
    for (const [i, s] of sessions.entries()) {
      const state = (await s.get()).state as string[]
      assert.equal(state, written[i], `session ${i}: every value once, in the order acknowledged`)
    }
    const after = await Promise.all(c.agents.map(async (a) => await metric(a.http, /^edge_agent_deltas_stream_requests_total\{result="ok"\} (\d+)/m)))
    const streamed = after.reduce((sum, n, i) => sum + n - before[i], 0)
    assert.ok(streamed >= 6, `appends answered on the stream: ${streamed}`)
    const connections = await Promise.all(c.agents.map(async (a) => await metric(a.http, /^edge_agent_deltas_stream_connections (\d+)/m)))
    assert.ok(connections.every((n) => n <= 1), `one connection per agent at most: ${connections.join(', ')}`)
    await Promise.all(sessions.map(async (s) => await s.close()))
  } finally {
    client.destroy()
  }
})(), TEST_TIMEOUT_MS))

test('a raw connection gets the HTTP API answers frame by frame; bad frames are refused and the agent keeps serving', () => within((async () => {
  const c = await agents()
  const client = new EdgeClient({ agents: c.agents.map((a) => a.http), transport: 'http' })
  try {
    const session = await client.open({ terminalId: 'raw-stream', service: 'log' })
    const owner = c.agents.find((a) => a.id === session.owner?.id)
    const standby = c.agents.find((a) => a.id !== session.owner?.id)
    assert.ok(owner !== undefined && standby !== undefined)
    const raw = await rawStream(owner.http)
    assert.ok(typeof raw !== 'string', String(raw))
    if (typeof raw === 'string') return

    // Pipelined: three requests out before any answer is read.
    raw.send({ id: 1, session: session.sessionId, token: session.token, clientSeq: 1, op: { append: 'r1' } })
    raw.send({ id: 2, session: session.sessionId, token: session.token, clientSeq: 2, ops: [{ append: 'r2' }, { append: 'r3' }] })
    raw.send({ id: 3, session: session.sessionId, token: `${session.sessionId}~wrong`, clientSeq: 4, op: { append: 'x' } })
    const answers = new Map<number, Record<string, unknown>>()
    for (let i = 0; i < 3; i++) {
      const a = await raw.next()
      answers.set(a.id as number, a)
    }
    assert.is(answers.get(1)?.status, 200)
    assert.is(answers.get(2)?.status, 200)
    assert.is(((answers.get(2)?.body as { results: unknown[] }).results).length, 2)
    assert.ok([401, 403].includes(answers.get(3)?.status as number), JSON.stringify(answers.get(3)))

    // Not JSON: refused with id 0; the connection goes on.
    raw.send(lengthPrefixed('{"id": 4, "sess'))
    const notJson = await raw.next()
    assert.equal({ id: notJson.id, status: notJson.status }, { id: 0, status: 400 })
    assert.match(String((notJson.body as { error: string }).error), /not valid JSON/)
    raw.send({ id: 5, session: 'no spaces allowed', token: 't', clientSeq: 1, op: 1 })
    const badId = await raw.next()
    assert.equal({ id: badId.id, status: badId.status }, { id: 5, status: 400 })
    raw.send({ id: 6, session: session.sessionId, token: session.token, clientSeq: 4, op: { append: 'r4' } })
    const after = await raw.next()
    assert.equal({ id: after.id, status: after.status }, { id: 6, status: 200 })

    // Over the session's rate (200 requests/s, a burst of 400, by default): 429
    // with the wait in ms, as the HTTP body gives it (not Retry-After's whole
    // seconds). Wrong token, so nothing is appended. The bucket refills while the
    // agent answers, so the flood goes on in rounds until it is refused: any box
    // answering faster than 200 requests/s empties the bucket within the bound.
    const round = 200
    const maxRequests = 8_000
    let limited: Record<string, unknown> | null = null
    let sent = 0
    while (limited === null && sent < maxRequests) {
      for (let i = 0; i < round; i++) raw.send({ id: 100 + sent + i, session: session.sessionId, token: `${session.sessionId}~wrong`, clientSeq: 9, op: { append: 'no' } })
      sent += round
      for (let i = 0; i < round; i++) {
        const answer = await raw.next()
        if (answer.status === 429) limited ??= answer
        else assert.ok([401, 403].includes(answer.status as number), JSON.stringify(answer))
      }
    }
    assert.ok(limited !== null, `the flood met the session rate limit (${sent} requests sent)`)
    const body = limited.body as { retryAfterMs: number; limit: string }
    assert.is(body.limit, 'session-requests')
    assert.is(limited.retryAfterMs, body.retryAfterMs)

    // Over the limit: refused, and the connection closed (nothing after a bad
    // length can be trusted to be a frame).
    const huge = Buffer.alloc(4)
    huge.writeUInt32BE(MAX_STREAM_FRAME_BYTES + 1, 0)
    raw.send(huge)
    const tooLarge = await raw.next()
    assert.equal({ id: tooLarge.id, status: tooLarge.status }, { id: 0, status: 413 })
    await raw.closed

    // A standby answers with the owner's address, as over HTTP.
    const viaStandby = await rawStream(standby.http)
    assert.ok(typeof viaStandby !== 'string')
    if (typeof viaStandby === 'string') return
    viaStandby.send({ id: 1, session: session.sessionId, token: session.token, clientSeq: 5, op: { append: 'r5' } })
    const moved = await viaStandby.next()
    assert.is(moved.status, 307)
    assert.match(String(moved.location), new RegExp(`^${owner.http}/v1/sessions/`))
    viaStandby.socket.destroy()

    // Another protocol, or no upgrade at all, is refused in plain HTTP.
    const other = await rawStream(owner.http, 'websocket')
    assert.ok(typeof other === 'string' && other.startsWith('HTTP/1.1 400'), String(other))
    assert.is((await fetch(`${owner.http}${DELTAS_STREAM_PATH}`)).status, 404)

    // Everything acknowledged is there, once, in order; the agent still serves.
    assert.equal((await session.get()).state, ['r1', 'r2', 'r3', 'r4'])
    assert.is((await fetch(`${owner.http}/v1/health`)).status, 200)
    assert.ok(await metric(owner.http, /^edge_agent_deltas_stream_requests_total\{result="refused"\} (\d+)/m) >= 4)
    await session.close()
  } finally {
    client.destroy()
  }
})(), TEST_TIMEOUT_MS))

test('random frames get a 2xx-4xx answer each, with a reason, never a 5xx; a terminal appending meanwhile loses nothing', () => within((async () => {
  console.log(`  deltas stream fuzz SEED=${SEED} (replay: SEED=${SEED} node test/net/deltas-stream.test.ts)`)
  const c = await agents()
  const client = new EdgeClient({ agents: c.agents.map((a) => a.http) })
  try {
    const victim = await client.open({ terminalId: 'fuzzed', service: 'log' })
    const bystander = await client.open({ terminalId: 'bystander', service: 'log' })
    const owner = c.agents.find((a) => a.id === victim.owner?.id)
    assert.ok(owner !== undefined)
    const anything = fc.oneof(fc.jsonValue(), fc.string(), fc.integer(), fc.constant(null), fc.double())
    const envelope = fc.record({
      id: fc.oneof(fc.integer({ min: 1, max: 1_000_000 }), anything),
      session: fc.oneof(fc.constant(victim.sessionId), fc.string({ maxLength: 200 }), anything),
      token: fc.oneof(fc.constant(victim.token), fc.constant(`${victim.sessionId}~${'00'.repeat(32)}`), fc.string(), anything),
      clientSeq: fc.oneof(fc.integer({ min: -5, max: 1_000_000 }), anything),
      op: fc.oneof(fc.record({ append: fc.string() }), anything),
      ops: fc.oneof(fc.array(fc.record({ append: fc.string() }), { maxLength: 5 }), anything)
    }, { requiredKeys: [] })
    const frame = fc.oneof(
      envelope.map((e) => encodeFrame(e)),
      fc.jsonValue().map((v) => lengthPrefixed(JSON.stringify(v))),
      fc.uint8Array({ maxLength: 300 }).map((b) => lengthPrefixed(Buffer.from(b).toString('latin1')))
    )
    const frames = fc.sample(frame, { numRuns: 300, seed: SEED })
    const raw = await rawStream(owner.http)
    assert.ok(typeof raw !== 'string', String(raw))
    if (typeof raw === 'string') return
    const appended: string[] = []
    const appending = (async () => {
      for (let i = 0; i < 40; i++) {
        await bystander.append({ append: `b${i}` })
        appended.push(`b${i}`)
      }
    })()
    for (const f of frames) raw.send(f)
    for (let i = 0; i < frames.length; i++) {
      const answer = await raw.next()
      const status = answer.status as number
      assert.ok(status >= 200 && status < 500, `SEED=${SEED}: answer ${i} is ${JSON.stringify(answer).slice(0, 300)}`)
      if (status >= 300 && status !== 307) assert.type((answer.body as { error?: unknown }).error, 'string', `SEED=${SEED}: ${JSON.stringify(answer).slice(0, 300)}`)
    }
    await appending
    raw.socket.destroy()
    assert.equal((await bystander.get()).state, appended)
    assert.is((await fetch(`${owner.http}/v1/health`)).status, 200)
    await Promise.all([victim.close(), bystander.close()])
  } finally {
    client.destroy()
  }
})(), TEST_TIMEOUT_MS))

test('a terminal that stops reading its replies is not read either, and loses nothing once it reads again', () => within((async () => {
  const c = await agents()
  const owner = c.agents[0]
  const raw = await rawStream(owner.http)
  assert.ok(typeof raw !== 'string', String(raw))
  if (typeof raw === 'string') return
  // Refused at once (not a session id: no lookup, no rate limit), so the agent
  // answers as fast as it reads; with the terminal not reading, its replies fill
  // the socket buffers (more than the kernel's on both sides hold).
  const total = 200_000
  raw.socket.pause()
  let queued = 0
  for (let id = 1; id <= total; id++) {
    if (!raw.socket.write(encodeFrame({ id, session: 'not a session', token: 'x', clientSeq: 1, op: 1 }))) queued++
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  assert.ok(raw.socket.writableLength > 0, 'the agent stopped reading: our requests wait in our own buffer')
  raw.socket.resume()
  const seen = new Set<number>()
  for (let i = 0; i < total; i++) {
    const answer = await raw.next()
    assert.is(answer.status, 400, JSON.stringify(answer))
    seen.add(answer.id as number)
  }
  assert.is(seen.size, total, 'one answer per request')
  assert.ok(queued > 0)
  raw.socket.destroy()
  assert.is((await fetch(`${owner.http}/v1/health`)).status, 200)
})(), TEST_TIMEOUT_MS))

test('an agent without the deltas stream (404 to the upgrade) is asked over HTTP, and not asked to upgrade again', () => within((async () => {
  let upgrades = 0
  const server = createServer((request, response) => {
    if (request.headers.upgrade !== undefined) upgrades++
    response.writeHead(404, { 'content-type': 'application/json' })
    response.end('{"error":"no such endpoint"}\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const streams = new DeltaStreams()
  try {
    const agent = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const call = { agent, sessionId: 'log:1', token: 'log:1~t', body: { clientSeq: 1, op: 1 }, timeoutMs: 2_000 }
    assert.is(await streams.request(call), null)
    assert.is(await streams.request(call), null)
    assert.is(upgrades, 1)
  } finally {
    streams.destroy()
    server.close()
  }
})(), TEST_TIMEOUT_MS))

test('a request not answered in time fails alone while others are answered; with nothing answered the connection is replaced', () => within((async () => {
  // A stand-in agent: answers every frame except those whose op is "hold";
  // once `silent`, answers nothing.
  let upgrades = 0
  let silent = false
  const server = createServer()
  server.on('upgrade', (_request, socket: Socket) => {
    upgrades++
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${DELTAS_STREAM_PROTOCOL}\r\nconnection: Upgrade\r\n\r\n`)
    const reader = new FrameReader()
    socket.on('data', (chunk: Buffer) => {
      for (const frame of reader.push(chunk).frames) {
        const request = JSON.parse(frame.toString()) as { id: number; op: unknown }
        if (silent || request.op === 'hold') continue
        socket.write(encodeFrame({ id: request.id, status: 200, body: { index: request.id } }))
      }
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const streams = new DeltaStreams()
  try {
    const agent = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const call = (op: unknown, timeoutMs: number): Promise<unknown> => streams.request({ agent, sessionId: 'log:1', token: 'log:1~t', body: { clientSeq: 1, op }, timeoutMs })
    const held = call('hold', 300).then(() => 'answered', (error: { code?: string }) => error.code)
    // Answers keep coming while the held one waits.
    for (let i = 0; i < 8; i++) {
      assert.is(((await call(i, 1_000)) as { status: number }).status, 200)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    assert.is(await held, 'ETIMEDOUT')
    assert.is(((await call('after', 1_000)) as { status: number }).status, 200)
    assert.is(upgrades, 1, 'the connection survived the one slow request')
    // Now nothing is answered: the timeout closes the connection, and the
    // request in flight beside it fails as timed out too (the client then asks
    // the next agent instead of this one again on a fresh connection).
    silent = true
    const [first, second] = await Promise.all([call('a', 300), call('b', 2_000)].map(async (p) => await p.then(() => 'answered', (error: { code?: string }) => error.code)))
    assert.equal([first, second], ['ETIMEDOUT', 'ETIMEDOUT'])
    silent = false
    assert.is(((await call('fresh', 1_000)) as { status: number }).status, 200)
    assert.is(upgrades, 2, 'a fresh connection')
  } finally {
    streams.destroy()
    server.close()
  }
})(), TEST_TIMEOUT_MS))

test.after(async () => {
  await cluster?.destroy()
})

test.run()
