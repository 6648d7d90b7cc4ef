import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { MemberNumbers } from '../../agent/membership/numbers.ts'
import { MemberTable, claimIsNewer, compareVersion, knowsMore } from '../../agent/membership/table.ts'
import type { Accusation, NodeRecord, SignedRecord } from '../../protocol/messages.ts'

function record (id: string, incarnation: number, seq: number, status: 'alive' | 'left' = 'alive'): SignedRecord {
  const r: NodeRecord = {
    id, addrs: [], ip: '', http: '', services: [], load: { score: 0, sessions: 0, elu: 0, cpu: 0 },
    position: null, region: '', zone: '', incarnation, seq, status
  }
  return { record: r, bytes: new Uint8Array(1), sig: new Uint8Array(1) }
}

function accuse (kind: 'suspect' | 'dead', subject: string, incarnation: number, accuser: string): Accusation {
  return { kind, subject, incarnation, accuser }
}

const deadline = (start: number, confirmations: number): number => start + 1000 - confirmations * 100

function tableWith (...records: SignedRecord[]): MemberTable {
  const table = new MemberTable()
  table.addSelf(record('me', 1, 0), 0)
  for (const r of records) table.applyRecord(r, 0)
  return table
}

test('compareVersion() orders by incarnation, then seq', () => {
  assert.ok(compareVersion({ incarnation: 2, seq: 0 }, { incarnation: 1, seq: 9 }) > 0)
  assert.ok(compareVersion({ incarnation: 1, seq: 3 }, { incarnation: 1, seq: 2 }) > 0)
  assert.is(compareVersion({ incarnation: 1, seq: 2 }, { incarnation: 1, seq: 2 }), 0)
})

test('applyRecord() adds an unknown alive member and ignores an unknown departed one', () => {
  const table = tableWith()
  assert.is(table.applyRecord(record('a', 1, 0), 5).kind, 'joined')
  assert.is(table.applyRecord(record('b', 1, 3, 'left'), 5).kind, 'ignored')
  assert.is(table.get('b'), undefined)
  assert.is(table.liveCount, 2)
})

test('applyRecord() ignores old and duplicate versions', () => {
  const table = tableWith(record('a', 2, 5))
  assert.is(table.applyRecord(record('a', 2, 5), 1).kind, 'ignored')
  assert.is(table.applyRecord(record('a', 2, 4), 1).kind, 'ignored')
  assert.is(table.applyRecord(record('a', 1, 9), 1).kind, 'ignored')
  assert.is(table.applyRecord(record('a', 2, 6), 1).kind, 'updated')
})

test('a suspicion is refuted only by a higher incarnation', () => {
  const table = tableWith(record('a', 1, 0))
  table.applyAccusation(null, accuse('suspect', 'a', 1, 'x'), 10, deadline)
  assert.is(table.get('a')?.status, 'suspect')
  const sameIncarnation = table.applyRecord(record('a', 1, 1), 20)
  assert.is(sameIncarnation.kind, 'updated')
  assert.is(table.get('a')?.status, 'suspect', 'a newer seq at the same incarnation does not refute')
  const refuted = table.applyRecord(record('a', 2, 0), 30)
  assert.ok(refuted.kind === 'updated' && refuted.statusChanged)
  assert.is(table.get('a')?.status, 'alive')
  assert.is(table.get('a')?.suspicion, null)
})

test('accusations about an older incarnation are ignored', () => {
  const table = tableWith(record('a', 3, 0))
  assert.is(table.applyAccusation(null, accuse('suspect', 'a', 2, 'x'), 1, deadline).kind, 'ignored')
  assert.is(table.applyAccusation(null, accuse('dead', 'a', 2, 'x'), 1, deadline).kind, 'ignored')
  assert.is(table.get('a')?.status, 'alive')
})

test('accusations about unknown members are ignored', () => {
  const table = tableWith()
  assert.is(table.applyAccusation(null, accuse('dead', 'ghost', 1, 'x'), 1, deadline).kind, 'ignored')
  assert.is(table.get('ghost'), undefined)
})

