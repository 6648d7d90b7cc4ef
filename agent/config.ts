// The agent's configuration: defaults, the config file, and flags, merged in that
// order (a flag beats the file, the file beats the profile's defaults) and checked
// once, with sentences a user can act on. Pure: reading the file is the caller's.

import { homedir } from 'node:os'
import { join } from 'node:path'
import { checkMembershipConfig, MEMBERSHIP_KEYS, membershipProfile, PROFILE_NAMES } from './membership/config.ts'
import type { MembershipConfig, ProfileName } from './membership/config.ts'
import { checkSessionsConfig, SESSIONS_KEYS, sessionsProfile } from './sessions/config.ts'
import type { SessionsConfig } from './sessions/config.ts'
import type { Position, ServiceOffer } from '../protocol/messages.ts'
import { MAX_REGION_CHARS, MAX_SERVICE_CAPACITY, MAX_SERVICES } from '../protocol/limits.ts'
import { MAX_PREVIOUS_KEYS } from './net/cluster-key.ts'

export type AgentConfig = {
  // libp2p listen multiaddrs. Default: all interfaces, TCP port 7701.
  listen: string[]
  // Multiaddrs of agents to join through (any member will do). Default: none.
  bootstrap: string[]
  // The HTTP API's bind address. Default: 127.0.0.1:7700 (loopback); port 0 picks one.
  http: { host: string; port: number }
  services: ServiceOffer[]
  position: Position | null
  region: string
  zone: string
  // Identity key, incarnation and (later) session state. Default:
  // $XDG_STATE_HOME/edge-agent, else ~/.local/state/edge-agent.
  dataDir: string
  // Agents only talk to agents of the same cluster name (gossip topic, protocol ids).
  cluster: string
  profile: ProfileName
  membership: MembershipConfig
  sessions: SessionsConfig
  // Shell commands run when this agent becomes (onPromote) or stops being
  // (onDemote) a session's owner; null for none.
  onPromote: string | null
  onDemote: string | null
  // Services with one cluster-wide session whose owner is the service's leader.
  singletons: string[]
  // How often load (event-loop utilisation, CPU, sessions) is sampled, ms.
  loadSampleIntervalMs: number
  // How long a leaving agent keeps running so its announcement drains, ms.
  leaveDrainMs: number
  // Dial timeout for libp2p streams, ms.
  dialTimeoutMs: number
  // Deployer public keys (64 hex characters each) whose packages this agent
  // accepts; empty: it accepts none (M3.1). Default: none.
  trustedDeployers: string[]
  // How often the agent pulls a random peer's package index (M3.5), ms. Default 2,000.
  packagePullIntervalMs: number
  packageRetireAfterMs: number
  // Requests by URL (/{service}/…) in flight at once before this agent answers
  // 307 to a less busy agent of its region (M3.4). Default 64.
  serviceRequestLimit: number
  json: boolean
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  // A swarm key file (edge-agent keygen --cluster): only agents holding the same
  // key can connect. null: the cluster is open (the agent warns at start).
  clusterKey: string | null
  // Swarm key files of keys this agent still accepts from peers besides
  // clusterKey, while the cluster changes its key (at most 4; needs clusterKey).
  clusterKeyPrevious: string[]
  // Peer ids allowed to connect, from the list and from the file (one id per
  // line, '#' comments); both null: any peer (holding the key) may connect.
  allowPeers: string[] | null
  allowPeersFile: string | null
  // PEM files: with both, the HTTP API speaks HTTPS only.
  tlsCert: string | null
  tlsKey: string | null
  // Rate limits on the HTTP API, and when a peer is cut off (see README, "Limits").
  limits: Limits
}

// Token buckets on the HTTP API. A terminal is a client IP address (every request
// counts); a session is a session id (requests naming it). The burst is twice
// the rate: a terminal that was quiet for 2 s may send that much at once.
export type TerminalLimits = {
  terminalRequestsPerS: number
  terminalBytesPerS: number
  sessionRequestsPerS: number
  sessionBytesPerS: number
}

