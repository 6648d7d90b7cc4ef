// Replication side by side, in one run on one machine: acknowledged writes per
// second and their latency at equal client concurrency, for
//  - Redis 7 (primary + 2 replicas, three processes started here): SET, then
//    WAIT 2 per write (acknowledged once both replicas hold it), with and
//    without an fsynced AOF; plain SET for reference;
//  - edge-agent, a cluster of 3 agents (R = 2: owner + 2 standbys, write concern
//    every live member, each fsyncs before it acknowledges), through the
//    EdgeClient: append() (one delta per request, on the deltas stream and, for
//    comparison, over HTTP) and appendMany() (a batch per request, on the
//    stream); Redis gets the matching pipelined form
//    (the batch's SETs and one WAIT 2, written together);
//  - the transport ceiling: raw frames/s of one libp2p stream (bench/stream-raw.ts).
// Every client (a Redis connection, a terminal with its own session) has one
// request in flight. Each figure is the median of `repeats` consecutive windows
// of one continuous load. After the edge-agent runs, every acknowledged delta
// must be in its session's state once, in order; after Redis WAIT runs, every
// acknowledged key must be on both replicas.
//
// Run alone: node bench/replication.ts   (or node bench/run.ts replication)

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../agent/client/index.ts'
import type { Session, Transport } from '../agent/client/index.ts'
import { LocalCluster } from '../sim/processes.ts'
import { startRedisTrio, RespClient, RespError } from './replication-redis.ts'
import type { RedisDurability } from './replication-redis.ts'
import { benchRawStream } from './stream-raw.ts'
import type { RawStreamResult } from './stream-raw.ts'
import { fmt, log, median, percentile, sleep } from './lib.ts'

export type Window = { writesPerSec: number; p50: number; p99: number; n: number }
// CPU time (user + system) per acknowledged write over the measured windows, µs:
// each server process (Redis primary, replica, replica; edge-agent owner,
// standby, standby) and the bench's own process (the clients).
export type CpuPerWrite = { servers: number[]; client: number }
export type Row = { system: string; mode: string; concurrency: number; batch: number; windows: Window[]; median: Window; unacknowledged: number; cpuUsPerWrite?: CpuPerWrite; stallMs?: number }

// The longest event-loop stall of the servers over the measured windows: reset
// when they begin, read when they end.
type Stall = { reset: () => Promise<void>; longestMs: () => Promise<number> }
export type ReplicationResult = {
  valueBytes: number
  batch: number
  windowSeconds: number
  repeats: number
  redisVersion: string
  rows: Row[]
  rawStream: RawStreamResult
  // Edge-agent's best acknowledged deltas/s over the raw stream's frames/s.
  ceilingShare: { deltasPerSec: number; framesPerSec: number; share: number; mode: string; concurrency: number }
  acknowledged: number
  problems: string[]
  // 1-minute load average when each part began and at the end: on a shared box
  // the rates move with it (absent in results written before it was recorded).
  load?: Array<{ part: string; loadAverage: number }>
}

export type ReplicationOptions = { concurrency?: number[]; valueBytes?: number; batch?: number; windowSeconds?: number; repeats?: number; warmUpSeconds?: number }

// A WAIT that the replicas do not satisfy in this long returns fewer than 2:
// the write is counted as not acknowledged.
const WAIT_TIMEOUT_MS = 1_000

const BENCH_SESSION_LIMITS = { requestsPerS: 100_000, bytesPerS: 1_000_000_000 }

type Sample = { atMs: number; latencyMs: number; writes: number }

// Runs `workers` loops of `one` (resolving with the writes it got acknowledged)
// for warm-up + repeats × window; the figures of each window.
// A process's CPU time so far (user + system), seconds, from /proc (Linux).
function cpuSecondsOf (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return NaN
  }
}

function cpuNow (pids: number[]): { servers: number[]; client: number } {
  const own = process.cpuUsage()
  return { servers: pids.map(cpuSecondsOf), client: (own.user + own.system) / 1e6 }
}

