// One session's replicated log on one member: a snapshot (the applied state up
// to `snapshotIndex`) and the entries still kept, from `firstIndex` on. Entries
// the snapshot already covers may be kept a while (firstIndex ≤ snapshotIndex):
// a lagging standby or a candidate can still be sent them instead of a snapshot.
// Group configurations live in the log (create and config entries) and take
// effect as soon as they are appended, so truncating the log can take one back.

import type { GroupConfig, LogEntry, SessionSnapshotBody } from '../../protocol/messages.ts'

export type SnapshotMeta = { index: number; epoch: number; config: GroupConfig | null }

export class ReplicaLog {
  #first = 1
  // Epoch of the entry just before #first (0 when there is none).
  #prevEpoch = 0
  #entries: LogEntry[] = []
  #snapshot: SnapshotMeta = { index: 0, epoch: 0, config: null }
  // Config changes after the snapshot, in index order.
  #configs: Array<{ index: number; config: GroupConfig }> = []

  static from (snapshot: SessionSnapshotBody | null, entries: LogEntry[]): ReplicaLog {
    const log = new ReplicaLog()
    if (snapshot !== null) log.installSnapshot(snapshot)
    for (const entry of entries) log.append(entry)
    return log
  }

  get snapshotIndex (): number {
    return this.#snapshot.index
  }

  get firstIndex (): number {
    return this.#first
  }

  get lastIndex (): number {
    return this.#first + this.#entries.length - 1
  }

  get lastEpoch (): number {
    return this.#entries.length === 0 ? this.#prevEpoch : this.#entries[this.#entries.length - 1].epoch
  }

  // Entries kept in memory.
  get length (): number {
    return this.#entries.length
  }

  // The epoch of the entry at `index`; null when it is not known here.
  epochAt (index: number): number | null {
    if (index === 0) return 0
    if (index === this.#first - 1) return this.#prevEpoch
    const entry = this.entry(index)
    if (entry !== null) return entry.epoch
    return index === this.#snapshot.index ? this.#snapshot.epoch : null
  }

  entry (index: number): LogEntry | null {
    const at = index - this.#first
    return at >= 0 && at < this.#entries.length ? this.#entries[at] : null
  }

  // Whether entries from `index` on can be sent from this log.
  has (index: number): boolean {
    return index >= this.#first
  }

  // Entries from `fromIndex` on (at most `max`).
  slice (fromIndex: number, max: number): LogEntry[] {
    const at = Math.max(0, fromIndex - this.#first)
    return this.#entries.slice(at, at + max)
  }

  // The group in force: the last config appended (committed or not).
  get config (): GroupConfig | null {
    return this.#configs.length > 0 ? this.#configs[this.#configs.length - 1].config : this.#snapshot.config
  }

  // The config in force at `index` (index ≥ snapshotIndex).
  configAt (index: number): GroupConfig | null {
    let found = this.#snapshot.config
    for (const change of this.#configs) if (change.index <= index) found = change.config
    return found
  }

  // Whether `peer` is a data member of any config this log holds (its
  // snapshot's, or a config entry's, committed or not).
  hadMember (peer: string): boolean {
    if (this.#snapshot.config?.members.includes(peer) ?? false) return true
    for (const change of this.#configs) if (change.config.members.includes(peer)) return true
    return false
  }

  append (entry: LogEntry): void {
    if (entry.index !== this.lastIndex + 1) throw new Error(`log: entry ${entry.index} does not follow ${this.lastIndex}`)
    this.#entries.push(entry)
    const body = entry.body
    if (body.kind === 'create' || body.kind === 'config') this.#configs.push({ index: entry.index, config: body.config })
  }

  // Drops entries with index ≥ fromIndex (never below the snapshot); returns how
  // many went.
  truncateFrom (fromIndex: number): number {
    if (fromIndex <= this.#snapshot.index) throw new Error(`log: cannot truncate at ${fromIndex}, the snapshot covers ${this.#snapshot.index}`)
    const keep = Math.max(0, fromIndex - this.#first)
    const dropped = this.#entries.length - keep
    if (dropped <= 0) return 0
    this.#entries.length = keep
    this.#configs = this.#configs.filter((change) => change.index < fromIndex)
    return dropped
  }

  // Records a snapshot taken at `meta.index` and forgets entries before
  // `keepFrom` (≤ meta.index + 1).
  compact (meta: SnapshotMeta, keepFrom: number): void {
    if (meta.index <= this.#snapshot.index) return
    this.#snapshot = meta
    this.#configs = this.#configs.filter((change) => change.index > meta.index)
    const drop = Math.min(keepFrom, meta.index + 1) - this.#first
    if (drop <= 0) return
    this.#prevEpoch = this.epochAt(this.#first + drop - 1) ?? this.#prevEpoch
    this.#entries = this.#entries.slice(drop)
    this.#first += drop
  }

  // Replaces everything with a snapshot received from the owner.
  installSnapshot (snapshot: SessionSnapshotBody): void {
    this.#snapshot = { index: snapshot.index, epoch: snapshot.indexEpoch, config: snapshot.config }
    this.#entries = []
    this.#configs = []
    this.#first = snapshot.index + 1
    this.#prevEpoch = snapshot.indexEpoch
  }

  // Raft's ordering of logs: by last epoch, then last index.
  static compare (aEpoch: number, aIndex: number, bEpoch: number, bIndex: number): number {
    return aEpoch !== bEpoch ? aEpoch - bEpoch : aIndex - bIndex
  }
}
