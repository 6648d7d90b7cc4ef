// A deployed package as a sessions-core Service (M3.3), with per-session
// version roll-forward.
//
// A session of a deployed service keeps, as its state, which version serves it:
//   {"version": "1.2.0" | null, "state": <the service's own state>, "error"?: …}
// and every op in its log names the newest version its owner ran when the op was
// accepted: {"@v": "1.3.0", "op": <the terminal's op>} (the agent adds the
// stamp; terminals send plain ops). Applying an op, on every member alike:
//   1. a session without a version takes the op's version and its initial();
//   2. a session on an older version moves to the op's version if it is at a
//      *clean point*: the old version's optional isClean(state) export returns
//      true (without that export, every op boundary is clean). The new version's
//      optional migrate(state, fromVersion) export converts the state;
//   3. the op is applied by the session's version.
// So the decision to move travels in the log and every member takes it at the
// same entry; sessions not at a clean point stay on the old version, which keeps
// running beside the new one until they move.
//
// The owner dry-runs each op on a copy of the state before logging it, so a
// throw or a timeout in service code refuses that op (HTTP 400 with the reason)
// and nothing is logged. An apply that still throws on a member (the same op
// throws on every member) leaves the state as it was and records the error in
// it. An apply that cannot run on this member now (its worker loading, timed
// out or crashed, or the version not installed here yet) throws
// ServiceUnavailable instead: the member applies nothing more of the session
// until a retry succeeds (agent/sessions/apply.ts), so its state never lacks an
// op the others applied.

import type { JsonValue } from '../../protocol/messages.ts'
import { MAX_STATE_BYTES } from '../../protocol/limits.ts'
import { jsonValueProblem } from '../../protocol/session-json.ts'
import { ServiceUnavailable } from '../sessions/services.ts'
import type { OpCheck, Service } from '../sessions/services.ts'
import type { PackageRef } from '../deploy/distribution.ts'
import { newer } from '../deploy/distribution.ts'
import type { CallResult, ServiceRunner } from './service-runner.ts'

export type Version = { ref: PackageRef; runner: ServiceRunner }

type Wrapped = { version: string | null; state: JsonValue; error?: JsonValue }
type Stamped = { '@v': string; op: JsonValue }

export const VERSION_STAMP = '@v'

function isObject (value: unknown): value is Record<string, JsonValue> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function stampOp (version: string, op: JsonValue): JsonValue {
  return { [VERSION_STAMP]: version, op }
}

export function unwrapState (state: JsonValue): Wrapped {
  if (isObject(state) && 'version' in state) return { version: typeof state.version === 'string' ? state.version : null, state: state.state ?? null, ...(state.error !== undefined ? { error: state.error } : {}) }
  return { version: null, state: null }
}

type Failed = { ok: false; error: string; unavailable?: boolean }

function notInstalled (error: string): Failed {
  return { ok: false, error, unavailable: true }
}

// A failed call as the owner's answer to the op: the service's refusal is 400;
// no working worker (still loading, timed out, crashed) is 503, worth a retry.
function refusal (failed: Failed): OpCheck {
  return failed.unavailable === true ? { ok: false, reason: failed.error, status: 503 } : { ok: false, reason: failed.error }
}

export class DeployedService implements Service {
  readonly name: string
  readonly #versions = new Map<string, Version>()

  constructor (name: string) {
    this.name = name
  }

  add (version: Version): void {
    this.#versions.set(version.ref.version, version)
  }

