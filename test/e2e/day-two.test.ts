/**
 * Day two on real PostgreSQL 17 with the real DocumentDB extension: changes to a running cluster
 * (configuration, scale, leader), lost volumes and kill -9 under load. Every scenario runs the
 * pods of a real FerretDBCluster synth (see ./harness) and reads server state over SQL.
 */
import * as fs from 'fs';
import * as path from 'path';
import { mostAdvancedStandby } from './failover';
import { insert, NAME, PgCluster, PRIMARY, PRIMARY_STS, replica, REPLICA_STS, synthCluster, TABLE, writeContinuously } from './fixture';
import { Cluster, sampleWritability, writableOverlaps } from './harness';
import { FerretDBClusterProps, ReplicationMode } from '../../src';

jest.setTimeout(420_000);

let pg: PgCluster | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
});

async function boot(props: FerretDBClusterProps = {}): Promise<PgCluster> {
  pg = await PgCluster.boot(props);
  return pg;
}

const ALL = [PRIMARY, replica(0), replica(1)];
/** When a pod's server started (seconds since the epoch): a restart moves it. */
const postmasterStart = async (c: PgCluster, pod: string) => Number(await c.sql(pod, 'SELECT extract(epoch FROM pg_postmaster_start_time())'));
/** The agent's log lines of a pod's restarts for the roll of restart-only settings. */
const rollLines = (c: PgCluster, pod: string) => c.h.logs(pod, 'agent').split('\n').filter((l) => /restarting this (primary|standby) for/.test(l));
const RO_SERVICE = `${NAME}-pg-ro`;
const RW_SERVICE = `${NAME}-pg-rw`;

/** FATAL lines a healthy start legitimately logs (probes and clients during start-up and shutdown). */
const EXPECTED_FATAL = /FATAL: {2}(the database system is (starting up|shutting down|not yet accepting connections)|terminating connection due to administrator command)/;

