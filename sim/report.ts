// `edge-agent sim --report`: one run (sim/result.ts) as a single self-contained
// HTML page: inline CSS, SVG charts drawn here as strings, no scripts and no
// external resources (a Content-Security-Policy forbids both). Every string that
// comes from the run (node ids, fault details, checker problems, options) is
// escaped. The page is a function of its input alone (no clock), so two identical
// virtual runs give byte-identical reports, and its size is bounded whatever the
// run's size: the timeline shows at most MAX_ROWS nodes and every chart merges
// marks that would fall on the same pixels.

import type { NodeStateName, Quantiles, SimHostFacts, SimRunResult } from './result.ts'

// Timeline rows at most; with more nodes, only those that were ever not alive.
export const MAX_ROWS = 60
const MAX_STATE_BARS = 4000
const MAX_TAKEOVER_MARKS = 1500
const MAX_FAULT_MARKS = 600
const MAX_LINE_POINTS = 600
const MAX_HOVER_BANDS = 300
const MAX_TABLE_ROWS = 200
const MAX_PROBLEMS_SHOWN = 30

const WIDTH = 960
const STATES: NodeStateName[] = ['alive', 'crashed', 'paused', 'isolated']
const STATE_COLOURS: Record<string, string> = { alive: '#9fd8a8', crashed: '#d64541', paused: '#f0ad4e', isolated: '#8e6bbf' }
const FAULT_COLOURS: Record<string, string> = {
  crash: '#d64541', restart: '#2e8b57', pause: '#f0ad4e', resume: '#5b9bd5', partition: '#8e6bbf', heal: '#3aa6b9', loss: '#777777', delay: '#999999'
}
const TAKEOVER_COLOUR = '#1f3f8f'
const MEAN_COLOUR = '#2b6cb0'
const MAX_COLOUR = '#dd6b20'

// ---------------------------------------------------------------------------
// Escaping and formatting

export function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;')
}
const esc = escapeHtml

function finite (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}

// Coordinates to one decimal: the page stays small and the output stable.
function px (value: number): string {
  return String(Math.round(value * 10) / 10)
}

// Math.max(...values) overflows the stack on very long arrays; these do not.
function maxOf (values: number[], empty = 0): number {
  let out = -Infinity
  for (const v of values) if (v > out) out = v
  return out === -Infinity ? empty : out
}

function minOf (values: number[], empty = 0): number {
  let out = Infinity
  for (const v of values) if (v < out) out = v
  return out === Infinity ? empty : out
}

function clamp (value: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, value))
}

function thousands (value: number): string {
  const [whole, frac] = String(Math.abs(value)).split('.')
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  return (value < 0 ? '-' : '') + grouped + (frac === undefined ? '' : '.' + frac)
}

function fmtCount (value: unknown): string {
  return finite(value) ? thousands(Math.round(value)) : '—'
}

function fmtNumber (value: unknown, digits = 1): string {
  if (!finite(value)) return '—'
  return thousands(Number(value.toFixed(digits)))
}

export function fmtMs (value: number | null | undefined): string {
  if (!finite(value)) return '—'
  const abs = Math.abs(value)
  if (abs >= 120_000) {
    const minutes = Math.floor(abs / 60_000)
    const seconds = Math.round((abs - minutes * 60_000) / 1000)
    return `${value < 0 ? '-' : ''}${minutes} min ${seconds} s`
  }
  if (abs >= 10_000) return `${(value / 1000).toFixed(1)} s`
  if (abs >= 1000) return `${(value / 1000).toFixed(2)} s`
  if (abs >= 10) return `${Math.round(value)} ms`
  return `${Number(value.toFixed(1))} ms`
}

export function fmtBytes (value: number | null | undefined): string {
  if (!finite(value)) return '—'
  const abs = Math.abs(value)
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let unit = 0
  let scaled = abs
  while (scaled >= 1000 && unit < units.length - 1) { scaled /= 1000; unit++ }
  const digits = unit === 0 ? 0 : scaled >= 100 ? 0 : scaled >= 10 ? 1 : 2
  return `${value < 0 ? '-' : ''}${Number(scaled.toFixed(digits))} ${units[unit]}`
}

// The fewest decimals that show `step` exactly (2.5 → 1, 0.25 → 2).
function decimalsFor (step: number): number {
  for (let d = 0; d < 6; d++) {
    const scaled = step * 10 ** d
    if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return d
  }
  return 6
}

