// Failure detection side by side, per cluster size, in one run: edge-agent at its
// defaults (lan profile), edge-agent with load sampling off (bandwidth only: the
// membership protocol alone), serf at its defaults, and serf probing at
// edge-agent's probe interval. One system at a time on the same machine; each
// is first left at rest (bytes sent, counted by the kernel per process the same
// way for all), then SIGKILL and SIGSTOP rounds. Ratios compare medians over the
// rounds of one run.

import { loadavg } from 'node:os'
import { membershipProfile } from '../agent/membership/config.ts'
import { fmt, log } from './lib.ts'
import type { Spread } from './lib.ts'
import { benchAgentDetection } from './detection-real.ts'
import type { AgentAtRest, AgentDetectionResult, Detection, FalseVerdicts } from './detection-real.ts'
import { benchSerfDetection, serfVariants, serfVersion } from './detection-serf.ts'
import type { SerfDetectionResult } from './detection-serf.ts'
import { SentBytes } from './sent-bytes.ts'
import type { SentRate } from './sent-bytes.ts'

export type DetectionSize = {
  nodes: number
  edgeAgent: AgentDetectionResult | { failed: string }
  membershipOnly: AgentAtRest | { failed: string }
  serf: Array<SerfDetectionResult | { variant: string; failed: string }>
}

export type DetectionResult = {
  rounds: number
  restSeconds: number
  settleSeconds: number
  probe: { intervalMs: number; timeoutMs: number }
  serfVersion: string | null
  // Why a part was not measured (serf missing, no per-process counters…).
  skipped: string[]
  sizes: DetectionSize[]
  // 1-minute load average of the machine when each system's run began (the box
  // is shared: timing under load is slower for every system alike).
  load: Array<{ run: string; loadAverage: number }>
}

// settleSeconds: how long every system runs after its cluster converged before
// its bytes at rest are counted, so that the count is the steady state and not
// the end of the joins (a joiner's record is piggybacked on probes by every
// member a few times over, as in memberlist: at 20 edge-agents probing every
// 1.5 s that takes tens of seconds), nor the fading of the start-up load (the
// load average's weight is 0.1 per one-second sample: after 20 agents started
// at once on a small box, each sees its load fall by a 10-point step, and
// re-publishes its record, every 10 s for about the first minute). 90 s by
// default: at 30, a 20-agent run counted 1,333 B/s per agent, at 90, 261.
export type DetectionOptions = { sizes: number[]; rounds: number; restSeconds: number; settleSeconds: number }

const SERF_BASE_PORTS = { defaults: 17946, 'equal-probe': 18946 }

function openCounter (skipped: string[]): SentBytes | null {
  const counter = SentBytes.open()
  if (typeof counter === 'string') {
    if (!skipped.some((s) => s.startsWith('bytes sent'))) skipped.push(`bytes sent per process: ${counter}`)
    return null
  }
  return counter
}

async function attempt<T> (what: string, run: () => Promise<T>): Promise<T | { failed: string }> {
  try {
    return await run()
  } catch (error) {
    log(`detection: ${what} failed: ${(error as Error).message}`)
    return { failed: (error as Error).message.split('\n')[0] }
  }
}

// Each run gets its own counters, removed when its processes are gone.
async function counted<T> (skipped: string[], run: (counter: SentBytes | null) => Promise<T>): Promise<T> {
  const counter = openCounter(skipped)
  try {
    return await run(counter)
  } finally {
    counter?.close()
  }
}

export async function benchDetection (options: DetectionOptions): Promise<DetectionResult> {
  const lan = membershipProfile('lan')
  const skipped: string[] = []
  const serf = serfVersion()
  const { variants, skipped: notBuilt } = serfVariants(lan.probeIntervalMs, lan.probeTimeoutMs)
  if ('skipped' in serf) skipped.push(`serf: ${serf.skipped}`)
  else skipped.push(...notBuilt)
  const sizes: DetectionSize[] = []
  const load: DetectionResult['load'] = []
  const noteLoad = (run: string): void => { load.push({ run, loadAverage: Math.round(loadavg()[0] * 10) / 10 }) }
  for (const nodes of options.sizes) {
    const { rounds, restSeconds, settleSeconds } = options
    noteLoad(`edge-agent ×${nodes}`)
    const edgeAgent = await attempt(`edge-agent ×${nodes}`, async () => await counted(skipped, async (counter) => await benchAgentDetection(nodes, { rounds, restSeconds, settleSeconds, counter, loadSampling: true })))
    const membershipOnly = await attempt(`edge-agent ×${nodes} without load sampling`, async () => await counted(skipped, async (counter) => (await benchAgentDetection(nodes, { rounds: 0, restSeconds, settleSeconds, counter, loadSampling: false })).atRest))
    const serfRuns: DetectionSize['serf'] = []
    if (!('skipped' in serf)) {
      for (const variant of variants) {
        noteLoad(`${variant.key} serf ×${nodes}`)
        const run = await attempt(`${variant.key} serf ×${nodes}`, async () => await counted(skipped, async (counter) => await benchSerfDetection(nodes, variant, { rounds, restSeconds, settleSeconds, counter, basePort: SERF_BASE_PORTS[variant.key] })))
        serfRuns.push('failed' in run ? { variant: variant.label, failed: run.failed } : run)
      }
    }
    sizes.push({ nodes, edgeAgent, membershipOnly, serf: serfRuns })
  }
  return { rounds: options.rounds, restSeconds: options.restSeconds, settleSeconds: options.settleSeconds, probe: { intervalMs: lan.probeIntervalMs, timeoutMs: lan.probeTimeoutMs }, serfVersion: 'version' in serf ? serf.version : null, skipped, sizes, load }
}

