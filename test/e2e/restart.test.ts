/**
 * A whole cluster restarting at once (a node reboot, `kubectl delete pod --all`) while the primary
 * runs at a higher ordinal of the replica StatefulSet: the StatefulSet controller must bring
 * every pod back. With OrderedReady it would create replica-0 first and wait for it to be Ready,
 * which a standby is not without a primary, so replica-1 (the primary) would never come back.
 */
import { insert, PgCluster, PRIMARY, replica, synthCluster, TABLE } from './fixture';

jest.setTimeout(480_000);

let pg: PgCluster | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
});

const ALL = [PRIMARY, replica(0), replica(1)];

test('full restart with the primary at replica-1: every pod comes back Ready, replica-1 writable, both others streaming from it', async () => {
  const c = pg = await PgCluster.boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, TABLE);
  await c.sql(PRIMARY, insert(1, 100));
  await c.h.apply(synthCluster({ currentPrimary: replica(1) }), { wait: false });
  await c.h.waitUntil(`${replica(1)} writable`, 180_000, async () => (await c.writablePrimaries([replica(1)])).length === 1);
  await c.waitStreaming(replica(1), [replica(0), PRIMARY], 180_000);

  // Every pod dies at once; the controllers recreate them (same volumes, new IPs).
  await Promise.all(ALL.map((pod) => c.h.killPod(pod)));
  await c.h.waitUntil('every PostgreSQL pod back and Ready', 300_000, () => ALL.every((pod) => c.h.isReady(pod)));

  expect(await c.writablePrimaries(ALL)).toEqual([replica(1)]);
  await c.waitStreaming(replica(1), [replica(0), PRIMARY], 120_000);
  await c.waitCount(replica(0), 't', 100);
  await c.waitCount(PRIMARY, 't', 100);
});
