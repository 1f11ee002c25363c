/**
 * The real FerretDB (built at the default image's version, see ./ferretdb.ts) in front of the
 * StatefulSet backend, with the real MongoDB driver (npm `mongodb`) run in a client pod through
 * the synthesized Services `NAME-rw` and `NAME-ro` (ClusterIPs, port 27017 to the pods' port
 * named `mongodb`), with the generated credentials from the Secret.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { NAME } from './fixture';
import { MongoCluster, PRIMARY, READER_DEPLOYMENT, replica, RO, RW, WRITER_DEPLOYMENT } from './mongo-fixture';
import { FerretDBCluster } from '../../src';

jest.setTimeout(300_000);

let m: MongoCluster;

beforeAll(async () => {
  m = await MongoCluster.boot();
}, 600_000);

afterAll(async () => {
  // What the FerretDB pods said, for a failed run.
  m?.logWarnings();
  await m?.destroy();
});

test('CRUD, an index and an aggregation through NAME-rw with SCRAM; NAME-ro reads the replicated data', async () => {
  const written = await m.value(m.uri(RW), `
    const items = db.collection('items');
    await items.insertMany([{ sku: 'a', qty: 5, kind: 'x' }, { sku: 'b', qty: 7, kind: 'x' }, { sku: 'c', qty: 1, kind: 'y' }]);
    await items.updateOne({ sku: 'c' }, { $set: { qty: 3 } });
    await items.deleteOne({ sku: 'b' });
    await items.createIndex({ sku: 1 }, { unique: true, name: 'sku_1' });
    const indexes = (await items.indexes()).map((i) => i.name).sort();
    const dup = await items.insertOne({ sku: 'a' }).then(() => 'inserted', (e) => e.code);
    const byKind = await items.aggregate([{ $group: { _id: '$kind', total: { $sum: '$qty' } } }, { $sort: { _id: 1 } }]).toArray();
    const docs = await items.find({}, { projection: { _id: 0 } }).sort({ sku: 1 }).toArray();
    const auth = await db.admin().command({ connectionStatus: 1 });
    return { indexes, dup, byKind, docs, users: auth.authInfo.authenticatedUsers };`);
  expect(written).toEqual({
    indexes: ['_id_', 'sku_1'],
    dup: 11000, // DuplicateKey: the unique index is enforced
    byKind: [{ _id: 'x', total: 5 }, { _id: 'y', total: 3 }],
    docs: [{ sku: 'a', qty: 5, kind: 'x' }, { sku: 'c', qty: 3, kind: 'y' }],
    users: [{ user: 'ferretdb' }], // FerretDB 2.7 names the user without its database
  });
  const read = await m.h.waitUntil('NAME-ro sees the replicated documents', 60_000, async () => {
    const r = await m.mongo(m.uri(RO), "return db.collection('items').find({}, { projection: { _id: 0 } }).sort({ sku: 1 }).toArray();");
    return r.ok && r.value.length === 2 ? r.value : undefined;
  });
  expect(read).toEqual(written.docs);
});

test('a write through NAME-ro fails with the error FerretDB maps from PostgreSQL read-only: InternalError, code 1, not retryable', async () => {
  const r = await m.mongo(m.uri(RO), "return db.collection('items').insertOne({ sku: 'z' });");
  console.log(`write through ${RO}: ${JSON.stringify(r.error)}`);
  expect(r.ok).toBe(false);
  expect(r.error).toMatchObject({ name: 'MongoServerError', code: 1, codeName: 'InternalError' });
  expect(r.error!.errorLabels ?? []).not.toContain('RetryableWriteError');
});

/** createUser as FerretDB's role, through DocumentDB's SQL API (what FerretDB calls, without its SUPERUSER step). */
async function createUserInSql(user: string, pwd: string, roles: string[]): Promise<void> {
  const spec = JSON.stringify({ createUser: user, pwd, roles: roles.map((role) => ({ role, db: 'admin' })) });
  const r = await m.h.exec(PRIMARY, 'postgres', ['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-U', 'ferretdb', '-d', 'postgres',
    '-c', `SELECT documentdb_api.create_user('${spec}'::documentdb_core.bson)`]);
  if (r.code !== 0) throw new Error(`documentdb_api.create_user(${spec}) as ferretdb failed: ${r.stderr}`);
  // It reports a refusal in the document it returns (ok 0, errmsg), not as an SQL error.
  if (/errmsg/.test(r.stdout)) throw new Error(`documentdb_api.create_user(${spec}) as ferretdb answered: ${r.stdout}`);
}

