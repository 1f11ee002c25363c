/**
 * Section 3, lag under write load: pgbench TPC-B-like (-c 4 -j 2, --random-seed=42) on the
 * primary of a synthesized cluster with 2 replicas, asynchronous and then
 * synchronousQuorum(1), each on a fresh cluster with the same data (pgbench -i at a fixed scale).
 * During the measured run, a psql session in the primary pod samples pg_stat_replication every
 * 200 ms: replay_lag and the distance from pg_current_wal_lsn() to replay_lsn, per replica.
 *
 * Floor: the same pgbench on the primary of the same library with `replicas: 0` (no standby, no
 * slot): what the primary does when nothing replicates. Ratios: async/floor and sync/async.
 */
import * as fs from 'fs';
import { ReplicationMode } from '../src';
import { log, num, Options, percentile, ratio, row, Row, SectionResult } from './common';
import { PRIMARY, pgbench, waitCaughtUp, withCluster } from './pg';
import { replica } from '../test/e2e/fixture';

type Mode = 'none' | 'async' | 'sync';

interface Sample {
  readonly ms: number;
  readonly app: string;
  readonly lagMs: number;
  readonly bytes: number;
}

interface ModeResult {
  readonly mode: Mode;
  readonly tps: number;
  readonly latencyMs: number;
  readonly transactions: number;
  readonly warmUpTps: number;
  /** Share of the machine's CPU time (all cores) not idle nor in iowait during the measured run. */
  readonly cpuBusy: number;
  readonly samples: Sample[];
  readonly report: string;
}

/** Jiffies of all CPUs from /proc/stat: [idle + iowait, total]. */
function cpuTimes(): [number, number] {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return [fields[3] + fields[4], fields.reduce((a, b) => a + b, 0)];
}

function parseReport(report: string): { tps: number; latencyMs: number; transactions: number } {
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(report);
  const latency = /latency average = ([\d.]+) ms/.exec(report);
  const tx = /number of transactions actually processed: (\d+)/.exec(report);
  if (!tps || !latency || !tx) throw new Error(`cannot read the pgbench report:\n${report}`);
  return { tps: Number(tps[1]), latencyMs: Number(latency[1]), transactions: Number(tx[1]) };
}

/**
 * One psql session in the primary pod, one sample per 200 ms tick (aligned to the clock, so the
 * query's own time does not stretch the period). replay_lag is NULL when a standby has replayed
 * everything and nothing new was written: counted as 0.
 */
function sampler(pg: Parameters<typeof waitCaughtUp>[0], count: number): Promise<Sample[]> {
  const query = `SELECT round(extract(epoch FROM clock_timestamp()) * 1000), application_name,
      coalesce(extract(epoch FROM replay_lag) * 1000, 0), pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)
    FROM pg_stat_replication WHERE replay_lsn IS NOT NULL;
    SELECT pg_sleep(0.2 - (extract(epoch FROM clock_timestamp())::numeric % 0.2));\n`;
  return pg.trySql(PRIMARY, query.repeat(count), count * 200 + 60_000).then((r) => {
    if (r.code !== 0) throw new Error(`sampler failed: ${r.stderr}`);
    return r.stdout.split('\n').filter((l) => l.includes('|')).map((l) => {
      const [ms, app, lagMs, bytes] = l.split('|');
      return { ms: Number(ms), app, lagMs: Number(lagMs), bytes: Number(bytes) };
    });
  });
}

