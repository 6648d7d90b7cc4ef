// Redis with Sentinel, the failover users know, measured on this machine: one
// primary, two replicas and three sentinels (quorum 2) on 127.0.0.1, each round a
// fresh set in its own temp directory. A writer appends sequence numbers to a
// list (RPUSH, one in flight, the edge-agent terminal's pace), with `WAIT 2` after
// each write or without; after an error it asks the sentinels for the primary.
// The primary is SIGKILLed (or SIGSTOPped); the round measures the ms to the first
// acknowledged write on the new primary and counts the acknowledged writes the
// new primary does not hold (lost).
//
// The RESP client is bench/resp.ts, shared with the replication comparison.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { log, sleep } from './lib.ts'
import { RespClient } from './resp.ts'
import type { RespValue } from './resp.ts'

async function once (port: number, args: Array<string | number>, timeoutMs = 1_000): Promise<RespValue> {
  const c = await RespClient.connect(port, timeoutMs)
  try {
    return await c.call(args, timeoutMs)
  } finally {
    c.close()
  }
}

export async function freePorts (count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, async () => await new Promise<ReturnType<typeof createServer>>((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => resolve(server))
  })))
  const ports = servers.map((s) => (s.address() as { port: number }).port)
  await Promise.all(servers.map(async (s) => await new Promise((resolve) => s.close(resolve))))
  return ports
}

// ---- the cluster -------------------------------------------------------------

export type RedisSetup = { downAfterMs: number; failoverTimeoutMs: number }

const MASTER = 'bench'

export class RedisSentinelCluster {
  readonly dir: string
  readonly redisPorts: number[]
  readonly sentinelPorts: number[]
  readonly #children = new Map<number, ChildProcess>()

  private constructor (dir: string, ports: number[]) {
    this.dir = dir
    this.redisPorts = ports.slice(0, 3)
    this.sentinelPorts = ports.slice(3, 6)
  }

  static async start (setup: RedisSetup): Promise<RedisSentinelCluster> {
    const cluster = new RedisSentinelCluster(mkdtempSync(join(tmpdir(), 'edge-agent-redis-')), await freePorts(6))
    try {
      const [primary, ...replicas] = cluster.redisPorts
      cluster.#spawnRedis(primary, [])
      for (const port of replicas) cluster.#spawnRedis(port, ['--replicaof', '127.0.0.1', String(primary)])
      for (const port of cluster.sentinelPorts) {
        const file = join(cluster.dir, `sentinel-${port}.conf`)
        writeFileSync(file, [
          `port ${port}`, 'bind 127.0.0.1', `dir ${cluster.dir}`,
          `sentinel monitor ${MASTER} 127.0.0.1 ${primary} 2`,
          `sentinel down-after-milliseconds ${MASTER} ${setup.downAfterMs}`,
          `sentinel failover-timeout ${MASTER} ${setup.failoverTimeoutMs}`,
          `sentinel parallel-syncs ${MASTER} 2`, ''
        ].join('\n'))
        cluster.#spawn(port, 'redis-sentinel', [file])
      }
      await cluster.#waitReady(30_000)
    } catch (error) {
      await cluster.destroy()
      throw error
    }
    return cluster
  }

  get primary (): number {
    return this.redisPorts[0]
  }

  // A killed primary held everything in memory: it comes back empty, so it must
  // come back as a replica of the new primary (never as a primary).
  restartAsReplica (port: number, primary: number): void {
    this.#spawnRedis(port, ['--replicaof', '127.0.0.1', String(primary)])
  }

  signal (port: number, signal: NodeJS.Signals): void {
    this.#children.get(port)?.kill(signal)
  }

  // The primary the sentinels name (asked in turn), or null.
  async askPrimary (timeoutMs = 200): Promise<number | null> {
    for (const port of this.sentinelPorts) {
      try {
        const answer = await once(port, ['SENTINEL', 'get-master-addr-by-name', MASTER], timeoutMs)
        if (Array.isArray(answer) && answer.length === 2) return Number(answer[1])
      } catch {}
    }
    return null
  }

