/**
 * The real postgres_exporter 0.17.1 (the exporter root, the synthesized image's version) as the
 * synthesized `metrics` sidecar of real PostgreSQL 17 pods: the harness runs the container exactly
 * as synthesized (its args, env, volumes and user) in its image's root. Every number asserted is
 * read from the exporter's /metrics, scraped from inside the pod.
 */
import { Testing } from 'cdk8s';
import { NAME, PgCluster, PRIMARY, PRIMARY_STS, replica, synthCluster } from './fixture';
import { TestCa } from './test-ca';
import { FerretDBCluster, FerretDBClusterProps, PostgresTls, slotNameForPod } from '../../src';

jest.setTimeout(300_000);

const MB = 1024 * 1024;
const STANDBY = replica(0);
const SLOT = slotNameForPod(STANDBY);

interface Sample { readonly name: string; readonly labels: { [key: string]: string }; readonly value: number }

/** The Prometheus text format, enough of it for the exporter's output. */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: { [key: string]: string } = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

let pg: PgCluster | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
});

/**
 * The pod's exporter, scraped from inside the pod (each pod has its own network namespace) with
 * bash's /dev/tcp: the postgres image has bash and no HTTP client.
 */
async function scrape(pod: string): Promise<Sample[]> {
  const get = 'exec 3<>/dev/tcp/127.0.0.1/9187 && printf "GET /metrics HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n" >&3 && cat <&3';
  const r = await pg!.h.exec(pod, 'postgres', ['bash', '-c', get], { timeoutMs: 15_000 });
  const [head, ...body] = r.stdout.split('\r\n\r\n');
  if (r.code !== 0 || !/^HTTP\/1\.[01] 200 /.test(head)) throw new Error(`scrape of ${pod} failed: exit ${r.code} ${head.slice(0, 200)} ${r.stderr}`);
  return parseMetrics(body.join('\r\n\r\n'));
}

