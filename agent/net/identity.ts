// The node's identity: an Ed25519 libp2p key kept in <dataDir>/identity.key, and
// the synchronous Auth the core signs and checks membership statements with.
//
// The private key never leaves agent/net/: an Identity is opaque to the rest of
// the agent, and createNet() finds the key again through the WeakMap below.

import { createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto'
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { Ed25519PrivateKey, PrivateKey } from '@libp2p/interface'
import type { Auth } from '../core/io.ts'
import type { Identity } from './types.ts'
import { MAX_ID_CHARS } from '../../protocol/limits.ts'
import { IDENTITY_FILE, PUBLIC_KEY_CACHE_ENTRIES } from './constants.ts'
import { errorMessage } from './guard.ts'

const ED25519_SIGNATURE_BYTES = 64
const ED25519_SEED_BYTES = 32

const privateKeys = new WeakMap<Identity, Ed25519PrivateKey>()

// The libp2p key behind an identity made by this module.
export function privateKeyOf (identity: Identity): Ed25519PrivateKey {
  const key = privateKeys.get(identity)
  if (key === undefined) {
    throw new Error('Cannot start: the identity was not made by loadOrCreateIdentity() or generateIdentity()')
  }
  return key
}

// Loads the node's key from <dataDir>/identity.key, creating both on first start.
// A file that exists but does not parse is never replaced: losing it would give
// the node a new id, so the operator decides. `ranBefore`: the data directory's
// incarnation (0 on a first start); a key missing from a directory that has run
// is refused too, since the node's sessions and record are under the old id.
export async function loadOrCreateIdentity (dataDir: string, ranBefore = 0): Promise<Identity> {
  const path = join(dataDir, IDENTITY_FILE)
  const existing = await readIdentityFile(path)
  if (existing !== null) return identityFromKey(parseIdentityFile(path, existing))
  if (ranBefore > 0) throw new Error(missingKey(path, ranBefore))
  const key = await newKey()
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    await writeFileAtomically(dataDir, path, keyToProtobuf(key))
  } catch (err) {
    throw new Error(`Cannot create identity key ${path}: ${errorMessage(err)}`, { cause: err })
  }
  return identityFromKey(key)
}

function missingKey (path: string, incarnation: number): string {
  return `identity key ${path} is missing, but this data directory has run before (incarnation ${incarnation}): its sessions and its record are under the old id. ` +
    'Restore the key from a backup; or, to start as a new node (a new id, without those sessions), move state.json and sessions.db away too'
}

// What `edge-agent check` says of the key, without creating one: its id, or
// null when there is none and the directory never ran. Throws as a start would.
export async function checkIdentity (dataDir: string, ranBefore: number): Promise<string | null> {
  const path = join(dataDir, IDENTITY_FILE)
  const existing = await readIdentityFile(path)
  if (existing !== null) return peerIdFromPrivateKey(parseIdentityFile(path, existing)).toString()
  if (ranBefore > 0) throw new Error(missingKey(path, ranBefore))
  return null
}

// A fresh identity that lives only in memory (tests, throwaway clients).
export async function generateIdentity (): Promise<Identity> {
  return identityFromKey(await newKey())
}

// @libp2p/crypto 5.1.23 is declared against @libp2p/interface 3, libp2p 2.x against
// @libp2p/interface 2. The key objects are the same at runtime (type, raw,
// publicKey, sign); only the declarations differ (uint8arraylist 2 vs 3), so the
// casts are confined to these three functions.
async function newKey (): Promise<Ed25519PrivateKey> {
  return await generateKeyPair('Ed25519') as unknown as Ed25519PrivateKey
}

function keyFromProtobuf (bytes: Uint8Array): PrivateKey {
  return privateKeyFromProtobuf(bytes) as unknown as PrivateKey
}

function keyToProtobuf (key: Ed25519PrivateKey): Uint8Array {
  return privateKeyToProtobuf(key as unknown as Parameters<typeof privateKeyToProtobuf>[0])
}

async function readIdentityFile (path: string): Promise<Uint8Array | null> {
  try {
    return await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new Error(`identity key ${path} is unreadable (${errorMessage(err)}); fix its permissions, or move it away to start as a new node`, { cause: err })
  }
}

