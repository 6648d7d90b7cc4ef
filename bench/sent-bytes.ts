// Bytes each benchmarked process sends, counted by the kernel the same way for
// every program compared (edge-agent over TCP; serf over UDP for probes and
// gossip and TCP for push-pull): each process runs in a cgroup (v2) of its own,
// and one nftables rule per cgroup in the output hook counts the IP packets its
// sockets send, UDP and TCP alike, IP and transport headers included. On
// loopback every packet passes the output hook once, so the counter is what the
// process put on the wire. Not counted: packets the kernel sends for a socket
// that is not a full one (SYN-ACKs of a listener, RSTs, ACKs in TIME_WAIT), a
// few dozen bytes per connection, which serf's push-pull opens every 30 s.
//
// Needs root, the `nft` command (Debian's nftables, installed by setup.sh) and a
// cgroup2 hierarchy mounted under /sys/fs/cgroup (nft names cgroups by their
// path there). The table and cgroups are removed by close(), on exit, and on
// SIGINT or SIGTERM (after a SIGKILL: `nft delete table inet edge_agent_bench_<pid>_<n>`
// and rmdir the cgroups under <cgroup2 mount>/edge-agent-bench-<pid>).

import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import { JOIN_CGROUP_SCRIPT } from '../sim/processes.ts'
import { spread } from './lib.ts'
import type { Spread } from './lib.ts'

export type PacketCount = { packets: number; bytes: number }

// The counters of `nft -j list table …`, by rule comment; rules without a
// comment or a counter are left out. Never throws: bad JSON gives an empty map.
export function parseNftCounters (json: string): Map<string, PacketCount> {
  const counters = new Map<string, PacketCount>()
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch {
    return counters
  }
  const items = (parsed as { nftables?: unknown })?.nftables
  if (!Array.isArray(items)) return counters
  for (const item of items) {
    const rule = (item as { rule?: { comment?: unknown; expr?: unknown } | null } | null)?.rule
    if (rule === undefined || rule === null || typeof rule.comment !== 'string' || !Array.isArray(rule.expr)) continue
    for (const expr of rule.expr) {
      const counter = (expr as { counter?: { packets?: unknown; bytes?: unknown } | null } | null)?.counter
      if (counter === undefined || counter === null || typeof counter.packets !== 'number' || typeof counter.bytes !== 'number') continue
      const previous = counters.get(rule.comment) ?? { packets: 0, bytes: 0 }
      counters.set(rule.comment, { packets: previous.packets + counter.packets, bytes: previous.bytes + counter.bytes })
    }
  }
  return counters
}

// The mount point of the cgroup2 hierarchy in /proc/mounts text, or null.
export function cgroup2Mount (mounts: string): string | null {
  for (const line of mounts.split('\n')) {
    const [, mountPoint, type] = line.split(' ')
    if (type === 'cgroup2' && mountPoint !== undefined) return mountPoint.replace(/\\040/g, ' ')
  }
  return null
}

// What each named process sent between two readings, per second: the median and
// max over the processes. A process whose counter did not move is named in
// `silent` (it sent nothing, or it was not in its cgroup: either way the figure
// would be wrong, and the caller says so).
export type SentRate = { seconds: number; bytesPerSecPerNode: Spread; packetsPerSecPerNode: Spread; totalBytesPerSec: number; silent: string[] }

export function sentRate (before: Map<string, PacketCount>, after: Map<string, PacketCount>, names: string[], seconds: number): SentRate {
  const delta = names.map((name) => {
    const a = before.get(name) ?? { packets: 0, bytes: 0 }
    const b = after.get(name) ?? { packets: 0, bytes: 0 }
    return { name, packets: b.packets - a.packets, bytes: b.bytes - a.bytes }
  })
  return {
    seconds,
    bytesPerSecPerNode: spread(delta.map((d) => d.bytes / seconds)),
    packetsPerSecPerNode: spread(delta.map((d) => d.packets / seconds)),
    totalBytesPerSec: delta.reduce((sum, d) => sum + d.bytes, 0) / seconds,
    silent: delta.filter((d) => d.packets <= 0).map((d) => d.name)
  }
}

