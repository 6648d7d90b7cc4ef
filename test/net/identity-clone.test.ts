// Two boxes given one data directory (a disk image copied with
// /var/lib/edge-agent in it), on real agents on 127.0.0.1: they share one
// identity. The first to join takes the id; the second's join is heard but
// never answered (every peer sends that id's frames on the first connection it
// holds), and before identity-watch.ts it sat "joining" for good, saying
// nothing. Now it finds its id listed as another node's in a bootstrap peer's
// table, says where that node is (an `identity-conflict` line, and stderr), and
// exits 4; the first carries on, and the second, its data directory emptied,
// joins under an identity of its own.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AgentProcess } from '../../sim/processes.ts'
import { within } from '../fixtures/timeout.ts'

const TIMEOUT_MS = 90_000

test('a second box with a copy of a data directory stops with exit 4, naming the first; emptied, it joins as itself', () => within((async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-clone-'))
  const agents: AgentProcess[] = []
  try {
    const start = async (name: string, bootstrap: string[]): Promise<AgentProcess> => {
      const agent = await AgentProcess.start({ name, dataDir: join(dir, name), services: 'log', bootstrap })
      agents.push(agent)
      return agent
    }
    const c = await start('c', [])
    // The image: an agent that ran once and stopped.
    const once = await start('a', c.addrs)
    await once.stop()
    cpSync(join(dir, 'a'), join(dir, 'b'), { recursive: true })
    const a = await start('a', c.addrs)
    const aliveAt = async (agent: AgentProcess, id: string, http: string): Promise<boolean> =>
      (await agent.members().catch(() => [])).some((m) => m.id === id && m.status === 'alive' && (m as unknown as { http: string }).http === http)
    for (let i = 0; !(await aliveAt(c, a.id, a.http)); i++) {
      if (i > 200) throw new Error('a did not join')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const b = await start('b', c.addrs)
    assert.is(b.id, a.id, 'the copy has the same identity')
    const conflict = await b.waitFor((e) => e.event === 'identity-conflict', 30_000)
    assert.is((conflict.other as { http: string }).http, a.http, 'it names where the other is')
    assert.is(await within(b.exited, 15_000), 4)
    assert.match(b.stderr, new RegExp(`another node signs with this agent's identity .*${a.http.replace(/[.:/]/g, '\\$&')}`))
    assert.match(b.stderr, /empty its data directory/)
    // The first carries on, and is the one its peers know.
    assert.ok(a.running)
    assert.ok(await aliveAt(c, a.id, a.http))
    assert.is(a.events.filter((e) => e.event === 'identity-conflict').length, 0)

    // Emptied, the second box starts under an identity of its own and joins.
    rmSync(join(dir, 'b'), { recursive: true, force: true })
    const fresh = await start('b', c.addrs)
    assert.is.not(fresh.id, a.id)
    for (let i = 0; !(await aliveAt(c, fresh.id, fresh.http)); i++) {
      if (i > 400) throw new Error('the emptied box did not join')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  } finally {
    await Promise.all(agents.map(async (agent) => {
      agent.signal('SIGKILL')
      await agent.exited
    }))
    rmSync(dir, { recursive: true, force: true })
  }
})(), TIMEOUT_MS))

test.run()