// Tick labels for a time axis in ms: seconds once the axis reaches 2 s.
function timeTickFormat (step: number, max: number): (v: number) => string {
  if (max >= 2000) {
    const digits = decimalsFor(step / 1000)
    return (v) => `${(v / 1000).toFixed(digits)} s`
  }
  const digits = decimalsFor(step)
  return (v) => `${v.toFixed(digits)} ms`
}

// ---------------------------------------------------------------------------
// Scales and ticks

// 1, 2, 2.5 or 5 × 10^k near span / target: at least it (`up`, so at most
// `target` steps fit the span) or the nearest (axis ticks).
function niceStep (span: number, target: number, up = true): number {
  if (!(span > 0) || !Number.isFinite(span)) return 1
  const raw = span / Math.max(1, target)
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const norm = raw / magnitude
  const multiple = up
    ? (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10)
    : (norm < 1.5 ? 1 : norm < 2.25 ? 2 : norm < 3.5 ? 2.5 : norm < 7.5 ? 5 : 10)
  return multiple * magnitude
}

function ticks (min: number, max: number, target: number): { step: number; values: number[] } {
  const step = niceStep(max - min, target, false)
  const values: number[] = []
  const first = Math.ceil(min / step - 1e-9)
  for (let i = first; values.length < 50; i++) {
    const value = Number((i * step).toPrecision(12))
    if (value > max + step * 1e-9) break
    values.push(value)
  }
  return { step, values }
}

// A value axis from 0: ticks of a nice step up to the first at or above `max`.
function valueAxis (max: number, target: number, integer: boolean): { top: number; values: number[] } {
  let step = niceStep(max, target, false)
  if (integer) step = Math.max(1, Math.round(step))
  const steps = Math.max(1, Math.ceil(max / step - 1e-9))
  const values = Array.from({ length: steps + 1 }, (_, i) => Number((i * step).toPrecision(12)))
  return { top: values[values.length - 1], values }
}

type Scale = (value: number) => number

function linear (d0: number, d1: number, r0: number, r1: number): Scale {
  const span = d1 - d0
  if (!(span > 0)) return () => r0
  return (value) => r0 + ((value - d0) / span) * (r1 - r0)
}

// ---------------------------------------------------------------------------
// SVG pieces

function svgOpen (chart: string, height: number, label: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" data-chart="${chart}" viewBox="0 0 ${WIDTH} ${px(height)}" width="${WIDTH}" height="${px(height)}" role="img" aria-label="${esc(label)}">`
}

// A chart with nothing to draw: a framed message, so the page keeps its shape.
function emptyChart (chart: string, label: string, message: string): string {
  const height = 120
  return `${svgOpen(chart, height, label)}${titled(message)}<rect class="frame" x="70" y="10" width="${WIDTH - 90}" height="${height - 20}"/>` +
    `${text(WIDTH / 2 + 25, height / 2 + 5, message, 'text-anchor="middle" class="empty"')}</svg>`
}

function text (x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${px(x)}" y="${px(y)}"${attrs ? ' ' + attrs : ''}>${esc(content)}</text>`
}

function titled (content: string): string {
  return `<title>${esc(content)}</title>`
}

function xAxis (scale: Scale, y: number, x0: number, x1: number, tickValues: number[], format: (v: number) => string, caption: string): string {
  const parts = [`<g class="axis"><line x1="${px(x0)}" y1="${px(y)}" x2="${px(x1)}" y2="${px(y)}"/>`]
  for (const value of tickValues) {
    const x = scale(value)
    parts.push(`<line x1="${px(x)}" y1="${px(y)}" x2="${px(x)}" y2="${px(y + 5)}"/>`)
    parts.push(text(x, y + 17, format(value), 'text-anchor="middle"'))
  }
  parts.push(text((x0 + x1) / 2, y + 34, caption, 'text-anchor="middle" class="caption"'))
  parts.push('</g>')
  return parts.join('')
}

