// Package distribution in virtual time: the same Distribution core the agent
// runs (agent/deploy/distribution.ts), one per simulated node, over a network
// with latency, a serial uplink per node (so a push to 1,000 targets takes the
// time its bytes need), crashes whose detection lags, and forged or tampered
// packages. The member table is the simulator's: every up node's record with
// the services it runs (membership itself is simulated in sim/cluster.ts; here
// records are assumed to spread in `recordDelayMs`).

import { SeededRandom } from '../agent/core/random.ts'
import { Distribution, TABLE_SETTLE_MS } from '../agent/deploy/distribution.ts'
import type { DeployConfig, DeployEffect, DeployInput, PackageRef } from '../agent/deploy/distribution.ts'
import type { MemberDirectory } from '../agent/sessions/types.ts'
import type { NodeRecord } from '../protocol/messages.ts'
import { parsePolicy, resolveTargets } from '../agent/deploy/policy.ts'
import { Scheduler } from './scheduler.ts'

// What the host's checks would say of a package (agent/runtime/package.ts).
export type SimPackage = { ref: PackageRef; bytes: number; verdict: 'ok' | 'tampered' | 'forged' }

export type SimNodeSpec = { id: string; region?: string; zone?: string; load?: number }

export type DeploySimOptions = {
  seed: number
  nodes: SimNodeSpec[]
  config: DeployConfig
  // One-way latency, ms.
  latencyMs?: number
  // Uplink bandwidth per node, bytes per ms (12,500 = 100 Mbit/s).
  uplinkBytesPerMs?: number
  // A request to a crashed node fails after this long (dial timeout), ms.
  dialTimeoutMs?: number
  // How long a record change (a node now runs a package) takes to reach every table, ms.
  recordDelayMs?: number
  // Each node's core steps 1 s after a change reaches its table (a node
  // listed or dropped, a record changed), as the agent's host does
  // (DeployHost.tableChanged); otherwise only at its own wakes (its pulls).
  stepOnTableChange?: boolean
}

type SimNode = {
  spec: SimNodeSpec
  core: Distribution
  up: boolean
  // Up, as far as the others' tables know (a crash is detected later).
  listed: boolean
  running: Map<string, PackageRef>
  advertised: Map<string, string>
  // Services whose session copies the node holds (hold()).
  held: Set<string>
  stored: Set<string>
  uplinkFreeAtMs: number
  wakeAtMs: number
  // A step after a table change is scheduled.
  tableStepPending: boolean
}

// The targets of `policy` for package `name` on a table of every spec, alive at
// its spec's load: what the agents resolve once every table is whole.
export function specTargets (policy: string, specs: SimNodeSpec[], name: string, loadThreshold: number): string[] {
  const parsed = parsePolicy(policy)
  if (!parsed.ok) throw new Error(parsed.reason)
  const table: NodeRecord[] = specs.map((s) => ({
    id: s.id, addrs: [], ip: '', http: '', services: [], load: { score: s.load ?? 0, sessions: 0, elu: 0, cpu: 0 },
    position: null, region: s.region ?? '', zone: s.zone ?? '', incarnation: 1, seq: 1, status: 'alive'
  }))
  return resolveTargets(parsed.policy, table, name, loadThreshold)
}

export class DeployCluster {
  readonly scheduler = new Scheduler()
  readonly refused: Array<{ node: string; verdict: string; via: string }> = []
  // A service stopped on a node that holds copies of its sessions (never allowed).
  readonly violations: string[] = []
  readonly #options: Required<DeploySimOptions>
  readonly #nodes = new Map<string, SimNode>()
  readonly #packages = new Map<string, SimPackage>()
  readonly #random: SeededRandom
  // When each node started running each hash (virtual ms), for figures.
  readonly runningSince = new Map<string, Map<string, number>>()

  constructor (options: DeploySimOptions) {
    this.#options = { latencyMs: 5, uplinkBytesPerMs: 12_500, dialTimeoutMs: 2_000, recordDelayMs: 300, stepOnTableChange: true, ...options }
    this.#random = new SeededRandom(options.seed)
    for (const spec of options.nodes) this.#add(spec, [])
  }

  get nowMs (): number {
    return this.scheduler.nowMs
  }

