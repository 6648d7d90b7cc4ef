// The architecture's rules, checked on the source itself: the core reads no clock,
// draws no randomness and touches no socket; only agent/net imports libp2p.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('../..', import.meta.url).pathname

function files (dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(join(root, dir))) {
    const path = join(dir, name)
    if (statSync(join(root, path)).isDirectory()) out.push(...files(path))
    else if (name.endsWith('.ts')) out.push(path)
  }
  return out
}

// Core code: the deterministic state machines and the wire codec.
const CORE = [...files('agent/core'), ...files('agent/membership'), ...files('agent/sessions'), ...files('agent/deploy'), ...files('protocol')]
const CLOCK_OR_RANDOM = /\b(Date\.now|Math\.random|setTimeout|setInterval|setImmediate|performance\.now|new Date\(|process\.hrtime|crypto\.random|randomBytes|randomUUID)\b/
const IO_IMPORT = /from '(libp2p|@libp2p\/[^']+|@chainsafe\/[^']+|node:(net|http|https|dgram|fs|child_process|worker_threads|crypto))'/

test('core files read no clock and draw no randomness of their own', () => {
  assert.ok(CORE.length > 10, `found ${CORE.length} core files`)
  const offenders = CORE.filter((f) => CLOCK_OR_RANDOM.test(readFileSync(join(root, f), 'utf8').replace(/\/\/.*$/gm, '')))
  assert.equal(offenders, [])
})

test('core files import no I/O module (node:net is allowed only for isIP in the codec)', () => {
  const offenders = CORE.filter((f) => {
    // isIP is a pure function; it is the one thing the codec takes from node:net.
    const text = readFileSync(join(root, f), 'utf8').replace("import { isIP } from 'node:net'", '')
    return IO_IMPORT.test(text)
  })
  assert.equal(offenders, [])
})

test('only agent/net imports libp2p packages', () => {
  const all = ['agent', 'protocol', 'sim', 'bin', 'bench'].flatMap((d) => { try { return files(d) } catch { return [] } })
  const offenders = all.filter((f) => !f.startsWith('agent/net/') && /from '(libp2p|@libp2p\/|@chainsafe\/|it-pipe|it-length-prefixed)/.test(readFileSync(join(root, f), 'utf8')))
  assert.equal(offenders.map((f) => relative(root, join(root, f))), [])
})

test('no TypeScript syntax that Node cannot strip (enum, namespace, parameter properties)', () => {
  const all = ['agent', 'protocol', 'sim', 'bin', 'bench', 'test'].flatMap((d) => { try { return files(d) } catch { return [] } })
  const offenders = all.filter((f) => /^\s*(export\s+)?(const\s+)?enum\s|^\s*(export\s+)?namespace\s|constructor\s*\([^)]*\b(private|public|protected|readonly)\s+\w+\s*:/m.test(readFileSync(join(root, f), 'utf8')))
  assert.equal(offenders, [])
})

test.run()
