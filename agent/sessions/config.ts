// Session timings and placement settings, in one place, per profile. Milliseconds
// unless the name says otherwise; each comment says what the value feeds.
//
// Takeover budget with the lan profile: a frozen owner misses heartbeats for
// ownerTimeoutMs (400), the first standby diagnoses it (diagnoseTimeoutMs, 150)
// and wins a vote in one round trip: about 0.6 s to a serving new owner. A killed
// owner closes its streams, so the standbys skip most of the wait: a refused
// redial (or a third of diagnoseTimeoutMs), one vote round trip (no pre-vote in
// a group of three), and the terminal's request, held at the winner, is served
// as it takes the epoch.

import type { ProfileName } from '../membership/config.ts'

export type WriteConcern = 'all' | 'majority'

export type SessionsConfig = {
  // Standbys per session (R): a group is an owner plus R standbys.
  replicas: number
  // 'all': every live member of the group (and always a majority) holds a delta
  // durably before it is acknowledged; 'majority': a majority does.
  writeConcern: WriteConcern
  // The owner's heartbeat on each member's replication stream.
  heartbeatMs: number
  // A member that has not heard the owner for this long suspects it; it also
  // refuses votes while it has heard the owner within this time (the owner's
  // lease, as granted by that member).
  ownerTimeoutMs: number
  // How long a suspecting standby waits for the owner's service diagnosis (M2.1).
  diagnoseTimeoutMs: number
  // Standbys stand as candidates in priority order: the i-th waits i × this.
  candidateStaggerMs: number
  // A candidate that has not won a majority by then gives up this epoch.
  voteTimeoutMs: number
  // A delta not held by the write concern within this time is answered 503.
  writeTimeoutMs: number
  // A member that has not acknowledged anything for this long (or whose
  // connection closed) does not count as live for the 'all' write concern; a
  // majority is still required. This bounds how long writes stall when a
  // standby freezes.
  memberStaleMs: number
  // Under the 'all' write concern, a live member that has left a send
  // unacknowledged for this long is lagging (a slow disk, a starved box): the
  // owner acknowledges without waiting for it (a majority still holds every
  // acknowledged delta) until it has answered every send older than this. This
  // bounds what one slow member adds to every write of its groups.
  memberLagMs: number
  // An agent whose fsyncs take this long (the median over 5 s, disk-watch.ts)
  // has a slow disk: it hands the sessions it owns to a member whose acks come
  // back within half of this, and stands last in takeovers. 0: never.
  slowFsyncMs: number
  // A dead member is replaced after it has been dead this long.
  repairDelayMs: number
  // A member whose log lags the commit index by more than this many entries is
  // not "in sync" (M2.2) and does not stand as candidate.
  maxCandidateLagEntries: number
  // The log is compacted into a snapshot every this many applied entries…
  snapshotEveryEntries: number
  // …and once the ops applied since the last snapshot add up to at least this
  // many times the state's size (bytes of JSON): a snapshot costs the whole
  // state, so a state that grows with its log (the `log` service) is snapshotted
  // at geometrically spaced points and costs O(1) per delta, not O(state).
  // Each session multiplies it by its own factor of 1 to 1.5 (replica.ts,
  // snapshotSpread), so that sessions growing alike snapshot in different turns.
  // 0: every snapshotEveryEntries, whatever the state's size.
  snapshotLogRatio: number
  // Bytes of session state this agent snapshots per second at most, counted
  // over 50 ms windows (snapshot-budget.ts): sessions whose snapshot points come
  // together wait a window or a few instead of stalling the agent in one turn.
  // 0: no limit.
  snapshotBytesPerS: number
  // Entries sent in one append frame.
  maxBatchEntries: number
  // Placement: eligible nodes are under this load (0..1; 1 turns the filter off).
  loadThreshold: number
  // Placement: candidates taken from the ring before ranking (≥ replicas + 1).
  candidateWindow: number
  // Placement: virtual nodes on the ring for a node of capacity 100. Ownership
  // varies by about 1/sqrt(vnodes) between equal nodes: 256 keeps it near ±6%
  // (32 gave ±18%, some nodes owning 1.4x the mean).
  vnodesPer100Capacity: number
  // Placement: weights of the ranking terms (ring order, spare load, proximity).
  weightRing: number
  weightLoad: number
  weightDistance: number
  // Sessions this agent holds at most (as owner or standby).
  maxSessions: number
  // An owner whose session has logged nothing for this long (and is otherwise
  // settled) asks its members to go quiet: no per-session heartbeats, one beat
  // per pair of agents instead (quiet.ts). 0: never.
  quietAfterMs: number
  // Test only, never read from flags or files: makes the core wrong on purpose
  // so a test can show the simulator's checkers catch it.
  plantedFault?: 'ack-before-replication' | 'read-without-lease'
}

