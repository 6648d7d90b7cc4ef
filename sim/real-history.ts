// What `edge-agent sim --real` remembers of its run, to judge the agents' own
// --json events afterwards: each node's states over time (alive, crashed,
// paused, isolated) and slowness, the network changes (partition, heal, loss),
// and the watches opened at each crash, freeze or partition. Wall-clock ms.

import type { AgentEventLine, AgentProcess } from './processes.ts'
import type { NodeStateName, SimRunResult } from './result.ts'

// A node counts as healthy and reachable for the false-positive count when it
// has been running, not slow, not cut off, for this long before a verdict (as
// in virtual mode).
export const HEALTHY_FOR_MS = 5_000

type Mark = { atMs: number; state: NodeStateName; slow: boolean }
export type Watch = { node: string; agentId: string; fault: 'crash' | 'pause' | 'partition'; atMs: number; endMs: number | null; survivors: AgentProcess[] }
type Detection = SimRunResult['detections'][number]

export class RealHistory {
  readonly t0: number
  readonly #marks = new Map<string, Mark[]>()
  readonly #networkChanges: number[] = []
  readonly watches: Watch[] = []

  constructor (t0: number, names: string[]) {
    this.t0 = t0
    for (const name of names) this.#marks.set(name, [{ atMs: t0, state: 'alive', slow: false }])
  }

  mark (name: string, atMs: number, patch: { state?: NodeStateName; slow?: boolean }): void {
    const list = this.#marks.get(name) as Mark[]
    const last = list[list.length - 1]
    list.push({ atMs, state: patch.state ?? last.state, slow: patch.slow ?? last.slow })
  }

  networkChanged (atMs: number): void {
    this.#networkChanges.push(atMs)
  }

  watch (w: Omit<Watch, 'endMs'>): void {
    this.watches.push({ ...w, endMs: null })
  }

  // The node is back (restarted, resumed, healed): its open watches end.
  back (name: string, atMs: number): void {
    for (const w of this.watches) if (w.node === name && w.endMs === null) w.endMs = atMs
  }

  // Running, not slow and untroubled for HEALTHY_FOR_MS before `atMs`.
  healthyAt (name: string, atMs: number): boolean {
    const list = this.#marks.get(name)
    if (list === undefined) return false
    let current: Mark | null = null
    for (const m of list) {
      if (m.atMs > atMs) break
      if (m.atMs > this.t0 && atMs - m.atMs <= HEALTHY_FOR_MS) return false
      current = m
    }
    return current !== null && current.state === 'alive' && !current.slow
  }

  networkQuietAt (atMs: number): boolean {
    return this.#networkChanges.every((c) => c > atMs || atMs - c > HEALTHY_FOR_MS)
  }

  // Dead verdicts about a healthy node by a healthy node, with the network
  // unchanged for HEALTHY_FOR_MS: false positives.
  falseDead (agents: AgentProcess[], nameOf: (id: string) => string): string[] {
    const out: string[] = []
    for (const a of agents) {
      for (const e of a.events) {
        if (e.event !== 'member' || e.status !== 'dead') continue
        const subject = nameOf(String(e.id))
        if (subject === '?' || e.atMs - this.t0 <= HEALTHY_FOR_MS) continue
        if (this.healthyAt(subject, e.atMs) && this.healthyAt(a.name, e.atMs) && this.networkQuietAt(e.atMs)) {
          out.push(`${a.name} declared ${subject} dead at ${e.atMs - this.t0} ms`)
        }
      }
    }
    return out
  }

  // Per watch: first suspicion, first and last dead verdict among the survivors,
  // from their events between the fault and the node's return.
  detections (): Detection[] {
    return this.watches.map((w) => {
      const within = (e: AgentEventLine, status: string): boolean =>
        e.event === 'member' && e.id === w.agentId && e.status === status && e.atMs >= w.atMs && (w.endMs === null || e.atMs <= w.endMs)
      const first = (status: string): number[] => w.survivors.flatMap((a) => a.events.filter((e) => within(e, status)).map((e) => e.atMs - w.atMs).slice(0, 1))
      const suspicions = first('suspect')
      const deaths = first('dead')
      return {
        node: w.node,
        fault: w.fault,
        atMs: w.atMs - this.t0,
        firstSuspicionMs: suspicions.length === 0 ? null : Math.min(...suspicions),
        firstDeadMs: deaths.length === 0 ? null : Math.min(...deaths),
        lastDeadMs: deaths.length === w.survivors.length && deaths.length > 0 ? Math.max(...deaths) : null,
        verdicts: deaths.length,
        survivors: w.survivors.length
      }
    })
  }
}
