// The signed payloads: node records and accusations, as canonical bytes. A node signs
// exactly what encodeRecord returns, and every receiver checks the same rules here,
// so the encoder refuses (RangeError) any record the decoder would refuse.
//
// Record layout, in order: id, addrs, ip, http, services, load, position, region,
// zone, incarnation, seq, status. See decodeRecord for each field's rule.

import { decodeWith, Reader, WireError, Writer } from './wire.ts'
import {
  MAX_ACCUSATION_BYTES, MAX_ADDR_CHARS, MAX_ADDRS, MAX_ID_CHARS, MAX_IP_CHARS,
  MAX_RECORD_BYTES, MAX_REGION_CHARS, MAX_SERVICE_CAPACITY, MAX_SERVICE_NAME_CHARS,
  MAX_SERVICE_VERSION_CHARS, MAX_SERVICES, MAX_SESSIONS, MAX_URL_CHARS
} from './limits.ts'
import { isIP } from 'node:net'
import type {
  Accusation, Decoded, Load, NodeRecord, Position, RecordStatus, ServiceOffer
} from './messages.ts'

// Every string field below is ASCII-only by its pattern, so its character limit is
// also its byte limit on the wire.
const ID_PATTERN = /^[A-Za-z0-9._-]+$/
const PRINTABLE_ASCII = /^[\x21-\x7e]*$/
// Exported for session-codec.ts, which names services by the same rule.
export const SERVICE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/
const SERVICE_VERSION_PATTERN = /^[0-9A-Za-z.+_-]+$/
const REGION_PATTERN = /^[A-Za-z0-9._-]*$/

// Load shares travel as u16 in units of 1/10000.
const LOAD_SCALE = 10_000
// Wire codes: part of the protocol, only append.
const RECORD_STATUS: readonly RecordStatus[] = ['alive', 'left']
const ACCUSATION_KIND = { suspect: 1, dead: 2 } as const
const POSITION_ABSENT = 0
const POSITION_PRESENT = 1

// Separate from codec.ts's frame writer: encode() calls encodeRecord mid-frame.
const recordWriter = new Writer(1024)

export function encodeRecord (record: NodeRecord): Uint8Array {
  recordWriter.reset()
  writeRecord(recordWriter, record)
  const bytes = recordWriter.finish()
  // Never sign a record that peers would refuse.
  const check = decodeRecord(bytes)
  if (!check.ok) throw new RangeError(`cannot encode record: ${check.reason}`)
  return bytes
}

export function decodeRecord (bytes: Uint8Array): Decoded<NodeRecord> {
  if (bytes.length > MAX_RECORD_BYTES) return tooLarge('record', bytes.length, MAX_RECORD_BYTES)
  return decodeWith(bytes, 'record', readRecord)
}

export function encodeAccusation (a: Accusation): Uint8Array {
  recordWriter.reset()
  const kind = ACCUSATION_KIND[a.kind]
  if (kind === undefined) throw new RangeError(`unknown accusation kind ${String(a.kind)}`)
  recordWriter.u8(kind)
  writeId(recordWriter, a.subject, 'accusation.subject')
  recordWriter.varint(a.incarnation)
  writeId(recordWriter, a.accuser, 'accusation.accuser')
  const bytes = recordWriter.finish()
  const check = decodeAccusation(bytes)
  if (!check.ok) throw new RangeError(`cannot encode accusation: ${check.reason}`)
  return bytes
}

export function decodeAccusation (bytes: Uint8Array): Decoded<Accusation> {
  if (bytes.length > MAX_ACCUSATION_BYTES) return tooLarge('accusation', bytes.length, MAX_ACCUSATION_BYTES)
  return decodeWith(bytes, 'accusation', readAccusation)
}

export function readAccusation (r: Reader): Accusation {
  const code = r.u8('accusation.kind')
  const kind = code === ACCUSATION_KIND.suspect ? 'suspect' : code === ACCUSATION_KIND.dead ? 'dead' : null
  if (kind === null) throw new WireError(`accusation.kind ${code} is unknown`)
  const subject = readId(r, 'accusation.subject')
  const incarnation = r.varint('accusation.incarnation')
  const accuser = readId(r, 'accusation.accuser')
  return { kind, subject, incarnation, accuser }
}

