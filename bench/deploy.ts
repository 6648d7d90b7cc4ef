// Deploying service code (`node bench/run.ts deploy`):
// - virtual time, 1,000 nodes in 10 regions: ms from the deploy to every targeted
//   node advertising the package, per policy, and with 10 % of the nodes down
//   during the deploy (they catch up by pull after restarting);
// - virtual time, 1,000 nodes under an hour of rolling crashes: how many run a
//   replicas:<n> package during the churn and once it has healed, with the
//   retirement (agent/deploy/distribution.ts) and without it (retireAfterMs 0);
// - 10 real agents on loopback: ms from POST /v1/packages to every target
//   advertising name@version in the entry agent's member table; the first
//   request by URL on an agent that must fetch the package, against a warm one;
// - the package size limits.

import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { DeployCluster, specTargets } from '../sim/deploy-cluster.ts'
import type { SimNodeSpec } from '../sim/deploy-cluster.ts'
import { LocalCluster } from '../sim/processes.ts'
import { buildBundle, deployerKeyFile, generateDeployerKey, MAX_BUNDLE_BYTES, MAX_FILES, MAX_UNPACKED_BYTES, parseDeployerKeyFile } from '../agent/runtime/package.ts'
import { SeededRandom } from '../agent/core/random.ts'
import { DEFAULT_DEPLOY_CONFIG } from '../agent/deploy/distribution.ts'
import { log, median, sleep } from './lib.ts'

const CART = new URL('../examples/cart', import.meta.url).pathname

export type DeployBenchResult = {
  sim: Array<{ nodes: number; policy: string; targets: number; missedPush: number; allAdvertisingMs: number }>
  churn?: ChurnResult[]
  real: { agents: number; rounds: number; allAdvertisingMs: number[]; firstRequestMs: number; warmRequestMs: number }
  limits: { bundleBytes: number; unpackedBytes: number; files: number; cartBundleBytes: number }
}

function simRun (policy: string, nodes: number, missedShare: number, seed: number): DeployBenchResult['sim'][number] {
  const specs: SimNodeSpec[] = Array.from({ length: nodes }, (_, i) => ({
    id: `n${String(i).padStart(4, '0')}`, region: `r${i % 10}`, zone: i % 50 < 10 ? `dc${i % 3}` : 'edge', load: ((i * 7919) % 100) / 100
  }))
  const config = { pullIntervalMs: 2_000, fetchTimeoutMs: 5_000, loadThreshold: 0.9, retireAfterMs: 300_000 }
  const cluster = new DeployCluster({ seed, nodes: specs, config })
  const missed = specs.filter((_, i) => i > 0 && i % Math.round(1 / missedShare) === 0).map((s) => s.id)
  if (missedShare > 0) for (const id of missed) cluster.crash(id)
  const ref = { name: 'cart', version: '1.0.0', hash: 'c'.repeat(64), policy, issuedAtMs: 1 }
  const targets = specTargets(policy, specs, 'cart', config.loadThreshold)
  const bytes = readFileSync(join(CART, 'cart.js')).length + 1_000
  cluster.deploy(specs[0].id, { ref, bytes, verdict: 'ok' })
  if (missedShare > 0) {
    cluster.scheduler.runUntil(5_000)
    for (const id of missed) cluster.restart(id)
  }
  const start = 0
  const done = cluster.scheduler.runUntilTrue(() => targets.every((id) => cluster.advertises(id, 'cart') === '1.0.0'), 300_000, 10)
  return { nodes, policy, targets: targets.length, missedPush: missedShare > 0 ? missed.filter((id) => targets.includes(id)).length : 0, allAdvertisingMs: done ? cluster.nowMs - start : NaN }
}

export type ChurnResult = {
  nodes: number; policy: string; retireAfterMs: number; churnMinutes: number; crashes: number; crashEveryMs: number; downMs: number
  // Agents running the package: sampled every 10 s of the churn (median, max),
  // and once every node is back and 15 minutes have passed.
  runningMedian: number; runningMax: number; runningHealed: number; advertisingHealed: number; targetsHealed: number
}

// An hour of rolling crashes on `nodes` nodes: every `crashEveryMs` one node
// that is up crashes (the others' tables drop it 2 s later) and comes back 10
// minutes later; then everyone is back for 15 minutes. The same seed, so the
// same crashes, with and without retirement. (Every node steps on each change
// of its table, as agents do: the run costs nodes² per change, so 200 nodes.)
const DOWN_MS = 10 * 60_000

