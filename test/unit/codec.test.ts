import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import {
  decode, decodeAccusation, decodeRecord, encode, encodeAccusation, encodeRecord, maxFrameBytes
} from '../../protocol/codec.ts'
import { Reader, Writer } from '../../protocol/wire.ts'
import {
  MAX_ACCUSATION_BYTES, MAX_ADDR_CHARS, MAX_ADDRS, MAX_ENTRIES, MAX_GOSSIP_FRAME_BYTES,
  MAX_ID_CHARS, MAX_IP_CHARS, MAX_PROBE_FRAME_BYTES, MAX_RECORD_BYTES, MAX_REGION_CHARS,
  MAX_SERVICE_CAPACITY, MAX_SERVICE_NAME_CHARS, MAX_SERVICE_VERSION_CHARS, MAX_SERVICES,
  MAX_SESSION_CONTROL_FRAME_BYTES, MAX_SESSION_FRAME_BYTES, MAX_SESSION_GROUP_FRAME_BYTES,
  MAX_SESSIONS, MAX_SIG_BYTES, MAX_SMALL_FRAME_BYTES, MAX_TABLE_FRAME_BYTES, MAX_UPDATES,
  MAX_URL_CHARS
} from '../../protocol/limits.ts'
import { MESSAGE_TYPE, PROTOCOL_VERSION } from '../../protocol/messages.ts'
import type {
  Accusation, Decoded, Entry, MembershipMessage, Message, MessageTypeName, NodeRecord, Update
} from '../../protocol/messages.ts'

// ---------------------------------------------------------------- fixtures

// The membership types; session-codec.test.ts covers the session types (11–25).
type MembershipTypeName = MembershipMessage['type']
const ALL_TYPES = Object.keys(MESSAGE_TYPE) as MessageTypeName[]
const TYPES = ALL_TYPES.filter((type): type is MembershipTypeName => !type.startsWith('session-'))
const PEER_A = '12D3KooWGzh1B2fMc4n6aLYm4Vq3u7f6Zm5cP8nRzL1Xw9bTqK2e'
const PEER_B = '12D3KooWQj7aFZ4o9vX1bYk3Wn8r2TfHc6sLmP5dEuV4gNqR7xAs'
const SIG = new Uint8Array(64).fill(0xab)
const NO_LIMIT = Number.MAX_SAFE_INTEGER

function record (overrides: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id: PEER_A,
    addrs: ['/ip4/192.0.2.7/tcp/4001', '/ip6/2001:db8::7/tcp/4001'],
    ip: '192.0.2.7',
    http: 'http://192.0.2.7:8080',
    services: [{ name: 'ssh', version: '9.6p1', capacity: 20 }, { name: 'term.web', version: '1.2.0-rc.1', capacity: 5 }],
    load: { score: 0.25, sessions: 5, elu: 0.1234, cpu: 0.0007 },
    position: { lat: 48.8566, lon: 2.3522 },
    region: 'eu-west',
    zone: 'paris.1',
    incarnation: 3,
    seq: 42,
    status: 'alive',
    ...overrides
  }
}

const LEFT_RECORD = record({ id: PEER_B, position: null, status: 'left', services: [], addrs: [], ip: '', http: '', region: '', zone: '' })

function chars (n: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'): string {
  let s = ''
  for (let i = 0; i < n; i++) s += alphabet[i % alphabet.length]
  return s
}

// Every field at its longest and every number at its extreme.
const MAX_RECORD: NodeRecord = {
  id: chars(MAX_ID_CHARS, 'ABCxyz019._-'),
  addrs: Array.from({ length: MAX_ADDRS }, (_, i) => '/' + chars(MAX_ADDR_CHARS - 2) + (i % 10)),
  ip: 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255',
  http: 'https://' + chars(MAX_URL_CHARS - 8),
  services: Array.from({ length: MAX_SERVICES }, (_, i) => ({
    name: String(i).padStart(2, '0') + chars(MAX_SERVICE_NAME_CHARS - 2),
    version: chars(MAX_SERVICE_VERSION_CHARS, '0123456789.+_-Az'),
    capacity: MAX_SERVICE_CAPACITY
  })),
  load: { score: 1, sessions: MAX_SESSIONS, elu: 0, cpu: 0.9999 },
  position: { lat: -90, lon: 180 },
  region: chars(MAX_REGION_CHARS),
  zone: chars(MAX_REGION_CHARS, 'Z.-_'),
  incarnation: Number.MAX_SAFE_INTEGER,
  seq: Number.MAX_SAFE_INTEGER,
  status: 'left'
}

function recordUpdate (r: NodeRecord, sig = SIG): Update {
  return { kind: 'record', signed: { record: r, bytes: encodeRecord(r), sig } }
}

function accusationUpdate (a: Accusation): Update {
  return { kind: 'accusation', signed: { accusation: a, bytes: encodeAccusation(a), sig: SIG } }
}

function entry (r: NodeRecord, status: Entry['status'], statusIncarnation: number): Entry {
  return { signed: { record: r, bytes: encodeRecord(r), sig: SIG }, status, statusIncarnation }
}

