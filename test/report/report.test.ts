// The `--report` page (sim/report.ts): its content, its escaping and its size
// bounds without a browser, then the page itself in headless Chromium (Debian's
// `chromium` package driven by playwright-core): the three charts are there,
// visible, drawn, and the page logs no error and loads nothing.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as fc from 'fast-check'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium } from 'playwright-core'
import { MAX_ROWS, binLatencies, renderReport } from '../../sim/report.ts'
import type { NodeStateName, Quantiles, SimHostFacts, SimRunResult } from '../../sim/result.ts'

const CHROMIUM = '/usr/bin/chromium'
const CHARTS = ['timeline', 'takeover-histogram', 'bandwidth']

// ---------------------------------------------------------------------------
// Synthetic runs

type Shape = {
  nodes: number
  durationMs: number
  seed?: number
  ids?: string[]
  crashes?: number
  pauses?: number
  isolations?: number
  takeovers?: number
  samples?: number
  failing?: boolean
}

function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function quantiles (values: number[]): Quantiles {
  if (values.length === 0) return { n: 0, p50: null, p90: null, p99: null, max: null }
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  return { n: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] }
}

function synthetic (shape: Shape): SimRunResult {
  const random = prng(shape.seed ?? 1)
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]
  const ids = shape.ids ?? Array.from({ length: shape.nodes }, (_, i) => `sim-${String(i).padStart(String(shape.nodes).length, '0')}`)
  const duration = shape.durationMs
  const timeline: SimRunResult['timeline'] = ids.map((node) => ({ atMs: 0, node, state: 'alive' as NodeStateName }))
  const faults: SimRunResult['faults'] = []
  const detections: SimRunResult['detections'] = []
  const outages: Array<{ node: string; atMs: number }> = []
  const outage = (count: number, state: NodeStateName, down: string, up: string): void => {
    for (let i = 0; i < count && ids.length > 0; i++) {
      const node = pick(ids)
      const atMs = Math.round(duration * (0.05 + 0.7 * random()))
      const backMs = Math.min(duration, atMs + Math.round(2000 + random() * 8000))
      timeline.push({ atMs, node, state }, { atMs: backMs, node, state: 'alive' })
      faults.push({ atMs, fault: down, targets: [node], detail: `${down} ${node}` }, { atMs: backMs, fault: up, targets: [node], detail: '' })
      outages.push({ node, atMs })
      if (state !== 'isolated') {
        detections.push({ node, fault: state === 'crashed' ? 'crash' : 'pause', atMs, firstSuspicionMs: 400 + Math.round(random() * 300), firstDeadMs: 1200 + Math.round(random() * 400), lastDeadMs: random() < 0.1 ? null : 1700 + Math.round(random() * 600), verdicts: ids.length - 1, survivors: ids.length - 1 })
      }
    }
  }
  outage(shape.crashes ?? 0, 'crashed', 'crash', 'restart')
  outage(shape.pauses ?? 0, 'paused', 'pause', 'resume')
  outage(shape.isolations ?? 0, 'isolated', 'partition', 'heal')
  timeline.sort((a, b) => a.atMs - b.atMs)
  faults.sort((a, b) => a.atMs - b.atMs)

  const takeovers: SimRunResult['takeovers'] = []
  for (let i = 0; i < (shape.takeovers ?? 0) && outages.length > 0; i++) {
    const cause = pick(outages)
    const latencyMs = Math.round(1400 + random() * 1200 + (random() < 0.05 ? 3000 : 0))
    takeovers.push({ sessionId: `session-${i}`, atMs: cause.atMs + latencyMs, from: cause.node, to: pick(ids), latencyMs })
  }

  const samples = shape.samples ?? 0
  const intervalMs = samples > 0 ? duration / samples : 1000
  const series = Array.from({ length: samples }, (_, i) => {
    const atMs = Math.round((i + 1) * intervalMs)
    const mean = 1800 + 600 * Math.sin(i / 7) + random() * 300
    return { atMs, bytesPerNodePerSec: mean, messagesPerNodePerSec: mean / 120, maxBytesPerNodePerSec: mean * (1.4 + random() * 0.8) }
  })
  const latencies = takeovers.map((t) => t.latencyMs)
  return {
    replay: `SEED=${shape.seed ?? 1} edge-agent sim --nodes ${shape.nodes} --duration ${duration / 1000}s`,
    seed: shape.seed ?? 1,
    mode: 'virtual',
    scenario: 'churn',
    nodes: ids.length,
    durationMs: duration,
    options: { nodes: ids.length, durationMs: duration, profile: 'lan', churn: { crashes: shape.crashes ?? 0 } },
    nodeIds: ids,
    timeline,
    faults,
    detections,
    detection: {
      firstSuspicionMs: quantiles(detections.map((d) => d.firstSuspicionMs ?? 0)),
      firstDeadMs: quantiles(detections.map((d) => d.firstDeadMs ?? 0)),
      lastDeadMs: quantiles(detections.flatMap((d) => d.lastDeadMs === null ? [] : [d.lastDeadMs]))
    },
    dissemination: quantiles(detections.map(() => 300 + random() * 500)),
    takeovers,
    takeover: quantiles(latencies),
    traffic: {
      intervalMs,
      series,
      bytesPerNodePerSec: series.length === 0 ? 0 : series.reduce((s, x) => s + x.bytesPerNodePerSec, 0) / series.length,
      messagesPerNodePerSec: series.length === 0 ? 0 : series.reduce((s, x) => s + x.messagesPerNodePerSec, 0) / series.length
    },
    deltas: { terminals: 4, sessions: 8, acknowledged: 12345, perSec: 41.2, latencyMs: quantiles([12, 15, 18, 22, 40]) },
    falseDead: shape.failing === true ? 2 : 0,
    checkers: [
      { name: 'single owner per epoch', ok: true, problems: [] },
      { name: 'no acknowledged delta lost', ok: shape.failing !== true, problems: shape.failing === true ? ['session-3: delta 17 acknowledged at 12.0 s missing from the owner\'s log'] : [] },
      { name: 'membership converges', ok: true, problems: [] }
    ],
    ok: shape.failing !== true
  }
}

