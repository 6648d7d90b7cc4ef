// Samples the load figures a node advertises (M0.1): event-loop utilisation of the
// agent process, busy share of the machine's CPUs, and sessions held. The score
// placement uses is the largest of the three (sessions as a share of capacity):
// a box is as busy as its busiest resource.
//
// Utilisation and CPU are smoothed (see smoothLoad): one-second samples jump by
// more than the change threshold all the time, and every accepted change is a
// re-signed record published to the whole cluster.

import { cpus } from 'node:os'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import type { EventLoopUtilization, ELDHistogram } from 'node:perf_hooks'
import type { Load } from '../../protocol/messages.ts'

// Weight of the newest sample in the average: a step shows half in 7 one-second
// samples and ~90% in 22.
export const SMOOTHING = 0.1

// A busy box leaves placement within seconds, and a load that only jitters stays
// put instead of crossing the change threshold up and down: with a weight of 0.3
// (half a step in 2 s), 20 agents sharing a busy box each re-published its record
// every 10 s at rest (the most the rate limit allows); with 0.1, an hour of
// jitter of σ 0.1 crosses the threshold about a tenth as often or less
// (test/unit/load.test.ts).
export function smoothLoad (previous: number, sample: number): number {
  return previous + SMOOTHING * (sample - previous)
}

type CpuTimes = { busy: number; total: number }

function cpuTimes (): CpuTimes {
  let busy = 0
  let total = 0
  for (const cpu of cpus()) {
    const t = cpu.times
    busy += t.user + t.nice + t.sys + t.irq
    total += t.user + t.nice + t.sys + t.irq + t.idle
  }
  return { busy, total }
}

export function loadScore (elu: number, cpu: number, sessions: number, capacity: number): number {
  const sessionShare = capacity > 0 ? sessions / capacity : 0
  return Math.min(1, Math.max(elu, cpu, sessionShare))
}

export class LoadSampler {
  #elu: EventLoopUtilization
  #cpu: CpuTimes
  readonly #delay: ELDHistogram
  #lagP99Ms = 0
  // Averages start from idle: the first sample is mostly this agent's own start-up
  // (and, on a shared box, its siblings'), and would otherwise keep a new agent
  // out of placement for its first seconds.
  #smoothElu = 0
  #smoothCpu = 0

  constructor () {
    this.#elu = performance.eventLoopUtilization()
    this.#cpu = cpuTimes()
    this.#delay = monitorEventLoopDelay({ resolution: 10 })
    this.#delay.enable()
  }

  // Load since the previous sample.
  sample (sessions: number, capacity: number): Load {
    const elu = performance.eventLoopUtilization(this.#elu).utilization
    this.#elu = performance.eventLoopUtilization()
    const now = cpuTimes()
    const total = now.total - this.#cpu.total
    const cpu = total > 0 ? (now.busy - this.#cpu.busy) / total : 0
    this.#cpu = now
    this.#lagP99Ms = this.#delay.percentile(99) / 1e6
    this.#delay.reset()
    const clamp = (v: number): number => Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0))
    this.#smoothElu = smoothLoad(this.#smoothElu, clamp(elu))
    this.#smoothCpu = smoothLoad(this.#smoothCpu, clamp(cpu))
    return { score: loadScore(this.#smoothElu, this.#smoothCpu, sessions, capacity), sessions, elu: this.#smoothElu, cpu: this.#smoothCpu }
  }

  get eventLoopLagP99Ms (): number {
    return this.#lagP99Ms
  }

  stop (): void {
    this.#delay.disable()
  }
}
