// `npm run bench`: every benchmark in one run, written to bench/results/latest.json
// and bench/results/latest.md. Comparisons run in the same process, one after the
// other, on the same machine, and are reported as ratios.
//
//   node bench/run.ts [real] [serf] [sim]   only some of them (default: all)
//   BENCH_ROUNDS=5                           kill/freeze rounds per benchmark

import { execFileSync } from 'node:child_process'
import { cpus, totalmem } from 'node:os'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { benchRealDetection } from './detection-real.ts'
import type { RealDetectionResult } from './detection-real.ts'
import { benchSerf } from './detection-serf.ts'
import type { SerfResult } from './detection-serf.ts'
import { benchSimDetection } from './detection-sim.ts'
import type { SimDetectionResult } from './detection-sim.ts'
import { fmt, log } from './lib.ts'
import type { Spread } from './lib.ts'

const selected = process.argv.slice(2)
const want = (name: string): boolean => selected.length === 0 || selected.includes(name)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const resultsDir = fileURLToPath(new URL('./results/', import.meta.url))

type Results = {
  date: string
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string }
  realDetection?: RealDetectionResult
  serf?: SerfResult
  sim?: SimDetectionResult[]
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
  if (r.realDetection !== undefined) {
    const d = r.realDetection
    lines.push(`## Failure detection, ${d.nodes} real agents on loopback (lan profile), ${d.rounds} rounds`, '',
      'Milliseconds from the signal to the first and to the last survivor\'s `dead` verdict (median / max).', '',
      '| | first | last |', '|---|---|---|',
      `| edge-agent SIGKILL | ${ms(d.kill.first)} | ${ms(d.kill.last)} |`,
      `| edge-agent SIGSTOP | ${ms(d.stop.first)} | ${ms(d.stop.last)} |`)
    if (r.serf !== undefined && !('skipped' in r.serf)) {
      const s = r.serf
      lines.push(`| serf ${s.version} SIGKILL (defaults) | ${ms(s.kill.first)} | ${ms(s.kill.last)} |`,
        `| serf ${s.version} SIGSTOP (defaults) | ${ms(s.stop.first)} | ${ms(s.stop.last)} |`, '',
        `Ratio serf / edge-agent, median time to the last survivor's verdict: SIGKILL ${fmt(s.kill.last.median / d.kill.last.median, 1)}×, SIGSTOP ${fmt(s.stop.last.median / d.stop.last.median, 1)}×.`)
    } else if (r.serf !== undefined && 'skipped' in r.serf) {
      lines.push('', `serf: skipped (${r.serf.skipped}).`)
    }
    lines.push('', `Bandwidth sent per agent at rest, ${fmt(d.atRest.seconds)} s, median (max) over the ${d.nodes} agents. Wire = kernel TCP counters ` +
      '(libp2p, noise, yamux and gossipsub included); payload = the agent\'s own membership messages.', '',
      '| | wire B/s | payload B/s |', '|---|---|---|',
      `| membership only (load sampling off) | ${fmt(d.atRestWithoutLoad.wireBytesPerSecPerNode.median)} (${fmt(d.atRestWithoutLoad.wireBytesPerSecPerNode.max)}) | ${fmt(d.atRestWithoutLoad.payloadBytesPerSecPerNode.median)} |`,
      `| defaults (load sampled every 1 s, published on change, at most every 5 s) | ${fmt(d.atRest.wireBytesPerSecPerNode.median)} (${fmt(d.atRest.wireBytesPerSecPerNode.max)}) | ${fmt(d.atRest.payloadBytesPerSecPerNode.median)} |`,
      '', `False dead verdicts during the run: ${d.falseDeadVerdicts}.`)
  }
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

async function main (): Promise<void> {
  setup()
  const results: Results = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version }
  }
  if (want('real')) results.realDetection = await benchRealDetection(10, rounds)
  if (want('serf')) results.serf = await benchSerf(10, rounds)
  if (want('sim')) results.sim = [benchSimDetection(100, rounds, 1), benchSimDetection(1000, Math.min(rounds, 3), 1)]
  writeFileSync(`${resultsDir}latest.json`, JSON.stringify(results, null, 2) + '\n')
  const md = markdown(results)
  writeFileSync(`${resultsDir}latest.md`, md)
  process.stdout.write(md)
}

await main()