test('apply everything at once: Job, Services and every pod start together and converge with no restart and no unexpected FATAL', async () => {
  pg = await PgCluster.create({});
  const c = pg;
  // Every workload at once, in reverse order of what a careful operator would do.
  await Promise.all([
    c.h.startStatefulSet(REPLICA_STS, { timeoutMs: 240_000 }),
    c.h.startStatefulSet(PRIMARY_STS, { timeoutMs: 240_000 }),
    c.runCredentialsJob(),
  ]);
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 10)}`);
  await c.waitCount(replica(1), 't', 10);
  for (const pod of ALL) {
    expect({ pod, restarts: c.h.restarts(pod, 'postgres') }).toEqual({ pod, restarts: 0 });
    const lines = c.h.logs(pod, 'postgres').split('\n');
    const fatal = lines.filter((l) => /FATAL:/.test(l) && !EXPECTED_FATAL.test(l));
    expect({ pod, fatal }).toEqual({ pod, fatal: [] });
    // Every synthesized setting is one the server (with the real extension) knows.
    const badSettings = lines.filter((l) => /invalid configuration parameter|contains errors|unrecognized configuration parameter/.test(l));
    expect({ pod, badSettings }).toEqual({ pod, badSettings: [] });
  }
  // The standbys waited for the primary instead of failing.
  expect(c.h.logs(replica(0), 'postgres')).toMatch(/waiting for a writable primary/);
  // The state sidecar recorded the new cluster's identity in the API.
  const systemId = await c.sql(PRIMARY, 'SELECT system_identifier FROM pg_control_system()');
  await c.h.waitUntil('system identifier recorded', 30_000, () => c.h.getConfigMap(`${PRIMARY_STS}-state`)?.systemIdentifier === systemId);
});

test('configuration changes reach running servers: synchronous quorum on and off by reload; restart-only settings, raised then lowered, restart the standbys one at a time and the primary last, with no container restart', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, TABLE);

  // async -> ANY 1: the agent reloads; no pod restarts.
  await c.waitLog(PRIMARY, /roles, passwords and extension applied/, 0, 30_000, 'agent'); // its first pass
  const sync = ReplicationMode.synchronousQuorum(1);
  await c.h.apply(synthCluster({ replicationMode: sync }), { wait: false });
  await c.h.waitUntil('synchronous_standby_names applied', 60_000, async () =>
    (await c.sql(PRIMARY, 'SHOW synchronous_standby_names')).startsWith('ANY 1 ('));
  await c.waitLog(PRIMARY, /configuration changed: reloaded/, 0, 30_000, 'agent');
  for (const pod of ALL) expect(c.h.restarts(pod, 'postgres')).toBe(0);
  await c.h.deletePod(replica(0), { recreate: false });
  await c.h.deletePod(replica(1), { recreate: false });
  const blocked = await c.trySql(PRIMARY, insert(1, 1), 5_000);
  expect(blocked.timedOut).toBe(true); // no standby: the commit waits

  // Back to async: commits return again without any restart.
  await c.h.apply(synthCluster(), { wait: false });
  await c.h.waitUntil('asynchronous again', 60_000, async () => (await c.sql(PRIMARY, 'SHOW synchronous_standby_names')) === '');
  const unblocked = await c.trySql(PRIMARY, insert(2, 2), 10_000);
  expect(unblocked.code).toBe(0);
  await c.h.startPod(replica(0));
  await c.h.startPod(replica(1));
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);

  // A restart-only setting, raised: no pod template changes; the agents restart the servers in
  // their turn, the standbys one at a time, the primary last, and no container restarts.
  const template = (objs: unknown[]) => JSON.stringify((objs as any[]).filter((o) => o.kind === 'StatefulSet').map((o) => o.spec.template));
  expect(template(synthCluster({ maxConnections: 200 }))).toBe(template(synthCluster()));
  const startedAt = (pod: string) => postmasterStart(c, pod);
  const rolled = async (value: string) => c.h.waitUntil(`every server runs max_connections ${value}`, 300_000, async () => {
    for (const pod of ALL) if (await c.sql(pod, 'SHOW max_connections', 5_000) !== value) return false;
    return true;
  });
  const before = await Promise.all(ALL.map(startedAt));
  const restarts = ALL.map((pod) => c.h.restarts(pod, 'postgres'));
  await c.h.apply(synthCluster({ maxConnections: 200 }), { wait: false });
  await rolled('200');
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  const after = await Promise.all(ALL.map(startedAt));
  const [primary, first, second] = after;
  for (let i = 0; i < ALL.length; i++) expect({ pod: ALL[i], restarted: after[i] > before[i] }).toEqual({ pod: ALL[i], restarted: true });
  // In order: replica-0 (first in members), then replica-1, then the primary.
  expect({ first, second, primary, inOrder: first < second && second < primary }).toEqual({ first, second, primary, inOrder: true });
  expect(ALL.map((pod) => c.h.restarts(pod, 'postgres'))).toEqual(restarts);
  // The primary waited for a standby (which one it saw first depends on when the kubelet delivered
  // the change to it: replica-0 may have restarted already).
  expect(c.h.logs(PRIMARY, 'agent')).toMatch(new RegExp(`not restarting yet for max_connections: (${replica(0)}|${replica(1)}) `));

  // Lowered: the standbys restart first and keep the primary's higher recorded value (a standby
  // needs at least the primary's); the primary then restarts with the lower one.
  const marks = [replica(0), replica(1)].map((pod) => c.logMark(pod));
  await c.h.apply(synthCluster({ maxConnections: 170 }), { wait: false });
  await c.h.waitUntil('the primary runs max_connections 170', 300_000, async () => await c.sql(PRIMARY, 'SHOW max_connections', 5_000) === '170');
  for (const [i, pod] of [replica(0), replica(1)].entries()) {
    expect(c.logsSince(pod, marks[i])).toMatch(/max_connections: using the primary's 200 instead of 170/);
  }
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, insert(3, 100));
  await c.waitCount(replica(0), 't', 100);
  expect(ALL.map((pod) => c.h.restarts(pod, 'postgres'))).toEqual(restarts);
});

test('a restart-only setting no server can start with: the first standby fails, the roll stops there and the primary keeps serving; fixing it finishes the roll with the fixed file, primary last', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, TABLE);
  await c.waitLog(PRIMARY, /roles, passwords and extension applied/, 0, 30_000, 'agent');
  const startedAt = (pod: string) => postmasterStart(c, pod);
  const primaryStart = await startedAt(PRIMARY);
  const secondStart = await startedAt(replica(1));
  const writer = writeContinuously(c, PRIMARY, 1000);
  // huge_pages = on: no server starts on a machine without huge pages (this one has none).
  await c.h.apply(synthCluster({ parameters: { huge_pages: 'on' } }), { wait: false });
  await c.waitLog(replica(0), /could not map anonymous shared memory/, 0, 180_000);
  const blocked = new RegExp(`not restarting yet for huge_pages: ${replica(0)} cannot be asked`);
  await c.waitLog(PRIMARY, blocked, 0, 120_000, 'agent');
  await c.waitLog(replica(1), blocked, 0, 120_000, 'agent');
  // Three more agent passes: nothing else restarts for the roll.
  await new Promise((r) => setTimeout(r, 30_000));
  const rollRestarts = (pod: string) => [
    ...rollLines(c, pod),
    ...c.h.logs(pod, 'postgres').split('\n').filter((l) => l.includes('restarting the server for settings')),
  ];
  const noRollRestart = () => {
    for (const pod of [PRIMARY, replica(1)]) expect({ pod, restarts: rollRestarts(pod) }).toEqual({ pod, restarts: [] });
  };
  noRollRestart();
  // (A server restart for another reason, such as a late Lease renewal on a loaded machine, is not
  // the roll's: the start times are printed, the logs above are what is asserted.)
  console.log(`start times: ${PRIMARY} ${primaryStart} -> ${await startedAt(PRIMARY)}, ${replica(1)} ${secondStart} -> ${await startedAt(replica(1))}`);
  expect(rollRestarts(replica(0)).length).toBeGreaterThan(0);
  expect(c.h.restarts(replica(0), 'postgres')).toBeGreaterThan(0);
  const ackedNow = writer.acked.length;
  expect(ackedNow).toBeGreaterThan(10);
  await c.h.waitUntil(`${replica(1)} streams on`, 60_000, async () => (await c.count(replica(1), 't')) >= ackedNow);

  // Fixed: the failed standby starts again with the fixed file (its container's next restart).
  // PostgreSQL keeps a removed restart-only setting pending until the server restarts, so the
  // roll goes on with the fixed file: the other standby, then the primary, once each.
  const acked = await writer.stop();
  await c.h.apply(synthCluster(), { wait: false });
  await c.h.waitUntil('nothing pending anywhere', 300_000, async () => {
    for (const pod of ALL) if (await c.sql(pod, 'SELECT count(*) FROM pg_settings WHERE pending_restart', 5_000) !== '0') return false;
    return true;
  });
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)], 240_000);
  for (const pod of ALL) expect({ pod, huge_pages: await c.sql(pod, 'SHOW huge_pages') }).toEqual({ pod, huge_pages: 'try' });
  for (const pod of [replica(1), PRIMARY]) expect({ pod, restarts: rollLines(c, pod).length }).toEqual({ pod, restarts: 1 });
  const [second, primary] = await Promise.all([replica(1), PRIMARY].map(startedAt));
  expect({ second, primary, primaryLast: second < primary }).toEqual({ second, primary, primaryLast: true });
  await c.sql(PRIMARY, insert(1_000_000, 1_000_000));
  for (const pod of [replica(0), replica(1)]) await c.waitCount(pod, 't', acked.length + 1);
});

test('lost primary volume with replicas up: nothing is initialised or served empty; the runbook recovers every row', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 500)}`);
  await c.waitCount(replica(0), 't', 500);
  await c.waitCount(replica(1), 't', 500);
  await c.h.waitUntil('cluster recorded', 30_000, () => c.h.getConfigMap(`${PRIMARY_STS}-state`)?.systemIdentifier);

  await c.h.killPod(PRIMARY, { recreate: false });
  c.h.wipeVolume(PRIMARY, 'data');
  const mark = c.logMark(PRIMARY);
  await c.h.startPod(PRIMARY);
  await c.waitLog(PRIMARY, /this cluster was initialised before .* Refusing to create an empty database/, mark, 60_000);
  // Still refusing a while later: no data directory, no endpoint behind the read-write Service.
  await new Promise((r) => setTimeout(r, 5_000));
  expect(fs.existsSync(path.join(c.pgdata(PRIMARY), 'PG_VERSION'))).toBe(false);
  expect(c.h.endpoints(RW_SERVICE)).toEqual([]);
  expect(c.h.isReady(PRIMARY)).toBe(false);

  // Runbook: designate the most advanced replica (the primary died mid-stream, so either may have
  // received a record more); it promotes itself, the empty pod clones it.
  const { target, positions } = await mostAdvancedStandby(c, [replica(0), replica(1)]);
  const other = target === replica(0) ? replica(1) : replica(0);
  console.log(`lost primary volume: received WAL ${JSON.stringify(positions)}; naming ${target}`);
  await c.h.apply(synthCluster({ currentPrimary: target }), { wait: false });
  await c.h.waitUntil(`${target} promoted`, 120_000, async () => (await c.writablePrimaries([target])).length === 1);
  await c.h.waitReady(target, 120_000);
  expect(await c.count(target, 't')).toBe(500);
  await c.h.waitReady(PRIMARY, 240_000);
  await c.waitStreaming(target, [other, PRIMARY], 180_000);
  await c.sql(target, insert(501, 510));
  await c.waitCount(PRIMARY, 't', 510);
  expect(await c.writablePrimaries(ALL)).toEqual([target]);
});

