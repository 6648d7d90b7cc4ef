// `edge-agent sim --real`: the scenario on real agent processes on 127.0.0.1,
// driven through their CLI and HTTP API, with real signals and real sockets:
// a crash is SIGKILL (a restart reuses the data directory), a freeze is
// SIGSTOP/SIGCONT. Partitions, loss, delay and slow nodes go through each
// agent's fault-injection gate (every agent is started with --fault-injection;
// sim/real-faults.ts). Terminals are EdgeClients appending as the scenario says.
// The same checkers judge the history, from the terminals' acknowledgements and
// the agents' --json events. Wall-clock timing: not reproducible byte for byte.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SeededRandom, deriveSeed } from '../agent/core/random.ts'
import { EdgeClient } from '../agent/client/index.ts'
import type { Session } from '../agent/client/index.ts'
import { LocalCluster } from './processes.ts'
import type { AgentProcess } from './processes.ts'
import { NetnsLab } from './netns.ts'
import { RealHistory } from './real-history.ts'
import { RealNetworkFaults } from './real-faults.ts'
import { TrafficSampler } from './real-traffic.ts'
import type { NodeStateName, SimRunResult } from './result.ts'
import { placeNodes, quantiles } from './runner.ts'
import { ScenarioError } from './scenarios.ts'
import type { FaultName, Scenario, ScheduledFault } from './scenarios.ts'
import { DEFAULT_LINK } from './network.ts'
import { ContinuousWriter } from './writer.ts'

export const REAL_MAX_NODES = 32
// /metrics of every agent is read this often during the run.
const SAMPLE_MS = 1_000
// A slow fault without "ms": as in virtual mode.
const SLOW_DEFAULT_MS = 200

export type RealRunOptions = {
  seed: number
  scenario: Scenario
  onProgress?: (doneMs: number, totalMs: number, phase: string) => void
  // Root only: each agent in its own network namespace, partitions by splitting
  // the bridge between them (sim/netns.ts) instead of the fault gates.
  netns?: boolean
}