// ---- markdown ------------------------------------------------------------------

const ms = (s: Spread): string => `${fmt(s.median)} / ${fmt(s.max)}`
const ratio = (a: number, b: number): string => Number.isFinite(a / b) && b > 0 ? `${fmt(a / b, 1)}×` : '-'
const rate = (s: SentRate | null): string => s === null ? '-' : `${fmt(s.bytesPerSecPerNode.median)} (${fmt(s.bytesPerSecPerNode.max)})`
const pps = (s: SentRate | null): string => s === null ? '-' : fmt(s.packetsPerSecPerNode.median, 1)
const measured = <T extends object>(x: T | { failed: string }): x is T => !('failed' in x)
const serfMeasured = (x: DetectionSize['serf'][number]): x is SerfDetectionResult => !('failed' in x)

type Row = { label: string; kill: Detection; stop: Detection; sent: SentRate | null }

function rows (size: DetectionSize): Row[] {
  const out: Row[] = []
  if (measured(size.edgeAgent)) out.push({ label: 'edge-agent, defaults (lan)', kill: size.edgeAgent.kill, stop: size.edgeAgent.stop, sent: size.edgeAgent.atRest.sent })
  for (const s of size.serf) if (serfMeasured(s)) out.push({ label: s.variant, kill: s.kill, stop: s.stop, sent: s.atRest.sent })
  return out
}

// Dead verdicts about agents that were neither killed nor frozen, with when they
// happened: one failure seen by every survivor counts once per survivor.
function falseDeadText (f: FalseVerdicts): string {
  if (f.total === 0) return 'false dead verdicts (about agents never killed or frozen, over the whole run): 0'
  return `false dead verdicts (about agents never killed or frozen, every agent's, over the whole run): ${f.total}; ` +
    `${f.startUp} while the agents were starting (before the cluster first converged), ${f.afterConvergence} after ` +
    `(${f.distinctAfterConvergence} distinct member-incarnations; ${f.byResumedVictims} given by a victim within 30 s of its restart or SIGCONT)`
}

// One sentence on the issue's goal: at least 3× faster than serf's defaults at
// equal or lower bandwidth, at every size.
function goal (sizes: DetectionSize[]): string {
  const parts: string[] = []
  let met = true
  for (const size of sizes) {
    const serfDefaults = size.serf.filter(serfMeasured).find((s) => s.variant.startsWith('serf, defaults'))
    if (!measured(size.edgeAgent) || serfDefaults === undefined) {
      met = false
      parts.push(`${size.nodes} nodes: not measured`)
      continue
    }
    const e = size.edgeAgent
    const kill = serfDefaults.kill.last.median / e.kill.last.median
    const stop = serfDefaults.stop.last.median / e.stop.last.median
    const eb = e.atRest.sent?.bytesPerSecPerNode.median ?? NaN
    const sb = serfDefaults.atRest.sent?.bytesPerSecPerNode.median ?? NaN
    const fast = kill >= 3 && stop >= 3
    const lean = eb <= sb
    if (!fast || !lean) met = false
    parts.push(`${size.nodes} nodes: ${fmt(kill, 1)}× (SIGKILL) and ${fmt(stop, 1)}× (SIGSTOP) faster ${fast ? '(met)' : '(NOT met)'}, at ${fmt(eb)} B/s per node against serf's ${fmt(sb)} (${fmt(eb / sb, 1)}×: ${lean ? 'met' : 'NOT met'})`)
  }
  return `Goal (issue 7: detection at least 3× faster than serf's defaults at equal or lower bandwidth): ${met ? 'MET' : 'NOT MET'}. ${parts.join('; ')}.`
}

