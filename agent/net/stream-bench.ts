// The transport ceiling: how many length-prefixed frames ONE libp2p stream carries
// per second between two real libp2p nodes, over the agent's own connection stack
// (connectionStack(): TCP + noise + yamux, no pnet) on 127.0.0.1. The receiver is
// meant to run in its own OS process (`node agent/net/stream-bench.ts receiver`,
// see bench/stream-raw.ts); the sender runs in the caller's process.
//
// Protocol /edge-agent-bench/stream/1.0.0, length-prefixed frames both ways. The
// first frame names the mode:
// - 'one-way': the receiver counts the frames that follow; when the sender
//   half-closes it answers with one frame, the count in decimal, and closes.
// - 'echo': the receiver writes back every frame it reads, one at a time.
//
// This is the only module that imports libp2p for the benchmark.

import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createLibp2p, type Libp2p } from 'libp2p'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import { lengthPrefixed } from './frame-queue.ts'
import { varintBytes } from '../../protocol/wire.ts'
import type { Stream } from '@libp2p/interface'
import { generateIdentity, privateKeyOf } from './identity.ts'
import { connectionStack } from './transport.ts'
import { SEND_BATCH_MAX_BYTES } from './constants.ts'

export const STREAM_BENCH_PROTOCOL = '/edge-agent-bench/stream/1.0.0'

export type StreamBenchMode = 'one-way' | 'echo'

export type StreamBenchOptions = {
  mode: StreamBenchMode
  frameBytes: number
  durationMs: number
  // One-way only: encoded frames are gathered into writes of up to this many
  // bytes, as the agent's FrameQueue does (SEND_BATCH_MAX_BYTES, 64 KiB, by
  // default). 0 writes whatever lp.encode yields, as it yields it.
  batchBytes?: number
}

export type StreamBenchResult = { frames: number, seconds: number, framesPerSec: number }

// Frames of the benchmark are small; this only bounds a confused peer.
const MAX_BENCH_FRAME_BYTES = 4 * 1024 * 1024
const DIAL_TIMEOUT_MS = 10_000
// After the sender stops writing: time for the queued bytes to drain and the
// receiver's count (or the last echo) to come back.
const REPLY_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 5_000

const encoder = new TextEncoder()
const decoder = new TextDecoder()

async function createBenchNode (listen: string[]): Promise<Libp2p> {
  const identity = await generateIdentity()
  return await createLibp2p({
    privateKey: privateKeyOf(identity),
    addresses: { listen },
    ...connectionStack(undefined),
    // No ping traffic on the connection while measuring.
    connectionMonitor: { enabled: false }
  })
}

async function stopNode (node: Libp2p): Promise<void> {
  await Promise.race([
    Promise.resolve(node.stop()).catch(() => {}),
    new Promise<void>((resolve) => { setTimeout(resolve, STOP_TIMEOUT_MS).unref() })
  ])
}

function iterable<T> (iterator: AsyncIterator<T>): AsyncIterable<T> {
  return { [Symbol.asyncIterator]: () => iterator }
}

function toError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

// ---------------------------------------------------------------- receiver

export async function startStreamBenchReceiver (): Promise<{ addr: string, stop(): Promise<void> }> {
  const node = await createBenchNode(['/ip4/127.0.0.1/tcp/0'])
  await node.handle(STREAM_BENCH_PROTOCOL, ({ stream }) => { void serve(stream) })
  await node.start()
  const addr = node.getMultiaddrs().map((a) => a.toString()).find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
  if (addr === undefined) {
    await stopNode(node)
    throw new Error('the bench receiver has no /ip4/127.0.0.1/tcp address')
  }
  return { addr, stop: async () => { await stopNode(node) } }
}

