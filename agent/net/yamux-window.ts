// Yamux window updates the way Go's yamux (and the spec's intent) send them: when
// the reader has consumed at least half of the stream's receive window, not after
// every frame it reads.
//
// @chainsafe/libp2p-yamux 7.x sends a WindowUpdate frame after every data frame a
// stream's reader takes, however small. Each is a 12-byte frame that noise
// encrypts on its own and TCP sends as its own segment, so every small message
// (a SWIM ping, an ack, a replication frame) cost the receiver an extra encrypted
// write and the wire an extra segment plus its ACK: about 4 IP packets per
// message at rest (bench "detection"). Flow control is unchanged: the sender may
// still never have more than the window outstanding, and an update restores the
// whole window once half of it is used, as in hashicorp/yamux's
// sendWindowUpdate (`if delta < (max/2) && flags == 0 { return }`). Updates that
// carry flags (the SYN/ACK that open a stream) are always sent.

import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

// The stream's private fields this reads (getSendFlags() is not called here: it
// moves the stream's state as a side effect, and the original must see that).
type WindowState = { state: StreamState; recvWindow: number; recvWindowCapacity: number }

export const windowUpdates = { sent: 0, skipped: 0 }

let installed = false

export function installHalfWindowUpdates (): void {
  if (installed) return
  installed = true
  const original = YamuxStream.prototype.sendWindowUpdate
  YamuxStream.prototype.sendWindowUpdate = function (this: YamuxStream): void {
    const state = this as unknown as WindowState
    const flagged = state.state === StreamState.Init || state.state === StreamState.SYNReceived
    if (!flagged && state.recvWindowCapacity * 2 > state.recvWindow) {
      windowUpdates.skipped++
      return
    }
    windowUpdates.sent++
    original.call(this)
  }
}
