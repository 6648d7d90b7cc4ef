// Frames on the wire: byte 0 is PROTOCOL_VERSION, byte 1 the MESSAGE_TYPE number,
// then the body. decode() checks the header and the per-type frame limit before it
// parses anything, then every field, and refuses trailing bytes. It never throws:
// a malformed frame is `{ ok: false, reason }`. encode() throws RangeError only on
// input our own code should never produce.
//
// Inside bodies, an update is: kind u8 (1 record, 2 accusation), the signed bytes
// (length-prefixed) and the signature (length-prefixed, 1..MAX_SIG_BYTES). The
// session bodies (types 11–21) live in session-codec.ts.

import {
  copyBytes, readAll, Reader, readFlag, readList, refusal, varintBytes, WireError, Writer, writeList
} from './wire.ts'
import { encodeRecord, readAccusation, readId, readRecord, writeId } from './record.ts'
import { readSessionBody, writeSessionBody } from './session-codec.ts'
import {
  MAX_ACCUSATION_BYTES, MAX_ENTRIES, MAX_GOSSIP_FRAME_BYTES, MAX_PROBE_FRAME_BYTES,
  MAX_RECORD_BYTES, MAX_SESSION_CONTROL_FRAME_BYTES, MAX_SESSION_FRAME_BYTES,
  MAX_SESSION_GROUP_FRAME_BYTES, MAX_SIG_BYTES, MAX_SMALL_FRAME_BYTES, MAX_TABLE_FRAME_BYTES,
  MAX_UPDATES
} from './limits.ts'
import { MEMBER_STATUS, MESSAGE_TYPE, PROTOCOL_VERSION } from './messages.ts'
import type {
  Decoded, DigestEntry, Entry, MemberStatus, Message, MessageTypeName, PeekMember,
  SignedRecord, Update
} from './messages.ts'

export { decodeAccusation, decodeRecord, encodeAccusation, encodeRecord } from './record.ts'

