import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { expand, PodFacts, RefSource, resolveEnv } from './env';
import { Network } from './netns';
import { rootfsCommand, rootfsExecCommand, RootfsSpec } from './rootfs';
import { Container, LifecycleHandler, PodSpec, Probe, StringMap, Volume, VolumeMount } from './types';
import { HOST_ROOT, UserlandImage, userlandSpec } from './userland';
import { ConfigError, errorMessage, MissingRefError, readText, signal, sleep, sq, tail, tryRun } from './util';
import {
  applyFsGroup, createWritableVolume, ensureHostMountpoint, renderVolume, serviceAccountPayload, ServiceAccountFiles,
  snapshot, VolumePayload, writeAtomic,
} from './volumes';

/** A directory of an image's writable layer that must not be shared with the host. */
export interface PrivateDir {
  readonly path: string;
  /** Default 0755. Owned by the mapped postgres user, as in the postgres images. */
  readonly mode?: number;
}

/**
 * What the harness knows about an image (there are no image pulls: containers run the host's
 * binaries). Matched by image name prefix (see ClusterOptions.images).
 */
export interface ImageSpec {
  /** Directories put first on PATH. */
  readonly path?: string[];
  /** The image's ENV (lowest precedence). */
  readonly env?: StringMap;
  /** ENTRYPOINT / CMD, used when the container has no command / args. */
  readonly entrypoint?: string[];
  readonly cmd?: string[];
  readonly workingDir?: string;
  /** The image's USER (uid) when neither the pod nor the container sets runAsUser. Default 0. */
  readonly user?: number;
  /** HOME of the container process. */
  readonly home?: string;
  /** Directories of the image's writable layer: a fresh private directory per container start. */
  readonly privateDirs?: PrivateDir[];
  /** Do not run containers of this image: they count as running and ready. */
  readonly skip?: boolean;
}

export interface ExecOptions {
  /** Written to the process's stdin (then closed). */
  readonly input?: string | Buffer;
  /** Default 30 s; the process group is SIGKILLed after it. */
  readonly timeoutMs?: number;
}

export interface ExecResult {
  /** Exit code; null when killed (timeout). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface Tools {
  readonly ip: string;
  readonly unshare: string;
  readonly nsenter: string;
  readonly setpriv: string;
}

/** What a pod needs from the cluster. */
export interface PodHost {
  readonly root: string;
  readonly network: Network;
  readonly refs: RefSource;
  readonly tools: Tools;
  readonly postgresUid: number;
  readonly postgresGid: number;
  readonly probeTiming: 'fast' | 'scaled' | 'synthesized';
  readonly fsGroupOwnership: boolean;
  readonly destroyed: boolean;
  /** The id a container's non-zero uid runs as (ClusterOptions.userlandIds); 0 stays 0. */
  mapUid(id: number): number;
  /** Same for group ids. */
  mapGid(id: number): number;
  image(image: string | undefined): ImageSpec;
  serviceEnv(): StringMap;
  /** Token and CA of the pod's ServiceAccount (undefined without the fake API server). */
  serviceAccountFiles(pod: PodRuntime): ServiceAccountFiles | undefined;
  /** Whether the token is automounted (pod spec, else ServiceAccount, else true). */
  automountToken(pod: PodRuntime): boolean;
  hostsFor(pod: PodRuntime): string;
  podChanged(pod: PodRuntime): void;
  event(message: string): void;
  track(pid: number): void;
  untrack(pid: number): void;
  trackPidNs(ns: string): void;
}

export interface PodOwner {
  readonly kind: 'StatefulSet' | 'Job' | 'Deployment';
  readonly name: string;
  readonly ordinal?: number;
  /** A Deployment's pod: the pod-template-hash of its ReplicaSet. */
  readonly templateHash?: string;
  /** A StatefulSet's pod: the revision it was created from (its controller-revision-hash label). */
  readonly revision?: string;
}

export interface PodInit {
  readonly name: string;
  readonly namespace: string;
  readonly owner: PodOwner;
  readonly labels: StringMap;
  readonly annotations: StringMap;
  readonly spec: PodSpec;
}

interface ExitInfo {
  readonly code: number | null;
  readonly signal: string | null;
}

interface Identity {
  readonly uid: number;
  readonly gid: number;
  readonly groups: number[];
}

/** One start of a container: one process tree in its own namespaces. */
interface Run {
  readonly id: number;
  readonly proc: ChildProcess;
  readonly env: Map<string, string>;
  readonly identity: Identity;
  readonly workingDir: string;
  /** Set when the container runs in its image's root (ClusterOptions.userlands). */
  readonly rootfs?: RootfsSpec;
  readonly exited: Promise<ExitInfo>;
  nsPid?: number;
  started: boolean;
  exit?: ExitInfo;
  terminating: boolean;
  stopping?: Promise<void>;
  startupPassed: boolean;
  probeReady: boolean;
  postStartDone: boolean;
}

interface Mount {
  /** Relative to the harness root (resolved against the setup script's cwd). */
  readonly src: string;
  readonly target: string;
  readonly readOnly: boolean;
  readonly isFile: boolean;
}

const PROC_CHECK_MS = 25;

function isSubPathSafe(p: string): boolean {
  return p !== '' && !p.startsWith('/') && !p.split('/').includes('..');
}

function depth(p: string): number {
  return p.split('/').filter((x) => x !== '').length;
}

/** A running container of a pod, with kubelet's restart, probe and termination behaviour. */
export class ContainerRuntime {
  public restarts = 0;
  /** Why the container is not running (CreateContainerConfigError, CrashLoopBackOff...). */
  public waitingReason?: string;
  public lastExit?: ExitInfo;
  public lastProbeFailure?: string;
  public current?: Run;
  /** Set when the pod is terminating: the container is not started again. */
  public stopped = false;
  private runCounter = 0;
  private readonly dir: string;
  public readonly logFile: string;
  public readonly skipped: boolean;