export function detectionMarkdown (r: DetectionResult): string[] {
  const lines = [`## Failure detection beside serf, real processes on loopback, ${r.rounds} rounds`, '',
    `Each system runs alone, one after the other in the same run: ${r.settleSeconds} s after its cluster converged, at rest for ` +
    `${r.restSeconds} s, then ${r.rounds} rounds of one SIGKILL (the victim restarts) and one SIGSTOP (then SIGCONT). ` +
    'Times: ms from the signal to the first and to the last survivor\'s verdict (edge-agent: `dead`; serf: `EventMemberFailed` in its log), median / max over the rounds. ' +
    'Bytes: every IP packet a process sends (UDP and TCP, headers included), counted by the kernel per process (a cgroup each, one nftables counter per cgroup: bench/sent-bytes.ts), ' +
    'B/s per node at rest, median (max) over the nodes. ' +
    `serf ${r.serfVersion ?? '(not installed)'}: \`serf agent\` at its defaults, and bench/serf-probe, the same agent code from Debian's sources with memberlist's probe interval and timeout set to edge-agent's ` +
    `(${r.probe.intervalMs} ms / ${r.probe.timeoutMs} ms; the shipped agent cannot set them: its lan, wan and local profiles all probe once a second).`, '']
  for (const size of r.sizes) {
    lines.push(`### ${size.nodes} nodes`, '', '| | SIGKILL first | SIGKILL last | SIGSTOP first | SIGSTOP last | B/s per node at rest | packets/s per node |', '|---|---|---|---|---|---|---|')
    for (const row of rows(size)) lines.push(`| ${row.label} | ${ms(row.kill.first)} | ${ms(row.kill.last)} | ${ms(row.stop.first)} | ${ms(row.stop.last)} | ${rate(row.sent)} | ${pps(row.sent)} |`)
    if (measured(size.membershipOnly)) lines.push(`| edge-agent, load sampling off (membership alone; at rest only) | | | | | ${rate(size.membershipOnly.sent)} | ${pps(size.membershipOnly.sent)} |`)
    const failures: Array<[string, object]> = [['edge-agent, defaults', size.edgeAgent], ['edge-agent, load sampling off', size.membershipOnly], ...size.serf.map((s): [string, object] => [s.variant, s])]
    for (const [label, x] of failures) if ('failed' in x) lines.push('', `Not measured: ${label}: ${String(x.failed)}.`)
    const e = size.edgeAgent
    if (measured(e)) {
      lines.push('')
      for (const s of size.serf.filter(serfMeasured)) {
        lines.push(`- ${s.variant} / edge-agent, median time to the last verdict: SIGKILL ${ratio(s.kill.last.median, e.kill.last.median)}, SIGSTOP ${ratio(s.stop.last.median, e.stop.last.median)}; ` +
          `bytes at rest, edge-agent / serf: ${ratio(e.atRest.sent?.bytesPerSecPerNode.median ?? NaN, s.atRest.sent?.bytesPerSecPerNode.median ?? NaN)}.`)
      }
      const packets = e.atRest.sent?.packetsPerSecPerNode.median ?? NaN
      lines.push(`- edge-agent at rest, its own counts: ${fmt(e.atRest.messagesPerSecPerNode.median, 1)} messages/s per node (${fmt(packets / e.atRest.messagesPerSecPerNode.median, 1)} IP packets per message), ` +
        `${fmt(e.atRest.payloadBytesPerSecPerNode.median)} B/s of message payload (the rest of the bytes above is libp2p framing, noise, yamux, gossipsub and TCP/IP headers); ${falseDeadText(e.falseDeadVerdicts)}.`)
      if (e.atRest.publishes !== undefined) {
        const off = measured(size.membershipOnly) ? size.membershipOnly.publishes : undefined
        lines.push(`- Records the ${size.nodes} agents published in the ${fmt(e.atRest.seconds)} s at rest, all together: ${e.atRest.publishes}${off === undefined ? '' : ` (${off} with load sampling off)`}. ` +
          'At rest a record is published when its smoothed load moves by `loadChangeThreshold` (0.1), at most every 10 s per agent; each publish costs every member a few forwarded copies, so a handful of them moves the bytes per node above. ' +
          'Agents sharing one box all read its CPU: one burst of other work on the box can make each of them publish once.')
      }
      const silent = [e.atRest.sent, ...size.serf.filter(serfMeasured).map((s) => s.atRest.sent)].flatMap((s) => s?.silent ?? [])
      if (silent.length > 0) lines.push(`- WARNING: no packet counted for ${silent.join(', ')}: their byte figures are wrong.`)
    }
    lines.push('')
  }
  lines.push(goal(r.sizes))
  if (r.load.length > 0) lines.push('', `Machine load (1-minute average, 2 cores shared with other work) when each run began: ${r.load.map((l) => `${l.run} ${fmt(l.loadAverage, 1)}`).join(', ')}.`)
  if (r.skipped.length > 0) lines.push('', `Skipped: ${r.skipped.join('; ')}.`)
  return lines
}
