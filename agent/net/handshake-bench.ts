// The handshake's cost for bench/key-change.ts: one libp2p node dials another on
// 127.0.0.1 and hangs up, again and again, for each pair of connection stacks,
// in alternating batches of 20. This is the only module that imports libp2p for
// that benchmark.

import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import { multiaddr } from '@multiformats/multiaddr'

export type Stack = Pick<Libp2pOptions, 'transports' | 'connectionEncrypters' | 'streamMuxers' | 'connectionProtector'>

const BATCH = 20

// Ms per dial and hang-up, every one, for each named pair (dialler, dialled).
export async function timeDials<K extends string> (pairs: Record<K, [Stack, Stack]>, dials: number): Promise<Record<K, number[]>> {
  const nodes: Libp2p[] = []
  const node = async (stack: Stack): Promise<Libp2p> => {
    // libp2p refuses more than 5 inbound connections per second from one host by default.
    const n = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, connectionManager: { inboundConnectionThreshold: 1_000_000 }, ...stack })
    nodes.push(n)
    return n
  }
  try {
    const names = Object.keys(pairs) as K[]
    const started = {} as Record<K, [Libp2p, Libp2p]>
    for (const name of names) started[name] = [await node(pairs[name][0]), await node(pairs[name][1])]
    const times = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>
    for (let done = 0; done < dials; done += BATCH) {
      for (const name of names) {
        const [from, to] = started[name]
        const target = multiaddr(to.getMultiaddrs()[0].toString())
        for (let i = 0; i < BATCH; i++) {
          const t0 = performance.now()
          const connection = await from.dial(target)
          times[name].push(performance.now() - t0)
          await connection.close()
        }
      }
    }
    return times
  } finally {
    await Promise.all(nodes.map(async (n) => { await n.stop() }))
  }
}