test('fencing: the leader key moves while the old primary runs; it stops taking writes (the delay is printed), rejoins as a standby, and no two servers ever accept writes', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);
  await c.waitCount(replica(0), 't', 100);

  // Sampled inside the pods every 50 ms for the whole handover (serial polls from the test thin
  // out under load and can miss an overlap).
  const sampling = sampleWritability(c.h, ALL, 150_000);
  await c.h.waitUntil('the sampler sees the primary writable', 30_000, async () => (await c.writablePrimaries([PRIMARY])).length === 1);
  const start = Date.now();
  await c.h.apply(synthCluster({ currentPrimary: replica(0) }), { wait: false });
  await c.waitLog(PRIMARY, /FENCING: the leader key now names/, 0, 30_000);
  await c.h.waitUntil('old primary no longer writable', 30_000, async () => (await c.writablePrimaries([PRIMARY])).length === 0);
  const fencedMs = Date.now() - start;
  await c.h.waitUntil(`${replica(0)} promoted`, 120_000, async () => (await c.writablePrimaries([replica(0)])).length === 1);
  await c.waitStreaming(replica(0), [replica(1), PRIMARY], 180_000);
  const samples = await sampling;
  const overlaps = writableOverlaps(samples);
  const writableSeen = (pod: string) => samples.filter((s) => s.pod === pod && s.writable).length;
  console.log(`fencing: old primary stopped taking writes ${fencedMs} ms after the apply; ${samples.length} samples; `
    + `writable samples: ${PRIMARY} ${writableSeen(PRIMARY)}, ${replica(0)} ${writableSeen(replica(0))}; overlaps: ${JSON.stringify(overlaps)}`);
  // The sampler saw both sides of the handover, and never both at once.
  expect(writableSeen(PRIMARY)).toBeGreaterThan(0);
  expect(writableSeen(replica(0))).toBeGreaterThan(0);
  expect(overlaps).toEqual([]);
  expect(c.h.logs(replica(0), 'postgres')).toMatch(/promoted; now on timeline 2/);
  expect(c.h.logs(PRIMARY, 'postgres')).toMatch(/former primary: rewinding/);
  await c.sql(replica(0), insert(101, 110));
  await c.waitCount(PRIMARY, 't', 110);
  expect(c.h.isReady(PRIMARY)).toBe(true);
});

