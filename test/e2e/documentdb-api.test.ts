/**
 * What FerretDB does through DocumentDB's SQL API, as the `ferretdb` role over the network with
 * the generated password, on real PostgreSQL 17 with the real DocumentDB extension loaded as the
 * synthesized postgresql.conf says (pg_hba, grants and settings are the synthesized ones).
 */
import { NAME, PgCluster, PRIMARY, replica } from './fixture';

jest.setTimeout(300_000);

let pg: PgCluster | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
});

/** psql from a replica pod to a Service as `user`, password from a file of that pod (or given). */
async function asRole(c: PgCluster, host: string, user: string, sql: string, opts: { password?: string; readOnly?: boolean } = {}) {
  const password = opts.password !== undefined ? `'${opts.password}'` : '"$(cat /etc/ferretdb-postgres-secret/ferretdb-password)"';
  const options = opts.readOnly ? ' options=\'-c default_transaction_read_only=on\'' : '';
  return c.h.exec(replica(1), 'postgres', ['bash', '-c',
    `PGPASSWORD=${password} psql -X -A -t -q -v ON_ERROR_STOP=1 "host=${host} user=${user} dbname=postgres${options}"`],
  { input: sql, timeoutMs: 30_000 });
}

// DocumentDB's BSON as canonical extended JSON text.
const json = (bson: string) => `documentdb_core.bson_to_json_string(${bson})`;
/** The `n` of a write or count result in that text. */
const n = (count: number) => new RegExp(`"n" : \\{ "\\$numberInt" : "${count}" \\}`);
const find = (filter: string) =>
  `SELECT ${json('cursorpage')} FROM documentdb_api.find_cursor_first_page('app', '{"find":"orders","filter":${filter}}')`;

test('FerretDB\'s role inserts and finds on the primary, finds on a standby read-only, cannot write there, and creates MongoDB users that log in', async () => {
  pg = await PgCluster.boot();
  const c = pg;
  const rw = `${NAME}-pg-rw`;
  const ro = `${NAME}-pg-ro`;
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  // A fresh server: DocumentDB's first non-_id find opens its own connection as the caller.
  await c.h.deletePod(PRIMARY);
  await c.h.waitReady(PRIMARY, 120_000);

  const inserted = await asRole(c, rw, 'ferretdb', `
    SELECT ${json('p_result')} FROM documentdb_api.insert('app', '{"insert":"orders","documents":[{"_id":1,"item":"apple","qty":5},{"_id":2,"item":"pear","qty":1}]}');`);
  expect(inserted.stderr).not.toMatch(/ERROR|FATAL/);
  expect(inserted.stdout).toMatch(n(2));
  const onPrimary = await asRole(c, rw, 'ferretdb', find('{"qty":{"$gt":2}}'));
  expect(onPrimary.stderr).not.toMatch(/ERROR|FATAL/);
  expect(onPrimary.stdout).toMatch(/"item" : "apple"/);
  expect(onPrimary.stdout).not.toMatch(/pear/);

  // The standby, through the read-only Service, as FerretDB's reader side connects.
  await c.h.waitUntil('the standby has the documents', 60_000, async () =>
    /apple/.test((await asRole(c, ro, 'ferretdb', find('{"qty":{"$gt":2}}'), { readOnly: true })).stdout));
  const onStandby = await asRole(c, ro, 'ferretdb', `SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only'); ${find('{"qty":{"$gt":2}}')}`, { readOnly: true });
  expect(onStandby.stderr).not.toMatch(/ERROR|FATAL/);
  expect(onStandby.stdout.split('\n')[0]).toBe('t|on');
  const count = await asRole(c, ro, 'ferretdb', `SELECT ${json('document')} FROM documentdb_api.count_query('app', '{"count":"orders","query":{"qty":{"$gte":1}}}')`, { readOnly: true });
  expect(count.stdout).toMatch(n(2));
  const write = await asRole(c, ro, 'ferretdb', 'SELECT documentdb_api.insert_one(\'app\', \'orders\', \'{"_id":3}\')', { readOnly: true });
  expect(write.code).not.toBe(0);
  expect(write.stderr).toMatch(/database is in recovery|read-only/);

  // createUser works for FerretDB's role (not a superuser) with the roles DocumentDB allows;
  // the grants it makes need ADMIN OPTION from PostgreSQL 16 on: check the grant itself.
  const admin = await c.sql(PRIMARY, `SELECT string_agg(r.rolname || '=' || a.admin_option, ',' ORDER BY r.rolname)
    FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = 'ferretdb'`);
  expect(admin).toBe('documentdb_admin_role=true,documentdb_readonly_role=true,pg_read_all_data=true');
  expect(await c.sql(PRIMARY, "SELECT rolsuper FROM pg_roles WHERE rolname = 'ferretdb'")).toBe('f');
  const created = await asRole(c, rw, 'ferretdb', `
    SELECT documentdb_api.create_user('{"createUser":"reader","pwd":"reader-pw","roles":[{"role":"readAnyDatabase","db":"admin"}],"$db":"admin"}');
    SELECT documentdb_api.create_user('{"createUser":"writer","pwd":"writer-pw","roles":[{"role":"clusterAdmin","db":"admin"},{"role":"readWriteAnyDatabase","db":"admin"}],"$db":"admin"}');`);
  expect(created.stderr).not.toMatch(/ERROR|FATAL/);
  const readerFind = await asRole(c, rw, 'reader', find('{"item":"apple"}'), { password: 'reader-pw' });
  expect(readerFind.stdout).toMatch(/apple/);
  const readerWrite = await asRole(c, rw, 'reader', `SELECT ${json('p_result')} FROM documentdb_api.insert('app', '{"insert":"orders","documents":[{"_id":9}]}')`, { password: 'reader-pw' });
  expect(readerWrite.stdout).toMatch(/permission denied/);
  const writerInsert = await asRole(c, rw, 'writer', `SELECT ${json('p_result')} FROM documentdb_api.insert('app', '{"insert":"orders","documents":[{"_id":10,"qty":7}]}')`, { password: 'writer-pw' });
  expect(writerInsert.stdout).toMatch(n(1));
  expect(await c.sql(PRIMARY, "SELECT string_agg(rolname || '=' || rolsuper, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('reader', 'writer')")).toBe('reader=false,writer=false');

  // pg_cron runs DocumentDB's jobs (they connect back over the pod-local socket).
  await c.h.waitUntil('a DocumentDB cron job succeeded', 90_000, async () =>
    Number(await c.sql(PRIMARY, "SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded'")) > 0);
  expect(await c.sql(PRIMARY, "SELECT count(*) FROM cron.job_run_details WHERE status = 'failed'")).toBe('0');
});

