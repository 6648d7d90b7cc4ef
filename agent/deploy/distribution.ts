// Package distribution (M3.2, M3.3, M3.5) as a deterministic core: inputs (ticks,
// stored packages, pulled indexes, failures) in, effects (push, fetch, pull, run)
// out. The host checks signatures and hashes before anything reaches this core;
// what arrives here is a trusted announcement, identified by its archive hash.
//
// How a package spreads:
// - The agent a deploy is handed to stores it, resolves the policy on its table
//   and pushes the bundle to every target (effect 'push').
// - Every agent pulls one peer's index (the newest announcement per package name
//   it knows, and whether it holds it) every `pullIntervalMs`, so an agent that
//   missed the push (down, partitioned, joined later) learns of the deploy
//   within a few rounds, decides from its own table whether it is a target, and
//   fetches the bundle (effect 'fetch') from its region's hub first, then any
//   holder (fetchOrder).
// - An agent asked for a service it lacks (a request by URL, a session open)
//   fetches it the same way ('need'), as if it were a target.
// - A stored package runs (effect 'run') unless this agent only received it as
//   the deploy's entry point and is no target; the host then advertises the
//   newest running version of each name in the node record.
// - A package this agent runs but no longer wants is retired, in two steps:
//   a name neither targeted here (by its newest announcement's policy, on this
//   agent's table) nor asked for here (a request by URL, a session open) for
//   `retireAfterMs` is drained (effect 'drain': the host stops advertising it,
//   so no new group or request is placed here, but its workers keep serving the
//   session copies this agent holds); once no copy of its sessions is held here
//   (input 'usage') and the drain has lasted RETIRE_DRAIN_MS, it stops (effect
//   'retire'). A target again, or asked for again, it is advertised again
//   ('undrain'), or run again from the stored bundle. Without this, churn or
//   load changes left a `replicas:<n>` or `auto` package running on every agent
//   that was ever a target.

import type { PeerKey, Random } from '../core/io.ts'
import type { NodeRecord, Position } from '../../protocol/messages.ts'
import type { MemberDirectory } from '../sessions/types.ts'
import { fetchOrder, isTarget, parsePolicy, resolveTargets } from './policy.ts'

export type PackageRef = { name: string; version: string; hash: string; policy: string; issuedAtMs: number }
export type IndexEntry = { ref: PackageRef; held: boolean }

export type DeployInput =
  | { kind: 'tick'; nowMs: number }
  // A verified bundle is now stored here; `via` says how it came.
  | { kind: 'stored'; nowMs: number; ref: PackageRef; via: 'deploy' | 'push' | 'fetch' }
  // A peer's index (the host checked every announcement in it).
  | { kind: 'index'; nowMs: number; from: PeerKey; entries: IndexEntry[] }
  | { kind: 'fetch-failed'; nowMs: number; from: PeerKey; hash: string; reason: string }
  // Something here needs service `name` (a request by URL, a session open).
  | { kind: 'need'; nowMs: number; name: string }
  // The services whose sessions this agent holds copies of (it must keep
  // running those), sent whenever the set changes.
  | { kind: 'usage'; nowMs: number; held: string[] }

export type DeployEffect =
  | { kind: 'push'; to: PeerKey; hash: string }
  | { kind: 'fetch'; from: PeerKey; hash: string }
  | { kind: 'pull'; from: PeerKey }
  | { kind: 'run'; ref: PackageRef }
  // Stop advertising service `name` / advertise it again (its workers run on).
  | { kind: 'drain'; name: string }
  | { kind: 'undrain'; name: string }
  // Stop every running version of `name` (their bundles stay stored).
  | { kind: 'retire'; name: string; hashes: string[] }
  | { kind: 'event'; event: DeployEvent }

export type DeployEvent =
  | { type: 'announced'; ref: PackageRef; from: PeerKey | null }
  | { type: 'targets'; ref: PackageRef; targets: string[] }
  | { type: 'fetch-exhausted'; ref: PackageRef; tried: string[] }
  | { type: 'draining'; name: string; idleMs: number; held: boolean }
  | { type: 'undrained'; name: string; reason: 'targeted' | 'asked' }
  | { type: 'retired'; name: string; versions: string[] }

export type DeployConfig = {
  // How often an agent pulls one peer's index (M3.5), ms.
  pullIntervalMs: number
  // A fetch with no answer in this long is given up and the next holder tried, ms.
  fetchTimeoutMs: number
  // Load score at or above which an agent is "overloaded" for auto, replicas and
  // hub choice (the sessions core's loadThreshold).
  loadThreshold: number
  // A running package neither targeted here nor asked for here in this long is
  // drained, then retired (see above), ms; 0 keeps every package running.
  retireAfterMs: number
}

