// The JSON text of a snapshot the core has just taken, from the text of its
// state, which the core serialised already (to copy the live state and to
// measure it). The store writes a snapshot as JSON: serialising a state of
// several MiB a second time cost ~5 ms per MiB on the event loop of every
// member, each time the session snapshots.
//
// The state's text is kept beside the snapshot (a WeakMap: nothing outlives the
// snapshot object) and taken once, by the store's write of the record; a
// snapshot that was not taken here, or whose text was taken already, is
// serialised as usual. The text is the snapshot's until then: its state is a
// parsed copy that nothing else holds.

import type { SessionSnapshotBody } from '../../protocol/messages.ts'

const stateTexts = new WeakMap<SessionSnapshotBody, string>()

// Keeps `stateText`, which JSON.parse turned into snapshot.state.
export function keepStateText (snapshot: SessionSnapshotBody, stateText: string): void {
  stateTexts.set(snapshot, stateText)
}

// The length of the kept state text, or null.
export function keptStateBytes (snapshot: SessionSnapshotBody): number | null {
  return stateTexts.get(snapshot)?.length ?? null
}

// JSON.stringify(snapshot), the same text, built around the kept state text if
// there is one (which is then forgotten). Keys in the order snapshotAt gives
// them (replica.ts); test/unit/snapshot-text.test.ts holds the two equal.
export function snapshotJson (snapshot: SessionSnapshotBody): string {
  const stateText = stateTexts.get(snapshot)
  if (stateText === undefined) return JSON.stringify(snapshot)
  stateTexts.delete(snapshot)
  const { state: _state, dedup, ...head } = snapshot
  const headText = JSON.stringify(head)
  return `${headText.slice(0, -1)}${headText.length > 2 ? ',' : ''}"state":${stateText},"dedup":${JSON.stringify(dedup)}}`
}
