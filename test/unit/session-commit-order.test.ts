// The order of a step's effects around its commit (agent/sessions/commit-order.ts):
// an owner's entries to standbys leave before the owner's fsync; acks, votes,
// epoch changes and terminals' answers after it. Checked on the rule itself and
// on the real host (SessionsHost) with a recording network and store.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import pino from 'pino'
import { defaultConfig } from '../../agent/config.ts'
import { checkSessionsConfig } from '../../agent/sessions/config.ts'
import { orderAroundCommit } from '../../agent/sessions/commit-order.ts'
import { placeGroup } from '../../agent/sessions/placement.ts'
import { BUILT_IN_SERVICES } from '../../agent/sessions/services.ts'
import type { SessionDurable, SessionEffect } from '../../agent/sessions/types.ts'
import type { Net } from '../../agent/net/types.ts'
import type { SessionStore } from '../../agent/runtime/session-store.ts'
import { SessionsHost, hashToken } from '../../agent/runtime/sessions-host.ts'
import { decode } from '../../protocol/codec.ts'
import type { LogEntry, SessionMessage } from '../../protocol/messages.ts'
import { FakeDirectory } from './session-fixtures.ts'

const entry: LogEntry = { index: 2, epoch: 1, body: { kind: 'delta', clientSeq: 1, op: 'x' } }
const append = (sessionId: string): SessionEffect => ({
  kind: 'send', to: 'B', message: { type: 'session-append', sessionId, epoch: 1, seq: 1, prevIndex: 1, prevEpoch: 1, commitIndex: 1, entries: [entry] }
})
const ack: SessionEffect = { kind: 'send', to: 'A', message: { type: 'session-append-ack', sessionId: 's', epoch: 1, seq: 1, ok: true, matchIndex: 2, lastIndex: 2 } }
const reply: SessionEffect = { kind: 'reply', requestId: 'r1', reply: { status: 200, body: {} } }
const persist = (record: SessionDurable): SessionEffect => ({ kind: 'persist', record })
// Records of session 's' other than log appends and commit indexes.
const recordsThatHold = [
  { kind: 'session-meta', sessionId: 's', epoch: 2, votedFor: 'A' },
  { kind: 'session-truncate', sessionId: 's', fromIndex: 2 },
  { kind: 'session-snapshot', sessionId: 's', snapshot: {} as never },
  { kind: 'session-delete', sessionId: 's' }
] as SessionDurable[]

test('rule: only entries frames of sessions whose step only appends leave early', () => {
  const entries = persist({ kind: 'session-entries', sessionId: 's', entries: [entry] })
  const effects = [entries, append('s'), ack, reply]
  const order = orderAroundCommit(effects, [(entries as { record: SessionDurable }).record])
  assert.equal(order.early, [effects[1]])
  assert.equal(order.late, [entries, ack, reply])
  // Nothing to commit: nothing is reordered.
  assert.equal(orderAroundCommit([append('s'), reply], []), { early: [], late: [append('s'), reply] })
  // A step that stores an epoch or vote, a truncation or a snapshot of that session holds its frames.
  for (const held of recordsThatHold) {
    const records = [held, { kind: 'session-entries', sessionId: 's', entries: [entry] } as SessionDurable]
    assert.equal(orderAroundCommit([append('s'), append('t')], records).early, [append('t')], held.kind)
  }
})

test('rule: an answer\'s acknowledged events leave with it, early or late (counted when the terminal is told, not after a stalled or failed fsync)', () => {
  const records: SessionDurable[] = [{ kind: 'session-entries', sessionId: 's', entries: [entry] }]
  const event = (index: number): SessionEffect => ({ kind: 'event', event: { type: 'acknowledged', sessionId: 's', epoch: 1, index, clientSeq: index } })
  const answer = (index: number): SessionEffect => ({ kind: 'reply', requestId: `r${index}`, reply: { status: 200, body: { index } }, acknowledges: { sessionId: 's', index } })
  const other: SessionEffect = { kind: 'event', event: { type: 'promoted', sessionId: 's', service: 'log', epoch: 1, previousOwner: null, tookMs: 0 } }
  // Entry 1 was stored by an earlier step: its answer and its event leave at
  // once; entry 2 is this step's: both wait. A batch's events (two before one
  // answer) go together; other events wait, as before.
  const effects = [event(1), answer(1), event(2), answer(2), other, event(0), event(1), answer(1)]
  const order = orderAroundCommit(effects, records)
  assert.equal(order.early, [effects[0], effects[1], effects[5], effects[6], effects[7]])
  assert.equal(order.late, [effects[2], effects[3], effects[4]])
  // An event with no answer after it waits.
  assert.equal(orderAroundCommit([answer(1), event(1)], records), { early: [answer(1)], late: [event(1)] })
})