  constructor(public readonly pod: PodRuntime, public readonly spec: Container, public readonly init: boolean) {
    this.dir = path.join(pod.dir, 'ctr', spec.name);
    this.logFile = path.join(pod.host.root, 'logs', pod.name, `${spec.name}.log`);
    this.skipped = pod.host.image(spec.image).skip === true;
    fs.mkdirSync(this.dir, { recursive: true });
    fs.mkdirSync(path.dirname(this.logFile), { recursive: true });
  }

  public get name(): string {
    return this.spec.name;
  }

  /** An init container with restartPolicy Always: runs alongside the containers. */
  public get sidecar(): boolean {
    return this.init && this.spec.restartPolicy === 'Always';
  }

  public get running(): boolean {
    const r = this.current;
    return !!r && r.started && !r.exit;
  }

  public get ready(): boolean {
    if (this.skipped) return !this.stopped;
    const r = this.current;
    if (!r || !r.started || r.exit || r.terminating || !r.startupPassed || !r.postStartDone) return false;
    return this.spec.readinessProbe ? r.probeReady : true;
  }

  /** kubelet's container loop for restartPolicy Always. Returns when the pod terminates. */
  public async superviseAlways(): Promise<void> {
    if (this.skipped) return;
    let backoff = 1000;
    while (!this.stopped && !this.pod.host.destroyed) {
      const startedAt = Date.now();
      let exit: ExitInfo | undefined;
      try {
        exit = await this.runOnce();
      } catch (e) {
        this.noteStartError(e);
        await sleep(1000, true);
        continue;
      }
      if (this.stopped || this.pod.host.destroyed) return;
      this.restarts += 1;
      if (Date.now() - startedAt > 10_000) backoff = 1000;
      this.waitingReason = 'CrashLoopBackOff';
      this.pod.host.event(`${this.pod.name}/${this.name}: exited (code ${exit.code}, signal ${exit.signal}); restart ${this.restarts} in ${backoff} ms`);
      await sleep(backoff, true);
      backoff = Math.min(backoff * 2, 8000);
    }
  }

  /** Runs the container until it exits once; retries only while it cannot be created. */
  public async runToCompletion(): Promise<ExitInfo> {
    if (this.skipped) return { code: 0, signal: null };
    for (;;) {
      if (this.stopped || this.pod.host.destroyed) return { code: null, signal: 'SIGKILL' };
      try {
        return await this.runOnce();
      } catch (e) {
        if (!(e instanceof MissingRefError)) throw e;
        this.noteStartError(e);
        await sleep(1000, true);
      }
    }
  }

  /** Stops the current run as kubelet does: preStop, SIGTERM, SIGKILL after the grace period. */
  public async stop(graceMs: number, runPreStop: boolean): Promise<void> {
    this.stopped = true;
    const r = this.current;
    if (r && !r.exit) await this.terminateRun(r, graceMs, runPreStop);
  }

  /** SIGKILL everything at once (node crash). */
  public kill(): void {
    this.stopped = true;
    const r = this.current;
    if (r && !r.exit) {
      r.terminating = true;
      this.killRun(r);
    }
  }

  public async waitExited(timeoutMs: number): Promise<void> {
    const r = this.current;
    if (!r || r.exit) return;
    await Promise.race([r.exited, sleep(timeoutMs, true)]);
  }

  /** `kubectl exec`: the same network, mount, PID and UTS namespaces, user and environment. */
  public async exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = this.current;
    if (this.skipped || !r || !r.started || r.exit || r.nsPid === undefined) {
      throw new Error(`container ${this.pod.name}/${this.name} is not running`);
    }
    return this.execIn(r, argv, opts);
  }

  public logs(): string {
    return readText(this.logFile);
  }

  public describe(): string {
    const r = this.current;
    const state = this.skipped ? 'skipped (image not run)' : !r ? `waiting (${this.waitingReason ?? 'not started'})`
      : r.exit ? `terminated (code ${r.exit.code}, signal ${r.exit.signal})`
        : r.started ? `running${r.terminating ? ', terminating' : ''}${r.startupPassed ? '' : ', startup probe pending'}` : 'starting';
    return [
      `  ${this.init ? 'init container' : 'container'} ${this.name}: ${state}, ready=${this.ready}, restarts=${this.restarts}`
      + (this.waitingReason ? `, last reason: ${this.waitingReason}` : ''),
      this.lastProbeFailure ? `    last probe failure: ${this.lastProbeFailure.trim().slice(0, 500)}` : '',
      `    log (${this.logFile}):`,
      tail(this.logs(), 15).split('\n').map((l) => `      ${l}`).join('\n'),
    ].filter((l) => l !== '').join('\n');
  }

  private noteStartError(e: unknown): void {
    const reason = e instanceof MissingRefError || e instanceof ConfigError ? `CreateContainerConfigError: ${e.message}`
      : `StartError: ${errorMessage(e)}`;
    if (this.waitingReason !== reason) this.pod.host.event(`${this.pod.name}/${this.name}: ${reason}`);
    this.waitingReason = reason;
  }

  private identity(): Identity {
    const host = this.pod.host;
    const psc = this.pod.spec.securityContext ?? {};
    const csc = this.spec.securityContext ?? {};
    const image = host.image(this.spec.image);
    const uid = csc.runAsUser ?? psc.runAsUser ?? image.user ?? 0;
    if ((csc.runAsNonRoot ?? psc.runAsNonRoot) === true && uid === 0) {
      throw new ConfigError('container has runAsNonRoot and image will run as root');
    }
    // Without runAsGroup the primary group comes from the image's passwd entry: the postgres group
    // on the host; under userlands, the group of the same number.
    const group = csc.runAsGroup ?? psc.runAsGroup;
    const gid = host.mapGid(group ?? uid);
    const groups = [...(psc.fsGroup !== undefined ? [psc.fsGroup] : []), ...(psc.supplementalGroups ?? [])]
      .map((g) => host.mapGid(g));
    return { uid: host.mapUid(uid), gid, groups: [...new Set(groups)] };
  }

