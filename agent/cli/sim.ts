// `edge-agent sim`: the simulator people run to try the agent before deploying
// it, to size a cluster and to reproduce a failure. Virtual mode runs the real
// cores on the in-memory network (sim/runner.ts); the output is a function of
// the seed and the options, byte for byte.

import { spawn } from 'node:child_process'
import { accessSync, constants, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { totalmem } from 'node:os'
import { getHeapStatistics } from 'node:v8'
import { basename, dirname, resolve } from 'node:path'
import type { SimHostFacts } from '../../sim/result.ts'
import { renderReport } from '../../sim/report.ts'
import { netnsUnavailable } from '../../sim/netns.ts'
import { realModeRefusal, runReal } from '../../sim/real-runner.ts'
import { runVirtual } from '../../sim/runner.ts'
import { BUILT_IN, ScenarioError, loadScenario, scenarioNames } from '../../sim/scenarios.ts'
import type { Scenario } from '../../sim/scenarios.ts'
import { formatSummary } from '../../sim/summary.ts'
import { parseFlags, UsageError } from './args.ts'

export const SIM_HELP = `Usage: edge-agent sim [options]

Runs a cluster of edge agents in virtual time: the agent's real membership and
sessions code on a simulated network, terminals appending deltas while nodes
crash, freeze, get partitioned and lose messages (chaos phase); then every fault
heals and the cluster must converge and serve every terminal again (liveness
phase). Ends with a table: detection times, takeover latencies, bandwidth per
node, acknowledged deltas, and the verdict of every checker. The same seed and
options print the same result, byte for byte.

  --scenario <name|file.json>  ${scenarioNames().join(', ')} (default demo),
                               or a scenario file (see the README)
  --nodes <n>                  number of agents, 1-20000 (default: the scenario's);
                               one process holds every agent's member table (N²
                               entries, ~30 bytes each): 1,000 agents take well
                               under 1 GiB, 10,000 a few GiB (see the README)
  --seed <n>                   seed of the run, 0-4294967295 (default 1)
  --duration <sec>             chaos phase, virtual seconds (wall seconds with --real;
                               default: the scenario's)
  --warm-start                 virtual mode: begin with the cluster already converged
                               (every agent's table holds every agent's record, as
                               if bootstrapped earlier) instead of joining; a cold
                               join costs N² messages, most of the run's time at
                               thousands of nodes. Restarted agents join cold.
                               Memory: ~48 bytes per agent per agent (N² table
                               entries; 10,000 nodes ~4.5 GiB); when that exceeds
                               Node's heap limit the command re-runs itself with
                               --max-old-space-size set to fit.
  --json                       print the whole result as JSON on stdout
  --report <file.html>         also write a self-contained HTML report with charts
  --real                       real agent processes on 127.0.0.1 instead of virtual
                               time: SIGKILL, SIGSTOP/SIGCONT, restarts from the data
                               directory; partitions, loss, delay and slow nodes
                               through each agent's fault-injection gate (agents are
                               started with --fault-injection); at most 32 agents;
                               wall-clock seconds, so not reproducible byte for byte
  --netns                      with --real, as root: each agent in its own
                               network namespace, on a private 10.213.x.0/24 this
                               creates and removes; partitions split the bridge
                               between them (silent drops); loss, delay and slow stay
                               with the gates
  -h, --help                   show this help

Built-in scenarios:
${Object.values(BUILT_IN).map((s) => `  ${s.name.padEnd(10)} ${s.nodes} nodes, ${s.durationS} s: ${s.description}`).join('\n')}

The first line printed (on stderr) is the command that replays the run.
Progress goes to stderr (a bar on a terminal, plain lines otherwise).
Virtual mode: the same seed and options print the same result, byte for byte.
Exit codes: 0 when every checker passed, 1 when one failed, 2 on a usage error.`

const FLAGS = {
  scenario: { type: 'string' },
  nodes: { type: 'string' },
  seed: { type: 'string' },
  duration: { type: 'string' },
  json: { type: 'boolean' },
  'warm-start': { type: 'boolean' },
  report: { type: 'string' },
  real: { type: 'boolean' },
  netns: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

export async function runSim (argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, FLAGS, 0)
  if (values.help === true) {
    console.log(SIM_HELP)
    return 0
  }
  const scenarioArg = typeof values.scenario === 'string' ? values.scenario : 'demo'
  const scenario = readScenario(scenarioArg)
  if (values.nodes !== undefined) scenario.nodes = wholeNumber(values.nodes, 'nodes', 1, 20_000)
  if (values.duration !== undefined) scenario.durationS = wholeNumber(values.duration, 'duration', 1, 86_400)
  const seed = values.seed === undefined ? 1 : wholeNumber(values.seed, 'seed', 0, 0xffffffff)
  const report = typeof values.report === 'string' ? values.report : null
  if (report !== null && !report.endsWith('.html')) throw new UsageError(`--report needs a file name ending in .html (got ${report})`)
  // Checked before the run, not after it: a report that cannot be written failed
  // only once the whole run was done, with a stack trace.
  if (report !== null) {
    const problem = reportPathProblem(report)
    if (problem !== null) throw new UsageError(`--report ${report}: ${problem}`)
  }
  const real = values.real === true
  const netns = values.netns === true
  if (netns && !real) throw new UsageError('--netns needs --real (it puts real agent processes in network namespaces)')
  const warmStart = values['warm-start'] === true
  if (warmStart && real) throw new UsageError('--warm-start is for virtual mode (real agents join as they start)')
  if (real) {
    const refusal = realModeRefusal(scenario) ?? (netns ? netnsUnavailable() : null)
    if (refusal !== null) throw new UsageError(refusal)
  } else {
    const heap = heapPlan(scenario.nodes)
    if (heap !== null) return await rerunWithHeap(heap)
  }

  const replay = replayLine(scenarioArg, scenario, seed, values.json === true, report, real ? (netns ? 'netns' : 'gate') : null, warmStart)
  process.stderr.write(`${replay}\n`)
  process.stderr.write(`scenario ${scenario.name}: ${scenario.description}\n`)
  process.stderr.write(`derived: nodes=${scenario.nodes} duration=${scenario.durationS}s liveness<=${scenario.livenessS}s terminals=${scenario.workload.terminals} ` +
    `delta every ${scenario.workload.deltaIntervalMs} ms of ${scenario.workload.valueBytes} B, link loss ${scenario.link.lossRate} delay ${scenario.link.delayMinMs}-${scenario.link.delayMaxMs} ms, ` +
    `faults: ${scenario.faults.length} scheduled${scenario.random === null ? '' : `, random ${scenario.random.faults.join('/')} every ${scenario.random.everyS} s (down ${scenario.random.downS[0]}-${scenario.random.downS[1]} s, at most ${scenario.random.maxDown} at once)`}, profile lan\n`)

  const bar = new ProgressBar(process.stderr, real ? 's' : 'virtual s')
  const started = performance.now()
  let peakRss = process.memoryUsage().rss
  const onProgress = (done: number, total: number, phase: string): void => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss)
    bar.update(done, total, phase)
  }
  const result = real ? await runReal({ seed, scenario, onProgress, netns }) : runVirtual({ seed, scenario, onProgress, warmStart, verifyWake: false })
  bar.done()
  result.replay = replay
  const wallSeconds = (performance.now() - started) / 1_000
  const host: SimHostFacts = {
    wallSeconds: Math.round(wallSeconds * 100) / 100,
    peakRssMiB: Math.round(peakRss / 2 ** 20),
    virtualPerWall: Math.round((scenario.nodes * (result.durationMs / 1_000)) / Math.max(wallSeconds, 0.001)),
    node: process.version
  }
  if (values.json === true) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  else process.stdout.write(formatSummary(result) + '\n')
  // CPU time too: on a shared box the wall clock measures the neighbours as well.
  const cpu = process.cpuUsage()
  const cpuSeconds = Math.round((cpu.user + cpu.system) / 10_000) / 100
  process.stderr.write(`wall ${host.wallSeconds} s, cpu ${cpuSeconds} s, peak memory ${host.peakRssMiB} MiB, ${host.virtualPerWall} node-seconds per wall second\n`)
  if (report !== null) {
    writeFileSync(report, renderReport(result, host))
    process.stderr.write(`report written to ${report}\n`)
  }
  if (!result.ok) process.stderr.write(`FAILED: replay with\n  ${replay}\n`)
  return result.ok ? 0 : 1
}