test('createUser through FerretDB 2.7 is refused for both role sets the README documents: it replaces the given roles with clusterAdmin and runs ALTER ROLE ... SUPERUSER', async () => {
  const writers = m.ferretPods(WRITER_DEPLOYMENT);
  for (const roles of [['readAnyDatabase'], ['clusterAdmin', 'readWriteAnyDatabase']]) {
    const r = await m.mongo(m.uri(RW), `return client.db('admin').command({ createUser: 'u_${roles.length}', pwd: 'pw',
      roles: ${JSON.stringify(roles.map((role) => ({ role, db: 'admin' })))} });`);
    console.log(`createUser with ${roles.join(' + ')}: ${JSON.stringify(r.error)}`);
    expect({ roles, error: r.error }).toMatchObject({ roles, error: { code: 1, codeName: 'InternalError', message: 'permission denied to alter role' } });
  }
  // The roles a driver sends are not the array type FerretDB's handler checks for, so it logs
  // that it adds its defaults (clusterAdmin + readWriteAnyDatabase), even for readAnyDatabase.
  expect(writers.some((pod) => /Adding default roles.*"user":"u_1"/.test(m.h.logs(pod, 'ferretdb')))).toBe(true);
  expect(await m.pg.sql(PRIMARY, "SELECT count(*) FROM pg_roles WHERE rolname IN ('u_1', 'u_2')")).toBe('0');
});

test('users of both role sets, created through DocumentDB\'s SQL API as FerretDB\'s role, log in through NAME-rw and NAME-ro; the read-only one can still write (FerretDB runs every command as its own role)', async () => {
  // PostgreSQL 17 here: CREATEROLE alone no longer lets FerretDB's role grant roles (16 changed
  // it); the synthesized ADMIN OPTION grants are what make this work.
  await createUserInSql('reporting', 'reporting-pw', ['readAnyDatabase']);
  await createUserInSql('orders_app', 'orders-pw', ['clusterAdmin', 'readWriteAnyDatabase']);
  expect(await m.pg.sql(PRIMARY, "SELECT string_agg(rolname || ':' || rolsuper, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('reporting', 'orders_app')"))
    .toBe('orders_app:false,reporting:false');

  expect(await m.value(m.uri(RW, 'orders_app', 'orders-pw'), "return (await db.collection('orders').insertOne({ n: 1 })).acknowledged;")).toBe(true);
  // FerretDB 2.7 checks the password (SCRAM) but runs every command on its pool of connections
  // as its own PostgreSQL role: the roles of a MongoDB user authorize nothing.
  const readOnlyWrite = await m.mongo(m.uri(RW, 'reporting', 'reporting-pw'), "return (await db.collection('orders').insertOne({ n: 2 })).acknowledged;");
  expect(readOnlyWrite).toEqual({ ok: true, value: true });
  for (const service of [RW, RO]) {
    for (const [user, pwd] of [['reporting', 'reporting-pw'], ['orders_app', 'orders-pw']]) {
      const seen = await m.h.waitUntil(`${user} reads orders through ${service}`, 60_000, async () => {
        const r = await m.mongo(m.uri(service, user, pwd), "return db.collection('orders').countDocuments({});");
        return r.ok && r.value === 2 ? r.value : undefined;
      });
      expect({ service, user, seen }).toEqual({ service, user, seen: 2 });
    }
  }
  const wrongPassword = await m.mongo(m.uri(RW, 'reporting', 'nope'), 'return 1;');
  expect(wrongPassword.ok).toBe(false);
  console.log(`wrong password: ${JSON.stringify(wrongPassword.error)}`);
});

test('telemetry is "disable" in the running environment, and FerretDB writes state.json in its writable state directory', async () => {
  for (const pod of [...m.ferretPods(WRITER_DEPLOYMENT), ...m.ferretPods(READER_DEPLOYMENT)]) {
    // The image is FROM scratch (no printenv, no cat): the process's /proc and the volume on the host.
    const env = m.h.processEnv(pod, 'ferretdb');
    expect({ pod, telemetry: env.FERRETDB_TELEMETRY, stateDir: env.FERRETDB_STATE_DIR }).toEqual({ pod, telemetry: 'disable', stateDir: '/state' });
    const state = fs.readFileSync(path.join(m.h.volumePath(pod, 'state'), 'state.json'), 'utf8');
    expect(JSON.parse(state)).toEqual(expect.objectContaining({ uuid: expect.any(String) }));
  }
});

