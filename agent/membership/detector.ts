// SWIM's failure detector with Lifeguard's local health: one probe per period
// over the direct channel, indirect probes through k members when the direct one
// times out, nacks from the intermediaries, and a health score that stretches our
// own timeouts when the evidence points at us. It decides only "this probe
// failed"; what that means for membership is the caller's (membership.ts).

import type { Message, Update } from '../../protocol/messages.ts'
import type { AgentEvent, PeerKey, Random } from '../core/io.ts'
import type { MembershipConfig } from './config.ts'
import { clampHealth, scaleByHealth } from './math.ts'
import { Prober } from './prober.ts'
import type { Probe } from './prober.ts'
import { rateAllowed } from './rate.ts'
import type { ProbeRing } from './ring.ts'

// What the detector needs from the membership it serves.
export interface DetectorHost {
  send (to: PeerKey, message: Message): void
  piggyback (recipient: PeerKey): Update[]
  emit (event: AgentEvent): void
  // Members that may be probed: alive or suspect, not us.
  isProbeable (id: PeerKey): boolean
  probeableIds (): PeerKey[]
  // Up to `count` random alive members other than us and `exclude`.
  randomAlive (count: number, exclude: PeerKey[]): PeerKey[]
  // The incarnation of `target` in our table (0 when unknown).
  incarnationOf (id: PeerKey): number
  // A probe of `target`, started when its incarnation was `incarnation`, failed for good.
  probeFailed (target: PeerKey, incarnation: number): void
  // The live members in id order (ring.ts), or null in a cluster too large to keep it.
  probeRing (): ProbeRing | null
  readonly selfId: PeerKey
}

export class FailureDetector {
  readonly #config: MembershipConfig
  readonly #random: Random
  readonly #host: DetectorHost
  readonly #prober = new Prober()
  readonly #lastHintMs = new Map<PeerKey, number>()
  // Peers we have heard from directly since their last disconnect: there is a live
  // connection, so a ping costs no connection setup.
  readonly #connected = new Set<PeerKey>()
  // When we last started a probe of each member (our clock, ms): in poor health
  // the next target is the member probed longest ago (#leastRecentlyProbed).
  readonly #lastProbedMs = new Map<PeerKey, number>()
  #health = 0
  #nextProbeMs: number
  #now = 0
  // Added to our clock to place the probe periods on a grid every member shares
  // (see #probeNext).
  readonly #clockOffsetMs: number

  // `clockOffsetMs`: the wall-clock time (ms since the epoch) when `nowMs` was
  // 0, so that every agent's probe periods start at the same moments; 0 when
  // all members share one clock (the simulator).
  constructor (config: MembershipConfig, random: Random, host: DetectorHost, nowMs: number, clockOffsetMs = 0) {
    this.#config = config
    this.#random = random
    this.#host = host
    this.#clockOffsetMs = clockOffsetMs
    this.#nextProbeMs = this.#slotStartMs(this.#slotAt(nowMs) + 1)
  }

  get health (): number {
    return this.#health
  }

