// Virtual time: a priority queue of callbacks ordered by (time, insertion order).
// Nothing here reads the wall clock, so a run depends only on its seed.

type Event = { atMs: number; seq: number; run: () => void }

export class Scheduler {
  #now = 0
  #seq = 0
  readonly #heap: Event[] = []

  get nowMs (): number {
    return this.#now
  }

  get pending (): number {
    return this.#heap.length
  }

  // Runs `run` at `atMs` (never in the past: earlier times run now, after the
  // events already queued for now).
  at (atMs: number, run: () => void): void {
    const event: Event = { atMs: Math.max(this.#now, atMs), seq: this.#seq++, run }
    const heap = this.#heap
    heap.push(event)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i], heap[parent])) break
      swap(heap, i, parent)
      i = parent
    }
  }

  after (delayMs: number, run: () => void): void {
    this.at(this.#now + delayMs, run)
  }

  // Runs every event due up to and including `untilMs`, then sets the clock there.
  runUntil (untilMs: number): void {
    while (this.#heap.length > 0 && this.#heap[0].atMs <= untilMs) this.#runNext()
    this.#now = Math.max(this.#now, untilMs)
  }

  // Runs until `done()` holds or `limitMs` passes; returns true when it held.
  // `done()` is checked whenever virtual time has moved by `checkEveryMs` (a
  // whole-cluster predicate after every event would cost O(N²) per event), so
  // the clock stops at most that much after the condition became true.
  runUntilTrue (done: () => boolean, limitMs: number, checkEveryMs = 1): boolean {
    if (done()) return true
    let nextCheck = this.#now + checkEveryMs
    while (this.#heap.length > 0 && this.#heap[0].atMs <= limitMs) {
      if (this.#heap[0].atMs > nextCheck) {
        if (done()) return true
        nextCheck = this.#heap[0].atMs + checkEveryMs
      }
      this.#runNext()
    }
    if (done()) return true
    this.#now = Math.max(this.#now, limitMs)
    return done()
  }

  #runNext (): void {
    const heap = this.#heap
    const top = heap[0]
    const last = heap.pop() as Event
    if (heap.length > 0) {
      heap[0] = last
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        const right = left + 1
        let smallest = i
        if (left < heap.length && before(heap[left], heap[smallest])) smallest = left
        if (right < heap.length && before(heap[right], heap[smallest])) smallest = right
        if (smallest === i) break
        swap(heap, i, smallest)
        i = smallest
      }
    }
    this.#now = top.atMs
    top.run()
  }
}

function before (a: Event, b: Event): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq)
}

function swap (heap: Event[], i: number, j: number): void {
  const t = heap[i]
  heap[i] = heap[j]
  heap[j] = t
}
