// `npm run bench`: every benchmark in one run, written to bench/results/latest.json
// and bench/results/latest.md. Comparisons run in the same process, one after the
// other, on the same machine, and are reported as ratios.
//
//   node bench/run.ts [detection] [memory] [sim] [sessions] [replication] [store] [failover] [simscale] [deploy] [fuzz] [flood] [slowdisk] [keys]   only some of them (default: all);
//   node bench/run.ts render                  rewrite latest.md from latest.json, measuring nothing
//                                            the other sections keep their last figures
//   BENCH_ROUNDS=5                           kill/freeze rounds per detection benchmark
//   BENCH_DETECTION_SIZES=5,20               cluster sizes of the detection comparison with serf
//   BENCH_REST_S=30                          seconds at rest (bytes sent) per system and size there
//   BENCH_SETTLE_S=90                        seconds from convergence to that measurement (the joins' and start-up load's end)
//   BENCH_MEMORY_SESSIONS=1000               sessions opened by the memory benchmark
//   BENCH_MEMORY_OPENERS=1                   terminals opening them at once
//   BENCH_TAKEOVERS=50                       SIGKILL rounds and SIGSTOP rounds of session owners
//   BENCH_SIM_SIZES=100,1000                 node counts of the simulator-at-scale runs (10000: ~6 GiB peak, ~10 CPU min)
//   BENCH_SIM_DURATION_S=60                  virtual seconds of chaos in each of them, or one per size
//                                            (default 60, 30 from 10,000 nodes as issue 4 asks)
//   BENCH_SIM_WARM_FROM=10000                sizes from this one start converged (--warm-start); 0 = never
//   BENCH_FUZZ_INPUTS=1000000                inputs handed to the decoders by the fuzz run
//   BENCH_FUZZ_SEED=…                        its seed (default: random, printed)
//   BENCH_FLOOD_ROUNDS=10                    calm rounds and flood rounds of the takeover-under-flood run
//   BENCH_FAILOVER_ROUNDS=5                  rounds per system, configuration and signal of the Redis Sentinel comparison
//   BENCH_SLOW_DISK_ROUNDS=2                 rounds per setting of the one-agent-on-a-slow-disk run (needs strace)
//   BENCH_KEY_CHANGE_ROUNDS=1                rounds per way of the cluster-key change run (restart, reload)

import { execFileSync } from 'node:child_process'
import { cpus, totalmem } from 'node:os'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { benchDetection, detectionMarkdown } from './detection.ts'
import type { DetectionResult } from './detection.ts'
import { benchMemory, memoryMarkdown } from './memory.ts'
import type { MemoryResult } from './memory.ts'
import { benchSimDetection } from './detection-sim.ts'
import type { SimDetectionResult } from './detection-sim.ts'
import { benchRealSessions } from './sessions-real.ts'
import type { Latencies, SessionsRealResult } from './sessions-real.ts'
import { benchRawStream } from './stream-raw.ts'
import type { RawStreamResult } from './stream-raw.ts'
import { benchSimScale, simScalePlan } from './sim-scale.ts'
import { benchSimSessions } from './sim-sessions.ts'
import type { SimSessionsResult } from './sim-sessions.ts'
import type { SimScaleRun } from './sim-scale.ts'
import { benchDeploy, deployMarkdown } from './deploy.ts'
import type { DeployBenchResult } from './deploy.ts'
import { benchFuzz } from './fuzz.ts'
import type { FuzzResult } from './fuzz.ts'
import { benchFlood } from './flood.ts'
import type { FloodResult } from './flood.ts'
import { benchReplication, replicationMarkdown } from './replication.ts'
import type { ReplicationResult } from './replication.ts'
import { benchFailover, failoverMarkdown } from './failover.ts'
import { benchStore, storeMarkdown } from './store.ts'
import type { StoreResult } from './store.ts'
import type { FailoverResult } from './failover.ts'
import { benchSlowDisk, slowDiskMarkdown } from './slow-disk.ts'
import type { SlowDiskResult } from './slow-disk.ts'
import { benchKeyChange, keyChangeMarkdown } from './key-change.ts'
import type { KeyChangeResult } from './key-change.ts'
import { fmt, log, median } from './lib.ts'
import type { Spread } from './lib.ts'

const selected = process.argv.slice(2)
const want = (name: string): boolean => selected.length === 0 || selected.includes(name)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const takeovers = Number(process.env.BENCH_TAKEOVERS ?? 50)
const resultsDir = fileURLToPath(new URL('./results/', import.meta.url))

