// Virtual time: a priority queue of callbacks ordered by (time, insertion order).
// Nothing here reads the wall clock, so a run depends only on its seed.
//
// A run at 1,000 nodes runs millions of events, so the heap keeps no
// object per event: times and insertion numbers sit in typed arrays beside an
// array of callbacks, and sifting moves a hole instead of swapping.

const INITIAL_CAPACITY = 1_024

export class Scheduler {
  #now = 0
  #seq = 0
  #size = 0
  #times = new Float64Array(INITIAL_CAPACITY)
  // Insertion numbers: exact in a float up to 2^53 events.
  #seqs = new Float64Array(INITIAL_CAPACITY)
  #runs: Array<(() => void) | undefined> = new Array(INITIAL_CAPACITY).fill(undefined)

  get nowMs (): number {
    return this.#now
  }

  get pending (): number {
    return this.#size
  }

  // Runs `run` at `atMs` (never in the past: earlier times run now, after the
  // events already queued for now).
  at (atMs: number, run: () => void): void {
    const time = atMs > this.#now ? atMs : this.#now
    const seq = this.#seq++
    if (this.#size === this.#times.length) this.#grow()
    const times = this.#times
    const seqs = this.#seqs
    const runs = this.#runs
    // Sift up: move parents that come later down into the hole.
    let i = this.#size++
    while (i > 0) {
      const parent = (i - 1) >> 1
      const pt = times[parent]
      if (pt < time || (pt === time && seqs[parent] < seq)) break
      times[i] = pt
      seqs[i] = seqs[parent]
      runs[i] = runs[parent]
      i = parent
    }
    times[i] = time
    seqs[i] = seq
    runs[i] = run
  }

  after (delayMs: number, run: () => void): void {
    this.at(this.#now + delayMs, run)
  }

  // Runs every event due up to and including `untilMs`, then sets the clock there.
  runUntil (untilMs: number): void {
    while (this.#size > 0 && this.#times[0] <= untilMs) this.#runNext()
    this.#now = Math.max(this.#now, untilMs)
  }

  // Runs until `done()` holds or `limitMs` passes; returns true when it held.
  // `done()` is checked whenever virtual time has moved by `checkEveryMs` (a
  // whole-cluster predicate after every event would cost O(N²) per event), so
  // the clock stops at most that much after the condition became true.
  runUntilTrue (done: () => boolean, limitMs: number, checkEveryMs = 1): boolean {
    if (done()) return true
    let nextCheck = this.#now + checkEveryMs
    while (this.#size > 0 && this.#times[0] <= limitMs) {
      if (this.#times[0] > nextCheck) {
        if (done()) return true
        nextCheck = this.#times[0] + checkEveryMs
      }
      this.#runNext()
    }
    if (done()) return true
    this.#now = Math.max(this.#now, limitMs)
    return done()
  }

  #runNext (): void {
    const times = this.#times
    const seqs = this.#seqs
    const runs = this.#runs
    const atMs = times[0]
    const run = runs[0] as () => void
    const size = --this.#size
    if (size > 0) {
      // Sift the last event down from the root's hole.
      const time = times[size]
      const seq = seqs[size]
      const last = runs[size]
      let i = 0
      for (;;) {
        let child = 2 * i + 1
        if (child >= size) break
        const right = child + 1
        if (right < size && (times[right] < times[child] || (times[right] === times[child] && seqs[right] < seqs[child]))) child = right
        const ct = times[child]
        if (time < ct || (time === ct && seq < seqs[child])) break
        times[i] = ct
        seqs[i] = seqs[child]
        runs[i] = runs[child]
        i = child
      }
      times[i] = time
      seqs[i] = seq
      runs[i] = last
    }
    runs[size] = undefined
    this.#now = atMs
    run()
  }

  #grow (): void {
    const capacity = this.#times.length * 2
    const times = new Float64Array(capacity)
    times.set(this.#times)
    const seqs = new Float64Array(capacity)
    seqs.set(this.#seqs)
    this.#times = times
    this.#seqs = seqs
    const runs = this.#runs
    while (runs.length < capacity) runs.push(undefined)
  }
}
