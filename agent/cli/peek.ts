// `edge-agent peek`: the member table as one agent sees it, over HTTP or libp2p.

import { httpCall } from './http-call.ts'
import { clusterKeyHint, readClusterKeyFile } from '../net/cluster-key.ts'
import { readCa } from './session.ts'
import { decode } from '../../protocol/codec.ts'
import { peekOverLibp2p } from '../net/libp2p.ts'
import { formatMembersTable, membersJson } from '../runtime/view.ts'
import type { MembersJson } from '../runtime/view.ts'
import { parseFlags, UsageError } from './args.ts'

export const PEEK_HELP = `Usage: edge-agent peek [target] [options]

Shows every member one agent knows: short id, IP, services, load, region/position,
status (alive, suspect, dead, left), incarnation and how long ago it was last heard.

  target                an agent's HTTP URL (default http://127.0.0.1:7700), or a
                        libp2p multiaddr with /p2p/<id>, e.g.
                        /ip4/10.0.0.5/tcp/7701/p2p/12D3KooW…  (peek then dials the
                        agent over libp2p; the HTTP API need not be reachable)
  --json                print the data as JSON ({"self", "members": […]})
  --watch               refresh until interrupted
  --interval <ms>       refresh period with --watch (default 1000)
  --timeout <ms>        give up on an agent after this long (default 5000)
  --cluster <name>      cluster name, for a multiaddr target (default "default")
  --cluster-key <file>  the cluster's key, for a multiaddr target of a private
                        cluster (agents started with --cluster-key)
  --ca <file>           PEM certificate to trust for an https target
  -h, --help            show this help

Exit codes: 0 on success, 1 when the agent cannot be reached, 2 on a usage error.`

const FLAGS = {
  json: { type: 'boolean' },
  watch: { type: 'boolean' },
  interval: { type: 'string' },
  timeout: { type: 'string' },
  cluster: { type: 'string' },
  'cluster-key': { type: 'string' },
  ca: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

export class PeekError extends Error {
  override name = 'PeekError'
}

export type PeekAccess = { psk?: Uint8Array; ca?: string }

export async function fetchMembers (target: string, timeoutMs: number, cluster: string, access: PeekAccess = {}): Promise<MembersJson> {
  if (target.startsWith('/')) return await fetchOverLibp2p(target, timeoutMs, cluster, access.psk)
  const base = target.replace(/\/+$/, '')
  let reply: { status: number; text: string }
  try {
    reply = await httpGet(`${base}/v1/members`, timeoutMs, access.ca)
  } catch (error) {
    throw new PeekError(`cannot reach ${base}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  if (reply.status !== 200) throw new PeekError(`${base} answered ${reply.status}`)
  let body: MembersJson
  try {
    body = JSON.parse(reply.text) as MembersJson
  } catch {
    throw new PeekError(`${base} did not answer with JSON`)
  }
  if (typeof body !== 'object' || body === null || !Array.isArray(body.members)) throw new PeekError(`${base} did not answer with a member list`)
  const bad = body.members.findIndex((m) => memberProblem(m) !== null)
  if (bad >= 0) throw new PeekError(`${base} did not answer with an edge-agent member list: members[${bad}] ${memberProblem(body.members[bad])}`)
  if (typeof body.self !== 'string') throw new PeekError(`${base} did not answer with an edge-agent member list: no 'self'`)
  return body
}

// What the table and --json print of a member, checked before printing: a
// server that is not an edge-agent (or a broken one) gets a clear refusal,
// not a TypeError from the formatter.
function memberProblem (m: unknown): string | null {
  if (typeof m !== 'object' || m === null) return 'is not an object'
  const r = m as Record<string, unknown>
  for (const key of ['id', 'ip', 'region', 'zone', 'status'] as const) if (typeof r[key] !== 'string') return `has no string '${key}'`
  for (const key of ['incarnation', 'lastHeardMs'] as const) if (typeof r[key] !== 'number') return `has no number '${key}'`
  if (!Array.isArray(r.services) || !r.services.every((o) => typeof o === 'object' && o !== null && typeof (o as Record<string, unknown>).name === 'string')) return "has no list of 'services'"
  if (typeof r.load !== 'object' || r.load === null || typeof (r.load as Record<string, unknown>).score !== 'number') return "has no 'load.score'"
  const pos = r.position
  if (pos !== null && (typeof pos !== 'object' || typeof (pos as Record<string, unknown>).lat !== 'number' || typeof (pos as Record<string, unknown>).lon !== 'number')) return "has a 'position' that is neither null nor {lat, lon}"
  return null
}

export function httpGet (url: string, timeoutMs: number, ca?: string): Promise<{ status: number; text: string }> {
  return httpCall(url, { timeoutMs, ...(ca === undefined ? {} : { ca }) })
}

async function fetchOverLibp2p (target: string, timeoutMs: number, cluster: string, psk?: Uint8Array): Promise<MembersJson> {
  if (!/\/p2p\/[A-Za-z0-9]+$/.test(target)) throw new UsageError(`a multiaddr target must end in /p2p/<peer id> (got ${target})`)
  let frame: Uint8Array
  try {
    frame = await peekOverLibp2p(target, cluster, timeoutMs, psk)
  } catch (error) {
    const message = (error as Error).message
    throw new PeekError(`cannot peek ${target}: ${message}${clusterKeyHint(message, psk !== undefined)}`)
  }
  const decoded = decode(frame)
  if (!decoded.ok || decoded.value.type !== 'peek-reply') throw new PeekError(`${target} sent an invalid answer${decoded.ok ? '' : ': ' + decoded.reason}`)
  return membersJson(decoded.value.self, decoded.value.members)
}

function parseMs (value: string | boolean | undefined, what: string, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 50 || n > 3_600_000) throw new UsageError(`--${what} must be a whole number of ms, 50-3600000 (got ${String(value)})`)
  return n
}

export async function runPeek (argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS, 1)
  if (values.help === true) {
    console.log(PEEK_HELP)
    return 0
  }
  const target = positionals[0] ?? 'http://127.0.0.1:7700'
  if (!target.startsWith('/') && !/^https?:\/\//.test(target)) throw new UsageError(`target must be an http(s) URL or a multiaddr (got ${target})`)
  const timeoutMs = parseMs(values.timeout, 'timeout', 5_000)
  const intervalMs = parseMs(values.interval, 'interval', 1_000)
  const cluster = typeof values.cluster === 'string' ? values.cluster : 'default'
  const access: PeekAccess = {}
  if (typeof values.ca === 'string') access.ca = readCa(values.ca)
  if (typeof values['cluster-key'] === 'string') {
    try {
      access.psk = readClusterKeyFile(values['cluster-key'])
    } catch (error) {
      process.stderr.write(`edge-agent peek: ${(error as Error).message}\n`)
      return 1
    }
  }
  const show = (view: MembersJson): void => {
    if (values.json === true) process.stdout.write(JSON.stringify(view) + '\n')
    else process.stdout.write((values.watch === true && process.stdout.isTTY ? '\x1b[2J\x1b[H' : '') + formatMembersTable(view) + '\n')
  }
  try {
    show(await fetchMembers(target, timeoutMs, cluster, access))
    while (values.watch === true) {
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
      show(await fetchMembers(target, timeoutMs, cluster, access))
    }
  } catch (error) {
    if (!(error instanceof PeekError)) throw error
    process.stderr.write(`edge-agent peek: ${error.message}\n`)
    return 1
  }
  return 0
}
