// `edge-agent session`: open, append to, read, close and list replicated sessions
// through an agent's HTTP API, with the EdgeClient a terminal uses. Output is JSON.

import { readFileSync } from 'node:fs'
import { EdgeClient, EdgeClientError, RollbackError, sessionIdOf } from '../client/index.ts'
import type { Session } from '../client/index.ts'
import { ConfigError, parsePosition } from '../config.ts'
import { MAX_BATCH_OPS } from '../../protocol/limits.ts'
import type { JsonValue } from '../../protocol/messages.ts'
import { parseFlags, UsageError } from './args.ts'
import type { FlagSpec } from './args.ts'

const DEFAULT_AGENT = 'http://127.0.0.1:7700'
// A command line gives up sooner than a terminal (15 s): someone is waiting.
const DEFAULT_TIMEOUT_MS = 5_000

const COMMON_HELP = `  --agent <url>         the agent's HTTP URL (default ${DEFAULT_AGENT}); any agent
                        will do, requests follow the session to its owner
  --timeout <ms>        give up after this long (default ${DEFAULT_TIMEOUT_MS})
  --ca <file>           PEM certificate to trust for an https agent (its
                        self-signed --tls-cert, or a private CA)
  --json                accepted for symmetry; the output is always JSON
  -h, --help            show this help`

const EXIT_CODES = 'Exit codes: 0 on success, 1 when the agent cannot be reached or refuses, 2 on a usage error.'

export const SESSION_HELP = `Usage: edge-agent session <subcommand> [options]

Works with replicated terminal sessions as a terminal would: requests go to the
session's owner (following redirects), wait out 503s, move down the backup queue
when an agent is gone, and re-send a delta with the same clientSeq. Prints JSON.

Subcommands:
  open      open a session                       (edge-agent session open --help)
  append    append one delta                     (edge-agent session append --help)
  get       show a session's state               (edge-agent session get --help)
  close     close a session                      (edge-agent session close --help)
  list      list the sessions an agent holds     (edge-agent session list --help)

Options (every subcommand):
${COMMON_HELP}

${EXIT_CODES}`

const OPEN_HELP = `Usage: edge-agent session open --service <name> --terminal <id> [options]

Opens a session and prints {"sessionId", "token", "epoch", "owner", "group"}.
Keep the token: every other subcommand needs it.

  --service <name>      the service the session runs (e.g. log)
  --terminal <id>       this terminal's id
  --position <lat,lon>  the terminal's position in degrees (placement prefers near agents)
${COMMON_HELP}

${EXIT_CODES}`

const APPEND_HELP = `Usage: edge-agent session append <sessionId> --token <token> --op '<json>' [options]
       edge-agent session append <sessionId> --token <token> --ops '<json list>' [options]

Reads the session's lastClientSeq, appends the op with the next clientSeq and
prints {"index", "epoch"} once the session's group holds it durably. With --ops,
appends the list as one batch (consecutive clientSeqs, one request, one fsync per
agent) and prints {"results": [{"index", "epoch"}, …]}; an op refused part-way
leaves the ones before it appended (the error says how many).

  --token <token>       the token \`session open\` printed
  --op <json>           the delta, as JSON (e.g. '{"append":"hello"}')
  --ops <json list>     1-${MAX_BATCH_OPS} deltas, as a JSON list (e.g. '[{"append":"a"},{"append":"b"}]')
${COMMON_HELP}

${EXIT_CODES}`

const GET_HELP = `Usage: edge-agent session get <sessionId> --token <token> [options]

Prints the session as its owner holds it: {"sessionId", "service", "epoch",
"index", "state", "lastClientSeq", "owner", "group"}.

  --token <token>       the token \`session open\` printed
${COMMON_HELP}

${EXIT_CODES}`

const CLOSE_HELP = `Usage: edge-agent session close <sessionId> --token <token> [options]

Closes the session on every member of its group; prints {"sessionId", "closed": true}.

  --token <token>       the token \`session open\` printed
${COMMON_HELP}

${EXIT_CODES}`

const LIST_HELP = `Usage: edge-agent session list [options]

Prints {"sessions": […]}: the sessions the agent holds, as owner, standby or
witness, with their epoch, index, owner and members.

${COMMON_HELP}

${EXIT_CODES}`

