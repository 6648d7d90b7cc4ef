// Formatting, escaping, scales and SVG pieces for the `sim --report` page
// (sim/report.ts). Pure functions of their input: no clock, no randomness.


export const WIDTH = 960

// ---------------------------------------------------------------------------
// Escaping and formatting

function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;')
}
export const esc = escapeHtml

export function finite (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}

// Coordinates to one decimal: the page stays small and the output stable.
export function px (value: number): string {
  return String(Math.round(value * 10) / 10)
}

// Math.max(...values) overflows the stack on very long arrays; these do not.
export function maxOf (values: number[], empty = 0): number {
  let out = -Infinity
  for (const v of values) if (v > out) out = v
  return out === -Infinity ? empty : out
}

export function minOf (values: number[], empty = 0): number {
  let out = Infinity
  for (const v of values) if (v < out) out = v
  return out === Infinity ? empty : out
}

export function clamp (value: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, value))
}

function thousands (value: number): string {
  const [whole, frac] = String(Math.abs(value)).split('.')
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  return (value < 0 ? '-' : '') + grouped + (frac === undefined ? '' : '.' + frac)
}

export function fmtCount (value: unknown): string {
  return finite(value) ? thousands(Math.round(value)) : '—'
}

export function fmtNumber (value: unknown, digits = 1): string {
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
export function decimalsFor (step: number): number {
  for (let d = 0; d < 6; d++) {
    const scaled = step * 10 ** d
    if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return d
  }
  return 6
}

// Tick labels for a time axis in ms: seconds once the axis reaches 2 s.
export function timeTickFormat (step: number, max: number): (v: number) => string {
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
export function niceStep (span: number, target: number, up = true): number {
  if (!(span > 0) || !Number.isFinite(span)) return 1
  const raw = span / Math.max(1, target)
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const norm = raw / magnitude
  const multiple = up
    ? (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10)
    : (norm < 1.5 ? 1 : norm < 2.25 ? 2 : norm < 3.5 ? 2.5 : norm < 7.5 ? 5 : 10)
  return multiple * magnitude
}

export function ticks (min: number, max: number, target: number): { step: number; values: number[] } {
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
export function valueAxis (max: number, target: number, integer: boolean): { top: number; values: number[] } {
  let step = niceStep(max, target, false)
  if (integer) step = Math.max(1, Math.round(step))
  const steps = Math.max(1, Math.ceil(max / step - 1e-9))
  const values = Array.from({ length: steps + 1 }, (_, i) => Number((i * step).toPrecision(12)))
  return { top: values[values.length - 1], values }
}

type Scale = (value: number) => number

export function linear (d0: number, d1: number, r0: number, r1: number): Scale {
  const span = d1 - d0
  if (!(span > 0)) return () => r0
  return (value) => r0 + ((value - d0) / span) * (r1 - r0)
}

// ---------------------------------------------------------------------------
// SVG pieces

export function svgOpen (chart: string, height: number, label: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" data-chart="${chart}" viewBox="0 0 ${WIDTH} ${px(height)}" width="${WIDTH}" height="${px(height)}" role="img" aria-label="${esc(label)}">`
}

// A chart with nothing to draw: a framed message, so the page keeps its shape.
export function emptyChart (chart: string, label: string, message: string): string {
  const height = 120
  return `${svgOpen(chart, height, label)}${titled(message)}<rect class="frame" x="70" y="10" width="${WIDTH - 90}" height="${height - 20}"/>` +
    `${text(WIDTH / 2 + 25, height / 2 + 5, message, 'text-anchor="middle" class="empty"')}</svg>`
}

export function text (x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${px(x)}" y="${px(y)}"${attrs ? ' ' + attrs : ''}>${esc(content)}</text>`
}

export function titled (content: string): string {
  return `<title>${esc(content)}</title>`
}

export function xAxis (scale: Scale, y: number, x0: number, x1: number, tickValues: number[], format: (v: number) => string, caption: string): string {
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

export function yAxis (scale: Scale, x: number, y0: number, y1: number, tickValues: number[], format: (v: number) => string, caption: string, gridTo: number): string {
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

export function diamond (x: number, y: number, r: number): string {
  return `M${px(x)} ${px(y - r)}L${px(x + r)} ${px(y)}L${px(x)} ${px(y + r)}L${px(x - r)} ${px(y)}Z`
}

export function triangleDown (x: number, y: number, r: number): string {
  return `M${px(x - r)} ${px(y - r)}L${px(x + r)} ${px(y - r)}L${px(x)} ${px(y + r)}Z`
}

export function truncate (value: string, max: number): string {
  return value.length <= max ? value : value.slice(0, max - 1) + '…'
}

export function listNames (names: string[], max: number): string {
  const unique = [...new Set(names)]
  return unique.length <= max ? unique.join(', ') : `${unique.slice(0, max).join(', ')} and ${unique.length - max} more`
}

// Groups items whose x positions fall in the same bucket of one row; widens the
// buckets until there are at most `max` groups.
export function groupByPixel<T> (items: T[], rowOf: (item: T) => number, xOf: (item: T) => number, max: number): Array<{ row: number; items: T[]; x: number }> {
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
