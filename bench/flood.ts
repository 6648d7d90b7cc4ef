// Takeover under a flood from one hostile peer, on real agents (one cluster of
// `nodes` processes on 127.0.0.1, lan profile, R = 2). Rounds alternate: a calm
// round, then a flood round. In each, the owner of one of `sessions` sessions is
// SIGKILLed while their terminals append (one every 10 ms, as in the sessions
// bench); the figure is ms from the signal to each affected terminal's first
// acknowledged append at the new owner. In a flood round a hostile peer (its own
// process, test/fixtures/hostile-attack.ts) has been flooding, for 1.5 s before
// the kill and until the takeover is measured, the agents that must take over:
// every surviving member of the victim's groups, on the SWIM and replication
// streams (garbage and wrong-type frames, 500 per write, as fast as they are
// taken) and the gossip topic. Killed owners restart from their data directory
// and the groups settle between rounds. The result: p50 and p99 of both, their
// ratio, the flood's rate, and the check that every acknowledged append is
// present once, in order. The attacker comes back like a real one (it reopens
// ended streams and redials every 100 ms), and the agents cut it off as they do
// by default (limits.peerBlockMs); bench/run.ts runs it once more with
// peerBlockMs 0, agents that take the whole flood, for comparison.
//
//   node bench/flood.ts                    10 calm and 10 flood rounds
//   BENCH_FLOOD_ROUNDS=3 node bench/flood.ts
//   BENCH_FLOOD_BLOCK_MS=0 node bench/flood.ts   agents that never cut the peer off

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { EdgeClient } from '../agent/client/index.ts'
import { PEER_LIMITS_DEFAULT } from '../agent/config.ts'
import type { Session } from '../agent/client/index.ts'
import { LocalCluster } from '../sim/processes.ts'
import { ContinuousWriter, waitTakeover } from '../sim/writer.ts'
import { log, sleep } from './lib.ts'
import { latencies, recover, settle, TAKEOVER_GAP_MS } from './sessions-real.ts'
import type { Latencies } from './sessions-real.ts'

const ATTACK = fileURLToPath(new URL('../test/fixtures/hostile-attack.ts', import.meta.url))
const FLOOD_LEAD_MS = 1_500

export type FloodResult = {
  nodes: number
  sessions: number
  rounds: number
  calm: Latencies & { samples: number[] }
  flood: Latencies & { samples: number[] }
  ratioP50: number
  ratioP99: number
  // Frames the hostile peer got accepted by the transport per second, over the flood rounds.
  floodFramesPerSec: number
  // Refusals counted by the flooded agents (edge_agent_refused_total), over the flood rounds.
  refused: number
  // The agents' limits.peerBlockMs (0: they never cut the hostile peer off), and
  // over the flood rounds: how often the flooded agents cut it off
  // (edge_agent_peers_blocked_total) and its connections they refused meanwhile
  // (edge_agent_refused_connections_total{reason="blocked"}).
  peerBlockMs: number
  blocks: number
  refusedConnections: number
  failedRounds: string[]
  // Appends a terminal gave up on (not acknowledged within the client's 15 s
  // deadline); the terminal then carries on with a new writer, its op re-sent.
  stalledAppends: string[]
  acknowledged: number
  problems: string[]
}

// `started` resolves once the first batch is written (the child needs a second
// or two to load libp2p and dial).
type Flood = { child: ChildProcess; frames: number; ms: number; started: Promise<void> }

function startFlood (addrs: string[]): Flood {
  const child = spawn(process.execPath, [ATTACK, 'flood', addrs.join(','), '600'], { stdio: ['ignore', 'pipe', 'ignore'] })
  let started = (): void => {}
  const flood: Flood = { child, frames: 0, ms: 0, started: new Promise((resolve) => { started = resolve }) }
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const p = JSON.parse(line) as { frames?: number; ms: number }
    if (typeof p.frames === 'number' && p.frames > 0) {
      flood.frames = p.frames
      flood.ms = p.ms
      started()
    }
  })
  child.once('exit', () => started())
  return flood
}

