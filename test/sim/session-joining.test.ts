// A restarted agent, asked about a session held elsewhere the moment it is back,
// before any member has answered its join: it says it has not joined (503),
// never "no such session"; once joined, a few ms later, it finds the session.
// Before directory.joining(), 20 seeds of 20 answered 404 here.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { RequestOutcome } from '../../sim/cluster.ts'
import { seedFor, withSeed } from './helpers.ts'
import { openTerminal, sessionCluster } from './session-helpers.ts'

const FILE = 'test/sim/session-joining.test.ts'
const SEEDS = 20

test(`${SEEDS} seeds: a restarted agent asked at once answers 503 "not joined", then finds the session`, () => {
  const first = seedFor(1)
  for (let seed = first; seed < first + SEEDS; seed++) {
    withSeed(FILE, seed, () => {
      const cluster = sessionCluster(seed, 5)
      const t = openTerminal(cluster, 'term', cluster.ids[0])
      let appended = false
      t.appendMany(3, 5, () => { appended = true })
      assert.ok(cluster.runUntil(() => appended, 10_000))
      const outsider = cluster.ids.find((id) => !t.queue.includes(id) && id !== t.owner)
      assert.ok(outsider !== undefined, 'an agent outside the session\'s group')
      cluster.crash(outsider)
      cluster.run(3_000)
      cluster.restart(outsider)
      const ask = (): RequestOutcome => {
        let outcome: RequestOutcome | null = null
        cluster.request(outsider, { type: 'resume', sessionId: t.sessionId, tokenHash: t.tokenHash }, (o) => { outcome = o })
        assert.ok(cluster.runUntil(() => outcome !== null, 10_000))
        return outcome as unknown as RequestOutcome
      }
      const atOnce = ask()
      assert.is(atOnce.status, 503, JSON.stringify(atOnce.body))
      assert.match(String(atOnce.body.error), /not joined its cluster/)
      cluster.run(500)
      const joined = ask()
      assert.is(joined.status, 200, JSON.stringify(joined.body))
      assert.is((joined.body as Record<string, unknown>).sessionId, t.sessionId)
    })
  }
})

test.run()
