// The client's public types and errors (agent/client/edge-client.ts uses them;
// agent/client/index.ts exports them).

import type { JsonValue, Position } from '../../protocol/messages.ts'

export type Role = 'owner' | 'standby' | 'witness'
export type GroupMember = { id: string; http: string; role: Role }
export type OwnerRef = { id: string; http: string }

export type EdgeClientOptions = {
  // Agents' HTTP URLs to try for open/resume/list, in order.
  agents: string[]
  // @default 800
  requestTimeoutMs?: number
  // @default 15000
  deadlineMs?: number
  // How appends travel: 'stream', every append and batch to an agent on one
  // kept connection, pipelined (the deltas stream; an agent without it is asked
  // over HTTP), or 'http', one HTTP request each.
  // @default 'stream'
  transport?: 'stream' | 'http'
  // PEM certificate(s) to trust for https agents besides the system's roots
  // (an agent started with a self-signed --tls-cert, or a private CA).
  ca?: string | Buffer
}

export type OpenRequest = { terminalId: string; service: string; position?: Position }
export type PendingOp = { clientSeq: number; op: JsonValue }
// What toJSON() saves; resume() takes it back (only the token is required).
// `pending` is the first op whose fate is unknown; `pendingOps` all of them
// (consecutive clientSeqs) when a batch left more than one.
export type SavedSession = { token: string; sessionId?: string; epoch?: number; lastIndex?: number; clientSeq?: number; pending?: PendingOp | null; pendingOps?: PendingOp[] }
export type SessionJson = { sessionId: string; token: string; epoch: number; lastIndex: number; clientSeq: number; pending?: PendingOp; pendingOps?: PendingOp[] }
export type AppendResult = { index: number; epoch: number; duplicate: boolean }
export type SessionState = {
  sessionId: string
  service: string
  epoch: number
  index: number
  state: unknown
  lastClientSeq: number
  owner: OwnerRef | null
  group: GroupMember[]
  // Deployed services only: the package version the session runs, and the
  // error of its last failed op on the answering agent, if any.
  serviceVersion?: string | null
  serviceError?: string
}
export type SessionSummary = { sessionId: string; [key: string]: unknown }

// An agent refused, or none answered. `status` is the HTTP status (0 when no
// agent answered at all); `serverError` is the agent's {"error"} text.
export class EdgeClientError extends Error {
  override name = 'EdgeClientError'
  readonly status: number
  readonly serverError: string | null
  readonly agent: string | null

  constructor (message: string, status: number, serverError: string | null, agent: string | null) {
    super(message)
    this.status = status
    this.serverError = serverError
    this.agent = agent
  }
}

// An append ran out of time without an acknowledgement: it may or may not be
// applied. The session keeps it pending; the next append() re-sends it first.
export class OutcomeUnknownError extends EdgeClientError {
  override name = 'OutcomeUnknownError'
  readonly clientSeq: number

  constructor (message: string, status: number, serverError: string | null, agent: string | null, clientSeq: number) {
    super(message, status, serverError, agent)
    this.clientSeq = clientSeq
  }
}

// A batch whose op was refused by the service or a limit (400, 413) after the
// ops before it were acknowledged: `acknowledged` holds their results, the
// refused op and those after it were not logged (their clientSeqs are free).
export class BatchRefusedError extends EdgeClientError {
  override name = 'BatchRefusedError'
  readonly acknowledged: AppendResult[]
  readonly refusedClientSeq: number

  constructor (message: string, status: number, serverError: string | null, agent: string | null, acknowledged: AppendResult[], refusedClientSeq: number) {
    super(message, status, serverError, agent)
    this.acknowledged = acknowledged
    this.refusedClientSeq = refusedClientSeq
  }
}

// An agent showed a session older than one this client has already seen: an
// index or epoch below what was acknowledged. Never retried; it is not a
// transport failure but a broken promise.
export class RollbackError extends Error {
  override name = 'RollbackError'
}
