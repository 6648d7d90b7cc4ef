// A simulated terminal: opens a session at some agent and appends deltas one at
// a time, as the EdgeClient does (agent/client): to the owner it knows, following
// 307s, walking the backup queue on refusal or timeout, retrying with the same
// client sequence number so a retry is never applied twice. It records every
// acknowledgement for the checkers.

import type { PeerKey } from '../agent/core/io.ts'
import type { JsonValue } from '../protocol/messages.ts'
import type { RequestOutcome, SimCluster } from './cluster.ts'

// latencyMs: from the append's first attempt to its acknowledgement.
export type Ack = { seq: number; value: string; index: number; epoch: number; atMs: number; agent: PeerKey; latencyMs: number }

export type TerminalOptions = {
  terminalId: string
  service?: 'log'
  // The agent the terminal opens its session at.
  entry: PeerKey
  // A request with no answer after this long is given up (the agent may be frozen).
  requestTimeoutMs?: number
  // An append not acknowledged after this long is reported (and still retried:
  // a terminal never skips a sequence number whose fate it does not know).
  appendDeadlineMs?: number
  // Values are padded with '.' to this many characters (0: no padding).
  valueBytes?: number
}

type GroupView = Array<{ id: string; http: string; role: string }>

export class SimTerminal {
  readonly id: string
  readonly acks: Ack[] = []
  readonly violations: string[] = []
  readonly errors: string[] = []
  sessionId = ''
  readonly tokenHash: string
  queue: PeerKey[] = []
  owner: PeerKey | null = null
  epoch = 0
  lastIndex = 0
  seq = 0
  failed = 0
  takeovers: number[] = []
  // When a close of the session was acknowledged (200), or null.
  closedAtMs: number | null = null
  readonly #cluster: SimCluster
  readonly #options: Required<TerminalOptions>
  #cursor = 0
  #busy = false

  constructor (cluster: SimCluster, options: TerminalOptions) {
    this.#cluster = cluster
    this.#options = { service: 'log', requestTimeoutMs: 1_000, appendDeadlineMs: 30_000, valueBytes: 0, ...options }
    this.id = options.terminalId
    this.tokenHash = hex64(options.terminalId)
  }

  get busy (): boolean {
    return this.#busy
  }

