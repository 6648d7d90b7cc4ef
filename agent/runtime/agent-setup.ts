// The agent's start-up helpers: files named by the configuration (allowlist,
// TLS), what it advertises (IP, HTTP URL), and the fault-injection warning.
// Kept apart from agent.ts, which wires the parts together.

import { readFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import { parsePeerListFile } from '../config.ts'
import { readClusterKeyFile } from '../net/cluster-key.ts'
import { checkClusterKeys } from '../net/keyring.ts'
import type { ClusterKeys } from '../net/keyring.ts'

// Loud on purpose: whoever can reach the HTTP API can cut this agent off.
export function warnFaultInjection (log: Logger, http: string): void {
  const text = `FAULT INJECTION IS ON: ${http}/v1/faults can drop and delay this agent's messages. This is a test facility; never start a production agent with --fault-injection.`
  log.warn({ http }, text)
  process.stderr.write(`edge-agent: WARNING: ${text}\n`)
}

// The cluster's keys from the configuration's files: the key to dial under and
// the previous ones still accepted; undefined in an open cluster. Throws, naming
// the file, on one that does not read or is not a key, or on a key given twice.
export function readClusterKeys (config: AgentConfig, warn: (message: string) => void = () => {}): ClusterKeys | undefined {
  if (config.clusterKey === null) return undefined
  const keys = { primary: readClusterKeyFile(config.clusterKey, warn), previous: config.clusterKeyPrevious.map((path) => readClusterKeyFile(path, warn)) }
  try {
    checkClusterKeys(keys)
  } catch (error) {
    throw new Error(`cluster keys ${[config.clusterKey, ...config.clusterKeyPrevious].join(', ')}: ${(error as Error).message}`)
  }
  return keys
}

// The allowlist from the configuration and its file; null when neither is set.
export function readAllowlist (config: AgentConfig): string[] | null {
  if (config.allowPeers === null && config.allowPeersFile === null) return null
  const ids = [...(config.allowPeers ?? [])]
  if (config.allowPeersFile !== null) {
    let text: string
    try {
      text = readFileSync(config.allowPeersFile, 'utf8')
    } catch (error) {
      throw new Error(`cannot read allowlist file ${config.allowPeersFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
    ids.push(...parsePeerListFile(text, config.allowPeersFile))
  }
  return [...new Set(ids)]
}

export function readTls (config: AgentConfig): { cert: Buffer; key: Buffer } | undefined {
  if (config.tlsCert === null || config.tlsKey === null) return undefined
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path)
    } catch (error) {
      throw new Error(`cannot read TLS ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
  }
  return { cert: read(config.tlsCert, 'certificate'), key: read(config.tlsKey, 'key') }
}

export function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.')
}

export function stripPeerId (addr: string): string {
  return addr.replace(/\/p2p\/[^/]+$/, '')
}

// The addresses a record lists: what the node listens on now (a wildcard
// listener expanded to the box's current interface addresses), at most the
// 16 a record carries.
export function recordAddrs (net: { addrs: () => string[] }): string[] {
  return net.addrs().map(stripPeerId).slice(0, 16)
}

// What a node's record should say once the box's addresses are `now`, or null
// if it says it already: the addresses, those it lost, and the IP. The IP stays
// while the box still has it, so an interface that comes up (a docker bridge,
// a VPN) adds addresses without moving the agent. A box left with loopback
// alone (a link down, a lease being renewed) changes nothing: if the same
// address comes back, the record and the connections made through it carry on.
export function addressChange (now: readonly string[], record: { addrs: readonly string[]; ip: string }): { addrs: string[]; lost: string[]; ip: string } | null {
  if (!now.some((a) => !isLoopbackAddr(a))) return null
  if (now.length === record.addrs.length && record.addrs.every((a) => now.includes(a))) return null
  const held = record.ip
  const keeps = held !== '' && now.some((a) => a.startsWith(`/ip4/${held}/`) || a.startsWith(`/ip6/${held}/`))
  return { addrs: [...now], lost: record.addrs.filter((a) => !now.includes(a)), ip: keeps ? held : pickIp([...now]) }
}

// An /ip4/127.…/… or /ip6/::1/… multiaddr.
function isLoopbackAddr (addr: string): boolean {
  return addr.startsWith('/ip4/127.') || addr.startsWith('/ip6/::1/')
}

// The node's IP for its record: the first routable IPv4 it listens on, else the
// first non-internal interface address, else loopback.
export function pickIp (addrs: string[]): string {
  const ips = addrs.map((a) => /^\/ip[46]\/([^/]+)\//.exec(a)?.[1]).filter((ip): ip is string => ip !== undefined)
  const routable = ips.find((ip) => ip !== '0.0.0.0' && ip !== '::' && !ip.startsWith('127.') && ip !== '::1')
  if (routable !== undefined) return routable
  if (ips.some((ip) => ip === '0.0.0.0' || ip === '::')) {
    for (const list of Object.values(networkInterfaces())) {
      const found = list?.find((i) => i.family === 'IPv4' && !i.internal)
      if (found !== undefined) return found.address
    }
  }
  return ips[0] ?? '127.0.0.1'
}

export function advertisedHttp (url: string, ip: string): string {
  return url.replace(/^(https?):\/\/(0\.0\.0\.0|\[::\])/, (_all, scheme: string) => `${scheme}://${ip.includes(':') ? `[${ip}]` : ip}`)
}
