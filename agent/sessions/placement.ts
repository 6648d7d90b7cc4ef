// Group election for a terminal session (M0.3, M0.4, M0.7, M4.1, M4.3): which
// nodes hold a session, and in what order. Eligible nodes sit on a consistent-hash
// ring weighted by capacity; a window of them is walked from the session's key and
// ranked by ring order, spare load and distance to the terminal. The owner is the
// first, the standbys follow (the terminal's backup connection queue).
//
// Pure and deterministic: every agent computing from the same node table gets the
// same group, whatever order the table's records arrive in.

import type { GroupConfig, NodeRecord, Position } from '../../protocol/messages.ts'
import type { SessionsConfig } from './config.ts'
import { lowerBound } from '../core/sorted.ts'

const EARTH_RADIUS_KM = 6371

// Proximity halves at this distance: 1 / (1 + km / scale).
const PROXIMITY_SCALE_KM = 1000

// Proximity when either position is unknown: neither favoured nor penalised.
const NEUTRAL_PROXIMITY = 0.5

// A node's weight on the ring follows its capacity up to this many virtual nodes
// (capacity 12,800 at the default 32 per 100). Capacity is self-reported and may
// reach 1,000,000; uncapped, one record could make every agent build a ring of
// hundreds of thousands of points.
export const MAX_VNODES_PER_NODE = 4096

// Witnesses store nothing, so every alive node weighs the same on their ring; this
// many points each spreads witness duty as evenly as the default spreads owners.
// A constant rather than a setting, so witnessFor() needs no config to agree.
export const WITNESS_VNODES_PER_NODE = 32

// Rings are rebuilt only when their input changes; placement is called per session
// with the same table most of the time. The cache is invisible to callers: a ring
// is a pure function of its key.
const RING_CACHE_SIZE = 8
const ringCache = new Map<string, HashRing>()

// FNV-1a over UTF-16 code units, then murmur3's fmix32 so that keys differing in
// their last characters still land far apart on the ring.
export function hash32 (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return fmix32(h)
}

function fmix32 (value: number): number {
  let h = value
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

export type RingNode = { id: string; capacity: number }

type Point = { hash: number; id: string; vnode: number }

export function vnodeCount (capacity: number, vnodesPer100Capacity: number): number {
  const scaled = Math.round(vnodesPer100Capacity * capacity / 100)
  return Math.min(MAX_VNODES_PER_NODE, Math.max(1, scaled))
}

// Code-unit order, never localeCompare: the order must not depend on the host's locale.
function compareText (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function comparePoints (a: Point, b: Point): number {
  return a.hash - b.hash || compareText(a.id, b.id) || a.vnode - b.vnode
}

// M4.1 keeps the ring in a red-black tree. A sorted array with binary search gives
// the same lookups; membership changes rebuild it, which is cheap at these sizes
// and keeps the structure trivially identical on every agent.
export class HashRing {
  readonly #hashes: Uint32Array
  readonly #ids: string[]
  readonly size: number

  constructor (nodes: RingNode[], vnodesPer100Capacity: number) {
    const points: Point[] = []
    const capacities = largestCapacityById(nodes)
    for (const [id, capacity] of capacities) {
      const count = vnodeCount(capacity, vnodesPer100Capacity)
      for (let v = 0; v < count; v++) points.push({ hash: hash32(`${id}#${v}`), id, vnode: v })
    }
    points.sort(comparePoints)
    this.#hashes = Uint32Array.from(points, (p) => p.hash)
    this.#ids = points.map((p) => p.id)
    this.size = capacities.size
  }

  // The first `count` distinct nodes clockwise from the key's hash.
  walk (key: string, count: number): string[] {
    const total = this.#ids.length
    const want = Math.min(count, this.size)
    const start = firstAtOrAfter(this.#hashes, hash32(key))
    const found: string[] = []
    const seen = new Set<string>()
    for (let step = 0; step < total && found.length < want; step++) {
      const id = this.#ids[(start + step) % total]
      if (!seen.has(id)) {
        seen.add(id)
        found.push(id)
      }
    }
    return found
  }
}

// A node listed twice counts once, at its largest capacity, whatever the order.
function largestCapacityById (nodes: RingNode[]): Map<string, number> {
  const byId = new Map<string, number>()
  for (const node of nodes) byId.set(node.id, Math.max(node.capacity, byId.get(node.id) ?? node.capacity))
  return byId
}

// Index of the first hash ≥ target, or 0 when every hash is below it (wrap around).
function firstAtOrAfter (hashes: Uint32Array, target: number): number {
  const at = lowerBound(hashes, target)
  return at === hashes.length ? 0 : at
}

// One record per id, sorted by id, so nothing downstream depends on input order.
// Of two records for one id the newer wins; equal (incarnation, seq) means the same
// signed record, since its author bumps seq on every change.
function canonical (records: NodeRecord[]): NodeRecord[] {
  const byId = new Map<string, NodeRecord>()
  for (const record of records) {
    const held = byId.get(record.id)
    if (held === undefined || isNewer(record, held)) byId.set(record.id, record)
  }
  return [...byId.values()].sort((a, b) => compareText(a.id, b.id))
}

function isNewer (a: NodeRecord, b: NodeRecord): boolean {
  return a.incarnation !== b.incarnation ? a.incarnation > b.incarnation : a.seq > b.seq
}

// The node's capacity for `service`, any version; 0 if it does not offer it.
export function serviceCapacity (record: NodeRecord, service: string): number {
  let capacity = 0
  for (const offer of record.services) if (offer.name === service) capacity = Math.max(capacity, offer.capacity)
  return capacity
}

// M0.3 and M4.2: alive, offering the service with room for sessions, under the load
// threshold (a threshold of 1 turns the load filter off: scores never exceed 1).
// Callers pass alive members; the record's own status is checked too so that a
// node announcing its departure is never chosen.
export function eligible (records: NodeRecord[], service: string, loadThreshold: number): NodeRecord[] {
  return records.filter((record) =>
    record.status === 'alive' &&
    serviceCapacity(record, service) > 0 &&
    (record.load.score < loadThreshold || loadThreshold >= 1))
}

export function distanceKm (a: Position, b: Position): number {
  const rad = Math.PI / 180
  const dLat = (b.lat - a.lat) * rad
  const dLon = (b.lon - a.lon) * rad
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)))
}

