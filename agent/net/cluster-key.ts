// The cluster's pre-shared key: a v1 swarm key file, the format @libp2p/pnet (and
// go-libp2p, IPFS) read:
//
//   /key/swarm/psk/1.0.0/
//   /base16/
//   <64 hex digits: 32 random bytes>
//
// Parsed strictly here, so that a damaged file is refused with its path and the
// reason instead of pnet's bare "invalid psk" (or, worse, an agent that starts
// with a key its peers do not share).

import { hkdfSync, randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'

export const PSK_BYTES = 32
// Previous keys an agent accepts besides its cluster key, at most: a change of
// key needs one (README, "Changing the cluster key").
export const MAX_PREVIOUS_KEYS = 4
const HEADER = '/key/swarm/psk/1.0.0/'
const CODEC = '/base16/'
// A key file is three short lines; anything much larger is not one.
const MAX_KEY_FILE_BYTES = 1024

// A key's public name: 16 hex digits of HKDF-SHA256(key, info: "edge-agent
// package key id v1"). Sealed packages carry it (agent/runtime/package.ts), and
// logs, /v1/health, /v1/members and /metrics name keys by it; it tells nothing
// of the key itself.
export const CLUSTER_KEY_ID_INFO = 'edge-agent package key id v1'

export function clusterKeyId (psk: Uint8Array): string {
  return Buffer.from(hkdfSync('sha256', psk, Buffer.alloc(0), CLUSTER_KEY_ID_INFO, 8)).toString('hex')
}

export function generateClusterKey (): Uint8Array {
  return new Uint8Array(randomBytes(PSK_BYTES))
}

export function formatSwarmKey (psk: Uint8Array): string {
  if (psk.length !== PSK_BYTES) throw new RangeError(`a cluster key is ${PSK_BYTES} bytes (got ${psk.length})`)
  return `${HEADER}\n${CODEC}\n${Buffer.from(psk).toString('hex')}\n`
}

export type ParsedKey = { ok: true; psk: Uint8Array } | { ok: false; reason: string }

export function parseSwarmKey (text: string): ParsedKey {
  const lines = text.split(/\r?\n/)
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop()
  if (lines.length !== 3) return { ok: false, reason: `expected 3 lines (${HEADER}, ${CODEC}, 64 hex digits), found ${lines.length}` }
  const [header, codec, hex] = lines.map((line) => line.trim())
  if (header !== HEADER) return { ok: false, reason: `the first line must be ${HEADER} (got ${JSON.stringify(header.slice(0, 40))})` }
  if (codec !== CODEC) return { ok: false, reason: `the second line must be ${CODEC} (only base16 keys are supported; got ${JSON.stringify(codec.slice(0, 40))})` }
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return { ok: false, reason: `the third line must be 64 hex digits (got ${hex.length} characters)` }
  return { ok: true, psk: new Uint8Array(Buffer.from(hex, 'hex')) }
}

// Reads and checks a key file. Throws an Error naming the path and what is wrong.
// `warn` hears about a file that others than its owner may read.
export function readClusterKeyFile (path: string, warn: (message: string) => void = () => {}): Uint8Array {
  let bytes: Buffer
  try {
    const stats = statSync(path)
    if (!stats.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' })
    if (stats.size > MAX_KEY_FILE_BYTES) throw Object.assign(new Error('too large'), { code: `${stats.size} bytes, too large for a key file` })
    if ((stats.mode & 0o077) !== 0) warn(`cluster key file ${path} is readable by others (mode ${(stats.mode & 0o777).toString(8)}); chmod 600 it`)
    bytes = readFileSync(path)
  } catch (error) {
    throw new Error(`cannot read cluster key file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  const parsed = parseSwarmKey(bytes.toString('utf8'))
  if (!parsed.ok) throw new Error(`cluster key file ${path} is not a swarm key: ${parsed.reason}`)
  return parsed.psk
}

// Without the key, a private cluster's handshake reads as garbage ("message
// length too long", "unexpected end of input"), waits for bytes that never
// come ("no answer within"), or is reset, depending on who speaks first and
// how busy the box is (CI met a message none of those matched): without a key,
// any failure to reach a peer but nothing listening gets this hint. `flag` is
// how the caller's user gives a key.
export function clusterKeyHint (message: string, keyed: boolean, flag = '--cluster-key'): string {
  return keyed || /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH/.test(message) ? '' : ` (a private cluster? pass its ${flag})`
}
