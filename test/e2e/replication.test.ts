/**
 * Real PostgreSQL 17 with the real DocumentDB extension running the pods of a real
 * FerretDBCluster synth: their own scripts, settings, env and volumes (see ./harness for what is
 * emulated, ./documentdb.ts for the extension's build and the one test setting).
 * Every assertion reads server state over SQL; every wait is a bounded poll.
 */
import * as fs from 'fs';
import * as path from 'path';
import { insert, NAME, PgCluster, PRIMARY, PRIMARY_STS, replica, synthCluster, TABLE } from './fixture';
import { ReplicationMode, slotNameForPod } from '../../src';

jest.setTimeout(300_000);

let pg: PgCluster | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
});

async function boot(props: Parameters<typeof PgCluster.boot>[0] = {}): Promise<PgCluster> {
  pg = await PgCluster.boot(props);
  return pg;
}


test('bootstrap: rows reach both replicas, replicas refuse writes, each streams through its own slot', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);
  await c.waitCount(replica(0), 't', 100);
  await c.waitCount(replica(1), 't', 100);

  for (const pod of [replica(0), replica(1)]) {
    expect(await c.inRecovery(pod)).toBe(true);
    const write = await c.trySql(pod, insert(1000, 1000));
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/read-only transaction|the database is in recovery/);
    // primary_conninfo names the read-write Service, never a pod, with application_name = pod name.
    const conninfo = await c.sql(pod, 'SHOW primary_conninfo');
    expect(conninfo).toMatch(new RegExp(`host=${NAME}-pg-rw `));
    expect(conninfo).toContain(`application_name=${pod}`);
    expect(conninfo).not.toMatch(/password=/);
    expect(await c.sql(pod, 'SHOW primary_slot_name')).toBe(slotNameForPod(pod));
  }
  expect(await c.inRecovery(PRIMARY)).toBe(false);
  const slots = await c.sql(PRIMARY, `
    SELECT r.application_name || ' ' || s.slot_name || ' ' || s.active
    FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid ORDER BY 1`);
  expect(slots.split('\n')).toEqual([
    `${replica(0)} ${slotNameForPod(replica(0))} true`,
    `${replica(1)} ${slotNameForPod(replica(1))} true`,
  ]);

  // The Job created the Secret once; running it again keeps the passwords.
  const secret = c.h.getSecret(`${NAME}-credentials`);
  expect(Object.keys(secret ?? {}).sort()).toEqual(['ferretdb-password', 'replication-password']);
  expect(secret?.['replication-password']).toMatch(/^[0-9a-f]{64}$/);
  const again = await c.h.runJob(c.credentialsJob!);
  expect(again.succeeded).toBe(true);
  expect(again.logs).toMatch(/already exists; left unchanged/);
  expect(c.h.getSecret(`${NAME}-credentials`)).toEqual(secret);

  // FerretDB's role logs in over the network with the generated password; the replication role
  // cannot read documents.
  const ferret = await c.h.exec(replica(0), 'postgres', ['bash', '-c',
    `PGPASSWORD="$(cat /etc/ferretdb-postgres-secret/ferretdb-password)" psql -XAtc 'SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user' "host=${NAME}-pg-rw user=ferretdb dbname=postgres"`]);
  expect(ferret.stdout.trim()).toBe('ferretdb|f');
});

test('replica restart: keeps its data, reconnects through its slot and catches up', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);
  await c.waitCount(replica(0), 't', 100);
  const marker = path.join(c.pgdata(replica(0)), 'kept-by-restart');
  fs.writeFileSync(marker, 'x');
  const systemId = await c.sql(replica(0), 'SELECT system_identifier FROM pg_control_system()');

  await c.h.deletePod(replica(0), { recreate: false });
  const mark = c.logMark(replica(0));
  await c.sql(PRIMARY, insert(101, 300));
  expect(await c.sql(PRIMARY, `SELECT active FROM pg_replication_slots WHERE slot_name = '${slotNameForPod(replica(0))}'`)).toBe('f');

  await c.h.startPod(replica(0));
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.waitCount(replica(0), 't', 300);
  expect(fs.existsSync(marker)).toBe(true); // no new base backup
  expect(c.logsSince(replica(0), mark)).toMatch(/starting as standby/);
  expect(c.logsSince(replica(0), mark)).not.toMatch(/cloning/);
  expect(await c.sql(replica(0), 'SELECT system_identifier FROM pg_control_system()')).toBe(systemId);
});