async function measure(mode: Mode, scale: number, seconds: number, warmUpSeconds: number): Promise<ModeResult> {
  const replicas = mode === 'none' ? 0 : 2;
  const replicationMode = mode === 'sync' ? ReplicationMode.synchronousQuorum(1) : ReplicationMode.async();
  const standbys = mode === 'none' ? [] : [replica(0), replica(1)];
  return withCluster({ replicas, replicationMode, storage: { size: '20Gi' } }, async (pg) => {
    if (standbys.length > 0) await pg.waitStreaming(PRIMARY, standbys);
    if (mode === 'sync') {
      const states = await pg.sql(PRIMARY, "SELECT string_agg(sync_state, ',' ORDER BY application_name) FROM pg_stat_replication");
      if (states !== 'quorum,quorum') throw new Error(`expected two quorum standbys, got ${states}`);
    }
    log(`lag: ${mode}: pgbench -i -s ${scale}`);
    await pgbench(pg, ['-i', '-s', String(scale), '-q'], 900_000);
    await pg.sql(PRIMARY, 'CHECKPOINT', 300_000);
    if (standbys.length > 0) await waitCaughtUp(pg, standbys);
    const flags = ['-c', '4', '-j', '2', '--random-seed=42'];
    const warmUp = parseReport(await pgbench(pg, [...flags, '-T', String(warmUpSeconds)], 300_000));
    if (standbys.length > 0) await waitCaughtUp(pg, standbys);
    log(`lag: ${mode}: warm-up ${num(warmUp.tps)} tps; measuring ${seconds} s`);
    // pgbench first vacuums its tables (about a second), then runs for `seconds`: the sampler
    // starts with it and keeps going a little longer; samples outside the run are dropped below.
    const samples = standbys.length > 0 ? sampler(pg, seconds * 5 + 15) : Promise.resolve([]);
    const t0 = Date.now();
    const [idle0, total0] = cpuTimes();
    const report = await pgbench(pg, [...flags, '-T', String(seconds)], seconds * 1000 + 300_000);
    const [idle1, total1] = cpuTimes();
    const t1 = Date.now();
    const cpuBusy = 1 - (idle1 - idle0) / (total1 - total0);
    const all = await samples;
    const runStart = t1 - seconds * 1000;
    const kept = all.filter((s) => s.ms >= runStart && s.ms <= t1);
    if (standbys.length > 0 && kept.length < seconds * 5 * standbys.length * 0.8) {
      throw new Error(`only ${kept.length} samples during the run (${t0}..${t1}), expected about ${seconds * 5 * standbys.length}`);
    }
    return { mode, ...parseReport(report), warmUpTps: warmUp.tps, cpuBusy, samples: kept, report };
  });
}

const pct = (share: number): string => `${(share * 100).toFixed(0)}%`;

export async function lagSection(opts: Options): Promise<SectionResult> {
  const scale = opts.quick ? 4 : 16;
  const seconds = opts.quick ? 5 : 30;
  const warmUpSeconds = opts.quick ? 2 : 5;
  const results: Record<Mode, ModeResult> = {
    none: await measure('none', scale, seconds, warmUpSeconds),
    async: await measure('async', scale, seconds, warmUpSeconds),
    sync: await measure('sync', scale, seconds, warmUpSeconds),
  };
  const { none, async: asy, sync } = results;
  const rows: Row[] = [
    row('lag', `TPS async, 2 replicas (floor: no standby), -s ${scale} -T ${seconds}`, num(asy.tps), num(none.tps), ratio(asy.tps, none.tps),
      `latency avg ${num(asy.latencyMs)} vs ${num(none.latencyMs)} ms; CPU busy ${pct(asy.cpuBusy)} vs ${pct(none.cpuBusy)}`),
    row('lag', 'TPS sync quorum ANY 1 (floor: async)', num(sync.tps), num(asy.tps), ratio(sync.tps, asy.tps),
      `sync/no standby ${ratio(sync.tps, none.tps)}; latency avg ${num(sync.latencyMs)} ms; CPU busy ${pct(sync.cpuBusy)}`),
  ];
  const summary: Record<string, unknown> = {};
  for (const r of [asy, sync]) {
    for (const app of [replica(0), replica(1)]) {
      const mine = r.samples.filter((s) => s.app === app);
      const lag = mine.map((s) => s.lagMs);
      const bytes = mine.map((s) => s.bytes / 1024);
      summary[`${r.mode} ${app}`] = {
        samples: mine.length,
        lagMs: { p50: percentile(lag, 50), p99: percentile(lag, 99), max: Math.max(...lag) },
        kb: { p50: percentile(bytes, 50), p99: percentile(bytes, 99), max: Math.max(...bytes) },
      };
      rows.push(row('lag', `${r.mode} ${app}: replay_lag p50 / p99 ms`, `${num(percentile(lag, 50))} / ${num(percentile(lag, 99))}`,
        '-', '-', `${mine.length} samples, one per 200 ms`));
      rows.push(row('lag', `${r.mode} ${app}: WAL not replayed p50 / p99 KB`, `${num(percentile(bytes, 50))} / ${num(percentile(bytes, 99))}`,
        '-', '-', 'pg_current_wal_lsn() - replay_lsn'));
    }
  }
  return {
    section: 'lag',
    floor: 'TPS: the same pgbench on the primary of the same library with replicas: 0 (nothing replicates); the sync row uses async as its floor. Replay lag has no floor (0 is the ideal)',
    rows,
    data: {
      scale,
      seconds,
      warmUpSeconds,
      pgbench: '-c 4 -j 2 --random-seed=42 (TPC-B-like, over the primary pod\'s socket)',
      summary,
      results,
    },
  };
}