  private argv(env: Map<string, string>): string[] {
    const image = this.pod.host.image(this.spec.image);
    const command = this.spec.command ?? image.entrypoint ?? [];
    const args = this.spec.args ?? (this.spec.command ? [] : image.cmd ?? []);
    const lookup = (n: string): string | undefined => env.get(n);
    const argv = [...command, ...args].map((a) => expand(a, lookup));
    if (argv.length === 0) {
      throw new ConfigError(`no command: the harness cannot run image ${this.spec.image ?? '(none)'} without `
        + 'a command (give it an entrypoint or skip it in ClusterOptions.images)');
    }
    return argv;
  }

  private environment(): Map<string, string> {
    const host = this.pod.host;
    const image = host.image(this.spec.image);
    const k8s = resolveEnv(this.pod.facts(), [...(this.pod.spec.initContainers ?? []), ...this.pod.spec.containers],
      this.spec, host.refs, host.serviceEnv());
    const base = new Map<string, string>([
      ['PATH', [...(image.path ?? []), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':')],
      ['LANG', 'C.UTF-8'],
      ['HOSTNAME', this.pod.hostname],
      ['HOME', image.home ?? '/tmp'],
      ...Object.entries(image.env ?? {}),
    ]);
    for (const [k, v] of k8s) base.set(k, v);
    return base;
  }

  private mounts(env: Map<string, string>): Mount[] {
    const pod = this.pod;
    const host = pod.host;
    const rel = (p: string): string => path.relative(host.root, p);
    const list: Mount[] = [];
    const mountPaths = new Set((this.spec.volumeMounts ?? []).map((m) => path.resolve(m.mountPath)));
    for (const [i, pd] of (host.image(this.spec.image).privateDirs ?? []).entries()) {
      if (mountPaths.has(path.resolve(pd.path))) continue;
      const dir = path.join(this.dir, 'layer', String(i));
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      fs.chownSync(dir, host.postgresUid, host.postgresGid);
      fs.chmodSync(dir, pd.mode ?? 0o755);
      list.push({ src: rel(dir), target: pd.path, readOnly: false, isFile: false });
    }
    const lookup = (n: string): string | undefined => env.get(n);
    for (const [i, vm] of (this.spec.volumeMounts ?? []).entries()) {
      list.push(this.volumeMount(vm, i, lookup));
    }
    const sa = pod.saDir;
    const saPath = '/var/run/secrets/kubernetes.io/serviceaccount';
    if (sa && !mountPaths.has(saPath)) list.push({ src: rel(sa), target: saPath, readOnly: true, isFile: false });
    list.sort((a, b) => depth(a.target) - depth(b.target));
    const result: Mount[] = [{ src: rel(pod.hostsFile), target: '/etc/hosts', readOnly: false, isFile: true }];
    if (pod.resolvTarget) result.push({ src: rel(pod.resolvFile), target: pod.resolvTarget, readOnly: false, isFile: true });
    return [...result, ...list];
  }

  private volumeMount(vm: VolumeMount, index: number, lookup: (n: string) => string | undefined): Mount {
    const pod = this.pod;
    const rel = (p: string): string => path.relative(pod.host.root, p);
    const volume = pod.volume(vm.name);
    if (!volume) throw new ConfigError(`volumeMount ${vm.name}: no such volume in the pod`);
    const subPath = vm.subPathExpr !== undefined ? expand(vm.subPathExpr, lookup) : vm.subPath;
    if (subPath !== undefined && subPath !== '' && !isSubPathSafe(subPath)) throw new ConfigError(`invalid subPath ${subPath}`);
    const dir = pod.volumeDir(volume);
    const projected = pod.isProjected(volume);
    const readOnly = vm.readOnly === true || projected || volume.persistentVolumeClaim?.readOnly === true;
    if (!subPath) return { src: rel(dir), target: vm.mountPath, readOnly, isFile: false };
    const src = path.join(dir, subPath);
    if (projected) {
      if (!fs.existsSync(src)) throw new ConfigError(`subPath ${subPath} does not exist in volume ${vm.name}`);
      const snap = path.join(this.dir, 'subpath', String(index));
      snapshot(src, snap);
      return { src: rel(snap), target: vm.mountPath, readOnly, isFile: !fs.statSync(snap).isDirectory() };
    }
    if (!fs.existsSync(src)) {
      const st = fs.statSync(dir);
      fs.mkdirSync(src, { recursive: true, mode: 0o750 });
      for (let p = src; p !== dir; p = path.dirname(p)) fs.chownSync(p, st.uid, st.gid);
    }
    return { src: rel(src), target: vm.mountPath, readOnly, isFile: !fs.statSync(src).isDirectory() };
  }

