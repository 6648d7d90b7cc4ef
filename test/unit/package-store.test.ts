// Packages on disk (agent/runtime/package-store.ts): saved atomically, unpacked
// for the worker, checked again at load against the trusted keys of that start.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PackageStore } from '../../agent/runtime/package-store.ts'
import { buildBundle, deployerKeyFile, generateDeployerKey, openBundle, parseDeployerKeyFile } from '../../agent/runtime/package.ts'

const CART = new URL('../../examples/cart', import.meta.url).pathname
const KEY = parseDeployerKeyFile(deployerKeyFile(generateDeployerKey()), 'k')

test('a saved package loads again with its entry unpacked and its running mark', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'store-'))
  const store = new PackageStore(dataDir)
  const { bundle, announcement } = buildBundle(CART, KEY, 'all', 5)
  const opened = openBundle(bundle, new Set([KEY.publicKey]))
  assert.ok(opened.ok)
  if (!opened.ok) return
  const entry = store.save(opened.value, bundle)
  assert.is(entry, join(dataDir, 'packages', announcement.hash, 'cart.js'))
  assert.equal(JSON.parse(readFileSync(join(dataDir, 'packages', announcement.hash, 'package.json'), 'utf8')), { type: 'module' })
  store.markRunning([announcement.hash])
  const refused: string[] = []
  const loaded = new PackageStore(dataDir).load(new Set([KEY.publicKey]), null, (hash, refusal) => refused.push(`${hash}:${refusal}`))
  assert.equal(loaded.map((l) => [l.opened.signed.announcement.name, l.running]), [['cart', true]])
  assert.equal(refused, [])
  assert.equal(Buffer.from(store.bundle(announcement.hash) ?? []), Buffer.from(bundle))
  // A key no longer trusted at this start: the package is reported and not loaded.
  const later = new PackageStore(dataDir).load(new Set(), null, (hash, refusal) => refused.push(`${hash}:${refusal}`))
  assert.equal(later, [])
  assert.equal(refused, [`${announcement.hash}:untrusted`])
})

test('a bundle damaged on disk is refused at load (hash-mismatch), not run', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'store-'))
  const store = new PackageStore(dataDir)
  const { bundle, announcement } = buildBundle(CART, KEY, 'all', 5)
  const opened = openBundle(bundle, new Set([KEY.publicKey]))
  if (!opened.ok) throw new Error(opened.reason)
  store.save(opened.value, bundle)
  const path = join(dataDir, 'packages', `${announcement.hash}.pkg`)
  const damaged = Buffer.from(bundle)
  damaged[damaged.length - 5] ^= 1
  writeFileSync(path, damaged)
  const refused: string[] = []
  assert.equal(new PackageStore(dataDir).load(new Set([KEY.publicKey]), null, (_h, r) => refused.push(r)), [])
  assert.equal(refused, ['hash-mismatch'])
})

test.run()
