// The wall clock of one box steps, on real agents: three `edge-agent start`
// processes on 127.0.0.1, the third under libfaketime (Debian's `faketime`),
// whose wall clock (Date.now, CLOCK_REALTIME) then jumps a day ahead, back,
// a day behind and back, while terminals append to sessions all three hold. A
// box without a real-time clock boots with a wrong time and NTP steps it later;
// an operator sets the date by hand. The agents time everything that matters
// (probes, leases, heartbeats, timeouts, redial backoff, stalled streams) on the
// monotonic clock, which libfaketime leaves alone here (DONT_FAKE_MONOTONIC),
// as NTP does: nobody may be declared dead, the appends carry on through
// every step, and every acknowledged append is present once, in order.
// Where libfaketime is missing the test prints that it is skipped.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import type { Session } from '../../agent/client/index.ts'
import { LocalCluster } from '../../sim/processes.ts'
import { ContinuousWriter } from '../../sim/writer.ts'
import { within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 120_000
const STEPPED = 2
const PHASE_MS = 5_000
const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) => existsSync(p)) ?? null

test('one box\'s wall clock steps a day ahead and a day behind: nobody is declared dead, appends carry on through every step, nothing lost', () => within((async () => {
  if (LIBFAKETIME === null) {
    console.log('\nskip: libfaketime is not installed (Debian package faketime)')
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-clockstep-'))
  const offsetFile = join(dir, 'offset')
  writeFileSync(offsetFile, '+0\n')
  // `env` execs the agent in place: its pid is the agent's.
  const wrap = ['env', `LD_PRELOAD=${LIBFAKETIME}`, `FAKETIME_TIMESTAMP_FILE=${offsetFile}`, 'FAKETIME_NO_CACHE=1', 'DONT_FAKE_MONOTONIC=1']
  let cluster: LocalCluster | null = null
  const writers: ContinuousWriter[] = []
  try {
    cluster = await LocalCluster.start({ nodes: 3, services: 'log', configure: (i) => i === STEPPED ? { wrap } : {} })
    await cluster.waitConverged(30_000)
    const agents = cluster.agents
    const stepped = agents[STEPPED]
    const client = new EdgeClient({ agents: agents.map((a) => a.http), requestTimeoutMs: 3_000, deadlineMs: 30_000 })
    const sessions: Session[] = []
    for (let i = 0; i < 6; i++) sessions.push(await client.open({ terminalId: `kiosk-${i}`, service: 'log' }))
    for (const [i, session] of sessions.entries()) writers.push(new ContinuousWriter(session, `s${i}-`, 20))
    await Promise.all(writers.map(async (w) => await w.waitFor(5)))
    const t0 = Date.now()
    for (const [offset, days] of [['+1d', 1], ['+0', 0], ['-1d', -1], ['+0', 0]] as const) {
      writeFileSync(offsetFile, `${offset}\n`)
      const counts = writers.map((w) => w.acked.length)
      await new Promise((resolve) => setTimeout(resolve, 500))
      // The step is real: the stepped agent's HTTP answers are dated by its clock.
      const dated = Date.parse((await fetch(`${stepped.http}/v1/members`)).headers.get('date') ?? '')
      const expected = Date.now() + days * 86_400_000
      assert.ok(Math.abs(dated - expected) < 60_000, `the stepped agent's clock at ${offset}: ${new Date(dated).toISOString()}`)
      await new Promise((resolve) => setTimeout(resolve, PHASE_MS - 500))
      for (const [i, writer] of writers.entries()) {
        assert.is(writer.error, null, `writer ${i} (clock ${offset}): ${writer.error?.message}`)
        assert.ok(writer.acked.length - counts[i] >= 20, `session ${i}: ${writer.acked.length - counts[i]} appends in ${PHASE_MS} ms with the clock at ${offset}`)
      }
    }
    assert.ok(stepped.running, 'the stepped agent runs')
    for (const agent of agents) {
      const dead = agent.events.filter((e) => e.event === 'member' && e.atMs >= t0 - 86_400_000 * 2 && (e.status === 'dead' || e.status === 'left'))
      assert.equal(dead.map((e) => `${String(e.id)} ${String(e.status)}`), [], `${agent.name} declared nobody dead`)
    }
    for (const writer of writers) await writer.stop()
    for (const [i, writer] of writers.entries()) assert.equal(await writer.check(), [], `session ${i}`)
  } finally {
    for (const writer of writers) writer.stopped = true
    await cluster?.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
})(), TIMEOUT_MS))

test.run()
