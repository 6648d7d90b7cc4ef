// Reads of a session's state (GET /v1/sessions/{id}): one serialisation per
// index however many read it (StateTexts), and each answer charged to the
// session's byte budget (HttpLimits.chargeRead). 600 concurrent reads of a 1 MB
// state used to stall the owner 7 s, long enough for its group to take the
// session over.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HttpLimits } from '../../agent/runtime/http-limits.ts'
import { StateTexts } from '../../agent/runtime/sessions-http.ts'
import { TERMINAL_LIMITS_DEFAULT } from '../../agent/config.ts'

test('reads at one index share one serialisation; a new index, or another session, serialises again', () => {
  const texts = new StateTexts()
  const state = { items: Array.from({ length: 1000 }, (_, i) => `item-${i}`) }
  const body = { sessionId: 's', epoch: 1, index: 7, owner: null, state, lastClientSeq: 3 }
  const answers = Array.from({ length: 100 }, () => texts.reply('s', { status: 200, body, headers: {} }))
  assert.is(texts.serialised, 1)
  for (const a of answers) assert.equal(JSON.parse(String(a.raw)), JSON.parse(JSON.stringify(body)))
  assert.is(answers[0].headers?.['content-type'], 'application/json')
  state.items.push('more')
  texts.reply('s', { status: 200, body: { ...body, index: 8 }, headers: {} })
  texts.reply('t', { status: 200, body: { ...body, sessionId: 't' }, headers: {} })
  assert.is(texts.serialised, 3)
  const refused = { status: 503, body: { error: 'x' } }
  assert.is(texts.reply('s', refused), refused, 'anything but a 200 with a state passes through')
})

test('a read is charged its bytes to the session: within the burst it passes, past it 429 naming session-bytes; a state bigger than the burst is still readable', () => {
  const exceeded: string[] = []
  const limits = new HttpLimits({ ...TERMINAL_LIMITS_DEFAULT, sessionBytesPerS: 1_000_000 }, (limit) => exceeded.push(limit))
  assert.is(limits.chargeRead('s', 900_000, 0), null)
  assert.is(limits.chargeRead('s', 900_000, 0), null)
  const third = limits.chargeRead('s', 900_000, 0)
  assert.is(third?.status, 429)
  assert.is((third?.body as { limit: string }).limit, 'session-bytes')
  assert.equal(exceeded, ['session-bytes'])
  assert.is(limits.chargeRead('other', 900_000, 0), null, 'per session')
  // 16 MB, over the 2 MB burst: costs the whole burst, once it has refilled.
  assert.is(limits.chargeRead('big', 16_000_000, 0), null)
  assert.is(limits.chargeRead('big', 16_000_000, 1_000)?.status, 429)
  assert.is(limits.chargeRead('big', 16_000_000, 2_100), null)
})

test.run()
