// An owner whose disk is slow hands its sessions over (maybeResign, below);
// the host says when its disk is slow (disk-watch.ts).

import type { PeerKey } from '../core/io.ts'
import { configSettled, isLive, stepDown } from './owner.ts'
import { config } from './replica.ts'
import type { Ctx, Replica } from './replica.ts'

// An owner answers a write only once its own copy is durable, so an owner whose
// disk is slow (ctx.diskSlow: a worn SD card whose fsyncs take 200 ms) makes
// every write of its sessions wait for it, where a standby's slow disk costs
// nothing (memberLagMs). Such an owner steps down, between writes, for a
// member that keeps up: one that offers the service, answers within
// memberStaleMs, holds every entry of the log, and whose timed acks (its
// fsync included) come back within half of slowFsyncMs. It stops heartbeating;
// the standbys find it silent after ownerTimeoutMs, its diagnosis answer says
// it does not serve, and the first in the queue takes over (this agent stands
// last while its disk is slow: election.ts). Nothing committed is lost: the
// member that takes over holds every entry, so it wins the vote. Without a
// member that keeps up (every disk slow, or a member not caught up) it stays
// owner: slow writes beat none. Members' verdicts on their own disks can
// disagree for a few seconds (a disk just fast again, its agent not sure yet),
// and the member chosen may stand after us: a member that resigned stands
// after every other, and does not resign the same session again for
// RESIGN_HOLDOFF_MS, so a session changes hands for a slow disk at most twice
// in that time. Without both, two members each finding its own disk slow
// handed one session back and forth every 500 ms (a chaos sweep with slow
// disks, replicas 1: SEED=21).
export const RESIGN_HOLDOFF_MS = 30_000

export function maybeResign (ctx: Ctx, r: Replica): boolean {
  if (!ctx.diskSlow || r.role !== 'owner' || r.closed || r.quiet !== null || r.repair !== null || !configSettled(r)) return false
  if (ctx.now - r.resignedAtMs < RESIGN_HOLDOFF_MS) return false
  if (r.waiters.size > 0 || r.commitIndex !== r.log.lastIndex || r.commitIndex < r.readableFromIndex) return false
  let to: PeerKey | null = null
  let ackMs = Infinity
  for (const peer of config(r).members) {
    if (peer === ctx.self || ctx.directory.status(peer) !== 'alive') continue
    const p = r.progress.get(peer)
    if (p === undefined || p.matchIndex !== r.log.lastIndex || !isLive(ctx, r, peer) || !(p.ackMs <= ctx.config.slowFsyncMs / 2)) continue
    if (!(ctx.directory.record(peer)?.services.some((s) => s.name === r.info.service) ?? false)) continue
    if (p.ackMs < ackMs) {
      to = peer
      ackMs = p.ackMs
    }
  }
  if (to === null) return false
  ctx.emit({ type: 'resigned', sessionId: r.id, service: r.info.service, epoch: r.epoch, to, ackMs })
  r.resignedAtMs = ctx.now
  stepDown(ctx, r, r.epoch, null, 'its disk is slow')
  return true
}
