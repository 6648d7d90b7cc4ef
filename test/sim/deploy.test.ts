// Package distribution in virtual time (sim/deploy-cluster.ts): the real
// Distribution core on every node. Each scenario prints its seed on failure.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DeployCluster, specTargets } from '../../sim/deploy-cluster.ts'
import type { SimNodeSpec, SimPackage } from '../../sim/deploy-cluster.ts'
import { RETIRE_CHECK_MS, RETIRE_DRAIN_MS } from '../../agent/deploy/distribution.ts'
import { SeededRandom } from '../../agent/core/random.ts'
import { seedFor, withSeed } from './helpers.ts'

const FILE = 'test/sim/deploy.test.ts'
const CONFIG = { pullIntervalMs: 2_000, fetchTimeoutMs: 5_000, loadThreshold: 0.9, retireAfterMs: 300_000 }

// 12 nodes in three regions; eu and us each have data-centre nodes, ap has none;
// n11 is overloaded.
const NODES: SimNodeSpec[] = [
  { id: 'n00', region: 'eu', zone: 'dc1', load: 0.4 },
  { id: 'n01', region: 'eu', zone: 'dc2', load: 0.2 },
  { id: 'n02', region: 'eu', zone: 'edge' },
  { id: 'n03', region: 'eu', zone: 'edge' },
  { id: 'n04', region: 'us', zone: 'dc', load: 0.3 },
  { id: 'n05', region: 'us', zone: 'edge' },
  { id: 'n06', region: 'us', zone: 'edge' },
  { id: 'n07', region: 'us', zone: 'edge' },
  { id: 'n08', region: 'ap', zone: 'edge', load: 0.5 },
  { id: 'n09', region: 'ap', zone: 'edge', load: 0.1 },
  { id: 'n10', region: 'ap', zone: 'edge', load: 0.6 },
  { id: 'n11', region: 'ap', zone: 'edge', load: 0.95 }
]

function cart (policy: string, version = '1.0.0', issuedAtMs = 1, verdict: SimPackage['verdict'] = 'ok'): SimPackage {
  const hash = (version + policy + verdict).split('').map((c) => c.charCodeAt(0).toString(16)).join('').padEnd(64, '0').slice(0, 64)
  return { ref: { name: 'cart', version, hash, policy, issuedAtMs }, bytes: 2_000, verdict }
}

function targetsOf (policy: string, nodes: SimNodeSpec[]): string[] {
  return specTargets(policy, nodes, 'cart', CONFIG.loadThreshold)
}

function advertisers (cluster: DeployCluster): string[] {
  return cluster.ids().filter((id) => cluster.advertises(id, 'cart') !== null)
}

function runners (cluster: DeployCluster, hash: string): string[] {
  return cluster.ids().filter((id) => cluster.running(id).includes(hash))
}

function everyTargetAdvertises (cluster: DeployCluster, targets: string[], version: string): () => boolean {
  return () => targets.every((id) => cluster.advertises(id, 'cart') === version)
}

for (const policy of ['all', 'nodes:n02,n07', 'regions:eu,ap', 'hub-per-region', 'replicas:3', 'auto']) {
  test(`deploy with ${policy}: exactly the targets run and advertise cart@1.0.0`, () => withSeed(FILE, seedFor(71), (seed) => {
    const cluster = new DeployCluster({ seed, nodes: NODES, config: CONFIG })
    const pkg = cart(policy)
    const targets = targetsOf(policy, NODES)
    assert.ok(cluster.deploy('n05', pkg))
    assert.ok(cluster.scheduler.runUntilTrue(everyTargetAdvertises(cluster, targets, '1.0.0'), 10_000, 10), `every target of ${policy} advertises within 10 s`)
    const tookMs = cluster.nowMs
    // Pull rounds later, still nobody else runs it.
    cluster.scheduler.runUntil(cluster.nowMs + 20_000)
    assert.equal(runners(cluster, pkg.ref.hash), targets)
    if (policy === 'hub-per-region') assert.equal(targets, ['n01', 'n04', 'n09'])
    if (policy === 'auto') assert.not.ok(targets.includes('n11'))
    // Pushes reach live targets well before the first pull round.
    assert.ok(tookMs < 1_000, `${policy} took ${tookMs} ms`)
  }))
}

