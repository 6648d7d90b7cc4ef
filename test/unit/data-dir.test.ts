import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
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

test.run()
