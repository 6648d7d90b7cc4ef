// The CLI's flag parsing (agent/cli/args.ts): strict, one line per refusal.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseFlags, UsageError } from '../../agent/cli/args.ts'

const SPEC = { http: { type: 'string' }, bootstrap: { type: 'string' }, json: { type: 'boolean' }, position: { type: 'string' } } as const

function refusal (argv: string[]): string {
  try {
    parseFlags(argv, SPEC, 0)
  } catch (error) {
    assert.ok(error instanceof UsageError)
    return error.message
  }
  throw new Error(`accepted: ${argv.join(' ')}`)
}

// Before, the last of two values won silently: two --bootstrap addresses joined
// through the second only, two --http bound the second.
test('a flag given twice is refused, naming it', () => {
  assert.is(refusal(['--bootstrap', '/ip4/127.0.0.1/tcp/1', '--bootstrap', '/ip4/127.0.0.1/tcp/2']), '--bootstrap is given twice; give each flag once (a list is one comma-separated value)')
  assert.match(refusal(['--http=127.0.0.1:1', '--http', '127.0.0.1:2']), '--http is given twice')
  assert.match(refusal(['--json', '--json']), '--json is given twice')
})

test('flags given once parse, negative numbers included', () => {
  const { values } = parseFlags(['--bootstrap', 'a,b', '--position', '-33.9,151.2', '--json'], SPEC, 0)
  assert.equal({ ...values }, { bootstrap: 'a,b', position: '-33.9,151.2', json: true })
  assert.match(refusal(['--nope']), 'nope')
})

test.run()
