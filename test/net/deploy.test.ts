// Deployed service code on real agents: five `edge-agent start` processes on
// 127.0.0.1 that trust one deployer key. `edge-agent deploy` hands the cart
// example to one agent with a policy naming four; they advertise cart@1.0.0 in
// their records. A terminal opens a cart session at the fifth agent, which has
// no package and fetches it first. An agent over its request limit answers 307
// to another agent of its region. A package signed by an unknown key is refused
// and counted. The cluster is private (--cluster-key) and the cart is deployed
// sealed with that key: it is stored encrypted and run from memory; one sealed
// for another cluster is refused and counted.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import { buildBundle, deployerKeyFile, generateDeployerKey, packageKeyOf, parseDeployerKeyFile } from '../../agent/runtime/package.ts'
import { formatSwarmKey, generateClusterKey } from '../../agent/net/cluster-key.ts'
import { LocalCluster, runCli } from '../../sim/processes.ts'
import type { AgentProcess } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

const TEST_TIMEOUT_MS = 120_000
const CART = new URL('../../examples/cart', import.meta.url).pathname

function withTimeout<T> (promise: Promise<T>): Promise<T> {
  return within(promise, TEST_TIMEOUT_MS)
}

type Member = { id: string; status: string; services: Array<{ name: string; version: string }> }

async function advertising (viewer: AgentProcess, name: string, version: string): Promise<string[]> {
  const body = await (await http(`${viewer.http}/v1/members`)).json() as { members: Member[] }
  return body.members.filter((m) => m.status === 'alive' && m.services.some((s) => s.name === name && s.version === version)).map((m) => m.id).sort()
}

// fetch() that names the URL when it fails ("fetch failed" alone says nothing).
async function http (url: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, init)
  } catch (error) {
    throw new Error(`${init.method ?? 'GET'} ${url}: ${(error as Error).message} (${String((error as { cause?: unknown }).cause)})`)
  }
}

// A fresh deployer key, written as a key file in a new temporary directory.
function deployerKeyIn (prefix: string): { key: ReturnType<typeof generateDeployerKey>; keyDir: string; keyFile: string } {
  const key = generateDeployerKey()
  const keyDir = mkdtempSync(join(tmpdir(), prefix))
  const keyFile = join(keyDir, 'deployer.key')
  writeFileSync(keyFile, deployerKeyFile(key), { mode: 0o600 })
  return { key, keyDir, keyFile }
}

