// Bounded binary primitives for the codec: a growable Writer and a Reader whose every
// read checks bounds. Only the byte layout lives here; what the fields mean and which
// values they may hold lives in record.ts and codec.ts.
//
// Layout conventions: unsigned LEB128 varints for counts and integers, little-endian
// fixed-width numbers, and length-prefixed (varint) bytes and UTF-8 strings.

import type { Decoded } from './messages.ts'

// Thrown by Reader (and by the field checks built on it) when input is malformed. The
// public decoders catch it and return `{ ok: false, reason }`; it never leaves the
// protocol module.
//
// It carries no stack trace: a refusal is an answer, not a bug, and capturing a
// stack made each refusal cost ~40 µs (bench/fuzz.ts), which a peer sending
// garbage could turn into CPU load on the agent.
export class WireError extends Error {
  override name = 'WireError'

  constructor (message: string) {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      super(message)
    } finally {
      Error.stackTraceLimit = limit
    }
  }
}

// 2^53 - 1 needs 53 bits, so 8 groups of 7 bits; a 9th byte is never needed.
const MAX_VARINT_BYTES = 8
// The 8th varint byte carries bits 49..55; only bits 49..52 fit in a safe integer.
const MAX_LAST_VARINT_BYTE = 0x0f
const INITIAL_WRITER_BYTES = 256

const utf8Encoder = new TextEncoder()
// `fatal` refuses invalid UTF-8 instead of substituting U+FFFD; `ignoreBOM` keeps a
// leading U+FEFF in the string (the default strips it silently, which would let two
// different byte strings decode to the same value).
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

// Bytes a varint of `value` takes (value a non-negative safe integer).
export function varintBytes (value: number): number {
  let n = 1
  while (value >= 128) { value = Math.floor(value / 128); n++ }
  return n
}

// Writes `value` (a non-negative safe integer) as an unsigned LEB128 varint into
// `buf` at `at`, which has room for it; returns the position after it.
export function putVarint (buf: Uint8Array, at: number, value: number): number {
  while (value >= 128) {
    buf[at++] = (value % 128) | 0x80
    value = Math.floor(value / 128)
  }
  buf[at++] = value
  return at
}

export class Writer {
  #buf: Uint8Array
  #view: DataView
  #pos = 0

  constructor (initialBytes = INITIAL_WRITER_BYTES) {
    this.#buf = new Uint8Array(Math.max(16, initialBytes))
    this.#view = new DataView(this.#buf.buffer)
  }