test('rule: an answer acknowledging only entries stored by earlier steps leaves early; one covering this step\'s entries waits', () => {
  // entry 2 of 's' is stored by this step.
  const records: SessionDurable[] = [{ kind: 'session-entries', sessionId: 's', entries: [entry] }, { kind: 'session-commit', sessionId: 's', commitIndex: 1 }]
  const answer = (sessionId: string, index: number): SessionEffect => ({ kind: 'reply', requestId: `r-${sessionId}-${index}`, reply: { status: 200, body: { index } }, acknowledges: { sessionId, index } })
  const older = answer('s', 1)
  const covering = answer('s', 2)
  const beyond = answer('s', 3)
  const otherSession = answer('t', 7)
  const order = orderAroundCommit([older, covering, beyond, otherSession, reply], records)
  assert.equal(order.early, [older, otherSession])
  assert.equal(order.late, [covering, beyond, reply], 'an answer that covers an entry of this step, or says nothing of what it acknowledges, waits')
  // Two records of one session in a step: the lowest index stored counts.
  const two: SessionDurable[] = [
    { kind: 'session-entries', sessionId: 's', entries: [{ ...entry, index: 5 }] },
    { kind: 'session-entries', sessionId: 's', entries: [{ ...entry, index: 3 }, { ...entry, index: 4 }] }
  ]
  assert.equal(orderAroundCommit([answer('s', 2), answer('s', 3)], two).early, [answer('s', 2)])
  // A step that stores anything else of the session holds its answers.
  for (const held of recordsThatHold) {
    assert.equal(orderAroundCommit([older, otherSession], [held]).early, [otherSession], held.kind)
  }
  // Nothing to commit: nothing is reordered.
  assert.equal(orderAroundCommit([older], []), { early: [], late: [older] })
})

// ---- the real host, with a network and a store that record what happens ----

type Happening = string

// The host runs on the wall clock. These tests count and order the frames of
// single steps, so its timers must not fire in the middle of one: on a loaded
// box a turn can outlast the lan profile's 100 ms heartbeat, and an owner's
// heartbeat then joins an append's batch (a CI run saw exactly that). With these
// timings no heartbeat, diagnosis or write timeout falls within a test.
function quietConfig (): ReturnType<typeof defaultConfig> {
  const config = defaultConfig()
  config.sessions = { ...config.sessions, heartbeatMs: 30_000, ownerTimeoutMs: 60_000, writeTimeoutMs: 60_000 }
  const problems = checkSessionsConfig(config.sessions)
  if (problems.length > 0) throw new Error(problems.join('; '))
  return config
}

// The store writes at once and fsyncs when told: `syncs` holds the callbacks of
// fsyncs under way; with `autoSync` each returns in the next check phase. A
// checkpoint is due while `checkpoint.due` is set; its fsync's callback waits
// in `checkpoints`.
function makeHost (autoSync = true, config = quietConfig()): { host: SessionsHost; log: Happening[]; sent: Array<{ to: string; message: SessionMessage }>; syncs: Array<(error: Error | null) => void>; checkpoint: { due: boolean }; checkpoints: Array<(error: Error | null) => void> } {
  const syncs: Array<(error: Error | null) => void> = []
  const checkpoint = { due: false }
  const checkpoints: Array<(error: Error | null) => void> = []
  const log: Happening[] = []
  const sent: Array<{ to: string; message: SessionMessage }> = []
  const net = {
    send (to: string, frame: Uint8Array) {
      const decoded = decode(frame)
      if (!decoded.ok) throw new Error('undecodable frame')
      const message = decoded.value as SessionMessage
      sent.push({ to, message })
      log.push(`send ${message.type}${'entries' in message ? ` ${message.entries.length}` : ''} to ${to}`)
    },
    connect () {}
  } as unknown as Net
  const store = {
    load: () => [],
    loadClosed: () => [],
    write (records: SessionDurable[]) { log.push(`commit ${records.map((r) => r.kind).join(',')}`); return true },
    sync (done: (error: Error | null) => void) {
      log.push('fsync started')
      const finish = (error: Error | null): void => { log.push('fsync returned'); done(error) }
      if (autoSync) setImmediate(() => { finish(null) })
      else syncs.push(finish)
    },
    syncNow () { log.push('fsync (blocking)') },
    checkpointDue: () => checkpoint.due,
    checkpoint (done: (error: Error | null) => void) {
      log.push('checkpoint started')
      checkpoint.due = false
      checkpoints.push((error) => { log.push('checkpoint returned'); done(error) })
    }
  } as unknown as SessionStore
  const host = new SessionsHost({
    config,
    directory: new FakeDirectory('A', ['A', 'B', 'C']),
    net,
    store,
    log: pino({ level: 'silent' }),
    line: () => {},
    onEvent: () => {},
    services: new Map(BUILT_IN_SERVICES)
  })
  hosts.push(host)
  return { host, log, sent, syncs, checkpoint, checkpoints }
}

