// Crash safety of a real agent (`edge-agent start`, one process, R = 0 so its own
// store is the only copy): terminals append flat out while the store snapshots
// and compacts every 10 entries, and the agent is SIGKILLed at seeded random
// moments and restarted on the same data directory, again and again. After every
// kill `edge-agent check` passes; after every restart each acknowledged append
// is in its session once, in order (the terminals retry across the restart, so
// idempotent retries are in the mix). Then damage: a flipped byte in the
// write-ahead log, or in a row of the database, makes `edge-agent start` refuse
// and `edge-agent check` fail, both naming the file.
//
//   SEED=123 node test/net/agent-crash.test.ts       replays one run
//   CRASH_ROUNDS=50 node test/net/agent-crash.test.ts a longer loop (default 2)

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomInt } from 'node:crypto'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EdgeClient } from '../../agent/client/index.ts'
import type { Session } from '../../agent/client/index.ts'
import { SessionStore } from '../../agent/runtime/session-store.ts'
import { AgentProcess, runCli } from '../../sim/processes.ts'
import { ContinuousWriter } from '../../sim/writer.ts'
import { seededRng } from '../fixtures/mutate.ts'
import { within } from '../fixtures/timeout.ts'

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 2)
const SESSIONS = 3
// The kill lands this long after the restarted agent acknowledged again.
const MAX_KILL_DELAY_MS = 1_200
const TIMEOUT_MS = 60_000 + ROUNDS * 15_000
const SEED = process.env.SEED === undefined ? randomInt(2 ** 31) : Number(process.env.SEED)

function withTimeout<T> (promise: Promise<T>): Promise<T> {
  return within(promise, TIMEOUT_MS)
}

type Setup = { dir: string; dataDir: string; config: string }

function setup (): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-crash-'))
  const config = join(dir, 'agent.json')
  // Snapshots (and the compaction that deletes the entries they cover) as often
  // as the agent allows, so kills land in them too.
  writeFileSync(config, JSON.stringify({ sessions: { snapshotEveryEntries: 10, snapshotLogRatio: 0, loadThreshold: 1 } }))
  return { dir, dataDir: join(dir, 'agent'), config }
}

async function startAgent (s: Setup, httpPort = 0): Promise<AgentProcess> {
  return await AgentProcess.start({ name: 'crash', dataDir: s.dataDir, services: 'log', httpPort, extraArgs: ['--config', s.config, '--replicas', '0'] })
}

type CheckJson = { ok: boolean; error?: string; store?: { sessions: number; entries: number; snapshots: number; walFrames: number } }

async function check (dataDir: string): Promise<{ code: number | null; json: CheckJson; stderr: string }> {
  const result = await runCli(['check', '--data-dir', dataDir, '--json'])
  return { code: result.code, json: JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as CheckJson, stderr: result.stderr }
}

async function killNow (agent: AgentProcess): Promise<void> {
  agent.signal('SIGKILL')
  await agent.exited
}

async function waitProgress (writers: ContinuousWriter[], more: number): Promise<void> {
  await Promise.all(writers.map(async (w) => await w.waitFor(w.acked.length + more, 20_000)))
}

test(`every acknowledged append survives ${ROUNDS} SIGKILLs of a real agent during appends, snapshots and compaction (SEED=${SEED})`, () => withTimeout((async () => {
  console.log(`SEED=${SEED} (replay: SEED=${SEED} CRASH_ROUNDS=${ROUNDS} node test/net/agent-crash.test.ts)`)
  const next = seededRng(SEED)
  const s = setup()
  let agent = await startAgent(s)
  const port = Number(new URL(agent.http).port)
  const client = new EdgeClient({ agents: [agent.http] })
  const sessions: Session[] = []
  const writers: ContinuousWriter[] = []
  try {
    for (let i = 0; i < SESSIONS; i++) sessions.push(await client.open({ terminalId: `crash-${i}`, service: 'log' }))
    writers.push(...sessions.map((session, i) => new ContinuousWriter(session, `s${i}-`)))
    await waitProgress(writers, 20)
    for (let round = 1; round <= ROUNDS; round++) {
      const delayMs = 50 + next(MAX_KILL_DELAY_MS)
      await new Promise((resolve) => setTimeout(resolve, delayMs))
      const ackedAtKill = writers.reduce((n, w) => n + w.acked.length, 0)
      await killNow(agent)
      const checked = await check(s.dataDir)
      assert.is(checked.code, 0, `check after kill ${round}: ${checked.stderr}`)
      agent = await startAgent(s, port)
      await waitProgress(writers, 5)
      for (const [i, w] of writers.entries()) {
        assert.is(w.error, null, `terminal ${i}: ${w.error?.message}`)
        assert.equal(await w.check(), [], `session ${sessions[i].sessionId} after kill ${round}`)
      }
      const st = checked.json.store
      console.log(`  kill ${round}: ${delayMs} ms into appending, ${ackedAtKill} acked so far; store: ${st?.entries} entries after ${st?.snapshots} snapshots, ${st?.walFrames} WAL frames`)
    }
    await Promise.all(writers.map(async (w) => await w.stop()))
    for (const [i, w] of writers.entries()) {
      assert.is(w.error, null)
      assert.equal(await w.check(), [], `session ${sessions[i].sessionId} at the end`)
      assert.ok(w.acked.length > 20)
    }
  } finally {
    for (const w of writers) w.stopped = true
    client.destroy()
    await killNow(agent)
    rmSync(s.dir, { recursive: true, force: true })
  }
})()))

