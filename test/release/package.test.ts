// The release as a user gets it: `npm pack` in this repository, `npm install` of
// the tarball into an empty directory, and the installed `edge-agent` run there on
// this Node (≥ 22.18): --help, --version, `start` on 127.0.0.1 with a deployed
// package (its code runs in the service worker thread) and sessions, `sim`, a
// graceful stop. An older Node gets one line and exit 1.
//
// The install uses npm's cache first (--offline: the packages this repository's
// `npm ci` fetched are there) and the registry only for what the cache lacks. When
// neither can supply the dependencies, the install-dependent tests are skipped
// with a printed reason; a failure of our own package (pack, build, a bad
// package.json) always fails. About 45 s on a busy 2-core box: pack 10-17 s,
// install 8-11 s, the rest running the installed CLI (about 1 s per command).

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { within } from '../fixtures/timeout.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string }
const work = mkdtempSync(join(tmpdir(), 'edge-agent-release-'))
const app = join(work, 'app')
const bin = join(app, 'node_modules', '.bin', 'edge-agent')
const installed = join(app, 'node_modules', 'edge-agent')
// However the file ends (a failed pack throws before any test is declared).
process.on('exit', () => rmSync(work, { recursive: true, force: true }))

// This Node first on PATH (the shebang's `env node` and npm's scripts find it).
// The npm_* variables of an enclosing `npm test` are not passed on: among them
// npm_config_local_prefix and npm_config_prefix name this repository, and npm
// would install there instead of into the empty directory. Only where packages
// come from (cache, registry, proxy, TLS) is kept.
const KEPT_NPM_CONFIG = new Set(['cache', 'registry', 'userconfig', 'proxy', 'https_proxy', 'noproxy', 'strict_ssl', 'cafile', 'fetch_retries', 'fetch_timeout'])
const env: NodeJS.ProcessEnv = { PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` }
for (const [key, value] of Object.entries(process.env)) {
  if (key === 'PATH' || key === 'INIT_CWD') continue
  if (/^npm_/i.test(key) && !(/^npm_config_/i.test(key) && KEPT_NPM_CONFIG.has(key.slice('npm_config_'.length).toLowerCase()))) continue
  env[key] = value
}
Object.assign(env, { npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', NO_COLOR: '1' })

type Run = { code: number | null; stdout: string; stderr: string; ms: number }

function run (command: string, args: string[], options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? app, env: options.env ?? env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, ms: Date.now() - started })
    })
  })
}

const show = (r: Run): string => `exit ${r.code}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`

// ---- pack and install, before the tests are declared (they depend on it) ------

const npmFound = spawnSync('npm', ['--version'], { env, encoding: 'utf8' })
if (npmFound.status !== 0) throw new Error(`npm is needed to pack the release (npm --version: ${npmFound.error?.message ?? npmFound.stderr})`)

const packStarted = Date.now()
const pack = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, timeoutMs: 180_000 })
assert.is(pack.code, 0, `npm pack failed:\n${show(pack)}`)
const packed = (JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }>; size: number; unpackedSize: number }>)[0]
const tarball = join(work, packed.filename)
const packMs = Date.now() - packStarted

mkdirSync(app)
writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'empty-app', version: '1.0.0', private: true }) + '\n')
const NO_SUPPLY = /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network/i
let install = await run('npm', ['install', '--offline', tarball], { timeoutMs: 120_000 })
if (install.code !== 0 && NO_SUPPLY.test(install.stderr)) {
  // The cache lacks something: let npm fetch what is missing.
  install = await run('npm', ['install', '--prefer-offline', tarball], { timeoutMs: 120_000 })
}
let skipReason: string | null = null
if (install.code !== 0) {
  if (!NO_SUPPLY.test(install.stderr)) assert.unreachable(`npm install of the packed tarball failed:\n${show(install)}`)
  const lines = install.stderr.split('\n').filter((line) => line.startsWith('npm error') && line.trim() !== 'npm error')
  const telling = lines.filter((line) => NO_SUPPLY.test(line) || / code | errno |request to /.test(line))
  skipReason = `SKIPPED: the installed-package tests: npm could get the dependencies neither from its cache nor from the registry:\n${(telling.length > 0 ? telling : lines).slice(0, 4).join('\n')}`
  console.log(skipReason)
}
console.log(`release: npm pack ${packMs} ms (${packed.filename}, ${Math.round(packed.size / 1024)} KiB packed, ${Math.round(packed.unpackedSize / 1024)} KiB unpacked, ${packed.files.length} files); npm install ${install.ms} ms`)
const installedTest = skipReason === null ? test : test.skip


// ---- what the tarball holds ----------------------------------------------------

test('the tarball holds the launcher, the compiled CLI and service worker, the docs and packaging; no tests, benches or .ts sources', () => {
  const files = packed.files.map((f) => f.path)
  for (const needed of ['package.json', 'README.md', 'bin/edge-agent.cjs', 'dist/package.json', 'dist/bin/edge-agent.js', 'dist/agent/runtime/service-worker.js',
    'dist/sim/processes.js', 'dist/agent/client/index.js', 'dist/agent/client/index.d.ts', 'packaging/edge-agent.service', 'packaging/edge-agent.json',
    'docs/three-boxes.md', 'docs/configuration.md', 'examples/cart/manifest.json']) {
    assert.ok(files.includes(needed), `${needed} is in the tarball`)
  }
  const stray = files.filter((f) => /^(test|bench|scripts|agent|protocol|sim)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f === 'bin/edge-agent.ts' || f === 'bin/demo.ts')
  assert.equal(stray, [], 'files that do not belong in the package')
  // The CLI's relative URLs point at compiled files (scripts/build.ts rewrote them).
  const extracted = spawnSync('tar', ['-xzOf', tarball, 'package/dist/agent/runtime/service-runner.js', 'package/dist/sim/processes.js'], { encoding: 'utf8' })
  assert.is(extracted.status, 0, extracted.stderr)
  assert.ok(extracted.stdout.includes("new URL('./service-worker.js', import.meta.url)"), 'service worker URL compiled to .js')
  assert.ok(extracted.stdout.includes("new URL('../bin/edge-agent.js', import.meta.url)"), 'sim --real CLI URL compiled to .js')
  assert.not.ok(existsSync(join(root, 'dist')), 'postpack removed dist/ from the checkout')
})

// ---- the installed package -------------------------------------------------------

installedTest('it installs with its dependencies only: no devDependency is present, none is needed below', () => {
  for (const dev of ['typescript', 'uvu', 'fast-check', 'playwright-core', '@types/node', 'node']) {
    assert.not.ok(existsSync(join(app, 'node_modules', dev)), `devDependency ${dev} was installed`)
  }
  assert.ok(existsSync(bin), `${bin} exists`)
})

installedTest('npx edge-agent --help and --version work in the empty directory', async () => {
  // Independent commands, run at once: each loads the whole CLI (about 1 s here).
  const [help, version, startHelp, bad] = await Promise.all([
    run('npx', ['edge-agent', '--help']),
    run(bin, ['--version']),
    run(bin, ['start', '--help']),
    run(bin, ['start', '--position', '95,0'])
  ])
  assert.is(help.code, 0, show(help))
  assert.match(help.stdout, /^Usage: edge-agent <command> \[options\]/)
  for (const command of ['start', 'peek', 'session', 'sim', 'deploy', 'keygen', 'check']) assert.match(help.stdout, new RegExp(`\\n  ${command} `))
  assert.is(version.code, 0, show(version))
  assert.is(version.stdout.trim(), pkg.version)
  assert.is(startHelp.code, 0, show(startHelp))
  assert.match(startHelp.stdout, /--cluster-key <file>/)
  assert.is(bad.code, 2, show(bad))
  assert.match(bad.stderr, /^edge-agent start: 'position' latitude must be between -90 and 90 \(got 95\)/)
})

installedTest('edge-agent start on 127.0.0.1: a deployed package runs in its worker, sessions work, SIGTERM leaves and exits 0', async () => {
  await within((async () => {
    const dir = join(work, 'agent')
    mkdirSync(dir)
    const keygen = await run(bin, ['keygen', '--deployer', '--out', join(dir, 'deployer.key')])
    assert.is(keygen.code, 0, show(keygen))
    // This box is shared and busy: the load filter would keep a lone agent out
    // of its own sessions.
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ sessions: { loadThreshold: 1 }, logLevel: 'warn' }))
    const agent = spawn(bin, ['start', '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--http', '127.0.0.1:0', '--data-dir', join(dir, 'data'),
      '--replicas', '0', '--trusted-deployers', join(dir, 'deployer.key'), '--config', join(dir, 'config.json')], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] })
    const events: Array<Record<string, unknown>> = []
    let stderr = ''
    let buffer = ''
    const waiters: Array<() => void> = []
    agent.stdout.on('data', (chunk) => {
      buffer += chunk
      let newline: number
      while ((newline = buffer.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buffer.slice(0, newline)) as Record<string, unknown>)
        buffer = buffer.slice(newline + 1)
        for (const wake of waiters.splice(0)) wake()
      }
    })
    agent.stderr.on('data', (chunk) => { stderr += chunk })
    const exited = new Promise<number | null>((resolve) => agent.on('close', (code) => resolve(code)))
    const event = async (name: string): Promise<Record<string, unknown>> => {
      for (;;) {
        const found = events.find((e) => e.event === name)
        if (found !== undefined) return found
        if (agent.exitCode !== null) throw new Error(`the agent exited ${agent.exitCode} before "${name}":\n${stderr}`)
        await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 200) })
      }
    }
    try {
      const started = await event('started')
      const http = String(started.http)
      assert.match(http, /^http:\/\/127\.0\.0\.1:\d+$/)

      const deploy = await run(bin, ['deploy', join(installed, 'examples', 'cart'), '--name', 'cart', '--policy', 'all', '--key', join(dir, 'deployer.key'), '--to', http])
      assert.is(deploy.code, 0, show(deploy))
      const running = await event('package-running')
      assert.is(running.name, 'cart')

      const open = await run(bin, ['session', 'open', '--service', 'cart', '--terminal', 'kiosk-1', '--agent', http])
      assert.is(open.code, 0, show(open))
      const { sessionId, token } = JSON.parse(open.stdout) as { sessionId: string; token: string }
      // validate() runs in the worker thread and answers from the package's second module.
      const refused = await run(bin, ['session', 'append', sessionId, '--token', token, '--agent', http, '--op', '{"add":{"sku":"nope","qty":1}}'])
      assert.is(refused.code, 1, show(refused))
      assert.match(refused.stderr, /unknown sku "nope" \(catalog: apple, bread, milk\)/)
      const added = await run(bin, ['session', 'append', sessionId, '--token', token, '--agent', http, '--op', '{"add":{"sku":"milk","qty":2}}'])
      assert.is(added.code, 0, show(added))
      const got = await run(bin, ['session', 'get', sessionId, '--token', token, '--agent', http])
      assert.is(got.code, 0, show(got))
      assert.match(got.stdout, /"milk":2/)

      const peek = await run(bin, ['peek', http])
      assert.is(peek.code, 0, show(peek))
      assert.match(peek.stdout, /cart@1\.0\.0/)
      assert.match(peek.stdout, /1 members \(1 alive\)/)

      const stopAt = Date.now()
      agent.kill('SIGTERM')
      const code = await exited
      console.log(`release: SIGTERM to exit ${Date.now() - stopAt} ms`)
      assert.is(code, 0, stderr)
      const stopped = await event('stopped')
      assert.is(stopped.left, true)
    } finally {
      agent.kill('SIGKILL')
    }
  })(), 60_000)
})

installedTest('edge-agent sim --nodes 20 --duration 10 passes its checks', async () => {
  const sim = await run(bin, ['sim', '--nodes', '20', '--duration', '10', '--seed', '7'])
  assert.is(sim.code, 0, show(sim))
  assert.match(sim.stdout, /^demo: 20 nodes, 10 virtual s of chaos, seed 7: PASS$/m)
  assert.match(sim.stdout, /ok {3}no acknowledged delta lost or duplicated, order kept/)
})

// ---- an older Node ------------------------------------------------------------------

const REFUSAL = /^edge-agent needs Node 22\.18 or newer; this is Node v(\d+\.\d+\.\d+) \(.+\)\. Install Node 22 LTS or 24 LTS \(https:\/\/nodejs\.org\/en\/download\) and run edge-agent with it\.\n$/

// Every `node` on PATH other than this one, older than 22.18.
function olderNodes (): Array<{ path: string; version: string }> {
  const found: Array<{ path: string; version: string }> = []
  const self = realpathSync(process.execPath)
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, 'node')
    if (dir === '' || !existsSync(path) || realpathSync(path) === self || found.some((f) => realpathSync(f.path) === realpathSync(path))) continue
    const version = spawnSync(path, ['--version'], { encoding: 'utf8' }).stdout.trim()
    const [major, minor] = version.replace(/^v/, '').split('.').map(Number)
    if (major < 22 || (major === 22 && minor < 18)) found.push({ path, version })
  }
  return found
}
const older = olderNodes()
if (older.length === 0) console.log('SKIPPED: the real older-Node test: no node older than 22.18 on PATH (the version gate is still tested below with a faked version)')
const olderTest = older.length > 0 && skipReason === null ? test : test.skip

olderTest(`the installed edge-agent on an older Node (${older.map((o) => `${o.version} ${o.path}`).join(', ')}) says so in one line and exits 1`, async () => {
  for (const { path, version } of older) {
    for (const args of [['--help'], ['start'], []]) {
      const r = await run(path, [join(installed, 'bin', 'edge-agent.cjs'), ...args])
      assert.is(r.code, 1, show(r))
      assert.is(r.stdout, '')
      assert.match(r.stderr, REFUSAL)
      assert.is(`v${REFUSAL.exec(r.stderr)?.[1]}`, version)
    }
  }
})

// The gate at its boundary, on this Node with process.versions.node faked before
// the launcher reads it (the launcher in the checkout, which runs bin/edge-agent.ts).
test('the launcher refuses 18.20.4 and 22.17.1 in one line, and runs on 22.18.0', async () => {
  const fake = join(work, 'fake-version.cjs')
  writeFileSync(fake, "Object.defineProperty(process.versions, 'node', { value: process.env.FAKE_NODE_VERSION })\n")
  const launcher = join(root, 'bin', 'edge-agent.cjs')
  for (const version of ['18.20.4', '22.17.1', '22.18.0']) {
    const r = await run(process.execPath, ['--require', fake, launcher, '--version'], { cwd: root, env: { ...env, FAKE_NODE_VERSION: version } })
    if (version === '22.18.0') {
      assert.is(r.code, 0, show(r))
      assert.is(r.stdout.trim(), pkg.version)
    } else {
      assert.is(r.code, 1, show(r))
      assert.is(r.stdout, '')
      assert.match(r.stderr, REFUSAL)
      assert.is(REFUSAL.exec(r.stderr)?.[1], version)
    }
  }
})

test.run()
