// The agent's data directory: an exclusive lock, and the persisted incarnation.
// (The identity key lives beside them; agent/net/identity.ts owns it.)
//
// state.json is replaced atomically (write a temporary file, fsync it, rename it
// over the old one, fsync the directory), so a crash leaves either the old or the
// new file, never a torn one. It carries a SHA-256 of its content: a file that
// fails the check is reported with its path and the agent refuses to start rather
// than guess an incarnation.

import { createHash } from 'node:crypto'
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { join, resolve, sep } from 'node:path'

const STATE_FILE = 'state.json'
const LOCK_FILE = 'agent.lock'
const STATE_FORMAT = 1

export class DataDirError extends Error {
  override name = 'DataDirError'
}

// mkdirSync(path, { recursive: true }) never returns for a path under /proc
// (Node keeps retrying while the kernel answers ENOENT for a parent that
// exists): `start --data-dir /proc/x` hung without a word. One level at a time
// instead, each error thrown as it comes (ENOENT, EACCES, ENOTDIR).
function makeDirectory (path: string, mode: number): void {
  let at: string = sep
  for (const part of resolve(path).split(sep)) {
    if (part === '') continue
    at = join(at, part)
    try {
      mkdirSync(at, { mode })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new DataDirError(`cannot create the data directory ${path}: ${(error as Error).message}`, { cause: error })
    }
  }
}

type StateFile = { format: number; incarnation: number; sha256: string }

function digest (format: number, incarnation: number): string {
  return createHash('sha256').update(`${format}:${incarnation}`).digest('hex')
}

export class DataDir {
  readonly path: string
  #lockFd: number | null = null

  constructor (path: string) {
    this.path = path
  }

  // Creates the directory (mode 0700) and takes the lock; refuses when a live
  // process holds it, takes over a lock left by a dead one.
  open (): void {
    makeDirectory(this.path, 0o700)
    const lockPath = join(this.path, LOCK_FILE)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        this.#lockFd = openSync(lockPath, 'wx', 0o600)
        writeSync(this.#lockFd, `${process.pid}\n`)
        return
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
        const holder = Number.parseInt(readFileSync(lockPath, 'utf8'), 10)
        if (Number.isInteger(holder) && holder !== process.pid && processAlive(holder)) {
          throw new DataDirError(`data directory ${this.path} is in use by process ${holder} (another edge-agent?); give each agent its own --data-dir`)
        }
        rmSync(lockPath, { force: true })
      }
    }
    throw new DataDirError(`could not lock data directory ${this.path}`)
  }

  close (): void {
    if (this.#lockFd === null) return
    closeSync(this.#lockFd)
    this.#lockFd = null
    rmSync(join(this.path, LOCK_FILE), { force: true })
  }

  // The last persisted incarnation, 0 for a new node.
  readIncarnation (): number {
    const path = join(this.path, STATE_FILE)
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0
      throw new DataDirError(`state file ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); refusing to start. Fix it, or move it away to start with a fresh incarnation (the node keeps its identity).`)
    }
    const corrupt = (why: string): DataDirError => new DataDirError(
      `state file ${path} is corrupt (${why}); refusing to start. Move it away to start with a fresh incarnation (the node keeps its identity).`)
    let parsed: StateFile
    try {
      parsed = JSON.parse(text) as StateFile
    } catch {
      throw corrupt('not valid JSON')
    }
    if (typeof parsed !== 'object' || parsed === null || parsed.format !== STATE_FORMAT) throw corrupt(`unknown format ${JSON.stringify(parsed?.format)}`)
    if (!Number.isSafeInteger(parsed.incarnation) || parsed.incarnation < 0) throw corrupt('incarnation is not a whole number')
    if (parsed.sha256 !== digest(parsed.format, parsed.incarnation)) throw corrupt('checksum mismatch')
    return parsed.incarnation
  }

  writeIncarnation (incarnation: number): void {
    const state: StateFile = { format: STATE_FORMAT, incarnation, sha256: digest(STATE_FORMAT, incarnation) }
    writeAtomic(this.path, STATE_FILE, JSON.stringify(state) + '\n')
  }
}

export function writeAtomic (dir: string, name: string, content: string | Uint8Array, mode = 0o600): void {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`)
  writeFileSync(tmp, content, { mode })
  const fd = openSync(tmp, 'r+')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, join(dir, name))
  const dirFd = openSync(dir, 'r')
  try {
    fsyncSync(dirFd)
  } finally {
    closeSync(dirFd)
  }
}

function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
