// Push-pull anti-entropy (memberlist's pushPull, with a digest first so that a
// converged pair exchanges summaries, not full records). Gossip does not reach
// every node every time; this exchange is what guarantees convergence, for late
// joiners and after a partition heals.

import type { DigestEntry, Entry, Message } from '../../protocol/messages.ts'
import type { Random } from '../core/io.ts'
import type { MembershipConfig } from './config.ts'
import { gossipScaleMs } from './math.ts'
import { rateAllowed } from './rate.ts'
import { claimIsNewer, compareVersion, digestOf, knowsMore } from './table.ts'
import type { Member, MemberTable } from './table.ts'

export function entryOf (member: Member): Entry {
  return { signed: member.signed, status: member.status, statusIncarnation: member.statusIncarnation }
}

export function digestOfTable (table: MemberTable): DigestEntry[] {
  const digest: DigestEntry[] = []
  for (const member of table.all()) digest.push(digestOf(member))
  return digest
}

// What to send back for a digest: full entries where we know more, and the ids of
// the entries where the digest's owner knows more.
export function answerDigest (table: MemberTable, digest: DigestEntry[]): { entries: Entry[]; want: string[] } {
  const theirs = new Map<string, DigestEntry>()
  for (const line of digest) theirs.set(line.id, line)
  const entries: Entry[] = []
  for (const member of table.all()) {
    if (knowsMore(member, theirs.get(member.id))) entries.push(entryOf(member))
  }
  const want: string[] = []
  for (const line of digest) {
    const mine = table.get(line.id)
    if (mine === undefined) {
      if (line.status === 'alive' || line.status === 'suspect') want.push(line.id)
    } else if (compareVersion(line, mine.signed.record) > 0 || claimIsNewer(line, mine)) {
      want.push(line.id)
    }
  }
  return { entries, want }
}

export function entriesFor (table: MemberTable, ids: string[]): Entry[] {
  const entries: Entry[] = []
  for (const id of ids) {
    const member = table.get(id)
    if (member !== undefined) entries.push(entryOf(member))
  }
  return entries
}

// What anti-entropy needs from the membership it serves.
export interface AntiEntropyHost {
  send (to: string, message: Message): void
  randomAlive (count: number, exclude: string[]): string[]
  // Entries from a peer's table, to be merged under the membership rules.
  merge (entries: Entry[], from: string): void
}

// The exchanges and their timers: a periodic push-pull with a random alive
// member, a push-pull with a random dead one (a healed partition finds its way
// back), retries of the bootstrap peers while alone, and introductions of
// strangers that contact us.
export class AntiEntropy {
  readonly #config: MembershipConfig
  readonly #random: Random
  readonly #table: MemberTable
  readonly #self: string
  readonly #host: AntiEntropyHost
  readonly #lastIntroMs = new Map<string, number>()
  #bootstrap: string[] = []
  // Bootstrap addresses were given (join's `bootstrapping`), resolved or not.
  #bootstrapping = false
  #nextPushPullMs: number
  // The interval the pending first periodic exchange was drawn within, or null
  // once that exchange is past or a join set it (see #redrawFirstExchange).
  #firstDrawnWithinMs: number | null
  readonly #startMs: number
  #nextReconnectMs: number
  #nextJoinRetryMs = Infinity

  constructor (config: MembershipConfig, random: Random, table: MemberTable, self: string, host: AntiEntropyHost, nowMs: number) {
    this.#config = config
    this.#random = random
    this.#table = table
    this.#self = self
    this.#host = host
    this.#nextPushPullMs = nowMs + random.nextInt(Math.max(1, config.pushPullIntervalMs))
    this.#firstDrawnWithinMs = config.pushPullIntervalMs
    this.#startMs = nowMs
    this.#nextReconnectMs = nowMs + random.nextInt(Math.max(1, config.reconnectIntervalMs))
  }

