import { execFileSync } from 'child_process';
import { hostEnv, run, runSync, signal, tryRun } from './util';

let counter = 0;

/** Host numbers of the /24: `.1` the switch, `.2`-`.49` ClusterIPs (see serviceIp), pods from `.50`. */
const FIRST_POD_HOST = 50;
const MAX_SERVICE_IPS = FIRST_POD_HOST - 2;

/** What a partition cuts a pod from (see Network.partition). */
export type PartitionFrom = 'api' | 'pods' | 'all';

/** ip rule preferences of partition rules: below 1000, where the `local` table is moved to. */
const RULE_PREFS = [100, 200, 300];

/** Network namespace names of every harness: `fdbe2e-<harness id>-...`. */
export const NETNS_PREFIX = 'fdbe2e';

/**
 * Removes what harnesses killed without cleanup (SIGINT, SIGKILL) left behind: their network
 * namespaces, after SIGKILLing the processes still in them. The live harnesses are asked after
 * the namespaces are listed: a harness registers before it creates any namespace, so one that
 * starts meanwhile (in another jest worker) is never taken for stale.
 */
export function reapStaleNamespaces(liveIds: () => Set<string>): void {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { env: hostEnv() }).toString();
  } catch {
    return;
  }
  const live = liveIds();
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    const m = new RegExp(`^${NETNS_PREFIX}-([0-9a-f]{6})-`).exec(name);
    if (!m || live.has(m[1])) continue;
    try {
      const pids = execFileSync('ip', ['netns', 'pids', name], { env: hostEnv() }).toString().split('\n').filter((p) => p !== '');
      for (const pid of pids) signal(Number(pid), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    runSync('ip', ['netns', 'del', name]);
  }
}

/**
 * The pod network: one "switch" network namespace holding a Linux bridge (and the fake API
 * server), and one network namespace per pod attached to the bridge by a veth pair whose pod
 * end is `eth0`. Nothing is created in the root namespace: pods cannot reach the host or
 * anything beyond the bridge, only each other and the switch address (`.1`).
 */
export class Network {
  /** Creates the switch namespace with its bridge on a private /24 of 10.231.0.0/16. */
  public static async create(prefix: string): Promise<Network> {
    counter += 1;
    const octet = ((process.pid * 7 + counter * 31) % 250) + 1;
    const net = new Network(prefix, `10.231.${octet}`);
    await net.setup();
    return net;
  }

  /** Name of the switch network namespace. */
  public readonly switchNs: string;
  /** The switch's address on the bridge: the "node" (probes, fake API server). */
  public readonly gateway: string;
  private readonly namespaces = new Set<string>();
  private readonly used = new Set<number>();
  private nextHost = FIRST_POD_HOST;
  private nextVeth = 0;

  private constructor(private readonly prefix: string, public readonly subnet: string) {
    this.switchNs = `${prefix}-switch`;
    this.gateway = `${subnet}.1`;
  }

