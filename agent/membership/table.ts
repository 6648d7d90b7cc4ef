// The member table and the precedence rules of SWIM (memberlist's state.go:
// aliveNode, suspectNode, deadNode), kept free of I/O: each apply returns what
// changed and the caller turns that into effects. Signatures are checked by the
// caller before anything reaches this file.

import type {
  Accusation, DigestEntry, MemberStatus, NodeRecord, SignedAccusation, SignedRecord
} from '../../protocol/messages.ts'
import { MemberNumbers } from './numbers.ts'
import { PROBE_RING_MAX, ProbeRing } from './ring.ts'

export type Suspicion = {
  startMs: number
  // Everyone who accused this member at the current incarnation; the first starts
  // the suspicion, the others are Lifeguard's independent confirmations.
  accusers: Set<string>
  deadlineMs: number
  // No confirmation brings the deadline before this: after a local stall, the
  // backlog read once we run again (a refutation among it) must be read first,
  // though it may also hold confirmations that, counted from the start, put
  // the deadline long past (see extendSuspicions).
  floorMs: number
  // When to show the suspect the accusation directly (see Membership #checkSuspects).
  checkAtMs: number
  checks: number
}

export type RecordOutcome =
  | { kind: 'ignored' }
  | { kind: 'joined'; member: Member }
  | { kind: 'updated'; member: Member; previous: MemberStatus; statusChanged: boolean; before: NodeRecord }

export type AccusationOutcome =
  | { kind: 'ignored' }
  | { kind: 'suspected'; member: Member; previous: MemberStatus }
  | { kind: 'confirmed'; member: Member; confirmations: number }
  | { kind: 'died'; member: Member; previous: MemberStatus }

const STATUS_RANK: Record<MemberStatus, number> = { alive: 0, suspect: 1, dead: 2, left: 3 }

// Orders two versions of a record: incarnation first, then seq.
export function compareVersion (a: { incarnation: number; seq: number }, b: { incarnation: number; seq: number }): number {
  if (a.incarnation !== b.incarnation) return a.incarnation - b.incarnation
  return a.seq - b.seq
}

// True when `a` carries an accusation (suspect/dead) that `b` has not seen yet.
export function claimIsNewer (
  a: { status: MemberStatus; statusIncarnation: number },
  b: { status: MemberStatus; statusIncarnation: number }
): boolean {
  if (a.status !== 'suspect' && a.status !== 'dead') return false
  if (a.statusIncarnation !== b.statusIncarnation) return a.statusIncarnation > b.statusIncarnation
  return STATUS_RANK[a.status] > STATUS_RANK[b.status]
}

export function digestOf (member: Member): DigestEntry {
  const record = member.signed.record
  return {
    id: member.id,
    incarnation: record.incarnation,
    seq: record.seq,
    status: member.status,
    statusIncarnation: member.statusIncarnation
  }
}

// True when `mine` knows something `theirs` (a digest line, or nothing) does not.
export function knowsMore (mine: Member, theirs: DigestEntry | undefined): boolean {
  if (theirs === undefined) return mine.status === 'alive' || mine.status === 'suspect'
  return compareVersion(mine.signed.record, theirs) > 0 || claimIsNewer(mine, theirs)
}

// Per-member state of one table, by member number (see numbers.ts): a status
// byte, when we last heard from the member and a reference to its signed record
// (in the simulator the same immutable object for every table). What only a few
// members have (a status incarnation above their record's, a suspicion, the
// accusation behind it, when a member became suspect, dead or left) lives in
// small maps. About 17 bytes per member, against ~180 for an object per member.
class Columns {
  readonly numbers: MemberNumbers
  status = new Uint8Array(0)
  lastHeard = new Float64Array(0)
  signed: Array<SignedRecord | null> = []
  readonly incarnationAbove = new Map<number, number>()
  readonly since = new Map<number, number>()
  readonly accusations = new Map<number, SignedAccusation>()
  readonly suspicions = new Map<number, Suspicion>()

  constructor (numbers: MemberNumbers) {
    this.numbers = numbers
  }

  grow (n: number): void {
    if (n < this.status.length) return
    const capacity = Math.max(16, this.numbers.capacity, 2 * this.status.length, n + 1)
    const status = new Uint8Array(capacity)
    status.set(this.status)
    this.status = status
    const lastHeard = new Float64Array(capacity)
    lastHeard.set(this.lastHeard)
    this.lastHeard = lastHeard
    while (this.signed.length < capacity) this.signed.push(null)
  }
}

const STATUS_NAMES: readonly MemberStatus[] = ['alive', 'alive', 'suspect', 'dead', 'left']
const STATUS_CODES: Record<MemberStatus, number> = { alive: 1, suspect: 2, dead: 3, left: 4 }

