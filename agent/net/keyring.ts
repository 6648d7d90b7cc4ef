// The private network's handshake, with more than one key: the cluster key this
// agent dials under (its primary) and previous keys it still accepts, so that a
// cluster changes its key while it runs (README, "Changing the cluster key").
//
// The bytes on the wire are those of @libp2p/pnet followed by the key proof the
// agent has always sent (so an agent of an earlier release, which runs pnet
// itself, speaks with this one): each side sends a 24-byte random nonce in
// clear, then everything it sends is XSalsa20 under (its nonce, a key), and the
// first 8 of those bytes are KEY_PROOF. The two directions are two streams, and
// nothing in the format says both use the same key, so the choice is made per
// connection:
//
// - The dialer sends under its primary (or the key a peer at that address
//   answered under the last time, see below), at once.
// - The listener reads the dialer's nonce and proof, finds which of its keys
//   decrypts the proof, and answers under that key. With none, it sends its
//   own proof under its primary (so that the dialer learns which key it holds)
//   and refuses the connection.
// - The dialer checks the listener's proof. Under the key it dialed with, the
//   connection goes on. Under another key of its ring (a listener of an earlier
//   release, or one not given this agent's primary yet), it remembers that key
//   for the address and refuses this connection: the next dial uses it. Under
//   none, it refuses.
//
// Whether a connection is ours (outbound) comes from the transport: dialTransport()
// wraps TCP's dial so that the upgrader it hands the new connection marks it.
//
// The ring can be replaced while the agent runs (setKeys); connections made
// under a key it no longer holds carry on (openUnderDropped counts them).

