// `npm start`: a five-agent cluster on loopback. Act 1, membership: one crash,
// one freeze, and how fast every survivor noticed. Act 2, sessions: three
// terminals append all along while one session owner is SIGKILLed and another
// SIGSTOPped; each takeover's latency as the terminal saw it, and a final check
// that every acknowledged append is in its session exactly once, in order.
// Real processes, real sockets, real signals.

import { EdgeClient } from '../agent/client/index.ts'
import { membershipProfile } from '../agent/membership/config.ts'
import { suspicionBoundsMs } from '../agent/membership/math.ts'
import type { Session } from '../agent/client/index.ts'
import { formatMembersTable } from '../agent/runtime/view.ts'
import type { MembersJson } from '../agent/runtime/view.ts'
import { LocalCluster } from '../sim/processes.ts'
import type { AgentProcess } from '../sim/processes.ts'
import { ContinuousWriter, waitGroupRepaired, waitTakeover } from '../sim/writer.ts'

const NODES = 5
// Positions of five edge sites (Madrid, Lyon, Milan, Munich, Amsterdam).
const SITES = [
  { position: '40.42,-3.70', region: 'eu-south', zone: 'mad1' },
  { position: '45.76,4.84', region: 'eu-west', zone: 'lys1' },
  { position: '45.46,9.19', region: 'eu-south', zone: 'mil1' },
  { position: '48.14,11.58', region: 'eu-central', zone: 'muc1' },
  { position: '52.37,4.90', region: 'eu-west', zone: 'ams1' }
]
const DETECTION_LIMIT_MS = 15_000
// Terminals near Madrid, Milan and Amsterdam; each appends to a `log` session.
const TERMINALS = [
  { terminalId: 'kiosk-mad', position: { lat: 40.4, lon: -3.7 } },
  { terminalId: 'kiosk-mil', position: { lat: 45.5, lon: 9.2 } },
  { terminalId: 'kiosk-ams', position: { lat: 52.4, lon: 4.9 } }
]
const GROUP_SIZE = 3

function say (text: string): void {
  process.stdout.write(text + '\n')
}

async function table (agent: AgentProcess): Promise<string> {
  const response = await fetch(`${agent.http}/v1/members`)
  return formatMembersTable(await response.json() as MembersJson)
}

type Verdicts = { first: number; last: number; each: number[] }

// Waits until every survivor printed a `dead` event for `victim`.
async function verdicts (survivors: AgentProcess[], victim: AgentProcess, sinceMs: number): Promise<Verdicts> {
  const times = await Promise.all(survivors.map(async (s) => {
    const event = await s.waitFor((e) => e.event === 'member' && e.id === victim.id && e.status === 'dead' && e.atMs >= sinceMs, DETECTION_LIMIT_MS)
    return event.atMs - sinceMs
  }))
  return { first: Math.min(...times), last: Math.max(...times), each: times }
}

async function membershipAct (cluster: LocalCluster): Promise<void> {
  {
    await cluster.waitConverged(20_000)
    const [observer] = cluster.agents
    say(`\nEvery agent sees all ${NODES} members. The table as agent0 sees it:\n`)
    say(await table(observer))

    const crashed = cluster.agents[3]
    const frozen = cluster.agents[4]
    const survivors = cluster.agents.slice(0, 3)
    say(`\nSIGKILL agent3 (${crashed.id.slice(-10)}) and SIGSTOP agent4 (${frozen.id.slice(-10)}: frozen, its sockets stay open)…`)
    const t0 = Date.now()
    crashed.signal('SIGKILL')
    frozen.signal('SIGSTOP')
    const [kill, stop] = await Promise.all([verdicts(survivors, crashed, t0), verdicts(survivors, frozen, t0)])
    say(`\nBoth detected by every survivor. The table as agent0 sees it now:\n`)
    say(await table(observer))

    say('\nSIGCONT agent4: it finds itself declared dead, refutes with a higher incarnation, and rejoins…')
    frozen.signal('SIGCONT')
    await cluster.waitConverged(15_000, [...survivors, frozen])
    say('Restarting agent3 from its data directory: same identity, next incarnation…')
    await cluster.restart(3)
    await cluster.waitConverged(15_000)
    say('')
    say(await table(observer))

    say('\nSummary (ms from the signal to each survivor\'s dead verdict):')
    say(`  SIGKILL  first ${kill.first}, last ${kill.last}   (${kill.each.join(', ')})`)
    say(`  SIGSTOP  first ${stop.first}, last ${stop.last}   (${stop.each.join(', ')})`)
    say(`  frozen agent refuted and rejoined; crashed agent restarted and rejoined as itself.`)
  }
}

function nameOf (cluster: LocalCluster, id: string | undefined): string {
  return cluster.agents.find((a) => a.id === id)?.name ?? `?${(id ?? '').slice(-6)}`
}

function agentOf (cluster: LocalCluster, session: Session): AgentProcess {
  const agent = cluster.agents.find((a) => a.id === session.owner?.id)
  if (agent === undefined) throw new Error(`the owner of ${session.sessionId} is not one of the demo's agents`)
  return agent
}

type Takeover = { signal: string; sessionId: string; from: string; to: string; ms: number }

