// A batch of deltas at the owner (deltas.ts): consecutive clientSeqs logged in
// order, one append frame per member for all of them, one answer once the last
// commits; duplicates and copies in flight within a batch; a refusal part-way
// (the prefix is acknowledged, nothing after it is logged); refusals of the
// whole batch; and the store's merging of a batch's entry records.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { clientAppendBatch } from '../../agent/sessions/deltas.ts'
import { clientAppend, expireWaiters } from '../../agent/sessions/owner.ts'
import { coalesceEntries } from '../../agent/runtime/session-store.ts'
import type { JsonValue } from '../../protocol/messages.ts'
import { MAX_BATCH_OPS } from '../../protocol/limits.ts'
import { ackFrom, deltaEntry, ownerGroup, terminal } from './session-fixtures.ts'

const ops = (...values: string[]): JsonValue[] => values.map((v) => ({ append: v }))

test('a batch logs its deltas in clientSeq order, sends each member one frame, and is answered once when all commit', () => {
  const { ctx, r } = ownerGroup()
  clientAppendBatch(ctx, r, terminal('b1'), 1, ops('a', 'b', 'c'))
  assert.equal(ctx.persists('session-entries').flatMap((p) => p.kind === 'session-entries' ? p.entries.map((e) => e.index) : []), [2, 3, 4])
  const frames = ctx.sends('session-append')
  assert.equal(frames.map((s) => s.to), ['B', 'C'], 'one append frame per member')
  assert.equal(frames.map((s) => s.message.type === 'session-append' ? s.message.entries.length : 0), [3, 3])
  assert.equal(ctx.replies(), [])
  ackFrom(ctx, r, 'B')
  assert.equal(ctx.replies(), [], 'not before every live member holds them')
  ackFrom(ctx, r, 'C')
  assert.equal(ctx.replies(), [{ to: 'b1', status: 200, body: { epoch: 1, results: [{ clientSeq: 1, index: 2 }, { clientSeq: 2, index: 3 }, { clientSeq: 3, index: 4 }] } }])
  assert.equal(ctx.events('acknowledged').map((e) => e.type === 'acknowledged' ? e.clientSeq : 0), [1, 2, 3])
  assert.equal(r.state, ['a', 'b', 'c'])
})

test('a retried batch: applied deltas come back as duplicates, ones in flight are waited for, new ones are logged', () => {
  const { ctx, r } = ownerGroup()
  clientAppendBatch(ctx, r, terminal('first'), 1, ops('a', 'b'))
  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  clientAppend(ctx, r, terminal('single'), 3, { append: 'c' })
  ctx.take()
  // 1-2 applied, 3 in flight, 4 new: the retry carries its own (ignored) copies.
  clientAppendBatch(ctx, r, terminal('retry'), 1, ops('x', 'y', 'z', 'd'))
  assert.equal(ctx.persists('session-entries').flatMap((p) => p.kind === 'session-entries' ? p.entries.map((e) => e.index) : []), [5], 'only the new delta is logged')
  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  const retry = ctx.replies().find((x) => x.to === 'retry')
  assert.equal(retry, { to: 'retry', status: 200, body: { epoch: 1, results: [{ clientSeq: 1, index: 2, duplicate: true }, { clientSeq: 2, index: 3, duplicate: true }, { clientSeq: 3, index: 4 }, { clientSeq: 4, index: 5 }] } })
  assert.equal(r.state, ['a', 'b', 'c', 'd'], 'every delta once, in order')
})

test('a batch of duplicates only is answered at once, logging nothing', () => {
  const { ctx, r } = ownerGroup()
  clientAppendBatch(ctx, r, terminal('first'), 1, ops('a', 'b'))
  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  ctx.take()
  clientAppendBatch(ctx, r, terminal('again'), 1, ops('a', 'b'))
  assert.equal(ctx.persists(), [])
  assert.equal(ctx.sends(), [])
  assert.equal(ctx.replies(), [{ to: 'again', status: 200, body: { epoch: 1, results: [{ clientSeq: 1, index: 2, duplicate: true }, { clientSeq: 2, index: 3, duplicate: true }] } }])
})

