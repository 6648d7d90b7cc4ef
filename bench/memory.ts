// Memory of an agent: at rest in a small cluster, and what each open session
// adds. `nodes` agents on loopback (lan profile, R = 2: each session is held by
// three agents, its owner and two standbys), sampled at rest; then `sessions`
// sessions opened through the EdgeClient (one terminal each, no appends) and the
// agents sampled again at half and at all of them, once they are quiet.
//
// Figures per agent: resident set size from /proc/<pid>/status (what the kernel
// charges the process: heap, code, buffers, sqlite's cache) and V8's heap in use
// from its /metrics. Nothing forces a garbage collection, so each sample takes
// five reads a second apart: the median RSS, and the least heap in use (the
// nearest to the live size, after a collection).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../agent/client/index.ts'
import { LocalCluster } from '../sim/processes.ts'
import type { AgentProcess } from '../sim/processes.ts'
import { fmt, log, median, percentile, sleep, spread } from './lib.ts'
import type { Spread } from './lib.ts'

export type MemorySample = {
  // Sessions opened in the cluster so far.
  opened: number
  // Per agent, in cluster order.
  held: number[]
  // Of those, the copies held quiet (agent/sessions/quiet.ts; absent in older results).
  quiet?: number[]
  rssMiB: number[]
  heapUsedMiB: number[]
  // CPU time over the sample's 4 s, % of one core (an awake session's owner
  // heartbeats its standbys every sessions.heartbeatMs; a quiet one's agent
  // beats each peer once for all of them).
  cpuPercent: number[]
}

export type MemoryResult = {
  nodes: number
  sessions: number
  openSeconds: number
  samples: MemorySample[]
  atRest: { rssMiB: Spread; heapUsedMiB: Spread }
  // Growth over the whole cluster divided by the sessions opened (each is held
  // three times), and divided by the session copies held (owner or standby).
  perSession: { rssKiB: number; heapKiB: number }
  perHeldCopy: { rssKiB: number; heapKiB: number }
  // The same from the first sample with sessions to the last: the cost of one
  // more session, without the one-off costs of the first ones (caches, streams
  // to the group's peers, code compiled on first use).
  marginal: { fromSessions: number; perSession: { rssKiB: number; heapKiB: number }; perHeldCopy: { rssKiB: number; heapKiB: number } }
  openFailures: number
  // Why fewer than the sessions asked for were opened, if they were.
  stopped: string | null
}

export type MemoryOptions = { nodes: number; sessions: number }

// Sum of every sample of one metric (all label sets) in Prometheus text, or NaN
// when the metric is absent.
export function metricSum (text: string, name: string): number {
  let total = 0
  let found = false
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line)
    if (match === null || match[1] !== name) continue
    const value = Number(match[3])
    if (!Number.isFinite(value)) continue
    total += value
    found = true
  }
  return found ? total : NaN
}

const MiB = 2 ** 20
// Terminals opening sessions at once.
const OPEN_CONCURRENCY = Number(process.env.BENCH_MEMORY_OPENERS ?? 1)

async function read (agent: AgentProcess): Promise<{ held: number; quiet: number; rss: number; heap: number }> {
  const text = await (await fetch(`${agent.http}/metrics`)).text()
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))?.[1] ?? NaN)
  return {
    held: metricSum(text, 'edge_agent_sessions'),
    quiet: metricSum(text, 'edge_agent_sessions_quiet'),
    rss: rssKiB / 1024,
    heap: metricSum(text, 'edge_agent_process_nodejs_heap_size_used_bytes') / MiB
  }
}

// utime + stime of a process, seconds (/proc/<pid>/stat, fields 14 and 15).
function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

async function sample (agents: AgentProcess[], opened: number): Promise<MemorySample> {
  const cpu0 = agents.map((a) => cpuSeconds(a.pid))
  const t0 = Date.now()
  const reads: Array<Awaited<ReturnType<typeof read>>[]> = []
  for (let i = 0; i < 5; i++) {
    if (i > 0) await sleep(1_000)
    reads.push(await Promise.all(agents.map(read)))
  }
  const per = (k: 'held' | 'quiet' | 'rss' | 'heap', pick: (xs: number[]) => number): number[] => agents.map((_, a) => pick(reads.map((r) => r[a][k])))
  const elapsed = (Date.now() - t0) / 1000
  const cpuPercent = agents.map((a, i) => 100 * (cpuSeconds(a.pid) - cpu0[i]) / elapsed)
  const s = { opened, held: per('held', median), quiet: per('quiet', median), rssMiB: per('rss', median), heapUsedMiB: per('heap', (xs) => Math.min(...xs)), cpuPercent }
  log(`memory: ${opened} sessions open: CPU ${cpuPercent.map((x) => x.toFixed(0)).join(', ')}%; RSS ${s.rssMiB.map((x) => x.toFixed(1)).join(', ')} MiB; heap ${s.heapUsedMiB.map((x) => x.toFixed(1)).join(', ')} MiB; held ${s.held.join(', ')}`)
  return s
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)

