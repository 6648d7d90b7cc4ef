// A terminal's deltas at the owner: one at a time (POST …/deltas) or a batch
// of consecutive clientSeqs (POST …/batch). Each delta is answered from the
// dedup window, waits for its copy already in flight, is logged, or is refused
// before anything of it is logged. A batch logs its deltas in order, stops at the
// first refusal, sends every member ONE append frame for all of them, and is
// answered once its last logged delta commits (commits are in index order, so
// the whole prefix is then acknowledged).

import type { JsonValue } from '../../protocol/messages.ts'
import { MAX_BATCH_OPS, MAX_OP_BYTES, MAX_STATE_BYTES } from '../../protocol/limits.ts'
import { jsonValueProblem } from '../../protocol/session-json.ts'
import { advanceCommit, appendEntry, freshOwner, leaseValid, replicateAll, wait } from './owner.ts'
import { batchReply, dedupIndex } from './replica.ts'
import { APPLY_RETRY_MS, applyStalled } from './apply.ts'
import type { BatchItem, BatchRefusal, Ctx, Replica, ReplyTarget } from './replica.ts'
import type { ClientReply } from './types.ts'

export function clientAppend (ctx: Ctx, r: Replica, target: ReplyTarget, clientSeq: number, op: JsonValue): void {
  const admitted = admitDelta(ctx, r, clientSeq, op)
  if (admitted.kind === 'refused') return ctx.reply(target, admitted.reply)
  // A retry of a delta already applied: the answer it got (or would have got).
  if (admitted.kind === 'duplicate') return ctx.reply(target, { status: 200, body: { index: admitted.index, epoch: r.epoch, duplicate: true } })
  // A new delta, or a retry of one in flight: answered only once it commits
  // under a valid lease, or 503 at its deadline.
  wait(ctx, r, admitted.index, { target, clientSeq, deadlineMs: ctx.now + ctx.config.writeTimeoutMs, kind: 'append' })
  if (admitted.kind === 'logged') replicateLogged(ctx, r)
}

// What the owner does with one delta of a terminal: answers it from the dedup
// window, waits for its copy in flight, logs it, or refuses it (and logs nothing).
export type Admitted =
  | { kind: 'duplicate'; index: number }
  | { kind: 'in-flight'; index: number }
  | { kind: 'logged'; index: number; bytes: number }
  | { kind: 'refused'; reply: ClientReply }

// `batchBytes`: ops logged earlier in the same batch (not applied yet).
export function admitDelta (ctx: Ctx, r: Replica, clientSeq: number, op: JsonValue, batchBytes = 0): Admitted {
  // Only a clientSeq the owner has taken before can be a retry: a new one skips
  // both scans (the dedup window, the uncommitted tail), which a pipeline of
  // deltas would otherwise pay for every delta.
  if (clientSeq <= r.lastAcceptedSeq) {
    const known = dedupIndex(r, clientSeq)
    if (known !== null) return { kind: 'duplicate', index: known }
    const pending = pendingIndexOf(r, clientSeq)
    if (pending !== null) return { kind: 'in-flight', index: pending }
  }
  // An owner without its lease may have been replaced (cut off from its group,
  // say): its view of the sequence is stale, and a 409 from it would tell the
  // terminal its session rolled back. It only says it cannot serve.
  // A new owner that has not heard its group yet holds no lease, but its log is
  // complete (it won a majority and adopted the most up-to-date voter's tail):
  // it takes the next delta in sequence and answers once its group holds it
  // (under a lease by then), instead of sending the terminal away for another
  // round. Anything else waits for the lease, as above.
  const fresh = freshOwner(ctx, r) && clientSeq === r.lastAcceptedSeq + 1
  if (!fresh && !leaseValid(ctx, r)) return refused(503, { error: 'the owner cannot reach a majority of its group', retryAfterMs: ctx.config.heartbeatMs })
  if (clientSeq <= r.dedup.lastClientSeq) return refused(409, { error: `clientSeq ${clientSeq} was applied too long ago to answer again; the session is at ${r.dedup.lastClientSeq}` })
  if (clientSeq !== r.lastAcceptedSeq + 1) return refused(409, { error: `clientSeq must be ${r.lastAcceptedSeq + 1} (got ${clientSeq})`, expectedSeq: r.lastAcceptedSeq + 1 })
  const service = ctx.service(r.info.service)
  if (service === null) return refused(503, { error: `this agent does not run service ${r.info.service}` })
  // The dry run below would judge the op against a state behind the log.
  const stalled = applyStalled(r)
  if (stalled !== null) return refused(503, { error: stalled, retryAfterMs: APPLY_RETRY_MS })
  const shape = jsonValueProblem(op, MAX_OP_BYTES)
  if (shape !== null) return refused(400, { error: `op ${shape}` })
  const check = service.validate(op, r.state)
  if (!check.ok) return check.status === 503 ? refused(503, { error: check.reason, retryAfterMs: SERVICE_RETRY_MS }) : refused(400, { error: check.reason })
  const opBytes = JSON.stringify(op).length
  if (opBytes > MAX_OP_BYTES) {
    ctx.emit({ type: 'limit', limit: 'delta-size', sessionId: r.id })
    return refused(413, { error: `op of ${opBytes} bytes exceeds ${MAX_OP_BYTES}`, limit: 'delta-size' })
  }
  if (r.stateBytes + batchBytes + opBytes > MAX_STATE_BYTES) {
    ctx.emit({ type: 'limit', limit: 'state-size', sessionId: r.id })
    return refused(413, { error: `session state would exceed ${MAX_STATE_BYTES} bytes`, limit: 'state-size' })
  }
  const index = appendEntry(ctx, r, { kind: 'delta', clientSeq, op })
  r.lastAcceptedSeq = clientSeq
  return { kind: 'logged', index, bytes: opBytes }
}

