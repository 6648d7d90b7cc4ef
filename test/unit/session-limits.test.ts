// The sessions core's limits: a delta over MAX_OP_BYTES and a state that would
// pass MAX_STATE_BYTES are answered 413 naming the limit, nothing is logged, and
// a 'limit' event lets the host count them. An op the replication codec could not
// carry (nested deeper than MAX_JSON_DEPTH) is 400 and never logged: logged, its
// frame failed to encode and the exception took the owner down, then the next
// owner the terminal's retry reached, then the restarted agent that re-sent it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { clientAppend } from '../../agent/sessions/owner.ts'
import { clientAppendBatch } from '../../agent/sessions/deltas.ts'
import { counterService, kvService } from '../../agent/sessions/services.ts'
import { encode } from '../../protocol/codec.ts'
import type { JsonValue } from '../../protocol/messages.ts'
import { MAX_JSON_DEPTH, MAX_OP_BYTES, MAX_STATE_BYTES } from '../../protocol/limits.ts'
import { ownerGroup, terminal } from './session-fixtures.ts'

// {"append": [[…[1]…]]}: the op is `depth` deep (the object counts one).
function nested (depth: number): JsonValue {
  let value: JsonValue = 1
  for (let i = 1; i < depth; i++) value = [value]
  return { append: value }
}

function sentFrames (ctx: ReturnType<typeof ownerGroup>['ctx']): Uint8Array[] {
  return ctx.effects.flatMap((e) => e.kind === 'send' ? [encode(e.message)] : [])
}

test('a delta over MAX_OP_BYTES is 413, not logged, and reported as a delta-size limit', () => {
  const { ctx, r } = ownerGroup()
  const before = r.log.lastIndex
  clientAppend(ctx, r, terminal('t1'), 1, { append: 'x'.repeat(MAX_OP_BYTES) })
  assert.equal(ctx.replies().map((reply) => reply.status), [413])
  assert.match(String(ctx.replies()[0].body.error), `exceeds ${MAX_OP_BYTES}`)
  assert.is(ctx.replies()[0].body.limit, 'delta-size')
  assert.equal(ctx.events('limit'), [{ type: 'limit', limit: 'delta-size', sessionId: r.id }])
  assert.is(r.log.lastIndex, before)
})

test('a delta that would take the state past MAX_STATE_BYTES is 413 and reported as state-size', () => {
  const { ctx, r } = ownerGroup()
  r.stateBytes = MAX_STATE_BYTES - 10
  clientAppend(ctx, r, terminal('t2'), 1, { append: 'this is more than ten bytes' })
  assert.equal(ctx.replies().map((reply) => reply.status), [413])
  assert.is(ctx.replies()[0].body.limit, 'state-size')
  assert.equal(ctx.events('limit'), [{ type: 'limit', limit: 'state-size', sessionId: r.id }])
})

test('an op nested deeper than MAX_JSON_DEPTH is 400 and not logged; one at the limit is logged and its frames encode', () => {
  const { ctx, r } = ownerGroup()
  const before = r.log.lastIndex
  clientAppend(ctx, r, terminal('deep'), 1, nested(MAX_JSON_DEPTH + 1))
  assert.equal(ctx.replies().map((reply) => reply.status), [400])
  assert.match(String(ctx.replies()[0].body.error), `op nests deeper than ${MAX_JSON_DEPTH} levels`)
  assert.is(r.log.lastIndex, before)
  // The same clientSeq with an op that fits: logged, sent, and every frame encodes.
  clientAppend(ctx, r, terminal('fits'), 1, nested(MAX_JSON_DEPTH))
  assert.is(r.log.lastIndex, before + 1)
  const frames = sentFrames(ctx)
  assert.ok(frames.length >= 2, `frames to both standbys: ${frames.length}`)
})

test('a nesting bomb (5,000 levels) is refused without overflowing the stack', () => {
  const { ctx, r } = ownerGroup()
  let bomb: JsonValue = 1
  for (let i = 0; i < 5_000; i++) bomb = [bomb]
  clientAppend(ctx, r, terminal('bomb'), 1, { append: bomb })
  assert.equal(ctx.replies().map((reply) => reply.status), [400])
  assert.is(r.log.lastIndex, 1)
})

test('a batch stops at its deep op: the ops before it are logged and answered, nothing after', () => {
  const { ctx, r } = ownerGroup()
  clientAppendBatch(ctx, r, terminal('batch'), 1, [{ append: 'a' }, nested(MAX_JSON_DEPTH + 1), { append: 'c' }])
  assert.is(r.log.lastIndex, 2)
  for (const frame of sentFrames(ctx)) assert.ok(frame.length > 0)
})

test('kv stores a key named __proto__ as a key, in place and through JSON', () => {
  const state = kvService.apply(kvService.initial(), JSON.parse('{"set":{"a":1,"__proto__":{"polluted":true},"constructor":5}}') as JsonValue)
  assert.equal(JSON.parse(JSON.stringify(state)), JSON.parse('{"a":1,"__proto__":{"polluted":true},"constructor":5}'))
  assert.is(Object.getPrototypeOf(state), Object.prototype)
  assert.is(({} as Record<string, unknown>).polluted, undefined)
  const deleted = kvService.apply(state, { delete: '__proto__' })
  assert.equal(Object.keys(deleted as object), ['a', 'constructor'])
})

test('counter: an add of magnitude beyond 2^53 − 1 is refused (400), so no acknowledged add is dropped by an overflow', () => {
  assert.ok(counterService.validate({ add: 1.5 }).ok)
  assert.ok(counterService.validate({ add: -Number.MAX_SAFE_INTEGER }).ok)
  assert.not.ok(counterService.validate({ add: 1e308 }).ok)
  assert.not.ok(counterService.validate({ add: Number.MAX_SAFE_INTEGER + 2 }).ok)
  const { ctx, r } = ownerGroup({ sessionId: 'counter:00000000000000aa' })
  r.info = { ...r.info, service: 'counter' }
  clientAppend(ctx, r, terminal('big'), 1, { add: 1e308 })
  assert.equal(ctx.replies().map((reply) => reply.status), [400])
  assert.match(String(ctx.replies()[0].body.error), 'magnitude at most')
  assert.is(r.log.lastIndex, 1)
})

test.run()