function readScenario (arg: string): Scenario {
  if (!arg.endsWith('.json')) {
    try {
      return loadScenario(arg, null)
    } catch (error) {
      if (error instanceof ScenarioError) throw new UsageError(error.message)
      throw error
    }
  }
  if (!existsSync(arg)) throw new UsageError(`scenario file ${arg} does not exist`)
  let json: unknown
  try {
    json = JSON.parse(readFileSync(arg, 'utf8'))
  } catch (error) {
    throw new UsageError(`scenario file ${arg} is not valid JSON: ${(error as Error).message}`)
  }
  try {
    return loadScenario(basename(arg, '.json'), json)
  } catch (error) {
    if (error instanceof ScenarioError) throw new UsageError(`scenario file ${arg}: ${error.message}`)
    throw error
  }
}

function wholeNumber (value: string | boolean | undefined, name: string, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max} (got ${String(value)})`)
  return n
}

function reportPathProblem (path: string): string | null {
  const dir = dirname(resolve(path))
  try {
    if (!statSync(dir).isDirectory()) return `${dir} is not a directory`
    accessSync(dir, constants.W_OK)
  } catch (error) {
    return `cannot write in ${dir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`
  }
  try {
    if (statSync(path).isDirectory()) return 'is a directory'
  } catch {}
  return null
}

function replayLine (scenarioArg: string, scenario: Scenario, seed: number, json: boolean, report: string | null, real: 'gate' | 'netns' | null, warmStart: boolean): string {
  return `edge-agent sim --scenario ${scenarioArg} --nodes ${scenario.nodes} --duration ${scenario.durationS} --seed ${seed}${real === null ? '' : real === 'netns' ? ' --real --netns' : ' --real'}${warmStart ? ' --warm-start' : ''}${json ? ' --json' : ''}${report === null ? '' : ` --report ${report}`}`
}

// A bar on a terminal, a plain line per 10% otherwise.
class ProgressBar {
  readonly #out: NodeJS.WriteStream
  readonly #tty: boolean
  // Seconds of what: virtual time, or the wall clock in real mode.
  readonly #unit: string
  #lastTenth = -1
  #lastDrawMs = 0

  constructor (out: NodeJS.WriteStream, unit: string) {
    this.#out = out
    this.#tty = out.isTTY === true
    this.#unit = unit
  }

  update (done: number, total: number, phase: string): void {
    const share = total > 0 ? done / total : 1
    if (this.#tty) {
      const now = performance.now()
      if (now - this.#lastDrawMs < 100 && share < 1) return
      this.#lastDrawMs = now
      const width = 30
      const filled = Math.round(share * width)
      this.#out.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}%  ${(done / 1_000).toFixed(0)}/${(total / 1_000).toFixed(0)} ${this.#unit}  ${phase.padEnd(9)}`)
      return
    }
    const tenth = Math.floor(share * 10)
    if (tenth === this.#lastTenth) return
    this.#lastTenth = tenth
    this.#out.write(`progress ${tenth * 10}% (${(done / 1_000).toFixed(0)} of ${(total / 1_000).toFixed(0)} ${this.#unit}, ${phase})\n`)
  }

  done (): void {
    if (this.#tty) this.#out.write('\n')
  }
}


