// The fault-injection gate (a test facility): its request bodies are validated
// field by field, its rules decide per message from a seeded PRNG, and its
// timers deliver a delayed stream's messages in order. A fake clock; no sleeps.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { FaultDecider, NO_FAULTS, isInert, parseFaultRules } from '../../agent/net/fault-rules.ts'
import type { FaultRules } from '../../agent/net/fault-rules.ts'
import { FaultGate } from '../../agent/net/fault-gate.ts'
import type { GateClock } from '../../agent/net/fault-gate.ts'

const A = '12D3KooWKNfvZ1J2L2fVCCv4UWtXnLkBVqgdEmhoAEewK1W2uQCW'
const B = 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'

function rules (patch: Partial<FaultRules>): FaultRules {
  return { ...NO_FAULTS, ...patch }
}

// A clock the test moves by hand.
class FakeClock implements GateClock {
  now = 0
  timers: Array<{ at: number; run: () => void; id: number }> = []
  #next = 0
  nowMs = (): number => this.now
  after = (ms: number, run: () => void): unknown => {
    const id = this.#next++
    this.timers.push({ at: this.now + ms, run, id })
    return id
  }

  cancel = (timer: unknown): void => { this.timers = this.timers.filter((t) => t.id !== timer) }
  advance (ms: number): void {
    const end = this.now + ms
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0]
      if (due === undefined) break
      this.timers = this.timers.filter((t) => t !== due)
      this.now = due.at
      due.run()
    }
    this.now = end
  }
}

test('parseFaultRules: a full body is taken as given, an empty one is no fault', () => {
  const body = { seed: 7, blockedPeers: [A, B, A], lossRate: 0.25, delayMs: 20, jitterMs: 40, slowMs: 200, direction: 'both' }
  const parsed = parseFaultRules(body)
  assert.ok(parsed.ok)
  if (parsed.ok) assert.equal(parsed.rules, { ...body, blockedPeers: [A, B] })
  const empty = parseFaultRules({})
  assert.ok(empty.ok && isInert(empty.rules))
  if (empty.ok) assert.equal(empty.rules, NO_FAULTS)
})

test('parseFaultRules: every bad body is refused with the field it names', () => {
  const cases: Array<[unknown, RegExp]> = [
    [[], /the body must be a JSON object/],
    [null, /the body must be a JSON object/],
    [{ loss: 0.1 }, /unknown field 'loss'/],
    [{ seed: -1 }, /'seed' must be a whole number/],
    [{ seed: 1.5 }, /'seed' must be a whole number/],
    [{ seed: 2 ** 32 }, /'seed' must be a whole number/],
    [{ blockedPeers: A }, /'blockedPeers' must be a list/],
    [{ blockedPeers: [A, 'not-a-peer'] }, /'blockedPeers\[1\]' is not a peer id/],
    [{ blockedPeers: [42] }, /'blockedPeers\[0\]' is not a peer id/],
    [{ blockedPeers: new Array(4_097).fill(A) }, /'blockedPeers' has 4097 entries; at most 4096/],
    [{ lossRate: 1.5 }, /'lossRate' must be a number from 0 to 1 \(got 1.5\)/],
    [{ lossRate: '0.1' }, /'lossRate' must be a number/],
    [{ delayMs: -1 }, /'delayMs' must be a number of milliseconds from 0 to 60000/],
    [{ jitterMs: 60_001 }, /'jitterMs' must be/],
    [{ slowMs: null }, /'slowMs' must be/],
    [{ direction: 'sideways' }, /'direction' must be "in", "out" or "both"/]
  ]
  for (const [body, reason] of cases) {
    const parsed = parseFaultRules(body)
    assert.is(parsed.ok, false, JSON.stringify(body)?.slice(0, 60))
    if (!parsed.ok) assert.match(parsed.reason, reason)
  }
})

test('FaultDecider: a blocked peer loses every message both ways, others pass untouched', () => {
  const decider = new FaultDecider(rules({ blockedPeers: [A] }))
  for (const direction of ['in', 'out'] as const) {
    assert.equal(decider.decide(A, direction), { drop: 'partition' })
    assert.equal(decider.decide(B, direction), { drop: null, delayMs: 0 })
  }
  assert.equal(decider.decide(null, 'out'), { drop: null, delayMs: 0 })
})

test('FaultDecider: loss follows the rate and replays from the seed', () => {
  const draw = (seed: number): string => {
    const decider = new FaultDecider(rules({ seed, lossRate: 0.3 }))
    return Array.from({ length: 10_000 }, () => decider.decide(B, 'in').drop === 'loss' ? '1' : '0').join('')
  }
  const first = draw(11)
  const lost = [...first].filter((c) => c === '1').length
  assert.ok(lost > 2_800 && lost < 3_200, `${lost} of 10000 lost at 30%`)
  assert.is(draw(11), first)
  assert.is.not(draw(12), first)
})

