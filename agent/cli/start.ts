// `edge-agent start`: run an agent until SIGINT/SIGTERM, then leave gracefully.

import { readFileSync } from 'node:fs'
import { pino } from 'pino'
import { buildConfig, ConfigError, DEFAULT_HTTP, DEFAULT_LISTEN, PEER_LIMITS_DEFAULT as P, TERMINAL_LIMITS_DEFAULT as L } from '../config.ts'
import type { RawSettings } from '../config.ts'
import { Agent } from '../runtime/agent.ts'
import { parseFlags, UsageError } from './args.ts'

export const START_HELP = `Usage: edge-agent start [options]

Runs an edge agent: joins the cluster, gossips this node's record (IP, services,
load, position), watches every member (SWIM with Lifeguard), holds terminals'
sessions (owner or standby, replicated, taken over when an owner dies) and serves
the HTTP API (members, sessions, metrics).
SIGINT/SIGTERM make it announce a graceful leave and stop. SIGHUP (systemctl
reload) reads the config file and the files it names again and applies the TLS
certificate and key, the allowlist, the trusted deployer keys and the log level;
a bad file changes nothing, and other changed keys need a restart.

Options (a flag overrides --config, which overrides the profile's defaults):
  --listen <multiaddr,…>     libp2p listen addresses (default ${DEFAULT_LISTEN}).
                             On 0.0.0.0 the record follows the box's addresses,
                             checked every loadSampleIntervalMs (1000 ms)
  --bootstrap <multiaddr,…>  agents to join through, e.g. /ip4/10.0.0.5/tcp/7701
                             (default: none; start the first agent without it).
                             Until one of them answers, session lookups and
                             opens at this agent get 503 (not joined yet)
  --http <host:port>         HTTP API address (default ${DEFAULT_HTTP}; port 0 picks one)
  --services <list>          services offered, each name[@version][:capacity],
                             e.g. log,kv@2:500 (default: none; version 1, capacity 100)
  --position <lat,lon>       this box's position in degrees (default: unknown)
  --region <name>            region label (default: empty)
  --zone <name>              zone label (default: empty)
  --data-dir <path>          identity key, incarnation and sessions.db
                             (default $XDG_STATE_HOME/edge-agent or ~/.local/state/edge-agent)
  --cluster <name>           cluster name; agents of other clusters are ignored (default "default")
  --profile <lan|wan|local>  failure-detection timings (default lan: a probe every
                             1.25 s, 100 ms probe timeout, 500 ms minimum suspicion:
                             dead within ~1 s of a crash, ~2 s of a freeze)
  --config <file.json>       settings file (keys: listen, bootstrap, http, services,
                             position, region, zone, dataDir, cluster, profile,
                             logLevel, json, loadSampleIntervalMs, leaveDrainMs,
                             dialTimeoutMs, membership{…timings in ms},
                             sessions{…}, replicas, writeConcern, onPromote,
                             onDemote, singletons,
                             clusterKey, clusterKeyPrevious, allowPeers,
                             allowPeersFile, tlsCert,
                             tlsKey, limits{terminalRequestsPerS,
                             terminalBytesPerS, sessionRequestsPerS,
                             sessionBytesPerS, peerMalformedFramesPerS,
                             peerBlockMs}, trustedDeployers,
                             packagePullIntervalMs, packageRetireAfterMs,
                             serviceRequestLimit)
  --replicas <n>             standbys per session, R (default 2: an owner and two standbys)
  --write-concern <all|majority>
                             a delta is acknowledged once every live member of its
                             group holds it durably (all, default; always at least
                             a majority) or once a majority does
  --on-promote <command>     shell command run when this agent becomes a session's
                             owner; env EDGE_SESSION_ID, EDGE_SERVICE, EDGE_EPOCH,
                             EDGE_ROLE=owner, EDGE_PREVIOUS_OWNER, EDGE_AGENT_ID
  --on-demote <command>      shell command run when it stops being one (EDGE_ROLE=standby)
  --singletons <a,b>         services with one cluster-wide session, owned by the
                             service's leader (e.g. an address to move with hooks)
  --cluster-key <file>       private cluster: accept connections only from agents
                             holding this key (edge-agent keygen --cluster writes
                             one); without it the cluster is open and the agent
                             warns at start. Also decrypts packages deployed with
                             edge-agent deploy --cluster-key (same key)
  --cluster-key-previous <file,…>
                             keys this agent still accepts besides --cluster-key
                             (at most 4), while the cluster changes its key: see
                             "Changing the cluster key" in the README; SIGHUP
                             applies a change of either flag's files
  --allow-peers <id,…>       accept connections only from these peer ids (and the
                             file's); others are refused and counted (default: any)
  --allow-peers-file <file>  the same, one peer id per line, # comments
  --tls-cert <file>          PEM certificate (chain) for the HTTP API: HTTPS only
  --tls-key <file>           its PEM private key (both or neither)
  --trusted-deployers <file|key,…>
                             deployer public keys whose packages this agent accepts:
                             a file (one key per line, or a key file written by
                             edge-agent keygen --deployer) or 64-hex keys separated
                             by commas (default: none; every package is refused)
  --package-pull-interval-ms <ms>
                             how often the agent pulls a random peer's package
                             index to catch up on missed deploys (default 2000;
                             backs off to 128 × this while nothing is new)
  --package-retire-after-ms <ms>
                             a package this agent runs but is no longer a target
                             of (churn, load) and nobody asked for here in this
                             long stops being offered, and stops running once
                             no copy of its sessions is held here (default
                             300000; 0 keeps every package running)
  --service-request-limit <n>
                             requests by URL (/{service}/…) in flight before this
                             agent redirects (307) to a less busy agent of its
                             region (default 64)
  --log-level <level>        fatal|error|warn|info|debug|trace|silent (default info)
  --json                     machine-readable events on stdout, one JSON object per
                             line; the first is {"event":"started","id",…,"http"}
  --fault-injection          TEST FACILITY, off by default; never use it in
                             production: adds POST/GET/DELETE /v1/faults to the
                             HTTP API, whose rules drop or delay this agent's
                             messages (partitions, loss, delay, slow node) for
                             \`edge-agent sim --real\` and tests. Logs a warning at
                             start. Only this flag turns it on (no config key).
  -h, --help                 show this help

The HTTP API is rate limited (429 with Retry-After): per terminal (client IP;
not loopback) ${L.terminalRequestsPerS} requests/s and ${L.terminalBytesPerS / 1048576} MiB/s, per session ${L.sessionRequestsPerS} requests/s and ${L.sessionBytesPerS / 1048576} MiB/s,
bursts twice that. A peer that sends over ${P.peerMalformedFramesPerS} malformed frames/s (burst twice that) is
hung up on and its connections refused for ${P.peerBlockMs} ms. Change any of these with
the config file's "limits" object.
Logs are structured JSON (pino) on stderr.
A slow disk (the session store's median fsync over 5 s at sessions.slowFsyncMs,
default 100 ms, or more) is logged as a warning: the agent then hands the
sessions it owns to members that keep up, and no owner waits for it more than
sessions.memberLagMs (default 100 ms) per write.
Exit codes: 0 after a clean stop, 1 when the agent cannot start, 2 on a usage error,
3 when its session store failed (a full disk, an I/O error): it left its cluster
first, its groups took its sessions over, and a restart rejoins once the disk
can be written again; 4 when another node uses its identity (two boxes given one
data directory): give this box its own by emptying its data directory.`

