import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { signal, sq, which } from './util';

/**
 * Runs a process inside an image's root directory the way a container runtime does: a private
 * mount namespace (and PID and UTS namespaces) in which the root is an overlay (the root
 * directory, never written, under a per-container upper directory), `/proc`, a minimal `/dev`,
 * `/dev/shm` as a tmpfs, the volumes bind-mounted, the root remounted read-only when asked, then
 * `chroot` with the container's user, groups, no_new_privs and capabilities.
 *
 * Pure parts (`rootfsScript`, `rootfsCommand`) build what to run; `runInRootfs` and
 * `spawnInRootfs` run it. Not a security boundary: the host's mounts stay in the namespace,
 * below the chroot.
 */

/** A volume: a host path bind-mounted at a path inside the container. */
export interface RootfsVolume {
  readonly hostPath: string;
  readonly containerPath: string;
  /** Default false. */
  readonly readOnly?: boolean;
  /** The host path is a file (the mount point is created as an empty file). Default false. */
  readonly isFile?: boolean;
}

export interface RootfsSpec {
  /** The image's root directory (the overlay's lower layer: never written). */
  readonly root: string;
  /**
   * A host directory of this container: `upper/` (its writable layer, also where mount points
   * are created), `work/` (overlayfs's) and `merged/` (the mount point). Keep it across starts to
   * keep the layer; empty it for a fresh one.
   */
  readonly stateDir: string;
  /** The root filesystem is mounted read-only (volumes keep their own mode). Default false. */
  readonly readOnlyRootFilesystem?: boolean;
  /**
   * Mounted in order of depth (parents first), at paths whose symlinks are resolved inside the
   * root (`resolveInRoot`). `/tmp` is the image's unless a volume mounts it.
   */
  readonly volumes?: readonly RootfsVolume[];
  /** Default 0. */
  readonly uid?: number;
  /** Default 0. */
  readonly gid?: number;
  /** Supplementary groups. Default: none for root, `[gid]` for another user. */
  readonly groups?: readonly number[];
  /** `allowPrivilegeEscalation: false`. Default false. */
  readonly noNewPrivileges?: boolean;
  /**
   * `capabilities.drop: [ALL]`. Default false. A non-root process then has no capability at
   * all; a root process keeps CAP_SYS_CHROOT (the chroot runs after the drop).
   */
  readonly dropAllCapabilities?: boolean;
  /** Default `/`. */
  readonly workingDir?: string;
  /** The UTS namespace's hostname. Default: the host's name, unchanged. */
  readonly hostname?: string;
  /** An `ip netns` name to run in (a pod's network). Default: the caller's network namespace. */
  readonly netns?: string;
}

/** The host tools the script runs, found on the host's standard PATH. */
export interface RootfsTools {
  readonly ip: string;
  readonly unshare: string;
  readonly mount: string;
  readonly chroot: string;
  readonly setpriv: string;
  readonly hostname: string;
}

/** Finds the host tools; throws naming the missing ones and their Debian packages. */
export function rootfsTools(): RootfsTools {
  const packages: Record<keyof RootfsTools, string> = {
    ip: 'iproute2', unshare: 'util-linux', mount: 'mount', chroot: 'coreutils', setpriv: 'util-linux', hostname: 'hostname',
  };
  const found: Partial<Record<keyof RootfsTools, string>> = {};
  const missing: string[] = [];
  for (const [tool, pkg] of Object.entries(packages) as [keyof RootfsTools, string][]) {
    const p = which(tool);
    if (p) found[tool] = p;
    else missing.push(`${tool} (${pkg})`);
  }
  if (missing.length > 0) throw new Error(`rootfs: host tools not found: ${missing.join(', ')}`);
  return found as RootfsTools;
}

/**
 * A container path with the symlinks of the root resolved inside the root (as runtimes do:
 * Debian's `/var/run` is a link to `/run`, which must not lead to the host's `/run`). Missing
 * components are kept as they are (they become directories at mount time).
 */