function emptyRun (): SimRunResult {
  const none: Quantiles = { n: 0, p50: null, p90: null, p99: null, max: null }
  return {
    replay: 'SEED=0 edge-agent sim --nodes 0',
    seed: 0,
    mode: 'real',
    scenario: 'empty',
    nodes: 0,
    durationMs: 0,
    options: {},
    nodeIds: [],
    timeline: [],
    faults: [],
    detections: [],
    detection: { firstSuspicionMs: none, firstDeadMs: none, lastDeadMs: none },
    dissemination: none,
    takeovers: [],
    takeover: none,
    traffic: { intervalMs: 1000, series: [], bytesPerNodePerSec: 0, messagesPerNodePerSec: 0 },
    deltas: { terminals: 0, sessions: 0, acknowledged: 0, perSec: 0, latencyMs: none },
    falseDead: 0,
    checkers: [],
    ok: true
  }
}

const HOST: SimHostFacts = { wallSeconds: 12.4, peakRssMiB: 512, virtualPerWall: 48.4, node: 'v24.21.0' }

// ---------------------------------------------------------------------------
// Structural checks on the HTML text

function chartSvg (html: string, chart: string): string {
  const start = html.indexOf(`<svg xmlns="http://www.w3.org/2000/svg" data-chart="${chart}"`)
  assert.ok(start >= 0, `no <svg data-chart="${chart}"> in the page`)
  const end = html.indexOf('</svg>', start)
  assert.ok(end > start, `<svg data-chart="${chart}"> is not closed`)
  return html.slice(start, end + '</svg>'.length)
}

function count (text: string, pattern: RegExp): number {
  return (text.match(new RegExp(pattern.source, 'g')) ?? []).length
}

