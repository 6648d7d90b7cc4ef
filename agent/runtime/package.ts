// Service packages (M3.1): a directory with manifest.json ({name, version,
// entry}) and ES module code, packed into one compressed archive, content-addressed
// by SHA-256 and signed with a deployer's Ed25519 key.
//
// A *bundle* is what travels and what agents store, byte for byte:
//
//   "EDGEPKG1"                       8 bytes, magic
//   u32 big-endian H                 length of the announcement
//   announcement                     H bytes of UTF-8 JSON (see Announcement)
//   signature                        64 bytes, Ed25519 over the announcement bytes
//   archive                          the rest: gzip (node:zlib) of the container
//
// The container inside the gzip, so that no tar implementation is needed:
//
//   "EAPKAR1\n"                      8 bytes, magic
//   u16 N                            number of files
//   N × { u16 P, P bytes of UTF-8 path, u32 S, S bytes of content }
//
// All integers big-endian. The announcement names the archive's SHA-256 and
// length, so a bundle is checked in this order: size, magic, signature by a
// trusted key, hash, then the unpacked manifest against the announcement.
// The announcement alone (header + signature, a few hundred bytes) is what
// agents exchange to learn of a deploy; the archive follows only where needed.
//
// Encryption with the cluster key (M3.1, "optionally encrypted"): with
// `edge-agent deploy --cluster-key <file>` the *archive* is replaced by a sealed
// envelope, and everything else stays as above:
//
//   "EAPKENC1"                       8 bytes, magic
//   nonce                            12 random bytes
//   ciphertext                       AES-256-GCM of the gzip archive
//   tag                              16 bytes, the GCM tag
//
// The AES key is HKDF-SHA256(cluster PSK, salt: none, info:
// "edge-agent package key v1", 32 bytes). The announcement stays in clear and
// signed (name, version, policy and deployer must be readable for policies and
// pulls) and gains `clusterKeyId`: 16 hex digits of HKDF-SHA256(PSK, info:
// "edge-agent package key id v1"), which tells an agent whether it holds the
// key before it tries. `hash` and `bytes` are those of the envelope, so the
// signature and the content address are checked without the key: a changed
// byte is a hash-mismatch on any agent. An agent without the key, or
// with another one, refuses the bundle (`cluster-key`); an envelope whose GCM
// tag fails is refused (`decrypt-failed`). Unsealed bundles are unchanged.

import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, hkdfSync, randomBytes, sign, verify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { gunzipSync, gzipSync } from 'node:zlib'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { MAX_BUNDLE_BYTES } from '../../protocol/limits.ts'
import { clusterKeyId } from '../net/cluster-key.ts'

// ---- limits (each refused, never truncated) ---------------------------------

// A bundle on the wire and on disk (protocol/limits.ts says why 4 MiB).
export { MAX_BUNDLE_BYTES }
// Unpacked content: bounds a gzip bomb (the ratio 16:1 covers text code).
export const MAX_UNPACKED_BYTES = 16 * 1024 * 1024
export const MAX_FILES = 512
export const MAX_PATH_CHARS = 256
export const MAX_ANNOUNCEMENT_BYTES = 4 * 1024
export const SIGNATURE_BYTES = 64
const BUNDLE_MAGIC = Buffer.from('EDGEPKG1')
const ARCHIVE_MAGIC = Buffer.from('EAPKAR1\n')
const SEALED_MAGIC = Buffer.from('EAPKENC1')
const NONCE_BYTES = 12
const TAG_BYTES = 16
// HKDF info strings (fixed: changing one makes every sealed package unreadable).
export const PACKAGE_KEY_INFO = 'edge-agent package key v1'
const KEY_ID = /^[0-9a-f]{16}$/
export const MANIFEST_FILE = 'manifest.json'

export const PACKAGE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
export const PACKAGE_VERSION_PATTERN = /^[0-9A-Za-z.+_-]{1,32}$/
const PATH_PATTERN = /^[A-Za-z0-9._@-]+(\/[A-Za-z0-9._@-]+)*$/
const HEX_KEY = /^[0-9a-f]{64}$/