test('planned switchover under continuous writes, asynchronous: the named standby streams until the old primary has stopped, so no acknowledged commit is lost', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, TABLE);
  const writer = writeContinuously(c, PRIMARY);
  await c.h.waitUntil('more than 10 commits acknowledged', 60_000, () => writer.acked.length > 10);
  await c.h.apply(synthCluster({ currentPrimary: replica(1) }), { wait: false });
  const acked = await writer.done(); // the first refused write: the old primary fenced itself
  // Promoted, not merely Ready: a probe that last passed before the apply still says Ready while
  // the named standby stops its server to promote.
  await c.h.waitUntil(`${replica(1)} promoted`, 180_000, async () => (await c.writablePrimaries([replica(1)])).length === 1);
  expect(acked.length).toBeGreaterThan(10);
  const present = Number(await c.sql(replica(1), `SELECT count(*) FROM t WHERE id IN (${acked.join(',')})`));
  console.log(`planned switchover, async: ${acked.length} acknowledged commits, ${acked.length - present} lost`);
  expect(present).toBe(acked.length);
  await c.waitStreaming(replica(1), [replica(0), PRIMARY], 180_000);
  await c.waitCount(replica(0), 't', Number(await c.count(replica(1), 't')));
});

/** 64 kB of hex digits per row: the WAL a pause holds back is more than a few packets. */
const BIG_ROW = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 2000))";

