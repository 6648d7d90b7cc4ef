#!/usr/bin/env node
// edge-agent: the command line. `start` runs an agent, `peek` shows what one sees,
// `session` works with replicated sessions as a terminal would, `check` checks a
// data directory for damage.

import { readFileSync } from 'node:fs'
import { UsageError } from '../agent/cli/args.ts'
import { KEYGEN_HELP, runKeygen } from '../agent/cli/keygen.ts'
import { DEPLOY_HELP, runDeploy, runServices, SERVICES_HELP } from '../agent/cli/deploy.ts'
import { CHECK_HELP, runCheck } from '../agent/cli/check.ts'
import { PEEK_HELP, runPeek } from '../agent/cli/peek.ts'
import { runSession, SESSION_HELP } from '../agent/cli/session.ts'
import { runSim, SIM_HELP } from '../agent/cli/sim.ts'
import { runStart, START_HELP } from '../agent/cli/start.ts'

const HELP = `Usage: edge-agent <command> [options]

A peer-to-peer agent for edge boxes: every box runs one; together they keep a
membership table (IP, services, load, position) and detect failures in seconds.

Commands:
  start     run an agent on this box            (edge-agent start --help)
  peek      show the members an agent sees      (edge-agent peek --help)
  session   open, append to, read a session     (edge-agent session --help)
  sim       run a simulated cluster with faults (edge-agent sim --help)
  deploy    ship service code by policy         (edge-agent deploy --help)
  services  which service versions run where    (edge-agent services --help)
  keygen    make a cluster key or a deployer key (edge-agent keygen --help)
  check     check a data directory for damage   (edge-agent check --help)

Options:
  -h, --help      show this help
  -v, --version   print the version`

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  start: { run: runStart, help: START_HELP },
  peek: { run: runPeek, help: PEEK_HELP },
  session: { run: runSession, help: SESSION_HELP },
  sim: { run: runSim, help: SIM_HELP },
  deploy: { run: runDeploy, help: DEPLOY_HELP },
  services: { run: runServices, help: SERVICES_HELP },
  keygen: { run: runKeygen, help: KEYGEN_HELP },
  check: { run: runCheck, help: CHECK_HELP }
}

async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    console.log(HELP)
    return command === undefined ? 2 : 0
  }
  if (command === '-v' || command === '--version') {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    console.log(pkg.version)
    return 0
  }
  const entry = COMMANDS[command]
  if (entry === undefined) throw new UsageError(`unknown command '${command}' (commands: ${Object.keys(COMMANDS).join(', ')})`)
  return await entry.run(rest)
}

let code: number
try {
  code = await main(process.argv.slice(2))
} catch (error) {
  if (!(error instanceof UsageError)) throw error
  const command = COMMANDS[process.argv[2] ?? ''] === undefined ? '' : ` ${process.argv[2]}`
  process.stderr.write(`edge-agent${command}: ${error.message} (see edge-agent${command} --help)\n`)
  code = 2
}
// Leftover sockets or timers of libp2p must not keep a finished command alive,
// but what was written must get out first: into a pipe whose reader is slower
// than us, writes past the pipe's 64 KiB are asynchronous, and exiting at once
// cut `edge-agent sim --json | …` short at 65,536 bytes. An empty write's
// callback runs once everything before it has been handed to the kernel.
const flushed = (stream: NodeJS.WriteStream): Promise<void> => new Promise((resolve) => { stream.write('', () => resolve()) })
await Promise.all([flushed(process.stdout), flushed(process.stderr)])
process.exit(code)