async function serve (stream: Stream): Promise<void> {
  try {
    const frames = lp.decode(stream.source, { maxDataLength: MAX_BENCH_FRAME_BYTES })[Symbol.asyncIterator]()
    const first = await frames.next()
    if (first.done === true) {
      await stream.close()
      return
    }
    const mode = decoder.decode(first.value.subarray())
    if (mode === 'one-way') {
      let count = 0
      for await (const frame of iterable(frames)) {
        void frame
        count++
      }
      // The sender has half-closed: answer with the count, then close our side.
      await stream.sink([lp.encode.single(encoder.encode(String(count)))])
    } else if (mode === 'echo') {
      // Each frame goes back as soon as it is read, in one write of its own
      // (lp.encode.single: length prefix and payload together, as the agent's
      // FrameQueue writes a lone frame).
      await pipe(
        iterable(frames),
        async function * (source) {
          for await (const frame of source) yield lp.encode.single(frame)
        },
        stream.sink
      )
    } else {
      throw new Error(`unknown bench mode ${JSON.stringify(mode.slice(0, 40))}`)
    }
    await stream.close({ signal: AbortSignal.timeout(REPLY_TIMEOUT_MS) })
  } catch (err) {
    stream.abort(toError(err))
  }
}

// ------------------------------------------------------------------ sender

