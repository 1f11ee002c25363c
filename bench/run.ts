/**
 * `npm run bench [-- --only synth|bootstrap|lag|catchup|costs|mongodb|failover] [--quick]`
 *
 * Prints one table (each measure beside its floor and the ratio) and writes it, with every raw
 * measurement, to bench/results/<timestamp>.json. Not part of the test suite: no thresholds.
 * Sections 2-6 run real PostgreSQL 15 through the e2e harness: root, postgresql-15 and
 * postgresql-15-cron are needed (see BENCHMARKS.md); section 6 (mongodb) also runs the real
 * FerretDB (built once per machine by test/e2e/ferretdb/build.sh, which needs Go); section 7
 * (failover) runs with every probe at its synthesized period.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { bootstrapSection } from './bootstrap';
import { catchupSection } from './catchup';
import { children, log, Options, renderTable, SectionName, SectionResult, SECTIONS } from './common';
import { costsSection } from './costs';
import { failoverSection } from './failover';
import { lagSection } from './lag';
import { mongodbSection } from './mongodb';
import { destroyAll } from './pg';
import { synthSection } from './synth';

const RUNNERS: Record<SectionName, (opts: Options) => Promise<SectionResult>> = {
  synth: synthSection,
  bootstrap: bootstrapSection,
  lag: lagSection,
  catchup: catchupSection,
  costs: costsSection,
  mongodb: mongodbSection,
  failover: failoverSection,
};

const USAGE = `usage: npm run bench -- [--only ${SECTIONS.join('|')}[,...]] [--quick]
  --only   run these sections (repeatable or comma-separated); default: all seven
  --quick  smaller sizes and single runs (a smoke run, not a measurement)`;

function parseArgs(argv: string[]): Options {
  let quick = false;
  const only: SectionName[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') {
      quick = true;
    } else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      for (const name of (value ?? '').split(',')) {
        if (!(SECTIONS as readonly string[]).includes(name)) throw new Error(`unknown section "${name}"\n${USAGE}`);
        if (!only.includes(name as SectionName)) only.push(name as SectionName);
      }
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else {
      throw new Error(`unknown argument "${arg}"\n${USAGE}`);
    }
  }
  return { quick, only: only.length > 0 ? SECTIONS.filter((s) => only.includes(s)) : [...SECTIONS] };
}

function command(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8' }).trim();
  } catch {
    return 'n/a';
  }
}

function machine(): Record<string, string> {
  const free = command('free', ['-h']).split('\n').find((l) => l.startsWith('Mem:'))?.split(/\s+/)[1] ?? 'n/a';
  return {
    date: new Date().toISOString(),
    nproc: command('nproc', []),
    memory: free,
    cpu: os.cpus()[0]?.model ?? 'n/a',
    kernel: os.release(),
    postgres: command('/usr/lib/postgresql/15/bin/postgres', ['--version']),
    pgCron: fs.existsSync('/usr/lib/postgresql/15/lib/pg_cron.so') ? 'installed' : 'missing',
    node: process.version,
  };
}

let stopping = false;

/** SIGINT/SIGTERM: stop the synth workers, destroy every running cluster, then exit. */
function onSignal(sig: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  log(`${sig}: stopping the workers and destroying the clusters`);
  for (const c of children) c.kill('SIGKILL');
  void destroyAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The harness's timers are unref'd (jest keeps its process alive): this one keeps ours alive.
  const keepAlive = setInterval(() => undefined, 60_000);
  const info = machine();
  const started = Date.now();
  log(`sections: ${opts.only.join(', ')}${opts.quick ? ' (quick)' : ''}; ${info.nproc} CPUs, ${info.memory} RAM, ${info.postgres}, node ${info.node}`);
  const results: SectionResult[] = [];
  const failures: Array<{ section: SectionName; error: string }> = [];
  for (const name of opts.only) {
    const t0 = Date.now();
    log(`${name}: start`);
    try {
      const r = await RUNNERS[name](opts);
      r.seconds = (Date.now() - t0) / 1000;
      results.push(r);
      log(`${name}: done in ${r.seconds.toFixed(0)} s`);
    } catch (e) {
      if (stopping) return;
      failures.push({ section: name, error: (e as Error).stack ?? String(e) });
      log(`${name}: FAILED (the other sections still run): ${(e as Error).stack ?? String(e)}`);
    }
  }
  const totalSeconds = (Date.now() - started) / 1000;
  const rows = results.flatMap((r) => r.rows);
  const lines = [
    `cdk8s-ferretdb benchmarks${opts.quick ? ' (--quick: smoke sizes, not a measurement)' : ''}`,
    `${info.date}; ${info.nproc} CPUs (${info.cpu}), ${info.memory} RAM; ${info.postgres}; node ${info.node}`,
    '',
    renderTable(rows),
    '',
    'floors:',
    ...results.map((r) => `  ${r.section}: ${r.floor}`),
    '',
    ...failures.map((f) => `FAILED: ${f.section}: ${f.error.split('\n')[0]}`),
    `sections took ${results.map((r) => `${r.section} ${r.seconds?.toFixed(0)} s`).join(', ')}; total ${totalSeconds.toFixed(0)} s`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${info.date.replace(/[:.]/g, '-')}.json`);
  const json = { options: opts, machine: info, totalSeconds, complete: failures.length === 0, failures, table: rows, sections: results };
  fs.writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  log(`wrote ${path.relative(process.cwd(), file)}`);
  clearInterval(keepAlive);
  if (failures.length > 0) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exitCode = 1;
});
