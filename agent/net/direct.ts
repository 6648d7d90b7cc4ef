// The direct protocol (/edge-agent/<cluster>/swim/1.0.0): one long-lived outbound
// stream per peer carrying length-prefixed frames, and the inbound side that reads
// them. Also serves the peek protocol, which answers one frame per stream.
//
// Nothing here may block: a frozen peer (SIGSTOP, TCP still open) stops granting
// yamux window, so its stream's sink stops pulling and its dials hang until their
// timeout. Each peer has its own queue and its own pending dial, so that peer's
// trouble stays with that peer; send() only pushes onto a bounded queue.

import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import { peerIdFromString } from '@libp2p/peer-id'
import type { IncomingStreamData, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { DirectChannelName, NetHandlers, NetRefusal, StreamRefusal } from './types.ts'
import { MAX_FRAME_BYTES, MAX_TABLE_FRAME_BYTES } from '../../protocol/limits.ts'
import { FrameQueue } from './frame-queue.ts'
import {
  DIRECT_MAX_STREAMS, MAX_INBOUND_STREAMS_PER_PEER, PEEK_MAX_STREAMS, RATE_TRACKED_PEERS, PEEK_SERVE_TIMEOUT_MS, SEND_BATCH_MAX_BYTES,
  SEND_QUEUE_MAX_BYTES, SEND_QUEUE_MAX_FRAMES, WRITE_STALL_MIN_BYTES_PER_S, WRITE_STALL_MIN_MS,
  peekProtocol
} from './constants.ts'
import { guard, toError, warnOnce } from './guard.ts'
import { BucketMap } from '../core/token-bucket.ts'
import type { BucketLimit } from '../core/token-bucket.ts'

export type DirectCounters = {
  framesOut: number
  bytesOut: number
  framesIn: number
  bytesIn: number
  queueDrops: number
  // Frames dropped because their peer failed a dial moments ago (redial backoff).
  redialHeld: number
}

// One peer's outbound side: its queue and, once open, its stream.
type Outbound = {
  peer: string
  queue: FrameQueue
  stream: Stream | null
  // Set when we end it on purpose (forget, stop): its end is then not a failure.
  closing: boolean
  // onUnreachable is called at most once per Outbound, i.e. once per failure.
  reported: boolean
}

export type DirectOptions = {
  node: Libp2p
  cluster: string
  // The stream protocol this channel speaks (membership or replication).
  protocol: string
  // Which of the two it is, as onDirect reports it.
  channel: DirectChannelName
  // Whether this channel also answers the peek protocol.
  servesPeek: boolean
  handlers: NetHandlers
  dialTimeoutMs: number
  // Inbound frames per peer and second on this protocol.
  frameRate: BucketLimit
  // Whether a failed dial holds back the next ones, and for how long: the first
  // wait after a failure, doubling up to max while dials keep failing (ms;
  // REDIAL_BACKOFF_* by default). null: never held back.
  redialBackoffMs: { min: number; max: number } | null
}

// Peers whose redial backoff is remembered at most (a cluster is 10-50 nodes).
const BACKOFF_TRACKED_PEERS = 1_024

export class DirectChannel {
  readonly counters: DirectCounters = { framesOut: 0, bytesOut: 0, framesIn: 0, bytesIn: 0, queueDrops: 0, redialHeld: 0 }
  private readonly node: Libp2p
  private readonly handlers: NetHandlers
  private readonly direct: string
  private readonly channel: DirectChannelName
  private readonly peek: string | null
  private readonly dialTimeoutMs: number
  private readonly stallMs: number
  private readonly outbound = new Map<string, Outbound>()
  private readonly inboundStreams = new Map<string, number>()
  // Peers whose last dial failed: not dialled again before untilMs
  // (REDIAL_BACKOFF_*; performance.now(), which a wall-clock step does not move).
  private readonly backoff = new Map<string, { untilMs: number; backoffMs: number }>()
  private readonly frameRate: BucketMap
  private readonly redialBackoffMs: { min: number; max: number } | null
  private stopped = false

  constructor (options: DirectOptions) {
    this.node = options.node
    this.handlers = options.handlers
    this.direct = options.protocol
    this.channel = options.channel
    this.peek = options.servesPeek ? peekProtocol(options.cluster) : null
    this.dialTimeoutMs = options.dialTimeoutMs
    this.stallMs = Math.max(options.dialTimeoutMs, WRITE_STALL_MIN_MS)
    this.frameRate = new BucketMap(options.frameRate, RATE_TRACKED_PEERS)
    this.redialBackoffMs = options.redialBackoffMs
  }

  // Registers the protocols; called before libp2p starts listening.
  async register (): Promise<void> {
    await this.node.handle(this.direct, (data) => { void this.readFrames(data) }, {
      maxInboundStreams: DIRECT_MAX_STREAMS,
      maxOutboundStreams: DIRECT_MAX_STREAMS
    })
    if (this.peek === null) return
    await this.node.handle(this.peek, (data) => { void this.servePeek(data.stream) }, {
      maxInboundStreams: PEEK_MAX_STREAMS,
      maxOutboundStreams: PEEK_MAX_STREAMS
    })
  }

  send (peer: string, frame: Uint8Array): void {
    if (this.stopped) return
    // The receiver would close the stream on it, losing the frames behind it.
    if (frame.length > MAX_FRAME_BYTES) {
      this.counters.queueDrops++
      return
    }
    let out = this.outbound.get(peer)
    if (out === undefined) {
      // Reported when the dial failed; each report steps every session.
      if (this.backingOff(peer)) {
        this.counters.redialHeld++
        return
      }
      const peerId = parsePeerId(peer)
      if (peerId === null) {
        // Reported later, never from inside the caller's send().
        queueMicrotask(() => { guard('onUnreachable', () => { this.handlers.onUnreachable(peer) }) })
        return
      }
      out = this.openOutbound(peer, peerId)
    }
    if (!out.queue.push(frame)) {
      this.counters.queueDrops++
    }
    this.checkStall(out)
  }

  // Opens the stream to `peer` now, so that its first frame does not wait for
  // stream negotiation. Asked for rarely (a group formed, a member restarted),
  // so it dials even while the peer's redial backoff lasts.
  open (peer: string): void {
    if (this.stopped || this.outbound.has(peer)) return
    this.backoff.delete(peer)
    const peerId = parsePeerId(peer)
    if (peerId !== null) this.openOutbound(peer, peerId)
  }

  // Peers with an open outbound stream (dialled and negotiated).
  openStreams (): number {
    let open = 0
    for (const out of this.outbound.values()) if (out.stream !== null) open++
    return open
  }

  // The peer may be reachable again (it connected to us, or its record came
  // with its addresses): the next send dials at once.
  reachableAgain (peer: string): void {
    this.backoff.delete(peer)
  }

  private backingOff (peer: string): boolean {
    const wait = this.backoff.get(peer)
    return wait !== undefined && performance.now() < wait.untilMs
  }

  // A dial failed: no other before the backoff, which doubles while they keep failing.
  private backOff (peer: string): void {
    const limits = this.redialBackoffMs
    if (limits === null) return
    const previous = this.backoff.get(peer)
    const backoffMs = previous === undefined ? limits.min : Math.min(previous.backoffMs * 2, limits.max)
    // Peers come from the member table, but the map is bounded all the same.
    if (previous === undefined && this.backoff.size >= BACKOFF_TRACKED_PEERS) this.backoff.clear()
    this.backoff.set(peer, { untilMs: performance.now() + backoffMs, backoffMs })
  }

  // Ends the peer's stream without reporting it; queued frames are discarded.
  forget (peer: string): void {
    this.backoff.delete(peer)
    const out = this.outbound.get(peer)
    if (out === undefined) return
    this.outbound.delete(peer)
    this.closeOutbound(out)
  }

  stop (): void {
    this.stopped = true
    for (const out of this.outbound.values()) this.closeOutbound(out)
    this.outbound.clear()
  }

  private openOutbound (peer: string, peerId: PeerId): Outbound {
    const queue = new FrameQueue(
      { maxFrames: SEND_QUEUE_MAX_FRAMES, maxBytes: SEND_QUEUE_MAX_BYTES, batchBytes: SEND_BATCH_MAX_BYTES },
      (frames, bytes) => { this.counters.framesOut += frames; this.counters.bytesOut += bytes }
    )
    const out: Outbound = { peer, queue, stream: null, closing: false, reported: false }
    this.outbound.set(peer, out)
    void this.connect(out, peerId)
    return out
  }

  private async connect (out: Outbound, peerId: PeerId): Promise<void> {
    let stream: Stream
    try {
      stream = await this.node.dialProtocol(peerId, this.direct, { signal: AbortSignal.timeout(this.dialTimeoutMs) })
    } catch {
      if (!out.closing) this.backOff(out.peer)
      this.fail(out)
      return
    }
    this.backoff.delete(out.peer)
    if (out.closing) {
      stream.abort(new Error('stream no longer wanted'))
      return
    }
    out.stream = stream
    out.queue.touch()
    // it-pipe: the queue is the source, the stream's sink drains it.
    pipe(out.queue, stream.sink).then(
      () => { this.streamEnded(out, false) },
      () => { this.streamEnded(out, true) }
    )
    void this.watch(out, stream)
  }

  // The remote never writes on this stream, so its source ends exactly when the
  // stream does: closed by the remote, reset, or its connection gone. The sink
  // alone cannot tell: multistream-select wraps it (it-byte-stream), and the
  // wrapper keeps waiting for our next frame after the stream beneath has died.
  private async watch (out: Outbound, stream: Stream): Promise<void> {
    let errored = false
    try {
      for await (const chunk of stream.source) void chunk
    } catch {
      errored = true
    }
    this.streamEnded(out, errored)
  }

  // The stream ended; the watcher or the sink saw it first, and the second call
  // changes nothing. A reset or error, or a close that strands queued frames, is
  // reported; a clean close with nothing queued (the peer stopped gracefully, the
  // connection was closed) is not: the next send dials again and reports if that
  // fails.
  private streamEnded (out: Outbound, errored: boolean): void {
    if (errored || out.queue.length > 0) {
      this.fail(out)
      return
    }
    this.discard(out)
  }

  private fail (out: Outbound): void {
    this.discard(out)
    if (out.closing || out.reported || this.stopped) return
    out.reported = true
    guard('onUnreachable', () => { this.handlers.onUnreachable(out.peer) })
  }

  private discard (out: Outbound): void {
    out.queue.end()
    if (this.outbound.get(out.peer) === out) this.outbound.delete(out.peer)
  }

  private closeOutbound (out: Outbound): void {
    out.closing = true
    out.queue.end()
    // Ending the queue lets the sink finish and half-close the stream; a stream
    // that cannot drain (a frozen peer) goes when libp2p closes the connection.
  }

  // A stream whose sink has not taken a queued frame for stallMs (plus the time
  // the last batch needs at the slowest acceptable rate) is aborted, so a frozen
  // peer is reported and its queue freed instead of silently filling up.
  private checkStall (out: Outbound): void {
    if (out.stream === null || out.queue.length === 0) return
    const allowedMs = this.stallMs + out.queue.lastBatchBytes * 1000 / WRITE_STALL_MIN_BYTES_PER_S
    const waitedMs = performance.now() - out.queue.waitingSinceMs
    if (waitedMs <= allowedMs) return
    out.stream.abort(new Error(`no write accepted by ${out.peer} for ${waitedMs} ms`))
    // The sink's rejection would report it too; reporting here makes it prompt.
    this.fail(out)
  }

  // Inbound direct stream: every length-prefixed frame goes to onDirect. A bad
  // length prefix (or any error) aborts this stream only. Per peer: streams beyond
  // MAX_INBOUND_STREAMS_PER_PEER are reset, frames over the rate are dropped, and a
  // frame over MAX_FRAME_BYTES ends the stream; each is reported to onRefused.
  private async readFrames ({ stream, connection }: IncomingStreamData): Promise<void> {
    const from = connection.remotePeer.toString()
    const open = (this.inboundStreams.get(from) ?? 0) + 1
    if (open > MAX_INBOUND_STREAMS_PER_PEER) {
      this.refused('streams-per-peer', from, `stream ${open} on ${this.direct}, over the limit of ${MAX_INBOUND_STREAMS_PER_PEER} per peer`)
      stream.abort(new Error(`too many streams: at most ${MAX_INBOUND_STREAMS_PER_PEER} per peer on ${this.direct}`))
      return
    }
    this.inboundStreams.set(from, open)
    let dropped = 0
    try {
      await pipe(
        stream.source,
        (source) => lp.decode(source, { maxDataLength: MAX_FRAME_BYTES }),
        async (frames) => {
          for await (const chunk of frames) {
            const frame = chunk.subarray()
            this.counters.framesIn++
            this.counters.bytesIn += frame.length
            if (!this.frameRate.take(from, 1, performance.now()).ok) {
              // Reported once per burst of drops, not once per frame.
              if (dropped++ === 0) this.refused('message-rate', from, `over ${this.frameRate.limit.ratePerS} frames/s on ${this.direct}`)
              continue
            }
            dropped = 0
            guard('onDirect', () => { this.handlers.onDirect(from, frame, this.channel) })
          }
        }
      )
      await stream.close({ signal: AbortSignal.timeout(this.dialTimeoutMs) })
    } catch (err) {
      const name = (err as Error).name
      if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError') {
        this.refused('frame-size', from, `a frame over MAX_FRAME_BYTES (${MAX_FRAME_BYTES}) on ${this.direct}`)
      }
      const refusal = streamRefusal(err)
      if (refusal !== null) guard('onStreamRefused', () => { this.handlers.onStreamRefused?.(from, this.channel, refusal) })
      stream.abort(toError(err))
    } finally {
      const left = (this.inboundStreams.get(from) ?? 1) - 1
      if (left <= 0) this.inboundStreams.delete(from)
      else this.inboundStreams.set(from, left)
    }
  }

  private refused (what: NetRefusal, peer: string, detail: string): void {
    guard('onRefused', () => { this.handlers.onRefused?.(what, peer, detail) })
  }

  // Inbound peek stream: one frame with the member table, then close.
  private async servePeek (stream: Stream): Promise<void> {
    const timer = setTimeout(() => { stream.abort(new Error('peek reply not taken in time')) }, PEEK_SERVE_TIMEOUT_MS)
    try {
      let frame: Uint8Array
      try {
        frame = this.handlers.onPeek()
      } catch (err) {
        warnOnce('onPeek', err)
        throw err
      }
      if (frame.length > MAX_TABLE_FRAME_BYTES) throw new Error(`peek reply of ${frame.length} bytes exceeds MAX_TABLE_FRAME_BYTES`)
      await stream.sink([lp.encode.single(frame)])
      await stream.close({ signal: AbortSignal.timeout(PEEK_SERVE_TIMEOUT_MS) })
    } catch (err) {
      stream.abort(toError(err))
    } finally {
      clearTimeout(timer)
    }
  }
}

// it-length-prefixed's errors for a length prefix we refuse; anything else (a
// reset, a closed connection) is the stream ending, not a refusal.
function streamRefusal (err: unknown): StreamRefusal | null {
  const name = (err as { name?: unknown } | null)?.name
  if (name === 'InvalidDataLengthError') return 'oversize'
  if (name === 'InvalidDataLengthLengthError' || name === 'InvalidMessageLengthError') return 'framing'
  if (name === 'UnexpectedEOFError') return 'truncated'
  return null
}

export function parsePeerId (peer: string): PeerId | null {
  try {
    return peerIdFromString(peer)
  } catch {
    return null
  }
}
