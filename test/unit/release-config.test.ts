// The release's example config and its documentation cannot rot: the example
// (packaging/edge-agent.json) goes through the agent's own parser and holds every
// top-level key; docs/configuration.md has a row for every key with the code's
// default; the README's membership and sessions tables hold every key with each
// profile's value. Also: the systemd unit starts the installed binary with that
// config and the hardening the docs promise.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFileSync } from 'node:fs'
import { buildConfig, ConfigError, defaultConfig, PEER_LIMITS_DEFAULT, SETTING_KEYS, TERMINAL_LIMITS_DEFAULT } from '../../agent/config.ts'
import type { AgentConfig } from '../../agent/config.ts'
import { MEMBERSHIP_KEYS, membershipProfile, PROFILE_NAMES } from '../../agent/membership/config.ts'
import type { ProfileName } from '../../agent/membership/config.ts'
import { SESSIONS_KEYS, sessionsProfile } from '../../agent/sessions/config.ts'

const root = new URL('../../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8')
const example = JSON.parse(read('packaging/edge-agent.json')) as Record<string, unknown>
const docs = read('docs/configuration.md')
const readme = read('README.md')

// Markdown table rows as cells; `| \`a\`, \`b\` | 1, 2 |` is one row of two keys.
type Table = { header: string[]; rows: string[][] }
function tableAfter (text: string, heading: string): Table {
  const start = text.indexOf(heading)
  assert.ok(start >= 0, `no heading ${heading}`)
  const lines = text.slice(start).split('\n')
  const first = lines.findIndex((line) => line.startsWith('|'))
  const table: string[][] = []
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break
    table.push(line.slice(1, -1).split(' | ').map((cell) => cell.trim()))
  }
  return { header: table[0], rows: table.slice(2) }
}
function keysOf (cell: string): string[] {
  return [...cell.matchAll(/`([A-Za-z][A-Za-z0-9]*)`/g)].map((m) => m[1])
}

// A setting's default as the config file spells it.
function fileForm (key: string, config: AgentConfig): unknown {
  if (key === 'http') return `${config.http.host}:${config.http.port}`
  if (key === 'replicas') return config.sessions.replicas
  if (key === 'writeConcern') return config.sessions.writeConcern
  return (config as unknown as Record<string, unknown>)[key]
}

test('the example config goes through the real parser and sets what it says', () => {
  const config = buildConfig(example, {})
  assert.equal(config.listen, ['/ip4/10.0.0.1/tcp/7701'])
  assert.equal(config.http, { host: '10.0.0.1', port: 7700 })
  assert.equal(config.bootstrap.length, 2)
  assert.equal(config.dataDir, '/var/lib/edge-agent')
  assert.equal(config.clusterKey, '/etc/edge-agent/cluster.key')
  assert.equal([config.tlsCert, config.tlsKey], ['/etc/edge-agent/api.crt', '/etc/edge-agent/api.key'])
  assert.equal(config.services.map((s) => s.name), ['log', 'kv', 'counter'])
  // Empty membership/sessions objects leave the profile's timings alone.
  assert.equal(config.membership, membershipProfile('lan'))
  assert.equal(config.sessions, sessionsProfile('lan'))
  // The same file with the wan profile gets wan timings: nothing in it pins lan's.
  const wan = buildConfig({ ...example, profile: 'wan' }, {})
  assert.equal(wan.membership, membershipProfile('wan'))
  assert.equal(wan.sessions, sessionsProfile('wan'))
})

test('the example holds every top-level key, each at the default unless it is a per-box setting', () => {
  assert.equal(Object.keys(example).sort(), [...SETTING_KEYS].sort())
  const perBox = new Set(['listen', 'bootstrap', 'http', 'tlsCert', 'tlsKey', 'services', 'position', 'region', 'zone', 'dataDir', 'clusterKey'])
  const defaults = defaultConfig('lan')
  for (const key of SETTING_KEYS) {
    if (perBox.has(key) || key === 'membership' || key === 'sessions') continue
    assert.equal(example[key], fileForm(key, defaults), `example ${key}`)
  }
})

test('a damaged copy of the example is refused naming the key', () => {
  assert.throws(() => buildConfig({ ...example, profle: 'lan' }, {}), (e: Error) => e instanceof ConfigError && e.message.includes("'profle'"))
  assert.throws(() => buildConfig({ ...example, position: '95,0' }, {}), (e: Error) => e instanceof ConfigError && e.message.includes('latitude'))
})