export const DEFAULT_DEPLOY_CONFIG: DeployConfig = { pullIntervalMs: 2_000, fetchTimeoutMs: 10_000, loadThreshold: 0.9, retireAfterMs: 300_000 }

// How long a drained name keeps running at least, ms: a record that stopped
// advertising it takes a moment to reach every table, and a group placed here
// meanwhile must find it running. Longer than membership's spread on any
// profile's links.
export const RETIRE_DRAIN_MS = 10_000
// How often, at most, whether each running name is still targeted is looked at
// again while no other input comes, ms.
export const RETIRE_CHECK_MS = 5_000
// A change in the member table (a member joined, died, left, or changed its
// record) makes the host step the core (a tick) this long after the first
// change of a burst, ms: an agent that just became a target (a dead target's
// stand-in under replicas:<n>, a new hub, an agent whose load fell under the
// threshold) fetches the package within about a second, not at its next pull
// (256 s apart in a quiet cluster).
export const TABLE_SETTLE_MS = 1_000

// While pulls bring nothing new, each waits PULL_BACKOFF_FACTOR times as long as
// the last, up to PULL_BACKOFF_MAX pullIntervalMs (256 s by default): a quiet
// cluster does not pay an index exchange per agent every few seconds. Each pull
// is a new stream, about ten packets and 1 kB with TCP's: doubling up to 32 s,
// as before, cost each agent ~30 B/s at rest and ~90 B/s in its first minute,
// a third of serf's whole budget. Anything new (a deploy, a push, an index with
// a newer announcement) brings the pace back to pullIntervalMs; deploys push to
// their targets, so the pull only catches up what a push missed.
export const PULL_BACKOFF_FACTOR = 4
export const PULL_BACKOFF_MAX = 128

type Fetching = { ref: PackageRef; from: PeerKey; untilMs: number; tried: Set<PeerKey> }

// Newer: later issuedAtMs, then larger hash (any total order will do for ties).
export function newer (a: PackageRef, b: PackageRef): boolean {
  return a.issuedAtMs !== b.issuedAtMs ? a.issuedAtMs > b.issuedAtMs : a.hash > b.hash
}

export class Distribution {
  readonly #directory: MemberDirectory
  readonly #config: DeployConfig
  readonly #random: Random
  // The newest announcement known per package name.
  readonly #latest = new Map<string, PackageRef>()
  readonly #stored = new Map<string, PackageRef>()
  readonly #running = new Set<string>()
  readonly #fetching = new Map<string, Fetching>()
  // Peers whose index said they hold a hash.
  readonly #holders = new Map<string, Set<PeerKey>>()
  // Names something here asked for (a request by URL) and does not yet run.
  readonly #needed = new Set<string>()
  // Per running name: when it was last targeted here or asked for here.
  readonly #wantedAtMs = new Map<string, number>()
  // Names drained (no longer advertised) and since when.
  readonly #draining = new Map<string, number>()
  // Services whose session copies this agent holds (input 'usage').
  #held = new Set<string>()
  #now: number
  #nextPullMs: number
  #pullGapMs: number

  constructor (options: { directory: MemberDirectory; config: DeployConfig; random: Random; nowMs: number; stored?: Array<{ ref: PackageRef; running: boolean }> }) {
    this.#directory = options.directory
    this.#config = options.config
    this.#random = options.random
    this.#now = options.nowMs
    this.#nextPullMs = options.nowMs + options.random.nextInt(options.config.pullIntervalMs)
    this.#pullGapMs = options.config.pullIntervalMs
    for (const { ref, running } of options.stored ?? []) {
      this.#stored.set(ref.hash, ref)
      if (running) {
        this.#running.add(ref.hash)
        this.#wantedAtMs.set(ref.name, options.nowMs)
      }
      this.#learn(ref)
    }
  }

  get self (): PeerKey {
    return this.#directory.self
  }

