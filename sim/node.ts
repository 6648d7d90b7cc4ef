// One simulated agent: the membership core and (optionally) the sessions core,
// what survives its crashes (incarnation, session disk), the inputs that queue
// while it is frozen, and the one timer that wakes both cores.

import type { AgentEvent, Command, Effect, Input, PeerKey } from '../agent/core/io.ts'
import type { Membership } from '../agent/membership/membership.ts'
import type { Sessions } from '../agent/sessions/sessions.ts'
import type { DiskWatch } from '../agent/sessions/disk-watch.ts'
import type { ClientReply, SessionCommand, SessionEffect, SessionEvent, SessionInput } from '../agent/sessions/types.ts'
import type { Message, SessionMessage } from '../protocol/messages.ts'
import { SimSessionDisk } from './disk.ts'
import { orderAroundCommit } from '../agent/sessions/commit-order.ts'
import type { SessionDurable } from '../agent/sessions/types.ts'
import { heldBatch } from '../agent/runtime/driver.ts'

export type NodeState = 'running' | 'paused' | 'crashed'

export type Traffic = { messagesOut: number; bytesOut: number; messagesIn: number; bytesIn: number }

// What a node asks of the cluster that hosts it.
export interface NodeHost {
  readonly nowMs: number
  send (from: SimNode, to: PeerKey, message: Message): void
  publish (from: SimNode, message: Message): void
  // `atMs`: when the step that produced the event ran (default: now).
  record (node: SimNode, event: AgentEvent | SessionEvent, atMs?: number): void
  reply (node: SimNode, requestId: string, reply: ClientReply): void
  at (atMs: number, run: () => void): void
  // How long a commit of session records takes when frames left before it
  // (virtual ms; SimOptions.fsyncMs).
  readonly fsyncMs: number
  // Slow fsyncs are simulated (SimOptions.slowFsyncs) or this node's disk is
  // stalled (SimCluster.stallDisk): every commit of session records takes its
  // time (fsyncDelayMs()), not only one with frames out before it.
  commitsWait (node: SimNode): boolean
  // How long this node's commit takes (virtual ms): fsyncMs, or a stall.
  fsyncDelayMs (node: SimNode): number
}

type Queued =
  | { core: 'membership'; input: Input }
  | { core: 'sessions'; input: SessionInput }

// More ticks than this in a row at one time is a core that never gets due.
const MAX_WAKES_AT_ONE_TIME = 1_000

export class SimNode {
  readonly id: PeerKey
  readonly index: number
  membership: Membership | null = null
  sessions: Sessions | null = null
  state: NodeState = 'crashed'
  // What survives a crash: the persisted incarnation and the sessions' disk.
  diskIncarnation = 0
  readonly disk = new SimSessionDisk()
  // Inputs that reached a frozen node, handled when it resumes.
  inbox: Queued[] = []
  // Peers it has exchanged direct messages with, in first-contact order: they
  // notice when it crashes. Changed through addPeer/dropPeer/clearPeers.
  readonly peers = new Set<PeerKey>()
  // The same peers as bits by node index: every direct message asks whether its
  // ends are peers already, and a hash lookup in a set of ~N ids per node was
  // ~3% of a 1,000-node run.
  #peerBits = new Uint8Array(0)
  readonly traffic: Traffic = { messagesOut: 0, bytesOut: 0, messagesIn: 0, bytesIn: 0 }
  // When the next tick is due, on this node's own clock (nowMs below).
  tickAtMs = Infinity
  // This life's own clock (SimOptions.clocks), or null: the node reads virtual
  // time. bootLocalMs: what it read at boot; bootMs: the virtual time of the
  // boot; rate: local ms per virtual ms.
  #clock: { bootLocalMs: number; bootMs: number; rate: number } | null = null
  // A timer set for local time T fires at the virtual time that maps to T; the
  // clock then reads at least T (float rounding must not leave the core a hair
  // short of its own wake-up, which would set the same timer again forever).
  #clockFloorMs = -Infinity
  // Ticks in a row at one local time: a core whose nextWakeMs names a time
  // its tick does not treat as due would be woken at that time forever.
  #wakesAtOneTime = 0
  #lastWakeMs = NaN
  readonly #host: NodeHost
  // A step whose early frames have left and whose commit has not happened yet:
  // lost if the node crashes first.
  #uncommitted: { durable: SessionDurable[]; late: SessionEffect[]; stepMs: number } | null = null
  // Sessions inputs that arrived during that commit: stepped after it, as one
  // batch (the real host's driver holds them while its fsync runs).
  #held: SessionInput[] = []
  #tickHeld = false
  // This life's disk verdict, as the real host keeps it (disk-watch.ts): fed
  // each commit's fsync time, it tells the sessions core when it changes.
  diskWatch: DiskWatch | null = null

  constructor (id: PeerKey, index: number, host: NodeHost) {
    this.id = id
    this.index = index
    this.#host = host
  }

