import * as fs from 'fs';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { DOCUMENTDB_TEST_PARAMETERS, ensureDocumentDb } from './documentdb';
import { ferretDbImages } from './ferretdb';
import { Cluster, ClusterOptions, DEFAULT_IMAGE, ExecResult, HOST_ROOT, ImageSpec } from './harness';
import { imageUserlands, POSTGRES_IMAGE, userlandIds } from './userlands';
import { FerretDBCluster, FerretDBClusterProps, slotNameForPod } from '../../src';

/** Every scenario synthesizes a real FerretDBCluster named `fdb`. */
export const NAME = 'fdb';
export const PRIMARY_STS = `${NAME}-pg-primary`;
export const REPLICA_STS = `${NAME}-pg-replica`;
export const PRIMARY = `${PRIMARY_STS}-0`;
export const RW_SERVICE = `${NAME}-pg-rw`;
export const replica = (i: number): string => `${REPLICA_STS}-${i}`;

/**
 * The objects of a real synth, used unchanged. `deviation` is merged under the test's own
 * parameters: none by default (the images' PostgreSQL 17 with pg_cron 1.6 takes the synth as it
 * is); PG15_DEVIATION for the host's PostgreSQL 15 (see PgCluster.synth).
 */
export function synthCluster(props: FerretDBClusterProps = {}, deviation: { readonly [name: string]: string } = {}): unknown[] {
  const chart = Testing.chart();
  new FerretDBCluster(chart, 'db', { name: NAME, ...props, parameters: { ...deviation, ...props.parameters } });
  return Testing.synth(chart);
}

/**
 * The one setting a PostgreSQL 15 scenario passes that the images do not need (Debian 12's
 * pg_cron 1.4 cannot take DocumentDB's second-based index-build schedule; see ./documentdb.ts).
 */
export const PG15_DEVIATION = DOCUMENTDB_TEST_PARAMETERS;

/**
 * The PostgreSQL a scenario runs. 17 (default): what the default image ships, every container in
 * its image's root (./userlands.ts: PostgreSQL 17 with DocumentDB 0.107 and pg_cron 1.6, BusyBox +
 * curl sidecars, postgres_exporter 0.17.1, FerretDB alone in its root) and the synth unchanged.
 * 15: Debian 12's PostgreSQL 15 and the host's tools (postgres_exporter 0.11, dash, coreutils)
 * with DocumentDB built for it and PG15_DEVIATION, for the users of the 15 images
 * (test/e2e/postgres15.test.ts).
 */
export type PostgresMajor = 15 | 17;

/** The harness options, plus what the fixture maps per PostgreSQL major (see PostgresMajor). */
export type PgClusterOptions = Omit<ClusterOptions, 'userlands' | 'images'> & {
  /** Default 17. */
  readonly postgres?: PostgresMajor;
  /**
   * Images on the host's binaries (ClusterOptions.images entries). Under 15 merged over the
   * harness's images; under 17 added to the userland table with root HOST_ROOT, for test-only
   * images no synthesized object names (say a client pod).
   */
  readonly images?: Record<string, ImageSpec>;
  /** A directory of toolWrappers, first on the postgres image's PATH. */
  readonly toolDir?: string;
};

/** The harness options of a PgClusterOptions (the userland table for 17, host images for 15). */
export function harnessOptions(options: PgClusterOptions = {}): ClusterOptions {
  const { postgres = 17, images = {}, toolDir, ...harness } = options;
  if (postgres === 15) {
    ensureDocumentDb();
    const tools: Record<string, ImageSpec> = toolDir === undefined ? {} : { '*': { path: [toolDir, ...DEFAULT_IMAGE.path!] } };
    return { ...harness, images: { ...ferretDbImages(), ...tools, ...images } };
  }
  const table = imageUserlands();
  const pg = table[POSTGRES_IMAGE];
  const tools = toolDir === undefined ? {} : { [POSTGRES_IMAGE]: { ...pg, path: [toolDir, ...pg.path ?? []], binds: [toolDir] } };
  const host = Object.fromEntries(Object.entries(images).map(([image, spec]) => [image, { ...spec, root: HOST_ROOT }]));
  return { ...harness, userlands: { ...table, ...tools, ...host }, userlandIds: userlandIds() };
}

/**
 * A directory put first on the postgres containers' PATH holding wrappers of PostgreSQL's
 * programs (to make one slow or fail on demand), under either major. Each wrapper is `sh` with
 * `$REAL` set to the real program and `$DIR` to the directory, which is writable by the pods
 * (flag files, call logs) and mounted at the same path in their roots. `remove()` deletes it.
 */
