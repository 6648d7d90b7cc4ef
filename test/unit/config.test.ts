import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { buildConfig, ConfigError, parseHostPort, parsePosition, parseService, parseServices } from '../../agent/config.ts'
import { membershipProfile } from '../../agent/membership/config.ts'

function refusal (fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    assert.instance(error, ConfigError)
    return (error as Error).message
  }
  throw new Error('expected a ConfigError')
}

test('defaults: lan profile, loopback HTTP on 7700, all interfaces on 7701', () => {
  const config = buildConfig({}, {})
  assert.is(config.profile, 'lan')
  assert.equal(config.membership, membershipProfile('lan'))
  assert.equal(config.http, { host: '127.0.0.1', port: 7700 })
  assert.equal(config.listen, ['/ip4/0.0.0.0/tcp/7701'])
  assert.equal(config.bootstrap, [])
  assert.is(config.cluster, 'default')
})

test('a flag beats the config file, which beats the profile', () => {
  const config = buildConfig(
    { profile: 'wan', region: 'eu', zone: 'z1', membership: { probeIntervalMs: 2_000 } },
    { zone: 'z2', http: '127.0.0.1:0' }
  )
  assert.is(config.profile, 'wan')
  assert.is(config.region, 'eu')
  assert.is(config.zone, 'z2')
  assert.is(config.membership.probeIntervalMs, 2_000)
  assert.is(config.membership.probeTimeoutMs, membershipProfile('wan').probeTimeoutMs)
  assert.equal(config.http, { host: '127.0.0.1', port: 0 })
})

test('the profile flag picks the defaults even when the file names another', () => {
  assert.is(buildConfig({ profile: 'wan' }, { profile: 'local' }).membership.probeIntervalMs, membershipProfile('local').probeIntervalMs)
})

test('services parse as name[@version][:capacity] with defaults', () => {
  assert.equal(parseService('log'), { name: 'log', version: '1', capacity: 100 })
  assert.equal(parseService('kv@2'), { name: 'kv', version: '2', capacity: 100 })
  assert.equal(parseService('video@1.3:20'), { name: 'video', version: '1.3', capacity: 20 })
  assert.equal(parseServices('log, kv@2:5'), [{ name: 'log', version: '1', capacity: 100 }, { name: 'kv', version: '2', capacity: 5 }])
  assert.equal(parseServices([{ name: 'cart', capacity: 3 }]), [{ name: 'cart', version: '1', capacity: 3 }])
})

test('bad services are refused with the reason', () => {
  assert.match(refusal(() => parseService('Bad Name')), 'service name must be')
  assert.match(refusal(() => parseService('kv:-1')), 'service must be name[@version][:capacity]')
  assert.match(refusal(() => parseServices('log,log')), 'listed twice')
  assert.match(refusal(() => parseService({ name: 'x', capacity: 1.5 })), 'whole number of sessions')
  // A typo or a wrong type was ignored or coerced, silently.
  assert.match(refusal(() => parseService({ name: 'kv', capacty: 500 })), "unknown key 'capacty' in service")
  assert.match(refusal(() => parseService({ name: 'kv', capacity: '500' })), 'capacity of kv must be a number')
  assert.match(refusal(() => parseService({ name: 'kv', version: 2 })), 'version of kv must be a string')
  assert.match(refusal(() => parseService({ capacity: 5 })), "needs a 'name' string")
})

test('positions: "lat,lon" or an object, in range', () => {
  assert.equal(parsePosition('40.4,-3.7'), { lat: 40.4, lon: -3.7 })
  assert.equal(parsePosition({ lat: 1, lon: 2 }), { lat: 1, lon: 2 })
  assert.match(refusal(() => parsePosition('91,0')), 'latitude must be between -90 and 90 (got 91)')
  assert.match(refusal(() => parsePosition('0,181')), 'longitude must be between -180 and 180')
  assert.match(refusal(() => parsePosition('north')), 'must be "lat,lon"')
  assert.equal(parsePosition('-33.9,+151.2'), { lat: -33.9, lon: 151.2 })
  for (const bad of ['0x10,0b101', '1,2,3', ' ,3']) assert.match(refusal(() => parsePosition(bad)), 'must be "lat,lon"')
  for (const bad of [{ lat: null, lon: null }, { lat: '', lon: true }, { lat: 1, lon: 2, alt: 3 }]) assert.match(refusal(() => parsePosition(bad)), 'must be "lat,lon" or {"lat"')
  assert.match(refusal(() => buildConfig({ http: ['127.0.0.1:22002'] }, {})), `'http' must be "host:port"`)
})

test('host:port accepts names, IPv4, bracketed IPv6 and port 0; refuses the rest', () => {
  assert.equal(parseHostPort('localhost:80', 'http'), { host: 'localhost', port: 80 })
  assert.equal(parseHostPort('[::1]:0', 'http'), { host: '::1', port: 0 })
  assert.match(refusal(() => parseHostPort('127.0.0.1', 'http')), "'http' must be host:port")
  assert.match(refusal(() => parseHostPort('127.0.0.1:70000', 'http')), "'http' must be host:port")
})

test('unknown settings and bad values are refused, naming the setting', () => {
  assert.match(refusal(() => buildConfig({ colour: 'blue' }, {})), "unknown setting 'colour' in config file")
  assert.match(refusal(() => buildConfig({ membership: { probeIntervalMillis: 1 } }, {})), "unknown membership setting 'probeIntervalMillis'")
  assert.match(refusal(() => buildConfig({ membership: { suspicionMult: 4 } }, {})), "membership setting 'suspicionMult' was replaced: the minimum suspicion timeout is now 'suspicionMinMs'")
  assert.match(refusal(() => buildConfig({ membership: { probeTimeoutMs: 1250 } }, {})), "'probeTimeoutMs' must be less than 'probeIntervalMs' (got 1250 >= 1250)")
  assert.match(refusal(() => buildConfig({}, { profile: 'fast' })), "'profile' must be one of lan, wan, local")
  assert.match(refusal(() => buildConfig({}, { bootstrap: 'example.com:7701' })), "'bootstrap' entry is not a multiaddr")
  assert.match(refusal(() => buildConfig({}, { bootstrap: '/ip4/127.0.0.1/tcp/7701/p2p/bogus' })), 'has no peer id after /p2p/')
  assert.equal(buildConfig({}, { bootstrap: '/ip4/127.0.0.1/tcp/7701/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK' }).bootstrap, ['/ip4/127.0.0.1/tcp/7701/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK'])
  assert.match(refusal(() => buildConfig({}, { region: 'eu west' })), "'region' must be up to 64")
  assert.match(refusal(() => buildConfig({ json: 'yes' }, {})), "'json' must be true or false")
})

test.run()
