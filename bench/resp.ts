// A minimal RESP2 client over node:net for the Redis comparisons (no dependency):
// commands are arrays of bulk strings; replies are parsed as simple strings,
// errors, integers, bulk strings and arrays. One command in flight per connection,
// or one pipelined burst written together.

import { createConnection, type Socket } from 'node:net'

export type RespValue = string | number | null | RespValue[] | RespError

export class RespError extends Error {
  override name = 'RespError'
}

// One connection; commands are answered in order (RESP guarantees it), so a
// FIFO of resolvers is enough.
export class RespClient {
  readonly #socket: Socket
  readonly #waiting: Array<{ resolve: (v: RespValue) => void; reject: (e: Error) => void }> = []
  #buffer: Buffer = Buffer.alloc(0)
  #closed: Error | null = null

  private constructor (socket: Socket) {
    this.#socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    const fail = (error: Error): void => {
      this.#closed ??= error
      for (const w of this.#waiting.splice(0)) w.reject(error)
    }
    socket.on('error', fail)
    socket.on('close', () => fail(new Error('the redis connection closed')))
  }

  static async connect (port: number, timeoutMs = 10_000): Promise<RespClient> {
    return await new Promise((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port })
      const timer = setTimeout(() => { socket.destroy(); reject(new Error(`connect to 127.0.0.1:${port}: no answer within ${timeoutMs} ms`)) }, timeoutMs)
      socket.once('connect', () => { clearTimeout(timer); socket.off('error', reject); resolve(new RespClient(socket)) })
      socket.once('error', (error) => { clearTimeout(timer); reject(error) })
    })
  }

  // Sends the commands in one write; resolves with their answers, in order.
  async send (...commands: Array<Array<string | number>>): Promise<RespValue[]> {
    if (this.#closed !== null) throw this.#closed
    const parts: string[] = []
    for (const command of commands) {
      parts.push(`*${command.length}\r\n`)
      for (const arg of command) {
        const text = String(arg)
        parts.push(`$${Buffer.byteLength(text)}\r\n${text}\r\n`)
      }
    }
    const answers = commands.map(async () => await new Promise<RespValue>((resolve, reject) => this.#waiting.push({ resolve, reject })))
    this.#socket.write(parts.join(''))
    return await Promise.all(answers)
  }

  async command (...args: Array<string | number>): Promise<RespValue> {
    return (await this.send(args))[0]
  }

  // One command that must be answered within timeoutMs; past it the connection
  // is destroyed (a late answer would be taken for the next command's).
  async call (args: Array<string | number>, timeoutMs: number): Promise<RespValue> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { this.close(); reject(new Error(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
    })
    try {
      return await Promise.race([this.command(...args), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  close (): void {
    this.#socket.destroy()
  }

  #onData (chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    for (;;) {
      const parsed = parseResp(this.#buffer, 0)
      if (parsed === null) return
      this.#buffer = this.#buffer.subarray(parsed.end)
      this.#waiting.shift()?.resolve(parsed.value)
    }
  }
}

// One RESP2 value starting at `at`, or null when the buffer holds only part of it.
export function parseResp (buf: Buffer, at: number): { value: RespValue; end: number } | null {
  const eol = buf.indexOf('\r\n', at)
  if (eol < 0) return null
  const type = String.fromCharCode(buf[at])
  const line = buf.toString('utf8', at + 1, eol)
  switch (type) {
    case '+': return { value: line, end: eol + 2 }
    case '-': return { value: new RespError(line), end: eol + 2 }
    case ':': return { value: Number(line), end: eol + 2 }
    case '$': {
      const length = Number(line)
      if (length < 0) return { value: null, end: eol + 2 }
      if (buf.length < eol + 2 + length + 2) return null
      return { value: buf.toString('utf8', eol + 2, eol + 2 + length), end: eol + 2 + length + 2 }
    }
    case '*': {
      const count = Number(line)
      if (count < 0) return { value: null, end: eol + 2 }
      const items: RespValue[] = []
      let end = eol + 2
      for (let i = 0; i < count; i++) {
        const item = parseResp(buf, end)
        if (item === null) return null
        items.push(item.value)
        end = item.end
      }
      return { value: items, end }
    }
    default: throw new Error(`not RESP: a reply starting with ${JSON.stringify(type)}`)
  }
}
