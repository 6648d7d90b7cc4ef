// The EdgeClient against fake agents: node:http servers on 127.0.0.1 in this
// process, each playing the terminal API from a script (an owner, a standby that
// redirects, an agent that refuses, dies or freezes). Every request is recorded,
// so the tests read the clientSeqs each agent saw. Appends and batches come on
// the deltas stream (the client's default transport): the fake turns each frame
// into the HTTP request it stands for, so one script serves both transports.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { DELTAS_STREAM_PROTOCOL, encodeFrame, FrameReader } from '../../protocol/deltas-stream.ts'
import { UsageError } from '../../agent/cli/args.ts'
import { runSession } from '../../agent/cli/session.ts'
import { BatchRefusedError, EdgeClient, EdgeClientError, OutcomeUnknownError, RollbackError } from '../../agent/client/index.ts'
import type { EdgeClientOptions, Session } from '../../agent/client/index.ts'

const SESSION_ID = 'log:00c0ffee'
const TOKEN = `${SESSION_ID}~${'ab'.repeat(32)}`
const DELTAS = `/v1/sessions/${encodeURIComponent(SESSION_ID)}/deltas`
const CLI = new URL('../../bin/edge-agent.ts', import.meta.url).pathname

// ---- fake agents ---------------------------------------------------------------

type Seen = { method: string; path: string; token: string | null; body: Record<string, unknown> }
type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | 'hang'
type Script = (seen: Seen) => Answer | Promise<Answer>

class FakeAgent {
  readonly id: string
  readonly seen: Seen[] = []
  url = ''
  script: Script
  inFlight = 0
  maxInFlight = 0
  readonly #server: Server
  readonly #streams = new Set<Socket>()

  constructor (id: string, script: Script) {
    this.id = id
    this.script = script
    this.#server = createServer((request, response) => { void this.#handle(request, response) })
    this.#server.on('upgrade', (request: IncomingMessage, socket: Socket) => { this.#stream(request, socket) })
  }

