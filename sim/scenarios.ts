// Scenarios for `edge-agent sim`: where the nodes are, what the terminals do, and
// which faults strike when. Built-in ones by name, or a JSON file of the same
// shape (validated here, every refusal naming the field):
//
// {
//   "name": "my-test",                        optional, defaults to the file name
//   "nodes": 20,                              default node count (--nodes wins)
//   "durationS": 60,                          chaos phase, virtual seconds (--duration wins)
//   "livenessS": 60,                          bound on the liveness phase after healing
//   "placement": {                            optional
//     "regions": [{"name": "eu", "lat": 48.8, "lon": 2.3, "spreadDeg": 3, "share": 2}],
//     "services": ["log"], "capacity": 100
//   },
//   "workload": {"terminals": 10, "deltaIntervalMs": 50, "valueBytes": 64},
//   "link": {"lossRate": 0, "delayMinMs": 1, "delayMaxMs": 3},
//   "faults": [                               a fixed schedule…
//     {"atS": 10, "fault": "crash", "target": "owner"},
//     {"atS": 20, "fault": "restart", "target": "crashed"},
//     {"atS": 25, "fault": "pause", "target": "random"}, {"atS": 27, "fault": "resume", "target": "paused"},
//     {"atS": 30, "fault": "partition", "target": "half"}, {"atS": 40, "fault": "heal"},
//     {"atS": 45, "fault": "loss", "rate": 0.1}, {"atS": 50, "fault": "delay", "minMs": 20, "maxMs": 80},
//     {"atS": 52, "fault": "slow", "target": "random", "ms": 200}
//   ],
//   "random": {"everyS": 5, "faults": ["crash", "pause", "partition"], "downS": [2, 6], "maxDown": 1}
// }                                           …and/or random faults drawn from the seed
//
// Targets: a node id ("n3"), "random" (a random running node), "owner" (the owner
// of a random terminal's session), "crashed" / "paused" (a node in that state),
// "half" / "minority" (partition sides), "all" (every node, for resume/restart).

export const FAULTS = ['crash', 'restart', 'pause', 'resume', 'partition', 'heal', 'loss', 'delay', 'slow'] as const
export type FaultName = typeof FAULTS[number]

export type ScheduledFault = {
  atS: number
  fault: FaultName
  target?: string
  rate?: number
  minMs?: number
  maxMs?: number
  ms?: number
}

export type Region = { name: string; lat: number; lon: number; spreadDeg: number; share: number }

export type Scenario = {
  name: string
  description: string
  nodes: number
  durationS: number
  livenessS: number
  placement: { regions: Region[]; services: string[]; capacity: number }
  workload: { terminals: number; deltaIntervalMs: number; valueBytes: number }
  link: { lossRate: number; delayMinMs: number; delayMaxMs: number }
  faults: ScheduledFault[]
  random: { everyS: number; faults: FaultName[]; downS: [number, number]; maxDown: number } | null
}

export class ScenarioError extends Error {
  override name = 'ScenarioError'
}

const EUROPE: Region[] = [
  { name: 'eu-south', lat: 40.4, lon: -3.7, spreadDeg: 2, share: 1 },
  { name: 'eu-west', lat: 48.9, lon: 2.3, spreadDeg: 2, share: 1 },
  { name: 'eu-central', lat: 50.1, lon: 8.7, spreadDeg: 2, share: 1 }
]

const BASE: Omit<Scenario, 'name' | 'description'> = {
  nodes: 10,
  durationS: 60,
  livenessS: 60,
  placement: { regions: EUROPE, services: ['log', 'kv', 'counter'], capacity: 100 },
  workload: { terminals: 10, deltaIntervalMs: 100, valueBytes: 32 },
  link: { lossRate: 0, delayMinMs: 1, delayMaxMs: 3 },
  faults: [],
  random: null
}

export const BUILT_IN: Record<string, Scenario> = {
  demo: {
    ...BASE,
    name: 'demo',
    description: 'five nodes, three terminals; an owner crashes and restarts, another owner freezes and resumes',
    nodes: 5,
    durationS: 30,
    workload: { terminals: 3, deltaIntervalMs: 50, valueBytes: 32 },
    faults: [
      { atS: 5, fault: 'crash', target: 'owner' },
      { atS: 12, fault: 'restart', target: 'crashed' },
      { atS: 18, fault: 'pause', target: 'owner' },
      { atS: 22, fault: 'resume', target: 'paused' }
    ]
  },
  churn: {
    ...BASE,
    name: 'churn',
    description: 'crashes and restarts: every 4 s a random node or owner is killed, restarted 2-8 s later',
    nodes: 20,
    random: { everyS: 4, faults: ['crash'], downS: [2, 8], maxDown: 2 }
  },
  partition: {
    ...BASE,
    name: 'partition',
    description: 'splits and heals: the cluster splits in two, or a minority is cut off, for 5-10 s at a time',
    nodes: 12,
    // At least four lan probe periods (1.25 s): long enough for the other side to
    // probe every cut-off node and reach a verdict. A shorter cut may heal unseen,
    // which is fine in production but checks nothing here.
    random: { everyS: 12, faults: ['partition'], downS: [5, 10], maxDown: 1 }
  },
  gray: {
    ...BASE,
    name: 'gray',
    description: 'gray failures: nodes freeze (SIGSTOP) and resume, others turn slow (+200 ms on every message)',
    nodes: 12,
    random: { everyS: 5, faults: ['pause', 'slow'], downS: [2, 8], maxDown: 2 }
  },
  lossy: {
    ...BASE,
    name: 'lossy',
    description: '10% message loss and 1-40 ms jitter throughout, with an owner crash every 10 s',
    nodes: 12,
    link: { lossRate: 0.1, delayMinMs: 1, delayMaxMs: 40 },
    random: { everyS: 10, faults: ['crash'], downS: [3, 6], maxDown: 1 }
  },
  scale: {
    ...BASE,
    name: 'scale',
    description: '1,000 nodes, 100 terminals, a crash, a freeze or a partition of a minority every 5 s',
    nodes: 1_000,
    durationS: 60,
    workload: { terminals: 100, deltaIntervalMs: 200, valueBytes: 32 },
    random: { everyS: 5, faults: ['crash', 'pause', 'partition'], downS: [3, 8], maxDown: 3 }
  }
}

