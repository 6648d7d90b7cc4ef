import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { decode, encode, maxFrameBytes } from '../../protocol/codec.ts'
import { Writer } from '../../protocol/wire.ts'
import {
  MAX_DEDUP_RECENT, MAX_GROUP_MEMBERS, MAX_ID_CHARS, MAX_JSON_DEPTH, MAX_OP_BYTES,
  MAX_REASON_CHARS, MAX_SERVICE_NAME_CHARS, MAX_SESSION_CONTROL_FRAME_BYTES, MAX_SESSION_ENTRIES,
  MAX_SESSION_FRAME_BYTES, MAX_SESSION_GROUP_FRAME_BYTES, MAX_SESSION_ID_CHARS, MAX_STATE_BYTES,
  MAX_TERMINAL_ID_CHARS
} from '../../protocol/limits.ts'
import { MESSAGE_TYPE, PROTOCOL_VERSION } from '../../protocol/messages.ts'
import type { SessionTypeName } from '../../protocol/session-codec.ts'
import type {
  Decoded, GroupConfig, JsonValue, LogEntry, Message, SessionInfo, SessionMessage
} from '../../protocol/messages.ts'

// ---------------------------------------------------------------- fixtures

const SESSION_TYPES = (Object.keys(MESSAGE_TYPE) as Array<keyof typeof MESSAGE_TYPE>)
  .filter((type): type is SessionTypeName => type.startsWith('session-'))
const PEER_A = '12D3KooWGzh1B2fMc4n6aLYm4Vq3u7f6Zm5cP8nRzL1Xw9bTqK2e'
const PEER_B = '12D3KooWQj7aFZ4o9vX1bYk3Wn8r2TfHc6sLmP5dEuV4gNqR7xAs'
const PEER_C = '12D3KooWLxq9cT3uVbN8mR5sA2fK7hD4jP6wE1yZ9gQ2nX5tB8vC'
const SID = 'sess-01:eu.west_7'
const HASH = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const NO_LIMIT = Number.MAX_SAFE_INTEGER
const MAX = Number.MAX_SAFE_INTEGER

function chars (n: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'): string {
  let s = ''
  for (let i = 0; i < n; i++) s += alphabet[i % alphabet.length]
  return s
}

const INFO: SessionInfo = { sessionId: SID, service: 'term.web', terminalId: 'tty/7@box!', tokenHash: HASH, position: { lat: 48.8566, lon: 2.3522 } }
const PAIR: GroupConfig = { members: [PEER_A, PEER_B], witness: PEER_C }
const TRIO: GroupConfig = { members: [PEER_A, PEER_B, PEER_C], witness: null }
const EMPTY_GROUP: GroupConfig = { members: [], witness: null }
const OP: JsonValue = { text: 'héllo ✓ 😀', n: [1, 2.5, -3e-7, null, true, false], nested: { a: { b: [] } }, empty: {} }

function delta (index: number, epoch: number, clientSeq: number, op: JsonValue = { k: index }): LogEntry {
  return { index, epoch, body: { kind: 'delta', clientSeq, op } }
}

// Every entry kind, in an order a real log could have.
const EVERY_KIND: LogEntry[] = [
  { index: 1, epoch: 1, body: { kind: 'create', info: INFO, config: PAIR } },
  { index: 2, epoch: 1, body: { kind: 'epoch' } },
  delta(3, 1, 1, OP),
  { index: 4, epoch: 1, body: { kind: 'config', config: TRIO } },
  { index: 5, epoch: 3, body: { kind: 'epoch' } },
  delta(6, 3, 2, 'just a string'),
  { index: 7, epoch: 3, body: { kind: 'close' } }
]

// One ordinary message of each type, small enough to truncate at every offset.
const SAMPLES: Record<SessionTypeName, SessionMessage> = {
  'session-append': { type: 'session-append', sessionId: SID, epoch: 3, seq: 17, prevIndex: 0, prevEpoch: 0, commitIndex: 4, entries: EVERY_KIND },
  'session-append-ack': { type: 'session-append-ack', sessionId: SID, epoch: 3, seq: 17, ok: true, matchIndex: 7, lastIndex: 7 },
  'session-vote-request': { type: 'session-vote-request', sessionId: SID, epoch: 4, candidate: PEER_B, lastIndex: 7, lastEpoch: 3, commitIndex: 4, preVote: true },
  'session-vote': {
    type: 'session-vote', sessionId: SID, epoch: 4, granted: false, preVote: false, reason: 'heard the owner 120 ms ago',
    lastIndex: 7, lastEpoch: 3, commitIndex: 4, tail: EVERY_KIND.slice(4)
  },
  'session-snapshot': {
    type: 'session-snapshot', sessionId: SID, epoch: 3, seq: 9,
    snapshot: { index: 4, indexEpoch: 1, info: INFO, config: TRIO, state: { lines: ['a', 'b'], cursor: 2 }, dedup: { lastClientSeq: 1, recent: [[1, 3]] } }
  },
  'session-open': { type: 'session-open', requestId: 12, info: INFO, config: PAIR },
  'session-opened': { type: 'session-opened', requestId: 12, status: 201, reason: '', epoch: 1, owner: PEER_A, config: PAIR },
  'session-locate': { type: 'session-locate', requestId: 13, sessionId: SID },
  'session-location': { type: 'session-location', requestId: 13, sessionId: SID, found: true, epoch: 3, owner: PEER_A, config: TRIO, tokenHash: HASH },
  'session-diagnose': { type: 'session-diagnose', sessionId: SID, nonce: 2 ** 40 },
  'session-diagnosis': { type: 'session-diagnosis', sessionId: SID, nonce: 2 ** 40, epoch: 3, serving: true, commitIndex: 4 },
  'session-quiesce': { type: 'session-quiesce', sessionId: SID, epoch: 3, seq: 18, index: 7, indexEpoch: 3, boot: 2 ** 40 },
  'session-quiesced': { type: 'session-quiesced', sessionId: SID, epoch: 3, seq: 18, ok: true, boot: 2 ** 40, gen: 2 },
  'session-beat': { type: 'session-beat', boot: 2 ** 40, seq: 5 },
  'session-beat-ack': { type: 'session-beat-ack', seq: 5, boot: 2 ** 40, gen: 2 }
}

function nested (depth: number): JsonValue {
  let value: JsonValue = 0
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { d: value }
  return value
}

