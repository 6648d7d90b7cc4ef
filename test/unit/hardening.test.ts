// The pieces of hardening that need no network: token buckets, the cluster key
// file, the HTTP rate limiter, token comparison, and how limits are named.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { IncomingMessage } from 'node:http'
import { BucketMap, TokenBucket } from '../../agent/core/token-bucket.ts'
import { clusterKeyId, formatSwarmKey, generateClusterKey, parseSwarmKey } from '../../agent/net/cluster-key.ts'
import { checkClusterKeys } from '../../agent/net/keyring.ts'
import { clusterKeyProblem, packageKeyOf } from '../../agent/runtime/package.ts'
import { HttpLimits } from '../../agent/runtime/http-limits.ts'
import type { LimitName } from '../../agent/runtime/http-limits.ts'
import { limitOfDecodeReason } from '../../agent/runtime/metrics.ts'
import { tokenHashesEqual, hashToken } from '../../agent/runtime/sessions-host.ts'
import { constantTimeEqual } from '../../agent/sessions/sessions.ts'
import { buildConfig, ConfigError, parsePeerListFile, PEER_LIMITS_DEFAULT, TERMINAL_LIMITS_DEFAULT } from '../../agent/config.ts'
import { decode, encode } from '../../protocol/codec.ts'
import { MAX_UPDATES } from '../../protocol/limits.ts'

test('TokenBucket: a burst, then the sustained rate, and the wait until the next token', () => {
  const bucket = new TokenBucket({ ratePerS: 10, burst: 20 }, 0)
  for (let i = 0; i < 20; i++) assert.ok(bucket.take(1, 0).ok, `burst token ${i}`)
  assert.equal(bucket.take(1, 0), { ok: false, waitMs: 100 })
  assert.ok(bucket.take(1, 100).ok, 'one token after 100 ms at 10/s')
  assert.not.ok(bucket.take(1, 150).ok)
  assert.ok(bucket.take(5, 650).ok, 'five tokens after another 500 ms')
  assert.equal(bucket.take(21, 10_000), { ok: false, waitMs: Infinity }, 'more than the burst never fits')
})

test('BucketMap: keys are independent; a flood of fresh keys stays within maxKeys', () => {
  const map = new BucketMap({ ratePerS: 1, burst: 1 }, 100)
  assert.ok(map.take('a', 1, 0).ok)
  assert.not.ok(map.take('a', 1, 0).ok)
  assert.ok(map.take('b', 1, 0).ok, "b has its own bucket")
  for (let i = 0; i < 10_000; i++) map.take(`k${i}`, 1, 0)
  assert.ok(map.size <= 100, `tracked ${map.size}`)
})

test('cluster key: what keygen writes parses back; damaged files are refused with the reason', () => {
  const psk = generateClusterKey()
  const parsed = parseSwarmKey(formatSwarmKey(psk))
  assert.ok(parsed.ok)
  if (parsed.ok) assert.equal([...parsed.psk], [...psk])
  const cases: Array<[string, string]> = [
    ['', 'expected 3 lines'],
    ['/key/swarm/psk/2.0.0/\n/base16/\n' + '0'.repeat(64), 'the first line must be /key/swarm/psk/1.0.0/'],
    ['/key/swarm/psk/1.0.0/\n/base64/\n' + '0'.repeat(64), 'the second line must be /base16/'],
    ['/key/swarm/psk/1.0.0/\n/base16/\n' + '0'.repeat(63), 'the third line must be 64 hex digits (got 63 characters)'],
    ['/key/swarm/psk/1.0.0/\n/base16/\n' + 'g'.repeat(64), 'the third line must be 64 hex digits'],
    ['/key/swarm/psk/1.0.0/\n/base16/\n' + '0'.repeat(64) + '\nextra', 'expected 3 lines']
  ]
  for (const [text, reason] of cases) {
    const result = parseSwarmKey(text)
    assert.not.ok(result.ok, JSON.stringify(text))
    if (!result.ok) assert.match(result.reason, reason)
  }
  // go-libp2p writes CRLF on some systems and no final newline on others.
  assert.ok(parseSwarmKey('/key/swarm/psk/1.0.0/\r\n/base16/\r\n' + 'ab'.repeat(32)).ok)
})

function request (remoteAddress: string, path: string, headers: Record<string, string> = {}): [IncomingMessage, URL] {
  return [{ socket: { remoteAddress }, headers } as unknown as IncomingMessage, new URL(path, 'http://agent')]
}

