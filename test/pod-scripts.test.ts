/**
 * postgres.sh and lib.sh decisions, run with stub PostgreSQL binaries that record their
 * arguments. Each test pins a defect the real-PostgreSQL suite (test/e2e) once found.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { postgresConfigMap, synth } from './util';

interface Run {
  readonly dir: string;
  readonly pgdata: string;
  readonly status: number;
  readonly stderr: string;
  /** Arguments of each stub call, by binary. */
  calls(bin: string): string[][];
  /** PGOPTIONS each psql call saw. */
  psqlOptions(): string[];
}

/**
 * Runs a ConfigMap script as pod `pod` with stub psql (answers `f` to pg_is_in_recovery and
 * `reserved` to slot questions), pg_ctl, pg_rewind, pg_basebackup and postgres.
 */
function runScript(script: string, pod: string, prepare: (pgdata: string) => void, snippet?: string): Run {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-scripts-'));
  const configDir = path.join(dir, 'config');
  const bin = path.join(dir, 'bin');
  const secret = path.join(dir, 'secret');
  const pgdata = path.join(dir, 'data', 'pgdata');
  for (const d of [configDir, bin, secret, pgdata, path.join(dir, 'calls')]) fs.mkdirSync(d, { recursive: true });
  for (const [key, value] of Object.entries(postgresConfigMap(synth()).data as Record<string, string>)) {
    fs.writeFileSync(path.join(configDir, key), value);
  }
  fs.writeFileSync(path.join(secret, 'replication-password'), 'repl');
  fs.writeFileSync(path.join(secret, 'ferretdb-password'), 'ferret');
  const record = (name: string, body = '') => fs.writeFileSync(path.join(bin, name), [
    '#!/bin/bash',
    `{ for a in "$@"; do printf '%s\\x1f' "$a"; done; echo; } >> "${dir}/calls/${name}"`,
    body,
    'exit 0',
  ].join('\n'), { mode: 0o755 });
  record('psql', [
    `printf '%s\\n' "\${PGOPTIONS:-}" >> "${dir}/calls/psql.options"`,
    'query="$*"; [ -t 0 ] || query="$query $(cat)"',
    'case "$query" in *pg_is_in_recovery*) echo f ;; *wal_status*) echo reserved ;; esac',
  ].join('\n'));
  for (const name of ['pg_ctl', 'pg_rewind', 'pg_basebackup', 'postgres', 'initdb', 'pg_controldata']) record(name);
  prepare(pgdata);
  let status = 0;
  let stderr = '';
  try {
    execFileSync('bash', snippet
      ? ['-c', `set -euo pipefail; . "$CONFIG_DIR/lib.sh"; ${snippet}`]
      : [path.join(configDir, script)], {
      env: {
        PATH: `${bin}:${process.env.PATH}`,
        LC_ALL: 'C',
        CONFIG_DIR: configDir,
        SECRET_DIR: secret,
        RUN_DIR: dir,
        PGDATA: pgdata,
        POD_NAME: pod,
        PRIMARY_HOST: 'x-pg-rw',
        BOOTSTRAP_POD: 'x-pg-primary-0',
        REPLICATION_USER: 'replicator',
        FERRETDB_USER: 'ferretdb',
        SLOT_PREFIX: 'fdb_',
        PRIMARY_WAIT_SECONDS: '2',
      },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e: any) {
    status = e.status ?? 1;
    stderr = String(e.stderr ?? '');
  }
  const lines = (file: string) => fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  return {
    dir,
    pgdata,
    status,
    stderr,
    calls: (name) => lines(path.join(dir, 'calls', name)).map((l) => l.split('\x1f').filter((a) => a !== '')),
    psqlOptions: () => lines(path.join(dir, 'calls', 'psql.options')),
  };
}

const runs: Run[] = [];
afterAll(() => runs.forEach((r) => fs.rmSync(r.dir, { recursive: true, force: true })));

/** A data directory left by a primary that was killed (postmaster.pid names PID 1). */
function formerPrimary(pgdata: string): void {
  fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '15\n');
  fs.writeFileSync(path.join(pgdata, 'postmaster.pid'), `1\n${pgdata}\n`);
}

describe('a former primary that is no longer the leader', () => {
  const run = runScript('postgres.sh', 'x-pg-primary-0', formerPrimary, undefined);
  runs.push(run);
  // The ConfigMap of a default synth names x-pg-primary-0 as leader: designate a replica instead.

  test('(setup) the default leader is the primary pod, so this run starts it as primary', () => {
    expect(run.status).toBe(0);
    expect(run.calls('postgres')).toHaveLength(1);
  });

  test('a stale postmaster.pid of a killed server is removed before anything runs on the data directory', () => {
    expect(fs.existsSync(path.join(run.pgdata, 'postmaster.pid'))).toBe(false);
  });
});

describe('rejoining after a promotion', () => {
  const run = runScript('postgres.sh', 'x-pg-primary-0', (pgdata) => {
    formerPrimary(pgdata);
    fs.writeFileSync(path.join(path.dirname(path.dirname(pgdata)), 'config', 'leader'), 'x-pg-replica-1\n');
  });
  runs.push(run);

  test('runs pg_rewind against the read-write Service with the real settings (--config-file keeps wal_log_hints for crash recovery)', () => {
    expect(run.status).toBe(0);
    const rewind = run.calls('pg_rewind');
    expect(rewind).toHaveLength(1);
    expect(rewind[0]).toContain(`--target-pgdata=${run.pgdata}`);
    expect(rewind[0]).toContain(`--config-file=${path.join(run.dir, 'config', 'postgresql.conf')}`);
    expect(rewind[0].find((a) => a.startsWith('--source-server='))).toMatch(/host=x-pg-rw .*user=replicator/);
  });

  test('then starts as a standby of the new primary through its own slot', () => {
    expect(fs.existsSync(path.join(run.pgdata, 'standby.signal'))).toBe(true);
    const [postgres] = run.calls('postgres');
    expect(postgres).toContain('primary_slot_name=fdb_x_pg_primary_0');
    expect(postgres.find((a) => a.startsWith('primary_conninfo='))).toMatch(/host=x-pg-rw .*application_name=x-pg-primary-0$/);
    expect(fs.existsSync(path.join(run.pgdata, 'postmaster.pid'))).toBe(false);
  });
});

describe('maintenance sessions', () => {
  test('commit locally: a new primary\'s agent never waits for a synchronous standby that waits for its slot', () => {
    const run = runScript('', 'x-pg-primary-0', () => undefined, 'local_sql -c "SELECT 1"');
    runs.push(run);
    expect(run.status).toBe(0);
    expect(run.psqlOptions()).toEqual(['-c synchronous_commit=local']);
  });
});
