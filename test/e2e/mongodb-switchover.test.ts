/**
 * A planned switchover under continuous MongoDB writes: the real FerretDB writers in front of the
 * StatefulSet backend with a synchronous quorum, an application inserting through `NAME-rw` with
 * the MongoDB driver (a new connection attempt after each error, as an application retries), and
 * the switchover as the suite does it (a new synth naming another `currentPrimary`, applied).
 */
import * as fs from 'fs';
import * as path from 'path';
import { CLIENT, MongoCluster, PRIMARY, READER_DEPLOYMENT, replica, RO, RW, continuousWriter, WRITER_DEPLOYMENT } from './mongo-fixture';
import { ReplicationMode } from '../../src';

jest.setTimeout(600_000);

let m: MongoCluster | undefined;

afterEach(async () => {
  await m?.destroy();
  m = undefined;
});

const WRITER = (stopFile: string) => continuousWriter(stopFile, 100);

/** Finds through NAME-ro every 100 ms until the stop file exists: when each succeeded, and the errors. */
const READER = (stopFile: string) => `
  const fs = require('fs');
  const reads = [];
  const errors = {};
  while (!fs.existsSync(${JSON.stringify(stopFile)})) {
    try {
      await db.collection('orders').findOne({});
      reads.push(Date.now());
    } catch (e) {
      const key = (e.codeName || e.name) + ': ' + String(e.message).slice(0, 80);
      errors[key] = (errors[key] || 0) + 1;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { reads, errors };`;

/** The longest time between two successive instants (ms), or Infinity with fewer than two. */
const longestGap = (times: number[]) => times.length < 2 ? Infinity : Math.max(...times.slice(1).map((t, i) => t - times[i]));

test('planned switchover under continuous MongoDB writes (retryable writes on) with synchronousQuorum(1): writes resume through NAME-rw on the new primary, no acknowledged insert is lost, NAME-ro keeps serving reads and no FerretDB container restarts', async () => {
  const mode = ReplicationMode.synchronousQuorum(1);
  m = await MongoCluster.boot({ replicationMode: mode });
  const stopFile = path.join(m.h.root, 'stop-writer');
  // Retryable writes on (the driver's default, said explicitly): FerretDB answers hello as a
  // standalone server (no setName), so the driver does not retry a failed insert by itself.
  const uri = `${m.uri(RW)}?retryWrites=true&serverSelectionTimeoutMS=2000`;
  const writing = m.h.exec(CLIENT, 'app', ['node', path.join(__dirname, 'ferretdb', 'mongo-client.js')],
    { input: JSON.stringify({ uri, db: 'shop', body: WRITER(stopFile) }), timeoutMs: 400_000 });
  const reading = m.h.exec(CLIENT, 'app', ['node', path.join(__dirname, 'ferretdb', 'mongo-client.js')],
    { input: JSON.stringify({ uri: `${m.uri(RO)}&serverSelectionTimeoutMS=2000`, db: 'shop', body: READER(stopFile) }), timeoutMs: 400_000 });
  const ferretdbPods = [...m.ferretPods(WRITER_DEPLOYMENT), ...m.ferretPods(READER_DEPLOYMENT)];
  expect(ferretdbPods.length).toBeGreaterThanOrEqual(2);
  await m.h.waitUntil('the writer has inserted', 30_000, async () =>
    (await m!.mongo(m!.uri(RW), "return db.collection('orders').countDocuments({});")).value > 20);

  const switchedAt = Date.now();
  await m.apply({ replicationMode: mode, currentPrimary: replica(1) }, { wait: false });
  await m.h.waitUntil(`${replica(1)} promoted`, 180_000, async () => (await m!.pg.writablePrimaries([replica(1)])).length === 1);
  const promotedAt = Date.now();
  const count = async (): Promise<number | undefined> => {
    const c = await m!.mongo(m!.uri(RW), "return db.collection('orders').countDocuments({});");
    return c.ok ? c.value : undefined;
  };
  const afterPromotion = await m.h.waitUntil(`${RW} answers on the new primary`, 120_000, count);
  await m.h.waitUntil('the writer inserts on the new primary', 120_000, async () => ((await count()) ?? 0) > afterPromotion + 20);
  fs.writeFileSync(stopFile, '');
  const r = await writing;
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout) as { ok: boolean; value: { acked: Array<[number, number]>; errors: Record<string, number> } };
  expect(out.ok).toBe(true);
  const { acked, errors } = out.value;

  // The longest time without an acknowledged insert, around the switchover.
  let outageMs = 0;
  for (let i = 1; i < acked.length; i++) outageMs = Math.max(outageMs, acked[i][1] - acked[i - 1][1]);
  const ids = acked.map(([id]) => id);
  const present = new Set<number>(await m.value(m.uri(RW), `
    return (await db.collection('orders').find({ _id: { $in: ${JSON.stringify(ids)} } }, { projection: { _id: 1 } }).toArray()).map((d) => d._id);`));
  const lost = ids.filter((id) => !present.has(id));
  console.log(`MongoDB switchover, synchronousQuorum(1): ${acked.length} acknowledged inserts, ${lost.length} lost; `
    + `longest gap between acknowledged inserts ${outageMs} ms; promoted ${promotedAt - switchedAt} ms after the apply; errors seen: ${JSON.stringify(errors)}`);
  const read = JSON.parse((await reading).stdout) as { ok: boolean; value: { reads: number[]; errors: Record<string, number> } };
  expect(read.ok).toBe(true);
  const during = read.value.reads.filter((at) => at >= switchedAt && at <= promotedAt).length;
  const readGapMs = longestGap(read.value.reads);
  console.log(`NAME-ro during the switchover: ${read.value.reads.length} finds, ${during} of them between the apply and the promotion; `
    + `longest gap between successful finds ${readGapMs} ms; errors seen: ${JSON.stringify(read.value.errors)}`);
  expect(acked.some(([, at]) => at > promotedAt)).toBe(true); // writes resumed on the new primary
  expect(lost).toEqual([]);
  // The standby that was not named streams on: reads through NAME-ro never stop for long.
  expect(during).toBeGreaterThan(0);
  expect({ readGapMs, within: readGapMs <= 30_000 }).toEqual({ readGapMs, within: true });
  // FerretDB reconnected by itself: the same pods, none of their containers restarted.
  for (const pod of ferretdbPods) expect({ pod, restarts: m.h.restarts(pod, 'ferretdb') }).toEqual({ pod, restarts: 0 });
  expect(await m.pg.writablePrimaries([PRIMARY, replica(0), replica(1)])).toEqual([replica(1)]);
});