async function stopFlood (flood: Flood): Promise<void> {
  const exited = new Promise((resolve) => flood.child.once('exit', resolve))
  flood.child.kill('SIGKILL')
  await exited
}

// (0 when the agent does not answer: a flooded agent may not, and the figure is
// then a lower bound.)
type Counts = { refused: number; blocks: number; refusedConnections: number }

async function countsOf (http: string): Promise<Counts> {
  let text = ''
  try {
    text = await (await fetch(`${http}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  } catch {}
  let refused = 0
  for (const m of text.matchAll(/^edge_agent_refused_total\{[^}]*\} (\d+)/gm)) refused += Number(m[1])
  const blocks = Number(/^edge_agent_peers_blocked_total (\d+)/m.exec(text)?.[1] ?? 0)
  const refusedConnections = Number(/^edge_agent_refused_connections_total\{reason="blocked"\} (\d+)/m.exec(text)?.[1] ?? 0)
  return { refused, blocks, refusedConnections }
}

async function sumOf (agents: Array<{ http: string }>): Promise<Counts> {
  const all = await Promise.all(agents.map(async (a) => await countsOf(a.http)))
  return all.reduce((x, y) => ({ refused: x.refused + y.refused, blocks: x.blocks + y.blocks, refusedConnections: x.refusedConnections + y.refusedConnections }), { refused: 0, blocks: 0, refusedConnections: 0 })
}

// `peerBlockMs`: the agents' limits.peerBlockMs (default: theirs, 60 s; 0: they
// never cut a peer off, and take the whole flood).
export async function benchFlood (options: { nodes?: number; sessions?: number; rounds?: number; peerBlockMs?: number } = {}): Promise<FloodResult> {
  const nodes = options.nodes ?? 5
  const count = options.sessions ?? 3
  const rounds = options.rounds ?? 10
  const peerBlockMs = options.peerBlockMs ?? PEER_LIMITS_DEFAULT.peerBlockMs
  const configDir = mkdtempSync(join(tmpdir(), 'edge-agent-flood-'))
  const configFile = join(configDir, 'agent.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 }, limits: { peerBlockMs } }))
  log(`flood: starting ${nodes} agents (limits.peerBlockMs ${peerBlockMs})`)
  const cluster = await LocalCluster.start({ nodes, services: 'log', configure: () => ({ extraArgs: ['--config', configFile] }) })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http) })
  const sessions: Session[] = []
  const writers: ContinuousWriter[] = []
  const samples = { calm: [] as number[], flood: [] as number[] }
  const failedRounds: string[] = []
  const stalledAppends: string[] = []
  // Writers that gave up, kept for the final check of what they had acknowledged.
  const retired: ContinuousWriter[] = []
  let floodFrames = 0
  let floodMs = 0
  let refused = 0
  let blocks = 0
  let refusedConnections = 0
  try {
    await cluster.waitConverged(60_000)
    for (let i = 0; i < count; i++) sessions.push(await client.open({ terminalId: `flood-${i}`, service: 'log' }))
    writers.push(...sessions.map((s, i) => new ContinuousWriter(s, `f${i}-`, TAKEOVER_GAP_MS, 256)))
    await Promise.all(writers.map(async (w) => await w.waitFor(20)))
    for (let round = 0; round < rounds * 2; round++) {
      const flooded = round % 2 === 1
      const name = `${flooded ? 'flood' : 'calm'} round ${Math.floor(round / 2) + 1}/${rounds}`
      try {
        const victim = cluster.agents.find((a) => a.id === sessions[round % count].owner?.id)
        if (victim === undefined) throw new Error(`the owner of ${sessions[round % count].sessionId} is unknown`)
        const affected = sessions.map((s, i) => ({ i, epoch: s.epoch, group: s.group.map((m) => m.id) })).filter(({ i }) => sessions[i].owner?.id === victim.id)
        const takers = cluster.agents.filter((a) => a !== victim && affected.some((s) => s.group.includes(a.id)))
        let flood: Flood | null = null
        const before = flooded ? await sumOf(takers) : null
        if (flooded) {
          flood = startFlood(takers.map((a) => a.addrs[0]))
          await flood.started
          await sleep(FLOOD_LEAD_MS)
        }
        const t0 = Date.now()
        victim.signal('SIGKILL')
        const exited = victim.exited
        try {
          const ms = await Promise.all(affected.map(async ({ i, epoch }) => await waitTakeover(writers[i], t0, epoch, 20_000)))
          samples[flooded ? 'flood' : 'calm'].push(...ms)
          log(`flood: ${name}${flooded ? ` (${takers.length} agents flooded)` : ''}: ${ms.join(', ')} ms`)
        } finally {
          if (flood !== null) {
            await stopFlood(flood)
            floodFrames += flood.frames
            floodMs += flood.ms
            const after = await sumOf(takers)
            if (before !== null) {
              refused += after.refused - before.refused
              blocks += after.blocks - before.blocks
              refusedConnections += after.refusedConnections - before.refusedConnections
            }
          }
          await exited
          await cluster.restart(cluster.agents.indexOf(victim))
        }
      } catch (error) {
        failedRounds.push(`${name}: ${(error as Error).message}`)
        log(`flood: ${name} failed: ${(error as Error).message}`)
        await recover(cluster)
      }
      for (const [i, w] of writers.entries()) {
        if (w.error === null) continue
        stalledAppends.push(`${name}, ${sessions[i].sessionId}: ${w.error.message}`)
        retired.push(w)
        writers[i] = new ContinuousWriter(sessions[i], `f${i}r${round}-`, TAKEOVER_GAP_MS, 256)
      }
      try {
        await settle(cluster, sessions)
      } catch (error) {
        failedRounds.push(`${name}: the cluster did not settle after it: ${(error as Error).message}`)
        await recover(cluster)
        await settle(cluster, sessions)
      }
    }
    await Promise.all(writers.map(async (w) => await w.stop()))
    const problems: string[] = []
    for (const w of [...writers, ...retired]) {
      const id = w.session.sessionId
      if (w.error !== null && !retired.includes(w)) problems.push(`${id}: writer failed: ${w.error.message}`)
      problems.push(...(await w.check()).map((p) => `${id}: ${p}`))
    }
    const calm = latencies(samples.calm)
    const flood = latencies(samples.flood)
    return {
      nodes, sessions: count, rounds,
      calm: { ...calm, samples: samples.calm },
      flood: { ...flood, samples: samples.flood },
      ratioP50: flood.p50 / calm.p50,
      ratioP99: flood.p99 / calm.p99,
      floodFramesPerSec: floodMs === 0 ? 0 : floodFrames / (floodMs / 1_000),
      refused,
      peerBlockMs,
      blocks,
      refusedConnections,
      failedRounds,
      stalledAppends,
      acknowledged: [...writers, ...retired].reduce((n, w) => n + w.acked.length, 0),
      problems
    }
  } finally {
    for (const w of [...writers, ...retired]) w.stopped = true
    client.destroy()
    await cluster.destroy()
    rmSync(configDir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await benchFlood({ rounds: Number(process.env.BENCH_FLOOD_ROUNDS ?? 10), ...(process.env.BENCH_FLOOD_BLOCK_MS === undefined ? {} : { peerBlockMs: Number(process.env.BENCH_FLOOD_BLOCK_MS) }) })
  process.stdout.write(JSON.stringify({ ...result, calm: { ...result.calm, samples: undefined }, flood: { ...result.flood, samples: undefined } }, null, 2) + '\n')
}
