// The member table as users see it: the JSON of GET /v1/members and `peek --json`,
// and the readable table `peek` prints. Both peek paths (HTTP and libp2p) build
// the same JSON from the same PeekMember list.

import type { Load, MemberStatus, PeekMember, Position, ServiceOffer } from '../../protocol/messages.ts'

export type MemberJson = {
  id: string
  addrs: string[]
  ip: string
  http: string
  services: ServiceOffer[]
  load: Load
  position: Position | null
  region: string
  zone: string
  status: MemberStatus
  incarnation: number
  // Milliseconds since the answering agent last heard from this member.
  lastHeardMs: number
  // In a private cluster, over HTTP: the id of the cluster key the answering
  // agent's connection to this member runs under (null: no connection now).
  clusterKey?: string | null
}

export type MembersJson = { self: string; members: MemberJson[] }

const STATUS_ORDER: Record<MemberStatus, number> = { alive: 0, suspect: 1, dead: 2, left: 3 }

// `keyOf`: the key id of the answering agent's connection to a member (a private
// cluster's agent over HTTP); without it the field is left out.
export function membersJson (self: string, members: PeekMember[], keyOf?: (id: string) => string | null): MembersJson {
  const list = members.map((m): MemberJson => ({
    id: m.record.id,
    addrs: m.record.addrs,
    ip: m.record.ip,
    http: m.record.http,
    services: m.record.services,
    load: m.record.load,
    position: m.record.position,
    region: m.record.region,
    zone: m.record.zone,
    status: m.status,
    incarnation: m.record.incarnation,
    lastHeardMs: Math.round(m.lastHeardMs),
    ...(keyOf === undefined || m.record.id === self ? {} : { clusterKey: keyOf(m.record.id) })
  }))
  list.sort((a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || a.id.localeCompare(b.id))
  return { self, members: list }
}

// libp2p ids share their first characters ("12D3KooW…"); the tail tells them apart.
export function shortId (id: string): string {
  return id.length <= 12 ? id : '…' + id.slice(-10)
}

function ago (ms: number): string {
  if (ms < 1_000) return `${ms} ms`
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`
  return `${Math.round(ms / 3_600_000)} h`
}

function place (m: MemberJson): string {
  const where = [m.region, m.zone].filter((s) => s !== '').join('/')
  const pos = m.position === null ? '' : `${m.position.lat.toFixed(2)},${m.position.lon.toFixed(2)}`
  return [where, pos].filter((s) => s !== '').join(' ') || '-'
}

export function formatMembersTable (view: MembersJson): string {
  const keyed = view.members.some((m) => m.clusterKey !== undefined)
  const header = ['ID', 'IP', 'SERVICES', 'LOAD', 'REGION/POSITION', 'STATUS', 'INC', 'LAST HEARD', ...(keyed ? ['KEY'] : [])]
  const rows = view.members.map((m) => [
    shortId(m.id) + (m.id === view.self ? ' *' : ''),
    m.ip || '-',
    m.services.map((s) => `${s.name}@${s.version}`).join(',') || '-',
    m.load.score.toFixed(2),
    place(m),
    m.status,
    String(m.incarnation),
    m.id === view.self ? 'self' : ago(m.lastHeardMs),
    ...(keyed ? [m.id === view.self ? '' : m.clusterKey ?? '-'] : [])
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  const counts = new Map<string, number>()
  for (const m of view.members) counts.set(m.status, (counts.get(m.status) ?? 0) + 1)
  const summary = [...counts].map(([s, n]) => `${n} ${s}`).join(', ')
  return [line(header), ...rows.map(line), `${view.members.length} members (${summary}); * = the agent answering`].join('\n')
}
