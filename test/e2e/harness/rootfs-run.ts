import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import { rootfsCommand, rootfsExecCommand, RootfsSpec } from './rootfs';
import { signal } from './util';

/** Runs the command lines of `rootfs.ts`: one-shot containers, servers, and exec into them. */

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

/** Runs `argv` in a new container until it exits; never throws for a failing command. */
export function runInRootfs(spec: RootfsSpec, argv: readonly string[], opts: RootfsRunOptions = {}): Promise<RootfsResult> {
  return runToEnd(rootfsCommand(spec, argv), opts);
}

/**
 * Runs `argv` in the running container `c` (started with `spawnInRootfs` from the same spec,
 * past its setup: see `RootfsSpec.startedFile`), as its user; never throws for a failing command.
 */
export function execInRootfs(spec: RootfsSpec, c: RootfsProcess, argv: readonly string[], opts: RootfsRunOptions = {}): Promise<RootfsResult> {
  const pid1 = c.pid1();
  if (pid1 === undefined) return Promise.resolve({ code: 1, stdout: '', stderr: 'rootfs: container not running', timedOut: false });
  return runToEnd(rootfsExecCommand(spec, pid1, argv), opts);
}

function runToEnd(command: readonly string[], opts: RootfsRunOptions): Promise<RootfsResult> {
  const [cmd, ...args] = command;
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
  /** The container's pid 1 (in the host's PID namespace), once unshare has forked it. */
  pid1(): number | undefined;
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
  return { proc, exited, stop, pid1: () => (proc.pid ? pid1Of(proc.pid) : undefined) };
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
