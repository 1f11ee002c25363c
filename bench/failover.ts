/**
 * Section 7, failover: a cluster of the library (2 standbys, async, real PostgreSQL 15 with the
 * StatefulSet backend and its scripts) on the e2e harness with every probe at its synthesized
 * period and the kubelets' config delivery 1-5 s apart per pod.
 *
 * 1. Planned switchover: a client pod inserts one row per connection through the ClusterIP of
 *    `NAME-pg-rw` over TCP as FerretDB's role (test/e2e/failover.ts writeThroughService) while
 *    `currentPrimary` moves to a standby; the outage is the time from the last insert the old
 *    primary accepted to the first another server accepted (both as returned to the client).
 *    Goal: 15 s.
 * 2. Fencing of a partitioned primary (test/e2e/failover.ts partitionPrimary, the scenario of
 *    test/e2e/partition.test.ts): cut from everything for 60 s while a client in its partition
 *    writes and the leader key moves; the delay is from the partition to the primary's last
 *    writable sample (sampled in the pods every 50 ms). Bound: the lease duration + 5 s. Also the
 *    50 ms windows in which two members were writable (must be 0).
 *
 * Each run boots its own cluster: the switchover moves the leader from the primary pod to the
 * first standby, then that new primary is partitioned while the key moves to the second.
 */
import { log, median, num, Options, range, ratio, row, SectionResult } from './common';
import { boot, release } from './pg';
import { PG_BIN } from '../test/e2e/documentdb';
import { lastWritable, leaseTiming, partitionPrimary, switchoverOutage, writeThroughService } from '../test/e2e/failover';
import { PgCluster, PRIMARY, replica, synthCluster, TABLE } from '../test/e2e/fixture';
import { writableOverlaps } from '../test/e2e/harness';
import { clientStatefulSet } from '../test/e2e/mongo-fixture';

const MEMBERS = [PRIMARY, replica(0), replica(1)];
const OUTAGE_GOAL_S = 15;
const FENCING_MARGIN_S = 5;
const PARTITION_MS = 60_000;
/** Inserts a server other than the old primary must accept before a switchover run ends. */
const ACCEPTED_AFTER = 20;

interface SwitchoverRun {
  readonly from: string;
  readonly to: string;
  readonly outageMs: number;
  /** From the first refused insert's start to the first accepted by the new primary; none refused: undefined. */
  readonly refusedToAcceptedMs?: number;
  readonly refused: number;
  readonly firstRefusal?: string;
  /** Each refusal's first line, with how many inserts it refused. */
  readonly refusals: Record<string, number>;
  readonly inserts: number;
}

interface PartitionRun {
  readonly primary: string;
  readonly target: string;
  readonly fencingMs: number;
  /** When the target was first sampled writable, from the partition. */
  readonly promotedMs?: number;
  readonly overlaps: number;
  readonly samples: number;
  readonly ackedInPartition: number;
}

/** The next member the leader key names, round the three. */
const next = (pod: string): string => MEMBERS[(MEMBERS.indexOf(pod) + 1) % MEMBERS.length];
const others = (pod: string): string[] => MEMBERS.filter((p) => p !== pod);

/** The synth for `currentPrimary`, with the client pod (the apply would prune it otherwise). */
function objects(pg: PgCluster, currentPrimary?: string): unknown[] {
  return [...pg.synth(currentPrimary === undefined ? {} : { currentPrimary }), clientStatefulSet];
}

