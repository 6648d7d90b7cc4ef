// Failure detection with real agents on loopback (default lan profile): time from
// SIGKILL / SIGSTOP to the first and to the last survivor's `dead` verdict, and
// bandwidth per agent at rest (kernel TCP counters and the agent's own counters).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalCluster } from '../sim/processes.ts'
import type { AgentProcess } from '../sim/processes.ts'
import { log, sleep, spread } from './lib.ts'
import type { Spread } from './lib.ts'
import { tcpBytesByPid } from './wire-bytes.ts'

export type DetectionRound = { first: number; last: number }

export type RealDetectionResult = {
  nodes: number
  rounds: number
  kill: { first: Spread; last: Spread; each: DetectionRound[] }
  stop: { first: Spread; last: Spread; each: DetectionRound[] }
  // Defaults: load sampled every second and published (at most every
  // recordMinIntervalMs) when it moves; ten agents on two cores move a lot.
  atRest: AtRest
  // The failure detector and membership alone: load sampling off.
  atRestWithoutLoad: AtRest
  falseDeadVerdicts: number
}

export type AtRest = { seconds: number; wireBytesPerSecPerNode: Spread; payloadBytesPerSecPerNode: Spread }

async function payloadBytes (agent: AgentProcess): Promise<number> {
  const text = await (await fetch(`${agent.http}/metrics`)).text()
  let total = 0
  for (const match of text.matchAll(/^edge_agent_bytes_total\{direction="out",channel="[a-z]+"\} (\d+)/gm)) total += Number(match[1])
  return total
}

async function measureAtRest (cluster: LocalCluster, seconds: number): Promise<AtRest> {
  const agents = cluster.running()
  const pids = agents.map((a) => a.pid)
  const wire0 = tcpBytesByPid(pids)
  const app0 = await Promise.all(agents.map(payloadBytes))
  const t0 = Date.now()
  await sleep(seconds * 1000)
  const wire1 = tcpBytesByPid(pids)
  const app1 = await Promise.all(agents.map(payloadBytes))
  const elapsed = (Date.now() - t0) / 1000
  return {
    seconds: elapsed,
    wireBytesPerSecPerNode: spread(pids.map((pid) => ((wire1.get(pid)?.sent ?? 0) - (wire0.get(pid)?.sent ?? 0)) / elapsed)),
    payloadBytesPerSecPerNode: spread(app1.map((b, i) => (b - app0[i]) / elapsed))
  }
}

async function verdicts (survivors: AgentProcess[], victim: AgentProcess, sinceMs: number): Promise<DetectionRound> {
  const times = await Promise.all(survivors.map(async (s) => {
    const event = await s.waitFor((e) => e.event === 'member' && e.id === victim.id && e.status === 'dead' && e.atMs >= sinceMs, 30_000)
    return event.atMs - sinceMs
  }))
  return { first: Math.min(...times), last: Math.max(...times) }
}

// Dead verdicts about agents that were never killed or frozen.
function falseVerdicts (cluster: LocalCluster, victims: Set<string>): number {
  let count = 0
  for (const agent of cluster.agents) {
    count += agent.events.filter((e) => e.event === 'member' && e.status === 'dead' && !victims.has(String(e.id))).length
  }
  return count
}

// Bandwidth at rest of a cluster whose agents never sample load.
async function atRestWithoutLoad (nodes: number, seconds: number): Promise<AtRest> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-bench-'))
  const config = join(dir, 'no-load.json')
  writeFileSync(config, JSON.stringify({ loadSampleIntervalMs: 3_600_000 }))
  const cluster = await LocalCluster.start({ nodes, services: 'log', configure: () => ({ extraArgs: ['--config', config] }) })
  try {
    await cluster.waitConverged(30_000)
    await sleep(3_000)
    log(`real detection: measuring bandwidth at rest without load updates for ${seconds} s`)
    return await measureAtRest(cluster, seconds)
  } finally {
    await cluster.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function benchRealDetection (nodes = 10, rounds = 5, restSeconds = 60): Promise<RealDetectionResult> {
  const withoutLoad = await atRestWithoutLoad(nodes, restSeconds)
  log(`real detection: starting ${nodes} agents on 127.0.0.1 (lan profile)`)
  const cluster = await LocalCluster.start({ nodes, services: 'log' })
  const victims = new Set<string>()
  try {
    await cluster.waitConverged(30_000)
    await sleep(3_000)
    log(`real detection: measuring bandwidth at rest for ${restSeconds} s`)
    const atRest = await measureAtRest(cluster, restSeconds)
    const kills: DetectionRound[] = []
    const stops: DetectionRound[] = []
    for (let round = 0; round < rounds; round++) {
      const crashed = cluster.agents[1 + (2 * round) % (nodes - 1)]
      const index = cluster.agents.indexOf(crashed)
      victims.add(crashed.id)
      const survivors = cluster.running().filter((a) => a !== crashed)
      let t0 = Date.now()
      crashed.signal('SIGKILL')
      kills.push(await verdicts(survivors, crashed, t0))
      await cluster.restart(index)
      await cluster.waitConverged(30_000)
      const frozen = cluster.agents[1 + (2 * round + 1) % (nodes - 1)]
      victims.add(frozen.id)
      const others = cluster.running().filter((a) => a !== frozen)
      t0 = Date.now()
      frozen.signal('SIGSTOP')
      stops.push(await verdicts(others, frozen, t0))
      frozen.signal('SIGCONT')
      await cluster.waitConverged(30_000)
      log(`real detection: round ${round + 1}/${rounds}: SIGKILL first ${kills[round].first} last ${kills[round].last} ms; SIGSTOP first ${stops[round].first} last ${stops[round].last} ms`)
    }
    return {
      nodes,
      rounds,
      kill: { first: spread(kills.map((r) => r.first)), last: spread(kills.map((r) => r.last)), each: kills },
      stop: { first: spread(stops.map((r) => r.first)), last: spread(stops.map((r) => r.last)), each: stops },
      atRest,
      atRestWithoutLoad: withoutLoad,
      falseDeadVerdicts: falseVerdicts(cluster, victims)
    }
  } finally {
    await cluster.destroy()
  }
}
