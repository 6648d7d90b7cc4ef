// Samples the load figures a node advertises (M0.1): event-loop utilisation of the
// agent process, busy share of the machine's CPUs, and sessions held. The score
// placement uses is the largest of the three (sessions as a share of capacity):
// a box is as busy as its busiest resource.
//
// Utilisation and CPU are smoothed (exponentially weighted, weight SMOOTHING on
// the newest sample, so a step shows ~90% after 6 samples): one-second samples
// jump by more than the change threshold all the time, and every accepted change
// is a re-signed record published to the whole cluster.

const SMOOTHING = 0.3

import { cpus } from 'node:os'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import type { EventLoopUtilization, ELDHistogram } from 'node:perf_hooks'
import type { Load } from '../../protocol/messages.ts'

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
    const smooth = (previous: number, sample: number): number => previous + SMOOTHING * (sample - previous)
    this.#smoothElu = smooth(this.#smoothElu, clamp(elu))
    this.#smoothCpu = smooth(this.#smoothCpu, clamp(cpu))
    return { score: loadScore(this.#smoothElu, this.#smoothCpu, sessions, capacity), sessions, elu: this.#smoothElu, cpu: this.#smoothCpu }
  }

  get eventLoopLagP99Ms (): number {
    return this.#lagP99Ms
  }

  stop (): void {
    this.#delay.disable()
  }
}