test('independent accusers confirm a suspicion and pull its deadline in; a repeat does not', () => {
  const table = tableWith(record('a', 1, 0))
  const first = table.applyAccusation(null, accuse('suspect', 'a', 1, 'x'), 100, deadline)
  assert.is(first.kind, 'suspected')
  assert.is(table.get('a')?.suspicion?.deadlineMs, 1100)
  assert.is(table.applyAccusation(null, accuse('suspect', 'a', 1, 'x'), 150, deadline).kind, 'ignored')
  const second = table.applyAccusation(null, accuse('suspect', 'a', 1, 'y'), 200, deadline)
  assert.ok(second.kind === 'confirmed' && second.confirmations === 1)
  assert.is(table.get('a')?.suspicion?.deadlineMs, 1000)
})

test('dead is final for its incarnation; a restart (higher incarnation) brings the member back', () => {
  const table = tableWith(record('a', 1, 0))
  assert.is(table.applyAccusation(null, accuse('dead', 'a', 1, 'x'), 10, deadline).kind, 'died')
  assert.is(table.liveCount, 1)
  assert.is(table.applyAccusation(null, accuse('suspect', 'a', 1, 'y'), 20, deadline).kind, 'ignored')
  assert.is(table.applyRecord(record('a', 1, 5), 30).kind, 'updated')
  assert.is(table.get('a')?.status, 'dead', 'late data at the dead incarnation does not revive')
  table.applyRecord(record('a', 2, 0), 40)
  assert.is(table.get('a')?.status, 'alive')
  assert.is(table.liveCount, 2)
})

test('a left record marks the member left; only a higher incarnation rejoins it', () => {
  const table = tableWith(record('a', 1, 0))
  const outcome = table.applyRecord(record('a', 1, 1, 'left'), 10)
  assert.ok(outcome.kind === 'updated' && outcome.statusChanged)
  assert.is(table.get('a')?.status, 'left')
  assert.is(table.applyAccusation(null, accuse('dead', 'a', 1, 'x'), 20, deadline).kind, 'ignored')
  table.applyRecord(record('a', 2, 0), 30)
  assert.is(table.get('a')?.status, 'alive')
})

test('reap() forgets dead and left members older than the cut-off, and only them', () => {
  const table = tableWith(record('a', 1, 0), record('b', 1, 0), record('c', 1, 0))
  table.applyAccusation(null, accuse('dead', 'a', 1, 'x'), 100, deadline)
  table.applyRecord(record('b', 1, 1, 'left'), 500)
  assert.equal(table.reap(200), ['a'])
  assert.equal(table.reap(1000), ['b'])
  assert.ok(table.get('c') !== undefined)
})

test('extendSuspicions() moves deadlines by a local stall', () => {
  const table = tableWith(record('a', 1, 0))
  table.applyAccusation(null, accuse('suspect', 'a', 1, 'x'), 0, deadline)
  table.extendSuspicions(300, 0)
  assert.equal(table.expiredSuspicions(1000), [])
  assert.is(table.expiredSuspicions(1300).length, 1)
})

test('after a stall, a confirmation read in the backlog does not end the suspicion before the floor', () => {
  const table = tableWith(record('a', 1, 0))
  // Suspected at 0 (deadline 1,000, 100 ms less per confirmation); we stall
  // from 200 to 5,000: start moves to 4,800, deadline to 5,800.
  table.applyAccusation(null, accuse('suspect', 'a', 1, 'x'), 0, deadline)
  table.extendSuspicions(4_800, 5_050)
  // The backlog: confirmations sent during the stall put the deadline at
  // 4,800 + 700, then 4,800 + 200 (before now) without the floor.
  for (const [i, by] of ['y', 'z', 'w', 'v', 'u', 't', 's', 'r'].entries()) {
    table.applyAccusation(null, accuse('suspect', 'a', 1, by), 5_000 + i, (start, confirmations) => start + 1000 - confirmations * 100)
  }
  assert.equal(table.expiredSuspicions(5_010), [], 'the rest of the backlog (a refutation perhaps) is read first')
  assert.is(table.expiredSuspicions(5_050).length, 1)
})

