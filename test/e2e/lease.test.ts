/**
 * Promotion while the old primary is alive but unreachable: the primary is cut off from the other
 * pods (not from the API server, so it keeps renewing the cluster's Lease) and its kubelet is cut
 * off too (the moved leader key never reaches it), while the leader key moves to a standby. The
 * standby must not promote while the old primary's Lease is live, however long that lasts; once
 * the old primary is cut off from the API server as well, it fences itself at the renew deadline
 * and the standby promotes after seeing the Lease unrenewed for the lease duration. Writability of
 * every member is sampled inside the pods every 50 ms.
 */
import { PgCluster, PRIMARY, replica, synthCluster, TABLE } from './fixture';
import { sampleWritability, writableOverlaps, WritabilitySample } from './harness';

jest.setTimeout(900_000);

const MEMBERS = [PRIMARY, replica(0), replica(1)];
/** Longer than the lease duration (15 s) and the standbys' wal_receiver_timeout (60 s). */
const LIVE_LEASE_MS = 90_000;

interface Outcome {
  readonly samples: WritabilitySample[];
  readonly keyMovedAt: number;
  readonly apiCutAt: number;
  readonly candidatePromoted: boolean;
  readonly oldPrimaryRejoined: boolean;
  readonly candidateLog: string;
}

let pg: PgCluster | undefined;
let outcome: Outcome | undefined;

beforeAll(async () => {
  pg = await PgCluster.boot();
  const c = pg;
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, TABLE);
  const mark = c.logMark(replica(0));
  const sampling = sampleWritability(c.h, MEMBERS, LIVE_LEASE_MS + 180_000);

  c.h.holdConfig(PRIMARY);
  await c.h.partition(PRIMARY, { from: 'pods' });
  const keyMovedAt = Date.now();
  await c.h.apply(synthCluster({ currentPrimary: replica(0) }), { wait: false });
  // The old primary keeps its Lease: nothing may promote in this window.
  await new Promise((resolve) => setTimeout(resolve, LIVE_LEASE_MS));
  await c.h.partition(PRIMARY, { from: 'all' });
  const apiCutAt = Date.now();
  const candidatePromoted = await c.h.waitUntil(`${replica(0)} promoted`, 180_000, async () =>
    (await c.writablePrimaries([replica(0)])).length === 1 || undefined).then(() => true, () => false);
  await c.h.heal(PRIMARY);
  c.h.releaseConfig(PRIMARY);
  const oldPrimaryRejoined = await c.h.waitUntil(`${PRIMARY} back as a standby`, 240_000, async () =>
    (await c.inRecovery(PRIMARY)) || undefined).then(() => true, () => false);
  outcome = {
    samples: await sampling, keyMovedAt, apiCutAt, candidatePromoted, oldPrimaryRejoined, candidateLog: c.logsSince(replica(0), mark),
  };
  const first = outcome.samples.find((s) => s.pod === replica(0) && s.writable)?.t;
  const last = [...outcome.samples].reverse().find((s) => s.pod === PRIMARY && s.writable && s.t < (first ?? Infinity))?.t;
  console.log(`leader key moved to ${replica(0)} at 0 with ${PRIMARY} cut off from the pods; ${PRIMARY} cut off from the API at +${apiCutAt - keyMovedAt} ms, `
    + `last writable at +${last === undefined ? '-' : last - keyMovedAt} ms; ${replica(0)} writable from +${first === undefined ? '-' : first - keyMovedAt} ms; `
    + `${writableOverlaps(outcome.samples).length} windows of 50 ms with two writable members`);
}, 900_000);

afterAll(async () => {
  await pg?.destroy();
});

test('the scenario ran: samples from every member, the old primary writable through the whole window its Lease was live, the named standby promoted in the end and the old primary rejoined with no manual step', () => {
  expect(outcome).toBeDefined();
  const o = outcome!;
  for (const pod of MEMBERS) expect(o.samples.filter((s) => s.pod === pod).length).toBeGreaterThan(100);
  expect(o.samples.some((s) => s.pod === PRIMARY && s.writable && s.t > o.apiCutAt - 5_000 && s.t < o.apiCutAt)).toBe(true);
  expect(o.candidatePromoted).toBe(true);
  expect(o.oldPrimaryRejoined).toBe(true);
});

test('while the old primary held a live Lease the named standby did not take writes, and said it waits for the Lease', () => {
  expect(outcome).toBeDefined();
  const o = outcome!;
  expect(o.samples.filter((s) => s.pod === replica(0) && s.writable && s.t < o.apiCutAt)).toEqual([]);
  expect(o.candidateLog).toContain('not promoting before this pod holds the cluster\'s Lease');
});

test('the standby took writes only after the old primary stopped taking them: in no 50 ms sample are two members writable', () => {
  expect(outcome).toBeDefined();
  expect(writableOverlaps(outcome!.samples)).toEqual([]);
});
