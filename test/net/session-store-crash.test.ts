// Crash safety of the session store with a real process: a child appends batches
// in a loop (test/fixtures/store-writer.ts) and is killed with SIGKILL at a
// seeded random moment, several times over the same file. After every kill the
// store must open cleanly and hold every batch the child reported committed,
// consecutive, whole (no half batch), once.
//
// SIGKILL loses the process, not the page cache, so this proves atomicity and
// recovery, not fsync; the torn-WAL unit test stands in for the power cut.
// Side sessions are stored and deleted as it goes (test/fixtures/store-writer.ts),
// so kills land in deletes and in the reclaims of their rows too.
// Twice: with `apply` (write and a blocking fsync), and with `write` + `sync`
// (the fsync in libuv's thread pool, as the agent commits), so kills also land
// between a write and the return of its fsync. Both again with entries of
// 12 KB, so that a checkpoint (the store's own, after a batch's fsync) comes
// every ~20 batches and kills land inside checkpoints and their fsyncs too.
//
//   SEED=123 node test/net/session-store-crash.test.ts     replays one run

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SessionStore } from '../../agent/runtime/session-store.ts'
import type { StoredSession } from '../../agent/sessions/types.ts'
import { seededRng } from '../fixtures/mutate.ts'

const KILLS = 5
const BATCH_SIZE = 16
// Commits the child reports before the kill is armed, and the extra delay
// after: together they place the kill anywhere in an apply.
const MAX_COMMITS_BEFORE_KILL = 40
const MAX_KILL_DELAY_MS = 15
const ROUND_TIMEOUT_MS = 10_000

const WRITER = new URL('../fixtures/store-writer.ts', import.meta.url).pathname
const SEED = process.env.SEED === undefined ? randomInt(2 ** 31) : Number(process.env.SEED)


type Run = { reported: number; signal: NodeJS.Signals | null; stderr: string }

// Starts the writer, kills it after `commits` reports plus `delayMs`, and
// resolves with the highest index it reported committed.
function runAndKill (path: string, epoch: number, commits: number, delayMs: number, mode: 'apply' | 'sync', pad: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, path, String(BATCH_SIZE), String(epoch), mode, String(pad)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let armed = false
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`writer still running after ${ROUND_TIMEOUT_MS} ms: ${stderr}`)) }, ROUND_TIMEOUT_MS)
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.stdout.on('data', (chunk) => {
      stdout += chunk
      if (armed || stdout.split('\n').length - 1 < commits) return
      armed = true
      setTimeout(() => child.kill('SIGKILL'), delayMs)
    })
    child.on('close', (_code, signal) => {
      clearTimeout(timer)
      const reported = Math.max(0, ...[...stdout.matchAll(/^committed (\d+)$/gm)].map((m) => Number(m[1])))
      resolve({ reported, signal, stderr })
    })
  })
}

function lastIndex (session: StoredSession): number {
  return (session.snapshot?.index ?? 0) + session.entries.length
}

// The store after a kill: the writer's session, entries consecutive after the
// snapshot (load() checks that), whole batches only, each entry the one written
// there; at most one side session, whole (its 24 entries); no row of a deleted
// one but under its grave (load() refuses any other row of no session).
function check (path: string, reported: number, previous: number, pad: number): number {
  const store = SessionStore.open(path)
  try {
    const sessions = store.load()
    const sides = sessions.filter((s) => s.sessionId !== 'crash')
    assert.ok(sides.length <= 1, `${sides.length} side sessions`)
    for (const side of sides) assert.equal(side.entries.map((e) => e.index), Array.from({ length: 24 }, (_, i) => i + 1), `${side.sessionId} whole`)
    const session = sessions.find((s) => s.sessionId === 'crash')
    assert.ok(session !== undefined, 'the writer\'s session is there')
    const last = lastIndex(session)
    assert.ok(last >= reported, `reported ${reported} committed, store ends at ${last}`)
    assert.ok(last >= previous, `store went back from ${previous} to ${last}`)
    assert.is(last % BATCH_SIZE, 0, `store ends at ${last}, inside a batch`)
    for (const entry of session.entries) assert.equal(entry.body.kind === 'delta' ? entry.body.op : null, { n: entry.index, pad: 'p'.repeat(pad) })
    if (session.snapshot !== null) assert.equal(session.snapshot.state, { upTo: session.snapshot.index })
    assert.ok(session.commitIndex <= last)
    return last
  } finally {
    store.close()
  }
}

for (const [mode, pad] of [['apply', 200], ['sync', 200], ['apply', 12_000], ['sync', 12_000]] as const) {
  test(`every reported commit survives ${KILLS} SIGKILLs of the writer (${mode}, entries of ${pad} B, SEED=${SEED})`, async () => {
    console.log(`SEED=${SEED} (replay: SEED=${SEED} node test/net/session-store-crash.test.ts)`)
    const next = seededRng(SEED)
    const dir = mkdtempSync(join(tmpdir(), 'edge-agent-store-crash-'))
    try {
      const path = join(dir, 'sessions.db')
      let last = 0
      for (let round = 1; round <= KILLS; round++) {
        const commits = 1 + next(MAX_COMMITS_BEFORE_KILL)
        const delayMs = next(MAX_KILL_DELAY_MS + 1)
        const run = await runAndKill(path, round, commits, delayMs, mode, pad)
        assert.is(run.signal, 'SIGKILL', `writer ended on its own: ${run.stderr}`)
        last = check(path, run.reported, last, pad)
        console.log(`  ${mode} kill ${round}: after ${commits} reports + ${delayMs} ms; reported ${run.reported}, store holds ${last}`)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

test.run()
