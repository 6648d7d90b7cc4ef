// Real agents as child processes on loopback, driven through their CLI and HTTP
// API: what `npm start`, the real-network tests and the benchmarks run. Every
// agent is started with --json, so its stdout is a stream of events to wait on.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../bin/edge-agent.ts', import.meta.url))

export type AgentEventLine = { event: string; atMs: number; [key: string]: unknown }

export type AgentOptions = {
  name: string
  dataDir: string
  bootstrap?: string[]
  profile?: string
  services?: string
  position?: string
  region?: string
  zone?: string
  extraArgs?: string[]
  logLevel?: string
  // The HTTP API's port (default 0: any free port). A restart keeps the old one,
  // as a box restarting with its configuration would.
  httpPort?: number
  // Run inside this network namespace (`ip netns exec`), listening on `host`
  // instead of 127.0.0.1 (sim/netns.ts).
  netns?: { ns: string; host: string }
  // Join this cgroup (v2 directory) before exec, so that every socket the agent
  // opens is counted by the benchmarks' per-cgroup nftables counters (bench/sent-bytes.ts).
  cgroup?: string
  // A command the agent runs under (its pid is then the wrapper's): strace
  // slowing its fsyncs (sim/slow-fsync.ts).
  wrap?: string[]
}

// `sh -c JOIN_CGROUP_SCRIPT sh <cgroup dir> <command> <args…>`: joins the cgroup,
// then execs the command in place (same pid), so its first socket is already in it.
export const JOIN_CGROUP_SCRIPT = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'

type Waiter = { match: (e: AgentEventLine) => boolean; resolve: (e: AgentEventLine) => void }

export class AgentProcess {
  readonly name: string
  readonly options: AgentOptions
  readonly events: AgentEventLine[] = []
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  stderr = ''
  id = ''
  addrs: string[] = []
  http = ''
  #waiters: Waiter[] = []

