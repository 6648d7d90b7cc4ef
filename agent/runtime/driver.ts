// Drives a deterministic core with real time: stamps every input with the
// monotonic clock, hands the step's effects to the host as one batch (so that a
// host can make a step's writes durable in one transaction before anything of
// the step leaves the box), and keeps one timer armed for the core's next
// wake-up. The simulator does the same with virtual time.
//
// With `groupCommit`, inputs arriving in one turn of the event loop (frames read
// from one TCP chunk, requests parsed together) are stepped one after the other,
// in order, and their effects handed over as one batch once the turn's I/O is
// done (setImmediate): one transaction, so one fsync, for all of them instead of
// one each. Messages keep their order (ticks go last, see ticksLast) and nothing
// leaves before its writes are durable; the cost is one hop through the event loop.
//
// `hold()` keeps the core from stepping anything new (inputs are queued, ticks
// too) until `release()`: the host holds the driver while a batch's fsync runs
// off the event loop, so the core never sees an input before the batch before
// it is durable, and the next batch takes everything that arrived meanwhile.

export interface SteppedCore<I, E> {
  step (input: I): E[]
  nextWakeMs (): number
}

export type Clock = { nowMs: () => number }

// A wake-up is never further away than this, so a core whose timers all sit far
// ahead still notices a stall of the process within a second.
const MAX_SLEEP_MS = 1_000

// An input without its time: the driver stamps it.
type Untimed<I> = I extends unknown ? Omit<I, 'nowMs'> : never

export type DriverOptions = { groupCommit?: boolean }

// A turn's ticks go after its messages, as one tick at the turn's latest time.
// After a stall, the timer fires first (Node runs timers before it reads
// sockets), so a tick would meet a deadline a message already sitting in the
// same batch would have met (a vote that arrived in time, an ack): the messages
// are stepped first. Input times stay in order.
export function ticksLast<I extends { nowMs: number }> (inputs: I[]): I[] {
  const isTick = (input: I): boolean => (input as { kind?: unknown }).kind === 'tick'
  const ticks = inputs.filter(isTick)
  if (ticks.length === 0) return inputs
  const rest = inputs.filter((input) => !isTick(input))
  const latest = Math.max(...inputs.map((input) => input.nowMs))
  return [...rest, { ...ticks[ticks.length - 1], nowMs: latest }]
}

// A batch of inputs held (a turn's, or those read during an fsync), in the order
// and at the time they are stepped: `nowMs`, not the time they were read. A
// batch held behind an fsync when the process froze would otherwise be stepped,
// at SIGCONT, at a time from before the freeze, and an owner judge its lease by
// it (acknowledging, or serving a read, seconds after a new owner took over:
// SEED=549 of a sweep with write concern majority). Later is the safe side
// everywhere: a lease looks shorter, an owner heard later shields its votes a
// little longer. The simulator's node steps its held batch with this too. A
// message keeps when it was read as `arrivedMs`, which the sessions core uses
// only to time its members' acks (owner.ts: an owner held by its own slow
// fsync would otherwise find every member as slow as itself).
export function heldBatch<I extends { nowMs: number }> (inputs: I[], nowMs: number): I[] {
  return ticksLast(inputs.map((input) => {
    if (input.nowMs >= nowMs) return input
    if ((input as { kind?: unknown }).kind !== 'receive') return { ...input, nowMs }
    return { ...input, nowMs, arrivedMs: (input as { arrivedMs?: number }).arrivedMs ?? input.nowMs }
  }))
}

export class CoreDriver<I extends { nowMs: number }, E> {
  readonly #core: SteppedCore<I, E>
  readonly #perform: (effects: E[]) => void
  readonly #clock: Clock
  readonly #groupCommit: boolean
  #queue: I[] = []
  #flush: NodeJS.Immediate | null = null
  #timer: NodeJS.Timeout | null = null
  #timerAtMs = Infinity
  #stopped = false
  #held = false

  constructor (core: SteppedCore<I, E>, clock: Clock, perform: (effects: E[]) => void, options: DriverOptions = {}) {
    this.#core = core
    this.#clock = clock
    this.#perform = perform
    this.#groupCommit = options.groupCommit ?? false
  }

  step (input: Untimed<I>): void {
    if (this.#stopped) return
    const timed = { ...input, nowMs: this.#clock.nowMs() } as unknown as I
    if (!this.#groupCommit) {
      const effects = this.#core.step(timed)
      if (effects.length > 0) this.#perform(effects)
      this.#arm()
      return
    }
    this.#queue.push(timed)
    if (!this.#held) this.#flush ??= setImmediate(() => { this.#drain() })
  }

  // Queue inputs without stepping them, until release() (group commit only).
  hold (): void {
    this.#held = true
  }

  // Steps what was queued meanwhile, as one batch, in the next check phase
  // (after the I/O of this turn, so that joins the batch too).
  release (): void {
    if (!this.#held) return
    this.#held = false
    if (this.#stopped || this.#queue.length === 0) return
    this.#flush ??= setImmediate(() => { this.#drain() })
  }

  stop (): void {
    this.#stopped = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    if (this.#flush !== null) clearImmediate(this.#flush)
    this.#flush = null
    this.#queue = []
  }

  #drain (): void {
    this.#flush = null
    if (this.#held) return
    const inputs = heldBatch(this.#queue, this.#clock.nowMs())
    this.#queue = []
    const effects: E[] = []
    for (const input of inputs) {
      for (const effect of this.#core.step(input)) effects.push(effect)
    }
    if (effects.length > 0) this.#perform(effects)
    if (!this.#stopped) this.#arm()
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
      this.step({ kind: 'tick' } as unknown as Untimed<I>)
    }, Math.max(0, Math.ceil(wake - now)))
  }
}