// 1 at the terminal, ½ at PROXIMITY_SCALE_KM, towards 0 far away.
export function proximity (node: Position | null, terminal: Position | null): number {
  if (node === null || terminal === null) return NEUTRAL_PROXIMITY
  return 1 / (1 + distanceKm(node, terminal) / PROXIMITY_SCALE_KM)
}

export type PlacementWeights = Pick<SessionsConfig, 'weightRing' | 'weightLoad' | 'weightDistance'>

// M0.7: priority from ring order (stability), spare load and proximity, each in
// 0..1 and weighted. `ringIndex` is the node's place among `windowSize` candidates.
export function priority (
  record: NodeRecord, ringIndex: number, windowSize: number, terminal: Position | null, weights: PlacementWeights
): number {
  const ringScore = 1 - ringIndex / windowSize
  const spare = 1 - record.load.score
  return weights.weightRing * ringScore + weights.weightLoad * spare + weights.weightDistance * proximity(record.position, terminal)
}

// Candidates given in ring order come back by priority, highest first; equal
// priorities keep ring order.
export function rankCandidates (candidates: NodeRecord[], terminal: Position | null, weights: PlacementWeights): NodeRecord[] {
  const scored = candidates.map((record, i) => ({ record, i, score: priority(record, i, candidates.length, terminal, weights) }))
  scored.sort((a, b) => b.score - a.score || a.i - b.i)
  return scored.map((s) => s.record)
}

function cachedRing (key: string, build: () => HashRing): HashRing {
  const held = ringCache.get(key)
  if (held !== undefined) return held
  const ring = build()
  ringCache.set(key, ring)
  if (ringCache.size > RING_CACHE_SIZE) ringCache.delete(ringCache.keys().next().value as string)
  return ring
}

// `pool` is canonical and eligible for `service`.
function serviceRing (pool: NodeRecord[], service: string, vnodesPer100Capacity: number): HashRing {
  const nodes = pool.map((record) => ({ id: record.id, capacity: serviceCapacity(record, service) }))
  const key = `s ${vnodesPer100Capacity}\n${nodes.map((n) => `${n.id} ${n.capacity}`).join('\n')}`
  return cachedRing(key, () => new HashRing(nodes, vnodesPer100Capacity))
}

