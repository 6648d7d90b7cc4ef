// When an agent cuts a peer off (agent/runtime/peer-strikes.ts), how long the
// blocklist holds it (agent/core/blocklist.ts), and the two settings
// (limits.peerMalformedFramesPerS, limits.peerBlockMs). The real-network side is
// test/net/hostile.test.ts.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { PeerStrikes, STRIKE_TRACKED_PEERS } from '../../agent/runtime/peer-strikes.ts'
import { Blocklist } from '../../agent/core/blocklist.ts'
import { buildConfig, ConfigError, PEER_LIMITS_DEFAULT } from '../../agent/config.ts'

test('a peer past its burst of malformed frames is blocked once, for peerBlockMs, and again only after the block ends', () => {
  const strikes = new PeerStrikes({ peerMalformedFramesPerS: 100, peerBlockMs: 60_000 })
  // The burst is twice the rate: 200 frames at once pass.
  for (let i = 0; i < 200; i++) assert.is(strikes.strike('p', 0), null, `frame ${i} within the burst`)
  assert.equal(strikes.strike('p', 0), { peer: 'p', forMs: 60_000, untilMs: 60_000 })
  assert.ok(strikes.blocked('p', 0))
  assert.is(strikes.count(0), 1)
  // Frames still in flight after the hang-up block nothing more.
  for (let i = 0; i < 1_000; i++) assert.is(strikes.strike('p', 10), null)
  assert.ok(strikes.blocked('p', 59_999))
  assert.not.ok(strikes.blocked('p', 60_000), 'the block ends')
  assert.is(strikes.count(60_000), 0)
  // Back after the block, with a bucket refilled over the minute: another burst.
  for (let i = 0; i < 200; i++) assert.is(strikes.strike('p', 60_000), null)
  assert.equal(strikes.strike('p', 60_000), { peer: 'p', forMs: 60_000, untilMs: 120_000 })
  // Other peers have buckets of their own.
  assert.not.ok(strikes.blocked('q', 60_000))
  assert.is(strikes.strike('q', 60_000), null)
})

test('malformed frames at the sustained rate never block; one more per second does, in time', () => {
  const strikes = new PeerStrikes({ peerMalformedFramesPerS: 10, peerBlockMs: 1_000 })
  // An agent of another version sending 10 frames this one cannot read every second, for an hour.
  for (let ms = 0; ms < 3_600_000; ms += 100) assert.is(strikes.strike('old', ms), null, `at ${ms} ms`)
  // 11 a second: the burst of 20 drains by one a second, so it is cut off within ~21 s.
  let blockedAt = -1
  for (let ms = 0; ms < 60_000 && blockedAt < 0; ms += 1_000 / 11) {
    if (strikes.strike('fast', ms) !== null) blockedAt = ms
  }
  assert.ok(blockedAt > 15_000 && blockedAt < 25_000, `blocked at ${blockedAt} ms`)
})

test('peerBlockMs 0 blocks nobody', () => {
  const strikes = new PeerStrikes({ peerMalformedFramesPerS: 1, peerBlockMs: 0 })
  for (let i = 0; i < 10_000; i++) assert.is(strikes.strike('p', 0), null)
  assert.not.ok(strikes.blocked('p', 0))
})

test('the blocks held stay bounded under a flood of fresh peer ids', () => {
  const strikes = new PeerStrikes({ peerMalformedFramesPerS: 1, peerBlockMs: 60_000 })
  let blocks = 0
  for (let i = 0; i < STRIKE_TRACKED_PEERS * 3; i++) {
    for (let j = 0; j < 3; j++) if (strikes.strike(`p${i}`, 0) !== null) blocks++
  }
  assert.is(blocks, STRIKE_TRACKED_PEERS * 3, 'each fresh peer blocked once')
  assert.ok(strikes.count(0) <= STRIKE_TRACKED_PEERS, `at most ${STRIKE_TRACKED_PEERS} held: ${strikes.count(0)}`)
  assert.ok(strikes.blocked(`p${STRIKE_TRACKED_PEERS * 3 - 1}`, 0), 'the latest block is held')
})

test('Blocklist: a peer is refused until its block ends; a new block replaces the old one', () => {
  const list = new Blocklist(10_000)
  assert.not.ok(list.has('p', 1_000))
  list.add('p', 1_500, 1_000)
  assert.ok(list.has('p', 1_000))
  assert.ok(list.has('p', 1_499))
  assert.not.ok(list.has('p', 1_500), 'expired')
  list.add('p', 1_600, 1_500)
  list.add('p', 2_500, 1_500)
  assert.ok(list.has('p', 2_000), 'the later block holds')
  assert.not.ok(list.has('p', 2_500))
  // Bounded: the oldest go first.
  for (let i = 0; i < 10_001; i++) list.add(`q${i}`, 62_500, 2_500)
  assert.not.ok(list.has('q0', 2_500), 'the oldest dropped past 10,000')
  assert.ok(list.has('q10000', 2_500))
})

test('limits.peerMalformedFramesPerS and limits.peerBlockMs: defaults, 0 to never block, and clear errors', () => {
  assert.equal(PEER_LIMITS_DEFAULT, { peerMalformedFramesPerS: 100, peerBlockMs: 60_000 })
  const defaults = buildConfig({}, {}).limits
  assert.is(defaults.peerMalformedFramesPerS, 100)
  assert.is(defaults.peerBlockMs, 60_000)
  const off = buildConfig({ limits: { peerBlockMs: 0, peerMalformedFramesPerS: 5 } }, {}).limits
  assert.is(off.peerBlockMs, 0)
  assert.is(off.peerMalformedFramesPerS, 5)
  assert.is(off.sessionRequestsPerS, 200, 'the other limits keep their defaults')
  assert.throws(() => buildConfig({ limits: { peerBlockMs: -1 } }, {}), (e: Error) => e instanceof ConfigError && /'limits.peerBlockMs' must be a whole number of ms, 0-86400000 \(got -1\)/.test(e.message))
  assert.throws(() => buildConfig({ limits: { peerMalformedFramesPerS: 0 } }, {}), (e: Error) => e instanceof ConfigError && /'limits.peerMalformedFramesPerS' must be a whole number of frames\/s, 1-/.test(e.message))
  assert.throws(() => buildConfig({ limits: { peerBlock: 5 } }, {}), (e: Error) => /unknown limits setting 'peerBlock' \(known: .*peerMalformedFramesPerS, peerBlockMs\)/.test(e.message))
})

test.run()