export const TERMINAL_LIMITS_DEFAULT: TerminalLimits = {
  // A terminal behind carrier NAT shares its address with others: generous.
  terminalRequestsPerS: 1_000,
  terminalBytesPerS: 8 * 1024 * 1024,
  // One session appends one delta at a time; a few hundred per second is what a
  // fast owner on a LAN acknowledges.
  sessionRequestsPerS: 200,
  sessionBytesPerS: 1024 * 1024
}

// A peer that keeps sending frames no agent sends (undecodable, of the wrong
// type, statements in another's name, broken framing) past a token bucket of
// `peerMalformedFramesPerS` (burst twice that) is hung up on and refused, both
// ways, for `peerBlockMs` (0: never). Rate drops of well-formed frames do not
// count: a busy honest peer is slowed, never cut off.
export type PeerLimits = {
  peerMalformedFramesPerS: number
  peerBlockMs: number
}

export const PEER_LIMITS_DEFAULT: PeerLimits = {
  // An agent of another version may send a frame this one cannot read now and
  // then; a flood sends thousands a second.
  peerMalformedFramesPerS: 100,
  peerBlockMs: 60_000
}

export type Limits = TerminalLimits & PeerLimits
const LIMIT_KEYS = [...Object.keys(TERMINAL_LIMITS_DEFAULT), ...Object.keys(PEER_LIMITS_DEFAULT)]

export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/7701'
export const DEFAULT_HTTP = '127.0.0.1:7700'
export const DEFAULT_SERVICE_VERSION = '1'
export const DEFAULT_SERVICE_CAPACITY = 100
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export function defaultDataDir (env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME !== undefined && env.XDG_STATE_HOME !== '' ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state')
  return join(base, 'edge-agent')
}

export function defaultConfig (profile: ProfileName = 'lan'): AgentConfig {
  return {
    listen: [DEFAULT_LISTEN],
    bootstrap: [],
    http: parseHostPort(DEFAULT_HTTP, 'http'),
    services: [],
    position: null,
    region: '',
    zone: '',
    dataDir: defaultDataDir(),
    cluster: 'default',
    profile,
    membership: membershipProfile(profile),
    sessions: sessionsProfile(profile),
    onPromote: null,
    onDemote: null,
    singletons: [],
    loadSampleIntervalMs: 1_000,
    leaveDrainMs: 500,
    dialTimeoutMs: 2_000,
    trustedDeployers: [],
    packagePullIntervalMs: 2_000,
    packageRetireAfterMs: 300_000,
    serviceRequestLimit: 64,
    json: false,
    logLevel: 'info',
    clusterKey: null,
    clusterKeyPrevious: [],
    allowPeers: null,
    allowPeersFile: null,
    tlsCert: null,
    tlsKey: null,
    limits: { ...TERMINAL_LIMITS_DEFAULT, ...PEER_LIMITS_DEFAULT }
  }
}

// ---- value parsers: each throws ConfigError naming the setting ------------

export function parseHostPort (text: string, what: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim())
  const port = match === null ? NaN : Number(match[3])
  if (match === null || port > 65535) throw new ConfigError(`'${what}' must be host:port with a port of 0-65535 (got "${text}")`)
  return { host: match[1] ?? match[2], port }
}

export function parsePosition (value: unknown, what = 'position'): Position {
  let lat: number
  let lon: number
  if (typeof value === 'string') {
    const parts = value.split(',').map((part) => part.trim())
    // Decimal degrees only: Number() also took "0x10" and "0b101" (16, 5).
    if (parts.length !== 2 || parts.some((part) => !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(part))) throw new ConfigError(`'${what}' must be "lat,lon" in decimal degrees (got "${value}")`)
    lat = Number(parts[0])
    lon = Number(parts[1])
  } else if (isObject(value) && Object.keys(value).every((k) => k === 'lat' || k === 'lon') && typeof value.lat === 'number' && typeof value.lon === 'number') {
    lat = value.lat
    lon = value.lon
  } else {
    throw new ConfigError(`'${what}' must be "lat,lon" or {"lat":…,"lon":…} (got ${JSON.stringify(value)})`)
  }
  if (!Number.isFinite(lat) || lat < -90 || lat > 90) throw new ConfigError(`'${what}' latitude must be between -90 and 90 (got ${lat})`)
  if (!Number.isFinite(lon) || lon < -180 || lon > 180) throw new ConfigError(`'${what}' longitude must be between -180 and 180 (got ${lon})`)
  return { lat, lon }
}