export type Manifest = { name: string; version: string; entry: string }

// What a deployer signs: which package, which code (by hash), where it goes.
export type Announcement = {
  name: string
  version: string
  // SHA-256 of the archive, hex: the package's identity.
  hash: string
  bytes: number
  policy: string
  // The deployer's Ed25519 public key, 32 bytes as hex.
  deployer: string
  // The deployer's clock when it signed: orders two deploys of one version name.
  issuedAtMs: number
  // Present when the archive is sealed with a cluster key: that key's id.
  clusterKeyId?: string
}

export type SignedAnnouncement = { announcement: Announcement; header: Uint8Array; sig: Uint8Array }

// 'storage': the package checked out, but this agent could not write it (a
// full disk, an I/O error).
export type Refusal = 'malformed' | 'too-large' | 'untrusted' | 'bad-signature' | 'hash-mismatch' | 'manifest-mismatch' | 'cluster-key' | 'decrypt-failed' | 'storage'
export const REFUSALS: readonly Refusal[] = ['malformed', 'too-large', 'untrusted', 'bad-signature', 'hash-mismatch', 'manifest-mismatch', 'cluster-key', 'decrypt-failed', 'storage']

export type Checked<T> = { ok: true; value: T } | { ok: false; refusal: Refusal; reason: string }

function refuse (refusal: Refusal, reason: string): { ok: false; refusal: Refusal; reason: string } {
  return { ok: false, refusal, reason }
}

// ---- deployer keys ----------------------------------------------------------

export type DeployerKey = { publicKey: string; privateKey: KeyObject }

export function generateDeployerKey (): { publicKey: string; privateKeyPem: string } {
  const pair = generateKeyPairSync('ed25519')
  return { publicKey: rawPublicHex(pair.publicKey), privateKeyPem: pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() }
}

// The key file `edge-agent keygen --deployer` writes: JSON with both halves.
export function deployerKeyFile (key: { publicKey: string; privateKeyPem: string }): string {
  return JSON.stringify({ type: 'edge-agent-deployer-key', publicKey: key.publicKey, privateKey: key.privateKeyPem }, null, 2) + '\n'
}

export function parseDeployerKeyFile (text: string, path: string): DeployerKey {
  let parsed: { type?: unknown; privateKey?: unknown }
  try {
    parsed = JSON.parse(text) as typeof parsed
  } catch {
    throw new Error(`${path} is not a deployer key file (not JSON); make one with edge-agent keygen --deployer`)
  }
  if (parsed.type !== 'edge-agent-deployer-key' || typeof parsed.privateKey !== 'string') {
    throw new Error(`${path} is not a deployer key file; make one with edge-agent keygen --deployer`)
  }
  const privateKey = createPrivateKey(parsed.privateKey)
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`${path} does not hold an Ed25519 key`)
  return { publicKey: rawPublicHex(createPublicKey(privateKey)), privateKey }
}

function rawPublicHex (key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' })
  return Buffer.from(String(jwk.x), 'base64url').toString('hex')
}

function publicKeyOf (hex: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(hex, 'hex').toString('base64url') }, format: 'jwk' })
}

// ---- cluster key (sealing) ---------------------------------------------------

// What a cluster PSK (agent/net/cluster-key.ts) gives packages: an AES-256 key
// and a public id for it, each by HKDF-SHA256 with its own info string.
export type PackageKey = { id: string; key: Buffer }

export function packageKeyOf (psk: Uint8Array): PackageKey {
  const derive = (info: string, bytes: number): Buffer => Buffer.from(hkdfSync('sha256', psk, Buffer.alloc(0), info, bytes))
  return { id: clusterKeyId(psk), key: derive(PACKAGE_KEY_INFO, 32) }
}

export function sealArchive (archive: Uint8Array, key: PackageKey): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key.key, nonce)
  const body = Buffer.concat([cipher.update(archive), cipher.final()])
  return Buffer.concat([SEALED_MAGIC, nonce, body, cipher.getAuthTag()])
}

