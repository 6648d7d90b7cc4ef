// Packages sealed with the cluster key (agent/runtime/package.ts): round trip,
// wrong key, no key, tampered ciphertext, and unsealed bundles unchanged.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, sign } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  buildBundle, deployerKeyFile, generateDeployerKey, openBundle, packageKeyOf, parseDeployerKeyFile, sealArchive, splitBundle, unsealArchive
} from '../../agent/runtime/package.ts'
import type { Announcement, PackageKey } from '../../agent/runtime/package.ts'
import { generateClusterKey } from '../../agent/net/cluster-key.ts'
import { PackageStore } from '../../agent/runtime/package-store.ts'

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
  store.save(opened.value, bundle)
  assert.equal(Buffer.from(store.bundle(announcement.hash) ?? []), Buffer.from(bundle))
  const refused: string[] = []
  assert.is(new PackageStore(dataDir).load(TRUSTED, CLUSTER, (_h, r) => refused.push(r)).length, 1)
  assert.equal(new PackageStore(dataDir).load(TRUSTED, null, (_h, r) => refused.push(r)), [])
  assert.equal(new PackageStore(dataDir).load(TRUSTED, OTHER, (_h, r) => refused.push(r)), [])
  assert.equal(refused, ['cluster-key', 'cluster-key'])
})

test.run()
