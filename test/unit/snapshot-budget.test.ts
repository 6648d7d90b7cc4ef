// The agent-wide snapshot budget (agent/sessions/snapshot-budget.ts): a window's
// share of snapshotBytesPerS, the first snapshot of a window always taken.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SNAPSHOT_WINDOW_MS, SnapshotBudget } from '../../agent/sessions/snapshot-budget.ts'

const MiB = 1_048_576

test('a window\'s share of the rate; the next window starts afresh', () => {
  // 20 MiB/s over 50 ms windows: 1 MiB each.
  assert.is(SNAPSHOT_WINDOW_MS, 50)
  const budget = new SnapshotBudget(20 * MiB)
  assert.ok(budget.take(1_000, 0.6 * MiB))
  assert.not.ok(budget.take(1_001, 0.6 * MiB), 'over the share: waits')
  assert.ok(budget.take(1_002, 0.3 * MiB), 'a smaller one still fits')
  assert.not.ok(budget.take(1_049, 0.2 * MiB))
  assert.ok(budget.take(1_050, 0.6 * MiB), 'a new window')
})

test('the first snapshot of a window is taken whatever its size; 0 is no limit', () => {
  const budget = new SnapshotBudget(20 * MiB)
  assert.ok(budget.take(0, 16 * MiB), 'a state bigger than the share is never starved')
  assert.not.ok(budget.take(10, 1), 'but it has the window to itself')
  assert.ok(budget.take(50, 1))
  const unlimited = new SnapshotBudget(0)
  for (let i = 0; i < 100; i++) assert.ok(unlimited.take(0, 16 * MiB))
})

test('an overdue snapshot is taken and counted, share or not', () => {
  const budget = new SnapshotBudget(20 * MiB)
  assert.ok(budget.take(0, 0.9 * MiB))
  assert.not.ok(budget.take(1, 0.5 * MiB))
  assert.ok(budget.take(2, 0.5 * MiB, true))
  assert.not.ok(budget.take(3, 0.01 * MiB), 'the window is used up')
})

test.run()
