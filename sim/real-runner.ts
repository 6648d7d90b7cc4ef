// `edge-agent sim --real`: the scenario on real agent processes on 127.0.0.1,
// driven through their CLI and HTTP API, with real signals and real sockets:
// a crash is SIGKILL (a restart reuses the data directory), a freeze is
// SIGSTOP/SIGCONT. Terminals are EdgeClients appending as the scenario says.
// The same checkers judge the history, from the terminals' acknowledgements and
// the agents' --json events. Wall-clock timing: not reproducible byte for byte.
//
// Partitions, slow nodes, loss and delay need network control this mode does not
// have (network namespaces or a fault-injection gate): scenarios with them are
// refused up front, with the reason.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SeededRandom, deriveSeed } from '../agent/core/random.ts'
import { EdgeClient } from '../agent/client/index.ts'
import type { Session } from '../agent/client/index.ts'
import { LocalCluster } from './processes.ts'
import type { AgentProcess } from './processes.ts'
import type { NodeStateName, SimRunResult } from './result.ts'
import { placeNodes, quantiles } from './runner.ts'
import { ScenarioError } from './scenarios.ts'
import type { FaultName, Scenario } from './scenarios.ts'
import { ContinuousWriter } from './writer.ts'

export const REAL_MAX_NODES = 32
const REAL_FAULTS: FaultName[] = ['crash', 'restart', 'pause', 'resume']
const HEALTHY_FOR_MS = 5_000
const SAMPLE_MS = 5_000

export type RealRunOptions = { seed: number; scenario: Scenario; onProgress?: (doneMs: number, totalMs: number, phase: string) => void }

// Why this scenario cannot run on real processes, or null.
export function realModeRefusal (scenario: Scenario): string | null {
  if (scenario.nodes > REAL_MAX_NODES) return `--real runs at most ${REAL_MAX_NODES} agent processes on this machine (asked for ${scenario.nodes})`
  const faults = [...scenario.faults.map((f) => f.fault), ...(scenario.random?.faults ?? [])]
  const unsupported = [...new Set(faults.filter((f) => !REAL_FAULTS.includes(f)))]
  if (unsupported.length > 0) return `--real supports only ${REAL_FAULTS.join(', ')} faults; this scenario has ${unsupported.join(', ')} (they need network control: run it in virtual time)`
  if (scenario.link.lossRate > 0 || scenario.link.delayMaxMs > 3) return '--real cannot add loss or delay to loopback; run this scenario in virtual time'
  return null
}

