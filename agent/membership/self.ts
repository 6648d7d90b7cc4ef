// The local node's own record: the only record this node may author. Every change
// bumps `seq`; a refutation or restart bumps `incarnation`. Each version is signed
// once here and relayed unchanged by everyone else.

import { encodeRecord } from '../../protocol/codec.ts'
import type { Load, NodeRecord, SignedRecord } from '../../protocol/messages.ts'
import type { Auth, SelfPatch } from '../core/io.ts'

export type PatchKind = 'none' | 'load' | 'data'

// Loads travel as ten-thousandths; quantising here keeps the local view equal to
// what every other member decodes.
export function quantiseLoad (load: Load): Load {
  const q = (value: number): number => Math.round(Math.min(1, Math.max(0, value)) * 10_000) / 10_000
  return { score: q(load.score), sessions: Math.max(0, Math.round(load.sessions)), elu: q(load.elu), cpu: q(load.cpu) }
}

function loadMoved (a: Load, b: Load, threshold: number): boolean {
  if (a.sessions !== b.sessions) return true
  return Math.abs(a.score - b.score) >= threshold || Math.abs(a.elu - b.elu) >= threshold || Math.abs(a.cpu - b.cpu) >= threshold
}

function sameJson (a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

// True when two versions of a record differ in nothing but load (and seq): such a
// change is placement data, not membership news.
export function onlyLoadChanged (before: NodeRecord, after: NodeRecord): boolean {
  return before.incarnation === after.incarnation && before.status === after.status &&
    before.ip === after.ip && before.http === after.http && before.region === after.region &&
    before.zone === after.zone && sameJson(before.addrs, after.addrs) &&
    sameJson(before.services, after.services) && sameJson(before.position, after.position)
}

export class SelfRecord {
  readonly #auth: Auth
  #record: NodeRecord
  #signed: SignedRecord

  constructor (record: NodeRecord, auth: Auth) {
    this.#auth = auth
    this.#record = { ...record, load: quantiseLoad(record.load) }
    this.#signed = this.#sign()
  }

  get record (): NodeRecord {
    return this.#record
  }

  get signed (): SignedRecord {
    return this.#signed
  }

  // Applies a patch; returns what kind of change it made. Load moves smaller than
  // `loadThreshold` are not changes (they would flood the cluster with records).
  patch (patch: SelfPatch, loadThreshold: number): PatchKind {
    let kind: PatchKind = 'none'
    const next: NodeRecord = { ...this.#record }
    for (const key of Object.keys(patch) as Array<keyof SelfPatch>) {
      if (key === 'load') continue
      if (patch[key] === undefined || sameJson(patch[key], this.#record[key])) continue
      Object.assign(next, { [key]: patch[key] })
      kind = 'data'
    }
    if (patch.load !== undefined) {
      const load = quantiseLoad(patch.load)
      if (loadMoved(load, this.#record.load, loadThreshold)) {
        next.load = load
        if (kind === 'none') kind = 'load'
      }
    }
    if (kind !== 'none') this.#replace({ ...next, seq: next.seq + 1 })
    return kind
  }

  // Raises the incarnation above `atLeast` (refuting an accusation made at it).
  refute (atLeast: number): void {
    this.#replace({ ...this.#record, incarnation: Math.max(this.#record.incarnation, atLeast) + 1, seq: 0 })
  }

  leave (): void {
    this.#replace({ ...this.#record, status: 'left', seq: this.#record.seq + 1 })
  }

  #replace (record: NodeRecord): void {
    this.#record = record
    this.#signed = this.#sign()
  }

  #sign (): SignedRecord {
    const bytes = encodeRecord(this.#record)
    return { record: this.#record, bytes, sig: this.#auth.sign(bytes) }
  }
}
