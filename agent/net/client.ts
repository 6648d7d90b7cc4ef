// Throwaway client-only libp2p nodes: no listen address, no gossipsub, a fresh key.
// peekOverLibp2p() asks an agent for its member table; writeRawOverLibp2p() is a
// test tool that writes arbitrary bytes on a protocol (e.g. a bad length prefix).

import { createLibp2p, type Libp2p } from 'libp2p'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import { MAX_TABLE_FRAME_BYTES } from '../../protocol/limits.ts'
import { directProtocol, peekProtocol } from './constants.ts'
import { connectionStack } from './transport.ts'
import { errorMessage } from './guard.ts'

async function createClientNode (psk: Uint8Array | undefined): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: [] },
    ...connectionStack(psk),
    // A client lives for one request; pinging its connection is pointless.
    connectionMonitor: { enabled: false }
  })
}

function parseTarget (what: string, target: string): Multiaddr {
  try {
    return multiaddr(target)
  } catch (err) {
    throw new Error(`${what} ${target}: not a multiaddr (${errorMessage(err)})`)
  }
}

// Starts a client node, opens `protocol` on `target`, runs `use` on the stream,
// and always stops the node. Errors name the target and say what happened.
async function withStream<T> (what: string, target: string, protocol: string, timeoutMs: number, psk: Uint8Array | undefined, use: (stream: Stream, signal: AbortSignal) => Promise<T>): Promise<T> {
  const addr = parseTarget(what, target)
  const signal = AbortSignal.timeout(timeoutMs)
  const node = await createClientNode(psk)
  try {
    const connection = await node.dial(addr, { signal })
    // The address names the peer it expects (/p2p/<id>): an answer from another
    // one (a box that took over the address) is not that peer's.
    const expected = addr.getPeerId()
    if (expected !== null && connection.remotePeer.toString() !== expected) {
      throw new Error(`the node at this address is ${connection.remotePeer.toString()}, not ${expected}`)
    }
    const stream = await connection.newStream(protocol, { signal })
    // Reads are not signal-aware: aborting the stream ends a pending read.
    const onAbort = (): void => { stream.abort(new Error('timed out')) }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      return await use(stream, signal)
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  } catch (err) {
    if (signal.aborted) throw new Error(`${what} ${target}: no answer within ${timeoutMs} ms`, { cause: err })
    if (err instanceof Error && err.name === 'UnsupportedProtocolError') {
      throw new Error(`${what} ${target}: the node does not speak ${protocol} (another cluster name, or not an agent?)`, { cause: err })
    }
    throw new Error(`${what} ${target}: ${errorMessage(err)}`, { cause: err })
  } finally {
    await Promise.resolve(node.stop()).catch(() => {})
  }
}

// Asks the agent at `target` (a multiaddr, normally ending in /p2p/<id>) for its
// member table and returns the encoded frame.
export async function peekOverLibp2p (target: string, cluster: string, timeoutMs: number, psk?: Uint8Array): Promise<Uint8Array> {
  return await withStream('peek', target, peekProtocol(cluster), timeoutMs, psk, async (stream) => {
    for await (const chunk of lp.decode(stream.source, { maxDataLength: MAX_TABLE_FRAME_BYTES })) {
      return chunk.slice()
    }
    throw new Error('the agent closed the stream without an answer')
  })
}

// Test tool: writes `bytes` verbatim on the cluster's direct protocol and waits
// until the remote ends the stream. Resolves with how it ended. By default our
// side stays open, so only the remote can end it (e.g. on a bad length prefix);
// with `halfClose` we close our side after writing, and a remote that read
// well-formed frames ends the stream in turn.
export async function writeRawOverLibp2p (target: string, cluster: string, bytes: Uint8Array, timeoutMs: number, psk?: Uint8Array, halfClose = false): Promise<'closed' | 'reset'> {
  return await withStream('raw write', target, directProtocol(cluster), timeoutMs, psk, async (stream, signal) => {
    let done = (): void => {}
    const finished = new Promise<void>((resolve) => { done = resolve })
    void stream.sink((async function * () {
      yield bytes
      if (!halfClose) await finished
    })()).catch(() => {})
    try {
      for await (const chunk of stream.source) void chunk
      if (signal.aborted) throw new Error('the remote kept the stream open')
      return stream.status === 'reset' ? 'reset' : 'closed'
    } catch {
      if (signal.aborted) throw new Error('the remote kept the stream open')
      return 'reset'
    } finally {
      done()
    }
  })
}

// Test tool: one client node opens `count` streams on the cluster's direct
// protocol and holds them open for `holdMs`. Resolves with how many the remote
// accepted and how many it reset or refused (the per-peer stream limit).
export async function openRawStreams (target: string, cluster: string, count: number, holdMs: number, psk?: Uint8Array): Promise<{ accepted: number; refused: number }> {
  const addr = parseTarget('raw streams', target)
  const node = await createClientNode(psk)
  const streams: Stream[] = []
  let refused = 0
  try {
    for (let i = 0; i < count; i++) {
      try {
        const stream = await node.dialProtocol(addr, directProtocol(cluster), { signal: AbortSignal.timeout(5_000) })
        streams.push(stream)
        // Our side never writes; the remote resetting the stream ends its source.
        void (async () => { try { for await (const chunk of stream.source) void chunk } catch {} })()
      } catch {
        refused++
      }
    }
    await new Promise((resolve) => setTimeout(resolve, holdMs))
    const reset = streams.filter((s) => s.status !== 'open').length
    return { accepted: streams.length - reset, refused: refused + reset }
  } finally {
    await Promise.resolve(node.stop()).catch(() => {})
  }
}
