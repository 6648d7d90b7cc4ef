// A slow disk under one agent, on real agents: four `edge-agent start`
// processes on 127.0.0.1, one of them (the slow one) started under strace,
// which delays every fsync and fdatasync it makes by 200 ms (a worn SD card).
// Needs strace (Debian's `strace`) and leave to ptrace its own children:
// elsewhere the test prints that it is skipped, as disk-full.test.ts does.
//
// Terminals append to sessions the slow agent owns and to sessions it is a
// standby of. The slow agent finds its disk slow (a `disk-slow` line), hands
// every session it owns to a member that keeps up (`resigned`), and owns none
// after; every session's writes are then as fast as in groups without it
// (before: ~400 ms each, two of its fsyncs, in every group that held a copy
// there), and every acknowledged append is present once, in order.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import type { Session } from '../../agent/client/index.ts'
import { sessionsProfile } from '../../agent/sessions/config.ts'
import { LocalCluster } from '../../sim/processes.ts'
import { slowFsyncUnavailable, slowFsyncWrap } from '../../sim/slow-fsync.ts'
import { ContinuousWriter, roleIn } from '../../sim/writer.ts'
import { within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 120_000
const SLOW = 3
const DELAY_MS = 200
const WRAP = slowFsyncWrap(DELAY_MS)

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

test(`an agent whose fsyncs take ${DELAY_MS} ms hands the sessions it owns to members that keep up; no group's writes wait for its disk; nothing lost`, () => within((async () => {
  const unavailable = slowFsyncUnavailable()
  if (unavailable !== null) {
    console.log(`\nskip: ${unavailable}`)
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-slowdisk-'))
  const configFile = join(dir, 'config.json')
  writeFileSync(configFile, JSON.stringify({ sessions: { loadThreshold: 1 } }))
  let cluster: LocalCluster | null = null
  const writers: ContinuousWriter[] = []
  try {
    cluster = await LocalCluster.start({
      nodes: 4,
      services: 'log',
      configure: (i) => ({ extraArgs: ['--config', configFile], ...(i === SLOW ? { wrap: WRAP } : {}) })
    })
    await cluster.waitConverged(30_000)
    const agents = cluster.agents
    const slow = agents[SLOW]
    // Terminals reach the agents with fast disks; the slow one is found through them.
    const client = new EdgeClient({ agents: agents.filter((a) => a !== slow).map((a) => a.http), requestTimeoutMs: 5_000, deadlineMs: 30_000 })
    const sessions: Session[] = []
    for (let i = 0; i < 40; i++) {
      const roles = sessions.map((s) => roleIn(s, slow.id))
      if (roles.filter((r) => r === 'owner').length >= 2 && roles.includes('standby') && sessions.length >= 6) break
      sessions.push(await client.open({ terminalId: `kiosk-${i}`, service: 'log' }))
    }
    const owned = sessions.filter((s) => roleIn(s, slow.id) === 'owner')
    assert.ok(owned.length >= 2 && sessions.some((s) => roleIn(s, slow.id) === 'standby'), `the slow agent's roles: ${sessions.map((s) => roleIn(s, slow.id)).join(', ')}`)
    for (const [i, session] of sessions.entries()) writers.push(new ContinuousWriter(session, `s${i}-`, 20))

    const found = await slow.waitFor((e) => e.event === 'disk-slow', 30_000)
    assert.ok(Number(found.medianMs) >= DELAY_MS * 0.9, `the median fsync it found: ${String(found.medianMs)} ms`)
    for (const session of owned) await slow.waitFor((e) => e.event === 'resigned' && e.sessionId === session.sessionId, 20_000)
    // Every session's owner has a fast disk now; measure from here.
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const from = Date.now()
    const counts = writers.map((w) => w.acked.length)
    await Promise.all(writers.map(async (w, i) => await w.waitFor(counts[i] + 60, 30_000)))
    const held = await (await fetch(`${slow.http}/v1/sessions`)).json() as { sessions: Array<{ role: string }> }
    const story = slow.events.filter((e) => ['promoted', 'demoted', 'resigned', 'election-started', 'disk-slow', 'disk-ok'].includes(e.event)).map((e) => `${e.event} ${String(e.sessionId ?? '')} ${String(e.epoch ?? e.medianMs ?? '')}`)
    assert.is(held.sessions.filter((s) => s.role === 'owner').length, 0, `the slow agent owns no session; what it did: ${story.join('; ')}`)
    const metrics = await (await fetch(`${slow.http}/metrics`)).text()
    assert.match(metrics, /^edge_agent_disk_slow 1$/m)
    assert.match(metrics, new RegExp(`^edge_agent_session_resignations_total ${owned.length}$`, 'm'))

    for (const [i, writer] of writers.entries()) {
      const after = writer.acked.filter((a) => a.atMs > from).map((a) => a.latencyMs)
      // Before, every write of a group holding a copy on the slow agent took
      // two of its fsyncs (~400 ms); a fast group's median is a few ms.
      assert.ok(median(after) < DELAY_MS / 2, `session ${i} (${roleIn(sessions[i], slow.id) ?? 'without it'} at first): median write ${median(after)} ms over ${after.length}`)
      assert.ok(roleIn(writer.session, slow.id) !== 'owner', `session ${i} is not owned by the slow agent`)
    }
    const config = sessionsProfile('lan')
    assert.ok(config.slowFsyncMs < DELAY_MS, 'the default slowFsyncMs calls this disk slow')

    for (const writer of writers) await writer.stop()
    for (const [i, writer] of writers.entries()) {
      assert.is(writer.error, null, `writer ${i}: ${writer.error?.message}`)
      assert.equal(await writer.check(), [], `session ${i}`)
    }
  } finally {
    for (const writer of writers) writer.stopped = true
    await cluster?.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
})(), TIMEOUT_MS))

test.run()