export function resolveInRoot(root: string, containerPath: string): string {
  const todo = containerPath.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  for (let hops = 0; todo.length > 0;) {
    const c = todo.shift()!;
    if (c === '..') {
      done.pop();
      continue;
    }
    const host = path.join(root, ...done, c);
    let target: string | undefined;
    try {
      if (fs.lstatSync(host).isSymbolicLink()) target = fs.readlinkSync(host);
    } catch {
      // missing: created at mount time
    }
    if (target === undefined) {
      done.push(c);
      continue;
    }
    if (++hops > 40) throw new Error(`rootfs: too many symlinks resolving ${containerPath} in ${root}`);
    if (target.startsWith('/')) done.length = 0;
    todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
  }
  return `/${done.join('/')}`;
}

function depth(p: string): number {
  return p.split('/').filter((x) => x !== '').length;
}

/** The privilege switch and chroot: the argv prefix that ends with the root's path. */
function enterArgv(spec: RootfsSpec, t: RootfsTools, merged: string): string[] {
  const uid = spec.uid ?? 0;
  const gid = spec.gid ?? 0;
  const groups = spec.groups ?? (uid === 0 ? [] : [gid]);
  const setpriv: string[] = [];
  if (spec.noNewPrivileges) setpriv.push('--no-new-privs');
  if (uid === 0) {
    // Root stays root: setpriv sets the group ids; chroot only changes the root.
    if (gid !== 0 || groups.length > 0) {
      setpriv.push(`--regid=${gid}`, groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups');
    }
    if (spec.dropAllCapabilities) setpriv.push('--inh-caps=-all', '--bounding-set=-all,+sys_chroot');
    return [...(setpriv.length > 0 ? [t.setpriv, ...setpriv, '--'] : []), t.chroot, merged];
  }
  // Another user: chroot switches groups, gid and uid after entering the root (the kernel clears
  // the capabilities at the switch); the bounding set keeps only what chroot needs for that.
  if (spec.dropAllCapabilities) setpriv.push('--inh-caps=-all', '--bounding-set=-all,+sys_chroot,+setuid,+setgid');
  const chroot = [t.chroot, `--userspec=${uid}:${gid}`, `--groups=${(groups.length > 0 ? groups : [gid]).join(',')}`, merged];
  return [...(setpriv.length > 0 ? [t.setpriv, ...setpriv, '--'] : []), ...chroot];
}

/**
 * The setup script: run by the host's `/bin/sh` as root in the new namespaces, it builds the
 * container's filesystem under `<stateDir>/merged` and execs the container's argv (`"$@"`).
 */
export function rootfsScript(spec: RootfsSpec, tools: RootfsTools = rootfsTools()): string {
  const m = `${spec.stateDir}/merged`;
  const t = tools;
  const lines = [
    'set -e',
    `m=${sq(m)}`,
    `mkdir -p ${sq(`${spec.stateDir}/upper`)} ${sq(`${spec.stateDir}/work`)} "$m"`,
    `${t.mount} -t overlay overlay -o ${sq(`lowerdir=${spec.root},upperdir=${spec.stateDir}/upper,workdir=${spec.stateDir}/work`)} "$m"`,
    'mkdir -p "$m/proc" "$m/dev"',
    `${t.mount} -t proc -o nosuid,nodev,noexec proc "$m/proc"`,
    `${t.mount} -t tmpfs -o nosuid,mode=755,size=64k dev "$m/dev"`,
    'for d in null zero full random urandom tty; do : > "$m/dev/$d"; ' + `${t.mount} --bind "/dev/$d" "$m/dev/$d"; done`,
    'ln -s /proc/self/fd "$m/dev/fd"',
    'ln -s /proc/self/fd/0 "$m/dev/stdin"; ln -s /proc/self/fd/1 "$m/dev/stdout"; ln -s /proc/self/fd/2 "$m/dev/stderr"',
    'mkdir "$m/dev/shm"',
    `${t.mount} -t tmpfs -o nosuid,nodev,mode=1777 shm "$m/dev/shm"`,
  ];
  const volumes = (spec.volumes ?? []).map((v) => ({ ...v, containerPath: resolveInRoot(spec.root, v.containerPath) }))
    .sort((a, b) => depth(a.containerPath) - depth(b.containerPath));
  for (const v of volumes) {
    const target = `"$m"${sq(v.containerPath)}`;
    lines.push(v.isFile
      ? `mkdir -p "$(dirname ${target})"; [ -e ${target} ] || : > ${target}`
      : `mkdir -p ${target}`);
    lines.push(`${t.mount} --bind ${sq(v.hostPath)} ${target}`);
    if (v.readOnly) lines.push(`${t.mount} -o remount,bind,ro ${target}`);
  }
  if (spec.readOnlyRootFilesystem) lines.push(`${t.mount} -o remount,bind,ro "$m"`);
  if (spec.hostname !== undefined) lines.push(`${t.hostname} ${sq(spec.hostname)}`);
  const enter = enterArgv(spec, t, m).map((a) => (a === m ? '"$m"' : sq(a))).join(' ');
  const wd = spec.workingDir ?? '/';
  // A working directory needs a shell in the root to cd there before the exec (the images here
  // all have /bin/sh); `/` is where chroot leaves the process anyway.
  const cd = wd === '/' ? '' : ` /bin/sh -c 'cd "$1" && shift && exec "$@"' sh ${sq(wd)}`;
  lines.push(`exec ${enter}${cd} "$@"`);
  return lines.join('\n') + '\n';
}

/** The host command line that runs `argv` in the container: `[ip netns exec N] unshare ... sh -c SCRIPT`. */
export function rootfsCommand(spec: RootfsSpec, argv: readonly string[], tools: RootfsTools = rootfsTools()): string[] {
  if (argv.length === 0) throw new Error('rootfs: empty argv');
  const netns = spec.netns !== undefined ? [tools.ip, 'netns', 'exec', spec.netns] : [];
  return [...netns, tools.unshare, '-m', '-p', '-u', '--fork', '--kill-child', '--propagation', 'private', '--',
    '/bin/sh', '-c', rootfsScript(spec, tools), 'rootfs', ...argv];
}

export interface RootfsRunOptions {
  /** The container's environment: the whole of it (never the caller's). Default: `PATH` only. */
  readonly env?: Readonly<Record<string, string>>;
  /** Written to stdin, then closed. */
  readonly input?: string;
  /** Default 60 s; the process group is SIGKILLed after it. */
  readonly timeoutMs?: number;
}

export interface RootfsResult {
  /** Exit code; null when killed. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function envOf(opts: RootfsRunOptions): NodeJS.ProcessEnv {
  return { ...(opts.env ?? { PATH: DEFAULT_PATH }) };
}

/** Runs `argv` in the container until it exits; never throws for a failing command. */
export function runInRootfs(spec: RootfsSpec, argv: readonly string[], opts: RootfsRunOptions = {}): Promise<RootfsResult> {
  const [cmd, ...args] = rootfsCommand(spec, argv);
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { detached: true, env: envOf(opts), cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      if (p.pid) signal(-p.pid, 'SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    p.on('error', (e) => err.push(Buffer.from(e.message)));
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: timedOut ? null : code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
  });
}

/** A long-running container (a server): its output goes to `logFd`; `stop()` ends it. */
export interface RootfsProcess {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  /** `sig` (default SIGTERM) to the container's pid 1, SIGKILL to everything after `graceMs`. */
  stop(graceMs?: number, sig?: NodeJS.Signals): Promise<void>;
}

export function spawnInRootfs(spec: RootfsSpec, argv: readonly string[], logFd: number, opts: RootfsRunOptions = {}): RootfsProcess {
  const [cmd, ...args] = rootfsCommand(spec, argv);
  const proc = spawn(cmd, args, { detached: true, env: envOf(opts), cwd: '/', stdio: ['ignore', logFd, logFd] });
  const exited = new Promise<number | null>((resolve) => {
    proc.on('exit', (code) => resolve(code));
    proc.on('error', () => resolve(127));
  });
  const stop = async (graceMs = 5000, sig: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null || !proc.pid) return;
    const pid = proc.pid;
    // The container's pid 1 is unshare's only child: it gets SIGTERM first, as from a runtime.
    signal(pid1Of(pid) ?? -pid, sig);
    const timer = setTimeout(() => signal(-pid, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return { proc, exited, stop };
}

function pid1Of(unsharePid: number): number | undefined {
  try {
    const children = fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8');
    const child = Number(children.trim().split(/\s+/)[0]);
    return Number.isInteger(child) && child > 0 ? child : undefined;
  } catch {
    return undefined;
  }
}
