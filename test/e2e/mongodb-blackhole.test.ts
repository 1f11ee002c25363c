/**
 * A lost primary with the real FerretDB in front: every packet to the primary's pod dropped (a
 * dead node: nothing is refused, open connections just stop answering), then the switchover as
 * the suite does it (a new synth naming another `currentPrimary`, applied). An application
 * inserts through `NAME-rw` the whole time, as in mongodb-switchover.test.ts.
 *
 * Probes run with `probeTiming: 'synthesized'` (every probe at its synthesized period, as the
 * kubelet runs them): FerretDB's readiness every 5 s and liveness 10 s x 12.
 */
import * as fs from 'fs';
import * as path from 'path';
import { NAME } from './fixture';
import { CLIENT, MongoCluster, PRIMARY, replica, RO, RW, WRITER_DEPLOYMENT, continuousWriter } from './mongo-fixture';

jest.setTimeout(1_200_000);

/** FerretDB's settings the bounds come from (src/ferretdb/deployment.ts, as synthesized). */
const READINESS_PERIOD_S = 5;
const PROBE_TIMEOUT_S = 3;
const CONNECT_TIMEOUT_S = 5;
const CONN_LIFETIME_S = 5 * 60 + 60; // pool_max_conn_lifetime + its jitter
const HEALTH_CHECK_S = 60; // pgxpool's health-check period: idle connections past their lifetime are closed then
/**
 * The README's bound for writes through NAME-rw after the new primary is Ready: a failed
 * readiness ping has its context cancelled by the probe's timeout, and pgx closes a connection
 * whose query is cancelled, so no dead connection stays in the pool; the next readiness probe
 * (one period) connects to the new primary (at most connect_timeout) and the pod is back in
 * NAME-rw.
 */
const WRITER_BOUND_S = READINESS_PERIOD_S + PROBE_TIMEOUT_S + CONNECT_TIMEOUT_S;
/** The README's bound for every connection of a pool to be replaced (through its Service again). */
const LIFETIME_BOUND_S = CONN_LIFETIME_S + HEALTH_CHECK_S;

let m: MongoCluster | undefined;

afterAll(async () => {
  // What the FerretDB pods said, for a failed run.
  m?.logWarnings(8);
  await m?.destroy();
});

/**
 * The continuous writer through NAME-rw. The socket timeout of the client (an application's own
 * timeout) bounds each try: without one the driver would wait on a silent connection forever.
 */
const WRITER = (stopFile: string) => continuousWriter(stopFile, 200);

/** FerretDB reader sessions on `pod` (they come from NAME-pg-ro's ClusterIP), with their start times (ms). */
async function readerSessions(pod: string): Promise<number[]> {
  const r = await m!.pg.trySql(pod, `SELECT (extract(epoch FROM backend_start) * 1000)::bigint FROM pg_stat_activity
    WHERE usename = 'ferretdb' AND client_addr = '${m!.h.clusterIp(`${NAME}-pg-ro`)}'`, 10_000);
  if (r.code !== 0) throw new Error(`${pod}: ${r.stderr}`);
  return r.stdout.trim().split('\n').filter(Boolean).map(Number);
}

