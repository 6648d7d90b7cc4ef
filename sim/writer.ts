// A terminal that appends value after value through the EdgeClient until told
// to stop, recording every acknowledgement: what the real-process tests, the demo
// and the benchmarks drive sessions with.

import type { Session } from '../agent/client/index.ts'

export type Acked = { value: string; index: number; epoch: number; atMs: number; latencyMs: number }

export class ContinuousWriter {
  readonly session: Session
  readonly acked: Acked[] = []
  stopped = false
  error: Error | null = null
  readonly done: Promise<void>
  // Set by pause(): the next append waits for resume().
  #paused: { promise: Promise<void>; resume: () => void } | null = null

  // padTo: values are padded with '.' to this many characters (benchmarks use
  // 256-byte values); 0 leaves them short.
  constructor (session: Session, prefix = 'v', gapMs = 0, padTo = 0) {
    this.session = session
    this.done = (async () => {
      for (let i = 1; !this.stopped; i++) {
        if (this.#paused !== null) await this.#paused.promise
        if (this.stopped) return
        const value = `${prefix}${i}`.padEnd(padTo, '.')
        const started = Date.now()
        try {
          const ack = await session.append({ append: value })
          this.acked.push({ value, index: ack.index, epoch: ack.epoch, atMs: Date.now(), latencyMs: Date.now() - started })
        } catch (error) {
          this.error = error as Error
          return
        }
        if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
      }
    })()
  }

  // Resolves once `count` appends are acknowledged (rejects on the writer's error).
  async waitFor (count: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.acked.length < count && this.error === null) {
      if (Date.now() > deadline) throw new Error(`only ${this.acked.length} of ${count} appends acknowledged within ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    if (this.error !== null) throw this.error
  }

  // Ms from `t0` to the first acknowledgement in an epoch after `epoch`: the
  // takeover as the terminal sees it.
  takeoverAfter (t0: number, epoch: number): number {
    const first = this.acked.find((a) => a.atMs >= t0 && a.epoch > epoch)
    return first === undefined ? NaN : first.atMs - t0
  }

  // Holds the next append (the one in flight completes) until resume(): the
  // terminal goes idle, as the benchmark's quiet-session rounds need.
  pause (): void {
    if (this.#paused !== null) return
    let resume = (): void => {}
    const promise = new Promise<void>((resolve) => { resume = resolve })
    this.#paused = { promise, resume }
  }

  resume (): void {
    const paused = this.#paused
    this.#paused = null
    paused?.resume()
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.resume()
    await this.done
  }

  // Checks the session's state against what was acknowledged: every value once,
  // in order (a log service). Returns problems, empty when all is well.
  //
  // The writer may still be running: what it saw acknowledged before the read
  // went out must be in the state the read returns; an append acknowledged while
  // the read is under way may or may not be. (Its small answer can overtake the
  // read's, which carries the whole state: a check that listed the acks after the
  // read returned reported such an append missing, though a read a moment later
  // had it.)
  async check (): Promise<string[]> {
    const expected = this.acked.map((a) => a.value)
    const state = await this.session.get()
    const values = Array.isArray(state.state) ? state.state as string[] : []
    const problems: string[] = []
    if (new Set(values).size !== values.length) problems.push('a value appears twice')
    const at = new Map(values.map((v, i) => [v, i]))
    let previous = -1
    for (const value of expected) {
      const i = at.get(value)
      if (i === undefined) problems.push(`acknowledged ${value} is missing`)
      else if (i < previous) problems.push(`${value} is out of order`)
      else previous = i
    }
    return problems
  }
}

// Until the session's group has `size` members and none of `gone` (the owner
// replaced a dead member: repair done). Resolves with how long it took.
export async function waitGroupRepaired (session: Session, gone: string[], size: number, timeoutMs = 30_000): Promise<number> {
  const started = Date.now()
  for (;;) {
    const state = await session.get().catch(() => null)
    const ids = state?.group.map((m) => m.id) ?? []
    if (ids.length === size && !ids.some((id) => gone.includes(id))) return Date.now() - started
    if (Date.now() - started > timeoutMs) throw new Error(`group of ${session.sessionId} not repaired within ${timeoutMs} ms (members: ${ids.join(', ')})`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

// Until the writer's first acknowledgement in an epoch after `epoch` following
// `t0`; resolves with the ms from t0 (the takeover as the terminal saw it).
export async function waitTakeover (writer: ContinuousWriter, t0: number, epoch: number, timeoutMs = 15_000): Promise<number> {
  for (;;) {
    const ms = writer.takeoverAfter(t0, epoch)
    if (Number.isFinite(ms)) return ms
    if (writer.error !== null) throw writer.error
    if (Date.now() - t0 > timeoutMs) throw new Error(`no acknowledgement in an epoch after ${epoch} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

// What an agent is in a session's group as the terminal last saw it: its
// owner, a standby, or not in it (null).
export function roleIn (session: Session, agentId: string): 'owner' | 'standby' | null {
  if (session.owner?.id === agentId) return 'owner'
  return session.group.some((m) => m.id === agentId) ? 'standby' : null
}