// Every node at the same weight: WITNESS_VNODES_PER_NODE points each.
function witnessRing (alive: NodeRecord[]): HashRing {
  const ids = alive.map((record) => record.id)
  return cachedRing(`w\n${ids.join('\n')}`, () => new HashRing(ids.map((id) => ({ id, capacity: 100 })), WITNESS_VNODES_PER_NODE))
}

function windowSize (config: SessionsConfig): number {
  return Math.max(config.candidateWindow, config.replicas + 1)
}

// Walks `ring` from the key, skipping `taken`, and ranks up to a window of the rest.
// The walk widens by the number skipped, so a full window is found whenever the
// ring holds one.
function rankedFrom (
  pool: NodeRecord[], ring: HashRing, sessionKey: string, taken: ReadonlySet<string>,
  terminal: Position | null, config: SessionsConfig
): NodeRecord[] {
  const size = windowSize(config)
  const byId = new Map(pool.map((record) => [record.id, record]))
  const walked = ring.walk(sessionKey, size + taken.size).filter((id) => !taken.has(id)).slice(0, size)
  return rankCandidates(walked.map((id) => byId.get(id) as NodeRecord), terminal, config)
}

// M0.4: the session's group, owner first, then standbys in priority order; null
// when no node is eligible. With fewer than replicas + 1 eligible nodes, the
// standbys are made up from agents over the load threshold (see overLoaded);
// only a cluster with fewer agents offering the service gives a smaller group.
export function placeGroup (
  records: NodeRecord[], sessionKey: string, service: string, terminal: Position | null, config: SessionsConfig
): GroupConfig | null {
  const all = canonical(records)
  const pool = eligible(all, service, config.loadThreshold)
  if (pool.length === 0) return null
  const ring = serviceRing(pool, service, config.vnodesPer100Capacity)
  const ranked = rankedFrom(pool, ring, sessionKey, new Set(), terminal, config)
  const members = ranked.slice(0, config.replicas + 1).map((record) => record.id)
  members.push(...overLoaded(all, service, new Set(members), config.replicas + 1 - members.length))
  return { members, witness: witnessFor(records, sessionKey, members) }
}

// Standbys from agents over the load threshold, least loaded first (then by
// id), when too few are under it. An overloaded agent is kept from owning new
// sessions, not from holding their copies: a standby costs it about half an
// owner's work, and the alternative, a group of one, holds every delta on one
// box with nobody to take over. Before, with the other agents busy, an open
// answered 201 with a group of the owner alone. Alive, offering the service, as
// `eligible` asks; `taken` are already in the group.
function overLoaded (records: NodeRecord[], service: string, taken: ReadonlySet<string>, wanted: number): string[] {
  if (wanted <= 0) return []
  return records
    .filter((record) => record.status === 'alive' && serviceCapacity(record, service) > 0 && !taken.has(record.id))
    .sort((a, b) => a.load.score - b.load.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, wanted)
    .map((record) => record.id)
}

// A vote-only third party, so that two members can still form a majority when one
// fails. Any alive node will do (it stores nothing): the first non-member clockwise
// from the session's key on the ring of all alive nodes. Null unless there are
// exactly two members.
export function witnessFor (records: NodeRecord[], sessionKey: string, members: string[]): string | null {
  if (members.length !== 2) return null
  const alive = canonical(records).filter((record) => record.status === 'alive')
  if (alive.length === 0) return null
  const taken = new Set(members)
  const walked = witnessRing(alive).walk(sessionKey, members.length + 1)
  return walked.find((id) => !taken.has(id)) ?? null
}

// Group repair: the best eligible node that is neither a member nor the witness,
// ranked as placeGroup ranks, else the least loaded over the threshold; null
// when nobody is left.
export function replacementFor (
  records: NodeRecord[], sessionKey: string, service: string, terminal: Position | null,
  current: GroupConfig, config: SessionsConfig
): string | null {
  const all = canonical(records)
  const pool = eligible(all, service, config.loadThreshold)
  const taken = new Set(current.witness === null ? current.members : [...current.members, current.witness])
  if (pool.length > 0) {
    const ring = serviceRing(pool, service, config.vnodesPer100Capacity)
    const ranked = rankedFrom(pool, ring, sessionKey, taken, terminal, config)
    if (ranked.length > 0) return ranked[0].id
  }
  return overLoaded(all, service, taken, 1)[0] ?? null
}
