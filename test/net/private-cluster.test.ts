// A private cluster on the real network (127.0.0.1), through the CLI: keygen
// writes the key, agents started with it join each other; an agent with another
// key, or none, cannot join, its attempts are refused and counted, and the keyed
// agents keep running. An allowlist refuses a keyed peer that is not on it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AgentProcess, runCli } from '../../sim/processes.ts'
import { until, within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 90_000
const dir = mkdtempSync(join(tmpdir(), 'edge-private-'))
const started: AgentProcess[] = []

function withTimeout<T> (promise: Promise<T>): Promise<T> {
  return within(promise, TIMEOUT_MS)
}

async function agent (name: string, extraArgs: string[], bootstrap?: string[], logLevel = 'warn'): Promise<AgentProcess> {
  const a = await AgentProcess.start({ name, dataDir: join(dir, name), profile: 'local', services: 'log', extraArgs, bootstrap, logLevel })
  started.push(a)
  return a
}

async function counter (a: AgentProcess, name: string, label: string): Promise<number> {
  const text = await (await fetch(`${a.http}/metrics`)).text()
  const match = new RegExp(`^${name}\\{[a-z]+="${label}"\\} (\\d+)`, 'm').exec(text)
  return match === null ? NaN : Number(match[1])
}

async function waitFor (what: string, ready: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`still waiting for ${what} after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const aliveIds = async (a: AgentProcess): Promise<string[]> => (await a.members()).filter((m) => m.status === 'alive').map((m) => m.id).sort()

test('keygen writes a 0600 swarm key and refuses to overwrite it without --force', () => withTimeout((async () => {
  const key = join(dir, 'cluster.key')
  const first = await runCli(['keygen', '--cluster', '--out', key])
  assert.is(first.code, 0, first.stderr)
  assert.is(statSync(key).mode & 0o777, 0o600)
  const text = readFileSync(key, 'utf8')
  assert.match(text, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
  const again = await runCli(['keygen', '--cluster', '--out', key])
  assert.is(again.code, 2)
  assert.match(again.stderr, /exists; refusing to overwrite a cluster key.*--force/)
  assert.is(readFileSync(key, 'utf8'), text, 'the key is unchanged')
  const forced = await runCli(['keygen', '--cluster', '--out', key, '--force'])
  assert.is(forced.code, 0, forced.stderr)
  assert.is.not(readFileSync(key, 'utf8'), text)
})()))

test('a corrupt key file is refused with its path; no key warns that the cluster is open', () => withTimeout((async () => {
  const bad = join(dir, 'bad.key')
  writeFileSync(bad, '/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n', { mode: 0o600 })
  const refused = await runCli(['start', '--cluster-key', bad, '--listen', '/ip4/127.0.0.1/tcp/0', '--http', '127.0.0.1:0', '--data-dir', join(dir, 'bad'), '--log-level', 'silent'])
  assert.is(refused.code, 1)
  assert.match(refused.stderr, `cluster key file ${bad} is not a swarm key: the third line must be 64 hex digits`)
  const missing = await runCli(['start', '--cluster-key', join(dir, 'nope.key'), '--listen', '/ip4/127.0.0.1/tcp/0', '--http', '127.0.0.1:0', '--data-dir', join(dir, 'bad'), '--log-level', 'silent'])
  assert.is(missing.code, 1)
  assert.match(missing.stderr, `cannot read cluster key file ${join(dir, 'nope.key')}: ENOENT`)
  const open = await agent('open-warning', [])
  // stderr is its own pipe: the warning may arrive after the start line.
  await until(() => open.stderr.includes('this cluster is open'), 5_000)
  assert.match(open.stderr, 'this cluster is open')
  await open.stop()
})()))

test('agents with the key join; another key or none cannot; an allowlist refuses a keyed stranger', () => withTimeout((async () => {
  const key = join(dir, 'cluster.key')
  const other = join(dir, 'other.key')
  assert.is((await runCli(['keygen', '--cluster', '--out', other])).code, 0)

  const a = await agent('a', ['--cluster-key', key])
  const b = await agent('b', ['--cluster-key', key], [a.addrs[0]])
  await waitFor('a and b to see each other', async () => (await aliveIds(a)).length === 2 && (await aliveIds(b)).length === 2)
  assert.not.match(a.stderr, 'this cluster is open')

  // Another key and no key: both keep dialling a (bootstrap retries) and fail.
  const wrong = await agent('wrong-key', ['--cluster-key', other], [a.addrs[0]], 'info')
  const none = await agent('no-key', [], [a.addrs[0]], 'info')
  await waitFor('a to refuse both', async () => await counter(a, 'edge_agent_refused_connections_total', 'cluster-key') >= 2)
  const refusedByA = await counter(a, 'edge_agent_refused_connections_total', 'cluster-key')
  assert.equal(await aliveIds(a), [a.id, b.id].sort(), 'a knows only b')
  assert.equal(await aliveIds(b), [a.id, b.id].sort(), 'b knows only a')
  assert.equal(await aliveIds(wrong), [wrong.id], 'the wrong key joined nobody')
  assert.equal(await aliveIds(none), [none.id], 'no key joined nobody')
  assert.ok(a.running && b.running, 'the keyed agents keep running')
  // The waiting joiners say why, at the default log level.
  await waitFor('the joiners to say why they wait', async () => /waiting for bootstrap peers: .*does not hold this cluster's key/.test(wrong.stderr) && /waiting for bootstrap peers: .*pass its clusterKey/.test(none.stderr))

  // peek over libp2p needs the key too.
  const peeked = await runCli(['peek', a.addrs[0], '--cluster-key', key, '--json', '--timeout', '5000'])
  assert.is(peeked.code, 0, peeked.stderr)
  assert.is((JSON.parse(peeked.stdout) as { self: string }).self, a.id)
  const keyless = await runCli(['peek', a.addrs[0], '--json', '--timeout', '3000'])
  assert.is(keyless.code, 1)
  assert.match(keyless.stderr, `cannot peek ${a.addrs[0]}`)
  assert.match(keyless.stderr, 'pass its --cluster-key', `a refusal that says what is likely missing: ${keyless.stderr}`)

  // An allowlist on c: b is allowed, a is not. c holds the key, so only the
  // allowlist stands between a and c.
  const c = await agent('c', ['--cluster-key', key, '--allow-peers', b.id], [b.addrs[0]])
  await waitFor('c to join b', async () => (await aliveIds(c)).includes(b.id))
  await waitFor('c to refuse a', async () => await counter(c, 'edge_agent_refused_connections_total', 'allowlist') >= 1)
  const refusedByC = await counter(c, 'edge_agent_refused_connections_total', 'allowlist')
  // Figures for the notes: what the test saw refused.
  console.log(`  refused connections: a (cluster-key) ${refusedByA}, c (allowlist) ${refusedByC}`)
  assert.ok(a.running && b.running && c.running)
})()))

test.after(async () => {
  for (const a of started) if (a.running) await a.stop().catch(() => {})
  rmSync(dir, { recursive: true, force: true })
})

test.run()
