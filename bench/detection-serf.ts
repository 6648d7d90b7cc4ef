// HashiCorp serf (Debian's package) measured the same way as edge-agent, in the
// same run: N serf agents on 127.0.0.1, at rest for a while (IP bytes each one
// sends, UDP probes and gossip and TCP push-pull alike, counted per process by
// bench/sent-bytes.ts), then SIGKILL / SIGSTOP one and time until each survivor
// reports it failed. The time is taken when serf logs `EventMemberFailed` (read
// live from its output), not when its event handler runs: the agent coalesces
// member events before running handlers, which would add a second that is not
// detection.
//
// Two variants: `serf agent` at its defaults (lan profile: probe every 1 s, 500 ms
// probe timeout), and bench/serf-probe, the same serf agent code built from
// Debian's sources with the probe interval and timeout set to edge-agent's (the
// shipped agent has no setting for them: its profiles all probe once a second).

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { log, sleep } from './lib.ts'
import { detection } from './detection-real.ts'
import type { Detection, DetectionRound } from './detection-real.ts'
import { inCgroup, sentRate } from './sent-bytes.ts'
import type { SentBytes, SentRate } from './sent-bytes.ts'

export type SerfVariant = { key: 'defaults' | 'equal-probe'; label: string; command: string; args: string[] }

export type SerfDetectionResult = {
  variant: string
  nodes: number
  rounds: number
  kill: Detection
  stop: Detection
  atRest: { seconds: number; sent: SentRate | null }
}

// Where bench/setup.sh builds serf-probe.
export const SERF_PROBE = fileURLToPath(new URL('./serf-probe/bin/serf-probe', import.meta.url))

// Debian's package version of serf, or why serf cannot be compared.
export function serfVersion (): { version: string } | { skipped: string } {
  const which = spawnSync('serf', ['version'], { encoding: 'utf8' })
  if (which.error !== undefined || which.status !== 0) return { skipped: 'serf is not installed (bench/setup.sh installs Debian\'s package as root)' }
  // The binary reports its upstream tag; the Debian package version is clearer.
  const dpkg = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'serf'], { encoding: 'utf8' })
  return { version: dpkg.status === 0 ? `Debian ${dpkg.stdout.trim()}` : (which.stdout ?? '').split('\n')[0].trim() }
}

export function serfVariants (probeIntervalMs: number, probeTimeoutMs: number): { variants: SerfVariant[]; skipped: string[] } {
  const variants: SerfVariant[] = [{ key: 'defaults', label: 'serf, defaults (lan: probe 1 s, timeout 500 ms)', command: 'serf', args: ['agent'] }]
  const skipped: string[] = []
  if (existsSync(SERF_PROBE)) {
    variants.push({
      key: 'equal-probe',
      label: `serf, probe ${probeIntervalMs} ms, timeout ${probeTimeoutMs} ms (bench/serf-probe)`,
      command: SERF_PROBE,
      args: [`-probe-interval=${probeIntervalMs}ms`, `-probe-timeout=${probeTimeoutMs}ms`]
    })
  } else {
    skipped.push(`serf at edge-agent's probe interval: ${SERF_PROBE} is not built (bench/setup.sh builds it as root, from Debian's golang-go and golang-github-hashicorp-serf-dev)`)
  }
  return { variants, skipped }
}

type Failure = { observer: string; member: string; atMs: number }

type Serf = { name: string; child: ChildProcess; port: number; rpc: number }

class SerfCluster {
  readonly failures: Failure[] = []
  readonly serfs: Serf[] = []
  readonly #variant: SerfVariant
  readonly #basePort: number
  readonly #cgroups: Array<string | undefined>

  constructor (variant: SerfVariant, basePort: number, cgroups: Array<string | undefined>) {
    this.#variant = variant
    this.#basePort = basePort
    this.#cgroups = cgroups
  }