function yAxis (scale: Scale, x: number, y0: number, y1: number, tickValues: number[], format: (v: number) => string, caption: string, gridTo: number): string {
  const parts = [`<g class="axis"><line x1="${px(x)}" y1="${px(y0)}" x2="${px(x)}" y2="${px(y1)}"/>`]
  for (const value of tickValues) {
    const y = scale(value)
    parts.push(`<line class="grid" x1="${px(x)}" y1="${px(y)}" x2="${px(gridTo)}" y2="${px(y)}"/>`)
    parts.push(`<line x1="${px(x - 5)}" y1="${px(y)}" x2="${px(x)}" y2="${px(y)}"/>`)
    parts.push(text(x - 8, y + 4, format(value), 'text-anchor="end"'))
  }
  parts.push(text(14, (y0 + y1) / 2, caption, `text-anchor="middle" class="caption" transform="rotate(-90 14 ${px((y0 + y1) / 2)})"`))
  parts.push('</g>')
  return parts.join('')
}

function diamond (x: number, y: number, r: number): string {
  return `M${px(x)} ${px(y - r)}L${px(x + r)} ${px(y)}L${px(x)} ${px(y + r)}L${px(x - r)} ${px(y)}Z`
}

function triangleDown (x: number, y: number, r: number): string {
  return `M${px(x - r)} ${px(y - r)}L${px(x + r)} ${px(y - r)}L${px(x)} ${px(y + r)}Z`
}

function truncate (value: string, max: number): string {
  return value.length <= max ? value : value.slice(0, max - 1) + '…'
}

function listNames (names: string[], max: number): string {
  const unique = [...new Set(names)]
  return unique.length <= max ? unique.join(', ') : `${unique.slice(0, max).join(', ')} and ${unique.length - max} more`
}

// Groups items whose x positions fall in the same bucket of one row; widens the
// buckets until there are at most `max` groups.
function groupByPixel<T> (items: T[], rowOf: (item: T) => number, xOf: (item: T) => number, max: number): Array<{ row: number; items: T[]; x: number }> {
  for (let bucket = 3; ; bucket *= 2) {
    const groups = new Map<string, { row: number; items: T[]; x: number }>()
    for (const item of items) {
      const row = rowOf(item)
      const key = `${row}:${Math.floor(xOf(item) / bucket)}`
      let group = groups.get(key)
      if (group === undefined) { group = { row, items: [], x: 0 }; groups.set(key, group) }
      group.items.push(item)
    }
    if (groups.size <= max || bucket > WIDTH) {
      const out = [...groups.values()]
      for (const group of out) group.x = group.items.reduce((sum, item) => sum + xOf(item), 0) / group.items.length
      return out
    }
  }
}

// ---------------------------------------------------------------------------
// Node states over time

type Interval = { state: string; fromMs: number; toMs: number }

// Each node's state intervals from the timeline (a node with no entry at 0 is
// alive until its first one; a node with none is alive throughout).
export function stateIntervals (result: SimRunResult, endMs: number): Map<string, Interval[]> {
  const events = (result.timeline ?? []).map((event, index) => ({ event, index }))
    .filter(({ event }) => finite(event.atMs))
    .sort((a, b) => a.event.atMs - b.event.atMs || a.index - b.index)
  const open = new Map<string, Interval>()
  const out = new Map<string, Interval[]>()
  const push = (node: string, interval: Interval): void => {
    if (!(interval.toMs > interval.fromMs)) return
    let list = out.get(node)
    if (list === undefined) { list = []; out.set(node, list) }
    list.push(interval)
  }
  for (const { event } of events) {
    const node = String(event.node)
    const current = open.get(node) ?? { state: 'alive', fromMs: 0, toMs: 0 }
    if (current.state === event.state && open.has(node)) continue
    push(node, { ...current, toMs: Math.max(current.fromMs, event.atMs) })
    open.set(node, { state: String(event.state), fromMs: Math.max(current.fromMs, event.atMs), toMs: 0 })
  }
  for (const [node, interval] of open) push(node, { ...interval, toMs: Math.max(interval.fromMs, endMs) })
  return out
}

// Merges same-state intervals closer than `gapMs`: bars thinner than a pixel
// stay visible and their number stays bounded.
function mergeIntervals (intervals: Interval[], gapMs: number): Array<Interval & { count: number; totalMs: number }> {
  const out: Array<Interval & { count: number; totalMs: number }> = []
  const byState = new Map<string, Interval[]>()
  for (const interval of intervals) {
    const list = byState.get(interval.state) ?? []
    list.push(interval)
    byState.set(interval.state, list)
  }
  for (const [, list] of byState) {
    let current: (Interval & { count: number; totalMs: number }) | null = null
    for (const interval of list) {
      if (current !== null && interval.fromMs - current.toMs < gapMs) {
        current.toMs = Math.max(current.toMs, interval.toMs)
        current.count++
        current.totalMs += interval.toMs - interval.fromMs
      } else {
        if (current !== null) out.push(current)
        current = { ...interval, count: 1, totalMs: interval.toMs - interval.fromMs }
      }
    }
    if (current !== null) out.push(current)
  }
  // Alive underneath, the rest on top.
  return out.sort((a, b) => (a.state === 'alive' ? 0 : 1) - (b.state === 'alive' ? 0 : 1) || a.fromMs - b.fromMs)
}