  open (onDone: (ok: boolean) => void): void {
    this.sessionId = `${this.#options.service}:${this.id}`
    this.#cluster.request(this.#options.entry, {
      type: 'open', sessionId: this.sessionId, terminalId: this.id, service: this.#options.service, position: null, tokenHash: this.tokenHash
    }, (outcome) => {
      // A 409: an earlier attempt created it after all (its answer was late or
      // lost); the token opens it, so resume it instead.
      if (outcome.status === 409) return this.#resume(onDone)
      if (outcome.status !== 201) {
        this.errors.push(`open at ${this.#options.entry}: ${outcome.status} ${JSON.stringify(outcome.body)}`)
        return onDone(false)
      }
      this.#learn(outcome.body)
      onDone(true)
    })
  }

  #resume (onDone: (ok: boolean) => void): void {
    this.#cluster.request(this.#options.entry, { type: 'resume', sessionId: this.sessionId, tokenHash: this.tokenHash }, (outcome) => {
      if (outcome.status !== 200) {
        this.errors.push(`resume at ${this.#options.entry}: ${outcome.status} ${JSON.stringify(outcome.body)}`)
        return onDone(false)
      }
      this.#learn(outcome.body)
      onDone(true)
    })
  }

  // Appends `count` deltas, one at a time, `gapMs` apart.
  appendMany (count: number, gapMs: number, onDone?: () => void): void {
    const next = (left: number): void => {
      if (left === 0) return onDone?.()
      this.append(() => this.#cluster.scheduler.after(gapMs, () => next(left - 1)))
    }
    next(count)
  }

  append (onDone: (acked: boolean) => void): void {
    this.seq += 1
    const seq = this.seq
    const value = `${this.id}:${seq}`.padEnd(this.#options.valueBytes, '.')
    const startedAt = this.#cluster.nowMs
    const deadline = this.#cluster.nowMs + this.#options.appendDeadlineMs
    let reported = false
    const command = { type: 'append' as const, sessionId: this.sessionId, tokenHash: this.tokenHash, clientSeq: seq, op: { append: value } as JsonValue }
    this.#untilAnswered(command, (outcome) => outcome.status === 200, (outcome, agent) => {
      this.#acked(seq, value, outcome.body, agent, startedAt)
      onDone(true)
    }, () => {
      if (this.#cluster.nowMs > deadline && !reported) {
        reported = true
        this.errors.push(`seq ${seq} not acknowledged within ${this.#options.appendDeadlineMs} ms (still retrying)`)
      }
    })
  }

  // Closes the session. `onDone` gets 200 (closed) or 404 (no agent found the
  // session: a close whose answer was lost took effect, or, under a partition,
  // its holders could not be reached).
  close (onDone: (status: number) => void): void {
    this.#untilAnswered({ type: 'close', sessionId: this.sessionId, tokenHash: this.tokenHash }, (outcome) => outcome.status === 200 || outcome.status === 404, (outcome) => {
      if (outcome.status === 200) this.closedAtMs = this.#cluster.nowMs
      onDone(outcome.status)
    })
  }

  // Sends `command` until an answer `final` accepts, as the EdgeClient does: to
  // the owner it knows, following 307s, walking the backup queue on refusal or
  // timeout, the same request each time (an append keeps its sequence number, so
  // a retry is never applied twice). `settle` gets that answer and the agent
  // that gave it; `beforeEach` runs before every attempt.
  #untilAnswered (command: Parameters<SimCluster['request']>[1], final: (outcome: RequestOutcome) => boolean, settle: (outcome: RequestOutcome, agent: PeerKey) => void, beforeEach: () => void = () => {}): void {
    this.#busy = true
    let failures = 0
    let settled = false
    const attempt = (): void => {
      if (settled) return
      beforeEach()
      const target = this.#target()
      let answered = false
      const onOutcome = (outcome: RequestOutcome): void => {
        if (settled) return
        if (final(outcome)) {
          settled = true
          this.#busy = false
          return settle(outcome, target)
        }
        if (answered) return
        answered = true
        this.#next(outcome, target, () => attempt(), ++failures)
      }
      this.#cluster.request(target, command, onOutcome)
      this.#cluster.scheduler.after(this.#options.requestTimeoutMs, () => {
        if (answered || settled) return
        answered = true
        this.#next({ status: 0, body: { error: 'timeout' } }, target, () => attempt(), ++failures)
      })
    }
    attempt()
  }

  #target (): PeerKey {
    if (this.owner !== null) return this.owner
    if (this.queue.length === 0) return this.#options.entry
    return this.queue[this.#cursor % this.queue.length]
  }

  // What to do after an answer that is not an acknowledgement.
  #next (outcome: RequestOutcome, target: PeerKey, retry: () => void, failures: number): void {
    const body = outcome.body as { error?: string; retryAfterMs?: number; group?: GroupView }
    if (body.group !== undefined && body.group.length > 0) this.#learn(outcome.body)
    if (outcome.status === 307) {
      const location = (outcome as { location?: string }).location ?? ''
      this.owner = this.#cluster.nodeForUrl(location)?.id ?? null
      return retry()
    }
    if (outcome.status === 503) {
      // An agent that cannot serve yet: wait a little; after a second refusal
      // from the same agent, try the next in the queue.
      if (failures % 2 === 0) this.#advance(target)
      return this.#cluster.scheduler.after(Math.max(20, body.retryAfterMs ?? 100), retry)
    }
    if (outcome.status === 0) {
      this.#advance(target)
      return this.#cluster.scheduler.after(body.error === 'timeout' ? 0 : 50, retry)
    }
    this.errors.push(`append to ${target}: ${outcome.status} ${body.error ?? ''}`)
    this.#advance(target)
    this.#cluster.scheduler.after(200, retry)
  }

  #advance (from: PeerKey): void {
    this.owner = null
    const at = this.queue.indexOf(from)
    this.#cursor = at < 0 ? this.#cursor + 1 : at + 1
  }

  #learn (body: Record<string, unknown>): void {
    const group = body.group as GroupView | undefined
    if (group !== undefined && group.length > 0) {
      const queue = group.filter((g) => g.role !== 'witness').map((g) => g.id)
      // As the EdgeClient (agent/client/route.ts): from the top only when the
      // queue changed, so two agents that keep answering 503 with the same view
      // cannot bounce the terminal between them. Reset at every answer, it
      // asked the first two of a stale view's four members for good
      // (SEED=1875 of a sweep with replicas 3), never the two that served.
      if (queue.join(' ') !== this.queue.join(' ')) this.#cursor = 0
      this.queue = queue
    }
    const owner = body.owner as { id: string } | null | undefined
    this.owner = owner === null || owner === undefined ? null : owner.id
    // Epochs are learnt from acknowledgements only: a standby's view may carry
    // the epoch of an election that was never won.
  }

  #acked (seq: number, value: string, body: Record<string, unknown>, agent: PeerKey, startedAt: number): void {
    const index = Number(body.index)
    const epoch = Number(body.epoch)
    // The client refuses a state that rolled back.
    if (index <= this.lastIndex) this.violations.push(`seq ${seq} acknowledged at index ${index}, not after ${this.lastIndex}`)
    if (epoch < this.epoch) this.violations.push(`seq ${seq} acknowledged in epoch ${epoch} after epoch ${this.epoch}`)
    if (epoch > this.epoch && this.epoch > 0) this.takeovers.push(this.#cluster.nowMs)
    this.lastIndex = Math.max(this.lastIndex, index)
    this.epoch = Math.max(this.epoch, epoch)
    this.owner = agent
    this.acks.push({ seq, value, index, epoch, atMs: this.#cluster.nowMs, agent, latencyMs: this.#cluster.nowMs - startedAt })
  }
}

// A stable stand-in for a token's SHA-256 (the simulator skips real hashing).
function hex64 (text: string): string {
  let h = 0x811c9dc5
  let out = ''
  for (let round = 0; out.length < 64; round++) {
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i) ^ round, 0x01000193) >>> 0
    out += h.toString(16).padStart(8, '0')
  }
  return out.slice(0, 64)
}