async function load (workers: number, warmUpMs: number, windowMs: number, repeats: number, one: (worker: number) => Promise<number>, pids: number[] = [], stall?: Stall): Promise<{ windows: Window[]; unacknowledged: number; cpuUsPerWrite: CpuPerWrite; stallMs?: number }> {
  const samples: Sample[] = []
  let stop = false
  let unacknowledged = 0
  let failure: Error | null = null
  const loops = Array.from({ length: workers }, async (_, w) => {
    while (!stop) {
      const started = performance.now()
      try {
        const writes = await one(w)
        if (writes === 0) unacknowledged++
        samples.push({ atMs: performance.now(), latencyMs: performance.now() - started, writes })
      } catch (error) {
        failure = error as Error
        stop = true
      }
    }
  })
  const t0 = performance.now() + warmUpMs
  await sleep(warmUpMs)
  const cpuFrom = cpuNow(pids)
  await stall?.reset()
  await sleep(windowMs * repeats)
  const cpuTo = cpuNow(pids)
  const stallMs = await stall?.longestMs()
  const measuredWrites = samples.filter((s) => s.atMs > t0).reduce((sum, s) => sum + s.writes, 0)
  stop = true
  await Promise.all(loops)
  if (failure !== null) throw failure
  const windows: Window[] = []
  for (let i = 0; i < repeats; i++) {
    const from = t0 + i * windowMs
    const inside = samples.filter((s) => s.atMs > from && s.atMs <= from + windowMs)
    const writes = inside.reduce((sum, s) => sum + s.writes, 0)
    const latency = inside.map((s) => s.latencyMs)
    windows.push({ writesPerSec: writes / (windowMs / 1_000), p50: percentile(latency, 50), p99: percentile(latency, 99), n: inside.length })
  }
  const perWrite = (seconds: number): number => 1e6 * seconds / Math.max(1, measuredWrites)
  const cpuUsPerWrite = { servers: cpuTo.servers.map((c, i) => perWrite(c - cpuFrom.servers[i])), client: perWrite(cpuTo.client - cpuFrom.client) }
  return { windows, unacknowledged, cpuUsPerWrite, ...(stallMs === undefined ? {} : { stallMs }) }
}

function medianWindow (windows: Window[]): Window {
  return { writesPerSec: median(windows.map((w) => w.writesPerSec)), p50: median(windows.map((w) => w.p50)), p99: median(windows.map((w) => w.p99)), n: windows.reduce((s, w) => s + w.n, 0) }
}

function row (system: string, mode: string, concurrency: number, batch: number, measured: { windows: Window[]; unacknowledged: number; cpuUsPerWrite?: CpuPerWrite; stallMs?: number }): Row {
  const r = { system, mode, concurrency, batch, windows: measured.windows, median: medianWindow(measured.windows), unacknowledged: measured.unacknowledged, cpuUsPerWrite: measured.cpuUsPerWrite, stallMs: measured.stallMs }
  const cpu = r.cpuUsPerWrite === undefined ? '' : `; CPU µs/write: servers ${r.cpuUsPerWrite.servers.map((c) => fmt(c)).join(' / ')}, client ${fmt(r.cpuUsPerWrite.client)}`
  const stall = r.stallMs === undefined ? '' : `; longest event-loop stall ${fmt(r.stallMs)} ms`
  log(`replication: ${system} ${mode}, ${concurrency} client(s): ${fmt(r.median.writesPerSec)} writes/s, p50 ${fmt(r.median.p50, 1)} ms, p99 ${fmt(r.median.p99, 1)} ms${cpu}${stall}`)
  return r
}

// ---- Redis ----------------------------------------------------------------------