  start (index: number, join: boolean): Serf {
    const name = `serf${index}`
    const port = this.#basePort + 2 * index
    const rpc = port + 1
    const args = [...this.#variant.args, `-node=${name}`, `-bind=127.0.0.1:${port}`, `-rpc-addr=127.0.0.1:${rpc}`]
    if (this.#variant.key === 'defaults') args.push(`-advertise=127.0.0.1:${port}`, '-log-level=info')
    // `serf agent -join` exits when its one attempt fails (it does on a busy box);
    // -retry-join keeps trying, once a second. serf-probe retries by itself.
    if (join) args.push(this.#variant.key === 'defaults' ? `-retry-join=127.0.0.1:${this.#basePort}` : `-join=127.0.0.1:${this.#basePort}`)
    if (join && this.#variant.key === 'defaults') args.push('-retry-interval=1s')
    const cgroup = this.#cgroups[index]
    const command = cgroup === undefined ? { file: this.#variant.command, args } : inCgroup(cgroup, this.#variant.command, args)
    const child = spawn(command.file, command.args, { stdio: ['ignore', 'pipe', 'ignore'] })
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

  async destroy (): Promise<void> {
    await Promise.all(this.serfs.map(async (s) => {
      if (s.child.exitCode !== null || s.child.signalCode !== null) return
      const exited = new Promise((resolve) => s.child.once('exit', resolve))
      s.child.kill('SIGCONT')
      s.child.kill('SIGKILL')
      await exited
    }))
  }
}

export type SerfDetectionOptions = { rounds: number; restSeconds: number; settleSeconds: number; counter: SentBytes | null; basePort: number }

export async function benchSerfDetection (nodes: number, variant: SerfVariant, options: SerfDetectionOptions): Promise<SerfDetectionResult> {
  const names = Array.from({ length: nodes }, (_, i) => `serf${variant.key === 'defaults' ? 'd' : 'p'}${nodes}-${i}`)
  const cluster = new SerfCluster(variant, options.basePort, names.map((name) => options.counter?.add(name)))
  log(`detection: starting ${nodes} agents: ${variant.label}`)
  try {
    cluster.start(0, false)
    await cluster.waitAlive(1)
    for (let i = 1; i < nodes; i++) cluster.start(i, true)
    await cluster.waitAlive(nodes)
    await sleep(options.settleSeconds * 1000)
    log(`detection: ${nodes} serf agents at rest for ${options.restSeconds} s`)
    const sent0 = options.counter?.read()
    const t0rest = Date.now()
    await sleep(options.restSeconds * 1000)
    const sent1 = options.counter?.read()
    const seconds = (Date.now() - t0rest) / 1000
    const atRest = { seconds, sent: sent0 === undefined || sent1 === undefined ? null : sentRate(sent0, sent1, names, seconds) }
    const kills: DetectionRound[] = []
    const stops: DetectionRound[] = []
    for (let round = 0; round < options.rounds; round++) {
      const victimIndex = 1 + (2 * round) % (nodes - 1)
      const victim = cluster.serfs[victimIndex]
      let survivors = cluster.serfs.filter((s) => s !== victim)
      let t0 = Date.now()
      victim.child.kill('SIGKILL')
      kills.push(await cluster.waitFailed(victim.name, survivors, t0))
      cluster.start(victimIndex, true)
      await cluster.waitAlive(nodes)
      const frozen = cluster.serfs[1 + (2 * round + 1) % (nodes - 1)]
      survivors = cluster.serfs.filter((s) => s !== frozen)
      t0 = Date.now()
      frozen.child.kill('SIGSTOP')
      stops.push(await cluster.waitFailed(frozen.name, survivors, t0))
      frozen.child.kill('SIGCONT')
      await cluster.waitAlive(nodes)
      log(`detection: ${variant.key} serf ×${nodes} round ${round + 1}/${options.rounds}: SIGKILL first ${kills[round].first} last ${kills[round].last} ms; SIGSTOP first ${stops[round].first} last ${stops[round].last} ms`)
    }
    return { variant: variant.label, nodes, rounds: options.rounds, kill: detection(kills), stop: detection(stops), atRest }
  } finally {
    await cluster.destroy()
  }
}
