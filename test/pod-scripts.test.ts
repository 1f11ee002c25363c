/**
 * postgres.sh (with datadir.sh and lib.sh), lifecycle.sh and agent.sh decisions, run with stub
 * PostgreSQL binaries that record their arguments. Each test pins a defect the real-PostgreSQL
 * suite (test/e2e) once found, or a promise of issue 7 (day-two safety).
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { find, postgresConfigMap, synth } from './util';

/** Where a run keeps its files. */
interface Paths {
  readonly dir: string;
  readonly configDir: string;
  readonly secretDir: string;
  readonly runDir: string;
  readonly pgdata: string;
  readonly bin: string;
}

interface Run extends Paths {
  readonly status: number | null;
  readonly stderr: string;
  /** Arguments of each stub call, by binary (`postgres`: server starts only, not `postgres -C`). */
  calls(bin: string): string[][];
  /** Every stub call in order, as `<binary> <arguments>`. */
  sequence(): string[];
  /** The stdin of each psql call. */
  psqlStdin(): string[];
  /** PGOPTIONS each psql call saw. */
  psqlOptions(): string[];
  /** A file of the run, or undefined when it does not exist. */
  read(file: string): string | undefined;
}

interface ScriptOptions {
  /** POD_NAME. */
  readonly pod: string;
  /** Arguments of the script. */
  readonly args?: string[];
  /** Writes files before the run (data directory, run directory, ConfigMap keys, stub answers). */
  readonly prepare?: (p: Paths) => void;
  /**
   * Bash the stub psql runs before its default answers; `$query` holds its arguments and stdin,
   * `$host` the host of its conninfo (empty for the local socket).
   */
  readonly psql?: string;
  /** Bash each stub binary runs after recording its call (`postgres`: for server starts only). */
  readonly stubs?: { [bin: string]: string };
  readonly env?: { [name: string]: string };
  /** Run this bash (after sourcing lib.sh) instead of the script. */
  readonly snippet?: string;
  readonly timeoutMs?: number;
}

const OBJS = synth();
const CONFIG_MAP = postgresConfigMap(OBJS);
/** Values of the postgres container's environment in the primary StatefulSet (what the scripts get in a pod). */
const MANIFEST_ENV: { [name: string]: string } = Object.fromEntries(
  find(OBJS, 'StatefulSet', 'x-pg-primary').spec.template.spec.containers.find((c: any) => c.name === 'postgres').env
    .filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value]));

/** pg_controldata of a data directory whose limits equal the ConfigMap's settings. */
const CONTROLDATA = [
  'pg_control version number:            1300',
  'Database system identifier:           7301234567890123456',
  'Latest checkpoint\'s TimeLineID:       2',
  'max_connections setting:              90',
  'max_worker_processes setting:         8',
  'max_wal_senders setting:              16',
  'max_prepared_xacts setting:           0',
  'max_locks_per_xact setting:           64',
  '',
].join('\n');

/** A stub server: runs until SIGINT (fast shutdown) and records the signal and when it came. */
const STUB_SERVER = [
  'use Time::HiRes qw(time);',
  'sub record {',
  '  open(my $f, ">>", "$ENV{STUB_DIR}/calls/signals") or die; printf $f "%s %.3f\\n", $_[0], time; close $f;',
  '  open(my $s, ">>", "$ENV{STUB_DIR}/calls/sequence") or die; print $s "signal $_[0]\\n"; close $s;',
  '  exit 0;',
  '}',
  '$SIG{INT} = sub { record("INT") };',
  '$SIG{TERM} = sub { record("TERM") };',
  // STUB_THEN (shell) runs only once the handlers are in place: a signal that what it changes
  // provokes, sent before perl had started, would kill it unrecorded.
  'if (my $then = $ENV{STUB_THEN}) { system("/bin/sh", "-c", $then) == 0 or die "STUB_THEN failed"; }',
  'sleep 20;',
  'exit 3;',
  '',
].join('\n');

/**
 * A postgres stub whose first server start runs `then` (shell) once the stub server's signal
 * handlers are in place, and then runs until a signal; later starts exit at once.
 */
function firstStartThen(then: string): string {
  return [
    'if [ "$(wc -l < "$STUB_DIR/calls/postgres")" = 1 ]; then',
    `  STUB_THEN='${then.replace(/'/g, "'\\''")}' exec perl "$STUB_DIR/bin/stub-server.pl"`,
    'fi',
  ].join('\n');
}

const runs: Paths[] = [];
afterAll(() => runs.forEach((r) => fs.rmSync(r.dir, { recursive: true, force: true })));

/**
 * Runs a ConfigMap script with stub psql (writable through the read-write Service, standbys at
 * member addresses, `reserved` slots), pg_ctl, pg_rewind, pg_basebackup, initdb, pg_controldata,
 * pg_isready and postgres (a server start exits at once, so supervise reports it and exits 1).
 */
function runScript(script: string, o: ScriptOptions): Run {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-scripts-'));
  const p: Paths = {
    dir,
    configDir: path.join(dir, 'config'),
    secretDir: path.join(dir, 'secret'),
    runDir: path.join(dir, 'run'),
    pgdata: path.join(dir, 'data', 'pgdata'),
    bin: path.join(dir, 'bin'),
  };
  runs.push(p);
  for (const d of [p.configDir, p.bin, p.secretDir, p.runDir, p.pgdata, path.join(dir, 'calls')]) fs.mkdirSync(d, { recursive: true });
  for (const [key, value] of Object.entries(CONFIG_MAP.data as Record<string, string>)) {
    fs.writeFileSync(path.join(p.configDir, key), value);
  }
  fs.writeFileSync(path.join(p.secretDir, 'replication-password'), 'repl');
  fs.writeFileSync(path.join(p.secretDir, 'ferretdb-password'), 'ferret');
  fs.writeFileSync(path.join(dir, 'controldata'), CONTROLDATA);
  fs.writeFileSync(path.join(p.bin, 'stub-server.pl'), STUB_SERVER);
  const stub = (name: string, body: string, recordAs = name) => fs.writeFileSync(path.join(p.bin, name), [
    '#!/bin/bash',
    `{ for a in "$@"; do printf '%s\\x1f' "$a"; done; echo; } >> "$STUB_DIR/calls/${recordAs}"`,
    `echo "${recordAs} $*" >> "$STUB_DIR/calls/sequence"`,
    `[ -f "$RUN_DIR/preparing" ] && echo "${recordAs}" >> "$STUB_DIR/calls/preparing"`,
    body,
    'exit 0',
  ].join('\n'), { mode: 0o755 });
  stub('psql', [
    'printf \'%s\\n\' "${PGOPTIONS:-}" >> "$STUB_DIR/calls/psql.options"',
    // Like psql: stdin is the script only without -c and -f, or with -f -.
    'stdin=""; case " $* " in *" -f - "*) stdin=$(cat) ;; *" -c "*|*" -f "*) ;; *) [ -t 0 ] || stdin=$(cat) ;; esac',
    'printf \'%s\\x1e\' "$stdin" >> "$STUB_DIR/calls/psql.stdin"',
    'query="$* $stdin"',
    'host=$(printf \'%s\\n\' "$*" | sed -n \'s/.*host=\\([^ ]*\\).*/\\1/p\')',
    o.psql ?? '',
    'case "$query" in',
    '  *pg_reload_conf*) echo t ;;',
    '  *pending_restart*) cat "$STUB_DIR/pending" 2>/dev/null ;;',
    '  *default_version*) cat "$STUB_DIR/documentdb-version" 2>/dev/null || echo 0.107-0 ;;',
    // A member asked at its own address is a standby; the read-write Service is the primary.
    '  *pg_is_in_recovery*) case "$host" in *.*) echo t ;; *) echo "${STUB_IN_RECOVERY:-f}" ;; esac ;;',
    '  *wal_status*) echo reserved ;;',
    // The primary runs this data's database, on its timeline (CONTROLDATA).
    '  *IDENTIFY_SYSTEM*) echo "7301234567890123456|2|0/3000000|" ;;',
    'esac',
  ].join('\n'));
  // postgres -C <name> prints the configured value (postgresql.conf, else PostgreSQL's default).
  fs.writeFileSync(path.join(p.bin, 'postgres'), [
    '#!/bin/bash',
    'if [ "${*: -2:1}" = -C ]; then',
    '  name=${*: -1}',
    '  value=$(sed -n "s/^$name = \'\\(.*\\)\'$/\\1/p" "$CONFIG_DIR/postgresql.conf")',
    '  case "$name" in max_worker_processes) d=8 ;; max_prepared_transactions) d=0 ;; max_locks_per_transaction) d=64 ;; *) d= ;; esac',
    '  echo "${value:-$d}"',
    '  exit 0',
    'fi',
    'exec "$STUB_DIR/bin/postgres-server" "$@"',
  ].join('\n'), { mode: 0o755 });
  // Server starts are recorded as `postgres`.
  stub('postgres-server', o.stubs?.postgres ?? '', 'postgres');
  stub('pg_controldata', 'cat "$STUB_DIR/controldata"');
  // pg_basebackup -D <dir>: a complete clone.
  stub('pg_basebackup', [
    'while [ $# -gt 0 ]; do [ "$1" = -D ] && { mkdir -p "$2"; echo 15 > "$2/PG_VERSION"; }; shift; done',
    o.stubs?.pg_basebackup ?? '',
  ].join('\n'));
  stub('pg_isready', o.stubs?.pg_isready ?? '');
  for (const name of ['pg_ctl', 'pg_rewind', 'initdb']) stub(name, o.stubs?.[name] ?? '');
  // A clock that stands still (fencing.sh reads /proc/uptime), and the lease sidecar's renewal
  // at that time: the pod holds the cluster's Lease unless a test says otherwise.
  fs.writeFileSync(path.join(dir, 'uptime'), '1000.00 10.00\n');
  fs.writeFileSync(path.join(p.runDir, 'lease-renewed'), '1000000\n');
  o.prepare?.(p);

  const out = path.join(dir, 'stdout');
  const err = path.join(dir, 'stderr');
  const outFd = fs.openSync(out, 'w');
  const errFd = fs.openSync(err, 'w');
  let status: number | null;
  try {
    const r = spawnSync('bash', o.snippet
      ? ['-c', `set -euo pipefail; . "$CONFIG_DIR/lib.sh"; ${o.snippet}`]
      : [path.join(p.configDir, script), ...o.args ?? []], {
      env: {
        ...MANIFEST_ENV,
        PATH: `${p.bin}:${process.env.PATH}`,
        LC_ALL: 'C',
        STUB_DIR: dir,
        CONFIG_DIR: p.configDir,
        SECRET_DIR: p.secretDir,
        RUN_DIR: p.runDir,
        // One directory here; two emptyDirs in the pods (the state sidecar never sees the socket).
        STATE_DIR: p.runDir,
        // The pods' /tmp emptyDir (the metrics sidecar does not mount it); never the host's /tmp.
        PGPASSFILE: path.join(p.runDir, '.pgpass'),
        PGHOST: p.runDir,
        PGDATA: p.pgdata,
        POD_NAME: o.pod,
        PRIMARY_WAIT_SECONDS: '2',
        STATE_WAIT_SECONDS: '2',
        PROMOTE_WAIT_SECONDS: '10',
        LEADER_POLL_SECONDS: '0.2',
        UPTIME_FILE: path.join(dir, 'uptime'),
        LEASE_WAIT_SECONDS: '3',
        ...o.env,
      },
      // Files, not pipes: a background `sleep` the script leaves behind must not hold the run open.
      stdio: ['ignore', outFd, errFd],
      timeout: o.timeoutMs ?? 30_000,
      killSignal: 'SIGTERM',
    });
    status = r.status;
  } finally {
    fs.closeSync(outFd);
    fs.closeSync(errFd);
  }
  const read = (file: string) => fs.existsSync(path.join(dir, file)) ? fs.readFileSync(path.join(dir, file), 'utf8') : undefined;
  const lines = (file: string) => (read(file) ?? '').split('\n').filter(Boolean);
  return {
    ...p,
    status,
    stderr: read('stderr') ?? '',
    calls: (name) => lines(path.join('calls', name)).map((l) => l.split('\x1f').filter((a) => a !== '')),
    sequence: () => lines(path.join('calls', 'sequence')),
    psqlStdin: () => (read(path.join('calls', 'psql.stdin')) ?? '').split('\x1e').slice(0, -1),
    psqlOptions: () => lines(path.join('calls', 'psql.options')),
    read,
  };
}