// Longest ids, largest numbers: the frames that size the small limits.
const LONG_SID = chars(MAX_SESSION_ID_CHARS, 'Az09._:-')
const LONG_PEER = chars(MAX_ID_CHARS, 'ABCxyz019._-')
const MAX_CONFIG: GroupConfig = {
  members: Array.from({ length: MAX_GROUP_MEMBERS }, (_, i) => String(i).padStart(2, '0') + chars(MAX_ID_CHARS - 2)),
  witness: 'w' + chars(MAX_ID_CHARS - 1)
}
const MAX_INFO: SessionInfo = {
  sessionId: LONG_SID,
  service: chars(MAX_SERVICE_NAME_CHARS),
  terminalId: chars(MAX_TERMINAL_ID_CHARS, '!~#{|}'),
  tokenHash: HASH,
  position: { lat: -90, lon: 180 }
}
const LONG_REASON = chars(MAX_REASON_CHARS, 'a b~!')
const WORST: Record<Exclude<SessionTypeName, 'session-append' | 'session-vote' | 'session-snapshot'>, SessionMessage> = {
  'session-append-ack': { type: 'session-append-ack', sessionId: LONG_SID, epoch: MAX, seq: MAX, ok: true, matchIndex: MAX, lastIndex: MAX },
  'session-vote-request': { type: 'session-vote-request', sessionId: LONG_SID, epoch: MAX, candidate: LONG_PEER, lastIndex: MAX, lastEpoch: MAX, commitIndex: MAX, preVote: false },
  'session-open': { type: 'session-open', requestId: MAX, info: MAX_INFO, config: MAX_CONFIG },
  'session-opened': { type: 'session-opened', requestId: MAX, status: 599, reason: LONG_REASON, epoch: MAX, owner: LONG_PEER, config: MAX_CONFIG },
  'session-locate': { type: 'session-locate', requestId: MAX, sessionId: LONG_SID },
  'session-location': { type: 'session-location', requestId: MAX, sessionId: LONG_SID, found: true, epoch: MAX, owner: LONG_PEER, config: MAX_CONFIG, tokenHash: HASH },
  'session-diagnose': { type: 'session-diagnose', sessionId: LONG_SID, nonce: MAX },
  'session-diagnosis': { type: 'session-diagnosis', sessionId: LONG_SID, nonce: MAX, epoch: MAX, serving: false, commitIndex: MAX },
  'session-quiesce': { type: 'session-quiesce', sessionId: LONG_SID, epoch: MAX, seq: MAX, index: MAX, indexEpoch: MAX, boot: MAX },
  'session-quiesced': { type: 'session-quiesced', sessionId: LONG_SID, epoch: MAX, seq: MAX, ok: true, boot: MAX, gen: MAX },
  'session-beat': { type: 'session-beat', boot: MAX, seq: MAX },
  'session-beat-ack': { type: 'session-beat-ack', seq: MAX, boot: MAX, gen: MAX }
}

const manyDeltas = (first: number, count: number, epoch: number): LogEntry[] =>
  Array.from({ length: count }, (_, i) => delta(first + i, epoch, i + 1, { op: 'ins', at: i, s: 'x' }))

// Edge cases of every type, each round-tripped.
const EDGES: Array<[string, SessionMessage]> = [
  ['an append heartbeat (no entries)', { type: 'session-append', sessionId: SID, epoch: 3, seq: 0, prevIndex: 7, prevEpoch: 3, commitIndex: 7, entries: [] }],
  [`an append of ${MAX_SESSION_ENTRIES} entries`, { type: 'session-append', sessionId: SID, epoch: 5, seq: 1, prevIndex: 100, prevEpoch: 4, commitIndex: 90, entries: manyDeltas(101, MAX_SESSION_ENTRIES, 5) }],
  ['an append of a create entry with no position and no witness', { type: 'session-append', sessionId: SID, epoch: 1, seq: 1, prevIndex: 0, prevEpoch: 0, commitIndex: 0, entries: [{ index: 1, epoch: 1, body: { kind: 'create', info: { ...INFO, position: null }, config: TRIO } }] }],
  ['an append whose numbers are at MAX_SAFE_INTEGER', { type: 'session-append', sessionId: LONG_SID, epoch: MAX, seq: MAX, prevIndex: MAX - 2, prevEpoch: MAX, commitIndex: MAX, entries: [delta(MAX - 1, MAX, MAX, null), { index: MAX, epoch: MAX, body: { kind: 'close' } }] }],
  [`an op nested exactly ${MAX_JSON_DEPTH} deep and scalar ops`, { type: 'session-append', sessionId: SID, epoch: 2, seq: 1, prevIndex: 1, prevEpoch: 1, commitIndex: 1, entries: [delta(2, 2, 1, nested(MAX_JSON_DEPTH)), delta(3, 2, 2, null), delta(4, 2, 3, false), delta(5, 2, 4, -0.5), delta(6, 2, 5, ''), delta(7, 2, 6, [])] }],
  ['an op of exactly MAX_OP_BYTES', { type: 'session-append', sessionId: SID, epoch: 2, seq: 1, prevIndex: 1, prevEpoch: 1, commitIndex: 1, entries: [delta(2, 2, 1, 'é'.repeat((MAX_OP_BYTES - 2) / 2))] }],
  ['a granted vote with an empty tail and no reason', { type: 'session-vote', sessionId: SID, epoch: 4, granted: true, preVote: true, reason: '', lastIndex: 0, lastEpoch: 0, commitIndex: 0, tail: [] }],
  [`a vote with a tail of ${MAX_SESSION_ENTRIES} entries`, { type: 'session-vote', sessionId: SID, epoch: 9, granted: true, preVote: false, reason: LONG_REASON, lastIndex: 5000, lastEpoch: 8, commitIndex: 10, tail: manyDeltas(11, MAX_SESSION_ENTRIES, 8) }],
  ['a snapshot with no position, a witness, scalar state and a full dedup window', {
    type: 'session-snapshot', sessionId: SID, epoch: 7, seq: 1,
    snapshot: {
      index: 1000, indexEpoch: 7, info: { ...INFO, position: null }, config: PAIR, state: 'plain text state',
      dedup: { lastClientSeq: 900, recent: Array.from({ length: MAX_DEDUP_RECENT }, (_, i): [number, number] => [i + 600, i + 700]) }
    }
  }],
  ['a snapshot with null state', { type: 'session-snapshot', sessionId: SID, epoch: 1, seq: 1, snapshot: { index: 1, indexEpoch: 1, info: INFO, config: { members: [PEER_A], witness: null }, state: null, dedup: { lastClientSeq: 0, recent: [] } } }],
  ['an open with no position and no witness', { type: 'session-open', requestId: 0, info: { ...INFO, position: null }, config: TRIO }],
  ['a refused open: no owner, empty group', { type: 'session-opened', requestId: 5, status: 409, reason: 'session sess-01 exists', epoch: 0, owner: '', config: EMPTY_GROUP }],
  ['an opened with status 100 and 599', { type: 'session-opened', requestId: 5, status: 100, reason: '', epoch: 0, owner: PEER_A, config: PAIR }],
  ['a location not found: no owner, empty group, no token hash', { type: 'session-location', requestId: 1, sessionId: SID, found: false, epoch: 0, owner: '', config: EMPTY_GROUP, tokenHash: '' }],
  ['a location whose owner is unknown', { type: 'session-location', requestId: 1, sessionId: SID, found: true, epoch: 4, owner: '', config: PAIR, tokenHash: HASH }],
  ['a diagnosis that is not serving', { type: 'session-diagnosis', sessionId: SID, nonce: 0, epoch: 0, serving: false, commitIndex: 0 }],
  ['a quiesced that is not ok', { type: 'session-quiesced', sessionId: SID, epoch: 3, seq: 18, ok: false, boot: 0, gen: 0 }],
  ['a beat of zeros', { type: 'session-beat', boot: 0, seq: 0 }],
  ['a beat ack of zeros', { type: 'session-beat-ack', seq: 0, boot: 0, gen: 0 }],
  ...Object.values(WORST).map((m): [string, SessionMessage] => [`the largest ${m.type}`, m])
]

// ---------------------------------------------------------------- raw builders
// These write the wire layout by hand, so a test can put any value in any field.

type Part = (w: Writer) => void
type Str = string | Uint8Array

// 2^53 as a varint: one more than MAX_SAFE_INTEGER.
const VARINT_2_POW_53 = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]

const seq = (...parts: Part[]): Part => (w) => { for (const part of parts) part(w) }
const bytes = (list: ArrayLike<number>): Part => (w) => { for (let i = 0; i < list.length; i++) w.u8(list[i]) }
const txt = (s: Str): Part => (w) => { if (typeof s === 'string') w.string(s, NO_LIMIT); else w.bytes(s, NO_LIMIT) }
const vi = (n: number): Part => (w) => w.varint(n)
const u8 = (n: number): Part => (w) => w.u8(n)
const pos = (lat: number, lon: number, presence = 1): Part => seq(u8(presence), (w) => w.f64(lat), (w) => w.f64(lon))
const list = (items: Part[], count = items.length): Part => seq(vi(count), ...items)

