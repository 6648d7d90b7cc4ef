// Bodies of the session frames (message types 11–21), behind the version and type
// bytes that codec.ts reads and writes. codec.ts checks the frame limit and refuses
// trailing bytes; everything between is here. Readers throw WireError, which
// decode() turns into a refusal; writers throw RangeError for input that a peer
// would refuse, so what encode() produces always decodes.
//
// Layouts, in order (varint: canonical unsigned LEB128, a safe integer; flag: u8 0/1;
// text: length-prefixed UTF-8):
//   session-append        sessionId, epoch, seq, prevIndex, prevEpoch, commitIndex, entries
//   session-append-ack    sessionId, epoch, seq, ok flag, matchIndex, lastIndex
//   session-vote-request  sessionId, epoch, candidate, lastIndex, lastEpoch, commitIndex,
//                         preVote flag
//   session-vote          sessionId, epoch, granted flag, preVote flag, reason, lastIndex,
//                         lastEpoch, commitIndex, tail entries
//   session-snapshot      sessionId, epoch, seq, index, indexEpoch, info, config,
//                         state JSON, dedup
//   session-open          requestId, info, config
//   session-opened        requestId, status, reason, epoch, owner, config
//   session-locate        requestId, sessionId
//   session-location      requestId, sessionId, found flag, epoch, owner, config, tokenHash
//   session-diagnose      sessionId, nonce
//   session-diagnosis     sessionId, nonce, epoch, serving flag, commitIndex
//   session-quiesce       sessionId, epoch, seq, index, indexEpoch, boot
//   session-quiesced      sessionId, epoch, seq, ok flag, boot, gen
//   session-beat          boot, seq
//   session-beat-ack      seq, boot, gen
// with
//   entries   count (≤ MAX_SESSION_ENTRIES), then per entry: index, epoch, kind u8,
//             and the kind's fields: 1 create (info, config), 2 delta (clientSeq,
//             op JSON), 3 epoch, 4 config (config), 5 close
//   info      sessionId, service, terminalId, tokenHash, position (as in records)
//   config    members count, member ids, witness presence u8 (+ id)
//   dedup     lastClientSeq, recent count (≤ MAX_DEDUP_RECENT), (clientSeq, index) pairs
//   JSON      text as JSON.stringify writes it; decode accepts any JSON text within
//             the limits (nothing signs or hashes session frames, so the text need
//             not be canonical)
//
// Nothing decoded here is a view of the frame: strings and parsed JSON are fresh
// values, so a retained entry never pins the frame it arrived in.

import { Reader, WireError, Writer, readFlag, writeFlag } from './wire.ts'
import { readId, writeId } from './record.ts'
import type { SessionMessage } from './messages.ts'
import { MAX_STATUS, MIN_STATUS, REASON, SESSION_ID, TOKEN_HASH, isHttpStatus, isSuccess, readConfig, readInfo, readOwner, readSnapshotBody, readText, writeConfig, writeInfo, writeOwner, writeSnapshotBody, writeText } from './session-fields.ts'
import { appendRule, readEntries, tailRule, writeEntries } from './session-entries.ts'


export type SessionTypeName = SessionMessage['type']

// ---------------------------------------------------------------- dispatch

export function writeSessionBody (w: Writer, m: SessionMessage): void {
  switch (m.type) {
    case 'session-append':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      w.varint(m.seq)
      w.varint(m.prevIndex)
      w.varint(m.prevEpoch)
      w.varint(m.commitIndex)
      writeEntries(w, m.entries, 'entries', appendRule(m.sessionId, m.prevIndex, m.prevEpoch, m.epoch))
      return
    case 'session-append-ack':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      w.varint(m.seq)
      writeFlag(w, m.ok, 'ok')
      w.varint(m.matchIndex)
      w.varint(m.lastIndex)
      return
    case 'session-vote-request':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      writeId(w, m.candidate, 'candidate')
      w.varint(m.lastIndex)
      w.varint(m.lastEpoch)
      w.varint(m.commitIndex)
      writeFlag(w, m.preVote, 'preVote')
      return
    case 'session-vote':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      writeFlag(w, m.granted, 'granted')
      writeFlag(w, m.preVote, 'preVote')
      writeText(w, m.reason, REASON, 'reason', true)
      w.varint(m.lastIndex)
      w.varint(m.lastEpoch)
      w.varint(m.commitIndex)
      writeEntries(w, m.tail, 'tail', tailRule(m.sessionId))
      return
    case 'session-snapshot':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      w.varint(m.seq)
      writeSnapshotBody(w, m.snapshot, m.sessionId, m.epoch)
      return
    case 'session-open':
      w.varint(m.requestId)
      writeInfo(w, m.info, 'info')
      writeConfig(w, m.config, 'config', false)
      return
    case 'session-opened':
      w.varint(m.requestId)
      if (!isHttpStatus(m.status)) throw new RangeError(`status ${m.status} is outside ${MIN_STATUS}..${MAX_STATUS}`)
      w.varint(m.status)
      writeText(w, m.reason, REASON, 'reason', true)
      w.varint(m.epoch)
      writeOwner(w, m.owner, 'owner')
      writeConfig(w, m.config, 'config', !isSuccess(m.status))
      return
    case 'session-locate':
      w.varint(m.requestId)
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      return
    case 'session-location':
      w.varint(m.requestId)
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      writeFlag(w, m.found, 'found')
      w.varint(m.epoch)
      writeOwner(w, m.owner, 'owner')
      writeConfig(w, m.config, 'config', !m.found)
      writeText(w, m.tokenHash, TOKEN_HASH, 'tokenHash', !m.found)
      return
    case 'session-diagnose':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.nonce)
      return
    case 'session-diagnosis':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.nonce)
      w.varint(m.epoch)
      writeFlag(w, m.serving, 'serving')
      w.varint(m.commitIndex)
      return
    case 'session-quiesce':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      w.varint(m.seq)
      w.varint(m.index)
      w.varint(m.indexEpoch)
      w.varint(m.boot)
      return
    case 'session-quiesced':
      writeText(w, m.sessionId, SESSION_ID, 'sessionId')
      w.varint(m.epoch)
      w.varint(m.seq)
      writeFlag(w, m.ok, 'ok')
      w.varint(m.boot)
      w.varint(m.gen)
      return
    case 'session-beat':
      w.varint(m.boot)
      w.varint(m.seq)
      return
    case 'session-beat-ack':
      w.varint(m.seq)
      w.varint(m.boot)
      w.varint(m.gen)
      return
  }
}