const SUSPECT: Accusation = { kind: 'suspect', subject: PEER_B, incarnation: 7, accuser: PEER_A }
const DEAD: Accusation = { kind: 'dead', subject: PEER_A, incarnation: 0, accuser: PEER_B }

// One ordinary message of each type, small enough to truncate at every offset.
const SAMPLES: Record<MembershipTypeName, Message> = {
  'ping': { type: 'ping', seq: 1, updates: [recordUpdate(record()), accusationUpdate(SUSPECT)] },
  'ack': { type: 'ack', seq: 300, updates: [recordUpdate(LEFT_RECORD), accusationUpdate(DEAD)] },
  'ping-req': { type: 'ping-req', seq: 2 ** 40, target: PEER_B, updates: [accusationUpdate(SUSPECT)] },
  'nack': { type: 'nack', seq: 127 },
  'push-pull-request': {
    type: 'push-pull-request',
    join: true,
    digest: [
      { id: PEER_A, incarnation: 3, seq: 42, status: 'alive', statusIncarnation: 3 },
      { id: PEER_B, incarnation: 0, seq: 0, status: 'dead', statusIncarnation: 9 }
    ]
  },
  'push-pull-reply': {
    type: 'push-pull-reply',
    entries: [entry(record(), 'suspect', 4), entry(LEFT_RECORD, 'left', 0)],
    want: [PEER_A, 'x']
  },
  'push-pull-entries': { type: 'push-pull-entries', entries: [entry(record({ seq: 43 }), 'alive', 3)] },
  'gossip': { type: 'gossip', updates: [recordUpdate(record({ position: { lat: 0, lon: -180 } })), accusationUpdate(DEAD)] },
  'peek-request': { type: 'peek-request' },
  'peek-reply': {
    type: 'peek-reply',
    self: PEER_A,
    members: [
      { record: record(), status: 'alive', statusIncarnation: 3, lastHeardMs: 0 },
      { record: LEFT_RECORD, status: 'dead', statusIncarnation: 1, lastHeardMs: 86_400_000 }
    ]
  }
}

// The same types with fields at their limits.
const LARGE: Message[] = [
  { type: 'ping', seq: Number.MAX_SAFE_INTEGER, updates: [recordUpdate(MAX_RECORD, new Uint8Array(MAX_SIG_BYTES).fill(1)), accusationUpdate({ ...SUSPECT, subject: MAX_RECORD.id, incarnation: Number.MAX_SAFE_INTEGER })] },
  { type: 'ack', seq: 0, updates: Array.from({ length: MAX_UPDATES }, (_, i) => accusationUpdate({ ...DEAD, incarnation: i })) },
  { type: 'ping-req', seq: 0, target: MAX_RECORD.id, updates: [] },
  { type: 'nack', seq: Number.MAX_SAFE_INTEGER },
  { type: 'push-pull-request', join: false, digest: [] },
  { type: 'push-pull-reply', entries: [entry(MAX_RECORD, 'dead', Number.MAX_SAFE_INTEGER)], want: [] },
  { type: 'push-pull-entries', entries: Array.from({ length: 1000 }, (_, i) => entry(record({ id: 'n' + i }), 'alive', i)) },
  { type: 'gossip', updates: [recordUpdate(MAX_RECORD), recordUpdate(LEFT_RECORD)] },
  { type: 'peek-reply', self: 'a', members: [{ record: MAX_RECORD, status: 'suspect', statusIncarnation: 5, lastHeardMs: Number.MAX_SAFE_INTEGER }] }
]

// ---------------------------------------------------------------- raw builders
// These write the wire layout by hand, so a test can put any value in any field.

function frame (type: MessageTypeName | number, body: (w: Writer) => void = () => {}, version = PROTOCOL_VERSION): Uint8Array {
  const w = new Writer()
  w.u8(version)
  w.u8(typeof type === 'number' ? type : MESSAGE_TYPE[type])
  body(w)
  return w.finish()
}

function raw (w: Writer, bytes: ArrayLike<number>): void {
  for (let i = 0; i < bytes.length; i++) w.u8(bytes[i])
}

function str (w: Writer, s: string | Uint8Array): void {
  if (typeof s === 'string') w.string(s, NO_LIMIT)
  else w.bytes(s, NO_LIMIT)
}

// 2^53 as a varint: one more than MAX_SAFE_INTEGER.
const VARINT_2_POW_53 = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]

type RawRecord = {
  id: string | Uint8Array
  addrs: string[]
  ip: string
  http: string
  services: Array<{ name: string; version: string; capacity: number }>
  // Shares in wire units (1/10000).
  score: number; sessions: number; elu: number; cpu: number
  presence: number; lat: number; lon: number
  region: string
  zone: string
  incarnation: number | number[]
  seq: number
  status: number
  trailing: number[]
}

const GOOD_RAW: RawRecord = {
  id: PEER_A,
  addrs: ['/ip4/192.0.2.7/tcp/4001', '/ip6/2001:db8::7/tcp/4001'],
  ip: '192.0.2.7',
  http: 'http://192.0.2.7:8080',
  services: [{ name: 'ssh', version: '9.6p1', capacity: 20 }, { name: 'term.web', version: '1.2.0-rc.1', capacity: 5 }],
  score: 2500, sessions: 5, elu: 1234, cpu: 7,
  presence: 1, lat: 48.8566, lon: 2.3522,
  region: 'eu-west',
  zone: 'paris.1',
  incarnation: 3,
  seq: 42,
  status: 0,
  trailing: []
}

