// A real agent on a slow disk, for tests and benchmarks: the agent runs under
// strace, which adds `delayMs` to every fsync and fdatasync it makes (its other
// system calls run untraced: seccomp-bpf picks these two out). Needs Debian's
// `strace` and leave to ptrace a child; slowFsyncUnavailable says why not.

import { execFileSync } from 'node:child_process'

// The command prefix (AgentOptions.wrap).
export function slowFsyncWrap (delayMs: number): string[] {
  return ['strace', '-f', '-qq', '-o', '/dev/null', '--seccomp-bpf', '-e', 'trace=fsync,fdatasync', '-e', `inject=fsync,fdatasync:delay_exit=${Math.round(delayMs * 1000)}`]
}

// Why a child's fsyncs cannot be slowed here, or null.
export function slowFsyncUnavailable (): string | null {
  const wrap = slowFsyncWrap(1)
  try {
    execFileSync(wrap[0], [...wrap.slice(1), 'true'], { stdio: 'pipe', timeout: 10_000 })
    return null
  } catch (error) {
    return `strace cannot delay a child's fsyncs here: ${(error as Error).message.split('\n')[0]}`
  }
}
