// Packages sealed with the cluster key (agent/runtime/package.ts): round trip,
// wrong key, no key, tampered ciphertext, and unsealed bundles unchanged.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, sign } from 'node:crypto'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  buildBundle, deployerKeyFile, generateDeployerKey, openBundle, packageKeyOf, parseDeployerKeyFile, sealArchive, splitBundle, unsealArchive
} from '../../agent/runtime/package.ts'
import type { Announcement, PackageKey } from '../../agent/runtime/package.ts'
import { generateClusterKey } from '../../agent/net/cluster-key.ts'
import { PackageStore } from '../../agent/runtime/package-store.ts'
import { SERVICE_BOOT_GIVE_UP_MS, SERVICE_CALL_TIMEOUT_MS, ServiceRunner } from '../../agent/runtime/service-runner.ts'

// These tests call a runner right after creating it: the call waits for the
// worker to load, where the agent's own calls wait only SERVICE_BOOT_TIMEOUT_MS
// (50 ms) and fail as unavailable until it has.
const PATIENT = { waitMs: 10_000, giveUpMs: SERVICE_BOOT_GIVE_UP_MS }

const CART = new URL('../../examples/cart', import.meta.url).pathname
const KEY = parseDeployerKeyFile(deployerKeyFile(generateDeployerKey()), 'test.key')
const TRUSTED = new Set([KEY.publicKey])
const CLUSTER = packageKeyOf(generateClusterKey())
const OTHER = packageKeyOf(generateClusterKey())

function open (bundle: Uint8Array, key: PackageKey | null): string {
  const opened = openBundle(bundle, TRUSTED, key)
  return opened.ok ? 'accepted' : `${opened.refusal}: ${opened.reason}`
}

// Re-signs a bundle whose sealed archive was changed, as a trusted deployer
// could: hash and signature are right, only the GCM tag can tell.
function resign (bundle: Uint8Array, archive: Uint8Array): Uint8Array {
  const parts = splitBundle(bundle)
  if (!parts.ok) throw new Error(parts.reason)
  const a = JSON.parse(Buffer.from(parts.value.header).toString('utf8')) as Announcement
  const header = Buffer.from(JSON.stringify({ ...a, hash: createHash('sha256').update(archive).digest('hex'), bytes: archive.length }))
  const length = Buffer.alloc(4)
  length.writeUInt32BE(header.length)
  return Buffer.concat([Buffer.from('EDGEPKG1'), length, header, sign(null, header, KEY.privateKey), archive])
}

test('the package key: HKDF of the PSK, stable, distinct per cluster; id is 16 hex digits', () => {
  const psk = generateClusterKey()
  assert.equal(packageKeyOf(psk), packageKeyOf(psk))
  assert.match(CLUSTER.id, /^[0-9a-f]{16}$/)
  assert.is.not(CLUSTER.id, OTHER.id)
  assert.is(CLUSTER.key.length, 32)
  // The AES key is not the PSK itself, nor the id's bytes.
  assert.is.not(CLUSTER.key.toString('hex'), Buffer.from(psk).toString('hex'))
})

test('round trip: a sealed bundle opens with the same cluster key, files as packed', () => {
  const plain = buildBundle(CART, KEY, 'all', 1000, 'cart')
  const sealed = buildBundle(CART, KEY, 'all', 1000, 'cart', CLUSTER)
  assert.is(sealed.announcement.clusterKeyId, CLUSTER.id)
  assert.is(sealed.announcement.name, 'cart')
  assert.is.not(sealed.announcement.hash, plain.announcement.hash)
  // The archive is an EAPKENC1 envelope with neither the code nor its gzip in it.
  const sealedParts = splitBundle(sealed.bundle)
  const plainParts = splitBundle(plain.bundle)
  if (!sealedParts.ok || !plainParts.ok) throw new Error('split')
  const envelope = Buffer.from(sealedParts.value.archive)
  assert.is(envelope.subarray(0, 8).toString(), 'EAPKENC1')
  assert.is(envelope.length, plainParts.value.archive.length + 8 + 12 + 16)
  assert.not.ok(envelope.includes(Buffer.from(plainParts.value.archive).subarray(20, 52)))
  assert.not.ok(Buffer.from(sealed.bundle).includes('export function'))
  const opened = openBundle(sealed.bundle, TRUSTED, CLUSTER)
  const reference = openBundle(plain.bundle, TRUSTED)
  assert.ok(opened.ok && reference.ok)
  if (!opened.ok || !reference.ok) return
  assert.ok(opened.value.sealed)
  assert.not.ok(reference.value.sealed)
  assert.equal(opened.value.manifest, reference.value.manifest)
  assert.equal([...opened.value.files].map(([p, c]) => [p, Buffer.from(c).toString('hex')]), [...reference.value.files].map(([p, c]) => [p, Buffer.from(c).toString('hex')]))
  // A fresh nonce each time: two seals of the same package differ.
  assert.is.not(buildBundle(CART, KEY, 'all', 1000, 'cart', CLUSTER).announcement.hash, sealed.announcement.hash)
})

test('another cluster key, or none: refused as cluster-key with the reason', () => {
  const { bundle } = buildBundle(CART, KEY, 'all', 1000, 'cart', CLUSTER)
  assert.match(open(bundle, OTHER), /^cluster-key: cart@1\.0\.0 is encrypted for another cluster/)
  assert.match(open(bundle, null), /^cluster-key: cart@1\.0\.0 is encrypted, and this agent has no cluster key/)
  // The signature is still checked first, without any key.
  const untrusted = openBundle(bundle, new Set(), null)
  assert.is(untrusted.ok ? 'accepted' : untrusted.refusal, 'untrusted')
})