  get length (): number { return this.#pos }

  // Forgets what was written; keeps the buffer unless it grew past `keepBytes`, so a
  // reused writer does not pin the memory of one huge frame forever.
  reset (keepBytes = 1024 * 1024): void {
    this.#pos = 0
    if (this.#buf.length > keepBytes) {
      this.#buf = new Uint8Array(INITIAL_WRITER_BYTES)
      this.#view = new DataView(this.#buf.buffer)
    }
  }

  // A copy of the bytes written so far, sized exactly.
  finish (): Uint8Array {
    return this.#buf.slice(0, this.#pos)
  }

  u8 (value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError(`u8 out of range: ${value}`)
    this.#reserve(1)
    this.#buf[this.#pos++] = value
  }

  u16 (value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError(`u16 out of range: ${value}`)
    this.#reserve(2)
    this.#view.setUint16(this.#pos, value, true)
    this.#pos += 2
  }

  varint (value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint needs a non-negative safe integer, got ${value}`)
    this.#reserve(MAX_VARINT_BYTES)
    this.#putVarint(value)
  }

  f64 (value: number): void {
    this.#reserve(8)
    this.#view.setFloat64(this.#pos, value, true)
    this.#pos += 8
  }

  // Length-prefixed bytes; refuses (RangeError) more than `maxBytes`.
  bytes (value: Uint8Array, maxBytes: number): void {
    if (value.length > maxBytes) throw new RangeError(`${value.length} bytes exceed the ${maxBytes}-byte field limit`)
    this.varint(value.length)
    this.#reserve(value.length)
    this.#buf.set(value, this.#pos)
    this.#pos += value.length
  }

  // Length-prefixed UTF-8, encoded in place (no intermediate array); refuses
  // (RangeError) an encoding longer than `maxBytes`.
  string (value: string, maxBytes: number): void {
    // UTF-8 never takes fewer bytes than UTF-16 code units: refuse before reserving.
    if (value.length > maxBytes) throw new RangeError(`string of ${value.length} characters exceeds the ${maxBytes}-byte field limit`)
    const worst = value.length * 3
    const guessPrefix = varintBytes(worst)
    this.#reserve(guessPrefix + worst)
    const start = this.#pos + guessPrefix
    const { written } = utf8Encoder.encodeInto(value, this.#buf.subarray(start))
    if (written > maxBytes) throw new RangeError(`string of ${written} bytes exceeds the ${maxBytes}-byte field limit`)
    const prefix = varintBytes(written)
    // The guess assumed 3 bytes a character; move the text back if the prefix is shorter.
    if (prefix !== guessPrefix) this.#buf.copyWithin(this.#pos + prefix, start, start + written)
    // Space is already reserved: growing now would drop the text written past #pos.
    this.#putVarint(written)
    this.#pos += written
  }

  // The caller has checked the value and reserved room for its bytes.
  #putVarint (value: number): void {
    this.#pos = putVarint(this.#buf, this.#pos, value)
  }

  #reserve (extra: number): void {
    const needed = this.#pos + extra
    if (needed <= this.#buf.length) return
    let size = this.#buf.length * 2
    while (size < needed) size *= 2
    const grown = new Uint8Array(size)
    grown.set(this.#buf.subarray(0, this.#pos))
    this.#buf = grown
    this.#view = new DataView(grown.buffer)
  }
}

export class Reader {
  readonly #buf: Uint8Array
  readonly #view: DataView
  #pos = 0

  constructor (bytes: Uint8Array) {
    this.#buf = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  get remaining (): number { return this.#buf.length - this.#pos }

  // `field` names what is being read, for the refusal reason only.
  u8 (field: string): number {
    this.#need(1, field)
    return this.#buf[this.#pos++]
  }

  u16 (field: string): number {
    this.#need(2, field)
    const value = this.#view.getUint16(this.#pos, true)
    this.#pos += 2
    return value
  }

  // Refuses varints over 8 bytes, above MAX_SAFE_INTEGER, or not minimally encoded
  // (a trailing zero group), so every accepted value has exactly one encoding.
  varint (field: string): number {
    const buf = this.#buf
    let value = 0
    let scale = 1
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      this.#need(1, field)
      const byte = buf[this.#pos++]
      if (i === MAX_VARINT_BYTES - 1 && byte > MAX_LAST_VARINT_BYTE) throw new WireError(`${field} exceeds MAX_SAFE_INTEGER`)
      value += (byte & 0x7f) * scale
      if (byte < 0x80) {
        if (byte === 0 && i > 0) throw new WireError(`${field} is not minimally encoded`)
        return value
      }
      scale *= 128
    }
    throw new WireError(`${field} exceeds MAX_SAFE_INTEGER`)
  }

  f64 (field: string): number {
    this.#need(8, field)
    const value = this.#view.getFloat64(this.#pos, true)
    this.#pos += 8
    return value
  }

  // Length-prefixed bytes as a view into the input: copy (`slice`) before keeping it.
  bytes (maxBytes: number, field: string): Uint8Array {
    const length = this.varint(field)
    if (length > maxBytes) throw new WireError(`${field} of ${length} bytes exceeds the ${maxBytes}-byte limit`)
    this.#need(length, field)
    const value = this.#buf.subarray(this.#pos, this.#pos + length)
    this.#pos += length
    return value
  }

  string (maxBytes: number, field: string): string {
    const raw = this.bytes(maxBytes, field)
    try {
      return utf8Decoder.decode(raw)
    } catch {
      throw new WireError(`${field} is not valid UTF-8`)
    }
  }

  // A list length, refused above `max` before any item is read.
  count (max: number, field: string): number {
    const count = this.varint(`${field} count`)
    if (count > max) throw new WireError(`${field} count ${count} exceeds the limit of ${max}`)
    return count
  }

  // Refuses bytes left after the last field.
  end (what: string): void {
    const left = this.remaining
    if (left !== 0) throw new WireError(`${left} trailing byte${left === 1 ? '' : 's'} after ${what}`)
  }

  #need (count: number, field: string): void {
    if (this.#pos + count > this.#buf.length) throw new WireError(`truncated at ${field}`)
  }
}

// A u8 that must be 0 or 1.
export function readFlag (r: Reader, field: string): boolean {
  const flag = r.u8(field)
  if (flag > 1) throw new WireError(`${field} byte ${flag} is neither 0 nor 1`)
  return flag === 1
}

export function writeFlag (w: Writer, value: boolean, field: string): void {
  if (typeof value !== 'boolean') throw new RangeError(`${field} is not a boolean`)
  w.u8(value ? 1 : 0)
}

export function writeList<T> (w: Writer, items: readonly T[], max: number, field: string, writeItem: (w: Writer, item: T) => void): void {
  if (items.length > max) throw new RangeError(`${field} count ${items.length} exceeds the limit of ${max}`)
  w.varint(items.length)
  for (const item of items) writeItem(w, item)
}

// Reads a counted list; a refusal inside an item names the list and the index.
export function readList<T> (r: Reader, max: number, field: string, readItem: (r: Reader) => T): T[] {
  const count = r.count(max, field)
  const items: T[] = []
  for (let i = 0; i < count; i++) {
    try {
      items.push(readItem(r))
    } catch (error) {
      if (error instanceof WireError) throw new WireError(`${field}[${i}]: ${error.message}`)
      throw error
    }
  }
  return items
}

// Reads `bytes` whole with `read`, refusing trailing bytes. Throws WireError.
export function readAll<T> (bytes: Uint8Array, what: string, read: (r: Reader) => T): T {
  const r = new Reader(bytes)
  const value = read(r)
  r.end(what)
  return value
}

// The public decoders' shell: never throws, whatever `read` does.
export function decodeWith<T> (bytes: Uint8Array, what: string, read: (r: Reader) => T): Decoded<T> {
  try {
    return { ok: true, value: readAll(bytes, what, read) }
  } catch (error) {
    return refusal(error)
  }
}

export function refusal (error: unknown): { ok: false; reason: string } {
  if (error instanceof WireError) return { ok: false, reason: error.message }
  // Not expected: a bug in a reader. Still a refusal, never an exception.
  const detail = error instanceof Error ? error.message : 'non-error thrown'
  return { ok: false, reason: `decoder fault: ${detail}` }
}

// An owned copy of a view into a frame. `new Uint8Array(view)` always copies, unlike
// `Buffer#slice`, which returns another view when the frame is a Node Buffer.
export function copyBytes (view: Uint8Array): Uint8Array {
  return new Uint8Array(view)
}