test('docs/configuration.md has a row for every key, with the code\'s default', () => {
  const { header, rows } = tableAfter(docs, '## Keys')
  assert.equal(header.slice(0, 3), ['key', 'type, unit', 'default'])
  const documented = rows.flatMap((row) => keysOf(row[0]))
  assert.equal([...documented].sort(), [...SETTING_KEYS].sort(), 'documented keys')
  const defaults = defaultConfig('lan')
  for (const row of rows) {
    const [key] = keysOf(row[0])
    if (key === 'dataDir') {
      assert.ok(row[2].includes('$XDG_STATE_HOME/edge-agent') && row[2].includes('~/.local/state/edge-agent'))
      continue
    }
    if (['limits', 'membership', 'sessions'].includes(key)) continue
    const cell = /^`(.*)`$/.exec(row[2])
    assert.ok(cell !== null, `${key}: default cell ${row[2]} is not one JSON value`)
    assert.equal(JSON.parse(cell[1]), fileForm(key, defaults), `${key} default`)
  }
  const limits = tableAfter(docs, '## `limits`')
  const limitDefaults: Record<string, number> = { ...TERMINAL_LIMITS_DEFAULT, ...PEER_LIMITS_DEFAULT }
  assert.equal(limits.rows.map((row) => keysOf(row[0])[0]).sort(), Object.keys(limitDefaults).sort())
  for (const row of limits.rows) {
    const key = keysOf(row[0])[0]
    assert.is(Number(row[2].replace(/`/g, '')), limitDefaults[key], `limits.${key}`)
  }
})

// The README's tables have one column per profile (the sessions table omits
// `local`, which it says uses the lan values).
function checkProfileTable (heading: string, keys: string[], values: (profile: ProfileName) => Record<string, unknown>): void {
  const { header, rows } = tableAfter(readme, heading)
  const columns = PROFILE_NAMES.map((profile) => ({ profile, index: header.findIndex((h) => h.startsWith(profile)) }))
  const seen: string[] = []
  for (const row of rows) {
    const rowKeys = keysOf(row[0])
    seen.push(...rowKeys)
    for (const { profile, index } of columns) {
      const column = index >= 0 ? index : columns.find((c) => c.profile === 'lan')!.index
      const cells = row[column].split(',').map((cell) => cell.trim().replace(/`/g, '').replace(/\s*\(.*\)$/, ''))
      rowKeys.forEach((key, i) => {
        const expected = values(profile)[key]
        const got = typeof expected === 'number' ? Number(cells[i]) : cells[i]
        assert.is(got, expected, `README ${heading}: ${key} (${profile}) says ${cells[i]}`)
      })
    }
  }
  assert.equal([...seen].sort(), [...keys].sort(), `README ${heading}: keys`)
}

test('the README\'s membership and sessions tables hold every key with each profile\'s value', () => {
  checkProfileTable('### Membership timings', MEMBERSHIP_KEYS as string[], (p) => membershipProfile(p) as unknown as Record<string, unknown>)
  checkProfileTable('### Sessions settings', SESSIONS_KEYS, (p) => sessionsProfile(p) as unknown as Record<string, unknown>)
})

test('the systemd unit runs the installed binary with the example config, hardened', () => {
  const unit = read('packaging/edge-agent.service')
  const settings = new Map<string, string[]>()
  for (const line of unit.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim())
    if (match !== null) settings.set(match[1], [...(settings.get(match[1]) ?? []), match[2]])
  }
  const one = (key: string): string => {
    const values = settings.get(key)
    assert.ok(values !== undefined && values.length === 1, `${key}= once`)
    return values[0]
  }
  assert.match(one('ExecStart'), /^\/usr\/local\/bin\/edge-agent start --config \/etc\/edge-agent\/edge-agent\.json$/)
  assert.is(one('User'), 'edge-agent')
  assert.is(one('StateDirectory'), 'edge-agent')
  assert.is(one('Restart'), 'on-failure')
  // A usage error (a bad config) and an identity another node uses (a copied
  // data directory) do not fix themselves by restarting.
  assert.is(one('RestartPreventExitStatus'), '2 4')
  // A full disk fails every start until it has room: systemd must not give up.
  assert.is(one('StartLimitIntervalSec'), '0')
  // systemctl reload: SIGHUP (agent/cli/start.ts).
  assert.is(one('ExecReload'), '/bin/kill -HUP $MAINPID')
  for (const [key, value] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes']]) {
    assert.is(one(key), value, key)
  }
  assert.ok(Number(one('LimitNOFILE')) >= 65536)
  // The data directory the unit provides is the one the example config names.
  assert.is(`/var/lib/${one('StateDirectory')}`, buildConfig(example, {}).dataDir)
})

test.run()
