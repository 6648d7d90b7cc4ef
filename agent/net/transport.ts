// The connection stack shared by the agent's node and throwaway client nodes:
// TCP, noise, yamux, and @libp2p/pnet when the cluster is private.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import type { Libp2pOptions } from 'libp2p'

const PSK_BYTES = 32

export function connectionStack (psk: Uint8Array | undefined): Pick<Libp2pOptions, 'transports' | 'connectionEncrypters' | 'streamMuxers' | 'connectionProtector'> {
  return {
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(psk === undefined ? {} : { connectionProtector: preSharedKey({ psk: swarmKey(psk) }) })
  }
}

// @libp2p/pnet wants the text of a v1 swarm key file ("/key/swarm/psk/1.0.0/",
// "/base16/", 64 hex digits). Such a file is given as is; 32 raw bytes are wrapped
// into one. Anything else is refused by pnet when the node is created.
export function swarmKey (psk: Uint8Array): Uint8Array {
  if (psk.length !== PSK_BYTES) return psk
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${Buffer.from(psk).toString('hex')}`)
}