// A member of a table: a view over the table's columns, made when asked for
// (cheap, short-lived). Valid while the member stays in the table.
export class Member {
  readonly n: number
  readonly #c: Columns

  constructor (columns: Columns, n: number) {
    this.#c = columns
    this.n = n
  }

  get id (): string {
    return this.#c.numbers.idOf(this.n)
  }

  get signed (): SignedRecord {
    return this.#c.signed[this.n] as SignedRecord
  }

  set signed (signed: SignedRecord) {
    this.#c.signed[this.n] = signed
  }

  get status (): MemberStatus {
    return STATUS_NAMES[this.#c.status[this.n]]
  }

  // Sets the status byte only; the table keeps its counts (see #setStatus).
  set status (status: MemberStatus) {
    this.#c.status[this.n] = STATUS_CODES[status]
  }

  // The incarnation the status refers to; never below the record's incarnation.
  get statusIncarnation (): number {
    return this.#c.incarnationAbove.get(this.n) ?? this.signed.record.incarnation
  }

  set statusIncarnation (incarnation: number) {
    if (incarnation > this.signed.record.incarnation) this.#c.incarnationAbove.set(this.n, incarnation)
    else this.#c.incarnationAbove.delete(this.n)
  }

  get lastHeardMs (): number {
    return this.#c.lastHeard[this.n]
  }

  set lastHeardMs (atMs: number) {
    this.#c.lastHeard[this.n] = atMs
  }

  // The accusation behind a suspect or dead status, kept to show the member itself.
  get accusation (): SignedAccusation | null {
    return this.#c.accusations.get(this.n) ?? null
  }

  get suspicion (): Suspicion | null {
    return this.#c.suspicions.get(this.n) ?? null
  }
}

export class MemberTable {
  readonly #numbers: MemberNumbers
  readonly #c: Columns
  #size = 0
  #live = 0
  // Suspect members are few; tracked apart so timers do not scan the whole table.
  readonly #suspects = new Set<number>()
  // Live members in id order, for the probe schedule (ring.ts); dropped above
  // PROBE_RING_MAX live members and rebuilt when asked for below it again.
  #ring: ProbeRing | null = new ProbeRing()

  // `numbers`: the simulator shares one numbering among all its tables.
  constructor (numbers: MemberNumbers = new MemberNumbers()) {
    this.#numbers = numbers
    this.#c = new Columns(numbers)
  }

