// `edge-agent deploy`, `edge-agent services` and `edge-agent keygen --deployer`:
// ship service code to the cluster by policy, see which versions run where, and
// make the deployer key that signs packages.

import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { buildBundle, deployerKeyFile, generateDeployerKey, MAX_BUNDLE_BYTES, packageKeyOf, parseDeployerKeyFile } from '../runtime/package.ts'
import { readClusterKeyFile } from '../net/cluster-key.ts'
import { parsePolicy, POLICY_HELP } from '../deploy/policy.ts'
import { parseFlags, UsageError } from './args.ts'
import { httpCall } from './http-call.ts'
import { readCa } from './session.ts'

const DEFAULT_AGENT = 'http://127.0.0.1:7700'
const DEFAULT_KEY = 'deployer.key'
const DEFAULT_TIMEOUT_MS = 10_000

export const DEPLOY_HELP = `Usage: edge-agent deploy <dir> --name <name> --policy <policy> [options]

Packs <dir> (a manifest.json {"name", "version", "entry"} and ES module code),
signs it with your deployer key and hands it to an agent, which pushes it to
the agents the policy names; those store it, run it and advertise name@version
in their record. Agents that miss the push catch up by pulling a peer's index
(every 2 s by default, backing off ×4 to 128 × that, 256 s, while nothing is
new). Prints {"name", "version", "hash", "targets", …} as JSON.

Policies:
  all                 every healthy agent
  nodes:<id,…>        the named agents
  regions:<a,…>       every agent of these regions (--region)
  hub-per-region      one data-centre agent per region: an agent whose --zone
                      starts with "dc" (else any agent of the region), the least
                      loaded under the load threshold, ties by id
  replicas:<n>        n agents under the load threshold, by rendezvous hashing
                      on the package name (stable as agents come and go)
  auto                every healthy agent under the load threshold

Options:
  --name <name>       the package name; must match the manifest's
  --policy <policy>   where it runs (default all)
  --key <file>        deployer key from edge-agent keygen --deployer (default ${DEFAULT_KEY})
  --to <url>          the agent's HTTP URL (default ${DEFAULT_AGENT}); any agent will do
  --cluster-key <file>
                      encrypt the package's code with a key derived from this
                      cluster key (edge-agent keygen --cluster): AES-256-GCM, key
                      by HKDF-SHA256. Only agents started with the same
                      --cluster-key can run it; others refuse it (reason
                      cluster-key). Name, version, policy and deployer stay
                      readable, and signed. Default: not encrypted
  --ca <file>         PEM certificate to trust for an https agent (its
                      --tls-cert, or the CA that signed it), besides the system's
  --timeout <ms>      give up after this long (default ${DEFAULT_TIMEOUT_MS})
  -h, --help          show this help

Agents accept only packages signed by a key in their --trusted-deployers.
A package may be at most ${MAX_BUNDLE_BYTES} bytes packed (gzip), 16 MiB unpacked.
Exit codes: 0 on success, 1 when the agent refuses or cannot be reached, 2 on a usage error.`

export const SERVICES_HELP = `Usage: edge-agent services [agent-url] [options]

Shows which versions of deployed services run where: asks the agent (default
${DEFAULT_AGENT}) for its member table and every member for its packages.
Prints one line per agent, or JSON with --json.

Options:
  --json              print {"agents": [{"id", "http", "running", "error"?}, …]}
  --ca <file>         PEM certificate to trust for https agents, besides the system's
  --timeout <ms>      per-agent timeout (default ${DEFAULT_TIMEOUT_MS})
  -h, --help          show this help`