export function unsealArchive (sealed: Uint8Array, key: PackageKey): Checked<Uint8Array> {
  const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length)
  if (b.length < SEALED_MAGIC.length + NONCE_BYTES + TAG_BYTES || !b.subarray(0, 8).equals(SEALED_MAGIC)) return refuse('malformed', 'the sealed archive lacks its EAPKENC1 header')
  const nonce = b.subarray(8, 8 + NONCE_BYTES)
  const decipher = createDecipheriv('aes-256-gcm', key.key, nonce)
  decipher.setAuthTag(b.subarray(b.length - TAG_BYTES))
  try {
    return { ok: true, value: Buffer.concat([decipher.update(b.subarray(8 + NONCE_BYTES, b.length - TAG_BYTES)), decipher.final()]) }
  } catch {
    return refuse('decrypt-failed', 'the sealed archive fails its AES-GCM tag (damaged before it was signed, or not sealed with this cluster key)')
  }
}

// ---- packing ----------------------------------------------------------------

export function readManifest (text: string, where: string): Manifest {
  let m: Record<string, unknown>
  try {
    m = JSON.parse(text) as Record<string, unknown>
  } catch (error) {
    throw new Error(`${where}: not valid JSON (${(error as Error).message})`)
  }
  if (typeof m !== 'object' || m === null) throw new Error(`${where}: must be a JSON object`)
  if (typeof m.name !== 'string' || !PACKAGE_NAME_PATTERN.test(m.name)) throw new Error(`${where}: 'name' must be 1-64 lowercase letters, digits, '.', '_' or '-' (got ${JSON.stringify(m.name)})`)
  if (typeof m.version !== 'string' || !PACKAGE_VERSION_PATTERN.test(m.version)) throw new Error(`${where}: 'version' must be 1-32 of [0-9A-Za-z.+_-] (got ${JSON.stringify(m.version)})`)
  if (typeof m.entry !== 'string' || !PATH_PATTERN.test(m.entry) || !/\.(mjs|js)$/.test(m.entry)) throw new Error(`${where}: 'entry' must be a relative path to a .js or .mjs module (got ${JSON.stringify(m.entry)})`)
  return { name: m.name, version: m.version, entry: m.entry }
}

// Reads every regular file under `dir` (skipping dot-files and node_modules).
export function readPackageDir (dir: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>()
  const walk = (path: string): void => {
    for (const name of readdirSync(path).sort()) {
      if (name.startsWith('.') || name === 'node_modules') continue
      const full = join(path, name)
      const stat = statSync(full)
      if (stat.isDirectory()) walk(full)
      else if (stat.isFile()) files.set(relative(dir, full).split(sep).join('/'), readFileSync(full))
      if (files.size > MAX_FILES) throw new Error(`${dir} holds more than ${MAX_FILES} files`)
    }
  }
  walk(dir)
  return files
}

export function packArchive (files: Map<string, Uint8Array>): Uint8Array {
  const parts: Buffer[] = [ARCHIVE_MAGIC, u16(files.size)]
  let total = 0
  for (const [path, content] of [...files].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
    if (!PATH_PATTERN.test(path) || path.length > MAX_PATH_CHARS || path.split('/').includes('..')) throw new Error(`cannot pack ${JSON.stringify(path)}: paths are [A-Za-z0-9._@-] segments of at most ${MAX_PATH_CHARS} characters`)
    total += content.length
    const name = Buffer.from(path, 'utf8')
    parts.push(u16(name.length), name, u32(content.length), Buffer.from(content))
  }
  if (total > MAX_UNPACKED_BYTES) throw new Error(`the package's files total ${total} bytes, over the ${MAX_UNPACKED_BYTES}-byte limit`)
  // mtime 0 in the gzip header is node's default, so equal files give equal hashes.
  return gzipSync(Buffer.concat(parts), { level: 9 })
}