test('primary restart: replicas reconnect by themselves and nothing is lost', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 200)}`);
  await c.waitCount(replica(1), 't', 200);

  await c.h.deletePod(PRIMARY);
  await c.h.waitReady(PRIMARY, 120_000);
  expect(await c.inRecovery(PRIMARY)).toBe(false);
  expect(await c.count(PRIMARY, 't')).toBe(200);
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, insert(201, 250));
  await c.waitCount(replica(0), 't', 250);
  await c.waitCount(replica(1), 't', 250);
});

test('scale 2 -> 3 -> 1: the new replica gets its own slot; slots of removed replicas are dropped', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);

  await c.h.apply(synthCluster({ replicas: 3 }));
  await c.h.waitReady(replica(2), 180_000);
  await c.waitStreaming(PRIMARY, [replica(0), replica(1), replica(2)]);
  await c.waitCount(replica(2), 't', 100);

  await c.h.apply(synthCluster({ replicas: 1 }));
  // The primary's agent drops the slots of pods that are no longer members (not active any more).
  await c.h.waitUntil('only replica-0 keeps a slot', 90_000, async () =>
    (await c.sql(PRIMARY, 'SELECT string_agg(slot_name, \',\' ORDER BY slot_name) FROM pg_replication_slots')) === slotNameForPod(replica(0)));
  await c.sql(PRIMARY, insert(101, 150));
  await c.waitCount(replica(0), 't', 150);
});

test('slot lost: WAL stays bounded, the returning replica re-clones itself and streams again', async () => {
  const c = await boot({
    replicas: 1,
    wal: { maxSlotWalKeepSize: '64MB', walKeepSize: '16MB' },
    parameters: { max_wal_size: '96MB', min_wal_size: '32MB' },
  });
  await c.waitStreaming(PRIMARY, [replica(0)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 1000)}`);
  await c.waitCount(replica(0), 't', 1000);
  await c.h.deletePod(replica(0), { recreate: false });

  const start = await c.sql(PRIMARY, 'SELECT pg_current_wal_lsn()');
  for (let i = 0; i < 8; i++) {
    await c.sql(PRIMARY, "CREATE TABLE IF NOT EXISTS filler (v text); INSERT INTO filler SELECT repeat('x', 500) FROM generate_series(1, 100000); CHECKPOINT", 120_000);
  }
  const writtenMB = Number(await c.sql(PRIMARY, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${start}') / 1048576`));
  expect(writtenMB).toBeGreaterThan(300);
  await c.h.waitUntil('slot invalidated', 60_000, async () =>
    (await c.sql(PRIMARY, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = '${slotNameForPod(replica(0))}'; CHECKPOINT`)) === 'lost');
  const walMB = c.walBytesOnDisk(PRIMARY) / 1048576;
  // Bounded by max_slot_wal_keep_size + wal_keep_size + max_wal_size (+ segments in flight), far
  // below what was written while the replica was down.
  expect(walMB).toBeLessThan(64 + 16 + 96 + 32);
  expect(walMB).toBeLessThan(writtenMB / 2);

  await c.h.startPod(replica(0));
  await c.waitLog(replica(0), /slot .* was invalidated.*Re-cloning/, 0, 120_000);
  await c.waitStreaming(PRIMARY, [replica(0)], 180_000);
  await c.sql(PRIMARY, insert(1001, 1010));
  await c.waitCount(replica(0), 't', 1010);
  expect(await c.sql(PRIMARY, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = '${slotNameForPod(replica(0))}'`)).not.toBe('lost');
});

test('lost volume: a replica whose data directory was wiped clones again on restart', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);
  await c.h.deletePod(replica(1), { recreate: false });
  const mark = c.logMark(replica(1));
  c.h.wipeVolume(replica(1), 'data');
  expect(fs.existsSync(path.join(c.pgdata(replica(1)), 'PG_VERSION'))).toBe(false);
  await c.sql(PRIMARY, insert(101, 120));

  await c.h.startPod(replica(1), { timeoutMs: 180_000 });
  await c.waitLog(replica(1), /clone complete/, mark);
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.waitCount(replica(1), 't', 120);
});

