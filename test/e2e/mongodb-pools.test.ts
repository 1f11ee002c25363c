/**
 * FerretDB's pools against `max_connections`, with the real FerretDB and MongoDB driver: the
 * README's worst case for one server, both FerretDB sides on it at once. With one standby, a
 * switchover to it leaves the promoted pod the only endpoint of both `NAME-pg-rw` and
 * `NAME-pg-ro` (an equality selector cannot leave it out). A collection locked on that server
 * holds every query on it, so more concurrent MongoDB operations than the pools allow in total
 * fill every pool; PostgreSQL must refuse none of their connections.
 *
 * Probes run with `probeTiming: 'scaled'`: FerretDB's liveness window is the synthesized 10 s x 12
 * (a full pool also fails FerretDB's readiness ping, see below), not 12 fast probes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { NAME } from './fixture';
import { CLIENT, MongoCluster, READER_DEPLOYMENT, replica, RO, RW, WRITER_DEPLOYMENT } from './mongo-fixture';
import { FerretDBClusterProps } from '../../src';

jest.setTimeout(600_000);

const POOL = 4;
const WRITERS = 2;
const READERS = 2;
const PROPS: FerretDBClusterProps = { replicas: 1, ferretdbPoolSize: POOL, ferretdbWriterReplicas: WRITERS, ferretdbReaderReplicas: READERS };
const SERVER = replica(0);
/** README, "Connections": each side's pods plus one surge pod, times the pool, plus 30. */
const README_MAX_CONNECTIONS = ((WRITERS + 1) + (READERS + 1)) * POOL + 30;
/** Concurrent MongoDB operations per side: three times what the side's pools hold. */
const OPERATIONS = 3 * Math.max(WRITERS, READERS) * POOL;
const REFUSED = /too many clients|remaining connection slots are reserved/;

let m: MongoCluster | undefined;

afterAll(async () => {
  await m?.destroy();
});

/**
 * Client backends on the server: FerretDB's by the Service they came through (its ClusterIP), and
 * all. Writers come through NAME-pg-rw; readers through NAME-pg-ro or, with this server the only
 * endpoint of both and a primary, through their fallback host NAME-pg-rw (pgx's prefer-standby
 * keeps the last primary it reached): the sides are told apart by FerretDB's pool gauges.
 */
async function backends(): Promise<{ viaRw: number; viaRo: number; ferretdb: number; all: number }> {
  const c = m!;
  const row = await c.pg.sql(SERVER, `SELECT count(*) FILTER (WHERE client_addr = '${c.h.clusterIp(`${NAME}-pg-rw`)}') || ' '
    || count(*) FILTER (WHERE client_addr = '${c.h.clusterIp(`${NAME}-pg-ro`)}') || ' ' || count(*)
    FROM pg_stat_activity WHERE backend_type = 'client backend'`);
  const [viaRw, viaRo, all] = row.split(' ').map(Number);
  return { viaRw, viaRo, ferretdb: viaRw + viaRo, all };
}

