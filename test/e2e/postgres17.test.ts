import * as fs from 'fs';
import * as path from 'path';
import { RootfsSpec } from './harness/rootfs';
import { execInRootfs, RootfsProcess, RootfsResult, runInRootfs, spawnInRootfs } from './harness/rootfs-run';
import { HOST_POSTGRES, requireRoots, Sandbox, show } from './roots';

/**
 * PostgreSQL 17 with the real DocumentDB 0.107 from the postgres-17 root (the userland of
 * ghcr.io/ferretdb/postgres-documentdb:17-0.107.0-ferretdb-2.7.0), as the image runs it: a
 * read-only root filesystem, the data directory and the socket directory on volumes, the
 * image's preload settings; and the exporter root's postgres_exporter scraping it.
 */
const PG_ENV = {
  PATH: '/usr/lib/postgresql/17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  PGDATA: '/var/lib/postgresql/data',
  HOME: '/var/lib/postgresql',
};
const SOCKETS = '/var/run/postgresql';
/** What the image's 10-preload.sh adds; no documentdb.indexBuildScheduleInSec override. */
const IMAGE_SETTINGS = ['shared_preload_libraries=pg_cron,pg_documentdb_core,pg_documentdb', 'cron.database_name=postgres'];

let sb: Sandbox;
let server: RootfsProcess | undefined;
let serverSpec: RootfsSpec;
let exporter: RootfsProcess | undefined;
let dataDir: string;
let socketDir: string;
let logFile: string;

/** A container of the postgres-17 root as the postgres user, read-only, with both volumes. */
function pgContainer(): Partial<RootfsSpec> {
  return {
    uid: HOST_POSTGRES.uid,
    gid: HOST_POSTGRES.gid,
    readOnlyRootFilesystem: true,
    noNewPrivileges: true,
    dropAllCapabilities: true,
    volumes: [{ hostPath: dataDir, containerPath: PG_ENV.PGDATA }, { hostPath: socketDir, containerPath: SOCKETS }],
  };
}

function psql(sql: string, user = 'postgres'): Promise<RootfsResult> {
  return sb.run('postgres-17', ['psql', '-h', SOCKETS, '-U', user, '-d', 'postgres', '-XAt', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    pgContainer(), { env: PG_ENV });
}

async function sqlValue(sql: string): Promise<string> {
  const r = await psql(sql);
  if (r.code !== 0) throw new Error(`${sql}\n${show(r)}`);
  return r.stdout.trim();
}

/** Polls `check` every 250 ms until it returns true; throws with `why()` after `ms`. */
async function until(ms: number, check: () => Promise<boolean>, why: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(why());
    await new Promise((r) => setTimeout(r, 250));
  }
}

const serverLog = (): string => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');

beforeAll(async () => {
  requireRoots('postgres-17', 'exporter', 'curl');
  sb = Sandbox.create('fdb-pg17');
  dataDir = sb.volume('data', HOST_POSTGRES, 0o700);
  socketDir = sb.volume('run', HOST_POSTGRES, 0o2775);
  logFile = path.join(sb.dir, 'postgres.log');
  const init = await sb.run('postgres-17', ['initdb', '-D', PG_ENV.PGDATA, '-U', 'postgres', '--auth=trust'], pgContainer(),
    { env: PG_ENV, timeoutMs: 120_000 });
  if (init.code !== 0) throw new Error(`initdb failed in the postgres-17 root\n${show(init)}`);
  const fd = fs.openSync(logFile, 'a');
  serverSpec = sb.spec('postgres-17', pgContainer());
  server = spawnInRootfs(serverSpec, ['postgres', '-D', PG_ENV.PGDATA, '-c', 'listen_addresses=localhost',
    '-c', `unix_socket_directories=${SOCKETS}`, ...IMAGE_SETTINGS.flatMap((s) => ['-c', s])], fd, { env: PG_ENV });
  fs.closeSync(fd);
  await until(60_000, async () => {
    if (server!.proc.exitCode !== null) throw new Error(`postgres exited (${server!.proc.exitCode})\n${serverLog()}`);
    return (await sb.run('postgres-17', ['pg_isready', '-h', SOCKETS], pgContainer(), { env: PG_ENV })).code === 0;
  }, () => `PostgreSQL 17 did not become ready\n${serverLog()}`);
}, 180_000);

afterAll(async () => {
  await exporter?.stop(2000);
  await server?.stop(10_000, 'SIGINT');
  sb?.destroy();
}, 30_000);

