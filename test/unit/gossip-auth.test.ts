// Authenticated gossip, the two rules the membership tests did not pin yet: a
// replayed older record (validly signed, lower incarnation or seq) changes
// nothing, and an accusation about another member is only a claim: it never
// touches the accused's record, and the accused's own newer record wins.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Input } from '../../agent/core/io.ts'
import { SeededRandom } from '../../agent/core/random.ts'
import { membershipProfile } from '../../agent/membership/config.ts'
import { Membership } from '../../agent/membership/membership.ts'
import { encodeAccusation, encodeRecord } from '../../protocol/codec.ts'
import type { Accusation, NodeRecord, Update } from '../../protocol/messages.ts'
import { SimAuth } from '../../sim/auth.ts'

function recordOf (id: string, incarnation: number, seq: number, ip: string): NodeRecord {
  return {
    id, addrs: [`/sim/${id}`], ip, http: '', services: [{ name: 'log', version: '1', capacity: 10 }],
    load: { score: 0, sessions: 0, elu: 0, cpu: 0 }, position: null, region: '', zone: '', incarnation, seq, status: 'alive'
  }
}

function signedRecord (record: NodeRecord): Update {
  const bytes = encodeRecord(record)
  return { kind: 'record', signed: { record, bytes, sig: new SimAuth(record.id).sign(bytes) } }
}

function signedAccusation (accusation: Accusation): Update {
  const bytes = encodeAccusation(accusation)
  return { kind: 'accusation', signed: { accusation, bytes, sig: new SimAuth(accusation.accuser).sign(bytes) } }
}

function core (): Membership {
  const { seq: _seq, status: _status, ...self } = recordOf('me', 1, 0, '10.0.0.9')
  return new Membership({ self, config: membershipProfile('lan'), random: new SeededRandom(1), auth: new SimAuth('me'), nowMs: 0 })
}

function gossip (from: string, updates: Update[], nowMs: number, channel: 'gossip' | 'direct' = 'gossip'): Input {
  return { kind: 'receive', nowMs, from, channel, message: { type: 'gossip', updates } }
}

function entry (m: Membership, id: string): { ip: string; incarnation: number; status: string } | undefined {
  const member = m.snapshot(100).find((e) => e.record.id === id)
  return member === undefined ? undefined : { ip: member.record.ip, incarnation: member.record.incarnation, status: member.status }
}

test('a replayed older record, validly signed by its author, is ignored', () => {
  const m = core()
  m.step(gossip('a', [signedRecord(recordOf('a', 3, 5, '10.0.0.3'))], 10))
  // The same author's older statements, replayed directly and relayed.
  m.step(gossip('a', [signedRecord(recordOf('a', 2, 99, '10.6.6.6'))], 20))
  m.step(gossip('b', [signedRecord(recordOf('a', 3, 4, '10.6.6.7'))], 30, 'direct'))
  m.step(gossip('b', [signedRecord(recordOf('a', 3, 5, '10.6.6.8'))], 40, 'direct'))
  assert.is(entry(m, 'a')?.ip, '10.0.0.3')
  assert.is(entry(m, 'a')?.incarnation, 3)
  assert.is(entry(m, 'a')?.status, 'alive')
  // A newer one is taken.
  m.step(gossip('a', [signedRecord(recordOf('a', 3, 6, '10.0.0.4'))], 50))
  assert.is(entry(m, 'a')?.ip, '10.0.0.4')
})

test("an accusation is a claim: it never rewrites the accused's record, and the accused's refutation wins", () => {
  const m = core()
  m.step(gossip('a', [signedRecord(recordOf('a', 2, 1, '10.0.0.3'))], 10))
  m.step(gossip('b', [signedRecord(recordOf('b', 1, 0, '10.0.0.5'))], 10))
  m.step(gossip('b', [signedAccusation({ kind: 'suspect', subject: 'a', incarnation: 2, accuser: 'b' })], 20))
  assert.is(entry(m, 'a')?.status, 'suspect')
  assert.is(entry(m, 'a')?.ip, '10.0.0.3', 'the record is the author\'s, untouched')
  // An accusation about an older incarnation, or a replay of this one after the
  // refutation, changes nothing.
  m.step(gossip('a', [signedRecord(recordOf('a', 3, 0, '10.0.0.3'))], 30))
  assert.is(entry(m, 'a')?.status, 'alive')
  m.step(gossip('b', [signedAccusation({ kind: 'suspect', subject: 'a', incarnation: 2, accuser: 'b' })], 40))
  m.step(gossip('b', [signedAccusation({ kind: 'dead', subject: 'a', incarnation: 2, accuser: 'b' })], 41))
  assert.is(entry(m, 'a')?.status, 'alive')
  assert.is(entry(m, 'a')?.incarnation, 3)
})

test.run()
