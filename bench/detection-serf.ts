// HashiCorp serf (Debian's package) measured the same way, in the same run: N serf
// agents on 127.0.0.1 at their defaults (lan profile), SIGKILL / SIGSTOP one, and
// the time until each survivor reports it failed. The time is taken when serf
// logs `EventMemberFailed` (read live from its output), not when its event
// handler runs: the agent coalesces member events before running handlers, which
// would add a second that is not detection. (serf probes and gossips over UDP,
// which the kernel does not count per socket; its bandwidth is left to the
// comparison benchmarks of a later issue.)

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
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

type Failure = { observer: string; member: string; atMs: number }

type Serf = { name: string; child: ChildProcess; port: number; rpc: number }

class SerfCluster {
  readonly failures: Failure[] = []
  readonly serfs: Serf[] = []

  start (index: number, joinPort: number | null): Serf {
    const name = `serf${index}`
    const port = BASE_PORT + 2 * index
    const rpc = port + 1
    const args = ['agent', `-node=${name}`, `-bind=127.0.0.1:${port}`, `-advertise=127.0.0.1:${port}`, `-rpc-addr=127.0.0.1:${rpc}`, '-log-level=info']
    if (joinPort !== null) args.push(`-join=127.0.0.1:${joinPort}`, '-retry-join=127.0.0.1:' + joinPort)
    const child = spawn('serf', args, { stdio: ['ignore', 'pipe', 'ignore'] })
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const failed = /EventMemberFailed: (\S+)/.exec(line)
      if (failed !== null) this.failures.push({ observer: name, member: failed[1], atMs: Date.now() })
    })
    const serf = { name, child, port, rpc }
    this.serfs[index] = serf
    return serf
  }

  async waitFailed (victim: string, survivors: Serf[], sinceMs: number): Promise<DetectionRound> {
    const deadline = Date.now() + 120_000
    for (;;) {
      const seen = new Map<string, number>()
      for (const f of this.failures) if (f.member === victim && f.atMs >= sinceMs && !seen.has(f.observer)) seen.set(f.observer, f.atMs - sinceMs)
      if (survivors.every((s) => seen.has(s.name))) {
        const times = survivors.map((s) => seen.get(s.name) as number)
        return { first: Math.min(...times), last: Math.max(...times) }
      }
      if (Date.now() > deadline) throw new Error(`serf: ${victim} not failed everywhere within 120 s (${seen.size}/${survivors.length})`)
      await sleep(50)
    }
  }

  // Every agent lists `count` alive members.
  async waitAlive (count: number): Promise<void> {
    const deadline = Date.now() + 120_000
    for (;;) {
      const ok = this.serfs.every((s) => {
        const out = spawnSync('serf', ['members', `-rpc-addr=127.0.0.1:${s.rpc}`, '-status=alive'], { encoding: 'utf8' }).stdout ?? ''
        return out.trim().split('\n').filter((l) => l.trim() !== '').length === count
      })
      if (ok) return
      if (Date.now() > deadline) throw new Error('serf cluster did not converge')
      await sleep(500)
    }
  }

  destroy (): void {
    for (const s of this.serfs) { s.child.kill('SIGCONT'); s.child.kill('SIGKILL') }
  }
}

export async function benchSerf (nodes = 10, rounds = 5): Promise<SerfResult> {
  const which = spawnSync('serf', ['version'], { encoding: 'utf8' })
  if (which.error !== undefined || which.status !== 0) return { skipped: 'serf is not installed (bench/setup.sh installs Debian\'s package as root)' }
  // The binary reports its upstream tag; the Debian package version is clearer.
  const dpkg = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'serf'], { encoding: 'utf8' })
  const version = dpkg.status === 0 ? `Debian ${dpkg.stdout.trim()}` : (which.stdout ?? '').split('\n')[0].trim()
  log(`serf: starting ${nodes} agents (${version}, defaults: lan profile)`)
  const cluster = new SerfCluster()
  try {
    cluster.start(0, null)
    await cluster.waitAlive(1)
    for (let i = 1; i < nodes; i++) cluster.start(i, BASE_PORT)
    await cluster.waitAlive(nodes)
    await sleep(3_000)
    const kills: DetectionRound[] = []
    const stops: DetectionRound[] = []
    for (let round = 0; round < rounds; round++) {
      const victimIndex = 1 + (2 * round) % (nodes - 1)
      const victim = cluster.serfs[victimIndex]
      let survivors = cluster.serfs.filter((s) => s !== victim)
      let t0 = Date.now()
      victim.child.kill('SIGKILL')
      kills.push(await cluster.waitFailed(victim.name, survivors, t0))
      cluster.start(victimIndex, BASE_PORT)
      await cluster.waitAlive(nodes)
      const frozen = cluster.serfs[1 + (2 * round + 1) % (nodes - 1)]
      survivors = cluster.serfs.filter((s) => s !== frozen)
      t0 = Date.now()
      frozen.child.kill('SIGSTOP')
      stops.push(await cluster.waitFailed(frozen.name, survivors, t0))
      frozen.child.kill('SIGCONT')
      await cluster.waitAlive(nodes)
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
    cluster.destroy()
  }
}
