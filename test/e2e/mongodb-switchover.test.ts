/**
 * A planned switchover under continuous MongoDB writes: the real FerretDB writers in front of the
 * StatefulSet backend with a synchronous quorum, an application inserting through `NAME-rw` with
 * the MongoDB driver (a new connection attempt after each error, as an application retries), and
 * the switchover as the suite does it (a new synth naming another `currentPrimary`, applied).
 */
import * as fs from 'fs';
import * as path from 'path';
import { CLIENT, MongoCluster, PRIMARY, replica, RW, continuousWriter } from './mongo-fixture';
import { ReplicationMode } from '../../src';

jest.setTimeout(600_000);

let m: MongoCluster | undefined;

afterEach(async () => {
  await m?.destroy();
  m = undefined;
});

const WRITER = (stopFile: string) => continuousWriter(stopFile, 100);

test('planned switchover under continuous MongoDB writes with synchronousQuorum(1): writes resume through NAME-rw on the new primary and no acknowledged insert is lost', async () => {
  const mode = ReplicationMode.synchronousQuorum(1);
  m = await MongoCluster.boot({ replicationMode: mode });
  const stopFile = path.join(m.h.root, 'stop-writer');
  const uri = `${m.uri(RW)}?retryWrites=false&serverSelectionTimeoutMS=2000`;
  const writing = m.h.exec(CLIENT, 'app', ['node', path.join(__dirname, 'ferretdb', 'mongo-client.js')],
    { input: JSON.stringify({ uri, db: 'shop', body: WRITER(stopFile) }), timeoutMs: 400_000 });
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
  expect(acked.some(([, at]) => at > promotedAt)).toBe(true); // writes resumed on the new primary
  expect(lost).toEqual([]);
  expect(await m.pg.writablePrimaries([PRIMARY, replica(0), replica(1)])).toEqual([replica(1)]);
});