function rawRecord (overrides: Partial<RawRecord> = {}): Uint8Array {
  const r = { ...GOOD_RAW, ...overrides }
  const w = new Writer()
  str(w, r.id)
  w.varint(r.addrs.length)
  for (const a of r.addrs) str(w, a)
  str(w, r.ip)
  str(w, r.http)
  w.varint(r.services.length)
  for (const s of r.services) { str(w, s.name); str(w, s.version); w.varint(s.capacity) }
  w.u16(r.score); w.varint(r.sessions); w.u16(r.elu); w.u16(r.cpu)
  w.u8(r.presence)
  if (r.presence === 1) { w.f64(r.lat); w.f64(r.lon) }
  str(w, r.region)
  str(w, r.zone)
  if (typeof r.incarnation === 'number') w.varint(r.incarnation)
  else raw(w, r.incarnation)
  w.varint(r.seq)
  w.u8(r.status)
  raw(w, r.trailing)
  return w.finish()
}

function rawAccusation (kind: number, subject: string, incarnation: number, accuser: string): Uint8Array {
  const w = new Writer()
  w.u8(kind); str(w, subject); w.varint(incarnation); str(w, accuser)
  return w.finish()
}

// A gossip frame carrying one record update with these raw bytes and signature.
function gossipWithRecordBytes (bytes: Uint8Array, sig: Uint8Array = SIG): Uint8Array {
  return frame('gossip', (w) => { w.varint(1); w.u8(1); w.bytes(bytes, NO_LIMIT); w.bytes(sig, NO_LIMIT) })
}

function refused<T> (result: Decoded<T>, fragment: string): void {
  if (result.ok) assert.unreachable(`expected a refusal mentioning "${fragment}", got ok`)
  else assert.ok(result.reason.includes(fragment), `reason "${result.reason}" should mention "${fragment}"`)
}

// A record rule holds both for decodeRecord and inside a message.
function refusesRecord (overrides: Partial<RawRecord>, fragment: string): void {
  const bytes = rawRecord(overrides)
  refused(decodeRecord(bytes), fragment)
  refused(decode(gossipWithRecordBytes(bytes)), `updates[0]: `)
  refused(decode(gossipWithRecordBytes(bytes)), fragment)
}

function ok<T> (result: Decoded<T>): T {
  if (!result.ok) throw new Error(`expected ok, got refusal: ${result.reason}`)
  return result.value
}

// ---------------------------------------------------------------- wire primitives

test('Writer and Reader round-trip varints at every length boundary', () => {
  const values = [0, 1, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 49 - 1, 2 ** 49, Number.MAX_SAFE_INTEGER]
  const w = new Writer(16)
  for (const v of values) w.varint(v)
  const r = new Reader(w.finish())
  for (const v of values) assert.is(r.varint('v'), v)
  assert.is(r.remaining, 0)
})

test('Writer.varint() refuses negative, fractional and unsafe numbers', () => {
  const w = new Writer()
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53]) assert.throws(() => w.varint(bad), (e: unknown) => e instanceof RangeError)
})

test('Reader refuses varints above MAX_SAFE_INTEGER, over 8 bytes, or not minimal', () => {
  assert.throws(() => new Reader(Uint8Array.from(VARINT_2_POW_53)).varint('v'), /exceeds MAX_SAFE_INTEGER/)
  assert.throws(() => new Reader(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])).varint('v'), /exceeds MAX_SAFE_INTEGER/)
  assert.throws(() => new Reader(Uint8Array.from([0x80, 0x00])).varint('v'), /not minimally encoded/)
  assert.is(new Reader(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f])).varint('v'), Number.MAX_SAFE_INTEGER)
})

test('Writer.string() round-trips ASCII and multi-byte text of every prefix size', () => {
  const texts = ['', 'a', chars(42), chars(43), chars(127), chars(128), chars(5000), 'héllo wörld ✓', '😀'.repeat(50), 'é'.repeat(70)]
  const w = new Writer(16)
  for (const t of texts) w.string(t, NO_LIMIT)
  const r = new Reader(w.finish())
  for (const t of texts) assert.is(r.string(NO_LIMIT, 's'), t)
  assert.is(r.remaining, 0)
})

test('Writer grows geometrically and keeps what it wrote', () => {
  const w = new Writer(16)
  for (let i = 0; i < 10_000; i++) w.u16(i)
  w.f64(-0.5)
  const r = new Reader(w.finish())
  for (let i = 0; i < 10_000; i++) assert.is(r.u16('n'), i)
  assert.is(r.f64('f'), -0.5)
})

test('Reader refuses a string or bytes field longer than its maximum', () => {
  const w = new Writer()
  w.string('abcdef', NO_LIMIT)
  assert.throws(() => new Reader(w.finish()).string(5, 'name'), /name of 6 bytes exceeds the 5-byte limit/)
})

test('Reader keeps a leading byte-order mark instead of stripping it', () => {
  const w = new Writer()
  w.bytes(Uint8Array.from([0xef, 0xbb, 0xbf, 0x61]), NO_LIMIT)
  assert.is(new Reader(w.finish()).string(10, 's'), '\ufeffa')
})

