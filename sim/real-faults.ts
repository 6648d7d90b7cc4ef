// The network faults of `edge-agent sim --real`: partitions, loss, delay and
// slow nodes, made by the fault-injection gate of each agent (started with
// --fault-injection; README, "Fault injection"). This keeps the rules every
// agent should have and sends each agent its whole rule set (POST /v1/faults)
// whenever it changes; an agent that cannot be told now (crashed, frozen) is told
// when it is back, since a restarted agent starts without rules.
//
// The same semantics as the virtual network (sim/network.ts): a partition drops
// everything between sides, both ways (each agent of one side blocks every agent
// of the other); loss and delay are per link, applied on receipt at every agent,
// so each message meets them once; a slow node adds its delay to every message
// in and out of it.

import { deriveSeed } from '../agent/core/random.ts'
import type { FaultRules } from '../agent/net/fault-rules.ts'

export type GateTarget = { name: string; http: string }

type Link = { lossRate: number; delayMs: number; jitterMs: number }

const POST_TIMEOUT_MS = 3_000

export class RealNetworkFaults {
  readonly #seed: number
  readonly #names: string[]
  // Agent ids by name: stable across restarts (the data directory keeps the identity).
  readonly #ids: Map<string, string>
  #link: Link = { lossRate: 0, delayMs: 0, jitterMs: 0 }
  // Side of each agent while partitioned (agents not listed: side 0).
  #sides: Map<string, number> | null = null
  readonly #slowMs = new Map<string, number>()
  // Each agent's rule version, the version it was last told, and how often it was told.
  readonly #version = new Map<string, number>()
  readonly #told = new Map<string, number>()
  readonly #sent = new Map<string, number>()
  // Flushes run one after another, so an agent never gets an older set last.
  #flushing: Promise<void> = Promise.resolve()
  readonly problems: string[] = []

  constructor (seed: number, agents: Array<{ name: string; id: string }>) {
    this.#seed = seed
    this.#names = agents.map((a) => a.name)
    this.#ids = new Map(agents.map((a) => [a.name, a.id]))
  }

  get partitioned (): boolean {
    return this.#sides !== null
  }

  canReach (from: string, to: string): boolean {
    return this.#sides === null || (this.#sides.get(from) ?? 0) === (this.#sides.get(to) ?? 0)
  }

  partition (sides: string[][]): void {
    const map = new Map<string, number>()
    sides.forEach((side, index) => { for (const name of side) map.set(name, index) })
    this.#sides = map
    this.#touchAll()
  }

  heal (): void {
    if (this.#sides === null) return
    this.#sides = null
    this.#touchAll()
  }

  // The link model of every agent: loss share, and a delay drawn from [minMs, maxMs].
  setLink (link: { lossRate?: number; delayMinMs?: number; delayMaxMs?: number }): void {
    const next = { ...this.#link }
    if (link.lossRate !== undefined) next.lossRate = link.lossRate
    if (link.delayMinMs !== undefined && link.delayMaxMs !== undefined) {
      next.delayMs = link.delayMinMs
      next.jitterMs = Math.max(0, link.delayMaxMs - link.delayMinMs)
    }
    this.#link = next
    this.#touchAll()
  }

  slow (name: string, extraMs: number): void {
    if (extraMs > 0) this.#slowMs.set(name, extraMs)
    else this.#slowMs.delete(name)
    this.#touch(name)
  }

  // An agent that lost its rules (restarted) or could not be told (frozen).
  forgotten (name: string): void {
    this.#touch(name)
  }

  rulesOf (name: string): FaultRules {
    const blocked = this.#sides === null ? [] : this.#names.filter((other) => !this.canReach(name, other))
    const sent = this.#sent.get(name) ?? 0
    return {
      // A new PRNG stream per agent and per rule set, from the run's seed.
      seed: deriveSeed(this.#seed, this.#names.indexOf(name) * 1_000_003 + sent),
      blockedPeers: blocked.map((other) => this.#ids.get(other) as string),
      lossRate: this.#link.lossRate,
      delayMs: this.#link.delayMs,
      jitterMs: this.#link.jitterMs,
      slowMs: this.#slowMs.get(name) ?? 0,
      direction: 'in'
    }
  }

  // Tells every agent in `reachable` whose rules changed. Failures are kept in
  // `problems` (the run's checkers report them) and retried at the next flush.
  async flush (reachable: GateTarget[]): Promise<void> {
    this.#flushing = this.#flushing.then(async () => await this.#flushNow(reachable))
    await this.#flushing
  }

  async #flushNow (reachable: GateTarget[]): Promise<void> {
    await Promise.all(reachable.filter((a) => (this.#version.get(a.name) ?? 0) > (this.#told.get(a.name) ?? 0)).map(async (agent) => {
      const version = this.#version.get(agent.name) ?? 0
      const rules = this.rulesOf(agent.name)
      try {
        const response = await fetch(`${agent.http}/v1/faults`, { method: 'POST', body: JSON.stringify(rules), signal: AbortSignal.timeout(POST_TIMEOUT_MS) })
        if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${await response.text()}`)
        this.#told.set(agent.name, Math.max(version, this.#told.get(agent.name) ?? 0))
        this.#sent.set(agent.name, (this.#sent.get(agent.name) ?? 0) + 1)
      } catch (error) {
        if (this.problems.length < 20) this.problems.push(`${agent.name}: fault rules not applied: ${(error as Error).message}`)
      }
    }))
  }

  #touchAll (): void {
    for (const name of this.#names) this.#touch(name)
  }

  #touch (name: string): void {
    this.#version.set(name, (this.#version.get(name) ?? 0) + 1)
  }
}
