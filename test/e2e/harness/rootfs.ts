import * as fs from 'fs';
import * as path from 'path';
import { sq, which } from './util';

/**
 * Runs a process inside an image's root directory the way a container runtime does: a private
 * mount namespace (and PID and UTS namespaces) in which the root is an overlay (the root
 * directory, never written, under a per-container upper directory), `/proc`, a minimal `/dev`,
 * `/dev/shm` as a tmpfs, the volumes bind-mounted, the root remounted read-only when asked, then
 * `chroot` with the container's user, groups, no_new_privs and capabilities.
 *
 * This module builds what to run (`rootfsScript`, `rootfsCommand`, `rootfsExecCommand`);
 * `rootfs-run.ts` runs it. Not a security boundary: the host's mounts stay in the namespace,
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
  /** A host file the setup writes just before the exec: the container has started. */
  readonly startedFile?: string;
}

/** The host tools the script runs, found on the host's standard PATH. */
export interface RootfsTools {
  readonly ip: string;
  readonly unshare: string;
  readonly mount: string;
  readonly chroot: string;
  readonly setpriv: string;
  readonly hostname: string;
  readonly nsenter: string;
}

/** Finds the host tools; throws naming the missing ones and their Debian packages. */
export function rootfsTools(): RootfsTools {
  const packages: Record<keyof RootfsTools, string> = {
    ip: 'iproute2', unshare: 'util-linux', mount: 'mount', chroot: 'coreutils', setpriv: 'util-linux', hostname: 'hostname', nsenter: 'util-linux',
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

/** The merged root of a container: where its filesystem is mounted (in its mount namespace). */
export function mergedRoot(spec: RootfsSpec): string {
  return `${spec.stateDir}/merged`;
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
  const m = mergedRoot(spec);
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
  if (spec.startedFile !== undefined) lines.push(`echo started > ${sq(spec.startedFile)}`);
  lines.push(`exec ${containerEntry(spec, t).map(sq).join(' ')} "$@"`);
  return lines.join('\n') + '\n';
}

/**
 * The argv prefix that takes a root process in the container's mount namespace into the
 * container: user switch, chroot to the merged root, cd to the working directory. A working
 * directory other than `/` needs a `/bin/sh` in the root (every root here has one).
 */
export function containerEntry(spec: RootfsSpec, tools: RootfsTools = rootfsTools()): string[] {
  const wd = spec.workingDir ?? '/';
  const cd = wd === '/' ? [] : ['/bin/sh', '-c', 'cd "$1" && shift && exec "$@"', 'sh', wd];
  return [...enterArgv(spec, tools, mergedRoot(spec)), ...cd];
}

/** The host command line that runs `argv` in the container: `[ip netns exec N] unshare ... sh -c SCRIPT`. */
export function rootfsCommand(spec: RootfsSpec, argv: readonly string[], tools: RootfsTools = rootfsTools()): string[] {
  if (argv.length === 0) throw new Error('rootfs: empty argv');
  const netns = spec.netns !== undefined ? [tools.ip, 'netns', 'exec', spec.netns] : [];
  return [...netns, tools.unshare, '-m', '-p', '-u', '--fork', '--kill-child', '--propagation', 'private', '--',
    '/bin/sh', '-c', rootfsScript(spec, tools), 'rootfs', ...argv];
}

/**
 * The host command line that runs `argv` in a running container (`kubectl exec`): enter the
 * namespaces of its pid 1 (`nsenter`), then the same user switch and chroot as the container.
 */
export function rootfsExecCommand(spec: RootfsSpec, pid1: number, argv: readonly string[], tools: RootfsTools = rootfsTools()): string[] {
  if (argv.length === 0) throw new Error('rootfs: empty argv');
  return [tools.nsenter, '-t', String(pid1), '-m', '-u', '-p', '-n', '--', ...containerEntry(spec, tools), ...argv];
}
