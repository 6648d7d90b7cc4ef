// SIGHUP (`systemctl reload`) on a real agent: a renewed TLS certificate is
// served to new connections without a restart; a peer taken off the allowlist
// file is hung up on and refused; a bad file changes nothing (the log says
// why) and the agent carries on with what it had. Needs openssl for the
// certificates (skipped with a line without it, as the TLS test in
// terminals.test.ts is).

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AgentProcess, killAll } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 90_000

function makeCert (dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', key, '-out', cert, '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  return { cert, key }
}

// GET url trusting only `ca`, on a new connection: the status, or the TLS error.
function getWith (url: string, ca: Buffer): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(url, { ca, agent: false, timeout: 5_000 }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', (error: NodeJS.ErrnoException) => { resolve(error.code ?? error.message) })
    req.end()
  })
}

async function until (what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

test('SIGHUP: a renewed certificate is served, a peer taken off the allowlist is cut off, and a bad file changes nothing', () => within((async () => {
  if (spawnSync('openssl', ['version']).status !== 0) {
    console.log('\nskip: openssl is not installed, so no certificate can be made')
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-reload-'))
  const agents: AgentProcess[] = []
  try {
    const first = makeCert(dir, 'first')
    const renewed = makeCert(dir, 'renewed')
    const cert = join(dir, 'api.crt')
    const key = join(dir, 'api.key')
    writeFileSync(cert, readFileSync(first.cert))
    writeFileSync(key, readFileSync(first.key))
    const peer = await AgentProcess.start({ name: 'peer', dataDir: join(dir, 'peer'), services: 'log' })
    agents.push(peer)
    const allowFile = join(dir, 'allow.txt')
    writeFileSync(allowFile, `# the other agent\n${peer.id}\n`)
    const agent = await AgentProcess.start({
      name: 'reloaded',
      dataDir: join(dir, 'reloaded'),
      services: 'log',
      bootstrap: peer.addrs,
      extraArgs: ['--tls-cert', cert, '--tls-key', key, '--allow-peers-file', allowFile]
    })
    agents.push(agent)
    const health = `${agent.http}/v1/health`
    assert.is(await getWith(health, readFileSync(first.cert)), 200)
    await until('the two agents see each other', async () => (await peer.members()).some((m) => m.id === agent.id && m.status === 'alive'), 20_000)

    // A renewed certificate: served to new connections after SIGHUP.
    writeFileSync(cert, readFileSync(renewed.cert))
    writeFileSync(key, readFileSync(renewed.key))
    agent.signal('SIGHUP')
    await agent.waitFor((e) => e.event === 'reloaded', 10_000)
    assert.is(await getWith(health, readFileSync(renewed.cert)), 200)
    assert.type(await getWith(health, readFileSync(first.cert)), 'string', 'the old certificate is no longer served')
    assert.ok(agent.running)

    // A bad certificate file: refused, nothing changes.
    writeFileSync(cert, 'not a certificate\n')
    agent.signal('SIGHUP')
    await until('the refusal is logged', () => agent.stderr.includes('reload refused'), 10_000)
    assert.match(agent.stderr, /reload refused: nothing changed/)
    assert.is(await getWith(health, readFileSync(renewed.cert)), 200, 'the renewed certificate is still served')
    assert.is(agent.events.filter((e) => e.event === 'reloaded').length, 1)
    writeFileSync(cert, readFileSync(renewed.cert))

    // The peer taken off the allowlist: hung up on, and refused when it comes back.
    writeFileSync(allowFile, '# nobody\n')
    agent.signal('SIGHUP')
    await until('a second reload', () => agent.events.filter((e) => e.event === 'reloaded').length === 2, 10_000)
    await until('the peer is refused by the allowlist', async () => {
      const metrics = await getMetrics(agent.http, readFileSync(renewed.cert))
      return /edge_agent_refused_connections_total\{reason="allowlist"\} [1-9]/.test(metrics)
    }, 20_000)
    await until('the peer no longer sees the agent alive', async () => (await peer.members()).some((m) => m.id === agent.id && m.status !== 'alive'), 20_000)
    assert.ok(agent.running)
  } finally {
    await killAll(agents)
    rmSync(dir, { recursive: true, force: true })
  }
})(), TIMEOUT_MS))

function getMetrics (base: string, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/metrics`, { ca, agent: false, timeout: 5_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve(body) })
    })
    req.on('error', reject)
    req.end()
  })
}

test.run()
