// Properties of every public decoder in protocol/ (decode, decodeRecord,
// decodeAccusation), over generated valid values and hostile inputs:
//  - round trip: a generated valid value encodes, decodes to itself, and
//    re-encodes to the same bytes;
//  - never throws, on random bytes and on mutations of valid inputs (bit flips,
//    truncation, extension, splicing, lying lengths, wrong types);
//  - refuses with a reason: a truncated or extended valid input is refused with
//    a non-empty reason, never with a "decoder fault" (a reader bug caught late);
//  - what a decoder accepts from a mutation is a value it would write back the
//    same way (no two encodings of one message among what it accepts).
//
// codec.test.ts and session-codec.test.ts pin each field's rule by example; this
// file covers what examples cannot, with fast-check.
//
//   SEED=123 node test/unit/decoder-properties.test.ts     replays one run

import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { randomInt } from 'node:crypto'
import { decode, decodeAccusation, decodeRecord, encode, encodeAccusation, encodeRecord, frameBytes } from '../../protocol/codec.ts'
import type { Decoded } from '../../protocol/messages.ts'
import { accusation, membershipMessage, message, nodeRecord, sessionMessage } from '../fixtures/arbitraries.ts'
import { MUTATORS, mutate, seededRng } from '../fixtures/mutate.ts'

const SEED = process.env.SEED === undefined ? randomInt(2 ** 31) : Number(process.env.SEED)
const RUNS = Number(process.env.RUNS ?? 300)
console.log(`SEED=${SEED} RUNS=${RUNS} (replay: SEED=${SEED} node test/unit/decoder-properties.test.ts)`)

type Codec = { name: string; decode: (bytes: Uint8Array) => Decoded<unknown>; encode: (value: never) => Uint8Array; valid: fc.Arbitrary<Uint8Array> }

const CODECS: Codec[] = [
  { name: 'decode (frames)', decode, encode: encode as Codec['encode'], valid: message.map(encode) },
  { name: 'decodeRecord', decode: decodeRecord, encode: encodeRecord as Codec['encode'], valid: nodeRecord.map(encodeRecord) },
  { name: 'decodeAccusation', decode: decodeAccusation, encode: encodeAccusation as Codec['encode'], valid: accusation.map(encodeAccusation) }
]

// Calls a decoder the way a peer's bytes reach it; a throw fails the property
// with the input in hex.
function safely (codec: Codec, bytes: Uint8Array): Decoded<unknown> {
  let result: Decoded<unknown>
  try {
    result = codec.decode(bytes)
  } catch (error) {
    throw new Error(`${codec.name} threw ${(error as Error).message} on ${Buffer.from(bytes).toString('hex').slice(0, 400)}`)
  }
  if (result.ok) return result
  assert.type(result.reason, 'string')
  assert.ok(result.reason.length > 0, 'empty reason')
  assert.not.ok(result.reason.startsWith('decoder fault'), `${codec.name}: ${result.reason}`)
  return result
}

// What a decoder accepted is a value its encoder writes back; decoding that gives
// the same value again (JSON text in session frames need not be canonical, so
// bytes are compared only after one re-encoding).
function stable (codec: Codec, value: unknown): void {
  const again = codec.encode(value as never)
  const second = codec.decode(again)
  assert.ok(second.ok, `re-encoded value refused: ${second.ok ? '' : second.reason}`)
  assert.equal(second.value, value)
  assert.equal(codec.encode(second.value as never), again)
}

const params = { seed: SEED, numRuns: RUNS }

test(`encode() then decode() gives back every generated message of every type, and the same bytes again (seed ${SEED})`, () => {
  fc.assert(fc.property(message, (m) => {
    const bytes = encode(m)
    const back = decode(bytes)
    assert.ok(back.ok, back.ok ? '' : back.reason)
    assert.equal(back.value, m)
    assert.equal(encode(back.value), bytes)
  }), { ...params, numRuns: RUNS * 3 })
})

// The simulator counts bytes with frameBytes() instead of encoding.
test(`frameBytes() is the length of encode() for every generated message (seed ${SEED})`, () => {
  fc.assert(fc.property(fc.oneof(membershipMessage, message), (m) => {
    assert.is(frameBytes(m), encode(m).length, m.type)
  }), { ...params, numRuns: RUNS * 3 })
})

test(`the message arbitrary reaches all 25 types (seed ${SEED})`, () => {
  const seen = new Set(fc.sample(message, { seed: SEED, numRuns: 3000 }).map((m) => m.type))
  assert.is(seen.size, 25, [...seen].join(', '))
})

test(`encodeRecord() and decodeRecord() round-trip generated records (seed ${SEED})`, () => {
  fc.assert(fc.property(nodeRecord, (r) => {
    const bytes = encodeRecord(r)
    const back = decodeRecord(bytes)
    assert.ok(back.ok, back.ok ? '' : back.reason)
    assert.equal(back.value, r)
    assert.equal(encodeRecord(back.value), bytes)
  }), params)
})

test(`encodeAccusation() and decodeAccusation() round-trip generated accusations (seed ${SEED})`, () => {
  fc.assert(fc.property(accusation, (a) => {
    const back = decodeAccusation(encodeAccusation(a))
    assert.ok(back.ok, back.ok ? '' : back.reason)
    assert.equal(back.value, a)
  }), params)
})

for (const codec of CODECS) {
  test(`${codec.name} never throws on random bytes and refuses them with a reason (seed ${SEED})`, () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      const result = safely(codec, bytes)
      if (result.ok) stable(codec, result.value)
    }), { ...params, numRuns: RUNS * 5 })
  })

  test(`${codec.name} refuses every truncation and every extension of a valid input, with a reason (seed ${SEED})`, () => {
    fc.assert(fc.property(codec.valid, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 16 }), (bytes, cut, extra) => {
      const truncated = bytes.subarray(0, cut % bytes.length)
      assert.not.ok(safely(codec, truncated).ok, `truncation to ${truncated.length} of ${bytes.length} bytes accepted`)
      const extended = new Uint8Array([...bytes, ...extra])
      assert.not.ok(safely(codec, extended).ok, `${extra.length} extra bytes accepted`)
    }), params)
  })

  test(`${codec.name} never throws on mutated valid inputs, and what it accepts is stable (seed ${SEED})`, () => {
    fc.assert(fc.property(codec.valid, codec.valid, fc.integer(), (bytes, other, seed) => {
      const next = seededRng(seed)
      const mutated = mutate(bytes, next, other)
      const result = safely(codec, mutated.bytes)
      if (result.ok) stable(codec, result.value)
    }), { ...params, numRuns: RUNS * 5 })
  })
}

test(`every mutator, alone, keeps decode() from throwing on session frames (seed ${SEED})`, () => {
  const frames = fc.sample(sessionMessage, { seed: SEED, numRuns: 50 }).map(encode)
  const next = seededRng(SEED)
  for (const mutator of MUTATORS) {
    for (let i = 0; i < 200; i++) {
      const bytes = mutator.apply(frames[i % frames.length], next, frames[(i * 7) % frames.length])
      const result = safely(CODECS[0], bytes)
      if (result.ok) stable(CODECS[0], result.value)
    }
  }
})

test.run()
