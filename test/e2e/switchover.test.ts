/**
 * Planned switchovers and promotions on real PostgreSQL 17 with the real DocumentDB extension:
 * "a human promotes; nothing acknowledged is lost; never two writable primaries". Every
 * scenario runs the pods of a real FerretDBCluster synth (see ./harness) and waits on conditions.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  ContinuousWriter, insert, PgCluster, PRIMARY, replica, RW_SERVICE, synthCluster, TABLE, toolWrappers, writeContinuously as writeFromFixture,
} from './fixture';
import { FerretDBClusterProps } from '../../src';

jest.setTimeout(420_000);

let pg: PgCluster | undefined;
let tools: ReturnType<typeof toolWrappers> | undefined;
/** Stops the background loops of a test (also when it failed half-way). */
const halts: (() => void)[] = [];

afterEach(async () => {
  halts.splice(0).forEach((halt) => halt());
  await pg?.destroy();
  pg = undefined;
  tools?.remove();
  tools = undefined;
});

async function boot(props: FerretDBClusterProps = {}): Promise<PgCluster> {
  pg = await PgCluster.boot(props);
  return pg;
}

/** The fixture's writer, halted by afterEach if a test fails before stopping it. */
function writeContinuously(c: PgCluster, pod: string): ContinuousWriter {
  return writeFromFixture(c, pod, 1, (halt) => halts.push(halt));
}

/**
 * Samples the Ready endpoints of NAME-pg-rw until stopped: an endpoint that answers "in recovery"
 * and is still an endpoint after answering is a read-only server behind the read-write Service.
 */
