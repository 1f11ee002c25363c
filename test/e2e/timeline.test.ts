/**
 * A standby that received WAL the promoted standby never had: after the promotion it is past the
 * new timeline's switch point and cannot follow it by streaming ("new timeline N forked off ...
 * before current recovery point"). It must notice on its next start and rewind (or re-clone)
 * itself, then follow the new primary with the new primary's data, even when the new primary
 * cannot be asked at that moment (not yet an endpoint of NAME-pg-rw, or cut off): it never starts
 * streaming without knowing the primary's timeline.
 */
import { insert, PgCluster, PRIMARY, PRIMARY_STS, replica, synthCluster, TABLE } from './fixture';

jest.setTimeout(600_000);

let pg: PgCluster | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
});

test('a standby past the new timeline\'s switch point, started while the new primary cannot be asked, waits for it, rewinds itself and follows it', async () => {
  const c = pg = await PgCluster.boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);
  await c.waitCount(replica(0), 't', 100);
  await c.waitCount(replica(1), 't', 100);

  // replica-0 goes away; replica-1 receives 100 more rows; then the primary and replica-1 go too.
  await c.h.deletePod(replica(0), { recreate: false });
  await c.sql(PRIMARY, insert(101, 200));
  await c.waitCount(replica(1), 't', 200);
  await c.h.deletePod(replica(1), { recreate: false });
  await c.h.killPod(PRIMARY, { recreate: false });

  // Runbook with the more advanced standby unreachable: replica-0 is designated and promotes.
  await c.h.scale(PRIMARY_STS, 0);
  // replica-1 is gone (no pod, so no answer): a member that cannot be asked blocks a promotion,
  // so the runbook's way past it is to scale it out of the members first.
  await c.h.apply(synthCluster({ currentPrimary: replica(0), replicas: 1 }), { wait: false });
  await c.h.startPod(replica(0));
  await c.h.waitUntil(`${replica(0)} promoted`, 180_000, async () => (await c.writablePrimaries([replica(0)])).length === 1);
  expect(await c.count(replica(0), 't')).toBe(100);
  await c.sql(replica(0), insert(1001, 1010));

  // replica-1 comes back with rows 101..200 on the old timeline, past the switch point, while
  // the new primary cannot be reached through NAME-pg-rw (cut off from the other pods).
  await c.h.waitReady(replica(0), 120_000);
  await c.h.partition(replica(0), { from: 'pods' });
  const mark = c.logMark(replica(1));
  // Scaled back up: replica-1 starts on its retained volume, past the switch point.
  await c.h.apply(synthCluster({ currentPrimary: replica(0) }), { wait: false });
  await c.h.startPod(replica(1));
  await c.waitLog(replica(1), /cannot be asked for its system identifier and timeline \(.*\): running this standby read-only without streaming/, mark, 120_000);
  // Read-only meanwhile: it answers with its own rows, as members and the runbook ask it.
  await c.h.waitUntil(`${replica(1)} answers read-only`, 120_000, async () => (await c.trySql(replica(1), 'SELECT count(*) FROM t', 10_000)).stdout.trim() === '200');

  await c.h.heal(replica(0));
  await c.waitStreaming(replica(0), [replica(1)], 240_000);
  await c.waitCount(replica(1), 't', 110);
  const digest = 'SELECT count(*) || \':\' || md5(string_agg(id::text || v, \',\' ORDER BY id)) FROM t';
  expect(await c.sql(replica(1), digest)).toBe(await c.sql(replica(0), digest));
  expect(c.logsSince(replica(1), mark)).toMatch(/older timeline than the primary's and may be past the primary's switch point: rewinding it/);
});