/**
 * Stops and resumes the streaming of both standbys in cycles (1.5 s stopped, 0.5 s running) until
 * `stop`: their WAL receivers, and the primary's walsenders, so that what is held back is not
 * already in a socket buffer on its way. `paused` resolves once the streams have been stopped
 * for a second in the current cycle.
 */
function pauseStreamingInCycles(c: PgCluster): { paused: () => Promise<void>; stop: () => Promise<void> } {
  let running = true;
  let stoppedSince = 0;
  const processes: [string, string][] = [
    [replica(0), 'SELECT pid FROM pg_stat_wal_receiver'],
    [replica(1), 'SELECT pid FROM pg_stat_wal_receiver'],
    [PRIMARY, 'SELECT pid FROM pg_stat_replication'],
  ];
  const signal = async (sig: 'STOP' | 'CONT') => Promise.all(processes.map(async ([pod, query]) => {
    const r = await c.trySql(pod, query, 5_000);
    const pids = r.code === 0 ? r.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map((l) => l.trim()) : [];
    if (pids.length > 0) await c.h.exec(pod, 'postgres', ['kill', `-${sig}`, ...pids]);
  }));
  const loop = (async () => {
    while (running) {
      await signal('STOP');
      stoppedSince = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      stoppedSince = 0;
      await signal('CONT');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })();
  return {
    paused: async () => {
      await c.h.waitUntil('streaming stopped for a second', 30_000, () => stoppedSince > 0 && Date.now() - stoppedSince >= 1_000);
    },
    stop: async () => {
      running = false;
      await loop;
      // What a loop that ended half-way stopped is resumed (the primary may be gone by now).
      await signal('CONT');
    },
  };
}

/**
 * Writes 64 kB rows continuously while both standbys' streaming pauses in cycles, checks the
 * replication mode's `sync_state` on the primary, kills the primary with SIGKILL (no preStop) one
 * second into a pause, then follows the runbook: designates the most advanced standby once both
 * have read what reached them. Returns the acknowledged ids and those the new primary lacks.
 */
async function killPrimaryUnderWrites(mode: ReplicationMode, syncState: 'quorum' | 'async'): Promise<{ acked: number[]; lost: number[] }> {
  const c = await boot({ replicationMode: mode });
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  expect(await c.sql(PRIMARY, 'SELECT string_agg(sync_state, \',\' ORDER BY application_name) FROM pg_stat_replication')).toBe(`${syncState},${syncState}`);
  await c.sql(PRIMARY, TABLE);
  const writer = writeContinuously(c, PRIMARY, 1, undefined, BIG_ROW);
  await c.h.waitUntil('more than 10 commits acknowledged', 60_000, () => writer.acked.length > 10);
  const cycles = pauseStreamingInCycles(c);
  try {
    await c.h.waitUntil('more than 10 commits acknowledged while the streams pause', 120_000, () => writer.acked.length > 20);
    await cycles.paused();
    await c.h.killPod(PRIMARY, { recreate: false });
  } finally {
    await cycles.stop();
  }
  const acked = await writer.stop();
  expect(acked.length).toBeGreaterThan(20);

  // The resumed receivers read what reached their sockets before the primary died: wait until
  // neither standby's received WAL moves for two seconds.
  const lsn = async (pod: string) => c.sql(pod, 'SELECT pg_last_wal_receive_lsn()');
  let last = '';
  await c.h.waitUntil('received WAL settled on both standbys', 60_000, async () => {
    const now = `${await lsn(replica(0))} ${await lsn(replica(1))}`;
    const settled = now === last;
    last = now;
    if (!settled) await new Promise((resolve) => setTimeout(resolve, 2_000));
    return settled;
  });
  const ahead = Number(await c.sql(replica(0), `SELECT pg_wal_lsn_diff('${await lsn(replica(0))}', '${await lsn(replica(1))}')`));
  const chosen = ahead >= 0 ? replica(0) : replica(1);
  await c.h.apply(synthCluster({ replicationMode: mode, currentPrimary: chosen }), { wait: false });
  await c.h.waitReady(chosen, 120_000);
  const present = (await c.sql(chosen, `SELECT coalesce(string_agg(id::text, ','), '') FROM t WHERE id IN (${acked.join(',')})`))
    .split(',').filter(Boolean).map(Number);
  return { acked, lost: acked.filter((id) => !present.includes(id)) };
}

test('kill -9 of the primary under continuous writes with synchronousQuorum(1), both standbys\' streaming (WAL receivers and walsenders) paused in cycles: the standbys are quorum candidates and every acknowledged commit survives the promotion', async () => {
  const { acked, lost } = await killPrimaryUnderWrites(ReplicationMode.synchronousQuorum(1), 'quorum');
  console.log(`kill -9, synchronousQuorum(1), streams pausing: ${acked.length} acknowledged commits, ${lost.length} lost`);
  expect(lost).toEqual([]);
});

test('kill -9 of the primary under the same writes and pauses, asynchronous (the positive control of the quorum test): acknowledged commits are lost, and only the last ones', async () => {
  const { acked, lost } = await killPrimaryUnderWrites(ReplicationMode.async(), 'async');
  console.log(`kill -9, async, streams pausing: ${acked.length} acknowledged commits, ${lost.length} lost (asynchronous replication does not promise them)`);
  expect(lost.length).toBeGreaterThan(0);
  // WAL streams in order: whatever is lost is a tail of the acknowledged commits.
  const kept = acked.filter((id) => !lost.includes(id));
  expect(Math.min(...lost)).toBeGreaterThan(Math.max(...kept));
  expect(kept.length).toBeGreaterThan(0);
});

test('kill -9 of an async primary that wrote WAL no standby saw: reports lost commits, the old primary rejoins with a real pg_rewind and matches the new primary', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);
  await c.waitCount(replica(0), 't', 100);
  await c.waitCount(replica(1), 't', 100);
  // The standbys go away; the primary takes writes only it will ever have.
  await c.h.deletePod(replica(0), { recreate: false });
  await c.h.deletePod(replica(1), { recreate: false });
  const writer = writeContinuously(c, PRIMARY, 10_001);
  await c.h.waitUntil('more than 10 commits acknowledged', 60_000, () => writer.acked.length > 10);
  await c.h.killPod(PRIMARY, { recreate: false });
  const mark = c.logMark(PRIMARY);
  const acked = await writer.stop();
  expect(acked.length).toBeGreaterThan(0);

  // Runbook: the standbys come back (still following the leader key), the one that received the
  // most WAL is named (they were stopped one after the other, so either may be ahead), the old
  // primary is fenced; the apply brings its StatefulSet back, and its pod, no longer the leader,
  // waits for the new primary to rewind and follow it.
  await c.h.startPod(replica(0));
  await c.h.startPod(replica(1));
  const { target, positions } = await mostAdvancedStandby(c, [replica(0), replica(1)]);
  const other = target === replica(0) ? replica(1) : replica(0);
  console.log(`kill -9, async, standbys away: received WAL ${JSON.stringify(positions)}; naming ${target}`);
  await c.h.scale(PRIMARY_STS, 0);
  await c.h.apply(synthCluster({ currentPrimary: target }), { wait: false });
  await c.h.waitUntil(`${target} promoted`, 180_000, async () => (await c.writablePrimaries([target])).length === 1);
  const lost = acked.length - Number(await c.sql(target, `SELECT count(*) FROM t WHERE id IN (${acked.join(',')})`));
  console.log(`kill -9, async, standbys away: ${acked.length} acknowledged commits, ${lost} lost (asynchronous replication promises none of them)`);
  expect(lost).toBe(acked.length);
  await c.sql(target, insert(1001, 1010));

  // The former primary came back with WAL the new primary never saw: pg_rewind must have run.
  await c.h.waitReady(PRIMARY, 240_000);
  const log = c.logsSince(PRIMARY, mark);
  expect(log).toMatch(/former primary: rewinding/);
  expect(log).toMatch(/servers diverged at WAL location/);
  expect(log).not.toMatch(/no rewind required/);
  await c.waitStreaming(target, [other, PRIMARY], 180_000);
  const digest = 'SELECT count(*) || \':\' || md5(string_agg(id::text || v, \',\' ORDER BY id)) FROM t';
  await c.h.waitUntil('old primary matches the new one', 60_000, async () =>
    (await c.sql(PRIMARY, digest)) === (await c.sql(target, digest)));
});