type Results = {
  date: string
  // When each section was last measured (a partial run keeps the others).
  measured?: Record<string, string>
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string }
  detection?: DetectionResult
  memory?: MemoryResult
  sim?: SimDetectionResult[]
  sessions?: SessionsRealResult & { rawStream: RawStreamResult }
  replication?: ReplicationResult
  store?: StoreResult
  simScale?: SimScaleRun[]
  simSessions?: SimSessionsResult
  deploy?: DeployBenchResult
  fuzz?: FuzzResult
  flood?: FloodResult
  // The same run with limits.peerBlockMs 0: agents that never cut the peer off.
  floodUnblocked?: FloodResult
  failover?: FailoverResult
  slowDisk?: SlowDiskResult
  keyChange?: KeyChangeResult
}

function setup (): void {
  try {
    execFileSync(fileURLToPath(new URL('./setup.sh', import.meta.url)), { stdio: 'inherit' })
  } catch (error) {
    log(`setup failed: ${(error as Error).message}`)
  }
}

const ms = (s: Spread): string => `${fmt(s.median)} / ${fmt(s.max)}`

function markdown (r: Results): string {
  const lines = [`# edge-agent benchmarks`, '', `${r.date} · ${r.machine.cpus} × ${r.machine.cpuModel} · ${r.machine.memoryGiB} GiB · Node ${r.machine.node}`, '']
  const when = Object.entries(r.measured ?? {}).map(([name, at]) => `${name} ${at.slice(0, 16).replace('T', ' ')}`)
  if (when.length > 0) lines.push(`Sections measured (UTC): ${when.join(', ')}.`, '')
  if (r.detection !== undefined) lines.push(...detectionMarkdown(r.detection))
  if (r.memory !== undefined) lines.push('', ...memoryMarkdown(r.memory))
  if (r.sessions !== undefined) lines.push('', ...sessionsMarkdown(r.sessions))
  if (r.replication !== undefined) lines.push('', ...replicationMarkdown(r.replication))
  if (r.store !== undefined) lines.push('', ...storeMarkdown(r.store))
  if (r.simScale !== undefined) lines.push('', ...simScaleMarkdown(r.simScale, r.simSessions))
  if (r.deploy !== undefined) lines.push('', ...deployMarkdown(r.deploy))
  if (r.fuzz !== undefined) lines.push('', ...fuzzMarkdown(r.fuzz))
  if (r.flood !== undefined) lines.push('', ...floodMarkdown(r.flood, r.floodUnblocked))
  if (r.failover !== undefined) lines.push('', ...failoverMarkdown(r.failover))
  if (r.slowDisk !== undefined) lines.push('', ...slowDiskMarkdown(r.slowDisk))
  if (r.keyChange !== undefined) lines.push('', ...keyChangeMarkdown(r.keyChange))
  if (r.sim !== undefined) {
    lines.push('', '## Failure detection in virtual time (lan profile, 1-3 ms links)', '',
      '| nodes | seed | SIGKILL first | SIGKILL last | SIGSTOP first | SIGSTOP last | B/s per node at rest | msgs/s per node | false dead | wall s | peak RSS MiB |',
      '|---|---|---|---|---|---|---|---|---|---|---|')
    for (const s of r.sim) {
      lines.push(`| ${s.nodes} | ${s.seed} | ${ms(s.kill.first)} | ${ms(s.kill.last)} | ${ms(s.stop.first)} | ${ms(s.stop.last)} | ${fmt(s.atRest.bytesPerSecPerNode.median)} | ${fmt(s.atRest.messagesPerSecPerNode.median, 1)} | ${s.falseDeadVerdicts} | ${fmt(s.wallSeconds, 1)} | ${s.peakRssMiB} |`)
    }
    lines.push('', 'Virtual-time bytes are membership payload only (ids are short sim names, no libp2p framing).')
  }
  return lines.join('\n') + '\n'
}

const lat = (l: Latencies): string => `${fmt(l.p50)} | ${fmt(l.p99)} | ${fmt(l.max)} | ${l.n}`

