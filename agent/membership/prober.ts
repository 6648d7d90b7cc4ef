// Probe bookkeeping for SWIM with Lifeguard: the direct ping, the indirect
// ping-reqs after its timeout, the nacks that tell whether our own side is the
// slow one, and the relays we run when others ask us to probe for them.
// Pure state: it decides nothing about membership and sends nothing itself.

export type Probe = {
  seq: number
  target: string
  // The target's incarnation when the probe started: a failure accuses that one
  // (a record that moved on since, refuted or restarted, is not what failed).
  incarnation: number
  startMs: number
  // When the direct ping has waited long enough and indirect probes start.
  directDeadlineMs: number
  // When the probe fails for good; set again when it goes indirect.
  endMs: number
  phase: 'direct' | 'indirect'
  expectedNacks: number
  nacks: number
}

export type Relay = {
  requester: string
  requesterSeq: number
  target: string
  // Lifeguard: tell the requester "no ack" a little before its own deadline.
  nackAtMs: number
  nacked: boolean
  expireMs: number
}

export type Due =
  | { kind: 'go-indirect'; probe: Probe }
  | { kind: 'fail'; probe: Probe }
  | { kind: 'nack'; relay: Relay }

export type AckMatch =
  | { kind: 'probe'; probe: Probe }
  | { kind: 'relay'; relay: Relay }
  | { kind: 'none' }

export class Prober {
  #nextSeq = 1
  readonly #probes = new Map<number, Probe>()
  readonly #relays = new Map<number, Relay>()
  // Round-robin order over members, reshuffled at the end of each round (SWIM's
  // randomised round-robin bounds the time to the first probe of a failed member).
  #order: string[] = []
  #cursor = 0

  nextSeq (): number {
    return this.#nextSeq++
  }

  // Picks the next member to probe, or null when no candidate is left.
  // `eligible` filters out self, dead and left members.
  nextTarget (candidates: () => string[], eligible: (id: string) => boolean, shuffle: (ids: string[]) => string[]): string | null {
    for (let pass = 0; pass < 2; pass++) {
      while (this.#cursor < this.#order.length) {
        const id = this.#order[this.#cursor++]
        if (eligible(id) && !this.isProbing(id)) return id
      }
      this.#order = shuffle(candidates())
      this.#cursor = 0
    }
    return null
  }

  // A new member joins the round at a random position, as in SWIM.
  // (Swapped in, not spliced: a mass join must not cost O(N) per member.)
  insert (id: string, position: number): void {
    const at = this.#cursor + position % (this.#order.length - this.#cursor + 1)
    this.#order.push(id)
    const last = this.#order.length - 1
    this.#order[last] = this.#order[at]
    this.#order[at] = id
  }

  isProbing (target: string): boolean {
    for (const probe of this.#probes.values()) if (probe.target === target) return true
    return false
  }

  start (target: string, incarnation: number, nowMs: number, directTimeoutMs: number, totalMs: number): Probe {
    const probe: Probe = {
      seq: this.nextSeq(),
      target,
      incarnation,
      startMs: nowMs,
      directDeadlineMs: nowMs + directTimeoutMs,
      endMs: nowMs + totalMs,
      phase: 'direct',
      expectedNacks: 0,
      nacks: 0
    }
    this.#probes.set(probe.seq, probe)
    return probe
  }

  // We are pinging `target` for another member's probe (a relay not yet acked).
  isRelayingTo (target: string): boolean {
    for (const relay of this.#relays.values()) if (relay.target === target) return true
    return false
  }

  probeOf (target: string): Probe | null {
    for (const probe of this.#probes.values()) if (probe.target === target) return probe
    return null
  }

  // The indirect phase lasts `windowMs` from now, however the direct phase ended
  // (its timeout, or an early sign that the direct path is broken).
  goIndirect (probe: Probe, expectedNacks: number, nowMs: number, windowMs: number): void {
    probe.phase = 'indirect'
    probe.expectedNacks = expectedNacks
    probe.endMs = nowMs + windowMs
  }

  relay (requester: string, requesterSeq: number, target: string, nowMs: number, nackAfterMs: number, expireAfterMs: number): number {
    const seq = this.nextSeq()
    this.#relays.set(seq, {
      requester, requesterSeq, target, nackAtMs: nowMs + nackAfterMs, nacked: false, expireMs: nowMs + expireAfterMs
    })
    return seq
  }

  // Matches an ack to our probe or to a relay; a relay is done once acked.
  ack (seq: number): AckMatch {
    const probe = this.#probes.get(seq)
    if (probe !== undefined) {
      this.#probes.delete(seq)
      return { kind: 'probe', probe }
    }
    const relay = this.#relays.get(seq)
    if (relay !== undefined) {
      this.#relays.delete(seq)
      return { kind: 'relay', relay }
    }
    return { kind: 'none' }
  }

  // Counts a nack; returns the probe when every expected nack is in, which ends
  // the probe early: every intermediary reached us and none reached the target.
  nack (seq: number): Probe | null {
    const probe = this.#probes.get(seq)
    if (probe === undefined || probe.phase !== 'indirect') return null
    probe.nacks++
    return probe.nacks >= probe.expectedNacks ? probe : null
  }

  finish (probe: Probe): void {
    this.#probes.delete(probe.seq)
  }

  // Everything whose time has come, in deadline order.
  due (nowMs: number): Due[] {
    const due: Due[] = []
    for (const probe of this.#probes.values()) {
      if (probe.endMs <= nowMs) due.push({ kind: 'fail', probe })
      else if (probe.phase === 'direct' && probe.directDeadlineMs <= nowMs) due.push({ kind: 'go-indirect', probe })
    }
    for (const [seq, relay] of this.#relays) {
      if (relay.expireMs <= nowMs) this.#relays.delete(seq)
      else if (!relay.nacked && relay.nackAtMs <= nowMs) due.push({ kind: 'nack', relay })
    }
    return due
  }

  nextDeadlineMs (): number {
    let next = Infinity
    for (const probe of this.#probes.values()) {
      next = Math.min(next, probe.phase === 'direct' ? probe.directDeadlineMs : probe.endMs)
    }
    for (const relay of this.#relays.values()) {
      next = Math.min(next, relay.nacked ? relay.expireMs : relay.nackAtMs)
    }
    return next
  }

  // A local stall: nothing could be heard during it, so it must not count.
  extend (byMs: number): void {
    for (const probe of this.#probes.values()) {
      probe.directDeadlineMs += byMs
      probe.endMs += byMs
    }
    for (const relay of this.#relays.values()) {
      relay.nackAtMs += byMs
      relay.expireMs += byMs
    }
  }

  // Forgets probes of a member that left or was reaped.
  cancel (target: string): void {
    for (const [seq, probe] of this.#probes) if (probe.target === target) this.#probes.delete(seq)
  }

  clear (): void {
    this.#probes.clear()
    this.#relays.clear()
  }
}
