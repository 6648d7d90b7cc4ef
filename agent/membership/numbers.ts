// Member numbers: a small integer per member id, so that a member table keeps its
// per-member state in typed arrays indexed by number instead of one object per
// member. A real agent has one table and its own numbering, whose numbers are
// reused once the table forgets a member. The simulator runs thousands of
// tables over the same ids in one process and gives them one shared numbering
// (never released: its ids are the simulated nodes), so no table needs an
// id-to-number map of its own: that map alone would be ~40 bytes per entry,
// N² entries in all.

export class MemberNumbers {
  // Shared numberings never release a number: another table may still use it.
  readonly shared: boolean
  readonly #byId = new Map<string, number>()
  readonly #ids: string[] = []
  readonly #free: number[] = []

  constructor (shared = false) {
    this.shared = shared
  }

  // One more than the highest number handed out: typed arrays are sized to it.
  get capacity (): number {
    return this.#ids.length
  }

  // The number of `id`, handing out a new one if it has none.
  numberOf (id: string): number {
    const known = this.#byId.get(id)
    if (known !== undefined) return known
    const n = this.#free.pop() ?? this.#ids.length
    if (n === this.#ids.length) this.#ids.push(id)
    else this.#ids[n] = id
    this.#byId.set(id, n)
    return n
  }

  find (id: string): number | undefined {
    return this.#byId.get(id)
  }

  idOf (n: number): string {
    return this.#ids[n]
  }

  // The table that owned `n` forgot its member; a private numbering reuses it.
  release (n: number): void {
    if (this.shared) return
    const id = this.#ids[n]
    if (id === undefined || this.#byId.get(id) !== n) return
    this.#byId.delete(id)
    this.#ids[n] = ''
    this.#free.push(n)
  }
}
