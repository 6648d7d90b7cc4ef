// Membership timing, in one place, per profile. Every value is in milliseconds
// unless its name says otherwise, and each comment says what it feeds.
//
// The `lan` profile is the default. It is tuned so that, on a LAN or on one
// machine, every survivor reaches a `dead` verdict about 1 s after a crash and
// at most about 2 s after a freeze, while a 300 ms event-loop stall or 10% message loss produces
// no false verdict, and so that an agent at rest sends no more bytes than serf at
// its defaults (see README, "How failure detection works", for the arithmetic).
// The probe period sets the bandwidth (each probe is a ping and an ack over TCP,
// about 280 bytes on the wire with the TCP acknowledgements) and the time until a
// frozen member is first probed; the suspicion timeout is its own setting, so
// probing less often does not also stretch every verdict.

export type MembershipConfig = {
  // One probe per member per period, on a schedule every member shares
  // (detector.ts, ring.ts): the bandwidth at rest, and at most one period until
  // someone probes a member that froze.
  probeIntervalMs: number
  // How long the direct ping waits for its ack before indirect probes start.
  // Scaled by the local health multiplier (Lifeguard), so a slow node waits longer.
  probeTimeoutMs: number
  // Extra time the direct ping gets when there is no live connection to the target
  // yet (first contact, or after a disconnect): dialling, the noise handshake and
  // stream negotiation take tens of ms on a small box. A refused dial still fails
  // the direct ping at once, so this does not slow the detection of a crash.
  firstContactGraceMs: number
  // Members asked to probe the target on our behalf when the direct ping fails.
  indirectChecks: number
  // Minimum suspicion timeout = suspicionMinMs × max(1, log10(N)): how long a
  // suspect confirmed by suspicionConfirmations others has to refute. A member
  // that stalls for less than this (plus the ~200 ms a failed probe takes) is
  // never declared dead.
  suspicionMinMs: number
  // Maximum suspicion timeout = suspicionMaxTimeoutMult × minimum. Independent
  // confirmations shrink the timeout from the maximum towards the minimum.
  suspicionMaxTimeoutMult: number
  // Independent confirmations (Lifeguard's k; memberlist's suspicionMult − 2) that
  // bring a suspicion to its minimum timeout; fewer when the cluster cannot
  // supply them.
  suspicionConfirmations: number
  // Ceiling of the local health multiplier (Lifeguard's LHM): timeouts are scaled
  // by (score + 1), score in 0..awarenessMax - 1.
  awarenessMax: number
  // Each piggybacked update is sent retransmitMult × ceil(log10(N + 1)) times.
  retransmitMult: number
  // Budget for piggybacked updates on one probe message, bytes.
  piggybackMaxBytes: number
  // Anti-entropy: full-table push-pull with one random member per period. Above
  // 32 members the period grows in proportion to N, so each member's
  // anti-entropy bandwidth stays flat as the cluster grows.
  pushPullIntervalMs: number
  // A member marked dead is contacted (push-pull) once per period, so that a
  // healed partition or a wrongly buried node finds its way back.
  reconnectIntervalMs: number
  // The own record is republished on the gossip topic at this period (scaled above
  // 32 members like push-pull), on top of every change. A safety net: push-pull
  // already converges every table; each publish costs every member about
  // D (3) × its size in forwarding.
  recordRefreshIntervalMs: number
  // Load-only changes are published at most once per this period (scaled above 32
  // members); other changes of the record go out at once.
  recordMinIntervalMs: number
  // A load part must move by at least this much (0..1) to count as a change.
  loadChangeThreshold: number
  // Dead and left members are forgotten after this long.
  deadReapMs: number
  // While alone, the bootstrap peers are contacted again at this period.
  joinRetryMs: number
  // An input arriving this much later than the core asked to be woken means the
  // local event loop stalled: pending timeouts are extended by the stall, since
  // nothing could be heard during it, and local health is degraded.
  stallThresholdMs: number
  // A leaving node sends its `left` record directly to this many members, on top
  // of gossip, so the departure is not mistaken for a failure.
  leaveFanout: number
}

export type ProfileName = 'lan' | 'wan' | 'local'
export const PROFILE_NAMES: readonly ProfileName[] = ['lan', 'wan', 'local']

const lan: MembershipConfig = {
  probeIntervalMs: 1_250,
  probeTimeoutMs: 100,
  firstContactGraceMs: 500,
  indirectChecks: 3,
  suspicionMinMs: 500,
  suspicionMaxTimeoutMult: 3,
  suspicionConfirmations: 2,
  awarenessMax: 8,
  retransmitMult: 4,
  piggybackMaxBytes: 2048,
  pushPullIntervalMs: 60_000,
  reconnectIntervalMs: 5_000,
  recordRefreshIntervalMs: 1_800_000,
  recordMinIntervalMs: 10_000,
  loadChangeThreshold: 0.1,
  deadReapMs: 60 * 60_000,
  joinRetryMs: 1_000,
  stallThresholdMs: 50,
  leaveFanout: 8
}

