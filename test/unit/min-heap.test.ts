// The binary heap behind the sessions core's wake-ups and the simulator's mesh
// flood: entries come out smallest time first, whatever order they went in,
// interleaved pushes and pops included, and clear() leaves it reusable.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { MinHeap } from '../../agent/core/min-heap.ts'

const SEED = 2311

test(`pops come out in time order, pushes and pops interleaved (fast-check seed ${SEED})`, () => {
  // A push is a time; null is a pop (when not empty).
  const ops = fc.array(fc.oneof(fc.integer({ min: -1_000, max: 1_000 }), fc.constant(null)), { maxLength: 300 })
  fc.assert(fc.property(ops, (list) => {
    const heap = new MinHeap<string>()
    const model: Array<[number, string]> = []
    let n = 0
    for (const op of list) {
      if (op === null) {
        if (model.length === 0) continue
        model.sort((a, b) => a[0] - b[0])
        const top = heap.topTime
        assert.is(top, model[0][0])
        const value = heap.pop()
        // Ties may come out in any order: the value popped has the least time.
        const at = model.findIndex(([t, v]) => t === top && v === value)
        assert.ok(at >= 0, `popped ${value} at ${top}, which the model does not hold there`)
        model.splice(at, 1)
      } else {
        const value = `v${n++}`
        heap.push(op, value)
        model.push([op, value])
      }
      assert.is(heap.size, model.length)
    }
    return true
  }), { seed: SEED, numRuns: 300 })
})

test('topValue is the entry topTime belongs to; clear() empties it for reuse', () => {
  const heap = new MinHeap<string>()
  for (const [t, v] of [[5, 'e'], [1, 'a'], [3, 'c'], [1, 'a2'], [2, 'b']] as Array<[number, string]>) heap.push(t, v)
  assert.is(heap.topTime, 1)
  assert.ok(['a', 'a2'].includes(heap.topValue))
  const out: number[] = []
  while (heap.size > 0) out.push(heap.topTime), heap.pop()
  assert.equal(out, [1, 1, 2, 3, 5])
  heap.push(9, 'x')
  heap.clear()
  assert.is(heap.size, 0)
  heap.push(4, 'y')
  assert.is(heap.topValue, 'y')
  assert.is(heap.pop(), 'y')
})

test.run()