/**
 * FerretDB 2.7's client metrics count connections (ferretdb_client_accepts_total and
 * ferretdb_client_duration_seconds_*, labelled only `error`), not commands: the dashboard reads
 * those and the pool's, never FerretDB 1.x's request and response counters.
 */
test('every FerretDB metric the dashboard and the PrometheusRule query exists in the real /debug/metrics output', async () => {
  const chart = Testing.chart();
  new FerretDBCluster(chart, 'db', { name: 'fdb', monitoring: { dashboard: true, prometheusRule: true, podMonitor: true } });
  const text = JSON.stringify(Testing.synth(chart).filter((o: any) => o.kind === 'PrometheusRule' || o.kind === 'ConfigMap'));
  // Metric names in PromQL: followed by a selector, a range or a closing parenthesis.
  const used = [...new Set([...text.matchAll(/\b((?:ferretdb|go|process)_[a-z0-9_]+)(?=[{[)])/g)].map((x) => x[1]))].sort();
  expect(used.length).toBeGreaterThan(0);
  const pod = m.ferretPods(WRITER_DEPLOYMENT)[0];
  const r = await m.h.exec('mongo-client-0', 'app', ['curl', '-sS', '--max-time', '10', `http://${m.h.podIP(pod)}:8088/debug/metrics`]);
  expect(r.code).toBe(0);
  const exposed = new Set(r.stdout.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]));
  console.log(`metrics the library queries: ${used.join(', ')}; FerretDB's own: ${[...exposed].filter((n) => n.startsWith('ferretdb_')).join(', ')}`);
  expect(used.filter((n) => !exposed.has(n))).toEqual([]);
  expect(exposed).toContain('ferretdb_client_duration_seconds_count');
  const series = r.stdout.split('\n').filter((l) => /^ferretdb_client_(duration_seconds_count|accepts_total)\{/.test(l));
  console.log(`FerretDB 2.7's request series:\n${series.join('\n')}`);
});

test('readiness: with the primary down the writer FerretDB pods leave NAME-rw and the standbys leave NAME-pg-ro; once it returns the same FerretDB pods serve NAME-rw and NAME-ro again', async () => {
  const writers = m.ferretPods(WRITER_DEPLOYMENT);
  const readers = m.ferretPods(READER_DEPLOYMENT);
  expect(m.h.endpoints(RW).sort()).toEqual(writers);
  expect(m.h.endpoints(RO).sort()).toEqual(readers);
  let fewestReaders = readers.length;
  const sampler = setInterval(() => { fewestReaders = Math.min(fewestReaders, m.h.endpoints(RO).length); }, 100);
  try {
    await m.h.deletePod(PRIMARY, { recreate: false });
    await m.h.waitUntil(`${RW} has no endpoints`, 60_000, () => m.h.endpoints(RW).length === 0);
    const refused = await m.mongo(m.uri(RW), 'return 1;');
    expect(refused.ok).toBe(false);
    // The README: with the primary down no standby streams, so the standbys leave the read Service.
    await m.h.waitUntil(`${NAME}-pg-ro has no endpoints`, 60_000, () => m.h.endpoints(`${NAME}-pg-ro`).length === 0);

    await m.h.startPod(PRIMARY);
    await m.h.waitReady(PRIMARY, 120_000);
    await m.h.waitUntil(`${RW} has its writers back`, 60_000, () => m.h.endpoints(RW).length === writers.length);
    expect(m.h.endpoints(RW).sort()).toEqual(writers);
    expect(await m.value(m.uri(RW), "return (await db.collection('items').insertOne({ sku: 'after' })).acknowledged;")).toBe(true);
    await m.pg.waitStreaming(PRIMARY, [replica(0), replica(1)]);
    await m.h.waitUntil(`${RO} has its readers back`, 60_000, () => m.h.endpoints(RO).length === readers.length);
  } finally {
    clearInterval(sampler);
  }
  console.log(`primary down: fewest reader FerretDB pods in ${RO}: ${fewestReaders} of ${readers.length}`);
  expect(m.h.endpoints(RO).sort()).toEqual(readers);
  expect(m.ferretPods(WRITER_DEPLOYMENT)).toEqual(writers); // readiness, not restarts
  await m.h.waitUntil(`${RO} reads the write made after the outage`, 60_000, async () =>
    (await m.mongo(m.uri(RO), "return db.collection('items').countDocuments({ sku: 'after' });")).value === 1);
});