test('HttpLimits: per session, per terminal, 429 with Retry-After naming the limit, and counted', () => {
  const exceeded: LimitName[] = []
  const limits = new HttpLimits({ terminalRequestsPerS: 100, terminalBytesPerS: 10_000, sessionRequestsPerS: 5, sessionBytesPerS: 1_000 }, (l) => exceeded.push(l))
  const deltas = '/v1/sessions/log:00ff/deltas'
  for (let i = 0; i < 10; i++) assert.is(limits.admit(...request('10.0.0.1', deltas), 0), null, `burst request ${i}`)
  const refused = limits.admit(...request('10.0.0.1', deltas), 0)
  assert.is(refused?.status, 429)
  assert.is(refused?.headers?.['retry-after'], '1')
  assert.match(String((refused?.body as { error: string }).error), 'rate limit: session log:00ff is over 5 requests/s (limits.sessionRequestsPerS)')
  assert.equal(exceeded, ['session-requests'])
  // Another session from the same terminal, and the same session URL-encoded, share nothing / everything.
  assert.is(limits.admit(...request('10.0.0.1', '/v1/sessions/log:00aa/deltas'), 0), null)
  assert.is(limits.admit(...request('10.0.0.2', '/v1/sessions/log%3A00ff'), 0)?.status, 429, 'the session bucket does not depend on the terminal')
  // A resume names its session in the token.
  assert.is(limits.admit(...request('10.0.0.3', '/v1/sessions', { authorization: `Bearer log:00ff~${'0'.repeat(64)}` }), 0)?.status, 429)
  // The terminal's own bucket: 200 requests at once, then refused whatever the path.
  for (let i = 0; i < 200; i++) limits.admit(...request('10.0.0.9', '/v1/members'), 0)
  assert.is(limits.admit(...request('10.0.0.9', '/v1/health'), 0)?.status, 429)
  assert.ok(exceeded.includes('terminal-requests'))
  // Loopback clients (a local proxy, many terminals) only meet their sessions' limits.
  for (let i = 0; i < 500; i++) assert.is(limits.admit(...request('127.0.0.1', '/v1/members'), 0), null)
  assert.is(limits.admit(...request('::1', '/v1/sessions/log:00ff/deltas'), 0)?.status, 429)
  // Bytes: a body beyond the burst is 413 (it can never pass), within it 429 once spent.
  assert.is(limits.admit(...request('10.0.0.4', '/v1/sessions/log:01/deltas', { 'content-length': '2001' }), 0)?.status, 413)
  assert.is(limits.admit(...request('10.0.0.4', '/v1/sessions/log:02/deltas', { 'content-length': '1500' }), 0), null)
  assert.is(limits.admit(...request('10.0.0.4', '/v1/sessions/log:02/deltas', { 'content-length': '1500' }), 0)?.status, 429)
  assert.ok(exceeded.includes('session-bytes'))
  // A batch is one request of its session, with its whole body.
  assert.is(limits.admit(...request('10.0.0.4', '/v1/sessions/log:03/batch', { 'content-length': '1500' }), 0), null)
  assert.is(limits.admit(...request('10.0.0.5', '/v1/sessions/log:03/batch', { 'content-length': '1500' }), 0)?.status, 429)
  assert.is(limits.admit(...request('10.0.0.4', '/v1/sessions/log:04/batch', { 'content-length': '2001' }), 0)?.status, 413)
  // Time refills.
  assert.is(limits.admit(...request('10.0.0.1', deltas), 1_000), null)
})

test('token hashes compare equal only when equal, in constant time (crypto and plain)', () => {
  const a = hashToken('log:1~' + 'a'.repeat(64))
  const b = hashToken('log:1~' + 'b'.repeat(64))
  for (const equal of [tokenHashesEqual, constantTimeEqual]) {
    assert.ok(equal(a, a))
    assert.not.ok(equal(a, b))
    assert.not.ok(equal(a, a.slice(0, 63)))
    assert.not.ok(equal(a, ''))
    assert.not.ok(equal('', a))
  }
})

test('decode refusals that broke a limit are named by it', () => {
  const frame = encode({ type: 'gossip', updates: [] })
  // The updates count is the varint right after the header: claim one too many.
  const bad = new Uint8Array([...frame.slice(0, frame.length - 1), 0x81, 0x02])
  const decoded = decode(bad)
  assert.not.ok(decoded.ok)
  if (!decoded.ok) {
    assert.match(decoded.reason, `count 257 exceeds the limit of ${MAX_UPDATES}`)
    assert.is(limitOfDecodeReason(decoded.reason), 'records-per-exchange')
  }
  assert.is(limitOfDecodeReason('frame of 300 bytes exceeds the 256-byte limit for ping'), 'frame-size')
  assert.is(limitOfDecodeReason('unknown message type 99'), null)
})

