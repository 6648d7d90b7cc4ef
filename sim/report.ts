// `edge-agent sim --report`: one run (sim/result.ts) as a single self-contained
// HTML page: inline CSS, SVG charts drawn here as strings, no scripts and no
// external resources (a Content-Security-Policy forbids both). Every string that
// comes from the run (node ids, fault details, checker problems, options) is
// escaped. The page is a function of its input alone (no clock), so two identical
// virtual runs give byte-identical reports, and its size is bounded whatever the
// run's size: the timeline shows at most MAX_ROWS nodes and every chart merges
// marks that would fall on the same pixels.

import type { Quantiles, SimHostFacts, SimRunResult } from './result.ts'
import { esc, finite, fmtBytes, fmtCount, fmtMs, fmtNumber, listNames, truncate } from './report-svg.ts'
import { bandwidthChart, histogramChart, timelineChart } from './report-charts.ts'

export { MAX_ROWS, binLatencies } from './report-charts.ts'

const MAX_TABLE_ROWS = 200
const MAX_PROBLEMS_SHOWN = 30

// ---------------------------------------------------------------------------
// Tables

function quantileRow (name: string, q: Quantiles | undefined | null, format: (v: number | null) => string): string {
  const cell = (v: number | null | undefined): string => `<td class="num">${esc(format(v ?? null))}</td>`
  return `<tr><th scope="row">${esc(name)}</th><td class="num">${esc(fmtCount(q?.n ?? 0))}</td>${cell(q?.p50)}${cell(q?.p90)}${cell(q?.p99)}${cell(q?.max)}</tr>`
}

function summaryTables (result: SimRunResult): string {
  const detection = result.detection
  const deltas = result.deltas
  const traffic = result.traffic
  const takeoverCount = (result.takeovers ?? []).length
  const quantiles = [
    '<table class="summary"><caption>Latencies</caption>',
    '<thead><tr><th scope="col">measure</th><th scope="col">n</th><th scope="col">p50</th><th scope="col">p90</th><th scope="col">p99</th><th scope="col">max</th></tr></thead><tbody>',
    quantileRow('detection: first suspicion', detection?.firstSuspicionMs, fmtMs),
    quantileRow('detection: first dead verdict', detection?.firstDeadMs, fmtMs),
    quantileRow('detection: last dead verdict', detection?.lastDeadMs, fmtMs),
    quantileRow('dissemination (to the last live node)', result.dissemination, fmtMs),
    quantileRow('takeover (fault to first ack by new owner)', result.takeover, fmtMs),
    quantileRow('delta acknowledgement', deltas?.latencyMs, fmtMs),
    '</tbody></table>'
  ]
  const figure = (name: string, value: string, cls = ''): string => `<tr${cls ? ` class="${cls}"` : ''}><th scope="row">${esc(name)}</th><td class="num">${esc(value)}</td></tr>`
  const figures = [
    '<table class="summary"><caption>Figures</caption><tbody>',
    figure('takeovers', `${fmtCount(takeoverCount)}`),
    figure('bytes per node per second', `${fmtBytes(traffic?.bytesPerNodePerSec)}/s`),
    figure('messages per node per second', fmtNumber(traffic?.messagesPerNodePerSec)),
    figure('terminals / sessions', `${fmtCount(deltas?.terminals)} / ${fmtCount(deltas?.sessions)}`),
    figure('acknowledged deltas', fmtCount(deltas?.acknowledged)),
    figure('acknowledged deltas per second', fmtNumber(deltas?.perSec)),
    figure('false dead verdicts', fmtCount(result.falseDead), finite(result.falseDead) && result.falseDead > 0 ? 'bad' : ''),
    '</tbody></table>'
  ]
  return `<div class="tables">${quantiles.join('')}${figures.join('')}</div>`
}

