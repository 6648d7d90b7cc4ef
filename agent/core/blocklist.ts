// Peers blocked until a time each. Pure (the time comes in with every call): the
// agent host keeps one for the peers it cut off (agent/runtime/peer-strikes.ts),
// the libp2p adapter one for its connection gater (agent/net/libp2p.ts).

export class Blocklist {
  readonly #until = new Map<string, number>()
  readonly #max: number

  // At most `max` blocks are held: past it the expired ones go, then, if every
  // one is live, the oldest half (a flood of fresh peer ids costs memory for at
  // most `max` of them).
  constructor (max: number) {
    this.#max = max
  }

  // Blocks `peer` until `untilMs`, replacing any block it had.
  add (peer: string, untilMs: number, nowMs: number): void {
    this.#until.delete(peer)
    if (this.#until.size >= this.#max) this.#sweep(nowMs)
    this.#until.set(peer, untilMs)
  }

  has (peer: string, nowMs: number): boolean {
    const until = this.#until.get(peer)
    if (until === undefined) return false
    if (nowMs < until) return true
    this.#until.delete(peer)
    return false
  }

  // Peers blocked at `nowMs`.
  size (nowMs: number): number {
    this.#sweep(nowMs)
    return this.#until.size
  }

  #sweep (nowMs: number): void {
    for (const [peer, until] of this.#until) if (nowMs >= until) this.#until.delete(peer)
    if (this.#until.size < this.#max) return
    let drop = this.#until.size / 2
    for (const peer of this.#until.keys()) {
      if (drop-- <= 0) break
      this.#until.delete(peer)
    }
  }
}