/** The one sample of `name` whose labels include `labels`; undefined when there is none. */
function value(samples: Sample[], name: string, labels: { [key: string]: string } = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** Polls the pod's exporter until `check` holds for a scrape; returns that scrape. */
async function waitMetrics(pod: string, what: string, check: (s: Sample[]) => boolean, timeoutMs = 60_000): Promise<Sample[]> {
  let last: Sample[] = [];
  try {
    await pg!.h.waitUntil(`${pod}: ${what}`, timeoutMs, async () => {
      last = await scrape(pod);
      return check(last);
    });
  } catch (e) {
    const ours = last.filter((s) => s.name.startsWith('fdb_pg_') || s.name === 'pg_up').map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`);
    throw new Error(`${(e as Error).message}\nlast scrape:\n${ours.join('\n')}\nexporter log:\n${pg!.h.logs(pod, 'metrics').slice(-2000)}`);
  }
  return last;
}

/** About `mb` MB of WAL on the primary (rows of 500 bytes), then a checkpoint. */
async function writeWal(mb: number): Promise<void> {
  await pg!.sql(PRIMARY, `CREATE TABLE IF NOT EXISTS filler (v text); INSERT INTO filler SELECT repeat('x', 500) FROM generate_series(1, ${mb * 1500}); CHECKPOINT`, 120_000);
}

test('the exporter sidecar reports recovery state, lag and retained WAL that rise and fall, and a lost slot', async () => {
  pg = await PgCluster.boot({
    replicas: 1,
    monitoring: {},
    wal: { maxSlotWalKeepSize: '64MB', walKeepSize: '16MB' },
    parameters: { max_wal_size: '96MB', min_wal_size: '32MB' },
  });
  const c = pg;
  await c.waitStreaming(PRIMARY, [STANDBY]);

  // pg_is_in_recovery per pod, the WAL receiver, the walsender and the slot, all healthy.
  let p = await waitMetrics(PRIMARY, 'primary reports its standby streaming', (s) =>
    value(s, 'fdb_pg_replication_streaming', { standby: STANDBY }) === 1 && value(s, 'fdb_pg_slot_active', { slot: SLOT }) === 1);
  expect(value(p, 'pg_up')).toBe(1);
  expect(value(p, 'fdb_pg_server_in_recovery')).toBe(0);
  expect(value(p, 'fdb_pg_slot_status_info', { slot: SLOT, wal_status: 'reserved' })).toBe(1);
  expect(value(p, 'fdb_pg_server_max_slot_wal_keep_size_bytes')).toBe(64 * MB);
  expect(value(p, 'fdb_pg_slot_safe_wal_size_bytes', { slot: SLOT })).toBeGreaterThan(32 * MB);
  expect(value(p, 'fdb_pg_server_wal_directory_bytes')).toBeGreaterThanOrEqual(16 * MB);
  expect(value(p, 'fdb_pg_server_wal_position_bytes')).toBeGreaterThan(0);
  expect(value(p, 'fdb_pg_server_connections')).toBeGreaterThanOrEqual(1);
  let r = await waitMetrics(STANDBY, 'standby reports streaming', (s) => value(s, 'fdb_pg_wal_receiver_streaming') === 1);
  expect(value(r, 'fdb_pg_server_in_recovery')).toBe(1);
  // Primary-only queries return nothing on a standby (and do not fail the scrape).
  expect(r.filter((s) => s.name.startsWith('fdb_pg_slot') || s.name.startsWith('fdb_pg_replication_'))).toEqual([]);
  // The exporter logs in as its own role: pg_monitor, not a superuser.
  expect(await c.sql(PRIMARY, `SELECT r.rolsuper || ',' || pg_has_role('postgres_exporter', 'pg_monitor', 'MEMBER')
    FROM pg_roles r WHERE r.rolname = 'postgres_exporter'`)).toBe('false,true');
  expect(await c.sql(PRIMARY, "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'postgres_exporter'")).toBe('t');

  // Replay paused on the standby: the replay lag grows on both sides, then falls once resumed.
  await c.sql(STANDBY, 'SELECT pg_wal_replay_pause()');
  await writeWal(8);
  p = await waitMetrics(PRIMARY, 'replay lag above 4MB', (s) => (value(s, 'fdb_pg_replication_replay_lag_bytes', { standby: STANDBY }) ?? 0) > 4 * MB);
  expect(value(p, 'fdb_pg_replication_flush_lag_bytes', { standby: STANDBY })).toBeLessThan(value(p, 'fdb_pg_replication_replay_lag_bytes', { standby: STANDBY })!);
  r = await waitMetrics(STANDBY, 'received but not replayed above 4MB', (s) => (value(s, 'fdb_pg_wal_receiver_replay_pending_bytes') ?? 0) > 4 * MB);
  await c.sql(STANDBY, 'SELECT pg_wal_replay_resume()');
  await waitMetrics(PRIMARY, 'replay lag back under 1MB', (s) => (value(s, 'fdb_pg_replication_replay_lag_bytes', { standby: STANDBY }) ?? Infinity) < MB);
  await waitMetrics(STANDBY, 'nothing left to replay', (s) => value(s, 'fdb_pg_wal_receiver_replay_pending_bytes') === 0);

  // Standby stopped: its slot goes inactive and retains the WAL written meanwhile.
  p = await scrape(PRIMARY);
  const before = value(p, 'fdb_pg_slot_retained_bytes', { slot: SLOT })!;
  const safeBefore = value(p, 'fdb_pg_slot_safe_wal_size_bytes', { slot: SLOT })!;
  await c.h.deletePod(STANDBY, { recreate: false });
  await waitMetrics(PRIMARY, 'slot inactive', (s) => value(s, 'fdb_pg_slot_active', { slot: SLOT }) === 0);
  await writeWal(24);
  p = await scrape(PRIMARY);
  const held = value(p, 'fdb_pg_slot_retained_bytes', { slot: SLOT })!;
  expect(held).toBeGreaterThan(before + 16 * MB);
  expect(value(p, 'fdb_pg_replication_streaming', { standby: STANDBY })).toBeUndefined();
  expect(value(p, 'fdb_pg_slot_safe_wal_size_bytes', { slot: SLOT })).toBeLessThan(safeBefore - 8 * MB);

  // Back: it catches up, the slot is active again and releases the WAL.
  await c.h.startPod(STANDBY);
  await c.waitStreaming(PRIMARY, [STANDBY]);
  p = await waitMetrics(PRIMARY, 'retained WAL falls after catch-up', (s) =>
    value(s, 'fdb_pg_slot_active', { slot: SLOT }) === 1 && value(s, 'fdb_pg_slot_retained_bytes', { slot: SLOT })! < 4 * MB);
  expect(value(p, 'fdb_pg_slot_retained_bytes', { slot: SLOT })).toBeLessThan(held / 4);

  // Stopped for longer than max_slot_wal_keep_size allows: the slot is lost.
  await c.h.deletePod(STANDBY, { recreate: false });
  await waitMetrics(PRIMARY, 'slot inactive', (s) => value(s, 'fdb_pg_slot_active', { slot: SLOT }) === 0);
  for (let i = 0; i < 8; i++) {
    await writeWal(32);
    if ((await c.sql(PRIMARY, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = '${SLOT}'`)) === 'lost') break;
  }
  p = await waitMetrics(PRIMARY, 'slot reported lost', (s) => value(s, 'fdb_pg_slot_status_info', { slot: SLOT, wal_status: 'lost' }) === 1);
  expect(value(p, 'fdb_pg_slot_status_info', { slot: SLOT, wal_status: 'reserved' })).toBeUndefined();

  // The standby comes back, finds its slot lost and re-clones: the primary reports the base backup.
  await c.h.startPod(STANDBY);
  let cloning: Sample[] = [];
  await c.h.waitUntil('base backup seen by the primary exporter', 120_000, async () => {
    cloning = await scrape(PRIMARY);
    return value(cloning, 'fdb_pg_basebackup_running', { standby: STANDBY }) === 1;
  });
  expect(value(cloning, 'fdb_pg_basebackup_streamed_bytes', { standby: STANDBY })).toBeGreaterThanOrEqual(0);
  await c.waitStreaming(PRIMARY, [STANDBY], 180_000);
  await waitMetrics(PRIMARY, 'base backup over, slot reserved again', (s) =>
    value(s, 'fdb_pg_basebackup_running', { standby: STANDBY }) === undefined
    && value(s, 'fdb_pg_slot_status_info', { slot: SLOT, wal_status: 'reserved' }) === 1);
});

