/**
 * Former primary data never starts writable behind a later timeline (datadir.sh
 * wait_until_startable): the primary pod stops cleanly and never rejoins as a standby, a replica is
 * promoted (timeline 2) and takes acknowledged writes, then the leader key is switched back to the
 * primary pod. It takes the Lease, but another member (replica-1, a standby on timeline 2) is
 * ahead of its timeline-1 data: it must not start, so that nothing the new timeline acknowledged is
 * forked off by a second writable history.
 */
import { insert, PgCluster, PRIMARY, replica, TABLE } from './fixture';
import { sampleWritability } from './harness';

jest.setTimeout(900_000);

/** How long the refusing primary pod is watched after it said why it does not start. */
const WATCH_MS = 30_000;

let pg: PgCluster | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
});

/** The timeline a standby's WAL receiver streams on (nothing while it does not stream). */
async function receivedTimeline(c: PgCluster, pod: string): Promise<string> {
  const r = await c.trySql(pod, "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'", 10_000);
  return r.code === 0 ? r.stdout.trim() : '';
}

test('switched back to the former primary while replica-1 is on a later timeline: primary-0 logs that replica-1 is ahead on timeline 2, is not writable for 30 s after, and replica-1 keeps every acknowledged row of timeline 2', async () => {
  const c = pg = await PgCluster.boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);
  await c.waitCount(replica(0), 't', 100);
  await c.waitCount(replica(1), 't', 100);

  // The primary pod goes (clean shutdown) and stays down: its data stays former primary data.
  await c.h.deletePod(PRIMARY, { recreate: false });

  // replica-0 is named; it promotes once the Lease (held by the gone pod) has expired.
  await c.h.apply(c.synth({ currentPrimary: replica(0) }), { wait: false });
  await c.h.waitUntil(`${replica(0)} promoted`, 240_000, async () => (await c.writablePrimaries([replica(0)])).length === 1);
  await c.waitStreaming(replica(0), [replica(1)], 240_000);
  await c.h.waitUntil(`${replica(1)} streams on timeline 2`, 120_000, async () => (await receivedTimeline(c, replica(1))) === '2');
  await c.sql(replica(0), insert(101, 200));
  await c.waitCount(replica(1), 't', 200);

  // Switched back: primary-0 named again and started on its timeline-1 data. replica-0 fences
  // itself (and cannot rejoin: no primary to rewind against); replica-1 stays a standby on 2.
  const mark = c.logMark(PRIMARY);
  await c.h.apply(c.synth({ currentPrimary: PRIMARY }), { wait: false });
  await c.h.startPod(PRIMARY);

  const refused = new RegExp(`not starting as primary yet: .*${replica(1)} has received WAL up to [0-9A-F]+/[0-9A-F]+ on timeline 2, this pod only up to timeline 1;`);
  const outcome = await c.h.waitUntil(`${PRIMARY} refuses to start (or starts writable)`, 300_000, async () => {
    if (refused.test(c.logsSince(PRIMARY, mark))) return 'refused';
    if ((await c.writablePrimaries([PRIMARY])).length === 1) return 'writable';
    return false;
  });
  if (outcome !== 'refused') {
    throw new Error(`${PRIMARY} started writable on timeline 1 while ${replica(1)} was on timeline 2; its log:\n`
      + c.logsSince(PRIMARY, mark).split('\n').slice(-20).join('\n'));
  }
  expect(c.logsSince(PRIMARY, mark)).toMatch(refused);

  // Watched for 30 s after that line: never writable, never started as primary.
  const samples = await sampleWritability(c.h, [PRIMARY], WATCH_MS);
  expect(samples.filter((s) => s.writable)).toEqual([]);
  expect(await c.writablePrimaries([PRIMARY, replica(0), replica(1)])).toEqual([]);
  expect(c.logsSince(PRIMARY, mark)).not.toMatch(/starting as primary$/m);

  // No acknowledged commit lost: replica-1 is still a standby holding every row of timeline 2.
  expect(await c.inRecovery(replica(1))).toBe(true);
  expect(await c.sql(replica(1), 'SELECT count(*) FROM t WHERE id BETWEEN 101 AND 200')).toBe('100');
  expect(await c.count(replica(1), 't')).toBe(200);
});
