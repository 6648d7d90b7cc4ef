// Seeded randomness for the core. One algorithm for both hosts: the simulator seeds
// it from the run's seed, production from node:crypto (see agent/runtime), so a
// simulated run replays exactly from its seed.

import type { Random } from './io.ts'

// splitmix32 turns any 32-bit seed into well-mixed state words.
function splitmix32 (state: number): () => number {
  let s = state >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

// sfc32: small, fast, passes PractRand to large sizes; plenty for jitter and
// member selection.
export class SeededRandom implements Random {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor (seed: number) {
    const mix = splitmix32(seed)
    this.#a = mix()
    this.#b = mix()
    this.#c = mix()
    this.#d = mix()
    for (let i = 0; i < 12; i++) this.nextU32()
  }

  nextU32 (): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0
    this.#d = (this.#d + 1) >>> 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) >>> 0
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0
    this.#c = (this.#c + t) >>> 0
    return t
  }

  nextFloat (): number {
    return this.nextU32() / 4294967296
  }

  nextInt (n: number): number {
    if (!(n > 0)) throw new RangeError(`nextInt needs a positive bound (got ${n})`)
    return Math.floor(this.nextFloat() * n)
  }

  shuffle<T> (items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1)
      const swap = items[i]
      items[i] = items[j]
      items[j] = swap
    }
    return items
  }
}

// Derives independent child seeds (per simulated node, per subsystem) from one seed.
export function deriveSeed (seed: number, salt: number): number {
  return splitmix32((seed ^ Math.imul(salt + 1, 0x27d4eb2f)) >>> 0)()
}
