// Whether this agent's disk is slow: the median of the fsyncs its session store
// made over the last DISK_WINDOW_MS. A worn SD card or an overloaded disk makes
// every write an owner acknowledges wait for its fsync (the owner answers only
// once its own copy is durable), so an agent whose disk is slow hands the
// sessions it owns to members that keep up (resign.ts) and stands
// last in takeovers (election.ts). Hosts feed it every fsync's duration and
// tell the sessions core when the verdict changes ({ type: 'disk' } command).
//
// Pure: the host passes the time. Slow once the median reaches slowFsyncMs over
// at least DISK_MIN_SAMPLES fsyncs; fast again once it falls under half of that
// (a disk near the line does not flap). With no fsyncs the verdict stays: an
// agent with nothing to write has nothing to hand over either, and its next
// writes measure the disk again.

export const DISK_WINDOW_MS = 5_000
export const DISK_MIN_SAMPLES = 5
// Samples kept at most (a fast disk under a write burst syncs thousands of
// times in a window; the newest are as good a median).
const MAX_SAMPLES = 256

export class DiskWatch {
  readonly slowFsyncMs: number
  slow = false
  // The window's fsyncs, oldest first, from #first on (dropped ones are cut
  // off now and then, not one by one).
  readonly #atMs: number[] = []
  readonly #fsyncMs: number[] = []
  #first = 0
  // Of the window's fsyncs: how many took slowFsyncMs or more, and how many
  // under half of it. The median reaches slowFsyncMs when the first are at
  // least half of the window, and falls under half of it when the second are
  // more than half: no sort per fsync (an agent syncs thousands of times a
  // second under a write burst, the simulator as often).
  #atLeast = 0
  #underHalf = 0

  // slowFsyncMs 0 turns the watch off (it never calls the disk slow).
  constructor (slowFsyncMs: number) {
    this.slowFsyncMs = slowFsyncMs
  }

  // One fsync took `fsyncMs`, ending at `nowMs`. Returns the new verdict when it
  // changed (true: slow), else null.
  observe (nowMs: number, fsyncMs: number): boolean | null {
    if (this.slowFsyncMs <= 0) return null
    this.#atMs.push(nowMs)
    this.#fsyncMs.push(fsyncMs)
    this.#count(fsyncMs, 1)
    while (this.#first < this.#atMs.length && (this.#atMs[this.#first] <= nowMs - DISK_WINDOW_MS || this.#atMs.length - this.#first > MAX_SAMPLES)) {
      this.#count(this.#fsyncMs[this.#first], -1)
      this.#first++
    }
    if (this.#first > MAX_SAMPLES) {
      this.#atMs.splice(0, this.#first)
      this.#fsyncMs.splice(0, this.#first)
      this.#first = 0
    }
    const n = this.#atMs.length - this.#first
    if (n < DISK_MIN_SAMPLES) return null
    // sorted[floor(n / 2)] >= slowFsyncMs  <=>  at least n - floor(n / 2) reach it.
    if (!this.slow && this.#atLeast >= n - Math.floor(n / 2)) {
      this.slow = true
      return true
    }
    // sorted[floor(n / 2)] < slowFsyncMs / 2  <=>  more than floor(n / 2) are under it.
    if (this.slow && this.#underHalf > Math.floor(n / 2)) {
      this.slow = false
      return false
    }
    return null
  }

  #count (fsyncMs: number, by: 1 | -1): void {
    if (fsyncMs >= this.slowFsyncMs) this.#atLeast += by
    else if (fsyncMs < this.slowFsyncMs / 2) this.#underHalf += by
  }

  // The median fsync of the window (NaN before any), for logs and metrics.
  get medianMs (): number {
    const window = this.#fsyncMs.slice(this.#first)
    if (window.length === 0) return NaN
    window.sort((a, b) => a - b)
    return window[Math.floor(window.length / 2)]
  }
}