/** A data directory of a server that was killed: its postmaster.pid names `pid`. */
function killedServerData(pgdata: string, pid: number): void {
  fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '15\n');
  fs.writeFileSync(path.join(pgdata, 'postmaster.pid'), `${pid}\n${pgdata}\n`);
}

function standbyData(pgdata: string): void {
  fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '15\n');
  fs.writeFileSync(path.join(pgdata, 'standby.signal'), '');
}

function setLeader(p: Paths, pod: string): void {
  fs.writeFileSync(path.join(p.configDir, 'leader'), `${pod}\n`);
}

/** A fresh answer of the state sidecar. */
function clusterState(p: Paths, state: string, ageSeconds = 0): void {
  const file = path.join(p.runDir, 'cluster-state');
  fs.writeFileSync(file, `${state}\n`);
  const when = Date.now() / 1000 - ageSeconds;
  fs.utimesSync(file, when, when);
}

/** The value after `-c` arguments of a server start, by setting name. */
function serverSettings(argv: string[]): { [name: string]: string } {
  const out: { [name: string]: string } = {};
  argv.forEach((a, i) => {
    if (a === '-c' && argv[i + 1]) {
      const [name, ...value] = argv[i + 1].split('=');
      out[name] = value.join('=');
    }
  });
  return out;
}

/** Runs `fn` once, on first use, so that each describe's run happens in its tests' time. */
function lazy<T>(fn: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= fn());
}

const SLOW = 30_000;

describe('postgres.sh: a stale postmaster.pid', () => {
  test('one naming a process that is not a live postgres (PID 1 here, a `sleep`) is removed before anything runs on the data directory', () => {
    const sleeper = spawn('sleep', ['30']);
    try {
      for (const pid of [1, sleeper.pid!]) {
        const run = runScript('postgres.sh', { pod: 'x-pg-primary-0', prepare: (p) => killedServerData(p.pgdata, pid) });
        expect(run.stderr).toContain('removing the stale postmaster.pid');
        expect(fs.existsSync(path.join(run.pgdata, 'postmaster.pid'))).toBe(false);
        expect(run.calls('postgres')).toHaveLength(1);
      }
    } finally {
      sleeper.kill();
    }
  }, SLOW);

  test('one naming a live postgres process is kept, and postgres.sh stops before touching the data directory', () => {
    const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-live-server-'));
    let server: ChildProcess | undefined;
    try {
      // /proc/<pid>/comm of a process is the name it was executed as.
      fs.symlinkSync(spawnSync('which', ['sleep'], { encoding: 'utf8' }).stdout.trim(), path.join(fake, 'postgres'));
      server = spawn(path.join(fake, 'postgres'), ['30']);
      expect(fs.readFileSync(`/proc/${server.pid}/comm`, 'utf8').trim()).toBe('postgres');
      const run = runScript('postgres.sh', { pod: 'x-pg-primary-0', prepare: (p) => killedServerData(p.pgdata, server!.pid!) });
      expect(run.status).not.toBe(0);
      expect(run.stderr).toContain(`FATAL: a server of this container (pid ${server.pid}) still holds`);
      expect(fs.existsSync(path.join(run.pgdata, 'postmaster.pid'))).toBe(true);
      expect(run.sequence().filter((c) => !c.startsWith('psql'))).toEqual([]);
    } finally {
      server?.kill();
      fs.rmSync(fake, { recursive: true, force: true });
    }
  }, SLOW);
});

describe('postgres.sh: the leader with data starts as primary under supervision', () => {
  const run = lazy(() => runScript('postgres.sh', {
    pod: 'x-pg-primary-0',
    prepare: (p) => killedServerData(p.pgdata, 1),
    stubs: { postgres: 'exit 3' },
  }));

  test('(setup) the default leader key names the primary pod: one server start, with the ConfigMap\'s postgresql.conf and no primary_conninfo', () => {
    const starts = run().calls('postgres');
    expect(starts).toHaveLength(1);
    expect(starts[0]).toEqual(['-D', run().pgdata, '-c', `config_file=${path.join(run().configDir, 'postgresql.conf')}`]);
    expect(run().calls('pg_rewind')).toEqual([]);
    expect(run().calls('initdb')).toEqual([]);
  }, SLOW);

  test('the server runs as a child of postgres.sh: when it exits, postgres.sh exits non-zero saying so with its status', () => {
    expect(run().status).toBe(1);
    expect(run().stderr).toContain('FATAL: the server exited (status 3)');
  });

  test('$STATE_DIR/system-identifier holds pg_controldata\'s "Database system identifier" (for the state sidecar)', () => {
    expect(run().read('run/system-identifier')).toBe('7301234567890123456\n');
  });

  test('$RUN_DIR/preparing is removed once the server has started', () => {
    expect(fs.existsSync(path.join(run().runDir, 'preparing'))).toBe(false);
  });
});

describe('postgres.sh: initdb happens once in a cluster\'s life', () => {
  const bootstrap = (prepare: (p: Paths) => void, env?: { [name: string]: string }) =>
    runScript('postgres.sh', { pod: 'x-pg-primary-0', prepare, env });

  test('with a fresh cluster-state "new", the bootstrap pod runs initdb --data-checksums, applies setup.sql, then starts as primary', () => {
    const run = bootstrap((p) => clusterState(p, 'new'));
    const [initdb] = run.calls('initdb');
    expect(initdb).toEqual(expect.arrayContaining(['-D', `${run.pgdata}.init`, '--data-checksums']));
    expect(run.psqlStdin().some((s) => s.includes('CREATE EXTENSION IF NOT EXISTS documentdb'))).toBe(true);
    expect(run.calls('postgres')).toHaveLength(1);
    expect(serverSettings(run.calls('postgres')[0]).primary_conninfo).toBeUndefined();
  }, SLOW);

  /** initdb writes PG_VERSION into its -D directory first, then runs `then`. */
  const initdbThen = (then: string) => `while [ $# -gt 0 ]; do [ "$1" = -D ] && echo 15 > "$2/PG_VERSION"; shift; done\n${then}`;

  test('initdb and the setup run in a sibling directory (<PGDATA>.init), moved into place only once both are done', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => clusterState(p, 'new'),
      stubs: { initdb: initdbThen(''), pg_ctl: '[ -f "$STUB_DIR/data/pgdata/PG_VERSION" ] && echo present >> "$STUB_DIR/calls/pgdata-during-setup" || echo absent >> "$STUB_DIR/calls/pgdata-during-setup"' },
    });
    expect(run.read('calls/pgdata-during-setup')).toBe('absent\nabsent\n');
    expect(run.calls('pg_ctl').map((a) => a[a.indexOf('-D') + 1])).toEqual([`${run.pgdata}.init`, `${run.pgdata}.init`]);
    expect(run.read('data/pgdata/PG_VERSION')).toBe('15\n');
    expect(fs.existsSync(`${run.pgdata}.init`)).toBe(false);
    expect(run.calls('postgres')).toHaveLength(1);
  }, SLOW);

  test('an initialisation that did not finish (its setup failed) leaves no data directory behind: the next start initialises again, never starts the half-done one', () => {
    const failed = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => clusterState(p, 'new'),
      stubs: { initdb: initdbThen(''), pg_ctl: 'case "$*" in *start*) exit 1 ;; esac' },
    });
    expect(failed.status).not.toBe(0);
    expect(failed.read('data/pgdata/PG_VERSION')).toBeUndefined();
    expect(failed.calls('postgres')).toEqual([]);
    const next = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => {
        clusterState(p, 'new');
        fs.mkdirSync(`${p.pgdata}.init`);
        fs.writeFileSync(`${p.pgdata}.init/PG_VERSION`, '15\n');
        fs.writeFileSync(`${p.pgdata}.init/half-done`, '');
      },
      stubs: { initdb: initdbThen('') },
    });
    expect(next.calls('initdb')).toHaveLength(1);
    expect(fs.existsSync(path.join(next.pgdata, 'half-done'))).toBe(false);
    expect(next.read('data/pgdata/PG_VERSION')).toBe('15\n');
  }, SLOW);

  test('$RUN_DIR/preparing exists while the data directory is prepared (initdb, the local server), so the liveness probe passes', () => {
    const run = bootstrap((p) => clusterState(p, 'new'));
    expect(run.calls('preparing').map((c) => c[0])).toEqual(expect.arrayContaining(['initdb', 'pg_ctl', 'psql']));
    expect(fs.existsSync(path.join(run.runDir, 'preparing'))).toBe(false);
  }, SLOW);

  test('with cluster-state "initialized <id>", an empty primary volume is never initialised: it stops pointing to the README\'s lost primary volume runbook', () => {
    const run = bootstrap((p) => clusterState(p, 'initialized 7301234567890123456'));
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/FATAL: this cluster was initialised before \(system identifier 7301234567890123456\)/);
    expect(run.stderr).toContain('README: lost primary volume');
    expect(run.calls('initdb')).toEqual([]);
    expect(run.calls('pg_ctl')).toEqual([]);
    expect(run.calls('postgres')).toEqual([]);
    // Still preparing (never started): the container exits and restarts, nothing is served.
    expect(fs.existsSync(path.join(run.runDir, 'preparing'))).toBe(true);
  }, SLOW);

  test('with no cluster-state (the state sidecar never answered), it refuses to run initdb', () => {
    const run = bootstrap(() => undefined, { STATE_WAIT_SECONDS: '1' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('FATAL: no answer from the state sidecar');
    expect(run.calls('initdb')).toEqual([]);
    expect(run.calls('postgres')).toEqual([]);
  }, SLOW);

  test('a cluster-state "new" older than 30 s counts as no answer: it refuses to run initdb', () => {
    const run = bootstrap((p) => clusterState(p, 'new', 60), { STATE_WAIT_SECONDS: '1' });
    expect(run.stderr).toContain('FATAL: no answer from the state sidecar');
    expect(run.calls('initdb')).toEqual([]);
  }, SLOW);

  test('a designated primary other than the bootstrap pod never initialises its empty volume, even with cluster-state "new"', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-replica-1',
      prepare: (p) => {
        setLeader(p, 'x-pg-replica-1');
        clusterState(p, 'new');
      },
    });
    expect(run.stderr).toContain('refusing to initialise an empty database in an existing cluster');
    expect(run.calls('initdb')).toEqual([]);
  }, SLOW);
});

