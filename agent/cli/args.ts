// Flag parsing on node:util's parseArgs, strict: an unknown flag, a missing value
// or a stray argument is a UsageError with a one-line reason (exit code 2).

import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'

export class UsageError extends Error {
  override name = 'UsageError'
}

export type FlagSpec = NonNullable<ParseArgsConfig['options']>

export function parseFlags (argv: string[], options: FlagSpec, maxPositionals: number): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  let parsed
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: true, tokens: true })
  } catch (error) {
    throw new UsageError(oneLine((error as Error).message))
  }
  // A flag given twice kept only its last value, silently: two --bootstrap
  // addresses joined through the second alone. Lists are one comma-separated value.
  const seen = new Set<string>()
  for (const token of parsed.tokens) {
    if (token.kind !== 'option' || options[token.name]?.multiple === true) continue
    if (seen.has(token.name)) {
      throw new UsageError(`--${token.name} is given twice; give each flag once (a list is one comma-separated value)`)
    }
    seen.add(token.name)
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[maxPositionals]}'`)
  }
  return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals }
}

// parseArgs refuses a value that starts with a dash ("--position -33.9,151.2" is
// "ambiguous"), yet southern latitudes and western longitudes do. A negative
// number cannot be a flag, so it is handed over as --name=value.
function joinNegativeValues (argv: string[], options: FlagSpec): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    // After "--" everything is a positional argument.
    if (argv[i] === '--') return [...out, ...argv.slice(i)]
    const name = /^--([^=]+)$/.exec(argv[i])?.[1]
    const next = argv[i + 1]
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${argv[i]}=${next}`)
      i++
    } else {
      out.push(argv[i])
    }
  }
  return out
}

// parseArgs explains itself over several lines; keep the first sentence.
function oneLine (message: string): string {
  return message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '').trim()
}