// ---------------------------------------------------------------- round trips

for (const type of TYPES) {
  test(`decode() returns what encode() wrote for ${type}`, () => {
    const message = SAMPLES[type]
    const frame = encode(message)
    assert.is(frame[0], PROTOCOL_VERSION)
    assert.is(frame[1], MESSAGE_TYPE[type])
    assert.equal(ok(decode(frame)), message)
  })
}

for (const message of LARGE) {
  test(`decode() round-trips a ${message.type} with fields at their limits`, () => {
    assert.equal(ok(decode(encode(message))), message)
  })
}

test('encodeRecord() and decodeRecord() round-trip a record with every field at its limit', () => {
  const bytes = encodeRecord(MAX_RECORD)
  assert.ok(bytes.length <= MAX_RECORD_BYTES, `max record is ${bytes.length} bytes`)
  assert.equal(ok(decodeRecord(bytes)), MAX_RECORD)
})

test('encodeRecord() writes the documented layout byte for byte', () => {
  assert.equal(encodeRecord(record()), rawRecord())
})

test('encodeRecord() is canonical: a decoded record re-encodes to the same bytes', () => {
  for (const r of [record(), LEFT_RECORD, MAX_RECORD]) {
    const bytes = encodeRecord(r)
    assert.equal(encodeRecord(ok(decodeRecord(bytes))), bytes)
  }
})

test('load shares survive the 1/10000 quantisation exactly for every wire value', () => {
  for (let n = 0; n <= 10_000; n++) {
    const bytes = rawRecord({ cpu: n })
    assert.equal(encodeRecord(ok(decodeRecord(bytes))), bytes)
  }
})

test('encodeAccusation() and decodeAccusation() round-trip both kinds', () => {
  for (const a of [SUSPECT, DEAD]) assert.equal(ok(decodeAccusation(encodeAccusation(a))), a)
})

test('decode() keeps owned copies of signed bytes and signatures, not views of the frame', () => {
  const frame = encode(SAMPLES.ping)
  const message = ok(decode(Buffer.from(frame)))
  assert.is(message.type, 'ping')
  if (message.type !== 'ping') return
  for (const update of message.updates) {
    assert.is(update.signed.bytes.buffer.byteLength, update.signed.bytes.length)
    assert.is(update.signed.sig.buffer.byteLength, update.signed.sig.length)
  }
})

test('maxFrameBytes() gives each message type its limit', () => {
  const expected: Record<MessageTypeName, number> = {
    'ping': MAX_PROBE_FRAME_BYTES,
    'ack': MAX_PROBE_FRAME_BYTES,
    'ping-req': MAX_PROBE_FRAME_BYTES,
    'nack': MAX_SMALL_FRAME_BYTES,
    'push-pull-request': MAX_TABLE_FRAME_BYTES,
    'push-pull-reply': MAX_TABLE_FRAME_BYTES,
    'push-pull-entries': MAX_TABLE_FRAME_BYTES,
    'gossip': MAX_GOSSIP_FRAME_BYTES,
    'peek-request': MAX_SMALL_FRAME_BYTES,
    'peek-reply': MAX_TABLE_FRAME_BYTES,
    'session-append': MAX_SESSION_FRAME_BYTES,
    'session-append-ack': MAX_SESSION_CONTROL_FRAME_BYTES,
    'session-vote-request': MAX_SESSION_CONTROL_FRAME_BYTES,
    'session-vote': MAX_SESSION_FRAME_BYTES,
    'session-snapshot': MAX_SESSION_FRAME_BYTES,
    'session-open': MAX_SESSION_GROUP_FRAME_BYTES,
    'session-opened': MAX_SESSION_GROUP_FRAME_BYTES,
    'session-locate': MAX_SESSION_CONTROL_FRAME_BYTES,
    'session-location': MAX_SESSION_GROUP_FRAME_BYTES,
    'session-diagnose': MAX_SESSION_CONTROL_FRAME_BYTES,
    'session-diagnosis': MAX_SESSION_CONTROL_FRAME_BYTES,
    'session-quiesce': MAX_SESSION_CONTROL_FRAME_BYTES,
    'session-quiesced': MAX_SESSION_CONTROL_FRAME_BYTES,
    'session-beat': MAX_SESSION_CONTROL_FRAME_BYTES,
    'session-beat-ack': MAX_SESSION_CONTROL_FRAME_BYTES
  }
  for (const type of ALL_TYPES) assert.is(maxFrameBytes(type), expected[type], type)
})

// ---------------------------------------------------------------- frame header

test('decode() returns a refusal, not an exception, even when handed something that is not bytes', () => {
  for (const junk of [undefined, null, 42, 'frame', {}]) {
    const result = decode(junk as unknown as Uint8Array)
    assert.is(result.ok, false)
  }
})

test('decode() refuses an empty frame and a 1-byte frame', () => {
  refused(decode(new Uint8Array(0)), 'frame of 0 bytes is too short')
  refused(decode(Uint8Array.of(PROTOCOL_VERSION)), 'frame of 1 byte is too short')
})

