// Fuzzing every decoder in protocol/ (decode for all 21 frame types,
// decodeRecord, decodeAccusation): `inputs` random and mutated inputs from one
// seed, each handed to a decoder. A valid corpus comes from the fast-check
// arbitraries (test/fixtures/arbitraries.ts); inputs are mutations of it (bit
// flips, boundary bytes, truncation, extension, splices, deleted and repeated
// runs, lying length fields, wrong types; sometimes stacked) or plain random
// bytes. A throw, or a refusal that reports a "decoder fault" (a reader bug the
// shell caught), is a bug in protocol/ and is listed with the seed and the input.
//
//   node bench/fuzz.ts                       1,000,000 inputs, random seed
//   BENCH_FUZZ_INPUTS=10000000 BENCH_FUZZ_SEED=7 node bench/fuzz.ts

import fc from 'fast-check'
import { randomInt } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { decode, decodeAccusation, decodeRecord, encode, encodeAccusation, encodeRecord } from '../protocol/codec.ts'
import type { Decoded } from '../protocol/messages.ts'
import { accusation, message, nodeRecord } from '../test/fixtures/arbitraries.ts'
import { mutate, randomBytes, seededRng } from '../test/fixtures/mutate.ts'
import { log } from './lib.ts'

export type FuzzDecoderFigures = { inputs: number; accepted: number; refused: number; throws: number; faults: number }

export type FuzzResult = {
  seed: number
  inputs: number
  seconds: number
  inputsPerSec: number
  corpus: number
  // Share of inputs that were mutations of a valid input (the rest: random bytes).
  mutatedShare: number
  decoders: Record<string, FuzzDecoderFigures>
  // Throws and decoder faults: each one a bug. Empty when all is well.
  problems: string[]
}

type Target = { name: string; decode: (bytes: Uint8Array) => Decoded<unknown>; corpus: Uint8Array[]; weight: number }

const CORPUS_PER_DECODER = 2_000
const MAX_RANDOM_BYTES = 300
const MAX_PROBLEMS_LISTED = 20

function targets (seed: number): Target[] {
  const sample = <T>(arb: fc.Arbitrary<T>): T[] => fc.sample(arb, { seed, numRuns: CORPUS_PER_DECODER })
  return [
    { name: 'decode', decode, corpus: sample(message).map(encode), weight: 8 },
    { name: 'decodeRecord', decode: decodeRecord, corpus: sample(nodeRecord).map(encodeRecord), weight: 1 },
    { name: 'decodeAccusation', decode: decodeAccusation, corpus: sample(accusation).map(encodeAccusation), weight: 1 }
  ]
}

export function benchFuzz (inputs = 1_000_000, seed = randomInt(2 ** 31)): FuzzResult {
  log(`fuzz: seed ${seed}, ${inputs} inputs; building the corpus`)
  const list = targets(seed)
  const weights = list.flatMap((t, i) => Array<number>(t.weight).fill(i))
  const figures: Record<string, FuzzDecoderFigures> = Object.fromEntries(list.map((t) => [t.name, { inputs: 0, accepted: 0, refused: 0, throws: 0, faults: 0 }]))
  const problems: string[] = []
  const next = seededRng(seed)
  let mutated = 0
  const t0 = performance.now()
  for (let i = 0; i < inputs; i++) {
    const target = list[weights[next(weights.length)]]
    const f = figures[target.name]
    let bytes: Uint8Array
    let how: string
    if (next(10) === 0) {
      bytes = randomBytes(next, next(MAX_RANDOM_BYTES))
      how = 'random'
    } else {
      const m = mutate(target.corpus[next(target.corpus.length)], next, target.corpus[next(target.corpus.length)])
      bytes = m.bytes
      how = m.name
      mutated++
    }
    f.inputs++
    try {
      const result = target.decode(bytes)
      if (result.ok) {
        f.accepted++
      } else {
        f.refused++
        if (result.reason.startsWith('decoder fault')) {
          f.faults++
          if (problems.length < MAX_PROBLEMS_LISTED) problems.push(`${target.name} input ${i} (${how}): ${result.reason}: ${hex(bytes)}`)
        }
      }
    } catch (error) {
      f.throws++
      if (problems.length < MAX_PROBLEMS_LISTED) problems.push(`${target.name} input ${i} (${how}) threw ${(error as Error).message}: ${hex(bytes)}`)
    }
  }
  const seconds = (performance.now() - t0) / 1_000
  const result: FuzzResult = {
    seed, inputs, seconds, inputsPerSec: inputs / seconds, corpus: list.reduce((n, t) => n + t.corpus.length, 0),
    mutatedShare: mutated / inputs, decoders: figures, problems
  }
  const bugs = Object.values(figures).reduce((n, f) => n + f.throws + f.faults, 0)
  log(`fuzz: ${inputs} inputs in ${seconds.toFixed(1)} s (${Math.round(result.inputsPerSec)}/s), ${bugs} throws or decoder faults`)
  return result
}

function hex (bytes: Uint8Array): string {
  const text = Buffer.from(bytes).toString('hex')
  return text.length > 200 ? `${text.slice(0, 200)}… (${bytes.length} bytes)` : text
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const seed = process.env.BENCH_FUZZ_SEED === undefined ? undefined : Number(process.env.BENCH_FUZZ_SEED)
  const result = benchFuzz(Number(process.env.BENCH_FUZZ_INPUTS ?? 1_000_000), seed)
  process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  process.exitCode = result.problems.length === 0 ? 0 : 1
}
