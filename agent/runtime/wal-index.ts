// How many frames of an SQLite write-ahead log wait to be copied into the
// database file, read from the header of its WAL index (the -shm file, which
// SQLite maps in memory): mxFrame, the last valid frame, at byte 16, and
// nBackfill, the frames a checkpoint has copied, at byte 96, both in this
// machine's byte order (https://www.sqlite.org/walformat.html, "The WAL-Index
// Format"). The session store checkpoints by itself (session-store.ts) and asks
// this after each batch's fsync: one pread of 100 bytes.
//
// The layout is part of SQLite's file format: processes linked with different
// SQLite versions share one WAL index, so it does not change between versions.
// Advisory all the same: SQLite may be writing the header while it is read, and
// a torn read only moves a checkpoint by a batch. Null when the file cannot be
// read or the numbers make no sense: the store then counts its writes instead.

import { closeSync, openSync, readSync } from 'node:fs'
import { endianness } from 'node:os'

const HEADER_BYTES = 100
const MX_FRAME_AT = 16
const N_BACKFILL_AT = 96

export class WalIndex {
  readonly #path: string
  readonly #header = Buffer.alloc(HEADER_BYTES)
  readonly #littleEndian = endianness() === 'LE'
  #fd: number | null = null

  constructor (shmPath: string) {
    this.#path = shmPath
  }

  framesToCopy (): number | null {
    try {
      this.#fd ??= openSync(this.#path, 'r')
      if (readSync(this.#fd, this.#header, 0, HEADER_BYTES, 0) < HEADER_BYTES) return null
    } catch {
      return null
    }
    const read = (at: number): number => this.#littleEndian ? this.#header.readUInt32LE(at) : this.#header.readUInt32BE(at)
    const last = read(MX_FRAME_AT)
    const copied = read(N_BACKFILL_AT)
    return last >= copied ? last - copied : null
  }

  close (): void {
    if (this.#fd !== null) closeSync(this.#fd)
    this.#fd = null
  }
}
