// Hosts the sessions core: replication frames on their own libp2p stream, the
// durable store (one transaction, so one fsync, per batch of core steps, the
// inputs of one event-loop turn: group commit), terminals' requests, and role
// hooks. A batch's effects wait for its commit, except an owner's entries to its
// standbys, which leave first so that the owner's fsync overlaps theirs, and
// answers to terminals that acknowledge only entries an earlier batch stored
// (agent/sessions/commit-order.ts says which effects and why that loses no
// acknowledged write). The fsync runs in libuv's thread pool: meanwhile the
// event loop reads sockets and parses requests, the driver queues what arrives
// without stepping it, and the next batch takes all of it. When the WAL has
// grown enough, the store's checkpoint (its fsync in the thread pool too) runs
// after a batch's fsync, its late effects sent, before the next batch.

import { hash, randomBytes, timingSafeEqual } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import { SeededRandom } from '../core/random.ts'
import type { Service } from '../sessions/services.ts'
import { DiskWatch } from '../sessions/disk-watch.ts'
import { Sessions } from '../sessions/sessions.ts'
import type { ClientReply, MemberDirectory, SessionCommand, SessionDurable, SessionEffect, SessionEvent, SessionInput, StoredSession } from '../sessions/types.ts'
import { encode } from '../../protocol/codec.ts'
import type { SessionMessage } from '../../protocol/messages.ts'
import { orderAroundCommit } from '../sessions/commit-order.ts'
import type { Net } from '../net/types.ts'
import { CoreDriver } from './driver.ts'
import { runHook } from './hooks.ts'
import type { SessionStore } from './session-store.ts'

const monotonic = { nowMs: () => performance.now() }

// A terminal's request that got no answer from the core in this long (it always
// answers; this is a seatbelt against a bug leaving an HTTP request open).
const REQUEST_SEATBELT_MS = 60_000

export type TerminalRequest = Exclude<SessionCommand, { type: 'disconnected' | 'unreachable' | 'disk' }>

export type SessionsHostParts = {
  config: AgentConfig
  directory: MemberDirectory
  net: Net
  store: SessionStore
  // The store's sessions, when the caller has loaded (and so checked) them
  // already; otherwise they are loaded here.
  stored?: StoredSession[]
  log: Logger
  line: (object: Record<string, unknown>) => void
  onEvent: (event: SessionEvent) => void
  // The service table, shared with the deploy host, which adds deployed services.
  services: Map<string, Service>
  // Called once when the store fails (it cannot write or fsync): the agent
  // leaves its cluster and exits (agent.ts says why).
  onFailed?: (reason: string) => void
}

export class SessionsHost {
  readonly #parts: SessionsHostParts
  readonly #core: Sessions
  readonly #driver: CoreDriver<SessionInput, SessionEffect>
  readonly #pending = new Map<string, (reply: ClientReply) => void>()
  #nextRequest = 1
  #broken: string | null = null
  // A batch whose early frames have left and whose write (then fsync, then late
  // effects) runs at the next check phase, once those frames reached the socket.
  #deferred: { durable: SessionDurable[]; late: SessionEffect[]; immediate: NodeJS.Immediate } | null = null
  // A batch written whose fsync runs in the thread pool; its late effects leave
  // when it returns. The driver is held meanwhile.
  #syncing: { late: SessionEffect[] } | null = null
  // A checkpoint whose fsync of the database file runs in the thread pool (the
  // store's, session-store.ts); the driver stays held until it returns.
  #checkpointing: object | null = null
  // The store's fsyncs, timed (a slow disk: disk-watch.ts).
  readonly #disk: DiskWatch

