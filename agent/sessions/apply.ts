// Applying a session's committed entries to its service state, on every
// member, in log order; and what a member does when its service cannot apply
// an entry now.
//
// A deployed service runs in a worker (agent/runtime/service-runner.ts) that can
// be loading, timed out or crashed on one member while it works on the others.
// Such a member used to record the failure in the state and go on: its state
// then lacked an acknowledged op the owner's had, for good (its snapshots
// carried the gap), and a takeover served that state. Now the member stops at
// the entry (ServiceUnavailable), keeps it and everything after it in its log,
// and tries again every APPLY_RETRY_MS; meanwhile, as owner, it serves no
// reads and takes no deltas (503 with the reason), since its state is behind
// what it has acknowledged. A refusal by the service itself (it throws on the
// op) is not this: it is the same on every member and stays recorded in the
// state (deployed-service.ts).

import { MAX_DEDUP_RECENT } from '../../protocol/limits.ts'
import type { Dedup } from '../../protocol/messages.ts'
import { ServiceUnavailable } from './services.ts'
import { config } from './replica.ts'
import type { Ctx, Replica } from './replica.ts'

// How long a member waits before it asks its service again, ms. A call may
// block the agent up to the service's time limit (200 ms), so a member whose
// worker keeps timing out must not retry at every message.
export const APPLY_RETRY_MS = 1_000
// A stall is reported (event apply-stalled: a warning, a count) once it has
// lasted this long, ms, and its end only if it was. A worker that is loading
// when the agent starts, or that replaces one that timed out, stalls every copy
// of its sessions for a second or so: that is not worth a line per session.
export const APPLY_REPORT_AFTER_MS = 5_000

export type ApplyStall = { index: number; reason: string; sinceMs: number; retryAtMs: number; reported: boolean }

// Applies committed entries to the service state, in order, up to the first
// one the service cannot apply now.
export function applyCommitted (ctx: Ctx, r: Replica): void {
  if (r.applyStall !== null && ctx.now < r.applyStall.retryAtMs) return
  const service = ctx.service(r.info.service)
  // A witness keeps no state. Any other member without the service's code (a
  // deployed package not installed here yet) waits for it: it could stand for
  // election once it installs the package, and must not do so with a state
  // that skipped ops.
  const waitsForCode = service === null && config(r).witness !== ctx.self
  while (r.appliedIndex < r.commitIndex) {
    const entry = r.log.entry(r.appliedIndex + 1)
    if (entry === null) break
    const body = entry.body
    if (waitsForCode && (body.kind === 'create' || body.kind === 'delta')) {
      stall(ctx, r, entry.index, `this agent does not run service ${r.info.service}`)
      return
    }
    if (body.kind === 'create') {
      r.state = service === null ? null : service.initial()
      r.stateBytes = JSON.stringify(r.state).length
    } else if (body.kind === 'delta') {
      if (service !== null) {
        try {
          r.state = service.apply(r.state, body.op)
        } catch (error) {
          if (!(error instanceof ServiceUnavailable)) throw error
          stall(ctx, r, entry.index, error.message)
          return
        }
      }
      const opBytes = JSON.stringify(body.op).length
      r.stateBytes += opBytes
      r.bytesSinceSnapshot += opBytes
      remember(r.dedup, body.clientSeq, entry.index)
    } else if (body.kind === 'close') {
      r.closed = true
    }
    r.appliedIndex = entry.index
  }
  resumeIfPast(ctx, r)
}

// The member's state is behind the entries it holds committed, and the owner
// must not answer from it (owner.ts readRefusal, deltas.ts admitDelta).
export function applyStalled (r: Replica): string | null {
  if (r.applyStall === null) return null
  return `this agent's ${r.info.service} service cannot apply the session's committed ops now (${r.applyStall.reason}); it tries again every ${APPLY_RETRY_MS / 1000} s`
}

// The state is past the stalled entry: applied, or carried by a snapshot
// installed past it (follower.ts).
export function resumeIfPast (ctx: Ctx, r: Replica): void {
  if (r.applyStall !== null && r.appliedIndex >= r.applyStall.index) resumed(ctx, r)
}

function stall (ctx: Ctx, r: Replica, index: number, reason: string): void {
  // A committed close later in the log: nobody will read this state again.
  for (let i = r.commitIndex; i > index; i--) {
    if (r.log.entry(i)?.body.kind !== 'close') continue
    r.closed = true
    r.appliedIndex = r.commitIndex
    if (r.applyStall !== null) resumed(ctx, r)
    return
  }
  const same = r.applyStall !== null && r.applyStall.index === index ? r.applyStall : null
  if (same === null && r.applyStall !== null) resumed(ctx, r)
  const sinceMs = same?.sinceMs ?? ctx.now
  const report = same?.reported !== true && ctx.now - sinceMs >= APPLY_REPORT_AFTER_MS
  r.applyStall = { index, reason, sinceMs, retryAtMs: ctx.now + APPLY_RETRY_MS, reported: report || (same?.reported ?? false) }
  if (report) ctx.emit({ type: 'apply-stalled', sessionId: r.id, index, reason, stalledMs: ctx.now - sinceMs })
}

function resumed (ctx: Ctx, r: Replica): void {
  const stalled = r.applyStall
  r.applyStall = null
  if (stalled?.reported === true) ctx.emit({ type: 'apply-resumed', sessionId: r.id, index: stalled.index, stalledMs: ctx.now - stalled.sinceMs })
}

// The window is the last MAX_DEDUP_RECENT pairs; the array may hold up to as
// many again before it, dropped in one splice when it reaches twice the
// window. Dropping the oldest pair at every delta moved the whole window each
// time: 5% of a standby's CPU with batched appends (bench/replication.ts).
function remember (dedup: Dedup, clientSeq: number, index: number): void {
  dedup.lastClientSeq = Math.max(dedup.lastClientSeq, clientSeq)
  dedup.recent.push([clientSeq, index])
  if (dedup.recent.length >= 2 * MAX_DEDUP_RECENT) dedup.recent.splice(0, dedup.recent.length - MAX_DEDUP_RECENT)
}

// The first pair of the window in `recent` (those before it are kept only
// until the next splice, and answer nothing).
export function windowStart (recent: Dedup['recent']): number {
  return Math.max(0, recent.length - MAX_DEDUP_RECENT)
}
