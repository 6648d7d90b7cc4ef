// Pure arithmetic of the failure detector, kept apart so it can be table-tested
// (memberlist's util.go and suspicion.go do the same).

// Above this many members, periodic gossip periods grow in proportion to N.
export const GOSSIP_SCALE_THRESHOLD = 32

// Suspicion timeout bounds (Lifeguard, as in memberlist, but with the minimum
// given in ms rather than as a multiple of the probe period, so that probing
// less often at rest does not also stretch every verdict):
//   min = suspicionMinMs × max(1, log10(N))
//   max = suspicionMaxTimeoutMult × min
export function suspicionBoundsMs (
  n: number, suspicionMinMs: number, maxMult: number
): { minMs: number; maxMs: number } {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)))
  const minMs = Math.floor(suspicionMinMs * nodeScale)
  return { minMs, maxMs: Math.floor(maxMult * minMs) }
}

// How many independent confirmations a suspicion expects before it reaches its
// minimum timeout (`wanted`: suspicionConfirmations). Neither the suspect nor we
// can confirm, hence at most n - 2: in a cluster of 3 the one other member's
// confirmation takes a suspicion to its minimum.
export function expectedConfirmations (n: number, wanted: number): number {
  return Math.max(0, Math.min(Math.floor(wanted), n - 2))
}

// Total suspicion timeout after `confirmations` independent confirmations out of
// `k` expected: falls logarithmically from max to min. With none expected (two
// members, or suspicionConfirmations 0) nothing can shorten it: the maximum.
// (memberlist takes the minimum there, but its minimum is 4 probe periods; ours
// is shorter than one, and a refutation lost once would not be sent again in time.)
export function suspicionTimeoutMs (confirmations: number, k: number, minMs: number, maxMs: number): number {
  if (k < 1) return maxMs
  const fraction = Math.log(confirmations + 1) / Math.log(k + 1)
  const raw = Math.floor(maxMs - fraction * (maxMs - minMs))
  return Math.max(minMs, raw)
}

// Time left before a suspicion turns into a dead verdict.
export function remainingSuspicionMs (
  confirmations: number, k: number, elapsedMs: number, minMs: number, maxMs: number
): number {
  return suspicionTimeoutMs(confirmations, k, minMs, maxMs) - elapsedMs
}

// Lifeguard's local health multiplier: a node that misses acks and nacks waits
// longer before it accuses anyone.
export function scaleByHealth (durationMs: number, healthScore: number): number {
  return durationMs * (healthScore + 1)
}

export function clampHealth (score: number, awarenessMax: number): number {
  return Math.min(awarenessMax - 1, Math.max(0, score))
}

// How many times a piggybacked update is sent before it is dropped.
export function retransmitLimit (retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1))
}

// Periodic whole-record gossip (refresh, push-pull) scaled so that each member's
// share of the bandwidth stays flat as N grows.
export function gossipScaleMs (intervalMs: number, n: number): number {
  if (n <= GOSSIP_SCALE_THRESHOLD) return intervalMs
  return Math.floor(intervalMs * n / GOSSIP_SCALE_THRESHOLD)
}
