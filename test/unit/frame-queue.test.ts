import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as lp from 'it-length-prefixed'
import { Uint8ArrayList } from 'uint8arraylist'
import { FrameQueue } from '../../agent/net/frame-queue.ts'

const limits = { maxFrames: 100, maxBytes: 1_000_000, batchBytes: 64 * 1024 }

async function framesOf (batch: { subarray: () => Uint8Array }): Promise<number[]> {
  const out: number[] = []
  for await (const frame of lp.decode([batch.subarray()])) out.push(frame.subarray()[0])
  return out
}

test('frames pushed in one synchronous run while the sink waits leave as one batch', async () => {
  const taken: number[] = []
  const queue = new FrameQueue(limits, (frames) => { taken.push(frames) })
  const pending = queue.next()
  for (let i = 1; i <= 5; i++) assert.ok(queue.push(Uint8Array.of(i)))
  const first = await pending
  assert.is(first.done, false)
  assert.equal(await framesOf(first.value!), [1, 2, 3, 4, 5])
  assert.equal(taken, [5], 'one batch of five, not the first frame alone and then four')
  // Pushed while nobody waits: the next pull takes them all at once.
  queue.push(Uint8Array.of(6))
  queue.push(Uint8Array.of(7))
  const second = await queue.next()
  assert.equal(await framesOf(second.value!), [6, 7])
  assert.is(queue.length, 0)
})

test('a batch stops at batchBytes; the rest waits for the next pull', async () => {
  const queue = new FrameQueue({ ...limits, batchBytes: 250 }, () => undefined)
  const pending = queue.next()
  for (let i = 1; i <= 3; i++) queue.push(new Uint8Array(100).fill(i))
  assert.equal(await framesOf((await pending).value!), [1, 2])
  assert.equal(await framesOf((await queue.next()).value!), [3])
})

test('end() while a batch is being handed over answers the sink done, and keeps the frames counted', async () => {
  const queue = new FrameQueue(limits, () => undefined)
  const pending = queue.next()
  queue.push(Uint8Array.of(1))
  queue.end()
  assert.equal(await pending, { done: true, value: undefined })
  assert.is(queue.length, 1)
  assert.not.ok(queue.push(Uint8Array.of(2)), 'an ended queue refuses frames')
})

test('a batch is one contiguous buffer (one noise cipher call, not two per frame), and it-length-prefixed reads it back', async () => {
  const queue = new FrameQueue(limits, () => undefined)
  // Lengths on both sides of each varint byte boundary.
  const sizes = [0, 1, 127, 128, 300, 16_383, 16_384, 30_000]
  for (const [i, size] of sizes.entries()) queue.push(new Uint8Array(size).fill(i + 1))
  const batch = (await queue.next()).value!
  assert.is([...batch].length, 1, 'one buffer in the batch')
  const back: Uint8Array[] = []
  for await (const frame of lp.decode([batch.subarray()])) back.push(frame.subarray())
  assert.equal(back.map((f) => f.length), sizes)
  assert.ok(back.every((f, i) => f.every((b) => b === i + 1)), 'every frame comes back with its own bytes')
  // Byte for byte what it-length-prefixed writes.
  const expected = new Uint8ArrayList(...sizes.map((size, i) => lp.encode.single(new Uint8Array(size).fill(i + 1)))).subarray()
  assert.equal(batch.subarray(), expected)
})

test.run()
