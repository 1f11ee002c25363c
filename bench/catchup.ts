/**
 * Section 4, catch-up: the replica of a 1-replica cluster is stopped (graceful delete, not
 * recreated) while the primary writes about 500 MB of WAL (bulk INSERTs of 400-byte rows,
 * measured with pg_current_wal_lsn()); then the time from its restart (startPod) until its
 * replay_lsn, as the primary sees it, reaches the primary's LSN at the restart.
 *
 * Floor: pg_receivewal streaming the same WAL range (from a physical slot created, after a
 * CHECKPOINT, just when the replica stopped, to --endpos = that LSN) into the replica pod's /tmp
 * emptyDir: same network path, same role, same disk, WAL received and fsynced but not replayed.
 */
import { slotNameForPod } from '../src';
import { log, mb, median, num, Options, range, ratio, row, Row, SectionResult } from './common';
import { currentLsn, lsnDiff, NOW_MS, PRIMARY, pollUntil, REPLICATION_CONNINFO, sh, waitCaughtUp, withCluster } from './pg';
import { replica } from '../test/e2e/fixture';

const TARGET = replica(0);
const FLOOR_SLOT = 'bench_floor';

interface Iteration {
  /** WAL written while the replica was down, from its slot's restart_lsn to the LSN at its restart. */
  readonly walBytes: number;
  readonly writeMs: number;
  readonly oursMs: number;
  /** The floor's range: from the floor slot's restart_lsn to the same end LSN. */
  readonly floorWalBytes: number;
  readonly floorMs: number;
}

export async function catchupSection(opts: Options): Promise<SectionResult> {
  const walMB = opts.quick ? 64 : 500;
  const runs = opts.quick ? 1 : 3;
  return withCluster({ replicas: 1, storage: { size: '20Gi' } }, async (pg) => {
    await pg.waitStreaming(PRIMARY, [TARGET]);
    await pg.sql(PRIMARY, 'CREATE TABLE bench_filler (id bigint, v text)');
    const bound = await pg.sql(PRIMARY, 'SHOW max_slot_wal_keep_size');

    const iteration = async (bytes: number): Promise<Iteration> => {
      await pg.sql(PRIMARY, 'TRUNCATE bench_filler; CHECKPOINT', 300_000);
      await waitCaughtUp(pg, [TARGET]);
      await pg.h.deletePod(TARGET, { recreate: false });
      const stopLsn = await pg.sql(PRIMARY, `SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slotNameForPod(TARGET)}'`);
      const floorStart = await pg.sql(PRIMARY,
        `CHECKPOINT; SELECT lsn FROM pg_create_physical_replication_slot('${FLOOR_SLOT}', true)`, 300_000);

      const w0 = Date.now();
      await sh(pg, PRIMARY, `
        until [ "$(psql -XAtq -d postgres -c "INSERT INTO bench_filler SELECT g, repeat('x', 400) FROM generate_series(1, 20000) g; SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1') >= $2")" = t ]; do
          :
        done`, [stopLsn, String(bytes)], 1_800_000);
      const writeMs = Date.now() - w0;

      const endLsn = await currentLsn(pg);
      // pg_receivewal --endpos stops on the first WAL it receives past endpos (not at it): one
      // small committed row, so that it does not wait for whatever else writes WAL next.
      await pg.sql(PRIMARY, "INSERT INTO bench_filler VALUES (0, 'end')");
      const caughtUp = pollUntil(pg, `replay_lsn >= '${endLsn}'`, TARGET, 1_800_000);
      const t0 = Date.now();
      await pg.h.startPod(TARGET);
      const t1 = await caughtUp;

      // set -e: a failed receive fails the section (sh throws) instead of timing it.
      const out = await sh(pg, TARGET, `
        set -e
        d=/tmp/bench-receivewal
        rm -rf "$d" && mkdir -p "$d"
        s=$(${NOW_MS})
        pg_receivewal -D "$d" -S ${FLOOR_SLOT} --endpos="$1" --no-loop --no-password -d "${REPLICATION_CONNINFO} application_name=bench-floor"
        e=$(${NOW_MS})
        rm -rf "$d"
        echo "$s $e"`, [endLsn], 1_800_000);
      const [s, e] = out.trim().split(/\s+/).map(Number);
      if (!(e > s)) throw new Error(`the floor's pg_receivewal printed no timing: ${JSON.stringify(out)}`);
      await pg.sql(PRIMARY, `SELECT pg_drop_replication_slot('${FLOOR_SLOT}')`);
      return {
        walBytes: await lsnDiff(pg, endLsn, stopLsn),
        writeMs,
        oursMs: t1 - t0,
        floorWalBytes: await lsnDiff(pg, endLsn, floorStart),
        floorMs: e - s,
      };
    };

    log('catchup: warm-up (64 MB, discarded)');
    await iteration(64 * 2 ** 20);
    const results: Iteration[] = [];
    for (let i = 0; i < runs; i++) {
      results.push(await iteration(walMB * 2 ** 20));
      const r = results[i];
      log(`catchup: run ${i + 1}/${runs}: ${num(mb(r.walBytes))} MB of WAL written in ${num(r.writeMs / 1000)} s; `
        + `ours ${num(r.oursMs / 1000)} s, floor ${num(r.floorMs / 1000)} s`);
    }
    const oursS = median(results.map((r) => r.oursMs)) / 1000;
    const floorS = median(results.map((r) => r.floorMs)) / 1000;
    const walMBMedian = mb(median(results.map((r) => r.walBytes)));
    const oursRate = median(results.map((r) => mb(r.walBytes) / (r.oursMs / 1000)));
    const floorRate = median(results.map((r) => mb(r.floorWalBytes) / (r.floorMs / 1000)));
    const writeRate = median(results.map((r) => mb(r.walBytes) / (r.writeMs / 1000)));
    const note = runs > 1
      ? `median of ${runs}; range ours ${range(results.map((r) => r.oursMs / 1000))}, floor ${range(results.map((r) => r.floorMs / 1000))}`
      : '1 run';
    const rows: Row[] = [
      row('catchup', `restart -> replayed ${num(walMBMedian)} MB of WAL: s`, num(oursS), num(floorS), ratio(oursS, floorS), note),
      row('catchup', 'WAL MB / elapsed s', num(oursRate), num(floorRate), ratio(oursRate, floorRate),
        `ours/floor rate; the primary wrote it at ${num(writeRate)} MB/s`),
    ];
    return {
      section: 'catchup' as const,
      floor: 'pg_receivewal of the same WAL range (slot + --endpos) from the replica pod into its /tmp emptyDir: received and fsynced, not replayed',
      rows,
      data: { walMB, runs, maxSlotWalKeepSize: bound, warmUp: 'one 64 MB iteration, discarded', results },
    };
  });
}