describe('postgres.sh: promotion of a standby data directory waits until no other member accepts writes', () => {
  /** The designated primary x-pg-replica-1 holds standby data; x-pg-primary-0 answers `f` to its first `answersWritable` asks. */
  const promote = (answersWritable: number, env?: { [name: string]: string }) => runScript('postgres.sh', {
    pod: 'x-pg-replica-1',
    prepare: (p) => {
      standbyData(p.pgdata);
      setLeader(p, 'x-pg-replica-1');
    },
    psql: [
      'if [ "$host" = x-pg-primary-0.x-pg-primary ]; then',
      '  n=$(cat "$STUB_DIR/asked" 2>/dev/null || echo 0); echo $((n + 1)) > "$STUB_DIR/asked"',
      `  if [ "$n" -lt ${answersWritable} ]; then answer=f; else answer=t; fi`,
      '  echo "answered $answer" >> "$STUB_DIR/calls/sequence"; echo $answer; exit 0',
      'fi',
    ].join('\n'),
    env,
  });
  const promoted = (run: Run) => run.calls('pg_ctl').some((a) => a.includes('promote'));

  test('asks every other member at <pod>.<statefulset> as the replication role, never itself', () => {
    const run = promote(0);
    const asked = run.calls('psql').map((a) => a[a.indexOf('-d') + 1]).filter((d) => d?.includes('host=x-pg-') && !d.includes('host=x-pg-rw'));
    expect(asked.map((d) => /host=(\S+)/.exec(d)![1]).sort()).toEqual(['x-pg-primary-0.x-pg-primary', 'x-pg-replica-0.x-pg-replica']);
    for (const d of asked) expect(d).toMatch(/ user=replicator .*passfile=/);
    expect(promoted(run)).toBe(true);
  }, SLOW);

  test('while the former primary still answers writable it does not promote; once it answers read-only it promotes', () => {
    const run = promote(2);
    expect(run.stderr).toContain('not promoting yet: x-pg-primary-0 still accepts writes');
    const sequence = run.sequence();
    const promotion = sequence.findIndex((c) => /^pg_ctl .*promote/.test(c));
    expect(promotion).toBeGreaterThan(0);
    const answers = sequence.filter((c) => c.startsWith('answered '));
    expect(answers).toEqual(['answered f', 'answered f', 'answered t']);
    expect(sequence.lastIndexOf('answered f')).toBeLessThan(sequence.indexOf('answered t'));
    expect(sequence.indexOf('answered t')).toBeLessThan(promotion);
    // Then it runs as primary.
    const starts = run.calls('postgres');
    expect(starts).toHaveLength(1);
    expect(serverSettings(starts[0]).primary_conninfo).toBeUndefined();
  }, SLOW);

  test('it never promotes while another member keeps accepting writes: it gives up after PROMOTE_WAIT_SECONDS', () => {
    const run = promote(1000, { PROMOTE_WAIT_SECONDS: '2' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('FATAL: not promoting after 2s: x-pg-primary-0 still accepts writes');
    expect(promoted(run)).toBe(false);
    expect(run.calls('postgres')).toEqual([]);
  }, SLOW);
});

describe('postgres.sh: fencing and promotion of a running server', () => {
  // The first server start moves the leader key (the ConfigMap update reaches the pod) and then
  // runs until SIGINT; the second start exits at once, so the run ends.
  const moveLeaderThenRun = (to: string) => firstStartThen(`date +%s.%N > "$STUB_DIR/leader-moved-at"; printf '%s\\n' ${to} > "$CONFIG_DIR/leader"`);

  describe('a primary whose leader key moves away', () => {
    const run = lazy(() => runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => fs.writeFileSync(path.join(p.pgdata, 'PG_VERSION'), '15\n'),
      stubs: { postgres: moveLeaderThenRun('x-pg-replica-1') },
      // The default poll interval: the bound users get.
      env: { LEADER_POLL_SECONDS: '' },
    }));

    test('logs FENCING naming the new leader', () => {
      expect(run().stderr).toContain('FATAL: the server exited');
      expect(run().stderr).toMatch(/FENCING: the leader key now names x-pg-replica-1; stopping this primary now/);
    }, SLOW);

    // How soon is a matter for the failover benchmark (the poll interval is 1 s), not a timed test.
    test('stops its server with SIGINT (fast shutdown: sessions are disconnected), once, after the key moved', () => {
      const signals = (run().read('calls/signals') ?? '').trim().split('\n');
      expect(signals).toHaveLength(1);
      const [signal, at] = signals[0].split(' ');
      expect(signal).toBe('INT');
      const movedAt = Number(run().read('leader-moved-at'));
      expect(Number(at) - movedAt).toBeGreaterThanOrEqual(0);
    });

    test('then starts over as a standby of the new primary: pg_rewind, standby.signal, primary_conninfo through the read-write Service', () => {
      expect(run().calls('pg_rewind')).toHaveLength(1);
      expect(fs.existsSync(path.join(run().pgdata, 'standby.signal'))).toBe(true);
      const [first, second] = run().calls('postgres');
      expect(serverSettings(first).primary_conninfo).toBeUndefined();
      expect(serverSettings(second).primary_conninfo).toMatch(/^host=x-pg-rw /);
      expect(serverSettings(second).primary_slot_name).toBe('fdb_x_pg_primary_0');
      const sequence = run().sequence();
      expect(sequence.findIndex((c) => c.startsWith('pg_rewind'))).toBeGreaterThan(sequence.findIndex((c) => c.startsWith('postgres')));
    });
  });

  describe('a standby whose leader key comes to name it, once no other member accepts writes', () => {
    const run = lazy(() => runScript('postgres.sh', {
      pod: 'x-pg-replica-1',
      prepare: (p) => standbyData(p.pgdata),
      stubs: { postgres: moveLeaderThenRun('x-pg-replica-1') },
    }));

    test('stops the standby (SIGINT) saying why', () => {
      expect(run().stderr).toContain('the leader key now names this pod, its WAL receiver has ended and no other member blocks a promotion: stopping the standby to promote it');
      expect((run().read('calls/signals') ?? '').split(' ')[0]).toBe('INT');
    }, SLOW);

    test('then promotes its data and starts as primary', () => {
      expect(run().calls('pg_ctl').some((a) => a.includes('promote'))).toBe(true);
      const [first, second] = run().calls('postgres');
      expect(serverSettings(first).primary_conninfo).toMatch(/^host=x-pg-rw /);
      expect(serverSettings(second).primary_conninfo).toBeUndefined();
    });
  });

  describe('a standby whose leader key comes to name it while the former primary still accepts writes', () => {
    // x-pg-primary-0 answers writable to its first 3 asks (it has not seen the leader key move yet).
    const run = lazy(() => runScript('postgres.sh', {
      pod: 'x-pg-replica-1',
      prepare: (p) => standbyData(p.pgdata),
      stubs: { postgres: moveLeaderThenRun('x-pg-replica-1') },
      psql: [
        'if [ "$host" = x-pg-primary-0.x-pg-primary ]; then',
        '  n=$(cat "$STUB_DIR/asked" 2>/dev/null || echo 0); echo $((n + 1)) > "$STUB_DIR/asked"',
        '  if [ "$n" -lt 3 ]; then answer=f; else answer=t; fi',
        '  echo "answered $answer" >> "$STUB_DIR/calls/sequence"; echo $answer; exit 0',
        'fi',
      ].join('\n'),
    }));

    test('keeps streaming (its server is not stopped) until the former primary answers read-only, saying so once', () => {
      const sequence = run().sequence();
      const stopped = sequence.indexOf('signal INT');
      expect(stopped).toBeGreaterThan(0);
      expect(sequence.filter((c) => c.startsWith('answered ')).slice(0, 4)).toEqual(['answered f', 'answered f', 'answered f', 'answered t']);
      expect(sequence.lastIndexOf('answered f')).toBeLessThan(stopped);
      expect(sequence.indexOf('answered t')).toBeLessThan(stopped);
      expect(run().stderr.split('not promoting yet: x-pg-primary-0 still accepts writes').length - 1).toBe(1);
    }, SLOW);

    test('then promotes and starts as primary', () => {
      const sequence = run().sequence();
      expect(sequence.findIndex((c) => /^pg_ctl .*promote/.test(c))).toBeGreaterThan(sequence.indexOf('signal INT'));
      expect(serverSettings(run().calls('postgres')[1]).primary_conninfo).toBeUndefined();
    });
  });
});

describe('postgres.sh: a restart the agent requests for restart-only settings', () => {
  // The first server start finds the agent's request ($RUN_DIR/restart-requested) and runs until
  // SIGINT; the second start exits at once, so the run ends.
  const run = lazy(() => runScript('postgres.sh', {
    pod: 'x-pg-primary-0',
    prepare: (p) => {
      fs.writeFileSync(path.join(p.pgdata, 'PG_VERSION'), '15\n');
      // A request left by a former run of the container is spent: the start reads the settings anyway.
      fs.writeFileSync(path.join(p.runDir, 'restart-requested'), 'stale');
    },
    stubs: { postgres: firstStartThen('printf max_connections > "$RUN_DIR/restart-requested"') },
  }));

  test('a request of a former run is removed at start, before the server starts (one restart, not two)', () => {
    expect(run().calls('postgres')).toHaveLength(2);
    expect(run().stderr).not.toContain('(stale)');
  }, SLOW);

  test('stops the running server with SIGINT (fast shutdown), once, says why, and starts over with the same role', () => {
    const signals = (run().read('calls/signals') ?? '').trim().split('\n');
    expect(signals.map((l) => l.split(' ')[0])).toEqual(['INT']);
    expect(run().stderr).toContain('restarting the server for settings that take effect only after a restart (max_connections)');
    const [first, second] = run().calls('postgres');
    expect(second).toEqual(first);
    expect(run().read('run/restart-requested')).toBeUndefined();
  });
});

describe('postgres.sh: a standby named leader streams on until its WAL receiver ends by itself', () => {
  // The WAL receiver (pid 4242) streams for the first 3 asks after the leader key names this pod.
  const run = lazy(() => runScript('postgres.sh', {
    pod: 'x-pg-replica-1',
    prepare: (p) => standbyData(p.pgdata),
    stubs: {
      postgres: firstStartThen('printf \'%s\\n\' x-pg-replica-1 > "$CONFIG_DIR/leader"'),
    },
    psql: [
      'if [[ $query == *"SELECT pid FROM pg_stat_wal_receiver"* ]]; then',
      '  n=$(cat "$STUB_DIR/receiver-asked" 2>/dev/null || echo 0); echo $((n + 1)) > "$STUB_DIR/receiver-asked"',
      '  if [ "$n" -lt 3 ]; then echo "receiver streaming" >> "$STUB_DIR/calls/sequence"; echo 4242; else echo "receiver ended" >> "$STUB_DIR/calls/sequence"; fi',
      '  exit 0',
      'fi',
    ].join('\n'),
  }));

  test('its server is not stopped while the receiver streaming when it was named still streams, and it says so once', () => {
    const sequence = run().sequence();
    const stopped = sequence.indexOf('signal INT');
    expect(sequence.filter((c) => c.startsWith('receiver ')).slice(0, 4))
      .toEqual(['receiver streaming', 'receiver streaming', 'receiver streaming', 'receiver ended']);
    expect(sequence.lastIndexOf('receiver streaming')).toBeLessThan(stopped);
    expect(sequence.indexOf('receiver ended')).toBeLessThan(stopped);
    expect(run().stderr.split('streaming on until this standby\'s WAL receiver ends by itself').length - 1).toBe(1);
  }, SLOW);

  test('once it has ended, it promotes and starts as primary', () => {
    const sequence = run().sequence();
    expect(sequence.findIndex((c) => /^pg_ctl .*promote/.test(c))).toBeGreaterThan(sequence.indexOf('signal INT'));
    expect(serverSettings(run().calls('postgres')[1]).primary_conninfo).toBeUndefined();
  });
});