test('the primary pod\'s exporter tells whether the state ConfigMap records this server\'s system identifier: 1, then 0 while it records another, a growing state age while the ConfigMap is gone, 1 again once re-applied', async () => {
  const props: FerretDBClusterProps = { replicas: 1, monitoring: {} };
  pg = await PgCluster.boot(props);
  const c = pg;
  const state = `${PRIMARY_STS}-state`;
  const recorded = (s: Sample[]) => value(s, 'fdb_pg_cluster_identity_recorded');
  const age = (s: Sample[]) => value(s, 'fdb_pg_cluster_identity_state_age_seconds');
  let p = await waitMetrics(PRIMARY, 'identity recorded', (s) => recorded(s) === 1);
  expect(age(p)).toBeLessThan(30);
  // The replicas' pods have no state sidecar: no sample, and the scrape does not fail.
  const r = await scrape(STANDBY);
  expect(value(r, 'pg_up')).toBe(1);
  expect([recorded(r), age(r)]).toEqual([undefined, undefined]);

  // The ConfigMap as applied names another database: 0 (and the sidecar says so).
  const objects = synthCluster(props) as any[];
  const withOther = objects.map((o) => o.kind === 'ConfigMap' && o.metadata.name === state ? { ...o, data: { ...o.data, systemIdentifier: '1' } } : o);
  await c.h.apply(withOther, { wait: false });
  p = await waitMetrics(PRIMARY, 'another identity recorded', (s) => recorded(s) === 0);
  expect(c.h.logs(PRIMARY, 'state')).toMatch(/WARNING: this pod's data has system identifier \d+, the ConfigMap records 1/);
  // Applied without it again (the applied key goes): the sidecar records this server's identifier.
  await c.h.apply(objects, { wait: false });
  await waitMetrics(PRIMARY, 'identity recorded again', (s) => recorded(s) === 1);

  // The ConfigMap is deleted: the reading grows old; re-applied, it is fresh and recorded.
  expect(c.h.deleteConfigMap(state)).toBe(true);
  p = await waitMetrics(PRIMARY, 'state reading older than 20 s', (s) => (age(s) ?? 0) > 20);
  expect(c.h.logs(PRIMARY, 'state')).toMatch(/reading ConfigMap \S+ failed with HTTP 404/);
  await c.h.apply(objects, { wait: false });
  p = await waitMetrics(PRIMARY, 'fresh reading, identity recorded', (s) => recorded(s) === 1 && (age(s) ?? Infinity) < 15);
  const id = await c.sql(PRIMARY, 'SELECT system_identifier FROM pg_control_system()');
  expect(c.h.getConfigMap(state)?.systemIdentifier).toBe(id);

  // The exporter's role calls the function and reads no file by itself.
  const direct = await c.h.exec(PRIMARY, 'postgres', ['psql', '-X', '-At', '-U', 'postgres_exporter', '-d', 'postgres', '-c', "SELECT pg_read_file('/var/run/ferretdb-state/cluster-state')"]);
  expect({ code: direct.code, stderr: direct.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/permission denied for function pg_read_file/) });
});

/** psql in the pod's postgres container (its network namespace) with no password anywhere. */
function psqlNoPassword(conninfo: string, sql: string) {
  return pg!.h.exec(PRIMARY, 'postgres', ['env', '-u', 'PGPASSWORD', 'PGPASSFILE=/nonexistent/pgpass', 'psql', '-X', '-w', '-At', '-v', 'ON_ERROR_STOP=1',
    conninfo, '-c', sql], { timeoutMs: 15_000 });
}

const TLS_SECRET = 'fdb-pg-tls';
let ca: TestCa | undefined;

afterEach(() => {
  ca?.destroy();
  ca = undefined;
});

