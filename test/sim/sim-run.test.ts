// `edge-agent sim` in virtual time: the same seed gives the same bytes; every
// built-in scenario passes its checkers at small N; a core broken on purpose is
// caught; bad scenario files are refused with a reason; the CLI prints the
// replay line, the table, the JSON and the report.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runVirtual } from '../../sim/runner.ts'
import { loadScenario, parseScenario, ScenarioError, scenarioNames } from '../../sim/scenarios.ts'
import { seedFor, withSeed } from './helpers.ts'

const FILE = 'test/sim/sim-run.test.ts'
const CLI = new URL('../../bin/edge-agent.ts', import.meta.url).pathname

function small (name: string, nodes: number, durationS: number) {
  const scenario = loadScenario(name, null)
  scenario.nodes = nodes
  scenario.durationS = durationS
  scenario.workload.terminals = Math.min(scenario.workload.terminals, 6)
  return scenario
}

function cli (args: string[]): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [CLI, 'sim', ...args], { encoding: 'utf8', timeout: 120_000 })
  return { code: run.status, stdout: run.stdout, stderr: run.stderr }
}

test('the same seed gives the same result, byte for byte; another seed another', () => withSeed(FILE, seedFor(50), (seed) => {
  const a = JSON.stringify(runVirtual({ seed, scenario: small('demo', 5, 15) }))
  const b = JSON.stringify(runVirtual({ seed, scenario: small('demo', 5, 15) }))
  const c = JSON.stringify(runVirtual({ seed: seed + 1, scenario: small('demo', 5, 15) }))
  assert.is(a, b)
  assert.is.not(a, c)
}))

for (const name of scenarioNames()) {
  test(`built-in scenario ${name} passes its checkers at small N`, () => withSeed(FILE, seedFor(51), (seed) => {
    const scenario = name === 'scale' ? small(name, 40, 15) : small(name, name === 'demo' ? 5 : 8, name === 'demo' ? 30 : 20)
    const result = runVirtual({ seed, scenario })
    const failed = result.checkers.filter((c) => !c.ok).map((c) => `${c.name}: ${c.problems.join('; ')}`)
    assert.equal(failed, [], `${name} seed ${seed}`)
    assert.ok(result.faults.length > 0, 'faults were applied')
    assert.ok(result.deltas.acknowledged > 0, 'terminals were served')
  }))
}

test('a core that acknowledges before replicating is caught by the lost-delta checker', () => withSeed(FILE, seedFor(52), (seed) => {
  const scenario = small('demo', 5, 30)
  scenario.workload.deltaIntervalMs = 5
  // Slow links widen the window between an acknowledgement and its replication.
  scenario.link = { lossRate: 0, delayMinMs: 20, delayMaxMs: 40 }
  // The planted bug loses a delta only when an owner dies inside the window
  // between its acknowledgement and its replication, which one run may not hit
  // (seed 52 alone stopped hitting it when membership timings changed): the
  // checker must catch it within a few consecutive seeds.
  const seeds = [seed, seed + 1, seed + 2, seed + 3]
  const caughtBy = seeds.find((s) => {
    const broken = runVirtual({ seed: s, scenario, plantedFault: 'ack-before-replication' })
    const lost = broken.checkers.find((c) => c.name.startsWith('no acknowledged delta lost'))
    return lost !== undefined && !lost.ok && !broken.ok
  })
  assert.ok(caughtBy !== undefined, `the checker caught it with one of seeds ${seeds.join(', ')}`)
  assert.ok(runVirtual({ seed: caughtBy, scenario }).ok, `and the real core passes the same run (seed ${caughtBy})`)
}))

