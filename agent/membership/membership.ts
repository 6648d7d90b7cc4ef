// Membership: the member table, kept by SWIM with the Lifeguard refinements.
// Failure detection (probes, local health) lives in detector.ts; this file owns
// what the cluster believes: signed records, accusations and refutations,
// piggybacked and published gossip, and push-pull anti-entropy. One deterministic
// state machine: `step()` takes an input and returns effects; it reads no clock,
// draws randomness only from the injected Random, and touches no socket.

import { encodeAccusation } from '../../protocol/codec.ts'
import type {
  Accusation, Entry, Message, MemberStatus, NodeRecord, PeekMember, SignedAccusation, SignedRecord, Update
} from '../../protocol/messages.ts'
import type { AgentEvent, Auth, Command, Effect, Input, PeerKey, Random, SelfPatch } from '../core/io.ts'
import type { MemberDirectory } from '../sessions/types.ts'
import { AntiEntropy } from './antientropy.ts'
import { BroadcastQueue } from './broadcast.ts'
import type { MembershipConfig } from './config.ts'
import { FailureDetector } from './detector.ts'
import { expectedConfirmations, gossipScaleMs, retransmitLimit, suspicionBoundsMs, suspicionTimeoutMs } from './math.ts'
import { rateAllowed } from './rate.ts'
import { onlyLoadChanged, SelfRecord } from './self.ts'
import type { MemberNumbers } from './numbers.ts'
import { MemberTable, claimIsNewer, compareVersion, setSelfRecord } from './table.ts'
import type { AccusationOutcome, Member, RecordOutcome } from './table.ts'

export type MembershipOptions = {
  // The own record as it starts; incarnation comes from the data directory
  // (raised at every start), seq starts at 0.
  self: Omit<NodeRecord, 'seq' | 'status'>
  config: MembershipConfig
  random: Random
  auth: Auth
  nowMs: number
  // The numbering of member ids behind the member table (numbers.ts). Omitted,
  // the table has its own; the simulator shares one among all its nodes.
  memberNumbers?: MemberNumbers
  // The wall-clock time (ms since the epoch) at `nowMs` = 0: it puts every
  // agent's probe periods on one grid (detector.ts). Omitted, 0: all members
  // share one clock, as in the simulator.
  clockOffsetMs?: number
}

// Incarnations are safe integers on the wire; never refute past this.
const MAX_INCARNATION = Number.MAX_SAFE_INTEGER - 1

// Members expected to act on a transport hint about the same peer (see
// #actOnTransportHint).
const HINT_ACTORS = 8

// Probe messages carry membership news: a new member, a status change (refutation,
// departure), a change of what a member offers. A record that only moved its load
// is not news: re-piggybacking every load tick from every member would dominate
// the cluster's bandwidth. Records learnt by push-pull are the table's state, not
// news, unless they change a status.
function worthPiggybacking (outcome: RecordOutcome, news: boolean): boolean {
  if (outcome.kind === 'ignored') return false
  if (outcome.kind === 'updated' && outcome.statusChanged) return true
  if (!news) return false
  return outcome.kind === 'joined' || !onlyLoadChanged(outcome.before, outcome.member.signed.record)
}

export class Membership {
  readonly id: PeerKey
  readonly #config: MembershipConfig
  readonly #random: Random
  readonly #auth: Auth
  readonly #table: MemberTable
  readonly #broadcasts = new BroadcastQueue()
  readonly #detector: FailureDetector
  readonly #own: SelfRecord
  readonly #self: Member
  #out: Effect[] = []
  #now: number
  #wakeAtMs: number | null = null
  #leaving = false
  readonly #antiEntropy: AntiEntropy
  // Whether another member's record has reached our table since we started
  // (directory().joining).
  #metAnother = false
  // Signed records of this node's id that it did not sign in this life
  // (#recordAboutSelf), and whether it has said that another node holds its key.
  #steppedPastSelf = 0
  #conflictReported = false
  readonly #lastStaleAnswerMs = new Map<PeerKey, number>()
  // Per id, when both sides of an equivocation were last shown (#checkEquivocation).
  readonly #lastEquivocationMs = new Map<PeerKey, number>()
  #nextRefreshMs: number
  #nextReapMs: number
  #lastPublishMs = -Infinity
  readonly #startMs: number
  #publishPendingAtMs = Infinity