test('config: cluster key, allowlist, TLS and limits are checked by name', () => {
  const config = buildConfig({ clusterKey: '/etc/edge/cluster.key', limits: { sessionRequestsPerS: 50 } }, { allowPeers: '12D3KooWAbCdEfGhJkLmNpQrStUvWxYz123456789abcdefghijk' })
  assert.is(config.clusterKey, '/etc/edge/cluster.key')
  assert.equal(config.allowPeers, ['12D3KooWAbCdEfGhJkLmNpQrStUvWxYz123456789abcdefghijk'])
  assert.equal(config.limits, { ...TERMINAL_LIMITS_DEFAULT, ...PEER_LIMITS_DEFAULT, sessionRequestsPerS: 50 })
  const refusal = (fn: () => unknown): string => {
    try { fn() } catch (error) { assert.instance(error, ConfigError); return (error as Error).message }
    return assert.unreachable('expected a ConfigError') as never
  }
  assert.match(refusal(() => buildConfig({}, { tlsCert: 'a.pem' })), "'tlsCert' and 'tlsKey' go together")
  assert.match(refusal(() => buildConfig({}, { allowPeers: 'not-a-peer' })), "'allowPeers' entry is not a peer id")
  assert.match(refusal(() => buildConfig({ limits: { sessionRequestsPerS: 0 } }, {})), "'limits.sessionRequestsPerS' must be a whole number of requests/s")
  assert.match(refusal(() => buildConfig({ limits: { perTerminal: 1 } }, {})), "unknown limits setting 'perTerminal'")
  assert.equal(parsePeerListFile('# ops team\n12D3KooWAbCdEfGhJkLmNpQrStUvWxYz123456789abcdefghijk  # box 1\n\n', 'allow.txt'), ['12D3KooWAbCdEfGhJkLmNpQrStUvWxYz123456789abcdefghijk'])
  assert.match(refusal(() => parsePeerListFile('hello\n', 'allow.txt')), 'allowlist file allow.txt')
})

test('config: previous cluster keys are file paths, at most 4, and only beside a cluster key', () => {
  assert.equal(buildConfig({ clusterKey: 'new.key', clusterKeyPrevious: ['old.key'] }, {}).clusterKeyPrevious, ['old.key'])
  assert.equal(buildConfig({ clusterKey: 'new.key' }, { clusterKeyPrevious: 'a.key, b.key' }).clusterKeyPrevious, ['a.key', 'b.key'])
  assert.equal(buildConfig({}, {}).clusterKeyPrevious, [])
  const refusal = (fn: () => unknown): string => {
    try { fn() } catch (error) { assert.instance(error, ConfigError); return (error as Error).message }
    return assert.unreachable('expected a ConfigError') as never
  }
  assert.match(refusal(() => buildConfig({ clusterKeyPrevious: ['old.key'] }, {})), "'clusterKeyPrevious' needs 'clusterKey'")
  assert.match(refusal(() => buildConfig({ clusterKey: 'k', clusterKeyPrevious: ['1', '2', '3', '4', '5'] }, {})), 'at most 4')
  assert.match(refusal(() => buildConfig({ clusterKey: 'k', clusterKeyPrevious: [7] }, {})), "'clusterKeyPrevious' must be a list of file paths")
})

test('cluster keys: a key given twice, a key of the wrong size or too many are refused; ids are 16 hex digits, the same as sealed packages carry', () => {
  const a = generateClusterKey()
  const b = generateClusterKey()
  assert.not.throws(() => checkClusterKeys({ primary: a, previous: [b] }))
  assert.throws(() => checkClusterKeys({ primary: a, previous: [a] }), /given twice/)
  assert.throws(() => checkClusterKeys({ primary: a, previous: [b, b] }), /given twice/)
  assert.throws(() => checkClusterKeys({ primary: a.subarray(0, 16), previous: [] }), /32 bytes/)
  assert.throws(() => checkClusterKeys({ primary: a, previous: Array.from({ length: 5 }, () => generateClusterKey()) }), /at most 4/)
  assert.match(clusterKeyId(a), /^[0-9a-f]{16}$/)
  assert.is.not(clusterKeyId(a), clusterKeyId(b))
  assert.is(clusterKeyId(a), packageKeyOf(a).id)
  // A package sealed under either key of a ring opens; under another key it is refused naming the ring's ids.
  assert.is(clusterKeyProblem(packageKeyOf(b).id, [packageKeyOf(a), packageKeyOf(b)]), null)
  assert.match(String(clusterKeyProblem(packageKeyOf(generateClusterKey()).id, [packageKeyOf(a), packageKeyOf(b)])), `this agent's are ${clusterKeyId(a)}, ${clusterKeyId(b)}`)
})

test.run()
