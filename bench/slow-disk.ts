// One agent on a slow disk, real agents on loopback: 4 agents, the fourth under
// strace adding `delayMs` to each of its fsyncs (sim/slow-fsync.ts), 12
// terminals appending every 20 ms through the three others. Two settings
// alternate in one run: the defaults, and the rule before this existed
// (sessions.memberLagMs 500, which is memberStaleMs, and slowFsyncMs 0: a slow
// standby is waited for while it answers within 500 ms, a slow owner keeps its
// sessions). Each round warms up 8 s (the handover happens then), then
// measures every write for 10 s, grouped by what the slow agent was in the
// session's group when it opened: its owner, a standby, or not in it.
//
//   node bench/slow-disk.ts          (BENCH_SLOW_DISK_ROUNDS=2 rounds per setting)

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EdgeClient } from '../agent/client/index.ts'
import type { Session } from '../agent/client/index.ts'
import { LocalCluster } from '../sim/processes.ts'
import type { AgentProcess } from '../sim/processes.ts'
import { slowFsyncUnavailable, slowFsyncWrap } from '../sim/slow-fsync.ts'
import { ContinuousWriter, roleIn } from '../sim/writer.ts'
import { fmt, log, median, percentile } from './lib.ts'

export type SlowDiskGroup = { kind: 'owned' | 'standby' | 'without'; sessions: number; n: number; p50: number; p99: number; max: number }
export type SlowDiskRun = {
  setting: 'defaults' | 'before'
  round: number
  groups: SlowDiskGroup[]
  // Sessions the slow agent handed over, and ms from the writers' start to the last.
  resigned: number
  handoverMs: number | null
  acknowledged: number
  problems: string[]
  loadAverage: number
}
export type SlowDiskResult = { delayMs: number; nodes: number; sessions: number; gapMs: number; warmS: number; windowS: number; runs: SlowDiskRun[]; skipped?: string }

const NODES = 4
const SESSIONS = 12
const GAP_MS = 20
const WARM_S = 8
const WINDOW_S = 10
const SETTINGS: Record<SlowDiskRun['setting'], Record<string, number>> = {
  defaults: {},
  before: { memberLagMs: 500, slowFsyncMs: 0 }
}

function kindOf (session: Session, slow: AgentProcess): SlowDiskGroup['kind'] {
  const role = roleIn(session, slow.id)
  return role === 'owner' ? 'owned' : role ?? 'without'
}

