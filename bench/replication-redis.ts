// Redis for the replication comparison: a primary and two replicas started here
// on 127.0.0.1 (unused ports, temporary directories, stopped at the end; never
// one assumed running), and a minimal RESP2 client over node:net with one
// command in flight per connection (or one pipelined burst: a batch of SETs and
// its WAIT, written together), so that "clients" means the same as terminals.

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { log, sleep } from './lib.ts'
import { RespClient } from './resp.ts'

export { RespClient, RespError } from './resp.ts'

// ---- processes ------------------------------------------------------------------

export type RedisDurability = 'appendfsync-always' | 'no-persistence'

// pids: primary, replica, replica (for their CPU time).
export type RedisTrio = { primary: number; replicas: number[]; pids: number[]; stop: () => Promise<void>; version: string }

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

// A primary and two replicas of it, each in its own temporary directory.
// appendfsync-always: appendonly yes, appendfsync always (every write is in the
// AOF and fsynced before the reply, as edge-agent fsyncs each batch before it
// acknowledges); no-persistence: appendonly no, no RDB snapshots.
export async function startRedisTrio (durability: RedisDurability): Promise<RedisTrio> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-redis-'))
  const children: ChildProcess[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }))
    rmSync(dir, { recursive: true, force: true })
  }
  const killOnExit = (): void => { for (const child of children) child.kill('SIGKILL') }
  process.once('exit', killOnExit)
  try {
    const ports = [await freePort(), await freePort(), await freePort()]
    for (const [i, port] of ports.entries()) {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', `r${i}.rdb`, '--appenddirname', `aof${i}`,
        '--save', '', '--protected-mode', 'yes', '--daemonize', 'no', '--loglevel', 'warning',
        ...(durability === 'appendfsync-always' ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
        ...(i === 0 ? [] : ['--replicaof', '127.0.0.1', String(ports[0])])]
      const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] })
      child.stderr?.on('data', (chunk: Buffer) => log(`redis ${port}: ${chunk.toString().trim()}`))
      children.push(child)
    }
    const version = await waitReplicated(ports[0], 2)
    return { primary: ports[0], replicas: ports.slice(1), pids: children.map((c) => c.pid ?? -1), version, stop: async () => { process.off('exit', killOnExit); await stop() } }
  } catch (error) {
    process.off('exit', killOnExit)
    await stop()
    throw error
  }
}

// Until the primary answers and counts `replicas` connected replicas in sync.
async function waitReplicated (port: number, replicas: number, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let last = 'no answer'
  while (Date.now() < deadline) {
    try {
      const client = await RespClient.connect(port)
      try {
        const info = String(await client.command('INFO', 'replication'))
        const server = String(await client.command('INFO', 'server'))
        const online = info.split('\r\n').filter((l) => /^slave\d+:.*state=online/.test(l)).length
        last = `${online} replicas online`
        if (online >= replicas) return /redis_version:(\S+)/.exec(server)?.[1] ?? '?'
      } finally {
        client.close()
      }
    } catch (error) {
      last = (error as Error).message
    }
    await sleep(100)
  }
  throw new Error(`redis on ${port}: not replicated within ${timeoutMs} ms (${last})`)
}
