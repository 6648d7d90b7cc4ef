// The agent as its users run it: real `edge-agent` processes on 127.0.0.1, started
// and peeked at through the CLI, watched through their --json events and HTTP API.
//
// One four-agent cluster is shared by the tests that need one, in file order: it
// converges, is peeked at, loses agent3 to SIGKILL (its metrics then show the
// verdict), gets agent3 back from its data directory, sees agent2 freeze and thaw,
// and sees agent1 leave. Every test has a hard timeout; the cluster and every
// temporary directory are removed at the end, whatever happened.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalCluster, runCli } from '../../sim/processes.ts'
import type { AgentEventLine, AgentProcess, CliResult } from '../../sim/processes.ts'
import type { MemberJson, MembersJson } from '../../agent/runtime/view.ts'

// Starting four agents on a 2-core box takes most of this.
const CLUSTER_TEST_TIMEOUT_MS = 60_000
const TEST_TIMEOUT_MS = 30_000
// The lan profile promises a dead verdict within about 2 s; this bound only
// catches a detector that does not work at all.
const VERDICT_TIMEOUT_MS = 10_000
const CONVERGE_TIMEOUT_MS = 15_000
const CLI_TIMEOUT_MS = 20_000

// Where each agent says it is: `configure` gives agent i the i-th entry. Sydney's
// `--position -33.8688,151.2093` is a separate argument starting with a dash,
// which the CLI must take as the value, not as a flag.
const PLACES = [
  { position: '52.52,13.405', region: 'eu-central', zone: 'ber-1' },
  { position: '48.8566,2.3522', region: 'eu-west', zone: 'par-2' },
  { position: '40.7128,-74.006', region: 'us-east', zone: 'nyc-1' },
  { position: '-33.8688,151.2093', region: 'ap-southeast', zone: 'syd-3' }
]

const CLI = fileURLToPath(new URL('../../bin/edge-agent.ts', import.meta.url))

let shared: LocalCluster | null = null

function cluster (): LocalCluster {
  if (shared === null) throw new Error('the shared cluster did not start (see the first test)')
  return shared
}

test.after(async () => {
  await shared?.destroy()
})

// A test with a hard timeout. Whatever it started is cleaned up by `cleanup`
// tasks, which run however the test ends.
function timedTest (name: string, timeoutMs: number, body: (cleanup: Array<() => void>) => Promise<void>): void {
  test(name, async () => {
    const cleanup: Array<() => void> = []
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`test timed out after ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      await Promise.race([body(cleanup), timeout])
    } finally {
      clearTimeout(timer)
      for (const task of cleanup.reverse()) task()
    }
  })
}

function tempDir (cleanup: Array<() => void>): string {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-cli-test-'))
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

// Polls `check` until it holds: for state that is read, not announced.
async function eventually (what: string, check: () => Promise<boolean>, timeoutMs = CONVERGE_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check().catch(() => false)) {
    if (Date.now() > deadline) throw new Error(`still waiting for ${what} after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function getJson<T> (url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) })
  assert.is(response.status, 200, `GET ${url}`)
  return await response.json() as T
}

async function membersOf (agent: AgentProcess): Promise<MembersJson> {
  return await getJson<MembersJson>(`${agent.http}/v1/members`)
}

async function memberIn (agent: AgentProcess, id: string): Promise<MemberJson | undefined> {
  return (await membersOf(agent)).members.find((m) => m.id === id)
}

function isStatus (id: string, status: string, sinceMs: number): (e: AgentEventLine) => boolean {
  return (e) => e.event === 'member' && e.id === id && e.status === status && e.atMs >= sinceMs
}

// Waits for every watcher's `dead` verdict on `victim` and prints how long each
// took from `sinceMs` (the signal), by the agents' own event timestamps.
async function deadVerdicts (watchers: AgentProcess[], victim: AgentProcess, sinceMs: number, how: string): Promise<number[]> {
  const verdicts = await Promise.all(watchers.map(async (w) => await w.waitFor(isStatus(victim.id, 'dead', sinceMs), VERDICT_TIMEOUT_MS)))
  const times = verdicts.map((v) => v.atMs - sinceMs)
  console.log(`\n  ${how} ${victim.name} → dead verdict after: ${watchers.map((w, i) => `${w.name} ${times[i]} ms`).join(', ')}`)
  return times
}

