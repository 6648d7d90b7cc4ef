// Sessions on real agents (one cluster of `nodes` processes on 127.0.0.1):
//  1. replication: acknowledged appends per second and their latency for one
//     owner (agent0) with R = 2 and fixed-size values, at several client
//     concurrencies (one session per concurrent terminal, one append in flight
//     each, through the EdgeClient: appends on the deltas stream);
//  2. takeover: rounds of SIGKILL (then restart from the data directory) and of
//     SIGSTOP (then SIGCONT) of the owner of one of `sessions` sessions while
//     their terminals keep appending; ms from the signal to the terminal's first
//     acknowledged append at the new owner, for every session the victim owned;
//  3. the check: every acknowledged append present once, in order.
//
// The agents run with sessions.loadThreshold 1 (no load filter): on one shared
// machine running ten agents and their terminals, CPU load is the bench's own,
// and placement would otherwise refuse busy agents.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../agent/client/index.ts'
import type { Session } from '../agent/client/index.ts'
import { LocalCluster } from '../sim/processes.ts'
import type { AgentProcess } from '../sim/processes.ts'
import { ContinuousWriter, waitGroupRepaired, waitTakeover } from '../sim/writer.ts'
import { log, percentile, sleep } from './lib.ts'

export type Latencies = { n: number; p50: number; p99: number; max: number }

export type ReplicationRun = { concurrency: number; seconds: number; appendsPerSec: number; latencyMs: Latencies }

export type SessionsRealResult = {
  nodes: number
  replicas: number
  valueBytes: number
  replication: ReplicationRun[]
  sessions: number
  kill: Latencies & { rounds: number; samples: number[] }
  stop: Latencies & { rounds: number; samples: number[] }
  // The same with every session quiet when the signal comes (the terminals
  // idle, then appending again from the signal on); absent in older results.
  quietKill?: Latencies & { rounds: number; samples: number[] }
  quietStop?: Latencies & { rounds: number; samples: number[] }
  failedRounds: string[]
  acknowledged: number
  problems: string[]
  // The box's 1-minute load average when the bench started, when the takeover
  // rounds started and at the end: the figures are only as quiet as the box.
  loadAverage?: { start: number; takeovers: number; end: number }
}

export type SessionsRealOptions = { nodes?: number; takeoverRounds?: number; quietRounds?: number; concurrency?: number[]; valueBytes?: number; windowSeconds?: number; sessions?: number }

const GROUP_SIZE = 3

// The takeover terminals pause this long between appends (up to ~100 appends/s
// each): a terminal's pace, not a flood. Appending flat out, five terminals and
// ten agents saturate this 2-core box, and the takeover then measures CPU
// starvation (vote and diagnosis timeouts of 150-300 ms overrun) more than the
// protocol; the replication figures measure the flood.
export const TAKEOVER_GAP_MS = 10

const round2 = (x: number): number => Math.round(x * 100) / 100

export function latencies (values: number[]): Latencies {
  return { n: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: values.length === 0 ? NaN : Math.max(...values) }
}

// See benchRealSessions: the ~22 s the load average takes to forget start-up
// (agent/runtime/load.ts) plus a margin.
const LOAD_SETTLE_MS = 25_000