import { randomBytes } from 'node:crypto'
import type { AbortOptions, ConnectionProtector, MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import XSalsa20 from 'xsalsa20'
import { clusterKeyId, MAX_PREVIOUS_KEYS, PSK_BYTES } from './cluster-key.ts'

export type ClusterKeys = { primary: Uint8Array; previous: Uint8Array[] }

export const NONCE_BYTES = 24
// The 8 known bytes each side sends first through the private channel: pnet has
// no MAC, so a peer with another key would otherwise show only as garbage at the
// next layer (an anonymous noise failure).
export const KEY_PROOF = new TextEncoder().encode('edge-psk')
// A connection that has not sent its nonce and proof within this is refused.
export const HANDSHAKE_TIMEOUT_MS = 2_000
// How long a dial keeps to the key a peer answered under, before trying the
// primary again (the peer may have been given the primary meanwhile).
export const DIAL_KEY_MEMORY_MS = 300_000
const DIAL_KEY_MEMORY_MAX = 1_024

type Key = { psk: Uint8Array; id: string }

export type KeyringEvents = {
  // A connection refused: `host` is the remote address without its port.
  refused: (host: string, detail: string) => void
  // A peer answered a dial under another key of the ring: the next dials to
  // its address use that key.
  switched?: (address: string, from: string, to: string) => void
}

// Throws, saying why, on a ring the agent cannot use.
export function checkClusterKeys (keys: ClusterKeys): void {
  for (const key of [keys.primary, ...keys.previous]) {
    if (key.length !== PSK_BYTES) throw new RangeError(`a cluster key is ${PSK_BYTES} bytes (got ${key.length})`)
  }
  if (keys.previous.length > MAX_PREVIOUS_KEYS) throw new RangeError(`at most ${MAX_PREVIOUS_KEYS} previous cluster keys (got ${keys.previous.length})`)
  const ids = [keys.primary, ...keys.previous].map(clusterKeyId)
  const repeated = ids.find((id, i) => ids.indexOf(id) !== i)
  if (repeated !== undefined) throw new RangeError(`the key ${repeated} is given twice (a previous key is the cluster key, or two previous keys are the same)`)
}

// A remote address without its /p2p/ part: what a connection is known by here
// and on libp2p's Connection (which appends the peer id once it is proven).
function addressKey (address: string): string {
  return address.replace(/\/p2p\/[^/]+$/, '')
}

function hostOf (address: string): string {
  return address.replace(/\/(tcp|udp)\/\d+.*$/, '')
}

export class ClusterKeyring {
  #keys: Key[]
  readonly #events: KeyringEvents
  // Connections we dialled (their MultiaddrConnection), marked by dialTransport().
  readonly #outbound = new WeakSet<object>()
  // Address → the key a peer there answered under, and until when to use it.
  readonly #dialKeys = new Map<string, { id: string; untilMs: number }>()
  // Address of each connection past the handshake → the id of its key (and the
  // connection's own token, so that a connection closing late does not take
  // the entry of a newer one to the same address).
  readonly #live = new Map<string, { id: string; token: object }>()
  readonly #now: () => number

  constructor (keys: ClusterKeys, events: KeyringEvents, now: () => number = () => performance.now()) {
    checkClusterKeys(keys)
    this.#keys = prepare(keys)
    this.#events = events
    this.#now = now
  }

  ids (): { primary: string; previous: string[] } {
    return { primary: this.#keys[0].id, previous: this.#keys.slice(1).map((k) => k.id) }
  }

  // Replaces the ring. Connections made under a key it no longer holds carry on
  // (openUnderDropped counts them). Throws, changing nothing, on a ring
  // checkClusterKeys refuses.
  setKeys (keys: ClusterKeys): void {
    checkClusterKeys(keys)
    this.#keys = prepare(keys)
    const held = new Set(this.#keys.map((k) => k.id))
    for (const [address, memo] of this.#dialKeys) if (!held.has(memo.id)) this.#dialKeys.delete(address)
  }

  // The key id of the connection at this remote address, null if none is known.
  keyOf (address: string): string | null {
    return this.#live.get(addressKey(address))?.id ?? null
  }

  // Open connections made under a key the ring no longer holds.
  openUnderDropped (): number {
    const held = new Set(this.#keys.map((k) => k.id))
    return [...this.#live.values()].filter((entry) => !held.has(entry.id)).length
  }

  // How many connections are open under each key id.
  liveCounts (): Map<string, number> {
    const counts = new Map<string, number>()
    for (const { id } of this.#live.values()) counts.set(id, (counts.get(id) ?? 0) + 1)
    return counts
  }

  protector (): ConnectionProtector {
    return { protect: async (connection, options) => await this.#protect(connection, options) }
  }

  // Wraps a transport so that each connection it dials is known to be ours.
  dialTransport<C> (factory: (components: C) => Transport): (components: C) => Transport {
    const outbound = this.#outbound
    return (components) => {
      const transport = factory(components)
      return new Proxy(transport, {
        get (target, property) {
          const value = Reflect.get(target, property, target) as unknown
          if (property !== 'dial' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value
          const dial = value.bind(target) as Transport['dial']
          return async (ma: Parameters<Transport['dial']>[0], options: Parameters<Transport['dial']>[1]) => await dial(ma, { ...options, upgrader: marking(options.upgrader, outbound) })
        }
      })
    }
  }

  #dialKey (address: string): Key {
    const memo = this.#dialKeys.get(address)
    if (memo !== undefined) {
      const key = this.#keys.find((k) => k.id === memo.id)
      if (key !== undefined && memo.untilMs > this.#now()) return key
      this.#dialKeys.delete(address)
    }
    return this.#keys[0]
  }

  #remember (address: string, key: Key): void {
    this.#dialKeys.delete(address)
    this.#dialKeys.set(address, { id: key.id, untilMs: this.#now() + DIAL_KEY_MEMORY_MS })
    if (this.#dialKeys.size > DIAL_KEY_MEMORY_MAX) this.#dialKeys.delete(this.#dialKeys.keys().next().value as string)
  }

  async #protect (connection: MultiaddrConnection, options?: AbortOptions): Promise<MultiaddrConnection> {
    const outbound = this.#outbound.has(connection)
    const address = addressKey(connection.remoteAddr.toString())
    const host = hostOf(address)
    const keys = this.#keys
    const localNonce = new Uint8Array(randomBytes(NONCE_BYTES))
    // What to send after the nonce: the proof under this key, then the stream
    // above ('stream'), or the proof alone before closing ('end'); null: nothing.
    const choice = deferred<{ key: Key; then: 'stream' | 'end' } | null>()
    const above = deferred<AsyncIterable<Uint8Array | Uint8ArrayList>>()
    const written = Promise.resolve(connection.sink((async function * () {
      yield localNonce
      const chosen = await choice.promise
      if (chosen === null) return
      const box = XSalsa20(localNonce, chosen.key.psk)
      try {
        yield box.update(KEY_PROOF)
        if (chosen.then === 'end') return
        for await (const chunk of await above.promise) yield box.update(chunk instanceof Uint8Array ? chunk : chunk.subarray())
      } finally {
        box.finalize()
      }
    })()))
    written.catch(() => {})
    const dialKey = outbound ? this.#dialKey(address) : null
    if (dialKey !== null) choice.resolve({ key: dialKey, then: 'stream' })

    let reported = false
    const refuse = (detail: string): Error => {
      choice.resolve(null)
      reported = true
      this.#events.refused(host, detail)
      const error = new Error(`peer at ${host} does not hold this cluster's key (${detail})`)
      connection.abort(error)
      return error
    }
    // A read pending when the connection is aborted does not always settle:
    // each read races this.
    let fail: (error: Error) => void = () => {}
    const failed = new Promise<never>((_resolve, reject) => { fail = reject })
    failed.catch(() => {})
    const stop = (error: Error): void => {
      fail(error)
      connection.abort(error)
    }
    const timer = setTimeout(() => { stop(new Error(`no key proof within ${HANDSHAKE_TIMEOUT_MS} ms`)) }, HANDSHAKE_TIMEOUT_MS)
    const onAbort = (): void => { stop(new Error('the connection upgrade was aborted')) }
    options?.signal?.addEventListener('abort', onAbort, { once: true })
    const reader = new Reader(connection.source, failed)
    let unbox: XSalsa20 | null = null
    let under: Key = keys[0]
    try {
      const nonce = await reader.read(NONCE_BYTES)
      if (nonce === null) throw refuse(`the connection closed after ${reader.buffered} bytes, before the key exchange`)
      const proof = await reader.read(KEY_PROOF.length)
      if (proof === null) {
        // A listener that does not hold our key closes once it has read our
        // proof; one of this release first sends its own, one whose proof we
        // did not get may use the next key of the ring.
        if (dialKey !== null && keys.length > 1) this.#remember(address, keys[(keys.indexOf(dialKey) + 1) % keys.length])
        throw refuse(`the connection closed after its nonce, before the key was proven${dialKey === null ? '' : ` (dialled under ${dialKey.id})`}`)
      }
      const match = trial(keys, nonce, proof)
      if (match === null) {
        if (dialKey === null) {
          // Our proof under the primary tells the dialer which key we hold.
          choice.resolve({ key: keys[0], then: 'end' })
          await Promise.race([written, delay(200)])
        }
        throw refuse(`its first bytes decrypt under none of this agent's ${keys.length === 1 ? 'key' : `${keys.length} keys`}`)
      }
      unbox = match.unbox
      under = match.key
      if (dialKey === null) {
        choice.resolve({ key: match.key, then: 'stream' })
      } else if (match.key !== dialKey) {
        this.#remember(address, match.key)
        this.#events.switched?.(address, dialKey.id, match.key.id)
        throw refuse(`it answers under key ${match.key.id}, and was dialled under ${dialKey.id}; the next dial uses ${match.key.id}`)
      }
    } catch (error) {
      unbox?.finalize()
      choice.resolve(null)
      // Timed out, aborted, or reset before the key was proven.
      if (!reported) this.#events.refused(host, `the handshake failed before the key was proven: ${(error as Error).message}`)
      connection.abort(error as Error)
      throw error
    } finally {
      clearTimeout(timer)
      options?.signal?.removeEventListener('abort', onAbort)
    }
    const live = this.#live
    const token = {}
    live.set(address, { id: under.id, token })
    // Whichever ends first: our writing (the socket closed, or the layers
    // above closed it) or their reading.
    const gone = (): void => { if (live.get(address)?.token === token) live.delete(address) }
    written.then(gone, gone)
    const decrypt = unbox as XSalsa20
    return {
      ...connection,
      sink: async (source) => {
        above.resolve(source)
        await written
      },
      source: (async function * () {
        try {
          for await (const chunk of reader.rest()) yield decrypt.update(chunk)
        } finally {
          decrypt.finalize()
          gone()
        }
      })()
    }
  }
}

// The key that decrypts the peer's proof, and its cipher (past the proof).
function trial (keys: Key[], nonce: Uint8Array, proof: Uint8Array): { key: Key; unbox: XSalsa20 } | null {
  let found: { key: Key; unbox: XSalsa20 } | null = null
  for (const key of keys) {
    const unbox = XSalsa20(nonce, key.psk)
    const plain = unbox.update(proof)
    if (found === null && plain.every((byte, i) => byte === KEY_PROOF[i])) {
      found = { key, unbox }
    } else {
      unbox.finalize()
    }
  }
  return found
}

function prepare (keys: ClusterKeys): Key[] {
  return [keys.primary, ...keys.previous].map((psk) => ({ psk: new Uint8Array(psk), id: clusterKeyId(psk) }))
}

function marking (upgrader: Upgrader, outbound: WeakSet<object>): Upgrader {
  return new Proxy(upgrader, {
    get (target, property) {
      const value = Reflect.get(target, property, target) as unknown
      if (typeof value !== 'function') return value
      if (property !== 'upgradeOutbound') return value.bind(target)
      const upgrade = value.bind(target) as Upgrader['upgradeOutbound']
      return async (maConn: MultiaddrConnection, options: Parameters<Upgrader['upgradeOutbound']>[1]) => {
        outbound.add(maConn)
        return await upgrade(maConn, options)
      }
    }
  })
}

function deferred<T> (): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => {}
  const promise = new Promise<T>((r) => { resolve = r })
  return { promise, resolve }
}

function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

// Reads exact byte counts off a connection's source, then hands over the rest.
class Reader {
  readonly #it: AsyncIterator<Uint8Array | Uint8ArrayList>
  readonly #buffer = new Uint8ArrayList()
  readonly #failed: Promise<never>

  // `failed` rejects to end a read that is waiting (a timeout, an abort).
  constructor (source: AsyncIterable<Uint8Array | Uint8ArrayList>, failed: Promise<never>) {
    this.#it = source[Symbol.asyncIterator]()
    this.#failed = failed
  }

  get buffered (): number {
    return this.#buffer.byteLength
  }

  // The next n bytes; null if the source ends first.
  async read (n: number): Promise<Uint8Array | null> {
    while (this.#buffer.byteLength < n) {
      const next = await Promise.race([this.#it.next(), this.#failed])
      if (next.done === true) return null
      this.#buffer.append(next.value)
    }
    const out = this.#buffer.subarray(0, n)
    this.#buffer.consume(n)
    return out
  }

  async * rest (): AsyncGenerator<Uint8Array> {
    if (this.#buffer.byteLength > 0) {
      const held = this.#buffer.subarray()
      this.#buffer.consume(held.byteLength)
      yield held
    }
    for (;;) {
      const next = await this.#it.next()
      if (next.done === true) return
      yield next.value instanceof Uint8Array ? next.value : next.value.subarray()
    }
  }
}
