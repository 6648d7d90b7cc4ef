// The host's driver of a core: with group commit, a turn's inputs are stepped in
// order with ticks last, and their effects performed as one batch.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CoreDriver, ticksLast } from '../../agent/runtime/driver.ts'

type In = { kind: 'tick' | 'receive'; nowMs: number; id?: string }

test('ticksLast: messages first, in order, then one tick at the latest time', () => {
  const inputs: In[] = [{ kind: 'tick', nowMs: 10 }, { kind: 'receive', nowMs: 11, id: 'a' }, { kind: 'tick', nowMs: 12 }, { kind: 'receive', nowMs: 13, id: 'b' }]
  assert.equal(ticksLast(inputs), [{ kind: 'receive', nowMs: 11, id: 'a' }, { kind: 'receive', nowMs: 13, id: 'b' }, { kind: 'tick', nowMs: 13 }])
  const none: In[] = [{ kind: 'receive', nowMs: 1, id: 'x' }]
  assert.is(ticksLast(none), none)
})

// A stalled event loop: the timer's tick and a message that arrived before the
// deadline land in one turn; the message must be seen before the deadline is.
test('group commit: a message queued with a tick is stepped before it, effects in one batch', async () => {
  const seen: string[] = []
  const core = {
    step (input: In): string[] {
      seen.push(input.kind === 'tick' ? `tick@${input.nowMs}` : `receive ${input.id}`)
      return [seen[seen.length - 1]]
    },
    nextWakeMs: () => Infinity
  }
  let now = 100
  const batches: string[][] = []
  const driver = new CoreDriver<In, string>(core, { nowMs: () => now }, (effects) => batches.push(effects), { groupCommit: true })
  driver.step({ kind: 'tick' })
  now = 101
  driver.step({ kind: 'receive', id: 'vote' })
  await new Promise((resolve) => setImmediate(resolve))
  driver.stop()
  assert.equal(seen, ['receive vote', 'tick@101'])
  assert.equal(batches, [['receive vote', 'tick@101']])
})

// An owner's batch held behind its fsync when the process froze: at SIGCONT the
// acks read before the freeze must be judged at the time they are stepped, or
// the owner's lease looks valid seconds after it ran out (SEED=549 of a sweep
// with write concern majority acknowledged in epoch 1 after epoch 2 had).
test('group commit: inputs held behind an fsync are stepped at the time they are stepped, not the time they were read', async () => {
  const seen: string[] = []
  const core = {
    step (input: In): string[] {
      seen.push(`${input.kind === 'tick' ? 'tick' : input.id}@${input.nowMs}`)
      return []
    },
    nextWakeMs: () => Infinity
  }
  let now = 100
  const driver = new CoreDriver<In, string>(core, { nowMs: () => now }, () => {}, { groupCommit: true })
  driver.hold()
  driver.step({ kind: 'receive', id: 'ack' })
  now = 5_100
  driver.step({ kind: 'receive', id: 'later' })
  driver.release()
  await new Promise((resolve) => setImmediate(resolve))
  driver.stop()
  assert.equal(seen, ['ack@5100', 'later@5100'])
})

test.run()