async function benchRedis (durability: RedisDurability, opts: Required<ReplicationOptions>, problems: string[]): Promise<{ rows: Row[]; version: string; acknowledged: number }> {
  const trio = await startRedisTrio(durability)
  const rows: Row[] = []
  let acknowledged = 0
  const label = durability === 'appendfsync-always' ? 'Redis (AOF, appendfsync always)' : 'Redis (no persistence)'
  try {
    const value = 'v'.repeat(opts.valueBytes)
    for (const concurrency of opts.concurrency) {
      const clients = await Promise.all(Array.from({ length: concurrency }, async () => await RespClient.connect(trio.primary)))
      try {
        const next = new Array<number>(concurrency).fill(0)
        const key = (w: number): string => `c${concurrency}:${w}:${++next[w]}`
        if (durability === 'no-persistence') {
          rows.push(row(label, 'SET', concurrency, 1, await load(concurrency, opts.warmUpSeconds * 1_000, opts.windowSeconds * 1_000, opts.repeats, async (w) => {
            expectOk(await clients[w].command('SET', key(w), value))
            return 1
          }, trio.pids)))
        }
        const acked: string[] = []
        for (const batch of [1, opts.batch]) {
          const mode = batch === 1 ? 'SET + WAIT 2' : `${batch} × SET + WAIT 2, pipelined`
          rows.push(row(label, mode, concurrency, batch, await load(concurrency, opts.warmUpSeconds * 1_000, opts.windowSeconds * 1_000, opts.repeats, async (w) => {
            const keys = Array.from({ length: batch }, () => key(w))
            const answers = await clients[w].send(...keys.map((k) => ['SET', k, value]), ['WAIT', 2, WAIT_TIMEOUT_MS])
            for (const a of answers.slice(0, -1)) expectOk(a)
            if (Number(answers[answers.length - 1]) < 2) return 0
            for (const k of keys) acked.push(k)
            return batch
          }, trio.pids)))
        }
        acknowledged += acked.length
        problems.push(...(await checkRedis(trio.replicas, acked, value)).map((p) => `${label}, ${concurrency} clients: ${p}`))
      } finally {
        for (const c of clients) c.close()
      }
    }
    return { rows, version: trio.version, acknowledged }
  } finally {
    await trio.stop()
  }
}

function expectOk (answer: unknown): void {
  if (answer instanceof RespError) throw answer
}

// Every key acknowledged by WAIT 2 is on both replicas with its value.
async function checkRedis (replicas: number[], keys: string[], value: string): Promise<string[]> {
  const problems: string[] = []
  for (const port of replicas) {
    const client = await RespClient.connect(port)
    try {
      let missing = 0
      for (let i = 0; i < keys.length; i += 1_000) {
        const chunk = keys.slice(i, i + 1_000)
        const values = await client.command('MGET', ...chunk) as unknown[]
        missing += values.filter((v) => v !== value).length
      }
      if (missing > 0) problems.push(`${missing} of ${keys.length} acknowledged keys missing on the replica at port ${port}`)
    } finally {
      client.close()
    }
  }
  return problems
}

// ---- edge-agent ------------------------------------------------------------------

type Terminal = { session: Session; acked: string[]; next: number }

// BENCH_REPL_BATCHES=1 (say) measures only those edge-agent modes (while profiling);
// BENCH_REPL_TRANSPORTS=stream (or http) only appends on that transport.
const onlyBatches = process.env.BENCH_REPL_BATCHES?.split(',').map(Number) ?? null
const onlyTransports = process.env.BENCH_REPL_TRANSPORTS?.split(',') ?? null
const EDGE = 'edge-agent (3 agents, R = 2)'
const EDGE_HTTP = 'edge-agent (3 agents, R = 2, appends over HTTP)'

// Bytes of values a terminal writes to one session before it opens another.
const ROTATE_BYTES = 8 * 1024 * 1024

