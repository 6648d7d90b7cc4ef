// The simulated network: per-message delay and loss, and partitions. A message
// either arrives after a delay drawn from the link model or is lost; across a
// partition it is always lost (a firewall that drops, not one that rejects).

import type { Random } from '../agent/core/io.ts'

export type LinkModel = {
  // Share of messages lost, 0..1.
  lossRate: number
  // One-way delay, uniformly drawn from [delayMinMs, delayMaxMs].
  delayMinMs: number
  delayMaxMs: number
}

export const DEFAULT_LINK: LinkModel = { lossRate: 0, delayMinMs: 1, delayMaxMs: 3 }

export class SimNetwork {
  readonly #random: Random
  #link: LinkModel
  // Side of each node while partitioned; nodes not listed are on side 0.
  #sides: Map<string, number> | null = null
  // Extra one-way delay of every message to or from a slow node (gray failure).
  readonly #slow = new Map<string, number>()

  constructor (random: Random, link: LinkModel) {
    this.#random = random
    this.#link = { ...link }
  }

  get link (): LinkModel {
    return { ...this.#link }
  }

  setLink (patch: Partial<LinkModel>): void {
    this.#link = { ...this.#link, ...patch }
  }

  partition (sides: string[][]): void {
    const map = new Map<string, number>()
    sides.forEach((side, index) => { for (const id of side) map.set(id, index) })
    this.#sides = map
  }

  heal (): void {
    this.#sides = null
  }

  // A node whose every message in or out takes `extraMs` longer (0 ends it).
  slow (node: string, extraMs: number): void {
    if (extraMs > 0) this.#slow.set(node, extraMs)
    else this.#slow.delete(node)
  }

  get slowNodes (): string[] {
    return [...this.#slow.keys()]
  }

  sideOf (node: string): number {
    return this.#sides?.get(node) ?? 0
  }

  get partitioned (): boolean {
    return this.#sides !== null
  }

  canReach (from: string, to: string): boolean {
    if (this.#sides === null) return true
    return (this.#sides.get(from) ?? 0) === (this.#sides.get(to) ?? 0)
  }

  // The delay of one message over the link, or null when it is lost.
  transit (from: string, to: string): number | null {
    if (!this.canReach(from, to)) return null
    if (this.#link.lossRate > 0 && this.#random.nextFloat() < this.#link.lossRate) return null
    const extra = this.#slow.size === 0 ? 0 : (this.#slow.get(from) ?? 0) + (this.#slow.get(to) ?? 0)
    return this.delay() + extra
  }

  delay (): number {
    const { delayMinMs, delayMaxMs } = this.#link
    return delayMinMs + this.#random.nextFloat() * (delayMaxMs - delayMinMs)
  }
}
