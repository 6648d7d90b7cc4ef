// Small helpers shared by the benchmarks: order statistics and output.

export function percentile (values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]
}

export function median (values: number[]): number {
  return percentile(values, 50)
}

export type Spread = { median: number; min: number; max: number; n: number }

export function spread (values: number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), n: values.length }
}

export function fmt (value: number, digits = 0): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '-'
}

export function log (text: string): void {
  process.stderr.write(`[bench] ${text}\n`)
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
