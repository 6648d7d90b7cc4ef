// Deployed service code in a worker (service-runner.ts) and the per-session
// version roll-forward (deployed-service.ts).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SERVICE_BOOT_GIVE_UP_MS, SERVICE_CALL_TIMEOUT_MS, ServiceRunner } from '../../agent/runtime/service-runner.ts'

// These tests call a runner right after creating it: the call waits for the
// worker to load, where the agent's own calls wait only SERVICE_BOOT_TIMEOUT_MS
// (50 ms) and fail as unavailable until it has.
const PATIENT = { waitMs: 10_000, giveUpMs: SERVICE_BOOT_GIVE_UP_MS }
import { DeployedService, stampOp, unwrapState } from '../../agent/runtime/deployed-service.ts'
import { ServiceUnavailable } from '../../agent/sessions/services.ts'
import type { JsonValue } from '../../protocol/messages.ts'

const dir = mkdtempSync(join(tmpdir(), 'runner-'))
writeFileSync(join(dir, 'package.json'), '{"type":"module"}')

function module (name: string, source: string): string {
  const path = join(dir, name)
  writeFileSync(path, source)
  return path
}

const FAULTY = module('faulty.js', `
export function initial () { return 0 }
export function apply (state, op) {
  if (op === 'throw') throw new TypeError('bad op')
  if (op === 'loop') for (;;) {}
  if (op === 'oom') { const a = []; for (;;) a.push(new Array(1e5).fill(a.length)) }
  return state + op
}
`)

test('a throw fails the call with its message; a loop times out and the worker is replaced', () => {
  const runner = new ServiceRunner('faulty@1', FAULTY, 1_000, PATIENT)
  assert.equal(runner.call('apply', [1, 2]), { ok: true, value: 3, missing: false })
  const thrown = runner.call('apply', [1, 'throw'])
  assert.equal(thrown, { ok: false, error: 'faulty@1: apply failed: TypeError: bad op' })
  const looped = runner.call('apply', [1, 'loop'])
  assert.not.ok(looped.ok)
  if (!looped.ok) assert.match(looped.error, /did not answer within 1000 ms/)
  assert.is(runner.restarts, 1)
  // The next call runs on a fresh worker.
  assert.equal(runner.call('apply', [40, 2]), { ok: true, value: 42, missing: false })
  assert.equal(runner.call('validate', ['x']), { ok: true, value: null, missing: true })
  runner.stop()
})

test('running out of memory kills only the worker', () => {
  const runner = new ServiceRunner('faulty@1', FAULTY, 3_000, PATIENT)
  const oom = runner.call('apply', [0, 'oom'])
  assert.not.ok(oom.ok)
  assert.equal(runner.call('apply', [1, 1]), { ok: true, value: 2, missing: false })
  runner.stop()
})

