// HTTP for deployed services (README, "Deploying service code"):
//   POST /v1/packages      a signed bundle (edge-agent deploy); 201 with its targets
//   GET  /v1/packages      what this agent runs and knows of (edge-agent services)
//   ANY  /{service}/…      the service's request handler, with the session's state
//                          when the request carries the session's token (M3.3);
//                          307 to a less busy agent of the region when this one is
//                          over its load or request limit (M3.4)

import type { IncomingMessage } from 'node:http'
import type { AgentConfig } from '../config.ts'
import { redirectTarget } from '../deploy/policy.ts'
import { BUILT_IN_SERVICES } from '../sessions/services.ts'
import { SERVICE_RETRY_MS } from '../sessions/deltas.ts'
import type { MemberDirectory } from '../sessions/types.ts'
import type { JsonValue } from '../../protocol/messages.ts'
import { jsonValueProblem } from '../../protocol/session-json.ts'
import type { DeployHost } from './deploy-host.ts'
import { unwrapState } from './deployed-service.ts'
import { continueBody } from './http-api.ts'
import type { HttpApi, Reply } from './http-api.ts'
import { MAX_BUNDLE_BYTES } from './package.ts'
import { hashToken } from './sessions-host.ts'
import type { SessionsHost } from './sessions-host.ts'

// A request body handed to a service's request handler.
export const MAX_SERVICE_BODY_BYTES = 64 * 1024
// /{service}/… where {service} is a package name; /v1/… and /metrics are the agent's.
const SERVICE_PATH = /^\/(?!v1(?:\/|$)|metrics$)([a-z0-9][a-z0-9._-]{0,63})(\/.*)?$/
// Marks a request an agent redirected (M3.4): the agent it lands on serves it
// even when it is busy too, so two busy agents never bounce a client between them.
export const REDIRECTED_PARAM = 'edge-redirected'
const STATUS_MIN = 200
const STATUS_MAX = 599
// How long a request by URL waits for its package's worker to load, ms (off
// the agent's thread); past it the request is 503, as a worker that crashed.
const URL_BOOT_WAIT_MS = 5_000

export type DeployRoutesParts = {
  deploy: DeployHost
  sessions: SessionsHost
  directory: MemberDirectory
  config: AgentConfig
  onRedirect: () => void
}

async function readBody (request: IncomingMessage, limit: number): Promise<Buffer | null> {
  const declared = Number(request.headers['content-length'] ?? 0)
  if (declared > limit) return null
  continueBody(request)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request) {
    size += (chunk as Buffer).length
    if (size > limit) return null
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

// 507 Insufficient Storage: the package is fine, this agent could not write it.
const REFUSAL_STATUS: Record<string, number> = { 'too-large': 413, untrusted: 403, 'bad-signature': 403, 'cluster-key': 403, storage: 507 }

export function registerDeployRoutes (http: HttpApi, parts: DeployRoutesParts): void {
  http.route('POST', /^\/v1\/packages$/, async (request) => {
    const body = await readBody(request, MAX_BUNDLE_BYTES)
    if (body === null) parts.deploy.countRefusal('too-large')
    if (body === null) return { status: 413, body: { error: `package exceeds the ${MAX_BUNDLE_BYTES}-byte limit`, refusal: 'too-large' } }
    const accepted = parts.deploy.deploy(body)
    if (!accepted.ok) return { status: REFUSAL_STATUS[accepted.refusal] ?? 400, body: { error: accepted.reason, refusal: accepted.refusal } }
    return { status: 201, body: { ...accepted.ref, entry: parts.directory.self, targets: accepted.targets } }
  })

  http.route('GET', /^\/v1\/packages$/, () => ({ status: 200, body: { id: parts.directory.self, ...parts.deploy.status() } }))

  let inFlight = 0
  const serve = async (request: IncomingMessage, params: string[], url: URL): Promise<Reply> => {
    const name = params[0]
    if (BUILT_IN_SERVICES.has(name)) return { status: 404, body: { error: `${name} is a built-in service; it has no URL handler (use /v1/sessions)` } }
    // A request with a session token belongs at its session's owner, where the
    // state is: it is never sent elsewhere for load (and a cross-origin redirect
    // would lose its Authorization header on the way).
    const sessionBound = /^Bearer\s+\S+$/i.test(request.headers.authorization ?? '')
    const busy = sessionBound || url.searchParams.has(REDIRECTED_PARAM) ? null : overLimit(parts, inFlight)
    if (busy !== null) {
      const redirect = redirectTo(parts, name, url)
      if (redirect !== null) return redirect
      // Nobody else in the region can serve: serving late beats refusing.
    }
    inFlight++
    try {
      return await handle(parts, request, name, params[1] ?? '/', url)
    } finally {
      inFlight--
    }
  }
  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) http.route(method, SERVICE_PATH, serve)
}

function overLimit (parts: DeployRoutesParts, inFlight: number): string | null {
  if (inFlight >= parts.config.serviceRequestLimit) return `${inFlight} requests in flight (limit ${parts.config.serviceRequestLimit})`
  const load = parts.directory.record(parts.directory.self)?.load.score ?? 0
  if (load >= parts.config.sessions.loadThreshold) return `load ${load} at or over ${parts.config.sessions.loadThreshold}`
  return null
}