export function churnRun (policy: string, nodes: number, crashEveryMs: number, retireAfterMs: number, seed: number): ChurnResult {
  const specs: SimNodeSpec[] = Array.from({ length: nodes }, (_, i) => ({ id: `n${String(i).padStart(4, '0')}`, region: `r${i % 10}`, zone: 'edge', load: 0.2 }))
  const config = { ...DEFAULT_DEPLOY_CONFIG, fetchTimeoutMs: 5_000, retireAfterMs }
  const cluster = new DeployCluster({ seed, nodes: specs, config })
  const random = new SeededRandom(seed)
  const ref = { name: 'cart', version: '1.0.0', hash: 'c'.repeat(64), policy, issuedAtMs: 1 }
  cluster.deploy(specs[0].id, { ref, bytes: 20_000, verdict: 'ok' })
  const churnMs = 60 * 60_000
  let crashes = 0
  for (let at = 60_000; at < 60_000 + churnMs; at += crashEveryMs) {
    cluster.scheduler.at(at, () => {
      const up = specs.filter((s) => cluster.isUp(s.id))
      const victim = up[random.nextInt(up.length)].id
      cluster.crash(victim, 2_000)
      crashes++
      cluster.scheduler.after(DOWN_MS, () => { cluster.restart(victim) })
    })
  }
  const counts: number[] = []
  const running = (): number => specs.filter((s) => cluster.isUp(s.id) && cluster.running(s.id).length > 0).length
  for (let at = 60_000; at < 60_000 + churnMs; at += 10_000) {
    cluster.scheduler.runUntil(at)
    counts.push(running())
  }
  cluster.scheduler.runUntil(60_000 + churnMs + DOWN_MS)
  for (const s of specs) cluster.restart(s.id)
  cluster.scheduler.runUntil(cluster.nowMs + 15 * 60_000)
  return {
    nodes, policy, retireAfterMs, churnMinutes: churnMs / 60_000, crashes, crashEveryMs, downMs: DOWN_MS,
    runningMedian: median(counts), runningMax: Math.max(...counts), runningHealed: running(),
    advertisingHealed: specs.filter((s) => cluster.advertises(s.id, 'cart') !== null).length,
    targetsHealed: specTargets(policy, specs, 'cart', config.loadThreshold).length
  }
}

function versionDir (base: string, version: string): string {
  const dir = join(base, `cart-${version}`)
  mkdirSync(dir, { recursive: true })
  for (const file of ['cart.js', 'catalog.js']) writeFileSync(join(dir, file), readFileSync(join(CART, file)))
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'cart', version, entry: 'cart.js' }))
  return dir
}

type Member = { id: string; status: string; services: Array<{ name: string; version: string }> }

