// The simulator's cost per idle session: `nodes` nodes holding `sessions`
// sessions (opened through simulated terminals, then left idle: the owners'
// heartbeats and the members' acks are all that runs), CPU ms of this process
// per virtual second. The sessions cores dominate it; the simulator asks each
// core for its next wake-up after every message, which is what the wake-up
// heap in agent/sessions/sessions.ts made cheap.
//
//   node bench/sim-sessions.ts            1,000 sessions on 5 nodes, 5 windows of 10 virtual s

import { openTerminal, sessionCluster } from '../test/sim/session-helpers.ts'
import { log, median } from './lib.ts'

export type SimSessionsResult = {
  nodes: number
  sessions: number
  windowVirtualS: number
  // CPU ms (user + system) per virtual second, each window.
  cpuMsPerVirtualS: number[]
  // Node-seconds simulated per wall second over the windows.
  nodeSecondsPerWallSecond: number
}

export function benchSimSessions (nodes = 5, sessions = 1_000, windows = 5, windowVirtualS = 10, seed = 7): SimSessionsResult {
  log(`sim sessions: ${sessions} idle sessions on ${nodes} nodes`)
  // The heap is checked against a scan of every session only in tests.
  const cluster = sessionCluster(seed, nodes, { verifyWake: false })
  const ids = cluster.running().map((n) => n.id)
  for (let i = 0; i < sessions; i++) openTerminal(cluster, `idle-${i}`, ids[i % ids.length])
  cluster.runUntil(() => false, 5_000)
  const cpuMsPerVirtualS: number[] = []
  const wall0 = performance.now()
  for (let w = 0; w < windows; w++) {
    const cpu0 = process.cpuUsage()
    cluster.runUntil(() => false, windowVirtualS * 1_000)
    const cpu = process.cpuUsage(cpu0)
    cpuMsPerVirtualS.push((cpu.user + cpu.system) / 1_000 / windowVirtualS)
  }
  const wallS = (performance.now() - wall0) / 1_000
  const result = { nodes, sessions, windowVirtualS, cpuMsPerVirtualS, nodeSecondsPerWallSecond: nodes * windows * windowVirtualS / wallS }
  log(`sim sessions: CPU ms per virtual s ${cpuMsPerVirtualS.map((x) => x.toFixed(0)).join(', ')} (median ${median(cpuMsPerVirtualS).toFixed(0)})`)
  return result
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(benchSimSessions(), null, 2) + '\n')
}
