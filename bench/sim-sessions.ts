// The simulator's cost per idle session: `nodes` nodes holding `sessions`
// sessions (opened through simulated terminals, then left idle), CPU ms of
// this process per virtual second, side by side: with the defaults (idle
// sessions go quiet: one beat per pair of nodes, agent/sessions/quiet.ts) and
// with quietAfterMs 0 (every session heartbeated, and acked, every 100 ms).
// The two clusters run alternate windows in one process. The sessions cores
// dominate the awake figure; the simulator asks each core for its next wake-up
// after every message, which the wake-up heap (agent/sessions/wakes.ts) made
// cheap.
//
//   node bench/sim-sessions.ts            1,000 sessions on 5 nodes, 5 windows of 10 virtual s each

import { openTerminal, sessionCluster } from '../test/sim/session-helpers.ts'
import { log, median } from './lib.ts'

export type SimSessionsResult = {
  nodes: number
  sessions: number
  windowVirtualS: number
  // CPU ms (user + system) per virtual second, each window: quiet sessions
  // (the defaults), then every session awake (quietAfterMs 0).
  cpuMsPerVirtualS: number[]
  awakeCpuMsPerVirtualS: number[]
  // Node-seconds simulated per wall second over the quiet windows.
  nodeSecondsPerWallSecond: number
}

export function benchSimSessions (nodes = 5, sessions = 1_000, windows = 5, windowVirtualS = 10, seed = 7): SimSessionsResult {
  log(`sim sessions: ${sessions} idle sessions on ${nodes} nodes, quiet and awake`)
  const open = (quietAfterMs: number | undefined) => {
    // The heap is checked against a scan of every session only in tests.
    const cluster = sessionCluster(seed, nodes, { verifyWake: false, ...(quietAfterMs === undefined ? {} : { sessionsPatch: { quietAfterMs } }) })
    const ids = cluster.running().map((n) => n.id)
    for (let i = 0; i < sessions; i++) openTerminal(cluster, `idle-${i}`, ids[i % ids.length])
    cluster.runUntil(() => false, 5_000)
    return cluster
  }
  const quiet = open(undefined)
  const awake = open(0)
  const window = (cluster: ReturnType<typeof open>): number => {
    const cpu0 = process.cpuUsage()
    cluster.runUntil(() => false, windowVirtualS * 1_000)
    const cpu = process.cpuUsage(cpu0)
    return (cpu.user + cpu.system) / 1_000 / windowVirtualS
  }
  const cpuMsPerVirtualS: number[] = []
  const awakeCpuMsPerVirtualS: number[] = []
  let quietWallMs = 0
  for (let w = 0; w < windows; w++) {
    const wall0 = performance.now()
    cpuMsPerVirtualS.push(window(quiet))
    quietWallMs += performance.now() - wall0
    awakeCpuMsPerVirtualS.push(window(awake))
  }
  const result = { nodes, sessions, windowVirtualS, cpuMsPerVirtualS, awakeCpuMsPerVirtualS, nodeSecondsPerWallSecond: nodes * windows * windowVirtualS / (quietWallMs / 1_000) }
  log(`sim sessions: CPU ms per virtual s, quiet ${cpuMsPerVirtualS.map((x) => x.toFixed(0)).join(', ')} (median ${median(cpuMsPerVirtualS).toFixed(0)}); ` +
    `awake ${awakeCpuMsPerVirtualS.map((x) => x.toFixed(0)).join(', ')} (median ${median(awakeCpuMsPerVirtualS).toFixed(0)})`)
  return result
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(benchSimSessions(), null, 2) + '\n')
}
