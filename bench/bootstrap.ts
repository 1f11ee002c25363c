/**
 * Section 2, replica bootstrap: a primary holding about 1 GB (pgbench -i -s 64), then the time
 * from the replica pod's start (harness startPod of a pod deleted with recreate: false and a
 * wiped volume) until the primary sees it streaming. The replica's own scripts do everything:
 * slot check, pg_basebackup -X stream through its slot into a sibling directory, move, start as
 * standby, connect.
 *
 * Floor: a bare `pg_basebackup -X stream -c fast` of the same primary, run in the other replica
 * pod (same network path through the read-write Service, same replication role, same disk) into
 * its /tmp emptyDir, timed inside the pod.
 */
import * as fs from 'fs';
import * as path from 'path';
import { log, mb, median, num, Options, range, ratio, row, Row, SectionResult } from './common';
import { NOW_MS, PRIMARY, REPLICATION_CONNINFO, pgbench, pollUntil, sh, STREAMING, waitCaughtUp, withCluster } from './pg';
import { replica, toolWrappers } from '../test/e2e/fixture';

const TARGET = replica(0);
const VANTAGE = replica(1);

/** The PostgreSQL programs the standby's scripts run, each wrapped to log when it starts and ends. */
const TRACED = ['psql', 'pg_basebackup', 'pg_controldata', 'postgres', 'pg_ctl'];

/** One traced program run in the replica pod: its start and end (ms, pod clock), who ran it, its arguments. */
interface TracedCall {
  readonly start: number;
  readonly end?: number;
  readonly program: string;
  readonly caller: string;
  readonly args: string;
}

/**
 * Where the standby's start goes besides the copy: a separate small cluster (pgbench -i -s 4,
 * so the copy is short and the fixed steps stand out) whose PostgreSQL programs are wrapped to
 * log their start and end in TARGET (the measured runs above have no wrappers). One run after a
 * discarded one; every step is given in ms from the pod's start. The server itself is logged at
 * its start only (the wrapper execs it): its share is from there to `streaming`.
 */
async function profileStart(): Promise<{ t0: number; streaming: number; calls: TracedCall[] }> {
  const wrap = `
if [ "\${POD_NAME:-}" = "${TARGET}" ]; then
  caller=$(tr '\\0' ' ' < /proc/$PPID/cmdline 2>/dev/null | sed 's|.*/||' | cut -c1-40)
  n=$(basename "$0")
  printf '%s S %s %s|%s|%s\n' "$(date +%s%3N)" "$$" "$n" "$caller" "$(echo "$*" | cut -c1-80)" >> "$DIR/trace"
  case "$n $* " in pg_ctl*|postgres*" -C "*) ;; postgres*) exec "$REAL" "$@" ;; esac
  case "$n" in pg_ctl) exec "$REAL" "$@" ;; esac
  "$REAL" "$@"; rc=$?
  printf '%s E %s\n' "$(date +%s%3N)" "$$" >> "$DIR/trace"
  exit $rc
fi
exec "$REAL" "$@"`;
  const tools = toolWrappers(Object.fromEntries(TRACED.map((p) => [p, wrap])));
  try {
    return await withCluster({ replicas: 2, storage: { size: '20Gi' } }, async (pg) => {
      await pg.waitStreaming(PRIMARY, [TARGET, VANTAGE]);
      await pgbench(pg, ['-i', '-s', '4', '-q'], 600_000);
      await pg.sql(PRIMARY, 'CHECKPOINT', 300_000);
      let result = { t0: 0, streaming: 0, calls: [] as TracedCall[] };
      for (let i = 0; i < 2; i++) {
        await pg.h.deletePod(TARGET, { recreate: false });
        pg.h.wipeVolume(TARGET, 'data');
        fs.rmSync(path.join(tools.dir, 'trace'), { force: true });
        const streaming = pollUntil(pg, STREAMING, TARGET, 600_000);
        const t0 = Date.now();
        await pg.h.startPod(TARGET);
        const t1 = await streaming;
        // The agent's first queries may come after streaming: only what came before counts.
        const lines = fs.readFileSync(path.join(tools.dir, 'trace'), 'utf8').trim().split('\n');
        const ends = new Map(lines.filter((l) => l.split(' ')[1] === 'E').map((l) => [l.split(' ')[2], Number(l.split(' ')[0])] as const));
        const calls = lines.filter((l) => l.split(' ')[1] === 'S').map((l) => {
          const [ms, , pid, ...rest] = l.split(' ');
          const [program, caller, args] = rest.join(' ').split('|');
          return { start: Number(ms), end: ends.get(pid), program, caller, args };
        }).filter((c) => c.start <= t1);
        result = { t0, streaming: t1, calls };
      }
      return result;
    }, { harness: tools.options });
  } finally {
    tools.remove();
  }
}

export async function bootstrapSection(opts: Options): Promise<SectionResult> {
  const measured = await measureBootstrap(opts);
  log('bootstrap: profiling the standby\'s start (a small cluster with traced programs)');
  let profile: Awaited<ReturnType<typeof profileStart>>;
  try {
    profile = await profileStart();
  } catch (e) {
    log(`bootstrap: profile failed: ${(e as Error).message}`);
    return { ...measured, rows: [...measured.rows, row('bootstrap', 'profile (small cluster, -s 4)', '-', '-', '-', `failed: ${(e as Error).message.split('\n')[0]}`)] };
  }
  const at = (ms: number): string => num(ms - profile.t0);
  const steps = profile.calls.map((c) => `${c.caller.split(' ')[1] ?? c.caller} ${c.program} ${c.args.split(' ').slice(0, 3).join(' ')}: ${at(c.start)}-${c.end !== undefined ? at(c.end) : '…'}`);
  const rows = [
    ...measured.rows,
    row('bootstrap', 'profile (small cluster, -s 4): pod start -> streaming, ms', num(profile.streaming - profile.t0), '-', '-',
      `traced programs, ms from the pod's start (start-end; … = exec'd): ${steps.join('; ')}`),
  ];
  return { ...measured, rows, data: { ...measured.data as object, profile } };
}

