// The disk watch (agent/sessions/disk-watch.ts): slow once the median fsync of
// the last 5 s reaches slowFsyncMs over at least 5 fsyncs, fast again once it
// falls under half of it. It counts instead of sorting; a property test checks
// it against the median of the window computed the slow way.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { DISK_MIN_SAMPLES, DISK_WINDOW_MS, DiskWatch } from '../../agent/sessions/disk-watch.ts'

test('a disk whose fsyncs take 200 ms is slow after 5 of them, and fast again once most of the window is under half the threshold', () => {
  const watch = new DiskWatch(100)
  const verdicts: Array<boolean | null> = []
  for (let i = 0; i < 5; i++) verdicts.push(watch.observe(i * 250, 200))
  assert.equal(verdicts, [null, null, null, null, true])
  assert.is(watch.medianMs, 200)
  // 60 ms fsyncs: under the threshold, not under half of it: still slow.
  for (let i = 0; i < 20; i++) assert.is(watch.observe(2_000 + i * 100, 60), null)
  assert.ok(watch.slow)
  let changed: boolean | null = null
  for (let i = 0; i < 40 && changed === null; i++) changed = watch.observe(4_100 + i * 100, 1)
  assert.is(changed, false)
  assert.not.ok(watch.slow)
})

test('fsyncs older than the window are forgotten; fewer than 5 in it decide nothing', () => {
  const watch = new DiskWatch(100)
  for (let i = 0; i < 4; i++) watch.observe(i * 1_000, 500)
  // The first four are out of the window by now: four slow ones never make it.
  for (let i = 0; i < 4; i++) assert.is(watch.observe(10_000 + i * 1_000, 500), null)
  assert.is(watch.observe(14_000, 500), true)
})

test('slowFsyncMs 0 never calls a disk slow', () => {
  const watch = new DiskWatch(0)
  for (let i = 0; i < 50; i++) assert.is(watch.observe(i, 10_000), null)
  assert.not.ok(watch.slow)
})

test('property: the verdict is the median rule over the window, computed by sorting', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 300 }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 600 })), { maxLength: 400 }),
    (threshold, steps) => {
      const watch = new DiskWatch(threshold)
      const seen: Array<[number, number]> = []
      let now = 0
      let slow = false
      for (const [gap, fsyncMs] of steps) {
        now += gap
        seen.push([now, fsyncMs])
        const got = watch.observe(now, fsyncMs)
        const window = seen.filter(([at]) => at > now - DISK_WINDOW_MS).slice(-256).map(([, ms]) => ms).sort((a, b) => a - b)
        let expected: boolean | null = null
        if (window.length >= DISK_MIN_SAMPLES) {
          const median = window[Math.floor(window.length / 2)]
          if (!slow && median >= threshold) expected = true
          else if (slow && median < threshold / 2) expected = false
        }
        if (expected !== null) slow = expected
        if (got !== expected) return false
        if (window.length > 0 && watch.medianMs !== window[Math.floor(window.length / 2)]) return false
      }
      return true
    }
  ), { numRuns: 300 })
})

test.run()
