/**
 * The system identifier on real PostgreSQL: when the primary is a different database than a
 * standby's data, the standby never streams from it and is never re-cloned from it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { insert, PgCluster, PRIMARY, PRIMARY_STS, replica, synthCluster, TABLE } from './fixture';

jest.setTimeout(600_000);

let pg: PgCluster | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
});

/**
 * The "Database system identifier" of a data directory on the host: the first field of
 * global/pg_control (a uint64 in the machine's byte order), whatever the major version.
 */
function systemIdentifier(pgdata: string): string {
  return fs.readFileSync(path.join(pgdata, 'global', 'pg_control')).readBigUInt64LE(0).toString();
}

test('state ConfigMap deleted and primary volume lost: the primary initialises a new database, no replica is wiped or streams from it, and the replicas say why', async () => {
  pg = await PgCluster.boot();
  const c = pg;
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 500)}`);
  // WAL well past what a new cluster writes: the new primary lacks the segment the replicas need
  // next, which is when a standby would be re-cloned.
  for (let i = 0; i < 8; i++) await c.sql(PRIMARY, `${insert(1000 + i, 1000 + i)}; SELECT pg_switch_wal()`);
  await c.waitCount(replica(0), 't', 508);
  await c.waitCount(replica(1), 't', 508);
  const original = await c.sql(PRIMARY, 'SELECT system_identifier FROM pg_control_system()');
  await c.h.waitUntil('cluster recorded', 30_000, () => c.h.getConfigMap(`${PRIMARY_STS}-state`)?.systemIdentifier === original);

  // The state ConfigMap goes (a GitOps Replace) and so does the primary's volume.
  await c.h.killPod(PRIMARY, { recreate: false });
  c.h.wipeVolume(PRIMARY, 'data');
  expect(c.h.deleteConfigMap(`${PRIMARY_STS}-state`)).toBe(true);
  await c.h.apply(synthCluster(), { wait: false });
  const marks = [replica(0), replica(1)].map((pod) => [c.logMark(pod), c.logMark(pod, 'agent')]);
  await c.h.startPod(PRIMARY);
  await c.h.waitReady(PRIMARY, 240_000);
  const created = await c.sql(PRIMARY, 'SELECT system_identifier FROM pg_control_system()');
  expect(created).not.toBe(original);

  const said = /the primary behind \S+ is a different database \(system identifier \d+\) than this pod's data \(\d+\)/;
  for (const [i, pod] of [replica(0), replica(1)].entries()) {
    await c.h.waitUntil(`${pod} says why it does not follow ${PRIMARY}`, 180_000, () =>
      said.test(c.logsSince(pod, marks[i][0])) || said.test(c.logsSince(pod, marks[i][1], 'agent')));
  }
  // A restarted replica refuses too, and says why.
  const mark = c.logMark(replica(0));
  await c.h.deletePod(replica(0));
  await c.waitLog(replica(0), said, mark, 120_000);

  for (const [i, pod] of [replica(0), replica(1)].entries()) {
    expect({ pod, recloned: /clone complete/.test(c.logsSince(pod, marks[i][0])) }).toEqual({ pod, recloned: false });
    expect(fs.existsSync(path.join(c.pgdata(pod), 'PG_VERSION'))).toBe(true);
    expect({ pod, system: systemIdentifier(c.pgdata(pod)) }).toEqual({ pod, system: original });
  }
  expect(await c.count(replica(1), 't')).toBe(508);
  expect(await c.sql(PRIMARY, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")).toBe('0');
});