export async function benchRealSessions (options: SessionsRealOptions = {}): Promise<SessionsRealResult> {
  const nodes = options.nodes ?? 10
  const loadAtStart = loadavg()[0]
  const valueBytes = options.valueBytes ?? 256
  const configDir = mkdtempSync(join(tmpdir(), 'edge-agent-bench-'))
  const configFile = join(configDir, 'agent.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  log(`sessions: starting ${nodes} agents`)
  // Nine agents start at once: on a loaded 2-core box that took over the default 20 s.
  const cluster = await LocalCluster.start({ nodes, services: 'log', startTimeoutMs: 60_000, configure: () => ({ extraArgs: ['--config', configFile] }) })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http) })
  try {
    await cluster.waitConverged(60_000)
    // Sessions are placed by load, and an agent's first load reaches the others
    // at most recordMinIntervalMs (10 s on lan) after its join record, which says 0:
    // until then agent0, whose own view is current and high from start-up, ranks
    // last and no session lands on it. Let the load averages forget start-up and
    // the records settle first.
    await sleep(LOAD_SETTLE_MS)
    const replication: ReplicationRun[] = []
    for (const concurrency of options.concurrency ?? [1, 16, 64]) {
      replication.push(await replicationRun(client, cluster.agents[0], concurrency, valueBytes, options.windowSeconds ?? 10))
    }
    const loadAtTakeovers = loadavg()[0]
    const takeovers = await takeoverRounds(cluster, client, options.sessions ?? 5, options.takeoverRounds ?? 50, options.quietRounds ?? QUIET_ROUNDS, valueBytes)
    const loadAverage = { start: round2(loadAtStart), takeovers: round2(loadAtTakeovers), end: round2(loadavg()[0]) }
    return { nodes, replicas: GROUP_SIZE - 1, valueBytes, replication, ...takeovers, loadAverage }
  } finally {
    client.destroy()
    await cluster.destroy()
    rmSync(configDir, { recursive: true, force: true })
  }
}

// Opens sessions until `count` are owned by `owner`, closing the others as it
// goes (four terminals at a time).
async function sessionsOwnedBy (client: EdgeClient, owner: AgentProcess, count: number, tag: string): Promise<Session[]> {
  const mine: Session[] = []
  let tried = 0
  const worker = async (): Promise<void> => {
    while (mine.length < count) {
      if (tried > count * 100) throw new Error(`could not place ${count} sessions on ${owner.name}`)
      const session = await client.open({ terminalId: `${tag}-${tried++}`, service: 'log' })
      if (session.owner?.id === owner.id && mine.length < count) mine.push(session)
      // A close that finds no agent in time (a starved box) leaves an idle
      // session behind, not the end of the bench.
      else await session.close().catch((error: Error) => log(`sessions: close of ${session.sessionId} failed: ${error.message}`))
    }
  }
  await Promise.all(Array.from({ length: 4 }, worker))
  return mine
}

async function replicationRun (client: EdgeClient, owner: AgentProcess, concurrency: number, valueBytes: number, seconds: number): Promise<ReplicationRun> {
  const sessions = await sessionsOwnedBy(client, owner, concurrency, `repl${concurrency}`)
  const writers = sessions.map((s, i) => new ContinuousWriter(s, `c${concurrency}s${i}-`, 0, valueBytes))
  try {
    await sleep(3_000)
    const t0 = Date.now()
    const before = writers.reduce((sum, w) => sum + w.acked.length, 0)
    await sleep(seconds * 1_000)
    const t1 = Date.now()
    const after = writers.reduce((sum, w) => sum + w.acked.length, 0)
    const failed = writers.find((w) => w.error !== null)
    if (failed !== undefined) throw failed.error as Error
    const window = writers.flatMap((w) => w.acked.filter((a) => a.atMs > t0 && a.atMs <= t1).map((a) => a.latencyMs))
    const run = { concurrency, seconds: (t1 - t0) / 1_000, appendsPerSec: (after - before) / ((t1 - t0) / 1_000), latencyMs: latencies(window) }
    log(`sessions: replication, ${concurrency} terminal(s): ${run.appendsPerSec.toFixed(0)} acked appends/s, p50 ${run.latencyMs.p50} ms, p99 ${run.latencyMs.p99} ms`)
    return run
  } finally {
    await Promise.all(writers.map(async (w) => await w.stop()))
    await Promise.all(sessions.map(async (s) => await s.close().catch(() => undefined)))
  }
}

type TakeoverFigures = Omit<SessionsRealResult, 'nodes' | 'replicas' | 'valueBytes' | 'replication'>