  async destroy (): Promise<void> {
    await Promise.all([...this.#children.values()].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGCONT')
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
    }))
    rmSync(this.dir, { recursive: true, force: true })
  }

  // In memory, like a cache-and-failover deployment tuned for speed: no RDB
  // snapshots, no AOF (the writes counted are the ones on the new primary); a
  // replica's full sync starts at once (7.0 waits 5 s by default, to batch
  // replicas).
  #spawnRedis (port: number, extra: string[]): void {
    this.#spawn(port, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'no',
      '--repl-diskless-sync-delay', '0', '--dbfilename', `dump-${port}.rdb`, ...extra])
  }

  #spawn (port: number, command: string, args: string[]): void {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.resume()
    this.#children.set(port, child)
  }

  // Both replicas in sync, and every sentinel knowing both replicas and the two
  // other sentinels (else a failover could not gather its quorum).
  async #waitReady (timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        const info = await once(this.primary, ['INFO', 'replication'])
        const synced = typeof info === 'string' && (info.match(/state=online/g) ?? []).length === 2
        let sentinelsReady = synced
        for (const port of this.sentinelPorts) {
          if (!sentinelsReady) break
          const replicas = await once(port, ['SENTINEL', 'replicas', MASTER])
          const sentinels = await once(port, ['SENTINEL', 'sentinels', MASTER])
          sentinelsReady = Array.isArray(replicas) && replicas.length === 2 && Array.isArray(sentinels) && sentinels.length === 2
        }
        if (sentinelsReady) return
      } catch {}
      if (Date.now() > deadline) throw new Error(`redis and its sentinels were not ready within ${timeoutMs} ms`)
      await sleep(100)
    }
  }
}

// ---- the writer ----------------------------------------------------------------

export type RedisAck = { seq: number; port: number; atMs: number }
export type WaitMode = 0 | 2

const KEY = 'bench:log'

// Appends 1, 2, 3… one at a time. With `waitReplicas`, a write counts as
// acknowledged only when WAIT says that many replicas hold it; a WAIT that times
// out short of it leaves the write unacknowledged (it is not retried: the next
// number follows, as a client that treats the write as failed would).
export class RedisWriter {
  readonly acked: RedisAck[] = []
  // Writes the primary took (RPUSH answered), acknowledged or not.
  readonly accepted: RedisAck[] = []
  readonly #cluster: RedisSentinelCluster
  readonly #waitReplicas: number
  readonly #gapMs: number
  readonly #valueBytes: number
  stopped = false
  readonly done: Promise<void>

  constructor (cluster: RedisSentinelCluster, waitReplicas: WaitMode, gapMs: number, valueBytes: number) {
    this.#cluster = cluster
    this.#waitReplicas = waitReplicas
    this.#gapMs = gapMs
    this.#valueBytes = valueBytes
    this.done = this.#run()
  }