describe('postgres.sh: a promotion waits while a member is shutting down or has received more WAL', () => {
  // This pod replayed up to 0/4000000. x-pg-primary-0 is shutting down for its first 2 asks, then
  // down; x-pg-replica-0 has received 0/5000000 for its first 3 asks, then 0/4000000.
  const run = lazy(() => runScript('postgres.sh', {
    pod: 'x-pg-replica-1',
    prepare: (p) => { standbyData(p.pgdata); setLeader(p, 'x-pg-replica-1'); },
    psql: [
      'asked() { n=$(cat "$STUB_DIR/asked-$1" 2>/dev/null || echo 0); echo $((n + 1)) > "$STUB_DIR/asked-$1"; echo "$n"; }',
      'case "$host" in',
      '  "") if [[ $query == *pg_last_wal_replay_lsn* ]]; then echo 0/4000000; exit 0; fi ;;',
      '  x-pg-primary-0.*) if [ "$(asked primary)" -lt 2 ]; then echo "psql: error: FATAL:  the database system is shutting down" >&2; else echo "psql: error: connection refused" >&2; fi; exit 2 ;;',
      '  x-pg-replica-0.*) if [ "$(asked replica)" -lt 3 ]; then echo "t 0/5000000"; else echo "t 0/4000000"; fi; echo "replica answered" >> "$STUB_DIR/calls/sequence"; exit 0 ;;',
      'esac',
    ].join('\n'),
  }));

  test('it says why it waits: the member shutting down, the member ahead with both positions', () => {
    expect(run().stderr).toContain('not promoting yet: x-pg-primary-0 is shutting down; x-pg-replica-0 has received WAL up to 0/5000000, this pod only up to 0/4000000;');
  }, SLOW);

  test('it promotes only after the member ahead answered a position no further than its own', () => {
    const sequence = run().sequence();
    const promotion = sequence.findIndex((c) => /^pg_ctl .*promote/.test(c));
    expect(sequence.filter((c) => c === 'replica answered')).toHaveLength(4);
    expect(promotion).toBeGreaterThan(sequence.lastIndexOf('replica answered'));
  });

  test('WAL positions compare as 64-bit numbers (lsn_ahead)', () => {
    const r = runScript('', {
      pod: 'x-pg-replica-1',
      snippet: '. "$CONFIG_DIR/datadir.sh"; for p in "1/0 0/FFFFFFFF" "0/FFFFFFFF 1/0" "0/A 0/9" "0/9 0/A" "0/5 0/5" " 0/5" "0/5 "; do lsn_ahead "${p% *}" "${p#* }" && echo "$p: y" || echo "$p: n"; done',
    });
    expect(r.read('stdout')).toBe(['1/0 0/FFFFFFFF: y', '0/FFFFFFFF 1/0: n', '0/A 0/9: y', '0/9 0/A: n', '0/5 0/5: n', ' 0/5: n', '0/5 : n', ''].join('\n'));
  });
});

describe('postgres.sh: the promotion of standby data replays with limits at least the primary\'s', () => {
  test('the local server it promotes gets -c name=<recorded> for each setting pg_control records higher', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-replica-1',
      prepare: (p) => {
        standbyData(p.pgdata);
        setLeader(p, 'x-pg-replica-1');
        fs.writeFileSync(path.join(p.dir, 'controldata'), CONTROLDATA.replace(/max_connections setting: +90/, 'max_connections setting:              500'));
      },
    });
    const start = run.calls('pg_ctl').find((a) => a.includes('start'))!;
    expect(start[start.indexOf('-o') + 1]).toMatch(/ -c max_connections=500$/);
    expect(run.calls('pg_ctl').some((a) => a.includes('promote'))).toBe(true);
  }, SLOW);
});

describe('postgres.sh: a pod named primary with a stale re-clone request', () => {
  test('removes $RUN_DIR/reclone-needed (a standby\'s request) before it starts, so liveness passes', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => {
        fs.writeFileSync(path.join(p.pgdata, 'PG_VERSION'), '15\n');
        fs.writeFileSync(path.join(p.runDir, 'reclone-needed'), '');
      },
    });
    expect(run.calls('postgres')).toHaveLength(1);
    expect(run.read('run/reclone-needed')).toBeUndefined();
  }, SLOW);
});

describe('postgres.sh: a standby starts with limits at least the primary\'s', () => {
  const standby = (controldata: string) => runScript('postgres.sh', {
    pod: 'x-pg-replica-0',
    prepare: (p) => {
      standbyData(p.pgdata);
      fs.writeFileSync(path.join(p.dir, 'controldata'), controldata);
    },
  });

  test('each setting pg_control records higher than the configured value is passed as -c name=<recorded>', () => {
    const run = standby(CONTROLDATA
      .replace(/max_connections setting: +90/, 'max_connections setting:              500')
      .replace(/max_worker_processes setting: +8/, 'max_worker_processes setting:         16')
      .replace(/max_wal_senders setting: +16/, 'max_wal_senders setting:              20')
      .replace(/max_prepared_xacts setting: +0/, 'max_prepared_xacts setting:           10')
      .replace(/max_locks_per_xact setting: +64/, 'max_locks_per_xact setting:           128'));
    const settings = serverSettings(run.calls('postgres')[0]);
    expect(settings).toEqual(expect.objectContaining({
      max_connections: '500',
      max_worker_processes: '16',
      max_wal_senders: '20',
      max_prepared_transactions: '10',
      max_locks_per_transaction: '128',
    }));
    expect(run.stderr).toContain('max_connections: using the primary\'s 500 instead of 150');
  }, SLOW);

  test('settings pg_control records equal or lower add no -c argument', () => {
    const run = standby(CONTROLDATA.replace(/max_connections setting: +90/, 'max_connections setting:              50'));
    const settings = serverSettings(run.calls('postgres')[0]);
    for (const name of ['max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', 'max_locks_per_transaction']) {
      expect({ name, passed: settings[name] }).toEqual({ name, passed: undefined });
    }
    expect(Object.keys(settings).sort()).toEqual(['config_file', 'primary_conninfo', 'primary_slot_name']);
  }, SLOW);
});

describe('postgres.sh: an empty standby volume', () => {
  const run = lazy(() => runScript('postgres.sh', { pod: 'x-pg-replica-0' }));

  test('is cloned with pg_basebackup through the pod\'s slot while $RUN_DIR/preparing keeps the liveness probe passing', () => {
    const [clone] = run().calls('pg_basebackup');
    expect(clone).toEqual(expect.arrayContaining(['-S', 'fdb_x_pg_replica_0', '-X', 'stream']));
    expect(run().calls('preparing').map((c) => c[0])).toContain('pg_basebackup');
    expect(fs.existsSync(path.join(run().pgdata, 'standby.signal'))).toBe(true);
    expect(serverSettings(run().calls('postgres')[0]).primary_slot_name).toBe('fdb_x_pg_replica_0');
    expect(fs.existsSync(path.join(run().runDir, 'preparing'))).toBe(false);
  }, SLOW);

  test('the clone connects with an application_name of its own (<pod>-clone): synchronous_standby_names lists pod names, and a clone must not acknowledge commits', () => {
    const [clone] = run().calls('pg_basebackup');
    expect(clone[clone.indexOf('-d') + 1]).toMatch(/ application_name=x-pg-replica-0-clone( |$)/);
  });
});

describe('rejoining after a promotion', () => {
  const run = lazy(() => runScript('postgres.sh', {
    pod: 'x-pg-primary-0',
    prepare: (p) => {
      killedServerData(p.pgdata, 1);
      setLeader(p, 'x-pg-replica-1');
    },
  }));

  test('runs pg_rewind against the read-write Service with the real settings (--config-file keeps wal_log_hints for crash recovery)', () => {
    expect(run().stderr).toContain('FATAL: the server exited');
    const rewind = run().calls('pg_rewind');
    expect(rewind).toHaveLength(1);
    expect(rewind[0]).toContain(`--target-pgdata=${run().pgdata}`);
    expect(rewind[0]).toContain(`--config-file=${path.join(run().configDir, 'postgresql.conf')}`);
    expect(rewind[0].find((a) => a.startsWith('--source-server='))).toMatch(/host=x-pg-rw .*user=replicator/);
  }, SLOW);

  test('then starts as a standby of the new primary through its own slot', () => {
    expect(fs.existsSync(path.join(run().pgdata, 'standby.signal'))).toBe(true);
    const [postgres] = run().calls('postgres');
    expect(postgres).toContain('primary_slot_name=fdb_x_pg_primary_0');
    expect(postgres.find((a) => a.startsWith('primary_conninfo='))).toMatch(/host=x-pg-rw .*application_name=x-pg-primary-0$/);
    expect(fs.existsSync(path.join(run().pgdata, 'postmaster.pid'))).toBe(false);
  });
});

describe('standby data on an older timeline than the primary\'s (it may be past the switch point)', () => {
  /** The primary behind the read-write Service runs on timeline `tli`; the local data is on 2. */
  const primaryOn = (tli: string) => `case "$query" in *IDENTIFY_SYSTEM*) echo "7301234567890123456|${tli}|0/3000000|"; exit 0 ;; esac`;

  test.each([['3', 'y'], ['2', 'n'], ['1', 'n'], ['', 'n'], ['x', 'n']])('primary on timeline "%s", this data on 2: behind = %s', (tli, expected) => {
    const run = runScript('', {
      pod: 'x-pg-replica-0',
      psql: primaryOn(tli),
      snippet: '. "$CONFIG_DIR/datadir.sh"; behind_primary_timeline && echo y || echo n',
    });
    expect(run.read('stdout')).toBe(`${expected}\n`);
  });

  const behind = lazy(() => runScript('postgres.sh', {
    pod: 'x-pg-replica-0',
    prepare: (p) => standbyData(p.pgdata),
    psql: primaryOn('3'),
    stubs: { pg_rewind: 'if [ -f "$PGDATA/standby.signal" ]; then echo present; else echo absent; fi >> "$STUB_DIR/calls/signal-during-rewind"' },
  }));

  test('pg_rewind runs against the read-write Service, without standby.signal (its crash recovery refuses standby mode), then the pod starts as a standby', () => {
    expect(behind().stderr).toMatch(/older timeline than the primary's and may be past the primary's switch point: rewinding it/);
    const [rewind] = behind().calls('pg_rewind');
    expect(rewind.find((a) => a.startsWith('--source-server='))).toMatch(/host=x-pg-rw .*user=replicator/);
    expect(behind().calls('sequence').join('\n')).toMatch(/pg_rewind[\s\S]*postgres/);
    expect(behind().calls('signal-during-rewind')).toEqual([['absent']]);
    expect(fs.existsSync(path.join(behind().pgdata, 'standby.signal'))).toBe(true);
    expect(behind().calls('postgres')).toHaveLength(1);
  }, SLOW);

  test('on the primary\'s own timeline no pg_rewind runs', () => {
    const same = runScript('postgres.sh', { pod: 'x-pg-replica-0', prepare: (p) => standbyData(p.pgdata), psql: primaryOn('2') });
    expect(same.calls('pg_rewind')).toEqual([]);
    expect(same.calls('postgres')).toHaveLength(1);
  }, SLOW);
});

