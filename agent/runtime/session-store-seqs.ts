// Where each session's log entries sit in the session store's entries table,
// and which rows to reclaim.
//
// The entries table is keyed by `seq`, its rowid, in the order rows were
// written: every insert lands on the table's last pages. Keyed by (session_id,
// idx), as schema version 1 was, a group commit of 64 sessions' appends
// dirtied a leaf page of the key's index for every session or few (bench/store.ts
// measures both layouts side by side). The store reads the table by session
// only at load, which scans it whole anyway; the rows to delete (a snapshot's
// prefix, a truncated tail, a deleted session) it finds here, by seq.
//
// Per session, a run: the index of its first stored entry and the seq of each
// entry from there, in index order. Seqs grow with the index within a run: a
// run is written in index order, only its prefix or tail is ever deleted, and a
// reclaim (below) moves it whole, in order, to the end of the table.
//
// Reclaiming. The rows a snapshot covers are dead, not deleted at once: a
// session's 1,000 entries between two snapshots were written by 1,000 group
// commits, one row on each of 1,000 pages shared with other sessions' rows, and
// deleting them one by one rewrites ~1,000 pages (4 MiB of WAL) for one
// session. Load skips them instead (an entry at or below its session's snapshot
// is covered by it; after a restart they are found dead again by that rule).
// Once DEAD_ROWS.reclaim of them wait, the oldest part of the table is cut off
// whole, `DELETE … WHERE seq < cutoff`, which walks the pages in order and
// writes each at most once (its leaves are freed) instead of once per row:
// the cutoff is the oldest live row, unless the sessions holding the oldest live
// rows have few of them (a session gone quiet), in which case their live rows
// are copied to the end of the table first and the cutoff moves past them
// (planReclaim weighs rows copied against dead rows freed). One reclaim touches
// at most DEAD_ROWS.budget rows: a bigger plan is carried out in parts, one per
// write, so that no write stalls the agent's event loop for long. A truncated
// tail is deleted at once (its indexes are written again).
//
// A deleted session's rows, live or dead, all become dead: the store keeps a
// grave for it (session-store-schema.ts) until the reclaims have taken the last
// of them, and load skips a grave's rows. Deleted at once, as schema version 2
// did, the rows of 64 sessions of 2,000 entries each, interleaved, took one
// write 944 ms (7.4 µs a row: each session's DELETE rewrote every page), and
// one session of 65,000 entries 113 ms, on this project's 2-core box. Only a
// session stored again while its grave waits has its old rows deleted at once
// (it is rare: a singleton's id, a session moved back to a member).

import { lowerBound } from '../core/sorted.ts'

export type DeadRowLimits = {
  // Dead rows that start a reclaim (4,096: ~1.3 MiB of 256-byte deltas' rows).
  // When a reclaim leaves many behind (held back by sessions whose live rows
  // are many and old), the next waits for twice as many…
  reclaim: number
  // …and from this many (65,536) they are deleted one by one, in seq order.
  deleteOneByOne: number
  // What one reclaim may cost (planReclaim), in rows deleted in a range, 8,192:
  // ~8-10 ms of the event loop on this project's 2-core box. A reclaim the
  // budget held back goes on at the next write.
  budget: number
}

// What a reclaim's work costs, in rows deleted in a range (DELETE … WHERE seq <
// cutoff: ~1.0 µs a row of a 256-byte delta on this project's 2-core box).
// Copying a live row to the end of the table: ~3.5 µs. Deleting a row by its
// seq, one by one (a moved run's old row above the cut, or dead rows past
// deleteOneByOne), rewrites a page each time: ~9 µs. Measured on a table of
// 200,000 rows of 64 sessions written alike, 2,000 rows a statement.
export const RECLAIM_COST = { copy: 4, deleteOneByOne: 9 }

export const DEAD_ROWS: DeadRowLimits = { reclaim: 4_096, deleteOneByOne: 65_536, budget: 8_192 }

export type EntryRun = {
  // Index of the entry seqs[0] belongs to; with no entries, the index the
  // next one must have.
  first: number
  seqs: number[]
}

export type ReclaimPlan = {
  // Every row below this seq is deleted (live ones of `move` copied first).
  cutoff: number
  // Runs whose rows are copied to the end of the table, with new seqs.
  move: EntryRun[]
  // The budget held the plan back: what it left can be reclaimed at once.
  capped: boolean
}

export class EntrySeqs {
  readonly #runs = new Map<string, EntryRun>()
  // Seqs of rows covered by a snapshot, not deleted yet, by session.
  #dead = new Map<string, number[]>()
  // The dead rows' seqs, ascending (#deadAscending), kept until a row is
  // buried or removed: a plan carried out in parts sorts them once, not at
  // every write (~10 ms for 112,000 rows, on this project's 2-core box).
  #sorted: Float64Array | null = null
  #deadCount = 0
  readonly #limits: DeadRowLimits
  // Dead rows at which the next reclaim starts.
  #reclaimAt: number

  constructor (limits: DeadRowLimits = DEAD_ROWS) {
    this.#limits = limits
    this.#reclaimAt = limits.reclaim
  }

