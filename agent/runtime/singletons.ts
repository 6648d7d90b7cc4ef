// Singleton services: one cluster-wide session per service, "<service>:singleton",
// whose owner is the service's leader. It is an ordinary session (same group,
// same takeover, same role hooks); this keeper only makes sure it exists.
//
// Creation is the one race: two agents that both create it would start two
// groups under one id. So only the first agent on the ring of those offering the
// service creates it, only after the cluster has had time to converge, and only
// after a lookup finds no such session. A membership split at that very moment
// could still let two agents believe they are first; the README says so.

import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import { HashRing, serviceCapacity } from '../sessions/placement.ts'
import type { MemberDirectory } from '../sessions/types.ts'
import { hashToken } from './sessions-host.ts'
import type { SessionsHost } from './sessions-host.ts'

// Time for the membership to converge before a singleton is created, ms.
const SETTLE_MS = 5_000
const CHECK_EVERY_MS = 2_000

export function singletonId (service: string): string {
  return `${service}:singleton`
}

// The token of a singleton session: singletons are not opened by terminals, and
// any agent must be able to check on them.
export function singletonToken (service: string): string {
  return `${singletonId(service)}~cluster`
}

export class SingletonKeeper {
  readonly #config: AgentConfig
  readonly #directory: MemberDirectory
  readonly #sessions: SessionsHost
  readonly #log: Logger
  #timer: NodeJS.Timeout | null = null
  #checking = false

  constructor (config: AgentConfig, directory: MemberDirectory, sessions: SessionsHost, log: Logger) {
    this.#config = config
    this.#directory = directory
    this.#sessions = sessions
    this.#log = log
  }

  start (): void {
    if (this.#config.singletons.length === 0) return
    this.#timer = setTimeout(() => {
      this.#timer = setInterval(() => { void this.#check() }, CHECK_EVERY_MS)
      void this.#check()
    }, SETTLE_MS)
  }

  stop (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  async #check (): Promise<void> {
    if (this.#checking) return
    this.#checking = true
    try {
      for (const service of this.#config.singletons) await this.#ensure(service)
    } finally {
      this.#checking = false
    }
  }

  async #ensure (service: string): Promise<void> {
    const self = this.#directory.self
    const sessionId = singletonId(service)
    if (this.#sessions.list().some((s) => s.sessionId === sessionId)) return
    const offering = this.#directory.alive().filter((r) => serviceCapacity(r, service) > 0)
    if (!offering.some((r) => r.id === self)) return
    const [first] = new HashRing(offering.map((r) => ({ id: r.id, capacity: 100 })), this.#config.sessions.vnodesPer100Capacity).walk(sessionId, 1)
    if (first !== self) return
    const tokenHash = hashToken(singletonToken(service))
    const found = await this.#sessions.request({ type: 'resume', sessionId, tokenHash })
    if (found.status !== 404) return
    const opened = await this.#sessions.request({ type: 'open', sessionId, terminalId: 'singleton', service, position: null, tokenHash })
    if (opened.status === 201) this.#log.info({ service, owner: (opened.body.owner as { id?: string } | null)?.id }, 'created the singleton session')
    else this.#log.warn({ service, status: opened.status, error: opened.body.error }, 'could not create the singleton session yet')
  }
}