test('an op refused part-way: the ops before it are acknowledged, it and the ones after it are not logged', () => {
  const { ctx, r } = ownerGroup()
  clientAppendBatch(ctx, r, terminal('b'), 1, [{ append: 'a' }, { append: 'b' }, { wrong: 'op' }, { append: 'd' }])
  assert.equal(ctx.persists('session-entries').length, 2, 'two deltas logged')
  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  const [reply] = ctx.replies()
  assert.is(reply.status, 200)
  assert.equal(reply.body.results, [{ clientSeq: 1, index: 2 }, { clientSeq: 2, index: 3 }])
  assert.equal(reply.body.refused, { clientSeq: 3, status: 400, error: 'a log op is {"append": value}' })
  // The refused clientSeq is free again.
  ctx.take()
  clientAppend(ctx, r, terminal('next'), 3, { append: 'c' })
  assert.equal(ctx.persists('session-entries').length, 1)
})

test('a batch whose first op is refused gets that refusal as its answer, with the clientSeq', () => {
  const { ctx, r } = ownerGroup()
  clientAppendBatch(ctx, r, terminal('gap'), 5, ops('e'))
  assert.equal(ctx.replies(), [{ to: 'gap', status: 409, body: { error: 'clientSeq must be 1 (got 5)', expectedSeq: 1, clientSeq: 5 } }])
  clientAppendBatch(ctx, r, terminal('bad'), 1, [{ nope: 1 }, { append: 'b' }])
  assert.equal(ctx.replies()[1], { to: 'bad', status: 400, body: { error: 'a log op is {"append": value}', clientSeq: 1 } })
  assert.equal(ctx.persists('session-entries'), [])
})

test('an empty batch and one over MAX_BATCH_OPS are refused with 400, logging nothing', () => {
  const { ctx, r } = ownerGroup()
  clientAppendBatch(ctx, r, terminal('empty'), 1, [])
  clientAppendBatch(ctx, r, terminal('huge'), 1, ops(...Array.from({ length: MAX_BATCH_OPS + 1 }, (_, i) => `v${i}`)))
  assert.equal(ctx.replies().map((x) => [x.to, x.status]), [['empty', 400], ['huge', 400]])
  assert.match(String(ctx.replies()[1].body.error), `1-${MAX_BATCH_OPS} ops`)
  assert.equal(ctx.persists(), [])
})

test('a batch not committed by its deadline is answered 503 as a whole; its retry gets the committed part as duplicates', () => {
  const { ctx, r } = ownerGroup()
  clientAppendBatch(ctx, r, terminal('slow'), 1, ops('a', 'b'))
  ctx.now += ctx.config.writeTimeoutMs + 1
  expireWaiters(ctx, r)
  assert.equal(ctx.replies().map((x) => [x.to, x.status]), [['slow', 503]])
  ackFrom(ctx, r, 'B')
  ackFrom(ctx, r, 'C')
  ctx.take()
  clientAppendBatch(ctx, r, terminal('retry'), 1, ops('a', 'b'))
  assert.equal(ctx.replies()[0].body.results, [{ clientSeq: 1, index: 2, duplicate: true }, { clientSeq: 2, index: 3, duplicate: true }])
})

test('the store merges consecutive entry records of one session, keeping order and leaving the input as it was', () => {
  const one = { kind: 'session-entries' as const, sessionId: 's', entries: [deltaEntry(2, 1)] }
  const two = { kind: 'session-entries' as const, sessionId: 's', entries: [deltaEntry(3, 1)] }
  const other = { kind: 'session-entries' as const, sessionId: 't', entries: [deltaEntry(2, 1)] }
  const commit = { kind: 'session-commit' as const, sessionId: 's', commitIndex: 1 }
  const merged = coalesceEntries([one, two, other, commit, { ...one, entries: [deltaEntry(4, 1)] }])
  assert.equal(merged.map((m) => [m.kind, m.sessionId, m.kind === 'session-entries' ? m.entries.map((e) => e.index) : m.kind]), [
    ['session-entries', 's', [2, 3]], ['session-entries', 't', [2]], ['session-commit', 's', 'session-commit'], ['session-entries', 's', [4]]
  ])
  assert.equal(one.entries.map((e) => e.index), [2], 'the caller\'s record is untouched')
})

test.run()
