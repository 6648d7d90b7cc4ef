// Traffic of `edge-agent sim --real`, sampled from every reachable agent's
// /metrics while the run goes on (not only at its end): messages and payload
// bytes sent per node per second, each interval, as virtual mode reports them.

import type { SimRunResult } from './result.ts'

export type Counters = { messages: number; bytes: number }
type Series = SimRunResult['traffic']['series']

const SCRAPE_TIMEOUT_MS = 1_000

// Messages and payload bytes an agent sent (all channels), from its /metrics text.
export function sentCounters (metrics: string): Counters {
  const out = { messages: 0, bytes: 0 }
  for (const line of metrics.split('\n')) {
    if (!line.includes('direction="out"')) continue
    if (line.startsWith('edge_agent_messages_total{')) out.messages += Number(line.split(' ').pop())
    else if (line.startsWith('edge_agent_bytes_total{')) out.bytes += Number(line.split(' ').pop())
  }
  return out
}

export class TrafficSampler {
  readonly series: Series = []
  readonly intervalMs: number
  readonly #targets: () => Array<{ name: string; http: string }>
  readonly #rel: (atMs: number) => number
  #last = new Map<string, Counters>()
  #lastAt = 0
  #timer: NodeJS.Timeout | null = null
  #busy = false

  // `targets`: the agents to scrape now (running and not frozen: a frozen
  // agent's HTTP server would only make the scrape wait).
  constructor (intervalMs: number, targets: () => Array<{ name: string; http: string }>, rel: (atMs: number) => number) {
    this.intervalMs = intervalMs
    this.#targets = targets
    this.#rel = rel
  }

  async start (): Promise<void> {
    this.#last = await this.#scrape()
    this.#lastAt = Date.now()
    this.#timer = setInterval(() => { void this.#sample() }, this.intervalMs)
  }

  stop (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  async #sample (): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      const now = await this.#scrape()
      const at = Date.now()
      const seconds = Math.max(0.001, (at - this.#lastAt) / 1_000)
      const rates: Counters[] = []
      for (const [name, c] of now) {
        const before = this.#last.get(name)
        // Missing before, or counters reset by a restart: no rate this time.
        if (before === undefined || c.messages < before.messages || c.bytes < before.bytes) continue
        rates.push({ messages: (c.messages - before.messages) / seconds, bytes: (c.bytes - before.bytes) / seconds })
      }
      if (rates.length > 0) {
        const mean = (pick: (r: Counters) => number): number => Math.round(rates.reduce((sum, r) => sum + pick(r), 0) / rates.length)
        this.series.push({ atMs: this.#rel(at), bytesPerNodePerSec: mean((r) => r.bytes), messagesPerNodePerSec: mean((r) => r.messages), maxBytesPerNodePerSec: Math.round(Math.max(...rates.map((r) => r.bytes))) })
      }
      this.#last = now
      this.#lastAt = at
    } finally {
      this.#busy = false
    }
  }

  async #scrape (): Promise<Map<string, Counters>> {
    const out = new Map<string, Counters>()
    await Promise.all(this.#targets().map(async (a) => {
      try {
        const text = await (await fetch(`${a.http}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })).text()
        out.set(a.name, sentCounters(text))
      } catch {}
    }))
    return out
  }

  summary (): SimRunResult['traffic'] {
    const mean = (pick: (s: Series[number]) => number): number => this.series.length === 0 ? 0 : Math.round(this.series.reduce((sum, s) => sum + pick(s), 0) / this.series.length)
    return { intervalMs: this.intervalMs, series: this.series, bytesPerNodePerSec: mean((s) => s.bytesPerNodePerSec), messagesPerNodePerSec: mean((s) => s.messagesPerNodePerSec) }
  }
}
