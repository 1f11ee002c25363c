import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RootfsSpec } from './harness/rootfs';
import { RootfsResult, RootfsRunOptions, runInRootfs } from './harness/rootfs-run';

/**
 * The images' roots built by `images/build.sh` (Debian 13 userlands standing for the images
 * the library synthesizes; see images/README.md), and small helpers to run containers in them.
 */
export const ROOTS_DIR = process.env.CDK8S_FERRETDB_ROOTS ?? '/var/cache/cdk8s-ferretdb/roots';
export type RootName = 'postgres-17' | 'exporter' | 'curl';
const BUILD_SCRIPT = path.join(__dirname, 'images', 'build.sh');

/**
 * Throws unless the roots exist and are fresh (`build.sh --check`): the tests never build them
 * (minutes) and never skip.
 */
export function requireRoots(...names: RootName[]): void {
  const r = spawnSync('bash', [BUILD_SCRIPT, '--check', ...names], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    throw new Error(`the images' roots are not ready (the suite never skips): ${r.stderr}${r.stdout}${r.error?.message ?? ''}`);
  }
}

export function rootPath(name: RootName): string {
  return path.join(ROOTS_DIR, name);
}

/** The host's postgres user: the ids every non-root container user maps to. */
export const HOST_POSTGRES = {
  uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
  gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
};

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes what sandboxes of dead test processes (killed without cleanup) left: their network
 * namespaces with the containers still in them, and their directories.
 */
function reapStale(prefix: string): void {
  const stale = new RegExp(`^${prefix}-(\\d+)(-|$)`);
  const dead = (name: string): boolean => {
    const m = stale.exec(name);
    return !!m && !alive(Number(m[1]));
  };
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const name of list.split('\n').map((l) => l.split(' ')[0]).filter(dead)) {
    const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout ?? '';
    for (const pid of pids.split('\n').filter((p) => p !== '')) spawnSync('kill', ['-KILL', pid]);
    spawnSync('ip', ['netns', 'delete', name]);
  }
  for (const e of fs.readdirSync(os.tmpdir()).filter(dead)) fs.rmSync(path.join(os.tmpdir(), e), { recursive: true, force: true });
}

/**
 * A scratch directory with a network namespace (loopback up) that containers can share, both
 * named `<prefix>-<pid>`; the next sandbox removes those of dead test processes.
 */
export class Sandbox {
  public static create(prefix: string): Sandbox {
    reapStale(prefix);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-${process.pid}-`));
    fs.chmodSync(dir, 0o755);
    const netns = `${prefix}-${process.pid}`;
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    return new Sandbox(dir, netns);
  }

  private counter = 0;

  private constructor(public readonly dir: string, public readonly netns: string) {}

  /** A fresh host directory owned by the given ids (a volume). */
  public volume(name: string, owner = { uid: 0, gid: 0 }, mode = 0o755): string {
    const p = path.join(this.dir, 'volumes', name);
    fs.mkdirSync(p, { recursive: true });
    fs.chownSync(p, owner.uid, owner.gid);
    fs.chmodSync(p, mode);
    return p;
  }

  /** A container spec in this sandbox's network with a fresh writable layer. */
  public spec(root: RootName, over: Partial<RootfsSpec> = {}): RootfsSpec {
    return { root: rootPath(root), stateDir: path.join(this.dir, 'containers', String(++this.counter)), netns: this.netns, ...over };
  }

  /** Runs a command in a new container of `root`; never throws for a failing command. */
  public run(root: RootName, argv: string[], over: Partial<RootfsSpec> = {}, opts: RootfsRunOptions = {}): Promise<RootfsResult> {
    return runInRootfs(this.spec(root, over), argv, opts);
  }

  public destroy(): void {
    spawnSync('ip', ['netns', 'delete', this.netns]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `r` as text for an assertion message. */
export function show(r: RootfsResult): string {
  return `exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}