/** A primary-only cluster with the exporter; with `tls`, postgresTls from a Secret made here. */
async function bootMonitored(tls: boolean): Promise<PgCluster> {
  if (!tls) return PgCluster.boot({ replicas: 0, monitoring: {} });
  const props: FerretDBClusterProps = { replicas: 0, monitoring: {}, postgresTls: PostgresTls.fromSecret(TLS_SECRET) };
  ca = new TestCa();
  const c = await PgCluster.create(props);
  c.h.setSecret(TLS_SECRET, ca.issue(new FerretDBCluster(Testing.chart(), 'db', { name: NAME, ...props }).primary.tlsDnsNames).secret);
  await c.runCredentialsJob();
  await c.h.startStatefulSet(`${NAME}-pg-primary`, { timeoutMs: 120_000 });
  return c;
}

test.each([['without TLS', false], ['with postgresTls (the loopback rule comes before the plain-text rejects)', true]])(
  'security, %s: the exporter scrapes over the pod\'s loopback without the socket or a password file in its mounts, and no other role gets in from 127.0.0.1 without a password', async (_what, tls) => {
    pg = await bootMonitored(tls as boolean);
    expect(await pg.sql(PRIMARY, 'SHOW ssl')).toBe(tls ? 'on' : 'off');
    // pg_up 1, and the server sees the exporter's connections coming from 127.0.0.1.
    await waitMetrics(PRIMARY, 'pg_up 1', (s) => value(s, 'pg_up') === 1);
    expect(await pg.sql(PRIMARY, "SELECT string_agg(DISTINCT coalesce(host(client_addr), 'socket'), ',') FROM pg_stat_activity WHERE usename = 'postgres_exporter'"))
      .toBe('127.0.0.1');

    // The socket the server trusts and the replication role's pgpass file exist in the postgres
    // container and not in the exporter's mount namespace.
    const files = ['/var/run/postgresql/.s.PGSQL.5432', '/tmp/.pgpass'];
    const seen = async (container: string) => Promise.all(files.map(async (f) =>
      (await pg!.h.exec(PRIMARY, container, ['test', '-e', f])).code === 0));
    expect(await seen('postgres')).toEqual([true, true]);
    expect(await seen('metrics')).toEqual([false, false]);
    const listed = await pg.h.exec(PRIMARY, 'metrics', ['sh', '-c', 'ls -A /var/run/postgresql /tmp 2>&1; true']);
    expect(listed.stdout).not.toMatch(/\.s\.PGSQL|pgpass/);

    // From the pod's network namespace without a password: postgres_exporter to the postgres
    // database gets in (the exporter's way); ferretdb, postgres, the replication role, and
    // postgres_exporter to another database are refused.
    const conninfo = (user: string, db = 'postgres') => `host=127.0.0.1 port=5432 user=${user} dbname=${db} sslmode=disable`;
    const ok = await psqlNoPassword(conninfo('postgres_exporter'), 'SELECT current_user');
    expect({ code: ok.code, out: ok.stdout.trim(), err: ok.stderr }).toEqual({ code: 0, out: 'postgres_exporter', err: '' });
    for (const [user, db] of [['ferretdb', 'postgres'], ['ferretdb', 'template1'], ['postgres', 'postgres'], ['replicator', 'postgres'], ['postgres_exporter', 'template1']]) {
      const r = await psqlNoPassword(conninfo(user, db), 'SELECT current_user');
      expect({ user, db, code: r.code, out: r.stdout }).toEqual({ user, db, code: 2, out: '' });
      expect(r.stderr).toMatch(/no password supplied|password authentication failed|no pg_hba\.conf entry|rejects connection/);
    }

    // PostgreSQL 17 (the default image): ferretdb, CREATEROLE without ADMIN OPTION on
    // pg_execute_server_program, cannot grant it to itself, so it cannot run programs.
    const asFerretdb = (sql: string) => pg!.h.exec(PRIMARY, 'postgres', ['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-U', 'ferretdb', '-d', 'postgres', '-c', sql]);
    const grant = await asFerretdb('GRANT pg_execute_server_program TO ferretdb');
    expect({ code: grant.code, stderr: grant.stderr.trim() }).toEqual({ code: 1, stderr: expect.stringContaining('permission denied to grant role "pg_execute_server_program"') });
    const run = await asFerretdb("CREATE TEMP TABLE o (l text); COPY o FROM PROGRAM 'id -u'; SELECT * FROM o");
    expect({ code: run.code, stderr: run.stderr.trim() }).toEqual({ code: 1, stderr: expect.stringMatching(/COPY to or from an external program/) });
    expect(await pg.sql(PRIMARY, "SELECT pg_has_role('ferretdb', 'pg_execute_server_program', 'MEMBER')")).toBe('f');
  });
