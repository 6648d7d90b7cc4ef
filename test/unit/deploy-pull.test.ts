// The package-index pull (M3.5) backs off while nothing is new, and comes back
// to its base pace as soon as something is.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeededRandom } from '../../agent/core/random.ts'
import { Distribution, PULL_BACKOFF_FACTOR, PULL_BACKOFF_MAX } from '../../agent/deploy/distribution.ts'
import { FakeDirectory } from './session-fixtures.ts'
import { OncePerAnnouncement } from '../../agent/runtime/deploy-host.ts'

const SEED = 5
const BASE_MS = 2_000

// Ticks every 100 ms from `fromMs` to `toMs`; the times at which it pulled.
function pullsBetween (core: Distribution, fromMs: number, toMs: number): number[] {
  const at: number[] = []
  for (let now = fromMs; now <= toMs; now += 100) {
    if (core.step({ kind: 'tick', nowMs: now }).some((e) => e.kind === 'pull')) at.push(now)
  }
  return at
}

test(`a quiet agent's pulls back off to ${PULL_BACKOFF_MAX} × the interval; a newer announcement brings the pace back (seed ${SEED})`, () => {
  const core = new Distribution({
    directory: new FakeDirectory('A', ['A', 'B', 'C']),
    config: { pullIntervalMs: BASE_MS, fetchTimeoutMs: 5_000, loadThreshold: 0.9, retireAfterMs: 300_000 },
    random: new SeededRandom(SEED),
    nowMs: 0
  })
  const horizonMs = 4 * PULL_BACKOFF_MAX * BASE_MS
  const quiet = pullsBetween(core, 0, horizonMs)
  const gaps = quiet.slice(1).map((t, i) => t - quiet[i])
  const expected = gaps.map((_, i) => Math.min(PULL_BACKOFF_FACTOR ** i, PULL_BACKOFF_MAX) * BASE_MS)
  assert.equal(gaps, expected, `× ${PULL_BACKOFF_FACTOR} while nothing is new, then capped`)
  assert.ok(gaps.at(-1) === PULL_BACKOFF_MAX * BASE_MS, `reached the cap: ${gaps.join(', ')}`)

  const now = horizonMs + 100
  const ref = { name: 'cart', version: '2.0.0', hash: 'ab'.repeat(32), policy: 'nodes:B', issuedAtMs: 1 }
  core.step({ kind: 'index', nowMs: now, from: 'B', entries: [{ ref, held: true }] })
  const after = pullsBetween(core, now, now + 2 * BASE_MS)
  assert.ok(after.length > 0 && after[0] - now <= BASE_MS, `pulled again ${after[0] - now} ms after learning something new`)
})

// A refused announcement comes back with every pulled index: counted once per
// announcement and reason, not once per pull.
test('an announcement refused again at each pull is counted once; another one, or another reason, counts', () => {
  const once = new OncePerAnnouncement(3)
  const a = new TextEncoder().encode('announcement a')
  const b = new TextEncoder().encode('announcement b')
  const pulls = [1, 2, 3, 4, 5].map(() => once.first(a, 'untrusted'))
  assert.equal(pulls, [true, false, false, false, false])
  assert.ok(once.first(b, 'untrusted'))
  assert.ok(once.first(a, 'cluster-key'))
  assert.ok(once.first(new TextEncoder().encode('c'), 'untrusted'), 'past the limit the memory starts afresh')
  assert.ok(once.first(a, 'untrusted'))
})

// The same files deployed again under another policy: a later announcement of
// the same hash. It was ignored ("already known"), so an agent that learnt the
// package by pull kept the first policy and never ran it.
test('a later announcement of the same package under another policy replaces the first: the index shows it, and a new target fetches', () => {
  const core = new Distribution({
    directory: new FakeDirectory('A', ['A', 'B', 'C']),
    config: { pullIntervalMs: BASE_MS, fetchTimeoutMs: 5_000, loadThreshold: 0.9, retireAfterMs: 300_000 },
    random: new SeededRandom(SEED),
    nowMs: 0
  })
  const first = { name: 'pol', version: '1.0.0', hash: 'cd'.repeat(32), policy: 'nodes:C', issuedAtMs: 1_000 }
  const fetchesAfter = (ref: typeof first, nowMs: number): number =>
    core.step({ kind: 'index', nowMs, from: 'B', entries: [{ ref, held: true }] }).filter((e) => e.kind === 'fetch').length
  assert.is(fetchesAfter(first, 100), 0, 'A is no target of nodes:C')
  const again = { ...first, policy: 'all', issuedAtMs: 2_000 }
  assert.is(fetchesAfter(again, 200), 1, 'A is a target of all: it fetches')
  assert.equal(core.latest('pol'), again)
  assert.equal(core.index().map((e) => e.ref.policy), ['all'])
  assert.is(fetchesAfter(first, 300), 0, 'the earlier announcement, seen again, changes nothing')
  assert.equal(core.latest('pol'), again)
})

test.run()
