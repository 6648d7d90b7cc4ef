// What an owner keeps per delta and per send stays bounded and cheap to keep,
// without changing what it answers: the dedup window (the last MAX_DEDUP_RECENT
// deltas, however the array behind it is trimmed), the snapshot's copy of it,
// and the send times the lease counts from.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { clientAppend, heartbeat } from '../../agent/sessions/owner.ts'
import { dedupIndex, snapshotAt } from '../../agent/sessions/replica.ts'
import { MAX_DEDUP_RECENT } from '../../protocol/limits.ts'
import { ackFrom, ownerGroup, terminal } from './session-fixtures.ts'

test('the dedup window is the last MAX_DEDUP_RECENT deltas at every length, and the array behind it stays under twice that', () => {
  const { ctx, r } = ownerGroup()
  const total = 3 * MAX_DEDUP_RECENT + 17
  for (let seq = 1; seq <= total; seq++) {
    clientAppend(ctx, r, terminal(`t-${seq}`), seq, { append: seq })
    ackFrom(ctx, r, 'B')
    ackFrom(ctx, r, 'C')
    assert.ok(r.dedup.recent.length < 2 * MAX_DEDUP_RECENT, `${r.dedup.recent.length} pairs kept after ${seq} deltas`)
    const oldest = Math.max(1, seq - MAX_DEDUP_RECENT + 1)
    // Index = clientSeq + 1 (the create entry is index 1).
    assert.is(dedupIndex(r, oldest), oldest + 1, `clientSeq ${oldest} is the oldest answered after ${seq}`)
    if (oldest > 1) assert.is(dedupIndex(r, oldest - 1), null, `clientSeq ${oldest - 1} has left the window after ${seq}`)
    const snapshot = snapshotAt(r, r.appliedIndex)
    assert.ok(snapshot !== null)
    assert.is(snapshot.dedup.recent.length, Math.min(seq, MAX_DEDUP_RECENT))
    assert.equal(snapshot.dedup.recent[0], [oldest, oldest + 1])
  }
  ctx.take()
  // A retry just outside the window is refused as too old, as before.
  const outside = total - MAX_DEDUP_RECENT
  clientAppend(ctx, r, terminal('late'), outside, { append: 'again' })
  assert.equal(ctx.replies().map((reply) => reply.status), [409])
  clientAppend(ctx, r, terminal('inside'), outside + 1, { append: 'again' })
  assert.equal(ctx.replies().slice(1), [{ to: 'inside', status: 200, body: { index: outside + 2, epoch: 1, duplicate: true } }])
})

test('send times are dropped once a later send is acknowledged, and the lease still counts from the acknowledged send', () => {
  const { ctx, r } = ownerGroup()
  for (let seq = 1; seq <= 50; seq++) clientAppend(ctx, r, terminal(`t-${seq}`), seq, { append: seq })
  const b = r.progress.get('B')
  assert.ok(b !== undefined)
  assert.is(b.sentAtMs.size, 50, 'one send time per append in flight')
  ctx.now += 100
  const sentAt = ctx.now
  heartbeat(ctx, r)
  ctx.now += 50
  ackFrom(ctx, r, 'B')
  assert.is(b.sentAtMs.size, 0, 'the last send was acknowledged: nothing is kept')
  assert.is(b.promiseUntilMs, sentAt + ctx.config.ownerTimeoutMs * 0.8)
  // An ack of an earlier send, arriving late, promises nothing more.
  for (let seq = 51; seq <= 60; seq++) clientAppend(ctx, r, terminal(`t-${seq}`), seq, { append: seq })
  assert.is(b.sentAtMs.size, 10)
  const promised = b.promiseUntilMs
  ackFrom(ctx, r, 'B')
  assert.is(b.sentAtMs.size, 0)
  assert.ok(b.promiseUntilMs >= promised)
})

test.run()
