// What a deployed service's request() export returns, as the HTTP answer
// (agent/runtime/deploy-http.ts toReply). Its value arrives through JSON (the
// worker's answer), so undefined, a function or a symbol arrive as null.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { toReply } from '../../agent/runtime/deploy-http.ts'

test('an answer passes as given: status, headers (sanitised), body; a bare value is the body', () => {
  assert.equal(toReply({ status: 201, headers: { 'X-Cart': 'ok', 'bad\nname': 'x' }, body: { n: 1 } }, 'cart@1'), { status: 201, headers: { 'x-edge-service': 'cart@1', 'x-cart': 'ok' }, body: { n: 1 } })
  assert.equal(toReply('hello', 'cart@1'), { status: 200, headers: { 'x-edge-service': 'cart@1' }, body: 'hello' })
  assert.equal(toReply({ body: null }, 'cart@1').status, 200)
})

// Before, both were 200: null, and the body with the bad status dropped.
test('no answer, or a status outside 200-599, is the service\'s bug: 500 saying so', () => {
  const none = toReply(null, 'cart@1')
  assert.is(none.status, 500)
  assert.match(String((none.body as { error: string }).error), 'request() returned no answer')
  for (const status of [99, 999, 1.5, '200']) {
    const bad = toReply({ status, body: 'x' }, 'cart@1')
    assert.is(bad.status, 500, String(status))
    assert.match(String((bad.body as { error: string }).error), 'a status is a whole number 200-599')
  }
})

test.run()
