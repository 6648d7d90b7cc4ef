// The streams a member keeps open to the rest of its session groups: asked for
// when a group forms, not again while nothing changes, and again to a member
// that comes back with a new incarnation. Without the last, a standby that
// restarted never had a stream to the other standby again (they exchange
// nothing until their owner fails), so the takeover after the next owner
// failure began with a dial: 100-300 ms of a SIGKILL takeover on a busy box
// (bench/takeover-timeline.ts). Incarnations are looked up at most once per
// STREAMS_RECHECK_MS per session, not on every message and tick.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SeededRandom } from '../../agent/core/random.ts'
import { STREAMS_RECHECK_MS } from '../../agent/sessions/group-streams.ts'
import { BUILT_IN_SERVICES } from '../../agent/sessions/services.ts'
import { Sessions } from '../../agent/sessions/sessions.ts'
import type { SessionEffect } from '../../agent/sessions/types.ts'
import type { NodeRecord } from '../../protocol/messages.ts'
import { FakeDirectory, LAN } from './session-fixtures.ts'

function connects (effects: SessionEffect[]): string[] {
  return effects.flatMap((e) => e.kind === 'connect' ? [e.peer] : []).sort()
}

// Counts record lookups.
class CountingDirectory extends FakeDirectory {
  lookups = 0
  override record (id: string): NodeRecord | null {
    this.lookups++
    return super.record(id)
  }
}

function owningOneSession (): { core: Sessions; directory: CountingDirectory; created: SessionEffect[] } {
  const directory = new CountingDirectory('A', ['A', 'B', 'C'])
  const core = new Sessions({ directory, config: LAN, random: new SeededRandom(7), services: BUILT_IN_SERVICES, stored: [], nowMs: 0 })
  // B placed the session and asks A, first in the group, to create it.
  const info = { sessionId: 'log:1', service: 'log', terminalId: 't1', tokenHash: 'h', position: null }
  const created = core.step({ kind: 'receive', nowMs: 1, from: 'B', message: { type: 'session-open', requestId: 1, info, config: { members: ['A', 'B', 'C'], witness: null } } })
  return { core, directory, created }
}

const LATER = STREAMS_RECHECK_MS + 1

test('a new group: its owner asks for streams to the other members, once', () => {
  const { core, created } = owningOneSession()
  assert.equal(connects([...created, ...core.step({ kind: 'tick', nowMs: 50 })]), ['B', 'C'])
  assert.equal(connects(core.step({ kind: 'tick', nowMs: 100 })), [])
  assert.equal(connects(core.step({ kind: 'tick', nowMs: 50 + LATER })), [])
})

test('a member back with a new incarnation (a restart) gets its stream asked for again', () => {
  const { core, directory } = owningOneSession()
  core.step({ kind: 'tick', nowMs: 50 })
  const b = directory.records.get('B')
  assert.ok(b !== undefined)
  directory.records.set('B', { ...b, incarnation: b.incarnation + 1 })
  assert.ok(connects(core.step({ kind: 'tick', nowMs: 50 + LATER })).includes('B'))
  assert.equal(connects(core.step({ kind: 'tick', nowMs: 50 + 2 * LATER })), [])
})

test('a member whose record was unknown gets its stream asked for once the record arrives', () => {
  const { core, directory } = owningOneSession()
  const c = directory.records.get('C')
  assert.ok(c !== undefined)
  directory.records.delete('C')
  core.step({ kind: 'tick', nowMs: 50 })
  directory.records.set('C', c)
  assert.ok(connects(core.step({ kind: 'tick', nowMs: 50 + LATER })).includes('C'))
})

test('incarnations are looked up once per recheck period, not at every tick', () => {
  const { core, directory } = owningOneSession()
  core.step({ kind: 'tick', nowMs: 50 })
  directory.lookups = 0
  for (let t = 100; t < STREAMS_RECHECK_MS; t += 10) core.step({ kind: 'tick', nowMs: t })
  const withinPeriod = directory.lookups
  core.step({ kind: 'tick', nowMs: 50 + LATER })
  assert.ok(directory.lookups - withinPeriod >= 3, `the recheck looks up every member (${directory.lookups - withinPeriod})`)
  assert.ok(withinPeriod < 3, `${withinPeriod} lookups by ticks within one period`)
})

test.run()
