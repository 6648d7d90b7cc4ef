// The member table and the precedence rules of SWIM (memberlist's state.go:
// aliveNode, suspectNode, deadNode), kept free of I/O: each apply returns what
// changed and the caller turns that into effects. Signatures are checked by the
// caller before anything reaches this file.

import type {
  Accusation, DigestEntry, MemberStatus, NodeRecord, SignedAccusation, SignedRecord
} from '../../protocol/messages.ts'

export type Suspicion = {
  startMs: number
  // Everyone who accused this member at the current incarnation; the first starts
  // the suspicion, the others are Lifeguard's independent confirmations.
  accusers: Set<string>
  deadlineMs: number
  // When to show the suspect the accusation directly (see Membership #checkSuspects).
  checkAtMs: number
  checks: number
}

export type Member = {
  id: string
  signed: SignedRecord
  status: MemberStatus
  // The incarnation the status refers to; never below the record's incarnation.
  statusIncarnation: number
  statusSinceMs: number
  lastHeardMs: number
  // The accusation behind a suspect or dead status, kept to show the member itself.
  accusation: SignedAccusation | null
  suspicion: Suspicion | null
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

export class MemberTable {
  readonly #members = new Map<string, Member>()
  #live = 0

  get (id: string): Member | undefined {
    return this.#members.get(id)
  }

  all (): IterableIterator<Member> {
    return this.#members.values()
  }

  // The members as an array, for random picks; rebuilt only after the set of
  // members changed (joins and reaps are rare next to probes).
  #list: Member[] | null = null

  list (): readonly Member[] {
    this.#list ??= [...this.#members.values()]
    return this.#list
  }

  get size (): number {
    return this.#members.size
  }

  // Members that count for N in the timing formulas: alive or suspect.
  get liveCount (): number {
    return this.#live
  }

  get suspectCount (): number {
    return this.#suspects.size
  }

  // Adds the local node's own entry; it is kept alive by its owner, not by rules.
  addSelf (signed: SignedRecord, nowMs: number): Member {
    const member = this.#newMember(signed, nowMs)
    this.#members.set(member.id, member)
    this.#list = null
    this.#live++
    return member
  }

  // Would applying this record change anything? Cheap, so callers can skip the
  // signature check for the many duplicates gossip delivers.
  wouldApplyRecord (record: NodeRecord): boolean {
    const current = this.#members.get(record.id)
    if (current === undefined) return record.status === 'alive'
    return compareVersion(record, current.signed.record) > 0
  }

  applyRecord (signed: SignedRecord, nowMs: number): RecordOutcome {
    const record = signed.record
    const current = this.#members.get(record.id)
    if (current === undefined) {
      // A departed member we never knew is not worth remembering.
      if (record.status !== 'alive') return { kind: 'ignored' }
      const member = this.#newMember(signed, nowMs)
      this.#members.set(member.id, member)
      this.#list = null
      this.#live++
      return { kind: 'joined', member }
    }
    // Ignore old and duplicate versions.
    if (compareVersion(record, current.signed.record) <= 0) return { kind: 'ignored' }
    const previous = current.status
    const before = current.signed.record
    current.signed = signed
    current.lastHeardMs = nowMs
    const next = this.#statusAfterRecord(current, record)
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
    const current = this.#members.get(accusation.subject)
    // Accusations about members we do not know carry nothing to act on.
    if (current === undefined) return false
    // Ignore accusations about an incarnation the member has already left behind.
    if (accusation.incarnation < current.statusIncarnation) return false
    if (current.status === 'dead' || current.status === 'left') return false
    if (accusation.kind === 'dead') return true
    if (current.status === 'alive') return true
    return !(current.suspicion?.accusers.has(accusation.accuser) ?? false)
  }

  // Applies an accusation; `deadlineMs` computes a suspicion's deadline from its
  // start and number of confirmations.
  applyAccusation (
    signed: SignedAccusation | null, accusation: Accusation, nowMs: number,
    deadlineMs: (startMs: number, confirmations: number) => number
  ): AccusationOutcome {
    if (!this.wouldApplyAccusation(accusation)) return { kind: 'ignored' }
    const member = this.#members.get(accusation.subject) as Member
    const previous = member.status
    if (accusation.kind === 'dead') {
      this.#setStatus(member, 'dead', accusation.incarnation, nowMs, signed)
      return { kind: 'died', member, previous }
    }
    if (member.status === 'suspect' && member.suspicion !== null) {
      const suspicion = member.suspicion
      suspicion.accusers.add(accusation.accuser)
      member.statusIncarnation = Math.max(member.statusIncarnation, accusation.incarnation)
      const confirmations = suspicion.accusers.size - 1
      suspicion.deadlineMs = deadlineMs(suspicion.startMs, confirmations)
      return { kind: 'confirmed', member, confirmations }
    }
    this.#setStatus(member, 'suspect', accusation.incarnation, nowMs, signed)
    const deadline = deadlineMs(nowMs, 0)
    member.suspicion = {
      startMs: nowMs,
      accusers: new Set([accusation.accuser]),
      deadlineMs: deadline,
      checkAtMs: nowMs + Math.floor((deadline - nowMs) / 3),
      checks: 0
    }
    return { kind: 'suspected', member, previous }
  }

  heardFrom (id: string, nowMs: number): void {
    const member = this.#members.get(id)
    if (member !== undefined) member.lastHeardMs = nowMs
  }

  // Suspicions whose deadline has passed.
  expiredSuspicions (nowMs: number): Member[] {
    const expired: Member[] = []
    for (const member of this.#suspects) {
      if (member.suspicion !== null && member.suspicion.deadlineMs <= nowMs) expired.push(member)
    }
    return expired
  }

  // Suspicions whose next check is due.
  dueChecks (nowMs: number): Member[] {
    const due: Member[] = []
    for (const member of this.#suspects) {
      if (member.suspicion !== null && member.suspicion.checkAtMs <= nowMs) due.push(member)
    }
    return due
  }

  earliestSuspicionDeadlineMs (): number {
    let earliest = Infinity
    for (const member of this.#suspects) {
      if (member.suspicion !== null) earliest = Math.min(earliest, member.suspicion.deadlineMs, member.suspicion.checkAtMs)
    }
    return earliest
  }

  // Moves every suspicion's clock forward by a local stall: nothing could be heard
  // during it, so it must not count against the suspect.
  extendSuspicions (byMs: number): void {
    for (const member of this.#suspects) {
      if (member.suspicion === null) continue
      member.suspicion.startMs += byMs
      member.suspicion.deadlineMs += byMs
      member.suspicion.checkAtMs += byMs
    }
  }

  // Forgets dead and left members whose status is older than `reapBeforeMs`.
  reap (reapBeforeMs: number): string[] {
    const reaped: string[] = []
    for (const member of this.#members.values()) {
      const final = member.status === 'dead' || member.status === 'left'
      if (final && member.statusSinceMs < reapBeforeMs) reaped.push(member.id)
    }
    for (const id of reaped) this.#members.delete(id)
    if (reaped.length > 0) this.#list = null
    return reaped
  }

  // Suspect members are few; tracked apart so timers do not scan the whole table.
  readonly #suspects = new Set<Member>()

  #setStatus (member: Member, status: MemberStatus, incarnation: number, nowMs: number, signed: SignedAccusation | null): void {
    const wasLive = member.status === 'alive' || member.status === 'suspect'
    const isLive = status === 'alive' || status === 'suspect'
    if (wasLive !== isLive) this.#live += isLive ? 1 : -1
    if (member.status !== status) member.statusSinceMs = nowMs
    member.status = status
    member.statusIncarnation = Math.max(incarnation, member.signed.record.incarnation)
    member.accusation = status === 'suspect' || status === 'dead' ? signed : null
    if (status === 'suspect') {
      this.#suspects.add(member)
    } else {
      this.#suspects.delete(member)
      member.suspicion = null
    }
  }

  #newMember (signed: SignedRecord, nowMs: number): Member {
    return {
      id: signed.record.id,
      signed,
      status: 'alive',
      statusIncarnation: signed.record.incarnation,
      statusSinceMs: nowMs,
      lastHeardMs: nowMs,
      accusation: null,
      suspicion: null
    }
  }
}

// The local node's own entry follows its own record: alive, or left once it leaves.
export function setSelfRecord (self: Member, signed: SignedRecord): void {
  self.signed = signed
  self.statusIncarnation = signed.record.incarnation
  self.status = signed.record.status === 'left' ? 'left' : 'alive'
}