  /** Starts the process, waits until it exits. Throws (without starting) if it cannot be created. */
  private async runOnce(): Promise<ExitInfo> {
    const host = this.pod.host;
    const identity = this.identity();
    const env = this.environment();
    const argv = this.argv(env);
    const mounts = this.mounts(env);
    const image = host.image(this.spec.image);
    const workingDir = this.spec.workingDir ?? image.workingDir ?? '/';
    const id = ++this.runCounter;
    const marker = path.join(this.dir, `started.${id}`);
    const root = (image as Partial<UserlandImage>).root;
    const rootfs = root === undefined || root === HOST_ROOT ? undefined
      : this.rootfsSpec(image as UserlandImage, id, mounts, identity, workingDir, marker);
    const proc = rootfs ? this.spawnInRoot(rootfs, argv, env) : this.spawnOnHost(id, mounts, identity, workingDir, marker, argv, env);
    proc.unref();
    let resolveExit!: (e: ExitInfo) => void;
    const exited = new Promise<ExitInfo>((resolve) => {
      resolveExit = resolve;
    });
    const run: Run = {
      id,
      proc,
      env,
      identity,
      workingDir,
      rootfs,
      exited,
      started: false,
      terminating: false,
      startupPassed: !this.spec.startupProbe,
      probeReady: false,
      postStartDone: !this.spec.lifecycle?.postStart,
    };
    const onExit = (code: number | null, sig: string | null): void => {
      if (run.exit) return;
      run.exit = { code, signal: sig };
      this.lastExit = run.exit;
      if (proc.pid) host.untrack(proc.pid);
      if (run.nsPid) host.untrack(run.nsPid);
      resolveExit(run.exit);
      this.pod.changed();
    };
    proc.on('exit', onExit);
    proc.on('error', (err) => {
      fs.appendFileSync(path.join(this.dir, 'runtime.log'), `spawn error: ${err.message}\n`);
      onExit(127, null);
    });
    this.current = run;
    if (proc.pid) host.track(proc.pid);
    this.waitingReason = undefined;
    while (!run.exit && !fs.existsSync(marker)) await sleep(PROC_CHECK_MS, true);
    if (!run.exit && proc.pid) {
      // The container's pid 1 is unshare's only child (unshare --fork stays as its parent).
      const child = Number(readText(`/proc/${proc.pid}/task/${proc.pid}/children`).trim().split(/\s+/)[0]);
      if (Number.isInteger(child) && child > 0) {
        run.nsPid = child;
        host.track(child);
        try {
          host.trackPidNs(fs.readlinkSync(`/proc/${child}/ns/pid`));
        } catch {
          // exited meanwhile
        }
      }
    }
    if (!run.exit && run.nsPid !== undefined) {
      run.started = true;
      host.event(`${this.pod.name}/${this.name}: started (run ${id}, pid ${run.nsPid}, ${argv.join(' ').slice(0, 120)})`);
      this.pod.changed();
      if (this.spec.lifecycle?.postStart) {
        const ok = await this.runHandler(run, this.spec.lifecycle.postStart, 30_000, 'postStart');
        if (!ok && !run.exit) {
          host.event(`${this.pod.name}/${this.name}: FailedPostStartHook, killing`);
          await this.terminateRun(run, this.pod.graceMs(), false);
        }
        run.postStartDone = true;
        this.pod.changed();
      }
      if (!this.init || this.sidecar) this.startProbes(run);
    }
    const exit = await exited;
    return exit;
  }

  /** ClusterOptions.userlands: this start of the container in its image's root (userland.ts). */
  private rootfsSpec(image: UserlandImage, id: number, mounts: Mount[], identity: Identity, workingDir: string, marker: string): RootfsSpec {
    const pod = this.pod;
    return userlandSpec({
      image,
      container: this.spec,
      stateDir: path.join(this.dir, `rootfs.${id}`),
      mounts: mounts.map((m) => ({ ...m, src: path.resolve(pod.host.root, m.src) })),
      resolvTarget: pod.resolvTarget,
      ...identity,
      workingDir,
      hostname: pod.hostname,
      netns: pod.netns!,
      startedFile: marker,
    });
  }

  /** Starts the container on the host's binaries: the setup script bind-mounts, then execs argv. */
  private spawnOnHost(id: number, mounts: Mount[], identity: Identity, workingDir: string, marker: string,
    argv: string[], env: Map<string, string>): ChildProcess {
    const host = this.pod.host;
    const script = this.setupScript(id, mounts, identity, workingDir, marker);
    const scriptFile = path.join(this.dir, `setup.${id}.sh`);
    fs.writeFileSync(scriptFile, script, { mode: 0o700 });
    for (const m of mounts) {
      const nested = mounts.some((o) => o !== m && !o.isFile && m.target.startsWith(`${path.resolve(o.target)}/`));
      if (!nested && !fs.existsSync(m.target)) ensureHostMountpoint(m.target, m.isFile);
    }
    const runtimeLog = fs.openSync(path.join(this.dir, 'runtime.log'), 'a');
    const t = host.tools;
    const proc = spawn(t.ip, ['netns', 'exec', this.pod.netns!, t.unshare, '-m', '-u', '-p', '--fork', '--kill-child',
      '--mount-proc', '--propagation', 'private', '--', '/bin/sh', path.relative(host.root, scriptFile), ...argv], {
      cwd: host.root, detached: true, stdio: ['ignore', runtimeLog, runtimeLog], env: Object.fromEntries(env),
    });
    fs.closeSync(runtimeLog);
    return proc;
  }

  /** Starts the container in its image's root (rootfs.ts); setup and container output go to its log. */
  private spawnInRoot(spec: RootfsSpec, argv: string[], env: Map<string, string>): ChildProcess {
    const [cmd, ...args] = rootfsCommand(spec, argv);
    const log = fs.openSync(this.logFile, 'a');
    const proc = spawn(cmd, args, { cwd: '/', detached: true, stdio: ['ignore', log, log], env: Object.fromEntries(env) });
    fs.closeSync(log);
    return proc;
  }

  private setupScript(id: number, mounts: Mount[], identity: Identity, workingDir: string, marker: string): string {
    const host = this.pod.host;
    const rel = (p: string): string => sq(path.relative(host.root, p));
    const lines = [
      '#!/bin/sh',
      '# Generated by the fdb-e2e harness: runs as root inside the container\'s new mount, UTS and',
      '# PID namespaces (cwd = harness root, so relative sources survive a volume over /tmp).',
      `exec >>${rel(this.logFile)} 2>&1`,
      'set -e',
      'bind() {',
      '  if [ ! -e "$2" ]; then',
      '    if [ "$4" = f ]; then mkdir -p "$(dirname "$2")"; : > "$2"; else mkdir -p "$2"; fi',
      '  fi',
      '  mount -c --bind "$1" "$2"',
      '  if [ "$3" = ro ]; then mount -c -o remount,bind,ro "$2"; fi',
      '}',
      `hostname ${sq(this.pod.hostname)}`,
      ...mounts.map((m) => `bind ${sq(m.src)} ${sq(m.target)} ${m.readOnly ? 'ro' : 'rw'} ${m.isFile ? 'f' : 'd'}`),
      `echo ${id} > ${rel(marker)}`,
      `mkdir -p ${sq(workingDir)}`,
      `cd ${sq(workingDir)}`,
      'set +e',
      `exec ${this.privDrop(identity).map(sq).join(' ')} "$@"`,
      '',
    ];
    return lines.join('\n');
  }

