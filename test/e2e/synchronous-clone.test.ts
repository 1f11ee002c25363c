/**
 * A clone under a synchronous quorum, on real PostgreSQL 17: pg_basebackup streams WAL through
 * the pod's slot, but a copy that is deleted if the clone fails must never acknowledge a commit.
 */
import * as fs from 'fs';
import * as path from 'path';
import { insert, PgCluster, PRIMARY, replica, TABLE, toolWrappers } from './fixture';
import { ReplicationMode } from '../../src';

jest.setTimeout(420_000);

let pg: PgCluster | undefined;
let tools: ReturnType<typeof toolWrappers> | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
  tools?.remove();
  tools = undefined;
});

test('under synchronousQuorum(1), while only a cloning standby is connected, commits do not return: the clone is no quorum candidate', async () => {
  // pg_basebackup at the lowest rate it takes (32 kB/s) once the file `slow` exists: a clone
  // that stays connected long enough to be looked at.
  tools = toolWrappers({ pg_basebackup: '[ -e "$DIR/slow" ] && exec "$REAL" --max-rate=32k "$@"\nexec "$REAL" "$@"' });
  const mode = ReplicationMode.synchronousQuorum(1);
  pg = await PgCluster.boot({ replicationMode: mode }, tools.options);
  const c = pg;
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 10)}`);
  expect(await c.sql(PRIMARY, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'")).toBe('2');

  // Both standbys go; replica-1 comes back on an empty volume and clones, slowly.
  await c.h.deletePod(replica(0), { recreate: false });
  await c.h.deletePod(replica(1), { recreate: false });
  c.h.wipeVolume(replica(1), 'data');
  fs.writeFileSync(path.join(tools.dir, 'slow'), '');
  await c.h.startPod(replica(1));
  await c.h.waitUntil('a base backup in progress with its WAL stream connected', 120_000, async () =>
    (await c.sql(PRIMARY, `SELECT (SELECT count(*) FROM pg_stat_progress_basebackup) > 0
      AND (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming') > 0`)) === 't');

  const commit = await c.trySql(PRIMARY, insert(11, 11), 8_000);
  const walsenders = await c.sql(PRIMARY, "SELECT string_agg(application_name || ':' || state || ':' || sync_state, ', ') FROM pg_stat_replication");
  console.log(`commit while only a clone is connected: ${commit.timedOut ? 'waits' : `returned (exit ${commit.code})`}; walsenders: ${walsenders}`);
  expect(await c.sql(PRIMARY, 'SELECT count(*) FROM pg_stat_progress_basebackup')).toBe('1'); // still cloning
  expect(walsenders).not.toMatch(/:(quorum|sync)$|:(quorum|sync),/);
  expect(commit.timedOut).toBe(true);
});