export function scenarioNames (): string[] {
  return Object.keys(BUILT_IN)
}

// A built-in scenario by name, or a parsed file's content (its name defaulted).
export function loadScenario (nameOrJson: string, json: unknown | null): Scenario {
  if (json === null) {
    const scenario = BUILT_IN[nameOrJson]
    if (scenario === undefined) throw new ScenarioError(`unknown scenario '${nameOrJson}' (built in: ${scenarioNames().join(', ')}; or a .json file)`)
    return structuredClone(scenario)
  }
  return parseScenario(json, nameOrJson)
}

export function parseScenario (json: unknown, fallbackName: string): Scenario {
  const o = object(json, 'the scenario')
  allowOnly(o, ['name', 'description', 'nodes', 'durationS', 'livenessS', 'placement', 'workload', 'link', 'faults', 'random'], 'the scenario')
  const placement = o.placement === undefined ? BASE.placement : parsePlacement(o.placement)
  const workload = o.workload === undefined ? BASE.workload : parseWorkload(o.workload)
  const link = o.link === undefined ? BASE.link : parseLink(o.link)
  const scenario: Scenario = {
    name: o.name === undefined ? fallbackName : text(o.name, 'name', /^[A-Za-z0-9._-]{1,64}$/),
    description: o.description === undefined ? 'from a file' : text(o.description, 'description', /^[^\n]{0,200}$/),
    nodes: o.nodes === undefined ? BASE.nodes : int(o.nodes, 'nodes', 1, 20_000),
    durationS: o.durationS === undefined ? BASE.durationS : num(o.durationS, 'durationS', 1, 86_400),
    livenessS: o.livenessS === undefined ? BASE.livenessS : num(o.livenessS, 'livenessS', 1, 3_600),
    placement,
    workload,
    link,
    faults: o.faults === undefined ? [] : list(o.faults, 'faults', 10_000).map((f, i) => parseFault(f, `faults[${i}]`)),
    random: o.random === undefined || o.random === null ? null : parseRandom(o.random)
  }
  return scenario
}

function parsePlacement (value: unknown): Scenario['placement'] {
  const o = object(value, 'placement')
  allowOnly(o, ['regions', 'services', 'capacity'], 'placement')
  const regions = o.regions === undefined
    ? BASE.placement.regions
    : list(o.regions, 'placement.regions', 64).map((r, i) => {
      const where = `placement.regions[${i}]`
      const region = object(r, where)
      allowOnly(region, ['name', 'lat', 'lon', 'spreadDeg', 'share'], where)
      return {
        name: text(region.name, `${where}.name`, /^[A-Za-z0-9._-]{1,64}$/),
        lat: num(region.lat, `${where}.lat`, -90, 90),
        lon: num(region.lon, `${where}.lon`, -180, 180),
        spreadDeg: region.spreadDeg === undefined ? 2 : num(region.spreadDeg, `${where}.spreadDeg`, 0, 45),
        share: region.share === undefined ? 1 : num(region.share, `${where}.share`, 0.001, 1_000)
      }
    })
  if (regions.length === 0) throw new ScenarioError('placement.regions must name at least one region')
  const services = o.services === undefined ? BASE.placement.services : list(o.services, 'placement.services', 3).map((s, i) => text(s, `placement.services[${i}]`, /^(log|kv|counter)$/))
  if (!services.includes('log')) throw new ScenarioError("placement.services must include 'log' (the terminals' service)")
  return { regions, services, capacity: o.capacity === undefined ? 100 : int(o.capacity, 'placement.capacity', 1, 1_000_000) }
}