test('scenario files: every field checked, refusals name the field', () => {
  const bad: Array<[unknown, RegExp]> = [
    [[], /must be a JSON object/],
    [{ nodes: 0 }, /nodes must be between 1/],
    [{ nodes: 2.5 }, /nodes must be a whole number/],
    [{ bogus: 1 }, /unknown key 'bogus'/],
    [{ faults: [{ atS: 1, fault: 'explode' }] }, /faults\[0\]\.fault/],
    [{ faults: [{ atS: 1, fault: 'loss' }] }, /needs "rate"/],
    [{ random: { everyS: 1, faults: [] } }, /at least one/],
    [{ placement: { services: ['kv'] } }, /must include 'log'/],
    [{ link: { delayMinMs: 10, delayMaxMs: 5 } }, /below link.delayMinMs/]
  ]
  for (const [json, pattern] of bad) {
    try {
      parseScenario(json, 'f')
      assert.unreachable(`accepted ${JSON.stringify(json)}`)
    } catch (error) {
      assert.instance(error, ScenarioError)
      assert.match((error as Error).message, pattern)
    }
  }
  const ok = parseScenario({ nodes: 4, durationS: 5, faults: [{ atS: 1, fault: 'crash', target: 'n1' }] }, 'mine')
  assert.equal([ok.name, ok.nodes, ok.faults.length], ['mine', 4, 1])
})

test('CLI: a run that needs more heap than the limit re-runs itself with a larger one, same result', () => {
  // A 256 MiB old space (~450 MiB heap limit) is below the 512 MiB floor of the estimate, so even a
  // small run takes the re-run path (10,000 nodes do the same with the default).
  const run = spawnSync(process.execPath, ['--max-old-space-size=256', CLI, 'sim', '--nodes', '5', '--duration', '5', '--seed', '3', '--json'], { encoding: 'utf8', timeout: 120_000 })
  assert.is(run.status, 0, run.stderr)
  assert.match(run.stderr, /re-running with --max-old-space-size=768/)
  assert.is(run.stderr.split('\n').filter((line) => line.startsWith('edge-agent sim --scenario')).length, 1, 'the child prints the replay line once')
  const direct = cli(['--nodes', '5', '--duration', '5', '--seed', '3', '--json'])
  assert.is(direct.code, 0, direct.stderr)
  assert.is(run.stdout, direct.stdout)
})

test('CLI: replay line first, table, --json identical across runs, --report written, bad input exits 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-sim-'))
  try {
    const file = join(dir, 'two.json')
    writeFileSync(file, JSON.stringify({ nodes: 4, durationS: 8, workload: { terminals: 2 }, faults: [{ atS: 2, fault: 'crash', target: 'owner' }, { atS: 5, fault: 'restart', target: 'crashed' }] }))
    const table = cli(['--scenario', file, '--seed', '9', '--report', join(dir, 'r.html')])
    assert.is(table.code, 0, table.stderr)
    assert.match(table.stderr.split('\n')[0], /^edge-agent sim --scenario .*two\.json --nodes 4 --duration 8 --seed 9/)
    assert.match(table.stdout, /two: 4 nodes, 8 virtual s of chaos, seed 9: PASS/)
    assert.match(readFileSync(join(dir, 'r.html'), 'utf8'), /data-chart="timeline"/)
    const a = cli(['--scenario', file, '--seed', '9', '--json'])
    const b = cli(['--scenario', file, '--seed', '9', '--json'])
    assert.is(a.code, 0)
    assert.is(a.stdout, b.stdout)
    assert.is(JSON.parse(a.stdout).seed, 9)
    mkdirSync(dir + '.html')
    for (const args of [['--nodes', 'x'], ['--scenario', 'nope'], ['--scenario', join(dir, 'missing.json')], ['--report', 'out.txt'], ['--report', join(dir, 'no-such-dir', 'r.html')], ['--report', dir + '.html'], ['--real', '--scenario', 'scale']]) {
      const refused = cli(args)
      assert.is(refused.code, 2, args.join(' '))
      assert.match(refused.stderr, /^edge-agent sim: /)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    rmSync(dir + '.html', { recursive: true, force: true })
  }
})

test('CLI: a --json result bigger than a pipe holds reaches a slow reader whole', () => {
  // 1,000 nodes give a result of about 90 KB (a timeline entry per node); the
  // pipe holds 64 KiB, and its reader starts a second late. Exiting before
  // stdout drained used to cut the result at 65,536 bytes.
  const command = `"${process.execPath}" "${CLI}" sim --scenario churn --nodes 1000 --duration 1 --json 2>/dev/null | (sleep 1; cat)`
  const run = spawnSync('sh', ['-c', command], { encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 1024 * 1024 })
  assert.ok(run.stdout.length > 65_536, `${run.stdout.length} bytes: cut short, or too small to test the pipe`)
  assert.is((JSON.parse(run.stdout) as { nodes: number }).nodes, 1000)
})

test.run()
