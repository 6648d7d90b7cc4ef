// Seed sweep for sessions (sim/chaos.ts): small clusters, terminals appending
// while nodes crash and restart, freeze and resume, get partitioned and lose
// messages; then every fault heals and every terminal must finish. Checkers: no
// acknowledged delta lost, none duplicated, order kept, at most one owner
// acknowledging per session epoch, service resumed.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { runChaos } from '../../sim/chaos.ts'

const FILE = 'test/sim/sessions-sweep.test.ts'
const SEEDS = Number(process.env.SEEDS ?? 200)
const FIRST_SEED = Number(process.env.SEED ?? 1)

test(`${SEEDS} seeds from ${FIRST_SEED}: nothing acknowledged lost or duplicated, order kept, one owner per epoch, service resumes`, () => {
  const failures: string[] = []
  for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
    const result = runChaos(seed)
    if (result.problems.length > 0) failures.push(`SEED=${seed} (${result.nodes} nodes; replay: SEED=${seed} SEEDS=1 node ${FILE}):\n      ${result.problems.join('\n      ')}`)
  }
  assert.equal(failures, [], `${failures.length} of ${SEEDS} seeds failed`)
})

test.run()
