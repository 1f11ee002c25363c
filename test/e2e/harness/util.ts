import { execFile, execFileSync } from 'child_process';
import * as fs from 'fs';

/** Sleeps; `unref` lets background loops never keep the test process alive. */
export function sleep(ms: number, unref = false): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (unref) t.unref();
  });
}

/** Single-quotes a string for /bin/sh. */
export function sq(s: string): string {
  return `'${s.replace(/'/g, '\'\\\'\'')}'`;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a host command (as root, root namespaces) and throws with its stderr if it fails. */
export function run(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: hostEnv() }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

/** Like `run` but never throws. */
export function tryRun(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: hostEnv() }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export function runSync(cmd: string, args: readonly string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000, env: hostEnv() });
  } catch {
    // best effort
  }
}

/** The minimal environment for host tools (ip, openssl...): never the test runner's. */
export function hostEnv(): NodeJS.ProcessEnv {
  return { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends a signal to a pid or (negative) process group, ignoring ESRCH. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined/false. A check
 * that throws counts as "not yet" (the last error is reported on timeout).
 */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined | false | Promise<T | undefined | false>,
  describe?: () => string, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const err = lastError === undefined ? '' : `\nlast error: ${errorMessage(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${err}${describe ? `\n${describe()}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** Finds an executable in the host's standard PATH. */
export function which(bin: string): string | undefined {
  for (const dir of (hostEnv().PATH ?? '').split(':')) {
    const p = `${dir}/${bin}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** The last `n` lines of a text. */
export function tail(text: string, n: number): string {
  const lines = text.split('\n');
  return lines.slice(Math.max(0, lines.length - n)).join('\n');
}

export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An error meaning "a referenced ConfigMap/Secret/key does not exist yet": kubelet retries. */
export class MissingRefError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingRefError';
  }
}

/** A configuration kubelet refuses (CreateContainerConfigError) or the harness cannot run. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