// The agent stopped itself (Agent.halted): its session store failed (it left
// its cluster first), or another node uses its identity.
export const EXIT_STORE_FAILED = 3
export const EXIT_IDENTITY_CONFLICT = 4

const FLAGS = {
  listen: { type: 'string' },
  bootstrap: { type: 'string' },
  http: { type: 'string' },
  services: { type: 'string' },
  position: { type: 'string' },
  region: { type: 'string' },
  zone: { type: 'string' },
  'data-dir': { type: 'string' },
  cluster: { type: 'string' },
  profile: { type: 'string' },
  config: { type: 'string' },
  'log-level': { type: 'string' },
  replicas: { type: 'string' },
  'write-concern': { type: 'string' },
  'on-promote': { type: 'string' },
  'on-demote': { type: 'string' },
  singletons: { type: 'string' },
  'cluster-key': { type: 'string' },
  'cluster-key-previous': { type: 'string' },
  'allow-peers': { type: 'string' },
  'allow-peers-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'trusted-deployers': { type: 'string' },
  'package-pull-interval-ms': { type: 'string' },
  'package-retire-after-ms': { type: 'string' },
  'service-request-limit': { type: 'string' },
  json: { type: 'boolean' },
  'fault-injection': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

function readConfigFile (path: string): RawSettings {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must hold a JSON object`)
  return parsed as RawSettings
}

// --trusted-deployers: a list of keys, or a file of keys (one a line), or a key
// file from edge-agent keygen --deployer (its public half is taken).
export function readTrustedDeployers (value: string): string {
  if (/^[0-9a-fA-F]{64}(\s*,\s*[0-9a-fA-F]{64})*$/.test(value.trim())) return value
  let text: string
  try {
    text = readFileSync(value, 'utf8')
  } catch (error) {
    throw new UsageError(`--trusted-deployers ${value}: neither 64-hex keys nor a readable file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  try {
    const parsed = JSON.parse(text) as { publicKey?: unknown }
    if (typeof parsed.publicKey === 'string') return parsed.publicKey
  } catch {
    // Not JSON: a list of keys.
  }
  return text
}

export async function runStart (argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, FLAGS, 0)
  if (values.help === true) {
    console.log(START_HELP)
    return 0
  }
  // The configuration from the flags and the file they name, read again on a
  // reload (SIGHUP): files named by either are read afresh.
  const configNow = (): ReturnType<typeof buildConfig> => {
    const flags: RawSettings = {
      listen: values.listen,
      bootstrap: values.bootstrap,
      http: values.http,
      services: values.services,
      position: values.position,
      region: values.region,
      zone: values.zone,
      dataDir: values['data-dir'],
      cluster: values.cluster,
      profile: values.profile,
      logLevel: values['log-level'],
      replicas: values.replicas,
      writeConcern: values['write-concern'],
      onPromote: values['on-promote'],
      onDemote: values['on-demote'],
      singletons: values.singletons,
      clusterKey: values['cluster-key'],
      clusterKeyPrevious: values['cluster-key-previous'],
      allowPeers: values['allow-peers'],
      allowPeersFile: values['allow-peers-file'],
      tlsCert: values['tls-cert'],
      tlsKey: values['tls-key'],
      trustedDeployers: typeof values['trusted-deployers'] === 'string' ? readTrustedDeployers(values['trusted-deployers']) : undefined,
      packagePullIntervalMs: values['package-pull-interval-ms'],
      packageRetireAfterMs: values['package-retire-after-ms'],
      serviceRequestLimit: values['service-request-limit'],
      json: values.json
    }
    for (const key of Object.keys(flags)) if (flags[key] === undefined) delete flags[key]
    try {
      return buildConfig(typeof values.config === 'string' ? readConfigFile(values.config) : {}, flags)
    } catch (error) {
      if (error instanceof ConfigError) throw new UsageError(error.message)
      throw error
    }
  }
  const config = configNow()
  const log = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }))
  // A reader of stdout that goes away (a pipe to a tool that exited) must not
  // take the agent down with it: the write's EPIPE comes as an 'error' event,
  // which unhandled would end the process. The agent says so once and carries on.
  let stdoutOpen = true
  process.stdout.on('error', (error: Error) => {
    if (!stdoutOpen) return
    stdoutOpen = false
    log.warn({ error: error.message }, 'stdout is closed: no more lines are written there; the agent carries on')
  })
  const output = { line: config.json ? (o: Record<string, unknown>) => { if (stdoutOpen) process.stdout.write(JSON.stringify(o) + '\n') } : () => {} }
  let agent: Agent
  try {
    agent = await Agent.start(config, log, output, { faultInjection: values['fault-injection'] === true })
  } catch (error) {
    log.fatal({ error: (error as Error).message }, 'cannot start')
    process.stderr.write(`edge-agent start: ${(error as Error).message}\n`)
    return 1
  }
  if (!config.json) {
    if (stdoutOpen) process.stdout.write(`edge-agent ${agent.id} started\n  libp2p: ${agent.addrs.join(' ')}\n  http:   ${agent.httpUrl}\n`)
  }
  return await new Promise<number>((resolve) => {
    let signals = 0
    const onSignal = (signal: string): void => {
      signals++
      if (signals > 1) {
        log.warn({ signal }, 'second signal: stopping without waiting')
        process.exit(130)
      }
      log.info({ signal }, 'leaving the cluster')
      agent.stop({ leave: true }).then(() => resolve(0), (error) => {
        log.error({ err: error }, 'error while stopping')
        resolve(1)
      })
    }
    process.on('SIGINT', () => onSignal('SIGINT'))
    process.on('SIGTERM', () => onSignal('SIGTERM'))
    // `systemctl reload`: what can change while running is applied; a file
    // that does not read or check out changes nothing, and the log says why.
    process.on('SIGHUP', () => {
      try {
        agent.reload(configNow())
      } catch (error) {
        log.error({ error: (error as Error).message }, 'reload refused: nothing changed')
      }
    })
    void agent.halted.then((halt) => {
      if (halt.kind === 'store-failed') {
        process.stderr.write(`edge-agent start: the session store failed (${halt.reason}); this agent left its cluster and stopped\n`)
        resolve(EXIT_STORE_FAILED)
      } else {
        process.stderr.write(`edge-agent start: ${halt.reason}\n`)
        resolve(EXIT_IDENTITY_CONFLICT)
      }
    })
  })
}
