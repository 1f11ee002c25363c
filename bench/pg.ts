/**
 * Real PostgreSQL clusters for sections 2-4: the pods of a real synth run by the e2e harness
 * (test/e2e/harness), on the host's PostgreSQL 15 with the real DocumentDB extension
 * (test/e2e/documentdb.ts; `harness.postgres` 17 for the images' userlands). Every
 * cluster booted here is registered, so SIGINT and failures destroy it (the harness also kills
 * what is left at exit).
 */
import { FerretDBClusterProps } from '../src';
import { NAME, PgCluster, PgClusterOptions, PRIMARY, PRIMARY_STS, REPLICA_STS } from '../test/e2e/fixture';

const live = new Set<PgCluster>();

/**
 * Synthesizes, runs the credentials Job, starts the primary, then the replicas (if any), as
 * PgCluster.boot does, but also with `replicas: 0` (no replica StatefulSet is synthesized then).
 */
export async function boot(props: FerretDBClusterProps, options: BootOptions = {}): Promise<PgCluster> {
  const pg = await PgCluster.create(props, { postgres: 15, ...options.harness });
  live.add(pg);
  try {
    options.beforeStart?.(pg);
    await pg.runCredentialsJob();
    await pg.h.startStatefulSet(PRIMARY_STS, { timeoutMs: 120_000 });
    if ((props.replicas ?? 2) > 0) await pg.h.startStatefulSet(REPLICA_STS, { timeoutMs: 180_000 });
  } catch (e) {
    await release(pg);
    throw e;
  }
  return pg;
}

export async function release(pg: PgCluster): Promise<void> {
  live.delete(pg);
  await pg.destroy();
}

/** Harness options (images), and what to do before any pod starts (Secrets the pods mount). */
export interface BootOptions {
  readonly harness?: PgClusterOptions;
  readonly beforeStart?: (pg: PgCluster) => void;
}

export async function withCluster<T>(props: FerretDBClusterProps, fn: (pg: PgCluster) => Promise<T>, options: BootOptions = {}): Promise<T> {
  const pg = await boot(props, options);
  try {
    return await fn(pg);
  } finally {
    await release(pg);
  }
}

/** Registers a cluster booted elsewhere (MongoCluster.boot) so that SIGINT destroys it too; returns its release. */
export function track(pg: PgCluster): () => Promise<void> {
  live.add(pg);
  return () => release(pg);
}

/** SIGINT: every cluster still running. */
export async function destroyAll(): Promise<void> {
  await Promise.all([...live].map((pg) => release(pg).catch(() => undefined)));
}

/**
 * A bash script in the `postgres` container of a pod (as its user, with its env and network),
 * like `kubectl exec`; throws with stderr unless it exits 0. Extra args are $1, $2, ...
 */
export async function sh(pg: PgCluster, pod: string, script: string, args: string[] = [], timeoutMs = 60_000): Promise<string> {
  const r = await pg.h.exec(pod, 'postgres', ['bash', '-c', script, 'bash', ...args], { timeoutMs });
  if (r.code !== 0) {
    throw new Error(`script on ${pod} failed (${r.timedOut ? `timeout after ${timeoutMs} ms` : `exit ${r.code}`}):\n${r.stderr}\n---\n${script}`);
  }
  return r.stdout;
}

/** Milliseconds since the epoch, from the pod (same kernel clock as Date.now()). */
export const NOW_MS = 'date +%s%3N';

/** Connection string of the replication role to the read-write Service, from any PostgreSQL pod. */
export const REPLICATION_CONNINFO =
  'host=$PRIMARY_HOST port=5432 user=$REPLICATION_USER dbname=postgres passfile=/tmp/.pgpass connect_timeout=5';

/**
 * Polls the primary's pg_stat_replication every 50 ms from inside the primary pod until `condition`
 * holds for the standby `app`; prints the pod clock (ms) when it does.
 */
export function pollUntil(pg: PgCluster, condition: string, app: string, timeoutMs: number): Promise<number> {
  const script = `
    until [ "$(psql -XAtq -d postgres -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$1' AND (${condition})")" = 1 ]; do
      sleep 0.05
    done
    ${NOW_MS}`;
  return sh(pg, PRIMARY, script, [app], timeoutMs).then((out) => Number(out.trim()));
}

/** Standby `app` is streaming: its WAL receiver, not a pg_basebackup (which reports no replay position). */
export const STREAMING = "state = 'streaming' AND replay_lsn IS NOT NULL";

export async function currentLsn(pg: PgCluster): Promise<string> {
  return pg.sql(PRIMARY, 'SELECT pg_current_wal_lsn()');
}

export async function lsnDiff(pg: PgCluster, a: string, b: string): Promise<number> {
  return Number(await pg.sql(PRIMARY, `SELECT pg_wal_lsn_diff('${a}', '${b}')`));
}

/** Waits until every connected standby has replayed everything the primary has written. */
export async function waitCaughtUp(pg: PgCluster, standbys: string[], timeoutMs = 300_000): Promise<void> {
  const target = await currentLsn(pg);
  await pg.h.waitUntil(`${standbys.join(', ')} replayed up to ${target}`, timeoutMs, async () =>
    Number(await pg.sql(PRIMARY, `SELECT count(*) FROM pg_stat_replication WHERE replay_lsn >= '${target}'`)) >= standbys.length);
}

/** pgbench in the primary pod over its socket; returns its stdout (the report). */
export async function pgbench(pg: PgCluster, args: string[], timeoutMs: number): Promise<string> {
  const r = await pg.h.exec(PRIMARY, 'postgres', ['pgbench', ...args, 'postgres'], { timeoutMs });
  if (r.code !== 0) throw new Error(`pgbench ${args.join(' ')} failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export { NAME, PRIMARY };
