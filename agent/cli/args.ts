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
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true })
  } catch (error) {
    throw new UsageError(oneLine((error as Error).message))
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[maxPositionals]}'`)
  }
  return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals }
}

// parseArgs explains itself over several lines; keep the first sentence.
function oneLine (message: string): string {
  return message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '').trim()
}