test('a flipped byte in the write-ahead log or in a stored row: start refuses and check fails, naming the file', () => withTimeout((async () => {
  const s = setup()
  const agent = await startAgent(s)
  const client = new EdgeClient({ agents: [agent.http] })
  try {
    const session = await client.open({ terminalId: 'damage', service: 'log' })
    const writer = new ContinuousWriter(session, 'd-')
    await writer.waitFor(100)
    await writer.stop()
    // SIGKILL: the commits stay in the write-ahead log, as after a crash.
    await killNow(agent)
    const walCopy = join(s.dir, 'wal-damaged')
    cpSync(s.dataDir, walCopy, { recursive: true })
    const rowCopy = join(s.dir, 'row-damaged')
    cpSync(s.dataDir, rowCopy, { recursive: true })
    // (Checking opens the store, which folds the log into the database.)
    assert.is((await check(s.dataDir)).code, 0, 'the undamaged original checks out')

    const wal = join(walCopy, 'sessions.db-wal')
    const bytes = readFileSync(wal)
    bytes[32 + 24 + 200] ^= 0x04
    writeFileSync(wal, bytes)
    await refused(walCopy, wal)

    const db = join(rowCopy, 'sessions.db')
    SessionStore.open(db).close()
    const file = readFileSync(db)
    const at = file.indexOf('"d-50')
    assert.ok(at > 0, 'value d-50 is in the file')
    file[at + 3] = '9'.charCodeAt(0)
    writeFileSync(db, file)
    await refused(rowCopy, db)

    // An emptied store, and an identity key with a changed byte in its public
    // half: both refused, named, and left as they were (before, SQLite made a new
    // empty store of the first, and the second brought the agent up under an id
    // its own signatures did not match).
    const emptied = join(s.dir, 'store-emptied')
    cpSync(s.dataDir, emptied, { recursive: true })
    for (const f of ['sessions.db-wal', 'sessions.db-shm']) rmSync(join(emptied, f), { force: true })
    writeFileSync(join(emptied, 'sessions.db'), '')
    await refusedWith(emptied, join(emptied, 'sessions.db'), 'is empty, but this data directory has run before')
    assert.is(readFileSync(join(emptied, 'sessions.db')).length, 0, 'the empty store is left as it was')
    const rekeyed = join(s.dir, 'key-damaged')
    cpSync(s.dataDir, rekeyed, { recursive: true })
    const keyPath = join(rekeyed, 'identity.key')
    const key = readFileSync(keyPath)
    key[key.length - 1] ^= 0x01
    writeFileSync(keyPath, key)
    await refusedWith(rekeyed, keyPath, 'is damaged')
  } finally {
    client.destroy()
    await killNow(agent)
    rmSync(s.dir, { recursive: true, force: true })
  }
})()))

// `edge-agent start` on `dataDir` exits 1 naming `file` and refusing to serve;
// `edge-agent check` exits 1 naming it too.
async function refused (dataDir: string, file: string): Promise<void> {
  const start = await runCli(['start', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--http', '127.0.0.1:0', '--services', 'log'])
  assert.is(start.code, 1, `start exited ${start.code}: ${start.stderr}`)
  assert.ok(start.stderr.includes(file), `start does not name ${file}: ${start.stderr}`)
  assert.ok(start.stderr.includes('refuses to serve'), start.stderr)
  const checked = await check(dataDir)
  assert.is(checked.code, 1)
  assert.ok(checked.stderr.includes(file), `check does not name ${file}: ${checked.stderr}`)
}

// Start and check both exit 1 naming `file` and saying `why`.
async function refusedWith (dataDir: string, file: string, why: string): Promise<void> {
  const start = await runCli(['start', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--http', '127.0.0.1:0', '--services', 'log'])
  assert.is(start.code, 1, `start exited ${start.code}: ${start.stderr}`)
  assert.ok(start.stderr.includes(file) && start.stderr.includes(why), `start: ${start.stderr}`)
  const checked = await check(dataDir)
  assert.is(checked.code, 1, `check exited ${checked.code}: ${checked.stderr}`)
  assert.ok(checked.stderr.includes(file) && checked.stderr.includes(why), `check: ${checked.stderr}`)
}

test.run()
