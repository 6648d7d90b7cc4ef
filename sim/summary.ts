// The table `edge-agent sim` prints at the end of a run (without --json).

import type { Quantiles, SimRunResult } from './result.ts'

function ms (value: number | null): string {
  return value === null ? '-' : `${Math.round(value)}`
}

function row (label: string, q: Quantiles): string {
  return `  ${label.padEnd(34)} ${String(q.n).padStart(6)} ${ms(q.p50).padStart(8)} ${ms(q.p90).padStart(8)} ${ms(q.p99).padStart(8)} ${ms(q.max).padStart(8)}`
}

export function formatSummary (r: SimRunResult): string {
  const lines = [
    `${r.scenario}: ${r.nodes} nodes, ${r.durationMs / 1_000} ${r.mode === 'real' ? 's of chaos on real processes' : 'virtual s of chaos'}, seed ${r.seed}: ${r.ok ? 'PASS' : 'FAIL'}`,
    '',
    `  ${'ms'.padEnd(34)} ${'n'.padStart(6)} ${'p50'.padStart(8)} ${'p90'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`,
    row('first suspicion after a fault', r.detection.firstSuspicionMs),
    row('first dead verdict', r.detection.firstDeadMs),
    row('last survivor\'s dead verdict', r.detection.lastDeadMs),
    row('dissemination of a restart', r.dissemination),
    row('takeover (fault → new owner acks)', r.takeover),
    row('append latency', r.deltas.latencyMs),
    '',
    `  faults applied: ${r.faults.length}; ${r.mode === 'real' ? 'crashes, freezes and cut-off nodes' : 'crashes and freezes'} watched: ${r.detections.length}; takeovers seen by terminals: ${r.takeovers.length}`,
    `  traffic per node: ${Math.round(r.traffic.bytesPerNodePerSec)} B/s, ${r.traffic.messagesPerNodePerSec} messages/s (mean over ${r.traffic.series.length} s)`,
    `  deltas: ${r.deltas.acknowledged} acknowledged by ${r.deltas.sessions} sessions, ${r.deltas.perSec}/s`,
    `  false dead verdicts: ${r.falseDead}`,
    '',
    '  checkers:'
  ]
  for (const c of r.checkers) {
    lines.push(`    ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}`)
    for (const p of c.problems.slice(0, 5)) lines.push(`         ${p}`)
    if (c.problems.length > 5) lines.push(`         … and ${c.problems.length - 5} more`)
  }
  return lines.join('\n')
}
