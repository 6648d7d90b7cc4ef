// An agent that has not joined its cluster yet (directory.joining: started with
// bootstrap peers, none heard from) answers 503 for a session it does not hold,
// and for an open, where an agent alone by design (no bootstrap) answers 404 and
// opens. The real-agent test: test/net/joining.test.ts.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeededRandom } from '../../agent/core/random.ts'
import { BUILT_IN_SERVICES } from '../../agent/sessions/services.ts'
import { Sessions } from '../../agent/sessions/sessions.ts'
import type { SessionEffect } from '../../agent/sessions/types.ts'
import type { SessionMessage } from '../../protocol/messages.ts'
import { FakeDirectory, INFO, LAN } from './session-fixtures.ts'

// A log session held by others (its service decides which agents are asked).
const ELSEWHERE = 'log:elsewhere'

type SessionLocation = Extract<SessionMessage, { type: 'session-location' }>

function coreOf (directory: FakeDirectory): Sessions {
  return new Sessions({ directory, config: LAN, random: new SeededRandom(3), services: BUILT_IN_SERVICES, stored: [], nowMs: 0 })
}

function replies (effects: SessionEffect[]): Array<{ status: number; error: unknown }> {
  return effects.flatMap((e) => e.kind === 'reply' ? [{ status: e.reply.status, error: (e.reply.body as { error?: unknown }).error }] : [])
}

const get = { kind: 'command', nowMs: 10, command: { type: 'get', requestId: 'g', sessionId: ELSEWHERE, tokenHash: INFO.tokenHash } } as const
const open = { kind: 'command', nowMs: 10, command: { type: 'open', requestId: 'o', sessionId: 'log:new', terminalId: 't', service: 'log', position: null, tokenHash: INFO.tokenHash } } as const

test('joining, alone in its table: a read of a session held elsewhere and an open get 503 "not joined", nothing is created', () => {
  const directory = new FakeDirectory('D', ['D'])
  directory.joiningNow = true
  const core = coreOf(directory)
  for (const input of [get, open]) {
    const [reply] = replies(core.step(input))
    assert.is(reply?.status, 503, input.command.type)
    assert.match(String(reply?.error), /not joined its cluster/)
  }
  assert.equal(core.list(), [])
})

test('alone by design (no bootstrap): "no such session", and an open is served here', () => {
  const core = coreOf(new FakeDirectory('D', ['D']))
  assert.equal(replies(core.step(get)), [{ status: 404, error: 'no such session' }])
  core.step(open)
  assert.equal(core.list().map((s) => s.sessionId), ['log:new'])
})

test('joining, every agent asked answers "not held": 503 "not joined", not 404', () => {
  const directory = new FakeDirectory('D', ['A', 'D'])
  directory.joiningNow = true
  const core = coreOf(directory)
  const asked = core.step(get).flatMap((e) => e.kind === 'send' && e.message.type === 'session-locate' ? [e.message.requestId] : [])
  assert.is(asked.length, 1, 'A is asked')
  const notHeld: SessionLocation = { type: 'session-location', requestId: asked[0], sessionId: ELSEWHERE, found: false, epoch: 0, owner: '', config: { members: ['A'], witness: null }, tokenHash: '0'.repeat(64) }
  const [reply] = replies(core.step({ kind: 'receive', nowMs: 12, from: 'A', message: notHeld }))
  assert.is(reply?.status, 503)
  directory.joiningNow = false
  const again = core.step({ ...get, nowMs: 20, command: { ...get.command, requestId: 'g2' } }).flatMap((e) => e.kind === 'send' && e.message.type === 'session-locate' ? [e.message.requestId] : [])
  assert.equal(replies(core.step({ kind: 'receive', nowMs: 22, from: 'A', message: { ...notHeld, requestId: again[0] } })).map((r) => r.status), [404], 'joined: the same answers mean no such session')
})

test.run()
