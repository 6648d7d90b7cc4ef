// Token buckets for rate limits. Pure: the time comes in with every call, so the
// same code limits terminals on the HTTP API and peers on the network, and tests
// step time by hand.

export type BucketLimit = {
  // Tokens added per second (the sustained rate).
  ratePerS: number
  // Tokens the bucket holds at most (the burst allowed after a quiet spell).
  burst: number
}

export class TokenBucket {
  readonly limit: BucketLimit
  #tokens: number
  #atMs: number

  constructor (limit: BucketLimit, nowMs: number) {
    this.limit = limit
    this.#tokens = limit.burst
    this.#atMs = nowMs
  }

  // Takes `cost` tokens if the bucket holds them. Otherwise takes nothing and
  // returns the ms until it will (Infinity when cost exceeds the burst).
  take (cost: number, nowMs: number): { ok: true } | { ok: false; waitMs: number } {
    this.#refill(nowMs)
    if (cost <= this.#tokens) {
      this.#tokens -= cost
      return { ok: true }
    }
    if (cost > this.limit.burst) return { ok: false, waitMs: Infinity }
    return { ok: false, waitMs: Math.ceil((cost - this.#tokens) * 1000 / this.limit.ratePerS) }
  }

  // True once the bucket is full again: it then behaves like a new one and may be
  // dropped (keeps per-peer or per-terminal maps from growing without bound).
  idle (nowMs: number): boolean {
    this.#refill(nowMs)
    return this.#tokens >= this.limit.burst
  }

  #refill (nowMs: number): void {
    if (nowMs > this.#atMs) {
      this.#tokens = Math.min(this.limit.burst, this.#tokens + (nowMs - this.#atMs) * this.limit.ratePerS / 1000)
      this.#atMs = nowMs
    }
  }
}

// One bucket per key (a peer, a terminal, a session), created full on first use.
export class BucketMap {
  readonly limit: BucketLimit
  readonly #buckets = new Map<string, TokenBucket>()
  readonly #maxKeys: number

  constructor (limit: BucketLimit, maxKeys: number) {
    this.limit = limit
    this.#maxKeys = maxKeys
  }

  get size (): number {
    return this.#buckets.size
  }

  take (key: string, cost: number, nowMs: number): { ok: true } | { ok: false; waitMs: number } {
    let bucket = this.#buckets.get(key)
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#sweep(nowMs)
      bucket = new TokenBucket(this.limit, nowMs)
      this.#buckets.set(key, bucket)
    }
    return bucket.take(cost, nowMs)
  }

  // Full buckets carry no state worth keeping. If every bucket is in use, the
  // oldest half goes: a flood of fresh keys then costs memory for at most
  // maxKeys buckets, and the evicted keys start again with a full bucket.
  #sweep (nowMs: number): void {
    for (const [key, bucket] of this.#buckets) if (bucket.idle(nowMs)) this.#buckets.delete(key)
    if (this.#buckets.size < this.#maxKeys) return
    let drop = Math.ceil(this.#buckets.size / 2)
    for (const key of this.#buckets.keys()) {
      if (drop-- <= 0) break
      this.#buckets.delete(key)
    }
  }
}