function endOfRun (result: SimRunResult): number {
  let end = finite(result.durationMs) ? result.durationMs : 0
  for (const event of result.timeline ?? []) if (finite(event.atMs)) end = Math.max(end, event.atMs)
  for (const fault of result.faults ?? []) if (finite(fault.atMs)) end = Math.max(end, fault.atMs)
  for (const takeover of result.takeovers ?? []) if (finite(takeover.atMs)) end = Math.max(end, takeover.atMs)
  return end > 0 ? end : 1
}

function faultColour (fault: string): string {
  const kind = Object.keys(FAULT_COLOURS).find((k) => fault.startsWith(k))
  return kind === undefined ? '#555555' : FAULT_COLOURS[kind]
}

function describeFault (fault: SimRunResult['faults'][number]): string {
  const targets = Array.isArray(fault.targets) && fault.targets.length > 0 ? ' ' + listNames(fault.targets.map(String), 5) : ''
  const detail = fault.detail ? ` (${truncate(String(fault.detail), 160)})` : ''
  return `${fmtMs(fault.atMs)}: ${fault.fault}${targets}${detail}`
}

function timelineChart (result: SimRunResult): { svg: string; note: string } {
  const endMs = endOfRun(result)
  const intervals = stateIntervals(result, endMs)
  // Node order: the run's order, then any node only the timeline names.
  const ids: string[] = []
  const seen = new Set<string>()
  for (const id of [...(result.nodeIds ?? []).map(String), ...intervals.keys()]) if (!seen.has(id)) { seen.add(id); ids.push(id) }
  const troubled = ids.filter((id) => (intervals.get(id) ?? []).some((i) => i.state !== 'alive'))
  const shown = ids.length <= MAX_ROWS ? ids : troubled.slice(0, MAX_ROWS)
  const hidden = ids.length - shown.length
  const rowIndex = new Map(shown.map((id, i) => [id, i]))
  const takeovers = (result.takeovers ?? []).filter((t) => finite(t.atMs))
  const orphanTakeovers = takeovers.some((t) => !rowIndex.has(String(t.to)))
  const otherRow = hidden > 0 || orphanTakeovers ? shown.length : -1
  const rows = shown.length + (otherRow >= 0 ? 1 : 0)

  let note = ''
  if (hidden > 0) {
    const hiddenTroubled = troubled.length - shown.length
    note = hiddenTroubled === 0
      ? `Showing the ${fmtCount(shown.length)} of ${fmtCount(ids.length)} nodes that were crashed, paused or isolated at some point; ${fmtCount(hidden)} nodes alive throughout are hidden (takeovers to them are on the last row).`
      : `Showing the first ${fmtCount(shown.length)} of the ${fmtCount(troubled.length)} nodes that were crashed, paused or isolated at some point (of ${fmtCount(ids.length)} nodes); ${fmtCount(hidden)} nodes are hidden, ${fmtCount(hiddenTroubled)} of them not alive throughout (takeovers to hidden nodes are on the last row).`
  }

  const labels = shown.map((id) => truncate(id, 22))
  if (otherRow >= 0) labels.push(hidden > 0 ? `+${fmtCount(hidden)} more` : 'other nodes')
  const labelWidth = clamp(Math.max(6, ...labels.map((l) => l.length)) * 7 + 16, 70, 180)
  const x0 = labelWidth
  const x1 = WIDTH - 20
  const rowHeight = rows <= 24 ? 18 : rows <= 40 ? 14 : 12
  const barHeight = rowHeight - 4
  const legendY = 14
  const faultY = 42
  const rowsTop = 62
  const rowsBottom = rowsTop + Math.max(1, rows) * rowHeight
  const height = rowsBottom + 48
  const x = linear(0, endMs, x0, x1)
  const rowY = (row: number): number => rowsTop + row * rowHeight
  const axisTicks = ticks(0, endMs, 10)
  const format = timeTickFormat(axisTicks.step, endMs)

  const parts = [svgOpen('timeline', height, 'Node states and takeovers over time')]
  parts.push(titled('Node states, faults and takeovers over time'))

  // Legend.
  let lx = x0
  for (const state of STATES) {
    parts.push(`<rect x="${px(lx)}" y="${legendY - 9}" width="14" height="10" fill="${STATE_COLOURS[state]}"/>`)
    parts.push(text(lx + 18, legendY, state))
    lx += 30 + state.length * 6.6
  }
  parts.push(`<path d="${diamond(lx + 6, legendY - 4, 5)}" fill="${TAKEOVER_COLOUR}"/>`)
  parts.push(text(lx + 16, legendY, 'takeover (new owner\'s row)'))
  lx += 190
  parts.push(`<path d="${triangleDown(lx + 6, legendY - 4, 5)}" fill="#555555"/>`)
  parts.push(text(lx + 16, legendY, 'fault'))

  // Grid and row backgrounds.
  parts.push('<g class="grid">')
  for (const value of axisTicks.values) parts.push(`<line x1="${px(x(value))}" y1="${faultY - 8}" x2="${px(x(value))}" y2="${px(rowsBottom)}"/>`)
  parts.push('</g>')
  parts.push('<g class="rows">')
  for (let row = 0; row < rows; row++) {
    if (row % 2 === 1) parts.push(`<rect x="${px(x0)}" y="${px(rowY(row))}" width="${px(x1 - x0)}" height="${rowHeight}" fill="#f4f6f8"/>`)
  }
  parts.push('</g>')

  // Row labels.
  parts.push(`<g class="labels" font-size="${rowHeight >= 14 ? 11 : 10}">`)
  parts.push(text(x0 - 8, faultY + 4, 'faults', 'text-anchor="end" font-style="italic"'))
  shown.forEach((id, row) => {
    parts.push(`<text x="${px(x0 - 8)}" y="${px(rowY(row) + rowHeight / 2 + 4)}" text-anchor="end">${titled(id)}${esc(labels[row])}</text>`)
  })
  if (otherRow >= 0) {
    const tip = hidden > 0 ? `${fmtCount(hidden)} nodes not drawn; takeovers to them are marked here` : 'takeovers to nodes not in the run\'s node list'
    parts.push(`<text x="${px(x0 - 8)}" y="${px(rowY(otherRow) + rowHeight / 2 + 4)}" text-anchor="end" font-style="italic">${titled(tip)}${esc(labels[otherRow])}</text>`)
  }
  parts.push('</g>')

  // State bars: merge same-state intervals closer than a few pixels until the
  // number of bars is bounded.
  const msPerPx = endMs / (x1 - x0)
  let merged: Array<{ id: string; row: number; bars: ReturnType<typeof mergeIntervals> }> = []
  for (let gapPx = 0.5; ; gapPx *= 2) {
    merged = shown.map((id, row) => ({ id, row, bars: mergeIntervals(intervals.get(id) ?? [{ state: 'alive', fromMs: 0, toMs: endMs }], gapPx * msPerPx) }))
    const total = merged.reduce((n, m) => n + m.bars.length, 0)
    if (total <= MAX_STATE_BARS || gapPx > WIDTH) break
  }
  // Faults: a dashed line down through the rows (when few), a marker on the strip.
  const faults = (result.faults ?? []).filter((f) => finite(f.atMs))
  const faultGroups = groupByPixel(faults, () => 0, (f) => x(f.atMs), MAX_FAULT_MARKS)
  if (faultGroups.length <= 40) {
    parts.push('<g class="fault-lines">')
    for (const group of faultGroups) parts.push(`<line class="fault-line" x1="${px(group.x)}" y1="${faultY + 6}" x2="${px(group.x)}" y2="${px(rowsBottom)}"/>`)
    parts.push('</g>')
  }
  parts.push('<g class="states">')
  for (const { id, row, bars } of merged) {
    const y = rowY(row) + (rowHeight - barHeight) / 2
    for (const bar of bars) {
      const left = x(bar.fromMs)
      const width = Math.max(1, x(bar.toMs) - left)
      const tip = bar.count === 1
        ? `${id}: ${bar.state} from ${fmtMs(bar.fromMs)} to ${fmtMs(bar.toMs)} (${fmtMs(bar.toMs - bar.fromMs)})`
        : `${id}: ${bar.state} ${bar.count} times between ${fmtMs(bar.fromMs)} and ${fmtMs(bar.toMs)} (${fmtMs(bar.totalMs)} in all)`
      parts.push(`<rect x="${px(left)}" y="${px(y)}" width="${px(width)}" height="${barHeight}" fill="${STATE_COLOURS[bar.state] ?? '#bbbbbb'}" data-state="${esc(bar.state)}">${titled(tip)}</rect>`)
    }
  }
  parts.push('</g>')

  // Fault markers on the top strip.
  parts.push('<g class="faults">')
  for (const group of faultGroups) {
    const first = group.items[0]
    const lines = group.items.slice(0, 10).map(describeFault)
    if (group.items.length > 10) lines.push(`and ${group.items.length - 10} more faults`)
    parts.push(`<path d="${triangleDown(group.x, faultY, group.items.length > 1 ? 6 : 5)}" fill="${faultColour(String(first.fault))}" stroke="#ffffff" stroke-width="0.8">${titled(lines.join('\n'))}</path>`)
  }
  parts.push('</g>')

  // Takeovers on the new owner's row.
  const takeoverGroups = groupByPixel(takeovers, (t) => rowIndex.get(String(t.to)) ?? otherRow, (t) => x(t.atMs), MAX_TAKEOVER_MARKS)
  parts.push('<g class="takeovers">')
  for (const group of takeoverGroups) {
    if (group.row < 0) continue
    const cy = rowY(group.row) + rowHeight / 2
    let tip: string
    if (group.items.length === 1) {
      const t = group.items[0]
      tip = `takeover of ${t.sessionId} from ${t.from} to ${t.to} at ${fmtMs(t.atMs)}, ${fmtMs(t.latencyMs)} after the fault`
    } else {
      const items = group.items
      const latencies = items.map((t) => t.latencyMs).filter(finite)
      const at = items.map((t) => t.atMs)
      tip = `${items.length} takeovers between ${fmtMs(minOf(at))} and ${fmtMs(maxOf(at))} to ${listNames(items.map((t) => String(t.to)), 4)}` +
        (latencies.length > 0 ? `, latency ${fmtMs(minOf(latencies))} to ${fmtMs(maxOf(latencies))}` : '')
    }
    const r = Math.min(barHeight / 2 + 1, group.items.length > 1 ? 6 : 5)
    parts.push(`<path d="${diamond(group.x, cy, r)}" fill="${TAKEOVER_COLOUR}" stroke="#ffffff" stroke-width="0.8">${titled(tip)}</path>`)
  }
  parts.push('</g>')

  if (shown.length === 0 && otherRow < 0) parts.push(text((x0 + x1) / 2, rowsTop + rowHeight / 2 + 4, 'no nodes in this run', 'text-anchor="middle" class="empty"'))
  parts.push(xAxis(x, rowsBottom + 4, x0, x1, axisTicks.values, format, 'time since the start of the run'))
  parts.push('</svg>')
  return { svg: parts.join(''), note }
}