test('claimIsNewer() and knowsMore() drive the push-pull digest', () => {
  assert.ok(claimIsNewer({ status: 'suspect', statusIncarnation: 1 }, { status: 'alive', statusIncarnation: 1 }))
  assert.ok(claimIsNewer({ status: 'dead', statusIncarnation: 1 }, { status: 'suspect', statusIncarnation: 1 }))
  assert.not.ok(claimIsNewer({ status: 'alive', statusIncarnation: 5 }, { status: 'dead', statusIncarnation: 1 }))
  assert.not.ok(claimIsNewer({ status: 'suspect', statusIncarnation: 1 }, { status: 'alive', statusIncarnation: 2 }))
  const table = tableWith(record('a', 2, 3))
  const a = table.get('a')
  assert.ok(a !== undefined)
  assert.ok(knowsMore(a, undefined))
  assert.ok(knowsMore(a, { id: 'a', incarnation: 2, seq: 2, status: 'alive', statusIncarnation: 2 }))
  assert.not.ok(knowsMore(a, { id: 'a', incarnation: 2, seq: 3, status: 'alive', statusIncarnation: 2 }))
})

// ---- the compact table: numbering, columns, sparse state ----------------------

test('a suspicion at an incarnation above the record\'s survives newer data at a lower one, until a refutation', () => {
  const table = tableWith(record('a', 1, 0))
  table.applyAccusation(null, accuse('suspect', 'a', 3, 'x'), 10, deadline)
  assert.is(table.get('a')?.statusIncarnation, 3)
  table.applyRecord(record('a', 2, 0), 20)
  assert.is(table.get('a')?.status, 'suspect', 'incarnation 2 does not refute a claim about 3')
  assert.is(table.get('a')?.statusIncarnation, 3)
  assert.is(table.get('a')?.signed.record.incarnation, 2)
  table.applyRecord(record('a', 4, 0), 30)
  assert.is(table.get('a')?.status, 'alive')
  assert.is(table.get('a')?.statusIncarnation, 4)
  assert.is(table.get('a')?.suspicion, null)
  assert.is(table.get('a')?.accusation, null)
})

test('tables sharing a numbering agree on numbers and never release one; a private numbering reuses a reaped member\'s', () => {
  const shared = new MemberNumbers(true)
  const one = new MemberTable(shared)
  const two = new MemberTable(shared)
  one.addSelf(record('me', 1, 0), 0)
  two.addSelf(record('you', 1, 0), 0)
  one.applyRecord(record('a', 1, 0), 0)
  two.applyRecord(record('a', 1, 0), 0)
  assert.is(one.get('a')?.n, two.get('a')?.n)
  one.applyAccusation(null, accuse('dead', 'a', 1, 'x'), 10, deadline)
  assert.equal(one.reap(100), ['a'])
  assert.is(one.get('a'), undefined)
  assert.is(two.get('a')?.status, 'alive', 'the other table keeps its member')
  assert.is(shared.find('a'), two.get('a')?.n)

  const own = new MemberNumbers()
  const table = new MemberTable(own)
  table.addSelf(record('me', 1, 0), 0)
  table.applyRecord(record('a', 5, 0), 0)
  table.applyAccusation(null, accuse('suspect', 'a', 7, 'x'), 10, deadline)
  table.applyAccusation(null, accuse('dead', 'a', 7, 'x'), 20, deadline)
  const number = table.get('a')?.n
  assert.equal(table.reap(100), ['a'])
  assert.is(own.find('a'), undefined)
  table.applyRecord(record('b', 1, 0), 200)
  const b = table.get('b')
  assert.is(b?.n, number, 'the freed number is reused')
  assert.is(b?.status, 'alive')
  assert.is(b?.statusIncarnation, 1, 'nothing of the reaped member carries over')
  assert.is(b?.accusation, null)
  assert.is(b?.lastHeardMs, 200)
  assert.is(table.size, 2)
  assert.equal(table.all().map((m) => m.id), ['me', 'b'])
})

test('pick() maps a draw to a member by number, or to nothing where the number is not in the table', () => {
  const shared = new MemberNumbers(true)
  const other = new MemberTable(shared)
  other.addSelf(record('x', 1, 0), 0)
  other.applyRecord(record('y', 1, 0), 0)
  const table = new MemberTable(shared)
  table.addSelf(record('me', 1, 0), 0)
  table.applyRecord(record('a', 1, 0), 0)
  // Numbers: x 0, y 1, me 2, a 3.
  assert.is(table.pick(0), undefined)
  assert.is(table.pick(0.3), undefined)
  assert.is(table.pick(0.5)?.id, 'me')
  assert.is(table.pick(0.99)?.id, 'a')
})

test.run()