  nextWakeMs (): number {
    return Math.min(this.#nextPushPullMs, this.#nextReconnectMs, this.#alone() ? this.#nextJoinRetryMs : Infinity)
  }

  tick (nowMs: number): void {
    if (nowMs >= this.#nextPushPullMs) this.#redrawFirstExchange()
    if (nowMs >= this.#nextPushPullMs) {
      this.#firstDrawnWithinMs = null
      this.#nextPushPullMs = nowMs + gossipScaleMs(this.#config.pushPullIntervalMs, this.#table.liveCount)
      const [peer] = this.#host.randomAlive(1, [])
      if (peer !== undefined) this.#pushPull(peer, false)
    }
    if (nowMs >= this.#nextReconnectMs) {
      this.#nextReconnectMs = nowMs + this.#config.reconnectIntervalMs
      const dead: string[] = []
      for (const member of this.#table.all()) if (member.status === 'dead') dead.push(member.id)
      if (dead.length > 0) this.#pushPull(dead[this.#random.nextInt(dead.length)], false)
    }
    if (this.#alone() && nowMs >= this.#nextJoinRetryMs) this.#retryJoin(nowMs)
  }

  // Joins through these peers now, and again whenever we find ourselves alone.
  join (peers: string[], nowMs: number, bootstrapping = false): void {
    this.#bootstrap = peers.filter((peer) => peer !== this.#self)
    this.#bootstrapping ||= bootstrapping
    this.#retryJoin(nowMs)
    // Records published while we were joining reached the mesh before we were
    // in it, and the bootstrap peer's table may predate them: one more
    // exchange, with a random member, once the join has settled. (Periodic
    // exchanges are minutes apart in a large cluster.)
    this.#nextPushPullMs = nowMs + this.#config.joinRetryMs + this.#random.nextInt(Math.max(1, this.#config.joinRetryMs))
    this.#firstDrawnWithinMs = null
  }

  // The first periodic exchange is drawn at construction, within the interval of
  // a table of one. A join sets its own follow-up exchange instead; a node that
  // learnt a large cluster without joining (the simulator's warm start, whose
  // nodes stand for agents long in the cluster) redraws it within the interval
  // of the table it holds, at a random point of its period as such an agent
  // would be, rather than every member exchanging whole tables at once.
  #redrawFirstExchange (): void {
    if (this.#firstDrawnWithinMs === null) return
    const intervalMs = gossipScaleMs(this.#config.pushPullIntervalMs, this.#table.liveCount)
    if (intervalMs <= this.#firstDrawnWithinMs) return
    this.#firstDrawnWithinMs = intervalMs
    this.#nextPushPullMs = this.#startMs + this.#random.nextInt(Math.max(1, intervalMs))
  }

  // A stranger (or a member we buried) contacted us: one push-pull teaches it the
  // table (it refutes if it was buried) and teaches us its record.
  introduce (peer: string, nowMs: number): void {
    if (rateAllowed(this.#lastIntroMs, peer, nowMs, this.#config.joinRetryMs)) this.#pushPull(peer, false)
  }

  onRequest (from: string, join: boolean, digest: DigestEntry[], nowMs: number): void {
    const { entries, want } = answerDigest(this.#table, digest)
    this.#host.send(from, { type: 'push-pull-reply', entries, want })
    // A joiner is introduced by this very exchange; no need to call it back.
    if (join) this.#lastIntroMs.set(from, nowMs)
  }

  onReply (from: string, entries: Entry[], want: string[]): void {
    this.#host.merge(entries, from)
    if (want.length > 0) this.#host.send(from, { type: 'push-pull-entries', entries: entriesFor(this.#table, want) })
  }

  forget (id: string): void {
    this.#lastIntroMs.delete(id)
  }

  #retryJoin (nowMs: number): void {
    this.#nextJoinRetryMs = nowMs + this.#config.joinRetryMs
    for (const peer of this.#bootstrap) this.#pushPull(peer, true)
  }

  #pushPull (peer: string, join: boolean): void {
    this.#host.send(peer, { type: 'push-pull-request', join, digest: digestOfTable(this.#table) })
  }

  // Whether this agent was given bootstrap peers to join through.
  get hasBootstrap (): boolean {
    return this.#bootstrapping || this.#bootstrap.length > 0
  }

  #alone (): boolean {
    return this.#bootstrap.length > 0 && this.#table.liveCount <= 1
  }
}