test('tampered ciphertext: hash-mismatch as signed; re-signed, the GCM tag refuses it', () => {
  const { bundle } = buildBundle(CART, KEY, 'all', 1000, 'cart', CLUSTER)
  const flipped = Buffer.from(bundle)
  flipped[flipped.length - 30] ^= 1
  assert.match(open(flipped, CLUSTER), /^hash-mismatch/)
  const parts = splitBundle(bundle)
  if (!parts.ok) throw new Error(parts.reason)
  const archive = Buffer.from(parts.value.archive)
  archive[archive.length - 30] ^= 1
  assert.match(open(resign(bundle, archive), CLUSTER), /^decrypt-failed: cart@1\.0\.0: the sealed archive fails its AES-GCM tag/)
  const tag = Buffer.from(parts.value.archive)
  tag[tag.length - 1] ^= 1
  assert.match(open(resign(bundle, tag), CLUSTER), /^decrypt-failed/)
  assert.match(open(resign(bundle, archive.subarray(0, 20)), CLUSTER), /^malformed/)
  const direct = unsealArchive(sealArchive(Buffer.from('x'), CLUSTER), OTHER)
  assert.is(direct.ok ? 'ok' : direct.refusal, 'decrypt-failed')
})

test('unsealed bundles are unchanged: no clusterKeyId, open with or without a key', () => {
  const { bundle, announcement } = buildBundle(CART, KEY, 'all', 1000, 'cart')
  assert.is('clusterKeyId' in announcement, false)
  assert.not.ok(Buffer.from(bundle).includes('clusterKeyId'))
  assert.is(open(bundle, null), 'accepted')
  assert.is(open(bundle, CLUSTER), 'accepted')
})

test('a stored sealed package stays sealed on disk; a restart without the key refuses it', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'seal-store-'))
  const { bundle, announcement } = buildBundle(CART, KEY, 'all', 5, 'cart', CLUSTER)
  const opened = openBundle(bundle, TRUSTED, CLUSTER)
  if (!opened.ok) throw new Error(opened.reason)
  const store = new PackageStore(dataDir)
  const code = store.save(opened.value, bundle)
  assert.equal(Buffer.from(store.bundle(announcement.hash) ?? []), Buffer.from(bundle))
  // Nothing unpacked: the code is handed over in memory.
  assert.not.ok(existsSync(join(dataDir, 'packages', announcement.hash)))
  assert.is(typeof code === 'string' ? code : code.entry, 'cart.js')
  const refused: string[] = []
  assert.is(new PackageStore(dataDir).load(TRUSTED, CLUSTER, (_h, r) => refused.push(r)).length, 1)
  assert.equal(new PackageStore(dataDir).load(TRUSTED, null, (_h, r) => refused.push(r)), [])
  assert.equal(new PackageStore(dataDir).load(TRUSTED, OTHER, (_h, r) => refused.push(r)), [])
  assert.equal(refused, ['cluster-key', 'cluster-key'])
})

test('a sealed package runs from memory: relative imports and JSON resolve among its files only', () => {
  const opened = openBundle(buildBundle(CART, KEY, 'all', 5, 'cart', CLUSTER).bundle, TRUSTED, CLUSTER)
  if (!opened.ok) throw new Error(opened.reason)
  const cart = new ServiceRunner('cart@1.0.0', { files: opened.value.files, entry: opened.value.manifest.entry }, SERVICE_CALL_TIMEOUT_MS, PATIENT)
  try {
    // validate() reads CATALOG from ./catalog.js, loaded from memory.
    const refused = cart.call('validate', [{ add: { sku: 'pear', qty: 1 } }])
    assert.match(refused.ok ? String(refused.value) : refused.error, /unknown sku "pear"/)
    assert.equal(cart.call('apply', [{ items: {}, orders: 0 }, { add: { sku: 'apple', qty: 2 } }]), { ok: true, value: { items: { apple: 2 }, orders: 0 }, missing: false })
  } finally {
    cart.stop()
  }
  const files = new Map([
    ['main.js', Buffer.from("import data from './sub/data.json' with { type: 'json' }\nimport { createHash } from 'node:crypto'\nexport const read = () => data.n + createHash('sha256').update('').digest('hex').length\nimport { x } from '../../../x.js'\nexport const escape = () => x")],
    ['sub/data.json', Buffer.from('{"n": 1}')],
    ['x.js', Buffer.from("export const x = 'inside'")]
  ])
  const runner = new ServiceRunner('mem@1', { files, entry: 'main.js' }, SERVICE_CALL_TIMEOUT_MS, PATIENT)
  try {
    assert.equal(runner.call('read', []), { ok: true, value: 65, missing: false })
    // ../ cannot climb out of the package: the import resolves to its own root.
    assert.equal(runner.call('escape', []), { ok: true, value: 'inside', missing: false })
  } finally {
    runner.stop()
  }
  const broken = new ServiceRunner('broken@1', { files: new Map([['main.js', Buffer.from("import './gone.js'")]]), entry: 'main.js' }, SERVICE_CALL_TIMEOUT_MS, PATIENT)
  try {
    const failed = broken.call('apply', [])
    assert.match(failed.ok ? 'loaded' : failed.error, /the package has no file gone\.js/)
  } finally {
    broken.stop()
  }
})

test.run()