  // The newest version held here: the one new ops are stamped with.
  newest (): Version | null {
    let best: Version | null = null
    for (const v of this.#versions.values()) if (best === null || newer(v.ref, best.ref)) best = v
    return best
  }

  // The version to stamp an op of a session with: the oldest version that any
  // member of its group advertises (and this agent holds), so that no member is
  // asked to move to a version it does not hold yet; once all advertise the
  // newest, that is the stamp. Without such members, the newest held here.
  stampFor (advertised: string[]): Version | null {
    let stamp: Version | null = null
    for (const v of advertised) {
      const held = this.#versions.get(v)
      if (held !== undefined && (stamp === null || newer(stamp.ref, held.ref))) stamp = held
    }
    return stamp ?? this.newest()
  }

  versions (): Version[] {
    return [...this.#versions.values()]
  }

  stop (): void {
    for (const v of this.#versions.values()) v.runner.stop()
  }

  // Stops and forgets the version of this package hash (a retirement).
  retire (hash: string): void {
    for (const [version, v] of this.#versions) {
      if (v.ref.hash !== hash) continue
      v.runner.stop()
      this.#versions.delete(version)
    }
  }

  initial (): JsonValue {
    return { version: null, state: null }
  }

  validate (op: JsonValue, state?: JsonValue): OpCheck {
    if (!isObject(op) || typeof op[VERSION_STAMP] !== 'string' || !('op' in op)) return { ok: false, reason: `an op of ${this.name} must be stamped by the agent ({"@v": version, "op": …})` }
    const stamped = op as Stamped
    const version = this.#versions.get(stamped['@v'])
    if (version === undefined) return { ok: false, reason: `${this.name}@${stamped['@v']} is not installed on this agent` }
    const check = version.runner.call('validate', [stamped.op])
    if (!check.ok) return refusal(check)
    if (!check.missing && check.value !== true && check.value !== null) {
      return { ok: false, reason: typeof check.value === 'string' ? check.value : `${this.name} refused the op` }
    }
    if (state === undefined) return { ok: true }
    const dry = this.#step(JSON.parse(JSON.stringify(state)) as JsonValue, stamped)
    if (!dry.ok) return refusal(dry)
    // A state the session codec cannot carry (deeper than its limit, say) could
    // not be snapshotted to a member that lags: refused like any failing op.
    const shape = jsonValueProblem(dry.value, MAX_STATE_BYTES)
    return shape === null ? { ok: true } : { ok: false, reason: `${this.name}: the op would leave a state that ${shape}` }
  }

  apply (state: JsonValue, op: JsonValue): JsonValue {
    if (!isObject(op) || typeof op[VERSION_STAMP] !== 'string') return state
    const result = this.#step(state, op as Stamped)
    if (result.ok) return result.value
    if (result.unavailable === true) throw new ServiceUnavailable(result.error)
    return { ...unwrapState(state), error: result.error }
  }

  #step (raw: JsonValue, stamped: Stamped): { ok: true; value: JsonValue } | Failed {
    const w = unwrapState(raw)
    let version = w.version
    let state = w.state
    const wanted = this.#versions.get(stamped['@v'])
    if (version === null) {
      if (wanted === undefined) return notInstalled(`${this.name}@${stamped['@v']} is not installed on this agent`)
      const init = wanted.runner.call('initial', [])
      if (!init.ok) return init
      version = stamped['@v']
      state = init.missing ? null : init.value as JsonValue
    } else if (version !== stamped['@v'] && wanted !== undefined) {
      const current = this.#versions.get(version)
      // Whether to move is the session's version's call (isClean): a member
      // without it cannot decide as the others do.
      if (current === undefined) return notInstalled(`${this.name}@${version}, which this session runs, is not installed on this agent`)
      if (newer(wanted.ref, current.ref)) {
        const moved = this.#move(current, wanted, version, state)
        if (!moved.ok) return moved
        if (moved.value !== null) {
          version = wanted.ref.version
          state = moved.value.state
        }
      }
    }
    const runner = this.#versions.get(version)
    if (runner === undefined) return notInstalled(`${this.name}@${version}, which this session runs, is not installed on this agent`)
    const applied = runner.runner.call('apply', [state, stamped.op])
    if (!applied.ok) return applied
    if (applied.missing) return { ok: false, error: `${this.name}@${version} exports no apply()` }
    return { ok: true, value: { version, state: applied.value as JsonValue } }
  }

  // Moves a session to `to` if it is at a clean point: null when it stays.
  #move (from: Version, to: Version, fromVersion: string, state: JsonValue): { ok: true; value: { state: JsonValue } | null } | Failed {
    const clean = from.runner.call('isClean', [state])
    if (!clean.ok) return clean
    if (!clean.missing && clean.value !== true) return { ok: true, value: null }
    const migrated: CallResult = to.runner.call('migrate', [state, fromVersion])
    if (!migrated.ok) return migrated
    return { ok: true, value: { state: migrated.missing ? state : migrated.value as JsonValue } }
  }
}