  /** setpriv arguments to become the container user (empty for root). */
  private privDrop(identity: Identity): string[] {
    const nnp = this.spec.securityContext?.allowPrivilegeEscalation === false ? ['--no-new-privs'] : [];
    if (identity.uid === 0 && identity.gid === 0 && identity.groups.length === 0) {
      return nnp.length > 0 ? [this.pod.host.tools.setpriv, ...nnp, '--'] : [];
    }
    const groups = identity.groups.length > 0 ? [`--groups=${identity.groups.join(',')}`] : ['--clear-groups'];
    return [this.pod.host.tools.setpriv, `--reuid=${identity.uid}`, `--regid=${identity.gid}`, ...groups, ...nnp, '--'];
  }

  private execIn(r: Run, argv: readonly string[], opts: ExecOptions): Promise<ExecResult> {
    const t = this.pod.host.tools;
    const [cmd, ...args] = r.rootfs ? rootfsExecCommand(r.rootfs, r.nsPid!, argv)
      : [t.nsenter, '-t', String(r.nsPid), '-m', '-n', '-p', '-u', '--', '/bin/sh', '-c', 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"',
        'sh', r.workingDir, ...this.privDrop(r.identity), ...argv];
    const timeoutMs = opts.timeoutMs ?? 30_000;
    return new Promise((resolve) => {
      const p = spawn(cmd, args, { detached: true, env: Object.fromEntries(r.env), cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] });
      const host = this.pod.host;
      if (p.pid) host.track(p.pid);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      p.stdout.on('data', (d: Buffer) => out.push(d));
      p.stderr.on('data', (d: Buffer) => err.push(d));
      p.stdin.on('error', () => undefined);
      const timer = setTimeout(() => {
        timedOut = true;
        if (p.pid) signal(-p.pid, 'SIGKILL');
      }, timeoutMs);
      let done = false;
      const finish = (code: number | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (p.pid) host.untrack(p.pid);
        resolve({ code: timedOut ? null : code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
      };
      p.on('error', (e) => {
        err.push(Buffer.from(e.message));
        finish(127);
      });
      p.on('close', (code) => finish(code));
      // A background process keeping stdout open must not hold the exec (kubectl exec returns too).
      p.on('exit', (code) => {
        setTimeout(() => finish(code), 500).unref();
      });
      if (opts.input !== undefined) p.stdin.end(opts.input);
      else p.stdin.end();
    });
  }

  private startProbes(run: Run): void {
    const s = this.spec;
    const loops: Array<[string, Probe | undefined]> = [['startup', s.startupProbe], ['readiness', s.readinessProbe], ['liveness', s.livenessProbe]];
    for (const [kind, probe] of loops) {
      if (!probe) continue;
      this.probeLoop(run, kind, probe).catch((e) => this.pod.host.event(`${this.pod.name}/${this.name}: ${kind} probe loop error: ${errorMessage(e)}`));
    }
  }

  private isCurrent(run: Run): boolean {
    return this.current === run && !run.exit && !run.terminating && !this.pod.host.destroyed;
  }

  /** One probe worker: never more than one probe of a kind in flight. */
  private async probeLoop(run: Run, kind: string, probe: Probe): Promise<void> {
    const host = this.pod.host;
    const realPeriod = probe.periodSeconds ?? 10;
    const asSynthesized = host.probeTiming === 'synthesized';
    const period = asSynthesized ? realPeriod : Math.min(realPeriod, 1);
    let failureThreshold = probe.failureThreshold ?? 3;
    if (host.probeTiming === 'scaled' && kind !== 'readiness') failureThreshold = Math.ceil(failureThreshold * realPeriod / period);
    const successThreshold = kind === 'readiness' ? probe.successThreshold ?? 1 : 1;
    const delay = probe.initialDelaySeconds ?? 0;
    await sleep((asSynthesized ? delay : Math.min(delay, 1)) * 1000, true);
    let successes = 0;
    let failures = 0;
    while (this.isCurrent(run)) {
      if (kind !== 'startup' && (!run.startupPassed || !run.postStartDone)) {
        await sleep(100, true);
        continue;
      }
      const t0 = Date.now();
      const result = await this.probeOnce(run, probe);
      if (!this.isCurrent(run)) return;
      if (result.ok) {
        successes += 1;
        failures = 0;
      } else {
        failures += 1;
        successes = 0;
        this.lastProbeFailure = `${kind}: ${result.output}`;
      }
      if (kind === 'startup') {
        if (result.ok) {
          run.startupPassed = true;
          this.pod.changed();
          return;
        }
        if (failures >= failureThreshold) {
          host.event(`${this.pod.name}/${this.name}: startup probe failed ${failures} times, restarting: ${result.output.trim().slice(0, 200)}`);
          await this.terminateRun(run, this.pod.graceMs(), true);
          return;
        }
      } else if (kind === 'readiness') {
        if (result.ok && successes >= successThreshold && !run.probeReady) {
          run.probeReady = true;
          this.pod.changed();
        } else if (!result.ok && failures >= failureThreshold && run.probeReady) {
          run.probeReady = false;
          host.event(`${this.pod.name}/${this.name}: readiness probe failed, not ready: ${result.output.trim().slice(0, 200)}`);
          this.pod.changed();
        }
      } else if (failures >= failureThreshold) {
        host.event(`${this.pod.name}/${this.name}: liveness probe failed ${failures} times, restarting: ${result.output.trim().slice(0, 200)}`);
        await this.terminateRun(run, this.pod.graceMs(), true);
        return;
      }
      await sleep(Math.max(0, period * 1000 - (Date.now() - t0)), true);
    }
  }

  private async probeOnce(run: Run, probe: Probe): Promise<{ ok: boolean; output: string }> {
    const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
    if (probe.exec) {
      const r = await this.execIn(run, probe.exec.command ?? [], { timeoutMs });
      return { ok: r.code === 0, output: r.timedOut ? `timed out after ${timeoutMs} ms` : `exit ${r.code}: ${r.stdout}${r.stderr}` };
    }
    if (probe.tcpSocket) return this.tcpCheck(probe.tcpSocket.host ?? this.pod.ip!, this.port(probe.tcpSocket.port), timeoutMs);
    if (probe.httpGet) {
      return this.httpCheck(probe.httpGet.scheme ?? 'HTTP', probe.httpGet.host ?? this.pod.ip!, this.port(probe.httpGet.port),
        probe.httpGet.path ?? '/', probe.httpGet.httpHeaders ?? [], timeoutMs);
    }
    return { ok: false, output: 'unsupported probe type (only exec, tcpSocket and httpGet are emulated)' };
  }

  private port(p: number | string): number {
    if (typeof p === 'number') return p;
    if (/^\d+$/.test(p)) return Number(p);
    const named = (this.spec.ports ?? []).find((x) => x.name === p);
    if (!named) throw new ConfigError(`${this.name}: no container port named ${p}`);
    return named.containerPort;
  }

  /** TCP check from the node (the switch namespace), like kubelet: connects to the pod IP. */
  private async tcpCheck(hostIp: string, port: number, timeoutMs: number): Promise<{ ok: boolean; output: string }> {
    const t = this.pod.host.tools;
    const secs = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    const r = await tryRun(t.ip, ['netns', 'exec', this.pod.host.network.switchNs, 'timeout', secs, 'bash', '-c',
      'exec 3<>"/dev/tcp/$0/$1"', hostIp, String(port)], timeoutMs + 2000);
    return { ok: r.code === 0, output: `tcp ${hostIp}:${port}: ${r.code === 0 ? 'open' : `failed ${r.stderr.trim()}`}` };
  }

  private async httpCheck(scheme: string, hostIp: string, port: number, urlPath: string,
    headers: ReadonlyArray<{ name: string; value: string }>, timeoutMs: number): Promise<{ ok: boolean; output: string }> {
    const t = this.pod.host.tools;
    const url = `${scheme.toLowerCase()}://${hostIp}:${port}${urlPath.startsWith('/') ? '' : '/'}${urlPath}`;
    const r = await tryRun(t.ip, ['netns', 'exec', this.pod.host.network.switchNs, 'curl', '-ks', '-o', '/dev/null', '-w', '%{http_code}',
      '-m', String(timeoutMs / 1000), ...headers.flatMap((h) => ['-H', `${h.name}: ${h.value}`]), url], timeoutMs + 2000);
    const code = Number(r.stdout.trim());
    return { ok: code >= 200 && code < 400, output: `GET ${url}: ${r.stdout.trim() || r.stderr.trim()}` };
  }

  /** Runs a lifecycle handler (exec, httpGet or sleep) with a time bound; true on success. */
  private async runHandler(run: Run, h: LifecycleHandler, timeoutMs: number, what: string): Promise<boolean> {
    if (h.exec) {
      const r = await this.execIn(run, h.exec.command ?? [], { timeoutMs });
      if (r.code !== 0) {
        this.pod.host.event(`${this.pod.name}/${this.name}: ${what} hook ${r.timedOut ? 'timed out' : `exited ${r.code}`}: ${(r.stdout + r.stderr).trim().slice(0, 300)}`);
      }
      return r.code === 0;
    }
    if (h.httpGet) {
      const r = await this.httpCheck(h.httpGet.scheme ?? 'HTTP', h.httpGet.host ?? this.pod.ip!, this.port(h.httpGet.port),
        h.httpGet.path ?? '/', h.httpGet.httpHeaders ?? [], timeoutMs);
      return r.ok;
    }
    if (h.sleep) {
      await sleep(Math.min(h.sleep.seconds * 1000, timeoutMs), true);
      return true;
    }
    return true;
  }

  private killRun(r: Run): void {
    if (r.nsPid) signal(r.nsPid, 'SIGKILL');
    if (r.proc.pid) signal(-r.proc.pid, 'SIGKILL');
  }

  private terminateRun(r: Run, graceMs: number, runPreStop: boolean): Promise<void> {
    if (!r.stopping) r.stopping = this.doTerminate(r, graceMs, runPreStop);
    return r.stopping;
  }

  private async doTerminate(r: Run, graceMs: number, runPreStop: boolean): Promise<void> {
    r.terminating = true;
    this.pod.changed();
    const deadline = Date.now() + graceMs;
    const preStop = this.spec.lifecycle?.preStop;
    let minAfterPreStop = 0;
    if (runPreStop && preStop && r.started && !r.exit && graceMs > 0) {
      this.pod.host.event(`${this.pod.name}/${this.name}: running preStop`);
      await Promise.race([this.runHandler(r, preStop, graceMs, 'preStop'), r.exited]);
      minAfterPreStop = 2000;
    }
    if (!r.exit) {
      if (r.nsPid) signal(r.nsPid, 'SIGTERM');
      else if (r.proc.pid) signal(-r.proc.pid, 'SIGKILL');
      const wait = Math.max(deadline - Date.now(), minAfterPreStop);
      await Promise.race([r.exited, sleep(wait, true)]);
    }
    if (!r.exit) {
      this.pod.host.event(`${this.pod.name}/${this.name}: grace period over, SIGKILL`);
      this.killRun(r);
      await Promise.race([r.exited, sleep(10_000, true)]);
    }
  }
}

/** A pod: its network namespace, volumes and containers. */
export class PodRuntime {
  public readonly name: string;
  public readonly namespace: string;
  public readonly owner: PodOwner;
  public readonly labels: StringMap;
  public readonly annotations: StringMap;
  public readonly spec: PodSpec;
  public readonly uid = crypto.randomUUID();
  public readonly createdAt = Date.now();
  public readonly dir: string;
  public readonly hostsFile: string;
  public readonly resolvFile: string;
  public resolvTarget?: string;
  public ip?: string;
  public netns?: string;
  public saDir?: string;
  public phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' = 'Pending';
  public terminating = false;
  public removed = false;
  public waitingReason?: string;
  public initDone = false;
  public readonly initContainers: ContainerRuntime[];
  public readonly containers: ContainerRuntime[];
  /** Resolves when a run-to-completion pod (Job) is done. */
  public readonly completion: Promise<{ succeeded: boolean; exitCode: number | null }>;
  private resolveCompletion!: (r: { succeeded: boolean; exitCode: number | null }) => void;
  private readonly volumeHashes = new Map<string, string>();
  private hostsContent = '';
  private terminated?: Promise<void>;