  private constructor (options: AgentOptions) {
    this.name = options.name
    this.options = options
    const host = options.netns?.host ?? '127.0.0.1'
    const args = [CLI, 'start', '--json', '--listen', `/ip4/${host}/tcp/0`, '--http', `${host}:${options.httpPort ?? 0}`,
      '--data-dir', options.dataDir, '--log-level', options.logLevel ?? 'warn']
    if (options.bootstrap !== undefined && options.bootstrap.length > 0) args.push('--bootstrap', options.bootstrap.join(','))
    if (options.profile !== undefined) args.push('--profile', options.profile)
    if (options.services !== undefined) args.push('--services', options.services)
    if (options.position !== undefined) args.push('--position', options.position)
    if (options.region !== undefined) args.push('--region', options.region)
    if (options.zone !== undefined) args.push('--zone', options.zone)
    // A flag in extraArgs replaces the default above (the CLI refuses a flag given twice).
    const extra = options.extraArgs ?? []
    const overridden = new Set(extra.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]))
    for (let i = 2; i < args.length; i++) {
      if (!overridden.has(args[i])) continue
      args.splice(i, args[i] === '--json' ? 1 : 2)
      i--
    }
    args.push(...extra)
    // `ip netns exec` execs the command in place: the child's pid is the agent's,
    // so signals reach it directly. So does `sh` once it has joined the cgroup.
    const command = options.netns === undefined ? [process.execPath, ...args] : ['ip', 'netns', 'exec', options.netns.ns, process.execPath, ...args]
    if (options.wrap !== undefined) command.unshift(...options.wrap)
    if (options.cgroup !== undefined) command.unshift('sh', '-c', JOIN_CGROUP_SCRIPT, 'sh', options.cgroup)
    // A wrapper (strace) gets a process group of its own, and every signal goes
    // to the group: an agent whose tracer was killed is detached, not killed,
    // and went on running after its test, which then never exited (its stdout
    // pipe stayed open).
    const wrapped = options.wrap !== undefined
    this.child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: wrapped })
    if (wrapped) groups.add(this.child)
    live.add(this.child)
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => {
      live.delete(this.child)
      if (groups.delete(this.child)) killGroup(this.child, 'SIGKILL')
      resolve(code)
    }))
    this.child.stderr?.on('data', (chunk: Buffer) => { this.stderr = (this.stderr + chunk.toString()).slice(-20_000) })
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.#onLine(line))
  }

  // Starts an agent and resolves once it printed its `started` event.
  static async start (options: AgentOptions, timeoutMs = 20_000): Promise<AgentProcess> {
    const agent = new AgentProcess(options)
    let started: AgentEventLine
    try {
      started = await Promise.race([
        agent.waitFor((e) => e.event === 'started', timeoutMs),
        agent.exited.then((code) => { throw new Error(`agent ${options.name} exited (${code}) before starting:\n${agent.stderr}`) })
      ])
    } catch (error) {
      // Nobody else holds it yet: a slow starter must not outlive its caller.
      agent.signal('SIGKILL')
      throw error
    }
    agent.id = String(started.id)
    agent.addrs = started.addrs as string[]
    agent.http = String(started.http)
    return agent
  }

  get pid (): number {
    return this.child.pid ?? -1
  }

  get running (): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  #onLine (line: string): void {
    let event: AgentEventLine
    try {
      event = JSON.parse(line) as AgentEventLine
    } catch {
      return
    }
    this.events.push(event)
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.match(event)) return true
      w.resolve(event)
      return false
    })
  }

  // Resolves with the first event (already seen or future) that matches.
  waitFor (match: (e: AgentEventLine) => boolean, timeoutMs: number): Promise<AgentEventLine> {
    const seen = this.events.find(match)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter)
        reject(new Error(`agent ${this.name}: no matching event within ${timeoutMs} ms`))
      }, timeoutMs)
      const waiter: Waiter = { match, resolve: (e) => { clearTimeout(timer); resolve(e) } }
      this.#waiters.push(waiter)
    })
  }

  // The first time this agent saw `id` reach `status`, or null.
  statusEvent (id: string, status: string, sinceMs = 0): AgentEventLine | null {
    return this.events.find((e) => e.event === 'member' && e.id === id && e.status === status && e.atMs >= sinceMs) ?? null
  }

  signal (signal: NodeJS.Signals): void {
    if (!this.running) return
    if (groups.has(this.child)) killGroup(this.child, signal)
    else this.child.kill(signal)
  }

  // Graceful stop (SIGTERM: the agent announces its leave), then waits for exit.
  async stop (timeoutMs = 10_000): Promise<number | null> {
    this.signal('SIGCONT')
    this.signal('SIGTERM')
    const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs)
    const code = await this.exited
    clearTimeout(timer)
    return code
  }

  async members (timeoutMs = 5_000): Promise<Array<{ id: string; status: string; incarnation: number }>> {
    const response = await fetch(`${this.http}/v1/members`, { signal: AbortSignal.timeout(timeoutMs) })
    const body = await response.json() as { members: Array<{ id: string; status: string; incarnation: number }> }
    return body.members
  }
}

export type CliResult = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

// Runs `edge-agent <args>` to its end: a peek, or a start that should refuse. A
// command still running after `timeoutMs` is killed, which `signal` then shows.
// Kills every agent (a frozen one too) and waits until each has exited: the
// end of a test or a run, whatever state it left them in.
export async function killAll (agents: AgentProcess[]): Promise<void> {
  await Promise.all(agents.map(async (a) => {
    a.signal('SIGCONT')
    a.signal('SIGKILL')
    await a.exited
  }))
}

export function runCli (args: string[], timeoutMs = 20_000): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  return new Promise((resolve) => child.on('close', (code, signal) => {
    clearTimeout(timer)
    live.delete(child)
    resolve({ code, signal, stdout, stderr })
  }))
}