test('a node down during the deploy catches up by pull after it restarts', () => withSeed(FILE, seedFor(72), (seed) => {
  const cluster = new DeployCluster({ seed, nodes: NODES, config: CONFIG })
  cluster.crash('n06')
  const pkg = cart('all')
  cluster.deploy('n00', pkg)
  cluster.scheduler.runUntil(5_000)
  assert.equal(cluster.running('n06'), [])
  assert.is(cluster.running('n07').length, 1)
  const back = cluster.nowMs
  cluster.restart('n06')
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises('n06', 'cart') === '1.0.0', back + 30_000, 10), 'n06 runs cart after pulling')
  const since = cluster.runningSince.get(pkg.ref.hash)?.get('n06') ?? Infinity
  // It learns of the deploy at its first pull (within one interval), then fetches.
  assert.ok(since - back <= CONFIG.pullIntervalMs + 100, `caught up ${since - back} ms after restart`)
}))

test('a newer version spreads by pull to nodes that missed its push, and both versions stay held', () => withSeed(FILE, seedFor(73), (seed) => {
  const cluster = new DeployCluster({ seed, nodes: NODES, config: CONFIG })
  const v1 = cart('all', '1.0.0', 1)
  cluster.deploy('n00', v1)
  cluster.scheduler.runUntil(2_000)
  cluster.crash('n03')
  const v2 = cart('all', '2.0.0', 2)
  cluster.deploy('n01', v2)
  cluster.scheduler.runUntil(6_000)
  cluster.restart('n03')
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises('n03', 'cart') === '2.0.0', 40_000, 10))
  assert.equal(cluster.running('n03').sort(), [v1.ref.hash, v2.ref.hash].sort())
}))

test('an agent that runs a service (fetched on demand) keeps it current when a newer version targets others', () => withSeed(FILE, seedFor(76), (seed) => {
  const cluster = new DeployCluster({ seed, nodes: NODES, config: CONFIG })
  const v1 = cart('nodes:n00,n01', '1.0.0', 1)
  cluster.deploy('n00', v1)
  cluster.scheduler.runUntil(2_000)
  cluster.need('n09', 'cart')
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises('n09', 'cart') === '1.0.0', 20_000, 10))
  const v2 = cart('nodes:n00,n01', '2.0.0', 2)
  cluster.deploy('n01', v2)
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises('n09', 'cart') === '2.0.0', 40_000, 10), 'n09 follows to 2.0.0')
  // Nobody that never ran cart picked it up.
  assert.equal(runners(cluster, v2.ref.hash), ['n00', 'n01', 'n09'])
}))

test('hub crash: a node that needs the service fetches from another holder', () => withSeed(FILE, seedFor(74), (seed) => {
  const cluster = new DeployCluster({ seed, nodes: NODES, config: CONFIG })
  // Held by eu's hub n01 and by n04 (us).
  const pkg = cart('nodes:n01,n04')
  cluster.deploy('n01', pkg)
  cluster.scheduler.runUntil(3_000)
  assert.equal(runners(cluster, pkg.ref.hash), ['n01', 'n04'])
  // n01 dies; the tables still list it for 3 s (detection lag).
  cluster.crash('n01', 3_000)
  const asked = cluster.nowMs
  cluster.need('n02', 'cart')
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.running('n02').length === 1, asked + 30_000, 10), 'n02 gets the package')
  const tookMs = (cluster.runningSince.get(pkg.ref.hash)?.get('n02') ?? Infinity) - asked
  // The hub is tried first and times out (2 s dial timeout), then n04 serves.
  assert.ok(tookMs >= 2_000 && tookMs < 5_000, `fetched after ${tookMs} ms`)
}))

test('forged and tampered packages are refused everywhere and never run', () => withSeed(FILE, seedFor(75), (seed) => {
  const cluster = new DeployCluster({ seed, nodes: NODES, config: CONFIG })
  assert.not.ok(cluster.deploy('n00', cart('all', '6.6.6', 9, 'forged')))
  // A hostile node pushes a tampered bundle straight to others.
  const tampered = cart('all', '6.6.7', 9, 'tampered')
  for (const to of ['n02', 'n03', 'n04']) cluster.pushFrom('n09', to, tampered)
  cluster.scheduler.runUntil(20_000)
  for (const id of cluster.ids()) assert.equal(cluster.running(id), [], id)
  assert.equal(cluster.refused.map((r) => `${r.node}:${r.verdict}:${r.via}`).sort(), ['n00:forged:deploy', 'n02:tampered:push', 'n03:tampered:push', 'n04:tampered:push'])
}))

