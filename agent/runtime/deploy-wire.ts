// Frames of the packages protocol (agent/net/requests.ts carries them).
//
// Request:  u8 kind, then
//   1 push   the bundle (as signed, agent/runtime/package.ts)
//   2 fetch  the archive hash, 64 ASCII hex characters
//   3 index  nothing
// Answer:   u8 status (0 ok, 1 refused), then
//   ok to a push    nothing
//   ok to a fetch   the bundle
//   ok to an index  u16 count, count × { u8 held, u32 H, H bytes announcement, 64 bytes signature }
//   refused         a UTF-8 reason
// Kind and status codes are part of the protocol: only append.
// Decoders never throw; a frame that fails is refused with a reason.

import { decodeSigned, encodeSigned } from './package.ts'
import type { SignedAnnouncement } from './package.ts'
import { MAX_SERVICES } from '../../protocol/limits.ts'

export type PackageRequest = { kind: 'push'; bundle: Uint8Array } | { kind: 'fetch'; hash: string } | { kind: 'index' }
export type Answer = { ok: true; payload: Uint8Array } | { ok: false; reason: string }
export type RawIndexEntry = { held: boolean; header: Uint8Array; sig: Uint8Array }

const KIND = { push: 1, fetch: 2, index: 3 } as const
// Index entries per answer: one per package name, and a record offers at most
// MAX_SERVICES services.
export const MAX_INDEX_ENTRIES = MAX_SERVICES * 4

export function encodeRequest (request: PackageRequest): Uint8Array {
  switch (request.kind) {
    case 'push': return Buffer.concat([Buffer.of(KIND.push), request.bundle])
    case 'fetch': return Buffer.concat([Buffer.of(KIND.fetch), Buffer.from(request.hash, 'ascii')])
    case 'index': return Buffer.of(KIND.index)
  }
}

export function decodeRequest (frame: Uint8Array): PackageRequest | { kind: 'bad'; reason: string } {
  const body = frame.subarray(1)
  switch (frame[0]) {
    case KIND.push: return { kind: 'push', bundle: body }
    case KIND.fetch: {
      const hash = Buffer.from(body).toString('ascii')
      return /^[0-9a-f]{64}$/.test(hash) ? { kind: 'fetch', hash } : { kind: 'bad', reason: 'a fetch names a 64-hex-character hash' }
    }
    case KIND.index: return { kind: 'index' }
    default: return { kind: 'bad', reason: `unknown request kind ${frame[0] ?? 'none'}` }
  }
}

export function okAnswer (payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  return Buffer.concat([Buffer.of(0), payload])
}

export function refusedAnswer (reason: string): Uint8Array {
  return Buffer.concat([Buffer.of(1), Buffer.from(reason.slice(0, 512), 'utf8')])
}

export function decodeAnswer (frame: Uint8Array): Answer {
  if (frame.length === 0) return { ok: false, reason: 'an empty answer' }
  if (frame[0] === 0) return { ok: true, payload: frame.subarray(1) }
  return { ok: false, reason: Buffer.from(frame.subarray(1)).toString('utf8') }
}

export function encodeIndex (entries: Array<{ held: boolean; signed: SignedAnnouncement }>): Uint8Array {
  const count = Buffer.alloc(2)
  count.writeUInt16BE(Math.min(entries.length, MAX_INDEX_ENTRIES))
  return Buffer.concat([count, ...entries.slice(0, MAX_INDEX_ENTRIES).flatMap((e) => [Buffer.of(e.held ? 1 : 0), encodeSigned(e.signed)])])
}

export function decodeIndex (payload: Uint8Array): RawIndexEntry[] | null {
  if (payload.length < 2) return null
  const count = Buffer.from(payload.buffer, payload.byteOffset, payload.length).readUInt16BE(0)
  if (count > MAX_INDEX_ENTRIES) return null
  const out: RawIndexEntry[] = []
  let at = 2
  for (let i = 0; i < count; i++) {
    if (at >= payload.length) return null
    const held = payload[at] === 1
    const signed = decodeSigned(payload, at + 1)
    if (signed === null) return null
    out.push({ held, header: signed.header, sig: signed.sig })
    at = signed.next
  }
  return at === payload.length ? out : null
}
