import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../agent/client/index.ts'
import { LocalCluster } from '../sim/processes.ts'

const configDir = mkdtempSync(join(tmpdir(), 'edge-agent-prof-'))
const configFile = join(configDir, 'agent.json')
writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 } }))
if (process.env.PROF_DIR !== undefined) process.env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${process.env.PROF_DIR}`
const cluster = await LocalCluster.start({ nodes: 3, services: 'log', configure: () => ({ extraArgs: ['--config', configFile] }) })
delete process.env.NODE_OPTIONS
await cluster.waitConverged(60_000)
console.log(cluster.agents.map((a) => `${a.name} ${a.child.pid} ${a.id.slice(-6)}`).join('\n'))
const client = new EdgeClient({ agents: cluster.agents.map((a) => a.http) })
const owner = cluster.agents[0].id
const sessions = []
let tried = 0
while (sessions.length < Number(process.env.C ?? 16)) {
  const s = await client.open({ terminalId: `p${tried++}`, service: 'log' })
  if (s.owner?.id === owner) sessions.push(s)
}
const B = Number(process.env.B ?? 50)
let stop = false; let n = 0
const t0 = Date.now()
await Promise.all(sessions.map(async (s, w) => {
  let k = 0
  while (!stop) {
    const ops = Array.from({ length: B }, () => ({ append: `w${w}n${++k}`.padEnd(256, '.') }))
    if (B === 1) await s.append(ops[0]); else await s.appendMany(ops)
    n += B
    if (Date.now() - t0 > 8000) stop = true
  }
}))
console.log('writes/s', n / ((Date.now() - t0) / 1000))
client.destroy()
for (const a of cluster.agents) await a.stop()
await cluster.destroy()
