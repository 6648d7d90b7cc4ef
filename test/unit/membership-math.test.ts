import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  clampHealth, expectedConfirmations, gossipScaleMs, remainingSuspicionMs, retransmitLimit,
  scaleByHealth, suspicionBoundsMs, suspicionTimeoutMs
} from '../../agent/membership/math.ts'
import { checkMembershipConfig, membershipProfile } from '../../agent/membership/config.ts'

test('suspicionBoundsMs() scales the minimum with log10(N), never below suspicionMinMs', () => {
  const cases: Array<[number, number, number, number, number]> = [
    // n, suspicionMinMs, maxMult, minMs, maxMs
    [1, 500, 3, 500, 1500],
    [5, 500, 3, 500, 1500],
    [10, 500, 3, 500, 1500],
    [20, 500, 3, 650, 1950],
    [100, 500, 3, 1000, 3000],
    [1000, 500, 3, 1500, 4500],
    [10, 6000, 3, 6000, 18000]
  ]
  for (const [n, minBase, maxMult, min, max] of cases) {
    assert.equal(suspicionBoundsMs(n, minBase, maxMult), { minMs: min, maxMs: max }, `n=${n}`)
  }
})

test('suspicionBoundsMs() does not depend on the probe interval: probing less often keeps verdicts as fast', () => {
  for (const profile of ['lan', 'wan', 'local'] as const) {
    const config = membershipProfile(profile)
    const bounds = suspicionBoundsMs(10, config.suspicionMinMs, config.suspicionMaxTimeoutMult)
    assert.is(bounds.minMs, config.suspicionMinMs, profile)
  }
})

test('expectedConfirmations() is suspicionConfirmations, or as many as the cluster can supply (n − 2)', () => {
  const cases: Array<[number, number, number]> = [[10, 2, 2], [4, 2, 2], [3, 2, 1], [2, 2, 0], [1, 2, 0], [100, 4, 4], [100, 0, 0]]
  for (const [n, wanted, k] of cases) assert.is(expectedConfirmations(n, wanted), k, `n=${n} wanted=${wanted}`)
})

test('suspicionTimeoutMs() starts at the maximum and reaches the minimum after k confirmations', () => {
  assert.is(suspicionTimeoutMs(0, 2, 800, 1600), 1600)
  assert.is(suspicionTimeoutMs(2, 2, 800, 1600), 800)
  assert.is(suspicionTimeoutMs(5, 2, 800, 1600), 800)
  const one = suspicionTimeoutMs(1, 2, 800, 1600)
  assert.ok(one > 800 && one < 1600, `one confirmation lands between: ${one}`)
  // log(2)/log(3) of the way down
  assert.is(one, Math.floor(1600 - (Math.log(2) / Math.log(3)) * 800))
  // In a cluster of 3, the one confirmation possible takes it to the minimum.
  assert.is(suspicionTimeoutMs(1, 1, 800, 1600), 800)
})

test('suspicionTimeoutMs() keeps the maximum when no confirmation is possible', () => {
  assert.is(suspicionTimeoutMs(0, 0, 800, 1600), 1600)
  assert.is(suspicionTimeoutMs(3, 0, 800, 1600), 1600)
})

test('remainingSuspicionMs() subtracts the time already elapsed', () => {
  assert.is(remainingSuspicionMs(0, 2, 600, 800, 1600), 1000)
  assert.is(remainingSuspicionMs(2, 2, 900, 800, 1600), -100)
})

test('retransmitLimit() grows with log10(N + 1)', () => {
  assert.is(retransmitLimit(4, 1), 4)
  assert.is(retransmitLimit(4, 9), 4)
  assert.is(retransmitLimit(4, 10), 8)
  assert.is(retransmitLimit(4, 99), 8)
  assert.is(retransmitLimit(4, 1000), 16)
})

test('gossipScaleMs() is flat up to 32 members, then grows in proportion to N', () => {
  assert.is(gossipScaleMs(10_000, 10), 10_000)
  assert.is(gossipScaleMs(10_000, 32), 10_000)
  assert.is(gossipScaleMs(10_000, 64), 20_000)
  assert.is(gossipScaleMs(10_000, 1000), 312_500)
})

test('scaleByHealth() and clampHealth() implement the local health multiplier', () => {
  assert.is(scaleByHealth(100, 0), 100)
  assert.is(scaleByHealth(100, 3), 400)
  assert.is(clampHealth(-1, 8), 0)
  assert.is(clampHealth(5, 8), 5)
  assert.is(clampHealth(12, 8), 7)
})

test('every profile passes its own validation', () => {
  for (const name of ['lan', 'wan', 'local'] as const) assert.equal(checkMembershipConfig(membershipProfile(name)), [], name)
})

test('checkMembershipConfig() refuses a probe timeout not below the interval, in a sentence', () => {
  const config = { ...membershipProfile('lan'), probeTimeoutMs: 500, probeIntervalMs: 200 }
  assert.equal(checkMembershipConfig(config), ["'probeTimeoutMs' must be less than 'probeIntervalMs' (got 500 >= 200)"])
})

test('checkMembershipConfig() names fields that are not numbers, fractional or out of range', () => {
  const config = { ...membershipProfile('lan'), indirectChecks: 2.5, suspicionMinMs: Number.NaN, leaveFanout: -1 }
  const problems = checkMembershipConfig(config)
  assert.ok(problems.some((p) => p.startsWith("'indirectChecks' must be a whole number")), problems.join('; '))
  assert.ok(problems.some((p) => p.startsWith("'suspicionMinMs' must be a number")), problems.join('; '))
  assert.ok(problems.some((p) => p.startsWith("'leaveFanout' must be between 0 and")), problems.join('; '))
})

test.run()
