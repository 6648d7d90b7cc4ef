// What one `edge-agent sim` run produces: every figure, the fault schedule as it
// happened, the checkers' verdicts. `--json` prints it; `--report` renders it as
// HTML (sim/report.ts); the summary table is drawn from it. In virtual mode the
// whole object is a function of the seed and the options (wall time and memory
// live apart, in `host`, so that two runs compare byte for byte without them).

export type SimMode = 'virtual' | 'real'

export type Quantiles = { n: number; p50: number | null; p90: number | null; p99: number | null; max: number | null }

export type NodeStateName = 'alive' | 'crashed' | 'paused' | 'isolated'

export type SimRunResult = {
  // The line that replays this run.
  replay: string
  seed: number
  mode: SimMode
  scenario: string
  nodes: number
  durationMs: number
  // Every option the run derived from its flags and scenario, as used.
  options: Record<string, unknown>
  // Node ids in a stable order (sim names in virtual mode, agent names in real).
  nodeIds: string[]
  // Changes of a node's state over the run (initial states at 0).
  timeline: Array<{ atMs: number; node: string; state: NodeStateName }>
  // Faults as applied: crash, restart, pause, resume, partition, heal, loss, delay.
  faults: Array<{ atMs: number; fault: string; targets: string[]; detail: string }>
  // Failure detection, per crash or pause of a node (and, in real mode, per node
  // cut off by a partition, as seen from the other side).
  detections: Array<{
    node: string
    fault: 'crash' | 'pause' | 'partition'
    atMs: number
    // Ms from the fault; null when it did not happen before the node came back.
    firstSuspicionMs: number | null
    firstDeadMs: number | null
    lastDeadMs: number | null
    // Survivors that reached a dead verdict, of those running throughout.
    verdicts: number
    survivors: number
  }>
  detection: { firstSuspicionMs: Quantiles; firstDeadMs: Quantiles; lastDeadMs: Quantiles }
  // Dissemination: ms from a record change (a new incarnation) to the last live
  // node holding it.
  dissemination: Quantiles
  // Takeovers as the terminals saw them: ms from the fault that removed the owner
  // to the first acknowledgement by a new owner.
  takeovers: Array<{ sessionId: string; atMs: number; from: string; to: string; latencyMs: number }>
  takeover: Quantiles
  // Per-node traffic over time, one sample per interval.
  traffic: {
    intervalMs: number
    series: Array<{ atMs: number; bytesPerNodePerSec: number; messagesPerNodePerSec: number; maxBytesPerNodePerSec: number }>
    bytesPerNodePerSec: number
    messagesPerNodePerSec: number
  }
  deltas: { terminals: number; sessions: number; acknowledged: number; perSec: number; latencyMs: Quantiles }
  // False positives: dead verdicts about a node that was running and reachable.
  falseDead: number
  checkers: Array<{ name: string; ok: boolean; problems: string[] }>
  ok: boolean
}

// Facts about the machine and the run that differ between identical runs.
export type SimHostFacts = { wallSeconds: number; peakRssMiB: number; virtualPerWall: number; node: string }