type RawInfo = { sessionId: Str; service: Str; terminalId: Str; tokenHash: Str; position: Part }
function rawInfo (o: Partial<RawInfo> = {}): Part {
  const i: RawInfo = { sessionId: SID, service: INFO.service, terminalId: INFO.terminalId, tokenHash: HASH, position: pos(48.8566, 2.3522), ...o }
  return seq(txt(i.sessionId), txt(i.service), txt(i.terminalId), txt(i.tokenHash), i.position)
}

function rawConfig (members: Str[], witness: Str | null = null, presence = witness === null ? 0 : 1): Part {
  return seq(list(members.map(txt)), u8(presence), witness === null ? seq() : txt(witness))
}
const RAW_PAIR = rawConfig([PEER_A, PEER_B], PEER_C)

const rawEntry = (index: number, epoch: number, kind: number, ...body: Part[]): Part => seq(vi(index), vi(epoch), u8(kind), ...body)
const rawCreate = (info = rawInfo(), config = RAW_PAIR, index = 1, epoch = 1): Part => rawEntry(index, epoch, 1, info, config)
const rawDelta = (index: number, epoch: number, op: Str = '{"k":1}', clientSeq = 1): Part => rawEntry(index, epoch, 2, vi(clientSeq), txt(op))

// Each type's fields in wire order, set to good values.
const RAW = {
  'session-append': { sessionId: txt(SID), epoch: vi(3), seq: vi(1), prevIndex: vi(0), prevEpoch: vi(0), commitIndex: vi(0), entries: list([]) },
  'session-append-ack': { sessionId: txt(SID), epoch: vi(3), seq: vi(1), ok: u8(1), matchIndex: vi(5), lastIndex: vi(5) },
  'session-vote-request': { sessionId: txt(SID), epoch: vi(4), candidate: txt(PEER_B), lastIndex: vi(5), lastEpoch: vi(3), commitIndex: vi(4), preVote: u8(0) },
  'session-vote': { sessionId: txt(SID), epoch: vi(4), granted: u8(1), preVote: u8(0), reason: txt(''), lastIndex: vi(5), lastEpoch: vi(3), commitIndex: vi(4), tail: list([]) },
  'session-snapshot': {
    sessionId: txt(SID), epoch: vi(3), seq: vi(2), index: vi(4), indexEpoch: vi(2), info: rawInfo(), config: RAW_PAIR,
    state: txt('{"lines":["a"]}'), lastClientSeq: vi(3), recent: list([seq(vi(2), vi(3)), seq(vi(3), vi(4))])
  },
  'session-open': { requestId: vi(12), info: rawInfo(), config: RAW_PAIR },
  'session-opened': { requestId: vi(12), status: vi(201), reason: txt(''), epoch: vi(1), owner: txt(PEER_A), config: RAW_PAIR },
  'session-locate': { requestId: vi(13), sessionId: txt(SID) },
  'session-location': { requestId: vi(13), sessionId: txt(SID), found: u8(1), epoch: vi(3), owner: txt(PEER_A), config: RAW_PAIR, tokenHash: txt(HASH) },
  'session-diagnose': { sessionId: txt(SID), nonce: vi(99) },
  'session-diagnosis': { sessionId: txt(SID), nonce: vi(99), epoch: vi(3), serving: u8(1), commitIndex: vi(4) },
  'session-quiesce': { sessionId: txt(SID), epoch: vi(3), seq: vi(2), index: vi(5), indexEpoch: vi(3), boot: vi(300) },
  'session-quiesced': { sessionId: txt(SID), epoch: vi(3), seq: vi(2), ok: u8(1), boot: vi(300), gen: vi(1) },
  'session-beat': { boot: vi(300), seq: vi(8) },
  'session-beat-ack': { seq: vi(8), boot: vi(300), gen: vi(1) }
} satisfies Record<SessionTypeName, Record<string, Part>>

// What the RAW frames mean.
const RAW_MEANS: Record<SessionTypeName, SessionMessage> = {
  'session-append': { type: 'session-append', sessionId: SID, epoch: 3, seq: 1, prevIndex: 0, prevEpoch: 0, commitIndex: 0, entries: [] },
  'session-append-ack': { type: 'session-append-ack', sessionId: SID, epoch: 3, seq: 1, ok: true, matchIndex: 5, lastIndex: 5 },
  'session-vote-request': { type: 'session-vote-request', sessionId: SID, epoch: 4, candidate: PEER_B, lastIndex: 5, lastEpoch: 3, commitIndex: 4, preVote: false },
  'session-vote': { type: 'session-vote', sessionId: SID, epoch: 4, granted: true, preVote: false, reason: '', lastIndex: 5, lastEpoch: 3, commitIndex: 4, tail: [] },
  'session-snapshot': {
    type: 'session-snapshot', sessionId: SID, epoch: 3, seq: 2,
    snapshot: { index: 4, indexEpoch: 2, info: INFO, config: PAIR, state: { lines: ['a'] }, dedup: { lastClientSeq: 3, recent: [[2, 3], [3, 4]] } }
  },
  'session-open': { type: 'session-open', requestId: 12, info: INFO, config: PAIR },
  'session-opened': { type: 'session-opened', requestId: 12, status: 201, reason: '', epoch: 1, owner: PEER_A, config: PAIR },
  'session-locate': { type: 'session-locate', requestId: 13, sessionId: SID },
  'session-location': { type: 'session-location', requestId: 13, sessionId: SID, found: true, epoch: 3, owner: PEER_A, config: PAIR, tokenHash: HASH },
  'session-diagnose': { type: 'session-diagnose', sessionId: SID, nonce: 99 },
  'session-diagnosis': { type: 'session-diagnosis', sessionId: SID, nonce: 99, epoch: 3, serving: true, commitIndex: 4 },
  'session-quiesce': { type: 'session-quiesce', sessionId: SID, epoch: 3, seq: 2, index: 5, indexEpoch: 3, boot: 300 },
  'session-quiesced': { type: 'session-quiesced', sessionId: SID, epoch: 3, seq: 2, ok: true, boot: 300, gen: 1 },
  'session-beat': { type: 'session-beat', boot: 300, seq: 8 },
  'session-beat-ack': { type: 'session-beat-ack', seq: 8, boot: 300, gen: 1 }
}

function frame (type: SessionTypeName | number, parts: Part[]): Uint8Array {
  const w = new Writer()
  w.u8(PROTOCOL_VERSION)
  w.u8(typeof type === 'number' ? type : MESSAGE_TYPE[type])
  for (const part of parts) part(w)
  return w.finish()
}

function raw<T extends SessionTypeName> (type: T, overrides: Partial<Record<keyof typeof RAW[T], Part>> = {}): Uint8Array {
  const fields: Record<string, Part> = { ...RAW[type], ...overrides }
  return frame(type, Object.values(fields))
}

function refused<T> (result: Decoded<T>, fragment: string): void {
  if (result.ok) assert.unreachable(`expected a refusal mentioning "${fragment}", got ok`)
  else assert.ok(result.reason.includes(fragment), `reason "${result.reason}" should mention "${fragment}"`)
}

function ok<T> (result: Decoded<T>): T {
  if (!result.ok) throw new Error(`expected ok, got refusal: ${result.reason}`)
  return result.value
}

const isRange = (e: unknown) => e instanceof RangeError

// ---------------------------------------------------------------- round trips

for (const type of SESSION_TYPES) {
  test(`decode() returns what encode() wrote for ${type}`, () => {
    const message = SAMPLES[type]
    const bytes = encode(message)
    assert.is(bytes[0], PROTOCOL_VERSION)
    assert.is(bytes[1], MESSAGE_TYPE[type])
    assert.equal(ok(decode(bytes)), message)
  })
}