  nextWakeMs (): number {
    return Math.min(this.#nextProbeMs, this.#prober.nextDeadlineMs())
  }

  tick (nowMs: number): void {
    this.#now = nowMs
    for (const due of this.#prober.due(nowMs)) {
      if (due.kind === 'go-indirect') this.#goIndirect(due.probe)
      else if (due.kind === 'fail') this.#probeFailed(due.probe)
      else {
        due.relay.nacked = true
        this.#host.send(due.relay.requester, { type: 'nack', seq: due.relay.requesterSeq })
      }
    }
    if (nowMs >= this.#nextProbeMs) this.#probeNext()
  }

  // A local stall: nothing could be heard during it, so it must not count.
  stalled (extendMs: number): void {
    this.#prober.extend(extendMs)
    this.adjustHealth(1, 'event loop stalled')
  }

  // A new member joins the probe round at a random position.
  added (id: PeerKey, tableSize: number): void {
    this.#prober.insert(id, this.#random.nextInt(Math.max(1, tableSize)))
  }

  // A member left, died or was forgotten: stop probing it.
  removed (id: PeerKey): void {
    this.#prober.cancel(id)
  }

  forget (id: PeerKey): void {
    this.#prober.cancel(id)
    this.#lastHintMs.delete(id)
    this.#connected.delete(id)
  }

  // A direct message arrived from `peer`.
  heard (peer: PeerKey): void {
    this.#connected.add(peer)
  }

  // The transport's connection to `peer` closed: probe it now (a crashed peer
  // refuses the redial at once) and count connection setup on the next ping.
  disconnected (peer: PeerKey, nowMs: number, probe: boolean): void {
    this.#connected.delete(peer)
    if (probe) this.hint(peer, false, nowMs)
  }

  stop (): void {
    this.#prober.clear()
  }

  // ---- messages -----------------------------------------------------------

  onPing (from: PeerKey, seq: number, nowMs: number): void {
    this.#now = nowMs
    this.#host.send(from, { type: 'ack', seq, updates: this.#host.piggyback(from) })
  }

  onAck (from: PeerKey, seq: number, nowMs: number): void {
    this.#now = nowMs
    const match = this.#prober.ack(seq)
    if (match.kind === 'probe') {
      const result = from === match.probe.target ? 'ack' : 'indirect-ack'
      this.#host.emit({ type: 'probe', target: match.probe.target, result })
      this.adjustHealth(-1, 'probe acknowledged')
    } else if (match.kind === 'relay') {
      const relay = match.relay
      this.#host.send(relay.requester, { type: 'ack', seq: relay.requesterSeq, updates: this.#host.piggyback(relay.requester) })
    }
  }

  onPingReq (from: PeerKey, seq: number, target: PeerKey, self: PeerKey, nowMs: number): void {
    this.#now = nowMs
    if (target === self) return this.onPing(from, seq, nowMs)
    // The requester's indirect window is probeInterval − probeTimeout; answer "no
    // ack" at 80% of our own probe timeout so the nack lands inside it.
    const nackAfterMs = Math.floor(this.#config.probeTimeoutMs * 0.8)
    const relaySeq = this.#prober.relay(from, seq, target, nowMs, nackAfterMs, this.#config.probeIntervalMs * 2)
    this.#host.send(target, { type: 'ping', seq: relaySeq, updates: this.#host.piggyback(target) })
  }

  onNack (seq: number, nowMs: number): void {
    this.#now = nowMs
    const probe = this.#prober.nack(seq)
    // Every intermediary answered and none reached the target: no need to wait.
    if (probe !== null) this.#probeFailed(probe)
  }

  // The transport lost or could not reach a peer: probe it now rather than at its
  // turn, and skip the direct wait when the direct path is known to be broken.
  // Also used to confirm a suspicion someone else raised.
  hint (peer: PeerKey, unreachable: boolean, nowMs: number): void {
    this.#now = nowMs
    const probe = this.#prober.probeOf(peer)
    if (probe !== null) {
      if (unreachable && probe.phase === 'direct') this.#goIndirect(probe)
      return
    }
    if (!this.#host.isProbeable(peer) || !rateAllowed(this.#lastHintMs, peer, nowMs, this.#config.probeIntervalMs)) return
    this.#startProbe(peer)
  }

  // `accuser` suspects `suspect`: should we probe it now to confirm? Lifeguard
  // shrinks a suspicion's timeout as independent confirmations arrive; rather
  // than wait for the suspect's turn, `count` members probe it at once. With
  // the ring they are the next `count` members due to probe it by the
  // schedule, from this period on, the accuser left out: everyone holding the
  // same ring agrees who they are, so exactly that many probe. A real failure
  // is then confirmed within one probe's time, and a false suspicion gathers no
  // confirmations and keeps its long timeout. Without the ring, each member
  // probes with probability count / (N − 2).
  confirm (suspect: PeerKey, accuser: PeerKey, count: number, liveCount: number, nowMs: number): void {
    this.#now = nowMs
    const ring = this.#host.probeRing()
    let due = false
    if (ring === null) {
      due = this.#random.nextFloat() < Math.min(1, count / Math.max(1, liveCount - 2))
    } else {
      const slot = this.#slotAt(nowMs)
      // Probers of consecutive periods are distinct for N − 1 periods.
      const periods = Math.min(count + 1, ring.size - 1)
      let found = 0
      for (let i = 0; i < periods && found < count && !due; i++) {
        const prober = ring.proberOf(suspect, slot + i)
        if (prober === null || prober === accuser) continue
        found++
        due = prober === this.#host.selfId
      }
    }
    if (due) this.hint(suspect, false, nowMs)
  }

  // The transport could not reach `peer` (a dial refused or timed out). Our own
  // probe of it skips the rest of its direct wait. Without one, we start one only
  // if `act()` (the membership's damping of transport hints in a large cluster)
  // and only if the failed dial was not a relay's ping: the member that asked us
  // is probing the peer already, and a probe of our own would ask three more
  // members, whose relays would fail in turn and start probes of their own: a
  // cascade across the whole cluster on every crash.
  unreachable (peer: PeerKey, nowMs: number, act: () => boolean): void {
    this.#now = nowMs
    const probe = this.#prober.probeOf(peer)
    if (probe !== null) {
      if (probe.phase === 'direct') this.#goIndirect(probe)
      return
    }
    if (!this.#prober.isRelayingTo(peer) && act()) this.hint(peer, true, nowMs)
  }

  adjustHealth (delta: number, reason: string): void {
    const next = clampHealth(this.#health + delta, this.#config.awarenessMax)
    if (next === this.#health) return
    this.#health = next
    this.#host.emit({ type: 'local-health', score: next, reason })
  }

  // ---- probing ------------------------------------------------------------

  // One probe per period, at the start of each period of a grid all members
  // share (wall-clock time divided into probe intervals). The target comes from
  // the ring (ring.ts): in each period every live member is probed by exactly
  // one other, so a member that freezes is probed within one period. Views that
  // disagree for a moment (a join not yet heard everywhere) only probe one
  // member twice and another not at all in that period. While our local health
  // is poor, the member we probed longest ago (#nextTarget); above the ring's
  // size cap, the shuffled round-robin of SWIM as memberlist runs it.
  #probeNext (): void {
    const slot = this.#slotAt(this.#now)
    // A node in poor health probes less often, as well as waiting longer: it
    // sits out `health` periods.
    this.#nextProbeMs = this.#slotStartMs(slot + 1 + this.#health)
    const target = this.#nextTarget(slot)
    if (target !== null) this.#startProbe(target)
  }

  #nextTarget (slot: number): PeerKey | null {
    const ring = this.#host.probeRing()
    // In poor health we sit out periods, and the periods we keep would give
    // targets in step with the ones we skip: sitting out 2 of every 3 periods
    // among 4 members, every probe would go to the same member and the others
    // would never be probed. Our slots in the schedule go unserved either way;
    // the member probed longest ago is next, so each is probed once before any
    // is probed twice.
    // Undefined: no ring (above its cap), or we are in poor health and not in it.
    let target: PeerKey | null | undefined
    if (ring !== null) target = this.#health > 0 ? this.#leastRecentlyProbed(ring, slot) : ring.target(this.#host.selfId, slot)
    if (target === undefined) {
      return this.#prober.nextTarget(
        () => this.#host.probeableIds(),
        (id) => this.#host.isProbeable(id),
        (ids) => this.#random.shuffle(ids)
      )
    }
    // Already under probe (a hint got there first): this period's probe is that one.
    if (target === null || !this.#host.isProbeable(target) || this.#prober.isProbing(target)) return null
    return target
  }

  // The probeable member we last probed longest ago (never first), taken in ring
  // order from this period's scheduled target; null when none is free to probe,
  // undefined when we are not in the ring. At most the ring's size cap to scan,
  // and only in poor health. (The shuffled round-robin, used before, could probe
  // one member again before reaching the others: cut off from 3 members, the
  // fourth probe came ~11 s after the first.)
  #leastRecentlyProbed (ring: ProbeRing, slot: number): PeerKey | null | undefined {
    const self = this.#host.selfId
    if (ring.target(self, slot) === null) return undefined
    let best: PeerKey | null = null
    let bestMs = Infinity
    for (let k = 0; k < ring.size - 1; k++) {
      const id = ring.target(self, slot + k) as PeerKey
      if (!this.#host.isProbeable(id) || this.#prober.isProbing(id)) continue
      const at = this.#lastProbedMs.get(id) ?? -Infinity
      if (at < bestMs) {
        best = id
        bestMs = at
      }
    }
    return best
  }

  #slotAt (nowMs: number): number {
    return Math.floor((nowMs + this.#clockOffsetMs) / this.#config.probeIntervalMs)
  }

  #slotStartMs (slot: number): number {
    return slot * this.#config.probeIntervalMs - this.#clockOffsetMs
  }

  #startProbe (target: PeerKey): void {
    this.#noteProbed(target)
    const graceMs = this.#connected.has(target) ? 0 : this.#config.firstContactGraceMs
    const probe = this.#prober.start(
      target, this.#host.incarnationOf(target), this.#now,
      scaleByHealth(this.#config.probeTimeoutMs, this.#health) + graceMs,
      scaleByHealth(this.#config.probeIntervalMs, this.#health) + graceMs
    )
    this.#host.send(target, { type: 'ping', seq: probe.seq, updates: this.#host.piggyback(target) })
  }

  // Kept only while the ring is (above its cap the round-robin needs none);
  // entries of members no longer in it are dropped once they outnumber it.
  #noteProbed (target: PeerKey): void {
    const ring = this.#host.probeRing()
    if (ring === null) {
      this.#lastProbedMs.clear()
      return
    }
    this.#lastProbedMs.set(target, this.#now)
    if (this.#lastProbedMs.size <= 2 * ring.size) return
    for (const id of this.#lastProbedMs.keys()) if (!ring.has(id)) this.#lastProbedMs.delete(id)
  }

  #goIndirect (probe: Probe): void {
    const helpers = this.#host.randomAlive(this.#config.indirectChecks, [probe.target])
    const windowMs = scaleByHealth(this.#config.probeIntervalMs - this.#config.probeTimeoutMs, this.#health)
    this.#prober.goIndirect(probe, helpers.length, this.#now, windowMs)
    for (const helper of helpers) {
      this.#host.send(helper, { type: 'ping-req', seq: probe.seq, target: probe.target, updates: this.#host.piggyback(helper) })
    }
  }

  #probeFailed (probe: Probe): void {
    this.#prober.finish(probe)
    this.#host.emit({ type: 'probe', target: probe.target, result: 'failed' })
    // Lifeguard: missing nacks mean the intermediaries could not answer us either,
    // which points at our own side.
    const missedNacks = probe.expectedNacks > 0 ? probe.expectedNacks - probe.nacks : 1
    this.adjustHealth(missedNacks, 'probe failed without enough nacks')
    this.#host.probeFailed(probe.target, probe.incarnation)
  }
}
