import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { hostEnv, run, sleep } from './util';

/** One Service port as the proxy serves it: ClusterIP:port to the Ready endpoints' targetPorts. */
export interface ProxyRule {
  /** `<service>/<port name or number>`, for the proxy's log. */
  readonly name: string;
  readonly ip: string;
  readonly port: number;
  /** `ip:port` of each Ready endpoint, the targetPort resolved for that pod. */
  readonly endpoints: string[];
}

/**
 * kube-proxy's old userspace mode, run as a Node process in the switch network namespace (like
 * the fake API server): each ClusterIP is an address of the switch's bridge; for each Service
 * port with at least one endpoint it listens on ClusterIP:port, and for each accepted connection
 * connects to the next endpoint (round robin per connection; an endpoint that refuses or does
 * not answer within 3 s is skipped) and copies bytes both ways. A port without endpoints does
 * not listen, so a client is refused at once (kube-proxy's REJECT). When the endpoints change,
 * new connections follow; existing ones are left alone. Backends see the Service's ClusterIP as
 * the client (the userspace proxy shows the node's address, iptables mode the pod's).
 */
const PROXY_JS = String.raw`'use strict';
const fs = require('fs');
const net = require('net');
const [configFile, appliedFile] = process.argv.slice(2);
const listeners = new Map(); // "ip:port" -> { server, rule, next }
let lastText = '';

function log(line) { process.stdout.write(new Date().toISOString().slice(11, 23) + ' ' + line + '\n'); }

function connectUpstream(state, client, tried) {
  const eps = state.rule.endpoints;
  if (tried >= eps.length) { client.destroy(); return; }
  const ep = eps[state.next++ % eps.length];
  const i = ep.lastIndexOf(':');
  // From the ClusterIP, not the node's address (.1): a partition of the backend cuts Service
  // traffic while the node's probes still pass.
  const up = net.connect({ host: ep.slice(0, i), port: Number(ep.slice(i + 1)), localAddress: state.rule.ip, allowHalfOpen: true });
  up.setTimeout(3000, () => up.destroy(new Error('connect timeout')));
  up.once('error', (e) => { log(state.rule.name + ': ' + ep + ': ' + e.message); connectUpstream(state, client, tried + 1); });
  up.once('connect', () => {
    if (client.destroyed) { up.destroy(); return; }
    up.setTimeout(0);
    up.removeAllListeners('error');
    up.setNoDelay(true);
    client.pipe(up);
    up.pipe(client);
    const done = () => { client.destroy(); up.destroy(); };
    up.on('error', done); client.on('error', done);
    up.on('close', done); client.on('close', done);
    client.resume();
  });
}

/** Applies the rules; resolves once every new listener listens (or failed). */
function apply(rules) {
  const opening = [];
  const wanted = new Map(rules.filter((r) => r.endpoints.length > 0).map((r) => [r.ip + ':' + r.port, r]));
  for (const [key, l] of listeners) {
    if (!wanted.has(key)) { l.server.close(); listeners.delete(key); log(l.rule.name + ': no endpoints, closed ' + key); }
  }
  for (const [key, rule] of wanted) {
    const l = listeners.get(key);
    if (l) { l.rule = rule; continue; }
    const state = { rule, next: 0, server: undefined };
    state.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
      client.setNoDelay(true);
      client.on('error', () => client.destroy());
      connectUpstream(state, client, 0);
    });
    state.server.on('error', (e) => log(rule.name + ': listen ' + key + ': ' + e.message));
    opening.push(new Promise((resolve) => {
      state.server.once('listening', resolve);
      state.server.once('error', resolve);
    }));
    state.server.listen(rule.port, rule.ip);
    listeners.set(key, state);
    log(rule.name + ': listening on ' + key);
  }
  return Promise.all(opening);
}

let busy = false;
async function reload() {
  if (busy) return;
  busy = true;
  try {
    let text;
    try { text = fs.readFileSync(configFile, 'utf8'); } catch { return; }
    if (text === lastText) return;
    lastText = text;
    const { version, rules } = JSON.parse(text);
    await apply(rules);
    // The harness waits for this before a wait (waitReady...) returns: a client that connects
    // right after sees the endpoints the harness reported.
    fs.writeFileSync(appliedFile + '.tmp', String(version));
    fs.renameSync(appliedFile + '.tmp', appliedFile);
  } finally {
    busy = false;
  }
}

reload();
setInterval(reload, 20);
fs.watch(require('path').dirname(configFile), () => reload());
`;