// Every host is stopped after its test, passed or failed: a host left running
// keeps its timers, and the test file would never exit (the CI run above was
// killed after 300 s for that).
const hosts: SessionsHost[] = []
test.after.each(() => { for (const host of hosts.splice(0)) host.stop() })

const turn = async (): Promise<void> => { for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve)) }

// Acks every append sent so far that is not acked yet, as both standbys would.
// The first session id whose group, placed among A, B and C, has A as its owner.
function sessionOwnedByA (config: ReturnType<typeof defaultConfig>): string {
  for (let i = 0; ; i++) {
    const sessionId = `log:${i.toString(16).padStart(16, '0')}`
    if (placeGroup(new FakeDirectory('A', ['A', 'B', 'C']).alive(), sessionId, 'log', null, config.sessions)?.members[0] === 'A') return sessionId
  }
}

function ackAll (host: SessionsHost, sent: Array<{ to: string; message: SessionMessage }>, from: number): void {
  for (const { to, message } of sent.slice(from)) {
    if (message.type !== 'session-append') continue
    const last = message.prevIndex + message.entries.length
    host.receive(to, { type: 'session-append-ack', sessionId: message.sessionId, epoch: message.epoch, seq: message.seq, ok: true, matchIndex: last, lastIndex: last })
  }
}

test('host: the entries frame leaves before the owner commits, the answer after the commit and the acks', async () => {
  const { host, log, sent } = makeHost()
  const config = defaultConfig()
  const group = (id: string): string | undefined => placeGroup(new FakeDirectory('A', ['A', 'B', 'C']).alive(), id, 'log', null, config.sessions)?.members[0]
  let sessionId = ''
  for (let i = 0; group(sessionId = `log:${i.toString(16).padStart(16, '0')}`) !== 'A'; i++);
  const token = `${sessionId}~${'0'.repeat(64)}`
  const tokenHash = hashToken(token)

  // Creating the session stores its epoch: its first frames wait for the commit.
  const opened = host.request({ type: 'open', sessionId, terminalId: 't', service: 'log', position: null, tokenHash })
  await turn()
  const created = log.indexOf(log.find((l) => l.startsWith('commit session-meta')) ?? '')
  const firstSend = log.findIndex((l) => l.startsWith('send session-append'))
  assert.ok(created >= 0 && firstSend > created, log.join('\n'))
  ackAll(host, sent, 0)
  assert.is((await opened).status, 201)

  // An append: entries to both standbys, then the owner's commit; no answer yet.
  log.length = 0
  const before = sent.length
  let answered = false
  const appended = host.request({ type: 'append', sessionId, tokenHash, clientSeq: 1, op: { append: 'hello' } }).then((r) => { answered = true; return r })
  await turn()
  assert.equal(log.slice(0, 3).sort(), ['commit session-entries', 'send session-append 1 to B', 'send session-append 1 to C'].sort(), log.join('\n'))
  assert.ok(log.indexOf('commit session-entries') === 2, `frames first, commit last:\n${log.join('\n')}`)
  assert.equal(log.slice(3, 5), ['fsync started', 'fsync returned'], log.join('\n'))
  assert.is(answered, false, 'no answer before the standbys ack')
  ackAll(host, sent, before)
  const result = await appended
  assert.is(result.status, 200)
  assert.is(result.body.index, 2)
  host.stop()
})

