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
import { performance } from 'node:perf_hooks'

// Time one call into service code may take, ms. An op is a small state change;
// the agent's thread waits for it, so this bounds how long a looping service
// can stall the agent per call.
export const SERVICE_CALL_TIMEOUT_MS = 200
// How long a call waits for a fresh worker to start and load the package's
// module before it fails as unavailable (503; a member's apply waits at the op
// and retries: agent/sessions/apply.ts), ms. The agent's thread is blocked
// meanwhile, so this is short: at 5 s, a load on a busy box held the agent past
// its membership probes. A call waits that long only while no boot of this
// package has timed out: after one has, calls do not wait; they go through once
// the worker has loaded, and fail at once until it has. The agent starts a
// package's worker when it installs it, so it has usually loaded by the first op.
export const SERVICE_BOOT_TIMEOUT_MS = 50
// A worker still loading this long after it started is stopped (a loop at
// import burns a core for good), and the next one starts after a backoff that
// doubles from this, up to SERVICE_BOOT_BACKOFF_MAX_MS. Calls meanwhile fail at once.
export const SERVICE_BOOT_GIVE_UP_MS = 30_000
export const SERVICE_BOOT_BACKOFF_MAX_MS = 600_000
// Heap of one package's worker, MiB (V8 old generation; young generation and
// code space add a few MiB). A service that allocates beyond it is killed.
export const SERVICE_HEAP_MB = 64

// SERVICE_BOOT_TIMEOUT_MS and SERVICE_BOOT_GIVE_UP_MS (tests shorten them).
export type BootLimits = { waitMs: number; giveUpMs: number }
const BOOT_LIMITS: BootLimits = { waitMs: SERVICE_BOOT_TIMEOUT_MS, giveUpMs: SERVICE_BOOT_GIVE_UP_MS }

// `unavailable`: the call failed for want of a working worker (loading, timed
// out, crashed), not because the service refused it: worth retrying (503).
export type CallResult = { ok: true; value: unknown; missing: boolean } | { ok: false; error: string; unavailable?: boolean }

// A sealed package's code is never written to disk in clear: the worker gets
// its files in memory and imports them through module hooks (service-worker.ts).
export type InMemoryCode = { files: Map<string, Uint8Array>; entry: string }

type Live = { worker: Worker; port: MessagePort; words: Int32Array; booted: boolean; loadError: string | null; spawnedAtMs: number }

export class ServiceRunner {
  readonly label: string
  readonly #entry: string
  readonly #files: Map<string, Uint8Array> | null
  readonly #timeoutMs: number
  readonly #boot: BootLimits
  #live: Live | null = null
  #nextId = 1
  // Set once a boot timed out, cleared by a boot that completes: while set,
  // calls do not wait for a worker to load.
  #slowBoot = false
  // After a worker was stopped for never loading: no new one before this time,
  // and the backoff that set it.
  #respawnAtMs = 0
  #backoffMs = 0
  // Workers replaced after a timeout or crash (for metrics and tests).
  restarts = 0

  // `code`: the entry module's path, or a sealed package's files in memory.
  constructor (label: string, code: string | InMemoryCode, timeoutMs = SERVICE_CALL_TIMEOUT_MS, boot: BootLimits = BOOT_LIMITS) {
    this.label = label
    this.#boot = boot
    this.#entry = typeof code === 'string' ? pathToFileURL(code).href : code.entry
    this.#files = typeof code === 'string' ? null : code.files
    this.#timeoutMs = timeoutMs
  }

  // Starts the worker now (without waiting), so the first call does not wait
  // for it to boot.
  start (): void {
    this.#live ??= this.#spawn()
  }

  // Resolves once the worker has loaded the module (or failed to), or after
  // `timeoutMs`, without blocking the agent's thread: for callers that can wait
  // (a request by URL), so that they do not meet "still loading" where a
  // blocking call may wait only SERVICE_BOOT_TIMEOUT_MS.
  async whenLoaded (timeoutMs: number): Promise<void> {
    const live = this.#live
    if (live === null || live.booted) return
    const waited = Atomics.waitAsync(live.words, 1, 0, timeoutMs)
    if (waited.async) await waited.value
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
    if (this.#live === null && performance.now() < this.#respawnAtMs) {
      return { ok: false, unavailable: true, error: `${this.label}: the worker did not load the package within ${this.#boot.giveUpMs} ms and was stopped; another starts in ${Math.ceil((this.#respawnAtMs - performance.now()) / 1000)} s` }
    }
    this.#live ??= this.#spawn()
    const live = this.#live
    if (!live.booted) {
      const loading = this.#awaitBoot(live)
      if (loading !== null) return { ok: false, unavailable: true, error: loading }
    }
    if (live.loadError !== null) return { ok: false, error: live.loadError }
    const id = this.#nextId++
    Atomics.store(live.words, 0, 0)
    live.port.postMessage({ id, fn, args })
    const waited = Atomics.wait(live.words, 0, 0, this.#timeoutMs)
    const message = receiveMessageOnPort(live.port)?.message as { id: number; ok: boolean; value?: unknown; missing?: boolean; error?: string } | undefined
    if (waited === 'timed-out' || message === undefined || message.id !== id) {
      this.#kill()
      return { ok: false, unavailable: true, error: `${this.label}: ${fn} did not answer within ${this.#timeoutMs} ms (a loop, or the worker crashed, e.g. out of memory); the call failed and the service was restarted` }
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
    return { worker, port: port1, words, booted: false, loadError: null, spawnedAtMs: performance.now() }
  }

  // Until the worker has loaded the module (or failed to: loadError, for good,
  // as a module that throws at import will again): null once it has, else why
  // the call cannot go through yet. Waits only while no boot has timed out
  // (SERVICE_BOOT_TIMEOUT_MS). Before, one timed-out boot failed every later
  // call until the agent restarted, though the module had loaded a second later.
  #awaitBoot (live: Live): string | null {
    const wait = this.#slowBoot ? 0 : this.#boot.waitMs
    if (Atomics.wait(live.words, 1, 0, wait) === 'timed-out') {
      this.#slowBoot = true
      const loadingMs = performance.now() - live.spawnedAtMs
      if (loadingMs < this.#boot.giveUpMs) return `${this.label}: the worker is still loading the package (${Math.round(loadingMs)} ms so far); calls fail until it has loaded`
      this.#backoffMs = Math.min(SERVICE_BOOT_BACKOFF_MAX_MS, Math.max(this.#boot.giveUpMs, this.#backoffMs * 2))
      this.#respawnAtMs = performance.now() + this.#backoffMs
      this.#kill()
      return `${this.label}: the worker did not load the package within ${this.#boot.giveUpMs} ms and was stopped; another starts in ${this.#backoffMs / 1000} s`
    }
    live.booted = true
    this.#slowBoot = false
    this.#backoffMs = 0
    if (Atomics.load(live.words, 1) === 2) {
      const failure = receiveMessageOnPort(live.port)?.message as { error?: string } | undefined
      live.loadError = `${this.label}: ${failure?.error ?? 'the module failed to load'}`
    }
    return null
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