async function switchover(pg: PgCluster, from: string): Promise<SwitchoverRun> {
  const to = next(from);
  const oldIp = pg.h.podIP(from);
  const firstId = 1_000_000;
  const writing = writeThroughService(pg, { firstId, leaving: oldIp, count: ACCEPTED_AFTER, maxSeconds: 300 });
  await pg.h.waitUntil('the writer\'s first commits through NAME-pg-rw', 60_000, async () =>
    Number(await pg.sql(from, `SELECT count(*) FROM t WHERE id >= ${firstId}`)) >= 10);
  await pg.h.apply(objects(pg, to), { wait: false });
  const writes = await writing;
  const outage = switchoverOutage(writes, oldIp);
  const accepted = writes.filter((w) => w.ok && w.detail !== oldIp);
  if (outage === undefined || accepted.length < ACCEPTED_AFTER) {
    throw new Error(`switchover ${from} -> ${to}: the writer's record does not show the leader change (${accepted.length} inserts accepted by another server than ${oldIp} in 300 s); last lines:\n`
      + writes.slice(-10).map((w) => `${w.start} ${w.end} ${w.ok ? 'ok' : 'fail'} ${w.detail}`).join('\n'));
  }
  const newIp = pg.h.podIP(to);
  const strays = accepted.filter((w) => w.detail !== newIp);
  if (strays.length > 0) throw new Error(`switchover ${from} -> ${to}: inserts accepted by ${strays[0].detail}, neither ${oldIp} nor ${newIp}`);
  const firstRefused = outage.refused[0];
  await pg.waitStreaming(to, others(to), 240_000);
  return {
    from,
    to,
    outageMs: outage.ms,
    refusedToAcceptedMs: firstRefused === undefined ? undefined : outage.firstNew.end - firstRefused.start,
    refused: outage.refused.length,
    firstRefusal: firstRefused?.detail,
    refusals: outage.refused.reduce<Record<string, number>>((m, w) => ({ ...m, [w.detail]: (m[w.detail] ?? 0) + 1 }), {}),
    inserts: writes.length,
  };
}

async function partition(pg: PgCluster, primary: string): Promise<PartitionRun> {
  const marks = MEMBERS.map((pod) => [pod, pg.logMark(pod), pg.logMark(pod, 'agent')] as const);
  const o = await partitionPrimary(pg, {
    primary,
    candidates: [next(primary), ...others(primary).filter((p) => p !== next(primary))],
    members: MEMBERS,
    partitionMs: PARTITION_MS,
    firstId: 2_000_000,
    moveLeader: (to) => pg.h.apply(objects(pg, to), { wait: false }),
  });
  const target = o.target;
  const what = `partition of ${primary} (key to ${target}, the most advanced standby: ${JSON.stringify(o.positions)})`;
  const counts = MEMBERS.map((pod) => o.samples.filter((s) => s.pod === pod).length);
  if (counts.some((n) => n < 100)) throw new Error(`${what}: too few writability samples (${MEMBERS.map((p, k) => `${p} ${counts[k]}`).join(', ')})`);
  if (!o.standbyPromoted || !o.oldPrimaryRejoined) {
    // What each member's postgres and agent containers said since the partition, for a failed run.
    for (const [pod, mark, agentMark] of marks) {
      log(`failover: ${pod} since the partition:\n${pg.logsSince(pod, mark).split('\n').slice(-40).join('\n')}`
        + `\n${pod} agent:\n${pg.logsSince(pod, agentMark, 'agent').split('\n').slice(-15).join('\n')}`);
    }
  }
  if (!o.standbyPromoted || !o.oldPrimaryRejoined) throw new Error(`${what}: standby promoted ${o.standbyPromoted}, old primary rejoined ${o.oldPrimaryRejoined}`);
  const last = lastWritable(o.samples, primary, o.start, PARTITION_MS);
  if (last === undefined) throw new Error(`${what}: no writable sample of ${primary} in the partition, nothing to measure the fencing from`);
  if (last > o.start + PARTITION_MS - 1_000) throw new Error(`${what}: ${primary} still writable at +${last - o.start} ms, at the end of the partition: not fenced`);
  const promoted = o.samples.find((s) => s.pod === target && s.writable && s.t >= o.start)?.t;
  await pg.waitStreaming(target, others(target), 240_000);
  return {
    primary,
    target,
    fencingMs: last - o.start,
    promotedMs: promoted === undefined ? undefined : promoted - o.start,
    overlaps: writableOverlaps(o.samples).length,
    samples: o.samples.length,
    ackedInPartition: o.ackedInPartition,
  };
}

