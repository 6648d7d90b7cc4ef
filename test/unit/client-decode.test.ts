// The client's reading of a session's view (agent/client/decode.ts): a deployed
// service's version and last error come through to EdgeClient.get() and
// `edge-agent session get`, which dropped them (a user saw "state": null and no reason).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { decodeState } from '../../agent/client/decode.ts'

const VIEW = { sessionId: 'cart:00000000000000aa', service: 'cart', epoch: 2, index: 7, state: null, lastClientSeq: 5, owner: null, group: [] }

test('serviceVersion and serviceError are kept when the agent sends them, absent when not', () => {
  const deployed = decodeState({ ...VIEW, serviceVersion: '2.0.0', serviceError: 'cart@2.0.0: the worker is still loading the package' })
  assert.is(deployed.serviceVersion, '2.0.0')
  assert.match(String(deployed.serviceError), 'still loading')
  assert.is(decodeState({ ...VIEW, serviceVersion: null }).serviceVersion, null)
  const builtIn = decodeState({ ...VIEW, service: 'log', sessionId: 'log:00000000000000aa' })
  assert.not.ok('serviceVersion' in builtIn)
  assert.not.ok('serviceError' in builtIn)
})

test.run()
