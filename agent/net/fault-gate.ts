// The fault-injection gate (a test facility: it exists only in an agent started
// with --fault-injection). Libp2pNet passes every message of the agent's own
// protocols through it, inbound and outbound: membership probes and push-pull
// (direct stream), gossip, and session replication (sessions stream). The rules
// (fault-rules.ts) drop a message, delay it, or let it through; this file holds
// the timers and the counters /metrics shows.
//
// A dropped message vanishes as behind a firewall that drops: connections stay
// open and libp2p's own keep-alive still passes, so the agent learns of a
// partition only from its own timeouts, as with a frozen peer. A delayed message
// on a stream never overtakes an earlier one on the same stream (TCP keeps
// order); gossip messages are delayed independently, as different mesh paths would.

import { FaultDecider, NO_FAULTS } from './fault-rules.ts'
import type { FaultRules } from './fault-rules.ts'

export type FaultChannel = 'direct' | 'gossip' | 'sessions'
export type FaultDirectionName = 'in' | 'out'
export type FaultDropReason = 'partition' | 'loss'

export type FaultCounts = {
  dropped: Array<{ direction: FaultDirectionName; channel: FaultChannel; reason: FaultDropReason; messages: number }>
  delayed: Array<{ direction: FaultDirectionName; channel: FaultChannel; messages: number }>
}

// The clock and timers the gate uses: the process's by default, a fake in tests.
export type GateClock = {
  nowMs: () => number
  after: (ms: number, run: () => void) => unknown
  cancel: (timer: unknown) => void
}

const PROCESS_CLOCK: GateClock = {
  nowMs: () => performance.now(),
  after: (ms, run) => setTimeout(run, ms),
  cancel: (timer) => clearTimeout(timer as NodeJS.Timeout)
}

export class FaultGate {
  readonly #clock: GateClock
  #decider = new FaultDecider(NO_FAULTS)
  readonly #dropped = new Map<string, number>()
  readonly #delayed = new Map<string, number>()
  // Per stream (direction, channel, peer): when its last delayed message is due.
  readonly #dueAt = new Map<string, number>()
  readonly #timers = new Set<unknown>()
  #stopped = false

  constructor (clock: GateClock = PROCESS_CLOCK) {
    this.#clock = clock
  }

  get rules (): FaultRules {
    return this.#decider.rules
  }

  // Replaces the rule set. Messages already delayed keep their delivery time.
  set (rules: FaultRules): void {
    this.#decider = new FaultDecider(rules)
  }

  clear (): void {
    this.set(NO_FAULTS)
  }

  // Whether everything from `peer` is dropped (hints about it are dropped too:
  // behind a partition nothing is heard of a peer, not even that it went away).
  blocks (peer: string): boolean {
    return this.#decider.blocks(peer)
  }

  // One message on a stream or a publish: `deliver` runs now, later, or never.
  // `peer` is the other end, null for a gossip publish.
  pass (peer: string | null, direction: FaultDirectionName, channel: FaultChannel, deliver: () => void): void {
    if (this.#stopped) return
    const verdict = this.#decider.decide(peer, direction)
    if (verdict.drop !== null) return this.#count(this.#dropped, `${direction} ${channel} ${verdict.drop}`)
    const key = `${direction} ${channel} ${peer ?? '*'}`
    const now = this.#clock.nowMs()
    const queuedUntil = this.#dueAt.get(key) ?? 0
    if (verdict.delayMs <= 0 && queuedUntil <= now) {
      this.#dueAt.delete(key)
      return deliver()
    }
    const due = Math.max(now + verdict.delayMs, queuedUntil)
    this.#dueAt.set(key, due)
    this.#count(this.#delayed, `${direction} ${channel}`)
    this.#later(due - now, () => {
      if (this.#dueAt.get(key) === due) this.#dueAt.delete(key)
      deliver()
    })
  }

  // A received gossip message, for gossipsub's topic validator: the verdict of
  // `deliver` now, or a promise of it after the delay (gossipsub awaits it, so a
  // delayed message is also forwarded late), or `dropped` (not forwarded either).
  // `source` is the peer that forwarded it, `origin` the peer that published it.
  passGossip<T> (source: string, origin: string, deliver: () => T, dropped: T): T | Promise<T> {
    if (this.#stopped) return dropped
    // Across a partition nothing passes, whoever forwards it.
    const verdict = this.#decider.blocks(origin) ? { drop: 'partition' as const } : this.#decider.decide(source, 'in')
    if (verdict.drop !== null) {
      this.#count(this.#dropped, `in gossip ${verdict.drop}`)
      return dropped
    }
    if (verdict.delayMs <= 0) return deliver()
    this.#count(this.#delayed, 'in gossip')
    return new Promise<T>((resolve) => this.#later(verdict.delayMs, () => resolve(this.#stopped ? dropped : deliver())))
  }

  counts (): FaultCounts {
    return {
      dropped: [...this.#dropped].map(([key, messages]) => {
        const [direction, channel, reason] = key.split(' ') as [FaultDirectionName, FaultChannel, FaultDropReason]
        return { direction, channel, reason, messages }
      }),
      delayed: [...this.#delayed].map(([key, messages]) => {
        const [direction, channel] = key.split(' ') as [FaultDirectionName, FaultChannel]
        return { direction, channel, messages }
      })
    }
  }

  // The net is stopping: nothing delayed is delivered any more (a gossip
  // validation still waiting is left pending; gossipsub is stopping with it).
  stop (): void {
    this.#stopped = true
    for (const timer of this.#timers) this.#clock.cancel(timer)
    this.#timers.clear()
  }

  #later (ms: number, run: () => void): void {
    const timer = this.#clock.after(ms, () => {
      this.#timers.delete(timer)
      if (!this.#stopped) run()
    })
    this.#timers.add(timer)
  }

  #count (map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1)
  }
}