async function benchEdgeAgent (opts: Required<ReplicationOptions>, problems: string[]): Promise<{ rows: Row[]; acknowledged: number }> {
  const configDir = mkdtempSync(join(tmpdir(), 'edge-agent-bench-'))
  const configFile = join(configDir, 'agent.json')
  // No load filter: on one shared box the CPU load is the bench's own. The
  // per-session request and byte rates (200/s, 1 MiB/s by default, a guard
  // against one runaway terminal) are lifted: this measures replication, and
  // Redis has no such limit in the comparison.
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 }, limits: { sessionRequestsPerS: BENCH_SESSION_LIMITS.requestsPerS, sessionBytesPerS: BENCH_SESSION_LIMITS.bytesPerS } }))
  log('replication: starting 3 agents')
  const cluster = await LocalCluster.start({ nodes: 3, services: 'log', configure: () => ({ extraArgs: ['--config', configFile] }) })
  // Appends on the deltas stream (the client's default), and over HTTP to show
  // what the stream saves; batches on the stream only.
  const clients = { stream: new EdgeClient({ agents: cluster.agents.map((a) => a.http), transport: 'stream' }), http: new EdgeClient({ agents: cluster.agents.map((a) => a.http), transport: 'http' }) }
  const modes = ([[1, 'stream'], [1, 'http'], [opts.batch, 'stream']] as Array<[number, Transport]>)
    .filter(([b, t]) => (onlyBatches === null || onlyBatches.includes(b)) && (onlyTransports === null || onlyTransports.includes(t)))
  const rows: Row[] = []
  let acknowledged = 0
  // prom-client's event-loop lag maximum (its histogram, at 10 ms resolution,
  // starts over at each scrape of /metrics).
  const scrape = async (): Promise<number[]> => await Promise.all(cluster.agents.map(async (a) => {
    const text = await (await fetch(`${a.http}/metrics`)).text()
    return 1_000 * Number(/^edge_agent_process_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text)?.[1] ?? NaN)
  }))
  const stall: Stall = { reset: async () => { await scrape() }, longestMs: async () => Math.max(...(await scrape())) }
  try {
    await cluster.waitConverged(60_000)
    const owner = cluster.agents[0]
    for (const concurrency of opts.concurrency) {
      // Fresh sessions for each mode, and a terminal moves on to a new session
      // once it has written ROTATE_BYTES to one: a session's state is capped
      // (MAX_STATE_BYTES, 16 MiB: the agent answers 413 beyond it), and one
      // client's appendMany() writes more than that in a run on a quiet box.
      for (const [batch, transport] of modes) {
        const client = clients[transport]
        const tag = `r${concurrency}b${batch}${transport[0]}`
        const terminals = (await sessionsOwnedBy(client, owner.id, concurrency, tag)).map((session) => ({ session, acked: [], next: 0 }) as Terminal)
        const retired: Terminal[] = []
        const value = (t: Terminal, w: number): string => `c${concurrency}w${w}n${++t.next}-`.padEnd(opts.valueBytes, '.')
        try {
          const mode = (batch === 1 ? 'append(), one delta per request' : `appendMany(), ${batch} deltas per request`) + (transport === 'http' ? ', HTTP' : '')
          rows.push(row(transport === 'http' ? EDGE_HTTP : EDGE, mode, concurrency, batch, await load(concurrency, opts.warmUpSeconds * 1_000, opts.windowSeconds * 1_000, opts.repeats, async (w) => {
            let t = terminals[w]
            if ((t.acked.length + batch) * opts.valueBytes > ROTATE_BYTES) {
              retired.push(t)
              const [session] = await sessionsOwnedBy(client, owner.id, 1, `${tag}w${w}s${retired.length}`)
              t = terminals[w] = { session, acked: [], next: t.next }
            }
            if (batch === 1) {
              const v = value(t, w)
              await t.session.append({ append: v })
              t.acked.push(v)
              return 1
            }
            const values = Array.from({ length: batch }, () => value(t, w))
            await t.session.appendMany(values.map((v) => ({ append: v })))
            t.acked.push(...values)
            return batch
          }, cluster.agents.map((a) => a.pid), stall)))
          for (const t of [...retired, ...terminals]) {
            acknowledged += t.acked.length
            problems.push(...(await checkLog(t)).map((p) => `edge-agent ${t.session.sessionId}: ${p}`))
          }
        } finally {
          await Promise.all([...retired, ...terminals].map(async (t) => await t.session.close().catch(() => undefined)))
        }
      }
    }
    return { rows, acknowledged }
  } finally {
    clients.stream.destroy()
    clients.http.destroy()
    // NODE_OPTIONS=--cpu-prof: a graceful stop lets the agents write their profiles.
    if (process.env.NODE_OPTIONS?.includes('--cpu-prof') === true) await Promise.all(cluster.agents.map(async (a) => await a.stop()))
    await cluster.destroy()
    rmSync(configDir, { recursive: true, force: true })
  }
}