for (const [name, message] of EDGES) {
  test(`decode() round-trips ${name}`, () => {
    assert.equal(ok(decode(encode(message))), message)
  })
}

for (const type of SESSION_TYPES) {
  test(`encode() writes the documented ${type} layout byte for byte`, () => {
    assert.equal(encode(RAW_MEANS[type]), raw(type))
    assert.equal(ok(decode(raw(type))), RAW_MEANS[type])
  })
}

test('encode() writes each entry kind in the documented layout, ops as JSON.stringify text', () => {
  const message: Message = {
    type: 'session-append', sessionId: SID, epoch: 3, seq: 1, prevIndex: 0, prevEpoch: 0, commitIndex: 0,
    entries: [
      { index: 1, epoch: 1, body: { kind: 'create', info: INFO, config: PAIR } },
      { index: 2, epoch: 1, body: { kind: 'delta', clientSeq: 7, op: { k: [1, 'x'] } } },
      { index: 3, epoch: 2, body: { kind: 'epoch' } },
      { index: 4, epoch: 2, body: { kind: 'config', config: TRIO } },
      { index: 5, epoch: 3, body: { kind: 'close' } }
    ]
  }
  const expected = raw('session-append', {
    entries: list([
      rawCreate(),
      rawDelta(2, 1, '{"k":[1,"x"]}', 7),
      rawEntry(3, 2, 3),
      rawEntry(4, 2, 4, rawConfig([PEER_A, PEER_B, PEER_C])),
      rawEntry(5, 3, 5)
    ])
  })
  assert.equal(encode(message), expected)
})

test('decode() accepts any JSON text, not only the form JSON.stringify writes', () => {
  const text = ' { "b" : [ 1.0 , 2e0 , "\\u0041" ] , "a" : null } '
  const message = ok(decode(raw('session-append', { prevIndex: vi(1), prevEpoch: vi(1), entries: list([rawDelta(2, 1, text)]) })))
  assert.equal(message.type === 'session-append' && message.entries[0].body, { kind: 'delta', clientSeq: 1, op: { b: [1, 2, 'A'], a: null } })
})

test('decode() keeps nothing that views the frame', () => {
  const bytes = Buffer.from(encode(SAMPLES['session-snapshot']))
  const message = ok(decode(bytes))
  bytes.fill(0)
  assert.equal(message, SAMPLES['session-snapshot'])
})

test('the largest control and group frames fit their limits with the documented sizes', () => {
  const sizes: Record<string, number> = {}
  for (const message of Object.values(WORST)) {
    const length = encode(message).length
    sizes[message.type] = length
    assert.ok(length <= maxFrameBytes(message.type), `${message.type} takes ${length} bytes`)
  }
  // limits.ts quotes these two: the largest of each class.
  assert.is(sizes['session-vote-request'], 295)
  assert.is(sizes['session-opened'], 2_876)
  for (const type of ['session-append-ack', 'session-locate', 'session-diagnose', 'session-diagnosis', 'session-quiesce', 'session-quiesced', 'session-beat', 'session-beat-ack']) assert.ok(sizes[type] <= 294, type)
  for (const type of ['session-open', 'session-location']) assert.ok(sizes[type] <= 2_876, type)
})

// ---------------------------------------------------------------- frame limits and structure

test('maxFrameBytes() gives each session type its limit', () => {
  const big = ['session-append', 'session-vote', 'session-snapshot']
  const group = ['session-open', 'session-opened', 'session-location']
  for (const type of SESSION_TYPES) {
    const expected = big.includes(type) ? MAX_SESSION_FRAME_BYTES : group.includes(type) ? MAX_SESSION_GROUP_FRAME_BYTES : MAX_SESSION_CONTROL_FRAME_BYTES
    assert.is(maxFrameBytes(type), expected, type)
  }
})

for (const type of SESSION_TYPES) {
  test(`decode() refuses a ${type} frame one byte over its limit, before parsing`, () => {
    const limit = maxFrameBytes(type)
    const big = new Uint8Array(limit + 1)
    big[0] = PROTOCOL_VERSION
    big[1] = MESSAGE_TYPE[type]
    refused(decode(big), `frame of ${limit + 1} bytes exceeds the ${limit}-byte limit for ${type}`)
    const atLimit = decode(big.subarray(0, limit))
    assert.ok(!atLimit.ok && !atLimit.reason.includes('-byte limit for'), 'a frame at the limit is parsed')
  })
}

for (const type of SESSION_TYPES) {
  test(`decode() refuses every truncation of a valid ${type} frame without throwing`, () => {
    for (const bytes of [encode(SAMPLES[type]), raw(type)]) {
      for (let length = 0; length < bytes.length; length++) {
        const result = decode(bytes.subarray(0, length))
        assert.ok(!result.ok, `prefix of ${length} of ${bytes.length} bytes was accepted`)
      }
    }
  })
}

for (const type of SESSION_TYPES) {
  test(`decode() refuses a ${type} frame with one trailing byte`, () => {
    const bytes = encode(SAMPLES[type])
    const longer = new Uint8Array(bytes.length + 1)
    longer.set(bytes)
    refused(decode(longer), `1 trailing byte after ${type}`)
  })
}

// ---------------------------------------------------------------- text fields

const TYPES_WITH_SESSION_ID = SESSION_TYPES.filter((type) => 'sessionId' in RAW[type])

test('decode() refuses a bad sessionId in every type that carries one', () => {
  const bad: Array<[Str, string]> = [
    ['', 'sessionId is empty'],
    ['a b', 'sessionId has characters outside [A-Za-z0-9._:-]'],
    ['sess/1', 'sessionId has characters outside'],
    ['séss', 'sessionId has characters outside'],
    ['a'.repeat(MAX_SESSION_ID_CHARS + 1), `sessionId of ${MAX_SESSION_ID_CHARS + 1} bytes exceeds the ${MAX_SESSION_ID_CHARS}-byte limit`],
    [Uint8Array.of(0x61, 0xff), 'sessionId is not valid UTF-8']
  ]
  assert.is(TYPES_WITH_SESSION_ID.length, 11)
  for (const type of TYPES_WITH_SESSION_ID) {
    for (const [value, fragment] of bad) refused(decode(raw(type, { sessionId: txt(value) } as never)), fragment)
    const longest = type === 'session-snapshot' ? { sessionId: txt(LONG_SID), info: rawInfo({ sessionId: LONG_SID }) } : { sessionId: txt(LONG_SID) }
    assert.is(ok(decode(raw(type, longest as never))).type, type)
  }
  refused(decode(raw('session-open', { info: rawInfo({ sessionId: 'a b' }) })), 'info.sessionId has characters outside')
})

test('decode() refuses a terminalId that is empty, too long or not printable ASCII', () => {
  const open = (terminalId: Str) => decode(raw('session-open', { info: rawInfo({ terminalId }) }))
  refused(open(''), 'info.terminalId is empty')
  refused(open('tty 1'), 'info.terminalId is not printable ASCII')
  refused(open('tty\x7f'), 'info.terminalId is not printable ASCII')
  refused(open('tty\n'), 'info.terminalId is not printable ASCII')
  refused(open('ttyé'), 'info.terminalId is not printable ASCII')
  refused(open('t'.repeat(MAX_TERMINAL_ID_CHARS + 1)), `info.terminalId of ${MAX_TERMINAL_ID_CHARS + 1} bytes exceeds`)
  const printable = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join('')
  const message = ok(open(printable))
  assert.is(message.type === 'session-open' && message.info.terminalId, printable)
})

test('decode() refuses a service name outside the record rule', () => {
  const open = (service: Str) => decode(raw('session-open', { info: rawInfo({ service }) }))
  refused(open('Web'), 'info.service is not a valid service name')
  refused(open('-web'), 'info.service is not a valid service name')
  refused(open('web shell'), 'info.service is not a valid service name')
  refused(open(''), 'info.service is empty')
  refused(open('a'.repeat(MAX_SERVICE_NAME_CHARS + 1)), `info.service of ${MAX_SERVICE_NAME_CHARS + 1} bytes exceeds`)
  assert.is(ok(open('0web_1.x-y')).type, 'session-open')
})