/** FerretDB's pool gauges of one pod, from its /debug/metrics. */
async function poolMetrics(pod: string): Promise<{ [name: string]: number }> {
  const c = m!;
  const r = await c.h.exec(CLIENT, 'app', ['curl', '-sS', '--max-time', '10', `http://${c.h.podIP(pod)}:8088/debug/metrics`]);
  if (r.code !== 0) throw new Error(`metrics of ${pod}: ${r.stderr}`);
  const out: { [name: string]: number } = {};
  for (const line of r.stdout.split('\n')) {
    const x = /^(ferretdb_pool_[a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (x) out[x[1]] = (out[x[1]] ?? 0) + Number(x[3]);
  }
  return out;
}

test(`both FerretDB sides on one server, every pool full (${OPERATIONS} concurrent operations a side): PostgreSQL refuses no connection, each side holds pods x pool, and max_connections is README's ((writers + 1) + (readers + 1)) x pool + 30`, async () => {
  m = await MongoCluster.boot(PROPS, { probeTiming: 'scaled' });
  const c = m;
  await c.apply({ ...PROPS, currentPrimary: SERVER }, { wait: false });
  await c.h.waitUntil(`${SERVER} promoted`, 180_000, async () => (await c.pg.writablePrimaries([SERVER])).length === 1);
  await c.h.waitUntil(`${SERVER} the only endpoint of ${NAME}-pg-rw and ${NAME}-pg-ro`, 120_000, () =>
    JSON.stringify([c.h.endpoints(`${NAME}-pg-rw`), c.h.endpoints(`${NAME}-pg-ro`)]) === JSON.stringify([[SERVER], [SERVER]]));
  expect(await c.pg.sql(SERVER, 'SHOW max_connections')).toBe(String(README_MAX_CONNECTIONS));
  const held = await c.h.waitUntil('a write through NAME-rw on the new primary', 120_000, async () => {
    const r = await c.mongo(c.uri(RW), "return (await db.collection('held').insertOne({ n: 1 })).acknowledged;");
    return r.ok ? r.value : undefined;
  });
  expect(held).toBe(true);
  await c.h.waitUntil('NAME-ro reads on the new primary', 120_000, async () =>
    (await c.mongo(c.uri(RO), "return db.collection('held').countDocuments({});")).value === 1);
  const table = await c.pg.sql(SERVER, `SELECT 'documentdb_data.documents_' || collection_id FROM documentdb_api_catalog.collections
    WHERE database_name = 'shop' AND collection_name = 'held'`);
  expect(table).toMatch(/^documentdb_data\.documents_\d+$/);
  const marks = [SERVER, ...[WRITER_DEPLOYMENT, READER_DEPLOYMENT].flatMap((d) => c.ferretPods(d))].map((pod) => [pod, c.h.logs(pod, pod === SERVER ? 'postgres' : 'ferretdb').length] as const);

  // The application: per side, a driver pool of OPERATIONS connections, opened and authenticated
  // first (FerretDB authenticates through its pool too, which will be full), then, once the lock
  // is held, OPERATIONS finds at once.
  const ready = path.join(c.h.root, 'clients-ready');
  const go = path.join(c.h.root, 'clients-go');
  const client = (service: string) => `new mongodb.MongoClient(${JSON.stringify(c.uri(service))}, { maxPoolSize: ${OPERATIONS}, minPoolSize: ${OPERATIONS}, maxConnecting: ${OPERATIONS} })`;
  const driving = c.h.exec(CLIENT, 'app', ['node', path.join(__dirname, 'ferretdb', 'mongo-client.js')], {
    input: JSON.stringify({
      uri: c.uri(RW),
      db: 'shop',
      body: `
      const fs = require('fs');
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const sides = { rw: ${client(RW)}, ro: ${client(RO)} };
      const opened = { rw: 0, ro: 0 };
      for (const [side, cl] of Object.entries(sides)) cl.on('connectionReady', () => { opened[side]++; });
      for (const cl of Object.values(sides)) await cl.connect();
      for (let i = 0; i < 600 && (opened.rw < ${OPERATIONS} || opened.ro < ${OPERATIONS}); i++) await sleep(100);
      fs.writeFileSync(${JSON.stringify(ready)}, JSON.stringify(opened));
      const atReady = { ...opened };
      while (!fs.existsSync(${JSON.stringify(go)})) await sleep(100);
      const out = {};
      await Promise.all(Object.entries(sides).map(async ([side, cl]) => {
        const results = await Promise.allSettled(Array.from({ length: ${OPERATIONS} }, () => cl.db('shop').collection('held').find({}).toArray()));
        out[side] = { ok: results.filter((r) => r.status === 'fulfilled' && r.value.length === 1).length,
          errors: [...new Set(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason.message).slice(0, 120)))] };
        await cl.close();
      }));
      // Connections the driver opened again while its operations waited (a heartbeat that fails
      // while the side's pods are unready clears the driver's pool): reported, not asserted.
      out.reopened = { rw: opened.rw - atReady.rw, ro: opened.ro - atReady.ro };
      return out;`,
    }),
    timeoutMs: 400_000,
  });
  const opened = await c.h.waitUntil('the driver pools opened', 120_000, () => fs.existsSync(ready) ? JSON.parse(fs.readFileSync(ready, 'utf8')) : undefined);
  expect(opened).toEqual({ rw: OPERATIONS, ro: OPERATIONS });

  // The lock: every query on the collection waits for it.
  const locking = c.pg.trySql(SERVER, `BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300); COMMIT;`, 400_000);
  await c.h.waitUntil('the lock is held', 30_000, async () =>
    (await c.pg.sql(SERVER, `SELECT count(*) FROM pg_locks WHERE relation = '${table}'::regclass AND mode = 'AccessExclusiveLock' AND granted`)) === '1');
  fs.writeFileSync(go, '');

  let full: { viaRw: number; viaRo: number; ferretdb: number; all: number } | undefined;
  let peak = { ferretdb: 0, all: 0 };
  const pools: { [pod: string]: { acquired: number; size: number; max: number } } = {};
  try {
    full = await c.h.waitUntil('every FerretDB pool full on the server', 90_000, async () => {
      const b = await backends();
      return b.ferretdb >= (WRITERS + READERS) * POOL ? b : undefined;
    });
    // A while at full pools: the most sessions each side ever holds.
    for (let i = 0; i < 10; i++) {
      const b = await backends();
      peak = { ferretdb: Math.max(peak.ferretdb, b.ferretdb), all: Math.max(peak.all, b.all) };
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const pod of [...c.ferretPods(WRITER_DEPLOYMENT), ...c.ferretPods(READER_DEPLOYMENT)]) {
      const g = await poolMetrics(pod);
      pools[pod] = { acquired: g.ferretdb_pool_acquired, size: g.ferretdb_pool_size, max: g.ferretdb_pool_max_size };
    }
  } finally {
    await c.pg.sql(SERVER, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = '${table}'::regclass AND mode = 'AccessExclusiveLock' AND granted`);
  }
  await locking;
  const r = await driving;
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  const result = JSON.parse(r.stdout);
  console.log(`max_connections ${README_MAX_CONNECTIONS}; full pools at ${JSON.stringify(full)}, peak ${JSON.stringify(peak)} client backends `
    + `(through NAME-pg-rw, through NAME-pg-ro, FerretDB's, all); pool gauges ${JSON.stringify(pools)}; operations ${JSON.stringify(result)}`);

  // Every operation waited for a connection and completed: none was refused.
  // (A pool full for longer than readiness allows takes the side's pods out of its Service, and
  // the driver's heartbeat may then fail and clear its pool: how many connections it opened again
  // is in the log line above, not asserted.)
  const completed = { ok: OPERATIONS, errors: [] };
  expect(result).toEqual({ ok: true, value: { reopened: expect.anything(), rw: completed, ro: completed } });
  for (const [pod, mark] of marks) {
    const log = c.h.logs(pod, pod === SERVER ? 'postgres' : 'ferretdb').slice(mark);
    expect({ pod, refused: log.split('\n').filter((l) => REFUSED.test(l)).slice(0, 3) }).toEqual({ pod, refused: [] });
  }
  // The pool bound holds: pods x pool_max_conns on both sides together, never more, and each pod's
  // pool at its bound (the gauges below).
  expect(peak.ferretdb).toBe((WRITERS + READERS) * POOL);
  expect(Object.keys(pools).length).toBe(WRITERS + READERS);
  for (const [pod, g] of Object.entries(pools)) {
    expect({ pod, ...g }).toEqual({ pod, acquired: POOL, size: POOL, max: POOL });
  }
  // README's arithmetic: both full sides, one surge pod's pool each, and room for the rest.
  expect(peak.ferretdb + 2 * POOL).toBe(README_MAX_CONNECTIONS - 30);
  expect(peak.all).toBeLessThan(README_MAX_CONNECTIONS - 3); // superuser_reserved_connections
});