function sampleReadWriteEndpoints(c: PgCluster): { stop: () => Promise<{ samples: number; readOnly: string[] }> } {
  let running = true;
  halts.push(() => { running = false; });
  let samples = 0;
  const readOnly: string[] = [];
  const loop = (async () => {
    while (running) {
      const endpoints = c.h.endpoints(RW_SERVICE);
      for (const pod of endpoints) {
        const r = await c.trySql(pod, 'SELECT pg_is_in_recovery()', 5_000);
        if (r.code === 0 && r.stdout.trim() === 't' && c.h.endpoints(RW_SERVICE).includes(pod)) readOnly.push(pod);
      }
      samples++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return { stop: async () => { running = false; await loop; return { samples, readOnly }; } };
}

test('switchover to a lagging named standby (its WAL receiver paused under writes, released during the handover): no acknowledged commit is lost, the other standby follows the new timeline, and once the named standby has the leader key NAME-pg-rw has no read-only Ready endpoint', async () => {
  // Long sender and receiver timeouts, longer than every wait below: the paused receiver must not
  // be cut off by the old primary meanwhile, nor end itself on being resumed (a pause longer than
  // walReceiverTimeout, 10 s by default and soon reached on a loaded machine, made it exit before
  // reading what was sent: the named standby then had less WAL than the other one and rightly
  // refused to promote).
  const props: FerretDBClusterProps = { wal: { walSenderTimeout: '900s', walReceiverTimeout: '900s' } };
  const c = await boot(props);
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, TABLE);
  const writer = writeContinuously(c, PRIMARY);
  await c.h.waitUntil('first commits acknowledged', 60_000, () => writer.acked.length >= 10);

  // The named standby lags: its WAL receiver is stopped while the writes go on.
  const receiver = await c.sql(replica(1), "SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'");
  expect(receiver).toMatch(/^\d+$/);
  expect((await c.h.exec(replica(1), 'postgres', ['kill', '-STOP', receiver])).code).toBe(0);
  const pausedAt = writer.acked.length;
  await c.h.waitUntil('commits acknowledged while the named standby lags', 60_000, () => writer.acked.length >= pausedAt + 30);

  const mark = c.logMark(replica(1));
  await c.h.apply(synthCluster({ ...props, currentPrimary: replica(1) }), { wait: false });
  const acked = await writer.done(); // the first refused write: the old primary is shutting down
  // The named standby has decided what to do next (wait for the Lease the old primary holds until
  // it has stopped, stream on, or stop for promotion): release it.
  await c.waitLog(replica(1), /not promoting before this pod holds the cluster's Lease|stopping the standby to promote it|streaming on until this standby's WAL receiver ends/, mark, 180_000);
  // Named, still read-only: it leaves the read-write Service (readiness: failureThreshold probes),
  // and from then on NAME-pg-rw has no read-only endpoint until it is writable.
  await c.h.waitNotReady(replica(1), 180_000);
  const sampler = sampleReadWriteEndpoints(c);
  await c.h.exec(replica(1), 'postgres', ['kill', '-CONT', receiver]);

  await c.h.waitUntil(`${replica(1)} promoted and Ready`, 180_000, async () =>
    c.h.isReady(replica(1)) && (await c.writablePrimaries([replica(1)])).length === 1);
  const rwSamples = sampler.stop();
  const present = Number(await c.sql(replica(1), `SELECT count(*) FROM t WHERE id IN (${acked.join(',')})`));
  console.log(`switchover to a lagging standby: ${acked.length} acknowledged commits (${acked.length - pausedAt} while it lagged), ${acked.length - present} lost`);
  expect(acked.length - pausedAt).toBeGreaterThanOrEqual(30);
  expect(acked.length - present).toBe(0);

  // Every other standby follows the new timeline and has what the new primary has.
  await c.waitStreaming(replica(1), [replica(0), PRIMARY], 180_000);
  await c.sql(replica(1), insert(100_001, 100_010));
  const total = await c.count(replica(1), 't');
  await c.waitCount(replica(0), 't', total);
  await c.waitCount(PRIMARY, 't', total);
  expect(c.h.logs(replica(0), 'postgres')).not.toMatch(/forked off from database system timeline/);
  const { samples, readOnly } = await rwSamples;
  console.log(`${RW_SERVICE} sampled ${samples} times during the switchover; read-only Ready endpoints seen: ${readOnly.length}`);
  expect(samples).toBeGreaterThan(5);
  expect([...new Set(readOnly)]).toEqual([]);

  // The former primary keeps none of the slots it served (nothing advances them on a standby:
  // invalidated later, they would make a switch back re-clone every standby); the new primary
  // has one per standby.
  await c.h.waitUntil(`${PRIMARY}, now a standby, holds no replication slot`, 60_000,
    async () => (await c.sql(PRIMARY, 'SELECT count(*) FROM pg_replication_slots')) === '0');
  expect(await c.sql(replica(1), 'SELECT count(*) FROM pg_replication_slots WHERE active')).toBe('2');
});

/** The time of a PostgreSQL log line (log_line_prefix '%m ...'), in ms; only differences are used. */
function logTime(log: string, message: RegExp): number | undefined {
  const line = log.split('\n').find((l) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /.test(l) && message.test(l));
  return line === undefined ? undefined : Date.parse(`${line.slice(0, 10)}T${line.slice(11, 23)}Z`);
}

test('switchover with a slow shutdown checkpoint (the old primary\'s checkpointer paused while it shuts down): no acknowledged commit is lost and every other standby follows the new timeline', async () => {
  // How long the old primary's shutdown is held before its shutdown checkpoint: far longer than
  // the named standby takes to see the leader key and decide (about a second), far shorter than
  // the pod's terminationGracePeriodSeconds (postgresShutdownTimeout + 10 s, 310 s by default),
  // which would not bound this shutdown anyway: a switchover changes no pod template, so no pod
  // is deleted.
  const pauseMs = 8_000;
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, TABLE);
  const writer = writeContinuously(c, PRIMARY);
  await c.h.waitUntil('first commits acknowledged', 60_000, () => writer.acked.length >= 10);

  // The old primary's checkpointer is paused as the switchover is applied: its fast shutdown
  // disconnects the sessions and refuses new ones ("the database system is shutting down"), then
  // waits for the shutdown checkpoint, which the walsenders must send before they end.
  const checkpointer = await c.sql(PRIMARY, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'");
  expect(checkpointer).toMatch(/^\d+$/);
  const oldMark = c.logMark(PRIMARY);
  const namedMark = c.logMark(replica(1));
  const otherMark = c.logMark(replica(0));
  expect((await c.h.exec(PRIMARY, 'postgres', ['kill', '-STOP', checkpointer])).code).toBe(0);
  await c.h.apply(synthCluster({ currentPrimary: replica(1) }), { wait: false });
  const acked = await writer.done(); // the first refused write: the old primary is shutting down
  await c.waitLog(PRIMARY, /LOG:\s+received fast shutdown request/, oldMark, 60_000);
  const shutdownSeenAt = Date.now();
  // The named standby has decided what to do next (wait for the Lease the old primary holds until
  // it has stopped, stream on, or stop for promotion); the shutdown is held a while longer.
  await c.waitLog(replica(1), /not promoting before this pod holds the cluster's Lease|stopping the standby to promote it|streaming on until this standby's WAL receiver ends/, namedMark, 180_000);
  await c.h.waitUntil(`${PRIMARY} shutting down for ${pauseMs} ms`, pauseMs + 1_000, () => Date.now() - shutdownSeenAt >= pauseMs);

  // Still shutting down, its shutdown checkpoint not begun; the named standby still streams from it.
  const refused = await c.trySql(PRIMARY, 'SELECT 1', 10_000);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/the database system is shutting down/);
  expect(c.logsSince(PRIMARY, oldMark)).not.toMatch(/LOG:\s+shutting down$|database system is shut down/m);
  const receiving = await c.trySql(replica(1), 'SELECT status FROM pg_stat_wal_receiver', 10_000);
  expect(`${receiving.stdout.trim()}${receiving.stderr.trim()}`).toBe('streaming');
  expect((await c.h.exec(PRIMARY, 'postgres', ['kill', '-CONT', checkpointer])).code).toBe(0);

  await c.waitLog(PRIMARY, /database system is shut down/, oldMark, 120_000);
  const shutdownLog = c.logsSince(PRIMARY, oldMark);
  const requested = logTime(shutdownLog, /LOG:\s+received fast shutdown request/)!;
  const checkpointBegan = logTime(shutdownLog, /LOG:\s+shutting down$/)!;
  const stopped = logTime(shutdownLog, /LOG:\s+database system is shut down/)!;
  const checkpoint = /LOG:\s+checkpoint starting: shutdown[^\n]*\n(?:[^\n]*\n)*?[^\n]*LOG:\s+checkpoint complete: [^\n]*; lsn=([0-9A-F]+\/[0-9A-F]+)/.exec(shutdownLog);
  expect(checkpoint).not.toBeNull();
  const checkpointLsn = checkpoint![1];

  await c.h.waitUntil(`${replica(1)} promoted and Ready`, 180_000, async () =>
    c.h.isReady(replica(1)) && (await c.writablePrimaries([replica(1)])).length === 1);
  const present = Number(await c.sql(replica(1), `SELECT count(*) FROM t WHERE id IN (${acked.join(',')})`));
  // The new timeline's switch point (its history file's last entry).
  const history = await c.sql(replica(1),
    "SELECT pg_read_file('pg_wal/' || max(f)) FROM pg_ls_dir('pg_wal') f WHERE f ~ '^[0-9A-F]{8}[.]history$'");
  const switchPoint = history.trim().split('\n').pop()!.split('\t')[1];
  console.log(`switchover with a slow shutdown checkpoint: ${PRIMARY} shutting down for ${((stopped - requested) / 1000).toFixed(1)} s `
    + `(its shutdown checkpoint began ${((checkpointBegan - requested) / 1000).toFixed(1)} s after the fast shutdown request, at ${checkpointLsn}; `
    + `new timeline from ${switchPoint}); ${acked.length} acknowledged commits, ${acked.length - present} lost`);
  expect(checkpointBegan - requested).toBeGreaterThanOrEqual(pauseMs);
  expect(acked.length - present).toBe(0);
  // The new timeline forks off after the old primary's shutdown checkpoint: the named standby had
  // all of the old timeline, as the other standby had.
  expect(await c.sql(replica(1), `SELECT '${switchPoint}'::pg_lsn > '${checkpointLsn}'::pg_lsn`)).toBe('t');

  // Every other standby follows the new timeline and has what the new primary has.
  await c.waitStreaming(replica(1), [replica(0), PRIMARY], 180_000);
  await c.sql(replica(1), insert(100_001, 100_010));
  const total = await c.count(replica(1), 't');
  await c.waitCount(replica(0), 't', total);
  await c.waitCount(PRIMARY, 't', total);
  expect(c.logsSince(replica(0), otherMark)).not.toMatch(/forked off from database system timeline/);
});

test('max_connections lowered together with a switchover: the named standby replays with the primary\'s recorded limit and promotes', async () => {
  const before = 200;
  const lowered = 150; // the lowest the default pools allow
  const c = await boot({ maxConnections: before });
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 10)}`);
  await c.waitCount(replica(0), 't', 10);
  expect(Number(await c.sql(replica(0), 'SHOW max_connections'))).toBe(before);

  const mark = c.logMark(replica(0));
  await c.h.apply(synthCluster({ maxConnections: lowered, currentPrimary: replica(0) }), { wait: false });
  // Writable alone is not enough: the promotion's own socket-only server is writable too, just
  // before it stops for the real one ("starting as primary").
  await c.h.waitUntil(`${replica(0)} promoted, or its recovery aborted`, 180_000, async () =>
    /insufficient parameter settings/.test(c.logsSince(replica(0), mark))
    || (/starting as primary/.test(c.logsSince(replica(0), mark)) && c.h.isReady(replica(0))
      && (await c.writablePrimaries([replica(0)])).length === 1));
  expect(c.logsSince(replica(0), mark)).not.toMatch(/insufficient parameter settings/);
  expect(c.logsSince(replica(0), mark)).toMatch(new RegExp(`max_connections: using the primary's ${before} instead of ${lowered}`));
  expect(await c.count(replica(0), 't')).toBe(10);
  expect(Number(await c.sql(replica(0), 'SHOW max_connections'))).toBe(lowered);
  await c.waitStreaming(replica(0), [replica(1), PRIMARY], 180_000);
});