test('host: a later input never overtakes an uncommitted batch (commit first, then its reply)', async () => {
  const { host, log, sent } = makeHost()
  const config = defaultConfig()
  const sessionId = sessionOwnedByA(config)
  const tokenHash = hashToken(`${sessionId}~x`)
  const opened = host.request({ type: 'open', sessionId, terminalId: 't', service: 'log', position: null, tokenHash })
  await turn()
  ackAll(host, sent, 0)
  await opened
  log.length = 0
  const before = sent.length
  const appended = host.request({ type: 'append', sessionId, tokenHash, clientSeq: 1, op: { append: 'a' } })
  // The entries leave in the drain of this turn; the commit is deferred to the
  // next check phase. A stop in between still commits before it answers.
  await new Promise((resolve) => setImmediate(resolve))
  assert.ok(log.includes('send session-append 1 to B'), log.join('\n'))
  assert.not.ok(log.includes('commit session-entries'), log.join('\n'))
  ackAll(host, sent, before)
  host.stop()
  assert.ok(log.includes('commit session-entries'), 'stop finishes the deferred commit')
  assert.ok(log.indexOf('fsync (blocking)') > log.indexOf('commit session-entries'), log.join('\n'))
  const result = await appended
  assert.is(result.status, 503, 'a stopping agent answers 503 (never 200 without a commit)')
})

test('host: while a batch fsyncs off the event loop, later inputs wait and then go in one batch; the answer waits for the fsync', async () => {
  const { host, log, sent, syncs } = makeHost(false)
  const config = defaultConfig()
  const sessionId = sessionOwnedByA(config)
  const tokenHash = hashToken(`${sessionId}~x`)
  const returnSyncs = (): void => { for (const done of syncs.splice(0)) done(null) }
  const opened = host.request({ type: 'open', sessionId, terminalId: 't', service: 'log', position: null, tokenHash })
  await turn()
  // The creation is written; its frames wait for its fsync.
  assert.not.ok(log.some((l) => l.startsWith('send')), log.join('\n'))
  returnSyncs()
  await turn()
  ackAll(host, sent, 0)
  await turn()
  returnSyncs()
  assert.is((await opened).status, 201)

  log.length = 0
  const before = sent.length
  let answered = 0
  const first = host.request({ type: 'append', sessionId, tokenHash, clientSeq: 1, op: { append: 'a' } }).then((r) => { answered++; return r })
  await turn()
  assert.equal(log.filter((l) => l.startsWith('commit')), ['commit session-entries'], log.join('\n'))
  assert.is(syncs.length, 1, 'the fsync is under way')
  // The acks and a second append arrive during the fsync: not stepped yet.
  ackAll(host, sent, before)
  const second = host.request({ type: 'append', sessionId, tokenHash, clientSeq: 2, op: { append: 'b' } }).then((r) => { answered++; return r })
  await turn()
  assert.is(answered, 0, 'no answer before the owner\'s fsync returned, whatever the acks say')
  assert.is(sent.length, before + 2, 'the second append is not stepped while the first fsyncs')
  returnSyncs()
  await turn()
  // One batch: the acks commit the first append, the second is logged and its
  // entries sent. The first's answer reports only an entry the batch before
  // stored and fsynced, so it leaves with the entries, before this batch's fsync;
  // the second's waits.
  assert.is(sent.length, before + 4, log.join('\n'))
  assert.is(syncs.length, 1)
  assert.is(answered, 1, 'the first answer does not wait for the fsync of the second append')
  assert.is((await first).status, 200)
  returnSyncs()
  await turn()
  assert.is(answered, 1)
  ackAll(host, sent, before + 2)
  await turn()
  returnSyncs()
  await turn()
  assert.is((await second).status, 200)
  host.stop()
})

// A host with no standbys (R = 0) and one session opened at it, its creation
// fsynced; the log cleared.
async function openedWithoutStandbys (): Promise<ReturnType<typeof makeHost> & { sessionId: string; tokenHash: string; returnSyncs: () => void }> {
  const config = quietConfig()
  config.sessions = { ...config.sessions, replicas: 0 }
  const made = makeHost(false, config)
  const { host, log, syncs } = made
  const sessionId = sessionOwnedByA(config)
  const tokenHash = hashToken(`${sessionId}~x`)
  const returnSyncs = (): void => { for (const done of syncs.splice(0)) done(null) }
  const opened = host.request({ type: 'open', sessionId, terminalId: 't', service: 'log', position: null, tokenHash })
  await turn()
  returnSyncs()
  assert.is((await opened).status, 201)
  await turn()
  returnSyncs()
  log.length = 0
  return { ...made, sessionId, tokenHash, returnSyncs }
}