// `sh` joins the cgroup, then execs the command in place: the child's pid is the
// command's, every socket it opens belongs to the cgroup from its first one.
export function inCgroup (cgroupDir: string, command: string, args: string[]): { file: string; args: string[] } {
  return { file: 'sh', args: ['-c', JOIN_CGROUP_SCRIPT, 'sh', cgroupDir, command, ...args] }
}

function nft (args: string[], input?: string): string {
  return execFileSync('nft', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 10_000 })
}

export class SentBytes {
  readonly #table: string
  readonly #root: string
  readonly #nftRoot: string
  readonly #names = new Set<string>()
  #closed = false
  readonly #onExit = (): void => this.close()
  // Ctrl-C or a kill: Node would exit without its 'exit' event; clean up first.
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    this.close()
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }

  static #made = 0

  private constructor (mount: string) {
    this.#table = `edge_agent_bench_${process.pid}_${SentBytes.#made++}`
    this.#root = join(mount, `edge-agent-bench-${process.pid}`)
    // nft resolves the path under /sys/fs/cgroup; the level counts from the hierarchy's root.
    this.#nftRoot = join(mount.replace(/^\/sys\/fs\/cgroup\/?/, ''), `edge-agent-bench-${process.pid}`)
  }

  // A counter, or why there cannot be one here.
  static open (): SentBytes | string {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'counting sent bytes per process needs root (nftables and cgroups)'
    let mount: string | null = null
    try {
      mount = cgroup2Mount(readFileSync('/proc/mounts', 'utf8'))
    } catch {}
    if (mount === null) return 'no cgroup2 hierarchy is mounted'
    if (!mount.startsWith('/sys/fs/cgroup')) return `the cgroup2 hierarchy is mounted at ${mount}, outside /sys/fs/cgroup where nft looks for it`
    const counter = new SentBytes(mount)
    try {
      mkdirSync(counter.#root, { recursive: true })
      nft(['-f', '-'], `table inet ${counter.#table} {\n chain out { type filter hook output priority 0; policy accept; }\n}\n`)
    } catch (error) {
      counter.close()
      return `cannot set up nftables counters: ${(error as Error).message.split('\n')[0]}`
    }
    process.on('exit', counter.#onExit)
    process.on('SIGINT', counter.#onSignal)
    process.on('SIGTERM', counter.#onSignal)
    return counter
  }

  // A cgroup named `name` (letters, digits, - and _) with its counter; returns its
  // directory, for inCgroup(). Adding a name twice keeps the one counter.
  add (name: string): string {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new Error(`bad cgroup name ${JSON.stringify(name)}`)
    const dir = join(this.#root, name)
    if (!this.#names.has(name)) {
      mkdirSync(dir, { recursive: true })
      nft(['add', 'rule', 'inet', this.#table, 'out', 'socket', 'cgroupv2', 'level', '2', `"${join(this.#nftRoot, name)}"`, 'counter', 'comment', `"${name}"`])
      this.#names.add(name)
    }
    return dir
  }

  // Packets and bytes sent so far, by name.
  read (): Map<string, PacketCount> {
    const counters = parseNftCounters(nft(['-j', 'list', 'table', 'inet', this.#table]))
    for (const name of this.#names) if (!counters.has(name)) counters.set(name, { packets: 0, bytes: 0 })
    return counters
  }

  // Removes the rules and the cgroups (which must be empty by then: stop the
  // processes first; a cgroup still in use is left behind).
  close (): void {
    if (this.#closed) return
    this.#closed = true
    process.off('exit', this.#onExit)
    process.off('SIGINT', this.#onSignal)
    process.off('SIGTERM', this.#onSignal)
    try {
      nft(['delete', 'table', 'inet', this.#table])
    } catch {}
    for (const name of this.#names) {
      try {
        rmdirSync(join(this.#root, name))
      } catch {}
    }
    try {
      if (existsSync(this.#root)) rmdirSync(this.#root)
    } catch {}
  }
}