describe('standby data never streams before the primary has said its system identifier and timeline', () => {
  /** IDENTIFY_SYSTEM fails for the first `failures` calls, then answers on a timeline `tli`. */
  const answersAfter = (failures: number, tli = '2') => [
    'case "$query" in *IDENTIFY_SYSTEM*)',
    '  n=$(( $(cat "$STUB_DIR/identify-calls" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$STUB_DIR/identify-calls"',
    `  [ "$n" -le ${failures} ] && { echo 'psql: error: connection to server at "x-pg-rw" failed: Connection refused' >&2; exit 2; }`,
    `  echo "7301234567890123456|${tli}|0/3000000|"; exit 0 ;;`,
    'esac',
  ].join('\n');
  // The read-only server runs until SIGINT; the streaming one exits at once, so the run ends.
  const holdServer = 'if [ "$(wc -l < "$STUB_DIR/calls/postgres")" = 1 ]; then exec perl "$STUB_DIR/bin/stub-server.pl"; fi';

  const late = lazy(() => runScript('postgres.sh', {
    pod: 'x-pg-replica-0',
    prepare: (p) => standbyData(p.pgdata),
    psql: answersAfter(3, '3'),
    stubs: { postgres: holdServer },
  }));

  test('while the primary cannot be asked, the data runs read-only without streaming (no primary_conninfo), and says why', () => {
    const [first] = late().calls('postgres');
    expect(serverSettings(first).primary_conninfo).toBe('');
    // It says why (the wrong password case of the e2e suite relies on it).
    expect(late().stderr).toContain('the primary behind x-pg-rw cannot be asked for its system identifier and timeline (psql: error: connection to server at "x-pg-rw" failed: Connection refused): running this standby read-only without streaming until it answers');
    expect(late().read('calls/preparing')).toContain('postgres');
  }, SLOW);

  test('once it answers: the read-only server stops (SIGINT), the timeline is compared (here: rewound) and only then the standby streams', () => {
    expect((late().read('calls/signals') ?? '').trim().split('\n').map((l) => l.split(' ')[0])).toEqual(['INT']);
    const sequence = late().sequence().join('\n');
    expect(sequence).toMatch(/signal INT[\s\S]*pg_rewind[\s\S]*postgres -D/);
    const starts = late().calls('postgres');
    expect(starts).toHaveLength(2);
    expect(serverSettings(starts[1]).primary_conninfo).toMatch(/^host=x-pg-rw /);
  }, SLOW);

  test('a leader key naming the pod ends the wait: the read-only server stops and the pod starts over to promote', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-replica-0',
      prepare: (p) => standbyData(p.pgdata),
      psql: answersAfter(1000),
      stubs: {
        postgres: firstStartThen('printf \'%s\\n\' x-pg-replica-0 > "$CONFIG_DIR/leader"'),
      },
    });
    expect(run.stderr).toContain('the leader key now names this pod: stopping the read-only standby to promote it');
    expect(run.stderr).toContain('this pod is the designated primary and holds standby data: promoting it');
    expect(run.calls('pg_basebackup')).toEqual([]);
  }, SLOW);
});

describe('a pg_rewind that did not finish', () => {
  const marker = (p: Paths) => `${p.pgdata}.rewinding`;

  test('a failed pg_rewind leaves the data directory marked (<PGDATA>.rewinding) and postgres.sh stops saying the next start re-clones', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => { killedServerData(p.pgdata, 1); setLeader(p, 'x-pg-replica-1'); },
      stubs: { pg_rewind: 'exit 1' },
    });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/FATAL: pg_rewind failed .* is never rewound again: the next start re-clones it/);
    expect(fs.existsSync(marker(run))).toBe(true);
    expect(run.calls('postgres')).toEqual([]);
  }, SLOW);

  test('SIGTERM to postgres.sh (the container\'s PID 1) during pg_rewind stops pg_rewind too, and the marker stays', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => { killedServerData(p.pgdata, 1); setLeader(p, 'x-pg-replica-1'); },
      // The kubelet's SIGTERM reaches postgres.sh (its parent) alone, while pg_rewind runs.
      stubs: { pg_rewind: 'trap \'echo TERM > "$STUB_DIR/rewind-signalled"; exit 143\' TERM; touch "$STUB_DIR/rewind-running"; kill -TERM $PPID; sleep 15 & wait' },
    });
    expect(run.read('rewind-running')).toBe('');
    expect(run.read('rewind-signalled')).toBe('TERM\n');
    expect(run.stderr).toContain('terminated');
    expect(fs.existsSync(marker(run))).toBe(true);
  }, SLOW);

  test('at the next start, a marked standby is re-cloned, never rewound again, and the marker goes', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => { killedServerData(p.pgdata, 1); setLeader(p, 'x-pg-replica-1'); fs.writeFileSync(marker(p), ''); },
    });
    expect(run.stderr).toContain('a pg_rewind of this data directory did not finish: re-cloning it instead of rewinding it again');
    expect(run.calls('pg_rewind')).toEqual([]);
    expect(run.calls('pg_basebackup')).toHaveLength(1);
    expect(fs.existsSync(marker(run))).toBe(false);
    expect(run.calls('postgres')).toHaveLength(1);
  }, SLOW);

  test('a marked data directory named primary never starts: it says why', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => { killedServerData(p.pgdata, 1); fs.writeFileSync(marker(p), ''); },
    });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/FATAL: a pg_rewind of .* did not finish: its data mixes two servers' files and cannot run as primary/);
    expect(run.calls('postgres')).toEqual([]);
  }, SLOW);
});

describe('the system identifier: another database is never streamed from, rewound against or cloned over', () => {
  /** The primary behind the read-write Service answers IDENTIFY_SYSTEM with system identifier 111. */
  const otherPrimary = 'case "$query" in *IDENTIFY_SYSTEM*) echo "111|1|0/3000000|"; exit 0 ;; esac';

  test.each([
    ['a standby', (p: Paths) => standbyData(p.pgdata)],
    ['a standby with a re-clone request', (p: Paths) => { standbyData(p.pgdata); fs.writeFileSync(path.join(p.runDir, 'reclone-needed'), ''); }],
    ['a former primary (before pg_rewind)', (p: Paths) => killedServerData(p.pgdata, 1)],
  ])('%s with data stops saying why, its data kept: no server, no pg_basebackup, no pg_rewind', (_name, prepare) => {
    const run = runScript('postgres.sh', { pod: 'x-pg-replica-0', prepare, psql: otherPrimary });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('FATAL: the primary behind x-pg-rw is a different database (system identifier 111) than this pod\'s data (7301234567890123456): not streaming from it and never re-cloning over this data');
    expect(run.calls('pg_basebackup')).toEqual([]);
    expect(run.calls('pg_rewind')).toEqual([]);
    expect(run.calls('postgres')).toEqual([]);
    expect(run.read('data/pgdata/PG_VERSION')).toBe('15\n');
  }, SLOW);

  test('IDENTIFY_SYSTEM goes over a replication connection of the replication role to the read-write Service', () => {
    const run = runScript('', { pod: 'x-pg-replica-0', psql: otherPrimary, snippet: 'primary_system_identifier' });
    expect(run.read('stdout')).toBe('111\n');
    const [args] = run.calls('psql');
    expect(args[args.indexOf('-d') + 1]).toMatch(/^host=x-pg-rw .*user=replicator .* replication=true$/);
  });

  test('the same identifier (or a primary that cannot be asked) lets a standby start', () => {
    const same = runScript('postgres.sh', {
      pod: 'x-pg-replica-0',
      prepare: (p) => standbyData(p.pgdata),
      psql: 'case "$query" in *IDENTIFY_SYSTEM*) echo "7301234567890123456|1|0/3000000|"; exit 0 ;; esac',
    });
    expect(same.calls('postgres')).toHaveLength(1);
  }, SLOW);

  test('the agent of a standby that is not streaming from another database warns once and never requests a re-clone', () => {
    const run = runScript('', {
      pod: 'x-pg-replica-0',
      psql: `${otherPrimary}\ncase "$query" in *pg_control_system*) echo 7301234567890123456; exit 0 ;; *pg_stat_wal_receiver*) echo 0; exit 0 ;; *wal_status*) echo lost; exit 0 ;; esac`,
      snippet: 'eval "$(sed \'/^while true; do$/,$d\' "$CONFIG_DIR/agent.sh")"; watch_standby; watch_standby',
    });
    expect(run.read('run/reclone-needed')).toBeUndefined();
    expect(run.stderr.split('WARNING: the primary behind x-pg-rw is a different database (system identifier 111)').length - 1).toBe(1);
  }, SLOW);

  test('a primary whose data is not the database the cluster recorded (state sidecar: "initialized <id>") never starts', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => { fs.writeFileSync(path.join(p.pgdata, 'PG_VERSION'), '15\n'); clusterState(p, 'initialized 111'); },
    });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('FATAL: this data directory holds system identifier 7301234567890123456, but the cluster recorded 111 in its state ConfigMap');
    expect(run.calls('postgres')).toEqual([]);
  }, SLOW);
});

describe('lifecycle.sh ready (readiness)', () => {
  /** The probe with a psql that answers `role` (what the probe's query computes on the server). */
  const ready = (pod: string, role: string, options: { leader?: string; psqlFails?: boolean } = {}) => runScript('lifecycle.sh', {
    pod,
    args: ['ready'],
    prepare: (p) => {
      if (options.leader) setLeader(p, options.leader);
    },
    psql: options.psqlFails ? 'echo "psql: error: connection to server failed" >&2; exit 2' : `echo ${role}; exit 0`,
  });

  test('a primary whose leader key names this pod is ready', () => {
    expect(ready('x-pg-primary-0', 'primary').status).toBe(0);
  });

  test('a primary whose leader key names another pod (it is fencing itself) is not ready', () => {
    expect(ready('x-pg-primary-0', 'primary', { leader: 'x-pg-replica-1' }).status).not.toBe(0);
  });

  test('a standby that streams within the lag bound is ready', () => {
    expect(ready('x-pg-replica-0', 'standby').status).toBe(0);
  });

  test('a standby whose leader key names this pod (about to promote, still read-only) is not ready', () => {
    expect(ready('x-pg-replica-0', 'standby', { leader: 'x-pg-replica-0' }).status).not.toBe(0);
  });

  test('a standby that is behind (not streaming, or lagging beyond the bound) is not ready', () => {
    expect(ready('x-pg-replica-0', 'behind').status).not.toBe(0);
  });

  test('a pod still preparing its data directory is not ready, even if its socket-only server answers as the leader\'s primary', () => {
    const run = runScript('lifecycle.sh', {
      pod: 'x-pg-primary-0',
      args: ['ready'],
      prepare: (p) => fs.writeFileSync(path.join(p.runDir, 'preparing'), ''),
      psql: 'echo primary; exit 0',
    });
    expect(run.status).not.toBe(0);
  });

  test('a server that does not answer is not ready', () => {
    expect(ready('x-pg-primary-0', 'primary', { psqlFails: true }).status).not.toBe(0);
  });

  test('the query asks the local server as postgres, with MAX_REPLICATION_LAG_BYTES of the manifest as the bound on replay lag', () => {
    const run = ready('x-pg-replica-0', 'standby');
    expect(MANIFEST_ENV.MAX_REPLICATION_LAG_BYTES).toBe(String(64 * 2 ** 20));
    const [args] = run.calls('psql');
    expect(args).toEqual(expect.arrayContaining(['-h', run.runDir, '-U', 'postgres', '-v', `max_lag=${MANIFEST_ENV.MAX_REPLICATION_LAG_BYTES}`]));
    const [query] = run.psqlStdin();
    expect(query).toMatch(/WHEN NOT pg_is_in_recovery\(\) THEN 'primary'/);
    expect(query).toMatch(/status = 'streaming'/);
    expect(query).toMatch(/pg_wal_lsn_diff\(latest_end_lsn, pg_last_wal_replay_lsn\(\)\), 0\) <= :max_lag/);
    expect(query).toMatch(/FROM pg_stat_wal_receiver/);
  });
});

