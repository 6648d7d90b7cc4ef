// The sessions core's limits: a delta over MAX_OP_BYTES and a state that would
// pass MAX_STATE_BYTES are answered 413, nothing is logged, and a 'limit' event
// lets the host count them.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { clientAppend } from '../../agent/sessions/owner.ts'
import { MAX_OP_BYTES, MAX_STATE_BYTES } from '../../protocol/limits.ts'
import { ownerGroup, terminal } from './session-fixtures.ts'

test('a delta over MAX_OP_BYTES is 413, not logged, and reported as a delta-size limit', () => {
  const { ctx, r } = ownerGroup()
  const before = r.log.lastIndex
  clientAppend(ctx, r, terminal('t1'), 1, { append: 'x'.repeat(MAX_OP_BYTES) })
  assert.equal(ctx.replies().map((reply) => reply.status), [413])
  assert.match(String(ctx.replies()[0].body.error), `exceeds ${MAX_OP_BYTES}`)
  assert.equal(ctx.events('limit'), [{ type: 'limit', limit: 'delta-size', sessionId: r.id }])
  assert.is(r.log.lastIndex, before)
})

test('a delta that would take the state past MAX_STATE_BYTES is 413 and reported as state-size', () => {
  const { ctx, r } = ownerGroup()
  r.stateBytes = MAX_STATE_BYTES - 10
  clientAppend(ctx, r, terminal('t2'), 1, { append: 'this is more than ten bytes' })
  assert.equal(ctx.replies().map((reply) => reply.status), [413])
  assert.equal(ctx.events('limit'), [{ type: 'limit', limit: 'state-size', sessionId: r.id }])
})

test.run()
