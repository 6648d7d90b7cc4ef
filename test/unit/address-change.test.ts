// addressChange (agent-setup.ts): what an agent's record should say once the
// box's addresses change under a 0.0.0.0 listener.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { addressChange } from '../../agent/runtime/agent-setup.ts'

const record = { addrs: ['/ip4/127.0.0.1/tcp/7701', '/ip4/10.0.0.4/tcp/7701'], ip: '10.0.0.4' }

test('a lost address: the new ones, what was lost, the IP moved to one the box has', () => {
  assert.equal(addressChange(['/ip4/127.0.0.1/tcp/7701', '/ip4/10.0.0.200/tcp/7701'], record), {
    addrs: ['/ip4/127.0.0.1/tcp/7701', '/ip4/10.0.0.200/tcp/7701'], lost: ['/ip4/10.0.0.4/tcp/7701'], ip: '10.0.0.200'
  })
})

test('an added address, even one listed first: announced, nothing lost, the IP stays', () => {
  assert.equal(addressChange(['/ip4/127.0.0.1/tcp/7701', '/ip4/172.17.0.1/tcp/7701', '/ip4/10.0.0.4/tcp/7701'], record), {
    addrs: ['/ip4/127.0.0.1/tcp/7701', '/ip4/172.17.0.1/tcp/7701', '/ip4/10.0.0.4/tcp/7701'], lost: [], ip: '10.0.0.4'
  })
})

test('the same addresses in another order, or loopback alone: nothing to say', () => {
  assert.is(addressChange(['/ip4/10.0.0.4/tcp/7701', '/ip4/127.0.0.1/tcp/7701'], record), null)
  assert.is(addressChange(['/ip4/127.0.0.1/tcp/7701'], record), null)
  assert.is(addressChange([], record), null)
})

test.run()