  constructor (parts: SessionsHostParts) {
    this.#parts = parts
    this.#disk = new DiskWatch(parts.config.sessions.slowFsyncMs)
    this.#core = new Sessions({
      directory: parts.directory,
      config: parts.config.sessions,
      random: new SeededRandom(randomBytes(4).readUInt32LE(0)),
      services: parts.services,
      stored: parts.stored ?? parts.store.load(),
      closed: parts.store.loadClosed(),
      nowMs: monotonic.nowMs(),
      tokenHashesEqual,
      // Names this process in quiet sessions' tokens: never the same twice.
      bootId: randomBytes(6).readUIntLE(0, 6)
    })
    this.#driver = new CoreDriver(this.#core, monotonic, (effects) => this.#perform(effects), { groupCommit: true })
    this.#driver.step({ kind: 'tick' })
  }

  get count (): number {
    return this.#core.list().length
  }

  list (): ReturnType<Sessions['list']> {
    return this.#core.list()
  }

  // Services of the session copies held here.
  services (): Set<string> {
    return this.#core.services()
  }

  // Whether this agent has not joined its cluster yet (MemberDirectory.joining).
  get joining (): boolean {
    return this.#parts.directory.joining()
  }

  members (sessionId: string): string[] | null {
    return this.#core.members(sessionId)
  }

  receive (from: string, message: SessionMessage): void {
    this.#driver.step({ kind: 'receive', from, message })
  }

  hint (type: 'disconnected' | 'unreachable', peer: string): void {
    this.#driver.step({ kind: 'command', command: { type, peer } })
  }

  // A terminal's request; resolves with the core's answer.
  request (command: DistributiveOmit<TerminalRequest, 'requestId'>): Promise<ClientReply> {
    if (this.#broken !== null) return Promise.resolve({ status: 503, body: { error: `this agent stopped serving sessions: ${this.#broken}` } })
    const requestId = `h${this.#nextRequest++}`
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId)
        resolve({ status: 504, body: { error: 'no answer in time' } })
      }, REQUEST_SEATBELT_MS)
      this.#pending.set(requestId, (reply) => {
        clearTimeout(timer)
        resolve(reply)
      })
      this.#driver.step({ kind: 'command', command: { ...command, requestId } as TerminalRequest })
    })
  }

  stop (): void {
    // A batch already stepped is committed and answered, as it would have been
    // a moment later.
    this.#finishNow()
    this.#driver.stop()
    for (const resolve of this.#pending.values()) resolve({ status: 503, body: { error: 'the agent is stopping' } })
    this.#pending.clear()
  }

  // Order: early frames (entries to standbys) at once; the write in the next
  // check phase of the event loop, after the microtasks that carry those frames
  // through libp2p to the socket; its fsync in the thread pool; then everything
  // else of the batch (acks, votes, replies, events). From the write until the
  // fsync has returned the driver is held, so the core never sees an input of a
  // later turn before the batch before it is durable, and effects keep their order.
  #perform (effects: SessionEffect[]): void {
    const durable: SessionDurable[] = []
    for (const effect of effects) if (effect.kind === 'persist') durable.push(effect.record)
    const { early, late } = orderAroundCommit(effects, durable)
    if (durable.length === 0) {
      for (const effect of late) this.#effect(effect)
      return
    }
    this.#driver.hold()
    if (early.length === 0) {
      this.#write(durable, late)
      return
    }
    for (const effect of early) this.#effect(effect)
    const deferred = { durable, late, immediate: setImmediate(() => {
      if (this.#deferred !== deferred) return
      this.#deferred = null
      this.#write(deferred.durable, deferred.late)
    }) }
    this.#deferred = deferred
  }

  // Writes a batch (one transaction), then fsyncs it off the event loop and
  // sends its late effects. Nothing to make durable: they go at once.
  #write (durable: SessionDurable[], late: SessionEffect[]): void {
    let wrote: boolean
    try {
      wrote = this.#parts.store.write(durable)
    } catch (error) {
      this.#fail(error)
      return
    }
    if (!wrote) {
      this.#release(late)
      return
    }
    const syncing = { late }
    this.#syncing = syncing
    const syncStartMs = monotonic.nowMs()
    this.#parts.store.sync((error) => {
      // Finished already by stop(), or the store broke.
      if (this.#syncing !== syncing) return
      this.#syncing = null
      if (error !== null) {
        this.#fail(error)
        return
      }
      this.#timedSync(monotonic.nowMs() - syncStartMs)
      if (this.#parts.store.checkpointDue()) this.#checkpoint(late)
      else this.#release(late)
    })
  }

  // The batch is durable: its late effects leave now. The checkpoint copies the
  // WAL into the database file and fsyncs that off the event loop; the driver
  // stays held until then, as the next write may restart the WAL.
  #checkpoint (late: SessionEffect[]): void {
    for (const effect of late) this.#effect(effect)
    const checkpointing = {}
    this.#checkpointing = checkpointing
    this.#parts.store.checkpoint((error) => {
      if (this.#checkpointing !== checkpointing) return
      this.#checkpointing = null
      if (error !== null) this.#fail(error)
      else this.#driver.release()
    })
  }

  // The disk's verdict changed: said once, and told to the core (which hands
  // the sessions it owns to members that keep up: resign.ts). The
  // time includes the callback's wait for the event loop, so a box too busy
  // to run it for a median 100 ms counts as slow too, as it is for its writes.
  #timedSync (fsyncMs: number): void {
    const slow = this.#disk.observe(monotonic.nowMs(), fsyncMs)
    if (slow === null) return
    const medianMs = Math.round(this.#disk.medianMs * 10) / 10
    const slowFsyncMs = this.#disk.slowFsyncMs
    if (slow) this.#parts.log.warn({ medianMs, slowFsyncMs, dataDir: this.#parts.config.dataDir }, `this agent's disk is slow: its fsyncs took ${medianMs} ms (median over 5 s; sessions.slowFsyncMs ${slowFsyncMs}). It hands the sessions it owns to members that keep up and stands last in takeovers, until the median is under ${slowFsyncMs / 2} ms again`)
    else this.#parts.log.info({ medianMs, slowFsyncMs }, `this agent's disk keeps up again: its fsyncs took ${medianMs} ms (median over 5 s)`)
    this.#parts.line({ event: slow ? 'disk-slow' : 'disk-ok', medianMs, slowFsyncMs, atMs: Date.now() })
    this.#driver.step({ kind: 'command', command: { type: 'disk', slow } })
  }

  // Whether the disk is slow now, and its median fsync over the window (ms).
  get disk (): { slow: boolean; medianMs: number } {
    return { slow: this.#disk.slow, medianMs: this.#disk.medianMs }
  }

  #release (late: SessionEffect[]): void {
    for (const effect of late) this.#effect(effect)
    this.#driver.release()
  }

  // Commits whatever was stepped, blocking, and sends its late effects (stop).
  #finishNow (): void {
    const deferred = this.#deferred
    const syncing = this.#syncing
    this.#deferred = null
    this.#syncing = null
    // A checkpoint's fsync still under way is the store's to finish (write()
    // and syncNow() wait for it).
    this.#checkpointing = null
    try {
      if (deferred !== null) {
        clearImmediate(deferred.immediate)
        this.#parts.store.write(deferred.durable)
      }
      if (deferred !== null || syncing !== null) this.#parts.store.syncNow()
    } catch (error) {
      this.#fail(error)
      return
    }
    for (const effect of syncing?.late ?? []) this.#effect(effect)
    for (const effect of deferred?.late ?? []) this.#effect(effect)
  }

  #effect (effect: SessionEffect): void {
    switch (effect.kind) {
      case 'send': this.#send(effect.to, effect.message); break
      case 'connect': this.#parts.net.connect(effect.peer, 'sessions'); break
      case 'reply': this.#reply(effect.requestId, effect.reply); break
      case 'event': this.#onEvent(effect.event)
    }
  }

  // The core admits only what the codec can carry (agent/sessions/deltas.ts
  // checks an op's depth and values before logging it), so a frame that cannot
  // be encoded is a bug or a store written by an older agent. It must not take
  // the agent down with every session it holds: the frame is not sent, and the
  // log says which session and why.
  #send (to: string, message: SessionMessage): void {
    let frame: Uint8Array
    try {
      frame = encode(message)
    } catch (error) {
      this.#parts.log.error({ err: error, to, type: message.type, sessionId: 'sessionId' in message ? message.sessionId : undefined }, 'a session frame could not be encoded; it was not sent')
      return
    }
    this.#parts.net.send(to, frame, 'sessions')
  }

  // Nothing of a step but its early frames leaves the box unless its writes are
  // durable. A store that cannot write or fsync (disk full, I/O error) stops this
  // agent's sessions: it answers 503 and sends nothing more, and its group's
  // other members carry on (frames that left early were acknowledged to nobody).
  // The agent is told, and leaves its cluster (onFailed).
  #fail (error: unknown): void {
    if (this.#broken !== null) return
    this.#broken = (error as Error).message
    this.#deferred = null
    this.#syncing = null
    this.#checkpointing = null
    this.#parts.log.fatal({ err: error }, 'the session store failed; this agent stops serving sessions')
    this.#driver.stop()
    for (const resolve of this.#pending.values()) resolve({ status: 503, body: { error: 'the session store failed on this agent' } })
    this.#pending.clear()
    this.#parts.onFailed?.(this.#broken)
  }

  #reply (requestId: string, reply: ClientReply): void {
    const resolve = this.#pending.get(requestId)
    if (resolve === undefined) return
    this.#pending.delete(requestId)
    resolve(reply)
  }

  #onEvent (event: SessionEvent): void {
    this.#parts.onEvent(event)
    const log = this.#parts.log
    if (event.type === 'promoted' || event.type === 'demoted') {
      const owner = event.type === 'promoted'
      log.info({ session: event.sessionId, epoch: event.epoch, service: event.service }, owner ? 'took ownership of a session' : 'no longer owns a session')
      this.#parts.line({ event: event.type, sessionId: event.sessionId, service: event.service, epoch: event.epoch, atMs: Date.now(), ...(owner ? { tookMs: Math.round(event.tookMs) } : {}) })
      const command = owner ? this.#parts.config.onPromote : this.#parts.config.onDemote
      if (command !== null) {
        runHook(command, {
          EDGE_SESSION_ID: event.sessionId,
          EDGE_SERVICE: event.service,
          EDGE_EPOCH: String(event.epoch),
          EDGE_ROLE: owner ? 'owner' : 'standby',
          EDGE_PREVIOUS_OWNER: owner ? (event.previousOwner ?? '') : '',
          EDGE_AGENT_ID: this.#parts.directory.self
        }, log)
      }
      return
    }
    // The steps of a takeover, for whoever watches with --json.
    if (event.type === 'owner-suspected' || event.type === 'election-started' || event.type === 'election-lost') {
      this.#parts.line({ ...event, event: event.type, type: undefined, atMs: Date.now() })
    }
    if (event.type === 'resigned') {
      log.info({ session: event.sessionId, epoch: event.epoch, to: event.to, ackMs: Math.round(event.ackMs * 10) / 10 }, 'handed a session over: this agent\'s disk is slow and a member keeps up')
      this.#parts.line({ event: 'resigned', sessionId: event.sessionId, service: event.service, epoch: event.epoch, to: event.to, atMs: Date.now() })
    }
    if (event.type === 'group-changed') log.info({ session: event.sessionId, config: event.config, reason: event.reason }, 'session group changed')
    else if (event.type === 'truncated') log.warn({ session: event.sessionId, fromIndex: event.fromIndex, entries: event.entries }, 'dropped unacknowledged entries replaced by the new owner')
    else if (event.type === 'rejected') log.warn({ peer: event.from, reason: event.reason }, 'refused a session message')
    else if (event.type === 'apply-stalled') log.warn({ session: event.sessionId, index: event.index, reason: event.reason, stalledMs: Math.round(event.stalledMs) }, 'the service has not been able to apply a committed op of this session: its copy here waits at that op, retried every second (as owner it answers 503)')
    else if (event.type === 'apply-resumed') log.info({ session: event.sessionId, index: event.index, stalledMs: Math.round(event.stalledMs) }, 'the service applied the op it could not apply before; the session\'s copy here is up to date')
    else log.debug({ event }, 'session event')
  }
}

// Tokens: "<sessionId>~<64 hex>", random; the agents keep only their SHA-256.
export function newToken (sessionId: string): { token: string; tokenHash: string } {
  const token = `${sessionId}~${randomBytes(32).toString('hex')}`
  return { token, tokenHash: hashToken(token) }
}

// Token hashes are compared with timingSafeEqual: how long a refusal takes says
// nothing about how much of the hash matched.
export function tokenHashesEqual (a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8')
  const right = Buffer.from(b, 'utf8')
  // timingSafeEqual needs equal lengths; hashes of this agent always are.
  if (left.length !== right.length) return false
  return timingSafeEqual(left, right)
}

// Every terminal request hashes its token: the one-shot hash() (no Hash object
// per call) costs about half of createHash().update().digest() (0.8 µs, not 1.5).
export function hashToken (token: string): string {
  return hash('sha256', token, 'hex')
}

export function newSessionId (service: string): string {
  return `${service}:${randomBytes(8).toString('hex')}`
}

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never