  async #run (): Promise<void> {
    let port = this.#cluster.primary
    let connection: RespClient | null = null
    // A request timeout like the EdgeClient's: a frozen primary is left after it.
    const timeoutMs = 800
    for (let seq = 1; !this.stopped;) {
      try {
        connection ??= await RespClient.connect(port, timeoutMs)
        const pushed = await connection.call(['RPUSH', KEY, String(seq).padEnd(this.#valueBytes, '.')], timeoutMs)
        if (pushed instanceof Error) throw pushed
        this.accepted.push({ seq, port, atMs: Date.now() })
        let ok = true
        if (this.#waitReplicas > 0) {
          const replicas = await connection.call(['WAIT', this.#waitReplicas, 1_000], 1_000 + timeoutMs)
          ok = typeof replicas === 'number' && replicas >= this.#waitReplicas
        }
        if (ok) this.acked.push({ seq, port, atMs: Date.now() })
        seq++
        // WAIT fell short: a client that relies on WAIT checks whether the
        // sentinels moved the primary (this one may have been demoted, or cut off).
        if (!ok) {
          const named = await this.#cluster.askPrimary()
          if (named !== null && named !== port) throw new Error(`the sentinels name ${named}`)
        }
        if (this.#gapMs > 0) await sleep(this.#gapMs)
      } catch {
        connection?.close()
        connection = null
        // The client library's way: ask the sentinels, then retry shortly.
        port = await this.#cluster.askPrimary() ?? port
        await sleep(20)
      }
    }
    connection?.close()
  }

  async stop (): Promise<void> {
    this.stopped = true
    await this.done
  }
}

// ---- a round -------------------------------------------------------------------

export type RedisRound = {
  // ms from the signal to: the sentinels naming the new primary; the first write
  // it took; the first write acknowledged there (with WAIT 2: held by 2 replicas).
  switchMs: number
  firstWriteMs: number
  takeoverMs: number
  acknowledged: number
  lost: number
}

async function waitFor<T> (what: string, deadline: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what} within 60 s`)
    await sleep(5)
  }
}

// One fresh cluster, one failover. The old primary comes back once the sentinels
// name the new one: a frozen one gets SIGCONT (the sentinels make it a replica);
// a killed one is restarted as a replica when the writer uses WAIT 2, which a
// single surviving replica can never satisfy (without WAIT it stays dead).
export async function redisRound (setup: RedisSetup, wait: WaitMode, signal: 'SIGKILL' | 'SIGSTOP', gapMs: number, valueBytes: number): Promise<RedisRound> {
  const cluster = await RedisSentinelCluster.start(setup)
  const writer = new RedisWriter(cluster, wait, gapMs, valueBytes)
  try {
    await sleep(1_000)
    const old = cluster.primary
    const t0 = Date.now()
    cluster.signal(old, signal)
    const deadline = t0 + 60_000
    const primary = await waitFor('the sentinels named no new primary', deadline, async () => {
      const port = await cluster.askPrimary(100)
      return port !== null && port !== old ? port : undefined
    })
    const switchMs = Date.now() - t0
    if (signal === 'SIGSTOP') cluster.signal(old, 'SIGCONT')
    else if (wait > 0) cluster.restartAsReplica(old, primary)
    const firstWrite = await waitFor('no write taken by a new primary', deadline, () => writer.accepted.find((a) => a.atMs >= t0 && a.port !== old))
    const first = await waitFor('no acknowledged write on a new primary', deadline, () => writer.acked.find((a) => a.atMs >= t0 && a.port !== old))
    await sleep(500)
    await writer.stop()
    const values = await once(first.port, ['LRANGE', KEY, 0, -1], 5_000)
    const held = new Set(Array.isArray(values) ? values.map((v) => Number(String(v).replace(/\.+$/, ''))) : [])
    const lost = writer.acked.filter((a) => !held.has(a.seq)).length
    return { switchMs, firstWriteMs: firstWrite.atMs - t0, takeoverMs: first.atMs - t0, acknowledged: writer.acked.length, lost }
  } finally {
    writer.stopped = true
    await writer.done
    await cluster.destroy()
  }
}

export async function redisVersion (): Promise<string | null> {
  return await new Promise((resolve) => {
    const child = spawn('redis-server', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.on('error', () => resolve(null))
    child.on('exit', (code) => resolve(code === 0 ? (/v=(\S+)/.exec(out)?.[1] ?? out.trim()) : null))
  })
}

export function logRound (what: string, round: RedisRound): void {
  log(`failover: ${what}: sentinels switched after ${round.switchMs} ms, first write taken ${round.firstWriteMs} ms, first acknowledged ${round.takeoverMs} ms; ${round.lost} of ${round.acknowledged} acknowledged writes lost`)
}
