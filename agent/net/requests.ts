// The packages protocol (/edge-agent/<cluster>/packages/1.0.0): one request and
// one answer per stream, each a length-prefixed frame (it-pipe +
// it-length-prefixed, as the direct protocol). The frames are opaque here; the
// agent's deploy host gives them meaning (agent/runtime/deploy-wire.ts).
// A stream that does not finish in time is aborted, so a frozen peer holds
// nothing for long.

import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { MAX_PACKAGE_FRAME_BYTES } from '../../protocol/limits.ts'
import { REQUEST_MAX_STREAMS } from './constants.ts'
import { parsePeerId } from './direct.ts'
import { errorMessage, toError } from './guard.ts'

export type RequestHandler = (from: string, frame: Uint8Array) => Promise<Uint8Array>

async function first (source: AsyncIterable<Uint8ArrayList | Uint8Array>): Promise<Uint8Array | null> {
  for await (const chunk of source) return chunk.subarray()
  return null
}

export class RequestChannel {
  readonly #node: Libp2p
  readonly #protocol: string
  readonly #timeoutMs: number
  counters = { requestsOut: 0, requestsIn: 0, bytesOut: 0, bytesIn: 0, failures: 0 }

  constructor (node: Libp2p, protocol: string, timeoutMs: number) {
    this.#node = node
    this.#protocol = protocol
    this.#timeoutMs = timeoutMs
  }

  async register (handler: RequestHandler | undefined): Promise<void> {
    if (handler === undefined) return
    await this.#node.handle(this.#protocol, ({ stream, connection }) => { void this.#serve(stream, connection.remotePeer.toString(), handler) }, {
      maxInboundStreams: REQUEST_MAX_STREAMS,
      maxOutboundStreams: REQUEST_MAX_STREAMS
    })
  }

  async #serve (stream: Stream, from: string, handler: RequestHandler): Promise<void> {
    const timer = setTimeout(() => { stream.abort(new Error('request not completed in time')) }, this.#timeoutMs)
    const counters = this.counters
    try {
      await pipe(
        stream.source,
        (source) => lp.decode(source, { maxDataLength: MAX_PACKAGE_FRAME_BYTES }),
        async function * (frames) {
          const frame = await first(frames)
          if (frame === null) return
          counters.requestsIn++
          counters.bytesIn += frame.length
          const answer = await handler(from, frame)
          counters.bytesOut += answer.length
          yield answer
        },
        (source) => lp.encode(source),
        stream.sink
      )
    } catch (err) {
      stream.abort(toError(err))
    } finally {
      clearTimeout(timer)
    }
  }

  // Sends one request frame to `peer` and resolves with its answer frame.
  async request (peer: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const peerId = parsePeerId(peer)
    if (peerId === null) throw new Error(`not a peer id: ${peer}`)
    const signal = AbortSignal.timeout(timeoutMs)
    this.counters.requestsOut++
    this.counters.bytesOut += frame.length
    let stream: Stream | null = null
    const onAbort = (): void => { stream?.abort(new Error('timed out')) }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      stream = await this.#node.dialProtocol(peerId, this.#protocol, { signal })
      const answer = await pipe(
        [frame],
        (source) => lp.encode(source),
        stream,
        (source) => lp.decode(source, { maxDataLength: MAX_PACKAGE_FRAME_BYTES }),
        first
      )
      if (answer === null) throw new Error('the peer closed the stream without an answer')
      this.counters.bytesIn += answer.length
      return answer
    } catch (err) {
      this.counters.failures++
      if (signal.aborted) throw new Error(`no answer from ${peer} within ${timeoutMs} ms`, { cause: err })
      throw new Error(`request to ${peer} failed: ${errorMessage(err)}`, { cause: err })
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }
}
