// The deltas stream's framing and envelopes (protocol/deltas-stream.ts): frames
// cut at any byte come out whole and in order, an over-long frame is refused
// before its bytes are buffered, and every envelope field is checked.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { encodeFrame, FrameReader, MAX_STREAM_FRAME_BYTES, parseStreamReply, parseStreamRequest } from '../../protocol/deltas-stream.ts'

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))

test('frames cut into chunks anywhere come out whole, in order', () => {
  fc.assert(fc.property(
    fc.array(fc.jsonValue(), { minLength: 1, maxLength: 20 }),
    fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 50 }),
    (values, cuts) => {
      const bytes = Buffer.concat(values.map((v) => encodeFrame({ v })))
      const reader = new FrameReader()
      const out: unknown[] = []
      let at = 0
      for (let i = 0; at < bytes.length; i++) {
        const size = cuts[i % cuts.length]
        const { frames, error } = reader.push(bytes.subarray(at, at + size))
        assert.is(error, null)
        for (const f of frames) out.push((JSON.parse(f.toString()) as { v: unknown }).v)
        at += size
      }
      assert.equal(out, values.map((v) => JSON.parse(JSON.stringify({ v })).v))
    }
  ), { seed: 7, numRuns: 300 })
})

test('a header announcing more than the limit is refused at once, before its body arrives', () => {
  const reader = new FrameReader(1_000)
  const ok = encodeFrame({ a: 1 })
  const head = Buffer.alloc(4)
  head.writeUInt32BE(1_001, 0)
  const { frames, error } = reader.push(Buffer.concat([ok, head]))
  assert.is(frames.length, 1, 'the frame before it is still delivered')
  assert.match(String(error), /1001 bytes exceeds 1000/)
  assert.ok(MAX_STREAM_FRAME_BYTES > 1_000_000, 'a 50-op batch of 16 KiB ops fits the default')
})

test('a request is an append (op) or a batch (ops), with its id, session and token', () => {
  const one = parseStreamRequest(json({ id: 3, session: 'log:ab', token: 'log:ab~x', clientSeq: 4, op: { append: 'v' } }))
  assert.ok(one.ok)
  if (one.ok) assert.equal({ batch: one.value.batch, body: one.value.body, id: one.value.id }, { batch: false, body: { clientSeq: 4, op: { append: 'v' } }, id: 3 })
  const many = parseStreamRequest(json({ id: 4, session: 'log:ab', token: 't', clientSeq: 5, ops: [1, 2] }))
  assert.ok(many.ok && many.value.batch && many.value.bytes > 0)
})

test('a request that is not one is refused with the reason, and the id when it had one', () => {
  const cases: Array<[Buffer, number, RegExp]> = [
    [Buffer.from('{"id": 1, "sess'), 0, /not valid JSON/],
    [json([1, 2]), 0, /JSON object/],
    [json({ session: 's', token: 't', clientSeq: 1, op: 1 }), 0, /'id'/],
    [json({ id: 0, session: 's', token: 't', clientSeq: 1, op: 1 }), 0, /'id'/],
    [json({ id: 2 ** 53, session: 's', token: 't', clientSeq: 1, op: 1 }), 0, /'id'/],
    [json({ id: 5, token: 't', clientSeq: 1, op: 1 }), 5, /'session'/],
    [json({ id: 5, session: 'x'.repeat(129), token: 't', clientSeq: 1, op: 1 }), 5, /'session'/],
    [json({ id: 6, session: 's', clientSeq: 1, op: 1 }), 6, /'token'/],
    [json({ id: 7, session: 's', token: 't', clientSeq: 1 }), 7, /either 'op'/],
    [json({ id: 8, session: 's', token: 't', clientSeq: 1, op: 1, ops: [1] }), 8, /either 'op'/]
  ]
  for (const [frame, id, reason] of cases) {
    const parsed = parseStreamRequest(frame)
    assert.not.ok(parsed.ok, frame.toString())
    if (!parsed.ok) {
      assert.is(parsed.id, id, frame.toString())
      assert.match(parsed.error, reason)
    }
  }
})

test('a reply carries its status, body, Location and Retry-After; a malformed one is refused', () => {
  const good = parseStreamReply(json({ id: 9, status: 307, body: { error: 'moved' }, location: 'http://b/v1/sessions/s', retryAfterMs: 1000 }))
  assert.equal(good, { ok: true, value: { id: 9, status: 307, body: { error: 'moved' }, location: 'http://b/v1/sessions/s', retryAfterMs: 1000 } })
  for (const bad of [{ id: -1, status: 200, body: {} }, { id: 1, status: 99, body: {} }, { id: 1, status: 200, body: [] }, { id: 1, status: 200, body: {}, location: 3 }, { id: 1, status: 200, body: {}, retryAfterMs: -1 }]) {
    assert.not.ok(parseStreamReply(json(bad)).ok, JSON.stringify(bad))
  }
})

test.run()
