// A snapshot the core has just taken holds its state as the text the core
// serialised it to (to copy the live state and to measure it), and the store
// writes the snapshot's JSON around that text. Two passes over a state of
// several MiB are saved on the event loop of every member, each time a session
// snapshots: the store's own JSON.stringify (~5 ms per MiB on this project's
// 2-core box) and the JSON.parse that made the copy (~2–3 ms per MiB), which
// nothing of the agent reads: the store wants text.
//
// The snapshot's `state` is parsed from the text the first time it is read (a
// snapshot sent to a member that lags, the simulator's store, a test), and is
// then an ordinary value. The text is kept beside the snapshot (a WeakMap:
// nothing outlives the snapshot object) and taken once, by the store's write of
// the record, unless the state was read first: from then on the parsed value is
// the snapshot's state (a reader may have changed it) and it is serialised as
// usual.

import type { JsonValue, SessionSnapshotBody } from '../../protocol/messages.ts'

const stateTexts = new WeakMap<SessionSnapshotBody, string>()

// The snapshot with these fields whose state is JSON.parse(stateText), parsed
// when first read. Keys in the order snapshotJson writes them.
export function snapshotOfText (fields: Omit<SessionSnapshotBody, 'state' | 'dedup'>, stateText: string, dedup: SessionSnapshotBody['dedup']): SessionSnapshotBody {
  const snapshot: SessionSnapshotBody = { ...fields, state: null, dedup }
  let parsed: JsonValue | undefined
  // Redefining the key keeps its place among the others (JSON.stringify's order).
  Object.defineProperty(snapshot, 'state', {
    enumerable: true,
    configurable: true,
    get (): JsonValue {
      if (parsed === undefined) {
        parsed = JSON.parse(stateText) as JsonValue
        stateTexts.delete(snapshot)
      }
      return parsed
    },
    set (value: JsonValue): void {
      parsed = value
      stateTexts.delete(snapshot)
    }
  })
  stateTexts.set(snapshot, stateText)
  return snapshot
}

// The length of the kept state text, or null.
export function keptStateBytes (snapshot: SessionSnapshotBody): number | null {
  return stateTexts.get(snapshot)?.length ?? null
}

// JSON.stringify(snapshot), the same text, built around the kept state text if
// there is one (which is then forgotten; the state can still be read from it).
// Keys in the order snapshotAt gives them (replica.ts);
// test/unit/snapshot-text.test.ts holds the two equal.
export function snapshotJson (snapshot: SessionSnapshotBody): string {
  const stateText = stateTexts.get(snapshot)
  if (stateText === undefined) return JSON.stringify(snapshot)
  stateTexts.delete(snapshot)
  // The other keys, without reading `state` (that would parse it).
  const head: Record<string, unknown> = {}
  for (const key of Object.keys(snapshot)) if (key !== 'state' && key !== 'dedup') head[key] = snapshot[key as keyof SessionSnapshotBody]
  const headText = JSON.stringify(head)
  return `${headText.slice(0, -1)}${headText.length > 2 ? ',' : ''}"state":${stateText},"dedup":${JSON.stringify(snapshot.dedup)}}`
}
