// A stand-in for Ed25519 in the simulator: a keyed 64-bit hash of the signer's
// id and the bytes. Cheap enough for thousands of nodes, and still refuses a
// statement whose bytes were altered or whose signer is not its author, which is
// all the membership rules depend on.

import type { Auth, PeerKey } from '../agent/core/io.ts'

function fnv1a (seed: number, text: string, bytes: Uint8Array): number {
  let h = seed >>> 0
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0
  return h
}

export function simSignature (signer: PeerKey, bytes: Uint8Array): Uint8Array {
  const sig = new Uint8Array(8)
  const view = new DataView(sig.buffer)
  view.setUint32(0, fnv1a(0x811c9dc5, signer, bytes))
  view.setUint32(4, fnv1a(0x050c5d1f, signer, bytes))
  return sig
}

export class SimAuth implements Auth {
  readonly #id: PeerKey

  constructor (id: PeerKey) {
    this.#id = id
  }

  sign (bytes: Uint8Array): Uint8Array {
    return simSignature(this.#id, bytes)
  }

  verify (signer: PeerKey, bytes: Uint8Array, sig: Uint8Array): boolean {
    // Receivers share the sender's objects (frames are not decoded by default):
    // a statement checked once, by anyone, need not be hashed again.
    const seen = verified.get(sig)
    if (seen !== undefined && seen.signer === signer && seen.bytes === bytes) return true
    const expected = simSignature(signer, bytes)
    if (sig.length !== expected.length) return false
    for (let i = 0; i < sig.length; i++) if (sig[i] !== expected[i]) return false
    verified.set(sig, { signer, bytes })
    return true
  }
}

// Signatures already found good, with what they were checked against. Keyed
// weakly, so statements nobody holds any more are not kept alive.
const verified = new WeakMap<Uint8Array, { signer: PeerKey; bytes: Uint8Array }>()
