// The EdgeClient's tests (edge-client.test.ts) with appends over HTTP, one
// request each (transport 'http', and the client's fallback for an agent
// without the deltas stream): the retry and redirect rules must hold on both.
process.env.EDGE_CLIENT_TEST_TRANSPORT = 'http'
await import('./edge-client.test.ts')
