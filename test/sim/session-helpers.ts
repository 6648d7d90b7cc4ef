// Helpers for session scenarios in virtual time.
import type { PeerKey } from '../../agent/core/io.ts'
import { sessionsProfile } from '../../agent/sessions/config.ts'
import type { SessionsConfig } from '../../agent/sessions/config.ts'
import { SimCluster } from '../../sim/cluster.ts'
import type { SimOptions } from '../../sim/cluster.ts'
import { SimTerminal } from '../../sim/terminal.ts'

export function sessionCluster (seed: number, nodes: number, options: Partial<SimOptions> & { sessionsPatch?: Partial<SessionsConfig> } = {}): SimCluster {
  const { sessionsPatch, ...rest } = options
  const cluster = new SimCluster({ seed, nodes, sessions: { ...sessionsProfile('lan'), ...sessionsPatch }, ...rest })
  cluster.start()
  const ok = cluster.runUntil(() => cluster.running().length === nodes && cluster.converged(), 30_000, 10)
  if (!ok) throw new Error(`cluster of ${nodes} did not converge`)
  return cluster
}

export function openTerminal (cluster: SimCluster, terminalId: string, entry: PeerKey, requestTimeoutMs = 600): SimTerminal {
  const terminal = new SimTerminal(cluster, { terminalId, entry, requestTimeoutMs })
  let done = false
  let opened = false
  terminal.open((ok) => { done = true; opened = ok })
  cluster.runUntil(() => done, 10_000)
  if (!opened) throw new Error(`terminal ${terminalId} could not open a session: ${terminal.errors.join('; ')}`)
  return terminal
}

// Runs until every terminal has finished its appends (or `limitMs` passes).
export function finish (cluster: SimCluster, terminals: SimTerminal[], total: number, limitMs = 60_000): boolean {
  return cluster.runUntil(() => terminals.every((t) => !t.busy && t.acks.length + t.failed >= total), limitMs, 10)
}

export function replicaOf (cluster: SimCluster, node: PeerKey, sessionId: string) {
  return cluster.node(node).sessions?.replica(sessionId)
}

// Reads the session at every running node every 4 ms until the terminal holds
// `untilAcks` acknowledgements; `stale` collects every answer showing less
// than was acknowledged when the read was sent.
export function pollReads (cluster: SimCluster, terminal: SimTerminal, untilAcks: number): { stale: string[]; reads: () => number } {
  const stale: string[] = []
  let reads = 0
  const poll = (): void => {
    for (const node of cluster.running()) {
      const seen = terminal.lastIndex
      cluster.request(node.id, { type: 'get', sessionId: terminal.sessionId, tokenHash: terminal.tokenHash }, (outcome) => {
        if (outcome.status !== 200) return
        reads++
        const index = Number(outcome.body.index)
        if (index < seen) stale.push(`${node.id} answered index ${index} at ${cluster.nowMs.toFixed(0)} ms, after ${seen} was acknowledged`)
      })
    }
    if (terminal.acks.length < untilAcks) cluster.scheduler.after(4, poll)
  }
  poll()
  return { stale, reads: () => reads }
}