// Every acknowledged value in the session's log state once, in order.
async function checkLog (t: Terminal): Promise<string[]> {
  const state = await t.session.get()
  const values = Array.isArray(state.state) ? state.state as string[] : []
  const problems: string[] = []
  if (new Set(values).size !== values.length) problems.push('a value appears twice')
  const at = new Map(values.map((v, i) => [v, i]))
  let previous = -1
  let missing = 0
  for (const v of t.acked) {
    const i = at.get(v)
    if (i === undefined) missing++
    else if (i < previous) problems.push(`${v} is out of order`)
    else previous = i
  }
  if (missing > 0) problems.push(`${missing} acknowledged values missing`)
  return problems
}

// Opens sessions until `count` are owned by `ownerId`, closing the others.
async function sessionsOwnedBy (client: EdgeClient, ownerId: string, count: number, tag: string): Promise<Session[]> {
  const mine: Session[] = []
  let tried = 0
  const seen: Record<string, number> = {}
  const worker = async (): Promise<void> => {
    while (mine.length < count) {
      if (tried > count * 20 + 200) throw new Error(`could not place ${count} sessions on ${ownerId}: ${JSON.stringify(seen)}`)
      const session = await client.open({ terminalId: `${tag}-${tried++}`, service: 'log' })
      seen[String(session.owner?.id.slice(-4))] = (seen[String(session.owner?.id.slice(-4))] ?? 0) + 1
      if (session.owner?.id === ownerId && mine.length < count) mine.push(session)
      else await session.close().catch(() => undefined)
    }
  }
  await Promise.all(Array.from({ length: 4 }, worker))
  return mine
}

// ---- the run ----------------------------------------------------------------------

export async function benchReplication (options: ReplicationOptions = {}): Promise<ReplicationResult> {
  const opts: Required<ReplicationOptions> = {
    concurrency: options.concurrency ?? [1, 16, 64],
    valueBytes: options.valueBytes ?? 256,
    batch: options.batch ?? 50,
    windowSeconds: options.windowSeconds ?? 3,
    repeats: options.repeats ?? 3,
    warmUpSeconds: options.warmUpSeconds ?? 1
  }
  const problems: string[] = []
  const load: Array<{ part: string; loadAverage: number }> = []
  const noteLoad = (part: string): void => { load.push({ part, loadAverage: Math.round(loadavg()[0] * 10) / 10 }) }
  // BENCH_REPL_PARTS=edge (say) measures only some parts (while profiling).
  const parts = (process.env.BENCH_REPL_PARTS ?? 'raw,redis,edge').split(',')
  noteLoad('raw stream')
  const none = { rows: [] as Row[], version: '-', acknowledged: 0 }
  const rawStream = parts.includes('raw') ? await benchRawStream({ frameBytes: opts.valueBytes, repeats: opts.repeats }) : { frameBytes: opts.valueBytes, durationMs: 0, repeats: 0, oneWayFramesPerSec: NaN, oneWayRuns: [], echoRoundTripsPerSec: NaN, echoRuns: [] }
  noteLoad('Redis, no persistence')
  const plain = parts.includes('redis') ? await benchRedis('no-persistence', opts, problems) : none
  noteLoad('Redis, AOF')
  const aof = parts.includes('redis') ? await benchRedis('appendfsync-always', opts, problems) : none
  noteLoad('edge-agent')
  const edge = parts.includes('edge') ? await benchEdgeAgent(opts, problems) : none
  noteLoad('end')
  const rows = [...plain.rows, ...aof.rows, ...edge.rows]
  const best = edge.rows.reduce((a, b) => b.median.writesPerSec > a.median.writesPerSec ? b : a, edge.rows[0] ?? row('edge-agent', 'not measured', 0, 1, { windows: [{ writesPerSec: NaN, p50: NaN, p99: NaN, n: 0 }], unacknowledged: 0 }))
  return {
    valueBytes: opts.valueBytes,
    batch: opts.batch,
    windowSeconds: opts.windowSeconds,
    repeats: opts.repeats,
    redisVersion: plain.version,
    rows,
    rawStream,
    ceilingShare: { deltasPerSec: best.median.writesPerSec, framesPerSec: rawStream.oneWayFramesPerSec, share: best.median.writesPerSec / rawStream.oneWayFramesPerSec, mode: best.mode, concurrency: best.concurrency },
    acknowledged: plain.acknowledged + aof.acknowledged + edge.acknowledged,
    problems,
    load
  }
}