// Peer ids: 1..MAX_ID_CHARS of [A-Za-z0-9._-].
export function readId (r: Reader, field: string): string {
  const id = r.string(MAX_ID_CHARS, field)
  if (id.length === 0) throw new WireError(`${field} is empty`)
  if (!ID_PATTERN.test(id)) throw new WireError(`${field} has characters outside [A-Za-z0-9._-]`)
  return id
}

export function isPeerId (id: string): boolean {
  return id.length > 0 && id.length <= MAX_ID_CHARS && ID_PATTERN.test(id)
}

export function writeId (w: Writer, id: string, field: string): void {
  if (typeof id !== 'string' || !isPeerId(id)) {
    throw new RangeError(`${field} is not a valid peer id: ${JSON.stringify(String(id).slice(0, MAX_ID_CHARS))}`)
  }
  w.string(id, MAX_ID_CHARS)
}

export function readRecord (r: Reader): NodeRecord {
  const id = readId(r, 'record.id')
  const addrs = readAddrs(r)
  const ip = readIp(r)
  const http = readHttp(r)
  const services = readServices(r)
  const load = readLoad(r)
  const position = readPosition(r, 'record.position')
  const region = readPlace(r, 'record.region')
  const zone = readPlace(r, 'record.zone')
  const incarnation = r.varint('record.incarnation')
  const seq = r.varint('record.seq')
  const statusCode = r.u8('record.status')
  const status = RECORD_STATUS[statusCode]
  if (status === undefined) throw new WireError(`record.status ${statusCode} is unknown`)
  return { id, addrs, ip, http, services, load, position, region, zone, incarnation, seq, status }
}

function writeRecord (w: Writer, record: NodeRecord): void {
  writeId(w, record.id, 'record.id')
  if (record.addrs.length > MAX_ADDRS) throw new RangeError(`record.addrs count ${record.addrs.length} exceeds the limit of ${MAX_ADDRS}`)
  w.varint(record.addrs.length)
  for (const addr of record.addrs) w.string(addr, MAX_ADDR_CHARS)
  w.string(record.ip, MAX_IP_CHARS)
  w.string(record.http, MAX_URL_CHARS)
  if (record.services.length > MAX_SERVICES) throw new RangeError(`record.services count ${record.services.length} exceeds the limit of ${MAX_SERVICES}`)
  w.varint(record.services.length)
  for (const service of record.services) {
    w.string(service.name, MAX_SERVICE_NAME_CHARS)
    w.string(service.version, MAX_SERVICE_VERSION_CHARS)
    w.varint(service.capacity)
  }
  writeLoad(w, record.load)
  writePosition(w, record.position, 'record.position')
  w.string(record.region, MAX_REGION_CHARS)
  w.string(record.zone, MAX_REGION_CHARS)
  w.varint(record.incarnation)
  w.varint(record.seq)
  const status = RECORD_STATUS.indexOf(record.status)
  if (status < 0) throw new RangeError(`record.status ${String(record.status)} is unknown`)
  w.u8(status)
}

function readAddrs (r: Reader): string[] {
  const count = r.count(MAX_ADDRS, 'record.addrs')
  const addrs: string[] = []
  for (let i = 0; i < count; i++) {
    const addr = r.string(MAX_ADDR_CHARS, 'record.addrs')
    if (addr.length === 0) throw new WireError(`record.addrs[${i}] is empty`)
    if (addr[0] !== '/') throw new WireError(`record.addrs[${i}] does not start with '/'`)
    if (!PRINTABLE_ASCII.test(addr)) throw new WireError(`record.addrs[${i}] is not printable ASCII`)
    addrs.push(addr)
  }
  return addrs
}

function readIp (r: Reader): string {
  const ip = r.string(MAX_IP_CHARS, 'record.ip')
  if (ip !== '' && isIP(ip) === 0) throw new WireError('record.ip is not an IPv4 or IPv6 address')
  return ip
}

function readHttp (r: Reader): string {
  const http = r.string(MAX_URL_CHARS, 'record.http')
  if (http === '') return http
  if (!http.startsWith('http://') && !http.startsWith('https://')) throw new WireError('record.http is not an http(s) URL')
  if (!PRINTABLE_ASCII.test(http)) throw new WireError('record.http is not printable ASCII')
  return http
}

