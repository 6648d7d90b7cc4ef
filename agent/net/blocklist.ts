// Peers this node refuses for a while (Net.block: the agent cut one off for
// malformed frames). The connection gater asks it once a peer has proven its id
// (after noise), for connections either way, and before we dial a peer at all.

// Blocks held at once; past it expired ones go first, then the oldest.
const MAX_BLOCKED = 10_000

export class Blocklist {
  readonly #until = new Map<string, number>()
  readonly #now: () => number

  constructor (now: () => number = () => performance.now()) {
    this.#now = now
  }

  add (peer: string, forMs: number): void {
    const until = this.#now() + forMs
    this.#until.delete(peer)
    if (this.#until.size >= MAX_BLOCKED) this.#sweep()
    this.#until.set(peer, until)
  }

  has (peer: string): boolean {
    const until = this.#until.get(peer)
    if (until === undefined) return false
    if (this.#now() < until) return true
    this.#until.delete(peer)
    return false
  }

  #sweep (): void {
    const now = this.#now()
    for (const [peer, until] of this.#until) if (now >= until) this.#until.delete(peer)
    for (const peer of this.#until.keys()) {
      if (this.#until.size < MAX_BLOCKED) return
      this.#until.delete(peer)
    }
  }
}
