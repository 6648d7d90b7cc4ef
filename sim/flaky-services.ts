// Services that fail as a deployed one can on one node: while a node's switch
// is on, its `log` service throws ServiceUnavailable on every apply (a worker
// loading, timed out or crashed there), and the node's copies stop at the entry
// until it works again (agent/sessions/apply.ts). For the chaos runner's
// flakyServices faults and test/sim/session-apply-stall.test.ts.

import { BUILT_IN_SERVICES, ServiceUnavailable, logService } from '../agent/sessions/services.ts'
import type { Service } from '../agent/sessions/services.ts'

export type ServiceSwitch = { broken: boolean; failed: number }

export type FlakyServices = {
  // One per node index, kept across the node's restarts.
  switches: ServiceSwitch[]
  // SimOptions.serviceCode.
  serviceCode: (index: number) => ReadonlyMap<string, Service>
}

export function flakyServices (nodes: number): FlakyServices {
  const switches = Array.from({ length: nodes }, () => ({ broken: false, failed: 0 }))
  const serviceCode = (index: number): ReadonlyMap<string, Service> => {
    const s = switches[index]
    const log: Service = {
      ...logService,
      apply: (state, op) => {
        if (s.broken) {
          s.failed++
          throw new ServiceUnavailable('log@1: the worker is still loading the package')
        }
        return logService.apply(state, op)
      }
    }
    return new Map([...BUILT_IN_SERVICES, ['log', log]])
  }
  return { switches, serviceCode }
}
