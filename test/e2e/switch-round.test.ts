/**
 * The leader key moved round every member of one cluster (primary-0 -> replica-0 -> replica-1 ->
 * primary-0): each former primary rejoins on the new timeline, and every standby reports the
 * timeline it has replayed, so that a later switchover compares like with like. A standby's last
 * restartpoint can be minutes older than a timeline switch it replayed: read from pg_control alone,
 * the pod named last (two switches behind in its checkpoint) saw a member "on a later timeline" at
 * the same WAL position and did not promote until its next restartpoint (minutes).
 */
import { PgCluster, PRIMARY, replica, TABLE } from './fixture';

jest.setTimeout(900_000);

const ALL = [PRIMARY, replica(0), replica(1)];
let pg: PgCluster | undefined;

afterAll(async () => {
  await pg?.destroy();
});

/** datadir.sh's local_position of a pod ("LSN TLI"), as the promotion checks see it. */
async function position(pod: string): Promise<string> {
  const r = await pg!.h.exec(pod, 'postgres', ['bash', '-c', '. /etc/ferretdb-postgres/lib.sh && . /etc/ferretdb-postgres/datadir.sh && local_position']);
  if (r.code !== 0) throw new Error(`${pod}: local_position: exit ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
}

test('the leader moved round all three members: each switchover promotes the named pod, and every standby reports the primary\'s timeline', async () => {
  pg = await PgCluster.boot();
  const c = pg;
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, TABLE);
  const seen: string[] = [];
  for (const [i, to] of [replica(0), replica(1), PRIMARY].entries()) {
    await c.h.apply(c.synth({ currentPrimary: to }), { wait: false });
    await c.h.waitUntil(`${to} the only writable member`, 240_000, async () => (await c.writablePrimaries(ALL)).join() === to);
    await c.waitStreaming(to, ALL.filter((p) => p !== to), 240_000);
    const timeline = (await position(to)).split(' ')[1];
    expect({ to, timeline }).toEqual({ to, timeline: String(i + 2) });
    for (const pod of ALL.filter((p) => p !== to)) {
      const at = await position(pod);
      seen.push(`${pod} ${at}`);
      expect({ pod, timeline: at.split(' ')[1] }).toEqual({ pod, timeline });
    }
  }
  console.log(`standby positions after each switchover: ${seen.join('; ')}`);
});