const VOID = new Set(['meta', 'br', 'hr', 'img', 'input', 'link'])

// Every tag closes in order, every attribute is quoted, no attribute is an event
// handler, and the only raw-text element is the one <style>.
function assertWellFormed (html: string): void {
  assert.ok(html.startsWith('<!DOCTYPE html>\n'), 'page starts with a doctype')
  const body = html.slice('<!DOCTYPE html>\n'.length).replace(/<style>[^<]*<\/style>/, '<style></style>')
  const stack: string[] = []
  const tag = /<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<>]*")*)\s*(\/?)>/y
  let i = 0
  while (i < body.length) {
    const lt = body.indexOf('<', i)
    if (lt < 0) break
    tag.lastIndex = lt
    const match = tag.exec(body)
    assert.ok(match !== null, `malformed tag at ${lt}: ${body.slice(lt, lt + 80)}`)
    const [whole, closing, name, attrs, selfClosing] = match
    for (const attr of attrs.matchAll(/\s([\w:-]+)="[^"]*"/g)) assert.not.ok(/^on/i.test(attr[1]), `event handler attribute ${attr[1]} in ${whole}`)
    if (closing === '/') {
      const open = stack.pop()
      assert.is(open, name, `</${name}> closes <${open}> at ${lt}`)
    } else if (selfClosing !== '/' && !VOID.has(name)) {
      stack.push(name)
    }
    i = lt + whole.length
  }
  assert.equal(stack, [], 'unclosed elements')
}

function assertClean (html: string): void {
  for (const bad of ['NaN', 'Infinity', 'undefined', '[object Object]']) assert.not.ok(html.includes(bad), `the page contains "${bad}"`)
}

// ---------------------------------------------------------------------------
// Unit checks (no browser)