async function oneRun (setting: SlowDiskRun['setting'], round: number, delayMs: number): Promise<SlowDiskRun> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-bench-slowdisk-'))
  const configFile = join(dir, 'config.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1, ...SETTINGS[setting] } }))
  const loadAverage = Math.round(loadavg()[0] * 10) / 10
  let cluster: LocalCluster | null = null
  const writers: ContinuousWriter[] = []
  try {
    cluster = await LocalCluster.start({
      nodes: NODES,
      services: 'log',
      configure: (i) => ({ extraArgs: ['--config', configFile], ...(i === NODES - 1 ? { wrap: slowFsyncWrap(delayMs) } : {}) })
    })
    await cluster.waitConverged(30_000)
    const slow = cluster.agents[NODES - 1]
    const client = new EdgeClient({ agents: cluster.agents.slice(0, NODES - 1).map((a) => a.http), requestTimeoutMs: 5_000, deadlineMs: 30_000 })
    const sessions: Session[] = []
    for (let i = 0; i < SESSIONS; i++) sessions.push(await client.open({ terminalId: `bench-${setting}-${round}-${i}`, service: 'log' }))
    const kinds = sessions.map((s) => kindOf(s, slow))
    const started = Date.now()
    for (const [i, session] of sessions.entries()) writers.push(new ContinuousWriter(session, `s${i}-`, GAP_MS))
    await new Promise((resolve) => setTimeout(resolve, WARM_S * 1000))
    const from = Date.now()
    await new Promise((resolve) => setTimeout(resolve, WINDOW_S * 1000))
    const to = Date.now()
    for (const writer of writers) await writer.stop()
    const groups: SlowDiskGroup[] = []
    for (const kind of ['owned', 'standby', 'without'] as const) {
      const latencies = writers.filter((_, i) => kinds[i] === kind).flatMap((w) => w.acked.filter((a) => a.atMs >= from && a.atMs < to).map((a) => a.latencyMs))
      groups.push({ kind, sessions: kinds.filter((k) => k === kind).length, n: latencies.length, p50: median(latencies), p99: percentile(latencies, 99), max: latencies.length === 0 ? NaN : Math.max(...latencies) })
    }
    const resigned = slow.events.filter((e) => e.event === 'resigned')
    const problems: string[] = []
    for (const [i, writer] of writers.entries()) {
      if (writer.error !== null) problems.push(`session ${i}: ${writer.error.message}`)
      for (const p of await writer.check()) problems.push(`session ${i}: ${p}`)
    }
    return {
      setting, round, groups, resigned: resigned.length,
      handoverMs: resigned.length === 0 ? null : Math.max(...resigned.map((e) => e.atMs)) - started,
      acknowledged: writers.reduce((sum, w) => sum + w.acked.length, 0), problems, loadAverage
    }
  } finally {
    for (const writer of writers) writer.stopped = true
    await cluster?.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function benchSlowDisk (rounds = Number(process.env.BENCH_SLOW_DISK_ROUNDS ?? 2), delayMs = 200): Promise<SlowDiskResult> {
  const result: SlowDiskResult = { delayMs, nodes: NODES, sessions: SESSIONS, gapMs: GAP_MS, warmS: WARM_S, windowS: WINDOW_S, runs: [] }
  const unavailable = slowFsyncUnavailable()
  if (unavailable !== null) {
    log(`slow disk: skipped (${unavailable})`)
    return { ...result, skipped: unavailable }
  }
  for (let round = 1; round <= rounds; round++) {
    for (const setting of ['before', 'defaults'] as const) {
      log(`slow disk: ${setting}, round ${round}`)
      result.runs.push(await oneRun(setting, round, delayMs))
    }
  }
  return result
}

export function slowDiskMarkdown (r: SlowDiskResult): string[] {
  const lines = [`## One agent on a slow disk (${r.delayMs} ms per fsync), ${r.nodes} real agents on loopback`, '',
    `The ${r.nodes}th agent runs under strace, which adds ${r.delayMs} ms to each of its fsyncs and fdatasyncs (a worn SD card). ${r.sessions} terminals append every ${r.gapMs} ms through the other three. ` +
    'Two settings alternate in one run: the defaults, and the rule before (`sessions.memberLagMs` 500, which is `memberStaleMs`, and `slowFsyncMs` 0: a slow standby is waited for while it answers within 500 ms; a slow owner keeps its sessions). ' +
    `Each round warms up ${r.warmS} s (the handover happens then), then measures every write for ${r.windowS} s. Write latency, ms, p50 / p99 (max), by what the slow agent was in the session's group when it opened (sessions).`, '']
  if (r.skipped !== undefined) return [...lines, `Skipped: ${r.skipped}.`]
  lines.push('| setting | round | sessions it owned | it was a standby of | without it | handed over | load |', '|---|---|---|---|---|---|---|')
  const cell = (g: SlowDiskGroup | undefined): string => g === undefined || g.n === 0 ? '-' : `${fmt(g.p50)} / ${fmt(g.p99)} (${fmt(g.max)}), ${g.sessions}`
  for (const run of r.runs) {
    const g = (kind: SlowDiskGroup['kind']): SlowDiskGroup | undefined => run.groups.find((x) => x.kind === kind)
    lines.push(`| ${run.setting === 'defaults' ? 'defaults' : 'before'} | ${run.round} | ${cell(g('owned'))} | ${cell(g('standby'))} | ${cell(g('without'))} | ${run.resigned === 0 ? 'none' : `${run.resigned}, the last ${fmt(run.handoverMs ?? NaN)} ms after the writes began`} | ${fmt(run.loadAverage, 1)} |`)
  }
  const ratio = (kind: SlowDiskGroup['kind']): string => {
    const p50 = (setting: SlowDiskRun['setting']): number => median(r.runs.filter((x) => x.setting === setting).map((x) => x.groups.find((g) => g.kind === kind)?.p50 ?? NaN).filter(Number.isFinite))
    return fmt(p50('before') / p50('defaults'), 1)
  }
  const problems = r.runs.flatMap((x) => x.problems)
  lines.push('', `Before / defaults, median p50: sessions it owned ${ratio('owned')}×, sessions it was a standby of ${ratio('standby')}×, without it ${ratio('without')}×. ` +
    `The check after each round: ${r.runs.reduce((s, x) => s + x.acknowledged, 0)} acknowledged appends, ${problems.length === 0 ? 'every one present once, in order' : 'PROBLEMS: ' + problems.join('; ')}.`)
  return lines
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await benchSlowDisk()
  console.log(slowDiskMarkdown(result).join('\n'))
}
