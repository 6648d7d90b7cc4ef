// A flooding terminal against one agent on 127.0.0.1: does the rate limit keep
// the other terminals' appends fast? One agent (edge-agent start, replicas 0);
// a victim terminal (EdgeClient, 127.0.0.1) appends one delta at a time and we
// record each append's latency; a flooder (from another source address,
// 127.0.0.2) hammers its own session with reads from FLOOD_CONCURRENCY
// connections at once. Both are loopback clients, so what holds the flooder back
// is its session's limit (loopback is exempt from the per-terminal ones). Three phases of PHASE_S seconds each:
// no flood; flood with the default limits; flood with the limits lifted (a
// second agent, limits set to 10^9). Prints one table; run once:
//
//   node bench/terminal-flood.ts
//
// Not part of `npm run bench` (it is about the limiter, not the product's speed).

import { Agent as HttpAgent, request } from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { EdgeClient } from '../agent/client/index.ts'
import { AgentProcess } from '../sim/processes.ts'
import { fmt, log, percentile } from './lib.ts'

const PHASE_S = Number(process.env.PHASE_S ?? 8)
const FLOOD_CONCURRENCY = Number(process.env.FLOOD_CONCURRENCY ?? 32)
const FLOODER_ADDRESS = '127.0.0.2'

type Phase = { name: string; victim: number[]; flood: { ok: number; throttled: number; other: number } }

async function victimAppends (client: EdgeClient, token: string, untilMs: number): Promise<number[]> {
  const session = await client.resume({ token })
  const latencies: number[] = []
  let i = 0
  while (performance.now() < untilMs) {
    const t0 = performance.now()
    await session.append({ append: i++ })
    latencies.push(performance.now() - t0)
  }
  return latencies
}

function get (url: string, token: string, agent: HttpAgent): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', agent, localAddress: FLOODER_ADDRESS, headers: { authorization: `Bearer ${token}` } }, (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode ?? 0))
    })
    req.on('error', () => resolve(0))
    req.end()
  })
}

async function flood (url: string, token: string, untilMs: number): Promise<Phase['flood']> {
  const counts = { ok: 0, throttled: 0, other: 0 }
  const agent = new HttpAgent({ keepAlive: true, maxSockets: FLOOD_CONCURRENCY })
  await Promise.all(Array.from({ length: FLOOD_CONCURRENCY }, async () => {
    while (performance.now() < untilMs) {
      const status = await get(url, token, agent)
      if (status === 200) counts.ok++
      else if (status === 429) counts.throttled++
      else counts.other++
    }
  }))
  agent.destroy()
  return counts
}

async function runPhases (agent: AgentProcess, names: string[]): Promise<Phase[]> {
  const victim = new EdgeClient({ agents: [agent.http] })
  const flooder = new EdgeClient({ agents: [agent.http] })
  const phases: Phase[] = []
  try {
    const mine = await victim.open({ terminalId: 'victim', service: 'log' })
    const theirs = await flooder.open({ terminalId: 'flooder', service: 'log' })
    const floodUrl = `${agent.http}/v1/sessions/${encodeURIComponent(theirs.sessionId)}`
    for (const name of names) {
      const untilMs = performance.now() + PHASE_S * 1000
      const flooding = name === 'no flood' ? Promise.resolve({ ok: 0, throttled: 0, other: 0 }) : flood(floodUrl, theirs.token, untilMs)
      const [latencies, counts] = await Promise.all([victimAppends(victim, mine.token, untilMs), flooding])
      phases.push({ name, victim: latencies, flood: counts })
      log(`${name}: ${latencies.length} victim appends, flood ${JSON.stringify(counts)}`)
    }
  } finally {
    victim.destroy()
    flooder.destroy()
  }
  return phases
}

async function main (): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-flood-'))
  const unlimited = join(dir, 'unlimited.json')
  writeFileSync(unlimited, JSON.stringify({ limits: { terminalRequestsPerS: 1e9, terminalBytesPerS: 1e9, sessionRequestsPerS: 1e9, sessionBytesPerS: 1e9 } }))
  const phases: Phase[] = []
  try {
    const limited = await AgentProcess.start({ name: 'limited', dataDir: join(dir, 'a'), profile: 'local', services: 'log', extraArgs: ['--replicas', '0'], logLevel: 'error' })
    phases.push(...await runPhases(limited, ['no flood', 'flood, default limits']))
    await limited.stop()
    const open = await AgentProcess.start({ name: 'unlimited', dataDir: join(dir, 'b'), profile: 'local', services: 'log', extraArgs: ['--replicas', '0', '--config', unlimited], logLevel: 'error' })
    phases.push(...await runPhases(open, ['flood, limits lifted']))
    await open.stop()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  console.log(`Victim terminal's appends (one at a time) while another terminal floods its own session with reads from ${FLOOD_CONCURRENCY} connections; ${PHASE_S} s per phase, one agent on 127.0.0.1.`)
  console.log('| phase | victim appends/s | victim p50 ms | victim p99 ms | flood answered 200/s | flood 429/s |')
  console.log('|---|---|---|---|---|---|')
  for (const p of phases) {
    console.log(`| ${p.name} | ${fmt(p.victim.length / PHASE_S)} | ${fmt(percentile(p.victim, 50), 1)} | ${fmt(percentile(p.victim, 99), 1)} | ${fmt(p.flood.ok / PHASE_S)} | ${fmt(p.flood.throttled / PHASE_S)} |`)
  }
}

await main()
process.exit(0)