export async function benchMemory (options: MemoryOptions): Promise<MemoryResult> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-bench-'))
  const config = join(dir, 'agent.json')
  // No load filter: on a shared box the agents' load would refuse opens.
  writeFileSync(config, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  log(`memory: starting ${options.nodes} agents`)
  const cluster = await LocalCluster.start({ nodes: options.nodes, services: 'log', configure: () => ({ extraArgs: ['--config', config] }) })
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http) })
  try {
    await cluster.waitConverged(60_000)
    await sleep(5_000)
    const samples = [await sample(cluster.agents, 0)]
    let opened = 0
    let failures = 0
    let next = 0
    let stopped: string | null = null
    const openMs: number[] = []
    const t0 = Date.now()
    const openUpTo = async (target: number): Promise<void> => {
      const worker = async (): Promise<void> => {
        while (next < target) {
          const i = next++
          for (let attempt = 1; ; attempt++) {
            try {
              const t = Date.now()
              await client.open({ terminalId: `memory-${i}`, service: 'log' })
              openMs.push(Date.now() - t)
              opened++
              break
            } catch (error) {
              failures++
              if (attempt === 3) throw new Error(`the open of session ${i + 1} failed 3 times (last: ${(error as Error).message.split('\n')[0]})`)
              await sleep(1_000)
            }
          }
        }
      }
      await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, worker))
    }
    for (const target of [Math.floor(options.sessions / 4), Math.floor(options.sessions / 2), options.sessions]) {
      try {
        await openUpTo(target)
      } catch (error) {
        stopped = (error as Error).message
        log(`memory: stopped opening at ${opened} sessions: ${stopped}`)
      }
      log(`memory: ${opened} sessions open; open latency p50 ${percentile(openMs, 50)} ms, p99 ${percentile(openMs, 99)} ms, max ${Math.max(...openMs)} ms`)
      await sleep(5_000)
      samples.push(await sample(cluster.agents, opened))
      if (stopped !== null) break
    }
    const openSeconds = (Date.now() - t0) / 1000
    const last = samples[samples.length - 1]
    const growth = (from: MemorySample): { perSession: { rssKiB: number; heapKiB: number }; perHeldCopy: { rssKiB: number; heapKiB: number } } => {
      const rss = (sum(last.rssMiB) - sum(from.rssMiB)) * 1024
      const heap = (sum(last.heapUsedMiB) - sum(from.heapUsedMiB)) * 1024
      const sessions = last.opened - from.opened
      const copies = sum(last.held) - sum(from.held)
      return { perSession: { rssKiB: rss / sessions, heapKiB: heap / sessions }, perHeldCopy: { rssKiB: rss / copies, heapKiB: heap / copies } }
    }
    const whole = growth(samples[0])
    return {
      nodes: options.nodes,
      sessions: opened,
      openSeconds,
      samples,
      atRest: { rssMiB: spread(samples[0].rssMiB), heapUsedMiB: spread(samples[0].heapUsedMiB) },
      ...whole,
      marginal: { fromSessions: samples[1].opened, ...growth(samples[1]) },
      openFailures: failures,
      stopped
    }
  } finally {
    client.destroy()
    await cluster.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
}

export function memoryMarkdown (m: MemoryResult): string[] {
  const lines = [`## Memory, ${m.nodes} real agents on loopback (lan profile, R = 2)`, '',
    'Per agent, five reads 1 s apart: resident set size (/proc, the median) and V8 heap in use (/metrics, the least: no collection is forced), ' +
    `at rest, then after opening sessions through the EdgeClient (one terminal each, ${OPEN_CONCURRENCY} at a time, no appends; each session is held by its owner and two standbys). ` +
    'A session that has logged nothing for quietAfterMs (1 s) goes quiet: its heartbeats stop and one beat per pair of agents keeps it (README, "Quiet sessions"); the quiet copies are in parentheses. ' +
    `${m.sessions} sessions opened in ${fmt(m.openSeconds, 1)} s (including the samples)${m.openFailures > 0 ? `, ${m.openFailures} opens refused and retried` : ''}.`, '',
    '| sessions open | copies held per agent | RSS MiB per agent, median (max) | heap MiB per agent, median (max) | CPU % of a core per agent, median (max) |', '|---|---|---|---|---|']
  for (const s of m.samples) {
    const rss = spread(s.rssMiB)
    const heap = spread(s.heapUsedMiB)
    const cpu = spread(s.cpuPercent)
    lines.push(`| ${s.opened} | ${s.held.map((n, i) => s.quiet === undefined ? `${n}` : `${n} (${s.quiet[i]})`).join(', ')} | ${fmt(rss.median, 1)} (${fmt(rss.max, 1)}) | ${fmt(heap.median, 1)} (${fmt(heap.max, 1)}) | ${fmt(cpu.median)} (${fmt(cpu.max)}) |`)
  }
  lines.push('', `At rest: RSS ${fmt(m.atRest.rssMiB.median, 1)} MiB per agent (median), heap ${fmt(m.atRest.heapUsedMiB.median, 1)} MiB. ` +
    `Per open session, growth of the whole cluster / sessions: RSS ${fmt(m.perSession.rssKiB, 1)} KiB, heap ${fmt(m.perSession.heapKiB, 1)} KiB; ` +
    `per copy held (owner or standby): RSS ${fmt(m.perHeldCopy.rssKiB, 1)} KiB, heap ${fmt(m.perHeldCopy.heapKiB, 1)} KiB. ` +
    `One more session, from ${m.marginal.fromSessions} open to ${m.sessions} (without the first sessions' one-off costs): RSS ${fmt(m.marginal.perSession.rssKiB, 1)} KiB, heap ${fmt(m.marginal.perSession.heapKiB, 1)} KiB per session; ` +
    `${fmt(m.marginal.perHeldCopy.rssKiB, 1)} KiB and ${fmt(m.marginal.perHeldCopy.heapKiB, 1)} KiB per copy held.` +
    (m.stopped === null ? '' : ` Opening stopped short of the sessions asked for: ${m.stopped}.`))
  return lines
}