  // This node's monotonic clock, the only time its cores see: a real agent
  // reads performance.now(), which starts near 0 when its process starts and
  // runs at its machine's rate.
  get nowMs (): number {
    const clock = this.#clock
    if (clock === null) return this.#host.nowMs
    return Math.max(this.#clockFloorMs, clock.bootLocalMs + clock.rate * (this.#host.nowMs - clock.bootMs))
  }

  // A new life's clock: it reads `localMs` now and runs at `rate`.
  setClock (localMs: number, rate: number): void {
    this.#clock = { bootLocalMs: localMs, bootMs: this.#host.nowMs, rate }
    this.#clockFloorMs = -Infinity
  }

  // The virtual time at which this node's clock reads `localMs` (now, if it
  // already has).
  #virtualAt (localMs: number): number {
    const clock = this.#clock
    if (clock === null) return localMs
    return Math.max(this.#host.nowMs, clock.bootMs + (localMs - clock.bootLocalMs) / clock.rate)
  }

  addPeer (peer: SimNode): void {
    const byte = peer.index >> 3
    const bit = 1 << (peer.index & 7)
    if (byte >= this.#peerBits.length) {
      const bits = new Uint8Array(Math.max(16, 2 * this.#peerBits.length, byte + 1))
      bits.set(this.#peerBits)
      this.#peerBits = bits
    } else if ((this.#peerBits[byte] & bit) !== 0) return
    this.#peerBits[byte] |= bit
    this.peers.add(peer.id)
  }

  dropPeer (peer: SimNode): void {
    const byte = peer.index >> 3
    if (byte < this.#peerBits.length) this.#peerBits[byte] &= ~(1 << (peer.index & 7))
    this.peers.delete(peer.id)
  }

  clearPeers (): void {
    this.#peerBits.fill(0)
    this.peers.clear()
  }

  // Frames of a step have left and its commit has not happened yet.
  get committing (): boolean {
    return this.#uncommitted !== null
  }

  // The membership core, for callers that need it (tests read views through it).
  get core (): Membership | null {
    return this.membership
  }

  crash (): void {
    this.state = 'crashed'
    this.disk.crash()
    this.membership = null
    this.sessions = null
    this.inbox = []
    this.tickAtMs = Infinity
    this.#uncommitted = null
    this.#held = []
    this.#tickHeld = false
  }

  command (command: Command): void {
    this.#deliver({ core: 'membership', input: { kind: 'command', nowMs: this.nowMs, command } })
  }

  sessionCommand (command: SessionCommand): void {
    if (this.sessions === null && this.state !== 'paused') return
    this.#deliver({ core: 'sessions', input: { kind: 'command', nowMs: this.nowMs, command } })
  }

  receive (from: PeerKey, channel: 'direct' | 'gossip', message: Message): void {
    if (message.type.startsWith('session-')) {
      this.#deliver({ core: 'sessions', input: { kind: 'receive', nowMs: this.nowMs, from, message: message as SessionMessage } })
    } else {
      this.#deliver({ core: 'membership', input: { kind: 'receive', nowMs: this.nowMs, from, channel, message } })
    }
  }

  // A transport hint concerns both cores.
  hint (type: 'disconnected' | 'unreachable', peer: PeerKey): void {
    this.command({ type, peer })
    if (this.sessions !== null || this.state === 'paused') this.sessionCommand({ type, peer })
  }

  // SIGCONT: the overdue timer runs first, then the backlog is read.
  resume (): void {
    this.state = 'running'
    const queued = this.inbox
    this.inbox = []
    this.#finishCommit()
    this.tick()
    for (const item of queued) {
      if (this.state !== 'running') break
      this.#run({ ...item, input: { ...item.input, nowMs: this.nowMs } } as Queued)
    }
    this.schedule()
  }

  tick (): void {
    const now = this.nowMs
    if (this.membership !== null) this.#performMembership(this.membership.step({ kind: 'tick', nowMs: now }))
    if (this.sessions === null) return
    if (this.#uncommitted !== null) this.#tickHeld = true
    else this.#performSessions(this.sessions.step({ kind: 'tick', nowMs: now }))
  }

  #deliver (item: Queued): void {
    if (this.state === 'crashed') return
    if (this.state === 'paused') {
      this.inbox.push(item)
      return
    }
    this.#run(item)
    this.schedule()
  }

  #run (item: Queued): void {
    if (item.core === 'membership') {
      if (this.membership !== null) this.#performMembership(this.membership.step(item.input))
    } else if (this.#uncommitted !== null) {
      this.#held.push(item.input)
    } else if (this.sessions !== null) {
      this.#performSessions(this.sessions.step(item.input))
    }
  }

  // One timer for both cores, at the earlier of their wake-ups.
  schedule (): void {
    const membership = this.membership
    if (membership === null || this.state !== 'running') return
    // The sessions core's wake-up waits for a commit under way (its tick is held).
    const wake = Math.min(membership.nextWakeMs(), this.#uncommitted === null ? (this.sessions?.nextWakeMs() ?? Infinity) : Infinity)
    if (!Number.isFinite(wake) || wake >= this.tickAtMs) return
    this.tickAtMs = wake
    this.#host.at(this.#virtualAt(wake), () => {
      if (this.membership !== membership || this.tickAtMs !== wake) return
      this.tickAtMs = Infinity
      this.#clockFloorMs = Math.max(this.#clockFloorMs, wake)
      this.#wakesAtOneTime = wake === this.#lastWakeMs ? this.#wakesAtOneTime + 1 : 0
      this.#lastWakeMs = wake
      if (this.#wakesAtOneTime > MAX_WAKES_AT_ONE_TIME) {
        throw new Error(`${this.id}: woken ${this.#wakesAtOneTime} times at ${wake} ms (membership wake ${membership.nextWakeMs()}, sessions ${this.sessions?.nextWakeMs() ?? 'none'}): a core's nextWakeMs names a time its tick does not treat as due`)
      }
      if (this.state !== 'running') return
      this.tick()
      this.schedule()
    })
  }

  #performMembership (effects: Effect[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case 'send': this.#host.send(this, effect.to, effect.message); break
        case 'publish': this.#host.publish(this, effect.message); break
        case 'persist': this.diskIncarnation = Math.max(this.diskIncarnation, effect.record.incarnation); break
        case 'event': this.#host.record(this, effect.event)
      }
    }
  }

  // The order of the real host (agent/runtime/sessions-host.ts, rule in
  // agent/sessions/commit-order.ts): an owner's entries to standbys and answers
  // acknowledging entries of earlier steps leave at once, the commit takes
  // fsyncMs, then the rest leaves (acks, votes, other replies). A crash in
  // between loses the step's records: what the checkers must survive. A step
  // whose records are only commit indexes writes nothing (the real store keeps
  // them, session-store-commits.ts), so it has no commit to wait for.
  // Sessions inputs arriving meanwhile wait and are stepped after the commit,
  // as one batch, as the real host's driver holds them during its fsync.
  #performSessions (effects: SessionEffect[]): void {
    this.#finishCommit()
    // Most steps (ticks of a node holding no session) have nothing to do.
    if (effects.length === 0) return
    const durable: SessionDurable[] = []
    for (const effect of effects) if (effect.kind === 'persist') durable.push(effect.record)
    const { early, late } = orderAroundCommit(effects, durable)
    // Commit indexes only (or nothing at all): nothing to wait for. Otherwise
    // the commit takes its time where frames left before it, or, with slow
    // fsyncs simulated, always: a standby's ack then waits for it too.
    const onlyCommits = durable.every((record) => record.kind === 'session-commit')
    const waits = !onlyCommits && (this.#host.commitsWait(this) || (early.length > 0 && this.#host.fsyncMs > 0))
    if (!waits) {
      this.disk.apply(durable)
      for (const effect of effects) this.#sessionEffect(effect)
      // A commit that takes no virtual time was an fsync all the same (the
      // real host times every one): the watch sees the disk fast again.
      if (!onlyCommits) this.#timedCommit(0)
      return
    }
    for (const effect of early) this.#sessionEffect(effect)
    const uncommitted = { durable, late, stepMs: this.#host.nowMs }
    this.#uncommitted = uncommitted
    const fsyncMs = this.#host.fsyncDelayMs(this)
    this.#host.at(this.#host.nowMs + fsyncMs, () => {
      // A frozen process finishes its fsync when it resumes.
      if (this.#uncommitted !== uncommitted || this.state !== 'running') return
      this.#finishCommit()
      this.schedule()
      this.#timedCommit(fsyncMs)
    })
  }

  // The real host's disk watch, fed this commit's time; the sessions core hears
  // when its verdict changes (after the step that committed, as a command).
  #timedCommit (fsyncMs: number): void {
    const watch = this.diskWatch
    const slow = watch?.observe(this.nowMs, fsyncMs) ?? null
    if (slow === null) return
    // Only to the life that measured it.
    this.#host.at(this.#host.nowMs, () => { if (this.diskWatch === watch) this.sessionCommand({ type: 'disk', slow }) })
  }

  #finishCommit (): void {
    const uncommitted = this.#uncommitted
    if (uncommitted === null) return
    this.#uncommitted = null
    this.disk.apply(uncommitted.durable)
    for (const effect of uncommitted.late) this.#sessionEffect(effect, uncommitted.stepMs)
    if (this.#tickHeld) this.#held.push({ kind: 'tick', nowMs: this.nowMs })
    const held = heldBatch(this.#held, this.nowMs)
    this.#held = []
    this.#tickHeld = false
    if (held.length === 0 || this.sessions === null) return
    const effects: SessionEffect[] = []
    for (const input of held) for (const effect of this.sessions.step(input)) effects.push(effect)
    this.#performSessions(effects)
  }

  // An event is recorded at the time of the step that produced it, even when
  // it waited for the step's commit: an owner's 'acknowledged' records when it
  // decided, on the lease it held then, which a stalled fsync may delay by
  // seconds (the answer is as true then: its entries were committed).
  #sessionEffect (effect: SessionEffect, stepMs?: number): void {
    switch (effect.kind) {
      case 'send': this.#host.send(this, effect.to, effect.message); break
      case 'event': this.#host.record(this, effect.event, stepMs); break
      case 'reply': this.#host.reply(this, effect.requestId, effect.reply)
    }
  }
}

export { SimSessionDisk }