function readServices (r: Reader): ServiceOffer[] {
  const count = r.count(MAX_SERVICES, 'record.services')
  const services: ServiceOffer[] = []
  const names = new Set<string>()
  for (let i = 0; i < count; i++) {
    const name = r.string(MAX_SERVICE_NAME_CHARS, 'record.services.name')
    if (!SERVICE_NAME_PATTERN.test(name)) throw new WireError(`record.services[${i}].name is not a valid service name`)
    // Two offers of one service would make capacity ambiguous.
    if (names.has(name)) throw new WireError(`record.services[${i}].name ${name} is a duplicate`)
    names.add(name)
    const version = r.string(MAX_SERVICE_VERSION_CHARS, 'record.services.version')
    if (!SERVICE_VERSION_PATTERN.test(version)) throw new WireError(`record.services[${i}].version is not a valid version`)
    const capacity = r.varint('record.services.capacity')
    if (capacity > MAX_SERVICE_CAPACITY) throw new WireError(`record.services[${i}].capacity out of range`)
    services.push({ name, version, capacity })
  }
  return services
}

function readLoad (r: Reader): Load {
  const score = readShare(r, 'record.load.score')
  const sessions = r.varint('record.load.sessions')
  if (sessions > MAX_SESSIONS) throw new WireError('record.load.sessions out of range')
  const elu = readShare(r, 'record.load.elu')
  const cpu = readShare(r, 'record.load.cpu')
  return { score, sessions, elu, cpu }
}

function writeLoad (w: Writer, load: Load): void {
  w.u16(shareUnits(load.score, 'record.load.score'))
  w.varint(load.sessions)
  w.u16(shareUnits(load.elu, 'record.load.elu'))
  w.u16(shareUnits(load.cpu, 'record.load.cpu'))
}

function readShare (r: Reader, field: string): number {
  const units = r.u16(field)
  if (units > LOAD_SCALE) throw new WireError(`${field} out of range`)
  return units / LOAD_SCALE
}

function shareUnits (value: number, field: string): number {
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new RangeError(`${field} must be in [0, 1], got ${value}`)
  return Math.round(value * LOAD_SCALE)
}

// A presence byte, then latitude and longitude as f64. `field` names the position
// in refusals ('record.position', 'info.position').
export function readPosition (r: Reader, field: string): Position | null {
  const presence = r.u8(field)
  if (presence === POSITION_ABSENT) return null
  if (presence !== POSITION_PRESENT) throw new WireError(`${field} presence byte ${presence} is neither 0 nor 1`)
  const lat = r.f64(`${field}.lat`)
  const lon = r.f64(`${field}.lon`)
  const problem = positionProblem(lat, lon)
  if (problem !== null) throw new WireError(`${field}.${problem}`)
  return { lat, lon }
}

// Refuses (RangeError) what readPosition would refuse.
export function writePosition (w: Writer, position: Position | null, field: string): void {
  if (position === null) { w.u8(POSITION_ABSENT); return }
  const problem = positionProblem(position.lat, position.lon)
  if (problem !== null) throw new RangeError(`${field}.${problem}`)
  w.u8(POSITION_PRESENT)
  w.f64(position.lat)
  w.f64(position.lon)
}

function positionProblem (lat: number, lon: number): string | null {
  // The comparisons are false for NaN, so NaN is refused too.
  if (!(lat >= -90 && lat <= 90)) return 'lat out of range'
  if (!(lon >= -180 && lon <= 180)) return 'lon out of range'
  return null
}

// Region and zone: 0..MAX_REGION_CHARS of [A-Za-z0-9._-].
function readPlace (r: Reader, field: string): string {
  const place = r.string(MAX_REGION_CHARS, field)
  if (!REGION_PATTERN.test(place)) throw new WireError(`${field} has characters outside [A-Za-z0-9._-]`)
  return place
}

function tooLarge (what: string, bytes: number, limit: number): { ok: false; reason: string } {
  return { ok: false, reason: `${what} of ${bytes} bytes exceeds the ${limit}-byte limit` }
}
