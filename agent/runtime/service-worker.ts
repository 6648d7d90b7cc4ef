// Runs inside a worker thread (service-runner.ts): loads one package's entry
// module and answers calls on a MessagePort. After each answer (or once the
// module has loaded) it flips a shared flag, which lets the agent's thread wait
// for the answer synchronously with Atomics.wait and a time limit.
//
// Flag words: [0] answer ready (0 → 1), [1] module state (0 loading, 1 ready,
// 2 failed to load).

import { registerHooks } from 'node:module'
import { workerData } from 'node:worker_threads'
import type { MessagePort } from 'node:worker_threads'

type Call = { id: number; fn: string; args: unknown[] }
// `files` (a sealed package, decrypted in memory): `entry` is a path among them.
type Data = { entry: string; files: Map<string, Uint8Array> | null; port: MessagePort; flag: SharedArrayBuffer }

const { entry, files, port, flag } = workerData as Data
// In-memory modules live under this URL; relative imports resolve among them
// (URL resolution cannot climb above the root), anything else (node:…) as usual.
const MEMORY_ROOT = 'edge-package://sealed/'
if (files !== null) {
  registerHooks({
    resolve (specifier, context, next) {
      if (specifier.startsWith(MEMORY_ROOT)) return { url: specifier, shortCircuit: true }
      if (context.parentURL?.startsWith(MEMORY_ROOT) === true && /^(\.{1,2}\/|\/)/.test(specifier)) {
        return { url: new URL(specifier, context.parentURL).href, shortCircuit: true }
      }
      return next(specifier, context)
    },
    load (url, context, next) {
      if (!url.startsWith(MEMORY_ROOT)) return next(url, context)
      const path = decodeURIComponent(new URL(url).pathname.slice(1))
      const source = files.get(path)
      if (source === undefined) throw new Error(`the package has no file ${path}`)
      return { format: path.endsWith('.json') ? 'json' : 'module', source, shortCircuit: true }
    }
  })
}
const entryUrl = files === null ? entry : MEMORY_ROOT + entry
const words = new Int32Array(flag)

function answer (message: unknown): void {
  port.postMessage(message)
  Atomics.store(words, 0, 1)
  Atomics.notify(words, 0)
}

function describe (error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return `threw ${typeof error === 'string' ? JSON.stringify(error) : String(error)}`
}

let mod: Record<string, unknown> = {}
try {
  mod = await import(entryUrl) as Record<string, unknown>
  Atomics.store(words, 1, 1)
} catch (error) {
  port.postMessage({ id: 0, ok: false, error: `the package's entry module failed to load: ${describe(error)}` })
  Atomics.store(words, 1, 2)
}
Atomics.notify(words, 1)

port.on('message', (call: Call) => {
  const fn = mod[call.fn]
  if (typeof fn !== 'function') {
    answer({ id: call.id, ok: true, missing: true })
    return
  }
  try {
    // JSON round trip: only plain data leaves the service (no functions,
    // no prototypes, no cycles).
    const value = fn(...call.args) as unknown
    answer({ id: call.id, ok: true, value: value === undefined ? null : JSON.parse(JSON.stringify(value)) })
  } catch (error) {
    answer({ id: call.id, ok: false, error: describe(error) })
  }
})
