// Sessions this agent held and forgot because they were closed, remembered so
// that an owner that missed the close cannot bring one back (Sessions, for the
// appends and snapshots it refuses with this). Part of the sessions core: the
// time is the step's.
//
// An owner cut off while a later epoch's owner closed its session comes back to
// members that forgot the session. Taken as a new session (from its create
// entry or a snapshot), it gave that owner its majority back, and the closed
// session served reads from a stale state and acknowledged deltas in an epoch
// already succeeded (a chaos sweep with closes, SEED=517). Refused in a later
// epoch than the sender's, the sender steps down; with no member holding the
// session it then gives its copy up (replica.ts, forgottenByMajority).
// Remembered for CLOSED_REMEMBERED_MS, at most MAX_CLOSED sessions, and stored
// (the store keeps the last MAX_CLOSED: session-delete's closedEpoch), so a
// member restarted after the close refuses too. Remembered in memory only, a
// member that closed the session and then restarted took it from the old owner
// as a new one, and that owner, cut off through the close, had its majority
// again: it served reads of the closed session without what a later epoch had
// acknowledged, for good (chaos sweeps with slow disks, SEED=409 with
// `replicas` 1 and 547 on own clocks). After longer away than that, an owner
// that missed the close can still bring it back (README, "Closing").

export const CLOSED_REMEMBERED_MS = 24 * 60 * 60 * 1000
// About 10 MiB in memory.
export const MAX_CLOSED = 100_000

export class ClosedSessions {
  readonly #closed = new Map<string, { epoch: number; atMs: number }>()

  // `epoch`: the one our copy was in when we forgot it.
  remember (sessionId: string, epoch: number, nowMs: number): void {
    this.#closed.delete(sessionId)
    this.#closed.set(sessionId, { epoch, atMs: nowMs })
    if (this.#closed.size > MAX_CLOSED) this.#closed.delete(this.#closed.keys().next().value as string)
  }

  // Whether we remember `sessionId` closed.
  remembers (sessionId: string, nowMs: number): boolean {
    return this.refusalEpoch(sessionId, 0, nowMs) !== null
  }

  // The epoch to refuse a message of `epoch` about `sessionId` in (later than
  // the sender's), or null when we do not remember the session closed.
  refusalEpoch (sessionId: string, epoch: number, nowMs: number): number | null {
    const closed = this.#closed.get(sessionId)
    if (closed === undefined) return null
    if (nowMs - closed.atMs > CLOSED_REMEMBERED_MS) {
      this.#closed.delete(sessionId)
      return null
    }
    return Math.max(closed.epoch, epoch + 1)
  }
}
