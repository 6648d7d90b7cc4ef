// Handlers are the agent's code running inside libp2p callbacks. An exception
// thrown there must not escape into libp2p (it would abort a stream, or worse
// become an unhandled rejection): it is caught, and the first one per handler is
// surfaced as a process warning so the bug is not silent.

const warned = new Set<string>()

export function guard (handler: string, call: () => void): void {
  try {
    call()
  } catch (err) {
    warnOnce(handler, err)
  }
}

export function warnOnce (handler: string, err: unknown): void {
  if (warned.has(handler)) return
  warned.add(handler)
  process.emitWarning(`agent/net: handler ${handler} threw: ${toError(err).message} (later errors from it are not reported)`, {
    code: 'EDGE_AGENT_NET_HANDLER'
  })
}

export function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export function toError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
