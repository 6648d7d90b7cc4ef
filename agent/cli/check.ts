// `edge-agent check`: the data directory checked as the agent checks it at start,
// and more thoroughly: the state file's checksum, and the session store's
// write-ahead log, every page (integrity_check) and every row's checksum.

import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { DataDir } from '../runtime/data-dir.ts'
import { SessionStore, storeAbsence } from '../runtime/session-store.ts'
import { checkIdentity } from '../net/identity.ts'
import { parseFlags, UsageError } from './args.ts'

export const CHECK_HELP = `Usage: edge-agent check --data-dir <path> [options]

Checks an agent's data directory without starting the agent: the state file
(incarnation, SHA-256), the identity key (readable, its public key matching its
private key), and the session store (sessions.db): its write-ahead log,
SQLite's full integrity check, and the CRC-32 of every stored row. A key or a
store missing (or an empty store) in a directory that has run before is damage
too. The agent runs the same checks, but SQLite's quick one, at every start and
refuses to start from a directory that fails them.

Takes the directory's lock: stop the agent first (a running agent holds it).
Opening the store recovers its write-ahead log and migrates a store written
by an earlier edge-agent to this one's schema, as a start would.

  --data-dir <path>     the agent's data directory (required)
  --json                print the result as JSON
  -h, --help            show this help

Exit codes: 0 when everything checks out, 1 when something is damaged (the
message names the file), 2 on a usage error.`

const FLAGS = {
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

export async function runCheck (argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, FLAGS, 0)
  if (values.help === true) {
    console.log(CHECK_HELP)
    return 0
  }
  const dir = values['data-dir']
  if (typeof dir !== 'string' || dir === '') throw new UsageError('--data-dir <path> is required')
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    process.stderr.write(`edge-agent check: ${dir} is not a directory\n`)
    return 1
  }
  const json = values.json === true
  const dataDir = new DataDir(dir)
  try {
    dataDir.open()
    const incarnation = dataDir.readIncarnation()
    // What a start would refuse, without creating or changing anything: the
    // identity key (unreadable, or its halves not matching), a key or a store
    // missing from a directory that has run.
    const id = await checkIdentity(dir, incarnation)
    const path = join(dir, 'sessions.db')
    const absent = storeAbsence(path, incarnation)
    if (absent !== null) throw absent
    if (!existsSync(path)) {
      report(json, { ok: true, dataDir: dir, incarnation, id, store: null }, `${dir}: ok, incarnation ${incarnation}, ${id === null ? 'no identity key yet' : `id ${id}`}, no session store yet`)
      return 0
    }
    const store = SessionStore.open(path)
    try {
      const summary = store.check()
      report(json, { ok: true, dataDir: dir, incarnation, id, store: { path, ...summary } },
        `${dir}: ok, incarnation ${incarnation}, id ${id ?? 'none yet'}; ${path}: ${summary.sessions} sessions, ${summary.entries} log entries, ${summary.snapshots} snapshots, ${summary.closed} closed sessions remembered (${summary.walFrames} frames in the write-ahead log)`)
    } finally {
      store.close()
    }
    return 0
  } catch (error) {
    const message = (error as Error).message
    if (json) process.stdout.write(JSON.stringify({ ok: false, dataDir: dir, error: message }) + '\n')
    process.stderr.write(`edge-agent check: ${message}\n`)
    return 1
  } finally {
    dataDir.close()
  }
}

function report (json: boolean, data: Record<string, unknown>, text: string): void {
  process.stdout.write(json ? JSON.stringify(data) + '\n' : text + '\n')
}