// "name[@version][:capacity]", e.g. "log", "kv@2", "video@1.3:20".
export function parseService (value: unknown): ServiceOffer {
  if (isObject(value)) {
    // A typo ("capacty") was ignored and the default used: keys and types are checked.
    const unknown = Object.keys(value).find((k) => k !== 'name' && k !== 'version' && k !== 'capacity')
    if (unknown !== undefined) throw new ConfigError(`unknown key '${unknown}' in service ${JSON.stringify(value)} (keys: name, version, capacity)`)
    if (typeof value.name !== 'string') throw new ConfigError(`a service needs a 'name' string (got ${JSON.stringify(value)})`)
    if (value.version !== undefined && typeof value.version !== 'string') throw new ConfigError(`service version of ${value.name} must be a string (got ${JSON.stringify(value.version)})`)
    if (value.capacity !== undefined && typeof value.capacity !== 'number') throw new ConfigError(`service capacity of ${value.name} must be a number (got ${JSON.stringify(value.capacity)})`)
    return checkService({
      name: value.name,
      version: value.version ?? DEFAULT_SERVICE_VERSION,
      capacity: value.capacity ?? DEFAULT_SERVICE_CAPACITY
    })
  }
  const match = typeof value === 'string' ? /^([^@:]+)(?:@([^:]+))?(?::(\d+))?$/.exec(value.trim()) : null
  if (match === null) throw new ConfigError(`service must be name[@version][:capacity] (got ${JSON.stringify(value)})`)
  return checkService({
    name: match[1],
    version: match[2] ?? DEFAULT_SERVICE_VERSION,
    capacity: match[3] === undefined ? DEFAULT_SERVICE_CAPACITY : Number(match[3])
  })
}

function checkService (service: ServiceOffer): ServiceOffer {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(service.name)) {
    throw new ConfigError(`service name must be 1-64 lowercase letters, digits, '.', '_' or '-' (got "${service.name}")`)
  }
  if (!/^[0-9A-Za-z.+_-]{1,32}$/.test(service.version)) throw new ConfigError(`service version of ${service.name} is invalid (got "${service.version}")`)
  if (!Number.isInteger(service.capacity) || service.capacity < 0 || service.capacity > MAX_SERVICE_CAPACITY) {
    throw new ConfigError(`service capacity of ${service.name} must be a whole number of sessions, 0-${MAX_SERVICE_CAPACITY} (got ${service.capacity})`)
  }
  return service
}

export function parseServices (value: unknown): ServiceOffer[] {
  const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter((s) => s !== '') : value
  if (!Array.isArray(items)) throw new ConfigError(`'services' must be a list (got ${JSON.stringify(value)})`)
  const services = items.map(parseService)
  if (services.length > MAX_SERVICES) throw new ConfigError(`at most ${MAX_SERVICES} services (got ${services.length})`)
  const names = new Set<string>()
  for (const service of services) {
    if (names.has(service.name)) throw new ConfigError(`service ${service.name} is listed twice`)
    names.add(service.name)
  }
  return services
}

export function parseMultiaddrList (value: unknown, what: string): string[] {
  const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter((s) => s !== '') : value
  if (!Array.isArray(items) || items.some((item) => typeof item !== 'string')) throw new ConfigError(`'${what}' must be a list of multiaddrs (got ${JSON.stringify(value)})`)
  for (const item of items as string[]) {
    if (!item.startsWith('/') || /\s/.test(item)) throw new ConfigError(`'${what}' entry is not a multiaddr: "${item}" (expected e.g. /ip4/10.0.0.5/tcp/7701)`)
    // A peer id after /p2p/ is base58btc (12D3KooW…, Qm…) or a base32 CID (b…):
    // "/p2p/bogus" was taken and dialled for ever.
    const peer = /\/p2p\/([^/]*)/.exec(item)?.[1]
    if (peer !== undefined && !/^([1-9A-HJ-NP-Za-km-z]{46,100}|b[a-z2-7]{50,120})$/.test(peer)) throw new ConfigError(`'${what}' entry "${item}" has no peer id after /p2p/ (expected e.g. /p2p/12D3KooW…)`)
  }
  return items as string[]
}