  constructor(public readonly host: PodHost, init: PodInit) {
    this.name = init.name;
    this.namespace = init.namespace;
    this.owner = init.owner;
    this.labels = init.labels;
    this.annotations = init.annotations;
    this.spec = init.spec;
    this.dir = path.join(host.root, 'pods', `${this.name}-${this.uid.slice(0, 8)}`);
    this.hostsFile = path.join(this.dir, 'hosts');
    this.resolvFile = path.join(this.dir, 'resolv.conf');
    fs.mkdirSync(this.dir, { recursive: true });
    this.initContainers = (this.spec.initContainers ?? []).map((c) => new ContainerRuntime(this, c, true));
    this.containers = this.spec.containers.map((c) => new ContainerRuntime(this, c, false));
    this.completion = new Promise((resolve) => {
      this.resolveCompletion = resolve;
    });
  }

  public get hostname(): string {
    return (this.spec.hostname ?? this.name).slice(0, 63);
  }

  public get ready(): boolean {
    return !this.terminating && this.phase === 'Running' && this.initDone
      && this.containers.every((c) => c.ready) && this.initContainers.every((c) => !c.sidecar || c.ready);
  }

  public get restartPolicy(): string {
    return this.spec.restartPolicy ?? 'Always';
  }

  public facts(): PodFacts {
    return {
      name: this.name,
      namespace: this.namespace,
      uid: this.uid,
      ip: this.ip ?? '',
      hostIP: this.host.network.gateway,
      nodeName: 'node-1',
      serviceAccountName: this.spec.serviceAccountName ?? this.spec.serviceAccount ?? 'default',
      labels: this.labels,
      annotations: this.annotations,
    };
  }