function checkersTable (result: SimRunResult): string {
  const checkers = result.checkers ?? []
  const rows = checkers.map((checker) => {
    const problems = Array.isArray(checker.problems) ? checker.problems : []
    const shown = problems.slice(0, MAX_PROBLEMS_SHOWN).map((p) => `<li>${esc(truncate(String(p), 500))}</li>`).join('')
    const more = problems.length > MAX_PROBLEMS_SHOWN ? `<li class="more">and ${fmtCount(problems.length - MAX_PROBLEMS_SHOWN)} more</li>` : ''
    const cell = problems.length === 0 ? '<span class="muted">none</span>' : `<ul>${shown}${more}</ul>`
    return `<tr class="${checker.ok ? 'ok' : 'bad'}"><th scope="row">${esc(checker.name)}</th><td>${checker.ok ? '<span class="pill pass">ok</span>' : '<span class="pill fail">failed</span>'}</td><td>${cell}</td></tr>`
  })
  if (rows.length === 0) rows.push('<tr><td colspan="3" class="muted">no checkers ran</td></tr>')
  return `<table class="checkers"><thead><tr><th scope="col">checker</th><th scope="col">ok</th><th scope="col">problems</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
}

function capped<T> (items: T[], render: (item: T) => string, columns: number): string {
  const rows = items.slice(0, MAX_TABLE_ROWS).map(render)
  if (items.length > MAX_TABLE_ROWS) rows.push(`<tr><td colspan="${columns}" class="muted">and ${fmtCount(items.length - MAX_TABLE_ROWS)} more (see --json)</td></tr>`)
  if (items.length === 0) rows.push(`<tr><td colspan="${columns}" class="muted">none</td></tr>`)
  return rows.join('')
}

function detailSections (result: SimRunResult): string {
  const faults = result.faults ?? []
  const detections = result.detections ?? []
  const options = Object.entries(result.options ?? {})
  const json = (value: unknown): string => {
    try { return JSON.stringify(value) ?? String(value) } catch { return String(value) }
  }
  return [
    `<details><summary>Faults as applied (${fmtCount(faults.length)})</summary><table class="list"><thead><tr><th>at</th><th>fault</th><th>targets</th><th>detail</th></tr></thead><tbody>`,
    capped(faults, (f) => `<tr><td class="num">${esc(fmtMs(f.atMs))}</td><td>${esc(f.fault)}</td><td>${esc(listNames((f.targets ?? []).map(String), 8))}</td><td>${esc(truncate(String(f.detail ?? ''), 300))}</td></tr>`, 4),
    '</tbody></table></details>',
    `<details><summary>Detections (${fmtCount(detections.length)})</summary><table class="list"><thead><tr><th>node</th><th>fault</th><th>at</th><th>first suspicion</th><th>first dead</th><th>last dead</th><th>dead verdicts</th></tr></thead><tbody>`,
    capped(detections, (d) => `<tr><td>${esc(d.node)}</td><td>${esc(d.fault)}</td><td class="num">${esc(fmtMs(d.atMs))}</td><td class="num">${esc(fmtMs(d.firstSuspicionMs))}</td><td class="num">${esc(fmtMs(d.firstDeadMs))}</td><td class="num">${esc(fmtMs(d.lastDeadMs))}</td><td class="num">${esc(`${fmtCount(d.verdicts)} of ${fmtCount(d.survivors)}`)}</td></tr>`, 7),
    '</tbody></table></details>',
    `<details><summary>Options (${fmtCount(options.length)})</summary><table class="list"><tbody>`,
    capped(options, ([key, value]) => `<tr><th scope="row">${esc(key)}</th><td><code>${esc(truncate(json(value), 300))}</code></td></tr>`, 2),
    '</tbody></table></details>'
  ].join('')
}

// ---------------------------------------------------------------------------
// The page

const CSS = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1a202c;background:#fff;margin:0;padding:24px}
main{max-width:1000px;margin:0 auto}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
header{display:grid;grid-template-columns:1fr auto;gap:8px 24px;align-items:start}
.verdict{font-size:30px;font-weight:700;letter-spacing:.06em;padding:6px 22px;border-radius:8px;color:#fff}
.verdict.pass{background:#2f855a}.verdict.fail{background:#c53030}
dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:4px 16px;margin:8px 0;grid-column:1/-1}
dl.facts div{background:#f7fafc;border:1px solid #e2e8f0;border-radius:6px;padding:4px 8px}
dt{font-size:11px;text-transform:uppercase;color:#4a5568;letter-spacing:.04em}dd{margin:0;font-weight:600;overflow-wrap:anywhere}
pre{background:#1a202c;color:#f7fafc;padding:8px 12px;border-radius:6px;overflow-x:auto;margin:4px 0;grid-column:1/-1}
pre code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;overflow-wrap:anywhere}
.tables{display:grid;grid-template-columns:3fr 2fr;gap:16px;align-items:start}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border-bottom:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}
thead th{font-size:12px;color:#4a5568;background:#f7fafc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.bad th,tr.bad td{background:#fff5f5}
tr.bad td.num{color:#c53030;font-weight:700}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:700;color:#fff}
.pill.pass{background:#2f855a}.pill.fail{background:#c53030}
.checkers ul{margin:0;padding-left:18px;overflow-wrap:anywhere}
.muted{color:#718096}
.chart{margin:8px 0 0}
.chart svg{display:block;max-width:100%;height:auto;font:11px system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;fill:#2d3748}
.chart p.note{margin:4px 0;color:#4a5568;font-size:13px}
svg .axis line{stroke:#4a5568;stroke-width:1}
svg .grid line,svg line.grid{stroke:#e2e8f0;stroke-width:1}
svg .caption{fill:#4a5568;font-size:12px}
svg .empty{fill:#718096;font-size:16px}
svg .frame{fill:#fafafa;stroke:#e2e8f0}
svg .fault-line{stroke:#a0aec0;stroke-width:1;stroke-dasharray:2 3}
svg .line{fill:none;stroke-linejoin:round}
svg .quantile{stroke:#c53030;stroke-width:1.5;stroke-dasharray:4 3}
svg .quantile-label{fill:#c53030;font-weight:600}
svg .hover rect{fill:#000;fill-opacity:0}
svg .hover rect:hover{fill-opacity:.05}
svg .states rect:hover,svg .bars rect:hover{opacity:.75}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
table.list{font-size:13px}
`

function fact (name: string, value: string): string {
  return `<div><dt>${esc(name)}</dt><dd>${esc(value)}</dd></div>`
}

export function renderReport (result: SimRunResult, host?: SimHostFacts): string {
  const verdict = result.ok ? 'PASS' : 'FAIL'
  const facts = [
    fact('scenario', String(result.scenario)),
    fact('mode', String(result.mode)),
    fact('seed', String(result.seed)),
    fact('nodes', fmtCount(result.nodes)),
    fact('duration', fmtMs(result.durationMs))
  ]
  if (host !== undefined) {
    facts.push(
      fact('wall time', finite(host.wallSeconds) ? `${fmtNumber(host.wallSeconds)} s` : '—'),
      fact('peak RSS', finite(host.peakRssMiB) ? `${fmtNumber(host.peakRssMiB, 0)} MiB` : '—'),
      fact('virtual / wall', finite(host.virtualPerWall) ? `${fmtNumber(host.virtualPerWall)}×` : '—'),
      fact('node', String(host.node))
    )
  }
  const timeline = timelineChart(result)
  const failedCheckers = (result.checkers ?? []).filter((c) => !c.ok).length
  const title = `edge-agent sim: ${result.scenario} (seed ${result.seed}) ${verdict}`
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; img-src data:">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head><body><main>',
    '<header>',
    `<div><h1>edge-agent sim: ${esc(result.scenario)}</h1><div class="muted">${esc(`${result.mode} mode, seed ${result.seed}, ${fmtCount(result.nodes)} node${result.nodes === 1 ? '' : 's'}, ${fmtMs(result.durationMs)}`)}${failedCheckers > 0 ? esc(`, ${failedCheckers} checker${failedCheckers === 1 ? '' : 's'} failed`) : ''}</div></div>`,
    `<div class="verdict ${result.ok ? 'pass' : 'fail'}" data-verdict="${verdict}">${verdict}</div>`,
    `<dl class="facts">${facts.join('')}</dl>`,
    `<pre><code>${esc(result.replay)}</code></pre>`,
    '</header>',
    '<section><h2>Summary</h2>',
    summaryTables(result),
    '</section>',
    '<section><h2>Checkers</h2>',
    checkersTable(result),
    '</section>',
    '<section><h2>Node states and takeovers</h2>',
    `<div class="chart">${timeline.svg}${timeline.note ? `<p class="note">${esc(timeline.note)}</p>` : ''}</div>`,
    '</section>',
    '<section><h2>Takeover latency</h2>',
    `<div class="chart">${histogramChart(result)}</div>`,
    '</section>',
    '<section><h2>Bandwidth per node</h2>',
    `<div class="chart">${bandwidthChart(result)}</div>`,
    '</section>',
    '<section><h2>Details</h2>',
    detailSections(result),
    '</section>',
    '</main></body></html>',
    ''
  ].join('\n')
}