test('host: with no standbys (R = 0) an append commits in its own step, and its answer waits for that step\'s fsync', async () => {
  const { host, log, syncs, sessionId, tokenHash, returnSyncs } = await openedWithoutStandbys()
  let answered = false
  const appended = host.request({ type: 'append', sessionId, tokenHash, clientSeq: 1, op: { append: 'a' } }).then((r) => { answered = true; return r })
  await turn()
  const commits = log.filter((l) => l.startsWith('commit'))
  assert.ok(commits.length === 1 && commits[0].startsWith('commit session-entries'), log.join('\n'))
  assert.is(syncs.length, 1, 'the fsync is under way')
  await turn()
  assert.is(answered, false, 'no answer before the fsync of the entry it acknowledges')
  returnSyncs()
  assert.is((await appended).status, 200)
})

test('host: a due checkpoint runs after a batch\'s fsync, its effects sent first; later inputs wait until the checkpoint\'s fsync returned', async () => {
  const { host, log, checkpoint, checkpoints, sessionId, tokenHash, returnSyncs } = await openedWithoutStandbys()
  checkpoint.due = true
  let answered = 0
  const first = host.request({ type: 'append', sessionId, tokenHash, clientSeq: 1, op: { append: 'a' } }).then((r) => { answered++; return r })
  await turn()
  returnSyncs()
  await turn()
  assert.is(answered, 1, 'the batch\'s answer leaves once its WAL fsync returned, before the checkpoint\'s')
  assert.is((await first).status, 200)
  assert.equal(log.slice(-2), ['fsync returned', 'checkpoint started'], log.join('\n'))
  // An input arriving during the checkpoint's fsync is not stepped: its write
  // could restart the WAL over frames not yet in the durable database file.
  const second = host.request({ type: 'append', sessionId, tokenHash, clientSeq: 2, op: { append: 'b' } }).then((r) => { answered++; return r })
  await turn()
  assert.is(log.filter((l) => l.startsWith('commit')).length, 1, log.join('\n'))
  assert.is(checkpoints.length, 1)
  for (const done of checkpoints.splice(0)) done(null)
  await turn()
  assert.is(log.filter((l) => l.startsWith('commit')).length, 2, `stepped and written once the checkpoint returned:\n${log.join('\n')}`)
  assert.ok(log.findLastIndex((l) => l.startsWith('commit session-entries')) > log.indexOf('checkpoint returned'), log.join('\n'))
  returnSyncs()
  assert.is((await second).status, 200)
  assert.is(answered, 2)
})

test('host: a failed checkpoint stops the sessions like a failed fsync', async () => {
  const config = quietConfig()
  config.sessions = { ...config.sessions, replicas: 0 }
  const { host, syncs, checkpoint, checkpoints } = makeHost(false, config)
  const sessionId = sessionOwnedByA(config)
  const tokenHash = hashToken(`${sessionId}~x`)
  checkpoint.due = true
  const opened = host.request({ type: 'open', sessionId, terminalId: 't', service: 'log', position: null, tokenHash })
  await turn()
  for (const done of syncs.splice(0)) done(null)
  assert.is((await opened).status, 201, 'the open was durable before the checkpoint began')
  assert.is(checkpoints.length, 1)
  for (const done of checkpoints.splice(0)) done(new Error('EIO'))
  assert.is((await host.request({ type: 'list' })).status, 503)
})

test('host: a failed fsync stops the sessions and answers 503, never 200', async () => {
  const { host, log, sent, syncs } = makeHost(false)
  const config = defaultConfig()
  const sessionId = sessionOwnedByA(config)
  const tokenHash = hashToken(`${sessionId}~x`)
  const opened = host.request({ type: 'open', sessionId, terminalId: 't', service: 'log', position: null, tokenHash })
  await turn()
  for (const done of syncs.splice(0)) done(new Error('EIO'))
  assert.is((await opened).status, 503)
  assert.not.ok(log.some((l) => l.startsWith('send')), 'nothing left after the failed fsync')
  assert.is(sent.length, 0)
  assert.is((await host.request({ type: 'list' })).status, 503)
  host.stop()
})

test.run()