export function unpackArchive (archive: Uint8Array): Checked<Map<string, Uint8Array>> {
  let raw: Buffer
  try {
    raw = gunzipSync(archive, { maxOutputLength: MAX_UNPACKED_BYTES + 64 * 1024 })
  } catch (error) {
    return refuse('malformed', `the archive does not decompress: ${(error as Error).message}`)
  }
  if (raw.length < 10 || !raw.subarray(0, 8).equals(ARCHIVE_MAGIC)) return refuse('malformed', 'the archive lacks its EAPKAR1 header')
  const count = raw.readUInt16BE(8)
  if (count > MAX_FILES) return refuse('malformed', `the archive holds ${count} files, over ${MAX_FILES}`)
  const files = new Map<string, Uint8Array>()
  let at = 10
  for (let i = 0; i < count; i++) {
    if (at + 2 > raw.length) return refuse('malformed', 'the archive is truncated')
    const nameLength = raw.readUInt16BE(at)
    at += 2
    if (nameLength > MAX_PATH_CHARS || at + nameLength + 4 > raw.length) return refuse('malformed', 'the archive has a bad path entry')
    const path = raw.subarray(at, at + nameLength).toString('utf8')
    at += nameLength
    if (!PATH_PATTERN.test(path) || path.split('/').includes('..') || files.has(path)) return refuse('malformed', `the archive has a bad or repeated path ${JSON.stringify(path.slice(0, 80))}`)
    const size = raw.readUInt32BE(at)
    at += 4
    if (at + size > raw.length) return refuse('malformed', 'the archive is truncated')
    files.set(path, raw.subarray(at, at + size))
    at += size
  }
  if (at !== raw.length) return refuse('malformed', 'the archive has bytes after its last file')
  return { ok: true, value: files }
}