function deadIdsSince (agent: AgentProcess, sinceMs: number): string[] {
  return agent.events.filter((e) => e.event === 'member' && e.status === 'dead' && e.atMs >= sinceMs).map((e) => String(e.id))
}

// For failure messages: the suspicions an agent refuted, each of which raised its
// incarnation, and who raised them.
function refutations (agent: AgentProcess): string {
  const names = new Map(cluster().agents.map((a) => [a.id, a.name]))
  const refuted = agent.events.filter((e) => e.event === 'refuted')
  return refuted.map((e) => `\n  ${agent.name} refuted a ${String(e.accusation)} by ${names.get(String(e.by)) ?? String(e.by)} (incarnation ${String(e.incarnation)})`).join('')
}

function oneLine (text: string): string {
  const lines = text.trimEnd().split('\n')
  assert.is(lines.length, 1, `expected one line, got:\n${text}`)
  return lines[0]
}

function describe (result: CliResult): string {
  return `exit ${result.code}${result.signal === null ? '' : ` (${result.signal})`}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
}

// The value of one sample line of Prometheus text, or null when there is none.
function metric (text: string, sample: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '))
  return line === undefined ? null : Number(line.slice(sample.length + 1))
}

// A loopback port nothing listens on (it was free a moment ago).
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

// Flags that keep a `start` that should refuse on loopback and out of $HOME,
// should it not refuse after all.
function loopbackStart (dataDir: string): string[] {
  return ['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--http', '127.0.0.1:0', '--data-dir', dataDir]
}

timedTest('four agents with services and places converge; each lists all four alive with their records at incarnation 1', CLUSTER_TEST_TIMEOUT_MS, async () => {
  shared = await LocalCluster.start({ nodes: 4, services: 'log', configure: (i) => PLACES[i] })
  const agents = cluster().agents
  await cluster().waitConverged(CONVERGE_TIMEOUT_MS)

  for (const agent of agents) {
    assert.is(agent.events[0].incarnation, 1, `${agent.name} starts at incarnation 1`)
    const health = await getJson<{ ok: boolean; id: string; incarnation: number; joining: boolean; clusterKeys: null }>(`${agent.http}/v1/health`)
    assert.equal(health, { ok: true, id: agent.id, incarnation: 1, joining: false, clusterKeys: null }, `${agent.name}'s /v1/health${refutations(agent)}`)
  }
  for (const agent of agents) {
    const view = await membersOf(agent)
    assert.is(view.self, agent.id)
    assert.equal(view.members.map((m) => m.id).sort(), agents.map((a) => a.id).sort())
    for (const [i, other] of agents.entries()) {
      const m = view.members.find((member) => member.id === other.id) as MemberJson
      const [lat, lon] = PLACES[i].position.split(',').map(Number)
      assert.equal({
        status: m.status, ip: m.ip, http: m.http, services: m.services,
        position: m.position, region: m.region, zone: m.zone, incarnation: m.incarnation
      }, {
        status: 'alive', ip: '127.0.0.1', http: other.http, services: [{ name: 'log', version: '1', capacity: 100 }],
        position: { lat, lon }, region: PLACES[i].region, zone: PLACES[i].zone, incarnation: 1
      }, `${agent.name}'s view of ${other.name}${refutations(other)}`)
    }
  }
})