function parseLabel (value: unknown, what: string): string {
  if (typeof value !== 'string' || !new RegExp(`^[A-Za-z0-9._-]{0,${MAX_REGION_CHARS}}$`).test(value)) {
    throw new ConfigError(`'${what}' must be up to ${MAX_REGION_CHARS} letters, digits, '.', '_' or '-' (got ${JSON.stringify(value)})`)
  }
  return value
}

function parseProfile (value: unknown): ProfileName {
  if (typeof value !== 'string' || !(PROFILE_NAMES as readonly string[]).includes(value)) {
    throw new ConfigError(`'profile' must be one of ${PROFILE_NAMES.join(', ')} (got ${JSON.stringify(value)})`)
  }
  return value as ProfileName
}

function parseWhole (value: unknown, what: string, min: number, max: number, unit: string): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw new ConfigError(`'${what}' must be a whole number${unit}, ${min}-${max} (got ${JSON.stringify(value)})`)
  return n
}

function parseLimit (key: string, value: unknown): number {
  if (key === 'peerBlockMs') return parseWholeMs(value, `limits.${key}`, 0, 86_400_000)
  const unit = key.endsWith('BytesPerS') ? ' of bytes/s' : key === 'peerMalformedFramesPerS' ? ' of frames/s' : ' of requests/s'
  return parseWhole(value, `limits.${key}`, 1, 1_000_000_000, unit)
}

function parseWholeMs (value: unknown, what: string, min: number, max: number): number {
  return parseWhole(value, what, min, max, ' of ms')
}

// Deployer public keys: a list or a comma/newline-separated string of 64 hex
// characters each ('#' starts a comment line).
export function parseDeployerKeys (value: unknown): string[] {
  const items = typeof value === 'string' ? value.split(/[\n,]/) : value
  if (!Array.isArray(items)) throw new ConfigError(`'trustedDeployers' must be a list of deployer public keys (got ${JSON.stringify(value)})`)
  const keys: string[] = []
  for (const item of items) {
    const key = String(item).trim().toLowerCase()
    if (key === '' || key.startsWith('#')) continue
    if (!/^[0-9a-f]{64}$/.test(key)) throw new ConfigError(`'trustedDeployers': ${JSON.stringify(String(item).trim().slice(0, 80))} is not a deployer public key (64 hex characters, as edge-agent keygen --deployer prints)`)
    keys.push(key)
  }
  return [...new Set(keys)]
}

function parseCommand (value: unknown, what: string): string | null {
  if (value === null || value === '') return null
  if (typeof value !== 'string') throw new ConfigError(`'${what}' must be a shell command (got ${JSON.stringify(value)})`)
  return value
}

function parsePath (value: unknown, what: string): string | null {
  if (value === null || value === '') return null
  if (typeof value !== 'string') throw new ConfigError(`'${what}' must be a file path (got ${JSON.stringify(value)})`)
  return value
}

// File paths: a list, or one string of them separated by commas.
function parsePathList (value: unknown, what: string): string[] {
  if (value === null) return []
  const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter((s) => s !== '') : value
  if (!Array.isArray(items) || items.some((item) => typeof item !== 'string' || item === '')) throw new ConfigError(`'${what}' must be a list of file paths (got ${JSON.stringify(value)})`)
  return items as string[]
}

// Peer ids as base58btc text (12D3KooW… for Ed25519, Qm… for others); the
// transport parses each again and refuses a malformed one by name.
export function parsePeerList (value: unknown, what: string): string[] {
  const items = typeof value === 'string' ? value.split(/[\s,]+/).filter((s) => s !== '') : value
  if (!Array.isArray(items) || items.some((item) => typeof item !== 'string')) throw new ConfigError(`'${what}' must be a list of peer ids (got ${JSON.stringify(value)})`)
  for (const item of items as string[]) {
    if (!/^[1-9A-HJ-NP-Za-km-z]{40,128}$/.test(item)) throw new ConfigError(`'${what}' entry is not a peer id: ${JSON.stringify(item)} (expected e.g. 12D3KooW…)`)
  }
  return items as string[]
}

