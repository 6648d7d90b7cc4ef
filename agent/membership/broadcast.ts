// The piggyback queue (memberlist's TransmitLimitedQueue): membership news rides on
// probe messages, fewest-sent first, until each item has been sent a number of
// times that grows with log N. One item per subject: newer news about a member
// replaces older news, so the queue never holds more than one item per member.

import type { Update } from '../../protocol/messages.ts'

type Item = { subject: string; update: Update; bytes: number; transmits: number }

// Framing around an update's signed bytes and signature: kind byte and two
// length prefixes.
const UPDATE_OVERHEAD_BYTES = 6

// Items that did not fit in a row before `take` calls the budget spent.
const MAX_MISSES = 4

export function updateBytes (update: Update): number {
  return update.signed.bytes.length + update.signed.sig.length + UPDATE_OVERHEAD_BYTES
}

export function updateSubject (update: Update): string {
  return update.kind === 'record' ? update.signed.record.id : update.signed.accusation.subject
}

export class BroadcastQueue {
  // Items by subject, and the same items bucketed by how often they were sent.
  #bySubject = new Map<string, Item>()
  #buckets: Array<Set<Item>> = []

  get size (): number {
    return this.#bySubject.size
  }

  enqueue (update: Update): void {
    const subject = updateSubject(update)
    const old = this.#bySubject.get(subject)
    if (old !== undefined) this.#bucket(old.transmits).delete(old)
    const item: Item = { subject, update, bytes: updateBytes(update), transmits: 0 }
    this.#bySubject.set(subject, item)
    this.#bucket(0).add(item)
  }

  // Drops any item about `subject` (e.g. a member was reaped).
  drop (subject: string): void {
    const item = this.#bySubject.get(subject)
    if (item === undefined) return
    this.#bucket(item.transmits).delete(item)
    this.#bySubject.delete(subject)
  }

  // Takes updates within `budgetBytes`, least-sent first, news about `recipient`
  // first of all (it may be a suspicion the recipient must refute). Items reaching
  // `limit` sends leave the queue.
  take (budgetBytes: number, limit: number, recipient: string | null): Update[] {
    // Most probes find the queue empty: answer before any allocation.
    if (this.#bySubject.size === 0) return []
    const chosen: Item[] = []
    let used = 0
    const aboutRecipient = recipient === null ? undefined : this.#bySubject.get(recipient)
    if (aboutRecipient !== undefined && aboutRecipient.bytes <= budgetBytes) {
      chosen.push(aboutRecipient)
      used += aboutRecipient.bytes
    }
    // Items are of similar size: once a few in a row do not fit, the budget is
    // spent. Without this cut a full budget meant walking the whole queue (every
    // member's record after a mass join) on every probe.
    let misses = 0
    for (let t = 0; t < this.#buckets.length && used < budgetBytes && misses < MAX_MISSES; t++) {
      const bucket = this.#buckets[t]
      if (bucket.size === 0) continue
      for (const item of bucket) {
        if (item === aboutRecipient) continue
        if (used + item.bytes > budgetBytes) {
          if (++misses >= MAX_MISSES) break
          continue
        }
        chosen.push(item)
        used += item.bytes
        if (used >= budgetBytes) break
      }
    }
    for (const item of chosen) this.#sent(item, limit)
    return chosen.map((item) => item.update)
  }

  #sent (item: Item, limit: number): void {
    this.#bucket(item.transmits).delete(item)
    item.transmits++
    if (item.transmits >= limit) {
      this.#bySubject.delete(item.subject)
      return
    }
    this.#bucket(item.transmits).add(item)
  }

  #bucket (transmits: number): Set<Item> {
    while (this.#buckets.length <= transmits) this.#buckets.push(new Set())
    return this.#buckets[transmits]
  }
}