function parseIdentityFile (path: string, bytes: Uint8Array): Ed25519PrivateKey {
  let key
  try {
    key = keyFromProtobuf(bytes)
  } catch (err) {
    throw new Error(`identity key ${path} is unreadable (${errorMessage(err)}); move it away to start as a new node`, { cause: err })
  }
  if (key.type !== 'Ed25519') {
    throw new Error(`identity key ${path} is unreadable (a ${key.type} key, the agent needs Ed25519); move it away to start as a new node`)
  }
  // The file holds the seed and the public key; the id is the public key. A
  // changed byte in either parsed, and the agent came up under another id that
  // its own signatures did not match: cut off from its cluster and its
  // sessions, without a word.
  if (!publicHalfMatches(key as Ed25519PrivateKey)) {
    throw new Error(`identity key ${path} is damaged: its public key does not match its private key; restore it from a backup, or move it away to start as a new node (with a new id)`)
  }
  return key as Ed25519PrivateKey
}

// PKCS#8 DER of an Ed25519 private key, before its 32-byte seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

function publicHalfMatches (key: Ed25519PrivateKey): boolean {
  if (key.raw.length !== 2 * ED25519_SEED_BYTES) return false
  const seed = Buffer.from(key.raw.subarray(0, ED25519_SEED_BYTES))
  const derived = createPublicKey(createPrivateKey({ format: 'der', type: 'pkcs8', key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]) }))
  const x = derived.export({ format: 'jwk' }).x
  return x === Buffer.from(key.raw.subarray(ED25519_SEED_BYTES)).toString('base64url') && x === Buffer.from(key.publicKey.raw).toString('base64url')
}

// tmp file + fsync + rename + fsync of the directory: after a crash the file is
// either absent or complete, never empty or half written.
async function writeFileAtomically (dir: string, path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`
  const file = await open(tmp, 'wx', 0o600)
  try {
    await file.writeFile(bytes)
    await file.sync()
  } finally {
    await file.close()
  }
  try {
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  const dirHandle = await open(dir, 'r')
  try {
    await dirHandle.sync()
  } finally {
    await dirHandle.close()
  }
}

function identityFromKey (key: Ed25519PrivateKey): Identity {
  const identity: Identity = { id: peerIdFromPrivateKey(key).toString(), auth: createAuth(key) }
  privateKeys.set(identity, key)
  return identity
}

// @libp2p/crypto's Ed25519 sign/verify are typed `T | Promise<T>` and build a
// KeyObject per call; Auth must be synchronous, so node:crypto is used directly
// with KeyObjects built once.
function createAuth (key: Ed25519PrivateKey): Auth {
  const signingKey = createPrivateKey({
    format: 'jwk',
    key: {
      kty: 'OKP',
      crv: 'Ed25519',
      d: Buffer.from(key.raw.subarray(0, ED25519_SEED_BYTES)).toString('base64url'),
      x: Buffer.from(key.publicKey.raw).toString('base64url')
    }
  })
  const publicKeys = new PublicKeyCache(PUBLIC_KEY_CACHE_ENTRIES)
  return {
    sign (bytes: Uint8Array): Uint8Array {
      return new Uint8Array(edSign(null, bytes, signingKey))
    },
    verify (signer: string, bytes: Uint8Array, sig: Uint8Array): boolean {
      if (sig.length !== ED25519_SIGNATURE_BYTES) return false
      const publicKey = publicKeys.get(signer)
      if (publicKey === null) return false
      try {
        return edVerify(null, bytes, publicKey, sig)
      } catch {
        return false
      }
    }
  }
}

// Peer id string → Ed25519 public key, or null when the id is malformed, not in
// its canonical form, or not an Ed25519 id. Bounded; the oldest entry goes first.
class PublicKeyCache {
  private readonly entries = new Map<string, KeyObject | null>()
  private readonly capacity: number

  constructor (capacity: number) {
    this.capacity = capacity
  }

  get (peer: string): KeyObject | null {
    const cached = this.entries.get(peer)
    if (cached !== undefined) return cached
    const parsed = parseEd25519PeerId(peer)
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next()
      if (oldest.done !== true) this.entries.delete(oldest.value)
    }
    this.entries.set(peer, parsed)
    return parsed
  }
}

function parseEd25519PeerId (peer: string): KeyObject | null {
  if (typeof peer !== 'string' || peer.length === 0 || peer.length > MAX_ID_CHARS) return null
  try {
    const id = peerIdFromString(peer)
    // Only the canonical string names a member: a CID spelling of the same key
    // would otherwise verify under a second id.
    if (id.type !== 'Ed25519' || id.toString() !== peer) return null
    return createPublicKey({
      format: 'jwk',
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(id.publicKey.raw).toString('base64url') }
    })
  } catch {
    return null
  }
}
