// One HTTP(S) request from a CLI command (peek, deploy, services), with a
// deadline on the whole exchange and an optional CA to trust besides the
// system's. node:http rather than fetch: fetch refuses some ports outright ("bad
// port"), its errors say "fetch failed" without the cause, and its CA comes from
// the environment only. `timeout` on node:http is an idle timer: a server that
// trickles a byte a second never hit it, so the deadline here ends the request.

import { request as plainRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { rootCertificates } from 'node:tls'

export type HttpCall = { method?: string; body?: Uint8Array; contentType?: string; timeoutMs: number; ca?: string }

export function httpCall (url: string, call: HttpCall): Promise<{ status: number; text: string }> {
  const secure = url.startsWith('https:')
  const send = secure ? httpsRequest : plainRequest
  const headers: Record<string, string> = call.body === undefined ? {} : { 'content-type': call.contentType ?? 'application/octet-stream', 'content-length': String(call.body.length) }
  const options = { method: call.method ?? 'GET', headers, ...(secure && call.ca !== undefined ? { ca: [...rootCertificates, call.ca] } : {}) }
  return new Promise((resolve, reject) => {
    const request = send(url, options, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => { clearTimeout(deadline); resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }) })
      response.on('error', (error) => { clearTimeout(deadline); reject(error) })
    })
    const deadline = setTimeout(() => {
      request.destroy(Object.assign(new Error(`no whole answer within ${call.timeoutMs} ms`), { code: 'ETIMEDOUT' }))
    }, call.timeoutMs)
    request.on('error', (error) => { clearTimeout(deadline); reject(error) })
    request.end(call.body)
  })
}
