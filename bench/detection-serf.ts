// HashiCorp serf (Debian's package) measured the same way, in the same run: N serf
// agents on 127.0.0.1 at their defaults, SIGKILL / SIGSTOP one, and the time until
// each survivor's member-failed event handler fires. (serf probes and gossips over
// UDP, which the kernel does not count per socket; its bandwidth is left to the
// comparison benchmarks of a later issue.)

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { log, sleep, spread } from './lib.ts'
import type { Spread } from './lib.ts'
import type { DetectionRound } from './detection-real.ts'

export type SerfResult = {
  version: string
  nodes: number
  rounds: number
  kill: { first: Spread; last: Spread; each: DetectionRound[] }
  stop: { first: Spread; last: Spread; each: DetectionRound[] }
} | { skipped: string }

const BASE_PORT = 17946

type Serf = { name: string; child: ChildProcess; port: number; rpc: number }

function startSerf (dir: string, index: number, joinPort: number | null): Serf {
  const name = `serf${index}`
  const port = BASE_PORT + 2 * index
  const rpc = port + 1
  const args = ['agent', `-node=${name}`, `-bind=127.0.0.1:${port}`, `-advertise=127.0.0.1:${port}`, `-rpc-addr=127.0.0.1:${rpc}`,
    '-log-level=err', `-event-handler=member-failed=${handlerPath(dir)}`]
  if (joinPort !== null) args.push(`-join=127.0.0.1:${joinPort}`)
  const child = spawn('serf', args, { stdio: ['ignore', 'ignore', 'ignore'] })
  return { name, child, port, rpc }
}

function handlerPath (dir: string): string {
  return `${dir}/on-failed.sh`
}

function failedLog (dir: string): string {
  return `${dir}/failed.log`
}

function failedTimes (dir: string, victim: string, since: number): Map<string, number> {
  const seen = new Map<string, number>()
  let text = ''
  try { text = readFileSync(failedLog(dir), 'utf8') } catch { return seen }
  for (const line of text.split('\n')) {
    const [at, self, member] = line.split(' ')
    if (member !== victim || Number(at) < since || seen.has(self)) continue
    seen.set(self, Number(at))
  }
  return seen
}

async function waitFailed (dir: string, victim: string, survivors: Serf[], since: number): Promise<DetectionRound> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const seen = failedTimes(dir, victim, since)
    if (survivors.every((s) => seen.has(s.name))) {
      const times = survivors.map((s) => (seen.get(s.name) as number) - since)
      return { first: Math.min(...times), last: Math.max(...times) }
    }
    if (Date.now() > deadline) throw new Error(`serf: ${victim} not failed everywhere within 60 s`)
    await sleep(50)
  }
}

async function waitAlive (serfs: Serf[], count: number): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const ok = serfs.every((s) => {
      const out = spawnSync('serf', ['members', `-rpc-addr=127.0.0.1:${s.rpc}`, '-status=alive'], { encoding: 'utf8' }).stdout ?? ''
      return out.trim().split('\n').filter((l) => l.trim() !== '').length === count
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error('serf cluster did not converge')
    await sleep(500)
  }
}

export async function benchSerf (nodes = 10, rounds = 5): Promise<SerfResult> {
  const which = spawnSync('serf', ['version'], { encoding: 'utf8' })
  if (which.error !== undefined || which.status !== 0) return { skipped: 'serf is not installed (bench/setup.sh installs Debian\'s package as root)' }
  // The binary reports its upstream tag; the Debian package version is clearer.
  const dpkg = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'serf'], { encoding: 'utf8' })
  const version = dpkg.status === 0 ? `Debian ${dpkg.stdout.trim()}` : (which.stdout ?? '').split('\n')[0].trim()
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-serf-'))
  writeFileSync(handlerPath(dir), `#!/bin/sh\nwhile read name rest; do echo "$(date +%s%3N) $SERF_SELF_NAME $name" >> ${failedLog(dir)}; done\n`)
  chmodSync(handlerPath(dir), 0o755)
  log(`serf: starting ${nodes} agents (${version}, defaults: lan profile)`)
  const serfs: Serf[] = []
  try {
    serfs.push(startSerf(dir, 0, null))
    await sleep(1_000)
    for (let i = 1; i < nodes; i++) serfs.push(startSerf(dir, i, BASE_PORT))
    await waitAlive(serfs, nodes)
    await sleep(3_000)
    const kills: DetectionRound[] = []
    const stops: DetectionRound[] = []
    for (let round = 0; round < rounds; round++) {
      const victimIndex = 1 + (2 * round) % (nodes - 1)
      const victim = serfs[victimIndex]
      let t0 = Date.now()
      victim.child.kill('SIGKILL')
      kills.push(await waitFailed(dir, victim.name, serfs.filter((s) => s !== victim), t0))
      serfs[victimIndex] = startSerf(dir, victimIndex, BASE_PORT)
      await waitAlive(serfs, nodes)
      const frozen = serfs[1 + (2 * round + 1) % (nodes - 1)]
      t0 = Date.now()
      frozen.child.kill('SIGSTOP')
      stops.push(await waitFailed(dir, frozen.name, serfs.filter((s) => s !== frozen), t0))
      frozen.child.kill('SIGCONT')
      await waitAlive(serfs, nodes)
      log(`serf: round ${round + 1}/${rounds}: SIGKILL first ${kills[round].first} last ${kills[round].last} ms; SIGSTOP first ${stops[round].first} last ${stops[round].last} ms`)
    }
    return {
      version,
      nodes,
      rounds,
      kill: { first: spread(kills.map((r) => r.first)), last: spread(kills.map((r) => r.last)), each: kills },
      stop: { first: spread(stops.map((r) => r.first)), last: spread(stops.map((r) => r.last)), each: stops }
    }
  } finally {
    for (const s of serfs) { s.child.kill('SIGCONT'); s.child.kill('SIGKILL') }
    rmSync(dir, { recursive: true, force: true })
  }
}