test('scale down, then up again on the retained volume: the replica that was away too long re-clones by itself and streams', async () => {
  const small: FerretDBClusterProps = { wal: { walKeepSize: '16MB', maxSlotWalKeepSize: '64MB' }, parameters: { max_wal_size: '64MB', min_wal_size: '32MB' } };
  const c = await boot(small);
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);
  await c.waitCount(replica(1), 't', 100);
  const kept = path.join(c.pgdata(replica(1)), 'kept-while-scaled-down');
  fs.writeFileSync(kept, 'x');

  await c.h.apply(synthCluster({ ...small, replicas: 1 }));
  await c.h.waitUntil('the removed replica\'s slot is dropped', 90_000, async () =>
    (await c.sql(PRIMARY, 'SELECT count(*) FROM pg_replication_slots')) === '1');
  for (let i = 0; i < 4; i++) {
    await c.sql(PRIMARY, "CREATE TABLE IF NOT EXISTS filler (v text); INSERT INTO filler SELECT repeat('x', 500) FROM generate_series(1, 100000); CHECKPOINT", 120_000);
  }
  await c.sql(PRIMARY, insert(101, 200));
  expect(fs.existsSync(kept)).toBe(true); // the volume was retained

  const mark = c.logMark(replica(1));
  await c.h.apply(synthCluster({ ...small, replicas: 2 }), { wait: false });
  await c.waitLog(replica(1), /clone complete/, mark, 240_000);
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)], 180_000);
  await c.waitCount(replica(1), 't', 200);
  expect(c.logsSince(replica(1), mark)).toMatch(/no longer has the WAL this standby needs|was invalidated/);
});

