// Hosts the distribution core (agent/deploy/distribution.ts) on the agent: checks
// every bundle and announcement (signature by a trusted deployer, hash, manifest,
// size) before the core hears of it, stores bundles durably, carries the core's
// push/fetch/pull effects over the packages protocol, runs packages in workers
// (service-runner.ts) and advertises name@version in the node record.

import { performance } from 'node:perf_hooks'
import { createHash, randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { SeededRandom } from '../core/random.ts'
import { Distribution, newer, TABLE_SETTLE_MS } from '../deploy/distribution.ts'
import type { DeployConfig, DeployEffect, DeployEvent, DeployInput, IndexEntry, PackageRef } from '../deploy/distribution.ts'
import type { MemberDirectory } from '../sessions/types.ts'
import type { Service } from '../sessions/services.ts'
import type { Net } from '../net/types.ts'
import type { ServiceOffer } from '../../protocol/messages.ts'
import { CoreDriver } from './driver.ts'
import { DeployedService } from './deployed-service.ts'
import { decodeAnswer, decodeIndex, decodeRequest, encodeIndex, encodeRequest, okAnswer, refusedAnswer } from './deploy-wire.ts'
import { checkAnnouncement, clusterKeyProblem, openBundle } from './package.ts'
import type { PackageKey, Refusal, SignedAnnouncement } from './package.ts'
import { PackageStore } from './package-store.ts'
import type { PackageCode } from './package-store.ts'
import { ServiceRunner } from './service-runner.ts'

const monotonic = { nowMs: () => performance.now() }

// A push, fetch or index request with no answer in this long fails, ms.
export const PACKAGE_REQUEST_TIMEOUT_MS = 15_000
// How long a request for a service this agent lacks waits for the package to
// arrive (learn of it, fetch it, start it), ms.
export const ENSURE_TIMEOUT_MS = 15_000
// Pushes in flight at once from one agent: a deploy to 50 targets must not open
// 50 streams of 4 MiB each at the same moment.
export const MAX_PUSHES_IN_FLIGHT = 8
const MAX_REFUSALS_REMEMBERED = 4_096
// Sessions a deployed service offers per agent in the record (placement weight).
export const DEPLOYED_SERVICE_CAPACITY = 100
// How often the host tells the core which services its session copies use, and
// fetches and runs any such service that does not run here, ms.
export const USAGE_CHECK_MS = 5_000
// A request for a service that runs here tells the core it was asked for (its
// idle time starts again) at most this often per name, ms.
const ASKED_NOTE_MS = 1_000

export type DeployHostParts = {
  dataDir: string
  trusted: ReadonlySet<string>
  // From --cluster-key and --cluster-key-previous: open packages sealed for this
  // cluster (empty without a key); a reload replaces the contents.
  packageKey: PackageKey[]
  config: DeployConfig
  directory: MemberDirectory
  net: Net
  // The sessions core's service table; deployed services are added to it.
  services: Map<string, Service>
  // Offers given with --services, which the record keeps beside deployed ones.
  baseOffers: ServiceOffer[]
  advertise: (offers: ServiceOffer[]) => void
  // Services of the session copies this agent holds (their packages keep running).
  heldServices: () => Set<string>
  log: Logger
  line: (object: Record<string, unknown>) => void
  onRefused: (refusal: Refusal) => void
  onStored: (via: string) => void
  onRetired: (name: string) => void
}

// Every pull brings a peer's whole index, so the same refused announcement
// comes back at every pull: it is counted once (edge_agent_packages_refused_total
// rose by the number of such packages at every pull, on an agent that had
// refused them all along). The memory is bounded; past it, counting starts afresh.
export class OncePerAnnouncement {
  readonly #seen = new Set<string>()
  readonly #limit: number

  constructor (limit = MAX_REFUSALS_REMEMBERED) {
    this.#limit = limit
  }

  // True the first time this announcement is refused for this reason.
  first (header: Uint8Array, refusal: Refusal): boolean {
    const key = `${refusal}:${createHash('sha256').update(header).digest('hex')}`
    if (this.#seen.has(key)) return false
    if (this.#seen.size >= this.#limit) this.#seen.clear()
    this.#seen.add(key)
    return true
  }
}

export type Accepted = { ok: true; ref: PackageRef; targets: string[] } | { ok: false; refusal: Refusal; reason: string }

function refOf (a: SignedAnnouncement['announcement']): PackageRef {
  return { name: a.name, version: a.version, hash: a.hash, policy: a.policy, issuedAtMs: a.issuedAtMs }
}

export class DeployHost {
  readonly #parts: DeployHostParts
  readonly #store: PackageStore
  readonly #core: Distribution
  readonly #driver: CoreDriver<DeployInput, DeployEffect>
  readonly #signed = new Map<string, SignedAnnouncement>()
  readonly #entries = new Map<string, PackageCode>()
  readonly #deployed = new Map<string, DeployedService>()
  readonly #waiting = new Map<string, Array<(ok: boolean) => void>>()
  readonly #targets = new Map<string, string[]>()
  readonly #pushQueue: Array<{ to: string; hash: string }> = []
  readonly #askedAtMs = new Map<string, number>()
  #held = ''
  #usageTimer: NodeJS.Timeout | null = null
  #tableTimer: NodeJS.Timeout | null = null
  #pushing = 0
  #stopped = false

  constructor (parts: DeployHostParts) {
    this.#parts = parts
    this.#store = new PackageStore(parts.dataDir)
    const loaded = this.#store.load(parts.trusted, parts.packageKey, (hash, refusal, reason) => {
      parts.onRefused(refusal)
      parts.log.warn({ hash, refusal, reason }, 'a stored package no longer passes its checks; not running it')
    })
    for (const l of loaded) {
      this.#signed.set(l.opened.signed.announcement.hash, l.opened.signed)
      this.#entries.set(l.opened.signed.announcement.hash, l.code)
    }
    this.#core = new Distribution({
      directory: parts.directory,
      config: parts.config,
      random: new SeededRandom(randomBytes(4).readUInt32LE(0)),
      nowMs: monotonic.nowMs(),
      stored: loaded.map((l) => ({ ref: refOf(l.opened.signed.announcement), running: l.running }))
    })
    // Packages that ran before a restart run again before any session replays.
    for (const ref of this.#core.running()) this.#start(ref)
    this.#driver = new CoreDriver(this.#core, monotonic, (effects) => { for (const e of effects) this.#perform(e) })
  }

  begin (): void {
    this.#advertise()
    this.#driver.step({ kind: 'tick' })
    this.#checkUsage()
    this.#usageTimer = setInterval(() => { this.#checkUsage() }, USAGE_CHECK_MS)
    this.#usageTimer.unref()
  }

  stop (): void {
    this.#stopped = true
    if (this.#usageTimer !== null) clearInterval(this.#usageTimer)
    if (this.#tableTimer !== null) clearTimeout(this.#tableTimer)
    this.#driver.stop()
    for (const service of this.#deployed.values()) service.stop()
    for (const list of this.#waiting.values()) for (const resolve of list) resolve(false)
    this.#waiting.clear()
  }

  deployed (name: string): DeployedService | null {
    const service = this.#deployed.get(name)
    return service !== undefined && service.newest() !== null ? service : null
  }

  // The version to stamp a session's op with, from what its members advertise
  // (DeployedService.stampFor).
  stampFor (name: string, members: string[]): string | null {
    const service = this.deployed(name)
    if (service === null) return null
    const advertised = members.flatMap((id) => this.#parts.directory.record(id)?.services.filter((s) => s.name === name).map((s) => s.version) ?? [])
    return service.stampFor(advertised)?.ref.version ?? null
  }

  // What this agent holds and runs, for GET /v1/packages.
  status (): { running: Array<PackageRef & { restarts: number; draining: boolean }>; known: Array<PackageRef & { held: boolean }> } {
    const running = [...this.#deployed.values()].flatMap((s) => s.versions().map((v) => ({ ...v.ref, restarts: v.runner.restarts, draining: this.#core.draining(s.name) })))
    return { running, known: this.#core.index().map((e) => ({ ...e.ref, held: e.held })) }
  }

  // A refusal made before a bundle reached deploy() (an HTTP body over the limit).
  countRefusal (refusal: Refusal): void {
    this.#parts.onRefused(refusal)
  }

  // A bundle handed to this agent by `edge-agent deploy`.
  deploy (bundle: Uint8Array): Accepted {
    return this.#accept(bundle, 'deploy', null)
  }

  // Resolves true once service `name` runs here, fetching it if needed (M3.3).
  // A name no agent advertises and no index has announced is unknown at once:
  // a stray URL must not make the agent wait or ask around.
  async ensure (name: string): Promise<boolean> {
    if (this.deployed(name) !== null) {
      this.#asked(name)
      return true
    }
    if (this.#stopped) return false
    const offered = this.#parts.directory.alive().some((r) => r.id !== this.#parts.directory.self && r.services.some((s) => s.name === name))
    if (!offered && this.#core.latest(name) === null) return false
    const done = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { settle(false) }, ENSURE_TIMEOUT_MS)
      const settle = (ok: boolean): void => {
        clearTimeout(timer)
        const list = this.#waiting.get(name)?.filter((r) => r !== settle) ?? []
        if (list.length === 0) this.#waiting.delete(name)
        else this.#waiting.set(name, list)
        resolve(ok)
      }
      this.#waiting.set(name, [...this.#waiting.get(name) ?? [], settle])
    })
    this.#driver.step({ kind: 'need', name })
    return await done
  }

  // The member table changed: the core looks at its targets again shortly.
  tableChanged (): void {
    if (this.#stopped || this.#tableTimer !== null) return
    this.#tableTimer = setTimeout(() => {
      this.#tableTimer = null
      this.#driver.step({ kind: 'tick' })
    }, TABLE_SETTLE_MS)
    this.#tableTimer.unref()
  }

  // A service running here was asked for: it is not retired while asked for
  // (a drained one is offered again).
  #asked (name: string): void {
    const now = monotonic.nowMs()
    if (now - (this.#askedAtMs.get(name) ?? -Infinity) < ASKED_NOTE_MS) return
    this.#askedAtMs.set(name, now)
    this.#driver.step({ kind: 'need', name })
  }

  // The session copies held here keep their services running; a copy of a
  // service that does not run here (a group placed here from a record older
  // than its retirement) makes this agent fetch and run it again.
  #checkUsage (): void {
    if (this.#stopped) return
    const held = this.#parts.heldServices()
    for (const name of held) {
      if (this.deployed(name) === null && !this.#parts.services.has(name) && this.#core.latest(name) !== null) void this.ensure(name)
    }
    const key = [...held].sort().join('\n')
    if (key === this.#held) return
    this.#held = key
    this.#driver.step({ kind: 'usage', held: [...held] })
  }

  // The packages protocol's server side.
  async onRequest (from: string, frame: Uint8Array): Promise<Uint8Array> {
    const request = decodeRequest(frame)
    switch (request.kind) {
      case 'bad': return refusedAnswer(request.reason)
      case 'index': return okAnswer(encodeIndex(this.#core.index().flatMap((e) => this.#indexEntry(e))))
      case 'fetch': {
        const bundle = this.#core.stored(request.hash) === null ? null : this.#store.bundle(request.hash)
        return bundle === null ? refusedAnswer(`this agent does not hold ${request.hash}`) : okAnswer(bundle)
      }
      case 'push': {
        const accepted = this.#accept(request.bundle, 'push', from)
        return accepted.ok ? okAnswer() : refusedAnswer(`${accepted.refusal}: ${accepted.reason}`)
      }
    }
  }

  #newerThanKept (signed: SignedAnnouncement): boolean {
    const kept = this.#signed.get(signed.announcement.hash)
    return kept === undefined || newer(refOf(signed.announcement), refOf(kept.announcement))
  }

  #indexEntry (e: IndexEntry): Array<{ held: boolean; signed: SignedAnnouncement }> {
    const signed = this.#signed.get(e.ref.hash)
    return signed === undefined ? [] : [{ held: e.held, signed }]
  }

  // Checks, stores and hands a bundle to the core.
  #accept (bundle: Uint8Array, via: 'deploy' | 'push' | 'fetch', from: string | null): Accepted {
    const opened = openBundle(bundle, this.#parts.trusted, this.#parts.packageKey)
    if (!opened.ok) {
      this.#parts.onRefused(opened.refusal)
      this.#parts.log.warn({ from, via, refusal: opened.refusal, reason: opened.reason }, 'refused a package')
      return opened
    }
    const a = opened.value.signed.announcement
    const ref = refOf(a)
    if (this.#core.stored(a.hash) === null) {
      const saved = this.#storing(a, via, from, () => this.#store.save(opened.value, bundle))
      if (!saved.ok) return saved
      this.#entries.set(a.hash, saved.value)
      this.#signed.set(a.hash, opened.value.signed)
      this.#parts.onStored(via)
      this.#parts.log.info({ name: a.name, version: a.version, hash: a.hash, via, from }, 'stored a package')
      this.#driver.step({ kind: 'stored', ref, via })
    } else if (this.#newerThanKept(opened.value.signed)) {
      // The same files under a later announcement (deployed again, under another
      // policy, say): it replaces the one kept, in the store and in the index
      // this agent serves, and the core pushes it on as a deploy.
      const replaced = this.#storing(a, via, from, () => { this.#store.replaceBundle(a.hash, bundle) })
      if (!replaced.ok) return replaced
      this.#signed.set(a.hash, opened.value.signed)
      this.#driver.step({ kind: 'stored', ref, via })
    } else if (via === 'deploy') {
      // The same package deployed again: push it to the targets once more.
      this.#driver.step({ kind: 'stored', ref, via })
    }
    return { ok: true, ref, targets: this.#targets.get(a.hash) ?? [] }
  }

  // A write to the package store. One that fails (a full disk, an I/O error)
  // is a 'storage' refusal: nothing of the package is kept or advertised, the
  // deployer (or the pusher, or this agent's pull) is told why, and the agent
  // carries on; a later push or pull tries again.
  #storing<T> (a: SignedAnnouncement['announcement'], via: 'deploy' | 'push' | 'fetch', from: string | null, write: () => T): { ok: true; value: T } | { ok: false; refusal: Refusal; reason: string } {
    try {
      return { ok: true, value: write() }
    } catch (error) {
      this.#parts.onRefused('storage')
      this.#parts.log.error({ from, via, name: a.name, version: a.version, hash: a.hash, err: error }, 'could not store a package')
      return { ok: false, refusal: 'storage', reason: `this agent cannot store ${a.name}@${a.version}: ${(error as Error).message}` }
    }
  }

  // Which packages run, for the next start (advisory: a write that fails costs
  // only that a restart starts the set recorded before).
  #markRunning (): void {
    try {
      this.#store.markRunning(this.#core.running().map((r) => r.hash))
    } catch (error) {
      this.#parts.log.warn({ err: error }, 'could not record which packages run; a restart starts the set recorded before')
    }
  }

  #perform (effect: DeployEffect): void {
    if (this.#stopped) return
    switch (effect.kind) {
      case 'push': this.#pushQueue.push({ to: effect.to, hash: effect.hash }); this.#drainPushes(); return
      case 'fetch': void this.#fetch(effect.from, effect.hash); return
      case 'pull': void this.#pull(effect.from); return
      case 'run': this.#start(effect.ref); this.#advertise(); this.#markRunning(); return
      case 'drain': case 'undrain': this.#advertise(); return
      case 'retire': this.#retire(effect.name, effect.hashes); return
      case 'event': this.#onEvent(effect.event)
    }
  }

  #drainPushes (): void {
    while (this.#pushing < MAX_PUSHES_IN_FLIGHT && this.#pushQueue.length > 0 && !this.#stopped) {
      const next = this.#pushQueue.shift()!
      this.#pushing++
      void this.#push(next.to, next.hash).finally(() => {
        this.#pushing--
        this.#drainPushes()
      })
    }
  }

  async #push (to: string, hash: string): Promise<void> {
    const bundle = this.#store.bundle(hash)
    if (bundle === null) return
    try {
      const answer = decodeAnswer(await this.#parts.net.request(to, encodeRequest({ kind: 'push', bundle }), PACKAGE_REQUEST_TIMEOUT_MS))
      if (!answer.ok) this.#parts.log.warn({ to, hash, reason: answer.reason }, 'a target refused a package push')
    } catch (error) {
      // The target catches up by pulling.
      this.#parts.log.info({ to, hash, err: (error as Error).message }, 'package push failed')
    }
  }

  async #fetch (from: string, hash: string): Promise<void> {
    let reason: string
    try {
      const answer = decodeAnswer(await this.#parts.net.request(from, encodeRequest({ kind: 'fetch', hash }), PACKAGE_REQUEST_TIMEOUT_MS))
      if (answer.ok) {
        const accepted = this.#accept(answer.payload, 'fetch', from)
        if (accepted.ok && accepted.ref.hash === hash) return
        reason = accepted.ok ? `sent ${accepted.ref.hash}, not ${hash}` : accepted.reason
      } else {
        reason = answer.reason
      }
    } catch (error) {
      reason = (error as Error).message
    }
    this.#parts.log.info({ from, hash, reason }, 'package fetch failed; trying another holder')
    this.#driver.step({ kind: 'fetch-failed', from, hash, reason })
  }

  async #pull (from: string): Promise<void> {
    let payload: Uint8Array
    try {
      const answer = decodeAnswer(await this.#parts.net.request(from, encodeRequest({ kind: 'index' }), PACKAGE_REQUEST_TIMEOUT_MS))
      if (!answer.ok) return
      payload = answer.payload
    } catch {
      return
    }
    const raw = decodeIndex(payload)
    if (raw === null) { this.#parts.onRefused('malformed'); return }
    const entries: IndexEntry[] = []
    for (const r of raw) {
      const checked = checkAnnouncement(r.header, r.sig, this.#parts.trusted)
      if (!checked.ok) { this.#refusedInIndex(r.header, checked.refusal); continue }
      // A package sealed for a key this agent lacks: never a target, never fetched.
      if (clusterKeyProblem(checked.value.clusterKeyId, this.#parts.packageKey) !== null) { this.#refusedInIndex(r.header, 'cluster-key'); continue }
      const ref = refOf(checked.value)
      const signed = { announcement: checked.value, header: Buffer.from(r.header), sig: Buffer.from(r.sig) }
      if (this.#newerThanKept(signed)) this.#signed.set(ref.hash, signed)
      entries.push({ ref, held: r.held })
    }
    if (entries.length > 0) this.#driver.step({ kind: 'index', from, entries })
  }

  readonly #indexRefusals = new OncePerAnnouncement()

  #refusedInIndex (header: Uint8Array, refusal: Refusal): void {
    if (this.#indexRefusals.first(header, refusal)) this.#parts.onRefused(refusal)
  }

  #start (ref: PackageRef): void {
    const entry = this.#entries.get(ref.hash)
    if (entry === undefined) return
    let service = this.#deployed.get(ref.name)
    if (service === undefined) {
      service = new DeployedService(ref.name)
      this.#deployed.set(ref.name, service)
    }
    if (service.versions().some((v) => v.ref.hash === ref.hash)) return
    const runner = new ServiceRunner(`${ref.name}@${ref.version}`, entry)
    runner.start()
    service.add({ ref, runner })
    // A built-in of the same name stays: deployed code never replaces one.
    if (!this.#parts.services.has(ref.name) || this.#parts.services.get(ref.name) instanceof DeployedService) this.#parts.services.set(ref.name, service)
    this.#parts.line({ event: 'package-running', name: ref.name, version: ref.version, hash: ref.hash, atMs: Date.now() })
    for (const resolve of this.#waiting.get(ref.name) ?? []) resolve(true)
  }

  #retire (name: string, hashes: string[]): void {
    const service = this.#deployed.get(name)
    if (service !== undefined) {
      for (const hash of hashes) service.retire(hash)
      if (service.newest() === null) {
        this.#deployed.delete(name)
        if (this.#parts.services.get(name) === service) this.#parts.services.delete(name)
      }
    }
    this.#advertise()
    this.#markRunning()
    // The core decided on the copies held at the last report (up to
    // USAGE_CHECK_MS old): a copy placed here since runs the service again now.
    // (After this step's effects, so that its lines keep their order.)
    setImmediate(() => {
      if (!this.#parts.heldServices().has(name)) return
      this.#held = ''
      this.#checkUsage()
    })
  }

  #advertise (): void {
    const offers = [...this.#parts.baseOffers]
    for (const [name, service] of this.#deployed) {
      const newest = service.newest()
      if (newest === null || this.#core.draining(name) || offers.some((o) => o.name === name)) continue
      offers.push({ name, version: newest.ref.version, capacity: DEPLOYED_SERVICE_CAPACITY })
    }
    this.#parts.advertise(offers)
  }

  #onEvent (event: DeployEvent): void {
    if (event.type === 'targets') this.#targets.set(event.ref.hash, event.targets)
    if (event.type === 'announced') this.#parts.log.info({ name: event.ref.name, version: event.ref.version, from: event.from }, 'learnt of a package')
    if (event.type === 'draining') {
      this.#parts.log.info({ name: event.name, idleMs: Math.round(event.idleMs), holdsSessions: event.held }, 'draining a package: this agent is no longer a target of its policy and nobody asked for it here; it stops offering it, and stops running it once it holds no copy of its sessions')
      this.#parts.line({ event: 'package-draining', name: event.name, atMs: Date.now() })
    }
    if (event.type === 'undrained') {
      this.#parts.log.info({ name: event.name, reason: event.reason }, 'offering a drained package again')
      this.#parts.line({ event: 'package-undrained', name: event.name, reason: event.reason, atMs: Date.now() })
    }
    if (event.type === 'retired') {
      this.#parts.log.info({ name: event.name, versions: event.versions }, 'stopped a package this agent no longer needs (its bundle stays stored)')
      this.#parts.line({ event: 'package-retired', name: event.name, versions: event.versions, atMs: Date.now() })
      this.#parts.onRetired(event.name)
    }
    if (event.type === 'fetch-exhausted') this.#parts.log.warn({ name: event.ref.name, version: event.ref.version, tried: event.tried }, 'no holder answered a package fetch; retrying after the next pull')
  }
}
