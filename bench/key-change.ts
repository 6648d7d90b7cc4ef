// Changing a private cluster's key while terminals write, real agents on
// loopback: 3 agents on the old key, 6 terminals appending every 20 ms. Two
// ways alternate in one run:
//
// - restart: what a key change took before agents held more than one key. Each
//   agent in turn is stopped (SIGTERM) and started again with the new key, 8 s
//   apart (its sessions' takeovers and the cluster's regrouping happen then).
// - reload: README, "Changing the cluster key". Round 1 reloads each agent with
//   the new key and the old one as previous, round 2 drops the old one, 2 s
//   between reloads.
//
// For each: sessions taken over, the slowest append and the appends over 400 ms
// from the first step to 5 s after the last, members declared dead, connections
// refused for their key, and the check that every acknowledged append is there.
//
// And the handshake's cost: a libp2p node dials another and hangs up, again and
// again, with the handshake of the previous release (@libp2p/pnet and the key
// proof), this one with one key, and this one with the dialled node holding two
// keys (the dialler's is the second it tries). Batches alternate; medians. And
// the bytes per second of one stream over a private connection, the previous
// release's handshake against this one's (an open connection for scale).
//
//   node bench/key-change.ts          (BENCH_KEY_CHANGE_ROUNDS=1 round per way)

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EdgeClient } from '../agent/client/index.ts'
import { formatSwarmKey, generateClusterKey } from '../agent/net/cluster-key.ts'
import { streamRates, timeDials } from '../agent/net/handshake-bench.ts'
import { ClusterKeyring } from '../agent/net/keyring.ts'
import { connectionStack } from '../agent/net/transport.ts'
import { AgentProcess, killAll } from '../sim/processes.ts'
import { ContinuousWriter } from '../sim/writer.ts'
import { previousReleaseStack } from '../test/fixtures/pnet-release.ts'
import { fmt, log, median, sleep } from './lib.ts'

export type KeyChangeRun = {
  method: 'restart' | 'reload'
  round: number
  changeS: number
  sessionsTakenOver: number
  slowestMs: number
  over400: number
  appends: number
  deadVerdicts: number
  refused: number
  acknowledged: number
  problems: string[]
  loadAverage: number
}
export type HandshakeResult = {
  dials: number; previousMs: number; oneKeyMs: number; twoKeysMs: number
  // MB/s of one stream over a private connection (median of the rounds), and
  // over an open one for scale; absent in results from before it was measured.
  streamMb?: number; previousMBps?: number; thisMBps?: number; openMBps?: number
}
export type KeyChangeResult = { nodes: number; sessions: number; gapMs: number; runs: KeyChangeRun[]; handshake: HandshakeResult }

const NODES = 3
const SESSIONS = 6
const GAP_MS = 20
const RESTART_GAP_S = 8
const RELOAD_GAP_S = 2
const TAIL_S = 5
const SLOW_MS = 400

async function refusals (agent: AgentProcess): Promise<number> {
  try {
    const text = await (await fetch(`${agent.http}/metrics`, { signal: AbortSignal.timeout(3_000) })).text()
    return Number(/^edge_agent_refused_connections_total\{reason="cluster-key"\} (\d+)/m.exec(text)?.[1] ?? 0)
  } catch {
    return 0
  }
}