test('decode() refuses a tokenHash that is not 64 lowercase hex characters', () => {
  const open = (tokenHash: Str) => decode(raw('session-open', { info: rawInfo({ tokenHash }) }))
  refused(open(HASH.toUpperCase()), 'info.tokenHash is not 64 lowercase hex characters')
  refused(open(HASH.slice(1)), 'info.tokenHash is not 64 lowercase hex characters')
  refused(open('g'.repeat(64)), 'info.tokenHash is not 64 lowercase hex characters')
  refused(open(HASH + '0'), 'info.tokenHash of 65 bytes exceeds the 64-byte limit')
  refused(open(''), 'info.tokenHash is empty')
  refused(decode(raw('session-location', { tokenHash: txt('A'.repeat(64)) })), 'tokenHash is not 64 lowercase hex characters')
})

test('decode() takes an empty tokenHash and an empty group only in a location that was not found', () => {
  const location = (found: number, config: Part, tokenHash: Str) => decode(raw('session-location', { found: u8(found), config, tokenHash: txt(tokenHash) }))
  assert.is(ok(location(0, rawConfig([]), '')).type, 'session-location')
  refused(location(1, RAW_PAIR, ''), 'tokenHash is empty')
  refused(location(1, rawConfig([]), HASH), 'config.members is empty')
  refused(location(0, rawConfig([]), 'x'), 'tokenHash is not 64 lowercase hex characters')
})

test('decode() refuses a reason that is too long or not printable ASCII, and accepts spaces', () => {
  const vote = (reason: Str) => decode(raw('session-vote', { reason: txt(reason) }))
  refused(vote('r'.repeat(MAX_REASON_CHARS + 1)), `reason of ${MAX_REASON_CHARS + 1} bytes exceeds the ${MAX_REASON_CHARS}-byte limit`)
  refused(vote('line\nbreak'), 'reason is not printable ASCII')
  refused(vote('tab\there'), 'reason is not printable ASCII')
  refused(vote('naïve'), 'reason is not printable ASCII')
  refused(decode(raw('session-opened', { reason: txt('\x7f') })), 'reason is not printable ASCII')
  assert.is(ok(vote(LONG_REASON)).type, 'session-vote')
  assert.is(ok(vote(' ')).type, 'session-vote')
})

test('decode() refuses bad peer ids: candidate, members, witness, owner', () => {
  refused(decode(raw('session-vote-request', { candidate: txt('') })), 'candidate is empty')
  refused(decode(raw('session-vote-request', { candidate: txt('peer 1') })), 'candidate has characters outside [A-Za-z0-9._-]')
  refused(decode(raw('session-vote-request', { candidate: txt('a'.repeat(MAX_ID_CHARS + 1)) })), `candidate of ${MAX_ID_CHARS + 1} bytes exceeds`)
  refused(decode(raw('session-open', { config: rawConfig([PEER_A, 'bad:id']) })), 'config.members[1] has characters outside')
  refused(decode(raw('session-open', { config: rawConfig([PEER_A, '']) })), 'config.members[1] is empty')
  refused(decode(raw('session-open', { config: rawConfig([PEER_A], 'bad id') })), 'config.witness has characters outside')
  refused(decode(raw('session-opened', { owner: txt('bad id') })), 'owner has characters outside')
  refused(decode(raw('session-location', { owner: txt('o'.repeat(MAX_ID_CHARS + 1)) })), `owner of ${MAX_ID_CHARS + 1} bytes exceeds`)
})

test('decode() takes an empty owner in session-opened and session-location', () => {
  const opened = ok(decode(raw('session-opened', { owner: txt('') })))
  assert.is(opened.type === 'session-opened' && opened.owner, '')
  const location = ok(decode(raw('session-location', { owner: txt('') })))
  assert.is(location.type === 'session-location' && location.owner, '')
})

// ---------------------------------------------------------------- positions, numbers, flags

test('decode() refuses positions as records do, wherever a session info appears', () => {
  refused(decode(raw('session-open', { info: rawInfo({ position: pos(91, 0) }) })), 'info.position.lat out of range')
  refused(decode(raw('session-open', { info: rawInfo({ position: pos(0, NaN) }) })), 'info.position.lon out of range')
  refused(decode(raw('session-open', { info: rawInfo({ position: pos(0, -Infinity) }) })), 'info.position.lon out of range')
  refused(decode(raw('session-open', { info: rawInfo({ position: u8(2) }) })), 'info.position presence byte 2 is neither 0 nor 1')
  refused(decode(raw('session-append', { entries: list([rawCreate(rawInfo({ position: pos(-90.5, 0) }))]) })), 'entries[0]: info.position.lat out of range')
  refused(decode(raw('session-snapshot', { info: rawInfo({ position: pos(0, 180.1) }) })), 'snapshot.info.position.lon out of range')
  const edge = ok(decode(raw('session-open', { info: rawInfo({ position: pos(90, -180) }) })))
  assert.equal(edge.type === 'session-open' && edge.info.position, { lat: 90, lon: -180 })
  const none = ok(decode(raw('session-open', { info: rawInfo({ position: u8(0) }) })))
  assert.is(none.type === 'session-open' && none.info.position, null)
})

const NUMBER_FIELDS = new Set(['epoch', 'seq', 'prevIndex', 'prevEpoch', 'commitIndex', 'matchIndex', 'lastIndex', 'lastEpoch', 'requestId', 'status', 'nonce', 'index', 'indexEpoch', 'lastClientSeq', 'boot', 'gen'])

test('decode() refuses a varint over MAX_SAFE_INTEGER or not minimal in every number field of every type', () => {
  let checked = 0
  for (const type of SESSION_TYPES) {
    for (const field of Object.keys(RAW[type])) {
      if (!NUMBER_FIELDS.has(field)) continue
      const name = type === 'session-snapshot' && !['epoch', 'seq'].includes(field) ? `snapshot.${field === 'lastClientSeq' ? 'dedup.' : ''}${field}` : field
      refused(decode(raw(type, { [field]: bytes(VARINT_2_POW_53) } as never)), `${name} exceeds MAX_SAFE_INTEGER`)
      refused(decode(raw(type, { [field]: bytes([0x81, 0x00]) } as never)), `${name} is not minimally encoded`)
      checked++
    }
  }
  assert.is(checked, 47)
})

test('decode() refuses an opened status outside 100..599', () => {
  for (const status of [0, 99, 600, 1000]) refused(decode(raw('session-opened', { status: vi(status) })), `status ${status} is outside 100..599`)
  for (const status of [100, 200, 599]) assert.is(ok(decode(raw('session-opened', { status: vi(status) }))).type, 'session-opened')
})

test('decode() refuses boolean bytes other than 0 and 1', () => {
  refused(decode(raw('session-append-ack', { ok: u8(2) })), 'ok byte 2 is neither 0 nor 1')
  refused(decode(raw('session-vote', { granted: u8(255) })), 'granted byte 255 is neither 0 nor 1')
  refused(decode(raw('session-location', { found: u8(2) })), 'found byte 2 is neither 0 nor 1')
  refused(decode(raw('session-diagnosis', { serving: u8(7) })), 'serving byte 7 is neither 0 nor 1')
  refused(decode(raw('session-quiesced', { ok: u8(7) })), 'ok byte 7 is neither 0 nor 1')
  const nack = ok(decode(raw('session-append-ack', { ok: u8(0) })))
  assert.is(nack.type === 'session-append-ack' && nack.ok, false)
  const declined = ok(decode(raw('session-quiesced', { ok: u8(0) })))
  assert.is(declined.type === 'session-quiesced' && declined.ok, false)
})