// An allowlist file: one peer id per line; blank lines and '#' comments ignored.
export function parsePeerListFile (text: string, path: string): string[] {
  const ids = text.split(/\r?\n/).map((line) => line.replace(/#.*$/, '').trim()).filter((line) => line !== '')
  try {
    return parsePeerList(ids, 'allowPeersFile')
  } catch (error) {
    throw new ConfigError(`allowlist file ${path}: ${(error as Error).message}`)
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// ---- merging ----------------------------------------------------------------

// Settings as they come from a config file or from flags: unparsed, by key.
export type RawSettings = Record<string, unknown>

// Settings of earlier versions, with what to write instead: an old config file
// is refused with a sentence that says how to fix it.
const REPLACED_MEMBERSHIP_KEYS: Record<string, string> = {
  suspicionMult: "the minimum suspicion timeout is now 'suspicionMinMs' (ms, × log10 N above 10 members; it no longer scales with probeIntervalMs), and the confirmations that reach it 'suspicionConfirmations' (the old suspicionMult − 2)"
}

const SETTERS: Record<string, (config: AgentConfig, value: unknown) => void> = {
  listen: (c, v) => { c.listen = parseMultiaddrList(v, 'listen') },
  bootstrap: (c, v) => { c.bootstrap = parseMultiaddrList(v, 'bootstrap') },
  http: (c, v) => {
    if (typeof v !== 'string') throw new ConfigError(`'http' must be "host:port" (got ${JSON.stringify(v)})`)
    c.http = parseHostPort(v, 'http')
  },
  services: (c, v) => { c.services = parseServices(v) },
  position: (c, v) => { c.position = v === null ? null : parsePosition(v) },
  region: (c, v) => { c.region = parseLabel(v, 'region') },
  zone: (c, v) => { c.zone = parseLabel(v, 'zone') },
  dataDir: (c, v) => {
    if (typeof v !== 'string' || v === '') throw new ConfigError(`'dataDir' must be a directory path (got ${JSON.stringify(v)})`)
    c.dataDir = v
  },
  cluster: (c, v) => { c.cluster = parseLabel(v, 'cluster') || 'default' },
  loadSampleIntervalMs: (c, v) => { c.loadSampleIntervalMs = parseWholeMs(v, 'loadSampleIntervalMs', 50, 3_600_000) },
  leaveDrainMs: (c, v) => { c.leaveDrainMs = parseWholeMs(v, 'leaveDrainMs', 0, 60_000) },
  dialTimeoutMs: (c, v) => { c.dialTimeoutMs = parseWholeMs(v, 'dialTimeoutMs', 50, 600_000) },
  trustedDeployers: (c, v) => { c.trustedDeployers = parseDeployerKeys(v) },
  packagePullIntervalMs: (c, v) => { c.packagePullIntervalMs = parseWholeMs(v, 'packagePullIntervalMs', 50, 3_600_000) },
  packageRetireAfterMs: (c, v) => { c.packageRetireAfterMs = parseWholeMs(v, 'packageRetireAfterMs', 0, 604_800_000) },
  serviceRequestLimit: (c, v) => { c.serviceRequestLimit = parseWhole(v, 'serviceRequestLimit', 0, 1_000_000, ' of requests') },
  json: (c, v) => {
    if (typeof v !== 'boolean') throw new ConfigError(`'json' must be true or false (got ${JSON.stringify(v)})`)
    c.json = v
  },
  logLevel: (c, v) => {
    if (typeof v !== 'string' || !(LOG_LEVELS as readonly string[]).includes(v)) throw new ConfigError(`'logLevel' must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(v)})`)
    c.logLevel = v as AgentConfig['logLevel']
  },
  sessions: (c, v) => {
    if (!isObject(v)) throw new ConfigError(`'sessions' must be an object of settings (got ${JSON.stringify(v)})`)
    for (const key of Object.keys(v)) {
      if (!SESSIONS_KEYS.includes(key)) throw new ConfigError(`unknown sessions setting '${key}' (known: ${SESSIONS_KEYS.join(', ')})`)
    }
    c.sessions = { ...c.sessions, ...v as Partial<SessionsConfig> }
  },
  replicas: (c, v) => { c.sessions = { ...c.sessions, replicas: parseWhole(v, 'replicas', 0, 8, ' of standbys') } },
  writeConcern: (c, v) => {
    if (v !== 'all' && v !== 'majority') throw new ConfigError(`'writeConcern' must be "all" or "majority" (got ${JSON.stringify(v)})`)
    c.sessions = { ...c.sessions, writeConcern: v }
  },
  onPromote: (c, v) => { c.onPromote = parseCommand(v, 'onPromote') },
  onDemote: (c, v) => { c.onDemote = parseCommand(v, 'onDemote') },
  singletons: (c, v) => { c.singletons = parseServices(v).map((s) => s.name) },
  clusterKey: (c, v) => { c.clusterKey = parsePath(v, 'clusterKey') },
  clusterKeyPrevious: (c, v) => { c.clusterKeyPrevious = parsePathList(v, 'clusterKeyPrevious') },
  allowPeers: (c, v) => { c.allowPeers = v === null ? null : parsePeerList(v, 'allowPeers') },
  allowPeersFile: (c, v) => { c.allowPeersFile = parsePath(v, 'allowPeersFile') },
  tlsCert: (c, v) => { c.tlsCert = parsePath(v, 'tlsCert') },
  tlsKey: (c, v) => { c.tlsKey = parsePath(v, 'tlsKey') },
  limits: (c, v) => {
    if (!isObject(v)) throw new ConfigError(`'limits' must be an object of rates (got ${JSON.stringify(v)})`)
    for (const [key, value] of Object.entries(v)) {
      if (!LIMIT_KEYS.includes(key)) throw new ConfigError(`unknown limits setting '${key}' (known: ${LIMIT_KEYS.join(', ')})`)
      c.limits = { ...c.limits, [key]: parseLimit(key, value) }
    }
  },
  membership: (c, v) => {
    if (!isObject(v)) throw new ConfigError(`'membership' must be an object of timings (got ${JSON.stringify(v)})`)
    for (const key of Object.keys(v)) {
      const replaced = REPLACED_MEMBERSHIP_KEYS[key]
      if (replaced !== undefined) throw new ConfigError(`membership setting '${key}' was replaced: ${replaced}`)
      if (!(MEMBERSHIP_KEYS as string[]).includes(key)) throw new ConfigError(`unknown membership setting '${key}' (known: ${MEMBERSHIP_KEYS.join(', ')})`)
    }
    c.membership = { ...c.membership, ...v as Partial<MembershipConfig> }
  }
}

export const SETTING_KEYS = ['profile', ...Object.keys(SETTERS)]

// Builds the configuration from the file's settings and then the flags'. The
// profile is resolved first (flag over file) since it supplies the defaults.
export function buildConfig (file: RawSettings, flags: RawSettings): AgentConfig {
  for (const [source, settings] of [['config file', file], ['flags', flags]] as const) {
    for (const key of Object.keys(settings)) {
      if (!SETTING_KEYS.includes(key)) throw new ConfigError(`unknown setting '${key}' in ${source}`)
    }
  }
  const profileValue = flags.profile ?? file.profile
  const config = defaultConfig(profileValue === undefined ? 'lan' : parseProfile(profileValue))
  for (const settings of [file, flags]) {
    for (const [key, value] of Object.entries(settings)) {
      if (key !== 'profile' && value !== undefined) SETTERS[key](config, value)
    }
  }
  const problems = [...checkMembershipConfig(config.membership), ...checkSessionsConfig(config.sessions).map((p) => `sessions: ${p}`)]
  if (problems.length > 0) throw new ConfigError(problems[0])
  if ((config.tlsCert === null) !== (config.tlsKey === null)) throw new ConfigError("'tlsCert' and 'tlsKey' go together: give both for HTTPS, or neither")
  if (config.clusterKeyPrevious.length > 0 && config.clusterKey === null) throw new ConfigError("'clusterKeyPrevious' needs 'clusterKey': the previous keys are accepted besides the cluster key, which agents dial under")
  if (config.clusterKeyPrevious.length > MAX_PREVIOUS_KEYS) throw new ConfigError(`'clusterKeyPrevious' names ${config.clusterKeyPrevious.length} files; at most ${MAX_PREVIOUS_KEYS}`)
  return config
}