describe('PostgreSQL 17 from the postgres-17 root', () => {
  test('serves version 17 from a read-only root with its data directory on a volume', async () => {
    expect(await sqlValue('SELECT version()')).toMatch(/^PostgreSQL 17\.\d+/);
    expect(await sqlValue('SHOW data_directory')).toBe(PG_ENV.PGDATA);
    expect(fs.existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
    const w = await sb.run('postgres-17', ['touch', '/usr/probe'], pgContainer(), { env: PG_ENV });
    expect(w.stderr).toContain('Read-only file system');
  });

  test('an exec in the server\'s container runs as its user and sees postgres as pid 1', async () => {
    const r = await execInRootfs(serverSpec, server!, ['/bin/sh', '-c', 'id -u; tr "\\0" " " < /proc/1/cmdline'], { env: PG_ENV });
    expect(r.code).toBe(0);
    const [uid, cmdline] = r.stdout.split('\n');
    expect(Number(uid)).toBe(HOST_POSTGRES.uid);
    expect(cmdline).toMatch(/^postgres -D \/var\/lib\/postgresql\/data /);
  });

  test('CREATE EXTENSION documentdb CASCADE works with the image\'s settings, scheduling pg_cron 1.6 jobs in seconds', async () => {
    const r = await psql('CREATE EXTENSION documentdb CASCADE');
    expect(show(r)).toMatch(/^exit 0/);
    expect(await sqlValue("SELECT extversion FROM pg_extension WHERE extname = 'documentdb'")).toBe('0.107-0');
    expect(await sqlValue("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")).toMatch(/^1\.6/);
    const schedules = await sqlValue("SELECT string_agg(schedule, ',') FROM cron.job WHERE jobname LIKE '%index_build_task%'");
    expect(schedules).toMatch(/^\d+ seconds(,\d+ seconds)*$/);
    await sqlValue('SELECT documentdb_api.insert_one(\'db\', \'c\', \'{"_id": 1, "a": 1}\')');
    const count = await sqlValue("SELECT documentdb_core.bson_to_json_string(document) FROM documentdb_api.count_query('db', '{\"count\": \"c\"}')");
    expect(JSON.parse(count)).toMatchObject({ n: { $numberInt: '1' }, ok: { $numberDouble: '1.0' } });
  });

  test('a CREATEROLE role grants documentdb_admin_role only with ADMIN OPTION on it', async () => {
    await sqlValue('CREATE ROLE creator LOGIN CREATEROLE; GRANT USAGE ON SCHEMA documentdb_core TO creator');
    const denied = await psql('CREATE ROLE newrole1; GRANT documentdb_admin_role TO newrole1', 'creator');
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('permission denied to grant role "documentdb_admin_role"');
    await sqlValue('GRANT documentdb_admin_role TO creator WITH ADMIN OPTION');
    const granted = await psql('CREATE ROLE newrole2; GRANT documentdb_admin_role TO newrole2', 'creator');
    expect(show(granted)).toMatch(/^exit 0/);
    expect(await sqlValue("SELECT pg_has_role('newrole2', 'documentdb_admin_role', 'MEMBER')")).toBe('t');
  });
});

describe('postgres_exporter from the exporter root', () => {
  test('reports version 0.17.1', async () => {
    const r = await sb.run('exporter', ['postgres_exporter', '--version'], { readOnlyRootFilesystem: true, uid: 65534, gid: 65534 });
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/postgres_exporter, version 0\.17\.1 /);
  });

  test('scrapes the PostgreSQL 17 server over its Unix socket: pg_up 1', async () => {
    const fd = fs.openSync(path.join(sb.dir, 'exporter.log'), 'a');
    exporter = spawnInRootfs(sb.spec('exporter', {
      readOnlyRootFilesystem: true,
      uid: 65534,
      gid: 65534,
      noNewPrivileges: true,
      dropAllCapabilities: true,
      volumes: [{ hostPath: socketDir, containerPath: SOCKETS, readOnly: true }],
    }), ['postgres_exporter', '--web.listen-address=127.0.0.1:9187'], fd,
    { env: { PATH: '/usr/bin:/bin', DATA_SOURCE_NAME: `host=${SOCKETS} user=postgres dbname=postgres sslmode=disable` } });
    fs.closeSync(fd);
    let metrics: RootfsResult | undefined;
    await until(30_000, async () => {
      // From the curl root in the same network namespace, as a Prometheus scrape would.
      metrics = await runInRootfs(sb.spec('curl', { uid: 100, gid: 101 }), ['curl', '-fsS', 'http://127.0.0.1:9187/metrics']);
      return metrics.code === 0;
    }, () => `no metrics from postgres_exporter\n${metrics ? show(metrics) : ''}\n${fs.readFileSync(path.join(sb.dir, 'exporter.log'), 'utf8')}`);
    expect(metrics!.stdout).toMatch(/^pg_up 1$/m);
  });
});
