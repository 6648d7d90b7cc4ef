// Failover of state, side by side in one run: Redis (primary + 2 replicas + 3
// sentinels, bench/failover-redis.ts) against an edge-agent group of 3 (3 real
// agents on 127.0.0.1, R = 2, one terminal appending through the EdgeClient).
// Each round SIGKILLs (or SIGSTOPs) the primary / the session's owner while the
// writer keeps writing, one write in flight, TAKEOVER_GAP_MS apart, 256-byte
// values; it measures the ms from the signal to the first acknowledged write on
// the new primary / owner, and counts the acknowledged writes the new one does
// not hold.
//
//   node bench/failover.ts                 prints the JSON of one run
//   BENCH_FAILOVER_ROUNDS=5                rounds per system, configuration and signal

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../agent/client/index.ts'
import { LocalCluster } from '../sim/processes.ts'
import type { AgentEventLine } from '../sim/processes.ts'
import { ContinuousWriter, waitGroupRepaired, waitTakeover } from '../sim/writer.ts'
import { logRound, redisRound, redisVersion } from './failover-redis.ts'
import type { RedisRound, RedisSetup, WaitMode } from './failover-redis.ts'
import { fmt, log, median, sleep } from './lib.ts'
import { TAKEOVER_GAP_MS, recover } from './sessions-real.ts'

type Signal = 'SIGKILL' | 'SIGSTOP'

// The shortest sane down-after for Sentinel here: sentinels PING every second
// (every down-after when it is shorter), and on this shared 2-core box a
// primary's event loop or a replica's sync can stall for a few hundred ms; below
// about 1 s, false failovers (which lose writes without WAIT) start to show up.
// failover-timeout: small, so a failed attempt is retried soon.
export const REDIS_SETUP: RedisSetup = { downAfterMs: 1_000, failoverTimeoutMs: 2_000 }
const VALUE_BYTES = 256

export type RedisRow = { wait: WaitMode; signal: Signal; rounds: RedisRound[]; failed: string[] }

// One edge-agent round, with the takeover's steps as the agents logged them (ms
// from the signal; null when no agent logged the step).
export type EdgeRound = { takeoverMs: number; suspectedMs: number | null; electionMs: number | null; promotedMs: number | null; lost: number; acknowledged: number }
export type EdgeRow = { signal: Signal; rounds: EdgeRound[]; failed: string[] }

export type FailoverResult = {
  redisVersion: string | null
  setup: RedisSetup
  valueBytes: number
  gapMs: number
  redis: RedisRow[] | { skipped: string }
  edge: EdgeRow[]
}

export async function benchFailover (rounds: number): Promise<FailoverResult> {
  const version = await redisVersion()
  const edge: EdgeRow[] = await edgeRounds(rounds)
  let redis: FailoverResult['redis'] = { skipped: 'redis-server is not installed (bench/setup.sh installs it as root)' }
  if (version !== null) {
    const rows: RedisRow[] = []
    for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
      for (const wait of [0, 2] as const) {
        const row: RedisRow = { wait, signal, rounds: [], failed: [] }
        for (let i = 0; i < rounds; i++) {
          try {
            const round = await redisRound(REDIS_SETUP, wait, signal, TAKEOVER_GAP_MS, VALUE_BYTES)
            logRound(`redis ${wait === 0 ? 'without WAIT' : 'WAIT 2'} ${signal} round ${i + 1}/${rounds}`, round)
            row.rounds.push(round)
          } catch (error) {
            row.failed.push(`round ${i + 1}: ${(error as Error).message}`)
            log(`failover: redis round failed: ${(error as Error).message}`)
          }
        }
        rows.push(row)
      }
    }
    redis = rows
  }
  return { redisVersion: version, setup: REDIS_SETUP, valueBytes: VALUE_BYTES, gapMs: TAKEOVER_GAP_MS, redis, edge }
}