// Children that must not outlive this process, whatever happens to it.
const live = new Set<ChildProcess>()
// Those started in a process group of their own (a wrapper and the agent under it).
const groups = new Set<ChildProcess>()

function killGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal)
  } catch {
    // The group is gone.
  }
}

process.on('exit', () => {
  for (const child of groups) {
    killGroup(child, 'SIGCONT')
    killGroup(child, 'SIGKILL')
  }
  for (const child of live) {
    try {
      child.kill('SIGCONT')
      child.kill('SIGKILL')
    } catch {}
  }
})

export type LocalClusterOptions = {
  nodes: number
  profile?: string
  services?: string
  // Adds per-agent options (position, region…) by index.
  configure?: (index: number) => Partial<AgentOptions>
  logLevel?: string
  // How long each agent may take to start (default 20 s; 20 agents starting at
  // once on a busy 2-core box need more).
  startTimeoutMs?: number
}

// A cluster of real agents: the first starts alone, the others bootstrap from it.
export class LocalCluster {
  readonly baseDir: string
  readonly agents: AgentProcess[] = []
  readonly options: LocalClusterOptions

  private constructor (options: LocalClusterOptions) {
    this.options = options
    this.baseDir = mkdtempSync(join(tmpdir(), 'edge-agent-cluster-'))
  }

  static async start (options: LocalClusterOptions): Promise<LocalCluster> {
    const cluster = new LocalCluster(options)
    try {
      const first = await AgentProcess.start(cluster.#agentOptions(0, []), options.startTimeoutMs)
      cluster.agents.push(first)
      // Settled, not all: the agents that did start must be destroyed with the rest.
      const rest = await Promise.allSettled(Array.from({ length: options.nodes - 1 }, (_, i) => AgentProcess.start(cluster.#agentOptions(i + 1, first.addrs), options.startTimeoutMs)))
      for (const result of rest) if (result.status === 'fulfilled') cluster.agents.push(result.value)
      const failed = rest.find((result) => result.status === 'rejected')
      if (failed !== undefined) throw failed.reason
    } catch (error) {
      await cluster.destroy()
      throw error
    }
    return cluster
  }

  #agentOptions (index: number, bootstrap: string[]): AgentOptions {
    return {
      name: `agent${index}`,
      dataDir: join(this.baseDir, `agent${index}`),
      bootstrap,
      profile: this.options.profile,
      services: this.options.services,
      logLevel: this.options.logLevel,
      ...this.options.configure?.(index)
    }
  }

  running (): AgentProcess[] {
    return this.agents.filter((a) => a.running)
  }

  // Waits until every agent in `among` sees exactly `among` alive.
  async waitConverged (timeoutMs: number, among: AgentProcess[] = this.running()): Promise<void> {
    const deadline = Date.now() + timeoutMs
    const ids = new Set(among.map((a) => a.id))
    for (;;) {
      const views = await Promise.all(among.map(async (a) => await a.members().catch(() => [])))
      const ok = views.every((members) => {
        const alive = new Set(members.filter((m) => m.status === 'alive').map((m) => m.id))
        return alive.size === ids.size && [...ids].every((id) => alive.has(id))
      })
      if (ok) return
      if (Date.now() > deadline) throw new Error(`agents did not converge within ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  // Restarts agent `index` with its data directory (same identity).
  async restart (index: number): Promise<AgentProcess> {
    const old = this.agents[index]
    if (old.running) throw new Error(`${old.name} is still running`)
    const bootstrap = this.running().flatMap((a) => a.addrs).slice(0, 3)
    const agent = await AgentProcess.start({ ...old.options, bootstrap, httpPort: Number(new URL(old.http).port) }, this.options.startTimeoutMs)
    this.agents[index] = agent
    return agent
  }

  async destroy (): Promise<void> {
    await killAll(this.agents)
    rmSync(this.baseDir, { recursive: true, force: true })
  }
}