const COMMON_FLAGS = {
  agent: { type: 'string' },
  ca: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

type Values = Record<string, string | boolean | undefined>
type Subcommand = { help: string; flags: FlagSpec; positionals: number; run: (client: EdgeClient, values: Values, positionals: string[]) => Promise<unknown> }

const SUBCOMMANDS: Record<string, Subcommand> = {
  open: { help: OPEN_HELP, flags: { ...COMMON_FLAGS, service: { type: 'string' }, terminal: { type: 'string' }, position: { type: 'string' } }, positionals: 0, run: runOpen },
  append: { help: APPEND_HELP, flags: { ...COMMON_FLAGS, token: { type: 'string' }, op: { type: 'string' }, ops: { type: 'string' } }, positionals: 1, run: runAppend },
  get: { help: GET_HELP, flags: { ...COMMON_FLAGS, token: { type: 'string' } }, positionals: 1, run: runGet },
  close: { help: CLOSE_HELP, flags: { ...COMMON_FLAGS, token: { type: 'string' } }, positionals: 1, run: runClose },
  list: { help: LIST_HELP, flags: COMMON_FLAGS, positionals: 0, run: async (client) => ({ sessions: await client.list() }) }
}

// Where the output goes: stdout and stderr, or a test's buffers.
export type SessionIo = { out: (text: string) => void; err: (text: string) => void }

const STDIO: SessionIo = {
  out: (text) => { process.stdout.write(text) },
  err: (text) => { process.stderr.write(text) }
}

export async function runSession (argv: string[], io: SessionIo = STDIO): Promise<number> {
  const [name, ...rest] = argv
  if (name === '-h' || name === '--help' || name === 'help') {
    io.out(SESSION_HELP + '\n')
    return 0
  }
  if (name === undefined) throw new UsageError(`missing subcommand (${Object.keys(SUBCOMMANDS).join(', ')})`)
  const sub = SUBCOMMANDS[name]
  if (sub === undefined) throw new UsageError(`unknown subcommand '${name}' (subcommands: ${Object.keys(SUBCOMMANDS).join(', ')})`)
  const { values, positionals } = parseFlags(rest, sub.flags, sub.positionals)
  if (values.help === true) {
    io.out(sub.help + '\n')
    return 0
  }
  const client = clientFor(values)
  try {
    io.out(JSON.stringify(await sub.run(client, values, positionals)) + '\n')
    return 0
  } catch (error) {
    if (!(error instanceof EdgeClientError || error instanceof RollbackError)) throw error
    io.err(`edge-agent session: ${error.message}\n`)
    return 1
  } finally {
    client.destroy()
  }
}

function clientFor (values: Values): EdgeClient {
  const agent = typeof values.agent === 'string' ? values.agent : DEFAULT_AGENT
  if (!/^https?:\/\/[^/]/.test(agent)) throw new UsageError(`--agent must be an http(s) URL (got ${agent})`)
  const timeoutMs = parseTimeout(values.timeout)
  const ca = typeof values.ca === 'string' ? readCa(values.ca) : undefined
  return new EdgeClient({ agents: [agent], deadlineMs: timeoutMs, requestTimeoutMs: Math.min(timeoutMs, 2_000), ...(ca === undefined ? {} : { ca }) })
}

export function readCa (path: string): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new UsageError(`cannot read --ca ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca ${path} holds no PEM certificate`)
  return text
}

function parseTimeout (value: string | boolean | undefined): number {
  if (value === undefined) return DEFAULT_TIMEOUT_MS
  const n = Number(value)
  if (!Number.isInteger(n) || n < 50 || n > 3_600_000) throw new UsageError(`--timeout must be a whole number of ms, 50-3600000 (got ${String(value)})`)
  return n
}

function required (values: Values, name: string): string {
  const value = values[name]
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`)
  return value
}

async function runOpen (client: EdgeClient, values: Values): Promise<unknown> {
  const service = required(values, 'service')
  const terminalId = required(values, 'terminal')
  let position
  try {
    position = typeof values.position === 'string' ? parsePosition(values.position, '--position') : undefined
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message)
    throw error
  }
  const session = await client.open({ terminalId, service, position })
  return { sessionId: session.sessionId, token: session.token, epoch: session.epoch, owner: session.owner, group: session.group }
}

// The session named on the command line, taken up with its token: resuming
// reads lastClientSeq, so an append goes out with the next one.
async function resumed (client: EdgeClient, values: Values, positionals: string[]): Promise<Session> {
  const sessionId = positionals[0]
  if (sessionId === undefined) throw new UsageError('missing <sessionId>')
  const token = required(values, 'token')
  const owner = sessionIdOf(token)
  if (owner === null) throw new UsageError('--token must look like <sessionId>~<64 hex>')
  if (owner !== sessionId) throw new UsageError(`--token belongs to session ${owner}, not ${sessionId}`)
  return await client.resume({ token })
}

async function runAppend (client: EdgeClient, values: Values, positionals: string[]): Promise<unknown> {
  if ((values.op === undefined) === (values.ops === undefined)) throw new UsageError('give either --op <json> or --ops <json list>')
  const flag = values.op === undefined ? 'ops' : 'op'
  let parsed: JsonValue
  try {
    parsed = JSON.parse(required(values, flag)) as JsonValue
  } catch (error) {
    throw new UsageError(`--${flag} is not JSON: ${(error as Error).message.split('\n')[0]}`)
  }
  if (flag === 'ops' && (!Array.isArray(parsed) || parsed.length === 0 || parsed.length > MAX_BATCH_OPS)) throw new UsageError(`--ops must be a JSON list of 1-${MAX_BATCH_OPS} deltas`)
  const session = await resumed(client, values, positionals)
  if (flag === 'op') {
    const ack = await session.append(parsed)
    return { index: ack.index, epoch: ack.epoch }
  }
  const results = await session.appendMany(parsed as JsonValue[])
  return { results: results.map((ack) => ({ index: ack.index, epoch: ack.epoch })) }
}

async function runGet (client: EdgeClient, values: Values, positionals: string[]): Promise<unknown> {
  return await (await resumed(client, values, positionals)).get()
}

async function runClose (client: EdgeClient, values: Values, positionals: string[]): Promise<unknown> {
  const session = await resumed(client, values, positionals)
  await session.close()
  return { sessionId: session.sessionId, closed: true }
}