async function edgeRounds (rounds: number): Promise<EdgeRow[]> {
  const configDir = mkdtempSync(join(tmpdir(), 'edge-agent-failover-'))
  const configFile = join(configDir, 'agent.json')
  // As in the sessions bench: no load filter (the load on this box is the bench's).
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  log('failover: starting 3 agents')
  const cluster = await LocalCluster.start({ nodes: 3, services: 'log', configure: () => ({ extraArgs: ['--config', configFile] }) })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http) })
  const session = await (async () => {
    await cluster.waitConverged(60_000)
    return await client.open({ terminalId: 'failover-0', service: 'log' })
  })()
  const writer = new ContinuousWriter(session, 'f', TAKEOVER_GAP_MS, VALUE_BYTES)
  const rows: EdgeRow[] = []
  // The check covers the whole session: a round's figures are the increase.
  let before = { lost: 0, acknowledged: 0 }
  try {
    await writer.waitFor(20)
    for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
      const row: EdgeRow = { signal, rounds: [], failed: [] }
      for (let i = 0; i < rounds; i++) {
        try {
          const total = await edgeRound(cluster, session, writer, signal)
          const round = { ...total, lost: total.lost - before.lost, acknowledged: total.acknowledged - before.acknowledged }
          before = total
          log(`failover: edge-agent ${signal} round ${i + 1}/${rounds}: first acknowledged append at the new owner after ${round.takeoverMs} ms ` +
            `(suspected ${round.suspectedMs}, election ${round.electionMs}, promoted ${round.promotedMs}); ${round.lost} of ${round.acknowledged} acknowledged appends lost`)
          row.rounds.push(round)
        } catch (error) {
          row.failed.push(`round ${i + 1}: ${(error as Error).message}`)
          log(`failover: edge-agent ${signal} round ${i + 1} failed: ${(error as Error).message}`)
          await recover(cluster)
        }
        await cluster.waitConverged(30_000)
        await waitGroupRepaired(session, [], 3, 30_000)
        await sleep(2_500)
      }
      rows.push(row)
    }
    return rows
  } finally {
    await writer.stop()
    client.destroy()
    await cluster.destroy()
    rmSync(configDir, { recursive: true, force: true })
  }
}

async function edgeRound (cluster: LocalCluster, session: Awaited<ReturnType<EdgeClient['open']>>, writer: ContinuousWriter, signal: Signal): Promise<EdgeRound> {
  const victim = cluster.agents.find((a) => a.id === session.owner?.id)
  if (victim === undefined) throw new Error(`the owner of ${session.sessionId} is unknown`)
  const epoch = session.epoch
  const t0 = Date.now()
  victim.signal(signal)
  let takeoverMs: number
  try {
    takeoverMs = await waitTakeover(writer, t0, epoch, 15_000)
  } finally {
    if (signal === 'SIGSTOP') victim.signal('SIGCONT')
    else await cluster.restart(cluster.agents.indexOf(victim))
  }
  const steps = cluster.agents.flatMap((a) => a.events).filter((e) => e.atMs >= t0 && e.sessionId === session.sessionId)
  const first = (event: string): number | null => {
    const found = steps.filter((e: AgentEventLine) => e.event === event).map((e) => e.atMs - t0)
    return found.length === 0 ? null : Math.min(...found)
  }
  const problems = await writer.check()
  if (writer.error !== null) throw writer.error
  return {
    takeoverMs,
    suspectedMs: first('owner-suspected'),
    electionMs: first('election-started'),
    promotedMs: first('promoted'),
    lost: problems.filter((p) => p.endsWith('is missing')).length,
    acknowledged: writer.acked.length
  }
}

// ---- the report ------------------------------------------------------------------

const med = (values: Array<number | null>): string => {
  const known = values.filter((v): v is number => v !== null)
  return known.length === 0 ? '-' : fmt(median(known))
}