test('decode() refuses a frame of another protocol version', () => {
  const frame = encode(SAMPLES.nack)
  frame[0] = PROTOCOL_VERSION + 1
  refused(decode(frame), `unsupported protocol version ${PROTOCOL_VERSION + 1}`)
  refused(decode(Uint8Array.of(0, 4, 0)), 'unsupported protocol version 0')
})

test('decode() refuses unknown message types', () => {
  refused(decode(frame(99)), 'unknown message type 99')
  refused(decode(frame(0)), 'unknown message type 0')
  refused(decode(frame(26)), 'unknown message type 26')
})

for (const type of TYPES) {
  test(`decode() refuses a ${type} frame one byte over its limit, before parsing`, () => {
    const limit = maxFrameBytes(type)
    // A body of zeros would parse (or fail for trailing bytes); the reason shows the
    // size check came first.
    const big = new Uint8Array(limit + 1)
    big[0] = PROTOCOL_VERSION
    big[1] = MESSAGE_TYPE[type]
    refused(decode(big), `frame of ${limit + 1} bytes exceeds the ${limit}-byte limit for ${type}`)
    // At exactly the limit the size check passes and parsing decides.
    const atLimit = decode(big.subarray(0, limit))
    assert.ok(!atLimit.ok && !atLimit.reason.includes('-byte limit for'), 'a frame at the limit is parsed')
  })
}

for (const type of TYPES) {
  test(`decode() refuses every truncation of a valid ${type} frame without throwing`, () => {
    const frame = encode(SAMPLES[type])
    for (let length = 0; length < frame.length; length++) {
      const result = decode(frame.subarray(0, length))
      assert.ok(!result.ok, `prefix of ${length} of ${frame.length} bytes was accepted`)
    }
  })
}

for (const type of TYPES) {
  test(`decode() refuses a ${type} frame with one trailing byte`, () => {
    const frame = encode(SAMPLES[type])
    const longer = new Uint8Array(frame.length + 1)
    longer.set(frame)
    refused(decode(longer), `1 trailing byte after ${type}`)
  })
}

// ---------------------------------------------------------------- message fields

test('decode() refuses a varint over MAX_SAFE_INTEGER in a nack seq', () => {
  refused(decode(frame('nack', (w) => raw(w, VARINT_2_POW_53))), 'seq exceeds MAX_SAFE_INTEGER')
  refused(decode(frame('nack', (w) => raw(w, [0x81, 0x00]))), 'seq is not minimally encoded')
})

test('decode() refuses a ping with more than MAX_UPDATES updates, from the count alone', () => {
  refused(decode(frame('ping', (w) => { w.varint(1); w.varint(MAX_UPDATES + 1) })), `updates count ${MAX_UPDATES + 1} exceeds the limit of ${MAX_UPDATES}`)
  refused(decode(frame('gossip', (w) => w.varint(MAX_UPDATES + 1))), 'updates count')
})

test('decode() refuses an update of unknown kind, with its index', () => {
  const bytes = encodeAccusation(SUSPECT)
  refused(decode(frame('ack', (w) => { w.varint(1); w.varint(1); w.u8(3); w.bytes(bytes, NO_LIMIT); w.bytes(SIG, NO_LIMIT) })), 'updates[0]: update kind 3 is unknown')
})

test('decode() refuses a signature of length 0 or over MAX_SIG_BYTES', () => {
  refused(decode(gossipWithRecordBytes(rawRecord(), new Uint8Array(0))), 'updates[0]: sig is empty')
  refused(decode(gossipWithRecordBytes(rawRecord(), new Uint8Array(MAX_SIG_BYTES + 1))), `sig of ${MAX_SIG_BYTES + 1} bytes exceeds the ${MAX_SIG_BYTES}-byte limit`)
})

test('decode() refuses record bytes over MAX_RECORD_BYTES inside an update', () => {
  refused(decode(gossipWithRecordBytes(new Uint8Array(MAX_RECORD_BYTES + 1))), `exceeds the ${MAX_RECORD_BYTES}-byte limit`)
})

test('decode() refuses signed record bytes with a trailing byte', () => {
  refused(decode(gossipWithRecordBytes(rawRecord({ trailing: [0] }))), 'updates[0]: 1 trailing byte after record')
})

test('decode() refuses a malformed accusation inside a ping-req', () => {
  const update = (bytes: Uint8Array) => frame('ping-req', (w) => { w.varint(1); str(w, PEER_B); w.varint(1); w.u8(2); w.bytes(bytes, NO_LIMIT); w.bytes(SIG, NO_LIMIT) })
  refused(decode(update(rawAccusation(3, PEER_A, 1, PEER_B))), 'updates[0]: accusation.kind 3 is unknown')
  refused(decode(update(rawAccusation(1, 'a b', 1, PEER_B))), 'accusation.subject has characters outside')
  refused(decode(update(rawAccusation(2, PEER_A, 1, ''))), 'accusation.accuser is empty')
  refused(decode(update(new Uint8Array(MAX_ACCUSATION_BYTES + 1))), `exceeds the ${MAX_ACCUSATION_BYTES}-byte limit`)
})

