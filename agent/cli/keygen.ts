// `edge-agent keygen --cluster`: writes a new pre-shared cluster key (a v1 swarm
// key file, mode 0600). Every agent of the cluster is then started with
// --cluster-key <file>; connections from anyone without it are refused.

import { closeSync, constants, fchmodSync, fsyncSync, openSync, writeSync } from 'node:fs'
import { formatSwarmKey, generateClusterKey } from '../net/cluster-key.ts'
import { parseFlags, UsageError } from './args.ts'

export const DEFAULT_KEY_FILE = 'cluster.key'

export const KEYGEN_HELP = `Usage: edge-agent keygen --cluster [--out <file>] [--force]

Writes a new random cluster key (32 bytes, the v1 swarm key format of libp2p's
private networks) to a file readable only by its owner (mode 0600). Copy it to
every box of the cluster and start each agent with --cluster-key <file>: agents
then accept connections only from peers that hold the same key. Keep it secret;
anyone who has it can join.

  --cluster          generate a cluster key (the only kind there is, for now)
  --out <file>       where to write it (default ./${DEFAULT_KEY_FILE}); "-" prints it
  --force            replace an existing file
  -h, --help         show this help

Exit codes: 0 on success, 1 when the file cannot be written, 2 on a usage error
(including a file that exists without --force).`

const FLAGS = {
  cluster: { type: 'boolean' },
  out: { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

export async function runKeygen (argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, FLAGS, 0)
  if (values.help === true) {
    console.log(KEYGEN_HELP)
    return 0
  }
  if (values.cluster !== true) throw new UsageError('say which key: --cluster')
  const out = typeof values.out === 'string' ? values.out : DEFAULT_KEY_FILE
  if (out === '') throw new UsageError('--out needs a file name')
  const text = formatSwarmKey(generateClusterKey())
  if (out === '-') {
    process.stdout.write(text)
    return 0
  }
  // O_EXCL: an existing key is never overwritten by accident (every agent
  // holding it would be cut off); --force truncates it instead.
  const flags = constants.O_WRONLY | constants.O_CREAT | (values.force === true ? constants.O_TRUNC : constants.O_EXCL)
  let fd: number
  try {
    fd = openSync(out, flags, 0o600)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw new UsageError(`${out} exists; refusing to overwrite a cluster key (agents using it would be cut off). Use --force to replace it`)
    process.stderr.write(`edge-agent keygen: cannot write ${out}: ${code ?? (error as Error).message}\n`)
    return 1
  }
  try {
    // A replaced file keeps its old mode unless told.
    fchmodSync(fd, 0o600)
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  process.stderr.write(`edge-agent keygen: wrote a cluster key to ${out} (mode 0600); start every agent with --cluster-key ${out}\n`)
  return 0
}