/** Starts and feeds the userspace Service proxy (see PROXY_JS above). */
export class ServiceProxy {
  /**
   * Starts the proxy in network namespace `switchNs`, or on the host without one (the costs
   * benchmark puts it between bare PostgreSQL servers on 127.0.0.1).
   */
  public static async start(dir: string, switchNs?: string): Promise<ServiceProxy> {
    fs.mkdirSync(dir, { recursive: true });
    const p = new ServiceProxy(dir, switchNs);
    fs.writeFileSync(path.join(dir, 'proxy.js'), PROXY_JS);
    fs.writeFileSync(p.configFile, JSON.stringify({ version: 0, rules: [] }));
    const out = fs.openSync(path.join(dir, 'proxy.log'), 'a');
    const node = [process.execPath, path.join(dir, 'proxy.js'), p.configFile, p.appliedFile];
    p.proc = spawn(switchNs ? 'ip' : node[0], switchNs ? ['netns', 'exec', switchNs, ...node] : node.slice(1),
      { detached: true, stdio: ['ignore', out, out], env: hostEnv() });
    fs.closeSync(out);
    p.proc.unref();
    const deadline = Date.now() + 15_000;
    while (!fs.existsSync(p.appliedFile)) {
      if (p.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`service proxy did not start:\n${fs.readFileSync(path.join(dir, 'proxy.log'), 'utf8')}`);
      }
      await sleep(50);
    }
    return p;
  }

  private proc?: ChildProcess;
  private readonly configFile: string;
  private readonly appliedFile: string;
  private readonly addresses = new Set<string>();
  private last = '';
  private version = 0;

  private constructor(private readonly dir: string, private readonly switchNs?: string) {
    this.configFile = path.join(dir, 'rules.json');
    this.appliedFile = path.join(dir, 'applied');
  }

  public get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Stops the proxy process (the harness's goes with its namespace). */
  public stop(): void {
    if (this.proc?.pid !== undefined && this.proc.exitCode === null) process.kill(this.proc.pid, 'SIGTERM');
  }

  /** The proxy's log (listeners opened and closed, endpoints that failed). */
  public log(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'proxy.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Resolves once the proxy serves the latest rules (listeners open); bounded by `timeoutMs`. */
  public async synced(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.proc?.exitCode === null) {
      let applied = -1;
      try {
        applied = Number(fs.readFileSync(this.appliedFile, 'utf8'));
      } catch {
        // being renamed
      }
      if (applied >= this.version) return;
      await sleep(10);
    }
  }

  /** Puts a ClusterIP on the switch's bridge (once). */
  public async addAddress(ip: string): Promise<void> {
    if (!this.switchNs) throw new Error('a proxy on the host serves 127.0.0.1 only');
    if (this.addresses.has(ip)) return;
    this.addresses.add(ip);
    await run('ip', ['-n', this.switchNs, 'addr', 'add', `${ip}/32`, 'dev', 'br0']);
  }

  /** Replaces the rules (written atomically; the proxy picks them up within milliseconds). */
  public update(rules: ProxyRule[]): void {
    const text = JSON.stringify(rules);
    if (text === this.last) return;
    this.last = text;
    this.version++;
    try {
      fs.writeFileSync(`${this.configFile}.tmp`, JSON.stringify({ version: this.version, rules }));
      fs.renameSync(`${this.configFile}.tmp`, this.configFile);
    } catch {
      // root removed (destroy)
    }
  }
}