async function oneRun (method: KeyChangeRun['method'], round: number): Promise<KeyChangeRun> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-bench-keys-'))
  const oldFile = join(dir, 'old.key')
  const newFile = join(dir, 'new.key')
  writeFileSync(oldFile, formatSwarmKey(generateClusterKey()), { mode: 0o600 })
  writeFileSync(newFile, formatSwarmKey(generateClusterKey()), { mode: 0o600 })
  const configure = (i: number, keys: object): void => { writeFileSync(join(dir, `agent${i}.json`), JSON.stringify(keys)) }
  const agents: AgentProcess[] = []
  const writers: ContinuousWriter[] = []
  const loadAverage = Math.round(loadavg()[0] * 10) / 10
  // A restarted agent keeps its ports, as a box keeps its configuration.
  const start = async (i: number, ports?: { listen: string; http: number }): Promise<AgentProcess> => await AgentProcess.start({
    name: `agent${i}`,
    dataDir: join(dir, `agent${i}`),
    services: 'log',
    bootstrap: agents.filter((_, j) => j !== i).flatMap((a) => a.addrs),
    ...(ports === undefined ? {} : { httpPort: ports.http }),
    extraArgs: ['--config', join(dir, `agent${i}.json`), ...(ports === undefined ? [] : ['--listen', ports.listen])]
  })
  try {
    for (let i = 0; i < NODES; i++) {
      configure(i, { clusterKey: oldFile })
      agents.push(await start(i))
    }
    await sleep(3_000)
    const client = new EdgeClient({ agents: agents.map((a) => a.http), requestTimeoutMs: 2_000, deadlineMs: 30_000 })
    for (let s = 0; s < SESSIONS; s++) writers.push(new ContinuousWriter(await client.open({ terminalId: `bench-keys-${method}-${round}-${s}`, service: 'log' }), `s${s}-`, GAP_MS))
    for (const writer of writers) await writer.waitFor(10)
    const from = Date.now()
    let refused = 0
    let deadVerdicts = 0
    const dead = (agent: AgentProcess): number => agent.events.filter((e) => e.event === 'member' && e.status === 'dead' && e.atMs >= from).length
    if (method === 'restart') {
      for (let i = 0; i < NODES; i++) {
        const before = agents[i]
        const ports = { listen: before.addrs[0].replace(/\/p2p\/.*$/, ''), http: Number(new URL(before.http).port) }
        refused += await refusals(before)
        await before.stop()
        deadVerdicts += dead(before)
        configure(i, { clusterKey: newFile })
        agents[i] = await start(i, ports)
        await sleep(RESTART_GAP_S * 1000)
      }
    } else {
      for (const keys of [{ clusterKey: newFile, clusterKeyPrevious: [oldFile] }, { clusterKey: newFile }]) {
        for (let i = 0; i < NODES; i++) {
          configure(i, keys)
          agents[i].signal('SIGHUP')
          await sleep(RELOAD_GAP_S * 1000)
        }
      }
    }
    await sleep(TAIL_S * 1000)
    const to = Date.now()
    for (const agent of agents) refused += await refusals(agent)
    for (const writer of writers) await writer.stop()
    const latencies = writers.flatMap((w) => w.acked.filter((a) => a.atMs >= from && a.atMs <= to).map((a) => a.latencyMs))
    const problems: string[] = []
    for (const [i, writer] of writers.entries()) {
      if (writer.error !== null) problems.push(`session ${i}: ${writer.error.message}`)
      for (const p of await writer.check()) problems.push(`session ${i}: ${p}`)
    }
    return {
      method,
      round,
      changeS: Math.round((to - from) / 100) / 10,
      sessionsTakenOver: writers.filter((w) => new Set(w.acked.map((a) => a.epoch)).size > 1).length,
      slowestMs: latencies.length === 0 ? NaN : Math.max(...latencies),
      over400: latencies.filter((l) => l >= SLOW_MS).length,
      appends: latencies.length,
      deadVerdicts: deadVerdicts + agents.reduce((n, a) => n + dead(a), 0),
      refused,
      acknowledged: writers.reduce((n, w) => n + w.acked.length, 0),
      problems,
      loadAverage
    }
  } finally {
    for (const writer of writers) writer.stopped = true
    await killAll(agents)
    rmSync(dir, { recursive: true, force: true })
  }
}

// Ms per dial and hang-up, median over `dials`, for each handshake.
async function benchHandshake (dials: number): Promise<HandshakeResult> {
  const psk = generateClusterKey()
  const other = generateClusterKey()
  const times = await timeDials({
    previous: [previousReleaseStack(psk), previousReleaseStack(psk)],
    oneKey: [connectionStack(psk), connectionStack(psk)],
    twoKeys: [connectionStack(psk), connectionStack(new ClusterKeyring({ primary: other, previous: [psk] }, { refused: () => {} }))]
  }, dials)
  const streamMb = 128
  const rates = await streamRates({
    previous: () => [previousReleaseStack(psk), previousReleaseStack(psk)],
    this: () => [connectionStack(psk), connectionStack(psk)],
    open: () => [connectionStack(undefined), connectionStack(undefined)]
  }, streamMb, 3)
  return {
    dials,
    previousMs: median(times.previous),
    oneKeyMs: median(times.oneKey),
    twoKeysMs: median(times.twoKeys),
    streamMb,
    previousMBps: median(rates.previous),
    thisMBps: median(rates.this),
    openMBps: median(rates.open)
  }
}

