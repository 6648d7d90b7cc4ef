// Noise's ChaCha20-Poly1305 with each cipher state's key prepared once.
//
// @chainsafe/libp2p-noise's default crypto seals a message under 1,200 bytes
// with its WebAssembly ChaCha20-Poly1305 and a larger one with node:crypto,
// handing node:crypto the raw key bytes each time. node:crypto then builds a
// secret key object from them on every call (prepareSecretKey: about 20 µs of
// the ~30 µs a sealed 300-byte message costs, measured on this project's box),
// so an owner's batch of entries to a standby paid more to set up its cipher
// than to encrypt. Here the key object is made once per key and kept beside
// the key (a WeakMap on the cipher state's own key array, checked against a
// copy of its bytes, so a key changed in place is never used stale), and
// node:crypto takes over from 640 bytes, where it becomes the faster of the
// two with a prepared key (the WebAssembly cipher: 4 µs at 300 bytes, 17 µs at
// 1,100; node:crypto with a prepared key: ~10 µs from 100 bytes to 1,300). The
// bytes on the wire are the same: ChaCha20-Poly1305 is one function whichever
// code computes it, so an agent with this crypto talks to one without it.

import { createCipheriv, createDecipheriv, createSecretKey } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { asCrypto, defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'

const CHACHA_POLY1305 = 'chacha20-poly1305'
const TAG_BYTES = 16
// Messages from this size on go to node:crypto (see the top).
export const NODE_CIPHER_FROM_BYTES = 640

const prepared = new WeakMap<Uint8Array, { bytes: Buffer; key: KeyObject }>()

function keyObject (k: Uint8Array): KeyObject {
  const known = prepared.get(k)
  if (known !== undefined && known.bytes.equals(k)) return known.key
  const entry = { bytes: Buffer.from(k), key: createSecretKey(k) }
  prepared.set(k, entry)
  return entry.key
}

function encrypt (plaintext: Uint8Array | Uint8ArrayList, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array): Uint8Array | Uint8ArrayList {
  if (plaintext.byteLength < NODE_CIPHER_FROM_BYTES) return asCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
  const cipher = createCipheriv(CHACHA_POLY1305, keyObject(k), nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
  if (plaintext instanceof Uint8Array) {
    const updated = cipher.update(plaintext)
    const final = cipher.final()
    const tag = cipher.getAuthTag()
    return Buffer.concat([updated, final, tag], updated.byteLength + final.byteLength + tag.byteLength)
  }
  const output = new Uint8ArrayList()
  for (const buf of plaintext) output.append(cipher.update(buf))
  const final = cipher.final()
  if (final.byteLength > 0) output.append(final)
  output.append(cipher.getAuthTag())
  return output
}

function decrypt (ciphertext: Uint8Array | Uint8ArrayList, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array, dst?: Uint8Array): Uint8Array | Uint8ArrayList {
  if (ciphertext.byteLength < NODE_CIPHER_FROM_BYTES + TAG_BYTES) return asCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
  const authTag = ciphertext.subarray(ciphertext.length - TAG_BYTES)
  const decipher = createDecipheriv(CHACHA_POLY1305, keyObject(k), nonce, { authTagLength: TAG_BYTES })
  const text = ciphertext instanceof Uint8Array ? ciphertext.subarray(0, ciphertext.length - TAG_BYTES) : ciphertext.sublist(0, ciphertext.length - TAG_BYTES)
  decipher.setAAD(ad, { plaintextLength: text.byteLength })
  decipher.setAuthTag(authTag)
  if (text instanceof Uint8Array) {
    const output = decipher.update(text)
    const final = decipher.final()
    return final.byteLength > 0 ? Buffer.concat([output, final], output.byteLength + final.byteLength) : output
  }
  const output = new Uint8ArrayList()
  for (const buf of text) output.append(decipher.update(buf))
  const final = decipher.final()
  if (final.byteLength > 0) output.append(final)
  return output
}

export type NoiseCrypto = ICryptoInterface

// The library's own, for bench/noise-crypto.ts to measure beside ours (only
// agent/net imports libp2p packages: test/unit/purity.test.ts).
export const libraryNoiseCrypto: NoiseCrypto = defaultCrypto

export const noiseCrypto: NoiseCrypto = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt: encrypt,
  chaCha20Poly1305Decrypt: decrypt
}