async function realRun (agentCount: number, rounds: number): Promise<DeployBenchResult['real']> {
  const base = mkdtempSync(join(tmpdir(), 'edge-agent-deploy-bench-'))
  const keyText = deployerKeyFile(generateDeployerKey())
  const keyFile = join(base, 'deployer.key')
  writeFileSync(keyFile, keyText)
  const key = parseDeployerKeyFile(keyText, keyFile)
  const configFile = join(base, 'config.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  const cluster = await LocalCluster.start({ nodes: agentCount, configure: (i) => ({ region: 'eu', zone: i === 0 ? 'dc1' : 'edge', extraArgs: ['--config', configFile, '--trusted-deployers', keyFile] }) })
  try {
    await cluster.waitConverged(60_000)
    const agents = cluster.agents
    // The last agent is never a target: it serves the first-request figure.
    const targets = agents.slice(0, -1).map((a) => a.id)
    const times: number[] = []
    for (let round = 1; round <= rounds; round++) {
      const version = `1.0.${round}`
      const bundle = buildBundle(versionDir(base, version), key, `nodes:${targets.join(',')}`, Date.now()).bundle
      const started = performance.now()
      const response = await fetch(`${agents[0].http}/v1/packages`, { method: 'POST', body: bundle })
      if (response.status !== 201) throw new Error(`deploy refused: ${await response.text()}`)
      for (;;) {
        const body = await (await fetch(`${agents[0].http}/v1/members`)).json() as { members: Member[] }
        const advertising = body.members.filter((m) => m.services.some((s) => s.name === 'cart' && s.version === version)).length
        if (advertising >= targets.length) break
        if (performance.now() - started > 60_000) throw new Error(`round ${round}: only ${advertising} of ${targets.length} advertise after 60 s`)
        await sleep(10)
      }
      times.push(performance.now() - started)
      log(`deploy round ${round}: ${Math.round(times[times.length - 1])} ms to ${targets.length} agents advertising`)
    }
    const cold = performance.now()
    const first = await fetch(`${agents[agentCount - 1].http}/cart/catalog`)
    const firstRequestMs = performance.now() - cold
    if (first.status !== 200) throw new Error(`first request: ${first.status} ${await first.text()}`)
    const warm: number[] = []
    for (let i = 0; i < 20; i++) {
      const t = performance.now()
      await (await fetch(`${agents[agentCount - 1].http}/cart/catalog`)).text()
      warm.push(performance.now() - t)
    }
    return { agents: agentCount, rounds, allAdvertisingMs: times, firstRequestMs, warmRequestMs: median(warm) }
  } finally {
    await cluster.destroy()
    rmSync(base, { recursive: true, force: true })
  }
}

export async function benchDeploy (): Promise<DeployBenchResult> {
  const sim = [
    simRun('all', 1_000, 0, 1),
    simRun('hub-per-region', 1_000, 0, 1),
    simRun('auto', 1_000, 0, 1),
    simRun('all', 1_000, 0.1, 1)
  ]
  for (const s of sim) log(`sim ${s.nodes} ${s.policy}${s.missedPush > 0 ? ` (${s.missedPush} missed the push)` : ''}: ${Math.round(s.allAdvertisingMs)} ms`)
  const churn = [churnRun('replicas:20', 200, 30_000, DEFAULT_DEPLOY_CONFIG.retireAfterMs, 1), churnRun('replicas:20', 200, 30_000, 0, 1)]
  for (const c of churn) log(`churn ${c.policy} retire ${c.retireAfterMs}: running median ${c.runningMedian}, max ${c.runningMax}, healed ${c.runningHealed} (targets ${c.targetsHealed})`)
  const real = await realRun(10, 3)
  const cartBundleBytes = buildBundle(CART, parseDeployerKeyFile(deployerKeyFile(generateDeployerKey()), 'k'), 'all', 1).bundle.length
  return { sim, churn, real, limits: { bundleBytes: MAX_BUNDLE_BYTES, unpackedBytes: MAX_UNPACKED_BYTES, files: MAX_FILES, cartBundleBytes } }
}

export function deployMarkdown (d: DeployBenchResult): string[] {
  const f = (n: number): string => Number.isFinite(n) ? String(Math.round(n)) : '-'
  const lines = ['## Deploying service code', '',
    `Virtual time, ${d.sim[0]?.nodes ?? 0} nodes in 10 regions (100 Mbit/s uplinks, 5 ms links, records spread in 300 ms, pull every 2 s): ms from the deploy to every targeted node advertising the package.`, '',
    '| policy | targets | of which missed the push | all advertising, ms |', '|---|---|---|---|']
  for (const s of d.sim) lines.push(`| ${s.policy} | ${s.targets} | ${s.missedPush} | ${f(s.allAdvertisingMs)} |`)
  if (d.churn !== undefined && d.churn.length > 0) {
    const c0 = d.churn[0]
    lines.push('', `Retiring, virtual time: ${c0.nodes} nodes, \`${c0.policy}\`, ${c0.churnMinutes} minutes of rolling crashes (every ${c0.crashEveryMs / 1000} s one node crashes, the others' tables drop it 2 s later, it restarts ${c0.downMs / 60_000} minutes later: ${c0.crashes} crashes, about ${Math.round(c0.downMs / c0.crashEveryMs)} nodes down at a time; every node's core steps a second after each change of its table, as in the agent), then every node back for 15 minutes. Agents running the package (up ones), sampled every 10 s of the churn, and once healed; the same seed, so the same crashes, in both rows.`, '',
      '| retirement | running during churn, median | max | running once healed | advertising once healed | targets |', '|---|---|---|---|---|---|')
    for (const c of d.churn) lines.push(`| ${c.retireAfterMs === 0 ? 'off (retireAfterMs 0, as before)' : `after ${c.retireAfterMs / 1000} s idle (default)`} | ${c.runningMedian} | ${c.runningMax} | ${c.runningHealed} | ${c.advertisingHealed} | ${c.targetsHealed} |`)
    const off = d.churn.find((c) => c.retireAfterMs === 0)
    const on = d.churn.find((c) => c.retireAfterMs !== 0)
    if (off !== undefined && on !== undefined) lines.push('', `Agents running it once healed, without / with retirement: ${(off.runningHealed / on.runningHealed).toFixed(1)}× (${off.runningHealed} / ${on.runningHealed}, for ${on.targetsHealed} targets).`)
  }
  const r = d.real
  lines.push('', `${r.agents} real agents on loopback: ms from POST /v1/packages at one agent to ${r.agents - 1} targets advertising the version in its member table (${r.rounds} deploys): ${r.allAdvertisingMs.map(f).join(', ')}.`,
    `First request by URL on the agent without the package (learn, fetch, start a worker, answer): ${f(r.firstRequestMs)} ms; later requests: ${r.warmRequestMs.toFixed(1)} ms (median of 20).`, '',
    `Limits: a package is at most ${d.limits.bundleBytes} bytes packed, ${d.limits.unpackedBytes} bytes unpacked, ${d.limits.files} files; the cart example packs to ${d.limits.cartBundleBytes} bytes.`)
  return lines
}
