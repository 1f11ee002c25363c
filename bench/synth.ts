/**
 * Section 1, synth scaling: N FerretDBClusters in one app synthesized to YAML, against the same
 * objects as plain cdk8s ApiObjects (synth-worker.ts). Each run is a fresh `node` process on
 * JavaScript compiled once up front, so neither ts-node nor the TypeScript compiler is in the
 * timings or the peak RSS.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { children, log, median, num, Options, range, ratio, row, Row, SectionResult } from './common';

const ROOT = path.resolve(__dirname, '..');

interface Measurement {
  readonly ms: number;
  readonly peakRssMB: number;
  readonly objects: number;
  readonly bytes: number;
}

type Mode = 'ours' | 'floor';

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(p);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code, sig) => {
      clearTimeout(timer);
      children.delete(p);
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`${path.basename(command)} ${args.join(' ')}: ${sig ?? `exit ${code}`}\n${Buffer.concat(err).toString('utf8')}`));
    });
  });
}

/** src/ and the worker compiled to CommonJS (no type check: `npx tsc -p bench/tsconfig.json` does that). */
async function compile(outDir: string): Promise<string> {
  const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
  await run(process.execPath, [tsc, '--ignoreConfig', '--noCheck', '--skipLibCheck', '--outDir', outDir, '--rootDir', ROOT,
    '--module', 'commonjs', '--target', 'ES2022', '--esModuleInterop', '--types', 'node', '--sourceMap', 'false',
    path.join(ROOT, 'bench', 'synth-worker.ts')], process.env, 300_000);
  // src/private/assets.ts reads ../../assets from where it lies.
  fs.cpSync(path.join(ROOT, 'assets'), path.join(outDir, 'assets'), { recursive: true });
  return path.join(outDir, 'bench', 'synth-worker.js');
}

export async function synthSection(opts: Options): Promise<SectionResult> {
  const sizes = opts.quick ? [1, 10, 100] : [1, 10, 100, 1000];
  const runsFor = (n: number): number => (opts.quick ? 1 : n <= 100 ? 5 : 3);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-bench-synth-'));
  try {
    log('synth: compiling src/ and bench/synth-worker.ts');
    const worker = await compile(dir);
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_PATH: path.join(ROOT, 'node_modules') };
    const once = async (mode: Mode, n: number): Promise<Measurement> => {
      const out = await run(process.execPath, [worker, mode, String(n)], env, 900_000);
      return JSON.parse(out.trim().split('\n').pop() ?? '') as Measurement;
    };
    log('synth: warm-up (one run of each at N=10, discarded)');
    await once('ours', 10);
    await once('floor', 10);
    const results: Record<string, { n: number; runs: number; ours: Measurement[]; floor: Measurement[] }> = {};
    for (const n of sizes) {
      const r = { n, runs: runsFor(n), ours: [] as Measurement[], floor: [] as Measurement[] };
      for (let i = 0; i < r.runs; i++) {
        // Interleaved, so that a slow moment of the machine hits both sides.
        r.ours.push(await once('ours', n));
        r.floor.push(await once('floor', n));
        log(`synth: N=${n} run ${i + 1}/${r.runs}: ours ${num(r.ours[i].ms)} ms, floor ${num(r.floor[i].ms)} ms`);
      }
      results[n] = r;
    }

    const rows: Row[] = [];
    const med = (ms: Measurement[], key: keyof Measurement): number => median(ms.map((m) => m[key]));
    for (const n of sizes) {
      const r = results[n];
      const same = r.ours.every((m) => m.objects === r.floor[0].objects && m.bytes === r.floor[0].bytes);
      const spread = (ms: Measurement[]): string => range(ms.map((m) => m.ms));
      const [ms, floorMs] = [med(r.ours, 'ms'), med(r.floor, 'ms')];
      const [rss, floorRss] = [med(r.ours, 'peakRssMB'), med(r.floor, 'peakRssMB')];
      rows.push(row('synth', `N=${n}: wall ms`, num(ms), num(floorMs), ratio(ms, floorMs),
        r.runs > 1 ? `median of ${r.runs}; range ours ${spread(r.ours)}, floor ${spread(r.floor)}` : '1 run'));
      rows.push(row('synth', `N=${n}: peak RSS MB`, num(rss), num(floorRss), ratio(rss, floorRss), 'whole node process, median'));
      rows.push(row('synth', `N=${n}: objects / MB of YAML`, `${r.ours[0].objects} / ${num(r.ours[0].bytes / 1e6)}`,
        `${r.floor[0].objects} / ${num(r.floor[0].bytes / 1e6)}`, ratio(r.ours[0].bytes, r.floor[0].bytes),
        same ? 'same object count and byte count' : 'OUTPUT DIFFERS from the floor'));
    }
    const [a, b] = sizes.slice(-2);
    for (const key of ['ms', 'peakRssMB'] as const) {
      const g = (mode: Mode): number => med(results[b][mode], key) / med(results[a][mode], key);
      rows.push(row('synth', `growth N=${a} -> ${b}: ${key === 'ms' ? 'wall' : 'peak RSS'}`,
        `${num(g('ours'))}x`, `${num(g('floor'))}x`, ratio(g('ours'), g('floor')),
        key === 'ms' ? `linear = ${b / a}x` : 'includes the node baseline (~70 MB at N=1)'));
    }
    return {
      section: 'synth',
      floor: 'the same objects (byte-identical YAML) as plain cdk8s ApiObjects in one Chart, synthesized with App.synthYaml() in a fresh process',
      rows,
      data: { warmUp: 'one ours and one floor run at N=10, discarded', results },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
