// The charts of the `sim --report` page (sim/report.ts): node states over time,
// the takeover latency histogram and bandwidth per node over time, as SVG strings.
// Each merges marks that would fall on the same pixels, so its size is bounded.

import type { NodeStateName, SimRunResult } from './result.ts'
import { WIDTH, clamp, decimalsFor, diamond, emptyChart, esc, finite, fmtBytes, fmtCount, fmtMs, fmtNumber, groupByPixel, linear, listNames, maxOf, minOf, niceStep, px, svgOpen, text, ticks, timeTickFormat, titled, triangleDown, truncate, valueAxis, xAxis, yAxis } from './report-svg.ts'


// Timeline rows at most; with more nodes, only those that were ever not alive.
export const MAX_ROWS = 60
const MAX_STATE_BARS = 4000
const MAX_TAKEOVER_MARKS = 1500
const MAX_FAULT_MARKS = 600
const MAX_LINE_POINTS = 600
const MAX_HOVER_BANDS = 300

const STATES: NodeStateName[] = ['alive', 'crashed', 'paused', 'isolated']
const STATE_COLOURS: Record<string, string> = { alive: '#9fd8a8', crashed: '#d64541', paused: '#f0ad4e', isolated: '#8e6bbf' }
const FAULT_COLOURS: Record<string, string> = {
  crash: '#d64541', restart: '#2e8b57', pause: '#f0ad4e', resume: '#5b9bd5', partition: '#8e6bbf', heal: '#3aa6b9', loss: '#777777', delay: '#999999'
}
const TAKEOVER_COLOUR = '#1f3f8f'
const MEAN_COLOUR = '#2b6cb0'
const MAX_COLOUR = '#dd6b20'


// ---------------------------------------------------------------------------
// Node states over time

type Interval = { state: string; fromMs: number; toMs: number }

// Each node's state intervals from the timeline (a node with no entry at 0 is
// alive until its first one; a node with none is alive throughout).
function stateIntervals (result: SimRunResult, endMs: number): Map<string, Interval[]> {
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

export function timelineChart (result: SimRunResult): { svg: string; note: string } {
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

type Bins = { lo: number; step: number; counts: number[] }

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

export function histogramChart (result: SimRunResult): string {
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

export function bandwidthChart (result: SimRunResult): string {
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
