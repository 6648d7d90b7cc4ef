// The user documentation's links cannot rot: every link in README.md and docs/
// to a file of the repository names a file that exists, and every #anchor names
// a heading of the file it points into (GitHub's slugs). A README section once
// vanished in an edit of a neighbouring paragraph while four links still
// pointed at it; this test fails on that. Also: the README shows every command
// of the CLI and names every flag of each command's --help.

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CHECK_HELP } from '../../agent/cli/check.ts'
import { DEPLOY_HELP, SERVICES_HELP } from '../../agent/cli/deploy.ts'
import { KEYGEN_HELP } from '../../agent/cli/keygen.ts'
import { PEEK_HELP } from '../../agent/cli/peek.ts'
import { SESSION_HELP } from '../../agent/cli/session.ts'
import { SIM_HELP } from '../../agent/cli/sim.ts'
import { START_HELP } from '../../agent/cli/start.ts'
import { SETTING_KEYS } from '../../agent/config.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const DOCS = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]

// GitHub's heading anchors: markup dropped, lower case, punctuation removed
// (letters, digits, spaces, hyphens and underscores kept), spaces to hyphens,
// and a repeated slug numbered -1, -2, … in order; and `<a id="…"></a>` anchors.
export function slug (heading: string): string {
  return heading.replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').trim().toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')
}

function anchors (markdown: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    if (!fenced) for (const a of line.matchAll(/<a id="([^"]+)"><\/a>/g)) out.add(a[1])
    const m = fenced ? null : /^#{1,6} (.+)$/.exec(line)
    if (m === null) continue
    const base = slug(m[1])
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

// Links outside code spans and fences: [text](target), target without a scheme.
function links (markdown: string): string[] {
  const out: string[] = []
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) { fenced = !fenced; continue }
    if (fenced) continue
    const text = line.replace(/`[^`]*`/g, '')
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) if (!/^[a-z]+:/i.test(m[1])) out.push(m[1])
  }
  return out
}

test('slugs follow GitHub: markup and punctuation dropped, spaces to hyphens', () => {
  assert.is(slug('The simulator: `edge-agent sim`'), 'the-simulator-edge-agent-sim')
  assert.is(slug('Sessions settings (ms unless noted)'), 'sessions-settings-ms-unless-noted')
  assert.is(slug('`edge-agent keygen --cluster` / `--deployer`'), 'edge-agent-keygen---cluster----deployer')
  assert.is(slug('Installing the package, and running on real boxes'), 'installing-the-package-and-running-on-real-boxes')
})

test('a heading written twice gets a numbered second anchor', () => {
  assert.equal([...anchors('# A\n## A\n```\n# not a heading\n```\n### B\n<a id="c"></a>**C**')], ['a', 'a-1', 'b', 'c'])
})

test('every link in README.md and docs/ names a file that exists and a heading it has', () => {
  const broken: string[] = []
  for (const doc of DOCS) {
    const text = readFileSync(join(root, doc), 'utf8')
    for (const link of links(text)) {
      const [path, anchor] = link.split('#', 2) as [string, string | undefined]
      const target = path === '' ? doc : normalize(join(dirname(doc), decodeURIComponent(path)))
      if (!existsSync(join(root, target))) { broken.push(`${doc}: ${link} (no file ${target})`); continue }
      if (anchor === undefined || anchor === '') continue
      if (!target.endsWith('.md')) { broken.push(`${doc}: ${link} (an anchor into a file that is not markdown)`); continue }
      if (!anchors(readFileSync(join(root, target), 'utf8')).has(anchor)) broken.push(`${doc}: ${link} (no heading #${anchor} in ${target})`)
    }
  }
  assert.equal(broken, [], `broken links:\n${broken.join('\n')}`)
})

test('the README documents every command the CLI offers, each under its own words', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const cli = readFileSync(join(root, 'bin/edge-agent.ts'), 'utf8')
  const commands = [...cli.matchAll(/^ {2}([a-z]+): \{ run:/gm)].map((m) => m[1])
  assert.ok(commands.length >= 8, `found the CLI's commands: ${commands.join(', ')}`)
  const missing = commands.filter((c) => !readme.includes(`edge-agent ${c}`))
  assert.equal(missing, [], `commands the README never shows: ${missing.join(', ')}`)
})

test('the README names every flag that a command\'s --help offers', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const helps = { start: START_HELP, peek: PEEK_HELP, session: SESSION_HELP, sim: SIM_HELP, deploy: DEPLOY_HELP, services: SERVICES_HELP, keygen: KEYGEN_HELP, check: CHECK_HELP }
  const missing: string[] = []
  for (const [command, help] of Object.entries(helps)) {
    const flags = new Set([...help.matchAll(/--[a-z][a-z0-9-]*/g)].map((m) => m[0]))
    assert.ok(flags.size > 0, `edge-agent ${command} --help names no flag`)
    for (const flag of flags) if (!new RegExp(`${flag}(?![a-z0-9-])`).test(readme)) missing.push(`${command} ${flag}`)
  }
  assert.equal(missing, [], `flags the README never names: ${missing.join(', ')}`)
})

test('every setting of the config file is named in start --help and in the README\'s "Configuration file"; every start flag is in its table', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const from = readme.indexOf('### Configuration file')
  const section = readme.slice(from, readme.indexOf('\n### ', from + 1))
  const help = START_HELP.replace(/\s+/g, ' ')
  const missing = SETTING_KEYS.filter((key) => !section.includes(`\`${key}\``)).map((key) => `README: ${key}`)
  missing.push(...SETTING_KEYS.filter((key) => !new RegExp(`[ ,(]${key}[,{) ]`).test(help)).map((key) => `--help: ${key}`))
  const table = readme.slice(readme.indexOf('### `edge-agent start`'), readme.indexOf('### `edge-agent keygen'))
  const flags = new Set([...START_HELP.matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]))
  missing.push(...[...flags].filter((flag) => !table.includes(`\`${flag}`)).map((flag) => `start table: ${flag}`))
  assert.equal(missing, [], `not documented: ${missing.join(', ')}`)
})

test.run()