function redirectTo (parts: DeployRoutesParts, name: string, url: URL): Reply | null {
  const self = parts.directory.record(parts.directory.self)
  if (self === null) return null
  const offering = parts.directory.alive().filter((r) => r.services.some((s) => s.name === name))
  const target = redirectTarget(offering, self, parts.config.sessions.loadThreshold)
  if (target === null) return null
  parts.onRedirect()
  const query = new URLSearchParams(url.searchParams)
  query.set(REDIRECTED_PARAM, '1')
  const location = `${target.http}${url.pathname}?${query.toString()}`
  return { status: 307, headers: { location }, body: { error: `this agent is over its limit; ${target.id} serves ${name}`, location } }
}

async function handle (parts: DeployRoutesParts, request: IncomingMessage, name: string, path: string, url: URL): Promise<Reply> {
  if (!(await parts.deploy.ensure(name))) return { status: 404, body: { error: `no service ${name}: not deployed, or no agent this one can reach holds its package` } }
  const service = parts.deploy.deployed(name)
  if (service === null) return { status: 404, body: { error: `no service ${name}` } }
  let state: JsonValue = null
  let version = service.newest()
  const token = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1]
  if (token !== undefined) {
    const sessionId = token.split('~')[0]
    // A token is "<sessionId>~<secret>": one of another service's session is a
    // token that does not open this one (401, as on every session route); one
    // that is not a token at all too (it was 400 "another service").
    if (!/^[A-Za-z0-9._:-]{1,128}~\S+$/.test(token)) return { status: 401, body: { error: 'the bearer token is not a session token (<sessionId>~<secret>, as an open returned it)' } }
    if (!sessionId.startsWith(`${name}:`)) return { status: 401, body: { error: `this token opens a session of another service than ${name}` } }
    const reply = await parts.sessions.request({ type: 'get', sessionId, tokenHash: hashToken(token) })
    if (reply.status === 307 && reply.location !== undefined) {
      // The owner holds the state: send the terminal there, same path.
      const owner = new URL(reply.location)
      return { status: 307, headers: { location: owner.origin + url.pathname + url.search }, body: { error: 'the session is owned by another agent', location: owner.origin + url.pathname + url.search } }
    }
    if (reply.status !== 200) return { status: reply.status, body: reply.body }
    const w = unwrapState(reply.body.state as JsonValue)
    state = w.state
    version = service.versions().find((v) => v.ref.version === w.version) ?? version
  }
  if (version === null) return { status: 404, body: { error: `no version of ${name} runs here` } }
  const raw = await readBody(request, MAX_SERVICE_BODY_BYTES)
  if (raw === null) return { status: 413, body: { error: `request body exceeds ${MAX_SERVICE_BODY_BYTES} bytes` } }
  const text = raw.toString('utf8')
  let body: unknown = text === '' ? null : text
  if (/json/.test(request.headers['content-type'] ?? '') && text !== '') {
    try { body = JSON.parse(text) } catch { return { status: 400, body: { error: 'the body is not valid JSON' } } }
    const shape = jsonValueProblem(body, MAX_SERVICE_BODY_BYTES)
    if (shape !== null) return { status: 400, body: { error: `the body ${shape}` } }
  }
  const query = Object.fromEntries([...url.searchParams].filter(([k]) => k !== REDIRECTED_PARAM))
  // A worker still loading (the package was just fetched, say) is waited for
  // here without blocking the agent; the call itself would not wait.
  await version.runner.whenLoaded(URL_BOOT_WAIT_MS)
  const result = version.runner.call('request', [{ method: request.method, path, query, body }, state])
  if (!result.ok) return result.unavailable === true ? { status: 503, headers: { 'retry-after': '1' }, body: { error: result.error, retryAfterMs: SERVICE_RETRY_MS } } : { status: 500, body: { error: result.error } }
  if (result.missing) return { status: 404, body: { error: `${name}@${version.ref.version} has no request handler (export request())` } }
  return toReply(result.value, `${name}@${version.ref.version}`)
}

export function toReply (value: unknown, label: string): Reply {
  // Nothing (undefined, a function, a symbol: null once through JSON) or a status
  // out of range was answered 200 as if all was well: the service's bug is a 500.
  if (value === null) return { status: 500, headers: { 'x-edge-service': label }, body: { error: `${label}: request() returned no answer (expected {status?, headers?, body})` } }
  const r = (typeof value === 'object' ? value : { body: value }) as { status?: unknown; body?: unknown; headers?: unknown }
  if (r.status !== undefined && !(typeof r.status === 'number' && Number.isInteger(r.status) && r.status >= STATUS_MIN && r.status <= STATUS_MAX)) {
    return { status: 500, headers: { 'x-edge-service': label }, body: { error: `${label}: request() returned status ${JSON.stringify(r.status)}; a status is a whole number ${STATUS_MIN}-${STATUS_MAX}` } }
  }
  const status = typeof r.status === 'number' ? r.status : 200
  const headers: Record<string, string> = { 'x-edge-service': label }
  if (typeof r.headers === 'object' && r.headers !== null) {
    for (const [k, v] of Object.entries(r.headers)) if (/^[A-Za-z0-9-]{1,64}$/.test(k) && typeof v === 'string' && !/[\r\n]/.test(v)) headers[k.toLowerCase()] = v
  }
  return { status, headers, body: r.body ?? null }
}
