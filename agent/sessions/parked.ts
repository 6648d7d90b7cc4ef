// A terminal's request held at a member while its session changes owner (M0.8,
// M3.4). A member that has lost the owner (its connection closed, it gave up on
// it, it voted in a new epoch, or it stands itself) would otherwise answer 503
// "changing owner" and leave the terminal to poll, and a poll lands a backoff
// step after the new owner is ready, or at the member that did not win. Held
// instead, the request is served the moment this member becomes the owner, or
// redirected the moment it hears the new owner (its first append), so the
// terminal learns of the takeover within one message of it. A request held
// past the window gets the 503 it would have got at once.

import type { SessionsConfig } from './config.ts'
import type { Parked, ParkableCommand, Replica } from './replica.ts'

// How long a request is held at most, ms: under half the EdgeClient's request
// timeout (800 ms), so a terminal always gets an answer before it gives up on
// the agent; vote timeouts shorter than this bound it instead (a takeover that
// outlasts a vote round is better told to retry).
export const PARK_MAX_MS = 300

// Requests held per session at one member; past this, they are answered at once.
export const MAX_PARKED = 64

export function parkWindowMs (config: SessionsConfig): number {
  return Math.min(config.voteTimeoutMs, PARK_MAX_MS)
}

// The member cannot name a serving owner now, and one is being settled: it
// stands itself, voted in a new epoch (owner unknown), gave up on the owner,
// or lost its connection to it (and is diagnosing it).
export function ownerInDoubt (r: Replica): boolean {
  return r.role === 'candidate' || r.owner === null || r.ownerGone || r.ownerLostMs !== null
}

// Holds the request if the owner is in doubt and there is room; false: answer now.
export function park (r: Replica, command: ParkableCommand, nowMs: number, config: SessionsConfig): boolean {
  if (r.role === 'owner' || !ownerInDoubt(r) || r.parked.length >= MAX_PARKED) return false
  r.parked.push({ command, deadlineMs: nowMs + parkWindowMs(config) })
  return true
}

// The held requests to act on now, taken off the list: all of them once this
// member owns the session or knows who does, or was dropped from the group (it
// will not hear the new owner; sessions.ts finds the session elsewhere for
// them), else those past their window.
export function dueParked (r: Replica, nowMs: number): Parked[] {
  if (r.parked.length === 0) return []
  if (r.role === 'owner' || r.orphanedAtMs !== null || !ownerInDoubt(r)) return r.parked.splice(0)
  const due = r.parked.filter((p) => p.deadlineMs <= nowMs)
  if (due.length > 0) r.parked = r.parked.filter((p) => p.deadlineMs > nowMs)
  return due
}

export function nextParkedDeadline (r: Replica): number {
  return r.parked.length === 0 ? Infinity : r.parked[0].deadlineMs
}