async function takeoverRounds (cluster: LocalCluster, client: EdgeClient, count: number, rounds: number, quietRounds: number, valueBytes: number): Promise<TakeoverFigures> {
  const sessions: Session[] = []
  for (let i = 0; i < count; i++) sessions.push(await client.open({ terminalId: `takeover-${i}`, service: 'log' }))
  const writers = sessions.map((s, i) => new ContinuousWriter(s, `t${i}-`, TAKEOVER_GAP_MS, valueBytes))
  const kill: number[] = []
  const stop: number[] = []
  const quietKill: number[] = []
  const quietStop: number[] = []
  const failedRounds: string[] = []
  try {
    await Promise.all(writers.map(async (w) => await w.waitFor(20)))
    for (const signal of BENCH_SIGNALS) {
      for (let round = 0; round < rounds; round++) {
        try {
          const samples = await takeoverRound(cluster, sessions, writers, round % count, signal)
          ;(signal === 'SIGKILL' ? kill : stop).push(...samples)
          log(`sessions: ${signal} round ${round + 1}/${rounds}: ${samples.join(', ')} ms`)
        } catch (error) {
          failedRounds.push(`${signal} round ${round + 1}: ${(error as Error).message}`)
          log(`sessions: ${signal} round ${round + 1} failed: ${(error as Error).message}`)
          await recover(cluster)
        }
        await settle(cluster, sessions)
      }
    }
    // The terminals go idle until every copy of their sessions is quiet, and
    // write again from the signal on.
    for (const signal of BENCH_SIGNALS) {
      for (let round = 0; round < quietRounds; round++) {
        try {
          for (const w of writers) w.pause()
          await untilQuiet(cluster, count * GROUP_SIZE, 20_000)
          const samples = await takeoverRound(cluster, sessions, writers, round % count, signal, () => { for (const w of writers) w.resume() })
          ;(signal === 'SIGKILL' ? quietKill : quietStop).push(...samples)
          log(`sessions: quiet ${signal} round ${round + 1}/${quietRounds}: ${samples.join(', ')} ms`)
        } catch (error) {
          failedRounds.push(`quiet ${signal} round ${round + 1}: ${(error as Error).message}`)
          log(`sessions: quiet ${signal} round ${round + 1} failed: ${(error as Error).message}`)
          for (const w of writers) w.resume()
          await recover(cluster)
        }
        await settle(cluster, sessions)
      }
    }
    await Promise.all(writers.map(async (w) => await w.stop()))
    const problems: string[] = []
    for (const [i, w] of writers.entries()) {
      if (w.error !== null) problems.push(`${sessions[i].sessionId}: writer failed: ${w.error.message}`)
      problems.push(...(await w.check()).map((p) => `${sessions[i].sessionId}: ${p}`))
    }
    return {
      sessions: count,
      kill: { ...latencies(kill), rounds, samples: kill },
      stop: { ...latencies(stop), rounds, samples: stop },
      ...(quietRounds > 0 ? { quietKill: { ...latencies(quietKill), rounds: quietRounds, samples: quietKill }, quietStop: { ...latencies(quietStop), rounds: quietRounds, samples: quietStop } } : {}),
      failedRounds,
      acknowledged: writers.reduce((sum, w) => sum + w.acked.length, 0),
      problems
    }
  } finally {
    for (const w of writers) w.stopped = true
  }
}

// Signals the owner of sessions[target]; resolves with the takeover time of
// every session it owned, then brings it back (restart or SIGCONT).
async function takeoverRound (cluster: LocalCluster, sessions: Session[], writers: ContinuousWriter[], target: number, signal: 'SIGKILL' | 'SIGSTOP', afterSignal: () => void = () => {}): Promise<number[]> {
  const victim = cluster.agents.find((a) => a.id === sessions[target].owner?.id)
  if (victim === undefined) throw new Error(`the owner of ${sessions[target].sessionId} is unknown`)
  const affected = sessions.map((s, i) => ({ i, epoch: s.epoch })).filter(({ i }) => sessions[i].owner?.id === victim.id)
  const t0 = Date.now()
  victim.signal(signal)
  afterSignal()
  try {
    const samples = await Promise.all(affected.map(async ({ i, epoch }) => await waitTakeover(writers[i], t0, epoch, 15_000))).catch((error: Error) => {
      // A round without a takeover: what the agents did, for diagnosis.
      for (const { i } of affected) explainSlow(cluster, sessions[i].sessionId, victim, t0, Date.now() - t0)
      throw error
    })
    for (const [k, ms] of samples.entries()) if (ms > SLOW_TAKEOVER_MS) explainSlow(cluster, sessions[affected[k].i].sessionId, victim, t0, ms)
    return samples
  } finally {
    if (signal === 'SIGSTOP') victim.signal('SIGCONT')
    else await cluster.restart(cluster.agents.indexOf(victim))
  }
}

