// Runs a deployed package's service code isolated from the agent (M3.3): one
// worker thread per package version, with a heap limit, and a time limit per
// call. The sessions core calls services synchronously (apply runs on every
// member, in log order), so a call posts to the worker and blocks on
// Atomics.wait until the answer or the time limit: a throw, a crash (out of
// memory) or a loop in service code fails that one call with a clear error; the
// worker is then replaced, and the agent carries on.
//
// This is isolation from faults, not a security sandbox: the code runs with the
// agent's permissions. Only packages signed by a trusted deployer get here.

import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads'
import type { MessagePort } from 'node:worker_threads'
import { pathToFileURL } from 'node:url'

// Time one call into service code may take, ms. An op is a small state change;
// the agent's thread waits for it, so this bounds how long a looping service
// can stall the agent per call.
export const SERVICE_CALL_TIMEOUT_MS = 200
// Time a fresh worker may take to start and load the package's module, ms.
export const SERVICE_BOOT_TIMEOUT_MS = 5_000
// Heap of one package's worker, MiB (V8 old generation; young generation and
// code space add a few MiB). A service that allocates beyond it is killed.
export const SERVICE_HEAP_MB = 64

export type CallResult = { ok: true; value: unknown; missing: boolean } | { ok: false; error: string }

// A sealed package's code is never written to disk in clear: the worker gets
// its files in memory and imports them through module hooks (service-worker.ts).
export type InMemoryCode = { files: Map<string, Uint8Array>; entry: string }

type Live = { worker: Worker; port: MessagePort; words: Int32Array; booted: boolean; loadError: string | null }

export class ServiceRunner {
  readonly label: string
  readonly #entry: string
  readonly #files: Map<string, Uint8Array> | null
  readonly #timeoutMs: number
  #live: Live | null = null
  #nextId = 1
  // Workers replaced after a timeout or crash (for metrics and tests).
  restarts = 0

  // `code`: the entry module's path, or a sealed package's files in memory.
  constructor (label: string, code: string | InMemoryCode, timeoutMs = SERVICE_CALL_TIMEOUT_MS) {
    this.label = label
    this.#entry = typeof code === 'string' ? pathToFileURL(code).href : code.entry
    this.#files = typeof code === 'string' ? null : code.files
    this.#timeoutMs = timeoutMs
  }

  // Starts the worker now (without waiting), so the first call does not wait
  // for it to boot.
  start (): void {
    this.#live ??= this.#spawn()
  }

  // Calls an export of the service module with JSON arguments. Never throws:
  // the sessions core calls it inside a step.
  call (fn: string, args: unknown[]): CallResult {
    try {
      return this.#call(fn, args)
    } catch (error) {
      this.#kill()
      return { ok: false, error: `${this.label}: ${fn} could not be called: ${(error as Error).message}` }
    }
  }

  #call (fn: string, args: unknown[]): CallResult {
    this.#live ??= this.#spawn()
    const live = this.#live
    if (!live.booted) this.#awaitBoot(live)
    if (live.loadError !== null) return { ok: false, error: live.loadError }
    const id = this.#nextId++
    Atomics.store(live.words, 0, 0)
    live.port.postMessage({ id, fn, args })
    const waited = Atomics.wait(live.words, 0, 0, this.#timeoutMs)
    const message = receiveMessageOnPort(live.port)?.message as { id: number; ok: boolean; value?: unknown; missing?: boolean; error?: string } | undefined
    if (waited === 'timed-out' || message === undefined || message.id !== id) {
      this.#kill()
      return { ok: false, error: `${this.label}: ${fn} did not answer within ${this.#timeoutMs} ms (a loop, or the worker crashed, e.g. out of memory); the call failed and the service was restarted` }
    }
    if (!message.ok) return { ok: false, error: `${this.label}: ${fn} failed: ${message.error ?? 'unknown error'}` }
    return { ok: true, value: message.value ?? null, missing: message.missing === true }
  }

  stop (): void {
    this.#kill()
  }

  #spawn (): Live {
    const flag = new SharedArrayBuffer(8)
    const words = new Int32Array(flag)
    const { port1, port2 } = new MessageChannel()
    const worker = new Worker(new URL('./service-worker.ts', import.meta.url), {
      workerData: { entry: this.#entry, files: this.#files, port: port2, flag },
      transferList: [port2],
      resourceLimits: { maxOldGenerationSizeMb: SERVICE_HEAP_MB },
      stdout: false,
      stderr: false
    })
    // A dead worker fails its pending call by timeout; the next call starts another.
    worker.on('error', () => {})
    worker.unref()
    port1.unref()
    return { worker, port: port1, words, booted: false, loadError: null }
  }

  // Blocks until the worker has loaded the module (or failed to).
  #awaitBoot (live: Live): void {
    live.booted = true
    if (Atomics.wait(live.words, 1, 0, SERVICE_BOOT_TIMEOUT_MS) === 'timed-out') {
      live.loadError = `${this.label}: the worker did not load the package within ${SERVICE_BOOT_TIMEOUT_MS} ms`
    } else if (Atomics.load(live.words, 1) === 2) {
      const failure = receiveMessageOnPort(live.port)?.message as { error?: string } | undefined
      live.loadError = `${this.label}: ${failure?.error ?? 'the module failed to load'}`
    }
  }

  #kill (): void {
    if (this.#live === null) return
    const { worker, port } = this.#live
    this.#live = null
    this.restarts++
    port.close()
    void worker.terminate().catch(() => {})
  }
}
