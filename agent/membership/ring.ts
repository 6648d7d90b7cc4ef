// The probe ring: the live members (alive or suspect, the local node included)
// in id order. Every member whose view agrees holds the same ring, so the probe
// schedule built on it (detector.ts, #probeNext) is one shared plan: in
// each probe period every member probes a different member, and every member is
// probed by exactly one other. SWIM's own choice (a random member, or a shuffled
// round-robin as in memberlist) probes each member once per period only on
// average: a member that freezes waits for its first probe one period on
// average, with an exponential tail (about 5% of freezes wait more than three
// periods), and that wait is most of the time to a verdict. With the ring the
// wait is at most one period.

// Above this many live members the ring is not kept (table.ts) and the
// detector probes in a shuffled round-robin instead.
export const PROBE_RING_MAX = 1_024

export class ProbeRing {
  readonly #ids: string[] = []

  static of (ids: string[]): ProbeRing {
    const ring = new ProbeRing()
    ring.#ids.push(...ids)
    ring.#ids.sort(compareIds)
    return ring
  }

  get size (): number {
    return this.#ids.length
  }

  // Adds `id` in order (nothing if present). O(log N) compares plus one O(N)
  // array move, which at the ring's size cap is a copy of a few KiB.
  add (id: string): void {
    const at = this.#search(id)
    if (at < this.#ids.length && this.#ids[at] === id) return
    this.#ids.splice(at, 0, id)
  }

  remove (id: string): void {
    const at = this.#search(id)
    if (at < this.#ids.length && this.#ids[at] === id) this.#ids.splice(at, 1)
  }

  has (id: string): boolean {
    const at = this.#search(id)
    return at < this.#ids.length && this.#ids[at] === id
  }

  ids (): readonly string[] {
    return this.#ids
  }

  // The member `self` probes in probe period `slot`: the one 1 + (slot mod
  // (N − 1)) places after it. Over N − 1 periods each member probes every other
  // once; within a period the offsets are the same for all, so the targets are
  // a rotation of the ring (a bijection with no fixed point). Null when `self`
  // is not in the ring or is alone in it.
  target (self: string, slot: number): string | null {
    const n = this.#ids.length
    if (n < 2) return null
    const at = this.#search(self)
    if (at >= n || this.#ids[at] !== self) return null
    return this.#ids[(at + offsetOf(slot, n)) % n]
  }

  // Who probes `target` in period `slot`: the member 1 + (slot mod (N − 1))
  // places before it (the inverse of target()). Null when `target` is not in
  // the ring or is alone in it.
  proberOf (target: string, slot: number): string | null {
    const n = this.#ids.length
    if (n < 2) return null
    const at = this.#search(target)
    if (at >= n || this.#ids[at] !== target) return null
    return this.#ids[(at + n - offsetOf(slot, n)) % n]
  }

  // The first position whose id is not below `id`.
  #search (id: string): number {
    let lo = 0
    let hi = this.#ids.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#ids[mid] < id) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

// How many places after itself a member probes in period `slot`: 1 .. N − 1.
function offsetOf (slot: number, n: number): number {
  return 1 + ((slot % (n - 1)) + (n - 1)) % (n - 1)
}

// Plain code-unit order: the same on every machine, whatever its locale.
function compareIds (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