// ---------------------------------------------------------------------------
// Takeover latency histogram

export type Bins = { lo: number; step: number; counts: number[] }

// Bins of a "nice" width (1, 2, 2.5 or 5 × 10^k) aligned on multiples of it:
// 10 to 21 bins for any spread of values, one per value range.
export function binLatencies (values: number[]): Bins {
  const data = values.filter(finite)
  if (data.length === 0) return { lo: 0, step: 1, counts: [] }
  let min = Infinity
  let max = -Infinity
  for (const v of data) { if (v < min) min = v; if (v > max) max = v }
  // Spreads under a microsecond are one value (and keep the step a sane number).
  const span = max - min >= 1e-3 ? max - min : Math.max(1, Math.abs(min) * 0.2)
  const step = niceStep(span, 20)
  let lo = Math.floor(min / step) * step
  let count = Math.floor((max - lo) / step) + 1
  // One value: put it in the middle of ten bins.
  if (count < 10) { lo = Math.max(min >= 0 ? 0 : -Infinity, lo - Math.floor((10 - count) / 2) * step); count = Math.max(10, Math.floor((max - lo) / step) + 1) }
  const counts = new Array<number>(count).fill(0)
  for (const v of data) counts[clamp(Math.floor((v - lo) / step), 0, count - 1)]++
  return { lo: Number(lo.toPrecision(12)), step, counts }
}

