import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cgroup2Mount, inCgroup, parseNftCounters, sentRate } from '../../bench/sent-bytes.ts'

// What `nft -j list table inet t` prints (nftables 1.0.6), trimmed to the shapes that matter.
const LISTING = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6', json_schema_version: 1 } },
    { table: { family: 'inet', name: 't', handle: 1 } },
    { chain: { family: 'inet', table: 't', name: 'out', handle: 1, type: 'filter', hook: 'output', prio: 0, policy: 'accept' } },
    { rule: { family: 'inet', table: 't', chain: 'out', handle: 2, comment: 'serf0', expr: [{ match: { op: '==', left: { socket: { key: 'cgroupv2', level: 2 } }, right: 'unified/b/serf0' } }, { counter: { packets: 12, bytes: 1536 } }] } },
    { rule: { family: 'inet', table: 't', chain: 'out', handle: 3, comment: 'agent1', expr: [{ match: { op: '==', left: { socket: { key: 'cgroupv2', level: 2 } }, right: 'unified/b/agent1' } }, { counter: { packets: 0, bytes: 0 } }] } },
    { rule: { family: 'inet', table: 't', chain: 'out', handle: 4, expr: [{ counter: { packets: 5, bytes: 500 } }] } },
    { rule: { family: 'inet', table: 't', chain: 'out', handle: 5, comment: 'nocounter', expr: [{ accept: null }] } }
  ]
})

test('parseNftCounters() reads each commented rule\'s counter', () => {
  const counters = parseNftCounters(LISTING)
  assert.equal(counters.get('serf0'), { packets: 12, bytes: 1536 })
  assert.equal(counters.get('agent1'), { packets: 0, bytes: 0 })
  assert.equal(counters.size, 2, 'a rule without a comment, or without a counter, is left out')
})

test('parseNftCounters() adds up two rules with the same comment', () => {
  const rule = (bytes: number): unknown => ({ rule: { comment: 'x', expr: [{ counter: { packets: 1, bytes } }] } })
  assert.equal(parseNftCounters(JSON.stringify({ nftables: [rule(100), rule(28)] })).get('x'), { packets: 2, bytes: 128 })
})

test('parseNftCounters() never throws on bad input', () => {
  for (const bad of ['', 'not json', 'null', '[]', '{"nftables":3}', '{"nftables":[null,1,{"rule":null},{"rule":{"comment":"a","expr":[{"counter":{"packets":"1","bytes":2}}]}}]}']) {
    assert.equal(parseNftCounters(bad).size, 0, bad)
  }
})

test('cgroup2Mount() finds the cgroup2 hierarchy, hybrid or unified', () => {
  const hybrid = 'tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n'
  assert.is(cgroup2Mount(hybrid), '/sys/fs/cgroup/unified')
  assert.is(cgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n'), '/sys/fs/cgroup')
  assert.is(cgroup2Mount('proc /proc proc rw 0 0\n'), null)
})

test('inCgroup() writes the pid to cgroup.procs and execs the command in place (same pid)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sent-bytes-test-'))
  try {
    const { file, args } = inCgroup(dir, 'sh', ['-c', 'echo $$; echo "$1"', 'sh', 'an arg with spaces'])
    const run = spawnSync(file, args, { encoding: 'utf8' })
    assert.is(run.status, 0, run.stderr)
    const [pid, arg] = run.stdout.trim().split('\n')
    assert.is(readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim(), pid, 'the pid that joined is the command\'s own')
    assert.is(arg, 'an arg with spaces')
    const failed = spawnSync(...((): [string, string[]] => { const w = inCgroup(join(dir, 'missing'), 'true', []); return [w.file, w.args] })(), { encoding: 'utf8' })
    assert.is.not(failed.status, 0, 'a cgroup that cannot be joined stops the command from running')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('sentRate() is the per-second difference per process, and names the silent ones', () => {
  const before = new Map([['a', { packets: 10, bytes: 1000 }], ['b', { packets: 5, bytes: 500 }], ['c', { packets: 7, bytes: 700 }]])
  const after = new Map([['a', { packets: 30, bytes: 3000 }], ['b', { packets: 25, bytes: 4500 }], ['c', { packets: 7, bytes: 700 }], ['d', { packets: 4, bytes: 400 }]])
  const rate = sentRate(before, after, ['a', 'b', 'c', 'd'], 2)
  assert.equal(rate.bytesPerSecPerNode, { median: 200, min: 0, max: 2000, n: 4 }, '0, 200, 1000, 2000 B/s: the lower median')
  assert.equal(rate.packetsPerSecPerNode.max, 10)
  assert.is(rate.totalBytesPerSec, (2000 + 4000 + 0 + 400) / 2, 'a name missing from the first reading counts from zero')
  assert.equal(rate.silent, ['c'])
})

test.run()