const FRAME_LIMIT_BYTES: Record<MessageTypeName, number> = {
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

const TYPE_BY_NUMBER = new Map<number, MessageTypeName>(
  (Object.keys(MESSAGE_TYPE) as MessageTypeName[]).map((name) => [MESSAGE_TYPE[name], name])
)

// Wire codes of update kinds: part of the protocol, only append.
const UPDATE_RECORD = 1
const UPDATE_ACCUSATION = 2
const HEADER_BYTES = 2

// Reused for every frame; records inside peek replies use record.ts's own writer.
const frameWriter = new Writer(4096)

export function maxFrameBytes (typeName: MessageTypeName): number {
  return FRAME_LIMIT_BYTES[typeName]
}

export function encode (message: Message): Uint8Array {
  const w = frameWriter
  w.reset()
  w.u8(PROTOCOL_VERSION)
  w.u8(MESSAGE_TYPE[message.type])
  writeBody(w, message)
  const limit = FRAME_LIMIT_BYTES[message.type]
  if (w.length > limit) throw new RangeError(frameTooLarge(w.length, limit, message.type))
  return w.finish()
}

// The length of encode(message), computed without writing the frame, for hosts
// that only count bytes (the simulator, whose receivers share the sender's
// objects). Counts and the frame limit are checked as encode() checks them; the
// other field checks are encode()'s alone, so this is exact for any message
// encode() accepts. Session messages are rare next to probes and gossip: they
// are encoded.
export function frameBytes (message: Message): number {
  let body: number
  switch (message.type) {
    case 'ping':
    case 'ack':
      body = varintBytes(message.seq) + updatesBytes(message.updates)
      break
    case 'ping-req':
      body = varintBytes(message.seq) + idBytes(message.target) + updatesBytes(message.updates)
      break
    case 'nack':
      body = varintBytes(message.seq)
      break
    case 'push-pull-request':
      body = 1 + countBytes(message.digest.length, MAX_ENTRIES, 'digest')
      for (const d of message.digest) {
        body += idBytes(d.id) + varintBytes(d.incarnation) + varintBytes(d.seq) + 1 + varintBytes(d.statusIncarnation)
      }
      break
    case 'push-pull-reply':
      body = entriesBytes(message.entries) + countBytes(message.want.length, MAX_ENTRIES, 'want')
      for (const id of message.want) body += idBytes(id)
      break
    case 'push-pull-entries':
      body = entriesBytes(message.entries)
      break
    case 'gossip':
      body = updatesBytes(message.updates)
      break
    default:
      return encode(message).length
  }
  const length = HEADER_BYTES + body
  const limit = FRAME_LIMIT_BYTES[message.type]
  if (length > limit) throw new RangeError(frameTooLarge(length, limit, message.type))
  return length
}

function countBytes (count: number, max: number, field: string): number {
  if (count > max) throw new RangeError(`${field} count ${count} exceeds the limit of ${max}`)
  return varintBytes(count)
}

// Peer ids are ASCII ([A-Za-z0-9._-]): one byte a character.
function idBytes (id: string): number {
  return varintBytes(id.length) + id.length
}

function fieldBytes (bytes: Uint8Array): number {
  return varintBytes(bytes.length) + bytes.length
}

function updatesBytes (updates: readonly Update[]): number {
  let total = countBytes(updates.length, MAX_UPDATES, 'updates')
  for (const u of updates) total += 1 + fieldBytes(u.signed.bytes) + fieldBytes(u.signed.sig)
  return total
}

function entriesBytes (entries: readonly Entry[]): number {
  let total = countBytes(entries.length, MAX_ENTRIES, 'entries')
  for (const e of entries) total += fieldBytes(e.signed.bytes) + fieldBytes(e.signed.sig) + 1 + varintBytes(e.statusIncarnation)
  return total
}

export function decode (frame: Uint8Array): Decoded<Message> {
  try {
    const type = readHeader(frame)
    const value = readAll(frame.subarray(HEADER_BYTES), type, (r) => readBody(r, type))
    return { ok: true, value }
  } catch (error) {
    return refusal(error)
  }
}

// Everything decided from the first two bytes and the length, before any parsing.
function readHeader (frame: Uint8Array): MessageTypeName {
  // Types vouch for this only inside our own code.
  if (!(frame instanceof Uint8Array)) throw new WireError('frame is not a Uint8Array')
  const length = frame.length
  if (length < HEADER_BYTES) throw new WireError(`frame of ${length} byte${length === 1 ? '' : 's'} is too short (need at least ${HEADER_BYTES})`)
  if (frame[0] !== PROTOCOL_VERSION) throw new WireError(`unsupported protocol version ${frame[0]} (expected ${PROTOCOL_VERSION})`)
  const type = TYPE_BY_NUMBER.get(frame[1])
  if (type === undefined) throw new WireError(`unknown message type ${frame[1]}`)
  const limit = FRAME_LIMIT_BYTES[type]
  if (length > limit) throw new WireError(frameTooLarge(length, limit, type))
  return type
}

function frameTooLarge (bytes: number, limit: number, type: MessageTypeName): string {
  return `frame of ${bytes} bytes exceeds the ${limit}-byte limit for ${type}`
}

function writeBody (w: Writer, m: Message): void {
  switch (m.type) {
    case 'ping':
    case 'ack':
      w.varint(m.seq)
      writeList(w, m.updates, MAX_UPDATES, 'updates', writeUpdate)
      return
    case 'ping-req':
      w.varint(m.seq)
      writeId(w, m.target, 'target')
      writeList(w, m.updates, MAX_UPDATES, 'updates', writeUpdate)
      return
    case 'nack':
      w.varint(m.seq)
      return
    case 'push-pull-request':
      w.u8(m.join ? 1 : 0)
      writeList(w, m.digest, MAX_ENTRIES, 'digest', writeDigestEntry)
      return
    case 'push-pull-reply':
      writeList(w, m.entries, MAX_ENTRIES, 'entries', writeEntry)
      writeList(w, m.want, MAX_ENTRIES, 'want', (w, id) => writeId(w, id, 'want'))
      return
    case 'push-pull-entries':
      writeList(w, m.entries, MAX_ENTRIES, 'entries', writeEntry)
      return
    case 'gossip':
      writeList(w, m.updates, MAX_UPDATES, 'updates', writeUpdate)
      return
    case 'peek-request':
      return
    case 'peek-reply':
      writeId(w, m.self, 'self')
      writeList(w, m.members, MAX_ENTRIES, 'members', writePeekMember)
      return
    default:
      writeSessionBody(w, m)
  }
}

function readBody (r: Reader, type: MessageTypeName): Message {
  switch (type) {
    case 'ping':
    case 'ack': {
      const seq = r.varint('seq')
      return { type, seq, updates: readList(r, MAX_UPDATES, 'updates', readUpdate) }
    }
    case 'ping-req': {
      const seq = r.varint('seq')
      const target = readId(r, 'target')
      return { type, seq, target, updates: readList(r, MAX_UPDATES, 'updates', readUpdate) }
    }
    case 'nack':
      return { type, seq: r.varint('seq') }
    case 'push-pull-request': {
      const join = readFlag(r, 'join')
      return { type, join, digest: readList(r, MAX_ENTRIES, 'digest', readDigestEntry) }
    }
    case 'push-pull-reply': {
      const entries = readList(r, MAX_ENTRIES, 'entries', readEntry)
      return { type, entries, want: readList(r, MAX_ENTRIES, 'want', (r) => readId(r, 'id')) }
    }
    case 'push-pull-entries':
      return { type, entries: readList(r, MAX_ENTRIES, 'entries', readEntry) }
    case 'gossip':
      return { type, updates: readList(r, MAX_UPDATES, 'updates', readUpdate) }
    case 'peek-request':
      return { type }
    case 'peek-reply': {
      const self = readId(r, 'self')
      return { type, self, members: readList(r, MAX_ENTRIES, 'members', readPeekMember) }
    }
    default:
      return readSessionBody(r, type)
  }
}

function writeUpdate (w: Writer, update: Update): void {
  if (update.kind === 'record') {
    w.u8(UPDATE_RECORD)
    w.bytes(update.signed.bytes, MAX_RECORD_BYTES)
  } else {
    w.u8(UPDATE_ACCUSATION)
    w.bytes(update.signed.bytes, MAX_ACCUSATION_BYTES)
  }
  writeSig(w, update.signed.sig)
}

function readUpdate (r: Reader): Update {
  const kind = r.u8('kind')
  if (kind === UPDATE_RECORD) return { kind: 'record', signed: readSignedRecord(r) }
  if (kind !== UPDATE_ACCUSATION) throw new WireError(`update kind ${kind} is unknown`)
  const view = r.bytes(MAX_ACCUSATION_BYTES, 'accusation bytes')
  const accusation = readAll(view, 'accusation', readAccusation)
  const sig = readSig(r)
  return { kind: 'accusation', signed: { accusation, bytes: copyBytes(view), sig } }
}

// Copies of the signed bytes and signature, so a retained record does not pin the
// (possibly 32 MiB) frame it arrived in.
function readSignedRecord (r: Reader): SignedRecord {
  const view = r.bytes(MAX_RECORD_BYTES, 'record bytes')
  const record = readAll(view, 'record', readRecord)
  const sig = readSig(r)
  return { record, bytes: copyBytes(view), sig }
}

function writeSig (w: Writer, sig: Uint8Array): void {
  if (sig.length === 0) throw new RangeError('sig is empty')
  w.bytes(sig, MAX_SIG_BYTES)
}

function readSig (r: Reader): Uint8Array {
  const sig = r.bytes(MAX_SIG_BYTES, 'sig')
  if (sig.length === 0) throw new WireError('sig is empty')
  return copyBytes(sig)
}

function writeStatus (w: Writer, status: MemberStatus): void {
  const code = MEMBER_STATUS.indexOf(status)
  if (code < 0) throw new RangeError(`member status ${String(status)} is unknown`)
  w.u8(code)
}

function readStatus (r: Reader): MemberStatus {
  const code = r.u8('status')
  const status = MEMBER_STATUS[code]
  if (status === undefined) throw new WireError(`status ${code} is unknown`)
  return status
}

function writeEntry (w: Writer, entry: Entry): void {
  w.bytes(entry.signed.bytes, MAX_RECORD_BYTES)
  writeSig(w, entry.signed.sig)
  writeStatus(w, entry.status)
  w.varint(entry.statusIncarnation)
}

function readEntry (r: Reader): Entry {
  const signed = readSignedRecord(r)
  const status = readStatus(r)
  return { signed, status, statusIncarnation: r.varint('statusIncarnation') }
}

function writeDigestEntry (w: Writer, d: DigestEntry): void {
  writeId(w, d.id, 'id')
  w.varint(d.incarnation)
  w.varint(d.seq)
  writeStatus(w, d.status)
  w.varint(d.statusIncarnation)
}

function readDigestEntry (r: Reader): DigestEntry {
  const id = readId(r, 'id')
  const incarnation = r.varint('incarnation')
  const seq = r.varint('seq')
  const status = readStatus(r)
  return { id, incarnation, seq, status, statusIncarnation: r.varint('statusIncarnation') }
}

// Peek shows records, not signatures: the asker trusts the agent it asked.
function writePeekMember (w: Writer, m: PeekMember): void {
  w.bytes(encodeRecord(m.record), MAX_RECORD_BYTES)
  writeStatus(w, m.status)
  w.varint(m.statusIncarnation)
  w.varint(m.lastHeardMs)
}

function readPeekMember (r: Reader): PeekMember {
  const record = readAll(r.bytes(MAX_RECORD_BYTES, 'record bytes'), 'record', readRecord)
  const status = readStatus(r)
  const statusIncarnation = r.varint('statusIncarnation')
  return { record, status, statusIncarnation, lastHeardMs: r.varint('lastHeardMs') }
}