export async function benchKeyChange (rounds = Number(process.env.BENCH_KEY_CHANGE_ROUNDS ?? 1)): Promise<KeyChangeResult> {
  const runs: KeyChangeRun[] = []
  for (let round = 1; round <= rounds; round++) {
    for (const method of ['restart', 'reload'] as const) {
      log(`key change: ${method}, round ${round}`)
      runs.push(await oneRun(method, round))
    }
  }
  log('key change: handshakes')
  const handshake = await benchHandshake(200)
  return { nodes: NODES, sessions: SESSIONS, gapMs: GAP_MS, runs, handshake }
}

export function keyChangeMarkdown (r: KeyChangeResult): string[] {
  const lines = [`## Changing the cluster key, ${r.nodes} real agents on loopback`, '',
    `${r.sessions} terminals append every ${r.gapMs} ms. Restart: each agent in turn stopped and started with the new key, ${RESTART_GAP_S} s apart (how a key changed before). ` +
    `Reload: round 1 reloads each agent with the new key and the old one as previous, round 2 drops the old one, ${RELOAD_GAP_S} s between reloads (README, "Changing the cluster key"). ` +
    `Measured from the first step to ${TAIL_S} s after the last.`, '',
    '| way | round | s | sessions taken over | slowest append, ms | appends ≥ 400 ms | appends | dead verdicts | key refusals | load |', '|---|---|---|---|---|---|---|---|---|---|']
  for (const x of r.runs) lines.push(`| ${x.method} | ${x.round} | ${fmt(x.changeS, 1)} | ${x.sessionsTakenOver} of ${r.sessions} | ${fmt(x.slowestMs)} | ${x.over400} | ${x.appends} | ${x.deadVerdicts} | ${x.refused} | ${fmt(x.loadAverage, 1)} |`)
  const problems = r.runs.flatMap((x) => x.problems.map((p) => `${x.method} ${x.round}: ${p}`))
  const slowest = (method: KeyChangeRun['method']): number => median(r.runs.filter((x) => x.method === method).map((x) => x.slowestMs))
  const h = r.handshake
  lines.push('', `Slowest append, restart / reload (medians): ${fmt(slowest('restart') / slowest('reload'), 1)}×. ` +
    `The check after each run: ${r.runs.reduce((n, x) => n + x.acknowledged, 0)} acknowledged appends, ${problems.length === 0 ? 'every one present once, in order' : 'PROBLEMS: ' + problems.join('; ')}.`, '',
    `Handshake, ms per dial (TCP, the private network's handshake, noise, yamux) and hang-up on loopback, median of ${h.dials}: the previous release's (@libp2p/pnet) ${fmt(h.previousMs, 2)}, ` +
    `this one with one key ${fmt(h.oneKeyMs, 2)} (${fmt(h.oneKeyMs / h.previousMs, 2)}×), with the dialled agent holding two keys, the dialler's its second, ${fmt(h.twoKeysMs, 2)} (${fmt(h.twoKeysMs / h.previousMs, 2)}×).`)
  if (h.previousMBps !== undefined && h.thisMBps !== undefined && h.openMBps !== undefined) {
    lines.push('', `One stream over a private connection, ${h.streamMb ?? '?'} MB in 16-KiB writes, median MB/s of 3 rounds alternating: the previous release's ${fmt(h.previousMBps)}, this one ${fmt(h.thisMBps)} (${fmt(h.thisMBps / h.previousMBps, 2)}×); an open connection, for scale, ${fmt(h.openMBps)}.`)
  }
  return lines
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await benchKeyChange()
  console.log(keyChangeMarkdown(result).join('\n'))
}