test('synchronous quorum ANY 1 of 2: commits survive one replica down, wait with both down, and are on a replica', async () => {
  const c = await boot({ replicationMode: ReplicationMode.synchronousQuorum(1) });
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  expect(await c.sql(PRIMARY, 'SHOW synchronous_standby_names')).toBe(`ANY 1 ("${PRIMARY}", "${replica(0)}", "${replica(1)}")`);
  expect(await c.sql(PRIMARY, 'SELECT string_agg(sync_state, \',\') FROM pg_stat_replication')).toBe('quorum,quorum');
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 10)}`);

  await c.h.deletePod(replica(0), { recreate: false });
  const oneDown = await c.trySql(PRIMARY, insert(11, 20), 20_000);
  expect(oneDown.timedOut).toBe(false);
  expect(oneDown.code).toBe(0);

  await c.h.deletePod(replica(1), { recreate: false });
  const bothDown = await c.trySql(PRIMARY, insert(21, 21), 5_000);
  expect(bothDown.timedOut).toBe(true); // the commit does not return

  // Every acknowledged commit is on a replica: lose the primary, start the replica that was up
  // last, and read them there.
  await c.h.killPod(PRIMARY, { recreate: false });
  await c.h.startPod(replica(1));
  await c.waitCount(replica(1), 't WHERE id <= 20', 20);
});

test('promotion runbook: fence, promote, others follow, former primary rejoins with pg_rewind, no lost commit', async () => {
  const mode = ReplicationMode.synchronousQuorum(1);
  const c = await boot({ replicationMode: mode });
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, TABLE);
  for (let i = 1; i <= 50; i++) await c.sql(PRIMARY, insert(i, i)); // 50 acknowledged commits
  await c.h.killPod(PRIMARY, { recreate: false }); // the primary is lost

  // 1. Fence the old primary.
  await c.h.scale(PRIMARY_STS, 0);
  // 2. Pick the most advanced replica (highest received WAL position).
  const lsn = async (pod: string) => c.sql(pod, 'SELECT pg_last_wal_receive_lsn()');
  const [lsn0, lsn1] = [await lsn(replica(0)), await lsn(replica(1))];
  const ahead = Number(await c.sql(replica(0), `SELECT pg_wal_lsn_diff('${lsn0}', '${lsn1}')`));
  const chosen = ahead >= 0 ? replica(0) : replica(1);
  const other = chosen === replica(0) ? replica(1) : replica(0);
  // 3. Designate it in code and apply (this also brings the old primary's StatefulSet back to 1).
  await c.h.apply(synthCluster({ replicationMode: mode, currentPrimary: chosen }), { wait: false });
  // 4. Restart the designated pod: it promotes itself.
  await c.h.deletePod(chosen);
  await c.h.waitReady(chosen, 120_000);
  await c.waitLog(chosen, /promoted; now on timeline 2/);

  // 5. It is the primary, holds every acknowledged commit, takes writes through the read-write
  //    Service; the other replica follows it through its slot there.
  expect(await c.inRecovery(chosen)).toBe(false);
  expect(await c.count(chosen, 't')).toBe(50);
  const viaService = await c.h.exec(other, 'postgres', ['bash', '-c',
    `PGPASSWORD="$(cat /etc/ferretdb-postgres-secret/ferretdb-password)" psql -XAt -c 'SELECT pg_is_in_recovery(), inet_server_addr()' "host=${NAME}-pg-rw user=ferretdb dbname=postgres"`]);
  expect(viaService.stdout.trim()).toBe(`f|${c.h.podIP(chosen)}`);
  await c.waitStreaming(chosen, [other]);
  await c.sql(chosen, insert(51, 60));
  await c.waitCount(other, 't', 60);

  // 6. The former primary rejoins as a standby with pg_rewind.
  await c.h.waitReady(PRIMARY, 180_000);
  await c.waitStreaming(chosen, [other, PRIMARY], 180_000);
  expect(c.h.logs(PRIMARY, 'postgres')).toMatch(/former primary: rewinding/);
  await c.waitCount(PRIMARY, 't', 60);

  // Restarting any pod never yields two writable primaries; the promoted pod stays primary.
  for (const pod of [chosen, PRIMARY, other]) {
    await c.h.deletePod(pod);
    await c.h.waitReady(pod, 180_000);
    expect(await c.writablePrimaries([PRIMARY, replica(0), replica(1)])).toEqual([chosen]);
  }
  await c.waitStreaming(chosen, [other, PRIMARY], 180_000);
});

test('wrong replication password: a clear log line, and the data directory is left untouched', async () => {
  const c = await boot({ replicas: 1 });
  await c.waitStreaming(PRIMARY, [replica(0)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 10)}`);
  await c.waitCount(replica(0), 't', 10);
  await c.h.deletePod(replica(0), { recreate: false });
  // The server's password no longer matches the Secret the replicas read (after the agent's
  // first pass, which sets the Secret's passwords).
  await c.waitLog(PRIMARY, /roles, passwords and extension applied/, 0, 60_000, 'agent');
  await c.sql(PRIMARY, "ALTER ROLE replicator PASSWORD 'not-the-one-in-the-secret'");

  const marker = path.join(c.pgdata(replica(0)), 'untouched');
  fs.writeFileSync(marker, 'x');
  const mark = c.logMark(replica(0));
  await c.h.startPod(replica(0));
  await c.waitLog(replica(0), /password authentication failed for user "replicator"/, mark);
  expect(fs.existsSync(marker)).toBe(true);
  await c.h.waitUntil('the standby runs from its own data', 60_000, async () => (await c.trySql(replica(0), 'SELECT 1')).code === 0);
  expect(await c.count(replica(0), 't')).toBe(10); // its data, untouched
  expect(c.h.isReady(replica(0))).toBe(false); // not streaming: not an endpoint of the read Service
  expect(c.logsSince(replica(0), mark)).not.toMatch(/cloning/);

  // A standby with an empty volume cannot clone: it says why and leaves no half-written data
  // directory. (A new replica pod would not even be created: the StatefulSet waits for the
  // non-streaming replica-0 to be Ready.)
  await c.h.deletePod(replica(0), { recreate: false });
  c.h.wipeVolume(replica(0), 'data');
  const again = c.logMark(replica(0));
  await c.h.startPod(replica(0));
  await c.waitLog(replica(0), /password authentication failed for user "replicator"/, again, 60_000);
  await c.waitLog(replica(0), /data directory left as it was/, again, 200_000);
  const volume = c.h.volumePath(replica(0), 'data');
  expect(fs.readdirSync(volume).filter((f) => f.startsWith('pgdata'))).toEqual([]);
});
