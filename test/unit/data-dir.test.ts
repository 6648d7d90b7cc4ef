import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataDir, DataDirError } from '../../agent/runtime/data-dir.ts'

function fresh (): string {
  return mkdtempSync(join(tmpdir(), 'edge-agent-datadir-'))
}

test('a new data directory starts at incarnation 0 and keeps what is written', () => {
  const path = fresh()
  try {
    const dir = new DataDir(path)
    dir.open()
    assert.is(dir.readIncarnation(), 0)
    dir.writeIncarnation(7)
    assert.is(dir.readIncarnation(), 7)
    dir.close()
    const again = new DataDir(path)
    again.open()
    assert.is(again.readIncarnation(), 7)
    again.close()
  } finally {
    rmSync(path, { recursive: true, force: true })
  }
})

test('a second agent cannot open a directory a live process holds', () => {
  const path = fresh()
  try {
    const first = new DataDir(path)
    first.open()
    // The lock names this (live) process; a stranger pid must be refused too.
    writeFileSync(join(path, 'agent.lock'), `${process.ppid}\n`)
    const second = new DataDir(path)
    assert.throws(() => second.open(), (e: Error) => e instanceof DataDirError && e.message.includes('is in use by process'))
  } finally {
    rmSync(path, { recursive: true, force: true })
  }
})

test('a lock left by a dead process is taken over', () => {
  const path = fresh()
  try {
    writeFileSync(join(path, 'agent.lock'), '999999999\n')
    const dir = new DataDir(path)
    dir.open()
    assert.is(readFileSync(join(path, 'agent.lock'), 'utf8').trim(), String(process.pid))
    dir.close()
  } finally {
    rmSync(path, { recursive: true, force: true })
  }
})

test('a corrupt or tampered state file is reported with its path and left in place', () => {
  const path = fresh()
  try {
    const dir = new DataDir(path)
    dir.open()
    const file = join(path, 'state.json')
    for (const [content, why] of [
      ['{not json', 'not valid JSON'],
      ['{"format":1,"incarnation":5,"sha256":"00"}', 'checksum mismatch'],
      ['{"format":9,"incarnation":5,"sha256":"00"}', 'unknown format'],
      ['{"format":1,"incarnation":-2,"sha256":"00"}', 'incarnation is not a whole number']
    ]) {
      writeFileSync(file, content)
      assert.throws(() => dir.readIncarnation(), (e: Error) => e instanceof DataDirError && e.message.includes(file) && e.message.includes(why), why)
      assert.is(readFileSync(file, 'utf8'), content, 'left in place')
    }
    dir.close()
  } finally {
    rmSync(path, { recursive: true, force: true })
  }
})

test('a state file that cannot be read (a directory in its place) is refused naming it, not with a bare EISDIR', () => {
  const path = fresh()
  try {
    mkdirSync(join(path, 'state.json'))
    const dir = new DataDir(path)
    let refused: unknown = null
    try { dir.readIncarnation() } catch (error) { refused = error }
    assert.ok(refused instanceof DataDirError, String(refused))
    assert.match(refused.message, `state file ${join(path, 'state.json')} cannot be read (EISDIR)`)
  } finally {
    rmSync(path, { recursive: true, force: true })
  }
})

// Node's mkdirSync(…, { recursive: true }) never returns for a path under /proc
// (it retries while the kernel answers ENOENT): `start --data-dir /proc/x` hung
// without a word. Run in a child with a time limit, so the old code fails
// instead of hanging the suite.
test('a data directory that cannot be created (under /proc, under a file) is refused at once, naming it', () => {
  const module = new URL('../../agent/runtime/data-dir.ts', import.meta.url).href
  for (const [path, code] of [['/proc/edge-agent-test/x', 'ENOENT'], ['/etc/hostname/x', 'ENOTDIR']]) {
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', `import { DataDir } from ${JSON.stringify(module)}
try { new DataDir(${JSON.stringify(path)}).open(); console.log('opened') } catch (error) { console.log(error.name + ': ' + error.message) }`], { encoding: 'utf8', timeout: 10_000 })
    assert.is(child.signal, null, `${path}: the child was still running after 10 s`)
    assert.match(child.stdout, `DataDirError: cannot create the data directory ${path}: ${code}`)
  }
})

test('missing parents are created, each 0700', () => {
  const path = fresh()
  try {
    const nested = join(path, 'a', 'b')
    const dir = new DataDir(nested)
    dir.open()
    dir.close()
    for (const p of [join(path, 'a'), nested]) assert.is(statSync(p).mode & 0o777, 0o700, p)
  } finally {
    rmSync(path, { recursive: true, force: true })
  }
})

test.run()
