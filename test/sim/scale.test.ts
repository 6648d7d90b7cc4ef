// What lets `edge-agent sim` run 10,000 agents in one process: member tables in
// typed arrays over one shared numbering (a simulation of N agents holds N²
// member entries), and the warm start that skips the cold join's N² messages.
// Small N here; bench/sim-scale.ts measures the real sizes.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { MemberNumbers } from '../../agent/membership/numbers.ts'
import { MemberTable } from '../../agent/membership/table.ts'
import type { NodeRecord, SignedRecord } from '../../protocol/messages.ts'
import { SimCluster } from '../../sim/cluster.ts'
import { seedFor, withSeed } from './helpers.ts'

const FILE = 'test/sim/scale.test.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapUsed (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

function record (id: string): SignedRecord {
  const r: NodeRecord = {
    id, addrs: [], ip: '', http: '', services: [], load: { score: 0, sessions: 0, elu: 0, cpu: 0 },
    position: null, region: '', zone: '', incarnation: 1, seq: 0, status: 'alive'
  }
  return { record: r, bytes: new Uint8Array(1), sig: new Uint8Array(1) }
}

test('N tables of N members over one numbering cost a few dozen bytes a member entry (an object per member cost ~180)', () => {
  const n = 400
  const records = Array.from({ length: n }, (_, i) => record(`n${i}`))
  const numbers = new MemberNumbers(true)
  for (const r of records) numbers.numberOf(r.record.id)
  const before = heapUsed()
  const tables: MemberTable[] = []
  for (let t = 0; t < n; t++) {
    const table = new MemberTable(numbers)
    table.addSelf(records[t], 0)
    for (const r of records) table.applyRecord(r, 1.5)
    tables.push(table)
  }
  const perEntry = (heapUsed() - before) / (n * n)
  for (const table of tables) assert.is(table.size, n)
  console.log(`member table: ${perEntry.toFixed(1)} bytes a member entry at ${n} × ${n}`)
  assert.ok(perEntry < 40, `${perEntry.toFixed(1)} bytes a member entry`)
})

test('a warm start converges at time 0 without one message; failures are detected and a restarted node joins cold', () => withSeed(FILE, seedFor(61), (seed) => {
  const n = 200
  const before = heapUsed()
  const cluster = new SimCluster({ seed, nodes: n })
  cluster.startWarm()
  assert.is(cluster.nowMs, 0)
  assert.ok(cluster.converged(), 'converged at once')
  const sent = cluster.nodes.reduce((sum, node) => sum + node.traffic.messagesOut, 0)
  assert.is(sent, 0, 'nothing crossed the network')
  for (const node of cluster.nodes) assert.is(node.membership?.snapshot(0).length, n)
  // The whole simulator, not just the tables: per-node state included.
  const perEntry = (heapUsed() - before) / (n * n)
  console.log(`warm simulator: ${perEntry.toFixed(1)} bytes a member entry at ${n} nodes`)
  assert.ok(perEntry < 150, `${perEntry.toFixed(1)} bytes a member entry`)

  cluster.run(5_000)
  assert.ok(cluster.converged(), 'still converged after 5 s of probing')
  // Warm nodes stand for agents long in the cluster: their periodic exchange
  // and record refresh fall at random points of periods scaled to 200 members
  // (push-pull 10 s × 200/32, refresh 60 s × 200/32), not all in the first seconds.
  const pushPulls = cluster.sent.get('push-pull-request') ?? 0
  assert.ok(pushPulls < 40, `${pushPulls} push-pull exchanges in the first 5 s (a handful expected; all 200 nodes drew theirs within 10 s before)`)
  assert.is(cluster.publishes.get('record') ?? 0, 0, 'no record refreshed in the first 5 s')
  const victim = cluster.nodes[17].id
  cluster.crash(victim)
  const dead = cluster.runUntil(() => cluster.running().every((node) => cluster.statusSeenBy(node.id, victim) === 'dead'), 30_000, 100)
  assert.ok(dead, 'every survivor declared the crashed node dead')
  cluster.restart(victim)
  assert.ok(cluster.runUntil(() => cluster.converged(), 30_000, 100), 'the restarted node rejoined')
}))

test('warm starts are deterministic: the same seed gives the same tables and traffic', () => withSeed(FILE, seedFor(62), (seed) => {
  const run = (): string => {
    const cluster = new SimCluster({ seed, nodes: 60 })
    cluster.startWarm()
    cluster.run(10_000)
    cluster.crash(cluster.nodes[5].id)
    cluster.run(10_000)
    return JSON.stringify({ traffic: cluster.nodes.map((node) => node.traffic), view: cluster.view(cluster.nodes[9].id) })
  }
  assert.is(run(), run())
}))

test('CLI: --warm-start is in the replay line and the result, and refused with --real', () => {
  const cli = new URL('../../bin/edge-agent.ts', import.meta.url).pathname
  const run = spawnSync(process.execPath, [cli, 'sim', '--scenario', 'churn', '--nodes', '30', '--duration', '8', '--warm-start', '--json'], { encoding: 'utf8', timeout: 120_000 })
  assert.is(run.status, 0, run.stderr.slice(-800))
  assert.is(run.stderr.split('\n')[0], 'edge-agent sim --scenario churn --nodes 30 --duration 8 --seed 1 --warm-start --json')
  const result = JSON.parse(run.stdout) as { ok: boolean; options: { warmStart: boolean; convergedAtMs: number } }
  assert.ok(result.ok)
  assert.is(result.options.warmStart, true)
  assert.is(result.options.convergedAtMs, 0, 'converged from the start')
  const refused = spawnSync(process.execPath, [cli, 'sim', '--real', '--nodes', '3', '--warm-start'], { encoding: 'utf8', timeout: 60_000 })
  assert.is(refused.status, 2)
  assert.match(refused.stderr, '--warm-start is for virtual mode')
})

test.run()
