// The agent's noise crypto (agent/net/noise-crypto.ts) seals and opens exactly as
// @chainsafe/libp2p-noise's default does, on both sides of its switch between
// the WebAssembly cipher and node:crypto, so agents with and without it talk;
// and its prepared keys never outlive a change of the key bytes.
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { NODE_CIPHER_FROM_BYTES, noiseCrypto } from '../../agent/net/noise-crypto.ts'

const SIZES = [0, 1, 300, NODE_CIPHER_FROM_BYTES - 1, NODE_CIPHER_FROM_BYTES, NODE_CIPHER_FROM_BYTES + 1, 1199, 1200, 5000, 65519]
const bytes = (data: Uint8Array | Uint8ArrayList): Buffer => Buffer.from(data.subarray())

function listOf (data: Uint8Array): Uint8ArrayList {
  const cut = Math.floor(data.length / 3)
  return new Uint8ArrayList(data.subarray(0, cut), data.subarray(cut, 2 * cut), data.subarray(2 * cut))
}

test('the same ciphertext as noise\'s default crypto, and each opens the other\'s, at every size either side of the switch', () => {
  const k = new Uint8Array(randomBytes(32))
  const nonce = new Uint8Array(12)
  nonce[4] = 7
  const ad = new Uint8Array(randomBytes(32))
  for (const size of SIZES) {
    const plaintext = new Uint8Array(randomBytes(size))
    for (const input of [plaintext, listOf(plaintext)]) {
      const ours = bytes(noiseCrypto.chaCha20Poly1305Encrypt(input, nonce, ad, k))
      const theirs = bytes(defaultCrypto.chaCha20Poly1305Encrypt(input, nonce, ad, k))
      assert.ok(ours.equals(theirs), `size ${size}, ${input instanceof Uint8Array ? 'array' : 'list'}: ciphertexts differ`)
      assert.is(ours.length, size + 16)
      assert.ok(bytes(noiseCrypto.chaCha20Poly1305Decrypt(new Uint8Array(theirs), nonce, ad, k)).equals(Buffer.from(plaintext)), `size ${size}: ours does not open theirs`)
      assert.ok(bytes(noiseCrypto.chaCha20Poly1305Decrypt(listOf(new Uint8Array(theirs)), nonce, ad, k)).equals(Buffer.from(plaintext)), `size ${size}: ours does not open theirs as a list`)
      assert.ok(bytes(defaultCrypto.chaCha20Poly1305Decrypt(new Uint8Array(ours), nonce, ad, k)).equals(Buffer.from(plaintext)), `size ${size}: theirs does not open ours`)
    }
  }
})

test('a tampered ciphertext, another nonce or other associated data is refused, on both sides of the switch', () => {
  const k = new Uint8Array(randomBytes(32))
  const nonce = new Uint8Array(12)
  const ad = new Uint8Array(0)
  for (const size of [300, 5000]) {
    const sealed = new Uint8Array(bytes(noiseCrypto.chaCha20Poly1305Encrypt(new Uint8Array(randomBytes(size)), nonce, ad, k)))
    const tampered = new Uint8Array(sealed)
    tampered[size >> 1] ^= 1
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(tampered, nonce, ad, k), undefined, `size ${size}: tampered`)
    const otherNonce = new Uint8Array(12)
    otherNonce[0] = 1
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(new Uint8Array(sealed), otherNonce, ad, k), undefined, `size ${size}: other nonce`)
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(new Uint8Array(sealed), nonce, new Uint8Array([1]), k), undefined, `size ${size}: other associated data`)
  }
})

test('a prepared key follows its bytes: a key array changed in place seals under the new key', () => {
  const k = new Uint8Array(randomBytes(32))
  const nonce = new Uint8Array(12)
  const ad = new Uint8Array(0)
  const plaintext = new Uint8Array(randomBytes(4096))
  const first = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))
  k[0] ^= 0xff
  const second = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))
  assert.not.ok(first.equals(second), 'the old key was used after the bytes changed')
  assert.ok(second.equals(bytes(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))))
  // And two arrays with one key's bytes give one ciphertext.
  assert.ok(second.equals(bytes(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, new Uint8Array(k)))))
})

test.run()