// Retirement (agent/deploy/distribution.ts): a package an agent runs but nobody
// there wants any more is drained, then stopped.
const RETIRE = { ...CONFIG, retireAfterMs: 60_000 }
// From the moment a name stops being wanted to its retirement: the idle time,
// the drain, one check period for each, and the record's spread.
const RETIRED_WITHIN_MS = RETIRE.retireAfterMs + RETIRE_DRAIN_MS + 2 * RETIRE_CHECK_MS + 1_000

test('replicas:3 after churn: the agent that stood in for a dead target retires once the target is back', () => withSeed(FILE, seedFor(77), (seed) => {
  const cluster = new DeployCluster({ seed, nodes: NODES, config: RETIRE })
  const pkg = cart('replicas:3')
  const targets = targetsOf('replicas:3', NODES)
  cluster.deploy('n05', pkg)
  assert.ok(cluster.scheduler.runUntilTrue(everyTargetAdvertises(cluster, targets, '1.0.0'), 10_000, 10))
  // Every agent learns of the package by pull meanwhile.
  cluster.scheduler.runUntil(300_000)
  // A target dies; the others' tables drop it a second later, and the agent
  // that is now third by rendezvous hashing fetches the package.
  const dead = targets[0]
  cluster.crash(dead, 1_000)
  const standIns = targetsOf('replicas:3', NODES.filter((n) => n.id !== dead))
  const standIn = standIns.find((id) => !targets.includes(id))
  assert.ok(standIn !== undefined)
  if (standIn === undefined) return
  // It steps a second after its table drops the dead target, and fetches.
  const died = cluster.nowMs
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises(standIn, 'cart') === '1.0.0', died + 5_000, 10), `${standIn} stands in within 5 s`)
  cluster.scheduler.runUntil(cluster.nowMs + 2 * RETIRE.retireAfterMs)
  assert.equal(advertisers(cluster).filter((id) => id !== dead), standIns.slice().sort(), 'the stand-in stays while it is a target')
  const back = cluster.nowMs
  cluster.restart(dead)
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises(dead, 'cart') === '1.0.0', back + 10_000, 10))
  // Not before its idle time is up, and within it plus the drain after.
  cluster.scheduler.runUntil(back + RETIRE.retireAfterMs - RETIRE_CHECK_MS)
  assert.ok(cluster.running(standIn).length === 1 && cluster.advertises(standIn, 'cart') === '1.0.0', 'the stand-in runs on through its idle time')
  cluster.scheduler.runUntil(back + RETIRED_WITHIN_MS)
  assert.equal(runners(cluster, pkg.ref.hash), targets.slice().sort(), 'exactly the targets run cart again')
  assert.equal(advertisers(cluster), targets.slice().sort())
}))

test('a drained agent keeps running a service while it holds copies of its sessions, and stops once it holds none', () => withSeed(FILE, seedFor(78), (seed) => {
  const cluster = new DeployCluster({ seed, nodes: NODES, config: RETIRE })
  const pkg = cart('nodes:n02')
  cluster.deploy('n02', pkg)
  cluster.scheduler.runUntil(2_000)
  // n09 is asked for cart (a request by URL), fetches and runs it, and holds a
  // copy of one of its sessions.
  cluster.need('n09', 'cart')
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises('n09', 'cart') === '1.0.0', 20_000, 10))
  cluster.hold('n09', ['cart'])
  const asked = cluster.nowMs
  // Past its idle time: drained (no longer offered), still running for the copy.
  cluster.scheduler.runUntil(asked + RETIRED_WITHIN_MS + 60_000)
  assert.is(cluster.advertises('n09', 'cart'), null, 'drained: not advertised')
  assert.equal(cluster.running('n09'), [pkg.ref.hash], 'still running for the copy it holds')
  // Asked for again: offered again at once, and idle from then on.
  cluster.need('n09', 'cart')
  cluster.scheduler.runUntil(cluster.nowMs + 1_000)
  assert.is(cluster.advertises('n09', 'cart'), '1.0.0', 'asked again: advertised again')
  cluster.scheduler.runUntil(cluster.nowMs + RETIRED_WITHIN_MS)
  assert.is(cluster.advertises('n09', 'cart'), null)
  // The copy goes (its session closed or moved): the service stops.
  cluster.hold('n09', [])
  cluster.scheduler.runUntil(cluster.nowMs + 1_000)
  assert.equal(cluster.running('n09'), [], 'retired once no copy is held')
  assert.equal(runners(cluster, pkg.ref.hash), ['n02'], 'the target never retires')
  // Asked once more: it runs again from the bundle it kept, without a fetch.
  const again = cluster.nowMs
  cluster.need('n09', 'cart')
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises('n09', 'cart') === '1.0.0', again + 2_000, 10), 'runs again from its stored bundle')
}))

