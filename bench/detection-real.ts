// Failure detection with real agents on loopback (default lan profile): time from
// SIGKILL / SIGSTOP to the first and to the last survivor's `dead` verdict, and
// what each agent sends at rest: IP packets and bytes counted by the kernel per
// process (bench/sent-bytes.ts, the same count as serf's), and the messages and
// payload bytes the agent itself counts (membership probes, acks, gossip).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalCluster } from '../sim/processes.ts'
import type { AgentProcess } from '../sim/processes.ts'
import { log, sleep, spread } from './lib.ts'
import type { Spread } from './lib.ts'
import { sentRate } from './sent-bytes.ts'
import type { SentBytes, SentRate } from './sent-bytes.ts'

// Twenty agents starting at once on a busy 2-core box take a while to agree.
const CONVERGE_MS = 180_000

export type DetectionRound = { first: number; last: number }
export type Detection = { first: Spread; last: Spread; each: DetectionRound[] }

export type AgentAtRest = {
  seconds: number
  // IP packets sent, per agent (null: no per-process counter on this machine).
  sent: SentRate | null
  // The agent's own messages (every channel) and their payload, per agent.
  messagesPerSecPerNode: Spread
  payloadBytesPerSecPerNode: Spread
  // Records the agents published on the gossip topic in the window, all agents
  // together (at rest: load changes and refreshes; each costs every member a few
  // forwarded copies). Absent in results written before it was counted.
  publishes?: number
}

// `dead` verdicts about agents that were never killed or frozen, as printed by
// every agent process of the run (the killed ones' old processes included). One
// failure seen by 19 survivors is 19 verdicts, so they are also counted as
// distinct (member, incarnation) pairs; and split by when they happened: while
// the agents were starting (before the cluster first converged) or after.
export type FalseVerdicts = {
  total: number
  startUp: number
  afterConvergence: number
  // Distinct (member, incarnation) pairs declared dead after convergence.
  distinctAfterConvergence: number
  // Of the verdicts after convergence: how many an agent gave within 30 s of
  // its own restart or SIGCONT (a victim judging others on resuming).
  byResumedVictims: number
}

export type AgentDetectionResult = {
  nodes: number
  rounds: number
  loadSampling: boolean
  kill: Detection
  stop: Detection
  atRest: AgentAtRest
  falseDeadVerdicts: FalseVerdicts
}

export type AgentDetectionOptions = {
  rounds: number
  restSeconds: number
  // Seconds between convergence and the measurement at rest (see DetectionOptions).
  settleSeconds: number
  counter: SentBytes | null
  // false: load never sampled (membership alone); true: the defaults.
  loadSampling: boolean
}

async function sentByAgent (agent: AgentProcess): Promise<{ messages: number; bytes: number; published: number }> {
  const text = await (await fetch(`${agent.http}/metrics`)).text()
  const total = (metric: string): number => {
    let sum = 0
    for (const match of text.matchAll(new RegExp(`^${metric}\\{direction="out",channel="[a-z]+"\\} (\\d+)`, 'gm'))) sum += Number(match[1])
    return sum
  }
  const published = Number(/^edge_agent_messages_total\{direction="out",channel="gossip"\} (\d+)/m.exec(text)?.[1] ?? 0)
  return { messages: total('edge_agent_messages_total'), bytes: total('edge_agent_bytes_total'), published }
}

// Nothing talks to the agents' HTTP APIs between the two kernel readings.
async function measureAtRest (cluster: LocalCluster, seconds: number, counter: SentBytes | null, names: string[]): Promise<AgentAtRest> {
  const agents = cluster.running()
  const app0 = await Promise.all(agents.map(sentByAgent))
  const sent0 = counter?.read()
  const t0 = Date.now()
  await sleep(seconds * 1000)
  const sent1 = counter?.read()
  const elapsed = (Date.now() - t0) / 1000
  const app1 = await Promise.all(agents.map(sentByAgent))
  return {
    seconds: elapsed,
    sent: sent0 === undefined || sent1 === undefined ? null : sentRate(sent0, sent1, names, elapsed),
    messagesPerSecPerNode: spread(app1.map((b, i) => (b.messages - app0[i].messages) / elapsed)),
    payloadBytesPerSecPerNode: spread(app1.map((b, i) => (b.bytes - app0[i].bytes) / elapsed)),
    publishes: app1.reduce((sum, b, i) => sum + b.published - app0[i].published, 0)
  }
}

async function verdicts (survivors: AgentProcess[], victim: AgentProcess, sinceMs: number): Promise<DetectionRound> {
  const times = await Promise.all(survivors.map(async (s) => {
    const event = await s.waitFor((e) => e.event === 'member' && e.id === victim.id && e.status === 'dead' && e.atMs >= sinceMs, 30_000)
    return event.atMs - sinceMs
  }))
  return { first: Math.min(...times), last: Math.max(...times) }
}

