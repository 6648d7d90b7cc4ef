import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { metricSum } from '../../bench/memory.ts'

const TEXT = `# HELP edge_agent_sessions Sessions this agent holds, by role
# TYPE edge_agent_sessions gauge
edge_agent_sessions{role="owner"} 12
edge_agent_sessions{role="standby"} 25
edge_agent_sessions_total_bogus 1000
edge_agent_process_nodejs_heap_size_used_bytes 41943040
edge_agent_weird{role="x"} NaN
`

test('metricSum() adds every label set of one metric, and only that metric', () => {
  assert.is(metricSum(TEXT, 'edge_agent_sessions'), 37)
  assert.is(metricSum(TEXT, 'edge_agent_process_nodejs_heap_size_used_bytes'), 41943040)
})

test('metricSum() is NaN for a metric that is absent or has no number', () => {
  assert.ok(Number.isNaN(metricSum(TEXT, 'edge_agent_members')))
  assert.ok(Number.isNaN(metricSum(TEXT, 'edge_agent_weird')))
  assert.ok(Number.isNaN(metricSum('', 'edge_agent_sessions')))
})

test.run()