// Why this scenario cannot run on real processes, or null. Every fault kind runs
// (the network ones through the agents' fault-injection gates); only the size is
// bounded by this one machine.
export function realModeRefusal (scenario: Scenario): string | null {
  if (scenario.nodes > REAL_MAX_NODES) return `--real runs at most ${REAL_MAX_NODES} agent processes on this machine (asked for ${scenario.nodes})`
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
  const lab = options.netns === true ? NetnsLab.create(scenario.nodes) : null
  let cluster: LocalCluster
  try {
    cluster = await LocalCluster.start({
      nodes: scenario.nodes,
      services: scenario.placement.services.map((s) => `${s}:${scenario.placement.capacity}`).join(','),
      configure: (i) => ({
        position: placement[i].position === null ? undefined : `${placement[i].position?.lat},${placement[i].position?.lon}`,
        region: placement[i].region,
        zone: placement[i].zone,
        extraArgs: ['--config', config, '--fault-injection'],
        ...(lab === null ? {} : { netns: { ns: lab.ns(i), host: lab.host(i) } })
      })
    })
  } catch (error) {
    lab?.destroy()
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  // Terminals ride out owner crashes and restarts: a minute before an append
  // is given up (the checkers then report that terminal).
  const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http), deadlineMs: 60_000 })
  const writers: ContinuousWriter[] = []
  let sampler: TrafficSampler | null = null
  try {
    await cluster.waitConverged(60_000)
    const names = cluster.agents.map((a) => a.name)
    const byName = new Map(cluster.agents.map((a, i) => [a.name, i]))
    // Every process that ever ran, restarted ones included: their events are the history.
    const processes: AgentProcess[] = [...cluster.agents]
    const network = new RealNetworkFaults(seed, cluster.agents)
    const state = new Map<string, NodeStateName>(names.map((n) => [n, 'alive']))
    const slow = new Set<string>()
    // The state the agents are really in, for whom the gate can be told now.
    // With --netns, agents cut off are out of the runner's reach too.
    const reachable = (): AgentProcess[] => cluster.agents.filter((a) => a.running && state.get(a.name) !== 'paused' && state.get(a.name) !== 'crashed' && (lab === null || state.get(a.name) !== 'isolated'))
    let partitioned = false
    // Sends changed rules; resolves with the ms it took (the agents' HTTP APIs
    // share their event loops with everything else: under load, a second or so).
    const flush = async (): Promise<number> => {
      const started = Date.now()
      await network.flush(reachable())
      return Date.now() - started
    }
    // The scenario's own link model, beyond what loopback already gives.
    if (scenario.link.lossRate > 0 || scenario.link.delayMaxMs > DEFAULT_LINK.delayMaxMs) {
      network.setLink(scenario.link)
      await flush()
    }
    const t0 = Date.now()
    const rel = (at: number): number => at - t0
    const history = new RealHistory(t0, names)
    const timeline: SimRunResult['timeline'] = names.map((node) => ({ atMs: 0, node, state: 'alive' as NodeStateName }))
    const faults: SimRunResult['faults'] = []
    const pending: Array<{ writer: ContinuousWriter; atMs: number; from: string; epoch: number }> = []
    const setState = (name: string, next: NodeStateName, at = Date.now()): void => {
      if (state.get(name) === next) return
      state.set(name, next)
      history.mark(name, at, { state: next })
      timeline.push({ atMs: rel(at), node: name, state: next })
    }
    sampler = new TrafficSampler(SAMPLE_MS, () => reachable(), rel)
    await sampler.start()

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
    // Sessions owned by `victims` must be taken over; each victim is watched by
    // the agents that should notice it (every other live agent, or the other
    // side of a partition).
    const watch = (victims: string[], fault: 'crash' | 'pause' | 'partition', watchers: string[], now = Date.now()): void => {
      for (const name of victims) {
        const agent = cluster.agents[byName.get(name) as number]
        for (const [i, s] of sessions.entries()) if (s.owner?.id === agent.id) pending.push({ writer: writers[i], atMs: now, from: name, epoch: s.epoch })
        const survivors = cluster.agents.filter((a) => a !== agent && watchers.includes(a.name) && state.get(a.name) === 'alive')
        history.watch({ node: name, agentId: agent.id, fault, atMs: now, survivors })
      }
    }
    const back = (name: string, at = Date.now()): void => history.back(name, at)
    // Undo timers of random faults still pending when the chaos ends: healing
    // covers them, and none may fire once the cluster is gone.
    const undoTimers = new Set<NodeJS.Timeout>()
    // A restart takes a moment; a second one of the same agent must not start.
    const restarting = new Set<string>()
    const restart = async (name: string): Promise<void> => {
      const i = byName.get(name) as number
      restarting.add(name)
      try {
        processes.push(await cluster.restart(i))
        setState(name, 'alive')
        back(name)
        // It starts without rules: it gets the ones in force now.
        network.forgotten(name)
      } finally {
        restarting.delete(name)
      }
    }
    // A network fault counts from the moment its rules start going out (some
    // agents hold them before others; a verdict must not come before the fault).
    const apply = async (fault: FaultName, target: string | undefined, extra: ScheduledFault = { atS: 0, fault }): Promise<string[]> => {
      let targets: string[] = []
      let detail = ''
      const at = Date.now()
      const gates = (ms: number): string => ` (gates set in ${ms} ms)`
      switch (fault) {
        case 'crash':
        case 'pause': {
          targets = resolve(target, 'random').filter((n) => state.get(n) === 'alive')
          watch(targets, fault, alive())
          for (const name of targets) {
            cluster.agents[byName.get(name) as number].signal(fault === 'crash' ? 'SIGKILL' : 'SIGSTOP')
            setState(name, fault === 'crash' ? 'crashed' : 'paused')
          }
          detail = fault === 'crash' ? 'SIGKILL' : 'SIGSTOP'
          break
        }
        case 'resume':
          targets = resolve(target, 'paused').filter((n) => state.get(n) === 'paused')
          for (const name of targets) {
            cluster.agents[byName.get(name) as number].signal('SIGCONT')
            // A partition cuts off only live agents: a frozen one stays with the
            // majority, and learns its rules now (the flush below).
            setState(name, 'alive')
            back(name)
          }
          detail = 'SIGCONT'
          break
        case 'restart':
          targets = resolve(target, 'crashed').filter((n) => state.get(n) === 'crashed' && !restarting.has(n))
          await Promise.all(targets.map(async (name) => await restart(name)))
          detail = 'same data directory'
          break
        case 'partition': {
          const live = alive()
          const minority = target === 'half' ? Math.floor(live.length / 2) : 1 + random.nextInt(Math.max(1, Math.min(3, Math.floor((live.length - 1) / 2))))
          const shuffled = random.shuffle([...live])
          const cut = target !== undefined && names.includes(target) ? [target] : shuffled.slice(0, minority)
          const sides = [names.filter((n) => !cut.includes(n)), cut]
          let took: number
          if (lab === null) {
            network.partition(sides)
            took = await flush()
          } else {
            lab.partition(sides.map((side) => side.map((n) => byName.get(n) as number)))
            took = Date.now() - at
          }
          partitioned = true
          // A new partition replaces the one before.
          for (const name of names) if (state.get(name) === 'isolated' && !cut.includes(name)) { setState(name, 'alive', at); back(name, at) }
          history.networkChanged(at)
          watch(cut, 'partition', live.filter((n) => !cut.includes(n)), at)
          for (const name of cut) if (state.get(name) === 'alive') setState(name, 'isolated', at)
          targets = cut
          detail = `${cut.length} of ${names.length} cut off${lab === null ? gates(took) : ` (bridge split in ${took} ms)`}`
          break
        }
        case 'heal':
          if (lab === null) {
            network.heal()
            detail = gates(await flush()).trim()
          } else {
            lab.heal()
            detail = `(bridge joined in ${Date.now() - at} ms)`
          }
          partitioned = false
          history.networkChanged(at)
          targets = names.filter((n) => state.get(n) === 'isolated')
          for (const name of targets) { setState(name, 'alive', at); back(name, at) }
          break
        case 'loss':
          network.setLink({ lossRate: extra.rate ?? 0 })
          detail = `loss ${(100 * (extra.rate ?? 0)).toFixed(0)}%${gates(await flush())}`
          history.networkChanged(at)
          break
        case 'delay':
          network.setLink({ delayMinMs: extra.minMs ?? 1, delayMaxMs: extra.maxMs ?? 3 })
          detail = `delay ${extra.minMs}-${extra.maxMs} ms${gates(await flush())}`
          break
        case 'slow': {
          const ms = extra.ms ?? SLOW_DEFAULT_MS
          targets = resolve(target, 'random')
          for (const name of targets) network.slow(name, ms)
          detail = `${ms > 0 ? `+${ms} ms per message` : 'normal speed again'}${gates(await flush())}`
          for (const name of targets) {
            if (ms > 0) slow.add(name)
            else slow.delete(name)
            history.mark(name, at, { slow: ms > 0 })
          }
          break
        }
      }
      // Agents back from a crash or a freeze learn the rules in force.
      await flush()
      faults.push({ atMs: rel(at), fault, targets, detail })
      return targets
    }

    // The schedule, in wall time: fixed faults, then random ones.
    const schedule: Array<{ atMs: number; run: () => Promise<unknown> }> = scenario.faults.map((f) => ({ atMs: f.atS * 1_000, run: async () => await apply(f.fault, f.target, f) }))
    if (scenario.random !== null) {
      const plan = scenario.random
      let down = 0
      for (let at = plan.everyS * 1_000; at < durationMs; at += plan.everyS * 1_000) {
        const fault = plan.faults[random.nextInt(plan.faults.length)]
        const backMs = (plan.downS[0] + random.nextFloat() * (plan.downS[1] - plan.downS[0])) * 1_000
        const target = fault === 'partition' ? undefined : random.nextFloat() < 0.5 ? 'owner' : 'random'
        schedule.push({
          atMs: at,
          run: async () => {
            if (down >= plan.maxDown) return
            if (fault === 'partition' && partitioned) return
            const hit = await apply(fault, target)
            if (hit.length === 0) return
            down++
            const timer = setTimeout(() => {
              undoTimers.delete(timer)
              down--
              if (fault === 'crash') void apply('restart', hit[0])
              else if (fault === 'pause') void apply('resume', hit[0])
              else if (fault === 'partition') void apply('heal', undefined)
              else void apply('slow', hit[0], { atS: 0, fault: 'slow', ms: 0 })
            }, backMs)
            undoTimers.add(timer)
          }
        })
      }
    }
    schedule.sort((a, b) => a.atMs - b.atMs)
    const waitUntil = async (atMs: number): Promise<void> => {
      while (Date.now() - t0 < atMs) {
        await sleep(Math.min(200, atMs - (Date.now() - t0)))
        options.onProgress?.(Math.min(durationMs, Date.now() - t0), totalMs, 'chaos')
      }
    }
    for (const step of schedule) {
      if (step.atMs >= durationMs) break
      await waitUntil(step.atMs)
      await step.run()
    }
    await waitUntil(durationMs)

    // Liveness: heal everything, then the cluster must converge and every terminal be served.
    for (const timer of undoTimers) clearTimeout(timer)
    undoTimers.clear()
    while (restarting.size > 0) await sleep(50)
    const healedAt = Date.now()
    await apply('resume', 'paused')
    await apply('restart', 'crashed')
    if (partitioned) await apply('heal', undefined)
    for (const name of [...slow]) await apply('slow', name, { atS: 0, fault: 'slow', ms: 0 })
    network.setLink(scenario.link.lossRate > 0 || scenario.link.delayMaxMs > DEFAULT_LINK.delayMaxMs ? scenario.link : { lossRate: 0, delayMinMs: 0, delayMaxMs: 0 })
    await flush()
    const acksAtHeal = writers.map((w) => w.acked.length)
    let converged = false
    let served = false
    while (Date.now() - healedAt < scenario.livenessS * 1_000 && !(converged && served)) {
      options.onProgress?.(durationMs + Date.now() - healedAt, totalMs, 'liveness')
      converged = await cluster.waitConverged(1_000).then(() => true, () => false)
      served = writers.every((w, i) => w.acked.length > acksAtHeal[i])
      if (!(converged && served)) await sleep(200)
    }
    const livenessTookMs = Date.now() - healedAt
    sampler.stop()
    await Promise.all(writers.map(async (w) => await w.stop()))
    options.onProgress?.(totalMs, totalMs, 'checking')

    const detections = history.detections()
    // A restart is recorded when it is done, seconds after it began: time order.
    faults.sort((a, b) => a.atMs - b.atMs)
    const takeovers: SimRunResult['takeovers'] = []
    for (const p of pending) {
      // An owner cut off with a majority of its group keeps serving: an append
      // sent after the fault and acknowledged in the old epoch means no takeover
      // was needed (a later epoch change is not this fault's).
      if (p.writer.acked.some((a) => a.epoch === p.epoch && a.atMs - a.latencyMs > p.atMs)) continue
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
    for (const a of processes) {
      for (const e of a.events) if (e.event === 'promoted') owners.set(`${String(e.sessionId)}@${String(e.epoch)}`, (owners.get(`${String(e.sessionId)}@${String(e.epoch)}`) ?? new Set()).add(a.name))
    }
    const twoOwners = [...owners].filter(([, who]) => who.size > 1).map(([key, who]) => `${key}: ${[...who].join(' and ')} both took ownership`)
    const falseDead = history.falseDead(processes, (id) => nameOf(id))
    const acks = writers.flatMap((w) => w.acked)
    const checkers: SimRunResult['checkers'] = [
      { name: 'every network fault reached the agents\' fault-injection gates', ok: network.problems.length === 0, problems: network.problems },
      { name: 'no acknowledged delta lost or duplicated, order kept', ok: lost.length === 0, problems: lost.slice(0, 50) },
      { name: 'at most one owner per session epoch', ok: twoOwners.length === 0, problems: twoOwners },
      { name: 'membership converged after healing', ok: converged, problems: converged ? [] : [`not converged ${livenessTookMs} ms after healing`] },
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
      options: { scenario: scenario.name, description: scenario.description, nodes: scenario.nodes, durationS: scenario.durationS, livenessS: scenario.livenessS, workload: scenario.workload, link: scenario.link, placement: scenario.placement, faults: scenario.faults, random: scenario.random, profile: 'lan', loadThreshold: 1, partitions: lab === null ? 'fault-injection gates' : 'network namespaces', livenessTookMs },
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
      traffic: sampler.summary(),
      deltas: { terminals: writers.length, sessions: sessions.length, acknowledged: acks.length, perSec: Math.round(acks.length / Math.max(1, (Date.now() - t0) / 1_000)), latencyMs: quantiles(acks.map((a) => a.latencyMs)) },
      falseDead: falseDead.length,
      checkers,
      ok: checkers.every((c) => c.ok)
    }
  } finally {
    sampler?.stop()
    for (const w of writers) w.stopped = true
    client.destroy()
    await cluster.destroy()
    lab?.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}
