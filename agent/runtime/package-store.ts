// Packages on disk, in <data-dir>/packages/:
//   <hash>.pkg       the bundle, byte for byte as signed (written atomically)
//   <hash>/          its files, unpacked for the worker to import (not for a
//                    package sealed with the cluster key: its code stays
//                    encrypted on disk and is decrypted into memory at load)
//   running.json     hashes of the packages this agent runs
// A bundle is checked again when the agent starts (the trusted deployers may have
// changed); one that fails is left on disk, reported, and not run.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { writeAtomic } from './data-dir.ts'
import { openBundle } from './package.ts'
import type { OpenedBundle, PackageKeys, Refusal } from './package.ts'
import type { InMemoryCode } from './service-runner.ts'

const HASH_FILE = /^([0-9a-f]{64})\.pkg$/
const RUNNING_FILE = 'running.json'

// Where a worker finds a package's code: the unpacked entry's path, or a sealed
// package's files in memory.
export type PackageCode = string | InMemoryCode

export type Loaded = { opened: OpenedBundle; code: PackageCode; running: boolean }

export class PackageStore {
  readonly dir: string

  constructor (dataDir: string) {
    this.dir = join(dataDir, 'packages')
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
  }

  // Writes a checked bundle (and its files, unless sealed); returns its code.
  save (opened: OpenedBundle, bundle: Uint8Array): PackageCode {
    const hash = opened.signed.announcement.hash
    const code = this.#codeOf(opened)
    if (!existsSync(join(this.dir, `${hash}.pkg`))) writeAtomic(this.dir, `${hash}.pkg`, bundle)
    return code
  }

  // The same files under a later signed announcement: the file holds the newer
  // one, so fetches from this agent and its next start see it.
  replaceBundle (hash: string, bundle: Uint8Array): void {
    writeAtomic(this.dir, `${hash}.pkg`, bundle)
  }

  bundle (hash: string): Uint8Array | null {
    try {
      return readFileSync(join(this.dir, `${hash}.pkg`))
    } catch {
      return null
    }
  }

  // Every stored bundle, checked again with `trusted`.
  load (trusted: ReadonlySet<string>, key: PackageKeys, refused: (hash: string, refusal: Refusal, reason: string) => void): Loaded[] {
    const running = this.#running()
    const out: Loaded[] = []
    for (const name of readdirSync(this.dir).sort()) {
      const hash = HASH_FILE.exec(name)?.[1]
      if (hash === undefined) continue
      const opened = openBundle(readFileSync(join(this.dir, name)), trusted, key)
      if (!opened.ok) { refused(hash, opened.refusal, opened.reason); continue }
      out.push({ opened: opened.value, code: this.#codeOf(opened.value), running: running.has(hash) })
    }
    return out
  }

  markRunning (hashes: string[]): void {
    writeAtomic(this.dir, RUNNING_FILE, JSON.stringify([...hashes].sort()) + '\n')
  }

  #running (): Set<string> {
    try {
      const list = JSON.parse(readFileSync(join(this.dir, RUNNING_FILE), 'utf8')) as unknown
      return new Set(Array.isArray(list) ? list.filter((h): h is string => typeof h === 'string') : [])
    } catch {
      return new Set()
    }
  }

  #codeOf (opened: OpenedBundle): PackageCode {
    return opened.sealed ? { files: opened.files, entry: opened.manifest.entry } : this.#unpack(opened)
  }

  // Files go to <hash>/ through a temporary directory renamed into place, so a
  // crash never leaves half a package where the worker would import it. The
  // package.json makes .js files ES modules unless the package says otherwise.
  #unpack (opened: OpenedBundle): string {
    const hash = opened.signed.announcement.hash
    const root = join(this.dir, hash)
    const entryPath = join(root, opened.manifest.entry)
    if (existsSync(entryPath)) return entryPath
    const tmp = join(this.dir, `.${hash}.${process.pid}.tmp`)
    rmSync(tmp, { recursive: true, force: true })
    try {
      for (const [path, content] of opened.files) {
        const target = join(tmp, path)
        mkdirSync(dirname(target), { recursive: true })
        writeFileSync(target, content)
      }
      if (!opened.files.has('package.json')) writeFileSync(join(tmp, 'package.json'), '{"type":"module"}\n')
      rmSync(root, { recursive: true, force: true })
      // Atomic on one file system.
      renameSync(tmp, root)
    } catch (error) {
      // A full disk must not keep the part written.
      rmSync(tmp, { recursive: true, force: true })
      throw error
    }
    return entryPath
  }
}