// Every simulated agent holds the whole member table: N² entries of ~40 bytes,
// plus the rest of the run. Node's default heap limit (~4 GiB) is too small from
// about 9,000 nodes, so the command re-runs itself with a larger one rather than
// dying out of memory minutes in. A much larger limit than needed lets garbage
// pile up toward it, so the limit is the estimate plus a quarter.
export const SIM_HEAP_ENV = 'EDGE_AGENT_SIM_HEAP_SET'
const BYTES_PER_ENTRY = 48
const BASE_HEAP_MIB = 512

export function heapNeedMiB (nodes: number): number {
  return BASE_HEAP_MIB + Math.ceil(nodes * nodes * BYTES_PER_ENTRY / 2 ** 20)
}

// The --max-old-space-size to re-run with (MiB), or null when the current limit
// will do. Refuses a run this box cannot hold.
function heapPlan (nodes: number): number | null {
  const need = heapNeedMiB(nodes)
  const limitMiB = getHeapStatistics().heap_size_limit / 2 ** 20
  if (need <= limitMiB * 0.9 || process.env[SIM_HEAP_ENV] !== undefined) return null
  const cap = Math.ceil(need * 1.25 / 256) * 256
  const boxMiB = totalmem() / 2 ** 20
  if (cap > boxMiB * 0.85) throw new UsageError(`${nodes} simulated nodes need about ${(need / 1024).toFixed(1)} GiB of heap (N² member-table entries); this box has ${(boxMiB / 1024).toFixed(1)} GiB`)
  return cap
}

async function rerunWithHeap (capMiB: number): Promise<number> {
  process.stderr.write(`sim: the member tables need more than Node's default heap; re-running with --max-old-space-size=${capMiB}\n`)
  const child = spawn(process.execPath, [...process.execArgv, `--max-old-space-size=${capMiB}`, process.argv[1], ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [SIM_HEAP_ENV]: String(capMiB) }
  })
  return await new Promise<number>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => { resolve(code ?? 1) })
  })
}
