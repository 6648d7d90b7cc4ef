// Per-peer rate limiting for out-of-turn messages (hint probes, introductions,
// answers to stale news): at most one per `minGapMs` for each peer.
export function rateAllowed (lastMs: Map<string, number>, peer: string, nowMs: number, minGapMs: number): boolean {
  const last = lastMs.get(peer)
  if (last !== undefined && nowMs - last < minGapMs) return false
  lastMs.set(peer, nowMs)
  return true
}