timedTest('peek shows the same members over HTTP and over libp2p, as JSON and as a table', TEST_TIMEOUT_MS, async () => {
  const agents = cluster().agents
  const url = agents[0].http
  const multiaddr = agents[0].addrs.find((a) => a.startsWith('/ip4/127.0.0.1/') && a.includes('/p2p/'))
  assert.ok(multiaddr !== undefined, `agent0 announced a loopback /p2p/ address: ${agents[0].addrs.join(' ')}`)

  const [httpJson, p2pJson, httpTable, p2pTable] = await Promise.all([
    runCli(['peek', url, '--json'], CLI_TIMEOUT_MS),
    runCli(['peek', multiaddr, '--json'], CLI_TIMEOUT_MS),
    runCli(['peek', url], CLI_TIMEOUT_MS),
    runCli(['peek', multiaddr], CLI_TIMEOUT_MS)
  ])

  const expected = agents.map((a) => ({ id: a.id, status: 'alive' })).sort((a, b) => a.id.localeCompare(b.id))
  for (const result of [httpJson, p2pJson]) {
    assert.is(result.code, 0, describe(result))
    const view = JSON.parse(result.stdout) as MembersJson
    assert.is(view.self, agents[0].id)
    assert.equal(view.members.map((m) => ({ id: m.id, status: m.status })).sort((a, b) => a.id.localeCompare(b.id)), expected)
  }
  for (const result of [httpTable, p2pTable]) {
    assert.is(result.code, 0, describe(result))
    const rows = result.stdout.split('\n')
    for (const agent of agents) {
      const row = rows.find((r) => r.includes(agent.id.slice(-10)))
      assert.ok(row !== undefined, `a row for ${agent.name} (…${agent.id.slice(-10)}) in:\n${result.stdout}`)
      assert.match(row, /\balive\b/)
    }
  }
})

timedTest('peek exits 1 with a one-line reason when the agent is unreachable, and 2 on an unknown flag', TEST_TIMEOUT_MS, async () => {
  const port = await closedPort()
  const [unreachable, bogus] = await Promise.all([
    runCli(['peek', `http://127.0.0.1:${port}`, '--timeout', '2000'], CLI_TIMEOUT_MS),
    runCli(['peek', '--bogus'], CLI_TIMEOUT_MS)
  ])
  assert.is(unreachable.code, 1, describe(unreachable))
  assert.match(oneLine(unreachable.stderr), `cannot reach http://127.0.0.1:${port}`)
  assert.is(unreachable.stdout, '')
  assert.is(bogus.code, 2, describe(bogus))
  assert.match(oneLine(bogus.stderr), '--bogus')
})

timedTest('an agent killed with SIGKILL is declared dead by every survivor, and by no one else', TEST_TIMEOUT_MS, async () => {
  const [a0, a1, a2, victim] = cluster().agents
  const survivors = [a0, a1, a2]
  const killedAtMs = Date.now()
  victim.signal('SIGKILL')
  await deadVerdicts(survivors, victim, killedAtMs, 'SIGKILL')
  await victim.exited

  for (const survivor of survivors) {
    assert.is((await memberIn(survivor, victim.id))?.status, 'dead', `${survivor.name} lists ${victim.name} as dead`)
    assert.equal(deadIdsSince(survivor, killedAtMs), [victim.id], `${survivor.name}'s dead verdicts`)
  }
})