  // The index a peer's pull gets: the newest announcement per name.
  index (): IndexEntry[] {
    return [...this.#latest.values()].map((ref) => ({ ref, held: this.#stored.has(ref.hash) }))
  }

  stored (hash: string): PackageRef | null {
    return this.#stored.get(hash) ?? null
  }

  latest (name: string): PackageRef | null {
    return this.#latest.get(name) ?? null
  }

  // Refs running here; at start, the host runs them again.
  running (): PackageRef[] {
    return [...this.#running].map((h) => this.#stored.get(h)).filter((r): r is PackageRef => r !== undefined)
  }

  // Names drained here: running for the copies held, not advertised.
  draining (name: string): boolean {
    return this.#draining.has(name)
  }

  nextWakeMs (): number {
    let wake = this.#nextPullMs
    for (const f of this.#fetching.values()) wake = Math.min(wake, f.untilMs)
    if (this.#config.retireAfterMs > 0 && this.#running.size > 0) wake = Math.min(wake, this.#now + RETIRE_CHECK_MS)
    return wake
  }

  step (input: DeployInput): DeployEffect[] {
    this.#now = Math.max(this.#now, input.nowMs)
    const out: DeployEffect[] = []
    switch (input.kind) {
      case 'tick': this.#tick(out); break
      case 'stored': this.#onStored(input.ref, input.via, out); break
      case 'index': this.#onIndex(input.from, input.entries, out); break
      case 'fetch-failed': this.#onFetchFailed(input.hash, input.from, out); break
      case 'need': this.#onNeed(input.name, out); break
      case 'usage': this.#held = new Set(input.held); break
    }
    this.#reconcile(out)
    this.#retire(out)
    return out
  }

  #tick (out: DeployEffect[]): void {
    for (const [hash, f] of this.#fetching) {
      if (this.#now >= f.untilMs) {
        this.#fetching.delete(hash)
        this.#startFetch(f.ref, f.tried, out)
      }
    }
    if (this.#now < this.#nextPullMs) return
    this.#nextPullMs = this.#now + this.#pullGapMs
    this.#pullGapMs = Math.min(this.#pullGapMs * PULL_BACKOFF_FACTOR, this.#config.pullIntervalMs * PULL_BACKOFF_MAX)
    const peers = this.#directory.alive().filter((r) => r.id !== this.self)
    if (peers.length > 0) out.push({ kind: 'pull', from: peers[this.#random.nextInt(peers.length)].id })
  }

  // The newest announcement per name wins, the same files included: deployed
  // again under another policy, a later announcement of the same hash is news
  // (it was ignored, so agents that learnt the package by pull kept the first
  // policy).
  #learn (ref: PackageRef): boolean {
    const known = this.#latest.get(ref.name)
    if (known !== undefined && !newer(ref, known)) return false
    this.#latest.set(ref.name, ref)
    return true
  }

  #onStored (ref: PackageRef, via: 'deploy' | 'push' | 'fetch', out: DeployEffect[]): void {
    const kept = this.#stored.get(ref.hash)
    if (kept === undefined || newer(ref, kept)) this.#stored.set(ref.hash, ref)
    this.#fetching.delete(ref.hash)
    this.#brisk()
    if (this.#learn(ref)) out.push({ kind: 'event', event: { type: 'announced', ref, from: via === 'deploy' ? null : this.self } })
    // A pushed or fetched package runs; the entry point runs it only as a target.
    if (via !== 'deploy' || this.#targeted(ref)) this.#run(ref, out)
    if (via !== 'deploy') return
    const parsed = parsePolicy(ref.policy)
    if (!parsed.ok) return
    const targets = resolveTargets(parsed.policy, this.#directory.alive(), ref.name, this.#config.loadThreshold)
    out.push({ kind: 'event', event: { type: 'targets', ref, targets } })
    for (const to of targets) if (to !== this.self) out.push({ kind: 'push', to, hash: ref.hash })
  }

  #onIndex (from: PeerKey, entries: IndexEntry[], out: DeployEffect[]): void {
    for (const { ref, held } of entries) {
      if (held) {
        const set = this.#holders.get(ref.hash) ?? new Set()
        set.add(from)
        this.#holders.set(ref.hash, set)
      }
      if (this.#learn(ref)) {
        this.#brisk()
        out.push({ kind: 'event', event: { type: 'announced', ref, from } })
      }
    }
  }

  // Something new: pull at the base pace again (see PULL_BACKOFF_MAX).
  #brisk (): void {
    this.#pullGapMs = this.#config.pullIntervalMs
    this.#nextPullMs = Math.min(this.#nextPullMs, this.#now + this.#config.pullIntervalMs)
  }

  #onNeed (name: string, out: DeployEffect[]): void {
    if (this.#runsName(name)) {
      this.#want(name, 'asked', out)
      return
    }
    this.#needed.add(name)
    if (this.#latest.has(name)) return
    // Not even announced here yet: ask the nearest holder for its index.
    const order = fetchOrder(this.#offering(name, null), this.#here(), this.#config.loadThreshold)
    if (order.length > 0) out.push({ kind: 'pull', from: order[0] })
  }

  #onFetchFailed (hash: string, from: PeerKey, out: DeployEffect[]): void {
    const f = this.#fetching.get(hash)
    if (f === undefined || f.from !== from) return
    this.#fetching.delete(hash)
    this.#startFetch(f.ref, f.tried, out)
  }

  // Whatever this agent should run and does not hold, it fetches.
  #reconcile (out: DeployEffect[]): void {
    for (const ref of this.#latest.values()) {
      if (this.#stored.has(ref.hash)) {
        if (!this.#running.has(ref.hash) && (this.#needed.has(ref.name) || this.#runsName(ref.name) || this.#targeted(ref))) this.#run(ref, out)
        continue
      }
      if (this.#fetching.has(ref.hash)) continue
      // An agent that runs a service keeps it current: its sessions' groups
      // move to the newest version only once every member holds it.
      if (this.#needed.has(ref.name) || this.#runsName(ref.name) || this.#targeted(ref)) this.#startFetch(ref, new Set(), out)
    }
  }

  #startFetch (ref: PackageRef, tried: Set<PeerKey>, out: DeployEffect[]): void {
    const holders = this.#offering(ref.name, ref.version)
    const fromIndex = [...this.#holders.get(ref.hash) ?? []]
    const alive = new Set(this.#directory.alive().map((r) => r.id))
    const order = [...fetchOrder(holders, this.#here(), this.#config.loadThreshold), ...fromIndex.sort()]
      .filter((id, i, all) => id !== this.self && alive.has(id) && !tried.has(id) && all.indexOf(id) === i)
    if (order.length === 0) {
      // Everyone tried: wait for the next pull round to learn of other holders.
      if (tried.size > 0) out.push({ kind: 'event', event: { type: 'fetch-exhausted', ref, tried: [...tried].sort() } })
      this.#fetching.set(ref.hash, { ref, from: '', untilMs: this.#now + this.#config.pullIntervalMs, tried: new Set() })
      return
    }
    tried.add(order[0])
    this.#fetching.set(ref.hash, { ref, from: order[0], untilMs: this.#now + this.#config.fetchTimeoutMs, tried })
    out.push({ kind: 'fetch', from: order[0], hash: ref.hash })
  }

  #run (ref: PackageRef, out: DeployEffect[]): void {
    if (this.#running.has(ref.hash)) return
    this.#running.add(ref.hash)
    this.#needed.delete(ref.name)
    out.push({ kind: 'run', ref })
    // Its idle time starts now, unless the name already ran (a newer version
    // fetched for the copies of a drained name leaves it drained).
    if (!this.#wantedAtMs.has(ref.name)) this.#wantedAtMs.set(ref.name, this.#now)
  }

  // `name` is wanted here now: its idle time starts again, and a drained name
  // is advertised again.
  #want (name: string, reason: 'targeted' | 'asked', out: DeployEffect[]): void {
    this.#wantedAtMs.set(name, this.#now)
    if (!this.#draining.delete(name)) return
    out.push({ kind: 'undrain', name })
    out.push({ kind: 'event', event: { type: 'undrained', name, reason } })
  }

  // Drains the running names nobody here wanted for retireAfterMs, and stops
  // the drained ones once no session copy here needs them.
  #retire (out: DeployEffect[]): void {
    if (this.#config.retireAfterMs === 0) return
    const names = new Map<string, string[]>()
    for (const hash of this.#running) {
      const ref = this.#stored.get(hash)
      if (ref !== undefined) names.set(ref.name, [...names.get(ref.name) ?? [], hash])
    }
    for (const [name, hashes] of names) {
      const latest = this.#latest.get(name)
      if (latest !== undefined && this.#targeted(latest)) {
        this.#want(name, 'targeted', out)
        continue
      }
      const wantedAt = this.#wantedAtMs.get(name) ?? this.#now
      const drainedAt = this.#draining.get(name)
      if (drainedAt === undefined) {
        if (this.#now - wantedAt < this.#config.retireAfterMs) continue
        this.#draining.set(name, this.#now)
        out.push({ kind: 'drain', name })
        out.push({ kind: 'event', event: { type: 'draining', name, idleMs: this.#now - wantedAt, held: this.#held.has(name) } })
        continue
      }
      if (this.#held.has(name) || this.#now - drainedAt < RETIRE_DRAIN_MS) continue
      for (const hash of hashes) this.#running.delete(hash)
      this.#draining.delete(name)
      this.#wantedAtMs.delete(name)
      const versions = hashes.map((h) => this.#stored.get(h)?.version ?? h).sort()
      out.push({ kind: 'retire', name, hashes })
      out.push({ kind: 'event', event: { type: 'retired', name, versions } })
    }
  }

  #runsName (name: string): boolean {
    for (const hash of this.#running) if (this.#stored.get(hash)?.name === name) return true
    return false
  }

  #targeted (ref: PackageRef): boolean {
    const parsed = parsePolicy(ref.policy)
    const self = this.#directory.record(this.self)
    if (!parsed.ok || self === null) return false
    return isTarget(parsed.policy, this.#directory.alive(), self, ref.name, this.#config.loadThreshold)
  }

  // Alive agents whose record offers `name` (at `version`, if given).
  #offering (name: string, version: string | null): NodeRecord[] {
    return this.#directory.alive().filter((r) => r.id !== this.self && r.services.some((s) => s.name === name && (version === null || s.version === version)))
  }

  #here (): { region: string; position: Position | null } {
    const self = this.#directory.record(this.self)
    return { region: self?.region ?? '', position: self?.position ?? null }
  }
}