test('the replication role can run SQL with the extension loaded (slot checks, pg_rewind\'s file functions), cannot SELECT documents, but can read a collection\'s file (what README says it can do)', async () => {
  pg = await PgCluster.boot({ replicas: 1 });
  const c = pg;
  await c.waitStreaming(PRIMARY, [replica(0)]);
  const r = await c.h.exec(replica(0), 'postgres', ['bash', '-c',
    `psql -X -A -t -q -v ON_ERROR_STOP=1 "host=${NAME}-pg-rw user=replicator dbname=postgres passfile=/tmp/.pgpass" -c "SELECT pg_is_in_recovery(), count(*) > 0 FROM pg_replication_slots, (SELECT pg_ls_dir('pg_wal', false, false)) w"`]);
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe('f|t');
  await c.sql(PRIMARY, "SELECT documentdb_api.insert_one('app', 'secrets', '{\"_id\":1,\"card\":\"4111\"}')");
  const table = await c.sql(PRIMARY, "SELECT 'documentdb_data.documents_' || collection_id FROM documentdb_api_catalog.collections WHERE collection_name = 'secrets'");
  const documents = await c.h.exec(replica(0), 'postgres', ['bash', '-c',
    `psql -X -A -t -q "host=${NAME}-pg-rw user=replicator dbname=postgres passfile=/tmp/.pgpass" -c "SELECT count(*) FROM ${table}"`]);
  expect(documents.code).not.toBe(0);
  expect(documents.stderr).toMatch(/permission denied/);
  // The file functions pg_rewind needs read any file of the data directory, a table's included.
  await c.sql(PRIMARY, 'CHECKPOINT');
  const file = await c.sql(PRIMARY, `SELECT pg_relation_filepath('${table}')`);
  const raw = await c.h.exec(replica(0), 'postgres', ['bash', '-c',
    `psql -X -A -t -q "host=${NAME}-pg-rw user=replicator dbname=postgres passfile=/tmp/.pgpass" -c "SELECT position(convert_to('4111', 'UTF8') IN pg_read_binary_file('${file}')) > 0"`]);
  expect(raw.stderr).toBe('');
  expect(raw.stdout.trim()).toBe('t');
});

test('the passwords setup.sql sets never reach the server log, even with log_statement = all', async () => {
  pg = await PgCluster.boot({ replicas: 0, parameters: { log_statement: 'all' } });
  const c = pg;
  await c.waitLog(PRIMARY, /roles, passwords and extension applied/, 0, 120_000, 'agent');
  const secret = c.h.getSecret(`${NAME}-credentials`)!;
  const logs = c.h.logs(PRIMARY, 'postgres');
  expect(logs).toMatch(/LOG: {2}statement: /);
  for (const key of ['replication-password', 'ferretdb-password']) {
    expect(secret[key].length).toBeGreaterThan(10);
    expect(logs.includes(secret[key])).toBe(false);
  }
});
