// The simulator's own speed and what it shows at scale: `edge-agent sim` runs in
// virtual time at N nodes with sessions under churn; wall time, peak memory,
// node-seconds simulated per wall second, and the figures the run reports
// (dissemination of restarted nodes' records, bytes per node per second, detection
// and takeover). Each size runs in its own process so peak memory is its own.
//
//   node bench/sim-scale.ts [nodes…]     default 100 1000 (10000 on request)
//   BENCH_SIM_DURATION_S=60              virtual seconds of chaos per run: one number
//                                        for every size, or one per size (60,60,30);
//                                        default the issue's: 60 s, 30 s from 10,000 nodes
//   BENCH_SIM_WARM_FROM=10000            sizes from this one start converged
//                                        (`--warm-start`: no cold join, whose N²
//                                        messages would dominate the run); 0 = never

import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Quantiles, SimRunResult } from '../sim/result.ts'
import { log } from './lib.ts'

export type SimScaleRun = {
  nodes: number
  durationS: number
  // Began converged (`--warm-start`) instead of joining cold.
  warmStart?: boolean
  scenario: string
  seed: number
  ok: boolean
  wallSeconds: number
  // The run's own CPU time (user + system): the wall time on a shared box also
  // measures whatever else runs.
  cpuSeconds: number
  peakRssMiB: number
  nodeSecondsPerWallSecond: number
  dissemination: Quantiles
  lastDeadMs: Quantiles
  takeover: Quantiles
  bytesPerNodePerSec: number
  messagesPerNodePerSec: number
  acknowledged: number
  falseDead: number
} | { nodes: number; durationS: number; failed: string }

const CLI = fileURLToPath(new URL('../bin/edge-agent.ts', import.meta.url))

// One run of `edge-agent sim --json` in a child process; its stderr's last
// lines carry wall time and peak memory.
export function benchSimScale (nodes: number, durationS: number, warmStart = false, seed = 1, timeoutS = 1_800): SimScaleRun {
  log(`sim scale: ${nodes} nodes × ${durationS} virtual s (churn, sessions${warmStart ? ', warm start' : ''})`)
  const started = Date.now()
  const args = [CLI, 'sim', '--scenario', 'churn', '--nodes', String(nodes), '--duration', String(durationS), '--seed', String(seed), '--json']
  if (warmStart) args.push('--warm-start')
  // A 6 GiB heap: 10,000 nodes need ~4 (above Node's default limit), and under a
  // much larger cap V8 lets garbage pile up toward it before collecting, so the
  // peak RSS would measure the cap rather than the run.
  const run = spawnSync(process.execPath, ['--max-old-space-size=6144', ...args], {
    encoding: 'utf8', timeout: timeoutS * 1_000, maxBuffer: 512 * 1024 * 1024
  })
  const wall = (Date.now() - started) / 1_000
  if (run.status === null) return { nodes, durationS, failed: `did not finish within ${timeoutS} s (${run.signal ?? 'killed'})` }
  let result: SimRunResult
  try {
    result = JSON.parse(run.stdout) as SimRunResult
  } catch {
    return { nodes, durationS, failed: `exit ${run.status}: ${run.stderr.slice(-500)}` }
  }
  const facts = /wall ([\d.]+) s, cpu ([\d.]+) s, peak memory (\d+) MiB, (\d+) node-seconds/.exec(run.stderr)
  const out: SimScaleRun = {
    nodes,
    durationS,
    warmStart,
    scenario: 'churn',
    seed,
    ok: result.ok,
    wallSeconds: facts === null ? wall : Number(facts[1]),
    cpuSeconds: facts === null ? NaN : Number(facts[2]),
    peakRssMiB: facts === null ? NaN : Number(facts[3]),
    nodeSecondsPerWallSecond: facts === null ? NaN : Number(facts[4]),
    dissemination: result.dissemination,
    lastDeadMs: result.detection.lastDeadMs,
    takeover: result.takeover,
    bytesPerNodePerSec: result.traffic.bytesPerNodePerSec,
    messagesPerNodePerSec: result.traffic.messagesPerNodePerSec,
    acknowledged: result.deltas.acknowledged,
    falseDead: result.falseDead
  }
  log(`sim scale: ${nodes} nodes: wall ${out.wallSeconds} s, cpu ${out.cpuSeconds} s (both include ${warmStart ? 'the warm start' : 'joining'}), peak ${out.peakRssMiB} MiB, ${result.ok ? 'PASS' : 'FAIL'}`)
  return out
}

// What each size runs: virtual seconds and whether it starts warm (see the top).
export function simScalePlan (sizes: number[], env: NodeJS.ProcessEnv = process.env): Array<{ nodes: number; durationS: number; warmStart: boolean }> {
  const durations = (env.BENCH_SIM_DURATION_S ?? '').split(',').filter((d) => d !== '').map(Number)
  if (durations.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`BENCH_SIM_DURATION_S must be whole seconds, one or one per size (got ${env.BENCH_SIM_DURATION_S})`)
  if (durations.length > 1 && durations.length !== sizes.length) throw new Error(`BENCH_SIM_DURATION_S lists ${durations.length} durations for ${sizes.length} sizes`)
  const warmFrom = Number(env.BENCH_SIM_WARM_FROM ?? 10_000)
  return sizes.map((nodes, i) => ({
    nodes,
    durationS: durations.length === 0 ? (nodes >= 10_000 ? 30 : 60) : durations[durations.length === 1 ? 0 : i],
    warmStart: warmFrom > 0 && nodes >= warmFrom
  }))
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = process.argv.slice(2).map(Number)
  const runs = simScalePlan(sizes.length > 0 ? sizes : [100, 1_000]).map((p) => benchSimScale(p.nodes, p.durationS, p.warmStart))
  process.stdout.write(JSON.stringify(runs, null, 2) + '\n')
}
