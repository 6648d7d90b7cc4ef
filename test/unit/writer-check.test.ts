// ContinuousWriter.check() (sim/writer.ts) while the writer keeps appending: an
// append acknowledged while the read is under way may be missing from what the
// read returns (on real agents its small answer can overtake the read's, which
// carries the whole state), and must not be reported lost; one acknowledged
// before the read went out must be reported when missing.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Session } from '../../agent/client/index.ts'
import { ContinuousWriter } from '../../sim/writer.ts'

type Log = { values: string[] }

// A log session held in memory. `get()` reads the state when it is called and
// answers only once `holdReadUntilAcked` more appends have been acknowledged.
function fakeSession (log: Log, holdReadUntilAcked: number, dropFromRead: string | null = null): Session {
  let acked = 0
  const waiting: Array<() => void> = []
  const session = {
    async append (op: { append: string }) {
      await new Promise((resolve) => setImmediate(resolve))
      log.values.push(op.append)
      acked++
      for (const wake of waiting.splice(0)) wake()
      return { index: log.values.length, epoch: 1 }
    },
    async get () {
      const state = log.values.filter((v) => v !== dropFromRead)
      const target = acked + holdReadUntilAcked
      while (acked < target) await new Promise<void>((resolve) => { waiting.push(resolve) })
      return { state, index: state.length, epoch: 1, lastClientSeq: state.length }
    }
  }
  return session as unknown as Session
}

async function writerWith (session: Session, count: number): Promise<ContinuousWriter> {
  const writer = new ContinuousWriter(session, 'v')
  await writer.waitFor(count, 10_000)
  return writer
}

test('an append acknowledged while the read is under way is not reported missing', async () => {
  const writer = await writerWith(fakeSession({ values: [] }, 3), 10)
  try {
    assert.equal(await writer.check(), [])
  } finally {
    await writer.stop()
  }
})

test('an append acknowledged before the read went out, and missing from it, is reported', async () => {
  const log = { values: [] as string[] }
  const writer = await writerWith(fakeSession(log, 3, 'v5'), 10)
  try {
    assert.equal(await writer.check(), ['acknowledged v5 is missing'])
  } finally {
    await writer.stop()
  }
})

test.run()
