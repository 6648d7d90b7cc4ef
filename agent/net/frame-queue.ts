// A bounded queue of frames that a libp2p stream's sink drains. send() pushes and
// never waits; the sink pulls length-prefixed batches at the pace the peer accepts.
//
// Frames pushed in one synchronous run (a host sending one batch's effects: an
// owner's entries for many sessions, a standby's acks for them) leave as one
// batch: a sink waiting for the next frame gets it a microtask later, with
// whatever else was pushed meanwhile. Handing it the first frame at once would
// send that frame alone, through its own yamux frame, noise encryption and
// socket write, and the rest as a second batch: two of each per peer per batch.
//
// A batch is one contiguous buffer of length-prefixed frames, not a list of
// them: noise encrypts a list by calling the cipher once per buffer in it, and a
// list of prefixes and frames cost two cipher calls per frame (at rest, ~12,000
// calls a second on an agent holding ~300 session copies, for ~64 encryptions).
// One copy into one buffer makes it one call per batch. (A lone frame is copied
// too: the largest, a snapshot of a few MiB, costs noise far more to encrypt than
// to copy, and is rare.)
//
// The queue is its own async iterator (`[Symbol.asyncIterator]()` returns `this`):
// when a stream is reset, libp2p's sink calls `return()` on the iterator of the
// source it was given, and that must reach the very iterator the sink is awaiting,
// so a pending `next()` resolves at once instead of waiting for the next frame.

import { Uint8ArrayList } from 'uint8arraylist'
import { putVarint, varintBytes } from '../../protocol/wire.ts'

export type FrameQueueLimits = {
  maxFrames: number
  maxBytes: number
  // Frames are batched into one write up to this many encoded bytes.
  batchBytes: number
}

type Waiter = (result: IteratorResult<Uint8ArrayList, undefined>) => void

export class FrameQueue implements AsyncIterableIterator<Uint8ArrayList, undefined> {
  private frames: Uint8Array[] = []
  private head = 0
  private queuedBytes = 0
  private finished = false
  private waiter: Waiter | null = null
  // A microtask is about to hand the waiting sink what was pushed.
  private handing = false
  private readonly limits: FrameQueueLimits
  // Called with the frames and payload bytes each time the sink takes a batch.
  private readonly onTaken: (frames: number, bytes: number) => void
  // Since when (performance.now(), ms) the sink has not taken the oldest queued
  // frame. A monotonic clock: a step of the wall clock (NTP setting the time of
  // a box that booted without one) must not look like a stalled peer.
  waitingSinceMs = 0
  // Payload bytes of the batch the sink took last (it may still be writing it).
  lastBatchBytes = 0

  constructor (limits: FrameQueueLimits, onTaken: (frames: number, bytes: number) => void) {
    this.limits = limits
    this.onTaken = onTaken
  }

  get length (): number {
    return this.frames.length - this.head
  }

  get ended (): boolean {
    return this.finished
  }

  // False when the frame was refused: the queue is full or has ended.
  push (frame: Uint8Array): boolean {
    if (this.finished) return false
    if (this.length > 0 && (this.length >= this.limits.maxFrames || this.queuedBytes + frame.length > this.limits.maxBytes)) {
      return false
    }
    if (this.length === 0) this.waitingSinceMs = performance.now()
    this.frames.push(frame)
    this.queuedBytes += frame.length
    if (this.waiter !== null && !this.handing) {
      this.handing = true
      queueMicrotask(() => { this.handOver() })
    }
    return true
  }

  // The sink waits: it gets every frame pushed since it began waiting, as one
  // batch (unless end() answered it meanwhile).
  private handOver (): void {
    this.handing = false
    const waiter = this.waiter
    if (waiter === null || this.length === 0) return
    this.waiter = null
    waiter({ done: false, value: this.takeBatch() })
  }

  // Ends the iteration; frames still queued stay counted in `length`.
  end (): void {
    if (this.finished) return
    this.finished = true
    const waiter = this.waiter
    if (waiter !== null) {
      this.waiter = null
      waiter({ done: true, value: undefined })
    }
  }

  // Restarts the stall clock, e.g. when a stream opens after a slow dial.
  touch (): void {
    this.waitingSinceMs = performance.now()
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  async next (): Promise<IteratorResult<Uint8ArrayList, undefined>> {
    if (this.finished) return { done: true, value: undefined }
    if (this.length > 0) return { done: false, value: this.takeBatch() }
    if (this.waiter !== null) throw new Error('FrameQueue supports a single reader')
    return await new Promise((resolve) => { this.waiter = resolve })
  }

  async return (): Promise<IteratorResult<Uint8ArrayList, undefined>> {
    this.end()
    return { done: true, value: undefined }
  }

  private takeBatch (): Uint8ArrayList {
    const from = this.head
    let encoded = 0
    let bytes = 0
    while (this.length > 0 && (this.head === from || encoded + this.frames[this.head].length <= this.limits.batchBytes)) {
      const frame = this.frames[this.head]
      this.head++
      encoded += varintBytes(frame.length) + frame.length
      bytes += frame.length
    }
    const batch = new Uint8ArrayList(lengthPrefixed(this.frames, from, this.head, encoded))
    const frames = this.head - from
    this.queuedBytes -= bytes
    this.compact()
    this.waitingSinceMs = performance.now()
    this.lastBatchBytes = bytes
    this.onTaken(frames, bytes)
    return batch
  }

  // Drops taken frames from the array once they are the larger part of it.
  private compact (): void {
    if (this.head === this.frames.length) {
      this.frames = []
      this.head = 0
    } else if (this.head > 64 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head)
      this.head = 0
    }
  }
}

// frames[from..to) each behind its length as an unsigned LEB128 varint (what
// it-length-prefixed reads), in one buffer of `encoded` bytes.
export function lengthPrefixed (frames: Uint8Array[], from: number, to: number, encoded: number): Uint8Array {
  const out = new Uint8Array(encoded)
  let at = 0
  for (let i = from; i < to; i++) {
    const frame = frames[i]
    at = putVarint(out, at, frame.length)
    out.set(frame, at)
    at += frame.length
  }
  return out
}