function timeoutOf (value: string | boolean | undefined): number {
  if (value === undefined) return DEFAULT_TIMEOUT_MS
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--timeout must be a whole number of ms (got ${String(value)})`)
  return n
}

export async function runDeploy (argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    name: { type: 'string' }, policy: { type: 'string' }, key: { type: 'string' }, to: { type: 'string' }, timeout: { type: 'string' }, 'cluster-key': { type: 'string' }, ca: { type: 'string' }, help: { type: 'boolean', short: 'h' }
  }, 1)
  if (values.help === true) { console.log(DEPLOY_HELP); return 0 }
  const dir = positionals[0]
  if (dir === undefined) throw new UsageError('which directory? edge-agent deploy <dir> --name <name> --policy <policy>')
  if (typeof values.name !== 'string') throw new UsageError('--name is required')
  const policy = typeof values.policy === 'string' ? values.policy : 'all'
  const parsed = parsePolicy(policy)
  if (!parsed.ok) throw new UsageError(parsed.reason)
  const keyPath = typeof values.key === 'string' ? values.key : DEFAULT_KEY
  if (!existsSync(keyPath)) throw new UsageError(`no deployer key at ${keyPath}; make one with edge-agent keygen --deployer --out ${keyPath}`)
  let bundle: Uint8Array
  try {
    const key = parseDeployerKeyFile(readFileSync(keyPath, 'utf8'), keyPath)
    const clusterKey = values['cluster-key']
    const seal = typeof clusterKey === 'string' ? packageKeyOf(readClusterKeyFile(clusterKey, (message) => process.stderr.write(`edge-agent deploy: ${message}\n`))) : undefined
    bundle = buildBundle(dir, key, policy, Date.now(), values.name, seal).bundle
  } catch (error) {
    process.stderr.write(`edge-agent deploy: ${(error as Error).message}\n`)
    return 1
  }
  const to = typeof values.to === 'string' ? values.to.replace(/\/+$/, '') : DEFAULT_AGENT
  const ca = typeof values.ca === 'string' ? readCa(values.ca) : undefined
  try {
    const response = await httpCall(`${to}/v1/packages`, { method: 'POST', body: bundle, timeoutMs: timeoutOf(values.timeout), ...(ca === undefined ? {} : { ca }) })
    const body = parseBody(response.text)
    if (response.status !== 201) {
      process.stderr.write(`edge-agent deploy: ${to} refused the package (${response.status}): ${String(body?.error ?? response.text.slice(0, 200))}\n`)
      return 1
    }
    console.log(JSON.stringify({ ...body, bytes: bundle.length, encrypted: typeof values['cluster-key'] === 'string' }))
    return 0
  } catch (error) {
    process.stderr.write(`edge-agent deploy: cannot reach ${to}: ${reason(error)}\n`)
    return 1
  }
}

function parseBody (text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : null
  } catch {
    return null
  }
}

// An error's message with its code when the message lacks it (TLS: the
// certificate problem, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE; --ca fixes that).
function reason (error: unknown): string {
  const { message, code } = error as Error & { code?: string }
  const text = code !== undefined && !message.includes(code) ? `${message} (${code})` : message
  return /CERT|SIGNATURE|SELF_SIGNED|UNABLE_TO/.test(text) ? `${text}; for an agent with its own CA, pass --ca <file>` : text
}

type Member = { id: string; status: string; record?: { http?: string } | null; http?: string }

export async function runServices (argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { json: { type: 'boolean' }, timeout: { type: 'string' }, ca: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, 1)
  if (values.help === true) { console.log(SERVICES_HELP); return 0 }
  const base = (positionals[0] ?? DEFAULT_AGENT).replace(/\/+$/, '')
  const timeoutMs = timeoutOf(values.timeout)
  const ca = typeof values.ca === 'string' ? readCa(values.ca) : undefined
  const get = async (url: string): Promise<Record<string, unknown>> => {
    const response = await httpCall(url, { timeoutMs, ...(ca === undefined ? {} : { ca }) })
    const body = parseBody(response.text)
    if (response.status !== 200 || body === null) throw new Error(`answered ${response.status}${body === null ? ', not a JSON object' : `: ${String(body.error)}`}`)
    return body
  }
  let members: Member[]
  try {
    const body = await get(`${base}/v1/members`)
    if (!Array.isArray(body.members)) throw new Error('its answer has no members: is it an edge-agent?')
    members = (body.members as unknown[]).filter((m): m is Member => typeof m === 'object' && m !== null && typeof (m as Member).id === 'string')
  } catch (error) {
    process.stderr.write(`edge-agent services: cannot reach ${base}: ${reason(error)}\n`)
    return 1
  }
  const alive = members.filter((m) => m.status === 'alive')
  const agents = await Promise.all(alive.map(async (m) => {
    const http = m.http ?? m.record?.http ?? ''
    if (http === '') return { id: m.id, http, running: [], error: 'no HTTP address in its record' }
    try {
      const body = await get(`${http}/v1/packages`) as { running?: Array<{ name: string; version: string; hash: string }> }
      return { id: m.id, http, running: (Array.isArray(body.running) ? body.running : []).map((r) => ({ name: r.name, version: r.version, hash: r.hash })) }
    } catch (error) {
      return { id: m.id, http, running: [], error: reason(error) }
    }
  }))
  agents.sort((a, b) => a.id < b.id ? -1 : 1)
  if (values.json === true) {
    console.log(JSON.stringify({ agents }))
    return 0
  }
  for (const a of agents) {
    const list = a.running.length === 0 ? '-' : a.running.map((r) => `${r.name}@${r.version}`).join(' ')
    console.log(`${a.id}  ${a.http}  ${'error' in a ? `(${String(a.error)})` : list}`)
  }
  return 0
}

// `edge-agent keygen --deployer` (agent/cli/keygen.ts): a new Ed25519 key pair
// at `out`, never over an existing file; prints its public key.
export function writeDeployerKey (out: string): number {
  if (existsSync(out)) throw new UsageError(`${out} exists; keygen never overwrites a key (choose another --out)`)
  const key = generateDeployerKey()
  writeFileSync(out, deployerKeyFile(key), { mode: 0o600, flag: 'wx' })
  console.log(JSON.stringify({ publicKey: key.publicKey, file: out }))
  return 0
}

export const DEFAULT_DEPLOYER_KEY = DEFAULT_KEY

export { POLICY_HELP }