test('a module that fails to load fails every call with the load error', () => {
  const runner = new ServiceRunner('broken@1', module('broken.js', 'export function apply ( {'), 100, PATIENT)
  const result = runner.call('apply', [0, 1])
  assert.not.ok(result.ok)
  if (!result.ok) assert.match(result.error, /broken@1: the package's entry module failed to load: SyntaxError/)
  runner.stop()
})

async function until<T> (probe: () => T | null, limitMs: number): Promise<T> {
  const deadline = performance.now() + limitMs
  for (;;) {
    const seen = probe()
    if (seen !== null) return seen
    if (performance.now() > deadline) throw new Error(`nothing within ${limitMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

// A module that loads slowly (a busy box, a big import): the first call waits
// for it up to the boot limit and fails as unavailable; later calls do not wait,
// and go through once it has loaded. Before, the first timed-out boot failed
// every later call until the agent restarted.
test('a slow boot fails calls as unavailable until the module has loaded, then they go through', async () => {
  const slow = module('slow.js', 'const t0 = Date.now(); while (Date.now() - t0 < 400) {}\nexport const apply = (s, op) => s + op\n')
  const runner = new ServiceRunner('slow@1', slow, 1_000, { waitMs: 50, giveUpMs: 10_000 })
  const first = runner.call('apply', [1, 2])
  assert.equal(first.ok ? null : [first.unavailable, /still loading/.test(first.error)], [true, true])
  const ok = await until(() => { const r = runner.call('apply', [1, 2]); return r.ok ? r : null }, 10_000)
  assert.equal(ok, { ok: true, value: 3, missing: false })
  assert.is(runner.restarts, 0)
  runner.stop()
})

// The agent's thread blocks while a call waits: a membership probe unanswered
// for 100 ms is a miss, and a 5 s wait (the limit before) made peers suspect
// the agent. A call now waits SERVICE_BOOT_TIMEOUT_MS (50 ms) at most; an op
// answered 503 is retried by the terminal, and a member's apply waits at the
// op (agent/sessions/apply.ts).
test('by default a call does not wait for a module that takes 400 ms to load: unavailable at once', async () => {
  const slow = module('slow-default.js', 'const t0 = Date.now(); while (Date.now() - t0 < 400) {}\nexport const apply = (s, op) => s + op\n')
  const runner = new ServiceRunner('slow@2', slow)
  const first = runner.call('apply', [1, 2])
  assert.equal(first.ok ? null : [first.unavailable, /still loading/.test(first.error)], [true, true])
  const ok = await until(() => { const r = runner.call('apply', [1, 2]); return r.ok ? r : null }, 10_000)
  assert.equal(ok, { ok: true, value: 3, missing: false })
  runner.stop()
})

// A request by URL can wait for the load without blocking the agent.
test('whenLoaded() waits for the load off the thread; the call after it goes through with the default limits', async () => {
  const slow = module('slow-async.js', 'const t0 = Date.now(); while (Date.now() - t0 < 400) {}\nexport const apply = (s, op) => s + op\n')
  const runner = new ServiceRunner('slow@3', slow)
  runner.start()
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 10)
  await runner.whenLoaded(10_000)
  clearInterval(timer)
  assert.ok(ticks > 0, 'the event loop ran while the worker loaded')
  assert.equal(runner.call('apply', [1, 2]), { ok: true, value: 3, missing: false })
  runner.stop()
})

test('a module that never loads (a loop at import) is stopped after the give-up time and retried after a backoff', async () => {
  const looping = module('looping.js', 'for (;;) {}\nexport const apply = () => 0\n')
  const runner = new ServiceRunner('looping@1', looping, 1_000, { waitMs: 50, giveUpMs: 300 })
  const first = runner.call('apply', [0, 1])
  assert.ok(!first.ok && first.unavailable === true && /still loading/.test(first.error))
  const stopped = await until(() => { const r = runner.call('apply', [0, 1]); return !r.ok && /was stopped/.test(r.error) ? r : null }, 10_000)
  assert.is(stopped.ok, false)
  assert.is(runner.restarts, 1, 'the looping worker was terminated')
  const backingOff = runner.call('apply', [0, 1])
  assert.ok(!backingOff.ok && backingOff.unavailable === true && /another starts in/.test(backingOff.error), JSON.stringify(backingOff))
  assert.is(runner.restarts, 1, 'no new worker during the backoff')
  runner.stop()
})

// A cart-like service: v1 keeps a list, v2 a map; a session moves at an empty cart.
const V1 = module('v1.js', `
export const initial = () => ({ items: [] })
export const validate = (op) => typeof op === 'string' || op === null ? true : 'an item name, or null to clear'
export const apply = (s, op) => { if (op === null) s.items = []; else s.items.push(op); return s }
export const isClean = (s) => s.items.length === 0
`)
const V2 = module('v2.js', `
export const initial = () => ({ counts: {} })
export const migrate = (s, from) => ({ counts: {}, from })
export const apply = (s, op) => { if (op === null) s.counts = {}; else s.counts[op] = (s.counts[op] ?? 0) + 1; return s }
`)

function version (v: string, path: string, issuedAtMs: number) {
  return { ref: { name: 'cart', version: v, hash: v.repeat(64).slice(0, 64), policy: 'all', issuedAtMs }, runner: new ServiceRunner(`cart@${v}`, path, SERVICE_CALL_TIMEOUT_MS, PATIENT) }
}

test('a session rolls forward to a newer version only at a clean point; the old version serves it until then', () => {
  const service = new DeployedService('cart')
  service.add(version('1', V1, 1))
  let state: JsonValue = service.initial()
  const step = (v: string, op: JsonValue): void => {
    const stamped = stampOp(v, op)
    assert.ok(service.validate(stamped, state).ok)
    state = service.apply(state, stamped)
  }
  step('1', 'apple')
  assert.equal(unwrapState(state), { version: '1', state: { items: ['apple'] } })
  service.add(version('2', V2, 2))
  assert.is(service.newest()?.ref.version, '2')
  // Not clean (one item): stays on 1 although the op was stamped with 2.
  step('2', 'pear')
  assert.equal(unwrapState(state), { version: '1', state: { items: ['apple', 'pear'] } })
  step('2', null)
  assert.equal(unwrapState(state), { version: '1', state: { items: [] } })
  // Clean now: this op moves the session, through v2's migrate.
  step('2', 'fig')
  assert.equal(unwrapState(state), { version: '2', state: { counts: { fig: 1 }, from: '1' } })
  // A stale stamp (an owner that still only knew 1) never moves a session back.
  step('1', 'fig')
  assert.equal(unwrapState(state), { version: '2', state: { counts: { fig: 2 }, from: '1' } })
  service.stop()
})

test('stampFor(): the oldest version the group advertises that is held here, else the newest', () => {
  const service = new DeployedService('cart')
  service.add(version('1', V1, 1))
  service.add(version('2', V2, 2))
  assert.is(service.stampFor([])?.ref.version, '2')
  assert.is(service.stampFor(['2', '2'])?.ref.version, '2')
  // One member still only runs 1: the session must not move yet.
  assert.is(service.stampFor(['2', '1'])?.ref.version, '1')
  // A version not held here says nothing.
  assert.is(service.stampFor(['9', '2'])?.ref.version, '2')
  service.stop()
})

test('validate refuses unstamped ops, unknown versions, refused ops and ops whose dry run throws', () => {
  const service = new DeployedService('cart')
  service.add(version('1', V1, 1))
  assert.match(String((service.validate('apple', null) as { reason: string }).reason), /must be stamped/)
  assert.match(String((service.validate(stampOp('9', 'x'), null) as { reason: string }).reason), /cart@9 is not installed/)
  assert.equal(service.validate(stampOp('1', 42), service.initial()), { ok: false, reason: 'an item name, or null to clear' })
  const faulty = new DeployedService('f')
  faulty.add({ ref: { name: 'f', version: '1', hash: 'f'.repeat(64), policy: 'all', issuedAtMs: 1 }, runner: new ServiceRunner('f@1', FAULTY, 1_000, PATIENT) })
  const check = faulty.validate(stampOp('1', 'throw'), faulty.initial())
  assert.equal(check, { ok: false, reason: 'f@1: apply failed: TypeError: bad op' })
  // apply on a member where it still fails keeps the state and records why.
  const after = faulty.apply({ version: '1', state: 5 }, stampOp('1', 'throw'))
  assert.equal(after, { version: '1', state: 5, error: 'f@1: apply failed: TypeError: bad op' })
  service.stop()
  faulty.stop()
})

// An apply that cannot run on this member now is not a verdict on the op: it
// must not be recorded in the state, or this member's state would lack an op
// every other member applied (agent/sessions/apply.ts retries it).
test('apply throws ServiceUnavailable, state untouched, when the worker times out or the version is not installed here', () => {
  const faulty = new DeployedService('f')
  faulty.add({ ref: { name: 'f', version: '1', hash: 'f'.repeat(64), policy: 'all', issuedAtMs: 1 }, runner: new ServiceRunner('f@1', FAULTY, 300, PATIENT) })
  const state: JsonValue = { version: '1', state: 5 }
  const before = JSON.stringify(state)
  assert.throws(() => faulty.apply(state, stampOp('1', 'loop')), (error: unknown) => error instanceof ServiceUnavailable && /did not answer within 300 ms/.test((error as Error).message))
  assert.throws(() => faulty.apply(faulty.initial(), stampOp('2', 1)), (error: unknown) => error instanceof ServiceUnavailable && /f@2 is not installed/.test((error as Error).message))
  assert.throws(() => faulty.apply({ version: '7', state: 5 }, stampOp('1', 1)), (error: unknown) => error instanceof ServiceUnavailable && /f@7, which this session runs, is not installed/.test((error as Error).message))
  assert.is(JSON.stringify(state), before)
  // Once the worker answers again, the same op applies.
  assert.equal(faulty.apply(state, stampOp('1', 2)), { version: '1', state: 7 })
  faulty.stop()
})

test.run()
