// A full disk under one agent, on real agents: four `edge-agent start` processes
// on 127.0.0.1, one of them (the victim) with its data directory on a 16 MiB
// tmpfs of its own (root only: elsewhere the test prints that it is skipped, as
// sim-netns.test.ts does). Terminals append to sessions the victim owns and to
// sessions it is a standby of; then the tmpfs is filled. The victim's store
// fails: it says so (a `store-failed` line), leaves its cluster (the others
// record it `left`, not dead) and exits 3. Its sessions are taken over, every
// group is repaired to three members without it, every acknowledged append is
// present once, in order, and new sessions open and append. With the space
// freed, the victim starts again on its data directory (as its service manager
// would), rejoins, its store passes `edge-agent check`, and it holds copies
// again. A second test deploys a package to an agent whose disk is full: it is
// refused as 'storage' (HTTP 507, the reason named), nothing half-written stays,
// the agent carries on, and the same deploy succeeds once there is room. Before the agent left on a failed store, the victim stayed a member
// whose copies answered nothing: its standbys waited out ownerTimeoutMs and a
// diagnosis, its owners' writes stalled memberStaleMs, new groups went on
// placing copies there (opens waited 2.2 s), and it never came back without a
// restart by hand.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import type { Session } from '../../agent/client/index.ts'
import { deployerKeyFile, generateDeployerKey } from '../../agent/runtime/package.ts'
import { AgentProcess, LocalCluster, runCli } from '../../sim/processes.ts'
import { ContinuousWriter, roleIn, waitGroupRepaired } from '../../sim/writer.ts'
import { within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 150_000
const VICTIM = 1

// A tmpfs of `sizeMiB` at `dir`, or why one cannot be mounted here.
function mountTmpfs (dir: string, sizeMiB: number): string | null {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root'
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' })
    return null
  } catch (error) {
    return `cannot mount a tmpfs: ${(error as Error).message.split('\n')[0]}`
  }
}

// A temporary directory with a 16 MiB tmpfs at <dir>/small, or null (and a
// line saying why the test is skipped) where none can be mounted.
function smallDisk (): { dir: string; small: string } | null {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-diskfull-'))
  const small = join(dir, 'small')
  mkdirSync(small)
  const unavailable = mountTmpfs(small, 16)
  if (unavailable === null) return { dir, small }
  console.log(`\nskip: ${unavailable}`)
  rmSync(dir, { recursive: true, force: true })
  return null
}

function removeSmallDisk (disk: { dir: string; small: string }): void {
  try {
    execFileSync('umount', [disk.small], { stdio: 'pipe' })
  } catch {
    // Already gone.
  }
  rmSync(disk.dir, { recursive: true, force: true })
}