// When a terminal should try again after a service that could not judge its op
// or serve its request by URL (deploy-http.ts): a deployed service's worker
// still loading, which usually takes well under a second, ms.
export const SERVICE_RETRY_MS = 250

function refused (status: number, body: Record<string, unknown>): Admitted {
  return { kind: 'refused', reply: { status, body } }
}

// After logging deltas: one append frame per member for all of them.
export function replicateLogged (ctx: Ctx, r: Replica): void {
  // The planted fault (test only) leaves replication to the next heartbeat.
  if (ctx.config.plantedFault === undefined) replicateAll(ctx, r)
  advanceCommit(ctx, r)
}

function pendingIndexOf (r: Replica, clientSeq: number): number | null {
  for (let i = r.log.lastIndex; i > r.commitIndex; i--) {
    const body = r.log.entry(i)?.body
    if (body?.kind === 'delta' && body.clientSeq === clientSeq) return i
  }
  return null
}

// Deltas clientSeq, clientSeq + 1, … in one request. The answer: 200 with
// {epoch, results: [{clientSeq, index, duplicate?}], refused?: {clientSeq,
// status, error}} once every logged delta of it commits; the refusal alone (its
// status) when the first delta is refused; 503 for the whole batch when the
// write concern is not met in time (a retry then gets the committed ones as
// duplicates).
export function clientAppendBatch (ctx: Ctx, r: Replica, target: ReplyTarget, clientSeq: number, ops: JsonValue[]): void {
  if (ops.length === 0 || ops.length > MAX_BATCH_OPS) return ctx.reply(target, { status: 400, body: { error: `a batch holds 1-${MAX_BATCH_OPS} ops (got ${ops.length})` } })
  const items: BatchItem[] = []
  let refusal: BatchRefusal | null = null
  let last = 0
  let logged = 0
  let bytes = 0
  for (const [i, op] of ops.entries()) {
    const seq = clientSeq + i
    const admitted = admitDelta(ctx, r, seq, op, bytes)
    if (admitted.kind === 'refused') {
      refusal = { clientSeq: seq, status: admitted.reply.status, body: admitted.reply.body }
      break
    }
    items.push({ clientSeq: seq, index: admitted.index, duplicate: admitted.kind === 'duplicate' })
    if (admitted.kind !== 'duplicate') last = Math.max(last, admitted.index)
    if (admitted.kind === 'logged') {
      logged++
      bytes += admitted.bytes
    }
  }
  // Nothing to wait for: every delta was a duplicate, or the first was refused.
  if (last === 0) return ctx.reply(target, batchReply(r, items, refusal))
  wait(ctx, r, last, { target, clientSeq, deadlineMs: ctx.now + ctx.config.writeTimeoutMs, kind: 'batch', items, refused: refusal })
  if (logged > 0) replicateLogged(ctx, r)
}
