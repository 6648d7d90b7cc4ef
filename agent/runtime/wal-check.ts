// A check of an SQLite write-ahead log before SQLite recovers it.
//
// SQLite's recovery reads WAL frames in order and stops at the first frame whose
// checksum (chained over every frame before it) or salt does not match: that is
// how a transaction torn by a power cut is dropped whole. But it cannot tell a
// torn tail from a flipped bit in the middle: either way it silently keeps the
// transactions before the bad frame and drops every one after it, committed and
// acknowledged as they were. For the session store that would be serving wrong
// data (acknowledged deltas gone, an epoch or vote forgotten) without a word.
//
// So before the store is opened, this walks the log as SQLite will, and past the
// first bad frame goes on checking each frame against the checksum stored in the
// frame before it. Frames of the current log generation (its salts) that check
// out that way were written whole after the bad one. Only the last transaction
// can be torn (each commit is fsynced before the next begins), so when at least
// two whole commit frames follow a bad frame, a transaction that was committed
// and followed by another is about to be dropped: that is damage, reported with
// the file's path. One whole commit after a bad frame is what a torn last
// transaction may look like, and is left to SQLite's recovery.
//
// Format: https://www.sqlite.org/fileformat2.html#walformat (32-byte header,
// then frames of a 24-byte header and one page; big-endian fields; checksums in
// the byte order the magic number names).

import { closeSync, fstatSync, openSync, readSync } from 'node:fs'

const WAL_HEADER_BYTES = 32
const FRAME_HEADER_BYTES = 24
const MAGIC_LE = 0x377f0682
const MAGIC_BE = 0x377f0683

export type WalReport = { frames: number; validFrames: number; commitsAfterBreak: number; problem: string | null }

type Sum = [number, number]

// SQLite's walChecksumBytes over `bytes` (a multiple of 8), from `sum`.
function checksum (bytes: Uint8Array, bigEndian: boolean, sum: Sum): Sum {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let s1 = sum[0]
  let s2 = sum[1]
  for (let i = 0; i < bytes.length; i += 8) {
    s1 = (s1 + view.getUint32(i, !bigEndian) + s2) >>> 0
    s2 = (s2 + view.getUint32(i + 4, !bigEndian) + s1) >>> 0
  }
  return [s1, s2]
}

type Frame = { salt1: number; salt2: number; sum: Sum; commit: boolean; headStart: Uint8Array; page: Uint8Array }

function frameAt (wal: Uint8Array, offset: number, pageBytes: number): Frame {
  const view = new DataView(wal.buffer, wal.byteOffset + offset, FRAME_HEADER_BYTES)
  return {
    commit: view.getUint32(4) !== 0,
    salt1: view.getUint32(8),
    salt2: view.getUint32(12),
    sum: [view.getUint32(16), view.getUint32(20)],
    headStart: wal.subarray(offset, offset + 8),
    page: wal.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + pageBytes)
  }
}

function chained (frame: Frame, bigEndian: boolean, previous: Sum): boolean {
  const sum = checksum(frame.page, bigEndian, checksum(frame.headStart, bigEndian, previous))
  return sum[0] === frame.sum[0] && sum[1] === frame.sum[1]
}

