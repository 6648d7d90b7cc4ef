// `npm start`: a five-agent cluster on loopback, one crash, one freeze, and how
// fast every survivor noticed. Real processes, real sockets, real signals.

import { formatMembersTable } from '../agent/runtime/view.ts'
import type { MembersJson } from '../agent/runtime/view.ts'
import { LocalCluster } from '../sim/processes.ts'
import type { AgentProcess } from '../sim/processes.ts'

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

async function main (): Promise<number> {
  say(`Starting ${NODES} edge agents on 127.0.0.1 (profile lan: probe every 200 ms, suspicion 0.8-1.6 s)…`)
  const cluster = await LocalCluster.start({ nodes: NODES, services: 'log,kv', configure: (i) => SITES[i] })
  try {
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
    say('\nStopping the agents gracefully (SIGTERM: each announces its leave)…')
    const codes = await Promise.all(cluster.running().map(async (a) => await a.stop()))
    if (codes.some((code) => code !== 0)) throw new Error(`an agent exited with ${codes.join(',')}`)
    say('Done.')
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
