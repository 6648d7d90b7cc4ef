import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BroadcastQueue, updateBytes } from '../../agent/membership/broadcast.ts'
import type { Update } from '../../protocol/messages.ts'

function accusation (subject: string, incarnation: number, size = 40): Update {
  return {
    kind: 'accusation',
    signed: {
      accusation: { kind: 'suspect', subject, incarnation, accuser: 'x' },
      bytes: new Uint8Array(size),
      sig: new Uint8Array(8)
    }
  }
}

test('enqueue() keeps one item per subject: newer news replaces older', () => {
  const queue = new BroadcastQueue()
  queue.enqueue(accusation('a', 1))
  queue.enqueue(accusation('a', 2))
  queue.enqueue(accusation('b', 1))
  assert.is(queue.size, 2)
  const taken = queue.take(10_000, 5, null)
  const incarnations = taken.map((u) => u.kind === 'accusation' ? `${u.signed.accusation.subject}${u.signed.accusation.incarnation}` : '')
  assert.equal(incarnations.sort(), ['a2', 'b1'])
})

test('take() sends each item at most `limit` times, then drops it', () => {
  const queue = new BroadcastQueue()
  queue.enqueue(accusation('a', 1))
  for (let i = 0; i < 3; i++) assert.is(queue.take(10_000, 3, null).length, 1)
  assert.is(queue.take(10_000, 3, null).length, 0)
  assert.is(queue.size, 0)
})

test('take() prefers the least-sent items', () => {
  const queue = new BroadcastQueue()
  queue.enqueue(accusation('old', 1))
  queue.take(10_000, 10, null)
  queue.enqueue(accusation('new', 1))
  const budget = updateBytes(accusation('new', 1))
  const [first] = queue.take(budget, 10, null)
  assert.is(first.kind === 'accusation' && first.signed.accusation.subject, 'new')
})

test('take() stays within the byte budget', () => {
  const queue = new BroadcastQueue()
  for (let i = 0; i < 10; i++) queue.enqueue(accusation(`m${i}`, 1, 100))
  const one = updateBytes(accusation('m0', 1, 100))
  const taken = queue.take(one * 3 + 1, 10, null)
  assert.is(taken.length, 3)
})

test('take() puts news about the recipient first, even if sent more often', () => {
  const queue = new BroadcastQueue()
  queue.enqueue(accusation('r', 1))
  queue.take(10_000, 10, null)
  queue.take(10_000, 10, null)
  queue.enqueue(accusation('other', 1))
  const budget = updateBytes(accusation('r', 1))
  const [first] = queue.take(budget, 10, 'r')
  assert.is(first.kind === 'accusation' && first.signed.accusation.subject, 'r')
})

test('take() fills the budget past an item or two too big for what is left', () => {
  const queue = new BroadcastQueue()
  queue.enqueue(accusation('small1', 1, 40))
  queue.enqueue(accusation('big1', 1, 400))
  queue.enqueue(accusation('big2', 1, 400))
  queue.enqueue(accusation('small2', 1, 40))
  const budget = updateBytes(accusation('x', 1, 40)) * 2
  const subjects = queue.take(budget, 10, null).map((u) => u.kind === 'accusation' ? u.signed.accusation.subject : '')
  assert.equal(subjects, ['small1', 'small2'])
})

test('drop() forgets a subject', () => {
  const queue = new BroadcastQueue()
  queue.enqueue(accusation('a', 1))
  queue.drop('a')
  assert.is(queue.size, 0)
  assert.equal(queue.take(10_000, 5, null), [])
})

test.run()
