// JSON values in session frames (protocol/session-codec.ts): size and depth limits
// checked before and after parsing, without recursion.

import { Reader, WireError, Writer } from './wire.ts'
import { MAX_JSON_DEPTH } from './limits.ts'
import type { JsonValue } from './messages.ts'

// ---------------------------------------------------------------- JSON

// Depth counts enclosing arrays and objects: a scalar is 0 deep, [] is 1, [[]] 2.
//
// decode scans the text before JSON.parse: V8 parses a 16 MiB run of '[' without
// overflowing its stack, but it takes seconds and builds millions of arrays, so a
// nesting bomb is refused from the text alone, in one pass that allocates nothing.
// The same pass notices numbers that could have overflowed to ±Infinity ('1e400',
// 309 or more digits in a row); only then is the parsed value walked to check.
const JSON_PLAIN = 0
const JSON_CHECK_NUMBERS = 1
const JSON_TOO_DEEP = 2
// 10^308 has 309 digits and is finite, 10^309 is not: a shorter run of digits
// without an exponent cannot overflow.
const OVERFLOW_DIGITS = 309

function scanJson (text: string): number {
  let verdict = JSON_PLAIN
  let depth = 0
  let digits = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: the next character is escaped
      else if (c === 0x22) inString = false
      continue
    }
    if (c >= 0x30 && c <= 0x39) {
      if (++digits >= OVERFLOW_DIGITS) verdict = JSON_CHECK_NUMBERS
      continue
    }
    // 'e' right after a digit is an exponent; in true and false it follows a letter.
    if ((c === 0x65 || c === 0x45) && digits > 0) verdict = JSON_CHECK_NUMBERS
    digits = 0
    if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) { if (++depth > MAX_JSON_DEPTH) return JSON_TOO_DEEP }
    else if (c === 0x5d || c === 0x7d) depth--
  }
  return verdict
}

export function readJson (r: Reader, maxBytes: number, field: string): JsonValue {
  const text = r.string(maxBytes, field)
  const scan = scanJson(text)
  if (scan === JSON_TOO_DEEP) throw new WireError(`${field} nests deeper than ${MAX_JSON_DEPTH} levels`)
  let value: JsonValue
  try {
    value = JSON.parse(text)
  } catch {
    throw new WireError(`${field} is not valid JSON`)
  }
  if (scan === JSON_CHECK_NUMBERS) {
    const problem = jsonProblem(value, maxBytes)
    if (problem !== null) throw new WireError(`${field} ${problem}`)
  }
  return value
}

// The walk refuses what JSON.stringify would drop or rewrite (undefined, functions,
// NaN and ±Infinity as null, class instances through toJSON), so that peers receive
// the value the sender holds.
export function writeJson (w: Writer, value: JsonValue, maxBytes: number, field: string): void {
  const problem = jsonProblem(value, maxBytes)
  if (problem !== null) throw new RangeError(`${field} ${problem}`)
  const text = JSON.stringify(value)
  if (typeof text !== 'string') throw new RangeError(`${field} has no JSON form`)
  try {
    w.string(text, maxBytes)
  } catch (error) {
    if (error instanceof RangeError) throw new RangeError(`${field}: ${error.message}`)
    throw error
  }
}

// Why a value a terminal sent (parsed JSON, any depth) cannot be logged as an op,
// or null: deeper than MAX_JSON_DEPTH, or more than `maxValues` values. Checked
// before anything walks the value recursively (JSON.stringify overflows the
// stack on a few thousand levels) and before it is logged: the replication
// frame's encoder refuses the same values, and an entry it cannot send would
// stall its session on every member that took it.
export function jsonValueProblem (value: unknown, maxValues: number): string | null {
  return jsonProblem(value, maxValues)
}

// The walk's work list, reused across calls: containers still to visit and their
// depths, as a stack below walkTop. Slots are cleared as they are popped (and all of
// them when a walk stops early), so the list never keeps a value alive; its length
// is never reset, so a walk allocates nothing once the list has grown.
const walkNodes: Array<object | null> = []
const walkDepths: number[] = []
let walkTop = 0

// Why `root` is not a JSON value within MAX_JSON_DEPTH, or null. Iterative, so no
// value overflows the stack. It stops after `maxValues` values: each takes at least
// one byte of text, and a value that shares sub-objects cannot make it run long.
function jsonProblem (root: unknown, maxValues: number): string | null {
  walkTop = 0
  let problem = visitJson(root, 0)
  let values = 1
  while (problem === null && walkTop > 0) {
    walkTop--
    const node = walkNodes[walkTop] as Record<string, unknown>
    const depth = walkDepths[walkTop]
    walkNodes[walkTop] = null
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length && problem === null; i++) problem = visitJson(node[i], depth)
      values += node.length
    } else {
      for (const key in node) {
        problem = visitJson(node[key], depth)
        values++
        if (problem !== null) break
      }
    }
    if (problem === null && values > maxValues) problem = `has more than ${maxValues} values`
  }
  while (walkTop > 0) walkNodes[--walkTop] = null
  return problem
}

// Checks a scalar in place; queues a container for the walk.
function visitJson (value: unknown, parentDepth: number): string | null {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return null
    case 'number':
      return Number.isFinite(value) ? null : `has a non-finite number ${value}`
    case 'object': {
      if (value === null) return null
      if (parentDepth >= MAX_JSON_DEPTH) return `nests deeper than ${MAX_JSON_DEPTH} levels`
      if (!Array.isArray(value)) {
        const proto: unknown = Object.getPrototypeOf(value)
        if (proto !== Object.prototype && proto !== null) return 'has an object that is not a plain object'
      }
      walkNodes[walkTop] = value
      walkDepths[walkTop] = parentDepth + 1
      walkTop++
      return null
    }
    default:
      return `has a value of type ${typeof value}`
  }
}
