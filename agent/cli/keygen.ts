// `edge-agent keygen --cluster`: writes a new pre-shared cluster key (a v1 swarm
// key file, mode 0600). Every agent of the cluster is then started with
// --cluster-key <file>; connections from anyone without it are refused.
// `edge-agent keygen --deployer`: a deployer's Ed25519 signing key (deploy.ts).

import { closeSync, constants, fchmodSync, fsyncSync, openSync, writeSync } from 'node:fs'
import { clusterKeyId, formatSwarmKey, generateClusterKey } from '../net/cluster-key.ts'
import { parseFlags, UsageError } from './args.ts'
import { DEFAULT_DEPLOYER_KEY, writeDeployerKey } from './deploy.ts'

export const DEFAULT_KEY_FILE = 'cluster.key'

export const KEYGEN_HELP = `Usage: edge-agent keygen --cluster [--out <file>] [--force]
       edge-agent keygen --deployer [--out <file>]

--cluster writes a new random cluster key (32 bytes, the v1 swarm key format of
libp2p's private networks) to a file readable only by its owner (mode 0600).
Copy it to every box of the cluster and start each agent with --cluster-key
<file>: agents then accept connections only from peers that hold the same key.
Keep it secret; anyone who has it can join.

--deployer writes a new Ed25519 deployer key pair (mode 0600, never overwritten)
and prints its public key. Give the public key to agents with
--trusted-deployers <key> (or the key file itself: they read only its public
half); sign packages with edge-agent deploy --key <file>.

  --cluster          generate a cluster key
  --deployer         generate a deployer key
  --out <file>       where to write it (default ./${DEFAULT_KEY_FILE} for a cluster
                     key, ./${DEFAULT_DEPLOYER_KEY} for a deployer key); "-" prints
                     a cluster key instead
  --force            replace an existing cluster key file
  -h, --help         show this help

Exit codes: 0 on success, 1 when the file cannot be written, 2 on a usage error
(including a file that exists without --force).`

const FLAGS = {
  cluster: { type: 'boolean' },
  deployer: { type: 'boolean' },
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
  if ((values.cluster === true) === (values.deployer === true)) throw new UsageError('say which key: --cluster or --deployer')
  if (values.deployer === true) {
    if (values.force === true) throw new UsageError('a deployer key is never overwritten: --force is for cluster keys')
    const out = typeof values.out === 'string' ? values.out : DEFAULT_DEPLOYER_KEY
    if (out === '' || out === '-') throw new UsageError('--out needs a file name for a deployer key')
    return writeDeployerKey(out)
  }
  const out = typeof values.out === 'string' ? values.out : DEFAULT_KEY_FILE
  if (out === '') throw new UsageError('--out needs a file name')
  const key = generateClusterKey()
  const text = formatSwarmKey(key)
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
  process.stderr.write(`edge-agent keygen: wrote a cluster key to ${out} (mode 0600, key id ${clusterKeyId(key)}); start every agent with --cluster-key ${out}, or move a running cluster to it (README, "Changing the cluster key")\n`)
  return 0
}
