// The piggyback queue (memberlist's TransmitLimitedQueue): membership news rides on
// probe messages, fewest-sent first, until each item has been sent a number of
// times that grows with log N. One item per subject: newer news about a member
// replaces older news, so the queue never holds more than one item per member.

import type { Update } from '../../protocol/messages.ts'

// `prev`/`next` link the item into its bucket: a list in insertion order (what a
// Set iterates in), without a hash operation per move.
type Item = { subject: string; update: Update; bytes: number; transmits: number; prev: Item | null; next: Item | null }
type Bucket = { head: Item | null; tail: Item | null }

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
  #buckets: Bucket[] = []

  get size (): number {
    return this.#bySubject.size
  }

  enqueue (update: Update): void {
    const subject = updateSubject(update)
    const old = this.#bySubject.get(subject)
    if (old !== undefined) unlink(this.#buckets[old.transmits], old)
    const item: Item = { subject, update, bytes: updateBytes(update), transmits: 0, prev: null, next: null }
    this.#bySubject.set(subject, item)
    append(this.#bucket(0), item)
  }

  // Drops any item about `subject` (e.g. a member was reaped).
  drop (subject: string): void {
    const item = this.#bySubject.get(subject)
    if (item === undefined) return
    unlink(this.#buckets[item.transmits], item)
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
      for (let item = this.#buckets[t].head; item !== null; item = item.next) {
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
    const updates: Update[] = new Array(chosen.length)
    for (let i = 0; i < chosen.length; i++) {
      this.#sent(chosen[i], limit)
      updates[i] = chosen[i].update
    }
    return updates
  }

  #sent (item: Item, limit: number): void {
    unlink(this.#buckets[item.transmits], item)
    item.transmits++
    if (item.transmits >= limit) {
      this.#bySubject.delete(item.subject)
      return
    }
    append(this.#bucket(item.transmits), item)
  }

  #bucket (transmits: number): Bucket {
    while (this.#buckets.length <= transmits) this.#buckets.push({ head: null, tail: null })
    return this.#buckets[transmits]
  }
}

function append (bucket: Bucket, item: Item): void {
  item.prev = bucket.tail
  item.next = null
  if (bucket.tail === null) bucket.head = item
  else bucket.tail.next = item
  bucket.tail = item
}

function unlink (bucket: Bucket, item: Item): void {
  if (item.prev === null) bucket.head = item.next
  else item.prev.next = item.next
  if (item.next === null) bucket.tail = item.prev
  else item.next.prev = item.prev
  item.prev = null
  item.next = null
}
