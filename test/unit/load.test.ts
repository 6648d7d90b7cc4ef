// The load sampler's smoothing: fast up, slow down, and quiet under jitter.

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

test('a rise shows within seconds, a fall over tens of seconds', () => {
  const up = run(smoothLoad, Array(6).fill(0.8))
  assert.ok(up[5] >= 0.7, `after 6 one-second samples at 0.8 the average is ${up[5]}`)
  const down = run(smoothLoad, Array(45).fill(0), 0.8)
  assert.ok(down[9] > 0.45, `10 s after the box went idle it still reads ${down[9]}`)
  assert.ok(down[44] < 0.1, `45 s after, ${down[44]}`)
  // Monotone and bounded: never overshoots a sample.
  const steps = run(smoothLoad, [0.2, 0.9, 0.9, 0.1, 0.5, 1, 0])
  for (const v of steps) assert.ok(v >= 0 && v <= 1)
})

test('a load that only jitters crosses the change threshold far less often than one symmetric weight', () => {
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
  const symmetric = changes(run((p, x) => p + 0.3 * (x - p), samples))
  const asymmetric = changes(run(smoothLoad, samples))
  assert.ok(symmetric > 50, `seed ${seed}: the symmetric average changed ${symmetric} times (the jitter is real)`)
  assert.ok(asymmetric * 5 <= symmetric, `seed ${seed}: ${asymmetric} changes against ${symmetric} with one weight`)
})

test('the score is the busiest resource, sessions as a share of capacity', () => {
  assert.is(loadScore(0.2, 0.1, 5, 10), 0.5)
  assert.is(loadScore(0.7, 0.1, 0, 0), 0.7)
  assert.is(loadScore(0.2, 0.1, 50, 10), 1)
})

test.run()
