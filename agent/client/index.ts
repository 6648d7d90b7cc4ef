// The terminal's client for replicated sessions (see edge-client.ts for the policy).

export { BatchRefusedError, CLIENT_DEFAULTS, EdgeClient, EdgeClientError, OutcomeUnknownError, RollbackError, Session, sessionIdOf } from './edge-client.ts'
export type {
  AppendResult, EdgeClientOptions, GroupMember, OpenRequest, OwnerRef, PendingOp, Role, SavedSession, SessionJson, SessionState, SessionSummary
} from './edge-client.ts'
export type { Transport } from './route.ts'
