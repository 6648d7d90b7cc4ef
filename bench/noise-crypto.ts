// Noise's ChaCha20-Poly1305 per message: @chainsafe/libp2p-noise's default crypto
// against the agent's (agent/net/noise-crypto.ts: each key prepared once,
// node:crypto from 640 bytes), side by side in one process, alternating, the
// median of several rounds each. Sizes: a lone small frame (an ack), one
// entry to a standby, either side of the default's 1,200-byte switch, and a
// batch of 64 entries (an owner's group commit at 64 terminals).
//
// Run: node bench/noise-crypto.ts   (writes bench/results/noise-crypto.md)

import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { libraryNoiseCrypto, noiseCrypto } from '../agent/net/noise-crypto.ts'
import type { NoiseCrypto } from '../agent/net/noise-crypto.ts'
import { fmt, median } from './lib.ts'

const SIZES = [100, 450, 1100, 1300, 24_000]
const ROUNDS = 7

function usPerCall (crypto: NoiseCrypto, size: number, open: boolean): number {
  const k = new Uint8Array(randomBytes(32))
  const nonce = new Uint8Array(12)
  const ad = new Uint8Array(0)
  const plaintext = new Uint8Array(randomBytes(size))
  const sealed = new Uint8Array(crypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k).subarray())
  const once = open
    ? () => crypto.chaCha20Poly1305Decrypt(new Uint8Array(sealed), nonce, ad, k)
    : () => crypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
  const calls = 2_000
  for (let i = 0; i < calls / 5; i++) once()
  const started = performance.now()
  for (let i = 0; i < calls; i++) once()
  return (performance.now() - started) * 1_000 / calls
}

export type NoiseCryptoRow = { size: number; op: 'seal' | 'open'; defaultUs: number; agentUs: number }

export function benchNoiseCrypto (): NoiseCryptoRow[] {
  const rows: NoiseCryptoRow[] = []
  for (const size of SIZES) {
    for (const op of ['seal', 'open'] as const) {
      const runs: { d: number[]; a: number[] } = { d: [], a: [] }
      for (let round = 0; round < ROUNDS; round++) {
        runs.d.push(usPerCall(libraryNoiseCrypto, size, op === 'open'))
        runs.a.push(usPerCall(noiseCrypto, size, op === 'open'))
      }
      rows.push({ size, op, defaultUs: median(runs.d), agentUs: median(runs.a) })
    }
  }
  return rows
}

export function noiseCryptoMarkdown (rows: NoiseCryptoRow[]): string[] {
  return [
    '## Noise cipher per message: the default crypto vs the agent\'s',
    '',
    `µs per call, median of ${ROUNDS} alternating rounds in one process; the message is a fresh copy each call when opened (noise opens in place).`,
    '',
    '| bytes | operation | @chainsafe/libp2p-noise default, µs | edge-agent (key prepared once), µs | default / edge-agent |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.size} | ${r.op} | ${fmt(r.defaultUs, 1)} | ${fmt(r.agentUs, 1)} | ${fmt(r.defaultUs / r.agentUs, 2)}× |`)
  ]
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = [...noiseCryptoMarkdown(benchNoiseCrypto()), '', `Measured ${new Date().toISOString()}.`, ''].join('\n')
  writeFileSync(new URL('./results/noise-crypto.md', import.meta.url), text)
  process.stdout.write(text)
}