  async listen (): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  // The agent dies: open connections drop, new ones are refused.
  async stop (): Promise<void> {
    if (!this.#server.listening) return
    for (const socket of this.#streams) socket.destroy()
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  deltaSeqs (): number[] {
    return this.seen.filter((s) => s.path.endsWith('/deltas')).map((s) => s.body.clientSeq as number)
  }

  #stream (request: IncomingMessage, socket: Socket): void {
    if (request.headers.upgrade !== DELTAS_STREAM_PROTOCOL) return void socket.destroy()
    this.#streams.add(socket)
    socket.on('close', () => this.#streams.delete(socket))
    socket.on('error', () => {})
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${DELTAS_STREAM_PROTOCOL}\r\nconnection: Upgrade\r\n\r\n`)
    const reader = new FrameReader()
    socket.on('data', (chunk: Buffer) => {
      for (const frame of reader.push(chunk).frames) {
        const { id, session, token, ...body } = JSON.parse(frame.toString()) as Record<string, unknown>
        const path = `/v1/sessions/${encodeURIComponent(String(session))}/${'ops' in body ? 'batch' : 'deltas'}`
        void this.#answer({ method: 'POST', path, token: String(token), body }).then((answer) => {
          if (answer === 'hang' || socket.destroyed) return
          const retry = answer.headers?.['retry-after']
          socket.write(encodeFrame({ id, status: answer.status, body: answer.body ?? {}, ...(answer.headers?.location === undefined ? {} : { location: answer.headers.location }), ...(retry === undefined ? {} : { retryAfterMs: Number(retry) * 1000 }) }))
        })
      }
    })
  }

  async #answer (seen: Seen): Promise<Answer> {
    this.seen.push(seen)
    this.inFlight += 1
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
    const answer = await this.script(seen)
    if (answer !== 'hang') this.inFlight -= 1
    return answer
  }

  async #handle (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    const auth = request.headers.authorization
    const seen = { method: request.method ?? '', path: request.url ?? '', token: auth === undefined ? null : auth.replace(/^Bearer /, ''), body: text === '' ? {} : JSON.parse(text) }
    const answer = await this.#answer(seen)
    if (answer === 'hang') return
    response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers })
    response.end(JSON.stringify(answer.body ?? {}))
  }
}

const live: FakeAgent[] = []
const clients: EdgeClient[] = []

async function agent (id: string, script: Script = () => ({ status: 500, body: { error: 'unscripted' } })): Promise<FakeAgent> {
  const fake = new FakeAgent(id, script)
  await fake.listen()
  live.push(fake)
  return fake
}

// Generous by default, so a loaded test box never times a request out by
// accident; the tests about timeouts set their own (and assert only what holds
// however many extra retries a slow box causes).
// test/unit/edge-client-http.test.ts runs every test again with transport 'http'.
const TRANSPORT = process.env.EDGE_CLIENT_TEST_TRANSPORT === 'http' ? 'http' : 'stream'

function client (options: Partial<EdgeClientOptions> & { agents: string[] }): EdgeClient {
  const made = new EdgeClient({ requestTimeoutMs: 2_000, deadlineMs: 10_000, transport: TRANSPORT, ...options })
  clients.push(made)
  return made
}

test.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy()
  await Promise.all(live.splice(0).map((a) => a.stop()))
})

// A session's group view: owner first, then standbys, then the witness.
function view (owner: FakeAgent | null, standbys: FakeAgent[], witness?: FakeAgent): Record<string, unknown> {
  return {
    sessionId: SESSION_ID,
    service: 'log',
    owner: owner === null ? null : { id: owner.id, http: owner.url },
    group: [
      ...(owner === null ? [] : [{ id: owner.id, http: owner.url, role: 'owner' }]),
      ...standbys.map((s) => ({ id: s.id, http: s.url, role: 'standby' })),
      ...(witness === undefined ? [] : [{ id: witness.id, http: witness.url, role: 'witness' }])
    ]
  }
}

// The replicated log the fake owners share: whoever owns it applies a clientSeq
// once, answers a retry with the original index, and refuses gaps with 409.
type Log = { lastSeq: number; index: number; applied: Map<number, number>; ops: unknown[] }

function newLog (lastSeq = 0, index = 0): Log {
  return { lastSeq, index, applied: new Map(), ops: [] }
}

function owner (log: Log, epoch: number, group: () => Record<string, unknown>): Script {
  return (seen) => {
    if (seen.method === 'POST' && seen.path === '/v1/sessions') return { status: 201, body: { ...group(), token: TOKEN, epoch } }
    if (seen.method === 'POST' && seen.path === DELTAS) return applyDelta(log, epoch, seen.body)
    if (seen.method === 'GET') return { status: 200, body: { ...group(), epoch, index: log.index, state: log.ops, lastClientSeq: log.lastSeq } }
    if (seen.method === 'DELETE') return { status: 200, body: { sessionId: SESSION_ID, closed: true } }
    return { status: 404, body: { error: 'no such endpoint' } }
  }
}

function applyDelta (log: Log, epoch: number, body: Record<string, unknown>): Answer {
  const seq = body.clientSeq as number
  const known = log.applied.get(seq)
  if (known !== undefined) return { status: 200, body: { index: known, epoch, duplicate: true } }
  if (seq !== log.lastSeq + 1) return { status: 409, body: { error: `clientSeq must be ${log.lastSeq + 1} (got ${seq})`, expectedSeq: log.lastSeq + 1 } }
  log.index += 1
  log.lastSeq = seq
  log.applied.set(seq, log.index)
  log.ops.push(body.op)
  return { status: 200, body: { index: log.index, epoch } }
}

// A standby that sends every session request to `to`.
function redirectTo (to: () => FakeAgent, group: () => Record<string, unknown>): Script {
  return (seen) => ({ status: 307, headers: { location: to().url + seen.path }, body: group() })
}

// Opens through `entry` (answering with `group`) and hands back the session.
async function opened (entry: FakeAgent, options: Partial<EdgeClientOptions> = {}): Promise<Session> {
  return await client({ agents: [entry.url], ...options }).open({ terminalId: 't1', service: 'log' })
}

async function rejection (promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error('expected a rejection')
}

// ---- the happy path ------------------------------------------------------------

test('open at any agent; appends go to the owner with clientSeq 1, 2, 3 and the token', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B')
  const w = await agent('W')
  const group = (): Record<string, unknown> => view(a, [b], w)
  a.script = owner(log, 1, group)
  const entry = await agent('E', owner(log, 1, group))
  const session = await opened(entry, { requestTimeoutMs: 800 })
  assert.equal(session.sessionId, SESSION_ID)
  assert.equal(session.owner, { id: 'A', http: a.url })
  assert.equal(session.group.map((m) => m.role), ['owner', 'standby', 'witness'])
  const acks = [await session.append({ n: 1 }), await session.append({ n: 2 }), await session.append({ n: 3 })]
  assert.equal(acks.map((x) => x.index), [1, 2, 3])
  assert.equal(a.deltaSeqs(), [1, 2, 3])
  assert.ok(a.seen.every((s) => s.token === TOKEN))
  assert.equal(entry.deltaSeqs(), [])
  assert.equal(session.toJSON(), { sessionId: SESSION_ID, token: TOKEN, epoch: 1, lastIndex: 3, clientSeq: 3 })
})

// ---- where requests go -------------------------------------------------------------

test('a standby answering 307 is followed to the owner, which then gets every append', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B')
  // The view at open time names B as owner; B has since handed over to A.
  b.script = redirectTo(() => a, () => view(a, [b]))
  a.script = owner(log, 2, () => view(a, [b]))
  const entry = await agent('E', () => ({ status: 201, body: { ...view(b, [a]), token: TOKEN, epoch: 1 } }))
  const session = await opened(entry)
  await session.append('x')
  await session.append('y')
  assert.equal(b.deltaSeqs(), [1])
  assert.equal(a.deltaSeqs(), [1, 2])
  assert.equal(session.owner?.http, a.url)
  assert.equal(session.group[0], { id: 'A', http: a.url, role: 'owner' })
  assert.equal(session.epoch, 2)
})

test('503 then ok: the same agent is asked again with the same clientSeq', async () => {
  const log = newLog()
  let refusals = 1
  const a = await agent('A')
  const b = await agent('B', owner(log, 1, () => view(b, [])))
  const serve = owner(log, 1, () => view(a, [b]))
  a.script = (seen) => seen.path === DELTAS && refusals-- > 0
    ? { status: 503, body: { error: 'the write concern was not met in time; nothing was acknowledged', retryAfterMs: 1 }, headers: { 'retry-after': '1' } }
    : serve(seen)
  const session = await opened(a)
  const ack = await session.append('x')
  assert.equal(ack, { index: 1, epoch: 1, duplicate: false })
  assert.equal(a.deltaSeqs(), [1, 1])
  assert.equal(b.deltaSeqs(), [])
})

test('two 503s in a row from one agent: the next agent in the queue is tried, same clientSeq', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B')
  const serve = owner(log, 1, () => view(a, [b]))
  a.script = (seen) => seen.path === DELTAS ? { status: 503, body: { error: 'the owner cannot reach a majority of its group', retryAfterMs: 1 } } : serve(seen)
  b.script = owner(log, 2, () => view(b, [a]))
  const session = await opened(a)
  const ack = await session.append('x')
  assert.equal(a.deltaSeqs(), [1, 1])
  assert.equal(b.deltaSeqs(), [1])
  assert.equal(ack.epoch, 2)
  assert.equal(session.epoch, 2)
  assert.equal(session.owner?.http, b.url)
})

test('an owner that dies mid-stream: the next append goes to the standby, no clientSeq skipped', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B')
  a.script = owner(log, 1, () => view(a, [b]))
  b.script = owner(log, 2, () => view(b, []))
  const session = await opened(a)
  await session.append('one')
  await a.stop()
  await session.append('two')
  await session.append('three')
  assert.equal(a.deltaSeqs(), [1])
  assert.equal(b.deltaSeqs(), [2, 3])
  assert.equal(log.ops, ['one', 'two', 'three'])
  assert.equal(session.lastIndex, 3)
})

test('an owner that never answers: after requestTimeoutMs the standby gets the same clientSeq', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B')
  const serve = owner(log, 1, () => view(a, [b]))
  a.script = (seen) => seen.path === DELTAS ? 'hang' : serve(seen)
  b.script = owner(log, 2, () => view(b, [a]))
  const session = await opened(a, { requestTimeoutMs: 150 })
  const ack = await session.append('x')
  assert.ok(a.deltaSeqs().length >= 1)
  assert.equal([...new Set([...a.deltaSeqs(), ...b.deltaSeqs()])], [1])
  assert.equal(ack, { index: 1, epoch: 2, duplicate: false })
  assert.equal(session.owner?.http, b.url)
})

test('a standby still pointing at the owner that just died is asked again, not sent back to the dead owner', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B')
  a.script = owner(log, 1, () => view(a, [b]))
  const session = await opened(a)
  await session.append('one')
  await a.stop()
  // B has not seen A die for its first 4 requests: it redirects to A, then owns.
  let asked = 0
  const serve = owner(log, 2, () => view(b, []))
  b.script = (seen) => ++asked <= 4 ? { status: 307, headers: { location: a.url + seen.path }, body: view(a, [b]) } : serve(seen)
  const started = performance.now()
  const ack = await session.append('two')
  assert.equal(ack, { index: 2, epoch: 2, duplicate: false })
  assert.equal(b.deltaSeqs(), [2, 2, 2, 2, 2])
  // Four short waits (20 ms each) at B, no more: five requests to B, and not a
  // loop spinning between B and the refused port (the lower bound) nor one
  // pausing for rounds (the upper bound, loose for a loaded box: ~170 ms idle).
  const took = performance.now() - started
  assert.ok(took >= 80 && took < 1_000, `took ${took} ms`)
})

test('after a frozen owner times out, a standby redirecting to it is polled until it names the new owner', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B')
  const c = await agent('C')
  const serve = owner(log, 1, () => view(a, [b, c]))
  a.script = (seen) => seen.path === DELTAS ? 'hang' : serve(seen)
  let asked = 0
  b.script = (seen) => ++asked <= 3 ? { status: 307, headers: { location: a.url + seen.path }, body: view(a, [b, c]) } : { status: 307, headers: { location: c.url + seen.path }, body: view(c, [b]) }
  c.script = owner(log, 2, () => view(c, [b]))
  const session = await opened(a, { requestTimeoutMs: 300 })
  const ack = await session.append('x')
  assert.equal(ack, { index: 1, epoch: 2, duplicate: false })
  // A was asked once (the request that timed out), never again after B's redirects.
  assert.equal(a.deltaSeqs(), [1])
  assert.equal(c.deltaSeqs(), [1])
})

test('a retry of an applied clientSeq gets its original index back (duplicate)', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B', redirectTo(() => a, () => view(a, [b])))
  const serve = owner(log, 1, () => view(a, [b]))
  let first = true
  // The first attempt is applied, but its answer never leaves A.
  a.script = (seen) => {
    const answer = serve(seen)
    if (seen.path !== DELTAS || !first) return answer
    first = false
    return 'hang'
  }
  const session = await opened(a, { requestTimeoutMs: 150 })
  const ack = await session.append('x')
  assert.equal(ack, { index: 1, epoch: 1, duplicate: true })
  assert.ok(a.deltaSeqs().length >= 2)
  assert.equal([...new Set([...a.deltaSeqs(), ...b.deltaSeqs()])], [1])
  assert.equal(log.ops, ['x'])
  assert.equal((await session.append('y')).index, 2)
})

// ---- unknown outcomes -----------------------------------------------------------

test('past the deadline an append is of unknown outcome; the next append re-sends it first', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B')
  const serve = owner(log, 1, () => view(a, [b]))
  const busy: Script = () => ({ status: 503, body: { error: 'the session is changing owner; retry', retryAfterMs: 1 } })
  a.script = (seen) => seen.path === DELTAS ? busy(seen) : serve(seen)
  b.script = busy
  const session = await opened(a, { requestTimeoutMs: 400, deadlineMs: 600 })
  const error = await rejection(session.append('first'))
  assert.instance(error, OutcomeUnknownError)
  assert.match(error.message, /clientSeq 1/)
  assert.match(error.message, /outcome is unknown/)
  assert.match(error.message, /next append\(\) re-sends it with the same clientSeq/)
  assert.equal((error as OutcomeUnknownError).clientSeq, 1)
  assert.equal(session.toJSON().pending, { clientSeq: 1, op: 'first' })
  assert.ok([...a.deltaSeqs(), ...b.deltaSeqs()].every((seq) => seq === 1))
  a.script = serve
  const ack = await session.append('second')
  const sent = a.seen.filter((s) => s.path === DELTAS).slice(-2).map((s) => s.body)
  assert.equal(sent, [{ clientSeq: 1, op: 'first' }, { clientSeq: 2, op: 'second' }])
  assert.equal(ack.index, 2)
  assert.equal(session.toJSON().pending, undefined)
})

test('an open whose answer times out is asked again of the same agent, with the same openKey, before the next agent', async () => {
  const log = newLog()
  const b = await agent('B', owner(log, 1, () => view(b, [])))
  let opens = 0
  const a = await agent('A', (seen) => {
    if (seen.path !== '/v1/sessions') return owner(log, 1, () => view(a, []))(seen)
    opens += 1
    // The first answer comes too late for the client; the retry is answered
    // (within the 1 s timeout however loaded the box).
    return opens === 1 ? new Promise((resolve) => setTimeout(() => resolve({ status: 201, body: { ...view(a, []), token: TOKEN, epoch: 1 } }), 3_000)) : { status: 201, body: { ...view(a, []), token: TOKEN, epoch: 1 } }
  })
  const session = await client({ agents: [a.url, b.url], requestTimeoutMs: 1_000 }).open({ terminalId: 't1', service: 'log' })
  assert.is(session.sessionId, SESSION_ID)
  const keys = a.seen.filter((s) => s.path === '/v1/sessions').map((s) => s.body.openKey)
  assert.is(keys.length, 2, 'A was asked twice')
  assert.type(keys[0], 'string')
  assert.ok((keys[0] as string).length >= 22)
  assert.is(keys[1], keys[0], 'the retry carries the same openKey')
  assert.is(b.seen.length, 0, 'B was never asked')
})

test('while the group answers "changing owner", the client polls its members and leaves the other agents alone', async () => {
  const log = newLog()
  const a = await agent('A')
  const b = await agent('B')
  const c = await agent('C')
  const outside = await agent('X', () => ({ status: 503, body: { error: 'could not find the session in time', retryAfterMs: 20 } }))
  a.script = owner(log, 1, () => view(a, [b, c]))
  const session = await client({ agents: [a.url, outside.url] }).open({ terminalId: 't1', service: 'log' })
  await session.append('one')
  await a.stop()
  // B and C stand for 10 answers each, then C owns the session.
  let answers = 0
  const changing = (): Answer => ({ status: 503, body: { error: 'the session is changing owner; retry', retryAfterMs: 25, ...view(null, [b, c]) } })
  b.script = (seen) => ++answers <= 20 ? changing() : { status: 307, headers: { location: c.url + seen.path }, body: view(c, [b]) }
  const serve = owner(log, 2, () => view(c, [b]))
  c.script = (seen) => ++answers <= 20 ? changing() : serve(seen)
  const ack = await session.append('two')
  assert.equal(ack, { index: 2, epoch: 2, duplicate: false })
  assert.equal(outside.deltaSeqs(), [], 'the agent outside the group was never asked')
  assert.ok(b.deltaSeqs().length >= 4 && c.deltaSeqs().length >= 4, 'both members were polled')
})

test('404 from an agent outside the group is not the end of the session: the client asks the group again', async () => {
  const log = newLog()
  let refusals = 0
  const a = await agent('A', (seen) => {
    // The owner fails twice (a 5xx: the client tries the next agent), then serves.
    if (seen.path === DELTAS && refusals < 2) {
      refusals += 1
      return { status: 500, body: { error: 'internal error' } }
    }
    return owner(log, 1, () => view(a, []))(seen)
  })
  // C opened the session for the terminal but holds none of it (cut off).
  const c = await agent('C', (seen) => seen.path === '/v1/sessions'
    ? { status: 201, body: { ...view(a, []), token: TOKEN, epoch: 1 } }
    : { status: 404, body: { error: 'no such session' } })
  const session = await client({ agents: [c.url] }).open({ terminalId: 't1', service: 'log' })
  const ack = await session.append('x')
  assert.is(ack.index, 1)
  assert.ok(c.seen.some((s) => s.path === DELTAS), 'C was asked and said 404')
})

test('no agent reachable: an EdgeClientError with status 0 naming the failure', async () => {
  const a = await agent('A')
  const url = a.url
  await a.stop()
  const error = await rejection(client({ agents: [url], requestTimeoutMs: 200, deadlineMs: 200 }).open({ terminalId: 't1', service: 'log' }))
  assert.instance(error, EdgeClientError)
  assert.equal((error as EdgeClientError).status, 0)
  assert.match(error.message, /ECONNREFUSED/)
})

// ---- refusals ------------------------------------------------------------------

test('409 with a higher expectedSeq counts as acknowledged once the session shows the seq applied', async () => {
  const a = await agent('A')
  const serve = owner(newLog(), 1, () => view(a, []))
  a.script = (seen) => {
    if (seen.path === DELTAS) return { status: 409, body: { error: 'clientSeq must be 2', expectedSeq: 2 } }
    if (seen.method === 'GET') return { status: 200, body: { ...view(a, []), epoch: 1, index: 4, state: [], lastClientSeq: 1 } }
    return serve(seen)
  }
  const session = await opened(a)
  assert.equal(await session.append('x'), { index: 4, epoch: 1, duplicate: true })
  assert.equal(session.clientSeq, 1)
  // Seq 2 is refused the same way, yet the session shows it not applied: it
  // stays pending under its clientSeq.
  const error = await rejection(session.append('y'))
  assert.instance(error, EdgeClientError)
  assert.equal((error as EdgeClientError).status, 409)
  assert.equal(session.toJSON().pending, { clientSeq: 2, op: 'y' })
})

test('409 with a lower expectedSeq: the client and the session disagree', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  a.script = serve
  const session = await opened(a)
  await session.append('one')
  await session.append('two')
  // The agent lost seq 2 it had acknowledged.
  log.lastSeq = 1
  log.applied.delete(2)
  const error = await rejection(session.append('three'))
  assert.instance(error, EdgeClientError)
  assert.equal((error as EdgeClientError).status, 409)
  assert.equal((error as EdgeClientError).serverError, 'clientSeq must be 2 (got 3)')
  assert.match(error.message, /disagree/)
  assert.equal(a.deltaSeqs(), [1, 2, 3])
})

test('401: an EdgeClientError carrying the status and the agent\'s text', async () => {
  const a = await agent('A')
  const serve = owner(newLog(), 1, () => view(a, []))
  a.script = (seen) => seen.path === DELTAS ? { status: 401, body: { error: 'this token does not open this session' } } : serve(seen)
  const session = await opened(a)
  const error = await rejection(session.append('x'))
  assert.instance(error, EdgeClientError)
  assert.equal((error as EdgeClientError).status, 401)
  assert.equal((error as EdgeClientError).serverError, 'this token does not open this session')
  assert.match(error.message, /401 this token does not open this session/)
  assert.equal(a.deltaSeqs(), [1])
})

test('400: the op was refused before it was logged, so its clientSeq goes to the next op', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  a.script = (seen) => seen.path === DELTAS && (seen.body.op as { bad?: boolean }).bad === true ? { status: 400, body: { error: 'op must be {"append": string}' } } : serve(seen)
  const session = await opened(a)
  const error = await rejection(session.append({ bad: true }))
  assert.equal((error as EdgeClientError).status, 400)
  await session.append({ good: true })
  assert.equal(a.deltaSeqs(), [1, 1])
  assert.equal(log.ops, [{ good: true }])
})

// ---- rollbacks -----------------------------------------------------------------

test('an acknowledgement at an index not above the last one is a RollbackError', async () => {
  const a = await agent('A')
  const indexes = [5, 3]
  const serve = owner(newLog(), 1, () => view(a, []))
  a.script = (seen) => seen.path === DELTAS ? { status: 200, body: { index: indexes.shift(), epoch: 1 } } : serve(seen)
  const session = await opened(a)
  assert.equal((await session.append('x')).index, 5)
  const error = await rejection(session.append('y'))
  assert.instance(error, RollbackError)
  assert.match(error.message, /index 3, not after 5/)
  assert.equal(session.lastIndex, 5)
})

test('an acknowledgement from an older epoch is a RollbackError', async () => {
  const a = await agent('A')
  const epochs = [3, 2]
  const serve = owner(newLog(), 1, () => view(a, []))
  let index = 0
  a.script = (seen) => seen.path === DELTAS ? { status: 200, body: { index: ++index, epoch: epochs.shift() } } : serve(seen)
  const session = await opened(a)
  await session.append('x')
  assert.instance(await rejection(session.append('y')), RollbackError)
})

test('get() refuses a state older than what was acknowledged', async () => {
  const log = newLog()
  const a = await agent('A')
  a.script = owner(log, 1, () => view(a, []))
  const session = await opened(a)
  await session.append('x')
  await session.append('y')
  assert.equal((await session.get()).state, ['x', 'y'])
  log.index = 1
  assert.instance(await rejection(session.get()), RollbackError)
})

// Found by the real-process bench: get() compared its answer with the last index
// acknowledged when the answer arrived, so an append acknowledged while the read
// was in flight made a correct (slightly older) state look like a rollback.
test('get() in flight while an append is acknowledged is not a rollback', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  let releaseRead: () => void = () => {}
  const readHeld = new Promise<void>((resolve) => { releaseRead = resolve })
  a.script = async (seen) => {
    if (seen.method !== 'GET') return serve(seen)
    // The owner reads its state now, answers after the append below.
    const answer = structuredClone(await serve(seen))
    await readHeld
    return answer
  }
  const session = await opened(a)
  await session.append('x')
  const reading = session.get()
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.is((await session.append('y')).index, 2)
  releaseRead()
  const state = await reading
  assert.equal([state.index, state.state], [1, ['x']])
  assert.equal((await session.get()).state, ['x', 'y'])
})

// ---- resume ----------------------------------------------------------------------

test('resume follows the session to its owner and picks up lastClientSeq', async () => {
  const log = newLog(7, 20)
  const a = await agent('A')
  const b = await agent('B')
  a.script = owner(log, 3, () => view(a, [b]))
  b.script = redirectTo(() => a, () => view(a, [b]))
  const c = client({ agents: [b.url] })
  const session = await c.resume({ token: TOKEN })
  assert.equal(session.clientSeq, 7)
  assert.equal(session.lastIndex, 20)
  // Epochs come from acknowledgements only.
  assert.equal(session.epoch, 0)
  const ack = await session.append('x')
  assert.equal(a.deltaSeqs(), [8])
  assert.equal(ack.index, 21)
  assert.equal(session.epoch, 3)
  assert.equal(b.seen.map((s) => s.method), ['GET'])
})

test('resume refuses a session whose index or epoch is below what the caller saw', async () => {
  const a = await agent('A')
  a.script = owner(newLog(7, 20), 3, () => view(a, []))
  const c = client({ agents: [a.url] })
  assert.instance(await rejection(c.resume({ token: TOKEN, lastIndex: 25 })), RollbackError)
  assert.instance(await rejection(c.resume({ token: TOKEN, epoch: 4 })), RollbackError)
  assert.instance(await rejection(c.resume({ token: TOKEN, clientSeq: 9 })), RollbackError)
  assert.equal((await c.resume({ token: TOKEN, lastIndex: 20, epoch: 3 })).lastIndex, 20)
})

test('a saved pending op is re-sent after resume, unless the session already applied it', async () => {
  const log = newLog(7, 20)
  const a = await agent('A')
  a.script = owner(log, 3, () => view(a, []))
  const c = client({ agents: [a.url] })
  const saved = { token: TOKEN, lastIndex: 20, epoch: 3, clientSeq: 7, pending: { clientSeq: 8, op: 'eight' } }
  const session = await c.resume(saved)
  await session.append('nine')
  assert.equal(a.deltaSeqs(), [8, 9])
  assert.equal(log.ops, ['eight', 'nine'])
  // Saved again before the pending op was known applied: it is dropped, not re-sent.
  const again = await c.resume(saved)
  await again.append('ten')
  assert.equal(a.deltaSeqs(), [8, 9, 10])
  assert.equal(again.toJSON().clientSeq, 10)
})

// ---- ordering and the rest of the API ----------------------------------------------

test('appends on one session run one at a time, in call order; those queued behind another coalesce into one batch', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  // Answers a tick later, so overlapping requests would be seen overlapping.
  a.script = (seen) => new Promise((resolve) => setImmediate(() => resolve(seen.path === BATCH ? applyBatch(log, 1, seen.body) : serve(seen))))
  const session = await opened(a)
  // Made in one tick: one batch request, each promise with its own result.
  const acks = await Promise.all([1, 2, 3, 4, 5].map((n) => session.append(n)))
  assert.equal(acks.map((x) => x.index), [1, 2, 3, 4, 5])
  assert.equal(a.seen.filter((s) => s.path === BATCH).map((s) => s.body), [{ clientSeq: 1, ops: [1, 2, 3, 4, 5] }])
  // One alone goes as a single delta; the ones made while it is in flight follow as one batch.
  const first = session.append(6)
  await new Promise((resolve) => setImmediate(resolve))
  const later = [7, 8, 9].map((n) => session.append(n))
  const rest = await Promise.all([first, ...later])
  assert.equal(rest.map((x) => x.index), [6, 7, 8, 9])
  assert.equal(a.deltaSeqs(), [6])
  assert.equal(a.seen.filter((s) => s.path === BATCH).at(-1)?.body, { clientSeq: 7, ops: [7, 8, 9] })
  assert.equal(log.ops, [1, 2, 3, 4, 5, 6, 7, 8, 9])
  assert.equal(a.maxInFlight, 1)
  assert.equal(session.clientSeq, 9)
})

test('coalesced appends: an op refused part-way rejects alone; the ones before it are acknowledged, the ones after it are sent on', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  const refuse = (seen: { body: Record<string, unknown> }): Answer => {
    const ops = seen.body.ops as unknown[]
    const bad = ops.indexOf('bad')
    if (bad < 0) return applyBatch(log, 1, seen.body)
    if (bad === 0) return { status: 400, body: { error: 'a log op is {"append": value}', clientSeq: seen.body.clientSeq } }
    const answer = applyBatch(log, 1, { clientSeq: seen.body.clientSeq, ops: ops.slice(0, bad) }) as { status: number; body: Record<string, unknown> }
    return { status: 200, body: { ...answer.body, refused: { clientSeq: (seen.body.clientSeq as number) + bad, status: 400, error: 'a log op is {"append": value}' } } }
  }
  a.script = (seen) => seen.path === BATCH ? refuse(seen) : serve(seen)
  const session = await opened(a)
  const outcomes = await Promise.allSettled(['a', 'bad', 'c', 'd'].map((op) => session.append(op)))
  assert.equal(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
  const refused = (outcomes[1] as PromiseRejectedResult).reason as EdgeClientError
  assert.instance(refused, EdgeClientError)
  assert.is(refused.status, 400)
  assert.match(refused.message, /clientSeq 2/)
  assert.equal(outcomes.flatMap((o) => o.status === 'fulfilled' ? [o.value.index] : []), [1, 2, 3])
  // 'c' and 'd' took the clientSeqs the refusal freed.
  assert.equal(log.ops, ['a', 'c', 'd'])
  assert.equal(a.seen.filter((s) => s.path === BATCH).map((s) => s.body), [{ clientSeq: 1, ops: ['a', 'bad', 'c', 'd'] }, { clientSeq: 2, ops: ['c', 'd'] }])
  assert.equal([session.clientSeq, session.toJSON().pending], [3, undefined])
  // The group's first op refused: the agent answers with that refusal; the rest go on.
  const next = await Promise.allSettled(['bad', 'e', 'bad', 'f'].map((op) => session.append(op)))
  assert.equal(next.map((o) => o.status), ['rejected', 'fulfilled', 'rejected', 'fulfilled'])
  assert.equal(next.flatMap((o) => o.status === 'fulfilled' ? [o.value.index] : []), [4, 5])
  assert.equal(log.ops, ['a', 'c', 'd', 'e', 'f'])
  assert.equal([session.clientSeq, session.toJSON().pending], [5, undefined])
})

test('close() closes the session; later appends are refused without a request', async () => {
  const a = await agent('A')
  a.script = owner(newLog(), 1, () => view(a, []))
  const session = await opened(a)
  await session.close()
  assert.equal(a.seen.at(-1)?.method, 'DELETE')
  const error = await rejection(session.append('x'))
  assert.instance(error, EdgeClientError)
  assert.match(error.message, /closed/)
  assert.equal(a.deltaSeqs(), [])
})

test('polling an owner change backs off: two quick retries, then doubling up to 100 ms', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  let refusals = 0
  a.script = (seen) => seen.path === DELTAS && ++refusals <= 8 ? { status: 503, body: { error: 'the session is changing owner; retry', retryAfterMs: 25 } } : serve(seen)
  const session = await opened(a)
  const started = performance.now()
  await session.append('x')
  const took = performance.now() - started
  // 25 + 25 + 50 + 100 × 5 = 600 ms of waits; without the backoff, 200 ms.
  assert.ok(took >= 550, `took ${took} ms`)
})

test('a close answered 503 (the owner stepped down after logging it) and then 404 is closed', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  let deletes = 0
  a.script = (seen) => seen.method !== 'DELETE' ? serve(seen) : (++deletes === 1 ? { status: 503, body: { error: 'this agent no longer owns the session', retryAfterMs: 20 } } : { status: 404, body: { error: 'no such session' } })
  const session = await opened(a)
  await session.close()
  assert.is(deletes, 2)
  assert.is((await rejection(session.append('late'))).message.includes('closed'), true)
})

test('list() returns the sessions of the first agent that answers', async () => {
  const a = await agent('A')
  const url = a.url
  await a.stop()
  const b = await agent('B', () => ({ status: 200, body: { sessions: [{ sessionId: SESSION_ID, role: 'owner' }] } }))
  const sessions = await client({ agents: [url, b.url] }).list()
  assert.equal(sessions, [{ sessionId: SESSION_ID, role: 'owner' }])
})

test('options are checked when the client is made', () => {
  assert.throws(() => new EdgeClient({ agents: [] }), /at least one/)
  assert.throws(() => new EdgeClient({ agents: ['127.0.0.1:7700'] }), /http\(s\) URLs/)
  assert.throws(() => new EdgeClient({ agents: ['http://a'], requestTimeoutMs: 900, deadlineMs: 800 }), /deadlineMs/)
})

// ---- the command line ----------------------------------------------------------------

type CliResult = { code: number | null; stdout: string; stderr: string }

function cli (args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  // A bound for a hung process only: starting one takes a second or more.
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer)
    resolve({ code, stdout, stderr })
  }))
}

// Three real runs of the command (each starts Node and loads the agent's
// modules, about a second of CPU); the other cases call runSession in-process.
test('CLI: session --help, a usage error, and open against an agent', async () => {
  const a = await agent('A')
  const b = await agent('B')
  a.script = owner(newLog(), 2, () => view(a, [b]))
  b.script = redirectTo(() => a, () => view(a, [b]))
  const [help, badOp, open] = await Promise.all([
    cli(['session', '--help']),
    cli(['session', 'append', SESSION_ID, '--token', TOKEN, '--op', '{bad']),
    cli(['session', 'open', '--service', 'log', '--terminal', 't1', '--position', '-33.87,151.21', '--agent', b.url])
  ])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /Usage: edge-agent session <subcommand>/)

  assert.equal(badOp.code, 2)
  assert.equal(badOp.stdout, '')
  assert.equal(badOp.stderr.trim().split('\n').length, 1)
  assert.match(badOp.stderr, /--op is not JSON/)

  // B redirects the open to A, the owner, which answers 201.
  assert.equal(open.code, 0, open.stderr)
  const printed = JSON.parse(open.stdout) as Record<string, unknown>
  assert.equal(printed.sessionId, SESSION_ID)
  assert.equal(printed.token, TOKEN)
  assert.equal(printed.epoch, 2)
  assert.equal(printed.owner, { id: 'A', http: a.url })
  assert.equal((printed.group as unknown[]).length, 2)
  const { openKey, ...sent } = a.seen.find((s) => s.method === 'POST' && s.path === '/v1/sessions')?.body ?? {}
  assert.equal(sent, { terminalId: 't1', service: 'log', position: { lat: -33.87, lon: 151.21 } })
  assert.type(openKey, 'string')
})

async function session (args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await runSession(args, { out: (text) => { out += text }, err: (text) => { err += text } })
  return { code, out, err }
}

test('session append reads lastClientSeq and sends the next one', async () => {
  const log = newLog(4, 9)
  const a = await agent('A')
  const b = await agent('B')
  a.script = owner(log, 2, () => view(a, [b]))
  b.script = redirectTo(() => a, () => view(a, [b]))
  const result = await session(['append', SESSION_ID, '--token', TOKEN, '--op', '{"append":"hi"}', '--agent', b.url])
  assert.equal(result, { code: 0, out: '{"index":10,"epoch":2}\n', err: '' })
  assert.equal(a.deltaSeqs(), [5])
  assert.equal(log.ops, [{ append: 'hi' }])
})

test('session get, close and list print the JSON the agent answered', async () => {
  const a = await agent('A')
  const serve = owner(newLog(1, 3), 2, () => view(a, []))
  a.script = (seen) => seen.path === '/v1/sessions' && seen.method === 'GET' ? { status: 200, body: { sessions: [{ sessionId: SESSION_ID, role: 'owner' }] } } : serve(seen)
  const get = await session(['get', SESSION_ID, '--token', TOKEN, '--agent', a.url, '--json'])
  assert.equal(get.code, 0, get.err)
  assert.equal((JSON.parse(get.out) as { lastClientSeq: number }).lastClientSeq, 1)
  assert.equal(await session(['close', SESSION_ID, '--token', TOKEN, '--agent', a.url]), { code: 0, out: `{"sessionId":"${SESSION_ID}","closed":true}\n`, err: '' })
  assert.equal(JSON.parse((await session(['list', '--agent', a.url])).out), { sessions: [{ sessionId: SESSION_ID, role: 'owner' }] })
})

test('session: a refusal or an unreachable agent exits 1 with one line', async () => {
  const refusing = await agent('R', () => ({ status: 401, body: { error: 'this token does not open this session' } }))
  const gone = await agent('G')
  const goneUrl = gone.url
  await gone.stop()
  const refused = await session(['get', SESSION_ID, '--token', TOKEN, '--agent', refusing.url])
  assert.equal(refused.code, 1)
  assert.equal(refused.out, '')
  assert.equal(refused.err.trim().split('\n').length, 1)
  assert.match(refused.err, /401 this token does not open this session/)
  const unreachable = await session(['list', '--agent', goneUrl, '--timeout', '200'])
  assert.equal(unreachable.code, 1)
  assert.equal(unreachable.err.trim().split('\n').length, 1)
  assert.match(unreachable.err, /ECONNREFUSED/)
})

test('session: usage errors are thrown before any request', async () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /missing subcommand/],
    [['nope'], /unknown subcommand 'nope'/],
    [['open', '--terminal', 't1'], /--service is required/],
    [['open', '--service', 'log', '--terminal', 't1', '--position', '91,0'], /latitude/],
    [['append', 'log:other', '--token', TOKEN, '--op', '1'], /belongs to session log:00c0ffee, not log:other/],
    [['append', SESSION_ID, '--token', 'nonsense', '--op', '1'], /--token must look like/],
    [['get', SESSION_ID, '--token', TOKEN, '--timeout', 'soon'], /--timeout/],
    [['list', '--agent', 'localhost:7700'], /--agent must be an http\(s\) URL/],
    [['list', 'extra'], /unexpected argument 'extra'/],
    [['append', SESSION_ID, '--token', TOKEN], /give either --op <json> or --ops <json list>/],
    [['append', SESSION_ID, '--token', TOKEN, '--op', '1', '--ops', '[1]'], /give either --op <json> or --ops <json list>/],
    [['append', SESSION_ID, '--token', TOKEN, '--ops', '{"append":1}'], /--ops must be a JSON list of 1-1000 deltas/],
    [['append', SESSION_ID, '--token', TOKEN, '--ops', '[]'], /--ops must be a JSON list of 1-1000 deltas/]
  ]
  for (const [args, reason] of cases) {
    const error = await rejection(session(args))
    assert.instance(error, UsageError, args.join(' '))
    assert.match(error.message, reason)
  }
  assert.equal((await session(['append', '--help'])).code, 0)
})

// ---- batches (appendMany) ---------------------------------------------------------

const BATCH = `/v1/sessions/${encodeURIComponent(SESSION_ID)}/batch`

// The fake owner's batch endpoint: each op as applyDelta would take it.
function applyBatch (log: Log, epoch: number, body: Record<string, unknown>): Answer {
  const first = body.clientSeq as number
  const results: unknown[] = []
  for (const [i, op] of (body.ops as unknown[]).entries()) {
    const answer = applyDelta(log, epoch, { clientSeq: first + i, op }) as { status: number; body: Record<string, unknown> }
    if (answer.status !== 200) return results.length === 0 ? answer : { status: 200, body: { epoch, results, refused: { clientSeq: first + i, status: answer.status, ...answer.body } } }
    results.push({ clientSeq: first + i, index: answer.body.index, ...(answer.body.duplicate === true ? { duplicate: true } : {}) })
  }
  return { status: 200, body: { epoch, results } }
}

test('a batch whose outcome is unknown stays pending with its clientSeqs; the next append re-sends it first, then the new op', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  const busy: Answer = { status: 503, body: { error: 'the session is changing owner; retry', retryAfterMs: 1 } }
  a.script = (seen) => seen.path === BATCH ? busy : serve(seen)
  const session = await opened(a, { requestTimeoutMs: 400, deadlineMs: 600 })
  const error = await rejection(session.appendMany(['x', 'y', 'z']))
  assert.instance(error, OutcomeUnknownError)
  assert.match(error.message, /clientSeq 1-3/)
  assert.equal(session.toJSON().pendingOps, [{ clientSeq: 1, op: 'x' }, { clientSeq: 2, op: 'y' }, { clientSeq: 3, op: 'z' }])
  assert.equal(session.toJSON().pending, { clientSeq: 1, op: 'x' })
  a.script = (seen) => seen.path === BATCH ? applyBatch(log, 1, seen.body) : serve(seen)
  const ack = await session.append('w')
  const sent = a.seen.filter((s) => s.path === BATCH || s.path === DELTAS).slice(-2).map((s) => [s.path === BATCH ? 'batch' : 'delta', s.body])
  assert.equal(sent, [['batch', { clientSeq: 1, ops: ['x', 'y', 'z'] }], ['delta', { clientSeq: 4, op: 'w' }]])
  assert.equal([ack.index, session.clientSeq, session.toJSON().pending], [4, 4, undefined])
  assert.equal(log.ops, ['x', 'y', 'z', 'w'])
})

test('appendMany resolves with each op\'s result; a refusal part-way rejects with the acknowledged prefix and frees the rest', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  a.script = (seen) => {
    if (seen.path !== BATCH) return serve(seen)
    const ops = seen.body.ops as unknown[]
    const bad = ops.indexOf('bad')
    if (bad < 0) return applyBatch(log, 1, seen.body)
    const answer = applyBatch(log, 1, { clientSeq: seen.body.clientSeq, ops: ops.slice(0, bad) }) as { status: number; body: Record<string, unknown> }
    return { status: 200, body: { ...answer.body, refused: { clientSeq: (seen.body.clientSeq as number) + bad, status: 400, error: 'a log op is {"append": value}' } } }
  }
  const session = await opened(a)
  assert.equal(await session.appendMany(['a', 'b']), [{ index: 1, epoch: 1, duplicate: false }, { index: 2, epoch: 1, duplicate: false }])
  const error = await rejection(session.appendMany(['c', 'bad', 'd']))
  assert.instance(error, BatchRefusedError)
  assert.equal((error as BatchRefusedError).acknowledged, [{ index: 3, epoch: 1, duplicate: false }])
  assert.is((error as BatchRefusedError).refusedClientSeq, 4)
  assert.equal([session.clientSeq, session.pendingOps], [3, []])
  assert.equal((await session.append('e')).index, 4, 'the refused clientSeq is taken by the next op')
})

test('appendMany refuses, before sending, an empty list, more than MAX_BATCH_OPS ops, or more than MAX_BATCH_BYTES', async () => {
  const a = await agent('A', owner(newLog(), 1, () => view(a, [])))
  const session = await opened(a)
  assert.match((await rejection(session.appendMany([]))).message, /'ops' must be a list of 1-1000 ops \(got 0\)/)
  assert.match((await rejection(session.appendMany(Array.from({ length: 1001 }, () => 'x')))).message, /got 1001/)
  assert.match((await rejection(session.appendMany(Array.from({ length: 20 }, () => 'x'.repeat(60_000))))).message, /exceed the batch limit of 1048576/)
  assert.equal(a.seen.filter((s) => s.path === BATCH), [])
})

test('resume takes pendingOps back, keeping only those the session does not hold yet', async () => {
  const log = newLog()
  const a = await agent('A')
  const serve = owner(log, 1, () => view(a, []))
  a.script = (seen) => seen.path === BATCH ? applyBatch(log, 1, seen.body) : serve(seen)
  log.lastSeq = 8
  log.index = 8
  for (let seq = 1; seq <= 8; seq++) log.applied.set(seq, seq)
  const resumed = await client({ agents: [a.url] }).resume({ token: TOKEN, clientSeq: 7, pendingOps: [{ clientSeq: 8, op: 'eight' }, { clientSeq: 9, op: 'nine' }] })
  assert.equal(resumed.pendingOps, [{ clientSeq: 9, op: 'nine' }])
  const refused = await rejection(client({ agents: [a.url] }).resume({ token: TOKEN, clientSeq: 7, pendingOps: [{ clientSeq: 9, op: 'gap' }] }))
  assert.match(refused.message, 'pending op 1 must hold clientSeq 8 (got 9)')
})

test('session append --ops sends one batch with the next clientSeqs and prints each result', async () => {
  const log = newLog(4, 9)
  const a = await agent('A')
  const serve = owner(log, 2, () => view(a, []))
  a.script = (seen) => seen.path === BATCH ? applyBatch(log, 2, seen.body) : serve(seen)
  const result = await session(['append', SESSION_ID, '--token', TOKEN, '--ops', '[{"append":"x"},{"append":"y"}]', '--agent', a.url])
  assert.equal(result, { code: 0, out: '{"results":[{"index":10,"epoch":2},{"index":11,"epoch":2}]}\n', err: '' })
  assert.equal(a.seen.filter((s) => s.path === BATCH).map((s) => s.body), [{ clientSeq: 5, ops: [{ append: 'x' }, { append: 'y' }] }])
  assert.equal(log.ops, [{ append: 'x' }, { append: 'y' }])
})

test.run()