test('a run with data: header, tables and the three charts with marks', () => {
  const result = synthetic({ nodes: 12, durationMs: 120_000, crashes: 3, pauses: 2, isolations: 1, takeovers: 40, samples: 120 })
  const html = renderReport(result, HOST)
  assertWellFormed(html)
  assertClean(html)
  assert.ok(html.includes('data-verdict="PASS"'))
  assert.ok(html.includes(`<code>${result.replay}</code>`))
  for (const fact of ['12.4 s', '512 MiB', '48.4×', 'v24.21.0']) assert.ok(html.includes(fact), `host fact ${fact}`)
  for (const row of ['first suspicion', 'first dead verdict', 'last dead verdict', 'dissemination', 'takeover (fault', 'delta acknowledgement', 'bytes per node per second', 'messages per node per second', 'acknowledged deltas per second', 'false dead verdicts']) {
    assert.ok(html.includes(row), `summary row "${row}"`)
  }
  assert.ok(html.includes('12,345'), 'acknowledged deltas with thousands separators')
  for (const name of result.checkers.map((c) => c.name)) assert.ok(html.includes(name), `checker ${name}`)
  assert.not.ok(html.includes('<script'), 'no script element')

  const timeline = chartSvg(html, 'timeline')
  assert.is(count(timeline, /<text [^>]*text-anchor="end"><title>/), 12, 'one labelled row per node')
  for (const state of ['crashed', 'paused', 'isolated']) assert.ok(timeline.includes(`data-state="${state}"`), `a ${state} bar`)
  assert.ok(count(timeline, /<g class="takeovers"><path /) === 1, 'takeover markers')
  assert.ok(count(timeline, /<title>/) > 20, 'hover text on the marks')
  assert.ok(/<text [^>]*>\d+ s<\/text>/.test(timeline), 'time ticks in seconds')

  const histogram = chartSvg(html, 'takeover-histogram')
  const bars = [...histogram.matchAll(/data-count="(\d+)"/g)].map((m) => Number(m[1]))
  assert.ok(bars.length >= 5, `histogram bars: ${bars.length}`)
  assert.is(bars.reduce((a, b) => a + b, 0), 40, 'the bars count every takeover')
  assert.ok(histogram.includes('p50 ') && histogram.includes('p99 '), 'quantile lines')

  const bandwidth = chartSvg(html, 'bandwidth')
  assert.is(count(bandwidth, /<path class="line" d="M/), 2, 'mean and max lines')
  assert.ok(/kB\/s<\/text>/.test(bandwidth), 'byte tick labels')
  assert.ok(count(bandwidth, /<g class="hover">/) === 1 && count(bandwidth, /<rect [^>]*><title>/) >= 100, 'a hover band per sample')
})

test('a failing run says FAIL and shows the problems', () => {
  const html = renderReport(synthetic({ nodes: 5, durationMs: 60_000, crashes: 1, takeovers: 3, samples: 30, failing: true }))
  assert.ok(html.includes('data-verdict="FAIL"'))
  assert.ok(html.includes('delta 17 acknowledged at 12.0 s missing from the owner&#39;s log'))
  assert.ok(html.includes('<tr class="bad"><th scope="row">false dead verdicts</th>'))
  assert.not.ok(html.includes('wall time'), 'no host facts without host')
})

test('every string from the result is escaped', () => {
  const evil = '<script>alert(1)</script>'
  const result = synthetic({ nodes: 3, durationMs: 30_000, samples: 10, ids: [evil, 'b"\'&', 'plain'] })
  result.scenario = '<b>scenario</b>'
  result.replay = 'SEED=1 edge-agent sim && echo "<img src=x onerror=alert(2)>"'
  result.timeline.push({ atMs: 5000, node: evil, state: 'crashed' }, { atMs: 9000, node: evil, state: 'alive" onmouseover="alert(3)' as NodeStateName })
  result.faults.push({ atMs: 5000, fault: 'crash"><svg onload=alert(4)>', targets: [evil], detail: '</title><script>alert(5)</script>' })
  result.takeovers.push({ sessionId: '<i>s</i>', atMs: 7000, from: evil, to: evil, latencyMs: 2000 })
  result.checkers.push({ name: '<u>checker</u>', ok: false, problems: ['</td></tr></table><script>alert(6)</script>', '<img src=x onerror=alert(7)>'] })
  result.options['<k>'] = '</code><script>alert(8)</script>'
  result.detections.push({ node: evil, fault: 'crash', atMs: 5000, firstSuspicionMs: null, firstDeadMs: null, lastDeadMs: null, verdicts: 0, survivors: 2 })
  const html = renderReport(result, { ...HOST, node: '<script>alert(9)</script>' })
  assertWellFormed(html)
  assert.not.ok(/<script/i.test(html), 'a raw <script> tag')
  for (const tag of ['<img', '<b>', '<i>', '<u>', '<k>', '<svg onload']) assert.not.ok(html.includes(tag), `raw ${tag}`)
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'the node id is shown, escaped')
  assert.ok(html.includes('b&quot;&#39;&amp;'), 'quotes and ampersands escaped')
  assert.ok(html.includes('&lt;u&gt;checker&lt;/u&gt;'))
})

test('an empty run renders every section without NaN', () => {
  const html = renderReport(emptyRun())
  assertWellFormed(html)
  assertClean(html)
  for (const chart of CHARTS) chartSvg(html, chart)
  assert.ok(chartSvg(html, 'takeover-histogram').includes('no takeovers in this run'))
  assert.ok(chartSvg(html, 'bandwidth').includes('no traffic samples in this run'))
  assert.ok(chartSvg(html, 'timeline').includes('no nodes in this run'))
  assert.ok(html.includes('no checkers ran'))
  assert.ok(html.length < 30_000, `empty page is ${html.length} bytes`)
})

test('a single node, and nulls in every quantile', () => {
  const result = synthetic({ nodes: 1, durationMs: 10_000, crashes: 1, takeovers: 1, samples: 1 })
  const none: Quantiles = { n: 3, p50: null, p90: null, p99: null, max: null }
  result.takeover = none
  result.dissemination = none
  result.detection = { firstSuspicionMs: none, firstDeadMs: none, lastDeadMs: none }
  result.deltas.latencyMs = none
  const html = renderReport(result)
  assertWellFormed(html)
  assertClean(html)
  assert.is(count(chartSvg(html, 'timeline'), /<text [^>]*text-anchor="end"><title>/), 1)
  assert.is(count(chartSvg(html, 'takeover-histogram'), /data-count="1"/), 1, 'one bar for one takeover')
  assert.is(count(chartSvg(html, 'bandwidth'), /<path class="line" d="M/), 2)
})

test('10,000 nodes: at most 60 timeline rows, the rest counted, a page of a few hundred KB', () => {
  const result = synthetic({ nodes: 10_000, durationMs: 3_600_000, crashes: 25, pauses: 10, isolations: 5, takeovers: 5000, samples: 3600, seed: 7 })
  const troubled = new Set(result.timeline.filter((e) => e.state !== 'alive').map((e) => e.node))
  const html = renderReport(result, HOST)
  assertWellFormed(html)
  assertClean(html)
  assert.ok(html.length < 400_000, `page is ${html.length} bytes`)
  const timeline = chartSvg(html, 'timeline')
  assert.is(count(timeline, /<text [^>]*text-anchor="end"><title>/), troubled.size, 'a row per node that was ever not alive')
  assert.ok(html.includes(`Showing the ${troubled.size} of 10,000 nodes`), 'a note on the hidden nodes')
  assert.ok(timeline.includes(`+${(10_000 - troubled.size).toLocaleString('en-US')} more`), 'a row for the hidden nodes')
  assert.ok(count(timeline, /<path d="M[^"]*Z" fill="#1f3f8f"/) > 10, 'takeover markers, merged but present')
})

test('10,000 nodes all crashing, 50,000 takeovers, a day of samples: still bounded', () => {
  const result = synthetic({ nodes: 10_000, durationMs: 86_400_000, crashes: 3000, takeovers: 50_000, samples: 86_400, seed: 11 })
  const started = performance.now()
  const html = renderReport(result)
  const ms = performance.now() - started
  assertWellFormed(html)
  assertClean(html)
  assert.ok(html.length < 700_000, `page is ${html.length} bytes`)
  assert.ok(ms < 10_000, `rendering took ${ms.toFixed(0)} ms`)
  const timeline = chartSvg(html, 'timeline')
  assert.is(count(timeline, /<text [^>]*text-anchor="end"><title>/), MAX_ROWS)
  assert.ok(html.includes(`Showing the first ${MAX_ROWS} of the`), 'says only the first rows are shown')
  assert.ok(count(chartSvg(html, 'bandwidth'), /<title>/) <= 310, 'hover bands merged')
})

test('the page depends on its input alone', () => {
  const shape: Shape = { nodes: 20, durationMs: 90_000, crashes: 4, takeovers: 30, samples: 90, seed: 3 }
  assert.is(renderReport(synthetic(shape), HOST), renderReport(synthetic(shape), HOST))
})

test('latency bins: 10 to 21 of a nice width, every value in its bin', () => {
  assert.equal(binLatencies([]).counts, [])
  const single = binLatencies([2000])
  assert.is(single.counts.length, 10)
  assert.is(single.counts.reduce((a, b) => a + b, 0), 1)
  fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 200 }), (values) => {
    const { lo, step, counts } = binLatencies(values)
    assert.ok(counts.length >= 10 && counts.length <= 21, `${counts.length} bins`)
    const mantissa = step / 10 ** Math.floor(Math.log10(step))
    assert.ok([1, 2, 2.5, 5].some((m) => Math.abs(mantissa - m) < 1e-9), `step ${step}`)
    assert.is(counts.reduce((a, b) => a + b, 0), values.length)
    const slack = step * 1e-9
    for (const v of values) assert.ok(v >= lo - slack && v <= lo + step * counts.length + slack, `${v} outside [${lo}, ${lo + step * counts.length}]`)
  }), { seed: 42, numRuns: 300 })
})

