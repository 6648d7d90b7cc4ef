// The connection stack shared by the agent's node and throwaway client nodes:
// TCP, noise, yamux, and, when the cluster is private, the private network's
// handshake under its keys (keyring.ts: @libp2p/pnet's bytes, more than one key).

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import type { Libp2pOptions } from 'libp2p'
import { YAMUX_KEEP_ALIVE } from './constants.ts'
import { ClusterKeyring } from './keyring.ts'
import { noiseCrypto } from './noise-crypto.ts'
import { installHalfWindowUpdates } from './yamux-window.ts'

// Called once per connection whose peer did not prove it holds the cluster key.
export type KeyRefused = (remoteAddr: string, detail: string) => void

// `keys`: none (an open cluster), one key (a client: peek, the tests' raw peers),
// or the agent's ring, which it can change while it runs.
export function connectionStack (keys: Uint8Array | ClusterKeyring | undefined, onKeyRefused: KeyRefused = () => {}): Pick<Libp2pOptions, 'transports' | 'connectionEncrypters' | 'streamMuxers' | 'connectionProtector'> {
  installHalfWindowUpdates()
  const ring = keys instanceof Uint8Array ? new ClusterKeyring({ primary: keys, previous: [] }, { refused: onKeyRefused }) : keys
  return {
    transports: [ring === undefined ? tcp() : ring.dialTransport(tcp())],
    // Noise's own crypto with each key prepared once (noise-crypto.ts).
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    // No keep-alive pings: see YAMUX_KEEP_ALIVE.
    streamMuxers: [yamux({ enableKeepAlive: YAMUX_KEEP_ALIVE })],
    ...(ring === undefined ? {} : { connectionProtector: () => ring.protector() })
  }
}
