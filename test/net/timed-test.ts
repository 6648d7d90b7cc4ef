// A uvu test with a hard timeout: a real-process test that hangs fails with
// the time it was given instead of holding the run.
import { test } from 'uvu'

export function timedTest (name: string, timeoutMs: number, body: () => Promise<void>): void {
  test(name, async () => {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`test timed out after ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      await Promise.race([body(), timeout])
    } finally {
      clearTimeout(timer)
    }
  })
}