  public graceMs(): number {
    return (this.spec.terminationGracePeriodSeconds ?? 30) * 1000;
  }

  public volume(name: string): Volume | undefined {
    return (this.spec.volumes ?? []).find((v) => v.name === name);
  }

  public isProjected(v: Volume): boolean {
    return !!(v.configMap || v.secret || v.downwardAPI || v.projected);
  }

  /** Host directory of a volume of this pod. */
  public volumeDir(v: Volume): string {
    if (v.persistentVolumeClaim) return path.join(this.host.root, 'pvc', v.persistentVolumeClaim.claimName);
    return path.join(this.dir, 'volumes', v.name);
  }

  public container(name: string): ContainerRuntime {
    const c = [...this.containers, ...this.initContainers].find((x) => x.name === name);
    if (!c) throw new Error(`pod ${this.name} has no container ${name} (has ${this.containers.map((x) => x.name).join(', ')})`);
    return c;
  }

  public changed(): void {
    this.host.podChanged(this);
  }

  /** Rewrites the hosts file in place (same inode) when its content changed. */
  public writeHosts(content: string): void {
    if (content === this.hostsContent || this.removed) return;
    this.hostsContent = content;
    try {
      fs.writeFileSync(this.hostsFile, content);
    } catch {
      // pod directory removed meanwhile
    }
  }

  /** The pod's life: network, volumes, init containers, containers. Never throws. */
  public async start(): Promise<void> {
    try {
      await this.doStart();
    } catch (e) {
      if (!this.terminating) {
        this.host.event(`${this.name}: pod failed: ${errorMessage(e)}`);
        this.waitingReason = errorMessage(e);
        this.phase = 'Failed';
        this.resolveCompletion({ succeeded: false, exitCode: null });
      }
    }
  }

  public describe(): string {
    return [
      `pod ${this.name}: phase=${this.phase}${this.terminating ? ' (terminating)' : ''}, ready=${this.ready}, ip=${this.ip ?? '-'}`
      + `${this.waitingReason ? `, waiting: ${this.waitingReason}` : ''}`,
      ...this.initContainers.map((c) => c.describe()),
      ...this.containers.map((c) => c.describe()),
    ].join('\n');
  }

  /** Re-renders configMap/secret/downwardAPI/projected volumes (kubelet's periodic sync). */
  public refreshVolumes(): void {
    if (this.removed || this.terminating || this.phase === 'Pending') return;
    for (const v of this.spec.volumes ?? []) {
      if (!this.isProjected(v)) continue;
      try {
        this.writeVolume(v);
      } catch {
        // a missing source keeps the old content, as kubelet does
      }
    }
  }

  /** Terminates the pod: graceful (preStop, SIGTERM, SIGKILL after grace) or kill (SIGKILL now). */
  public terminate(graceMs: number, kill: boolean): Promise<void> {
    if (!this.terminated) {
      this.terminated = this.doTerminate(graceMs, kill);
    } else if (kill) {
      // A kill while a graceful deletion is in progress escalates it.
      [...this.initContainers, ...this.containers].forEach((c) => c.kill());
    }
    return this.terminated;
  }

