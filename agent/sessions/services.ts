// Services (M0.3): what a session's state is and how a delta changes it. A
// service validates an op before it is logged (a refused op is never
// replicated) and applies it deterministically on every member.

import type { JsonValue } from '../../protocol/messages.ts'

// `status`: 503 when the service cannot judge the op now (a deployed service
// whose worker is loading or restarting); a refusal is 400.
export type OpCheck = { ok: true } | { ok: false; reason: string; status?: 503 }

export interface Service {
  readonly name: string
  initial (): JsonValue
  // Checks an op before it enters the log, on the owner. `state` is the
  // session's current state, for services that dry-run the op (deployed ones).
  validate (op: JsonValue, state?: JsonValue): OpCheck
  // Applies a validated op. May change `state` in place and return it: the core
  // owns the state and copies it (as JSON) for snapshots. Throws
  // ServiceUnavailable, with `state` untouched, when it cannot apply the op
  // here now (a deployed service's worker loading, timed out or crashed, or
  // its version not installed yet): the member then applies nothing more of
  // the session until a retry succeeds (apply.ts).
  apply (state: JsonValue, op: JsonValue): JsonValue
}

// Not a verdict on the op: the service could not run here now, and the same op
// would apply later. Every member must apply every committed op, in order, or
// its state parts from the others' (and a takeover would serve the other state).
export class ServiceUnavailable extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ServiceUnavailable'
  }
}

function isObject (value: JsonValue): value is { [key: string]: JsonValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function onlyKey (op: JsonValue): string | null {
  if (!isObject(op)) return null
  const keys = Object.keys(op)
  return keys.length === 1 ? keys[0] : null
}

// log: {"append": value}; the state is the list of appended values.
export const logService: Service = {
  name: 'log',
  initial: () => [],
  validate: (op) => onlyKey(op) === 'append' ? { ok: true } : { ok: false, reason: 'a log op is {"append": value}' },
  apply: (state, op) => {
    const list = Array.isArray(state) ? state : []
    list.push((op as { append: JsonValue }).append)
    return list
  }
}

// kv: {"set": {key: value, …}} or {"delete": key}; the state is an object.
export const kvService: Service = {
  name: 'kv',
  initial: () => ({}),
  validate: (op) => {
    const key = onlyKey(op)
    const body = key === null ? null : (op as { [k: string]: JsonValue })[key]
    if (key === 'set' && body !== null && isObject(body) && Object.keys(body).length > 0) return { ok: true }
    if (key === 'delete' && typeof body === 'string') return { ok: true }
    return { ok: false, reason: 'a kv op is {"set": {key: value, …}} or {"delete": key}' }
  },
  apply: (state, op) => {
    const map = isObject(state) ? state : {}
    const o = op as { set?: { [key: string]: JsonValue }; delete?: string }
    if (o.set !== undefined) for (const [key, value] of Object.entries(o.set)) setKey(map, key, value)
    if (o.delete !== undefined) delete map[o.delete]
    return map
  }
}

// A key is an own property whatever its name: `map[key] = value` with the key
// "__proto__" would set the object's prototype and store nothing (acknowledged,
// then missing from the state). JSON.parse and JSON.stringify treat such a key as
// any other own property, so snapshots and peers keep it.
function setKey (map: { [key: string]: JsonValue }, key: string, value: JsonValue): void {
  if (key === '__proto__') Object.defineProperty(map, key, { value, writable: true, enumerable: true, configurable: true })
  else map[key] = value
}

// counter: {"add": n} with n a number of magnitude at most 2^53 − 1 (fractions
// allowed); the state is the sum. The bound keeps the sum finite: an add of
// 1e308 was acknowledged, and the next one, overflowing, left the state as it
// was, an acknowledged delta that changed nothing. From 0, a sum of adds within
// the bound needs some 10^292 of them to reach Number.MAX_VALUE, and adding
// 2^53 to MAX_VALUE rounds back to it (the sum stays a double, as in JSON).
// apply keeps the state if a sum is not finite, so every member stays identical
// whatever it is given.
export const COUNTER_MAX_ADD = Number.MAX_SAFE_INTEGER

export const counterService: Service = {
  name: 'counter',
  initial: () => 0,
  validate: (op) => {
    const n = onlyKey(op) === 'add' ? (op as { add: JsonValue }).add : undefined
    if (typeof n === 'number' && Number.isFinite(n) && Math.abs(n) <= COUNTER_MAX_ADD) return { ok: true }
    return { ok: false, reason: `a counter op is {"add": n} with n a number of magnitude at most ${COUNTER_MAX_ADD}` }
  },
  apply: (state, op) => {
    const sum = (typeof state === 'number' ? state : 0) + (op as { add: number }).add
    return Number.isFinite(sum) ? sum : state
  }
}

// register: any JSON op replaces the state. What a singleton service (a leader,
// an address to move) runs when it is not one of the services above: its
// session matters for who owns it, not for what it holds.
export const registerService: Service = {
  name: 'register',
  initial: () => null,
  validate: () => ({ ok: true }),
  apply: (_state, op) => op
}

export const BUILT_IN_SERVICES: ReadonlyMap<string, Service> = new Map([logService, kvService, counterService, registerService].map((s) => [s.name, s]))

// The services an agent runs: the built-ins, and a register for every singleton
// service that is not one of them.
export function servicesFor (singletons: string[]): Map<string, Service> {
  const services = new Map(BUILT_IN_SERVICES)
  for (const name of singletons) if (!services.has(name)) services.set(name, { ...registerService, name })
  return services
}