test('decode() refuses a ping-req whose target is empty, too long, has bad characters or bad UTF-8', () => {
  const pingReq = (target: string | Uint8Array) => frame('ping-req', (w) => { w.varint(1); str(w, target); w.varint(0) })
  refused(decode(pingReq('')), 'target is empty')
  refused(decode(pingReq('a'.repeat(MAX_ID_CHARS + 1))), `target of ${MAX_ID_CHARS + 1} bytes exceeds the ${MAX_ID_CHARS}-byte limit`)
  refused(decode(pingReq('peer/1')), 'target has characters outside [A-Za-z0-9._-]')
  refused(decode(pingReq('péer')), 'target has characters outside')
  refused(decode(pingReq(Uint8Array.of(0x61, 0xff, 0x62))), 'target is not valid UTF-8')
  assert.is(ok(decode(pingReq('a'.repeat(MAX_ID_CHARS)))).type, 'ping-req')
})

test('decode() refuses a push-pull-request whose join byte is neither 0 nor 1', () => {
  refused(decode(frame('push-pull-request', (w) => { w.u8(2); w.varint(0) })), 'join byte 2 is neither 0 nor 1')
})

test('decode() refuses a push-pull-request digest with a bad status, bad id or too many lines', () => {
  const digest = (id: string, status: number) => frame('push-pull-request', (w) => { w.u8(0); w.varint(1); str(w, id); w.varint(1); w.varint(1); w.u8(status); w.varint(0) })
  refused(decode(digest(PEER_A, 4)), 'digest[0]: status 4 is unknown')
  refused(decode(digest('bad id', 0)), 'digest[0]: id has characters outside')
  refused(decode(frame('push-pull-request', (w) => { w.u8(0); w.varint(MAX_ENTRIES + 1) })), `digest count ${MAX_ENTRIES + 1} exceeds the limit of ${MAX_ENTRIES}`)
})

test('decode() refuses a push-pull-reply with a bad entry status, a bad want id or too many wants', () => {
  const reply = (status: number, want: string) => frame('push-pull-reply', (w) => {
    w.varint(1); w.bytes(rawRecord(), NO_LIMIT); w.bytes(SIG, NO_LIMIT); w.u8(status); w.varint(0)
    w.varint(1); str(w, want)
  })
  assert.is(ok(decode(reply(3, PEER_B))).type, 'push-pull-reply')
  refused(decode(reply(4, PEER_B)), 'entries[0]: status 4 is unknown')
  refused(decode(reply(0, 'x'.repeat(MAX_ID_CHARS + 1))), 'want[0]: ')
  refused(decode(frame('push-pull-reply', (w) => { w.varint(0); w.varint(MAX_ENTRIES + 1) })), 'want count')
})

test('decode() refuses push-pull-entries with an empty signature, a bad record or too many entries', () => {
  const entries = (bytes: Uint8Array, sig: Uint8Array) => frame('push-pull-entries', (w) => { w.varint(1); w.bytes(bytes, NO_LIMIT); w.bytes(sig, NO_LIMIT); w.u8(0); w.varint(0) })
  refused(decode(entries(rawRecord(), new Uint8Array(0))), 'entries[0]: sig is empty')
  refused(decode(entries(rawRecord({ lat: 91 }), SIG)), 'entries[0]: record.position.lat out of range')
  refused(decode(frame('push-pull-entries', (w) => w.varint(MAX_ENTRIES + 1))), 'entries count')
})

test('decode() refuses a peek-request with a body', () => {
  refused(decode(frame('peek-request', (w) => w.u8(0))), '1 trailing byte after peek-request')
})

test('decode() refuses a peek-reply with a bad self id, a bad member record or a bad member status', () => {
  const reply = (self: string, bytes: Uint8Array, status: number) => frame('peek-reply', (w) => {
    str(w, self); w.varint(1); w.bytes(bytes, NO_LIMIT); w.u8(status); w.varint(0); w.varint(10)
  })
  assert.is(ok(decode(reply(PEER_A, rawRecord(), 2))).type, 'peek-reply')
  refused(decode(reply('', rawRecord(), 0)), 'self is empty')
  refused(decode(reply(PEER_A, rawRecord({ lon: -181 }), 0)), 'members[0]: record.position.lon out of range')
  refused(decode(reply(PEER_A, rawRecord(), 9)), 'members[0]: status 9 is unknown')
  refused(decode(frame('peek-reply', (w) => { str(w, PEER_A); w.varint(MAX_ENTRIES + 1) })), 'members count')
})

// ---------------------------------------------------------------- record fields

test('decodeRecord() accepts the hand-built reference record', () => {
  assert.equal(ok(decodeRecord(rawRecord())), record())
})

test('decodeRecord() refuses a bad, empty, too long or non-UTF-8 id', () => {
  refusesRecord({ id: 'has space' }, 'record.id has characters outside [A-Za-z0-9._-]')
  refusesRecord({ id: '' }, 'record.id is empty')
  refusesRecord({ id: 'a'.repeat(MAX_ID_CHARS + 1) }, `record.id of ${MAX_ID_CHARS + 1} bytes exceeds`)
  refusesRecord({ id: Uint8Array.of(0xc3, 0x28) }, 'record.id is not valid UTF-8')
  refusesRecord({ id: Uint8Array.of(0xef, 0xbb, 0xbf, 0x61) }, 'record.id has characters outside')
})