function histogramChart (result: SimRunResult): string {
  const height = 300
  const x0 = 70
  const x1 = WIDTH - 20
  const y0 = 36
  const y1 = height - 50
  const latencies = (result.takeovers ?? []).map((t) => t.latencyMs).filter(finite)
  if (latencies.length === 0) return emptyChart('takeover-histogram', 'Histogram of takeover latency', 'no takeovers in this run')
  const parts = [svgOpen('takeover-histogram', height, 'Histogram of takeover latency')]
  parts.push(titled('Takeover latency: ms from the fault that removed the owner to the first acknowledgement by a new owner'))
  const bins = binLatencies(latencies)
  const hi = bins.lo + bins.step * bins.counts.length
  const x = linear(bins.lo, hi, x0, x1)
  const maxCount = maxOf(bins.counts)
  const yTicks = valueAxis(maxCount, 5, true)
  const y = linear(0, yTicks.top, y1, y0)
  parts.push(yAxis(y, x0, y0, y1, yTicks.values, (v) => fmtCount(v), 'takeovers', x1))
  const xTicks = ticks(bins.lo, hi, 8)
  const digits = decimalsFor(bins.step)
  parts.push('<g class="bars">')
  bins.counts.forEach((count, i) => {
    if (count === 0) return
    const from = bins.lo + i * bins.step
    const left = x(from)
    const width = Math.max(1, x(from + bins.step) - left - 1)
    const top = y(count)
    const range = `${Number(from.toFixed(digits))}–${Number((from + bins.step).toFixed(digits))} ms`
    parts.push(`<rect x="${px(left + 0.5)}" y="${px(top)}" width="${px(width)}" height="${px(y1 - top)}" fill="${TAKEOVER_COLOUR}" data-count="${count}">${titled(`${range}: ${count} takeover${count === 1 ? '' : 's'}`)}</rect>`)
  })
  parts.push('</g>')
  // Quantile lines (p50 label on the first line, p99 on the second).
  const q = result.takeover
  const marks: Array<[string, number | null | undefined, number]> = [['p50', q?.p50, 14], ['p99', q?.p99, 28]]
  for (const [name, value, labelY] of marks) {
    if (!finite(value)) continue
    const vx = x(clamp(value, bins.lo, hi))
    const anchor = vx > x1 - 80 ? 'end' : 'start'
    parts.push(`<line class="quantile" x1="${px(vx)}" y1="${y0 - 4}" x2="${px(vx)}" y2="${px(y1)}">${titled(`${name} ${fmtMs(value)}`)}</line>`)
    parts.push(text(anchor === 'end' ? vx - 4 : vx + 4, labelY, `${name} ${fmtMs(value)}`, `text-anchor="${anchor}" class="quantile-label"`))
  }
  parts.push(xAxis(x, y1, x0, x1, xTicks.values, timeTickFormat(xTicks.step, hi), `takeover latency (${fmtCount(latencies.length)} takeover${latencies.length === 1 ? '' : 's'})`))
  parts.push('</svg>')
  return parts.join('')
}

