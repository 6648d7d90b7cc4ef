// The transport ceiling: the raw frame rate of ONE libp2p stream between two real
// libp2p nodes in two OS processes on 127.0.0.1, over the agent's connection stack
// (TCP + noise + yamux). The receiver runs in a child process
// (agent/net/stream-bench.ts receiver), the sender in this one.
//
// One-way: frames of frameBytes written back to back for durationMs (in 64 KiB
// writes, as direct.ts batches them), rate = frames the receiver counted / time
// until its count came back. Echo: one frame in flight, round trips per second.
// Beside it, the same echo over a plain TCP socket (node:net, no noise, no yamux,
// no stream iterators) between two Node processes: what one hop costs without the
// libp2p stack, for the replication path's two hops per acknowledged write.
//
// Run alone: node bench/stream-raw.ts   (JSON on stdout, progress on stderr)

import { spawn, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { isMain, runStreamBenchSender } from '../agent/net/stream-bench.ts'
import { fmt, log, median } from './lib.ts'

export type RawStreamResult = {
  frameBytes: number
  durationMs: number
  repeats: number
  oneWayFramesPerSec: number
  oneWayRuns: number[]
  echoRoundTripsPerSec: number
  echoRuns: number[]
  // Plain TCP echo, one frame in flight (absent in results written before it was measured).
  tcpEchoRoundTripsPerSec?: number
  tcpEchoRuns?: number[]
}

const RECEIVER_SCRIPT = fileURLToPath(new URL('../agent/net/stream-bench.ts', import.meta.url))
const WARM_UP_MS = 1_000
const ECHO_DURATION_MS = 3_000
const RECEIVER_START_TIMEOUT_MS = 30_000
const RECEIVER_STOP_TIMEOUT_MS = 5_000

export async function benchRawStream (opts: { frameBytes?: number, durationMs?: number, repeats?: number } = {}): Promise<RawStreamResult> {
  const frameBytes = opts.frameBytes ?? 256
  const durationMs = opts.durationMs ?? 5_000
  const repeats = opts.repeats ?? 3
  if (!(Number.isInteger(repeats) && repeats > 0)) throw new Error(`repeats must be a positive integer (got ${repeats})`)

  const child = spawn(process.execPath, [RECEIVER_SCRIPT, 'receiver'], { stdio: ['pipe', 'pipe', 'inherit'] })
  // EPIPE and the like once the child is gone are of no interest.
  child.stdin?.on('error', () => {})
  child.stdout?.on('error', () => {})
  // Last resort if this process exits without reaching the finally below (e.g.
  // process.exit() elsewhere). If it is killed outright, the child sees its stdin
  // close and exits by itself.
  const killOnExit = (): void => { child.kill('SIGKILL') }
  process.on('exit', killOnExit)
  try {
    const addr = await receiverAddr(child)
    log(`stream-raw: receiver pid ${child.pid} at ${addr}; ${frameBytes}-byte frames`)

    const warmUp = await runStreamBenchSender(addr, { mode: 'one-way', frameBytes, durationMs: WARM_UP_MS })
    log(`stream-raw: warm-up ${fmt(warmUp.framesPerSec)} frames/s (discarded)`)

    const oneWayRuns: number[] = []
    for (let i = 0; i < repeats; i++) {
      const run = await runStreamBenchSender(addr, { mode: 'one-way', frameBytes, durationMs })
      oneWayRuns.push(run.framesPerSec)
      log(`stream-raw: one-way ${i + 1}/${repeats}: ${run.frames} frames in ${fmt(run.seconds, 2)} s = ${fmt(run.framesPerSec)} frames/s`)
    }

    const echoRuns: number[] = []
    for (let i = 0; i < repeats; i++) {
      const run = await runStreamBenchSender(addr, { mode: 'echo', frameBytes, durationMs: ECHO_DURATION_MS })
      echoRuns.push(run.framesPerSec)
      log(`stream-raw: echo ${i + 1}/${repeats}: ${run.frames} round trips in ${fmt(run.seconds, 2)} s = ${fmt(run.framesPerSec)} /s`)
    }

    const tcpEchoRuns = await benchTcpEcho(frameBytes, repeats)
    return {
      frameBytes,
      durationMs,
      repeats,
      oneWayFramesPerSec: median(oneWayRuns),
      oneWayRuns,
      echoRoundTripsPerSec: median(echoRuns),
      echoRuns,
      tcpEchoRoundTripsPerSec: median(tcpEchoRuns),
      tcpEchoRuns
    }
  } finally {
    await stopChild(child)
    process.off('exit', killOnExit)
  }
}

// A node:net echo server in its own process on 127.0.0.1 (port 0): prints its
// port as {"addr": "<port>"} (the libp2p receiver's first line, so
// receiverAddr() reads both), echoes every byte back, exits when its stdin closes.
const TCP_ECHO_SERVER = `
const net = require('node:net')
const server = net.createServer((socket) => { socket.setNoDelay(true); socket.pipe(socket) })
server.listen(0, '127.0.0.1', () => { process.stdout.write(JSON.stringify({ addr: String(server.address().port) }) + '\\n') })
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
`

// Round trips per second of one frameBytes frame in flight over plain TCP, one
// run of ECHO_DURATION_MS per repeat (after a warm-up).
async function benchTcpEcho (frameBytes: number, repeats: number): Promise<number[]> {
  const child = spawn(process.execPath, ['-e', TCP_ECHO_SERVER], { stdio: ['pipe', 'pipe', 'inherit'] })
  child.stdin?.on('error', () => {})
  const killOnExit = (): void => { child.kill('SIGKILL') }
  process.on('exit', killOnExit)
  try {
    const port = Number(await receiverAddr(child))
    const socket = connect({ host: '127.0.0.1', port, noDelay: true })
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    const frame = Buffer.alloc(frameBytes, 0x61)
    let pending = 0
    let wake: (() => void) | null = null
    socket.on('data', (chunk: Buffer) => {
      pending -= chunk.length
      if (pending <= 0 && wake !== null) { const w = wake; wake = null; w() }
    })
    const run = async (ms: number): Promise<number> => {
      const started = performance.now()
      let trips = 0
      while (performance.now() - started < ms) {
        pending = frameBytes
        const back = new Promise<void>((resolve) => { wake = resolve })
        socket.write(frame)
        await back
        trips++
      }
      return trips / ((performance.now() - started) / 1_000)
    }
    await run(WARM_UP_MS)
    const runs: number[] = []
    for (let i = 0; i < repeats; i++) {
      runs.push(await run(ECHO_DURATION_MS))
      log(`stream-raw: plain TCP echo ${i + 1}/${repeats}: ${fmt(runs[i])} /s`)
    }
    socket.destroy()
    return runs
  } finally {
    await stopChild(child)
    process.off('exit', killOnExit)
  }
}

// The receiver prints {"addr": "..."} as its first stdout line.
async function receiverAddr (child: ChildProcess): Promise<string> {
  const stdout = child.stdout
  if (stdout === null) throw new Error('the bench receiver has no stdout')
  return await new Promise<string>((resolve, reject) => {
    let text = ''
    const finish = (err: Error | null, addr?: string): void => {
      clearTimeout(timer)
      stdout.off('data', onData)
      child.off('exit', onExit)
      child.off('error', onError)
      // Keep draining stdout so the child never blocks on a full pipe.
      stdout.resume()
      if (err !== null) reject(err)
      else resolve(addr as string)
    }
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8')
      const newline = text.indexOf('\n')
      if (newline < 0) return
      try {
        const parsed = JSON.parse(text.slice(0, newline)) as { addr?: unknown }
        if (typeof parsed.addr !== 'string') throw new Error('no addr field')
        finish(null, parsed.addr)
      } catch (err) {
        finish(new Error(`the bench receiver printed ${JSON.stringify(text.slice(0, newline).slice(0, 200))} instead of its address (${String(err)})`))
      }
    }
    const onExit = (code: number | null, signal: string | null): void => {
      finish(new Error(`the bench receiver exited (${signal ?? `code ${code}`}) before printing its address`))
    }
    const onError = (err: Error): void => { finish(new Error(`cannot start the bench receiver: ${err.message}`)) }
    const timer = setTimeout(() => { finish(new Error(`the bench receiver printed no address within ${RECEIVER_START_TIMEOUT_MS} ms`)) }, RECEIVER_START_TIMEOUT_MS)
    stdout.on('data', onData)
    child.once('exit', onExit)
    child.once('error', onError)
  })
}

// SIGTERM (and stdin closed), then SIGKILL if it is still there after a while.
async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  child.stdin?.end()
  child.kill('SIGTERM')
  let timer: ReturnType<typeof setTimeout> | undefined
  const timedOut = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(true) }, RECEIVER_STOP_TIMEOUT_MS) })
  ])
  clearTimeout(timer)
  if (timedOut) {
    child.kill('SIGKILL')
    await exited
  }
}


if (isMain(import.meta.url)) {
  const result = await benchRawStream()
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
}