export async function failoverSection(opts: Options): Promise<SectionResult> {
  const runs = opts.quick ? 1 : 3;
  const lease = leaseTiming(synthCluster());
  const boundS = lease.durationS + FENCING_MARGIN_S;
  const switchovers: SwitchoverRun[] = [];
  const partitions: PartitionRun[] = [];
  for (let i = 0; i < runs; i++) {
    log(`failover: run ${i + 1} of ${runs}: booting a cluster (2 standbys, async) with probes at their synthesized periods`);
    const pg = await boot({}, {
      harness: { probeTiming: 'synthesized', configDelivery: { minMs: 1000, maxMs: 5000 }, images: { 'mongo-client': { path: [PG_BIN] } } },
    });
    try {
      await pg.h.apply(objects(pg));
      await pg.h.startStatefulSet(clientStatefulSet.metadata.name);
      await pg.waitStreaming(PRIMARY, others(PRIMARY));
      await pg.sql(PRIMARY, `${TABLE}; GRANT SELECT, INSERT ON t TO ferretdb`);
      const so = await switchover(pg, PRIMARY);
      switchovers.push(so);
      log(`failover: switchover ${so.from} -> ${so.to}: outage ${num(so.outageMs / 1000)} s, ${so.refused} inserts refused`);
      const pa = await partition(pg, so.to);
      partitions.push(pa);
      log(`failover: partition of ${pa.primary}: last writable at +${num(pa.fencingMs / 1000)} s, ${pa.overlaps} windows with two writable`);
    } finally {
      await release(pg);
    }
  }

  const s = (ms: number[]): number[] => ms.map((v) => v / 1000);
  const outages = s(switchovers.map((r) => r.outageMs));
  const refusedTo = s(switchovers.flatMap((r) => (r.refusedToAcceptedMs === undefined ? [] : [r.refusedToAcceptedMs])));
  const fencing = s(partitions.map((r) => r.fencingMs));
  const promoted = s(partitions.flatMap((r) => (r.promotedMs === undefined ? [] : [r.promotedMs])));
  const overlaps = partitions.reduce((sum, r) => sum + r.overlaps, 0);
  const timing = 'probes as synthesized, config delivery 1-5 s per pod';
  const rows = [
    row('failover', 'planned switchover: write outage through NAME-pg-rw, s (floor: goal)', num(median(outages)), String(OUTAGE_GOAL_S), ratio(median(outages), OUTAGE_GOAL_S),
      `median of ${runs}; range ${range(outages)}; last accepted by the old primary -> first by the new one; first refused -> first accepted ${refusedTo.length > 0 ? `median ${num(median(refusedTo))} s` : 'n/a (none refused)'}; `
      + `${switchovers.map((r) => r.refused).join(',')} refused; ${timing}`),
    row('failover', `partitioned primary: partition -> last writable sample, s (floor: lease ${lease.durationS} s + ${FENCING_MARGIN_S} s)`, num(median(fencing)), String(boundS), ratio(median(fencing), boundS),
      `median of ${runs}; range ${range(fencing)}; renew deadline ${lease.renewDeadlineS} s; new primary writable at median +${promoted.length > 0 ? num(median(promoted)) : 'n/a'} s; partition ${PARTITION_MS / 1000} s; ${timing}`),
    row('failover', 'partitioned primary: 50 ms windows with two writable members (floor: must be 0)', String(overlaps), '0', '-',
      `over ${runs} runs, ${partitions.reduce((sum, r) => sum + r.samples, 0)} samples`),
  ];
  return {
    section: 'failover',
    floor: `no floor: goals of the design (a planned switchover's write outage <= ${OUTAGE_GOAL_S} s; a partitioned primary stops taking writes within the lease duration + ${FENCING_MARGIN_S} s; never two writable members)`,
    rows,
    data: { runs, lease, partitionMs: PARTITION_MS, switchovers, partitions },
  };
}