export async function runStreamBenchSender (addr: string, opts: StreamBenchOptions): Promise<StreamBenchResult> {
  if (!(Number.isInteger(opts.frameBytes) && opts.frameBytes > 0 && opts.frameBytes <= MAX_BENCH_FRAME_BYTES)) {
    throw new Error(`frameBytes must be an integer in 1..${MAX_BENCH_FRAME_BYTES} (got ${opts.frameBytes})`)
  }
  if (!(Number.isFinite(opts.durationMs) && opts.durationMs > 0)) {
    throw new Error(`durationMs must be a positive number (got ${opts.durationMs})`)
  }
  const node = await createBenchNode([])
  try {
    const stream = await node.dialProtocol(multiaddr(addr), STREAM_BENCH_PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
    try {
      return opts.mode === 'one-way'
        ? await sendOneWay(stream, opts.frameBytes, opts.durationMs, opts.batchBytes ?? SEND_BATCH_MAX_BYTES)
        : await sendEcho(stream, opts.frameBytes, opts.durationMs)
    } catch (err) {
      stream.abort(toError(err))
      throw new Error(`stream bench (${opts.mode}) to ${addr}: ${toError(err).message}`, { cause: err })
    }
  } finally {
    await stopNode(node)
  }
}

function payload (frameBytes: number): Uint8Array {
  const frame = new Uint8Array(frameBytes)
  for (let i = 0; i < frame.length; i++) frame[i] = (i * 131 + 7) & 0xff
  return frame
}

// The mode frame, then frames of `frameBytes` until the deadline.
function * framesUntil (mode: StreamBenchMode, frame: Uint8Array, deadline: number): Generator<Uint8Array> {
  yield encoder.encode(mode)
  while (performance.now() < deadline) yield frame
}

// Gathers frames into writes of up to `maxBytes` of length-prefixed frames (a
// frame is never split), each one contiguous buffer, as direct.ts's FrameQueue
// writes them (agent/net/frame-queue.ts says why one buffer).
function batches (maxBytes: number): (source: Iterable<Uint8Array>) => Generator<Uint8Array> {
  return function * (source) {
    let batch: Uint8Array[] = []
    let encoded = 0
    for (const frame of source) {
      const bytes = varintBytes(frame.length) + frame.length
      if (batch.length > 0 && encoded + bytes > maxBytes) {
        yield lengthPrefixed(batch, 0, batch.length, encoded)
        batch = []
        encoded = 0
      }
      batch.push(frame)
      encoded += bytes
    }
    if (batch.length > 0) yield lengthPrefixed(batch, 0, batch.length, encoded)
  }
}

// One-way: a generator yields frames for `durationMs`, lp.encode frames them, and
// the stream's sink writes them; then the sink half-closes and we wait for the
// receiver's count. Rate = frames counted by the receiver / time from the first
// write until the count arrived, so bytes still buffered when the writing stops
// are paid for.
//
// Writes are batched by default (batchBytes = 64 KiB, like direct.ts), because it
// is by far the faster honest way. Unbatched, lp.encode yields the length prefix
// and the payload as two chunks, and every chunk becomes its own yamux frame and
// noise message. Measured with 256-byte frames on a 2-vCPU box: ~330-400k
// frames/s batched into one buffer, ~80-150k batched as a list of prefixes and
// frames (noise then calls its cipher twice per frame), ~9-14k unbatched (two
// writes per frame), ~11-24k with one write per frame. Unbatched, the receiver
// is the bottleneck and the yamux window (which grows to 16 MiB) lets the sender
// queue seconds of backlog: a 3 s run took 5-11 s until the count came back,
// all of which is in the reported rate.
async function sendOneWay (stream: Stream, frameBytes: number, durationMs: number, batchBytes: number): Promise<StreamBenchResult> {
  const frame = payload(frameBytes)
  const replies = lp.decode(stream.source, { maxDataLength: MAX_BENCH_FRAME_BYTES })[Symbol.asyncIterator]()
  // Read from the start, so the count is seen the moment it arrives.
  const reply = replies.next()
  reply.catch(() => {})
  const started = performance.now()
  const frames = framesUntil('one-way', frame, started + durationMs)
  if (batchBytes > 0) {
    await pipe(frames, batches(batchBytes), stream.sink)
  } else {
    await pipe(frames, (source) => lp.encode(source), stream.sink)
  }
  const answer = await withTimeout(reply, REPLY_TIMEOUT_MS, 'the receiver did not report its count')
  const seconds = (performance.now() - started) / 1000
  if (answer.done === true) throw new Error('the receiver closed the stream without reporting its count')
  const count = Number(decoder.decode(answer.value.subarray()))
  if (!Number.isSafeInteger(count) || count < 0) throw new Error('the receiver reported a malformed count')
  await stream.close({ signal: AbortSignal.timeout(STOP_TIMEOUT_MS) }).catch(() => {})
  return { frames: count, seconds, framesPerSec: count / seconds }
}

// Echo: one frame in flight. Each frame is one write (lp.encode.single); the next
// is sent when its echo has been read. Rate = round trips per second.
async function sendEcho (stream: Stream, frameBytes: number, durationMs: number): Promise<StreamBenchResult> {
  const frame = payload(frameBytes)
  const replies = lp.decode(stream.source, { maxDataLength: MAX_BENCH_FRAME_BYTES })[Symbol.asyncIterator]()
  let rounds = 0
  let started = 0
  let ended = 0
  await pipe(
    async function * () {
      yield lp.encode.single(encoder.encode('echo'))
      started = performance.now()
      const deadline = started + durationMs
      while (performance.now() < deadline) {
        yield lp.encode.single(frame)
        const echo = await withTimeout(replies.next(), REPLY_TIMEOUT_MS, 'no echo from the receiver')
        if (echo.done === true) throw new Error('the receiver closed the stream during the echo run')
        if (echo.value.byteLength !== frameBytes) throw new Error(`echo of ${echo.value.byteLength} bytes, sent ${frameBytes}`)
        rounds++
      }
      ended = performance.now()
    },
    stream.sink
  )
  // Our side is half-closed; the receiver closes its side in turn.
  await withTimeout(replies.next(), REPLY_TIMEOUT_MS, 'the receiver kept the stream open').catch(() => {})
  const seconds = (ended - started) / 1000
  return { frames: rounds, seconds, framesPerSec: rounds / seconds }
}

async function withTimeout<T> (promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${message} within ${ms} ms`)) }, ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

// -------------------------------------------------------- as a script

// Whether the module at `url` is the script node was started with.
export function isMain (url: string): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(url))
  } catch {
    return false
  }
}

// `node agent/net/stream-bench.ts receiver`: prints {"addr": ...} as one line on
// stdout and serves until stdin closes (the parent went away) or SIGTERM/SIGINT.
async function receiverMain (): Promise<void> {
  const receiver = await startStreamBenchReceiver()
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    receiver.stop().finally(() => { process.exit(0) })
    setTimeout(() => { process.exit(0) }, STOP_TIMEOUT_MS).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.on('error', stop)
  process.stdin.resume()
  process.stdout.write(`${JSON.stringify({ addr: receiver.addr })}\n`)
}

if (process.argv[2] === 'receiver' && isMain(import.meta.url)) {
  receiverMain().catch((err: unknown) => {
    process.stderr.write(`stream-bench receiver: ${toError(err).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
