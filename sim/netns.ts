// Network namespaces for `edge-agent sim --real --netns` (root only): each agent
// in its own namespace with one veth port on a bridge in a hub namespace, all in
// a private /24 this creates itself (10.213.<k>.0/24, k from the process id) and
// removes at the end, whatever happens. The runner reaches the agents through one
// veth of its own on the hub's main bridge (x.x.x.1), the agents are .2 and up.
//
// A partition moves the ports of each side but the first onto a bridge of their
// own: frames between sides are no longer switched, so packets vanish silently
// (a drop, not a reject: no RST, no ICMP), and established connections stall
// until their own timeouts, as across a real cut. Healing moves every port back.
// The runner sits on the first side: agents cut off are out of its reach (and of
// the terminals') until healed, as a client of the majority would see them.
//
// Loss, delay and slow nodes would need tc netem, which this kernel may lack;
// they stay with the agents' fault-injection gates. A run killed with SIGKILL
// leaves its namespaces (eagt<pid>-…, see `ip netns list`) and its veth behind.

import { execFileSync } from 'node:child_process'

const IP = 'ip'

export function netnsUnavailable (): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return `--netns needs root to create network namespaces (this process runs as uid ${process.getuid()}); without it, partitions go through the agents' fault-injection gates`
  const probe = `eagt${process.pid}probe`.slice(0, 15)
  try {
    run(['netns', 'add', probe])
    run(['netns', 'del', probe])
  } catch (error) {
    return `--netns cannot create a network namespace here: ${(error as Error).message.split('\n')[0]}`
  }
  return null
}

function run (args: string[]): void {
  execFileSync(IP, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 })
}

export class NetnsLab {
  readonly nodes: number
  readonly #tag: string
  readonly #subnet: string
  readonly #hub: string
  readonly #rootIf: string
  #bridges = 1
  readonly #hosts = new Map<number, string>()
  #destroyed = false
  readonly #onExit = (): void => this.destroy()
  // Ctrl-C or a kill: Node would exit without its 'exit' event; clean up first.
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    this.destroy()
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }

  private constructor (nodes: number) {
    this.nodes = nodes
    this.#tag = `eagt${process.pid}`
    this.#subnet = `10.213.${1 + (process.pid % 250)}`
    this.#hub = `${this.#tag}-hub`
    this.#rootIf = `${this.#tag}r`
  }

  // Builds the hub, the runner's port and one namespace per agent.
  static create (nodes: number): NetnsLab {
    if (nodes > 250) throw new Error(`--netns runs at most 250 agents in its /24 (asked for ${nodes})`)
    const lab = new NetnsLab(nodes)
    process.on('exit', lab.#onExit)
    process.on('SIGINT', lab.#onSignal)
    process.on('SIGTERM', lab.#onSignal)
    try {
      lab.#build()
    } catch (error) {
      lab.destroy()
      throw new Error(`--netns: cannot build the namespaces: ${(error as Error).message.split('\n')[0]}`)
    }
    return lab
  }

  #build (): void {
    const hub = this.#hub
    run(['netns', 'add', hub])
    run(['-n', hub, 'link', 'add', 'br0', 'type', 'bridge'])
    run(['-n', hub, 'link', 'set', 'br0', 'up'])
    const rootPeer = `${this.#tag}rh`
    run(['link', 'add', this.#rootIf, 'type', 'veth', 'peer', 'name', rootPeer])
    run(['link', 'set', rootPeer, 'netns', hub])
    run(['-n', hub, 'link', 'set', rootPeer, 'master', 'br0'])
    run(['-n', hub, 'link', 'set', rootPeer, 'up'])
    run(['addr', 'add', `${this.#subnet}.1/24`, 'dev', this.#rootIf])
    run(['link', 'set', this.#rootIf, 'up'])
    for (let i = 0; i < this.nodes; i++) {
      const ns = this.ns(i)
      run(['netns', 'add', ns])
      run(['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', this.#port(i)])
      run(['-n', ns, 'link', 'set', this.#port(i), 'netns', hub])
      run(['-n', hub, 'link', 'set', this.#port(i), 'master', 'br0'])
      run(['-n', hub, 'link', 'set', this.#port(i), 'up'])
      run(['-n', ns, 'addr', 'add', `${this.host(i)}/24`, 'dev', 'eth0'])
      run(['-n', ns, 'link', 'set', 'eth0', 'up'])
      run(['-n', ns, 'link', 'set', 'lo', 'up'])
    }
  }

  ns (i: number): string {
    return `${this.#tag}-${i}`
  }

  // Agent i's address: .2 and up, unless readdress() gave it another.
  host (i: number): string {
    return this.#hosts.get(i) ?? `${this.#subnet}.${i + 2}`
  }

  #port (i: number): string {
    return `${this.#tag}h${i}`
  }

  // sides: agent indexes per side; the first side keeps br0 (and the runner).
  partition (sides: number[][]): void {
    for (let s = this.#bridges; s < sides.length; s++) {
      run(['-n', this.#hub, 'link', 'add', `br${s}`, 'type', 'bridge'])
      run(['-n', this.#hub, 'link', 'set', `br${s}`, 'up'])
    }
    this.#bridges = Math.max(this.#bridges, sides.length)
    sides.forEach((side, s) => { for (const i of side) run(['-n', this.#hub, 'link', 'set', this.#port(i), 'master', `br${s}`]) })
  }

  // Takes agent i's address away and gives its eth0 `${subnet}.<last>`, as a
  // DHCP lease that changes would: connections made through the old address
  // stall, a wildcard listener goes on. (Removed first: deleting an address
  // also deletes the secondary ones of its subnet.)
  readdress (i: number, last: number): string {
    const host = `${this.#subnet}.${last}`
    const old = this.host(i)
    run(['-n', this.ns(i), 'addr', 'del', `${old}/24`, 'dev', 'eth0'])
    run(['-n', this.ns(i), 'addr', 'add', `${host}/24`, 'dev', 'eth0'])
    this.#hosts.set(i, host)
    return host
  }

  // Gives agent i's `dev` one more address, `${subnet}.<last>` (another
  // interface coming up would do the same to a wildcard listener). On `lo` it
  // is a /32, and Node lists it before eth0's.
  addAddress (i: number, last: number, dev: 'eth0' | 'lo' = 'eth0'): string {
    const host = `${this.#subnet}.${last}`
    run(['-n', this.ns(i), 'addr', 'add', `${host}/${dev === 'lo' ? 32 : 24}`, 'dev', dev])
    return host
  }

  heal (): void {
    for (let i = 0; i < this.nodes; i++) run(['-n', this.#hub, 'link', 'set', this.#port(i), 'master', 'br0'])
  }

  // Removes everything it made; safe to call twice, and called at process exit.
  destroy (): void {
    if (this.#destroyed) return
    this.#destroyed = true
    process.off('exit', this.#onExit)
    process.off('SIGINT', this.#onSignal)
    process.off('SIGTERM', this.#onSignal)
    const quiet = (args: string[]): void => { try { run(args) } catch {} }
    // The root veth goes with its peer in the hub; delete it first all the same.
    quiet(['link', 'del', this.#rootIf])
    for (let i = 0; i < this.nodes; i++) quiet(['netns', 'del', this.ns(i)])
    quiet(['netns', 'del', this.#hub])
  }
}
