/**
 * Readers fall back to the primary (README "Connections"): the real FerretDB's reader pods, whose
 * URL lists `NAME-pg-ro` then `NAME-pg-rw`, keep serving reads through `NAME-ro` while no standby
 * is behind `NAME-pg-ro`, still read-only, and keep serving once the standbys are back.
 */
import { NAME } from './fixture';
import { MongoCluster, PRIMARY, READER_DEPLOYMENT, replica, RO, RW } from './mongo-fixture';

jest.setTimeout(300_000);

const STANDBYS = [replica(0), replica(1)];
const PG_RO = `${NAME}-pg-ro`;

let m: MongoCluster;

beforeAll(async () => {
  m = await MongoCluster.boot();
}, 600_000);

afterAll(async () => {
  // What the FerretDB pods said, for a failed run.
  m?.logWarnings();
  await m?.destroy();
});

/** A count through NAME-ro: a document written while every standby is down exists only on the primary, so finding it says the primary answered. */
const countThroughRo = async (sku: string) => m.mongo(m.uri(RO), `return db.collection('items').countDocuments({ sku: '${sku}' });`);

test('with every standby down, reads through NAME-ro go to the primary (read-only), and keep answering once the standbys are back', async () => {
  expect(await m.value(m.uri(RW), "return (await db.collection('items').insertOne({ sku: 'before' })).acknowledged;")).toBe(true);
  await m.h.waitUntil('NAME-ro reads the first write', 60_000, async () => (await countThroughRo('before')).value === 1);
  const readers = m.ferretPods(READER_DEPLOYMENT);

  for (const pod of STANDBYS) await m.h.deletePod(pod, { recreate: false });
  await m.h.waitUntil(`${PG_RO} has no endpoints`, 60_000, () => m.h.endpoints(PG_RO).length === 0);
  // Written after the standbys went: only the primary has it.
  expect(await m.value(m.uri(RW), "return (await db.collection('items').insertOne({ sku: 'during' })).acknowledged;")).toBe(true);
  const during = await m.h.waitUntil('NAME-ro answers from the primary', 90_000, async () => {
    const r = await countThroughRo('during');
    return r.ok && r.value === 1 ? r : undefined;
  });
  expect(during.value).toBe(1);
  // Still read-only on the primary (default_transaction_read_only=on): DocumentDB refuses the
  // write itself there ("read-only state", SQLSTATE M00E8), which FerretDB maps to
  // NotWritablePrimary (on a standby it is InternalError, see mongodb.test.ts).
  const write = await m.mongo(m.uri(RO), "return db.collection('items').insertOne({ sku: 'through-ro' });");
  expect({ ok: write.ok, code: write.error?.code, codeName: write.error?.codeName }).toEqual({ ok: false, code: 10107, codeName: 'NotWritablePrimary' });
  expect(await m.value(m.uri(RW), "return db.collection('items').countDocuments({ sku: 'through-ro' });")).toBe(0);
  // The same reader pods served it, and every one is Ready with every standby down: readiness
  // does not need the standbys. (A probe may fail meanwhile: each ping that draws a pooled
  // connection the standbys' shutdown terminated fails once, 57P01, and drops it.)
  expect(m.ferretPods(READER_DEPLOYMENT)).toEqual(readers);
  await m.h.waitUntil('every reader pod Ready behind NAME-ro with every standby down', 60_000,
    () => m.h.endpoints(RO).sort().join(' ') === readers.join(' '));
  expect(m.h.endpoints(PG_RO)).toEqual([]);

  for (const pod of STANDBYS) await m.h.startPod(pod);
  await m.pg.waitStreaming(PRIMARY, STANDBYS);
  await m.h.waitUntil(`${PG_RO} has its standbys back`, 120_000, () => m.h.endpoints(PG_RO).length === STANDBYS.length);
  // (The pool's connections to the primary move back within the connection lifetime, 5-6 min: not waited for here.)
  await m.h.waitUntil('reads through NAME-ro still answer', 60_000, async () => (await countThroughRo('during')).value === 1);
});