test('FaultDecider: loss and delay apply where direction says; slowMs applies both ways', () => {
  const inbound = new FaultDecider(rules({ lossRate: 1, delayMs: 5 }))
  assert.equal(inbound.decide(B, 'in'), { drop: 'loss' })
  assert.equal(inbound.decide(B, 'out'), { drop: null, delayMs: 0 })
  const outbound = new FaultDecider(rules({ delayMs: 5, direction: 'out' }))
  assert.equal(outbound.decide(B, 'in'), { drop: null, delayMs: 0 })
  assert.equal(outbound.decide(B, 'out'), { drop: null, delayMs: 5 })
  const slow = new FaultDecider(rules({ slowMs: 200, delayMs: 10, direction: 'in' }))
  assert.equal(slow.decide(B, 'in'), { drop: null, delayMs: 210 })
  assert.equal(slow.decide(B, 'out'), { drop: null, delayMs: 200 })
  const jitter = new FaultDecider(rules({ delayMs: 20, jitterMs: 40, direction: 'both' }))
  const delays = Array.from({ length: 1_000 }, () => { const v = jitter.decide(B, 'out'); return v.drop === null ? v.delayMs : -1 })
  assert.ok(Math.min(...delays) >= 20 && Math.max(...delays) < 60, `${Math.min(...delays)}..${Math.max(...delays)}`)
  assert.ok(Math.max(...delays) - Math.min(...delays) > 30, 'the jitter spreads')
})

test('FaultGate: without rules a message is delivered at once, in the caller', () => {
  const gate = new FaultGate(new FakeClock())
  const seen: string[] = []
  gate.pass(B, 'out', 'direct', () => seen.push('m'))
  assert.equal(seen, ['m'])
  assert.is(gate.passGossip(B, A, () => 'accept', 'ignore'), 'accept')
  assert.equal(gate.counts(), { dropped: [], delayed: [] })
})

test('FaultGate: a delayed stream keeps its order through jitter, and counts', () => {
  const clock = new FakeClock()
  const gate = new FaultGate(clock)
  gate.set(rules({ seed: 3, delayMs: 10, jitterMs: 90 }))
  const seen: number[] = []
  for (let i = 0; i < 50; i++) gate.pass(B, 'in', 'sessions', () => seen.push(i))
  assert.equal(seen, [])
  clock.advance(100)
  assert.equal(seen, Array.from({ length: 50 }, (_, i) => i))
  // Rules cleared: a message behind still-delayed ones waits its turn.
  gate.pass(B, 'in', 'sessions', () => seen.push(100))
  gate.clear()
  gate.pass(B, 'in', 'sessions', () => seen.push(101))
  assert.is(seen.length, 50)
  clock.advance(100)
  assert.equal(seen.slice(50), [100, 101])
  gate.pass(B, 'in', 'sessions', () => seen.push(102))
  assert.is(seen[52], 102, 'delivered at once once nothing waits')
  assert.equal(gate.counts().delayed, [{ direction: 'in', channel: 'sessions', messages: 52 }])
})

test('FaultGate: a partition drops streams and gossip from or through the blocked peer; hints are gated', async () => {
  const clock = new FakeClock()
  const gate = new FaultGate(clock)
  gate.set(rules({ blockedPeers: [A] }))
  const seen: string[] = []
  gate.pass(A, 'out', 'direct', () => seen.push('to A'))
  gate.pass(A, 'in', 'sessions', () => seen.push('from A'))
  gate.pass(B, 'in', 'direct', () => seen.push('from B'))
  assert.is(gate.passGossip(B, A, () => 'accept', 'ignore'), 'ignore', 'published by A, forwarded by B')
  assert.is(gate.passGossip(A, B, () => 'accept', 'ignore'), 'ignore', 'forwarded by A')
  assert.is(gate.passGossip(B, B, () => 'accept', 'ignore'), 'accept')
  assert.equal(seen, ['from B'])
  assert.ok(gate.blocks(A) && !gate.blocks(B))
  const dropped = gate.counts().dropped.map((d) => `${d.direction} ${d.channel} ${d.reason} ${d.messages}`).sort()
  assert.equal(dropped, ['in gossip partition 2', 'in sessions partition 1', 'out direct partition 1'])
})

test('FaultGate: delayed gossip resolves later with the handler\'s verdict; stop cancels what waits', async () => {
  const clock = new FakeClock()
  const gate = new FaultGate(clock)
  gate.set(rules({ slowMs: 50 }))
  const verdict = gate.passGossip(B, B, () => 'accept', 'ignore')
  assert.instance(verdict, Promise)
  clock.advance(50)
  assert.is(await verdict, 'accept')
  const seen: string[] = []
  gate.pass(B, 'out', 'gossip', () => seen.push('late'))
  gate.stop()
  clock.advance(100)
  gate.pass(B, 'out', 'direct', () => seen.push('after stop'))
  assert.equal(seen, [])
  assert.is(clock.timers.length, 0)
})

test.run()