export function toolWrappers(wrappers: { [program: string]: string }): { dir: string; options: PgClusterOptions; remove: () => void } {
  // Not under /tmp: the pods mount a volume of their own there.
  const dir = fs.mkdtempSync('/var/tmp/fdb-tools-');
  fs.chmodSync(dir, 0o777);
  for (const [program, body] of Object.entries(wrappers)) {
    fs.writeFileSync(path.join(dir, program), `#!/bin/sh\nREAL=/usr/lib/postgresql/$PG_MAJOR/bin/${program}\nDIR=${dir}\n${body}\n`, { mode: 0o755 });
  }
  return {
    dir,
    options: { toolDir: dir },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** The scenarios' table, and the statement inserting rows `from`..`to` into it. */
export const TABLE = 'CREATE TABLE t (id int PRIMARY KEY, v text)';
export const insert = (from: number, to: number): string => `INSERT INTO t SELECT g, 'row ' || g FROM generate_series(${from}, ${to}) g`;

/** A running synthesized cluster and the SQL it takes to check it. */
export class PgCluster {
  /**
   * Synthesizes, runs the credentials Job, then starts the primary and replica StatefulSets
   * in order, as `kubectl apply` would.
   */
  public static async boot(props: FerretDBClusterProps = {}, options: PgClusterOptions = {}): Promise<PgCluster> {
    const pg = await PgCluster.create(props, options);
    try {
      await pg.runCredentialsJob();
      await pg.h.startStatefulSet(PRIMARY_STS, { timeoutMs: 120_000 });
      await pg.h.startStatefulSet(REPLICA_STS, { timeoutMs: 180_000 });
    } catch (e) {
      await pg.destroy();
      throw e;
    }
    return pg;
  }

  /** The objects of a synth, loaded but nothing started. */
  public static async create(props: FerretDBClusterProps = {}, options: PgClusterOptions = {}): Promise<PgCluster> {
    const postgres = options.postgres ?? 17;
    const harness = harnessOptions(options);
    const objects = synthCluster(props, postgres === 15 ? PG15_DEVIATION : {});
    const job = (objects as any[]).find((o) => o.kind === 'Job');
    return new PgCluster(await Cluster.create(objects, harness), job?.metadata?.name, postgres);
  }

  constructor(public readonly h: Cluster, public readonly credentialsJob?: string, public readonly postgres: PostgresMajor = 17) {}

  /** The objects of a synth for this cluster's PostgreSQL (PG15_DEVIATION on 15), for apply(). */
  public synth(props: FerretDBClusterProps = {}): unknown[] {
    return synthCluster(props, this.postgres === 15 ? PG15_DEVIATION : {});
  }

  /** Runs the credentials Job (named after its content) to completion. */
  public async runCredentialsJob(): Promise<void> {
    if (!this.credentialsJob) throw new Error('this synth has no credentials Job');
    const job = await this.h.runJob(this.credentialsJob, { timeoutMs: 60_000 });
    if (!job.succeeded) throw new Error(`credentials Job failed:\n${job.logs}`);
  }

  /** psql as postgres over the pod's own socket; throws with stderr on failure. */
  public async sql(pod: string, query: string, timeoutMs = 30_000): Promise<string> {
    const r = await this.trySql(pod, query, timeoutMs);
    if (r.code !== 0) {
      throw new Error(`psql on ${pod} failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}): ${r.stderr}\nquery: ${query}`);
    }
    return r.stdout.trim();
  }

  public trySql(pod: string, query: string, timeoutMs = 30_000): Promise<ExecResult> {
    return this.h.exec(pod, 'postgres', ['psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres'],
      { input: query, timeoutMs });
  }

  public async inRecovery(pod: string): Promise<boolean> {
    return (await this.sql(pod, 'SELECT pg_is_in_recovery()')) === 't';
  }

  /** Waits until `primary` streams to every standby, each through its own active slot. */
  public async waitStreaming(primary: string, standbys: string[], timeoutMs = 120_000): Promise<void> {
    try {
      await this.streaming(primary, standbys, timeoutMs);
    } catch (e) {
      // Say why: the last lines each side logged.
      const tails = [primary, ...standbys].map((pod) =>
        `--- ${pod} ---\n${this.h.logs(pod, 'postgres').split('\n').slice(-15).join('\n')}`);
      throw new Error(`${(e as Error).message}\n${tails.join('\n')}`);
    }
  }

  private async streaming(primary: string, standbys: string[], timeoutMs: number): Promise<void> {
    await this.h.waitUntil(`${primary} streaming to ${standbys.join(', ')}`, timeoutMs, async () => {
      const rows = await this.trySql(primary, `
        SELECT r.application_name || '=' || coalesce(s.slot_name, '-')
        FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
        WHERE r.state = 'streaming' AND r.replay_lsn IS NOT NULL ORDER BY 1`, 10_000);
      if (rows.code !== 0) return false;
      const got = rows.stdout.trim().split('\n').filter(Boolean);
      return standbys.every((pod) => got.includes(`${pod}=${slotNameForPod(pod)}`));
    });
  }

  public async count(pod: string, table: string): Promise<number> {
    return Number(await this.sql(pod, `SELECT count(*) FROM ${table}`));
  }

  /** Waits until `pod` sees `expected` rows in `table` (replay is asynchronous). */
  public async waitCount(pod: string, table: string, expected: number, timeoutMs = 60_000): Promise<void> {
    await this.h.waitUntil(`${pod} has ${expected} rows in ${table}`, timeoutMs, async () => {
      const r = await this.trySql(pod, `SELECT count(*) FROM ${table}`, 10_000);
      return r.code === 0 && Number(r.stdout.trim()) === expected;
    });
  }

  /**
   * The pods that run as writable primaries right now (asked over each pod's socket). A server
   * postgres.sh runs while it prepares the data directory (initdb, the promotion's own local
   * server, which stops for the real one a moment later) listens on the socket only and takes
   * no client's writes: it does not count.
   */
  public async writablePrimaries(pods: string[]): Promise<string[]> {
    const writable: string[] = [];
    for (const pod of pods) {
      const r = await this.h.exec(pod, 'postgres', ['sh', '-c',
        '[ ! -e "$RUN_DIR/preparing" ] && exec psql -X -A -t -q -d postgres -c "SELECT pg_is_in_recovery()"'], { timeoutMs: 10_000 });
      if (r.code === 0 && r.stdout.trim() === 'f') writable.push(pod);
    }
    return writable;
  }

  /** Logs are kept across restarts of a pod: a mark lets a test read only what came after it. */
  public logMark(pod: string, container = 'postgres'): number {
    return this.h.logs(pod, container).length;
  }

  public logsSince(pod: string, mark: number, container = 'postgres'): string {
    return this.h.logs(pod, container).slice(mark);
  }

  public async waitLog(pod: string, pattern: RegExp, mark = 0, timeoutMs = 60_000, container = 'postgres'): Promise<void> {
    await this.h.waitUntil(`${pod} ${container} log matching ${pattern}`, timeoutMs, () => pattern.test(this.logsSince(pod, mark, container)));
  }

  /** Host path of a pod's PGDATA (the volume claim `data`, subdirectory `pgdata`). */
  public pgdata(pod: string): string {
    return path.join(this.h.volumePath(pod, 'data'), 'pgdata');
  }

  /** Bytes of WAL in a pod's pg_wal, measured on disk. */
  public walBytesOnDisk(pod: string): number {
    const dir = path.join(this.pgdata(pod), 'pg_wal');
    return fs.readdirSync(dir).filter((f) => /^[0-9A-F]{24}$/.test(f))
      .reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).size, 0);
  }

  public async destroy(): Promise<void> {
    await this.h.destroy();
  }
}

/** A writer that inserts one row per transaction into `t`; see writeContinuously. */
export interface ContinuousWriter {
  /** The acknowledged ids so far (grows as commits return). */
  readonly acked: number[];
  /** Stops after the current insert; the acknowledged ids. */
  stop(): Promise<number[]>;
  /** Waits for the first failed insert; the acknowledged ids. */
  done(): Promise<number[]>;
}

/**
 * Inserts one row per transaction (ids from `first` on) through the pod's socket until an insert
 * fails or `stop` is called. `onStart` receives a function that stops it (for afterEach);
 * `value` is the SQL of the row's `v` (a short constant by default).
 */
export function writeContinuously(c: PgCluster, pod: string, first = 1, onStart?: (halt: () => void) => void, value = "'w'"): ContinuousWriter {
  let running = true;
  onStart?.(() => { running = false; });
  const acked: number[] = [];
  const loop = (async () => {
    for (let id = first; running; id++) {
      const r = await c.trySql(pod, `INSERT INTO t VALUES (${id}, ${value})`, 5_000);
      if (r.code !== 0) break;
      acked.push(id);
    }
  })();
  return {
    acked,
    stop: async () => { running = false; await loop; return acked; },
    done: async () => { await loop; return acked; },
  };
}
