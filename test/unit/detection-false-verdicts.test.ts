// The detection benchmark's count of false `dead` verdicts (bench/detection-real.ts):
// verdicts about agents never killed or frozen, split into start-up and after
// convergence, counted per observer and as distinct member-incarnations.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { falseVerdicts } from '../../bench/detection-real.ts'
import type { AgentProcess } from '../../sim/processes.ts'

type Line = { event: string; atMs: number; [key: string]: unknown }
const dead = (id: string, incarnation: number, atMs: number): Line => ({ event: 'member', id, status: 'dead', incarnation, atMs })
const agent = (name: string, events: Line[]): AgentProcess => ({ name, events }) as unknown as AgentProcess

test('false verdicts are split at convergence, counted per observer and as distinct member-incarnations', () => {
  const processes = [
    agent('agent0', [dead('b', 1, 500), dead('c', 2, 2_000), dead('victim', 1, 3_000), { event: 'member', id: 'c', status: 'suspect', atMs: 2_100 }]),
    agent('agent1', [dead('b', 1, 600), dead('c', 2, 2_050), dead('c', 3, 9_000)]),
    // The restarted victim judging c dead 5 s after its restart, and much later.
    agent('victim', [dead('c', 3, 9_100), dead('c', 4, 60_000)])
  ]
  const counted = falseVerdicts(processes, new Set(['victim']), 1_000, new Map([['victim', [4_100]]]))
  assert.equal(counted, { total: 7, startUp: 2, afterConvergence: 5, distinctAfterConvergence: 3, byResumedVictims: 1 })
})

test('no false verdict counts zero everywhere', () => {
  const counted = falseVerdicts([agent('agent0', [dead('victim', 1, 5_000)])], new Set(['victim']), 0, new Map())
  assert.equal(counted, { total: 0, startUp: 0, afterConvergence: 0, distinctAfterConvergence: 0, byResumedVictims: 0 })
})

test.run()
