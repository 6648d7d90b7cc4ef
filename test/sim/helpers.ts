// Helpers for virtual-time tests: seeds that print themselves on failure, and
// small observers over a simulated cluster's events.

import type { PeerKey } from '../../agent/core/io.ts'
import type { SimCluster } from '../../sim/cluster.ts'

// The seed for a test: SEED=… in the environment replays one; otherwise a fixed
// default keeps CI deterministic.
export function seedFor (fallback: number): number {
  const fromEnv = process.env.SEED
  return fromEnv === undefined ? fallback : Number(fromEnv)
}

// Runs `body` with a seed; a failure is rethrown with the seed and the command
// that replays it.
export function withSeed (file: string, seed: number, body: (seed: number) => void): void {
  try {
    body(seed)
  } catch (error) {
    const err = error as Error
    err.message = `${err.message}\n    SEED=${seed} (replay: SEED=${seed} node ${file})`
    throw err
  }
}

// Records, per subject, the time each observer first reached `status`.
export function watchStatus (cluster: SimCluster, status: string): Map<PeerKey, Map<PeerKey, number>> {
  const seen = new Map<PeerKey, Map<PeerKey, number>>()
  cluster.onEvent(({ atMs, node, event }) => {
    if (event.type !== 'member-status' || event.status !== status) return
    let bySubject = seen.get(event.id)
    if (bySubject === undefined) seen.set(event.id, bySubject = new Map())
    if (!bySubject.has(node)) bySubject.set(node, atMs)
  })
  return seen
}

// Starts a cluster and runs it until every node is up and sees every other.
export function startConverged (cluster: SimCluster, limitMs = 60_000): void {
  cluster.start()
  const ok = cluster.runUntil(() => cluster.running().length === cluster.nodes.length && cluster.converged(), limitMs)
  if (!ok) throw new Error(`cluster of ${cluster.nodes.length} did not converge within ${limitMs} ms`)
}

export function percentile (values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]
}
