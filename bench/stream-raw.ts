// The transport ceiling: the raw frame rate of ONE libp2p stream between two real
// libp2p nodes in two OS processes on 127.0.0.1, over the agent's connection stack
// (TCP + noise + yamux). The receiver runs in a child process
// (agent/net/stream-bench.ts receiver), the sender in this one.
//
// One-way: frames of frameBytes written back to back for durationMs (in 64 KiB
// writes, as direct.ts batches them), rate = frames the receiver counted / time
// until its count came back. Echo: one frame in flight, round trips per second.
//
// Run alone: node bench/stream-raw.ts   (JSON on stdout, progress on stderr)

import { spawn, type ChildProcess } from 'node:child_process'
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

    return {
      frameBytes,
      durationMs,
      repeats,
      oneWayFramesPerSec: median(oneWayRuns),
      oneWayRuns,
      echoRoundTripsPerSec: median(echoRuns),
      echoRuns
    }
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