function sessionsMarkdown (s: NonNullable<Results['sessions']>): string[] {
  const raw = s.rawStream
  const lines = [`## Sessions, ${s.nodes} real agents on loopback (lan profile, R = ${s.replicas}, write concern: every live member)`, '',
    `Takeover: ms from the signal to the terminal's first acknowledged append at the new owner, every session the victim owned ` +
    `(${s.sessions} sessions with terminals appending ${s.valueBytes}-byte values; killed owners restart from their data directory, frozen ones get SIGCONT; the groups settle between rounds).`, '',
    '| | rounds | p50 | p99 | max | takeovers |', '|---|---|---|---|---|---|',
    `| SIGKILL of the owner | ${s.kill.rounds} | ${lat(s.kill)} |`,
    `| SIGSTOP of the owner | ${s.stop.rounds} | ${lat(s.stop)} |`,
    ...(s.quietKill === undefined ? [] : [`| SIGKILL of the owner, sessions quiet | ${s.quietKill.rounds} | ${lat(s.quietKill)} |`]),
    ...(s.quietStop === undefined ? [] : [`| SIGSTOP of the owner, sessions quiet | ${s.quietStop.rounds} | ${lat(s.quietStop)} |`]), '',
    ...(s.quietKill === undefined ? [] : ['Rows marked "sessions quiet": the terminals idle until every copy of their sessions is quiet (README, "Quiet sessions": no heartbeats, one beat per pair of agents), then appending again from the signal on.', '']),
    `Failed rounds: ${s.failedRounds.length === 0 ? 'none' : s.failedRounds.join('; ')}. The check after all rounds: ${s.acknowledged} acknowledged appends, ` +
    `${s.problems.length === 0 ? 'every one present once, in order' : 'PROBLEMS: ' + s.problems.join('; ')}.` +
    (s.loadAverage === undefined ? '' : ` Box load average (1 min, ${cpus().length} cores) at the start, when the takeover rounds began, at the end: ${s.loadAverage.start}, ${s.loadAverage.takeovers}, ${s.loadAverage.end}.`), '',
    `Replication: acknowledged appends per second for one owner (agent0), ${s.valueBytes}-byte values, one session per terminal, one append in flight each, through the EdgeClient (appends on the deltas stream).`, '',
    '| terminals | appends/s | p50 ms | p99 ms | max ms | share of the raw one-way frame rate |', '|---|---|---|---|---|---|']
  for (const run of s.replication) lines.push(`| ${run.concurrency} | ${fmt(run.appendsPerSec)} | ${fmt(run.latencyMs.p50)} | ${fmt(run.latencyMs.p99)} | ${fmt(run.latencyMs.max)} | ${fmt(100 * run.appendsPerSec / raw.oneWayFramesPerSec, 1)}% |`)
  lines.push('', `Transport ceiling, same run: one libp2p stream (TCP + noise + yamux) between two processes, ${raw.frameBytes}-byte length-prefixed frames: ` +
    `${fmt(raw.oneWayFramesPerSec)} frames/s one-way in 64 KiB writes (median of ${raw.repeats}), ${fmt(raw.echoRoundTripsPerSec)} round trips/s with one frame in flight` +
    `${raw.tcpEchoRoundTripsPerSec === undefined ? '' : ` (plain TCP between two Node processes: ${fmt(raw.tcpEchoRoundTripsPerSec)} round trips/s)`}.`)
  return lines
}

const q = (x: { p50: number | null; p99: number | null }): string => `${x.p50 === null ? '-' : fmt(x.p50)} / ${x.p99 === null ? '-' : fmt(x.p99)}`

