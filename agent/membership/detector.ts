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

  // A direct message arrived from `peer`. If we are probing it, that answers the
  // probe as an ack would: the member was up after the probe began. In poor
  // health a probe's windows stretch to several periods; without this, a probe
  // whose ping and relays were all lost could fail seconds after the member had
  // last talked to us, and accuse it on stale evidence (traced in the
  // membership sweep: a probe started at health 5 failed 7.5 s later, after two
  // exchanges with its target, and the suspicion ran out unrefuted under loss).
  heard (peer: PeerKey): void {
    this.#connected.add(peer)
    const probe = this.#prober.probeOf(peer)
    if (probe === null) return
    this.#prober.finish(probe)
    this.#answered(peer, 'ack')
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
      this.#answered(match.probe.target, from === match.probe.target ? 'ack' : 'indirect-ack')
    } else if (match.kind === 'relay') {
      const relay = match.relay
      this.#host.send(relay.requester, { type: 'ack', seq: relay.requesterSeq, updates: this.#host.piggyback(relay.requester) })
    }
  }

  #answered (target: PeerKey, result: 'ack' | 'indirect-ack'): void {
    this.#host.emit({ type: 'probe', target, result })
    this.adjustHealth(-1, 'probe acknowledged')
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
  // member twice and another not at all in that period. Above the ring's size
  // cap, the shuffled round-robin of SWIM as memberlist runs it.
  //
  // In poor local health we still probe every period, with our timeouts
  // stretched (#startProbe). Lifeguard, as memberlist runs it, also probes less
  // often; here that would leave our scheduled target unprobed in each period
  // we sat out, and nobody else knows to cover it: a member that froze then
  // waited a period more for its first probe (48 of 1,000 simulated freezes
  // just after a restart and a stall of 1–3 other members: last verdict up to
  // 3.4 s, against at most 2.0 s now). A real failure still ends our probe early:
  // the intermediaries' nacks (at 80% of their own, unstretched, timeout) say
  // they could not reach the target either. Without those nacks our health
  // rises further, and our stretched timeouts keep us slow to accuse.
  #probeNext (): void {
    const slot = this.#slotAt(this.#now)
    this.#nextProbeMs = this.#slotStartMs(slot + 1)
    const target = this.#nextTarget(slot)
    if (target !== null) this.#startProbe(target)
    this.#warmUp(slot + 1)
  }

  // A first probe of a member waits `firstContactGraceMs` more for the
  // connection (#startProbe); a member that froze before our first probe of it
  // was noticed that much later (traced after a restart: the restarted agent,
  // connected to nobody, was the frozen member's scheduled prober). So next
  // period's target, if we have not heard from it directly since its last
  // disconnect, gets a ping now: the connection opens a period early, and the
  // probe that follows needs no grace. Its ack matches no probe (Prober.ack)
  // and only marks the member heard. At rest every member is connected and no
  // such ping is sent; after a restart, one per period at most.
  #warmUp (slot: number): void {
    const ring = this.#host.probeRing()
    const next = ring === null ? null : ring.target(this.#host.selfId, slot)
    if (next === null || this.#connected.has(next) || !this.#host.isProbeable(next) || this.#prober.isProbing(next)) return
    this.#host.send(next, { type: 'ping', seq: this.#prober.nextSeq(), updates: this.#host.piggyback(next) })
  }

  #nextTarget (slot: number): PeerKey | null {
    const ring = this.#host.probeRing()
    if (ring === null) {
      return this.#prober.nextTarget(
        () => this.#host.probeableIds(),
        (id) => this.#host.isProbeable(id),
        (ids) => this.#random.shuffle(ids)
      )
    }
    // Null from the ring: we are not in it (yet), or alone in it. Already under
    // probe (a hint got there first): this period's probe is that one.
    const target = ring.target(this.#host.selfId, slot)
    if (target === null || !this.#host.isProbeable(target) || this.#prober.isProbing(target)) return null
    return target
  }

  #slotAt (nowMs: number): number {
    return Math.floor((nowMs + this.#clockOffsetMs) / this.#config.probeIntervalMs)
  }

  #slotStartMs (slot: number): number {
    return slot * this.#config.probeIntervalMs - this.#clockOffsetMs
  }

  #startProbe (target: PeerKey): void {
    const graceMs = this.#connected.has(target) ? 0 : this.#config.firstContactGraceMs
    const probe = this.#prober.start(
      target, this.#host.incarnationOf(target), this.#now,
      scaleByHealth(this.#config.probeTimeoutMs, this.#health) + graceMs,
      scaleByHealth(this.#config.probeIntervalMs, this.#health) + graceMs
    )
    this.#host.send(target, { type: 'ping', seq: probe.seq, updates: this.#host.piggyback(target) })
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