describe('lifecycle.sh live (startup and liveness)', () => {
  const live = (isready: number, files: string[] = []) => runScript('lifecycle.sh', {
    pod: 'x-pg-replica-0',
    args: ['live'],
    prepare: (p) => files.forEach((f) => fs.writeFileSync(path.join(p.runDir, f), '')),
    stubs: { pg_isready: `exit ${isready}` },
  }).status;

  test('alive while $RUN_DIR/preparing exists, even though no server answers (clone, rewind, promotion, waits)', () => {
    expect(live(2, ['preparing'])).toBe(0);
  });

  test('not alive when no server answers and nothing is being prepared', () => {
    expect(live(2)).not.toBe(0);
    expect(live(3)).not.toBe(0);
  });

  test('alive while the server accepts connections or rejects them while starting (pg_isready 0 or 1)', () => {
    expect(live(0)).toBe(0);
    expect(live(1)).toBe(0);
  });

  test('not alive once the agent requested a re-clone, even while preparing', () => {
    expect(live(0, ['reclone-needed'])).not.toBe(0);
    expect(live(0, ['reclone-needed', 'preparing'])).not.toBe(0);
  });
});

describe('agent.sh', () => {
  /** agent.sh's definitions without its loop, then `snippet`. */
  const agent = (snippet: string, prepare?: (p: Paths) => void) => runScript('', {
    pod: 'x-pg-primary-0',
    prepare,
    snippet: `eval "$(sed '/^while true; do$/,$d' "$CONFIG_DIR/agent.sh")"; ${snippet}`,
  });
  const reloads = (run: Run) => run.calls('psql').filter((a) => a.includes('SELECT pg_reload_conf()')).length;
  const applies = (run: Run) => run.calls('psql').filter((a) => a.includes('-f') && a.includes('-')).length;
  const count = (text: string, fragment: string) => text.split(fragment).length - 1;
  const drops = (run: Run) => run.psqlStdin().filter((q) => q.includes('pg_drop_replication_slot')).length;

  test('(setup) the loop this test cuts off is where agent.sh\'s definitions end', () => {
    const script: string = CONFIG_MAP.data['agent.sh'];
    expect(script.match(/^while true; do$/gm)).toHaveLength(1);
    expect(script.slice(script.indexOf('\nwhile true; do')).match(/^\w+\(\) \{/m)).toBeNull();
  });

  test('a standby whose slot was invalidated requests a re-clone, unless the leader key names it (it is about to promote)', () => {
    const watch = (leader: string) => runScript('', {
      pod: 'x-pg-replica-0',
      prepare: (p) => setLeader(p, leader),
      psql: 'case "$query" in *pg_control_system*) echo 7301234567890123456; exit 0 ;; *pg_stat_wal_receiver*) echo 0; exit 0 ;; *wal_status*) echo lost; exit 0 ;; esac',
      snippet: 'eval "$(sed \'/^while true; do$/,$d\' "$CONFIG_DIR/agent.sh")"; watch_standby',
    });
    expect(watch('x-pg-primary-0').read('run/reclone-needed')).toBe('');
    expect(watch('x-pg-replica-0').read('run/reclone-needed')).toBeUndefined();
  }, SLOW);

  test('on a standby it drops the inactive slots of the cluster a former primary kept, and only those', () => {
    const run = runScript('', {
      pod: 'x-pg-primary-0',
      psql: 'case "$query" in *"NOT active"*) printf \'%s\\n\' fdb_x_pg_replica_0 fdb_x_pg_replica_1; exit 0 ;; esac',
      snippet: 'eval "$(sed \'/^while true; do$/,$d\' "$CONFIG_DIR/agent.sh")"; drop_standby_slots',
    });
    const listed = run.psqlStdin().find((q) => q.includes('FROM pg_replication_slots')) ?? '';
    expect(listed).toMatch(/slot_type = 'physical' AND NOT active AND starts_with\(slot_name::text, :'prefix'\)/);
    const dropCalls = run.calls('psql').filter((a) => a.includes('slot=fdb_x_pg_replica_0') || a.includes('slot=fdb_x_pg_replica_1'));
    expect(dropCalls).toHaveLength(2);
    expect(run.psqlStdin().filter((q) => q.includes('pg_drop_replication_slot'))).toHaveLength(2);
    expect(run.stderr).toContain('dropped slot fdb_x_pg_replica_1: this pod is a standby now');
  }, SLOW);

  test('reloads the configuration on its first pass, then only when postgresql.conf or pg_hba.conf changes', () => {
    const run = agent([
      'reconcile_config', 'reconcile_config',
      'echo "work_mem = \'8MB\'" >> "$CONFIG_DIR/postgresql.conf"', 'reconcile_config', 'reconcile_config',
      'echo "# changed" >> "$CONFIG_DIR/pg_hba.conf"', 'reconcile_config',
    ].join('; '));
    expect(run.status).toBe(0);
    expect(reloads(run)).toBe(3);
    expect(count(run.stderr, 'configuration changed: reloaded')).toBe(2);
  }, SLOW);

  test('logs the names of settings pending a restart (pg_settings.pending_restart) once per change', () => {
    const run = agent([
      'echo max_connections > "$STUB_DIR/pending"', 'reconcile_config', 'reconcile_config',
      'echo "max_connections, shared_buffers" > "$STUB_DIR/pending"', 'reconcile_config',
      ': > "$STUB_DIR/pending"', 'reconcile_config',
    ].join('; '));
    expect(run.status).toBe(0);
    const logged = run.stderr.split('\n').filter((l) => l.includes('settings that take effect only after a restart'));
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatch(/restart: max_connections \(/);
    expect(logged[1]).toMatch(/restart: max_connections, shared_buffers \(/);
    const query = run.psqlStdin().find((q) => q.includes('pending_restart'));
    expect(query).toMatch(/FROM pg_settings s\nWHERE s.pending_restart AND \(s.source <> 'command line' OR/);
  }, SLOW);

  test('re-applies setup.sql only when the SQL, a password, or the image\'s DocumentDB default_version changes', () => {
    const run = agent([
      'reconcile_setup', 'reconcile_setup',
      'echo 0.108-0 > "$STUB_DIR/documentdb-version"', 'reconcile_setup', 'reconcile_setup',
      'echo new > "$SECRET_DIR/ferretdb-password"', 'reconcile_setup',
      'echo new > "$SECRET_DIR/replication-password"', 'reconcile_setup',
      'echo "-- changed" >> "$CONFIG_DIR/setup.sql"', 'reconcile_setup', 'reconcile_setup',
    ].join('; '));
    expect(run.status).toBe(0);
    expect(applies(run)).toBe(5);
    expect(run.calls('psql').flat().some((a) => /default_version FROM pg_available_extensions WHERE name = 'documentdb'/.test(a))).toBe(true);
    // What is applied updates the extension to the image's version.
    for (const stdin of run.psqlStdin().filter((s) => s.includes('CREATE EXTENSION'))) expect(stdin).toContain('ALTER EXTENSION documentdb UPDATE;');
  }, SLOW);

  describe('restart-only settings roll through the servers: standbys one at a time, the primary last', () => {
    /**
     * One reconcile_restart pass of `pod` with `leader` in the leader key. The local server has
     * max_connections pending under configuration H2 (postgresql.conf's ferretdb.restart_settings);
     * each member asked at its own address answers $STUB_DIR/member-<pod> ("<hash>|<pending>"; no
     * file: it cannot be asked). `then` runs after the pass (more passes).
     */
    const roll = (pod: string, members: { [pod: string]: string }, then = '', leader = 'x-pg-primary-0') => runScript('', {
      pod,
      prepare: (p) => {
        setLeader(p, leader);
        fs.writeFileSync(path.join(p.dir, 'pending'), 'max_connections\n');
        for (const [m, answer] of Object.entries(members)) fs.writeFileSync(path.join(p.dir, `member-${m}`), `${answer}\n`);
      },
      psql: [
        'case "$host" in *.*) m=${host%%.*}; [ -f "$STUB_DIR/member-$m" ] || exit 2; cat "$STUB_DIR/member-$m"; exit 0 ;; esac',
        'case "$query" in *"current_setting(\'ferretdb.restart_settings\'"*) echo H2; exit 0 ;; esac',
      ].join('\n'),
      snippet: `eval "$(sed '/^while true; do$/,$d' "$CONFIG_DIR/agent.sh")"; reconcile_restart ${pod.includes('primary') ? 'primary' : 'standby'}; ${then}`,
    });
    const requested = (run: Run) => run.read('run/restart-requested');

    test('the members are asked at their own addresses as the replication role, for the hash and whether anything is pending', () => {
      const run = roll('x-pg-primary-0', { 'x-pg-replica-0': 'H2|f', 'x-pg-replica-1': 'H2|f' });
      const asked = run.calls('psql').filter((a) => a.some((w) => w.includes('host=x-pg-replica-')));
      expect(asked).toHaveLength(2);
      for (const a of asked) {
        expect(a.join(' ')).toMatch(/user=replicator .*application_name=x-pg-primary-0/);
        expect(a.join(' ')).toContain('current_setting(\'ferretdb.restart_settings\', true)');
        expect(a.join(' ')).toContain('pending_restart');
      }
    }, SLOW);

    test('the primary restarts once every standby runs the same configuration with nothing pending', () => {
      const run = roll('x-pg-primary-0', { 'x-pg-replica-0': 'H2|f', 'x-pg-replica-1': 'H2|f' });
      expect(requested(run)).toBe('max_connections');
      expect(run.read('run/.restarted-for')).toBe('H2');
      expect(run.stderr).toContain('restarting this primary for max_connections (configuration H2)');
    }, SLOW);

    test.each([
      ['a standby that cannot be asked (down: a value it cannot start with)', { 'x-pg-replica-0': 'H2|f' }, 'x-pg-replica-1 cannot be asked'],
      ['a standby that has not got the configuration yet (its kubelet has not synced)', { 'x-pg-replica-0': 'H2|f', 'x-pg-replica-1': 'H1|f' }, 'x-pg-replica-1 has not got this configuration yet'],
      ['a standby that has not restarted yet', { 'x-pg-replica-0': 'H2|t', 'x-pg-replica-1': 'H2|f' }, 'x-pg-replica-0 has not restarted for them yet'],
    ])('the primary keeps serving while %s, and says why once', (_what, members, why) => {
      const run = roll('x-pg-primary-0', members, 'reconcile_restart primary');
      expect(requested(run)).toBeUndefined();
      expect(run.stderr).toContain(`not restarting yet for max_connections: ${why}`);
      expect(count(run.stderr, 'not restarting yet')).toBe(1);
    }, SLOW);

    test('the first standby in the order of members restarts at once; it does not wait for standbys after it', () => {
      const run = roll('x-pg-replica-0', {});
      expect(requested(run)).toBe('max_connections');
      expect(run.calls('psql').some((a) => a.some((w) => w.includes('host=x-pg-')))).toBe(false);
    }, SLOW);

    test('a later standby waits for the standbys before it, never for the primary', () => {
      expect(requested(roll('x-pg-replica-1', { 'x-pg-replica-0': 'H2|t' }))).toBeUndefined();
      expect(requested(roll('x-pg-replica-1', {}))).toBeUndefined();
      const run = roll('x-pg-replica-1', { 'x-pg-replica-0': 'H2|f' });
      expect(requested(run)).toBe('max_connections');
      expect(run.calls('psql').some((a) => a.some((w) => w.includes('host=x-pg-primary-0.')))).toBe(false);
    }, SLOW);

    test('after a promotion the order follows the leader key: the former primary is a standby like the others', () => {
      const run = roll('x-pg-replica-1', { 'x-pg-replica-0': 'H2|f' }, '', 'x-pg-primary-0');
      expect(requested(run)).toBe('max_connections');
      // x-pg-primary-0 is a standby now (x-pg-replica-0 leads): x-pg-replica-1 waits for it, as it comes first.
      expect(requested(roll('x-pg-replica-1', { 'x-pg-replica-0': 'H2|f' }, '', 'x-pg-replica-0'))).toBeUndefined();
    }, SLOW);

    test('a server restarts once per configuration: still pending after its restart, it warns instead of restarting again', () => {
      const run = roll('x-pg-replica-0', {}, 'rm -f "$RESTART_REQUEST"; reconcile_restart standby; reconcile_restart standby');
      expect(requested(run)).toBeUndefined();
      expect(count(run.stderr, 'restarting this standby')).toBe(1);
      expect(count(run.stderr, 'still wait for a restart after this server restarted for them')).toBe(1);
    }, SLOW);

    test('nothing pending: nothing is asked and nothing restarts', () => {
      const none = runScript('', {
        pod: 'x-pg-primary-0',
        snippet: 'eval "$(sed \'/^while true; do$/,$d\' "$CONFIG_DIR/agent.sh")"; reconcile_restart primary',
      });
      expect(none.read('run/restart-requested')).toBeUndefined();
      expect(none.calls('psql').some((a) => a.some((w) => w.includes('host=x-pg-')))).toBe(false);
    }, SLOW);
  });

  describe('ALTER EXTENSION documentdb UPDATE waits until every member\'s image ships the primary\'s version', () => {
    /**
     * The extension is installed at 0.107-0 and the primary's image ships 0.108-0; each member
     * (asked at its own address) ships what $STUB_DIR/member-version says (nothing: cannot be asked).
     */
    const upgrade = lazy(() => runScript('', {
      pod: 'x-pg-primary-0',
      prepare: (p) => fs.writeFileSync(path.join(p.dir, 'documentdb-version'), '0.108-0\n'),
      psql: [
        'case "$query" in',
        '  *extversion*) echo 0.107-0; exit 0 ;;',
        '  *default_version*) case "$host" in *.*) [ -f "$STUB_DIR/member-version" ] || exit 2; cat "$STUB_DIR/member-version"; exit 0 ;; esac ;;',
        'esac',
      ].join('\n'),
      snippet: `eval "$(sed '/^while true; do$/,$d' "$CONFIG_DIR/agent.sh")"; ${[
        'reconcile_setup', 'echo 0.107-0 > "$STUB_DIR/member-version"', 'reconcile_setup', 'reconcile_setup',
        'echo 0.108-0 > "$STUB_DIR/member-version"', 'reconcile_setup', 'reconcile_setup',
      ].join('; ')}`,
    }));
    const setups = () => upgrade().psqlStdin().filter((q) => q.includes('CREATE EXTENSION'));

    test('while a member cannot be asked or ships an older version: setup.sql is applied (roles, passwords) without the update, saying why once per reason', () => {
      // Applied once without it (a changed reason is no change of what is applied).
      expect(setups()[0].split('\n')[0]).toBe('\\set update_extension false');
      expect(upgrade().stderr).toContain('not updating documentdb from 0.107-0 to 0.108-0 yet: every member\'s image must ship 0.108-0 first ( x-pg-replica-0 ships cannot be asked;');
      expect(upgrade().stderr).toContain('x-pg-replica-0 ships 0.107-0;');
      expect(count(upgrade().stderr, 'not updating documentdb')).toBe(2);
    }, SLOW);

    test('once every member ships it, setup.sql is applied again, with the update, once', () => {
      expect(setups()).toHaveLength(2);
      expect(setups()[1].split('\n')[0]).toBe('\\set update_extension true');
    }, SLOW);

    test('setup.sql runs ALTER EXTENSION documentdb UPDATE only under \\if :update_extension', () => {
      const sql: string = CONFIG_MAP.data['setup.sql'];
      expect(sql).toMatch(/^\\if :update_extension\nALTER EXTENSION documentdb UPDATE;\n\\endif$/m);
      expect(count(sql, 'ALTER EXTENSION')).toBe(1);
    });
  });

  describe('one pass of its loop', () => {
    const pass = (inRecovery: 't' | 'f') => runScript('agent.sh', {
      pod: inRecovery === 'f' ? 'x-pg-primary-0' : 'x-pg-replica-0',
      env: { AGENT_INTERVAL: '5', STUB_IN_RECOVERY: inRecovery },
      // An inactive slot of the cluster on the local server (a former primary's).
      psql: 'case "$query" in *"NOT active"*) echo fdb_x_pg_replica_1; exit 0 ;; esac',
      // SIGTERM after the first pass (about 1 s: the reload waits 1 s), before the second; the agent exits 0 on it.
      timeoutMs: 4000,
    });

    test('on the primary: reloads the configuration and applies setup.sql', () => {
      const run = pass('f');
      expect(run.status).toBe(0);
      expect(reloads(run)).toBe(1);
      expect(applies(run)).toBe(1);
      expect(drops(run)).toBe(0);
    }, SLOW);

    test('on a standby: reloads the configuration, never applies setup.sql, drops the slots a former primary kept', () => {
      const run = pass('t');
      expect(run.status).toBe(0);
      expect(reloads(run)).toBe(1);
      expect(applies(run)).toBe(0);
      expect(drops(run)).toBe(1);
    }, SLOW);
    test('while postgres.sh prepares the data directory ($RUN_DIR/preparing: its own local server on the socket), neither reloads nor applies setup.sql', () => {
      const run = runScript('agent.sh', {
        pod: 'x-pg-primary-0',
        env: { AGENT_INTERVAL: '5', STUB_IN_RECOVERY: 'f' },
        timeoutMs: 4000,
        prepare: (p) => fs.writeFileSync(path.join(p.runDir, 'preparing'), ''),
      });
      expect(run.status).toBe(0);
      expect(reloads(run)).toBe(0);
      expect(applies(run)).toBe(0);
    }, SLOW);
  });
});

describe('maintenance sessions', () => {
  test('commit locally: a new primary\'s agent never waits for a synchronous standby that waits for its slot', () => {
    const run = runScript('', { pod: 'x-pg-primary-0', snippet: 'local_sql -c "SELECT 1"' });
    expect(run.status).toBe(0);
    expect(run.psqlOptions()[0]).toMatch(/^-c synchronous_commit=local /);
  });

  test('give up instead of waiting without end: a lock timeout and a statement timeout on the local server and on the primary', () => {
    const run = runScript('', { pod: 'x-pg-replica-0', snippet: 'local_sql -c "SELECT 1"; leader_sql -c "SELECT 1"' });
    expect(run.status).toBe(0);
    const options = run.psqlOptions();
    expect(options).toHaveLength(2);
    for (const o of options) {
      expect(o).toContain('-c lock_timeout=10s');
      expect(o).toContain('-c statement_timeout=120s');
    }
  });

  test('every psql call of one agent pass on the primary carries both timeouts', () => {
    const run = runScript('', {
      pod: 'x-pg-primary-0',
      snippet: 'eval "$(sed \'/^while true; do$/,$d\' "$CONFIG_DIR/agent.sh")"; reconcile_config; reconcile_setup; reconcile_slots',
    });
    const options = run.psqlOptions();
    expect(options.length).toBeGreaterThan(3);
    expect(options.filter((o) => !/lock_timeout=10s/.test(o) || !/statement_timeout=120s/.test(o))).toEqual([]);
  }, SLOW);
});

describe('with TLS (TLS_DIR set, as the tls prop does): every connection to another member verifies its certificate', () => {
  /** The three files of the Secret, in $STUB_DIR/tls. */
  const withTls = (p: Paths) => {
    const dir = path.join(p.dir, 'tls');
    fs.mkdirSync(dir);
    for (const f of ['tls.crt', 'tls.key', 'ca.crt']) fs.writeFileSync(path.join(dir, f), `${f} 1\n`);
  };
  const tlsEnv = (dir: string) => ({ TLS_DIR: path.join(dir, 'tls') });
  const verifyFull = (dir: string) => ` sslmode=verify-full sslrootcert=${path.join(dir, 'tls', 'ca.crt')}`;
  /** Only the path reaches the stubs' arguments. */
  const tlsDir = '/etc/pod';

  test('conninfo ends with sslmode=verify-full and the mounted ca.crt; without TLS_DIR it names no sslmode', () => {
    const on = runScript('', { pod: 'x-pg-replica-0', snippet: 'conninfo x-pg-rw', env: { TLS_DIR: '/etc/t' } });
    const off = runScript('', { pod: 'x-pg-replica-0', snippet: 'conninfo x-pg-rw' });
    expect(on.read('stdout')).toMatch(/^host=x-pg-rw .* sslmode=verify-full sslrootcert=\/etc\/t\/ca\.crt$/);
    expect(off.read('stdout')).not.toContain('sslmode');
  });

  test('a standby clones (pg_basebackup) and streams (primary_conninfo) with verify-full', () => {
    const run = runScript('postgres.sh', { pod: 'x-pg-replica-0', env: tlsEnv(tlsDir) });
    const [clone] = run.calls('pg_basebackup');
    expect(clone[clone.indexOf('-d') + 1]).toMatch(/^host=x-pg-rw /);
    expect(clone[clone.indexOf('-d') + 1].endsWith(verifyFull(tlsDir))).toBe(true);
    expect(run.calls('postgres')[0].find((a) => a.startsWith('primary_conninfo='))).toContain(verifyFull(tlsDir));
  }, SLOW);

  test('a former primary rewinds (pg_rewind --source-server) with verify-full', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => { killedServerData(p.pgdata, 1); setLeader(p, 'x-pg-replica-1'); },
      env: tlsEnv(tlsDir),
    });
    expect(run.calls('pg_rewind')[0].find((a) => a.startsWith('--source-server='))).toContain(verifyFull(tlsDir));
  }, SLOW);

  test('a standby about to promote asks the other members at <pod>.<statefulset> with verify-full (the certificate names them)', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-replica-1',
      prepare: (p) => { standbyData(p.pgdata); setLeader(p, 'x-pg-replica-1'); },
      env: tlsEnv(tlsDir),
    });
    const asked = run.calls('psql').map((a) => a[a.indexOf('-d') + 1]).filter((d) => /host=x-pg-\S+\.x-pg-/.test(d ?? ''));
    expect(asked).toHaveLength(2);
    for (const d of asked) expect(d).toContain(verifyFull(tlsDir));
  }, SLOW);

  describe('agent.sh', () => {
    const agent = (snippet: string) => runScript('', {
      pod: 'x-pg-primary-0',
      prepare: withTls,
      snippet: `TLS_DIR=$STUB_DIR/tls; eval "$(sed '/^while true; do$/,$d' "$CONFIG_DIR/agent.sh")"; ${snippet}`,
    });
    const reloads = (run: Run) => run.calls('psql').filter((a) => a.includes('SELECT pg_reload_conf()')).length;

    test('reloads (pg_reload_conf) when the mounted certificate, key or CA changes, saying so, and not otherwise', () => {
      const run = agent([
        'reconcile_config', 'reconcile_config',
        'echo renewed > "$TLS_DIR/tls.crt"; echo renewed > "$TLS_DIR/tls.key"', 'reconcile_config', 'reconcile_config',
        'echo new-ca >> "$TLS_DIR/ca.crt"', 'reconcile_config',
      ].join('; '));
      expect(run.status).toBe(0);
      expect(reloads(run)).toBe(3);
      expect(run.stderr.split('TLS certificate changed: reloaded').length - 1).toBe(2);
      expect(run.stderr).not.toContain('configuration changed');
    }, SLOW);

    test('an unreadable certificate is a warning and no reload (the Secret may be mid-update); it reloads once readable', () => {
      const run = agent([
        'reconcile_config',
        'mv "$TLS_DIR/tls.crt" "$TLS_DIR/gone"', 'reconcile_config || true',
        'mv "$TLS_DIR/gone" "$TLS_DIR/tls.crt"; echo renewed > "$TLS_DIR/tls.crt"', 'reconcile_config',
      ].join('; '));
      expect(run.status).toBe(0);
      expect(run.stderr).toContain('WARNING: cannot read the TLS certificate files');
      expect(reloads(run)).toBe(2);
    }, SLOW);
  });
});

