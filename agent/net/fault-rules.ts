// The fault-injection gate's rules (a test facility, off unless the agent is
// started with --fault-injection): what `POST /v1/faults` sets, validated here
// once, and the per-message decision. Pure: the randomness is a SeededRandom
// seeded from the request, so a run's draws replay from its seeds (as far as the
// real message order allows); the timers live in fault-gate.ts.

import { SeededRandom } from '../core/random.ts'

// Where lossRate, delayMs and jitterMs apply. 'in' (the default) gives every link
// into this agent the loss and delay once, so the same rules on every agent make
// the virtual simulator's link model; slowMs always applies both ways.
export type FaultDirection = 'in' | 'out' | 'both'

export type FaultRules = {
  // Seed of the PRNG behind loss and jitter, 0..2^32-1.
  seed: number
  // Peer ids whose every message, in or out, is dropped (a partition).
  blockedPeers: string[]
  // Share of messages dropped, 0..1.
  lossRate: number
  // Added delay: delayMs plus a uniform draw from [0, jitterMs), ms.
  delayMs: number
  jitterMs: number
  // A slow node (gray failure): every message in and out takes this much longer, ms.
  slowMs: number
  direction: FaultDirection
}

export const NO_FAULTS: FaultRules = { seed: 0, blockedPeers: [], lossRate: 0, delayMs: 0, jitterMs: 0, slowMs: 0, direction: 'in' }

// Limits of a rule set, each with its reason.
// A cluster of a few thousand agents can be cut in two from any side.
export const MAX_BLOCKED_PEERS = 4_096
// A minute of delay is already a dead link for every timeout the agent has.
export const MAX_FAULT_DELAY_MS = 60_000
const FAULT_KEYS = ['seed', 'blockedPeers', 'lossRate', 'delayMs', 'jitterMs', 'slowMs', 'direction'] as const
// libp2p peer ids as text: base58btc multihashes (12D3KooW…, Qm…) or CIDv1 (b…).
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{32,128}$|^b[a-z2-7]{32,128}$/

export type ParsedRules = { ok: true; rules: FaultRules } | { ok: false; reason: string }

// A request body to a rule set, or the reason it is refused (naming the field).
// Fields left out take NO_FAULTS' values: a body is the whole rule set.
export function parseFaultRules (body: unknown): ParsedRules {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return refuse('the body must be a JSON object')
  const o = body as Record<string, unknown>
  const unknown = Object.keys(o).find((key) => !(FAULT_KEYS as readonly string[]).includes(key))
  if (unknown !== undefined) return refuse(`unknown field '${unknown}' (known: ${FAULT_KEYS.join(', ')})`)
  const rules: FaultRules = { ...NO_FAULTS, blockedPeers: [] }
  if (o.seed !== undefined) {
    if (!Number.isInteger(o.seed) || (o.seed as number) < 0 || (o.seed as number) > 0xffffffff) return refuse(`'seed' must be a whole number from 0 to 4294967295 (got ${show(o.seed)})`)
    rules.seed = o.seed as number
  }
  if (o.blockedPeers !== undefined) {
    if (!Array.isArray(o.blockedPeers)) return refuse(`'blockedPeers' must be a list of peer ids (got ${show(o.blockedPeers)})`)
    if (o.blockedPeers.length > MAX_BLOCKED_PEERS) return refuse(`'blockedPeers' has ${o.blockedPeers.length} entries; at most ${MAX_BLOCKED_PEERS}`)
    for (const [i, peer] of o.blockedPeers.entries()) {
      if (typeof peer !== 'string' || !PEER_ID.test(peer)) return refuse(`'blockedPeers[${i}]' is not a peer id (got ${show(peer)})`)
    }
    rules.blockedPeers = [...new Set(o.blockedPeers as string[])]
  }
  if (o.lossRate !== undefined) {
    if (typeof o.lossRate !== 'number' || !(o.lossRate >= 0 && o.lossRate <= 1)) return refuse(`'lossRate' must be a number from 0 to 1 (got ${show(o.lossRate)})`)
    rules.lossRate = o.lossRate
  }
  for (const key of ['delayMs', 'jitterMs', 'slowMs'] as const) {
    const value = o[key]
    if (value === undefined) continue
    if (typeof value !== 'number' || !(value >= 0 && value <= MAX_FAULT_DELAY_MS)) return refuse(`'${key}' must be a number of milliseconds from 0 to ${MAX_FAULT_DELAY_MS} (got ${show(value)})`)
    rules[key] = value
  }
  if (o.direction !== undefined) {
    if (o.direction !== 'in' && o.direction !== 'out' && o.direction !== 'both') return refuse(`'direction' must be "in", "out" or "both" (got ${show(o.direction)})`)
    rules.direction = o.direction
  }
  return { ok: true, rules }
}

function refuse (reason: string): ParsedRules {
  return { ok: false, reason }
}

function show (value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

export function isInert (rules: FaultRules): boolean {
  return rules.blockedPeers.length === 0 && rules.lossRate === 0 && rules.delayMs === 0 && rules.jitterMs === 0 && rules.slowMs === 0
}

// What happens to one message: dropped (and why), or delivered after delayMs
// (0: now).
export type FaultVerdict = { drop: 'partition' | 'loss' } | { drop: null; delayMs: number }

export class FaultDecider {
  readonly rules: FaultRules
  readonly #blocked: Set<string>
  readonly #random: SeededRandom

  constructor (rules: FaultRules) {
    this.rules = rules
    this.#blocked = new Set(rules.blockedPeers)
    this.#random = new SeededRandom(rules.seed)
  }

  blocks (peer: string): boolean {
    return this.#blocked.has(peer)
  }

  // `peer` is the other end (null for a gossip publish, which goes to the mesh).
  decide (peer: string | null, direction: 'in' | 'out'): FaultVerdict {
    const r = this.rules
    if (peer !== null && this.#blocked.has(peer)) return { drop: 'partition' }
    const link = r.direction === 'both' || r.direction === direction
    // Draws only where a rule needs one, so a rule set without loss or jitter
    // leaves the sequence alone.
    if (link && r.lossRate > 0 && this.#random.nextFloat() < r.lossRate) return { drop: 'loss' }
    let delayMs = r.slowMs
    if (link) delayMs += r.delayMs + (r.jitterMs > 0 ? this.#random.nextFloat() * r.jitterMs : 0)
    return { drop: null, delayMs }
  }
}
