// How much session state one agent snapshots in a short time. A snapshot is
// serialised and stored on the event loop (replica.ts snapshotAt, the store's
// write), several ms per MiB of state on this project's 2-core box, and sessions
// written alike reach their snapshot points together: at 64 terminals an
// agent's turn held ten snapshots and stalled for ~200 ms, answering nothing,
// membership probes included. A snapshot is only compaction, so it can wait:
// past the window's share of `snapshotBytesPerS`, a session's snapshot waits
// for a later step (its next applied entry asks again), and its log meanwhile
// grows by what it takes a few windows to write.
//
// The first snapshot of a window is always taken, whatever its size: a state
// bigger than a window's share is snapshotted alone in its window. And a
// snapshot that has waited SNAPSHOT_MAX_WAIT_MS is taken at its next chance,
// counted but not refused: sessions step in an order of their own (the order
// frames arrive in), and one that always comes after others that use up the
// share would otherwise wait as long as they keep doing so. Deterministic (the
// core's clock), so the simulator replays it.

// The window the budget is counted over, ms.
export const SNAPSHOT_WINDOW_MS = 50

// The longest a due snapshot waits, ms.
export const SNAPSHOT_MAX_WAIT_MS = 250

export class SnapshotBudget {
  readonly #bytesPerWindow: number
  #windowStartMs = -Infinity
  #used = 0

  // bytesPerS: 0 is no limit.
  constructor (bytesPerS: number) {
    this.#bytesPerWindow = bytesPerS === 0 ? Infinity : bytesPerS * SNAPSHOT_WINDOW_MS / 1_000
  }

  // May a snapshot of about `bytes` of state be taken at `nowMs`? If so (and
  // always when it is `overdue`), it is counted.
  take (nowMs: number, bytes: number, overdue = false): boolean {
    if (nowMs - this.#windowStartMs >= SNAPSHOT_WINDOW_MS) {
      this.#windowStartMs = nowMs
      this.#used = 0
    }
    if (!overdue && this.#used > 0 && this.#used + bytes > this.#bytesPerWindow) return false
    this.#used += bytes
    return true
  }
}
