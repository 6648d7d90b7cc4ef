// scripts/build.ts's rewrite of what tsc leaves pointing at .ts files in dist/
// (the whole build runs in test/release/package.test.ts, through npm pack).

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rewriteEmitted } from '../../scripts/build.ts'

const dir = '/pkg/dist/agent/runtime'

test('new URL(relative .ts, import.meta.url) becomes .js when the compiled file exists', () => {
  const text = "const worker = new Worker(new URL('./service-worker.ts', import.meta.url), {})\nconst cli = new URL(\"../../bin/edge-agent.ts\", import.meta.url)\n"
  const seen: string[] = []
  const out = rewriteEmitted(`${dir}/service-runner.js`, text, (path) => { seen.push(path); return true })
  assert.equal(out.problems, [])
  assert.is(out.text, "const worker = new Worker(new URL('./service-worker.js', import.meta.url), {})\nconst cli = new URL(\"../../bin/edge-agent.js\", import.meta.url)\n")
  assert.equal(seen, [`${dir}/service-worker.js`, '/pkg/dist/bin/edge-agent.js'])
})

test('a URL to a file that was not compiled fails the build, naming it', () => {
  const out = rewriteEmitted(`${dir}/service-runner.js`, "new URL('./service-worker.ts', import.meta.url)", () => false)
  assert.is(out.problems.length, 1)
  assert.match(out.problems[0], /service-worker\.js.*tsconfig\.build\.json/)
})

test('any other relative .ts string left in code fails the build; comments do not', () => {
  const out = rewriteEmitted(`${dir}/x.js`, "// see './notes.ts'\nconst p = join(here, './other.ts')\n", () => true)
  assert.is(out.problems.length, 1)
  assert.match(out.problems[0], /x\.js:2: a relative \.ts path is left/)
})

test('declaration files import .js', () => {
  const out = rewriteEmitted('/pkg/dist/agent/client/index.d.ts', "export { EdgeClient } from './edge-client.ts';\nexport type { Role } from \"./edge-client.ts\";\ntype T = import('../x.ts').T\n", () => true)
  assert.equal(out.problems, [])
  assert.is(out.text, "export { EdgeClient } from './edge-client.js';\nexport type { Role } from \"./edge-client.js\";\ntype T = import('../x.js').T\n")
})

test.run()