  ids (): string[] {
    return [...this.#nodes.keys()]
  }

  // Package hashes a node runs / name@version it advertises.
  running (id: string): string[] {
    return [...this.#nodes.get(id)?.running.keys() ?? []].sort()
  }

  advertises (id: string, name: string): string | null {
    return this.#nodes.get(id)?.advertised.get(name) ?? null
  }

  // `edge-agent deploy` handing a package to `entry`.
  deploy (entry: string, pkg: SimPackage): boolean {
    this.#packages.set(pkg.ref.hash, pkg)
    return this.#accept(entry, pkg.ref.hash, 'deploy')
  }

  // A node asks for a service it lacks (a request by URL).
  need (id: string, name: string): void {
    this.#step(id, { kind: 'need', nowMs: this.nowMs, name })
  }

  // The services whose session copies a node holds (its host's usage report).
  hold (id: string, names: string[]): void {
    const node = this.#nodes.get(id)
    if (node === undefined || !node.up) return
    node.held = new Set(names)
    this.#step(id, { kind: 'usage', nowMs: this.nowMs, held: names })
  }

  // Whether a node holds copies of sessions of `name` (hold()).
  holds (id: string, name: string): boolean {
    return this.#nodes.get(id)?.held.has(name) === true
  }

  // Whether a node is up (not crashed).
  isUp (id: string): boolean {
    return this.#nodes.get(id)?.up === true
  }

  // A node's load score changes (its record carries it at once).
  setLoad (id: string, load: number): void {
    const node = this.#nodes.get(id)
    if (node === undefined) return
    node.spec = { ...node.spec, load }
    this.#tableChanged(0)
  }

  // A node pushes a package to another directly (a hostile node, say).
  pushFrom (from: string, to: string, pkg: SimPackage): void {
    this.#packages.set(pkg.ref.hash, pkg)
    this.#send(from, pkg.bytes, () => { this.#accept(to, pkg.ref.hash, 'push') })
  }

  // Stops a node; the others' tables notice after `detectAfterMs`.
  crash (id: string, detectAfterMs = 0): void {
    const node = this.#nodes.get(id)
    if (node === undefined) return
    node.up = false
    this.scheduler.after(detectAfterMs, () => {
      if (node.up) return
      node.listed = false
      this.#tableChanged(0)
    })
  }

  // Restarts a node with what it had stored (the data dir survives).
  restart (id: string): void {
    const old = this.#nodes.get(id)
    if (old === undefined || old.up) return
    const stored = [...old.stored].map((hash) => ({ ref: this.#packages.get(hash)!.ref, running: old.running.has(hash) }))
    this.#add(old.spec, stored)
  }

  #add (spec: SimNodeSpec, stored: Array<{ ref: PackageRef; running: boolean }>): void {
    const id = spec.id
    const core = new Distribution({ directory: this.#directory(id), config: this.#options.config, random: new SeededRandom(this.#random.nextInt(2 ** 31)), nowMs: this.nowMs, stored })
    const node: SimNode = {
      spec, core, up: true, listed: true, running: new Map(), advertised: new Map(), held: new Set(), stored: new Set(stored.map((s) => s.ref.hash)), uplinkFreeAtMs: 0, wakeAtMs: Infinity, tableStepPending: false
    }
    for (const ref of core.running()) this.#run(node, ref)
    this.#nodes.set(id, node)
    this.#wake(node)
    this.#tableChanged(this.#options.recordDelayMs)
  }

  // A change reaches every table after `afterMs` (its own node's at once: the
  // agent's host steps on its own load crossing the threshold too); each node
  // steps 1 s after (DeployHost.tableChanged).
  #tableChanged (afterMs: number): void {
    if (!this.#options.stepOnTableChange) return
    this.scheduler.after(afterMs, () => {
      for (const node of this.#nodes.values()) {
        if (!node.up || node.tableStepPending) continue
        node.tableStepPending = true
        const core = node.core
        this.scheduler.after(TABLE_SETTLE_MS, () => {
          node.tableStepPending = false
          if (node.core === core) this.#step(node.spec.id, { kind: 'tick', nowMs: this.nowMs })
        })
      }
    })
  }

  #record (node: SimNode): NodeRecord {
    const s = node.spec
    return {
      id: s.id, addrs: [], ip: '10.0.0.1', http: `http://${s.id}`,
      services: [...node.advertised].map(([name, version]) => ({ name, version, capacity: 100 })),
      load: { score: s.load ?? 0, sessions: 0, elu: 0, cpu: 0 }, position: null,
      region: s.region ?? '', zone: s.zone ?? '', incarnation: 1, seq: 1, status: 'alive'
    }
  }

  #directory (self: string): MemberDirectory {
    return {
      self,
      status: (id) => this.#nodes.get(id)?.listed === true ? 'alive' : null,
      record: (id) => { const n = this.#nodes.get(id); return n === undefined ? null : this.#record(n) },
      alive: () => [...this.#nodes.values()].filter((n) => n.listed || n.spec.id === self).map((n) => this.#record(n)),
      joining: () => false
    }
  }

  #step (id: string, input: DeployInput): void {
    const node = this.#nodes.get(id)
    if (node === undefined || !node.up) return
    for (const effect of node.core.step(input)) this.#perform(node, effect)
    this.#wake(node)
  }

  #wake (node: SimNode): void {
    const at = node.core.nextWakeMs()
    if (at >= node.wakeAtMs) return
    node.wakeAtMs = at
    const core = node.core
    this.scheduler.at(at, () => {
      if (node.core !== core || node.wakeAtMs !== at) return
      node.wakeAtMs = Infinity
      this.#step(node.spec.id, { kind: 'tick', nowMs: this.nowMs })
    })
  }

  // Transfers `bytes` on `from`'s uplink, then runs `deliver` one latency later.
  #send (from: string, bytes: number, deliver: () => void): void {
    const node = this.#nodes.get(from)!
    const start = Math.max(this.nowMs, node.uplinkFreeAtMs)
    node.uplinkFreeAtMs = start + bytes / this.#options.uplinkBytesPerMs
    this.scheduler.at(node.uplinkFreeAtMs + this.#options.latencyMs, deliver)
  }

  #perform (node: SimNode, effect: DeployEffect): void {
    const self = node.spec.id
    switch (effect.kind) {
      case 'push': {
        const pkg = this.#packages.get(effect.hash)!
        this.#send(self, pkg.bytes, () => { this.#accept(effect.to, effect.hash, 'push') })
        return
      }
      case 'fetch': return this.#fetch(self, effect.from, effect.hash)
      case 'pull': return this.#pull(self, effect.from)
      case 'run': return this.#run(node, effect.ref)
      case 'drain': case 'undrain': return this.#advertise(node, effect.name)
      case 'retire':
        if (node.held.has(effect.name)) this.violations.push(`${self} stopped ${effect.name} at ${this.nowMs} ms while holding copies of its sessions`)
        for (const hash of effect.hashes) node.running.delete(hash)
        return this.#advertise(node, effect.name)
      case 'event': return
    }
  }

  #fetch (self: string, from: string, hash: string): void {
    const holder = this.#nodes.get(from)
    const fail = (reason: string, afterMs: number): void => {
      this.scheduler.after(afterMs, () => { this.#step(self, { kind: 'fetch-failed', nowMs: this.nowMs, from, hash, reason }) })
    }
    if (holder === undefined || !holder.up) return fail('unreachable', this.#options.dialTimeoutMs)
    if (!holder.stored.has(hash)) return fail('not held', 2 * this.#options.latencyMs)
    const pkg = this.#packages.get(hash)!
    this.scheduler.after(this.#options.latencyMs, () => { this.#send(from, pkg.bytes, () => { this.#accept(self, hash, 'fetch') }) })
  }

  #pull (self: string, from: string): void {
    const peer = this.#nodes.get(from)
    if (peer === undefined || !peer.up) return
    this.scheduler.after(2 * this.#options.latencyMs, () => {
      if (!peer.up) return
      // The host checks every announcement of an index; forged ones are dropped.
      const entries = peer.core.index().filter((e) => this.#packages.get(e.ref.hash)?.verdict !== 'forged')
      if (entries.length > 0) this.#step(self, { kind: 'index', nowMs: this.nowMs, from, entries })
    })
  }

  #accept (id: string, hash: string, via: 'deploy' | 'push' | 'fetch'): boolean {
    const node = this.#nodes.get(id)
    const pkg = this.#packages.get(hash)
    if (node === undefined || !node.up || pkg === undefined) return false
    if (pkg.verdict !== 'ok') {
      this.refused.push({ node: id, verdict: pkg.verdict, via })
      return false
    }
    node.stored.add(hash)
    this.#step(id, { kind: 'stored', nowMs: this.nowMs, ref: pkg.ref, via })
    return true
  }

  #run (node: SimNode, ref: PackageRef): void {
    node.running.set(ref.hash, ref)
    const since = this.runningSince.get(ref.hash) ?? new Map<string, number>()
    if (!since.has(node.spec.id)) since.set(node.spec.id, this.nowMs)
    this.runningSince.set(ref.hash, since)
    this.#advertise(node, ref.name)
  }

  // The newest running version of `name`, unless drained, is advertised once
  // the record has spread.
  #advertise (node: SimNode, name: string): void {
    this.scheduler.after(this.#options.recordDelayMs, () => {
      const newest = [...node.running.values()].filter((r) => r.name === name).sort((a, b) => b.issuedAtMs - a.issuedAtMs)[0]
      const before = node.advertised.get(name)
      if (newest !== undefined && !node.core.draining(name)) node.advertised.set(name, newest.version)
      else node.advertised.delete(name)
      if (node.advertised.get(name) !== before) this.#tableChanged(0)
    })
  }
}