async function measureBootstrap(opts: Options): Promise<SectionResult> {
  const scale = opts.quick ? 4 : 64;
  const runs = opts.quick ? 1 : 3;
  return withCluster({ replicas: 2, storage: { size: '20Gi' } }, async (pg) => {
    await pg.waitStreaming(PRIMARY, [TARGET, VANTAGE]);
    await pg.h.deletePod(TARGET, { recreate: false });
    pg.h.wipeVolume(TARGET, 'data');

    log(`bootstrap: loading the primary (pgbench -i -s ${scale})`);
    const loadStart = Date.now();
    await pgbench(pg, ['-i', '-s', String(scale), '-q'], 1_800_000);
    await pg.sql(PRIMARY, 'CHECKPOINT', 300_000);
    const loadSeconds = (Date.now() - loadStart) / 1000;
    const dbBytes = Number(await pg.sql(PRIMARY, "SELECT pg_database_size('postgres')"));
    const clusterBytes = Number(await pg.sql(PRIMARY, 'SELECT sum(pg_database_size(oid)) FROM pg_database'));
    log(`bootstrap: database postgres is ${num(mb(dbBytes))} MB (all databases ${num(mb(clusterBytes))} MB), loaded in ${num(loadSeconds)} s`);
    await waitCaughtUp(pg, [VANTAGE], 600_000);

    const floor = async (): Promise<{ ms: number; bytes: number }> => {
      // set -e: a failed copy fails the section (sh throws) instead of timing it.
      const out = await sh(pg, VANTAGE, `
        set -e
        d=/tmp/bench-basebackup
        rm -rf "$d"
        s=$(${NOW_MS})
        pg_basebackup -D "$d" -d "${REPLICATION_CONNINFO} application_name=bench-floor" -X stream -c fast --no-password
        e=$(${NOW_MS})
        b=$(du -sb "$d" | cut -f1)
        rm -rf "$d"
        echo "$s $e $b"`, [], 1_800_000);
      const [s, e, b] = out.trim().split(/\s+/).map(Number);
      if (!(e > s && b > 0)) throw new Error(`the floor's pg_basebackup printed no timing and size: ${JSON.stringify(out)}`);
      return { ms: e - s, bytes: b };
    };
    const ours = async (): Promise<{ ms: number; bytes: number }> => {
      const mark = pg.logMark(TARGET);
      const streaming = pollUntil(pg, STREAMING, TARGET, 1_800_000);
      const t0 = Date.now();
      await pg.h.startPod(TARGET);
      const t1 = await streaming;
      if (!/clone complete/.test(pg.logsSince(TARGET, mark))) throw new Error(`${TARGET} streams without having cloned:\n${pg.logsSince(TARGET, mark)}`);
      const bytes = Number((await sh(pg, TARGET, 'du -sb "$PGDATA" | cut -f1')).trim());
      await pg.h.deletePod(TARGET, { recreate: false });
      pg.h.wipeVolume(TARGET, 'data');
      return { ms: t1 - t0, bytes };
    };

    log('bootstrap: warm-up (one floor pg_basebackup, discarded)');
    await floor();
    const oursRuns: Array<{ ms: number; bytes: number }> = [];
    const floorRuns: Array<{ ms: number; bytes: number }> = [];
    for (let i = 0; i < runs; i++) {
      oursRuns.push(await ours());
      floorRuns.push(await floor());
      log(`bootstrap: run ${i + 1}/${runs}: ours ${num(oursRuns[i].ms / 1000)} s, floor ${num(floorRuns[i].ms / 1000)} s`);
    }
    const oursS = median(oursRuns.map((r) => r.ms)) / 1000;
    const floorS = median(floorRuns.map((r) => r.ms)) / 1000;
    const copiedMB = mb(median(floorRuns.map((r) => r.bytes)));
    const note = runs > 1
      ? `median of ${runs}; range ours ${range(oursRuns.map((r) => r.ms / 1000))}, floor ${range(floorRuns.map((r) => r.ms / 1000))}`
      : '1 run';
    const rows: Row[] = [
      row('bootstrap', `pod start -> streaming, ${num(mb(dbBytes))} MB database: s`, num(oursS), num(floorS), ratio(oursS, floorS),
        `${note}; pgbench -i -s ${scale}`),
      row('bootstrap', 'base backup MB / elapsed s', num(copiedMB / oursS), num(copiedMB / floorS), ratio(floorS, oursS),
        `ours/floor rate; the base backup is ${num(copiedMB)} MB`),
    ];
    return {
      section: 'bootstrap' as const,
      floor: 'a bare pg_basebackup -X stream -c fast of the same primary from the other replica pod into its /tmp emptyDir',
      rows,
      data: { scale, dbBytes, clusterBytes, loadSeconds, runs, ours: oursRuns, floor: floorRuns },
    };
  });
}
