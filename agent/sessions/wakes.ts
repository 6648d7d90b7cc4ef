// When the sessions core next needs a tick: the earliest timer of any session
// it holds. A step about one session changes only that session's timers (the
// others are due where they were), so the wake-ups are kept in a heap: such a
// step re-files its session's, O(log n), instead of each nextWakeMs scanning
// every session. The simulator asks after every message: with 1,000 idle
// sessions on 5 nodes the scan made it ~3.7× slower (bench/sim-sessions.ts).
// The agent asks once per batch of steps (group commit), so it gains less: the
// scan was ~6% of an idle agent's CPU at ~600 copies, too little to show
// against its noise. A tick, or a step that may create sessions, re-files all.

import { MinHeap } from '../core/min-heap.ts'
import { nextElectionWake } from './election.ts'
import { nextWaiterDeadline } from './owner.ts'
import { nextParkedDeadline } from './parked.ts'
import { witnessProbeAtMs } from './replica.ts'
import type { Replica } from './replica.ts'
import type { PeerKey } from '../core/io.ts'

export class SessionWakes {
  readonly #heap = new MinHeap<Replica>()
  readonly #touched = new Set<Replica>()
  #all = true
  readonly #ownerTimeoutMs: number
  readonly #self: PeerKey
  // Check every answer against a scan of every session, and throw if they
  // differ (the simulator does, so its tests and sweeps check the heap).
  readonly #verify: boolean

  constructor (self: PeerKey, ownerTimeoutMs: number, verify: boolean) {
    this.#self = self
    this.#ownerTimeoutMs = ownerTimeoutMs
    this.#verify = verify
  }

  // A step concerned this session only: its timers may have moved.
  touched (r: Replica): void {
    this.#touched.add(r)
  }

  // A step may have changed any session's timers, or created sessions.
  touchedAll (): void {
    this.#all = true
  }

  // The earliest wake-up of the sessions held (`replicas`), at most `atMost`.
  // (Empty sets are not cleared: the simulator asks each of its nodes after
  // every step, most of them holding nothing, and V8's Set.clear() allocates a
  // new table even when the set is empty.)
  next (replicas: ReadonlyMap<string, Replica>, atMost: number): number {
    const heap = this.#heap
    if (this.#all || heap.size > 2 * replicas.size + 64) {
      this.#all = false
      if (this.#touched.size > 0) this.#touched.clear()
      heap.clear()
      for (const r of replicas.values()) {
        r.wakeFiledMs = NaN
        this.#file(r)
      }
    } else if (this.#touched.size > 0) {
      for (const r of this.#touched) if (replicas.get(r.id) === r) this.#file(r)
      this.#touched.clear()
    }
    // Entries of sessions forgotten, replaced, or due elsewhere since are dropped.
    while (heap.size > 0) {
      const r = heap.topValue
      const held = replicas.get(r.id) === r
      if (held && r.wakeFiledMs === heap.topTime) break
      // Filed again in full should it ever be held again.
      if (!held) r.wakeFiledMs = NaN
      heap.pop()
    }
    const next = heap.size > 0 ? Math.min(atMost, heap.topTime) : atMost
    if (this.#verify) {
      let scanned = atMost
      for (const r of replicas.values()) scanned = Math.min(scanned, this.#wakeOf(r))
      if (scanned !== next) throw new Error(`sessions core: the wake-up heap says ${next}, a scan of every session ${scanned}`)
    }
    return next
  }

  #file (r: Replica): void {
    const at = this.#wakeOf(r)
    if (r.wakeFiledMs === at) return
    r.wakeFiledMs = at
    if (at !== Infinity) this.#heap.push(at, r)
  }

  #wakeOf (r: Replica): number {
    // A quiet session's timers are its agent's beats (quiet.ts), but for a
    // retry of an entry its service could not apply (apply.ts).
    const retry = r.applyStall?.retryAtMs ?? Infinity
    if (r.quiet !== null) return retry
    if (r.role === 'owner') return Math.min(r.heartbeatAtMs, r.lagCheckAtMs, nextWaiterDeadline(r), retry)
    return Math.min(nextParkedDeadline(r), nextElectionWake(r, this.#self, this.#ownerTimeoutMs), witnessProbeAtMs(r, this.#self, this.#ownerTimeoutMs), retry)
  }
}
