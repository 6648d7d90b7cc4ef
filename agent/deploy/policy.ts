// Deployment policies (M3.2): which agents run a package. Pure functions of the
// policy text and a member table, so every agent computing from the same table
// names the same targets, and the simulator runs them unchanged.
//
//   all                 every healthy (alive) agent
//   nodes:<id,…>        the named agents (down ones catch up when they return)
//   regions:<a,…>       every agent whose record's region is one of these
//   hub-per-region      one data-centre agent per region (see hubOf)
//   replicas:<n>        n agents chosen by rendezvous hashing on the package name
//                       among healthy agents under the load threshold
//   auto                every healthy agent under the load threshold

import type { NodeRecord, Position } from '../../protocol/messages.ts'
import { distanceKm, hash32 } from '../sessions/placement.ts'

export type Policy =
  | { kind: 'all' }
  | { kind: 'nodes'; ids: string[] }
  | { kind: 'regions'; regions: string[] }
  | { kind: 'hub-per-region' }
  | { kind: 'replicas'; count: number }
  | { kind: 'auto' }

export const POLICY_HELP = 'all, nodes:<id,…>, regions:<a,…>, hub-per-region, replicas:<n> or auto'
export const MAX_POLICY_REPLICAS = 1_000
const LABEL = /^[A-Za-z0-9._-]{1,64}$/
const ID = /^[A-Za-z0-9._-]{1,128}$/

// A zone naming a data-centre node: "dc", "dc1", "dc-east", … (case-insensitive).
// Agents started with such a --zone are the preferred hubs of their region.
export const DATA_CENTRE_ZONE = /^dc/i
// Load scores are compared in steps of this size, so two agents a few percent
// apart do not swap the hub role back and forth as their samples wobble.
export const LOAD_STEP = 0.1

export type ParsedPolicy = { ok: true; policy: Policy } | { ok: false; reason: string }

export function parsePolicy (text: string): ParsedPolicy {
  const bad = (why: string): ParsedPolicy => ({ ok: false, reason: `policy ${JSON.stringify(text)}: ${why} (policies: ${POLICY_HELP})` })
  const colon = text.indexOf(':')
  const head = colon < 0 ? text : text.slice(0, colon)
  const list = colon < 0 ? [] : text.slice(colon + 1).split(',').map((s) => s.trim()).filter((s) => s !== '')
  switch (head) {
    case 'all': case 'hub-per-region': case 'auto':
      if (colon >= 0) return bad(`${head} takes no argument`)
      return { ok: true, policy: { kind: head } }
    case 'nodes':
      if (list.length === 0 || list.some((id) => !ID.test(id))) return bad('nodes: needs a comma-separated list of agent ids')
      return { ok: true, policy: { kind: 'nodes', ids: [...new Set(list)].sort() } }
    case 'regions':
      if (list.length === 0 || list.some((r) => !LABEL.test(r))) return bad('regions: needs a comma-separated list of region names')
      return { ok: true, policy: { kind: 'regions', regions: [...new Set(list)].sort() } }
    case 'replicas': {
      const n = Number(list[0])
      if (list.length !== 1 || !Number.isInteger(n) || n < 1 || n > MAX_POLICY_REPLICAS) return bad(`replicas: needs a whole number 1-${MAX_POLICY_REPLICAS}`)
      return { ok: true, policy: { kind: 'replicas', count: n } }
    }
    default:
      return bad('unknown policy')
  }
}

function byId (a: NodeRecord, b: NodeRecord): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

function loadStep (record: NodeRecord): number {
  return Math.floor(record.load.score / LOAD_STEP)
}

// The hub of one region's agents: a data-centre agent if the region has one
// (else any agent), preferring agents under the load threshold, then the least
// loaded (in LOAD_STEP steps), then the smallest id. Null for no agents.
export function hubOf (records: NodeRecord[], loadThreshold: number): NodeRecord | null {
  if (records.length === 0) return null
  const dc = records.filter((r) => DATA_CENTRE_ZONE.test(r.zone))
  const pool = dc.length > 0 ? dc : records
  const under = pool.filter((r) => r.load.score < loadThreshold)
  const candidates = under.length > 0 ? under : pool
  return [...candidates].sort((a, b) => loadStep(a) - loadStep(b) || byId(a, b))[0]
}