function parseWorkload (value: unknown): Scenario['workload'] {
  const o = object(value, 'workload')
  allowOnly(o, ['terminals', 'deltaIntervalMs', 'valueBytes'], 'workload')
  return {
    terminals: o.terminals === undefined ? BASE.workload.terminals : int(o.terminals, 'workload.terminals', 0, 100_000),
    deltaIntervalMs: o.deltaIntervalMs === undefined ? BASE.workload.deltaIntervalMs : num(o.deltaIntervalMs, 'workload.deltaIntervalMs', 0, 3_600_000),
    valueBytes: o.valueBytes === undefined ? BASE.workload.valueBytes : int(o.valueBytes, 'workload.valueBytes', 1, 65_000)
  }
}

function parseLink (value: unknown): Scenario['link'] {
  const o = object(value, 'link')
  allowOnly(o, ['lossRate', 'delayMinMs', 'delayMaxMs'], 'link')
  const link = {
    lossRate: o.lossRate === undefined ? 0 : num(o.lossRate, 'link.lossRate', 0, 0.9),
    delayMinMs: o.delayMinMs === undefined ? 1 : num(o.delayMinMs, 'link.delayMinMs', 0, 60_000),
    delayMaxMs: o.delayMaxMs === undefined ? 3 : num(o.delayMaxMs, 'link.delayMaxMs', 0, 60_000)
  }
  if (link.delayMaxMs < link.delayMinMs) throw new ScenarioError(`link.delayMaxMs (${link.delayMaxMs}) is below link.delayMinMs (${link.delayMinMs})`)
  return link
}

function parseFault (value: unknown, where: string): ScheduledFault {
  const o = object(value, where)
  allowOnly(o, ['atS', 'fault', 'target', 'rate', 'minMs', 'maxMs', 'ms'], where)
  const fault = text(o.fault, `${where}.fault`, new RegExp(`^(${FAULTS.join('|')})$`)) as FaultName
  const out: ScheduledFault = { atS: num(o.atS, `${where}.atS`, 0, 86_400), fault }
  if (o.target !== undefined) out.target = text(o.target, `${where}.target`, /^[A-Za-z0-9._-]{1,64}$/)
  if (o.rate !== undefined) out.rate = num(o.rate, `${where}.rate`, 0, 0.9)
  if (o.minMs !== undefined) out.minMs = num(o.minMs, `${where}.minMs`, 0, 60_000)
  if (o.maxMs !== undefined) out.maxMs = num(o.maxMs, `${where}.maxMs`, 0, 60_000)
  if (o.ms !== undefined) out.ms = num(o.ms, `${where}.ms`, 0, 60_000)
  if (fault === 'loss' && out.rate === undefined) throw new ScenarioError(`${where}: a loss fault needs "rate" (0..0.9)`)
  if (fault === 'delay' && (out.minMs === undefined || out.maxMs === undefined || out.maxMs < out.minMs)) throw new ScenarioError(`${where}: a delay fault needs "minMs" ≤ "maxMs"`)
  return out
}

function parseRandom (value: unknown): NonNullable<Scenario['random']> {
  const o = object(value, 'random')
  allowOnly(o, ['everyS', 'faults', 'downS', 'maxDown'], 'random')
  const faults = list(o.faults, 'random.faults', 8).map((f, i) => text(f, `random.faults[${i}]`, /^(crash|pause|partition|slow)$/) as FaultName)
  if (faults.length === 0) throw new ScenarioError('random.faults must name at least one of crash, pause, partition, slow')
  const down = o.downS === undefined ? [2, 8] : list(o.downS, 'random.downS', 2).map((d, i) => num(d, `random.downS[${i}]`, 0.1, 3_600))
  if (down.length !== 2 || down[1] < down[0]) throw new ScenarioError('random.downS must be [min, max] with min ≤ max')
  return { everyS: num(o.everyS, 'random.everyS', 0.1, 3_600), faults, downS: [down[0], down[1]], maxDown: o.maxDown === undefined ? 1 : int(o.maxDown, 'random.maxDown', 1, 10_000) }
}

// ---- field checks ------------------------------------------------------------

function object (value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ScenarioError(`${where} must be a JSON object`)
  return value as Record<string, unknown>
}

function allowOnly (o: Record<string, unknown>, keys: string[], where: string): void {
  for (const key of Object.keys(o)) if (!keys.includes(key)) throw new ScenarioError(`${where}: unknown key '${key}' (known: ${keys.join(', ')})`)
}

function list (value: unknown, where: string, max: number): unknown[] {
  if (!Array.isArray(value)) throw new ScenarioError(`${where} must be a list`)
  if (value.length > max) throw new ScenarioError(`${where} has ${value.length} items; at most ${max}`)
  return value
}

function num (value: unknown, where: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ScenarioError(`${where} must be a number (got ${JSON.stringify(value)})`)
  if (value < min || value > max) throw new ScenarioError(`${where} must be between ${min} and ${max} (got ${value})`)
  return value
}

function int (value: unknown, where: string, min: number, max: number): number {
  const n = num(value, where, min, max)
  if (!Number.isInteger(n)) throw new ScenarioError(`${where} must be a whole number (got ${n})`)
  return n
}

function text (value: unknown, where: string, pattern: RegExp): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw new ScenarioError(`${where} must be a string matching ${pattern.source} (got ${JSON.stringify(value)})`)
  return value
}