// ---------------------------------------------------------------- groups

test('decode() refuses a group with no members, too many, or a duplicate', () => {
  refused(decode(raw('session-open', { config: rawConfig([]) })), 'config.members is empty')
  const seventeen = Array.from({ length: MAX_GROUP_MEMBERS + 1 }, (_, i) => 'peer' + i)
  refused(decode(raw('session-open', { config: rawConfig(seventeen) })), `config.members count ${MAX_GROUP_MEMBERS + 1} exceeds the limit of ${MAX_GROUP_MEMBERS}`)
  refused(decode(raw('session-open', { config: rawConfig([PEER_A, PEER_B, PEER_A]) })), `config.members[2] ${PEER_A} is a duplicate`)
  refused(decode(raw('session-append', { prevIndex: vi(1), prevEpoch: vi(1), entries: list([rawEntry(2, 1, 4, rawConfig([PEER_B, PEER_B]))]) })), `entries[0]: config.members[1] ${PEER_B} is a duplicate`)
  refused(decode(raw('session-snapshot', { config: rawConfig([]) })), 'snapshot.config.members is empty')
  assert.is(ok(decode(raw('session-open', { config: rawConfig(seventeen.slice(1)) }))).type, 'session-open')
})

test('decode() refuses a witness that is also a member, or a bad witness presence byte', () => {
  refused(decode(raw('session-open', { config: rawConfig([PEER_A, PEER_B], PEER_B) })), `config.witness ${PEER_B} is also a member`)
  refused(decode(raw('session-location', { config: rawConfig([PEER_A, PEER_B], PEER_A) })), 'config.witness')
  refused(decode(raw('session-append', { entries: list([rawCreate(rawInfo(), rawConfig([PEER_A, PEER_B], PEER_A))]) })), `entries[0]: config.witness ${PEER_A} is also a member`)
  refused(decode(raw('session-open', { config: rawConfig([PEER_A], null, 2) })), 'config.witness presence byte 2 is neither 0 nor 1')
})

test('decode() takes an empty group only in a refused open, and never with a witness', () => {
  refused(decode(raw('session-opened', { config: rawConfig([]) })), 'config.members is empty')
  refused(decode(raw('session-opened', { status: vi(204), config: rawConfig([]) })), 'config.members is empty')
  const refusedOpen = ok(decode(raw('session-opened', { status: vi(503), owner: txt(''), config: rawConfig([]) })))
  assert.equal(refusedOpen.type === 'session-opened' && refusedOpen.config, EMPTY_GROUP)
  refused(decode(raw('session-opened', { status: vi(404), config: rawConfig([], PEER_C) })), 'config.witness is set in an empty group')
  // A refusal may still name the group it knows.
  assert.is(ok(decode(raw('session-opened', { status: vi(409) }))).type, 'session-opened')
})

// ---------------------------------------------------------------- log entries

const append = (prevIndex: number, prevEpoch: number, epoch: number, entries: Part[], count?: number) =>
  decode(raw('session-append', { epoch: vi(epoch), prevIndex: vi(prevIndex), prevEpoch: vi(prevEpoch), entries: list(entries, count) }))
const vote = (tail: Part[], count?: number) => decode(raw('session-vote', { tail: list(tail, count) }))

test('decode() refuses entries whose indexes are not consecutive', () => {
  refused(append(1, 1, 1, [rawDelta(2, 1), rawDelta(3, 1), rawDelta(5, 1)]), 'entries[2]: index 5 is not 4: indexes must be consecutive')
  refused(append(1, 1, 1, [rawDelta(2, 1), rawDelta(2, 1)]), 'entries[1]: index 2 is not 3')
  refused(append(3, 1, 1, [rawDelta(4, 1), rawDelta(3, 1)]), 'entries[1]: index 3 is not 5')
  refused(vote([rawDelta(9, 1), rawDelta(11, 1)]), 'tail[1]: index 11 is not 10: indexes must be consecutive')
  assert.is(ok(vote([rawDelta(9, 1), rawDelta(10, 2)])).type, 'session-vote')
})

test('decode() refuses an append whose first entry does not follow prevIndex', () => {
  refused(append(7, 1, 1, [rawDelta(9, 1)]), 'entries[0]: index 9 is not prevIndex + 1 (8)')
  refused(append(7, 1, 1, [rawDelta(7, 1)]), 'entries[0]: index 7 is not prevIndex + 1 (8)')
  assert.is(ok(append(7, 1, 1, [rawDelta(8, 1)])).type, 'session-append')
})

test('decode() refuses entry index 0', () => {
  refused(vote([rawEntry(0, 1, 3)]), 'tail[0]: index 0 is below 1')
})

test('decode() refuses entry epochs that decrease, fall below prevEpoch or pass the message epoch', () => {
  refused(append(1, 1, 3, [rawDelta(2, 2), rawDelta(3, 1)]), "entries[1]: epoch 1 is below the previous entry's epoch 2")
  refused(append(1, 2, 3, [rawDelta(2, 1)]), 'entries[0]: epoch 1 is below prevEpoch 2')
  refused(append(1, 1, 3, [rawDelta(2, 4)]), 'entries[0]: epoch 4 is above the message epoch 3')
  refused(vote([rawDelta(2, 3), rawDelta(3, 2)]), "tail[1]: epoch 2 is below the previous entry's epoch 3")
})

test('decode() refuses unknown entry kinds', () => {
  refused(append(1, 1, 1, [rawEntry(2, 1, 0)]), 'entries[0]: entry kind 0 is unknown')
  refused(append(1, 1, 1, [rawEntry(2, 1, 6)]), 'entries[0]: entry kind 6 is unknown')
})

test('decode() refuses a create entry anywhere but index 1, and anything else at index 1', () => {
  refused(append(1, 1, 1, [rawCreate(rawInfo(), RAW_PAIR, 2)]), 'entries[0]: create entry at index 2')
  refused(append(0, 0, 1, [rawDelta(1, 1)]), 'entries[0]: index 1 is not a create entry')
  refused(vote([rawEntry(1, 1, 3)]), 'tail[0]: index 1 is not a create entry')
})

test('decode() refuses a create entry for another session', () => {
  refused(append(0, 0, 1, [rawCreate(rawInfo({ sessionId: 'other' }))]), 'entries[0]: info.sessionId differs from sessionId')
  refused(vote([rawCreate(rawInfo({ sessionId: 'other' }))]), 'tail[0]: info.sessionId differs from sessionId')
})

test('decode() refuses more than MAX_SESSION_ENTRIES entries from the count alone', () => {
  refused(append(1, 1, 1, [], MAX_SESSION_ENTRIES + 1), `entries count ${MAX_SESSION_ENTRIES + 1} exceeds the limit of ${MAX_SESSION_ENTRIES}`)
  refused(vote([], MAX_SESSION_ENTRIES + 1), `tail count ${MAX_SESSION_ENTRIES + 1} exceeds the limit of ${MAX_SESSION_ENTRIES}`)
})

test('decode() refuses a bad field inside a delta, naming the entry', () => {
  refused(append(1, 1, 1, [rawDelta(2, 1), rawEntry(3, 1, 2, bytes(VARINT_2_POW_53))]), 'entries[1]: clientSeq exceeds MAX_SAFE_INTEGER')
  refused(append(1, 1, 1, [rawDelta(2, 1), rawDelta(3, 1, '{')]), 'entries[1]: op is not valid JSON')
})

// ---------------------------------------------------------------- JSON

const withOp = (op: Str) => append(1, 1, 1, [rawDelta(2, 1, op)])
const withState = (state: Str) => decode(raw('session-snapshot', { state: txt(state) }))
const deepArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth)
const deepObjects = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)