test('an agent whose disk fills leaves its cluster and exits 3; its sessions carry on elsewhere and lose nothing; it rejoins once the disk has room', () => within((async () => {
  const disk = smallDisk()
  if (disk === null) return
  const { dir, small } = disk
  const configFile = join(dir, 'config.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  let cluster: LocalCluster | null = null
  const writers: ContinuousWriter[] = []
  try {
    cluster = await LocalCluster.start({
      nodes: 4,
      services: 'log',
      configure: (i) => ({ extraArgs: ['--config', configFile], ...(i === VICTIM ? { dataDir: join(small, 'agent') } : {}) })
    })
    await cluster.waitConverged(30_000)
    const agents = cluster.agents
    const victim = agents[VICTIM]
    const client = new EdgeClient({ agents: agents.map((a) => a.http), requestTimeoutMs: 3_000, deadlineMs: 30_000 })

    // Sessions until the victim owns one and is a standby of another, and a few more.
    const sessions: Session[] = []
    for (let i = 0; i < 40; i++) {
      const roles = sessions.map((s) => roleIn(s, victim.id))
      if (roles.includes('owner') && roles.includes('standby') && sessions.length >= 6) break
      const session = await client.open({ terminalId: `kiosk-${i}`, service: 'log' })
      await session.append({ append: 'first' })
      sessions.push(session)
    }
    const roles = sessions.map((s) => roleIn(s, victim.id))
    assert.ok(roles.includes('owner') && roles.includes('standby'), `the victim's roles: ${roles.join(', ')}`)
    for (const [i, session] of sessions.entries()) writers.push(new ContinuousWriter(session, `s${i}-`, 10))
    await Promise.all(writers.map(async (w) => await w.waitFor(5)))
    const ackedBefore = writers.map((w) => w.acked.length)

    // Fill the victim's disk; its next writes need room.
    fill(small)
    const failed = await victim.waitFor((e) => e.event === 'store-failed', 30_000)
    assert.match(String(failed.error), /full/, 'the line names the cause')
    const code = await within(victim.exited, 15_000)
    assert.is(code, 3, `the victim's exit code (stderr: ${victim.stderr.slice(-500)})`)
    assert.match(victim.stderr, /session store failed/)
    for (const agent of agents.filter((a) => a !== victim)) {
      const seen = (await agent.members()).find((m) => m.id === victim.id)?.status
      assert.is(seen, 'left', `${agent.name} records the victim as left`)
    }

    // Every session carries on without it: more appends, groups repaired.
    await Promise.all(writers.map(async (w, i) => await w.waitFor(ackedBefore[i] + 20)))
    for (const session of sessions) await waitGroupRepaired(session, [victim.id], 3, 30_000)
    for (const session of sessions) assert.is(roleIn(session, victim.id), null)
    const opened = await client.open({ terminalId: 'kiosk-new', service: 'log' })
    await opened.append({ append: 'after' })
    assert.is(roleIn(opened, victim.id), null, 'no new group places a copy on the agent that left')

    // Room again: the victim starts on its data directory and rejoins.
    rmSync(join(small, 'fill'))
    const checked = await runCli(['check', '--data-dir', victim.options.dataDir])
    assert.is(checked.code, 0, `edge-agent check after the failure: ${checked.stdout}${checked.stderr}`)
    const back = await cluster.restart(VICTIM)
    await cluster.waitConverged(30_000)
    const later: Session[] = []
    for (let i = 0; i < 40 && !later.some((s) => roleIn(s, back.id) !== null); i++) {
      const session = await client.open({ terminalId: `kiosk-later-${i}`, service: 'log' })
      await session.append({ append: 'later' })
      later.push(session)
    }
    assert.ok(later.some((s) => roleIn(s, back.id) !== null), 'the restarted agent holds copies again')

    for (const writer of writers) await writer.stop()
    for (const [i, writer] of writers.entries()) {
      assert.is(writer.error, null, `writer ${i}: ${writer.error?.message}`)
      assert.equal(await writer.check(), [], `session ${i}`)
    }
  } finally {
    for (const writer of writers) writer.stopped = true
    await cluster?.destroy()
    removeSmallDisk(disk)
  }
})(), TIMEOUT_MS))

function fill (dir: string): void {
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'fill')}`, 'bs=1M', 'count=64'], { stdio: 'pipe' })
  } catch {
    // dd stops at ENOSPC, as meant.
  }
}

test('a package deployed to an agent whose disk is full is refused as storage (507), leaves nothing half-written, and is stored once there is room', () => within((async () => {
  const disk = smallDisk()
  if (disk === null) return
  const { dir, small } = disk
  const keyFile = join(dir, 'deployer.key')
  writeFileSync(keyFile, deployerKeyFile(generateDeployerKey()), { mode: 0o600 })
  const cart = new URL('../../examples/cart', import.meta.url).pathname
  const dataDir = join(small, 'agent')
  let agent: AgentProcess | null = null
  try {
    agent = await AgentProcess.start({ name: 'full', dataDir, services: 'log', extraArgs: ['--trusted-deployers', keyFile] })
    fill(small)
    const refused = await runCli(['deploy', cart, '--name', 'cart', '--policy', 'all', '--key', keyFile, '--to', agent.http])
    assert.is(refused.code, 1, refused.stdout)
    assert.match(refused.stderr, /507/)
    assert.match(refused.stderr, /cannot store cart@.*ENOSPC/)
    const metrics = await (await fetch(`${agent.http}/metrics`)).text()
    assert.match(metrics, /edge_agent_packages_refused_total\{reason="storage"\} 1/)
    assert.equal(readdirSync(join(dataDir, 'packages')).filter((name) => name.endsWith('.tmp')), [], 'nothing half-written')
    const packages = await (await fetch(`${agent.http}/v1/packages`)).json() as { running: unknown[] }
    assert.is(packages.running.length, 0)
    assert.ok(agent.running, 'the agent carries on')

    rmSync(join(small, 'fill'))
    const deployed = await runCli(['deploy', cart, '--name', 'cart', '--policy', 'all', '--key', keyFile, '--to', agent.http])
    assert.is(deployed.code, 0, deployed.stderr)
    const deadline = Date.now() + 20_000
    for (;;) {
      const now = await (await fetch(`${agent.http}/v1/packages`)).json() as { running: unknown[] }
      if (now.running.length === 1) break
      if (Date.now() > deadline) throw new Error('cart does not run after the second deploy')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  } finally {
    agent?.signal('SIGKILL')
    await agent?.exited
    removeSmallDisk(disk)
  }
})(), TIMEOUT_MS))

test.run()
