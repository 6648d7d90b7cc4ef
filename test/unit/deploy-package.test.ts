// Service packages (agent/runtime/package.ts): the archive, the signature, and
// every refusal a receiving agent makes.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { randomBytes } from 'node:crypto'
import {
  buildBundle, generateDeployerKey, MAX_BUNDLE_BYTES, openBundle, packArchive, parseDeployerKeyFile, deployerKeyFile, splitBundle, unpackArchive
} from '../../agent/runtime/package.ts'
import type { DeployerKey } from '../../agent/runtime/package.ts'
import { buildConfig } from '../../agent/config.ts'
import { readTrustedDeployers } from '../../agent/cli/start.ts'

const CART = new URL('../../examples/cart', import.meta.url).pathname

function key (): DeployerKey {
  const k = generateDeployerKey()
  return parseDeployerKeyFile(deployerKeyFile(k), 'test.key')
}

const KEY = key()
const TRUSTED = new Set([KEY.publicKey])

function refusal (bundle: Uint8Array, trusted: ReadonlySet<string> = TRUSTED): string {
  const opened = openBundle(bundle, trusted)
  return opened.ok ? 'accepted' : opened.refusal
}

test('a packed example opens with its manifest and files; equal files give equal hashes', () => {
  const { bundle, announcement } = buildBundle(CART, KEY, 'hub-per-region', 1000, 'cart')
  const opened = openBundle(bundle, TRUSTED)
  assert.ok(opened.ok)
  if (!opened.ok) return
  assert.equal(opened.value.manifest, { name: 'cart', version: '1.0.0', entry: 'cart.js' })
  assert.equal([...opened.value.files.keys()], ['cart.js', 'catalog.js', 'manifest.json'])
  assert.is(announcement.policy, 'hub-per-region')
  assert.is(announcement.deployer, KEY.publicKey)
  assert.is(buildBundle(CART, KEY, 'all', 2000).announcement.hash, announcement.hash)
})

test('refusals: untrusted key, forged signature, tampered archive, truncation, wrong magic', () => {
  const { bundle } = buildBundle(CART, KEY, 'all', 1000)
  assert.is(refusal(bundle, new Set([key().publicKey])), 'untrusted')
  // Forged: another key signs an announcement naming the trusted key.
  const mallory = key()
  const forged = buildBundle(CART, { publicKey: KEY.publicKey, privateKey: mallory.privateKey }, 'all', 1000).bundle
  assert.is(refusal(forged), 'bad-signature')
  // Tampered: one byte of the archive flipped.
  const tampered = Buffer.from(bundle)
  tampered[tampered.length - 10] ^= 0xff
  assert.is(refusal(tampered), 'hash-mismatch')
  assert.is(refusal(bundle.subarray(0, bundle.length - 1)), 'hash-mismatch')
  // Announcement edited after signing (a different policy).
  const text = Buffer.from(bundle).toString('latin1').replace('"policy":"all"', '"policy":"nil"')
  assert.is(refusal(Buffer.from(text, 'latin1')), 'bad-signature')
  assert.is(refusal(Buffer.from('not a package at all')), 'malformed')
  assert.is(refusal(new Uint8Array(MAX_BUNDLE_BYTES + 1)), 'too-large')
})

test('a manifest that disagrees with the signed name or version is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pkg-'))
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'cart', version: '2.0.0', entry: 'main.js' }))
  writeFileSync(join(dir, 'main.js'), 'export const apply = (s) => s\n')
  const { bundle } = buildBundle(dir, KEY, 'all', 1)
  const parts = splitBundle(bundle)
  assert.ok(parts.ok)
  assert.is(refusal(bundle), 'accepted')
  assert.throws(() => buildBundle(dir, KEY, 'all', 1, 'shop'), /--name shop does not match the manifest's name cart/)
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'cart', version: '2.0.0', entry: 'missing.js' }))
  assert.throws(() => buildBundle(dir, KEY, 'all', 1), /entry missing.js is not in/)
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'Cart!', version: '2', entry: 'main.js' }))
  assert.throws(() => buildBundle(dir, KEY, 'all', 1), /'name' must be/)
})

test('archives: paths are checked, a gzip bomb stops at the unpacked limit', () => {
  assert.throws(() => packArchive(new Map([['../evil.js', new Uint8Array(1)]])), /cannot pack/)
  const ok = unpackArchive(packArchive(new Map([['a/b.js', Buffer.from('x')]])))
  assert.ok(ok.ok)
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024))
  const opened = unpackArchive(bomb)
  assert.not.ok(opened.ok)
  if (!opened.ok) assert.match(opened.reason, /does not decompress/)
  assert.not.ok(unpackArchive(gzipSync(Buffer.from('EAPKAR1\n\u0000\u0001'))).ok)
})

test('a package over the size limit is refused when packed, naming the limit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pkg-'))
  mkdirSync(join(dir, 'data'))
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'big', version: '1', entry: 'main.js' }))
  writeFileSync(join(dir, 'main.js'), 'export const apply = (s) => s\n')
  // Random bytes do not compress: 5 MiB stays over 4 MiB packed.
  writeFileSync(join(dir, 'data', 'blob.bin'), randomBytes(5 * 1024 * 1024))
  assert.throws(() => buildBundle(dir, KEY, 'all', 1), /over the 4194304-byte limit/)
})

test('trusted deployers: keys from flags, key files or lists; a bad key is refused by name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keys-'))
  const file = join(dir, 'deployer.key')
  writeFileSync(file, deployerKeyFile(generateDeployerKey()))
  const fromKeyFile = buildConfig({}, { trustedDeployers: readTrustedDeployers(file) }).trustedDeployers
  assert.is(fromKeyFile.length, 1)
  assert.match(fromKeyFile[0], /^[0-9a-f]{64}$/)
  const list = join(dir, 'trusted.txt')
  writeFileSync(list, `# ops team\n${KEY.publicKey}\n\n${fromKeyFile[0].toUpperCase()}\n`)
  assert.equal(buildConfig({}, { trustedDeployers: readTrustedDeployers(list) }).trustedDeployers, [KEY.publicKey, fromKeyFile[0]])
  assert.equal(buildConfig({}, { trustedDeployers: readTrustedDeployers(`${KEY.publicKey},${KEY.publicKey}`) }).trustedDeployers, [KEY.publicKey])
  assert.throws(() => buildConfig({}, { trustedDeployers: 'abc' }), /'trustedDeployers': "abc" is not a deployer public key/)
  assert.throws(() => readTrustedDeployers(join(dir, 'missing')), /neither 64-hex keys nor a readable file \(ENOENT\)/)
  assert.equal(buildConfig({}, {}).trustedDeployers, [])
})

test.run()