export function failoverMarkdown (f: FailoverResult): string[] {
  const lines = ['## Failover of state: Redis Sentinel vs an edge-agent group of 3, on loopback', '',
    `One writer, one write in flight, ${f.gapMs} ms between writes, ${f.valueBytes}-byte values. ms from the signal to the first acknowledged write on the new primary / owner (median and max over the rounds); ` +
    'lost: acknowledged writes the new primary / owner does not hold, summed over the rounds.', '',
    '| system | signal | rounds | first acknowledged write, median | max | lost / acknowledged |', '|---|---|---|---|---|---|']
  const edgeMedian = new Map<Signal, number>()
  for (const row of f.edge) {
    const times = row.rounds.map((r) => r.takeoverMs)
    edgeMedian.set(row.signal, median(times))
    const lost = row.rounds.reduce((sum, r) => sum + r.lost, 0)
    const acked = row.rounds.reduce((sum, r) => sum + r.acknowledged, 0)
    lines.push(`| edge-agent, 3 agents, R = 2 (every live member, at least a majority) | ${row.signal} | ${row.rounds.length}${row.failed.length > 0 ? ` (+${row.failed.length} failed)` : ''} | ${fmt(median(times))} | ${fmt(Math.max(...times))} | ${lost} / ${acked} |`)
  }
  const ratios: string[] = []
  if (!Array.isArray(f.redis)) {
    lines.push(`| Redis Sentinel | | | skipped: ${f.redis.skipped} | | |`)
  } else {
    for (const row of f.redis) {
      const times = row.rounds.map((r) => r.takeoverMs)
      const lost = row.rounds.reduce((sum, r) => sum + r.lost, 0)
      const acked = row.rounds.reduce((sum, r) => sum + r.acknowledged, 0)
      const name = `Redis ${f.redisVersion ?? ''} Sentinel, ${row.wait === 0 ? 'without WAIT' : 'WAIT 2'}`
      lines.push(`| ${name} | ${row.signal} | ${row.rounds.length}${row.failed.length > 0 ? ` (+${row.failed.length} failed)` : ''} | ${fmt(median(times))} | ${fmt(Math.max(...times))} | ${lost} / ${acked} |`)
      const edge = edgeMedian.get(row.signal)
      if (edge !== undefined && Number.isFinite(edge) && times.length > 0) ratios.push(`${row.wait === 0 ? 'without WAIT' : 'WAIT 2'} ${row.signal} ${fmt(median(times) / edge, 1)}×`)
    }
  }
  lines.push('', `Ratio Redis / edge-agent, median time to the first acknowledged write: ${ratios.length === 0 ? '-' : ratios.join(', ')}.`, '')
  lines.push('Where the time goes (medians, ms from the signal). edge-agent, from the agents\' own events: the first member suspecting the owner, ' +
    'the winning candidate\'s real vote, its promotion, the terminal\'s first acknowledged append.', '',
    '| edge-agent | suspected | election | promoted | acknowledged |', '|---|---|---|---|---|')
  for (const row of f.edge) lines.push(`| ${row.signal} | ${med(row.rounds.map((r) => r.suspectedMs))} | ${med(row.rounds.map((r) => r.electionMs))} | ${med(row.rounds.map((r) => r.promotedMs))} | ${med(row.rounds.map((r) => r.takeoverMs))} |`)
  if (Array.isArray(f.redis)) {
    lines.push('', `Redis: the sentinels naming the new primary (down-after-milliseconds ${f.setup.downAfterMs}, failover-timeout ${f.setup.failoverTimeoutMs}, quorum 2), ` +
      'the first write it took, the first write acknowledged there.', '',
      '| Redis | signal | sentinels switched | first write taken | acknowledged |', '|---|---|---|---|---|')
    for (const row of f.redis) {
      lines.push(`| ${row.wait === 0 ? 'without WAIT' : 'WAIT 2'} | ${row.signal} | ${med(row.rounds.map((r) => r.switchMs))} | ${med(row.rounds.map((r) => r.firstWriteMs))} | ${med(row.rounds.map((r) => r.takeoverMs))} |`)
    }
    const failed = f.redis.flatMap((row) => row.failed.map((text) => `${row.wait === 0 ? 'without WAIT' : 'WAIT 2'} ${row.signal} ${text}`))
    lines.push('', 'Setup: each Redis round starts a fresh primary, 2 replicas and 3 sentinels in a temp directory (in memory: no RDB, no AOF). ' +
      'The writer (RPUSH, a minimal RESP client over node:net, 800 ms request timeout, as the EdgeClient\'s) asks the sentinels for the primary after an error, ' +
      'and, with WAIT, after a WAIT that fell short (timeout 1 s). ' +
      'With WAIT 2 only two replicas can acknowledge: after a SIGKILL the old primary, which lost its memory, is restarted as a replica once the sentinels name the new primary ' +
      '(without it no write could be acknowledged again); a frozen primary gets SIGCONT at that moment and the sentinels demote it. ' +
      'The edge-agent\'s killed owner restarts from its data directory after the takeover, a frozen one gets SIGCONT then; its group needs no third member to acknowledge. ' +
      'A frozen Redis primary that resumes is still a primary until the sentinels demote it, about 10 s later here (Sentinel lets an instance report a stale role for a while before it reconfigures it); ' +
      'a writer still connected to it keeps writing there (without WAIT, acknowledged; with WAIT 2, not, as its replicas have left it, so that writer moves on), ' +
      'and the demotion\'s resync discards those writes: the lost writes above. WAIT 2 then waits for the demoted primary to resync as the second replica. ' +
      'A frozen edge-agent owner that resumes has no lease (its members\' promises ran out while it was frozen) and acknowledges nothing.' +
      (failed.length === 0 ? '' : ` Failed rounds: ${failed.join('; ')}.`))
  }
  const edgeFailed = f.edge.flatMap((row) => row.failed.map((text) => `${row.signal} ${text}`))
  if (edgeFailed.length > 0) lines.push('', `edge-agent failed rounds: ${edgeFailed.join('; ')}.`)
  return lines
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await benchFailover(Number(process.env.BENCH_FAILOVER_ROUNDS ?? 5))
  process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  process.stdout.write(failoverMarkdown(result).join('\n') + '\n')
}