test('a standby that lags past maxReplicationLag, or stops streaming, leaves the read Service and comes back when it catches up', async () => {
  const c = await boot({ maxReplicationLag: '16MB' });
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.h.waitUntil('both standbys are endpoints', 30_000, () => c.h.endpoints(RO_SERVICE).length === 2);

  // Replay paused: WAL arrives but is not applied; the lag passes the bound.
  await c.sql(replica(0), 'SELECT pg_wal_replay_pause()');
  await c.sql(PRIMARY, "CREATE TABLE filler (v text); INSERT INTO filler SELECT repeat('x', 500) FROM generate_series(1, 100000)", 120_000);
  await waitEndpoints(c.h, RO_SERVICE, [replica(1)], 30_000);
  await c.sql(replica(0), 'SELECT pg_wal_replay_resume()');
  await waitEndpoints(c.h, RO_SERVICE, [replica(0), replica(1)], 60_000);

  // Not streaming: its walsender is cut and the replication role's password changed, so it cannot
  // connect again (replica-1's connection stays). After the agent's first pass, which sets the
  // Secret's passwords (and would undo the change).
  await c.waitLog(PRIMARY, /roles, passwords and extension applied/, 0, 60_000, 'agent');
  await c.sql(PRIMARY, `ALTER ROLE replicator PASSWORD 'not-the-secret';
    SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = '${replica(0)}'`);
  const cut = Date.now();
  await waitEndpoints(c.h, RO_SERVICE, [replica(1)], 60_000);
  console.log(`a standby that stopped streaming left the read Service after ${Date.now() - cut} ms`);
  const password = c.h.getSecret(`${NAME}-credentials`)?.['replication-password'];
  await c.sql(PRIMARY, `ALTER ROLE replicator PASSWORD '${password}'`);
  await waitEndpoints(c.h, RO_SERVICE, [replica(0), replica(1)], 60_000);
});

async function waitEndpoints(h: Cluster, service: string, pods: string[], timeoutMs: number): Promise<void> {
  await h.waitUntil(`${service} endpoints = ${pods.join(', ')}`, timeoutMs, () =>
    JSON.stringify([...h.endpoints(service)].sort()) === JSON.stringify([...pods].sort()));
}
