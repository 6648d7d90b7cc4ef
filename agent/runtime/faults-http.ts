// /v1/faults: the fault-injection gate's endpoint (a test facility; README,
// "Fault injection"). Only an agent started with --fault-injection has a gate;
// any other answers 404 and never looks at the body.
//
//   GET    /v1/faults   the rules in force and what they dropped and delayed
//   POST   /v1/faults   replaces the rules with the body's (fields left out: none)
//   DELETE /v1/faults   clears every rule

import type { Logger } from 'pino'
import type { FaultGate } from '../net/fault-gate.ts'
import { MAX_BLOCKED_PEERS, NO_FAULTS, isInert, parseFaultRules } from '../net/fault-rules.ts'
import type { HttpApi, Reply } from './http-api.ts'
import { readJson } from './sessions-http.ts'

const FAULTS_PATH = /^\/v1\/faults$/
// MAX_BLOCKED_PEERS peer ids of up to ~60 characters, with room to spare.
const MAX_FAULT_BODY_BYTES = MAX_BLOCKED_PEERS * 64 + 4_096

export function registerFaultRoutes (http: HttpApi, gate: FaultGate | null, log: Logger): void {
  if (gate === null) {
    const off = (): Reply => ({ status: 404, body: { error: 'no such endpoint: /v1/faults (fault injection is off; it is a test facility that only `edge-agent start --fault-injection` turns on)' } })
    for (const method of ['GET', 'POST', 'DELETE']) http.route(method, FAULTS_PATH, off)
    return
  }
  const state = (): Reply => ({ status: 200, body: { enabled: true, active: !isInert(gate.rules), rules: gate.rules, ...gate.counts() } })
  http.route('GET', FAULTS_PATH, state)
  http.route('POST', FAULTS_PATH, async (request) => {
    const body = await readJson(request, undefined, MAX_FAULT_BODY_BYTES)
    if (!body.ok) return body.reply
    const parsed = parseFaultRules(body.value)
    if (!parsed.ok) return { status: 400, body: { error: `fault rules refused: ${parsed.reason}` } }
    gate.set(parsed.rules)
    log.warn({ rules: { ...parsed.rules, blockedPeers: parsed.rules.blockedPeers.length } }, 'fault rules set')
    return state()
  })
  http.route('DELETE', FAULTS_PATH, () => {
    gate.set(NO_FAULTS)
    log.warn('fault rules cleared')
    return state()
  })
}
