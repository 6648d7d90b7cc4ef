// Drives a deterministic core with real time: stamps every input with the
// monotonic clock, carries out the effects, and keeps one timer armed for the
// core's next wake-up. The simulator does the same with virtual time.

import type { Effect, Input } from '../core/io.ts'

export interface SteppedCore {
  step (input: Input): Effect[]
  nextWakeMs (): number
}

export type Clock = { nowMs: () => number }

// A wake-up is never further away than this, so a core whose timers all sit far
// ahead still notices a stall of the process within a second.
const MAX_SLEEP_MS = 1_000

type InputWithoutTime =
  | { kind: 'tick' }
  | Omit<Extract<Input, { kind: 'receive' }>, 'nowMs'>
  | Omit<Extract<Input, { kind: 'command' }>, 'nowMs'>

export class CoreDriver {
  readonly #core: SteppedCore
  readonly #perform: (effect: Effect) => void
  readonly #clock: Clock
  #timer: NodeJS.Timeout | null = null
  #timerAtMs = Infinity
  #stopped = false

  constructor (core: SteppedCore, clock: Clock, perform: (effect: Effect) => void) {
    this.#core = core
    this.#clock = clock
    this.#perform = perform
  }

  step (input: InputWithoutTime): void {
    if (this.#stopped) return
    const effects = this.#core.step({ ...input, nowMs: this.#clock.nowMs() } as Input)
    for (const effect of effects) this.#perform(effect)
    this.#arm()
  }

  stop (): void {
    this.#stopped = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  #arm (): void {
    const now = this.#clock.nowMs()
    const wake = Math.min(this.#core.nextWakeMs(), now + MAX_SLEEP_MS)
    // Keep an earlier timer; it will re-arm when it fires.
    if (this.#timer !== null && this.#timerAtMs <= wake) return
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timerAtMs = wake
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#timerAtMs = Infinity
      this.step({ kind: 'tick' })
    }, Math.max(0, Math.ceil(wake - now)))
  }
}
