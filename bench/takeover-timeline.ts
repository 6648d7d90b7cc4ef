// Where a takeover's time goes, round by round: runs the sessions bench's
// takeover rounds only (no replication runs) and decomposes each affected
// session's takeover into its steps, from the agents' --json events and a trace
// of the terminal's HTTP requests:
//   hint      the first standby's "lost the connection" (the closed stream)
//   gone      the first standby that gave up on the owner (refused redial,
//             diagnosis timeout, membership verdict)
//   vote      the first real vote (the pre-vote won)
//   promoted  the new owner took the epoch
//   asked     the terminal's first request that reached the new owner
//   acked     the terminal's first acknowledged append in the new epoch
// all in ms after the signal. Usage:
//   BENCH_TAKEOVERS=10 node bench/takeover-timeline.ts [SIGKILL|SIGSTOP|both]

import http from 'node:http'
import { syncBuiltinESMExports } from 'node:module'
import { ChildProcess } from 'node:child_process'

type Req = { session: string; port: string; t0: number; t1: number; outcome: string }
const requests: Req[] = []
const signals: Array<{ signal: string; pid: number; atMs: number }> = []

// The trace: every request the bench's client makes about a session.
const original = http.request
http.request = function (this: unknown, ...args: unknown[]) {
  const url = new URL(String(args[0]))
  const m = /\/v1\/sessions\/([^/]+)/.exec(url.pathname)
  const req = (original as (...a: unknown[]) => http.ClientRequest).apply(this, args)
  if (m !== null) {
    const entry: Req = { session: decodeURIComponent(m[1]), port: url.port, t0: Date.now(), t1: NaN, outcome: '' }
    requests.push(entry)
    req.on('response', (res) => {
      entry.t1 = Date.now()
      entry.outcome = String(res.statusCode)
    })
    req.on('error', (error: NodeJS.ErrnoException) => {
      entry.t1 = Date.now()
      entry.outcome = error.code ?? error.message
    })
  }
  return req
} as typeof http.request
syncBuiltinESMExports()

const kill = ChildProcess.prototype.kill
ChildProcess.prototype.kill = function (this: ChildProcess, signal?: NodeJS.Signals | number) {
  if (signal === 'SIGKILL' || signal === 'SIGSTOP') signals.push({ signal, pid: this.pid ?? -1, atMs: Date.now() })
  return kill.call(this, signal)
}

const rounds = Number(process.env.BENCH_TAKEOVERS ?? 10)
const only = process.argv[2] ?? 'SIGKILL'
process.env.BENCH_SIGNALS = only === 'both' ? 'SIGKILL,SIGSTOP' : only
const { LocalCluster } = await import('../sim/processes.ts')
const { benchRealSessions } = await import('./sessions-real.ts')
type Cluster = Awaited<ReturnType<typeof LocalCluster.start>>
let cluster: Cluster | null = null
const start = LocalCluster.start.bind(LocalCluster)
LocalCluster.start = async (...args: Parameters<typeof LocalCluster.start>) => {
  cluster = await start(...args)
  return cluster
}

// The bench restarts each SIGKILLed agent in place; the old process's events
// (the first half of every round it took part in) are kept here.
const retired: Cluster['agents'] = []
const restart = LocalCluster.prototype.restart
LocalCluster.prototype.restart = async function (this: Cluster, index: number) {
  retired.push(this.agents[index])
  return await restart.call(this, index)
}
const result = await benchRealSessions({ takeoverRounds: rounds, concurrency: [] })

type Row = Record<string, number | string>
const rows: Row[] = []
const c = { agents: [...(cluster as unknown as Cluster).agents, ...retired] }
for (const [k, s] of signals.entries()) {
  const end = Math.min(s.atMs + 15_000, signals[k + 1]?.atMs ?? Infinity)
  const window = (e: { atMs: number }): boolean => e.atMs >= s.atMs && e.atMs <= end
  // Sessions that changed owner after this signal.
  const promotions = c.agents.flatMap((a) => a.events.filter((e) => e.event === 'promoted' && window(e)).map((e) => ({ agent: a, e })))
  const seen = new Set<string>()
  for (const { agent, e } of promotions) {
    const sid = String(e.sessionId)
    if (seen.has(sid)) continue
    seen.add(sid)
    const ev = c.agents.flatMap((a) => a.events.filter((x) => x.sessionId === sid && window(x) && x.atMs <= e.atMs).map((x) => ({ a: a.name, x })))
    const at = (pred: (x: Record<string, unknown>) => boolean): number => {
      const hit = ev.filter(({ x }) => pred(x)).map(({ x }) => x.atMs - s.atMs)
      return hit.length === 0 ? NaN : Math.min(...hit)
    }
    const hint = at((x) => x.event === 'owner-suspected' && String(x.reason).startsWith('lost the connection'))
    const gone = at((x) => x.event === 'owner-suspected' && !String(x.reason).startsWith('lost the connection') && !String(x.reason).startsWith('no heartbeat') && !String(x.reason).includes(' stands for epoch'))
    const suspected = at((x) => x.event === 'owner-suspected')
    const vote = at((x) => x.event === 'election-started')
    const lost = ev.filter(({ x }) => x.event === 'election-lost').length
    const promoted = e.atMs - s.atMs
    const port = new URL(String(agent.http)).port
    const mine = requests.filter((r) => r.session === sid && r.t1 >= s.atMs && r.t0 <= end)
    const asked = mine.find((r) => r.port === port && r.t0 >= e.atMs - 50)
    const ok = mine.find((r) => r.port === port && r.outcome === '200' && r.t1 >= e.atMs)
    const before = mine.filter((r) => r.t1 <= (ok?.t1 ?? Infinity) && r.t1 >= s.atMs)
    rows.push({
      signal: s.signal, session: sid.slice(-6), hint, gone, suspected, vote, promoted, lost,
      asked: asked === undefined ? NaN : asked.t0 - s.atMs,
      acked: ok === undefined ? NaN : ok.t1 - s.atMs,
      trace: before.map((r) => `${r.port}:${r.outcome}@${r.t0 - s.atMs}-${r.t1 - s.atMs}`).join(' ')
    })
  }
}
for (const row of rows) process.stdout.write(JSON.stringify(row) + '\n')
const med = (k: string): number => {
  const v = rows.map((r) => Number(r[k])).filter(Number.isFinite).sort((a, b) => a - b)
  return v.length === 0 ? NaN : v[Math.floor(v.length / 2)]
}
process.stdout.write(`medians: ${['hint', 'gone', 'vote', 'promoted', 'asked', 'acked'].map((k) => `${k} ${med(k)}`).join(', ')}\n`)
process.stdout.write(JSON.stringify({ kill: { ...result.kill, samples: undefined }, stop: { ...result.stop, samples: undefined }, failed: result.failedRounds, problems: result.problems, acknowledged: result.acknowledged }) + '\n')