  get (sessionId: string): EntryRun | undefined {
    return this.#runs.get(sessionId)
  }

  // The index of the session's last stored entry (first - 1 when it has none).
  last (run: EntryRun): number {
    return run.first + run.seqs.length - 1
  }

  // A session with no entry after `lastIndex` (its snapshot's, or 0).
  start (sessionId: string, lastIndex: number): EntryRun {
    const run = { first: lastIndex + 1, seqs: [] }
    this.#runs.set(sessionId, run)
    return run
  }

  // The session's next entry was stored as row `seq`.
  push (run: EntryRun, seq: number): void {
    run.seqs.push(seq)
  }

  // The seqs of entries at `fromIndex` and after, removed from the run.
  cutFrom (run: EntryRun, fromIndex: number): number[] {
    const keep = Math.max(0, Math.min(run.seqs.length, fromIndex - run.first))
    return run.seqs.splice(keep)
  }

  // The seqs of entries up to `index`, removed from the run; the run then
  // starts after `index` (a snapshot at or beyond the log leaves it empty).
  cutUpTo (run: EntryRun, index: number): number[] {
    const count = Math.max(0, Math.min(run.seqs.length, index - run.first + 1))
    const cut = run.seqs.splice(0, count)
    run.first = Math.max(run.first + count, index + 1)
    return cut
  }

  // The session is deleted: its live rows join its dead ones. True when it has
  // rows, live or dead (they need a grave until they are reclaimed).
  entomb (sessionId: string): boolean {
    const run = this.#runs.get(sessionId)
    this.#runs.delete(sessionId)
    if (run !== undefined) this.bury(sessionId, run.seqs)
    return this.hasDead(sessionId)
  }

  hasDead (sessionId: string): boolean {
    return this.#dead.has(sessionId)
  }

  // The session's rows are to be deleted now; the seqs of its rows, live and dead.
  remove (sessionId: string): number[] {
    const run = this.#runs.get(sessionId)
    const dead = this.#dead.get(sessionId) ?? []
    this.#runs.delete(sessionId)
    this.#dead.delete(sessionId)
    this.#deadCount -= dead.length
    if (dead.length > 0) this.#sorted = null
    return [...(run?.seqs ?? []), ...dead]
  }

  // Rows of the session found dead, or made dead by a snapshot.
  bury (sessionId: string, seqs: number[]): void {
    if (seqs.length === 0) return
    this.#sorted = null
    const dead = this.#dead.get(sessionId)
    if (dead === undefined) this.#dead.set(sessionId, seqs)
    else for (const seq of seqs) dead.push(seq)
    this.#deadCount += seqs.length
  }

  reclaimDue (): boolean {
    return this.#deadCount >= this.#reclaimAt
  }