describe('postgres.sh: the cluster\'s Lease (fencing.sh)', () => {
  /** The lease sidecar's last renewal, `ageSeconds` before the stub clock's now. */
  const renewed = (p: Paths, ageSeconds: number) => fs.writeFileSync(path.join(p.runDir, 'lease-renewed'), `${1_000_000 - ageSeconds * 1000}\n`);

  describe('a primary whose last renewal grows older than the renew deadline (cut off from the API server)', () => {
    // The first server start makes the last renewal 11 s old (LEASE_RENEW_DEADLINE is 10), then
    // runs until SIGINT.
    const run = lazy(() => runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => fs.writeFileSync(path.join(p.pgdata, 'PG_VERSION'), '15\n'),
      stubs: {
        postgres: firstStartThen('echo 989000 > "$STATE_DIR/lease-renewed"'),
      },
    }));

    test('stops its server at once (SIGINT: fast shutdown, sessions cut, new ones refused) saying why, with the leader key unchanged', () => {
      expect(run().stderr).toMatch(/FENCING: the cluster's Lease was last renewed 11000 ms ago \(bound: 10 s/);
      expect((run().read('calls/signals') ?? '').trim().split('\n').map((l) => l.split(' ')[0])).toEqual(['INT']);
    }, SLOW);

    test('then starts over and serves again only once it holds the Lease: no second server start while it does not', () => {
      expect(run().calls('postgres')).toHaveLength(1);
      expect(run().stderr).toContain('waiting for the cluster\'s Lease');
      expect(run().stderr).toContain('FATAL: this pod did not get the cluster\'s Lease within 3s');
      // The lease sidecar may release the Lease only once this file is gone (the server stopped).
      expect(fs.existsSync(path.join(run().runDir, 'primary'))).toBe(false);
    });
  });

  test('while its primary server runs, postgres.sh keeps $STATE_DIR/primary fresh (the lease sidecar keeps renewing for it even after the key moved)', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => fs.writeFileSync(path.join(p.pgdata, 'PG_VERSION'), '15\n'),
      stubs: { postgres: 'sleep 1; cp "$STATE_DIR/primary" "$STUB_DIR/primary-while-serving"; exit 3' },
    });
    expect(run.read('primary-while-serving')).toBe('1000000\n');
    expect(fs.existsSync(path.join(run.runDir, 'primary'))).toBe(false);
  }, SLOW);

  test('a pod named primary that does not hold the Lease never starts its server, initdb included', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => { clusterState(p, 'new'); renewed(p, 30); },
    });
    expect(run.stderr).toContain('FATAL: this pod did not get the cluster\'s Lease within 3s');
    expect(run.calls('initdb')).toEqual([]);
    expect(run.calls('postgres')).toEqual([]);
  }, SLOW);

  describe('a standby named leader that does not hold the Lease yet', () => {
    // The first server start moves the key to this pod and removes the renewal; 2 s later the
    // sidecar gets the Lease (recorded in the sequence).
    const run = lazy(() => runScript('postgres.sh', {
      pod: 'x-pg-replica-1',
      prepare: (p) => standbyData(p.pgdata),
      stubs: {
        postgres: firstStartThen('rm -f "$STATE_DIR/lease-renewed"; printf \'%s\\n\' x-pg-replica-1 > "$CONFIG_DIR/leader"; ( sleep 2; echo "lease granted" >> "$STUB_DIR/calls/sequence"; echo 1000000 > "$STATE_DIR/lease-renewed" ) &'),
      },
    }));

    test('streams on, saying once that it waits for the Lease', () => {
      expect(run().stderr.split('not promoting before this pod holds the cluster\'s Lease').length - 1).toBe(1);
    }, SLOW);

    test('stops and promotes only after it got the Lease', () => {
      const sequence = run().sequence();
      const granted = sequence.indexOf('lease granted');
      expect(granted).toBeGreaterThan(0);
      expect(sequence.indexOf('signal INT')).toBeGreaterThan(granted);
      expect(sequence.findIndex((c) => /^pg_ctl .*promote/.test(c))).toBeGreaterThan(granted);
    });
  });

  describe('a member that cannot be asked blocks a promotion (only "in recovery", "shutting down" and "connection refused" say it takes no writes)', () => {
    const promote = (error: string, expiredHolder?: string) => runScript('postgres.sh', {
      pod: 'x-pg-replica-1',
      prepare: (p) => {
        standbyData(p.pgdata);
        setLeader(p, 'x-pg-replica-1');
        if (expiredHolder) fs.writeFileSync(path.join(p.runDir, 'lease-expired-holder'), `${expiredHolder}\n`);
      },
      psql: `if [ "$host" = x-pg-primary-0.x-pg-primary ]; then echo ${JSON.stringify(error)} >&2; exit 2; fi`,
      env: { PROMOTE_WAIT_SECONDS: '2' },
    });
    const promoted = (run: Run) => run.calls('pg_ctl').some((a) => a.includes('promote'));

    test.each([
      'psql: error: connection to server at "x-pg-primary-0.x-pg-primary" (10.0.0.5), port 5432 failed: timeout expired',
      'psql: error: connection to server at "x-pg-primary-0.x-pg-primary" (10.0.0.5), port 5432 failed: FATAL:  sorry, too many clients already',
      'psql: error: connection to server at "x-pg-primary-0.x-pg-primary" (10.0.0.5), port 5432 failed: SSL error: certificate verify failed',
      'psql: error: could not translate host name "x-pg-primary-0.x-pg-primary" to address: Name or service not known',
      'psql: error: connection to server at "x-pg-primary-0.x-pg-primary" (10.0.0.5), port 5432 failed: FATAL:  password authentication failed for user "replicator"',
    ])('%s: no promotion', (error) => {
      const run = promote(error);
      expect(run.stderr).toContain('not promoting yet: x-pg-primary-0 cannot be asked (');
      expect(run.stderr).toContain('FATAL: not promoting after 2s');
      expect(promoted(run)).toBe(false);
    }, SLOW);

    test('connection refused (no server listens there): it promotes', () => {
      const run = promote('psql: error: connection to server at "x-pg-primary-0.x-pg-primary" (10.0.0.5), port 5432 failed: Connection refused');
      expect(promoted(run)).toBe(true);
    }, SLOW);

    test('a timeout from the former holder whose Lease this pod took after it went unrenewed (it fenced itself): it promotes', () => {
      const run = promote('psql: error: connection to server at "x-pg-primary-0.x-pg-primary" (10.0.0.5), port 5432 failed: timeout expired', 'x-pg-primary-0');
      expect(promoted(run)).toBe(true);
    }, SLOW);
  });

  describe('former primary data named primary again starts only while no member takes writes or is on a later timeline', () => {
    const start = (answer: string) => runScript('postgres.sh', {
      pod: 'x-pg-primary-0',
      prepare: (p) => fs.writeFileSync(path.join(p.pgdata, 'PG_VERSION'), '15\n'),
      psql: `if [ "$host" = x-pg-replica-0.x-pg-replica ]; then echo ${JSON.stringify(answer)}; exit 0; fi`,
      stubs: { postgres: 'exit 3' },
      env: { PROMOTE_WAIT_SECONDS: '2' },
    });

    test('a member still writable (the other side of a switchover whose rejoin failed): it never starts', () => {
      const run = start('f 0/3000000 3');
      expect(run.stderr).toContain('not starting as primary yet: x-pg-replica-0 still accepts writes');
      expect(run.stderr).toContain('FATAL: not starting as primary after 2s');
      expect(run.calls('postgres')).toEqual([]);
    }, SLOW);

    test('a standby on a later timeline than this data\'s (pg_controldata: 2): it never starts', () => {
      const run = start('t 0/1000000 3');
      expect(run.stderr).toContain('x-pg-replica-0 has received WAL up to 0/1000000 on timeline 3, this pod only up to timeline 2');
      expect(run.calls('postgres')).toEqual([]);
    }, SLOW);

    test('standbys on its own timeline, whatever their WAL position (this data is where it came from): it starts', () => {
      const run = start('t 9/0 2');
      expect(run.calls('postgres')).toHaveLength(1);
    }, SLOW);

    test('the leader key names another pod while it waits: it stops waiting at once and exits to start over (as that pod\'s standby)', () => {
      const run = runScript('postgres.sh', {
        pod: 'x-pg-primary-0',
        prepare: (p) => fs.writeFileSync(path.join(p.pgdata, 'PG_VERSION'), '15\n'),
        psql: 'if [ "$host" = x-pg-replica-0.x-pg-replica ]; then printf \'%s\\n\' x-pg-replica-0 > "$CONFIG_DIR/leader"; echo "f 0/3000000 3"; exit 0; fi',
        stubs: { postgres: 'exit 3' },
        env: { PROMOTE_WAIT_SECONDS: '30' },
      });
      expect(run.stderr).toContain('not starting as primary yet: x-pg-replica-0 still accepts writes');
      expect(run.stderr).toContain('the leader key now names x-pg-replica-0: not starting as primary; starting over');
      expect(run.stderr).not.toContain('not starting as primary after');
      expect(run.status).toBe(1);
      expect(run.calls('postgres')).toEqual([]);
    }, SLOW);
  });

  test('promotion: the leader key names another pod while a member blocks it: the server started for the promotion stops, no promote, and it exits to start over', () => {
    const run = runScript('postgres.sh', {
      pod: 'x-pg-replica-1',
      prepare: (p) => {
        standbyData(p.pgdata);
        setLeader(p, 'x-pg-replica-1');
      },
      psql: 'if [ "$host" = x-pg-primary-0.x-pg-primary ]; then printf \'%s\\n\' x-pg-replica-0 > "$CONFIG_DIR/leader"; echo f; exit 0; fi',
      env: { PROMOTE_WAIT_SECONDS: '30' },
    });
    expect(run.stderr).toContain('not promoting yet: x-pg-primary-0 still accepts writes');
    expect(run.stderr).toContain('the leader key now names x-pg-replica-0: not starting as primary; starting over');
    expect(run.calls('pg_ctl').some((a) => a.includes('promote'))).toBe(false);
    expect(run.calls('pg_ctl').some((a) => a.includes('stop'))).toBe(true);
    expect(run.status).toBe(1);
  }, SLOW);
});
