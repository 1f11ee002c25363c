/**
 * Failover scenarios shared by the e2e tests and the bench (bench/failover.ts): the primary
 * partitioned from everything while the leader key moves, and a client writing through
 * `NAME-pg-rw` over TCP as FerretDB's role while the leader key moves.
 */
import { NAME, PgCluster, RW_SERVICE } from './fixture';
import { sampleWritability, WritabilitySample } from './harness';
import { CLIENT } from './mongo-fixture';

/** The Lease timing the synthesized primary runs with (seconds; its postgres container's env). */
export function leaseTiming(objects: readonly unknown[]): { readonly durationS: number; readonly renewDeadlineS: number } {
  const sts = (objects as any[]).find((o) => o.kind === 'StatefulSet' && o.metadata.name === `${NAME}-pg-primary`);
  const env: { name: string; value?: string }[] = sts?.spec.template.spec.containers.find((c: any) => c.name === 'postgres')?.env ?? [];
  const value = (name: string): number => {
    const v = Number(env.find((e) => e.name === name)?.value);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`the synthesized primary's postgres container has no ${name}`);
    return v;
  };
  return { durationS: value('LEASE_DURATION'), renewDeadlineS: value('LEASE_RENEW_DEADLINE') };
}

export interface PartitionOutcome {
  readonly samples: WritabilitySample[];
  /** Commits acknowledged to the client inside the partition (its socket on the partitioned primary). */
  readonly ackedInPartition: number;
  /** The standby the leader key moved to: the most advanced one once the streams had ended. */
  readonly target: string;
  /** Each standby's WAL position ("LSN TLI") when the target was chosen. */
  readonly positions: Readonly<Record<string, string>>;
  readonly standbyPromoted: boolean;
  readonly oldPrimaryRejoined: boolean;
  /** When the partition began (ms, the host clock the samples share). */
  readonly start: number;
}

export interface PartitionOptions {
  /** The primary partitioned, the standbys the key may move to (in order of preference), and every member sampled. */
  readonly primary: string;
  readonly candidates: readonly string[];
  readonly members: readonly string[];
  readonly partitionMs: number;
  /** The first id the client in the partition inserts into `t` (default 1). */
  readonly firstId?: number;
  /** Moves the leader key to `target` without waiting (default: applies `c.synth({ currentPrimary })`). */
  readonly moveLeader?: (target: string) => Promise<void>;
}

/**
 * Waits until no candidate's WAL receiver streams any more (the partition cut them all; they end
 * after wal_receiver_timeout), then returns the candidate with the most WAL (received or
 * replayed; the first one on a tie) and every candidate's position: the promotion runbook's step
 * 2. With asynchronous standbys, WAL in flight when the partition began may have reached one
 * standby and not another, and a named standby that another reachable standby is ahead of
 * refuses to promote (never losing what that one received).
 */
