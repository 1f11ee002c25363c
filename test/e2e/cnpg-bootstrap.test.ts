/**
 * The CloudNativePG backend's PostgreSQL side on real PostgreSQL 15 with the real DocumentDB
 * extension: a server configured from the synthesized Cluster (its parameters, preload
 * libraries and pg_hba rules, inside CloudNativePG 1.30's own pg_hba/pg_ident and fixed
 * settings, TLS on), bootstrapped with the SQL the Cluster carries, then used as FerretDB uses
 * it. No operator runs here: ./cnpg-instance.ts does what it would do, step by step.
 */
import { randomBytes } from 'crypto';
import { Testing } from 'cdk8s';
import { CnpgInstance, reconcileManagedRoles, runInitdbBootstrap, runInstanceStartup } from './cnpg-instance';
import { DOCUMENTDB_TEST_PARAMETERS, ensureDocumentDb } from './documentdb';
import { FerretDBCluster, PostgresBackend } from '../../src';

jest.setTimeout(300_000);

/** The pod's loopback: DocumentDB's and pg_cron's own connections come from here. */
const LOOPBACK = '127.0.0.1';
/** The pod's network address (TEST-NET-1): FerretDB connects from another pod, never from loopback. */
const POD_IP = '192.0.2.10';

const chart = Testing.chart();
new FerretDBCluster(chart, 'db', { name: 'fdb', backend: PostgresBackend.cloudNativePG() });
const objects = Testing.synth(chart);
const spec = objects.find((o) => o.kind === 'Cluster').spec;
const ferretdb = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'fdb-ferretdb-rw');
/** FerretDB's URL as synthesized: its role, database and sslmode (host and CA are the test's). */
const url = new URL(ferretdb.spec.template.spec.containers[0].env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL').value);
const role: string = spec.managed.roles[0].name;
/** The Secret's password, as the bootstrap Job generates it (64 hex characters). */
const password = randomBytes(32).toString('hex');

let pg: CnpgInstance | undefined;

/** psql as FerretDB connects: its role, database and sslmode, the test CA, from the pod network. */
function asFerretDB(sql: string, opts: { user?: string; password?: string } = {}) {
  const conninfo = `host=${POD_IP} user=${opts.user ?? url.username} dbname=${url.pathname.slice(1)} `
    + `sslmode=${url.searchParams.get('sslmode')} sslrootcert=${pg!.caFile}`;
  return pg!.client(conninfo, sql, opts.password ?? password);
}

const find = (filter: string) =>
  `SELECT cursorpage FROM documentdb_api.find_cursor_first_page('app', '{"find":"orders","filter":${filter}}')`;

beforeAll(() => {
  ensureDocumentDb();
  pg = CnpgInstance.create({
    parameters: { ...spec.postgresql.parameters, ...DOCUMENTDB_TEST_PARAMETERS },
    sharedPreloadLibraries: spec.postgresql.shared_preload_libraries,
    pgHba: spec.postgresql.pg_hba,
    podIp: POD_IP,
  });
  pg.start();
  runInitdbBootstrap(pg, spec.bootstrap.initdb);
  runInstanceStartup(pg);
  reconcileManagedRoles(pg, spec.managed.roles, { [spec.bootstrap.initdb.secret.name]: password });
});

afterAll(() => {
  pg?.destroy();
});

test('the synthesized settings are ones PostgreSQL and DocumentDB know, with the synthesized values, and none is refused', () => {
  const expected: { [name: string]: string } = { ...spec.postgresql.parameters, ...DOCUMENTDB_TEST_PARAMETERS };
  const known = new Set(pg!.sql('SELECT lower(name) FROM pg_settings').split('\n'));
  expect(Object.keys(expected).filter((name) => !known.has(name.toLowerCase()))).toEqual([]);
  const shown = Object.fromEntries(Object.keys(expected).map((n) => [n, pg!.sql(`SHOW "${n}"`)]));
  const normal = (v: string) => ({ true: 'on', false: 'off' } as { [k: string]: string })[v] ?? v;
  expect(Object.fromEntries(Object.entries(shown).map(([n, v]) => [n, normal(v)])))
    .toEqual(Object.fromEntries(Object.entries(expected).map(([n, v]) => [n, normal(v)])));
  expect(pg!.sql('SHOW shared_preload_libraries')).toBe(spec.postgresql.shared_preload_libraries.join(','));
  expect(pg!.log()).not.toMatch(/invalid configuration parameter|unrecognized configuration parameter/);
});

test('FerretDB\'s role, over TLS with its password, inserts, and finds right after a restart (DocumentDB\'s own loopback connection passes pg_hba)', () => {
  const tls = asFerretDB('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  expect(tls.stderr).toBe('');
  expect(tls.stdout).toBe('t');
  const inserted = asFerretDB(`SELECT p_result FROM documentdb_api.insert('app',
    '{"insert":"orders","documents":[{"_id":1,"item":"apple","qty":5},{"_id":2,"item":"pear","qty":1}]}')`);
  expect(inserted.stderr).not.toMatch(/ERROR|FATAL|WARNING/);
  expect(inserted.stdout).toMatch(/"n" : \{ "\$numberInt" : "2" \}/);

  pg!.restart();
  const found = asFerretDB(find('{"qty":{"$gt":2}}'));
  expect(found.stderr).toBe('');
  expect(found.stdout).toMatch(/"item" : "apple"/);
  expect(found.stdout).not.toMatch(/pear/);
});

test('FerretDB\'s role holds DocumentDB\'s roles WITH ADMIN OPTION, is no superuser, and creates a MongoDB user who logs in and reads', () => {
  const admin = pg!.sql(`SELECT string_agg(r.rolname || '=' || a.admin_option, ',' ORDER BY r.rolname)
    FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = '${role}'`);
  expect(admin).toBe('documentdb_admin_role=true,documentdb_readonly_role=true,pg_read_all_data=true');
  expect(pg!.sql(`SELECT rolsuper FROM pg_roles WHERE rolname = '${role}'`)).toBe('f');

  const created = asFerretDB(`SELECT documentdb_api.create_user(
    '{"createUser":"reader","pwd":"reader-pw","roles":[{"role":"readAnyDatabase","db":"admin"}],"$db":"admin"}')`);
  expect(created.stderr).toBe('');
  expect(created.stdout).toMatch(/"ok" : \{ "\$numberInt" : "1" \}/);
  const readerFind = asFerretDB(find('{"item":"apple"}'), { user: 'reader', password: 'reader-pw' });
  expect(readerFind.stderr).toBe('');
  expect(readerFind.stdout).toMatch(/apple/);
  expect(pg!.sql("SELECT rolsuper FROM pg_roles WHERE rolname = 'reader'")).toBe('f');
});

test('CloudNativePG\'s own roles can run SQL with the extension loaded (pg_rewind\'s and the exporter\'s queries)', () => {
  for (const cnpgRole of ['streaming_replica', 'cnpg_metrics_exporter']) {
    const r = pg!.superuser(`SET ROLE ${cnpgRole}; SELECT pg_is_in_recovery(), count(*) >= 0 FROM pg_stat_replication`);
    expect({ cnpgRole, stderr: r.stderr, stdout: r.stdout }).toEqual({ cnpgRole, stderr: '', stdout: 'f|t' });
  }
});

test('pg_cron runs DocumentDB\'s jobs (they connect to localhost as the superuser) and none fails', async () => {
  const deadline = Date.now() + 75_000;
  let succeeded = 0;
  while (Date.now() < deadline) {
    succeeded = Number(pg!.sql("SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded'"));
    if (succeeded > 0) break;
    await new Promise((r) => setTimeout(r, 2_000));
  }
  expect(succeeded).toBeGreaterThan(0);
  expect(pg!.sql("SELECT string_agg(command || ': ' || return_message, E'\\n') FROM cron.job_run_details WHERE status = 'failed'")).toBe('');
});

test('nothing broader than loopback to the postgres database is trusted, and the network needs TLS', () => {
  const noPassword = (host: string, dbname: string, sslmode = 'require') =>
    pg!.client(`host=${host} user=${role} dbname=${dbname} sslmode=${sslmode}`, 'SELECT 1');
  // Loopback, another database, no password: CloudNativePG's scram rule asks for one.
  const otherDb = noPassword(LOOPBACK, spec.bootstrap.initdb.database);
  expect(otherDb.code).not.toBe(0);
  expect(otherDb.stderr).toMatch(/no password supplied|password authentication failed/);
  // The pod network, the postgres database, no password.
  const network = noPassword(POD_IP, 'postgres');
  expect(network.code).not.toBe(0);
  expect(network.stderr).toMatch(/no password supplied|password authentication failed/);
  // A wrong password from the pod network.
  expect(asFerretDB('SELECT 1', { password: 'wrong' }).stderr).toMatch(/password authentication failed/);
  // Without TLS from the pod network, even with the right password.
  const plain = pg!.client(`host=${POD_IP} user=${role} dbname=postgres sslmode=disable`, 'SELECT 1', password);
  expect(plain.code).not.toBe(0);
  expect(plain.stderr).toMatch(/no encryption|reject/);
  // The rule DocumentDB and pg_cron need does admit loopback to postgres without a password.
  expect(noPassword(LOOPBACK, 'postgres').stdout).toBe('1');
});

test('without our pg_hba rules DocumentDB\'s own connection is refused: the rules are what makes finds work', () => {
  pg!.writeHba([]);
  pg!.restart();
  try {
    const found = asFerretDB(find('{"qty":{"$gt":2}}'));
    expect(found.code).not.toBe(0);
    expect(found.stderr).toMatch(/no password supplied/);
  } finally {
    pg!.writeHba(spec.postgresql.pg_hba);
    pg!.restart();
  }
  expect(asFerretDB(find('{"qty":{"$gt":2}}')).stdout).toMatch(/apple/);
});