export function byRegion (records: NodeRecord[]): Map<string, NodeRecord[]> {
  const regions = new Map<string, NodeRecord[]>()
  for (const r of records) {
    const list = regions.get(r.region)
    if (list === undefined) regions.set(r.region, [r])
    else list.push(r)
  }
  return regions
}

// The agents a policy targets, sorted by id. `alive` are the healthy members
// (self included), as every agent's table holds them.
export function resolveTargets (policy: Policy, alive: NodeRecord[], name: string, loadThreshold: number): string[] {
  const live = [...alive].filter((r) => r.status === 'alive').sort(byId)
  switch (policy.kind) {
    case 'all': return live.map((r) => r.id)
    case 'nodes': return [...policy.ids]
    case 'regions': return live.filter((r) => policy.regions.includes(r.region)).map((r) => r.id)
    case 'auto': return live.filter((r) => r.load.score < loadThreshold).map((r) => r.id)
    case 'hub-per-region': {
      const hubs: string[] = []
      for (const records of byRegion(live).values()) {
        const hub = hubOf(records, loadThreshold)
        if (hub !== null) hubs.push(hub.id)
      }
      return hubs.sort()
    }
    case 'replicas': {
      // Rendezvous hashing: each agent's weight for this package is a hash of
      // both; the n heaviest win, and one agent leaving moves only its share.
      const pool = live.filter((r) => r.load.score < loadThreshold)
      return pool
        .map((r) => ({ id: r.id, weight: hash32(`${name}/${r.id}`) }))
        .sort((a, b) => b.weight - a.weight || (a.id < b.id ? -1 : 1))
        .slice(0, policy.count)
        .map((t) => t.id)
        .sort()
    }
  }
}

// Whether `self` is a target. An agent always counts itself alive: a node that
// was down during a deploy decides on its return, from its own table.
export function isTarget (policy: Policy, alive: NodeRecord[], self: NodeRecord, name: string, loadThreshold: number): boolean {
  const withSelf = alive.some((r) => r.id === self.id) ? alive : [...alive, self]
  return resolveTargets(policy, withSelf, name, loadThreshold).includes(self.id)
}

// Where an agent lacking a package fetches it (M3.3): its region's hub among the
// holders first, then the other holders, nearest first (by position, when both
// have one), then by id.
export function fetchOrder (holders: NodeRecord[], self: { region: string; position: Position | null }, loadThreshold: number): string[] {
  const sameRegion = holders.filter((r) => r.region === self.region)
  const hub = hubOf(sameRegion, loadThreshold)
  const rest = holders.filter((r) => r.id !== hub?.id).sort((a, b) => {
    const region = Number(b.region === self.region) - Number(a.region === self.region)
    return region || nearness(a, self.position) - nearness(b, self.position) || byId(a, b)
  })
  return [...(hub === null ? [] : [hub.id]), ...rest.map((r) => r.id)]
}

function nearness (r: NodeRecord, from: Position | null): number {
  return r.position === null || from === null ? Number.MAX_SAFE_INTEGER : distanceKm(r.position, from)
}

// Where an agent over its limit sends a request (M3.4): the nearest healthy agent
// of its own region that offers the service and is under the load threshold.
export function redirectTarget (offering: NodeRecord[], self: NodeRecord, loadThreshold: number): NodeRecord | null {
  const pool = offering
    .filter((r) => r.id !== self.id && r.status === 'alive' && r.region === self.region && r.load.score < loadThreshold && r.http !== '')
    .sort((a, b) => nearness(a, self.position) - nearness(b, self.position) || loadStep(a) - loadStep(b) || byId(a, b))
  return pool[0] ?? null
}