  get (id: string): Member | undefined {
    const n = this.#present(id)
    return n < 0 ? undefined : new Member(this.#c, n)
  }

  // The status of `id`, or null when it is not in the table (no view made:
  // other cores ask this often).
  statusOf (id: string): MemberStatus | null {
    const n = this.#present(id)
    return n < 0 ? null : STATUS_NAMES[this.#c.status[n]]
  }

  // The number of `id` if it is in this table, else -1.
  #present (id: string): number {
    const n = this.#numbers.find(id)
    return n === undefined || n >= this.#c.status.length || this.#c.status[n] === 0 ? -1 : n
  }

  // Every member, in member-number order.
  all (): Member[] {
    const members: Member[] = []
    const status = this.#c.status
    for (let n = 0; n < status.length; n++) if (status[n] !== 0) members.push(new Member(this.#c, n))
    return members
  }

  // The member at a uniformly drawn position (`u` in [0, 1)) of the numbering,
  // or undefined where that number is not in this table: random picks without
  // a list of members (callers retry, then scan).
  pick (u: number): Member | undefined {
    const n = Math.floor(u * this.#numbers.capacity)
    return n < this.#c.status.length && this.#c.status[n] !== 0 ? new Member(this.#c, n) : undefined
  }

  get size (): number {
    return this.#size
  }

  // Members that count for N in the timing formulas: alive or suspect.
  get liveCount (): number {
    return this.#live
  }

  get suspectCount (): number {
    return this.#suspects.size
  }

  // The live members (self included) in id order, or null above
  // PROBE_RING_MAX live members: there the ring is not kept, since every
  // table holding every id in order would cost the simulator N² memory, and
  // the detector falls back to its shuffled round-robin.
  probeRing (): ProbeRing | null {
    if (this.#live > PROBE_RING_MAX) return null
    if (this.#ring === null) {
      const ids: string[] = []
      const status = this.#c.status
      for (let n = 0; n < status.length; n++) {
        if (status[n] === STATUS_CODES.alive || status[n] === STATUS_CODES.suspect) ids.push(this.#numbers.idOf(n))
      }
      this.#ring = ProbeRing.of(ids)
    }
    return this.#ring
  }

  #ringEnter (n: number): void {
    if (this.#ring === null) return
    if (this.#live > PROBE_RING_MAX) this.#ring = null
    else this.#ring.add(this.#numbers.idOf(n))
  }

  #ringLeave (n: number): void {
    this.#ring?.remove(this.#numbers.idOf(n))
  }

  // Adds the local node's own entry; it is kept alive by its owner, not by rules.
  addSelf (signed: SignedRecord, nowMs: number): Member {
    return this.#newMember(signed, nowMs)
  }

  // Would applying this record change anything? Cheap, so callers can skip the
  // signature check for the many duplicates gossip delivers.
  wouldApplyRecord (record: NodeRecord): boolean {
    const current = this.#signedOf(record.id)
    if (current === null) return record.status === 'alive'
    return compareVersion(record, current.record) > 0
  }

  applyRecord (signed: SignedRecord, nowMs: number): RecordOutcome {
    const record = signed.record
    const current = this.get(record.id)
    if (current === undefined) {
      // A departed member we never knew is not worth remembering.
      if (record.status !== 'alive') return { kind: 'ignored' }
      return { kind: 'joined', member: this.#newMember(signed, nowMs) }
    }
    // Ignore old and duplicate versions.
    if (compareVersion(record, current.signed.record) <= 0) return { kind: 'ignored' }
    const previous = current.status
    const before = current.signed.record
    // Decided against the status incarnation as it stood before this record.
    const next = this.#statusAfterRecord(current, record)
    const statusIncarnation = current.statusIncarnation
    current.signed = signed
    current.statusIncarnation = statusIncarnation
    current.lastHeardMs = nowMs
    if (next !== null) this.#setStatus(current, next, record.incarnation, nowMs, null)
    return { kind: 'updated', member: current, previous, statusChanged: next !== null && next !== previous, before }
  }

  // The status a newer record implies, or null to keep the current one.
  #statusAfterRecord (current: Member, record: NodeRecord): MemberStatus | null {
    if (record.status === 'left') return 'left'
    // Only a higher incarnation refutes an accusation or a departure.
    if (record.incarnation > current.statusIncarnation) return 'alive'
    if (current.status === 'alive') return 'alive'
    return null
  }

  wouldApplyAccusation (accusation: Accusation): boolean {
    const n = this.#present(accusation.subject)
    // Accusations about members we do not know carry nothing to act on.
    if (n < 0) return false
    const c = this.#c
    // Ignore accusations about an incarnation the member has already left behind.
    const statusIncarnation = c.incarnationAbove.get(n) ?? (c.signed[n] as SignedRecord).record.incarnation
    if (accusation.incarnation < statusIncarnation) return false
    const status = c.status[n]
    if (status === STATUS_CODES.dead || status === STATUS_CODES.left) return false
    if (accusation.kind === 'dead') return true
    if (status === STATUS_CODES.alive) return true
    return !(c.suspicions.get(n)?.accusers.has(accusation.accuser) ?? false)
  }

  // Applies an accusation; `deadlineMs` computes a suspicion's deadline from its
  // start and number of confirmations.
  applyAccusation (
    signed: SignedAccusation | null, accusation: Accusation, nowMs: number,
    deadlineMs: (startMs: number, confirmations: number) => number
  ): AccusationOutcome {
    if (!this.wouldApplyAccusation(accusation)) return { kind: 'ignored' }
    const member = this.get(accusation.subject) as Member
    const previous = member.status
    if (accusation.kind === 'dead') {
      this.#setStatus(member, 'dead', accusation.incarnation, nowMs, signed)
      return { kind: 'died', member, previous }
    }
    const current = member.suspicion
    if (previous === 'suspect' && current !== null) {
      current.accusers.add(accusation.accuser)
      member.statusIncarnation = Math.max(member.statusIncarnation, accusation.incarnation)
      const confirmations = current.accusers.size - 1
      current.deadlineMs = Math.max(current.floorMs, deadlineMs(current.startMs, confirmations))
      // A shorter deadline brings the showing to the suspect (Membership
      // #checkSuspects) before it: at two thirds of the way, or now.
      if (current.checks < 2) current.checkAtMs = Math.min(current.checkAtMs, Math.max(nowMs, current.startMs + Math.floor(2 * (current.deadlineMs - current.startMs) / 3)))
      return { kind: 'confirmed', member, confirmations }
    }
    this.#setStatus(member, 'suspect', accusation.incarnation, nowMs, signed)
    const deadline = deadlineMs(nowMs, 0)
    this.#c.suspicions.set(member.n, {
      startMs: nowMs,
      accusers: new Set([accusation.accuser]),
      deadlineMs: deadline,
      floorMs: nowMs,
      checkAtMs: nowMs + Math.floor((deadline - nowMs) / 3),
      checks: 0
    })
    return { kind: 'suspected', member, previous }
  }

  // Notes a message from `id`; false when it is not in the table.
  heardFrom (id: string, nowMs: number): boolean {
    const n = this.#present(id)
    if (n < 0) return false
    this.#c.lastHeard[n] = nowMs
    return true
  }

  // Suspicions whose deadline has passed.
  expiredSuspicions (nowMs: number): Member[] {
    if (this.#suspects.size === 0) return []
    const expired: Member[] = []
    for (const n of this.#suspects) {
      const suspicion = this.#c.suspicions.get(n)
      if (suspicion !== undefined && suspicion.deadlineMs <= nowMs) expired.push(new Member(this.#c, n))
    }
    return expired
  }

  // Suspicions whose next check is due.
  dueChecks (nowMs: number): Member[] {
    if (this.#suspects.size === 0) return []
    const due: Member[] = []
    for (const n of this.#suspects) {
      const suspicion = this.#c.suspicions.get(n)
      if (suspicion !== undefined && suspicion.checkAtMs <= nowMs) due.push(new Member(this.#c, n))
    }
    return due
  }

  earliestSuspicionDeadlineMs (): number {
    // Asked after every step; most tables hold no suspect.
    if (this.#suspects.size === 0) return Infinity
    let earliest = Infinity
    for (const n of this.#suspects) {
      const suspicion = this.#c.suspicions.get(n)
      if (suspicion !== undefined) earliest = Math.min(earliest, suspicion.deadlineMs, suspicion.checkAtMs)
    }
    return earliest
  }

  // Moves every suspicion's clock forward by a local stall: nothing could be heard
  // during it, so it must not count against the suspect. Until `floorMs` no
  // confirmation ends a suspicion: the backlog read after the stall holds the
  // confirmations sent during it, counted from the start, but may hold the
  // suspect's refutation too.
  extendSuspicions (byMs: number, floorMs: number): void {
    for (const n of this.#suspects) {
      const suspicion = this.#c.suspicions.get(n)
      if (suspicion === undefined) continue
      suspicion.floorMs = Math.max(suspicion.floorMs, floorMs)
      suspicion.startMs += byMs
      suspicion.deadlineMs += byMs
      suspicion.checkAtMs += byMs
    }
  }

  // Forgets dead and left members whose status is older than `reapBeforeMs`.
  reap (reapBeforeMs: number): string[] {
    const reaped: number[] = []
    const status = this.#c.status
    for (const [n, sinceMs] of this.#c.since) {
      const final = status[n] === STATUS_CODES.dead || status[n] === STATUS_CODES.left
      if (final && sinceMs < reapBeforeMs) reaped.push(n)
    }
    // Number order, as a scan of the table would find them.
    reaped.sort((a, b) => a - b)
    const ids: string[] = []
    for (const n of reaped) {
      ids.push(this.#numbers.idOf(n))
      this.#forget(n)
    }
    return ids
  }

  #forget (n: number): void {
    const c = this.#c
    c.status[n] = 0
    c.signed[n] = null
    c.lastHeard[n] = 0
    c.incarnationAbove.delete(n)
    c.since.delete(n)
    c.accusations.delete(n)
    c.suspicions.delete(n)
    this.#size--
    this.#numbers.release(n)
  }

  #signedOf (id: string): SignedRecord | null {
    const n = this.#present(id)
    return n < 0 ? null : this.#c.signed[n]
  }

  #setStatus (member: Member, status: MemberStatus, incarnation: number, nowMs: number, signed: SignedAccusation | null): void {
    const c = this.#c
    const n = member.n
    const was = member.status
    const wasLive = was === 'alive' || was === 'suspect'
    const isLive = status === 'alive' || status === 'suspect'
    if (wasLive !== isLive) {
      this.#live += isLive ? 1 : -1
      if (isLive) this.#ringEnter(n)
      else this.#ringLeave(n)
    }
    if (was !== status) {
      // When a member became suspect, dead or left (what reaping reads).
      if (status === 'alive') c.since.delete(n)
      else c.since.set(n, nowMs)
    }
    member.status = status
    member.statusIncarnation = Math.max(incarnation, member.signed.record.incarnation)
    if ((status === 'suspect' || status === 'dead') && signed !== null) c.accusations.set(n, signed)
    else c.accusations.delete(n)
    if (status === 'suspect') {
      this.#suspects.add(n)
    } else {
      this.#suspects.delete(n)
      c.suspicions.delete(n)
    }
  }

  #newMember (signed: SignedRecord, nowMs: number): Member {
    const n = this.#numbers.numberOf(signed.record.id)
    this.#c.grow(n)
    this.#c.status[n] = STATUS_CODES.alive
    this.#c.signed[n] = signed
    this.#c.lastHeard[n] = nowMs
    this.#size++
    this.#live++
    this.#ringEnter(n)
    return new Member(this.#c, n)
  }
}

// The local node's own entry follows its own record: alive, or left once it leaves.
export function setSelfRecord (self: Member, signed: SignedRecord): void {
  self.signed = signed
  self.statusIncarnation = signed.record.incarnation
  self.status = signed.record.status === 'left' ? 'left' : 'alive'
}