  // What to reclaim; `nextSeq` is the seq the next row written gets.
  planReclaim (nextSeq: number): ReclaimPlan {
    return planReclaim([...this.#runs.values()], this.#deadAscending(), nextSeq, this.#limits.budget)
  }

  // The plan was carried out: the moved runs' rows now have seqs from
  // `firstNewSeq` on, in the order of `plan.move` and of each run; rows below
  // the cutoff are gone. Returns the dead rows left, ascending, when so many
  // are left that they must be deleted one by one now.
  reclaimed (plan: ReclaimPlan, firstNewSeq: number): number[] {
    let next = firstNewSeq
    for (const run of plan.move) for (let i = 0; i < run.seqs.length; i++) run.seqs[i] = next++
    this.#keepDeadFrom(plan.cutoff)
    // Past deleteOneByOne dead rows (and no plan under way in parts), the
    // oldest of them are deleted one by one, as many as the budget holds, and
    // as many more at each write until they are fewer.
    if (!plan.capped && this.#deadCount >= this.#limits.deleteOneByOne) {
      const doomed = Array.from(this.#deadAscending().subarray(0, Math.max(1, Math.floor(this.#limits.budget / RECLAIM_COST.deleteOneByOne))))
      this.#keepDeadFrom(doomed[doomed.length - 1] + 1)
      this.#reclaimAt = this.#deadCount >= this.#limits.deleteOneByOne ? 1 : this.#waitFor()
      return doomed
    }
    this.#reclaimAt = plan.capped ? 1 : this.#waitFor()
    return []
  }

  // A typed array: its sort is numeric without a comparator, faster than an
  // array's with one (10-15 ms against 15-24 for the 112,000 dead rows of 56
  // deleted sessions' 2,000 entries each, on this project's 2-core box).
  #deadAscending (): Float64Array {
    if (this.#sorted !== null) return this.#sorted
    const dead = new Float64Array(this.#deadCount)
    let i = 0
    for (const seqs of this.#dead.values()) for (const seq of seqs) dead[i++] = seq
    this.#sorted = dead.sort()
    return this.#sorted
  }

  // Forgets the dead rows below `seq` (deleted), and counts the rest.
  #keepDeadFrom (seq: number): void {
    if (this.#sorted !== null) this.#sorted = this.#sorted.subarray(lowerBound(this.#sorted, seq))
    this.#deadCount = 0
    for (const [sessionId, seqs] of this.#dead) {
      const left = seqs.filter((s) => s >= seq)
      if (left.length === 0) this.#dead.delete(sessionId)
      else this.#dead.set(sessionId, left)
      this.#deadCount += left.length
    }
  }

  // Dead rows at which the next reclaim starts, after one that left
  // #deadCount of them behind live rows: twice as many, not past deleteOneByOne.
  #waitFor (): number {
    return Math.min(this.#limits.deleteOneByOne, Math.max(this.#limits.reclaim, 2 * this.#deadCount))
  }
}

// The cutoff that frees the most dead rows for the fewest live rows copied.
// Runs are taken oldest first (by their oldest row): cutting at the oldest row
// of run k means copying runs 0..k-1 whole (a run is moved whole, so that its
// rows never straddle the cut). Dead rows freed count one each, rows copied
// one each against; no run moved, the cutoff is the oldest live row.
//
// `budget` bounds what one reclaim costs (one transaction, on the event loop),
// in rows deleted in a range (RECLAIM_COST): each dead row below the cutoff
// one; each row moved, its copy and its old row's delete, in the range when
// the old row is below the cut, one by one when above it (runs of sessions
// written alike interleave, so a run moved reaches far past the cut). A plan
// over it is carried out in parts, one per reclaim, oldest rows first: as many
// of its runs as the budget holds (at least one, when nothing else can go),
// and the cutoff where the budget ends. Each part moves the next runs of the
// same plan (the moved ones are then the newest), so the parts add up to the
// plan's work, without its stall: with dozens of sessions written alike, every
// live run reaches back to its last snapshot, ~1,000-1,500 entries of each
// session interleaved, and the best plan moved ~25,000 rows and freed ~75,000
// in one transaction of ~200 ms. Moved rows counted 2 each (copy and delete,
// both taken for range work), 8 sessions kept of 64 written alike moved 4,000
// rows a write, deleting each old row one by one: 50-70 ms writes.
export function planReclaim (runs: EntryRun[], deadAscending: ArrayLike<number>, nextSeq: number, budget = Infinity): ReclaimPlan {
  // A run's seqs ascend (see the top of this file): its oldest row is its first.
  const live = runs.filter((run) => run.seqs.length > 0).map((run) => ({ run, oldest: run.seqs[0] }))
  live.sort((a, b) => a.oldest - b.oldest)
  const cutAt = (k: number): number => k < live.length ? live[k].oldest : nextSeq
  const rowsOf = (k: number): number => live[k].run.seqs.length
  // The cost of moving the first `k` runs with the cut at `cutoff`, and of
  // deleting the dead rows below it.
  const cost = (k: number, cutoff: number): number => {
    let total = lowerBound(deadAscending, cutoff)
    for (let i = 0; i < k && total <= budget; i++) total += moveCost(live[i].run.seqs, cutoff)
    return total
  }
  const whole = bestCut(live.length, cutAt, deadAscending, rowsOf)
  if (whole.score <= 0 || cost(whole.moved, whole.cutoff) <= budget) return { cutoff: whole.cutoff, move: live.slice(0, whole.moved).map((l) => l.run), capped: false }
  // As many of the plan's runs as fit with every dead row below the next one,
  // so that the cut passes as much of the runs moved as it can…
  let moved = 0
  while (moved < whole.moved && cost(moved + 1, cutAt(moved + 1)) <= budget) moved++
  if (moved > 0) return { cutoff: cutAt(moved), move: live.slice(0, moved).map((l) => l.run), capped: true }
  // …or none: the dead rows below the oldest live row, up to the budget; or,
  // when there are none, the oldest run alone and the cut where the budget ends
  // (its rows all counted as deleted one by one).
  if (lowerBound(deadAscending, cutAt(0)) > 0) return { cutoff: Math.min(cutAt(0), deadAscending[budget] ?? Infinity), move: [], capped: true }
  const room = Math.max(0, budget - moveCost(live[0].run.seqs, cutAt(0)))
  const cutoff = lowerBound(deadAscending, cutAt(1)) > room ? deadAscending[room] : cutAt(1)
  return { cutoff, move: [live[0].run], capped: true }
}

// Moving a run's rows (ascending seqs) with the cut at `cutoff`: each copied,
// and its old row deleted in the range below the cut, or one by one above it.
function moveCost (seqs: number[], cutoff: number): number {
  const below = lowerBound(seqs, cutoff)
  return RECLAIM_COST.copy * seqs.length + below + RECLAIM_COST.deleteOneByOne * (seqs.length - below)
}

type Cut = { cutoff: number; moved: number; score: number }

function bestCut (runs: number, cutAt: (k: number) => number, deadAscending: ArrayLike<number>, rowsOf: (k: number) => number): Cut {
  let best: Cut = { cutoff: cutAt(0), moved: 0, score: lowerBound(deadAscending, cutAt(0)) }
  let copied = 0
  for (let k = 1; k <= runs; k++) {
    copied += rowsOf(k - 1)
    const freed = lowerBound(deadAscending, cutAt(k))
    const score = freed - copied
    if (score > best.score) best = { cutoff: cutAt(k), moved: k, score }
  }
  return best
}