test('decodeRecord() refuses bad addresses', () => {
  refusesRecord({ addrs: Array(MAX_ADDRS + 1).fill('/ip4/1.2.3.4') }, `record.addrs count ${MAX_ADDRS + 1} exceeds the limit of ${MAX_ADDRS}`)
  refusesRecord({ addrs: ['/ok', ''] }, 'record.addrs[1] is empty')
  refusesRecord({ addrs: ['ip4/1.2.3.4'] }, "record.addrs[0] does not start with '/'")
  refusesRecord({ addrs: ['/ip4/1.2.3.4 /tcp/1'] }, 'record.addrs[0] is not printable ASCII')
  refusesRecord({ addrs: ['/ip4/é'] }, 'record.addrs[0] is not printable ASCII')
  refusesRecord({ addrs: ['/' + 'a'.repeat(MAX_ADDR_CHARS)] }, `record.addrs of ${MAX_ADDR_CHARS + 1} bytes exceeds`)
})

test('decodeRecord() refuses an ip that is not an IPv4 or IPv6 address', () => {
  refusesRecord({ ip: 'localhost' }, 'record.ip is not an IPv4 or IPv6 address')
  refusesRecord({ ip: '1.2.3.4 ' }, 'record.ip is not')
  refusesRecord({ ip: '1'.repeat(MAX_IP_CHARS + 1) }, `record.ip of ${MAX_IP_CHARS + 1} bytes exceeds`)
  assert.is(ok(decodeRecord(rawRecord({ ip: '2001:db8::1' }))).ip, '2001:db8::1')
})

test('decodeRecord() refuses an http field that is not a printable http(s) URL', () => {
  refusesRecord({ http: 'ftp://host' }, 'record.http is not an http(s) URL')
  refusesRecord({ http: 'http://host/a b' }, 'record.http is not printable ASCII')
  refusesRecord({ http: 'https://' + 'a'.repeat(MAX_URL_CHARS) }, `exceeds the ${MAX_URL_CHARS}-byte limit`)
})

test('decodeRecord() refuses bad services', () => {
  const svc = (name: string, version = '1.0', capacity = 1) => ({ name, version, capacity })
  refusesRecord({ services: Array.from({ length: MAX_SERVICES + 1 }, (_, i) => svc('s' + i)) }, `record.services count ${MAX_SERVICES + 1}`)
  refusesRecord({ services: [svc('Web')] }, 'record.services[0].name is not a valid service name')
  refusesRecord({ services: [svc('-web')] }, 'record.services[0].name is not a valid service name')
  refusesRecord({ services: [svc('')] }, 'record.services[0].name is not a valid service name')
  refusesRecord({ services: [svc('a'.repeat(MAX_SERVICE_NAME_CHARS + 1))] }, 'record.services.name of')
  refusesRecord({ services: [svc('web', 'v 1')] }, 'record.services[0].version is not a valid version')
  refusesRecord({ services: [svc('web', '')] }, 'record.services[0].version is not a valid version')
  refusesRecord({ services: [svc('web', '1'.repeat(MAX_SERVICE_VERSION_CHARS + 1))] }, 'record.services.version of')
  refusesRecord({ services: [svc('web', '1', MAX_SERVICE_CAPACITY + 1)] }, 'record.services[0].capacity out of range')
})

test('decodeRecord() refuses duplicate service names', () => {
  refusesRecord({ services: [{ name: 'ssh', version: '1', capacity: 1 }, { name: 'ssh', version: '2', capacity: 2 }] }, 'record.services[1].name ssh is a duplicate')
})

test('decodeRecord() refuses load shares above 1 (u16 10001) and too many sessions', () => {
  refusesRecord({ score: 10_001 }, 'record.load.score out of range')
  refusesRecord({ elu: 10_001 }, 'record.load.elu out of range')
  refusesRecord({ cpu: 10_001 }, 'record.load.cpu out of range')
  refusesRecord({ cpu: 0xffff }, 'record.load.cpu out of range')
  refusesRecord({ sessions: MAX_SESSIONS + 1 }, 'record.load.sessions out of range')
})

test('decodeRecord() refuses positions off the globe or not finite', () => {
  refusesRecord({ lat: 91 }, 'record.position.lat out of range')
  refusesRecord({ lat: -90.0001 }, 'record.position.lat out of range')
  refusesRecord({ lon: -181 }, 'record.position.lon out of range')
  refusesRecord({ lon: 180.5 }, 'record.position.lon out of range')
  refusesRecord({ lat: NaN }, 'record.position.lat out of range')
  refusesRecord({ lon: NaN }, 'record.position.lon out of range')
  refusesRecord({ lon: Infinity }, 'record.position.lon out of range')
  assert.equal(ok(decodeRecord(rawRecord({ lat: 90, lon: -180 }))).position, { lat: 90, lon: -180 })
})

test('decodeRecord() refuses a position presence byte other than 0 or 1', () => {
  refusesRecord({ presence: 2 }, 'record.position presence byte 2 is neither 0 nor 1')
  assert.is(ok(decodeRecord(rawRecord({ presence: 0 }))).position, null)
})