// ---------------------------------------------------------------------------
// Bandwidth per node over time

type Sample = { atMs: number; mean: number; max: number; messages: number }

// At most `max` points: each the mean of its samples' means, the max of their
// maxima, at their mean time.
function downsample (samples: Sample[], max: number): Sample[] {
  if (samples.length <= max) return samples
  const out: Sample[] = []
  for (let i = 0; i < max; i++) {
    const from = Math.floor((i * samples.length) / max)
    const to = Math.floor(((i + 1) * samples.length) / max)
    const chunk = samples.slice(from, to)
    if (chunk.length === 0) continue
    out.push({
      atMs: chunk.reduce((s, c) => s + c.atMs, 0) / chunk.length,
      mean: chunk.reduce((s, c) => s + c.mean, 0) / chunk.length,
      max: maxOf(chunk.map((c) => c.max)),
      messages: chunk.reduce((s, c) => s + c.messages, 0) / chunk.length
    })
  }
  return out
}

function bandwidthChart (result: SimRunResult): string {
  const height = 320
  const x0 = 84
  const x1 = WIDTH - 20
  const y0 = 36
  const y1 = height - 50
  const samples: Sample[] = (result.traffic?.series ?? [])
    .filter((s) => finite(s.atMs))
    .map((s) => ({
      atMs: s.atMs,
      mean: finite(s.bytesPerNodePerSec) ? s.bytesPerNodePerSec : 0,
      max: finite(s.maxBytesPerNodePerSec) ? s.maxBytesPerNodePerSec : 0,
      messages: finite(s.messagesPerNodePerSec) ? s.messagesPerNodePerSec : 0
    }))
    .sort((a, b) => a.atMs - b.atMs)
  if (samples.length === 0) return emptyChart('bandwidth', 'Bandwidth per node over time', 'no traffic samples in this run')
  const parts = [svgOpen('bandwidth', height, 'Bandwidth per node over time')]
  parts.push(titled('Bytes sent per node per second over the run: mean over nodes and the busiest node'))
  const startMs = Math.min(0, samples[0].atMs)
  const endMs = Math.max(finite(result.durationMs) ? result.durationMs : 0, samples[samples.length - 1].atMs, startMs + 1)
  const x = linear(startMs, endMs, x0, x1)
  const peak = Math.max(1, maxOf(samples.map((s) => Math.max(s.mean, s.max))))
  const yTicks = valueAxis(peak, 5, false)
  const y = linear(0, yTicks.top, y1, y0)
  parts.push(yAxis(y, x0, y0, y1, yTicks.values, (v) => `${fmtBytes(v)}/s`, 'bytes per node per second', x1))
  const xTicks = ticks(startMs, endMs, 10)
  parts.push(xAxis(x, y1, x0, x1, xTicks.values, timeTickFormat(xTicks.step, endMs), 'time since the start of the run'))

  // Legend.
  parts.push(`<line x1="${x0}" y1="16" x2="${x0 + 24}" y2="16" stroke="${MEAN_COLOUR}" stroke-width="2.5"/>`)
  parts.push(text(x0 + 30, 20, 'mean over nodes'))
  parts.push(`<line x1="${x0 + 150}" y1="16" x2="${x0 + 174}" y2="16" stroke="${MAX_COLOUR}" stroke-width="2" stroke-dasharray="6 3"/>`)
  parts.push(text(x0 + 180, 20, 'busiest node'))
  const interval = finite(result.traffic?.intervalMs) ? `, one sample per ${fmtMs(result.traffic.intervalMs)}` : ''
  parts.push(text(x1, 20, `${fmtCount(samples.length)} samples${interval}`, 'text-anchor="end" class="caption"'))

  // Hover bands (under the lines): one per (merged) sample, with its figures.
  const bands = downsample(samples, MAX_HOVER_BANDS)
  parts.push('<g class="hover">')
  bands.forEach((s, i) => {
    const left = i === 0 ? x0 : (x(bands[i - 1].atMs) + x(s.atMs)) / 2
    const right = i === bands.length - 1 ? x1 : (x(s.atMs) + x(bands[i + 1].atMs)) / 2
    if (!(right > left)) return
    const tip = `${fmtMs(s.atMs)}: mean ${fmtBytes(s.mean)}/s, busiest node ${fmtBytes(s.max)}/s, ${fmtNumber(s.messages)} messages/s per node`
    parts.push(`<rect x="${px(left)}" y="${y0}" width="${px(right - left)}" height="${y1 - y0}">${titled(tip)}</rect>`)
  })
  parts.push('</g>')
  const points = downsample(samples, MAX_LINE_POINTS)
  const path = (value: (s: Sample) => number): string => points.map((s, i) => `${i === 0 ? 'M' : 'L'}${px(x(s.atMs))} ${px(y(value(s)))}`).join('')
  parts.push(`<path class="line" d="${path((s) => s.max)}" stroke="${MAX_COLOUR}" stroke-width="2" stroke-dasharray="6 3">${titled(`busiest node: peak ${fmtBytes(maxOf(samples.map((s) => s.max)))}/s`)}</path>`)
  parts.push(`<path class="line" d="${path((s) => s.mean)}" stroke="${MEAN_COLOUR}" stroke-width="2.5">${titled(`mean over nodes: ${fmtBytes(result.traffic?.bytesPerNodePerSec)}/s over the run`)}</path>`)
  if (points.length <= 80) {
    for (const s of points) {
      parts.push(`<circle cx="${px(x(s.atMs))}" cy="${px(y(s.mean))}" r="2.5" fill="${MEAN_COLOUR}">${titled(`${fmtMs(s.atMs)}: mean ${fmtBytes(s.mean)}/s`)}</circle>`)
    }
  }
  parts.push('</svg>')
  return parts.join('')
}

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