  private async doTerminate(graceMs: number, kill: boolean): Promise<void> {
    this.terminating = true;
    this.changed();
    const all = [...this.initContainers, ...this.containers];
    if (kill) {
      all.forEach((c) => c.kill());
    } else {
      await Promise.all([
        ...this.initContainers.map((c) => c.stop(graceMs, c.sidecar)),
        ...this.containers.map((c) => c.stop(graceMs, true)),
      ]);
    }
    await Promise.all(all.map((c) => c.waitExited(10_000)));
    if (this.netns && this.ip) await this.host.network.removePod(this.netns, this.ip);
    this.removed = true;
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.resolveCompletion({ succeeded: false, exitCode: null });
  }

  private writeVolume(v: Volume): void {
    const ctx = { refs: this.host.refs, pod: this.facts(), containers: this.spec.containers, serviceAccount: this.host.serviceAccountFiles(this) };
    const payload = renderVolume(v, ctx) as VolumePayload;
    const dir = this.volumeDir(v);
    const fsGroup = this.spec.securityContext?.fsGroup;
    const hash = writeAtomic(dir, payload, fsGroup === undefined ? undefined : this.mapGid(fsGroup), this.volumeHashes.get(v.name));
    this.volumeHashes.set(v.name, hash);
  }

  private mapGid(g: number): number {
    return this.host.mapGid(g);
  }

  private async doStart(): Promise<void> {
    const host = this.host;
    const { netns, ip } = await host.network.addPod(`${this.name}-${this.uid.slice(0, 4)}`);
    this.netns = netns;
    this.ip = ip;
    if (this.terminating) return;
    fs.writeFileSync(this.hostsFile, '', { mode: 0o644 });
    this.hostsContent = '';
    this.writeHosts(host.hostsFor(this));
    try {
      this.resolvTarget = fs.realpathSync('/etc/resolv.conf');
      fs.writeFileSync(this.resolvFile, [
        '# fdb-e2e harness: no cluster DNS; names resolve through /etc/hosts',
        `search ${this.namespace}.svc.cluster.local svc.cluster.local cluster.local`,
        'nameserver 127.0.0.1',
        'options ndots:5 timeout:1 attempts:1',
        '',
      ].join('\n'), { mode: 0o644 });
    } catch {
      this.resolvTarget = undefined;
    }
    await this.setupVolumes();
    if (this.terminating) return;
    this.phase = 'Running';
    this.changed();
    for (const c of this.initContainers) {
      if (c.sidecar) {
        c.superviseAlways().catch((e) => host.event(`${this.name}/${c.name}: ${errorMessage(e)}`));
        while (!c.ready && !this.terminating) await sleep(100, true);
        continue;
      }
      let backoff = 1000;
      for (;;) {
        const exit = await c.runToCompletion();
        if (this.terminating) return;
        if (exit.code === 0) break;
        if (this.restartPolicy === 'Never') {
          this.phase = 'Failed';
          this.resolveCompletion({ succeeded: false, exitCode: exit.code });
          this.changed();
          return;
        }
        c.restarts += 1;
        c.waitingReason = 'Init:CrashLoopBackOff';
        host.event(`${this.name}/${c.name}: init container exited ${exit.code}, retry ${c.restarts} in ${backoff} ms`);
        await sleep(backoff, true);
        backoff = Math.min(backoff * 2, 8000);
      }
    }
    this.initDone = true;
    this.changed();
    if (this.restartPolicy === 'Always') {
      for (const c of this.containers) {
        c.superviseAlways().catch((e) => host.event(`${this.name}/${c.name}: supervisor error: ${errorMessage(e)}`));
      }
      return;
    }
    const exits = await Promise.all(this.containers.map((c) => c.runToCompletion()));
    if (this.terminating) return;
    const failed = exits.find((e) => e.code !== 0);
    this.phase = failed ? 'Failed' : 'Succeeded';
    this.changed();
    this.resolveCompletion({ succeeded: !failed, exitCode: failed ? failed.code : 0 });
  }

  /** Creates emptyDirs/PVCs and renders projected volumes; waits (like kubelet) for missing sources. */
  private async setupVolumes(): Promise<void> {
    const host = this.host;
    const psc = this.spec.securityContext ?? {};
    const firstUser = psc.runAsUser ?? [...(this.spec.initContainers ?? []), ...this.spec.containers]
      .map((c) => c.securityContext?.runAsUser).find((u) => u !== undefined) ?? 0;
    const uid = host.mapUid(firstUser);
    const group = psc.fsGroup ?? psc.runAsGroup;
    const gid = this.mapGid(group ?? firstUser);
    for (const v of this.spec.volumes ?? []) {
      if (v.hostPath) throw new ConfigError(`volume ${v.name}: hostPath volumes are not supported by the harness`);
      if (v.emptyDir) createWritableVolume(this.volumeDir(v), uid, gid, 0o777);
      if (v.persistentVolumeClaim) createWritableVolume(this.volumeDir(v), uid, gid, 0o755);
      if ((v.emptyDir || v.persistentVolumeClaim) && psc.fsGroup !== undefined && host.fsGroupOwnership) {
        applyFsGroup(this.volumeDir(v), this.mapGid(psc.fsGroup), psc.fsGroupChangePolicy);
      }
    }
    const sa = host.automountToken(this) ? host.serviceAccountFiles(this) : undefined;
    for (;;) {
      try {
        for (const v of this.spec.volumes ?? []) {
          if (this.isProjected(v)) this.writeVolume(v);
        }
        if (sa) {
          this.saDir = path.join(this.dir, 'sa');
          const fsGroup = psc.fsGroup === undefined ? undefined : this.mapGid(psc.fsGroup);
          writeAtomic(this.saDir, serviceAccountPayload(sa, this.namespace), fsGroup);
        }
        this.waitingReason = undefined;
        return;
      } catch (e) {
        if (!(e instanceof MissingRefError)) throw e;
        const reason = `ContainerCreating: ${e.message}`;
        if (this.waitingReason !== reason) host.event(`${this.name}: ${reason}`);
        this.waitingReason = reason;
        if (this.terminating || host.destroyed) return;
        await sleep(1000, true);
      }
    }
  }
}