// Rounds per signal with every session quiet at the signal (BENCH_QUIET_TAKEOVERS, default 10).
const QUIET_ROUNDS = Number(process.env.BENCH_QUIET_TAKEOVERS ?? 10)

// Until the running agents hold `copies` quiet session copies in all
// (edge_agent_sessions_quiet).
async function untilQuiet (cluster: LocalCluster, copies: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let quiet = 0
  while (Date.now() < deadline) {
    quiet = 0
    for (const agent of cluster.running()) {
      const text = await (await fetch(`${agent.http}/metrics`)).text()
      quiet += Number(/^edge_agent_sessions_quiet (\d+)/m.exec(text)?.[1] ?? 0)
    }
    if (quiet >= copies) return
    await sleep(100)
  }
  throw new Error(`only ${quiet} of ${copies} session copies quiet after ${timeoutMs} ms`)
}

// Which signals' rounds run (BENCH_SIGNALS, default both): SIGKILL,SIGSTOP.
const BENCH_SIGNALS = (process.env.BENCH_SIGNALS ?? 'SIGKILL,SIGSTOP').split(',').filter((s): s is 'SIGKILL' | 'SIGSTOP' => s === 'SIGKILL' || s === 'SIGSTOP')

// A takeover slower than this (BENCH_SLOW_MS, default 1000) gets its session's events logged, for diagnosis.
const SLOW_TAKEOVER_MS = Number(process.env.BENCH_SLOW_MS ?? 1_000)

function explainSlow (cluster: LocalCluster, sessionId: string, victim: AgentProcess, t0: number, ms: number): void {
  const lines = cluster.agents.flatMap((a) => a.events
    .filter((e) => e.atMs >= t0 - 100 && e.atMs <= t0 + ms + 100 && (e.sessionId === sessionId || (e.event === 'member' && e.id === victim.id)))
    .map((e) => ({ at: e.atMs - t0, text: `${a.name}: ${JSON.stringify({ ...e, atMs: undefined })}` })))
  lines.sort((a, b) => a.at - b.at)
  log(`sessions: slow takeover of ${sessionId} (${ms} ms after ${victim.name}'s signal); events:\n${lines.map((l) => `    +${l.at} ms ${l.text}`).join('\n')}`)
}

// After a failed round: everyone running and not frozen.
export async function recover (cluster: LocalCluster): Promise<void> {
  for (const [i, agent] of cluster.agents.entries()) {
    if (agent.running) agent.signal('SIGCONT')
    else await cluster.restart(i).catch((error: Error) => log(`sessions: restart of ${agent.name} failed: ${error.message}`))
  }
}

// Before the next round: membership converged and every group back to full size
// with live members only, held steady past the repair delay (so no round starts
// in the middle of a repair).
export async function settle (cluster: LocalCluster, sessions: Session[]): Promise<void> {
  await cluster.waitConverged(30_000)
  for (let attempt = 0; attempt < 3; attempt++) {
    const alive = new Set(cluster.running().map((a) => a.id))
    const gone = cluster.agents.map((a) => a.id).filter((id) => !alive.has(id))
    await Promise.all(sessions.map(async (s) => await waitGroupRepaired(s, gone, GROUP_SIZE, 30_000)))
    // A read that finds no agent in time (a box starved by other load) counts as
    // "not settled yet", not as the end of the bench.
    const groups = async (): Promise<string> => (await Promise.all(sessions.map(async (s) => await s.get().then((state) => state.group.map((m) => m.id).join(','), (error: Error) => `unread (${error.message})`)))).join(';')
    const before = await groups()
    await sleep(2_500)
    if (await groups() === before) return
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rounds = Number(process.env.BENCH_TAKEOVERS ?? 5)
  const result = await benchRealSessions({ takeoverRounds: rounds })
  process.stdout.write(JSON.stringify({ ...result, kill: { ...result.kill, samples: undefined }, stop: { ...result.stop, samples: undefined } }, null, 2) + '\n')
}