test('decodeRecord() refuses a bad region or zone', () => {
  refusesRecord({ region: 'eu west' }, 'record.region has characters outside')
  refusesRecord({ zone: 'z'.repeat(MAX_REGION_CHARS + 1) }, `record.zone of ${MAX_REGION_CHARS + 1} bytes exceeds`)
})

test('decodeRecord() refuses an incarnation over MAX_SAFE_INTEGER', () => {
  refusesRecord({ incarnation: VARINT_2_POW_53 }, 'record.incarnation exceeds MAX_SAFE_INTEGER')
})

test('decodeRecord() refuses an unknown status byte', () => {
  refusesRecord({ status: 2 }, 'record.status 2 is unknown')
  assert.is(ok(decodeRecord(rawRecord({ status: 1 }))).status, 'left')
})

test('decodeRecord() refuses trailing bytes and records over MAX_RECORD_BYTES', () => {
  refused(decodeRecord(rawRecord({ trailing: [1] })), '1 trailing byte after record')
  refused(decodeRecord(new Uint8Array(MAX_RECORD_BYTES + 1)), `record of ${MAX_RECORD_BYTES + 1} bytes exceeds the ${MAX_RECORD_BYTES}-byte limit`)
})

test('decodeAccusation() refuses unknown kinds, bad ids, trailing bytes and oversize input', () => {
  refused(decodeAccusation(rawAccusation(0, PEER_A, 1, PEER_B)), 'accusation.kind 0 is unknown')
  refused(decodeAccusation(rawAccusation(1, PEER_A, 1, 'no!')), 'accusation.accuser has characters outside')
  const withTrailing = new Uint8Array([...encodeAccusation(SUSPECT), 0])
  refused(decodeAccusation(withTrailing), '1 trailing byte after accusation')
  refused(decodeAccusation(new Uint8Array(MAX_ACCUSATION_BYTES + 1)), `accusation of ${MAX_ACCUSATION_BYTES + 1} bytes exceeds`)
})

// ---------------------------------------------------------------- encoder guards

test('encodeRecord() throws RangeError rather than sign a record peers would refuse', () => {
  const refusedRecords: NodeRecord[] = [
    record({ load: { score: 1.5, sessions: 0, elu: 0, cpu: 0 } }),
    record({ load: { score: NaN, sessions: 0, elu: 0, cpu: 0 } }),
    record({ position: { lat: 91, lon: 0 } }),
    record({ id: 'bad id' }),
    record({ services: [{ name: 'a', version: '1', capacity: 1 }, { name: 'a', version: '1', capacity: 1 }] }),
    record({ incarnation: -1 })
  ]
  for (const r of refusedRecords) assert.throws(() => encodeRecord(r), (e: unknown) => e instanceof RangeError)
})

test('encode() throws RangeError for a frame over its limit, too many updates or an empty signature', () => {
  const isRange = (e: unknown) => e instanceof RangeError
  const big = recordUpdate(MAX_RECORD)
  assert.throws(() => encode({ type: 'ping', seq: 1, updates: Array(30).fill(big) }), isRange)
  assert.throws(() => encode({ type: 'gossip', updates: Array(MAX_UPDATES + 1).fill(accusationUpdate(SUSPECT)) }), isRange)
  assert.throws(() => encode({ type: 'gossip', updates: [recordUpdate(record(), new Uint8Array(0))] }), isRange)
  assert.throws(() => encode({ type: 'ping-req', seq: 1, target: '', updates: [] }), isRange)
})

// ---------------------------------------------------------------- properties

const SEED = 42
const VALID_FRAMES = TYPES.map((type) => encode(SAMPLES[type]))

function neverThrows (bytes: Uint8Array): boolean {
  try {
    decode(bytes); decodeRecord(bytes); decodeAccusation(bytes)
    return true
  } catch {
    return false
  }
}

test(`decode() never throws on random bytes (fast-check seed ${SEED})`, () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), neverThrows), { seed: SEED, numRuns: 2000 })
})

test(`decode() never throws on random bodies behind a valid header (fast-check seed ${SEED})`, () => {
  const arbitrary = fc.tuple(fc.integer({ min: 0, max: 11 }), fc.uint8Array({ maxLength: 600 }))
  fc.assert(fc.property(arbitrary, ([type, body]) => {
    const bytes = new Uint8Array(body.length + 2)
    bytes[0] = PROTOCOL_VERSION
    bytes[1] = type
    bytes.set(body, 2)
    return neverThrows(bytes)
  }), { seed: SEED, numRuns: 2000 })
})

test(`decode() never throws on single-byte mutations of valid frames, and what it accepts re-encodes identically (fast-check seed ${SEED})`, () => {
  const arbitrary = fc.tuple(fc.nat({ max: VALID_FRAMES.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 255 }))
  fc.assert(fc.property(arbitrary, ([which, offset, value]) => {
    const frame = VALID_FRAMES[which].slice()
    if (frame.length === 0) return true
    frame[offset % frame.length] = value
    let result: Decoded<Message>
    try { result = decode(frame) } catch { return false }
    if (!result.ok) return true
    // Canonical encoding: an accepted frame has exactly one byte form.
    const again = encode(result.value)
    return again.length === frame.length && again.every((b, i) => b === frame[i])
  }), { seed: SEED, numRuns: 2000 })
})

test.run()