export function sha256Hex (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

// Packs `dir` into a signed bundle for `policy`. `name` (if given) must match
// the manifest's: a deploy names what it means to ship.
// With `seal`, the archive is encrypted with that cluster key.
export function buildBundle (dir: string, key: DeployerKey, policy: string, issuedAtMs: number, name?: string, seal?: PackageKey): { bundle: Uint8Array; announcement: Announcement } {
  const files = readPackageDir(dir)
  const manifestBytes = files.get(MANIFEST_FILE)
  if (manifestBytes === undefined) throw new Error(`${dir} has no ${MANIFEST_FILE} (it needs {"name", "version", "entry"})`)
  const manifest = readManifest(Buffer.from(manifestBytes).toString('utf8'), join(dir, MANIFEST_FILE))
  if (name !== undefined && name !== manifest.name) throw new Error(`--name ${name} does not match the manifest's name ${manifest.name}`)
  if (!files.has(manifest.entry)) throw new Error(`the manifest's entry ${manifest.entry} is not in ${dir}`)
  const packed = packArchive(files)
  const archive = seal === undefined ? packed : sealArchive(packed, seal)
  const announcement: Announcement = {
    name: manifest.name, version: manifest.version, hash: sha256Hex(archive), bytes: archive.length, policy, deployer: key.publicKey, issuedAtMs
  }
  if (seal !== undefined) announcement.clusterKeyId = seal.id
  const header = Buffer.from(JSON.stringify(announcement), 'utf8')
  const sig = sign(null, header, key.privateKey)
  const bundle = Buffer.concat([BUNDLE_MAGIC, u32(header.length), header, sig, archive])
  if (bundle.length > MAX_BUNDLE_BYTES) throw new Error(`the package is ${bundle.length} bytes packed, over the ${MAX_BUNDLE_BYTES}-byte limit (MAX_BUNDLE_BYTES)`)
  return { bundle, announcement }
}

// ---- checking -----------------------------------------------------------------

// Checks an announcement's shape and its signature by a trusted key.
export function checkAnnouncement (header: Uint8Array, sig: Uint8Array, trusted: ReadonlySet<string>): Checked<Announcement> {
  if (header.length > MAX_ANNOUNCEMENT_BYTES) return refuse('too-large', `announcement of ${header.length} bytes exceeds ${MAX_ANNOUNCEMENT_BYTES}`)
  if (sig.length !== SIGNATURE_BYTES) return refuse('malformed', `signature of ${sig.length} bytes (an Ed25519 signature has 64)`)
  let a: Record<string, unknown>
  try {
    a = JSON.parse(Buffer.from(header).toString('utf8')) as Record<string, unknown>
  } catch {
    return refuse('malformed', 'the announcement is not JSON')
  }
  if (typeof a !== 'object' || a === null) return refuse('malformed', 'the announcement is not an object')
  const problem = announcementProblem(a)
  if (problem !== null) return refuse('malformed', `announcement: ${problem}`)
  const ann = a as unknown as Announcement
  if (!trusted.has(ann.deployer)) return refuse('untrusted', `deployer key ${ann.deployer.slice(0, 16)}… is not in this agent's trusted deployers`)
  let good = false
  try {
    good = verify(null, header, publicKeyOf(ann.deployer), sig)
  } catch {
    good = false
  }
  if (!good) return refuse('bad-signature', `the signature on ${ann.name}@${ann.version} does not verify with the deployer's key`)
  return { ok: true, value: ann }
}

function announcementProblem (a: Record<string, unknown>): string | null {
  if (typeof a.name !== 'string' || !PACKAGE_NAME_PATTERN.test(a.name)) return 'bad name'
  if (typeof a.version !== 'string' || !PACKAGE_VERSION_PATTERN.test(a.version)) return 'bad version'
  if (typeof a.hash !== 'string' || !HEX_KEY.test(a.hash)) return 'bad hash'
  if (typeof a.bytes !== 'number' || !Number.isSafeInteger(a.bytes) || a.bytes < 0 || a.bytes > MAX_BUNDLE_BYTES) return 'bad byte count'
  if (typeof a.policy !== 'string' || a.policy.length > 1024) return 'bad policy'
  if (typeof a.deployer !== 'string' || !HEX_KEY.test(a.deployer)) return 'bad deployer key'
  if (typeof a.issuedAtMs !== 'number' || !Number.isSafeInteger(a.issuedAtMs) || a.issuedAtMs < 0) return 'bad issuedAtMs'
  if (a.clusterKeyId !== undefined && (typeof a.clusterKeyId !== 'string' || !KEY_ID.test(a.clusterKeyId))) return 'bad clusterKeyId'
  return null
}

// `archive` is as signed (sealed or not); `sealed` says whether it was encrypted.
export type OpenedBundle = { signed: SignedAnnouncement; archive: Uint8Array; sealed: boolean; manifest: Manifest; files: Map<string, Uint8Array> }

// An agent's package keys: none, one, or one per key of its ring (the cluster
// key and the previous ones it still accepts), any of which opens a package.
export type PackageKeys = PackageKey | readonly PackageKey[] | null

function keyFor (keyId: string, keys: PackageKeys): PackageKey | null {
  if (keys === null) return null
  if (!Array.isArray(keys)) return (keys as PackageKey).id === keyId ? keys as PackageKey : null
  return (keys as readonly PackageKey[]).find((k) => k.id === keyId) ?? null
}

// Whether this agent can open a package sealed for `keyId` (null: not sealed).
export function clusterKeyProblem (keyId: string | undefined, keys: PackageKeys): string | null {
  if (keyId === undefined || keyFor(keyId, keys) !== null) return null
  const held = keys === null ? [] : Array.isArray(keys) ? (keys as readonly PackageKey[]).map((k) => k.id) : [(keys as PackageKey).id]
  return held.length === 0 ? 'encrypted, and this agent has no cluster key (start it with --cluster-key)' : `encrypted for another cluster (key id ${keyId}; this agent's ${held.length === 1 ? `is ${held[0]}` : `are ${held.join(', ')}`})`
}

// Splits a bundle into its parts without checking the signature.
export function splitBundle (bundle: Uint8Array): Checked<{ header: Uint8Array; sig: Uint8Array; archive: Uint8Array }> {
  if (bundle.length > MAX_BUNDLE_BYTES) return refuse('too-large', `package of ${bundle.length} bytes exceeds the ${MAX_BUNDLE_BYTES}-byte limit`)
  const b = Buffer.from(bundle.buffer, bundle.byteOffset, bundle.length)
  if (b.length < 12 || !b.subarray(0, 8).equals(BUNDLE_MAGIC)) return refuse('malformed', 'not an edge-agent package (no EDGEPKG1 header)')
  const h = b.readUInt32BE(8)
  if (h > MAX_ANNOUNCEMENT_BYTES || 12 + h + SIGNATURE_BYTES > b.length) return refuse('malformed', 'the package header is truncated or too long')
  return { ok: true, value: { header: b.subarray(12, 12 + h), sig: b.subarray(12 + h, 12 + h + SIGNATURE_BYTES), archive: b.subarray(12 + h + SIGNATURE_BYTES) } }
}

// Every check a receiving agent makes before storing a bundle. `keys` are this
// agent's package keys (from --cluster-key and --cluster-key-previous), null
// without any.
export function openBundle (bundle: Uint8Array, trusted: ReadonlySet<string>, keys: PackageKeys = null): Checked<OpenedBundle> {
  const parts = splitBundle(bundle)
  if (!parts.ok) return parts
  const { header, sig, archive } = parts.value
  const ann = checkAnnouncement(header, sig, trusted)
  if (!ann.ok) return ann
  const a = ann.value
  if (archive.length !== a.bytes || sha256Hex(archive) !== a.hash) return refuse('hash-mismatch', `the archive of ${a.name}@${a.version} does not match the signed SHA-256 (tampered or truncated)`)
  const problem = clusterKeyProblem(a.clusterKeyId, keys)
  if (problem !== null) return refuse('cluster-key', `${a.name}@${a.version} is ${problem}`)
  let plain: Uint8Array = archive
  const key = a.clusterKeyId === undefined ? null : keyFor(a.clusterKeyId, keys)
  if (key !== null) {
    const unsealed = unsealArchive(archive, key)
    if (!unsealed.ok) return refuse(unsealed.refusal, `${a.name}@${a.version}: ${unsealed.reason}`)
    plain = unsealed.value
  }
  const files = unpackArchive(plain)
  if (!files.ok) return files
  const manifestBytes = files.value.get(MANIFEST_FILE)
  if (manifestBytes === undefined) return refuse('manifest-mismatch', `the archive has no ${MANIFEST_FILE}`)
  let manifest: Manifest
  try {
    manifest = readManifest(Buffer.from(manifestBytes).toString('utf8'), MANIFEST_FILE)
  } catch (error) {
    return refuse('manifest-mismatch', (error as Error).message)
  }
  if (manifest.name !== a.name || manifest.version !== a.version) return refuse('manifest-mismatch', `the manifest says ${manifest.name}@${manifest.version}, the signature ${a.name}@${a.version}`)
  if (!files.value.has(manifest.entry)) return refuse('manifest-mismatch', `the entry ${manifest.entry} is not in the archive`)
  return { ok: true, value: { signed: { announcement: a, header: Buffer.from(header), sig: Buffer.from(sig) }, archive, sealed: a.clusterKeyId !== undefined, manifest, files: files.value } }
}

// A signed announcement as bytes: u32 header length, header, signature.
export function encodeSigned (s: SignedAnnouncement): Uint8Array {
  return Buffer.concat([u32(s.header.length), s.header, s.sig])
}

export function decodeSigned (bytes: Uint8Array, at: number): { header: Uint8Array; sig: Uint8Array; next: number } | null {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  if (at + 4 > b.length) return null
  const h = b.readUInt32BE(at)
  if (h > MAX_ANNOUNCEMENT_BYTES || at + 4 + h + SIGNATURE_BYTES > b.length) return null
  return { header: b.subarray(at + 4, at + 4 + h), sig: b.subarray(at + 4 + h, at + 4 + h + SIGNATURE_BYTES), next: at + 4 + h + SIGNATURE_BYTES }
}

function u16 (n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

function u32 (n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