timedTest('after the kill, a survivor\'s /metrics counts the dead verdict and the dead member', TEST_TIMEOUT_MS, async () => {
  const response = await fetch(`${cluster().agents[0].http}/metrics`, { signal: AbortSignal.timeout(5_000) })
  assert.is(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', 'text/plain')
  const text = await response.text()
  assert.ok((metric(text, 'edge_agent_dead_verdicts_total') ?? 0) >= 1, 'edge_agent_dead_verdicts_total >= 1')
  assert.is(metric(text, 'edge_agent_members{status="dead"}'), 1)
  assert.is(metric(text, 'edge_agent_members{status="alive"}'), 3)
  assert.ok((metric(text, 'edge_agent_probes_total{result="ack"}') ?? 0) >= 1, 'edge_agent_probes_total{result="ack"} >= 1')
})

timedTest('the killed agent, restarted with its data directory, rejoins as itself one incarnation up', TEST_TIMEOUT_MS, async () => {
  const old = cluster().agents[3]
  assert.ok(!old.running, 'agent3 was killed two tests earlier')
  // 2, unless a loaded box made someone suspect agent3 before the kill and it
  // refuted (the message lists such refutations): one above the last it had.
  const expected = 1 + Math.max(Number(old.events[0].incarnation), ...old.events.filter((e) => e.event === 'refuted').map((e) => Number(e.incarnation)))
  const restartedAtMs = Date.now()
  const agent = await cluster().restart(3)
  assert.is(agent.id, old.id)
  assert.is(agent.events[0].incarnation, expected, `the restart's incarnation${refutations(old)}`)

  const others = cluster().agents.slice(0, 3)
  const seen = await Promise.all(others.map(async (o) => await o.waitFor(isStatus(agent.id, 'alive', restartedAtMs), CONVERGE_TIMEOUT_MS)))
  for (const event of seen) assert.equal({ previous: event.previous, incarnation: event.incarnation }, { previous: 'dead', incarnation: expected })
  await cluster().waitConverged(CONVERGE_TIMEOUT_MS)
  for (const viewer of cluster().agents) {
    const m = await memberIn(viewer, agent.id)
    assert.equal({ status: m?.status, incarnation: m?.incarnation }, { status: 'alive', incarnation: expected }, `${viewer.name}'s view of ${agent.name}${refutations(agent)}`)
  }
})

timedTest('a frozen agent (SIGSTOP) is declared dead; thawed (SIGCONT), it refutes and is alive again everywhere', TEST_TIMEOUT_MS, async () => {
  const [a0, a1, victim, a3] = cluster().agents
  const survivors = [a0, a1, a3]
  const stoppedAtMs = Date.now()
  victim.signal('SIGSTOP')
  await deadVerdicts(survivors, victim, stoppedAtMs, 'SIGSTOP')

  const continuedAtMs = Date.now()
  victim.signal('SIGCONT')
  const refuted = await victim.waitFor((e) => e.event === 'refuted' && e.atMs >= continuedAtMs, VERDICT_TIMEOUT_MS)
  assert.ok(Number(refuted.incarnation) > 1, `refuted with a raised incarnation (got ${String(refuted.incarnation)})`)
  const revived = await Promise.all(survivors.map(async (s) => await s.waitFor(isStatus(victim.id, 'alive', continuedAtMs), CONVERGE_TIMEOUT_MS)))
  for (const event of revived) assert.is(event.previous, 'dead')
  await cluster().waitConverged(CONVERGE_TIMEOUT_MS)

  // Every agent, the thawed one included, agrees on its latest incarnation.
  await eventually(`every agent to see ${victim.name} at its own incarnation`, async () => {
    const { incarnation } = await getJson<{ incarnation: number }>(`${victim.http}/v1/health`)
    const views = await Promise.all(cluster().agents.map(async (a) => await memberIn(a, victim.id)))
    return views.every((m) => m?.status === 'alive' && m.incarnation === incarnation)
  })
  // The thawed agent's stall must not turn into verdicts on the others.
  for (const agent of cluster().agents) {
    const wrongly = deadIdsSince(agent, stoppedAtMs).filter((id) => id !== victim.id)
    assert.equal(wrongly, [], `${agent.name} declared no one else dead`)
  }
})

timedTest('an agent stopped with SIGTERM exits 0 and every survivor lists it as left, never dead', TEST_TIMEOUT_MS, async () => {
  const [a0, leaver, a2, a3] = cluster().agents
  const survivors = [a0, a2, a3]
  const termAtMs = Date.now()
  const code = await leaver.stop()
  assert.is(code, 0, `exit code; stderr:\n${leaver.stderr}`)
  const stopped = leaver.events.find((e) => e.event === 'stopped')
  assert.is(stopped?.left, true)

  await Promise.all(survivors.map(async (s) => await s.waitFor(isStatus(leaver.id, 'left', termAtMs), CONVERGE_TIMEOUT_MS)))
  for (const survivor of survivors) {
    assert.is((await memberIn(survivor, leaver.id))?.status, 'left', `${survivor.name} lists ${leaver.name} as left`)
    assert.is(survivor.statusEvent(leaver.id, 'dead', termAtMs), null, `${survivor.name} never declared ${leaver.name} dead`)
  }
})

timedTest('start exits 2 with a one-line reason on an unknown flag or an impossible position', TEST_TIMEOUT_MS, async (cleanup) => {
  const dataDir = tempDir(cleanup)
  const [bogus, position] = await Promise.all([
    runCli([...loopbackStart(dataDir), '--bogus'], CLI_TIMEOUT_MS),
    runCli([...loopbackStart(dataDir), '--position', '95,0'], CLI_TIMEOUT_MS)
  ])
  assert.is(bogus.code, 2, describe(bogus))
  assert.match(oneLine(bogus.stderr), /^edge-agent start: .*--bogus/)
  assert.is(position.code, 2, describe(position))
  assert.match(oneLine(position.stderr), /^edge-agent start: .*latitude.*95/)
})

timedTest('start exits 1 when another running agent holds the data directory, and leaves that agent be', TEST_TIMEOUT_MS, async () => {
  const holder = cluster().agents[0]
  const result = await runCli(loopbackStart(holder.options.dataDir), CLI_TIMEOUT_MS)
  assert.is(result.code, 1, describe(result))
  assert.match(result.stderr, `data directory ${holder.options.dataDir} is in use by process ${holder.pid}`)
  assert.ok(holder.running)
  assert.is(readFileSync(join(holder.options.dataDir, 'agent.lock'), 'utf8').trim(), String(holder.pid))
  assert.is((await getJson<{ ok: boolean }>(`${holder.http}/v1/health`)).ok, true)
})

timedTest('start exits 1 on a corrupt state.json, naming the file, and leaves the file in place', TEST_TIMEOUT_MS, async (cleanup) => {
  const dataDir = tempDir(cleanup)
  const statePath = join(dataDir, 'state.json')
  const garbage = '{"format":1,"incarnation":\u0000 not json'
  writeFileSync(statePath, garbage)
  const result = await runCli(loopbackStart(dataDir), CLI_TIMEOUT_MS)
  assert.is(result.code, 1, describe(result))
  const message = result.stderr.split('\n').find((l) => l.startsWith('edge-agent start: '))
  assert.ok(message !== undefined, `a one-line message on stderr:\n${result.stderr}`)
  assert.match(message, `state file ${statePath} is corrupt`)
  assert.ok(existsSync(statePath))
  assert.is(readFileSync(statePath, 'utf8'), garbage)
})

timedTest('an agent whose stdout reader goes away carries on: it says so once on stderr, keeps serving, and stops cleanly', TEST_TIMEOUT_MS, async (cleanup) => {
  const spawnAgent = (dataDir: string, extra: string[]): ChildProcess => {
    const child = spawn(process.execPath, [CLI, ...loopbackStart(dataDir), '--json', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
    cleanup.push(() => { child.kill('SIGKILL') })
    return child
  }
  const a = spawnAgent(tempDir(cleanup), [])
  let stderr = ''
  a.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const started = await new Promise<{ id: string; addrs: string[]; http: string }>((resolve, reject) => {
    createInterface({ input: a.stdout! }).once('line', (line) => { resolve(JSON.parse(line)) })
    a.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)))
  })
  // The reader goes: the agent's next line (B joining) meets a closed pipe.
  a.stdout!.destroy()
  const b = spawnAgent(tempDir(cleanup), ['--bootstrap', started.addrs[0]])
  b.stdout!.resume()
  b.stderr!.resume()
  await eventually('A lists B alive', async () => {
    const members = await getJson<MembersJson>(`${started.http}/v1/members`)
    return members.members.filter((m) => m.status === 'alive').length === 2
  })
  await eventually('A says its stdout is closed', async () => stderr.includes('stdout is closed'))
  assert.is(a.exitCode, null, `A still runs; stderr:\n${stderr.slice(-2000)}`)
  assert.is((await getJson<{ ok: boolean }>(`${started.http}/v1/health`)).ok, true)
  assert.is(stderr.split('stdout is closed').length - 1, 1, 'said once')
  const exited = new Promise<number | null>((resolve) => a.once('exit', (code) => resolve(code)))
  a.kill('SIGTERM')
  assert.is(await exited, 0, `exit code after SIGTERM; stderr:\n${stderr.slice(-2000)}`)
  b.kill('SIGKILL')
})

test.run()