test(`a blackholed primary, then a switchover: writes through NAME-rw resume within the README's bound after the promotion (${WRITER_BOUND_S} s; asserted with a margin), and NAME-ro reads from the standby that follows the new primary`, async () => {
  m = await MongoCluster.boot({}, { probeTiming: 'synthesized' });
  const c = m;
  const writers = c.ferretPods(WRITER_DEPLOYMENT);
  // The readers' pools reach both standbys (reads through NAME-ro, one connection each).
  expect(await c.value(c.uri(RW), "return (await db.collection('orders').insertOne({ _id: 0 })).acknowledged;")).toBe(true);
  await c.h.waitUntil('reader sessions on both standbys', 120_000, async () => {
    await c.mongo(c.uri(RO), "return db.collection('orders').countDocuments({});");
    return (await readerSessions(replica(0))).length > 0 && (await readerSessions(replica(1))).length > 0;
  });

  const stopFile = path.join(c.h.root, 'stop-writer');
  const uri = `${c.uri(RW)}?retryWrites=false&serverSelectionTimeoutMS=2000&connectTimeoutMS=3000&socketTimeoutMS=10000`;
  const writing = c.h.exec(CLIENT, 'app', ['node', path.join(__dirname, 'ferretdb', 'mongo-client.js')],
    { input: JSON.stringify({ uri, db: 'shop', body: WRITER(stopFile) }), timeoutMs: 1_000_000 });
  const count = async (): Promise<number | undefined> => {
    const r = await c.mongo(c.uri(RW), "return db.collection('orders').countDocuments({});");
    return r.ok ? r.value : undefined;
  };
  await c.h.waitUntil('the writer has inserted', 60_000, async () => ((await count()) ?? 0) > 20);

  // A dead node: nothing reaches it or leaves it (its open connections go silent, never closed),
  // and its kubelet delivers nothing.
  c.h.holdConfig(PRIMARY);
  await c.h.blackhole(PRIMARY, { outgoing: true });
  const lostAt = Date.now();
  await c.apply({ currentPrimary: replica(1) }, { wait: false });
  await c.h.waitUntil(`${replica(1)} promoted`, 300_000, async () => (await c.pg.writablePrimaries([replica(1)])).length === 1);
  const promotedAt = Date.now();
  const served = await c.h.waitUntil(`${RW} answers again`, WRITER_BOUND_S * 3 * 1000, count);
  await c.h.waitUntil('the writer inserts on the new primary', 120_000, async () => ((await count()) ?? 0) > served + 10);
  fs.writeFileSync(stopFile, '');
  const r = await writing;
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout) as { ok: boolean; value: { acked: Array<[number, number]>; errors: Record<string, number> } };
  expect(out.ok).toBe(true);
  const { acked, errors } = out.value;
  const lastBefore = [...acked].reverse().find(([, at]) => at < lostAt)?.[1];
  const firstAfter = acked.find(([, at]) => at > lostAt)?.[1];
  expect(firstAfter).toBeDefined();
  const recoveryS = (firstAfter! - lostAt) / 1000;
  const restarts = writers.map((p) => `${p}: ${c.ferretPods(WRITER_DEPLOYMENT).includes(p) ? c.h.restarts(p, 'ferretdb') : 'replaced'}`);
  console.log(`blackholed ${PRIMARY}: ${replica(1)} writable ${((promotedAt - lostAt) / 1000).toFixed(1)} s after; first acknowledged insert through ${RW} `
    + `${recoveryS.toFixed(1)} s after the loss (last one before it ${lastBefore === undefined ? '-' : lostAt - lastBefore} ms earlier), `
    + `${((firstAfter! - promotedAt) / 1000).toFixed(1)} s after the promotion; writer FerretDB restarts: ${restarts.join(', ')}; ${PRIMARY} postgres restarts ${c.h.restarts(PRIMARY, 'postgres')}; errors: ${JSON.stringify(errors)}`);
  // Acknowledged inserts after the loss are on the new primary.
  const afterIds = acked.filter(([, at]) => at > lostAt).map(([id]) => id);
  const present = new Set<number>(await c.value(c.uri(RW), `
    return (await db.collection('orders').find({ _id: { $in: ${JSON.stringify(afterIds)} } }, { projection: { _id: 1 } }).toArray()).map((d) => d._id);`));
  expect(afterIds.filter((id) => !present.has(id))).toEqual([]);
  // Generous: a loaded machine (the figure is printed above).
  expect((firstAfter! - promotedAt) / 1000).toBeLessThan(WRITER_BOUND_S * 5);

  // Readers: a write made after the switchover is read through NAME-ro, from the remaining standby too.
  expect(await c.value(c.uri(RW), "return (await db.collection('orders').insertOne({ _id: 'after' })).acknowledged;")).toBe(true);
  await c.h.waitUntil(`${RO} reads the write made after the switchover`, 120_000, async () =>
    (await c.mongo(c.uri(RO), "return db.collection('orders').countDocuments({ _id: 'after' });")).value === 1);
  const onStandby = await readerSessions(replica(0));
  console.log(`reader sessions now: ${(await readerSessions(replica(1))).length} on ${replica(1)} (the primary), ${onStandby.length} on ${replica(0)} (a standby)`);
  expect(await c.pg.inRecovery(replica(0))).toBe(true);
  expect(onStandby.length).toBeGreaterThan(0);
});

test(`every connection of FerretDB's pools is replaced within pool_max_conn_lifetime + jitter + pgxpool's health check (${LIFETIME_BOUND_S} s), through its Service again`, async () => {
  const c = m!;
  const since = Date.now();
  const live = [replica(0), replica(1)];
  const sessions = async () => {
    const all: number[] = [];
    for (const pod of live) {
      const r = await c.pg.trySql(pod, "SELECT (extract(epoch FROM backend_start) * 1000)::bigint FROM pg_stat_activity WHERE usename = 'ferretdb' AND client_addr IS NOT NULL", 10_000);
      if (r.code !== 0) throw new Error(`${pod}: ${r.stderr}`);
      all.push(...r.stdout.trim().split('\n').filter(Boolean).map(Number));
    }
    return all;
  };
  const before = (await sessions()).length;
  expect(before).toBeGreaterThan(0);
  await c.h.waitUntil('every FerretDB session opened after the mark', LIFETIME_BOUND_S * 2 * 1000, async () => {
    // Traffic on both sides, as an application's.
    await c.mongo(c.uri(RW), "return db.collection('orders').countDocuments({});");
    await c.mongo(c.uri(RO), "return db.collection('orders').countDocuments({});");
    const now = await sessions();
    return now.length > 0 && now.every((t) => t > since);
  });
  const replacedS = (Date.now() - since) / 1000;
  console.log(`all ${before} FerretDB sessions replaced ${replacedS.toFixed(0)} s after the mark (bound ${LIFETIME_BOUND_S} s)`);
  expect(replacedS).toBeLessThan(LIFETIME_BOUND_S * 1.5);
});