const RESUMED_WINDOW_MS = 30_000

// Dead verdicts about agents that were never killed or frozen (see FalseVerdicts).
// `resumedAt`: when each victim agent (by name) restarted or got SIGCONT.
export function falseVerdicts (processes: AgentProcess[], victims: Set<string>, convergedAtMs: number, resumedAt: Map<string, number[]>): FalseVerdicts {
  const result: FalseVerdicts = { total: 0, startUp: 0, afterConvergence: 0, distinctAfterConvergence: 0, byResumedVictims: 0 }
  const distinct = new Set<string>()
  for (const agent of processes) {
    for (const e of agent.events) {
      if (e.event !== 'member' || e.status !== 'dead' || victims.has(String(e.id))) continue
      result.total++
      if (e.atMs < convergedAtMs) {
        result.startUp++
        continue
      }
      result.afterConvergence++
      distinct.add(`${String(e.id)}@${String(e.incarnation)}`)
      if ((resumedAt.get(agent.name) ?? []).some((t) => e.atMs >= t && e.atMs - t < RESUMED_WINDOW_MS)) result.byResumedVictims++
    }
  }
  result.distinctAfterConvergence = distinct.size
  return result
}

export function detection (rounds: DetectionRound[]): Detection {
  return { first: spread(rounds.map((r) => r.first)), last: spread(rounds.map((r) => r.last)), each: rounds }
}

// `nodes` agents at their defaults (or with load sampling off), at rest for
// `restSeconds`, then `rounds` rounds of one SIGKILL (the victim restarts from its
// data directory) and one SIGSTOP (then SIGCONT), each followed by convergence.
export async function benchAgentDetection (nodes: number, options: AgentDetectionOptions): Promise<AgentDetectionResult> {
  const tag = `ea${options.loadSampling ? '' : 'm'}${nodes}`
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-bench-'))
  const extraArgs: string[] = []
  if (!options.loadSampling) {
    writeFileSync(join(dir, 'no-load.json'), JSON.stringify({ loadSampleIntervalMs: 3_600_000 }))
    extraArgs.push('--config', join(dir, 'no-load.json'))
  }
  const names = Array.from({ length: nodes }, (_, i) => `${tag}-${i}`)
  const cgroups = names.map((name) => options.counter?.add(name))
  log(`detection: starting ${nodes} agents on 127.0.0.1 (lan profile${options.loadSampling ? '' : ', load sampling off'})`)
  const cluster = await LocalCluster.start({ nodes, services: 'log', configure: (i) => ({ extraArgs, cgroup: cgroups[i] }), startTimeoutMs: 120_000 })
  const victims = new Set<string>()
  // Every process of the run: a restart replaces the killed one in the cluster.
  const processes = [...cluster.agents]
  const resumedAt = new Map<string, number[]>()
  const resumed = (name: string): void => { resumedAt.set(name, [...resumedAt.get(name) ?? [], Date.now()]) }
  try {
    await cluster.waitConverged(CONVERGE_MS)
    const convergedAtMs = Date.now()
    await sleep(options.settleSeconds * 1000)
    log(`detection: ${nodes} agents at rest for ${options.restSeconds} s`)
    const atRest = await measureAtRest(cluster, options.restSeconds, options.counter, names)
    const kills: DetectionRound[] = []
    const stops: DetectionRound[] = []
    for (let round = 0; round < options.rounds; round++) {
      const crashed = cluster.agents[1 + (2 * round) % (nodes - 1)]
      const index = cluster.agents.indexOf(crashed)
      victims.add(crashed.id)
      const survivors = cluster.running().filter((a) => a !== crashed)
      let t0 = Date.now()
      crashed.signal('SIGKILL')
      kills.push(await verdicts(survivors, crashed, t0))
      resumed(crashed.name)
      processes.push(await cluster.restart(index))
      await cluster.waitConverged(CONVERGE_MS)
      const frozen = cluster.agents[1 + (2 * round + 1) % (nodes - 1)]
      victims.add(frozen.id)
      const others = cluster.running().filter((a) => a !== frozen)
      t0 = Date.now()
      frozen.signal('SIGSTOP')
      stops.push(await verdicts(others, frozen, t0))
      frozen.signal('SIGCONT')
      resumed(frozen.name)
      await cluster.waitConverged(CONVERGE_MS)
      log(`detection: edge-agent ×${nodes} round ${round + 1}/${options.rounds}: SIGKILL first ${kills[round].first} last ${kills[round].last} ms; SIGSTOP first ${stops[round].first} last ${stops[round].last} ms`)
    }
    return {
      nodes,
      rounds: options.rounds,
      loadSampling: options.loadSampling,
      kill: detection(kills),
      stop: detection(stops),
      atRest,
      falseDeadVerdicts: falseVerdicts(processes, victims, convergedAtMs, resumedAt)
    }
  } finally {
    await cluster.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
}