  /** Adds a network namespace `<prefix>-<name>` for a pod, returns it and the pod IP. */
  public async addPod(name: string): Promise<{ netns: string; ip: string }> {
    const host = this.allocate();
    const ip = `${this.subnet}.${host}`;
    const netns = `${this.prefix}-${name}`;
    const veth = `v${this.nextVeth++}`;
    await run('ip', ['netns', 'add', netns]);
    this.namespaces.add(netns);
    try {
      await run('ip', ['-n', this.switchNs, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      await run('ip', ['-n', this.switchNs, 'link', 'set', veth, 'master', 'br0', 'up']);
      await run('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await run('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
      await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    } catch (e) {
      await this.removePod(netns, ip);
      throw e;
    }
    return { netns, ip };
  }

  /**
   * Drops, silently, what a pod receives on eth0 from the fake API server (`.1:443`, 'api'), from
   * other pods and ClusterIPs ('pods'), both ('all'), or everything ('blackhole', the node's
   * probes and Service proxy included). Done with policy routing in the pod's namespace: input
   * packets matching a `blackhole` rule are discarded without an ICMP, so both ends of a TCP
   * connection only see retransmissions time out (the pod's own packets still leave, the
   * answers never come back). The `local` table rule is moved behind these rules (pref 1000),
   * else packets to the pod's address would be accepted before them.
   */
  public async partition(netns: string, from: PartitionFrom | 'blackhole', outgoingFrom?: string): Promise<void> {
    await this.heal(netns);
    const rules = await run('ip', ['-n', netns, 'rule', 'list']);
    if (!/^1000:/m.test(rules)) {
      await run('ip', ['-n', netns, 'rule', 'add', 'pref', '1000', 'lookup', 'local']);
      await run('ip', ['-n', netns, 'rule', 'del', 'pref', '0']);
    }
    const add = (pref: number, sel: string[]): Promise<unknown> =>
      run('ip', ['-n', netns, 'rule', 'add', 'pref', String(pref), 'iif', 'eth0', ...sel, 'blackhole']);
    const gw = `${this.gateway}/32`;
    if (from === 'blackhole') {
      await add(RULE_PREFS[0], []);
      if (outgoingFrom !== undefined) {
        // The pod's own packets to the pod network too (its own address stays local): the
        // route lookup fails, so nothing leaves, not even a FIN or RST of a closing socket.
        await run('ip', ['-n', netns, 'rule', 'add', 'pref', String(RULE_PREFS[1]), 'to', `${outgoingFrom}/32`, 'lookup', 'local']);
        await run('ip', ['-n', netns, 'rule', 'add', 'pref', String(RULE_PREFS[2]), 'to', `${this.subnet}.0/24`, 'blackhole']);
      }
      return;
    }
    if (from === 'api' || from === 'all') await add(RULE_PREFS[0], ['from', gw, 'ipproto', 'tcp', 'sport', '443']);
    if (from === 'pods' || from === 'all') {
      // The node's address (probes, Service proxy) passes; the rest of the /24 is dropped.
      await run('ip', ['-n', netns, 'rule', 'add', 'pref', String(RULE_PREFS[1]), 'iif', 'eth0', 'from', gw, 'lookup', 'local']);
      await add(RULE_PREFS[2], ['from', `${this.subnet}.0/24`]);
    }
  }

  /** Removes a partition (idempotent). */
  public async heal(netns: string): Promise<void> {
    for (const pref of RULE_PREFS) {
      while ((await tryRun('ip', ['-n', netns, 'rule', 'del', 'pref', String(pref)])).code === 0) {
        // a preference may hold several rules
      }
    }
  }

  /** Deletes a pod's namespace (its veth pair goes with it) and frees its IP. */
  public async removePod(netns: string, ip: string): Promise<void> {
    await tryRun('ip', ['netns', 'del', netns]);
    this.namespaces.delete(netns);
    this.used.delete(Number(ip.split('.')[3]));
  }

  public async destroy(): Promise<void> {
    for (const ns of [...this.namespaces]) {
      await tryRun('ip', ['netns', 'del', ns]);
      this.namespaces.delete(ns);
    }
  }

  /** For process-exit cleanup: synchronous, best effort. */
  public destroySync(): void {
    for (const ns of this.namespaces) runSync('ip', ['netns', 'del', ns]);
    this.namespaces.clear();
  }

  /** All namespace names this network created and did not delete yet. */
  public names(): string[] {
    return [...this.namespaces];
  }

  private async setup(): Promise<void> {
    await run('ip', ['netns', 'add', this.switchNs]);
    this.namespaces.add(this.switchNs);
    await run('ip', ['-n', this.switchNs, 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
    // A fixed MAC: a bridge otherwise takes the lowest MAC of its ports, so deleting a pod's veth
    // could change it, and pods whose ARP cache holds the old one could not reach the switch's
    // addresses (ClusterIPs, the API server) until their entry expires.
    await run('ip', ['-n', this.switchNs, 'link', 'set', 'br0', 'address', '02:00:00:00:00:01']);
    await run('ip', ['-n', this.switchNs, 'addr', 'add', `${this.gateway}/24`, 'dev', 'br0']);
    await run('ip', ['-n', this.switchNs, 'link', 'set', 'br0', 'up']);
  }

  /** The ClusterIP of the n-th Service (0-based): `.2` to `.49` of the /24. */
  public serviceIp(n: number): string {
    if (n >= MAX_SERVICE_IPS) throw new Error(`pod network: more than ${MAX_SERVICE_IPS} ClusterIP Services`);
    return `${this.subnet}.${2 + n}`;
  }

  /** A fresh host number (pods get a new IP when they are recreated, as in Kubernetes). */
  private allocate(): number {
    for (let i = FIRST_POD_HOST; i <= 254; i++) {
      const h = this.nextHost;
      this.nextHost = this.nextHost >= 254 ? FIRST_POD_HOST : this.nextHost + 1;
      if (!this.used.has(h)) {
        this.used.add(h);
        return h;
      }
    }
    throw new Error('pod network: no free address left in the /24');
  }
}
