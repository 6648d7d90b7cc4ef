// Role hooks (M1.4): a command run when this agent becomes or stops being a
// session's owner, the way keepalived runs notify scripts to move a service
// address. The command runs in a shell with the session in its environment; it
// never blocks the agent, and one that hangs is killed.

import { spawn } from 'node:child_process'
import type { Logger } from 'pino'

// A hook still running after this long is killed.
export const HOOK_TIMEOUT_MS = 30_000

export type HookEnv = {
  EDGE_SESSION_ID: string
  EDGE_SERVICE: string
  EDGE_EPOCH: string
  EDGE_ROLE: 'owner' | 'standby'
  EDGE_PREVIOUS_OWNER: string
  EDGE_AGENT_ID: string
}

export function runHook (command: string, env: HookEnv, log: Logger): void {
  const child = spawn(command, { shell: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-2_000) })
  const timer = setTimeout(() => child.kill('SIGKILL'), HOOK_TIMEOUT_MS)
  child.on('error', (error) => log.error({ err: error, command }, 'role hook could not start'))
  child.on('exit', (code, signal) => {
    clearTimeout(timer)
    const fields = { command, session: env.EDGE_SESSION_ID, role: env.EDGE_ROLE, epoch: env.EDGE_EPOCH, code, signal }
    if (code === 0) log.info(fields, 'role hook ran')
    else log.warn({ ...fields, stderr: stderr.trim() }, 'role hook failed')
  })
}