test(`decode() refuses JSON nested deeper than MAX_JSON_DEPTH (${MAX_JSON_DEPTH}) and accepts it at the limit`, () => {
  refused(withOp(deepArrays(MAX_JSON_DEPTH + 1)), `entries[0]: op nests deeper than ${MAX_JSON_DEPTH} levels`)
  refused(withOp(deepObjects(MAX_JSON_DEPTH + 1)), 'op nests deeper than')
  refused(withState(`{"x":[1,2,${deepArrays(MAX_JSON_DEPTH)}]}`), `snapshot.state nests deeper than ${MAX_JSON_DEPTH} levels`)
  assert.is(ok(withOp(deepArrays(MAX_JSON_DEPTH))).type, 'session-append')
  assert.is(ok(withOp(deepObjects(MAX_JSON_DEPTH))).type, 'session-append')
  // Siblings do not add up: depth is nesting, not the number of brackets.
  assert.is(ok(withOp('[' + Array(500).fill(deepArrays(MAX_JSON_DEPTH - 1)).join(',') + ']')).type, 'session-append')
})

test('decode() counts brackets inside strings as text, escaped quotes included', () => {
  const op = JSON.stringify({ s: '['.repeat(500) + '"\\' + '{'.repeat(500), t: '\\' })
  const message = ok(withOp(op))
  assert.equal(message.type === 'session-append' && message.entries[0].body, { kind: 'delta', clientSeq: 1, op: JSON.parse(op) })
})

test('decode() refuses a nesting bomb of MAX_STATE_BYTES from the text, without parsing it', () => {
  const half = MAX_STATE_BYTES / 2
  refused(withState('['.repeat(half) + ']'.repeat(half)), 'snapshot.state nests deeper than')
  refused(withState('{"a":'.repeat(MAX_STATE_BYTES / 5)), 'snapshot.state nests deeper than')
})

test('decode() refuses JSON text over MAX_OP_BYTES in an op and over MAX_STATE_BYTES in a state', () => {
  refused(withOp('"' + 'x'.repeat(MAX_OP_BYTES - 1) + '"'), `entries[0]: op of ${MAX_OP_BYTES + 1} bytes exceeds the ${MAX_OP_BYTES}-byte limit`)
  assert.is(ok(withOp('"' + 'x'.repeat(MAX_OP_BYTES - 2) + '"')).type, 'session-append')
  refused(withState('"' + 'x'.repeat(MAX_STATE_BYTES - 1) + '"'), `snapshot.state of ${MAX_STATE_BYTES + 1} bytes exceeds the ${MAX_STATE_BYTES}-byte limit`)
  assert.is(ok(withState('"' + 'x'.repeat(MAX_STATE_BYTES - 2) + '"')).type, 'session-snapshot')
})

test('decode() refuses JSON text that is not valid UTF-8', () => {
  refused(withOp(Uint8Array.of(0x22, 0xc3, 0x28, 0x22)), 'entries[0]: op is not valid UTF-8')
  refused(withState(Uint8Array.of(0x22, 0xed, 0xa0, 0x80, 0x22)), 'snapshot.state is not valid UTF-8')
})

test('decode() refuses text that is not JSON', () => {
  for (const text of ['', ' ', '{', '{"a":1,}', "{'a':1}", 'NaN', 'Infinity', 'undefined', '[1] [2]', '01', '"\\x"', '\ufeff1', '"tab\there"']) {
    refused(withOp(text), 'entries[0]: op is not valid JSON')
  }
  refused(withState('nul'), 'snapshot.state is not valid JSON')
})

test('decode() refuses numbers that overflow to ±Infinity and accepts the largest finite ones', () => {
  for (const text of ['1e400', '-1E999', '[0, {"x": 2e+309}]', '1' + '0'.repeat(309), '[' + '9'.repeat(400) + '.5]']) {
    refused(withOp(text), 'entries[0]: op has a non-finite number')
  }
  for (const text of ['1e308', '-1.7976931348623157e308', '1' + '0'.repeat(308), '1e-400', '0.' + '0'.repeat(400) + '1', '[true, false, 1e5]']) {
    assert.is(ok(withOp(text)).type, 'session-append', text)
  }
})

// ---------------------------------------------------------------- dedup and snapshot

test('decode() refuses a dedup window that is too long, out of order, or points past the snapshot', () => {
  const snap = (lastClientSeq: number, pairs: Array<[number, number]>, count?: number) =>
    decode(raw('session-snapshot', { lastClientSeq: vi(lastClientSeq), recent: list(pairs.map(([s, i]) => seq(vi(s), vi(i))), count) }))
  refused(snap(5, [], MAX_DEDUP_RECENT + 1), `snapshot.dedup.recent count ${MAX_DEDUP_RECENT + 1} exceeds the limit of ${MAX_DEDUP_RECENT}`)
  refused(snap(5, [[9, 2]]), 'snapshot.dedup.recent[0] clientSeq 9 is above lastClientSeq 5')
  refused(snap(5, [[2, 2], [2, 3]]), 'snapshot.dedup.recent[1] clientSeq 2 does not increase')
  refused(snap(5, [[3, 2], [2, 3]]), 'snapshot.dedup.recent[1] clientSeq 2 does not increase')
  refused(snap(5, [[1, 9]]), 'snapshot.dedup.recent[0] index 9 is outside 1..4')
  refused(snap(5, [[1, 0]]), 'snapshot.dedup.recent[0] index 0 is outside 1..4')
  assert.is(ok(snap(5, [[0, 1], [5, 4]])).type, 'session-snapshot')
})

test('decode() refuses a snapshot of index 0, from a later epoch, or of another session', () => {
  refused(decode(raw('session-snapshot', { index: vi(0) })), 'snapshot.index 0 is below 1')
  refused(decode(raw('session-snapshot', { indexEpoch: vi(4) })), 'snapshot.indexEpoch 4 is above the message epoch 3')
  refused(decode(raw('session-snapshot', { info: rawInfo({ sessionId: 'other' }) })), 'snapshot.info.sessionId differs from sessionId')
})

// ---------------------------------------------------------------- encoder guards

function appendOf (entries: LogEntry[], prevIndex = 1, prevEpoch = 1, epoch = 3): Message {
  return { type: 'session-append', sessionId: SID, epoch, seq: 1, prevIndex, prevEpoch, commitIndex: 0, entries }
}
const opened = (o: Partial<Extract<Message, { type: 'session-opened' }>>): Message => ({ ...(SAMPLES['session-opened'] as Extract<Message, { type: 'session-opened' }>), ...o })
const open = (config: GroupConfig, info: Partial<SessionInfo> = {}): Message => ({ type: 'session-open', requestId: 1, info: { ...INFO, ...info }, config })
const circular: Record<string, JsonValue> = {}
circular.self = circular