// Checks the log's bytes; `problem` is null when SQLite's recovery would lose
// nothing but, at most, a torn last transaction.
export function checkWal (wal: Uint8Array): WalReport {
  if (wal.length < WAL_HEADER_BYTES) return { frames: 0, validFrames: 0, commitsAfterBreak: 0, problem: null }
  const head = new DataView(wal.buffer, wal.byteOffset, WAL_HEADER_BYTES)
  const magic = head.getUint32(0)
  const pageBytes = head.getUint32(8)
  const frameBytes = FRAME_HEADER_BYTES + pageBytes
  const bigEndian = magic === MAGIC_BE
  const headerOk = (magic === MAGIC_LE || magic === MAGIC_BE) && pageBytes >= 512 && pageBytes <= 65536 && (pageBytes & (pageBytes - 1)) === 0 &&
    chained({ ...frameAt(wal, 0, 0), headStart: wal.subarray(0, 24), page: new Uint8Array(0), sum: [head.getUint32(24), head.getUint32(28)] }, bigEndian, [0, 0])
  if (!headerOk) return badHeader(wal, magic, pageBytes)
  const salt1 = head.getUint32(16)
  const salt2 = head.getUint32(20)
  const frames = Math.floor((wal.length - WAL_HEADER_BYTES) / frameBytes)
  let previous: Sum = [head.getUint32(24), head.getUint32(28)]
  let valid = 0
  for (; valid < frames; valid++) {
    const frame = frameAt(wal, WAL_HEADER_BYTES + valid * frameBytes, pageBytes)
    if (frame.salt1 !== salt1 || frame.salt2 !== salt2 || !chained(frame, bigEndian, previous)) break
    previous = frame.sum
  }
  // Past the break: frames of this generation that check out against their
  // predecessor's stored checksum were written whole.
  let commitsAfterBreak = 0
  for (let i = valid + 1; i < frames; i++) {
    const before = frameAt(wal, WAL_HEADER_BYTES + (i - 1) * frameBytes, pageBytes)
    const frame = frameAt(wal, WAL_HEADER_BYTES + i * frameBytes, pageBytes)
    if (frame.salt1 !== salt1 || frame.salt2 !== salt2) continue
    if (frame.commit && chained(frame, bigEndian, before.sum)) commitsAfterBreak++
  }
  const problem = commitsAfterBreak >= 2
    ? `frame ${valid + 1} of ${frames} fails its checksum, and ${commitsAfterBreak} committed transactions after it would be dropped`
    : null
  return { frames, validFrames: valid, commitsAfterBreak, problem }
}

// Without a valid header SQLite ignores the whole log. That drops committed work
// when two whole commit frames are in it (as after a bad frame, the first frame
// cannot be checked, the others against their predecessor); when even the page
// size is gone, when the file is longer than one frame could be.
function badHeader (wal: Uint8Array, magic: number, pageBytes: number): WalReport {
  const readable = (magic === MAGIC_LE || magic === MAGIC_BE) && pageBytes >= 512 && pageBytes <= 65536 && (pageBytes & (pageBytes - 1)) === 0
  if (!readable) {
    const problem = wal.length > WAL_HEADER_BYTES + FRAME_HEADER_BYTES + 512 ? 'the log header is unreadable: SQLite would ignore every transaction in it' : null
    return { frames: 0, validFrames: 0, commitsAfterBreak: 0, problem }
  }
  const bigEndian = magic === MAGIC_BE
  const frameBytes = FRAME_HEADER_BYTES + pageBytes
  const frames = Math.floor((wal.length - WAL_HEADER_BYTES) / frameBytes)
  if (frames === 0) return { frames, validFrames: 0, commitsAfterBreak: 0, problem: null }
  const first = frameAt(wal, WAL_HEADER_BYTES, pageBytes)
  let commits = first.commit ? 1 : 0
  for (let i = 1; i < frames; i++) {
    const before = frameAt(wal, WAL_HEADER_BYTES + (i - 1) * frameBytes, pageBytes)
    const frame = frameAt(wal, WAL_HEADER_BYTES + i * frameBytes, pageBytes)
    if (frame.salt1 === first.salt1 && frame.salt2 === first.salt2 && frame.commit && chained(frame, bigEndian, before.sum)) commits++
  }
  const problem = commits >= 2 ? `the log header fails its checksum, and SQLite would ignore the ${commits} committed transactions in it` : null
  return { frames, validFrames: 0, commitsAfterBreak: commits, problem }
}

// Reads and checks the log at `path`; a missing or empty file is fine.
export function checkWalFile (path: string): WalReport {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { frames: 0, validFrames: 0, commitsAfterBreak: 0, problem: null }
    throw error
  }
  try {
    const size = fstatSync(fd).size
    const bytes = new Uint8Array(size)
    let read = 0
    while (read < size) {
      const n = readSync(fd, bytes, read, size - read, read)
      if (n === 0) break
      read += n
    }
    return checkWal(bytes.subarray(0, read))
  } finally {
    closeSync(fd)
  }
}