async function until (what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

test('deploy to 4 agents, open a session on one without the package, redirect from an overloaded one, refuse an untrusted package', () => withTimeout((async () => {
  // Every agent trusts this key, given as the key file itself.
  const { key, keyDir, keyFile } = deployerKeyIn('edge-agent-deployer-')
  // No load filter: on one shared test machine every agent reads the machine's
  // CPU, often over 0.9 (as bench/sessions-real.ts does).
  const clusterKeyFile = join(keyDir, 'cluster.key')
  writeFileSync(clusterKeyFile, formatSwarmKey(generateClusterKey()), { mode: 0o600 })
  const configFile = join(keyDir, 'config.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  let cluster: LocalCluster | null = null
  try {
    cluster = await LocalCluster.start({
      nodes: 5,
      configure: (i) => ({
        region: 'eu',
        zone: i === 0 ? 'dc1' : 'edge',
        // agent3 is always "over its request limit" for requests by URL.
        extraArgs: ['--config', configFile, '--cluster-key', clusterKeyFile, '--trusted-deployers', keyFile, '--package-pull-interval-ms', '500', ...(i === 3 ? ['--service-request-limit', '0'] : [])]
      })
    })
    const agents = cluster.agents
    await cluster.waitConverged(30_000)
    const targets = agents.slice(0, 4).map((a) => a.id).sort()

    const started = Date.now()
    const deployed = await runCli(['deploy', CART, '--name', 'cart', '--policy', `nodes:${targets.join(',')}`, '--key', keyFile, '--cluster-key', clusterKeyFile, '--to', agents[1].http])
    assert.is(deployed.code, 0, deployed.stderr)
    const answer = JSON.parse(deployed.stdout) as { name: string; version: string; hash: string; targets: string[]; encrypted: boolean }
    assert.equal([answer.name, answer.version, answer.encrypted], ['cart', '1.0.0', true])
    assert.equal(answer.targets, targets)
    await until('all four targets advertise cart@1.0.0', async () => (await advertising(agents[4], 'cart', '1.0.0')).join() === targets.join(), 20_000)
    console.log(`deploy to 4 agents: every target advertised cart@1.0.0 ${Date.now() - started} ms after the CLI started`)

    // A session at agent4, which lacks the package: it fetches, then opens.
    const beforeOpen = Date.now()
    const far = new EdgeClient({ agents: [agents[4].http], requestTimeoutMs: 15_000, deadlineMs: 30_000 })
    const session = await far.open({ terminalId: 'kiosk-9', service: 'cart' })
    console.log(`open on an agent that had to fetch the package: ${Date.now() - beforeOpen} ms`)
    await session.append({ add: { sku: 'apple', qty: 2 } })
    await session.append({ add: { sku: 'milk', qty: 1 } })
    // The service's own validate() refuses it; nothing is logged.
    const refusedOp = await session.append({ add: { sku: 'pear', qty: 1 } }).then(() => null, (error: Error) => error.message)
    assert.match(String(refusedOp), /unknown sku "pear"/)
    const state = await session.get()
    assert.equal(state.state, { items: { apple: 2, milk: 1 }, orders: 0 })
    const held = await (await http(`${agents[4].http}/v1/packages`)).json() as { running: Array<{ name: string }> }
    assert.equal(held.running.map((r) => r.name), ['cart'])
    // At rest the package is sealed: no code in the bundle, nothing unpacked.
    const stored = join(agents[4].options.dataDir, 'packages')
    assert.not.ok(readFileSync(join(stored, `${answer.hash}.pkg`)).includes('export function'))
    assert.not.ok(existsSync(join(stored, answer.hash)))

    // The service's request handler, with the session's state, at the owner.
    const owner = (session.owner as { http: string }).http
    const total = await http(`${owner}/cart/total`, { headers: { authorization: `Bearer ${session.token}` } })
    if (total.status !== 200) console.error(`GET ${owner}/cart/total: ${total.status} ${await total.clone().text()} (session ${session.sessionId}, owner at open ${owner}, now ${JSON.stringify(session.owner)})`)
    assert.is(total.status, 200)
    assert.equal(await total.json(), { items: { apple: 2, milk: 1 }, totalCents: 205, orders: 0 })
    // With its token, a request is never load-redirected, even at the busy agent:
    // the busy agent serves it if it owns the session, else sends it to the owner.
    const atBusy = await http(`${agents[3].http}/cart/total`, { redirect: 'manual', headers: { authorization: `Bearer ${session.token}` } })
    if (agents[3].http === owner) assert.is(atBusy.status, 200)
    else assert.equal([atBusy.status, atBusy.headers.get('location')], [307, `${owner}/cart/total`])

    // agent3 is over its request limit: 307 to another agent of eu serving cart.
    const busy = await http(`${agents[3].http}/cart/catalog`, { redirect: 'manual' })
    assert.is(busy.status, 307)
    const location = busy.headers.get('location') ?? ''
    // The mark tells the agent it lands on to serve even if it is busy too.
    assert.ok(agents.some((a) => a !== agents[3] && location === `${a.http}/cart/catalog?edge-redirected=1`), location)
    const followed = await http(`${agents[3].http}/cart/catalog`)
    assert.is(followed.status, 200)
    assert.match(await (await http(`${agents[3].http}/metrics`)).text(), /edge_agent_service_redirects_total 2/)

    // A package signed by a key nobody trusts: refused with the reason, counted.
    const mallory = parseDeployerKeyFile(deployerKeyFile(generateDeployerKey()), 'mallory.key')
    const forged = buildBundle(CART, mallory, 'all', Date.now()).bundle
    const refused = await http(`${agents[2].http}/v1/packages`, { method: 'POST', body: forged })
    assert.is(refused.status, 403)
    assert.match(String(((await refused.json()) as { error: string }).error), /not in this agent's trusted deployers/)
    assert.match(await (await http(`${agents[2].http}/metrics`)).text(), /edge_agent_packages_refused_total\{reason="untrusted"\} 1/)

    // A package sealed for another cluster's key: refused by name, counted, and
    // the agent goes on serving.
    const foreign = buildBundle(CART, parseDeployerKeyFile(deployerKeyFile(key), 'deployer.key'), 'all', Date.now(), 'cart', packageKeyOf(generateClusterKey())).bundle
    const sealedElsewhere = await http(`${agents[2].http}/v1/packages`, { method: 'POST', body: foreign })
    assert.is(sealedElsewhere.status, 403)
    assert.match(String(((await sealedElsewhere.json()) as { error: string }).error), /cart@1\.0\.0 is encrypted for another cluster/)
    assert.match(await (await http(`${agents[2].http}/metrics`)).text(), /edge_agent_packages_refused_total\{reason="cluster-key"\} 1/)
    assert.is((await http(`${agents[2].http}/cart/catalog`)).status, 200)
    // A bearer that is no session token, or one of another service's session: 401 (it was 400).
    for (const bearer of ['garbage', `log:00000000000000aa~${'ab'.repeat(16)}`]) {
      const wrong = await http(`${agents[2].http}/cart/catalog`, { headers: { authorization: `Bearer ${bearer}` } })
      assert.is(wrong.status, 401, bearer)
    }

    const services = await runCli(['services', agents[0].http])
    assert.is(services.code, 0, services.stderr)
    assert.is(services.stdout.trim().split('\n').filter((l) => l.includes('cart@1.0.0')).length, 5, services.stdout)

    // The same files deployed again under another policy (unencrypted, so the
    // bytes and the hash are the same; a sealed package differs by its nonce):
    // the later announcement wins. The entry agent kept the first one.
    const plain = async (policy: string): Promise<string> => {
      const r = await runCli(['deploy', CART, '--name', 'cart', '--policy', policy, '--key', keyFile, '--to', agents[1].http])
      assert.is(r.code, 0, r.stderr)
      return (JSON.parse(r.stdout) as { hash: string }).hash
    }
    const knownPolicy = async (a: AgentProcess): Promise<string | undefined> =>
      ((await (await http(`${a.http}/v1/packages`)).json()) as { known: Array<{ name: string; policy: string }> }).known.find((k) => k.name === 'cart')?.policy
    const firstHash = await plain(`nodes:${agents[0].id}`)
    await until('the entry agent and the target know the first policy', async () => (await knownPolicy(agents[1])) === `nodes:${agents[0].id}` && (await knownPolicy(agents[0])) === `nodes:${agents[0].id}`, 20_000)
    assert.is(await plain('all'), firstHash, 'the same files, the same hash')
    await until('the entry agent and the target know the policy deployed last', async () => (await knownPolicy(agents[1])) === 'all' && (await knownPolicy(agents[0])) === 'all', 20_000)
    far.destroy()
  } catch (error) {
    for (const a of cluster?.agents ?? []) console.error(JSON.stringify((await a.members().catch(() => [])).map((m) => [m.id.slice(-6), m.status, (m as unknown as { load: unknown }).load])))
    for (const a of cluster?.agents ?? []) console.error(`--- ${a.name} ${a.id} running=${String(a.running)}\n${a.stderr.slice(-3000)}`)
    throw error
  } finally {
    await cluster?.destroy()
    rmSync(keyDir, { recursive: true, force: true })
  }
})()))

// Retiring (agent/deploy/distribution.ts) on real agents: three agents, cart
// deployed to the first two. The third runs it because a terminal opened a
// session there; once nobody there asks for it (retire after 1 s here), it
// stops offering cart but keeps running it for the copy of the session it
// holds; the session closed, it stops running it; asked again, it runs it again
// from the bundle it kept. Then one of a replicas:2 package's two holders is
// killed, and the third agent takes it up within seconds.
test('an agent that is no target drains a package, keeps it for the copies it holds, then stops it', () => withTimeout((async () => {
  const { keyDir, keyFile } = deployerKeyIn('edge-agent-retire-')
  const configFile = join(keyDir, 'config.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 }, packageRetireAfterMs: 1_000 }))
  let cluster: LocalCluster | null = null
  try {
    cluster = await LocalCluster.start({
      nodes: 3,
      // Pulls every 0.1 s, backing off to 12.8 s: every agent learns of a
      // deploy within seconds (the default backs off to 256 s).
      configure: () => ({ region: 'eu', extraArgs: ['--config', configFile, '--trusted-deployers', keyFile, '--package-pull-interval-ms', '100'] })
    })
    const agents = cluster.agents
    await cluster.waitConverged(30_000)
    const targets = agents.slice(0, 2).map((a) => a.id).sort()
    const deployed = await runCli(['deploy', CART, '--name', 'cart', '--policy', `nodes:${targets.join(',')}`, '--key', keyFile, '--to', agents[0].http])
    assert.is(deployed.code, 0, deployed.stderr)
    await until('both targets advertise cart', async () => (await advertising(agents[2], 'cart', '1.0.0')).join() === targets.join(), 20_000)
    const running = async (a: AgentProcess): Promise<Array<{ name: string; draining: boolean }>> =>
      ((await (await http(`${a.http}/v1/packages`)).json()) as { running: Array<{ name: string; draining: boolean }> }).running

    // A session opened at agent2: it fetches and runs cart, and with R = 2 on
    // three agents that offer cart, holds a copy of the session.
    const client = new EdgeClient({ agents: [agents[2].http], requestTimeoutMs: 15_000, deadlineMs: 30_000 })
    const session = await client.open({ terminalId: 'kiosk-1', service: 'cart' })
    await session.append({ add: { sku: 'apple', qty: 1 } })
    // (It offered cart from the moment it ran it, so the open placed a copy
    // here; it may have stopped offering it again already: its idle time is 1 s.)
    await until('agent2 holds a copy of the session', async () => ((await (await http(`${agents[2].http}/v1/sessions`)).json()) as { sessions: Array<{ sessionId: string }> }).sessions.some((s) => s.sessionId === session.sessionId), 20_000)

    // Nobody asks agent2 for cart any more: within its idle time (1 s) and a
    // check (5 s) it stops offering cart, and runs it on for its copy.
    await until('agent2 drains cart', async () => (await running(agents[2])).some((r) => r.name === 'cart' && r.draining), 30_000)
    await until('agent2 no longer advertises cart', async () => (await advertising(agents[0], 'cart', '1.0.0')).join() === targets.join(), 20_000)
    await session.append({ add: { sku: 'milk', qty: 2 } })
    assert.equal((await session.get()).state, { items: { apple: 1, milk: 2 }, orders: 0 })
    assert.equal((await running(agents[2])).map((r) => r.name), ['cart'], 'still running for the copy it holds')

    // The session closed, agent2 holds no copy: it stops running cart.
    await session.close()
    await until('agent2 stops running cart', async () => (await running(agents[2])).length === 0, 30_000)
    assert.match(await (await http(`${agents[2].http}/metrics`)).text(), /edge_agent_packages_retired_total 1/)
    assert.ok(agents[2].events.some((e) => e.event === 'package-retired' && (e as { name?: string }).name === 'cart'), 'a package-retired line')
    // The targets never drain.
    for (const a of agents.slice(0, 2)) assert.equal((await running(a)).map((r) => [r.name, r.draining]), [['cart', false]], a.name)
    // Asked again by URL: it runs cart again from the bundle it kept.
    const again = await http(`${agents[2].http}/cart/catalog`)
    assert.is(again.status, 200)
    assert.equal((await running(agents[2])).map((r) => [r.name, r.draining]), [['cart', false]])
    client.destroy()

    // replicas:2: two agents run "shop". One is killed, and the third takes it
    // up within seconds (membership's verdict, then a step a second after the
    // table changed), fetching it from the other. (With replicas:1 the killed
    // agent can hold the only copy: the one it was handed to deploy.)
    const shopDir = join(keyDir, 'shop')
    mkdirSync(shopDir)
    for (const file of ['cart.js', 'catalog.js']) writeFileSync(join(shopDir, file), readFileSync(join(CART, file)))
    writeFileSync(join(shopDir, 'manifest.json'), JSON.stringify({ name: 'shop', version: '1.0.0', entry: 'cart.js' }))
    const shop = await runCli(['deploy', shopDir, '--name', 'shop', '--policy', 'replicas:2', '--key', keyFile, '--to', agents[0].http])
    assert.is(shop.code, 0, shop.stderr)
    const holders = (JSON.parse(shop.stdout) as { targets: string[] }).targets.sort()
    await until('both targets advertise shop', async () => (await advertising(agents[0], 'shop', '1.0.0')).join() === holders.join(), 20_000)
    const third = agents.find((a) => !holders.includes(a.id))!
    // The third agent learns of shop by pull first.
    await until('the third agent knows shop', async () => ((await (await http(`${third.http}/v1/packages`)).json()) as { known: Array<{ name: string }> }).known.some((k) => k.name === 'shop'), 30_000)
    const victim = agents.find((a) => a.id === holders[0])!
    const killedAt = Date.now()
    victim.signal('SIGKILL')
    await until('the third agent advertises shop', async () => (await advertising(third, 'shop', '1.0.0')).includes(third.id), 15_000)
    console.log(`replicas:2: the third agent advertised shop ${Date.now() - killedAt} ms after a holder's SIGKILL`)
  } catch (error) {
    for (const a of cluster?.agents ?? []) console.error(`--- ${a.name} ${a.id} running=${String(a.running)}\n${a.stderr.slice(-3000)}`)
    throw error
  } finally {
    await cluster?.destroy()
    rmSync(keyDir, { recursive: true, force: true })
  }
})()))

test.run()
