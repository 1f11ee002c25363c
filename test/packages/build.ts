import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

export const ROOT = path.join(__dirname, '..', '..');

/** Per-machine cache of the toolchains' downloads (virtualenvs, Go modules, Maven repository). */
export const CACHE = process.env.CDK8S_FERRETDB_CACHE ?? '/var/cache/cdk8s-ferretdb';

/** Everything jsii compiles and packages: a change to any of these rebuilds the packages. */
const SOURCES = ['src', 'assets', 'package.json', 'tsconfig.json', 'README.md'];

function filesUnder(p: string): string[] {
  if (!fs.statSync(p).isDirectory()) return [p];
  return fs.readdirSync(p).sort().flatMap((entry) => filesUnder(path.join(p, entry)));
}

/** A hash of the library's sources: names and contents. */
export function sourceHash(): string {
  const hash = createHash('sha256');
  for (const file of SOURCES.flatMap((s) => filesUnder(path.join(ROOT, s)))) {
    hash.update(path.relative(ROOT, file)).update('\0').update(fs.readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

/** Runs a command, failing with its output and the reason (a missing binary names itself). */
export function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  try {
    return execFileSync(cmd, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  } catch (e: any) {
    const why = e.code === 'ENOENT' ? `${cmd} is not installed (not on PATH)` : `exit ${e.status}`;
    throw new Error(`${cmd} ${args.join(' ')} failed: ${why}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

export interface PackageOptions {
  /** The environment of the packaging command. */
  readonly env?: NodeJS.ProcessEnv;
  /** `npx` arguments that package instead of `projen package:<target>` (same jsii-pacmak, more options). */
  readonly command?: string[];
}

/** Runs `build` unless the stamp file says it last ran on the current sources; then stamps them. */
function whenSourcesChanged(stamp: string, build: () => void): void {
  const hash = sourceHash();
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === hash) return;
  build();
  fs.mkdirSync(path.dirname(stamp), { recursive: true });
  fs.writeFileSync(stamp, hash);
}

/** The jsii assembly (.jsii) and lib/ compiled from the current sources (`projen compile`). */
export function compile(): void {
  const stamp = path.join(ROOT, 'dist', '.sources-jsii');
  if (!fs.existsSync(path.join(ROOT, '.jsii'))) fs.rmSync(stamp, { force: true });
  whenSourcesChanged(stamp, () => run('npx', ['projen', 'compile']));
}

/**
 * Builds dist/<target> from the current sources (`projen compile`, then `projen package:<target>`)
 * unless the last build of that target was made from the same sources (dist/.sources-<target>).
 */
export function buildPackage(target: 'python' | 'go' | 'java', options: PackageOptions = {}): string {
  const outdir = path.join(ROOT, 'dist', target);
  const stamp = path.join(ROOT, 'dist', `.sources-${target}`);
  if (!fs.existsSync(outdir)) fs.rmSync(stamp, { force: true });
  compile();
  whenSourcesChanged(stamp, () => run('npx', options.command ?? ['projen', `package:${target}`], { env: options.env }));
  return outdir;
}

/** A short key for a cache entry made from what it holds. */
export function cacheKey(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16);
}

/** The exact version of a dev dependency (the versions the package is built and tested against). */
export function pinnedVersion(name: string): string {
  const version: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).devDependencies[name];
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`devDependency ${name} is not pinned to an exact version: ${version}`);
  return version;
}