// Round trips of 100–300 ms and real packet loss: slower probes, longer suspicion.
const wan: MembershipConfig = {
  ...lan,
  probeIntervalMs: 2_000,
  probeTimeoutMs: 500,
  firstContactGraceMs: 2_000,
  suspicionMinMs: 6_000,
  suspicionMaxTimeoutMult: 3,
  pushPullIntervalMs: 60_000,
  reconnectIntervalMs: 30_000,
  recordRefreshIntervalMs: 3_600_000,
  recordMinIntervalMs: 30_000,
  deadReapMs: 6 * 60 * 60_000,
  joinRetryMs: 2_000,
  stallThresholdMs: 250
}

// Several agents on one machine (demos, development): fast probes and short
// suspicions (bandwidth is free on loopback), fewer indirect checks, short memory
// for the dead.
const local: MembershipConfig = {
  ...lan,
  probeIntervalMs: 100,
  probeTimeoutMs: 50,
  indirectChecks: 2,
  suspicionMinMs: 400,
  suspicionMaxTimeoutMult: 2,
  pushPullIntervalMs: 5_000,
  reconnectIntervalMs: 2_000,
  recordRefreshIntervalMs: 30_000,
  recordMinIntervalMs: 2_000,
  loadChangeThreshold: 0.05,
  deadReapMs: 10 * 60_000,
  joinRetryMs: 500,
  stallThresholdMs: 40
}

const PROFILES: Record<ProfileName, MembershipConfig> = { lan, wan, local }

export function membershipProfile (name: ProfileName): MembershipConfig {
  return { ...PROFILES[name] }
}

type Rule = { key: keyof MembershipConfig; min: number; max: number; integer: boolean }

const RULES: Rule[] = [
  { key: 'probeIntervalMs', min: 10, max: 600_000, integer: true },
  { key: 'probeTimeoutMs', min: 1, max: 600_000, integer: true },
  { key: 'firstContactGraceMs', min: 0, max: 600_000, integer: true },
  { key: 'indirectChecks', min: 0, max: 16, integer: true },
  { key: 'suspicionMinMs', min: 1, max: 3_600_000, integer: true },
  { key: 'suspicionMaxTimeoutMult', min: 1, max: 100, integer: false },
  { key: 'suspicionConfirmations', min: 0, max: 100, integer: true },
  { key: 'awarenessMax', min: 1, max: 64, integer: true },
  { key: 'retransmitMult', min: 1, max: 100, integer: true },
  { key: 'piggybackMaxBytes', min: 0, max: 200_000, integer: true },
  { key: 'pushPullIntervalMs', min: 100, max: 86_400_000, integer: true },
  { key: 'reconnectIntervalMs', min: 100, max: 86_400_000, integer: true },
  { key: 'recordRefreshIntervalMs', min: 100, max: 86_400_000, integer: true },
  { key: 'recordMinIntervalMs', min: 0, max: 86_400_000, integer: true },
  { key: 'loadChangeThreshold', min: 0, max: 1, integer: false },
  { key: 'deadReapMs', min: 1_000, max: 30 * 86_400_000, integer: true },
  { key: 'joinRetryMs', min: 10, max: 3_600_000, integer: true },
  { key: 'stallThresholdMs', min: 1, max: 600_000, integer: true },
  { key: 'leaveFanout', min: 0, max: 1_000, integer: true }
]

// Returns a list of problems, each a sentence naming the field; empty when valid.
export function checkMembershipConfig (config: MembershipConfig): string[] {
  const problems: string[] = []
  for (const rule of RULES) {
    const value = config[rule.key]
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      problems.push(`'${rule.key}' must be a number (got ${JSON.stringify(value)})`)
    } else if (rule.integer && !Number.isInteger(value)) {
      problems.push(`'${rule.key}' must be a whole number (got ${value})`)
    } else if (value < rule.min || value > rule.max) {
      problems.push(`'${rule.key}' must be between ${rule.min} and ${rule.max} (got ${value})`)
    }
  }
  if (problems.length === 0 && config.probeTimeoutMs >= config.probeIntervalMs) {
    problems.push(`'probeTimeoutMs' must be less than 'probeIntervalMs' (got ${config.probeTimeoutMs} >= ${config.probeIntervalMs})`)
  }
  return problems
}

export const MEMBERSHIP_KEYS = RULES.map((rule) => rule.key)