function simScaleMarkdown (runs: SimScaleRun[], idle?: SimSessionsResult): string[] {
  const lines = ['## `edge-agent sim` at scale (virtual time, churn scenario with sessions)', '',
    'One process per size. Wall and CPU time include the nodes joining and converging before the chaos phase (on a shared box the wall time also measures the neighbours; the CPU time is the run\'s own). ' +
    'Sizes marked (warm) began converged (`--warm-start`: every node handed every record in one exchange) instead of joining cold. ' +
    'Dissemination: ms for a restarted node\'s new record to reach every node, over the simulator\'s gossipsub mesh (D = 3..6 links per node, 1-3 ms per link).', '',
    '| nodes | virtual s | verdict | wall s | CPU s | peak RSS MiB | node-s per wall s | dissemination p50 / p99 | last dead verdict p50 / p99 | takeover p50 / p99 | B/s per node | msgs/s per node | acks | false dead |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
  for (const r of runs) {
    if ('failed' in r) lines.push(`| ${r.nodes} | ${r.durationS} | did not complete: ${r.failed} | | | | | | | | | | | |`)
    else lines.push(`| ${r.nodes}${r.warmStart === true ? ' (warm)' : ''} | ${r.durationS} | ${r.ok ? 'PASS' : 'FAIL'} | ${fmt(r.wallSeconds, 1)} | ${fmt(r.cpuSeconds ?? NaN, 1)} | ${fmt(r.peakRssMiB)} | ${fmt(r.nodeSecondsPerWallSecond)} | ${q(r.dissemination)} | ${q(r.lastDeadMs)} | ${q(r.takeover)} | ${fmt(r.bytesPerNodePerSec)} | ${fmt(r.messagesPerNodePerSec, 1)} | ${r.acknowledged} | ${r.falseDead} |`)
  }
  if (idle !== undefined) {
    const awake = idle.awakeCpuMsPerVirtualS ?? []
    lines.push('', `Idle sessions in the simulator (bench/sim-sessions.ts): ${idle.sessions.toLocaleString('en')} sessions on ${idle.nodes} nodes, left idle, ` +
      `${idle.cpuMsPerVirtualS.length} windows of ${idle.windowVirtualS} virtual s: quiet (the defaults: one beat per pair of nodes) ${fmt(median(idle.cpuMsPerVirtualS))} ms of CPU per virtual second, median (${idle.cpuMsPerVirtualS.map((x) => fmt(x)).join(', ')}); ` +
      `${fmt(idle.nodeSecondsPerWallSecond, 1)} node-s per wall s` +
      (awake.length === 0 ? '.' : `; awake (quietAfterMs 0: every session heartbeated), alternate windows of a second cluster in the same process: ${fmt(median(awake))} ms (${awake.map((x) => fmt(x)).join(', ')}), ${fmt(median(awake) / median(idle.cpuMsPerVirtualS), 1)}× the quiet figure.`))
  }
  return lines
}

function fuzzMarkdown (f: FuzzResult): string[] {
  const lines = ['## Fuzzing the decoders (`bench/fuzz.ts`)', '',
    `${f.inputs.toLocaleString('en')} inputs from seed ${f.seed} (replay: \`BENCH_FUZZ_SEED=${f.seed} node bench/fuzz.ts\`), one process: ` +
    `${fmt(f.inputsPerSec)} inputs/s, ${fmt(f.seconds, 1)} s. ${fmt(100 * f.mutatedShare)}% are mutations of a generated corpus of ${f.corpus} valid inputs ` +
    '(bit flips, boundary bytes, truncation, extension, splices, deleted and repeated runs, lying length fields, wrong types; some stacked), the rest random bytes.', '',
    '| decoder | inputs | accepted | refused | throws | decoder faults |', '|---|---|---|---|---|---|']
  for (const [name, d] of Object.entries(f.decoders)) lines.push(`| ${name} | ${d.inputs} | ${d.accepted} | ${d.refused} | ${d.throws} | ${d.faults} |`)
  lines.push('', f.problems.length === 0 ? 'No throw and no decoder fault.' : `PROBLEMS: ${f.problems.join('; ')}`)
  return lines
}

function floodMarkdown (f: FloodResult, off: FloodResult | undefined): string[] {
  const runs = [f, ...(off === undefined ? [] : [off])]
  const rate = (r: FloodResult): string => `${fmt(r.floodFramesPerSec)} frames/s taken by the transport, ${r.refused.toLocaleString('en')} refusals counted by the flooded agents (edge_agent_refused_total)`
  const setting = (r: FloodResult): string => r.peerBlockMs === undefined ? 'as before blocking existed' : r.peerBlockMs === 0 ? 'peerBlockMs 0: never cut off' : `cut off for ${r.peerBlockMs / 1000} s (the default)`
  const lines = [`## Takeover under a flood from one hostile peer, ${f.nodes} real agents on loopback (lan profile, R = 2)`, '',
    `ms from an owner's SIGKILL to the terminal's first acknowledged append at the new owner, ${f.sessions} sessions appending; ${f.rounds} calm rounds alternating with ${f.rounds} rounds ` +
    'in which one hostile peer (its own process) floods every agent that must take over, on the SWIM and replication streams and the gossip topic (garbage and wrong-type frames), from 1.5 s before the kill until the takeover; ' +
    'it reopens a stream the agent ends and redials every 100 ms when refused. ' +
    (off === undefined ? '' : 'Two clusters one after the other in the same run: agents with the default limits, which cut a peer off once its malformed frames pass 100/s (burst 200; README, "Hostile input"), and agents with `limits.peerBlockMs` 0, which take the whole flood.'), '',
    '| agents | rounds | p50 | p99 | max | takeovers |', '|---|---|---|---|---|---|']
  for (const r of runs) lines.push(`| ${setting(r)} | calm | ${lat(r.calm)} |`, `| ${setting(r)} | under flood | ${lat(r.flood)} |`)
  lines.push('')
  for (const r of runs) {
    lines.push(`${setting(r)}: ratio flood / calm p50 ${fmt(r.ratioP50, 2)}×, p99 ${fmt(r.ratioP99, 2)}×. The flood: ${rate(r)}` +
      (r.blocks === undefined ? '. ' : `; the peer cut off ${r.blocks} times, ${r.refusedConnections.toLocaleString('en')} of its connections refused. `) +
      `Rounds without a takeover figure: ${r.failedRounds.length === 0 ? 'none' : `${r.failedRounds.length} (${r.failedRounds.map((x) => x.split(':')[0]).join(', ')})`}; ` +
      `appends a terminal gave up on (no answer within the client's 15 s deadline; the next append re-sends them): ${(r.stalledAppends ?? []).length}. ` +
      `The check after all rounds: ${r.acknowledged} acknowledged appends, ${r.problems.length === 0 ? 'every one present once, in order' : 'PROBLEMS: ' + r.problems.join('; ')}.`, '')
  }
  if (off !== undefined) lines.push(`Cutting the peer off against taking the flood, under flood: p50 ${fmt(f.flood.p50 / off.flood.p50, 2)}×, p99 ${fmt(f.flood.p99 / off.flood.p99, 2)}×.`)
  return lines
}

// Sections not run this time keep their last figures.
function previous (): Partial<Results> {
  const file = `${resultsDir}latest.json`
  if (!existsSync(file)) return {}
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Partial<Results>
  } catch {
    return {}
  }
}