test('encode() throws RangeError for every message a peer would refuse', () => {
  const bad: Array<[string, Message]> = [
    ['empty sessionId', { ...SAMPLES['session-diagnose'], sessionId: '' } as Message],
    ['sessionId with a space', { ...SAMPLES['session-locate'], sessionId: 'a b' } as Message],
    ['non-string sessionId', { ...SAMPLES['session-locate'], sessionId: 7 } as unknown as Message],
    ['bad terminalId', open(PAIR, { terminalId: 'a b' })],
    ['uppercase tokenHash', open(PAIR, { tokenHash: HASH.toUpperCase() })],
    ['bad service', open(PAIR, { service: 'Web' })],
    ['position off the globe', open(PAIR, { position: { lat: 0, lon: 181 } })],
    ['no members', open(EMPTY_GROUP)],
    ['duplicate members', open({ members: [PEER_A, PEER_A], witness: null })],
    ['witness among members', open({ members: [PEER_A, PEER_B], witness: PEER_A })],
    ['too many members', open({ members: Array.from({ length: MAX_GROUP_MEMBERS + 1 }, (_, i) => 'p' + i), witness: null })],
    ['bad candidate', { ...SAMPLES['session-vote-request'], candidate: '' } as Message],
    ['bad owner', opened({ owner: 'bad id' })],
    ['status 99', opened({ status: 99 })],
    ['status 600', opened({ status: 600 })],
    ['fractional status', opened({ status: 201.5 })],
    ['empty group in a 201', opened({ config: EMPTY_GROUP })],
    ['reason with a newline', opened({ reason: 'a\nb' })],
    ['reason too long', opened({ reason: 'r'.repeat(MAX_REASON_CHARS + 1) })],
    ['found location without a token hash', { ...SAMPLES['session-location'], tokenHash: '' } as Message],
    ['a number for a boolean', { ...SAMPLES['session-append-ack'], ok: 1 } as unknown as Message],
    ['negative epoch', { ...SAMPLES['session-diagnosis'], epoch: -1 } as Message],
    ['fractional seq', { ...SAMPLES['session-append-ack'], seq: 1.5 } as Message],
    ['a number for ok in a quiesced', { ...SAMPLES['session-quiesced'], ok: 1 } as unknown as Message],
    ['bad sessionId in a quiesce', { ...SAMPLES['session-quiesce'], sessionId: 'a b' } as Message],
    ['fractional boot in a beat', { ...SAMPLES['session-beat'], boot: 1.5 } as Message],
    ['negative gen in a beat ack', { ...SAMPLES['session-beat-ack'], gen: -1 } as Message],
    ['boot over MAX_SAFE_INTEGER in a quiesce', { ...SAMPLES['session-quiesce'], boot: 2 ** 53 } as Message],
    ['non-consecutive entries', appendOf([delta(2, 1, 1), delta(4, 1, 2)])],
    ['first entry not after prevIndex', appendOf([delta(3, 1, 1)])],
    ['entry epoch above the message epoch', appendOf([delta(2, 4, 1)])],
    ['decreasing entry epochs', appendOf([delta(2, 2, 1), delta(3, 1, 2)])],
    ['entry index 0', { ...SAMPLES['session-vote'], tail: [delta(0, 1, 1)] } as Message],
    ['create at index 2', appendOf([{ index: 2, epoch: 1, body: { kind: 'create', info: INFO, config: PAIR } }])],
    ['create for another session', appendOf([{ index: 1, epoch: 1, body: { kind: 'create', info: { ...INFO, sessionId: 'other' }, config: PAIR } }], 0, 0)],
    ['unknown entry kind', appendOf([{ index: 2, epoch: 1, body: { kind: 'nope' } as unknown as LogEntry['body'] }])],
    ['too many entries', appendOf(manyDeltas(2, MAX_SESSION_ENTRIES + 1, 1))],
    ['NaN in an op', appendOf([delta(2, 1, 1, { x: NaN })])],
    ['Infinity op', appendOf([delta(2, 1, 1, Infinity)])],
    ['undefined in an op', appendOf([delta(2, 1, 1, { x: undefined } as unknown as JsonValue)])],
    ['a hole in an op array', appendOf([delta(2, 1, 1, [1, , 3] as JsonValue)])],
    ['a function in an op', appendOf([delta(2, 1, 1, { f: () => 1 } as unknown as JsonValue)])],
    ['a bigint op', appendOf([delta(2, 1, 1, 1n as unknown as JsonValue)])],
    ['a Date in an op', appendOf([delta(2, 1, 1, { at: new Date(0) } as unknown as JsonValue)])],
    ['an op nested too deep', appendOf([delta(2, 1, 1, nested(MAX_JSON_DEPTH + 1))])],
    ['a circular op', appendOf([delta(2, 1, 1, circular)])],
    ['an op over MAX_OP_BYTES', appendOf([delta(2, 1, 1, 'é'.repeat(MAX_OP_BYTES / 2))])],
    ['dedup not increasing', { ...SAMPLES['session-snapshot'], snapshot: { ...(SAMPLES['session-snapshot'] as Extract<Message, { type: 'session-snapshot' }>).snapshot, dedup: { lastClientSeq: 5, recent: [[2, 1], [2, 2]] } } } as Message],
    ['snapshot of another session', { ...SAMPLES['session-snapshot'], snapshot: { ...(SAMPLES['session-snapshot'] as Extract<Message, { type: 'session-snapshot' }>).snapshot, info: { ...INFO, sessionId: 'other' } } } as Message]
  ]
  for (const [name, message] of bad) assert.throws(() => encode(message), isRange, name)
})

test('encode() throws RangeError for an append over MAX_SESSION_FRAME_BYTES, and stays usable after', () => {
  // 4,096 ops of 8.2 KiB pass 32 MiB: the owner must batch by bytes, not only by count.
  const op = 'x'.repeat(8400)
  assert.throws(() => encode(appendOf(Array.from({ length: MAX_SESSION_ENTRIES }, (_, i) => delta(2 + i, 1, i, op)))), (e: unknown) => isRange(e) && String(e).includes(`${MAX_SESSION_FRAME_BYTES}-byte limit`))
  assert.throws(() => encode({ ...SAMPLES['session-snapshot'], snapshot: { ...(SAMPLES['session-snapshot'] as Extract<Message, { type: 'session-snapshot' }>).snapshot, state: 'x'.repeat(MAX_STATE_BYTES) } } as Message), isRange)
  assert.throws(() => encode(appendOf([delta(2, 1, 1, nested(MAX_JSON_DEPTH + 1))])), isRange)
  for (const type of SESSION_TYPES) assert.equal(ok(decode(encode(SAMPLES[type]))), SAMPLES[type])
})

// ---------------------------------------------------------------- properties

const SEED = 1729
const VALID_FRAMES = [...SESSION_TYPES.map((type) => encode(SAMPLES[type])), ...SESSION_TYPES.map((type) => raw(type))]

function neverThrows (bytes: Uint8Array): boolean {
  try {
    decode(bytes)
    return true
  } catch {
    return false
  }
}

test(`decode() never throws on random bodies behind a session header (fast-check seed ${SEED})`, () => {
  const arbitrary = fc.tuple(fc.integer({ min: 11, max: 25 }), fc.uint8Array({ maxLength: 600 }))
  fc.assert(fc.property(arbitrary, ([type, body]) => {
    const bytes = new Uint8Array(body.length + 2)
    bytes[0] = PROTOCOL_VERSION
    bytes[1] = type
    bytes.set(body, 2)
    return neverThrows(bytes)
  }), { seed: SEED, numRuns: 3000 })
})

test(`decode() never throws on single-byte mutations of valid session frames, and what it accepts re-encodes to the same message (fast-check seed ${SEED})`, () => {
  const arbitrary = fc.tuple(fc.nat({ max: VALID_FRAMES.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 255 }))
  fc.assert(fc.property(arbitrary, ([which, offset, value]) => {
    const bytes = VALID_FRAMES[which].slice()
    bytes[offset % bytes.length] = value
    let result: Decoded<Message>
    try { result = decode(bytes) } catch { return false }
    if (!result.ok) return true
    // Whatever decode accepts, encode must take back without a RangeError.
    const again = decode(encode(result.value))
    return again.ok && JSON.stringify(again.value) === JSON.stringify(result.value)
  }), { seed: SEED, numRuns: 5000 })
})

test(`any JSON value survives an append round trip (fast-check seed ${SEED})`, () => {
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 8 }), (op) => {
    const message = appendOf([delta(2, 1, 1, op as JsonValue)])
    const back = ok(decode(encode(message)))
    assert.equal(back, message)
    return true
  }), { seed: SEED, numRuns: 1000 })
})

test.run()