export function replicationMarkdown (r: ReplicationResult): string[] {
  const lines = [`## Replication side by side: Redis ${r.redisVersion} \`WAIT 2\` vs edge-agent R = 2 (3 processes each, loopback)`, '',
    `Acknowledged writes per second and request latency (ms), ${r.valueBytes}-byte values, every client with one request in flight ` +
    `(a Redis connection; an edge-agent terminal with its own session, through the EdgeClient: its appends on the deltas stream, one kept connection per agent, and in the rows marked HTTP one HTTP request each). A write counts once both replicas (Redis: \`WAIT 2\` ` +
    `answered 2 within ${WAIT_TIMEOUT_MS} ms) or both standbys (edge-agent: every member that keeps up logged and fsynced it, and always a majority) hold it. Median of ${r.repeats} consecutive ${r.windowSeconds}-s windows. ` +
    `Batched rows: ${r.batch} writes per request (Redis: ${r.batch} SETs and one \`WAIT 2\` written together; edge-agent: one \`appendMany\`); their latency is per request. ` +
    `What has been fsynced when each system acknowledges: Redis with AOF (\`appendonly yes\`, \`appendfsync always\` on all three): the primary's AOF (it fsyncs before it answers SET); ` +
    `\`WAIT 2\` then waits for both replicas to have received the write, not to have fsynced it. Redis without persistence (\`appendonly no\`, \`save ""\`): nothing; both replicas received it. ` +
    `edge-agent (its defaults: SQLite WAL, the WAL fsynced in the thread pool before anything that depends on it leaves, one fsync per group of event-loop turns): all three agents, owner and both standbys, have fsynced the delta (the owner sends the entries to its standbys first and fsyncs while they travel; each standby acks only after its fsync; the answer waits for the owner's fsync and both acks; a standby that has left a send unanswered for \`memberLagMs\`, 100 ms, is not waited for until it has caught up, so then the owner and one standby have: a majority), ` +
    `with the per-session rate limits lifted (${BENCH_SESSION_LIMITS.requestsPerS} requests/s, ${BENCH_SESSION_LIMITS.bytesPerS} B/s: at the default 1 MiB/s a session caps at about 3,800 deltas/s of 256 bytes).`, '',
    'CPU µs per acknowledged write: user + system CPU time of each server process over the measured windows (Redis primary / replica / replica; edge-agent owner / standby / standby) and of the bench process driving the clients, divided by the writes acknowledged in them. On a shared box wall-clock rates swing; CPU per write is the steadier figure.', '',
    'Longest stall: the longest any edge-agent agent\'s event loop was blocked during the measured windows, ms (prom-client\'s event-loop lag maximum from each agent\'s /metrics, 10 ms resolution); while it is blocked an agent answers nothing, membership probes included.', '',
    '| system | mode | clients | writes/s | p50 ms | p99 ms | CPU µs/write, servers | CPU µs/write, client | longest stall, ms |', '|---|---|---|---|---|---|---|---|---|']
  for (const row of r.rows) {
    const cpu = row.cpuUsPerWrite
    lines.push(`| ${row.system} | ${row.mode} | ${row.concurrency} | ${fmt(row.median.writesPerSec)} | ${fmt(row.median.p50, 1)} | ${fmt(row.median.p99, 1)} | ${cpu === undefined ? '-' : cpu.servers.map((c) => fmt(c)).join(' / ')} | ${cpu === undefined ? '-' : fmt(cpu.client)} | ${row.stallMs === undefined ? '-' : fmt(row.stallMs)} |`)
  }
  const find = (system: string, batch: number, c: number): Row | undefined => r.rows.find((x) => (system === EDGE || system === EDGE_HTTP ? x.system === system : x.system.startsWith(system)) && x.batch === batch && x.concurrency === c && x.mode.includes('WAIT') === system.startsWith('Redis'))
  lines.push('', 'Ratio edge-agent / Redis `WAIT 2` (writes/s, same clients, same batching):', '', '| clients | vs Redis no persistence, one write | vs Redis AOF always, one write | vs no persistence, batched | vs AOF always, batched | edge-agent deltas stream / HTTP, one write |', '|---|---|---|---|---|---|')
  for (const c of [...new Set(r.rows.map((x) => x.concurrency))]) {
    const ratio = (batch: number, redis: string): string => {
      const e = find(EDGE, batch, c)
      const x = find(redis, batch, c)
      return e === undefined || x === undefined ? '-' : `${fmt(e.median.writesPerSec / x.median.writesPerSec, 2)}×`
    }
    const e = find(EDGE, 1, c)
    const h = find(EDGE_HTTP, 1, c)
    const transports = e === undefined || h === undefined ? '-' : `${fmt(e.median.writesPerSec / h.median.writesPerSec, 2)}×`
    lines.push(`| ${c} | ${ratio(1, 'Redis (no')} | ${ratio(1, 'Redis (AOF')} | ${ratio(r.batch, 'Redis (no')} | ${ratio(r.batch, 'Redis (AOF')} | ${transports} |`)
  }
  const s = r.ceilingShare
  lines.push('', `Transport ceiling, same run: one libp2p stream (TCP + noise + yamux) between two processes, ${r.rawStream.frameBytes}-byte length-prefixed frames written back to back: ` +
    `${fmt(r.rawStream.oneWayFramesPerSec)} frames/s one-way (median of ${r.rawStream.repeats}), ${fmt(r.rawStream.echoRoundTripsPerSec)} round trips/s with one frame in flight` +
    `${r.rawStream.tcpEchoRoundTripsPerSec === undefined ? '' : ` (plain TCP between two Node processes, same frames: ${fmt(r.rawStream.tcpEchoRoundTripsPerSec)} round trips/s, ${fmt(r.rawStream.tcpEchoRoundTripsPerSec / r.rawStream.echoRoundTripsPerSec, 1)}× as many)`}. ` +
    `Replication as a share of it: edge-agent's best acknowledged deltas/s (${s.mode}, ${s.concurrency} terminals: ${fmt(s.deltasPerSec)}; each delta of ${r.valueBytes} bytes sent to two standbys, ` +
    `logged and fsynced on three agents, acknowledged to the terminal) over the raw stream's one-way frames/s of the same size: ${fmt(100 * s.share, 1)}%.`, '',
    `The check after the runs: ${r.acknowledged} acknowledged writes; ${r.problems.length === 0 ? 'every edge-agent delta present once, in order, in its session; every Redis key acknowledged by `WAIT 2` present on both replicas' : 'PROBLEMS: ' + r.problems.join('; ')}.`)
  if (r.load !== undefined) lines.push('', `Machine load (1-minute average; the box's cores are shared with other work, and rates move with it) when each part began: ${r.load.map((l) => `${l.part} ${l.loadAverage}`).join(', ')}.`)
  return lines
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const concurrency = process.env.BENCH_REPL_CONCURRENCY?.split(',').map(Number)
  const result = await benchReplication({ ...(concurrency === undefined ? {} : { concurrency }) })
  process.stdout.write(replicationMarkdown(result).join('\n') + '\n')
}