export async function mostAdvancedStandby(c: PgCluster, candidates: readonly string[]):
Promise<{ target: string; positions: Record<string, string> }> {
  for (const pod of candidates) {
    await c.h.waitUntil(`${pod}'s WAL receiver no longer streaming`, 120_000, async () =>
      (await c.sql(pod, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")) === '0' || undefined);
  }
  const positions: Record<string, string> = {};
  let target = candidates[0];
  let best = -1n;
  for (const pod of candidates) {
    const lsn = await c.sql(pod, 'SELECT greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())');
    const tli = await c.sql(pod, 'SELECT timeline_id FROM pg_control_checkpoint()');
    positions[pod] = `${lsn} ${tli}`;
    const [hi, lo] = lsn.split('/');
    const value = BigInt(`0x${hi}`) * 0x100000000n + BigInt(`0x${lo}`);
    if (value > best) {
      best = value;
      target = pod;
    }
  }
  return { target, positions };
}

/**
 * `primary` partitioned from everything (API server, other pods, Services) and its config
 * delivery held for `partitionMs` while a client inside its partition writes over its socket;
 * once the standbys' streams have ended, the leader key moves to the most advanced candidate
 * (mostAdvancedStandby). Then healed and released: waits (240 s at most) until it runs as a
 * standby. Writability of every member is sampled inside the pods every 50 ms from before the
 * partition until `partitionMs` + 60 s after it.
 */
export async function partitionPrimary(c: PgCluster, opts: PartitionOptions): Promise<PartitionOutcome> {
  const { primary, partitionMs } = opts;
  const moveLeader = opts.moveLeader ?? ((to: string) => c.h.apply(c.synth({ currentPrimary: to }), { wait: false }));
  const sampling = sampleWritability(c.h, opts.members, partitionMs + 60_000);
  c.h.holdConfig(primary);
  await c.h.partition(primary, { from: 'all' });
  const start = Date.now();
  const writing = (async () => {
    let acked = 0;
    for (let id = opts.firstId ?? 1; Date.now() - start < partitionMs; id++) {
      const r = await c.trySql(primary, `INSERT INTO t VALUES (${id}, 'partitioned')`, 5_000);
      if (r.code === 0) acked++;
      else await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return acked;
  })();
  const { target, positions } = await mostAdvancedStandby(c, opts.candidates);
  await moveLeader(target);
  const acked = await writing;
  const standbyPromoted = (await c.writablePrimaries([target])).length === 1;
  await c.h.heal(primary);
  c.h.releaseConfig(primary);
  const oldPrimaryRejoined = await c.h.waitUntil(`${primary} back as a standby`, 240_000, async () =>
    (await c.inRecovery(primary)) || undefined).then(() => true, () => false);
  return { samples: await sampling, ackedInPartition: acked, target, positions, standbyPromoted, oldPrimaryRejoined, start };
}

/** The last writable sample of `pod` inside [start, start + windowMs), or undefined. */
export function lastWritable(samples: readonly WritabilitySample[], pod: string, start: number, windowMs: number): number | undefined {
  return [...samples].reverse().find((s) => s.pod === pod && s.writable && s.t >= start && s.t < start + windowMs)?.t;
}

/** One insert of the service writer: when it started and returned (pod clock, ms), and the server's address. */
export interface ServiceWrite {
  readonly start: number;
  readonly end: number;
  readonly ok: boolean;
  /** The server's address (`inet_server_addr()`) when accepted, the first line of the error when refused. */
  readonly detail: string;
}

/**
 * Inserts one row per connection into `t` (ids from `firstId`) from the client pod (mongo-fixture's
 * StatefulSet; its image needs psql, e.g. `images: { 'mongo-client': { path: [PG_BIN] } }`) through
 * the ClusterIP of `NAME-pg-rw` over TCP as FerretDB's role with its generated password, each
 * insert bounded by 5 s, a refused one followed by a 50 ms pause. Stops once servers other than
 * `leaving` (the old primary's address) have accepted `count` inserts, or after `maxSeconds`.
 * Timestamps are taken in the pod. The role needs INSERT on `t`.
 */
export async function writeThroughService(c: PgCluster, opts: {
  readonly firstId: number; readonly leaving: string; readonly count: number; readonly maxSeconds: number;
}): Promise<ServiceWrite[]> {
  const password = c.h.getSecret(`${NAME}-credentials`)?.['ferretdb-password'];
  if (!password) throw new Error(`Secret ${NAME}-credentials has no ferretdb-password`);
  const script = `
    id=$1; end=$(( $(date +%s) + $4 )); seen=0
    while [ "$(date +%s)" -lt "$end" ] && [ "$seen" -lt "$5" ]; do
      s=$(date +%s%3N)
      out=$(timeout 5 psql -XAtq -v ON_ERROR_STOP=1 "host=$2 user=ferretdb dbname=postgres connect_timeout=3" \\
        -c "INSERT INTO t VALUES ($id, 'rw') RETURNING host(inet_server_addr())" 2>&1)
      rc=$?; e=$(date +%s%3N)
      if [ "$rc" = 0 ]; then
        echo "$s $e ok $out"; id=$((id + 1))
        if [ "$out" != "$3" ]; then seen=$((seen + 1)); fi
      else
        echo "$s $e fail $(printf '%s' "$out" | head -n 1)"; sleep 0.05
      fi
    done
    exit 0`;
  const args = [String(opts.firstId), c.h.clusterIp(RW_SERVICE), opts.leaving, String(opts.maxSeconds), String(opts.count)];
  const r = await c.h.exec(CLIENT, 'app', ['bash', '-c', `export PGPASSWORD="$6"; ${script}`, 'writer', ...args, password],
    { timeoutMs: opts.maxSeconds * 1000 + 30_000 });
  if (r.code !== 0) throw new Error(`the writer in ${CLIENT} failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}): ${r.stderr}`);
  return r.stdout.trim().split('\n').filter(Boolean).map((line) => {
    const [start, end, ok, ...rest] = line.split(' ');
    return { start: Number(start), end: Number(end), ok: ok === 'ok', detail: rest.join(' ') };
  });
}

/**
 * The client-visible write outage of a leader change in a writer's record: from the return of the
 * last insert `oldIp` accepted to the return of the first another server accepted, with the
 * refused inserts in between (the first of them: when a client first saw the outage). Undefined
 * when the record does not show that change (no insert accepted on one side, or accepted by the
 * old primary after the new one).
 */
export function switchoverOutage(writes: readonly ServiceWrite[], oldIp: string): {
  readonly ms: number; readonly lastOld: ServiceWrite; readonly firstNew: ServiceWrite; readonly refused: ServiceWrite[];
} | undefined {
  const lastOld = [...writes].reverse().find((w) => w.ok && w.detail === oldIp);
  const firstNew = writes.find((w) => w.ok && w.detail !== oldIp);
  if (lastOld === undefined || firstNew === undefined || firstNew.start < lastOld.end) return undefined;
  const refused = writes.filter((w) => !w.ok && w.start >= lastOld.end && w.end <= firstNew.start);
  return { ms: firstNew.end - lastOld.end, lastOld, firstNew, refused };
}
