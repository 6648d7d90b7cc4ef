// identity-watch.ts: while an agent is still joining, its bootstrap peers'
// tables are checked for its id held by another node (a copied data directory).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ownIdElsewhere, watchJoin } from '../../agent/runtime/identity-watch.ts'
import type { NodeRecord, PeekMember } from '../../protocol/messages.ts'

function recordOf (over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id: 'me', addrs: ['/ip4/10.0.0.1/tcp/7701'], ip: '10.0.0.1', http: 'http://10.0.0.1:7700', services: [],
    load: { score: 0, sessions: 0, elu: 0, cpu: 0 }, position: null, region: '', zone: '', incarnation: 2, seq: 0, status: 'alive', ...over
  }
}

function member (record: NodeRecord, status: PeekMember['status'] = 'alive'): PeekMember {
  return { record, status, statusIncarnation: record.incarnation, lastHeardMs: 0 }
}

const self = recordOf()
const clone = recordOf({ addrs: ['/ip4/10.0.0.2/tcp/7701'], ip: '10.0.0.2', http: 'http://10.0.0.2:7700' })

test('ownIdElsewhere: our id as another node\'s (as new as ours or newer, alive or suspect, other addresses); not ours, not an earlier life, not a dead one', () => {
  assert.is(ownIdElsewhere([member(clone)], self), clone)
  assert.is(ownIdElsewhere([member({ ...clone, incarnation: 5 }, 'suspect')], self)?.ip, '10.0.0.2')
  assert.is(ownIdElsewhere([], self), null, 'absent')
  assert.is(ownIdElsewhere([member(recordOf({ id: 'other' }))], self), null, 'another id')
  assert.is(ownIdElsewhere([member(self)], self), null, 'our own record')
  assert.is(ownIdElsewhere([member({ ...clone, incarnation: 1, seq: 9 })], self), null, 'an earlier life: older')
  assert.is(ownIdElsewhere([member(clone, 'dead')], self), null, 'dead')
  assert.is(ownIdElsewhere([member(clone, 'left')], self), null, 'left')
})

async function run (answers: Array<PeekMember[] | Error>, joiningFor = Infinity): Promise<{ conflicts: number; peeks: number }> {
  let peeks = 0
  let conflicts = 0
  let checks = 0
  await watchJoin({
    bootstrap: ['/ip4/10.0.0.3/tcp/7701'],
    joining: () => checks < joiningFor,
    stopped: () => false,
    self: () => self,
    peek: async () => {
      const answer = answers[Math.min(peeks++, answers.length - 1)]
      if (answer instanceof Error) throw answer
      return answer
    },
    onConflict: () => { conflicts++ },
    sleep: async () => { checks++; if (checks > 20) throw new Error('runaway') }
  }).catch((error: Error) => { if (error.message !== 'runaway') throw error })
  return { conflicts, peeks }
}

test('watchJoin: twice in a row concludes, once does not, an unanswered peek counts for nothing, and joining ends the watch', async () => {
  assert.equal(await run([[member(clone)]]), { conflicts: 1, peeks: 2 })
  const once = await run([[member(clone)], [member(self)]], 6)
  assert.is(once.conflicts, 0)
  const failing = await run([[member(clone)], new Error('no answer'), [member(clone)], [member(self)]], 6)
  assert.is(failing.conflicts, 0)
  assert.equal(await run([[member(clone)]], 0), { conflicts: 0, peeks: 0 }, 'joined: nothing asked')
})

test.run()