export function readSessionBody (r: Reader, type: SessionTypeName): SessionMessage {
  switch (type) {
    case 'session-append': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const seq = r.varint('seq')
      const prevIndex = r.varint('prevIndex')
      const prevEpoch = r.varint('prevEpoch')
      const commitIndex = r.varint('commitIndex')
      const entries = readEntries(r, 'entries', appendRule(sessionId, prevIndex, prevEpoch, epoch))
      return { type, sessionId, epoch, seq, prevIndex, prevEpoch, commitIndex, entries }
    }
    case 'session-append-ack': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const seq = r.varint('seq')
      const ok = readFlag(r, 'ok')
      const matchIndex = r.varint('matchIndex')
      return { type, sessionId, epoch, seq, ok, matchIndex, lastIndex: r.varint('lastIndex') }
    }
    case 'session-vote-request': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const candidate = readId(r, 'candidate')
      const lastIndex = r.varint('lastIndex')
      const lastEpoch = r.varint('lastEpoch')
      const commitIndex = r.varint('commitIndex')
      return { type, sessionId, epoch, candidate, lastIndex, lastEpoch, commitIndex, preVote: readFlag(r, 'preVote') }
    }
    case 'session-vote': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const granted = readFlag(r, 'granted')
      const preVote = readFlag(r, 'preVote')
      const reason = readText(r, REASON, 'reason', true)
      const lastIndex = r.varint('lastIndex')
      const lastEpoch = r.varint('lastEpoch')
      const commitIndex = r.varint('commitIndex')
      const tail = readEntries(r, 'tail', tailRule(sessionId))
      return { type, sessionId, epoch, granted, preVote, reason, lastIndex, lastEpoch, commitIndex, tail }
    }
    case 'session-snapshot': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const seq = r.varint('seq')
      return { type, sessionId, epoch, seq, snapshot: readSnapshotBody(r, sessionId, epoch) }
    }
    case 'session-open': {
      const requestId = r.varint('requestId')
      const info = readInfo(r, 'info')
      return { type, requestId, info, config: readConfig(r, 'config', false) }
    }
    case 'session-opened': {
      const requestId = r.varint('requestId')
      const status = r.varint('status')
      if (!isHttpStatus(status)) throw new WireError(`status ${status} is outside ${MIN_STATUS}..${MAX_STATUS}`)
      const reason = readText(r, REASON, 'reason', true)
      const epoch = r.varint('epoch')
      const owner = readOwner(r, 'owner')
      return { type, requestId, status, reason, epoch, owner, config: readConfig(r, 'config', !isSuccess(status)) }
    }
    case 'session-locate': {
      const requestId = r.varint('requestId')
      return { type, requestId, sessionId: readText(r, SESSION_ID, 'sessionId') }
    }
    case 'session-location': {
      const requestId = r.varint('requestId')
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const found = readFlag(r, 'found')
      const epoch = r.varint('epoch')
      const owner = readOwner(r, 'owner')
      const config = readConfig(r, 'config', !found)
      const tokenHash = readText(r, TOKEN_HASH, 'tokenHash', !found)
      return { type, requestId, sessionId, found, epoch, owner, config, tokenHash }
    }
    case 'session-diagnose': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      return { type, sessionId, nonce: r.varint('nonce') }
    }
    case 'session-diagnosis': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const nonce = r.varint('nonce')
      const epoch = r.varint('epoch')
      const serving = readFlag(r, 'serving')
      return { type, sessionId, nonce, epoch, serving, commitIndex: r.varint('commitIndex') }
    }
    case 'session-quiesce': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const seq = r.varint('seq')
      const index = r.varint('index')
      const indexEpoch = r.varint('indexEpoch')
      return { type, sessionId, epoch, seq, index, indexEpoch, boot: r.varint('boot') }
    }
    case 'session-quiesced': {
      const sessionId = readText(r, SESSION_ID, 'sessionId')
      const epoch = r.varint('epoch')
      const seq = r.varint('seq')
      const ok = readFlag(r, 'ok')
      const boot = r.varint('boot')
      return { type, sessionId, epoch, seq, ok, boot, gen: r.varint('gen') }
    }
    case 'session-beat': {
      const boot = r.varint('boot')
      return { type, boot, seq: r.varint('seq') }
    }
    case 'session-beat-ack': {
      const seq = r.varint('seq')
      const boot = r.varint('boot')
      return { type, seq, boot, gen: r.varint('gen') }
    }
  }
}