export async function runReal (options: RealRunOptions): Promise<SimRunResult> {
  const { seed, scenario } = options
  const refusal = realModeRefusal(scenario)
  if (refusal !== null) throw new ScenarioError(refusal)
  const random = new SeededRandom(deriveSeed(seed, 0x5ea1))
  const placement = placeNodes(scenario, new SeededRandom(deriveSeed(seed, 0x91ace)))
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-sim-real-'))
  const config = join(dir, 'agent.json')
  // Every agent shares this one machine: its CPU load says nothing about the agent.
  writeFileSync(config, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  const durationMs = scenario.durationS * 1_000
  const totalMs = durationMs + scenario.livenessS * 1_000
  options.onProgress?.(0, totalMs, 'starting')
  const cluster = await LocalCluster.start({
    nodes: scenario.nodes,
    services: scenario.placement.services.map((s) => `${s}:${scenario.placement.capacity}`).join(','),
    configure: (i) => ({
      position: placement[i].position === null ? undefined : `${placement[i].position?.lat},${placement[i].position?.lon}`,
      region: placement[i].region,
      zone: placement[i].zone,
      extraArgs: ['--config', config]
    })
  })
  // Terminals ride out owner crashes and restarts: a minute before an append
  // is given up (the checkers then report that terminal).
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http), deadlineMs: 60_000 })
  const writers: ContinuousWriter[] = []
  try {
    await cluster.waitConverged(60_000)
    const t0 = Date.now()
    const rel = (at: number): number => at - t0
    const names = cluster.agents.map((a) => a.name)
    const byName = new Map(cluster.agents.map((a, i) => [a.name, i]))
    const state = new Map<string, NodeStateName>(names.map((n) => [n, 'alive']))
    const lastTrouble = new Map<string, number>()
    const timeline: SimRunResult['timeline'] = names.map((node) => ({ atMs: 0, node, state: 'alive' as NodeStateName }))
    const faults: SimRunResult['faults'] = []
    const detections: SimRunResult['detections'] = []
    const watched: Array<{ agentId: string; atMs: number; survivors: AgentProcess[]; index: number }> = []
    const pending: Array<{ writer: ContinuousWriter; atMs: number; from: string; epoch: number }> = []
    const setState = (name: string, next: NodeStateName): void => {
      state.set(name, next)
      lastTrouble.set(name, Date.now())
      timeline.push({ atMs: rel(Date.now()), node: name, state: next })
    }

    const sessions: Session[] = []
    for (let i = 0; i < scenario.workload.terminals; i++) {
      const session = await client.open({ terminalId: `t${i}`, service: 'log', position: placement[random.nextInt(placement.length)].position ?? undefined })
      sessions.push(session)
      writers.push(new ContinuousWriter(session, `t${i}-`, scenario.workload.deltaIntervalMs, scenario.workload.valueBytes))
    }
    const nameOf = (id: string | undefined): string => cluster.agents.find((a) => a.id === id)?.name ?? '?'
    const alive = (): string[] => names.filter((n) => state.get(n) === 'alive')
    const pick = (list: string[]): string | null => list.length === 0 ? null : list[random.nextInt(list.length)]
    const resolve = (target: string | undefined, fallback: string): string[] => {
      const t = target ?? fallback
      if (t === 'random') return [pick(alive())].filter((x): x is string => x !== null)
      if (t === 'owner') {
        const owners = sessions.map((s) => nameOf(s.owner?.id)).filter((n) => state.get(n) === 'alive')
        return [pick(owners) ?? pick(alive())].filter((x): x is string => x !== null)
      }
      if (t === 'crashed' || t === 'paused') return names.filter((n) => state.get(n) === t)
      if (t === 'all') return [...names]
      return names.includes(t) ? [t] : []
    }
    const watch = (name: string, fault: 'crash' | 'pause'): void => {
      const agent = cluster.agents[byName.get(name) as number]
      for (const [i, s] of sessions.entries()) if (s.owner?.id === agent.id) pending.push({ writer: writers[i], atMs: Date.now(), from: name, epoch: s.epoch })
      watched.push({ agentId: agent.id, atMs: Date.now(), survivors: cluster.agents.filter((a) => a !== agent && state.get(a.name) === 'alive'), index: detections.length })
      detections.push({ node: name, fault, atMs: rel(Date.now()), firstSuspicionMs: null, firstDeadMs: null, lastDeadMs: null, verdicts: 0, survivors: 0 })
    }
    // Undo timers of random faults still pending when the chaos ends: healing
    // covers them, and none may fire once the cluster is gone.
    const undoTimers = new Set<NodeJS.Timeout>()
    // A restart takes a moment; a second one of the same agent must not start.
    const restarting = new Set<string>()
    const apply = async (fault: FaultName, target: string | undefined): Promise<string[]> => {
      const fallback = fault === 'restart' ? 'crashed' : fault === 'resume' ? 'paused' : 'random'
      const targets = resolve(target, fallback)
      for (const name of targets) {
        const i = byName.get(name) as number
        if (fault === 'crash' && state.get(name) === 'alive') { watch(name, 'crash'); cluster.agents[i].signal('SIGKILL'); setState(name, 'crashed') }
        if (fault === 'pause' && state.get(name) === 'alive') { watch(name, 'pause'); cluster.agents[i].signal('SIGSTOP'); setState(name, 'paused') }
        if (fault === 'resume' && state.get(name) === 'paused') { cluster.agents[i].signal('SIGCONT'); setState(name, 'alive') }
        if (fault === 'restart' && state.get(name) === 'crashed' && !restarting.has(name)) {
          restarting.add(name)
          try {
            await cluster.restart(i)
            setState(name, 'alive')
          } finally {
            restarting.delete(name)
          }
        }
      }
      faults.push({ atMs: rel(Date.now()), fault, targets, detail: fault === 'crash' ? 'SIGKILL' : fault === 'pause' ? 'SIGSTOP' : fault === 'resume' ? 'SIGCONT' : fault === 'restart' ? 'same data directory' : '' })
      return targets
    }

    // The schedule, in wall time: fixed faults, then random ones.
    const schedule: Array<{ atMs: number; run: () => Promise<unknown> }> = scenario.faults.map((f) => ({ atMs: f.atS * 1_000, run: async () => await apply(f.fault, f.target) }))
    if (scenario.random !== null) {
      const plan = scenario.random
      for (let at = plan.everyS * 1_000; at < durationMs; at += plan.everyS * 1_000) {
        const fault = plan.faults[random.nextInt(plan.faults.length)]
        const back = (plan.downS[0] + random.nextFloat() * (plan.downS[1] - plan.downS[0])) * 1_000
        const target = random.nextFloat() < 0.5 ? 'owner' : 'random'
        schedule.push({
          atMs: at,
          run: async () => {
            const down = names.filter((n) => state.get(n) !== 'alive').length
            if (down >= plan.maxDown) return
            const hit = await apply(fault, target)
            if (hit.length === 0) return
            const timer = setTimeout(() => {
              undoTimers.delete(timer)
              void apply(fault === 'crash' ? 'restart' : 'resume', hit[0])
            }, back)
            undoTimers.add(timer)
          }
        })
      }
    }
    schedule.sort((a, b) => a.atMs - b.atMs)
    const series: SimRunResult['traffic']['series'] = []
    let lastBytes = await payloadBytes(cluster)
    let lastSampleAt = Date.now()
    for (const step of schedule) {
      while (Date.now() - t0 < step.atMs) {
        await sleep(Math.min(200, step.atMs - (Date.now() - t0)))
        options.onProgress?.(Date.now() - t0, totalMs, 'chaos')
      }
      await step.run()
    }
    while (Date.now() - t0 < durationMs) {
      await sleep(Math.min(SAMPLE_MS, durationMs - (Date.now() - t0)))
      options.onProgress?.(Date.now() - t0, totalMs, 'chaos')
      const bytes = await payloadBytes(cluster)
      const seconds = (Date.now() - lastSampleAt) / 1_000
      const per = cluster.agents.map((a) => ((bytes.get(a.name) ?? 0) - (lastBytes.get(a.name) ?? 0)) / seconds)
      series.push({ atMs: rel(Date.now()), bytesPerNodePerSec: Math.round(per.reduce((x, y) => x + y, 0) / per.length), messagesPerNodePerSec: 0, maxBytesPerNodePerSec: Math.round(Math.max(0, ...per)) })
      lastBytes = bytes
      lastSampleAt = Date.now()
    }

    // Liveness: heal, then the cluster must converge and every terminal be served.
    for (const timer of undoTimers) clearTimeout(timer)
    undoTimers.clear()
    while (restarting.size > 0) await sleep(50)
    const healedAt = Date.now()
    await apply('resume', 'paused')
    await apply('restart', 'crashed')
    const acksAtHeal = writers.map((w) => w.acked.length)
    let converged = false
    let served = false
    while (Date.now() - healedAt < scenario.livenessS * 1_000 && !(converged && served)) {
      options.onProgress?.(durationMs + Date.now() - healedAt, totalMs, 'liveness')
      converged = await cluster.waitConverged(1_000).then(() => true, () => false)
      served = writers.every((w, i) => w.acked.length > acksAtHeal[i])
      if (!(converged && served)) await sleep(200)
    }
    await Promise.all(writers.map(async (w) => await w.stop()))
    options.onProgress?.(totalMs, totalMs, 'checking')

    // Detection, from the agents' own events.
    for (const w of watched) {
      const d = detections[w.index]
      const suspicions = w.survivors.flatMap((a) => a.events.filter((e) => e.event === 'member' && e.id === w.agentId && e.status === 'suspect' && e.atMs >= w.atMs).map((e) => e.atMs - w.atMs).slice(0, 1))
      const deaths = w.survivors.flatMap((a) => a.events.filter((e) => e.event === 'member' && e.id === w.agentId && e.status === 'dead' && e.atMs >= w.atMs).map((e) => e.atMs - w.atMs).slice(0, 1))
      d.survivors = w.survivors.length
      d.verdicts = deaths.length
      d.firstSuspicionMs = suspicions.length === 0 ? null : Math.min(...suspicions)
      d.firstDeadMs = deaths.length === 0 ? null : Math.min(...deaths)
      d.lastDeadMs = deaths.length === w.survivors.length && deaths.length > 0 ? Math.max(...deaths) : null
    }
    const takeovers: SimRunResult['takeovers'] = []
    for (const p of pending) {
      const first = p.writer.acked.find((a) => a.atMs >= p.atMs && a.epoch > p.epoch)
      if (first !== undefined) takeovers.push({ sessionId: p.writer.session.sessionId, atMs: rel(p.atMs), from: p.from, to: nameOf(p.writer.session.owner?.id), latencyMs: first.atMs - p.atMs })
    }
    // Checkers.
    const lost: string[] = []
    for (const [i, w] of writers.entries()) {
      if (w.error !== null) lost.push(`${sessions[i].sessionId}: the terminal failed: ${w.error.message}`)
      try {
        lost.push(...(await w.check()).map((p) => `${sessions[i].sessionId}: ${p}`))
      } catch (error) {
        lost.push(`${sessions[i].sessionId}: its state could not be read to check it: ${(error as Error).message}`)
      }
    }
    const owners = new Map<string, Set<string>>()
    for (const a of cluster.agents) {
      for (const e of a.events) if (e.event === 'promoted') owners.set(`${String(e.sessionId)}@${String(e.epoch)}`, (owners.get(`${String(e.sessionId)}@${String(e.epoch)}`) ?? new Set()).add(a.name))
    }
    const twoOwners = [...owners].filter(([, who]) => who.size > 1).map(([key, who]) => `${key}: ${[...who].join(' and ')} both took ownership`)
    const falseDead = cluster.agents.flatMap((a) => a.events.filter((e) => {
      if (e.event !== 'member' || e.status !== 'dead') return false
      const subject = cluster.agents.find((x) => x.id === e.id)
      if (subject === undefined) return false
      return state.get(subject.name) === 'alive' && e.atMs - (lastTrouble.get(subject.name) ?? 0) > HEALTHY_FOR_MS && e.atMs - t0 > HEALTHY_FOR_MS
    }).map((e) => `${a.name} declared ${nameOf(String(e.id))} dead at ${rel(e.atMs)} ms`))
    const acks = writers.flatMap((w) => w.acked)
    const checkers: SimRunResult['checkers'] = [
      { name: 'no acknowledged delta lost or duplicated, order kept', ok: lost.length === 0, problems: lost.slice(0, 50) },
      { name: 'at most one owner per session epoch', ok: twoOwners.length === 0, problems: twoOwners },
      { name: 'membership converged after healing', ok: converged, problems: converged ? [] : ['not converged within the liveness bound'] },
      { name: `every terminal served again within ${scenario.livenessS} s of healing`, ok: served, problems: served ? [] : ['a terminal got no acknowledgement after healing'] },
      { name: 'no node declared dead while healthy and reachable', ok: falseDead.length === 0, problems: falseDead.slice(0, 10) }
    ]
    return {
      replay: '',
      seed,
      mode: 'real',
      scenario: scenario.name,
      nodes: scenario.nodes,
      durationMs,
      options: { scenario: scenario.name, description: scenario.description, nodes: scenario.nodes, durationS: scenario.durationS, livenessS: scenario.livenessS, workload: scenario.workload, faults: scenario.faults, random: scenario.random, profile: 'lan', loadThreshold: 1 },
      nodeIds: names,
      timeline,
      faults,
      detections,
      detection: {
        firstSuspicionMs: quantiles(detections.flatMap((d) => d.firstSuspicionMs ?? [])),
        firstDeadMs: quantiles(detections.flatMap((d) => d.firstDeadMs ?? [])),
        lastDeadMs: quantiles(detections.flatMap((d) => d.lastDeadMs ?? []))
      },
      dissemination: quantiles([]),
      takeovers,
      takeover: quantiles(takeovers.map((t) => t.latencyMs)),
      traffic: {
        intervalMs: SAMPLE_MS,
        series,
        bytesPerNodePerSec: series.length === 0 ? 0 : Math.round(series.reduce((s, x) => s + x.bytesPerNodePerSec, 0) / series.length),
        messagesPerNodePerSec: 0
      },
      deltas: { terminals: writers.length, sessions: sessions.length, acknowledged: acks.length, perSec: Math.round(acks.length / Math.max(1, (Date.now() - t0) / 1_000)), latencyMs: quantiles(acks.map((a) => a.latencyMs)) },
      falseDead: falseDead.length,
      checkers,
      ok: checkers.every((c) => c.ok)
    }
  } finally {
    for (const w of writers) w.stopped = true
    client.destroy()
    await cluster.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
}

// Payload bytes each agent sent (its /metrics), by agent name.
async function payloadBytes (cluster: LocalCluster): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  await Promise.all(cluster.running().map(async (a) => {
    try {
      const text = await (await fetch(`${a.http}/metrics`, { signal: AbortSignal.timeout(1_000) })).text()
      let sum = 0
      for (const line of text.split('\n')) if (line.startsWith('edge_agent_bytes_total{') && line.includes('direction="out"')) sum += Number(line.split(' ').pop())
      out.set(a.name, sum)
    } catch {}
  }))
  return out
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}