// Signals the owner of `sessions[victimOf]`, then waits until every session that
// agent owned has acknowledged an append in a later epoch.
async function takeover (cluster: LocalCluster, sessions: Session[], writers: ContinuousWriter[], victimOf: number, signal: NodeJS.Signals): Promise<{ victim: AgentProcess; takeovers: Takeover[] }> {
  const victim = agentOf(cluster, sessions[victimOf])
  const affected = sessions.map((s, i) => ({ s, i, epoch: s.epoch })).filter(({ s }) => s.owner?.id === victim.id)
  say(`\n${signal} ${victim.name}, the owner of ${affected.length} session(s), while the terminals keep appending…`)
  const t0 = Date.now()
  victim.signal(signal)
  const takeovers = await Promise.all(affected.map(async ({ s, i, epoch }) => {
    const ms = await waitTakeover(writers[i], t0, epoch)
    return { signal, sessionId: s.sessionId, from: victim.name, to: nameOf(cluster, s.owner?.id), ms }
  }))
  for (const t of takeovers) say(`  ${t.sessionId}: ${t.to} took over, first append acknowledged ${t.ms} ms after the signal (epoch ${sessions.find((s) => s.sessionId === t.sessionId)?.epoch})`)
  return { victim, takeovers }
}

async function sessionsAct (cluster: LocalCluster): Promise<string[]> {
  say(`\nAct 2: ${TERMINALS.length} terminals open log sessions (owner + 2 standbys each, every append acknowledged once all live members hold it)…`)
  const client = new EdgeClient({ agents: cluster.running().map((a) => a.http) })
  const sessions: Session[] = []
  const writers: ContinuousWriter[] = []
  try {
    for (const t of TERMINALS) {
      const session = await client.open({ ...t, service: 'log' })
      sessions.push(session)
      writers.push(new ContinuousWriter(session, `${t.terminalId}-`))
      say(`  ${t.terminalId} → ${session.sessionId}: ${session.group.map((m) => `${nameOf(cluster, m.id)} (${m.role})`).join(', ')}`)
    }
    await Promise.all(writers.map(async (w) => await w.waitFor(30)))

    const kill = await takeover(cluster, sessions, writers, 0, 'SIGKILL')
    say(`  waiting for the owners to replace ${kill.victim.name} in every group (repair after 2 s)…`)
    const repairMs = Math.max(...await Promise.all(sessions.map(async (s) => await waitGroupRepaired(s, [kill.victim.id], GROUP_SIZE))))
    say(`  every group is back to ${GROUP_SIZE} members (${repairMs} ms)`)

    const other = sessions.findIndex((s) => s.owner?.id !== sessions[0].owner?.id)
    const stop = await takeover(cluster, sessions, writers, other === -1 ? 0 : other, 'SIGSTOP')
    const resumed = Date.now()
    say(`SIGCONT ${stop.victim.name}: it finds a higher epoch, drops what it never got acknowledged and follows…`)
    stop.victim.signal('SIGCONT')
    for (const t of stop.takeovers) {
      await stop.victim.waitFor((e) => e.event === 'demoted' && e.sessionId === t.sessionId && e.atMs >= resumed, 10_000)
      say(`  ${stop.victim.name} demoted itself in ${t.sessionId}`)
    }
    say(`Restarting ${kill.victim.name} from its data directory; it rejoins as itself…`)
    await cluster.restart(cluster.agents.indexOf(kill.victim))
    await Promise.all(writers.map(async (w) => await w.waitFor(w.acked.length + 30)))
    await Promise.all(writers.map(async (w) => await w.stop()))

    say('\nThe check: each session\'s state against what its terminal saw acknowledged.')
    const problems: string[] = []
    for (const [i, w] of writers.entries()) {
      const found = await w.check()
      const epochs = [...new Set(w.acked.map((a) => a.epoch))].join(',')
      const worst = Math.max(...w.acked.map((a) => a.latencyMs))
      say(`  ${TERMINALS[i].terminalId.padEnd(10)} ${sessions[i].sessionId.padEnd(22)} ${String(w.acked.length).padStart(5)} acknowledged, epochs ${epochs.padEnd(6)} slowest append ${worst} ms   ${found.length === 0 ? 'every one present once, in order' : 'PROBLEMS: ' + found.join('; ')}`)
      problems.push(...found.map((p) => `${sessions[i].sessionId}: ${p}`))
    }
    say('\nTakeovers (ms from the signal to the terminal\'s first acknowledged append at the new owner):')
    for (const t of [...kill.takeovers, ...stop.takeovers]) say(`  ${t.signal.padEnd(7)} ${t.sessionId.padEnd(22)} ${t.from} → ${t.to}   ${t.ms} ms`)
    return problems
  } finally {
    for (const w of writers) w.stopped = true
    client.destroy()
  }
}

async function main (): Promise<number> {
  const lan = membershipProfile('lan')
  const suspicion = suspicionBoundsMs(NODES, lan.suspicionMinMs, lan.suspicionMaxTimeoutMult)
  say(`Starting ${NODES} edge agents on 127.0.0.1 (profile lan: probe every ${lan.probeIntervalMs} ms, suspicion ${suspicion.minMs / 1000}-${suspicion.maxMs / 1000} s)…`)
  const cluster = await LocalCluster.start({ nodes: NODES, services: 'log,kv', configure: (i) => SITES[i] })
  try {
    say('\nAct 1: membership.')
    await membershipAct(cluster)
    const problems = await sessionsAct(cluster)
    say('\nStopping the agents gracefully (SIGTERM: each announces its leave)…')
    const codes = await Promise.all(cluster.running().map(async (a) => await a.stop()))
    if (codes.some((code) => code !== 0)) throw new Error(`an agent exited with ${codes.join(',')}`)
    if (problems.length > 0) {
      process.stderr.write(`demo found problems:\n  ${problems.join('\n  ')}\n`)
      return 1
    }
    say('Done: no acknowledged append lost, none doubled, order kept.')
    return 0
  } finally {
    await cluster.destroy()
  }
}

try {
  process.exitCode = await main()
} catch (error) {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`)
  process.exitCode = 1
}