  constructor (options: MembershipOptions) {
    this.id = options.self.id
    this.#config = options.config
    this.#random = options.random
    this.#auth = options.auth
    this.#now = options.nowMs
    this.#startMs = options.nowMs
    this.#table = new MemberTable(options.memberNumbers)
    this.#own = new SelfRecord({ ...options.self, seq: 0, status: 'alive' }, options.auth)
    this.#self = this.#table.addSelf(this.#own.signed, options.nowMs)
    this.#detector = new FailureDetector(options.config, options.random, {
      send: (to, message) => this.#send(to, message),
      piggyback: (recipient) => this.#piggyback(recipient),
      emit: (event) => this.#emit(event),
      isProbeable: (id) => this.#isProbeable(id),
      probeableIds: () => this.#probeableIds(),
      randomAlive: (count, exclude) => this.#randomAlive(count, exclude),
      incarnationOf: (id) => this.#table.get(id)?.statusIncarnation ?? 0,
      probeFailed: (target, incarnation) => this.#probeFailed(target, incarnation),
      probeRing: () => this.#table.probeRing(),
      selfId: this.id
    }, options.nowMs, options.clockOffsetMs ?? 0)
    this.#antiEntropy = new AntiEntropy(options.config, options.random, this.#table, this.id, {
      send: (to, message) => this.#send(to, message),
      randomAlive: (count, exclude) => this.#randomAlive(count, exclude),
      merge: (entries, from) => this.#mergeEntries(entries, from)
    }, options.nowMs)
    this.#nextRefreshMs = options.nowMs + this.#random.nextInt(Math.max(1, this.#config.recordRefreshIntervalMs))
    this.#nextReapMs = options.nowMs + this.#reapCheckMs()
  }

  step (input: Input): Effect[] {
    this.#out = []
    this.#now = input.nowMs
    if (!this.#leaving) {
      const timersDue = input.kind === 'tick' || (this.#wakeAtMs !== null && this.#now >= this.#wakeAtMs)
      this.#checkStall()
      if (input.kind === 'receive') this.#onReceive(input.from, input.channel, input.message)
      else if (input.kind === 'command') this.#onCommand(input.command)
      // Due timers run on whatever input comes first, so the core is never left
      // behind its own deadlines (and a backlog read after one stall counts as one
      // stall). The input goes first: an answer read at its deadline counts.
      if (timersDue && !this.#leaving) this.#onTick()
    }
    // Not before now: an input can move a deadline behind us (a confirmation
    // shortens a suspicion that began long ago). The host then ticks at once,
    // and that tick must not be measured against the past deadline and taken
    // for a stall of our own (which would extend every suspicion and degrade
    // local health: a slower verdict for nothing).
    this.#wakeAtMs = Math.max(this.#now, this.#computeWakeMs())
    const out = this.#out
    // Not kept until the next input: a merge of a large table returns an event
    // per member learnt.
    this.#out = []
    return out
  }

  // The earliest time the core needs a tick; hosts schedule one for then. Only
  // step() changes the core's state, so the value it computed last holds.
  nextWakeMs (): number {
    return this.#wakeAtMs ?? this.#computeWakeMs()
  }

  #computeWakeMs (): number {
    if (this.#leaving) return Infinity
    return Math.min(
      this.#detector.nextWakeMs(), this.#table.earliestSuspicionDeadlineMs(), this.#antiEntropy.nextWakeMs(),
      this.#nextRefreshMs, this.#publishPendingAtMs, this.#nextReapMs
    )
  }

  get incarnation (): number {
    return this.#own.record.incarnation
  }

  get record (): NodeRecord {
    return this.#own.record
  }

  // The own record as signed, as other members hold it.
  get signedRecord (): SignedRecord {
    return this.#own.signed
  }

  get health (): number {
    return this.#detector.health
  }

  get leaving (): boolean {
    return this.#leaving
  }

  // Read-only view for peek and the HTTP API, including the local node.
  snapshot (nowMs: number): PeekMember[] {
    const view: PeekMember[] = []
    for (const member of this.#table.all()) {
      const lastHeardMs = member.id === this.id ? 0 : Math.max(0, Math.round(nowMs - member.lastHeardMs))
      view.push({ record: member.signed.record, status: member.status, statusIncarnation: member.statusIncarnation, lastHeardMs })
    }
    return view
  }

  // Members alive or suspect (self included), and of those the suspects.
  get liveCount (): number {
    return this.#table.liveCount
  }

  get suspectCount (): number {
    return this.#table.suspectCount
  }

  statusOf (id: PeerKey): MemberStatus | null {
    return this.#table.statusOf(id)
  }

  // The table as other cores read it (sessions: placement, liveness of members).
  directory (): MemberDirectory {
    return {
      self: this.id,
      status: (id) => this.statusOf(id),
      record: (id) => this.#table.get(id)?.signed.record ?? null,
      alive: () => {
        const records: NodeRecord[] = []
        for (const member of this.#table.all()) if (member.status === 'alive') records.push(member.signed.record)
        return records
      },
      joining: () => this.#antiEntropy.hasBootstrap && !this.#metAnother
    }
  }

  // ---- time ---------------------------------------------------------------

  // An input far later than the wake-up we asked for means our own event loop (or
  // process) stalled. Nothing could be heard meanwhile, so pending timeouts are
  // extended by the stall (plus a grace for the backlog of inputs to be read) and
  // local health degrades: Lifeguard's answer to a slow node accusing others.
  #checkStall (): void {
    if (this.#wakeAtMs === null) return
    const lateMs = this.#now - this.#wakeAtMs
    if (lateMs <= this.#config.stallThresholdMs) return
    const extendMs = lateMs + this.#config.stallThresholdMs
    this.#table.extendSuspicions(extendMs, this.#now + this.#config.stallThresholdMs)
    this.#emit({ type: 'stall', lateMs })
    this.#detector.stalled(extendMs)
  }

  #onTick (): void {
    this.#detector.tick(this.#now)
    for (const member of this.#table.expiredSuspicions(this.#now)) {
      const confirmations = (member.suspicion?.accusers.size ?? 1) - 1
      // Every member that heard the suspicion reaches its deadline within a few
      // ms of the others: if each published its verdict, a failure would cost
      // every member N messages. Only the accusers (the few that probed the
      // suspect and failed: they heard the suspicion first, so their deadlines
      // come first) publish; the rest decide on their own deadline and
      // piggyback the verdict, and whoever missed the suspicion hears the
      // accusers' verdicts.
      const accuser = this.#publishedSuspicion(member)
      this.#emit({ type: 'suspicion-expired', id: member.id, incarnation: member.statusIncarnation, confirmations })
      this.#accuse('dead', member, member.statusIncarnation, accuser)
    }
    this.#checkSuspects()
    this.#antiEntropy.tick(this.#now)
    if (this.#now >= this.#publishPendingAtMs) this.#publishOwnRecord()
    if (this.#now >= this.#nextRefreshMs) this.#refreshOwnRecord()
    if (this.#now >= this.#nextReapMs) this.#reap()
  }

  // ---- accusations --------------------------------------------------------

  // A probe failed: suspect the incarnation it probed. If the member's record
  // moved on meanwhile (it refuted a suspicion, or restarted), the failure says
  // nothing about the new one; accusing it anyway would invite a refutation, and
  // every probe still in flight from before would accuse the next one: a storm of
  // suspicions and refutations after a quick restart. (memberlist accuses the
  // incarnation it probed, too.)
  #probeFailed (target: PeerKey, incarnation: number): void {
    const member = this.#table.get(target)
    if (member === undefined || (member.status !== 'alive' && member.status !== 'suspect')) return
    if (member.statusIncarnation !== incarnation) return
    this.#accuse('suspect', member, incarnation)
  }

  #accuse (kind: 'suspect' | 'dead', member: Member, incarnation: number, publish = true): void {
    const accusation: Accusation = { kind, subject: member.id, incarnation, accuser: this.id }
    const bytes = encodeAccusation(accusation)
    const signed: SignedAccusation = { accusation, bytes, sig: this.#auth.sign(bytes) }
    const outcome = this.#table.applyAccusation(signed, accusation, this.#now, this.#suspicionDeadline)
    if (outcome.kind === 'ignored') return
    const update: Update = { kind: 'accusation', signed }
    this.#afterAccusation(outcome, update, this.id)
    // A confirmation beyond the k that Lifeguard counts shortens nobody's
    // timeout: keep it to ourselves (it still rides on probes).
    const needed = outcome.kind !== 'confirmed' || outcome.confirmations <= expectedConfirmations(this.#table.liveCount, this.#config.suspicionConfirmations)
    if (publish && needed) this.#publish([update])
    // Tell the accused directly too: if it is alive it refutes at once.
    if (kind === 'suspect') this.#send(member.id, { type: 'gossip', updates: [update] })
  }

  // Whether our suspicion of `member` went out on gossip: we were the accuser
  // or one of the first k confirmations (see #accuse).
  #publishedSuspicion (member: Member): boolean {
    const accusers = member.suspicion?.accusers
    if (accusers === undefined || !accusers.has(this.id)) return false
    const k = expectedConfirmations(this.#table.liveCount, this.#config.suspicionConfirmations)
    let position = 0
    for (const accuser of accusers) {
      if (accuser === this.id) return position <= k
      position++
    }
    return false
  }

  readonly #suspicionDeadline = (startMs: number, confirmations: number): number => {
    const n = this.#table.liveCount
    const { minMs, maxMs } = suspicionBoundsMs(n, this.#config.suspicionMinMs, this.#config.suspicionMaxTimeoutMult)
    const k = expectedConfirmations(n, this.#config.suspicionConfirmations)
    return startMs + suspicionTimeoutMs(confirmations, k, minMs, maxMs)
  }

  #afterAccusation (outcome: AccusationOutcome, update: Update, by: PeerKey): void {
    if (outcome.kind === 'ignored') return
    this.#broadcasts.enqueue(update)
    const member = outcome.member
    if (outcome.kind === 'confirmed') {
      this.#emit({ type: 'suspicion-confirmed', id: member.id, by, confirmations: outcome.confirmations })
      return
    }
    if (outcome.kind === 'died') this.#detector.removed(member.id)
    this.#emit({ type: 'member-status', id: member.id, status: member.status, previous: outcome.previous, incarnation: member.statusIncarnation, by })
    if (outcome.kind === 'suspected' && by !== this.id) this.#maybeConfirm(member, by)
  }

  // Lifeguard shrinks a suspicion's timeout as independent confirmations
  // arrive: k + 1 members probe the suspect now rather than at its turn (which
  // ones: detector.ts, confirm()).
  #maybeConfirm (member: Member, accuser: PeerKey): void {
    const n = this.#table.liveCount
    const k = expectedConfirmations(n, this.#config.suspicionConfirmations)
    this.#detector.confirm(member.id, accuser, k + 1, n, this.#now)
  }

  // Gossip reaches most members fast but not all (10% loss loses one in ten
  // published refutations, and piggybacking is random). A member that still holds
  // a suspicion a third and two thirds of the way to its deadline shows the
  // accusation to the suspect itself; a live suspect answers with its current
  // record (refuting if it had not yet). A confirmation that shortens the
  // deadline moves the showing before it (MemberTable.suspect). Confirmed
  // suspicions are shown too: in a view of 3 or 4 live members under loss, two
  // probes can fail against a live member, one confirms the other, the
  // suspicion runs its 500 ms minimum, and the suspect's one answer to a holder
  // may be lost (the membership sweep's last false dead verdicts, seeds 26917,
  // 34949, 46235). A real failure costs one message per holder.
  #checkSuspects (): void {
    for (const member of this.#table.dueChecks(this.#now)) {
      const suspicion = member.suspicion
      if (suspicion === null) continue
      suspicion.checks++
      const second = suspicion.startMs + Math.floor(2 * (suspicion.deadlineMs - suspicion.startMs) / 3)
      suspicion.checkAtMs = suspicion.checks >= 2 || second <= this.#now ? Infinity : second
      if (member.accusation !== null) this.#send(member.id, { type: 'gossip', updates: [{ kind: 'accusation', signed: member.accusation }] })
    }
  }

  // Someone says we are suspect or dead: raise our incarnation above the claim and
  // make sure the accuser, whoever told us, and everyone else hear it.
  #refute (claimIncarnation: number, accusation: MemberStatus, by: PeerKey, from: PeerKey): void {
    // Already refuted: whoever showed us the stale claim is behind; answer it.
    if (claimIncarnation < this.#own.record.incarnation) return this.#answerStale(from)
    if (claimIncarnation >= MAX_INCARNATION) return
    this.#own.refute(claimIncarnation)
    // The stale answers' rate limit keeps a member from being sent the same
    // record over and over; the new incarnation is news to every one of them
    // (one that missed this refutation must not wait a probe period for it,
    // while its suspicion of us runs out).
    this.#lastStaleAnswerMs.clear()
    this.#out.push({ kind: 'persist', record: { kind: 'incarnation', incarnation: this.#own.record.incarnation } })
    setSelfRecord(this.#self, this.#own.signed)
    this.#emit({ type: 'refuted', incarnation: this.#own.record.incarnation, accusation, by })
    this.#detector.adjustHealth(1, 'had to refute a suspicion')
    const update = this.#ownUpdate()
    this.#broadcasts.enqueue(update)
    this.#publish([update])
    if (by !== this.id) this.#send(by, { type: 'gossip', updates: [update] })
    if (from !== by && from !== this.id) this.#send(from, { type: 'gossip', updates: [update] })
  }

  // At most one answer per peer per quarter of the minimum suspicion: a member
  // holding a suspicion of us shows it to us again a third and two thirds of the
  // way to its deadline (#checkSuspects), and each showing must get its own
  // answer, or one lost answer (and a confirmation that shortens the deadline)
  // makes a false verdict. Once per probe period was too rare for that.
  #answerStale (peer: PeerKey): void {
    const gapMs = Math.floor(this.#config.suspicionMinMs / 4)
    if (peer === this.id || !rateAllowed(this.#lastStaleAnswerMs, peer, this.#now, gapMs)) return
    this.#send(peer, { type: 'gossip', updates: [this.#ownUpdate()] })
  }

  // ---- receiving ----------------------------------------------------------

  #onReceive (from: PeerKey, channel: 'direct' | 'gossip', message: Message): void {
    if (from === this.id) return
    if (channel === 'gossip') {
      if (message.type === 'gossip') this.#applyUpdates(message.updates, from, 'gossip')
      else this.#reject(from, `${message.type} is not a gossip message`)
      return
    }
    const exchange = message.type === 'push-pull-request' || message.type === 'push-pull-reply' || message.type === 'push-pull-entries'
    this.#heardDirectly(from, !exchange)
    switch (message.type) {
      case 'ping':
        this.#applyUpdates(message.updates, from, 'direct')
        return this.#detector.onPing(from, message.seq, this.#now)
      case 'ack':
        this.#applyUpdates(message.updates, from, 'direct')
        return this.#detector.onAck(from, message.seq, this.#now)
      case 'ping-req':
        this.#applyUpdates(message.updates, from, 'direct')
        return this.#detector.onPingReq(from, message.seq, message.target, this.id, this.#now)
      case 'nack': return this.#detector.onNack(message.seq, this.#now)
      case 'gossip': return this.#applyUpdates(message.updates, from, 'direct')
      case 'push-pull-request': return this.#antiEntropy.onRequest(from, message.join, message.digest, this.#now)
      case 'push-pull-reply': return this.#antiEntropy.onReply(from, message.entries, message.want)
      case 'push-pull-entries': return this.#mergeEntries(message.entries, from)
      default: return this.#reject(from, `${message.type} is not a membership message`)
    }
  }

  // A direct message proves the sender is up. A sender we do not know, or believe
  // dead, gets a push-pull: it learns the table (and refutes if it was buried),
  // and we learn its record.
  #heardDirectly (from: PeerKey, introduce: boolean): void {
    const known = this.#table.heardFrom(from, this.#now)
    this.#detector.heard(from)
    const stranger = !known || this.#table.statusOf(from) === 'dead'
    if (introduce && stranger) this.#antiEntropy.introduce(from, this.#now)
  }

  #applyUpdates (updates: Update[], from: PeerKey, channel: 'direct' | 'gossip'): void {
    for (const update of updates) {
      if (update.kind === 'record') this.#applyRecord(update, from, channel)
      else this.#applyAccusation(update, from, channel)
    }
  }

  // `news` is false for records that come from a push-pull exchange (but the
  // sender's own): they are the table's state, not fresh news, and
  // re-broadcasting a whole table after every join would flood the piggyback
  // queues.
  #applyRecord (update: Update & { kind: 'record' }, from: PeerKey, channel: 'direct' | 'gossip', news = true): void {
    const record = update.signed.record
    // Gossip's signed origin must be the record's author: nobody speaks for another.
    if (channel === 'gossip' && record.id !== from) return this.#reject(from, `gossip from ${from} carried the record of ${record.id}`)
    if (record.id === this.id) return this.#recordAboutSelf(update.signed, from)
    // Old and duplicate versions are dropped before the (costly) signature check.
    if (!this.#table.wouldApplyRecord(record)) return this.#checkEquivocation(update.signed, from)
    if (!this.#auth.verify(record.id, update.signed.bytes, update.signed.sig)) return this.#reject(from, `bad signature on the record of ${record.id}`)
    // Gossipsub delivered a published record to every member already: a join
    // or change heard that way is not piggybacked again (a status change still
    // is: refutations must not depend on one path). Without this, a mass join
    // filled every member's queue with N records × retransmits for minutes.
    this.#afterRecord(this.#table.applyRecord(update.signed, this.#now), update, news && channel === 'direct')
  }

  #afterRecord (outcome: RecordOutcome, update: Update, news: boolean): void {
    if (outcome.kind === 'ignored') return
    if (worthPiggybacking(outcome, news)) this.#broadcasts.enqueue(update)
    const member = outcome.member
    if (outcome.kind === 'joined') {
      if (member.id !== this.id) this.#metAnother = true
      this.#detector.added(member.id, this.#table.size)
      this.#emit({ type: 'member-joined', id: member.id, record: member.signed.record })
      return
    }
    this.#emit({ type: 'member-updated', id: member.id, record: member.signed.record })
    if (!outcome.statusChanged) return
    if (member.status === 'left') this.#detector.removed(member.id)
    this.#emit({ type: 'member-status', id: member.id, status: member.status, previous: outcome.previous, incarnation: member.statusIncarnation, by: member.id })
  }

  // Two records of one id at one version, both signed with its key: an honest
  // node bumps its version with every change, so two nodes hold that key (a
  // data directory copied to a second box). Idle clones never change their
  // records, so neither would see a newer one of its id. So this node says so
  // ('identity-shared', naming both records' addresses) and sends the id both
  // records: whichever of the two its connection reaches finds the other's
  // (#recordAboutSelf). At most once per probe period per id. The duplicate of
  // a record held, byte for byte, costs a comparison.
  #checkEquivocation (signed: SignedRecord, from: PeerKey): void {
    const id = signed.record.id
    const held = this.#table.get(id)
    if (held === undefined || compareVersion(signed.record, held.signed.record) !== 0 || sameBytes(signed.bytes, held.signed.bytes)) return
    if (!rateAllowed(this.#lastEquivocationMs, id, this.#now, this.#config.probeIntervalMs)) return
    if (!this.#auth.verify(id, signed.bytes, signed.sig)) return this.#reject(from, `bad signature on the record of ${id}`)
    this.#emit({ type: 'identity-shared', id, records: [held.signed.record, signed.record] })
    this.#send(id, { type: 'gossip', updates: [{ kind: 'record', signed: held.signed }, { kind: 'record', signed }] })
  }

  // A record of our id, as new as ours or newer, that is not the one we hold.
  // It can be one we signed in an earlier life (state lost): step past it so
  // our current record wins everywhere. Stepping past puts our incarnation above
  // the record's, so an earlier life's later records can reach ours at most
  // (a lagging member may still show a lower one first: stepped past again).
  // One above ours, after we stepped past once, is being raised now: another
  // node signs with our key (a data directory copied to a second box, a stolen
  // key). Two nodes with one id cannot both be members (peers cannot tell their
  // connections or records apart, and each stepping past the other would raise
  // incarnations without end), so this node stops refuting and says so once
  // ('identity-conflict'), naming the other's addresses; the agent then stops.
  #recordAboutSelf (signed: SignedRecord, from: PeerKey): void {
    const order = compareVersion(signed.record, this.#own.record)
    if (order < 0 || (order === 0 && sameBytes(signed.bytes, this.#own.signed.bytes))) return
    if (!this.#auth.verify(this.id, signed.bytes, signed.sig)) return this.#reject(from, 'bad signature on a record of ours')
    const rising = signed.record.incarnation > this.#own.record.incarnation
    this.#steppedPastSelf++
    if (this.#steppedPastSelf === 1 || !rising) return this.#refute(signed.record.incarnation, 'alive', from, from)
    if (this.#conflictReported) return
    this.#conflictReported = true
    this.#emit({ type: 'identity-conflict', record: signed.record, from })
  }

  #applyAccusation (update: Update & { kind: 'accusation' }, from: PeerKey, channel: 'direct' | 'gossip'): void {
    const accusation = update.signed.accusation
    if (channel === 'gossip' && accusation.accuser !== from) return this.#reject(from, `gossip from ${from} carried an accusation by ${accusation.accuser}`)
    const aboutSelf = accusation.subject === this.id
    if (!aboutSelf && !this.#table.wouldApplyAccusation(accusation)) return
    if (aboutSelf && accusation.incarnation < this.#own.record.incarnation) return this.#answerStale(from)
    if (!this.#auth.verify(accusation.accuser, update.signed.bytes, update.signed.sig)) return this.#reject(from, `bad signature on an accusation by ${accusation.accuser}`)
    if (aboutSelf) return this.#refute(accusation.incarnation, accusation.kind, accusation.accuser, from)
    const outcome = this.#table.applyAccusation(update.signed, accusation, this.#now, this.#suspicionDeadline)
    this.#afterAccusation(outcome, update, accusation.accuser)
  }

  // ---- anti-entropy (the exchanges live in antientropy.ts) ----------------

  // Merges a peer's entries. Their suspect and dead claims are unsigned here, so
  // we take them up as our own suspicion (memberlist: prefer suspect over dead
  // from push-pull) and let the suspect refute it.
  #mergeEntries (entries: Entry[], from: PeerKey): void {
    for (const entry of entries) {
      // The sender's own record is news (a joiner introducing itself through us
      // starts the piggyback epidemic of its record); the rest is table state.
      this.#applyRecord({ kind: 'record', signed: entry.signed }, from, 'direct', entry.signed.record.id === from)
      if (entry.status !== 'suspect' && entry.status !== 'dead') continue
      const id = entry.signed.record.id
      if (id === this.id) {
        this.#refute(entry.statusIncarnation, entry.status, from, from)
        continue
      }
      const member = this.#table.get(id)
      if (member === undefined || !claimIsNewer(entry, member)) continue
      if (member.status === 'alive' || member.status === 'suspect') this.#accuse('suspect', member, entry.statusIncarnation)
    }
  }

  #reap (): void {
    this.#nextReapMs = this.#now + this.#reapCheckMs()
    for (const id of this.#table.reap(this.#now - this.#config.deadReapMs)) {
      this.#broadcasts.drop(id)
      this.#detector.forget(id)
      this.#antiEntropy.forget(id)
      this.#lastStaleAnswerMs.delete(id)
      this.#lastEquivocationMs.delete(id)
      this.#emit({ type: 'member-reaped', id })
    }
  }

  #reapCheckMs (): number {
    return Math.min(60_000, Math.max(1_000, Math.floor(this.#config.deadReapMs / 10)))
  }

  // ---- commands -----------------------------------------------------------

  #onCommand (command: Command): void {
    switch (command.type) {
      case 'join':
        this.#antiEntropy.join(command.peers, this.#now, command.bootstrapping === true)
        this.#publishOwnRecord()
        return
      case 'leave': return this.#leave()
      case 'update-self': return this.#updateSelf(command.patch)
      case 'disconnected': return this.#detector.disconnected(command.peer, this.#now, this.#actOnTransportHint())
      case 'unreachable': return this.#detector.unreachable(command.peer, this.#now, () => this.#actOnTransportHint())
    }
  }

  // A crashed member's connections close at every member connected to it: in a
  // large cluster, nearly all of them. If each probed it at once, each would
  // publish its own suspicion and every member would receive N of them per
  // failure. A handful acting is enough for the suspicion and its confirmations
  // (Lifeguard's k); the rest hear it by gossip. Below ~HINT_ACTORS members
  // every member acts.
  #actOnTransportHint (): boolean {
    const others = this.#table.liveCount - 1
    return others <= HINT_ACTORS || this.#random.nextFloat() < HINT_ACTORS / others
  }

  #updateSelf (patch: SelfPatch): void {
    const kind = this.#own.patch(patch, this.#config.loadChangeThreshold)
    if (kind === 'none') return
    setSelfRecord(this.#self, this.#own.signed)
    // Load is placement data: gossip and anti-entropy carry it, probes do not.
    if (kind === 'data') this.#broadcasts.enqueue(this.#ownUpdate())
    const earliest = this.#lastPublishMs + this.#scaled(this.#config.recordMinIntervalMs)
    // Load alone is rate-limited; anything else a member needs to know goes now.
    if (kind === 'data' || this.#now >= earliest) this.#publishOwnRecord()
    else this.#publishPendingAtMs = Math.min(this.#publishPendingAtMs, earliest)
  }

  #leave (): void {
    this.#own.leave()
    setSelfRecord(this.#self, this.#own.signed)
    const update = this.#ownUpdate()
    this.#publish([update])
    for (const peer of this.#randomAlive(this.#config.leaveFanout, [])) this.#send(peer, { type: 'gossip', updates: [update] })
    this.#leaving = true
    this.#detector.stop()
    this.#emit({ type: 'left' })
  }

  // ---- output helpers -----------------------------------------------------

  #publishOwnRecord (): void {
    this.#lastPublishMs = this.#now
    this.#publishPendingAtMs = Infinity
    this.#nextRefreshMs = this.#now + this.#jittered(this.#scaled(this.#config.recordRefreshIntervalMs))
    this.#publish([this.#ownUpdate()])
  }

  // The refresh period grows with the cluster, which a node learns after it set
  // its first refresh: re-check against the current size before publishing. A
  // node that never published (it did not join: the simulator's warm start,
  // whose nodes stand for agents long in the cluster) counts from its start, or
  // every member of a large table would publish at once.
  #refreshOwnRecord (): void {
    const sinceMs = Number.isFinite(this.#lastPublishMs) ? this.#lastPublishMs : this.#startMs
    const dueMs = sinceMs + Math.floor(0.9 * this.#scaled(this.#config.recordRefreshIntervalMs))
    if (this.#now >= dueMs) return this.#publishOwnRecord()
    this.#nextRefreshMs = dueMs + this.#random.nextInt(1 + Math.floor(0.2 * (dueMs - sinceMs)))
  }

  #ownUpdate (): Update {
    return { kind: 'record', signed: this.#own.signed }
  }

  #publish (updates: Update[]): void {
    this.#out.push({ kind: 'publish', message: { type: 'gossip', updates } })
  }

  #send (to: PeerKey, message: Message): void {
    if (to !== this.id) this.#out.push({ kind: 'send', to, message })
  }

  #emit (event: AgentEvent): void {
    this.#out.push({ kind: 'event', event })
  }

  #reject (from: PeerKey, reason: string): void {
    this.#emit({ type: 'rejected', from, reason })
  }

  #piggyback (recipient: PeerKey): Update[] {
    const limit = retransmitLimit(this.#config.retransmitMult, this.#table.liveCount)
    return this.#broadcasts.take(this.#config.piggybackMaxBytes, limit, recipient)
  }

  // ---- selection helpers --------------------------------------------------

  #isProbeable (id: PeerKey): boolean {
    if (id === this.id) return false
    const status = this.#table.statusOf(id)
    return status === 'alive' || status === 'suspect'
  }

  #probeableIds (): PeerKey[] {
    const ids: PeerKey[] = []
    for (const member of this.#table.all()) if (this.#isProbeable(member.id)) ids.push(member.id)
    return ids
  }

  // Up to `count` distinct alive members other than us and `exclude`.
  // Random draws first (O(count) in a large, mostly alive table); a full scan
  // when they come up short (small or mostly dead tables).
  #randomAlive (count: number, exclude: PeerKey[]): PeerKey[] {
    if (count <= 0) return []
    const wanted = (member: Member): boolean => member.status === 'alive' && member.id !== this.id && !exclude.includes(member.id)
    const picked: PeerKey[] = []
    if (this.#table.size > 4 * (count + exclude.length + 1)) {
      for (let tries = 0; tries < 4 * count && picked.length < count; tries++) {
        const member = this.#table.pick(this.#random.nextFloat())
        if (member !== undefined && wanted(member) && !picked.includes(member.id)) picked.push(member.id)
      }
      if (picked.length === count) return picked
    }
    const ids: PeerKey[] = []
    for (const member of this.#table.all()) if (wanted(member)) ids.push(member.id)
    return this.#random.shuffle(ids).slice(0, count)
  }

  #scaled (intervalMs: number): number {
    return gossipScaleMs(intervalMs, this.#table.liveCount)
  }

  #jittered (intervalMs: number): number {
    return Math.floor(intervalMs * (0.9 + 0.2 * this.#random.nextFloat()))
  }
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