const lan: SessionsConfig = {
  replicas: 2,
  writeConcern: 'all',
  heartbeatMs: 100,
  ownerTimeoutMs: 400,
  diagnoseTimeoutMs: 150,
  candidateStaggerMs: 200,
  voteTimeoutMs: 300,
  writeTimeoutMs: 2_000,
  memberStaleMs: 500,
  memberLagMs: 100,
  slowFsyncMs: 100,
  repairDelayMs: 2_000,
  maxCandidateLagEntries: 1_000,
  snapshotEveryEntries: 1_000,
  snapshotLogRatio: 1,
  snapshotBytesPerS: 32 * 1_048_576,
  maxBatchEntries: 512,
  loadThreshold: 0.9,
  candidateWindow: 6,
  vnodesPer100Capacity: 256,
  weightRing: 1,
  weightLoad: 1,
  weightDistance: 1,
  maxSessions: 100_000,
  quietAfterMs: 1_000
}

const wan: SessionsConfig = {
  ...lan,
  heartbeatMs: 500,
  ownerTimeoutMs: 2_500,
  diagnoseTimeoutMs: 1_000,
  candidateStaggerMs: 1_000,
  voteTimeoutMs: 1_500,
  writeTimeoutMs: 5_000,
  memberStaleMs: 5_000,
  memberLagMs: 1_000,
  repairDelayMs: 10_000,
  quietAfterMs: 5_000
}

const local: SessionsConfig = { ...lan }

const PROFILES: Record<ProfileName, SessionsConfig> = { lan, wan, local }

export function sessionsProfile (name: ProfileName): SessionsConfig {
  return { ...PROFILES[name] }
}

type Rule = { key: keyof SessionsConfig; min: number; max: number; integer: boolean }

const RULES: Rule[] = [
  { key: 'replicas', min: 0, max: 8, integer: true },
  { key: 'heartbeatMs', min: 5, max: 60_000, integer: true },
  { key: 'ownerTimeoutMs', min: 20, max: 600_000, integer: true },
  { key: 'diagnoseTimeoutMs', min: 5, max: 60_000, integer: true },
  { key: 'candidateStaggerMs', min: 0, max: 60_000, integer: true },
  { key: 'voteTimeoutMs', min: 10, max: 60_000, integer: true },
  { key: 'writeTimeoutMs', min: 10, max: 600_000, integer: true },
  { key: 'memberStaleMs', min: 10, max: 600_000, integer: true },
  { key: 'memberLagMs', min: 1, max: 600_000, integer: true },
  { key: 'slowFsyncMs', min: 0, max: 600_000, integer: true },
  { key: 'repairDelayMs', min: 0, max: 86_400_000, integer: true },
  { key: 'maxCandidateLagEntries', min: 0, max: 1_000_000, integer: true },
  { key: 'snapshotEveryEntries', min: 10, max: 10_000_000, integer: true },
  { key: 'snapshotLogRatio', min: 0, max: 100, integer: false },
  { key: 'snapshotBytesPerS', min: 0, max: 1e12, integer: true },
  { key: 'maxBatchEntries', min: 1, max: 4_096, integer: true },
  { key: 'loadThreshold', min: 0, max: 1, integer: false },
  { key: 'candidateWindow', min: 1, max: 64, integer: true },
  { key: 'vnodesPer100Capacity', min: 1, max: 1_024, integer: true },
  { key: 'weightRing', min: 0, max: 100, integer: false },
  { key: 'weightLoad', min: 0, max: 100, integer: false },
  { key: 'weightDistance', min: 0, max: 100, integer: false },
  { key: 'maxSessions', min: 1, max: 10_000_000, integer: true },
  { key: 'quietAfterMs', min: 0, max: 86_400_000, integer: true }
]

export const SESSIONS_KEYS: string[] = [...RULES.map((rule) => rule.key), 'writeConcern']

export function checkSessionsConfig (config: SessionsConfig): string[] {
  const problems: string[] = []
  for (const rule of RULES) {
    const value = config[rule.key]
    if (typeof value !== 'number' || !Number.isFinite(value)) problems.push(`'${rule.key}' must be a number (got ${JSON.stringify(value)})`)
    else if (rule.integer && !Number.isInteger(value)) problems.push(`'${rule.key}' must be a whole number (got ${value})`)
    else if (value < rule.min || value > rule.max) problems.push(`'${rule.key}' must be between ${rule.min} and ${rule.max} (got ${value})`)
  }
  if (config.writeConcern !== 'all' && config.writeConcern !== 'majority') problems.push(`'writeConcern' must be "all" or "majority" (got ${JSON.stringify(config.writeConcern)})`)
  if (problems.length > 0) return problems
  if (config.heartbeatMs >= config.ownerTimeoutMs) problems.push(`'heartbeatMs' must be less than 'ownerTimeoutMs' (got ${config.heartbeatMs} >= ${config.ownerTimeoutMs})`)
  if (config.candidateWindow < config.replicas + 1) problems.push(`'candidateWindow' must be at least replicas + 1 (got ${config.candidateWindow} < ${config.replicas + 1})`)
  return problems
}
