// For bench/key-change.ts, on 127.0.0.1, for each pair of connection stacks:
// the handshake's cost (one libp2p node dials another and hangs up, again and
// again, in alternating batches of 20), and how many bytes one stream carries
// per second over the connection (the private network's cipher on every byte).
// This is the only module that imports libp2p for that benchmark.

import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import { multiaddr } from '@multiformats/multiaddr'

export type Stack = Pick<Libp2pOptions, 'transports' | 'connectionEncrypters' | 'streamMuxers' | 'connectionProtector'>

const BATCH = 20
const RATE_PROTOCOL = '/edge-agent-bench/bytes/1.0.0'
const CHUNK_BYTES = 16 * 1024

async function startNode (stack: Stack): Promise<Libp2p> {
  // libp2p refuses more than 5 inbound connections per second from one host by default.
  return await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, connectionManager: { inboundConnectionThreshold: 1_000_000 }, ...stack })
}

// MB/s of `mb` megabytes written in 16-KiB chunks on one stream, from the first
// write to the last byte read, for each pair in turn, `rounds` times.
export async function streamRates<K extends string> (pairs: Record<K, () => [Stack, Stack]>, mb: number, rounds: number): Promise<Record<K, number[]>> {
  const names = Object.keys(pairs) as K[]
  const rates = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>
  const chunk = new Uint8Array(CHUNK_BYTES)
  const total = mb * 1_000_000
  for (let round = 0; round < rounds; round++) {
    for (const name of names) {
      const [from, to] = pairs[name]()
      const a = await startNode(from)
      const b = await startNode(to)
      try {
        let received = 0
        const done = new Promise<void>((resolve) => {
          void b.handle(RATE_PROTOCOL, async ({ stream }) => {
            for await (const part of stream.source) received += part.byteLength
            resolve()
          })
        })
        await new Promise((resolve) => setTimeout(resolve, 10))
        const stream = await a.dialProtocol(multiaddr(b.getMultiaddrs()[0].toString()), RATE_PROTOCOL)
        const t0 = performance.now()
        await stream.sink((async function * () { for (let sent = 0; sent < total; sent += chunk.length) yield chunk })())
        await done
        rates[name].push(received / 1e6 / ((performance.now() - t0) / 1000))
      } finally {
        await a.stop()
        await b.stop()
      }
    }
  }
  return rates
}

// Ms per dial and hang-up, every one, for each named pair (dialler, dialled).
export async function timeDials<K extends string> (pairs: Record<K, [Stack, Stack]>, dials: number): Promise<Record<K, number[]>> {
  const nodes: Libp2p[] = []
  const node = async (stack: Stack): Promise<Libp2p> => {
    const n = await startNode(stack)
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