// ---------------------------------------------------------------------------
// In a browser

test('headless Chromium: the charts are there, visible and drawn; no console error, nothing loaded', async () => {
  if (!existsSync(CHROMIUM)) {
    console.log(`\nskip: ${CHROMIUM} not found (apt-get install chromium); the browser check of the report did not run`)
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'sim-report-'))
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] })
  try {
    const withData = synthetic({ nodes: 12, durationMs: 120_000, crashes: 3, pauses: 2, isolations: 1, takeovers: 40, samples: 120, ids: ['<script>alert(1)</script>', ...Array.from({ length: 11 }, (_, i) => `node-${i}`)] })
    const pages: Array<[string, SimRunResult]> = [['with-data', withData], ['empty', emptyRun()]]
    for (const [name, result] of pages) {
      const file = join(dir, `${name}.html`)
      writeFileSync(file, renderReport(result, HOST))
      const url = pathToFileURL(file).href
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
      const errors: string[] = []
      const requests: string[] = []
      page.on('console', (message) => { if (message.type() === 'error' || message.type() === 'warning') errors.push(`${message.type()}: ${message.text()}`) })
      page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`))
      page.on('request', (request) => requests.push(request.url()))
      await page.goto(url, { waitUntil: 'load' })

      for (const chart of CHARTS) {
        const svg = page.locator(`svg[data-chart="${chart}"]`)
        assert.is(await svg.count(), 1, `${name}: one ${chart} chart`)
        assert.ok(await svg.isVisible(), `${name}: ${chart} is visible`)
        const box = await svg.boundingBox()
        assert.ok(box !== null && box.width > 300 && box.height > 100, `${name}: ${chart} box ${JSON.stringify(box)}`)
        assert.ok(await svg.locator('.axis text').count() > 0 || name === 'empty', `${name}: ${chart} has tick labels`)
      }
      if (name === 'with-data') {
        const drawn = async (selector: string): Promise<number> => page.locator(selector).evaluateAll((nodes) => nodes.filter((n) => {
          const b = (n as unknown as { getBBox (): { width: number; height: number } }).getBBox()
          return b.width > 0 && b.height > 0
        }).length)
        assert.ok(await drawn('svg[data-chart="timeline"] .states rect') >= 12, 'timeline: state bars drawn')
        assert.ok(await drawn('svg[data-chart="timeline"] .takeovers path') > 0, 'timeline: takeover markers drawn')
        assert.ok(await drawn('svg[data-chart="timeline"] .faults path') > 0, 'timeline: fault markers drawn')
        assert.ok(await drawn('svg[data-chart="takeover-histogram"] .bars rect') >= 5, 'histogram: bars drawn')
        assert.is(await drawn('svg[data-chart="bandwidth"] path.line'), 2, 'bandwidth: two lines drawn')
        // The hostile node id is text, not markup.
        assert.is(await page.locator('script').count(), 0)
        assert.ok((await page.locator('svg[data-chart="timeline"] .labels').textContent())?.includes('<script>alert(1)</script>'), 'the node id shown as text')
        assert.is(await page.locator('[data-verdict]').textContent(), 'PASS')
      } else {
        const message = (chart: string): ReturnType<typeof page.locator> => page.locator(`svg[data-chart="${chart}"] text.empty`)
        assert.ok(await message('takeover-histogram').isVisible(), 'empty: the histogram shows its message')
        assert.is(await message('takeover-histogram').textContent(), 'no takeovers in this run')
        assert.ok(await message('bandwidth').isVisible(), 'empty: the bandwidth chart shows its message')
        assert.is(await message('bandwidth').textContent(), 'no traffic samples in this run')
      }
      const overflow = Number(await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'))
      assert.ok(overflow <= 0, `${name}: page wider than the window by ${overflow} px`)
      assert.equal(errors, [], `${name}: console errors`)
      assert.equal(requests, [url], `${name}: the page loaded something besides itself`)
      await page.close()
    }
  } finally {
    await browser.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
