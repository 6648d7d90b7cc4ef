// Bytes on the wire per process, read from the kernel's TCP counters (`ss -tinp`):
// everything an agent sends, libp2p framing, encryption and gossipsub included.

import { execFileSync } from 'node:child_process'

// Sum of bytes_sent and bytes_received over the TCP sockets each pid holds.
export function tcpBytesByPid (pids: number[]): Map<number, { sent: number; received: number }> {
  const totals = new Map<number, { sent: number; received: number }>(pids.map((pid) => [pid, { sent: 0, received: 0 }]))
  let text: string
  try {
    text = execFileSync('ss', ['-tinpH', 'state', 'established'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  } catch {
    return totals
  }
  // Each socket is a line with users:(("node",pid=N,…)) followed by an info line.
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const owner = /pid=(\d+)/.exec(lines[i])
    if (owner === null) continue
    const total = totals.get(Number(owner[1]))
    const info = `${lines[i]} ${lines[i + 1] ?? ''}`
    if (total === undefined) continue
    total.sent += Number(/bytes_sent:(\d+)/.exec(info)?.[1] ?? 0)
    total.received += Number(/bytes_received:(\d+)/.exec(info)?.[1] ?? 0)
  }
  return totals
}