test('a stale re-clone request in the run directory of a standby named primary: it is dropped, the promoted pod stays alive and serves writes', async () => {
  const c = await boot();
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 10)}`);
  await c.waitCount(replica(0), 't', 10);

  const mark = c.logMark(replica(0));
  await c.h.apply(synthCluster({ currentPrimary: replica(0) }), { wait: false });
  const leaderFile = path.join(c.h.volumePath(replica(0), 'config'), 'leader');
  await c.h.waitUntil(`${replica(0)} sees the leader key name it`, 60_000, () => fs.readFileSync(leaderFile, 'utf8').trim() === replica(0));
  // What the agent leaves when it asked for a re-clone just before the key moved.
  const touched = await c.h.exec(replica(0), 'postgres', ['sh', '-c', 'touch "$RUN_DIR/reclone-needed"']);
  expect(touched.code).toBe(0);
  const marker = path.join(c.h.volumePath(replica(0), 'run'), 'reclone-needed');

  await c.h.waitUntil(`${replica(0)} promoted, Ready, and the request gone`, 180_000, async () =>
    !fs.existsSync(marker) && /starting as primary/.test(c.logsSince(replica(0), mark)) && c.h.isReady(replica(0))
    && (await c.writablePrimaries([replica(0)])).length === 1);
  const live = await c.h.exec(replica(0), 'postgres', ['bash', '/etc/ferretdb-postgres/lifecycle.sh', 'live']);
  expect(live.code).toBe(0);
  await c.sql(replica(0), insert(11, 20));
  await c.waitStreaming(replica(0), [replica(1), PRIMARY], 180_000);
  await c.waitCount(PRIMARY, 't', 20);
});

test('pg_rewind fails half-way through a rejoin: the former primary is never rewound again over the half-rewound data; it re-clones and follows', async () => {
  // pg_rewind, once the file `fail` exists: logs the call, damages the target like an interrupted
  // rewind (a file of the source copied over half-way), and fails.
  tools = toolWrappers({
    pg_rewind: [
      '[ -e "$DIR/fail" ] || exec "$REAL" "$@"',
      'echo "$*" >> "$DIR/calls"',
      'for a in "$@"; do case "$a" in --target-pgdata=*) echo half > "${a#*=}/global/pg_filenode.map" ;; esac; done',
      'echo "pg_rewind: error: connection lost half-way (simulated)" >&2',
      'exit 1',
    ].join('\n'),
  });
  pg = await PgCluster.boot({}, tools.options);
  const c = pg;
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; ${insert(1, 10)}`);
  await c.waitCount(replica(0), 't', 10);
  fs.writeFileSync(path.join(tools.dir, 'fail'), '');

  const mark = c.logMark(PRIMARY);
  await c.h.apply(synthCluster({ currentPrimary: replica(0) }), { wait: false });
  await c.waitLog(PRIMARY, /pg_rewind: error: connection lost half-way/, mark, 120_000);
  const calls = () => fs.readFileSync(path.join(tools!.dir, 'calls'), 'utf8').trim().split('\n').length;
  await c.h.waitUntil(`${PRIMARY} re-cloned, or rewinding again`, 240_000, () =>
    /clone complete/.test(c.logsSince(PRIMARY, mark)) || calls() > 1);
  expect(calls()).toBe(1);
  await c.waitLog(PRIMARY, /did not finish: re-cloning it instead of rewinding it again[\s\S]*clone complete/, mark, 180_000);
  await c.sql(replica(0), insert(11, 20));
  await c.waitStreaming(replica(0), [replica(1), PRIMARY], 180_000);
  await c.waitCount(PRIMARY, 't', 20);
  expect(calls()).toBe(1);
});