async function main (): Promise<void> {
  if (!selected.includes('render')) setup()
  const results: Results = {
    ...previous(),
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version }
  }
  results.measured = { ...results.measured }
  // The 10-node `real` and `serf` sections became `detection` (5 and 20 nodes).
  for (const stale of ['realDetection', 'serf']) delete (results as Record<string, unknown>)[stale]
  for (const stale of ['real', 'serf']) delete results.measured[stale]
  for (const name of ['detection', 'memory', 'sim', 'sessions', 'replication', 'store', 'failover', 'simscale', 'deploy', 'fuzz', 'flood', 'slowdisk', 'keys']) if (want(name)) results.measured[name] = results.date
  if (want('fuzz')) {
    const seed = process.env.BENCH_FUZZ_SEED === undefined ? undefined : Number(process.env.BENCH_FUZZ_SEED)
    results.fuzz = benchFuzz(Number(process.env.BENCH_FUZZ_INPUTS ?? 1_000_000), seed)
  }
  if (want('flood')) {
    results.flood = await benchFlood({ rounds: Number(process.env.BENCH_FLOOD_ROUNDS ?? 10) })
    results.floodUnblocked = await benchFlood({ rounds: Number(process.env.BENCH_FLOOD_ROUNDS ?? 10), peerBlockMs: 0 })
  }
  if (want('simscale')) {
    const sizes = (process.env.BENCH_SIM_SIZES ?? '100,1000').split(',').map(Number)
    results.simScale = simScalePlan(sizes).map((p) => benchSimScale(p.nodes, p.durationS, p.warmStart))
    results.simSessions = benchSimSessions()
  }
  if (want('sessions')) {
    const rawStream = await benchRawStream()
    results.sessions = { ...await benchRealSessions({ takeoverRounds: takeovers }), rawStream }
  }
  if (want('replication')) results.replication = await benchReplication()
  if (want('store')) results.store = benchStore()
  if (want('deploy')) results.deploy = await benchDeploy()
  if (want('detection')) {
    const sizes = (process.env.BENCH_DETECTION_SIZES ?? '5,20').split(',').map(Number)
    results.detection = await benchDetection({ sizes, rounds, restSeconds: Number(process.env.BENCH_REST_S ?? 30), settleSeconds: Number(process.env.BENCH_SETTLE_S ?? 90) })
  }
  if (want('memory')) results.memory = await benchMemory({ nodes: 5, sessions: Number(process.env.BENCH_MEMORY_SESSIONS ?? 1000) })
  if (want('failover')) results.failover = await benchFailover(Number(process.env.BENCH_FAILOVER_ROUNDS ?? 5))
  if (want('slowdisk')) results.slowDisk = await benchSlowDisk()
  if (want('keys')) results.keyChange = await benchKeyChange()
  if (want('sim')) results.sim = [benchSimDetection(100, rounds, 1), benchSimDetection(1000, Math.min(rounds, 3), 1)]
  writeFileSync(`${resultsDir}latest.json`, JSON.stringify(results, null, 2) + '\n')
  const md = markdown(results)
  writeFileSync(`${resultsDir}latest.md`, md)
  process.stdout.write(md)
}

await main()