test('auto: an agent that stays overloaded stops offering the package, and takes it back once its load falls', () => withSeed(FILE, seedFor(79), (seed) => {
  const cluster = new DeployCluster({ seed, nodes: NODES, config: RETIRE })
  const pkg = cart('auto')
  cluster.deploy('n00', pkg)
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises('n03', 'cart') === '1.0.0', 10_000, 10))
  cluster.setLoad('n03', 0.97)
  const loaded = cluster.nowMs
  cluster.scheduler.runUntil(loaded + RETIRED_WITHIN_MS)
  assert.equal(cluster.running('n03'), [], 'n03 retired cart')
  assert.equal(runners(cluster, pkg.ref.hash), targetsOf('auto', NODES).filter((id) => id !== 'n03').sort())
  cluster.setLoad('n03', 0.2)
  // Its record's change steps its core a second later: it runs cart again.
  assert.ok(cluster.scheduler.runUntilTrue(() => cluster.advertises('n03', 'cart') === '1.0.0', cluster.nowMs + 3_000, 10), 'a target again: runs it again within 3 s')
}))

// Seeds of churn: crashes, restarts, load changes, session copies held and
// released, requests by URL; then everything heals and settles. No agent ever
// stops a service while it holds copies of its sessions, and afterwards exactly
// the targets offer the package, and only they and the holders run it.
const RETIRE_SWEEP_SEEDS = Number(process.env.RETIRE_SWEEP_SEEDS ?? 150)
test(`retirement under churn, ${RETIRE_SWEEP_SEEDS} seeds: never while copies are held; settles to the targets`, () => {
  const policies = ['replicas:3', 'auto', 'hub-per-region', 'nodes:n02,n07', 'regions:ap', 'all']
  const first = seedFor(1_000)
  for (let seed = first; seed < first + RETIRE_SWEEP_SEEDS; seed++) {
    withSeed(FILE, seed, () => {
      const rnd = new SeededRandom(seed)
      const policy = policies[seed % policies.length]
      const nodes = NODES.map((n) => ({ ...n }))
      const cluster = new DeployCluster({ seed, nodes, config: RETIRE })
      const pkg = cart(policy)
      cluster.deploy(nodes[rnd.nextInt(nodes.length)].id, pkg)
      const pick = (): SimNodeSpec => nodes[rnd.nextInt(nodes.length)]
      for (let step = 0; step < 40; step++) {
        cluster.scheduler.runUntil(cluster.nowMs + 5_000 + rnd.nextInt(40_000))
        const node = pick()
        const roll = rnd.nextInt(6)
        if (roll === 0) cluster.crash(node.id, rnd.nextInt(3_000))
        else if (roll === 1) cluster.restart(node.id)
        else if (roll === 2) { node.load = rnd.nextInt(100) / 100; cluster.setLoad(node.id, node.load) }
        else if (roll === 3 && cluster.running(node.id).length > 0) cluster.hold(node.id, ['cart'])
        else if (roll === 4) cluster.hold(node.id, [])
        else cluster.need(node.id, 'cart')
      }
      for (const n of nodes) cluster.restart(n.id)
      // Settle: a target notices at its next step (a pull, 256 s apart at most),
      // a stand-in retires within RETIRED_WITHIN_MS.
      cluster.scheduler.runUntil(cluster.nowMs + 300_000 + RETIRED_WITHIN_MS + 60_000)
      assert.equal(cluster.violations, [])
      const targets = targetsOf(policy, nodes).sort()
      const holders = cluster.ids().filter((id) => cluster.running(id).length > 0 && !targets.includes(id))
      assert.equal(advertisers(cluster), targets, `${policy}: exactly the targets offer cart`)
      for (const id of holders) assert.ok(cluster.holds(id, 'cart'), `${policy}: ${id} runs cart, is no target and holds no copy`)
      for (const id of targets) assert.equal(cluster.running(id), [pkg.ref.hash], `${policy}: target ${id} runs cart`)
    })
  }
})

test('retireAfterMs 0 keeps every package running, as before', () => withSeed(FILE, seedFor(80), (seed) => {
  const cluster = new DeployCluster({ seed, nodes: NODES, config: { ...CONFIG, retireAfterMs: 0 } })
  const pkg = cart('nodes:n02')
  cluster.deploy('n02', pkg)
  cluster.need('n09', 'cart')
  cluster.scheduler.runUntil(3_600_000)
  assert.equal(runners(cluster, pkg.ref.hash), ['n02', 'n09'])
}))

test.run()
