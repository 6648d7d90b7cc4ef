// The connection stack shared by the agent's node and throwaway client nodes:
// TCP, noise, yamux, and @libp2p/pnet when the cluster is private.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import type { AbortOptions, ConnectionProtector, MultiaddrConnection } from '@libp2p/interface'
import type { Libp2pOptions } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { PSK_BYTES } from './cluster-key.ts'
import { YAMUX_KEEP_ALIVE } from './constants.ts'
import { noiseCrypto } from './noise-crypto.ts'
import { installHalfWindowUpdates } from './yamux-window.ts'

// Called once per connection whose peer did not prove it holds the cluster key.
export type KeyRefused = (remoteAddr: string, detail: string) => void

export function connectionStack (psk: Uint8Array | undefined, onKeyRefused: KeyRefused = () => {}): Pick<Libp2pOptions, 'transports' | 'connectionEncrypters' | 'streamMuxers' | 'connectionProtector'> {
  installHalfWindowUpdates()
  return {
    transports: [tcp()],
    // Noise's own crypto with each key prepared once (noise-crypto.ts).
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    // No keep-alive pings: see YAMUX_KEEP_ALIVE.
    streamMuxers: [yamux({ enableKeepAlive: YAMUX_KEEP_ALIVE })],
    ...(psk === undefined
      ? {}
      : {
          connectionProtector: (components: Parameters<ReturnType<typeof preSharedKey>>[0]) =>
            new ProvenKeyProtector(preSharedKey({ psk: swarmKey(psk) })(components), onKeyRefused)
        })
  }
}

// @libp2p/pnet wants the text of a v1 swarm key file ("/key/swarm/psk/1.0.0/",
// "/base16/", 64 hex digits). Such a file is given as is; 32 raw bytes are wrapped
// into one. Anything else is refused by pnet when the node is created.
export function swarmKey (psk: Uint8Array): Uint8Array {
  if (psk.length !== PSK_BYTES) return psk
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${Buffer.from(psk).toString('hex')}`)
}

// pnet encrypts with XSalsa20 and no MAC: a peer with another key (or none) is
// only noticed when the next layer chokes on garbage, as an anonymous noise
// failure. So each side first sends 8 known bytes through the private channel
// and checks the other's: a peer without this key cannot produce them (2^-64),
// and its connection is refused here, by name, and counted.
const KEY_PROOF = new TextEncoder().encode('edge-psk')

class ProvenKeyProtector implements ConnectionProtector {
  readonly #inner: ConnectionProtector
  readonly #onRefused: KeyRefused

  constructor (inner: ConnectionProtector, onRefused: KeyRefused) {
    this.#inner = inner
    this.#onRefused = onRefused
  }

  async protect (connection: MultiaddrConnection, options?: AbortOptions): Promise<MultiaddrConnection> {
    let inner: MultiaddrConnection
    try {
      inner = await this.#inner.protect(connection, options)
    } catch (error) {
      this.#onRefused(connection.remoteAddr.toString().replace(/\/(tcp|udp)\/\d+.*$/, ''), `no key exchange: ${(error as Error).message}`)
      throw error
    }
    // The host without its port: one refusal log per host, not per connection.
    const remote = connection.remoteAddr.toString().replace(/\/(tcp|udp)\/\d+.*$/, '')
    const onRefused = this.#onRefused
    const innerSink = inner.sink
    return {
      ...inner,
      sink: async (source) => { await innerSink(prepend(KEY_PROOF, source)) },
      source: checkProof(inner.source, (detail) => {
        onRefused(remote, detail)
        connection.abort(new Error(`peer at ${remote} does not hold this cluster's key (${detail})`))
      })
    }
  }
}

async function * prepend (first: Uint8Array, rest: AsyncIterable<Uint8Array | Uint8ArrayList> | Iterable<Uint8Array | Uint8ArrayList>): AsyncGenerator<Uint8Array | Uint8ArrayList> {
  yield first
  yield * rest
}

async function * checkProof (source: AsyncIterable<Uint8Array | Uint8ArrayList>, refuse: (detail: string) => void): AsyncGenerator<Uint8Array> {
  const head = new Uint8ArrayList()
  let proven = false
  let refused = false
  try {
    for await (const chunk of source) {
      if (proven) {
        yield chunk instanceof Uint8Array ? chunk : chunk.subarray()
        continue
      }
      head.append(chunk)
      if (head.byteLength < KEY_PROOF.length) continue
      const got = head.subarray(0, KEY_PROOF.length)
      if (!KEY_PROOF.every((byte, i) => got[i] === byte)) {
        refused = true
        refuse('its first bytes do not decrypt with this key')
        throw new Error('the peer does not hold this cluster\'s key')
      }
      proven = true
      if (head.byteLength > KEY_PROOF.length) yield head.subarray(KEY_PROOF.length)
    }
  } catch (error) {
    if (!proven && !refused) refuse(`the connection failed before the key was proven: ${(error as Error).message}`)
    throw error
  }
  if (!proven) refuse(`the connection closed after ${head.byteLength} bytes, before the key was proven`)
}
