// The load sampler's smoothing: a step shows within seconds, jitter does not.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeededRandom } from '../../agent/core/random.ts'
import { loadScore, smoothLoad } from '../../agent/runtime/load.ts'
import { quantiseLoad } from '../../agent/membership/self.ts'

const THRESHOLD = 0.1 // the lan and wan profiles' loadChangeThreshold

function run (smooth: (previous: number, sample: number) => number, samples: number[], start = 0): number[] {
  const out: number[] = []
  let m = start
  for (const x of samples) out.push(m = smooth(m, x))
  return out
}

test('a step shows half within 7 one-second samples and ~90% within 22, up and down', () => {
  const up = run(smoothLoad, Array(22).fill(0.8))
  assert.ok(up[6] >= 0.4, `after 7 samples at 0.8 the average is ${up[6]}`)
  assert.ok(up[21] >= 0.72, `after 22, ${up[21]}`)
  const down = run(smoothLoad, Array(22).fill(0), 0.8)
  assert.ok(down[6] <= 0.4 && down[21] <= 0.08, `a box gone idle reads ${down[6]} after 7 s, ${down[21]} after 22 s`)
  // Bounded: never overshoots a sample.
  for (const v of run(smoothLoad, [0.2, 0.9, 0.9, 0.1, 0.5, 1, 0])) assert.ok(v >= 0 && v <= 1)
})

test('a load that only jitters crosses the change threshold far less often than with a weight of 0.3', () => {
  const seed = Number(process.env.SEED ?? 20261122)
  const random = new SeededRandom(seed)
  const gauss = (): number => { let u = 0; for (let i = 0; i < 12; i++) u += random.nextFloat(); return u - 6 }
  // An hour of one-second samples around 0.4 with σ 0.1: a shared, busy box.
  const samples = Array.from({ length: 3600 }, () => Math.min(1, Math.max(0, 0.4 + 0.1 * gauss())))
  // Counts the records a sampler would publish: a change once the advertised
  // value is THRESHOLD away (what SelfRecord.patch decides), after a warm-up.
  const changes = (smoothed: number[]): number => {
    let advertised = smoothed[119]
    let n = 0
    for (const v of smoothed.slice(120)) {
      const a = quantiseLoad({ score: v, sessions: 0, elu: v, cpu: v }).score
      if (Math.abs(a - advertised) >= THRESHOLD) { advertised = a; n++ }
    }
    return n
  }
  const fast = changes(run((p, x) => p + 0.3 * (x - p), samples))
  const smoothed = changes(run(smoothLoad, samples))
  assert.ok(fast > 50, `seed ${seed}: weight 0.3 changed ${fast} times (the jitter is real)`)
  assert.ok(smoothed * 10 <= fast, `seed ${seed}: ${smoothed} changes against ${fast} with weight 0.3`)
})

test('the score is the busiest resource, sessions as a share of capacity', () => {
  assert.is(loadScore(0.2, 0.1, 5, 10), 0.5)
  assert.is(loadScore(0.7, 0.1, 0, 0), 0.7)
  assert.is(loadScore(0.2, 0.1, 50, 10), 1)
})

test.run()
